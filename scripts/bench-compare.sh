#!/bin/sh
# Side-by-side speed of bitnet and reference engines on the same weights, in one run:
# prompt processing (ppN, N prompt tokens in one batch) and generation (tgN, N tokens one at
# a time) tokens/s, each engine's own benchmark (`bitnet bench`, the peers' `llama-bench`,
# the same tests and thread counts) run in turn for several rounds, so that all see the same
# machine state; the order alternates from round to round (bitnet first in odd rounds,
# last in even ones). Prints a markdown table: the median over the rounds of each engine's
# mean tokens/s, the ratio bitnet / peer, the ratio of each engine's best round, and each
# round's values, with the machine (CPU model from /proc/cpuinfo) and the load average
# before and after.
#
# Usage: [peers] sh scripts/bench-compare.sh [--ppl TEXT] [--no-speed] MODEL.gguf [LLAMA_MODEL.gguf]
#
# Peers, at least one:
#   LLAMA_BENCH=/path/to/llama-bench     mainline llama.cpp, on LLAMA_MODEL.gguf (the same
#                                        weights in a layout it loads; default MODEL.gguf)
#   IK_LLAMA_BENCH=/path/to/llama-bench  ik_llama.cpp, on IK_MODEL (generation; its IQ2_BN)
#                                        and IK_MODEL_PP (prompts; its IQ2_BN_R4; default
#                                        IK_MODEL), both converted from MODEL.gguf with its
#                                        llama-quantize (see ../shared/peers/build-ik-llama.sh)
#
# --ppl TEXT: also the perplexity of the same weights on TEXT in both engines (`bitnet
# perplexity` on MODEL.gguf with its LM head kept as stored, ik_llama.cpp's
# llama-perplexity on IK_PPL_MODEL, default IK_MODEL), the same context (PPL_CTX, 512) and
# number of chunks (PPL_CHUNKS, 8), on the largest of THREADS; exits 1 when they differ by
# more than 1%. IK_LLAMA_PERPLEXITY defaults to llama-perplexity next to IK_LLAMA_BENCH.
# --no-speed: only the perplexity.
#
# Environment (defaults): ROUNDS (3), THREADS (1,2), N_PROMPT (128), N_GEN (32), REPS (5,
# repetitions per run and engine), BITNET (build/bitnet), JSONGET (tools/jsonget next to
# BITNET, built by make), BITNET_BENCH_ARGS, LLAMA_BENCH_ARGS, IK_LLAMA_BENCH_ARGS (extra
# options of each benchmark).
set -u
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1,2}
N_PROMPT=${N_PROMPT:-128}
N_GEN=${N_GEN:-32}
REPS=${REPS:-5}
BITNET=${BITNET:-build/bitnet}
JSONGET=${JSONGET:-$(dirname "$BITNET")/tools/jsonget}
BITNET_BENCH_ARGS=${BITNET_BENCH_ARGS:-}
LLAMA_BENCH=${LLAMA_BENCH:-}
LLAMA_BENCH_ARGS=${LLAMA_BENCH_ARGS:-}
IK_LLAMA_BENCH=${IK_LLAMA_BENCH:-}
IK_LLAMA_BENCH_ARGS=${IK_LLAMA_BENCH_ARGS:-}
PPL_CTX=${PPL_CTX:-512}
PPL_CHUNKS=${PPL_CHUNKS:-8}

die() { echo "bench-compare: $*" >&2; exit 1; }
usage() {
    echo "usage: [LLAMA_BENCH=/path/to/llama-bench] [IK_LLAMA_BENCH=/path/to/llama-bench IK_MODEL=m-iq2bn.gguf [IK_MODEL_PP=m-iq2bnr4.gguf]] sh scripts/bench-compare.sh [--ppl TEXT] [--no-speed] MODEL.gguf [LLAMA_MODEL.gguf]" >&2
    exit 2
}
# need_file WHAT PATH: PATH exists and is readable
need_file() {
    [ -e "$2" ] || die "$1 $2 does not exist"
    if [ ! -f "$2" ] || [ ! -r "$2" ]; then die "$1 $2 is not a readable file"; fi
}
# need_exe NAME PATH: PATH exists and is an executable file
need_exe() {
    [ -e "$2" ] || die "$1=$2 does not exist"
    if [ ! -f "$2" ] || [ ! -x "$2" ]; then die "$1=$2 is not an executable file"; fi
}
number() { case "$2" in '' | *[!0-9]*) die "$1=$2 is not a number" ;; esac; }

