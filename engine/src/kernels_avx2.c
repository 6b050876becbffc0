/*
 * kernels_avx2.c - AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c).
 *
 * Ternary x int8: the codes c = Wq + 1 (0, 1, 2) are unsigned, so _mm256_maddubs_epi16
 * multiplies them with the signed activations, and sum Wq*x = sum c*x - sum x, where
 * sum x is bn_qact.sum. One 32-byte load of codes covers a 128-weight block: shifting
 * it right by 6, 4, 2, 0 and masking with 3 gives the codes for activations 0-31,
 * 32-63, 64-95, 96-127 of the block.
 *
 * Exactness: each maddubs lane adds two products c*x with c <= 2 and -128 <= x <= 127,
 * so it lies in [-512, 508] and maddubs never saturates. One block adds four of them
 * into an int16 lane, so CHUNK = 16 blocks keep the int16 sum within [-32768, 32512];
 * after each chunk, _mm256_madd_epi16 with ones widens the sums to int32.
 */
#include <immintrin.h>

#include "kernels_internal.h"

#define INLINE static inline __attribute__((always_inline))

#define CHUNK   16 /* blocks summed in int16 before widening (see above) */
#define GEMV_NR 4  /* rows per GEMV step: they share the activation loads */
#define GEMM_NT 8  /* tokens per GEMM tile: they share the unpacked codes */
#define GEMM_RB 16 /* rows per GEMM block, whose codes stay in L2 across token tiles */
/* GEMV software prefetch distance in bytes of the row group's stream: measured best
 * of 512 .. 4096 on Zen 3 (up to +30% over the hardware prefetchers alone). */
#define GEMV_PREFETCH 2048

_Static_assert(GEMV_NR == BN_TMAT_RGROUP, "a GEMV step is one row group");

/* An empty asm that makes v opaque to the optimizer (and keeps it in a register). */
#define PIN(v) __asm__("" : "+x"(v))

INLINE __m256i ld(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

INLINE int32_t hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

INLINE float hsum_f32(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Writes the result for row r, token t: the int32 acc, or y by kernels.h's formula. */
INLINE void put(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy, int64_t r,
                int64_t t, int32_t sum_cx)
{
    const int32_t a = sum_cx - x->sum[t];
    if (acc)
        acc[t * w->rows + r] = a;
    else
        y[t * ldy + r] = bn__tmat_out(a, w->scales[r], x->inv_scale[t]);
}

/* Writes row r for tokens t0 .. t0+nt-1 from their accumulators a[0..nt): a full tile
 * of 8 reduces all eight at once (integer sums: the order does not matter) and applies
 * the output formula lane-wise. */
static void put_tile_row(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy,
                         int64_t r, int64_t t0, int nt, const __m256i *a)
{
    if (nt != 8) {
        for (int j = 0; j < nt; j++) put(w, x, acc, y, ldy, r, t0 + j, hsum_i32(a[j]));
        return;
    }
    const __m256i h5 =
            _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    const __m256i h6 =
            _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
    const __m256i s = _mm256_sub_epi32(_mm256_add_epi32(_mm256_permute2x128_si256(h5, h6, 0x20),
                                                        _mm256_permute2x128_si256(h5, h6, 0x31)),
                                       ld(x->sum + t0));
    if (acc) {
        int32_t v[8];
        _mm256_storeu_si256((__m256i *)v, s);
        for (int j = 0; j < 8; j++) acc[(t0 + j) * w->rows + r] = v[j];
        return;
    }
    float v[8];
    const __m256 scale =
            _mm256_mul_ps(_mm256_set1_ps(w->scales[r]), _mm256_loadu_ps(x->inv_scale + t0));
    _mm256_storeu_ps(v, _mm256_mul_ps(_mm256_cvtepi32_ps(s), scale));
    for (int j = 0; j < 8; j++) y[(t0 + j) * ldy + r] = v[j];
}

/* ---- GEMV: one token, GEMV_NR rows at a time ------------------------------------------ */

/* sum c*x over one block: v holds the block's codes, x0..x3 its 128 activations. */
INLINE __m256i block_dot(__m256i v, __m256i x0, __m256i x1, __m256i x2, __m256i x3, __m256i m3)
{
    const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 6), m3), x0);
    const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m3), x1);
    const __m256i p2 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 2), m3), x2);
    const __m256i p3 = _mm256_maddubs_epi16(_mm256_and_si256(v, m3), x3);
    return _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
}

#define ROW(i)                                                                                     \
    if (nr > (i))                                                                                  \
    s##i = _mm256_add_epi16(s##i,                                                                  \
                            block_dot(ld(c + (i)*32 + b * BN__TMAT_BSTRIDE), x0, x1, x2, x3, m3))
