/*
 * kernels_avx512.c - AVX-512 VNNI kernels (compiled with AVX-512 F/BW/VL/DQ/VNNI; run
 * only where bn_cpu_info_get() reports avx512f, avx512bw, avx512vl and avx512vnni).
 *
 * _mm512_dpbusd_epi32 multiplies unsigned codes (0, 1, 2) with signed activations and
 * adds groups of four products straight into int32 lanes: exact, with no int16 stage.
 * A 128-weight block's 32 code bytes are broadcast to both halves of a zmm; shifting
 * the halves right by (6, 4) and by (2, 0) with _mm512_srlv_epi16, then masking with 3,
 * gives the codes for activations 0-63 and 64-127 of the block, which are two plain
 * 64-byte loads of the activation row. The float dots use the AVX2 forms (the lanes
 * beyond 256 bits buy nothing for these memory-bound loops).
 */
#ifdef BN_KERNELS_AVX512_EMULATE
/* tests/unit/test_kernels.c compiles this file against a plain-C model of the
 * intrinsics (tests/unit/avx512_emu.h), with its table renamed, so that the logic is
 * tested on CPUs without AVX-512. */
#include "avx512_emu.h"
#define PIN(v)             ((void)0)
#define bn__kernels_avx512 bn__kernels_avx512_emulated
#else
#include <immintrin.h>
#define PIN(v) __asm__("" : "+v"(v))
#endif

#include <string.h>

#include "kernels_internal.h"

#define INLINE static inline __attribute__((always_inline))

#define GEMV_NR       4
#define GEMV_PREFETCH 2048 /* bytes ahead in the row group's stream (as on AVX2) */

INLINE __m512i ld512(const void *p)
{
    return _mm512_loadu_si512(p);
}

/* The 32 code bytes at p in both 256-bit halves. */
INLINE __m512i ld_codes(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* Shift counts per 16-bit lane: (lo, hi) for the low and high 256-bit halves. */
INLINE __m512i counts(short lo, short hi)
{
    return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1);
}

INLINE void put(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy, int64_t r,
                int64_t t, int32_t sum_cx)
{
    const int32_t a = sum_cx - x->sum[t];
    if (acc)
        acc[t * w->rows + r] = a;
    else
        y[t * ldy + r] = bn__tmat_out(a, w->scales[r], x->inv_scale[t]);
}

/* ---- GEMV ------------------------------------------------------------------------------ */

/* Two accumulators per row (one per half of the block) keep the dpbusd chains short. */
#define ROW(i)                                                                                     \
    if (nr > (i)) {                                                                                \
        const __m512i v = ld_codes(c + (i)*32 + b * BN__TMAT_BSTRIDE);                             \
        a##i = _mm512_dpbusd_epi32(a##i, _mm512_and_si512(_mm512_srlv_epi16(v, k64), m3), x01);    \
        h##i = _mm512_dpbusd_epi32(h##i, _mm512_and_si512(_mm512_srlv_epi16(v, k20), m3), x23);    \
    }

/* sum c*x for rows r .. r+nr-1, all in r's row group, into out[0..nr). */
INLINE void gemv_rows(const bn_tmat *w, const int8_t *xq, int64_t r, int nr, int32_t *out)
{
    const int64_t nb = w->kpad / BN_TMAT_KBLOCK;
    const uint8_t *c = bn__tmat_block(w, r, 0);
    const __m512i m3 = _mm512_set1_epi8(3), k64 = counts(6, 4), k20 = counts(2, 0);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    __m512i h0 = a0, h1 = a0, h2 = a0, h3 = a0;
    for (int64_t b = 0; b < nb; b++) {
        const char *pf = (const char *)c + b * BN__TMAT_BSTRIDE + GEMV_PREFETCH;
        _mm_prefetch(pf, _MM_HINT_T0);
        _mm_prefetch(pf + 64, _MM_HINT_T0);
        const __m512i x01 = ld512(xq + b * BN_TMAT_KBLOCK),
                      x23 = ld512(xq + b * BN_TMAT_KBLOCK + 64);
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
    }
    out[0] = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, h0));
    if (nr > 1) out[1] = _mm512_reduce_add_epi32(_mm512_add_epi32(a1, h1));
    if (nr > 2) out[2] = _mm512_reduce_add_epi32(_mm512_add_epi32(a2, h2));
    if (nr > 3) out[3] = _mm512_reduce_add_epi32(_mm512_add_epi32(a3, h3));
}
#undef ROW

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

