/*
 * vision_write.c - a ResNet / ViT GGUF from float tensors named as torchvision / timm name
 * them (bitnet/vision.h, docs/VISION.md): absmean ternarization per output channel,
 * BatchNorm folding, TQ2_0 rows, and a random source for synthetic models.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/types.h"
#include "bitnet/vision.h"
#include "vision_internal.h"

typedef struct vw {
    bn_ctx *ctx;
    const bn_vspec *s;
    bn_vsrc_fn src;
    void *user;
    bn_gguf_writer *w;
    void **bufs; /* data the writer references until it writes */
    int nbufs, cap;
} vw;

static void *keep(vw *v, size_t bytes)
{
    if (v->nbufs == v->cap) {
        const int cap = v->cap ? 2 * v->cap : 64;
        void **nb = bn_calloc((size_t)cap, sizeof *nb);
        if (!nb) return NULL;
        if (v->nbufs) memcpy(nb, v->bufs, (size_t)v->nbufs * sizeof *nb);
        bn_free(v->bufs);
        v->bufs = nb;
        v->cap = cap;
    }
    void *p = bn_calloc(1, bytes ? bytes : 1);
    if (p) v->bufs[v->nbufs++] = p;
    return p;
}

static bn_status nomem(vw *v)
{
    return bn_ctx_set_error(v->ctx, BN_ERR_NOMEM, "vision: out of memory");
}

static int64_t numel(int nd, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

/* Source tensor `name` of shape[0..nd) into a kept buffer. */
static bn_status fetch(vw *v, const char *name, int nd, const int64_t *shape, float **out)
{
    float *p = keep(v, (size_t)numel(nd, shape) * sizeof(float));
    *out = p;
    if (!p) return nomem(v);
    *out = p;
    return v->src(v->user, v->ctx, name, nd, shape, p);
}

/* Adds an F32 tensor (or F16 when f16) with GGUF ne = shape reversed. */
static bn_status add_float(vw *v, const char *name, const float *x, int nd, const int64_t *shape,
                           int f16)
{
    int64_t ne[4];
    const int64_t n = numel(nd, shape);
    for (int i = 0; i < nd; i++) ne[i] = shape[nd - 1 - i];
    const void *data = x;
    if (f16) {
        uint16_t *h = keep(v, (size_t)n * 2);
        if (!h) return nomem(v);
        bn_f32_to_f16_row(x, h, n);
        data = h;
    }
    const bn_status rc = bn_gguf_writer_add_tensor(v->w, name, f16 ? BN_TYPE_F16 : BN_TYPE_F32, nd,
                                                   ne, data, (size_t)n * (f16 ? 2 : 4));
    return rc == BN_OK ? rc : bn_ctx_set_error(v->ctx, rc, "vision: tensor %s: cannot add", name);
}

/* BatchNorm `bn` (eval) folded into scale (multiplied) and bias (b -> beta + (b - mean) c). */
static bn_status fold_bn(vw *v, const char *bn, int64_t c, float *scale, float *bias)
{
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    float *p[4];
    char name[160];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, part[i]);
        const bn_status rc = fetch(v, name, 1, &c, &p[i]);
        if (rc != BN_OK) return rc;
    }
    for (int64_t i = 0; i < c; i++) {
        if (!(p[3][i] >= 0.0f))
            return bn_ctx_set_error(v->ctx, BN_ERR_FORMAT, "vision: %s.running_var[%lld] < 0", bn,
                                    (long long)i);
        const float k = p[0][i] / sqrtf(p[3][i] + v->s->bn_eps);
        scale[i] *= k;
        bias[i] = p[1][i] + (bias[i] - p[2][i]) * k;
    }
    return BN_OK;
}

/* Ternary layer `dst` from source weight `sw` (conv: [cout, cin, k, k]; k 0: linear
 * [cout, cin]), with an optional source bias and BatchNorm. */
