/*
 * jobs.h - the persistent conversion queue: jobs in the `jobs` table of the history database
 * (db/migrations.c, schema 4; its statements in db/jobs.c, bitnet/db_jobs.h), one worker
 * process at a time.
 *
 * Usage:
 *
 *     int64_t id;
 *     jobs_enqueue_convert(&cv_opts, &id, err, sizeof err);  // status queued
 *     jobs_start_worker();          // a detached `bitnet jobs work` unless one is running
 *     ...
 *     jobs_work(0);                 // the worker loop (what `bitnet jobs work` runs)
 *
 * States: queued -> running -> done | failed | cancelled; retry puts failed and cancelled
 * jobs back to queued. The worker claims the oldest queued job in one transaction, records
 * its pid, host, boot id and process start time, and writes progress (phase, bytes written
 * and to write, percent, ETA) at most every 0.2 s; it polls the job's cancel flag at the
 * same time, so a cancel stops it within one tensor or one layer. A job whose worker died
 * (kill -9, a crash, a reboot) is found by every jobs command and put back to queued, and
 * the dead worker's temporary output (OUT.tmp-PID-*) is removed: the conversion then restarts
 * from the beginning and nothing partial ever carries the final name (the converter renames
 * only a complete, verified file).
 *
 * The worker holds an exclusive lock (flock) on <history.db>.worker.lock while it runs, which
 * is how jobs_start_worker knows whether one is running. It exits when the queue is empty
 * (after a short grace period) unless asked to keep waiting. Its output goes to
 * <history.db>.worker.log.
 */
#ifndef BITNET_APP_JOBS_H
#define BITNET_APP_JOBS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "convert.h"

typedef struct jobs_db jobs_db;

/* Opens the queue (the history database, migrated). 0, or -1 with a message. Every open
 * also recovers the jobs of dead workers. */
int jobs_open(jobs_db **out, char *err, size_t errsz);
void jobs_close(jobs_db *j);

/* Adds a convert job with o's settings (paths made absolute). */
int jobs_enqueue_convert(const cv_opts *o, int64_t *id, char *err, size_t errsz);

/* Starts a detached worker when none holds the lock: 1 started, 0 one is running, -1 error. */
int jobs_start_worker(void);

/* The worker loop: runs queued jobs until the queue stays empty (forever: keep polling).
 * Returns 0, or -1 when the queue cannot be opened or another worker holds the lock. */
int jobs_work(int forever, char *err, size_t errsz);

/* Listing: {"jobs": [job, ...]} (newest first; limit 0: all) and one job (with its report).
 * NULL with err when the job does not exist or the database fails. */
cJSON *jobs_list_json(jobs_db *j, const char *status, int limit, char *err, size_t errsz);
cJSON *jobs_get_json(jobs_db *j, int64_t id, char *err, size_t errsz);

/* cancel: queued -> cancelled at once, running -> cancel requested (the worker stops it).
 * retry: failed or cancelled -> queued. 0, or -1 with a message (no such job, wrong state). */
int jobs_cancel(jobs_db *j, int64_t id, char *err, size_t errsz);
int jobs_retry(jobs_db *j, int64_t id, char *err, size_t errsz);

/* Whether a worker currently holds the lock. */
int jobs_worker_running(void);

/* A job's time left, in seconds: bytes_left at the throughput of the writing phase so far
 * (bytes_written in writing_s), once it has run JOBS_ETA_FLOOR_S; -1 (unknown) before, 0 when
 * nothing is left. The phases before the writing (reading, the reference) do not count. */
#define JOBS_ETA_FLOOR_S 2.0
double jobs_eta(double writing_s, double bytes_written, double bytes_left);

#endif
