/* test_history.c - the history hook of the shared tier (common/history.h): several runs
 * recorded at once in one process (interleaved on one thread, and from two threads), each
 * with its own metrics, status and error, read back from the history file.
 *
 * common/history.c comes from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/history.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    char path[300];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bn_test_history.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(path, sizeof path, "%s/h.db", tmpdir);
    setenv("BITNET_HISTORY_DB", path, 1);
    snprintf(path, sizeof path, "%s/no-config.json", tmpdir);
    setenv("BITNET_CONFIG", path, 1);
    unsetenv("BITNET_HISTORY");
    unsetenv("BITNET_DATA_DIR");
    unsetenv("BITNET_HISTORY_RETENTION_DAYS");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return remove_tree(tmpdir);
}

/* The runs in the history, oldest first (*n of them). */
static bn_run *read_runs(size_t *n)
{
    bn_db *db;
    char err[512];
    if (cm_history_open(&db, NULL, 0, err, sizeof err) != 0) fail_msg("open: %s", err);
    bn_run_filter f = bn_run_filter_all();
    f.oldest_first = 1;
    bn_run *runs = NULL;
    assert_int_equal(bn_db_run_list(db, &f, &runs, n), BN_OK);
    bn_db_close(db);
    return runs;
}

/* The number metrics.key of a run (NAN when absent). */
static double metric(const bn_run *r, const char *key)
{
    cJSON *m = r->metrics_json ? cJSON_Parse(r->metrics_json) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    const double d = cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
    cJSON_Delete(m);
    return d;
}

/* The TUI's case: a chat is open while a bench runs; each run's metrics go to its own row. */
static void test_two_runs_at_once(void **state)
{
    (void)state;
    cJSON *pa = cJSON_CreateObject();
    cJSON_AddStringToObject(pa, "who", "chat");
    cm_hist_run *chat = cm_hist_begin("chat", NULL, pa);
    cm_hist_run *bench = cm_hist_begin("bench", NULL, NULL);
    assert_non_null(chat);
    assert_non_null(bench);
    cm_hist_metric(chat, "turns", 1);
    cm_hist_metric(bench, "tokens_per_s", 42.5);
    cm_hist_metric_str(bench, "kernels", "ref");
    cm_hist_metric(chat, "turns", 2); /* a key set again keeps its last value */
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "threads", 3);
    cm_hist_end(bench, BN_RUN_OK, m, NULL);
    cm_hist_end_exit(chat, 1, NULL, "the model went away");

    size_t n;
    bn_run *runs = read_runs(&n);
    assert_int_equal(n, 2);
    assert_string_equal(runs[0].command, "chat");
    assert_int_equal(runs[0].status, BN_RUN_FAILED);
    assert_string_equal(runs[0].error, "the model went away");
    assert_non_null(strstr(runs[0].params_json, "\"who\":\"chat\""));
    assert_true(metric(&runs[0], "turns") == 2);
    assert_true(isnan(metric(&runs[0], "tokens_per_s")));
    assert_string_equal(runs[1].command, "bench");
    assert_int_equal(runs[1].status, BN_RUN_OK);
    assert_null(runs[1].error);
    assert_true(metric(&runs[1], "tokens_per_s") == 42.5);
    assert_true(metric(&runs[1], "threads") == 3);
    assert_non_null(strstr(runs[1].metrics_json, "\"kernels\":\"ref\""));
    assert_true(isnan(metric(&runs[1], "turns")));
    bn_db_runs_free(runs, n);
}

/* An exit code without an error says "failed"; 0 records ok whatever the error. */
static void test_end_exit(void **state)
{
    (void)state;
    cm_hist_end_exit(cm_hist_begin("a", NULL, NULL), 2, NULL, NULL);
    cm_hist_end_exit(cm_hist_begin("b", NULL, NULL), 0, NULL, "ignored");
    cm_hist_end(cm_hist_begin("c", NULL, NULL), BN_RUN_CANCELLED, NULL, NULL);
    size_t n;
    bn_run *runs = read_runs(&n);
    assert_int_equal(n, 3);
    assert_int_equal(runs[0].status, BN_RUN_FAILED);
    assert_string_equal(runs[0].error, "failed");
    assert_int_equal(runs[1].status, BN_RUN_OK);
    assert_null(runs[1].error);
    assert_int_equal(runs[2].status, BN_RUN_CANCELLED);
    bn_db_runs_free(runs, n);
}

enum { RUNS_PER_THREAD = 8 };

static void *record_runs(void *arg)
{
    const char *command = arg;
    for (int i = 0; i < RUNS_PER_THREAD; i++) {
        cm_hist_run *h = cm_hist_begin(command, NULL, NULL);
        cm_hist_metric(h, "i", i);
        cm_hist_end(h, BN_RUN_OK, NULL, NULL);
    }
    return NULL;
}

