/* monitor_sinks.c - delivering the spool: the push sinks, a sender thread for each, libcurl
 * with timeouts on every request, and exponential backoff with jitter when a sink is down. A
 * sink never blocks anything but its own sender: the collector only adds to the spool, the
 * endpoint only reads the registry, the other sinks have senders of their own, and a stop
 * request aborts a transfer in progress. */
#include "monitor.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "common/backoff.h"
#include "common/http.h"

#define BATCH        64  /* entries peeked at once */
#define ROUNDS_MAX   256 /* requests per sink before looking at the others */
#define BACKOFF_BASE 1.0 /* seconds after the first failure */

/* The oldest entries each sink takes, seconds, with a minute to spare for the request: Datadog
 * refuses points older than an hour and events older than 18 hours; CloudWatch timestamps up
 * to two weeks old. */
static const struct {
    const char *sink;
    double max_age_s;
    const char *limit;
} age_limits[] = {
        {"datadog", 3600 - 60, "an hour"},
        {"datadog-events", 18 * 3600 - 60, "18 hours"},
        {"cloudwatch", 14 * 86400 - 60, "two weeks"},
};

static int get_stop(bn_monitor *m)
{
    return __atomic_load_n(&m->stop, __ATOMIC_SEQ_CST);
}

/* ---- setup --------------------------------------------------------------------------------- */

static int add_sink(bn_monitor *m, const char *name, mon_kind kind, const char *url, char *err,
                    size_t errsz)
{
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        snprintf(err, errsz, "%s: '%s' is not an http:// or https:// URL", name, url);
        return -1;
    }
    mon_sink *s = &m->sinks[m->n_sinks++];
    memset(s, 0, sizeof *s);
    s->m = m;
    s->name = name;
    s->kind = kind;
    if (snprintf(s->url, sizeof s->url, "%s", url) >= (int)sizeof s->url) {
        snprintf(err, errsz, "%s: the URL is too long", name);
        return -1;
    }
    size_t n = strlen(s->url);
    while (n > 8 && s->url[n - 1] == '/') s->url[--n] = '\0';
    return 0;
}

int mon_sinks_setup(bn_monitor *m, char *err, size_t errsz)
{
    const bn_monitor_opts *o = &m->o;
    char url[1024];
    /* the credentials and keys are loaded by the settings check (monitor.c) */
    if (o->cloudwatch) {
        if (o->cw_endpoint && *o->cw_endpoint)
            snprintf(url, sizeof url, "%s", o->cw_endpoint);
        else
            snprintf(url, sizeof url, "https://monitoring.%s.amazonaws.com", m->aws.region);
        if (add_sink(m, "cloudwatch", MON_SAMPLES, url, err, errsz)) return -1;
    }
    if (o->datadog) {
        if (o->dd_endpoint && *o->dd_endpoint)
            snprintf(url, sizeof url, "%s", o->dd_endpoint);
        else
            snprintf(url, sizeof url, "https://api.%s",
                     o->dd_site && *o->dd_site ? o->dd_site : "datadoghq.com");
        if (add_sink(m, "datadog", MON_SAMPLES, url, err, errsz) ||
            add_sink(m, "datadog-events", MON_NOTIFICATION, url, err, errsz))
            return -1;
    }
    if (o->webhook && add_sink(m, "webhook", MON_NOTIFICATION, o->webhook, err, errsz)) return -1;
    if (o->pushgateway && add_sink(m, "pushgateway", MON_PUSH, o->pushgateway, err, errsz))
        return -1;
    return 0;
}

void mon_sinks_release(bn_monitor *m)
{
    for (int i = 0; i < m->n_sinks; i++)
        if (m->sinks[i].curl) curl_easy_cleanup(m->sinks[i].curl);
    m->n_sinks = 0;
}

/* ---- one request --------------------------------------------------------------------------- */

typedef struct reply {
    char text[1024];
    size_t len;
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    const size_t bytes = size * n;
    const size_t room = sizeof r->text - 1 - r->len;
    const size_t k = bytes < room ? bytes : room;
    memcpy(r->text + r->len, p, k);
    r->len += k;
    r->text[r->len] = '\0';
    return bytes;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return get_stop(ud) ? 1 : 0; /* a stop request aborts the transfer */
}

