# Model commands: synth a tiny model, generate and perplexity on it (text and --json),
# and their errors (missing, truncated and non-model files; usage; context overflow).
. tests/cli/lib.sh

M="$TMP/tiny.gguf"
expect_exit 0 "synth --shape tiny" -- "$BITNET" synth --shape tiny -o "$M" --seed 7
[ -s "$M" ] && ok "synth wrote the file" || bad "synth wrote no file"
expect_exit 0 "synth --json (tq2_0)" -- "$BITNET" synth --shape tiny -o "$TMP/tq2.gguf" --type tq2_0 --json
"$JSONGET" type n_vocab tensor_bytes <"$TMP/out" >"$TMP/j" && ok "synth --json parses" || bad "synth --json parses"
expect_grep "tq2_0" "$TMP/j" "synth --json names the type"
# --arch bitnet: llama.cpp's architecture name (SiLU), keys under bitnet.*
expect_exit 0 "synth --arch bitnet" -- "$BITNET" synth --shape tiny --arch bitnet -o "$TMP/silu.gguf" --seed 7
"$BITNET" inspect "$TMP/silu.gguf" --json >"$TMP/si.json" 2>/dev/null
grep -q '"general.architecture":[[:space:]]*"bitnet"' "$TMP/si.json" \
    && grep -q '"bitnet.embedding_length":[[:space:]]*256' "$TMP/si.json" \
    && ! grep -q 'bitnet-b1.58' "$TMP/si.json" \
    && ok "synth --arch bitnet names the architecture and its keys bitnet" \
    || bad "synth --arch bitnet: $(grep -o '"[a-z.-]*embedding_length[^,]*' "$TMP/si.json")"
"$BITNET" generate -m "$TMP/silu.gguf" -p "Once" -n 4 -t 1 --temp 0 --json >"$TMP/g1" 2>/dev/null
"$JSONGET" generated_tokens <"$TMP/g1" >"$TMP/gt" 2>/dev/null && [ "$(cat "$TMP/gt")" = 4 ] \
    && ok "the bitnet-arch model loads and generates" || bad "generate on --arch bitnet: $(head -c 200 "$TMP/g1")"
expect_exit 2 "synth with an unknown --arch" -- "$BITNET" synth --shape tiny --arch llama -o "$TMP/x.gguf"
expect_exit 2 "synth without --shape" -- "$BITNET" synth -o "$TMP/x.gguf"
expect_exit 2 "synth with an unknown shape" -- "$BITNET" synth --shape 9b -o "$TMP/x.gguf"
expect_exit 2 "synth with an unknown type" -- "$BITNET" synth --shape tiny --type q4_0 -o "$TMP/x.gguf"
expect_exit 1 "synth with a missing tokenizer.json" -- "$BITNET" synth --shape tiny --tokenizer "$TMP/none.json" -o "$TMP/x.gguf"
expect_one_line_err "synth with a missing tokenizer.json"
expect_exit 0 "help synth" -- "$BITNET" help synth

# generate: streamed text, then a speed line on stderr
expect_exit 0 "generate" -- "$BITNET" generate -m "$M" -p "Once upon a time" -n 8 -t 1 --seed 1
expect_grep "tokens/s" "$TMP/err" "generate reports tokens/s"
expect_exit 0 "generate --json greedy" -- "$BITNET" generate -m "$M" -p "Once upon a time" -n 6 -t 1 --temp 0 --json
if "$JSONGET" text prompt_tokens generated_tokens prompt_tokens_per_s gen_tokens_per_s <"$TMP/out" >"$TMP/j"; then
    ok "generate --json has text, token counts and speeds"
else
    bad "generate --json"
fi
awk 'NR==2 { p = $1 } NR==3 { g = $1 } END { exit !(p == 4 && g == 6) }' "$TMP/j" \
    && ok "4 prompt tokens, 6 generated" || bad "token counts: $(tr '\n' ' ' <"$TMP/j")"
cp "$TMP/out" "$TMP/greedy1"
"$BITNET" generate -m "$M" -p "Once upon a time" -n 6 -t 2 --temp 0 --json >"$TMP/greedy2" 2>/dev/null
"$JSONGET" text <"$TMP/greedy1" >"$TMP/t1"; "$JSONGET" text <"$TMP/greedy2" >"$TMP/t2"
cmp -s "$TMP/t1" "$TMP/t2" && ok "greedy text is the same with 1 and 2 threads" || bad "greedy text differs by threads"
"$BITNET" generate -m "$M" -p "Hello" -n 5 -t 1 --seed 42 --top-k 5 --json >"$TMP/s1" 2>/dev/null
"$BITNET" generate -m "$M" -p "Hello" -n 5 -t 1 --seed 42 --top-k 5 --json >"$TMP/s2" 2>/dev/null
"$JSONGET" text <"$TMP/s1" >"$TMP/t1"; "$JSONGET" text <"$TMP/s2" >"$TMP/t2"
cmp -s "$TMP/t1" "$TMP/t2" && ok "same seed, same text" || bad "same seed gave different text"

