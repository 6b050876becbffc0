/* jobs.c - the conversion queue (the history database's `jobs` table, whose statements are
 * db/jobs.c's: bitnet/db_jobs.h) and its worker. See jobs.h for the states, the lock and the
 * recovery after a crash. */
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/db_jobs.h"
#include "bitnet/file.h"
#include "bitnet/types.h"
#include "common/cli.h"
#include "common/history.h"
#include "common/self_run.h"

#define LOCK_SUFFIX      ".worker.lock"
#define LOG_SUFFIX       ".worker.log"
#define PROGRESS_EVERY_S 0.2
#define IDLE_EXIT_S      2.0
#define BUSY_TIMEOUT_MS  10000

struct jobs_db {
    bn_db *db; /* NULL only when reopening it failed */
    char path[4200];
};

/* ---- the lock ------------------------------------------------------------------------------- */

static int lock_path(char *out, size_t n)
{
    char db[4200], err[256];
    if (cm_history_path(db, sizeof db, NULL, err, sizeof err) != 0) return -1;
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

static int db_err(jobs_db *j, char *err, size_t errsz)
{
    return cm_fail(err, errsz, "%s", j->db ? bn_db_errmsg(j->db) : "the queue is not open");
}

static void sweep_tmp(void *ud, const char *out)
{
    (void)ud;
    bn_file_tmp_sweep(out); /* OUT.tmp-<dead pid>-* (bitnet/file.h) */
}

/* Jobs left running by a dead worker go back to the queue; their temporary output goes (a
 * job whose args are not JSON has no output to name, and does not stop the others'). */
static void recover(jobs_db *j)
{
    bn_db_job_recover(j->db, sweep_tmp, NULL, NULL);
}

int jobs_open(jobs_db **out, char *err, size_t errsz)
{
    *out = NULL;
    jobs_db *j = calloc(1, sizeof *j);
    if (!j) return cm_fail(err, errsz, "out of memory");
    if (cm_history_open(&j->db, j->path, sizeof j->path, err, errsz) != 0) { /* migrates */
        free(j);
        return -1;
    }
    int schema = bn_db_schema_version(j->db);
    if (schema < 4) {
        cm_fail(err, errsz, "%s: schema %d has no jobs table", j->path, schema);
        jobs_close(j);
        return -1;
    }
    bn_db_set_busy_timeout(j->db, BUSY_TIMEOUT_MS);
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
    bn_db_options opt = bn_db_options_default();
    opt.retention_days = 0; /* the history hook just applied it */
    opt.busy_timeout_ms = BUSY_TIMEOUT_MS;
    bn_db_close(j->db);
    if (bn_db_open(&j->db, j->path, &opt) != BN_OK) {
        fprintf(stderr, "jobs: cannot reopen %s: %s\n", j->path, bn_db_errmsg(j->db));
        bn_db_close(j->db);
        j->db = NULL;
    }
}

void jobs_close(jobs_db *j)
{
    if (!j) return;
    bn_db_close(j->db);
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
    if (stat(o->src, &sb) != 0) return cm_fail(err, errsz, "%s: %s", o->src, strerror(errno));
    if (o->prompts_file && stat(o->prompts_file, &sb) != 0)
        return cm_fail(err, errsz, "%s: %s", o->prompts_file, strerror(errno));
    if (o->calibrate && stat(o->calibrate, &sb) != 0)
        return cm_fail(err, errsz, "%s: %s", o->calibrate, strerror(errno));
    if (cv_check_output(o, err, errsz) != 0) return -1; /* the worker checks again */
    cJSON *a = cJSON_CreateObject();
    char *src = absolute(o->src), *out = absolute(o->out);
    char *pr = o->prompts_file ? absolute(o->prompts_file) : NULL;
    char *cal = o->calibrate ? absolute(o->calibrate) : NULL;
    cJSON_AddStringToObject(a, "src", src ? src : o->src);
    cJSON_AddStringToObject(a, "out", out ? out : o->out);
    cJSON_AddStringToObject(a, "type", bn_type_name(o->type));
    cJSON_AddStringToObject(a, "embd", bn_type_name(o->embd_type));
    cJSON_AddBoolToObject(a, "validate", o->validate);
    if (pr) cJSON_AddStringToObject(a, "prompts", pr);
    if (cal) cJSON_AddStringToObject(a, "calibrate", cal);
    if (o->method >= 0)
        cJSON_AddStringToObject(a, "method", o->method == CV_METHOD_GPTQ ? "gptq" : "absmean");
    if (o->lowrank > 0) cJSON_AddNumberToObject(a, "lowrank", o->lowrank);
    if (o->mixed > 0) cJSON_AddNumberToObject(a, "mixed", o->mixed);
    if (o->mixed > 0) cJSON_AddStringToObject(a, "mixed_type", bn_type_name(o->mixed_type));
    if (o->scales >= 0)
        cJSON_AddStringToObject(a, "scales", o->scales == CV_SCALES_ROW ? "row" : "tensor");
    cJSON_AddBoolToObject(a, "no_tokenizer", o->no_tokenizer);
    cJSON_AddBoolToObject(a, "force", o->force);
    cJSON_AddNumberToObject(a, "threads", o->threads);
    free(src);
    free(out);
    free(pr);
    free(cal);
    char *args = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    if (!args) return cm_fail(err, errsz, "out of memory");
    jobs_db *j;
    if (jobs_open(&j, err, errsz) != 0) {
        cJSON_free(args);
        return -1;
    }
    int r = bn_db_job_add(j->db, "convert", args, id) == BN_OK ? 0 : db_err(j, err, errsz);
    cJSON_free(args);
    jobs_close(j);
    return r;
}

/* ---- the worker --------------------------------------------------------------------------------
 */

int jobs_start_worker(void)
{
    if (jobs_worker_running()) return 0;
    static const char *const args[] = {"jobs", "work", NULL};
    char db[4200], logp[4300], err[512];
    if (cm_history_path(db, sizeof db, NULL, err, sizeof err) != 0) return -1;
    snprintf(logp, sizeof logp, "%s%s", db, LOG_SUFFIX);
    return sr_detach(args, logp, err, sizeof err) == 0 ? 1 : -1;
}

typedef struct work_ctx {
    jobs_db *j;
    int64_t id;
    double last;
    int cancel;
    double write_t0;   /* when the writing phase began (0: not yet) */
    uint64_t write_d0; /* the bytes done then */
} work_ctx;

double jobs_eta(double writing_s, double bytes_written, double bytes_left)
{
    if (bytes_left <= 0) return 0;
    if (writing_s < JOBS_ETA_FLOOR_S || bytes_written <= 0) return -1;
    return bytes_left * writing_s / bytes_written;
}

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
    if (writing && !w->write_t0) w->write_t0 = now, w->write_d0 = p->done;
    /* the time left from the writing's own throughput: the phases before it (reading the
     * source, the reference logits) say nothing of its speed */
    const double eta = writing ? jobs_eta(now - w->write_t0, (double)(p->done - w->write_d0),
                                          (double)(p->total - p->done))
                               : -1;
    bn_db *db = w->j->db;
    if (!db) return w->cancel || g_stop;
    if (bn_db_job_progress(db, w->id, p->phase, writing ? (int64_t)p->done : 0,
                           writing ? (int64_t)p->total : 0, pct, eta) != BN_OK)
        fprintf(stderr, "job %lld: progress: %s\n", (long long)w->id, bn_db_errmsg(db));
    int yes;
    if (bn_db_job_cancel_requested(db, w->id, &yes) == BN_OK && yes) w->cancel = 1;
    return w->cancel || g_stop;
}

