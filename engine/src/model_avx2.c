/*
 * model_avx2.c - the forward pass's AVX2 + FMA + F16C twins (compiled with -mavx2 -mfma
 * -mf16c; called only when the CPU has them): the LM head's Q8_0 matrix-vector product,
 * the activation quantizer, RMSNorm, the FFN activation, f16 stores and attention.
 *
 * Head: four rows at a time share each block of the activations. The products use the sign
 * trick of ggml: |x| (unsigned) times w carrying the sign of x, through maddubs; both
 * sides lie in [-127, 127] (the loader clamps the weights, the activation quantizer never
 * makes -128), so a pair of products, at most 2 * 127 * 127, fits an int16.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "model_internal.h"

#define ROWS 4
/* Software prefetch distance of the head's stream in bytes: ~25% faster than the
 * hardware prefetchers alone on Zen 3 (1 to 8 KiB all help; 2 KiB measured best). */
#define HEAD_PREFETCH 2048
#define INLINE        static inline __attribute__((always_inline))

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
        const char *pf = (const char *)w + b * ROWS * 32 + HEAD_PREFETCH;
        _mm_prefetch(pf, _MM_HINT_T0);
        _mm_prefetch(pf + 64, _MM_HINT_T0);
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

/* ---- the activation quantizer, RMSNorm, the FFN activation, f16 stores -------------- */

float bn__model_quantize_act_avx2(const float *x, int64_t n, int8_t *q, int32_t *sum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmax = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) /* max_ps keeps its second operand for a NaN, as the C loop */
        vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), vmax);
    float lane[8], amax = 0.0f;
    _mm256_storeu_ps(lane, vmax);
    for (int l = 0; l < 8; l++) amax = lane[l] > amax ? lane[l] : amax;
    for (int64_t k = i; k < n; k++) {
        const float a = fabsf(x[k]);
        amax = a > amax ? a : amax;
    }
    const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    const float magic = 12582912.0f; /* see bn__model_quantize_act */
    const __m256 vs = _mm256_set1_ps(s), vmagic = _mm256_set1_ps(magic);
    const __m256 lim = _mm256_set1_ps(256.0f), lo = _mm256_set1_ps(-128.0f);
    const __m256 hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i acc = _mm256_setzero_si256();
    for (i = 0; i + 32 <= n; i += 32) {
        __m256i r[4];
        for (int k = 0; k < 4; k++) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vs);
            const __m256 ok = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), lim, _CMP_LE_OQ);
            __m256 t = _mm256_sub_ps(_mm256_add_ps(v, vmagic), vmagic);
            t = _mm256_min_ps(_mm256_max_ps(_mm256_and_ps(t, ok), lo), hi);
            r[k] = _mm256_cvtps_epi32(t); /* an integer already: exact */
            acc = _mm256_add_epi32(acc, r[k]);
        }
        const __m256i p16 =
                _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p16, order));
    }
    __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    a4 = _mm_add_epi32(a4, _mm_shuffle_epi32(a4, 0x4e));
    a4 = _mm_add_epi32(a4, _mm_shuffle_epi32(a4, 0xb1));
    int32_t total = _mm_cvtsi128_si32(a4);
    for (; i < n; i++) {
        const float v = x[i] * s;
        float t = fabsf(v) <= 256.0f ? (v + magic) - magic : 0.0f;
        t = t < -128.0f ? -128.0f : t > 127.0f ? 127.0f : t;
        q[i] = (int8_t)t;
        total += q[i];
    }
    *sum = total;
    return s;
}

void bn__model_rmsnorm_avx2(const float *x, const float *w, int64_t n, float eps, float *y)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 p = _mm256_mul_ps(v, v); /* the float product, as the C loop */
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    double lane[4];
    _mm256_storeu_pd(lane, _mm256_add_pd(s0, s1));
    double ss = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    for (int64_t k = i; k < n; k++) ss += (double)(x[k] * x[k]);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

void bn__model_relu2_mul_avx2(float *g, const float *u, int64_t n)
{
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_max_ps(_mm256_loadu_ps(g + i), zero); /* NaN -> 0 */
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        const float v = g[i] > 0.0f ? g[i] : 0.0f;
        g[i] = (v * v) * u[i];
    }
}

/* e^x for x in [-87.3, 88.7] (clamped there): x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in
 * a high part exact in float and a low part), e^r by its degree-6 Taylor polynomial
 * (truncation below 2e-8 relative on that range) in Horner form, times 2^n built in the
 * exponent bits. */
