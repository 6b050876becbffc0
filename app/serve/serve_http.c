/* serve_http.c - the HTTP side of `bitnet serve`: OpenAI's API shapes over libmicrohttpd,
 * a thread per connection (a request waits for its text in its own thread; see serve.h).
 *
 *   POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /health
 *   GET /metrics (Prometheus text; behind the API key as the API is)
 *   GET /v1/tenants  GET /v1/usage  GET|POST /v1/keys  DELETE /v1/keys/ID  (--tenants: the
 *   store's tenants, ledger and keys)
 *
 * With --tenants each request's key is a tenant's key of the store, its tier's limits apply
 * and every finished completion leaves one ledger row (serve_tenants.h).
 *
 * Errors are OpenAI's error object {"error": {"message", "type", "param", "code"}}; the
 * documents themselves are serve_api.c's. */
#include "serve_api.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"

#define CONNECTIONS_MAX 256
#define IDLE_S          30         /* a connection with no byte for this long is closed */
#define WAIT_NS         100000000L /* a waiting connection looks at its socket this often */

struct srv_http {
    srv *s;
    struct MHD_Daemon *d;
    srv_http_opts o;
    atomic_ullong ids;
    unsigned long long salt; /* random per server: ids of servers sharing a ledger differ */
    atomic_int in_flight;    /* requests between their first call and on_completed */
};

/* The body of a request, as it comes. */
typedef struct conn_body {
    char *data;
    size_t len;
    int too_big;
    srv_caller who; /* --tenants: whose key it is */
} conn_body;

/* ---- answers ------------------------------------------------------------------------------ */

/* Adds hv's headers (may be NULL) to r. */
static void add_headers(struct MHD_Response *r, const srv_verdict *hv)
{
    for (int i = 0; hv && i < hv->n_hdr; i++)
        MHD_add_response_header(r, hv->hdr[i][0], hv->hdr[i][1]);
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, cJSON *doc,
                                  const srv_verdict *hv)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) return MHD_NO;
    struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    cJSON_free(text);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    add_headers(r, hv);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *type,
                                   const char *msg, const char *param, const char *code)
{
    srv_verdict retry = {.n_hdr = status == MHD_HTTP_TOO_MANY_REQUESTS};
    snprintf(retry.hdr[0][0], sizeof retry.hdr[0][0], "%s", MHD_HTTP_HEADER_RETRY_AFTER);
    snprintf(retry.hdr[0][1], sizeof retry.hdr[0][1], "1");
    return reply_json(c, status, srv_error_doc(type, msg, param, code), &retry);
}

/* A refusal of serve_tenants.c: its status, error object and headers. */
static enum MHD_Result reply_verdict(struct MHD_Connection *c, const srv_verdict *v)
{
    return reply_json(c, v->status, srv_error_doc(v->type, v->msg, NULL, v->code), v);
}

static enum MHD_Result bad_request(struct MHD_Connection *c, const char *msg, const char *param)
{
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", msg, param, NULL);
}

/* ---- waiting for the engine ------------------------------------------------------------- */

static int client_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Under mu: waits until r has text past `seen` (SIZE_MAX: until it is done) or is done; a
 * client that hung up cancels it (returns -1). The engine wakes this connection alone, and
 * only then (r->wake_past); the socket is looked at every WAIT_NS. */
