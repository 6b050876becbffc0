/*
 * vision_forward.c - the batched forward passes of the ResNet and ViT classifiers
 * (bitnet/vision.h): n images in, n rows of logits out. Activations are NCHW for the
 * convolutions and n * T token rows for the transformer.
 */
#include <math.h>
#include <string.h>

#include "bitnet/vision.h"
#include "vision_internal.h"

typedef struct fwd {
    bn_ctx *ctx;
    bn_threadpool *pool;
    int ref;
    bn_vision_timing *t;
} fwd;

/* n x per floats, with checked size arithmetic. */
static float *falloc(const fwd *f, int64_t n, int64_t per)
{
    size_t e, bytes;
    if (n < 0 || per < 0 || bn_mul_size((size_t)n, (size_t)per, &e) ||
        bn_mul_size(e, sizeof(float), &bytes)) {
        bn_ctx_set_error(f->ctx, BN_ERR_OVERFLOW, "vision: activation size overflows");
        return NULL;
    }
    float *p = bn_malloc(bytes);
    if (!p)
        bn_ctx_set_error(f->ctx, BN_ERR_NOMEM, "vision: out of memory for %zu bytes of activations",
                         bytes);
    return p;
}

/* *y = l(x) for n images of l->g.cin x *h x *w (groups 1 or depthwise); *h, *w become the
 * output's. */
static bn_status tconv(const fwd *f, const bn_tlayer *l, const float *x, int n, int *h, int *w,
                       float **y)
{
    const int oh = bn_conv_out(*h, l->g.kh, l->g.stride, l->g.pad);
    const int ow = bn_conv_out(*w, l->g.kw, l->g.stride, l->g.pad);
    if (oh < 1 || ow < 1)
        return bn_ctx_set_error(f->ctx, BN_ERR_RANGE, "vision: a %dx%d input is too small", *h, *w);
    if (!(*y = falloc(f, n, (int64_t)l->g.cout * oh * ow))) return bn_ctx_status(f->ctx);
    const bn_status rc = f->ref            ? bn_tconv2d_ref(l, x, n, *h, *w, *y)
                         : l->g.groups > 1 ? bn_tconv2d_dw(f->pool, l, x, n, *h, *w, *y)
                                           : bn_tconv2d(f->pool, NULL, l, x, n, *h, *w, *y, f->t);
    if (rc != BN_OK) {
        bn_free(*y);
        *y = NULL;
        return bn_ctx_set_error(f->ctx, rc, "vision: conv: %s", bn_status_str(rc));
    }
    *h = oh;
    *w = ow;
    return BN_OK;
}

static bn_status tlin(const fwd *f, const bn_tlayer *l, const float *x, int64_t n_tok, float **y)
{
    if (!(*y = falloc(f, n_tok, l->g.cout))) return bn_ctx_status(f->ctx);
    const bn_status rc =
            f->ref ? bn_tlinear_ref(l, x, n_tok, *y) : bn_tlinear(f->pool, NULL, l, x, n_tok, *y);
    if (rc != BN_OK) {
        bn_free(*y);
        *y = NULL;
        return bn_ctx_set_error(f->ctx, rc, "vision: linear: %s", bn_status_str(rc));
    }
    return BN_OK;
}

/* Global average pool of n x c planes of hw, then the float classifier into logits. */
static bn_status pool_classify(const fwd *f, const bn_vmodel *m, const float *x, int n, int c,
                               int hw, float *logits)
{
    float *feat = falloc(f, n, c);
    if (!feat) return bn_ctx_status(f->ctx);
    bn_global_avgpool(x, n, c, hw, feat);
    bn_linear_f32(m->fc_w, m->fc_b, c, m->info.num_classes, feat, n, logits);
    bn_free(feat);
    return BN_OK;
}

/* ---- element-wise work over the pool --------------------------------------------------- */

enum { EW_RELU, EW_SILU, EW_GELU, EW_ADD, EW_LAYERNORM };

