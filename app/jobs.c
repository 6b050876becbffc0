/* jobs.c - the conversion queue in sqlite (the history database's `jobs` table) and its
 * worker. See jobs.h for the states, the lock and the recovery after a crash. */
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "bitnet/types.h"
#include "cli.h"
#include "history_hook.h"

#define LOCK_SUFFIX      ".worker.lock"
#define LOG_SUFFIX       ".worker.log"
#define PROGRESS_EVERY_S 0.2
#define IDLE_EXIT_S      2.0

struct jobs_db {
    sqlite3 *sql;
    char path[4200];
};

static int fail(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- the lock ------------------------------------------------------------------------------- */

static int lock_path(char *out, size_t n)
{
    char db[4200], err[256];
    if (hist_db_path(db, sizeof db, NULL, err, sizeof err) != 0) return -1;
    return snprintf(out, n, "%s%s", db, LOCK_SUFFIX) < (int)n ? 0 : -1;
}

/* Takes the worker lock without waiting: the fd (keep it open to hold the lock), or -1. */
static int try_lock(void)
{
    char p[4300];
    if (lock_path(p, sizeof p) != 0) return -1;
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int jobs_worker_running(void)
{
    int fd = try_lock();
    if (fd < 0) return 1;
    close(fd);
    return 0;
}

/* ---- the database ------------------------------------------------------------------------------
 */

static int sql_err(jobs_db *j, char *err, size_t errsz, const char *what)
{
    return fail(err, errsz, "%s: %s: %s", j->path, what, sqlite3_errmsg(j->sql));
}

static int exec1(jobs_db *j, const char *sql, int64_t a, int64_t b, char *err, size_t errsz)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_err(j, err, errsz, "prepare");
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_err(j, err, errsz, "update");
}

/* Jobs left running by a dead worker go back to the queue; their temporary output goes (a
 * job whose args are not JSON has no output to name, and does not stop the others'). */
static void recover(jobs_db *j)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql,
                           "SELECT id, CASE WHEN typeof(args) = 'text' AND json_valid(args) "
                           "THEN json_extract(args, '$.out') END FROM jobs "
                           "WHERE status = 'running'",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *out = (const char *)sqlite3_column_text(st, 1);
        if (out) bn_file_tmp_sweep(out); /* OUT.tmp-<dead pid>-* (bitnet/file.h) */
    }
    sqlite3_finalize(st);
    char err[256];
    exec1(j,
          "UPDATE jobs SET status = 'queued', worker_pid = NULL, phase = NULL, percent = 0, "
          "bytes_done = 0, eta_s = NULL, recovered = recovered + 1 WHERE status = 'running' "
          "AND ?1 = ?1",
          0, 0, err, sizeof err);
}

