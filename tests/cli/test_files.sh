# A user's files are never destroyed (issue 12): -o never replaces an input of the same run
# (the same file through a symlink or a hard link too) and an existing output needs --force,
# for convert, synth, train export, history export and tokenizer train; a missing output
# folder is an error before any work; temporaries are made with O_EXCL (a symlink planted at
# the checkpoint's old temporary name is not followed) and a killed run's are removed by the
# next run; a FIFO or a device given as a model, config, tokenizer or data file is refused at
# once (each under `timeout` so that a hang fails the test instead of the suite).
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/data/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_CONVERT_THROTTLE_MS
D=tests/data/convert
jget() { f=$1; shift; "$JSONGET" "$@" <"$f"; }
# same FILE COPY DESCRIPTION: FILE still has COPY's bytes
same() { if cmp -s "$1" "$2"; then ok "$3"; else bad "$3: $1 changed"; fi; }
# refused WHAT PATTERN -- command...: exit 1, one line on stderr naming the problem
refused() {
    what=$1; pat=$2; shift 3
    expect_exit 1 "$what" -- "$@"
    expect_one_line_err "$what"
    expect_grep "$pat" "$TMP/err" "$what: says why"
}
# a pid that is surely dead: a shell that has exited and been reaped
dead_pid=$(sh -c 'echo $$')

i=0; : >"$TMP/text.txt"
while [ $i -lt 60 ]; do
    echo "The quick brown fox jumps over the lazy dog while the cat sleeps, $i times." >>"$TMP/text.txt"
    i=$((i + 1))
done
cp "$TMP/text.txt" "$TMP/text.orig"

# ---- synth ----------------------------------------------------------------------------------
M="$TMP/m.gguf"
expect_exit 0 "synth a new file" -- "$BITNET" synth --shape tiny -o "$M" --seed 7
cp "$M" "$TMP/m.orig"
refused "synth over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" synth --shape tiny -o "$M" --seed 8
same "$M" "$TMP/m.orig" "synth without --force left the file alone"
expect_exit 0 "synth --force replaces it" -- "$BITNET" synth --shape tiny -o "$M" --seed 8 --force
cmp -s "$M" "$TMP/m.orig" && bad "synth --force did not replace the file" || ok "synth --force wrote a new model"
refused "synth into a missing folder" "folder .* does not exist" -- \
    "$BITNET" synth --shape tiny -o "$TMP/nodir/x.gguf"
cp "$M" "$TMP/v.gguf"
cp "$M" "$TMP/v.orig"
ln -s v.gguf "$TMP/v-link.gguf"
ln "$TMP/v.gguf" "$TMP/v-hard.gguf"
for o in v.gguf v-link.gguf v-hard.gguf; do
    refused "synth --vocab X -o $o --force (the input)" "is an input of this run" -- \
        "$BITNET" synth --shape tiny --vocab "$TMP/v.gguf" -o "$TMP/$o" --force
done
same "$TMP/v.gguf" "$TMP/v.orig" "the --vocab input is intact"
cp "$D/bitnet-packed/tokenizer.json" "$TMP/tok.json"
refused "synth --tokenizer X -o X --force" "is an input of this run" -- \
    "$BITNET" synth --shape tiny --tokenizer "$TMP/tok.json" -o "$TMP/tok.json" --force
same "$TMP/tok.json" "$D/bitnet-packed/tokenizer.json" "the --tokenizer input is intact"

# ---- convert --------------------------------------------------------------------------------
C="$TMP/c.gguf"
expect_exit 0 "convert to a new file" -- "$BITNET" convert "$D/bitnet-packed" -o "$C" --no-validate
cp "$C" "$TMP/c.orig"
refused "convert over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" convert "$D/bitnet-packed" -o "$C" --no-validate
same "$C" "$TMP/c.orig" "convert without --force left the file alone"
expect_exit 0 "convert --force replaces it" -- "$BITNET" convert "$D/bitnet-packed" -o "$C" --no-validate --force
refused "convert into a missing folder" "folder .* does not exist" -- \
    "$BITNET" convert "$D/bitnet-packed" -o "$TMP/nodir/x.gguf"
"$BITNET" history list --command convert --json >"$TMP/h" 2>/dev/null
[ "$(jget "$TMP/h" runs.0.metrics.tensors 2>/dev/null)" = "" ] &&
    ok "the missing folder stopped it before reading the model" || bad "the source was read first"
