/* session.c - the generation session; see common/session.h. */
#include "common/session.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bitnet/cuda.h"

struct cm_model {
    bn_ctx *ctx;
    int own_ctx;
    bn_model *model;
    bn_tokenizer *tok;
    bn_cuda_model *gpu; /* -ngl */
    char path[4096];
    double load_s;
};

struct cm_session {
    cm_model *m;
    bn_model_state *st;
    bn_sampler *smp;
    float *logits;
    int32_t *ids;
    size_t n, cap;
    size_t n_eval; /* ids in the cache */
    int fresh;     /* logits follow the last token in the cache and nothing is pending */
};

/* ---- the model -------------------------------------------------------------------------- */

void cm_model_params_init(cm_model_params *p)
{
    memset(p, 0, sizeof *p);
}

/* The GPU layers of -ngl, for gpu_seq sessions of gpu_ctx tokens. */
static bn_status open_gpu(cm_model *m, const cm_model_params *p)
{
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_layers = p->n_gpu_layers;
    cp.n_seq = p->gpu_seq;
    cp.n_ctx = p->gpu_ctx ? p->gpu_ctx : 4096;
    if (cp.n_ctx > bn_model_n_ctx_train(m->model)) cp.n_ctx = bn_model_n_ctx_train(m->model);
    cp.n_batch = p->gpu_batch;
    return bn_cuda_model_new(m->model, &cp, &m->gpu);
}

bn_status cm_model_open(const cm_model_params *p, cm_model **out, char *err, size_t errsz)
{
    *out = NULL;
    cm_model *m = bn_calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errsz, "cannot start: %s", bn_status_str(BN_ERR_NOMEM));
        return BN_ERR_NOMEM;
    }
    snprintf(m->path, sizeof m->path, "%s", p->path);
    bn_status rc = BN_OK;
    m->ctx = p->ctx;
    if (!m->ctx) {
        bn_ctx_params cp = {.n_threads = p->n_threads};
        rc = bn_ctx_new(&m->ctx, &cp);
        if (rc != BN_OK) {
            snprintf(err, errsz, "cannot start: %s", bn_status_str(rc));
            bn_free(m);
            return rc;
        }
        m->own_ctx = 1;
    }
    const double t0 = bn_time_now();
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.head_type = p->head_keep ? 0 : p->head_type ? p->head_type : BN_TYPE_Q8_0;
    rc = bn_model_load(m->ctx, p->path, &mp, &m->model);
    if (rc == BN_OK) rc = bn_tokenizer_from_gguf(m->ctx, bn_model_gguf(m->model), &m->tok);
    if (rc == BN_OK && p->n_gpu_layers > 0) rc = open_gpu(m, p);
    if (rc != BN_OK) {
        snprintf(err, errsz, "%s: %s", p->path, bn_ctx_errmsg(m->ctx));
        cm_model_free(m);
        return rc;
    }
    m->load_s = bn_time_now() - t0;
    *out = m;
    return BN_OK;
}

void cm_model_free(cm_model *m)
{
    if (!m) return;
    bn_tokenizer_free(m->tok);
    bn_cuda_model_free(m->gpu);
    bn_model_free(m->model);
    if (m->own_ctx) bn_ctx_free(m->ctx);
    bn_free(m);
}

bn_ctx *cm_model_ctx(const cm_model *m)
{
    return m->ctx;
}

bn_model *cm_model_bn(const cm_model *m)
{
    return m->model;
}

bn_tokenizer *cm_model_tok(const cm_model *m)
{
    return m->tok;
}

double cm_model_load_seconds(const cm_model *m)
{
    return m->load_s;
}

bn_cuda_model *cm_model_gpu(const cm_model *m)
{
    return m->gpu;
}

/* ---- the session ------------------------------------------------------------------------ */

void cm_session_params_init(cm_session_params *p)
{
    memset(p, 0, sizeof *p);
    p->clamp = 1;
}

