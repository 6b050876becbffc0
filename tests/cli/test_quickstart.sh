# bitnet quickstart: usage errors; with no model one line and exit 1; on a tiny model the
# markdown tutorial shows the three commands and quotes numbers found in their captured
# outputs (--json), the default file in the current directory; a failing command and an
# unwritable file write no tutorial.
. tests/cli/lib.sh
export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" BITNET_HISTORY_DB="$TMP/history.db"
export BITNET_THREADS=1 # bench then runs one thread count
unset BITNET_CONFIG BITNET_MODEL
BIN=$(cd "$(dirname "$BITNET")" && pwd)/$(basename "$BITNET")
M="$TMP/m.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 11 >/dev/null 2>&1 || bad "synth a tiny model"

# ---- usage and no model -------------------------------------------------------------------------
expect_exit 0 "quickstart --help" -- "$BITNET" quickstart --help
expect_grep "bitnet doctor" "$TMP/out" "  ... names the commands it runs"
expect_exit 2 "quickstart --frob" -- "$BITNET" quickstart --frob
expect_exit 2 "quickstart -o (no value)" -- "$BITNET" quickstart -o

# a copy of the program away from the source tree finds no bundled model
mkdir -p "$TMP/bin" && cp "$BIN" "$TMP/bin/bitnet"
expect_exit 1 "quickstart with no model at all" -- "$TMP/bin/bitnet" quickstart -o "$TMP/none.md"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "  ... one line on stderr" || bad "$(wc -l <"$TMP/err") lines"
expect_grep "no model" "$TMP/err" "  ... says there is no model"
expect_grep "bitnet synth --shape tiny -o m.gguf" "$TMP/err" "  ... and how to make one"
expect_exit 1 "quickstart with BITNET_MODEL naming no file" -- env BITNET_MODEL="$TMP/gone.gguf" \
    "$BITNET" quickstart -o "$TMP/none.md"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && ok "  ... one line on stderr" || bad "$(wc -l <"$TMP/err") lines"
expect_grep "gone.gguf" "$TMP/err" "  ... naming the file"
[ -e "$TMP/none.md" ] && bad "a tutorial was written without a model" || ok "no tutorial without a model"

# ---- a run, --json -------------------------------------------------------------------------------
export BITNET_MODEL="$M"
expect_exit 0 "quickstart --json -o FILE" -- "$BITNET" quickstart --json -o "$TMP/q.md"
J="$TMP/q.json"
cp "$TMP/out" "$J"
"$JSONGET" file written model model_from commands.0.name commands.1.name commands.2.name \
    commands.0.exit_code commands.1.exit_code <"$J" >"$TMP/j" && ok "--json parses" \
    || bad "--json: $(head -c 300 "$J")"
[ "$(tr '\n' '|' <"$TMP/j")" = "$TMP/q.md|true|$M|env|generate|bench|doctor|0|0|" ] \
    && ok "--json: file, written, model from BITNET_MODEL, the three commands" \
    || bad "--json fields: $(tr '\n' '|' <"$TMP/j")"
[ -f "$TMP/q.md" ] && ok "the tutorial was written" || bad "no $TMP/q.md"
Q="$TMP/q.md"
"$JSONGET" commands.0.output <"$J" >"$TMP/gen.out"
"$JSONGET" commands.1.output <"$J" >"$TMP/bench.out"
"$JSONGET" commands.2.output <"$J" >"$TMP/doctor.out"
for c in "generate" "bench" "doctor"; do
    line=$("$JSONGET" commands.$(case $c in generate) echo 0 ;; bench) echo 1 ;; *) echo 2 ;; esac).command <"$J")
    grep -qF -- "\$ $line" "$Q" && ok "the tutorial shows: \$ $line" || bad "'\$ $line' not in the tutorial"
done
grep -qF "bitnet generate -p 'once upon a time,' -n 32 --seed 42" "$Q" \
    && ok "  ... as typed at a prompt (quoted, no model path: the default)" || bad "generate line"

# numbers: the speed line of generate, a tg row of bench and doctor's summary, both in the
# captured output and in the tutorial
g=$(grep -o 'generation: [0-9]* tokens, [0-9.]* tokens/s' "$TMP/gen.out")
[ -n "$g" ] && ok "generate's output has its speed line" || bad "no speed in: $(cat "$TMP/gen.out")"
[ "$(grep -cF -- "$g" "$Q")" -ge 2 ] && ok "the tutorial shows and quotes '$g'" \
    || bad "'$g' not shown and quoted in the tutorial"
