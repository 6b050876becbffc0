/*
 * bitnet/db.h - the local run history: an sqlite database of every run, benchmark and (later)
 * conversion, training and alert.
 *
 * Usage:
 *
 *     bn_db *db;                                        // path: the caller's (below)
 *     bn_db_options opt = bn_db_options_default();     // retention 90 days, 5 s busy timeout
 *     if (bn_db_open(&db, path, &opt) != BN_OK) {
 *         fprintf(stderr, "history: %s\n", bn_db_errmsg(db));
 *         bn_db_close(db);
 *         return;
 *     }
 *     int64_t id;
 *     bn_db_run_begin(db, "generate", "/m/model.gguf", sha, "{\"n\":8}", &id);
 *     ... the run ...
 *     bn_db_run_end(db, id, BN_RUN_OK, "{\"tokens_per_s\":41.5}", NULL);
 *     bn_db_close(db);
 *
 * Opening does the housekeeping: it creates the directories and the file, turns on WAL, a busy
 * timeout and foreign keys, applies the migrations the file lacks (each in its own transaction;
 * a file written by a newer bitnet is refused), marks the runs of processes that died without
 * ending them as incomplete, and at most once a day deletes the runs older than the retention.
 *
 * Ownership and errors: the caller owns the handle and closes it with bn_db_close(). Every
 * function returns a bn_status; the detailed message (with sqlite's own) stays on the handle
 * until the next call that fails, and bn_db_errmsg() returns it. bn_db_open() hands out a
 * handle even when it fails (except when out of memory, then *out is NULL), so that the message
 * can be read; close it. Strings in a bn_run belong to it; release it with bn_run_release().
 * One handle is used by one thread at a time; several processes may share the file.
 *
 * Times are milliseconds since the Unix epoch (UTC). JSON texts (params, metrics) must be valid
 * JSON; they are stored minified.
 */
#ifndef BITNET_DB_H
#define BITNET_DB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The newest schema this build knows (PRAGMA user_version). Only grows. */
#define BN_DB_SCHEMA_VERSION 7

#define BN_DB_RETENTION_DAYS_DEFAULT  90
#define BN_DB_BUSY_TIMEOUT_MS_DEFAULT 5000

typedef struct bn_db bn_db;

/* The status of a run. Stored as text; values only grow. */
typedef enum bn_run_status {
    BN_RUN_RUNNING = 0,    /* begun, not ended */
    BN_RUN_OK = 1,         /* ended successfully */
    BN_RUN_FAILED = 2,     /* ended with an error */
    BN_RUN_INCOMPLETE = 3, /* its process died without ending it (found at a later open) */
    BN_RUN_CANCELLED = 4,  /* stopped on request */
    BN_RUN_STATUS_COUNT_   /* keep last */
} bn_run_status;

/* "running", "ok", "failed", "incomplete", "cancelled"; "unknown" otherwise. */
const char *bn_run_status_str(bn_run_status s);
/* Parses one of those names; returns 0, or -1 when s is none of them. */
int bn_run_status_parse(const char *s, bn_run_status *out);

typedef struct bn_db_options {
    int retention_days;  /* runs that started longer ago are deleted on open; 0: keep all */
    int ledger_days;     /* days of usage rows kept one per request (then folded); 0: keep */
    int keys_days;       /* API keys revoked or expired longer ago are deleted; 0: keep */
    int busy_timeout_ms; /* how long a writer waits for another one's lock */
    int64_t now_ms;      /* 0: the real clock; tests set a fixed time */
} bn_db_options;

/* Retention 90 days, busy timeout 5 s, the real clock. */
bn_db_options bn_db_options_default(void);

/* Where the history is, is not db/'s to say: the program's one resolver is cm_history_path
 * (common/history.h), which reads $BITNET_HISTORY_DB and the config's data_dir. */

/* Opens (creating it and its directories, mode 0700) the history at path. opt may be NULL for
 * the defaults. Errors: BN_ERR_IO (cannot create or open, locked past the timeout),
 * BN_ERR_FORMAT (not an sqlite file, corrupt), BN_ERR_UNSUPPORTED (a newer schema). */
bn_status bn_db_open(bn_db **out, const char *path, const bn_db_options *opt);
void bn_db_close(bn_db *db); /* NULL is fine */

/* The message of the last failure on db ("" when none; a fixed text for a NULL db). */
const char *bn_db_errmsg(const bn_db *db);
/* The schema version of the open file. */
int bn_db_schema_version(const bn_db *db);
/* The number of runs the last bn_db_open() marked incomplete, and pruned by retention. */
int64_t bn_db_open_incomplete(const bn_db *db);
int64_t bn_db_open_pruned(const bn_db *db);
/* Runs sqlite's integrity check: BN_OK, or BN_ERR_FORMAT with the first problem. */
bn_status bn_db_check(bn_db *db);
/* Sets how long a writer waits for another one's lock from now on (ms > 0). */
void bn_db_set_busy_timeout(bn_db *db, int ms);

/* ---- runs ------------------------------------------------------------------------------ */

/* Records the start of a run of command (required) by this process, with status running. The
 * other texts may be NULL; params_json must be valid JSON (BN_ERR_INVALID otherwise). */
bn_status bn_db_run_begin(bn_db *db, const char *command, const char *model_path,
                          const char *model_sha256, const char *params_json, int64_t *run_id);