PPL_TEXT="" SPEED=1
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage ;;
    --ppl) [ $# -ge 2 ] || usage; PPL_TEXT=$2; shift 2 ;;
    --no-speed) SPEED=0; shift ;;
    --) shift; break ;;
    -*) echo "bench-compare: unknown option '$1'" >&2; usage ;;
    *) break ;;
    esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
MODEL=$1
LMODEL=${2:-$1}
[ "$SPEED" = 1 ] || [ -n "$PPL_TEXT" ] || die "--no-speed without --ppl: nothing to do"

if [ "$SPEED" = 1 ] && [ -z "$LLAMA_BENCH" ] && [ -z "$IK_LLAMA_BENCH" ]; then
    echo "bench-compare: neither LLAMA_BENCH nor IK_LLAMA_BENCH is set: nothing to compare with." >&2
    echo "bench-compare: build llama.cpp's llama-bench (tools/llama-bench) and run" >&2
    echo "bench-compare:   LLAMA_BENCH=/path/to/llama-bench sh scripts/bench-compare.sh $MODEL" >&2
    echo "bench-compare: or ik_llama.cpp's with ../shared/peers/build-ik-llama.sh and run" >&2
    echo "bench-compare:   IK_LLAMA_BENCH=/path/to/llama-bench IK_MODEL=m-iq2bn.gguf IK_MODEL_PP=m-iq2bnr4.gguf sh scripts/bench-compare.sh $MODEL" >&2
    exit 2
fi
need_exe BITNET "$BITNET"
need_exe JSONGET "$JSONGET"
need_file model "$MODEL"
if [ "$SPEED" = 1 ] && [ -n "$LLAMA_BENCH" ]; then
    need_exe LLAMA_BENCH "$LLAMA_BENCH"
    need_file "llama.cpp's model" "$LMODEL"
fi
if [ "$SPEED" = 1 ] && [ -n "$IK_LLAMA_BENCH" ]; then
    need_exe IK_LLAMA_BENCH "$IK_LLAMA_BENCH"
    [ -n "${IK_MODEL:-}" ] || die "IK_MODEL is not set: the model ik_llama.cpp runs (MODEL.gguf converted to IQ2_BN)"
fi
if [ -n "$PPL_TEXT" ]; then
    need_file text "$PPL_TEXT"
    if [ -z "${IK_LLAMA_PERPLEXITY:-}" ]; then
        [ -n "$IK_LLAMA_BENCH" ] || die "--ppl needs IK_LLAMA_PERPLEXITY (or IK_LLAMA_BENCH, next to which it is found)"
        IK_LLAMA_PERPLEXITY=$(dirname "$IK_LLAMA_BENCH")/llama-perplexity
    fi
    need_exe IK_LLAMA_PERPLEXITY "$IK_LLAMA_PERPLEXITY"
    IK_PPL_MODEL=${IK_PPL_MODEL:-${IK_MODEL:-}}
    [ -n "$IK_PPL_MODEL" ] || die "--ppl needs IK_PPL_MODEL (or IK_MODEL): MODEL.gguf converted to IQ2_BN"
    need_file "ik_llama.cpp's model" "$IK_PPL_MODEL"
    number PPL_CTX "$PPL_CTX"
    number PPL_CHUNKS "$PPL_CHUNKS"
fi
if [ -n "${IK_MODEL:-}" ]; then
    IK_MODEL_PP=${IK_MODEL_PP:-$IK_MODEL}
    need_file "ik_llama.cpp's model" "$IK_MODEL"
    need_file "ik_llama.cpp's prompt model" "$IK_MODEL_PP"
fi
number ROUNDS "$ROUNDS"
number N_PROMPT "$N_PROMPT"
number N_GEN "$N_GEN"
number REPS "$REPS"
for t in $(echo "$THREADS" | tr , ' '); do
    case "$t" in '' | *[!0-9]*) die "THREADS=$THREADS: '$t' is not a number" ;; esac
    [ "$t" -ge 1 ] || die "THREADS=$THREADS: each thread count must be at least 1"
    MAX_THREADS=$t
