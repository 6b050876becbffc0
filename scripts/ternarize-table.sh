#!/bin/sh
# ternarize-table.sh - the README's table of ternarization methods (issue 21), from one run:
# each float LLaMA fixture converted by absmean, by gptq on calibration text, and each with a
# low-rank correction of rank 8 and 32; for each the bytes of the GGUF, perplexity on held-out
# text (`bitnet perplexity`, 128-token chunks, llama.cpp's method), the validation perplexity
# and top-1 agreement with the float model (convert's f32 reference on its built-in text), and
# the generation speed (bitnet bench tg32, one thread, the best of three runs of 3 repetitions:
# the cost of the factors).
# The float model's held-out perplexity comes from tests/convert/heldout_ppl.py (transformers).
#
#   sh scripts/ternarize-table.sh [BUILD_DIR]        (default build; prints markdown rows)
set -e
B=${1:-build}
BITNET=$B/bitnet
JSONGET=$B/tools/jsonget
D=tests/data/convert
CAL=$D/calib-gpl3-s4-6.txt
HELD=$D/heldout-gpl3-s1-3.txt
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
j() { f=$1; shift; "$JSONGET" "$@" <"$f"; }

row() { # row MODEL TYPE LABEL ARGS...: one conversion and its measurements
    m=$1 type=$2 label=$3
    shift 3
    "$BITNET" convert "$D/$m" -o "$W/o.gguf" --force --type "$type" --json -t 2 "$@" >"$W/c.json" 2>/dev/null
    "$BITNET" perplexity -m "$W/o.gguf" -f "$HELD" -c 128 --json -t 2 >"$W/p.json" 2>/dev/null
    best=0 # the best of three benches: a busy neighbour slows rounds, never speeds them up
    for i in 1 2 3; do
        "$BITNET" bench -m "$W/o.gguf" -p 0 -n 32 -t 1 -r 3 --json >"$W/b.json" 2>/dev/null
        best=$(awk -v a="$best" -v b="$(j "$W/b.json" results.0.tokens_per_s)" 'BEGIN { print (b > a ? b : a) }')
    done
    printf '| %s | %s | %s | %.2f | %.2f | %.1f%% | %.0f |\n' "$m ($type)" "$label" \
        "$(j "$W/c.json" bytes_out)" "$(j "$W/p.json" perplexity)" \
        "$(j "$W/c.json" validation.ppl_conv)" \
        "$(awk -v v="$(j "$W/c.json" validation.top1_agreement)" 'BEGIN { print 100 * v }')" \
        "$best"
}

echo "| model | method | bytes | held-out ppl | validation ppl | top-1 | tg32 t/s |"
echo "|---|---|---|---|---|---|---|"
for spec in "llama-st i2_s" "llama-256 tq2_0"; do
    set -- $spec
    m=$1 t=$2
    [ -d "$D/$m" ] || continue
    "$BITNET" convert "$D/$m" -o "$W/ref.gguf" --force --type "$t" --json -t 2 >"$W/r.json" 2>/dev/null
    f32=$(python3 tests/convert/heldout_ppl.py "$D/$m" "$HELD" 128 2>/dev/null | cut -d' ' -f1)
    printf '| %s | f32 (the source) | - | %s | %.2f | 100%% | - |\n' "$m" "${f32:--}" \
        "$(j "$W/r.json" validation.ppl_ref)"
    row "$m" "$t" absmean
    row "$m" "$t" "absmean + rank 8" --lowrank 8
    row "$m" "$t" "absmean + rank 32" --lowrank 32
    row "$m" "$t" "gptq, calibrated" --calibrate "$CAL"
    [ "$t" = i2_s ] || row "$m" "$t" "gptq, one scale per tensor" --calibrate "$CAL" --scales tensor
    row "$m" "$t" "gptq + rank 8" --calibrate "$CAL" --lowrank 8
    row "$m" "$t" "gptq + rank 32" --calibrate "$CAL" --lowrank 32
done
