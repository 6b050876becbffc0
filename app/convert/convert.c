/* convert.c - the conversion itself: plan the GGUF, write it in two passes (the engine's
 * writer lays out the header with zero-filled data from one buffer of the largest tensor,
 * then each tensor is converted from the source and written in place), verify it with the
 * engine, validate it against the f32 reference, and rename it into place. */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/tokenizer.h"
#include "bitnet/types.h"
#include "common/model_common.h"
#include "common/cli.h"

#define MAX_PROMPT_TOKENS 64
#define MAX_TEXT_TOKENS   128
#define MAX_PROMPTS       32
#define MAX_CALIB_TOKENS  2048 /* calibration: at most this many tokens of the text */
#define CALIB_CHUNK       128  /* in sequences of this many (or n_ctx) */

int cv_poll(const cv_opts *o)
{
    if (o->throttle_ms) usleep((useconds_t)o->throttle_ms * 1000);
    return o->stop && *o->stop;
}

void cv_opts_init(cv_opts *o)
{
    memset(o, 0, sizeof *o);
    o->type = BN_TYPE_I2_S;
    o->embd_type = BN_TYPE_F16;
    o->validate = 1;
    o->method = -1;
    o->scales = -1;
    o->mixed_type = BN_TYPE_Q8_0;
}

/* ---- the plan ------------------------------------------------------------------------------ */

enum { P_NORM, P_EMBD, P_TERNARY, P_LR_A, P_LR_B }; /* P_LR_*: --lowrank factors */

typedef struct plan_item {
    char name[96]; /* GGUF name */
    char src[160]; /* Hugging Face name */
    int kind, type, n_dims;
    int64_t ne[2]; /* ne[0] innermost */
    size_t size;
} plan_item;

typedef struct conv {
    const cv_opts *o;
    cv_source src;
    bn_ctx *ctx;
    bn_threadpool *pool;
    plan_item *plan;
    int n_plan;
    size_t max_size;
    uint64_t total_bytes, done_bytes;
    double t0;
    char tmp[4200];
    int fd; /* tmp, open for writing from pass 2 to the commit; -1 when not */
    bn_tokenizer *tok;
    const char *tok_kind;
    cv_seqs seqs;
    int text_seq;
    float *ref_logits;
    cJSON *report, *warnings;
    const char *phase; /* what it is doing, for the message when it is stopped */
    cv_calib cal;      /* --calibrate: the codes of every linear layer */
    int calibrated;
    cv_mixed mx;               /* --mixed: the layers ranked by sensitivity, how many kept */
    cJSON *tradeoff;           /* --mixed: the size / quality trade-off (tensor bytes) */
    cv_lowrank lr;             /* --lowrank: the factors of the layer being written */
    double lr_energy, lr_macs; /* summed over the layers */
    uint64_t lr_bytes;
} conv;

static int plan_add(conv *c, const char *name, const char *src, int kind, int type, int64_t cols,
                    int64_t rows, char *err, size_t errsz)
{
    plan_item *it = &c->plan[c->n_plan++];
    snprintf(it->name, sizeof it->name, "%s", name);
    snprintf(it->src, sizeof it->src, "%s", src ? src : "");
    it->kind = kind;
    it->type = type;
    it->n_dims = rows > 1 || kind != P_NORM ? 2 : 1;
    it->ne[0] = cols;
    it->ne[1] = rows;
    size_t row;
    if (type == BN_TYPE_I2_S) {
        it->size = bn_i2s_bytes(rows * cols);
    } else if (bn_type_row_bytes(type, cols, &row) != BN_OK) {
        return cm_fail(err, errsz, "%s: %lld inputs do not fit %s (it needs a multiple of %lld)",
                       src, (long long)cols, bn_type_name(type),
                       (long long)bn_type_get(type)->block_size);
    } else {
        it->size = row * (size_t)rows;
    }
    if (type == BN_TYPE_I2_S && cols % BN_QK_I2S)
        return cm_fail(err, errsz,
                       "%s: %lld inputs do not fit i2_s (a multiple of 128); try "
                       "another --type",
                       src, (long long)cols);
    if (it->size > c->max_size) c->max_size = it->size;
    c->total_bytes += it->size;
    return 0;
}

/* The tensors of one layer: GGUF name, Hugging Face name, and shape. */
static const struct {
    const char *gguf, *hf;
    int kind, dim; /* dim: 0 E, 1 F */
    int64_t rows;  /* 0: E, 1: KVD, 2: F (ternary rows) */
    int in_f;
} L[] = {
        {"attn_norm", "input_layernorm", P_NORM, 0, 0, 0},
        {"attn_q", "self_attn.q_proj", P_TERNARY, 0, 0, 0},
        {"attn_k", "self_attn.k_proj", P_TERNARY, 0, 1, 0},
        {"attn_v", "self_attn.v_proj", P_TERNARY, 0, 1, 0},
        {"attn_sub_norm", "self_attn.attn_sub_norm", P_NORM, 0, 0, 0}, /* BitNet only */
        {"attn_output", "self_attn.o_proj", P_TERNARY, 0, 0, 0},
        {"ffn_norm", "post_attention_layernorm", P_NORM, 0, 0, 0},
        {"ffn_gate", "mlp.gate_proj", P_TERNARY, 0, 2, 0},
        {"ffn_up", "mlp.up_proj", P_TERNARY, 0, 2, 0},
        {"ffn_sub_norm", "mlp.ffn_sub_norm", P_NORM, 1, 0, 0}, /* BitNet only */
        {"ffn_down", "mlp.down_proj", P_TERNARY, 0, 0, 1},
};

int cv_hf_name(const char *gguf, char *out, size_t n)
{
    int il, len = 0;
    char part[64];
    if (!strcmp(gguf, "token_embd.weight")) return snprintf(out, n, "model.embed_tokens.weight"), 0;
    if (!strcmp(gguf, "output.weight")) return snprintf(out, n, "lm_head.weight"), 0;
    if (!strcmp(gguf, "output_norm.weight")) return snprintf(out, n, "model.norm.weight"), 0;
    if (sscanf(gguf, "blk.%d.%63[a-z_].weight%n", &il, part, &len) != 2 || gguf[len] || il < 0)
        return -1;
    for (size_t k = 0; k < sizeof L / sizeof L[0]; k++)
        if (!strcmp(part, L[k].gguf))
            return snprintf(out, n, "model.layers.%d.%s.weight", il, L[k].hf), 0;
    return -1;
}

/* The two factors of the ternary tensor just planned (c->plan[c->n_plan - 1]): a is
 * rank x cols, b rows x rank, F16. */