bn_status cm_session_new(cm_model *m, const cm_session_params *p, const bn_sampler_params *sp,
                         cm_session **out, char *err, size_t errsz)
{
    *out = NULL;
    cm_session_params dp;
    if (!p) cm_session_params_init(&dp), p = &dp;
    bn_model_state_params stp;
    bn_model_state_params_init(&stp);
    stp.n_ctx = p->n_ctx ? p->n_ctx : 4096;
    if (p->clamp && stp.n_ctx > bn_model_n_ctx_train(m->model))
        stp.n_ctx = bn_model_n_ctx_train(m->model);
    stp.n_batch = p->n_batch;
    stp.kv_type = p->kv_f32 ? BN_TYPE_F32 : BN_TYPE_F16;
    stp.gpu = m->gpu;
    cm_session *s = bn_calloc(1, sizeof *s);
    bn_status rc = s ? BN_OK : BN_ERR_NOMEM;
    if (rc == BN_OK) {
        s->m = m;
        rc = bn_model_state_new(m->model, &stp, &s->st);
    }
    if (rc == BN_OK) {
        s->logits = bn_malloc((size_t)bn_model_n_vocab(m->model) * sizeof *s->logits);
        if (!s->logits) rc = bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "out of memory (logits)");
    }
    if (rc == BN_OK) {
        rc = bn_sampler_new(&s->smp, sp);
        if (rc != BN_OK) bn_ctx_set_error(m->ctx, rc, "bad sampling settings");
    }
    if (rc != BN_OK) {
        snprintf(err, errsz, "%s: %s", m->path, s ? bn_ctx_errmsg(m->ctx) : "out of memory");
        cm_session_free(s);
        return rc;
    }
    *out = s;
    return BN_OK;
}

void cm_session_free(cm_session *s)
{
    if (!s) return;
    bn_sampler_free(s->smp);
    bn_model_state_free(s->st);
    bn_free(s->logits);
    bn_free(s->ids);
    bn_free(s);
}

cm_model *cm_session_model(const cm_session *s)
{
    return s->m;
}

bn_model_state *cm_session_state(const cm_session *s)
{
    return s->st;
}

int64_t cm_session_n_ctx(const cm_session *s)
{
    return bn_model_state_n_ctx(s->st);
}

const int32_t *cm_session_tokens(const cm_session *s)
{
    return s->ids;
}

size_t cm_session_n_tokens(const cm_session *s)
{
    return s->n;
}

size_t cm_session_n_evaluated(const cm_session *s)
{
    return s->n_eval;
}

static bn_status reserve(cm_session *s, size_t n)
{
    if (n <= s->cap) return BN_OK;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < n) cap *= 2;
    int32_t *ids = bn_malloc(cap * sizeof *ids);
    if (!ids) return BN_ERR_NOMEM;
    if (s->n) memcpy(ids, s->ids, s->n * sizeof *ids);
    bn_free(s->ids);
    s->ids = ids, s->cap = cap;
    return BN_OK;
}

/* Adds one token to the sequence and to the sampler's history (room reserved). */
static void push(cm_session *s, int32_t id)
{
    s->ids[s->n++] = id;
    bn_sampler_accept(s->smp, id);
}

bn_status cm_session_append(cm_session *s, const int32_t *ids, size_t n)
{
    if (reserve(s, s->n + n) != BN_OK) return BN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) push(s, ids[i]);
    if (n) s->fresh = 0;
    return BN_OK;
}

bn_status cm_session_tokenize(cm_session *s, const char *text, size_t len, unsigned flags,
                              size_t *n)
{
    int32_t *ids = NULL;
    size_t nt = 0;
    bn_status rc = bn_tokenizer_encode_alloc(s->m->tok, text, len, flags, &ids, &nt);
    if (rc == BN_OK) rc = cm_session_append(s, ids, nt);
    bn_free(ids);
    if (n) *n = rc == BN_OK ? nt : 0;
    return rc;
}

