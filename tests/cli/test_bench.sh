# bitnet bench -m: the llama-bench-style table and its JSON (results, ceiling), -p/-n 0,
# the history record, usage errors; and the default model of the model commands (the
# config's model key or BITNET_MODEL, else the bundled model) with the config's defaults.
. tests/cli/lib.sh
export XDG_CONFIG_HOME="$TMP/config" XDG_DATA_HOME="$TMP/data"
export BITNET_CONFIG="$TMP/no-config.json"
export BITNET_HISTORY_DB="$TMP/data/bitnet/history.db"
unset BITNET_HISTORY BITNET_MODEL BITNET_THREADS BITNET_CTX BITNET_TEMP BITNET_SEED

M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 7 >/dev/null 2>&1 || bad "synth"
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }

# ---- the table -------------------------------------------------------------------------
expect_exit 0 "bench -m (table)" -- "$BITNET" bench -m "$M" -p 16 -n 8 -t 1,2 -r 2
for t in pp16 tg8; do
    n=$(grep -c "| *[12] | *$t | *[0-9.]* ± [0-9.]* |" "$TMP/out")
    [ "$n" -eq 2 ] && ok "$t has a row per thread count" || bad "$t: $n rows"
done
expect_grep "±" "$TMP/out" "rows show mean ± sd"
expect_grep "generation ceiling" "$TMP/out" "the ceiling table follows"
n=$(grep -c "| *[12] | *tg8 | *[0-9.]* | *[0-9.]* | *[0-9.]* | *[0-9.]* | *[0-9.]* |" "$TMP/out")
[ "$n" -eq 2 ] && ok "a ceiling row per thread count" || bad "ceiling rows: $n"
expect_grep "prompt ceiling" "$TMP/out" "the prompt ceiling table follows"
n=$(grep -c "| *[12] | *pp16 | *[0-9.]* | *[0-9.]* | *[0-9.]* | *[0-9.]* | *[0-9.]* |" "$TMP/out")
[ "$n" -eq 2 ] && ok "a prompt ceiling row per thread count" || bad "prompt ceiling rows: $n"
expect_grep "^memory: [0-9.]* MiB more resident after the tests .* x (file [0-9.]* MiB + KV cache" \
    "$TMP/out" "the table ends with the memory line"

# ---- JSON ----------------------------------------------------------------------------------
expect_exit 0 "bench -m --json" -- "$BITNET" bench -m "$M" -p 16 -n 8 -t 1,2 -r 2 --json
cp "$TMP/out" "$TMP/b.json"
if jget "$TMP/b.json" model model_bytes results.0.test results.0.threads results.0.tokens_per_s \
    results.0.sd results.0.reps results.1.test results.3.threads results.3.test \
    results.3.tokens_per_s bandwidth_bytes_per_s bytes_per_token ceiling_tokens_per_s \
    ceiling_fraction >"$TMP/j"; then
    ok "JSON has model, results (test, threads, tokens_per_s, sd, reps) and the ceiling"
else
    bad "bench --json: $(head -c 300 "$TMP/b.json")"
fi
size=$(wc -c <"$M" | tr -d ' ')
awk -v m="$M" -v size="$size" '
    { v[NR] = $0 }
    END { exit !(v[1] == m && v[2] == size && v[3] == "pp16" && v[4] == 1 && v[5] > 0 &&
                 v[6] >= 0 && v[7] == 2 && v[8] == "tg8" && v[9] == 2 && v[10] == "tg8" &&
                 v[11] > 0 && v[12] > 0 && v[13] > 0 && v[14] > 0 && v[15] > 0) }' "$TMP/j" \
    && ok "pp16 then tg8 on 1 and 2 threads; speeds, bandwidth, bytes, ceiling, fraction > 0" \
    || bad "JSON values: $(tr '\n' ' ' <"$TMP/j")"