/* Claims the oldest queued job: 1 with its id and args (free), or 0 when there is none. */
static int claim(jobs_db *j, int64_t *id, char **args)
{
    *args = NULL;
    char *a;
    if (!j->db || bn_db_job_claim(j->db, (int64_t)getpid(), id, &a) != BN_OK) return 0;
    *args = strdup(a);
    bn_free(a);
    return *args != NULL;
}

static void finish(jobs_db *j, int64_t id, const char *status, const char *result,
                   const char *error)
{
    if (j->db && bn_db_job_finish(j->db, id, status, result, error) != BN_OK)
        fprintf(stderr, "job %lld: cannot record the end: %s\n", (long long)id,
                bn_db_errmsg(j->db));
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
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "calibrate")) && cJSON_IsString(v))
        o.calibrate = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "method")) && cJSON_IsString(v))
        o.method = strcmp(v->valuestring, "gptq") ? CV_METHOD_ABSMEAN : CV_METHOD_GPTQ;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "lowrank")) && cJSON_IsNumber(v))
        o.lowrank = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "mixed")) && cJSON_IsNumber(v))
        o.mixed = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "mixed_type")) && cJSON_IsString(v))
        o.mixed_type = bn_type_from_name(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "scales")) && cJSON_IsString(v))
        o.scales = strcmp(v->valuestring, "row") ? CV_SCALES_TENSOR : CV_SCALES_ROW;
    if ((v = cJSON_GetObjectItemCaseSensitive(a, "threads")) && cJSON_IsNumber(v))
        o.threads = (int)v->valuedouble;
    work_ctx w = {.j = j, .id = id};
    o.progress = progress;
    o.user = &w;
    o.stop = &g_stop; /* SIGTERM stops the conversion at once, in any phase */
    printf("job %lld: converting %s -> %s\n", (long long)id, o.src ? o.src : "?",
           o.out ? o.out : "?");
    fflush(stdout);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddNumberToObject(params, "job", (double)id);
    cJSON_AddItemToObject(params, "args", cJSON_Duplicate(a, 1));
    /* bn_db_open (in cm_hist_begin) opens and closes the database file with open(2) and
     * close(2), which drops every POSIX lock this process holds on it while sqlite still
     * counts them as held: another process could then checkpoint and delete the WAL under
     * our connection. So no connection of ours is open while it runs. */
    bn_db_close(j->db);
    j->db = NULL;
    cm_hist_run *h = cm_hist_begin("convert", NULL, params);
    reopen(j);
    cJSON *report = NULL;
    char err[1024] = "";
    int rc = !o.src || !o.out || o.type < 0 || o.embd_type < 0
                     ? cm_fail(err, sizeof err, "malformed job arguments")
                     : cv_convert(&o, &report, err, sizeof err);
    char *res = report ? cJSON_PrintUnformatted(report) : NULL;
    const char *status = rc == 0 ? "done" : rc == -2 ? "cancelled" : "failed";
    if (g_stop && rc == -2) { /* the worker itself was stopped: back to the queue */
        status = "queued";
        snprintf(err, sizeof err, "worker stopped");
    }
    finish(j, id, status, res, rc == 0 ? NULL : err); /* queued: no start or end time */
    printf("job %lld: %s%s%s\n", (long long)id, status, rc ? ": " : "", rc ? err : "");
    fflush(stdout);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(report, "sha256");
    if (cJSON_IsString(sha)) cJSON_AddStringToObject(report, "output_sha256", sha->valuestring);
    cm_hist_end(h,
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
    if (lock < 0) return cm_fail(err, errsz, "another worker is running");
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

/* args and result are parsed here, not with json_extract: one row whose JSON is broken (a
 * blob, text that is not JSON) would fail the whole query and hide every row after it. */

/* text parsed as JSON: NULL when it is NULL, *bad = 1 when it is something else that does
 * not parse (not_text: a blob or a number, or broken text). */
static cJSON *parsed(const char *text, int not_text, int *bad)
{
    if (!text && !not_text) return NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (!j) *bad = 1;
    return j;
}

static cJSON *str_or_null(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? cJSON_CreateString(v->valuestring) : cJSON_CreateNull();
}

static cJSON *text_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* n as a number, or null when it is "none" (0 for times and the pid, < 0 for the ETA). */
static cJSON *num_or_null(double n, int none)
{
    return none ? cJSON_CreateNull() : cJSON_CreateNumber(n);
}

/* A finished conversion's verdict from its validation: "poor" (top-1 agreement with the
 * reference under 50%), "warnings" (under 90%, or the report warns), "ok", "unvalidated" (no
 * figures); NULL for a job that is not done. */
static const char *verdict(const char *status, const cJSON *res)
{
    if (strcmp(status, "done")) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "validation");
    const cJSON *top1 = cJSON_GetObjectItemCaseSensitive(v, "top1_agreement");
    const int warns = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "warnings")) > 0;
    if (!cJSON_IsNumber(top1)) return warns ? "warnings" : "unvalidated";
    return top1->valuedouble < 0.5 ? "poor" : top1->valuedouble < 0.9 || warns ? "warnings" : "ok";
}

