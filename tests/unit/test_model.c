/* test_model.c - the BitNet model: logits against a naive single-threaded float
 * reimplementation written here, batched == token by token, I2_S == TQ2_0 == TQ1_0,
 * the older "bitnet" architecture (SiLU, Q8_0 embeddings, separate LM head, .scale
 * tensors, partial RoPE, F32 cache), models without sub-norms (converted LLaMA),
 * malformed files, allocation failures, context overflow. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/cpu.h"
#include "bitnet/gguf.h"
#include "bitnet/types.h"
#include "bitnet/model.h"
#include "bitnet/quant.h"
#include "model_internal.h"

static bn_ctx *g_ctx;
static char g_dir[64];

/* ---- a random test model ----------------------------------------------------------------- */

#define MAX_LAYER 4
enum { N_LIN = 7 };
static const char *const lin_names[N_LIN] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                             "ffn_gate", "ffn_up", "ffn_down"};
static const char *const norm_names[4] = {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"};

typedef struct cfg {
    const char *arch;
    int n_layer, E, F, nh, nkv, n_rot, V, n_ctx;
    float eps, base;
    int embd_type;   /* F16, F32 or Q8_0 */
    int untied;      /* an output.weight (F32) */
    int with_scales; /* blk.N.<lin>.scale tensors */
    int vocab_key;   /* write <arch>.vocab_size */
    int no_sub;      /* no attn_sub_norm / ffn_sub_norm tensors (a converted LLaMA) */
} cfg;

/* The model as the reference sees it (every value exactly what the file holds). */
typedef struct tmodel {
    cfg c;
    float *embd;       /* V x E, as stored (f16/q8_0 rounded) */
    uint8_t *embd_raw; /* the stored bytes */
    size_t embd_bytes;
    float *out; /* V x E when untied */
    float *norms[MAX_LAYER][4];
    float *out_norm;
    int8_t *w[MAX_LAYER][N_LIN]; /* rows x cols ternary (unless kept, qt) */
    float ws[MAX_LAYER][N_LIN];  /* the tensor's scale (f16-exact) */
    float wst[MAX_LAYER][N_LIN]; /* the .scale tensor's value (1 when none) */
    /* layers kept at 8 or 4 bits (tm_keep): qt the type (0: ternary), qraw the blocks, wq
     * their values */
    int qt[MAX_LAYER][N_LIN];
    uint8_t *qraw[MAX_LAYER][N_LIN];
    size_t qbytes[MAX_LAYER][N_LIN];
    float *wq[MAX_LAYER][N_LIN];
} tmodel;

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(void) /* uniform in [-1, 1) */
{
    return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float gauss(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++) s += frand();
    return s * 0.866f; /* ~unit variance */
}

static void lin_shape(const cfg *c, int which, int *rows, int *cols)
{
    const int d = c->E / c->nh, KV = c->nkv * d;
    const int r[N_LIN] = {c->E, KV, KV, c->E, c->F, c->F, c->E};
    const int k[N_LIN] = {c->E, c->E, c->E, c->E, c->E, c->E, c->F};
    *rows = r[which];
    *cols = k[which];
}

static int norm_len(const cfg *c, int i)
{
    return i == 3 ? c->F : c->E;
}

static void tm_build(tmodel *m, const cfg *c, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->c = *c;
    g_rng = seed;
    const size_t VE = (size_t)c->V * (size_t)c->E;
    m->embd = malloc(VE * sizeof(float));
    assert_non_null(m->embd);
    float *raw = malloc(VE * sizeof(float));
    for (size_t i = 0; i < VE; i++) raw[i] = gauss() * 0.5f;
    if (c->embd_type == BN_TYPE_F16) {
        m->embd_bytes = VE * 2;
        m->embd_raw = malloc(m->embd_bytes);
        bn_f32_to_f16_row(raw, (uint16_t *)m->embd_raw, (int64_t)VE);
        bn_f16_to_f32_row((uint16_t *)m->embd_raw, m->embd, (int64_t)VE);
    } else if (c->embd_type == BN_TYPE_Q8_0) {
        m->embd_bytes = VE / 32 * sizeof(bn_block_q8_0);
        m->embd_raw = malloc(m->embd_bytes);
        bn_quantize_row_q8_0(raw, (bn_block_q8_0 *)m->embd_raw, (int64_t)VE);
        bn_dequantize_row_q8_0((bn_block_q8_0 *)m->embd_raw, m->embd, (int64_t)VE);
    } else {
        m->embd_bytes = VE * 4;
        m->embd_raw = malloc(m->embd_bytes);
        memcpy(m->embd_raw, raw, m->embd_bytes);
        memcpy(m->embd, raw, m->embd_bytes);
    }
    free(raw);
    if (c->untied) {
        m->out = malloc(VE * sizeof(float));
        for (size_t i = 0; i < VE; i++) m->out[i] = gauss() * 0.1f;
    }
    m->out_norm = malloc((size_t)c->E * sizeof(float));
    for (int i = 0; i < c->E; i++) m->out_norm[i] = 1.0f + 0.2f * frand();
    for (int l = 0; l < c->n_layer; l++) {
        for (int i = 0; i < 4; i++) {
            const int n = norm_len(c, i);
            m->norms[l][i] = malloc((size_t)n * sizeof(float));
            for (int k = 0; k < n; k++) m->norms[l][i][k] = 1.0f + 0.3f * frand();
        }
        for (int i = 0; i < N_LIN; i++) {
            int rows, cols;
            lin_shape(c, i, &rows, &cols);
            const size_t n = (size_t)rows * (size_t)cols;
            m->w[l][i] = malloc(n);
            for (size_t k = 0; k < n; k++) m->w[l][i][k] = (int8_t)(rnd() % 3) - 1;
            /* f16-exact, so that TQ's fp16 d and I2_S's f32 scale agree */
            const float s = (1.0f + 0.5f * frand()) / sqrtf((float)cols);
            m->ws[l][i] = bn_f16_to_f32(bn_f32_to_f16(s));
            m->wst[l][i] = c->with_scales ? 0.5f + 0.25f * (float)((l + i) % 4) : 1.0f;
        }
    }
}

static void tm_free(tmodel *m)
{
    free(m->embd);
    free(m->embd_raw);
    free(m->out);
    free(m->out_norm);
    for (int l = 0; l < m->c.n_layer; l++) {
        for (int i = 0; i < 4; i++) free(m->norms[l][i]);
        for (int i = 0; i < N_LIN; i++) {
            free(m->w[l][i]);
            free(m->qraw[l][i]);
            free(m->wq[l][i]);
        }
    }
}

/* Layer l's matrix i becomes a float matrix stored as Q8_0 or Q4_0 (convert --mixed). */
static void tm_keep(tmodel *m, int l, int i, int type)
{
    int rows, cols;
    lin_shape(&m->c, i, &rows, &cols);
    const int64_t n = (int64_t)rows * cols;
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t k = 0; k < n; k++) f[k] = gauss() * 0.06f;
    m->qt[l][i] = type;
    m->wq[l][i] = malloc((size_t)n * sizeof(float));
    if (type == BN_TYPE_Q8_0) {
        m->qbytes[l][i] = (size_t)(n / 32) * sizeof(bn_block_q8_0);
        m->qraw[l][i] = malloc(m->qbytes[l][i]);
        bn_quantize_row_q8_0(f, (bn_block_q8_0 *)m->qraw[l][i], n);
        bn_dequantize_row_q8_0((bn_block_q8_0 *)m->qraw[l][i], m->wq[l][i], n);
    } else {
        m->qbytes[l][i] = (size_t)(n / 32) * sizeof(bn_block_q4_0);
        m->qraw[l][i] = malloc(m->qbytes[l][i]);
        bn_quantize_row_q4_0(f, (bn_block_q4_0 *)m->qraw[l][i], n);
        bn_dequantize_row_q4_0((bn_block_q4_0 *)m->qraw[l][i], m->wq[l][i], n);
    }
    free(f);
}

/* ---- writing it as GGUF --------------------------------------------------------------------- */

/* What to break when writing (for the malformed-file tests). */
typedef struct breakage {
    const char *drop;      /* a tensor left out */
    const char *add_sub;   /* a sub-norm written although the model has none */
    const char *transpose; /* a 2-D tensor written with rows and cols swapped */
    const char *as_f32;    /* a ternary tensor written as F32 */
    const char *lowrank;   /* a rank-1 correction (zeros) written beside this layer */
    const char *scale_on;  /* a .scale tensor written beside this (kept) layer */
    const char *arch;      /* another general.architecture */
    const char *drop_key;  /* "<arch>.<key>" left out */
    int bad_kv;            /* head_count_kv that does not divide head_count */
} breakage;

typedef struct wbufs {
    void *p[256];
    int n;
} wbufs;

static void *keep(wbufs *b, void *p)
{
    assert_true(b->n < 256);
    b->p[b->n++] = p;
    return p;
}

static void add_t(bn_gguf_writer *w, const breakage *br, const char *name, int type, int rows,
                  int cols, const void *data, size_t size)
{
    if (br && br->drop && strcmp(br->drop, name) == 0) return;
    int64_t ne[2] = {cols, rows};
    if (br && br->transpose && strcmp(br->transpose, name) == 0) {
        ne[0] = rows;
        ne[1] = cols;
    }
    assert_int_equal(bn_gguf_writer_add_tensor(w, name, type, rows ? 2 : 1, ne, data, size), BN_OK);
}

static void set_key_u32(bn_gguf_writer *w, const breakage *br, const char *arch, const char *key,
                        uint32_t v)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    if (br && br->drop_key && strcmp(br->drop_key, name) == 0) return;
    assert_int_equal(bn_gguf_writer_set_u32(w, name, v), BN_OK);
}

/* The packed bytes of one ternary matrix in type ty. */
static void *pack_lin(const tmodel *m, int l, int i, int ty, size_t *size)
{
    int rows, cols;
    lin_shape(&m->c, i, &rows, &cols);
    const int64_t n = (int64_t)rows * cols;
    uint8_t *p;
    if (m->qt[l][i]) {
        *size = m->qbytes[l][i];
        p = malloc(*size);
        memcpy(p, m->qraw[l][i], *size);
    } else if (ty == BN_TYPE_I2_S) {
        *size = bn_i2s_bytes(n);
        p = calloc(1, *size);
        bn_pack_i2s(m->w[l][i], m->ws[l][i], n, p);
    } else if (ty == BN_TYPE_TQ2_0) {
        *size = (size_t)(n / 256) * BN_TQ2_0_BLOCK_BYTES;
        p = malloc(*size);
        bn_pack_tq2_0(m->w[l][i], m->ws[l][i], n, p);
    } else if (ty == BN_TYPE_TQ1_0) {
        *size = (size_t)(n / 256) * BN_TQ1_0_BLOCK_BYTES;
        p = malloc(*size);
        bn_pack_tq1_0(m->w[l][i], m->ws[l][i], n, p);
    } else { /* F32 */
        *size = (size_t)n * 4;
        float *f = malloc(*size);
        for (int64_t k = 0; k < n; k++) f[k] = m->w[l][i][k] * m->ws[l][i];
        p = (uint8_t *)f;
    }
    assert_non_null(p);
    return p;
}

