# bitnet history: real runs recorded (bench, generate, perplexity, a failure, a kill -9),
# list (filters, table, --json), show, export (csv quoting, json, -o atomically), prune,
# schema migration and refusal, an unavailable history, and usage errors.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/data/bitnet/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS

# jget FILE PATH...: the values at PATHs of the JSON in FILE, one per line
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }

expect_exit 0 "history list on a new history" -- "$BITNET" history list
expect_grep "no runs recorded" "$TMP/out" "an empty history says so"
[ -f "$BITNET_HISTORY_DB" ] && ok "the file and its directories were created" || bad "no history file"
expect_exit 0 "history path" -- "$BITNET" history path
expect_grep "^$BITNET_HISTORY_DB\$" "$TMP/out" "history path names BITNET_HISTORY_DB"

# ---- real runs -----------------------------------------------------------------------------
expect_exit 0 "bench kernels" -- "$BITNET" bench kernels --quick --threads 1 --reps 2 --wset 8
expect_exit 0 "history list --json" -- "$BITNET" history list --json
if jget "$TMP/out" runs.0.command runs.0.status runs.0.params.suite \
        runs.0.metrics.best_gemv_weight_gbps runs.0.metrics.results.0.op >"$TMP/j"; then
    ok "the bench run is listed with parameters and metrics"
else
    bad "bench run in history list --json"
fi
awk 'NR==1 { c = $0 } NR==2 { s = $0 } NR==3 { u = $0 } NR==4 { g = $1 }
     END { exit !(c == "bench" && s == "ok" && u == "kernels" && g > 0) }' "$TMP/j" \
    && ok "command bench, status ok, GEMV GB/s > 0" || bad "bench record: $(tr '\n' ' ' <"$TMP/j")"

M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 7 >/dev/null 2>&1 || bad "synth"
expect_exit 0 "generate" -- "$BITNET" generate -m "$M" -p 'say "hi", then stop' -n 4 -t 1 --seed 5
expect_exit 1 "generate with a missing model" -- "$BITNET" generate -m "$TMP/none.gguf" -p hi
expect_one_line_err "generate with a missing model, history on"
i=0; : >"$TMP/text.txt"
while [ $i -lt 12 ]; do
    echo "The quick brown fox jumps over the lazy dog while the cat sleeps, $i times." >>"$TMP/text.txt"
    i=$((i + 1))
done
expect_exit 0 "perplexity" -- "$BITNET" perplexity -m "$M" -f "$TMP/text.txt" --ctx 32 -t 1 --chunks 2

expect_exit 0 "list --command generate" -- "$BITNET" history list --command generate --json
jget "$TMP/out" runs.0.status runs.0.error runs.1.status runs.1.metrics.gen_tokens_per_s \
    runs.1.metrics.generated_tokens runs.1.params.seed runs.1.model_sha256 >"$TMP/j" \
    && ok "generate runs have status, error, metrics, seed and sha256" \
    || bad "generate records: $(tr '\n' ' ' <"$TMP/j")"
awk 'NR==1 { a = $0 } NR==2 { e = $0 } NR==3 { b = $0 } NR==4 { t = $1 } NR==5 { n = $1 } NR==6 { s = $1 }
     END { exit !(a == "failed" && e ~ /none\.gguf/ && b == "ok" && t > 0 && n == 4 && s == 5) }' \
    "$TMP/j" && ok "failed run keeps the error; ok run keeps tokens/s, 4 tokens, seed 5" \
    || bad "generate fields: $(tr '\n' ' ' <"$TMP/j")"
if command -v sha256sum >/dev/null 2>&1; then
    want=$(sha256sum "$M" | cut -d' ' -f1)
    [ "$(sed -n 7p "$TMP/j")" = "$want" ] && ok "model_sha256 is the file's sha256" \
        || bad "model_sha256 $(sed -n 7p "$TMP/j") != $want"
fi
"$BITNET" history list --command perplexity --json >"$TMP/p" 2>/dev/null
jget "$TMP/p" runs.0.metrics.perplexity runs.0.metrics.tokens_scored >/dev/null \
    && ok "perplexity recorded with its metrics" || bad "perplexity record"