int jobs_open(jobs_db **out, char *err, size_t errsz)
{
    *out = NULL;
    bn_db *db;
    char path[4200];
    if (hist_db_open(&db, path, sizeof path, err, errsz) != 0) return -1; /* migrates */
    int schema = bn_db_schema_version(db);
    bn_db_close(db);
    if (schema < 4) return fail(err, errsz, "%s: schema %d has no jobs table", path, schema);
    jobs_db *j = calloc(1, sizeof *j);
    if (!j) return fail(err, errsz, "out of memory");
    snprintf(j->path, sizeof j->path, "%s", path);
    if (sqlite3_open_v2(path, &j->sql, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fail(err, errsz, "%s: %s", path, j->sql ? sqlite3_errmsg(j->sql) : "cannot open");
        jobs_close(j);
        return -1;
    }
    sqlite3_busy_timeout(j->sql, 10000);
    int fd = try_lock(); /* no worker alive: nothing may be running */
    if (fd >= 0) {
        recover(j);
        close(fd);
    }
    *out = j;
    return 0;
}

static void reopen(jobs_db *j)
{
    sqlite3_close(j->sql);
    j->sql = NULL;
    if (sqlite3_open_v2(j->path, &j->sql, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        fprintf(stderr, "jobs: cannot reopen %s: %s\n", j->path,
                j->sql ? sqlite3_errmsg(j->sql) : "out of memory");
    sqlite3_busy_timeout(j->sql, 10000);
}

void jobs_close(jobs_db *j)
{
    if (!j) return;
    sqlite3_close(j->sql);
    free(j);
}

/* ---- enqueue ------------------------------------------------------------------------------------
 */

static char *absolute(const char *p)
{
    if (p[0] == '/') return strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *a = malloc(n);
    if (a) snprintf(a, n, "%s/%s", cwd, p);
    return a;
}

int jobs_enqueue_convert(const cv_opts *o, int64_t *id, char *err, size_t errsz)
{
    struct stat sb;
    if (stat(o->src, &sb) != 0) return fail(err, errsz, "%s: %s", o->src, strerror(errno));
    if (o->prompts_file && stat(o->prompts_file, &sb) != 0)
        return fail(err, errsz, "%s: %s", o->prompts_file, strerror(errno));
    if (cv_check_output(o, err, errsz) != 0) return -1; /* the worker checks again */
    cJSON *a = cJSON_CreateObject();
    char *src = absolute(o->src), *out = absolute(o->out);
    char *pr = o->prompts_file ? absolute(o->prompts_file) : NULL;
    cJSON_AddStringToObject(a, "src", src ? src : o->src);
    cJSON_AddStringToObject(a, "out", out ? out : o->out);
    cJSON_AddStringToObject(a, "type", bn_type_name(o->type));
    cJSON_AddStringToObject(a, "embd", bn_type_name(o->embd_type));
    cJSON_AddBoolToObject(a, "validate", o->validate);
    if (pr) cJSON_AddStringToObject(a, "prompts", pr);
    cJSON_AddBoolToObject(a, "no_tokenizer", o->no_tokenizer);
    cJSON_AddBoolToObject(a, "force", o->force);
    cJSON_AddNumberToObject(a, "threads", o->threads);
    free(src);
    free(out);
    free(pr);
    char *args = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    if (!args) return fail(err, errsz, "out of memory");
    jobs_db *j;
    if (jobs_open(&j, err, errsz) != 0) {
        cJSON_free(args);
        return -1;
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(j->sql,
                                "INSERT INTO jobs (kind, args, status, created_at) VALUES "
                                "('convert', ?1, 'queued', ?2)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, args, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, now_ms());
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    cJSON_free(args);
    int r = rc == SQLITE_DONE ? 0 : sql_err(j, err, errsz, "insert");
    if (r == 0) *id = sqlite3_last_insert_rowid(j->sql);
    jobs_close(j);
    return r;
}

/* ---- the worker --------------------------------------------------------------------------------
 */

int jobs_start_worker(void)
{
    if (jobs_worker_running()) return 0;
    char exe[PATH_MAX], db[4200], logp[4300], err[256];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || hist_db_path(db, sizeof db, NULL, err, sizeof err) != 0) return -1;
    exe[n] = '\0';
    snprintf(logp, sizeof logp, "%s%s", db, LOG_SUFFIX);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { /* detach: new session, second fork, no terminal */
        setsid();
        if (fork() != 0) _exit(0);
        int in = open("/dev/null", O_RDONLY), lg = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in >= 0) dup2(in, 0);
        if (lg >= 0) {
            dup2(lg, 1);
            dup2(lg, 2);
        }
        execl(exe, "bitnet", "jobs", "work", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return 1;
}

typedef struct work_ctx {
    jobs_db *j;
    int64_t id;
    double last;
    int cancel;
} work_ctx;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int progress(void *user, const cv_progress *p)
{
    work_ctx *w = user;
    double now = bn_time_now();
    if (now - w->last < PROGRESS_EVERY_S && p->done < p->total) return w->cancel || g_stop;
    w->last = now;
    const int writing = strcmp(p->phase, "writing") == 0;
    double pct = writing && p->total ? 100.0 * (double)p->done / (double)p->total
                                     : (strcmp(p->phase, "reference") == 0 ? 0 : 100);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->j->sql,
                           "UPDATE jobs SET phase = ?2, bytes_done = ?3, bytes_total = ?4, "
                           "percent = ?5, eta_s = ?6 WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, w->id);
        sqlite3_bind_text(st, 2, p->phase, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, writing ? (int64_t)p->done : 0);
        sqlite3_bind_int64(st, 4, writing ? (int64_t)p->total : 0);
        sqlite3_bind_double(st, 5, pct);
        if (p->eta_s >= 0)
            sqlite3_bind_double(st, 6, p->eta_s);
        else
            sqlite3_bind_null(st, 6);
        if (sqlite3_step(st) != SQLITE_DONE)
            fprintf(stderr, "job %lld: progress: %s\n", (long long)w->id,
                    sqlite3_errmsg(w->j->sql));
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(w->j->sql, "SELECT cancel_requested FROM jobs WHERE id = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, w->id);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0)) w->cancel = 1;
        sqlite3_finalize(st);
    }
    return w->cancel || g_stop;
}

/* Claims the oldest queued job: its id and args, or 0 when there is none. */
static int claim(jobs_db *j, int64_t *id, char **args)
{
    *args = NULL;
    sqlite3_stmt *st;
    int got = 0;
    if (sqlite3_exec(j->sql, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return -1;
    if (sqlite3_prepare_v2(j->sql,
                           "SELECT id, args FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            *id = sqlite3_column_int64(st, 0);
            const char *a = (const char *)sqlite3_column_text(st, 1);
            *args = a ? strdup(a) : NULL;
        }
        sqlite3_finalize(st);
    }
    if (*args &&
        sqlite3_prepare_v2(j->sql,
                           "UPDATE jobs SET status = 'running', started_at = ?2, "
                           "worker_pid = ?3, attempts = attempts + 1, phase = 'starting', "
                           "percent = 0, cancel_requested = 0, error = NULL, result = NULL "
                           "WHERE id = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, *id);
        sqlite3_bind_int64(st, 2, now_ms());
        sqlite3_bind_int64(st, 3, (int64_t)getpid());
        got = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (sqlite3_exec(j->sql, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(j->sql, "ROLLBACK", NULL, NULL, NULL);
        got = 0;
    }
    if (!got) {
        free(*args);
        *args = NULL;
    }
    return got;
}

static void finish(jobs_db *j, int64_t id, const char *status, const char *result,
                   const char *error)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql,
                           "UPDATE jobs SET status = ?2, ended_at = ?3, result = ?4, error = ?5, "
                           "worker_pid = NULL, percent = CASE WHEN ?2 = 'done' THEN 100 ELSE "
                           "percent END, eta_s = NULL WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms());
    if (result)
        sqlite3_bind_text(st, 4, result, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    if (error)
        sqlite3_bind_text(st, 5, error, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    if (sqlite3_step(st) != SQLITE_DONE)
        fprintf(stderr, "job %lld: cannot record the end: %s\n", (long long)id,
                sqlite3_errmsg(j->sql));
    sqlite3_finalize(st);
}

static void run_job(jobs_db *j, int64_t id, const char *args)
{
    cJSON *a = cJSON_Parse(args);
    cv_opts o;
    cv_opts_init(&o);
    const cJSON *v;
    o.src = (v = cJSON_GetObjectItemCaseSensitive(a, "src")) && cJSON_IsString(v) ? v->valuestring
                                                                                  : NULL;
    o.out = (v = cJSON_GetObjectItemCaseSensitive(a, "out")) && cJSON_IsString(v) ? v->valuestring
                                                                                  : NULL;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "type")) && cJSON_IsString(v))
        o.type = bn_type_from_name(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "embd")) && cJSON_IsString(v))
        o.embd_type = bn_type_from_name(v->valuestring);
    o.validate = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "validate"));
    o.no_tokenizer = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "no_tokenizer"));
    o.force = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "force"));
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "prompts")) && cJSON_IsString(v))
        o.prompts_file = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "threads")) && cJSON_IsNumber(v))
        o.threads = (int)v->valuedouble;
    work_ctx w = {.j = j, .id = id};
    o.progress = progress;
    o.user = &w;
    printf("job %lld: converting %s -> %s\n", (long long)id, o.src ? o.src : "?",
           o.out ? o.out : "?");
    fflush(stdout);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddNumberToObject(params, "job", (double)id);
    cJSON_AddItemToObject(params, "args", cJSON_Duplicate(a, 1));
    /* bn_db_open (in hist_begin) opens and closes the database file with open(2) and
     * close(2), which drops every POSIX lock this process holds on it while sqlite still
     * counts them as held: another process could then checkpoint and delete the WAL under
     * our connection. So no connection of ours is open while it runs. */
    sqlite3_close(j->sql);
    j->sql = NULL;
    hist_run *h = hist_begin("convert", NULL, params);
    reopen(j);
    cJSON *report = NULL;
    char err[1024] = "";
    int rc = !o.src || !o.out || o.type < 0 || o.embd_type < 0
                     ? fail(err, sizeof err, "malformed job arguments")
                     : cv_convert(&o, &report, err, sizeof err);
    char *res = report ? cJSON_PrintUnformatted(report) : NULL;
    const char *status = rc == 0 ? "done" : rc == -2 ? "cancelled" : "failed";
    if (g_stop && rc == -2) { /* the worker itself was stopped: back to the queue */
        status = "queued";
        snprintf(err, sizeof err, "worker stopped");
    }
    finish(j, id, status, res, rc == 0 ? NULL : err);
    if (strcmp(status, "queued") == 0)
        exec1(j, "UPDATE jobs SET started_at = NULL, ended_at = NULL WHERE id = ?1", id, 0, err,
              sizeof err);
    printf("job %lld: %s%s%s\n", (long long)id, status, rc ? ": " : "", rc ? err : "");
    fflush(stdout);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(report, "sha256");
    if (cJSON_IsString(sha)) cJSON_AddStringToObject(report, "output_sha256", sha->valuestring);
    hist_end_status(h,
                    rc == 0    ? BN_RUN_OK
                    : rc == -2 ? BN_RUN_CANCELLED
                               : BN_RUN_FAILED,
                    report, rc ? err : NULL);
    cJSON_free(res);
    cJSON_Delete(a);
}

