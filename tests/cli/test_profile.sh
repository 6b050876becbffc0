# bitnet profile on the bundled model: the JSON's shape (every class of work in both phases,
# sampling in generation), the forward's classes adding up to no more than the time measured
# around the evaluations and to most of it, bytes per class consistent between the prompt and
# generation, trials only among the options profile tries (other thread counts up to the CPUs,
# kernel variants, the other LM head, context, the other KV type) and recommendations only
# among the trials that beat their noise and the minimum gain; --no-try; bad flags (exit 2),
# a missing model and a test longer than the context (exit 1, one line); --gpu without the
# CUDA backend or a device (exit 1, one line), and with one (a GPU, or make CUDA=emu's
# emulator) the layers, the pool and trials of other layer counts and context. No timed
# assertions: times are only compared with each other.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_MODEL
M=assets/models/bitnet-tinystories.gguf
NCPU=$(getconf _NPROCESSORS_ONLN)

expect_exit 0 "profile --json" -- "$BITNET" profile -m $M -t 1 -p 16 -n 6 -r 3 --json
cp "$TMP/out" "$TMP/p.json"
"$JSONGET" model threads kernels lm_head kv_type n_ctx read_ceiling_bytes_per_s min_gain \
    prompt.classes generation.classes trials recommendations <"$TMP/p.json" >/dev/null &&
    ok "json: the keys" || bad "json: a key is missing"

# check NAME PYTHON: runs the check on the document d; exit 0 when it holds
check() {
    if python3 - "$TMP/p.json" >"$TMP/py" 2>&1 <<PY; then ok "$1"; else bad "$1: $(tail -1 "$TMP/py")"; fi
import json, sys
d = json.load(open(sys.argv[1]))
NCPU = $NCPU
FORWARD = ["qkv", "o", "gate_up", "down", "attention", "norm", "rope", "kv_store", "eltwise",
           "lm_head", "embed", "sync"]
def cls(ph): return {c["class"]: c for c in d[ph]["classes"]}
$2
PY
}

check "every class of work in both phases, sampling in generation only" '
p, g = cls("prompt"), cls("generation")
assert all(k in p and k in g for k in FORWARD), (list(p), list(g))
assert "sampling" in g and "sampling" not in p
assert set(p) - set(FORWARD) <= {"outside"} and set(g) - set(FORWARD) <= {"outside", "sampling"}'

check "the forward's classes add up to at most the measured time and to most of it" '
for ph in ("prompt", "generation"):
    s = sum(c["seconds"] for c in d[ph]["classes"] if c["class"] != "outside")
    t = d[ph]["seconds"]
    assert 0.5 * t <= s <= t * 1.001 + 1e-6, (ph, s, t)
    assert abs(sum(c["share"] for c in d[ph]["classes"]) - 1) < 1e-6, ph
    assert all(c["seconds"] >= 0 for c in d[ph]["classes"]), ph'

check "every matmul, attention and the LM head got time and bytes" '
for ph in ("prompt", "generation"):
    for k in ("qkv", "o", "gate_up", "down", "attention", "lm_head"):
        c = cls(ph)[k]
        assert c["seconds"] > 0 and c["bytes"] > 0 and c["bytes_per_s"] > 0, (ph, k)
assert d["read_ceiling_bytes_per_s"] > 0'

check "bytes: weights once per prompt batch, once per generated token" '
p, g, n = cls("prompt"), cls("generation"), d["generation"]["tokens"]
assert d["prompt"]["tokens"] <= d["n_batch"]
for k in ("qkv", "o", "gate_up", "down"):
    assert g[k]["bytes"] == n * p[k]["bytes"], (k, g[k]["bytes"], p[k]["bytes"])
assert g["lm_head"]["bytes"] == n * p["lm_head"]["bytes"]
assert g["attention"]["bytes"] > p["attention"]["bytes"]'

check "trials only among the options profile tries" '
base = d
seen = set()
for t in d["trials"]:
    o, v = t["option"], t["value"]
    seen.add(o)
    assert o in ("threads", "kernels", "lm_head", "ctx", "kv"), o
    if o == "threads": assert 1 <= int(v) <= NCPU and int(v) != d["threads"], v
    if o == "kv": assert v == ("f32" if d["kv_type"] == "f16" else "f16"), v
    if o == "lm_head": assert v in ("keep", "q8_0", "q6", "q4"), v
    if o == "kernels": assert v != d["kernels"] and v != "ref", v
    if "skipped" not in t:
        assert t["tg_tokens_per_s"] > 0 and t["base_tg_tokens_per_s"] > 0 and t["noise"] >= 0
assert {"lm_head", "kv", "ctx"} <= seen, seen
heads = {t["value"] for t in d["trials"] if t["option"] == "lm_head"}
assert {"q6", "q4"} <= heads, heads  # the bundled model: n_embd 256
assert ("threads" in seen) == (NCPU > 1)'

