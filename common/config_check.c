/* config_check.c - checking a settings document against the schema (types, ranges, sections,
 * unknown and duplicate keys, the alert rules), and parsing one value from text for
 * `config set`, durations and listen addresses (see config.h). */
#include "common/alerts.h"
#include "common/config.h"
#include "common/tiers.h"
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int bn_parse_duration(const char *s, double *seconds)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    double total = 0;
    const char *p = s;
    char *end;
    if (!s || !*s) return -1;
    if (strspn(s, "0123456789.") == strlen(s)) { /* a bare number: seconds */
        total = strtod(s, &end);
        if (*end) return -1;
        p = end;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.') return -1;
        double v = strtod(p, &end);
        if (end == p) return -1;
        p = end;
        size_t u = 0;
        while (u < COUNT(units) && strncmp(p, units[u].name, strlen(units[u].name)) != 0) u++;
        if (u == COUNT(units)) return -1;
        p += strlen(units[u].name);
        total += v * units[u].seconds;
    }
    if (!isfinite(total) || total < 0) return -1;
    *seconds = total;
    return 0;
}

int bn_parse_listen(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (!s) return -1;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
        if (hl == 0) return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) return -1; /* v6 needs [] */
        hl = (size_t)(colon - s);
    }
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == '[' || h[i] == ']') return -1;
    const char *ps = colon + 1;
    if (!*ps || strlen(ps) > 5 || strspn(ps, "0123456789") != strlen(ps)) return -1;
    long p = strtol(ps, NULL, 10);
    if (p < 1 || p > 65535 || hl >= hostsz) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int is_env_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

static int is_url(const char *s)
{
    const char *r = NULL;
    if (strncmp(s, "http://", 7) == 0)
        r = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        r = s + 8;
    if (!r || !*r || *r == '/' || *r == ':') return 0;
    for (; *r; r++)
        if ((unsigned char)*r <= 0x20 || *r == 0x7f) return 0;
    return 1;
}

typedef struct checker {
    bn_config_report_fn fn;
    void *ud;
    int flags;
    int errors;
} checker;

static void report(checker *ck, int is_error, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void report(checker *ck, int is_error, const char *key, const char *fmt, ...)
{
    char msg[BN_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (is_error) ck->errors++;
    if (ck->fn) ck->fn(ck->ud, is_error, key, msg);
}

/* The rules, as the monitor parses them (alerts.c): one parser, so that a file that loads
 * never holds rules the monitor refuses. */
static void on_finding(void *ud, int is_error, const char *key, const char *msg)
{
    report(ud, is_error, key, "%s", msg);
}

static void check_alerts(checker *ck, const cJSON *v)
{
    bn_alerts_check(v, on_finding, ck);
}

/* The string keys that take one of a few words: "a, b or c" in words, or NULL. */
static const char *choices_of(const char *key, const char *const **names)
{
    static const char *const graph[] = {"braille", "block", "ascii", NULL};
    static const char *const theme[] = {"default", "light", "mono", NULL};
    static const char *const api[] = {"meter_events", "stream", NULL};
    if (!strcmp(key, "billing.api")) return *names = api, "meter_events or stream";
    if (!strcmp(key, "tui.graph")) return *names = graph, "braille, block or ascii";
    if (!strcmp(key, "tui.theme")) return *names = theme, "default, light or mono";
    return *names = NULL, NULL;
}

static int is_choice(const char *const *names, const char *s)
{
    for (; *names; names++)
        if (!strcmp(*names, s)) return 1;
    return 0;
}

static void check_value(checker *ck, const bn_config_key *k, const cJSON *v, const char *key)
{
    const char *const *names;
    const char *words = choices_of(k->key, &names);
    char host[256];
    int port;
    switch (k->type) {
    case BN_CFG_STRING:
    case BN_CFG_PATH:
        if (!cJSON_IsString(v))
            report(ck, 1, key, "expected a string");
        else if (strlen(v->valuestring) >= BN_CONFIG_PATH_MAX)
            report(ck, 1, key, "longer than %d bytes", BN_CONFIG_PATH_MAX - 1);
        else if (words && !is_choice(names, v->valuestring))
            report(ck, 1, key, "expected %s", words);
        break;
    case BN_CFG_INT:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < k->min || v->valuedouble > k->max)
            report(ck, 1, key, "expected an integer from %.0f to %.0f", k->min, k->max);
        break;
    case BN_CFG_NUMBER:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < k->min ||
            v->valuedouble > k->max)
            report(ck, 1, key, "expected a number from %g to %g", k->min, k->max);
        break;
    case BN_CFG_BOOL:
        if (!cJSON_IsBool(v)) report(ck, 1, key, "expected true or false");
        break;
    case BN_CFG_LISTEN:
        if (!cJSON_IsString(v) || bn_parse_listen(v->valuestring, host, sizeof host, &port))
            report(ck, 1, key, "expected \"HOST:PORT\" with a port from 1 to 65535");
        break;
    case BN_CFG_URL:
        if (!cJSON_IsString(v) || (v->valuestring[0] && !is_url(v->valuestring)))
            report(ck, 1, key, "expected an http:// or https:// URL (or \"\")");
        break;
    case BN_CFG_ENVNAME:
        if (!cJSON_IsString(v) || !is_env_name(v->valuestring))
            report(ck, 1, key, "expected the name of an environment variable");
        break;
    case BN_CFG_ALERTS:
        check_alerts(ck, v);
        break;
    case BN_CFG_TENANTS:
        cm_tenants_check(v, on_finding, ck);
        break;
    case BN_CFG_DURATION: {
        double d = -1;
        if (cJSON_IsString(v)) {
            if (bn_parse_duration(v->valuestring, &d)) d = -1;
        } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            d = v->valuedouble;
        }
        if (d < k->min)
            report(ck, 1, key, "expected a duration such as \"10s\" or \"1m\", at least %gs",
                   k->min);
        else if (k->max > 0 && d > k->max)
            report(ck, 1, key, "expected a duration of at most %gs", k->max);
        break;
    }
    }
}