static int plan_lowrank(conv *c, int il, const char *lin, char *err, size_t errsz)
{
    const plan_item *t = &c->plan[c->n_plan - 1];
    const int64_t cols = t->ne[0], rows = t->ne[1], most = rows < cols ? rows : cols;
    const int64_t r = c->o->lowrank < most ? c->o->lowrank : most;
    char src[160], name[96];
    snprintf(src, sizeof src, "%s", t->src);
    snprintf(name, sizeof name, "blk.%d.%s.lowrank_a", il, lin);
    int rc = plan_add(c, name, src, P_LR_A, BN_TYPE_F16, cols, r, err, errsz);
    snprintf(name, sizeof name, "blk.%d.%s.lowrank_b", il, lin);
    if (rc == 0) rc = plan_add(c, name, src, P_LR_B, BN_TYPE_F16, r, rows, err, errsz);
    c->lr_macs += (double)(r * (rows + cols));
    return rc;
}

static int make_plan(conv *c, char *err, size_t errsz)
{
    const cv_hparams *h = &c->src.hp;
    const int64_t E = h->n_embd, F = h->n_ff, KVD = h->n_head_kv * h->head_dim;
    c->plan = calloc((size_t)(h->n_layer * 25 + 3), sizeof *c->plan);
    if (!c->plan) return cm_fail(err, errsz, "out of memory");
    const int wt = c->o->type, et = c->o->embd_type, bitnet = h->arch == CV_ARCH_BITNET;
    int rc = plan_add(c, "token_embd.weight", "model.embed_tokens.weight", P_EMBD, et, E,
                      h->n_vocab, err, errsz);
    for (int il = 0; rc == 0 && il < h->n_layer; il++)
        for (size_t k = 0; rc == 0 && k < sizeof L / sizeof L[0]; k++) {
            char name[96], src[160];
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, L[k].gguf);
            snprintf(src, sizeof src, "model.layers.%d.%s.weight", il, L[k].hf);
            /* LLaMA has no sub-norms: none is written, and the engine quantizes the inputs
             * of attn_output and ffn_down as they are, as the LLaMA reference computes */
            if (!bitnet && strstr(L[k].gguf, "sub_norm")) continue;
            if (L[k].kind == P_NORM) {
                int64_t n = L[k].dim ? F : E;
                rc = plan_add(c, name, src, P_NORM, BN_TYPE_F32, n, 1, err, errsz);
            } else {
                int64_t rows = L[k].rows == 0 ? E : L[k].rows == 1 ? KVD : F;
                const int kept = c->mx.k > 0 && cv_mixed_kept(&c->mx, &c->cal, src);
                rc = plan_add(c, name, src, P_TERNARY, kept ? c->o->mixed_type : wt,
                              L[k].in_f ? F : E, rows, err, errsz);
                if (rc == 0 && c->o->lowrank > 0 && !kept)
                    rc = plan_lowrank(c, il, L[k].gguf, err, errsz);
            }
        }
    if (rc == 0)
        rc = plan_add(c, "output_norm.weight", "model.norm.weight", P_NORM, BN_TYPE_F32, E, 1, err,
                      errsz);
    if (rc == 0 && !h->tied)
        rc = plan_add(c, "output.weight", "lm_head.weight", P_EMBD, et, E, h->n_vocab, err, errsz);
    /* every source tensor the plan names must exist with the right element count */
    for (int i = 0; rc == 0 && i < c->n_plan; i++) {
        const plan_item *it = &c->plan[i];
        const cv_tensor *t = cv_source_find(&c->src, it->src);
        if (it->kind == P_LR_A || it->kind == P_LR_B) continue; /* made, not read */
        uint64_t want = (uint64_t)(it->ne[0] * it->ne[1]);
        if (it->kind == P_TERNARY && c->src.hp.packed) want /= 4;
        if (!t)
            rc = cm_fail(err, errsz, "%s: tensor %s is missing", c->src.weights, it->src);
        else if (t->numel != want)
            rc = cm_fail(err, errsz, "%s: %llu elements, the config needs %llu", it->src,
                         (unsigned long long)t->numel, (unsigned long long)want);
    }
    return rc;
}

/* ---- metadata ----------------------------------------------------------------------------------
 */

static int set_meta(conv *c, bn_gguf_writer *w, char *err, size_t errsz)
{
    const cv_hparams *h = &c->src.hp;
    const char *arch = h->arch == CV_ARCH_BITNET ? "bitnet-b1.58" : "bitnet";
    char key[128];
    const char *base = strrchr(c->src.dir, '/');
    bn_status st = bn_gguf_writer_set_str(w, "general.architecture", arch);
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "general.name", base ? base + 1 : c->src.dir);
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "general.source.architecture", h->arch_name);
    const struct {
        const char *k;
        int64_t v;
    } u[] = {{"context_length", h->n_ctx},          {"embedding_length", h->n_embd},
             {"block_count", h->n_layer},           {"feed_forward_length", h->n_ff},
             {"attention.head_count", h->n_head},   {"attention.head_count_kv", h->n_head_kv},
             {"rope.dimension_count", h->head_dim}, {"vocab_size", h->n_vocab}};
    for (size_t i = 0; st == BN_OK && i < sizeof u / sizeof u[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, u[i].k);
        st = bn_gguf_writer_set_u32(w, key, (uint32_t)u[i].v);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, h->eps);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (st == BN_OK) st = bn_gguf_writer_set_f32(w, key, h->rope_theta);
    if (st != BN_OK) return cm_fail(err, errsz, "GGUF metadata: %s", bn_status_str(st));
    if (c->o->no_tokenizer) return 0;
    return cv_tokenizer(c->ctx, &c->src, w, &c->tok, &c->tok_kind, c->warnings, err, errsz);
}

/* ---- producing one tensor's bytes
 * ---------------------------------------------------------------- */

static int lowrank_copy(conv *c, const cv_lowrank *from, const char *src, char *err, size_t errsz)
{
    cv_lowrank_release(&c->lr);
    const size_t na = (size_t)(from->rank * from->cols), nb = (size_t)(from->rows * from->rank);
    c->lr = *from;
    c->lr.a = malloc(na * sizeof *c->lr.a);
    c->lr.b = malloc(nb * sizeof *c->lr.b);
    if (!c->lr.a || !c->lr.b) {
        cv_lowrank_release(&c->lr);
        return cm_fail(err, errsz, "out of memory (low rank: %s)", src);
    }
    memcpy(c->lr.a, from->a, na * sizeof *c->lr.a);
    memcpy(c->lr.b, from->b, nb * sizeof *c->lr.b);
    snprintf(c->lr.src, sizeof c->lr.src, "%s", src);
    c->lr_energy += c->lr.energy;
    return 0;
}

