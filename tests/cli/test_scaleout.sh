#!/bin/sh
# The scale-out topology on loopback, started by the test itself (scripts/bench-scaleout.sh,
# which make bench-scaleout runs with 100 clients for 60 s): a Redis on a unix socket, three
# `bitnet serve --tenants --redis --database` replicas on a PostgreSQL server (Debian's
# binaries; the sqlite history when they are absent) that is restarted 1 s into the load, with
# billing to a loopback Stripe (stripe_recorder.py), and haproxy balancing them. A tenant of
# 6 requests a minute gets 6 of 12
# requests spread over the three replicas (each alone would admit 6 more); 6 clients
# get no 5xx before one replica is killed with SIGKILL 3 s in (8 s in all); the two left go on answering;
# every completion a client read whole is in the ledger exactly once with the tokens it was
# told; with PostgreSQL the outbox delivers each of the tenant's ledger rows to the recorder
# exactly once. SKIP without redis-server, haproxy or python3 (Debian packages; scripts/deps.sh).
. "$(dirname "$0")/lib.sh"
echo "test_scaleout.sh"
for c in redis-server haproxy python3 curl; do
    if ! command -v $c >/dev/null 2>&1; then
        echo "  SKIP test_scaleout.sh: no $c (scripts/deps.sh installs it)"
        finish test_scaleout.sh
        exit
    fi
done

D="$TMP/run"
PGOPT=""
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    PGOPT="--postgres --pg-restart-after 1"
    [ "$(id -u)" = 0 ] && chmod o+x "$TMP" # the server runs as nobody in $D/pg
else
    echo "  SKIP the PostgreSQL store: no server binaries (Debian package postgresql)"
fi
# shellcheck disable=SC2086
BITNET="$BITNET" sh scripts/bench-scaleout.sh --clients 6 --seconds 8 --kill-after 3 --dir "$D" \
    $PGOPT >"$TMP/out" 2>"$TMP/err"
rc=$?
sed 's/^/       /' "$TMP/out"
[ $rc = 0 ] && ok "bench-scaleout.sh checks pass (exit 0)" || bad "bench-scaleout.sh exit $rc: $(cat "$TMP/err")"

line=$(grep "^rate limit across the replicas" "$TMP/out")
adm=$(echo "$line" | sed -n 's/.*: \([0-9]*\) admitted, \([0-9]*\) 429 of 12.*/\1/p')
lim=$(echo "$line" | sed -n 's/.*: \([0-9]*\) admitted, \([0-9]*\) 429 of 12.*/\2/p')
max=$(echo "$line" | sed -n 's/.*(allowed 6\.\.\([0-9]*\)).*/\1/p')
[ -n "$adm" ] && [ "$adm" -ge 6 ] && [ "$adm" -le "$max" ] && [ $((adm + lim)) = 12 ] &&
    ok "6 a minute over three replicas: $adm admitted, $lim 429 (GCRA allows 6..$max)" ||
    bad "rate across replicas: '$line'"
j() { "$JSONGET" "$1" <"$D/$2"; }
if [ -f "$D/ledger.json" ] && [ -f "$D/load.json" ]; then
    seen=$(j seen ledger.json)
    [ "$seen" -gt 0 ] && [ "$(j missing ledger.json)" = 0 ] && [ "$(j twice ledger.json)" = 0 ] &&
        [ "$(j wrong_tokens ledger.json)" = 0 ] && [ "$(j seen_twice ledger.json)" = 0 ] &&
        ok "all $seen completions the clients saw are in the ledger once, with their tokens" ||
        bad "ledger: $(cat "$D/ledger.json")"
    [ "$(j errors_before_kill ledger.json)" = 0 ] && ok "no 5xx or lost answer before the kill" ||
        bad "errors before the kill: $(j errors load.json)"
    [ "$(j killed_at load.json)" != null ] && [ "$(j completed_after_kill load.json)" -gt 0 ] &&
        ok "after the kill at $(j killed_at load.json)s the two replicas left completed $(j completed_after_kill load.json)" ||
        bad "after the kill: $(j killed_at load.json) $(j completed_after_kill load.json)"
    [ "$(j rows ledger.json)" -ge "$seen" ] && ok "the ledger has $(j rows ledger.json) rows" ||
        bad "ledger rows $(j rows ledger.json) < $seen"
    # the probes run in a process of their own (scaleout_load.py --probes): their times came back
    [ "$(j ttft_ms.n load.json)" -gt 0 ] && [ "$(j health_ms.n load.json)" -gt 0 ] &&
        [ "$(j models_ms.n load.json)" -gt 0 ] && [ "$(j ttft_lone_ms load.json)" != null ] &&
        ok "the probe process timed $(j ttft_ms.n load.json) first tokens and $(j health_ms.n load.json) /health" ||
        bad "probes: ttft $(j ttft_ms load.json), health $(j health_ms load.json), lone $(j ttft_lone_ms load.json)"
    grep -q "is DOWN" "$D/haproxy.log" && ok "haproxy took the killed replica out" ||
        bad "haproxy log: $(tail -3 "$D/haproxy.log")"
    if [ -n "$PGOPT" ]; then
        grep -q "PostgreSQL restarted at 1s" "$TMP/out" && ok "PostgreSQL was restarted 1 s into the load" ||
            bad "no restart of PostgreSQL"
        [ -f "$D/billing.json" ] && [ "$(j missing billing.json)" = 0 ] && [ "$(j twice billing.json)" = 0 ] &&
            [ "$(j wrong_value billing.json)" = 0 ] && [ "$(j not_in_ledger billing.json)" = 0 ] &&
            [ "$(j ledger_rows billing.json)" -gt 0 ] &&
            ok "the outbox delivered each of the $(j ledger_rows billing.json) ledger rows to the recorder once" ||
            bad "billing: $(cat "$D/billing.json" 2>/dev/null)"
    fi
else
    bad "no ledger.json or load.json in $D"
fi
finish test_scaleout.sh