typedef struct ew_job {
    int op;
    float *x;
    const float *r;      /* EW_ADD: x += r; EW_LAYERNORM: the input rows */
    const float *wt, *b; /* EW_LAYERNORM */
    int64_t d;           /* EW_LAYERNORM: row width (x: the output rows) */
    float eps;
} ew_job;

static void ew_range(void *arg, int64_t i0, int64_t i1, int tid)
{
    (void)tid;
    const ew_job *j = arg;
    float *x = j->x + i0 * (j->op == EW_LAYERNORM ? j->d : 1);
    const int64_t n = i1 - i0;
    switch (j->op) {
    case EW_RELU:
        bn_relu(x, n);
        break;
    case EW_SILU:
        bn_silu(x, n);
        break;
    case EW_GELU:
        bn_gelu(x, n);
        break;
    case EW_ADD:
        bn_add(x, j->r + i0, n);
        break;
    default:
        bn_layernorm(j->r + i0 * j->d, j->wt, j->b, n, j->d, j->eps, x);
        break;
    }
}

/* op on n elements of x (r: the addend), split over the pool in pieces of at least 16k. */
static void ew(const fwd *f, int op, float *x, const float *r, int64_t n)
{
    ew_job j = {op, x, r, NULL, NULL, 0, 0.0f};
    bn_pool_parallel_for(n >= 32768 ? f->pool : NULL, n, 16384, ew_range, &j);
}

/* LayerNorm of rows x d (in) into out, rows split over the pool. */
static void layernorm(const fwd *f, const float *in, const float *wt, const float *b, int64_t rows,
                      int64_t d, float eps, float *out)
{
    ew_job j = {EW_LAYERNORM, out, in, wt, b, d, eps};
    bn_pool_parallel_for(rows * d >= 32768 ? f->pool : NULL, rows, 16, ew_range, &j);
}

typedef struct maxpool_job {
    const float *x;
    float *y;
    int h, w;
    int64_t out_plane;
} maxpool_job;

/* The stem's 3x3 stride-2 max pool of planes p0 .. p1 - 1. */
static void maxpool_range(void *arg, int64_t p0, int64_t p1, int tid)
{
    (void)tid;
    const maxpool_job *j = arg;
    bn_maxpool2d(j->x + p0 * j->h * j->w, 1, (int)(p1 - p0), j->h, j->w, 3, 2, 1,
                 j->y + p0 * j->out_plane);
}

/* ---- ResNet ------------------------------------------------------------------------------- */

/* One residual block: x (n x cin x h x w) is replaced by the block's output. */
static bn_status rn_block_fwd(const fwd *f, const rn_block *b, float **x, int n, int *h, int *w)
{
    float *a = NULL, *c = NULL, *d = NULL, *id = NULL;
    int ha = *h, wa = *w, hd = *h, wd = *w;
    bn_status rc = tconv(f, &b->c1, *x, n, &ha, &wa, &a);
    if (rc != BN_OK) goto done;
    ew(f, EW_RELU, a, NULL, (int64_t)n * b->c1.g.cout * ha * wa);
    if ((rc = tconv(f, &b->c2, a, n, &ha, &wa, &c)) != BN_OK) goto done;
    int64_t sz = (int64_t)n * b->c2.g.cout * ha * wa;
    if (b->has_c3) {
        ew(f, EW_RELU, c, NULL, sz);
        bn_free(a);
        a = c;
        c = NULL;
        if ((rc = tconv(f, &b->c3, a, n, &ha, &wa, &c)) != BN_OK) goto done;
        sz = (int64_t)n * b->c3.g.cout * ha * wa;
    }
    if (b->has_down) {
        if ((rc = tconv(f, &b->down, *x, n, &hd, &wd, &d)) != BN_OK) goto done;
        id = d;
    } else {
        id = *x;
    }
    ew(f, EW_ADD, c, id, sz);
    ew(f, EW_RELU, c, NULL, sz);
    bn_free(*x);
    *x = c;
    c = NULL;
    *h = ha;
    *w = wa;
done:
    bn_free(a);
    bn_free(c);
    bn_free(d);
    return rc;
}