static struct curl_slist *headers_for(bn_monitor *m, const mon_sink *s, const mon_request *rq)
{
    char h[2300];
    struct curl_slist *l = NULL, *t;
    const int aws = !strcmp(s->name, "cloudwatch");
    snprintf(h, sizeof h, "Content-Type: %s", rq->content_type);
    l = curl_slist_append(l, h);
    /* No 100-continue round trip. Not for AWS: libcurl would sign the empty header it then
     * leaves out, and the signature would not match. */
    if (l && !aws && (t = curl_slist_append(l, "Expect:"))) l = t;
    if (l && !aws && (t = curl_slist_append(l, "Accept: application/json"))) l = t;
    if (l && !strncmp(s->name, "datadog", 7)) {
        snprintf(h, sizeof h, "DD-API-KEY: %s", m->dd_key);
        if ((t = curl_slist_append(l, h))) l = t;
    }
    if (l && aws && m->aws.token[0]) {
        snprintf(h, sizeof h, "X-Amz-Security-Token: %s", m->aws.token);
        if ((t = curl_slist_append(l, h))) l = t;
    }
    if (l && rq->idempotency_key[0]) {
        snprintf(h, sizeof h, "Idempotency-Key: %s", rq->idempotency_key);
        if ((t = curl_slist_append(l, h))) l = t;
    }
    return l;
}

/* A sink that answers after our timeout may well have taken the request: each retry would
 * deliver it again. So after a timeout with the request sent whole, the next one waits twice
 * as long, up to 4 times --timeout; back to --timeout once an answer comes within it. */
static void adapt_timeout(bn_monitor *m, mon_sink *s, CURL *c, CURLcode cc, const mon_request *rq)
{
    const double base = m->o.timeout_s;
    curl_off_t sent = 0;
    double took = 0;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        if (curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK &&
            sent == (curl_off_t)rq->len && s->timeout < 4 * base) {
            s->timeout = s->timeout * 2 < 4 * base ? s->timeout * 2 : 4 * base;
            mon_log(m, "%s: no answer within the timeout; waiting up to %gs from now on", s->name,
                    s->timeout);
        }
    } else if (cc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &took) == CURLE_OK &&
               took < base) {
        s->timeout = base;
    }
}

/* The <Code> of an AWS Query API error response ("" when there is none). */
static void aws_code(const char *body, char *code, size_t size)
{
    const char *p = strstr(body, "<Code>"), *e = p ? strstr(p + 6, "</Code>") : NULL;
    const size_t n = e ? (size_t)(e - p - 6) : 0;
    snprintf(code, size, "%.*s", (int)(n < size ? n : size - 1), p ? p + 6 : "");
}

/* AWS errors (HTTP 400 among them) that say "not now" or "not with these credentials", not
 * "never with this payload": throttling, the service, the clock, the signature or token. */
static int aws_transient(const char *code)
{
    static const char *const codes[] = {
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottled",
            "RequestThrottledException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "InternalFailure",
            "InternalError",
            "RequestExpired",
            "RequestTimeout",
            "RequestTimeTooSkewed",
            "ExpiredToken",
            "ExpiredTokenException",
            "IncompleteSignature",
            "SignatureDoesNotMatch",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "MissingAuthenticationToken",
            "AccessDenied",
            "AccessDeniedException",
            "OptInRequired",
    };
    if (!*code) return 1; /* a 400 with no AWS error in it (a proxy?): keep the data */
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!strcmp(code, codes[i])) return 1;
    return 0;
}

/* What an answer means: 0 delivered (2xx); 1 rejected for good (this payload: 400, 413, 422,
 * but not an AWS 400 that is throttling or about the credentials); -1 try again later
 * (throttled: 429, 408, 5xx; any other status: the sink or its setup, not the data). */
static int verdict(const mon_sink *s, long status, const char *body)
{
    if (status >= 200 && status < 300) return 0;
    if (status == 400 && !strcmp(s->name, "cloudwatch")) {
        char code[64];
        aws_code(body, code, sizeof code);
        return aws_transient(code) ? -1 : 1;
    }
    return status == 400 || status == 413 || status == 422 ? 1 : -1;
}

/* 0: delivered; 1: rejected for good; -1: try again (see verdict). *retry_after: the seconds
 * the sink asked to wait (Retry-After), else 0. */
