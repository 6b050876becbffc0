# bitnet tui for operators and scripts, driven headless (no terminal, no tmux): a virtual
# screen (--size, COLUMNS/LINES) with --keys, --max-frames, --stats and --dump under setsid
# with stdin from /dev/null; settings that persist in the config (tui.* keys); sorting and
# filters; the dashboard's system meters and bitnet processes.
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

finish test_tui_ops
