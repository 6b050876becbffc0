/*
 * vision_model.c - ResNet and ViT classifiers from GGUF (bitnet/vision.h): the loader, which
 * checks every key, tensor type and shape against docs/VISION.md, and the batched forward.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/types.h"
#include "bitnet/vision.h"
#include "vision_internal.h"

static const char *const k_arch_names[] = {"resnet", "vit", "efficientnet"};

int bn_vision_is_arch(const char *arch)
{
    for (size_t i = 0; arch && i < sizeof k_arch_names / sizeof k_arch_names[0]; i++)
        if (!strcmp(arch, k_arch_names[i])) return 1;
    return 0;
}

/* ---- reading keys ------------------------------------------------------------------------ */

static bn_status key_u32(bn_ctx *ctx, const bn_gguf *g, const char *key, uint32_t lo, uint32_t hi,
                         int *out)
{
    uint32_t v;
    const bn_status rc = bn_gguf_get_u32(g, key, &v);
    if (rc == BN_ERR_NOT_FOUND) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: missing", key);
    if (rc != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: not an unsigned integer", key);
    if (v < lo || v > hi)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %u is out of range (%u..%u)", key, v, lo,
                                hi);
    *out = (int)v;
    return BN_OK;
}

/* A numeric array of exactly n elements (n 0: any count up to max, written to *n_out). */
static bn_status key_arr(bn_ctx *ctx, const bn_gguf *g, const char *key, bn_gguf_vtype want,
                         uint64_t n, uint64_t max, const void **data, uint64_t *n_out)
{
    const int64_t i = bn_gguf_find_key(g, key);
    if (i < 0) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: missing", key);
    if (bn_gguf_kv_type(g, i) != BN_GGUF_ARRAY || bn_gguf_arr_type(g, i) != want)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: not an array of %s", key,
                                bn_gguf_vtype_name(want));
    const uint64_t got = bn_gguf_arr_n(g, i);
    if ((n && got != n) || (!n && (got < 1 || got > max)))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: %llu elements, expected %llu", key,
                                (unsigned long long)got, (unsigned long long)(n ? n : max));
    *data = bn_gguf_arr_data(g, i);
    if (n_out) *n_out = got;
    return BN_OK;
}

static bn_status key_stages(bn_ctx *ctx, const bn_gguf *g, const char *key, int *v, int *n, int hi)
{
    const void *data;
    uint64_t cnt;
    bn_status rc = key_arr(ctx, g, key, BN_GGUF_U32, 0, BN_VISION_MAX_STAGES, &data, &cnt);
    if (rc != BN_OK) return rc;
    if (*n && (uint64_t)*n != cnt)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: %llu stages, expected %d", key,
                                (unsigned long long)cnt, *n);
    for (uint64_t i = 0; i < cnt; i++) {
        uint32_t x;
        memcpy(&x, (const char *)data + 4 * i, 4);
        if (x < 1 || x > (uint32_t)hi)
            return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s[%llu]: %u is out of range (1..%d)", key,
                                    (unsigned long long)i, x, hi);
        v[i] = (int)x;
    }
    *n = (int)cnt;
    return BN_OK;
}

/* A u32 array of exactly n values, each in lo..hi. */
static bn_status key_u32s(bn_ctx *ctx, const bn_gguf *g, const char *key, int n, uint32_t lo,
                          uint32_t hi, int *out)
{
    const void *data;
    bn_status rc = key_arr(ctx, g, key, BN_GGUF_U32, (uint64_t)n, 0, &data, NULL);
    for (int i = 0; rc == BN_OK && i < n; i++) {
        uint32_t x;
        memcpy(&x, (const char *)data + 4 * i, 4);
        if (x < lo || x > hi)
            return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s[%d]: %u is out of range (%u..%u)", key,
                                    i, x, lo, hi);
        out[i] = (int)x;
    }
    return rc;
}

/* ---- reading tensors -------------------------------------------------------------------- */

static void fmt_shape(char *buf, size_t n, int nd, const int64_t *ne)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
}