# pp: the multiply-accumulate ceiling; its multiply-adds per token from the model's shape
jget "$TMP/b.json" results.0.mac_rate_per_s results.0.macs_per_token results.0.ceiling_tokens_per_s \
    results.0.ceiling_fraction results.0.tokens_per_s >"$TMP/p" \
    && awk 'NR==1 { m = $1 } NR==2 { n = $1 } NR==3 { c = $1 } NR==4 { f = $1 } NR==5 { t = $1 }
            END { r = c * n / m; d = f * c / t
                  exit !(m > 0 && n > 0 && r > 0.999 && r < 1.001 && d > 0.999 && d < 1.001) }' "$TMP/p" \
    && ok "pp results carry the MAC rate, MACs per token, ceiling = rate / MACs and the fraction" \
    || bad "pp ceiling: $(tr '\n' ' ' <"$TMP/p")"
if jget "$TMP/b.json" results.4 >/dev/null 2>&1; then bad "more than 4 results"; else ok "4 results"; fi
jget "$TMP/b.json" results.3.ceiling_tokens_per_s results.3.ceiling_fraction ceiling_fraction \
    results.3.bytes_per_token bytes_per_token >"$TMP/c" \
    && awk 'NR==1 { c = $1 } NR==2 { f = $1 } NR==3 { g = $1 } NR==4 { b = $1 } NR==5 { d = $1 }
            END { exit !(c > 0 && f == g && b == d) }' "$TMP/c" \
    && ok "the headline ceiling is the tg test's on the most threads" \
    || bad "headline: $(tr '\n' ' ' <"$TMP/c")"
# bytes per token: weights and head at least (the file's ternary part) and the KV cache
jget "$TMP/b.json" bytes_per_token >"$TMP/bpt"
awk -v size="$size" '{ exit !($1 > size / 4 && $1 < 4 * size) }' "$TMP/bpt" \
    && ok "bytes per token is of the model's size" || bad "bytes per token $(cat "$TMP/bpt") for a file of $size"

# memory: what the model holds beyond the process before it opened, against file + KV cache
grep -q "^memory:" "$TMP/b.json" && bad "the memory line leaked into --json" \
    || ok "--json has no memory line"
jget "$TMP/b.json" resident_bytes kv_cache_bytes >"$TMP/m" \
    && awk -v size="$size" 'NR==1 { r = $1 } NR==2 { k = $1 }
            END { exit !(r > 0 && k > 0 && r < 64 * (size + k) + 64 * 1048576) }' "$TMP/m" \
    && ok "JSON: resident_bytes and kv_cache_bytes" || bad "memory: $(tr '\n' ' ' <"$TMP/m")"

expect_exit 0 "bench -n 0 (prompt only)" -- "$BITNET" bench -m "$M" -p 8 -n 0 -t 1 -r 1 --json
jget "$TMP/out" results.0.test ceiling_tokens_per_s >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "pp8 null " ] && ok "without tg there is no ceiling (null)" \
    || bad "-n 0: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "bench -p 0 --no-warmup (generation only)" -- "$BITNET" bench -m "$M" -p 0 -n 4 -t 1 -r 1 --no-warmup --json
jget "$TMP/out" results.0.test results.0.reps >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "tg4 1 " ] && ok "only tg4, one repetition" || bad "-p 0: $(tr '\n' ' ' <"$TMP/j")"

# the LM head chosen at load: bytes per token fall from q8_0 to q6 to q4 (--head: the same)
for h in q8_0 q6 q4; do
    expect_exit 0 "bench --lm-head $h" -- env BITNET_HISTORY=0 "$BITNET" bench -m "$M" -p 0 -n 2 -t 1 -r 1 --no-warmup --head $h --json
    jget "$TMP/out" bytes_per_token >>"$TMP/heads"
    [ "$(jget "$TMP/out" lm_head)" = "$h" ] && ok "bench --json names the $h head" || bad "lm_head for $h: $(jget "$TMP/out" lm_head)"
