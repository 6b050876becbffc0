/* cmd_doctor.c - `bitnet doctor`: environment and health checks, each PASS, WARN or FAIL
 * with a hint: libraries, config, directories, disk, memory, ISA, GPU, the configured
 * and bundled models (sha256), and a short kernel benchmark against the measured read
 * bandwidth. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bench/bench_util.h"
#include "commands.h"
#include "common/config.h"
#include "common/history.h"
#include "common/hw.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <nettle/version.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/file.h"
#include "bitnet/gguf.h"
#include "bitnet/kernels.h"

#define GIB         (1024.0 * 1024.0 * 1024.0)
#define MAX_CHECKS  32
#define MAX_MODELS  16
#define MAX_SUMS    64
#define BW_RATIO_OK 0.5

enum { ST_PASS, ST_WARN, ST_FAIL };
static const char *const st_upper[] = {"PASS", "WARN", "FAIL"};
static const char *const st_lower[] = {"pass", "warn", "fail"};

typedef struct check {
    char name[32];
    int status;
    char detail[1024];
    char hint[256];
} check;

typedef struct report {
    check c[MAX_CHECKS];
    int n;
} report;

static check *add(report *r, const char *name, int status, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static check *add(report *r, const char *name, int status, const char *hint, const char *fmt, ...)
{
    static check spare;
    if (r->n == MAX_CHECKS) return &spare;
    check *c = &r->c[r->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->status = status;
    snprintf(c->hint, sizeof c->hint, "%s", hint ? hint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    return c;
}

void cmd_doctor_help(FILE *out)
{
    fprintf(out, "Usage: bitnet doctor [--quick] [--json]\n\n"
                 "Checks the environment and prints one line per check, PASS, WARN or FAIL, with\n"
                 "a hint for what is not a PASS: the libraries linked and their versions, the\n"
                 "config file, the config and data directories (writable), free disk space in\n"
                 "the data directory, memory, the CPU's SIMD support, NVIDIA GPUs, the\n"
                 "configured model, the bundled model's integrity (sha256 against SHA256SUMS),\n"
                 "and a short GEMV benchmark against the measured memory read bandwidth.\n\n"
                 "Options:\n"
                 "  --quick   skip the benchmark and the sha256 of model files\n"
                 "  --json    print {\"checks\": [{name, status, detail, hint}], \"summary\"}\n\n"
                 "Exit status: 0 when no check failed (warnings allowed), 1 when one did.\n");
}

/* ---- libraries ----------------------------------------------------------------------- */

/* Libraries found in the process only when the program links them (later versions link
 * more); looked up by symbol so that doctor never reports what is not there. */
typedef struct optional_lib {
    const char *check, *symbol, *label;
    int is_data;    /* the symbol is a `const char *` variable, not a function */
    int first_word; /* keep the first word only (curl_version() lists every dependency) */
} optional_lib;

static const optional_lib optional_libs[] = {
        {"lib_sqlite", "sqlite3_libversion", "SQLite ", 0, 0},
        {"lib_ncurses", "curses_version", "", 0, 0},
        {"lib_readline", "rl_library_version", "readline ", 1, 0},
        {"lib_curl", "curl_version", "", 0, 1},
};

static void check_optional_lib(report *r, const optional_lib *l)
{
    void *p = dlsym(RTLD_DEFAULT, l->symbol);
    if (!p) return;
    const char *v;
    if (l->is_data) {
        v = *(const char *const *)p;
    } else {
        const char *(*fn)(void);
        *(void **)&fn = p; /* POSIX: dlsym's pointer converts to a function pointer */
        v = fn();
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v ? v : "?");
    if (l->first_word) buf[strcspn(buf, " ")] = '\0';
    add(r, l->check, ST_PASS, NULL, "%s%s", l->label, buf);
}

static void check_libraries(report *r)
{
    add(r, "lib_cjson", ST_PASS, NULL, "cJSON %s", cJSON_Version());
    char v[64] = "?";
    uint32_t jit = 0;
    pcre2_config(PCRE2_CONFIG_VERSION, v);
    pcre2_config(PCRE2_CONFIG_JIT, &jit);
    add(r, "lib_pcre2", ST_PASS, NULL, "PCRE2 %s (JIT %s)", v, jit ? "available" : "not built");
    add(r, "lib_nettle", ST_PASS, NULL, "Nettle %d.%d (sha256)", nettle_version_major(),
        nettle_version_minor());
    for (size_t i = 0; i < sizeof optional_libs / sizeof optional_libs[0]; i++)
        check_optional_lib(r, &optional_libs[i]);
}

