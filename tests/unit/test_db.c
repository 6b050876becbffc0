/* test_db.c - the run history: open and migrations (empty, older, newer, not a database),
 * runs begin/end, list filters, exports (CSV quoting, JSON), prune and retention, marking the
 * runs of dead processes incomplete, concurrent writers, kill -9 in the middle of writing, a
 * second open in the same process keeping the first one's locks, the sha256 cache, the default
 * path, and failed allocations; the conversion queue's rows (bitnet/db_jobs.h): a job's whole
 * life, recovery, a broken row, a history from before the queue, failed allocations; and the
 * monitor's spool (bitnet/db_spool.h): statuses and messages, broken rows, failed allocations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/db.h"
#include "bitnet/db_jobs.h"
#include "bitnet/db_spool.h"

/* ---- fixtures ---------------------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    char path[320]; /* dir/a/b/history.db: the directories do not exist yet */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/bn_test_db.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/a/b/history.db", f->dir);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static bn_db *open_ok(const char *path, const bn_db_options *o)
{
    bn_db *db;
    bn_status s = bn_db_open(&db, path, o);
    if (s != BN_OK) fprintf(stderr, "open: %s\n", bn_db_errmsg(db));
    assert_int_equal(s, BN_OK);
    return db;
}

/* A raw connection for setting up states by hand and checking results. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *s;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    return s;
}

static void raw_exec(sqlite3 *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
}

static int64_t raw_int(sqlite3 *s, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_text(sqlite3 *s, const char *sql, char *buf, size_t size)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, size, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
}

static void rawf(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rawf(const char *path, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3 *s = raw_open(path);
    raw_exec(s, sql);
    sqlite3_close(s);
}

static int64_t begin_run(bn_db *db, const char *cmd)
{
    int64_t id = 0;
    assert_int_equal(bn_db_run_begin(db, cmd, NULL, NULL, NULL, &id), BN_OK);
    assert_true(id > 0);
    return id;
}

static const int64_t T0 = 1800000000000; /* a fixed "now" for tests that move the clock */

/* ---- opening and migrations --------------------------------------------------------------- */

static void test_migrations_table(void **state)
{
    (void)state;
    /* sqlite is the one linked (headers and library agree) */
    assert_int_equal(sqlite3_libversion_number(), SQLITE_VERSION_NUMBER);
    assert_true(BN_DB_SCHEMA_VERSION >= 2);
}

static void test_open_empty(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    assert_int_equal(bn_db_check(db), BN_OK);
    assert_string_equal(bn_db_errmsg(db), "");
    bn_db_close(db);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/a/b", f->dir);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    sqlite3 *s = raw_open(f->path);
    char mode[32];
    raw_text(s, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(s, "PRAGMA user_version"), BN_DB_SCHEMA_VERSION);
    assert_int_equal(raw_int(s, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                "('runs', 'meta', 'file_hashes')"),
                     3);
    sqlite3_close(s);

    /* a second open changes nothing */
    db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    bn_db_close(db);
    bn_db_close(NULL);
}

/* The schema of version 1 as it was released, frozen here: the test builds a file of that
 * version by hand and opens it with the current code. */
static const char v1_sql[] =
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT NOT NULL, "
        "model_path TEXT, model_sha256 TEXT, params TEXT, metrics TEXT, "
        "started_at INTEGER NOT NULL, ended_at INTEGER, status TEXT NOT NULL DEFAULT 'running', "
        "error TEXT, pid INTEGER, host TEXT, boot_id TEXT, proc_start INTEGER);"
        "CREATE INDEX runs_started ON runs(started_at);"
        "CREATE INDEX runs_command ON runs(command, started_at);"
        "CREATE INDEX runs_status ON runs(status);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "PRAGMA user_version=1;";

static void test_migrate_from_v1(void **state)
{
    fx *f = *state;
    snprintf(f->path, sizeof f->path, "%s/old.db", f->dir);
    sqlite3 *s = raw_open(f->path);
    raw_exec(s, v1_sql);
    raw_exec(s, "INSERT INTO runs (command, model_path, params, metrics, started_at, ended_at, "
                "status, pid, host) VALUES ('bench', '/m.gguf', '{\"reps\":2}', "
                "'{\"tps\":5.5}', 1700000000000, 1700000001500, 'ok', 1, 'h')");
    sqlite3_close(s);

    bn_db_options o = bn_db_options_default();
    o.retention_days = 0; /* the row is old: keep it */
    bn_db *db = open_ok(f->path, &o);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION); /* every migration ran */
    bn_run r;
    assert_int_equal(bn_db_run_get(db, 1, &r), BN_OK);
    assert_string_equal(r.command, "bench");
    assert_string_equal(r.model_path, "/m.gguf");
    assert_string_equal(r.params_json, "{\"reps\":2}");
    assert_int_equal(r.status, BN_RUN_OK);
    assert_int_equal(r.ended_ms - r.started_ms, 1500);
    assert_non_null(strstr(r.json, "\"duration_s\":1.5"));
    assert_non_null(strstr(r.json, "\"started_at\":\"2023-11-14T22:13:20.000Z\""));
    bn_run_release(&r);
    /* what version 2 added works */
    char sha[65];
    const char *h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(bn_db_hash_store(db, "/m.gguf", 10, 20, h), BN_OK);
    assert_int_equal(bn_db_hash_lookup(db, "/m.gguf", 10, 20, sha), BN_OK);
    assert_string_equal(sha, h);
    assert_int_equal(bn_db_check(db), BN_OK);
    bn_db_close(db);
}

static void test_refuse_newer_schema(void **state)
{
    fx *f = *state;
    snprintf(f->path, sizeof f->path, "%s/new.db", f->dir);
    sqlite3 *s = raw_open(f->path);
    raw_exec(s, "CREATE TABLE future (x); PRAGMA user_version=99;");
    sqlite3_close(s);
    bn_db *db;
    assert_int_equal(bn_db_open(&db, f->path, NULL), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_db_errmsg(db), "schema version 99"));
    assert_non_null(strstr(bn_db_errmsg(db), "newer"));
    assert_non_null(strstr(bn_db_errmsg(db), f->path));
    bn_db_close(db);
    /* untouched: same version, still not in WAL mode */
    s = raw_open(f->path);
    assert_int_equal(raw_int(s, "PRAGMA user_version"), 99);
    char mode[32];
    raw_text(s, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "delete");
    sqlite3_close(s);
}

static void test_not_a_database(void **state)
{
    fx *f = *state;
    snprintf(f->path, sizeof f->path, "%s/junk.db", f->dir);
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++) fputs("this is not an sqlite file. ", fp);
    fclose(fp);
    bn_db *db;
    assert_int_equal(bn_db_open(&db, f->path, NULL), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_db_errmsg(db), f->path));
    bn_db_close(db);
    /* a directory where the file should be */
    snprintf(f->path, sizeof f->path, "%s/a", f->dir);
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(bn_db_open(&db, f->path, NULL), BN_ERR_IO);
    assert_non_null(strstr(bn_db_errmsg(db), f->path));
    bn_db_close(db);
    /* a file where a directory should be */
    snprintf(f->path, sizeof f->path, "%s/junk.db/x/h.db", f->dir);
    assert_int_equal(bn_db_open(&db, f->path, NULL), BN_ERR_IO);
    bn_db_close(db);
    assert_int_equal(bn_db_open(&db, "", NULL), BN_ERR_INVALID);
    bn_db_close(db);
}

