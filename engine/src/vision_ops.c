/*
 * vision_ops.c - the layer operations of the image classifiers (bitnet/vision.h): ternary
 * convolution through im2col and the ternary GEMM with its scalar reference, ternary linear
 * layers, float convolution, pooling, activations, LayerNorm, attention, squeeze-excitation,
 * and the TQ2_0 row packing of docs/VISION.md.
 */
#include <math.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/types.h"
#include "bitnet/cpu.h"
#include "bitnet/vision.h"
#include "vision_internal.h"

/* Patch rows of one GEMM call stay under this many bytes (several images per call). */
#define TCONV_CHUNK_BYTES ((size_t)32 << 20)

int bn_conv_out(int in, int k, int stride, int pad)
{
    if (stride < 1 || k < 1) return 0;
    const long span = (long)in + 2L * pad - k;
    return span < 0 ? 0 : (int)(span / stride + 1);
}

static int64_t layer_k(const bn_conv_geom *g)
{
    const int groups = g->groups > 0 ? g->groups : 1;
    return (int64_t)(g->cin / groups) * g->kh * g->kw;
}

bn_status bn_tlayer_init(bn_tlayer *l, const bn_conv_geom *g, const int8_t *q, const float *scale,
                         const float *bias)
{
    memset(l, 0, sizeof *l);
    l->g = *g;
    if (l->g.groups < 1) l->g.groups = 1;
    if (g->cout < 1 || g->cin < 1 || g->kh < 1 || g->kw < 1 || g->cin % l->g.groups)
        return BN_ERR_INVALID;
    l->bias = bn_calloc((size_t)g->cout, sizeof(float));
    if (!l->bias) return BN_ERR_NOMEM;
    if (bias) memcpy(l->bias, bias, (size_t)g->cout * sizeof(float));
    const bn_status rc = bn_tmat_from_ternary(&l->w, q, scale, 1.0f, g->cout, layer_k(&l->g));
    if (rc != BN_OK) bn_tlayer_release(l);
    return rc;
}

void bn_tlayer_release(bn_tlayer *l)
{
    if (!l) return;
    bn_tmat_release(&l->w);
    bn_free(l->bias);
    memset(l, 0, sizeof *l);
}

/* ---- im2col and the GEMM path ------------------------------------------------------------ */

/* Bytes after the padded planes that a wide copy of the last run may read (never used). */
#define PAD_SLACK 32

/* A copy of c planes of h x w elements of size es with pad zeros around each. */
static void *pad_planes(const void *x, int c, int h, int w, int pad, size_t es)
{
    const int64_t hp = h + 2 * pad, wp = w + 2 * pad;
    uint8_t *p = bn_calloc((size_t)(c * hp * wp) * es + PAD_SLACK, 1);
    if (!p) return NULL;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = 0; y < h; y++)
            memcpy(p + ((ch * hp + y + pad) * wp + pad) * es,
                   (const uint8_t *)x + ((ch * h + y) * w) * es, (size_t)w * es);
    return p;
}

typedef struct im2col_job {
    const bn_conv_geom *g;
    const uint8_t *xp; /* padded planes */
    int64_t hp, wp, ow, ld;
    size_t es; /* element size: 1 (int8) or 4 (float) */
    uint8_t *rows;
    int32_t *rsum;
} im2col_job;

/* Sum of k int8 values, eight at a time: each byte biased by 128 to unsigned, pairs added into
 * four 16-bit lanes (at most 128 words before they are folded, so no lane overflows). */
static int32_t row_sum_i8(const int8_t *q, int64_t k)
{
    const uint64_t lo = 0x00FF00FF00FF00FFULL;
    int64_t total = 0, i = 0;
    while (i + 8 <= k) {
        uint64_t acc = 0;
        int64_t words = 0;
        for (; words < 128 && i + 8 <= k; words++, i += 8) {
            uint64_t v;
            memcpy(&v, q + i, 8);
            v ^= 0x8080808080808080ULL;
            acc += (v & lo) + ((v >> 8) & lo);
        }
        total += (int64_t)((acc & 0xFFFF) + ((acc >> 16) & 0xFFFF) + ((acc >> 32) & 0xFFFF) +
                           (acc >> 48)) -
                 128 * 8 * words;
    }
    for (; i < k; i++) total += q[i];
    return (int32_t)total;
}

/* Copies a run of n bytes (n <= 32 in the common cases) from src to d: a wide copy of a
 * constant size when it stays inside the row (the next run overwrites the extra bytes; the
 * source has PAD_SLACK bytes after it), else exactly n. */
