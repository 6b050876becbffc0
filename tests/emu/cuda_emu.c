/*
 * cuda_emu.c - engine/cuda/cuda_internal.h on the host, for tests without a GPU: "device"
 * memory is host memory and each launcher does on the CPU what its kernel does, with the
 * same shared arithmetic (cuda_w2a8.h: the warp's W2A8 algorithm, the quantizers, the output
 * formula). Linked with engine/cuda/cuda_model.c and cuda_bench.c into test_cuda_emu, it
 * checks the host side of the backend (buffer sizes and strides, the cache layout,
 * positions, batches, the LM head's upload) against the CPU engine. It says nothing about
 * whether the .cu kernels run on a GPU: scripts/gpu-check.sh does.
 *
 * A test sets bn_cu_emu_fail_after (the n-th launcher from now fails) and bn_cu_emu_mem_limit
 * (a device with less memory) to reach the error paths.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/types.h"
#include "cuda_internal.h"
#include "cuda_w2a8.h"

long bn_cu_emu_fail_after;  /* 0: never */
size_t bn_cu_emu_mem_limit; /* device allocations above it fail (0: none do) */
int bn_cu_emu_devices = 1;

#define EMU_ERR 999

static int launch(void)
{
    return bn_cu_emu_fail_after > 0 && --bn_cu_emu_fail_after == 0 ? EMU_ERR : 0;
}

const char *bn__cu_errstr(int err)
{
    return err == EMU_ERR ? "emulated failure" : err ? "emulated error" : "no error";
}

int bn__cu_device_count(int *n)
{
    *n = bn_cu_emu_devices;
    return 0;
}

int bn__cu_device_props(int dev, bn__cu_props *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "host emulator %d", dev);
    p->cc_major = 9, p->n_sm = 1, p->runtime = 13000, p->driver = 13000;
    p->mem_total = p->mem_free = (size_t)1 << 32;
    return 0;
}

int bn__cu_set_device(int dev)
{
    return dev < bn_cu_emu_devices ? 0 : 101;
}

void *bn__cu_malloc(size_t size, void *user)
{
    (void)user;
    if (bn_cu_emu_mem_limit && size > bn_cu_emu_mem_limit) return NULL;
    return aligned_alloc(256, (size + 255) / 256 * 256);
}

void bn__cu_free(void *dev, void *user)
{
    (void)user;
    free(dev);
}

int bn__cu_h2d(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    return launch();
}

int bn__cu_d2h(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    return launch();
}

int bn__cu_d2d(void *dst, const void *src, size_t n)
{
    memmove(dst, src, n);
    return launch();
}

int bn__cu_memset(void *dst, int v, size_t n)
{
    memset(dst, v, n);
    return 0;
}

int bn__cu_sync(void)
{
    return 0;
}

int bn__cu_event_now(void **ev)
{
    double *t = malloc(sizeof *t);
    if (!t) return EMU_ERR;
    *t = bn_time_now();
    *ev = t;
    return 0;
}

int bn__cu_event_ms(void *a, void *b, float *ms)
{
    *ms = (float)((*(double *)b - *(double *)a) * 1e3);
    free(a);
    free(b);
    return 0;
}

/* ---- kernels --------------------------------------------------------------------------------- */

static float rms(const float *x, int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    return 1.0f / sqrtf((float)(ss / (double)n) + eps);
}

int bn__cu_norm_quant(const float *src, int64_t ld, const float *w, int64_t dim, float eps,
                      int64_t T, int8_t *q, int64_t kpad, int32_t *xsum, float *inv)
{
    for (int64_t t = 0; t < T; t++) {
        const float *x = src + t * ld;
        const float scale = w ? rms(x, dim, eps) : 1.0f;
        float amax = 0.0f;
        for (int64_t i = 0; i < dim; i++) {
            const float a = fabsf(w ? (x[i] * scale) * w[i] : x[i]);
            amax = a > amax ? a : amax;
        }
        const float s = bn_cu_act_scale(amax);
        int32_t sum = 0;
        for (int64_t i = 0; i < kpad; i++) {
            q[t * kpad + i] = i < dim ? bn_cu_quant_act(w ? (x[i] * scale) * w[i] : x[i], s) : 0;
            sum += q[t * kpad + i];
        }
        xsum[t] = sum;
        inv[t] = 1.0f / s;
    }
    return launch();
}

int bn__cu_w2a8(const uint8_t *codes, const float *scales, int64_t rows, int64_t kpad,
                const int8_t *q, const int32_t *xsum, const float *inv, int64_t T, float *y,
                int64_t ldy, int add)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t g = 0; g < (rows + 3) / 4; g++) {
            int32_t dot[4];
            bn_cu_warp_group_host(codes + g * kpad, q + t * kpad, kpad, dot);
            for (int64_t r = g * 4; r < g * 4 + 4 && r < rows; r++) {
                const float o = bn_cu_tmat_out(dot[r - g * 4], xsum[t], scales[r], inv[t]);
                y[t * ldy + r] = add ? y[t * ldy + r] + o : o;
            }
        }
    return launch();
}

static void rope_head(float *x, const float *cs, int64_t half)
{
    for (int64_t i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x0 * s + x1 * c;
    }
}