static int wait_text(srv *s, srv_req *r, size_t seen, int fd)
{
    r->wake_past = seen;
    while (r->state != SRV_DONE && r->visible <= seen) {
        if (client_gone(fd)) {
            srv_cancel_locked(s, r);
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WAIT_NS;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        if (pthread_cond_timedwait(&r->cv, &s->mu, &ts) == 0) srv_count_wakeup(s);
    }
    return 0;
}

static const char *ended_err(const srv_req *r)
{
    return r->err[0] ? r->err : "the request was cancelled: the server is stopping";
}

/* The error object of a request that ended without a finish: past its deadline (code
 * "timeout"), or the engine failed or the server stopped. */
static cJSON *ended_doc(const srv_req *r)
{
    return srv_error_doc("server_error", ended_err(r), NULL, r->timed_out ? "timeout" : NULL);
}

/* --tenants: the request's row in the usage ledger, once: it waits until r is done (a
 * cancelled one ends at the engine's next step), so the row has what was generated, and it
 * is written before the answer's last bytes go (a client that has its usage finds it in the
 * ledger). -1 when the row could not be written (after the store's retries). */
static int meter(srv_answer *an)
{
    if (!an->tenants || !an->who.by) return 0;
    srv *s = an->s;
    srv_req *r = an->r;
    pthread_mutex_lock(&s->mu);
    while (r->state != SRV_DONE) pthread_cond_wait(&r->cv, &s->mu);
    const char *status = r->finish      ? "ok"
                         : r->timed_out ? "timeout"
                         : r->cancel    ? "cancelled"
                                        : "error";
    bn_usage_rec rec = {.request_id = an->id,
                        .model = s->model_id,
                        .prompt_tokens = (int64_t)r->n_ids,
                        .completion_tokens = (int64_t)r->n_gen,
                        .status = status};
    pthread_mutex_unlock(&s->mu);
    const int64_t now = srv_now_ns();
    rec.duration_ms = (now - an->who.t0_ns) / 1000000;
    return srv_tenants_end(an->tenants, &an->who, &rec, now);
}

static enum MHD_Result answer_whole(srv_answer *an, struct MHD_Connection *c, const srv_verdict *hv)
{
    srv *s = an->s;
    srv_req *r = an->r;
    pthread_mutex_lock(&s->mu);
    int gone = 0;
    while (!gone && r->state != SRV_DONE) gone = wait_text(s, r, SIZE_MAX, an->fd) < 0;
    pthread_mutex_unlock(&s->mu);
    const int unmetered = meter(an);
    if (gone) {
        srv_release(s, r);
        return MHD_NO; /* nobody to srv_answer */
    }
    /* DONE: the engine no longer writes r */
    enum MHD_Result rc;
    if (unmetered && r->finish) {
        /* a client never holds an answer the ledger does not have */
        rc = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_error",
                         "the usage ledger cannot be written now; retry", NULL, NULL);
    } else if (!r->finish) {
        const unsigned status =
                r->timed_out ? MHD_HTTP_GATEWAY_TIMEOUT : MHD_HTTP_INTERNAL_SERVER_ERROR;
        rc = reply_json(c, status, ended_doc(r), NULL);
    } else {
        cJSON *choice, *d = srv_envelope(an, 0, &choice);
        if (srv_add_text(an, choice, r->text ? r->text : "", r->len, 0, 1))
            cJSON_Delete(d), d = NULL;
        if (d) srv_add_finish(choice, r->finish);
        if (d) cJSON_AddItemToObject(d, "usage", srv_usage_doc(r));
        rc = reply_json(c, MHD_HTTP_OK, d, hv);
    }
    srv_release(s, r);
    return rc;
}

/* ---- streaming --------------------------------------------------------------------------- */

typedef struct stream {
    srv_answer an;
    size_t sent; /* bytes of the text sent */
    int phase;   /* 0: nothing sent, 1: sending, 2: [DONE] given */
    srv_buf out; /* events not yet handed to libmicrohttpd */
    size_t off;
} stream;

static int add_event(stream *st, cJSON *d)
{
    char *t = d ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    if (!t) return -1;
    const int rc = srv_buf_add(&st->out, "data: ", 6) || srv_buf_add(&st->out, t, strlen(t)) ||
                   srv_buf_add(&st->out, "\n\n", 2);
    cJSON_free(t);
    return rc ? -1 : 0;
}

static int text_event(stream *st, const char *t, size_t n, int role)
{
    cJSON *choice, *d = srv_envelope(&st->an, 1, &choice);
    if (srv_add_text(&st->an, choice, t, n, 1, role)) return cJSON_Delete(d), -1;
    srv_add_finish(choice, NULL);
    return add_event(st, d);
}