/* Finds name with type in {t1, t2} (-1: none) and shape ne[0..nd). */
static bn_status want(bn_ctx *ctx, bn_vmodel *m, const char *name, int t1, int t2, int nd,
                      const int64_t *ne, const bn_gguf_tensor **out)
{
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, name);
    if (!t) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: missing", name);
    if (t->type != t1 && t->type != t2)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: type %s, expected %s%s%s", name,
                                bn_type_name(t->type), bn_type_name(t1), t2 >= 0 ? " or " : "",
                                t2 >= 0 ? bn_type_name(t2) : "");
    int ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->ne[i] == ne[i];
    if (!ok) {
        char a[96], b[96];
        fmt_shape(a, sizeof a, t->n_dims, t->ne);
        fmt_shape(b, sizeof b, nd, ne);
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: shape %s, expected %s", name, a, b);
    }
    for (int64_t i = 0; i < bn_gguf_n_tensors(m->g); i++)
        if (bn_gguf_tensor_at(m->g, i) == t) m->used[i] = 1;
    *out = t;
    return BN_OK;
}

/* A float tensor (F32, or F16 when f16_ok) of nd dims, copied out as f32 and checked finite. */
static bn_status get_f32(bn_ctx *ctx, bn_vmodel *m, const char *name, int f16_ok, int nd,
                         const int64_t *ne, float **out)
{
    const bn_gguf_tensor *t;
    bn_status rc = want(ctx, m, name, BN_TYPE_F32, f16_ok ? BN_TYPE_F16 : -1, nd, ne, &t);
    if (rc != BN_OK) return rc;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= ne[i];
    float *v = bn_malloc((size_t)n * sizeof(float));
    if (!v) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "tensor %s: out of memory", name);
    if (t->type == BN_TYPE_F32)
        memcpy(v, t->data, (size_t)n * sizeof(float));
    else
        bn_f16_to_f32_row(t->data, v, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            bn_free(v);
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: element %lld is not finite",
                                    name, (long long)i);
        }
    m->info.n_params += n;
    m->info.weight_bytes += (size_t)n * sizeof(float);
    *out = v;
    return BN_OK;
}

static bn_status get_vec(bn_ctx *ctx, bn_vmodel *m, const char *name, int64_t n, float **out)
{
    return get_f32(ctx, m, name, 0, 1, &n, out);
}

/* Unpacks one TQ2_0 row of kp codes into q (k kept), checking d == 1 and zero padding. */
static bn_status tq2_row(bn_ctx *ctx, const char *name, const uint8_t *src, int64_t k, int64_t kp,
                         int8_t *tmp, float *d, int8_t *q)
{
    if (bn_unpack_tq2_0(src, kp, tmp, d) != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: a 2-bit code is 3", name);
    for (int64_t b = 0; b < kp / BN_QK_TQ; b++)
        if (d[b] != 1.0f)
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: block scale %g, expected 1",
                                    name, (double)d[b]);
    for (int64_t i = k; i < kp; i++)
        if (tmp[i])
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: padding column %lld not zero",
                                    name, (long long)i);
    memcpy(q, tmp, (size_t)k);
    return BN_OK;
}

/* Ternary layer `base` (base.weight, base.scale, base.bias) of geometry g. */
static bn_status get_tlayer(bn_ctx *ctx, bn_vmodel *m, const char *base, const bn_conv_geom *g,
                            bn_tlayer *l)
{
    char name[96];
    const int64_t k = (int64_t)g->cin * g->kh * g->kw, kp = bn_vision_kpad(k);
    const int64_t ne[2] = {kp, g->cout};
    const bn_gguf_tensor *t;
    float *scale = NULL, *bias = NULL, *d = NULL;
    int8_t *q = NULL, *tmp = NULL;
    snprintf(name, sizeof name, "%s.weight", base);
    bn_status rc = want(ctx, m, name, BN_TYPE_TQ2_0, -1, 2, ne, &t);
    if (rc != BN_OK) return rc;
    q = bn_malloc((size_t)(g->cout * k));
    tmp = bn_malloc((size_t)kp);
    d = bn_malloc((size_t)(kp / BN_QK_TQ) * sizeof(float));
    if (!q || !tmp || !d) {
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "tensor %s: out of memory", name);
        goto done;
    }
    const size_t row = bn_tq2_rows_bytes(1, k);
    for (int64_t r = 0; r < g->cout && rc == BN_OK; r++)
        rc = tq2_row(ctx, name, (const uint8_t *)t->data + r * row, k, kp, tmp, d, q + r * k);
    if (rc != BN_OK) goto done;
    snprintf(name, sizeof name, "%s.scale", base);
    if ((rc = get_vec(ctx, m, name, g->cout, &scale)) != BN_OK) goto done;
    snprintf(name, sizeof name, "%s.bias", base);
    if ((rc = get_vec(ctx, m, name, g->cout, &bias)) != BN_OK) goto done;
    rc = bn_tlayer_init(l, g, q, scale, bias);
    if (rc != BN_OK) bn_ctx_set_error(ctx, rc, "tensor %s: %s", base, bn_status_str(rc));
    m->info.n_params += g->cout * k;
    m->info.weight_bytes += (size_t)(l->w.rows_pad * l->w.row_bytes);
