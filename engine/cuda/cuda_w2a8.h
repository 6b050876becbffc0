/*
 * cuda_w2a8.h - the arithmetic of the CUDA kernels that must equal the CPU engine's, as
 * inline functions that nvcc compiles for the device and a C compiler for the host, so
 * that tests/unit/test_cuda_math.c checks on any machine the very code the GPU runs.
 *
 * W2A8 product (kernels.h's run-time layout, uploaded as it is): a warp takes a group of
 * 4 rows, kpad bytes of codes in one sequential stream. Per chunk c of 512 bytes (4 blocks
 * of 128 weights times 4 rows), lane l reads 16 bytes at c * 512 + l * 16: block
 * b = 4c + l / 8 of row 4g + (l / 2) % 4, half l % 2 of its 32 bytes. Code byte j of a
 * block holds weights j, j + 32, j + 64, j + 96 (bits 7:6 down to 1:0) as w + 1, so
 * sum_k w_k x_k = sum_k code_k x_k - sum_k x_k: four dp4a per code word, one per 2-bit
 * plane, against the activation bytes at 32 * plane + j; the row's sum of x (over kpad,
 * the padding being zero) is subtracted once at the end. The lanes of a row are l with
 * the same (l / 2) % 4: a reduction over lane bits 0, 3 and 4.
 */
#ifndef BITNET_CUDA_W2A8_H
#define BITNET_CUDA_W2A8_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define BN_CU_FN static __host__ __device__ __forceinline__
#else
#define BN_CU_FN static inline
#endif

#define BN_CU_CHUNK 512 /* bytes of codes a warp reads per step */

/* sum of the four products of signed bytes of a and b, plus c (the dp4a instruction) */
BN_CU_FN int32_t bn_cu_dp4a(uint32_t a, uint32_t b, int32_t c)
{
#if defined(__CUDA_ARCH__)
    return __dp4a((int)a, (int)b, c);
#else
    for (int i = 0; i < 4; i++) c += (int32_t)(int8_t)(a >> (8 * i)) * (int8_t)(b >> (8 * i));
    return c;
#endif
}

/* Where lane l reads in chunk c of a group: the block b (may be >= the row's blocks: then
 * the lane idles), the row within the group, and the byte offsets of its 16 code bytes in
 * the group and of its first activation byte in a row of x. */
typedef struct bn_cu_lane {
    int64_t b;
    int row;
    int64_t code_off, x_off;
} bn_cu_lane;

BN_CU_FN bn_cu_lane bn_cu_lane_at(int64_t c, int lane)
{
    bn_cu_lane p;
    p.b = 4 * c + lane / 8;
    p.row = (lane / 2) % 4;
    p.code_off = c * BN_CU_CHUNK + (int64_t)lane * 16;
    p.x_off = p.b * 128 + (lane % 2) * 16;
    return p;
}

/* acc + sum over the lane's 64 weights of code * x: cw, its 4 code words (bytes
 * j .. j + 15 of a block); xw, the 16 activation words at x_off + 32 * plane + 4 * m
 * (plane-major: xw[4 * plane + m]). */
BN_CU_FN int32_t bn_cu_lane_dot(const uint32_t cw[4], const uint32_t xw[16], int32_t acc)
{
    for (int m = 0; m < 4; m++)
        for (int plane = 0; plane < 4; plane++) {
            const uint32_t w = (cw[m] >> (6 - 2 * plane)) & 0x03030303u;
            acc = bn_cu_dp4a(w, xw[4 * plane + m], acc);
        }
    return acc;
}

#ifndef __CUDACC__
/* What a warp computes for its group of 4 rows against one token's activations (x, kpad
 * bytes), on the host: each lane's dot over its chunks, then v[l] += v[l ^ m] for m = 1, 8,
 * 16 as the shuffles do; row i's code dot ends at lane 2 i. The executable form of the
 * kernel's algorithm, for the host tests and the emulator. */
static inline void bn_cu_warp_group_host(const uint8_t *grp, const int8_t *x, int64_t kpad,
                                         int32_t out[4])
{
    const int64_t nblk = kpad / 128;
    int32_t v[32] = {0}, nv[32];
    for (int64_t c = 0; c < (nblk + 3) / 4; c++)
        for (int lane = 0; lane < 32; lane++) {
            const bn_cu_lane p = bn_cu_lane_at(c, lane);
            if (p.b >= nblk) continue;
            uint32_t cw[4], xw[16];
            memcpy(cw, grp + p.code_off, sizeof cw);
            for (int plane = 0; plane < 4; plane++)
                memcpy(xw + 4 * plane, x + p.x_off + 32 * plane, 16);
            v[lane] = bn_cu_lane_dot(cw, xw, v[lane]);
        }
    static const int masks[] = {1, 8, 16};
    for (int k = 0; k < 3; k++) {
        for (int l = 0; l < 32; l++) nv[l] = v[l] + v[l ^ masks[k]];
        memcpy(v, nv, sizeof v);
    }
    for (int i = 0; i < 4; i++) out[i] = v[2 * i];
}
#endif

/* The layer output of a row: (float)(dot) * (scale_w * inv_scale_x), as bn__tmat_out. */
BN_CU_FN float bn_cu_tmat_out(int32_t code_dot, int32_t xsum, float scale_w, float inv_scale_x)
{
    return (float)(code_dot - xsum) * (scale_w * inv_scale_x);
}

/* One activation value quantized with the row's scale s = 127 / max(amax, 1e-5), as
 * bn__model_quantize_act: round to nearest even, clamped; a non-finite product gives 0. */
BN_CU_FN int8_t bn_cu_quant_act(float x, float s)
{
    const float v = x * s;
    float r = v >= -256.0f && v <= 256.0f ? rintf(v) : 0.0f;
    r = r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r;
    return (int8_t)r;
}

BN_CU_FN float bn_cu_act_scale(float amax)
{
    return 127.0f / (amax > 1e-5f ? amax : 1e-5f);
}

/* roundf (half away from zero) for |v| < 2^22, as the Q8_0 requantizer of the LM head's
 * input (bn__model_q8_0_row): a value past 127.5 in magnitude (or NaN) gives 0. */
BN_CU_FN int8_t bn_cu_q8_0_value(float x, float id)
{
    const float v = x * id;
    if (!(v >= -127.5f && v <= 127.5f)) return 0;
    const int q = (int)v;
    const float f = v - (float)q;
    return (int8_t)(q + (f >= 0.5f) - (f <= -0.5f));
}

#endif /* BITNET_CUDA_W2A8_H */
