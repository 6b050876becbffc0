# bitnet tokenize: llama.cpp's vectors through the real binary, flags, JSON, errors.
. tests/cli/lib.sh
V=tests/data

# "Hello world" with GPT-2 is 15496 995 (llama.cpp's ggml-vocab-gpt-2.gguf.out)
expect_exit 0 "tokenize with gpt-2" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --ids-only "Hello world"
[ "$(cat "$TMP/out")" = "15496 995" ] && ok "gpt-2 ids" || bad "gpt-2 ids: $(cat "$TMP/out")"
# " Hello world" with LLaMA SPM is 29871 15043 3186 per the .out vector of that string
expect_exit 0 "tokenize with llama-spm" -- "$BITNET" tokenize -m $V/ggml-vocab-llama-spm.gguf --ids-only "Hello world"
[ "$(cat "$TMP/out")" = "15043 3186" ] && ok "llama-spm ids" || bad "llama-spm ids: $(cat "$TMP/out")"
expect_exit 0 "--bos puts BOS first" -- "$BITNET" tokenize -m $V/ggml-vocab-llama-spm.gguf --bos --ids-only "Hello world"
[ "$(cat "$TMP/out")" = "1 15043 3186" ] && ok "BOS id 1 first" || bad "with BOS: $(cat "$TMP/out")"

# every string of the gpt-2 vector file, through stdin, against the expected ids
awk 'BEGIN{RS="\n__ggml_vocab_test__\n"} {printf "%s", $0 > ("'"$TMP"'/inp." NR)}' $V/ggml-vocab-gpt-2.gguf.inp
i=0; mism=0
while IFS= read -r want; do
    i=$((i + 1))
    [ -f "$TMP/inp.$i" ] || { mism=$((mism + 1)); continue; }
    got=$("$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --ids-only - <"$TMP/inp.$i")
    want=$(echo "$want" | sed 's/^ *//; s/ *$//')
    [ "$got" = "$want" ] || { mism=$((mism + 1)); echo "    string $i: got '$got' want '$want'"; }
done <$V/ggml-vocab-gpt-2.gguf.out
[ "$mism" -eq 0 ] && ok "all $i gpt-2 vectors through the CLI" || bad "$mism of $i gpt-2 vectors differ"

# special tokens: text unless --special
expect_exit 0 "special token as text" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --ids-only "a<|endoftext|>"
n_plain=$(wc -w <"$TMP/out")
expect_exit 0 "special token parsed" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --special --ids-only "a<|endoftext|>"
[ "$(cat "$TMP/out")" = "64 50256" ] && ok "--special gives 50256" || bad "--special: $(cat "$TMP/out")"
[ "$n_plain" -gt 2 ] && ok "without --special it is text" || bad "without --special: $n_plain ids"

expect_exit 0 "tokenize --json" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --json "Hello world"
"$JSONGET" tokens.0 tokens.1 n_tokens pieces.1 <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' '|' <"$TMP/j")" = "15496|995|2| world|" ] && ok "JSON tokens, pieces, n_tokens" ||
    bad "JSON: $(tr '\n' '|' <"$TMP/j")"

# errors
expect_exit 2 "no model" -- "$BITNET" tokenize "Hello"
expect_exit 2 "no text" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf
expect_exit 2 "unknown option" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --frob x
expect_exit 1 "missing model file" -- "$BITNET" tokenize -m "$TMP/none.gguf" "Hello"
expect_one_line_err "missing model file"
head -c 1000 $V/ggml-vocab-gpt-2.gguf >"$TMP/trunc.gguf"
expect_exit 1 "truncated model file" -- "$BITNET" tokenize -m "$TMP/trunc.gguf" "Hello"
expect_one_line_err "truncated model file"
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' >"$TMP/empty.gguf"
expect_exit 1 "GGUF without a tokenizer" -- "$BITNET" tokenize -m "$TMP/empty.gguf" "Hello"
expect_grep "tokenizer" "$TMP/err" "the error names the missing tokenizer"
expect_exit 1 "missing text file" -- "$BITNET" tokenize -m $V/ggml-vocab-gpt-2.gguf --file "$TMP/none.txt"

finish test_tokenize
