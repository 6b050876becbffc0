#!/bin/sh
# Runs every unit test program under BUILD/tests and the integration tests under
# tests/cli, prints CMocka's summaries and a closing "N passed, N failed" line, and
# exits non-zero if anything failed.
BUILD=${1:-build}
pass=0; fail=0; failed=""
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.d|*.o) continue ;; esac
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
# fuzz targets replay their saved corpus: BUILD/tests/fuzzreplay_<name> tests/fuzz/corpus/<name>
for t in "$BUILD"/tests/fuzzreplay_*; do
    case "$t" in *.d|*.o) continue ;; esac
    [ -x "$t" ] || continue
    name=${t##*/fuzzreplay_}
    echo "== $(basename "$t")"
    if "$t" "tests/fuzz/corpus/$name"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
for t in tests/cli/test_*.sh; do
    [ -f "$t" ] || continue
    echo "== $(basename "$t")"
    if BITNET="$BUILD/bitnet" JSONGET="$BUILD/tools/jsonget" sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