int jobs_work(int forever, char *err, size_t errsz)
{
    int lock = -1;
    for (int i = 0; i < 20 && lock < 0; i++) { /* a jobs command may hold it for a moment */
        lock = try_lock();
        if (lock < 0) usleep(50000);
    }
    if (lock < 0) return fail(err, errsz, "another worker is running");
    jobs_db *j;
    if (jobs_open(&j, err, errsz) != 0) {
        close(lock);
        return -1;
    }
    recover(j); /* we hold the lock: anything running is an orphan */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double idle_since = bn_time_now();
    while (!g_stop) {
        int64_t id;
        char *args;
        int got = claim(j, &id, &args);
        if (got > 0) {
            run_job(j, id, args);
            free(args);
            idle_since = bn_time_now();
            continue;
        }
        if (!forever && bn_time_now() - idle_since > IDLE_EXIT_S) break;
        usleep(200000);
    }
    jobs_close(j);
    close(lock);
    return 0;
}

/* ---- listing and changes
 * ------------------------------------------------------------------------- */

/* args and result are read in C, not with json_extract: one row whose JSON is broken (a
 * blob, text that is not JSON) would fail the whole query and hide every row after it. */
static const char JOB_COLS[] =
        "SELECT id, kind, status, created_at, started_at, ended_at, attempts, phase, percent, "
        "bytes_done, bytes_total, eta_s, error, cancel_requested, recovered, worker_pid, args, "
        "result FROM jobs";

