/*
 * model_avx2.c - the LM head's Q8_0 matrix-vector product with AVX2 + FMA + F16C
 * (compiled with -mavx2 -mfma -mf16c; called only when the CPU has them).
 *
 * Four rows at a time share each block of the activations. The products use the sign
 * trick of ggml: |x| (unsigned) times w carrying the sign of x, through maddubs; both
 * sides lie in [-127, 127] (the loader clamps the weights, the activation quantizer never
 * makes -128), so a pair of products, at most 2 * 127 * 127, fits an int16.
 */
#include <immintrin.h>

#include "model_internal.h"

#define ROWS 4

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* sc[b] = f16 dw[b] * xd[b] for nb blocks. */
static void row_scales(const uint16_t *dw, const float *xd, int64_t nb, float *sc)
{
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dw + b)));
        _mm256_storeu_ps(sc + b, _mm256_mul_ps(d, _mm256_loadu_ps(xd + b)));
    }
    for (; b < nb; b++) sc[b] = _cvtsh_ss(dw[b]) * xd[b];
}

/* Rows g*4 .. g*4+3 (a whole group); writes the rows in [r0, r1) only. */
static void group4(const int8_t *qs, const uint16_t *d, int64_t E, int64_t g, int64_t r0,
                   int64_t r1, const int8_t *xq, const float *xd, float *y)
{
    const int64_t nb = E / BN_QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    float sc[ROWS][BN_MODEL_MAX_EMBD / BN_QK8_0];
    const int8_t *w = qs + bn__head_block_offset(E, g * ROWS, 0);
    for (int i = 0; i < ROWS; i++) {
        if (g * ROWS + i < r1)
            row_scales(d + (g * ROWS + i) * nb, xd, nb, sc[i]);
        else
            for (int64_t b = 0; b < nb; b++) sc[i][b] = 0.0f; /* padding rows */
    }
    __m256 acc[ROWS];
    for (int i = 0; i < ROWS; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * BN_QK8_0));
        const __m256i ax = _mm256_sign_epi8(x, x);
        for (int i = 0; i < ROWS; i++) {
            const __m256i wv = _mm256_load_si256((const __m256i *)(w + (b * ROWS + i) * 32));
            const __m256i p =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, x)), ones);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&sc[i][b]), acc[i]);
        }
    }
    for (int i = 0; i < ROWS; i++) {
        const int64_t r = g * ROWS + i;
        if (r >= r0 && r < r1) y[r] = hsum(acc[i]);
    }
}

void bn__head_q8_rows_avx2(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                           const int8_t *xq, const float *xd, float *y)
{
    for (int64_t g = r0 / ROWS; g * ROWS < r1; g++) group4(qs, d, E, g, r0, r1, xq, xd, y);
}

/* bn__model_q8_0_row with AVX2: the same bytes (roundf as truncation plus a correction
 * by the exact remainder; a NaN or a scaled value out of range gives 0). */
void bn__model_q8_0_row_avx2(const float *x, bn_block_q8_0 *y, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f);
    const __m256 mhalf = _mm256_set1_ps(-0.5f), lim = _mm256_set1_ps(127.5f);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / BN_QK8_0; b++) {
        const float *xb = x + b * BN_QK8_0;
        __m256 v[4], amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax); /* NaN: keeps amax */
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float d = _mm_cvtss_f32(m) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 s = _mm256_mul_ps(v[k], _mm256_set1_ps(id));
            __m256i t = _mm256_cvttps_epi32(s);
            const __m256 f = _mm256_sub_ps(s, _mm256_cvtepi32_ps(t));
            t = _mm256_add_epi32(
                    t,
                    _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(f, half, _CMP_GE_OQ)), one));
            t = _mm256_sub_epi32(
                    t, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(f, mhalf, _CMP_LE_OQ)),
                                        one));
            const __m256 ok = _mm256_cmp_ps(_mm256_andnot_ps(sign, s), lim, _CMP_LE_OQ);
            q[k] = _mm256_and_si256(t, _mm256_castps_si256(ok));
        }
        const __m256i p16 =
                _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)y[b].qs, _mm256_permutevar8x32_epi32(p16, order));
    }
}
