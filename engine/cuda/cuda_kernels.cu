/*
 * cuda_kernels.cu - the BitNet b1.58 forward's kernels on an NVIDIA GPU (cuda_internal.h):
 * RMSNorm fused with the int8 activation quantizer, the W2A8 product (dp4a; one token for
 * generation, tiles of 8 tokens sharing each weight load for prompts), RoPE with the F16
 * KV-cache stores, attention, relu^2 / SiLU, the final norm, the Q8_0 quantizer of the LM
 * head's input and the head.
 *
 * Numerics follow the CPU engine (engine/src/model_forward.c): the quantizers and the
 * W2A8 output formula come from cuda_w2a8.h, shared with the host tests, and give the
 * CPU's bytes; this file is compiled with --fmad=false, so no multiply-add is fused where
 * the CPU rounds twice. Sums of floats (norms, attention, the head) run in another order
 * than on the CPU, so those results may differ in the last bits.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "cuda_internal.h"
#include "cuda_w2a8.h"

#define FULL 0xffffffffu

static int last_error(void)
{
    return (int)cudaGetLastError();
}

__device__ __forceinline__ float h2f(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ uint16_t f2h(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}

/* ---- reductions ---------------------------------------------------------------------- */

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

/* the larger, as the CPU compares (never NaN: callers start from 0 or -inf) */
__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        const float u = __shfl_xor_sync(FULL, v, o);
        v = u > v ? u : v;
    }
    return v;
}

/* Block-wide sum and max (blockDim.x a multiple of 32, at most 1024); every thread gets
 * the result. sh: 32 slots of shared memory. */
template <typename T> __device__ T block_sum(T v, T *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* sh may still be read from a previous call */
    v = warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    return warp_sum(v);
}

__device__ float block_max(float v, float *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    v = warp_max(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

/* ---- RMSNorm and the activation quantizer -------------------------------------------------- */

/* 1 / sqrt(mean(x^2) + eps), the squares rounded to float and summed in double */
__device__ float rms_scale(const float *x, int64_t n, float eps, double *sh)
{
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += (double)(x[i] * x[i]);
    ss = block_sum(ss, sh);
    return 1.0f / sqrtf((float)(ss / (double)n) + eps);
}

__global__ void k_norm_quant(const float *src, int64_t ld, const float *w, int64_t dim, float eps,
                             int8_t *q, int64_t kpad, int32_t *xsum, float *inv)
{
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    const int64_t t = blockIdx.x;
    const float *x = src + t * ld;
    const float scale = w ? rms_scale(x, dim, eps, shd) : 1.0f;
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        const float a = fabsf(w ? (x[i] * scale) * w[i] : x[i]);
        amax = a > amax ? a : amax; /* a NaN is skipped */
    }
    const float s = bn_cu_act_scale(block_max(amax, shf));
    int sum = 0;
    for (int64_t i = threadIdx.x; i < kpad; i += blockDim.x) {
        int8_t v = 0;
        if (i < dim) v = bn_cu_quant_act(w ? (x[i] * scale) * w[i] : x[i], s);
        q[t * kpad + i] = v;
        sum += v;
    }
    sum = block_sum(sum, shi);
    if (threadIdx.x == 0) {
        xsum[t] = sum;
        inv[t] = 1.0f / s;
    }
}

extern "C" int bn__cu_norm_quant(const float *src, int64_t ld, const float *w, int64_t dim,
                                 float eps, int64_t T, int8_t *q, int64_t kpad, int32_t *xsum,
                                 float *inv)
{
    k_norm_quant<<<(unsigned)T, 256>>>(src, ld, w, dim, eps, q, kpad, xsum, inv);
    return last_error();
}

__global__ void k_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *hn)
{
    __shared__ double shd[32];
    const int64_t t = blockIdx.x;
    const float scale = rms_scale(x + t * n, n, eps, shd);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        hn[t * n + i] = (x[t * n + i] * scale) * w[i];
}

