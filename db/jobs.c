/* jobs.c - the conversion queue's rows (the jobs table); see bitnet/db_jobs.h. */
#include "bitnet/db_jobs.h"

#include <string.h>

#include "db_int.h"

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Runs sql with ?1 = id and ?2 = b (when it has a second parameter). */
static bn_status exec_id(bn_db *db, const char *sql, int64_t id, int64_t b, const char *what)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, sql, &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
    return bn__db_step_done(db, st, what);
}

bn_status bn_db_job_add(bn_db *db, const char *kind, const char *args, int64_t *id)
{
    if (!kind || !*kind || !args) return bn__db_err(db, BN_ERR_INVALID, "a job needs a kind");
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "INSERT INTO jobs (kind, args, status, created_at) VALUES "
                                 "(?1, ?2, 'queued', ?3)",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, args, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, bn__db_now_ms(db));
    s = bn__db_step_done(db, st, "adding a job");
    if (s == BN_OK && id) *id = sqlite3_last_insert_rowid(db->sql);
    return s;
}

/* ---- the worker --------------------------------------------------------------------------- */

/* Reads the oldest queued job (inside the claim's transaction). */
static bn_status oldest_queued(bn_db *db, int64_t *id, char **args)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db, "SELECT id, args FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1", &st);
    if (s != BN_OK) return s;
    int rc = sqlite3_step(st), oom = 0;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *args = bn__db_col_str(st, 1, &oom);
        if (oom)
            s = bn__db_err(db, BN_ERR_NOMEM, "out of memory");
        else if (!*args)
            s = bn__db_err(db, BN_ERR_NOT_FOUND, "job %lld has no args", (long long)*id);
    } else {
        s = rc == SQLITE_DONE ? bn__db_err(db, BN_ERR_NOT_FOUND, "no queued job")
                              : bn__db_sqlerr(db, rc, "reading the queue");
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_job_claim(bn_db *db, int64_t pid, int64_t *id, char **args)
{
    *args = NULL;
    bn_status s = bn__db_exec(db, "BEGIN IMMEDIATE", "claiming a job");
    if (s != BN_OK) return s;
    s = oldest_queued(db, id, args);
    sqlite3_stmt *st;
    if (s == BN_OK)
        s = bn__db_prepare(db,
                           "UPDATE jobs SET status = 'running', started_at = ?2, "
                           "worker_pid = ?3, attempts = attempts + 1, phase = 'starting', "
                           "percent = 0, cancel_requested = 0, error = NULL, result = NULL "
                           "WHERE id = ?1",
                           &st);
    if (s == BN_OK) {
        sqlite3_bind_int64(st, 1, *id);
        sqlite3_bind_int64(st, 2, bn__db_now_ms(db));
        sqlite3_bind_int64(st, 3, pid);
        s = bn__db_step_done(db, st, "claiming a job");
    }
    if (s == BN_OK) s = bn__db_exec(db, "COMMIT", "claiming a job");
    if (s != BN_OK) {
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        bn_free(*args);
        *args = NULL;
    }
    return s;
}

bn_status bn_db_job_progress(bn_db *db, int64_t id, const char *phase, int64_t bytes_done,
                             int64_t bytes_total, double percent, double eta_s)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "UPDATE jobs SET phase = ?2, bytes_done = ?3, bytes_total = ?4, "
                                 "percent = ?5, eta_s = ?6 WHERE id = ?1",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    bind_text_or_null(st, 2, phase);
    sqlite3_bind_int64(st, 3, bytes_done);
    sqlite3_bind_int64(st, 4, bytes_total);
    sqlite3_bind_double(st, 5, percent);
    if (eta_s >= 0)
        sqlite3_bind_double(st, 6, eta_s);
    else
        sqlite3_bind_null(st, 6);
    return bn__db_step_done(db, st, "recording progress");
}

