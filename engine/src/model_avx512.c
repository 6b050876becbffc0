/*
 * model_avx512.c - the LM head's split Q8_0 product with AVX-512 VNNI (compiled with the
 * avx512 flags; chosen when the kernels are avx512vnni), for one token or several at once.
 *
 * The weights are kept offset to unsigned bytes (w + 128) and interleaved four bytes at a
 * time across 16 rows (bn__head_u8_offset in model_internal.h), so that vpdpbusd takes them
 * as they are: (w + 128) * x summed over a block is the block's product plus 128 * (sum of
 * the block's x), a correction subtracted exactly in int32. Every (row, block) thus gets the
 * exact integer sum of its products, and each row's logit is the same chain of float
 * operations whatever the kernel: acc = fma((float)sum[b], d[r][b] * xd[b], acc) for
 * b = 0, 1, ..., nb - 1 (bn__head_u8_rows_ref in plain C).
 *
 * One token (bn__head_u8_rows_avx512): 16 rows in the lanes. 64 bytes of the head hold four
 * values of 16 rows, and the token's four matching values come broadcast by the load itself:
 * eight vpdpbusd give block b of 16 rows, then one multiply-add for the 16 of them.
 *
 * Several tokens (bn__head_u8_rows_multi_avx512): 16 rows in the lanes as for one token,
 * the tokens 8 at a time. Their activations are prepared once per forward pass
 * (bn__head_group_prep: token i's values 4s .. 4s+3 at step s, lane i, with each block's
 * correction and scale per token); each 64 bytes of the head then serve eight vpdpbusd,
 * one per token with its four values broadcast, and one multiply-add per (token, block)
 * takes 16 rows. A 16-row group goes in chunks of HEAD_CHUNK blocks that stay in L1 while
 * the second eight tokens pass over them, the chunk after next prefetched into L2. A
 * (row, token) pair gets the same integer sums and the same float chain from either
 * kernel, so a batch's logits equal each token's alone, to the bit.
 */
#include <immintrin.h>
#include <string.h>

#include "model_internal.h"

static inline __attribute__((always_inline)) __m512i ld512(const void *p)
{
    return _mm512_loadu_si512(p);
}

#define GT 16 /* tokens in a prepared group */

size_t bn__head_group_bytes(int64_t E)
{
    return (size_t)E * GT + (size_t)(E / BN_QK8_0) * GT * 8 + (size_t)(E / 16) * GT * 4;
}

void bn__head_group_prep(int64_t E, const int8_t *xq, const float *xd, int nt, void *grp)
{
    const int64_t nb = E / BN_QK8_0;
    int32_t *xt = grp;
    int32_t *nc = (int32_t *)((char *)grp + (size_t)E * GT);
    float *xdt = (float *)(nc + nb * GT);
    for (int64_t s = 0; s < E / 4; s++)
        for (int i = 0; i < GT; i++) {
            int32_t v = 0;
            if (i < nt) memcpy(&v, xq + i * E + 4 * s, sizeof v);
            xt[s * GT + i] = v;
        }
    int32_t *h16 = (int32_t *)(xdt + nb * GT); /* the sums of each 16 values (the lanes') */
    for (int64_t j = 0; j < E / 16; j++)
        for (int i = 0; i < GT; i++) {
            int32_t sum = 0;
            for (int k = 0; k < 16 && i < nt; k++) sum += xq[i * E + j * 16 + k];
            h16[j * GT + i] = sum;
        }
    for (int64_t b = 0; b < nb; b++)
        for (int i = 0; i < GT; i++) {
            nc[b * GT + i] = -128 * (h16[2 * b * GT + i] + h16[(2 * b + 1) * GT + i]);
            xdt[b * GT + i] = i < nt ? xd[i * nb + b] : 0.0f;
        }
}

/* The lanes of rows R .. R+15 that lie in [r0, r1). */
static inline __mmask16 rows_mask(int64_t R, int64_t r0, int64_t r1)
{
    __mmask16 m = 0;
    for (int i = 0; i < 16; i++)
        if (R + i >= r0 && R + i < r1) m |= (__mmask16)(1u << i);
    return m;
}

/* s + the 64 head bytes at w (values 4k .. 4k+3 of 16 rows) times those of x, broadcast */
static inline __attribute__((always_inline)) __m512i dp_x(__m512i s, const uint8_t *w,
                                                          const int8_t *x)
{
    int32_t xv;
    memcpy(&xv, x, sizeof xv);
    return _mm512_dpbusd_epi32(s, _mm512_loadu_si512(w), _mm512_set1_epi32(xv));
}

