# bitnet convert --calibrate TEXT [--method absmean|gptq]: calibrated ternarization of a float
# LLaMA fixture. On calibration text (GPL-3 sections 4-6) every linear layer's output error is
# lower with gptq than with absmean; the gptq output loads, and its perplexity on held-out text
# (GPL-3 sections 1-3, not in the calibration text) and on the validation text, and its top-1
# agreement with the float model, are better than absmean's. Bad uses: one line, exit 1 or 2.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert
CAL=$D/calib-gpl3-s4-6.txt
HELD=$D/heldout-gpl3-s1-3.txt
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

for m in absmean gptq; do
    expect_exit 0 "convert llama-st --method $m" -- "$BITNET" convert "$D/llama-st" \
        -o "$TMP/$m.gguf" --calibrate "$CAL" --method $m --json -t 2
    cp "$TMP/out" "$TMP/$m.json"
done
[ "$(jget "$TMP/gptq.json" method calibration.method | tr '\n' ' ')" = "gptq gptq " ] &&
    ok "report: method gptq" || bad "report: method $(jget "$TMP/gptq.json" method)"
[ "$(jget "$TMP/absmean.json" calibration.tokens)" -ge 1000 ] &&
    ok "calibration tokens" || bad "calibration tokens $(jget "$TMP/absmean.json" calibration.tokens)"

