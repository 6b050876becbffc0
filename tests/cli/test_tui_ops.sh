# bitnet tui for operators and scripts, driven headless (no terminal, no tmux): a virtual
# screen (--size, COLUMNS/LINES) with --keys, --max-frames, --stats and --dump under setsid
# with stdin from /dev/null; settings that persist in the config (tui.* keys); the
# dashboard's system meters and bitnet processes; sorting, columns and filters of History
# and of the conversion queue.
. tests/cli/lib.sh

export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" BITNET_HISTORY_DB="$TMP/history.db"
export LANG=C.UTF-8 LC_ALL=C.UTF-8
unset BITNET_CONFIG NO_COLOR BITNET_MODEL COLUMNS LINES
BIN=$(cd "$(dirname "$BITNET")" && pwd)/$(basename "$BITNET")
CFG="$XDG_CONFIG_HOME/bitnet/config.json"
mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{}' >"$CFG"

# tui NAME ARGS...: a headless run with no controlling terminal (setsid, stdin /dev/null);
# the last frame in $TMP/NAME.txt, the figures in $TMP/NAME.json, the exit status in $rc
tui() {
    n=$1
    shift
    setsid "$BIN" tui --dump "$TMP/$n.txt" --stats "$TMP/$n.json" "$@" </dev/null \
        >"$TMP/$n.out" 2>"$TMP/$n.err"
    rc=$?
}
# script NAME LINES...: a keys file
script() {
    n=$1
    shift
    printf '%s\n' "$@" >"$TMP/$n.keys"
}

# ---- headless runs ---------------------------------------------------------------------------
script h1 F4 "sleep:200"
tui h1 --keys "$TMP/h1.keys" --size 100x30
[ "$rc" -eq 0 ] && ok "headless: --keys with no terminal runs (exit 0)" \
    || bad "headless --keys: exit $rc: $(cat "$TMP/h1.err")"
[ "$(wc -l <"$TMP/h1.txt")" -eq 30 ] && ok "headless: --dump writes 30 rows" \
    || bad "headless dump rows: $(wc -l <"$TMP/h1.txt")"
grep -q "Hardware (refreshed" "$TMP/h1.txt" && ok "headless: F4 opened Hardware" \
    || bad "headless: Hardware not in the dump"
[ "$(wc -L <"$TMP/h1.txt")" -le 100 ] \
    && ok "headless: no row wider than 100" || bad "headless: a row wider than --size"
"$JSONGET" headless lines cols screen <"$TMP/h1.json" >"$TMP/j" 2>&1
[ "$(tr '\n' ' ' <"$TMP/j")" = "true 30 100 hardware " ] && ok "headless: --stats says 100x30 on hardware" \
    || bad "headless stats: $(tr '\n' ' ' <"$TMP/j")"

tui h2 --max-frames 3
[ "$rc" -eq 0 ] && ok "headless: --max-frames alone with no terminal ends (exit 0)" \
    || bad "headless --max-frames: exit $rc"
[ "$("$JSONGET" frames cols lines <"$TMP/h2.json" | tr '\n' ' ')" = "3 80 24 " ] \
    && ok "headless: 3 frames on the default 80x24" || bad "h2 stats: $(cat "$TMP/h2.json")"
COLUMNS=64 LINES=20 tui h3 --max-frames 1
[ "$("$JSONGET" cols lines <"$TMP/h3.json" | tr '\n' ' ')" = "64 20 " ] \
    && ok "headless: the size from COLUMNS and LINES" || bad "h3 stats: $(cat "$TMP/h3.json")"
TERM=dumb tui h4 --max-frames 1 --size 90x25 --no-unicode
[ "$rc" -eq 0 ] && grep -q '^+-' "$TMP/h4.txt" && ok "headless: TERM=dumb is no obstacle (ASCII frame)" \
    || bad "headless TERM=dumb: exit $rc"

script bad F99
tui bad --keys "$TMP/bad.keys"
[ "$rc" -eq 2 ] && ok "headless: a bad keys file is a usage error (exit 2)" || bad "bad keys: exit $rc"
grep -q "bad.keys:1: unknown step 'F99'" "$TMP/bad.err" && ok "  ... naming the file, line and step" \
    || bad "bad keys message: $(cat "$TMP/bad.err")"
