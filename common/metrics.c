/* metrics.c - the metrics registry and the Prometheus text format; see metrics.h. */
#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* ---- the buffer ------------------------------------------------------------------------ */

void bn_buf_init(bn_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

static int buf_reserve(bn_buf *b, size_t more)
{
    if (b->failed) return -1;
    if (more > b->max || b->len > b->max - more) {
        b->failed = 1;
        return -1;
    }
    const size_t need = b->len + more + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->s, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->s = p;
    b->cap = cap;
    return 0;
}

int bn_buf_add(bn_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

int bn_buf_puts(bn_buf *b, const char *s)
{
    return bn_buf_add(b, s, strlen(s));
}

int bn_buf_printf(bn_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return -1;
    }
    if ((size_t)n < sizeof small) return bn_buf_add(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *bn_buf_detach(bn_buf *b, size_t *len)
{
    if (b->failed || buf_reserve(b, 0)) {
        bn_buf_release(b);
        return NULL;
    }
    char *s = b->s;
    if (len) *len = b->len;
    const size_t max = b->max;
    bn_buf_init(b, max);
    return s;
}

void bn_buf_release(bn_buf *b)
{
    free(b->s);
    const size_t max = b->max;
    bn_buf_init(b, max);
}

const char *bn_metrics_fmt_double(double v, char buf[32])
{
    if (isnan(v) || isinf(v)) {
        snprintf(buf, 32, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

/* ---- the registry ------------------------------------------------------------------------ */

typedef struct mseries {
    char **lv; /* n_labels values */
    double value;
    double sum;
    uint64_t count;
    uint64_t *bucket; /* n_buckets + 1 counts, not cumulative; the last is above every bound */
} mseries;

struct bn_mfamily {
    bn_metrics *reg;
    char *name, *help;
    bn_metric_type type;
    size_t n_labels;
    char *labels[BN_METRICS_MAX_LABELS];
    size_t n_buckets;
    double *buckets;
    mseries *s;
    size_t n, cap;
    bn_mfamily *next;
};

struct bn_metrics {
    pthread_mutex_t mu;
    bn_mfamily *first, *last;
    char err[256];
};

static void reg_err(bn_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reg_err(bn_metrics *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
}

int bn_metrics_new(bn_metrics **out)
{
    *out = NULL;
    bn_metrics *m = calloc(1, sizeof *m);
    if (!m) return -1;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(&m->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (rc) {
        free(m);
        return -1;
    }
    *out = m;
    return 0;
}

static void series_release(const bn_mfamily *f, mseries *s)
{
    for (size_t i = 0; i < f->n_labels; i++) free(s->lv[i]);
    free(s->lv);
    free(s->bucket);
}

static void family_free(bn_mfamily *f)
{
    for (size_t i = 0; i < f->n; i++) series_release(f, &f->s[i]);
    free(f->s);
    for (size_t i = 0; i < f->n_labels; i++) free(f->labels[i]);
    free(f->buckets);
    free(f->name);
    free(f->help);
    free(f);
}

void bn_metrics_free(bn_metrics *m)
{
    if (!m) return;
    for (bn_mfamily *f = m->first, *next; f; f = next) {
        next = f->next;
        family_free(f);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *bn_metrics_errmsg(const bn_metrics *m)
{
    return m ? m->err : "out of memory";
}

void bn_metrics_lock(bn_metrics *m)
{
    pthread_mutex_lock(&m->mu);
}

void bn_metrics_unlock(bn_metrics *m)
{
    pthread_mutex_unlock(&m->mu);
}

static int valid_metric_name(const char *s)
{
    if (!s || !*s || strlen(s) > 200) return 0;
    for (const char *p = s; *p; p++) {
        const char c = *p;
        const int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    if (!s || !*s || strlen(s) > 60 || (s[0] == '_' && s[1] == '_')) return 0;
    for (const char *p = s; *p; p++) {
        const char c = *p;
        const int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* Checks what bn_metrics_define is given; 0, or -1 with the message set. */
static int check_def(bn_metrics *m, bn_metric_type type, const char *name,
                     const char *const *labels, const double *buckets, size_t n_buckets)
{
    if (!valid_metric_name(name)) {
        reg_err(m, "'%s': not a valid metric name", name ? name : "(null)");
        return -1;
    }
    for (bn_mfamily *f = m->first; f; f = f->next)
        if (strcmp(f->name, name) == 0) {
            reg_err(m, "%s: defined twice", name);
            return -1;
        }
    size_t n = 0;
    for (; labels && labels[n]; n++) {
        if (n == BN_METRICS_MAX_LABELS || !valid_label_name(labels[n]) ||
            (type == BN_METRIC_HISTOGRAM && strcmp(labels[n], "le") == 0)) {
            reg_err(m, "%s: bad or too many labels", name);
            return -1;
        }
        for (size_t j = 0; j < n; j++)
            if (strcmp(labels[j], labels[n]) == 0) {
                reg_err(m, "%s: label %s twice", name, labels[n]);
                return -1;
            }
    }
    if (type != BN_METRIC_HISTOGRAM) return 0;
    if (n_buckets == 0 || n_buckets > BN_METRICS_MAX_BUCKETS || !buckets) {
        reg_err(m, "%s: a histogram needs 1 to %d buckets", name, BN_METRICS_MAX_BUCKETS);
        return -1;
    }
    for (size_t i = 0; i < n_buckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
            reg_err(m, "%s: buckets must be finite and increasing", name);
            return -1;
        }
    return 0;
}

bn_mfamily *bn_metrics_define(bn_metrics *m, bn_metric_type type, const char *name,
                              const char *help, const char *const *labels, const double *buckets,
                              size_t n_buckets)
{
    bn_mfamily *f = NULL;
    pthread_mutex_lock(&m->mu);
    if (check_def(m, type, name, labels, buckets, n_buckets)) goto fail;
    if (!(f = calloc(1, sizeof *f))) goto oom;
    f->reg = m;
    f->type = type;
    if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : ""))) goto oom;
    for (; labels && labels[f->n_labels]; f->n_labels++)
        if (!(f->labels[f->n_labels] = strdup(labels[f->n_labels]))) goto oom;
    if (type == BN_METRIC_HISTOGRAM) {
        if (!(f->buckets = malloc(n_buckets * sizeof *buckets))) goto oom;
        memcpy(f->buckets, buckets, n_buckets * sizeof *buckets);
        f->n_buckets = n_buckets;
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    pthread_mutex_unlock(&m->mu);
    return f;
oom:
    reg_err(m, "out of memory");
    if (f) family_free(f);
fail:
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

bn_mfamily *bn_metrics_find(bn_metrics *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    bn_mfamily *f = m->first;
    while (f && strcmp(f->name, name) != 0) f = f->next;
    pthread_mutex_unlock(&m->mu);
    return f;
}

const char *bn_mfamily_name(const bn_mfamily *f)
{
    return f->name;
}

bn_metric_type bn_mfamily_type(const bn_mfamily *f)
{
    return f->type;
}

/* The series named by lv (valid UTF-8); created when create is set. NULL when absent or on
 * failure. */
static mseries *find_series_utf8(bn_mfamily *f, const char *const *lv, int create)
{
    for (size_t i = 0; i < f->n; i++) {
        size_t j = 0;
        while (j < f->n_labels && strcmp(f->s[i].lv[j], lv[j] ? lv[j] : "") == 0) j++;
        if (j == f->n_labels) return &f->s[i];
    }
    if (!create) return NULL;
    if (f->n == BN_METRICS_MAX_SERIES) {
        reg_err(f->reg, "%s: more than %d series", f->name, BN_METRICS_MAX_SERIES);
        return NULL;
    }
    if (f->n == f->cap) {
        const size_t cap = f->cap ? f->cap * 2 : 4;
        mseries *s = realloc(f->s, cap * sizeof *s);
        if (!s) goto oom;
        f->s = s;
        f->cap = cap;
    }
    mseries *s = &f->s[f->n];
    memset(s, 0, sizeof *s);
    if (!(s->lv = calloc(f->n_labels ? f->n_labels : 1, sizeof *s->lv))) goto oom;
    if (f->type == BN_METRIC_HISTOGRAM &&
        !(s->bucket = calloc(f->n_buckets + 1, sizeof *s->bucket)))
        goto oom_s;
    for (size_t j = 0; j < f->n_labels; j++)
        if (!(s->lv[j] = strdup(lv[j] ? lv[j] : ""))) goto oom_s;
    f->n++;
    return s;
oom_s:
    series_release(f, s);
oom:
    reg_err(f->reg, "out of memory");
    return NULL;
}

/* The series named by lv. The registry keeps label values as valid UTF-8 (each bad byte
 * becomes U+FFFD), so that the exposition, the snapshots and the JSON always parse: a model
 * path in Latin-1 must not make every scrape invalid. */
static mseries *find_series(bn_mfamily *f, const char *const *lv, int create)
{
    char *clean[BN_METRICS_MAX_LABELS] = {0};
    const char *use[BN_METRICS_MAX_LABELS] = {0};
    mseries *s = NULL;
    for (size_t j = 0; j < f->n_labels; j++) {
        use[j] = lv[j] ? lv[j] : "";
        if (bn_utf8_valid(use[j])) continue;
        if (!(use[j] = clean[j] = bn_utf8_clean(use[j], strlen(use[j])))) {
            reg_err(f->reg, "out of memory");
            goto done;
        }
    }
    s = find_series_utf8(f, use, create);
done:
    for (size_t j = 0; j < f->n_labels; j++) free(clean[j]);
    return s;
}

static const char *const no_labels[1] = {NULL};

int bn_metric_set(bn_mfamily *f, const char *const *lv, double v)
{
    int rc = -1;
    pthread_mutex_lock(&f->reg->mu);
    mseries *s;
    if (f->type == BN_METRIC_HISTOGRAM)
        reg_err(f->reg, "%s: set on a histogram", f->name);
    else if ((s = find_series(f, lv ? lv : no_labels, 1))) {
        s->value = v;
        rc = 0;
    }
    pthread_mutex_unlock(&f->reg->mu);
    return rc;
}

int bn_metric_add(bn_mfamily *f, const char *const *lv, double d)
{
    int rc = -1;
    pthread_mutex_lock(&f->reg->mu);
    mseries *s;
    if (f->type == BN_METRIC_HISTOGRAM || (f->type == BN_METRIC_COUNTER && !(d >= 0)))
        reg_err(f->reg, "%s: bad add", f->name);
    else if ((s = find_series(f, lv ? lv : no_labels, 1))) {
        s->value += d;
        rc = 0;
    }
    pthread_mutex_unlock(&f->reg->mu);
    return rc;
}

int bn_metric_observe(bn_mfamily *f, const char *const *lv, double v)
{
    int rc = -1;
    pthread_mutex_lock(&f->reg->mu);
    mseries *s;
    if (f->type != BN_METRIC_HISTOGRAM || !isfinite(v))
        reg_err(f->reg, "%s: bad observation", f->name);
    else if ((s = find_series(f, lv ? lv : no_labels, 1))) {
        size_t i = 0;
        while (i < f->n_buckets && v > f->buckets[i]) i++;
        s->bucket[i]++;
        s->count++;
        s->sum += v;
        rc = 0;
    }
    pthread_mutex_unlock(&f->reg->mu);
    return rc;
}

int bn_metric_get(bn_mfamily *f, const char *const *lv, double *v)
{
    pthread_mutex_lock(&f->reg->mu);
    mseries *s = f->type == BN_METRIC_HISTOGRAM ? NULL : find_series(f, lv ? lv : no_labels, 0);
    if (s) *v = s->value;
    pthread_mutex_unlock(&f->reg->mu);
    return s ? 0 : -1;
}

void bn_mfamily_clear(bn_mfamily *f)
{
    pthread_mutex_lock(&f->reg->mu);
    for (size_t i = 0; i < f->n; i++) series_release(f, &f->s[i]);
    f->n = 0;
    pthread_mutex_unlock(&f->reg->mu);
}

/* ---- exposition -------------------------------------------------------------------------- */

/* Appends s with \ and newline escaped, and " too when quote is set. */
static void put_escaped(bn_buf *b, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : 0;
        if (!rep) continue;
        bn_buf_add(b, run, (size_t)(s - run));
        bn_buf_puts(b, rep);
        run = s + 1;
    }
    bn_buf_add(b, run, (size_t)(s - run));
}

/* {a="x",b="y"} with an extra le="..." when le is not NULL; nothing when there are none. */
static void put_labels(bn_buf *b, const bn_mfamily *f, const mseries *s, const char *le)
{
    if (f->n_labels == 0 && !le) return;
    bn_buf_puts(b, "{");
    for (size_t j = 0; j < f->n_labels; j++) {
        bn_buf_printf(b, "%s%s=\"", j ? "," : "", f->labels[j]);
        put_escaped(b, s->lv[j], 1);
        bn_buf_puts(b, "\"");
    }
    if (le) bn_buf_printf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    bn_buf_puts(b, "}");
}

static void put_sample(bn_buf *b, const char *name, const bn_mfamily *f, const mseries *s,
                       const char *suffix, const char *le, double v)
{
    char num[32];
    bn_buf_puts(b, name);
    bn_buf_puts(b, suffix);
    put_labels(b, f, s, le);
    bn_buf_printf(b, " %s\n", bn_metrics_fmt_double(v, num));
}

static void render_family(bn_buf *b, const bn_mfamily *f, const char *name)
{
    static const char *const tname[] = {"counter", "gauge", "histogram"};
    bn_buf_printf(b, "# HELP %s ", name);
    put_escaped(b, f->help, 0);
    bn_buf_printf(b, "\n# TYPE %s %s\n", name, tname[f->type]);
    for (size_t i = 0; i < f->n; i++) {
        const mseries *s = &f->s[i];
        if (f->type != BN_METRIC_HISTOGRAM) {
            put_sample(b, name, f, s, "", NULL, s->value);
            continue;
        }
        char le[32];
        uint64_t cum = 0;
        for (size_t k = 0; k < f->n_buckets; k++) {
            cum += s->bucket[k];
            put_sample(b, name, f, s, "_bucket", bn_metrics_fmt_double(f->buckets[k], le),
                       (double)cum);
        }
        put_sample(b, name, f, s, "_bucket", "+Inf", (double)s->count);
        put_sample(b, name, f, s, "_sum", NULL, s->sum);
        put_sample(b, name, f, s, "_count", NULL, (double)s->count);
    }
}

int bn_metrics_render(bn_metrics *m, bn_buf *out)
{
    return bn_metrics_render_renamed(m, out, NULL, NULL);
}

int bn_metrics_render_renamed(bn_metrics *m, bn_buf *out, const char *from, const char *to)
{
    const size_t nf = from ? strlen(from) : 0;
    char name[512];
    pthread_mutex_lock(&m->mu);
    for (const bn_mfamily *f = m->first; f && !out->failed; f = f->next) {
        if (!f->n) continue;
        const int rename = nf && to && strncmp(f->name, from, nf) == 0;
        if (rename) snprintf(name, sizeof name, "%s%s", to, f->name + nf);
        render_family(out, f, rename ? name : f->name);
    }
    pthread_mutex_unlock(&m->mu);
    return out->failed ? -1 : 0;
}

/* ---- snapshots ----------------------------------------------------------------------------- */

typedef struct arena {
    void **p;
    size_t n, cap;
    int oom;
} arena;

static void *arena_keep(arena *a, void *p)
{
    if (!p || a->oom) goto fail;
    if (a->n == a->cap) {
        const size_t cap = a->cap ? a->cap * 2 : 64;
        void **q = realloc(a->p, cap * sizeof *q);
        if (!q) goto fail;
        a->p = q;
        a->cap = cap;
    }
    a->p[a->n++] = p;
    return p;
fail:
    free(p);
    a->oom = 1;
    return NULL;
}

static void arena_free(arena *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) free(a->p[i]);
    free(a->p);
    free(a);
}

typedef struct snap_builder {
    arena *a;
    bn_msample *v;
    size_t n, cap;
} snap_builder;

/* Adds one sample of series s of f (suffix and le select which). */
static void snap_add(snap_builder *sb, const bn_mfamily *f, const mseries *s, const char *family,
                     const char *help, bn_msample_kind kind, const char *le, double value)
{
    static const char *const suffix[] = {"", "_sum", "_count", "_bucket"};
    if (sb->a->oom) return;
    if (sb->n == sb->cap) {
        const size_t cap = sb->cap ? sb->cap * 2 : 64;
        bn_msample *v = realloc(sb->v, cap * sizeof *v);
        if (!v) {
            sb->a->oom = 1;
            return;
        }
        sb->v = v;
        sb->cap = cap;
    }
    const size_t nl = f->n_labels + (le ? 1 : 0);
    bn_mlabel *l = arena_keep(sb->a, calloc(nl ? nl : 1, sizeof *l));
    const size_t namesz = strlen(family) + 8;
    char *name = arena_keep(sb->a, malloc(namesz));
    if (!l || !name) return;
    snprintf(name, namesz, "%s%s", family, suffix[kind]);
    for (size_t j = 0; j < f->n_labels; j++) {
        l[j].name = f->labels[j];
        l[j].value = s->lv[j];
    }
    if (le) {
        l[f->n_labels].name = "le";
        l[f->n_labels].value = arena_keep(sb->a, strdup(le));
    }
    sb->v[sb->n++] = (bn_msample){.family = family,
                                  .name = name,
                                  .help = help,
                                  .type = f->type,
                                  .kind = kind,
                                  .n_labels = nl,
                                  .labels = l,
                                  .value = value};
}

/* Label names and values point into the registry until fix_labels copies them. */
static void fix_labels(snap_builder *sb, size_t from)
{
    for (size_t i = from; i < sb->n && !sb->a->oom; i++) {
        bn_mlabel *l = (bn_mlabel *)sb->v[i].labels;
        const size_t own = sb->v[i].kind == BN_MSAMPLE_BUCKET ? 1 : 0;
        for (size_t j = 0; j + own < sb->v[i].n_labels; j++) {
            l[j].name = arena_keep(sb->a, strdup(l[j].name));
            l[j].value = arena_keep(sb->a, strdup(l[j].value));
        }
    }
}

static void snap_family(snap_builder *sb, const bn_mfamily *f, int with_buckets)
{
    const char *family = arena_keep(sb->a, strdup(f->name));
    const char *help = arena_keep(sb->a, strdup(f->help));
    if (!family || !help) return;
    const size_t from = sb->n;
    for (size_t i = 0; i < f->n; i++) {
        const mseries *s = &f->s[i];
        if (f->type != BN_METRIC_HISTOGRAM) {
            snap_add(sb, f, s, family, help, BN_MSAMPLE_VALUE, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[32];
        for (size_t k = 0; with_buckets && k < f->n_buckets; k++) {
            cum += s->bucket[k];
            snap_add(sb, f, s, family, help, BN_MSAMPLE_BUCKET,
                     bn_metrics_fmt_double(f->buckets[k], le), (double)cum);
        }
        if (with_buckets)
            snap_add(sb, f, s, family, help, BN_MSAMPLE_BUCKET, "+Inf", (double)s->count);
        snap_add(sb, f, s, family, help, BN_MSAMPLE_SUM, NULL, s->sum);
        snap_add(sb, f, s, family, help, BN_MSAMPLE_COUNT, NULL, (double)s->count);
    }
    fix_labels(sb, from);
}

int bn_metrics_snapshot(bn_metrics *m, int with_buckets, bn_msnap *out)
{
    memset(out, 0, sizeof *out);
    snap_builder sb = {.a = calloc(1, sizeof(arena))};
    if (!sb.a) return -1;
    pthread_mutex_lock(&m->mu);
    for (const bn_mfamily *f = m->first; f && !sb.a->oom; f = f->next)
        snap_family(&sb, f, with_buckets);
    pthread_mutex_unlock(&m->mu);
    if (sb.a->oom) {
        free(sb.v);
        arena_free(sb.a);
        return -1;
    }
    out->v = sb.v;
    out->n = sb.n;
    out->arena_ = sb.a;
    return 0;
}

void bn_msnap_release(bn_msnap *s)
{
    free(s->v);
    arena_free(s->arena_);
    memset(s, 0, sizeof *s);
}

const char *bn_msample_label(const bn_msample *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i].name, name) == 0) return s->labels[i].value;
    return NULL;
}

void bn_msample_series(const bn_msample *s, char *buf, size_t size)
{
    bn_buf b;
    bn_buf_init(&b, size > 0 ? size - 1 : 0);
    bn_buf_puts(&b, s->name);
    for (size_t i = 0; i < s->n_labels; i++) {
        bn_buf_printf(&b, "%s%s=\"", i ? "," : "{", s->labels[i].name);
        put_escaped(&b, s->labels[i].value, 1);
        bn_buf_puts(&b, "\"");
    }
    if (s->n_labels) bn_buf_puts(&b, "}");
    if (size) snprintf(buf, size, "%s", b.s ? b.s : s->name);
    bn_buf_release(&b);
}

/* ---- selectors --------------------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Reads an identifier of [a-zA-Z0-9_:] into out; returns the end, or NULL. */
static const char *read_ident(const char *p, char *out, size_t size)
{
    size_t n = 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == ':') {
        if (n + 1 >= size) return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return n ? p : NULL;
}

/* Reads a double-quoted string with \\, \" and \n escapes. */
static const char *read_quoted(const char *p, char *out, size_t size)
{
    if (*p++ != '"') return NULL;
    size_t n = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (c == 'n')
                c = '\n';
            else if (c != '\\' && c != '"')
                return NULL;
        }
        if (n + 1 >= size) return NULL;
        out[n++] = c;
    }
    out[n] = '\0';
    return *p == '"' ? p + 1 : NULL;
}

static int sel_fail(char *err, size_t errsz, const char *text, const char *why)
{
    snprintf(err, errsz, "'%s': %s", text, why);
    return -1;
}

int bn_msel_parse(const char *text, bn_msel *out, char *err, size_t errsz)
{
    memset(out, 0, sizeof *out);
    const char *p = read_ident(skip_ws(text), out->name, sizeof out->name);
    if (!p || !valid_metric_name(out->name))
        return sel_fail(err, errsz, text, "expected a metric name");
    p = skip_ws(p);
    if (*p == '{') {
        p = skip_ws(p + 1);
        while (*p != '}') {
            if (out->n == BN_METRICS_MAX_LABELS)
                return sel_fail(err, errsz, text, "too many labels");
            const char *q = read_ident(p, out->m[out->n].name, sizeof out->m[out->n].name);
            if (!q || !valid_label_name(out->m[out->n].name))
                return sel_fail(err, errsz, text, "expected a label name");
            q = skip_ws(q);
            if (q[0] == '!' && q[1] == '=') {
                out->m[out->n].neq = 1;
                q += 2;
            } else if (q[0] == '=') {
                q++;
            } else {
                return sel_fail(err, errsz, text, "expected = or != after a label name");
            }
            q = read_quoted(skip_ws(q), out->m[out->n].value, sizeof out->m[out->n].value);
            if (!q) return sel_fail(err, errsz, text, "expected a label value in double quotes");
            out->n++;
            p = skip_ws(q);
            if (*p == ',')
                p = skip_ws(p + 1);
            else if (*p != '}')
                return sel_fail(err, errsz, text, "expected , or }");
        }
        p = skip_ws(p + 1);
    }
    if (*p) return sel_fail(err, errsz, text, "unexpected text after the selector");
    return 0;
}

int bn_msel_match(const bn_msel *sel, const bn_msample *s)
{
    if (strcmp(sel->name, s->name) != 0) return 0;
    for (size_t i = 0; i < sel->n; i++) {
        const char *v = bn_msample_label(s, sel->m[i].name);
        const int eq = strcmp(v ? v : "", sel->m[i].value) == 0;
        if (eq == sel->m[i].neq) return 0;
    }
    return 1;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static cJSON *json_number(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *series_json(const bn_mfamily *f, const mseries *s)
{
    static const char *const tname[] = {"counter", "gauge", "histogram"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", f->name);
    cJSON_AddStringToObject(o, "type", tname[f->type]);
    cJSON_AddStringToObject(o, "help", f->help);
    cJSON *l = cJSON_AddObjectToObject(o, "labels");
    for (size_t j = 0; l && j < f->n_labels; j++)
        cJSON_AddStringToObject(l, f->labels[j], s->lv[j]);
    if (f->type != BN_METRIC_HISTOGRAM) {
        cJSON_AddItemToObject(o, "value", json_number(s->value));
        return o;
    }
    cJSON *b = cJSON_AddArrayToObject(o, "buckets");
    uint64_t cum = 0;
    for (size_t k = 0; b && k <= f->n_buckets; k++) {
        cum += s->bucket[k];
        cJSON *e = cJSON_CreateObject();
        if (k < f->n_buckets)
            cJSON_AddNumberToObject(e, "le", f->buckets[k]);
        else
            cJSON_AddStringToObject(e, "le", "+Inf");
        cJSON_AddNumberToObject(e, "count", (double)cum);
        cJSON_AddItemToArray(b, e);
    }
    cJSON_AddItemToObject(o, "sum", json_number(s->sum));
    cJSON_AddNumberToObject(o, "count", (double)s->count);
    return o;
}

cJSON *bn_metrics_to_json(bn_metrics *m)
{
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    pthread_mutex_lock(&m->mu);
    for (const bn_mfamily *f = m->first; f; f = f->next)
        for (size_t i = 0; i < f->n; i++) {
            cJSON *o = series_json(f, &f->s[i]);
            if (!o || !cJSON_AddItemToArray(a, o)) {
                cJSON_Delete(o);
                cJSON_Delete(a);
                a = NULL;
                goto done;
            }
        }
done:
    pthread_mutex_unlock(&m->mu);
    return a;
}
