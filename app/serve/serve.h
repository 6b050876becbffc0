/*
 * serve.h - `bitnet serve` inside: the request queue and its slots (serve_engine.c) and the
 * HTTP side (serve_http.c), joined by cmd_serve.c.
 *
 * One engine thread owns the model: it loads it, makes one cm_session per slot and runs the
 * slots in steps of continuous batching (each step one batched pass for the pending tokens
 * of every running slot, then each samples its next token; serve_engine.c). It also ends
 * the requests that pass their deadline (--timeout), queued or running. A connection
 * thread (libmicrohttpd, a thread per connection) checks and tokenizes a request, submits it
 * (srv_submit: a free slot, else the queue, else SRV_BUSY) and waits for its text on the
 * request's own condition variable, which the engine signals only when that request has
 * what its connection waits for.
 *
 * A request is shared by its connection and the engine: each holds a reference (srv_release).
 * Everything in it below "under mu" is read and written with s->mu held; the rest is set
 * before srv_submit and read-only afterwards.
 */
#ifndef BITNET_APP_SERVE_H
#define BITNET_APP_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/gpu_pool.h"
#include "bitnet/sample.h"
#include "common/metrics.h"
#include "common/session.h"
#include "common/genmetrics.h"

#define SRV_STOP_MAX 4 /* stop strings at most, as OpenAI's API */

typedef enum srv_state { SRV_QUEUED, SRV_RUNNING, SRV_DONE } srv_state;

typedef struct srv_req {
    int32_t *ids; /* the prompt's tokens (bn_free) */
    size_t n_ids;
    bn_sampler_params sp;
    int64_t max_tokens;
    char *stop[SRV_STOP_MAX];
    size_t n_stop;
    int line_reply; /* the reply ends at its first line break (the plain chat format) */
    /* whose earlier prompts a slot's KV cache may serve it from: the tenant's id under
     * --tenants (a cache shared across tenants would tell one, by its speed, what another
     * sent), 0 otherwise */
    int64_t cache_scope;
    double deadline; /* srv_submit's: bn_time_now() past which it ends (0: no limit) */
    /* under mu */
    srv_state state;
    int cancel;    /* the client is gone or the server gives up: stop at the next token */
    int timed_out; /* it ended at its deadline (err says so) */
    int refs;
    char *text; /* generated text, stop strings cut off (bn_free) */
    size_t len, cap;
    size_t visible;     /* bytes of text that may be sent: whole UTF-8, no stop string begun */
    size_t n_gen;       /* tokens generated */
    bn_gen_run run;     /* its run metrics: from srv_submit to its end */
    const char *finish; /* "stop", "length"; NULL on error or cancel */
    char err[256];      /* set when the engine failed */
    size_t wake_past;   /* its connection waits for visible past this (SIZE_MAX: the end) */
    struct srv_req *next;
    /* its connection waits here (with mu): the engine signals it when visible passes
     * wake_past or the request ends, and no other connection is woken */
    pthread_cond_t cv;
} srv_req;