tui missing --keys "$TMP/none.keys"
[ "$rc" -eq 2 ] && ok "headless: a missing keys file: exit 2" || bad "missing keys: exit $rc"
expect_exit 2 "--size 0x4" -- "$BIN" tui --size 0x4
expect_grep "is not COLSxROWS" "$TMP/err" "  ... says the form"
expect_exit 2 "--size 80x" -- "$BIN" tui --size 80x
expect_exit 1 "no terminal and no script: refused" -- setsid "$BIN" tui
expect_grep "not a terminal" "$TMP/err" "  ... says why"
expect_exit 0 "tui --help" -- "$BIN" tui --help
expect_grep "--size COLSxROWS" "$TMP/out" "tui --help names --size"
expect_grep "--dump FILE" "$TMP/out" "tui --help names --dump"

# ---- settings persist in the config ---------------------------------------------------------
# g: braille -> block, w: 60 s -> 5 min, ]: 1 s -> 2 s; each saved at once, atomically
script s1 g w "]"
tui s1 --keys "$TMP/s1.keys" --size 100x30
"$JSONGET" tui.graph tui.graph_window tui.refresh <"$CFG" >"$TMP/j" 2>&1
[ "$(tr '\n' ' ' <"$TMP/j")" = "block 300s 2s " ] && ok "settings: g, w and ] saved as tui.graph, tui.graph_window, tui.refresh" \
    || bad "settings saved: $(cat "$CFG")"
ls "$XDG_CONFIG_HOME/bitnet" | grep -v '^config.json$' >"$TMP/left"
[ ! -s "$TMP/left" ] && ok "settings: no temporary file left beside config.json" || bad "left: $(cat "$TMP/left")"
"$BIN" validate >/dev/null 2>&1 && ok "settings: the saved config validates" || bad "validate after saving"
# read at start: the window on every graph's axis, the style in the help's footer
script s2 "?"
tui s2 --keys "$TMP/s2.keys" --size 120x40 --screen dashboard
grep -q "graphs: block" "$TMP/s2.txt" && ok "settings: tui.graph read at start (help says block)" \
    || bad "s2: graph style not block"
script s3 "sleep:100"
tui s3 --keys "$TMP/s3.keys" --size 120x40 --screen dashboard
grep -q -- "-5m" "$TMP/s3.txt" && ok "settings: tui.graph_window read at start (axes from -5m)" \
    || bad "s3: no -5m axis"
grep -q -- "-60s" "$TMP/s3.txt" && bad "s3: a 60 s axis is left" || ok "settings: no graph left at 60 s"
# --graph overrides the config for the run; W goes back; [ refreshes faster
script s4 W "[" "?"
tui s4 --keys "$TMP/s4.keys" --size 120x40 --graph ascii
grep -q "graphs: ascii" "$TMP/s4.txt" && ok "settings: --graph overrides tui.graph" || bad "s4: not ascii"
"$JSONGET" tui.graph tui.graph_window tui.refresh <"$CFG" >"$TMP/j" 2>&1
[ "$(tr '\n' ' ' <"$TMP/j")" = "block 60s 1s " ] && ok "settings: W and [ step back (60s, 1s saved)" \
    || bad "s4 saved: $(cat "$CFG")"
# z pauses: the graphs end at the pause with "paused" on their axis; z again resumes
script z1 z "sleep:1500"
tui z1 --keys "$TMP/z1.keys" --size 120x40 --screen dashboard
grep -q "paused│" "$TMP/z1.txt" && ok "pause: z freezes the graphs (axis says paused)" || bad "z1: not paused"
script z2 z z
tui z2 --keys "$TMP/z2.keys" --size 120x40 --screen dashboard
grep -q "resumed" "$TMP/z2.txt" && ok "pause: z again resumes" || bad "z2: not resumed"
# O: the colour theme, default -> light -> mono, saved; mono draws no colours at the next start
script t1 O
tui t1 --keys "$TMP/t1.keys" --size 120x40
[ "$("$JSONGET" tui.theme <"$CFG")" = light ] && [ "$("$JSONGET" theme <"$TMP/t1.json")" = light ] \
    && ok "theme: O saved tui.theme light" || bad "t1: $("$JSONGET" tui.theme <"$CFG")"
script t2 O
tui t2 --keys "$TMP/t2.keys" --size 120x40
tui t3 --max-frames 1 --size 120x40
"$JSONGET" tui.theme <"$CFG" >"$TMP/j"
"$JSONGET" theme colors <"$TMP/t3.json" >>"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "mono mono none " ] && ok "theme: mono read at start (no colours)" \
    || bad "t3: $(tr '\n' ' ' <"$TMP/j")"
