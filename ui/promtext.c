/* promtext.c - the Prometheus text exposition, read line by line; see promtext.h. */
#include "promtext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The family of the last "# TYPE" line. */
typedef struct family {
    char name[128];
    pt_type type;
} family;

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && is_blank(*p)) p++;
    return p;
}

/* The end of the token at p (the first blank, or end). */
static const char *token_end(const char *p, const char *end)
{
    while (p < end && !is_blank(*p)) p++;
    return p;
}

static int token_is(const char *p, const char *q, const char *word)
{
    const size_t n = strlen(word);
    return (size_t)(q - p) == n && !memcmp(p, word, n);
}

/* "# TYPE name type" sets the family; "# HELP ..." and other comments are skipped.
 * 0, or -1 with the reason in why. */
static int comment_line(const char *p, const char *end, family *fam, char *why, size_t whysz)
{
    static const char *const types[] = {"untyped", "counter", "gauge", "histogram", "summary"};
    p = skip_blanks(p + 1, end);
    const char *q = token_end(p, end);
    if (!token_is(p, q, "TYPE")) return 0;
    p = skip_blanks(q, end), q = token_end(p, end);
    char name[sizeof fam->name];
    bn_msel sel;
    if ((size_t)(q - p) >= sizeof name || q == p) {
        snprintf(why, whysz, "TYPE: a metric name of 1 to %zu bytes expected", sizeof name - 1);
        return -1;
    }
    memcpy(name, p, (size_t)(q - p));
    name[q - p] = '\0';
    char e[sizeof name + 64];
    if (strchr(name, '{') || bn_msel_parse(name, &sel, e, sizeof e)) {
        snprintf(why, whysz, "TYPE: bad metric name '%.80s'", name);
        return -1;
    }
    p = skip_blanks(q, end), q = token_end(p, end);
    for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++) {
        if (!token_is(p, q, types[i])) continue;
        if (skip_blanks(q, end) != end) {
            snprintf(why, whysz, "TYPE: text after the type");
            return -1;
        }
        snprintf(fam->name, sizeof fam->name, "%s", name);
        fam->type = (pt_type)i;
        return 0;
    }
    snprintf(why, whysz, "TYPE: unknown metric type '%.*s'", (int)(q - p > 32 ? 32 : q - p), p);
    return -1;
}

/* The end of the label set that begins at p ('{'): after its '}', or NULL. */
static const char *labels_end(const char *p, const char *end)
{
    int quoted = 0;
    for (p++; p < end; p++) {
        if (quoted && *p == '\\')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '}')
            return p + 1;
    }
    return NULL;
}

/* The series at the start of the line into s->series; the end of it, or NULL with why. */
static const char *read_series(const char *p, const char *end, pt_sample *s, char *why,
                               size_t whysz)
{
    const char *q = p;
    while (q < end && !is_blank(*q) && *q != '{') q++;
    if (q < end && *q == '{' && !(q = labels_end(q, end))) {
        snprintf(why, whysz, "a label set without its '}'");
        return NULL;
    }
    char buf[PT_LINE_MAX + 1], e[PT_LINE_MAX + 128];
    const size_t n = (size_t)(q - p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (bn_msel_parse(buf, &s->series, e, sizeof e)) {
        /* e is "'<buf>': <reason>": keep the reason, shorten the series */
        const char *reason = strlen(e) > n + 4 ? e + n + 4 : e;
        snprintf(why, whysz, "bad series '%.80s%s': %.200s", buf, n > 80 ? "..." : "", reason);
        return NULL;
    }
    for (size_t i = 0; i < s->series.n; i++) {
        if (s->series.m[i].neq) {
            snprintf(why, whysz, "'!=' in a sample's labels");
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->series.m[i].name, s->series.m[j].name)) {
                snprintf(why, whysz, "label '%s' given twice", s->series.m[i].name);
                return NULL;
            }
    }
    return q;
}

