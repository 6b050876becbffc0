/*
 * metrics.h - a registry of metrics (counters, gauges, histograms with labels), their
 * exposition in the Prometheus text format 0.0.4, snapshots for the push sinks and the
 * alert rules, and series selectors ("name{label=\"value\"}").
 *
 * Usage:
 *
 *     bn_metrics *m;
 *     if (bn_metrics_new(&m) != 0) return -1;                    // out of memory
 *     static const char *const gpu_labels[] = {"gpu", NULL};
 *     bn_mfamily *used = bn_metrics_define(m, BN_METRIC_GAUGE, "bitnet_gpu_memory_used_bytes",
 *                                          "GPU memory in use.", gpu_labels, NULL, 0);
 *     const char *lv[] = {"0"};
 *     bn_metric_set(used, lv, 1.5e9);
 *
 *     bn_buf out;
 *     bn_buf_init(&out, 16 << 20);                               // at most 16 MiB
 *     bn_metrics_render(m, &out);                                // "# HELP ...\n# TYPE ..."
 *     ... out.s, out.len ...
 *     bn_buf_release(&out);
 *     bn_metrics_free(m);                                        // and every family
 *
 * Threads: every function on a registry or a family takes the registry's (recursive) lock,
 * so one thread may update while another renders. bn_metrics_lock/unlock group several
 * updates so that a scrape sees all of them or none (a family cleared and refilled).
 *
 * Ownership: the registry owns its families (freed with it) and copies every name, label
 * and help text it is given. A snapshot owns copies of everything in it.
 *
 * Limits: names and label values are checked when defining ([a-zA-Z_:][a-zA-Z0-9_:]* for
 * metric names, [a-zA-Z_][a-zA-Z0-9_]* and no leading "__" for label names, "le" is not a
 * label of a histogram); at most BN_METRICS_MAX_LABELS labels, BN_METRICS_MAX_BUCKETS
 * buckets and BN_METRICS_MAX_SERIES series per family (a new series past that fails).
 */
#ifndef BITNET_COMMON_METRICS_H
#define BITNET_COMMON_METRICS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define BN_METRICS_MAX_LABELS   8
#define BN_METRICS_MAX_BUCKETS  32
#define BN_METRICS_MAX_SERIES   4096
#define BN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- a growable text buffer with a size cap ------------------------------------------- */

typedef struct bn_buf {
    char *s;    /* NUL-terminated while len < cap; malloc'ed (free() it, or release) */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    size_t max; /* appends that would pass this fail */
    int failed; /* an append failed (out of memory or past max); later ones are no-ops */
} bn_buf;