# every layer: 2 layers x 7 linear weights, gptq below absmean
n=0 lower=0
while [ $n -lt 14 ]; do
    set -- $(jget "$TMP/gptq.json" calibration.layers.$n.err_absmean calibration.layers.$n.err_gptq \
        calibration.layers.$n.err_scale_only)
    [ $# -eq 3 ] || break
    # below absmean, and below the best scale with plain rounding (the error feedback pays)
    lt "$2" "$1" && lt "$2" "$3" && lower=$((lower + 1)) ||
        echo "       layer $n: gptq $2, absmean $1, scale alone $3"
    n=$((n + 1))
done
[ $n -eq 14 ] && [ $lower -eq 14 ] &&
    ok "gptq's output error is lower than absmean's and the scale alone's on all 14 layers" ||
    bad "gptq lower on $lower of $n layers"
# the error of the codes written: absmean's report and a plain convert agree with absmean
[ "$(jget "$TMP/absmean.json" calibration.err_absmean_mean)" = \
    "$(jget "$TMP/gptq.json" calibration.err_absmean_mean)" ] && ok "absmean error the same in both" ||
    bad "absmean errors differ"

# the outputs: absmean with --calibrate writes what a plain convert writes
expect_exit 0 "plain convert" -- "$BITNET" convert "$D/llama-st" -o "$TMP/plain.gguf" --json -t 2
[ "$(jget "$TMP/out" sha256)" = "$(jget "$TMP/absmean.json" sha256)" ] &&
    ok "--method absmean --calibrate = plain convert (same sha256)" || bad "absmean output differs"
[ "$(jget "$TMP/gptq.json" sha256)" != "$(jget "$TMP/absmean.json" sha256)" ] &&
    ok "gptq writes other codes" || bad "gptq output equals absmean's"

# quality against the float model on the validation text, and perplexity on held-out text
set -- $(jget "$TMP/absmean.json" validation.ppl_conv validation.top1_agreement validation.ppl_ref)
a_ppl=$1 a_top=$2 ref=$3
set -- $(jget "$TMP/gptq.json" validation.ppl_conv validation.top1_agreement)
echo "       f32 ppl $ref; absmean ppl $a_ppl top-1 $a_top; gptq ppl $1 top-1 $2"
lt "$1" "$a_ppl" && ok "gptq: validation perplexity lower" || bad "gptq ppl $1 vs absmean $a_ppl"
lt "$a_top" "$2" && ok "gptq: top-1 agreement higher" || bad "gptq top-1 $2 vs absmean $a_top"
for m in absmean gptq; do
    expect_exit 0 "perplexity of the $m output" -- "$BITNET" perplexity -m "$TMP/$m.gguf" \
        -f "$HELD" -c 128 --json -t 2
    cp "$TMP/out" "$TMP/ppl-$m.json"
done
set -- "$(jget "$TMP/ppl-absmean.json" perplexity)" "$(jget "$TMP/ppl-gptq.json" perplexity)"
echo "       held-out perplexity: absmean $1, gptq $2"
lt "$2" "$1" && ok "gptq: held-out perplexity lower" || bad "held-out ppl gptq $2 vs absmean $1"

# a scale per row: tq2_0 on llama-256 (every layer's inputs a multiple of 256)
L=$D/llama-256
for s in tensor row; do
    expect_exit 0 "gptq --type tq2_0 --scales $s" -- "$BITNET" convert "$L" -o "$TMP/tq-$s.gguf" \
        --type tq2_0 --calibrate "$CAL" --scales $s --json -t 2
    cp "$TMP/out" "$TMP/tq-$s.json"
done
[ "$(jget "$TMP/tq-row.json" calibration.scales)" = row ] && ok "report: scales row" || bad "scales"
n=0 lower=0
while [ $n -lt 14 ]; do
    set -- $(jget "$TMP/tq-tensor.json" calibration.layers.$n.err_gptq) \
        $(jget "$TMP/tq-row.json" calibration.layers.$n.err_gptq)
    [ $# -eq 2 ] || break
    lt "$2" "$1" && lower=$((lower + 1)) || echo "       layer $n: row $2, tensor $1"
    n=$((n + 1))
done
[ $n -eq 14 ] && [ $lower -eq 14 ] && ok "row scales: lower output error on all 14 layers" ||
    bad "row scales lower on $lower of $n layers"
# the file holds the scales the error was computed with: analyze measures the same error
expect_exit 0 "analyze the row-scaled output" -- "$BITNET" analyze "$TMP/tq-row.gguf" --source "$L" \
    --calibrate "$CAL" --json -t 2
set -- $(jget "$TMP/out" tensors.1.scale_min tensors.1.scale_max tensors.1.calibration.out_err)
e=$(jget "$TMP/tq-row.json" calibration.layers.0.err_gptq)
lt "$1" "$2" && awk -v a="$3" -v b="$e" 'BEGIN { d = a - b; exit !(d < 1e-6 * b && -d < 1e-6 * b) }' &&
    ok "blk.0.attn_q: scales $1 .. $2, output error $3 as reported" || bad "row file: $* vs $e"
expect_exit 0 "tq2_0 with --calibrate: rows by default" -- "$BITNET" convert "$L" -o "$TMP/tq-d.gguf" \
    --type tq2_0 --calibrate "$CAL" --no-validate --json -t 2
[ "$(jget "$TMP/out" sha256)" = "$(jget "$TMP/tq-row.json" sha256)" ] && ok "default = --scales row" ||
    bad "default differs from row"
for s in tensor row; do
    expect_exit 0 "held-out perplexity ($s)" -- "$BITNET" perplexity -m "$TMP/tq-$s.gguf" -f "$HELD" \
        -c 128 --json -t 2
    cp "$TMP/out" "$TMP/ppl-tq-$s.json"
done
set -- "$(jget "$TMP/ppl-tq-tensor.json" perplexity)" "$(jget "$TMP/ppl-tq-row.json" perplexity)"
echo "       llama-256 held-out perplexity: one scale $1, a scale per row $2"
lt "$2" "$1" && ok "row scales: held-out perplexity lower" || bad "held-out ppl row $2 vs tensor $1"

# the text report names the method and each layer
expect_exit 0 "text report" -- "$BITNET" convert "$D/llama-st" -o "$TMP/t.gguf" --calibrate "$CAL" -t 2
expect_grep "calibration: gptq on" "$TMP/out" "text: calibration line"
expect_grep "model.layers.1.mlp.down_proj.weight" "$TMP/out" "text: per-layer line"

# bad uses
expect_exit 2 "--method gptq without --calibrate" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --method gptq
expect_grep "needs --calibrate" "$TMP/err" "names the missing --calibrate"
expect_exit 2 "--scales row with i2_s" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --calibrate "$CAL" --scales row
expect_grep "i2_s stores one scale per tensor" "$TMP/err" "says why"
expect_exit 2 "--scales other" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --calibrate "$CAL" --scales group
expect_exit 2 "--method other" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --calibrate "$CAL" --method svd
expect_exit 1 "missing calibration file" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --calibrate "$TMP/none.txt"
expect_one_line_err "missing calibration file"
expect_grep "none.txt" "$TMP/err" "names the file"
: >"$TMP/empty.txt"
expect_exit 1 "empty calibration text" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --calibrate "$TMP/empty.txt"
expect_grep "fewer than 2 tokens" "$TMP/err" "empty text: says so"
expect_exit 1 "calibrating a ternary-trained model" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/x.gguf" --calibrate "$CAL"
expect_grep "ternary-trained" "$TMP/err" "names why"
[ ! -e "$TMP/x.gguf" ] && ! ls "$TMP"/x.gguf.tmp-* >/dev/null 2>&1 && ok "nothing written" ||
    bad "an output was left"
expect_exit 1 "the calibration text as output" -- "$BITNET" convert "$D/llama-st" -o "$TMP/empty.txt" --force --calibrate "$TMP/empty.txt"
[ -e "$TMP/empty.txt" ] && ok "the calibration text is kept" || bad "the calibration text was replaced"

finish test_convert_calib
