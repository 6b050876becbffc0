# bitnet tui, the figures an operator must be able to trust (issue 18): the alert rules evaluated
# while the UI runs (by the monitor's code, with when and by whom, whether a monitor daemon runs
# and how its sinks deliver), and the same through `bitnet alerts eval`; rules added, edited,
# silenced and acknowledged from the UI (bitnet alerts add|edit|silence|ack); benchmarks compared
# like with like, a stopped one said cancelled, pp + tg checked when entered, every run plotted;
# conversions labelled and coloured by their validation, with its figures and warnings.
. tests/cli/lib.sh

TEST=test_tui_trust
. tests/cli/tui_lib.sh

# a config without the setup wizard's questions; the tiny model is not needed for alerts
mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{}' >"$XDG_CONFIG_HOME/bitnet/config.json"

# ---- alerts: evaluated now, by whom, the daemon ---------------------------------------------
# cores holds at once; slow has no data (no generation ran); no monitor has ever run
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"slow","metric":"bitnet_generation_tokens_per_second","op":"<","threshold":5,"for":"5m"}]' \
    >/dev/null 2>&1 || bad "config set alerts"
expect_exit 0 "alerts eval --json with no daemon" -- "$BIN" alerts eval --json
[ "$("$JSONGET" evaluated_by alerts.0.rule alerts.0.state alerts.1.state monitor <"$TMP/out" | tr '\n' ' ')" \
    = "alerts eval cores firing inactive null " ] \
    && ok "alerts eval: evaluated here (no daemon): cores firing, slow inactive" \
    || bad "alerts eval: $(tr '\n' ' ' <"$TMP/out")"
"$JSONGET" alerts.0.evaluated_ms <"$TMP/out" | grep -Eq '^[0-9]{13}$' \
    && ok "alerts eval: each rule says when it was evaluated" || bad "alerts eval: evaluated_ms"
"$BIN" alerts list >"$TMP/list" 2>&1
grep -Eq "^cores +firing" "$TMP/list" && ok "alerts eval recorded the transition (alerts list)" \
    || bad "alerts list after eval: $(cat "$TMP/list")"
expect_exit 2 "alerts eval RULE: usage error" -- "$BIN" alerts eval cores

# the UI evaluates the rules itself: a rule added now fires without any monitor
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"slow","metric":"bitnet_generation_tokens_per_second","op":"<","threshold":5,"for":"5m"},
  {"name":"memory","metric":"bitnet_host_memory_total_bytes","op":">","threshold":0,"severity":"info"}]' \
    >/dev/null 2>&1 || bad "config set alerts (3 rules)"
start t --screen alerts
wait_for t "firing +memory " "alerts screen: a rule that holds fires with no monitor running (the TUI evaluates it)"
grep -Eq "evaluated by this TUI [0-9]+ s ago; no monitor daemon running \(nothing is notified" "$TMP/pane" \
    && ok "alerts screen: evaluated by this TUI, and no monitor daemon running" \
    || bad "alerts screen: who evaluated"
grep -Eq "memory +[0-9: -]+ +tui [0-9]+ s +info" "$TMP/pane" \
    && ok "alerts screen: each rule says when and by whom it was evaluated" \
    || bad "alerts screen: the rule's evaluation"
keys t F2
wait_for t "3 rules: 2 firing, 0 pending \(tui [0-9]+ s ago\)" "dashboard: the rules' states, by whom and when"

# a monitor daemon with a webhook that cannot be reached: the UI shows its evaluation and sinks
"$BIN" config set exporters.webhook.url http://127.0.0.1:9/hook >/dev/null 2>&1 \
    || bad "config set exporters.webhook.url"
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"one","metric":"bitnet_host_cpus","op":">=","threshold":1}]' >/dev/null 2>&1 \
    || bad "config set alerts (for the daemon)"
