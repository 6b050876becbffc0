#!/bin/sh
# gpu-check.sh - the CUDA backend's checks on a machine with an NVIDIA GPU (issue 20), in one
# run of a few minutes, ending with a summary of PASS/FAIL lines:
#
#   1. the binary: built here with `make CUDA=1` when the build's libraries are installed,
#      else the bundle a machine without a GPU prepared (--bundle, below)
#   2. bitnet hw: the CUDA device as the backend sees it
#   3. bitnet bench kernels --gpu: W2A8 GEMV and GEMM on the 2B4T shapes, each output equal
#      to the CPU reference to the bit; GEMV bandwidth >= 0.7 of a device-to-device copy
#   4. bitnet bench --gpu on the bundled model and on a synthetic 2B4T: the CUDA logits
#      against the CPU forward's (max |difference| within the rounding of int8 activations:
#      at most twice what the CPU's own SIMD and reference kernels differ by on the same
#      prompt, plus 0.1% of the largest logit), greedy tokens equal for 64 steps; pp128 and tg32 on
#      the GPU; NVML's memory in use against the pool (the difference is the CUDA context
#      and whatever else runs: between 0 and 1 GiB)
#   5. partial offload (-ngl N, as generate -ngl runs it): bench --gpu -ngl N with the first
#      layers on the CPU and the activations crossing once per batch, the LM head on the CPU:
#      the same checks as 4 (logits within rounding, greedy tokens equal for 64 steps), for
#      half the layers and for all of them, on the bundled model and the 2B4T
#
# Usage:
#   sh scripts/gpu-check.sh                 on the GPU machine, from the repository root
#   sh scripts/gpu-check.sh --bundle [DIR]  on a machine without a GPU: builds the CUDA
#                                           binary into build-gpu and packs it with the shared
#                                           libraries it needs into DIR (default gpu-bundle;
#                                           ignored by git; carry it to the GPU machine)
# GPU_CHECK_QUICK=1: bench kernels --quick and no 2B4T (a dry run of this script on a
# build with the kernel emulator, make CUDA=emu, where the GPU's figures mean nothing).
# On a lent GPU machine that lacks the build's libraries: `sh scripts/gpu-check.sh --bundle`
# here, then there (carrying gpu-bundle; at most 8 files come back):
#   GPU_CHECK_OUT=/tmp/gc sh scripts/gpu-check.sh; cp /tmp/gc/summary.txt /tmp/gc/*.json "$OUT"/
# Environment: GPU_CHECK_BITNET (a bitnet binary to use as it is), NVCC, CUDA_HOME (as the
# Makefile), GPU_CHECK_BUILD (the build folder, default
# build-gpu), GPU_CHECK_OUT (a folder for the logs and
# the summary; default a temporary one), GPU_CHECK_2B4T (an existing 2B4T GGUF to use).
set -u
# every step has a time limit (timeout), so that a hung kernel cannot use up a short lease
BUILD=${GPU_CHECK_BUILD:-build-gpu}
BUNDLE=gpu-bundle

die() { echo "gpu-check: $*" >&2; exit 1; }