void bn__head_u8_rows_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                             const int8_t *xq, const float *xd, float *y)
{
    const int64_t nb = E / BN_QK8_0;
    int32_t nc[BN__HEAD_U8_MAX_E / BN_QK8_0]; /* -128 * (sum of block b of x) */
    for (int64_t b = 0; b < nb; b++) {
        int32_t sum = 0;
        for (int k = 0; k < BN_QK8_0; k++) sum += xq[b * BN_QK8_0 + k];
        nc[b] = -128 * sum;
    }
    for (int64_t R = r0 / 16 * 16; R < r1; R += 16) {
        const uint8_t *w = (const uint8_t *)qs + bn__head_u8_offset(E, R, 0);
        const uint16_t *dg = d + bn__head_d16_index(nb, R, 0);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *p = w + (size_t)b * 512; /* block b of the 16 rows */
            const int8_t *x = xq + b * BN_QK8_0;
            __m512i s0 = _mm512_set1_epi32(nc[b]), s1 = _mm512_setzero_si512(), s2 = s1, s3 = s1;
            s0 = dp_x(s0, p, x);
            s1 = dp_x(s1, p + 64, x + 4);
            s2 = dp_x(s2, p + 128, x + 8);
            s3 = dp_x(s3, p + 192, x + 12);
            s0 = dp_x(s0, p + 256, x + 16);
            s1 = dp_x(s1, p + 320, x + 20);
            s2 = dp_x(s2, p + 384, x + 24);
            s3 = dp_x(s3, p + 448, x + 28);
            const __m512i si = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
            const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(dg + b * 16)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si), _mm512_mul_ps(dv, _mm512_set1_ps(xd[b])),
                                  acc);
        }
        _mm512_mask_storeu_ps(y + R, rows_mask(R, r0, r1), acc);
    }
}

/* Blocks per chunk: the 16 rows' values of a chunk (8 KB) stay in L1 while the tokens pass
 * over them 8 at a time; the first pass prefetches the chunk after next into L2 (on a 328 MB
 * head, 1.25x against the next chunk into L1 with one thread, the stream's pace). */
#define HEAD_CHUNK    16
#define HEAD_PREFETCH 2

/* NT tokens (t0 ..) x the 16 rows of w (lanes), blocks b0 .. b1 - 1, onto acc[0 .. NT-1]:
 * the 64 bytes of step k serve every token, each token's four values broadcast from
 * memory, and its block correction starts the sum. */
static inline __attribute__((always_inline)) void
rows16_tok(const int NT, const uint8_t *w, const uint16_t *dg, const int32_t *xt, const int32_t *nc,
           const float *xdt, int t0, int64_t b0, int64_t b1, __m512 *acc)
{
    __m512 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) a[i] = acc[i];
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *wb = w + b * 512;
        const int32_t *xb = xt + b * 8 * GT + t0;
        if (t0 == 0)
            for (int l = 0; l < 8; l++)
                _mm_prefetch((const char *)wb + HEAD_PREFETCH * HEAD_CHUNK * 512 + 64 * l,
                             _MM_HINT_T1);
        __m512i s[8];
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) s[i] = _mm512_set1_epi32(nc[b * GT + t0 + i]);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            const __m512i wv = ld512(wb + 64 * k);
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++)
                s[i] = _mm512_dpbusd_epi32(s[i], wv, _mm512_set1_epi32(xb[k * GT + i]));
        }
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(dg + b * 16)));
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++)
            a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i]),
                                   _mm512_mul_ps(dv, _mm512_set1_ps(xdt[b * GT + t0 + i])), a[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) acc[i] = a[i];
}

/* ---- Q6H and Q4H heads in the lanes form (model_internal.h) ------------------------------
 * One token, 16 rows in the lanes as above: per 32-value block, 4 vectors of low nibbles
 * (and, for Q6H, 2 of top bits) unpack to 8 vectors of u = q + 32 (or + 8), 4 values of
 * 16 rows each; 8 vpdpbusd with the token's values broadcast give the two 16-value halves'
 * sums, which start from -32 (or -8) times the halves' sums of x so that they are the
 * exact sums of q * x; then times the halves' sub-scales in int32, added, and one
 * multiply-add by d * xd per block. The reference (bn__head_lanes_rows_ref) does the same
 * arithmetic in plain C, so the bits agree. */

