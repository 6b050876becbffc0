# Text given with -f (generate, perplexity) is read with a bound of 64 MiB: a larger
# regular file is refused before it is read, a device such as /dev/zero at once (it used
# to read 1 GiB of it); perplexity with a context too small to
# score any token is an error, not "perplexity 0 over 0 tokens".
. tests/cli/lib.sh
export BITNET_CONFIG="$TMP/no-config.json"
export BITNET_HISTORY=0

M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 7 >/dev/null 2>&1 || bad "synth"
i=0; : >"$TMP/text.txt"
while [ $i -lt 20 ]; do
    echo "The quick brown fox jumps over the lazy dog while the cat sleeps, $i times." >>"$TMP/text.txt"
    i=$((i + 1))
done

# ---- perplexity: a context that scores nothing ------------------------------------------
for c in 1 2; do
    expect_exit 1 "perplexity --ctx $c" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx $c -t 1
    expect_one_line_err "perplexity --ctx $c"
    expect_grep "scores no token" "$TMP/err" "perplexity --ctx $c says no token can be scored"
    grep -q "perplexity:" "$TMP/out" && bad "perplexity --ctx $c printed an estimate" ||
        ok "perplexity --ctx $c prints no estimate"
done
expect_exit 0 "perplexity --ctx 3 scores one token per chunk" -- \
    "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 3 --chunks 2 -t 1 --json
[ "$("$JSONGET" tokens_scored <"$TMP/out")" = 2 ] && ok "2 chunks of 3 score 2 tokens" ||
    bad "perplexity --ctx 3: $(cat "$TMP/out")"

# ---- the bound on -f ------------------------------------------------------------------------
for cmd in generate perplexity; do
    expect_exit 1 "$cmd -f /dev/zero" -- "$BITNET" $cmd -m "$M" -f /dev/zero -t 1
    expect_one_line_err "$cmd -f /dev/zero"
    # refused by the bound, or before reading as not a regular file (bitnet/file.h)
    grep -q "/dev/zero.*\(larger than 64 MiB\|not a regular file\)" "$TMP/err" &&
        ok "$cmd -f /dev/zero is refused by name" || bad "$cmd -f /dev/zero: $(cat "$TMP/err")"
done
# a sparse regular file just over the limit: refused from its size, nothing read
dd if=/dev/null of="$TMP/big.txt" bs=1 seek=$((64 * 1024 * 1024 + 1)) 2>/dev/null
expect_exit 1 "generate -f of 64 MiB + 1 byte" -- "$BITNET" generate -m "$M" -f "$TMP/big.txt" -n 1 -t 1
expect_grep "big.txt: larger than 64 MiB" "$TMP/err" "a file over the limit is refused by name"
expect_exit 0 "a small -f still works" -- "$BITNET" generate -m "$M" -f "$TMP/text.txt" -n 2 -t 1 --temp 0
# a pipe is what a user gives on purpose: -f - (standard input) and a FIFO with a writer
"$BITNET" generate -m "$M" -f - -n 2 -t 1 --temp 0 <"$TMP/text.txt" >"$TMP/out" 2>"$TMP/err" &&
    ok "generate -f - reads standard input" || bad "generate -f -: $(cat "$TMP/err")"
cat "$TMP/text.txt" | "$BITNET" perplexity -m "$M" -f - --ctx 16 --chunks 1 -t 1 >"$TMP/out" 2>&1 &&
    ok "perplexity -f - reads a pipe" || bad "perplexity -f -: $(cat "$TMP/out")"
mkfifo "$TMP/fifo"
(cat "$TMP/text.txt" >"$TMP/fifo") &
expect_exit 0 "generate -f FIFO with a writer (as -f <(cmd) gives)" -- \
    timeout -s KILL 20 "$BITNET" generate -m "$M" -f "$TMP/fifo" -n 2 -t 1 --temp 0
wait
head -c $((64 * 1024 * 1024 + 10)) /dev/zero | tr '\0' a >"$TMP/big2.txt"
expect_exit 1 "generate -f - past 64 MiB" -- sh -c "\"\$0\" generate -m \"\$1\" -f - -n 1 -t 1 <\"\$2\"" \
    "$BITNET" "$M" "$TMP/big2.txt"
expect_grep "standard input: larger than 64 MiB" "$TMP/err" "standard input is bounded too"
rm -f "$TMP/big2.txt"
expect_exit 0 "generate --help names the limit" -- "$BITNET" generate --help
expect_grep "64 MiB" "$TMP/out" "generate --help says 64 MiB"

finish test_text_input.sh
