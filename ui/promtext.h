/*
 * promtext.h - a reader of the Prometheus text exposition (format 0.0.4), the answer of
 * `bitnet serve`'s and `bitnet monitor`'s GET /metrics, for the TUI's Server screen.
 *
 * Usage:
 *
 *     static void on_sample(void *ud, const pt_sample *s)
 *     {
 *         if (!strcmp(s->series.name, "bitnet_slots")) ((double *)ud)[0] = s->value;
 *     }
 *     char err[256];
 *     double slots = NAN;
 *     int bad = pt_parse(text, len, on_sample, &slots, err, sizeof err);
 *     if (bad) ... "bad lines skipped; the first: <err>" ...
 *
 * Each sample line ("name{a=\"x\"} 1.5 [timestamp]") goes to the callback, with the type of
 * its family from the "# TYPE" line before it (the format keeps a family's lines together;
 * a histogram's name_bucket, name_sum and name_count belong to name). "# HELP" and other
 * comments and empty lines are skipped. A line that does not parse (a bad name or label, a
 * missing or bad value, a bad timestamp, text after it, a NUL byte, an unknown TYPE) is
 * skipped and counted, and the first one's reason is kept ("line 3: ..."); the others still
 * reach the callback, as one broken series should not hide the rest.
 *
 * Series and labels are bn_msel's (common/metrics.h), read by bn_msel_parse: names up to
 * 127 bytes, label values up to 127 bytes, at most BN_METRICS_MAX_LABELS labels; a longer
 * or a "!=" one is a bad line. A line is at most PT_LINE_MAX bytes.
 *
 * Ownership: nothing is allocated; the sample handed to the callback lives until it returns.
 */
#ifndef BITNET_UI_PROMTEXT_H
#define BITNET_UI_PROMTEXT_H

#include <stddef.h>

#include "common/metrics.h"

#define PT_LINE_MAX 4096

typedef enum pt_type {
    PT_UNTYPED = 0,
    PT_COUNTER,
    PT_GAUGE,
    PT_HISTOGRAM,
    PT_SUMMARY,
} pt_type;

typedef struct pt_sample {
    bn_msel series; /* the name and the labels (every neq 0) */
    double value;   /* may be NaN or infinite */
    pt_type type;   /* of its family; PT_UNTYPED when no TYPE line names it */
    int line;       /* 1-based */
} pt_sample;

typedef void (*pt_sample_fn)(void *ud, const pt_sample *s);

/* Reads len bytes of text (no NUL needed). Returns the number of bad lines (0: all good);
 * when there are some, err holds the first one's reason. */
int pt_parse(const char *text, size_t len, pt_sample_fn fn, void *ud, char *err, size_t errsz);

/* The value of label name in s, or NULL. */
const char *pt_label(const pt_sample *s, const char *name);

#endif