done
awk 'NR==1 { a = $1 } NR==2 { b = $1 } NR==3 { c = $1 } END { exit !(NR == 3 && a > b && b > c) }' "$TMP/heads" \
    && ok "bytes per token: q8_0 > q6 > q4" || bad "bytes per token by head: $(tr '\n' ' ' <"$TMP/heads")"
expect_exit 2 "bench --lm-head q5" -- "$BITNET" bench -m "$M" -p 0 -n 2 --lm-head q5
expect_grep "q8_0, q6, q4 or keep" "$TMP/err" "--lm-head q5 names the choices"

# ---- history ------------------------------------------------------------------------------
expect_exit 0 "history list --command bench" -- "$BITNET" history list --command bench --json
jget "$TMP/out" runs.0.status runs.0.params.suite runs.0.model_path runs.0.metrics.tg_tokens_per_s \
    runs.0.metrics.ceiling_fraction runs.2.metrics.pp_tokens_per_s runs.2.metrics.results.3.test >"$TMP/h" 2>&1 \
    && awk -v m="$M" 'NR==1 { s = $0 } NR==2 { u = $0 } NR==3 { p = $0 } NR==4 { t = $1 } NR==5 { f = $1 }
            NR==6 { q = $1 } NR==7 { r = $0 }
            END { exit !(s == "ok" && u == "model" && p == m && t > 0 && f > 0 && q > 0 && r == "tg8") }' "$TMP/h" \
    && ok "bench runs are recorded (suite model, tokens/s, ceiling fraction, results)" \
    || bad "history: $(tr '\n' ' ' <"$TMP/h")"

# ---- errors ---------------------------------------------------------------------------------
expect_exit 2 "bench -t 0" -- "$BITNET" bench -m "$M" -t 0
expect_exit 2 "bench -t x" -- "$BITNET" bench -m "$M" -t x
expect_exit 2 "bench -r 0" -- "$BITNET" bench -m "$M" -r 0
expect_exit 2 "bench -p abc" -- "$BITNET" bench -m "$M" -p abc
expect_exit 2 "bench -n without a value" -- "$BITNET" bench -m "$M" -n
expect_exit 2 "bench -p 0 -n 0" -- "$BITNET" bench -m "$M" -p 0 -n 0
expect_exit 2 "bench --ctx (not a bench option)" -- "$BITNET" bench -m "$M" --ctx 64
expect_exit 2 "bench with an unknown option" -- "$BITNET" bench -m "$M" --bogus
expect_exit 2 "bench with an unknown suite" -- "$BITNET" bench nosuchsuite
expect_exit 1 "bench with a missing model" -- "$BITNET" bench -m "$TMP/none.gguf"
expect_one_line_err "bench with a missing model"
expect_exit 1 "bench -p larger than the model's context" -- "$BITNET" bench -m "$M" -p 4096 -n 0 -r 1
expect_exit 0 "bench kernels --help (the suite still answers)" -- "$BITNET" bench kernels --help
expect_exit 0 "bench --help" -- "$BITNET" bench --help
expect_grep "ceiling" "$TMP/out" "bench --help explains the ceiling"

# ---- the default model and the config's defaults --------------------------------------------
expect_exit 0 "bench without -m, BITNET_MODEL set" -- env BITNET_MODEL="$M" "$BITNET" bench -p 4 -n 2 -t 1 -r 1 --json
[ "$(jget "$TMP/out" model)" = "$M" ] && ok "bench uses BITNET_MODEL" || bad "bench model: $(jget "$TMP/out" model)"
printf '{"model": "%s", "threads": 1, "temp": 0, "seed": 3, "ctx": 64}\n' "$M" >"$TMP/config.json"
expect_exit 0 "generate without -m, --temp, -t, --seed (config)" -- \
    env BITNET_CONFIG="$TMP/config.json" "$BITNET" generate -p hello -n 3 --json