/* nc[j] = -off * (the sum of values 16j .. 16j+15 of x), for the E / 16 halves */
static void sums16(const int8_t *xq, int64_t E, int off, int32_t *nc)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    for (int64_t i = 0; i < E; i += 64) { /* sums of 8 bytes x + 128 */
        uint64_t q[8];
        _mm512_storeu_si512(q, _mm512_sad_epu8(_mm512_xor_si512(ld512(xq + i), flip), zero));
        for (int j = 0; j < 4; j++)
            nc[i / 16 + j] = -off * ((int32_t)(q[2 * j] + q[2 * j + 1]) - 16 * 128);
    }
}

/* bits 2n, 2n + 1 of each byte of h at bits 4, 5 (the other bits: anything) */
static inline __attribute__((always_inline)) __m512i top2(__m512i h, int n)
{
    return n == 0   ? _mm512_slli_epi16(h, 4)
           : n == 1 ? _mm512_slli_epi16(h, 2)
           : n == 2 ? h
                    : _mm512_srli_epi16(h, 2);
}

static inline __attribute__((always_inline)) __m512i bcast4(const int8_t *x)
{
    int32_t v;
    memcpy(&v, x, sizeof v);
    return _mm512_set1_epi32(v);
}

/* The top bits of a Q6H block at q (h0, h1; zeros for Q4H, which has none). */
static inline __attribute__((always_inline)) void top_bits(const uint8_t *q, const int q6,
                                                           __m512i *h0, __m512i *h1)
{
    *h0 = q6 ? ld512(q + 256) : _mm512_setzero_si512();
    *h1 = q6 ? ld512(q + 320) : _mm512_setzero_si512();
}

/* Vector n of u of one 32-value block of a 16-row group at q (lanes form; h0, h1 its
 * top_bits): lo holds values 4n .. 4n+3 of the 16 rows, hi values 16 + 4n .. 16 + 4n+3. */
static inline __attribute__((always_inline)) void
unpack_n(const uint8_t *q, const int q6, __m512i h0, __m512i h1, int n, __m512i *lo, __m512i *hi)
{
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i l = ld512(q + 64 * n);
    *lo = _mm512_and_si512(l, m0f);
    *hi = _mm512_and_si512(_mm512_srli_epi16(l, 4), m0f);
    if (q6) { /* lo | (h & 0x30) */
        *lo = _mm512_ternarylogic_epi32(*lo, top2(h0, n), m30, 0xF8);
        *hi = _mm512_ternarylogic_epi32(*hi, top2(h1, n), m30, 0xF8);
    }
}

/* The 8 vectors of u of one 32-value block: u[n] and u[4 + n] as unpack_n gives them. */
static inline __attribute__((always_inline)) void unpack_block(const uint8_t *q, const int q6,
                                                               __m512i *u)
{
    __m512i h0, h1;
    top_bits(q, q6, &h0, &h1);
#pragma GCC unroll 4
    for (int n = 0; n < 4; n++) unpack_n(q, q6, h0, h1, n, &u[n], &u[4 + n]);
}

