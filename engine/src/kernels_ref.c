/*
 * kernels_ref.c - the reference kernels: the specification of kernels.h in plain C.
 * Never tuned; every SIMD variant is tested against these.
 */
#include "kernels_internal.h"

/* Wq[r][k] from the run-time layout (see kernels.h): code - 1. */
static int ref_weight(const bn_tmat *w, int64_t r, int64_t k)
{
    const uint8_t *blk = bn__tmat_block(w, r, k / BN_TMAT_KBLOCK);
    const int64_t i = k % BN_TMAT_KBLOCK;
    const int shift = 6 - 2 * (int)(i / 32);
    return ((blk[i % 32] >> shift) & 3) - 1;
}

static int32_t ref_dot(const bn_tmat *w, int64_t r, const int8_t *xq)
{
    int32_t acc = 0;
    for (int64_t k = 0; k < w->cols; k++) acc += ref_weight(w, r, k) * (int32_t)xq[k];
    return acc;
}

void bn__tgemm_i32_ref(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0, int64_t r1)
{
    for (int64_t t = 0; t < x->n_tok; t++)
        for (int64_t r = r0; r < r1; r++) acc[t * w->rows + r] = ref_dot(w, r, x->q + t * x->kpad);
}

void bn__tgemm_ref(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                   int64_t r1)
{
    for (int64_t t = 0; t < x->n_tok; t++)
        for (int64_t r = r0; r < r1; r++)
            y[t * ldy + r] =
                    bn__tmat_out(ref_dot(w, r, x->q + t * x->kpad), w->scales[r], x->inv_scale[t]);
}

static float ref_dot_f32(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float ref_dot_f16_f32(const uint16_t *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += bn_f16_to_f32(a[i]) * b[i];
    return s;
}

/* As ggml's reference: per block, the int sum times the product of both scales. */
static float ref_dot_q8_0(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < BN_QK8_0; j++) sumi += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        s += (float)sumi * (bn_f16_to_f32(a[i].d) * bn_f16_to_f32(b[i].d));
    }
    return s;
}

/* The reference's multiply-add on 8 independent int32 sums (see kernels.h's mac_probe). */
static int64_t ref_mac_probe(int64_t rounds)
{
    int32_t s[8] = {0}, x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t c = 1;
    for (int64_t r = 0; r < rounds; r++) {
        __asm__("" : "+r"(c));
        for (int j = 0; j < 8; j++) s[j] += c * x[j];
    }
    volatile int32_t sink = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    (void)sink;
    return rounds * 8;
}

const bn_kernels bn__kernels_ref = {
        .name = "ref",
        .tgemm_i32 = bn__tgemm_i32_ref,
        .tgemm = bn__tgemm_ref,
        .dot_f32 = ref_dot_f32,
        .dot_f16_f32 = ref_dot_f16_f32,
        .dot_q8_0 = ref_dot_q8_0,
        .dot_q6h_q8 = bn__dot_q6h_q8_ref,
        .dot_q4h_q8 = bn__dot_q4h_q8_ref,
        .mac_probe = ref_mac_probe,
};
