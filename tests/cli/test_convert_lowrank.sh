# bitnet convert --lowrank R: each linear layer of the LLaMA fixture gets F16 factors of its
# ternarization residual, which the engine adds at run time. R = 0 writes what a plain convert
# writes; R = 8 beats plain absmean on the validation text; the full rank (128 = min(N, K) of
# most layers) makes the converted model agree with the float one almost everywhere, which it
# can only if the engine applies the factors. The factors' bytes are as counted; a GGUF with one
# factor of a pair, or a non-finite one, is refused with a message naming the tensor.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a < b) }'; }

expect_exit 0 "plain convert" -- "$BITNET" convert "$D/llama-st" -o "$TMP/plain.gguf" --json -t 2
cp "$TMP/out" "$TMP/plain.json"
expect_exit 0 "--lowrank 0" -- "$BITNET" convert "$D/llama-st" -o "$TMP/r0.gguf" --lowrank 0 --json -t 2
[ "$(jget "$TMP/out" sha256)" = "$(jget "$TMP/plain.json" sha256)" ] &&
    ok "--lowrank 0 = plain convert (same sha256)" || bad "--lowrank 0 differs"
for r in 8 128; do
    expect_exit 0 "--lowrank $r" -- "$BITNET" convert "$D/llama-st" -o "$TMP/r$r.gguf" --lowrank $r --json -t 2
    cp "$TMP/out" "$TMP/r$r.json"
done

# bytes: per layer block 2 bytes x r x (rows + cols) summed = 2 x 2048 r over the 7 layers; 2 blocks
set -- $(jget "$TMP/r8.json" lowrank.rank lowrank.layers lowrank.bytes lowrank.macs_per_token)
[ "$*" = "8 14 65536 32768" ] && ok "report: rank 8, 14 layers, 65536 bytes, 32768 MACs a token" ||
    bad "report: $*"
[ "$(jget "$TMP/r8.json" bytes_out)" -gt "$(jget "$TMP/plain.json" bytes_out)" ] &&
    ok "the output is larger by the factors" || bad "bytes_out"
"$BITNET" inspect "$TMP/r8.gguf" --tensors >"$TMP/ins"
expect_grep "blk.1.ffn_down.lowrank_a *f16 *\[256, 8\]" "$TMP/ins" "inspect: lowrank_a is 8 x 256"
expect_grep "blk.1.ffn_down.lowrank_b *f16 *\[8, 128\]" "$TMP/ins" "inspect: lowrank_b is 128 x 8"

# quality against the float model
set -- $(jget "$TMP/plain.json" validation.ppl_conv validation.top1_agreement)
p_ppl=$1 p_top=$2
set -- $(jget "$TMP/r8.json" validation.ppl_conv validation.top1_agreement)
echo "       absmean ppl $p_ppl top-1 $p_top; +rank 8 ppl $1 top-1 $2"
lt "$1" "$p_ppl" && lt "$p_top" "$2" && ok "rank 8: lower perplexity, higher top-1" || bad "rank 8 no better"
set -- $(jget "$TMP/r128.json" validation.top1_agreement validation.cosine_mean lowrank.energy_mean)
echo "       full rank: top-1 $1, cosine $2, residual kept $3"
lt 0.98 "$1" && lt 0.9999 "$2" && ok "full rank: the engine applies the factors (top-1 $1)" ||
    bad "full rank: top-1 $1 cosine $2"
# with calibration the factors are weighted by the inputs: a better output than plain SVD's
expect_exit 0 "--calibrate --method absmean --lowrank 8" -- "$BITNET" convert "$D/llama-st" \
    -o "$TMP/w8.gguf" --calibrate "$D/calib-gpl3-s4-6.txt" --method absmean --lowrank 8 --json -t 2
set -- $(jget "$TMP/out" lowrank.weighted validation.top1_agreement)
[ "$1" = true ] && lt "$(jget "$TMP/r8.json" validation.top1_agreement)" "$2" &&
    ok "weighted factors: top-1 $2 above plain SVD's" || bad "weighted: $*"