bn_status bn_db_job_cancel_requested(bn_db *db, int64_t id, int *yes)
{
    *yes = 0;
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT cancel_requested FROM jobs WHERE id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *yes = sqlite3_column_int(st, 0) != 0;
    else
        s = rc == SQLITE_DONE ? bn__db_err(db, BN_ERR_NOT_FOUND, "no job %lld", (long long)id)
                              : bn__db_sqlerr(db, rc, "reading a job");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_job_finish(bn_db *db, int64_t id, const char *status, const char *result,
                           const char *error)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db,
            "UPDATE jobs SET status = ?2, result = ?4, error = ?5, worker_pid = NULL, "
            "percent = CASE WHEN ?2 = 'done' THEN 100 ELSE percent END, eta_s = NULL, "
            "started_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE started_at END, "
            "ended_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE ?3 END WHERE id = ?1",
            &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    bind_text_or_null(st, 2, status);
    sqlite3_bind_int64(st, 3, bn__db_now_ms(db));
    bind_text_or_null(st, 4, result);
    bind_text_or_null(st, 5, error);
    return bn__db_step_done(db, st, "recording the end of a job");
}

bn_status bn_db_job_recover(bn_db *db, void (*out_fn)(void *ud, const char *out), void *ud,
                            int64_t *n)
{
    if (n) *n = 0;
    sqlite3_stmt *st;
    /* json_extract only on JSON text: one broken row must not end the sweep of the others */
    bn_status s = bn__db_prepare(db,
                                 "SELECT CASE WHEN typeof(args) = 'text' AND json_valid(args) "
                                 "THEN json_extract(args, '$.out') END FROM jobs "
                                 "WHERE status = 'running'",
                                 &st);
    if (s != BN_OK) return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *out = (const char *)sqlite3_column_text(st, 0);
        if (out && out_fn) out_fn(ud, out);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return bn__db_sqlerr(db, rc, "reading the running jobs");
    s = exec_id(db,
                "UPDATE jobs SET status = 'queued', worker_pid = NULL, phase = NULL, percent = 0, "
                "bytes_done = 0, eta_s = NULL, recovered = recovered + 1 WHERE status = 'running' "
                "AND ?1 = ?1",
                0, 0, "putting the jobs of a dead worker back");
    if (s == BN_OK && n) *n = sqlite3_changes(db->sql);
    return s;
}

/* ---- states ------------------------------------------------------------------------------- */

bn_status bn_db_job_status(bn_db *db, int64_t id, char *buf, size_t size)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT status FROM jobs WHERE id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(buf, size, "%s", t ? t : "");
    } else {
        s = rc == SQLITE_DONE ? bn__db_err(db, BN_ERR_NOT_FOUND, "no job %lld", (long long)id)
                              : bn__db_sqlerr(db, rc, "reading a job");
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_job_cancel_queued(bn_db *db, int64_t id)
{
    return exec_id(db,
                   "UPDATE jobs SET status = 'cancelled', ended_at = ?2, error = 'cancelled' "
                   "WHERE id = ?1 AND status = 'queued'",
                   id, bn__db_now_ms(db), "cancelling a job");
}

bn_status bn_db_job_request_cancel(bn_db *db, int64_t id)
{
    return exec_id(db, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", id, 0,
                   "cancelling a job");
}

bn_status bn_db_job_requeue(bn_db *db, int64_t id)
{
    return exec_id(db,
                   "UPDATE jobs SET status = 'queued', error = NULL, result = NULL, started_at = "
                   "NULL, ended_at = NULL, cancel_requested = 0, phase = NULL, percent = 0, "
                   "bytes_done = 0, eta_s = NULL WHERE id = ?1",
                   id, 0, "retrying a job");
}

/* ---- reading jobs ------------------------------------------------------------------------- */

static const char JOB_COLS[] =
        "SELECT id, kind, status, created_at, started_at, ended_at, attempts, recovered, "
        "cancel_requested, worker_pid, phase, percent, bytes_done, bytes_total, eta_s, error, "
        "args, result FROM jobs";

enum { COL_ARGS = 16, COL_RESULT = 17 };

void bn_job_release(bn_job *j)
{
    if (!j) return;
    bn_free(j->kind);
    bn_free(j->status);
    bn_free(j->phase);
    bn_free(j->error);
    bn_free(j->args);
    bn_free(j->result);
    memset(j, 0, sizeof *j);
}

void bn_db_jobs_free(bn_job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++) bn_job_release(&jobs[i]);
    bn_free(jobs);
}

