/*
 * train_export.c - a trained model as a bitnet-b1.58 GGUF (the layout of
 * microsoft/BitNet-b1.58-2B-4T's GGUF): token_embd F16 (also the LM head), output_norm F32,
 * and per layer blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_sub_norm,
 * ffn_norm, ffn_gate, ffn_up, ffn_down, ffn_sub_norm}. BitLinear weights are ternarized with
 * the forward pass's absmean (one scale per tensor), so the engine multiplies by exactly the
 * ternary values the trainer used. The tokenizer's tokenizer.* keys are copied in.
 */
#include <stdio.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "train_internal.h"

#define ARCH "bitnet-b1.58"

/* Buffers the writer references until it has written the file. */
typedef struct bufs {
    void **p;
    size_t n, cap;
} bufs;

static void *bufs_alloc(bufs *b, size_t size)
{
    if (b->n == b->cap) {
        const size_t cap = b->cap ? 2 * b->cap : 64;
        void **np = bn_malloc(cap * sizeof *np);
        if (!np) return NULL;
        if (b->n) memcpy(np, b->p, b->n * sizeof *np);
        bn_free(b->p);
        b->p = np;
        b->cap = cap;
    }
    void *m = bn_malloc(size ? size : 1);
    if (m) b->p[b->n++] = m;
    return m;
}

static void bufs_release(bufs *b)
{
    for (size_t i = 0; i < b->n; i++) bn_free(b->p[i]);
    bn_free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- tokenizer keys ----------------------------------------------------------------------- */

static bn_status copy_tokenizer(bn_trainer *tr, bn_gguf_writer *w)
{
    if (tr->tok_len == 0) return BN_OK;
    bn_gguf *g;
    bn_status rc = bn_gguf_open_memory(tr->ctx, tr->tok, tr->tok_len, &g);
    if (rc != BN_OK) return rc;
    for (int64_t i = 0; i < bn_gguf_n_kv(g) && rc == BN_OK; i++) {
        const char *key = bn_gguf_key(g, i);
        if (strncmp(key, "tokenizer.", 10) != 0) continue;
        rc = bn_gguf_writer_copy_kv(w, g, i);
        if (rc != BN_OK) rc = bn_ctx_set_error(tr->ctx, rc, "cannot copy tokenizer key %s", key);
    }
    bn_gguf_close(g);
    return rc;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static bn_status add_f32(bn_gguf_writer *w, const char *name, const float *x, int64_t rows,
                         int64_t cols)
{
    const int64_t ne[2] = {cols, rows};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_F32, rows > 1 ? 2 : 1, ne, x,
                                     (size_t)(rows * cols) * sizeof(float));
}

static bn_status add_f16(bn_gguf_writer *w, const char *name, const float *x, int64_t rows,
                         int64_t cols, bufs *b)
{
    const size_t n = (size_t)(rows * cols);
    uint16_t *h = bufs_alloc(b, n * sizeof *h);
    if (!h) return BN_ERR_NOMEM;
    bn_f32_to_f16_row(x, h, (int64_t)n);
    const int64_t ne[2] = {cols, rows};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_F16, 2, ne, h, n * sizeof *h);
}

/* A BitLinear weight (rows x cols) ternarized by absmean and packed as type. */
static bn_status add_ternary(bn_trainer *tr, bn_gguf_writer *w, const char *name, const float *x,
                             int64_t rows, int64_t cols, int type, bufs *b)
{
    const int64_t n = rows * cols, ne[2] = {cols, rows};
    if (type == BN_TYPE_F32) return add_f32(w, name, x, rows, cols);
    if (type == BN_TYPE_F16) return add_f16(w, name, x, rows, cols, b);
    const int64_t need = type == BN_TYPE_I2_S ? BN_QK_I2S : BN_QK_TQ;
    if (cols % need != 0)
        return bn_ctx_set_error(tr->ctx, BN_ERR_UNSUPPORTED,
                                "%s: %s needs input widths that are multiples of %lld, not %lld",
                                name, bn_type_name(type), (long long)need, (long long)cols);
    int8_t *q = bn_malloc((size_t)n);
    if (!q) return BN_ERR_NOMEM;
    float scale;
    bn_quantize_absmean(x, rows, cols, BN_QGRAN_TENSOR, 0, q, &scale);
    size_t size = 0;
    if (type == BN_TYPE_I2_S)
        size = bn_i2s_bytes(n);
    else
        bn_type_row_bytes(type, n, &size);
    uint8_t *out = bufs_alloc(b, size);
    if (!out) {
        bn_free(q);
        return BN_ERR_NOMEM;
    }
    if (type == BN_TYPE_I2_S)
        bn_pack_i2s(q, scale, n, out);
    else if (type == BN_TYPE_TQ2_0)
        bn_pack_tq2_0(q, scale, n, out);
    else
        bn_pack_tq1_0(q, scale, n, out);
    bn_free(q);
    return bn_gguf_writer_add_tensor(w, name, type, 2, ne, out, size);
}

