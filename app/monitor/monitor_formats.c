/* monitor_formats.c - the bodies the push sinks receive, built from spooled entries within each
 * API's limits (the AWS credentials are in monitor_aws.c):
 *
 *   cloudwatch      POST /  Action=PutMetricData (the Query API, form-encoded), at most 1000
 *                   datums and 1 MB per request; values finite and within CloudWatch's range
 *   datadog         POST /api/v2/series (JSON), at most 500 KB uncompressed per request
 *   datadog-events  POST /api/v1/events, one alert notification per request (title <= 100,
 *                   text <= 4000 characters)
 *   webhook         POST, the notification's JSON, one per request
 *   pushgateway     PUT /metrics/job/bitnet/instance/HOST, the exposition text (latest only)
 */
#include "monitor.h"
#include "common/json.h"

#include <curl/curl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the samples of one collection --------------------------------------------------------- */

/* The last value of a counter series (0 when it was never seen: counters start with the
 * process), then remembers v. */
static double delta(bn_monitor *m, const char *key, double v)
{
    for (size_t i = 0; i < m->n_prev; i++)
        if (strcmp(m->prev[i].key, key) == 0) {
            const double d = v >= m->prev[i].v ? v - m->prev[i].v : v; /* a reset */
            m->prev[i].v = v;
            return d;
        }
    mon_prev *p = realloc(m->prev, (m->n_prev + 1) * sizeof *p);
    if (p) {
        m->prev = p;
        if ((p[m->n_prev].key = strdup(key))) p[m->n_prev++].v = v;
    }
    return v;
}

char *mon_samples_payload(bn_monitor *m, const bn_msnap *snap, double wall)
{
    cJSON *doc = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(doc, "samples");
    cJSON_AddNumberToObject(doc, "t", floor(wall * 1000));
    cJSON_AddNumberToObject(doc, "interval", m->o.interval_s);
    for (size_t i = 0; a && i < snap->n; i++) {
        const bn_msample *s = &snap->v[i];
        if (s->kind == BN_MSAMPLE_BUCKET || !strcmp(s->family, "bitnet_build_info")) continue;
        const int counter = s->type != BN_METRIC_GAUGE;
        double v = s->value;
        if (counter) {
            char key[512];
            bn_msample_series(s, key, sizeof key);
            v = delta(m, key, v);
        }
        if (!isfinite(v)) continue;
        cJSON *o = cJSON_CreateObject(), *l = cJSON_AddObjectToObject(o, "l");
        cJSON_AddStringToObject(o, "n", s->name);
        cJSON_AddStringToObject(o, "k", counter ? "c" : "g");
        cJSON_AddNumberToObject(o, "v", v);
        for (size_t j = 0; l && j < s->n_labels; j++)
            cJSON_AddStringToObject(l, s->labels[j].name, s->labels[j].value);
        cJSON_AddItemToArray(a, o);
    }
    char *text = a ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return text;
}

void mon_request_release(mon_request *rq)
{
    free(rq->body);
    memset(rq, 0, sizeof *rq);
}

static void iso8601(double ms, char *buf, size_t size)
{
    const time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char base[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&secs, &tm)) strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)fmod(ms, 1000));
}

/* ---- CloudWatch --------------------------------------------------------------------------- */

static const char *cw_unit(const char *name, int counter)
{
    if (strstr(name, "bytes_per_second")) return "Bytes/Second";
    if (strstr(name, "_per_second")) return "Count/Second";
    if (strstr(name, "_bytes")) return "Bytes";
    if (strstr(name, "_seconds")) return "Seconds";
    return counter ? "Count" : "None";
}

/* "&k=v" with v escaped as RFC 3986 wants. */
static void form_add(bn_buf *b, const char *k, const char *v)
{
    char *e = curl_easy_escape(NULL, v, 0);
    bn_buf_printf(b, "&%s=%s", k, e ? e : "");
    if (!e) b->failed = 1;
    curl_free(e);
}

/* CloudWatch takes values within +-2^360, and rounds nothing: tiny ones become 0. */
static int cw_value(double v, double *out)
{
    if (!isfinite(v) || fabs(v) > 1e108) return -1;
    *out = fabs(v) < 1e-100 ? 0 : v;
    return 0;
}

