/* alerts.c - alert rules and their state machine; see alerts.h. */
#include "alerts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

struct bn_alerts {
    size_t n;
    bn_alert_rule *r;
};

const char *const bn_alert_sink_names[] = {"log", "webhook", "datadog", NULL};

static const char *const op_names[] = {">", ">=", "<", "<=", "==", "!="};
static const char *const state_names[] = {"inactive", "pending", "firing", "resolved"};
static const char *const severities[] = {"info", "warning", "critical"};

const char *bn_alert_state_str(bn_alert_state s)
{
    return (unsigned)s < 4 ? state_names[s] : "unknown";
}

int bn_alert_state_parse(const char *s, bn_alert_state *out)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, state_names[i]) == 0) {
            *out = (bn_alert_state)i;
            return 0;
        }
    return -1;
}

const char *bn_alert_op_str(bn_alert_op op)
{
    return (unsigned)op < 6 ? op_names[op] : "?";
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int rule_err(char *err, size_t errsz, int idx, const char *field, const char *msg)
{
    snprintf(err, errsz, "alerts[%d]%s%s: %s", idx, field[0] ? "." : "", field, msg);
    return -1;
}

static int copy_str(char *dst, size_t size, const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= size) return -1;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int parse_op(const cJSON *v, bn_alert_op *op)
{
    for (int i = 0; i < 6; i++)
        if (cJSON_IsString(v) && strcmp(v->valuestring, op_names[i]) == 0) {
            *op = (bn_alert_op)i;
            return 0;
        }
    return -1;
}

static int parse_for(const cJSON *v, double *s)
{
    if (!v) {
        *s = 0;
        return 0;
    }
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0) {
        *s = v->valuedouble;
        return 0;
    }
    return cJSON_IsString(v) ? bn_parse_duration(v->valuestring, s) : -1;
}

static int parse_sinks(bn_alert_rule *r, const cJSON *v, int idx, char *err, size_t errsz)
{
    if (!v) return 0;
    if (!cJSON_IsArray(v)) return rule_err(err, errsz, idx, "sinks", "expected an array of names");
    const cJSON *s;
    cJSON_ArrayForEach(s, v)
    {
        int known = 0;
        for (int i = 0; bn_alert_sink_names[i]; i++)
            known |= cJSON_IsString(s) && strcmp(s->valuestring, bn_alert_sink_names[i]) == 0;
        if (!known)
            return rule_err(err, errsz, idx, "sinks", "expected names among log, webhook, datadog");
        if (r->n_sinks == BN_ALERTS_MAX_SINKS)
            return rule_err(err, errsz, idx, "sinks", "too many");
        snprintf(r->sinks[r->n_sinks++], sizeof r->sinks[0], "%s", s->valuestring);
    }
    return 0;
}

static int parse_labels(bn_alert_rule *r, const cJSON *v, int idx, char *err, size_t errsz)
{
    if (v && !cJSON_IsObject(v))
        return rule_err(err, errsz, idx, "labels", "expected an object of strings");
    const cJSON *l;
    int n = 0;
    cJSON_ArrayForEach(l, v)
    {
        if (!cJSON_IsString(l) || !l->string[0] || ++n > 32)
            return rule_err(err, errsz, idx, "labels", "expected at most 32 string values");
    }
    r->labels = v ? cJSON_Duplicate(v, 1) : cJSON_CreateObject();
    if (!r->labels) return rule_err(err, errsz, idx, "labels", "out of memory");
    return 0;
}