/* ---- the LM head in Q6H / Q4H blocks (types.h) against a split Q8_0 row -------------
 * 64 values (two activation blocks, four sub-blocks) a step: vpdpbusd multiplies the
 * stored unsigned fields (q + 32 or q + 8; Q6H's two high bits or-ed into bits 4 and 5)
 * with the activations, and the offset times the activations' sum is taken back off,
 * exactly, in int32 lanes of four values each; each lane's sum then times the float
 * sc * d * xd of its sub-block, made once a block. */

/* Lane l of step p's sub-block index: sub-block 4p + l / 4. */
static const int32_t SC_IDX[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
/* Sub-block j's activation block: j / 2. */
static const int32_t XD_SUB[16] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7};

/* The bytes at p shifted right by `bits` within each 16-bit lane, masked. */
INLINE __m512i nib512(const uint8_t *p, int bits, char mask)
{
    return _mm512_and_si512(_mm512_srlv_epi16(ld512(p), _mm512_set1_epi16((short)bits)),
                            _mm512_set1_epi8(mask));
}

/* sc[j] * d * xd[j / 2] of one block's 16 sub-blocks. */
INLINE __m512 block_scales(uint16_t d, const int8_t *sc, const float *xd)
{
    const __m512 xdd =
            _mm512_mul_ps(_mm512_maskz_loadu_ps(0xff, xd), _mm512_set1_ps(bn_f16_to_f32(d)));
    const __m512 scf =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)sc)));
    return _mm512_mul_ps(scf, _mm512_permutexvar_ps(ld512(XD_SUB), xdd));
}

/* acc += one block (d, sc, ql; qh for Q6H, NULL for Q4H) times 256 activation values. */
INLINE __m512 block_dot512(uint16_t d, const int8_t *sc, const uint8_t *ql, const uint8_t *qh,
                           const int8_t *xq, const float *xd, __m512 acc)
{
    const __m512i zero = _mm512_setzero_si512(), off = _mm512_set1_epi8(qh ? 32 : 8);
    const __m512 f = block_scales(d, sc, xd);
    for (int p = 0; p < 4; p++) {
        const __m512i x = ld512(xq + 64 * p);
        __m512i u = nib512(ql + 64 * (p % 2), 4 * (p / 2), 15);
        if (qh) /* Q6H: u = lo + 16 hi, q = u - 32 */
            u = _mm512_or_si512(u, _mm512_slli_epi16(nib512(qh, 2 * p, 3), 4));
        const __m512i isum = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, u, x),
                                              _mm512_dpbusd_epi32(zero, off, x));
        const __m512i si = _mm512_add_epi32(ld512(SC_IDX), _mm512_set1_epi32(4 * p));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_permutexvar_ps(si, f), acc);
    }
    return acc;
}

/* Prefetches the 256 bytes GEMV_PREFETCH ahead of block p (the rows' one stream). */
INLINE void head_prefetch(const void *p)
{
    const char *pf = (const char *)p + GEMV_PREFETCH;
    for (int l = 0; l < 4; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T0);
}