expect_exit 0 "list --status failed" -- "$BITNET" history list --status failed --json
jget "$TMP/out" runs.0.command >/dev/null && ! jget "$TMP/out" runs.1 >/dev/null 2>&1 \
    && ok "one failed run" || bad "--status failed"
expect_exit 0 "list --search tiny.gguf --limit 1" -- "$BITNET" history list --search TINY.gguf --limit 1 --json
jget "$TMP/out" runs.0 >/dev/null && ! jget "$TMP/out" runs.1 >/dev/null 2>&1 \
    && ok "--search is case-blind, --limit cuts" || bad "--search/--limit"
expect_exit 0 "list --since 1" -- "$BITNET" history list --since 1 --json
jget "$TMP/out" runs.3.id >/dev/null && ok "--since 1 keeps today's 4 runs" || bad "--since"
expect_exit 0 "list --since 0" -- "$BITNET" history list --since 0
expect_grep "no runs recorded that match" "$TMP/out" "--since 0 matches nothing older than now"

# the table: a header, one line per run, columns aligned
expect_exit 0 "list (table)" -- "$BITNET" history list
[ "$(wc -l <"$TMP/out")" -eq 5 ] && ok "header and 4 rows" || bad "table has $(wc -l <"$TMP/out") lines"
awk 'NR==1 { p = index($0, "STATUS"); q = index($0, "MODEL"); next }
     { s = substr($0, p); m = substr($0, q)
       if (s !~ /^(ok|failed) / || m !~ /^(tiny\.gguf|none\.gguf|-) /) bad = 1 }
     END { exit bad }' "$TMP/out" && ok "STATUS and MODEL columns line up" || bad "table alignment"

# show
id=$(jget "$TMP/p" runs.0.id)
expect_exit 0 "show $id" -- "$BITNET" history show "$id"
expect_grep "^command *perplexity" "$TMP/out" "show prints the command"
expect_grep "^sha256 *[0-9a-f]\{64\}" "$TMP/out" "show prints the sha256"
expect_exit 0 "show --json" -- "$BITNET" history show "$id" --json
[ "$(jget "$TMP/out" id)" = "$id" ] && ok "show --json is the run" || bad "show --json"
expect_exit 1 "show of a missing run" -- "$BITNET" history show 99999
expect_one_line_err "show of a missing run"
expect_grep "99999" "$TMP/err" "the error names the id"

# export
expect_exit 0 "export csv -o" -- "$BITNET" history export --format csv -o "$TMP/h.csv"
head -1 "$TMP/h.csv" | grep -q "^id,command,status,started_at,ended_at,duration_s,model_path" \
    && ok "csv header" || bad "csv header: $(head -1 "$TMP/h.csv")"
[ "$(wc -l <"$TMP/h.csv")" -eq 5 ] && ok "csv: header and 4 runs" || bad "csv lines: $(wc -l <"$TMP/h.csv")"
grep -q '""say \\""hi\\"", then stop""' "$TMP/h.csv" \
    && ok "csv doubles quotes inside quoted fields" || bad "csv quoting: $(grep generate "$TMP/h.csv" | head -1)"
ls "$TMP" | grep -q "h.csv.tmp" && bad "a temporary file was left" || ok "no temporary file left"
expect_exit 0 "export json" -- "$BITNET" history export --format json --command generate
jget "$TMP/out" runs.1.params.argv.0 >/dev/null && ! jget "$TMP/out" runs.2 >/dev/null 2>&1 \
    && ok "json export of the generate runs parses" || bad "json export"
[ "$(jget "$TMP/out" runs.0.status)" = "ok" ] && ok "export is oldest first" || bad "export order"
expect_exit 1 "export -o into a missing directory" -- "$BITNET" history export --format csv -o "$TMP/no/dir/h.csv"
expect_one_line_err "export into a missing directory"