extern "C" int bn__cu_rmsnorm(const float *x, const float *w, int64_t n, float eps, int64_t T,
                              float *hn)
{
    k_rmsnorm<<<(unsigned)T, 256>>>(x, w, n, eps, hn);
    return last_error();
}

/* ---- the W2A8 product ---------------------------------------------------------------------- */

/* One warp per group of 4 rows (see cuda_w2a8.h), NT tokens per weight load. */
template <int NT>
__global__ void __launch_bounds__(128)
        k_w2a8(const uint8_t *codes, const float *scales, int64_t rows, int64_t kpad,
               const int8_t *q, const int32_t *xsum, const float *inv, int64_t T, float *y,
               int64_t ldy, int add)
{
    const int lane = threadIdx.x & 31;
    const int64_t g = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (g >= (rows + 3) / 4) return; /* the whole warp */
    const int64_t t0 = (int64_t)blockIdx.y * NT;
    const int nt = T - t0 < NT ? (int)(T - t0) : NT;
    const uint8_t *grp = codes + g * kpad;
    const int64_t nblk = kpad / 128;
    int32_t acc[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j] = 0;
#pragma unroll 2
    for (int64_t c = 0; c < (nblk + 3) / 4; c++) {
        const bn_cu_lane p = bn_cu_lane_at(c, lane);
        if (p.b >= nblk) continue;
        const uint4 cv = __ldg((const uint4 *)(grp + p.code_off));
        const uint32_t cw[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
        for (int j = 0; j < NT; j++) {
            if (j >= nt) continue;
            const int8_t *xr = q + (t0 + j) * kpad + p.x_off;
            uint32_t xw[16];
#pragma unroll
            for (int plane = 0; plane < 4; plane++) {
                const uint4 v = *(const uint4 *)(xr + 32 * plane);
                xw[4 * plane] = v.x, xw[4 * plane + 1] = v.y;
                xw[4 * plane + 2] = v.z, xw[4 * plane + 3] = v.w;
            }
            acc[j] = bn_cu_lane_dot(cw, xw, acc[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < NT; j++) {
        int32_t v = acc[j];
        v += __shfl_xor_sync(FULL, v, 1);
        v += __shfl_xor_sync(FULL, v, 8);
        v += __shfl_xor_sync(FULL, v, 16);
        acc[j] = v;
    }
    const int64_t r = g * 4 + lane / 2;
    if ((lane & 0x19) != 0 || r >= rows) return; /* lanes 0, 2, 4, 6 hold rows 0..3 */
#pragma unroll
    for (int j = 0; j < NT; j++) {
        if (j >= nt) continue;
        const int64_t t = t0 + j;
        const float o = bn_cu_tmat_out(acc[j], xsum[t], scales[r], inv[t]);
        float *dst = y + t * ldy + r;
        *dst = add ? *dst + o : o;
    }
}

extern "C" int bn__cu_w2a8(const uint8_t *codes, const float *scales, int64_t rows, int64_t kpad,
                           const int8_t *q, const int32_t *xsum, const float *inv, int64_t T,
                           float *y, int64_t ldy, int add)
{
    const unsigned gx = (unsigned)(((rows + 3) / 4 + 3) / 4);
    if (T == 1)
        k_w2a8<1><<<dim3(gx, 1), 128>>>(codes, scales, rows, kpad, q, xsum, inv, T, y, ldy, add);
    else
        k_w2a8<8><<<dim3(gx, (unsigned)((T + 7) / 8)), 128>>>(codes, scales, rows, kpad, q, xsum,
                                                               inv, T, y, ldy, add);
    return last_error();
}

/* ---- RoPE, the KV cache, attention ------------------------------------------------------- */

__device__ __forceinline__ void rope_pair(float *x, const float *cs, int64_t i, int64_t half)
{
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float x0 = x[i], x1 = x[i + half];
    x[i] = x0 * c - x1 * s;
    x[i + half] = x0 * s + x1 * c;
}

__global__ void k_rope_store(bn__cu_rope a)
{
    const int64_t t = blockIdx.x, half = a.n_rot / 2, KV = a.n_kv * a.d;
    const float *cs = a.cs + t * a.n_rot;
    float *q = a.q + t * a.n_head * a.d, *k = a.k + t * KV;
    for (int64_t u = threadIdx.x; u < a.n_head * half; u += blockDim.x)
        rope_pair(q + u / half * a.d, cs, u % half, half);
    for (int64_t u = threadIdx.x; u < a.n_kv * half; u += blockDim.x)
        rope_pair(k + u / half * a.d, cs, u % half, half);
    __syncthreads();
    const size_t row = ((size_t)a.il * (size_t)a.n_ctx + (size_t)(a.pos0 + t)) * (size_t)KV;
    for (int64_t i = threadIdx.x; i < KV; i += blockDim.x) {
        a.kc[row + i] = f2h(k[i]);
        a.vc[row + i] = f2h(a.v[t * KV + i]);
    }
}

extern "C" int bn__cu_rope_store(const bn__cu_rope *a)
{
    k_rope_store<<<(unsigned)a->T, 256>>>(*a);
    return last_error();
}

/* One block per (token, head): scores in shared memory, softmax as the CPU computes it
 * (e^(s - max), each times 1 / their sum), then sum_p s[p] V[p]. */
__global__ void k_attention(const float *q, const uint16_t *kc, const uint16_t *vc, float *att,
                            int64_t n_head, int64_t n_kv, int64_t d, int64_t il, int64_t n_ctx,
                            int64_t pos0)
{
    extern __shared__ float sh[];
    __shared__ float red[32];
    float *qs = sh, *s = sh + d;
    const int64_t t = blockIdx.x, hh = blockIdx.y, E = n_head * d, KV = n_kv * d;
    const int64_t g = hh / (n_head / n_kv), n_keys = pos0 + t + 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) qs[i] = q[t * E + hh * d + i];
    __syncthreads();
    const uint16_t *K = kc + (size_t)il * (size_t)n_ctx * (size_t)KV + (size_t)(g * d);
    const uint16_t *V = vc + (size_t)il * (size_t)n_ctx * (size_t)KV + (size_t)(g * d);
    for (int64_t p = warp; p < n_keys; p += nw) {
        float acc = 0.0f;
        for (int64_t i = lane; i < d; i += 32) acc += h2f(K[p * KV + i]) * qs[i];
        acc = warp_sum(acc);
        if (lane == 0) s[p] = acc * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int64_t p = threadIdx.x; p < n_keys; p += blockDim.x) mx = s[p] > mx ? s[p] : mx;
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int64_t p = threadIdx.x; p < n_keys; p += blockDim.x) {
        s[p] = expf(s[p] - mx);
        sum += s[p];
    }
    const float inv = 1.0f / block_sum(sum, red);
    for (int64_t p = threadIdx.x; p < n_keys; p += blockDim.x) s[p] *= inv;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float acc = 0.0f;
        for (int64_t p = 0; p < n_keys; p++) acc += h2f(V[p * KV + i]) * s[p];
        att[t * E + hh * d + i] = acc;
    }
}

extern "C" int bn__cu_attention(const float *q, const uint16_t *kc, const uint16_t *vc, float *att,
                                int64_t T, int64_t n_head, int64_t n_kv, int64_t d, int64_t il,
                                int64_t n_ctx, int64_t pos0)
{
    if (pos0 + T > BN__CU_MAX_CTX || n_ctx > BN__CU_MAX_CTX) return (int)cudaErrorInvalidValue;
    const size_t shmem = (size_t)(d + pos0 + T) * sizeof(float);
    k_attention<<<dim3((unsigned)T, (unsigned)n_head), 128, shmem>>>(q, kc, vc, att, n_head, n_kv,
                                                                      d, il, n_ctx, pos0);
    return last_error();
}

/* ---- the FFN activation ------------------------------------------------------------------ */

__global__ void k_act_mul(float *g, const float *u, int64_t n, int silu)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (silu) {
            g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        } else {
            const float v = g[i] > 0.0f ? g[i] : 0.0f;
            g[i] = (v * v) * u[i];
        }
    }
}