done:
    bn_free(q);
    bn_free(tmp);
    bn_free(d);
    bn_free(scale);
    bn_free(bias);
    return rc;
}

static bn_conv_geom geom(int cin, int cout, int k, int stride)
{
    bn_conv_geom g = {cin, cout, k, k, stride, k / 2, 1};
    return g;
}

/* ---- ResNet ------------------------------------------------------------------------------- */

static bn_status load_rn_block(bn_ctx *ctx, bn_vmodel *m, int b, int cin, int planes, int stride)
{
    rn_block *bl = &m->blk[b];
    const int exp = m->bottleneck ? 4 : 1;
    char base[48];
    bn_conv_geom g1 = m->bottleneck ? geom(cin, planes, 1, 1) : geom(cin, planes, 3, stride);
    bn_conv_geom g2 = geom(planes, planes, 3, m->bottleneck ? stride : 1);
    snprintf(base, sizeof base, "blk.%d.conv1", b);
    bn_status rc = get_tlayer(ctx, m, base, &g1, &bl->c1);
    snprintf(base, sizeof base, "blk.%d.conv2", b);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, base, &g2, &bl->c2);
    if (rc == BN_OK && m->bottleneck) {
        bn_conv_geom g3 = geom(planes, planes * 4, 1, 1);
        snprintf(base, sizeof base, "blk.%d.conv3", b);
        rc = get_tlayer(ctx, m, base, &g3, &bl->c3);
        bl->has_c3 = rc == BN_OK;
    }
    if (rc == BN_OK && (stride != 1 || cin != planes * exp)) {
        bn_conv_geom gd = geom(cin, planes * exp, 1, stride);
        snprintf(base, sizeof base, "blk.%d.down", b);
        rc = get_tlayer(ctx, m, base, &gd, &bl->down);
        bl->has_down = rc == BN_OK;
    }
    return rc;
}

static bn_status load_resnet(bn_ctx *ctx, bn_vmodel *m)
{
    const bn_gguf *g = m->g;
    const char *bt;
    if (bn_gguf_get_str(g, "resnet.block_type", &bt) != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "resnet.block_type: missing");
    if (strcmp(bt, "basic") && strcmp(bt, "bottleneck"))
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "resnet.block_type: '%s' (expected basic or bottleneck)", bt);
    m->bottleneck = !strcmp(bt, "bottleneck");
    int total = 0, pool = 1;
    bn_status rc = key_stages(ctx, g, "resnet.stage_depths", m->depths, &m->n_stages, 64);
    if (rc == BN_OK)
        rc = key_stages(ctx, g, "resnet.stage_widths", m->widths, &m->n_stages, MAX_WIDTH / 4);
    if (rc == BN_OK) rc = key_u32(ctx, g, "resnet.block_count", 1, MAX_DEPTH, &m->n_blocks);
    if (rc == BN_OK) rc = key_u32(ctx, g, "resnet.stem_kernel", 1, 15, &m->stem_k);
    if (rc == BN_OK) rc = key_u32(ctx, g, "resnet.stem_stride", 1, 8, &m->stem_s);
    if (rc != BN_OK) return rc;
    if (bn_gguf_get_bool(g, "resnet.stem_pool", &pool) == BN_ERR_FORMAT)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "resnet.stem_pool: not a bool");
    m->stem_pool = pool;
    for (int s = 0; s < m->n_stages; s++) total += m->depths[s];
    if (total != m->n_blocks)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "resnet.block_count: %d, but the stage depths add up to %d",
                                m->n_blocks, total);
    const int c0 = m->widths[0];
    const int64_t sw[4] = {m->stem_k, m->stem_k, m->info.in_chans, c0};
    rc = get_f32(ctx, m, "stem.weight", 1, 4, sw, &m->stem_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "stem.scale", c0, &m->stem_scale);
    if (rc == BN_OK) rc = get_vec(ctx, m, "stem.bias", c0, &m->stem_bias);
    if (rc != BN_OK) return rc;
    m->blk = bn_calloc((size_t)m->n_blocks, sizeof *m->blk);
    if (!m->blk) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    int cin = c0, b = 0;
    for (int s = 0; s < m->n_stages && rc == BN_OK; s++)
        for (int i = 0; i < m->depths[s] && rc == BN_OK; i++, b++) {
            rc = load_rn_block(ctx, m, b, cin, m->widths[s], i == 0 && s > 0 ? 2 : 1);
            cin = m->widths[s] * (m->bottleneck ? 4 : 1);
        }
    if (rc != BN_OK) return rc;
    m->feat = cin;
    const int64_t fw[2] = {cin, m->info.num_classes};
    rc = get_f32(ctx, m, "fc.weight", 1, 2, fw, &m->fc_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "fc.bias", m->info.num_classes, &m->fc_b);
    return rc;
}