check "recommendations only among tried options that beat the noise and the minimum gain" '
tried = {(t["option"], t["value"]): t for t in d["trials"] if "skipped" not in t}
for r in d["recommendations"]:
    t = tried[(r["option"], r["value"])]
    assert t["recommended"] and r["gain_tg"] == t["gain_tg"]
    assert t["gain_tg"] > t["noise"] and t["gain_tg"] > d["min_gain"] and d["reps"] >= d["min_reps"]
n = sum(1 for t in tried.values() if t["recommended"])
assert n == len(d["recommendations"])
for t in tried.values():  # the best of its option among those that beat the noise, or none
    beat = lambda u: d["reps"] >= d["min_reps"] and u["gain_tg"] > u["noise"] and u["gain_tg"] > d["min_gain"]
    best = max((u["gain_tg"] for u in tried.values() if u["option"] == t["option"] and beat(u)), default=None)
    assert t["recommended"] == (beat(t) and t["gain_tg"] == best), t'

expect_exit 0 "profile (text)" -- "$BITNET" profile -m $M -t 1 -p 8 -n 4 -r 1
expect_grep "^  CLASS .*ms/pass .*SHARE .*GB/s" "$TMP/out" "text: the class table"
expect_grep "^read ceiling: " "$TMP/out" "text: the read ceiling"
expect_grep "^  kv .*f32" "$TMP/out" "text: the KV trial"
expect_grep "^no recommendation: 1 passes cannot tell a gain from noise" "$TMP/out" \
    "text: one pass recommends nothing"

expect_exit 0 "profile --no-try" -- "$BITNET" profile -m $M -t 1 -p 4 -n 2 -r 1 --no-try --json
[ "$("$JSONGET" trials <"$TMP/out")" = "[]" ] && ok "--no-try: no trials" || bad "--no-try ran trials"

for a in "-p 0" "-n x" "-r 0" "-r 101" "--bogus" "-t 0"; do
    expect_exit 2 "bad flag $a" -- "$BITNET" profile -m $M $a
done
expect_exit 1 "a missing model" -- "$BITNET" profile -m "$TMP/none.gguf" -t 1
expect_one_line_err "a missing model"
expect_exit 1 "longer than the context" -- "$BITNET" profile -m $M -t 1 --ctx 32 -p 30 -n 8
expect_one_line_err "longer than the context"
expect_grep "do not fit the context of 32" "$TMP/err" "the context error names the sizes"
expect_exit 2 "-ngl without --gpu" -- "$BITNET" profile -m $M -ngl 2
expect_grep "add --gpu" "$TMP/err" "-ngl without --gpu says to add it"

"$BITNET" hw --json >"$TMP/hw" 2>&1
if [ "$("$JSONGET" cuda.built <"$TMP/hw")" != true ] || [ "$("$JSONGET" cuda.devices <"$TMP/hw")" = 0 ]; then
    expect_exit 1 "--gpu without the CUDA backend or a device" -- "$BITNET" profile -m $M --gpu
    expect_one_line_err "--gpu without the CUDA backend or a device"
    expect_grep "no CUDA" "$TMP/err" "--gpu says plainly there is no CUDA backend or device"
else # a GPU, or the kernel emulator of make CUDA=emu
    expect_exit 0 "profile --gpu" -- "$BITNET" profile -m $M --gpu -t 1 -p 8 -n 4 -r 3 --json
    cp "$TMP/out" "$TMP/p.json"
    check "--gpu: the device, all layers and the head on the GPU, the pool, trials of layers and context" '
L = d["n_layer"]
assert d["device"] and d["ngl"] == L + 1 and d["pool"]["reserved"] >= d["pool"]["used"] > 0
assert d["ngl_most_loaded"] == L + 1 and d["ngl_most_loaded_pool"] == d["pool"]["reserved"]
assert "prompt" not in d and "generation" not in d
tried = {(t["option"], t["value"]) for t in d["trials"]}
assert {("ngl", "0"), ("ngl", str(L // 2)), ("ngl", str(L))} <= tried, tried
assert all(o in ("ngl", "ctx") for o, v in tried), tried
for t in d["trials"]:
    if t["option"] == "ngl" and t["value"] != "0" and "skipped" not in t:
        assert t["pool"]["reserved"] > 0, t
    if t["option"] == "ngl" and t["value"] == "0": assert "pool" not in t
rec = {(r["option"], r["value"]) for r in d["recommendations"]}
assert rec <= tried'
    expect_exit 0 "profile --gpu -ngl 2 (text)" -- "$BITNET" profile -m $M --gpu -ngl 2 -t 1 -p 8 -n 4 -r 1
    expect_grep "^setup: -ngl 2 (2 of [0-9]* layers on the GPU)" "$TMP/out" "text: the setup's layers"
    expect_grep "^pool: [0-9.]* MiB reserved" "$TMP/out" "text: the pool"
    expect_grep "^memory: -ngl [0-9]* is the most that loaded here" "$TMP/out" "text: the most layers that loaded"
fi
expect_exit 0 "--help" -- "$BITNET" profile --help
expect_grep "recommended" "$TMP/out" "--help explains recommendations"

finish test_profile