static bn_status resnet_fwd(const fwd *f, const bn_vmodel *m, const float *img, int n,
                            float *logits)
{
    const int s = m->info.image_size, c0 = m->widths[0];
    const bn_conv_geom gs = {m->info.in_chans, c0, m->stem_k, m->stem_k, m->stem_s,
                             m->stem_k / 2,    1};
    int h = bn_conv_out(s, m->stem_k, m->stem_s, m->stem_k / 2), w = h;
    if (h < 1) return bn_ctx_set_error(f->ctx, BN_ERR_RANGE, "vision: the image is too small");
    float *x = falloc(f, n, (int64_t)c0 * h * w), *p;
    if (!x) return bn_ctx_status(f->ctx);
    if (bn_conv2d_f32(f->pool, &gs, m->stem_w, NULL, m->stem_scale, m->stem_bias, img, n, s, s,
                      x) != BN_OK) {
        bn_free(x);
        return bn_ctx_set_error(f->ctx, BN_ERR_NOMEM, "vision: out of memory (stem)");
    }
    ew(f, EW_RELU, x, NULL, (int64_t)n * c0 * h * w);
    if (m->stem_pool) {
        const int ph = bn_conv_out(h, 3, 2, 1), pw = bn_conv_out(w, 3, 2, 1);
        if (!(p = falloc(f, n, (int64_t)c0 * ph * pw))) {
            bn_free(x);
            return bn_ctx_status(f->ctx);
        }
        maxpool_job j = {x, p, h, w, ph * pw};
        bn_pool_parallel_for(f->pool, (int64_t)n * c0, 4, maxpool_range, &j);
        bn_free(x);
        x = p;
        h = ph;
        w = pw;
    }
    bn_status rc = BN_OK;
    for (int b = 0; b < m->n_blocks && rc == BN_OK; b++)
        rc = rn_block_fwd(f, &m->blk[b], &x, n, &h, &w);
    if (rc == BN_OK) rc = pool_classify(f, m, x, n, m->feat, h * w, logits);
    bn_free(x);
    return rc;
}

/* ---- ViT ------------------------------------------------------------------------------- */

/* The tokens of n images (n * T rows of D): class token and patches, plus positions. */
static bn_status vit_embed(const fwd *f, const bn_vmodel *m, const float *img, int n, float *x)
{
    const int d = m->d, np = m->grid * m->grid, t = np + 1;
    const bn_conv_geom gp = {m->info.in_chans, d, m->patch, m->patch, m->patch, 0, 1};
    float *pc = falloc(f, n, (int64_t)d * np);
    if (!pc) return bn_ctx_status(f->ctx);
    if (bn_conv2d_f32(f->pool, &gp, m->patch_w, m->patch_b, NULL, NULL, img, n, m->info.image_size,
                      m->info.image_size, pc) != BN_OK) {
        bn_free(pc);
        return bn_ctx_set_error(f->ctx, BN_ERR_NOMEM, "vision: out of memory (patches)");
    }
    for (int i = 0; i < n; i++) {
        float *xi = x + (int64_t)i * t * d;
        for (int k = 0; k < d; k++) xi[k] = m->cls[k] + m->pos[k];
        for (int p = 0; p < np; p++)
            for (int k = 0; k < d; k++)
                xi[(int64_t)(1 + p) * d + k] =
                        pc[((int64_t)i * d + k) * np + p] + m->pos[(int64_t)(1 + p) * d + k];
    }
    bn_free(pc);
    return BN_OK;
}