extern "C" int bn__cu_act_mul(float *g, const float *u, int64_t n, int silu)
{
    const int64_t blocks = (n + 255) / 256;
    k_act_mul<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256>>>(g, u, n, silu);
    return last_error();
}

/* ---- the LM head --------------------------------------------------------------------------- */

/* One warp per 32-value block: the Q8_0 of the head's input, as bn__model_q8_0_row. */
__global__ void k_q8_0_rows(const float *x, int64_t n_blocks, int8_t *xq, float *xd)
{
    const int lane = threadIdx.x & 31;
    const int64_t b = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (b >= n_blocks) return;
    const float v = x[b * 32 + lane];
    float a = fabsf(v);
    a = a > 0.0f ? a : 0.0f; /* a NaN is skipped, as the CPU's comparison does */
    const float d = warp_max(a) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    xq[b * 32 + lane] = bn_cu_q8_0_value(v, id);
    if (lane == 0) xd[b] = h2f(f2h(d));
}

extern "C" int bn__cu_q8_0_rows(const float *x, int64_t n, int64_t T, int8_t *xq, float *xd)
{
    const int64_t nb = T * n / 32;
    k_q8_0_rows<<<(unsigned)((nb + 7) / 8), 256>>>(x, nb, xq, xd);
    return last_error();
}