/* ---- runs -------------------------------------------------------------------------------- */

static void test_begin_end(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    int64_t id;
    assert_int_equal(bn_db_run_begin(db, "generate", "/models/m.gguf", NULL,
                                     "{ \"n\": 8, \"temp\": 0.5 }", &id),
                     BN_OK);
    bn_run r;
    assert_int_equal(bn_db_run_get(db, id, &r), BN_OK);
    assert_int_equal(r.status, BN_RUN_RUNNING);
    assert_string_equal(r.params_json, "{\"n\":8,\"temp\":0.5}"); /* minified */
    assert_null(r.metrics_json);
    assert_null(r.model_sha256);
    assert_int_equal(r.ended_ms, 0);
    assert_int_equal(r.pid, getpid());
    assert_non_null(strstr(r.json, "\"ended_at\":null"));
    bn_run_release(&r);

    assert_int_equal(bn_db_run_end(db, id, BN_RUN_OK, "{\"tokens_per_s\": 12.5}", NULL), BN_OK);
    assert_int_equal(bn_db_run_get(db, id, &r), BN_OK);
    assert_int_equal(r.status, BN_RUN_OK);
    assert_string_equal(r.metrics_json, "{\"tokens_per_s\":12.5}");
    assert_true(r.ended_ms >= r.started_ms);
    cJSON *j = cJSON_Parse(r.json);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "n")->valuedouble == 8);
    assert_true(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "tokens_per_s")->valuedouble ==
            12.5);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
    bn_run_release(&r);

    /* a failed run keeps its error */
    id = begin_run(db, "perplexity");
    assert_int_equal(bn_db_run_end(db, id, BN_RUN_FAILED, NULL, "m.gguf: truncated"), BN_OK);
    assert_int_equal(bn_db_run_get(db, id, &r), BN_OK);
    assert_int_equal(r.status, BN_RUN_FAILED);
    assert_string_equal(r.error, "m.gguf: truncated");
    bn_run_release(&r);

    /* bad calls */
    assert_int_equal(bn_db_run_begin(db, "x", NULL, NULL, "{bad", &id), BN_ERR_INVALID);
    assert_non_null(strstr(bn_db_errmsg(db), "JSON"));
    assert_int_equal(bn_db_run_begin(db, NULL, NULL, NULL, NULL, &id), BN_ERR_INVALID);
    assert_int_equal(bn_db_run_begin(db, "", NULL, NULL, NULL, &id), BN_ERR_INVALID);
    assert_int_equal(bn_db_run_end(db, id, BN_RUN_OK, "[1,", NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_run_end(db, id, BN_RUN_RUNNING, NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_run_end(db, id, (bn_run_status)77, NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_run_end(db, 12345, BN_RUN_OK, NULL, NULL), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_run_get(db, 12345, &r), BN_ERR_NOT_FOUND);
    assert_non_null(strstr(bn_db_errmsg(db), "12345"));
    bn_db_close(db);
}

static void test_status_names(void **state)
{
    (void)state;
    for (int i = 0; i < BN_RUN_STATUS_COUNT_; i++) {
        bn_run_status s;
        assert_int_equal(bn_run_status_parse(bn_run_status_str((bn_run_status)i), &s), 0);
        assert_int_equal(s, i);
    }
    bn_run_status s;
    assert_int_equal(bn_run_status_parse("done", &s), -1);
    assert_int_equal(bn_run_status_parse(NULL, &s), -1);
    assert_string_equal(bn_run_status_str((bn_run_status)99), "unknown");
    assert_string_equal(bn_run_status_str(BN_RUN_INCOMPLETE), "incomplete");
}

static size_t count(bn_db *db, const bn_run_filter *flt)
{
    bn_run *runs;
    size_t n;
    assert_int_equal(bn_db_run_list(db, flt, &runs, &n), BN_OK);
    bn_db_runs_free(runs, n);
    return n;
}

static void test_list_filters(void **state)
{
    fx *f = *state;
    bn_db_options o = bn_db_options_default();
    o.now_ms = T0;
    bn_db *db = open_ok(f->path, &o);
    /* 6 runs, started 0..5 days ago (run i started i days ago) */
    const char *cmds[] = {"generate", "bench", "generate", "perplexity", "bench", "generate"};
    for (int i = 0; i < 6; i++) {
        int64_t id;
        char params[64];
        snprintf(params, sizeof params, "{\"i\":%d,\"tag\":\"%s\"}", i,
                 i == 2 ? "50%_off" : "plain");
        assert_int_equal(
                bn_db_run_begin(db, cmds[i], i == 3 ? "/x/Tiny.gguf" : NULL, NULL, params, &id),
                BN_OK);
        if (i % 2 == 0) assert_int_equal(bn_db_run_end(db, id, BN_RUN_OK, NULL, NULL), BN_OK);
        if (i == 1) assert_int_equal(bn_db_run_end(db, id, BN_RUN_FAILED, NULL, "boom"), BN_OK);
        rawf(f->path, "UPDATE runs SET started_at = %lld WHERE id = %lld",
             (long long)(T0 - i * 86400000LL), (long long)id);
    }
    bn_run_filter flt = bn_run_filter_all();
    assert_int_equal(count(db, NULL), 6);
    assert_int_equal(count(db, &flt), 6);

    bn_run *runs;
    size_t n;
    assert_int_equal(bn_db_run_list(db, &flt, &runs, &n), BN_OK);
    for (size_t i = 1; i < n; i++) assert_true(runs[i - 1].started_ms >= runs[i].started_ms);
    assert_int_equal(runs[0].started_ms, T0);
    bn_db_runs_free(runs, n);

    flt.command = "generate";
    assert_int_equal(count(db, &flt), 3);
    flt.status = BN_RUN_OK;
    assert_int_equal(count(db, &flt), 2);
    flt.command = NULL;
    assert_int_equal(count(db, &flt), 3);
    flt.status = BN_RUN_FAILED;
    assert_int_equal(count(db, &flt), 1);
    flt.status = BN_RUN_RUNNING;
    assert_int_equal(count(db, &flt), 2);
    flt = bn_run_filter_all();
    flt.since_ms = T0 - 2 * 86400000LL; /* runs 0, 1, 2 */
    assert_int_equal(count(db, &flt), 3);
    flt.limit = 2;
    flt.oldest_first = 1;
    assert_int_equal(bn_db_run_list(db, &flt, &runs, &n), BN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(runs[0].started_ms, T0 - 2 * 86400000LL);
    bn_db_runs_free(runs, n);

    flt = bn_run_filter_all();
    flt.text = "tiny"; /* model path, any case */
    assert_int_equal(count(db, &flt), 1);
    flt.text = "boom"; /* error */
    assert_int_equal(count(db, &flt), 1);
    flt.text = "50%_"; /* LIKE's wildcards are literal */
    assert_int_equal(count(db, &flt), 1);
    flt.text = "%";
    assert_int_equal(count(db, &flt), 1);
    flt.text = "_";
    assert_int_equal(count(db, &flt), 1);
    flt.text = "perplex"; /* command */
    assert_int_equal(count(db, &flt), 1);
    flt.text = "nothing like it";
    assert_int_equal(count(db, &flt), 0);
    bn_db_close(db);
}

/* ---- exports ---------------------------------------------------------------------------- */

static char *export_str(bn_db *db, bn_db_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    assert_int_equal(bn_db_export(db, NULL, fmt, m), BN_OK);
    fclose(m);
    return buf;
}

static void test_export_csv(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    char *csv = export_str(db, BN_DB_FORMAT_CSV);
    assert_string_equal(csv, "id,command,status,started_at,ended_at,duration_s,model_path,"
                             "model_sha256,params,metrics,error,pid,host\n");
    free(csv);

    int64_t id;
    assert_int_equal(bn_db_run_begin(db, "gen,erate", "/dir, with \"quotes\"/m.gguf", NULL,
                                     "{\"p\":\"a,b\"}", &id),
                     BN_OK);
    assert_int_equal(bn_db_run_end(db, id, BN_RUN_FAILED, NULL, "line one\nline \"two\"\r\n"),
                     BN_OK);
    rawf(f->path,
         "UPDATE runs SET started_at = 1700000000000, ended_at = 1700000002250, "
         "host = 'h' WHERE id = %lld",
         (long long)id);
    id = begin_run(db, " padded ");
    rawf(f->path, "UPDATE runs SET started_at = 1700000005000, host = 'h' WHERE id = %lld",
         (long long)id);
    csv = export_str(db, BN_DB_FORMAT_CSV);
    char want[1024];
    snprintf(want, sizeof want,
             "id,command,status,started_at,ended_at,duration_s,model_path,model_sha256,params,"
             "metrics,error,pid,host\n"
             "1,\"gen,erate\",failed,2023-11-14T22:13:20.000Z,2023-11-14T22:13:22.250Z,2.250,"
             "\"/dir, with \"\"quotes\"\"/m.gguf\",,\"{\"\"p\"\":\"\"a,b\"\"}\",,"
             "\"line one\nline \"\"two\"\"\r\n\",%d,h\n"
             "2,\" padded \",running,2023-11-14T22:13:25.000Z,,,,,,,,%d,h\n",
             (int)getpid(), (int)getpid());
    assert_string_equal(csv, want);
    free(csv);

    /* JSON: parses, one object per run, oldest first, the texts intact */
    char *js = export_str(db, BN_DB_FORMAT_JSON);
    cJSON *j = cJSON_Parse(js);
    assert_non_null(j);
    const cJSON *runs = cJSON_GetObjectItem(j, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    const cJSON *r0 = cJSON_GetArrayItem(runs, 0);
    assert_string_equal(cJSON_GetObjectItem(r0, "command")->valuestring, "gen,erate");
    assert_string_equal(cJSON_GetObjectItem(r0, "error")->valuestring,
                        "line one\nline \"two\"\r\n");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "params"), "p")->valuestring,
                        "a,b");
    assert_true(cJSON_GetObjectItem(r0, "duration_s")->valuedouble == 2.25);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 1), "ended_at")));
    cJSON_Delete(j);
    free(js);

    /* an empty selection is still a document */
    bn_run_filter flt = bn_run_filter_all();
    flt.command = "none";
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(bn_db_export(db, &flt, BN_DB_FORMAT_JSON, m), BN_OK);
    fclose(m);
    j = cJSON_Parse(buf);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "runs")), 0);
    cJSON_Delete(j);
    free(buf);

    /* a write error is reported */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        assert_int_equal(bn_db_export(db, NULL, BN_DB_FORMAT_CSV, full), BN_ERR_IO);
        fclose(full);
    }
    bn_db_close(db);
}