#define WIDEN(i)                                                                                   \
    if (nr > (i)) a##i = _mm256_add_epi32(a##i, _mm256_madd_epi16(s##i, ones))

/* sum c*x for rows r .. r+nr-1, all in r's row group, into out[0..nr) (nr a constant
 * after inlining); the rows share each block's activation vectors, and their codes are
 * one sequential stream. */
INLINE void gemv_rows(const bn_tmat *w, const int8_t *xq, int64_t r, int nr, int32_t *out)
{
    const int64_t nb = w->kpad / BN_TMAT_KBLOCK;
    const uint8_t *c = bn__tmat_block(w, r, 0);
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        const int64_t b1 = b0 + CHUNK < nb ? b0 + CHUNK : nb;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t b = b0; b < b1; b++) {
            const int8_t *xb = xq + b * BN_TMAT_KBLOCK;
            const char *pf = (const char *)c + b * BN__TMAT_BSTRIDE + GEMV_PREFETCH;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            const __m256i x0 = ld(xb), x1 = ld(xb + 32), x2 = ld(xb + 64), x3 = ld(xb + 96);
            ROW(0);
            ROW(1);
            ROW(2);
            ROW(3);
        }
        WIDEN(0);
        WIDEN(1);
        WIDEN(2);
        WIDEN(3);
    }
    out[0] = hsum_i32(a0);
    if (nr > 1) out[1] = hsum_i32(a1);
    if (nr > 2) out[2] = hsum_i32(a2);
    if (nr > 3) out[3] = hsum_i32(a3);
}

static void gemv(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy,
                 int64_t r0, int64_t r1)
{
    int32_t s[GEMV_NR];
    for (int64_t r = r0; r < r1;) {
        const int64_t left = GEMV_NR - r % GEMV_NR; /* to the end of r's row group */
        const int nr = (int)(r1 - r < left ? r1 - r : left);
        switch (nr) {
        case 4:
            gemv_rows(w, x->q, r, 4, s);
            break;
        case 3:
            gemv_rows(w, x->q, r, 3, s);
            break;
        case 2:
            gemv_rows(w, x->q, r, 2, s);
            break;
        default:
            gemv_rows(w, x->q, r, 1, s);
            break;
        }
        for (int i = 0; i < nr; i++) put(w, x, acc, y, ldy, r + i, 0, s[i]);
        r += nr;
    }
}

/* ---- GEMM: a row against a tile of up to GEMM_NT tokens ------------------------------- */

/* The codes for activations 32n .. 32n+31 of a block, times the nt tokens' activations. */
/* s + the products of one block's four code vectors c0..c3 with one token's 128
 * activations at xb, as a plain chain of adds. PIN stops GCC from reassociating the
 * chain into trees whose temporaries need more than 16 registers. */
INLINE __m256i tok_block(__m256i s, __m256i c0, __m256i c1, __m256i c2, __m256i c3,
                         const int8_t *xb)
{
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c0, ld(xb)));
    PIN(s);
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c1, ld(xb + 32)));
    PIN(s);
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c2, ld(xb + 64)));
    PIN(s);
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c3, ld(xb + 96)));
    PIN(s);
    return s;
}

#define TOK(j)                                                                                     \
    if (nt > (j)) s##j = tok_block(s##j, c0, c1, c2, c3, xp[j] + b * BN_TMAT_KBLOCK)