int bn__cu_rope_store(const bn__cu_rope *a)
{
    const int64_t half = a->n_rot / 2, KV = a->n_kv * a->d;
    for (int64_t t = 0; t < a->T; t++) {
        const float *cs = a->cs + t * a->n_rot;
        for (int64_t h = 0; h < a->n_head; h++)
            rope_head(a->q + (t * a->n_head + h) * a->d, cs, half);
        for (int64_t h = 0; h < a->n_kv; h++) rope_head(a->k + t * KV + h * a->d, cs, half);
        const size_t row = ((size_t)a->il * (size_t)a->n_ctx + (size_t)(a->pos0 + t)) * (size_t)KV;
        for (int64_t i = 0; i < KV; i++) {
            a->kc[row + i] = bn_f32_to_f16(a->k[t * KV + i]);
            a->vc[row + i] = bn_f32_to_f16(a->v[t * KV + i]);
        }
    }
    return launch();
}

static void attend(const float *q, const uint16_t *K, const uint16_t *V, int64_t KV, int64_t d,
                   int64_t n_keys, float *s, float *out)
{
    const float scale = 1.0f / sqrtf((float)d);
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t p = 0; p < n_keys; p++) {
        float acc = 0.0f;
        for (int64_t i = 0; i < d; i++) acc += bn_f16_to_f32(K[p * KV + i]) * q[i];
        s[p] = acc * scale;
        mx = s[p] > mx ? s[p] : mx;
    }
    for (int64_t p = 0; p < n_keys; p++) sum += s[p] = expf(s[p] - mx);
    for (int64_t p = 0; p < n_keys; p++) s[p] *= 1.0f / sum;
    for (int64_t i = 0; i < d; i++) {
        float acc = 0.0f;
        for (int64_t p = 0; p < n_keys; p++) acc += bn_f16_to_f32(V[p * KV + i]) * s[p];
        out[i] = acc;
    }
}

int bn__cu_attention(const float *q, const uint16_t *kc, const uint16_t *vc, float *att, int64_t T,
                     int64_t n_head, int64_t n_kv, int64_t d, int64_t il, int64_t n_ctx,
                     int64_t pos0)
{
    if (pos0 + T > BN__CU_MAX_CTX || n_ctx > BN__CU_MAX_CTX) return EMU_ERR;
    const int64_t KV = n_kv * d, E = n_head * d;
    float *s = malloc((size_t)(pos0 + T) * sizeof *s);
    if (!s) return EMU_ERR;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < n_head; h++) {
            const size_t base =
                    (size_t)il * (size_t)n_ctx * (size_t)KV + (size_t)(h / (n_head / n_kv) * d);
            attend(q + t * E + h * d, kc + base, vc + base, KV, d, pos0 + t + 1, s,
                   att + t * E + h * d);
        }
    free(s);
    return launch();
}

int bn__cu_act_mul(float *g, const float *u, int64_t n, int silu)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = g[i] > 0.0f ? g[i] : 0.0f;
        g[i] = silu ? g[i] / (1.0f + expf(-g[i])) * u[i] : (v * v) * u[i];
    }
    return launch();
}

int bn__cu_rmsnorm(const float *x, const float *w, int64_t n, float eps, int64_t T, float *hn)
{
    for (int64_t t = 0; t < T; t++) {
        const float scale = rms(x + t * n, n, eps);
        for (int64_t i = 0; i < n; i++) hn[t * n + i] = (x[t * n + i] * scale) * w[i];
    }
    return launch();
}

int bn__cu_q8_0_rows(const float *x, int64_t n, int64_t T, int8_t *xq, float *xd)
{
    for (int64_t b = 0; b < T * n / 32; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fabsf(x[b * 32 + j]) > amax ? fabsf(x[b * 32 + j]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) xq[b * 32 + j] = bn_cu_q8_0_value(x[b * 32 + j], id);
        xd[b] = bn_f16_to_f32(bn_f32_to_f16(d));
    }
    return launch();
}

static float head_row(int type, const void *rows, const float *dsc, int64_t r, int64_t E,
                      const float *hn, const int8_t *xq, const float *xd)
{
    float acc = 0.0f;
    if (type == 8) {
        const int8_t *w = (const int8_t *)rows + r * E;
        for (int64_t b = 0; b < E / 32; b++) {
            int32_t sumi = 0;
            for (int j = 0; j < 32; j++) sumi += w[b * 32 + j] * xq[b * 32 + j];
            acc += (float)sumi * (dsc[r * (E / 32) + b] * xd[b]);
        }
    } else {
        for (int64_t i = 0; i < E; i++)
            acc += (type == 1 ? bn_f16_to_f32(((const uint16_t *)rows)[r * E + i])
                              : ((const float *)rows)[r * E + i]) *
                   hn[i];
    }
    return acc;
}

int bn__cu_head(int type, const void *rows, const float *d, int64_t V, int64_t E, const float *hn,
                const int8_t *xq, const float *xd, int64_t T, float *logits)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < V; r++)
            logits[t * V + r] =
                    head_row(type, rows, d, r, E, hn + t * E, xq + t * E, xd + t * (E / 32));
    return launch();
}