"$BIN" monitor --no-listen --interval 1 2>"$TMP/mon.err" &
mon=$!
PIDS="$PIDS $mon"
i=0
while [ $i -lt 100 ] && ! [ -f "$BITNET_HISTORY_DB.monitor.json" ]; do sleep 0.1; i=$((i + 1)); done
[ -f "$BITNET_HISTORY_DB.monitor.json" ] && ok "monitor: writes its status beside the history" \
    || bad "monitor: no status file"
expect_exit 0 "alerts eval --json with a daemon" -- "$BIN" alerts eval --json
[ "$("$JSONGET" evaluated_by monitor.running monitor.pid <"$TMP/out" | tr '\n' ' ')" = "monitor true $mon " ] \
    && ok "alerts eval: the daemon's evaluation (running, its pid)" \
    || bad "alerts eval with a daemon: $(tr '\n' ' ' <"$TMP/out")"
keys t a r
wait_for t "evaluated by the monitor daemon \(pid $mon, every 1 s\) [0-9]+ s ago; sinks: webhook" \
    "alerts screen: evaluated by the running monitor daemon, and its sinks"
wait_for t "sinks: webhook [0-9]+ waiting \(last delivery never\)" \
    "alerts screen: the webhook's backlog (the firing notification it could not deliver)" 15
grep -Eq "firing +one +[0-9: -]+ +monitor [0-9]+ s " "$TMP/pane" \
    && ok "alerts screen: a rule evaluated by the monitor" || bad "alerts screen: monitor's rule"
kill -KILL "$mon"
wait "$mon" 2>/dev/null
keys t r
wait_for t "evaluated by this TUI [0-9]+ s ago; no monitor daemon running \(its last pass [0-9]+ s ago\)" \
    "alerts screen: a killed daemon is no longer taken as running"

# ---- alerts: add, edit, silence, acknowledge from the UI --------------------------------------
CFG="$XDG_CONFIG_HOME/bitnet/config.json"
keys t n
wait_for t "Add a rule \(checked as bitnet validate checks it" "n: the form to add a rule"
keys t -l disk
keys t Tab
keys t -l bitnet_host_cpus
keys t Tab
keys t -l ">="
keys t Tab
keys t -l 1
keys t Enter
wait_for t "alerts add: added rule disk" "the form adds the rule (bitnet alerts add)"
[ "$("$JSONGET" alerts.2.name alerts.2.op alerts.2.threshold <"$CFG" | tr '\n' ' ')" = "disk >= 1 " ] \
    && ok "the rule is in the config file" || bad "config after add: $(cat "$CFG")"
wait_for t "firing +disk " "the new rule is evaluated at once and fires"
keys t n
keys t -l bad
keys t Tab
keys t -l bitnet_nonexistent
keys t Tab Tab
keys t -l 1
keys t Enter
wait_for t "alerts add failed: alerts\[3\]\.metric: 'bitnet_nonexistent' is not a metric" \
    "a rule on a metric the monitor never exports is refused, as validate refuses it"
[ "$("$JSONGET" alerts.3.name <"$CFG" 2>/dev/null)" = "" ] && ok "  ... and the config is unchanged" \
    || bad "the refused rule was saved: $(cat "$CFG")"
keys t End e
wait_for t "Edit the rule disk" "e: the form edits the selected rule"
keys t Tab Tab Tab
keys t -l 2
keys t Enter
wait_for t "alerts edit: changed rule disk" "the edited rule is saved (bitnet alerts edit)"
"$JSONGET" alerts.2.threshold <"$CFG" | grep -qx 2 && ok "  ... its new threshold in the config" \
    || bad "config after edit: $(cat "$CFG")"
keys t S
wait_for t "Silence disk: no notification for" "S: the silence prompt"
keys t -l 2h
keys t Enter
wait_for t "alerts silence: silenced disk until 20[0-9-]+T[0-9:]+Z" "S: silenced for 2 hours (bitnet alerts silence)"
"$JSONGET" alerts.2.silenced_until <"$CFG" | grep -Eq "^20[0-9-]+T[0-9:]+Z$" \
    && ok "  ... silenced_until in the config" || bad "config after silence: $(cat "$CFG")"
