/*
 * model_load.c - BitNet b1.58 models from GGUF: hyperparameters, tensor validation,
 * repacking of the ternary weights, accessors.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bitnet/cpu.h"
#include "bitnet/threadpool.h"
#include "model_internal.h"

const char *const bn__lin_names[BN__N_LIN] = {
        "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

typedef struct arch_def {
    const char *name;
    bn_model_act act;
} arch_def;

static const arch_def g_archs[] = {
        {"bitnet-b1.58", BN_ACT_RELU2},
        {"bitnet", BN_ACT_SILU},
};

void bn_model_params_init(bn_model_params *p)
{
    memset(p, 0, sizeof *p);
}

/* ---- hyperparameters ------------------------------------------------------------------ */

/* <arch>.<key> as an integer in [lo, hi]; def when absent and not required. */
static bn_status hp_int(bn_model *m, const char *key, int required, int64_t def, int64_t lo,
                        int64_t hi, int64_t *out)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->hp.arch, key);
    int64_t v;
    bn_status rc = bn_gguf_get_i64(m->g, name, &v);
    if (rc == BN_ERR_NOT_FOUND) {
        if (required) return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: missing", name);
        v = def;
    } else if (rc != BN_OK) {
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: not an integer", name);
    }
    if (v < lo || v > hi)
        return bn_ctx_set_error(m->ctx, BN_ERR_RANGE, "%s: %lld is out of range [%lld, %lld]", name,
                                (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return BN_OK;
}

static bn_status hp_float(bn_model *m, const char *key, float def, float *out)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->hp.arch, key);
    float v;
    bn_status rc = bn_gguf_get_f32(m->g, name, &v);
    if (rc == BN_ERR_NOT_FOUND)
        v = def;
    else if (rc != BN_OK)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: not a number", name);
    if (!(v > 0.0f) || !isfinite(v))
        return bn_ctx_set_error(m->ctx, BN_ERR_RANGE, "%s: %g is not a positive number", name,
                                (double)v);
    *out = v;
    return BN_OK;
}

static bn_status read_arch(bn_model *m)
{
    const char *a;
    bn_status rc = bn_gguf_get_str(m->g, "general.architecture", &a);
    if (rc == BN_ERR_NOT_FOUND)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "general.architecture: missing");
    if (rc != BN_OK)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "general.architecture: not a string");
    for (size_t i = 0; i < sizeof g_archs / sizeof g_archs[0]; i++) {
        if (strcmp(a, g_archs[i].name) == 0) {
            snprintf(m->hp.arch, sizeof m->hp.arch, "%s", a);
            m->hp.act = g_archs[i].act;
            return BN_OK;
        }
    }
    return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                            "unsupported architecture '%.64s' (supported: bitnet-b1.58, bitnet)",
                            a);
}

/* The vocabulary size: <arch>.vocab_size, else the tokenizer's token count, else the
 * rows of token_embd (checked against the tensor later). */
static bn_status read_vocab(bn_model *m)
{
    char name[128];
    snprintf(name, sizeof name, "%s.vocab_size", m->hp.arch);
    if (bn_gguf_find_key(m->g, name) >= 0)
        return hp_int(m, "vocab_size", 1, 0, 1, BN_MODEL_MAX_VOCAB, &m->hp.n_vocab);
    int64_t i = bn_gguf_find_key(m->g, "tokenizer.ggml.tokens");
    if (i >= 0 && bn_gguf_kv_type(m->g, i) == BN_GGUF_ARRAY) {
        uint64_t n = bn_gguf_arr_n(m->g, i);
        if (n < 1 || n > BN_MODEL_MAX_VOCAB)
            return bn_ctx_set_error(m->ctx, BN_ERR_RANGE,
                                    "tokenizer.ggml.tokens: %llu tokens is out of range",
                                    (unsigned long long)n);
        m->hp.n_vocab = (int64_t)n;
        return BN_OK;
    }
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, "token_embd.weight");
    if (!t) return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "token_embd.weight: missing");
    if (t->n_dims != 2 || t->ne[1] < 1 || t->ne[1] > BN_MODEL_MAX_VOCAB)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                "token_embd.weight: cannot tell the vocabulary size");
    m->hp.n_vocab = t->ne[1];
    return BN_OK;
}