script t4 O
tui t4 --keys "$TMP/t4.keys" --size 120x40
[ "$("$JSONGET" tui.theme <"$CFG")" = default ] && [ "$("$JSONGET" colors <"$TMP/t4.json")" != none ] \
    && ok "theme: O again: default, with colours" || bad "t4: $(cat "$TMP/t4.json")"
# a config holding only the UI's own settings (a key pressed on the first run) still opens the
# setup wizard; one with anything else opens the dashboard
mkdir -p "$TMP/cfgw/bitnet"
echo '{"tui": {"graph": "block"}}' >"$TMP/cfgw/bitnet/config.json"
XDG_CONFIG_HOME="$TMP/cfgw" tui w1 --max-frames 1 --size 120x40
[ "$("$JSONGET" screen <"$TMP/w1.json")" = setup ] && ok "settings: only tui.* keys: the setup wizard still opens" \
    || bad "w1: $("$JSONGET" screen <"$TMP/w1.json")"
echo '{"tui": {"graph": "block"}, "threads": 2}' >"$TMP/cfgw/bitnet/config.json"
XDG_CONFIG_HOME="$TMP/cfgw" tui w2 --max-frames 1 --size 120x40
[ "$("$JSONGET" screen <"$TMP/w2.json")" = dashboard ] && ok "  ... and with other keys, the dashboard" \
    || bad "w2: $("$JSONGET" screen <"$TMP/w2.json")"
# bad values are refused by the schema (config set and the file alike)
expect_exit 2 "config set tui.theme pink" -- "$BIN" config set tui.theme pink
expect_grep "expected default, light or mono" "$TMP/err" "  ... names the themes"
expect_exit 2 "config set tui.graph hex" -- "$BIN" config set tui.graph hex
expect_grep "expected braille, block or ascii" "$TMP/err" "  ... names the choices"
expect_exit 2 "config set tui.refresh 0.1s" -- "$BIN" config set tui.refresh 0.1s
expect_exit 2 "config set tui.graph_window 2h" -- "$BIN" config set tui.graph_window 2h
expect_grep "at most 3600s" "$TMP/err" "  ... says the longest"
expect_exit 2 "config set tui.bench.reps 11" -- "$BIN" config set tui.bench.reps 11
# the benchmark sizes and the sampling, as edited on their screens
script b1 F7 + DOWN + + DOWN -
tui b1 --keys "$TMP/b1.keys" --size 120x40
"$JSONGET" tui.bench.pp tui.bench.tg tui.bench.reps <"$CFG" >"$TMP/j" 2>&1
[ "$(tr '\n' ' ' <"$TMP/j")" = "160 64 2 " ] && ok "bench: sizes saved as edited (pp 160, tg 64, 2 runs)" \
    || bad "bench saved: $(tr '\n' ' ' <"$TMP/j")"
tui b2 --max-frames 2 --size 120x40 --screen benchmarks
grep -q "160" "$TMP/b2.txt" && grep -q "64" "$TMP/b2.txt" && ok "bench: the sizes are read at start" \
    || bad "b2: sizes not shown"
script c1 F6 ESC + DOWN + +
tui c1 --keys "$TMP/c1.keys" --size 120x40
"$JSONGET" temp top_k <"$CFG" >"$TMP/j" 2>&1
[ "$(tr '\n' ' ' <"$TMP/j")" = "0.85 50 " ] && ok "chat: temp and top-k saved as edited (0.85, 50)" \
    || bad "chat saved: $(tr '\n' ' ' <"$TMP/j"); $(cat "$CFG")"
chmod 500 "$XDG_CONFIG_HOME/bitnet"
script ro g
tui ro --keys "$TMP/ro.keys" --size 120x40
chmod 700 "$XDG_CONFIG_HOME/bitnet"
if [ "$(id -u)" -ne 0 ]; then
    grep -q "not saved:" "$TMP/ro.txt" && ok "settings: a config that cannot be written says so" \
        || bad "ro: no 'not saved'"
fi

# ---- the dashboard's system meters and the bitnet processes --------------------------------
# a monitor daemon holding its lock beside the history, and a long job under another name
"$BIN" monitor --no-listen --interval 60s >"$TMP/mon.out" 2>"$TMP/mon.log" &
MON=$!
PIDS="$PIDS $MON"
wait_grep "" "$TMP/mon.log" 5
i=0
while [ $i -lt 50 ] && ! grep -q "monitor.lock" /proc/locks 2>/dev/null; do
    [ -e "$BITNET_HISTORY_DB.monitor.lock" ] && break
    sleep 0.1
    i=$((i + 1))
