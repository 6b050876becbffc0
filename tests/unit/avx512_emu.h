/*
 * avx512_emu.h - a plain-C model of the few AVX-512 intrinsics kernels_avx512.c uses,
 * written from Intel's definitions, so test_kernels.c can compile that file with
 * BN_KERNELS_AVX512_EMULATE and check its logic (lanes, shifts, tails) against the
 * reference on CPUs without AVX-512. Speed is not the point.
 */
#ifndef BITNET_AVX512_EMU_H
#define BITNET_AVX512_EMU_H

#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t b[64];
} __m512i;
typedef struct {
    uint8_t b[32];
} __m256i;

#define _MM_HINT_T0           3
#define _mm_prefetch(p, hint) ((void)(p), (void)(hint))

static inline __m256i _mm256_loadu_si256(const __m256i *p)
{
    __m256i r;
    memcpy(r.b, p, 32);
    return r;
}

static inline __m256i _mm256_set1_epi16(short v)
{
    __m256i r;
    for (int i = 0; i < 16; i++) memcpy(r.b + 2 * i, &v, 2);
    return r;
}

static inline __m512i _mm512_loadu_si512(const void *p)
{
    __m512i r;
    memcpy(r.b, p, 64);
    return r;
}

static inline void _mm512_storeu_si512(void *p, __m512i a)
{
    memcpy(p, a.b, 64);
}

static inline __m512i _mm512_setzero_si512(void)
{
    __m512i r;
    memset(r.b, 0, 64);
    return r;
}

static inline __m512i _mm512_set1_epi8(char v)
{
    __m512i r;
    memset(r.b, (unsigned char)v, 64);
    return r;
}

static inline __m512i _mm512_set1_epi16(short v)
{
    __m512i r;
    for (int i = 0; i < 32; i++) memcpy(r.b + 2 * i, &v, 2);
    return r;
}

static inline __m512i _mm512_broadcast_i64x4(__m256i a)
{
    __m512i r;
    memcpy(r.b, a.b, 32);
    memcpy(r.b + 32, a.b, 32);
    return r;
}

static inline __m512i _mm512_inserti64x4(__m512i a, __m256i b, int imm)
{
    memcpy(a.b + 32 * (imm & 1), b.b, 32);
    return a;
}

static inline __m512i _mm512_and_si512(__m512i a, __m512i b)
{
    for (int i = 0; i < 64; i++) a.b[i] &= b.b[i];
    return a;
}

/* Per 16-bit lane: a >> count, 0 when count > 15. */
static inline __m512i _mm512_srlv_epi16(__m512i a, __m512i count)
{
    for (int i = 0; i < 32; i++) {
        uint16_t v, c;
        memcpy(&v, a.b + 2 * i, 2);
        memcpy(&c, count.b + 2 * i, 2);
        v = c > 15 ? 0 : (uint16_t)(v >> c);
        memcpy(a.b + 2 * i, &v, 2);
    }
    return a;
}

static inline __m512i _mm512_add_epi32(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++) {
        uint32_t x, y;
        memcpy(&x, a.b + 4 * i, 4);
        memcpy(&y, b.b + 4 * i, 4);
        x += y;
        memcpy(a.b + 4 * i, &x, 4);
    }
    return a;
}

/* Per 32-bit lane: src + the four products of unsigned bytes of a with signed bytes of
 * b (wrapping, no saturation). */
static inline __m512i _mm512_dpbusd_epi32(__m512i src, __m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++) {
        uint32_t acc;
        memcpy(&acc, src.b + 4 * i, 4);
        for (int j = 0; j < 4; j++)
            acc += (uint32_t)((int32_t)a.b[4 * i + j] * (int32_t)(int8_t)b.b[4 * i + j]);
        memcpy(src.b + 4 * i, &acc, 4);
    }
    return src;
}

static inline int _mm512_reduce_add_epi32(__m512i a)
{
    uint32_t s = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t x;
        memcpy(&x, a.b + 4 * i, 4);
        s += x;
    }
    return (int)s;
}

#endif /* BITNET_AVX512_EMU_H */