# a run killed mid-way is marked incomplete at the next start
"$BITNET" bench kernels --threads 1 --reps 1000 --wset 16 >/dev/null 2>&1 &
pid=$!
n=0
while [ $n -lt 50 ]; do
    "$BITNET" history list --status running --json 2>/dev/null | "$JSONGET" runs.0.id >/dev/null 2>&1 && break
    sleep 0.1; n=$((n + 1))
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect_exit 0 "list --status incomplete after kill -9" -- "$BITNET" history list --status incomplete --json
[ "$(jget "$TMP/out" runs.0.pid)" = "$pid" ] && ok "the killed run is incomplete" || bad "killed run: $(cat "$TMP/out")"
if command -v sqlite3 >/dev/null 2>&1; then
    [ "$(sqlite3 "$BITNET_HISTORY_DB" 'PRAGMA integrity_check')" = ok ] && ok "integrity_check ok" || bad "integrity"
fi

# prune
expect_exit 0 "prune --older-than 1" -- "$BITNET" history prune --older-than 1 --json
[ "$(jget "$TMP/out" deleted)" = 0 ] && ok "nothing is a day old" || bad "prune 1: $(cat "$TMP/out")"
expect_exit 0 "prune --older-than 0" -- "$BITNET" history prune --older-than 0
expect_grep "deleted 5 runs" "$TMP/out" "prune 0 deletes every run"
"$BITNET" history list >"$TMP/out" 2>&1
expect_grep "no runs recorded" "$TMP/out" "the history is empty after pruning"

# doctor and train are recorded too
"$BITNET" doctor --quick >/dev/null 2>&1
"$BITNET" history list --command doctor --json >"$TMP/d" 2>/dev/null
jget "$TMP/d" runs.0.metrics.pass runs.0.metrics.checks >/dev/null \
    && ok "doctor recorded with its checks" || bad "doctor record: $(cat "$TMP/d")"
"$BITNET" train --data "$TMP/text.txt" --out "$TMP/train" --steps 2 --batch 2 --ctx 16 \
    --threads 1 --eval-batches 1 >/dev/null 2>&1 || bad "train"
"$BITNET" history list --command train --json >"$TMP/d" 2>/dev/null
[ "$(jget "$TMP/d" runs.0.status)" = ok ] && jget "$TMP/d" runs.0.metrics.val_loss >/dev/null \
    && ok "train recorded with its validation loss" || bad "train record: $(cat "$TMP/d")"

# ---- when the history cannot be used, commands still work ------------------------------------
BITNET_HISTORY_DB=/proc/self/no/such/h.db "$BITNET" generate -m "$M" -p hi -n 1 -t 1 \
    >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 0 ] && ok "generate succeeds without a history" || bad "generate failed ($rc) without a history"
[ "$(grep -c "warning: history not recorded" "$TMP/err")" -eq 1 ] && ok "one warning line" \
    || bad "warnings: $(cat "$TMP/err")"
"$BITNET" history prune --older-than 0 >/dev/null 2>&1
BITNET_HISTORY=0 "$BITNET" generate -m "$M" -p hi -n 1 -t 1 >/dev/null 2>&1
"$BITNET" history list >"$TMP/out" 2>&1
expect_grep "no runs recorded" "$TMP/out" "BITNET_HISTORY=0 records nothing"
expect_exit 1 "history list without a usable file" -- env BITNET_HISTORY_DB=/proc/self/no/h.db "$BITNET" history list
expect_one_line_err "history list without a usable file"

# ---- schemas ----------------------------------------------------------------------------------
if command -v sqlite3 >/dev/null 2>&1; then
    OLD="$TMP/old.db"
    sqlite3 "$OLD" "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT NOT NULL,
        model_path TEXT, model_sha256 TEXT, params TEXT, metrics TEXT, started_at INTEGER NOT NULL,
        ended_at INTEGER, status TEXT NOT NULL DEFAULT 'running', error TEXT, pid INTEGER, host TEXT,
        boot_id TEXT, proc_start INTEGER);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO runs (command, params, started_at, ended_at, status, pid, host)
        VALUES ('bench', '{\"old\":true}', CAST(strftime('%s','now') AS INTEGER) * 1000, NULL, 'ok', 1, 'h');
        PRAGMA user_version=1;"
    expect_exit 0 "a version-1 history is migrated" -- env BITNET_HISTORY_DB="$OLD" "$BITNET" history list --json
    [ "$(jget "$TMP/out" runs.0.params.old)" = true ] && ok "its runs are kept" || bad "migrated runs"
    [ "$(sqlite3 "$OLD" 'PRAGMA user_version')" -ge 2 ] && ok "schema version raised" || bad "user_version"
    NEW="$TMP/new.db"
    sqlite3 "$NEW" "PRAGMA user_version=999;"
    expect_exit 1 "a newer schema is refused" -- env BITNET_HISTORY_DB="$NEW" "$BITNET" history list
    expect_one_line_err "newer schema"
    expect_grep "newer" "$TMP/err" "the error says newer"
    BITNET_HISTORY_DB="$NEW" "$BITNET" generate -m "$M" -p hi -n 1 -t 1 >/dev/null 2>"$TMP/err" \
        && ok "generate still runs next to a newer history" || bad "generate with a newer history"
    [ "$(sqlite3 "$NEW" 'PRAGMA user_version')" = 999 ] && ok "the newer file is untouched" || bad "newer file changed"
