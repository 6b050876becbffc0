#!/bin/sh
# scripts/bench-vision.py (make bench-vision) briefly: ResNet-18 at 64x64 instead of 224 (a
# quick check of the script, not a measurement), one round of one batch of 1 and 2 images on
# one thread: the model made, converted and validated against PyTorch, both engines timed,
# their memory measured; and its usage errors. Needs python3 with torch, onnx, onnxruntime,
# numpy and safetensors (PyPI): SKIP without. (Speed is not judged here.)
. "$(dirname "$0")/lib.sh"
if ! python3 -c "import torch, onnx, onnxruntime, numpy, safetensors" 2>/dev/null; then
    echo "  SKIP test_bench_vision: needs python3 with torch, onnx, onnxruntime, numpy, safetensors"
    finish test_bench_vision
    exit
fi
W=$TMP/work
expect_exit 0 "bench-vision.py --size 64, batches 1 and 2" -- python3 scripts/bench-vision.py \
    --bitnet "$BITNET" --work "$W" --size 64 --rounds 1 --iters 1 --batches 1,2 --threads 1 --json
j() { "$JSONGET" "$@" <"$TMP/out"; }
set -- $(j validation.images validation.top1_agreement)
[ "$*" = "4 1" ] && ok "convert validated the ResNet-18 against PyTorch (4 images, top-1 1)" ||
    bad "validation: $*"
[ "$(j results.1.batch)" = 2 ] && [ -z "$(j results.2.batch 2>/dev/null)" ] &&
    ok "two cells (batch 1 and 2)" || bad "cells: $(cat "$TMP/out")"
pos() { awk -v a="$1" 'BEGIN { exit !(a + 0 > 0) }'; }
for k in bitnet_images_per_s ort_images_per_s bitnet_rss_mb ort_rss_mb; do
    v=$(j results.1.$k)
    pos "$v" && ok "$k measured ($v)" || bad "$k: '$v'"
done
expect_exit 0 "the table (the model kept from the first run)" -- python3 scripts/bench-vision.py \
    --bitnet "$BITNET" --work "$W" --size 64 --rounds 1 --iters 1 --batches 1 --threads 1
grep -Eq '^\| 1 \| 1 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| [0-9]+ \| [0-9]+ \|' "$TMP/out" &&
    ok "the table: batch 1, one thread, both engines" || bad "table: $(cat "$TMP/out")"
expect_grep "ResNet-18 64x64" "$TMP/out" "the table names the model"
expect_exit 2 "an unknown option" -- python3 scripts/bench-vision.py --frames 3
expect_exit 1 "--iters 0" -- python3 scripts/bench-vision.py --bitnet "$BITNET" --iters 0
expect_one_line_err "--iters 0"
finish test_bench_vision