/* Appends one entry's datums from number *k on; returns how many, or -1. */
static int cw_entry(bn_monitor *m, bn_buf *b, const bn_spool_entry *e, int k)
{
    cJSON *doc = cJSON_Parse(e->payload);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "samples"), *s;
    char when[40], key[96];
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "t");
    iso8601(cJSON_IsNumber(t) ? t->valuedouble : 0, when, sizeof when);
    int n = 0;
    cJSON_ArrayForEach(s, a)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "n"),
                    *v = cJSON_GetObjectItemCaseSensitive(s, "v"),
                    *kind = cJSON_GetObjectItemCaseSensitive(s, "k");
        double val;
        if (!cJSON_IsString(name) || !cJSON_IsNumber(v) || cw_value(v->valuedouble, &val)) continue;
        const int i = k + n++, counter = cJSON_IsString(kind) && kind->valuestring[0] == 'c';
        char num[32];
        snprintf(key, sizeof key, "MetricData.member.%d.MetricName", i);
        form_add(b, key, name->valuestring);
        snprintf(key, sizeof key, "MetricData.member.%d.Timestamp", i);
        form_add(b, key, when);
        snprintf(key, sizeof key, "MetricData.member.%d.Value", i);
        form_add(b, key, bn_metrics_fmt_double(val, num));
        snprintf(key, sizeof key, "MetricData.member.%d.Unit", i);
        form_add(b, key, cw_unit(name->valuestring, counter));
        int d = 1;
        snprintf(key, sizeof key, "MetricData.member.%d.Dimensions.member.1.Name", i);
        form_add(b, key, "host");
        snprintf(key, sizeof key, "MetricData.member.%d.Dimensions.member.1.Value", i);
        form_add(b, key, m->host);
        const cJSON *l;
        cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "l"))
        {
            /* CloudWatch takes at most 30 dimensions of non-empty values up to 1024 chars */
            if (!cJSON_IsString(l) || !l->valuestring[0] || strlen(l->valuestring) > 1024 ||
                !strcmp(l->string, "host") || d == 30)
                continue;
            d++;
            snprintf(key, sizeof key, "MetricData.member.%d.Dimensions.member.%d.Name", i, d);
            form_add(b, key, l->string);
            snprintf(key, sizeof key, "MetricData.member.%d.Dimensions.member.%d.Value", i, d);
            form_add(b, key, l->valuestring);
        }
    }
    const int ok = doc && cJSON_IsArray(a);
    cJSON_Delete(doc);
    return ok ? n : -1;
}

/* Undoes a partial append that did not fit. */
static void buf_rollback(bn_buf *b, size_t mark)
{
    b->failed = 0;
    b->len = mark;
    if (b->s) b->s[mark] = '\0';
}

static int format_cloudwatch(bn_monitor *m, const bn_spool_entry *e, size_t n, mon_request *rq,
                             size_t *used)
{
    bn_buf b;
    bn_buf_init(&b, MON_CW_MAX_BYTES);
    bn_buf_puts(&b, "Action=PutMetricData&Version=2010-08-01");
    form_add(&b, "Namespace", m->aws.ns);
    int datums = 0;
    size_t i = 0;
    for (; i < n; i++) {
        const size_t mark = b.len;
        const int k = cw_entry(m, &b, &e[i], datums + 1);
        if (b.failed || k < 0 || datums + k > MON_CW_MAX_DATUMS) {
            buf_rollback(&b, mark);
            break;
        }
        datums += k;
    }
    *used = i;
    if (i == 0 || datums == 0) { /* the first alone does not fit, or nothing to send */
        bn_buf_release(&b);
        return i == 0 ? -1 : 0;
    }
    rq->body = bn_buf_detach(&b, &rq->len);
    rq->method = "POST";
    rq->content_type = "application/x-www-form-urlencoded; charset=utf-8";
    snprintf(rq->path, sizeof rq->path, "/");
    return rq->body ? 0 : -1;
}

/* ---- Datadog -------------------------------------------------------------------------------- */

/* Datadog tags: lower case, [a-z0-9_:./-], at most 200 characters. */
static void dd_tag(char *out, size_t size, const char *k, const char *v)
{
    snprintf(out, size < 201 ? size : 201, "%s:%s", k, v);
    for (char *p = out; *p; p++) {
        const char c = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        *p = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("_:./-", c) ? c : '_';
    }
}

/* "bitnet_x" -> "bitnet.x"; others ("process_...") -> "bitnet.process_...". */
static void dd_metric(char *out, size_t size, const char *name)
{
    snprintf(out, size, "bitnet.%s", strncmp(name, "bitnet_", 7) == 0 ? name + 7 : name);
}

