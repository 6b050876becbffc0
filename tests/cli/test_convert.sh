# bitnet convert and bitnet jobs: every input format converts (HF SafeTensors packed BitNet
# and sharded LLaMA, pytorch_model.bin, ONNX with external data) and the result loads
# (inspect) and runs (generate), sharded pytorch_model.bin too; validation JSON; LLaMA
# outputs have no sub-norms, and a LLaMA with ternary-valued weights converts with the
# reference's structure (logits match but for int8 activations); ternary and embedding types; history;
# malformed inputs give one line and exit 1 with nothing left behind; the queue: add, list,
# show, cancel (queued and running), retry, kill -9 of the worker mid-job then restart.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/data/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
# gt A B: A > B (decimal numbers)
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
no_tmp_left() {
    if ls "$1".tmp-* >/dev/null 2>&1; then bad "$2: a temporary file was left"; else
        ok "$2: no temporary file left"; fi
}

# ---- every format -------------------------------------------------------------------------
for m in bitnet-packed llama-st llama-pt llama-pt-sharded llama-onnx; do
    out="$TMP/$m.gguf"
    expect_exit 0 "convert $m" -- "$BITNET" convert "$D/$m" -o "$out" --json -t 2
    cp "$TMP/out" "$TMP/$m.json"
    cp "$TMP/err" "$TMP/$m.err"
    if jget "$TMP/$m.json" validation.cosine_mean validation.cosine_min validation.top1_agreement \
        validation.kl_mean validation.kl_max validation.ppl_ref validation.ppl_conv \
        validation.ppl_change_pct validation.tokens sha256 tokenizer >"$TMP/v"; then
        ok "$m: validation fields present"
    else
        bad "$m: validation fields missing"
    fi
    sha=$(sed -n 10p "$TMP/v")
    got=$(sha256sum "$out" | cut -d' ' -f1)
    [ "$sha" = "$got" ] && ok "$m: sha256 matches the file" || bad "$m: sha256 $sha != $got"
    [ "$(sed -n 11p "$TMP/v")" = gpt2 ] && ok "$m: tokenizer carried over" || bad "$m: tokenizer"
    expect_exit 0 "inspect $m" -- "$BITNET" inspect "$out"
    expect_exit 0 "generate with $m" -- "$BITNET" generate -m "$out" -p "This License" -n 4 \
        -t 1 --temp 0
    no_tmp_left "$out" "$m"
done

# the packed BitNet model was trained quantized: the conversion is exact up to rounding
v=$(jget "$TMP/bitnet-packed.json" validation.cosine_min validation.top1_agreement | tr '\n' ' ')
set -- $v
gt "$1" 0.999 && gt "$2" 0.98 && ok "bitnet-packed: cosine $1, top-1 $2" ||
    bad "bitnet-packed: cosine $1, top-1 $2"
[ "$(jget "$TMP/bitnet-packed.json" packed_source)" = true ] && ok "packed layout recognised" ||
    bad "packed layout not recognised"