static bn_status read_hparams(bn_model *m)
{
    bn_model_hparams *h = &m->hp;
    bn_status rc = read_arch(m);
    if (rc == BN_OK) rc = read_vocab(m);
    if (rc == BN_OK) rc = hp_int(m, "context_length", 1, 0, 1, BN_MODEL_MAX_CTX, &h->n_ctx_train);
    if (rc == BN_OK) rc = hp_int(m, "embedding_length", 1, 0, 1, BN_MODEL_MAX_EMBD, &h->n_embd);
    if (rc == BN_OK) rc = hp_int(m, "block_count", 1, 0, 1, BN_MODEL_MAX_LAYER, &h->n_layer);
    if (rc == BN_OK) rc = hp_int(m, "feed_forward_length", 1, 0, 1, BN_MODEL_MAX_FF, &h->n_ff);
    if (rc == BN_OK) rc = hp_int(m, "attention.head_count", 1, 0, 1, BN_MODEL_MAX_HEAD, &h->n_head);
    if (rc == BN_OK)
        rc = hp_int(m, "attention.head_count_kv", 0, h->n_head, 1, h->n_head, &h->n_head_kv);
    if (rc != BN_OK) return rc;
    if (h->n_embd % h->n_head != 0 || (h->n_embd / h->n_head) % 2 != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                "%s: embedding_length %lld is not an even head size times "
                                "head_count %lld",
                                h->arch, (long long)h->n_embd, (long long)h->n_head);
    if (h->n_head % h->n_head_kv != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                "%s.attention.head_count_kv: %lld does not divide head_count %lld",
                                h->arch, (long long)h->n_head_kv, (long long)h->n_head);
    h->head_dim = h->n_embd / h->n_head;
    rc = hp_int(m, "rope.dimension_count", 0, h->head_dim, 2, h->head_dim, &h->n_rot);
    if (rc != BN_OK) return rc;
    if (h->n_rot % 2 != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s.rope.dimension_count: %lld is odd",
                                h->arch, (long long)h->n_rot);
    rc = hp_float(m, "attention.layer_norm_rms_epsilon", 1e-5f, &h->eps);
    if (rc == BN_OK) rc = hp_float(m, "rope.freq_base", 10000.0f, &h->rope_base);
    return rc;
}

/* ---- tensors ---------------------------------------------------------------------------- */

/* Finds name and checks its shape: n elements (rows 0) or rows x cols (ne = {cols, rows}). */
static bn_status get_tensor(bn_model *m, const char *name, int64_t rows, int64_t cols,
                            const bn_gguf_tensor **out)
{
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, name);
    *out = t;
    if (!t) return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: missing", name);
    const int want_dims = rows ? 2 : 1;
    int ok = t->ne[0] == cols && t->ne[2] == 1 && t->ne[3] == 1 &&
             (rows ? t->ne[1] == rows : t->ne[1] == 1);
    if (ok) return BN_OK;
    char got[96];
    if (t->n_dims <= 2)
        snprintf(got, sizeof got, t->n_dims == 1 ? "%lld" : "%lldx%lld",
                 (long long)(t->n_dims == 1 ? t->ne[0] : t->ne[1]), (long long)t->ne[0]);
    else
        snprintf(got, sizeof got, "%lldx%lldx%lldx%lld (ne)", (long long)t->ne[0],
                 (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    if (want_dims == 1)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: shape %s, expected %lld", name, got,
                                (long long)cols);
    return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: shape %s, expected %lldx%lld", name, got,
                            (long long)rows, (long long)cols);
}

/* A norm vector of n floats into dst (F32, F16 or BF16 in the file). */
static bn_status load_norm(bn_model *m, const char *name, int64_t n, float *dst)
{
    const bn_gguf_tensor *t;
    bn_status rc = get_tensor(m, name, 0, n, &t);
    if (rc != BN_OK) return rc;
    switch (t->type) {
    case BN_TYPE_F32:
        memcpy(dst, t->data, (size_t)n * sizeof(float));
        break;
    case BN_TYPE_F16:
        bn_f16_to_f32_row(t->data, dst, n);
        break;
    case BN_TYPE_BF16:
        bn_bf16_to_f32_row(t->data, dst, n);
        break;
    default:
        return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                                "%s: type %s is not supported for norms (f32, f16, bf16)", name,
                                bn_type_name(t->type));
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: element %lld is not finite", name,
                                    (long long)i);
    return BN_OK;
}