# analyze sees the weights the engine computes with: ternary plus the factors
for f in plain r8; do
    expect_exit 0 "analyze $f" -- "$BITNET" analyze "$TMP/$f.gguf" --source "$D/llama-st" \
        --calibrate "$D/calib-gpl3-s4-6.txt" --json -t 2
    cp "$TMP/out" "$TMP/an-$f.json"
done
set -- $(jget "$TMP/an-r8.json" tensors.1.lowrank summary.sqnr_db_mean summary.out_err_mean) \
    $(jget "$TMP/an-plain.json" summary.sqnr_db_mean summary.out_err_mean)
[ "$1" = 8 ] && lt "$4" "$2" && lt "$3" "$5" &&
    ok "analyze: rank 8, SQNR $4 -> $2 dB, output error $5 -> $3" || bad "analyze with factors: $*"
expect_exit 0 "perplexity of the rank 8 output" -- "$BITNET" perplexity -m "$TMP/r8.gguf" \
    -f "$D/heldout-gpl3-s1-3.txt" -c 128 -t 2

# broken files: one factor of a pair, a NaN factor
perl -0777 -pe 's/blk\.0\.attn_q\.lowrank_b/blk.0.attn_q.lowrank_x/' "$TMP/r8.gguf" >"$TMP/half.gguf"
expect_exit 1 "a factor without its pair" -- "$BITNET" perplexity -m "$TMP/half.gguf" \
    -f "$D/heldout-gpl3-s1-3.txt" -c 128
expect_one_line_err "a factor without its pair"
expect_grep "blk.0.attn_q.lowrank_a without blk.0.attn_q.lowrank_b" "$TMP/err" "names both"
# the factors of attn_q and attn_k swapped by name: 64 rows where attn_q has 128
perl -0777 -pe 's/blk\.0\.attn_q\.lowrank_b/blk.0.attn_X.lowrank_b/; s/blk\.0\.attn_k\.lowrank_b/blk.0.attn_q.lowrank_b/;
    s/blk\.0\.attn_X\.lowrank_b/blk.0.attn_k.lowrank_b/' "$TMP/r8.gguf" >"$TMP/swap.gguf"
expect_exit 1 "factors of another shape" -- "$BITNET" perplexity -m "$TMP/swap.gguf" \
    -f "$D/heldout-gpl3-s1-3.txt" -c 128
expect_grep "blk.0.attn_q.lowrank_b: shape 64x8, expected 128x8" "$TMP/err" "names the tensor and shapes"
off=$(($(tensor_at "$TMP/r8.gguf" blk.1.attn_v.lowrank_b) + 6))
cp "$TMP/r8.gguf" "$TMP/nan.gguf"
printf '\000\176' | dd of="$TMP/nan.gguf" bs=1 seek=$off conv=notrunc 2>/dev/null
expect_exit 1 "a NaN in a factor" -- "$BITNET" perplexity -m "$TMP/nan.gguf" -f "$D/heldout-gpl3-s1-3.txt" -c 128
expect_grep "blk.1.attn_v.lowrank_b: element 3 is not finite" "$TMP/err" "names the tensor and element"

# the queue carries --lowrank: the job writes what the direct conversion wrote
expect_exit 0 "convert --queue --lowrank 8" -- "$BITNET" convert "$D/llama-st" -o "$TMP/q8.gguf" \
    --lowrank 8 --queue --json
j=$(jget "$TMP/out" job)
expect_exit 0 "jobs wait" -- "$BITNET" jobs wait "$j" --timeout 300 --json
expect_exit 0 "jobs show" -- "$BITNET" jobs show "$j" --json
[ "$(jget "$TMP/out" result.sha256)" = "$(jget "$TMP/r8.json" sha256)" ] &&
    ok "the queued --lowrank 8 output = the direct one" || bad "queued output differs"

# bad uses
expect_exit 2 "--lowrank 257" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --lowrank 257
expect_exit 2 "--lowrank -1" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --lowrank -1
expect_exit 1 "--lowrank on a ternary-trained model" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/x.gguf" --lowrank 8
expect_grep "no residual to correct" "$TMP/err" "says why"
[ ! -e "$TMP/x.gguf" ] && ok "nothing written" || bad "an output was left"

finish test_convert_lowrank