/* The factors of src's residual into c->lr (kept for the second factor): the float weight,
 * and the codes and scales written for it (calibrated, or absmean as produce makes them). */
static int lowrank_compute(conv *c, const char *src, char *err, size_t errsz)
{
    const cv_tensor *t = cv_source_find(&c->src, src);
    const int64_t N = t ? t->shape[0] : 0, K = t ? t->shape[1] : 0;
    const cv_calib_layer *cl = c->calibrated ? cv_calib_find(&c->cal, src) : NULL;
    if (cl && cl->lr.rank > 0) /* chosen in calibration for the layer's output error */
        return lowrank_copy(c, &cl->lr, src, err, errsz);
    float *w = malloc((size_t)(N * K) * sizeof *w), *rs = malloc((size_t)N * sizeof *rs);
    int8_t *q = malloc((size_t)(N * K));
    float scale = 0;
    int rc = t && w && rs && q ? 0 : cm_fail(err, errsz, "out of memory (low rank: %s)", src);
    if (rc == 0) rc = cv_linear_f32(&c->src, src, N, K, w, err, errsz);
    if (rc == 0 && cl) {
        memcpy(q, cl->q, (size_t)(N * K));
        memcpy(rs, cl->row_scale, (size_t)N * sizeof *rs);
    } else if (rc == 0) {
        rc = cv_linear_ternary(&c->src, src, N, K, q, &scale, err, errsz);
        for (int64_t r = 0; r < N; r++) rs[r] = scale;
    }
    if (rc == 0) rc = cv_lowrank_factors(c->ctx, w, q, rs, N, K, c->o->lowrank, &c->lr, err, errsz);
    if (rc == 0) {
        snprintf(c->lr.src, sizeof c->lr.src, "%s", src);
        c->lr_energy += c->lr.energy;
    }
    free(w);
    free(rs);
    free(q);
    return rc;
}

static int lowrank_factor(conv *c, const plan_item *it, uint8_t *out, char *err, size_t errsz)
{
    if (strcmp(c->lr.src, it->src) && lowrank_compute(c, it->src, err, errsz) != 0) return -1;
    const cv_lowrank *lr = &c->lr;
    const int a = it->kind == P_LR_A;
    if (it->ne[0] != (a ? lr->cols : lr->rank) || it->ne[1] != (a ? lr->rank : lr->rows))
        return cm_fail(err, errsz, "%s: low-rank factors of another shape", it->name);
    const float *f = a ? lr->a : lr->b;
    const int64_t n = it->ne[0] * it->ne[1];
    if (cv_check_finite(it->name, f, n, it->ne[0], 0, err, errsz) != 0) return -1;
    bn_f32_to_f16_row(f, (uint16_t *)out, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(bn_f16_to_f32(((uint16_t *)out)[i])))
            return cm_fail(err, errsz, "%s: a value beyond the f16 range", it->name);
    c->lr_bytes += it->size;
    return 0;
}

/* A linear layer kept at 8 or 4 bits (--mixed): its float weights as Q8_0 / Q4_0 rows. */
static int produce_kept(conv *c, const plan_item *it, uint8_t *out, char *err, size_t errsz)
{
    const int64_t K = it->ne[0], N = it->ne[1];
    float *w = malloc((size_t)(N * K) * sizeof *w);
    int rc = w ? 0 : cm_fail(err, errsz, "out of memory");
    if (rc == 0) rc = cv_linear_f32(&c->src, it->src, N, K, w, err, errsz);
    if (rc == 0) rc = cv_check_finite(it->src, w, N * K, K, 0, err, errsz);
    size_t rb = 0;
    bn_type_row_bytes(it->type, K, &rb);
    for (int64_t r = 0; rc == 0 && r < N; r++) {
        if (it->type == BN_TYPE_Q8_0)
            bn_quantize_row_q8_0(w + r * K, (bn_block_q8_0 *)(out + (size_t)r * rb), K);
        else
            bn_quantize_row_q4_0(w + r * K, (bn_block_q4_0 *)(out + (size_t)r * rb), K);
    }
    free(w);
    return rc;
}

static int produce(conv *c, const plan_item *it, uint8_t *out, char *err, size_t errsz)
{
    const int64_t cols = it->ne[0], rows = it->ne[1];
    if (it->kind == P_NORM) return cv_vector_f32(&c->src, it->src, cols, (float *)out, err, errsz);
    if (it->kind == P_EMBD) {
        const cv_tensor *t = cv_source_find(&c->src, it->src);
        const void *raw;
        void *own;
        if (cv_source_raw(&c->src, t, &raw, &own, err, errsz)) return -1;
        float *f = malloc((size_t)cols * sizeof *f);
        if (!f) {
            free(own);
            return cm_fail(err, errsz, "out of memory");
        }
        size_t rb;
        bn_type_row_bytes(it->type, cols, &rb);
        int rc = 0;
        for (int64_t r = 0; rc == 0 && r < rows; r++) {
            if (r % 4096 == 0 && c->o->stop && *c->o->stop) rc = -2;
            if (rc != 0) break;
            cv_rows_f32(t, raw, r, r + 1, f);
            if ((rc = cv_check_finite(it->src, f, cols, cols, r, err, errsz)) != 0) break;
            if (it->type == BN_TYPE_F16)
                bn_f32_to_f16_row(f, (uint16_t *)(out + (size_t)r * rb), cols);
            else
                bn_quantize_row_q8_0(f, (bn_block_q8_0 *)(out + (size_t)r * rb), cols);
        }
        free(f);
        cv_source_release(&c->src, t, own);
        return rc;
    }
    if (it->kind == P_LR_A || it->kind == P_LR_B) return lowrank_factor(c, it, out, err, errsz);
    if (it->type == BN_TYPE_Q8_0 || it->type == BN_TYPE_Q4_0)
        return produce_kept(c, it, out, err, errsz);
    const cv_calib_layer *cl = c->calibrated ? cv_calib_find(&c->cal, it->src) : NULL;
    if (c->calibrated && (!cl || cl->rows != rows || cl->cols != cols))
        return cm_fail(err, errsz, "%s: not calibrated", it->src);
    int8_t *q = cl ? cl->q : malloc((size_t)(rows * cols));
    if (!q) return cm_fail(err, errsz, "out of memory");
    float scale = cl ? cl->scale : 0;
    int rc = cl ? 0 : cv_linear_ternary(&c->src, it->src, rows, cols, q, &scale, err, errsz);
    if (rc == 0 && it->type == BN_TYPE_I2_S) {
        bn_pack_i2s(q, scale, rows * cols, out);
    } else if (rc == 0) { /* a scale per row: the row's blocks share it */
        size_t rb;
        bn_type_row_bytes(it->type, cols, &rb);
        for (int64_t r = 0; r < rows; r++)
            (it->type == BN_TYPE_TQ2_0 ? bn_pack_tq2_0 : bn_pack_tq1_0)(
                    q + r * cols, cl ? cl->row_scale[r] : scale, cols, out + (size_t)r * rb);
    }
    if (!cl) free(q);
    return rc;
}