static int parse_rule(bn_alert_rule *r, const cJSON *a, int idx, char *err, size_t errsz)
{
    char why[192];
    if (!cJSON_IsObject(a)) return rule_err(err, errsz, idx, "", "expected an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
    if (!name)
        snprintf(r->name, sizeof r->name, "alerts[%d]", idx);
    else if (copy_str(r->name, sizeof r->name, name))
        return rule_err(err, errsz, idx, "name", "expected a non-empty string");
    if (copy_str(r->metric, sizeof r->metric, cJSON_GetObjectItemCaseSensitive(a, "metric")))
        return rule_err(err, errsz, idx, "metric", "expected a metric name or selector");
    if (bn_msel_parse(r->metric, &r->sel, why, sizeof why))
        return rule_err(err, errsz, idx, "metric", why);
    if (parse_op(cJSON_GetObjectItemCaseSensitive(a, "op"), &r->op))
        return rule_err(err, errsz, idx, "op", "expected one of > >= < <= == !=");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "threshold");
    if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble))
        return rule_err(err, errsz, idx, "threshold", "expected a number");
    r->threshold = t->valuedouble;
    if (parse_for(cJSON_GetObjectItemCaseSensitive(a, "for"), &r->for_s))
        return rule_err(err, errsz, idx, "for", "expected a duration such as \"30s\" or \"5m\"");
    const cJSON *sev = cJSON_GetObjectItemCaseSensitive(a, "severity");
    snprintf(r->severity, sizeof r->severity, "warning");
    if (sev) {
        int ok = 0;
        for (int i = 0; i < 3; i++)
            ok |= cJSON_IsString(sev) && !strcmp(sev->valuestring, severities[i]);
        if (!ok) return rule_err(err, errsz, idx, "severity", "expected info, warning or critical");
        snprintf(r->severity, sizeof r->severity, "%s", sev->valuestring);
    }
    if (parse_sinks(r, cJSON_GetObjectItemCaseSensitive(a, "sinks"), idx, err, errsz)) return -1;
    if (parse_labels(r, cJSON_GetObjectItemCaseSensitive(a, "labels"), idx, err, errsz)) return -1;
    r->value = NAN;
    return 0;
}

int bn_alerts_parse(const cJSON *rules, bn_alerts **out, char *err, size_t errsz)
{
    *out = NULL;
    bn_alerts *a = calloc(1, sizeof *a);
    if (!a) goto oom;
    const int n = rules ? cJSON_GetArraySize(rules) : 0;
    if (rules && !cJSON_IsArray(rules)) {
        snprintf(err, errsz, "alerts: expected an array of rules");
        goto fail;
    }
    if (n > BN_ALERTS_MAX) {
        snprintf(err, errsz, "alerts: more than %d rules", BN_ALERTS_MAX);
        goto fail;
    }
    if (n && !(a->r = calloc((size_t)n, sizeof *a->r))) goto oom;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        if (parse_rule(&a->r[i], it, i, err, errsz)) {
            a->n = (size_t)i + 1;
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(a->r[j].name, a->r[i].name) == 0) {
                a->n = (size_t)i + 1;
                rule_err(err, errsz, i, "name", "the same name as an earlier rule");
                goto fail;
            }
        i++;
    }
    a->n = (size_t)n;
    *out = a;
    return 0;
oom:
    snprintf(err, errsz, "out of memory");
fail:
    bn_alerts_free(a);
    return -1;
}

void bn_alerts_free(bn_alerts *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) cJSON_Delete(a->r[i].labels);
    free(a->r);
    free(a);
}

size_t bn_alerts_count(const bn_alerts *a)
{
    return a ? a->n : 0;
}

bn_alert_rule *bn_alerts_rule(bn_alerts *a, size_t i)
{
    return a && i < a->n ? &a->r[i] : NULL;
}

bn_alert_rule *bn_alerts_find(bn_alerts *a, const char *name)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->r[i].name, name) == 0) return &a->r[i];
    return NULL;
}

int bn_alert_rule_has_sink(const bn_alert_rule *r, const char *sink)
{
    if (r->n_sinks == 0) return 1;
    for (int i = 0; i < r->n_sinks; i++)
        if (strcmp(r->sinks[i], sink) == 0) return 1;
    return 0;
}

/* ---- evaluation --------------------------------------------------------------------------- */

static int compare(bn_alert_op op, double v, double t)
{
    switch (op) {
    case BN_ALERT_GT:
        return v > t;
    case BN_ALERT_GE:
        return v >= t;
    case BN_ALERT_LT:
        return v < t;
    case BN_ALERT_LE:
        return v <= t;
    case BN_ALERT_EQ:
        return v == t;
    case BN_ALERT_NE:
        return !isnan(v) && v != t;
    }
    return 0;
}

int bn_alert_check(const bn_alert_rule *r, const bn_msnap *snap, double *value, char *series,
                   size_t seriessz)
{
    const bn_msample *first = NULL, *hit = NULL;
    for (size_t i = 0; snap && i < snap->n && !hit; i++) {
        const bn_msample *s = &snap->v[i];
        if (!bn_msel_match(&r->sel, s)) continue;
        if (!first) first = s;
        if (compare(r->op, s->value, r->threshold)) hit = s;
    }
    const bn_msample *s = hit ? hit : first;
    *value = s ? s->value : NAN;
    if (series && seriessz) {
        if (s)
            bn_msample_series(s, series, seriessz);
        else
            series[0] = '\0';
    }
    return hit != NULL;
}