/* Column c when it holds text; *not_text set when it holds something else. */
static char *text_col(sqlite3_stmt *st, int c, int *not_text, int *oom)
{
    const int t = sqlite3_column_type(st, c);
    if (t == SQLITE_NULL) return NULL;
    if (t != SQLITE_TEXT) {
        *not_text = 1;
        return NULL;
    }
    return bn__db_col_str(st, c, oom);
}

static bn_status read_job(bn_db *db, sqlite3_stmt *st, bn_job *j)
{
    int oom = 0;
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->kind = bn__db_col_str(st, 1, &oom);
    j->status = bn__db_col_str(st, 2, &oom);
    j->created_ms = sqlite3_column_int64(st, 3);
    j->started_ms = sqlite3_column_int64(st, 4);
    j->ended_ms = sqlite3_column_int64(st, 5);
    j->attempts = sqlite3_column_int64(st, 6);
    j->recovered = sqlite3_column_int64(st, 7);
    j->cancel_requested = sqlite3_column_int64(st, 8);
    j->worker_pid = sqlite3_column_int64(st, 9);
    j->phase = bn__db_col_str(st, 10, &oom);
    j->percent = sqlite3_column_double(st, 11);
    j->bytes_done = sqlite3_column_int64(st, 12);
    j->bytes_total = sqlite3_column_int64(st, 13);
    j->eta_s = sqlite3_column_type(st, 14) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 14);
    j->error = bn__db_col_str(st, 15, &oom);
    j->args = text_col(st, COL_ARGS, &j->args_not_text, &oom);
    j->result = text_col(st, COL_RESULT, &j->result_not_text, &oom);
    if (!oom && (!j->kind || !j->status)) oom = 1; /* NOT NULL columns; NULL means no memory */
    if (oom) {
        bn_job_release(j);
        return bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    }
    return BN_OK;
}

bn_status bn_db_job_list(bn_db *db, const char *status, int64_t limit, bn_job **jobs, size_t *n)
{
    *jobs = NULL;
    *n = 0;
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
             JOB_COLS);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, sql, &st);
    if (s != BN_OK) return s;
    bind_text_or_null(st, 1, status);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    bn_job *out = NULL;
    size_t cnt = 0, cap = 0;
    int rc = SQLITE_DONE;
    while (s == BN_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (bn__db_grow((void **)&out, sizeof *out, cnt, &cap))
            s = bn__db_err(db, BN_ERR_NOMEM, "out of memory");
        else if ((s = read_job(db, st, &out[cnt])) == BN_OK)
            cnt++;
    }
    if (s == BN_OK && rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "listing jobs");
    sqlite3_finalize(st);
    if (s != BN_OK) {
        bn_db_jobs_free(out, cnt);
        return s;
    }
    *jobs = out;
    *n = cnt;
    return BN_OK;
}

bn_status bn_db_job_get(bn_db *db, int64_t id, bn_job *out)
{
    memset(out, 0, sizeof *out);
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE id = ?1", JOB_COLS);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, sql, &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        s = read_job(db, st, out);
    else
        s = rc == SQLITE_DONE ? bn__db_err(db, BN_ERR_NOT_FOUND, "no job %lld", (long long)id)
                              : bn__db_sqlerr(db, rc, "reading a job");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_job_counts(bn_db *db, void (*fn)(void *ud, const char *status, int64_t n), void *ud)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db, "SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status", &st);
    if (s != BN_OK) return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ud, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? BN_OK : bn__db_sqlerr(db, rc, "counting jobs");
}
