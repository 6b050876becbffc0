/*
 * cuda_internal.h - what the host side of the CUDA backend (cuda_model.c, C) asks of its
 * device side (cuda_kernels.cu, cuda_runtime.cu): plain C declarations, device pointers as
 * void *. Every launcher queues work on the default stream and returns 0 or a CUDA error
 * code (bn__cu_errstr names it); errors of a kernel show at the next synchronizing call.
 */
#ifndef BITNET_CUDA_INTERNAL_H
#define BITNET_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- runtime (cuda_runtime.cu) ---------------------------------------------------------- */

const char *bn__cu_errstr(int err);
/* Devices seen by the runtime: 0 and *n, or an error code (no driver, no device: *n 0). */
int bn__cu_device_count(int *n);
typedef struct bn__cu_props {
    char name[256];
    int cc_major, cc_minor, n_sm;
    size_t mem_total, mem_free;
    int bus_bits;        /* memory bus width */
    double mem_khz;      /* memory clock (0 when the runtime no longer reports it) */
    int runtime, driver; /* versions, as 13000 */
} bn__cu_props;
int bn__cu_device_props(int dev, bn__cu_props *p);
int bn__cu_set_device(int dev);
/* the allocator hook of the GPU pool (bitnet/gpu_pool.h): cudaMalloc / cudaFree */
void *bn__cu_malloc(size_t size, void *user);
void bn__cu_free(void *dev, void *user);
int bn__cu_h2d(void *dst, const void *src, size_t n);
int bn__cu_d2h(void *dst, const void *src, size_t n);
int bn__cu_d2d(void *dst, const void *src, size_t n);
int bn__cu_memset(void *dst, int v, size_t n);
int bn__cu_sync(void);
/* Timing with events on the default stream: *ev gets an event recorded now. */
int bn__cu_event_now(void **ev);
/* milliseconds between two recorded events (waits for b), and frees both */
int bn__cu_event_ms(void *a, void *b, float *ms);

/* ---- kernels (cuda_kernels.cu) ----------------------------------------------------------- */

/* q[t] = the int8 quantization of RMSNorm(src[t]) * w (w NULL: of src[t] as it is), for T
 * rows of dim values (stride ld); q rows of kpad bytes (zero past dim), xsum[t] = sum q,
 * inv[t] = 1 / scale, as bn__model_quantize_act after the CPU's rmsnorm. */
int bn__cu_norm_quant(const float *src, int64_t ld, const float *w, int64_t dim, float eps,
                      int64_t T, int8_t *q, int64_t kpad, int32_t *xsum, float *inv);
/* y[t * ldy + r] (= or +=, add) for rows [0, rows) of the W2A8 product of codes (kernels.h
 * layout, rows_pad rows of kpad / 4 bytes) and scales against T quantized rows. */
int bn__cu_w2a8(const uint8_t *codes, const float *scales, int64_t rows, int64_t kpad,
                const int8_t *q, const int32_t *xsum, const float *inv, int64_t T, float *y,
                int64_t ldy, int add);
/* RoPE (NEOX) on q (T, n_head * d) and k (T, n_kv * d), then k and v (T, n_kv * d) into the
 * F16 caches at rows pos0 + t of layer il: cache[(il * n_ctx + pos) * n_kv * d + i]. cs:
 * (T, n_rot) cos, sin pairs. */
typedef struct bn__cu_rope {
    float *q, *k;
    const float *v, *cs;
    uint16_t *kc, *vc;
    int64_t T, n_head, n_kv, d, n_rot, il, n_ctx, pos0;
} bn__cu_rope;
int bn__cu_rope_store(const bn__cu_rope *a);
/* att[t, head] = softmax(q K^T / sqrt(d)) V over positions 0 .. pos0 + t, from the F16
 * caches of layer il. n_ctx <= BN__CU_MAX_CTX. */
#define BN__CU_MAX_CTX 8192
int bn__cu_attention(const float *q, const uint16_t *kc, const uint16_t *vc, float *att, int64_t T,
                     int64_t n_head, int64_t n_kv, int64_t d, int64_t il, int64_t n_ctx,
                     int64_t pos0);
/* g = relu(g)^2 * u (silu 0) or g / (1 + e^-g) * u (silu 1), n values */
int bn__cu_act_mul(float *g, const float *u, int64_t n, int silu);
/* hn[t] = RMSNorm(x[t]) * w for T rows of n */
int bn__cu_rmsnorm(const float *x, const float *w, int64_t n, float eps, int64_t T, float *hn);
/* Q8_0 of T rows of n (n % 32 == 0): values xq (T, n) and scales xd (T, n / 32) as f32 of
 * the f16 scale, as bn__model_q8_0_row */
int bn__cu_q8_0_rows(const float *x, int64_t n, int64_t T, int8_t *xq, float *xd);
/* LM head, logits[t * V + r] for r < V: type 0 F32 rows, 1 F16 rows (against hn), 8 Q8_0
 * rows split into qs (V, E) int8 and d (V, E / 32) f32 (against xq, xd). */
int bn__cu_head(int type, const void *rows, const float *d, int64_t V, int64_t E, const float *hn,
                const int8_t *xq, const float *xd, int64_t T, float *logits);
#ifdef __cplusplus
}
#endif

#endif /* BITNET_CUDA_INTERNAL_H */