static inline void copy_run(uint8_t *d, const uint8_t *src, size_t n, const uint8_t *end)
{
    if (n <= 8 && d + 8 <= end)
        memcpy(d, src, 8);
    else if (n <= 16 && d + 16 <= end)
        memcpy(d, src, 16);
    else if (n <= 32 && d + 32 <= end)
        memcpy(d, src, 32);
    else
        memcpy(d, src, n);
}

/* Patch rows of output rows oy0 .. oy1 - 1: runs of kw elements copied from the padded planes. */
static void im2col_range(void *arg, int64_t oy0, int64_t oy1, int tid)
{
    (void)tid;
    const im2col_job *j = arg;
    const bn_conv_geom *g = j->g;
    const int64_t k = (int64_t)g->cin * g->kh * g->kw;
    const size_t run = (size_t)g->kw * j->es;
    for (int64_t oy = oy0; oy < oy1; oy++)
        for (int64_t ox = 0; ox < j->ow; ox++) {
            const int64_t p = oy * j->ow + ox;
            uint8_t *r = j->rows + (size_t)(p * j->ld) * j->es, *d = r;
            const uint8_t *src = j->xp + ((oy * g->stride) * j->wp + ox * g->stride) * j->es;
            const size_t plane = (size_t)(j->hp * j->wp) * j->es, line = (size_t)j->wp * j->es;
            const uint8_t *end = r + (size_t)k * j->es; /* the row's last run ends here */
            for (int64_t c = 0; c < g->cin; c++, src += plane)
                for (int i = 0; i < g->kh; i++, d += run) copy_run(d, src + i * line, run, end);
            memset(d, 0, (size_t)(j->ld - k) * j->es);
            if (j->rsum) j->rsum[p] = row_sum_i8((const int8_t *)r, k);
        }
}

/* Patch rows of one image (es-byte elements), split over the pool by output rows. */
static bn_status im2col(bn_threadpool *pool, const bn_conv_geom *g, const void *x, int h, int w,
                        size_t es, void *rows, int64_t ld, int32_t *rsum)
{
    const int oh = bn_conv_out(h, g->kh, g->stride, g->pad);
    const int ow = bn_conv_out(w, g->kw, g->stride, g->pad);
    uint8_t *xp = pad_planes(x, g->cin, h, w, g->pad, es);
    if (!xp) return BN_ERR_NOMEM;
    im2col_job j = {g, xp, h + 2 * g->pad, w + 2 * g->pad, ow, ld, es, rows, rsum};
    bn_pool_parallel_for(pool, oh, 1, im2col_range, &j);
    bn_free(xp);
    return BN_OK;
}

bn_status bn_im2col_q8(bn_threadpool *pool, const bn_conv_geom *g, const int8_t *xq, int h, int w,
                       int8_t *rows, int64_t ld, int32_t *rsum)
{
    return im2col(pool, g, xq, h, w, 1, rows, ld, rsum);
}

typedef struct tconv_bufs {
    bn_qact qa;
    int8_t *xq;
    float *yt;
} tconv_bufs;

static void tconv_bufs_release(tconv_bufs *b)
{
    bn_qact_release(&b->qa);
    bn_free(b->xq);
    bn_free(b->yt);
}

/* Quantizes image x and writes its patch rows at token t0 of b->qa. */
/* ---- per-image activation quantization over the pool -------------------------------------- */

#define ACTQ_CHUNKS 256 /* at most this many pieces (each at least ACTQ_MIN values) */
#define ACTQ_MIN    16384

typedef struct actq_job {
    const float *x;
    int8_t *q;
    int64_t n, chunk;
    float part[ACTQ_CHUNKS];
    float s;
} actq_job;

/* max |x| of pieces c0 .. c1 - 1 (a NaN never wins, as fmaxf in bn_quantize_act_row) */
static void actq_max(void *arg, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    actq_job *j = arg;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t e = (c + 1) * j->chunk < j->n ? (c + 1) * j->chunk : j->n;
        float m = 0.0f;
        for (int64_t i = c * j->chunk; i < e; i++) {
            const float a = fabsf(j->x[i]);
            m = a > m ? a : m;
        }
        j->part[c] = m;
    }
}

/* q = clamp(rint(x * s), -128, 127), NaN to 0: bn_quantize_act_row's rounding */
static void actq_round(void *arg, int64_t c0, int64_t c1, int tid)
{
    (void)tid;
    const actq_job *j = arg;
    const int64_t e = c1 * j->chunk < j->n ? c1 * j->chunk : j->n;
    for (int64_t i = c0 * j->chunk; i < e; i++) {
        const float r = rintf(j->x[i] * j->s);
        j->q[i] = (int8_t)(isnan(r) ? 0.0f : r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r);
    }
}

