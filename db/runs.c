/* runs.c - recording runs, reading them back, pruning and retention. */
#include "db_int.h"

#include <string.h>

static const char *const status_names[BN_RUN_STATUS_COUNT_] = {
        [BN_RUN_RUNNING] = "running",     [BN_RUN_OK] = "ok",
        [BN_RUN_FAILED] = "failed",       [BN_RUN_INCOMPLETE] = "incomplete",
        [BN_RUN_CANCELLED] = "cancelled",
};

const char *bn_run_status_str(bn_run_status s)
{
    return (unsigned)s < BN_RUN_STATUS_COUNT_ ? status_names[s] : "unknown";
}

int bn_run_status_parse(const char *s, bn_run_status *out)
{
    for (int i = 0; s && i < BN_RUN_STATUS_COUNT_; i++)
        if (strcmp(s, status_names[i]) == 0) {
            *out = (bn_run_status)i;
            return 0;
        }
    return -1;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* BN_OK when text is NULL or valid JSON, else BN_ERR_INVALID naming what. */
static bn_status check_json(bn_db *db, const char *text, const char *what)
{
    if (!text) return BN_OK;
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT json_valid(?1)", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        s = bn__db_sqlerr(db, rc, "checking JSON");
    else if (!sqlite3_column_int(st, 0))
        s = bn__db_err(db, BN_ERR_INVALID, "the %s are not valid JSON", what);
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_run_begin(bn_db *db, const char *command, const char *model_path,
                          const char *model_sha256, const char *params_json, int64_t *run_id)
{
    if (!command || !*command) return bn__db_err(db, BN_ERR_INVALID, "a run needs a command");
    bn_status s = check_json(db, params_json, "parameters");
    sqlite3_stmt *st;
    if (s == BN_OK)
        s = bn__db_prepare(db,
                           "INSERT INTO runs (command, model_path, model_sha256, params, "
                           "started_at, status, pid, host, boot_id, proc_start) "
                           "VALUES (?1, ?2, ?3, json(?4), ?5, 'running', ?6, ?7, ?8, ?9)",
                           &st);
    if (s != BN_OK) return s;
    bn__db_proc self;
    bn__db_proc_self(&self);
    sqlite3_bind_text(st, 1, command, -1, SQLITE_TRANSIENT);
    bind_text_or_null(st, 2, model_path);
    bind_text_or_null(st, 3, model_sha256);
    bind_text_or_null(st, 4, params_json);
    sqlite3_bind_int64(st, 5, bn__db_now_ms(db));
    sqlite3_bind_int64(st, 6, self.pid);
    bind_text_or_null(st, 7, self.host);
    bind_text_or_null(st, 8, self.boot_id);
    if (self.start)
        sqlite3_bind_int64(st, 9, self.start);
    else
        sqlite3_bind_null(st, 9);
    s = bn__db_step_done(db, st, "recording the start of a run");
    if (s == BN_OK && run_id) *run_id = sqlite3_last_insert_rowid(db->sql);
    return s;
}

bn_status bn_db_run_end(bn_db *db, int64_t run_id, bn_run_status status, const char *metrics_json,
                        const char *error)
{
    if ((unsigned)status >= BN_RUN_STATUS_COUNT_ || status == BN_RUN_RUNNING)
        return bn__db_err(db, BN_ERR_INVALID, "a run cannot end with status %d", (int)status);
    bn_status s = check_json(db, metrics_json, "metrics");
    sqlite3_stmt *st;
    if (s == BN_OK)
        s = bn__db_prepare(db,
                           "UPDATE runs SET status = ?1, metrics = json(?2), error = ?3, "
                           "ended_at = ?4 WHERE id = ?5",
                           &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, bn_run_status_str(status), -1, SQLITE_STATIC);
    bind_text_or_null(st, 2, metrics_json);
    bind_text_or_null(st, 3, error);
    sqlite3_bind_int64(st, 4, bn__db_now_ms(db));
    sqlite3_bind_int64(st, 5, run_id);
    s = bn__db_step_done(db, st, "recording the end of a run");
    if (s == BN_OK && sqlite3_changes(db->sql) == 0)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no run %lld", (long long)run_id);
    return s;
}

/* ---- reading runs -------------------------------------------------------------------------- */

/* A JSON column that cannot be read as JSON text (a blob, or text that is not JSON: only a
 * foreign writer or a damaged file puts one there). Such a column is read as NULL and the
 * run carries a problem, so one bad row never hides the others (json() on it would fail the
 * whole query). */
/* clang-format off */
#define BAD_JSON(c)     "(" c " IS NOT NULL AND NOT (typeof(" c ") = 'text' AND json_valid(" c ")))"
#define JSON_OR_NULL(c) "CASE WHEN NOT " BAD_JSON(c) " THEN json(" c ") END"
#define PARAMS_J        JSON_OR_NULL("params")
#define METRICS_J       JSON_OR_NULL("metrics")
#define RUN_PROBLEM                                                                                \
    "CASE WHEN " BAD_JSON("params") " AND " BAD_JSON("metrics")                                    \
    " THEN 'params and metrics are not valid JSON'"                                                \
    " WHEN " BAD_JSON("params") " THEN 'params are not valid JSON'"                                \
    " WHEN " BAD_JSON("metrics") " THEN 'metrics are not valid JSON' END"

/* The columns read into a bn_run: the run as JSON (the shape of the exports) at COL_JSON,
 * then the problem (NULL when the row reads cleanly). */
#define RUN_COLUMNS                                                                                \
    "id, command, model_path, model_sha256, " PARAMS_J ", " METRICS_J ", error, host, "            \
    "started_at, ended_at, pid, status, json_object('id', id, 'command', command, 'status', "      \
    "status, 'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', started_at / 1000.0, 'unixepoch'), "     \
    "'ended_at', strftime('%Y-%m-%dT%H:%M:%fZ', ended_at / 1000.0, 'unixepoch'), "                 \
    "'duration_s', (ended_at - started_at) / 1000.0, 'model_path', model_path, "                   \
    "'model_sha256', model_sha256, 'params', " PARAMS_J ", 'metrics', " METRICS_J ", "             \
    "'error', error, 'pid', pid, 'host', host), " RUN_PROBLEM
/* clang-format on */

enum { COL_JSON = 12, COL_PROBLEM = 13 };

void bn_run_release(bn_run *r)
{
    if (!r) return;
    bn_free(r->command);
    bn_free(r->model_path);
    bn_free(r->model_sha256);
    bn_free(r->params_json);
    bn_free(r->metrics_json);
    bn_free(r->error);
    bn_free(r->host);
    bn_free(r->json);
    bn_free(r->problem);
    memset(r, 0, sizeof *r);
}

/* Appends "problem": text to the JSON object *json (text is one of RUN_COLUMNS' fixed
 * messages: nothing to escape). -1 when out of memory. */
static int add_problem(char **json, const char *text)
{
    const size_t n = strlen(*json), add = strlen(text) + 16;
    if (n < 2 || (*json)[n - 1] != '}') return 0;
    char *j = bn_malloc(n + add);
    if (!j) return -1;
    snprintf(j, n + add, "%.*s,\"problem\":\"%s\"}", (int)(n - 1), *json, text);
    bn_free(*json);
    *json = j;
    return 0;
}

bn_status bn__db_read_run(bn_db *db, sqlite3_stmt *st, bn_run *r)
{
    int oom = 0;
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->command = bn__db_col_str(st, 1, &oom);
    r->model_path = bn__db_col_str(st, 2, &oom);
    r->model_sha256 = bn__db_col_str(st, 3, &oom);
    r->params_json = bn__db_col_str(st, 4, &oom);
    r->metrics_json = bn__db_col_str(st, 5, &oom);
    r->error = bn__db_col_str(st, 6, &oom);
    r->host = bn__db_col_str(st, 7, &oom);
    r->started_ms = sqlite3_column_int64(st, 8);
    r->ended_ms = sqlite3_column_int64(st, 9);
    r->pid = sqlite3_column_int64(st, 10);
    const char *status = (const char *)sqlite3_column_text(st, 11);
    if (bn_run_status_parse(status, &r->status)) r->status = BN_RUN_INCOMPLETE;
    r->json = bn__db_col_str(st, COL_JSON, &oom);
    r->problem = bn__db_col_str(st, COL_PROBLEM, &oom);
    if (!oom && (!r->command || !r->json)) oom = 1; /* NOT NULL columns; NULL means no memory */
    if (!oom && r->problem && add_problem(&r->json, r->problem)) oom = 1;
    if (oom) {
        bn_run_release(r);
        return bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    }
    return BN_OK;
}

bn_run_filter bn_run_filter_all(void)
{
    return (bn_run_filter){.status = -1};
}

/* "%text%" for LIKE ... ESCAPE '\', with \ % _ escaped. */
static char *like_pattern(const char *text)
{
    const size_t n = strlen(text);
    char *p = bn_malloc(2 * n + 3), *q = p;
    if (!p) return NULL;
    *q++ = '%';
    for (const char *c = text; *c; c++) {
        if (*c == '\\' || *c == '%' || *c == '_') *q++ = '\\';
        *q++ = *c;
    }
    *q++ = '%';
    *q = '\0';
    return p;
}

/* Prepares the query for f (never NULL here). */
static bn_status query_runs(bn_db *db, const bn_run_filter *f, sqlite3_stmt **st)
{
    char sql[2048];
    const int len = snprintf(
            sql, sizeof sql,
            "SELECT %s FROM runs WHERE 1%s%s%s%s ORDER BY started_at %s, id %s LIMIT ?5",
            RUN_COLUMNS, f->command ? " AND command = ?1" : "",
            f->status >= 0 ? " AND status = ?2" : "", f->since_ms ? " AND started_at >= ?3" : "",
            f->text ? " AND (command LIKE ?4 ESCAPE '\\' OR model_path LIKE ?4 ESCAPE '\\' OR "
                      "params LIKE ?4 ESCAPE '\\' OR metrics LIKE ?4 ESCAPE '\\' OR "
                      "error LIKE ?4 ESCAPE '\\')"
                    : "",
            f->oldest_first ? "ASC" : "DESC", f->oldest_first ? "ASC" : "DESC");
    if (len < 0 || (size_t)len >= sizeof sql)
        return bn__db_err(db, BN_ERR_INTERNAL, "query too long");
    bn_status s = bn__db_prepare(db, sql, st);
    if (s != BN_OK) return s;
    if (f->command) sqlite3_bind_text(*st, 1, f->command, -1, SQLITE_TRANSIENT);
    if (f->status >= 0)
        sqlite3_bind_text(*st, 2, bn_run_status_str((bn_run_status)f->status), -1, SQLITE_STATIC);
    if (f->since_ms) sqlite3_bind_int64(*st, 3, f->since_ms);
    if (f->text) {
        char *pat = like_pattern(f->text);
        if (!pat) {
            sqlite3_finalize(*st);
            *st = NULL;
            return bn__db_err(db, BN_ERR_NOMEM, "out of memory");
        }
        sqlite3_bind_text(*st, 4, pat, -1, SQLITE_TRANSIENT);
        bn_free(pat);
    }
    sqlite3_bind_int64(*st, 5, f->limit > 0 ? f->limit : -1);
    return BN_OK;
}

bn_status bn__db_query_runs(bn_db *db, const bn_run_filter *f, sqlite3_stmt **st)
{
    bn_run_filter all = bn_run_filter_all();
    return query_runs(db, f ? f : &all, st);
}

void bn_db_runs_free(bn_run *runs, size_t n)
{
    for (size_t i = 0; runs && i < n; i++) bn_run_release(&runs[i]);
    bn_free(runs);
}

bn_status bn_db_run_list(bn_db *db, const bn_run_filter *f, bn_run **runs, size_t *n)
{
    *runs = NULL;
    *n = 0;
    sqlite3_stmt *st;
    bn_status s = bn__db_query_runs(db, f, &st);
    if (s != BN_OK) return s;
    bn_run *out = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while (s == BN_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (bn__db_grow((void **)&out, sizeof *out, cnt, &cap)) {
            s = bn__db_err(db, BN_ERR_NOMEM, "out of memory");
            break;
        }
        s = bn__db_read_run(db, st, &out[cnt]);
        if (s == BN_OK) cnt++;
    }
    if (s == BN_OK && rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading runs");
    sqlite3_finalize(st);
    if (s != BN_OK) {
        bn_db_runs_free(out, cnt);
        return s;
    }
    *runs = out;
    *n = cnt;
    return BN_OK;
}

bn_status bn_db_run_get(bn_db *db, int64_t id, bn_run *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        s = bn__db_read_run(db, st, out);
    else if (rc == SQLITE_DONE)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no run %lld in the history", (long long)id);
    else
        s = bn__db_sqlerr(db, rc, "reading a run");
    sqlite3_finalize(st);
    return s;
}

/* ---- pruning ----------------------------------------------------------------- */

bn_status bn__db_prune_runs(bn_db *db, int64_t cutoff_ms, int64_t *n)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "DELETE FROM runs WHERE started_at < ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, cutoff_ms);
    s = bn__db_step_done(db, st, "deleting old runs");
    if (s == BN_OK && n) *n = sqlite3_changes(db->sql);
    return s;
}

bn_status bn_db_prune(bn_db *db, int days, int64_t *n_deleted)
{
    if (n_deleted) *n_deleted = 0;
    if (days < 0) return bn__db_err(db, BN_ERR_INVALID, "prune: days must not be negative");
    return bn__db_prune_runs(db, bn__db_now_ms(db) - (int64_t)days * BN_DB_DAY_MS, n_deleted);
}
