#!/bin/sh
# Reproduces the bundled model assets/models/bitnet-tinystories.gguf and its f32 twin.
#
#   sh assets/models/reproduce.sh [WORKDIR]      (from the repository root, after make)
#
# Training is bit-exact for any thread count, so the result is the same file on any
# x86-64 machine with AVX2+FMA (another GEMM micro-kernel sums in another order). Both
# runs take about 40-60 minutes each on one shared core; they run one after the other
# here (run them side by side on two cores to halve the wall time).
set -e
BITNET=${BITNET:-build/bitnet}
DATA=${DATA:-../shared/data/corpora/tinystories-4mb-lowercase.txt}
W=${1:-train-tinystories}
mkdir -p "$W"

# 1. One story per document: in this slice stories are separated by a single newline and
#    paragraphs by a blank line; mark story ends with the end-of-text token.
perl -0pe 's/(?<!\n)\n(?!\n)/\n<|endoftext|>/g' "$DATA" > "$W/stories.txt"

# 2. The tokenizer: byte-level BPE, 2048 tokens.
"$BITNET" tokenizer train --vocab 2048 -o "$W/tok.gguf" "$W/stories.txt"

# 3. The ternary model (quantization-aware training) and its f32 twin: same shape, data,
#    seed and steps.
COMMON="--data $W/stories.txt --tokenizer $W/tok.gguf --config tiny --steps 1200 --batch 8
        --ctx 256 --lr 2e-3 --seed 1 --eval-every 200 --save-every 200 --log-every 20"
nice -n 10 "$BITNET" train $COMMON --out "$W/ternary"
nice -n 10 "$BITNET" train $COMMON --out "$W/f32" --fp32

# 4. The bundled file (I2_S, as bitnet.cpp's x86 build stores ternary weights).
"$BITNET" train export "$W/ternary/checkpoint.bin" -o "$W/bitnet-tinystories.gguf" --type i2_s
echo "done: $W/bitnet-tinystories.gguf"

# 5. The f32 twin as a float Hugging Face directory (what `bitnet convert` ternarizes after
#    training), with calibration text from the training part and the held-out tail, for the
#    README's ternarization table:
#      TWIN=$W/f32-hf TWIN_CAL=$W/calib.txt TWIN_HELD=$W/heldout.txt \
#      TWIN_PROMPTS=$W/prompts.txt sh scripts/ternarize-table.sh
#    (needs numpy, safetensors, tokenizers; transformers for the f32 row).
"$BITNET" train export "$W/f32/checkpoint.bin" -o "$W/f32.gguf" --type f32
python3 tests/convert/gguf_f32_to_hf.py "$W/f32.gguf" "$W/f32-hf"
head -c 100000 "$W/stories.txt" | sed 's/<|endoftext|>//g' > "$W/calib.txt"
tail -c 200000 "$W/stories.txt" | sed 's/<|endoftext|>//g' > "$W/heldout.txt"
awk 'length($0) >= 60' "$W/heldout.txt" | tail -n +2 | head -32 > "$W/prompts.txt"
echo "done: $W/f32-hf"
