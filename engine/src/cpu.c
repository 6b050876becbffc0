/*
 * cpu.c - run-time CPU detection: ISA features (cpuid + xgetbv on x86, AT_HWCAP on
 * Linux/aarch64), logical and physical core counts, cache sizes (Linux sysfs).
 *
 * The only state is the struct filled once under pthread_once.
 */
#include "bitnet/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define BN_CPU_X86 1
#include <cpuid.h>
#endif

#if defined(__linux__) && defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

#define SYSFS_CPU     "/sys/devices/system/cpu"
#define MAX_TOPO_CPUS 4096

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bn_cpu_info g_info;

/* ---- small helpers ------------------------------------------------------------------ */

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Reads the first line of a small file without its newline; 0 on success. */
static int read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char *ok = fgets(buf, (int)size, f);
    fclose(f);
    if (ok == NULL) return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Parses a non-negative decimal at *s, advancing it; -1 when there is none. */
static long parse_long(const char **s)
{
    const char *p = *s;
    long v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        if (v > 100000000L) return -1;
        v = v * 10 + (*p++ - '0');
    }
    *s = p;
    return v;
}

/* ---- architecture and ISA ------------------------------------------------------------- */

static void detect_arch(bn_cpu_info *ci)
{
#if defined(__x86_64__)
    copy_str(ci->arch, sizeof ci->arch, "x86_64");
#elif defined(__i386__)
    copy_str(ci->arch, sizeof ci->arch, "i686");
#elif defined(__aarch64__)
    copy_str(ci->arch, sizeof ci->arch, "aarch64");
#else
    struct utsname u;
    if (uname(&u) == 0)
        copy_str(ci->arch, sizeof ci->arch, u.machine);
    else
        copy_str(ci->arch, sizeof ci->arch, "unknown");
#endif
}

#ifdef BN_CPU_X86
static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_brand(bn_cpu_info *ci)
{
    unsigned int regs[12], a, b, c, d;
    if ((unsigned int)__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return;
    for (unsigned int i = 0; i < 3; i++) {
        __cpuid(0x80000002u + i, a, b, c, d);
        regs[4 * i + 0] = a;
        regs[4 * i + 1] = b;
        regs[4 * i + 2] = c;
        regs[4 * i + 3] = d;
    }
    char brand[49];
    memcpy(brand, regs, 48);
    brand[48] = '\0';
    const char *p = brand;
    while (*p == ' ') p++;
    copy_str(ci->model, sizeof ci->model, p);
    for (size_t n = strlen(ci->model); n > 0 && ci->model[n - 1] == ' '; n--)
        ci->model[n - 1] = '\0';
}

static void detect_isa(bn_cpu_info *ci)
{
    unsigned int a, b, c, d;
    unsigned int max_leaf = (unsigned int)__get_cpuid_max(0, NULL);
    if (max_leaf == 0) return;

    __cpuid(0, a, b, c, d);
    char vendor[13];
    memcpy(vendor + 0, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    copy_str(ci->vendor, sizeof ci->vendor, vendor);

    __cpuid(1, a, b, c, d);
    const int osxsave = (c >> 27) & 1;
    const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    const int ymm_ok = (xcr0 & 0x6u) == 0x6u;             /* XMM and YMM state */
    const int zmm_ok = ymm_ok && (xcr0 & 0xe0u) == 0xe0u; /* opmask, ZMM_Hi256, Hi16_ZMM */

    ci->sse3 = (c >> 0) & 1;
    ci->ssse3 = (c >> 9) & 1;
    ci->fma = ymm_ok && ((c >> 12) & 1);
    ci->avx = ymm_ok && ((c >> 28) & 1);
    ci->f16c = ymm_ok && ((c >> 29) & 1);

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        ci->avx2 = ci->avx && ((b >> 5) & 1);
        ci->avx512f = zmm_ok && ((b >> 16) & 1);
        ci->avx512dq = ci->avx512f && ((b >> 17) & 1);
        ci->avx512bw = ci->avx512f && ((b >> 30) & 1);
        ci->avx512vl = ci->avx512f && ((b >> 31) & 1);
        ci->avx512vnni = ci->avx512f && ((c >> 11) & 1);
        const unsigned int subleaves = a;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            ci->avxvnni = ci->avx && ((a >> 4) & 1);
        }
    }
    detect_brand(ci);
}
#elif defined(__aarch64__)
static void detect_isa(bn_cpu_info *ci)
{
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
    ci->neon = (hw & HWCAP_ASIMD) != 0;
    ci->dotprod = (hw & HWCAP_ASIMDDP) != 0;
#else
    ci->neon = 1; /* Advanced SIMD is mandatory on AArch64 */
#if defined(__ARM_FEATURE_DOTPROD)
    ci->dotprod = 1;
#endif
#endif
}
#else
static void detect_isa(bn_cpu_info *ci)
{
    (void)ci;
}
#endif

/* ---- topology ------------------------------------------------------------------------ */

static int cpu_online(int cpu)
{
    char path[96], buf[8];
    snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/online", cpu);
    if (read_line(path, buf, sizeof buf) != 0) /* no file: cpu0, or not hot-pluggable */
        return access(SYSFS_CPU "/cpu0", F_OK) == 0 ? 1 : 0;
    return buf[0] == '1';
}

/* A core is counted once: at the online cpu that is first in its thread_siblings_list.
 * Returns 0 when the lists cannot be read. */
static int count_by_siblings(int n_conf)
{
    int cores = 0;
    for (int cpu = 0; cpu < n_conf && cpu < MAX_TOPO_CPUS; cpu++) {
        char path[112], buf[256];
        if (!cpu_online(cpu)) continue;
        snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/topology/thread_siblings_list", cpu);
        if (read_line(path, buf, sizeof buf) != 0) return 0;
        const char *p = buf;
        long first = parse_long(&p);
        if (first < 0) return 0;
        if (first == cpu) cores++;
    }
    return cores;
}