size_t cm_session_gpu_evict(cm_session *s)
{
    const size_t got = bn_model_state_gpu_evict(s->st);
    if (got) s->n_eval = 0, s->fresh = 0;
    return got;
}

void cm_session_truncate(cm_session *s, size_t n)
{
    if (n >= s->n) return;
    s->n = n;
    if (s->n_eval > n) s->n_eval = n;
    bn_model_state_truncate(s->st, (int64_t)s->n_eval); /* a batch continues at the state's */
    s->fresh = 0;
}

void cm_session_reset(cm_session *s)
{
    bn_model_state_reset(s->st);
    bn_sampler_reset(s->smp);
    s->n = s->n_eval = 0;
    s->fresh = 0;
}

bn_status cm_session_set_sampler(cm_session *s, const bn_sampler_params *sp)
{
    bn_sampler *smp;
    bn_status rc = bn_sampler_new(&smp, sp);
    if (rc != BN_OK) return rc;
    bn_sampler_free(s->smp);
    s->smp = smp;
    const size_t last = (size_t)bn_sampler_get_params(smp)->repeat_last_n;
    for (size_t i = s->n > last ? s->n - last : 0; i < s->n; i++) bn_sampler_accept(smp, s->ids[i]);
    return BN_OK;
}

/* ---- generating ------------------------------------------------------------------------- */

const char *cm_stop_name(cm_stop stop)
{
    static const char *const names[] = {"eos", "length", "context", "stop", "cancelled", "error"};
    return (unsigned)stop < sizeof names / sizeof names[0] ? names[stop] : "?";
}

double cm_result_prompt_tps(const cm_result *r)
{
    return r->prompt_s > 0 ? (double)r->n_prompt / r->prompt_s : 0.0;
}

double cm_result_gen_tps(const cm_result *r)
{
    return r->gen_s > 0 ? (double)r->n_evals / r->gen_s : 0.0;
}

/* Evaluates the tokens not yet in the cache, timed as the prompt. */
static bn_status eval_prompt(cm_session *s, cm_result *r)
{
    if (s->n_eval >= s->n)
        return bn_ctx_set_error(s->m->ctx, BN_ERR_INVALID, "nothing to evaluate");
    const size_t n = s->n - s->n_eval;
    const double t0 = bn_time_now();
    bn_status rc =
            bn_model_eval(s->st, s->ids + s->n_eval, (int64_t)n, (int64_t)s->n_eval, 1, s->logits);
    r->prompt_s = bn_time_now() - t0;
    if (rc != BN_OK) {
        s->n = s->n_eval; /* the prompt is dropped */
        return rc;
    }
    r->n_prompt = n;
    s->n_eval = s->n;
    s->fresh = 1;
    return BN_OK;
}

/* Calls on_token with the token's text (none for control and unused tokens). */
static int token_out(cm_session *s, const cm_gen *g, int32_t id, const cm_result *r)
{
    if (!g->on_token) return CM_GO;
    const bn_token_type ty = bn_tokenizer_token_type(s->m->tok, id);
    size_t len = 0;
    const char *p = ty == BN_TOKEN_TYPE_CONTROL || ty == BN_TOKEN_TYPE_UNUSED
                            ? NULL
                            : bn_tokenizer_piece(s->m->tok, id, &len);
    return g->on_token(g->ud, id, p, p ? len : 0, r);
}

/* One step: samples a token and evaluates it unless the generation ends with it. 1 to go
 * on; 0 when ended, with r->stop set (and *rc on an engine error). */