done
sleep 0.5
script m1 "sleep:2500"
tui m1 --keys "$TMP/m1.keys" --size 160x90 --screen dashboard
grep -Eq "cpu0 ([0-9]+%|-)" "$TMP/m1.txt" && ok "meters: a meter per core" || bad "m1: no per-core meter"
ncores=$(grep -c '^cpu[0-9]' /proc/stat)
[ "$(grep -o 'cpu[0-9]* [0-9-]' "$TMP/m1.txt" | wc -l)" -eq "$ncores" ] \
    && ok "meters: all $ncores cores shown" || bad "m1: not $ncores cores"
load1=$(cut -d' ' -f1 /proc/loadavg | cut -c1-2)
grep -q "load [0-9]*\.[0-9][0-9] [0-9]*\.[0-9][0-9] [0-9]*\.[0-9][0-9]" "$TMP/m1.txt" \
    && ok "meters: the load average" || bad "m1: no load average"
grep -Eq "swap .*(of|none)" "$TMP/m1.txt" && ok "meters: swap" || bad "m1: no swap meter"
grep -Eq "disk read [0-9.]+ [KMG]?i?B/s, write [0-9.]+ [KMG]?i?B/s" "$TMP/m1.txt" \
    && ok "meters: disk I/O rates" || bad "m1: no disk rates"
grep -Eq "net  in [0-9.]+ [KMG]?i?B/s, out [0-9.]+ [KMG]?i?B/s" "$TMP/m1.txt" \
    && ok "meters: network I/O rates" || bad "m1: no network rates"
grep -Eq " $MON monitor\* +(sleeping|running)" "$TMP/m1.txt" \
    && ok "processes: the monitor daemon ($MON), holding its lock (*), with its state" \
    || { bad "m1: monitor $MON not listed as the lock holder"; sed -n '/bitnet processes/,/holds the/p' "$TMP/m1.txt"; }
me=$("$JSONGET" pid <"$TMP/m1.json")
grep -Eq " $me tui +(sleeping|running) " "$TMP/m1.txt" \
    && ok "processes: this UI itself" || bad "m1: the tui not listed"
kill "$MON" 2>/dev/null
wait "$MON" 2>/dev/null
tui m2 --keys "$TMP/m1.keys" --size 160x90 --screen dashboard
grep -q " $MON monitor" "$TMP/m2.txt" && bad "m2: the stopped monitor is still listed" \
    || ok "processes: a stopped monitor leaves the list"

# ---- History: sort by any column either way, choose the columns, filters both ways ----------
export BITNET_HISTORY_DB="$TMP/h2.db"
"$BIN" doctor --quick >/dev/null 2>&1
"$BIN" generate -p hi -n 4 >/dev/null 2>&1
"$BIN" generate -m "$TMP/none.gguf" -p hi -n 4 >/dev/null 2>&1
"$BIN" doctor --quick >/dev/null 2>&1
# ids: the first column of the list's rows, in the order shown
ids() { sed -n 's/^│ *\([0-9][0-9]*\) .*/\1/p' "$TMP/$1.txt" | tr '\n' ' '; }
script y1 F9
tui y1 --keys "$TMP/y1.keys" --size 120x30
[ "$(ids y1)" = "4 3 2 1 " ] && ok "history: newest first (STARTED, descending)" || bad "y1 order: $(ids y1)"
grep -q "STARTED▼" "$TMP/y1.txt" && ok "history: the header marks the sort column" || bad "y1: no STARTED▼"
script y2 F9 "<" I
tui y2 --keys "$TMP/y2.keys" --size 120x30
[ "$(ids y2)" = "1 2 3 4 " ] && grep -q "ID▲" "$TMP/y2.txt" \
    && ok "history: < sorts by ID, I inverts (ascending)" || bad "y2 order: $(ids y2)"
script y3 F9 ">" I
tui y3 --keys "$TMP/y3.keys" --size 120x30
sed -n 's/^│ *[0-9][0-9]* [0-9:]* *\([a-z]*\) .*/\1/p' "$TMP/y3.txt" | tr '\n' ' ' >"$TMP/cmds"
[ "$(cat "$TMP/cmds")" = "doctor doctor generate generate " ] \
    && ok "history: > sorts by COMMAND (ascending after I)" || bad "y3 commands: $(cat "$TMP/cmds")"
# the column picker: C, Left to ID, Space hides it, Esc; the rows start with the time then
script y4 F9 C LEFT SPACE ESC
tui y4 --keys "$TMP/y4.keys" --size 120x30
grep -q "│ STARTED▼ *COMMAND" "$TMP/y4.txt" && [ -z "$(ids y4)" ] \
    && ok "history: C hides the ID column" || bad "y4: ID still shown"