static bn_status add_metadata(bn_trainer *tr, bn_gguf_writer *w)
{
    const bn_train_model_config *c = &tr->cfg;
    bn_status rc = bn_gguf_writer_set_str(w, "general.architecture", ARCH);
    if (rc == BN_OK) rc = bn_gguf_writer_set_str(w, "general.name", "bitnet-trained");
    const struct {
        const char *key;
        uint32_t v;
    } u[] = {
            {ARCH ".vocab_size", (uint32_t)c->vocab_size},
            {ARCH ".context_length", (uint32_t)c->ctx_len},
            {ARCH ".embedding_length", (uint32_t)c->dim},
            {ARCH ".block_count", (uint32_t)c->n_layer},
            {ARCH ".feed_forward_length", (uint32_t)c->ffn_dim},
            {ARCH ".rope.dimension_count", (uint32_t)(c->dim / c->n_head)},
            {ARCH ".attention.head_count", (uint32_t)c->n_head},
            {ARCH ".attention.head_count_kv", (uint32_t)c->n_kv_head},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0] && rc == BN_OK; i++)
        rc = bn_gguf_writer_set_u32(w, u[i].key, u[i].v);
    if (rc == BN_OK)
        rc = bn_gguf_writer_set_f32(w, ARCH ".attention.layer_norm_rms_epsilon", c->norm_eps);
    if (rc == BN_OK) rc = bn_gguf_writer_set_f32(w, ARCH ".rope.freq_base", c->rope_theta);
    if (rc == BN_OK) rc = bn_gguf_writer_set_u64(w, "general.training.steps", (uint64_t)tr->step);
    if (rc == BN_OK) rc = bn_gguf_writer_set_bool(w, "general.training.fp32", tr->hp.fp32);
    return rc;
}

static bn_status add_tensors(bn_trainer *tr, bn_gguf_writer *w, int type, bufs *b)
{
    static const struct {
        int p;
        const char *name;
    } names[] = {
            {BN__P_ATTN_NORM, "attn_norm"},
            {BN__P_WQ, "attn_q"},
            {BN__P_WK, "attn_k"},
            {BN__P_WV, "attn_v"},
            {BN__P_WO, "attn_output"},
            {BN__P_ATTN_SUB, "attn_sub_norm"},
            {BN__P_FFN_NORM, "ffn_norm"},
            {BN__P_WG, "ffn_gate"},
            {BN__P_WU, "ffn_up"},
            {BN__P_WD, "ffn_down"},
            {BN__P_FFN_SUB, "ffn_sub_norm"},
    };
    const bn__param_layout *lay = &tr->lay;
    float *P = tr->params;
    bn_status rc = add_f16(w, "token_embd.weight", P + lay->off[BN__P_WTE], lay->rows[BN__P_WTE],
                           lay->cols[BN__P_WTE], b);
    if (rc == BN_OK)
        rc = add_f32(w, "output_norm.weight", P + lay->off[BN__P_OUT_NORM], 1,
                     lay->cols[BN__P_OUT_NORM]);
    for (int l = 0; l < tr->cfg.n_layer && rc == BN_OK; l++) {
        for (size_t i = 0; i < sizeof names / sizeof names[0] && rc == BN_OK; i++) {
            const int p = names[i].p;
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[i].name);
            const float *x = bn__param(lay, P, p, l);
            if (lay->ternary[p])
                rc = add_ternary(tr, w, name, x, lay->rows[p], lay->cols[p], type, b);
            else
                rc = add_f32(w, name, x, 1, lay->cols[p]);
        }
    }
    return rc;
}

bn_status bn_trainer_export_gguf(bn_trainer *tr, const char *path, int type)
{
    if (type != BN_TYPE_I2_S && type != BN_TYPE_TQ2_0 && type != BN_TYPE_TQ1_0 &&
        type != BN_TYPE_F32 && type != BN_TYPE_F16)
        return bn_ctx_set_error(tr->ctx, BN_ERR_UNSUPPORTED,
                                "export type %s is not supported (i2_s, tq2_0, tq1_0, f16, f32)",
                                bn_type_name(type));
    bn_gguf_writer *w;
    bufs b = {0};
    bn_status rc = bn_gguf_writer_new(&w);
    if (rc != BN_OK) return bn_ctx_set_error(tr->ctx, rc, "out of memory (GGUF writer)");
    rc = add_metadata(tr, w);
    if (rc == BN_OK) rc = copy_tokenizer(tr, w);
    if (rc == BN_OK) rc = add_tensors(tr, w, type, &b);
    if (rc == BN_OK)
        rc = bn_gguf_writer_write(tr->ctx, w, path);
    else if (bn_ctx_status(tr->ctx) != rc)
        rc = bn_ctx_set_error(tr->ctx, rc, "export to %s failed: %s", path, bn_status_str(rc));
    bn_gguf_writer_free(w);
    bufs_release(&b);
    return rc;
}