/* x += attention(norm1(x)) for n images of t tokens. */
static bn_status vit_attn(const fwd *f, const bn_vmodel *m, const vit_block *b, float *x, int n,
                          int64_t t)
{
    const int64_t rows = (int64_t)n * t;
    float *hn = falloc(f, rows, m->d), *qkv = NULL, *o = NULL;
    if (!hn) return bn_ctx_status(f->ctx);
    layernorm(f, x, b->n1w, b->n1b, rows, m->d, m->eps, hn);
    bn_status rc = tlin(f, &b->qkv, hn, rows, &qkv);
    if (rc == BN_OK && bn_mhsa(f->pool, qkv, n, t, m->d, m->heads, hn) != BN_OK)
        rc = bn_ctx_set_error(f->ctx, BN_ERR_NOMEM, "vision: out of memory (attention)");
    if (rc == BN_OK) rc = tlin(f, &b->proj, hn, rows, &o);
    if (rc == BN_OK) ew(f, EW_ADD, x, o, rows * m->d);
    bn_free(hn), bn_free(qkv), bn_free(o);
    return rc;
}

/* x += fc2(gelu(fc1(norm2(x)))). */
static bn_status vit_mlp(const fwd *f, const bn_vmodel *m, const vit_block *b, float *x,
                         int64_t rows)
{
    float *hn = falloc(f, rows, m->d), *a = NULL, *o = NULL;
    if (!hn) return bn_ctx_status(f->ctx);
    layernorm(f, x, b->n2w, b->n2b, rows, m->d, m->eps, hn);
    bn_status rc = tlin(f, &b->fc1, hn, rows, &a);
    if (rc == BN_OK) {
        ew(f, EW_GELU, a, NULL, rows * m->ff);
        rc = tlin(f, &b->fc2, a, rows, &o);
    }
    if (rc == BN_OK) ew(f, EW_ADD, x, o, rows * m->d);
    bn_free(hn), bn_free(a), bn_free(o);
    return rc;
}

static bn_status vit_fwd(const fwd *f, const bn_vmodel *m, const float *img, int n, float *logits)
{
    const int64_t t = 1 + (int64_t)m->grid * m->grid, rows = (int64_t)n * t;
    float *x = falloc(f, rows, m->d), *cls = NULL;
    if (!x) return bn_ctx_status(f->ctx);
    bn_status rc = vit_embed(f, m, img, n, x);
    for (int i = 0; i < m->depth && rc == BN_OK; i++) {
        rc = vit_attn(f, m, &m->vb[i], x, n, t);
        if (rc == BN_OK) rc = vit_mlp(f, m, &m->vb[i], x, rows);
    }
    if (rc == BN_OK && !(cls = falloc(f, n, m->d))) rc = bn_ctx_status(f->ctx);
    if (rc == BN_OK) {
        for (int i = 0; i < n; i++)
            bn_layernorm(x + (int64_t)i * t * m->d, m->norm_w, m->norm_b, 1, m->d, m->eps,
                         cls + (int64_t)i * m->d);
        bn_linear_f32(m->fc_w, m->fc_b, m->d, m->info.num_classes, cls, n, logits);
    }
    bn_free(x);
    bn_free(cls);
    return rc;
}

/* ---- EfficientNet --------------------------------------------------------------------- */

/* Squeeze-excitation with ternary 1x1 convs (per-image int8 of the pooled vector): x *= s. */
static bn_status eff_se(const fwd *f, const eff_block *e, float *x, int n, int hw)
{
    float *m = falloc(f, n, e->exp), *a = NULL, *s = NULL;
    if (!m) return bn_ctx_status(f->ctx);
    bn_global_avgpool(x, n, e->exp, hw, m);
    bn_status rc = tlin(f, &e->se1, m, n, &a);
    if (rc == BN_OK) {
        ew(f, EW_SILU, a, NULL, (int64_t)n * e->se);
        rc = tlin(f, &e->se2, a, n, &s);
    }
    for (int64_t c = 0; rc == BN_OK && c < (int64_t)n * e->exp; c++) {
        const float g = 1.0f / (1.0f + expf(-s[c]));
        for (int i = 0; i < hw; i++) x[c * hw + i] *= g;
    }
    bn_free(m), bn_free(a), bn_free(s);
    return rc;
}