typedef struct srv {
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* the engine: a request came, or stop */
    pthread_cond_t loaded; /* the model loaded, or failed to (ready, load_failed) */
    /* set before the engine starts */
    cm_model_params mp;
    cm_session_params sp; /* of each slot */
    int n_slots, n_queue;
    double timeout_s;   /* a request's whole life, queue and generation (0: no limit) */
    int64_t n_ctx;      /* per slot, once ready */
    char model_id[256]; /* the file's name without .gguf */
    cm_model *m;        /* once ready */
    /* under mu */
    int ready, load_failed, stop, draining;
    char load_err[512];
    srv_req *head, *tail; /* the queue */
    int n_queued, n_running;
    uint64_t n_requests, n_prompt_tokens, n_gen_tokens;
    uint64_t n_failed;   /* requests that ended without a finish (error, timeout, gone) */
    uint64_t n_timeouts; /* of those, the ones that ran past their deadline */
    uint64_t n_rejected; /* answered 429 */
    uint64_t n_limited;  /* answered 429 by a tenant's limits or quota (--tenants) */
    int64_t *slot_kv;    /* tokens in each slot's KV cache (n_slots, srv_start makes it) */
    /* -ngl: the GPU pool's statistics for /metrics, copied by the engine after each step */
    int has_gpu;
    bn_gpu_pool_stats gpu_stats;
    pthread_t engine;
    int engine_started;
    /* GET /metrics: the registry (srv_init makes it) with the run metrics of every request
     * (genmetrics.h) and the server's own (srv_metrics_render) */
    bn_metrics *reg;
    bn_genmetrics gm;
    bn_mfamily *http_requests, *rejected, *in_flight, *waiting, *slots_busy, *slots_total;
    bn_mfamily *decode_steps, *decode_tokens; /* continuous batching: tokens / steps */
    bn_mfamily *timeouts, *slot_kv_tokens, *slot_kv_capacity;
    bn_mfamily *limited;       /* --tenants: 429s by limit (srv_count_limited) */
    bn_mfamily *wakeups;       /* connections woken by the engine (srv_count_wakeup) */
    bn_mfamily *prompt_cached; /* prompt tokens a slot's KV cache already held */
    /* the engine thread's own: with BITNET_SERVE_TRACE, how long it waited for mu */
    int lock_wait_on;
    double lock_wait_s;
} srv;

typedef enum srv_submit_rc { SRV_OK, SRV_BUSY, SRV_UNAVAILABLE } srv_submit_rc;

int srv_init(srv *s);
/* Starts the engine thread, which loads the model (ready or load_failed under mu); -1 when
 * out of resources. */
int srv_start(srv *s);
/* Stops the engine (running requests are cancelled), joins it, frees the model. */
void srv_shutdown(srv *s);
void srv_destroy(srv *s);

/* A new request with one reference (the caller's); NULL when out of memory. */
srv_req *srv_req_new(void);
/* Queues r (the engine takes a reference) unless the slots and the queue are full
 * (SRV_BUSY) or the server is loading or draining (SRV_UNAVAILABLE). Its deadline is
 * s->timeout_s from now: past it the engine ends it, queued or running (timed_out, no
 * finish, err says why). */
srv_submit_rc srv_submit(srv *s, srv_req *r);
/* Drops a reference; the last one frees. Takes mu itself. */
void srv_release(srv *s, srv_req *r);
/* How many bytes of r's text may be sent now: not those that may begin one of its stop
 * strings (the next token decides), nor a UTF-8 character that is not whole yet. */
size_t srv_sendable(const srv_req *r);
/* Under mu, by a holder of a reference: r's client is gone. A queued request leaves the
 * queue at once (done, no finish); a running one ends before its next token. */
void srv_cancel_locked(srv *s, srv_req *r);
/* Under mu: cancels every request (queued or running). */
void srv_cancel_all_locked(srv *s);

/* Counts a completion request answered 429 by a tenant's limit: "requests", "tokens",
 * "streams" or "quota". */
void srv_count_limited(srv *s, const char *limit);
/* Counts a connection woken by the engine while it waited for its request's text. */
void srv_count_wakeup(srv *s);
/* Counts one HTTP answer: endpoint (a known path, else "other") and its status. */
void srv_count_http(srv *s, const char *endpoint, unsigned status);
/* The Prometheus text exposition of s->reg, the gauges read now (in_flight: HTTP requests
 * being answered); NULL when out of memory. The caller free()s it. */
char *srv_metrics_render(srv *s, int in_flight, size_t *len);

/* The HTTP side (serve_http.c). */
typedef struct srv_http srv_http;
typedef struct srv_http_opts {
    const char *listen; /* HOST:PORT; port 0 picks a free one */
    const char *api_key;
    struct srv_tenants *tenants; /* --tenants: keys, limits and the ledger (serve_tenants.h) */
    size_t body_max;
    unsigned per_client_max; /* connections from one address at once (0: no limit) */
} srv_http_opts;
/* Starts listening; the port it got in *port. On failure a one-line message in err. */
int srv_http_start(srv *s, const srv_http_opts *o, srv_http **out, int *port, char *err,
                   size_t errsz);
void srv_http_stop(srv_http *h);

#endif