cp -r "$D/bitnet-packed" "$TMP/src"
ln "$TMP/src/model.safetensors" "$TMP/hard.gguf"
ln -s src/config.json "$TMP/link.gguf"
for o in src/model.safetensors src/config.json src/tokenizer.json hard.gguf link.gguf; do
    refused "convert -o $o --force (a file of the source)" "file of the source model" -- \
        "$BITNET" convert "$TMP/src" -o "$TMP/$o" --no-validate --force
done
refused "convert WEIGHTS -o WEIGHTS --force" "is an input of this run" -- \
    "$BITNET" convert "$TMP/src/model.safetensors" -o "$TMP/src/model.safetensors" --force
refused "convert WEIGHTS -o CONFIG-BESIDE-IT --force" "file of the source model" -- \
    "$BITNET" convert "$TMP/src/model.safetensors" -o "$TMP/src/config.json" --force
for f in model.safetensors config.json tokenizer.json; do
    same "$TMP/src/$f" "$D/bitnet-packed/$f" "the source's $f is intact"
done
echo "Hello world" >"$TMP/prompts.txt"
refused "convert --prompts P -o P --force" "is an input of this run" -- \
    "$BITNET" convert "$TMP/src" -o "$TMP/prompts.txt" --prompts "$TMP/prompts.txt" --force
expect_exit 0 "a .gguf in the source folder may be replaced with --force" -- \
    "$BITNET" convert "$TMP/src" -o "$TMP/src/old.gguf" --no-validate
expect_exit 0 "... (--force)" -- "$BITNET" convert "$TMP/src" -o "$TMP/src/old.gguf" --no-validate --force
refused "convert --queue over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" convert "$D/bitnet-packed" -o "$C" --queue
"$BITNET" jobs list --json >"$TMP/j" 2>/dev/null
[ "$(jget "$TMP/j" jobs.0.id 2>/dev/null)" = "" ] && ok "no job was queued" || bad "a doomed job was queued"

# ---- tokenizer train ------------------------------------------------------------------------
T="$TMP/tok.gguf"
expect_exit 0 "tokenizer train to a new file" -- "$BITNET" tokenizer train --vocab 300 -o "$T" "$TMP/text.txt"
refused "tokenizer train over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" tokenizer train --vocab 300 -o "$T" "$TMP/text.txt"
expect_exit 0 "tokenizer train --force" -- "$BITNET" tokenizer train --vocab 300 -o "$T" --force "$TMP/text.txt"
refused "tokenizer train -o its input --force" "is an input of this run" -- \
    "$BITNET" tokenizer train --vocab 300 -o "$TMP/text.txt" --force "$TMP/text.txt"
same "$TMP/text.txt" "$TMP/text.orig" "the training text is intact"
refused "tokenizer train into a missing folder" "does not exist" -- \
    "$BITNET" tokenizer train --vocab 300 -o "$TMP/nodir/t.gguf" "$TMP/text.txt"

# ---- train export ---------------------------------------------------------------------------
mkdir "$TMP/tr"
"$BITNET" train --data "$TMP/text.txt" --out "$TMP/tr" --steps 2 --batch 2 --ctx 16 --threads 1 \
    --eval-batches 1 >/dev/null 2>&1 || bad "train"
K="$TMP/tr/checkpoint.bin"
cp "$K" "$TMP/ckpt.orig"
E="$TMP/e.gguf"
expect_exit 0 "train export to a new file" -- "$BITNET" train export "$K" -o "$E"
refused "train export over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" train export "$K" -o "$E"
expect_exit 0 "train export --force" -- "$BITNET" train export "$K" -o "$E" --force
refused "train export -o CHECKPOINT --force" "is an input of this run" -- \
    "$BITNET" train export "$K" -o "$K" --force
ln -s tr/checkpoint.bin "$TMP/k-link"
refused "train export -o a symlink to the checkpoint" "is an input of this run" -- \
    "$BITNET" train export "$K" -o "$TMP/k-link" --force
same "$K" "$TMP/ckpt.orig" "the checkpoint is intact"
refused "train export into a missing folder" "does not exist" -- \
    "$BITNET" train export "$K" -o "$TMP/nodir/e.gguf"

# ---- train --out DIR: another run's files are replaced only with --force (or continued) -------
TA="--data $TMP/text.txt --steps 2 --batch 2 --ctx 16 --threads 1 --eval-batches 1"
cp "$TMP/tr/model.gguf" "$TMP/model.orig"
refused "train into the DIR of another run" "checkpoint.bin exists (--resume continues that run, --force starts over)" -- \
    "$BITNET" train $TA --out "$TMP/tr"