/* One warp per vocabulary row, token blockIdx.y. */
__global__ void k_head(int type, const void *rows, const float *dsc, int64_t V, int64_t E,
                       const float *hn, const int8_t *xq, const float *xd, float *logits)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int64_t t = blockIdx.y;
    if (r >= V) return;
    float acc = 0.0f;
    if (type == 8) {
        const int64_t nb = E / 32;
        const int8_t *w = (const int8_t *)rows + r * E;
        for (int64_t b = lane; b < nb; b += 32) {
            const uint4 *wv = (const uint4 *)(w + b * 32);
            const uint4 *xv = (const uint4 *)(xq + t * E + b * 32);
            int32_t sumi = 0;
            for (int h = 0; h < 2; h++) {
                const uint4 a = __ldg(wv + h), c = xv[h];
                sumi = bn_cu_dp4a(a.x, c.x, sumi);
                sumi = bn_cu_dp4a(a.y, c.y, sumi);
                sumi = bn_cu_dp4a(a.z, c.z, sumi);
                sumi = bn_cu_dp4a(a.w, c.w, sumi);
            }
            acc += (float)sumi * (dsc[r * nb + b] * xd[t * nb + b]);
        }
    } else if (type == 1) {
        const uint16_t *w = (const uint16_t *)rows + r * E;
        for (int64_t i = lane; i < E; i += 32) acc += h2f(w[i]) * hn[t * E + i];
    } else {
        const float *w = (const float *)rows + r * E;
        for (int64_t i = lane; i < E; i += 32) acc += w[i] * hn[t * E + i];
    }
    acc = warp_sum(acc);
    if (lane == 0) logits[t * V + r] = acc;
}

extern "C" int bn__cu_head(int type, const void *rows, const float *d, int64_t V, int64_t E,
                           const float *hn, const int8_t *xq, const float *xd, int64_t T,
                           float *logits)
{
    k_head<<<dim3((unsigned)((V + 7) / 8), (unsigned)T), 256>>>(type, rows, d, V, E, hn, xq, xd,
                                                                logits);
    return last_error();
}
