/*
 * kernels_neon.c - AArch64 NEON kernels with the dot-product extension (compiled with
 * -march=armv8.2-a+dotprod; run only where bn_cpu_info_get() reports neon and dotprod).
 *
 * A simple, correct variant: vdotq_s32 adds groups of four int8 products into int32
 * lanes, exactly. The codes c (0, 1, 2) go in as they are and sum Wq*x = sum c*x -
 * sum x, as on x86. Each half (16 bytes) of a block's 32 code bytes gives, shifted
 * right by 6, 4, 2, 0 (masked with 3), the codes of activations j, j+32, j+64, j+96.
 * GEMV takes four rows at a time so that they share the activation loads; GEMM runs
 * the GEMV loop per token.
 */
#include <arm_neon.h>

#include "kernels_internal.h"

#define INLINE static inline __attribute__((always_inline))

/* sum c*x over one half (j0 = 0 or 16) of a block, added to acc. */
INLINE int32x4_t half_dot(int32x4_t acc, uint8x16_t v, const int8_t *xb, uint8x16_t m3)
{
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vshrq_n_u8(v, 6)), vld1q_s8(xb));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), m3)), vld1q_s8(xb + 32));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), m3)), vld1q_s8(xb + 64));
    acc = vdotq_s32(acc, vreinterpretq_s8_u8(vandq_u8(v, m3)), vld1q_s8(xb + 96));
    return acc;
}

/* sum c*x for rows r .. r+nr-1, all in r's row group, against one token's xq. */
INLINE void gemv_rows(const bn_tmat *w, const int8_t *xq, int64_t r, int nr, int32_t *out)
{
    const int64_t nb = w->kpad / BN_TMAT_KBLOCK;
    const uint8_t *c = bn__tmat_block(w, r, 0);
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t a[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *xb = xq + b * BN_TMAT_KBLOCK;
        for (int i = 0; i < nr; i++) {
            const uint8_t *cb = c + i * 32 + b * BN__TMAT_BSTRIDE;
            a[i] = half_dot(a[i], vld1q_u8(cb), xb, m3);
            a[i] = half_dot(a[i], vld1q_u8(cb + 16), xb + 16, m3);
        }
    }
    for (int i = 0; i < nr; i++) out[i] = vaddvq_s32(a[i]);
}

static void neon_tgemm_any(const bn_tmat *w, const bn_qact *x, int32_t *acc, float *y, int64_t ldy,
                           int64_t r0, int64_t r1)
{
    for (int64_t t = 0; t < x->n_tok; t++) {
        const int8_t *xq = x->q + t * x->kpad;
        for (int64_t r = r0; r < r1;) {
            const int64_t left = BN_TMAT_RGROUP - r % BN_TMAT_RGROUP; /* to the group's end */
            const int nr = (int)(r1 - r < left ? r1 - r : left);
            int32_t s[4];
            if (nr == 4)
                gemv_rows(w, xq, r, 4, s);
            else
                gemv_rows(w, xq, r, nr, s);
            for (int i = 0; i < nr; i++) {
                const int32_t a = s[i] - x->sum[t];
                if (acc)
                    acc[t * w->rows + r + i] = a;
                else
                    y[t * ldy + r + i] = bn__tmat_out(a, w->scales[r + i], x->inv_scale[t]);
            }
            r += nr;
        }
    }
}

static void neon_tgemm_i32(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0, int64_t r1)
{
    neon_tgemm_any(w, x, acc, NULL, 0, r0, r1);
}

static void neon_tgemm(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                       int64_t r1)
{
    neon_tgemm_any(w, x, NULL, y, ldy, r0, r1);
}

static float neon_dot_f32(const float *a, const float *b, int64_t n)
{
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float neon_dot_f16_f32(const uint16_t *a, const float *b, int64_t n)
{
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(a + i));
        s0 = vfmaq_f32(s0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vcvt_f32_f16(vget_high_f16(h)), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) s += bn_f16_to_f32(a[i]) * b[i];
    return s;
}

static float neon_dot_q8_0(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), vld1q_s8(a[i].qs), vld1q_s8(b[i].qs));
        s = vdotq_s32(s, vld1q_s8(a[i].qs + 16), vld1q_s8(b[i].qs + 16));
        const float d = bn_f16_to_f32(a[i].d) * bn_f16_to_f32(b[i].d);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), d);
    }
    return vaddvq_f32(acc);
}

/* The GEMM's inner step (sdot: 16 multiply-adds into int32 lanes) on register operands:
 * 8 independent sums per round (see kernels.h's mac_probe). */
#define PROBE_STEP(j)                                                                              \
    do {                                                                                           \
        s##j = vdotq_s32(s##j, c, x##j);                                                           \
        __asm__("" : "+w"(s##j));                                                                  \
    } while (0)
static int64_t neon_mac_probe(int64_t rounds)
{
    int8x16_t c = vdupq_n_s8(1), x0 = vdupq_n_s8(1), x1 = vdupq_n_s8(2), x2 = vdupq_n_s8(3),
              x3 = vdupq_n_s8(4), x4 = vdupq_n_s8(5), x5 = vdupq_n_s8(6), x6 = vdupq_n_s8(7),
              x7 = vdupq_n_s8(8);
    int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (int64_t r = 0; r < rounds; r++) {
        __asm__("" : "+w"(c));
        PROBE_STEP(0);
        PROBE_STEP(1);
        PROBE_STEP(2);
        PROBE_STEP(3);
        PROBE_STEP(4);
        PROBE_STEP(5);
        PROBE_STEP(6);
        PROBE_STEP(7);
    }
    const int32x4_t s = vaddq_s32(vaddq_s32(vaddq_s32(s0, s1), vaddq_s32(s2, s3)),
                                  vaddq_s32(vaddq_s32(s4, s5), vaddq_s32(s6, s7)));
    volatile int32_t sink = vaddvq_s32(s);
    (void)sink;
    return rounds * 8 * 16;
}

const bn_kernels bn__kernels_neon = {
        .name = "neon",
        .tgemm_i32 = neon_tgemm_i32,
        .tgemm = neon_tgemm,
        .dot_f32 = neon_dot_f32,
        .dot_f16_f32 = neon_dot_f16_f32,
        .dot_q8_0 = neon_dot_q8_0,
        .dot_q6h_q8 = bn__dot_q6h_q8_ref, /* no NEON variant yet */
        .dot_q4h_q8 = bn__dot_q4h_q8_ref,
        .mac_probe = neon_mac_probe,
};