bundle() {
    dir=${1:-$BUNDLE}
    make -j"$(nproc)" BUILD="$BUILD" CUDA=1 "$BUILD/bitnet" >/dev/null || die "make CUDA=1 failed"
    rm -rf "$dir" && mkdir -p "$dir/lib" || die "cannot make $dir"
    cp "$BUILD/bitnet" "$dir/bitnet"
    # every library but the C library and the dynamic loader (the GPU machine has its own)
    ldd "$BUILD/bitnet" | awk '$3 ~ /^\// {print $3}' |
        grep -v '/libc\.so\|/ld-linux\|/libm\.so\|/libpthread\|/libdl\.so\|/librt\.so' |
        while read -r lib; do cp -L "$lib" "$dir/lib/"; done
    tar -C "$dir" -cJf "$dir/lib.tar.xz" lib && rm -rf "$dir/lib"
    case "$dir" in
    /*) ;;
    *) grep -qx "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >>.git/info/exclude ;;
    esac
    echo "gpu-check: $dir ready ($(du -sh "$dir" | cut -f1)); on the GPU machine: carry $dir," \
        "run sh scripts/gpu-check.sh"
}

[ "${1:-}" = "--bundle" ] && { bundle "${2:-}"; exit $?; }
[ -f Makefile ] && [ -d engine/cuda ] || die "run from the repository root"

OUT=${GPU_CHECK_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
pass() { echo "PASS  $*" | tee -a "$SUMMARY"; }
fail() { echo "FAIL  $*" | tee -a "$SUMMARY"; }
note() { echo "      $*" | tee -a "$SUMMARY"; }
t0=$(date +%s)

# ---- 1. the binary ---------------------------------------------------------------------------
if [ -n "${GPU_CHECK_BITNET:-}" ]; then
    BITNET=$GPU_CHECK_BITNET
    note "binary: $BITNET (GPU_CHECK_BITNET)"
elif [ -x "$BUNDLE/bitnet" ]; then
    mkdir -p "$OUT/lib" && tar -C "$OUT" -xJf "$BUNDLE/lib.tar.xz" || die "cannot unpack the bundle"
    export LD_LIBRARY_PATH="$OUT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    BITNET=$BUNDLE/bitnet
    note "binary: the bundle $BUNDLE (built elsewhere)"
elif make -j"$(nproc)" BUILD="$BUILD" CUDA=1 "$BUILD/bitnet" >"$OUT/make.log" 2>&1; then
    BITNET=$BUILD/bitnet
    note "binary: built here with make CUDA=1"
else
    tail -5 "$OUT/make.log" >&2
    die "make CUDA=1 failed and there is no $BUNDLE (make one with --bundle where the libraries are)"
fi
"$BITNET" --version >/dev/null 2>&1 || die "$BITNET does not start (missing libraries?)"

# ---- 2. the device -----------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
"$BITNET" hw >"$OUT/hw.txt" 2>&1
cuda=$(grep '^CUDA ' "$OUT/hw.txt")
echo "$cuda"
case "$cuda" in
*"0: "*) pass "bitnet hw sees the device: ${cuda#CUDA      }" ;;
*) fail "bitnet hw: $cuda"; exit 1 ;;
esac

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---- 3. kernels ----------------------------------------------------------------------------------
quick=
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=--quick
if timeout 300 "$BITNET" bench kernels --gpu $quick --json >"$OUT/kernels.json" 2>"$OUT/kernels.txt"; then
    python3 -c "
import json, sys
for r in json.load(open(sys.argv[1]))['results']:
    print('%5dx%-5d %-11s GEMV %8.2f us alone, %7.1f GB/s stacked x%d = %.2f of copy (%.1f GB/s);'
          ' GEMM8 %.3f us/token; max diff %g' % (r['rows'], r['cols'], r['what'], r['gemv_us'],
          r['gemv_bytes_per_s'] / 1e9, r['stack'], r['ratio'], r['copy_bytes_per_s'] / 1e9,
          r['gemm8_us_per_token'], r['max_diff']))" "$OUT/kernels.json" | tee "$OUT/kernels.txt"
    diffs=$(json "$OUT/kernels.json" "'%g' % max(r['max_diff'] for r in d['results'])")
    ffn="[r for r in d['results'] if r['rows'] * r['cols'] >= 2560 * 6912]"
    ratio=$(json "$OUT/kernels.json" "'%.2f' % min(r['ratio'] for r in $ffn)")
    [ "$diffs" = 0 ] && pass "GEMV/GEMM outputs equal the CPU reference" ||
        fail "GEMV/GEMM differ from the CPU reference by $diffs"
    [ "$(json "$OUT/kernels.json" "int(min(r['ratio'] for r in $ffn) >= 0.7)")" = 1 ] &&
        pass "GEMV at $ratio of the copy bandwidth (FFN shapes; >= 0.7)" ||
        fail "GEMV at $ratio of the copy bandwidth (FFN shapes; wanted >= 0.7)"
else
    cat "$OUT/kernels.txt"
    fail "bench kernels --gpu"
fi

# ---- 4. the forward ----------------------------------------------------------------------------
model_check() { # NAME FILE ARGS...
    name=$1 file=$2
    shift 2
    if ! timeout 300 "$BITNET" bench --gpu -m "$file" --steps 64 --json "$@" >"$OUT/$name.json" \
        2>"$OUT/$name.err"; then
        cat "$OUT/$name.err"
        fail "$name: bench --gpu"
        return
    fi
    j=$OUT/$name.json
    d=$(json "$j" "'%.3g' % d['max_abs_diff']") m=$(json "$j" "'%.3g' % d['max_abs_logit']")
    r=$(json "$j" "'%.3g' % d['cpu_ref_max_abs_diff']") eq=$(json "$j" "d['greedy_equal_steps']")
    ok=$(json "$j" "int(d['max_abs_diff'] <= 2 * d['cpu_ref_max_abs_diff'] + 1e-3 * d['max_abs_logit'])")
    [ "$ok" = 1 ] &&
        pass "$name: logits CUDA vs CPU, max |diff| $d (CPU SIMD vs reference $r, largest $m)" ||
        fail "$name: logits CUDA vs CPU, max |diff| $d over 2 x $r (CPU SIMD vs reference) + 0.1% of $m"
    [ "$eq" = 64 ] && pass "$name: greedy tokens equal for 64 steps" ||
        fail "$name: greedy tokens equal for $eq of 64 steps"
    note "$name: pp$(json "$j" "d['pp']") $(json "$j" "round(d['pp_tokens_per_s'], 1)") t/s," \
        "tg$(json "$j" "d['tg']") $(json "$j" "round(d['tg_tokens_per_s'], 1)") t/s (GPU)"
    gap=$(json "$j" "'%.0f' % ((d['nvml_used_bytes'] - d['pool_reserved_bytes']) / 2**20)")
    note "$name: pool $(json "$j" "d['pool_reserved_bytes'] // 2**20") MiB reserved" \
        "($(json "$j" "d['weight_bytes'] // 2**20") MiB of weights)," \
        "NVML $(json "$j" "d['nvml_used_bytes'] // 2**20") MiB in use"
    [ "$(json "$j" "int(0 <= d['nvml_used_bytes'] - d['pool_reserved_bytes'] <= 2**30)")" = 1 ] &&
        pass "$name: NVML = pool + $gap MiB (the CUDA context)" ||
        fail "$name: NVML - pool = $gap MiB (wanted 0 to 1024)"
}

bundled=$(ls assets/models/*.gguf 2>/dev/null | head -1)
[ -n "$bundled" ] && model_check bundled "$bundled" -p 128 -n 32 || fail "no bundled model"
# ---- 5. partial offload: the bundled model's last 2 of 4 layers, then all 4 (head on the CPU)
if [ -n "$bundled" ]; then
    model_check bundled-ngl2 "$bundled" -p 128 -n 32 -ngl 2
    model_check bundled-ngl4 "$bundled" -p 128 -n 32 -ngl 4
fi
m2b=${GPU_CHECK_2B4T:-$OUT/2b4t.gguf}
if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then
    note "2b4t: left out (GPU_CHECK_QUICK=1)"
elif [ -f "$m2b" ] || timeout 240 "$BITNET" synth --shape 2b4t -o "$m2b" >"$OUT/synth.log" 2>&1; then
    model_check 2b4t "$m2b" -p 128 -n 32 -t "$(nproc)"
    model_check 2b4t-ngl15 "$m2b" -p 128 -n 32 -t "$(nproc)" -ngl 15
else
    cat "$OUT/synth.log"
    fail "synth --shape 2b4t"
fi

echo
echo "== gpu-check summary ($(($(date +%s) - t0)) s; logs in $OUT)"
head -1 "$OUT/nvidia-smi.txt" 2>/dev/null
cat "$SUMMARY"
! grep -q '^FAIL' "$SUMMARY"