/* Rows whose params or metrics are not JSON text (a blob, broken text: a foreign writer or a
 * damaged file) are listed with the others, named by "problem"; json() used to fail the whole
 * query on the first of them. */
static void test_unreadable_rows(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    int64_t id[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bn_db_run_begin(db, "generate", NULL, NULL, "{\"n\":8}", &id[i]), BN_OK);
        assert_int_equal(bn_db_run_end(db, id[i], BN_RUN_OK, "{\"tokens_per_s\":1.5}", NULL),
                         BN_OK);
    }
    rawf(f->path, "UPDATE runs SET params = x'00ff7b' WHERE id = %lld", (long long)id[1]);
    rawf(f->path, "UPDATE runs SET metrics = '{bad' WHERE id = %lld", (long long)id[2]);
    rawf(f->path, "UPDATE runs SET params = '[1,', metrics = x'7b7d' WHERE id = %lld",
         (long long)id[3]);
    bn_run *runs;
    size_t n;
    if (bn_db_run_list(db, NULL, &runs, &n) != BN_OK) fail_msg("list: %s", bn_db_errmsg(db));
    assert_int_equal(n, 4);
    static const char *const want[4] = {"params and metrics are not valid JSON",
                                        "metrics are not valid JSON", "params are not valid JSON",
                                        NULL}; /* newest first: id[3] .. id[0] */
    for (size_t i = 0; i < n; i++) {
        const bn_run *r = &runs[i];
        assert_int_equal(r->id, id[3 - i]);
        cJSON *j = cJSON_Parse(r->json);
        assert_non_null(j);
        const cJSON *p = cJSON_GetObjectItem(j, "problem");
        if (!want[i]) {
            assert_null(r->problem);
            assert_null(p);
            assert_string_equal(r->params_json, "{\"n\":8}");
        } else {
            assert_string_equal(r->problem, want[i]);
            assert_string_equal(cJSON_GetStringValue(p), want[i]);
        }
        /* a broken column reads as NULL; the other one is intact */
        const int bad_p = want[i] && strstr(want[i], "params"),
                  bad_m = want[i] && strstr(want[i], "metrics");
        assert_int_equal(r->params_json == NULL, bad_p);
        assert_int_equal(r->metrics_json == NULL, bad_m);
        assert_int_equal(cJSON_IsNull(cJSON_GetObjectItem(j, "params")), bad_p);
        assert_int_equal(cJSON_IsNull(cJSON_GetObjectItem(j, "metrics")), bad_m);
        cJSON_Delete(j);
    }
    bn_db_runs_free(runs, n);
    /* one run, and the exports, read past them too */
    bn_run r;
    assert_int_equal(bn_db_run_get(db, id[1], &r), BN_OK);
    assert_string_equal(r.problem, "params are not valid JSON");
    bn_run_release(&r);
    char *js = export_str(db, BN_DB_FORMAT_JSON);
    cJSON *j = cJSON_Parse(js);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "runs")), 4);
    cJSON_Delete(j);
    free(js);
    char *csv = export_str(db, BN_DB_FORMAT_CSV);
    int lines = 0;
    for (const char *c = csv; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 5);
    free(csv);
    /* --search still works over a blob */
    bn_run_filter flt = bn_run_filter_all();
    flt.text = "tokens_per_s";
    assert_int_equal(count(db, &flt), 2);
    bn_db_close(db);
}

/* ---- prune and retention ----------------------------------------------------------------- */

/* Adds a finished run that started days_ago days before T0. */
static void add_old(bn_db *db, const char *path, double days_ago)
{
    int64_t id = begin_run(db, "bench");
    assert_int_equal(bn_db_run_end(db, id, BN_RUN_OK, NULL, NULL), BN_OK);
    rawf(path, "UPDATE runs SET started_at = %lld WHERE id = %lld",
         (long long)(T0 - (int64_t)(days_ago * 86400000.0)), (long long)id);
}