static bn_status add_tlayer(vw *v, const char *dst, const char *sw, int64_t cout, int64_t cin,
                            int k, const char *sbias, const char *sbn)
{
    const int64_t shape[4] = {cout, cin, k, k}, kk = cin * (k ? k * k : 1);
    const int nd = k ? 4 : 2;
    float *w = NULL, *scale = keep(v, (size_t)cout * 4), *bias = keep(v, (size_t)cout * 4);
    int8_t *q = keep(v, (size_t)(cout * kk));
    uint8_t *packed = keep(v, bn_tq2_rows_bytes(cout, kk));
    if (!scale || !bias || !q || !packed) return nomem(v);
    bn_status rc = fetch(v, sw, nd, shape, &w);
    if (rc != BN_OK) return rc;
    if (bn_quantize_absmean(w, cout, kk, BN_QGRAN_CHANNEL, 0, q, scale) != BN_OK)
        return bn_ctx_set_error(v->ctx, BN_ERR_INTERNAL, "vision: %s: quantization failed", sw);
    if (sbias && (rc = fetch(v, sbias, 1, &cout, &w)) == BN_OK) memcpy(bias, w, (size_t)cout * 4);
    if (rc == BN_OK && sbn) rc = fold_bn(v, sbn, cout, scale, bias);
    if (rc != BN_OK) return rc;
    bn_tq2_rows_pack(q, cout, kk, packed);
    char name[96];
    const int64_t ne[2] = {bn_vision_kpad(kk), cout};
    snprintf(name, sizeof name, "%s.weight", dst);
    rc = bn_gguf_writer_add_tensor(v->w, name, BN_TYPE_TQ2_0, 2, ne, packed,
                                   bn_tq2_rows_bytes(cout, kk));
    snprintf(name, sizeof name, "%s.scale", dst);
    if (rc == BN_OK) rc = add_float(v, name, scale, 1, &cout, 0);
    snprintf(name, sizeof name, "%s.bias", dst);
    if (rc == BN_OK) rc = add_float(v, name, bias, 1, &cout, 0);
    return rc == BN_OK ? rc : bn_ctx_set_error(v->ctx, rc, "vision: %s: cannot add", dst);
}

/* The float stem conv (source shape sw: [c0, in, k, k]) with its BatchNorm folded into
 * stem.scale and stem.bias. */
static bn_status write_stem(vw *v, const char *src, const char *bn, const int64_t *sw)
{
    const int64_t c0 = sw[0];
    float *stem = NULL, *scale = keep(v, (size_t)c0 * 4), *bias = keep(v, (size_t)c0 * 4);
    if (!scale || !bias) return nomem(v);
    for (int64_t i = 0; i < c0; i++) scale[i] = 1.0f;
    bn_status rc = fetch(v, src, 4, sw, &stem);
    if (rc == BN_OK) rc = fold_bn(v, bn, c0, scale, bias);
    if (rc == BN_OK) rc = add_float(v, "stem.weight", stem, 4, sw, v->s->f16);
    if (rc == BN_OK) rc = add_float(v, "stem.scale", scale, 1, &c0, 0);
    if (rc == BN_OK) rc = add_float(v, "stem.bias", bias, 1, &c0, 0);
    return rc;
}

/* ---- ResNet -------------------------------------------------------------------------------- */

static bn_status write_rn_block(vw *v, int s, int i, int b, int cin, int stride)
{
    const bn_vspec *sp = v->s;
    const int planes = sp->widths[s], exp = sp->bottleneck ? 4 : 1;
    char src[96], bn[96], dst[48];
    const int k1 = sp->bottleneck ? 1 : 3;
    snprintf(src, sizeof src, "layer%d.%d.conv1.weight", s + 1, i);
    snprintf(bn, sizeof bn, "layer%d.%d.bn1", s + 1, i);
    snprintf(dst, sizeof dst, "blk.%d.conv1", b);
    bn_status rc = add_tlayer(v, dst, src, planes, cin, k1, NULL, bn);
    snprintf(src, sizeof src, "layer%d.%d.conv2.weight", s + 1, i);
    snprintf(bn, sizeof bn, "layer%d.%d.bn2", s + 1, i);
    snprintf(dst, sizeof dst, "blk.%d.conv2", b);
    if (rc == BN_OK) rc = add_tlayer(v, dst, src, planes, planes, 3, NULL, bn);
    if (rc == BN_OK && sp->bottleneck) {
        snprintf(src, sizeof src, "layer%d.%d.conv3.weight", s + 1, i);
        snprintf(bn, sizeof bn, "layer%d.%d.bn3", s + 1, i);
        snprintf(dst, sizeof dst, "blk.%d.conv3", b);
        rc = add_tlayer(v, dst, src, planes * 4, planes, 1, NULL, bn);
    }
    if (rc == BN_OK && (stride != 1 || cin != planes * exp)) {
        snprintf(src, sizeof src, "layer%d.%d.downsample.0.weight", s + 1, i);
        snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", s + 1, i);
        snprintf(dst, sizeof dst, "blk.%d.down", b);
        rc = add_tlayer(v, dst, src, planes * exp, cin, 1, NULL, bn);
    }
    return rc;
}