/* Drops the mapping's pages of bytes [p, p + n) that lie wholly inside the range. */
static void release_pages(const void *p, size_t n)
{
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || n == 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* The optional blk.N.<lin>.scale tensor: one F32 that multiplies the layer's output. */
static bn_status apply_scale_tensor(bn_model *m, const char *base, bn_tmat *w)
{
    char name[96];
    snprintf(name, sizeof name, "%s.scale", base);
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, name);
    if (!t) return BN_OK;
    if (t->type != BN_TYPE_F32 || t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] != 1)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: expected one f32, got %s x%lld", name,
                                bn_type_name(t->type),
                                (long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]));
    float s;
    memcpy(&s, t->data, sizeof s);
    if (!isfinite(s)) return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: not finite", name);
    for (int64_t r = 0; r < w->rows; r++) w->scales[r] *= s;
    return BN_OK;
}

static bn_status load_ternary(bn_model *m, const bn_model_params *p, int layer, int which,
                              int64_t rows, int64_t cols, bn_tmat *w)
{
    char base[64], name[80];
    snprintf(base, sizeof base, "blk.%d.%s", layer, bn__lin_names[which]);
    snprintf(name, sizeof name, "%s.weight", base);
    const bn_gguf_tensor *t;
    bn_status rc = get_tensor(m, name, rows, cols, &t);
    if (rc != BN_OK) return rc;
    const int type = t->type;
    switch (type) {
    case BN_TYPE_I2_S:
        if (cols % BN_QK_I2S != 0)
            return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                                    "%s: i2_s rows of %lld weights (not a multiple of 128)", name,
                                    (long long)cols);
        rc = bn_tmat_from_i2s(w, t->data, t->size, rows, cols);
        break;
    case BN_TYPE_TQ2_0:
    case BN_TYPE_TQ1_0:
        if (cols % BN_QK_TQ != 0)
            return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                                    "%s: %s rows of %lld weights (not a multiple of 256)", name,
                                    bn_type_name(type), (long long)cols);
        rc = type == BN_TYPE_TQ2_0 ? bn_tmat_from_tq2_0(w, t->data, t->size, rows, cols)
                                   : bn_tmat_from_tq1_0(w, t->data, t->size, rows, cols);
        break;
    default:
        return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                                "%s: type %s is not a type of linear layers (ternary: i2_s, "
                                "tq2_0, tq1_0; kept at 8 or 4 bits: q8_0, q4_0)",
                                name, bn_type_name(type));
    }
    if (rc == BN_ERR_NOMEM) return bn_ctx_set_error(m->ctx, rc, "%s: out of memory", name);
    if (rc == BN_ERR_UNSUPPORTED)
        return bn_ctx_set_error(m->ctx, rc, "%s: %s blocks of one row have different scales", name,
                                bn_type_name(type));
    if (rc != BN_OK)
        return bn_ctx_set_error(m->ctx, rc, "%s: invalid %s data (%s)", name, bn_type_name(type),
                                bn_status_str(rc));
    for (int64_t r = 0; r < rows; r++)
        if (!isfinite(w->scales[r]))
            return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: scale is not finite", name);
    rc = apply_scale_tensor(m, base, w);
    if (rc != BN_OK) return rc;
    if (m->hp.weight_type == BN_TYPE_F32) m->hp.weight_type = type; /* the first ternary one */
    m->tmat_bytes += (size_t)(w->rows_pad * w->row_bytes) + (size_t)w->rows * sizeof(float);
    if (!p->keep_mapping) release_pages(t->data, t->size);
    return BN_OK;
}

/* Floats of every norm vector: per layer attn_norm and ffn_norm (n_embd each) and, when
 * the model has them, the sub-norms (n_embd and n_ff); then output_norm. Small by the
 * caps. */
static size_t norm_floats_per_layer(const bn_model_hparams *h)
{
    return (size_t)(2 * h->n_embd + (h->sub_norms ? h->n_embd + h->n_ff : 0));
}