/* ---- ViT -------------------------------------------------------------------------------- */

static bn_status load_vit_block(bn_ctx *ctx, bn_vmodel *m, int i)
{
    vit_block *b = &m->vb[i];
    char name[64];
    const int d = m->d;
    bn_conv_geom gq = geom(d, 3 * d, 1, 1), gp = geom(d, d, 1, 1);
    bn_conv_geom g1 = geom(d, m->ff, 1, 1), g2 = geom(m->ff, d, 1, 1);
    struct {
        const char *n;
        float **v;
    } vecs[4] = {{"norm1.weight", &b->n1w},
                 {"norm1.bias", &b->n1b},
                 {"norm2.weight", &b->n2w},
                 {"norm2.bias", &b->n2b}};
    bn_status rc = BN_OK;
    for (int j = 0; j < 4 && rc == BN_OK; j++) {
        snprintf(name, sizeof name, "blk.%d.%s", i, vecs[j].n);
        rc = get_vec(ctx, m, name, d, vecs[j].v);
    }
    struct {
        const char *n;
        bn_conv_geom *g;
        bn_tlayer *l;
    } lay[4] = {{"qkv", &gq, &b->qkv},
                {"proj", &gp, &b->proj},
                {"fc1", &g1, &b->fc1},
                {"fc2", &g2, &b->fc2}};
    for (int j = 0; j < 4 && rc == BN_OK; j++) {
        snprintf(name, sizeof name, "blk.%d.%s", i, lay[j].n);
        rc = get_tlayer(ctx, m, name, lay[j].g, lay[j].l);
    }
    return rc;
}

static bn_status load_vit(bn_ctx *ctx, bn_vmodel *m)
{
    const bn_gguf *g = m->g;
    bn_status rc = key_u32(ctx, g, "vit.embedding_length", 1, MAX_WIDTH, &m->d);
    if (rc == BN_OK) rc = key_u32(ctx, g, "vit.block_count", 1, MAX_DEPTH, &m->depth);
    if (rc == BN_OK) rc = key_u32(ctx, g, "vit.attention.head_count", 1, MAX_WIDTH, &m->heads);
    if (rc == BN_OK) rc = key_u32(ctx, g, "vit.feed_forward_length", 1, MAX_FF, &m->ff);
    if (rc == BN_OK) rc = key_u32(ctx, g, "vit.patch_size", 1, MAX_IMAGE, &m->patch);
    if (rc != BN_OK) return rc;
    if (bn_gguf_get_f32(g, "vit.attention.layer_norm_epsilon", &m->eps) != BN_OK || !(m->eps > 0) ||
        m->eps > 1.0f)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "vit.attention.layer_norm_epsilon: missing or not in (0, 1]");
    if (m->d % m->heads)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "vit.attention.head_count: %d does not divide the width %d",
                                m->heads, m->d);
    if (m->info.image_size % m->patch)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "vit.patch_size: %d does not divide the image size %d", m->patch,
                                m->info.image_size);
    m->grid = m->info.image_size / m->patch;
    if ((int64_t)m->grid * m->grid > 65536)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "vit.patch_size: %d patches is too many",
                                m->grid * m->grid);
    const int64_t pw[4] = {m->patch, m->patch, m->info.in_chans, m->d};
    const int64_t pe[2] = {m->d, 1 + (int64_t)m->grid * m->grid};
    rc = get_f32(ctx, m, "patch.weight", 1, 4, pw, &m->patch_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "patch.bias", m->d, &m->patch_b);
    if (rc == BN_OK) rc = get_vec(ctx, m, "cls", m->d, &m->cls);
    if (rc == BN_OK) rc = get_f32(ctx, m, "pos", 0, 2, pe, &m->pos);
    if (rc != BN_OK) return rc;
    m->vb = bn_calloc((size_t)m->depth, sizeof *m->vb);
    if (!m->vb) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->depth && rc == BN_OK; i++) rc = load_vit_block(ctx, m, i);
    if (rc == BN_OK) rc = get_vec(ctx, m, "norm.weight", m->d, &m->norm_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "norm.bias", m->d, &m->norm_b);
    const int64_t hw[2] = {m->d, m->info.num_classes};
    if (rc == BN_OK) rc = get_f32(ctx, m, "head.weight", 1, 2, hw, &m->fc_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "head.bias", m->info.num_classes, &m->fc_b);
    return rc;
}

