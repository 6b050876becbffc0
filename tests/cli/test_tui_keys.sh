# bitnet tui, fields, keys and layout (issue 18), under tmux at 80x24 (the smallest size the
# layout is made for): the key bar along the bottom on every screen, help that wraps at word
# boundaries and scrolls, the status line (cleared on a screen change, a long path shown
# from its end), keys read through terminfo with TERM=vt100 (unknown escape sequences
# dropped whole), Chat's Tab and a reply cut by a full context, text fields whose selected
# value the first key replaces, Setup's model step (the loaded model counts as chosen, a
# file that is not GGUF is refused), and text cut with an ellipsis.
. tests/cli/lib.sh

TEST=test_tui_keys
. tests/cli/tui_lib.sh

mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{}' >"$XDG_CONFIG_HOME/bitnet/config.json"
"$BIN" synth --shape tiny -o "$TMP/m.gguf" >/dev/null 2>&1 || bad "synth a tiny model"

# start80 SESSION COMMAND...: `env COMMAND...` in a fresh 80x24 pane, then prints its status
start80() {
    s=$1
    shift
    $TM kill-session -t "$s" 2>/dev/null
    $TM new-session -d -s "$s" -x 80 -y 24 "env $*; echo EXIT=\$?; sleep 600"
}
row() { cap "$1" | sed -n "${2}p"; } # one row of the pane, from 1

expect_exit 0 "tui --help" -- "$BIN" tui --help
expect_grep "A key bar along the bottom" "$TMP/out" "tui --help: the key bar, text lines, Chat's Tab"

# ---- the key bar on every screen, help, the status line ---------------------------------------
start80 kb "$BIN" tui -m "$TMP/m.gguf"
wait_for kb "m.gguf: idle" "80x24: the UI is up"
for k in F2 F3 F4 F5 F6 F7 F8 F9 F11 F12; do
    keys kb "$k"
    sleep 0.5
    r=$(row kb 24)
    case "$r" in
    "F1 Help "*"F10 Quit") ok "80 columns, $k: the key bar ($r)" ;;
    *) bad "80 columns, $k: no key bar on the last row: '$r'" ;;
    esac
done
keys kb F5
wait_for kb "^F1 Help +Enter inspect +l load +u unload +o open a file .*F10 Quit" \
    "Models: its main keys on the key bar"
keys kb F1
wait_for kb "Help .* 1-[0-9]+ of [0-9]+, Down: more" "help at 80x24: says that it scrolls"
grep -q "type a path" "$TMP/pane" && bad "help at 80x24: the last key should need scrolling" \
    || ok "help at 80x24: the Models help is longer than the box"
wait_for kb "^F1 Help +Esc close +Up Down PgUp PgDn scroll" "help: its keys on the key bar"
keys kb End
wait_for kb "│ /  +type a path \\(Enter takes it\\): the folder shown is" \
    "help: End scrolls to the Models help's last key"
grep -q "of [0-9]*, the end" "$TMP/pane" && ok "help: says it is at the end" || bad "help: the end"
grep -Eq "│ +it and goes on\\) +│" "$TMP/pane" \
    && ok "help: a long line wraps at a word boundary" || bad "help: the wrapped line"
keys kb Escape F4 F1 End
wait_for kb "│ +figures refresh every second +│" \
    "help: Hardware's line wraps at a word, nothing cut (80 columns)"
keys kb Escape F2 g
wait_for kb "graphs: block" "g: the status line says the graph style"
keys kb F4
wait_for kb "Hardware \\(refreshed" "F4: Hardware"
grep -q "graphs: block" "$TMP/pane" && bad "the status line kept the last screen's message" \
    || ok "the status line clears on a screen change"
keys kb q
wait_for kb "EXIT=0" "q quits"

long="$TMP/a-rather-long-folder-name-for-this-test/and-another-long-folder-name-below-it"
mkdir -p "$long"
start80 lp "$BIN" tui -m "$long/missing.gguf" --screen hardware
wait_for lp "…[^ ]*/missing.gguf: cannot open" "a long path on the status line shows its end (…/tail)"
keys lp q

