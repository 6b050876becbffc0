/*
 * bitnet/db_spool.h - the monitor's store in the history database (tables of migration 3 in
 * db/migrations.c): the spool of samples and notifications waiting for their sink, the
 * transitions of alert rules, and the summaries of recent runs the monitor exports.
 *
 * The spool is a queue per sink, oldest first. Everything a push sink should receive goes
 * through it: the monitor adds an entry, the sender peeks the oldest entries of a sink, sends
 * them and marks them done (deleted) or failed (kept, attempts counted). The spool is bounded:
 * past max_entries samples and pushes, the oldest of those (of any sink) are deleted, counted
 * per sink and reported to the drop callback. Alert notifications have a bound of their own
 * (max_notifications) and are the last thing dropped: samples never make room at their
 * expense, and past their bound only what a receiver can do without goes (a firing
 * notification with its resolved one, or a test), so that no receiver gets a resolved
 * notification without its firing one.
 *
 * Usage:
 *
 *     bn_spool *sp;
 *     if (bn_spool_open(&sp, "/home/u/.local/share/bitnet/history.db", 10000, 90) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_spool_errmsg(sp));
 *         bn_spool_close(sp);
 *         return;
 *     }
 *     bn_spool_push(sp, "webhook", "notification", "{...}", now_ms, 0);
 *     bn_spool_entry *e; size_t n;
 *     bn_spool_peek(sp, "webhook", 16, &e, &n);
 *     ... send e[0..n) ...
 *     bn_spool_done(sp, ids, n);          // or bn_spool_failed(sp, ids, n, "timeout")
 *     bn_spool_entries_free(e, n);
 *     bn_spool_close(sp);
 *
 * Threads: one handle may be used from several threads (an internal lock). Several
 * processes may share the file (sqlite's locking, a busy timeout), but only one should drain
 * a sink's entries at a time (bitnet monitor takes a lock file for that).
 *
 * Ownership and errors: as in bitnet/db.h. Every function that can fail returns a bn_status
 * and leaves the message on the handle (bn_spool_errmsg); bn_spool_open hands out a handle
 * even when it fails (NULL only when out of memory) so the message can be read: close it.
 * Entries and transitions handed out are bn_malloc'ed and belong to the caller (their _free).
 */
#ifndef BITNET_DB_SPOOL_H
#define BITNET_DB_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/db.h"
#include "bitnet/db_tenants.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_SPOOL_MAX_DEFAULT        10000     /* samples and pushes */
#define BN_SPOOL_NOTIFY_MAX_DEFAULT 1000      /* alert notifications */
#define BN_SPOOL_PAYLOAD_MAX        (4 << 20) /* bytes per entry */

typedef struct bn_spool bn_spool;

/* Opens the history at path (creating it, applying the migrations) and the spool in it.
 * max_entries >= 1 bounds the spool; runs and transitions older than retention_days (0: keep)
 * are deleted. Errors as bn_db_open's. */
bn_status bn_spool_open(bn_spool **out, const char *path, int64_t max_entries, int retention_days);
void bn_spool_close(bn_spool *sp); /* NULL is fine */
const char *bn_spool_errmsg(const bn_spool *sp);
const char *bn_spool_path(const bn_spool *sp);

/* Sets the bounds: samples and pushes, and notifications (kind "notification"); 0 or less
 * keeps a bound as it is. The next push applies them. */
void bn_spool_set_max(bn_spool *sp, int64_t max_entries, int64_t max_notifications);

/* Called (with the spool's lock held; keep it short) when entries are dropped to keep the
 * bound: n entries of sink and kind, oldest first. */
typedef void (*bn_spool_drop_fn)(void *ud, const char *sink, const char *kind, int64_t n);
void bn_spool_on_drop(bn_spool *sp, bn_spool_drop_fn fn, void *ud);

/* ---- the queue ---------------------------------------------------------------------------- */

/* Adds an entry for sink. replace: first deletes the sink's entries of that kind (a push
 * sink that only wants the latest state). BN_ERR_RANGE: too large an entry. */
bn_status bn_spool_push(bn_spool *sp, const char *sink, const char *kind, const char *payload,
                        int64_t now_ms, int replace);

