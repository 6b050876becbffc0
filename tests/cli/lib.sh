# Shared helpers for the CLI tests (sourced). $BITNET is the binary, $JSONGET the
# JSON reader from tests/tools.
: "${BITNET:=build/bitnet}"
: "${JSONGET:=build/tools/jsonget}"
n_ok=0; n_bad=0
# no test asks the real instance metadata address (169.254.169.254) for AWS credentials: those
# that want it point AWS_EC2_METADATA_SERVICE_ENDPOINT at a loopback stand-in and turn it on
export AWS_EC2_METADATA_DISABLED=true
TMP=$(mktemp -d)
# background processes of a test: add their pids to PIDS; they are killed at exit
PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

ok() { n_ok=$((n_ok + 1)); echo "  ok   $1"; }
bad() { n_bad=$((n_bad + 1)); echo "  FAIL $1"; }

# expect_exit CODE DESCRIPTION -- command...
expect_exit() {
    want=$1; what=$2; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"; got=$?
    if [ "$got" -eq "$want" ]; then ok "$what (exit $got)"; else
        bad "$what: exit $got, wanted $want"; sed 's/^/       /' "$TMP/err" | head -5; fi
}

# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
    if grep -q -- "$1" "$2"; then ok "$3"; else bad "$3: '$1' not in $(basename "$2")"; fi
}

# one line on stderr, naming the problem
expect_one_line_err() {
    n=$(wc -l <"$TMP/err")
    if [ "$n" -ge 1 ] && [ "$n" -le 2 ]; then ok "$1: short error"; else
        bad "$1: $n lines on stderr"; fi
}

finish() {
    echo "$1: $n_ok passed, $n_bad failed"
    [ "$n_bad" -eq 0 ]
}

# wait_grep PATTERN FILE TENTHS: waits until FILE has PATTERN (at most TENTHS/10 s)
wait_grep() {
    i=0
    while [ "$i" -lt "$3" ]; do
        grep -q -- "$1" "$2" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# start_server LOG ARGS...: starts bitnet serve on a free port; SPID its pid, URL its
# address, once the model is ready
start_server() {
    log=$1
    shift
    "$BITNET" serve --listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log" &
    SPID=$!
    PIDS="$PIDS $SPID"
    URL=""
    wait_grep "listening on" "$log" 100 &&
        URL="http://127.0.0.1:$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log" | head -1)"
    wait_grep " ready " "$log" 600 || bad "server not ready: $(cat "$log")"
}

# start_monitor LOG ARGS...: starts bitnet monitor in the background; MON is its pid and
# MPORT the port of its endpoint (when it listens). stop_monitor: SIGTERM and wait.
start_monitor() {
    log=$1
    shift
    "$BITNET" monitor "$@" >"$log.out" 2>"$log" &
    MON=$!
    PIDS="$PIDS $MON"
    MPORT=""
    if wait_grep "listening on" "$log" 100; then
        MPORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log" | head -1)
    fi
}
stop_monitor() {
    kill -TERM "$MON" 2>/dev/null
    wait "$MON" 2>/dev/null
}

# tensor_at GGUF NAME: prints the file offset of tensor NAME's data (from bitnet inspect --json)
tensor_at() {
    "$BITNET" inspect "$1" --json >"$TMP/tensor_at.json" || return 1
    ta_i=0
    while [ "$("$JSONGET" tensors.$ta_i.name <"$TMP/tensor_at.json" 2>/dev/null)" != "$2" ]; do
        ta_i=$((ta_i + 1))
        [ $ta_i -lt 10000 ] || return 1
    done
    echo $(($("$JSONGET" data_offset <"$TMP/tensor_at.json") + $("$JSONGET" tensors.$ta_i.offset <"$TMP/tensor_at.json")))
}