static void write_model(const tmodel *m, int wtype, const breakage *br, const char *path)
{
    const cfg *c = &m->c;
    const char *arch = br && br->arch ? br->arch : c->arch;
    bn_gguf_writer *w;
    wbufs keepers = {0};
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    assert_int_equal(bn_gguf_writer_set_str(w, "general.architecture", arch), BN_OK);
    set_key_u32(w, br, arch, "context_length", (uint32_t)c->n_ctx);
    set_key_u32(w, br, arch, "embedding_length", (uint32_t)c->E);
    set_key_u32(w, br, arch, "block_count", (uint32_t)c->n_layer);
    set_key_u32(w, br, arch, "feed_forward_length", (uint32_t)c->F);
    set_key_u32(w, br, arch, "attention.head_count", (uint32_t)c->nh);
    set_key_u32(w, br, arch, "attention.head_count_kv",
                (uint32_t)(br && br->bad_kv ? br->bad_kv : c->nkv));
    set_key_u32(w, br, arch, "rope.dimension_count", (uint32_t)c->n_rot);
    if (c->vocab_key) set_key_u32(w, br, arch, "vocab_size", (uint32_t)c->V);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    bn_gguf_writer_set_f32(w, key, c->eps);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    bn_gguf_writer_set_f32(w, key, c->base);

    add_t(w, br, "token_embd.weight", c->embd_type, c->V, c->E, m->embd_raw, m->embd_bytes);
    if (c->untied)
        add_t(w, br, "output.weight", BN_TYPE_F32, c->V, c->E, m->out,
              (size_t)c->V * (size_t)c->E * 4);
    add_t(w, br, "output_norm.weight", BN_TYPE_F32, 0, c->E, m->out_norm, (size_t)c->E * 4);
    char name[96];
    for (int l = 0; l < c->n_layer; l++) {
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norm_names[i]);
            const int extra = br && br->add_sub && strcmp(br->add_sub, name) == 0;
            if (c->no_sub && i % 2 == 1 && !extra) continue;
            add_t(w, br, name, BN_TYPE_F32, 0, norm_len(c, i), m->norms[l][i],
                  (size_t)norm_len(c, i) * 4);
        }
        for (int i = 0; i < N_LIN; i++) {
            int rows, cols;
            lin_shape(c, i, &rows, &cols);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lin_names[i]);
            int ty = br && br->as_f32 && strcmp(br->as_f32, name) == 0 ? BN_TYPE_F32 : wtype;
            ty = m->qt[l][i] ? m->qt[l][i] : ty;
            size_t size;
            void *p = keep(&keepers, pack_lin(m, l, i, ty, &size));
            add_t(w, br, name, ty, rows, cols, p, size);
            if (br && br->lowrank && !strncmp(br->lowrank, name, strlen(br->lowrank))) {
                void *z = keep(&keepers, calloc((size_t)(rows + cols), 2));
                snprintf(name, sizeof name, "blk.%d.%s.lowrank_a", l, lin_names[i]);
                add_t(w, br, name, BN_TYPE_F16, 1, cols, z, (size_t)cols * 2);
                snprintf(name, sizeof name, "blk.%d.%s.lowrank_b", l, lin_names[i]);
                add_t(w, br, name, BN_TYPE_F16, rows, 1, z, (size_t)rows * 2);
            }
            const int scale_on = br && br->scale_on && !strcmp(br->scale_on, name);
            if (c->with_scales && (!m->qt[l][i] || scale_on)) {
                snprintf(name, sizeof name, "blk.%d.%s.scale", l, lin_names[i]);
                add_t(w, br, name, BN_TYPE_F32, 0, 1, &m->wst[l][i], 4);
            }
        }
    }
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_OK);
    bn_gguf_writer_free(w);
    for (int i = 0; i < keepers.n; i++) free(keepers.p[i]);
}

/* ---- the naive reference ---------------------------------------------------------------- */

static void ref_norm(const float *x, const float *w, int n, float eps, float *y)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

/* y = ternary W (rows x cols) times x quantized to int8 per token; kernels.h's formula. */
static void ref_bitlinear(const int8_t *W, float scale, int rows, int cols, const float *x,
                          float *y)
{
    int8_t *xq = malloc((size_t)cols);
    const float s = bn_quantize_act_row(x, cols, xq);
    for (int r = 0; r < rows; r++) {
        int32_t acc = 0;
        for (int k = 0; k < cols; k++) acc += W[(size_t)r * cols + k] * xq[k];
        y[r] = (float)acc * (scale * (1.0f / s));
    }
    free(xq);
}

/* Layer l's matrix i: ternary, or kept at 8/4 bits (its values wq times the same int8 x). */
static void ref_lin(const tmodel *m, int l, int i, const float *x, float *y)
{
    int rows, cols;
    lin_shape(&m->c, i, &rows, &cols);
    if (!m->qt[l][i]) {
        ref_bitlinear(m->w[l][i], m->ws[l][i] * m->wst[l][i], rows, cols, x, y);
        return;
    }
    int8_t *xq = malloc((size_t)cols);
    const float s = bn_quantize_act_row(x, cols, xq);
    for (int r = 0; r < rows; r++) {
        double acc = 0;
        for (int k = 0; k < cols; k++) acc += (double)m->wq[l][i][(size_t)r * cols + k] * xq[k];
        y[r] = (float)(acc / s);
    }
    free(xq);
}

static void ref_rope(float *x, int n_rot, float base, int pos)
{
    for (int i = 0; i < n_rot / 2; i++) {
        const float inv_freq = (float)pow(base, -2.0 * i / n_rot);
        const double th = (double)pos * inv_freq;
        const float c = (float)cos(th), s = (float)sin(th);
        const float a = x[i], b = x[i + n_rot / 2];
        x[i] = a * c - b * s;
        x[i + n_rot / 2] = a * s + b * c;
    }
}

static float kv_round(float v, int f16)
{
    return f16 ? bn_f16_to_f32(bn_f32_to_f16(v)) : v;
}

/* Logits (n x V) of every position of tokens, from an empty cache. */
/* a . b with both quantized to Q8_0 (blocks of 32, fp16 scale), as ggml's reference. */
static double ref_dot_q8_0(const float *a, const float *b, int n)
{
    bn_block_q8_0 qa[64], qb[64];
    assert_true(n / 32 <= 64);
    bn_quantize_row_q8_0(a, qa, n);
    bn_quantize_row_q8_0(b, qb, n);
    double s = 0;
    for (int i = 0; i < n / 32; i++) {
        int32_t sumi = 0;
        for (int k = 0; k < 32; k++) sumi += qa[i].qs[k] * qb[i].qs[k];
        s += (double)sumi * bn_f16_to_f32(qa[i].d) * bn_f16_to_f32(qb[i].d);
    }
    return s;
}

static void ref_forward(const tmodel *m, const int32_t *tok, int n, int kv_f16, int head_q8,
                        float *logits)
{
    const cfg *c = &m->c;
    const int E = c->E, F = c->F, d = E / c->nh, KV = c->nkv * d;
    float *K = calloc((size_t)c->n_layer * n * KV, 4), *Vc = calloc((size_t)c->n_layer * n * KV, 4);
    float *x = malloc(E * 4), *h = malloc(E * 4), *q = malloc(E * 4), *att = malloc(E * 4);
    float *k = malloc(KV * 4), *v = malloc(KV * 4), *o = malloc(E * 4);
    float *g = malloc(F * 4), *u = malloc(F * 4), *sc = malloc((size_t)n * 4);
    for (int t = 0; t < n; t++) {
        memcpy(x, m->embd + (size_t)tok[t] * E, E * 4);
        for (int l = 0; l < c->n_layer; l++) {
            float *const *nw = m->norms[l];
            ref_norm(x, nw[0], E, c->eps, h);
            ref_lin(m, l, 0, h, q);
            ref_lin(m, l, 1, h, k);
            ref_lin(m, l, 2, h, v);
            for (int hh = 0; hh < c->nh; hh++) ref_rope(q + hh * d, c->n_rot, c->base, t);
            for (int gg = 0; gg < c->nkv; gg++) ref_rope(k + gg * d, c->n_rot, c->base, t);
            for (int i = 0; i < KV; i++) {
                K[((size_t)l * n + t) * KV + i] = kv_round(k[i], kv_f16);
                Vc[((size_t)l * n + t) * KV + i] = kv_round(v[i], kv_f16);
            }
            for (int hh = 0; hh < c->nh; hh++) {
                const int gg = hh / (c->nh / c->nkv);
                float mx = -INFINITY, sum = 0;
                for (int p = 0; p <= t; p++) {
                    float s = 0;
                    for (int i = 0; i < d; i++)
                        s += K[((size_t)l * n + p) * KV + gg * d + i] * q[hh * d + i];
                    sc[p] = s * (1.0f / sqrtf((float)d));
                    if (sc[p] > mx) mx = sc[p];
                }
                for (int p = 0; p <= t; p++) {
                    sc[p] = expf(sc[p] - mx);
                    sum += sc[p];
                }
                for (int p = 0; p <= t; p++) sc[p] *= 1.0f / sum;
                for (int i = 0; i < d; i++) {
                    float a = 0;
                    for (int p = 0; p <= t; p++)
                        a += Vc[((size_t)l * n + p) * KV + gg * d + i] * sc[p];
                    att[hh * d + i] = a;
                }
            }
            if (!c->no_sub) ref_norm(att, nw[1], E, c->eps, att);
            ref_lin(m, l, 3, att, o);
            for (int i = 0; i < E; i++) x[i] += o[i];
            ref_norm(x, nw[2], E, c->eps, h);
            ref_lin(m, l, 4, h, g);
            ref_lin(m, l, 5, h, u);
            for (int i = 0; i < F; i++) {
                const float a = strcmp(c->arch, "bitnet") == 0 ? g[i] / (1.0f + expf(-g[i]))
                                                               : (g[i] > 0 ? g[i] * g[i] : 0.0f);
                g[i] = a * u[i];
            }
            if (!c->no_sub) ref_norm(g, nw[3], F, c->eps, g);
            ref_lin(m, l, 6, g, o);
            for (int i = 0; i < E; i++) x[i] += o[i];
        }
        ref_norm(x, m->out_norm, E, c->eps, h);
        const float *head = c->untied ? m->out : m->embd;
        for (int vv = 0; vv < c->V; vv++) {
            double s = 0;
            if (head_q8)
                s = ref_dot_q8_0(head + (size_t)vv * E, h, E);
            else
                for (int i = 0; i < E; i++) s += (double)head[(size_t)vv * E + i] * h[i];
            logits[(size_t)t * c->V + vv] = (float)s;
        }
    }
    free(K), free(Vc), free(x), free(h), free(q), free(att), free(k), free(v), free(o);
    free(g), free(u), free(sc);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static const cfg CFG_A = {
        .arch = "bitnet-b1.58",
        .n_layer = 3,
        .E = 256,
        .F = 768,
        .nh = 4,
        .nkv = 2,
        .n_rot = 64,
        .V = 301,
        .n_ctx = 64,
        .eps = 1e-5f,
        .base = 500000.0f,
        .embd_type = BN_TYPE_F16,
        .vocab_key = 1,
};
/* The older architecture: SiLU, Q8_0 embeddings, output.weight, .scale tensors, RoPE on
 * part of each head, 6 heads on 3 KV heads, no vocab_size key. */
static const cfg CFG_B = {
        .arch = "bitnet",
        .n_layer = 2,
        .E = 384,
        .F = 640,
        .nh = 6,
        .nkv = 3,
        .n_rot = 32,
        .V = 257,
        .n_ctx = 48,
        .eps = 1e-6f,
        .base = 10000.0f,
        .embd_type = BN_TYPE_Q8_0,
        .untied = 1,
        .with_scales = 1,
};

static void path_for(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", g_dir, name);
}

static bn_model *load_ok(const char *path, const bn_kernels *k, int head_type)
{
    bn_model_params p;
    bn_model_params_init(&p);
    p.kernels = k;
    p.head_type = head_type;
    bn_model *m = NULL;
    bn_status rc = bn_model_load(g_ctx, path, &p, &m);
    if (rc != BN_OK) fail_msg("load %s: %s", path, bn_ctx_errmsg(g_ctx));
    return m;
}

static bn_model_state *state_ok(bn_model *m, int64_t n_ctx, int64_t n_batch, int kv_type)
{
    bn_model_state_params p;
    bn_model_state_params_init(&p);
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.kv_type = kv_type;
    bn_model_state *st = NULL;
    if (bn_model_state_new(m, &p, &st) != BN_OK) fail_msg("state: %s", bn_ctx_errmsg(g_ctx));
    return st;
}

static void rand_tokens(int32_t *t, int n, int V)
{
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rnd() % (uint64_t)V);
}