# ---- TERM=vt100: keys through terminfo, unknown sequences dropped whole -------------------------
start80 vt TERM=vt100 "$BIN" tui -m "$TMP/m.gguf" --stats "$TMP/vt.json"
wait_for vt "m.gguf: idle" "TERM=vt100: the UI is up"
keys vt F7
wait_for vt "Benchmark m.gguf" "TERM=vt100: F7 (tmux sends ESC [18~) opens Benchmarks"
keys vt F9
wait_for vt "command +all +\\(f F\\)" "TERM=vt100: F9 opens History"
keys vt -H 1b 5b 32 35 7e    # ESC [25~ (F13), which no terminfo entry here knows
keys vt -H 1b 5b 31 3b 35 43 # ESC [1;5C (Ctrl-Right)
keys vt -H 1b 4f 31 7a       # ESC O1z: an unknown SS3 (ESC O and one byte)
sleep 0.5
keys vt F10
wait_for vt "EXIT=0" "TERM=vt100: F10 quits (not the Dashboard)"
[ "$("$JSONGET" screen <"$TMP/vt.json" 2>/dev/null)" = history ] \
    && ok "TERM=vt100: unknown escape sequences dropped whole (still on History)" \
    || bad "TERM=vt100: unknown sequences were read as keys: $(cat "$TMP/vt.json" 2>&1)"

# ---- Chat: Tab leaves the message line; a reply cut by a full context -----------------------------
start80 ch "$BIN" tui -m "$TMP/m.gguf" --screen chat
wait_for ch "Tab or Esc leaves the message line" "chat: the screen says how to leave the line"
grep -Eq "^F1 Help +Enter send +Tab settings" "$TMP/pane" && ok "chat: the key bar names Tab" \
    || bad "chat: key bar '$(row ch 24)'"
keys ch -l "quit?"
wait_for ch "^> quit\\?" "chat: letters type in the message line (q too)"
keys ch Tab
wait_for ch "^F1 Help +Enter type +Up Down setting" "chat: Tab leaves the message line for the settings"
keys ch Tab
wait_for ch "Benchmark m.gguf" "chat: Tab again goes to the next screen"
keys ch F6
wait_for ch "^> quit\\?" "chat: back in the message line"
keys ch BTab
wait_for ch "─ Models ─" "chat: Shift-Tab leaves the message line for the previous screen"
keys ch q
wait_for ch "EXIT=0" "chat screen: quits"

printf '{"ctx": 32, "seed": 1}\n' >"$TMP/ctx.json"
start80 cf BITNET_CONFIG="$TMP/ctx.json" "$BIN" tui -m "$TMP/m.gguf" --screen chat
wait_for cf "m.gguf: idle" "context 32: the UI is up"
keys cf -l "Hello"
keys cf Enter
wait_for cf "\\(the context is full, 32 of 32 tokens: the reply was cut" \
    "a full context cuts the reply with a note at once" 30
grep -q "stop: context; context 32/32" "$TMP/pane" && ok "  ... and the speed line says stop: context" \
    || bad "stop reason"
keys cf -l "Again"
keys cf Enter
wait_for cf "the context was full: started over" "the next message starts the conversation over" 30
sleep 1
cap cf >"$TMP/pane"
grep -q "conversation was reset" "$TMP/pane" && bad "a reset note with the wrong reason, a turn late" \
    || ok "no late reset note with the wrong reason"
keys cf F10
wait_for cf "EXIT=0" "context 32: quits"

# ---- Setup's model step: the loaded model, typed paths, a file that is not GGUF ------------------
cp "$TMP/m.gguf" "$TMP/other.gguf"
echo "not a model" >"$TMP/notes.gguf"
start80 su XDG_CONFIG_HOME="$TMP/cfg2" "$BIN" tui -m "$TMP/m.gguf"
wait_for su "Setup 1/6: Hardware" "first run: the wizard"
wait_for su "kernels .*chosen for this CPU" "wizard: hardware detected"
keys su n
wait_for su "[0-9]+ checks: [0-9]+ pass" "wizard: checks ran" 30
grep -Eq "config +$TMP/cfg2/bitnet/config.json absent.*… │" "$TMP/pane" \
    && ok "Checks: a detail too long for 80 columns ends in an ellipsis" \
    || bad "Checks ellipsis: $(grep "config  " "$TMP/pane")"
