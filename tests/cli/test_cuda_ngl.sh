# -ngl N / --gpu-layers N (issue 20): the last N layers on the GPU as llama.cpp counts them, on
# the model commands that load a model (generate, chat, perplexity, bench, serve) and as the
# config key gpu_layers. Any build: the option's bounds and help; without the backend a
# request for GPU layers fails in one line naming it (0 runs on the CPU). With the backend and
# a device (make CUDA=1 on a GPU, or make CUDA=emu: the kernel emulator), greedy text and
# perplexity with every -ngl equal the CPU's.
. tests/cli/lib.sh
export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" HOME="$TMP/home"
unset BITNET_CONFIG BITNET_THREADS BITNET_MODEL BITNET_TEMP
M=assets/models/bitnet-tinystories.gguf
gen() { "$BITNET" generate -m "$M" -p "Once upon a time" -n 12 --temp 0 -t 2 "$@"; }

for c in generate chat perplexity bench serve; do
    "$BITNET" $c --help >"$TMP/h" 2>&1
    expect_grep "gpu-layers N" "$TMP/h" "$c --help names -ngl, --gpu-layers"
done
expect_exit 2 "-ngl -1" -- gen -ngl -1
expect_grep "ngl: '-1' is not a number" "$TMP/err" "-ngl -1 is named"
expect_exit 2 "--gpu-layers with no number" -- gen --gpu-layers
expect_exit 2 "--n-gpu-layers x" -- gen --n-gpu-layers x
expect_exit 0 "-ngl 0: all on the CPU" -- gen -ngl 0
cp "$TMP/out" "$TMP/cpu.txt"
mkdir -p "$TMP/cfg/bitnet"
"$BITNET" config set gpu_layers 2 >/dev/null 2>&1 || bad "config set gpu_layers 2"
expect_exit 0 "config get gpu_layers" -- "$BITNET" config get gpu_layers
expect_grep "^2$" "$TMP/out" "gpu_layers is a config key"
expect_exit 2 "config set gpu_layers -3" -- "$BITNET" config set gpu_layers -3

"$BITNET" hw --json >"$TMP/hw" 2>&1
built=$("$JSONGET" cuda.built <"$TMP/hw")
devices=$("$JSONGET" cuda.devices <"$TMP/hw")
if [ "$built" != true ] || [ "$devices" = 0 ]; then
    why="CUDA: not built"
    [ "$built" != true ] || why="CUDA: no device"
    expect_exit 1 "generate with the config's gpu_layers 2 ($why)" -- gen
    expect_grep "$why" "$TMP/err" "the error names the backend"
    expect_one_line_err "generate -ngl from the config"
    expect_exit 0 "-ngl 0 on the command line wins over the config" -- gen -ngl 0
    "$BITNET" config set gpu_layers 0 >/dev/null 2>&1
    expect_exit 1 "perplexity -ngl 1" -- "$BITNET" perplexity -m "$M" -ngl 1 -f README.md --ctx 64
    expect_grep "$why" "$TMP/err" "perplexity -ngl says so"
    expect_exit 1 "bench -ngl 99" -- "$BITNET" bench -m "$M" -ngl 99 -p 8 -n 4 -r 1
    expect_grep "$why" "$TMP/err" "bench -ngl says so"
    printf 'hi\n' >"$TMP/in"
    expect_exit 1 "chat -ngl 3" -- sh -c '"$0" chat -m "$1" -ngl 3 <"$2"' "$BITNET" "$M" "$TMP/in"
    expect_grep "$why" "$TMP/err" "chat -ngl says so"
else
    "$BITNET" config set gpu_layers 0 >/dev/null 2>&1
    n_layer=$("$BITNET" inspect "$M" 2>/dev/null | awk '/block_count/ {print $NF}')
    for ngl in 1 2 "$n_layer" $((n_layer + 1)) 99; do
        expect_exit 0 "generate -ngl $ngl" -- gen -ngl "$ngl"
        cmp -s "$TMP/out" "$TMP/cpu.txt" && ok "-ngl $ngl: the greedy text of the CPU" ||
            bad "-ngl $ngl: another text: $(head -c 120 "$TMP/out")"
    done
    "$BITNET" perplexity -m "$M" -f README.md --ctx 64 --chunks 2 --json >"$TMP/p0" 2>"$TMP/p0.err"
    "$BITNET" perplexity -m "$M" -f README.md --ctx 64 --chunks 2 --json -ngl 2 >"$TMP/p2" 2>"$TMP/p2.err"
    p0=$("$JSONGET" perplexity <"$TMP/p0") p2=$("$JSONGET" perplexity <"$TMP/p2")
    awk -v a="$p0" -v b="$p2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-3 * a) }' &&
        ok "perplexity -ngl 2 $p2 = the CPU's $p0 (within 0.1%)" ||
        bad "perplexity -ngl 2 $p2, the CPU's $p0"
    # bench --gpu -ngl: the logits of partial offload against the CPU's (gpu-check.sh's check)
    expect_exit 0 "bench --gpu -ngl 2" -- "$BITNET" bench --gpu -m "$M" -ngl 2 -p 8 -n 4 \
        --steps 8 -r 1 --json
    [ "$("$JSONGET" gpu_layers greedy_equal_steps <"$TMP/out" | tr '\n' ' ')" = "2 8 " ] &&
        ok "bench --gpu -ngl 2: greedy tokens equal for 8 steps" ||
        bad "bench --gpu -ngl 2: $(cat "$TMP/out")"
    # serve -ngl: the slots share one GPU model; /metrics carries its pool
    start_server "$TMP/s.log" -m "$M" --slots 2 --ctx 128 -ngl 2 -t 2
    curl -s -o "$TMP/c.json" -H 'Content-Type: application/json' \
        -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}' "$URL/v1/completions"
    expect_grep '"text"' "$TMP/c.json" "serve -ngl 2: a completion"
    curl -s "$URL/metrics" >"$TMP/m.txt"
    expect_grep '^bitnet_gpu_pool_reserved_bytes{gpu="0"} [1-9]' "$TMP/m.txt" \
        "serve -ngl: /metrics has the GPU pool"
    expect_grep '^bitnet_gpu_pool_pressure_total{gpu="0",stage="evict_kv"} 0' "$TMP/m.txt" \
        "serve -ngl: the pressure counters, by stage"
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
fi
finish test_cuda_ngl
