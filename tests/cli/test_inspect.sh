# bitnet inspect: text and JSON output of real and hand-made GGUF files, errors, exit codes.
. tests/cli/lib.sh
C=tests/fuzz/corpus/gguf

expect_exit 0 "inspect the gpt-2 vocabulary" -- "$BITNET" inspect tests/data/ggml-vocab-gpt-2.gguf
expect_grep "tokenizer.ggml.tokens .*\[string x 50257\] \"!\"" "$TMP/out" "string array summarised"
expect_grep "tokenizer.ggml.model .*\"gpt2\"" "$TMP/out" "string value"
expect_grep "^version: *3" "$TMP/out" "version"

expect_exit 0 "inspect --json" -- "$BITNET" inspect --json tests/data/ggml-vocab-llama-spm.gguf
if "$JSONGET" file version alignment tensors <"$TMP/out" >"$TMP/j"; then
    ok "inspect --json parses"
else
    bad "inspect --json parses"
fi
[ "$(sed -n 2p "$TMP/j")" = 3 ] && ok "json version" || bad "json version: $(sed -n 2p "$TMP/j")"
expect_grep '"tokenizer.ggml.model":[[:space:]]*"llama"' "$TMP/out" "json metadata value"
expect_grep '"element_type":[[:space:]]*"string"' "$TMP/out" "json array element type"
expect_grep '"count":[[:space:]]*32000' "$TMP/out" "json array count"

expect_exit 0 "inspect --tensors" -- "$BITNET" inspect "$C/tensors" --tensors
expect_grep "tq2_0 *\[256, 2\] *132" "$TMP/out" "tensor row: type, shape, bytes"
expect_grep "i2_s *\[128, 2\] *96" "$TMP/out" "I2_S tensor size n/4 + 32"
expect_exit 0 "inspect --json --tensors" -- "$BITNET" inspect --json --tensors "$C/model"
if "$JSONGET" tensors.0.name tensors.0.type tensors.0.shape.1 tensors.1.offset <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' ' ' <"$TMP/j")" = "token_embd.weight tq2_0 4 288 " ]; then
    ok "json tensors"
else
    bad "json tensors: $(tr '\n' ' ' <"$TMP/j")"
fi

expect_exit 1 "malformed file" -- "$BITNET" inspect "$C/bad_type99"
expect_one_line_err "malformed file"
expect_grep "^bitnet inspect: $C/bad_type99: tensor 't': unknown type id 99$" "$TMP/err" "error names the file and type id"
expect_exit 1 "truncated file" -- "$BITNET" inspect "$C/bad_truncated_vocab"
expect_exit 1 "missing file" -- "$BITNET" inspect "$TMP/none.gguf"
expect_grep "cannot open" "$TMP/err" "missing file message"
expect_exit 2 "no file" -- "$BITNET" inspect
expect_exit 2 "two files" -- "$BITNET" inspect a b
expect_exit 2 "unknown option" -- "$BITNET" inspect --frob x
# ---- whether the file loads as a model: the model loader decides, as for generate ----------
B=assets/models/bitnet-tinystories.gguf
expect_exit 0 "inspect the bundled model" -- "$BITNET" inspect "$B"
expect_grep "^model: *loads" "$TMP/out" "the bundled model loads"
expect_exit 0 "inspect --json the bundled model" -- "$BITNET" inspect --json "$B"
"$JSONGET" loadable problem <"$TMP/out" >"$TMP/j" && [ "$(tr '\n' ' ' <"$TMP/j")" = "true null " ] &&
    ok "json: loadable true, problem null" || bad "bundled model json: $(tr '\n' ' ' <"$TMP/j")"
# a well-formed GGUF that generate refuses: exit 0 (it reads), but it says why it does not load
expect_exit 0 "inspect a GGUF that is not a model" -- "$BITNET" inspect "$C/model"
expect_grep "^model: *does not load: bitnet-b1.58.context_length: missing$" "$TMP/out" \
    "the text says it does not load, and why"
expect_exit 0 "inspect --json a GGUF that is not a model" -- "$BITNET" inspect --json "$C/model"
"$JSONGET" loadable problem <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' ' ' <"$TMP/j")" = "false bitnet-b1.58.context_length: missing " ] &&
    ok "json: loadable false with the problem" || bad "not-a-model json: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "inspect a vocabulary file" -- "$BITNET" inspect tests/data/ggml-vocab-gpt-2.gguf
expect_grep "^model: *does not load: unsupported architecture 'gpt2'" "$TMP/out" "a vocabulary is no model"
# a real model with one tensor renamed (same length, so the file stays well-formed)
M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 7 >/dev/null 2>&1 || bad "synth"
if command -v perl >/dev/null 2>&1; then
    perl -0777 -pe 's/blk\.1\.ffn_up\.weight/blk.1.ffn_up.weighx/' <"$M" >"$TMP/miss.gguf"
    expect_exit 1 "generate refuses the model missing a tensor" -- "$BITNET" generate -m "$TMP/miss.gguf" -p hi -n 1
    cp "$TMP/err" "$TMP/gen_err"
    expect_exit 0 "inspect the model missing a tensor" -- "$BITNET" inspect --json "$TMP/miss.gguf"
    "$JSONGET" loadable problem <"$TMP/out" >"$TMP/j" &&
        [ "$(tr '\n' ' ' <"$TMP/j")" = "false blk.1.ffn_up.weight: missing " ] &&
        ok "json: loadable false, the missing tensor named" || bad "missing tensor json: $(tr '\n' ' ' <"$TMP/j")"
    grep -q "blk.1.ffn_up.weight: missing" "$TMP/gen_err" && ok "generate gives the same reason" ||
        bad "generate said: $(cat "$TMP/gen_err")"
else
    echo "  skip the renamed tensor: no perl"
fi
expect_exit 0 "inspect the synthesized model" -- "$BITNET" inspect "$M"
expect_grep "^model: *loads" "$TMP/out" "a synthesized model loads"

expect_exit 0 "inspect --help" -- "$BITNET" inspect --help
expect_exit 0 "help inspect" -- "$BITNET" help inspect

finish test_inspect
