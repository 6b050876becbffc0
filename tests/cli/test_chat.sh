# bitnet chat without a terminal: one message per line of stdin, replies on stdout, the
# JSON log, /reset, /quit, EOF, the plain format of a model without a chat template and
# the 2b4t format of one with it, starting over when the context is full, the default
# model from the config (BITNET_MODEL), the run history, and usage errors.
. tests/cli/lib.sh
export XDG_CONFIG_HOME="$TMP/config" XDG_DATA_HOME="$TMP/data"
export BITNET_CONFIG="$TMP/no-config.json"
export BITNET_HISTORY_DB="$TMP/data/bitnet/history.db"
unset BITNET_HISTORY BITNET_MODEL BITNET_THREADS BITNET_CTX BITNET_TEMP BITNET_SEED

M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 7 >/dev/null 2>&1 || bad "synth"
CHAT="-m $M -t 1 --temp 0 -n 8"

# jline FILE N PATH...: the values at PATHs of line N (a JSON document) of FILE
jline() { f=$1; n=$2; shift 2; sed -n "${n}p" "$f" | "$JSONGET" "$@"; }

# ---- two messages, a reply to each ------------------------------------------------------
printf 'hello there\nhow are you?\n' >"$TMP/in2"
# shellcheck disable=SC2086
expect_exit 0 "chat: two messages on stdin" -- sh -c "\"$BITNET\" chat $CHAT --json-log \"$TMP/log\" <\"$TMP/in2\""
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok "two replies on stdout, one line each (plain format)" \
    || bad "stdout has $(wc -l <"$TMP/out") lines"
[ "$(wc -l <"$TMP/log")" -eq 2 ] && ok "the JSON log has one line per turn" \
    || bad "log has $(wc -l <"$TMP/log") lines"
expect_grep "format plain (no chat template)" "$TMP/err" "a model without a template uses the plain format"
if jline "$TMP/log" 1 turn user reply reply_tokens tokens_per_s stop context_used >"$TMP/j1" &&
    jline "$TMP/log" 2 turn user reply_tokens context_used >"$TMP/j2"; then
    ok "log lines parse with turn, user, reply, tokens, tokens/s, stop, context"
else
    bad "log lines: $(cat "$TMP/log")"
fi
awk 'NR==1 { t = $1 } NR==2 { u = $0 } NR==4 { n = $1 } NR==5 { s = $1 } NR==7 { c = $1 }
     END { exit !(t == 1 && u == "hello there" && n >= 1 && n <= 8 && s >= 0 && c > n) }' "$TMP/j1" \
    && ok "turn 1: the message, 1..8 reply tokens, context used" || bad "turn 1: $(tr '\n' ' ' <"$TMP/j1")"
c1=$(sed -n 7p "$TMP/j1"); c2=$(sed -n 4p "$TMP/j2")
[ "$c2" -gt "$c1" ] && ok "turn 2 continues the cache ($c1 -> $c2 tokens)" \
    || bad "context used $c1 then $c2"
first=$(sed -n 1p "$TMP/out")
[ "$(sed -n 3p "$TMP/j1")" = "$first" ] && ok "the log's reply is the text printed" \
    || bad "reply '$first' vs log '$(sed -n 3p "$TMP/j1")'"

# the first turn is "User: MSG\nAssistant:": generate on that prompt gives the same text
"$BITNET" generate -m "$M" -t 1 --temp 0 -n 8 --json -p 'User: hello there
Assistant:' 2>/dev/null | "$JSONGET" text | sed -n 1p | sed 's/^[[:space:]]*//' >"$TMP/gen"
[ "$(cat "$TMP/gen")" = "$first" ] && ok "the reply is what generate makes from the plain format" \
    || bad "chat '$first' vs generate '$(cat "$TMP/gen")'"

# ---- /reset, /help, unknown commands, /quit ------------------------------------------------
printf 'hello there\n/reset\n/help\n/nonsense\nhello there\n/quit\nnot answered\n' >"$TMP/in3"
expect_exit 0 "chat with /reset and /quit" -- sh -c "\"$BITNET\" chat $CHAT --json-log \"$TMP/log3\" <\"$TMP/in3\""
[ "$(wc -l <"$TMP/log3")" -eq 2 ] && ok "commands are not messages; nothing after /quit" \
    || bad "log3 has $(wc -l <"$TMP/log3") lines"
r1=$(jline "$TMP/log3" 1 reply context_used | tr '\n' '|')
r2=$(jline "$TMP/log3" 2 reply context_used | tr '\n' '|')
[ -n "$r1" ] && [ "$r1" = "$r2" ] && ok "after /reset the same message gets the same reply from an empty cache" \
    || bad "after /reset: '$r1' vs '$r2'"
expect_grep "conversation reset" "$TMP/err" "/reset says so"
expect_grep "/quit" "$TMP/err" "/help lists the commands"
expect_grep "unknown command /nonsense" "$TMP/err" "an unknown command is named"

