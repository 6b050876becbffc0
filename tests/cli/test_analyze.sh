# bitnet analyze MODEL [--source SRC [--calibrate TEXT]] [--json]: per-tensor statistics of a
# converted LLaMA fixture. The absmean GGUF's scale is the source's mean |W|; the output error on
# calibration text, computed from the activations directly, equals the one convert --calibrate
# computes through X^T X, for the absmean and the gptq output; a ternary-trained source gives
# exact weights (SQNR null, "exact"); TQ2_0 has one scale per block. Malformed and mismatched
# inputs: one line, exit 1; bad usage: exit 2.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert CAL=tests/data/convert/calib-gpl3-s4-6.txt
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
# close A B: |A - B| <= 1e-6 (|A| + |B|) (the two ways differ by ~1e-8: f32 activations)
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; s = (a < 0 ? -a : a) + (b < 0 ? -b : b); exit !(a != "" && d <= 1e-6 * s) }'; }
between() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }'; }

for m in absmean gptq; do
    expect_exit 0 "convert llama-st --method $m" -- "$BITNET" convert "$D/llama-st" \
        -o "$TMP/$m.gguf" --calibrate "$CAL" --method $m --no-validate --json -t 2
    cp "$TMP/out" "$TMP/conv-$m.json"
done

# the GGUF alone
expect_exit 0 "analyze a GGUF" -- "$BITNET" analyze "$TMP/absmean.gguf"
expect_grep "blk.1.ffn_down.weight *i2_s *128x256" "$TMP/out" "text: a row per tensor with type and shape"
expect_grep "16 tensors (14 ternary)" "$TMP/out" "text: summary"
expect_exit 0 "analyze --json" -- "$BITNET" analyze "$TMP/absmean.gguf" --json
cp "$TMP/out" "$TMP/a.json"
[ "$(jget "$TMP/a.json" tensors.1.name tensors.1.type tensors.1.scales | tr '\n' ' ')" = \
    "blk.0.attn_q.weight i2_s 1 " ] && ok "json: i2_s has one scale" || bad "json: tensor 1"
z=$(jget "$TMP/a.json" tensors.1.zero_frac)
p=$(jget "$TMP/a.json" tensors.1.plus_frac)
m=$(jget "$TMP/a.json" tensors.1.minus_frac)
between "$z" 0.2 0.45 && close "$(awk -v a="$z" -v b="$p" -v c="$m" 'BEGIN { print a + b + c }')" 1 &&
    ok "zero, +1 and -1 fractions sum to 1 (zero $z)" || bad "fractions $z $p $m"
set -- $(jget "$TMP/a.json" tensors.1.zero_groups_32 tensors.1.zero_groups_4)
[ $# -eq 2 ] && awk -v a="$1" -v b="$2" -v z="$z" 'BEGIN { exit !(0 <= a && a <= b && b > 0 && b < z) }' &&
    ok "all-zero groups: of 32 $1 <= of 4 $2 < zeros $z" || bad "zero groups: $*"
[ "$(jget "$TMP/a.json" tensors.0.type)" = f16 ] && between "$(jget "$TMP/a.json" tensors.0.rms)" 0.001 10 &&
    ok "the f16 embedding: rms" || bad "embedding stats"

# against the float source: absmean's scale is the source's mean |W|
expect_exit 0 "analyze --source" -- "$BITNET" analyze "$TMP/absmean.gguf" --source "$D/llama-st" --json
cp "$TMP/out" "$TMP/s.json"
n=1 same=0
while [ $n -le 14 ]; do
    set -- $(jget "$TMP/s.json" tensors.$n.scale tensors.$n.src_mean_abs tensors.$n.sqnr_db tensors.$n.cosine)
    awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 1e-7 * b && -d < 1e-7 * b) }' &&
        between "$3" 1 20 && between "$4" 0.5 1 && same=$((same + 1)) || echo "       tensor $n: $*"
    n=$((n + 1))
done
[ $same -eq 14 ] && ok "14 tensors: scale = source mean |W|, SQNR 1..20 dB, cosine 0.5..1" ||
    bad "source comparison: $same of 14"

# on calibration text: the output error equals convert's (another way of computing it)
for m in absmean gptq; do
    expect_exit 0 "analyze --calibrate ($m)" -- "$BITNET" analyze "$TMP/$m.gguf" --source "$D/llama-st" \
        --calibrate "$CAL" --json -t 2
    cp "$TMP/out" "$TMP/c-$m.json"
    n=0 same=0
    while [ $n -lt 14 ]; do
        e=$(jget "$TMP/conv-$m.json" calibration.layers.$n.err_$m)
        a=$(jget "$TMP/c-$m.json" tensors.$((n + 1)).calibration.out_err)
        close "$e" "$a" && same=$((same + 1)) || echo "       layer $n: convert $e, analyze $a"
        n=$((n + 1))
    done
    [ $same -eq 14 ] && ok "$m: output error = convert's err_$m on all 14 layers" ||
        bad "$m: output error agrees on $same of 14"
done
set -- $(jget "$TMP/c-absmean.json" calibration.tokens tensors.1.calibration.act_min \
    tensors.1.calibration.act_max tensors.1.calibration.act_int8_sqnr_db)
