/*
 * train_model.c - the trainer: shapes, the parameter layout, allocation, initialisation,
 * the model's forward and backward passes, and the optimisation step (AdamW, warm-up +
 * cosine schedule, global-norm clipping). Reads top to bottom: layer_forward and
 * layer_backward are the heart; the layers themselves are in train_layers.c.
 */
#include <math.h>
#include <string.h>

#include "bitnet/quant.h"
#include "train_internal.h"

/* ---- shapes ------------------------------------------------------------------------------ */

void bn_train_hparams_default(bn_train_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    hp->batch = 8;
    hp->seq_len = 256;
    hp->steps = 1000;
    hp->warmup = 50;
    hp->lr = 2e-3f;
    hp->min_lr = 2e-4f;
    hp->weight_decay = 0.1f;
    hp->beta1 = 0.9f;
    hp->beta2 = 0.95f;
    hp->eps = 1e-8f;
    hp->grad_clip = 1.0f;
    hp->val_frac = 0.05f;
    hp->init_std = 0.02f;
    hp->seed = 1;
    hp->fp32 = 0;
}

bn_status bn_train_config_preset(const char *name, int32_t vocab_size, bn_train_model_config *out)
{
    static const struct {
        const char *name;
        bn_train_model_config c;
    } presets[] = {
            {"tiny", {0, 256, 4, 4, 2, 768, 256, 10000.0f, 1e-5f}},
            {"small", {0, 512, 6, 8, 4, 1536, 512, 10000.0f, 1e-5f}},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *out = presets[i].c;
            out->vocab_size = vocab_size;
            return BN_OK;
        }
    }
    return BN_ERR_NOT_FOUND;
}

bn_status bn_train_config_check(bn_ctx *ctx, const bn_train_model_config *c)
{
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) return bn_ctx_set_error(ctx, BN_ERR_INVALID, __VA_ARGS__);                    \
    } while (0)
    CHECK(c->vocab_size >= 2 && c->vocab_size <= BN_TRAIN_MAX_VOCAB,
          "vocab_size %d out of range (2..%d)", c->vocab_size, BN_TRAIN_MAX_VOCAB);
    CHECK(c->dim >= 2 && c->dim <= BN_TRAIN_MAX_DIM, "dim %d out of range (2..%d)", c->dim,
          BN_TRAIN_MAX_DIM);
    CHECK(c->n_layer >= 1 && c->n_layer <= BN_TRAIN_MAX_LAYER, "n_layer %d out of range (1..%d)",
          c->n_layer, BN_TRAIN_MAX_LAYER);
    CHECK(c->n_head >= 1 && c->dim % c->n_head == 0, "n_head %d does not divide dim %d", c->n_head,
          c->dim);
    CHECK((c->dim / c->n_head) % 2 == 0, "head dim %d must be even (rope)", c->dim / c->n_head);
    CHECK(c->n_kv_head >= 1 && c->n_head % c->n_kv_head == 0,
          "n_kv_head %d does not divide n_head %d", c->n_kv_head, c->n_head);
    CHECK(c->ffn_dim >= 1 && c->ffn_dim <= 8 * BN_TRAIN_MAX_DIM, "ffn_dim %d out of range",
          c->ffn_dim);
    CHECK(c->ctx_len >= 1 && c->ctx_len <= BN_TRAIN_MAX_CTX, "ctx_len %d out of range (1..%d)",
          c->ctx_len, BN_TRAIN_MAX_CTX);
    CHECK(isfinite(c->rope_theta) && c->rope_theta > 1.0f, "rope_theta must be > 1");
    CHECK(isfinite(c->norm_eps) && c->norm_eps > 0.0f && c->norm_eps < 1.0f,
          "norm_eps must be in (0, 1)");
#undef CHECK
    return BN_OK;
}