wait_for t "disk .* silenced 1[12][0-9] min more; bitnet_host_cpus >= 2" "the rule shows its silence"
keys t k
wait_for t "alerts ack: acknowledged disk \(firing since" "k: the firing rule is acknowledged (bitnet alerts ack)"
wait_for t "disk .* silenced 1[12][0-9] min more; acked; bitnet_host_cpus" "the rule shows it is acknowledged"
keys t q
wait_for t "EXIT=0" "q quits"

# the monitor records a silenced rule's transitions but notifies nothing
expect_exit 0 "alerts add: a rule that fires at once" -- \
    "$BIN" alerts add '{"name":"quiet","metric":"bitnet_host_cpus","op":">","threshold":0}'
expect_exit 0 "alerts silence quiet 1h" -- "$BIN" alerts silence quiet 1h
expect_exit 0 "monitor --once with the silenced rule" -- "$BIN" monitor --once --no-listen --json
expect_grep "alert quiet: inactive -> firing, silenced until" "$TMP/err" "  ... the transition is logged as silenced"
grep -q '"rule":"quiet"' "$TMP/out" && bad "a silenced rule was notified" || ok "  ... and not notified"
expect_exit 1 "alerts ack on a rule that does not fire" -- "$BIN" alerts ack slowpoke
expect_exit 0 "alerts silence quiet 0 lifts it" -- "$BIN" alerts silence quiet 0
"$JSONGET" alerts.3.silenced_until <"$CFG" >/dev/null 2>&1 && bad "silence 0 left silenced_until" \
    || ok "  ... silenced_until removed"
expect_exit 0 "alerts rm quiet" -- "$BIN" alerts rm quiet
expect_exit 2 "alerts edit without the rule: usage error" -- "$BIN" alerts edit disk

# ---- benchmarks: like with like, cancelled said, the context checked when entered, the graph -----
"$BIN" synth --shape tiny -o "$TMP/m.gguf" >/dev/null 2>&1 || bad "synth m.gguf"
"$BIN" synth --shape tiny --seed 2 -o "$TMP/m2.gguf" >/dev/null 2>&1 || bad "synth m2.gguf"
# an earlier run of another model; its runs of 16 tokens are too short for a 0.25 s sample
start b2 -m "$TMP/m2.gguf" --screen benchmarks
wait_for b2 "m2.gguf: idle" "benchmarks: another model loaded" 30
keys b2 Down Left r
wait_for b2 "pp 128, tg 16, 3 runs \(done\)" "benchmarks: a run of the other model (tg 16)" 60
grep -q "no data" "$TMP/pane" && bad "the live graph is empty after a benchmark of runs this short" \
    || ok "the live graph plots the runs, however short"
keys b2 q
wait_for b2 "EXIT=0" "  ... quit"
start b -m "$TMP/m.gguf" --screen benchmarks
wait_for b "m.gguf: idle" "benchmarks: the model loaded" 30
keys b r
wait_for b "pp 128, tg 16, 3 runs \(done\)" "benchmarks: a run finished, said done (tg 16 kept)" 60
wait_for b "ok +128 +16 +[0-9.]+ +[0-9.]+ +- +m2.gguf" \
    "vs now: no comparison with another model's run (-)"
# other sizes: the earlier run of this model is not compared either
keys b Down Right r
wait_for b "pp 128, tg 32, 3 runs \(done\)" "benchmarks: a run with tg 32" 60
wait_for b "ok +128 +16 +[0-9.]+ +[0-9.]+ +- +m.gguf" "vs now: no comparison with other sizes (-)"
grep -Eq "ok +128 +32 +[0-9.]+ +[0-9.]+ +[+-][0-9]+% +m.gguf" "$TMP/pane" \
    && ok "vs now: a run of the same model and sizes is compared" || bad "vs now: same sizes"