[ "$1" -ge 1000 ] && between "$2" -100 0 && between "$3" 0 100 && between "$4" 20 60 &&
    ok "activations: $1 tokens, range [$2, $3], int8 SQNR $4 dB" || bad "activations: $*"
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
lt "$(jget "$TMP/c-gptq.json" summary.out_err_mean)" "$(jget "$TMP/c-absmean.json" summary.out_err_mean)" &&
    ok "summary: gptq's mean output error below absmean's" || bad "summary out_err_mean"
expect_exit 0 "text with calibration" -- "$BITNET" analyze "$TMP/gptq.gguf" --source "$D/llama-st" \
    --calibrate "$CAL" -t 2
expect_grep "calibration: [0-9]* tokens" "$TMP/out" "text: calibration line"
expect_grep "output error 0\.[0-9]" "$TMP/out" "text: mean output error"

# a ternary-trained source: the GGUF holds its weights exactly
expect_exit 0 "convert bitnet-packed" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/packed.gguf" --no-validate
expect_exit 0 "analyze packed against its source" -- "$BITNET" analyze "$TMP/packed.gguf" --source "$D/bitnet-packed"
expect_grep "attn_q.weight .* exact " "$TMP/out" "text: exact weights say so"
expect_exit 0 "json" -- "$BITNET" analyze "$TMP/packed.gguf" --source "$D/bitnet-packed" --json
[ "$(jget "$TMP/out" tensors.1.sqnr_db)" = null ] && ok "json: SQNR null when exact" ||
    bad "sqnr $(jget "$TMP/out" tensors.1.sqnr_db)"

# TQ2_0 (a synthetic tiny model): one scale per 256 weights
expect_exit 0 "synth --type tq2_0" -- "$BITNET" synth --shape tiny --type tq2_0 -o "$TMP/tq2.gguf"
expect_exit 0 "analyze tq2_0" -- "$BITNET" analyze "$TMP/tq2.gguf" --json
i=0
while [ "$(jget "$TMP/out" tensors.$i.name)" != blk.0.attn_q.weight ] && [ $i -lt 40 ]; do i=$((i + 1)); done
[ "$(jget "$TMP/out" tensors.$i.type tensors.$i.rows tensors.$i.cols tensors.$i.scales | tr '\n' ' ')" = \
    "tq2_0 256 256 256 " ] && ok "tq2_0: 256 scales for 256x256" ||
    bad "tq2_0: $(jget "$TMP/out" tensors.$i.type tensors.$i.scales | tr '\n' ' ')"

# malformed and mismatched inputs: one line naming the problem, exit 1
expect_exit 1 "missing file" -- "$BITNET" analyze "$TMP/none.gguf"
expect_one_line_err "missing file"
expect_grep "none.gguf" "$TMP/err" "missing file: named"
printf 'not a gguf at all\n' >"$TMP/text.gguf"
expect_exit 1 "not a GGUF" -- "$BITNET" analyze "$TMP/text.gguf"
expect_one_line_err "not a GGUF"
head -c 5000 "$TMP/absmean.gguf" >"$TMP/trunc.gguf"
expect_exit 1 "truncated GGUF" -- "$BITNET" analyze "$TMP/trunc.gguf"
expect_one_line_err "truncated GGUF"
# a 2-bit code 3 in blk.0.attn_q.weight
off=$(($(tensor_at "$TMP/absmean.gguf" blk.0.attn_q.weight) + 7))
cp "$TMP/absmean.gguf" "$TMP/code3.gguf"
printf '\377' | dd of="$TMP/code3.gguf" bs=1 seek=$off conv=notrunc 2>/dev/null
expect_exit 1 "a code 3 in an i2_s tensor" -- "$BITNET" analyze "$TMP/code3.gguf"
expect_one_line_err "code 3"
expect_grep "blk.0.attn_q.weight: not ternary" "$TMP/err" "code 3: names the tensor"
expect_exit 1 "a source of another model" -- "$BITNET" analyze "$TMP/absmean.gguf" --source "$D/bitnet-packed"
expect_one_line_err "another source"
expect_exit 1 "a source that is no model" -- "$BITNET" analyze "$TMP/absmean.gguf" --source "$TMP/none"
expect_one_line_err "no source"
: >"$TMP/empty.txt"
expect_exit 1 "empty calibration text" -- "$BITNET" analyze "$TMP/absmean.gguf" --source "$D/llama-st" --calibrate "$TMP/empty.txt"
expect_grep "fewer than 2 tokens" "$TMP/err" "empty text: says so"
expect_exit 1 "missing calibration text" -- "$BITNET" analyze "$TMP/absmean.gguf" --source "$D/llama-st" --calibrate "$TMP/none.txt"
expect_grep "none.txt" "$TMP/err" "missing text: named"

# usage errors
expect_exit 2 "no model" -- "$BITNET" analyze
expect_exit 2 "--calibrate without --source" -- "$BITNET" analyze "$TMP/absmean.gguf" --calibrate "$CAL"
expect_grep "needs --source" "$TMP/err" "names the missing --source"
expect_exit 2 "two models" -- "$BITNET" analyze "$TMP/absmean.gguf" "$TMP/gptq.gguf"
expect_exit 2 "unknown option" -- "$BITNET" analyze "$TMP/absmean.gguf" --bogus
expect_exit 2 "bad threads" -- "$BITNET" analyze "$TMP/absmean.gguf" -t 0
expect_exit 0 "--help" -- "$BITNET" analyze --help
expect_grep "Usage: bitnet analyze" "$TMP/out" "help text"

finish test_analyze