static inline __m256 exp_avx2(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n: n in [-126, 128]; 2^128 is not a float, so scale by 2^(n-1) twice that range */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256 s1 = _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

void bn__model_silu_mul_avx2(float *g, const float *u, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(g + i);
        const __m256 e = exp_avx2(_mm256_xor_ps(v, sign));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(v, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void bn__model_f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* ---- attention -------------------------------------------------------------------------- */

/* 8 cache elements at p, as floats. */
INLINE __m256 ld8(const void *base, size_t at, int f16)
{
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + at)));
    return _mm256_loadu_ps((const float *)base + at);
}

/* The sum of each of 4 (or 8) accumulators, every one reduced as
 * ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) whatever its neighbours. */
INLINE void reduce8(const __m256 *a, int nq, float *out)
{
    const __m256 h5 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    if (nq == 4) {
        _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h5), _mm256_extractf128_ps(h5, 1)));
        return;
    }
    const __m256 h6 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(h5, h6, 0x20),
                                        _mm256_permute2f128_ps(h5, h6, 0x31)));
}

/* acc[j] += a * x[j][off ..], acc[4 + j] += b * x[j][off ..] for 4 queries j: two rows
 * (keys or dimensions) at once, 8 independent chains instead of 4 waiting on the FMA's
 * latency; each chain is the one the rows would get one at a time. */
INLINE void fma2x4(__m256 *acc, __m256 a, __m256 b, const float *const *x, size_t off)
{
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m256 xv = _mm256_loadu_ps(x[j] + off);
        acc[j] = _mm256_fmadd_ps(a, xv, acc[j]);
        acc[4 + j] = _mm256_fmadd_ps(b, xv, acc[4 + j]);
    }
}

/* s_j[p] = (q_j . K[p]) * scale for every p < n_keys of the last query (a query's
 * values past its own n_keys are computed and not used). NQ (4 or 8) is a constant;
 * queries past nq repeat the last. */
INLINE void attn_scores(const bn__attn_block *a, const float *const *q, int NQ, int f16)
{
    const int64_t n = a->n_keys[a->nq - 1], d = a->d;
    float sums[8];
    int64_t p = 0;
    /* 4 queries: two keys at a time (fma2x4), each sum reduced as below */
    for (; NQ == 4 && p + 2 <= n; p += 2) {
        __m256 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        const size_t row = (size_t)p * a->k_stride;
        for (int64_t c = 0; c < d; c += 8) {
            const __m256 k0 = ld8(a->k, row + (size_t)c, f16);
            const __m256 k1 = ld8(a->k, row + a->k_stride + (size_t)c, f16);
            fma2x4(acc, k0, k1, q, (size_t)c);
        }
        reduce8(acc, 8, sums);
        for (int j = 0; j < a->nq; j++) {
            a->s[(size_t)j * a->s_stride + (size_t)p] = sums[j] * a->scale;
            a->s[(size_t)j * a->s_stride + (size_t)p + 1] = sums[4 + j] * a->scale;
        }
    }
    for (; p < n; p++) {
        __m256 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++) acc[j] = _mm256_setzero_ps();
        const size_t row = (size_t)p * a->k_stride;
        for (int64_t c = 0; c < d; c += 8) {
            const __m256 kv = ld8(a->k, row + (size_t)c, f16);
#pragma GCC unroll 8 /* the accumulators in registers */
            for (int j = 0; j < NQ; j++)
                acc[j] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q[j] + c), acc[j]);
        }
        reduce8(acc, NQ, sums);
        for (int j = 0; j < a->nq; j++)
            a->s[(size_t)j * a->s_stride + (size_t)p] = sums[j] * a->scale;
    }
}

/* e^x for x <= 0, within ~2 ulp of expf: x = n ln2 + r, |r| <= ln2 / 2 (ln2 in two
 * parts), e^r by Cephes' polynomial, 2^n into the exponent; x below -87.3 (where expf
 * is subnormal or zero) gives 0. */