#define FLUSH(j)                                                                                   \
    if (nt > (j)) acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(s##j, ones))

/* acc[j] += sum c*x over nblk <= CHUNK blocks of one row's codes c and token j's
 * activations xp[j] (both at the chunk's start), for j < nt (a constant after
 * inlining). The block's four code vectors stay in registers for all tokens. */
INLINE void gemm_row_chunk(const uint8_t *c, const int8_t *const *xp, int64_t nblk, int nt,
                           int prefetch, __m256i *acc)
{
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0,
            s7 = s0;
    for (int64_t b = 0; b < nblk; b++) {
        if (prefetch) {
            const char *pf = (const char *)c + b * BN__TMAT_BSTRIDE + GEMV_PREFETCH;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
        }
        const __m256i v = ld(c + b * BN__TMAT_BSTRIDE);
        const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
        const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
        const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
        const __m256i c3 = _mm256_and_si256(v, m3);
        TOK(0);
        TOK(1);
        TOK(2);
        TOK(3);
        TOK(4);
        TOK(5);
        TOK(6);
        TOK(7);
    }
    FLUSH(0);
    FLUSH(1);
    FLUSH(2);
    FLUSH(3);
    FLUSH(4);
    FLUSH(5);
    FLUSH(6);
    FLUSH(7);
}

static void gemm_row_chunk_nt(const uint8_t *c, const int8_t *const *xp, int64_t nblk, int nt,
                              int prefetch, __m256i *acc)
{
    switch (nt) {
    case 8:
        gemm_row_chunk(c, xp, nblk, 8, prefetch, acc);
        break;
    case 7:
        gemm_row_chunk(c, xp, nblk, 7, prefetch, acc);
        break;
    case 6:
        gemm_row_chunk(c, xp, nblk, 6, prefetch, acc);
        break;
    case 5:
        gemm_row_chunk(c, xp, nblk, 5, prefetch, acc);
        break;
    case 4:
        gemm_row_chunk(c, xp, nblk, 4, prefetch, acc);
        break;
    case 3:
        gemm_row_chunk(c, xp, nblk, 3, prefetch, acc);
        break;
    case 2:
        gemm_row_chunk(c, xp, nblk, 2, prefetch, acc);
        break;
    default:
        gemm_row_chunk(c, xp, nblk, 1, prefetch, acc);
        break;
    }
}

/* Rows [r0, r1) in blocks of GEMM_RB rows; per block, token tiles of GEMM_NT; per tile,
 * row group by row group (one sequential stream of codes, prefetched ahead while the
 * first tile reads it from memory), K in chunks of CHUNK blocks whose activations
 * (8 tokens x 2 KiB) stay in L1 for the group's rows. */
static void gemm(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy,
                 int64_t r0, int64_t r1)
{
    const int64_t nb = w->kpad / BN_TMAT_KBLOCK;
    __m256i a[GEMM_RB][GEMM_NT];
    for (int64_t rb = r0; rb < r1; rb += GEMM_RB) {
        const int nr = (int)(r1 - rb < GEMM_RB ? r1 - rb : GEMM_RB);
        for (int64_t t0 = 0; t0 < x->n_tok; t0 += GEMM_NT) {
            const int nt = (int)(x->n_tok - t0 < GEMM_NT ? x->n_tok - t0 : GEMM_NT);
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < nt; j++) a[i][j] = _mm256_setzero_si256();
            for (int g = 0; g < nr;) {
                /* rows g .. ge-1: the rest of row rb+g's group */
                const int64_t left = BN_TMAT_RGROUP - (rb + g) % BN_TMAT_RGROUP;
                const int ge = (int)(nr - g < left ? nr : g + left);
                for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
                    const int64_t nblk = nb - b0 < CHUNK ? nb - b0 : CHUNK;
                    const int8_t *xp[GEMM_NT];
                    for (int j = 0; j < nt; j++)
                        xp[j] = x->q + (t0 + j) * x->kpad + b0 * BN_TMAT_KBLOCK;
                    for (int i = g; i < ge; i++)
                        gemm_row_chunk_nt(bn__tmat_block(w, rb + i, b0), xp, nblk, nt,
                                          t0 == 0 && i == g, a[i]);
                }
                g = ge;
            }
            for (int i = 0; i < nr; i++) put_tile_row(w, x, acc, y, ldy, rb + i, t0, nt, a[i]);
        }
    }
}

static void avx2_tgemm_i32(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0, int64_t r1)
{
    if (x->n_tok == 1)
        gemv(w, x, acc, NULL, 0, r0, r1);
    else
        gemm(w, x, acc, NULL, 0, r0, r1);
}

static void avx2_tgemm(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                       int64_t r1)
{
    if (x->n_tok == 1)
        gemv(w, x, NULL, y, ldy, r0, r1);
    else
        gemm(w, x, NULL, y, ldy, r0, r1);
}

/* ---- float products ------------------------------------------------------------------- */

