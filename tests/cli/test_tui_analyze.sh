# bitnet tui's analyze pane under tmux (issue 21: "bitnet analyze ... with a TUI view"): on the
# models screen, A runs `bitnet analyze` on the selected model and shows a row per tensor
# (index, name, type, shape, scale, zero %, outliers, SQNR, activation range, output error) in
# the file's order; Right focuses the table, > and < choose the sort column and I flips the
# order (the first row then is the tensor with the largest scale, or zero fraction, as the
# report computes them); e takes extra arguments and a bad one shows analyze's own error;
# Enter goes back to inspect.
. tests/cli/lib.sh

TEST=test_tui_analyze
. tests/cli/tui_lib.sh

M=$(cd assets/models && pwd)/bitnet-tinystories.gguf
mkdir -p "$XDG_CONFIG_HOME/bitnet"
printf '{"threads": 1, "model": "%s"}\n' "$M" >"$XDG_CONFIG_HOME/bitnet/config.json"
"$BIN" analyze "$M" --json >"$TMP/a.json" || bad "bitnet analyze --json"
# first NAME-OF-KEY: the ternary tensor with the largest value of the key
first() {
    python3 -c "import json, sys; d = json.load(open(sys.argv[1])); \
t = [x for x in d['tensors'] if '$1' in x]; print(max(t, key=lambda x: x['$1'])['name'])" "$TMP/a.json"
}
ntens=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))['tensors']))" "$TMP/a.json")
big_scale=$(first scale)
big_zero=$(first zero_frac)

start a --screen models
wait_for a "bitnet-tinystories.gg.* +1.8 MiB" "the models screen lists the model"
keys a A
wait_for a "Analyze: $ntens tensors \\([0-9]+ ternary\\), zero [0-9.]+%, by #" \
    "A: the report's summary in the pane's title, in the file's order" 30
wait_for a "TENSOR +TYPE +SHAPE +SCALE +ZERO% +OUTL +SQNR dB +ACT RANGE +OUT ERR" "the table's columns"
wait_for a " 0 +token_embd.weight +f16 +2048x256 +- +- +[0-9]+ " "row 0: the f16 embedding, its outliers"
wait_for a " 1 +blk.0.attn_q.weight +i2_s +256x256 +0.034[0-9]* +32.4 " "row 1: scale and zero % of attn_q"
keys a Right '>' '>' '>' '>' I
wait_for a "by SCALE" "Right, > > > > I: sorted by scale" 5
sed -n '/TENSOR  *TYPE/{n;p;q}' "$TMP/pane" >"$TMP/row1"
grep -Eq " $big_scale " "$TMP/row1" && ok "the first row is the largest scale ($big_scale)" ||
    bad "first row by scale: $(cat "$TMP/row1")"
keys a '>'
wait_for a "by ZERO%" "> sorts by zero fraction" 5
sed -n '/TENSOR  *TYPE/{n;p;q}' "$TMP/pane" >"$TMP/row1"
grep -Eq " $big_zero " "$TMP/row1" && ok "the first row is the most zeros ($big_zero)" ||
    bad "first row by zeros: $(cat "$TMP/row1")"
keys a Left e C-u '--bogus' Enter
wait_for a "unknown option '--bogus'" "e with a bad argument: analyze's own error in the pane" 20
keys a Enter
wait_for a "GGUF v3, alignment" "Enter goes back to inspect"
keys a q
wait_for a "EXIT=0" "q quits with exit 0 (under ASan: nothing leaked)" 20

# with a float source and calibration text: SQNR and activation ranges
D=$(cd tests/data/convert && pwd)
"$BIN" convert "$D/llama-st" -o "$TMP/llama.gguf" --no-validate >/dev/null 2>&1 || bad "convert llama-st"
printf '{"threads": 1, "model": "%s"}\n' "$TMP/llama.gguf" >"$XDG_CONFIG_HOME/bitnet/config.json"
"$BIN" analyze "$TMP/llama.gguf" --source "$D/llama-st" --calibrate "$D/calib-gpl3-s4-6.txt" \
    --json >"$TMP/a.json" || bad "bitnet analyze --source --calibrate"
q1=$(python3 -c "import json, sys; t = json.load(open(sys.argv[1]))['tensors'][1]; \
print('%.2f [%.3g, %.3g]' % (t['sqnr_db'], t['calibration']['act_min'], t['calibration']['act_max']))" "$TMP/a.json")
start b --screen models
wait_for b "llama.gguf +[0-9.]+ KiB +loaded" "the converted model is listed"
keys b e C-u "--source $D/llama-st --calibrate $D/calib-gpl3-s4-6.txt" Enter
wait_for b "Analyze: [0-9]+ tensors .*SQNR [0-9.]+ dB" "e --source --calibrate: the mean SQNR in the title" 60
wait_for b " 1 +blk.0.attn_q.weight +[a-z0-9_]+ " "row 1 shown"
grep " 1 *blk.0.attn_q.weight" "$TMP/pane" | grep -Fq -- " $q1 " &&
    ok "row 1: its SQNR and activation range as analyze reports them ($q1)" ||
    bad "row 1 lacks '$q1': $(grep " 1 *blk.0.attn_q.weight" "$TMP/pane")"
keys b q
wait_for b "EXIT=0" "q quits with exit 0 after an analysis with a source" 20
finish "$TEST"