static void walk_object(checker *ck, const cJSON *obj, const char *prefix)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        char path[256];
        const char *name = c->string ? c->string : "";
        if (bn__config_fmt_path(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name)) {
            report(ck, 1, prefix, "key name too long");
            continue;
        }
        int dup = 0;
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (d->string && strcmp(d->string, name) == 0) dup = 1;
        if (dup) {
            report(ck, 1, path, "duplicate key (only the first is used)");
            continue;
        }
        const bn_config_key *k = bn_config_find_key(path);
        if (k)
            check_value(ck, k, c, path);
        else if (bn__config_is_section(path) && cJSON_IsObject(c))
            walk_object(ck, c, path);
        else if (bn__config_is_section(path))
            report(ck, 1, path, "expected an object (a section of settings)");
        else
            report(ck, ck->flags & BN_CONFIG_CHECK_STRICT ? 1 : 0, path,
                   "unknown key (see bitnet-config(5))");
    }
}

int bn_config_check(const cJSON *doc, int flags, bn_config_report_fn fn, void *ud)
{
    checker ck = {fn, ud, flags, 0};
    if (!cJSON_IsObject(doc)) {
        report(&ck, 1, "", "expected a JSON object at the top level");
        return ck.errors;
    }
    walk_object(&ck, doc, "");
    return ck.errors;
}

void bn_config_keep_first_error(void *ud, int is_error, const char *key, const char *msg)
{
    bn_config_first_error *fe = ud;
    if (!is_error || fe->have) return;
    fe->have = 1;
    if (fe->prefix)
        bn__config_set_err(fe->buf, fe->size, "%s: %s%s%s", fe->prefix, key, *key ? ": " : "", msg);
    else
        bn__config_set_err(fe->buf, fe->size, "%s%s%s", key, *key ? ": " : "", msg);
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

int bn_config_value_parse(const bn_config_key *k, const char *text, cJSON **out, char *err,
                          size_t errsz)
{
    cJSON *v = NULL;
    char *end;
    char buf[BN_CONFIG_PATH_MAX];
    *out = NULL;
    switch (k->type) {
    case BN_CFG_INT:
    case BN_CFG_NUMBER: {
        errno = 0;
        double d = k->type == BN_CFG_INT ? (double)strtoll(text, &end, 10) : strtod(text, &end);
        if (!*text || *end || errno || isspace((unsigned char)*text))
            v = cJSON_CreateString(text); /* fails the check below with the right words */
        else
            v = cJSON_CreateNumber(d);
        break;
    }
    case BN_CFG_BOOL: {
        int b;
        v = parse_bool(text, &b) ? cJSON_CreateString(text) : cJSON_CreateBool(b);
        break;
    }
    case BN_CFG_ALERTS:
    case BN_CFG_TENANTS: {
        const char *pe = NULL;
        v = cJSON_ParseWithOpts(text, &pe, 1);
        if (!v) {
            bn__config_set_err(err, errsz, "%s: not valid JSON near byte %ld", k->key,
                               pe ? (long)(pe - text) : 0L);
            return -1;
        }
        break;
    }
    case BN_CFG_PATH:
        if (bn_config_resolve_path(text, NULL, buf, sizeof buf)) {
            bn__config_set_err(err, errsz, "%s: path too long", k->key);
            return -1;
        }
        v = cJSON_CreateString(text[0] == '~' ? text : buf);
        break;
    default:
        v = cJSON_CreateString(text);
        break;
    }
    if (!v) {
        bn__config_set_err(err, errsz, "out of memory");
        return -1;
    }
    bn_config_first_error fe = {err, errsz, NULL, 0};
    checker ck = {bn_config_keep_first_error, &fe, 0, 0};
    check_value(&ck, k, v, k->key);
    if (ck.errors) {
        cJSON_Delete(v);
        return -1;
    }
    *out = v;
    return 0;
}