typedef struct bn_spool_entry {
    int64_t id;
    char sink[32];
    char kind[16];
    char *payload; /* bn_malloc'ed */
    size_t len;
    int64_t created_ms;
    int attempts;
} bn_spool_entry;

/* The oldest max_n entries of sink (NULL: any), oldest first, in an array of *n. */
bn_status bn_spool_peek(bn_spool *sp, const char *sink, size_t max_n, bn_spool_entry **out,
                        size_t *n);
void bn_spool_entries_free(bn_spool_entry *e, size_t n);
/* Delivered: deletes them. */
bn_status bn_spool_done(bn_spool *sp, const int64_t *ids, size_t n);
/* Dropped for good (the sink refuses them, or they are too old for it): deletes them. A
 * firing notification takes its resolved one along, the one queued or else the one to come
 * (counted as dropped then), so that no receiver gets a resolved notification alone. */
bn_status bn_spool_drop(bn_spool *sp, const int64_t *ids, size_t n);
/* Not delivered: counts an attempt and keeps the error. */
bn_status bn_spool_failed(bn_spool *sp, const int64_t *ids, size_t n, const char *error);
/* Entries waiting for sink (NULL: all); -1 on error. */
int64_t bn_spool_count(bn_spool *sp, const char *sink);
/* Entries this handle dropped for sink (NULL: all) since it was opened. */
int64_t bn_spool_dropped(bn_spool *sp, const char *sink);

/* ---- alert transitions ---------------------------------------------------------------------- */

typedef struct bn_spool_transition {
    const char *rule, *from, *to; /* states by name */
    int64_t at_ms;
    double value; /* NaN: no data (stored as NULL) */
    const char *series, *metric, *severity, *host;
} bn_spool_transition;

bn_status bn_spool_transition_add(bn_spool *sp, const bn_spool_transition *t);

/* A recorded transition (strings bn_malloc'ed; NULL when none). */
typedef struct bn_spool_transition_rec {
    int64_t id;
    char *rule, *from, *to;
    int64_t at_ms;
    double value; /* NaN: no data */
    char *series, *metric, *severity, *host;
} bn_spool_transition_rec;

/* The transitions of rule (NULL: all), newest first, at most limit (0: all), in an array of
 * *n (bn_spool_transitions_free). */
bn_status bn_spool_transitions(bn_spool *sp, const char *rule, int64_t limit,
                               bn_spool_transition_rec **out, size_t *n);
void bn_spool_transitions_free(bn_spool_transition_rec *t, size_t n);
/* The state rule was last moved to and when; BN_ERR_NOT_FOUND when it has no transition. */
bn_status bn_spool_last_state(bn_spool *sp, const char *rule, char *state, size_t size,
                              int64_t *at_ms);

/* ---- the history's runs, summarised for the monitor -------------------------------------------
 */

/* Calls fn for each (command, status) with its number of runs. */
bn_status bn_spool_run_counts(bn_spool *sp,
                              void (*fn)(void *ud, const char *command, const char *status,
                                         int64_t n),
                              void *ud);
/* Conversion jobs of the queue (the jobs table) by status: fn(ud, status, n). */
bn_status bn_spool_job_counts(bn_spool *sp, void (*fn)(void *ud, const char *status, int64_t n),
                              void *ud);
/* Calls fn, for each command and numeric metric whose name ends in "tokens_per_s" (and the
 * bench's "best_gemv_weight_gbps"), with its values in the newest 256 successful runs, oldest
 * first (so the last call of a pair has the newest value). */
bn_status bn_spool_run_metrics(bn_spool *sp,
                               void (*fn)(void *ud, const char *command, const char *key,
                                          double value),
                               void *ud);
/* The billing outbox's events by state (bitnet/db_tenants.h), due ones at now_ms. */
bn_status bn_spool_outbox_counts(bn_spool *sp, int64_t now_ms, bn_outbox_counts *out);
/* Calls fn with the newest successful run of each command that has metrics. */
bn_status bn_spool_last_runs(bn_spool *sp,
                             void (*fn)(void *ud, const char *command, const char *metrics_json,
                                        int64_t ended_ms),
                             void *ud);

#ifdef __cplusplus
}
#endif

#endif