/* A server's case: two threads record their runs at the same time. */
static void test_two_threads(void **state)
{
    (void)state;
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, record_runs, "left"), 0);
    assert_int_equal(pthread_create(&b, NULL, record_runs, "right"), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    size_t n;
    bn_run *runs = read_runs(&n);
    assert_int_equal(n, 2 * RUNS_PER_THREAD);
    int next[2] = {0, 0}; /* each thread's runs in its order, each with its own metric */
    for (size_t i = 0; i < n; i++) {
        const int t = strcmp(runs[i].command, "right") == 0;
        assert_int_equal(runs[i].status, BN_RUN_OK);
        assert_true(metric(&runs[i], "i") == next[t]);
        next[t]++;
    }
    assert_int_equal(next[0], RUNS_PER_THREAD);
    assert_int_equal(next[1], RUNS_PER_THREAD);
    bn_db_runs_free(runs, n);
}

/* BITNET_HISTORY=0: nothing is recorded and every call takes the NULL handle. */
static void test_disabled(void **state)
{
    (void)state;
    setenv("BITNET_HISTORY", "off", 1);
    cm_hist_run *h = cm_hist_begin("x", NULL, cJSON_CreateObject());
    assert_null(h);
    cm_hist_metric(h, "k", 1);
    cm_hist_end(h, BN_RUN_OK, cJSON_CreateObject(), NULL);
    unsetenv("BITNET_HISTORY");
    size_t n;
    bn_run *runs = read_runs(&n);
    assert_int_equal(n, 0);
    bn_db_runs_free(runs, n);
}

/* Sets or (value NULL) unsets name. */
static void set_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static void expect_path(const char *want, int want_retention)
{
    char path[4300], err[512];
    int retention = -1;
    if (cm_history_path(path, sizeof path, &retention, err, sizeof err) != 0)
        fail_msg("cm_history_path: %s", err);
    assert_string_equal(path, want);
    assert_int_equal(retention, want_retention);
}

/* The one resolver: BITNET_HISTORY_DB, else the data directory (the config's data_dir, which
 * BITNET_DATA_DIR overrides, else $XDG_DATA_HOME/bitnet when absolute, else
 * ~/.local/share/bitnet), with history.db in it. */
static void test_path(void **state)
{
    (void)state;
    const char *vars[] = {"BITNET_HISTORY_DB", "XDG_DATA_HOME", "HOME"};
    char *saved[3], cfg[300], want[400];
    for (int i = 0; i < 3; i++) saved[i] = getenv(vars[i]) ? strdup(getenv(vars[i])) : NULL;
    setenv("BITNET_HISTORY_DB", "/x/h.db", 1);
    setenv("XDG_DATA_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    expect_path("/x/h.db", 90);
    setenv("BITNET_HISTORY_DB", "", 1); /* empty: not set */
    expect_path("/xdg/bitnet/history.db", 90);
    setenv("XDG_DATA_HOME", "relative/ignored", 1);
    expect_path("/home/u/.local/share/bitnet/history.db", 90);
    unsetenv("XDG_DATA_HOME");
    expect_path("/home/u/.local/share/bitnet/history.db", 90);

    snprintf(cfg, sizeof cfg, "%s/config.json", tmpdir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "{\"data_dir\": \"%s/data\", \"history\": {\"retention_days\": 7}}\n", tmpdir);
    fclose(f);
    setenv("BITNET_CONFIG", cfg, 1);
    snprintf(want, sizeof want, "%s/data/history.db", tmpdir);
    expect_path(want, 7);
    setenv("BITNET_DATA_DIR", "/elsewhere", 1);
    expect_path("/elsewhere/history.db", 7);
    unsetenv("BITNET_DATA_DIR");
    setenv("BITNET_HISTORY_DB", "/x/h.db", 1); /* the file named wins over the directory */
    expect_path("/x/h.db", 7);
    unsetenv("BITNET_HISTORY_DB");

    /* and cm_history_open opens it there */
    bn_db *db;
    char path[4300], err[512];
    assert_int_equal(cm_history_open(&db, path, sizeof path, err, sizeof err), 0);
    assert_string_equal(path, want);
    bn_db_close(db);
    assert_int_equal(access(want, F_OK), 0);

    char small[8];
    assert_int_equal(cm_history_path(small, sizeof small, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "history"));
    for (int i = 0; i < 3; i++) {
        set_env(vars[i], saved[i]);
        free(saved[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_two_runs_at_once, setup, teardown),
            cmocka_unit_test_setup_teardown(test_end_exit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
            cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
            cmocka_unit_test_setup_teardown(test_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