/* One MBConv block: x is replaced by its output. */
static bn_status eff_block_fwd(const fwd *f, const eff_block *e, float **x, int n, int *h, int *w)
{
    float *a = NULL, *b = NULL, *c = NULL;
    int ha = *h, wa = *w;
    bn_status rc = BN_OK;
    if (e->has_expand && (rc = tconv(f, &e->expand, *x, n, &ha, &wa, &a)) == BN_OK)
        ew(f, EW_SILU, a, NULL, (int64_t)n * e->exp * ha * wa);
    if (rc == BN_OK) rc = tconv(f, &e->dw, e->has_expand ? a : *x, n, &ha, &wa, &b);
    if (rc == BN_OK) {
        ew(f, EW_SILU, b, NULL, (int64_t)n * e->exp * ha * wa);
        rc = eff_se(f, e, b, n, ha * wa);
    }
    if (rc == BN_OK) rc = tconv(f, &e->project, b, n, &ha, &wa, &c);
    if (rc == BN_OK) {
        if (e->residual) ew(f, EW_ADD, c, *x, (int64_t)n * e->out * ha * wa);
        bn_free(*x);
        *x = c;
        c = NULL;
        *h = ha;
        *w = wa;
    }
    bn_free(a), bn_free(b), bn_free(c);
    return rc;
}

static bn_status effnet_fwd(const fwd *f, const bn_vmodel *m, const float *img, int n,
                            float *logits)
{
    const int s = m->info.image_size, c0 = m->stem_width;
    const bn_conv_geom gs = {m->info.in_chans, c0, 3, 3, 2, 1, 1};
    int h = bn_conv_out(s, 3, 2, 1), w = h;
    float *x = falloc(f, n, (int64_t)c0 * h * w), *y = NULL;
    if (!x) return bn_ctx_status(f->ctx);
    bn_status rc = bn_conv2d_f32(f->pool, &gs, m->stem_w, NULL, m->stem_scale, m->stem_bias, img, n,
                                 s, s, x);
    if (rc != BN_OK) rc = bn_ctx_set_error(f->ctx, rc, "vision: out of memory (stem)");
    if (rc == BN_OK) ew(f, EW_SILU, x, NULL, (int64_t)n * c0 * h * w);
    for (int b = 0; b < m->n_eff && rc == BN_OK; b++)
        rc = eff_block_fwd(f, &m->eb[b], &x, n, &h, &w);
    if (rc == BN_OK) rc = tconv(f, &m->head, x, n, &h, &w, &y);
    if (rc == BN_OK) {
        ew(f, EW_SILU, y, NULL, (int64_t)n * m->head_width * h * w);
        rc = pool_classify(f, m, y, n, m->head_width, h * w, logits);
    }
    bn_free(x);
    bn_free(y);
    return rc;
}

bn_status bn_vmodel_forward_ex(bn_ctx *ctx, bn_vmodel *m, const float *x, int n, float *logits,
                               int ref, bn_vision_timing *t)
{
    if (n < 1) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "vision: no images");
    const fwd f = {ctx, bn_ctx_pool(ctx), ref, t};
    if (m->info.arch == BN_VARCH_EFFICIENTNET) return effnet_fwd(&f, m, x, n, logits);
    return m->info.arch == BN_VARCH_RESNET ? resnet_fwd(&f, m, x, n, logits)
                                           : vit_fwd(&f, m, x, n, logits);
}

bn_status bn_vmodel_forward(bn_ctx *ctx, bn_vmodel *m, const float *x, int n, float *logits)
{
    return bn_vmodel_forward_ex(ctx, m, x, n, logits, 0, NULL);
}