/* The events after the last text: the finish (or an error), the usage, [DONE]. */
static int end_events(stream *st, const srv_req *r)
{
    if (r->finish) {
        cJSON *choice, *d = srv_envelope(&st->an, 1, &choice);
        if (st->an.chat)
            cJSON_AddObjectToObject(choice, "delta");
        else
            cJSON_AddStringToObject(choice, "text", "");
        srv_add_finish(choice, r->finish);
        if (add_event(st, d)) return -1;
    } else if (add_event(st, ended_doc(r))) { /* no finish_reason fits: an error, [DONE] */
        return -1;
    }
    if (st->an.include_usage && r->finish) {
        cJSON *d = srv_envelope(&st->an, 1, NULL);
        cJSON_AddItemToObject(d, "usage", srv_usage_doc(r));
        if (add_event(st, d)) return -1;
    }
    st->phase = 2;
    return srv_buf_add(&st->out, "data: [DONE]\n\n", 14);
}

/* Fills st->out with the next events; -1 when the client is gone or out of memory. */
static int next_events(stream *st)
{
    srv *s = st->an.s;
    srv_req *r = st->an.r;
    st->out.len = st->off = 0;
    pthread_mutex_lock(&s->mu);
    const int gone = st->phase == 0 ? 0 : wait_text(s, r, st->sent, st->an.fd);
    const size_t from = st->sent, to = r->visible;
    const int done = r->state == SRV_DONE;
    /* a copy: the engine may move the text as it grows (only once done is it left alone) */
    char *piece = !gone && to > from ? malloc(to - from) : NULL;
    if (piece) memcpy(piece, r->text + from, to - from);
    pthread_mutex_unlock(&s->mu);
    if (gone) return -1;
    int rc = to > from && !piece ? -1 : 0;
    if (!rc && st->phase == 0 && st->an.chat) rc = text_event(st, "", 0, 1);
    st->phase = 1;
    if (!rc && to > from) rc = text_event(st, piece, to - from, 0);
    free(piece);
    st->sent = to;
    if (done && meter(&st->an)) rc = -1; /* no [DONE] for an answer the ledger lacks */
    if (!rc && done) rc = end_events(st, r);
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    (void)pos;
    while (st->off == st->out.len) {
        if (st->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (next_events(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    const size_t n = st->out.len - st->off < max ? st->out.len - st->off : max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    srv *s = st->an.s;
    pthread_mutex_lock(&s->mu);
    srv_cancel_locked(s, st->an.r); /* a no-op when it is done */
    pthread_mutex_unlock(&s->mu);
    meter(&st->an); /* a client gone mid-stream: what was generated */
    srv_release(s, st->an.r);
    free(st->out.p);
    free(st);
}

static enum MHD_Result answer_stream(const srv_answer *an, struct MHD_Connection *c,
                                     const srv_verdict *hv)
{
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_release(an->s, an->r);
        return MHD_NO;
    }
    st->an = *an;
    struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    add_headers(resp, hv);
    const enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- the endpoints ------------------------------------------------------------------------ */

static int is_ready(srv *s)
{
    pthread_mutex_lock(&s->mu);
    const int ready = s->ready && !s->draining;
    pthread_mutex_unlock(&s->mu);
    return ready;
}

static enum MHD_Result unavailable(struct MHD_Connection *c, srv *s)
{
    pthread_mutex_lock(&s->mu);
    const int loading = !s->ready;
    pthread_mutex_unlock(&s->mu);
    return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_error",
                       loading ? "the model is loading" : "the server is stopping", NULL,
                       loading ? "model_loading" : "shutting_down");
}

static int client_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* An answer's id, which is also its request id in the usage ledger (unique there): the time,
 * the server's random salt and a counter. */
static void new_id(srv_http *h, int chat, char *buf, size_t size)
{
    const unsigned long long n = atomic_fetch_add(&h->ids, 1);
    snprintf(buf, size, "%s-%llx%012llx%06llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), h->salt & 0xFFFFFFFFFFFFULL, n & 0xFFFFFF);
}

static unsigned long long random_salt(void)
{
    unsigned long long salt = 0;
    if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        salt = (unsigned long long)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^
               (unsigned long long)getpid();
    }
    return salt;
}

/* Queues r; who (--tenants: admitted, NULL otherwise) and hv, its rate-limit headers, go
 * with the answer. */
static enum MHD_Result submit(srv_http *h, struct MHD_Connection *c, srv_req *r, const srv_ask *a,
                              srv_caller *who, const srv_verdict *hv)
{
    if (who) r->cache_scope = who->tenant_id;
    const srv_submit_rc sr = srv_submit(h->s, r);
    if (sr != SRV_OK) {
        if (who) srv_tenants_end(h->o.tenants, who, NULL, 0); /* it did not run: no row */
        srv_release(h->s, r);
        if (sr == SRV_UNAVAILABLE) return unavailable(c, h->s);
        return reply_error(c, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limit_exceeded",
                           "every slot is busy and the queue is full; retry later", NULL,
                           "rate_limit_exceeded");
    }
    srv_answer an = {.s = h->s, .r = r, .chat = a->chat, .include_usage = a->include_usage};
    an.fd = client_fd(c);
    an.created = (double)time(NULL);
    if (who) an.tenants = h->o.tenants, an.who = *who;
    new_id(h, a->chat, an.id, sizeof an.id);
    return a->stream ? answer_stream(&an, c, hv) : answer_whole(&an, c, hv);
}

static enum MHD_Result completion(srv_http *h, struct MHD_Connection *c, const conn_body *b,
                                  int chat)
{
    srv *s = h->s;
    if (!is_ready(s)) return unavailable(c, s);
    if (b->too_big)
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
                           "the request body is too large", NULL, NULL);
    cJSON *d = b->data ? cJSON_ParseWithLength(b->data, b->len) : NULL;
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return bad_request(c, "the body is not a JSON object", NULL);
    }
    srv_req *r = srv_req_new();
    srv_ask a = {.chat = chat};
    int rc = r ? srv_read_request(s, d, r, &a) : srv_fail(&a, NULL, "out of memory");
    cJSON_Delete(d);
    if (rc == 0 && (int64_t)r->n_ids >= s->n_ctx) {
        snprintf(a.err, sizeof a.err, "the prompt has %zu tokens; the context holds %lld", r->n_ids,
                 (long long)s->n_ctx);
        srv_release(s, r);
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", a.err, NULL,
                           "context_length_exceeded");
    }
    if (rc) {
        if (r) srv_release(s, r);
        return bad_request(c, a.err, a.param);
    }
    const int64_t room = s->n_ctx - (int64_t)r->n_ids;
    r->max_tokens = a.max_tokens > 0 && a.max_tokens < room ? a.max_tokens : room;
    if (!h->o.tenants) return submit(h, c, r, &a, NULL, NULL);
    srv_caller who = b->who;
    srv_verdict v;
    srv_tenants_admit(h->o.tenants, &who, (int64_t)r->n_ids, srv_now_ns(), &v);
    if (!v.status) return submit(h, c, r, &a, &who, &v);
    srv_release(s, r);
    if (v.limit) srv_count_limited(s, v.limit);
    return reply_verdict(c, &v);
}