int bn__param_layout_init(bn__param_layout *lay, const bn_train_model_config *c)
{
    memset(lay, 0, sizeof *lay);
    const int64_t V = c->vocab_size, C = c->dim, F = c->ffn_dim;
    const int64_t KVD = (int64_t)c->n_kv_head * (c->dim / c->n_head);
    static const int per_layer[BN__P_COUNT] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    const int64_t rows[BN__P_COUNT] = {V, 1, C, KVD, KVD, C, 1, 1, F, F, C, 1, 1};
    const int64_t cols[BN__P_COUNT] = {C, C, C, C, C, C, C, C, C, C, F, F, C};
    size_t off = 0;
    for (int p = 0; p < BN__P_COUNT; p++) {
        size_t one, all;
        if (bn_mul_size((size_t)rows[p], (size_t)cols[p], &one)) return -1;
        if (bn_mul_size(one, per_layer[p] ? (size_t)c->n_layer : 1, &all)) return -1;
        lay->off[p] = off;
        lay->size[p] = one;
        lay->rows[p] = rows[p];
        lay->cols[p] = cols[p];
        lay->per_layer[p] = per_layer[p];
        lay->ternary[p] = p == BN__P_WQ || p == BN__P_WK || p == BN__P_WV || p == BN__P_WO ||
                          p == BN__P_WG || p == BN__P_WU || p == BN__P_WD;
        lay->decay[p] = lay->ternary[p] || p == BN__P_WTE;
        if (bn_add_size(off, all, &off)) return -1;
    }
    lay->total = off;
    return 0;
}

float *bn__param(const bn__param_layout *lay, float *base, int p, int l)
{
    return base + lay->off[p] + (lay->per_layer[p] ? (size_t)l * lay->size[p] : 0);
}

size_t bn_train_n_params(const bn_train_model_config *c)
{
    bn__param_layout lay;
    if (bn_train_config_check(NULL, c) != BN_OK || bn__param_layout_init(&lay, c)) return 0;
    return lay.total;
}

/* ---- allocation -------------------------------------------------------------------------- */

static bn_status check_hparams(bn_ctx *ctx, const bn_train_model_config *c,
                               const bn_train_hparams *hp)
{
    if (hp->batch < 1 || hp->batch > 65536)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "batch %d out of range", hp->batch);
    if (hp->seq_len < 1 || hp->seq_len > c->ctx_len)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "seq_len %d out of range (1..ctx_len %d)",
                                hp->seq_len, c->ctx_len);
    if ((int64_t)hp->batch * hp->seq_len > (1 << 22))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "batch * seq_len too large");
    if (hp->steps < 1 || hp->warmup < 0)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "steps must be >= 1 and warmup >= 0");
    if (!(hp->lr > 0.0f) || !(hp->min_lr >= 0.0f) || !isfinite(hp->lr))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "learning rates must be positive");
    if (!(hp->beta1 >= 0.0f && hp->beta1 < 1.0f) || !(hp->beta2 >= 0.0f && hp->beta2 < 1.0f) ||
        !(hp->eps > 0.0f) || !(hp->weight_decay >= 0.0f) || !(hp->grad_clip >= 0.0f) ||
        !(hp->init_std > 0.0f))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "bad optimiser setting");
    if (!(hp->val_frac >= 0.0f && hp->val_frac < 1.0f))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "val_frac must be in [0, 1)");
    return BN_OK;
}

/* Carves n floats from *p. */
static float *carve(float **p, size_t n)
{
    float *r = *p;
    *p += n;
    return r;
}

static bn_status alloc_acts(bn_trainer *tr)
{
    const bn_train_model_config *c = &tr->cfg;
    const size_t BT = (size_t)tr->hp.batch * tr->hp.seq_len, C = (size_t)c->dim;
    const size_t F = (size_t)c->ffn_dim, V = (size_t)c->vocab_size, T = (size_t)tr->hp.seq_len;
    const size_t KVD = (size_t)c->n_kv_head * (C / (size_t)c->n_head);
    const size_t att = (size_t)tr->hp.batch * (size_t)c->n_head * T * T;
    /* per layer: 7 (BT,C), 2 (BT,KVD), 3 (BT,F), att, 4 (BT) */
    const size_t per_layer = BT * (7 * C + 2 * KVD + 3 * F + 4) + att;
    /* global: enc, lnf, rstdf, logits, losses; scratch: 5 (BT,C), 2 (BT,KVD), 4 (BT,F) */
    const size_t global = BT * (2 * C + 2 + V) + BT * (5 * C + 2 * KVD + 4 * F);
    size_t n;
    if (bn_mul_size(per_layer, (size_t)c->n_layer, &n) || bn_add_size(n, global, &n) ||
        bn_mul_size(n, sizeof(float), &n))
        return BN_ERR_OVERFLOW;
    tr->act_mem = bn_aligned_alloc(64, n);
    tr->layers = bn_calloc((size_t)c->n_layer, sizeof *tr->layers);
    if (!tr->act_mem || !tr->layers) return BN_ERR_NOMEM;
    float *p = tr->act_mem;
    for (int l = 0; l < c->n_layer; l++) {
        bn__layer_acts *a = &tr->layers[l];
        a->res2 = carve(&p, BT * C);
        a->ln1 = carve(&p, BT * C);
        a->q = carve(&p, BT * C);
        a->k = carve(&p, BT * KVD);
        a->v = carve(&p, BT * KVD);
        a->att = carve(&p, att);
        a->atty = carve(&p, BT * C);
        a->sub1 = carve(&p, BT * C);
        a->ln2 = carve(&p, BT * C);
        a->gate = carve(&p, BT * F);
        a->up = carve(&p, BT * F);
        a->sub2 = carve(&p, BT * F);
        a->out = carve(&p, BT * C);
        a->rstd1 = carve(&p, BT);
        a->rstd_s1 = carve(&p, BT);
        a->rstd2 = carve(&p, BT);
        a->rstd_s2 = carve(&p, BT);
    }
    tr->enc = carve(&p, BT * C);
    tr->lnf = carve(&p, BT * C);
    tr->rstdf = carve(&p, BT);
    tr->logits = carve(&p, BT * V);
    tr->losses = carve(&p, BT);
    tr->dres = carve(&p, BT * C);
    tr->dln = carve(&p, BT * C);
    tr->dsub1 = carve(&p, BT * C);
    tr->datty = carve(&p, BT * C);
    tr->dq = carve(&p, BT * C);
    tr->dk = carve(&p, BT * KVD);
    tr->dv = carve(&p, BT * KVD);
    tr->fa = carve(&p, BT * F);
    tr->fb = carve(&p, BT * F);
    tr->fc = carve(&p, BT * F);
    tr->fd = carve(&p, BT * F);
    memset(tr->act_mem, 0, n);
    return BN_OK;
}