/* bn_quantize_act_row of one image, the same bits, split over the pool. */
static float quantize_image(bn_threadpool *pool, const float *x, int64_t n, int8_t *q)
{
    actq_job j = {.x = x, .q = q, .n = n};
    j.chunk = (n + ACTQ_CHUNKS - 1) / ACTQ_CHUNKS;
    if (j.chunk < ACTQ_MIN) j.chunk = ACTQ_MIN;
    const int64_t pieces = (n + j.chunk - 1) / j.chunk;
    bn_pool_parallel_for(pool, pieces, 1, actq_max, &j);
    float m = 0.0f;
    for (int64_t c = 0; c < pieces; c++) m = j.part[c] > m ? j.part[c] : m;
    j.s = 127.0f / (m > 1e-5f ? m : 1e-5f);
    bn_pool_parallel_for(pool, pieces, 1, actq_round, &j);
    return j.s;
}

static bn_status tconv_fill(bn_threadpool *pool, const bn_tlayer *l, const float *x, int h, int w,
                            tconv_bufs *b, int64_t t0, int64_t p, bn_vision_timing *t)
{
    const double t_a = bn_time_now();
    const float s = quantize_image(pool, x, (int64_t)l->g.cin * h * w, b->xq);
    const double t_b = bn_time_now();
    const bn_status rc = bn_im2col_q8(pool, &l->g, b->xq, h, w, b->qa.q + t0 * b->qa.kpad,
                                      b->qa.kpad, b->qa.sum + t0);
    const float inv = 1.0f / s;
    for (int64_t i = 0; i < p; i++) b->qa.inv_scale[t0 + i] = inv;
    if (t) {
        t->quant_s += t_b - t_a;
        t->im2col_s += bn_time_now() - t_b;
    }
    return rc;
}

typedef struct tconv_out_job {
    const bn_tlayer *l;
    const float *yt; /* images x p x cout (the GEMM's rows) */
    float *y;        /* images x cout x p */
    int64_t p;
} tconv_out_job;

/* Output planes r0 .. r1 - 1 (image * cout + channel): transposed, plus the bias. */
static void tconv_out(void *arg, int64_t r0, int64_t r1, int tid)
{
    (void)tid;
    const tconv_out_job *j = arg;
    const int64_t cout = j->l->g.cout;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t img = r / cout, c = r % cout;
        const float *yi = j->yt + img * j->p * cout + c;
        float *yo = j->y + r * j->p;
        for (int64_t q = 0; q < j->p; q++) yo[q] = yi[q * cout] + j->l->bias[c];
    }
}

bn_status bn_tconv2d(bn_threadpool *pool, const bn_kernels *k, const bn_tlayer *l, const float *x,
                     int n, int h, int w, float *y, bn_vision_timing *t)
{
    BN_ASSERT(l->g.groups == 1);
    const int oh = bn_conv_out(h, l->g.kh, l->g.stride, l->g.pad);
    const int ow = bn_conv_out(w, l->g.kw, l->g.stride, l->g.pad);
    if (oh < 1 || ow < 1 || n < 1) return BN_ERR_INVALID;
    const int64_t p = (int64_t)oh * ow, in_sz = (int64_t)l->g.cin * h * w;
    const int64_t row_bytes = l->w.kpad > 0 ? l->w.kpad : 1;
    int64_t per = (int64_t)(TCONV_CHUNK_BYTES / (size_t)(p * row_bytes));
    if (per < 1) per = 1;
    if (per > n) per = n;
    tconv_bufs b = {0};
    bn_status rc = bn_qact_init(&b.qa, per * p, l->w.cols);
    if (rc != BN_OK) return rc;
    b.xq = bn_malloc((size_t)in_sz);
    b.yt = bn_malloc((size_t)(per * p * l->g.cout) * sizeof(float));
    if (!b.xq || !b.yt) {
        tconv_bufs_release(&b);
        return BN_ERR_NOMEM;
    }
    for (int i0 = 0; i0 < n; i0 += (int)per) {
        const int cnt = (int)(n - i0 < per ? n - i0 : per);
        for (int i = 0; i < cnt && rc == BN_OK; i++)
            rc = tconv_fill(pool, l, x + (int64_t)(i0 + i) * in_sz, h, w, &b, i * p, p, t);
        if (rc != BN_OK) break;
        b.qa.n_tok = cnt * p;
        const double t_a = bn_time_now();
        bn_tmatmul(pool, k, &l->w, &b.qa, b.yt);
        const double t_b = bn_time_now();
        tconv_out_job oj = {l, b.yt, y + (int64_t)i0 * l->g.cout * p, p};
        bn_pool_parallel_for(pool, (int64_t)cnt * l->g.cout, 8, tconv_out, &oj);
        if (t) {
            t->gemm_s += t_b - t_a;
            t->out_s += bn_time_now() - t_b;
        }
    }
    tconv_bufs_release(&b);
    return rc;
}