static void move_to(bn_alert_rule *r, bn_alert_state to, double now, bn_alert_fn fn, void *ud)
{
    const bn_alert_transition t = {
            .rule = r,
            .from = r->state,
            .to = to,
            .at = now,
            .value = r->value,
            .series = r->series,
            .notify = to == BN_ALERT_FIRING ||
                      (r->state == BN_ALERT_FIRING && to == BN_ALERT_RESOLVED),
    };
    r->state = to;
    r->since = now;
    if (fn) fn(ud, &t);
}

static void eval_rule(bn_alert_rule *r, const bn_msnap *snap, double now, bn_alert_fn fn, void *ud)
{
    const int holds = bn_alert_check(r, snap, &r->value, r->series, sizeof r->series);
    switch (r->state) {
    case BN_ALERT_INACTIVE:
    case BN_ALERT_RESOLVED:
        if (!holds) break;
        r->active_at = now;
        move_to(r, r->for_s > 0 ? BN_ALERT_PENDING : BN_ALERT_FIRING, now, fn, ud);
        break;
    case BN_ALERT_PENDING:
        if (!holds)
            move_to(r, BN_ALERT_INACTIVE, now, fn, ud);
        else if (now - r->active_at >= r->for_s)
            move_to(r, BN_ALERT_FIRING, now, fn, ud);
        break;
    case BN_ALERT_FIRING:
        if (!holds) move_to(r, BN_ALERT_RESOLVED, now, fn, ud);
        break;
    }
}

void bn_alerts_eval(bn_alerts *a, const bn_msnap *snap, double now, bn_alert_fn fn, void *ud)
{
    for (size_t i = 0; a && i < a->n; i++) eval_rule(&a->r[i], snap, now, fn, ud);
}

void bn_alert_restore(bn_alert_rule *r, bn_alert_state s, double since)
{
    if (s == BN_ALERT_PENDING || s == BN_ALERT_FIRING) {
        r->state = s;
        r->since = since;
        r->active_at = since;
    } else {
        r->state = BN_ALERT_INACTIVE;
        r->since = since;
    }
}

/* ---- JSON --------------------------------------------------------------------------------- */

static void add_number_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void add_rule_fields(cJSON *o, const bn_alert_rule *r)
{
    cJSON_AddStringToObject(o, "rule", r->name);
    cJSON_AddStringToObject(o, "metric", r->metric);
    cJSON_AddStringToObject(o, "op", bn_alert_op_str(r->op));
    cJSON_AddNumberToObject(o, "threshold", r->threshold);
    cJSON_AddNumberToObject(o, "for_seconds", r->for_s);
    cJSON_AddStringToObject(o, "severity", r->severity);
    cJSON_AddItemToObject(o, "labels", cJSON_Duplicate(r->labels, 1));
}

cJSON *bn_alert_rule_json(const bn_alert_rule *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_rule_fields(o, r);
    cJSON *s = cJSON_AddArrayToObject(o, "sinks");
    for (int i = 0; s && i < r->n_sinks; i++)
        cJSON_AddItemToArray(s, cJSON_CreateString(r->sinks[i]));
    cJSON_AddStringToObject(o, "state", bn_alert_state_str(r->state));
    return o;
}

cJSON *bn_alert_notification_json(const bn_alert_rule *r, bn_alert_state from, bn_alert_state to,
                                  double at, double value, const char *series, const char *host,
                                  int test)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "source", "bitnet");
    add_rule_fields(o, r);
    cJSON_AddStringToObject(o, "state", bn_alert_state_str(to));
    cJSON_AddStringToObject(o, "previous_state", bn_alert_state_str(from));
    add_number_or_null(o, "value", value);
    cJSON_AddStringToObject(o, "series", series ? series : "");
    cJSON_AddStringToObject(o, "host", host ? host : "");
    char when[40] = "";
    const time_t secs = (time_t)floor(at);
    struct tm tm;
    if (gmtime_r(&secs, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "at", when);
    cJSON_AddNumberToObject(o, "at_ms", floor(at * 1000));
    cJSON_AddBoolToObject(o, "test", test != 0);
    if (cJSON_GetArraySize(o) < 16) { /* a field was lost: out of memory */
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
