/* billing.c - the billing sender: the outbox's meter events to Stripe (see billing.h). */
#include "common/billing.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "common/backoff.h"
#include "common/cli.h"
#include "common/history.h"
#include "common/http.h"

#define BACKOFF_BASE_S 1.0

/* ---- options ------------------------------------------------------------------------------ */

static int copy_opt(char *dst, size_t size, const char *key, const char *v, char *err, size_t errsz)
{
    if (snprintf(dst, size, "%s", v ? v : "") >= (int)size)
        return cm_fail(err, errsz, "%s is longer than %zu bytes", key, size - 1);
    return 0;
}

int cm_billing_opts_load(const bn_config *cfg, cm_billing_opts *o, char *err, size_t errsz)
{
    memset(o, 0, sizeof *o);
    if (copy_opt(o->event_name, sizeof o->event_name, "billing.event_name",
                 bn_config_get_str(cfg, "billing.event_name"), err, errsz) ||
        copy_opt(o->endpoint, sizeof o->endpoint, "billing.endpoint",
                 bn_config_get_str(cfg, "billing.endpoint"), err, errsz) ||
        copy_opt(o->key_env, sizeof o->key_env, "billing.key_env",
                 bn_config_get_str(cfg, "billing.key_env"), err, errsz))
        return -1;
    if (!o->event_name[0]) return 1;
    size_t n = strlen(o->endpoint);
    while (n > 8 && o->endpoint[n - 1] == '/') o->endpoint[--n] = '\0';
    if (strncmp(o->endpoint, "http://", 7) && strncmp(o->endpoint, "https://", 8))
        return cm_fail(err, errsz, "billing.endpoint '%s' is not an http:// or https:// URL",
                       o->endpoint);
    const char *key = getenv(o->key_env);
    if (!key || !*key)
        return cm_fail(err, errsz, "billing is on (billing.event_name) but $%s is not set",
                       o->key_env);
    if (copy_opt(o->key, sizeof o->key, o->key_env, key, err, errsz)) return -1;
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cm_fail(err, errsz, "$%s has a space or control character", o->key_env);
    o->timeout_s = bn_config_get_duration(cfg, "billing.timeout");
    o->backoff_max_s = bn_config_get_duration(cfg, "billing.backoff_max");
    o->interval_s = bn_config_get_duration(cfg, "billing.interval");
    const char *api = bn_config_get_str(cfg, "billing.api");
    if (api && *api && strcmp(api, "meter_events") && strcmp(api, "stream"))
        return cm_fail(err, errsz, "billing.api '%s' is neither meter_events nor stream", api);
    o->stream = api && !strcmp(api, "stream");
    if (copy_opt(o->stream_endpoint, sizeof o->stream_endpoint, "billing.stream_endpoint",
                 bn_config_get_str(cfg, "billing.stream_endpoint"), err, errsz) ||
        copy_opt(o->stripe_version, sizeof o->stripe_version, "billing.stripe_version",
                 bn_config_get_str(cfg, "billing.stripe_version"), err, errsz))
        return -1;
    n = strlen(o->stream_endpoint);
    while (n > 8 && o->stream_endpoint[n - 1] == '/') o->stream_endpoint[--n] = '\0';
    if (o->stream && strncmp(o->stream_endpoint, "http://", 7) &&
        strncmp(o->stream_endpoint, "https://", 8))
        return cm_fail(err, errsz, "billing.stream_endpoint '%s' is not an http:// or https:// URL",
                       o->stream_endpoint);
    for (const char *p = o->stripe_version; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cm_fail(err, errsz, "billing.stripe_version has a space or control character");
    return 0;
}

/* ---- one request ---------------------------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Appends s to buf (length *len, of size), encoded as application/x-www-form-urlencoded
 * wants it: unreserved characters as they are, space as '+', the rest %XX. 0 or -1. */
static int put_enc(char *buf, size_t size, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char t[4] = {(char)*p, 0, 0, 0};
        if (*p == ' ')
            t[0] = '+';
        else if (!unreserved(*p))
            t[0] = '%', t[1] = hex[*p >> 4], t[2] = hex[*p & 15];
        const size_t k = strlen(t);
        if (*len + k >= size) return -1;
        memcpy(buf + *len, t, k + 1);
        *len += k;
    }
    return 0;
}

