/*
 * model_ops_avx512.c - the forward pass's per-token steps with AVX-512 F/BW/VL/DQ (compiled
 * with the avx512 flags; chosen per state when the CPU has them, see choose_ops in
 * model_forward.c): RMSNorm and the activation quantizer in one kernel, the quantizer alone,
 * relu^2 * up and the residual add (the last two: the float operations of the plain C loops,
 * so their bits).
 *
 * RMSNorm + quantizer (bn__model_norm_quant_avx512) reads the row three times and writes only
 * the codes: the sum of squares; y = (x * scale) * w and its largest |y|; y computed again,
 * times the quantizer's scale, rounded to int8. Every value goes through the float
 * operations of the two-step definition (rmsnorm, then bn__model_quantize_act, in
 * model_forward.c), so the codes and the scale are theirs whenever the sum of squares is.
 * That sum is taken in double in the order of bn__model_rmsnorm_avx2: the float products of
 * each block of 8 values added to 8 double lanes block after block, lanes j and j + 4
 * added, then (0 + 1) + (2 + 3), the values past the last whole block one by one. So this
 * kernel gives the AVX2 pair's bits exactly, and the plain C one's (which adds all values
 * in turn) except where the two orders round the sum differently.
 *
 * The ends of a row that are not a whole vector are loaded and stored under a mask; the
 * lanes loaded as zero give a code of 0 and add nothing.
 */
#include <immintrin.h>
#include <math.h>

#include "model_internal.h"

#define INLINE static inline __attribute__((always_inline))

/* The lanes [0, n - i) of 64 values at element i, all of them when 64 are left; lanes
 * [16 k, 16 k + 16) of it for the k-th vector of 16. */
INLINE __mmask64 tail_mask(int64_t i, int64_t n)
{
    return n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
}
INLINE __mmask16 part(__mmask64 m, int k)
{
    return (__mmask16)(m >> (16 * k));
}

/* The sum of (double)(x[i] * x[i]) in bn__model_rmsnorm_avx2's order (see above). */
static double sum_squares(const float *x, int64_t n)
{
    __m512d acc = _mm512_setzero_pd(); /* lanes 0-3: the AVX2 kernel's s0, 4-7: its s1 */
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 p = _mm512_mul_ps(v, v); /* the float product, as the C loop */
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(p, 1)));
    }
    if (i + 8 <= n) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_mul_ps(v, v)));
        i += 8;
    }
    double lane[4];
    _mm256_storeu_pd(lane,
                     _mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1)));
    double ss = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    for (; i < n; i++) ss += (double)(x[i] * x[i]);
    return ss;
}

/* The 16 values at i under mask m: (x * scale) * w, or x as it is when w is NULL (the
 * callers pass a constant NULL or not, so each gets its own loop). */
INLINE __m512 row16(const float *x, const float *w, __m512 scale, int64_t i, __mmask16 m)
{
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (!w) return v;
    return _mm512_mul_ps(_mm512_mul_ps(v, scale), _mm512_maskz_loadu_ps(m, w + i));
}

/* The largest |row16| over the row, four vectors at a time; a NaN is skipped (max_ps keeps
 * its second operand), as the C loop does. */
INLINE float row_amax(const float *x, const float *w, __m512 scale, int64_t n)
{
    __m512 vmax[4];
    for (int k = 0; k < 4; k++) vmax[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 64) {
        const __mmask64 m = tail_mask(i, n);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m512 y = row16(x, w, scale, i + 16 * k, part(m, k));
            vmax[k] = _mm512_max_ps(_mm512_abs_ps(y), vmax[k]);
        }
    }
    return _mm512_reduce_max_ps(
            _mm512_max_ps(_mm512_max_ps(vmax[0], vmax[1]), _mm512_max_ps(vmax[2], vmax[3])));
}