same "$K" "$TMP/ckpt.orig" "train without --force left the checkpoint alone"
same "$TMP/tr/model.gguf" "$TMP/model.orig" "train without --force left model.gguf alone"
mkdir "$TMP/tr4"
cp "$TMP/model.orig" "$TMP/tr4/model.gguf"
refused "train into a DIR with a model.gguf of another run" "model.gguf exists (--force replaces it)" -- \
    "$BITNET" train $TA --out "$TMP/tr4"
same "$TMP/tr4/model.gguf" "$TMP/model.orig" "... and left it alone"
refused "train --data DIR/model.gguf --force" "is an input of this run" -- \
    "$BITNET" train --data "$TMP/tr4/model.gguf" --out "$TMP/tr4" --steps 1 --force
expect_exit 0 "train --resume continues the run in DIR" -- "$BITNET" train $TA --out "$TMP/tr" --resume
expect_exit 0 "train --force starts over in DIR" -- "$BITNET" train $TA --out "$TMP/tr" --force

# ---- history export -------------------------------------------------------------------------
H="$TMP/h.csv"
expect_exit 0 "history export to a new file" -- "$BITNET" history export --format csv -o "$H"
refused "history export over an existing file" "exists (--force replaces it)" -- \
    "$BITNET" history export --format csv -o "$H"
expect_exit 0 "history export --force" -- "$BITNET" history export --format csv -o "$H" --force
refused "history export -o the history database --force" "is an input of this run" -- \
    "$BITNET" history export --format json -o "$BITNET_HISTORY_DB" --force
[ "$(head -c 15 "$BITNET_HISTORY_DB")" = "SQLite format 3" ] &&
    "$BITNET" history list --command train --json >"$TMP/h" 2>/dev/null &&
    [ "$(jget "$TMP/h" runs.0.command)" = train ] && ok "the history database is intact" ||
    bad "the history database was replaced"
expect_exit 2 "--force is an export option only" -- "$BITNET" history list --force

# ---- temporaries: O_EXCL, recognisable, a killed run's removed ---------------------------------
# The checkpoint's temporary had a predictable name (checkpoint.bin.tmp.PID): a symlink planted
# there made train write its checkpoint through it into another file. `exec` keeps the pid.
echo "precious" >"$TMP/victim"
mkdir "$TMP/tr2"
sh -c 'ln -s "$1" "$2/checkpoint.bin.tmp.$$" && exec "$3" train --data "$4" --out "$2" \
    --steps 2 --batch 2 --ctx 16 --threads 1 --eval-batches 1' \
    sh "$TMP/victim" "$TMP/tr2" "$BITNET" "$TMP/text.txt" >/dev/null 2>&1 || bad "train (planted link)"
[ "$(cat "$TMP/victim")" = precious ] && ok "a planted symlink at the checkpoint's temporary is not followed" ||
    bad "train wrote its checkpoint through a planted symlink"
"$BITNET" train export "$TMP/tr2/checkpoint.bin" -o "$TMP/e2.gguf" >/dev/null 2>&1 &&
    ok "the checkpoint itself was written" || bad "no checkpoint in tr2"
# what killed runs leave: OUT.tmp-<pid>-XXXXXX; the next run removes those of dead pids only
plant() { : >"$1.tmp-$dead_pid-abcdef"; : >"$1.tmp-$$-abcdef"; }
swept() { # OUT DESCRIPTION
    if [ -e "$1.tmp-$dead_pid-abcdef" ]; then bad "$2: a dead run's temporary is left"; else
        ok "$2: a dead run's temporary is removed"; fi
    if [ -e "$1.tmp-$$-abcdef" ]; then ok "$2: a live process's is kept"; else
        bad "$2: a live process's temporary was removed"; fi
    rm -f "$1.tmp-$$-abcdef"
    if ls "$1".tmp-* >/dev/null 2>&1; then bad "$2: temporaries left: $(ls "$1".tmp-*)"; fi
}
plant "$M"
expect_exit 0 "synth with leftovers" -- "$BITNET" synth --shape tiny -o "$M" --force
swept "$M" "synth"
plant "$C"
expect_exit 0 "convert with leftovers" -- "$BITNET" convert "$D/bitnet-packed" -o "$C" --no-validate --force
swept "$C" "convert"
plant "$T"
expect_exit 0 "tokenizer train with leftovers" -- "$BITNET" tokenizer train --vocab 300 -o "$T" --force "$TMP/text.txt"
swept "$T" "tokenizer train"
plant "$E"
expect_exit 0 "train export with leftovers" -- "$BITNET" train export "$K" -o "$E" --force
swept "$E" "train export"
plant "$H"
expect_exit 0 "history export with leftovers" -- "$BITNET" history export --format csv -o "$H" --force
swept "$H" "history export"
plant "$TMP/tr2/checkpoint.bin"
"$BITNET" train --data "$TMP/text.txt" --out "$TMP/tr2" --steps 1 --batch 2 --ctx 16 --threads 1 \
    --eval-batches 1 --force >/dev/null 2>&1 || bad "train with leftovers"
