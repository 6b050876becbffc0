# bitnet image info / prep: the decoders and transforms through the real binary on the photos
# and edge cases of tests/images (SOURCES.md), hostile files, flags, JSON, and a comparison
# with Pillow and torchvision (tests/cli/image_ref.py; skipped without Pillow and numpy).
. tests/cli/lib.sh
I=tests/images

expect_exit 0 "info on a JPEG" -- "$BITNET" image info $I/chelsea.jpg
expect_grep "chelsea.jpg: JPEG 451x300 RGB, 8-bit" "$TMP/out" "info: format, size, mode"
expect_exit 0 "info on a progressive JPEG, CMYK, 16-bit, interlaced, EXIF" -- "$BITNET" image info \
    $I/coffee-progressive.jpg $I/cmyk.jpg $I/rgb16.png $I/interlaced.png $I/exif-6.jpg $I/palette.png
expect_grep "JPEG 600x400 RGB, 8-bit, progressive" "$TMP/out" "info: progressive"
expect_grep "cmyk.jpg: JPEG 150x100 CMYK" "$TMP/out" "info: CMYK"
expect_grep "rgb16.png: PNG 64x48 RGB, 16-bit" "$TMP/out" "info: 16-bit"
expect_grep "interlaced.png: PNG 37x29 RGB, 8-bit, interlaced" "$TMP/out" "info: interlaced"
expect_grep "exif-6.jpg: .*EXIF orientation 6" "$TMP/out" "info: EXIF orientation"
expect_grep "palette.png: PNG 120x80 P, 8-bit, alpha" "$TMP/out" "info: palette with tRNS"
expect_exit 0 "info --json" -- "$BITNET" image info --json $I/exif-6.png $I/bomb.png
"$JSONGET" 0.format 0.width 0.height 0.orientation 1.width 1.height <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' '|' <"$TMP/j")" = "PNG|40|24|6|100000|100000|" ] &&
    ok "JSON: PNG eXIf orientation; a bomb's header is described" || bad "JSON: $(tr '\n' '|' <"$TMP/j")"

# prep: shapes, orientation, grey, ImageNet, raw, JSON
expect_exit 0 "prep --imagenet" -- "$BITNET" image prep $I/chelsea.jpg --imagenet -o "$TMP/x.f32"
[ "$(wc -c <"$TMP/x.f32")" -eq $((3 * 224 * 224 * 4)) ] && ok "3x224x224 float32 written" ||
    bad "tensor size $(wc -c <"$TMP/x.f32")"
expect_exit 1 "an existing output is kept without --force" -- "$BITNET" image prep $I/chelsea.jpg -o "$TMP/x.f32"
expect_grep "exists" "$TMP/err" "names the existing output"
expect_exit 0 "prep --json on a rotated image" -- "$BITNET" image prep $I/exif-6.jpg --json
"$JSONGET" decoded_width decoded_height orientation shape.0 <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' '|' <"$TMP/j")" = "24|40|6|3|" ] && ok "orientation 6 turns 40x24 into 24x40" ||
    bad "rotated: $(tr '\n' '|' <"$TMP/j")"
expect_exit 0 "prep --no-exif" -- "$BITNET" image prep $I/exif-6.jpg --no-exif --json
"$JSONGET" decoded_width <"$TMP/out" | grep -qx 40 && ok "--no-exif keeps 40x24" || bad "--no-exif: $(cat "$TMP/out")"
expect_exit 0 "prep --grey --size 28x28 --raw" -- "$BITNET" image prep $I/coffee-progressive.jpg --grey \
    --size 28x28 --raw -o "$TMP/g.u8"
[ "$(wc -c <"$TMP/g.u8")" -eq 784 ] && ok "784 grey bytes" || bad "grey bytes $(wc -c <"$TMP/g.u8")"
expect_exit 0 "prep --crop larger than the image pads" -- "$BITNET" image prep $I/1x1.png --crop 3 --raw \
    -o "$TMP/p.u8"
[ "$(od -An -tu1 -v "$TMP/p.u8" | tr -s ' \n' ' ')" = " 0 0 0 0 0 0 0 0 0 0 0 0 200 30 90 0 0 0 0 0 0 0 0 0 0 0 0 " ] &&
    ok "1x1 padded to 3x3 with the pixel in the middle" || bad "padded: $(od -An -tu1 "$TMP/p.u8")"

# hostile and unsupported files: one line, exit 1, no output file
for f in bomb.png:"over the limit" bomb.jpg:"over the limit" truncated.jpg:"truncated JPEG" \
    truncated.png:"truncated PNG" wrongsize.png:"bad PNG data" garbage.bin:"not a JPEG or PNG" \
    empty.jpg:"empty file" notjpeg.gif:"a GIF image"; do
    name=${f%%:*} msg=${f#*:}
    expect_exit 1 "prep refuses $name" -- "$BITNET" image prep $I/$name -o "$TMP/bad.out"
    expect_grep "$msg" "$TMP/err" "$name: '$msg'"
    expect_one_line_err "$name"
    [ ! -e "$TMP/bad.out" ] && ok "$name: no output written" || bad "$name: output written"
done
expect_exit 1 "--max-pixels refuses a larger image" -- "$BITNET" image prep $I/chelsea.jpg --max-pixels 1000
expect_grep "451x300 pixels is over the limit of 1000" "$TMP/err" "names the size and the limit"
expect_exit 1 "a missing file" -- "$BITNET" image info $I/nope.png
expect_exit 1 "a folder" -- "$BITNET" image prep $I

# usage errors
expect_exit 2 "no subcommand" -- "$BITNET" image
expect_exit 2 "unknown subcommand" -- "$BITNET" image resize x
expect_exit 2 "prep without FILE" -- "$BITNET" image prep --resize 3
expect_exit 2 "--resize 0" -- "$BITNET" image prep $I/1x1.png --resize 0
expect_exit 2 "--size without x" -- "$BITNET" image prep $I/1x1.png --size 28
expect_exit 2 "--mean without --std" -- "$BITNET" image prep $I/1x1.png --mean 0.5
expect_exit 2 "--std 0" -- "$BITNET" image prep $I/1x1.png --mean 0.5 --std 0
expect_exit 2 "--background not hex" -- "$BITNET" image prep $I/1x1.png --background red
expect_exit 0 "image --help" -- "$BITNET" image --help
expect_grep "image prep FILE" "$TMP/out" "help names prep"

# against Pillow and torchvision: every photo and edge case decoded, resized, cropped and
# normalised as they do (tolerance and cases: tests/cli/image_ref.py)
if python3 -c "import PIL, numpy" 2>/dev/null; then
    if python3 tests/cli/image_ref.py "$BITNET" $I "$TMP" >"$TMP/ref" 2>&1; then
        ok "$(tail -1 "$TMP/ref" | sed 's/^ *//') ($(head -1 "$TMP/ref" | sed 's/^ *//'))"
    else
        bad "against Pillow/torchvision:"; grep -v "^  ok" "$TMP/ref" | head -20
    fi
else
    echo "  SKIP the comparison with Pillow: python3 with Pillow and numpy is not installed" \
        "(scripts/deps.sh installs them)"
fi
finish test_image.sh