static cJSON *dd_series(bn_monitor *m, const cJSON *s, double t, double interval)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "n"),
                *v = cJSON_GetObjectItemCaseSensitive(s, "v"),
                *kind = cJSON_GetObjectItemCaseSensitive(s, "k");
    if (!cJSON_IsString(name) || !cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return NULL;
    const int counter = cJSON_IsString(kind) && kind->valuestring[0] == 'c';
    char metric[256], tag[256];
    dd_metric(metric, sizeof metric, name->valuestring);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "metric", metric);
    cJSON_AddNumberToObject(o, "type", counter ? 1 : 3); /* count, gauge */
    if (counter) cJSON_AddNumberToObject(o, "interval", interval < 1 ? 1 : floor(interval + 0.5));
    cJSON *pts = cJSON_AddArrayToObject(o, "points"), *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "timestamp", floor(t / 1000));
    cJSON_AddNumberToObject(p, "value", v->valuedouble);
    cJSON_AddItemToArray(pts, p);
    cJSON *tags = cJSON_AddArrayToObject(o, "tags");
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(s, "l"))
    {
        if (!cJSON_IsString(l)) continue;
        dd_tag(tag, sizeof tag, l->string, l->valuestring);
        cJSON_AddItemToArray(tags, cJSON_CreateString(tag));
    }
    cJSON *res = cJSON_AddArrayToObject(o, "resources"), *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "name", m->host);
    cJSON_AddStringToObject(r, "type", "host");
    cJSON_AddItemToArray(res, r);
    return o;
}

/* Appends ",{series}" for each sample of one entry; -1 when it does not parse. */
static int dd_entry(bn_monitor *m, bn_buf *b, const bn_spool_entry *e, int *first)
{
    cJSON *doc = cJSON_Parse(e->payload);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "samples"), *s;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "t"),
                *iv = cJSON_GetObjectItemCaseSensitive(doc, "interval");
    cJSON_ArrayForEach(s, a)
    {
        cJSON *o = dd_series(m, s, cJSON_IsNumber(t) ? t->valuedouble : 0,
                             cJSON_IsNumber(iv) ? iv->valuedouble : 0);
        char *text = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!text) continue;
        if (!*first) bn_buf_puts(b, ",");
        *first = 0;
        bn_buf_puts(b, text);
        cJSON_free(text);
    }
    const int ok = doc && cJSON_IsArray(a);
    cJSON_Delete(doc);
    return ok ? 0 : -1;
}

static int format_datadog(bn_monitor *m, const bn_spool_entry *e, size_t n, mon_request *rq,
                          size_t *used)
{
    bn_buf b;
    bn_buf_init(&b, MON_DD_MAX_BYTES - 2);
    bn_buf_puts(&b, "{\"series\":[");
    int first = 1;
    size_t i = 0;
    for (; i < n; i++) {
        const size_t mark = b.len;
        const int was_first = first;
        if (dd_entry(m, &b, &e[i], &first) || b.failed) {
            buf_rollback(&b, mark);
            first = was_first;
            break;
        }
    }
    *used = i;
    if (i == 0 || first) { /* the first alone does not fit, or nothing to send */
        bn_buf_release(&b);
        return i == 0 ? -1 : 0;
    }
    b.max += 2;
    bn_buf_puts(&b, "]}");
    rq->body = bn_buf_detach(&b, &rq->len);
    rq->method = "POST";
    rq->content_type = "application/json";
    snprintf(rq->path, sizeof rq->path, "/api/v2/series");
    return rq->body ? 0 : -1;
}

/* Cuts s to at most max bytes at a UTF-8 character boundary. */
static void utf8_cut(char *s, size_t max)
{
    if (strlen(s) <= max) return;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    s[n] = '\0';
}