else
    echo "  skip schema tests: no sqlite3 command"
fi

# ---- the config's data_dir decides where the history is (one resolver for every command) ------
DD="$TMP/datadir"
printf '{"data_dir": "%s"}\n' "$DD" >"$TMP/dd-config.json"
ddrun() { env -u BITNET_HISTORY_DB BITNET_CONFIG="$TMP/dd-config.json" "$@"; }
expect_exit 0 "history path with data_dir in the config" -- ddrun "$BITNET" history path
expect_grep "^$DD/history.db\$" "$TMP/out" "history path is under the config's data_dir"
expect_exit 0 "generate with data_dir in the config" -- ddrun "$BITNET" generate -m "$M" -p hi -n 2 -t 1
if command -v sqlite3 >/dev/null 2>&1; then
    [ "$(sqlite3 "$DD/history.db" "SELECT command || ' ' || status FROM runs")" = "generate ok" ] \
        && ok "the run landed in data_dir/history.db" || bad "no generate run in $DD/history.db"
fi
expect_exit 0 "history list under data_dir" -- ddrun "$BITNET" history list --json
jget "$TMP/out" runs.0.command runs.1.command >"$TMP/j" 2>/dev/null
[ "$(sed -n 1p "$TMP/j")" = generate ] && [ -z "$(sed -n 2p "$TMP/j")" ] \
    && ok "history list reads data_dir's history: the one generate run" \
    || bad "history list under data_dir: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "BITNET_DATA_DIR overrides data_dir" -- \
    ddrun env BITNET_DATA_DIR="$TMP/dd2" "$BITNET" history path
expect_grep "^$TMP/dd2/history.db\$" "$TMP/out" "history path follows BITNET_DATA_DIR"
expect_exit 0 "BITNET_HISTORY_DB wins over data_dir" -- \
    env BITNET_CONFIG="$TMP/dd-config.json" "$BITNET" history path
expect_grep "^$BITNET_HISTORY_DB\$" "$TMP/out" "history path names BITNET_HISTORY_DB over data_dir"

# ---- usage errors -----------------------------------------------------------------------------
expect_exit 2 "history without a subcommand" -- "$BITNET" history
expect_exit 2 "history frob" -- "$BITNET" history frob
expect_exit 2 "list --status bogus" -- "$BITNET" history list --status bogus
expect_exit 2 "list --since x" -- "$BITNET" history list --since x
expect_exit 2 "list --since -1" -- "$BITNET" history list --since -1
expect_exit 2 "list --limit -1" -- "$BITNET" history list --limit -1
expect_exit 2 "list --bogus" -- "$BITNET" history list --bogus
expect_exit 2 "list --command without a value" -- "$BITNET" history list --command
expect_exit 2 "show without an id" -- "$BITNET" history show
expect_exit 2 "show abc" -- "$BITNET" history show abc
expect_exit 2 "export without --format" -- "$BITNET" history export
expect_exit 2 "export --format xml" -- "$BITNET" history export --format xml
expect_exit 2 "prune without --older-than" -- "$BITNET" history prune
expect_exit 2 "prune --older-than -3" -- "$BITNET" history prune --older-than -3
expect_exit 2 "prune --older-than 1.5" -- "$BITNET" history prune --older-than 1.5
expect_exit 0 "history --help" -- "$BITNET" history --help
expect_exit 0 "help history" -- "$BITNET" help history

finish test_history