swept "$TMP/tr2/checkpoint.bin" "train checkpoint"

# ---- a FIFO or a device is refused at once, never waited on ---------------------------------
# Each runs under timeout -s KILL 10: a command that blocks opening the FIFO exits 137.
mkfifo "$TMP/fifo"
refused_now() { # WHAT -- command...
    what=$1; shift 2
    refused "$what" "not a regular file" -- timeout -s KILL 10 "$@"
}
refused_now "generate -m FIFO" -- "$BITNET" generate -m "$TMP/fifo" -p hi -n 1
refused_now "generate -m /dev/zero (a device)" -- "$BITNET" generate -m /dev/zero -p hi -n 1
refused_now "inspect FIFO" -- "$BITNET" inspect "$TMP/fifo"
refused_now "generate with a FIFO config file" -- env BITNET_CONFIG="$TMP/fifo" \
    "$BITNET" generate -m "$M" -p hi -n 1
# -f takes a pipe on purpose (-f <(cmd)), but one with no writer is an error at once, not a wait
refused "perplexity -f FIFO with no writer" "no writer" -- timeout -s KILL 10 \
    "$BITNET" perplexity -m "$M" -f "$TMP/fifo"
refused_now "tokenize --file FIFO" -- "$BITNET" tokenize -m "$M" --file "$TMP/fifo"
refused_now "synth --tokenizer FIFO" -- "$BITNET" synth --shape tiny --tokenizer "$TMP/fifo" -o "$TMP/s3.gguf"
refused_now "synth --vocab FIFO" -- "$BITNET" synth --shape tiny --vocab "$TMP/fifo" -o "$TMP/s3.gguf"
refused_now "train --data FIFO" -- "$BITNET" train --data "$TMP/fifo" --out "$TMP/tr3" --steps 1
refused_now "train export FIFO" -- "$BITNET" train export "$TMP/fifo" -o "$TMP/x3.gguf"
refused_now "tokenizer train FIFO" -- "$BITNET" tokenizer train --vocab 300 -o "$TMP/t3.gguf" "$TMP/fifo"
refused_now "convert --prompts FIFO" -- "$BITNET" convert "$D/bitnet-packed" -o "$TMP/c3.gguf" --prompts "$TMP/fifo"
fifo_src() { # FILE: a copy of the packed fixture in $TMP/srcf with FILE a FIFO
    rm -rf "$TMP/srcf"; cp -r "$D/bitnet-packed" "$TMP/srcf"; rm "$TMP/srcf/$1"; mkfifo "$TMP/srcf/$1"
}
for f in tokenizer.json model.safetensors; do
    fifo_src $f
    refused_now "convert with a FIFO $f" -- "$BITNET" convert "$TMP/srcf" -o "$TMP/c3.gguf" --no-validate
done
fifo_src config.json
refused "convert with a FIFO config.json" "config.json: not a regular file (a FIFO)" -- \
    timeout -s KILL 10 "$BITNET" convert "$TMP/srcf" -o "$TMP/c3.gguf" --no-validate
# the queue: a job on a FIFO fails at once instead of hanging the worker
fifo_src model.safetensors
expect_exit 0 "convert --queue with a FIFO model.safetensors" -- \
    "$BITNET" convert "$TMP/srcf" -o "$TMP/q3.gguf" --queue --json
jq=$(jget "$TMP/out" job)
timeout -s KILL 60 "$BITNET" jobs wait "$jq" --timeout 30 --json >"$TMP/out" 2>&1
[ "$(jget "$TMP/out" jobs.0.status)" = failed ] && ok "the queued job failed instead of hanging" ||
    bad "queued FIFO job: $(jget "$TMP/out" jobs.0.status)"
"$BITNET" jobs show "$jq" --json >"$TMP/out" 2>/dev/null
jget "$TMP/out" error | grep -q "not a regular file" && ok "the job's error names the FIFO" ||
    bad "job error: $(jget "$TMP/out" error)"
wp=$(jget "$TMP/out" worker_pid 2>/dev/null) # a worker stuck on the FIFO must not outlive the test
case "$wp" in '' | null | 0) ;; *) kill -9 "$wp" 2>/dev/null && bad "the worker ($wp) was stuck" ;; esac

finish test_files