static int http_send(bn_monitor *m, mon_sink *s, const mon_request *rq, char *why, size_t whysz,
                     double *retry_after)
{
    *retry_after = 0;
    /* credentials that expire (web identity, container, instance) are fetched again when due */
    if (!strcmp(s->name, "cloudwatch") && mon_aws_refresh(&m->aws, why, whysz)) return -1;
    if (!s->curl && !(s->curl = curl_easy_init())) {
        snprintf(why, whysz, "cannot start libcurl");
        return -1;
    }
    CURL *c = s->curl;
    curl_easy_reset(c);
    char url[1600], sig[128];
    snprintf(url, sizeof url, "%s%s", s->url, rq->path);
    struct curl_slist *hdr = headers_for(m, s, rq);
    reply r = {.len = 0};
    if (s->timeout < m->o.timeout_s) s->timeout = m->o.timeout_s;
    cm_http_setup(c, url, (long)(s->timeout * 1000));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len);
    if (strcmp(rq->method, "POST")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, m);
    if (!strcmp(s->name, "cloudwatch")) {
        snprintf(sig, sizeof sig, "aws:amz:%s:monitoring", m->aws.region);
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sig);
        curl_easy_setopt(c, CURLOPT_USERNAME, m->aws.key_id);
        curl_easy_setopt(c, CURLOPT_PASSWORD, m->aws.secret);
    }
    const CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
#if LIBCURL_VERSION_NUM >= 0x074200
    curl_off_t ra = 0;
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        *retry_after = (double)ra;
#endif
    curl_slist_free_all(hdr);
    adapt_timeout(m, s, c, cc, rq);
    if (cc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(cc));
        return -1;
    }
    const int v = verdict(s, status, r.text);
    if (v == 0) return 0;
    for (char *p = r.text; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    snprintf(why, whysz, "HTTP %ld%s%.200s", status, r.len ? ": " : "", r.text);
    return v;
}

/* ---- draining a sink ------------------------------------------------------------------------ */

static void count_request(bn_monitor *m, const mon_sink *s, const char *result)
{
    const char *lv[] = {s->name, result};
    bn_metric_add(m->f.sink_requests, lv, 1);
    if (!strcmp(result, "ok")) {
        const char *sl[] = {s->name};
        bn_metric_set(m->f.sink_last_ok, sl, mon_wall());
    }
}

static double backoff(bn_monitor *m, int failures)
{
    pthread_mutex_lock(&m->mu);
    const double d = cm_backoff_s(failures, BACKOFF_BASE, m->o.backoff_max_s, &m->rng);
    pthread_mutex_unlock(&m->mu);
    return d;
}

static void ids_of(const bn_spool_entry *e, size_t n, int64_t *ids)
{
    for (size_t i = 0; i < n; i++) ids[i] = e[i].id;
}

static void on_failure(bn_monitor *m, mon_sink *s, const char *why, const int64_t *ids, size_t n,
                       double retry_after)
{
    bn_spool_failed(m->spool, ids, n, why);
    count_request(m, s, "error");
    mon_error(m, "sink");
    s->failures++;
    double wait = backoff(m, s->failures);
    if (retry_after > wait)
        wait = retry_after < m->o.backoff_max_s ? retry_after : m->o.backoff_max_s;
    s->next_try = mon_now() + wait;
    snprintf(s->last_error, sizeof s->last_error, "%s", why);
    if (!s->down)
        mon_log(m,
                "%s: cannot deliver (%s); keeping %lld entries in the spool, retrying with "
                "backoff",
                s->name, why, (long long)bn_spool_count(m->spool, s->name));
    s->down = 1;
}

static void on_success(bn_monitor *m, mon_sink *s, const int64_t *ids, size_t n)
{
    bn_spool_done(m->spool, ids, n);
    count_request(m, s, "ok");
    if (s->down) mon_log(m, "%s: delivering again after %d failed attempts", s->name, s->failures);
    s->down = 0;
    s->failures = 0;
    s->next_try = 0;
    if (s->batch < BATCH) s->batch = s->batch * 2 < BATCH ? s->batch * 2 : BATCH;
}

static void count_dropped(bn_monitor *m, const mon_sink *s, const char *reason, size_t n)
{
    const char *lv[] = {s->name, reason};
    bn_metric_add(m->f.sink_dropped, lv, (double)n);
}