static enum MHD_Result models(srv_http *h, struct MHD_Connection *c)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "object", "list");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "data"), m);
    cJSON_AddStringToObject(m, "id", h->s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "bitnet");
    return reply_json(c, MHD_HTTP_OK, d, NULL);
}

static enum MHD_Result health(srv_http *h, struct MHD_Connection *c)
{
    if (!is_ready(h->s)) return unavailable(c, h->s);
    srv *s = h->s;
    pthread_mutex_lock(&s->mu);
    const int running = s->n_running, queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "status", "ok");
    cJSON_AddNumberToObject(d, "slots_idle", s->n_slots - running);
    cJSON_AddNumberToObject(d, "slots_processing", running);
    cJSON_AddNumberToObject(d, "requests_waiting", queued);
    return reply_json(c, MHD_HTTP_OK, d, NULL);
}

static enum MHD_Result metrics(srv_http *h, struct MHD_Connection *c)
{
    size_t len = 0;
    char *text = srv_metrics_render(h->s, atomic_load(&h->in_flight), &len);
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) return free(text), MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, BN_METRICS_CONTENT_TYPE);
    const enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result not_allowed(struct MHD_Connection *c)
{
    return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                       "method not allowed", NULL, NULL);
}

static int authorized(const srv_http *h, struct MHD_Connection *c)
{
    if (!h->o.api_key) return 1;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return v && !strncmp(v, "Bearer ", 7) && !strcmp(v + 7, h->o.api_key);
}