done
[ -n "${MAX_THREADS:-}" ] || die "THREADS is empty"
THREADS_LIST=$(echo "$THREADS" | tr , ' ')
if [ "$ROUNDS" -lt 1 ] || [ "$REPS" -lt 1 ]; then die "ROUNDS and REPS must be at least 1"; fi
[ "$N_PROMPT" -gt 0 ] || [ "$N_GEN" -gt 0 ] || die "N_PROMPT and N_GEN are both 0"

TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
: >"$TMP/results"

# jget FILE PATH...: the values at PATH... of the JSON document FILE, one a line
jget() {
    f=$1
    shift
    "$JSONGET" "$@" <"$f" 2>/dev/null
}

# One run of bitnet bench; appends "ROUND ENGINE THREADS TEST TOKENS_PER_S" lines.
run_bitnet() {
    # shellcheck disable=SC2086 # BITNET_BENCH_ARGS is a list of options
    "$BITNET" bench -m "$MODEL" -p "$N_PROMPT" -n "$N_GEN" -t "$THREADS" -r "$REPS" --json \
        $BITNET_BENCH_ARGS >"$TMP/bitnet.json" 2>"$TMP/bitnet.err" ||
        { tail -5 "$TMP/bitnet.err" >&2; die "bitnet bench failed on $MODEL (round $1)"; }
    i=0
    while v=$(jget "$TMP/bitnet.json" "results.$i.threads" "results.$i.test" "results.$i.tokens_per_s"); do
        # shellcheck disable=SC2086 # three values on one line
        echo "$1 bitnet" $v >>"$TMP/results"
        i=$((i + 1))
    done
    [ "$i" -gt 0 ] || die "no results in bitnet bench's JSON"
    cp "$TMP/bitnet.json" "$TMP/bitnet.last.json"
}

# run_llama_bench ROUND ENGINE BINARY MODEL N_PROMPT N_GEN EXTRA_ARGS: one run of a
# llama-bench (mainline and ik_llama.cpp write the same JSON fields).
run_llama_bench() {
    # shellcheck disable=SC2086 # $7 is a list of options
    "$3" -m "$4" -p "$5" -n "$6" -t "$THREADS" -r "$REPS" -o json $7 \
        >"$TMP/$2.json" 2>"$TMP/$2.err" || {
        tail -5 "$TMP/$2.err" >&2
        die "$2's llama-bench failed on $4 (round $1)"
    }
    round=$1 engine=$2 i=0
    while v=$(jget "$TMP/$engine.json" "$i.n_prompt" "$i.n_gen" "$i.n_threads" "$i.avg_ts"); do
        # shellcheck disable=SC2086 # four values
        set -- $v
        if [ "$2" = 0 ]; then t=pp$1; elif [ "$1" = 0 ]; then t=tg$2; else t=pp$1+tg$2; fi
        echo "$round $engine $3 $t $4" >>"$TMP/results"
        i=$((i + 1))
    done
    [ "$i" -gt 0 ] || die "no results in $engine's llama-bench JSON"
    cp "$TMP/$engine.json" "$TMP/$engine.last.json"
}

run_llama() {
    run_llama_bench "$1" llama.cpp "$LLAMA_BENCH" "$LMODEL" "$N_PROMPT" "$N_GEN" "$LLAMA_BENCH_ARGS"
}
run_ik() {
    if [ "$IK_MODEL_PP" = "$IK_MODEL" ]; then
        run_llama_bench "$1" ik_llama.cpp "$IK_LLAMA_BENCH" "$IK_MODEL" "$N_PROMPT" "$N_GEN" "$IK_LLAMA_BENCH_ARGS"
        return
    fi
    if [ "$N_PROMPT" -gt 0 ]; then
        run_llama_bench "$1" ik_llama.cpp "$IK_LLAMA_BENCH" "$IK_MODEL_PP" "$N_PROMPT" 0 "$IK_LLAMA_BENCH_ARGS"
        cp "$TMP/ik_llama.cpp.json" "$TMP/ik_llama.cpp.pp.json"
    fi
    if [ "$N_GEN" -gt 0 ]; then
        run_llama_bench "$1" ik_llama.cpp "$IK_LLAMA_BENCH" "$IK_MODEL" 0 "$N_GEN" "$IK_LLAMA_BENCH_ARGS"
    fi
}