/* ---- scalar references ---------------------------------------------------------------- */

static int8_t *codes_of(const bn_tlayer *l)
{
    int8_t *q = bn_malloc((size_t)(l->w.rows * l->w.cols));
    if (!q) return NULL;
    for (int64_t r = 0; r < l->w.rows; r++)
        for (int64_t c = 0; c < l->w.cols; c++)
            q[r * l->w.cols + c] = (int8_t)bn_tmat_get(&l->w, r, c);
    return q;
}

/* One output plane of channel c of a quantized image. */
static void tconv_plane_ref(const bn_tlayer *l, const int8_t *wq, const int8_t *xq, int h, int w,
                            int c, float inv, float *yo)
{
    const bn_conv_geom *g = &l->g;
    const int oh = bn_conv_out(h, g->kh, g->stride, g->pad);
    const int ow = bn_conv_out(w, g->kw, g->stride, g->pad);
    const int cpg = g->cin / g->groups, c0 = (c / (g->cout / g->groups)) * cpg;
    const int8_t *wr = wq + (int64_t)c * l->w.cols;
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            int32_t acc = 0;
            for (int ci = 0; ci < cpg; ci++)
                for (int i = 0; i < g->kh; i++) {
                    const int iy = oy * g->stride - g->pad + i;
                    if (iy < 0 || iy >= h) continue;
                    for (int j = 0; j < g->kw; j++) {
                        const int ix = ox * g->stride - g->pad + j;
                        if (ix < 0 || ix >= w) continue;
                        acc += (int32_t)wr[((int64_t)ci * g->kh + i) * g->kw + j] *
                               (int32_t)xq[((int64_t)(c0 + ci) * h + iy) * w + ix];
                    }
                }
            yo[(int64_t)oy * ow + ox] = (float)acc * (l->w.scales[c] * inv) + l->bias[c];
        }
    }
}

bn_status bn_tconv2d_ref(const bn_tlayer *l, const float *x, int n, int h, int w, float *y)
{
    const int oh = bn_conv_out(h, l->g.kh, l->g.stride, l->g.pad);
    const int ow = bn_conv_out(w, l->g.kw, l->g.stride, l->g.pad);
    if (oh < 1 || ow < 1 || n < 1) return BN_ERR_INVALID;
    const int64_t in_sz = (int64_t)l->g.cin * h * w, p = (int64_t)oh * ow;
    int8_t *wq = codes_of(l), *xq = bn_malloc((size_t)in_sz);
    if (!wq || !xq) {
        bn_free(wq);
        bn_free(xq);
        return BN_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        const float inv = 1.0f / bn_quantize_act_row(x + i * in_sz, in_sz, xq);
        for (int c = 0; c < l->g.cout; c++)
            tconv_plane_ref(l, wq, xq, h, w, c, inv, y + ((int64_t)i * l->g.cout + c) * p);
    }
    bn_free(wq);
    bn_free(xq);
    return BN_OK;
}

typedef struct dw_job {
    const bn_tlayer *l;
    const int8_t *wq, *xq; /* codes (cout x k * k); one quantized image */
    int h, w, oh, ow;
    float inv;
    int32_t *acc; /* oh * ow per thread */
    float *y;     /* the image's output planes */
} dw_job;

/* Channels c0 .. c1 - 1: for each nonzero tap, the shifted input rows added or subtracted
 * over the valid output columns (exact int32), then the reference's float formula. */