/* The verdict, the validation figures and the warnings of a done job's result. */
static void add_outcome(cJSON *o, const char *status, const cJSON *res)
{
    const char *vd = verdict(status, res);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "validation");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(res, "warnings");
    cJSON_AddItemToObject(o, "verdict", vd ? cJSON_CreateString(vd) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "validation",
                          cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "warnings",
                          cJSON_IsArray(w) ? cJSON_Duplicate(w, 1) : cJSON_CreateArray());
}

/* One job as JSON; a job whose args or result cannot be read gets "problem" naming them
 * (and null in their place). */
static cJSON *row_json(const bn_job *r, int full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    int bad_args = 0, bad_result = 0;
    cJSON *args = parsed(r->args, r->args_not_text, &bad_args);
    int unread = 0; /* the list reads the result for its verdict, but names no problem */
    cJSON *res = parsed(r->result, r->result_not_text, full ? &bad_result : &unread);
    if (!bad_args && args && !cJSON_IsObject(args)) bad_args = 1;
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddStringToObject(o, "status", r->status);
    cJSON_AddItemToObject(o, "src", str_or_null(args, "src")); /* where they always were */
    cJSON_AddItemToObject(o, "out", str_or_null(args, "out"));
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_ms);
    cJSON_AddItemToObject(o, "started_at", num_or_null((double)r->started_ms, !r->started_ms));
    cJSON_AddItemToObject(o, "ended_at", num_or_null((double)r->ended_ms, !r->ended_ms));
    cJSON_AddNumberToObject(o, "attempts", (double)r->attempts);
    cJSON_AddItemToObject(o, "phase", text_or_null(r->phase));
    cJSON_AddNumberToObject(o, "percent", r->percent);
    cJSON_AddNumberToObject(o, "bytes_done", (double)r->bytes_done);
    cJSON_AddNumberToObject(o, "bytes_total", (double)r->bytes_total);
    cJSON_AddItemToObject(o, "eta_s", num_or_null(r->eta_s, r->eta_s < 0));
    cJSON_AddItemToObject(o, "error", text_or_null(r->error));
    cJSON_AddNumberToObject(o, "cancel_requested", (double)r->cancel_requested);
    cJSON_AddNumberToObject(o, "recovered", (double)r->recovered);
    cJSON_AddItemToObject(o, "worker_pid", num_or_null((double)r->worker_pid, !r->worker_pid));
    add_outcome(o, r->status, res);
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
        cJSON_Delete(res);
    }
    return o;
}

