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

# inspect loads a vision GGUF as classify does
expect_exit 0 "inspect a vision GGUF" -- "$BITNET" inspect "$TMP/tiny-vit.gguf"
expect_grep "model:     loads (as classify loads it)" "$TMP/out" "inspect: loads as classify loads it"

# ---- classify ----
M="$TMP/tiny-resnet.gguf"
R="$D/tiny-resnet"
expect_exit 0 "classify a PNG and its torchvision tensor" -- \
    "$BITNET" classify -m "$M" "$R/sample.png" "$R/sample.f32" --top 5 --json
cp "$TMP/out" "$TMP/c.json"
[ "$(jget "$TMP/c.json" images)" = 2 ] && ok "two images" || bad "images $(jget "$TMP/c.json" images)"
set -- $(od -An -v -f "$R/sample_logits.f32")
i=0
for want in "$@"; do
    for k in 0 1 2 3 4; do
        [ "$(jget "$TMP/c.json" results.0.top.$k.class)" = "$i" ] || continue
        a=$(jget "$TMP/c.json" results.0.top.$k.logit)
        b=$(jget "$TMP/c.json" results.1.top.$k.logit)
        awk -v a="$a" -v b="$b" -v w="$want" 'BEGIN { d1 = a - w; d2 = b - w;
            exit !(d1 < 1e-4 && d1 > -1e-4 && d2 < 1e-4 && d2 > -1e-4) }' &&
            ok "class $i: PNG and tensor logits within 1e-4 of PyTorch's ($a, $b, $want)" ||
            bad "class $i: $a $b vs PyTorch $want"
    done
    i=$((i + 1))
done
[ "$(jget "$TMP/c.json" results.0.top.0.label)" = class4 ] && ok "labels from the model" || bad "label"

expect_exit 0 "classify 16 raw images, batch 3" -- "$BITNET" classify -m "$M" "$R/ref_inputs.f32" --batch 3 --top 2
cp "$TMP/out" "$TMP/b3"
expect_exit 0 "classify 16 raw images, batch 16" -- "$BITNET" classify -m "$M" "$R/ref_inputs.f32" --batch 16 --top 2
cmp -s "$TMP/out" "$TMP/b3" && ok "batch 3 and 16 give the same output" || bad "batches differ"
[ "$(wc -l <"$TMP/out")" -eq 16 ] && ok "one line per image" || bad "lines: $(wc -l <"$TMP/out")"
expect_grep "ref_inputs.f32\[15\]: " "$TMP/out" "images of a tensor file named FILE[i]"
# PyTorch's top-1 for each reference image
od -An -v -f -w20 "$R/ref_logits.f32" | awk '{ b = 1; for (i = 2; i <= 5; i++) if ($i > $b) b = i;
    print "(" b - 1 ")" }' >"$TMP/want"
sed 's/^[^:]*: [^ ]* \(([0-9]*)\).*/\1/' "$TMP/out" >"$TMP/got"
cmp -s "$TMP/want" "$TMP/got" && ok "top-1 of all 16 as PyTorch's" || bad "top-1 differs from PyTorch"

printf 'a\nb\nc\nd\ne\n' >"$TMP/labels"
expect_exit 0 "--labels" -- "$BITNET" classify -m "$M" "$R/sample.f32" --labels "$TMP/labels" --top 1
expect_grep "sample.f32: e (4) 28.6" "$TMP/out" "label from --labels"
printf 'a\nb\nc\nd\n' >"$TMP/labels4"
expect_exit 1 "--labels with 4 lines" -- "$BITNET" classify -m "$M" "$R/sample.f32" --labels "$TMP/labels4"
expect_grep "4 labels, the model has 5 classes" "$TMP/err" "label count named"

head -c 1000 "$R/sample.f32" >"$TMP/short.f32"
expect_exit 1 "a tensor of the wrong size" -- "$BITNET" classify -m "$M" "$TMP/short.f32"
expect_grep "1000 bytes is not a whole number of 3x16x16 float32 images" "$TMP/err" "size named"
expect_one_line_err "a tensor of the wrong size"
expect_exit 1 "a missing image" -- "$BITNET" classify -m "$M" "$TMP/none.png"
expect_grep "none.png" "$TMP/err" "missing image named"
printf 'not an image' >"$TMP/junk.png"
expect_exit 1 "a file that is not an image" -- "$BITNET" classify -m "$M" "$TMP/junk.png"
expect_one_line_err "a file that is not an image"
expect_exit 1 "a language model" -- "$BITNET" classify -m tests/data/ggml-vocab-gpt-2.gguf "$R/sample.f32"
expect_grep "is not a vision model" "$TMP/err" "not a vision model"
head -c 3000 "$M" >"$TMP/trunc.gguf"
expect_exit 1 "a truncated GGUF" -- "$BITNET" classify -m "$TMP/trunc.gguf" "$R/sample.f32"
expect_one_line_err "a truncated GGUF"
expect_exit 2 "no model" -- "$BITNET" classify "$R/sample.f32"
expect_exit 2 "no inputs" -- "$BITNET" classify -m "$M"
expect_exit 2 "--top 0" -- "$BITNET" classify -m "$M" "$R/sample.f32" --top 0
expect_exit 0 "--help" -- "$BITNET" classify --help
expect_grep "bitnet classify -m MODEL.gguf INPUT" "$TMP/out" "help text"

expect_exit 0 "history of classify" -- "$BITNET" history list --command classify --json
expect_grep '"images_per_s"' "$TMP/out" "classify recorded with its images per second"
expect_grep '"failed"' "$TMP/out" "a failed classify recorded too"

# synth: a random ResNet-18 of the real shape runs through classify
expect_exit 0 "synth --shape resnet18" -- "$BITNET" synth --shape resnet18 -o "$TMP/r18.gguf" --json
[ "$(jget "$TMP/out" params)" = 11689512 ] && ok "resnet18: torchvision's 11689512 parameters" ||
    bad "resnet18 params $(jget "$TMP/out" params)"
head -c $((3 * 224 * 224 * 4)) /dev/zero >"$TMP/zero.f32"
expect_exit 0 "classify with the synthetic ResNet-18" -- "$BITNET" classify -m "$TMP/r18.gguf" "$TMP/zero.f32" --top 3 -t 2
expect_grep "zero.f32: " "$TMP/out" "one line for the image"
expect_exit 2 "synth resnet18 --type" -- "$BITNET" synth --shape resnet18 -o "$TMP/x.gguf" --type tq2_0
expect_grep "takes no --tokenizer, --vocab, --arch or --type" "$TMP/err" "vision shape options refused"

finish test_vision.sh