bn_status bn__trainer_alloc(bn_ctx *ctx, const bn_train_model_config *cfg,
                            const bn_train_hparams *hp, bn_trainer **out)
{
    *out = NULL;
    bn_status rc = bn_train_config_check(ctx, cfg);
    if (rc == BN_OK) rc = check_hparams(ctx, cfg, hp);
    if (rc != BN_OK) return rc;
    bn_trainer *tr = bn_calloc(1, sizeof *tr);
    if (!tr) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (trainer)");
    tr->ctx = ctx;
    tr->pool = bn_ctx_pool(ctx);
    tr->cfg = *cfg;
    tr->hp = *hp;
    tr->perm_epoch = -1;
    if (bn__param_layout_init(&tr->lay, cfg)) {
        rc = bn_ctx_set_error(ctx, BN_ERR_OVERFLOW, "model too large");
        goto fail;
    }
    const size_t n = tr->lay.total;
    size_t bytes;
    if (bn_mul_size(n, 5 * sizeof(float), &bytes)) {
        rc = bn_ctx_set_error(ctx, BN_ERR_OVERFLOW, "model too large");
        goto fail;
    }
    tr->mem = bn_aligned_alloc(64, bytes);
    const int HD = cfg->dim / cfg->n_head;
    const size_t rope = (size_t)hp->seq_len * (size_t)(HD / 2);
    tr->rope_cos = bn_malloc(rope * sizeof(float));
    tr->rope_sin = bn_malloc(rope * sizeof(float));
    tr->inputs = bn_malloc((size_t)hp->batch * (size_t)hp->seq_len * sizeof(int32_t));
    tr->targets = bn_malloc((size_t)hp->batch * (size_t)hp->seq_len * sizeof(int32_t));
    if (!tr->mem || !tr->rope_cos || !tr->rope_sin || !tr->inputs || !tr->targets) {
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (%zu parameters)", n);
        goto fail;
    }
    memset(tr->mem, 0, bytes);
    tr->params = tr->mem;
    tr->grads = tr->mem + n;
    tr->m = tr->mem + 2 * n;
    tr->v = tr->mem + 3 * n;
    tr->wq = tr->mem + 4 * n;
    bn__rope_table(tr->rope_cos, tr->rope_sin, hp->seq_len, HD, cfg->rope_theta);
    rc = alloc_acts(tr);
    if (rc == BN_OK) rc = bn__gemm_ws_init(&tr->ws, bn_pool_size(tr->pool));
    if (rc == BN_OK) {
        const size_t n_scr = (size_t)tr->ws.n_threads * bn__attention_scratch(hp->seq_len);
        tr->att_scratch = bn_malloc(n_scr * sizeof(float));
        if (!tr->att_scratch) rc = BN_ERR_NOMEM;
    }
    if (rc != BN_OK) {
        rc = bn_ctx_set_error(ctx, rc, "out of memory (activations for batch %d x %d)", hp->batch,
                              hp->seq_len);
        goto fail;
    }
    *out = tr;
    return BN_OK;
fail:
    bn_trainer_free(tr);
    return rc;
}