static bn_status write_resnet(vw *v)
{
    const bn_vspec *s = v->s;
    const int64_t c0 = s->widths[0], sw[4] = {c0, s->in_chans, s->stem_k, s->stem_k};
    uint32_t depths[BN_VISION_MAX_STAGES], widths[BN_VISION_MAX_STAGES];
    int total = 0;
    for (int i = 0; i < s->n_stages; i++) {
        depths[i] = (uint32_t)s->depths[i];
        widths[i] = (uint32_t)s->widths[i];
        total += s->depths[i];
    }
    bn_gguf_writer *w = v->w;
    bn_gguf_writer_set_str(w, "resnet.block_type", s->bottleneck ? "bottleneck" : "basic");
    bn_gguf_writer_set_u32(w, "resnet.block_count", (uint32_t)total);
    bn_gguf_writer_set_arr(w, "resnet.stage_depths", BN_GGUF_U32, depths, (uint64_t)s->n_stages);
    bn_gguf_writer_set_arr(w, "resnet.stage_widths", BN_GGUF_U32, widths, (uint64_t)s->n_stages);
    bn_gguf_writer_set_u32(w, "resnet.stem_kernel", (uint32_t)s->stem_k);
    bn_gguf_writer_set_u32(w, "resnet.stem_stride", (uint32_t)s->stem_s);
    bn_gguf_writer_set_bool(w, "resnet.stem_pool", s->stem_pool);
    bn_status rc = write_stem(v, "conv1.weight", "bn1", sw);
    int cin = (int)c0, b = 0;
    for (int st = 0; st < s->n_stages && rc == BN_OK; st++)
        for (int i = 0; i < s->depths[st] && rc == BN_OK; i++, b++) {
            rc = write_rn_block(v, st, i, b, cin, i == 0 && st > 0 ? 2 : 1);
            cin = s->widths[st] * (s->bottleneck ? 4 : 1);
        }
    const int64_t fw[2] = {s->num_classes, cin}, nc = s->num_classes;
    float *fc = NULL, *fb = NULL;
    if (rc == BN_OK) rc = fetch(v, "fc.weight", 2, fw, &fc);
    if (rc == BN_OK) rc = fetch(v, "fc.bias", 1, &nc, &fb);
    if (rc == BN_OK) rc = add_float(v, "fc.weight", fc, 2, fw, s->f16);
    if (rc == BN_OK) rc = add_float(v, "fc.bias", fb, 1, &nc, 0);
    return rc;
}

/* ---- ViT --------------------------------------------------------------------------------- */

/* Copies float source `src` of shape[0..nd) to GGUF `dst` (F32). */
static bn_status copy_float(vw *v, const char *src, const char *dst, int nd, const int64_t *shape)
{
    float *x = NULL;
    const bn_status rc = fetch(v, src, nd, shape, &x);
    return rc == BN_OK ? add_float(v, dst, x, nd, shape, 0) : rc;
}

