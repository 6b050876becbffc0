/*
 * cuda_bench.c - bn_cuda_bench_gemv (bitnet/cuda.h): the W2A8 GEMV on a random ternary
 * matrix (alone, and as copies stacked into one matrix as large as the copy probe) against
 * the device's own copy bandwidth, with every output checked against the CPU reference
 * kernel. Device memory from a GPU pool, like the model's.
 */
#include <math.h>
#include <string.h>

#include "bitnet/cuda.h"
#include "bitnet/kernels.h"
#include "cuda_internal.h"

typedef struct bench {
    bn_ctx *ctx;
    bn_gpu_pool *pool;
    bn_tmat w;
    bn_qact x;
    float *ref;
    int64_t k; /* copies of the matrix stacked on the device */
    /* device */
    uint8_t *codes;
    float *scales, *inv, *y;
    int8_t *q;
    int32_t *sum;
    char *src, *dst;
} bench;

static bn_status fail(bench *b, int e, const char *what)
{
    return bn_ctx_set_error(b->ctx, BN_ERR_INTERNAL, "CUDA: %s: %s", what, bn__cu_errstr(e));
}

/* Random ternary weights and 8 tokens of activations, their reference product. */
static bn_status host_data(bench *b, int64_t rows, int64_t cols)
{
    int8_t *tq = bn_malloc((size_t)(rows * cols));
    float *xf = bn_malloc((size_t)(8 * cols) * 4);
    b->ref = bn_malloc((size_t)(8 * rows) * 4);
    bn_status rc = tq && xf && b->ref ? BN_OK : BN_ERR_NOMEM;
    uint64_t s = 1;
    for (int64_t i = 0; rc == BN_OK && i < rows * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tq[i] = (int8_t)((int)(s >> 61) % 3 - 1);
    }
    for (int64_t i = 0; rc == BN_OK && i < 8 * cols; i++) xf[i] = sinf((float)i * 0.37f);
    if (rc == BN_OK) rc = bn_tmat_from_ternary(&b->w, tq, NULL, 0.5f, rows, cols);
    if (rc == BN_OK) rc = bn_qact_init(&b->x, 8, cols);
    if (rc == BN_OK) {
        bn_qact_quantize(&b->x, xf, 8);
        bn_kernels_ref()->tgemm(&b->w, &b->x, b->ref, rows, 0, rows);
    }
    bn_free(tq);
    bn_free(xf);
    return rc == BN_OK ? rc : bn_ctx_set_error(b->ctx, rc, "bench: %s", bn_status_str(rc));
}

/* The shape's codes k times over in one matrix of k * rows_pad rows (scales repeated, 0 for
 * padding rows): a GEMV over it streams k * cb bytes from memory in one launch, as the
 * layers of a model do one after another, without the launch gaps of a small kernel. */
static bn_status device_data(bench *b, size_t copy_bytes)
{
    const bn_tmat *w = &b->w;
    const size_t cb = (size_t)(w->rows_pad * w->row_bytes), rp = (size_t)w->rows_pad;
    b->k = copy_bytes / cb > 1 ? (int64_t)(copy_bytes / cb) : 1;
    const size_t k = (size_t)b->k;
    bn_gpu_pool_params pp;
    bn_gpu_pool_params_init(&pp);
    pp.reserve = ((k * cb + k * rp * 36 + 8 * (size_t)w->kpad + 2 * copy_bytes) / pp.align + 64) *
                         pp.align +
                 16 * pp.slab_bytes;
    bn_gpu_allocator a = {.alloc = bn__cu_malloc, .free = bn__cu_free};
    bn_status rc = bn_gpu_pool_new(b->ctx, &a, &pp, &b->pool);
    void **p[] = {(void **)&b->codes, (void **)&b->scales, (void **)&b->y,   (void **)&b->q,
                  (void **)&b->sum,   (void **)&b->inv,    (void **)&b->src, (void **)&b->dst};
    const size_t sz[] = {k * cb, k * rp * 4, 8 * k * rp * 4, 8 * (size_t)w->kpad,
                         8 * 4,  8 * 4,      copy_bytes,     copy_bytes};
    for (size_t i = 0; rc == BN_OK && i < sizeof sz / sizeof sz[0]; i++)
        rc = bn_gpu_pool_alloc(b->pool, sz[i], p[i]);
    float *sc = rc == BN_OK ? bn_calloc(rp, 4) : NULL;
    if (rc != BN_OK || !sc)
        return rc != BN_OK ? rc : bn_ctx_set_error(b->ctx, BN_ERR_NOMEM, "bench: out of memory");
    memcpy(sc, w->scales, (size_t)w->rows * 4);
    int e = 0;
    for (size_t j = 0; !e && j < k; j++) {
        e = bn__cu_h2d(b->codes + j * cb, w->codes, cb);
        if (!e) e = bn__cu_h2d(b->scales + j * rp, sc, rp * 4);
    }
    bn_free(sc);
    if (!e) e = bn__cu_h2d(b->q, b->x.q, (size_t)(8 * w->kpad));
    if (!e) e = bn__cu_h2d(b->sum, b->x.sum, 8 * 4);
    if (!e) e = bn__cu_h2d(b->inv, b->x.inv_scale, 8 * 4);
    if (!e) e = bn__cu_memset(b->src, 1, copy_bytes);
    return e ? fail(b, e, "upload") : BN_OK;
}