# generate: errors
# with no -m, no configured model and no bundled model next to the binary: a usage error
mkdir -p "$TMP/lonely/bin" && cp "$BITNET" "$TMP/lonely/bin/bitnet"
expect_exit 2 "generate without any model" -- env -u BITNET_MODEL XDG_CONFIG_HOME="$TMP/lonely" \
    "$TMP/lonely/bin/bitnet" generate -p hi
expect_exit 2 "generate without -p" -- "$BITNET" generate -m "$M"
expect_exit 2 "generate --temp x" -- "$BITNET" generate -m "$M" -p hi --temp x
expect_exit 2 "generate --top-p 2" -- "$BITNET" generate -m "$M" -p hi --top-p 2
expect_exit 2 "generate with an unknown option" -- "$BITNET" generate -m "$M" -p hi --frob
expect_exit 1 "generate with a missing model" -- "$BITNET" generate -m "$TMP/none.gguf" -p hi
expect_one_line_err "missing model"
expect_grep "none.gguf" "$TMP/err" "the error names the file"
head -c 100000 "$M" >"$TMP/trunc.gguf"
expect_exit 1 "generate with a truncated model" -- "$BITNET" generate -m "$TMP/trunc.gguf" -p hi
expect_one_line_err "truncated model"
expect_exit 1 "generate with a vocabulary-only GGUF" -- "$BITNET" generate -m tests/data/ggml-vocab-gpt-2.gguf -p hi
expect_one_line_err "vocabulary-only GGUF"
expect_exit 1 "generate with a prompt longer than --ctx" -- "$BITNET" generate -m "$M" --ctx 4 -p "one two three four five six seven" -t 1
expect_one_line_err "prompt longer than the context"
expect_grep "context" "$TMP/err" "the error says context"
expect_exit 0 "generate stops when the context is full" -- "$BITNET" generate -m "$M" --ctx 8 -p "one two" -n 50 -t 1 --json
"$JSONGET" stop_reason generated_tokens <"$TMP/out" >"$TMP/j"
expect_grep "context" "$TMP/j" "stop_reason is context"

# perplexity on a text of a few hundred tokens, chunks of 32
i=0; : >"$TMP/text.txt"
while [ $i -lt 12 ]; do
    echo "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun, $i times." >>"$TMP/text.txt"
    i=$((i + 1))
done
expect_exit 0 "perplexity" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 32 -t 1
expect_grep "perplexity:" "$TMP/out" "perplexity prints the estimate"
expect_grep "\[1/" "$TMP/err" "perplexity prints progress per chunk"
expect_exit 0 "perplexity --json" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 32 -t 2 --json --chunks 3
if "$JSONGET" perplexity tokens_scored chunks <"$TMP/out" >"$TMP/j"; then
    ok "perplexity --json has perplexity, tokens_scored, chunks"
else
    bad "perplexity --json"
fi
awk 'NR==1 { p = $1 } NR==2 { n = $1 } NR==3 { c = $1 } END { exit !(p > 1 && n == 45 && c == 3) }' "$TMP/j" \
    && ok "3 chunks of 32 score 45 tokens" || bad "perplexity numbers: $(tr '\n' ' ' <"$TMP/j")"
for h in q6 q4; do
    expect_exit 0 "perplexity --lm-head $h" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 32 -t 2 --chunks 3 --lm-head $h
    expect_grep "(LM head $h," "$TMP/out" "perplexity names the $h head"
done
expect_exit 0 "generate --head q4" -- "$BITNET" generate -m "$M" -p "Once" -n 4 -t 1 --temp 0 --head q4
expect_exit 1 "perplexity on too short a text" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 1024
expect_one_line_err "too short a text"
expect_exit 1 "perplexity with a missing text" -- "$BITNET" perplexity -m "$M" -f "$TMP/none.txt"
expect_one_line_err "missing text"
expect_exit 2 "perplexity without -f" -- "$BITNET" perplexity -m "$M"
expect_exit 2 "perplexity --ctx 0" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 0
expect_exit 1 "perplexity with a truncated model" -- "$BITNET" perplexity -m "$TMP/trunc.gguf" -f "$TMP/text.txt"
expect_one_line_err "perplexity, truncated model"

finish test_model
