/* srvwatch.c - polls a `bitnet serve` for the Server screen; see srvwatch.h. */
#include "srvwatch.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "crt.h"
#include "bitnet/core.h"
#include "promtext.h"

#define HEALTH_MAX  (64 << 10)
#define METRICS_MAX (8 << 20)

/* ---- the figures of one answer ------------------------------------------------------------ */

static void add_code(sw_totals *t, int code, double n)
{
    int i = 0;
    while (i < t->n_codes && t->codes[i].code < code) i++;
    if (i < t->n_codes && t->codes[i].code == code) {
        t->codes[i].n += n;
        return;
    }
    if (t->n_codes == SW_MAX_CODES) return; /* the rarest statuses are left out */
    memmove(&t->codes[i + 1], &t->codes[i], (size_t)(t->n_codes - i) * sizeof t->codes[0]);
    t->codes[i].code = code, t->codes[i].n = n;
    t->n_codes++;
}

static void on_http(sw_totals *t, const pt_sample *s)
{
    t->http += s->value;
    const char *c = pt_label(s, "code");
    char *e;
    const long code = c ? strtol(c, &e, 10) : 0;
    if (c && !*e && code >= 400 && code <= 599) add_code(t, (int)code, s->value);
}

static void on_requests(sw_totals *t, const pt_sample *s)
{
    const char *r = pt_label(s, "result");
    t->requests += s->value;
    if (r && !strcmp(r, "stop")) t->req_stop += s->value;
    if (r && !strcmp(r, "length")) t->req_length += s->value;
    if (r && !strcmp(r, "error")) t->req_error += s->value;
}

static void on_pressure(sw_totals *t, const pt_sample *s)
{
    static const char *const stages[] = {"evict_kv", "shrink_ctx", "cpu_layers"};
    const char *st = pt_label(s, "stage");
    for (int i = 0; st && i < 3; i++)
        if (!strcmp(st, stages[i])) t->gpu_stage[i] += s->value;
}

static void on_sample(void *ud, const pt_sample *s)
{
    static const struct {
        const char *name;
        size_t off;
    } sums[] = {
            {"bitnet_slots", offsetof(sw_totals, slots)},
            {"bitnet_slots_busy", offsetof(sw_totals, slots_busy)},
            {"bitnet_requests_waiting", offsetof(sw_totals, waiting)},
            {"bitnet_http_requests_in_flight", offsetof(sw_totals, in_flight)},
            {"bitnet_generation_tokens_total", offsetof(sw_totals, gen_tokens)},
            {"bitnet_prompt_tokens_total", offsetof(sw_totals, prompt_tokens)},
            {"bitnet_requests_rejected_total", offsetof(sw_totals, rejected)},
            {"bitnet_generation_time_to_first_token_seconds_sum", offsetof(sw_totals, ttft_sum)},
            {"bitnet_generation_time_to_first_token_seconds_count",
             offsetof(sw_totals, ttft_count)},
            {"bitnet_decode_steps_total", offsetof(sw_totals, steps)},
            {"bitnet_decode_tokens_total", offsetof(sw_totals, step_tokens)},
            {"bitnet_gpu_pool_reserved_bytes", offsetof(sw_totals, gpu_reserved)},
            {"bitnet_gpu_pool_used_bytes", offsetof(sw_totals, gpu_used)},
            {"bitnet_gpu_pool_peak_used_bytes", offsetof(sw_totals, gpu_peak)},
            {"bitnet_gpu_pool_free_bytes", offsetof(sw_totals, gpu_arena_free)},
            {"bitnet_gpu_pool_largest_free_bytes", offsetof(sw_totals, gpu_largest_free)},
            {"bitnet_gpu_pool_failures_total", offsetof(sw_totals, gpu_failures)},
    };
    sw_totals *t = ud;
    const char *n = s->series.name;
    if (!strcmp(n, "bitnet_http_requests_total")) return on_http(t, s);
    if (!strcmp(n, "bitnet_generation_requests_total")) return on_requests(t, s);
    if (!strcmp(n, "bitnet_gpu_pool_pressure_total")) return on_pressure(t, s);
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) {
        if (strcmp(n, sums[i].name)) continue;
        double *v = (double *)((char *)t + sums[i].off);
        *v = isnan(*v) ? s->value : *v + s->value;
        return;
    }
}