static bn_status write_vit_block(vw *v, int i)
{
    const int64_t d = v->s->d, f = v->s->ff;
    static const char *const norms[2] = {"norm1", "norm2"}, *const parts[2] = {"weight", "bias"};
    char src[96], dst[64], sb[96];
    bn_status rc = BN_OK;
    for (int j = 0; j < 4 && rc == BN_OK; j++) {
        snprintf(src, sizeof src, "blocks.%d.%s.%s", i, norms[j / 2], parts[j % 2]);
        snprintf(dst, sizeof dst, "blk.%d.%s.%s", i, norms[j / 2], parts[j % 2]);
        rc = copy_float(v, src, dst, 1, &d);
    }
    const struct {
        const char *src, *dst;
        int64_t out, in;
    } lin[4] = {{"attn.qkv", "qkv", 3 * d, d},
                {"attn.proj", "proj", d, d},
                {"mlp.fc1", "fc1", f, d},
                {"mlp.fc2", "fc2", d, f}};
    for (int j = 0; j < 4 && rc == BN_OK; j++) {
        snprintf(src, sizeof src, "blocks.%d.%s.weight", i, lin[j].src);
        snprintf(sb, sizeof sb, "blocks.%d.%s.bias", i, lin[j].src);
        snprintf(dst, sizeof dst, "blk.%d.%s", i, lin[j].dst);
        rc = add_tlayer(v, dst, src, lin[j].out, lin[j].in, 0, sb, NULL);
    }
    return rc;
}

static bn_status write_vit(vw *v)
{
    const bn_vspec *s = v->s;
    bn_gguf_writer *w = v->w;
    bn_gguf_writer_set_u32(w, "vit.embedding_length", (uint32_t)s->d);
    bn_gguf_writer_set_u32(w, "vit.block_count", (uint32_t)s->depth);
    bn_gguf_writer_set_u32(w, "vit.attention.head_count", (uint32_t)s->heads);
    bn_gguf_writer_set_u32(w, "vit.feed_forward_length", (uint32_t)s->ff);
    bn_gguf_writer_set_u32(w, "vit.patch_size", (uint32_t)s->patch);
    bn_gguf_writer_set_f32(w, "vit.attention.layer_norm_epsilon", s->ln_eps);
    const int64_t d = s->d, g = s->image_size / s->patch, nc = s->num_classes;
    const int64_t pw[4] = {d, s->in_chans, s->patch, s->patch}, cls[3] = {1, 1, d},
                  pos[3] = {1, 1 + g * g, d}, hw[2] = {nc, d};
    float *x = NULL;
    bn_status rc = fetch(v, "patch_embed.proj.weight", 4, pw, &x);
    if (rc == BN_OK) rc = add_float(v, "patch.weight", x, 4, pw, s->f16);
    if (rc == BN_OK) rc = copy_float(v, "patch_embed.proj.bias", "patch.bias", 1, &d);
    if (rc == BN_OK) rc = fetch(v, "cls_token", 3, cls, &x);
    if (rc == BN_OK) rc = add_float(v, "cls", x, 1, &d, 0);
    if (rc == BN_OK) rc = fetch(v, "pos_embed", 3, pos, &x);
    if (rc == BN_OK) rc = add_float(v, "pos", x, 2, pos + 1, 0);
    for (int i = 0; i < s->depth && rc == BN_OK; i++) rc = write_vit_block(v, i);
    if (rc == BN_OK) rc = copy_float(v, "norm.weight", "norm.weight", 1, &d);
    if (rc == BN_OK) rc = copy_float(v, "norm.bias", "norm.bias", 1, &d);
    if (rc == BN_OK) rc = fetch(v, "head.weight", 2, hw, &x);
    if (rc == BN_OK) rc = add_float(v, "head.weight", x, 2, hw, s->f16);
    if (rc == BN_OK) rc = copy_float(v, "head.bias", "head.bias", 1, &nc);
    return rc;
}

/* ---- EfficientNet --------------------------------------------------------------------- */

/* torchvision's _make_divisible(v, 8). */
static int make_div8(double v)
{
    int n = (int)(v + 4) / 8 * 8;
    if (n < 8) n = 8;
    if (n < 0.9 * v) n += 8;
    return n;
}

typedef struct eff_plan {
    int n;
    uint32_t exp[BN_VISION_MAX_BLOCKS], k[BN_VISION_MAX_BLOCKS], stride[BN_VISION_MAX_BLOCKS];
    uint32_t out[BN_VISION_MAX_BLOCKS], se[BN_VISION_MAX_BLOCKS], in[BN_VISION_MAX_BLOCKS];
    int stage[BN_VISION_MAX_BLOCKS], idx[BN_VISION_MAX_BLOCKS];
} eff_plan;