/* A float as the format writes it ("1.5", "-2e-3", "+Inf", "NaN"): 0, or -1. */
static int read_value(const char *p, const char *q, double *v)
{
    char buf[64], *e;
    if (q == p || (size_t)(q - p) >= sizeof buf) return -1;
    memcpy(buf, p, (size_t)(q - p));
    buf[q - p] = '\0';
    *v = strtod(buf, &e);
    return *e ? -1 : 0;
}

/* An optional timestamp: milliseconds, an integer of at most 19 digits. */
static int valid_timestamp(const char *p, const char *q)
{
    if (p < q && *p == '-') p++;
    if (q == p || q - p > 19) return 0;
    for (; p < q; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

/* The family's type for a sample named name. */
static pt_type type_of(const family *fam, const char *name)
{
    static const char *const parts[] = {"_bucket", "_sum", "_count"};
    const size_t n = strlen(fam->name);
    if (!n || strncmp(name, fam->name, n)) return PT_UNTYPED;
    if (!name[n]) return fam->type;
    if (fam->type != PT_HISTOGRAM && fam->type != PT_SUMMARY) return PT_UNTYPED;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name + n, parts[i]) && (i || fam->type == PT_HISTOGRAM)) return fam->type;
    return PT_UNTYPED;
}

static int sample_line(const char *p, const char *end, const family *fam, pt_sample *s, char *why,
                       size_t whysz)
{
    const char *q = read_series(p, end, s, why, whysz);
    if (!q) return -1;
    if (q == end || !is_blank(*q)) {
        snprintf(why, whysz, "%s: a blank and a value expected after the series", s->series.name);
        return -1;
    }
    p = skip_blanks(q, end), q = token_end(p, end);
    if (read_value(p, q, &s->value)) {
        snprintf(why, whysz, "%s: bad value '%.*s'", s->series.name, (int)(q - p > 40 ? 40 : q - p),
                 p);
        return -1;
    }
    p = skip_blanks(q, end), q = token_end(p, end);
    if (p < end && (!valid_timestamp(p, q) || skip_blanks(q, end) != end)) {
        snprintf(why, whysz, "%s: text after the value is not a timestamp", s->series.name);
        return -1;
    }
    s->type = type_of(fam, s->series.name);
    return 0;
}

/* One line (without its '\n'): 0, or -1 with why. */
static int one_line(const char *p, const char *end, family *fam, pt_sample_fn fn, void *ud,
                    int line, char *why, size_t whysz)
{
    if (end > p && end[-1] == '\r') end--;
    if (memchr(p, '\0', (size_t)(end - p))) {
        snprintf(why, whysz, "a NUL byte");
        return -1;
    }
    if (end - p > PT_LINE_MAX) {
        snprintf(why, whysz, "longer than %d bytes", PT_LINE_MAX);
        return -1;
    }
    p = skip_blanks(p, end);
    if (p == end) return 0;
    if (*p == '#') return comment_line(p, end, fam, why, whysz);
    pt_sample s;
    memset(&s, 0, sizeof s);
    s.line = line;
    if (sample_line(p, end, fam, &s, why, whysz)) return -1;
    if (fn) fn(ud, &s);
    return 0;
}

int pt_parse(const char *text, size_t len, pt_sample_fn fn, void *ud, char *err, size_t errsz)
{
    family fam;
    memset(&fam, 0, sizeof fam);
    int bad = 0, line = 0;
    if (errsz) err[0] = '\0';
    for (const char *p = text, *end = text + len; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char why[512];
        if (one_line(p, le, &fam, fn, ud, line + 1, why, sizeof why)) {
            if (!bad++ && errsz) snprintf(err, errsz, "line %d: %s", line + 1, why);
        }
        p = nl ? nl + 1 : end;
    }
    return bad;
}

const char *pt_label(const pt_sample *s, const char *name)
{
    for (size_t i = 0; i < s->series.n; i++)
        if (!strcmp(s->series.m[i].name, name)) return s->series.m[i].value;
    return NULL;
}