enum { COL_ARGS = 16, COL_RESULT = 17 };

/* Column c as JSON (a string, number or null, as stored). */
static cJSON *col_json(sqlite3_stmt *st, int c)
{
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        return cJSON_CreateNull();
    case SQLITE_INTEGER:
        return cJSON_CreateNumber((double)sqlite3_column_int64(st, c));
    case SQLITE_FLOAT:
        return cJSON_CreateNumber(sqlite3_column_double(st, c));
    default:
        return cJSON_CreateString((const char *)sqlite3_column_text(st, c));
    }
}

/* Column c parsed as JSON: NULL when it is NULL, *bad = 1 when it is something else that
 * does not parse (a blob or broken text). */
static cJSON *col_parsed(sqlite3_stmt *st, int c, int *bad)
{
    const int t = sqlite3_column_type(st, c);
    if (t == SQLITE_NULL) return NULL;
    const char *s = (const char *)sqlite3_column_text(st, c);
    cJSON *j = t == SQLITE_TEXT && s ? cJSON_Parse(s) : NULL;
    if (!j) *bad = 1;
    return j;
}

static cJSON *str_or_null(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? cJSON_CreateString(v->valuestring) : cJSON_CreateNull();
}

/* One job as JSON; a job whose args or result cannot be read gets "problem" naming them
 * (and null in their place). */