int sw_totals_read(const char *text, size_t len, sw_totals *t, char *why, size_t whysz)
{
    memset(t, 0, sizeof *t);
    t->slots = t->slots_busy = t->waiting = t->in_flight = NAN;
    t->gpu_reserved = t->gpu_used = t->gpu_peak = t->gpu_arena_free = t->gpu_largest_free = NAN;
    t->bad_lines = pt_parse(text, len, on_sample, t, t->bad, sizeof t->bad);
    if (isnan(t->slots)) {
        if (t->bad_lines)
            snprintf(why, whysz, "not the metrics of bitnet serve (no bitnet_slots; %s)", t->bad);
        else
            snprintf(why, whysz, "not the metrics of bitnet serve (no bitnet_slots)");
        return -1;
    }
    return 0;
}

/* A counter's growth; one that went down was reset (a restarted server) and counts from 0. */
static double grown(double a, double b)
{
    return b >= a ? b - a : b;
}

void sw_rates_between(const sw_totals *a, const sw_totals *b, double dt, sw_rates *r)
{
    memset(r, 0, sizeof *r);
    r->dt = dt;
    const double d = dt > 0 ? dt : 1;
    r->tokens_s = grown(a->gen_tokens, b->gen_tokens) / d;
    r->prompt_s = grown(a->prompt_tokens, b->prompt_tokens) / d;
    r->requests_s = grown(a->requests, b->requests) / d;
    const double steps = grown(a->steps, b->steps), n = grown(a->ttft_count, b->ttft_count);
    r->batch = steps > 0 ? grown(a->step_tokens, b->step_tokens) / steps : NAN;
    r->ttft = n > 0 ? grown(a->ttft_sum, b->ttft_sum) / n : NAN;
    r->rejected = grown(a->rejected, b->rejected);
    double ea = 0, eb = 0;
    for (int i = 0; i < a->n_codes; i++) ea += a->codes[i].n;
    for (int i = 0; i < b->n_codes; i++) eb += b->codes[i].n;
    r->errors = grown(ea, eb);
}

const char *sw_state_name(sw_state s)
{
    static const char *const names[] = {"no server", "connecting", "up",   "loading",
                                        "stopping",  "down",       "error"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/* The reason a URL is refused, or NULL; in and n: the URL without blanks and trailing '/'. */
static const char *url_fault(const char *in, size_t n)
{
    if (!n) return "no URL given";
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c == 0x7f) return "blanks or control characters in the URL";
        if (c == '?' || c == '#') return "a server's URL has no '?' or '#'";
    }
    return NULL;
}

int sw_url_normalize(const char *in, char *out, size_t size, char *why, size_t whysz)
{
    while (*in == ' ' || *in == '\t') in++;
    size_t n = strlen(in);
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t')) n--;
    const char *fault = url_fault(in, n), *scheme = "http://";
    const char *sep = fault ? NULL : strstr(in, "://");
    if (sep && sep < in + n) {
        const size_t sl = (size_t)(sep - in);
        if (sl == 4 && !strncasecmp(in, "http", 4))
            scheme = "http://";
        else if (sl == 5 && !strncasecmp(in, "https", 5))
            scheme = "https://";
        else
            fault = "not an http:// or https:// URL";
        if (!fault) n -= sl + 3, in = sep + 3;
    }
    while (!fault && n && in[n - 1] == '/') n--;
    if (!fault && (!n || *in == '/')) fault = "the URL names no host";
    if (!fault && (strlen(scheme) + n + 1 > size || strlen(scheme) + n + 1 > SW_URL_MAX))
        fault = "the URL is too long";
    if (fault) {
        if (n)
            snprintf(why, whysz, "'%.*s': %s", (int)(n > 80 ? 80 : n), in, fault);
        else
            snprintf(why, whysz, "%s", fault);
        return -1;
    }
    snprintf(out, size, "%s%.*s", scheme, (int)n, in);
    return 0;
}

/* ---- the thread -------------------------------------------------------------------------- */

struct sw_watch {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int quit;
    int now;           /* poll at once */
    unsigned long gen; /* grows with each sw_set_url */
    double period;
    void (*wake)(void *);
    void *ud;
    char key[256];
    sw_view v;
    sw_totals prev; /* the last good answer, for the rates */
    int moved;      /* its figures differed from the one before */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return bn_buf_add(ud, p, size * n) ? 0 : size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&((sw_watch *)ud)->quit) ? 1 : 0; /* abandons the transfer */
}