static int put_char(char *buf, size_t size, size_t *len, char c)
{
    if (*len + 1 >= size) return -1;
    buf[(*len)++] = c;
    buf[*len] = '\0';
    return 0;
}

/* Appends "name=value", after a '&' unless it is the first, both encoded. 0 or -1. */
static int put_field(char *buf, size_t size, size_t *len, const char *name, const char *value)
{
    return (*len && put_char(buf, size, len, '&')) || put_enc(buf, size, len, name) ||
                           put_char(buf, size, len, '=') || put_enc(buf, size, len, value)
                   ? -1
                   : 0;
}

int cm_billing_form(const char *event_name, const bn_outbox_event *e, char *buf, size_t size)
{
    char value[24], ts[24];
    snprintf(value, sizeof value, "%" PRId64, e->value);
    snprintf(ts, sizeof ts, "%" PRId64, e->at_ms / 1000);
    size_t len = 0;
    if (size) buf[0] = '\0';
    return put_field(buf, size, &len, "event_name", event_name) ||
                           put_field(buf, size, &len, "payload[stripe_customer_id]", e->customer) ||
                           put_field(buf, size, &len, "payload[value]", value) ||
                           put_field(buf, size, &len, "identifier", e->event_id) ||
                           put_field(buf, size, &len, "timestamp", ts)
                   ? -1
                   : 0;
}

/* Whether body is Stripe's error for an identifier it has already ("An event already exists
 * with identifier X."): its error message names the identifier as existing. */