# ---- EOF at once; empty lines -----------------------------------------------------------
expect_exit 0 "chat with no input" -- sh -c "\"$BITNET\" chat $CHAT </dev/null"
[ ! -s "$TMP/out" ] && ok "no input, no output" || bad "output without input"
printf '\n\nhi\n' >"$TMP/in4"
expect_exit 0 "chat skips empty lines" -- sh -c "\"$BITNET\" chat $CHAT <\"$TMP/in4\""
[ "$(wc -l <"$TMP/out")" -eq 1 ] && ok "one reply for one message" || bad "$(wc -l <"$TMP/out") replies"

# ---- a full context starts over ---------------------------------------------------------
printf 'hello there\nhow are you?\nand then?\n' >"$TMP/in5"
expect_exit 0 "chat in a context of 40 tokens" -- sh -c "\"$BITNET\" chat $CHAT -c 40 --system 'Be kind.' --json-log \"$TMP/log5\" <\"$TMP/in5\""
expect_grep "full: starting over with the system prompt" "$TMP/err" "a full context starts over, and says so"
[ "$(wc -l <"$TMP/log5")" -eq 3 ] && ok "every message got a reply" || bad "log5: $(wc -l <"$TMP/log5") lines"

# ---- the 2b4t format, from a chat template ------------------------------------------------
# Inserts tokenizer.chat_template right after the GGUF header: a key/value of 64*k bytes
# keeps the data section aligned. (the header: magic, version, u64 tensors, u64 keys)
le64() { v=$1; i=0; while [ $i -lt 8 ]; do printf "\\$(printf %03o $((v % 256)))"; v=$((v / 256)); i=$((i + 1)); done; }
T="{% for m in messages %}{{ 'User: ' + m['content'] + '<|eot_id|>Assistant: ' }}{% endfor %}"
while [ $(((43 + ${#T}) % 64)) -ne 0 ]; do T="$T "; done
nkv=$(od -An -tu8 -j16 -N8 "$M" | tr -d ' ')
{
    dd if="$M" bs=16 count=1 2>/dev/null
    le64 $((nkv + 1))
    le64 23; printf 'tokenizer.chat_template'; printf '\010\000\000\000'; le64 ${#T}; printf '%s' "$T"
    tail -c +25 "$M"
} >"$TMP/tmpl.gguf"
"$BITNET" inspect "$TMP/tmpl.gguf" --json >"$TMP/insp" 2>&1 && grep -q "eot_id" "$TMP/insp" \
    && ok "a copy of the model with a chat template" || bad "the patched model: $(head -3 "$TMP/insp")"
expect_exit 0 "chat with the 2B4T template" -- sh -c "\"$BITNET\" chat -m \"$TMP/tmpl.gguf\" -t 1 --temp 0 -n 6 --json-log \"$TMP/log6\" <\"$TMP/in2\""
expect_grep "format 2b4t (the model's chat template)" "$TMP/err" "the 2B4T template is recognised"
[ "$(wc -l <"$TMP/log6")" -eq 2 ] && ok "two turns in the 2b4t format" || bad "log6: $(wc -l <"$TMP/log6") lines"

# ---- the default model from the config (here BITNET_MODEL) ------------------------------
expect_exit 0 "chat without -m, BITNET_MODEL set" -- sh -c "BITNET_MODEL=\"$M\" \"$BITNET\" chat -t 1 -n 2 </\"$TMP/in4\""
expect_grep "chat: $M;" "$TMP/err" "the configured model is used"

# ---- history ------------------------------------------------------------------------------
expect_exit 0 "history list --command chat" -- "$BITNET" history list --command chat --json
"$JSONGET" runs.0.command runs.0.status runs.0.metrics.turns runs.0.metrics.tokens \
    runs.0.metrics.tokens_per_s runs.0.metrics.format <"$TMP/out" >"$TMP/h" 2>&1 \
    && ok "the chat is recorded with turns, tokens, tokens/s, format" || bad "history: $(cat "$TMP/h")"
awk 'NR==1 { c = $0 } NR==2 { s = $0 } NR==3 { t = $1 } NR==4 { n = $1 } NR==5 { r = $1 }
     END { exit !(c == "chat" && s == "ok" && t == 1 && n >= 1 && r >= 0) }' "$TMP/h" \
    && ok "command chat, status ok, 1 turn, tokens" || bad "history record: $(tr '\n' ' ' <"$TMP/h")"

# ---- errors ---------------------------------------------------------------------------------
expect_exit 2 "chat with an unknown option" -- "$BITNET" chat -m "$M" --bogus
expect_exit 2 "chat -n 0" -- "$BITNET" chat -m "$M" -n 0
expect_exit 2 "chat --temp without a value" -- "$BITNET" chat -m "$M" --temp
expect_exit 1 "chat with a missing model" -- sh -c "\"$BITNET\" chat -m \"$TMP/none.gguf\" </dev/null"
expect_one_line_err "chat with a missing model"
expect_exit 1 "chat with an unwritable log" -- sh -c "\"$BITNET\" chat -m \"$M\" --json-log \"$TMP/no/dir/log\" </dev/null"
expect_exit 0 "help chat" -- "$BITNET" help chat
expect_grep "plain" "$TMP/out" "the help names the plain format"
finish test_chat
