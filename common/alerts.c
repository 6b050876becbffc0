/* alerts.c - alert rules and their state machine; see alerts.h. */
#include "common/alerts.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/config.h"

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

/* The rule being parsed and where its problems go. */
typedef struct rule_ctx {
    int idx, errors;
    bn_config_report_fn fn;
    void *ud;
} rule_ctx;

static int rule_err(rule_ctx *c, const char *field, const char *msg)
{
    char key[96];
    snprintf(key, sizeof key, "alerts[%d]%s%s", c->idx, field[0] ? "." : "", field);
    c->fn(c->ud, 1, key, msg);
    c->errors++;
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

static int parse_sinks(bn_alert_rule *r, const cJSON *v, rule_ctx *c)
{
    if (!v) return 0;
    if (!cJSON_IsArray(v)) return rule_err(c, "sinks", "expected an array of names");
    const cJSON *s;
    cJSON_ArrayForEach(s, v)
    {
        int known = 0;
        for (int i = 0; bn_alert_sink_names[i]; i++)
            known |= cJSON_IsString(s) && strcmp(s->valuestring, bn_alert_sink_names[i]) == 0;
        if (!known) return rule_err(c, "sinks", "expected names among log, webhook, datadog");
        if (r->n_sinks == BN_ALERTS_MAX_SINKS) return rule_err(c, "sinks", "too many");
        snprintf(r->sinks[r->n_sinks++], sizeof r->sinks[0], "%s", s->valuestring);
    }
    return 0;
}

static int parse_labels(bn_alert_rule *r, const cJSON *v, rule_ctx *c)
{
    if (v && !cJSON_IsObject(v)) return rule_err(c, "labels", "expected an object of strings");
    const cJSON *l;
    int n = 0;
    cJSON_ArrayForEach(l, v)
    {
        if (!cJSON_IsString(l) || !l->string[0] || ++n > 32)
            return rule_err(c, "labels", "expected at most 32 string values");
    }
    r->labels = v ? cJSON_Duplicate(v, 1) : cJSON_CreateObject();
    if (!r->labels) return rule_err(c, "labels", "out of memory");
    return 0;
}

static void parse_metric(bn_alert_rule *r, const cJSON *v, rule_ctx *c)
{
    char why[192];
    if (!v)
        rule_err(c, "metric", "missing: the metric the rule watches");
    else if (copy_str(r->metric, sizeof r->metric, v))
        rule_err(c, "metric", "expected a metric name or selector");
    else if (bn_msel_parse(r->metric, &r->sel, why, sizeof why))
        rule_err(c, "metric", why);
}

/* An RFC 3339 UTC time ("2026-12-07T01:00:00Z") into epoch seconds; absent: 0. */
static void parse_utc(double *out, const cJSON *v, const char *field, rule_ctx *c)
{
    int64_t ms;
    *out = 0;
    if (!v) return;
    if (!cJSON_IsString(v) || cli_parse_utc(v->valuestring, &ms))
        rule_err(c, field, "expected a UTC time such as \"2026-12-07T01:00:00Z\"");
    else
        *out = (double)ms / 1000;
}

static void parse_severity(bn_alert_rule *r, const cJSON *v, rule_ctx *c)
{
    snprintf(r->severity, sizeof r->severity, "warning");
    if (!v) return;
    int ok = 0;
    for (int i = 0; i < 3; i++) ok |= cJSON_IsString(v) && !strcmp(v->valuestring, severities[i]);
    if (!ok)
        rule_err(c, "severity", "expected info, warning or critical");
    else
        snprintf(r->severity, sizeof r->severity, "%s", v->valuestring);
}

/* Parses one rule, reporting every field that is wrong; 0 when none is. */
static int parse_rule(bn_alert_rule *r, const cJSON *a, rule_ctx *c)
{
    if (!cJSON_IsObject(a)) return rule_err(c, "", "expected an object");
    const int before = c->errors;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "name");
    if (!name)
        snprintf(r->name, sizeof r->name, "alerts[%d]", c->idx);
    else if (copy_str(r->name, sizeof r->name, name))
        rule_err(c, "name", "expected a non-empty string");
    parse_metric(r, cJSON_GetObjectItemCaseSensitive(a, "metric"), c);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(a, "op");
    if (!op)
        rule_err(c, "op", "missing: one of > >= < <= == !=");
    else if (parse_op(op, &r->op))
        rule_err(c, "op", "expected one of > >= < <= == !=");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "threshold");
    if (!t)
        rule_err(c, "threshold", "missing: the number the metric is compared with");
    else if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble))
        rule_err(c, "threshold", "expected a number");
    else
        r->threshold = t->valuedouble;
    if (parse_for(cJSON_GetObjectItemCaseSensitive(a, "for"), &r->for_s))
        rule_err(c, "for", "expected a duration such as \"30s\", \"5m\" or \"1h30m\"");
    parse_severity(r, cJSON_GetObjectItemCaseSensitive(a, "severity"), c);
    parse_sinks(r, cJSON_GetObjectItemCaseSensitive(a, "sinks"), c);
    parse_labels(r, cJSON_GetObjectItemCaseSensitive(a, "labels"), c);
    parse_utc(&r->silenced_until, cJSON_GetObjectItemCaseSensitive(a, "silenced_until"),
              "silenced_until", c);
    parse_utc(&r->acked_at, cJSON_GetObjectItemCaseSensitive(a, "acknowledged_at"),
              "acknowledged_at", c);
    r->value = NAN;
    return c->errors > before ? -1 : 0;
}