/* ---- EfficientNet ------------------------------------------------------------------------- */

static bn_status load_eff_block(bn_ctx *ctx, bn_vmodel *m, int b)
{
    eff_block *e = &m->eb[b];
    char name[48];
    bn_status rc = BN_OK;
    if (e->has_expand) {
        const bn_conv_geom ge = geom(e->in, e->exp, 1, 1);
        snprintf(name, sizeof name, "blk.%d.expand", b);
        rc = get_tlayer(ctx, m, name, &ge, &e->expand);
    }
    /* depthwise: one row of k * k codes per channel */
    const bn_conv_geom gd = {e->exp, e->exp, e->k, e->k, e->stride, e->k / 2, e->exp};
    const bn_conv_geom gk = {1, e->exp, e->k, e->k, e->stride, e->k / 2, 1};
    snprintf(name, sizeof name, "blk.%d.dw", b);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, name, &gk, &e->dw);
    if (rc == BN_OK) e->dw.g = gd;
    const bn_conv_geom g1 = geom(e->exp, e->se, 1, 1), g2 = geom(e->se, e->exp, 1, 1);
    const bn_conv_geom gp = geom(e->exp, e->out, 1, 1);
    snprintf(name, sizeof name, "blk.%d.se1", b);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, name, &g1, &e->se1);
    snprintf(name, sizeof name, "blk.%d.se2", b);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, name, &g2, &e->se2);
    snprintf(name, sizeof name, "blk.%d.project", b);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, name, &gp, &e->project);
    return rc;
}

static bn_status load_effnet(bn_ctx *ctx, bn_vmodel *m)
{
    const bn_gguf *g = m->g;
    int v[5][BN_VISION_MAX_BLOCKS];
    static const char *const keys[5] = {"efficientnet.block_expand", "efficientnet.block_kernel",
                                        "efficientnet.block_stride", "efficientnet.block_out",
                                        "efficientnet.block_se"};
    static const uint32_t hi[5] = {MAX_WIDTH, 15, 4, MAX_WIDTH, MAX_WIDTH};
    bn_status rc = key_u32(ctx, g, "efficientnet.block_count", 1, BN_VISION_MAX_BLOCKS, &m->n_eff);
    if (rc == BN_OK) rc = key_u32(ctx, g, "efficientnet.stem_width", 1, MAX_WIDTH, &m->stem_width);
    if (rc == BN_OK) rc = key_u32(ctx, g, "efficientnet.head_width", 1, MAX_WIDTH, &m->head_width);
    for (int i = 0; i < 5 && rc == BN_OK; i++)
        rc = key_u32s(ctx, g, keys[i], m->n_eff, 1, hi[i], v[i]);
    if (rc != BN_OK) return rc;
    const int64_t sw[4] = {3, 3, m->info.in_chans, m->stem_width};
    rc = get_f32(ctx, m, "stem.weight", 1, 4, sw, &m->stem_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "stem.scale", m->stem_width, &m->stem_scale);
    if (rc == BN_OK) rc = get_vec(ctx, m, "stem.bias", m->stem_width, &m->stem_bias);
    if (rc == BN_OK && !(m->eb = bn_calloc((size_t)m->n_eff, sizeof *m->eb)))
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    int in = m->stem_width;
    for (int b = 0; b < m->n_eff && rc == BN_OK; b++) {
        eff_block *e = &m->eb[b];
        e->in = in;
        e->exp = v[0][b];
        e->k = v[1][b];
        e->stride = v[2][b];
        e->out = v[3][b];
        e->se = v[4][b];
        e->has_expand = e->exp != e->in;
        e->residual = e->stride == 1 && e->in == e->out;
        rc = load_eff_block(ctx, m, b);
        in = e->out;
    }
    const bn_conv_geom gh = geom(in, m->head_width, 1, 1);
    if (rc == BN_OK) rc = get_tlayer(ctx, m, "head", &gh, &m->head);
    const int64_t fw[2] = {m->head_width, m->info.num_classes};
    if (rc == BN_OK) rc = get_f32(ctx, m, "fc.weight", 1, 2, fw, &m->fc_w);
    if (rc == BN_OK) rc = get_vec(ctx, m, "fc.bias", m->info.num_classes, &m->fc_b);
    return rc;
}