# against transformers (tests/data/convert/reference.json, written by make_fixtures.py from the
# source models): the converted tokenizers give transformers' prompt ids, and the packed BitNet
# model (which transformers also runs with int8 activations) predicts transformers' top token
R=$D/reference.json
prompt=$(jget "$R" prompt)
for m in bitnet-packed:bitnet-packed llama-st:llama; do
    g=${m%%:*} r=${m#*:}
    got=$("$BITNET" tokenize -m "$TMP/$g.gguf" --bos --json "$prompt" 2>/dev/null | "$JSONGET" tokens)
    [ -n "$got" ] && [ "$got" = "$(jget "$R" "$r.prompt_ids")" ] &&
        ok "$g: the prompt's ids are transformers' ($got)" || bad "$g: prompt ids $got"
done
# its chat template (role | capitalize, <|eot_id|>, as the real 2B4T's) selects the 2b4t format
echo hi | "$BITNET" chat -m "$TMP/bitnet-packed.gguf" -n 2 -t 1 >"$TMP/chat" 2>&1
grep -q "format 2b4t" "$TMP/chat" && ok "bitnet-packed: chat uses the 2b4t format" ||
    bad "bitnet-packed chat: $(head -1 "$TMP/chat")"
top=$("$BITNET" generate -m "$TMP/bitnet-packed.gguf" -p "$prompt" -n 1 --temp 0 -t 1 --json 2>/dev/null |
    "$JSONGET" text)
id=$("$BITNET" tokenize -m "$TMP/bitnet-packed.gguf" --ids-only "$top" 2>/dev/null)
[ -n "$id" ] && [ "$id" = "$(jget "$R" bitnet-packed.top5.0)" ] &&
    ok "bitnet-packed: the next token is transformers' top-1 ($id)" ||
    bad "bitnet-packed: next token '$top' ($id), transformers' top-1 $(jget "$R" bitnet-packed.top5.0)"
# the three LLaMA sources hold the same weights: the same architecture, a warning with numbers
for m in llama-st llama-pt llama-onnx; do
    [ "$(jget "$TMP/$m.json" architecture)" = bitnet ] && ok "$m: architecture bitnet" ||
        bad "$m: architecture"
    "$BITNET" inspect "$TMP/$m.gguf" --json >"$TMP/i" 2>/dev/null
    if grep -q '"blk.1.ffn_down.weight"' "$TMP/i" && ! grep -q 'sub_norm' "$TMP/i"; then
        ok "$m: no sub-norm tensors (LLaMA has none)"
    else
        bad "$m: sub-norm tensors in the output"
    fi
    expect_grep "ternarized after training.*top-1 agreement.*perplexity" "$TMP/$m.err" \
        "$m: post-training ternarization warning with numbers"
    jget "$TMP/$m.json" warnings.0 >/dev/null && ok "$m: warnings in JSON" || bad "$m: warnings"
done
[ "$(jget "$TMP/llama-st.json" format)" = safetensors ] && [ "$(jget "$TMP/llama-pt.json" format)" = pytorch ] &&
    [ "$(jget "$TMP/llama-onnx.json" format)" = onnx ] && ok "formats reported" || bad "formats"
[ "$(jget "$TMP/llama-pt.json" validation.ppl_conv)" = "$(jget "$TMP/llama-pt-sharded.json" validation.ppl_conv)" ] &&
    ok "sharded pytorch_model.bin converts to the same model" || bad "llama-pt and llama-pt-sharded differ"
[ "$(jget "$TMP/llama-st.json" validation.ppl_conv)" = "$(jget "$TMP/llama-onnx.json" validation.ppl_conv)" ] &&
    ok "F16 safetensors and its ONNX export convert to the same model" || bad "llama-st and llama-onnx differ"
# llama-ternary's projections are +-a already (tests/convert/make_ternary_fixture.py): the
# weights convert exactly, so the validation compares the converted model's structure with
# the f32 reference's; only the int8 activations differ. (Writing LLaMA's missing sub-norms as
# constants, as bitnet once did, gave cosine_min 0.83, top-1 0.87, kl_max 0.18 here.)
expect_exit 0 "convert llama-ternary" -- "$BITNET" convert "$D/llama-ternary" -o "$TMP/lt.gguf" --json -t 2
v=$(jget "$TMP/out" validation.cosine_min validation.top1_agreement validation.kl_max | tr '\n' ' ')
set -- $v
gt "$1" 0.999 && gt "$2" 0.98 && gt 0.001 "$3" &&
    ok "llama-ternary: the engine computes the reference's structure (cosine_min $1, top-1 $2, kl_max $3)" ||
    bad "llama-ternary: cosine_min $1, top-1 $2, kl_max $3 (is a sub-norm applied?)"

# ---- types, options ---------------------------------------------------------------------------
for ty in tq2_0 tq1_0; do
    expect_exit 0 "convert --type $ty --embd q8_0" -- "$BITNET" convert "$D/bitnet-packed" \
        -o "$TMP/b-$ty.gguf" --type "$ty" --embd q8_0 --json -t 2
    gt "$(jget "$TMP/out" validation.top1_agreement)" 0.95 && ok "$ty: top-1 agreement" ||
        bad "$ty: top-1 $(jget "$TMP/out" validation.top1_agreement)"
    "$BITNET" inspect "$TMP/b-$ty.gguf" --json >"$TMP/i" 2>/dev/null
    grep -q "\"$ty\"" "$TMP/i" && grep -q '"q8_0"' "$TMP/i" && ok "$ty: tensor types in the file" ||
        bad "$ty: tensor types"
done
expect_exit 1 "tq2_0 on 128-wide LLaMA" -- "$BITNET" convert "$D/llama-st" -o "$TMP/x.gguf" --type tq2_0
expect_one_line_err "tq2_0 on 128-wide LLaMA"
expect_grep "multiple of 256" "$TMP/err" "the width problem is named"
expect_exit 0 "--no-validate" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/nv.gguf" --no-validate --json
jget "$TMP/out" validation >/dev/null 2>&1 && bad "--no-validate still validated" || ok "--no-validate: no validation"
printf 'The terms of this License\nYou may convey verbatim copies\n' >"$TMP/prompts.txt"
expect_exit 0 "--prompts FILE" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/p.gguf" --prompts "$TMP/prompts.txt" --json
[ "$(jget "$TMP/out" validation.prompts)" = 2 ] && ok "two prompts from the file" || bad "prompts count"
expect_exit 0 "--no-tokenizer" -- "$BITNET" convert "$D/llama-pt/pytorch_model.bin" -o "$TMP/nt.gguf" --no-tokenizer --no-validate --json
[ "$(jget "$TMP/out" tokenizer)" = none ] && ok "a weights file as SRC, no tokenizer" || bad "--no-tokenizer"
expect_exit 0 "human output" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/h.gguf"
expect_grep "^validation: .* top-1 agreement" "$TMP/out" "human output shows the validation"
expect_exit 2 "no output" -- "$BITNET" convert "$D/bitnet-packed"
expect_exit 2 "bad --type" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/x.gguf" --type q4_0

# ---- history ------------------------------------------------------------------------------------
expect_exit 0 "history list --command convert" -- "$BITNET" history list --command convert --json
jget "$TMP/out" runs.0.metrics.validation.top1_agreement runs.0.metrics.output_sha256 >/dev/null &&
    ok "conversions recorded with validation and sha256" || bad "convert run in history"

# ---- malformed inputs ---------------------------------------------------------------------------
for d in "$D"/bad/*; do
    n=$(basename "$d")
    expect_exit 1 "malformed: $n" -- "$BITNET" convert "$d" -o "$TMP/bad-$n.gguf"
    expect_one_line_err "malformed: $n"
    [ -e "$TMP/bad-$n.gguf" ] && bad "$n: an output was written" || no_tmp_left "$TMP/bad-$n.gguf" "$n"
done
expect_exit 1 "evil pickle" -- "$BITNET" convert "$D/bad/evil-pickle" -o "$TMP/e.gguf"
expect_grep "global 'os.system' is not allowed" "$TMP/err" "the refused global is named"
expect_exit 1 "missing source" -- "$BITNET" convert "$TMP/none" -o "$TMP/x.gguf"
expect_one_line_err "missing source"
expect_exit 1 "unwritable output" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/nodir/x.gguf"
expect_one_line_err "unwritable output"

# ---- SentencePiece tokenizers -----------------------------------------------------------------
# tests/data/convert/spm (tests/convert/make_spm_fixture.py): a BPE SentencePiece model of 384
# pieces, the tokenizer.json transformers writes for it (Metaspace), the same in LLaMA-2's layout
# (normalizer), and SentencePiece's own ids for a dozen texts. Each goes beside llama-st's weights
# (whose vocabulary has 384 entries too); the converted vocabulary must give exactly the source's
# ids: SentencePiece's from tokenizer.model and the LLaMA-2 layout, Hugging Face's from the
# Metaspace tokenizer.json (expected-json.txt, tests/convert/make_spm_hf_ids.py), which puts no
# "▁" before a text that starts with a space (cases 03 and 12).
S=$D/spm
spm_dir() { # NAME FILE...: a model directory with llama-st's weights and the named files of $S
    dir="$TMP/spm-$1"; shift
    mkdir -p "$dir"
    cp "$D/llama-st/config.json" "$D"/llama-st/*.safetensors "$D/llama-st/model.safetensors.index.json" "$dir/"
    for f in "$@"; do cp "$S/$f" "$dir/"; done
}
spm_dir model tokenizer.model tokenizer_config.json
spm_dir json tokenizer.json tokenizer_config.json
spm_dir legacy tokenizer_config.json
cp "$S/tokenizer-legacy.json" "$TMP/spm-legacy/tokenizer.json"
for r in model json legacy; do
    expect_exit 0 "convert with a SentencePiece tokenizer ($r)" -- "$BITNET" convert "$TMP/spm-$r" \
        -o "$TMP/spm-$r.gguf" --json -t 2
    [ "$(jget "$TMP/out" tokenizer)" = llama ] && ok "$r: carried over as a llama vocabulary" ||
        bad "$r: tokenizer $(jget "$TMP/out" tokenizer)"
    n=0; good=0; exp=$S/expected.txt
    [ "$r" = json ] && exp=$S/expected-json.txt
    while read -r c want; do
        n=$((n + 1))
        got=$("$BITNET" tokenize -m "$TMP/spm-$r.gguf" --json --file "$S/cases/$c.txt" | "$JSONGET" tokens)
        [ "$got" = "$want" ] && good=$((good + 1)) || echo "       $r: case $c: $got, the source's $want"
    done <"$exp"
    [ "$n" -ge 12 ] && [ "$good" = "$n" ] && ok "$r: $good/$n texts give the source's ids ($(basename "$exp"))" ||
        bad "$r: $good/$n texts give the source's ids ($(basename "$exp"))"
done
# a long text (the GPL, which Debian ships): the vocabularies made from tokenizer.json (scores
# derived from the merges) tokenize it exactly as the one from tokenizer.model (the Metaspace one
# without the "▁" SentencePiece puts before the GPL's leading spaces)
T=/usr/share/common-licenses/GPL-3
for r in model json legacy; do
    "$BITNET" tokenize -m "$TMP/spm-$r.gguf" --ids-only --file "$T" >"$TMP/ids-$r" 2>&1
done
tr ' ' '\n' <"$TMP/ids-model" | tail -n +2 >"$TMP/ids-model-1"
tr ' ' '\n' <"$TMP/ids-json" >"$TMP/ids-json-1"
[ "$(wc -w <"$TMP/ids-model")" -gt 10000 ] && cmp -s "$TMP/ids-model-1" "$TMP/ids-json-1" &&
    cmp -s "$TMP/ids-model" "$TMP/ids-legacy" &&
    ok "the GPL: $(wc -w <"$TMP/ids-model") ids, the same from all three" ||
    bad "the GPL tokenizes differently through tokenizer.json"
"$BITNET" inspect "$TMP/spm-legacy.gguf" >"$TMP/i" 2>&1
expect_grep "add_bos_token .* true" "$TMP/i" "legacy: BOS from the <s> \$A post-processor"
expect_grep "add_space_prefix .* true" "$TMP/i" "legacy: the space prefix from Prepend"
"$BITNET" inspect "$TMP/spm-model.gguf" >"$TMP/i" 2>&1
expect_grep "unknown_token_id .* 0" "$TMP/i" "model: the unknown token id"
# a tokenizer.model whose normalizer is NFKC (a second normalizer_spec appended: protobuf
# merges it over the first, name = "nmt_nfkc") converts with a warning in the report
spm_dir nfkc tokenizer.model tokenizer_config.json
printf '\032\012\012\010nmt_nfkc' >>"$TMP/spm-nfkc/tokenizer.model"
expect_exit 0 "convert with an NFKC tokenizer.model" -- "$BITNET" convert "$TMP/spm-nfkc" \
    -o "$TMP/spm-nfkc.gguf" --json -t 2
jget "$TMP/out" warnings >"$TMP/w" 2>/dev/null
expect_grep "normalizes text (nmt_nfkc)" "$TMP/w" "the normalizer caveat is in the report's warnings"
expect_grep "warning: tokenizer.model normalizes text" "$TMP/err" "and on stderr"
# tokenizer.model is preferred over a tokenizer.json that is not byte-level (this one has a
# normalizer bitnet refuses on its own)
spm_dir both tokenizer.model
sed 's/"normalizer": null/"normalizer": {"type": "NFKC"}/' "$S/tokenizer.json" >"$TMP/spm-both/tokenizer.json"
expect_exit 0 "tokenizer.model beside an unusable tokenizer.json" -- "$BITNET" convert "$TMP/spm-both" \
    -o "$TMP/x.gguf" --no-validate
rm "$TMP/spm-both/tokenizer.model"
expect_exit 1 "... which alone is refused" -- "$BITNET" convert "$TMP/spm-both" -o "$TMP/x.gguf" --no-validate --force
expect_one_line_err "an NFKC normalizer"
expect_grep "NFKC normalizer is not one the llama tokenizer applies" "$TMP/err" "the normalizer is named"
# malformed tokenizer.model files: one line naming the problem
spm_dir bad
: >"$TMP/spm-bad/tokenizer.model"
expect_exit 1 "empty tokenizer.model" -- "$BITNET" convert "$TMP/spm-bad" -o "$TMP/bad-spm.gguf"
expect_one_line_err "empty tokenizer.model"
expect_grep "tokenizer.model: the file is empty" "$TMP/err" "the empty file is named"
head -c 3000 "$S/tokenizer.model" >"$TMP/spm-bad/tokenizer.model"
expect_exit 1 "truncated tokenizer.model" -- "$BITNET" convert "$TMP/spm-bad" -o "$TMP/bad-spm.gguf"
expect_one_line_err "truncated tokenizer.model"
expect_grep "not a SentencePiece model" "$TMP/err" "says the protobuf does not decode"
[ -e "$TMP/bad-spm.gguf" ] && bad "a failed conversion left its output" || no_tmp_left "$TMP/bad-spm.gguf" "bad tokenizer.model"
expect_exit 0 "... unless --no-tokenizer" -- "$BITNET" convert "$TMP/spm-bad" -o "$TMP/x.gguf" --no-tokenizer --no-validate --force

# ---- the queue ----------------------------------------------------------------------------------
expect_exit 0 "jobs list on an empty queue" -- "$BITNET" jobs list --json
[ "$(jget "$TMP/out" jobs.0 2>/dev/null)" = "" ] && ok "no jobs yet" || bad "jobs on a new queue"
expect_exit 0 "convert --queue" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/q1.gguf" --queue --json
j1=$(jget "$TMP/out" job)
expect_exit 0 "jobs wait" -- "$BITNET" jobs wait "$j1" --timeout 120 --json
[ "$(jget "$TMP/out" jobs.0.status)" = done ] && ok "job $j1 done" || bad "job $j1: $(jget "$TMP/out" jobs.0.status)"
[ -f "$TMP/q1.gguf" ] && ok "the queued conversion wrote its output" || bad "no q1.gguf"
expect_exit 0 "jobs show" -- "$BITNET" jobs show "$j1" --json
jget "$TMP/out" result.validation.top1_agreement result.sha256 args.src percent >/dev/null &&
    ok "jobs show has the report and progress" || bad "jobs show fields"
[ "$(jget "$TMP/out" percent)" = 100 ] && ok "percent 100 when done" || bad "percent"
expect_exit 0 "jobs list (table)" -- "$BITNET" jobs list
expect_grep "done" "$TMP/out" "the table shows the done job"

# a running job cancelled: slow a new worker down so it is caught mid-job
worker_gone() { # until the idle worker has exited
    i=0
    while [ $i -lt 100 ]; do
        "$BITNET" jobs list --json >"$TMP/w" 2>/dev/null
        [ "$(jget "$TMP/w" worker_running)" = false ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
worker_gone && ok "the idle worker exits" || bad "the worker does not exit"
export BITNET_CONVERT_THROTTLE_MS=300
wait_running() { # job id: until it is running and writing
    i=0
    while [ $i -lt 100 ]; do
        "$BITNET" jobs show "$1" --json >"$TMP/s" 2>/dev/null
        [ "$(jget "$TMP/s" status)" = running ] && [ "$(jget "$TMP/s" phase)" = writing ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
"$BITNET" convert "$D/bitnet-packed" -o "$TMP/q2.gguf" --queue --json >"$TMP/out" 2>&1
j2=$(jget "$TMP/out" job)
"$BITNET" convert "$D/bitnet-packed" -o "$TMP/q3.gguf" --queue --json >"$TMP/out" 2>&1
j3=$(jget "$TMP/out" job)
expect_exit 0 "cancel a queued job" -- "$BITNET" jobs cancel "$j3"
wait_running "$j2" && ok "job $j2 runs" || bad "job $j2 never ran"
t0=$(date +%s)
expect_exit 0 "cancel a running job" -- "$BITNET" jobs cancel "$j2"
"$BITNET" jobs wait "$j2" --timeout 30 >/dev/null 2>&1
t1=$(date +%s)
"$BITNET" jobs show "$j2" --json >"$TMP/s"
[ "$(jget "$TMP/s" status)" = cancelled ] && [ $((t1 - t0)) -le 5 ] && ok "cancelled within $((t1 - t0)) s" ||
    bad "cancel: $(jget "$TMP/s" status) after $((t1 - t0)) s"
[ -e "$TMP/q2.gguf" ] && bad "a cancelled job left its output" || no_tmp_left "$TMP/q2.gguf" "cancelled job"
"$BITNET" jobs show "$j3" --json >"$TMP/s"
[ "$(jget "$TMP/s" status)" = cancelled ] && ok "the queued job was cancelled" || bad "queued cancel"
expect_exit 1 "cancel a finished job" -- "$BITNET" jobs cancel "$j1"
expect_one_line_err "cancel a finished job"

# kill -9 of the worker mid-job, then the next start finishes it cleanly
"$BITNET" convert "$D/bitnet-packed" -o "$TMP/q4.gguf" --queue --json >"$TMP/out" 2>&1
j4=$(jget "$TMP/out" job)
if wait_running "$j4"; then
    pid=$(jget "$TMP/s" worker_pid)
    kill -9 "$pid" 2>/dev/null && ok "worker $pid killed mid-job" || bad "kill -9 $pid"
    sleep 0.3
    [ -e "$TMP/q4.gguf" ] && bad "a partial output carries the final name" || ok "no output under the final name"
    unset BITNET_CONVERT_THROTTLE_MS
    expect_exit 0 "jobs show after the kill" -- "$BITNET" jobs show "$j4" --json
    [ "$(jget "$TMP/out" status)" = queued ] && ok "the dead worker's job is queued again" ||
        bad "after kill: $(jget "$TMP/out" status)"
    no_tmp_left "$TMP/q4.gguf" "killed worker"
    expect_exit 0 "jobs wait restarts the worker" -- "$BITNET" jobs wait "$j4" --timeout 120 --json
    [ "$(jget "$TMP/out" jobs.0.status)" = done ] && ok "job $j4 done after the restart" || bad "job $j4 not done"
    [ "$(jget "$TMP/out" jobs.0.recovered)" -ge 1 ] && ok "recovery counted" || bad "recovered count"
    "$BITNET" inspect "$TMP/q4.gguf" >/dev/null 2>&1 && ok "the restarted job's output loads" || bad "q4.gguf"
    no_tmp_left "$TMP/q4.gguf" "restarted job"
else
    bad "job $j4 never ran"
fi
unset BITNET_CONVERT_THROTTLE_MS
worker_gone || bad "the worker does not exit"
expect_exit 0 "retry a cancelled job" -- "$BITNET" jobs retry "$j3"
expect_exit 0 "... and wait for it" -- "$BITNET" jobs wait "$j3" --timeout 120
[ -f "$TMP/q3.gguf" ] && ok "the retried job wrote its output" || bad "no q3.gguf"
expect_exit 1 "jobs show of no job" -- "$BITNET" jobs show 999
expect_one_line_err "jobs show of no job"
expect_exit 2 "jobs with no subcommand" -- "$BITNET" jobs
expect_exit 2 "jobs show with a bad id" -- "$BITNET" jobs show x
worker_gone || bad "the worker does not exit" # before the directory goes away

# a history of schema 3 (before the queue) gets the jobs table on the next open
if command -v sqlite3 >/dev/null 2>&1; then
    OLD="$TMP/old.db"
    BITNET_HISTORY_DB="$OLD" "$BITNET" history list >/dev/null 2>&1
    sqlite3 "$OLD" "DROP TABLE billing_outbox; DROP TABLE jobs; DROP TABLE audit; DROP TABLE usage;
        DROP TABLE api_keys; DROP TABLE tenants; PRAGMA user_version=3;"
    BITNET_HISTORY_DB="$OLD" "$BITNET" jobs list --json >"$TMP/out" 2>"$TMP/err" &&
        [ "$(sqlite3 "$OLD" 'PRAGMA user_version')" = 7 ] && ok "schema 3 migrated to 7 (jobs)" ||
        bad "migration 3 -> 7: $(cat "$TMP/err")"
else
    echo "  skip the schema 3 migration: no sqlite3 command"
fi
finish "test_convert.sh"