static void test_prune(void **state)
{
    fx *f = *state;
    bn_db_options o = bn_db_options_default();
    o.now_ms = T0;
    bn_db *db = open_ok(f->path, &o);
    const double ages[] = {0, 1, 29.9, 30.1, 45, 400};
    for (size_t i = 0; i < sizeof ages / sizeof ages[0]; i++) add_old(db, f->path, ages[i]);
    int64_t n = -1;
    assert_int_equal(bn_db_prune(db, 30, &n), BN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(count(db, NULL), 3);
    assert_int_equal(bn_db_prune(db, 30, &n), BN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bn_db_prune(db, -1, &n), BN_ERR_INVALID);
    assert_int_equal(bn_db_prune(db, 1, NULL), BN_OK);
    assert_int_equal(count(db, NULL), 2);
    assert_int_equal(bn_db_prune(db, 0, &n), BN_OK); /* everything that started before now */
    assert_int_equal(count(db, NULL), 1);            /* the one that started exactly now */
    bn_db_close(db);
}

static void test_retention(void **state)
{
    fx *f = *state;
    bn_db_options o = bn_db_options_default();
    o.retention_days = 10;
    o.now_ms = T0;
    bn_db *db = open_ok(f->path, &o);
    assert_int_equal(bn_db_open_pruned(db), 0);
    add_old(db, f->path, 3);
    add_old(db, f->path, 11);
    add_old(db, f->path, 20);
    bn_db_close(db);

    /* an hour later: retention ran at the first open, not again before a day has passed */
    o.now_ms = T0 + 3600 * 1000;
    db = open_ok(f->path, &o);
    assert_int_equal(bn_db_open_pruned(db), 0);
    assert_int_equal(count(db, NULL), 3);
    bn_db_close(db);

    /* a day later */
    o.now_ms = T0 + 86400000LL;
    db = open_ok(f->path, &o);
    assert_int_equal(bn_db_open_pruned(db), 2);
    assert_int_equal(count(db, NULL), 1);
    bn_db_close(db);

    /* retention 0 keeps everything, whenever */
    db = open_ok(f->path, &o);
    add_old(db, f->path, 500);
    bn_db_close(db);
    o.retention_days = 0;
    o.now_ms = T0 + 10 * 86400000LL;
    db = open_ok(f->path, &o);
    assert_int_equal(bn_db_open_pruned(db), 0);
    assert_int_equal(count(db, NULL), 2);
    bn_db_close(db);

    /* the clock went back: retention runs again */
    o.retention_days = 10;
    o.now_ms = T0 - 86400000LL;
    db = open_ok(f->path, &o);
    assert_int_equal(bn_db_open_pruned(db), 1);
    bn_db_close(db);
}

/* ---- processes that die ------------------------------------------------------------------ */

/* The pid of a process that has exited and been reaped. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) _exit(0);
    assert_int_equal(waitpid(p, NULL, 0), p);
    return p;
}

static bn_run_status status_of(bn_db *db, int64_t id)
{
    bn_run r;
    assert_int_equal(bn_db_run_get(db, id, &r), BN_OK);
    bn_run_status s = r.status;
    bn_run_release(&r);
    return s;
}

static void test_incomplete(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    const int64_t mine = begin_run(db, "generate");
    const int64_t dead = begin_run(db, "generate");
    const int64_t reboot = begin_run(db, "bench");
    const int64_t other_host = begin_run(db, "bench");
    const int64_t reused = begin_run(db, "bench");
    const int64_t ended = begin_run(db, "bench");
    assert_int_equal(bn_db_run_end(db, ended, BN_RUN_OK, NULL, NULL), BN_OK);
    bn_db_close(db);
    rawf(f->path, "UPDATE runs SET pid = %d WHERE id = %lld", (int)dead_pid(), (long long)dead);
    rawf(f->path, "UPDATE runs SET boot_id = 'another-boot' WHERE id = %lld", (long long)reboot);
    rawf(f->path, "UPDATE runs SET host = 'elsewhere', pid = %d WHERE id = %lld", (int)dead_pid(),
         (long long)other_host);
    /* the parent is alive, but it is not the process that began the run: its pid was reused */
    rawf(f->path, "UPDATE runs SET pid = %d, proc_start = 1 WHERE id = %lld", (int)getppid(),
         (long long)reused);

    db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_open_incomplete(db), 3);
    assert_int_equal(status_of(db, mine), BN_RUN_RUNNING);
    assert_int_equal(status_of(db, dead), BN_RUN_INCOMPLETE);
    assert_int_equal(status_of(db, reboot), BN_RUN_INCOMPLETE);
    assert_int_equal(status_of(db, other_host), BN_RUN_RUNNING);
    assert_int_equal(status_of(db, reused), BN_RUN_INCOMPLETE);
    assert_int_equal(status_of(db, ended), BN_RUN_OK);
    bn_run r;
    assert_int_equal(bn_db_run_get(db, dead, &r), BN_OK);
    assert_non_null(strstr(r.error, "ended without recording"));
    bn_run_release(&r);
    /* the process that is still alive can end its run */
    assert_int_equal(bn_db_run_end(db, mine, BN_RUN_OK, NULL, NULL), BN_OK);
    bn_db_close(db);
    db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_open_incomplete(db), 0);
    bn_db_close(db);
}

/* Recovery marks every dead run at one open, however many (it once stopped at 256), and leaves
 * a live one among them running. */
static void test_incomplete_many(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    const int64_t mine = begin_run(db, "generate");
    for (int i = 0; i < 1000; i++) begin_run(db, "bench");
    const int64_t mine2 = begin_run(db, "generate");
    bn_db_close(db);
    rawf(f->path, "UPDATE runs SET pid = %d WHERE id NOT IN (%lld, %lld)", (int)dead_pid(),
         (long long)mine, (long long)mine2);

    db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_open_incomplete(db), 1000);
    assert_int_equal(status_of(db, mine), BN_RUN_RUNNING);
    assert_int_equal(status_of(db, mine2), BN_RUN_RUNNING);
    bn_run_filter flt = bn_run_filter_all();
    flt.status = BN_RUN_RUNNING;
    assert_int_equal(count(db, &flt), 2);
    bn_db_close(db);
}

/* ---- concurrency and crashes ----------------------------------------------------------------- */

/* A child that takes the write lock, tells the parent, holds it for ms and exits. */
static pid_t hold_lock(const char *path, int ms)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        close(fds[0]);
        sqlite3 *s;
        if (sqlite3_open(path, &s) != SQLITE_OK) _exit(1);
        if (sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) _exit(2);
        sqlite3_exec(s, "INSERT INTO meta VALUES ('lock', 'held')", NULL, NULL, NULL);
        if (write(fds[1], "x", 1) != 1) _exit(3);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        sqlite3_exec(s, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(s);
        _exit(0);
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_busy_timeout(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);

    /* a writer waits for the other one's lock */
    pid_t p = hold_lock(f->path, 300);
    const double t0 = now_s();
    int64_t id;
    assert_int_equal(bn_db_run_begin(db, "bench", NULL, NULL, NULL, &id), BN_OK);
    assert_true(now_s() - t0 > 0.15);
    int st;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    bn_db_close(db);

    /* ... but not forever */
    bn_db_options o = bn_db_options_default();
    o.busy_timeout_ms = 50;
    db = open_ok(f->path, &o);
    p = hold_lock(f->path, 600);
    assert_int_equal(bn_db_run_begin(db, "bench", NULL, NULL, NULL, &id), BN_ERR_IO);
    assert_non_null(strstr(bn_db_errmsg(db), "locked"));
    assert_int_equal(waitpid(p, &st, 0), p);
    bn_db_close(db);
}

