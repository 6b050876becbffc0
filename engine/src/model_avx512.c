/*
 * model_avx512.c - the LM head's split Q8_0 product with AVX-512 VNNI (compiled with the
 * avx512 flags; chosen when the kernels are avx512vnni), for one token or several at once.
 *
 * A 512-bit register holds block b of two rows of a row group (the layout of
 * bn__head_block_offset: a group's four rows interleaved block by block), so one vpdpbusd
 * multiplies 64 weights by the token's block broadcast to both halves: |x| (unsigned) times
 * w carrying the sign of x, as the AVX2 twin does with maddubs (both sides lie in
 * [-127, 127]). Each 32-value block's eight int32 lanes then times the float d[r][b] * xd[b]
 * into a float accumulator per (row pair, token).
 *
 * Several tokens share every load of the weights. The arithmetic of a (row, token) pair does
 * not depend on how many tokens run together - the same blocks in the same order, the same
 * final sum of lanes - so a batch's logits equal each token's alone, to the bit.
 */
#include <immintrin.h>
#include <string.h>

#include "model_internal.h"

#define ROWS          4 /* a row group */
#define TOKS          4 /* tokens a pass */
#define HEAD_PREFETCH 2048

/* Sum of lanes [8h, 8h + 8) of v: a row's sum (h 0: the pair's first row). */
static inline float half_sum(__m512 v, int h)
{
    const __m256 x = h ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows g*4 .. g*4+3 for nt tokens (token t: xq + t*E, xd + t*nb, out y[t]); writes the
 * rows in [r0, r1) only (a padding row's scales are taken as 0). */
static inline __attribute__((always_inline)) void
group_tokens(const int8_t *qs, const uint16_t *d, int64_t E, int64_t g, int64_t r0, int64_t r1,
             const int8_t *xq, const float *xd, int nt, float *const *y)
{
    const int64_t nb = E / BN_QK8_0;
    const int8_t *w = qs + bn__head_block_offset(E, g * ROWS, 0);
    const uint16_t *dr[ROWS];
    for (int i = 0; i < ROWS; i++) dr[i] = g * ROWS + i < r1 ? d + (g * ROWS + i) * nb : NULL;
    __m512 acc[2][TOKS];
    for (int p = 0; p < 2; p++)
        for (int t = 0; t < TOKS; t++) acc[p][t] = _mm512_setzero_ps();
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        const char *pf = (const char *)w + b * ROWS * 32 + HEAD_PREFETCH;
        _mm_prefetch(pf, _MM_HINT_T0);
        _mm_prefetch(pf + 64, _MM_HINT_T0);
        const __m512i w01 = _mm512_loadu_si512(w + b * ROWS * 32);
        const __m512i w23 = _mm512_loadu_si512(w + b * ROWS * 32 + 64);
        float dv[ROWS];
        for (int i = 0; i < ROWS; i++) dv[i] = dr[i] ? _cvtsh_ss(dr[i][b]) : 0.0f;
        const __m512 d01 = _mm512_insertf32x8(_mm512_set1_ps(dv[0]), _mm256_set1_ps(dv[1]), 1);
        const __m512 d23 = _mm512_insertf32x8(_mm512_set1_ps(dv[2]), _mm256_set1_ps(dv[3]), 1);
        for (int t = 0; t < nt; t++) {
            const __m512i x = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *)(xq + t * E + b * BN_QK8_0)));
            const __m512i ax = _mm512_abs_epi8(x);
            const __mmask64 neg = _mm512_movepi8_mask(x);
            const __m512 xs = _mm512_set1_ps(xd[t * nb + b]);
            const __m512i s01 =
                    _mm512_dpbusd_epi32(zero, ax, _mm512_mask_sub_epi8(w01, neg, zero, w01));
            const __m512i s23 =
                    _mm512_dpbusd_epi32(zero, ax, _mm512_mask_sub_epi8(w23, neg, zero, w23));
            acc[0][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), _mm512_mul_ps(d01, xs), acc[0][t]);
            acc[1][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s23), _mm512_mul_ps(d23, xs), acc[1][t]);
        }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < ROWS; i++) {
            const int64_t r = g * ROWS + i;
            if (r >= r0 && r < r1) y[t][r] = half_sum(acc[i / 2][t], i % 2);
        }
}

static void rows_tokens(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                        const int8_t *xq, const float *xd, int nt, float *const *y)
{
    for (int64_t g = r0 / ROWS; g * ROWS < r1; g++) switch (nt) {
        case 4:
            group_tokens(qs, d, E, g, r0, r1, xq, xd, 4, y);
            break;
        case 3:
            group_tokens(qs, d, E, g, r0, r1, xq, xd, 3, y);
            break;
        case 2:
            group_tokens(qs, d, E, g, r0, r1, xq, xd, 2, y);
            break;
        default:
            group_tokens(qs, d, E, g, r0, r1, xq, xd, 1, y);
            break;
        }
}

void bn__head_q8_rows_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                             const int8_t *xq, const float *xd, float *y)
{
    rows_tokens(qs, d, E, r0, r1, xq, xd, 1, &y);
}

void bn__head_q8_rows_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                   int64_t r1, const int8_t *xq, const float *xd, int64_t n,
                                   float *const *y)
{
    const int64_t nb = E / BN_QK8_0;
    for (int64_t t = 0; t < n; t += TOKS)
        rows_tokens(qs, d, E, r0, r1, xq + t * E, xd + t * nb, n - t < TOKS ? (int)(n - t) : TOKS,
                    y + t);
}