static inline __attribute__((always_inline)) void lanes_rows(const uint8_t *lanes, const int q6,
                                                             int64_t E, int64_t r0, int64_t r1,
                                                             const int8_t *xq, const float *xd,
                                                             float *y)
{
    const size_t rec = bn__head_lanes_rec(q6), blk = BN__LANES_BLK(q6);
    const int64_t ns = E / BN_QK_H;
    int32_t nc[BN__HEAD_U8_MAX_E / 16];
    sums16(xq, E, q6 ? 32 : 8, nc);
    for (int64_t G = r0 / 16 * 16; G < r1; G += 16) {
        const uint8_t *g = lanes + (size_t)(G / 16) * (size_t)ns * rec;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t s = 0; s < ns; s++) {
            const uint8_t *p = g + (size_t)s * rec, *scp = p + 8 * blk;
            const __m512 d = _mm512_loadu_ps(scp + 256);
            for (int c = 0; c < 8; c++) {
                const uint8_t *q = p + (size_t)c * blk;
                const int64_t b = s * 8 + c;
                const int8_t *x = xq + b * BN_QK8_0;
                __m512i u[8];
                unpack_block(q, q6, u);
                const __m512i z = _mm512_setzero_si512();
                __m512i sa[4] = {_mm512_set1_epi32(nc[2 * b]), z, z, z},
                        sb[4] = {_mm512_set1_epi32(nc[2 * b + 1]), z, z, z};
#pragma GCC unroll 4
                for (int n = 0; n < 4; n++) { /* 4 chains a half */
                    sa[n] = _mm512_dpbusd_epi32(sa[n], u[n], bcast4(x + 4 * n));
                    sb[n] = _mm512_dpbusd_epi32(sb[n], u[4 + n], bcast4(x + 16 + 4 * n));
                }
                const __m512i sca = _mm512_cvtepi8_epi32(
                                      _mm_loadu_si128((const __m128i *)(scp + 32 * c))),
                              scb = _mm512_cvtepi8_epi32(
                                      _mm_loadu_si128((const __m128i *)(scp + 32 * c + 16)));
                const __m512i ta = _mm512_add_epi32(_mm512_add_epi32(sa[0], sa[1]),
                                                    _mm512_add_epi32(sa[2], sa[3])),
                              tb = _mm512_add_epi32(_mm512_add_epi32(sb[0], sb[1]),
                                                    _mm512_add_epi32(sb[2], sb[3]));
                const __m512i S =
                        _mm512_add_epi32(_mm512_mullo_epi32(ta, sca), _mm512_mullo_epi32(tb, scb));
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S),
                                      _mm512_mul_ps(d, _mm512_set1_ps(xd[b])), acc);
            }
        }
        _mm512_mask_storeu_ps(y + G, rows_mask(G, r0, r1), acc);
    }
}

/* Several tokens (the group of bn__head_group_prep): 16 rows in the lanes as for one token,
 * the tokens 8 at a time. Per block, each of the 4 vectors of nibbles (and top bits) is
 * unpacked once per pass into u of values 4n .. 4n+3 and 16 + 4n .. 16 + 4n+3 and serves
 * 16 vpdpbusd, 2 per token with its values broadcast; then per token the same int32 and
 * float steps as the one-token kernel (the halves' sums from -off * the token's sums of
 * the halves, times the sub-scales, added, one multiply-add by d * xd): the same bits. A
 * 16-row group goes in chunks of LANES_CHUNK 256-value blocks that stay in L1 while the
 * second eight tokens pass, the chunk after next prefetched into L2 (as for Q8_0). */
#define LANES_CHUNK    2
#define LANES_PREFETCH 2

static inline __attribute__((always_inline)) void
lanes_tok(const int NT, const int q6, const uint8_t *g, const int32_t *xt, const int32_t *h16,
          const float *xdt, int t0, int64_t s0, int64_t s1, __m512 *acc)
{
    const size_t rec = bn__head_lanes_rec(q6), blk = BN__LANES_BLK(q6);
    const int32_t off = q6 ? 32 : 8;
    __m512 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) a[i] = acc[i];
    for (int64_t s = s0; s < s1; s++) {
        const uint8_t *p = g + (size_t)s * rec, *scp = p + 8 * blk;
        if (t0 == 0)
            for (size_t l = 0; l < rec; l += 64)
                _mm_prefetch((const char *)p + LANES_PREFETCH * LANES_CHUNK * rec + l, _MM_HINT_T1);
        for (int c = 0; c < 8; c++) {
            const uint8_t *q = p + (size_t)c * blk;
            const int64_t b = s * 8 + c;
            const int32_t *xb = xt + b * 8 * GT + t0;
            __m512i sa[8], sb[8];
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) {
                sa[i] = _mm512_set1_epi32(-off * h16[2 * b * GT + t0 + i]);
                sb[i] = _mm512_set1_epi32(-off * h16[(2 * b + 1) * GT + t0 + i]);
            }
            __m512i h0, h1;
            top_bits(q, q6, &h0, &h1);
#pragma GCC unroll 4
            for (int n = 0; n < 4; n++) {
                __m512i lo, hi;
                unpack_n(q, q6, h0, h1, n, &lo, &hi);
#pragma GCC unroll 8
                for (int i = 0; i < NT; i++) {
                    sa[i] = _mm512_dpbusd_epi32(sa[i], lo, _mm512_set1_epi32(xb[n * GT + i]));
                    sb[i] = _mm512_dpbusd_epi32(sb[i], hi, _mm512_set1_epi32(xb[(4 + n) * GT + i]));
                }
            }
            const __m512i sca = _mm512_cvtepi8_epi32(
                                  _mm_loadu_si128((const __m128i *)(scp + 32 * c))),
                          scb = _mm512_cvtepi8_epi32(
                                  _mm_loadu_si128((const __m128i *)(scp + 32 * c + 16)));
            const __m512 d = _mm512_loadu_ps(scp + 256);
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) {
                const __m512i S = _mm512_add_epi32(_mm512_mullo_epi32(sa[i], sca),
                                                   _mm512_mullo_epi32(sb[i], scb));
                a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S),
                                       _mm512_mul_ps(d, _mm512_set1_ps(xdt[b * GT + t0 + i])),
                                       a[i]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) acc[i] = a[i];
}

