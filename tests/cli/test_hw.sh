# bitnet hw: the report's keys, text and JSON, and the NVML path through a stand-in
# libnvidia-ml.so.1 built here (two GPUs; then one whose nvmlInit fails), so the dlopen
# code is tested on machines without an NVIDIA driver.
. tests/cli/lib.sh

# doctor below must not touch the user's files
export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data"
unset BITNET_CONFIG

expect_exit 0 "hw" -- "$BITNET" hw
expect_grep "^CPU " "$TMP/out" "hw prints the CPU"
expect_grep "^Memory .* total" "$TMP/out" "hw prints memory"
expect_grep "^GPU " "$TMP/out" "hw prints a GPU line"
expect_grep "^Kernels " "$TMP/out" "hw prints the kernels"
expect_grep "^CUDA      \(not built\|no device\|0: \)" "$TMP/out" "hw prints the CUDA backend"
expect_exit 0 "hw --json" -- "$BITNET" hw --json
if "$JSONGET" cpu.model cpu.cores cpu.threads cpu.features cpu.caches.l1d_bytes \
    memory.total_bytes memory.available_bytes os.name os.kernel gpus gpu_status kernels \
    <"$TMP/out" >"$TMP/j"; then
    ok "hw --json has every documented key"
else
    bad "hw --json keys: $(cat "$TMP/j")"
fi
sed -n 2p "$TMP/j" | grep -q '^[1-9][0-9]*$' && ok "cpu.cores is a positive number" \
    || bad "cpu.cores: $(sed -n 2p "$TMP/j")"
sed -n 4p "$TMP/j" | grep -q '^\[' && ok "cpu.features is an array" || bad "cpu.features"
sed -n 6p "$TMP/j" | grep -q '^[1-9][0-9]*$' && ok "memory.total_bytes is positive" \
    || bad "memory.total_bytes: $(sed -n 6p "$TMP/j")"
sed -n 10p "$TMP/j" | grep -q '^\[' && ok "gpus is an array" || bad "gpus: $(sed -n 10p "$TMP/j")"
if grep -q "NVML not found" "$TMP/j"; then
    [ "$(sed -n 10p "$TMP/j")" = "[]" ] && ok "no NVML: gpus is empty" || bad "gpus not empty"
fi
[ "$(sed -n 12p "$TMP/j")" = "$("$JSONGET" kernels <"$TMP/out")" ] || bad "kernels"
expect_exit 2 "hw --frob" -- "$BITNET" hw --frob
expect_exit 0 "hw --help" -- "$BITNET" hw --help

# ---- a stand-in NVML ---------------------------------------------------------------------
CC=${CC:-cc}
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "  skip the NVML stand-in: no C compiler"
    finish test_hw
    exit $?
fi
mkdir -p "$TMP/nvml"
cat >"$TMP/nvml/fake.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
typedef struct { unsigned long long total, free, used; } mem_t;
typedef struct { unsigned int gpu, memory; } util_t;
static int fail(void) { return getenv("FAKE_NVML_FAIL") != NULL; }
int nvmlInit_v2(void) { return fail() ? 9 : 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { return r == 9 ? "Driver Not Loaded" : "Unknown Error"; }
int nvmlSystemGetDriverVersion(char *v, unsigned int n) { strncpy(v, "550.54.15", n); return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) { *d = (void *)(size_t)(i + 1); return 0; }
int nvmlDeviceGetName(void *d, char *s, unsigned int n)
{ strncpy(s, d == (void *)1 ? "NVIDIA H100 80GB HBM3" : "NVIDIA L4", n); return 0; }
int nvmlDeviceGetUUID(void *d, char *s, unsigned int n) { (void)d; strncpy(s, "GPU-1234", n); return 0; }
int nvmlDeviceGetMemoryInfo(void *d, mem_t *m)
{ m->total = d == (void *)1 ? 85899345920ull : 24ull << 30; m->used = 1ull << 30;
  m->free = m->total - m->used; return 0; }
int nvmlDeviceGetUtilizationRates(void *d, util_t *u) { (void)d; u->gpu = 37; u->memory = 12; return 0; }
int nvmlDeviceGetTemperature(void *d, int s, unsigned int *t) { (void)d; (void)s; *t = 41; return 0; }
int nvmlDeviceGetPowerUsage(void *d, unsigned int *mw) { (void)d; return 3; (void)mw; }
EOF
if ! "$CC" -shared -fPIC -o "$TMP/nvml/libnvidia-ml.so.1" "$TMP/nvml/fake.c" 2>"$TMP/err"; then
    bad "building the NVML stand-in: $(head -3 "$TMP/err")"
    finish test_hw
    exit $?
fi
expect_exit 0 "hw --json with two GPUs" -- env LD_LIBRARY_PATH="$TMP/nvml" "$BITNET" hw --json
"$JSONGET" gpus.0.name gpus.0.memory_total_bytes gpus.0.memory_used_bytes \
    gpus.0.utilization_gpu_percent gpus.0.temperature_c gpus.0.power_w gpus.1.name \
    nvidia_driver gpu_status <"$TMP/out" >"$TMP/j" || bad "GPU keys: $(cat "$TMP/j")"
[ "$(tr '\n' '|' <"$TMP/j")" = \
    "NVIDIA H100 80GB HBM3|85899345920|1073741824|37|41|null|NVIDIA L4|550.54.15|2 NVIDIA GPUs (driver 550.54.15)|" ] \
    && ok "name, memory, utilisation, temperature, no power, driver" \
    || bad "GPU values: $(tr '\n' '|' <"$TMP/j")"
expect_exit 0 "hw text with GPUs" -- env LD_LIBRARY_PATH="$TMP/nvml" "$BITNET" hw
expect_grep "0: NVIDIA H100 80GB HBM3, 80.0 GiB memory (1.0 GiB used), 37% busy, 41 C" "$TMP/out" \
    "the text names each GPU"
expect_exit 0 "hw --json when nvmlInit fails" -- env LD_LIBRARY_PATH="$TMP/nvml" FAKE_NVML_FAIL=1 \
    "$BITNET" hw --json
"$JSONGET" gpu_status gpus <"$TMP/out" >"$TMP/j"
[ "$(tr '\n' '|' <"$TMP/j")" = "no NVIDIA GPU detected (nvmlInit failed: Driver Not Loaded)|[]|" ] \
    && ok "a failing driver is a clear no-GPU state" || bad "init failure: $(tr '\n' '|' <"$TMP/j")"
expect_exit 0 "doctor --quick with the stand-in" -- env LD_LIBRARY_PATH="$TMP/nvml" "$BITNET" doctor --quick
expect_grep "2 NVIDIA GPUs" "$TMP/out" "doctor reports the GPUs"

finish test_hw