grep -q "│ *4 " "$TMP/y4.txt" && bad "y4: an id is still in a row" || ok "  ... and its cells"
script y5 F9 C LEFT SPACE SPACE ESC
tui y5 --keys "$TMP/y5.keys" --size 120x30
[ "$(ids y5)" = "4 3 2 1 " ] && ok "history: Space again shows it" || bad "y5: $(ids y5)"
# filters cycle both ways: T from any is the last status, F from all the last command
script y6 F9 T F
tui y6 --keys "$TMP/y6.keys" --size 120x30
grep -q "command  convert  (f F)  status  cancelled  (t T)" "$TMP/y6.txt" \
    && ok "history: F and T step back (all -> convert, any -> cancelled)" || bad "y6: $(sed -n 2p "$TMP/y6.txt")"
script y7 F9 t t t T f f F
tui y7 --keys "$TMP/y7.keys" --size 120x30
grep -q "command  generate  (f F)  status  ok  (t T)" "$TMP/y7.txt" && [ "$(ids y7)" = "2 " ] \
    && ok "history: t t t T and f f F end one step on (generate, ok: run 2)" || bad "y7: $(sed -n 2p "$TMP/y7.txt") $(ids y7)"

# ---- the conversion queue: sorted by a column either way, filtered by status both ways -------
export BITNET_HISTORY_DB="$TMP/h3.db"
mkdir -p "$TMP/q"
for n in a c b; do
    echo junk >"$TMP/q/$n.bin"
    "$BIN" convert "$TMP/q/$n.bin" -o "$TMP/q/$n.gguf" --queue >/dev/null 2>&1 || bad "queue $n"
done
i=0
while [ $i -lt 200 ] && "$BIN" jobs list 2>/dev/null | grep -Eq "queued|running"; do
    sleep 0.1
    i=$((i + 1))
done
# job rows: "│    3 failed ..."
jobs_shown() { sed -n 's/^│ *\([0-9][0-9]*\) \(failed\|done\|queued\|running\|cancelled\) .*/\1/p' "$TMP/$1.txt" | tr '\n' ' '; }
script q1 F8 "sleep:800"
tui q1 --keys "$TMP/q1.keys" --size 120x30
[ "$(jobs_shown q1)" = "3 2 1 " ] && grep -q "Conversion queue: all, by ID▼" "$TMP/q1.txt" \
    && ok "queue: the newest job first, the title says so" || bad "q1: $(jobs_shown q1)"
script q2 F8 "sleep:800" "<" I
tui q2 --keys "$TMP/q2.keys" --size 120x30
[ "$(jobs_shown q2)" = "1 3 2 " ] && grep -q "by SOURCE -> OUTPUT▲" "$TMP/q2.txt" \
    && ok "queue: < sorts by source, I inverts (a b c)" || bad "q2: $(jobs_shown q2)"
grep -q "ID▼ STATUS *PROGRESS *PHASE *ETA *SOURCE -> OUTPUT" "$TMP/q1.txt" \
    && ok "queue: a header names the columns" || bad "q1: no header"
script q5 F8 "sleep:800" C RIGHT RIGHT RIGHT SPACE ESC
tui q5 --keys "$TMP/q5.keys" --size 120x30
grep -q "ID▼ STATUS *PROGRESS *ETA *SOURCE -> OUTPUT" "$TMP/q5.txt" && ! grep -q "PHASE" "$TMP/q5.txt" \
    && [ "$(jobs_shown q5)" = "3 2 1 " ] && ok "queue: C hides the PHASE column" || bad "q5: $(sed -n 3p "$TMP/q5.txt")"
script q3 F8 "sleep:800" f
tui q3 --keys "$TMP/q3.keys" --size 120x30
[ -z "$(jobs_shown q3)" ] && grep -q "Conversion queue: queued" "$TMP/q3.txt" \
    && ok "queue: f shows the queued jobs (none)" || bad "q3: $(jobs_shown q3)"
script q4 F8 "sleep:800" F F
tui q4 --keys "$TMP/q4.keys" --size 120x30
[ "$(jobs_shown q4)" = "3 2 1 " ] && grep -q "Conversion queue: failed" "$TMP/q4.txt" \
    && ok "queue: F F steps back to the failed jobs (cancelled, failed)" || bad "q4: $(jobs_shown q4)"

finish test_tui_ops