static int report_progress(conv *c, const char *phase)
{
    if (!c->o->progress) return 0;
    double el = bn_time_now() - c->t0;
    double eta = c->done_bytes > 0 && c->total_bytes > c->done_bytes
                         ? el / (double)c->done_bytes * (double)(c->total_bytes - c->done_bytes)
                         : (c->done_bytes >= c->total_bytes ? 0 : -1);
    cv_progress p = {phase, c->done_bytes, c->total_bytes, el, eta};
    return c->o->progress(c->o->user, &p);
}

/* Pass 2: each tensor converted and written at its offset; tmp stays open in c->fd (synced
 * by the commit). */
static int fill(conv *c, char *err, size_t errsz)
{
    bn_gguf *g;
    if (bn_gguf_open(c->ctx, c->tmp, &g) != BN_OK)
        return cm_fail(err, errsz, "%s: %s", c->tmp, bn_ctx_errmsg(c->ctx));
    uint64_t *off = malloc((size_t)c->n_plan * sizeof *off);
    int rc = off ? 0 : cm_fail(err, errsz, "out of memory");
    for (int i = 0; rc == 0 && i < c->n_plan; i++) {
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, c->plan[i].name);
        if (!t || t->size != c->plan[i].size)
            rc = cm_fail(err, errsz, "%s: %s was not laid out", c->tmp, c->plan[i].name);
        else
            off[i] = bn_gguf_data_offset(g) + t->offset;
    }
    bn_gguf_close(g);
    int fd = rc == 0 ? open(c->tmp, O_WRONLY | O_CLOEXEC) : -1;
    if (rc == 0 && fd < 0) rc = cm_fail(err, errsz, "%s: %s", c->tmp, strerror(errno));
    uint8_t *buf = rc == 0 ? malloc(c->max_size ? c->max_size : 1) : NULL;
    if (rc == 0 && !buf) rc = cm_fail(err, errsz, "out of memory (%zu bytes)", c->max_size);
    for (int i = 0; rc == 0 && i < c->n_plan; i++) {
        const plan_item *it = &c->plan[i];
        if (report_progress(c, "writing") || cv_poll(c->o)) {
            rc = -2;
            break;
        }
        rc = produce(c, it, buf, err, errsz);
        for (size_t done = 0; rc == 0 && done < it->size;) {
            ssize_t k = pwrite(fd, buf + done, it->size - done, (off_t)(off[i] + done));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0)
                rc = cm_fail(err, errsz, "%s: write: %s", c->tmp, strerror(errno));
            else
                done += (size_t)k;
        }
        c->done_bytes += it->size;
    }
    if (rc == 0) rc = report_progress(c, "writing") ? -2 : 0;
    if (rc == 0)
        c->fd = fd;
    else if (fd >= 0)
        close(fd);
    free(buf);
    free(off);
    return rc;
}

/* Pass 1: the layout, with zero data, through the engine's writer. */
static int write_layout(conv *c, char *err, size_t errsz)
{
    bn_gguf_writer *w;
    if (bn_gguf_writer_new(&w) != BN_OK) return cm_fail(err, errsz, "out of memory");
    int rc = set_meta(c, w, err, errsz);
    void *zero = rc == 0 ? calloc(1, c->max_size ? c->max_size : 1) : NULL;
    if (rc == 0 && !zero) rc = cm_fail(err, errsz, "out of memory (%zu bytes)", c->max_size);
    for (int i = 0; rc == 0 && i < c->n_plan; i++) {
        const plan_item *it = &c->plan[i];
        if (bn_gguf_writer_add_tensor(w, it->name, it->type, it->n_dims, it->ne, zero, it->size) !=
            BN_OK)
            rc = cm_fail(err, errsz, "%s: cannot add to the GGUF", it->name);
    }
    if (rc == 0 && bn_gguf_writer_write(c->ctx, w, c->tmp) != BN_OK)
        rc = cm_fail(err, errsz, "%s: %s", c->tmp, bn_ctx_errmsg(c->ctx));
    free(zero);
    bn_gguf_writer_free(w);
    return rc;
}

/* ---- validation ---------------------------------------------------------------------------- */

static int add_seq(conv *c, const char *text, int max_tokens)
{
    cv_seqs *q = &c->seqs;
    const int64_t V = c->src.hp.n_vocab;
    int32_t *ids = NULL;
    size_t n = 0;
    if (c->tok) {
        if (bn_tokenizer_encode_alloc(c->tok, text, strlen(text), BN_TOKENIZE_ADD_SPECIAL, &ids,
                                      &n) != BN_OK)
            return -1;
    } else { /* no tokenizer: bytes as ids */
        n = strlen(text);
        if (!(ids = bn_malloc((n ? n : 1) * sizeof *ids))) return -1;
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((unsigned char)text[i] % V);
    }
    if (n > (size_t)max_tokens) n = (size_t)max_tokens;
    if ((int64_t)n > c->src.hp.n_ctx) n = (size_t)c->src.hp.n_ctx;
    if (n < 2) {
        bn_free(ids);
        return 0;
    }
    int32_t *cp = malloc(n * sizeof *cp);
    if (!cp) {
        bn_free(ids);
        return -1;
    }
    memcpy(cp, ids, n * sizeof *cp);
    bn_free(ids);
    q->tok[q->n] = cp;
    q->len[q->n++] = (int)n;
    q->total += (int64_t)n;
    return 0;
}

/* Validation needs text the tokenizer can read: some sequence of two tokens or more, and not
 * every token unknown. */
static int usable_seqs(conv *c, char *err, size_t errsz)
{
    const cv_seqs *q = &c->seqs;
    if (q->n == 0)
        return cm_fail(err, errsz,
                       "validation: the tokenizer gives no prompt of two tokens or more (is its "
                       "vocabulary usable?)");
    const int32_t unk = c->tok ? bn_tokenizer_unk(c->tok) : -1;
    if (unk < 0) return 0;
    int64_t known = 0;
    for (int i = 0; i < q->n; i++)
        for (int j = 0; j < q->len[i]; j++) {
            const int32_t id = q->tok[i][j];
            known += id != unk && bn_tokenizer_token_type(c->tok, id) != BN_TOKEN_TYPE_CONTROL;
        }
    if (known == 0)
        return cm_fail(err, errsz,
                       "validation: the tokenizer reads every prompt as unknown tokens (is its "
                       "vocabulary usable?)");
    return 0;
}