/* Several tokens, any of the three forms (fmt 0: Q8_0 in the u8 form, 1: Q6H lanes, 2: Q4H
 * lanes; grp: bn__head_group_prep's): per 16-row group in [r0, r1), the tokens' sums of its
 * rows in registers, over chunks of its blocks that stay in L1 while the tokens pass over
 * them 8 (then 4) at a time. */
static inline __attribute__((always_inline)) void
multi_pass(const int NT, const int fmt, const int8_t *qs, const uint16_t *d, int64_t E, int64_t R,
           const void *grp, int t0, int64_t c0, int64_t c1, __m512 *acc)
{
    const int64_t nb = E / BN_QK8_0;
    const int32_t *xt = grp;
    const int32_t *nc = (const int32_t *)((const char *)grp + (size_t)E * GT);
    const float *xdt = (const float *)(nc + nb * GT);
    if (fmt == 0) {
        rows16_tok(NT, (const uint8_t *)qs + bn__head_u8_offset(E, R, 0),
                   d + bn__head_d16_index(nb, R, 0), xt, nc, xdt, t0, c0, c1, acc);
    } else {
        const uint8_t *g = (const uint8_t *)qs +
                           (size_t)(R / 16) * (size_t)(E / BN_QK_H) * bn__head_lanes_rec(fmt == 1);
        lanes_tok(NT, fmt == 1, g, xt, (const int32_t *)(xdt + nb * GT), xdt, t0, c0, c1, acc);
    }
}

static inline __attribute__((always_inline)) void
multi_groups(const int fmt, const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
             const void *grp, int nt, float *const *y)
{
    const int64_t n = fmt ? E / BN_QK_H : E / BN_QK8_0, chunk = fmt ? LANES_CHUNK : HEAD_CHUNK;
    for (int64_t R = r0 / 16 * 16; R < r1; R += 16) {
        __m512 acc[GT]; /* token: 16 rows */
        for (int i = 0; i < GT; i++) acc[i] = _mm512_setzero_ps();
        for (int64_t c0 = 0; c0 < n; c0 += chunk) {
            const int64_t c1 = c0 + chunk < n ? c0 + chunk : n;
            int t = 0;
            for (; t + 8 <= nt; t += 8) multi_pass(8, fmt, qs, d, E, R, grp, t, c0, c1, acc + t);
            for (; t < nt; t += 4) multi_pass(4, fmt, qs, d, E, R, grp, t, c0, c1, acc + t);
        }
        const __mmask16 mk = rows_mask(R, r0, r1);
        for (int t = 0; t < nt; t++) _mm512_mask_storeu_ps(y[t] + R, mk, acc[t]);
    }
}

void bn__head_u8_rows_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                   int64_t r1, const void *grp, int nt, float *const *y)
{
    multi_groups(0, qs, d, E, r0, r1, grp, nt, y);
}

void bn__head_q6_lanes_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                    int64_t r1, const void *grp, int nt, float *const *y)
{
    (void)d;
    multi_groups(1, qs, NULL, E, r0, r1, grp, nt, y);
}

void bn__head_q4_lanes_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                    int64_t r1, const void *grp, int nt, float *const *y)
{
    (void)d;
    multi_groups(2, qs, NULL, E, r0, r1, grp, nt, y);
}

void bn__head_q6_lanes_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                              int64_t r1, const int8_t *xq, const float *xd, float *y)
{
    (void)d;
    lanes_rows((const uint8_t *)qs, 1, E, r0, r1, xq, xd, y);
}

void bn__head_q4_lanes_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                              int64_t r1, const int8_t *xq, const float *xd, float *y)
{
    (void)d;
    lanes_rows((const uint8_t *)qs, 0, E, r0, r1, xq, xd, y);
}
