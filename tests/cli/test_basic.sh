# CLI basics: help, version, usage errors and exit codes, --json parsed back.
. tests/cli/lib.sh

expect_exit 0 "--version" -- "$BITNET" --version
expect_grep "bitnet 0\." "$TMP/out" "--version prints the version"
expect_exit 0 "version --json" -- "$BITNET" version --json
"$JSONGET" version arch kernels <"$TMP/out" >"$TMP/j" && ok "version --json parses" || bad "version --json parses"
expect_exit 0 "no arguments prints help" -- "$BITNET"
expect_grep "Usage: bitnet" "$TMP/out" "help text"
expect_exit 0 "--help" -- "$BITNET" --help
expect_exit 0 "help bench" -- "$BITNET" help bench
expect_exit 2 "help for an unknown command" -- "$BITNET" help frobnicate
expect_exit 0 "help --json" -- "$BITNET" help --json
"$JSONGET" version commands.0.name commands.0.summary <"$TMP/out" >"$TMP/j" && ok "help --json parses" || bad "help --json"
n_cmds=$(grep -c '"name"' "$TMP/out")
n_help=$("$BITNET" --help | awk '/^Commands:/{f=1;next} f&&/^  [a-z]/{n++} END{print n+0}')
[ "$n_cmds" -eq "$n_help" ] && ok "help --json lists every command ($n_cmds)" || bad "help --json: $n_cmds vs $n_help"
expect_exit 0 "help version --json" -- "$BITNET" help version --json
expect_grep '"help":' "$TMP/out" "one command's help text in JSON"
expect_exit 2 "unknown command" -- "$BITNET" frobnicate
expect_one_line_err "unknown command"
expect_exit 2 "version with a bad option" -- "$BITNET" version --frob
expect_exit 2 "bench -p not a number" -- "$BITNET" bench -p abc
expect_exit 2 "bench with an unknown suite" -- "$BITNET" bench nothing
expect_exit 2 "bench kernels bad option" -- "$BITNET" bench kernels --frob
expect_exit 2 "bench kernels --threads 0" -- "$BITNET" bench kernels --threads 0
expect_exit 2 "bench kernels --threads x" -- "$BITNET" bench kernels --threads 1,x
expect_exit 2 "bench kernels --reps missing" -- "$BITNET" bench kernels --reps
expect_exit 2 "bench kernels --reps -3" -- "$BITNET" bench kernels --reps -3
expect_exit 0 "bench kernels --help" -- "$BITNET" bench kernels --help

# a short real run: every GEMV result has threads and a positive bandwidth ratio
expect_exit 0 "bench kernels --quick --json" -- "$BITNET" bench kernels --quick --json --no-ref --threads 1 --reps 2 --wset 8
if "$JSONGET" results.0.threads results.0.bandwidth_ratio default_kernel <"$TMP/out" >"$TMP/j"; then
    ok "bench kernels JSON has results[].threads and bandwidth_ratio"
else
    bad "bench kernels JSON"
fi
awk 'NR==2 { exit !($1 > 0 && $1 < 10) }' "$TMP/j" && ok "bandwidth_ratio is a plausible number" \
    || bad "bandwidth_ratio: $(sed -n 2p "$TMP/j")"

finish test_basic