/* max |a - b| over n values, relative to max |ref|. */
static double rel_diff(const float *a, const float *ref, size_t n)
{
    double md = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        const double dd = fabs((double)a[i] - ref[i]);
        if (dd > md) md = dd;
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    return md / mx;
}

/* Tolerances for logits against the reference, per position, relative to the largest
 * |logit| of that position. With the reference kernels the model's float sums run in the
 * same order as the naive loops here, so every position agrees to REF_TOL (the LM head's
 * sums, in double here, are the only difference). SIMD float dots (attention, LM head)
 * sum in another order, ~1e-7 apart; now and then that moves a value across a rounding
 * boundary of the int8 activation quantization or of the f16 cache, and from there on
 * logits move by about one quantization step (seen: up to ~1.7e-2). So with SIMD: every
 * position within SIMD_TOL_MAX and the mean within SIMD_TOL_MEAN. */
#define REF_TOL       1e-5
#define SIMD_TOL_MAX  3e-2
#define SIMD_TOL_MEAN 1e-2

static void check_rows(const float *got, const float *ref, int n, int V, int strict,
                       const char *what)
{
    int loose = 0;
    double worst = 0, mean = 0;
    for (int t = 0; t < n; t++) {
        const double d = rel_diff(got + (size_t)t * V, ref + (size_t)t * V, (size_t)V);
        loose += d > REF_TOL;
        worst = d > worst ? d : worst;
        mean += d / n;
    }
    print_message(
            "    %s, %2d tokens: max |diff| / max |logit| = %.2e, mean %.2e (%d above %.0e)\n",
            what, n, worst, mean, loose, REF_TOL);
    if (strict) {
        assert_true(worst < REF_TOL);
    } else {
        assert_true(worst < SIMD_TOL_MAX);
        assert_true(mean < SIMD_TOL_MEAN);
    }
}

static void check_against_reference(const tmodel *tm, const char *path, int kv_type,
                                    const bn_kernels *k, int head_q8)
{
    bn_model *m = load_ok(path, k, head_q8 ? BN_TYPE_Q8_0 : 0);
    const int V = tm->c.V;
    const int lens[] = {1, 7, 23};
    for (size_t s = 0; s < sizeof lens / sizeof lens[0]; s++) {
        const int n = lens[s];
        int32_t tok[32];
        rand_tokens(tok, n, V);
        float *ref = malloc((size_t)n * V * 4), *got = malloc((size_t)n * V * 4);
        const int ref_q8 = head_q8 || (!tm->c.untied && tm->c.embd_type == BN_TYPE_Q8_0);
        ref_forward(tm, tok, n, kv_type == BN_TYPE_F16, ref_q8, ref);
        bn_model_state *st = state_ok(m, 0, 0, kv_type);
        assert_int_equal(bn_model_eval(st, tok, n, 0, n, got), BN_OK);
        char what[96];
        snprintf(what, sizeof what, "%s %s kv %s head %s", tm->c.arch,
                 k ? k->name : bn_kernels_get()->name, bn_type_name(kv_type),
                 bn_type_name(bn_model_hparams_get(m)->head_type));
        check_rows(got, ref, n, V, bn_kernels_get() == bn_kernels_ref() || k == bn_kernels_ref(),
                   what);
        bn_model_state_free(st);
        free(ref);
        free(got);
    }
    bn_model_free(m);
}

/* The logits of n tokens evaluated at once (into all), and then token by token from
 * position 0 in the same state: the same numbers to the bit. */