static size_t norm_floats(const bn_model_hparams *h)
{
    return norm_floats_per_layer(h) * (size_t)h->n_layer + (size_t)h->n_embd;
}

/* Sets hp.sub_norms: 1 when attn_sub_norm and ffn_sub_norm are in every layer, 0 when in
 * none; a file with some of them is malformed (the first missing one is named). */
static bn_status find_sub_norms(bn_model *m)
{
    static const char *const sub[2] = {"attn_sub_norm", "ffn_sub_norm"};
    char name[64], missing[64] = "", present[64] = "";
    for (int il = 0; il < m->hp.n_layer; il++)
        for (int i = 0; i < 2; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, sub[i]);
            char *slot = bn_gguf_find_tensor(m->g, name) ? present : missing;
            if (!slot[0]) memcpy(slot, name, sizeof name);
        }
    if (missing[0] && present[0])
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                "%s: missing, but %s is present (sub-norms go in every layer "
                                "or in none)",
                                missing, present);
    m->hp.sub_norms = present[0] != 0;
    return BN_OK;
}

static bn_status load_layer(bn_model *m, const bn_model_params *p, int il, float *norms)
{
    const bn_model_hparams *h = &m->hp;
    bn__layer *L = &m->layers[il];
    const int64_t E = h->n_embd, F = h->n_ff, KV = h->n_head_kv * h->head_dim;
    char name[64];
    bn_status rc = BN_OK;
    static const char *const norm_names[4] = {"attn_norm", "attn_sub_norm", "ffn_norm",
                                              "ffn_sub_norm"};
    const int64_t norm_len[4] = {E, E, E, F};
    float *dst = norms;
    const float **slots[4] = {&L->attn_norm, &L->attn_sub_norm, &L->ffn_norm, &L->ffn_sub_norm};
    for (int i = 0; i < 4 && rc == BN_OK; i++) {
        if (i % 2 == 1 && !h->sub_norms) continue; /* slots stay NULL: no sub-norm */
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, norm_names[i]);
        rc = load_norm(m, name, norm_len[i], dst);
        *slots[i] = dst;
        dst += norm_len[i];
    }
    const int64_t shape[BN__N_LIN][2] = {{E, E}, {KV, E}, {KV, E}, {E, E}, {F, E}, {F, E}, {E, F}};
    for (int i = 0; i < BN__N_LIN && rc == BN_OK; i++) {
        snprintf(name, sizeof name, "blk.%d.%s", il, bn__lin_names[i]);
        rc = bn__qlin_load(m, name, shape[i][0], shape[i][1], &L->ql[i]); /* 8 or 4 bits */
        if (rc == BN_OK && !L->ql[i].type)
            rc = load_ternary(m, p, il, i, shape[i][0], shape[i][1], &L->w[i]);
        if (rc == BN_OK) rc = bn__lowrank_load(m, name, shape[i][0], shape[i][1], &L->lr[i]);
    }
    return rc;
}

/* token_embd and the LM head: F32, F16 or Q8_0 rows, used in place. */
static bn_status check_rows(bn_model *m, const char *name, const bn_gguf_tensor *t)
{
    const int ty = t->type;
    if (ty != BN_TYPE_F32 && ty != BN_TYPE_F16 && ty != BN_TYPE_Q8_0)
        return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED,
                                "%s: type %s is not supported here (f32, f16, q8_0)", name,
                                bn_type_name(ty));
    if (ty == BN_TYPE_Q8_0 && m->hp.n_embd % BN_QK8_0 != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: q8_0 rows of %lld elements", name,
                                (long long)m->hp.n_embd);
    return BN_OK;
}