/* The int32 codes of the 16 values v = row16 * s, where s is the quantizer's scale for
 * the row's largest |row16|, amax (act_scale). bn__model_quantize_act rounds v + magic -
 * magic for |v| <= 256 (rint, ties to even), gives 0 for a larger |v| or a NaN, then clamps
 * to [-128, 127]. Here |v| <= amax * (127 / amax) (or times 127 / 1e-5 when amax is
 * smaller) is at most 127 up to two roundings, so rint(v) lies in [-127, 127] and the
 * clamp and the |v| > 256 case never apply; an inf makes amax inf, s 0 and v NaN. So the
 * code is rint(v), or 0 for a NaN. */
INLINE __m512i codes16(__m512 v)
{
    const __mmask16 num = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    return _mm512_maskz_cvt_roundps_epi32(num, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* q = the int8 codes of row16 * s, 64 at a time: four vectors of codes packed to bytes (in
 * range, so the saturating packs are exact) and put back in order, one store of 64 bytes
 * (narrowing each vector into memory, vpmovdb, is slow on some cores); returns their sum. */
INLINE int32_t row_codes(const float *x, const float *w, __m512 scale, float s, int64_t n,
                         int8_t *q)
{
    const __m512 vs = _mm512_set1_ps(s);
    /* the packs leave dword 4 L + k = vector k's values 4 L .. 4 L + 3: transpose that */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i acc = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 64) {
        const __mmask64 m = tail_mask(i, n);
        __m512i r[4];
#pragma GCC unroll 4 /* r in registers (gcc 12 -O2 leaves the loop, and r on the stack) */
        for (int k = 0; k < 4; k++) {
            r[k] = codes16(_mm512_mul_ps(row16(x, w, scale, i + 16 * k, part(m, k)), vs));
            acc = _mm512_add_epi32(acc, r[k]);
        }
        const __m512i b =
                _mm512_packs_epi16(_mm512_packs_epi32(r[0], r[1]), _mm512_packs_epi32(r[2], r[3]));
        _mm512_mask_storeu_epi8(q + i, m, _mm512_permutexvar_epi32(order, b));
    }
    return _mm512_reduce_add_epi32(acc);
}

/* The quantizer's scale for a row whose largest |value| is amax (bn__model_quantize_act). */
INLINE float act_scale(float amax)
{
    return 127.0f / (amax > 1e-5f ? amax : 1e-5f);
}

float bn__model_norm_quant_avx512(const float *x, const float *w, int64_t n, float eps, int8_t *q,
                                  int32_t *sum)
{
    if (!w) return bn__model_quantize_act_avx512(x, n, q, sum);
    const float scale = 1.0f / sqrtf((float)(sum_squares(x, n) / (double)n) + eps);
    const __m512 vscale = _mm512_set1_ps(scale);
    const float s = act_scale(row_amax(x, w, vscale, n));
    *sum = row_codes(x, w, vscale, s, n, q);
    return s;
}

float bn__model_quantize_act_avx512(const float *x, int64_t n, int8_t *q, int32_t *sum)
{
    const __m512 one = _mm512_set1_ps(1.0f); /* unused: row16 without w */
    const float s = act_scale(row_amax(x, NULL, one, n));
    *sum = row_codes(x, NULL, one, s, n, q);
    return s;
}

/* ---- relu^2 * up, the residual add ----------------------------------------------------- */

/* The 16-lane mask of the values [i, n) when fewer than 16 are left. */
INLINE __mmask16 mask16(int64_t i, int64_t n)
{
    return (__mmask16)((1u << (n - i)) - 1u);
}

void bn__model_relu2_mul_avx512(float *g, const float *u, int64_t n)
{
    const __m512 zero = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_max_ps(_mm512_loadu_ps(g + i), zero); /* NaN -> 0 */
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_mul_ps(v, v), _mm512_loadu_ps(u + i)));
    }
    if (i < n) {
        const __mmask16 m = mask16(i, n);
        const __m512 v = _mm512_max_ps(_mm512_maskz_loadu_ps(m, g + i), zero);
        _mm512_mask_storeu_ps(g + i, m,
                              _mm512_mul_ps(_mm512_mul_ps(v, v), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

void bn__model_add_avx512(float *x, const float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = mask16(i, n);
        _mm512_mask_storeu_ps(
                x + i, m,
                _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}