static float avx512_dot_q6h_q8(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / BN_QK_H; i++) {
        head_prefetch(a + i);
        acc = block_dot512(a[i].d, a[i].sc, a[i].ql, a[i].qh, xq + i * BN_QK_H, xd + i * 8, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static float avx512_dot_q4h_q8(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / BN_QK_H; i++) {
        head_prefetch(a + i);
        acc = block_dot512(a[i].d, a[i].sc, a[i].ql, NULL, xq + i * BN_QK_H, xd + i * 8, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* ---- GEMM ------------------------------------------------------------------------------
 * A tile of one row group (4 rows, whose blocks lie side by side: 128 code bytes a block)
 * by up to 4 tokens, over the whole K with 16 accumulators in registers: per block, 4
 * code loads and 16 shift/and ops unpack the 4 rows' codes, 8 activation loads feed 32
 * vpdpbusd. Measured on Zen 4 (one thread, 2B4T shapes, 128 tokens): 1.2-1.3x the
 * 2-row x 8-token tile with K in L1-sized chunks that this replaced, 0.8-0.86 of the
 * vpdpbusd probe; a microbenchmark of the inner loops alone gave 0.65 for the old tile
 * (the activation loads, 16 per 32 vpdpbusd, bound it) and 0.95 for this one. The 16
 * sums leave through one transposing reduction (fold32/64/128) instead of 16 reduce_adds. */

/* Pairwise steps of the transposing reduction: for 32-bit, per 128-bit lane,
 * (a0+a2, b0+b2, a1+a3, b1+b3); for 64-bit, each lane's sums of a's and b's halves; for
 * 128-bit, the lanes of a and b folded pairwise (a0+a1, a2+a3, b0+b1, b2+b3). */
INLINE __m512i fold32(__m512i a, __m512i b)
{
    return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}
INLINE __m512i fold64(__m512i a, __m512i b)
{
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
INLINE __m512i fold128(__m512i a, __m512i b)
{
    return _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x88), _mm512_shuffle_i32x4(a, b, 0xdd));
}

#define UNPACK4(r)                                                                                 \
    {                                                                                              \
        const __m512i v = ld_codes(c + b * BN__TMAT_BSTRIDE + (r)*32);                             \
        l##r = _mm512_and_si512(_mm512_srlv_epi16(v, k64), m3);                                    \
        h##r = _mm512_and_si512(_mm512_srlv_epi16(v, k20), m3);                                    \
    }
#define DOT4(r, t) a##r##t = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a##r##t, l##r, xl), h##r, xh)
#define TOK4(t)                                                                                    \
    if (nt > (t)) {                                                                                \
        const int8_t *xb = xp[t] + b * BN_TMAT_KBLOCK;                                             \
        const __m512i xl = ld512(xb), xh = ld512(xb + 64);                                         \
        DOT4(0, t);                                                                                \
        DOT4(1, t);                                                                                \
        DOT4(2, t);                                                                                \
        DOT4(3, t);                                                                                \
        PIN(a0##t);                                                                                \
        PIN(a1##t);                                                                                \
        PIN(a2##t);                                                                                \
        PIN(a3##t);                                                                                \
    }

/* Rows longer than GEMM_LONG_NB blocks (ffn_down's 6912 columns: 54) prefetch their codes
 * GEMM_LONG_PREFETCH bytes ahead into L2 in the first token tile: one share of a
 * 16-sequence step (8 tokens, 1 thread), ffn_down 22.0 -> 20.1 ms, interleaved A/B; the
 * same for the 2560-column matrices (20 blocks) made them ~8% slower, so they keep L1 at
 * GEMV_PREFETCH. */
#define GEMM_LONG_NB       32
#define GEMM_LONG_PREFETCH 4096

/* sums c*x of the row group at c (block 0 of its first row) with tokens xp[0 .. nt) over
 * nb blocks, lane 4t + i for row i, token t (tokens past nt give zeros). */
INLINE __m512i gemm_group(const uint8_t *c, const int8_t *const *xp, int64_t nb, int nt,
                          int prefetch)
{
    const __m512i m3 = _mm512_set1_epi8(3), k64 = counts(6, 4), k20 = counts(2, 0);
    __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
            a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00,
            a32 = a00, a33 = a00;
    for (int64_t b = 0; b < nb; b++) {
        __m512i l0, h0, l1, h1, l2, h2, l3, h3;
        if (prefetch && nb > GEMM_LONG_NB) { /* the first token tile reads the codes from */
            const char *pf = (const char *)c + b * BN__TMAT_BSTRIDE + GEMM_LONG_PREFETCH;
            _mm_prefetch(pf, _MM_HINT_T1); /* memory: a long row's further ahead, into L2 */
            _mm_prefetch(pf + 64, _MM_HINT_T1);
        } else if (prefetch) {
            const char *pf = (const char *)c + b * BN__TMAT_BSTRIDE + GEMV_PREFETCH;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
        }
        UNPACK4(0)
        UNPACK4(1)
        UNPACK4(2)
        UNPACK4(3)
        TOK4(0)
        TOK4(1)
        TOK4(2)
        TOK4(3)
    }
    /* lane 4t + i: row i, token t */
    const __m512i t0 = fold64(fold32(a00, a10), fold32(a20, a30));
    const __m512i t1 = fold64(fold32(a01, a11), fold32(a21, a31));
    const __m512i t2 = fold64(fold32(a02, a12), fold32(a22, a32));
    const __m512i t3 = fold64(fold32(a03, a13), fold32(a23, a33));
    return fold128(fold128(t0, t1), fold128(t2, t3));
}
#undef TOK4
#undef DOT4
#undef UNPACK4

static __m512i gemm_group_nt(const uint8_t *c, const int8_t *const *xp, int64_t nb, int nt,
                             int prefetch)
{
#define GROUP(n) (prefetch ? gemm_group(c, xp, nb, n, 1) : gemm_group(c, xp, nb, n, 0))
    switch (nt) {
    case 4:
        return GROUP(4);
    case 3:
        return GROUP(3);
    case 2:
        return GROUP(2);
    default:
        return GROUP(1);
    }
#undef GROUP
}

#define GEMM_NT 4

/* put() for a whole tile, 16 outputs at once: lane 4j + i of sum is row g + i, token
 * t0 + j; the same float operations as bn__tmat_out, so the same bits. */
INLINE void put_tile(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t g,
                     int64_t t0, __m512i sum)
{
    const __m512i rep = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512 ws = _mm512_permutexvar_ps(rep, _mm512_maskz_loadu_ps(0xF, w->scales + g));
    const __m512 xs = _mm512_permutexvar_ps(spread, _mm512_maskz_loadu_ps(0xF, x->inv_scale + t0));
    const __m512i xsum =
            _mm512_permutexvar_epi32(spread, _mm512_maskz_loadu_epi32(0xF, x->sum + t0));
    float out[16];
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, xsum)),
                                        _mm512_mul_ps(ws, xs)));
    for (int j = 0; j < GEMM_NT; j++)
        memcpy(y + (t0 + j) * ldy + g, out + 4 * j, sizeof(float) * 4);
}

#define GEMM_RB 256 /* rows whose codes stay in L2 while every token tile passes over them */

/* Row blocks, token tiles of 4, then the block's row groups (a row range that starts or
 * ends inside a group computes the whole group and writes only its own rows). */
static void gemm(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy,
                 int64_t r0, int64_t r1)
{
    const int64_t nb = w->kpad / BN_TMAT_KBLOCK;
    int32_t s[16];
    const int64_t g0 = r0 - r0 % BN_TMAT_RGROUP;
    for (int64_t rb = g0; rb < r1; rb += GEMM_RB) {
        const int64_t re = rb + GEMM_RB < r1 ? rb + GEMM_RB : r1;
        for (int64_t t0 = 0; t0 < x->n_tok; t0 += GEMM_NT) {
            const int nt = (int)(x->n_tok - t0 < GEMM_NT ? x->n_tok - t0 : GEMM_NT);
            const int8_t *xp[GEMM_NT];
            for (int j = 0; j < nt; j++) xp[j] = x->q + (t0 + j) * x->kpad;
            for (int64_t g = rb; g < re; g += BN_TMAT_RGROUP) {
                const __m512i sum = gemm_group_nt(bn__tmat_block(w, g, 0), xp, nb, nt, t0 == 0);
                const int64_t lo = g < r0 ? r0 : g;
                const int64_t hi = g + BN_TMAT_RGROUP < r1 ? g + BN_TMAT_RGROUP : r1;
                if (!acc && nt == GEMM_NT && lo == g && hi == g + BN_TMAT_RGROUP) {
                    put_tile(w, x, y, ldy, g, t0, sum);
                    continue;
                }
                _mm512_storeu_si512(s, sum);
                for (int j = 0; j < nt; j++)
                    for (int64_t r = lo; r < hi; r++)
                        put(w, x, acc, y, ldy, r, t0 + j, s[j * 4 + (r - g)]);
            }
        }
    }
}

static void avx512_tgemm_i32(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0,
                             int64_t r1)
{
    if (x->n_tok == 1)
        gemv(w, x, acc, NULL, 0, r0, r1);
    else
        gemm(w, x, acc, NULL, 0, r0, r1);
}

static void avx512_tgemm(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                         int64_t r1)
{
    if (x->n_tok == 1)
        gemv(w, x, NULL, y, ldy, r0, r1);
    else
        gemm(w, x, NULL, y, ldy, r0, r1);
}

/* The GEMM's inner step (vpdpbusd: 64 multiply-adds into int32 lanes) on register
 * operands: 8 independent sums per round (see kernels.h's mac_probe). */
#define PROBE_STEP(j)                                                                              \
    do {                                                                                           \
        s##j = _mm512_dpbusd_epi32(s##j, c, x##j);                                                 \
        PIN(s##j);                                                                                 \
    } while (0)
static int64_t avx512_mac_probe(int64_t rounds)
{
    __m512i c = _mm512_set1_epi8(1), x0 = _mm512_set1_epi8(1), x1 = _mm512_set1_epi8(2),
            x2 = _mm512_set1_epi8(3), x3 = _mm512_set1_epi8(4), x4 = _mm512_set1_epi8(5),
            x5 = _mm512_set1_epi8(6), x6 = _mm512_set1_epi8(7), x7 = _mm512_set1_epi8(8);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0,
            s7 = s0;
    for (int64_t r = 0; r < rounds; r++) {
        PIN(c);
        PROBE_STEP(0);
        PROBE_STEP(1);
        PROBE_STEP(2);
        PROBE_STEP(3);
        PROBE_STEP(4);
        PROBE_STEP(5);
        PROBE_STEP(6);
        PROBE_STEP(7);
    }
    const __m512i s =
            _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
                             _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7)));
    /* the sums are used, so the loop stays; they wrap by design, so they are folded with XOR
     * (_mm512_reduce_add_epi32 adds in C ints: a signed overflow for UBSan) */
    int32_t lanes[16];
    _mm512_storeu_si512(lanes, s);
    uint32_t fold = 0;
    for (int i = 0; i < 16; i++) fold ^= (uint32_t)lanes[i];
    volatile uint32_t sink = fold;
    (void)sink;
    return rounds * 8 * 64;
}

const bn_kernels bn__kernels_avx512 = {
        .name = "avx512vnni",
        .tgemm_i32 = avx512_tgemm_i32,
        .tgemm = avx512_tgemm,
        /* the float products are memory-bound: the AVX2 ones serve */
        .dot_f32 = bn__dot_f32_avx2,
        .dot_f16_f32 = bn__dot_f16_f32_avx2,
        .dot_q8_0 = bn__dot_q8_0_avx2,
        .dot_q6h_q8 = avx512_dot_q6h_q8,
        .dot_q4h_q8 = avx512_dot_q4h_q8,
        .mac_probe = avx512_mac_probe,
};