static void test_concurrent_writers(void **state)
{
    fx *f = *state;
    enum { N_PROC = 3, N_RUNS = 40 };
    pid_t kids[N_PROC];
    for (int k = 0; k < N_PROC; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            /* all open the fresh file at once: creation and migration race too */
            bn_db *db;
            if (bn_db_open(&db, f->path, NULL) != BN_OK) {
                fprintf(stderr, "child open: %s\n", bn_db_errmsg(db));
                _exit(1);
            }
            for (int i = 0; i < N_RUNS; i++) {
                int64_t id;
                if (bn_db_run_begin(db, "bench", NULL, NULL, "{}", &id) != BN_OK ||
                    bn_db_run_end(db, id, BN_RUN_OK, "{\"i\":1}", NULL) != BN_OK) {
                    fprintf(stderr, "child write: %s\n", bn_db_errmsg(db));
                    _exit(2);
                }
            }
            bn_db_close(db);
            _exit(0);
        }
    }
    for (int k = 0; k < N_PROC; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    bn_db *db = open_ok(f->path, NULL);
    bn_run_filter flt = bn_run_filter_all();
    flt.status = BN_RUN_OK;
    assert_int_equal(count(db, &flt), N_PROC * N_RUNS);
    assert_int_equal(bn_db_check(db), BN_OK);
    bn_db_close(db);
}

/* A child begins a run, then writes (begin and end more runs) in a loop until kill -9. */
static void test_crash_kill9(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    bn_db_close(db);
    for (int round = 0; round < 3; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t p = fork();
        assert_true(p >= 0);
        if (p == 0) {
            close(fds[0]);
            if (bn_db_open(&db, f->path, NULL) != BN_OK) _exit(1);
            int64_t first;
            if (bn_db_run_begin(db, "train", "/m.gguf", NULL, "{\"steps\":1000}", &first)) _exit(2);
            if (write(fds[1], &first, sizeof first) != (ssize_t)sizeof first) _exit(3);
            for (int64_t i = 0;; i++) {
                int64_t id;
                char m[64];
                snprintf(m, sizeof m, "{\"step\":%lld}", (long long)i);
                bn_db_run_begin(db, "bench", NULL, NULL, m, &id);
                if (i % 3) bn_db_run_end(db, id, BN_RUN_OK, m, NULL);
            }
        }
        close(fds[1]);
        int64_t first = 0;
        assert_int_equal(read(fds[0], &first, sizeof first), (ssize_t)sizeof first);
        close(fds[0]);
        struct timespec ts = {0, (long)(20 + 40 * round) * 1000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(p, SIGKILL), 0);
        int st;
        assert_int_equal(waitpid(p, &st, 0), p);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

        db = open_ok(f->path, NULL);
        assert_int_equal(bn_db_check(db), BN_OK);
        assert_true(bn_db_open_incomplete(db) >= 1);
        assert_int_equal(status_of(db, first), BN_RUN_INCOMPLETE);
        bn_run_filter flt = bn_run_filter_all();
        flt.status = BN_RUN_RUNNING;
        assert_int_equal(count(db, &flt), 0);
        bn_db_close(db);
    }
    sqlite3 *s = raw_open(f->path);
    char r[64];
    raw_text(s, "PRAGMA integrity_check", r, sizeof r);
    assert_string_equal(r, "ok");
    sqlite3_close(s);
}

/* A child, forked before this process opens the file, that waits for a byte on the pipe and
 * then finds out what another process can do to the file, with no waiting. Bit 0 of its exit
 * status: it could take the write lock (BEGIN IMMEDIATE); bit 1: it could take the file out of
 * WAL (that needs the exclusive lock on the database file, which the shared lock of any open
 * connection forbids; had it worked, it would have checkpointed and deleted the WAL under the
 * parent's connections); 8 and up: it could not even try. It must be forked before the parent
 * opens the file: a child forked later inherits sqlite's record of the parent's locks and would
 * answer busy from that record, without asking the kernel. */
static pid_t fork_lock_probe(const char *path, int *go)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        close(fds[1]);
        char c;
        if (read(fds[0], &c, 1) != 1) _exit(11);
        sqlite3 *s;
        if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) _exit(8);
        sqlite3_busy_timeout(s, 0);
        int code = 0;
        int rc = sqlite3_exec(s, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            code |= 1;
            sqlite3_exec(s, "ROLLBACK", NULL, NULL, NULL);
        } else if (rc != SQLITE_BUSY) {
            _exit(9);
        }
        rc = sqlite3_exec(s, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            code |= 2;
        else if (rc != SQLITE_BUSY)
            _exit(10);
        sqlite3_close(s);
        _exit(code);
    }
    close(fds[0]);
    *go = fds[1];
    return p;
}

/* Opening the history a second time in the same process (the TUI does) and closing that handle
 * must leave the locks of the connections still open alone: POSIX locks belong to the process,
 * and closing ANY descriptor of the file drops them all, so bn_db_open must not open and close
 * an existing file itself. Here the first handle stays open, another connection of this process
 * holds an uncommitted write, and after the second open and close another process must still
 * find the file locked: it can neither write nor take the file out of WAL, and the write, once
 * committed, is in the file. */
static void test_second_open_keeps_locks(void **state)
{
    fx *f = *state;
    int go;
    pid_t p = fork_lock_probe(f->path, &go);

    bn_db *a = open_ok(f->path, NULL); /* the long-lived handle (the TUI's) */
    begin_run(a, "generate");
    sqlite3 *w = raw_open(f->path);
    raw_exec(w, "BEGIN IMMEDIATE");
    raw_exec(w, "INSERT INTO meta VALUES ('second_open', 'kept')");

    bn_db_options o = bn_db_options_default();
    o.busy_timeout_ms = 1; /* its housekeeping has nothing to write: no wait for w's lock */
    bn_db *b = open_ok(f->path, &o);
    bn_db_close(b);

    assert_int_equal(write(go, "x", 1), 1);
    close(go);
    int st;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("after a second open and close in this process, another process %s%s%s "
                 "(child exit status %d)",
                 WEXITSTATUS(st) & 1 ? "could take the write lock" : "",
                 (WEXITSTATUS(st) & 3) == 3 ? " and " : "",
                 WEXITSTATUS(st) & 2 ? "could take the file out of WAL" : "", WEXITSTATUS(st));

    raw_exec(w, "COMMIT");
    sqlite3_close(w);
    begin_run(a, "generate"); /* the first handle still works */
    bn_db_close(a);
    sqlite3 *s = raw_open(f->path);
    assert_int_equal(raw_int(s, "SELECT count(*) FROM meta WHERE key = 'second_open'"), 1);
    char r[64];
    raw_text(s, "PRAGMA journal_mode", r, sizeof r);
    assert_string_equal(r, "wal");
    raw_text(s, "PRAGMA integrity_check", r, sizeof r);
    assert_string_equal(r, "ok");
    sqlite3_close(s);
}

/* ---- the sha256 cache, the path, allocations ---------------------------------------------- */