static bn_status load_embeddings(bn_model *m)
{
    const bn_model_hparams *h = &m->hp;
    const bn_gguf_tensor *te, *to;
    bn_status rc = get_tensor(m, "token_embd.weight", h->n_vocab, h->n_embd, &te);
    if (rc == BN_OK) rc = check_rows(m, "token_embd.weight", te);
    if (rc != BN_OK) return rc;
    to = te;
    m->hp.tied = bn_gguf_find_tensor(m->g, "output.weight") == NULL;
    if (!m->hp.tied) {
        rc = get_tensor(m, "output.weight", h->n_vocab, h->n_embd, &to);
        if (rc == BN_OK) rc = check_rows(m, "output.weight", to);
        if (rc != BN_OK) return rc;
    }
    m->embd = te->data;
    m->embd_row_bytes = te->size / (size_t)h->n_vocab;
    m->head = to->data;
    m->head_row_bytes = to->size / (size_t)h->n_vocab;
    m->hp.embd_type = te->type;
    m->hp.head_type = to->type;
    m->weight_bytes += te->size + (m->hp.tied ? 0 : to->size);
    return BN_OK;
}

typedef struct requant_job {
    bn_model *m;
    float *tmp;           /* (threads, n_embd) */
    bn_block_q8_0 *blk;   /* (threads, n_embd / 32) */
    const float *f16_lut; /* all 65536 f16 values as f32 */
    bn__q8_row_fn q8_row;
    int head_type;   /* the target: BN_TYPE_Q8_0 or BN_MODEL_HEAD_Q6H / _Q4H */
    uint8_t *rowblk; /* Q6H / Q4H into the lanes form: (threads, one row's blocks) */
} requant_job;

/* roundf (half away from zero) for |v| < 2^22, without a libm call. */
static inline int round_away(float v)
{
    int q = (int)v; /* truncates */
    const float f = v - (float)q;
    return q + (f >= 0.5f) - (f <= -0.5f);
}

void bn__model_q8_0_row(const float *x, bn_block_q8_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / BN_QK8_0; b++) {
        const float *xb = x + b * BN_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < BN_QK8_0; j++) {
            const float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK8_0; j++) {
            const float v = xb[j] * id;
            y[b].qs[j] = (int8_t)(fabsf(v) <= 127.5f ? round_away(v) : 0);
        }
    }
}

/* Row r of the file's head (F16, F32 or Q8_0) as floats. */
static void file_head_row(const requant_job *j, int64_t r, float *row)
{
    const bn_model *m = j->m;
    const int64_t E = m->hp.n_embd;
    const uint8_t *src = (const uint8_t *)m->head + (size_t)r * m->head_row_bytes;
    if (m->hp.head_type == BN_TYPE_F16) {
        for (int64_t i = 0; i < E; i++) { /* memcpy: any alignment, one load */
            uint16_t h;
            memcpy(&h, src + 2 * i, sizeof h);
            row[i] = j->f16_lut[h];
        }
    } else if (m->hp.head_type == BN_TYPE_F32) {
        memcpy(row, src, (size_t)E * sizeof(float));
    } else {
        bn_dequantize_row_q8_0((const bn_block_q8_0 *)src, row, E);
    }
}

/* Rows of the file's head (F16, F32 or Q8_0) into the split Q8_0 layout. */
static void requant_rows(void *arg, int tid, int nth)
{
    const requant_job *j = arg;
    bn_model *m = j->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab, nb = E / BN_QK8_0;
    float *row = j->tmp + (size_t)tid * (size_t)E;
    bn_block_q8_0 *blk = j->blk + (size_t)tid * (size_t)nb;
    for (int64_t r = V * tid / nth; r < V * (tid + 1) / nth; r++) {
        const uint8_t *src = (const uint8_t *)m->head + (size_t)r * m->head_row_bytes;
        if (m->hp.head_type == BN_TYPE_Q8_0) {
            memcpy(blk, src, (size_t)nb * sizeof *blk);
        } else {
            file_head_row(j, r, row);
            j->q8_row(row, blk, E);
        }
        for (int64_t b = 0; b < nb; b++) {
            const size_t di = m->head_u8 ? bn__head_d16_index(nb, r, b) : (size_t)(r * nb + b);
            m->head_d[di] = blk[b].d;
            int8_t *qs = m->head_qs + bn__head_block_offset(E, r, b);
            /* -128 (only in a foreign file) would break the AVX2 kernel's sign trick */
            for (int k = 0; k < BN_QK8_0; k++) {
                const int8_t q = blk[b].qs[k] < -127 ? -127 : blk[b].qs[k];
                if (m->head_u8) /* q + 128 */
                    m->head_qs[bn__head_u8_offset(E, r, b * BN_QK8_0 + k)] =
                            (int8_t)((uint8_t)q ^ 0x80);
                else
                    qs[k] = q;
            }
        }
    }
}