/* GET url into body (at most max bytes): the status, or 0 with why (no answer). */
static long http_get(sw_watch *w, CURL *h, const char *url, const char *key, bn_buf *body,
                     size_t max, char *why, size_t whysz)
{
    char errbuf[CURL_ERROR_SIZE] = "", auth[300];
    struct curl_slist *hdr = NULL;
    if (key && *key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdr = curl_slist_append(NULL, auth);
    }
    bn_buf_init(body, max);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    const CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL); /* the handle outlives what these point at */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_slist_free_all(hdr);
    if (rc == CURLE_WRITE_ERROR && body->failed)
        snprintf(why, whysz, "the answer is larger than %zu bytes", max);
    else if (rc != CURLE_OK)
        snprintf(why, whysz, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return code;
}

/* The state /health's answer says. */
static sw_state health_state(long code, const bn_buf *body, const char *url, char *why,
                             size_t whysz)
{
    if (code == 200) return SW_UP;
    if (code == 503 && body->s) {
        cJSON *d = cJSON_ParseWithLength(body->s, body->len);
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "error"), "code");
        const char *s = cJSON_IsString(c) ? c->valuestring : "";
        const sw_state st = !strcmp(s, "model_loading")   ? SW_LOADING
                            : !strcmp(s, "shutting_down") ? SW_STOPPING
                                                          : SW_BAD;
        cJSON_Delete(d);
        if (st != SW_BAD) return st;
    }
    snprintf(why, whysz, "GET %.300s/health answered %ld: is this a bitnet serve URL?", url, code);
    return SW_BAD;
}

/* What one poll found, taken into the view under the lock. */
typedef struct poll_out {
    sw_state state;
    int have; /* tot read */
    sw_totals tot;
    char err[512];
} poll_out;

static void read_metrics(sw_watch *w, CURL *h, const char *url, const char *key, poll_out *o)
{
    char u[SW_URL_MAX + 16], why[400] = "";
    snprintf(u, sizeof u, "%s/metrics", url);
    bn_buf body;
    const long code = http_get(w, h, u, key, &body, METRICS_MAX, why, sizeof why);
    if (!code) {
        snprintf(o->err, sizeof o->err, "GET /metrics: %s", why);
    } else if (code == 401) {
        snprintf(o->err, sizeof o->err,
                 "GET /metrics answered 401: the server wants its API key (--server-key)");
    } else if (code != 200) {
        snprintf(o->err, sizeof o->err, "GET /metrics answered %ld", code);
        o->state = SW_BAD;
    } else if (sw_totals_read(body.s ? body.s : "", body.len, &o->tot, why, sizeof why)) {
        snprintf(o->err, sizeof o->err, "GET /metrics: %s", why);
        o->state = SW_BAD;
    } else {
        o->have = 1;
    }
    bn_buf_release(&body);
}

static void poll_once(sw_watch *w, CURL *h, const char *url, const char *key, poll_out *o)
{
    char u[SW_URL_MAX + 16], why[400] = "";
    memset(o, 0, sizeof *o);
    snprintf(u, sizeof u, "%s/health", url);
    bn_buf body;
    const long code = http_get(w, h, u, key, &body, HEALTH_MAX, why, sizeof why);
    if (!code) {
        o->state = SW_DOWN;
        snprintf(o->err, sizeof o->err, "cannot reach %.300s: %.190s", url, why);
    } else {
        o->state = health_state(code, &body, url, o->err, sizeof o->err);
    }
    bn_buf_release(&body);
    if (o->state == SW_UP || o->state == SW_LOADING || o->state == SW_STOPPING)
        read_metrics(w, h, url, key, o);
}

/* Whether the figures shown moved between two answers. */
static int moved(const sw_totals *a, const sw_totals *b)
{
    const double x[] = {a->slots,         a->slots_busy, a->waiting,  a->gen_tokens,
                        a->prompt_tokens, a->requests,   a->rejected, a->http,
                        a->steps,         a->ttft_count, a->bad_lines};
    const double y[] = {b->slots,         b->slots_busy, b->waiting,  b->gen_tokens,
                        b->prompt_tokens, b->requests,   b->rejected, b->http,
                        b->steps,         b->ttft_count, b->bad_lines};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        if (!(x[i] == y[i] || (isnan(x[i]) && isnan(y[i])))) return 1;
    return 0;
}