static void test_hash_cache(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *b = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
    char sha[65];
    assert_int_equal(bn_db_hash_lookup(db, "/m", 1, 2, sha), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_hash_store(db, "/m", 1, 2, a), BN_OK);
    assert_int_equal(bn_db_hash_lookup(db, "/m", 1, 2, sha), BN_OK);
    assert_string_equal(sha, a);
    /* another size or time: stale */
    assert_int_equal(bn_db_hash_lookup(db, "/m", 1, 3, sha), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_hash_lookup(db, "/m", 9, 2, sha), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_hash_store(db, "/m", 1, 3, b), BN_OK); /* replaces */
    assert_int_equal(bn_db_hash_lookup(db, "/m", 1, 2, sha), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_hash_lookup(db, "/m", 1, 3, sha), BN_OK);
    assert_string_equal(sha, b);
    assert_int_equal(bn_db_hash_store(db, "/m", 1, 3, "abc"), BN_ERR_INVALID);
    assert_int_equal(bn_db_hash_store(db, "/m", 1, 3, NULL), BN_ERR_INVALID);
    char upper[65];
    memcpy(upper, a, 65);
    upper[5] = 'A';
    assert_int_equal(bn_db_hash_store(db, "/m", 1, 3, upper), BN_ERR_INVALID);
    bn_db_close(db);
}

/* Every allocation of list, get and export fails in turn: a clean status, no leak. */
static void test_alloc_failures(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    for (int i = 0; i < 20; i++) {
        int64_t id = begin_run(db, i % 2 ? "bench" : "generate");
        assert_int_equal(bn_db_run_end(db, id, BN_RUN_OK, "{\"x\":1}", "e"), BN_OK);
    }
    int saw_ok = 0;
    for (long n = 1; n < 400 && !saw_ok; n++) {
        bn_run *runs = NULL;
        size_t cnt = 0;
        bn_run_filter flt = bn_run_filter_all();
        flt.text = "x";
        bn_alloc_fail_at(n, 0);
        bn_status s = bn_db_run_list(db, &flt, &runs, &cnt);
        bn_alloc_fail_at(0, 0);
        if (s == BN_OK) {
            assert_int_equal(cnt, 20);
            saw_ok = 1;
        } else {
            assert_int_equal(s, BN_ERR_NOMEM);
            assert_null(runs);
        }
        bn_db_runs_free(runs, cnt);
    }
    assert_true(saw_ok);
    for (long n = 1; n < 20; n++) {
        bn_run r;
        bn_alloc_fail_at(n, 0);
        bn_status s = bn_db_run_get(db, 1, &r);
        bn_alloc_fail_at(0, 0);
        assert_true(s == BN_OK || s == BN_ERR_NOMEM);
        bn_run_release(&r);
        FILE *null = fopen("/dev/null", "w");
        bn_alloc_fail_at(n, 0);
        s = bn_db_export(db, NULL, BN_DB_FORMAT_CSV, null);
        bn_alloc_fail_at(0, 0);
        assert_true(s == BN_OK || s == BN_ERR_NOMEM);
        fclose(null);
    }
    bn_db_close(db);
    bn_alloc_fail_at(1, 0);
    assert_int_equal(bn_db_open(&db, f->path, NULL), BN_ERR_NOMEM);
    assert_null(db);
    bn_alloc_fail_at(0, 0);
    assert_string_equal(bn_db_errmsg(NULL), "out of memory");
}

/* ---- the conversion queue (bitnet/db_jobs.h) --------------------------------------------- */

static void count_status(void *ud, const char *status, int64_t n)
{
    char *buf = ud;
    snprintf(buf + strlen(buf), 256 - strlen(buf), "%s=%lld ", status, (long long)n);
}

static void collect_out(void *ud, const char *out)
{
    char *buf = ud;
    snprintf(buf + strlen(buf), 256 - strlen(buf), "%s;", out);
}

