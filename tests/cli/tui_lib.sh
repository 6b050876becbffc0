# The tmux side of the TUI tests (sourced after lib.sh, by test_tui.sh and test_tui_trust.sh):
# a private tmux server, panes of 120x40 running `bitnet tui`, and helpers to type keys and
# wait for the screen to show something. A private config, data folder and history. $TEST
# names the test (without tmux it is skipped).
if ! command -v tmux >/dev/null 2>&1; then
    echo "  SKIP $TEST: tmux is not installed (make deps installs it)"
    finish "$TEST"
    exit $?
fi

export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" BITNET_HISTORY_DB="$TMP/history.db"
export LANG=C.UTF-8 LC_ALL=C.UTF-8
unset BITNET_CONFIG NO_COLOR BITNET_MODEL
BIN=$(cd "$(dirname "$BITNET")" && pwd)/$(basename "$BITNET")
TM="tmux -L bitnet-test-$$ -f $TMP/tmux.conf"
printf 'set -g default-terminal screen-256color\nset -g history-limit 0\n' >"$TMP/tmux.conf"
SOCK="${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/bitnet-test-$$"
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; $TM kill-server 2>/dev/null; rm -f "$SOCK"; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP PIPE

# start SESSION ARGS...: runs `bitnet tui ARGS` in a fresh 120x40 pane, then prints its status
start() {
    s=$1
    shift
    $TM kill-session -t "$s" 2>/dev/null
    $TM new-session -d -s "$s" -x 120 -y 40 "$BIN tui $*; echo EXIT=\$?; sleep 600"
}
cap() { $TM capture-pane -p -t "$1"; }
keys() {
    s=$1
    shift
    $TM send-keys -t "$s" "$@"
}
# wait_for SESSION PATTERN DESCRIPTION [SECONDS]: until the pane shows PATTERN (grep -E)
wait_for() {
    i=0
    n=$((${4:-10} * 10))
    while [ $i -lt $n ]; do
        cap "$1" >"$TMP/pane"
        if grep -Eq -- "$2" "$TMP/pane"; then
            ok "$3"
            # a screen can come in more than one frame: let it settle so that the checks
            # that grep the pane next see all of it (keep the match if it went away)
            sleep 0.3
            cap "$1" >"$TMP/pane2"
            grep -Eq -- "$2" "$TMP/pane2" && mv "$TMP/pane2" "$TMP/pane"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    bad "$3: /$2/ not on the screen"
    sed 's/^/       |/' "$TMP/pane"
    return 1
}
# restored SESSION DESCRIPTION: the pane left the alternate screen and shows the cursor
restored() {
    f=$($TM display -p -t "$1" '#{alternate_on}#{cursor_flag}#{keypad_cursor_flag}')
    [ "$f" = "010" ] && ok "$2: terminal restored" || bad "$2: terminal not restored ($f)"
}
