#!/bin/sh
# Side-by-side speed of bitnet and llama.cpp on one model, in one run: prompt processing (ppN,
# N prompt tokens in one batch) and generation (tgN, N tokens one at a time) tokens/s, each
# engine's own benchmark (`bitnet bench`, llama.cpp's `llama-bench`, the same tests) run in
# turn for several rounds, so that both see the same machine state; the order alternates
# from round to round. Prints the median over the rounds of each engine's mean tokens/s and
# the ratio bitnet / llama.cpp.
#
# Usage: LLAMA_BENCH=/path/to/llama-bench sh scripts/bench-compare.sh MODEL.gguf [LLAMA_MODEL.gguf]
#
# LLAMA_MODEL.gguf is the file llama-bench loads when it cannot load MODEL.gguf (the same
# weights in a layout llama.cpp accepts); default MODEL.gguf. Environment (defaults):
# ROUNDS (3), THREADS (2), N_PROMPT (128), N_GEN (32), REPS (5, repetitions per run and
# engine), BITNET (build/bitnet), LLAMA_BENCH_ARGS (extra llama-bench options). Needs jq.
set -u
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
N_PROMPT=${N_PROMPT:-128}
N_GEN=${N_GEN:-32}
REPS=${REPS:-5}
BITNET=${BITNET:-build/bitnet}
LLAMA_BENCH_ARGS=${LLAMA_BENCH_ARGS:-}

die() { echo "bench-compare: $*" >&2; exit 1; }
usage() {
    echo "usage: LLAMA_BENCH=/path/to/llama-bench sh scripts/bench-compare.sh MODEL.gguf [LLAMA_MODEL.gguf]" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
case "$1" in -h | --help) usage ;; esac
MODEL=$1
LMODEL=${2:-$1}

if [ -z "${LLAMA_BENCH:-}" ]; then
    echo "bench-compare: LLAMA_BENCH is not set: nothing to compare with." >&2
    echo "bench-compare: build llama.cpp's llama-bench (tools/llama-bench) and run" >&2
    echo "bench-compare:   LLAMA_BENCH=/path/to/llama-bench sh scripts/bench-compare.sh $MODEL" >&2
    exit 2
fi
[ -x "$LLAMA_BENCH" ] || die "LLAMA_BENCH=$LLAMA_BENCH is not an executable file"
[ -x "$BITNET" ] || die "$BITNET not found: run make first (or set BITNET)"
[ -r "$MODEL" ] || die "$MODEL: cannot read the model"
[ -r "$LMODEL" ] || die "$LMODEL: cannot read the model"
command -v jq >/dev/null 2>&1 || die "jq is missing (apt-get install jq)"
number() { case "$2" in '' | *[!0-9]*) die "$1=$2 is not a number" ;; esac; }
number ROUNDS "$ROUNDS"
number THREADS "$THREADS"
number N_PROMPT "$N_PROMPT"
number N_GEN "$N_GEN"
number REPS "$REPS"
if [ "$ROUNDS" -lt 1 ] || [ "$REPS" -lt 1 ] || [ "$THREADS" -lt 1 ]; then
    die "ROUNDS, REPS and THREADS must be at least 1"
fi
[ "$N_PROMPT" -gt 0 ] || [ "$N_GEN" -gt 0 ] || die "N_PROMPT and N_GEN are both 0"

TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/ours"
: >"$TMP/theirs"