static void check_one_by_one(bn_model *m, int kv_type, const int32_t *tok, int n, float *all)
{
    const int64_t V = bn_model_n_vocab(m);
    float *one = malloc((size_t)(n * V) * 4);
    bn_model_state *st = state_ok(m, 0, 0, kv_type);
    assert_int_equal(bn_model_eval(st, tok, n, 0, n, all), BN_OK);
    assert_int_equal(bn_model_state_pos(st), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(bn_model_eval(st, tok + i, 1, i, 1, one + (size_t)(i * V)), BN_OK);
    assert_true(rel_diff(one, all, (size_t)(n * V)) == 0.0);
    bn_model_state_free(st);
    free(one);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_reference_logits(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 1);
    char path[128];
    path_for(path, sizeof path, "a_i2s.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    check_against_reference(&tm, path, BN_TYPE_F16, NULL, 0);
    check_against_reference(&tm, path, BN_TYPE_F32, NULL, 0);
    check_against_reference(&tm, path, BN_TYPE_F32, bn_kernels_ref(), 0);
    check_against_reference(&tm, path, BN_TYPE_F16, bn_kernels_ref(), 0);
    check_against_reference(&tm, path, BN_TYPE_F16, bn_kernels_ref(), 1);
    check_against_reference(&tm, path, BN_TYPE_F16, NULL, 1); /* head requantized to q8_0 */
    tm_free(&tm);
}

static void test_reference_logits_bitnet(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_B, 2);
    char path[128];
    path_for(path, sizeof path, "b_i2s.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    check_against_reference(&tm, path, BN_TYPE_F32, NULL, 0);
    check_against_reference(&tm, path, BN_TYPE_F32, NULL, 1); /* untied f32 head to q8_0 */
    check_against_reference(&tm, path, BN_TYPE_F32, bn_kernels_ref(), 1);
    /* tied Q8_0 embeddings as the head: the file's rows, and split at load */
    tmodel tm2;
    cfg c2 = CFG_B;
    c2.untied = 0;
    tm_build(&tm2, &c2, 12);
    char path2[128];
    path_for(path2, sizeof path2, "b_tied_q8.gguf");
    write_model(&tm2, BN_TYPE_I2_S, NULL, path2);
    check_against_reference(&tm2, path2, BN_TYPE_F16, NULL, 0);
    check_against_reference(&tm2, path2, BN_TYPE_F16, NULL, 1);
    check_against_reference(&tm2, path2, BN_TYPE_F16, bn_kernels_ref(), 1);
    tm_free(&tm2);
    bn_model *m = load_ok(path, NULL, 0);
    const bn_model_hparams *h = bn_model_hparams_get(m);
    assert_int_equal(h->act, BN_ACT_SILU);
    assert_int_equal(h->n_vocab, CFG_B.V);
    assert_int_equal(h->tied, 0);
    assert_int_equal(h->embd_type, BN_TYPE_Q8_0);
    assert_int_equal(h->n_rot, 32);
    assert_int_equal(h->sub_norms, 1);
    bn_model_free(m);
    tm_free(&tm);
}

/* A model without attn_sub_norm and ffn_sub_norm (as converted from LLaMA: "bitnet",
 * SiLU) loads, and its logits are the reference's with the two sub-norm steps skipped:
 * batched, token by token, with the plain and the SIMD kernels. They are far from the
 * same weights' logits with sub-norms, so the check tells the two structures apart. */
static void test_no_sub_norms(void **state)
{
    (void)state;
    tmodel tm;
    cfg c = CFG_B;
    c.no_sub = 1;
    tm_build(&tm, &c, 13);
    char path[128];
    path_for(path, sizeof path, "b_nosub.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    check_against_reference(&tm, path, BN_TYPE_F32, bn_kernels_ref(), 0);
    check_against_reference(&tm, path, BN_TYPE_F16, bn_kernels_ref(), 1);
    check_against_reference(&tm, path, BN_TYPE_F16, NULL, 0);
    check_against_reference(&tm, path, BN_TYPE_F32, NULL, 1);
    bn_model *m = load_ok(path, NULL, 0);
    assert_int_equal(bn_model_hparams_get(m)->sub_norms, 0);
    const int n = 17, V = c.V;
    int32_t tok[17];
    rand_tokens(tok, n, V);
    float *all = malloc((size_t)n * V * 4), *with = malloc((size_t)n * V * 4);
    check_one_by_one(m, BN_TYPE_F32, tok, n, all); /* the one-token path skips them too */
    tm.c.no_sub = 0;                               /* now the reference applies them */
    ref_forward(&tm, tok, n, 0, 0, with);
    const double d = rel_diff(all, with, (size_t)n * V);
    print_message("    with the sub-norms applied instead: max |diff| / max |logit| = %.2e\n", d);
    assert_true(d > 0.1);
    /* the sub-norms' bytes are neither held nor read */
    path_for(path, sizeof path, "b_sub.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *ms = load_ok(path, NULL, 0);
    const size_t sub_bytes = (size_t)(c.E + c.F) * (size_t)c.n_layer * sizeof(float);
    assert_int_equal(bn_model_bytes_per_token(ms) - bn_model_bytes_per_token(m), sub_bytes);
    assert_int_equal(bn_model_weight_bytes(ms) - bn_model_weight_bytes(m), sub_bytes);
    bn_model_free(ms);
    bn_model_free(m);
    free(all);
    free(with);
    tm_free(&tm);
}

/* Evaluating T tokens at once, in sub-batches, or one at a time gives the same logits. */
static void test_batched_equals_sequential(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 3);
    char path[128];
    path_for(path, sizeof path, "a_seq.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *m = load_ok(path, NULL, 0);
    const int n = 29, V = tm.c.V;
    int32_t tok[29];
    rand_tokens(tok, n, V);
    float *all = malloc((size_t)n * V * 4), *sub = malloc((size_t)n * V * 4);
    check_one_by_one(m, BN_TYPE_F16, tok, n, all); /* token by token, after rewinding to 0 */
    /* batches of 5 inside the state (n_batch = 5), last 11 logits only */
    bn_model_state *st5 = state_ok(m, 0, 5, BN_TYPE_F16);
    assert_int_equal(bn_model_eval(st5, tok, n, 0, 11, sub), BN_OK);
    assert_true(rel_diff(sub, all + (size_t)(n - 11) * V, (size_t)11 * V) == 0.0);
    /* a prompt of 20, then 9 one by one, continuing from the cache */
    assert_int_equal(bn_model_eval(st5, tok, 20, 0, 1, sub), BN_OK);
    assert_true(rel_diff(sub, all + (size_t)19 * V, (size_t)V) == 0.0);
    for (int i = 20; i < n; i++) {
        assert_int_equal(bn_model_eval(st5, tok + i, 1, bn_model_state_pos(st5), 1, sub), BN_OK);
        assert_true(rel_diff(sub, all + (size_t)i * V, (size_t)V) == 0.0);
    }
    /* rewinding to 10 and going on gives the same as before */
    assert_int_equal(bn_model_eval(st5, tok + 10, 3, 10, 3, sub), BN_OK);
    assert_true(rel_diff(sub, all + (size_t)10 * V, (size_t)3 * V) == 0.0);
    bn_model_state_reset(st5);
    assert_int_equal(bn_model_state_pos(st5), 0);
    /* no logits at all */
    assert_int_equal(bn_model_eval(st5, tok, 4, 0, 0, NULL), BN_OK);
    bn_model_state_free(st5);
    bn_model_free(m);
    free(all);
    free(sub);
    tm_free(&tm);
}

/* Several sequences in one batched pass (bn_model_eval_batch): the same logits, to the bit,
 * as each sequence evaluated alone. Sequences 0 and 2 start alone (prompts of 1 and 4);
 * sequence 1's prompt (9 tokens) joins the first step's batch and sequence 3's (17) the
 * third's, while the others decode one token each, so tokens sit at different positions of
 * different caches; sequence 1 sits out the odd steps. And the errors. */
static void check_eval_batch(bn_model *m, int kv_type)
{
    enum { NS = 4, STEPS = 6 };
    const int64_t V = bn_model_n_vocab(m);
    const int plen[NS] = {1, 9, 4, 17}, joins[NS] = {-1, 0, -1, 2};
    int32_t tok[NS][32];
    bn_model_state *alone[NS], *batched[NS];
    float *la = malloc((size_t)V * 4), *lb[NS];
    for (int i = 0; i < NS; i++) {
        rand_tokens(tok[i], plen[i] + STEPS, (int)V);
        alone[i] = state_ok(m, 40, 0, kv_type);
        batched[i] = state_ok(m, 40, 0, kv_type);
        lb[i] = malloc((size_t)V * 4);
        assert_int_equal(bn_model_eval(alone[i], tok[i], plen[i], 0, 1, la), BN_OK);
        if (joins[i] < 0)
            assert_int_equal(bn_model_eval(batched[i], tok[i], plen[i], 0, 1, lb[i]), BN_OK);
    }
    for (int step = 0; step < STEPS; step++) {
        bn_model_state *sts[NS];
        const int32_t *next[NS];
        int64_t nt[NS];
        float *outs[NS];
        int n = 0, who[NS];
        for (int i = 0; i < NS; i++) {
            if (joins[i] > step || (step % 2 == 1 && i == 1)) continue;
            const int64_t pos = bn_model_state_pos(batched[i]);
            sts[n] = batched[i];
            next[n] = &tok[i][pos];
            nt[n] = joins[i] == step ? plen[i] : 1; /* its prompt joins, or one token */
            outs[n] = lb[i];
            who[n++] = i;
        }
        assert_int_equal(bn_model_eval_batch(sts, n, next, nt, outs), BN_OK);
        for (int b = 0; b < n; b++) {
            const int i = who[b];
            if (joins[i] == step) { /* its prompt: the logits of its last token */
                assert_int_equal(bn_model_state_pos(batched[i]), plen[i]);
            } else {
                const int64_t pos = bn_model_state_pos(alone[i]);
                assert_int_equal(bn_model_state_pos(batched[i]), pos + 1);
                assert_int_equal(bn_model_eval(alone[i], &tok[i][pos], 1, pos, 1, la), BN_OK);
            }
            if (joins[i] == step) { /* alone[i] holds the prompt's logits from the start */
                float *lp = malloc((size_t)V * 4);
                bn_model_state *fresh = state_ok(m, 40, 0, kv_type);
                assert_int_equal(bn_model_eval(fresh, tok[i], plen[i], 0, 1, lp), BN_OK);
                assert_true(rel_diff(lb[i], lp, (size_t)V) == 0.0);
                bn_model_state_free(fresh);
                free(lp);
            } else {
                assert_true(rel_diff(lb[i], la, (size_t)V) == 0.0);
            }
        }
    }
    /* errors change no state */
    const int64_t p0 = bn_model_state_pos(batched[0]);
    const int32_t two[2] = {1, 2}, *tp[2] = {&two[0], &two[1]};
    const int64_t one[2] = {1, 1};
    bn_model_state *dup[2] = {batched[0], batched[0]};
    float *o2[2] = {lb[0], lb[1]};
    assert_int_equal(bn_model_eval_batch(dup, 2, tp, one, o2), BN_ERR_INVALID);
    bn_model_state *other = state_ok(m, 20, 0, kv_type); /* another cache size */
    bn_model_state *mixed[2] = {batched[0], other};
    assert_int_equal(bn_model_eval_batch(mixed, 2, tp, one, o2), BN_ERR_INVALID);
    bn_model_state *pair[2] = {batched[0], batched[1]};
    const int32_t bad = (int32_t)V, *bp[2] = {&two[0], &bad};
    assert_int_equal(bn_model_eval_batch(pair, 2, bp, one, o2), BN_ERR_INVALID);
    const int64_t none[2] = {1, 0};
    assert_int_equal(bn_model_eval_batch(pair, 2, tp, none, o2), BN_ERR_INVALID);
    assert_int_equal(bn_model_state_pos(batched[0]), p0);
    /* a full cache, and tokens that do not fit */
    bn_model_state *full = state_ok(m, 40, 0, kv_type);
    int32_t fill[40];
    rand_tokens(fill, 40, (int)V);
    assert_int_equal(bn_model_eval(full, fill, 40, 0, 0, NULL), BN_OK);
    bn_model_state *withfull[2] = {batched[0], full};
    assert_int_equal(bn_model_eval_batch(withfull, 2, tp, one, o2), BN_ERR_RANGE);
    const int32_t *big[2] = {fill, two};
    const int64_t nbig[2] = {40, 1};
    assert_int_equal(bn_model_eval_batch(pair, 2, big, nbig, o2), BN_ERR_RANGE);
    assert_int_equal(bn_model_state_pos(batched[0]), p0);
    /* more tokens than the first state's batch holds */
    bn_model_state *small = state_ok(m, 40, 1, kv_type);
    assert_int_equal(bn_model_state_n_batch(small), 1);
    bn_model_state *over[2] = {small, batched[0]};
    assert_int_equal(bn_model_eval_batch(over, 2, tp, one, o2), BN_ERR_INVALID);
    bn_model_state_free(small);
    bn_model_state_free(full);
    bn_model_state_free(other);
    for (int i = 0; i < NS; i++) {
        bn_model_state_free(alone[i]);
        bn_model_state_free(batched[i]);
        free(lb[i]);
    }
    free(la);
}

/* Decode steps of many sequences, each one token: with 2 threads and at least 8 sequences a
 * thread the pass is shared out by sequences (split_forward in model_forward.c: each thread
 * runs the whole forward of its share alone), and every sequence still gets its own
 * logits to the bit, at different positions (prompts of 1 to 7 tokens), over uneven shares
 * (19 sequences: 9 and 10), and as the steps go. A share whose first state has too small a
 * batch for it, and a step with a prompt in it, go the shared way: the same bits too. */
static void check_eval_split(bn_model *m)
{
    enum { NS = 19, STEPS = 4 };
    const int64_t V = bn_model_n_vocab(m);
    int32_t tok[NS][16];
    bn_model_state *alone[NS], *batched[NS];
    float *la = malloc((size_t)V * 4), *lb[NS];
    for (int i = 0; i < NS; i++) {
        const int plen = 1 + i % 7;
        rand_tokens(tok[i], plen + STEPS + 1, (int)V); /* one more: step 3 */
        alone[i] = state_ok(m, 24, 0, BN_TYPE_F16);
        batched[i] = state_ok(m, 24, 0, BN_TYPE_F16);
        lb[i] = malloc((size_t)V * 4);
        assert_int_equal(bn_model_eval(alone[i], tok[i], plen, 0, 1, la), BN_OK);
        assert_int_equal(bn_model_eval(batched[i], tok[i], plen, 0, 1, lb[i]), BN_OK);
    }
    bn_model_state *narrow = state_ok(m, 24, 1, BN_TYPE_F16); /* a batch of 1 token */
    for (int step = 0; step < STEPS; step++) {
        bn_model_state *sts[NS];
        const int32_t *next[NS];
        int64_t nt[NS];
        float *outs[NS];
        for (int i = 0; i < NS; i++) {
            const int64_t pos = bn_model_state_pos(batched[i]);
            sts[i] = batched[i];
            next[i] = &tok[i][pos];
            nt[i] = 1;
            outs[i] = lb[i];
        }
        if (step == 3) nt[4] = 2; /* a prompt's two tokens: not a decode step */
        assert_int_equal(bn_model_eval_batch(sts, NS, next, nt, outs), BN_OK);
        for (int i = 0; i < NS; i++) {
            const int64_t pos = bn_model_state_pos(alone[i]);
            assert_int_equal(bn_model_state_pos(batched[i]), pos + nt[i]);
            assert_int_equal(bn_model_eval(alone[i], &tok[i][pos], nt[i], pos, 1, la), BN_OK);
            assert_true(rel_diff(lb[i], la, (size_t)V) == 0.0);
        }
    }
    /* a share led by a state whose scratch holds 1 token: the shared way (it is not the
     * first state, whose batch bounds the pass) */
    for (int i = 0; i < NS; i++) bn_model_state_reset(batched[i]), bn_model_state_reset(alone[i]);
    bn_model_state *sts[NS];
    const int32_t *next[NS];
    int64_t nt[NS];
    float *outs[NS];
    for (int i = 0; i < NS; i++) {
        sts[i] = i == 9 ? narrow : batched[i];
        next[i] = tok[i];
        nt[i] = 1;
        outs[i] = lb[i];
    }
    assert_int_equal(bn_model_eval_batch(sts, NS, next, nt, outs), BN_OK);
    for (int i = 0; i < NS; i++) {
        assert_int_equal(bn_model_eval(alone[i], tok[i], 1, 0, 1, la), BN_OK);
        assert_true(rel_diff(lb[i], la, (size_t)V) == 0.0);
    }
    bn_model_state_free(narrow);
    for (int i = 0; i < NS; i++) {
        bn_model_state_free(alone[i]);
        bn_model_state_free(batched[i]);
        free(lb[i]);
    }
    free(la);
}

static void test_eval_split(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 11);
    char path[128];
    path_for(path, sizeof path, "a_split.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *m = load_ok(path, NULL, 0);
    check_eval_split(m);
    bn_model_free(m);
    tm_free(&tm);
    tm_build(&tm, &CFG_B, 12); /* SiLU, 6 heads on 3, Q8_0 head (its several-token kernel) */
    path_for(path, sizeof path, "b_split.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    m = load_ok(path, NULL, BN_TYPE_Q8_0);
    check_eval_split(m);
    bn_model_free(m);
    tm_free(&tm);
}

/* The AVX-512 VNNI LM head (model_avx512.c), on its own form of the head (unsigned bytes,
 * scales of 16 rows side by side): one token's kernel gives the plain-C reference's bits
 * (the same integer block sums and the same chain of multiply-adds), and the several-token
 * kernel gives each token's logits equal to the bit to its own alone; rows from the middle
 * of a 16-row group to the middle of another, a padded last group, 19 tokens (a full group
 * of 16 and one of 3); rows outside [r0, r1) untouched. */
#if defined(__x86_64__) || defined(__i386__)
/* One head of R rows (padded to 16) and n_embd E against T tokens: the one-token kernel
 * equals the plain-C reference to the bit, the several-token kernel (groups of 16, the
 * last one T % 16 tokens) equals the one-token kernel, rows outside [r0, r1) untouched;
 * and the reference is the product it claims (sums in double). */
static void head_multi_case(int E, int T)
{
    enum { R = 37, RP = 48 };
    const int NB = E / 32, ng = (T + 15) / 16;
    const int64_t r0 = 2, r1 = 35;
    int8_t *qs = malloc((size_t)RP * E), *xq = malloc((size_t)T * E);
    uint16_t *d = calloc((size_t)RP * NB, sizeof *d);
    float *xd = malloc((size_t)T * NB * sizeof *xd);
    float *one = malloc((size_t)T * R * sizeof *one), *many = malloc((size_t)T * R * sizeof *many);
    float *ref = malloc((size_t)T * R * sizeof *ref);
    float **ys = malloc((size_t)T * sizeof *ys);
    memset(qs, 0x80, (size_t)RP * E);
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) {
            for (int k = 0; k < 32; k++) /* w + 128 for w in [-127, 127] */
                qs[bn__head_u8_offset(E, r, b * 32 + k)] = (int8_t)(uint8_t)(1 + rnd() % 255);
            d[bn__head_d16_index(NB, r, b)] = bn_f32_to_f16(0.001f + (float)(rnd() % 1000) * 1e-5f);
        }
    for (int i = 0; i < T * E; i++) xq[i] = (int8_t)((int)(rnd() % 255) - 127);
    for (int i = 0; i < T * NB; i++) xd[i] = 0.002f + (float)(rnd() % 100) * 1e-4f;
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < R; r++) one[t * R + r] = many[t * R + r] = ref[t * R + r] = -1.0f;
        ys[t] = many + t * R;
        bn__head_u8_rows_avx512(qs, d, E, r0, r1, xq + t * E, xd + t * NB, one + t * R);
        bn__head_u8_rows_ref(qs, d, E, r0, r1, xq + t * E, xd + t * NB, ref + t * R);
    }
    const size_t gb = bn__head_group_bytes(E);
    char *grp = bn_aligned_alloc(64, (size_t)ng * gb);
    for (int g = 0; g < ng; g++) {
        const int n = T - 16 * g < 16 ? T - 16 * g : 16;
        bn__head_group_prep(E, xq + 16 * g * E, xd + 16 * g * NB, n, grp + g * gb);
        bn__head_u8_rows_multi_avx512(qs, d, E, r0, r1, grp + g * gb, n, ys + 16 * g);
    }
    for (int t = 0; t < T; t++) {
        const float *o = one + t * R;
        assert_memory_equal(o, ref + t * R, R * sizeof *o); /* the bits, and -1 outside */
        assert_memory_equal(many + t * R, o, R * sizeof *o);
        assert_true(o[0] == -1.0f && o[1] == -1.0f && o[35] == -1.0f);
    }
    for (int t = 0; t < T; t++)
        for (int r = (int)r0; r < (int)r1; r++) {
            double s = 0.0;
            for (int b = 0; b < NB; b++) {
                long sumi = 0;
                for (int k = 0; k < 32; k++)
                    sumi += ((long)(uint8_t)qs[bn__head_u8_offset(E, r, b * 32 + k)] - 128) *
                            xq[t * E + b * 32 + k];
                s += (double)sumi * bn_f16_to_f32(d[bn__head_d16_index(NB, r, b)]) * xd[t * NB + b];
            }
            assert_true(fabs(ref[t * R + r] - s) <= 1e-4 * (fabs(s) + 1.0));
        }
    free(qs), free(xq), free(d), free(xd), free(one), free(many), free(ref), free(ys);
    bn_free(grp);
}
#endif

static void test_head_avx512_multi(void **state)
{
    (void)state;
#if defined(__x86_64__) || defined(__i386__)
    const bn_cpu_info *c = bn_cpu_info_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->avx512dq)) skip();
    head_multi_case(256, 19);  /* one chunk of blocks; 16 tokens, then 3 */
    head_multi_case(1088, 25); /* 34 blocks: chunks of 16, 16 and 2; 16 tokens, then 9 */
    head_multi_case(64, 1);
#else
    skip();
#endif
}