/* Milliseconds per call of T tokens' product over rows rows (the first copy: w->rows; all:
 * k * rows_pad), iters calls after a warm-up one. */
static bn_status time_gemv(bench *b, int64_t T, int64_t rows, int iters, double *ms)
{
    const bn_tmat *w = &b->w;
    void *e0 = NULL, *e1 = NULL;
    int e = bn__cu_w2a8(b->codes, b->scales, rows, w->kpad, b->q, b->sum, b->inv, T, b->y, rows, 0);
    if (!e) e = bn__cu_event_now(&e0);
    for (int i = 0; !e && i < iters; i++)
        e = bn__cu_w2a8(b->codes, b->scales, rows, w->kpad, b->q, b->sum, b->inv, T, b->y, rows, 0);
    if (!e) e = bn__cu_event_now(&e1);
    float t = 0.0f;
    if (!e) e = bn__cu_event_ms(e0, e1, &t);
    if (e) return fail(b, e, "GEMV");
    *ms = (double)t / iters;
    return BN_OK;
}

static bn_status time_copy(bench *b, size_t bytes, int iters, double *gbs)
{
    void *e0 = NULL, *e1 = NULL;
    int e = bn__cu_d2d(b->dst, b->src, bytes);
    if (!e) e = bn__cu_event_now(&e0);
    for (int i = 0; !e && i < iters; i++) e = bn__cu_d2d(b->dst, b->src, bytes);
    if (!e) e = bn__cu_event_now(&e1);
    float t = 0.0f;
    if (!e) e = bn__cu_event_ms(e0, e1, &t);
    if (e) return fail(b, e, "copy");
    *gbs = 2.0 * (double)bytes * iters / ((double)t * 1e-3) / 1e9;
    return BN_OK;
}

/* |GPU - reference| over the 8-token product of every copy (padding rows: 0) */
static bn_status check_output(bench *b, double *max_diff)
{
    const int64_t rp = b->w.rows_pad, n = 8 * b->k * rp;
    float *out = bn_malloc((size_t)n * 4);
    if (!out) return bn_ctx_set_error(b->ctx, BN_ERR_NOMEM, "bench: out of memory");
    const int e = bn__cu_d2h(out, b->y, (size_t)n * 4);
    *max_diff = 0.0;
    for (int64_t i = 0; !e && i < n; i++) {
        const int64_t t = i / (b->k * rp), r = i % rp;
        const double want = r < b->w.rows ? (double)b->ref[t * b->w.rows + r] : 0.0;
        const double d = fabs((double)out[i] - want);
        *max_diff = d > *max_diff || isnan(d) ? d : *max_diff;
    }
    bn_free(out);
    return e ? fail(b, e, "download") : BN_OK;
}

bn_status bn_cuda_bench_gemv(bn_ctx *ctx, int device, int64_t rows, int64_t cols, int iters,
                             size_t copy_bytes, bn_cuda_gemv_bench *out)
{
    memset(out, 0, sizeof *out);
    bench b = {.ctx = ctx};
    int n = 0;
    if (bn__cu_device_count(&n) || device < 0 || device >= n || bn__cu_set_device(device))
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "CUDA: no device %d", device);
    if (iters < 1) iters = 1;
    bn_status rc = host_data(&b, rows, cols);
    if (rc == BN_OK) rc = device_data(&b, copy_bytes);
    const int64_t all = b.k * b.w.rows_pad;
    double ms1 = 0, ms_all = 0, ms8 = 0;
    if (rc == BN_OK) rc = time_gemv(&b, 8, all, iters, &ms8);
    if (rc == BN_OK) rc = check_output(&b, &out->max_diff);
    if (rc == BN_OK) rc = time_gemv(&b, 1, all, iters, &ms_all);
    if (rc == BN_OK) rc = time_gemv(&b, 1, rows, iters, &ms1);
    if (rc == BN_OK) rc = time_copy(&b, copy_bytes, iters > 20 ? 20 : iters, &out->copy_gbs);
    if (rc == BN_OK) {
        const double bytes =
                (double)b.k * ((double)(b.w.rows_pad * b.w.row_bytes) + (double)b.w.rows_pad * 8) +
                (double)b.w.kpad;
        out->stack = b.k;
        out->gemv_us = ms1 * 1e3;
        out->gemv_gbs = bytes / (ms_all * 1e-3) / 1e9;
        out->gemm8_us = ms8 * 1e3 / (double)b.k;
    }
    bn_gpu_pool_free(b.pool);
    bn_tmat_release(&b.w);
    bn_qact_release(&b.x);
    bn_free(b.ref);
    return rc;
}
