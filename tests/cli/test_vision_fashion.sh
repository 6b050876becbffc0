# The bundled Fashion-MNIST classifiers (assets/vision, issue 22) against the PyTorch models
# they were converted from (tests/data/vision/fashion-resnet and fashion-vit, trained by
# tests/vision/gen_fashion.py):
# - bitnet convert of the committed source validates against PyTorch's logits (64 images) and
#   gives a file that classifies those images exactly as the bundled one does; so does the
#   source's ONNX export (tests/data/vision/onnx), to the bundled file's bytes;
# - the first 4 test images as PNG files give the classes and probabilities of their tensors;
# - on the test images of Debian's dataset-fashion-mnist (SKIP without it), normalised here
#   bit for bit as PyTorch did, classify agrees with PyTorch's committed predictions on >= 99%
#   and is within 1 point of its accuracy. FASHION_N images (default the first 1,000, a few
#   seconds; FASHION_N=10000 is the full test set, what the model card reports).
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db" BITNET_CONFIG="$TMP/no-config.json"
FM=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
N=${FASHION_N:-1000}
A=${FASHION_ASSETS:-assets/vision}
D=${FASHION_SRC:-tests/data/vision}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 >= b + 0) }'; }
# the class numbers of classify --top 1's text output, one a line
classes() { sed -n 's/.*(\([0-9]*\)) [0-9.]*%$/\1/p' "$1"; }
bytes() { od -An -v -tu1 -w1 "$1" | tr -d ' '; }

(cd "$A" && sha256sum -c --quiet SHA256SUMS) >"$TMP/sum" 2>&1 && ok "assets/vision SHA256SUMS" ||
    bad "assets/vision SHA256SUMS: $(head -1 "$TMP/sum")"

for m in resnet vit; do
    expect_exit 0 "convert fashion-$m" -- \
        "$BITNET" convert "$D/fashion-$m" -o "$TMP/$m.gguf" --json -t 2
    set -- $("$JSONGET" validation.images validation.top1_agreement <"$TMP/out")
    [ "$*" = "64 1" ] && ok "fashion-$m: top-1 as PyTorch on its 64 reference images" ||
        bad "fashion-$m validation: $*"
    expect_exit 0 "classify the reference images (bundled)" -- \
        "$BITNET" classify -m "$A/fashion-$m.gguf" "$D/fashion-$m/ref_inputs.f32" --top 3 -t 2
    mv "$TMP/out" "$TMP/bundled"
    expect_exit 0 "classify them (converted now)" -- \
        "$BITNET" classify -m "$TMP/$m.gguf" "$D/fashion-$m/ref_inputs.f32" --top 3 -t 2
    cmp -s "$TMP/out" "$TMP/bundled" &&
        ok "fashion-$m: the bundled file is what convert makes of the source" ||
        bad "fashion-$m: the bundled file classifies otherwise than a fresh conversion"
done
# the same models exported by torch.onnx.export (tests/vision/export_onnx.py; TorchScript
# exporter, which names a tensor equal to another through an Identity node): convert reads the
# ONNX file beside the same config.json and reference files and writes the bundled bytes
for m in resnet vit; do
    mkdir -p "$TMP/onnx-$m"
    cp "$D/onnx/fashion-$m.onnx" "$TMP/onnx-$m/model.onnx"
    cp "$D/fashion-$m/config.json" "$D/fashion-$m"/ref_* "$TMP/onnx-$m/"
    expect_exit 0 "convert the ONNX export of fashion-$m" -- \
        "$BITNET" convert "$TMP/onnx-$m" -o "$TMP/onnx-$m.gguf" --json -t 2
    set -- $("$JSONGET" format validation.top1_agreement <"$TMP/out")
    [ "$*" = "onnx 1" ] && ok "fashion-$m from ONNX: top-1 as PyTorch on its 64 reference images" ||
        bad "fashion-$m from ONNX: $*"
    cmp -s "$TMP/onnx-$m.gguf" "$A/fashion-$m.gguf" &&
        ok "fashion-$m from ONNX: the bundled file's bytes" ||
        bad "fashion-$m from ONNX: other bytes than the bundled file"