static int is_duplicate(const char *body, const char *event_id)
{
    cJSON *d = body ? cJSON_Parse(body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(d, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "";
    const int dup =
            strstr(msg, "already exists") && strstr(msg, "identifier") && strstr(msg, event_id);
    cJSON_Delete(d);
    return dup;
}

/* Whether a 2xx body is the meter event of event_id (not a proxy's page or garbage). */
static int is_meter_event(const char *body, const char *event_id)
{
    cJSON *d = body ? cJSON_Parse(body) : NULL;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(d, "object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "identifier");
    const int yes = cJSON_IsString(o) && !strcmp(o->valuestring, "billing.meter_event") &&
                    cJSON_IsString(id) && !strcmp(id->valuestring, event_id);
    cJSON_Delete(d);
    return yes;
}

/* What a status other than 2xx means, the same for both APIs: any 4xx but 401, 403 (the key,
 * not the events), 408, 409 and 429 refuses for good, unless Stripe-Should-Retry is true. */
static cm_bill_verdict failure_verdict(long status, int should_retry)
{
    if (should_retry == 1) return CM_BILL_RETRY;
    if (status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 &&
        status != 409 && status != 429)
        return CM_BILL_REFUSED;
    return CM_BILL_RETRY;
}

cm_bill_verdict cm_billing_verdict(long status, const char *body, const char *event_id,
                                   int should_retry)
{
    if (status >= 200 && status < 300)
        return is_meter_event(body, event_id) ? CM_BILL_ACKED : CM_BILL_RETRY;
    if (status == 400 && is_duplicate(body, event_id)) return CM_BILL_DUPLICATE;
    return failure_verdict(status, should_retry);
}

/* ---- the sender ------------------------------------------------------------------------------ */

struct cm_billing {
    cm_billing_opts o;
    char prefix[64];
    bn_db *db;
    CURL *curl;
    unsigned seed;
    int failures;    /* in a row */
    int64_t next_ms; /* no request before this time (a backoff); 0: none */
    int down;        /* logged that the endpoint fails */
    char token[512]; /* billing.api stream: the session's token ("": none yet) */
    int64_t token_until_ms; /* when it expires */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, woken; /* under mu (stop also read atomically by the transfer) */
};

static void logf_(const cm_billing *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const cm_billing *b, const char *fmt, ...)
{
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", b->prefix, line);
}

static int stopping(cm_billing *b)
{
    return __atomic_load_n(&b->stop, __ATOMIC_SEQ_CST);
}

int cm_billing_new(const cm_billing_opts *o, const char *log_prefix, cm_billing **out, char *err,
                   size_t errsz)
{
    *out = NULL;
    cm_billing *b = calloc(1, sizeof *b);
    if (!b) return cm_fail(err, errsz, "out of memory");
    b->o = *o;
    snprintf(b->prefix, sizeof b->prefix, "%s", log_prefix);
    b->seed = (unsigned)bn_wall_ms() ^ (unsigned)getpid();
    if (pthread_mutex_init(&b->mu, NULL)) return free(b), cm_fail(err, errsz, "out of resources");
    if (pthread_cond_init(&b->cv, NULL)) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return cm_fail(err, errsz, "out of resources");
    }
    if (cm_store_open_url(&b->db, o->database, err, errsz) || !(b->curl = curl_easy_init())) {
        if (b->db && !b->curl) snprintf(err, errsz, "cannot start libcurl");
        cm_billing_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void cm_billing_free(cm_billing *b)
{
    if (!b) return;
    cm_billing_stop(b);
    if (b->started) pthread_join(b->thread, NULL);
    if (b->curl) curl_easy_cleanup(b->curl);
    bn_db_close(b->db);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    memset(b->o.key, 0, sizeof b->o.key);
    memset(b->token, 0, sizeof b->token);
    free(b);
}

int64_t cm_billing_next(const cm_billing *b)
{
    return b->next_ms;
}

typedef struct answer {
    char body[2048];
    size_t len;
    int should_retry; /* Stripe-Should-Retry: 1, 0, or -1 absent */
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    const size_t bytes = size * n, room = sizeof a->body - 1 - a->len;
    const size_t k = bytes < room ? bytes : room;
    memcpy(a->body + a->len, p, k);
    a->len += k;
    a->body[a->len] = '\0';
    return bytes;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    const size_t bytes = size * n;
    static const char name[] = "stripe-should-retry:";
    if (bytes > sizeof name && !strncasecmp(p, name, sizeof name - 1)) {
        const char *v = p + sizeof name - 1;
        while (*v == ' ') v++;
        a->should_retry = !strncasecmp(v, "true", 4) ? 1 : !strncasecmp(v, "false", 5) ? 0 : -1;
    }
    return bytes;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return stopping(ud) ? 1 : 0; /* a stop aborts the transfer */
}

/* POSTs body (of type ctype) to base + path with the bearer token (and Stripe-Version when
 * version); *status 0 when no answer came (why says so). *retry_after: seconds asked. */
static void post_to(cm_billing *b, const char *base, const char *path, const char *bearer,
                    const char *version, const char *ctype, const char *body, answer *a,
                    long *status, double *retry_after, char *why, size_t whysz)
{
    CURL *c = b->curl;
    char url[600], auth[560], ct[64], ver[96];
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    snprintf(ver, sizeof ver, "Stripe-Version: %s", version ? version : "");
    struct curl_slist *h = NULL, *t;
    const char *hdrs[] = {auth, ct, "Expect:", "Accept: application/json", version ? ver : NULL};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        if (hdrs[i] && (t = curl_slist_append(h, hdrs[i]))) h = t;
    curl_easy_reset(c);
    cm_http_setup(c, url, (long)(b->o.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, b);
    const CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    memset(auth, 0, sizeof auth);
    *status = 0;
    *retry_after = 0;
    if (cc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(cc));
        return;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
#if LIBCURL_VERSION_NUM >= 0x074200
    curl_off_t ra = 0;
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        *retry_after = (double)ra;
#endif
    for (char *p = a->body; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    snprintf(why, whysz, "HTTP %ld%s%.300s", *status, a->len ? ": " : "", a->body);
}

/* POSTs form to the meter events API (v1) with the secret key; as post_to. */
static void post(cm_billing *b, const char *form, answer *a, long *status, double *retry_after,
                 char *why, size_t whysz)
{
    post_to(b, b->o.endpoint, CM_BILLING_PATH, b->o.key, NULL,
            "application/x-www-form-urlencoded", form, a, status, retry_after, why, whysz);
}

/* ---- sending ------------------------------------------------------------------------------ */

static int store_failed(cm_billing *b, const char *what)
{
    logf_(b, "%s: %s", what, bn_db_errmsg(b->db));
    return -1;
}

static void delivered(cm_billing *b)
{
    if (b->down) logf_(b, "delivering again");
    b->down = 0;
    b->failures = 0;
    b->next_ms = 0;
}

/* After a failure that may pass: the event is due again after the backoff, and so is the
 * sender. */
static bn_status backoff(cm_billing *b, const bn_outbox_event *e, double retry_after,
                         const char *why)
{
    b->failures++;
    double wait = cm_backoff_s(b->failures, BACKOFF_BASE_S, b->o.backoff_max_s, &b->seed);
    if (retry_after > wait)
        wait = retry_after < b->o.backoff_max_s ? retry_after : b->o.backoff_max_s;
    b->next_ms = bn_wall_ms() + (int64_t)(wait * 1000);
    if (!b->down && !stopping(b)) {
        bn_outbox_counts c;
        const int64_t n = bn_db_outbox_counts(b->db, bn_wall_ms(), &c) == BN_OK ? c.pending : -1;
        logf_(b,
              "cannot deliver meter events (%s); %" PRId64 " waiting in the outbox, retrying "
              "with backoff",
              why, n);
        b->down = 1;
    }
    return bn_db_outbox_retry(b->db, e->id, stopping(b) ? bn_wall_ms() : b->next_ms, why);
}

/* Events claimed at once: one claim and one acknowledgement (a transaction each) for up to
 * this many requests to Stripe, instead of two for each; with billing.api stream, one request
 * of up to CM_BILLING_STREAM_MAX */
#define BATCH     16
#define BATCH_MAX CM_BILLING_STREAM_MAX

/* A batch's events acknowledged so far, not yet recorded */
typedef struct acks {
    int64_t id[BATCH_MAX];
    int dup[BATCH_MAX];
    size_t n;
} acks;

/* Records the acknowledgements in *k (one transaction); 0, or -1 when the store fails. */
static int flush_acks(cm_billing *b, acks *k)
{
    const bn_status s = bn_db_outbox_ack_n(b->db, k->id, k->dup, k->n, bn_wall_ms());
    k->n = 0;
    return s == BN_OK ? 0 : store_failed(b, "the billing outbox");
}

/* Sends e and records what came of it (an acknowledgement into *k, recorded later): 1 go on;
 * 0 wait (a failure that may pass, or a stop); -1 the store failed. */
static int send_one(cm_billing *b, const bn_outbox_event *e, acks *k, cm_billing_stats *st)
{
    char form[1024], why[400];
    if (cm_billing_form(b->o.event_name, e, form, sizeof form)) {
        st->refused++;
        return bn_db_outbox_fail(b->db, e->id, "the event does not fit a request") == BN_OK
                       ? 1
                       : store_failed(b, "the billing outbox");
    }
    answer a = {.len = 0, .should_retry = -1};
    long status;
    double retry_after;
    post(b, form, &a, &status, &retry_after, why, sizeof why);
    const cm_bill_verdict v =
            status ? cm_billing_verdict(status, a.body, e->event_id, a.should_retry)
                   : CM_BILL_RETRY;
    bn_status s = BN_OK;
    if (v == CM_BILL_ACKED || v == CM_BILL_DUPLICATE) {
        *(v == CM_BILL_ACKED ? &st->acked : &st->duplicates) += 1;
        delivered(b);
        k->id[k->n] = e->id, k->dup[k->n++] = v == CM_BILL_DUPLICATE;
    } else if (v == CM_BILL_REFUSED) {
        st->refused++;
        logf_(b, "meter event %s (tenant %" PRId64 ", %" PRId64 " tokens) refused: %s", e->event_id,
              e->tenant_id, e->value, why);
        s = bn_db_outbox_fail(b->db, e->id, why);
    } else {
        st->retried++;
        s = backoff(b, e, retry_after, why);
    }
    if (s != BN_OK) return store_failed(b, "the billing outbox");
    return v == CM_BILL_RETRY ? 0 : 1;
}

/* Sends the n events e[] claimed until lease_end (ms), one after another, while a request
 * still ends (billing.timeout) with a timeout to spare before the lease does; gives back those
 * not sent (a failure that may pass, a stop, the lease running short) and records the
 * acknowledgements. As send_one. */
static int send_batch(cm_billing *b, const bn_outbox_event *e, size_t n, int64_t lease_end,
                      cm_billing_stats *st)
{
    const int64_t timeout_ms = (int64_t)(b->o.timeout_s * 1000);
    acks k = {.n = 0};
    int r = 1;
    size_t i = 0;
    for (; i < n && r == 1; i++) {
        if (stopping(b) || bn_wall_ms() + 2 * timeout_ms > lease_end) {
            r = !stopping(b); /* the lease short: the rest given back, claimed again */
            break;
        }
        r = send_one(b, &e[i], &k, st);
    }
    int64_t back[BATCH_MAX];
    size_t nb = 0;
    for (; i < n; i++) back[nb++] = e[i].id;
    if (k.n && flush_acks(b, &k)) return -1;
    if (r >= 0 && bn_db_outbox_release(b->db, back, nb) != BN_OK)
        return store_failed(b, "the billing outbox");
    return r;
}

/* ---- the meter event stream (billing.api stream) ---------------------------------------- */

static void rfc3339(int64_t ms, char out[48])
{
    const time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* "YYYY-MM-DDTHH:MM:SS[.fraction]Z" as ms since the epoch; -1 when s is not that. */
static int64_t parse_rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return -1;
    int64_t ms = 0, scale = 100;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) ms += (*p - '0') * scale;
    if (strcmp(p, "Z")) return -1;
    const time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}

char *cm_billing_stream_body(const char *event_name, const bn_outbox_event *e, size_t n)
{
    cJSON *d = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(d, "events");
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char ts[48], value[24];
        rfc3339(e[i].at_ms, ts);
        snprintf(value, sizeof value, "%" PRId64, e[i].value);
        cJSON *ev = cJSON_CreateObject(), *pl = cJSON_CreateObject();
        ok = ev && pl && cJSON_AddStringToObject(ev, "identifier", e[i].event_id) &&
             cJSON_AddStringToObject(ev, "event_name", event_name) &&
             cJSON_AddStringToObject(ev, "timestamp", ts) &&
             cJSON_AddStringToObject(pl, "stripe_customer_id", e[i].customer) &&
             cJSON_AddStringToObject(pl, "value", value);
        if (ok) cJSON_AddItemToObject(ev, "payload", pl), pl = NULL;
        if (ok) ok = cJSON_AddItemToArray(arr, ev), ev = NULL;
        cJSON_Delete(pl);
        cJSON_Delete(ev);
    }
    char *body = ok ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    return body;
}

/* A session token good for a while yet in b->token (made with the secret key when there is
 * none, or it expires within a minute and two requests): 0, or -1 (why says so). */
static int session(cm_billing *b, double *retry_after, char *why, size_t whysz)
{
    const int64_t now = bn_wall_ms(), tmo = (int64_t)(b->o.timeout_s * 1000);
    if (b->token[0] && now + 2 * tmo + 60000 < b->token_until_ms) return 0;
    b->token[0] = '\0';
    answer a = {.len = 0, .should_retry = -1};
    long status;
    post_to(b, b->o.endpoint, CM_BILLING_SESSION_PATH, b->o.key, b->o.stripe_version,
            "application/json", "{}", &a, &status, retry_after, why, whysz);
    if (status < 200 || status >= 300) return -1;
    cJSON *d = cJSON_Parse(a.body);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(d, "authentication_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(d, "expires_at");
    const int ok = cJSON_IsString(tok) && *tok->valuestring &&
                   strlen(tok->valuestring) < sizeof b->token;
    if (ok) {
        snprintf(b->token, sizeof b->token, "%s", tok->valuestring);
        const int64_t until = cJSON_IsString(exp) ? parse_rfc3339(exp->valuestring) : -1;
        b->token_until_ms = until > 0 ? until : now + 10 * 60000; /* Stripe's: 15 minutes */
    } else {
        snprintf(why, whysz, "HTTP %ld: no authentication_token in the meter event session",
                 status);
    }
    cJSON_Delete(d);
    memset(a.body, 0, sizeof a.body); /* the token */
    return ok ? 0 : -1;
}

/* What a stream request's answer means for its events (all alike: Stripe validates each later);
 * *expired: the session token ran out (a new one, and the same request again). */
static cm_bill_verdict stream_verdict(long status, const char *body, int should_retry,
                                      int *expired)
{
    *expired = status == 401 && strstr(body, "billing_meter_event_session_expired");
    if (status >= 200 && status < 300) { /* its answer is an object ({}), not a proxy's page */
        cJSON *d = cJSON_Parse(body);
        const int obj = cJSON_IsObject(d);
        cJSON_Delete(d);
        return obj ? CM_BILL_ACKED : CM_BILL_RETRY;
    }
    return failure_verdict(status, should_retry);
}

/* Sends e[0..n) in one request to the meter event stream and records what came of it (all
 * acknowledged together; or all refused; or all due again after the backoff): as send_one. */
static int send_stream(cm_billing *b, const bn_outbox_event *e, size_t n, cm_billing_stats *st)
{
    char why[400] = "out of memory";
    double retry_after = 0;
    cm_bill_verdict v = CM_BILL_RETRY;
    char *body = cm_billing_stream_body(b->o.event_name, e, n);
    for (int tries = 0; body && tries < 2; tries++) {
        if (session(b, &retry_after, why, sizeof why)) break; /* the key's, not the events' */
        answer a = {.len = 0, .should_retry = -1};
        long status;
        int expired = 0;
        post_to(b, b->o.stream_endpoint, CM_BILLING_STREAM_PATH, b->token, b->o.stripe_version,
                "application/json", body, &a, &status, &retry_after, why, sizeof why);
        v = status ? stream_verdict(status, a.body, a.should_retry, &expired) : CM_BILL_RETRY;
        if (!expired) break;
        b->token[0] = '\0'; /* a new session, and once more */
    }
    cJSON_free(body);
    bn_status s = BN_OK;
    if (v == CM_BILL_ACKED) {
        st->acked += (int64_t)n;
        delivered(b);
        acks k = {.n = 0};
        for (size_t i = 0; i < n; i++) k.id[k.n] = e[i].id, k.dup[k.n++] = 0;
        return flush_acks(b, &k) ? -1 : 1;
    }
    if (v == CM_BILL_REFUSED) {
        st->refused += (int64_t)n;
        logf_(b, "%zu meter events (the first %s, tenant %" PRId64 ") refused: %s", n,
              e[0].event_id, e[0].tenant_id, why);
        for (size_t i = 0; s == BN_OK && i < n; i++) s = bn_db_outbox_fail(b->db, e[i].id, why);
    } else {
        st->retried += (int64_t)n;
        s = backoff(b, &e[0], retry_after, why);
        for (size_t i = 1; s == BN_OK && i < n; i++)
            s = bn_db_outbox_retry(b->db, e[i].id, stopping(b) ? bn_wall_ms() : b->next_ms, why);
    }
    if (s != BN_OK) return store_failed(b, "the billing outbox");
    return v == CM_BILL_RETRY ? 0 : 1;
}

int cm_billing_pass(cm_billing *b, cm_billing_stats *st)
{
    st->waiting = 0;
    const int64_t lease_ms = (int64_t)(b->o.timeout_s * 1000) * 2 + 30000;
    while (!stopping(b)) {
        if (b->next_ms > bn_wall_ms()) {
            st->waiting = 1;
            return 0;
        }
        bn_outbox_event e[BATCH_MAX];
        size_t n;
        const int64_t now = bn_wall_ms();
        if (bn_db_outbox_claim(b->db, now, lease_ms, e, b->o.stream ? BATCH_MAX : BATCH, &n) !=
            BN_OK)
            return store_failed(b, "the billing outbox");
        if (!n) {
            b->next_ms = 0; /* the backoff is over (its event went another way meanwhile) */
            return 0;
        }
        const int r = b->o.stream ? send_stream(b, e, n, st) : send_batch(b, e, n, now + lease_ms, st);
        if (r <= 0) {
            st->waiting = r == 0 && !stopping(b);
            return r;
        }
    }
    return 0;
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void wait_for_work(cm_billing *b)
{
    int64_t until = bn_wall_ms() + (int64_t)(b->o.interval_s * 1000);
    if (b->next_ms > bn_wall_ms() && b->next_ms < until) until = b->next_ms; /* a backoff */
    struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
    pthread_mutex_lock(&b->mu);
    while (!b->stop && !b->woken && bn_wall_ms() < until)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT) break;
    b->woken = 0;
    pthread_mutex_unlock(&b->mu);
}

static void *run(void *ud)
{
    cm_billing *b = ud;
    while (!stopping(b)) {
        cm_billing_stats st = {0};
        cm_billing_pass(b, &st);
        wait_for_work(b);
    }
    return NULL;
}

int cm_billing_start(cm_billing *b)
{
    if (b->started) return 0;
    if (pthread_create(&b->thread, NULL, run, b)) return -1;
    b->started = 1;
    return 0;
}

void cm_billing_wake(cm_billing *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->woken = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void cm_billing_stop(cm_billing *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    __atomic_store_n(&b->stop, 1, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}
