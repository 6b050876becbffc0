# bitnet convert --mixed K: the K linear layers most sensitive to ternarization (measured on the
# calibration text) are written as Q8_0 (or Q4_0) rows, which the engine multiplies beside the
# ternary ones. With every layer kept the converted model agrees with the float one (only the
# 8-bit rounding of weights and activations is left), which it can only if the engine runs the
# 8-bit layers; the report ranks every layer and gives the size / quality trade-off for
# K = 0, 1, 2, 4, ...; bad combinations of options are refused in one line.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert
CAL="--calibrate $D/calib-gpl3-s4-6.txt"
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a < b) }'; }

# every layer at 8 bits: the float model's logits within the rounding of 8 bits
expect_exit 0 "--mixed 14 (every layer)" -- "$BITNET" convert "$D/llama-st" -o "$TMP/all8.gguf" \
    $CAL --mixed 14 --json -t 2
cp "$TMP/out" "$TMP/all8.json"
set -- $(jget "$TMP/all8.json" mixed.kept mixed.type validation.top1_agreement \
    validation.cosine_min validation.ppl_ref validation.ppl_conv)
echo "       kept $1 at $2: top-1 $3, cosine min $4, perplexity $5 -> $6"
[ "$1 $2" = "14 q8_0" ] && lt 0.97 "$3" && lt 0.999 "$4" &&
    awk -v a="$5" -v b="$6" 'BEGIN { d = (b - a) / a; exit !(d < 0.01 && d > -0.01) }' &&
    ok "all at q8_0: the engine's logits are the float model's within 8-bit rounding" ||
    bad "all at q8_0: $*"
"$BITNET" inspect "$TMP/all8.gguf" --tensors >"$TMP/ins"
expect_grep "blk.1.ffn_down.weight *q8_0 *\[256, 128\]" "$TMP/ins" "inspect: ffn_down is q8_0"

# two layers kept: the two of the ranking, the rest ternary; the trade-off
expect_exit 0 "--mixed 2" -- "$BITNET" convert "$D/llama-st" -o "$TMP/m2.gguf" $CAL \
    --method absmean --mixed 2 --json -t 2
cp "$TMP/out" "$TMP/m2.json"
set -- $(jget "$TMP/m2.json" mixed.layers.0.kept mixed.layers.1.kept mixed.layers.2.kept \
    mixed.layers.13.kept mixed.layers.0.nll_increase mixed.layers.13.nll_increase)
[ "$1 $2 $3 $4" = "true true false false" ] && lt "$6" "$5" &&
    ok "ranking: the first two kept, scores descending ($5 .. $6)" || bad "ranking: $*"
first=$(jget "$TMP/m2.json" mixed.layers.0.name)
g=$(echo "$first" | sed -E 's/model.layers.([0-9]+).(self_attn|mlp).([a-z]+)_proj.weight/blk.\1.\3/;
    s/\.q$/.attn_q/; s/\.k$/.attn_k/; s/\.v$/.attn_v/; s/\.o$/.attn_output/; s/\.gate$/.ffn_gate/;
    s/\.up$/.ffn_up/; s/\.down$/.ffn_down/')
"$BITNET" inspect "$TMP/m2.gguf" --tensors >"$TMP/ins"
expect_grep "$g.weight *q8_0" "$TMP/ins" "inspect: the most sensitive layer ($g) is q8_0"
[ "$(grep -c 'weight  *q8_0' "$TMP/ins")" = 2 ] && [ "$(grep -c 'weight  *i2_s' "$TMP/ins")" = 12 ] &&
    ok "inspect: 2 q8_0 and 12 i2_s linear layers" || bad "inspect: $(grep -c 'weight  *q8_0' "$TMP/ins") q8_0"
set -- $(jget "$TMP/m2.json" mixed.tradeoff.0.k mixed.tradeoff.1.k mixed.tradeoff.2.k \
    mixed.tradeoff.3.k mixed.tradeoff.4.k mixed.tradeoff.5.k mixed.tradeoff.2.written)
[ "$*" = "0 1 2 4 8 14 true" ] && ok "trade-off at K = 0 1 2 4 8 14, K = 2 written" ||
    bad "trade-off rows: $*"
set -- $(jget "$TMP/m2.json" mixed.tradeoff.0.bytes mixed.tradeoff.2.bytes mixed.tradeoff.5.bytes \
    bytes_out mixed.tradeoff.0.ppl mixed.tradeoff.5.ppl validation.ppl_ref)
echo "       bytes K=0 $1, K=2 $2 (file $4), K=14 $3; perplexity K=0 $5, K=14 $6, float $7"
lt "$1" "$2" && lt "$2" "$3" && [ "$2" = "$4" ] &&
    ok "trade-off bytes grow with K; the written K's are the file's" || bad "bytes: $*"
awk -v a="$5" -v b="$6" -v f="$7" 'BEGIN { exit !(b < a && (b - f) / f < 0.01) }' &&
    ok "trade-off perplexity: K=14 near the float model's, below K=0's" || bad "ppl: $*"
set -- $(jget "$TMP/m2.json" mixed.tradeoff.2.ppl validation.ppl_conv)
awk -v a="$1" -v b="$2" 'BEGIN { d = (b - a) / a; exit !(d < 0.05 && d > -0.05) }' &&
    ok "the written K: simulated perplexity $1, the engine's $2" || bad "simulated $1 engine $2"

# 4 bits
expect_exit 0 "--mixed 1 --mixed-type q4_0" -- "$BITNET" convert "$D/llama-st" \
    -o "$TMP/m4.gguf" $CAL --mixed 1 --mixed-type q4_0 --json -t 2
"$BITNET" inspect "$TMP/m4.gguf" --tensors >"$TMP/ins"
[ "$(grep -c 'weight  *q4_0' "$TMP/ins")" = 1 ] && ok "q4_0: one layer kept at 4 bits" || bad "q4_0"
expect_exit 0 "generate with the mixed model" -- "$BITNET" generate -m "$TMP/m4.gguf" -p "the" \
    -n 4 --seed 1 -t 2

# refusals
expect_exit 2 "--mixed without --calibrate" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" \
    --mixed 2
expect_grep "needs --calibrate" "$TMP/err" "one line: --mixed needs --calibrate"
expect_exit 2 "--mixed-type q5_0" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" $CAL \
    --mixed 1 --mixed-type q5_0
expect_grep "q8_0 or q4_0" "$TMP/err" "one line: the types allowed"
expect_exit 1 "--mixed 15 (more than the layers)" -- "$BITNET" convert "$D/llama-st" \
    -o "$TMP/x.gguf" $CAL --mixed 15
expect_grep "has 14 linear layers" "$TMP/err" "one line: the model has 14 linear layers"
[ ! -e "$TMP/x.gguf" ] && ok "nothing written" || bad "an output was written"
finish test_convert_mixed
