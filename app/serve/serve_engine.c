/* serve_engine.c - the slots and the queue of `bitnet serve`; see serve.h. */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/cuda.h"
#include "bitnet/threadpool.h"
#include "common/gpu_pool_metrics.h"
#include "serve_gpu.h"

typedef struct slot {
    int id; /* its index: slot="id" in /metrics */
    cm_session *sess;
    srv_req *r;       /* NULL: free */
    int started;      /* the prompt is in the session */
    int sampled;      /* its first token is out */
    int64_t take;     /* its tokens in this step's pass (a part of a long prompt) */
    double prompt_s;  /* the passes of its prompt so far */
    double last_used; /* when its last request ended: evict_kv takes the oldest first */
    int64_t scope;    /* the cache_scope of the request its KV cache holds */
} slot;

/* BITNET_SERVE_TRACE: where each step's time goes, one line on standard error per step. */
typedef struct step_trace {
    int on;
    int64_t n;       /* steps so far */
    double end;      /* when the last one ended */
    int seqs, fresh; /* this step's slots evaluated, of them with prompt tokens */
    int64_t tokens;  /* and their tokens */
    double model_s;  /* in the batched passes */
    double sample_s; /* sampling, the tokens' text into the requests, waking the clients */
} step_trace;

typedef struct engine {
    srv *s;
    slot *slots;
    slot **batch;       /* the slots of one decoding step */
    cm_session **bsess; /* and their sessions */
    size_t *most;       /* and their tokens in it */
    srv_gpu_slot *gs;   /* -ngl: the slots as evict_kv sees them */
    step_trace tr;
} engine;

/* The engine thread takes mu here: with the trace on, the wait is counted. */
static void lock_mu(srv *s)
{
    if (!s->lock_wait_on) {
        pthread_mutex_lock(&s->mu);
        return;
    }
    const double t0 = bn_time_now();
    pthread_mutex_lock(&s->mu);
    s->lock_wait_s += bn_time_now() - t0;
}

/* The KV cache of each slot (set when rendering, from srv's slot_kv). */
static int define_slot_metrics(srv *s)
{
    static const char *const by_slot[] = {"slot", NULL};
    s->slot_kv_tokens = bn_metrics_define(
            s->reg, BN_METRIC_GAUGE, "bitnet_slot_kv_tokens",
            "Tokens in the slot's KV cache: its running request's (prompt and generated "
            "tokens but the last sampled), or its last request's until the next one starts.",
            by_slot, NULL, 0);
    s->slot_kv_capacity =
            bn_metrics_define(s->reg, BN_METRIC_GAUGE, "bitnet_slot_kv_capacity_tokens",
                              "Tokens the slot's KV cache holds (--ctx).", by_slot, NULL, 0);
    return s->slot_kv_tokens && s->slot_kv_capacity ? 0 : -1;
}