static void dw_range(void *arg, int64_t c0, int64_t c1, int tid)
{
    const dw_job *j = arg;
    const bn_conv_geom *g = &j->l->g;
    const int64_t p = (int64_t)j->oh * j->ow;
    int32_t *acc = j->acc + tid * p;
    for (int64_t c = c0; c < c1; c++) {
        memset(acc, 0, (size_t)p * sizeof *acc);
        const int8_t *plane = j->xq + c * j->h * j->w;
        for (int i = 0; i < g->kh; i++)
            for (int t = 0; t < g->kw; t++) {
                const int wv = j->wq[(c * g->kh + i) * g->kw + t];
                if (!wv) continue;
                /* ox with 0 <= ox * stride - pad + t < w */
                int x0 = 0, x1 = j->ow;
                while (x0 < x1 && x0 * g->stride - g->pad + t < 0) x0++;
                while (x1 > x0 && (x1 - 1) * g->stride - g->pad + t >= j->w) x1--;
                for (int oy = 0; oy < j->oh; oy++) {
                    const int iy = oy * g->stride - g->pad + i;
                    if (iy < 0 || iy >= j->h) continue;
                    const int8_t *xr = plane + (int64_t)iy * j->w;
                    const int off = t - g->pad;
                    int32_t *ar = acc + (int64_t)oy * j->ow;
                    for (int ox = x0; ox < x1; ox++) ar[ox] += wv * xr[ox * g->stride + off];
                }
            }
        const float sc = j->l->w.scales[c] * j->inv, b = j->l->bias[c];
        float *yo = j->y + c * p;
        for (int64_t q = 0; q < p; q++) yo[q] = (float)acc[q] * sc + b;
    }
}

bn_status bn_tconv2d_dw(bn_threadpool *pool, const bn_tlayer *l, const float *x, int n, int h,
                        int w, float *y)
{
    if (l->g.groups != l->g.cin || l->g.cin != l->g.cout) return BN_ERR_INVALID;
    const int oh = bn_conv_out(h, l->g.kh, l->g.stride, l->g.pad);
    const int ow = bn_conv_out(w, l->g.kw, l->g.stride, l->g.pad);
    if (oh < 1 || ow < 1 || n < 1) return BN_ERR_INVALID;
    const int64_t in_sz = (int64_t)l->g.cin * h * w, p = (int64_t)oh * ow;
    const int nth = pool ? bn_pool_size(pool) : 1;
    int8_t *wq = codes_of(l), *xq = bn_malloc((size_t)in_sz);
    int32_t *acc = bn_malloc((size_t)(nth * p) * sizeof *acc);
    bn_status rc = wq && xq && acc ? BN_OK : BN_ERR_NOMEM;
    for (int i = 0; i < n && rc == BN_OK; i++) {
        dw_job j = {l, wq, xq, h, w, oh, ow, 0.0f, acc, y + (int64_t)i * l->g.cout * p};
        j.inv = 1.0f / quantize_image(pool, x + i * in_sz, in_sz, xq);
        bn_pool_parallel_for(pool, l->g.cout, 1, dw_range, &j);
    }
    bn_free(wq);
    bn_free(xq);
    bn_free(acc);
    return rc;
}

bn_status bn_tlinear(bn_threadpool *pool, const bn_kernels *k, const bn_tlayer *l, const float *x,
                     int64_t n_tok, float *y)
{
    if (n_tok < 1) return BN_ERR_INVALID;
    bn_qact qa;
    const bn_status rc = bn_qact_init(&qa, n_tok, l->w.cols);
    if (rc != BN_OK) return rc;
    bn_qact_quantize(&qa, x, n_tok);
    bn_tmatmul(pool, k, &l->w, &qa, y);
    bn_qact_release(&qa);
    for (int64_t t = 0; t < n_tok; t++) bn_add(y + t * l->g.cout, l->bias, l->g.cout);
    return BN_OK;
}

bn_status bn_tlinear_ref(const bn_tlayer *l, const float *x, int64_t n_tok, float *y)
{
    const int64_t kk = l->w.cols;
    int8_t *wq = codes_of(l), *xq = bn_malloc((size_t)kk);
    if (!wq || !xq) {
        bn_free(wq);
        bn_free(xq);
        return BN_ERR_NOMEM;
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const float inv = 1.0f / bn_quantize_act_row(x + t * kk, kk, xq);
        for (int c = 0; c < l->g.cout; c++) {
            int32_t acc = 0;
            for (int64_t j = 0; j < kk; j++) acc += (int32_t)wq[c * kk + j] * (int32_t)xq[j];
            y[t * l->g.cout + c] = (float)acc * (l->w.scales[c] * inv) + l->bias[c];
        }
    }
    bn_free(wq);
    bn_free(xq);
    return BN_OK;
}

/* ---- float layers -------------------------------------------------------------------------- */

/* Adds weight v times input plane xp (shifted by kernel tap i, j) into output plane yo. */
static void conv_tap(const bn_conv_geom *g, float v, const float *xp, int h, int w, int i, int j,
                     int oh, int ow, float *yo)
{
    for (int oy = 0; oy < oh; oy++) {
        const int iy = oy * g->stride - g->pad + i;
        if (iy < 0 || iy >= h) continue;
        const float *xr = xp + (int64_t)iy * w;
        float *yr = yo + (int64_t)oy * ow;
        for (int ox = 0; ox < ow; ox++) {
            const int ix = ox * g->stride - g->pad + j;
            if (ix >= 0 && ix < w) yr[ox] += v * xr[ix];
        }
    }
}