/* Rows of the file's head into Q6H or Q4H rows of m->head_blk. */
static void block_rows(void *arg, int tid, int nth)
{
    const requant_job *j = arg;
    bn_model *m = j->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab, nb = E / BN_QK_H;
    float *row = j->tmp + (size_t)tid * (size_t)E;
    const int q6 = j->head_type == BN_MODEL_HEAD_Q6H;
    const size_t rb = (size_t)nb * (q6 ? sizeof(bn_block_q6h) : sizeof(bn_block_q4h));
    for (int64_t r = V * tid / nth; r < V * (tid + 1) / nth; r++) {
        file_head_row(j, r, row);
        void *out = j->rowblk ? j->rowblk + (size_t)tid * rb : m->head_blk + (size_t)r * rb;
        if (q6)
            bn_quantize_row_q6h_ref(row, out, E);
        else
            bn_quantize_row_q4h_ref(row, out, E);
        if (j->rowblk) bn__head_lanes_pack(out, q6, E, r, m->head_blk);
    }
}

static int use_avx2(const bn_kernels *k)
{
#if defined(__x86_64__) || defined(__i386__)
    const bn_cpu_info *c = bn_cpu_info_get();
    return k != bn_kernels_ref() && c->avx2 && c->fma && c->f16c;
#else
    (void)k;
    return 0;
#endif
}

bn__q8_row_fn bn__model_q8_0_row_fn(const bn_kernels *k)
{
#if defined(__x86_64__) || defined(__i386__)
    if (use_avx2(k ? k : bn_kernels_get())) return bn__model_q8_0_row_avx2;
#endif
    (void)k;
    return bn__model_q8_0_row;
}

/* The avx512vnni kernels are chosen: the CPU has what model_avx512.c needs. */
static int use_avx512(const bn_kernels *k)
{
    return k && !strcmp(k->name, "avx512vnni");
}

static bn__head_rows_fn pick_head_rows(const bn_model *m)
{
#if defined(__x86_64__) || defined(__i386__)
    if (m->head_u8) return bn__head_u8_rows_avx512;
    if (use_avx2(m->k)) return bn__head_q8_rows_avx2;
#endif
    (void)m;
    return bn__head_q8_rows_ref;
}

/* The file's head is replaced by `bytes` per row of the new one: the accounting, the
 * file's pages released. */
static void head_replaced(bn_model *m, const bn_model_params *p, size_t row_bytes)
{
    const size_t V = (size_t)m->hp.n_vocab;
    if (!p->keep_mapping) release_pages(m->head, m->head_row_bytes * V);
    m->weight_bytes += row_bytes * V;
    if (!m->hp.tied) m->weight_bytes -= m->head_row_bytes * V;
    m->head_row_bytes = row_bytes;
}

