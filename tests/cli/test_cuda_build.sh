# The CUDA backend: `make cuda-objs` (engine/cuda/ alone: the .cu kernels through nvcc for
# sm_80 and sm_90 plus compute_90 PTX, the host side in C, warnings as errors) when nvcc is
# there; the binary under test links no CUDA library unless built with CUDA=1; and, when it
# was and a device is present, the GEMV checked on the GPU. Each part SKIPs plainly without
# what it needs.
. tests/cli/lib.sh

if [ -z "${NVCC:-}" ]; then
    if command -v nvcc >/dev/null 2>&1; then NVCC=nvcc
    elif [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi
fi
if [ -z "${NVCC:-}" ]; then
    echo "  SKIP the CUDA build: no nvcc (NVCC=, PATH, /usr/local/cuda/bin)"
else
    expect_exit 0 "make cuda-objs with $NVCC" -- \
        make --no-print-directory BUILD="$TMP/b" NVCC="$NVCC" WERROR=1 cuda-objs
    # the fatbinary's images, from nvcc's own plan of the Makefile's command (the device
    # code is compressed in the object, and cuobjdump is not always installed)
    cmd=$(make --no-print-directory -n BUILD="$TMP/n" NVCC="$NVCC" \
        "$TMP/n/engine/cuda/cuda_kernels.o" | grep -- "-c engine/cuda/cuda_kernels.cu")
    eval "$cmd --dryrun" >"$TMP/dry" 2>&1
    expect_grep "kind=elf,sm=80" "$TMP/dry" "the kernels carry sm_80 code"
    expect_grep "kind=elf,sm=90" "$TMP/dry" "the kernels carry sm_90 code"
    expect_grep "kind=ptx,sm=90" "$TMP/dry" "the kernels carry compute_90 PTX"
    expect_grep "fmad=0" "$TMP/dry" "no fused multiply-add (the CPU's rounding)"
    [ -f "$TMP/b/engine/cuda/cuda_model.o" ] && ok "the host side compiles" \
        || bad "no cuda_model.o"
fi

# the options, whatever the build
expect_exit 0 "bench --gpu --help" -- "$BITNET" bench --gpu --help
expect_grep "greedy tokens equal" "$TMP/out" "bench --gpu --help says what it compares"
expect_exit 2 "bench --gpu --frob" -- "$BITNET" bench --gpu --frob
expect_exit 2 "bench --gpu --steps 0" -- "$BITNET" bench --gpu --steps 0
expect_exit 2 "bench kernels --gpu --frob" -- "$BITNET" bench kernels --gpu --frob
expect_exit 0 "bench --help names --gpu" -- "$BITNET" bench --help
expect_grep "bench kernels --gpu" "$TMP/out" "bench --help lists the GPU suites"

"$BITNET" hw --json >"$TMP/hw" 2>&1
built=$("$JSONGET" cuda.built <"$TMP/hw")
devices=$("$JSONGET" cuda.devices <"$TMP/hw")
if [ "$built" = false ]; then
    [ "$("$JSONGET" cuda.status <"$TMP/hw")" = "not built" ] && ok "hw --json: CUDA not built" \
        || bad "hw --json cuda.status: $("$JSONGET" cuda.status <"$TMP/hw")"
    if command -v ldd >/dev/null 2>&1; then
        ldd "$BITNET" >"$TMP/ldd" 2>&1
        grep -q "cudart\|libcuda" "$TMP/ldd" && bad "a CPU build links a CUDA library" \
            || ok "the CPU build links no CUDA library"
    fi
    expect_exit 1 "bench kernels --gpu without the backend" -- "$BITNET" bench kernels --gpu
    expect_grep "CUDA: not built" "$TMP/err" "bench kernels --gpu says CUDA is not built"
    expect_one_line_err "bench kernels --gpu"
    expect_exit 1 "bench --gpu without the backend" -- "$BITNET" bench --gpu \
        -m assets/models/bitnet-tinystories.gguf
    expect_grep "CUDA: not built" "$TMP/err" "bench --gpu says CUDA is not built"
elif [ "$devices" = 0 ]; then
    echo "  SKIP the GPU checks: $("$JSONGET" cuda.status <"$TMP/hw")"
else
    expect_exit 0 "bench kernels --gpu --quick" -- "$BITNET" bench kernels --gpu --quick
    expect_grep "max diff 0 " "$TMP/out" "the GPU's GEMV equals the CPU reference"
fi
finish test_cuda_build