static int step(cm_session *s, const cm_gen *g, cm_result *r, bn_status *rc)
{
    const int64_t V = bn_model_n_vocab(s->m->model);
    if (g->cancelled && g->cancelled(g->ud)) return r->stop = CM_STOP_CANCELLED, 0;
    const int32_t id = bn_sampler_sample(s->smp, s->logits, (int32_t)V);
    if (id < 0 || reserve(s, s->n + 1) != BN_OK) {
        *rc = bn_ctx_set_error(s->m->ctx, BN_ERR_NOMEM, "sampling failed: out of memory");
        return r->stop = CM_STOP_ERROR, 0;
    }
    push(s, id); /* evaluated with the next step or the next prompt */
    s->fresh = 0;
    if (!g->ignore_eog && bn_tokenizer_is_eog(s->m->tok, id)) return r->stop = CM_STOP_EOG, 0;
    r->n_gen++;
    const int out = token_out(s, g, id, r);
    if (out < 0) return r->stop = CM_STOP_ERROR, 0;
    if (out > 0) return r->stop = CM_STOP_STRING, 0;
    if ((int64_t)r->n_gen >= g->n_predict) return r->stop = CM_STOP_LENGTH, 0;
    if ((int64_t)s->n >= bn_model_state_n_ctx(s->st)) return r->stop = CM_STOP_CONTEXT, 0;
    const double t0 = bn_time_now();
    *rc = bn_model_eval(s->st, &s->ids[s->n - 1], 1, (int64_t)s->n - 1, 1, s->logits);
    r->gen_s += bn_time_now() - t0;
    if (*rc != BN_OK) return r->stop = CM_STOP_ERROR, 0;
    s->n_eval = s->n;
    s->fresh = 1;
    r->n_evals++;
    return 1;
}

bn_status cm_session_generate(cm_session *s, const cm_gen *g, cm_result *r)
{
    memset(r, 0, sizeof *r);
    r->t_start = bn_time_now();
    r->stop = CM_STOP_ERROR;
    bn_status rc = s->fresh && s->n_eval == s->n ? BN_OK : eval_prompt(s, r);
    if (rc != BN_OK) return rc;
    if (g->on_prompt) g->on_prompt(g->ud, r);
    r->stop = CM_STOP_LENGTH;
    if (g->n_predict <= 0) return BN_OK;
    while (step(s, g, r, &rc)) {}
    return rc;
}

bn_status cm_session_eval_batch(cm_session *const *ss, size_t n, double *seconds)
{
    return cm_session_eval_part(ss, n, NULL, seconds);
}

bn_status cm_session_eval_part(cm_session *const *ss, size_t n, const size_t *most, double *seconds)
{
    if (seconds) *seconds = 0;
    if (n == 0) return BN_OK;
    bn_ctx *ctx = ss[0]->m->ctx;
    bn_model_state **sts = bn_malloc(n * sizeof *sts);
    const int32_t **ids = bn_malloc(n * sizeof *ids);
    int64_t *nt = bn_malloc(n * sizeof *nt);
    float **logits = bn_malloc(n * sizeof *logits);
    bn_status rc = sts && ids && nt && logits
                           ? BN_OK
                           : bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (batch)");
    for (size_t i = 0; rc == BN_OK && i < n; i++) {
        cm_session *s = ss[i];
        const size_t pending = s->n > s->n_eval ? s->n - s->n_eval : 0;
        const size_t take = most && most[i] < pending ? most[i] : pending;
        if (s->m != ss[0]->m || take == 0)
            rc = bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                  "session %zu of the batch: another model, or nothing to "
                                  "evaluate",
                                  i);
        else
            sts[i] = s->st, ids[i] = s->ids + s->n_eval, nt[i] = (int64_t)take,
            logits[i] = s->logits;
    }
    const double t0 = bn_time_now();
    if (rc == BN_OK) rc = bn_model_eval_batch(sts, (int64_t)n, ids, nt, logits);
    if (seconds) *seconds = bn_time_now() - t0;
    for (size_t i = 0; rc == BN_OK && i < n; i++) {
        ss[i]->n_eval += (size_t)nt[i];
        ss[i]->fresh = ss[i]->n_eval == ss[i]->n; /* else its logits are a part's */
    }
    bn_free(sts);
    bn_free(ids);
    bn_free(nt);
    bn_free(logits);
    return rc;
}

int64_t cm_session_n_batch(const cm_session *s)
{
    return bn_model_state_n_batch(s->st);
}

uint64_t cm_seed_from_clock(void)
{
    return (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}