/* A permanent rejection of e[0..used): a batch is sent again in halves until the entries at
 * fault stand alone; only those are dropped (counted, logged once each). */
static void on_rejected(bn_monitor *m, mon_sink *s, const bn_spool_entry *e, const int64_t *ids,
                        size_t used, const char *why)
{
    count_request(m, s, "rejected");
    if (used > 1) {
        if (s->batch == BATCH)
            mon_log(m,
                    "%s: %zu entries rejected (%s); sending them in smaller batches to find "
                    "the ones at fault",
                    s->name, used, why);
        s->batch = used / 2;
        return;
    }
    mon_log(m, "%s: spooled entry %lld (of %lld ms) rejected for good (%s); dropped", s->name,
            (long long)e[0].id, (long long)e[0].created_ms, why);
    bn_spool_drop(m->spool, ids, 1);
    count_dropped(m, s, "rejected", 1);
}

/* One request from the oldest entries of s. 1: sent (or nothing to send), go on; 0: the spool
 * of s is empty; -1: failed (backing off). */
/* Drops the leading entries of e[0..n) that s would refuse as too old (Datadog, CloudWatch):
 * counted and logged once per batch, rather than replayed forever. Returns how many. */
static size_t drop_too_old(bn_monitor *m, mon_sink *s, const bn_spool_entry *e, size_t n)
{
    size_t k = 0, a = 0, na = sizeof age_limits / sizeof age_limits[0];
    while (a < na && strcmp(age_limits[a].sink, s->name)) a++;
    if (a == na) return 0;
    const double now_ms = mon_wall() * 1000;
    while (k < n && now_ms - (double)e[k].created_ms > age_limits[a].max_age_s * 1000) k++;
    if (k == 0) return 0;
    int64_t ids[BATCH];
    ids_of(e, k, ids);
    bn_spool_drop(m->spool, ids, k);
    count_dropped(m, s, "too_old", k);
    mon_log(m,
            "%s: dropped %zu spooled entr%s older than %s accepts (%s), the oldest of %.0f s "
            "ago",
            s->name, k, k == 1 ? "y" : "ies", s->name, age_limits[a].limit,
            (now_ms - (double)e[0].created_ms) / 1000);
    return k;
}

static int drain_step(bn_monitor *m, mon_sink *s)
{
    bn_spool_entry *e;
    size_t n, used;
    int64_t ids[BATCH];
    if (s->batch == 0 || s->batch > BATCH) s->batch = BATCH;
    if (bn_spool_peek(m->spool, s->name, s->batch, &e, &n)) {
        mon_error(m, "spool");
        return -1;
    }
    if (n == 0) return 0;
    if (drop_too_old(m, s, e, n)) {
        bn_spool_entries_free(e, n);
        return 1;
    }
    mon_request rq;
    char why[300];
    double retry_after;
    int rc = mon_format(m, s, e, n, &rq, &used);
    ids_of(e, used ? used : 1, ids);
    if (rc) { /* the oldest entry can never be sent: drop it rather than block the sink */
        mon_log(m, "%s: dropping spooled entry %lld: it cannot be formatted within the limits",
                s->name, (long long)e[0].id);
        bn_spool_drop(m->spool, ids, 1);
        count_request(m, s, "rejected");
        count_dropped(m, s, "unsendable", 1);
        rc = 1;
    } else if (!rq.body) {
        bn_spool_done(m->spool, ids, used);
        rc = 1;
    } else if ((rc = http_send(m, s, &rq, why, sizeof why, &retry_after)) == 0) {
        on_success(m, s, ids, used);
        rc = 1;
    } else if (rc == 1) {
        on_rejected(m, s, e, ids, used, why);
    } else {
        on_failure(m, s, why, ids, used, retry_after);
    }
    mon_request_release(&rq);
    bn_spool_entries_free(e, n);
    return rc;
}

/* Sends until the spool of s is empty, a request fails, the stop flag or s->deadline; 0 when
 * empty. */
static int drain(bn_monitor *m, mon_sink *s)
{
    for (int round = 0; round < ROUNDS_MAX && !get_stop(m); round++) {
        if (s->deadline > 0 && mon_now() >= s->deadline) return 1;
        const int rc = drain_step(m, s);
        if (rc <= 0) return rc;
    }
    return 1;
}