keys su n
wait_for su "chosen: $TMP/m.gguf" "setup step 3: the highlighted, loaded model counts as chosen"
keys su /
wait_for su "path: +/" "setup: / opens a path line holding the folder shown"
keys su -l "$TMP/notes.guf" # typed over the selected folder
keys su Left Left Left
keys su -l g
wait_for su "path: +$TMP/notes.gguf" "a field: typing replaces its selected value; Left moves, a key inserts"
grep -Eq "^F1 Help +Enter done +Esc leave +\\^U clear" "$TMP/pane" \
    && ok "a field: its keys on the key bar" || bad "field keys: '$(row su 24)'"
keys su Enter
wait_for su "notes.gguf: not a GGUF model file" "setup: a file that is not GGUF is refused when chosen"
grep -q "m.gguf: idle" "$TMP/pane" && ok "  ... the loaded model stays loaded" || bad "model unloaded"
keys su Escape
wait_for su "chosen: $TMP/m.gguf" "  ... and the choice stays"
keys su /
keys su -l "garbage"
keys su C-u
keys su -l "$TMP/other.gguf"
keys su Enter
wait_for su "chosen: $TMP/other.gguf" "a field: Ctrl-U clears it"
keys su F10
wait_for su "EXIT=0" "setup: F10 quits"

# ---- text cut with an ellipsis; the tensors' size column -------------------------------------------
cp "$TMP/m.gguf" "$TMP/a-model-with-a-rather-long-file-name.gguf"
start80 el "$BIN" tui -m "$TMP/a-model-with-a-rather-long-file-name.gguf" --screen models
wait_for el "a-model-with-a-rather… " "Models: a long name is cut with an ellipsis"
feat=$("$BIN" hw --json 2>/dev/null | "$JSONGET" cpu.features 2>/dev/null | tr -d '[]"' | tr ',' ' ')
keys el F4
wait_for el "Hardware \\(refreshed" "Hardware at 80 columns"
if [ "${#feat}" -gt 66 ]; then
    grep -Eq "features +.*… *│" "$TMP/pane" && ok "Hardware: the features are cut with an ellipsis" \
        || bad "Hardware features: $(grep features "$TMP/pane")"
fi
keys el q
start tn -m "$TMP/m.gguf" --screen models
wait_for tn "m.gguf .*loaded" "120x40: Models"
keys tn Enter
wait_for tn "GGUF v3, alignment" "models: inspect"
keys tn t
wait_for tn "name, type, size, shape" "tensors: the header names the columns shown"
grep -Eq "blk.0.attn_q.weight +i2_s +[0-9.]+ (B|KiB|MiB) +[0-9]+ x [0-9]+" "$TMP/pane" \
    && ok "tensors: the size column is on the screen" || bad "tensors: no size column"
keys tn q

# a narrow terminal (60 columns, headless): the help puts each key on a row of its own and
# its text below, rather than squeezing it into a column
printf 'F1\nsleep:200\n' >"$TMP/k60"
"$BIN" tui --size 60x20 --keys "$TMP/k60" --dump "$TMP/d60" </dev/null >/dev/null 2>&1
grep -Eq "│ F1 \? +│" "$TMP/d60" && grep -Eq "│   this help \(Esc closes it\)" "$TMP/d60" \
    && ok "help at 60 columns: the key on its own row, its text below" \
    || bad "help at 60 columns: $(cat "$TMP/d60" 2>&1)"

# History's search: the last search is selected when / opens it again (the chats above ran)
start hs --screen history
wait_for hs "chat +ok" "History: the chats of this test"
keys hs /
keys hs -l "zzz-no-such"
keys hs Enter
wait_for hs "no runs match" "History: / searches"
keys hs /
keys hs -l "chat"
keys hs Enter
wait_for hs "chat +ok" "History: a search typed again replaces the last one (not zzz-no-suchchat)"
keys hs q

finish test_tui_keys