float bn__dot_f32_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_f32(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

INLINE __m256 ld_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

float bn__dot_f16_f32_avx2(const uint16_t *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(ld_f16(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(ld_f16(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(ld_f16(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(ld_f16(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(ld_f16(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_f32(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += _cvtsh_ss(a[i]) * b[i];
    return s;
}

/* Exact int32 block sums (sign-extended to int16, so even -128 * -128 is exact), scaled
 * by the product of both blocks' scales and accumulated lane-wise in float. */
float bn__dot_q8_0_avx2(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        const __m256i qa = ld(a[i].qs), qb = ld(b[i].qs);
        const __m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(qa)),
                                             _mm256_cvtepi8_epi16(_mm256_castsi256_si128(qb)));
        const __m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(qa, 1)),
                                             _mm256_cvtepi8_epi16(_mm256_extracti128_si256(qb, 1)));
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(a[i].d) * _cvtsh_ss(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi)), acc);
    }
    return hsum_f32(acc);
}

/* ---- the LM head in Q6H / Q4H blocks (types.h) against a split Q8_0 row ------------- */

/* The bytes at p shifted right by `bits` within each byte's 16-bit lane, masked. */
INLINE __m256i nib(const uint8_t *p, int bits, char mask)
{
    return _mm256_and_si256(_mm256_srl_epi16(ld(p), _mm_cvtsi32_si128(bits)),
                            _mm256_set1_epi8(mask));
}

/* The 32 values of chunk c (values 32c .. 32c + 31) of a block as signed bytes: Q6H's
 * fields (ql, qh) or Q4H's (ql, qh NULL). */
INLINE __m256i head_chunk(const uint8_t *ql, const uint8_t *qh, int c)
{
    const __m256i lo = nib(ql + 32 * (c % 4), 4 * (c / 4), 15);
    if (!qh) return _mm256_sub_epi8(lo, _mm256_set1_epi8(8));
    const __m256i hi = nib(qh + 32 * (c % 2), 2 * (c / 2), 3);
    return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
}

/* acc += (products of q and 32 activation values, each 16-value half times its sub-scale)
 * * scale: |q| <= 32 and |x| <= 128 keep maddubs' int16 pairs exact. */
INLINE __m256 chunk_dot(__m256i q, const int8_t *xq, const int8_t *sc, float scale, __m256 acc)
{
    const __m256i x = ld(xq);
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(q, x));
    const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, s)), _mm256_set1_ps(scale), acc);
}

/* acc += one block (d, sc, ql, qh as head_chunk takes them) times 256 activation values. */
INLINE __m256 head_block_dot(uint16_t d16, const int8_t *sc, const uint8_t *ql, const uint8_t *qh,
                             const int8_t *xq, const float *xd, __m256 acc)
{
    const float d = _cvtsh_ss(d16);
    for (int c = 0; c < BN_QK_H / 32; c++)
        acc = chunk_dot(head_chunk(ql, qh, c), xq + 32 * c, sc + 2 * c, d * xd[c], acc);
    return acc;
}

float bn__dot_q6h_q8_avx2(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BN_QK_H; i++)
        acc = head_block_dot(a[i].d, a[i].sc, a[i].ql, a[i].qh, xq + i * BN_QK_H, xd + i * 8, acc);
    return hsum_f32(acc);
}

float bn__dot_q4h_q8_avx2(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / BN_QK_H; i++)
        acc = head_block_dot(a[i].d, a[i].sc, a[i].ql, NULL, xq + i * BN_QK_H, xd + i * 8, acc);
    return hsum_f32(acc);
}

/* ---- the multiply-accumulate ceiling ---------------------------------------------------- */

#define PROBE_STEP(j)                                                                              \
    do {                                                                                           \
        s##j = _mm256_add_epi16(s##j, _mm256_maddubs_epi16(c, x##j));                              \
        PIN(s##j);                                                                                 \
    } while (0)

/* The GEMM's inner step (codes x activations by maddubs, added into an int16 sum) with
 * every operand in a register: 8 independent sums of 32 multiply-adds per round. */
static int64_t avx2_mac_probe(int64_t rounds)
{
    __m256i c = _mm256_set1_epi8(1), x0 = _mm256_set1_epi8(1), x1 = _mm256_set1_epi8(2),
            x2 = _mm256_set1_epi8(3), x3 = _mm256_set1_epi8(4), x4 = _mm256_set1_epi8(5),
            x5 = _mm256_set1_epi8(6), x6 = _mm256_set1_epi8(7), x7 = _mm256_set1_epi8(8);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0,
            s7 = s0;
    for (int64_t r = 0; r < rounds; r++) {
        PIN(c); /* a new operand each round: nothing is hoisted out of the loop */
        PROBE_STEP(0);
        PROBE_STEP(1);
        PROBE_STEP(2);
        PROBE_STEP(3);
        PROBE_STEP(4);
        PROBE_STEP(5);
        PROBE_STEP(6);
        PROBE_STEP(7);
    }
    const __m256i s =
            _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3)),
                             _mm256_add_epi16(_mm256_add_epi16(s4, s5), _mm256_add_epi16(s6, s7)));
    volatile int32_t sink = hsum_i32(s); /* the sums are used: the loop stays */
    (void)sink;
    return rounds * 8 * 32;
}

const bn_kernels bn__kernels_avx2 = {
        .name = "avx2",
        .tgemm_i32 = avx2_tgemm_i32,
        .tgemm = avx2_tgemm,
        .dot_f32 = bn__dot_f32_avx2,
        .dot_f16_f32 = bn__dot_f16_f32_avx2,
        .dot_q8_0 = bn__dot_q8_0_avx2,
        .dot_q6h_q8 = bn__dot_q6h_q8_avx2,
        .dot_q4h_q8 = bn__dot_q4h_q8_avx2,
        .mac_probe = avx2_mac_probe,
};
