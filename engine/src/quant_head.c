/* quant_head.c - the Q6H and Q4H LM-head blocks of types.h: the reference quantizer,
 * dequantizer and dot product against a Q8_0 activation. */
#include <math.h>
#include <string.h>

#include "kernels_internal.h"
#include "model_internal.h"

/* A block's q[i] from its packed bits (Q6H: nbits 6, Q4H: nbits 4). */
static int unpack_q(const uint8_t *ql, const uint8_t *qh, int i)
{
    const int lo = (ql[i % 128] >> (4 * (i / 128))) & 15;
    if (!qh) return lo - 8;
    return (lo | ((qh[i % 64] >> (2 * (i / 64))) & 3) << 4) - 32;
}

/* One 256-value block of x into d, sc and q (qmax 31 or 7; q in -qmax-1 .. qmax). */
static void quantize_block(const float *x, int qmax, uint16_t *d16, int8_t *sc, int8_t *q)
{
    float f[16], fmax = 0.0f;
    for (int j = 0; j < 16; j++) {
        float amax = 0.0f;
        for (int k = 0; k < 16; k++) {
            const float a = fabsf(x[16 * j + k]);
            amax = a > amax ? a : amax; /* NaN: keeps amax */
        }
        f[j] = amax / (float)qmax;
        fmax = f[j] > fmax ? f[j] : fmax;
    }
    *d16 = bn_f32_to_f16(fmax / 127.0f);
    const float d = bn_f16_to_f32(*d16), id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; j++) {
        const float s = nearbyintf(f[j] * id);
        sc[j] = (int8_t)(s > 127.0f ? 127 : s);
        const float step = d * (float)sc[j], is = step > 0.0f ? 1.0f / step : 0.0f;
        for (int k = 0; k < 16; k++) {
            float v = nearbyintf(x[16 * j + k] * is);
            v = v != v ? 0.0f : v; /* NaN */
            q[16 * j + k] = (int8_t)(v > (float)qmax          ? qmax
                                     : v < (float)(-qmax - 1) ? -qmax - 1
                                                              : v);
        }
    }
}

void bn_quantize_row_q6h_ref(const float *x, bn_block_q6h *y, int64_t n)
{
    int8_t q[BN_QK_H];
    for (int64_t b = 0; b < n / BN_QK_H; b++) {
        quantize_block(x + b * BN_QK_H, 31, &y[b].d, y[b].sc, q);
        memset(y[b].ql, 0, sizeof y[b].ql);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int i = 0; i < BN_QK_H; i++) {
            const int u = q[i] + 32;
            y[b].ql[i % 128] |= (uint8_t)((u & 15) << (4 * (i / 128)));
            y[b].qh[i % 64] |= (uint8_t)((u >> 4) << (2 * (i / 64)));
        }
    }
}

void bn_quantize_row_q4h_ref(const float *x, bn_block_q4h *y, int64_t n)
{
    int8_t q[BN_QK_H];
    for (int64_t b = 0; b < n / BN_QK_H; b++) {
        quantize_block(x + b * BN_QK_H, 7, &y[b].d, y[b].sc, q);
        memset(y[b].ql, 0, sizeof y[b].ql);
        for (int i = 0; i < BN_QK_H; i++)
            y[b].ql[i % 128] |= (uint8_t)((q[i] + 8) << (4 * (i / 128)));
    }
}

/* x[i] = d * sc[i / 16] * q[i] for one block. */
static void dequantize_block(uint16_t d16, const int8_t *sc, const uint8_t *ql, const uint8_t *qh,
                             float *y)
{
    const float d = bn_f16_to_f32(d16);
    for (int i = 0; i < BN_QK_H; i++) y[i] = d * (float)sc[i / 16] * (float)unpack_q(ql, qh, i);
}

void bn_dequantize_row_q6h(const bn_block_q6h *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / BN_QK_H; b++)
        dequantize_block(x[b].d, x[b].sc, x[b].ql, x[b].qh, y + b * BN_QK_H);
}

void bn_dequantize_row_q4h(const bn_block_q4h *x, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / BN_QK_H; b++)
        dequantize_block(x[b].d, x[b].sc, x[b].ql, NULL, y + b * BN_QK_H);
}

/* One block against 256 activation values xq with 8 scales xd: per 32 values the exact
 * int sum of both 16-value halves times their sub-scales, times d * xd. */