/* /v1/keys or /v1/keys/ID */
static int is_keys(const char *url)
{
    return !strncmp(url, "/v1/keys", 8) && (!url[8] || url[8] == '/');
}

/* The scopes of which a tenant's key needs one for url. */
static unsigned scope_of(const char *url)
{
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions"))
        return BN_SCOPE_INFERENCE;
    if (!strcmp(url, "/v1/tenants") || !strcmp(url, "/metrics") || is_keys(url))
        return BN_SCOPE_ADMIN;
    if (!strcmp(url, "/v1/usage")) return BN_SCOPE_USAGE | BN_SCOPE_ADMIN;
    return BN_SCOPE_ALL_; /* any key: /v1/models, and a 404 */
}

/* A document of serve_tenants.c (NULL: its refusal in v). */
static enum MHD_Result reply_text(struct MHD_Connection *c, char *text, const srv_verdict *v)
{
    if (!text) return reply_verdict(c, v);
    struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    free(text);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    const enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static const char *query(struct MHD_Connection *c, const char *key)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* GET|POST /v1/keys, DELETE /v1/keys/ID (the key's admin scope already checked). */
static enum MHD_Result keys(srv_http *h, struct MHD_Connection *c, const char *url,
                            const char *method, const conn_body *b)
{
    srv_verdict v = {0};
    srv_tenants *t = h->o.tenants;
    if (url[8] == '/')
        return strcmp(method, "DELETE")
                       ? not_allowed(c)
                       : reply_text(c, srv_tenants_key_revoke(t, &b->who, url + 9, &v), &v);
    if (!strcmp(method, "GET"))
        return reply_text(c, srv_tenants_keys_doc(t, &b->who, query(c, "tenant"), &v), &v);
    if (strcmp(method, "POST")) return not_allowed(c);
    if (b->too_big)
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
                           "the request body is too large", NULL, NULL);
    return reply_text(c, srv_tenants_key_create(t, &b->who, b->data, b->len, &v), &v);
}

/* GET /v1/tenants and GET /v1/usage (--tenants only; the key's scope already checked). */
static enum MHD_Result admin(srv_http *h, struct MHD_Connection *c, const char *url,
                             const conn_body *b)
{
    srv_verdict v = {0};
    if (!strcmp(url, "/v1/tenants"))
        return reply_text(c, srv_tenants_list_doc(h->o.tenants, &b->who, &v), &v);
    return reply_text(c,
                      srv_tenants_usage_doc(h->o.tenants, &b->who, query(c, "tenant"),
                                            query(c, "from"), query(c, "to"), &v),
                      &v);
}

/* 0 when the request may go on to url: its key (--api-key, or a tenant's with the scope
 * url needs); else the refusal is queued in *rc. */
static int check_key(srv_http *h, struct MHD_Connection *c, const char *url, conn_body *b,
                     enum MHD_Result *rc)
{
    if (h->o.tenants) {
        srv_verdict v;
        const char *authz =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        srv_tenants_auth(h->o.tenants, authz, scope_of(url), &b->who, &v);
        if (v.status) *rc = reply_verdict(c, &v);
        return v.status ? -1 : 0;
    }
    if (authorized(h, c)) return 0;
    *rc = reply_error(c, MHD_HTTP_UNAUTHORIZED, "invalid_request_error",
                      "invalid API key (Authorization: Bearer KEY)", NULL, "invalid_api_key");
    return -1;
}

static enum MHD_Result route(srv_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, conn_body *b)
{
    const int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) return get ? health(h, c) : not_allowed(c);
    enum MHD_Result refused;
    if (check_key(h, c, url, b, &refused)) return refused;
    if (h->o.tenants && (!strcmp(url, "/v1/tenants") || !strcmp(url, "/v1/usage")))
        return get ? admin(h, c, url, b) : not_allowed(c);
    if (h->o.tenants && is_keys(url)) return keys(h, c, url, method, b);
    if (!strcmp(url, "/v1/models")) return get ? models(h, c) : not_allowed(c);
    if (!strcmp(url, "/v1/chat/completions")) return post ? completion(h, c, b, 1) : not_allowed(c);
    if (!strcmp(url, "/v1/completions")) return post ? completion(h, c, b, 0) : not_allowed(c);
    if (!strcmp(url, "/metrics")) return get ? metrics(h, c) : not_allowed(c);
    return reply_error(c, MHD_HTTP_NOT_FOUND, "invalid_request_error", "no such endpoint", NULL,
                       NULL);
}

