#!/bin/sh
# scripts/bench-serve.py (make bench-serve) on the bundled model, briefly: it starts `bitnet
# serve`, runs 1 and 2 concurrent streams, prints both tables with numbers, stops the server;
# and its one-line errors. (Speed is not judged here: figures belong to make bench-serve.)
. "$(dirname "$0")/lib.sh"
MODEL=assets/models/bitnet-tinystories.gguf
if ! command -v python3 >/dev/null 2>&1; then
    echo "  SKIP test_bench_serve: no python3 (make deps installs it)"
    finish test_bench_serve
    exit
fi
mkdir -p "$TMP/tmpdir"
expect_exit 0 "bench-serve.py, 1 and 2 streams" -- env TMPDIR="$TMP/tmpdir" python3 \
    scripts/bench-serve.py --bitnet "$BITNET" -m "$MODEL" --threads 1 --conc 1,2 --n-gen 4 \
    --rounds 1 --reqs 5
[ -z "$(ls "$TMP/tmpdir")" ] && ok "a run that succeeds leaves no log folder behind" ||
    bad "left behind: $(ls "$TMP/tmpdir")"
grep -Eq '^\| bitnet serve \| 2 \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| [0-9]+ \|$' "$TMP/out" &&
    ok "the streams table: 2 clients with tok/s, ratio and TTFT" || bad "table: $(cat "$TMP/out")"
grep -Eq '^read bandwidth .* before / after the rounds: [0-9]+\.[0-9] / [0-9]+\.[0-9] GB/s$' "$TMP/out" &&
    ok "the read bandwidth before and after the rounds" || bad "bandwidth: $(head -3 "$TMP/out")"
grep -Eq '^\| bitnet serve \| [0-9.]+ / [0-9.]+ \| [0-9.]+ / [0-9.]+ \|$' "$TMP/out" &&
    ok "the small requests table: /health and /v1/models P50 / P95" || bad "small: $(cat "$TMP/out")"
pgrep -f "serve -m $MODEL --listen 127.0.0.1" >/dev/null && bad "a server was left running" ||
    ok "no server left running"
expect_exit 1 "a missing model" -- python3 scripts/bench-serve.py --bitnet "$BITNET" -m "$TMP/none.gguf"
expect_one_line_err "a missing model"
expect_grep "none.gguf does not exist" "$TMP/err" "the error names the model"
expect_exit 1 "--conc 0" -- python3 scripts/bench-serve.py --bitnet "$BITNET" -m "$MODEL" --conc 0
expect_exit 1 "a server that cannot start" -- python3 scripts/bench-serve.py --bitnet "$BITNET" \
    -m tests/cli/lib.sh
expect_grep "exited with status" "$TMP/err" "the error says the server exited"
finish test_bench_serve