static float dot_block(uint16_t d16, const int8_t *sc, const uint8_t *ql, const uint8_t *qh,
                       const int8_t *xq, const float *xd)
{
    const float d = bn_f16_to_f32(d16);
    float s = 0.0f;
    for (int c = 0; c < BN_QK_H / 32; c++) {
        int32_t sum = 0;
        for (int h = 0; h < 2; h++) {
            int32_t part = 0;
            for (int k = 0; k < 16; k++) {
                const int i = 32 * c + 16 * h + k;
                part += unpack_q(ql, qh, i) * (int32_t)xq[i];
            }
            sum += part * sc[2 * c + h];
        }
        s += (float)sum * (d * xd[c]);
    }
    return s;
}

float bn__dot_q6h_q8_ref(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / BN_QK_H; b++)
        s += dot_block(a[b].d, a[b].sc, a[b].ql, a[b].qh, xq + b * BN_QK_H, xd + b * 8);
    return s;
}

float bn__dot_q4h_q8_ref(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / BN_QK_H; b++)
        s += dot_block(a[b].d, a[b].sc, a[b].ql, NULL, xq + b * BN_QK_H, xd + b * 8);
    return s;
}

/* ---- the lanes form of the avx512 kernels (model_internal.h) ---------------------------- */

void bn__head_lanes_pack(const void *blocks, int q6, int64_t E, int64_t r, uint8_t *lanes)
{
    const size_t rec = bn__head_lanes_rec(q6), blk = BN__LANES_BLK(q6);
    const int64_t ns = E / BN_QK_H;
    const int i16 = (int)(r % 16), off = q6 ? 32 : 8;
    for (int64_t s = 0; s < ns; s++) {
        uint8_t *p = lanes + ((size_t)(r / 16) * (size_t)ns + (size_t)s) * rec;
        const bn_block_q6h *b6 = (const bn_block_q6h *)blocks + s;
        const bn_block_q4h *b4 = (const bn_block_q4h *)blocks + s;
        const uint8_t *ql = q6 ? b6->ql : b4->ql, *qh = q6 ? b6->qh : NULL;
        const int8_t *sc = q6 ? b6->sc : b4->sc;
        for (int v = 0; v < BN_QK_H; v++) {
            const int u = unpack_q(ql, qh, v) + off, w = v % 32, half = w / 16, n = (w % 16) / 4;
            const size_t at = (size_t)(v / 32) * blk + (size_t)(4 * i16 + w % 4);
            p[at + 64 * (size_t)n] |= (uint8_t)((u & 15) << (4 * half));
            if (q6) p[at + 256 + 64 * (size_t)half] |= (uint8_t)((u >> 4) << (2 * n));
        }
        for (int j = 0; j < 16; j++) p[8 * blk + 16 * (size_t)j + (size_t)i16] = (uint8_t)sc[j];
        const float d = bn_f16_to_f32(q6 ? b6->d : b4->d);
        memcpy(p + 8 * blk + 256 + 4 * (size_t)i16, &d, sizeof d);
    }
}

void bn__head_lanes_rows_ref(const uint8_t *lanes, int q6, int64_t E, int64_t r0, int64_t r1,
                             const int8_t *xq, const float *xd, float *y)
{
    const size_t rec = bn__head_lanes_rec(q6), blk = BN__LANES_BLK(q6);
    const int64_t ns = E / BN_QK_H;
    const int off = q6 ? 32 : 8;
    for (int64_t r = r0; r < r1; r++) {
        const size_t i16 = (size_t)(r % 16);
        float acc = 0.0f;
        for (int64_t s = 0; s < ns; s++) {
            const uint8_t *p = lanes + ((size_t)(r / 16) * (size_t)ns + (size_t)s) * rec;
            float d;
            memcpy(&d, p + 8 * blk + 256 + 4 * i16, sizeof d);
            for (int c = 0; c < 8; c++) {
                const int8_t *x = xq + (s * 8 + c) * 32;
                int32_t S = 0;
                for (int half = 0; half < 2; half++) {
                    int32_t part = 0;
                    for (int w = 16 * half; w < 16 * half + 16; w++) {
                        const int n = (w % 16) / 4;
                        const size_t at = (size_t)c * blk + 4 * i16 + (size_t)(w % 4);
                        int u = (p[at + 64 * (size_t)n] >> (4 * half)) & 15;
                        if (q6) u |= ((p[at + 256 + 64 * (size_t)half] >> (2 * n)) & 3) << 4;
                        part += (u - off) * x[w];
                    }
                    S += part * (int8_t)p[8 * blk + 16 * (size_t)(2 * c + half) + i16];
                }
                acc = fmaf((float)S, d * xd[s * 8 + c], acc);
            }
        }
        y[r] = acc;
    }
}