static int make_seqs(conv *c, char *err, size_t errsz)
{
    cv_seqs *q = &c->seqs;
    q->tok = calloc(MAX_PROMPTS + 1, sizeof *q->tok);
    q->len = calloc(MAX_PROMPTS + 1, sizeof *q->len);
    if (!q->tok || !q->len) return cm_fail(err, errsz, "out of memory");
    if (c->o->prompts_file) {
        size_t len;
        char *text = mc_read_file(c->o->prompts_file, &len);
        if (!text) return cm_fail(err, errsz, "%s: cannot read the prompts", c->o->prompts_file);
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && q->n < MAX_PROMPTS;
             line = strtok_r(NULL, "\n", &save))
            if (*line && add_seq(c, line, MAX_PROMPT_TOKENS) != 0) {
                free(text);
                return cm_fail(err, errsz, "%s: cannot tokenize a prompt", c->o->prompts_file);
            }
        free(text);
        if (q->n == 0)
            return cm_fail(err, errsz, "%s: no prompts (one per line)", c->o->prompts_file);
    } else {
        for (int i = 0; cv_builtin_prompts[i]; i++)
            if (add_seq(c, cv_builtin_prompts[i], MAX_PROMPT_TOKENS) != 0)
                return cm_fail(err, errsz, "cannot tokenize the built-in prompts");
    }
    c->text_seq = q->n;
    if (add_seq(c, cv_builtin_text, MAX_TEXT_TOKENS) != 0)
        return cm_fail(err, errsz, "cannot tokenize the built-in text");
    if (c->text_seq >= q->n) c->text_seq = -1;
    return usable_seqs(c, err, errsz);
}

/* The converted model's logits for every sequence. */
static int engine_logits(conv *c, bn_model *m, float *out, char *err, size_t errsz)
{
    int64_t maxlen = 0;
    for (int i = 0; i < c->seqs.n; i++)
        if (c->seqs.len[i] > maxlen) maxlen = c->seqs.len[i];
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = maxlen;
    sp.kv_type = BN_TYPE_F32; /* as the f32 reference: no rounding of its own in the cache */
    bn_model_state *st;
    if (bn_model_state_new(m, &sp, &st) != BN_OK)
        return cm_fail(err, errsz, "%s: %s", c->tmp, bn_ctx_errmsg(c->ctx));
    const int64_t V = c->src.hp.n_vocab;
    int rc = 0;
    int64_t base = 0;
    for (int i = 0; rc == 0 && i < c->seqs.n; base += c->seqs.len[i], i++)
        if (cv_poll(c->o))
            rc = -2;
        else if (bn_model_eval(st, c->seqs.tok[i], c->seqs.len[i], 0, c->seqs.len[i],
                               out + base * V) != BN_OK)
            rc = cm_fail(err, errsz, "%s: %s", c->tmp, bn_ctx_errmsg(c->ctx));
    bn_model_state_free(st);
    return rc;
}

static int verify(conv *c, char *err, size_t errsz)
{
    c->phase = "verifying";
    if (report_progress(c, "verifying") || cv_poll(c->o)) return -2;
    bn_model *m;
    if (bn_model_load(c->ctx, c->tmp, NULL, &m) != BN_OK)
        return cm_fail(err, errsz, "the converted model does not load: %s", bn_ctx_errmsg(c->ctx));
    const bn_model_hparams *h = bn_model_hparams_get(m);
    int rc = 0;
    if (h->n_layer != c->src.hp.n_layer || h->n_embd != c->src.hp.n_embd ||
        h->n_vocab != c->src.hp.n_vocab)
        rc = cm_fail(err, errsz, "the converted model reads back with another shape");
    if (rc == 0 && !c->o->no_tokenizer) {
        bn_tokenizer *t;
        if (bn_tokenizer_from_gguf(c->ctx, bn_model_gguf(m), &t) != BN_OK)
            rc = cm_fail(err, errsz, "the converted tokenizer does not load: %s",
                         bn_ctx_errmsg(c->ctx));
        bn_tokenizer_free(t);
    }
    if (rc == 0 && c->o->validate) {
        c->phase = "validating";
        if (report_progress(c, "validating") || cv_poll(c->o)) rc = -2;
        const int64_t V = c->src.hp.n_vocab;
        float *conv_logits = rc == 0 ? malloc((size_t)(c->seqs.total * V) * sizeof(float)) : NULL;
        if (rc == 0 && !conv_logits) rc = cm_fail(err, errsz, "out of memory (validation)");
        if (rc == 0) rc = engine_logits(c, m, conv_logits, err, errsz);
        if (rc == 0) {
            cJSON *v = cJSON_AddObjectToObject(c->report, "validation");
            cJSON_AddNumberToObject(v, "prompts", c->text_seq >= 0 ? c->text_seq : c->seqs.n);
            cJSON_AddNumberToObject(v, "tokens", (double)c->seqs.total);
            cJSON_AddStringToObject(v, "reference",
                                    c->src.hp.quant_ref ? "f32, as the source quantizes" : "f32");
            rc = cv_metrics(c->ref_logits, conv_logits, &c->seqs, V, c->text_seq, v, err, errsz);
        }
        free(conv_logits);
    }
    bn_model_free(m);
    return rc;
}

/* ---- the output file --------------------------------------------------------------------------
 */