/* The Q6H / Q4H head in the avx512 kernels' lanes form (model_internal.h): packed from the
 * blocks of types.h, the plain-C reference gives each row's product with the dequantized
 * blocks (against sums in double), the AVX-512 kernel gives the reference's bits and the
 * several-token kernel each token's bits alone (25 tokens: groups of 16 and 9), for
 * rows from the middle of one 16-row group to the middle of another, five 256-value blocks
 * per row (the kernel's chunks of 2, 2 and 1), rows outside [r0, r1) untouched. */
static void test_head_lanes(void **state)
{
    (void)state;
    enum { E = 1280, NS = E / 256, NB = E / 32, R = 37, RP = 48 };
    for (int q6 = 0; q6 < 2; q6++) {
        const size_t bytes = RP / 16 * NS * bn__head_lanes_rec(q6);
        uint8_t *lanes = calloc(1, bytes);
        float *w = malloc((size_t)R * E * sizeof *w), row[E];
        bn_block_q6h b6[NS];
        bn_block_q4h b4[NS];
        for (int r = 0; r < R; r++) {
            for (int i = 0; i < E; i++) row[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
            row[rnd() % E] = 3.0f; /* a row with an outlier */
            if (q6) {
                bn_quantize_row_q6h_ref(row, b6, E);
                bn_dequantize_row_q6h(b6, w + (size_t)r * E, E);
            } else {
                bn_quantize_row_q4h_ref(row, b4, E);
                bn_dequantize_row_q4h(b4, w + (size_t)r * E, E);
            }
            bn__head_lanes_pack(q6 ? (const void *)b6 : (const void *)b4, q6, E, r, lanes);
        }
        int8_t xq[E];
        float xd[NB], ref[R], simd[R];
        for (int i = 0; i < E; i++) xq[i] = (int8_t)((int)(rnd() % 255) - 127);
        for (int b = 0; b < NB; b++) xd[b] = 0.002f + (float)(rnd() % 100) * 1e-4f;
        for (int r = 0; r < R; r++) ref[r] = simd[r] = -1.0f;
        const int64_t r0 = 5, r1 = 35;
        bn__head_lanes_rows_ref(lanes, q6, E, r0, r1, xq, xd, ref);
        for (int r = 0; r < R; r++) {
            if (r < r0 || r >= r1) {
                assert_true(ref[r] == -1.0f);
                continue;
            }
            double s = 0.0;
            for (int i = 0; i < E; i++) s += (double)w[(size_t)r * E + i] * xq[i] * xd[i / 32];
            assert_true(fabs(ref[r] - s) <= 1e-5 * (fabs(s) + 1.0));
        }
#if defined(__x86_64__) || defined(__i386__)
        const bn_cpu_info *c = bn_cpu_info_get();
        if (c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->avx512dq) {
            (q6 ? bn__head_q6_lanes_avx512 : bn__head_q4_lanes_avx512)((const int8_t *)lanes, NULL,
                                                                       E, r0, r1, xq, xd, simd);
            assert_memory_equal(simd, ref, sizeof ref);
            /* 25 tokens (groups of 16 and 9) at once: each as the one-token kernel gives */
            enum { T = 25 };
            int8_t *tq = malloc((size_t)T * E);
            float td[T * NB], one[R], many[T][R], *ys[T];
            for (int i = 0; i < T * E; i++) tq[i] = (int8_t)((int)(rnd() % 255) - 127);
            for (int i = 0; i < T * NB; i++) td[i] = 0.002f + (float)(rnd() % 100) * 1e-4f;
            const size_t gb = bn__head_group_bytes(E);
            char *grp = bn_aligned_alloc(64, 2 * gb);
            bn__head_group_prep(E, tq, td, 16, grp);
            bn__head_group_prep(E, tq + 16 * E, td + 16 * NB, T - 16, grp + gb);
            for (int t = 0; t < T; t++) {
                for (int r = 0; r < R; r++) many[t][r] = -1.0f;
                ys[t] = many[t];
            }
            bn__head_multi_fn multi =
                    q6 ? bn__head_q6_lanes_multi_avx512 : bn__head_q4_lanes_multi_avx512;
            multi((const int8_t *)lanes, NULL, E, r0, r1, grp, 16, ys);
            multi((const int8_t *)lanes, NULL, E, r0, r1, grp + gb, T - 16, ys + 16);
            for (int t = 0; t < T; t++) {
                for (int r = 0; r < R; r++) one[r] = -1.0f;
                (q6 ? bn__head_q6_lanes_avx512 : bn__head_q4_lanes_avx512)(
                        (const int8_t *)lanes, NULL, E, r0, r1, tq + t * E, td + t * NB, one);
                assert_memory_equal(many[t], one, sizeof one);
            }
            bn_free(grp);
            free(tq);
        }
#endif
        free(lanes);
        free(w);
    }
}

static void test_eval_batch(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 7);
    char path[128];
    path_for(path, sizeof path, "a_multi.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *m = load_ok(path, NULL, 0);
    check_eval_batch(m, BN_TYPE_F16);
    check_eval_batch(m, BN_TYPE_F32);
    bn_model_free(m);
    m = load_ok(path, bn_kernels_ref(), 0); /* attend() per (token, head) */
    check_eval_batch(m, BN_TYPE_F16);
    bn_model_free(m);
    tm_free(&tm);
    tm_build(&tm, &CFG_B, 8); /* SiLU, 6 heads on 3, Q8_0 head */
    path_for(path, sizeof path, "b_multi.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    m = load_ok(path, NULL, BN_TYPE_Q8_0);
    check_eval_batch(m, BN_TYPE_F16);
    bn_model_free(m);
    tm_free(&tm);
}

/* The same ternary weights in I2_S, TQ2_0 and TQ1_0 give the same logits. */
static void test_formats_agree(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 4);
    const int types[3] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};
    const int n = 9, V = tm.c.V;
    int32_t tok[9];
    rand_tokens(tok, n, V);
    float *lg[3];
    for (int i = 0; i < 3; i++) {
        char path[128], name[32];
        snprintf(name, sizeof name, "fmt_%s.gguf", bn_type_name(types[i]));
        path_for(path, sizeof path, name);
        write_model(&tm, types[i], NULL, path);
        bn_model *m = load_ok(path, NULL, 0);
        assert_int_equal(bn_model_hparams_get(m)->weight_type, types[i]);
        bn_model_state *st = state_ok(m, 16, 0, BN_TYPE_F16);
        lg[i] = malloc((size_t)n * V * 4);
        assert_int_equal(bn_model_eval(st, tok, n, 0, n, lg[i]), BN_OK);
        bn_model_state_free(st);
        bn_model_free(m);
    }
    assert_true(rel_diff(lg[1], lg[0], (size_t)n * V) == 0.0);
    assert_true(rel_diff(lg[2], lg[0], (size_t)n * V) == 0.0);
    for (int i = 0; i < 3; i++) free(lg[i]);
    tm_free(&tm);
}