static cJSON *dd_event(bn_monitor *m, const cJSON *n)
{
    const char *state = cm_json_str(n, "state", ""), *sev = cm_json_str(n, "severity", "");
    const int resolved = !strcmp(state, "resolved"),
              test = cJSON_IsTrue(cJSON_GetObjectItem(n, "test"));
    char title[256], text[MON_DD_TEXT_MAX + 512], upper[16], tag[256], num[32] = "no data";
    snprintf(upper, sizeof upper, "%s", state);
    for (char *p = upper; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    snprintf(title, sizeof title, "%s[%s] %s", test ? "[TEST] " : "", upper,
             cm_json_str(n, "rule", ""));
    utf8_cut(title, MON_DD_TITLE_MAX);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(n, "value"),
                *th = cJSON_GetObjectItemCaseSensitive(n, "threshold");
    char thr[32];
    if (cJSON_IsNumber(v)) bn_metrics_fmt_double(v->valuedouble, num);
    bn_metrics_fmt_double(cJSON_IsNumber(th) ? th->valuedouble : 0, thr);
    snprintf(text, sizeof text, "%s %s %s on %s: value %s (%s) at %s", cm_json_str(n, "metric", ""),
             cm_json_str(n, "op", ""), thr, cm_json_str(n, "host", ""), num,
             cm_json_str(n, "series", ""), cm_json_str(n, "at", ""));
    utf8_cut(text, MON_DD_TEXT_MAX);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", title);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddStringToObject(o, "alert_type",
                            resolved                   ? "success"
                            : !strcmp(sev, "critical") ? "error"
                            : !strcmp(sev, "warning")  ? "warning"
                                                       : "info");
    cJSON_AddStringToObject(o, "host", m->host);
    cJSON_AddStringToObject(o, "source_type_name", "bitnet");
    char agg[160];
    snprintf(agg, sizeof agg, "bitnet:%s", cm_json_str(n, "rule", ""));
    utf8_cut(agg, 100);
    cJSON_AddStringToObject(o, "aggregation_key", agg);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(n, "at_ms");
    if (cJSON_IsNumber(at))
        cJSON_AddNumberToObject(o, "date_happened", floor(at->valuedouble / 1000));
    cJSON *tags = cJSON_AddArrayToObject(o, "tags");
    static const char *const keys[] = {"rule", "severity", "state"};
    for (size_t i = 0; i < 3; i++) {
        dd_tag(tag, sizeof tag, keys[i], cm_json_str(n, keys[i], ""));
        cJSON_AddItemToArray(tags, cJSON_CreateString(tag));
    }
    if (test) cJSON_AddItemToArray(tags, cJSON_CreateString("test:true"));
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(n, "labels"))
    {
        if (!cJSON_IsString(l)) continue;
        dd_tag(tag, sizeof tag, l->string, l->valuestring);
        cJSON_AddItemToArray(tags, cJSON_CreateString(tag));
    }
    return o;
}

static int format_dd_event(bn_monitor *m, const bn_spool_entry *e, mon_request *rq)
{
    cJSON *n = cJSON_Parse(e->payload);
    cJSON *ev = n ? dd_event(m, n) : NULL;
    rq->body = ev ? cJSON_PrintUnformatted(ev) : NULL;
    cJSON_Delete(ev);
    cJSON_Delete(n);
    if (!rq->body) return -1;
    rq->len = strlen(rq->body);
    rq->method = "POST";
    rq->content_type = "application/json";
    snprintf(rq->path, sizeof rq->path, "/api/v1/events");
    return 0;
}

/* ---- one of them ---------------------------------------------------------------------------- */

/* The notification's "id" as an Idempotency-Key (the IETF draft's header): the same on every
 * resend, so that a receiver can drop repeats. "" when there is none fit for a header. */
static void webhook_key(const char *payload, char *key, size_t size)
{
    cJSON *doc = cJSON_Parse(payload);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    key[0] = '\0';
    const size_t n = cJSON_IsString(id) ? strlen(id->valuestring) : 0;
    if (n && n + 3 <= size &&
        strspn(id->valuestring, "0123456789abcdefghijklmnopqrstuvwxyz-") == n) {
        key[0] = '"'; /* a structured-field string, as the draft wants */
        memcpy(key + 1, id->valuestring, n);
        memcpy(key + 1 + n, "\"", 2);
    }
    cJSON_Delete(doc);
}

static int copy_body(const bn_spool_entry *e, mon_request *rq)
{
    if (!(rq->body = malloc(e->len + 1))) return -1;
    memcpy(rq->body, e->payload, e->len + 1);
    rq->len = e->len;
    return 0;
}

int mon_format(bn_monitor *m, const mon_sink *s, const bn_spool_entry *e, size_t n, mon_request *rq,
               size_t *used)
{
    memset(rq, 0, sizeof *rq);
    *used = 0;
    if (n == 0) return -1;
    if (!strcmp(s->name, "cloudwatch")) return format_cloudwatch(m, e, n, rq, used);
    if (!strcmp(s->name, "datadog")) return format_datadog(m, e, n, rq, used);
    if (!strcmp(s->name, "datadog-events")) {
        if (format_dd_event(m, e, rq)) return -1;
    } else if (!strcmp(s->name, "webhook")) {
        if (copy_body(e, rq)) return -1;
        rq->method = "POST";
        rq->content_type = "application/json";
        webhook_key(e->payload, rq->idempotency_key, sizeof rq->idempotency_key);
    } else if (!strcmp(s->name, "pushgateway")) {
        if (copy_body(e, rq)) return -1;
        rq->method = "PUT";
        rq->content_type = BN_METRICS_CONTENT_TYPE;
        char *host = curl_easy_escape(NULL, m->host, 0);
        snprintf(rq->path, sizeof rq->path, "/metrics/job/bitnet/instance/%s", host ? host : "");
        curl_free(host);
    } else {
        return -1;
    }
    *used = 1;
    return 0;
}