done
# the first test images as PNG files (tests/data/vision/fashion-samples, their pixels
# unchanged): decoded and normalised by classify into exactly the tensors PyTorch got, so the
# same classes and probabilities as those tensors
P=$D/fashion-samples
for m in resnet vit; do
    head -c $((4 * 784 * 4)) "$D/fashion-$m/ref_inputs.f32" >"$TMP/four.f32"
    expect_exit 0 "classify 4 PNG test images (fashion-$m)" -- "$BITNET" classify \
        -m "$A/fashion-$m.gguf" "$P/t10k-0.png" "$P/t10k-1.png" "$P/t10k-2.png" "$P/t10k-3.png" \
        --top 3 -t 2
    sed 's/^[^ ]*: //' "$TMP/out" >"$TMP/png"
    expect_exit 0 "classify their tensors" -- "$BITNET" classify -m "$A/fashion-$m.gguf" \
        "$TMP/four.f32" --top 3 -t 2
    sed 's/^[^ ]*: //' "$TMP/out" | cmp -s - "$TMP/png" && [ "$(wc -l <"$TMP/png")" -eq 4 ] &&
        ok "fashion-$m: PNGs classified as PyTorch's tensors of them ($(head -1 "$TMP/png"))" ||
        bad "fashion-$m: the PNGs classify otherwise than their tensors"
done

expect_exit 0 "--labels the bundled labels file" -- "$BITNET" classify -m "$A/fashion-vit.gguf" \
    "$D/fashion-vit/ref_inputs.f32" --top 3 -t 2 --labels "$A/fashion-labels.txt"
cmp -s "$TMP/out" "$TMP/bundled" && ok "labels file = the model's labels" ||
    bad "the labels file differs from the model's labels"

if [ ! -r "$FM/t10k-images-idx3-ubyte.gz" ] || [ ! -r "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    echo "  SKIP the test images: no Fashion-MNIST in $FM (apt-get install dataset-fashion-mnist)"
    finish test_vision_fashion
    exit $?
fi
# ToTensor + Normalize(0.2860, 0.3530) one f32 operation at a time (as torch computes it on a
# float32 tensor), through a table of the 256 pixel values: the exact tensor PyTorch was given
gzip -dc "$FM/t10k-images-idx3-ubyte.gz" | head -c $((16 + N * 784)) | perl -e '
    sub f { unpack("f", pack("f", $_[0])) }
    binmode STDIN; binmode STDOUT;
    read(STDIN, my $h, 16) == 16 or die "short IDX header\n";
    my ($m, $s) = (f(0.2860), f(0.3530));
    my @t = map { pack("f<", f(f(f($_ / 255) - $m) / $s)) } 0 .. 255;
    my $b;
    print join("", @t[unpack("C*", $b)]) while read(STDIN, $b, 784) == 784;' >"$TMP/test.f32"
gzip -dc "$FM/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$N" >"$TMP/labels.u8"
bytes "$TMP/labels.u8" >"$TMP/labels"
[ "$(wc -c <"$TMP/test.f32")" -eq $((N * 784 * 4)) ] && ok "$N test images" || bad "test images"

for m in resnet vit; do
    expect_exit 0 "classify $N test images (fashion-$m)" -- "$BITNET" classify \
        -m "$A/fashion-$m.gguf" "$TMP/test.f32" --top 1 --batch 50 -t 2
    classes "$TMP/out" >"$TMP/ours"
    head -c "$N" "$D/fashion-$m/test_pred.u8" >"$TMP/ref.u8"
    bytes "$TMP/ref.u8" >"$TMP/ref"
    [ "$(wc -l <"$TMP/ours")" -eq "$N" ] && ok "fashion-$m: $N predictions" || bad "predictions"
    set -- $(paste -d' ' "$TMP/ours" "$TMP/ref" "$TMP/labels" | awk '
        { n++; a += ($1 == $2); o += ($1 == $3); r += ($2 == $3) }
        END { if (n) printf "%.4f %.4f %.4f", a / n, o / n, r / n }')
    echo "  fashion-$m on $N test images: agreement $1, accuracy ours $2, PyTorch $3"
    ge "$1" 0.99 && ok "fashion-$m: agreement with PyTorch $1 >= 0.99" ||
        bad "fashion-$m: agreement $1"
    ge "$2" "$(awk -v r="$3" 'BEGIN { print r - 0.01 }')" &&
        ok "fashion-$m: accuracy $2 within 1 point of PyTorch's $3" ||
        bad "fashion-$m: accuracy $2 vs PyTorch $3"
    ge "$3" 0.8 && ok "fashion-$m: a trained model (PyTorch's accuracy $3)" ||
        bad "fashion-$m: PyTorch accuracy $3"
done
finish test_vision_fashion