/* A file broken as br fails to load with want and a one-line message containing what. */
static void expect_load_error(const tmodel *tm, const breakage *br, bn_status want,
                              const char *what)
{
    char path[128];
    path_for(path, sizeof path, "broken.gguf");
    write_model(tm, BN_TYPE_I2_S, br, path);
    bn_model *m = (bn_model *)1;
    bn_status rc = bn_model_load(g_ctx, path, NULL, &m);
    const char *msg = bn_ctx_errmsg(g_ctx);
    print_message("    %s: %s\n", bn_status_str(rc), msg);
    assert_int_equal(rc, want);
    assert_null(m);
    assert_non_null(strstr(msg, what));
    assert_null(strchr(msg, '\n'));
}

static void test_malformed(void **state)
{
    (void)state;
    tmodel tm;
    cfg c = CFG_A;
    c.n_layer = 2;
    tm_build(&tm, &c, 5);
    breakage br;
    memset(&br, 0, sizeof br);
    br.drop = "blk.1.ffn_up.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT, "blk.1.ffn_up.weight: missing");
    memset(&br, 0, sizeof br);
    br.transpose = "blk.1.ffn_up.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.1.ffn_up.weight: shape 256x768, expected 768x256");
    memset(&br, 0, sizeof br);
    br.drop = "blk.0.attn_sub_norm.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.0.attn_sub_norm.weight: missing, but blk.0.ffn_sub_norm.weight is "
                      "present (sub-norms go in every layer or in none)");
    memset(&br, 0, sizeof br);
    br.drop = "blk.1.ffn_sub_norm.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.1.ffn_sub_norm.weight: missing, but blk.0.attn_sub_norm.weight");
    memset(&br, 0, sizeof br);
    br.drop = "output_norm.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT, "output_norm.weight");
    memset(&br, 0, sizeof br);
    br.drop = "token_embd.weight";
    expect_load_error(&tm, &br, BN_ERR_FORMAT, "token_embd.weight: missing");
    memset(&br, 0, sizeof br);
    br.as_f32 = "blk.0.attn_k.weight";
    expect_load_error(&tm, &br, BN_ERR_UNSUPPORTED, "blk.0.attn_k.weight: type f32");
    memset(&br, 0, sizeof br);
    br.arch = "llama";
    expect_load_error(&tm, &br, BN_ERR_UNSUPPORTED, "architecture 'llama'");
    memset(&br, 0, sizeof br);
    br.drop_key = "bitnet-b1.58.block_count";
    expect_load_error(&tm, &br, BN_ERR_FORMAT, "bitnet-b1.58.block_count: missing");
    memset(&br, 0, sizeof br);
    br.bad_kv = 3;
    expect_load_error(&tm, &br, BN_ERR_FORMAT, "head_count_kv");
    /* a model without sub-norms but for one of them */
    tmodel tn;
    cfg cn = c;
    cn.no_sub = 1;
    tm_build(&tn, &cn, 5);
    memset(&br, 0, sizeof br);
    br.add_sub = "blk.1.ffn_sub_norm.weight";
    expect_load_error(&tn, &br, BN_ERR_FORMAT,
                      "blk.0.attn_sub_norm.weight: missing, but blk.1.ffn_sub_norm.weight");
    memset(&br, 0, sizeof br);
    br.drop = "blk.1.attn_norm.weight"; /* the pre-norms stay required */
    expect_load_error(&tn, &br, BN_ERR_FORMAT, "blk.1.attn_norm.weight: missing");
    tm_free(&tn);

    /* truncated: every cut through the data section fails cleanly */
    char path[128];
    path_for(path, sizeof path, "trunc.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    const long cuts[] = {size - 1, size - 4096, size / 2, 100, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(truncate(path, cuts[i]), 0);
        bn_model *m = NULL;
        bn_status rc = bn_model_load(g_ctx, path, NULL, &m);
        print_message("    cut at %ld: %s: %s\n", cuts[i], bn_status_str(rc), bn_ctx_errmsg(g_ctx));
        assert_int_not_equal(rc, BN_OK);
        assert_null(m);
        assert_null(strchr(bn_ctx_errmsg(g_ctx), '\n'));
    }
    path_for(path, sizeof path, "no-such-file.gguf");
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(g_ctx, path, NULL, &m), BN_ERR_IO);
    tm_free(&tm);
}

/* A mixed-precision model (convert --mixed): some linear layers stored as Q8_0 or Q4_0
 * beside ternary ones give the reference's logits (the same int8 activations times the
 * stored 8/4-bit values), the same numbers token by token as in one batch, and their bytes
 * in the accounting. */
static void test_mixed_layers(void **state)
{
    (void)state;
    static const cfg *const cfgs[2] = {&CFG_A, &CFG_B};
    for (int ci = 0; ci < 2; ci++) {
        tmodel tm;
        tm_build(&tm, cfgs[ci], 11 + (uint64_t)ci);
        tm_keep(&tm, 0, 0, BN_TYPE_Q8_0); /* attn_q */
        tm_keep(&tm, 0, 6, BN_TYPE_Q4_0); /* ffn_down */
        tm_keep(&tm, 1, 5, BN_TYPE_Q8_0); /* ffn_up */
        tm_keep(&tm, 1, 2, BN_TYPE_Q4_0); /* attn_v */
        tm_keep(&tm, 1, 3, BN_TYPE_Q8_0); /* attn_output */
        char path[128];
        path_for(path, sizeof path, "mixed.gguf");
        write_model(&tm, ci ? BN_TYPE_I2_S : BN_TYPE_TQ2_0, NULL, path);
        check_against_reference(&tm, path, BN_TYPE_F32, bn_kernels_ref(), 0);
        check_against_reference(&tm, path, BN_TYPE_F16, NULL, 0);
        bn_model *m = load_ok(path, NULL, 0);
        const bn_model_hparams *h = bn_model_hparams_get(m);
        assert_int_equal(h->weight_type, ci ? BN_TYPE_I2_S : BN_TYPE_TQ2_0);
        size_t kept = 0;
        for (int l = 0; l < 2; l++)
            for (int i = 0; i < N_LIN; i++) kept += tm.qbytes[l][i];
        assert_true(bn_model_bytes_per_token(m) > kept);
        int32_t tok[9];
        rand_tokens(tok, 9, tm.c.V);
        float *all = malloc((size_t)9 * tm.c.V * 4);
        check_one_by_one(m, BN_TYPE_F16, tok, 9, all);
        free(all);
        bn_model_free(m);
        tm_free(&tm);
    }
}

/* Type combinations a mixed model may not have: a correction or a .scale tensor beside a layer
 * kept at 8 or 4 bits, a scale that is not finite; one line each. */