/* The blocks of the MBConv stages, as torchvision's EfficientNet builds them. */
static void eff_blocks(const bn_vspec *s, eff_plan *p)
{
    p->n = 0;
    for (int st = 0; st < s->n_mb; st++)
        for (int i = 0; i < s->mb[st].layers; i++, p->n++) {
            const int in = i ? s->mb[st].out : s->mb[st].in;
            p->in[p->n] = (uint32_t)in;
            p->exp[p->n] = (uint32_t)make_div8((double)in * s->mb[st].expand_ratio);
            p->k[p->n] = (uint32_t)s->mb[st].kernel;
            p->stride[p->n] = (uint32_t)(i ? 1 : s->mb[st].stride);
            p->out[p->n] = (uint32_t)s->mb[st].out;
            p->se[p->n] = (uint32_t)(in / 4 > 1 ? in / 4 : 1);
            p->stage[p->n] = st;
            p->idx[p->n] = i;
        }
}

static bn_status write_eff_block(vw *v, const eff_plan *p, int b)
{
    char src[96], bn[96], dst[48], sb[96];
    const int st = p->stage[b] + 1, i = p->idx[b];
    const int64_t in = p->in[b], exp = p->exp[b], k = p->k[b];
    int j = 0;
    bn_status rc = BN_OK;
    if (exp != in) {
        snprintf(src, sizeof src, "features.%d.%d.block.0.0.weight", st, i);
        snprintf(bn, sizeof bn, "features.%d.%d.block.0.1", st, i);
        snprintf(dst, sizeof dst, "blk.%d.expand", b);
        rc = add_tlayer(v, dst, src, exp, in, 1, NULL, bn);
        j = 1;
    }
    snprintf(src, sizeof src, "features.%d.%d.block.%d.0.weight", st, i, j);
    snprintf(bn, sizeof bn, "features.%d.%d.block.%d.1", st, i, j);
    snprintf(dst, sizeof dst, "blk.%d.dw", b);
    if (rc == BN_OK) rc = add_tlayer(v, dst, src, exp, 1, (int)k, NULL, bn);
    for (int f = 1; f <= 2 && rc == BN_OK; f++) {
        snprintf(src, sizeof src, "features.%d.%d.block.%d.fc%d.weight", st, i, j + 1, f);
        snprintf(sb, sizeof sb, "features.%d.%d.block.%d.fc%d.bias", st, i, j + 1, f);
        snprintf(dst, sizeof dst, "blk.%d.se%d", b, f);
        rc = add_tlayer(v, dst, src, f == 1 ? p->se[b] : exp, f == 1 ? exp : p->se[b], 1, sb, NULL);
    }
    snprintf(src, sizeof src, "features.%d.%d.block.%d.0.weight", st, i, j + 2);
    snprintf(bn, sizeof bn, "features.%d.%d.block.%d.1", st, i, j + 2);
    snprintf(dst, sizeof dst, "blk.%d.project", b);
    if (rc == BN_OK) rc = add_tlayer(v, dst, src, p->out[b], exp, 1, NULL, bn);
    return rc;
}

static bn_status write_effnet(vw *v)
{
    const bn_vspec *s = v->s;
    eff_plan *p = keep(v, sizeof *p);
    if (!p) return nomem(v);
    eff_blocks(s, p);
    const int64_t c0 = s->mb[0].in, last = s->mb[s->n_mb - 1].out;
    const int64_t head = s->head_width ? s->head_width : 4 * last, nc = s->num_classes;
    bn_gguf_writer *w = v->w;
    bn_gguf_writer_set_u32(w, "efficientnet.block_count", (uint32_t)p->n);
    bn_gguf_writer_set_u32(w, "efficientnet.stem_width", (uint32_t)c0);
    bn_gguf_writer_set_u32(w, "efficientnet.head_width", (uint32_t)head);
    bn_gguf_writer_set_arr(w, "efficientnet.block_expand", BN_GGUF_U32, p->exp, (uint64_t)p->n);
    bn_gguf_writer_set_arr(w, "efficientnet.block_kernel", BN_GGUF_U32, p->k, (uint64_t)p->n);
    bn_gguf_writer_set_arr(w, "efficientnet.block_stride", BN_GGUF_U32, p->stride, (uint64_t)p->n);
    bn_gguf_writer_set_arr(w, "efficientnet.block_out", BN_GGUF_U32, p->out, (uint64_t)p->n);
    bn_gguf_writer_set_arr(w, "efficientnet.block_se", BN_GGUF_U32, p->se, (uint64_t)p->n);
    const int64_t sw[4] = {c0, s->in_chans, 3, 3}, fw[2] = {nc, head};
    float *fc = NULL, *fb = NULL;
    bn_status rc = write_stem(v, "features.0.0.weight", "features.0.1", sw);
    for (int b = 0; b < p->n && rc == BN_OK; b++) rc = write_eff_block(v, p, b);
    char src[64], bn[64];
    snprintf(src, sizeof src, "features.%d.0.weight", s->n_mb + 1);
    snprintf(bn, sizeof bn, "features.%d.1", s->n_mb + 1);
    if (rc == BN_OK) rc = add_tlayer(v, "head", src, head, last, 1, NULL, bn);
    if (rc == BN_OK) rc = fetch(v, "classifier.1.weight", 2, fw, &fc);
    if (rc == BN_OK) rc = fetch(v, "classifier.1.bias", 1, &nc, &fb);
    if (rc == BN_OK) rc = add_float(v, "fc.weight", fc, 2, fw, s->f16);
    if (rc == BN_OK) rc = add_float(v, "fc.bias", fb, 1, &nc, 0);
    return rc;
}