/* Takes a poll's findings into the view (locked). 1 when what the screen shows changed:
 * the state, the figures, or the rates (also when they fall back to zero). */
static int take(sw_watch *w, const poll_out *o, double now)
{
    sw_view *v = &w->v;
    int changed = v->state != o->state || strcmp(v->err, o->err) != 0;
    v->state = o->state;
    snprintf(v->err, sizeof v->err, "%s", o->err);
    v->poll_at = now;
    v->fails = o->err[0] ? v->fails + 1 : 0;
    if (!o->have) return changed;
    const int mv = !v->have || moved(&w->prev, &o->tot);
    changed |= mv || w->moved;
    w->moved = mv;
    if (v->have && now > v->ok_at) {
        sw_rates_between(&w->prev, &o->tot, now - v->ok_at, &v->rate);
        v->have_rates = 1;
        if (!isnan(v->rate.ttft)) v->ttft_ms = v->rate.ttft * 1e3;
        if (!isnan(v->rate.batch)) v->batch = v->rate.batch;
        bn_series_push(&v->s_tps, now, v->rate.tokens_s);
    }
    w->prev = o->tot;
    v->tot = o->tot;
    v->have = 1;
    v->ok_at = now;
    return changed || !v->have_rates;
}

static void reset_view(sw_view *v, const char *url)
{
    snprintf(v->url, sizeof v->url, "%s", url ? url : "");
    v->state = v->url[0] ? SW_WAIT : SW_IDLE;
    v->err[0] = '\0';
    v->poll_at = v->ok_at = 0;
    v->fails = 0;
    v->have = v->have_rates = 0;
    v->ttft_ms = v->batch = NAN;
    bn_series_clear(&v->s_tps);
}

/* Waits for the next poll: the period, a URL, sw_poll_now or quit (locked). */
static void wait_tick(sw_watch *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const long long ns = ts.tv_nsec + (long long)(w->period * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000), ts.tv_nsec = (long)(ns % 1000000000);
    while (!atomic_load(&w->quit) && !w->now) {
        if (!w->v.url[0])
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    w->now = 0;
}

static void *run(void *arg)
{
    sw_watch *w = arg;
    CURL *h = curl_easy_init();
    poll_out o;
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->quit)) {
        if (!w->v.url[0] || !h) {
            if (!h) snprintf(w->v.err, sizeof w->v.err, "libcurl cannot start");
            wait_tick(w);
            continue;
        }
        char url[SW_URL_MAX], key[sizeof w->key];
        snprintf(url, sizeof url, "%s", w->v.url);
        snprintf(key, sizeof key, "%s", w->key);
        const unsigned long gen = w->gen;
        pthread_mutex_unlock(&w->mu);
        poll_once(w, h, url, key, &o);
        const double now = bn_time_now();
        pthread_mutex_lock(&w->mu);
        const int changed = gen == w->gen && take(w, &o, now);
        if (changed && w->wake) w->wake(w->ud);
        wait_tick(w);
    }
    pthread_mutex_unlock(&w->mu);
    curl_easy_cleanup(h);
    return NULL;
}

int sw_new(sw_watch **out, double period_s, void (*wakefn)(void *), void *ud)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    sw_watch *w = calloc(1, sizeof *w);
    if (!w) return curl_global_cleanup(), -1;
    w->period = period_s > 0 ? period_s : 1;
    w->wake = wakefn, w->ud = ud;
    reset_view(&w->v, NULL);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    const int rc = crt_thread_start(&w->th, run, w);
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        curl_global_cleanup();
        return -1;
    }
    *out = w;
    return 0;
}

void sw_free(sw_watch *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->quit, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    curl_global_cleanup();
}

void sw_set_url(sw_watch *w, const char *url, const char *key)
{
    pthread_mutex_lock(&w->mu);
    reset_view(&w->v, url);
    snprintf(w->key, sizeof w->key, "%s", key ? key : "");
    w->gen++;
    w->now = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void sw_poll_now(sw_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->now = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

const sw_view *sw_lock(sw_watch *w)
{
    pthread_mutex_lock(&w->mu);
    return &w->v;
}

void sw_unlock(sw_watch *w)
{
    pthread_mutex_unlock(&w->mu);
}