/* Depthwise (or grouped) float conv of one image, tap by tap. */
static void conv_grouped(const bn_conv_geom *g, const float *wt, const float *bias, const float *xi,
                         int h, int w, float *yi)
{
    const int oh = bn_conv_out(h, g->kh, g->stride, g->pad);
    const int ow = bn_conv_out(w, g->kw, g->stride, g->pad);
    const int cpg = g->cin / g->groups, opg = g->cout / g->groups;
    const int64_t p = (int64_t)oh * ow;
    for (int c = 0; c < g->cout; c++) {
        float *yo = yi + c * p;
        for (int64_t q = 0; q < p; q++) yo[q] = bias ? bias[c] : 0.0f;
        const int c0 = (c / opg) * cpg;
        for (int ci = 0; ci < cpg; ci++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++)
                    conv_tap(g, wt[(((int64_t)c * cpg + ci) * g->kh + i) * g->kw + j],
                             xi + (int64_t)(c0 + ci) * h * w, h, w, i, j, oh, ow, yo);
    }
}

typedef struct fconv_job {
    const bn_conv_geom *g;
    const float *wt, *bias, *col;
    int64_t k, p;
    float *y;
    const bn_kernels *kr;
    const float *wtb; /* AVX2 path: the weights as 16-channel blocks, K x 16 each (or NULL) */
} fconv_job;

/* Output pixels q0 .. q1 - 1 of every channel: dot products of the weights with the patch rows. */
static void fconv_range(void *arg, int64_t q0, int64_t q1, int tid)
{
    (void)tid;
    const fconv_job *j = arg;
    for (int64_t q = q0; q < q1; q++)
        for (int c = 0; c < j->g->cout; c++)
            j->y[c * j->p + q] = j->kr->dot_f32(j->wt + c * j->k, j->col + q * j->k, j->k) +
                                 (j->bias ? j->bias[c] : 0.0f);
}

#if defined(__x86_64__) || defined(__i386__)
/* Blocks of 4 pixels (q0, q1 multiples of 4 but the last) x 16 channels in registers. */
static void fconv_range_avx2(void *arg, int64_t q0, int64_t q1, int tid)
{
    (void)tid;
    const fconv_job *j = arg;
    float out[64];
    for (int64_t q = q0; q < q1; q += 4) {
        const float *rows[4];
        for (int r = 0; r < 4; r++) rows[r] = j->col + (q + r < q1 ? q + r : q) * j->k;
        for (int cb = 0; cb * 16 < j->g->cout; cb++) {
            bn__vision_fblock_avx2(rows, j->wtb + cb * 16 * j->k, j->k, out);
            for (int r = 0; r < 4 && q + r < q1; r++)
                for (int c = cb * 16; c < cb * 16 + 16 && c < j->g->cout; c++)
                    j->y[c * j->p + q + r] =
                            out[r * 16 + c - cb * 16] + (j->bias ? j->bias[c] : 0.0f);
        }
    }
}

/* The weights (cout x k) as 16-channel blocks of k x 16, zero padded; NULL when the CPU (or
 * BN_NO_SIMD) rules the AVX2 path out, or out of memory (the plain path then runs). */
static float *fconv_blocks(const float *wt, int cout, int64_t k)
{
    const bn_cpu_info *cpu = bn_cpu_info_get();
    if (!cpu->avx2 || !cpu->fma || !strcmp(bn_kernels_get()->name, "ref")) return NULL;
    const int nb = (cout + 15) / 16;
    float *b = bn_calloc((size_t)(nb * 16 * k), sizeof(float));
    for (int c = 0; b && c < cout; c++)
        for (int64_t i = 0; i < k; i++)
            b[((int64_t)(c / 16) * k + i) * 16 + c % 16] = wt[c * k + i];
    return b;
}
#else
static void fconv_range_avx2(void *arg, int64_t q0, int64_t q1, int tid)
{
    fconv_range(arg, q0, q1, tid);
}
static float *fconv_blocks(const float *wt, int cout, int64_t k)
{
    (void)wt, (void)cout, (void)k;
    return NULL;
}
#endif

