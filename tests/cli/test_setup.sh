# bitnet setup: usage errors; no terminal and no --yes is refused; --yes --model writes the
# config (model and threads, other keys kept) after the checks, a generation and a
# benchmark; --json reports every step; a missing or non-GGUF model and a bad config file
# fail without writing; the interactive wizard under tmux (back, skip, Tab completion,
# quit without writing, write).
. tests/cli/lib.sh
export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" BITNET_HISTORY_DB="$TMP/history.db"
unset BITNET_CONFIG BITNET_MODEL BITNET_THREADS
CFG="$TMP/cfg/bitnet/config.json"
M="$TMP/m.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 3 >/dev/null 2>&1 || bad "synth a tiny model"

# ---- usage ------------------------------------------------------------------------------------
expect_exit 0 "setup --help" -- "$BITNET" setup --help
expect_grep "no-bench" "$TMP/out" "  ... lists the options"
expect_exit 2 "setup --frob" -- "$BITNET" setup --frob
expect_exit 2 "setup --yes -t many" -- "$BITNET" setup --yes -t many
expect_exit 2 "setup --yes -t 5000" -- "$BITNET" setup --yes -t 5000
expect_exit 2 "setup --yes --model (no value)" -- "$BITNET" setup --yes --model
expect_exit 2 "setup --json without --yes" -- "$BITNET" setup --json
expect_grep "add --yes" "$TMP/err" "  ... says to add --yes"
expect_exit 2 "setup without a terminal and without --yes" -- sh -c "'$BITNET' setup </dev/null"
expect_grep "no terminal" "$TMP/err" "  ... says there is no terminal"
expect_grep "use --yes" "$TMP/err" "  ... and to use --yes"
[ -f "$CFG" ] && bad "a refused setup wrote the config" || ok "a refused setup writes nothing"

# ---- --yes --------------------------------------------------------------------------------------
mkdir -p "$TMP/cfg/bitnet"
printf '{\n  "ctx": 256\n}\n' >"$CFG"
expect_exit 0 "setup --yes --model M -t 1" -- "$BITNET" setup --yes --model "$M" -t 1
for s in "1/6] Hardware" "2/6] Environment checks" "3/6] Model" "4/6] First generation" \
    "5/6] Benchmark" "6/6] Config"; do
    expect_grep "$s" "$TMP/out" "  ... step [$s"
done
expect_grep '^\$ bitnet doctor --quick' "$TMP/out" "  ... shows the checks it ran"
expect_grep "^summary: " "$TMP/out" "  ... with their summary"
expect_grep "tokens/s" "$TMP/err" "  ... the generation reported its speed"
expect_grep "|    tg16 |" "$TMP/out" "  ... the benchmark's table"
expect_grep "wrote model and threads to $CFG" "$TMP/out" "  ... says where it wrote"
[ "$("$BITNET" config get model 2>/dev/null)" = "$M" ] && ok "config model is the model" \
    || bad "config model: $("$BITNET" config get model 2>&1)"
[ "$("$BITNET" config get threads 2>/dev/null)" = "1" ] && ok "config threads is 1" \
    || bad "config threads: $("$BITNET" config get threads 2>&1)"
[ "$("$BITNET" config get ctx 2>/dev/null)" = "256" ] && ok "the file's other keys are kept" \
    || bad "ctx lost: $(cat "$CFG")"
ls "$TMP/cfg/bitnet" | grep -v '^config.json$' >"$TMP/left"
[ -s "$TMP/left" ] && bad "files left beside the config: $(cat "$TMP/left")" \
    || ok "no temporary file left beside the config"

# ---- --json -------------------------------------------------------------------------------------
expect_exit 0 "setup --yes --json --model M -t 2" -- "$BITNET" setup --yes --json --model "$M" -t 2
if "$JSONGET" steps.0.step steps.0.result.cpu.model steps.1.step steps.1.result.summary.pass \
    steps.2.step steps.2.path steps.2.from steps.3.step steps.3.status \
    steps.3.result.generated_tokens steps.4.step steps.4.status steps.4.result.results.0.test \
    steps.5.step steps.5.status config_file model threads written <"$TMP/out" >"$TMP/j"; then
    ok "--json parses, with every step"
else
    bad "--json: $(head -c 300 "$TMP/out")"
fi
want="hardware|checks|model|$M|--model|generate|ok|24|bench|ok|pp32|config|ok|$CFG|$M|2|true"
got=$(awk 'NR!=2 && NR!=4' "$TMP/j" | tr '\n' '|' | sed 's/|$//')
[ "$got" = "$want" ] && ok "--json: steps, results, file, model, threads, written" \
    || bad "--json fields: $got"
[ "$("$BITNET" config get threads 2>/dev/null)" = "2" ] && ok "--json run wrote threads 2" \
    || bad "threads after --json"

expect_exit 0 "setup --yes --json --no-bench" -- "$BITNET" setup --yes --json --no-bench -m "$M"
"$JSONGET" steps.4.status <"$TMP/out" | grep -qx skipped && ok "--no-bench: the bench step is skipped" \
    || bad "--no-bench step: $("$JSONGET" steps.4 <"$TMP/out")"

# ---- failures write nothing ---------------------------------------------------------------------
cp "$CFG" "$TMP/before.json"
expect_exit 1 "setup --yes with a missing model" -- "$BITNET" setup --yes --model "$TMP/none.gguf"
expect_one_line_err "missing model"
expect_grep "none.gguf" "$TMP/err" "  ... names the file"
printf 'not a model\n' >"$TMP/bad.gguf"
expect_exit 1 "setup --yes with a file that is not GGUF" -- "$BITNET" setup --yes --model "$TMP/bad.gguf"
expect_grep "GGUF" "$TMP/err" "  ... says it is not GGUF"
cmp -s "$CFG" "$TMP/before.json" && ok "failed setups left the config as it was" \
    || bad "config changed by a failed setup"
