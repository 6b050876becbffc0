# One unreadable row in the history database (a jobs row whose args are a blob or broken
# JSON, a run whose params are a blob) must not hide the others: jobs list, jobs wait and
# history list show every row and name the broken ones (stderr; "problem" in --json).
# The rows are damaged with the sqlite3 command (scripts/deps.sh); without it this skips.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS

if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "  skip: no sqlite3 command"
    finish test_broken_rows.sh
    exit
fi

# jget FILE PATH...: the values at PATHs of the JSON in FILE, one per line
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }

expect_exit 0 "history list creates the database" -- "$BITNET" history list
sq() { sqlite3 "$BITNET_HISTORY_DB" "$1"; }
# expect_rows PATTERN N WHAT: N lines of $TMP/out match PATTERN
expect_rows() {
    n=$(grep -c -- "$1" "$TMP/out")
    [ "$n" -eq "$2" ] && ok "$3 shows all $2" || bad "$3 shows $n of $2"
}

# ---- jobs: four finished jobs, two with args that are not JSON --------------------------------
now=$(($(date +%s) * 1000))
for i in 1 2 3 4; do
    sq "INSERT INTO jobs (kind, args, status, created_at, ended_at, percent) VALUES ('convert',
        '{\"src\":\"/in/m$i\",\"out\":\"/out/m$i.gguf\"}', 'done', $now, $now, 100)"
done
sq "UPDATE jobs SET args = x'00ff7b' WHERE id = 2"
sq "UPDATE jobs SET args = '{\"src\": broken' WHERE id = 4"

expect_exit 0 "jobs list with two broken rows" -- "$BITNET" jobs list
expect_rows '^ *[0-9].* done ' 4 "jobs list"
expect_grep '/in/m1 -> /out/m1.gguf' "$TMP/out" "the job after the broken ones is intact"
expect_grep 'job 2: args are not valid JSON' "$TMP/err" "job 2 is named on stderr"
expect_grep 'job 4: args are not valid JSON' "$TMP/err" "job 4 is named on stderr"

expect_exit 0 "jobs list --json" -- "$BITNET" jobs list --json
if jget "$TMP/out" jobs.0.id jobs.0.problem jobs.2.id jobs.2.problem jobs.3.src >"$TMP/j"; then
    [ "$(tr '\n' ' ' <"$TMP/j")" = "4 args are not valid JSON 2 args are not valid JSON /in/m1 " ] &&
        ok "--json: the broken jobs carry \"problem\", the others their paths" ||
        bad "jobs list --json: $(tr '\n' ' ' <"$TMP/j")"
else
    bad "jobs list --json: fields missing"
fi
jget "$TMP/out" jobs.1.problem >/dev/null 2>&1 && bad "job 3 has a problem" || ok "job 3 has no problem"

expect_exit 0 "jobs wait over the broken rows" -- "$BITNET" jobs wait --timeout 30
expect_rows '^ *[0-9].* done ' 4 "jobs wait"
expect_grep 'job 2: args are not valid JSON' "$TMP/err" "jobs wait names job 2"
expect_exit 0 "jobs wait 1 3 --json" -- "$BITNET" jobs wait 1 3 --json
jget "$TMP/out" jobs.1.id >"$TMP/j" && [ "$(cat "$TMP/j")" = 1 ] &&
    ok "jobs wait finds job 1 behind the broken rows" || bad "jobs wait 1 3: $(cat "$TMP/out")"
expect_exit 0 "jobs show of a broken job" -- "$BITNET" jobs show 2
expect_grep 'problem  args are not valid JSON' "$TMP/out" "jobs show names the problem"

# ---- recovery: two jobs left running by a dead worker, the first with broken args ----------
sleep 0 & dead=$!; wait $dead
tmp_left="$TMP/o.gguf.tmp-$dead-abcdef"
: >"$tmp_left"
sq "INSERT INTO jobs (kind, args, status, created_at, worker_pid) VALUES ('convert', x'00ff7b',
    'running', $now, $dead)"
sq "INSERT INTO jobs (kind, args, status, created_at, worker_pid) VALUES ('convert',
    '{\"src\":\"/in/m\",\"out\":\"$TMP/o.gguf\"}', 'running', $now, $dead)"
expect_exit 0 "jobs list recovers the dead worker's jobs" -- "$BITNET" jobs list --json
[ "$(sq "SELECT count(*) FROM jobs WHERE status = 'running'")" = 0 ] &&
    ok "both jobs are queued again" || bad "jobs still running after recovery"
[ -e "$tmp_left" ] && bad "the temporary of the job after the broken one was left" ||
    ok "the temporary of the job after the broken one is removed"
sq "UPDATE jobs SET status = 'cancelled' WHERE status = 'queued'" # no worker picks them up

# ---- runs: three finished runs, the middle one with params that are a blob ---------------------
for i in 1 2 3; do
    sq "INSERT INTO runs (command, params, metrics, started_at, ended_at, status, pid, host)
        VALUES ('generate', '{\"n\":$i}', '{\"gen_tokens_per_s\":$i.5}', $((now + i)),
        $((now + i + 10)), 'ok', 1, 'h')"
done
sq "UPDATE runs SET params = x'00ff7b' WHERE id = 2"
expect_exit 0 "history list with a blob in runs.params" -- "$BITNET" history list
expect_rows ' generate ' 3 "history list"
expect_grep '1.50 tokens/s' "$TMP/out" "the run after the broken one is intact"
expect_grep "run 2: params are not valid JSON" "$TMP/err" "the broken run is named on stderr"
expect_exit 0 "history list --json" -- "$BITNET" history list --json
if jget "$TMP/out" runs.1.id runs.1.problem runs.2.params.n >"$TMP/j"; then
    [ "$(tr '\n' ' ' <"$TMP/j")" = "2 params are not valid JSON 1 " ] &&
        ok "--json: the broken run carries \"problem\", the others their params" ||
        bad "history list --json: $(tr '\n' ' ' <"$TMP/j")"
else
    bad "history list --json: fields missing"
fi
expect_exit 0 "history show of the broken run" -- "$BITNET" history show 2
expect_grep 'problem *params are not valid JSON' "$TMP/out" "history show names the problem"

finish test_broken_rows.sh