bn_status bn_conv2d_f32(bn_threadpool *pool, const bn_conv_geom *g, const float *wt,
                        const float *bias, const float *scale, const float *shift, const float *x,
                        int n, int h, int w, float *y)
{
    const int oh = bn_conv_out(h, g->kh, g->stride, g->pad);
    const int ow = bn_conv_out(w, g->kw, g->stride, g->pad);
    const int64_t p = (int64_t)oh * ow, k = (int64_t)g->cin * g->kh * g->kw;
    const int grouped = g->groups > 1;
    float *col = grouped ? NULL : bn_malloc((size_t)(p * k) * sizeof(float));
    float *wtb = grouped ? NULL : fconv_blocks(wt, g->cout, k);
    if (!grouped && !col) {
        bn_free(wtb);
        return BN_ERR_NOMEM;
    }
    bn_status rc = BN_OK;
    for (int im = 0; im < n && rc == BN_OK; im++) {
        const float *xi = x + (int64_t)im * g->cin * h * w;
        float *yi = y + (int64_t)im * g->cout * p;
        if (grouped) {
            conv_grouped(g, wt, bias, xi, h, w, yi);
        } else if ((rc = im2col(pool, g, xi, h, w, sizeof(float), col, k, NULL)) == BN_OK) {
            fconv_job j = {g, wt, bias, col, k, p, yi, bn_kernels_get(), wtb};
            bn_pool_parallel_for(pool, p, 64, wtb ? fconv_range_avx2 : fconv_range, &j);
        }
        for (int c = 0; scale && c < g->cout; c++)
            for (int64_t q = 0; q < p; q++)
                yi[c * p + q] = yi[c * p + q] * scale[c] + (shift ? shift[c] : 0.0f);
    }
    bn_free(col);
    bn_free(wtb);
    return rc;
}

void bn_linear_f32(const float *wt, const float *b, int64_t in, int64_t out, const float *x,
                   int64_t n_tok, float *y)
{
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t o = 0; o < out; o++) {
            float acc = b ? b[o] : 0.0f;
            const float *wr = wt + o * in, *xr = x + t * in;
            for (int64_t i = 0; i < in; i++) acc += wr[i] * xr[i];
            y[t * out + o] = acc;
        }
}

/* ---- pooling and element-wise -------------------------------------------------------------- */

static void pool2d(const float *x, int n, int c, int h, int w, int k, int stride, int pad, float *y,
                   int is_max)
{
    const int oh = bn_conv_out(h, k, stride, pad), ow = bn_conv_out(w, k, stride, pad);
    for (int64_t pl = 0; pl < (int64_t)n * c; pl++) {
        const float *xp = x + pl * h * w;
        float *yp = y + pl * oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            /* the window's rows inside the image: iy0 + ilo .. iy0 + ihi - 1 */
            const int iy0 = oy * stride - pad, ilo = iy0 < 0 ? -iy0 : 0;
            const int ihi = h - iy0 < k ? h - iy0 : k;
            for (int ox = 0; ox < ow; ox++) {
                const int ix0 = ox * stride - pad, jlo = ix0 < 0 ? -ix0 : 0;
                const int jhi = w - ix0 < k ? w - ix0 : k;
                float acc = is_max ? -INFINITY : 0.0f;
                for (int i = ilo; i < ihi; i++) {
                    const float *row = xp + (int64_t)(iy0 + i) * w;
                    for (int j = jlo; j < jhi; j++) {
                        const float v = row[ix0 + j];
                        if (is_max)
                            acc = v > acc || isnan(v) ? v : acc;
                        else
                            acc += v;
                    }
                }
                yp[(int64_t)oy * ow + ox] = is_max ? acc : acc / (float)(k * k);
            }
        }
    }
}

void bn_maxpool2d(const float *x, int n, int c, int h, int w, int k, int stride, int pad, float *y)
{
    pool2d(x, n, c, h, w, k, stride, pad, y, 1);
}

void bn_avgpool2d(const float *x, int n, int c, int h, int w, int k, int stride, int pad, float *y)
{
    pool2d(x, n, c, h, w, k, stride, pad, y, 0);
}

void bn_global_avgpool(const float *x, int n, int c, int hw, float *y)
{
    for (int64_t pl = 0; pl < (int64_t)n * c; pl++) {
        double acc = 0.0;
        for (int i = 0; i < hw; i++) acc += x[pl * hw + i];
        y[pl] = (float)(acc / hw);
    }
}

void bn_relu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void bn_silu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void bn_gelu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void bn_add(float *x, const float *r, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] += r[i];
}

void bn_layernorm(const float *x, const float *wt, const float *b, int64_t rows, int64_t d,
                  float eps, float *y)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < d; i++) mean += xr[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++) var += (xr[i] - mean) * (xr[i] - mean);
        const float inv = (float)(1.0 / sqrt(var / (double)d + eps));
        for (int64_t i = 0; i < d; i++) {
            const float v = (float)(xr[i] - mean) * inv;
            y[r * d + i] = v * (wt ? wt[i] : 1.0f) + (b ? b[i] : 0.0f);
        }
    }
}