cpu=$(awk -F': *' '/^model name/ { m = $2 } /^cpu family/ { f = $2 } /^model[ \t]*:/ { n = $2 }
    END { printf "%s (family %s, model %s)", m, f, n }' /proc/cpuinfo 2>/dev/null)
isa=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -o -w -E 'avx512_vnni|avx512f|avx2|avx_vnni' | sort -u | tr '\n' ' ')
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo "?")
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }

# The median of the values of engine $1, threads $2, test $3 ("-" when none).
median() {
    awk -v e="$1" -v n="$2" -v t="$3" '$2 == e && $3 == n && $4 == t { print $5 }' "$TMP/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# The largest value of engine $1, threads $2, test $3 ("-" when none): the least disturbed round.
best() {
    awk -v e="$1" -v n="$2" -v t="$3" '$2 == e && $3 == n && $4 == t && (m == "" || $5 > m) { m = $5 }
        END { print m == "" ? "-" : m }' "$TMP/results"
}
rounds_of() {
    awk -v e="$1" -v n="$2" -v t="$3" '$2 == e && $3 == n && $4 == t { printf "%s%.1f", s, $5; s = " " }' "$TMP/results"
}

speed() {
    peers=""
    [ -n "$LLAMA_BENCH" ] && peers="llama.cpp"
    [ -n "$IK_LLAMA_BENCH" ] && peers="$peers ik_llama.cpp"
    load_before=$(load)
    echo "bench-compare: $ROUNDS rounds of bitnet and$peers, threads $THREADS, $REPS repetitions each (load average: $load_before)" >&2
    if awk -v l="${load_before%% *}" 'BEGIN { exit !(l + 0 > 0.5) }'; then
        echo "bench-compare: warning: the machine is busy (1-minute load average ${load_before%% *}); timings will be low and move from round to round" >&2
    fi
    date_run=$(date -u '+%Y-%m-%d %H:%M UTC')
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        if [ $((r % 2)) -eq 1 ]; then
            run_bitnet "$r"
            [ -n "$LLAMA_BENCH" ] && run_llama "$r"
            [ -n "$IK_LLAMA_BENCH" ] && run_ik "$r"
        else
            [ -n "$IK_LLAMA_BENCH" ] && run_ik "$r"
            [ -n "$LLAMA_BENCH" ] && run_llama "$r"
            run_bitnet "$r"
        fi
        echo "bench-compare: round $r of $ROUNDS done" >&2
        r=$((r + 1))
    done
    load_after=$(load)

    ours=$(jget "$TMP/bitnet.last.json" arch kernels lm_head | paste -sd' ' |
        awk '{ printf "%s, %s kernels, LM head %s", $1, $2, $3 }')
    echo "### bitnet vs$peers, $date_run"
    echo
    echo "- machine: $cpu, $ncpu CPUs, ${isa% }; load average (1/5/15 min) $load_before at the start, $load_after at the end"
    echo "- bitnet: \`$BITNET bench -m $MODEL\` ($ours)"
    for p in $peers; do
        f=$TMP/$p.last.json
        info="$(jget "$f" 0.model_type), build $(jget "$f" 0.build_commit)"
        if [ "$p" = llama.cpp ]; then
            echo "- llama.cpp: \`$LLAMA_BENCH -m $LMODEL\` ($info)"
        else
            [ -f "$TMP/ik_llama.cpp.pp.json" ] &&
                info="tg: $info; pp: $(jget "$TMP/ik_llama.cpp.pp.json" 0.model_type)"
            echo "- ik_llama.cpp: \`$IK_LLAMA_BENCH -m $IK_MODEL\` for tg, \`-m $IK_MODEL_PP\` for pp ($info)"
        fi
    done
    echo "- $ROUNDS rounds, engines in turn (bitnet first in odd rounds, last in even ones); each value the mean tokens/s of $REPS repetitions; the table shows the median over the rounds and, as a check on a noisy machine, the ratio of each engine's best round"
    echo
    head="| threads | test | bitnet t/s"
    rule="| --- | --- | ---"
    for p in $peers; do
        head="$head | $p t/s | bitnet / $p | best rounds: bitnet / $p"
        rule="$rule | --- | --- | ---"
    done
    # shellcheck disable=SC2086 # the list of peers, without the leading space
    echo "$head | per round: bitnet; $(echo $peers | sed 's/ /; /g') |"
    echo "$rule | --- |"
    tests=""
    [ "$N_PROMPT" -gt 0 ] && tests="pp$N_PROMPT"
    [ "$N_GEN" -gt 0 ] && tests="$tests tg$N_GEN"
    for n in $THREADS_LIST; do
        for t in $tests; do
            a=$(median bitnet "$n" "$t")
            line="| $n | $t | $(awk -v a="$a" 'BEGIN { print a == "-" ? a : sprintf("%.1f", a) }')"
            rounds="$(rounds_of bitnet "$n" "$t")"
            for p in $peers; do
                b=$(median "$p" "$n" "$t")
                line="$line | $(awk -v a="$a" -v b="$b" -v ba="$(best bitnet "$n" "$t")" -v bb="$(best "$p" "$n" "$t")" 'BEGIN {
                    fb = b == "-" ? b : sprintf("%.1f", b)
                    ratio = (a != "-" && b != "-" && b > 0) ? sprintf("%.2f", a / b) : "-"
                    br = (ba != "-" && bb != "-" && bb > 0) ? sprintf("%.2f (%.1f / %.1f)", ba / bb, ba, bb) : "-"
                    print fb " | " ratio " | " br }')"
                rounds="$rounds; $(rounds_of "$p" "$n" "$t")"
            done
            echo "$line | $rounds |"
        done
    done
}