INLINE __m256 exp_neg(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y =
            _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i e =
            _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/* Softmax of a query's n scores in place (n >= 1), 8 at a time (the lanes past n
 * masked), then zeros up to a multiple of 8 at or past n_pad (the block's last query's
 * n). The result depends on the query's scores alone. */
static void softmax_row(float *s, int64_t n, int64_t n_pad)
{
    const int64_t nfull = n / 8 * 8;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 keep =
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - nfull)), lane));
    float mx = -INFINITY;
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    for (int64_t p = 0; p < nfull; p += 8) /* max_ps keeps the second operand for a NaN */
        vmx = _mm256_max_ps(_mm256_loadu_ps(s + p), vmx);
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    for (int l = 0; l < 8; l++) mx = lanes[l] > mx ? lanes[l] : mx;
    for (int64_t p = nfull; p < n; p++) mx = s[p] > mx ? s[p] : mx;
    const __m256 m = _mm256_set1_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t p = 0; p < nfull; p += 8) {
        const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + p), m));
        _mm256_storeu_ps(s + p, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (nfull < n) { /* the scratch row has room for the whole chunk */
        const __m256 v = _mm256_blendv_ps(m, _mm256_loadu_ps(s + nfull), keep);
        const __m256 e = _mm256_and_ps(exp_neg(_mm256_sub_ps(v, m)), keep);
        _mm256_storeu_ps(s + nfull, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (int64_t p = 0; p < n; p += 8)
        _mm256_storeu_ps(s + p, _mm256_mul_ps(_mm256_loadu_ps(s + p), inv));
    for (int64_t p = n; p < n_pad || p % 8; p++) s[p] = 0.0f;
}

/* out_j[i] = sum over p of s_j[p] V[i][p], in chunks of 8 positions, in order, each V
 * chunk read once for all the queries. A query's weights are zero past its own keys,
 * so the positions the later queries of the block add contribute zeros to it (for
 * finite V: the block's numbers are then a single query's); values past the last
 * query's keys may be unwritten cache (any bits) and are replaced by zeros (the cache
 * rows have room for the whole chunk). */
INLINE void attn_values(const bn__attn_block *a, float *const *out, const float *const *s, int NQ,
                        int f16)
{
    const int64_t d = a->d, n = a->n_keys[a->nq - 1], nfull = n / 8 * 8;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 keep =
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - nfull)), lane));
    float sums[8];
    int64_t i = 0;
    /* 4 queries: two dimensions at a time (fma2x4), each sum reduced as below */
    for (; NQ == 4 && i + 2 <= d; i += 2) {
        const size_t vr = (size_t)i * 8;
        __m256 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int64_t c = 0; c < nfull; c += 8) {
            const size_t at = vr + (size_t)(c / 8) * a->v_stride;
            const __m256 v0 = ld8(a->v, at, f16), v1 = ld8(a->v, at + 8, f16);
            fma2x4(acc, v0, v1, s, (size_t)c);
        }
        if (nfull < n) {
            const size_t at = vr + (size_t)(nfull / 8) * a->v_stride;
            const __m256 z = _mm256_setzero_ps();
            const __m256 v0 = _mm256_blendv_ps(z, ld8(a->v, at, f16), keep);
            const __m256 v1 = _mm256_blendv_ps(z, ld8(a->v, at + 8, f16), keep);
            fma2x4(acc, v0, v1, s, (size_t)nfull);
        }
        reduce8(acc, 8, sums);
        for (int j = 0; j < a->nq; j++) out[j][i] = sums[j], out[j][i + 1] = sums[4 + j];
    }
    for (; i < d; i++) {
        const size_t vr = (size_t)i * 8; /* block c / 8 at + (c / 8) * v_stride */
        __m256 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++) acc[j] = _mm256_setzero_ps();
        for (int64_t c = 0; c < nfull; c += 8) {
            const __m256 vv = ld8(a->v, vr + (size_t)(c / 8) * a->v_stride, f16);
#pragma GCC unroll 8
            for (int j = 0; j < NQ; j++)
                acc[j] = _mm256_fmadd_ps(vv, _mm256_loadu_ps(s[j] + c), acc[j]);
        }
        if (nfull < n) {
            const __m256 vv =
                    _mm256_blendv_ps(_mm256_setzero_ps(),
                                     ld8(a->v, vr + (size_t)(nfull / 8) * a->v_stride, f16), keep);
#pragma GCC unroll 8
            for (int j = 0; j < NQ; j++)
                acc[j] = _mm256_fmadd_ps(vv, _mm256_loadu_ps(s[j] + nfull), acc[j]);
        }
        reduce8(acc, NQ, sums);
        for (int j = 0; j < a->nq; j++) out[j][i] = sums[j];
    }
}

INLINE void attn_nq(const bn__attn_block *a, int NQ, int f16)
{
    const float *q[8];
    float *out[8], *s[8];
    for (int j = 0; j < NQ; j++) {
        const int jj = j < a->nq ? j : a->nq - 1;
        q[j] = a->q[jj];
        s[j] = a->s + (size_t)jj * a->s_stride;
        out[j] = a->out[jj];
    }
    attn_scores(a, q, NQ, f16);
    for (int j = 0; j < a->nq; j++) softmax_row(s[j], a->n_keys[j], a->n_keys[a->nq - 1]);
    attn_values(a, out, (const float *const *)s, NQ, f16);
}

void bn__model_attn_avx2(const bn__attn_block *a)
{
    if (a->nq <= 4) {
        if (a->f16)
            attn_nq(a, 4, 1);
        else
            attn_nq(a, 4, 0);
    } else {
        if (a->f16)
            attn_nq(a, 8, 1);
        else
            attn_nq(a, 8, 0);
    }
}