void bn_squeeze_excite(float *x, int n, int c, int hw, const float *w1, const float *b1,
                       const float *w2, const float *b2, int cr, float *scratch)
{
    float *m = scratch, *z = scratch + c;
    for (int im = 0; im < n; im++) {
        float *xi = x + (int64_t)im * c * hw;
        bn_global_avgpool(xi, 1, c, hw, m);
        bn_linear_f32(w1, b1, c, cr, m, 1, z);
        bn_silu(z, cr);
        bn_linear_f32(w2, b2, cr, c, z, 1, m);
        for (int ch = 0; ch < c; ch++) {
            const float s = 1.0f / (1.0f + expf(-m[ch]));
            for (int i = 0; i < hw; i++) xi[(int64_t)ch * hw + i] *= s;
        }
    }
}

typedef struct mhsa_job {
    const float *qkv;
    int64_t n_tok;
    int d, heads;
    float *out, *scratch; /* scratch: n_tok floats per (image, head) unit */
    const bn_kernels *k;
} mhsa_job;

/* Attention of units u0 .. u1 - 1 (unit = image * heads + head; the images' tokens follow
 * each other in qkv and out). */
static void mhsa_range(void *arg, int64_t u0, int64_t u1, int tid)
{
    (void)tid;
    const mhsa_job *j = arg;
    const int hd = j->d / j->heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t ld = 3 * (int64_t)j->d, t = j->n_tok;
    for (int64_t u = u0; u < u1; u++) {
        const int64_t img = u / j->heads, hh = u % j->heads;
        const float *base = j->qkv + img * t * ld;
        float *sc = j->scratch + u * t;
        for (int64_t q = 0; q < t; q++) {
            const float *qr = base + q * ld + hh * hd;
            float mx = -INFINITY, sum = 0.0f;
            for (int64_t v = 0; v < t; v++) {
                sc[v] = j->k->dot_f32(qr, base + v * ld + j->d + hh * hd, hd) * scale;
                mx = sc[v] > mx ? sc[v] : mx;
            }
            for (int64_t v = 0; v < t; v++) sum += sc[v] = expf(sc[v] - mx);
            float *o = j->out + (img * t + q) * j->d + hh * hd;
            for (int i = 0; i < hd; i++) o[i] = 0.0f;
            for (int64_t v = 0; v < t; v++) {
                const float pw = sc[v] / sum, *vr = base + v * ld + 2 * j->d + hh * hd;
                for (int i = 0; i < hd; i++) o[i] += pw * vr[i];
            }
        }
    }
}

bn_status bn_mhsa(bn_threadpool *pool, const float *qkv, int n_img, int64_t n_tok, int d, int heads,
                  float *out)
{
    mhsa_job j = {qkv, n_tok, d, heads, out, NULL, bn_kernels_get()};
    j.scratch = bn_malloc((size_t)((int64_t)n_img * heads * n_tok) * sizeof(float));
    if (!j.scratch) return BN_ERR_NOMEM;
    bn_pool_parallel_for(pool, (int64_t)n_img * heads, 1, mhsa_range, &j);
    bn_free(j.scratch);
    return BN_OK;
}

/* ---- TQ2_0 rows ------------------------------------------------------------------------- */

int64_t bn_vision_kpad(int64_t k)
{
    return (k + BN_QK_TQ - 1) / BN_QK_TQ * BN_QK_TQ;
}

size_t bn_tq2_rows_bytes(int64_t rows, int64_t k)
{
    size_t blocks, bytes;
    if (rows < 0 || k < 0 ||
        bn_mul_size((size_t)rows, (size_t)(bn_vision_kpad(k) / BN_QK_TQ), &blocks) ||
        bn_mul_size(blocks, BN_TQ2_0_BLOCK_BYTES, &bytes))
        return 0;
    return bytes;
}

void bn_tq2_rows_pack(const int8_t *q, int64_t rows, int64_t k, uint8_t *out)
{
    const int64_t nb = bn_vision_kpad(k) / BN_QK_TQ;
    int8_t blk[BN_QK_TQ];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            for (int i = 0; i < BN_QK_TQ; i++) {
                const int64_t col = b * BN_QK_TQ + i;
                blk[i] = col < k ? q[r * k + col] : 0;
            }
            bn_pack_tq2_0(blk, 1.0f, BN_QK_TQ, out + (r * nb + b) * BN_TQ2_0_BLOCK_BYTES);
        }
}