/* The server's own metrics (the run metrics are genmetrics.h's). */
static int define_metrics(srv *s)
{
    static const char *const ep_code[] = {"endpoint", "code", NULL};
    static const char *const by_limit[] = {"limit", NULL};
    if (bn_metrics_new(&s->reg) || bn_genmetrics_define(&s->gm, s->reg)) return -1;
    s->http_requests = bn_metrics_define(s->reg, BN_METRIC_COUNTER, "bitnet_http_requests_total",
                                         "HTTP requests answered, by endpoint and status code.",
                                         ep_code, NULL, 0);
    s->rejected = bn_metrics_define(s->reg, BN_METRIC_COUNTER, "bitnet_requests_rejected_total",
                                    "Requests answered 429: every slot busy and the queue full.",
                                    NULL, NULL, 0);
    s->in_flight = bn_metrics_define(s->reg, BN_METRIC_GAUGE, "bitnet_http_requests_in_flight",
                                     "HTTP requests being answered (this scrape included).", NULL,
                                     NULL, 0);
    s->waiting = bn_metrics_define(s->reg, BN_METRIC_GAUGE, "bitnet_requests_waiting",
                                   "Generation requests waiting in the queue for a slot.", NULL,
                                   NULL, 0);
    s->slots_busy = bn_metrics_define(s->reg, BN_METRIC_GAUGE, "bitnet_slots_busy",
                                      "Slots running a generation request.", NULL, NULL, 0);
    s->slots_total = bn_metrics_define(s->reg, BN_METRIC_GAUGE, "bitnet_slots",
                                       "Slots (generation requests run at once).", NULL, NULL, 0);
    s->decode_steps = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_decode_steps_total",
            "Batched steps: one pass through the model for the pending tokens of every running "
            "slot (its last token, or a new prompt).",
            NULL, NULL, 0);
    s->decode_tokens = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_decode_tokens_total",
            "Tokens evaluated in the batched steps: generated tokens and joining prompts "
            "(divided by the steps: the mean batch).",
            NULL, NULL, 0);
    s->timeouts = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_requests_timed_out_total",
            "Generation requests ended at their deadline (--timeout), waiting or generating; "
            "also counted as result=\"error\" in bitnet_generation_requests_total.",
            NULL, NULL, 0);
    s->limited = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_requests_limited_total",
            "Completion requests answered 429 by their tenant's limits (serve --tenants), by "
            "limit: requests, tokens (per minute), streams (at once) or quota (monthly).",
            by_limit, NULL, 0);
    s->prompt_cached = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_prompt_tokens_cached_total",
            "Prompt tokens found in their slot's KV cache (the start of its last request's "
            "sequence) and not evaluated again; also counted in bitnet_prompt_tokens_total.",
            NULL, NULL, 0);
    s->wakeups = bn_metrics_define(
            s->reg, BN_METRIC_COUNTER, "bitnet_connection_wakeups_total",
            "Times a connection waiting for its generation request was woken by the engine: "
            "new text past what it waits for (a stream), or the request's end (once for a "
            "request answered whole).",
            NULL, NULL, 0);
    if (!s->http_requests || !s->rejected || !s->in_flight || !s->waiting || !s->slots_busy ||
        !s->slots_total || !s->decode_steps || !s->decode_tokens || !s->timeouts || !s->limited ||
        !s->wakeups || !s->prompt_cached || define_slot_metrics(s))
        return -1;
    if (bn_metric_add(s->decode_steps, NULL, 0) || bn_metric_add(s->decode_tokens, NULL, 0) ||
        bn_metric_add(s->timeouts, NULL, 0) || bn_metric_add(s->wakeups, NULL, 0) ||
        bn_metric_add(s->prompt_cached, NULL, 0))
        return -1;
    return bn_metric_add(s->rejected, NULL, 0); /* shown from the start, 0 */
}

int srv_init(srv *s)
{
    if (define_metrics(s)) {
        bn_metrics_free(s->reg);
        s->reg = NULL;
        return -1;
    }
    if (pthread_mutex_init(&s->mu, NULL)) return bn_metrics_free(s->reg), -1;
    if (pthread_cond_init(&s->wake, NULL))
        return pthread_mutex_destroy(&s->mu), bn_metrics_free(s->reg), -1;
    if (pthread_cond_init(&s->loaded, NULL)) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->mu);
        bn_metrics_free(s->reg);
        return -1;
    }
    return 0;
}

void srv_destroy(srv *s)
{
    free(s->slot_kv);
    s->slot_kv = NULL;
    pthread_cond_destroy(&s->loaded);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    bn_metrics_free(s->reg);
    s->reg = NULL;
}

void srv_count_limited(srv *s, const char *limit)
{
    pthread_mutex_lock(&s->mu);
    s->n_limited++;
    pthread_mutex_unlock(&s->mu);
    const char *lv[] = {limit};
    bn_metric_add(s->limited, lv, 1);
}

void srv_count_wakeup(srv *s)
{
    bn_metric_add(s->wakeups, NULL, 1);
}

void srv_count_http(srv *s, const char *endpoint, unsigned status)
{
    char code[16];
    snprintf(code, sizeof code, "%u", status);
    const char *lv[] = {endpoint, code};
    bn_metric_add(s->http_requests, lv, 1);
}

/* Under mu and the registry's lock: the KV cache of each slot, once the model is loaded. */
static void set_slot_gauges(srv *s)
{
    for (int i = 0; s->ready && s->slot_kv && i < s->n_slots; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *lv[] = {id};
        bn_metric_set(s->slot_kv_tokens, lv, (double)s->slot_kv[i]);
        bn_metric_set(s->slot_kv_capacity, lv, (double)s->n_ctx);
    }
}