/* A job from the queue to done, one cancelled, one retried; states and progress as stored. */
static void test_jobs_life(void **state)
{
    fx *f = *state;
    bn_db_options o = bn_db_options_default();
    o.now_ms = T0;
    bn_db *db = open_ok(f->path, &o);
    int64_t a, b, id;
    char *args, st[32];
    assert_int_equal(bn_db_job_claim(db, 42, &id, &args), BN_ERR_NOT_FOUND); /* empty */
    assert_null(args);
    assert_int_equal(bn_db_job_add(db, "convert", "{\"src\":\"/a\",\"out\":\"/o1\"}", &a), BN_OK);
    assert_int_equal(bn_db_job_add(db, "convert", "{\"src\":\"/b\",\"out\":\"/o2\"}", &b), BN_OK);
    assert_int_equal(bn_db_job_add(db, "", "{}", &id), BN_ERR_INVALID);
    assert_int_equal(bn_db_job_claim(db, 42, &id, &args), BN_OK); /* oldest first */
    assert_int_equal(id, a);
    assert_string_equal(args, "{\"src\":\"/a\",\"out\":\"/o1\"}");
    bn_free(args);
    assert_int_equal(bn_db_job_progress(db, a, "writing", 10, 40, 25.0, 3.5), BN_OK);
    int yes = 1;
    assert_int_equal(bn_db_job_cancel_requested(db, a, &yes), BN_OK);
    assert_int_equal(yes, 0);
    bn_job j;
    assert_int_equal(bn_db_job_get(db, a, &j), BN_OK);
    assert_string_equal(j.status, "running");
    assert_string_equal(j.phase, "writing");
    assert_int_equal(j.worker_pid, 42);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.started_ms, T0);
    assert_int_equal(j.bytes_done, 10);
    assert_int_equal(j.bytes_total, 40);
    assert_true(j.percent == 25.0 && j.eta_s == 3.5);
    bn_job_release(&j);
    assert_int_equal(bn_db_job_request_cancel(db, a), BN_OK);
    assert_int_equal(bn_db_job_cancel_requested(db, a, &yes), BN_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(bn_db_job_cancel_requested(db, 999, &yes), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_job_finish(db, a, "done", "{\"sha256\":\"x\"}", NULL), BN_OK);
    assert_int_equal(bn_db_job_get(db, a, &j), BN_OK);
    assert_string_equal(j.status, "done");
    assert_string_equal(j.result, "{\"sha256\":\"x\"}");
    assert_true(j.percent == 100.0 && j.eta_s < 0);
    assert_int_equal(j.worker_pid, 0);
    assert_int_equal(j.ended_ms, T0);
    assert_null(j.error);
    bn_job_release(&j);
    /* b: cancelled while queued, then retried: back to queued with nothing left over */
    assert_int_equal(bn_db_job_cancel_queued(db, b), BN_OK);
    assert_int_equal(bn_db_job_status(db, b, st, sizeof st), BN_OK);
    assert_string_equal(st, "cancelled");
    assert_int_equal(bn_db_job_status(db, 999, st, sizeof st), BN_ERR_NOT_FOUND);
    assert_non_null(strstr(bn_db_errmsg(db), "no job 999"));
    assert_int_equal(bn_db_job_requeue(db, b), BN_OK);
    assert_int_equal(bn_db_job_get(db, b, &j), BN_OK);
    assert_string_equal(j.status, "queued");
    assert_null(j.error);
    assert_int_equal(j.ended_ms, 0);
    bn_job_release(&j);
    /* the worker stopped: "queued" again, with no start or end time */
    assert_int_equal(bn_db_job_claim(db, 43, &id, &args), BN_OK);
    bn_free(args);
    assert_int_equal(bn_db_job_finish(db, b, "queued", NULL, "worker stopped"), BN_OK);
    assert_int_equal(bn_db_job_get(db, b, &j), BN_OK);
    assert_true(j.started_ms == 0 && j.ended_ms == 0 && j.attempts == 1);
    assert_string_equal(j.error, "worker stopped");
    bn_job_release(&j);
    assert_int_equal(bn_db_job_get(db, 999, &j), BN_ERR_NOT_FOUND);
    /* listing: newest first, by status, limited */
    bn_job *jobs;
    size_t n;
    assert_int_equal(bn_db_job_list(db, NULL, 0, &jobs, &n), BN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(jobs[0].id, b);
    bn_db_jobs_free(jobs, n);
    assert_int_equal(bn_db_job_list(db, "done", 0, &jobs, &n), BN_OK);
    assert_true(n == 1 && jobs[0].id == a);
    bn_db_jobs_free(jobs, n);
    assert_int_equal(bn_db_job_list(db, NULL, 1, &jobs, &n), BN_OK);
    assert_int_equal(n, 1);
    bn_db_jobs_free(jobs, n);
    char counts[256] = "";
    assert_int_equal(bn_db_job_counts(db, count_status, counts), BN_OK);
    assert_string_equal(counts, "done=1 queued=1 ");
    bn_db_close(db);
}

/* Jobs left running by a dead worker: every output named (a broken row too, which has none),
 * all back to queued and counted as recovered; broken args and results read as not text. */
static void test_jobs_recover_broken(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    rawf(f->path, "INSERT INTO jobs (kind, args, status, created_at, worker_pid) VALUES "
                  "('convert', x'00ff7b', 'running', 1, 9), "
                  "('convert', '{\"out\":\"/x/o.gguf\"}', 'running', 2, 9), "
                  "('convert', '{\"src\": broken', 'running', 3, 9), "
                  "('convert', '{\"out\":\"/y\"}', 'done', 4, NULL)");
    rawf(f->path, "UPDATE jobs SET result = x'01' WHERE id = 4");
    char outs[256] = "";
    int64_t n = 0;
    assert_int_equal(bn_db_job_recover(db, collect_out, outs, &n), BN_OK);
    assert_string_equal(outs, "/x/o.gguf;");
    assert_int_equal(n, 3);
    bn_job *jobs;
    size_t cnt;
    assert_int_equal(bn_db_job_list(db, NULL, 0, &jobs, &cnt), BN_OK);
    assert_int_equal(cnt, 4); /* the broken rows hide nothing */
    assert_true(jobs[0].id == 4 && jobs[0].result == NULL && jobs[0].result_not_text);
    assert_true(jobs[0].args && !jobs[0].args_not_text);
    assert_string_equal(jobs[1].args, "{\"src\": broken"); /* text: the caller parses it */
    assert_true(jobs[3].id == 1 && jobs[3].args == NULL && jobs[3].args_not_text);
    for (size_t i = 1; i < cnt; i++) {
        assert_string_equal(jobs[i].status, "queued");
        assert_int_equal(jobs[i].recovered, 1);
        assert_int_equal(jobs[i].worker_pid, 0);
    }
    bn_db_jobs_free(jobs, cnt);
    /* the broken row is claimed like any other (the worker reports its args) */
    int64_t id;
    char *args;
    assert_int_equal(bn_db_job_claim(db, 1, &id, &args), BN_OK);
    assert_int_equal(id, 1);
    assert_int_equal(memcmp(args, "\0\xff{", 3), 0);
    bn_free(args);
    bn_db_close(db);
}

/* A history of schema 3 (before the queue), as the code of that time wrote it, gets the jobs
 * table on open; a queue row written by the old app/convert/jobs.c's own INSERT reads back. */
static void test_jobs_from_old_file(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    bn_db_close(db);
    rawf(f->path, "DROP TABLE billing_outbox; DROP TABLE jobs; DROP TABLE audit; "
                  "DROP TABLE usage; DROP TABLE api_keys; DROP TABLE tenants; "
                  "PRAGMA user_version=3;");
    db = open_ok(f->path, NULL);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    bn_db_close(db);
    rawf(f->path, "INSERT INTO jobs (kind, args, status, created_at) VALUES "
                  "('convert', '{\"src\":\"/s\"}', 'queued', 1700000000000)");
    db = open_ok(f->path, NULL);
    bn_job j;
    assert_int_equal(bn_db_job_get(db, 1, &j), BN_OK);
    assert_string_equal(j.kind, "convert");
    assert_string_equal(j.status, "queued");
    assert_int_equal(j.created_ms, 1700000000000);
    assert_true(j.percent == 0 && j.eta_s < 0 && j.phase == NULL && j.started_ms == 0);
    bn_job_release(&j);
    bn_db_close(db);
}

/* Every allocation of list, get and claim fails in turn: a clean status, no leak. */
static void test_jobs_alloc_failures(void **state)
{
    fx *f = *state;
    bn_db *db = open_ok(f->path, NULL);
    for (int i = 0; i < 20; i++)
        assert_int_equal(bn_db_job_add(db, "convert", "{\"out\":\"/o\"}", NULL), BN_OK);
    rawf(f->path, "UPDATE jobs SET phase = 'writing', error = 'e', result = '{}'");
    int saw_ok = 0;
    for (long k = 1; k < 400 && !saw_ok; k++) {
        bn_job *jobs = NULL;
        size_t n = 0;
        bn_alloc_fail_at(k, 0);
        bn_status s = bn_db_job_list(db, NULL, 0, &jobs, &n);
        bn_alloc_fail_at(0, 0);
        if (s == BN_OK) {
            assert_int_equal(n, 20);
            saw_ok = 1;
        } else {
            assert_int_equal(s, BN_ERR_NOMEM);
            assert_null(jobs);
            assert_string_equal(bn_db_errmsg(db), "out of memory");
        }
        bn_db_jobs_free(jobs, n);
    }
    assert_true(saw_ok);
    for (long k = 1; k < 12; k++) {
        bn_job j;
        bn_alloc_fail_at(k, 0);
        bn_status s = bn_db_job_get(db, 1, &j);
        bn_alloc_fail_at(0, 0);
        assert_true(s == BN_OK || s == BN_ERR_NOMEM);
        bn_job_release(&j);
    }
    /* a claim that cannot copy the args rolls back: the job stays queued */
    int64_t id;
    char *args;
    bn_alloc_fail_at(1, 0);
    assert_int_equal(bn_db_job_claim(db, 1, &id, &args), BN_ERR_NOMEM);
    bn_alloc_fail_at(0, 0);
    assert_null(args);
    char st[32];
    assert_int_equal(bn_db_job_status(db, 1, st, sizeof st), BN_OK);
    assert_string_equal(st, "queued");
    bn_db_close(db);
}

/* ---- the monitor's spool (bitnet/db_spool.h) ---------------------------------------------- */

/* Failures are statuses with the message on the handle; a file that is not a database is
 * refused with a handle that says why. */
static void test_spool_statuses(void **state)
{
    fx *f = *state;
    bn_spool *sp;
    assert_int_equal(bn_spool_open(&sp, f->path, 10, 0), BN_OK);
    assert_string_equal(bn_spool_path(sp), f->path);
    char *big = malloc(BN_SPOOL_PAYLOAD_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', BN_SPOOL_PAYLOAD_MAX + 1);
    big[BN_SPOOL_PAYLOAD_MAX + 1] = '\0';
    assert_int_equal(bn_spool_push(sp, "webhook", "samples", big, T0, 0), BN_ERR_RANGE);
    free(big);
    assert_non_null(strstr(bn_spool_errmsg(sp), "too large"));
    assert_int_equal(bn_spool_count(sp, NULL), 0);
    char st[16];
    int64_t at;
    assert_int_equal(bn_spool_last_state(sp, "r", st, sizeof st, &at), BN_ERR_NOT_FOUND);
    bn_spool_transition t = {
            .rule = "r", .from = "inactive", .to = "firing", .at_ms = T0, .value = NAN};
    assert_int_equal(bn_spool_transition_add(sp, &t), BN_OK);
    assert_int_equal(bn_spool_last_state(sp, "r", st, sizeof st, &at), BN_OK);
    assert_string_equal(st, "firing");
    bn_spool_transition_rec *rec;
    size_t n;
    assert_int_equal(bn_spool_transitions(sp, NULL, 0, &rec, &n), BN_OK);
    assert_int_equal(n, 1);
    assert_true(isnan(rec[0].value) && rec[0].at_ms == T0 && rec[0].series == NULL);
    assert_string_equal(rec[0].to, "firing");
    bn_spool_transitions_free(rec, n);
    bn_spool_close(sp);
    char junk[400];
    snprintf(junk, sizeof junk, "%s/junk.db", f->dir);
    FILE *fp = fopen(junk, "w");
    assert_non_null(fp);
    fputs("this is not an sqlite database, not at all, it is only text\n", fp);
    fclose(fp);
    assert_int_equal(bn_spool_open(&sp, junk, 10, 0), BN_ERR_FORMAT);
    assert_non_null(sp);
    assert_non_null(strstr(bn_spool_errmsg(sp), junk));
    bn_spool_close(sp);
    assert_string_equal(bn_spool_errmsg(NULL), "out of memory");
}

/* Rows written by something else (a blob payload, a notification that is not JSON) are
 * listed, counted and dropped like the others: they never stop the queue. */
static void test_spool_broken_rows(void **state)
{
    fx *f = *state;
    bn_spool *sp;
    assert_int_equal(bn_spool_open(&sp, f->path, 10, 0), BN_OK);
    bn_spool_close(sp);
    rawf(f->path, "INSERT INTO spool (sink, kind, payload, created_at) VALUES "
                  "('webhook', 'notification', x'00ff7b', 1), "
                  "('webhook', 'notification', '{\"rule\": broken', 2), "
                  "('webhook', 'samples', x'7b7d', 3)");
    assert_int_equal(bn_spool_open(&sp, f->path, 10, 0), BN_OK);
    bn_spool_set_max(sp, 10, 2);
    assert_int_equal(bn_spool_count(sp, "webhook"), 3);
    bn_spool_entry *e;
    size_t n;
    assert_int_equal(bn_spool_peek(sp, "webhook", 8, &e, &n), BN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].len, 3);
    assert_int_equal(memcmp(e[0].payload, "\0\xff{", 3), 0);
    bn_spool_entries_free(e, n);
    /* past the notifications' bound the broken ones stand alone: the oldest goes first */
    const char *firing = "{\"rule\":\"hot\",\"state\":\"firing\"}";
    assert_int_equal(bn_spool_push(sp, "webhook", "notification", firing, T0, 0), BN_OK);
    assert_int_equal(bn_spool_count(sp, "webhook"), 3);
    assert_int_equal(bn_spool_dropped(sp, "webhook"), 1);
    assert_int_equal(bn_spool_peek(sp, "webhook", 1, &e, &n), BN_OK);
    assert_string_equal(e[0].payload, "{\"rule\": broken");
    int64_t id = e[0].id;
    bn_spool_entries_free(e, n);
    assert_int_equal(bn_spool_drop(sp, &id, 1), BN_OK);
    assert_int_equal(bn_spool_count(sp, "webhook"), 2);
    bn_spool_close(sp);
}

/* Every allocation of peek and transitions fails in turn: a clean status, no leak. */
static void test_spool_alloc_failures(void **state)
{
    fx *f = *state;
    bn_spool *sp;
    assert_int_equal(bn_spool_open(&sp, f->path, 100, 0), BN_OK);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(bn_spool_push(sp, "webhook", "samples", "{\"x\":1}", T0 + i, 0), BN_OK);
        bn_spool_transition t = {.rule = "r",
                                 .from = "a",
                                 .to = "b",
                                 .at_ms = T0 + i,
                                 .value = i,
                                 .series = "s",
                                 .host = "h"};
        assert_int_equal(bn_spool_transition_add(sp, &t), BN_OK);
    }
    int saw_peek = 0, saw_tr = 0;
    for (long k = 1; k < 200 && !(saw_peek && saw_tr); k++) {
        bn_spool_entry *e = NULL;
        size_t n = 0;
        bn_alloc_fail_at(k, 0);
        bn_status s = bn_spool_peek(sp, NULL, 32, &e, &n);
        bn_alloc_fail_at(0, 0);
        if (s == BN_OK) {
            assert_int_equal(n, 20);
            saw_peek = 1;
        } else {
            assert_int_equal(s, BN_ERR_NOMEM);
            assert_null(e);
            assert_string_equal(bn_spool_errmsg(sp), "out of memory");
        }
        bn_spool_entries_free(e, n);
        bn_spool_transition_rec *t = NULL;
        bn_alloc_fail_at(k, 0);
        s = bn_spool_transitions(sp, NULL, 0, &t, &n);
        bn_alloc_fail_at(0, 0);
        if (s == BN_OK) {
            assert_int_equal(n, 20);
            saw_tr = 1;
        } else {
            assert_int_equal(s, BN_ERR_NOMEM);
            assert_null(t);
        }
        bn_spool_transitions_free(t, s == BN_OK ? n : 0);
    }
    assert_true(saw_peek && saw_tr);
    assert_int_equal(bn_spool_count(sp, NULL), 20); /* nothing lost */
    bn_spool_close(sp);
    bn_alloc_fail_at(1, 0);
    assert_int_equal(bn_spool_open(&sp, f->path, 10, 0), BN_ERR_NOMEM);
    bn_alloc_fail_at(0, 0);
    assert_null(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_migrations_table),
            cmocka_unit_test(test_status_names),
            cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
            cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refuse_newer_schema, setup, teardown),
            cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
            cmocka_unit_test_setup_teardown(test_begin_end, setup, teardown),
            cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
            cmocka_unit_test_setup_teardown(test_export_csv, setup, teardown),
            cmocka_unit_test_setup_teardown(test_unreadable_rows, setup, teardown),
            cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
            cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
            cmocka_unit_test_setup_teardown(test_incomplete, setup, teardown),
            cmocka_unit_test_setup_teardown(test_incomplete_many, setup, teardown),
            cmocka_unit_test_setup_teardown(test_busy_timeout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_crash_kill9, setup, teardown),
            cmocka_unit_test_setup_teardown(test_second_open_keeps_locks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hash_cache, setup, teardown),
            cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jobs_life, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jobs_recover_broken, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jobs_from_old_file, setup, teardown),
            cmocka_unit_test_setup_teardown(test_jobs_alloc_failures, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spool_statuses, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spool_broken_rows, setup, teardown),
            cmocka_unit_test_setup_teardown(test_spool_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