/* The warnings of a rule: fields the parser does not read, a missing name. */
static void rule_warnings(const cJSON *a, int idx, bn_config_report_fn fn, void *ud)
{
    static const char *const fields[] = {
            "name",     "metric", "op",    "threshold",      "for",
            "severity", "labels", "sinks", "silenced_until", "acknowledged_at"};
    char key[192];
    for (const cJSON *f = a->child; f; f = f->next) {
        size_t i = 0;
        while (i < sizeof fields / sizeof fields[0] && strcmp(f->string, fields[i])) i++;
        snprintf(key, sizeof key, "alerts[%d].%.128s", idx, f->string);
        if (i == sizeof fields / sizeof fields[0])
            fn(ud, 0, key, "unknown field of an alert rule (ignored)");
    }
    snprintf(key, sizeof key, "alerts[%d].name", idx);
    if (!cJSON_GetObjectItemCaseSensitive(a, "name"))
        fn(ud, 0, key, "missing: alerts are easier to tell apart with a name");
}

/* Parses every rule of rules into a->r (sized for them), reporting each rule that fails (its
 * problems) and the warnings; the number of errors. */
static int parse_all(bn_alerts *a, const cJSON *rules, bn_config_report_fn fn, void *ud)
{
    char msg[64];
    rule_ctx c = {0, 0, fn, ud};
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        a->n = (size_t)c.idx + 1; /* so that free releases what the rule holds */
        if (cJSON_IsObject(it)) rule_warnings(it, c.idx, fn, ud);
        if (parse_rule(&a->r[c.idx], it, &c) == 0) {
            for (int j = 0; j < c.idx; j++)
                if (a->r[j].name[0] && strcmp(a->r[j].name, a->r[c.idx].name) == 0) {
                    snprintf(msg, sizeof msg, "the same name as alerts[%d]", j);
                    rule_err(&c, "name", msg);
                    break;
                }
        }
        c.idx++;
    }
    return c.errors;
}

static int parse_report(const cJSON *rules, bn_alerts **out, bn_config_report_fn fn, void *ud)
{
    *out = NULL;
    bn_alerts *a = calloc(1, sizeof *a);
    const int n = rules ? cJSON_GetArraySize(rules) : 0;
    int errors = 0;
    if (!a) {
        fn(ud, 1, "alerts", "out of memory");
        return 1;
    }
    if (rules && !cJSON_IsArray(rules)) {
        fn(ud, 1, "alerts", "expected an array of alert rules");
        errors = 1;
    } else if (n > BN_ALERTS_MAX) {
        char msg[64];
        snprintf(msg, sizeof msg, "more than %d rules", BN_ALERTS_MAX);
        fn(ud, 1, "alerts", msg);
        errors = 1;
    } else if (n && !(a->r = calloc((size_t)n, sizeof *a->r))) {
        fn(ud, 1, "alerts", "out of memory");
        errors = 1;
    } else {
        errors = parse_all(a, rules, fn, ud);
    }
    if (errors) {
        bn_alerts_free(a);
        return errors;
    }
    *out = a;
    return 0;
}

int bn_alerts_parse(const cJSON *rules, bn_alerts **out, char *err, size_t errsz)
{
    bn_config_first_error fe = {err, errsz, NULL, 0};
    return parse_report(rules, out, bn_config_keep_first_error, &fe) ? -1 : 0;
}

int bn_alerts_check(const cJSON *rules, bn_config_report_fn fn, void *ud)
{
    bn_alerts *a;
    const int errors = parse_report(rules, &a, fn, ud);
    bn_alerts_free(a);
    return errors;
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

int bn_alert_silenced(const bn_alert_rule *r, double now)
{
    return r->silenced_until > 0 && now < r->silenced_until;
}

int bn_alert_acknowledged(const bn_alert_rule *r)
{
    return r->state == BN_ALERT_FIRING && r->acked_at > 0 && r->acked_at >= r->since;
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

static void add_utc_or_null(cJSON *o, const char *k, double seconds)
{
    char when[40];
    if (seconds > 0)
        cJSON_AddStringToObject(o, k, cli_fmt_utc((int64_t)(seconds * 1000), when, sizeof when));
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
    add_utc_or_null(o, "silenced_until", r->silenced_until);
    add_utc_or_null(o, "acknowledged_at", r->acked_at);
    cJSON_AddBoolToObject(o, "acknowledged", bn_alert_acknowledged(r));
    return o;
}

/* FNV-1a, 64 bits, over a NUL-terminated string and its NUL. */
static uint64_t fnv1a(uint64_t h, const char *s)
{
    do {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    } while (*s++);
    return h;
}

/* The notification's id: the same for every resend of it (it is spooled with it), different
 * for every transition (host, rule, state, time to the millisecond, test or not). */
static void notification_id(const bn_alert_rule *r, bn_alert_state to, double at, const char *host,
                            int test, char out[17])
{
    char ms[32];
    snprintf(ms, sizeof ms, "%.0f:%d", floor(at * 1000), test != 0);
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, host ? host : "");
    h = fnv1a(h, r->name);
    h = fnv1a(h, bn_alert_state_str(to));
    h = fnv1a(h, ms);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

cJSON *bn_alert_notification_json(const bn_alert_rule *r, bn_alert_state from, bn_alert_state to,
                                  double at, double value, const char *series, const char *host,
                                  int test)
{
    char id[17];
    notification_id(r, to, at, host, test, id);
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
    cJSON_AddStringToObject(o, "id", id);
    if (cJSON_GetArraySize(o) < 17) { /* a field was lost: out of memory */
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