static void test_mixed_malformed(void **state)
{
    (void)state;
    tmodel tm;
    cfg c = CFG_A;
    c.n_layer = 2;
    tm_build(&tm, &c, 7);
    tm_keep(&tm, 1, 4, BN_TYPE_Q8_0);
    tm_keep(&tm, 0, 1, BN_TYPE_Q4_0);
    breakage br;
    memset(&br, 0, sizeof br);
    br.lowrank = "blk.1.ffn_gate";
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.1.ffn_gate.lowrank_a: a low-rank correction of a q8_0 layer (only "
                      "ternary layers take one)");
    memset(&br, 0, sizeof br);
    br.lowrank = "blk.0.attn_k";
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.0.attn_k.lowrank_a: a low-rank correction "
                      "of a q4_0 layer");
    br.lowrank = "blk.0.attn_q"; /* beside a ternary layer: fine */
    char path[128];
    path_for(path, sizeof path, "mixed_lr.gguf");
    write_model(&tm, BN_TYPE_I2_S, &br, path);
    bn_model *m = load_ok(path, NULL, 0);
    bn_model_free(m);
    tm.qraw[0][1][18 * 5] = 0x00, tm.qraw[0][1][18 * 5 + 1] = 0x7c; /* block 5's d = inf */
    expect_load_error(&tm, NULL, BN_ERR_FORMAT,
                      "blk.0.attn_k.weight: the scale of block 5 is not finite");
    tm_free(&tm);
    cfg cb = CFG_B; /* with .scale tensors: none is written beside a kept layer ... */
    tm_build(&tm, &cb, 8);
    tm_keep(&tm, 0, 3, BN_TYPE_Q4_0);
    path_for(path, sizeof path, "mixed_scale.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model_free(load_ok(path, NULL, 0));
    memset(&br, 0, sizeof br);
    br.scale_on = "blk.0.attn_output.weight"; /* ... unless asked */
    expect_load_error(&tm, &br, BN_ERR_FORMAT,
                      "blk.0.attn_output.scale: a scale tensor of a q4_0 layer");
    tm_free(&tm);
}

/* Failing the n-th allocation of a load (or of a state) returns BN_ERR_NOMEM and leaks
 * nothing (LeakSanitizer checks the last part under SAN=1). */
static void test_alloc_failures(void **state)
{
    (void)state;
    tmodel tm;
    cfg c = CFG_A;
    c.n_layer = 2;
    tm_build(&tm, &c, 6);
    char path[128];
    path_for(path, sizeof path, "alloc.gguf");
    write_model(&tm, BN_TYPE_TQ1_0, NULL, path);
    int done = 0;
    for (long n = 1; n < 5000 && !done; n++) {
        bn_model *m = NULL;
        bn_alloc_fail_at(n, n % 2);
        bn_status rc = bn_model_load(g_ctx, path, NULL, &m);
        bn_model_state *st = NULL;
        if (rc == BN_OK) rc = bn_model_state_new(m, NULL, &st);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            done = 1;
            print_message("    load + state succeed once %ld allocations may succeed\n", n);
        } else {
            assert_int_equal(rc, BN_ERR_NOMEM);
        }
        bn_model_state_free(st);
        bn_model_free(m);
    }
    assert_true(done);
    tm_free(&tm);
}

static void test_eval_errors(void **state)
{
    (void)state;
    tmodel tm;
    cfg c = CFG_A;
    c.n_layer = 1;
    tm_build(&tm, &c, 7);
    char path[128];
    path_for(path, sizeof path, "small.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *m = load_ok(path, NULL, 0);
    const int V = c.V;
    float *lg = malloc((size_t)16 * V * 4);
    int32_t tok[16];
    rand_tokens(tok, 16, V);
    bn_model_state *st = state_ok(m, 12, 0, BN_TYPE_F16);
    assert_int_equal(bn_model_state_n_ctx(st), 12);
    assert_int_equal(bn_model_eval(st, tok, 10, 0, 1, lg), BN_OK);
    /* overflow: refused, with the cache untouched */
    assert_int_equal(bn_model_eval(st, tok, 3, 10, 1, lg), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "context"));
    assert_int_equal(bn_model_state_pos(st), 10);
    assert_int_equal(bn_model_eval(st, tok, 2, 10, 1, lg), BN_OK);
    assert_int_equal(bn_model_eval(st, tok, 1, 12, 1, lg), BN_ERR_RANGE);
    assert_int_equal(bn_model_eval(st, tok, 13, 0, 1, lg), BN_ERR_RANGE);
    /* bad arguments */
    int32_t bad[2] = {1, V};
    assert_int_equal(bn_model_eval(st, bad, 2, 0, 1, lg), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "token id"));
    bad[1] = -1;
    assert_int_equal(bn_model_eval(st, bad, 2, 0, 1, lg), BN_ERR_INVALID);
    assert_int_equal(bn_model_eval(st, tok, 0, 0, 0, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_model_eval(st, tok, 1, 13, 1, lg), BN_ERR_INVALID);
    assert_int_equal(bn_model_eval(st, tok, 2, 0, 3, lg), BN_ERR_INVALID);
    assert_int_equal(bn_model_eval(st, tok, 2, 0, 1, NULL), BN_ERR_INVALID);
    bn_model_state_free(st);
    /* a context larger than the model's */
    bn_model_state_params p;
    bn_model_state_params_init(&p);
    p.n_ctx = c.n_ctx + 1;
    st = (bn_model_state *)1;
    assert_int_equal(bn_model_state_new(m, &p, &st), BN_ERR_RANGE);
    assert_null(st);
    p.n_ctx = 0;
    p.kv_type = BN_TYPE_Q8_0;
    assert_int_equal(bn_model_state_new(m, &p, &st), BN_ERR_INVALID);
    /* sizes */
    st = state_ok(m, 0, 0, BN_TYPE_F16);
    assert_int_equal(bn_model_state_n_ctx(st), c.n_ctx);
    const size_t kv = 2u * 1 * 2 * 64 * (size_t)c.n_ctx * 2;
    assert_int_equal(bn_model_state_kv_bytes(st), kv);
    assert_true(bn_model_weight_bytes(m) > 0);
    assert_true(bn_model_bytes_per_token(m) > 0);
    bn_model_state_free(st);
    bn_model_free(m);
    free(lg);
    tm_free(&tm);
}

/* The loader's Q8_0 quantizer writes the same bytes as bn_quantize_row_q8_0, ties
 * (x * id exactly k + 0.5) included. */
/* Logits of n tokens (all of them) from a fresh state of m. */
static float *eval_all(bn_model *m, const int32_t *tok, int n)
{
    float *y = malloc((size_t)n * (size_t)bn_model_n_vocab(m) * 4);
    assert_non_null(y);
    bn_model_state *st = state_ok(m, 0, 0, BN_TYPE_F16);
    assert_int_equal(bn_model_eval(st, tok, n, 0, n, y), BN_OK);
    bn_model_state_free(st);
    return y;
}

/* The LM head requantized at load to Q6H and Q4H blocks: reported as such, fewer bytes per
 * token than Q8_0, logits near the file's f16 head (q6 closer than q4), the reference
 * kernels within float rounding of the SIMD ones, a batch the same as token by token; an
 * n_embd that is not a multiple of 256 is refused by name. */
static void test_head_blocks(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 5);
    char path[128];
    path_for(path, sizeof path, "a_headq.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    enum { N = 9 };
    int32_t tok[N];
    rand_tokens(tok, N, tm.c.V);
    const size_t nv = (size_t)N * (size_t)tm.c.V;
    bn_model *mf = load_ok(path, NULL, 0), *m8 = load_ok(path, NULL, BN_TYPE_Q8_0);
    float *yf = eval_all(mf, tok, N);
    size_t prev = bn_model_bytes_per_token(m8);
    const int types[] = {BN_MODEL_HEAD_Q6H, BN_MODEL_HEAD_Q4H};
    const double bound[] = {0.02, 0.08};
    double err[2];
    for (int i = 0; i < 2; i++) {
        bn_model *m = load_ok(path, NULL, types[i]),
                 *mr = load_ok(path, bn_kernels_ref(), types[i]);
        assert_int_equal(bn_model_hparams_get(m)->head_type, types[i]);
        assert_true(bn_model_bytes_per_token(m) < prev);
        prev = bn_model_bytes_per_token(m);
        float *y = eval_all(m, tok, N), *yr = eval_all(mr, tok, N);
        err[i] = rel_diff(y, yf, nv);
        print_message("    head %s: max |diff| / max |logit| vs f16 head %.4f, ref vs simd %.2e\n",
                      i ? "q4h" : "q6h", err[i], rel_diff(y, yr, nv));
        assert_true(err[i] < bound[i]);
        assert_true(rel_diff(y, yr, nv) < 1e-4);
        check_one_by_one(m, BN_TYPE_F16, tok, N, y);
        free(y);
        free(yr);
        bn_model_free(m);
        bn_model_free(mr);
    }
    assert_true(err[0] < err[1]);
    free(yf);
    bn_model_free(mf);
    bn_model_free(m8);
    tm_free(&tm);
    /* n_embd 384 */
    tm_build(&tm, &CFG_B, 5);
    path_for(path, sizeof path, "b_headq.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model_params p;
    bn_model_params_init(&p);
    p.head_type = BN_MODEL_HEAD_Q4H;
    bn_model *m = NULL;
    assert_int_equal(bn_model_load(g_ctx, path, &p, &m), BN_ERR_INVALID);
    assert_null(m);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "not a multiple of 256"));
    tm_free(&tm);
}

static void test_q8_0_requant(void **state)
{
    (void)state;
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof(float));
    bn_block_q8_0 a[N / 32], b[N / 32];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) x[i] = frand() * (rep % 5 + 1) * 3.0f;
        for (int blk = 0; blk < N / 32; blk += 3) { /* amax 127 makes id 1: exact ties */
            x[blk * 32] = 127.0f;
            for (int j = 1; j < 8; j++) x[blk * 32 + j] = (float)(int)(frand() * 120) + 0.5f;
        }
        if (rep == 0) memset(x, 0, 32 * sizeof(float)); /* an all-zero block */
        if (rep == 1) x[40] = 1e-30f, x[41] = -3e-39f;  /* tiny and subnormal */
        bn_quantize_row_q8_0(x, a, N);
        bn__model_q8_0_row(x, b, N);
        assert_memory_equal(a, b, sizeof a);
        memset(b, 0, sizeof b);
        bn__model_q8_0_row_fn(NULL)(x, b, N); /* the SIMD twin where the CPU has it */
        assert_memory_equal(a, b, sizeof a);
    }
    free(x);
}

/* The forward pass's activation quantizer gives bn_quantize_act_row's q and scale,
 * ties to even and non-finite inputs included. */