static void *flush_one(void *ud)
{
    mon_sink *s = ud;
    s->flush_rc = drain(s->m, s);
    return NULL;
}

int mon_sinks_flush(bn_monitor *m, double deadline, int skip_down)
{
    int left = 0;
    for (int i = 0; i < m->n_sinks; i++) {
        mon_sink *s = &m->sinks[i];
        s->flush_rc = 0;
        s->started = 0;
        if (skip_down && s->down) {
            left |= bn_spool_count(m->spool, s->name) != 0;
            continue;
        }
        s->deadline = deadline;
        if (pthread_create(&s->thread, NULL, flush_one, s) == 0)
            s->started = 1;
        else
            flush_one(s); /* no thread: this one in turn */
    }
    for (int i = 0; i < m->n_sinks; i++) {
        mon_sink *s = &m->sinks[i];
        if (s->started) pthread_join(s->thread, NULL);
        s->started = 0;
        s->deadline = 0;
        if (s->flush_rc != 0) left = 1;
    }
    mon_update_sink_metrics(m);
    return left;
}

int mon_send_one(bn_monitor *m, mon_sink *s, const char *payload, char *why, size_t whysz)
{
    bn_spool_entry e = {.id = 0, .payload = (char *)payload, .len = strlen(payload)};
    mon_request rq;
    size_t used;
    if (mon_format(m, s, &e, 1, &rq, &used) || !rq.body) {
        snprintf(why, whysz, "cannot be formatted");
        return -1;
    }
    double retry_after;
    const int rc = http_send(m, s, &rq, why, whysz, &retry_after);
    count_request(m, s, rc == 0 ? "ok" : rc == 1 ? "rejected" : "error");
    mon_request_release(&rq);
    return rc == 0 ? 0 : -1;
}

/* ---- the sender thread ------------------------------------------------------------------------
 */

/* The sender of one sink: drains its spool, backs off after a failure, sleeps until the
 * collector wakes it (or now and then: another process may spool). */
static void *sender(void *ud)
{
    mon_sink *s = ud;
    bn_monitor *m = s->m;
    while (!get_stop(m)) {
        double next = mon_now() + 5;
        if (mon_now() < s->next_try) {
            next = s->next_try < next ? s->next_try : next;
        } else {
            const int rc = drain(m, s);
            if (rc < 0 && s->next_try < next) next = s->next_try;
            if (rc > 0) next = mon_now(); /* more to send */
        }
        mon_update_sink_metrics(m);
        pthread_mutex_lock(&m->mu);
        while (!m->stop && !s->wake && mon_now() < next) {
            const double at = mon_wall() + (next - mon_now());
            struct timespec ts = {.tv_sec = (time_t)at, .tv_nsec = (long)((at - floor(at)) * 1e9)};
            pthread_cond_timedwait(&s->cv, &m->mu, &ts);
        }
        s->wake = 0;
        pthread_mutex_unlock(&m->mu);
    }
    return NULL;
}

int mon_sender_start(bn_monitor *m)
{
    for (int i = 0; i < m->n_sinks; i++) {
        mon_sink *s = &m->sinks[i];
        pthread_cond_init(&s->cv, NULL);
        if (pthread_create(&s->thread, NULL, sender, s)) {
            pthread_cond_destroy(&s->cv);
            mon_sender_stop(m);
            return -1;
        }
        s->started = 1;
        m->worker_started = 1;
    }
    return 0;
}

void mon_sender_wake(bn_monitor *m)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_sinks; i++)
        if (m->sinks[i].started) {
            m->sinks[i].wake = 1;
            pthread_cond_signal(&m->sinks[i].cv);
        }
    pthread_mutex_unlock(&m->mu);
}

void mon_sender_stop(bn_monitor *m)
{
    if (!m->worker_started) return;
    pthread_mutex_lock(&m->mu);
    __atomic_store_n(&m->stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < m->n_sinks; i++)
        if (m->sinks[i].started) pthread_cond_signal(&m->sinks[i].cv);
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < m->n_sinks; i++) {
        mon_sink *s = &m->sinks[i];
        if (!s->started) continue;
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        s->started = 0;
    }
    m->worker_started = 0;
    __atomic_store_n(&m->stop, 0, __ATOMIC_SEQ_CST); /* transfers after this one may run */
}