p=$(grep -o 'prompt: [0-9]* tokens in [0-9.]* s, [0-9.]* tokens/s' "$TMP/gen.out")
grep -qF -- "\`$p\`" "$Q" && ok "the tutorial quotes '$p'" || bad "'$p' not quoted"
tg=$(awk -F'|' '$3 ~ /tg32/ { gsub(/^ +| +$/, "", $4); print $4; exit }' "$TMP/bench.out")
[ -n "$tg" ] && ok "bench's output has a tg32 row ($tg)" || bad "no tg32 row: $(cat "$TMP/bench.out")"
grep -qF -- "\`tg32\` at $tg tokens/s" "$Q" && ok "the tutorial quotes tg32 at $tg tokens/s" \
    || bad "tg32 figure not quoted"
ceil=$(awk -F'|' '/generation ceiling/ { c = 1 } c && $3 ~ /tg32/ { gsub(/ /, "", $6); print $6; exit }' \
    "$TMP/bench.out")
grep -qF -- "could reach $ceil tokens/s" "$Q" && ok "the tutorial quotes the ceiling ($ceil)" \
    || bad "ceiling $ceil not quoted"
s=$(grep '^summary: ' "$TMP/doctor.out")
grep -qF -- "\`$s\`" "$Q" && ok "the tutorial quotes doctor's '$s'" || bad "'$s' not quoted"
# every number the tutorial's prose quotes in backticks is in some output
sed -n 's/.*Here[^`]*`\([^`]*[0-9][^`]*\)`.*/\1/p' "$Q" >"$TMP/quoted"
[ -s "$TMP/quoted" ] || bad "no quoted figures in the prose"
nq=0
while IFS= read -r f; do
    cat "$TMP/gen.out" "$TMP/bench.out" "$TMP/doctor.out" | grep -qF -- "$f" \
        || { bad "quoted '$f' is in no output"; nq=$((nq + 1)); }
done <"$TMP/quoted"
[ "$nq" -eq 0 ] && ok "every figure quoted after 'Here' ($(wc -l <"$TMP/quoted")) is in an output"
for next in "bitnet chat" "bitnet perplexity" "bitnet tui" "bitnet history list"; do
    expect_grep "\`$next" "$Q" "what to try next: $next"
done
n=$(grep -c '^```' "$Q")
[ $((n % 2)) -eq 0 ] && ok "code fences are balanced ($n)" || bad "$n code fences"

# ---- the default file, live output ----------------------------------------------------------------
mkdir -p "$TMP/wd"
expect_exit 0 "quickstart in a directory" -- sh -c "cd '$TMP/wd' && '$BIN' quickstart"
[ -f "$TMP/wd/bitnet-quickstart.md" ] && ok "  ... wrote ./bitnet-quickstart.md" \
    || bad "no ./bitnet-quickstart.md"
expect_grep '^\$ bitnet bench -p 64 -n 32 -r 3' "$TMP/out" "  ... shows each command as it runs"
expect_grep "^summary: " "$TMP/out" "  ... with its output"
expect_grep "wrote bitnet-quickstart.md" "$TMP/out" "  ... and where the tutorial went"
ls "$TMP/wd" | grep -v '^bitnet-quickstart.md$' >"$TMP/left"
[ -s "$TMP/left" ] && bad "files left: $(cat "$TMP/left")" || ok "no temporary file left"
expect_exit 0 "quickstart -m M --json" -- sh -c 'unset BITNET_MODEL; exec "$@"' sh "$BITNET" \
    quickstart -m "$M" --json -o "$TMP/m.md"
"$JSONGET" model_from commands.0.command <"$TMP/out" | tr '\n' '|' >"$TMP/j"
[ "$(cat "$TMP/j")" = "-m|bitnet generate -m $M -p 'once upon a time,' -n 32 --seed 42|" ] \
    && ok "-m is passed to the commands" || bad "-m: $(cat "$TMP/j")"

# ---- failures ------------------------------------------------------------------------------------
printf 'not a model\n' >"$TMP/bad.gguf"
expect_exit 1 "quickstart on a file that is not a model" -- env BITNET_MODEL="$TMP/bad.gguf" \
    "$BITNET" quickstart -o "$TMP/bad.md"
expect_grep "generate.*failed" "$TMP/err" "  ... says which command failed"
[ -e "$TMP/bad.md" ] && bad "a tutorial of a failure was written" || ok "  ... and writes no tutorial"
expect_exit 1 "quickstart -o in a missing directory" -- "$BITNET" quickstart -o "$TMP/no/dir/q.md"
expect_grep "cannot write" "$TMP/err" "  ... says it cannot write"
expect_one_line_err "  ... before running anything"

finish test_quickstart
