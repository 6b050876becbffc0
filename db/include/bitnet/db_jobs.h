/*
 * bitnet/db_jobs.h - the conversion queue's rows in the history database (the `jobs` table of
 * migration 4, db/migrations.c). The queue's logic (which state may move to which, the
 * worker, its lock and its process) is the program's (app/convert/jobs.c); this is every statement
 * about the table.
 *
 * Usage:
 *
 *     bn_db *db;                                   // bn_db_open(), see bitnet/db.h
 *     int64_t id;
 *     bn_db_job_add(db, "convert", "{\"src\":\"/m/in\",\"out\":\"/m/out.gguf\"}", &id);
 *     char *args;                                  // the worker:
 *     if (bn_db_job_claim(db, getpid(), &id, &args) == BN_OK) {
 *         bn_db_job_progress(db, id, "writing", 10, 100, 10.0, 3.5);
 *         ...
 *         bn_db_job_finish(db, id, "done", "{\"sha256\":\"...\"}", NULL);
 *         bn_free(args);
 *     }
 *     bn_job *jobs; size_t n;                      // listing:
 *     bn_db_job_list(db, NULL, 0, &jobs, &n);
 *     bn_db_jobs_free(jobs, n);
 *
 * States (stored as text): queued, running, done, failed, cancelled.
 *
 * Ownership and errors: as in bitnet/db.h. Every function returns a bn_status and leaves the
 * message on the handle (bn_db_errmsg); strings handed out are bn_malloc'ed and belong to the
 * caller (bn_free, bn_job_release, bn_db_jobs_free). Times are milliseconds since the epoch.
 */
#ifndef BITNET_DB_JOBS_H
#define BITNET_DB_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Adds a job of kind with its arguments (text, stored as given), status queued. */
bn_status bn_db_job_add(bn_db *db, const char *kind, const char *args, int64_t *id);

/* Claims the oldest queued job for the worker pid, in one transaction: running, attempts
 * counted, progress reset. *args (bn_free) and *id; BN_ERR_NOT_FOUND when none is queued. */
bn_status bn_db_job_claim(bn_db *db, int64_t pid, int64_t *id, char **args);

/* Records progress: phase, bytes written and to write, percent, eta_s (< 0: unknown). */
bn_status bn_db_job_progress(bn_db *db, int64_t id, const char *phase, int64_t bytes_done,
                             int64_t bytes_total, double percent, double eta_s);
/* Whether a cancel was requested for job id (*yes 0 or 1). BN_ERR_NOT_FOUND: no such job. */
bn_status bn_db_job_cancel_requested(bn_db *db, int64_t id, int *yes);

/* Records the end of job id: status ("done" sets percent 100; "queued" puts it back with no
 * start or end time), result and error (NULL: none). */
bn_status bn_db_job_finish(bn_db *db, int64_t id, const char *status, const char *result,
                           const char *error);

/* Recovery after a worker died (call it only while no worker runs): calls out_fn with the
 * output path ("out" of the args, when they are JSON text) of each running job, then puts
 * every running job back to queued, counting it as recovered. *n (may be NULL): how many. */
bn_status bn_db_job_recover(bn_db *db, void (*out_fn)(void *ud, const char *out), void *ud,
                            int64_t *n);

/* The status of job id into buf; BN_ERR_NOT_FOUND when there is no such job. */
bn_status bn_db_job_status(bn_db *db, int64_t id, char *buf, size_t size);
/* queued -> cancelled now (ended, error "cancelled"); nothing when it is no longer queued. */
bn_status bn_db_job_cancel_queued(bn_db *db, int64_t id);
/* Asks the worker of a running job to stop it. */
bn_status bn_db_job_request_cancel(bn_db *db, int64_t id);
/* Puts job id back to queued with its progress, result and error cleared (a retry). */
bn_status bn_db_job_requeue(bn_db *db, int64_t id);

/* A job as stored. args and result are the stored text when it is text; a value of another
 * type (a blob, a number: only a foreign writer puts one there) reads as NULL with its
 * *_not_text flag set, so that one broken row never hides the others. */
typedef struct bn_job {
    int64_t id;
    char *kind, *status;
    int64_t created_ms, started_ms, ended_ms; /* 0: not yet */
    int64_t attempts, recovered, cancel_requested;
    int64_t worker_pid; /* 0: none */
    char *phase;        /* NULL: none */
    double percent;
    int64_t bytes_done, bytes_total;
    double eta_s; /* < 0: unknown */
    char *error;  /* NULL: none */
    char *args, *result;
    int args_not_text, result_not_text;
} bn_job;

void bn_job_release(bn_job *j);
void bn_db_jobs_free(bn_job *jobs, size_t n);

/* The jobs with status (NULL: any), newest first, at most limit (0: all), in an array of *n.
 * A failure mid-way is a failure: never a shortened list. */
bn_status bn_db_job_list(bn_db *db, const char *status, int64_t limit, bn_job **jobs, size_t *n);
/* One job; BN_ERR_NOT_FOUND if there is no such id. */
bn_status bn_db_job_get(bn_db *db, int64_t id, bn_job *out);
/* Calls fn with each status and its number of jobs, by status. */
bn_status bn_db_job_counts(bn_db *db, void (*fn)(void *ud, const char *status, int64_t n),
                           void *ud);

#ifdef __cplusplus
}
#endif

#endif
