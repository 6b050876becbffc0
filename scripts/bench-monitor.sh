#!/bin/sh
# The exporter's overhead: runs `bitnet monitor` (endpoint on 127.0.0.1, collection every 10 s,
# two alert rules, a private history) for SECONDS (default 60, or $BENCH_MONITOR_SECONDS) with
# a scrape of /metrics every 10 s, and prints the CPU it used (user + system, from
# /proc/PID/stat) as a share of one core. The target is under 1%.
#
# Usage: sh scripts/bench-monitor.sh [BUILD] [SECONDS]
BUILD=${1:-build}
SECONDS_=${2:-${BENCH_MONITOR_SECONDS:-60}}
BITNET=$BUILD/bitnet
HTTPREC=$BUILD/tools/httprec
[ -x "$BITNET" ] && [ -x "$HTTPREC" ] || { echo "bench-monitor: build first ($BITNET, $HTTPREC)" >&2; exit 1; }
TMP=$(mktemp -d)
MON=""
trap '[ -n "$MON" ] && kill "$MON" 2>/dev/null; rm -rf "$TMP"' EXIT
cat >"$TMP/config.json" <<'EOF'
{"alerts": [
  {"name": "memory", "metric": "bitnet_host_memory_available_bytes", "op": "<", "threshold": 1e8, "for": "1m"},
  {"name": "load", "metric": "bitnet_host_load1", "op": ">", "threshold": 1000}]}
EOF
BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" \
    "$BITNET" monitor --listen 127.0.0.1:0 --interval 10 2>"$TMP/log" &
MON=$!
i=0
while [ "$i" -lt 100 ] && ! grep -q "listening on" "$TMP/log"; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/log" | head -1)
[ -n "$PORT" ] || { echo "bench-monitor: the monitor did not start: $(cat "$TMP/log")" >&2; exit 1; }
sleep 1 # past start-up (loading, the first collection)
# CPU time in ns: the sum over the threads of /proc/PID/task/*/schedstat (ns resolution),
# else utime + stime of /proc/PID/stat (clock ticks)
HZ=$(getconf CLK_TCK)
cpu_ns() {
    if [ -r "/proc/$MON/schedstat" ]; then
        cat /proc/"$MON"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
    else
        awk -v hz="$HZ" '{ sub(/.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' "/proc/$MON/stat"
    fi
}
t0=$(date +%s%N)
c0=$(cpu_ns)
n=0 elapsed=0
while [ "$elapsed" -lt "$SECONDS_" ]; do
    "$HTTPREC" --fetch "$PORT" /metrics >/dev/null || echo "bench-monitor: a scrape failed" >&2
    n=$((n + 1))
    sleep 10
    elapsed=$((($(date +%s%N) - t0) / 1000000000))
done
c1=$(cpu_ns)
t1=$(date +%s%N)
awk -v c="$((c1 - c0))" -v ns="$((t1 - t0))" -v n="$n" 'BEGIN {
    s = ns / 1e9; cpu = c / 1e9
    printf "monitor: exporter CPU %.4f%% of a core (%.4f s CPU in %.0f s; collection and %d scrapes every 10 s; target < 1%%)\n",
        100 * cpu / s, cpu, s, n }'