/* ---- the spec and the file ------------------------------------------------------------------ */

static bn_status bad(bn_ctx *ctx, const char *what)
{
    return bn_ctx_set_error(ctx, BN_ERR_RANGE, "vision: %s is out of range", what);
}

static bn_status check_effnet(bn_ctx *ctx, const bn_vspec *s)
{
    int total = 0;
    if (s->n_mb < 1 || s->n_mb > BN_VISION_MAX_MB) return bad(ctx, "blocks");
    for (int i = 0; i < s->n_mb; i++) {
        const float r = s->mb[i].expand_ratio;
        if (!(r >= 1.0f && r <= 16.0f) || s->mb[i].kernel < 1 || s->mb[i].kernel > 15 ||
            s->mb[i].kernel % 2 == 0 || s->mb[i].stride < 1 || s->mb[i].stride > 4 ||
            s->mb[i].in < 1 || s->mb[i].in > MAX_WIDTH / 16 || s->mb[i].out < 1 ||
            s->mb[i].out > MAX_WIDTH / 16 || s->mb[i].layers < 1 || s->mb[i].layers > 32)
            return bad(ctx, "blocks");
        total += s->mb[i].layers;
    }
    if (total > BN_VISION_MAX_BLOCKS) return bad(ctx, "blocks (layers)");
    if (s->head_width < 0 || s->head_width > MAX_WIDTH) return bad(ctx, "head_width");
    if (!(s->bn_eps > 0)) return bad(ctx, "bn_eps");
    return BN_OK;
}

static bn_status check_spec(bn_ctx *ctx, const bn_vspec *s)
{
    if (s->image_size < 1 || s->image_size > MAX_IMAGE) return bad(ctx, "image_size");
    if (s->in_chans < 1 || s->in_chans > BN_VISION_MAX_CHANS) return bad(ctx, "in_chans");
    if (s->num_classes < 1 || s->num_classes > MAX_CLASSES) return bad(ctx, "num_classes");
    for (int c = 0; c < s->in_chans; c++)
        if (!isfinite(s->mean[c]) || !(s->std[c] > 0) || !isfinite(s->std[c]))
            return bad(ctx, "mean/std");
    if (s->arch == BN_VARCH_RESNET) {
        if (s->n_stages < 1 || s->n_stages > BN_VISION_MAX_STAGES) return bad(ctx, "depths");
        for (int i = 0; i < s->n_stages; i++)
            if (s->depths[i] < 1 || s->depths[i] > 64 || s->widths[i] < 1 ||
                s->widths[i] > MAX_WIDTH / 4)
                return bad(ctx, "depths/widths");
        if (s->stem_k < 1 || s->stem_k > 15 || s->stem_s < 1 || s->stem_s > 8)
            return bad(ctx, "stem_kernel/stem_stride");
        if (!(s->bn_eps > 0)) return bad(ctx, "bn_eps");
        return BN_OK;
    }
    if (s->arch == BN_VARCH_EFFICIENTNET) return check_effnet(ctx, s);
    if (s->arch != BN_VARCH_VIT) return bad(ctx, "arch");
    if (s->d < 1 || s->d > MAX_WIDTH || s->heads < 1 || s->d % s->heads)
        return bad(ctx, "embed_dim/num_heads");
    if (s->depth < 1 || s->depth > MAX_DEPTH || s->ff < 1 || s->ff > MAX_FF)
        return bad(ctx, "depth/mlp width");
    if (s->patch < 1 || s->image_size % s->patch) return bad(ctx, "patch_size");
    if (!(s->ln_eps > 0) || s->ln_eps > 1.0f) return bad(ctx, "ln_eps");
    return BN_OK;
}