char *srv_metrics_render(srv *s, int in_flight, size_t *len)
{
    bn_buf b;
    bn_buf_init(&b, 16 << 20);
    pthread_mutex_lock(&s->mu); /* then the registry's lock, never the other way round */
    bn_metrics_lock(s->reg);
    bn_metric_set(s->in_flight, NULL, in_flight);
    bn_metric_set(s->waiting, NULL, s->n_queued);
    bn_metric_set(s->slots_busy, NULL, s->n_running);
    bn_metric_set(s->slots_total, NULL, s->n_slots);
    set_slot_gauges(s);
    if (s->has_gpu) bn_gpu_pool_metrics_update(s->reg, "0", &s->gpu_stats);
    pthread_mutex_unlock(&s->mu);
    char *text = bn_metrics_render(s->reg, &b) == 0 ? bn_buf_detach(&b, len) : NULL;
    bn_metrics_unlock(s->reg);
    bn_buf_release(&b);
    return text;
}

srv_req *srv_req_new(void)
{
    srv_req *r = calloc(1, sizeof *r);
    if (r && pthread_cond_init(&r->cv, NULL)) {
        free(r);
        return NULL;
    }
    if (r) r->refs = 1;
    return r;
}

static void req_free(srv_req *r)
{
    bn_free(r->ids);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->text);
    free(r->run.itl);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void srv_release(srv *s, srv_req *r)
{
    pthread_mutex_lock(&s->mu);
    const int last = --r->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) req_free(r);
}

srv_submit_rc srv_submit(srv *s, srv_req *r)
{
    srv_submit_rc rc = SRV_OK;
    pthread_mutex_lock(&s->mu);
    if (!s->ready || s->draining || s->stop)
        rc = SRV_UNAVAILABLE;
    else if (s->n_running + s->n_queued >= s->n_slots + s->n_queue)
        rc = SRV_BUSY;
    if (rc == SRV_BUSY) s->n_rejected++;
    if (rc == SRV_OK) {
        r->state = SRV_QUEUED;
        r->refs++;
        r->next = NULL;
        if (s->tail)
            s->tail->next = r;
        else
            s->head = r;
        s->tail = r;
        s->n_queued++;
        s->n_requests++;
        bn_gen_run_start(&r->run, bn_time_now());
        r->deadline = s->timeout_s > 0 ? r->run.start + s->timeout_s : 0;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == SRV_BUSY) bn_metric_add(s->rejected, NULL, 1);
    return rc;
}

void srv_cancel_all_locked(srv *s)
{
    for (srv_req *r = s->head; r; r = r->next) r->cancel = 1;
    s->stop = 1; /* running ones: the engine sees stop */
    pthread_cond_broadcast(&s->wake);
}

static int finish_locked(srv *s, srv_req *r, const char *finish, const char *err);

/* Under mu: takes queued r out of the queue; 0 when it was not there. */
static int unqueue_locked(srv *s, srv_req *r)
{
    srv_req *prev = NULL, *q = s->head;
    while (q && q != r) prev = q, q = q->next;
    if (!q) return 0;
    if (prev)
        prev->next = r->next;
    else
        s->head = r->next;
    if (s->tail == r) s->tail = prev;
    s->n_queued--;
    return 1;
}

void srv_cancel_locked(srv *s, srv_req *r)
{
    r->cancel = 1;
    if (r->state == SRV_QUEUED && unqueue_locked(s, r))
        finish_locked(s, r, NULL, NULL); /* the caller's reference remains */
}

/* ---- the engine thread ------------------------------------------------------------------ */

/* Under mu: ends r and drops the engine's reference; 1 when it was the last (the client is
 * gone): then the caller frees r, after unlocking. */
static int finish_locked(srv *s, srv_req *r, const char *finish, const char *err)
{
    if (r->state == SRV_QUEUED) /* never ran: its client gone, or the server stopping */
        bn_genmetrics_record(&s->gm, s->model_id, &r->run, BN_GEN_ERROR, bn_time_now());
    r->state = SRV_DONE;
    r->finish = finish;
    if (!finish) s->n_failed++;
    if (err) snprintf(r->err, sizeof r->err, "%s", err);
    r->visible = r->len;
    pthread_cond_broadcast(&r->cv); /* its connection alone */
    return --r->refs == 0;
}