/* Counts the answer just queued (none when the client was gone): by endpoint, a known path
 * or "other" (a label per unknown path would grow without bound). */
static void count_http(srv_http *h, struct MHD_Connection *c, const char *url)
{
    static const char *const known[] = {
            "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
            "/v1/tenants",          "/v1/usage",       "/v1/keys"};
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (!ci || !ci->http_status) return;
    const char *ep = "other";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(url, known[i])) ep = known[i];
    srv_count_http(h->s, ep, ci->http_status);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    srv_http *h = cls;
    conn_body *b = *state;
    (void)version;
    if (!b) {
        *state = b = calloc(1, sizeof *b);
        if (b) atomic_fetch_add(&h->in_flight, 1);
        return b ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        if (!b->too_big && b->len + *upload_size <= h->o.body_max) {
            char *p = realloc(b->data, b->len + *upload_size + 1);
            if (!p) return MHD_NO;
            memcpy(p + b->len, upload, *upload_size);
            b->data = p, b->len += *upload_size;
        } else {
            b->too_big = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    const enum MHD_Result rc = route(h, c, url, method, b);
    count_http(h, c, url);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    srv_http *h = cls;
    conn_body *b = *state;
    (void)c, (void)toe;
    if (b) atomic_fetch_sub(&h->in_flight, 1);
    if (b) free(b->data);
    free(b);
    *state = NULL;
}

/* ---- the daemon --------------------------------------------------------------------------- */

static int listen_addr(const char *listen, struct addrinfo **ai, char *err, size_t errsz)
{
    char tmp[300], host[256];
    int port;
    snprintf(tmp, sizeof tmp, "%s", listen);
    const size_t tl = strlen(tmp);
    const int any_port = tl > 2 && !strcmp(tmp + tl - 2, ":0"); /* a free port (tests) */
    if (any_port) tmp[tl - 1] = '1';
    if (bn_parse_listen(tmp, host, sizeof host, &port)) {
        snprintf(err, errsz, "--listen '%s': expected HOST:PORT or [V6]:PORT", listen);
        return -1;
    }
    char ports[16];
    snprintf(ports, sizeof ports, "%d", any_port ? 0 : port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    const int rc = getaddrinfo(host[0] ? host : NULL, ports, &hints, ai);
    if (rc) snprintf(err, errsz, "--listen %s: %s", listen, gai_strerror(rc));
    return rc ? -1 : 0;
}

int srv_http_start(srv *s, const srv_http_opts *o, srv_http **out, int *port, char *err,
                   size_t errsz)
{
    struct addrinfo *ai = NULL;
    if (listen_addr(o->listen, &ai, err, errsz)) return -1;
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        return snprintf(err, errsz, "out of memory"), -1;
    }
    h->s = s, h->o = *o;
    h->salt = random_salt();
    unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_client_max,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, errsz, "cannot listen on %s (in use, or not an address of this machine)",
                 o->listen);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : 0;
    *out = h;
    return 0;
}

void srv_http_stop(srv_http *h)
{
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
