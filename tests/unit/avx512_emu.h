/*
 * avx512_emu.h - a plain-C model of the few AVX-512 intrinsics kernels_avx512.c uses,
 * written from Intel's definitions, so test_kernels.c can compile that file with
 * BN_KERNELS_AVX512_EMULATE and check its logic (lanes, shifts, tails) against the
 * reference on CPUs without AVX-512. Speed is not the point.
 */
#ifndef BITNET_AVX512_EMU_H
#define BITNET_AVX512_EMU_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t b[64];
} __m512i;
typedef struct {
    uint8_t b[32];
} __m256i;

#define _MM_HINT_T0           3
#define _MM_HINT_T1           2
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

static inline __m512i _mm512_or_si512(__m512i a, __m512i b)
{
    for (int i = 0; i < 64; i++) a.b[i] |= b.b[i];
    return a;
}

/* Per 16-bit lane: a << imm, 0 when imm > 15. */
static inline __m512i _mm512_slli_epi16(__m512i a, unsigned int imm)
{
    for (int i = 0; i < 32; i++) {
        uint16_t v;
        memcpy(&v, a.b + 2 * i, 2);
        v = imm > 15 ? 0 : (uint16_t)(v << imm);
        memcpy(a.b + 2 * i, &v, 2);
    }
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

/* ---- what the Q6H / Q4H head products add: int32 lanes, float lanes, 16-byte loads --- */

typedef struct {
    uint8_t b[16];
} __m128i;
typedef struct {
    float f[16];
} __m512;
typedef uint16_t __mmask16;

/* Lane i of a as an int32 (get) and lane i of r set to v (put). */
static inline int32_t emu_get32(const __m512i *a, int i)
{
    int32_t v;
    memcpy(&v, a->b + 4 * i, 4);
    return v;
}

static inline void emu_put32(__m512i *r, int i, int32_t v)
{
    memcpy(r->b + 4 * i, &v, 4);
}

static inline __m128i _mm_loadu_si128(const __m128i *p)
{
    __m128i r;
    memcpy(r.b, p, 16);
    return r;
}

static inline __m512i _mm512_set1_epi32(int v)
{
    __m512i r;
    for (int i = 0; i < 16; i++) emu_put32(&r, i, v);
    return r;
}

static inline __m512i _mm512_cvtepi8_epi32(__m128i a)
{
    __m512i r;
    for (int i = 0; i < 16; i++) emu_put32(&r, i, (int8_t)a.b[i]);
    return r;
}

/* Lane i of the result: lane idx[i] & 15 of a. */
/* Per 128-bit lane, elements of `size` bytes from the low (hi 0) or high half of the lane
 * of a and of b, interleaved: a0 b0 a1 b1 ... (unpacklo/unpackhi). */
static inline __m512i emu_unpack(__m512i a, __m512i b, int hi, int size)
{
    __m512i r;
    const int n = 8 / size; /* elements per half lane */
    for (int l = 0; l < 4; l++)
        for (int k = 0; k < n; k++) {
            const int src = 16 * l + 8 * hi + size * k, dst = 16 * l + 2 * size * k;
            memcpy(r.b + dst, a.b + src, (size_t)size);
            memcpy(r.b + dst + size, b.b + src, (size_t)size);
        }
    return r;
}

#define _mm512_unpacklo_epi32(a, b) emu_unpack((a), (b), 0, 4)
#define _mm512_unpackhi_epi32(a, b) emu_unpack((a), (b), 1, 4)
#define _mm512_unpacklo_epi64(a, b) emu_unpack((a), (b), 0, 8)
#define _mm512_unpackhi_epi64(a, b) emu_unpack((a), (b), 1, 8)

/* 128-bit lanes 0, 1 from a and 2, 3 from b, each chosen by two bits of imm. */
static inline __m512i _mm512_shuffle_i32x4(__m512i a, __m512i b, int imm)
{
    __m512i r;
    for (int l = 0; l < 4; l++)
        memcpy(r.b + 16 * l, (l < 2 ? a.b : b.b) + 16 * ((imm >> (2 * l)) & 3), 16);
    return r;
}

static inline __m512i _mm512_permutexvar_epi32(__m512i idx, __m512i a)
{
    __m512i r;
    for (int i = 0; i < 16; i++) emu_put32(&r, i, emu_get32(&a, emu_get32(&idx, i) & 15));
    return r;
}

/* Wrapping, as the instruction (in uint32 so that C has no signed overflow). */
static inline __m512i _mm512_mullo_epi32(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++)
        emu_put32(&a, i, (int32_t)((uint32_t)emu_get32(&a, i) * (uint32_t)emu_get32(&b, i)));
    return a;
}