void bn_trainer_free(bn_trainer *tr)
{
    if (!tr) return;
    bn__gemm_ws_release(&tr->ws);
    bn_free(tr->att_scratch);
    bn_free(tr->mem);
    bn_free(tr->act_mem);
    bn_free(tr->layers);
    bn_free(tr->rope_cos);
    bn_free(tr->rope_sin);
    bn_free(tr->inputs);
    bn_free(tr->targets);
    bn_free(tr->tokens);
    bn_free(tr->perm);
    bn_free(tr->tok);
    bn_free(tr);
}

/* ---- initialisation ---------------------------------------------------------------------- */

uint64_t bn__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A standard normal number (Box-Muller on two 53-bit uniforms). */
static double randn(uint64_t *s)
{
    const double u1 = ((double)(bn__splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = (double)(bn__splitmix64(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void bn__trainer_init_weights(bn_trainer *tr)
{
    const bn__param_layout *lay = &tr->lay;
    uint64_t s = tr->hp.seed;
    /* GPT-2's scheme: N(0, std) matrices, the projections into the residual stream
     * (o, down) scaled by 1/sqrt(2L), norm weights 1. */
    const double resid = 1.0 / sqrt(2.0 * tr->cfg.n_layer);
    for (int p = 0; p < BN__P_COUNT; p++) {
        float *w = tr->params + lay->off[p];
        const size_t n = lay->size[p] * (lay->per_layer[p] ? (size_t)tr->cfg.n_layer : 1);
        if (!lay->decay[p]) {
            for (size_t i = 0; i < n; i++) w[i] = 1.0f;
            continue;
        }
        const double std = tr->hp.init_std * (p == BN__P_WO || p == BN__P_WD ? resid : 1.0);
        for (size_t i = 0; i < n; i++) w[i] = (float)(std * randn(&s));
    }
    tr->rng = s;
}

bn_status bn_trainer_new(bn_ctx *ctx, const bn_train_model_config *cfg, const bn_train_hparams *hp,
                         bn_trainer **out)
{
    bn_status rc = bn__trainer_alloc(ctx, cfg, hp, out);
    if (rc == BN_OK) bn__trainer_init_weights(*out);
    return rc;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* The weights the forward pass multiplies with: fake-quantized copies of the BitLinear
 * weights (absmean, one scale per layer's tensor), or the master weights with fp32. */
static const float *weight(const bn_trainer *tr, int p, int l)
{
    float *base = tr->lay.ternary[p] && !tr->hp.fp32 ? tr->wq : tr->params;
    return bn__param(&tr->lay, base, p, l);
}

static void quantize_weights(bn_trainer *tr)
{
    if (tr->hp.fp32) return;
    for (int p = 0; p < BN__P_COUNT; p++) {
        if (!tr->lay.ternary[p]) continue;
        for (int l = 0; l < tr->cfg.n_layer; l++) {
            float *dst = bn__param(&tr->lay, tr->wq, p, l);
            memcpy(dst, bn__param(&tr->lay, tr->params, p, l), tr->lay.size[p] * sizeof(float));
            bn_fake_quantize_absmean(dst, (int64_t)tr->lay.size[p]);
        }
    }
}

/* A BitLinear input: per-token int8 fake quantization (nothing with fp32). */
static void quantize_input(bn_trainer *tr, float *x, int64_t BT, int K)
{
    if (!tr->hp.fp32) bn__actquant_forward(tr->pool, x, BT, K);
}

static void layer_forward(bn_trainer *tr, int l, const float *x, int B, int T)
{
    const bn_train_model_config *c = &tr->cfg;
    const int C = c->dim, F = c->ffn_dim, NH = c->n_head, NKV = c->n_kv_head, HD = C / NH;
    const int KVD = NKV * HD;
    const int64_t BT = (int64_t)B * T;
    const float eps = c->norm_eps;
    bn__layer_acts *a = &tr->layers[l];
    bn_threadpool *pool = tr->pool;
    float *P = tr->params;
    // x is (BT,C). Attention: ln1 = quant(rmsnorm(x)); q, k, v = ln1 @ W^T
    bn__rmsnorm_forward(pool, a->ln1, a->rstd1, x, bn__param(&tr->lay, P, BN__P_ATTN_NORM, l), BT,
                        C, eps);
    quantize_input(tr, a->ln1, BT, C);
    bn__matmul_forward(pool, &tr->ws, a->q, a->ln1, weight(tr, BN__P_WQ, l), BT, C, C);
    bn__matmul_forward(pool, &tr->ws, a->k, a->ln1, weight(tr, BN__P_WK, l), BT, C, KVD);
    bn__matmul_forward(pool, &tr->ws, a->v, a->ln1, weight(tr, BN__P_WV, l), BT, C, KVD);
    bn__rope_forward(a->q, tr->rope_cos, tr->rope_sin, B, T, NH, HD);
    bn__rope_forward(a->k, tr->rope_cos, tr->rope_sin, B, T, NKV, HD);
    // atty (BT,C) = softmax(q k^T / sqrt(HD)) v, causal, query head h reads kv head h/(NH/NKV)
    bn__attention_forward(pool, &tr->ws, a->atty, a->att, a->q, a->k, a->v, B, T, NH, NKV, HD);
    // sub1 = quant(rmsnorm(atty)); res2 = x + sub1 @ Wo^T
    bn__rmsnorm_forward(pool, a->sub1, a->rstd_s1, a->atty,
                        bn__param(&tr->lay, P, BN__P_ATTN_SUB, l), BT, C, eps);
    quantize_input(tr, a->sub1, BT, C);
    bn__matmul_forward(pool, &tr->ws, a->res2, a->sub1, weight(tr, BN__P_WO, l), BT, C, C);
    for (int64_t i = 0; i < BT * C; i++) a->res2[i] += x[i];
    // FFN: ln2 = quant(rmsnorm(res2)); gate, up (BT,F) = ln2 @ W^T
    bn__rmsnorm_forward(pool, a->ln2, a->rstd2, a->res2, bn__param(&tr->lay, P, BN__P_FFN_NORM, l),
                        BT, C, eps);
    quantize_input(tr, a->ln2, BT, C);
    bn__matmul_forward(pool, &tr->ws, a->gate, a->ln2, weight(tr, BN__P_WG, l), BT, C, F);
    bn__matmul_forward(pool, &tr->ws, a->up, a->ln2, weight(tr, BN__P_WU, l), BT, C, F);
    // h = relu(gate)^2 * up (scratch fa); sub2 = quant(rmsnorm(h)); out = res2 + sub2 @ Wd^T
    bn__relu2glu_forward(tr->fa, a->gate, a->up, BT * F);
    bn__rmsnorm_forward(pool, a->sub2, a->rstd_s2, tr->fa, bn__param(&tr->lay, P, BN__P_FFN_SUB, l),
                        BT, F, eps);
    quantize_input(tr, a->sub2, BT, F);
    bn__matmul_forward(pool, &tr->ws, a->out, a->sub2, weight(tr, BN__P_WD, l), BT, F, C);
    for (int64_t i = 0; i < BT * C; i++) a->out[i] += a->res2[i];
}

bn_status bn_trainer_forward(bn_trainer *tr, const int32_t *tokens, const int32_t *targets, int b,
                             int t, float *loss, float *logits)
{
    const bn_train_model_config *c = &tr->cfg;
    if (b < 1 || b > tr->hp.batch || t < 1 || t > tr->hp.seq_len)
        return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID, "forward: %d x %d exceeds %d x %d", b, t,
                                tr->hp.batch, tr->hp.seq_len);
    const int64_t BT = (int64_t)b * t;
    for (int64_t i = 0; i < BT; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size ||
            (targets && (targets[i] < 0 || targets[i] >= c->vocab_size)))
            return bn_ctx_set_error(tr->ctx, BN_ERR_RANGE, "token id out of range at %lld",
                                    (long long)i);
    if (tokens != tr->inputs) memcpy(tr->inputs, tokens, (size_t)BT * sizeof(int32_t));
    if (targets && targets != tr->targets)
        memcpy(tr->targets, targets, (size_t)BT * sizeof(int32_t));
    quantize_weights(tr);
    // embedding: enc (BT,C); then the layers, each reading the previous one's output
    bn__encoder_forward(tr->enc, tr->inputs, tr->params + tr->lay.off[BN__P_WTE], BT, c->dim);
    const float *x = tr->enc;
    for (int l = 0; l < c->n_layer; l++) {
        layer_forward(tr, l, x, b, t);
        x = tr->layers[l].out;
    }
    // lnf = rmsnorm(x); logits (BT,V) = lnf @ wte^T (the tied LM head, not quantized)
    bn__rmsnorm_forward(tr->pool, tr->lnf, tr->rstdf, x, tr->params + tr->lay.off[BN__P_OUT_NORM],
                        BT, c->dim, c->norm_eps);
    bn__matmul_forward(tr->pool, &tr->ws, tr->logits, tr->lnf, tr->params + tr->lay.off[BN__P_WTE],
                       BT, c->dim, c->vocab_size);
    if (logits) memcpy(logits, tr->logits, (size_t)BT * (size_t)c->vocab_size * sizeof(float));
    tr->last_b = b;
    tr->last_t = t;
    tr->last_has_targets = targets != NULL;
    if (targets) {
        bn__xent_forward(tr->pool, tr->losses, tr->logits, tr->targets, BT, c->vocab_size);
        double s = 0.0;
        for (int64_t i = 0; i < BT; i++) s += tr->losses[i];
        if (loss) *loss = (float)(s / (double)BT);
    }
    return BN_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

/* dres (BT,C) holds the gradient of the loss wrt layer l's output; on return, wrt its input. */
static void layer_backward(bn_trainer *tr, int l, const float *x, int B, int T)
{
    const bn_train_model_config *c = &tr->cfg;
    const int C = c->dim, F = c->ffn_dim, NH = c->n_head, NKV = c->n_kv_head, HD = C / NH;
    const int KVD = NKV * HD;
    const int64_t BT = (int64_t)B * T;
    const bn__layer_acts *a = &tr->layers[l];
    bn_threadpool *pool = tr->pool;
    bn__gemm_ws *ws = &tr->ws;
    float *P = tr->params, *G = tr->grads;
    const bn__param_layout *lay = &tr->lay;
    // FFN. out = res2 + sub2 @ Wd^T: dsub2 (fb, BT,F) = dres @ Wd, dWd += dres^T sub2
    bn__matmul_backward(pool, ws, tr->fb, bn__param(lay, G, BN__P_WD, l), tr->dres, a->sub2,
                        weight(tr, BN__P_WD, l), BT, F, C, 0);
    // sub2 = rmsnorm(h) (quantization: straight through); h recomputed into fa; dh into fc
    bn__relu2glu_forward(tr->fa, a->gate, a->up, BT * F);
    bn__rmsnorm_backward(pool, tr->fc, bn__param(lay, G, BN__P_FFN_SUB, l), tr->fb, tr->fa,
                         bn__param(lay, P, BN__P_FFN_SUB, l), a->rstd_s2, BT, F, 0);
    // h = relu(gate)^2 * up: dgate (fa), dup (fd)
    bn__relu2glu_backward(tr->fa, tr->fd, tr->fc, a->gate, a->up, BT * F);
    // gate, up = ln2 @ W^T: dln (BT,C) = dgate @ Wg + dup @ Wu
    bn__matmul_backward(pool, ws, tr->dln, bn__param(lay, G, BN__P_WG, l), tr->fa, a->ln2,
                        weight(tr, BN__P_WG, l), BT, C, F, 0);
    bn__matmul_backward(pool, ws, tr->dln, bn__param(lay, G, BN__P_WU, l), tr->fd, a->ln2,
                        weight(tr, BN__P_WU, l), BT, C, F, 1);
    // ln2 = rmsnorm(res2): dres += (residual path already in dres)
    bn__rmsnorm_backward(pool, tr->dres, bn__param(lay, G, BN__P_FFN_NORM, l), tr->dln, a->res2,
                         bn__param(lay, P, BN__P_FFN_NORM, l), a->rstd2, BT, C, 1);
    // Attention. res2 = x + sub1 @ Wo^T: dsub1 = dres @ Wo, dWo += dres^T sub1
    bn__matmul_backward(pool, ws, tr->dsub1, bn__param(lay, G, BN__P_WO, l), tr->dres, a->sub1,
                        weight(tr, BN__P_WO, l), BT, C, C, 0);
    bn__rmsnorm_backward(pool, tr->datty, bn__param(lay, G, BN__P_ATTN_SUB, l), tr->dsub1, a->atty,
                         bn__param(lay, P, BN__P_ATTN_SUB, l), a->rstd_s1, BT, C, 0);
    bn__attention_backward(pool, ws, tr->att_scratch, tr->dq, tr->dk, tr->dv, tr->datty, a->att,
                           a->q, a->k, a->v, B, T, NH, NKV, HD);
    bn__rope_backward(tr->dq, tr->rope_cos, tr->rope_sin, B, T, NH, HD);
    bn__rope_backward(tr->dk, tr->rope_cos, tr->rope_sin, B, T, NKV, HD);
    // q, k, v = ln1 @ W^T: dln = dq @ Wq + dk @ Wk + dv @ Wv
    bn__matmul_backward(pool, ws, tr->dln, bn__param(lay, G, BN__P_WQ, l), tr->dq, a->ln1,
                        weight(tr, BN__P_WQ, l), BT, C, C, 0);
    bn__matmul_backward(pool, ws, tr->dln, bn__param(lay, G, BN__P_WK, l), tr->dk, a->ln1,
                        weight(tr, BN__P_WK, l), BT, C, KVD, 1);
    bn__matmul_backward(pool, ws, tr->dln, bn__param(lay, G, BN__P_WV, l), tr->dv, a->ln1,
                        weight(tr, BN__P_WV, l), BT, C, KVD, 1);
    // ln1 = rmsnorm(x): dres (now wrt x) += the norm path
    bn__rmsnorm_backward(pool, tr->dres, bn__param(lay, G, BN__P_ATTN_NORM, l), tr->dln, x,
                         bn__param(lay, P, BN__P_ATTN_NORM, l), a->rstd1, BT, C, 1);
}

bn_status bn_trainer_backward(bn_trainer *tr)
{
    if (!tr->last_has_targets)
        return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID, "backward needs a forward with targets");
    const bn_train_model_config *c = &tr->cfg;
    const int B = tr->last_b, T = tr->last_t, C = c->dim, V = c->vocab_size;
    const int64_t BT = (int64_t)B * T;
    float *wte = tr->params + tr->lay.off[BN__P_WTE], *dwte = tr->grads + tr->lay.off[BN__P_WTE];
    memset(tr->grads, 0, tr->lay.total * sizeof(float));
    // loss = mean(losses): dlogits (in place of logits) = (softmax - onehot) / BT
    bn__xent_backward(tr->pool, tr->logits, tr->targets, BT, V, 1.0f / (float)BT);
    // logits = lnf @ wte^T: dlnf (dln) = dlogits @ wte, dwte += dlogits^T lnf
    bn__matmul_backward(tr->pool, &tr->ws, tr->dln, dwte, tr->logits, tr->lnf, wte, BT, C, V, 0);
    const float *xl = c->n_layer > 0 ? tr->layers[c->n_layer - 1].out : tr->enc;
    bn__rmsnorm_backward(tr->pool, tr->dres, tr->grads + tr->lay.off[BN__P_OUT_NORM], tr->dln, xl,
                         tr->params + tr->lay.off[BN__P_OUT_NORM], tr->rstdf, BT, C, 0);
    for (int l = c->n_layer - 1; l >= 0; l--)
        layer_backward(tr, l, l > 0 ? tr->layers[l - 1].out : tr->enc, B, T);
    bn__encoder_backward(dwte, tr->dres, tr->inputs, BT, C);
    tr->last_has_targets = 0; /* the logits are now gradients */
    return BN_OK;
}

/* ---- the optimisation step --------------------------------------------------------------- */

float bn_trainer_lr_at(const bn_trainer *tr, int64_t step)
{
    const bn_train_hparams *hp = &tr->hp;
    if (step < hp->warmup) return hp->lr * (float)(step + 1) / (float)hp->warmup;
    const int64_t span = hp->steps - hp->warmup;
    double prog = span > 0 ? (double)(step - hp->warmup) / (double)span : 1.0;
    if (prog > 1.0) prog = 1.0;
    const double cosv = 0.5 * (1.0 + cos(3.141592653589793 * prog));
    return (float)(hp->min_lr + (hp->lr - hp->min_lr) * cosv);
}

typedef struct adamw_args {
    bn_trainer *tr;
    float lr, gscale, bc1, bc2;
} adamw_args;

static void adamw_range(const adamw_args *a, size_t begin, size_t end, float wd)
{
    const bn_train_hparams *hp = &a->tr->hp;
    float *p = a->tr->params, *g = a->tr->grads, *m = a->tr->m, *v = a->tr->v;
    const float b1 = hp->beta1, b2 = hp->beta2;
    for (size_t i = begin; i < end; i++) {
        const float gi = g[i] * a->gscale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float mh = m[i] / a->bc1, vh = v[i] / a->bc2;
        p[i] -= a->lr * (mh / (sqrtf(vh) + hp->eps) + wd * p[i]);
    }
}

static void adamw_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const adamw_args *a = arg;
    const bn__param_layout *lay = &a->tr->lay;
    /* [begin, end) is a range of the flat parameter array; split it at tensor bounds. */
    for (int p = 0; p < BN__P_COUNT; p++) {
        const size_t t0 = lay->off[p];
        const size_t t1 = p + 1 < BN__P_COUNT ? lay->off[p + 1] : lay->total;
        const size_t b = (size_t)begin > t0 ? (size_t)begin : t0;
        const size_t e = (size_t)end < t1 ? (size_t)end : t1;
        if (b < e) adamw_range(a, b, e, lay->decay[p] ? a->tr->hp.weight_decay : 0.0f);
    }
}

static double grad_norm(const bn_trainer *tr)
{
    double s = 0.0;
    for (size_t i = 0; i < tr->lay.total; i++) s += (double)tr->grads[i] * tr->grads[i];
    return sqrt(s);
}

bn_status bn_trainer_step(bn_trainer *tr, bn_train_stats *st)
{
    if (!tr->tokens) return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID, "no training data set");
    const int B = tr->hp.batch, T = tr->hp.seq_len;
    bn__data_next_batch(tr);
    float loss = 0.0f;
    bn_status rc = bn_trainer_forward(tr, tr->inputs, tr->targets, B, T, &loss, NULL);
    if (rc == BN_OK) rc = bn_trainer_backward(tr);
    if (rc != BN_OK) return rc;
    if (!isfinite(loss))
        return bn_ctx_set_error(tr->ctx, BN_ERR_RANGE, "loss is not finite at step %lld",
                                (long long)tr->step);
    // global-norm clipping, then AdamW with bias correction at step t = step + 1
    const double norm = grad_norm(tr);
    adamw_args a = {tr, bn_trainer_lr_at(tr, tr->step), 1.0f, 0.0f, 0.0f};
    if (tr->hp.grad_clip > 0.0f && norm > tr->hp.grad_clip)
        a.gscale = (float)(tr->hp.grad_clip / norm);
    const double t = (double)(tr->step + 1);
    a.bc1 = (float)(1.0 - pow(tr->hp.beta1, t));
    a.bc2 = (float)(1.0 - pow(tr->hp.beta2, t));
    bn_pool_parallel_for(tr->pool, (int64_t)tr->lay.total, 4096, adamw_task, &a);
    tr->step++;
    if (st) {
        st->step = tr->step;
        st->epoch = tr->epoch;
        st->loss = loss;
        st->lr = a.lr;
        st->grad_norm = (float)norm;
        st->tokens = (int64_t)B * T;
    }
    return BN_OK;
}

bn_status bn_trainer_eval(bn_trainer *tr, int max_batches, double *loss, int64_t *n_tokens)
{
    const int B = tr->hp.batch, T = tr->hp.seq_len;
    const int64_t nw = bn__data_n_val_windows(tr);
    if (nw < 1)
        return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID,
                                "no validation data (need more than %d held-out tokens)", T);
    double sum = 0.0;
    int64_t scored = 0;
    for (int64_t w0 = 0, nb = 0; w0 < nw && (max_batches <= 0 || nb < max_batches); w0 += B, nb++) {
        const int b = (int)(nw - w0 < B ? nw - w0 : B);
        for (int i = 0; i < b; i++) {
            const int32_t *win = bn__data_val_window(tr, w0 + i);
            memcpy(tr->inputs + (int64_t)i * T, win, (size_t)T * sizeof(int32_t));
            memcpy(tr->targets + (int64_t)i * T, win + 1, (size_t)T * sizeof(int32_t));
        }
        float l;
        bn_status rc = bn_trainer_forward(tr, tr->inputs, tr->targets, b, T, &l, NULL);
        if (rc != BN_OK) return rc;
        sum += (double)l * b * T;
        scored += (int64_t)b * T;
    }
    tr->last_has_targets = 0;
    *loss = sum / (double)scored;
    if (n_tokens) *n_tokens = scored;
    return BN_OK;
}

/* ---- inspection -------------------------------------------------------------------------- */

const bn_train_model_config *bn_trainer_config(const bn_trainer *tr)
{
    return &tr->cfg;
}
const bn_train_hparams *bn_trainer_hparams(const bn_trainer *tr)
{
    return &tr->hp;
}
int64_t bn_trainer_step_count(const bn_trainer *tr)
{
    return tr->step;
}
size_t bn_trainer_param_count(const bn_trainer *tr)
{
    return tr->lay.total;
}
float *bn_trainer_params(bn_trainer *tr)
{
    return tr->params;
}
float *bn_trainer_grads(bn_trainer *tr)
{
    return tr->grads;
}
size_t bn_trainer_n_train_tokens(const bn_trainer *tr)
{
    return tr->n_train;
}
size_t bn_trainer_n_val_tokens(const bn_trainer *tr)
{
    return tr->n_tokens - tr->n_train;
}