cJSON *jobs_list_json(jobs_db *j, const char *status, int limit, char *err, size_t errsz)
{
    bn_job *rows;
    size_t n;
    if (!j->db || bn_db_job_list(j->db, status, limit, &rows, &n) != BN_OK) {
        db_err(j, err, errsz); /* never a silently shortened list */
        return NULL;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "worker_running", jobs_worker_running());
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, row_json(&rows[i], 0));
    bn_db_jobs_free(rows, n);
    return doc;
}

cJSON *jobs_get_json(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    bn_job r;
    bn_status s = j->db ? bn_db_job_get(j->db, id, &r) : BN_ERR_IO;
    if (s == BN_ERR_NOT_FOUND) cm_fail(err, errsz, "no job %lld", (long long)id);
    if (s != BN_OK) {
        if (s != BN_ERR_NOT_FOUND) db_err(j, err, errsz);
        return NULL;
    }
    cJSON *o = row_json(&r, 1);
    bn_job_release(&r);
    return o;
}

/* The state of job id into s: 0, or -1 with a message (no such job, or the database). */
static int job_status(jobs_db *j, int64_t id, char *s, size_t n, char *err, size_t errsz)
{
    bn_status st = j->db ? bn_db_job_status(j->db, id, s, n) : BN_ERR_IO;
    if (st == BN_ERR_NOT_FOUND) return cm_fail(err, errsz, "no job %lld", (long long)id);
    return st == BN_OK ? 0 : db_err(j, err, errsz);
}

int jobs_cancel(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    char s[32];
    if (job_status(j, id, s, sizeof s, err, errsz) != 0) return -1;
    if (strcmp(s, "queued") == 0)
        return bn_db_job_cancel_queued(j->db, id) == BN_OK ? 0 : db_err(j, err, errsz);
    if (strcmp(s, "running") == 0)
        return bn_db_job_request_cancel(j->db, id) == BN_OK ? 0 : db_err(j, err, errsz);
    return cm_fail(err, errsz, "job %lld is %s", (long long)id, s);
}

int jobs_retry(jobs_db *j, int64_t id, char *err, size_t errsz)
{
    char s[32];
    if (job_status(j, id, s, sizeof s, err, errsz) != 0) return -1;
    if (strcmp(s, "failed") != 0 && strcmp(s, "cancelled") != 0)
        return cm_fail(err, errsz, "job %lld is %s (only failed or cancelled jobs are retried)",
                       (long long)id, s);
    return bn_db_job_requeue(j->db, id) == BN_OK ? 0 : db_err(j, err, errsz);
}