static void test_act_quant(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N];
    int8_t qa[N], qb[N];
    for (int rep = 0; rep < 50; rep++) {
        const float scale = (float)(rep % 7) * 0.7f + 1e-6f;
        for (int i = 0; i < N; i++) x[i] = gauss() * scale;
        if (rep % 5 == 1) { /* max 127: s = 1, so k + 0.5 are exact ties */
            x[0] = 127.0f;
            for (int i = 1; i < 100; i++) x[i] = (float)((int)(frand() * 126)) + 0.5f;
        }
        if (rep == 2) x[3] = NAN;
        if (rep == 3) x[5] = -INFINITY;
        if (rep == 4) memset(x, 0, sizeof x);
        const float sa = bn_quantize_act_row(x, N, qa);
        int32_t sum;
        const float sb = bn__model_quantize_act(x, N, qb, &sum);
        assert_memory_equal(&sa, &sb, sizeof sa);
        assert_memory_equal(qa, qb, sizeof qa);
        int32_t want = 0;
        for (int i = 0; i < N; i++) want += qa[i];
        assert_int_equal(sum, want);
    }
}

/* The AVX2 twins of the forward pass's small steps against the plain definitions, on
 * sizes with every tail: the quantizer and the f16 stores bit for bit, relu^2 * up and
 * RMSNorm within float rounding (they sum or multiply in another order). */
static void test_avx2_helpers(void **state)
{
    (void)state;
#if !defined(__x86_64__) && !defined(__i386__) /* model_avx2.c is built on x86 only */
    print_message("SKIP: not an x86 CPU\n");
    skip();
#else
    const bn_cpu_info *cpu = bn_cpu_info_get();
    if (!(cpu->avx2 && cpu->fma && cpu->f16c)) {
        print_message("SKIP: this CPU has no AVX2+FMA+F16C\n");
        skip();
    }
    static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 1000};
    enum { MAXN = 1000 };
    float x[MAXN], w[MAXN], g[MAXN], u[MAXN], ya[MAXN], yb[MAXN];
    int8_t qa[MAXN], qb[MAXN];
    uint16_t ha[MAXN], hb[MAXN];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        for (int rep = 0; rep < 6; rep++) {
            for (int64_t i = 0; i < n; i++) {
                x[i] = gauss() * (float)(rep + 1);
                w[i] = 1.0f + 0.1f * frand();
                g[i] = gauss();
                u[i] = gauss();
            }
            if (rep == 1) { /* max 127: k + 0.5 are exact ties */
                x[0] = 127.0f;
                for (int64_t i = 1; i < n; i++) x[i] = (float)((int)(frand() * 126)) + 0.5f;
            }
            if (rep == 2) memset(x, 0, sizeof x);
            if (rep == 3) x[n - 1] = 1e-30f; /* subnormal-range products */
            /* quantizer: same bytes, scale and sum as the reference */
            const float sa = bn_quantize_act_row(x, n, qa);
            int32_t sum = 0;
            const float sb = bn__model_quantize_act_avx2(x, n, qb, &sum);
            assert_memory_equal(&sa, &sb, sizeof sa);
            assert_memory_equal(qa, qb, (size_t)n);
            int32_t want = 0;
            for (int64_t i = 0; i < n; i++) want += qa[i];
            assert_int_equal(sum, want);
            /* f16 stores: round to nearest even, as bn_f32_to_f16 */
            bn__model_f32_to_f16_avx2(x, ha, n);
            for (int64_t i = 0; i < n; i++) hb[i] = bn_f32_to_f16(x[i]);
            assert_memory_equal(ha, hb, (size_t)n * sizeof ha[0]);
            /* relu(g)^2 * u */
            memcpy(ya, g, (size_t)n * sizeof g[0]);
            bn__model_relu2_mul_avx2(ya, u, n);
            for (int64_t i = 0; i < n; i++) {
                const float r = g[i] > 0 ? g[i] * g[i] * u[i] : 0.0f;
                assert_true(fabsf(ya[i] - r) <= 1e-6f * fabsf(r) + 1e-30f);
            }
            /* SiLU(g) * u, with e^x a polynomial: within float rounding of expf's; the
             * last repetition puts g at the ends of exp's range and past them */
            if (rep == 3) {
                static const float ends[] = {-200.0f, -88.0f, -87.0f, -20.0f, -1e-30f, 0.0f,
                                             1e-30f,  20.0f,  87.0f,  88.0f,  89.0f,   200.0f};
                for (size_t e = 0; e < sizeof ends / sizeof ends[0] && (int64_t)e < n; e++)
                    g[e] = ends[e];
            }
            memcpy(ya, g, (size_t)n * sizeof g[0]);
            bn__model_silu_mul_avx2(ya, u, n);
            for (int64_t i = 0; i < n; i++) {
                const float r = g[i] / (1.0f + expf(-g[i])) * u[i];
                assert_true(fabsf(ya[i] - r) <= 1e-6f * fabsf(r) + 1e-30f);
            }
            /* RMSNorm: x / sqrt(mean(x^2) + eps) * w */
            bn__model_rmsnorm_avx2(x, w, n, 1e-5f, ya);
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
            const double inv = 1.0 / sqrt(ss / (double)n + 1e-5);
            for (int64_t i = 0; i < n; i++) {
                yb[i] = (float)(x[i] * inv * w[i]);
                assert_true(fabsf(ya[i] - yb[i]) <= 1e-5f * fabsf(yb[i]) + 1e-6f);
            }
        }
    }
#endif
}

/* ---- setup ------------------------------------------------------------------------------- */

/* The forward's profile: the logits of a profiled state equal those of one without, to the
 * bit; every class of work the forward does gets time, the classes add up to the wall time;
 * off and after a reset it holds zeros; the bytes per class add up to the bytes per token. */
static void test_profile(void **state)
{
    (void)state;
    tmodel tm;
    tm_build(&tm, &CFG_A, 5);
    char path[128];
    path_for(path, sizeof path, "a_prof.gguf");
    write_model(&tm, BN_TYPE_I2_S, NULL, path);
    bn_model *m = load_ok(path, NULL, BN_TYPE_Q8_0);
    const int n = 23, n_gen = 5, V = tm.c.V;
    int32_t tok[28];
    rand_tokens(tok, n + n_gen, V);
    float *a = malloc((size_t)V * 4), *b = malloc((size_t)V * 4);
    bn_model_state *off = state_ok(m, 0, 0, BN_TYPE_F16), *on = state_ok(m, 0, 0, BN_TYPE_F16);
    bn_model_profile pr;
    bn_model_state_profile_get(on, &pr);
    assert_true(pr.wall == 0.0 && pr.evals == 0);
    assert_int_equal(bn_model_state_profile(on, 1), BN_OK);
    for (int i = 0; i <= n_gen; i++) { /* the prompt, then n_gen tokens one at a time */
        const int64_t pos = i ? n + i - 1 : 0, cnt = i ? 1 : n;
        assert_int_equal(bn_model_eval(off, tok + pos, cnt, pos, 1, a), BN_OK);
        assert_int_equal(bn_model_eval(on, tok + pos, cnt, pos, 1, b), BN_OK);
        assert_memory_equal(a, b, (size_t)V * 4);
    }
    bn_model_state_profile_get(on, &pr);
    assert_int_equal(pr.evals, n_gen + 1);
    assert_int_equal(pr.tokens, n + n_gen);
    double sum = 0.0;
    for (int c = 0; c < BN_PROF_N; c++) {
        assert_non_null(bn_prof_class_name(c));
        assert_true(pr.seconds[c] >= 0.0);
        sum += pr.seconds[c];
    }
    assert_null(bn_prof_class_name(BN_PROF_N));
    static const int done[] = {BN_PROF_QKV,  BN_PROF_O,    BN_PROF_GATE_UP,  BN_PROF_DOWN,
                               BN_PROF_ATTN, BN_PROF_NORM, BN_PROF_KV_STORE, BN_PROF_HEAD};
    for (size_t i = 0; i < sizeof done / sizeof done[0]; i++) assert_true(pr.seconds[done[i]] > 0);
    assert_true(pr.wall > 0 && fabs(sum - pr.wall) <= 1e-6 * pr.wall + 1e-9);
    bn_model_state_profile_reset(on);
    bn_model_state_profile_get(on, &pr);
    assert_true(pr.wall == 0.0 && pr.seconds[BN_PROF_QKV] == 0.0 && pr.tokens == 0);
    assert_int_equal(bn_model_state_profile(on, 0), BN_OK);
    assert_int_equal(bn_model_eval(on, tok, 3, 0, 1, b), BN_OK);
    bn_model_state_profile_get(on, &pr);
    assert_true(pr.wall == 0.0 && pr.evals == 0);
    size_t bytes[BN_PROF_N], tot = 0;
    bn_model_class_bytes(m, bytes);
    for (int c = 0; c < BN_PROF_N; c++) tot += c == BN_PROF_EMBED ? 0 : bytes[c];
    assert_true(bytes[BN_PROF_QKV] > 0 && bytes[BN_PROF_ATTN] == 0 && bytes[BN_PROF_EMBED] > 0);
    assert_int_equal(tot, bn_model_bytes_per_token(m));
    bn_model_state_free(off);
    assert_int_equal(bn_model_state_profile(on, 1), BN_OK);
    bn_model_state_free(on); /* with the profile on: freed with it (ASan) */
    bn_model_free(m);
    free(a);
    free(b);
    tm_free(&tm);
}

static int group_setup(void **state)
{
    (void)state;
    bn_ctx_params p = {.n_threads = 2};
    if (bn_ctx_new(&g_ctx, &p) != BN_OK) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/bn_test_model.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) return -1;
    bn_ctx_free(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_reference_logits),
            cmocka_unit_test(test_reference_logits_bitnet),
            cmocka_unit_test(test_no_sub_norms),
            cmocka_unit_test(test_batched_equals_sequential),
            cmocka_unit_test(test_eval_batch),
        cmocka_unit_test(test_eval_split),
            cmocka_unit_test(test_head_avx512_multi),
            cmocka_unit_test(test_head_lanes),
            cmocka_unit_test(test_formats_agree),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_alloc_failures),
            cmocka_unit_test(test_eval_errors),
            cmocka_unit_test(test_q8_0_requant),
            cmocka_unit_test(test_head_blocks),
            cmocka_unit_test(test_act_quant),
            cmocka_unit_test(test_avx2_helpers),
            cmocka_unit_test(test_profile),
            cmocka_unit_test(test_mixed_layers),
            cmocka_unit_test(test_mixed_malformed),
    };
    const char *only = getenv("BN_TEST_FILTER"); /* e.g. BN_TEST_FILTER='test_malformed' */
    if (only && *only) cmocka_set_test_filter(only);
    return cmocka_run_group_tests_name("model", tests, group_setup, group_teardown);
}