static cJSON *row_json(sqlite3_stmt *st, int full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    static const char *const names[] = {
            NULL,          "kind",     "status", "created_at",       "started_at",
            "ended_at",    "attempts", "phase",  "percent",          "bytes_done",
            "bytes_total", "eta_s",    "error",  "cancel_requested", "recovered",
            "worker_pid"};
    int bad_args = 0, bad_result = 0;
    cJSON *args = col_parsed(st, COL_ARGS, &bad_args);
    cJSON *res = full ? col_parsed(st, COL_RESULT, &bad_result) : NULL;
    if (!bad_args && args && !cJSON_IsObject(args)) bad_args = 1;
    for (int c = 1; c < (int)(sizeof names / sizeof names[0]); c++) {
        cJSON_AddItemToObject(o, names[c], col_json(st, c));
        if (c == 2) { /* src and out after status, where they always were */
            cJSON_AddItemToObject(o, "src", str_or_null(args, "src"));
            cJSON_AddItemToObject(o, "out", str_or_null(args, "out"));
        }
    }
    if (bad_args || bad_result)
        cJSON_AddStringToObject(o, "problem",
                                bad_args && bad_result ? "args and result are not valid JSON"
                                : bad_args             ? "args are not valid JSON"
                                                       : "result is not valid JSON");
    if (full) {
        cJSON_AddItemToObject(o, "args", args && !bad_args ? args : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "result", res ? res : cJSON_CreateNull());
        if (bad_args) cJSON_Delete(args);
    } else {
        cJSON_Delete(args);
    }
    return o;
}

cJSON *jobs_list_json(jobs_db *j, const char *status, int limit, char *err, size_t errsz)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
             JOB_COLS);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql, sql, -1, &st, NULL) != SQLITE_OK) {
        sql_err(j, err, errsz, "list");
        return NULL;
    }
    if (status)
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "worker_running", jobs_worker_running());
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) cJSON_AddItemToArray(arr, row_json(st, 0));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) { /* never a silently shortened list */
        sql_err(j, err, errsz, "list");
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

cJSON *jobs_get_json(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE id = ?1", JOB_COLS);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql, sql, -1, &st, NULL) != SQLITE_OK) {
        sql_err(j, err, errsz, "show");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, id);
    cJSON *o = sqlite3_step(st) == SQLITE_ROW ? row_json(st, 1) : NULL;
    sqlite3_finalize(st);
    if (!o) fail(err, errsz, "no job %lld", (long long)id);
    return o;
}

static int job_status(jobs_db *j, int64_t id, char *status, size_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->sql, "SELECT status FROM jobs WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(status, n, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int jobs_cancel(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    char s[32];
    if (job_status(j, id, s, sizeof s) != 0) return fail(err, errsz, "no job %lld", (long long)id);
    if (strcmp(s, "queued") == 0)
        return exec1(j,
                     "UPDATE jobs SET status = 'cancelled', ended_at = ?2, error = 'cancelled' "
                     "WHERE id = ?1 AND status = 'queued'",
                     id, now_ms(), err, errsz);
    if (strcmp(s, "running") == 0)
        return exec1(j, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND ?2 = ?2", id, 0,
                     err, errsz);
    return fail(err, errsz, "job %lld is %s", (long long)id, s);
}

int jobs_retry(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    char s[32];
    if (job_status(j, id, s, sizeof s) != 0) return fail(err, errsz, "no job %lld", (long long)id);
    if (strcmp(s, "failed") != 0 && strcmp(s, "cancelled") != 0)
        return fail(err, errsz, "job %lld is %s (only failed or cancelled jobs are retried)",
                    (long long)id, s);
    return exec1(j,
                 "UPDATE jobs SET status = 'queued', error = NULL, result = NULL, started_at = "
                 "NULL, ended_at = NULL, cancel_requested = 0, phase = NULL, percent = 0, "
                 "bytes_done = 0, eta_s = NULL WHERE id = ?1 AND ?2 = ?2",
                 id, 0, err, errsz);
}