/* ---- common keys --------------------------------------------------------------------------- */

static bn_status load_labels(bn_ctx *ctx, bn_vmodel *m, const char *key)
{
    const int64_t i = bn_gguf_find_key(m->g, key);
    if (i < 0) return BN_OK;
    if (bn_gguf_kv_type(m->g, i) != BN_GGUF_ARRAY || bn_gguf_arr_type(m->g, i) != BN_GGUF_STRING ||
        bn_gguf_arr_n(m->g, i) != (uint64_t)m->info.num_classes)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: not an array of %d strings", key,
                                m->info.num_classes);
    m->labels = bn_calloc((size_t)m->info.num_classes, sizeof(char *));
    if (!m->labels) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    for (int j = 0; j < m->info.num_classes; j++) {
        size_t len;
        const char *s = bn_gguf_arr_str(m->g, i, (uint64_t)j, &len);
        if (!s || strlen(s) != len || len > 256)
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s[%d]: holds a NUL byte or is too long",
                                    key, j);
        if (!(m->labels[j] = bn_strdup(s)))
            return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    }
    m->info.labels = (const char *const *)m->labels;
    return BN_OK;
}

static bn_status load_norm_keys(bn_ctx *ctx, bn_vmodel *m, const char *arch)
{
    char key[64];
    const void *mean, *std;
    snprintf(key, sizeof key, "%s.image_mean", arch);
    bn_status rc = key_arr(ctx, m->g, key, BN_GGUF_F32, (uint64_t)m->info.in_chans, 0, &mean, NULL);
    snprintf(key, sizeof key, "%s.image_std", arch);
    if (rc == BN_OK)
        rc = key_arr(ctx, m->g, key, BN_GGUF_F32, (uint64_t)m->info.in_chans, 0, &std, NULL);
    if (rc != BN_OK) return rc;
    memcpy(m->info.mean, mean, (size_t)m->info.in_chans * sizeof(float));
    memcpy(m->info.std, std, (size_t)m->info.in_chans * sizeof(float));
    for (int c = 0; c < m->info.in_chans; c++)
        if (!isfinite(m->info.mean[c]) || !(m->info.std[c] > 0) || !isfinite(m->info.std[c]))
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: element %d is not a positive number",
                                    key, c);
    snprintf(key, sizeof key, "%s.labels", arch);
    return load_labels(ctx, m, key);
}

