/*
 * bitnet/cpu.h - what the processor can do, detected once at run time.
 *
 * Usage:
 *
 *     const bn_cpu_info *cpu = bn_cpu_info_get();
 *     if (cpu->avx2) ...;
 *     printf("%s, %d cores, L2 %zu bytes\n", cpu->model, cpu->n_cores, cpu->l2_bytes);
 *
 * The returned struct is filled on first use, is owned by the library and never
 * changes afterwards (thread-safe).
 */
#ifndef BITNET_CPU_H
#define BITNET_CPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_cpu_info {
    char arch[16];   /* "x86_64", "aarch64", ... */
    char vendor[16]; /* "GenuineIntel", "AuthenticAMD", ... or "" */
    char model[64];  /* brand string, or "" when unknown */
    /* x86 (each also requires OS support for the register state, checked with xgetbv) */
    int sse3, ssse3, avx, avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512vnni, avx512dq;
    int avxvnni;
    /* ARM */
    int neon, dotprod;
    /* topology and caches (0 when unknown) */
    int n_cores;   /* online logical CPUs */
    int n_physical; /* physical cores, or n_cores when unknown */
    size_t l1d_bytes, l2_bytes, l3_bytes;
} bn_cpu_info;

const bn_cpu_info *bn_cpu_info_get(void);

/* Writes the detected ISA features as a space-separated list ("avx2 fma f16c ...") into
 * buf (always NUL-terminated) and returns buf. */
char *bn_cpu_features_str(const bn_cpu_info *cpu, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_CPU_H */