jget "$TMP/out" threads seed n_ctx text >"$TMP/j"
awk 'NR==1 { t = $1 } NR==2 { s = $1 } NR==3 { c = $1 } END { exit !(t == 1 && s == 3 && c == 64) }' "$TMP/j" \
    && ok "generate takes model, threads, seed and ctx from the config" || bad "config defaults: $(tr '\n' ' ' <"$TMP/j")"
"$BITNET" generate -m "$M" -p hello -n 3 -t 1 --temp 0 --json 2>/dev/null | "$JSONGET" text >"$TMP/t0"
sed -n 4p "$TMP/j" >"$TMP/t1"
cmp -s "$TMP/t0" "$TMP/t1" && ok "the config's temp 0 is greedy" || bad "config temp 0 is not greedy"
expect_exit 0 "flags win over the config" -- \
    env BITNET_CONFIG="$TMP/config.json" "$BITNET" generate -p hello -n 2 --seed 9 -c 32 --json
jget "$TMP/out" seed n_ctx >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "9 32 " ] && ok "--seed and --ctx override the config" || bad "override: $(tr '\n' ' ' <"$TMP/j")"
printf '{"model": "%s", "ctx": 100000}\n' "$M" >"$TMP/config2.json"
expect_exit 0 "a config ctx above the model's is capped" -- \
    env BITNET_CONFIG="$TMP/config2.json" "$BITNET" generate -p hello -n 1 -t 1 --json
printf '{"model": 3}\n' >"$TMP/bad.json"
expect_exit 1 "a broken config file fails the command" -- env BITNET_CONFIG="$TMP/bad.json" "$BITNET" generate -p hi
expect_one_line_err "a broken config file"

# the bundled model, in a copy of the tree layout: build/bitnet and assets/models
mkdir -p "$TMP/tree/build" "$TMP/tree/assets/models"
cp "$BITNET" "$TMP/tree/build/bitnet"
B="$TMP/tree/build/bitnet"
expect_exit 2 "an empty assets/models: no model" -- "$B" generate -p hello
cp "$M" "$TMP/tree/assets/models/one.gguf"
expect_exit 0 "the only .gguf in assets/models is the default" -- "$B" bench -p 4 -n 0 -t 1 -r 1 --json
case $(jget "$TMP/out" model) in
*/tree/assets/models/one.gguf) ok "bench names the bundled model" ;;
*) bad "bundled: $(jget "$TMP/out" model)" ;;
esac
cp "$M" "$TMP/tree/assets/models/two.gguf"
expect_exit 2 "two models and no DEFAULT" -- "$B" generate -p hello
expect_grep "no DEFAULT" "$TMP/err" "the error says why"
echo two.gguf >"$TMP/tree/assets/models/DEFAULT"
expect_exit 0 "DEFAULT names the model" -- "$B" chat -t 1 -n 2 </dev/null
expect_grep "models/two.gguf;" "$TMP/err" "chat uses the model DEFAULT names"
echo three.gguf >"$TMP/tree/assets/models/DEFAULT"
expect_exit 2 "DEFAULT naming a missing file" -- "$B" perplexity -f "$M"
expect_exit 0 "the config's model wins over the bundled one" -- \
    env BITNET_CONFIG="$TMP/config.json" "$B" generate -p hello -n 1 --json
rm -rf "$TMP/tree"

# without -m or a configured model: the bundled model when there is one, else a usage error
bundled=$(dirname "$BITNET")/../assets/models
if ls "$bundled"/*.gguf >/dev/null 2>&1; then
    expect_exit 0 "generate with the bundled model" -- "$BITNET" generate -p hello -n 2 -t 1 --json
else
    expect_exit 2 "generate without any model" -- "$BITNET" generate -p hello
    expect_grep "bitnet config set model" "$TMP/err" "the error says how to give a model"
    expect_exit 2 "perplexity without any model" -- "$BITNET" perplexity -f "$M"
fi
finish test_bench