static bn_status load_common(bn_ctx *ctx, bn_vmodel *m)
{
    const char *arch, *name;
    if (bn_gguf_get_str(m->g, "general.architecture", &arch) != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "general.architecture: missing");
    if (!bn_vision_is_arch(arch))
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "general.architecture: '%s' is not a vision model (resnet, vit, "
                                "efficientnet)",
                                arch);
    m->info.arch = !strcmp(arch, "resnet") ? BN_VARCH_RESNET
                   : !strcmp(arch, "vit")  ? BN_VARCH_VIT
                                           : BN_VARCH_EFFICIENTNET;
    m->info.arch_name = k_arch_names[m->info.arch];
    if (bn_gguf_get_str(m->g, "general.name", &name) != BN_OK) name = "";
    if (!(m->name = bn_strdup(name))) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    m->info.name = m->name;
    char key[64];
    snprintf(key, sizeof key, "%s.image_size", arch);
    bn_status rc = key_u32(ctx, m->g, key, 1, MAX_IMAGE, &m->info.image_size);
    snprintf(key, sizeof key, "%s.in_chans", arch);
    if (rc == BN_OK) rc = key_u32(ctx, m->g, key, 1, BN_VISION_MAX_CHANS, &m->info.in_chans);
    snprintf(key, sizeof key, "%s.num_classes", arch);
    if (rc == BN_OK) rc = key_u32(ctx, m->g, key, 1, MAX_CLASSES, &m->info.num_classes);
    if (rc == BN_OK) rc = load_norm_keys(ctx, m, arch);
    return rc;
}

bn_status bn_vmodel_load_gguf(bn_ctx *ctx, const bn_gguf *g, bn_vmodel **out)
{
    *out = NULL;
    bn_vmodel *m = bn_calloc(1, sizeof *m);
    if (!m) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    m->g = g;
    const int64_t nt = bn_gguf_n_tensors(g);
    m->used = bn_calloc((size_t)(nt > 0 ? nt : 1), 1);
    bn_status rc =
            m->used ? load_common(ctx, m) : bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    if (rc == BN_OK)
        rc = m->info.arch == BN_VARCH_RESNET ? load_resnet(ctx, m)
             : m->info.arch == BN_VARCH_VIT  ? load_vit(ctx, m)
                                             : load_effnet(ctx, m);
    for (int64_t i = 0; rc == BN_OK && i < nt; i++)
        if (!m->used[i])
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: not part of a %s model",
                                  bn_gguf_tensor_at(g, i)->name, m->info.arch_name);
    bn_free(m->used);
    m->used = NULL;
    m->g = NULL;
    if (rc != BN_OK) {
        bn_vmodel_free(m);
        return rc;
    }
    *out = m;
    return BN_OK;
}

bn_status bn_vmodel_load(bn_ctx *ctx, const char *path, bn_vmodel **out)
{
    bn_gguf *g;
    *out = NULL;
    bn_status rc = bn_gguf_open(ctx, path, &g);
    if (rc != BN_OK) return rc;
    rc = bn_vmodel_load_gguf(ctx, g, out);
    bn_gguf_close(g);
    return rc;
}

void bn_vmodel_free(bn_vmodel *m)
{
    if (!m) return;
    for (int b = 0; m->blk && b < m->n_blocks; b++) {
        bn_tlayer_release(&m->blk[b].c1);
        bn_tlayer_release(&m->blk[b].c2);
        bn_tlayer_release(&m->blk[b].c3);
        bn_tlayer_release(&m->blk[b].down);
    }
    for (int i = 0; m->vb && i < m->depth; i++) {
        vit_block *b = &m->vb[i];
        bn_free(b->n1w), bn_free(b->n1b), bn_free(b->n2w), bn_free(b->n2b);
        bn_tlayer_release(&b->qkv), bn_tlayer_release(&b->proj);
        bn_tlayer_release(&b->fc1), bn_tlayer_release(&b->fc2);
    }
    for (int b = 0; m->eb && b < m->n_eff; b++) {
        eff_block *e = &m->eb[b];
        bn_tlayer_release(&e->expand), bn_tlayer_release(&e->dw), bn_tlayer_release(&e->se1);
        bn_tlayer_release(&e->se2), bn_tlayer_release(&e->project);
    }
    bn_free(m->eb);
    bn_tlayer_release(&m->head);
    for (int j = 0; m->labels && j < m->info.num_classes; j++) bn_free(m->labels[j]);
    bn_free(m->labels);
    float *fl[] = {m->stem_w, m->stem_scale, m->stem_bias, m->patch_w, m->patch_b, m->cls,
                   m->pos,    m->norm_w,     m->norm_b,    m->fc_w,    m->fc_b};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) bn_free(fl[i]);
    bn_free(m->blk);
    bn_free(m->vb);
    bn_free(m->name);
    bn_free(m->used);
    bn_free(m);
}

const bn_vmodel_info *bn_vmodel_info_get(const bn_vmodel *m)
{
    return &m->info;
}