/* Records the end of a run: its status (not BN_RUN_RUNNING), metrics (JSON or NULL) and error
 * (NULL when none). BN_ERR_NOT_FOUND if there is no such run. */
bn_status bn_db_run_end(bn_db *db, int64_t run_id, bn_run_status status, const char *metrics_json,
                        const char *error);

typedef struct bn_run {
    int64_t id;
    char *command;
    char *model_path;   /* NULL when none */
    char *model_sha256; /* NULL when unknown */
    char *params_json;  /* NULL when none */
    char *metrics_json; /* NULL when none */
    char *error;        /* NULL when none */
    char *host;
    int64_t started_ms;
    int64_t ended_ms; /* 0: not ended */
    int64_t pid;
    bn_run_status status;
    char *json; /* the whole run as one JSON object, the shape of the exports */
    /* NULL, or why part of the row could not be read ("params are not valid JSON": a blob or
     * broken text written by something else); those columns then read as NULL, and json has
     * a "problem" member with this text. Listing goes on past such a row. */
    char *problem;
} bn_run;

void bn_run_release(bn_run *r);

typedef struct bn_run_filter {
    const char *command; /* NULL: any */
    int status;          /* a bn_run_status, or -1: any */
    int64_t since_ms;    /* runs started at or after; 0: any */
    const char *text;    /* substring (ASCII case-insensitive) of the command, model path,
                            params, metrics or error; NULL: any */
    int64_t limit;       /* 0: no limit */
    int oldest_first;    /* order by start time ascending (default: newest first) */
} bn_run_filter;

/* A filter that matches everything, newest first. */
bn_run_filter bn_run_filter_all(void);

/* The runs that match f (NULL: all), in an array of *n (free with bn_db_runs_free). */
bn_status bn_db_run_list(bn_db *db, const bn_run_filter *f, bn_run **runs, size_t *n);
void bn_db_runs_free(bn_run *runs, size_t n);
/* One run; BN_ERR_NOT_FOUND if there is no such id. */
bn_status bn_db_run_get(bn_db *db, int64_t id, bn_run *out);

typedef enum bn_db_format {
    BN_DB_FORMAT_JSON = 0, /* {"runs": [run, ...]}, each run as bn_run.json */
    BN_DB_FORMAT_CSV = 1,  /* a header line, then one line per run; RFC 4180 quoting */
} bn_db_format;

/* Writes the runs that match f (NULL: all, oldest first) to out. BN_ERR_IO on a write error. */
bn_status bn_db_export(bn_db *db, const bn_run_filter *f, bn_db_format fmt, FILE *out);

/* Deletes the runs that started more than days days ago (days >= 0); *n_deleted may be NULL. */
bn_status bn_db_prune(bn_db *db, int days, int64_t *n_deleted);

/* ---- retention of every table (db/retention.c) ---------------------------------------------
 *
 * The periods are the handle's options: runs (retention_days) are deleted; usage rows of the
 * ledger (ledger_days) are folded, for each UTC day that ended that long ago, into one
 * anonymous row per tenant, day and model (status "aggregate": no request or key id; the
 * requests and token counts kept, so the reports per tenant and day do not change); API keys
 * revoked or expired keys_days ago are deleted (the audit log keeps key.create and
 * key.revoke). The audit log is never pruned: its entries are hash-chained (a removed entry
 * is what verify must catch), name tenants and keys by id only, and are few; so is the billing
 * outbox (undelivered events included). Opening a file applies them at most once a day (for
 * every process: the time is kept in the file); a PostgreSQL store keeps the time in its
 * table bitnet_meta for every replica, and bn_db_retention_daily applies them there. */

typedef struct bn_retention_counts {
    int64_t runs;              /* runs deleted */
    int64_t ledger_rows;       /* usage rows folded ... */
    int64_t ledger_aggregates; /* ... into this many aggregate rows */
    int64_t keys;              /* keys deleted */
} bn_retention_counts;

/* Sets the periods (retention_days, ledger_days, keys_days) and the clock (now_ms) of db from
 * opt, for a handle opened without them: a PostgreSQL store's (bitnet/db_pg.h). */
void bn_db_set_retention(bn_db *db, const bn_db_options *opt);
/* Applies the periods now, in one transaction (audited as retention.apply by
 * "system:retention" when it changed usage rows or keys). dry_run: counts what it would do and
 * changes nothing. On a PostgreSQL store: one transaction per table (the ledger, the keys),
 * each audited when it changed rows; the store keeps no runs. */
bn_status bn_db_retention_apply(bn_db *db, int dry_run, bn_retention_counts *out);
/* The same when they were last applied a day or more ago (or the clock went back); *applied
 * (may be NULL) says whether they were. For a process that keeps its handle for days. */
bn_status bn_db_retention_daily(bn_db *db, int *applied, bn_retention_counts *out);

/* ---- the sha256 cache of model files ------------------------------------------------------ */

/* Looks up the sha256 (64 lowercase hex digits and a NUL) recorded for the file at path with
 * this size and modification time (ns); BN_ERR_NOT_FOUND when there is none or it is stale. */
bn_status bn_db_hash_lookup(bn_db *db, const char *path, int64_t size, int64_t mtime_ns,
                            char sha256[65]);
/* Records it (replacing what was recorded for path). */
bn_status bn_db_hash_store(bn_db *db, const char *path, int64_t size, int64_t mtime_ns,
                           const char *sha256);

#ifdef __cplusplus
}
#endif

#endif