printf '{"threads": "many"}\n' >"$TMP/badcfg.json"
expect_exit 1 "setup --yes with a bad config file" -- env BITNET_CONFIG="$TMP/badcfg.json" \
    "$BITNET" setup --yes --model "$M"
expect_grep "badcfg.json" "$TMP/err" "  ... names the file"

# ---- interactive, under tmux ---------------------------------------------------------------------
if ! command -v tmux >/dev/null 2>&1; then
    echo "  SKIP interactive setup: tmux is not installed (make deps installs it)"
    finish test_setup
    exit $?
fi
BIN=$(cd "$(dirname "$BITNET")" && pwd)/$(basename "$BITNET")
TM="tmux -L bitnet-setup-$$ -f /dev/null"
trap '$TM kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP PIPE
# wait_for PATTERN DESCRIPTION: until the pane shows PATTERN (grep -E), at most 20 s
wait_for() {
    i=0
    while [ $i -lt 200 ]; do
        $TM capture-pane -p -J -S -200 -t w >"$TMP/pane"
        if grep -Eq -- "$1" "$TMP/pane"; then
            ok "$2"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    bad "$2: /$1/ not on the screen"
    tail -15 "$TMP/pane" | sed 's/^/       |/'
    return 1
}
# prompts N PATTERN: until PATTERN shows on N lines of the pane
prompts() {
    i=0
    while [ $i -lt 200 ]; do
        $TM capture-pane -p -J -S -200 -t w >"$TMP/pane"
        [ "$(grep -Ec -- "$2" "$TMP/pane")" -ge "$1" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
key() { $TM send-keys -t w "$@"; }

rm -f "$CFG"
mkdir -p "$TMP/wd"
cp "$M" "$TMP/wd/tiny-model.gguf"
$TM new-session -d -s w -x 160 -y 50 -c "$TMP/wd" \
    "XDG_CONFIG_HOME='$TMP/cfg' XDG_DATA_HOME='$TMP/data' BITNET_HISTORY_DB='$TMP/history.db' $BIN setup; echo EXIT=\$?; sleep 600"
wait_for "\[Enter\] next  \[q\] quit:" "interactive: the hardware step asks to go on"
key Enter
wait_for "\[Enter\] next  \[b\] back  \[q\] quit:" "interactive: the checks ran, then a prompt"
key b Enter
prompts 2 "\[1/6\] Hardware" && ok "interactive: b goes back to the hardware" || bad "b did not go back"
key Enter
prompts 2 "\[Enter\] next  \[b\] back  \[q\] quit:" || bad "the checks' prompt again"
key Enter
wait_for "Model \[" "interactive: the model prompt"
key "$TMP/wd/nothing.gguf" Enter
wait_for "nothing.gguf: not a file" "interactive: a missing file is refused, with why"
key "tiny-mo" Tab
sleep 0.5
key Enter
wait_for "model: $TMP/wd/tiny-model.gguf" "interactive: Tab completed the file name, opened as GGUF"
wait_for "Threads \[Enter: 0 \(one per core\)" "interactive: the threads prompt"
key 1 Enter
wait_for "\[4/6\] First generation" "interactive: on to the first generation"
key Enter
wait_for "generation: 24 tokens" "interactive: the generation streamed and reported its speed"
wait_for "\[5/6\] Benchmark" "interactive: on to the benchmark"
key s Enter
wait_for "\[Enter\] write  \[b\] back" "interactive: s skipped the benchmark; the config step"
grep -q "threads = 1" "$TMP/pane" && ok "interactive: it shows the threads typed" || bad "threads shown"
key q Enter
wait_for "EXIT=1" "interactive: q quits with exit status 1"
grep -q "nothing was written" "$TMP/pane" && ok "interactive: q says nothing was written" \
    || bad "quit message"
[ -f "$CFG" ] && bad "q wrote the config" || ok "interactive: q wrote no config"

$TM kill-session -t w
$TM new-session -d -s w -x 160 -y 50 -c "$TMP/wd" \
    "XDG_CONFIG_HOME='$TMP/cfg' XDG_DATA_HOME='$TMP/data' BITNET_HISTORY_DB='$TMP/history.db' $BIN setup --model tiny-model.gguf --threads 2 --no-bench; echo EXIT=\$?; sleep 600"
wait_for "\[Enter\] next  \[q\] quit:" "interactive with flags: started"
key Enter
wait_for "\[Enter\] next  \[b\] back  \[q\] quit:" "interactive with flags: the checks"
key Enter
wait_for "Model \[Enter: 1" "interactive with flags: the model prompt"
grep -q "1) given (--model)" "$TMP/pane" && ok "interactive: --model is offered first" \
    || bad "--model not offered first"
key Enter
wait_for "Threads \[Enter: 2;" "interactive: --threads is the default"
key Enter
wait_for "\[4/6\] First generation" "interactive with flags: the generation step"
key s Enter
wait_for "skipped \(--no-bench\)" "interactive: --no-bench skips the benchmark"
key Enter
wait_for "EXIT=0" "interactive: Enter writes the config, exit status 0"
[ "$("$BITNET" config get model 2>/dev/null)" = "$TMP/wd/tiny-model.gguf" ] \
    && ok "interactive: the model written, made absolute" || bad "model: $(cat "$CFG" 2>&1)"
[ "$("$BITNET" config get threads 2>/dev/null)" = "2" ] && ok "interactive: threads 2 written" \
    || bad "threads: $(cat "$CFG" 2>&1)"

finish test_setup