/* ---- config and directories ---------------------------------------------------------- */

static void check_config(report *r, bn_config **cfg)
{
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(cfg, err, sizeof err)) {
        *cfg = NULL;
        add(r, "config", ST_FAIL,
            "fix the file ('bitnet validate FILE' lists every problem); "
            "the defaults are used for the checks below",
            "%s", err);
        return;
    }
    const cJSON *doc = bn_config_file_doc(*cfg);
    if (bn_config_file_exists(*cfg))
        add(r, "config", ST_PASS, NULL, "%s (%d top-level keys)", bn_config_file(*cfg),
            cJSON_GetArraySize(doc));
    else
        add(r, "config", ST_PASS, NULL, "%s absent: defaults in use", bn_config_file(*cfg));
}

/* The nearest existing ancestor of path (path itself if it exists) into buf. */
static void existing_ancestor(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s", path);
    while (access(buf, F_OK) != 0) {
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) {
            snprintf(buf, size, "%s", slash ? "/" : ".");
            return;
        }
        *slash = '\0';
    }
}

static void check_config_dir(report *r)
{
    char path[BN_CONFIG_PATH_MAX], dir[BN_CONFIG_PATH_MAX], anc[BN_CONFIG_PATH_MAX];
    if (bn_config_path(path, sizeof path)) {
        add(r, "config_dir", ST_FAIL, "set HOME or XDG_CONFIG_HOME", "no home directory");
        return;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = '\0';
    existing_ancestor(dir, anc, sizeof anc);
    int exists = strcmp(anc, dir) == 0;
    if (access(anc, W_OK | X_OK) == 0)
        add(r, "config_dir", ST_PASS, NULL, "%s (%s)", dir,
            exists ? "writable" : "absent; can be created");
    else
        add(r, "config_dir", ST_FAIL,
            "'bitnet config set' cannot save settings; fix the permissions or set "
            "XDG_CONFIG_HOME",
            "%s: %s is not writable", dir, anc);
}

static int check_data_dir(report *r, const bn_config *cfg, char *dir, size_t size)
{
    char err[BN_CONFIG_ERR_MAX], tmp[BN_CONFIG_PATH_MAX + 16];
    if (bn_data_dir_ensure(cfg, dir, size, err, sizeof err)) {
        add(r, "data_dir", ST_FAIL, "set data_dir in the config or XDG_DATA_HOME", "%s", err);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s/.doctor.XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        add(r, "data_dir", ST_FAIL, "history and downloaded models go here: fix the permissions",
            "%s: cannot create a file: %s", dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(tmp);
    add(r, "data_dir", ST_PASS, NULL, "%s (writable)", dir);
    return 0;
}

static void check_disk(report *r, const char *dir)
{
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        add(r, "disk_space", ST_WARN, "check the file system of the data directory",
            "%s: statvfs failed: %s", dir, strerror(errno));
        return;
    }
    double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
    if (avail < GIB)
        add(r, "disk_space", ST_WARN,
            "models and history need room: a 2B-parameter model takes about 1.2 GB",
            "%.2f GiB free in %s (under 1 GiB)", avail / GIB, dir);
    else
        add(r, "disk_space", ST_PASS, NULL, "%.1f GiB free in %s", avail / GIB, dir);
}

/* ---- machine ------------------------------------------------------------------------- */

static void check_memory(report *r, const bn_hw_info *hw)
{
    if (!hw->mem_total) {
        add(r, "memory", ST_WARN, "is /proc mounted?", "/proc/meminfo unreadable");
        return;
    }
    double a = (double)hw->mem_available / GIB, t = (double)hw->mem_total / GIB;
    if (hw->mem_available < 2ull << 30)
        add(r, "memory", ST_WARN,
            "BitNet b1.58 2B4T needs about 1.2 GB for its weights plus the KV cache",
            "%.1f GiB available of %.1f GiB (under 2 GiB)", a, t);
    else
        add(r, "memory", ST_PASS, NULL, "%.1f GiB available of %.1f GiB", a, t);
}

static void check_isa(report *r, const bn_hw_info *hw)
{
    const bn_cpu_info *cpu = hw->cpu;
    const char *k = hw->kernels;
    const char *nosimd = getenv("BN_NO_SIMD");
    int x86 = !strcmp(cpu->arch, "x86_64") || !strcmp(cpu->arch, "i686") ||
              !strcmp(cpu->arch, "i386");
    int arm = !strcmp(cpu->arch, "aarch64") || !strcmp(cpu->arch, "arm64");
    if (!strcmp(k, "ref") && nosimd && *nosimd && strcmp(nosimd, "0"))
        add(r, "cpu_isa", ST_WARN, "unset BN_NO_SIMD for the SIMD kernels",
            "BN_NO_SIMD is set: the plain-C reference kernels are in use (slow); CPU: %s",
            hw->cpu_features);
    else if (x86 && !cpu->avx2)
        add(r, "cpu_isa", ST_WARN,
            "generation will be several times slower than on a CPU with AVX2 (2013 and later)",
            "no AVX2: the plain-C reference kernels are in use (features: %s)",
            hw->cpu_features[0] ? hw->cpu_features : "none");
    else if (arm && !cpu->dotprod)
        add(r, "cpu_isa", ST_WARN, "the NEON kernels need the dot-product extension (ARMv8.2)",
            "no dotprod: the plain-C reference kernels are in use");
    else if (!x86 && !arm)
        add(r, "cpu_isa", ST_WARN, "only x86-64 and AArch64 have SIMD kernels",
            "%s: the plain-C reference kernels are in use", cpu->arch);
    else
        add(r, "cpu_isa", ST_PASS, NULL, "%s kernels (features: %s)", k, hw->cpu_features);
}

static void check_gpu(report *r, const bn_hw_info *hw)
{
    add(r, "gpu", ST_PASS, NULL, "%s; inference runs on the CPU", hw->gpu_status);
    if (hw->cuda_built && hw->cuda_devices == 0)
        add(r, "cuda", ST_WARN, "the CUDA backend is built but finds no device", "CUDA: %s",
            hw->cuda_status);
    else if (hw->cuda_built)
        add(r, "cuda", ST_PASS, NULL, "CUDA: %s (bitnet bench --gpu)", hw->cuda_status);
    else
        add(r, "cuda", ST_PASS, NULL, "CUDA: not built (make CUDA=1 adds the backend)");
}

/* ---- models -------------------------------------------------------------------------- */

static int sha256_file(const char *path, char hex[65], char *err, size_t errsz)
{
    FILE *f = bn_file_fopen_read(path, NULL, 0); /* a FIFO is not waited on */
    if (!f) {
        snprintf(err, errsz, "%s", strerror(errno));
        return -1;
    }
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    size_t cap = 1 << 20, n;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    while ((n = fread(buf, 1, cap, f)) > 0) sha256_update(&ctx, n, buf);
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) {
        snprintf(err, errsz, "read error");
        return -1;
    }
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* Opens path as GGUF; 0 with "arch, N tensors" in what, or -1 with the reason. */
static int gguf_summary(const char *path, char *what, size_t size)
{
    bn_ctx *ctx = NULL;
    bn_ctx_params p = {1};
    bn_gguf *g = NULL;
    if (bn_ctx_new(&ctx, &p) != BN_OK) {
        snprintf(what, size, "out of memory");
        return -1;
    }
    int rc = -1;
    if (bn_gguf_open(ctx, path, &g) != BN_OK) {
        snprintf(what, size, "%s", bn_ctx_errmsg(ctx));
    } else {
        const char *arch = NULL;
        if (bn_gguf_get_str(g, "general.architecture", &arch) != BN_OK) arch = "no architecture";
        snprintf(what, size, "%s, %lld tensors", arch, (long long)bn_gguf_n_tensors(g));
        bn_gguf_close(g);
        rc = 0;
    }
    bn_ctx_free(ctx);
    return rc;
}

static void check_configured_model(report *r, const bn_config *cfg)
{
    const char *m = cfg ? bn_config_get_str(cfg, "model") : NULL;
    if (!m || !*m) return;
    char what[512];
    if (gguf_summary(m, what, sizeof what))
        add(r, "model", ST_FAIL, "fix the model setting ('bitnet config set model FILE')", "%s: %s",
            m, what);
    else
        add(r, "model", ST_PASS, NULL, "%s (%s)", m, what);
}

typedef struct sum {
    char hex[65];
    char name[256];
    int seen;
} sum;

/* Reads DIR/SHA256SUMS ("HEX  NAME" or "HEX *NAME" lines); returns the count, -1 if
 * the file is absent. */
static int read_sums(const char *dir, sum *sums, int max)
{
    char path[BN_CONFIG_PATH_MAX + 16], line[512];
    snprintf(path, sizeof path, "%s/SHA256SUMS", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strspn(line, "0123456789abcdefABCDEF") != 64 || line[64] != ' ') continue;
        const char *name = line + 65;
        if (*name == ' ' || *name == '*') name++;
        if (!*name) continue;
        for (int i = 0; i < 64; i++) sums[n].hex[i] = (char)(line[i] | 0x20); /* lower case */
        sums[n].hex[64] = '\0';
        snprintf(sums[n].name, sizeof sums[n].name, "%.255s", name);
        sums[n].seen = 0;
        n++;
    }
    fclose(f);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_gguf(const char *dir, char **names, int max)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf") && (names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

static void append(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, size - n, fmt, ap);
    va_end(ap);
}

static void check_bundled_model(report *r, int quick)
{
    char dir[BN_CONFIG_PATH_MAX];
    char *names[MAX_MODELS];
    int n = 0;
    if (bn_bundled_models_dir(dir, sizeof dir) == 0) n = list_gguf(dir, names, MAX_MODELS);
    if (n == 0) {
        add(r, "bundled_model", ST_WARN,
            "this build ships no default model; give one with -m or 'bitnet config set model'",
            "no bundled model found");
        return;
    }
    static sum sums[MAX_SUMS];
    int n_sums = read_sums(dir, sums, MAX_SUMS);
    check *c = add(r, "bundled_model", ST_PASS, NULL, "%s: ", dir);
    for (int i = 0; i < n; i++) {
        char path[BN_CONFIG_PATH_MAX + 256], what[512], hex[65], err[128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (i) append(c->detail, sizeof c->detail, "; ");
        int st = ST_PASS;
        if (gguf_summary(path, what, sizeof what)) {
            st = ST_FAIL;
            append(c->detail, sizeof c->detail, "%s: not a valid GGUF: %s", names[i], what);
        } else if (quick) {
            append(c->detail, sizeof c->detail, "%s (%s; sha256 not checked: --quick)", names[i],
                   what);
        } else if (sha256_file(path, hex, err, sizeof err)) {
            st = ST_FAIL;
            append(c->detail, sizeof c->detail, "%s: %s", names[i], err);
        } else {
            int j = 0;
            while (j < n_sums && strcmp(sums[j].name, names[i])) j++;
            if (n_sums < 0 || j == n_sums) {
                st = ST_WARN;
                append(c->detail, sizeof c->detail,
                       "%s (%s): no checksum to compare "
                       "(sha256 %s)",
                       names[i], what, hex);
            } else if ((sums[j].seen = 1, strcmp(sums[j].hex, hex))) {
                st = ST_FAIL;
                append(c->detail, sizeof c->detail, "%s: sha256 mismatch (%s, expected %s)",
                       names[i], hex, sums[j].hex);
            } else {
                append(c->detail, sizeof c->detail, "%s (%s): sha256 OK", names[i], what);
            }
        }
        if (st > c->status) c->status = st;
        free(names[i]);
    }
    for (int j = 0; !quick && j < n_sums; j++) {
        if (sums[j].seen) continue;
        size_t l = strlen(sums[j].name);
        if (l <= 5 || strcmp(sums[j].name + l - 5, ".gguf")) continue;
        c->status = ST_FAIL;
        append(c->detail, sizeof c->detail, "; %s: listed in SHA256SUMS but missing", sums[j].name);
    }
    if (c->status == ST_FAIL)
        snprintf(c->hint, sizeof c->hint,
                 "the model files are damaged or incomplete: reinstall bitnet");
    else if (c->status == ST_WARN)
        snprintf(c->hint, sizeof c->hint, "list the file's sha256 in SHA256SUMS beside it");
}

/* ---- benchmark ----------------------------------------------------------------------- */

static void check_bench(report *r, const bn_hw_info *hw)
{
    int threads = hw->cpu->n_physical < 2 ? 1 : 2;
    size_t wset = (size_t)64 << 20;
    if (hw->cpu->l3_bytes * 2 > wset) wset = hw->cpu->l3_bytes * 2;
    if (wset > (size_t)256 << 20) wset = (size_t)256 << 20;
    bn_bench_bw b;
    char err[256];
    if (bn_bench_gemv_bandwidth(threads, wset, 5, &b, err, sizeof err)) {
        add(r, "kernel_bench", ST_FAIL, "free some memory and try again", "%s", err);
        return;
    }
    int ok = b.ratio >= BW_RATIO_OK;
    add(r, "kernel_bench", ok ? ST_PASS : ST_WARN,
        ok ? NULL
           : "the GEMV should read weights near the memory bandwidth; a busy machine or the "
             "reference kernels lower it ('bitnet bench kernels' for the full picture)",
        "%s, %d thread%s: GEMV %lldx%lld reads weights at %.1f GB/s, %.0f%% of the measured "
        "read bandwidth (%.1f GB/s)",
        b.kernel, b.threads, b.threads > 1 ? "s" : "", (long long)b.rows, (long long)b.cols,
        b.weight_bps * 1e-9, b.ratio * 100, b.probe_bps * 1e-9);
}

/* ---- output -------------------------------------------------------------------------- */

static int print_report(const report *r, int json)
{
    int cnt[3] = {0, 0, 0};
    for (int i = 0; i < r->n; i++) cnt[r->c[i].status]++;
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(d, "checks");
        for (int i = 0; i < r->n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", r->c[i].name);
            cJSON_AddStringToObject(o, "status", st_lower[r->c[i].status]);
            cJSON_AddStringToObject(o, "detail", r->c[i].detail);
            cJSON_AddStringToObject(o, "hint", r->c[i].hint);
            cJSON_AddItemToArray(a, o);
        }
        cJSON *s = cJSON_AddObjectToObject(d, "summary");
        cJSON_AddNumberToObject(s, "pass", cnt[ST_PASS]);
        cJSON_AddNumberToObject(s, "warn", cnt[ST_WARN]);
        cJSON_AddNumberToObject(s, "fail", cnt[ST_FAIL]);
        if (cli_print_json(d)) return BN_EXIT_FAIL;
    } else {
        for (int i = 0; i < r->n; i++) {
            const check *c = &r->c[i];
            printf("%s  %-14s %s\n", st_upper[c->status], c->name, c->detail);
            if (c->status != ST_PASS && c->hint[0]) printf("      hint: %s\n", c->hint);
        }
        printf("summary: %d pass, %d warn, %d fail\n", cnt[ST_PASS], cnt[ST_WARN], cnt[ST_FAIL]);
        if (fflush(stdout)) return BN_EXIT_FAIL;
    }
    return cnt[ST_FAIL] ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* For the run history: the counts, the failed checks' names, every check's status. */
static cJSON *history_metrics(const report *r, char *failed, size_t size)
{
    cJSON *m = cJSON_CreateObject(), *checks = cJSON_AddObjectToObject(m, "checks");
    int cnt[3] = {0, 0, 0};
    failed[0] = '\0';
    for (int i = 0; i < r->n; i++) {
        const check *c = &r->c[i];
        cnt[c->status]++;
        cJSON_AddStringToObject(checks, c->name, st_lower[c->status]);
        if (c->status == ST_FAIL) append(failed, size, "%s%s", failed[0] ? ", " : "", c->name);
    }
    cJSON_AddNumberToObject(m, "pass", cnt[ST_PASS]);
    cJSON_AddNumberToObject(m, "warn", cnt[ST_WARN]);
    cJSON_AddNumberToObject(m, "fail", cnt[ST_FAIL]);
    return m;
}

int cmd_doctor(int argc, char **argv)
{
    int json = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_doctor_help(stdout);
            return BN_EXIT_OK;
        } else {
            return cli_usage_error("doctor", "unknown option '%s'", argv[i]);
        }
    }
    cm_hist_run *h = cm_hist_begin("doctor", NULL, cm_hist_params_argv(argc, argv));
    static report r;
    memset(&r, 0, sizeof r);
    bn_config *cfg = NULL;
    bn_hw_info hw;
    char dir[BN_CONFIG_PATH_MAX];
    bn_hw_collect(&hw, NULL);
    bn_hw_cuda(&hw);
    check_libraries(&r);
    check_config(&r, &cfg);
    check_config_dir(&r);
    if (check_data_dir(&r, cfg, dir, sizeof dir) == 0) check_disk(&r, dir);
    check_memory(&r, &hw);
    check_isa(&r, &hw);
    check_gpu(&r, &hw);
    check_configured_model(&r, cfg);
    check_bundled_model(&r, quick);
    if (!quick) check_bench(&r, &hw);
    bn_config_free(cfg);
    const int rc = print_report(&r, json);
    char failed[256], err[300];
    cJSON *m = history_metrics(&r, failed, sizeof failed);
    snprintf(err, sizeof err, "checks failed: %s", failed);
    cm_hist_end_exit(h, rc, m, failed[0] ? err : cli_last_error());
    return rc;
}
