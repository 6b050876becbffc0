# Vision models (issue 22, docs/VISION.md): bitnet convert of the tiny ResNet (basic blocks,
# SafeTensors), ResNet (bottleneck, PyTorch .pth), ViT and EfficientNet (torchvision's own
# class, three small MBConv stages) checkpoints of tests/data/vision
# (made by tests/vision/gen_tiny.py with torchvision's blocks and BitNet fake quantization)
# matches PyTorch's own logits on its reference images; bad configs and reference files are
# refused with one line naming the problem; bitnet classify on raw tensors and images.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/vision
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }

for m in tiny-resnet tiny-bottleneck tiny-vit tiny-efficientnet; do
    expect_exit 0 "convert $m" -- "$BITNET" convert "$D/$m" -o "$TMP/$m.gguf" --json -t 2
    cp "$TMP/out" "$TMP/$m.json"
    set -- $(jget "$TMP/$m.json" validation.images validation.top1_agreement)
    [ "$*" = "16 1" ] && ok "$m: 16 reference images, top-1 agreement 1" || bad "$m: $*"
    d=$(jget "$TMP/$m.json" validation.max_abs_diff)
    lt "$d" 1e-4 && ok "$m: logits within 1e-4 of PyTorch's ($d)" || bad "$m: max diff $d"
    a=$(jget "$TMP/$m.json" validation.accuracy_ours)
    [ "$a" = "$(jget "$TMP/$m.json" validation.accuracy_ref)" ] && ok "$m: accuracy as the source's" ||
        bad "$m: accuracy $a"
done
[ "$(jget "$TMP/tiny-bottleneck.json" format)" = pytorch ] && ok "the .pth source read as PyTorch" ||
    bad "format of tiny-bottleneck"
[ "$(jget "$TMP/tiny-vit.json" vision.arch)" = vit ] && ok "report: vision.arch vit" || bad "vision.arch"

# text report
expect_exit 0 "convert (text)" -- "$BITNET" convert "$D/tiny-vit" -o "$TMP/v2.gguf" -t 2
expect_grep "top-1 agreement with the source 100.00%" "$TMP/out" "text report: agreement"

# the history records the conversion
expect_exit 0 "history" -- "$BITNET" history list --command convert --json
expect_grep '"convert"' "$TMP/out" "convert recorded in the history"

# a copy of the source to break
brk() { rm -rf "$TMP/src"; cp -r "$D/$1" "$TMP/src"; }

brk tiny-resnet
rm "$TMP/src/ref_inputs.f32"
expect_exit 0 "no reference files" -- "$BITNET" convert "$TMP/src" -o "$TMP/x.gguf" --force -t 2
expect_grep "no reference outputs" "$TMP/err" "a missing reference is a warning"
expect_exit 0 "--no-validate" -- "$BITNET" convert "$D/tiny-resnet" -o "$TMP/x.gguf" --force --no-validate --json
[ -z "$(jget "$TMP/out" validation 2>/dev/null)" ] && ok "--no-validate: no validation" || bad "validated"

brk tiny-resnet
sed -i 's/"basic"/"weird"/' "$TMP/src/config.json"
expect_exit 1 "unknown block type" -- "$BITNET" convert "$TMP/src" -o "$TMP/b.gguf"
expect_grep '"block" must be "basic" or "bottleneck"' "$TMP/err" "bad block named"
expect_one_line_err "unknown block type"
[ ! -e "$TMP/b.gguf" ] && ok "nothing written" || bad "a file was written"
ls "$TMP" | grep -q 'b.gguf.tmp' && bad "a temporary file is left" || ok "no temporary file left"

brk tiny-resnet
sed -i 's/"widths": \[/"widths": [8, 32], "x": [/' "$TMP/src/config.json"
expect_exit 1 "widths that do not match the weights" -- "$BITNET" convert "$TMP/src" -o "$TMP/b.gguf"
expect_grep "tensor layer2.0.conv1.weight: shape \[16, 8, 3, 3\], config.json gives \[32, 8, 3, 3\]" \
    "$TMP/err" "the mismatching tensor and both shapes named"

brk tiny-vit
head -c 100 "$D/tiny-vit/ref_logits.f32" >"$TMP/src/ref_logits.f32"
expect_exit 1 "short ref_logits.f32" -- "$BITNET" convert "$TMP/src" -o "$TMP/b.gguf"
expect_grep "ref_logits.f32: 100 bytes, expected 16 images x 5 classes" "$TMP/err" "bad reference named"

brk tiny-vit
sed -i 's/"num_heads": 2/"num_heads": 3/' "$TMP/src/config.json"
expect_exit 1 "heads that do not divide the width" -- "$BITNET" convert "$TMP/src" -o "$TMP/b.gguf"
expect_grep "embed_dim/num_heads" "$TMP/err" "bad heads named"

finish test_vision.sh