void bn_buf_init(bn_buf *b, size_t max);
/* 0, or -1 (and b->failed set) when out of memory or past max. */
int bn_buf_add(bn_buf *b, const char *s, size_t n);
int bn_buf_puts(bn_buf *b, const char *s);
int bn_buf_printf(bn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text out (the caller free()s it) and empties b; NULL when b->failed. */
char *bn_buf_detach(bn_buf *b, size_t *len);
void bn_buf_release(bn_buf *b);

/* A number as the text format writes it: the shortest of %.15g..%.17g that reads back
 * exactly, "+Inf", "-Inf" or "NaN". buf needs 32 bytes. */
const char *bn_metrics_fmt_double(double v, char buf[32]);

/* ---- the registry ----------------------------------------------------------------------- */

typedef enum bn_metric_type {
    BN_METRIC_COUNTER = 0,
    BN_METRIC_GAUGE = 1,
    BN_METRIC_HISTOGRAM = 2,
} bn_metric_type;

typedef struct bn_metrics bn_metrics;
typedef struct bn_mfamily bn_mfamily;

/* 0, or -1 when out of memory. */
int bn_metrics_new(bn_metrics **out);
void bn_metrics_free(bn_metrics *m); /* NULL is fine */
/* The message of the last failed call ("" when none). */
const char *bn_metrics_errmsg(const bn_metrics *m);

void bn_metrics_lock(bn_metrics *m);
void bn_metrics_unlock(bn_metrics *m);

/* Defines a family: labels is a NULL-terminated list of label names (NULL: none); buckets
 * (histograms only) are the finite upper bounds, strictly increasing (+Inf is implicit).
 * Returns the family, or NULL (bad name, duplicate, bad buckets, out of memory) with the
 * reason in bn_metrics_errmsg. */
bn_mfamily *bn_metrics_define(bn_metrics *m, bn_metric_type type, const char *name,
                              const char *help, const char *const *labels, const double *buckets,
                              size_t n_buckets);
/* A family by name, or NULL. */
bn_mfamily *bn_metrics_find(bn_metrics *m, const char *name);
const char *bn_mfamily_name(const bn_mfamily *f);
bn_metric_type bn_mfamily_type(const bn_mfamily *f);

/* Series are named by their label values, in the order of the family's label names (lv
 * may be NULL for a family without labels). A series is created on first use.
 * set: gauges, and counters fed from a monotonic source (CPU time); add: counters (d >= 0)
 * and gauges; observe: histograms (v finite). 0, or -1 (wrong type, bad value, too many
 * series, out of memory). */
int bn_metric_set(bn_mfamily *f, const char *const *lv, double v);
int bn_metric_add(bn_mfamily *f, const char *const *lv, double d);
int bn_metric_observe(bn_mfamily *f, const char *const *lv, double v);
/* The value of a counter or gauge series; 0 when found, -1 when there is none. */
int bn_metric_get(bn_mfamily *f, const char *const *lv, double *v);
/* Removes every series of the family (gauges refilled on each collection). */
void bn_mfamily_clear(bn_mfamily *f);

/* Appends the exposition of every family that has series (or no labels) to out:
 * "# HELP", "# TYPE", then one line per sample; histograms as _bucket{le=...} (cumulative,
 * ending with +Inf), _sum and _count. 0, or -1 when out ran out of room. */
int bn_metrics_render(bn_metrics *m, bn_buf *out);
/* As bn_metrics_render, with each family whose name begins with from written as beginning
 * with to instead (from and to [a-zA-Z_:]; NULL: none renamed). The push and textfile
 * outputs use "process_" -> "bitnet_process_": node_exporter and the Pushgateway export
 * process_* of their own, and a second source of those names breaks their scrapes. */
int bn_metrics_render_renamed(bn_metrics *m, bn_buf *out, const char *from, const char *to);

/* ---- snapshots: the samples at one moment ------------------------------------------------ */

typedef enum bn_msample_kind {
    BN_MSAMPLE_VALUE = 0,  /* a counter or gauge */
    BN_MSAMPLE_SUM = 1,    /* <histogram>_sum */
    BN_MSAMPLE_COUNT = 2,  /* <histogram>_count */
    BN_MSAMPLE_BUCKET = 3, /* <histogram>_bucket, with an "le" label last */
} bn_msample_kind;

typedef struct bn_mlabel {
    const char *name, *value;
} bn_mlabel;

typedef struct bn_msample {
    const char *family; /* "x" */
    const char *name;   /* "x", "x_sum", "x_count" or "x_bucket" */
    const char *help;
    bn_metric_type type; /* of the family */
    bn_msample_kind kind;
    size_t n_labels;
    const bn_mlabel *labels;
    double value;
} bn_msample;

typedef struct bn_msnap {
    bn_msample *v;
    size_t n;
    void *arena_; /* private */
} bn_msnap;

/* Copies every sample (buckets only when with_buckets). 0, or -1 when out of memory. */
int bn_metrics_snapshot(bn_metrics *m, int with_buckets, bn_msnap *out);
void bn_msnap_release(bn_msnap *s);
/* The value of label name in s, or NULL. */
const char *bn_msample_label(const bn_msample *s, const char *name);
/* The series as text: name{a="x",b="y"} (escaped as in the exposition). */
void bn_msample_series(const bn_msample *s, char *buf, size_t size);

/* ---- selectors: which series an alert rule watches ------------------------------------- */

typedef struct bn_msel {
    char name[128];
    size_t n;
    struct {
        char name[64];
        char value[128];
        int neq; /* != rather than = */
    } m[BN_METRICS_MAX_LABELS];
} bn_msel;

/* Parses "name", "name{}" or "name{a=\"x\", b!=\"y\"}" (values in double quotes with \\,
 * \" and \n escapes). 0, or -1 with a message in err. */
int bn_msel_parse(const char *text, bn_msel *out, char *err, size_t errsz);
/* Whether the sample's name and labels satisfy the selector. */
int bn_msel_match(const bn_msel *sel, const bn_msample *s);

/* ---- JSON -------------------------------------------------------------------------------- */

/* [{"name", "type", "help", "labels": {...}, "value"} or, for histograms, "buckets":
 * [{"le", "count"}], "sum", "count"}] of every series; NULL when out of memory. Infinite and
 * NaN values become null. */
cJSON *bn_metrics_to_json(bn_metrics *m);

#endif