static void finish(srv *s, slot *sl, const char *why, const char *err)
{
    /* the engine's reference keeps the request; only the engine writes its run */
    const bn_gen_finish gf = !why                   ? BN_GEN_ERROR
                             : !strcmp(why, "stop") ? BN_GEN_STOP
                                                    : BN_GEN_LENGTH;
    bn_genmetrics_record(&s->gm, s->model_id, &sl->r->run, gf, bn_time_now());
    lock_mu(s);
    s->slot_kv[sl->id] = (int64_t)cm_session_n_evaluated(sl->sess); /* before it is done */
    s->n_prompt_tokens += sl->r->n_ids;
    s->n_gen_tokens += sl->r->n_gen;
    const int last = finish_locked(s, sl->r, why, err);
    s->n_running--;
    pthread_mutex_unlock(&s->mu);
    if (last) req_free(sl->r);
    sl->r = NULL;
    sl->last_used = bn_time_now();
}

/* Bytes at the end of t[0..n) that may begin a stop string, held back from a stream. */
static size_t stop_prefix(const srv_req *r, const char *t, size_t n)
{
    size_t hold = 0;
    for (size_t i = 0; i < r->n_stop; i++) {
        const size_t sl = strlen(r->stop[i]);
        for (size_t k = sl - 1 < n ? sl - 1 : n; k > hold; k--)
            if (!memcmp(t + n - k, r->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Length of the longest prefix of t[0..n) that does not end inside a UTF-8 sequence. */
static size_t utf8_whole(const char *t, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)t[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    const unsigned char c = (unsigned char)t[i - 1];
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? n : i - 1;
}

size_t srv_sendable(const srv_req *r)
{
    return r->len ? utf8_whole(r->text, r->len - stop_prefix(r, r->text, r->len)) : 0;
}

/* Cuts the text at the first stop string (or line break): 1 when one was found. */
static int cut_stop(srv_req *r, size_t from)
{
    size_t at = r->len;
    for (size_t i = 0; i < r->n_stop; i++) {
        const char *p = memmem(r->text + from, r->len - from, r->stop[i], strlen(r->stop[i]));
        if (p && (size_t)(p - r->text) < at) at = (size_t)(p - r->text);
    }
    if (r->line_reply) {
        const char *p = memchr(r->text + from, '\n', r->len - from);
        if (p && (size_t)(p - r->text) < at) at = (size_t)(p - r->text);
    }
    if (at == r->len) return 0;
    r->len = at;
    return 1;
}

static int append_text(srv_req *r, const char *p, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        while (cap < r->len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return -1;
        r->text = t, r->cap = cap;
    }
    memcpy(r->text + r->len, p, n);
    r->len += n;
    r->text[r->len] = '\0';
    return 0;
}

typedef struct step_ctx {
    srv *s;
    srv_req *r;
} step_ctx;

static int on_token(void *ud, int32_t id, const char *piece, size_t len, const cm_result *res)
{
    step_ctx *c = ud;
    srv_req *r = c->r;
    (void)id, (void)res;
    lock_mu(c->s);
    r->n_gen++;
    bn_gen_run_token(&r->run, bn_time_now());
    int out = CM_GO;
    size_t longest = r->line_reply ? 1 : 0;
    for (size_t i = 0; i < r->n_stop; i++)
        if (strlen(r->stop[i]) > longest) longest = strlen(r->stop[i]);
    const size_t from = r->len > longest + len ? r->len - longest - len : 0;
    if (piece && len && append_text(r, piece, len))
        out = CM_FAIL;
    else if (cut_stop(r, from))
        out = CM_STOP;
    r->visible = srv_sendable(r); /* the clients are woken once the step's slots are done */
    pthread_mutex_unlock(&c->s->mu);
    return out;
}

/* Under mu: whether r is past its deadline; the first time, it is marked and counted. */
static int expired_locked(srv *s, srv_req *r, double now)
{
    if (r->timed_out) return 1;
    if (r->deadline <= 0 || now < r->deadline) return 0;
    r->timed_out = 1;
    s->n_timeouts++;
    bn_metric_add(s->timeouts, NULL, 1); /* mu, then the registry's lock */
    return 1;
}

static void timeout_msg(const srv *s, char *buf, size_t size)
{
    snprintf(buf, size, "the request took longer than the server's timeout (%g s)", s->timeout_s);
}

/* Under mu: ends the queued requests that are past their deadline. */
static void expire_queued_locked(srv *s, double now)
{
    char err[128];
    timeout_msg(s, err, sizeof err);
    for (srv_req *r = s->head, *next; r; r = next) {
        next = r->next;
        if (!expired_locked(s, r, now) || !unqueue_locked(s, r)) continue;
        if (finish_locked(s, r, NULL, err)) req_free(r); /* its client gone too */
    }
}

/* Whether r ends before its next step: its client is gone, the server stops, or it is past
 * its deadline (then the message is in err; else err is ""). */
static int ends_now(srv *s, srv_req *r, char *err, size_t errsz)
{
    lock_mu(s);
    const int gone = r->cancel || s->stop;
    const int late = !gone && expired_locked(s, r, bn_time_now());
    err[0] = '\0';
    if (late) timeout_msg(s, err, errsz);
    pthread_mutex_unlock(&s->mu);
    return gone || late;
}

static int is_cancelled(void *ud)
{
    step_ctx *c = ud;
    lock_mu(c->s);
    const int gone = c->r->cancel || c->s->stop;
    pthread_mutex_unlock(&c->s->mu);
    return gone;
}

/* Tokens at the start of the slot's KV cache (its last request's prompt and text) that equal
 * the start of r's prompt; 0 when that request was another tenant's. */
static size_t cached_prefix(const slot *sl, const srv_req *r)
{
    if (sl->scope != r->cache_scope) return 0;
    const int32_t *t = cm_session_tokens(sl->sess);
    const size_t n = cm_session_n_evaluated(sl->sess);
    size_t i = 0;
    while (i < n && i < r->n_ids && t[i] == r->ids[i]) i++;
    return i;
}

/* Puts the slot's request in its session: its sampler and its prompt, of which the part
 * already in the slot's cache (cached_prefix) is kept, not evaluated again; the last prompt
 * token always is (its logits give the first token). The rest: a fresh sequence. */
static const char *start_slot(srv *s, slot *sl)
{
    srv_req *r = sl->r;
    size_t keep = cached_prefix(sl, r);
    if (r->n_ids && keep >= r->n_ids) keep = r->n_ids - 1;
    if (keep)
        cm_session_truncate(sl->sess, keep);
    else
        cm_session_reset(sl->sess);
    if (cm_session_set_sampler(sl->sess, &r->sp) != BN_OK) return "bad sampling settings";
    if (cm_session_append(sl->sess, r->ids + keep, r->n_ids - keep) != BN_OK)
        return "out of memory";
    if (keep) bn_metric_add(s->prompt_cached, NULL, (double)keep);
    sl->scope = r->cache_scope;
    sl->started = 1;
    return NULL;
}

/* One token for the slot's request, sampled from the logits of the step's evaluation
 * (run_step); prompt_s: that evaluation's time, the prompt's for a first token. */
static void step_slot(srv *s, slot *sl, double prompt_s)
{
    srv_req *r = sl->r;
    const int first = !sl->sampled;
    sl->sampled = 1;
    step_ctx c = {s, r};
    cm_gen g = {.n_predict = 1, .on_token = on_token, .cancelled = is_cancelled, .ud = &c};
    cm_result res;
    /* the logits are fresh: no evaluation here, only the sampler's or the text's memory can
     * fail (and the model's message, shared by the threads that sample, is not read) */
    if (cm_session_generate(sl->sess, &g, &res) != BN_OK || res.stop == CM_STOP_ERROR)
        return finish(s, sl, NULL, "out of memory while sampling the next token");
    if (first) bn_gen_run_prompt(&r->run, r->n_ids, prompt_s);
    if (res.stop == CM_STOP_EOG || res.stop == CM_STOP_STRING) return finish(s, sl, "stop", NULL);
    if (res.stop == CM_STOP_CANCELLED) return finish(s, sl, NULL, NULL);
    if ((int64_t)r->n_gen >= r->max_tokens) return finish(s, sl, "length", NULL);
}

/* The free slot whose cache holds the longest start of r's prompt, when that is more than
 * its first token (the start of sequence that every prompt begins with); else the free slot
 * used least recently, whose cache is the least likely to serve again. -1: every slot busy. */
static int pick_slot(const srv *s, const engine *e, const srv_req *r)
{
    int best = -1, lru = -1;
    size_t best_n = 1;
    for (int i = 0; i < s->n_slots; i++) {
        const slot *sl = &e->slots[i];
        if (sl->r) continue;
        const size_t n = cached_prefix(sl, r);
        if (n > best_n) best = i, best_n = n;
        if (lru < 0 || sl->last_used < e->slots[lru].last_used) lru = i;
    }
    return best >= 0 ? best : lru;
}

/* Under mu: moves queued requests into free slots (cancelled ones end at once), each into
 * the slot that has the most of its prompt cached (pick_slot). */
static void admit_locked(srv *s, engine *e)
{
    for (;;) {
        const int i = s->head ? pick_slot(s, e, s->head) : -1;
        if (i < 0) return;
        srv_req *r = s->head;
        s->head = r->next;
        if (!s->head) s->tail = NULL;
        s->n_queued--;
        s->n_running++;
        r->state = SRV_RUNNING;
        e->slots[i].r = r;
        e->slots[i].started = e->slots[i].sampled = 0;
        e->slots[i].prompt_s = 0;
    }
}

static int any_running(const engine *e)
{
    for (int i = 0; i < e->s->n_slots; i++)
        if (e->slots[i].r) return 1;
    return 0;
}

/* Whether the slot can go on: a cancelled request or one past its deadline ends, a new one
 * puts its prompt in its session, and one whose next token would not fit in the context
 * ends. */
static int slot_goes_on(srv *s, slot *sl)
{
    char late[128];
    if (ends_now(s, sl->r, late, sizeof late)) return finish(s, sl, NULL, late[0] ? late : NULL), 0;
    const char *err = sl->started ? NULL : start_slot(s, sl);
    if (err) return finish(s, sl, NULL, err), 0;
    if ((int64_t)cm_session_n_tokens(sl->sess) >= cm_session_n_ctx(sl->sess))
        return finish(s, sl, "length", NULL), 0;
    return 1;
}

/* Once the step's slots have sampled: wakes the connection of each running request that
 * has text past what it waits for (a request answered whole waits for its end: finish). */
static void wake_clients(srv *s, slot **sl, int n)
{
    lock_mu(s);
    for (int k = 0; k < n; k++) {
        srv_req *r = sl[k]->r;
        if (r && r->visible > r->wake_past) pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A step's slots after their pass: each whose sequence is all in the cache samples its
 * next token (step_slot), the others add the pass to their prompt's time. */
typedef struct sample_part {
    srv *s;
    slot **sl;
    cm_session **ss;
    double secs; /* the pass */
} sample_part;

/* Slots [b, e) of the step, on one of the model's threads: they share the slots of a step
 * (the greedy scan of 16 slots reads 8 MB of logits), which sit idle between two passes.
 * Nothing here evaluates: a slot samples only from logits its pass left fresh. */
static void sample_range(void *arg, int64_t b, int64_t e, int tid)
{
    const sample_part *p = arg;
    (void)tid;
    for (int64_t k = b; k < e; k++) {
        if (cm_session_n_evaluated(p->ss[k]) < cm_session_n_tokens(p->ss[k])) {
            p->sl[k]->prompt_s += p->secs; /* a part of its prompt: the rest in the next steps */
            continue;
        }
        step_slot(p->s, p->sl[k], p->sl[k]->prompt_s + p->secs);
    }
}

/* Evaluates most[k] pending tokens of the session of each slot k of [0, n) in one pass and
 * samples the next token of each whose sequence is then all in the cache, then wakes the
 * clients once; a failure ends them all with the engine's message. */
static void eval_and_sample(engine *e, slot **sl, cm_session **ss, const size_t *most, int n)
{
    int64_t tokens = 0;
    for (int k = 0; k < n; k++) tokens += (int64_t)most[k];
    srv *s = e->s;
    bn_metric_add(s->decode_steps, NULL, 1);
    bn_metric_add(s->decode_tokens, NULL, (double)tokens);
    e->tr.seqs += n, e->tr.tokens += tokens;
    for (int k = 0; k < n; k++) e->tr.fresh += !sl[k]->sampled;
    double secs = 0;
    const bn_status rc = cm_session_eval_part(ss, (size_t)n, most, &secs);
    const double t0 = bn_time_now();
    e->tr.model_s += secs;
    if (rc != BN_OK) {
        char err[256];
        snprintf(err, sizeof err, "%s", bn_ctx_errmsg(cm_model_ctx(s->m)));
        for (int k = 0; k < n; k++) finish(s, sl[k], NULL, err);
        return;
    }
    sample_part part = {s, sl, ss, secs};
    bn_pool_parallel_for(bn_ctx_pool(cm_model_ctx(s->m)), n, 1, sample_range, &part);
    wake_clients(s, sl, n);
    e->tr.sample_s += bn_time_now() - t0;
}

/* The trace's line for the step that began at t0 and ends now. */
static void trace_step(engine *e, double t0)
{
    step_trace *t = &e->tr;
    const double now = bn_time_now(), all = now - t0;
    fprintf(stderr,
            "bitnet serve: step %lld: %d slots, %d prompts, %lld tokens; model %.1f ms, sampling "
            "%.1f ms, the rest %.1f ms (waits for the lock %.2f ms); %.1f ms since the last "
            "step\n",
            (long long)++t->n, t->seqs, t->fresh, (long long)t->tokens, t->model_s * 1e3,
            t->sample_s * 1e3, (all - t->model_s - t->sample_s) * 1e3, e->s->lock_wait_s * 1e3,
            t->end > 0 ? (t0 - t->end) * 1e3 : 0.0);
    t->end = now;
}

/* Tokens of the slot's sequence not in its cache yet: its last sampled token, or (the rest
 * of) its prompt. */
static int64_t pending(const slot *sl)
{
    return (int64_t)(cm_session_n_tokens(sl->sess) - cm_session_n_evaluated(sl->sess));
}

/* Puts sl in the step's pass with take of its pending tokens. */
static void add_to_pass(engine *e, slot *sl, int64_t take, int *nb, int64_t *used)
{
    e->batch[*nb] = sl, e->bsess[*nb] = sl->sess, e->most[*nb] = (size_t)take;
    (*nb)++;
    *used += take;
}

/* One step of continuous batching: the last sampled token of every decoding slot, then as
 * much of the new prompts as fits in what is left of n_batch, in slot order, go through the
 * model in one batched pass; a long prompt goes on in the next steps (the prompts after it
 * wait), so the decoding slots never wait for a whole prompt. Then each slot whose sequence
 * is all in the cache samples its next token from its logits. (With fewer n_batch tokens
 * than slots - a context smaller than the slots - a decoding slot beyond it, and the first
 * prompt when none has room, get a pass of their own.) */
static void run_step(srv *s, engine *e)
{
    const double t0 = e->tr.on ? bn_time_now() : 0;
    e->tr.seqs = e->tr.fresh = 0, e->tr.tokens = 0, e->tr.model_s = e->tr.sample_s = 0;
    int nb = 0, prompt_in = 0;
    int64_t room = -1, used = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &e->slots[i];
        sl->take = sl->r && slot_goes_on(s, sl) ? pending(sl) : 0;
        if (sl->take && room < 0) room = cm_session_n_batch(sl->sess);
    }
    for (int pass = 0; pass < 2; pass++) /* 0: the decoding slots, 1: the prompts */
        for (int i = 0; i < s->n_slots; i++) {
            slot *sl = &e->slots[i];
            if (!sl->take || sl->sampled == pass || (pass && prompt_in && used >= room)) continue;
            prompt_in |= pass;
            if (used + sl->take <= room)
                add_to_pass(e, sl, sl->take, &nb, &used);
            else if (pass == 1 && used < room)
                add_to_pass(e, sl, room - used, &nb, &used);
            else { /* alone, now */
                const size_t most = (size_t)(sl->take < room ? sl->take : room);
                eval_and_sample(e, &sl, &sl->sess, &most, 1);
            }
        }
    if (nb) eval_and_sample(e, e->batch, e->bsess, e->most, nb);
    lock_mu(s); /* the KV cache of each slot, for /metrics */
    for (int i = 0; i < s->n_slots; i++)
        s->slot_kv[i] = (int64_t)cm_session_n_evaluated(e->slots[i].sess);
    if (cm_model_gpu(s->m)) bn_cuda_pool_stats(cm_model_gpu(s->m), &s->gpu_stats);
    pthread_mutex_unlock(&s->mu);
    if (e->tr.on && e->tr.seqs) trace_step(e, t0);
    s->lock_wait_s = 0;
}

static void run_loop(engine *e)
{
    srv *s = e->s;
    for (;;) {
        lock_mu(s);
        while (!s->stop && !s->head && !any_running(e)) pthread_cond_wait(&s->wake, &s->mu);
        expire_queued_locked(s, bn_time_now());
        if (s->stop) { /* queued requests end here; running ones at their next step */
            s->n_queued = 0;
            s->tail = NULL;
        }
        srv_req *gone = s->stop ? s->head : NULL;
        if (s->stop) s->head = NULL;
        admit_locked(s, e);
        const int done = s->stop && !any_running(e);
        while (gone) {
            srv_req *r = gone;
            gone = r->next;
            if (finish_locked(s, r, NULL, NULL)) req_free(r); /* freeing under mu is fine */
        }
        pthread_mutex_unlock(&s->mu);
        if (done) return;
        run_step(s, e);
    }
}

/* evict_kv of the GPU pool (-ngl): the caches of idle slots, the oldest first. */
static size_t evict_idle(bn_gpu_pool *pool, size_t need, void *user)
{
    engine *e = user;
    (void)pool;
    for (int i = 0; i < e->s->n_slots; i++) {
        const slot *sl = &e->slots[i];
        e->gs[i] = (srv_gpu_slot){
                .id = sl->id, .sess = sl->sess, .busy = sl->r != NULL, .last_used = sl->last_used};
    }
    return srv_gpu_evict_idle(e->gs, e->s->n_slots, need, NULL);
}

static int open_slots(srv *s, engine *e, char *err, size_t errsz)
{
    if (cm_model_open(&s->mp, &s->m, err, errsz) != BN_OK) return -1;
    e->slots = bn_calloc((size_t)s->n_slots, sizeof *e->slots);
    e->batch = bn_calloc((size_t)s->n_slots, sizeof *e->batch);
    e->bsess = bn_calloc((size_t)s->n_slots, sizeof *e->bsess);
    e->most = bn_calloc((size_t)s->n_slots, sizeof *e->most);
    if (!e->slots || !e->batch || !e->bsess || !e->most)
        return snprintf(err, errsz, "out of memory"), -1;
    for (int i = 0; i < s->n_slots; i++) {
        e->slots[i].id = i;
        if (cm_session_new(s->m, &s->sp, NULL, &e->slots[i].sess, err, errsz) != BN_OK) return -1;
    }
    s->n_ctx = cm_session_n_ctx(e->slots[0].sess);
    bn_cuda_model *gpu = cm_model_gpu(s->m);
    if (gpu) {
        e->gs = bn_calloc((size_t)s->n_slots, sizeof *e->gs);
        if (!e->gs) return snprintf(err, errsz, "out of memory"), -1;
        bn_gpu_pool_set_pressure(bn_cuda_pool(gpu), BN_GPU_PRESSURE_EVICT_KV, evict_idle, e);
    }
    return 0;
}

static void close_slots(srv *s, engine *e)
{
    for (int i = 0; e->slots && i < s->n_slots; i++) cm_session_free(e->slots[i].sess);
    bn_free(e->slots);
    bn_free(e->batch);
    bn_free(e->bsess);
    bn_free(e->most);
    bn_free(e->gs);
}

static void *engine_main(void *arg)
{
    srv *s = arg;
    const char *tr = getenv("BITNET_SERVE_TRACE");
    engine e = {.s = s, .tr.on = tr && *tr && strcmp(tr, "0")};
    s->lock_wait_on = e.tr.on;
    char err[512];
    const int bad = open_slots(s, &e, err, sizeof err);
    pthread_mutex_lock(&s->mu);
    if (bad) {
        s->load_failed = 1;
        snprintf(s->load_err, sizeof s->load_err, "%s", err);
    } else {
        s->ready = 1;
        if ((s->has_gpu = cm_model_gpu(s->m) != NULL))
            bn_cuda_pool_stats(cm_model_gpu(s->m), &s->gpu_stats);
    }
    pthread_cond_broadcast(&s->loaded);
    pthread_mutex_unlock(&s->mu);
    if (!bad) run_loop(&e);
    close_slots(s, &e);
    return NULL;
}

int srv_start(srv *s)
{
    if (!s->slot_kv && !(s->slot_kv = calloc((size_t)s->n_slots, sizeof *s->slot_kv))) return -1;
    if (pthread_create(&s->engine, NULL, engine_main, s)) return -1;
    s->engine_started = 1;
    return 0;
}

void srv_shutdown(srv *s)
{
    if (!s->engine_started) return;
    pthread_mutex_lock(&s->mu);
    srv_cancel_all_locked(s);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->engine, NULL);
    s->engine_started = 0;
    cm_model_free(s->m);
    s->m = NULL;
}