/* The temporary file's SHA-256; -2 when stopped (polled every 4 MiB). */
static int sha256_file(conv *c, char hex[65])
{
    int fd = open(c->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct sha256_ctx s;
    sha256_init(&s);
    uint8_t buf[1 << 16];
    ssize_t k;
    for (uint64_t n = 0;; n++) {
        if (n % 64 == 0 && cv_poll(c->o)) {
            close(fd);
            return -2;
        }
        k = read(fd, buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        sha256_update(&s, (size_t)k, buf);
    }
    close(fd);
    if (k < 0) return -1;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&s, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

static void add_quality_warning(conv *c)
{
    const cv_hparams *h = &c->src.hp;
    if (h->quant_ref) return; /* trained quantized (QAT): nothing is lost but rounding */
    char msg[512];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->report, "validation");
    const cJSON *top1 = cJSON_GetObjectItemCaseSensitive(v, "top1_agreement");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(v, "ppl_ref");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(v, "ppl_conv");
    if (cJSON_IsNumber(top1) && cJSON_IsNumber(pr) && cJSON_IsNumber(pc))
        snprintf(msg, sizeof msg,
                 "%s weights were ternarized after training (no quantization-aware training): "
                 "top-1 agreement with the f32 model %.0f%%, perplexity %.2f -> %.2f (%+.0f%%)",
                 h->arch_name, 100 * top1->valuedouble, pr->valuedouble, pc->valuedouble,
                 100 * (pc->valuedouble - pr->valuedouble) / pr->valuedouble);
    else
        snprintf(msg, sizeof msg,
                 "%s weights were ternarized after training (no quantization-aware training): "
                 "expect a large quality drop (run without --no-validate to measure it)",
                 h->arch_name);
    cJSON_AddItemToArray(c->warnings, cJSON_CreateString(msg));
}

static void describe(conv *c)
{
    const cv_hparams *h = &c->src.hp;
    static const char *const fmts[] = {"", "safetensors", "pytorch", "onnx"};
    cJSON *r = c->report;
    cJSON_AddStringToObject(r, "source", c->o->src);
    cJSON_AddStringToObject(r, "output", c->o->out);
    cJSON_AddStringToObject(r, "format", fmts[c->src.fmt]);
    cJSON_AddStringToObject(r, "source_architecture", h->arch_name);
    cJSON_AddStringToObject(r, "architecture",
                            h->arch == CV_ARCH_BITNET ? "bitnet-b1.58" : "bitnet");
    cJSON_AddStringToObject(r, "type", bn_type_name(c->o->type));
    cJSON_AddStringToObject(r, "method", c->o->method == CV_METHOD_GPTQ ? "gptq" : "absmean");
    cJSON_AddStringToObject(r, "embd_type", bn_type_name(c->o->embd_type));
    cJSON_AddBoolToObject(r, "packed_source", h->packed);
    cJSON_AddNumberToObject(r, "n_layer", (double)h->n_layer);
    cJSON_AddNumberToObject(r, "n_embd", (double)h->n_embd);
    cJSON_AddNumberToObject(r, "n_vocab", (double)h->n_vocab);
    cJSON_AddNumberToObject(r, "tensors", c->n_plan);
    cJSON_AddNumberToObject(r, "bytes_in", (double)c->src.weight_bytes);
    cJSON *d = cJSON_Duplicate(c->src.defaults, 1);
    cJSON_AddItemToObject(r, "defaults", d ? d : cJSON_CreateObject());
}

int cv_check_output(const cv_opts *o, char *err, size_t errsz)
{
    const char *in[] = {o->src, o->prompts_file, o->calibrate};
    char why[1024], dir[4096], path[8200];
    if (bn_file_check_output(o->out, o->force, in, 3, why, sizeof why) != BN_OK)
        return cm_fail(err, errsz, "%s", why);
    struct stat st;
    if (lstat(o->out, &st) != 0) return 0; /* a new file is no input */
    snprintf(dir, sizeof dir, "%s", o->src);
    if (stat(o->src, &st) != 0 || !S_ISDIR(st.st_mode)) { /* a weights file: its folder */
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[slash == dir] = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    DIR *d = opendir(dir);
    int rc = 0;
    for (struct dirent *e; d && rc == 0 && (e = readdir(d));) {
        const size_t n = strlen(e->d_name);
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (n >= 5 && !strcmp(e->d_name + n - 5, ".gguf")))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (bn_file_same(o->out, path))
            rc = cm_fail(err, errsz, "%s is a file of the source model (%s): choose another output",
                         o->out, path);
    }
    if (d) closedir(d);
    return rc;
}

/* OUT.tmp-<pid>-XXXXXX, made with O_EXCL; the GGUF writer renames the laid-out file onto it. */
static int make_tmp(conv *c, char *err, size_t errsz)
{
    bn_file_tmp_sweep(c->o->out); /* what a killed conversion to OUT left */
    int fd = bn_file_tmp_create(c->o->out, c->tmp, sizeof c->tmp);
    if (fd < 0) {
        const int e = errno;
        c->tmp[0] = '\0';
        return cm_fail(err, errsz, "%s: cannot create a temporary file: %s", c->o->out,
                       strerror(e));
    }
    (void)bn_file_tmp_mode(fd, c->o->out, 0644); /* the GGUF writer keeps this mode */
    close(fd);
    return 0;
}

/* ---- calibration ----------------------------------------------------------------------------- */

int cv_text_seqs(const bn_tokenizer *tok, const char *path, int64_t n_vocab, int64_t n_ctx,
                 cv_seqs *q, char *err, size_t errsz)
{
    size_t len, n = 0;
    char *text = mc_read_file(path, &len);
    if (!text) return cm_fail(err, errsz, "%s: cannot read the calibration text", path);
    int32_t *ids = NULL;
    if (tok) {
        if (bn_tokenizer_encode_alloc(tok, text, len, BN_TOKENIZE_ADD_SPECIAL, &ids, &n) != BN_OK)
            ids = NULL;
    } else if ((ids = bn_malloc((len ? len : 1) * sizeof *ids))) {
        for (n = 0; n < len; n++) ids[n] = (int32_t)((unsigned char)text[n] % n_vocab);
    }
    free(text);
    if (!ids) return cm_fail(err, errsz, "%s: cannot tokenize the calibration text", path);
    if (n > MAX_CALIB_TOKENS) n = MAX_CALIB_TOKENS;
    const int64_t chunk = n_ctx > 0 && n_ctx < CALIB_CHUNK ? n_ctx : CALIB_CHUNK;
    const int64_t n_seq = ((int64_t)n + chunk - 1) / chunk;
    q->tok = calloc((size_t)n_seq + 1, sizeof *q->tok);
    q->len = calloc((size_t)n_seq + 1, sizeof *q->len);
    int rc = q->tok && q->len ? 0 : cm_fail(err, errsz, "out of memory");
    for (int64_t at = 0; rc == 0 && at + 1 < (int64_t)n; at += chunk) {
        int64_t k = (int64_t)n - at < chunk ? (int64_t)n - at : chunk;
        if (!(q->tok[q->n] = malloc((size_t)k * sizeof **q->tok))) {
            rc = cm_fail(err, errsz, "out of memory");
            break;
        }
        memcpy(q->tok[q->n], ids + at, (size_t)k * sizeof *ids);
        q->len[q->n++] = (int)k;
        q->total += k;
    }
    bn_free(ids);
    if (rc == 0 && q->total < 2)
        rc = cm_fail(err, errsz, "%s: the calibration text gives fewer than 2 tokens", path);
    return rc;
}

void cv_seqs_release(cv_seqs *q)
{
    for (int i = 0; i < q->n; i++) free(q->tok[i]);
    free(q->tok);
    free(q->len);
    memset(q, 0, sizeof *q);
}

/* --calibrate: the reference over the calibration text quantizes every linear layer
 * (convert_calib.c); the report gets each layer's output error by absmean and by gptq. */
static int calibrate(conv *c, char *err, size_t errsz)
{
    const cv_hparams *h = &c->src.hp;
    if (h->packed || h->quant_ref)
        return cm_fail(err, errsz,
                       "--calibrate: %s is a ternary-trained BitNet model (its weights are used "
                       "as trained); calibrated ternarization is for float models",
                       c->o->src);
    cv_seqs q = {0};
    int rc = cv_text_seqs(c->tok, c->o->calibrate, h->n_vocab, h->n_ctx, &q, err, errsz);
    cv_calib_init(&c->cal, c->ctx, c->pool, c->o->method);
    c->cal.row_scales = c->o->scales == CV_SCALES_ROW;
    c->cal.lowrank = c->o->lowrank;
    c->cal.tokens = q.total;
    if (rc == 0) rc = cv_reference(&c->src, c->pool, &q, NULL, c->o, &c->cal, err, errsz);
    if (rc == 0 && c->o->mixed > c->cal.n)
        rc = cm_fail(err, errsz, "--mixed %d: %s has %d linear layers", c->o->mixed, c->o->src,
                     c->cal.n);
    if (rc == 0 && c->o->mixed > 0) {
        c->phase = "measuring each layer's sensitivity";
        rc = cv_mixed_rank(&c->src, &c->cal, &q, c->o, &c->mx, err, errsz);
    }
    cv_seqs_release(&q);
    if (rc != 0) return rc;
    c->calibrated = 1;
    cJSON *r = cv_calib_report(&c->cal);
    cJSON_AddStringToObject(r, "text", c->o->calibrate);
    cJSON_AddItemToObject(c->report, "calibration", r);
    return 0;
}

/* report.lowrank: the rank asked for, the bytes of the factors (and their share of the
 * output), the multiply-adds they add per token, the mean share of the residual kept. */
static void report_lowrank(conv *c)
{
    cJSON *r = cJSON_AddObjectToObject(c->report, "lowrank");
    int n = 0;
    for (int i = 0; i < c->n_plan; i++) n += c->plan[i].kind == P_TERNARY;
    cJSON_AddNumberToObject(r, "rank", c->o->lowrank);
    cJSON_AddNumberToObject(r, "layers", n);
    cJSON_AddNumberToObject(r, "bytes", (double)c->lr_bytes);
    cJSON_AddNumberToObject(r, "bytes_share",
                            c->total_bytes ? (double)c->lr_bytes / (double)c->total_bytes : 0);
    cJSON_AddNumberToObject(r, "macs_per_token", c->lr_macs);
    cJSON_AddNumberToObject(r, "energy_mean", n ? c->lr_energy / n : 0);
    cJSON_AddBoolToObject(r, "weighted", c->calibrated);
}

/* The plan and the layout again, with the kept layers at their 8/4-bit type (--mixed); the
 * tokenizer is built again by the layout (its caveats were reported the first time). */
static int relayout(conv *c, char *err, size_t errsz)
{
    free(c->plan);
    c->plan = NULL;
    c->n_plan = 0;
    c->max_size = 0;
    c->total_bytes = 0;
    c->lr_macs = 0;
    bn_tokenizer_free(c->tok);
    c->tok = NULL;
    cJSON *w = c->warnings;
    c->warnings = cJSON_CreateArray();
    int rc = make_plan(c, err, errsz);
    if (rc == 0) rc = write_layout(c, err, errsz);
    cJSON_Delete(c->warnings);
    c->warnings = w;
    cJSON_ReplaceItemInObject(c->report, "tensors", cJSON_CreateNumber(c->n_plan));
    return rc;
}

/* Tensor bytes of the file with the K most sensitive layers kept, K = 0 .. n (the plan holds
 * every layer ternary). NULL when out of memory. */
static double *mixed_bytes(const conv *c)
{
    const cv_mixed *mx = &c->mx;
    double *b = malloc((size_t)(mx->n + 1) * sizeof *b);
    for (int j = 0; b && j <= mx->n; j++) {
        b[j] = j ? b[j - 1] : (double)c->total_bytes;
        if (j == 0) continue;
        const cv_calib_layer *l = &c->cal.l[mx->rank[j - 1]];
        size_t rb = 0;
        bn_type_row_bytes(c->o->mixed_type, l->cols, &rb);
        b[j] += (double)(rb * (size_t)l->rows);
        for (int i = 0; i < c->n_plan; i++)
            if (!strcmp(c->plan[i].src, l->name)) b[j] -= (double)c->plan[i].size;
    }
    return b;
}

/* --mixed after calibration: the trade-off (with validation), then the layout with the K
 * kept layers; report.mixed. */
static int mixed(conv *c, char *err, size_t errsz)
{
    int rc = 0;
    c->mx.k = 0; /* the plan so far: every layer ternary */
    if (c->o->validate) {
        c->phase = "measuring the trade-off";
        double *bytes = mixed_bytes(c);
        c->tradeoff = cJSON_CreateArray();
        rc = bytes && c->tradeoff ? 0 : cm_fail(err, errsz, "out of memory");
        c->mx.k = c->o->mixed;
        if (rc == 0)
            rc = cv_mixed_tradeoff(&c->src, &c->cal, &c->mx, &c->seqs, c->text_seq, c->ref_logits,
                                   bytes, c->o, c->tradeoff, err, errsz);
        free(bytes);
    }
    c->mx.k = c->o->mixed;
    if (rc == 0) rc = relayout(c, err, errsz);
    if (rc == 0) cJSON_AddItemToObject(c->report, "mixed", cv_mixed_report(&c->mx, &c->cal));
    return rc;
}

/* The trade-off's bytes as files: each K's tensor bytes plus what the written file holds
 * besides its tensors (header, tokenizer, alignment). */
static void report_tradeoff(conv *c, double file_bytes)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(c->report, "mixed"), *e;
    if (!m || !c->tradeoff) return;
    cJSON_ArrayForEach(e, c->tradeoff)
    {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bytes");
        const double t = cJSON_IsNumber(b) ? b->valuedouble : 0;
        cJSON_ReplaceItemInObject(e, "bytes",
                                  cJSON_CreateNumber(t + file_bytes - (double)c->total_bytes));
    }
    cJSON_AddItemToObject(m, "tradeoff", c->tradeoff);
    cJSON_AddStringToObject(m, "tradeoff_by",
                            "the f32 reference forward with the stored weights of each K on the "
                            "validation text (activations not quantized)");
    c->tradeoff = NULL;
}

static int run(conv *c, char *err, size_t errsz)
{
    const cv_opts *o = c->o;
    if (cv_check_output(o, err, errsz) != 0) return -1;
    if (cv_source_open(c->ctx, o->src, &c->src, err, errsz) != 0) return -1;
    if (c->src.hp.arch == CV_ARCH_VISION)
        return cv_vision_convert(&c->src, c->ctx, o, c->report, c->warnings, err, errsz);
    if (o->lowrank > 0 && (c->src.hp.packed || c->src.hp.quant_ref))
        return cm_fail(err, errsz,
                       "--lowrank: %s is a ternary-trained BitNet model (its weights are used as "
                       "trained: no residual to correct)",
                       o->src);
    if (make_plan(c, err, errsz) != 0) return -1;
    describe(c);
    if (cv_poll(o)) return -2;
    c->phase = "laying out the file";
    if (make_tmp(c, err, errsz) != 0) return -1;
    if (write_layout(c, err, errsz) != 0) return -1; /* also builds the tokenizer */
    cJSON_AddStringToObject(c->report, "tokenizer", c->tok_kind ? c->tok_kind : "none");
    if (cv_poll(o)) return -2;
    if (o->validate) {
        c->phase = "running the reference";
        if (make_seqs(c, err, errsz) != 0) return -1;
        c->ref_logits = malloc((size_t)(c->seqs.total * c->src.hp.n_vocab) * sizeof(float));
        if (!c->ref_logits) return cm_fail(err, errsz, "out of memory (reference logits)");
        int rc = cv_reference(&c->src, c->pool, &c->seqs, c->ref_logits, o, NULL, err, errsz);
        if (rc != 0) return rc;
    }
    if (o->calibrate) {
        c->phase = "calibrating";
        int rc = calibrate(c, err, errsz);
        if (rc == 0 && o->mixed > 0) rc = mixed(c, err, errsz);
        if (rc != 0) return rc;
    }
    c->phase = "writing";
    int rc = fill(c, err, errsz);
    if (rc == 0) rc = verify(c, err, errsz);
    if (rc != 0) return rc;
    char hex[65];
    c->phase = "hashing";
    if ((rc = sha256_file(c, hex)) != 0)
        return rc == -2 ? -2 : cm_fail(err, errsz, "%s: cannot hash", c->tmp);
    if (cv_poll(o)) return -2;
    char why[1024];
    const int fd = c->fd;
    c->fd = -1;
    /* fsync, close, rename over OUT, folder fsync; on failure OUT is untouched */
    if (bn_file_commit(fd, c->tmp, o->out, why, sizeof why) != BN_OK) {
        c->tmp[0] = '\0'; /* the commit removed it */
        return cm_fail(err, errsz, "%s", why);
    }
    struct stat st;
    cJSON_AddNumberToObject(c->report, "bytes_out",
                            stat(o->out, &st) == 0 ? (double)st.st_size : 0);
    report_tradeoff(c, stat(o->out, &st) == 0 ? (double)st.st_size : 0);
    cJSON_AddStringToObject(c->report, "sha256", hex);
    if (o->lowrank > 0) report_lowrank(c);
    add_quality_warning(c);
    return 0;
}

int cv_convert(const cv_opts *o0, cJSON **report, char *err, size_t errsz)
{
    cv_opts o1 = *o0;
    const cv_opts *o = &o1;
    const char *thr = getenv("BITNET_CONVERT_THROTTLE_MS");
    long ms = thr ? strtol(thr, NULL, 10) : 0;
    if (ms > 0 && ms <= 10000 && !o1.throttle_ms) o1.throttle_ms = (unsigned)ms;
    if (o1.method < 0) o1.method = o1.calibrate ? CV_METHOD_GPTQ : CV_METHOD_ABSMEAN;
    if (o1.scales < 0) o1.scales = o1.type == BN_TYPE_I2_S ? CV_SCALES_TENSOR : CV_SCALES_ROW;
    conv c = {.o = o, .fd = -1, .text_seq = -1, .phase = "reading"};
    *report = NULL;
    err[0] = '\0';
    if (o->method == CV_METHOD_GPTQ && !o->calibrate)
        return cm_fail(err, errsz, "--method gptq needs calibration text (--calibrate TEXT)");
    if (o->lowrank < 0 || o->lowrank > CV_LOWRANK_MAX)
        return cm_fail(err, errsz, "--lowrank takes 0 .. %d", CV_LOWRANK_MAX);
    if (o->mixed < 0) return cm_fail(err, errsz, "--mixed takes 0 or more layers");
    if (o->mixed > 0 && !o->calibrate)
        return cm_fail(err, errsz,
                       "--mixed needs calibration text (--calibrate TEXT): each layer's "
                       "sensitivity is measured on it");
    if (o->mixed_type != BN_TYPE_Q8_0 && o->mixed_type != BN_TYPE_Q4_0)
        return cm_fail(err, errsz, "--mixed-type takes q8_0 or q4_0");
    c.mx.type = o->mixed_type;
    if (o->scales == CV_SCALES_ROW && o->type == BN_TYPE_I2_S)
        return cm_fail(err, errsz,
                       "--scales row needs --type tq2_0 or tq1_0 (i2_s stores one "
                       "scale per tensor)");
    c.t0 = bn_time_now();
    c.report = cJSON_CreateObject();
    c.warnings = cJSON_CreateArray();
    bn_ctx_params cp = {.n_threads = o->threads};
    int rc = c.report && c.warnings ? 0 : cm_fail(err, errsz, "out of memory");
    if (rc == 0 && bn_ctx_new(&c.ctx, &cp) != BN_OK)
        rc = cm_fail(err, errsz, "cannot start threads");
    if (rc == 0) {
        c.pool = bn_ctx_pool(c.ctx);
        rc = run(&c, err, errsz);
    }
    if (c.fd >= 0) close(c.fd);
    if (c.tmp[0] && rc != 0) unlink(c.tmp); /* never a partial file */
    if (rc == -2) snprintf(err, errsz, "cancelled while %s; nothing written", c.phase);
    if (c.report) {
        cJSON_AddItemToObject(c.report, "warnings", c.warnings);
        c.warnings = NULL;
        cJSON_AddNumberToObject(c.report, "seconds", bn_time_now() - c.t0);
    }
    cJSON_Delete(c.warnings);
    cv_seqs_release(&c.seqs);
    free(c.ref_logits);
    free(c.plan);
    cv_mixed_release(&c.mx);
    cJSON_Delete(c.tradeoff);
    cv_calib_release(&c.cal);
    cv_lowrank_release(&c.lr);
    bn_tokenizer_free(c.tok);
    cv_source_close(&c.src);
    bn_ctx_free(c.ctx);
    *report = c.report;
    return rc;
}