# The perplexity of the same weights in bitnet and ik_llama.cpp; 1 when they differ by > 1%.
perplexity() {
    t=$MAX_THREADS
    echo "bench-compare: perplexity on $PPL_TEXT, ctx $PPL_CTX, $PPL_CHUNKS chunks, $t threads" >&2
    "$BITNET" perplexity -m "$MODEL" -f "$PPL_TEXT" -c "$PPL_CTX" --chunks "$PPL_CHUNKS" -t "$t" \
        --lm-head keep --json >"$TMP/ppl.json" 2>"$TMP/ppl.err" ||
        { tail -3 "$TMP/ppl.err" >&2; die "bitnet perplexity failed on $MODEL"; }
    # shellcheck disable=SC2046 # three numbers
    set -- $(jget "$TMP/ppl.json" perplexity perplexity_stderr chunks)
    [ $# -eq 3 ] || die "cannot read bitnet perplexity's JSON"
    ours=$(awk -v v="$1" 'BEGIN { printf "%.4f", v }') ours_err=$(awk -v v="$2" 'BEGIN { printf "%.5f", v }')
    ours_chunks=$3
    "$IK_LLAMA_PERPLEXITY" -m "$IK_PPL_MODEL" -f "$PPL_TEXT" -c "$PPL_CTX" --chunks "$PPL_CHUNKS" \
        -t "$t" >"$TMP/ikppl.out" 2>"$TMP/ikppl.err" ||
        { tail -3 "$TMP/ikppl.err" >&2; die "ik_llama.cpp's llama-perplexity failed on $IK_PPL_MODEL"; }
    # shellcheck disable=SC2046 # three numbers
    set -- $(awk '/^Final estimate: PPL over/ { print $5, $(NF - 2), $NF }' "$TMP/ikppl.out")
    [ $# -eq 3 ] || { tail -3 "$TMP/ikppl.err" >&2; die "no final estimate in llama-perplexity's output"; }
    theirs_chunks=$1 theirs=$2 theirs_err=$3
    [ "$ours_chunks" = "$theirs_chunks" ] ||
        die "the engines scored different numbers of chunks ($ours_chunks and $theirs_chunks): is the text tokenized alike?"
    echo
    echo "### perplexity, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$PPL_TEXT, $PPL_CHUNKS chunks of $PPL_CTX tokens (the second half of each scored), $t threads"
    echo
    echo "| engine | model | perplexity |"
    echo "| --- | --- | --- |"
    echo "| bitnet | \`$MODEL\` (LM head as stored) | $ours +/- $ours_err |"
    echo "| ik_llama.cpp | \`$IK_PPL_MODEL\` | $theirs +/- $theirs_err |"
    awk -v a="$ours" -v b="$theirs" 'BEGIN {
        d = (a - b) / b * 100; ad = d < 0 ? -d : d
        printf "\nbitnet / ik_llama.cpp: %+.2f%%: %s\n", d, ad <= 1 ? "within 1%" : "NOT within 1%"
        exit ad > 1 }' || die "the perplexities differ by more than 1%"
}

if [ "$SPEED" = 1 ]; then speed; fi
if [ -n "$PPL_TEXT" ]; then perplexity; fi
exit 0