/* The LM head as Q6H or Q4H rows (types.h), made from the file's rows on the pool. */
static bn_status head_to_blocks(bn_model *m, const bn_model_params *p)
{
    const int q6 = p->head_type == BN_MODEL_HEAD_Q6H;
    const bn_model_hparams *h = &m->hp;
    if (h->n_embd % BN_QK_H != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_INVALID,
                                "LM head %s: n_embd %lld is not a multiple of %d", q6 ? "q6" : "q4",
                                (long long)h->n_embd, BN_QK_H);
    const size_t V = (size_t)h->n_vocab, E = (size_t)h->n_embd, nb = E / BN_QK_H;
    const size_t rb = nb * (q6 ? sizeof(bn_block_q6h) : sizeof(bn_block_q4h));
    const size_t nth = (size_t)bn_pool_size(bn_ctx_pool(m->ctx)), huge = (size_t)1 << 21;
    /* the avx512 kernels' lanes form (rows padded to 16), else the blocks row by row */
    const int lanes = use_avx512(m->k) && E <= BN__HEAD_U8_MAX_E;
    const size_t bytes = lanes ? (V + 15) / 16 * nb * bn__head_lanes_rec(q6) : V * rb;
    requant_job j = {m,
                     bn_malloc(nth * E * sizeof(float)),
                     NULL,
                     NULL,
                     NULL,
                     p->head_type,
                     lanes ? bn_malloc(nth * rb) : NULL};
    float *lut = bn_malloc(65536 * sizeof(float));
    m->head_blk = bn_aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
    bn_status rc = BN_OK;
    if (!j.tmp || !lut || !m->head_blk || (lanes && !j.rowblk)) {
        rc = bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "LM head: out of memory");
        goto done;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(m->head_blk, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    if (lanes) memset(m->head_blk, 0, bytes);
    for (uint32_t i = 0; i < 65536; i++) lut[i] = bn_f16_to_f32((uint16_t)i);
    j.f16_lut = lut;
    bn_pool_run(bn_ctx_pool(m->ctx), block_rows, &j);
    head_replaced(m, p, lanes ? nb * bn__head_lanes_rec(q6) / 16 : rb);
    m->head = lanes ? NULL : m->head_blk;
    m->hp.head_type = p->head_type;
#if defined(__x86_64__) || defined(__i386__)
    if (lanes) {
        m->head_rows = q6 ? bn__head_q6_lanes_avx512 : bn__head_q4_lanes_avx512;
        m->head_rows_multi = q6 ? bn__head_q6_lanes_multi_avx512 : bn__head_q4_lanes_multi_avx512;
    }
#endif
done:
    bn_free(j.tmp);
    bn_free(j.rowblk);
    bn_free(lut);
    return rc;
}

/* The LM head as split Q8_0 rows (see model_internal.h), made from the file's F16, F32 or
 * Q8_0 rows on the context's pool. */
static bn_status requantize_head(bn_model *m, const bn_model_params *p)
{
    const bn_model_hparams *h = &m->hp;
    if (p->head_type == 0) return BN_OK;
    if (p->head_type == BN_MODEL_HEAD_Q6H || p->head_type == BN_MODEL_HEAD_Q4H)
        return head_to_blocks(m, p);
    if (p->head_type != BN_TYPE_Q8_0)
        return bn_ctx_set_error(m->ctx, BN_ERR_INVALID, "LM head type %s: use q8_0, q6 or q4",
                                bn_type_name(p->head_type));
    if (h->n_embd % BN_QK8_0 != 0) return BN_OK; /* no Q8_0 rows: keep the file's */
    const size_t V = (size_t)h->n_vocab, E = (size_t)h->n_embd, nb = E / BN_QK8_0;
    bn_threadpool *pool = bn_ctx_pool(m->ctx);
    const size_t nth = (size_t)bn_pool_size(pool);
    requant_job j = {m, NULL, NULL, NULL, bn__model_q8_0_row_fn(m->k), BN_TYPE_Q8_0, NULL};
    float *lut = bn_malloc(65536 * sizeof(float));
    m->head_u8 = use_avx512(m->k) && E <= BN__HEAD_U8_MAX_E;
    /* rows padded to a group of 4, or of 16 for the avx512 kernels (zero weights and
     * scales); huge pages where the system gives them on request, for a stream of hundreds
     * of MB read once per token */
    const size_t pad = m->head_u8 ? 16 : 4, VP = (V + pad - 1) / pad * pad;
    const size_t qs_bytes = VP * E, huge = (size_t)1 << 21;
    m->head_qs = bn_aligned_alloc(huge, (qs_bytes + huge - 1) / huge * huge);
    if (m->head_qs) {
#ifdef MADV_HUGEPAGE
        (void)madvise(m->head_qs, (qs_bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
        memset(m->head_qs + (V / 4 * 4) * E, m->head_u8 ? 0x80 : 0, qs_bytes - (V / 4 * 4) * E);
    }
    m->head_d = bn_calloc(VP * nb, sizeof *m->head_d);
    j.tmp = bn_malloc(nth * E * sizeof(float));
    j.blk = bn_malloc(nth * nb * sizeof *j.blk);
    bn_status rc = BN_OK;
    if (!m->head_qs || !m->head_d || !j.tmp || !j.blk || !lut) {
        rc = bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "LM head: out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < 65536; i++) lut[i] = bn_f16_to_f32((uint16_t)i);
    j.f16_lut = lut;
    bn_pool_run(pool, requant_rows, &j);
    head_replaced(m, p, E + nb * sizeof *m->head_d);
    m->head = NULL;
    m->hp.head_type = BN_TYPE_Q8_0;
    m->head_rows = pick_head_rows(m);
#if defined(__x86_64__) || defined(__i386__)
    if (m->head_u8) m->head_rows_multi = bn__head_u8_rows_multi_avx512;
#endif
done:
    bn_free(j.tmp);
    bn_free(j.blk);
    bn_free(lut);
    return rc;
}

static bn_status load_weights(bn_model *m, const bn_model_params *p)
{
    const bn_model_hparams *h = &m->hp;
    bn_status rc = find_sub_norms(m);
    if (rc != BN_OK) return rc;
    const size_t per_layer = norm_floats_per_layer(h), n_norm = norm_floats(h);
    m->norms = bn_malloc(n_norm * sizeof(float));
    m->layers = bn_calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->norms || !m->layers) return bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "out of memory");
    rc = load_embeddings(m);
    if (rc == BN_OK) rc = requantize_head(m, p);
    if (rc == BN_OK) rc = load_norm(m, "output_norm.weight", h->n_embd, m->norms);
    m->output_norm = m->norms;
    for (int il = 0; il < h->n_layer && rc == BN_OK; il++)
        rc = load_layer(m, p, il, m->norms + h->n_embd + per_layer * (size_t)il);
    m->weight_bytes += m->tmat_bytes + n_norm * sizeof(float);
    return rc;
}

bn_status bn_model_load(bn_ctx *ctx, const char *path, const bn_model_params *p, bn_model **out)
{
    BN_ASSERT(ctx && path && out);
    *out = NULL;
    bn_model_params defaults;
    if (!p) {
        bn_model_params_init(&defaults);
        p = &defaults;
    }
    bn_model *m = bn_calloc(1, sizeof *m);
    if (!m) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    m->ctx = ctx;
    m->k = p->kernels ? p->kernels : bn_kernels_get();
    bn_status rc = bn_gguf_open(ctx, path, &m->g);
    if (rc == BN_OK) rc = read_hparams(m);
    if (rc == BN_OK) rc = load_weights(m, p);
    if (rc != BN_OK) {
        bn_model_free(m);
        return rc;
    }
    *out = m;
    return BN_OK;
}

void bn_model_free(bn_model *m)
{
    if (!m) return;
    if (m->layers)
        for (int64_t il = 0; il < m->hp.n_layer; il++)
            for (int i = 0; i < BN__N_LIN; i++) {
                bn_tmat_release(&m->layers[il].w[i]);
                bn__lowrank_release(&m->layers[il].lr[i]);
            }
    bn_free(m->layers);
    bn_free(m->norms);
    bn_free(m->head_qs);
    bn_free(m->head_d);
    bn_free(m->head_blk);
    bn_gguf_close(m->g);
    bn_free(m);
}

/* ---- accessors -------------------------------------------------------------------------- */

const bn_model_hparams *bn_model_hparams_get(const bn_model *m)
{
    return &m->hp;
}

int64_t bn_model_n_vocab(const bn_model *m)
{
    return m->hp.n_vocab;
}

int64_t bn_model_n_ctx_train(const bn_model *m)
{
    return m->hp.n_ctx_train;
}

const bn_gguf *bn_model_gguf(const bn_model *m)
{
    return m->g;
}

bn_ctx *bn_model_ctx(const bn_model *m)
{
    return m->ctx;
}

size_t bn_model_weight_bytes(const bn_model *m)
{
    return m->weight_bytes;
}

size_t bn_model_file_size(const bn_model *m)
{
    return bn_gguf_file_size(m->g);
}

const char *bn_model_head_name(const bn_model *m)
{
    switch (m->hp.head_type) {
    case BN_MODEL_HEAD_Q6H:
        return "q6";
    case BN_MODEL_HEAD_Q4H:
        return "q4";
    default:
        return bn_type_name(m->hp.head_type);
    }
}

size_t bn_model_bytes_per_token(const bn_model *m)
{
    const bn_model_hparams *h = &m->hp;
    return m->tmat_bytes + norm_floats(h) * sizeof(float) + m->head_row_bytes * (size_t)h->n_vocab;
}