static void write_common(bn_gguf_writer *w, const bn_vspec *s, const char *arch)
{
    char key[64];
    bn_gguf_writer_set_str(w, "general.architecture", arch);
    if (s->name) bn_gguf_writer_set_str(w, "general.name", s->name);
    snprintf(key, sizeof key, "%s.image_size", arch);
    bn_gguf_writer_set_u32(w, key, (uint32_t)s->image_size);
    snprintf(key, sizeof key, "%s.in_chans", arch);
    bn_gguf_writer_set_u32(w, key, (uint32_t)s->in_chans);
    snprintf(key, sizeof key, "%s.num_classes", arch);
    bn_gguf_writer_set_u32(w, key, (uint32_t)s->num_classes);
    snprintf(key, sizeof key, "%s.image_mean", arch);
    bn_gguf_writer_set_arr(w, key, BN_GGUF_F32, s->mean, (uint64_t)s->in_chans);
    snprintf(key, sizeof key, "%s.image_std", arch);
    bn_gguf_writer_set_arr(w, key, BN_GGUF_F32, s->std, (uint64_t)s->in_chans);
    snprintf(key, sizeof key, "%s.labels", arch);
    if (s->labels) bn_gguf_writer_set_arr_str(w, key, s->labels, (uint64_t)s->num_classes);
}

bn_status bn_vision_write(bn_ctx *ctx, const bn_vspec *s, bn_vsrc_fn src, void *user,
                          const char *path)
{
    bn_status rc = check_spec(ctx, s);
    if (rc != BN_OK) return rc;
    vw v = {ctx, s, src, user, NULL, NULL, 0, 0};
    if (bn_gguf_writer_new(&v.w) != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    const char *arch = s->arch == BN_VARCH_RESNET ? "resnet"
                       : s->arch == BN_VARCH_VIT  ? "vit"
                                                  : "efficientnet";
    write_common(v.w, s, arch);
    rc = s->arch == BN_VARCH_RESNET ? write_resnet(&v)
         : s->arch == BN_VARCH_VIT  ? write_vit(&v)
                                    : write_effnet(&v);
    if (rc == BN_OK) rc = bn_gguf_writer_write(ctx, v.w, path);
    bn_gguf_writer_free(v.w);
    for (int i = 0; i < v.nbufs; i++) bn_free(v.bufs[i]);
    bn_free(v.bufs);
    return rc;
}

/* ---- random weights ------------------------------------------------------------------------ */

static float urand(uint64_t *st) /* uniform in [-1, 1) */
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*st >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

static int ends_with(const char *s, const char *suf)
{
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

bn_status bn_vsrc_random(void *user, bn_ctx *ctx, const char *name, int nd, const int64_t *shape,
                         float *dst)
{
    (void)ctx;
    uint64_t *st = user;
    const int64_t n = numel(nd, shape);
    float base = 0.0f, amp = 0.1f;
    if (nd >= 2 && !strstr(name, "_token") && !strstr(name, "pos_embed")) {
        const int64_t fan_in = n / shape[0];
        amp = sqrtf(6.0f / (float)(fan_in > 0 ? fan_in : 1));
    } else if (ends_with(name, "running_var") || (nd == 1 && ends_with(name, "weight"))) {
        base = 1.0f;
    } else if (nd >= 2) {
        amp = 0.02f;
    }
    for (int64_t i = 0; i < n; i++) {
        const float u = urand(st);
        dst[i] = ends_with(name, "running_var") ? base + 0.2f * fabsf(u) : base + amp * u;
    }
    return BN_OK;
}