# One run of each engine; appends "ROUND TEST TOKENS_PER_S" lines.
run_ours() {
    "$BITNET" bench -m "$MODEL" -p "$N_PROMPT" -n "$N_GEN" -t "$THREADS" -r "$REPS" --json \
        >"$TMP/ours.json" 2>"$TMP/ours.err" ||
        { tail -5 "$TMP/ours.err" >&2; die "bitnet bench failed on $MODEL (round $1)"; }
    jq -r --arg r "$1" '.results[] | "\($r) \(.test) \(.tokens_per_s)"' "$TMP/ours.json" >>"$TMP/ours" ||
        die "cannot read bitnet bench's JSON"
    cp "$TMP/ours.json" "$TMP/ours.last.json"
}
run_theirs() {
    # shellcheck disable=SC2086 # LLAMA_BENCH_ARGS is a list of options
    "$LLAMA_BENCH" -m "$LMODEL" -p "$N_PROMPT" -n "$N_GEN" -t "$THREADS" -r "$REPS" -o json \
        $LLAMA_BENCH_ARGS >"$TMP/theirs.json" 2>"$TMP/theirs.err" || {
        tail -5 "$TMP/theirs.err" >&2
        [ "$LMODEL" = "$MODEL" ] &&
            echo "bench-compare: if llama.cpp cannot load this file, pass the same weights in a layout it accepts as LLAMA_MODEL.gguf" >&2
        die "llama-bench failed on $LMODEL (round $1)"
    }
    jq -r --arg r "$1" '.[] |
        (if .n_gen == 0 then "pp\(.n_prompt)" elif .n_prompt == 0 then "tg\(.n_gen)"
         else "pp\(.n_prompt)+tg\(.n_gen)" end) as $t | "\($r) \($t) \(.avg_ts)"' \
        "$TMP/theirs.json" >>"$TMP/theirs" || die "cannot read llama-bench's JSON"
    cp "$TMP/theirs.json" "$TMP/theirs.last.json"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "bench-compare: $ROUNDS rounds of bitnet bench and llama-bench, $THREADS threads, $REPS repetitions each (load average: $load_before)" >&2
if awk -v l="${load_before%% *}" 'BEGIN { exit !(l + 0 > 0.5) }'; then
    echo "bench-compare: warning: the machine is busy (1-minute load average ${load_before%% *}); both engines' timings will be low and move from round to round" >&2
fi
r=1
while [ "$r" -le "$ROUNDS" ]; do
    if [ $((r % 2)) -eq 1 ]; then
        run_ours "$r"
        run_theirs "$r"
    else
        run_theirs "$r"
        run_ours "$r"
    fi
    echo "bench-compare: round $r of $ROUNDS done" >&2
    r=$((r + 1))
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# The median of the values of test $2 in file $1 ("-" when none).
median() {
    awk -v t="$2" '$2 == t { print $3 }' "$1" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
rounds_of() { awk -v t="$2" '$2 == t { printf "%s%.2f", s, $3; s = " " }' "$1"; }

ours_info=$(jq -r '"\(.arch), \(.kernels) kernels"' "$TMP/ours.last.json")
theirs_info=$(jq -r '.[0] | "\(.model_type), build \(.build_commit) (\(.build_number)), \(.cpu_info)"' "$TMP/theirs.last.json")
echo "bitnet:    $BITNET bench -m $MODEL ($ours_info)"
echo "llama.cpp: $LLAMA_BENCH -m $LMODEL ($theirs_info)"
echo "$ROUNDS rounds, interleaved; $THREADS threads; each value the mean of $REPS repetitions; load average before $load_before, after $load_after"
printf '%-8s %14s %14s %18s   %s\n' test "bitnet t/s" "llama.cpp t/s" "bitnet/llama.cpp" "per round: bitnet | llama.cpp"
tests=""
[ "$N_PROMPT" -gt 0 ] && tests="pp$N_PROMPT"
[ "$N_GEN" -gt 0 ] && tests="$tests tg$N_GEN"
for t in $tests; do
    a=$(median "$TMP/ours" "$t")
    b=$(median "$TMP/theirs" "$t")
    awk -v t="$t" -v a="$a" -v b="$b" -v ra="$(rounds_of "$TMP/ours" "$t")" -v rb="$(rounds_of "$TMP/theirs" "$t")" 'BEGIN {
        ratio = (a != "-" && b != "-" && b > 0) ? sprintf("%.2f", a / b) : "-"
        fa = a == "-" ? a : sprintf("%.2f", a); fb = b == "-" ? b : sprintf("%.2f", b)
        printf "%-8s %14s %14s %18s   %s | %s\n", t, fa, fb, ratio, ra, rb }'
done