# the context (2048): refused as pp or tg is raised past it, not later at r
keys b Up
for i in $(seq 1 60); do keys b Right; done
wait_for b "pp \+ tg must fit the model's context \(2048\): pp 2016 \+ tg 32 \+ 1" \
    "the editor refuses pp + tg beyond the context when entered"
grep -Eq "prompt tokens \(pp\) +1984" "$TMP/pane" && ok "  ... pp stays at the last size that fits" \
    || bad "pp after the refusal: $(grep 'prompt tokens' "$TMP/pane")"
# a stopped run: cancelled, not done, and no nan in the history
keys b Down Down Right Right Right Right Right Right Right
keys b r
wait_for b "run 1/10" "benchmarks: a long run started" 30
keys b x
wait_for b "cancelled after [0-9] of 10 runs" "a stopped run says cancelled" 30
grep -q "pp 1984, tg 32, 10 runs (done)" "$TMP/pane" && bad "the stopped run also says done" \
    || ok "  ... not done"
wait_for b "cancelled +1984 +32 " "the stopped run is in the history as cancelled, with its sizes"
grep -qw "nan" "$TMP/pane" && bad "nan on the benchmarks screen" || ok "  ... no nan on the screen"
keys b q
wait_for b "EXIT=0" "q quits"

# ---- conversions: done says done, colour and label by the validation, its figures --------------
D=tests/data/convert
"$BIN" convert "$D/bitnet-packed" -o "$TMP/packed.gguf" --queue -t 2 >/dev/null 2>&1 || bad "queue packed"
"$BIN" convert "$D/llama-st" -o "$TMP/llama.gguf" --queue -t 2 >/dev/null 2>&1 || bad "queue llama-st"
i=0
while [ $i -lt 600 ]; do
    "$BIN" jobs list --json >"$TMP/jobs.json" 2>/dev/null
    [ "$(grep -o '"status":"done"' "$TMP/jobs.json" | wc -l)" -ge 2 ] && break
    "$JSONGET" jobs.0.status jobs.1.status <"$TMP/jobs.json" 2>/dev/null | grep -q failed && break
    sleep 0.2
    i=$((i + 1))
done
[ "$("$JSONGET" jobs.0.verdict jobs.1.verdict <"$TMP/jobs.json" 2>/dev/null | sort | tr '\n' ' ')" = "ok poor " ] \
    && ok "jobs list: each done conversion's verdict (ok, poor)" \
    || bad "jobs list verdicts: $(cat "$TMP/jobs.json")"
start v --screen conversions
wait_for v "done .*ok top-1 100% .*packed.gguf" "conversions: a good conversion is done, ok, with its top-1" 20
grep -Eq "done .*poor top-1 48% .*llama.gguf" "$TMP/pane" \
    && ok "conversions: a ternarized LLaMA says poor, with its top-1" || bad "conversions: poor verdict"
grep -q "validating" "$TMP/pane" && bad "a finished job still says validating" || ok "  ... no finished job says validating"
# the newest first: the LLaMA job is selected; its validation figures and its warning
wait_for v "poor: top-1 agreement 48\.[0-9]%, cosine mean 0\.9[0-9]+, KL mean [0-9.e-]+, perplexity 32\.43 -> 54\.02 \(\+66\.[0-9]%\)" \
    "conversions: the selected job's validation figures"
grep -q "LlamaForCausalLM weights were ternarized after training" "$TMP/pane" \
    && ok "conversions: the job's warning" || bad "conversions: the warning"
# an output whose folder is missing is refused when queued
keys v n
keys v -l "$D/bitnet-packed"
keys v Tab
keys v -l "$TMP/no/such/folder/x.gguf"
keys v Enter
wait_for v "convert --queue failed: [^ ]*/no/such/folder/x.gguf: the folder" \
    "conversions: an output in a missing folder is refused when queued"
keys v q
wait_for v "EXIT=0" "q quits"

finish test_tui_trust