/* Counts distinct (physical_package_id, core_id) pairs; 0 when unreadable. */
static int count_by_core_id(int n_conf)
{
    static const int cap = 1024;
    long seen[1024];
    int n_seen = 0;
    for (int cpu = 0; cpu < n_conf && cpu < MAX_TOPO_CPUS; cpu++) {
        char path[112], buf[32];
        if (!cpu_online(cpu)) continue;
        snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/topology/core_id", cpu);
        if (read_line(path, buf, sizeof buf) != 0) return 0;
        const char *p = buf;
        long core = parse_long(&p);
        snprintf(path, sizeof path, SYSFS_CPU "/cpu%d/topology/physical_package_id", cpu);
        long pkg = 0;
        if (read_line(path, buf, sizeof buf) == 0) {
            p = buf;
            pkg = parse_long(&p);
        }
        if (core < 0 || pkg < 0) return 0;
        long key = pkg * 1000000L + core;
        int found = 0;
        for (int i = 0; i < n_seen && !found; i++) found = seen[i] == key;
        if (!found) {
            if (n_seen == cap) return 0;
            seen[n_seen++] = key;
        }
    }
    return n_seen;
}

static void detect_cores(bn_cpu_info *ci)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    ci->n_cores = online > 0 ? (int)online : 1;
    if (conf < online) conf = online;
    int phys = count_by_siblings((int)conf);
    if (phys <= 0) phys = count_by_core_id((int)conf);
    ci->n_physical = (phys > 0 && phys <= ci->n_cores) ? phys : ci->n_cores;
}

/* ---- caches ---------------------------------------------------------------------------- */

/* "32K", "1024K", "32M", "12345" -> bytes; 0 when malformed. */
static size_t parse_cache_size(const char *s)
{
    long v = parse_long(&s);
    if (v <= 0) return 0;
    size_t mul = 1;
    if (*s == 'K' || *s == 'k')
        mul = 1024;
    else if (*s == 'M' || *s == 'm')
        mul = 1024 * 1024;
    else if (*s == 'G' || *s == 'g')
        mul = (size_t)1024 * 1024 * 1024;
    else if (*s != '\0')
        return 0;
    return (size_t)v * mul;
}

static void detect_caches(bn_cpu_info *ci)
{
    for (int idx = 0; idx < 16; idx++) {
        char path[96], level[8], type[24], size[24];
        snprintf(path, sizeof path, SYSFS_CPU "/cpu0/cache/index%d/level", idx);
        if (read_line(path, level, sizeof level) != 0) break;
        snprintf(path, sizeof path, SYSFS_CPU "/cpu0/cache/index%d/type", idx);
        if (read_line(path, type, sizeof type) != 0) continue;
        snprintf(path, sizeof path, SYSFS_CPU "/cpu0/cache/index%d/size", idx);
        if (read_line(path, size, sizeof size) != 0) continue;
        if (strcmp(type, "Instruction") == 0) continue;
        size_t bytes = parse_cache_size(size);
        if (strcmp(level, "1") == 0)
            ci->l1d_bytes = bytes;
        else if (strcmp(level, "2") == 0)
            ci->l2_bytes = bytes;
        else if (strcmp(level, "3") == 0)
            ci->l3_bytes = bytes;
    }
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) &&                           \
        defined(_SC_LEVEL3_CACHE_SIZE)
    /* glibc's own detection where sysfs had nothing */
    long v;
    if (ci->l1d_bytes == 0 && (v = sysconf(_SC_LEVEL1_DCACHE_SIZE)) > 0) ci->l1d_bytes = (size_t)v;
    if (ci->l2_bytes == 0 && (v = sysconf(_SC_LEVEL2_CACHE_SIZE)) > 0) ci->l2_bytes = (size_t)v;
    if (ci->l3_bytes == 0 && (v = sysconf(_SC_LEVEL3_CACHE_SIZE)) > 0) ci->l3_bytes = (size_t)v;
#endif
}

/* ---- public ---------------------------------------------------------------------------- */

static void cpu_init(void)
{
    bn_cpu_info ci;
    memset(&ci, 0, sizeof ci);
    detect_arch(&ci);
    detect_isa(&ci);
    detect_cores(&ci);
    detect_caches(&ci);
    g_info = ci;
}

const bn_cpu_info *bn_cpu_info_get(void)
{
    pthread_once(&g_once, cpu_init);
    return &g_info;
}

char *bn_cpu_features_str(const bn_cpu_info *cpu, char *buf, size_t size)
{
    const struct {
        const char *name;
        int on;
    } feats[] = {
            {"sse3", cpu->sse3},         {"ssse3", cpu->ssse3},
            {"avx", cpu->avx},           {"avx2", cpu->avx2},
            {"fma", cpu->fma},           {"f16c", cpu->f16c},
            {"avx512f", cpu->avx512f},   {"avx512bw", cpu->avx512bw},
            {"avx512vl", cpu->avx512vl}, {"avx512vnni", cpu->avx512vnni},
            {"avx512dq", cpu->avx512dq}, {"avxvnni", cpu->avxvnni},
            {"neon", cpu->neon},         {"dotprod", cpu->dotprod},
    };
    if (size == 0) return buf;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        if (!feats[i].on) continue;
        size_t n = strlen(feats[i].name) + (len > 0);
        if (len + n >= size) break; /* would not fit whole: stop at a word boundary */
        if (len > 0) buf[len++] = ' ';
        memcpy(buf + len, feats[i].name, strlen(feats[i].name) + 1);
        len += strlen(feats[i].name);
    }
    return buf;
}