static inline __m512i _mm512_sub_epi32(__m512i a, __m512i b)
{
    for (int i = 0; i < 16; i++)
        emu_put32(&a, i, (int32_t)((uint32_t)emu_get32(&a, i) - (uint32_t)emu_get32(&b, i)));
    return a;
}

static inline __m512i _mm512_slli_epi32(__m512i a, unsigned int imm)
{
    for (int i = 0; i < 16; i++)
        emu_put32(&a, i, imm > 31 ? 0 : (int32_t)((uint32_t)emu_get32(&a, i) << imm));
    return a;
}

static inline __m512 _mm512_cvtepi32_ps(__m512i a)
{
    __m512 r;
    for (int i = 0; i < 16; i++) r.f[i] = (float)emu_get32(&a, i);
    return r;
}

static inline __m512 _mm512_set1_ps(float v)
{
    __m512 r;
    for (int i = 0; i < 16; i++) r.f[i] = v;
    return r;
}

static inline __m512 _mm512_setzero_ps(void)
{
    return _mm512_set1_ps(0.0f);
}

static inline __m512 _mm512_mul_ps(__m512 a, __m512 b)
{
    for (int i = 0; i < 16; i++) a.f[i] *= b.f[i];
    return a;
}

/* a * b + c with one rounding, as the instruction. */
static inline __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c)
{
    for (int i = 0; i < 16; i++) a.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
    return a;
}

/* Lanes whose mask bit is set from p, the others 0 (and not read). */
static inline __m512 _mm512_maskz_loadu_ps(__mmask16 k, const void *p)
{
    __m512 r;
    for (int i = 0; i < 16; i++)
        if (k >> i & 1)
            memcpy(&r.f[i], (const char *)p + 4 * i, 4);
        else
            r.f[i] = 0.0f;
    return r;
}

static inline __m512i _mm512_maskz_loadu_epi32(__mmask16 k, const void *p)
{
    __m512i r;
    for (int i = 0; i < 16; i++) {
        int32_t v = 0;
        if (k >> i & 1) memcpy(&v, (const char *)p + 4 * i, 4);
        emu_put32(&r, i, v);
    }
    return r;
}

static inline void _mm512_storeu_ps(void *p, __m512 a)
{
    memcpy(p, a.f, 64);
}

/* e15 .. e0, as Intel orders the arguments. */
static inline __m512i _mm512_set_epi32(int e15, int e14, int e13, int e12, int e11, int e10, int e9,
                                       int e8, int e7, int e6, int e5, int e4, int e3, int e2,
                                       int e1, int e0)
{
    const int e[16] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15};
    __m512i r;
    for (int i = 0; i < 16; i++) emu_put32(&r, i, e[i]);
    return r;
}

static inline __m512 _mm512_permutexvar_ps(__m512i idx, __m512 a)
{
    __m512 r;
    for (int i = 0; i < 16; i++) r.f[i] = a.f[emu_get32(&idx, i) & 15];
    return r;
}

static inline float _mm512_reduce_add_ps(__m512 a)
{
    float s = 0.0f;
    for (int i = 0; i < 16; i++) s += a.f[i];
    return s;
}

#endif /* BITNET_AVX512_EMU_H */
