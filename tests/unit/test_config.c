/* test_config.c - the settings file: byte offset to line:column, JSON syntax errors with
 * their position, the schema check (types, ranges, sections, duplicates, unknown keys,
 * alert rules), value parsing for `config set`, durations and listen addresses,
 * environment overrides, path resolution, atomic writes that keep other keys.
 *
 * common/config.c comes from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>
#include <cjson/cJSON.h>

#include <sys/stat.h>

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bn_test_config.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    unsetenv("BITNET_CONFIG");
    unsetenv("BITNET_THREADS");
    unsetenv("BITNET_HISTORY_RETENTION_DAYS");
    unsetenv("BITNET_MODEL");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_linecol(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t off;
        int line, col;
    } cases[] = {
            {"", 0, 1, 1},
            {"abc", 0, 1, 1},
            {"abc", 2, 1, 3},
            {"abc", 3, 1, 4},
            {"a\nb", 2, 2, 1},
            {"a\nbc\n\nd", 6, 4, 1},
            {"a\nbc\n\nd", 7, 4, 2},
            {"\xc3\xa9x", 2, 1, 2}, /* é is one column */
            {"\xe2\x82\xac\xe2\x82\xac!", 6, 1, 3},
            {"ab", 99, 1, 3}, /* clamped to the end */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int l = 0, c = 0;
        bn_config_linecol(cases[i].text, strlen(cases[i].text), cases[i].off, &l, &c);
        if (l != cases[i].line || c != cases[i].col)
            fail_msg("case %zu: %d:%d, wanted %d:%d", i, l, c, cases[i].line, cases[i].col);
    }
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want; /* prefix of the message */
    } cases[] = {
            {"{\"a\": 1,,}", "f.json:1:10: "}, /* cJSON stops after the second comma */
            {"{\n  \"threads\": 4\n  \"ctx\": 1\n}", "f.json:3:3: "},
            {"{\n  \"a\": tru\n}", "f.json:2:8: "},
            {"{\"a\": [1, 2}", "f.json:1:12: "},
            {"{} x", "f.json:1:4: "},
            {"", "f.json:1:1: not valid JSON (unexpected end of file)"},
            {"{\"a\": 1", "f.json:1:7: "},
            {"{\"a\" 1}", "f.json:1:6: not valid JSON near '1}'"},
            {"{\"a\": 1,\n}", "f.json:2:1: "},
            {"[]", "f.json: expected a JSON object"},
            {"42", "f.json: expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        cJSON *doc = (cJSON *)1;
        int rc = bn_config_parse(cases[i].text, strlen(cases[i].text), "f.json", &doc, err,
                                 sizeof err);
        assert_int_equal(rc, -1);
        assert_null(doc);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: '%s', wanted a message starting '%s'", i, err, cases[i].want);
    }
    /* a NUL byte is named with its position */
    char err[256];
    cJSON *doc;
    assert_int_equal(bn_config_parse("{\n\0}", 4, "f.json", &doc, err, sizeof err), -1);
    assert_string_equal(err, "f.json:2:1: NUL byte in the file");
    /* good text parses; trailing white space is fine */
    assert_int_equal(bn_config_parse("{\"a\": 1}\n\n", 10, "f.json", &doc, err, sizeof err), 0);
    cJSON_Delete(doc);
}

typedef struct collected {
    int n, errors;
    char first[512];
} collected;

static void collect(void *ud, int is_error, const char *key, const char *msg)
{
    collected *c = ud;
    if (is_error && !c->errors++) snprintf(c->first, sizeof c->first, "%s: %s", key, msg);
    c->n++;
}

static void test_check_table(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int flags;
        int errors;
        const char *first; /* prefix of the first error */
    } cases[] = {
            {"{}", 0, 0, NULL},
            {"{\"threads\": 8, \"temp\": 0.7, \"top_p\": 1, \"seed\": -1}", 0, 0, NULL},
            {"{\"threads\": -1}", 0, 1, "threads: expected an integer from 0 to 4096"},
            {"{\"threads\": 1.5}", 0, 1, "threads: expected an integer"},
            {"{\"threads\": \"8\"}", 0, 1, "threads: expected an integer"},
            {"{\"threads\": 4097}", 0, 1, "threads: expected"},
            {"{\"temp\": \"hot\"}", 0, 1, "temp: expected a number from 0 to"},
            {"{\"top_p\": 1.5}", 0, 1, "top_p: expected a number from 0 to 1"},
            {"{\"model\": 3}", 0, 1, "model: expected a string"},
            {"{\"history\": 5}", 0, 1, "history: expected an object"},
            {"{\"history\": {\"retention_days\": 30}}", 0, 0, NULL},
            {"{\"history\": {\"retention_days\": true}}", 0, 1, "history.retention_days: "},
            {"{\"foo\": 1}", 0, 0, NULL},
            {"{\"foo\": 1}", BN_CONFIG_CHECK_STRICT, 1, "foo: unknown key"},
            {"{\"history\": {\"retention\": 1}}", BN_CONFIG_CHECK_STRICT, 1,
             "history.retention: unknown key"},
            {"{\"threads\": 1, \"threads\": 2}", 0, 1, "threads: duplicate key"},
            {"{\"monitor\": {\"listen\": \"[::1]:9464\"}}", 0, 0, NULL},
            {"{\"monitor\": {\"listen\": \":9464\"}}", 0, 0, NULL},
            {"{\"monitor\": {\"listen\": \"0.0.0.0:0\"}}", 0, 1, "monitor.listen: expected"},
            {"{\"monitor\": {\"listen\": \"::1:80\"}}", 0, 1, "monitor.listen: expected"},
            {"{\"monitor\": {\"listen\": \"host:70000\"}}", 0, 1, "monitor.listen: "},
            {"{\"exporters\": {\"cloudwatch\": {\"endpoint\": \"ftp://x\"}}}", 0, 1,
             "exporters.cloudwatch.endpoint: expected an http"},
            {"{\"exporters\": {\"prometheus\": {\"pushgateway\": \"http://pg:9091\"}}}", 0, 0,
             NULL},
            {"{\"exporters\": {\"datadog\": {\"api_key_env\": \"1BAD\"}}}", 0, 1,
             "exporters.datadog.api_key_env: expected the name"},
            {"{\"exporters\": {\"datadog\": {\"enabled\": \"yes\"}}}", 0, 1,
             "exporters.datadog.enabled: expected true or false"},
            {"{\"alerts\": {}}", 0, 1, "alerts: expected an array"},
            {"{\"alerts\": [1]}", 0, 1, "alerts[0]: expected an object"},
            {"{\"alerts\": [{\"name\": \"hot\", \"metric\": \"gpu_temp_c\", \"op\": \">\","
             " \"threshold\": 85, \"for\": \"5m\", \"severity\": \"critical\"}]}",
             0, 0, NULL},
            {"{\"alerts\": [{\"name\": \"a\", \"op\": \">\", \"threshold\": 1}]}", 0, 1,
             "alerts[0].metric: missing"},
            {"{\"alerts\": [{\"name\": \"a\", \"metric\": \"m\", \"op\": \"=>\", "
             "\"threshold\": 1}]}",
             0, 1, "alerts[0].op: expected one of"},
            {"{\"alerts\": [{\"name\": \"a\", \"metric\": \"m\", \"op\": \"<\", "
             "\"threshold\": \"1\"}]}",
             0, 1, "alerts[0].threshold: expected a number"},
            {"{\"alerts\": [{\"name\": \"a\", \"metric\": \"m\", \"op\": \"<\", "
             "\"threshold\": 1, \"for\": \"5x\"}]}",
             0, 1, "alerts[0].for: expected a duration"},
            {"{\"alerts\": [{\"name\": \"a\", \"metric\": \"m\", \"op\": \"<\", "
             "\"threshold\": 1, \"severity\": \"meh\"}]}",
             0, 1, "alerts[0].severity: expected"},
            {"{\"alerts\": [{}, {}]}", 0, 6, "alerts[0].metric: missing"},
            /* the monitor's own parser: what it refuses, the schema refuses (bitnet validate) */
            {"{\"alerts\": [{\"metric\": \"m{a=~\\\"x\\\"}\", \"op\": \">\", "
             "\"threshold\": 1}]}",
             0, 1, "alerts[0].metric: "},
            {"{\"alerts\": [{\"metric\": \"gpu.temp\", \"op\": \">\", \"threshold\": 1}]}", 0, 1,
             "alerts[0].metric: "},
            {"{\"alerts\": [{\"name\": \"n\", \"metric\": \"m\", \"op\": \">\", \"threshold\": 1}, "
             "{\"name\": \"n\", \"metric\": \"m\", \"op\": \">\", \"threshold\": 1}]}",
             0, 1, "alerts[1].name: the same name as alerts[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *doc = cJSON_Parse(cases[i].json);
        if (!doc) fail_msg("case %zu does not parse", i);
        collected c = {0, 0, ""};
        int errors = bn_config_check(doc, cases[i].flags, collect, &c);
        cJSON_Delete(doc);
        if (errors != cases[i].errors || c.errors != errors)
            fail_msg("case %zu: %d errors (first: '%s'), wanted %d", i, errors, c.first,
                     cases[i].errors);
        if (cases[i].first && strncmp(c.first, cases[i].first, strlen(cases[i].first)))
            fail_msg("case %zu: first error '%s', wanted '%s...'", i, c.first, cases[i].first);
    }
}

static void test_warnings(void **state)
{
    (void)state;
    /* unknown keys are warnings when not strict; unnamed alerts and unknown fields too */
    cJSON *doc = cJSON_Parse("{\"foo\": 1, \"alerts\": [{\"metric\": \"m\", \"op\": \">\", "
                             "\"threshold\": 1, \"x\": 2}, {\"name\": \"n\", \"metric\": \"m\", "
                             "\"op\": \">\", \"threshold\": 1}, {\"name\": \"n\", \"metric\": "
                             "\"m2\", \"op\": \">\", \"threshold\": 1}]}");
    assert_non_null(doc);
    collected c = {0, 0, ""};
    assert_int_equal(bn_config_check(doc, 0, collect, &c), 1); /* the same name is an error */
    assert_int_equal(c.n, 4); /* foo, alerts[0].x, alerts[0].name, alerts[2].name */
    cJSON_Delete(doc);
}

static void test_durations_and_listen(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double want; /* < 0: invalid */
    } d[] = {
            {"30s", 30}, {"5m", 300},    {"1h30m", 5400}, {"250ms", 0.25}, {"2d", 172800},
            {"90", 90},  {"1.5h", 5400}, {"0s", 0},       {"", -1},        {"5x", -1},
            {"m", -1},   {"-5s", -1},    {"5 s", -1},     {"s5", -1},      {"1.2.3s", -1},
            {"inf", -1}, {"5m3", -1},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        double v = -7;
        int rc = bn_parse_duration(d[i].s, &v);
        if (d[i].want < 0 ? rc == 0 : (rc != 0 || fabs(v - d[i].want) > 1e-9))
            fail_msg("duration '%s': rc %d value %g", d[i].s, rc, v);
    }
    static const struct {
        const char *s;
        const char *host;
        int port; /* 0: invalid */
    } l[] = {
            {"127.0.0.1:9464", "127.0.0.1", 9464},
            {"[::1]:80", "::1", 80},
            {":9100", "", 9100},
            {"localhost:65535", "localhost", 65535},
            {"host:0", NULL, 0},
            {"host:65536", NULL, 0},
            {"host", NULL, 0},
            {"::1:80", NULL, 0},
            {"host:80x", NULL, 0},
            {"[]:80", NULL, 0},
            {"a b:80", NULL, 0},
            {"host:", NULL, 0},
            {"host:+80", NULL, 0},
    };
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) {
        char host[64] = "?";
        int port = -1;
        int rc = bn_parse_listen(l[i].s, host, sizeof host, &port);
        if (l[i].port == 0 ? rc == 0
                           : (rc != 0 || port != l[i].port || strcmp(host, l[i].host) != 0))
            fail_msg("listen '%s': rc %d host '%s' port %d", l[i].s, rc, host, port);
    }
    char env[64];
    assert_int_equal(bn_config_env_name("history.retention_days", env, sizeof env), 0);
    assert_string_equal(env, "BITNET_HISTORY_RETENTION_DAYS");
    assert_int_equal(bn_config_env_name("top_k", env, sizeof env), 0);
    assert_string_equal(env, "BITNET_TOP_K");
    assert_int_equal(bn_config_env_name("history.retention_days", env, 10), -1);
}

static void test_value_parse(void **state)
{
    (void)state;
    static const struct {
        const char *key, *text;
        const char *want; /* compact JSON of the value, or NULL: an error */
    } cases[] = {
            {"threads", "8", "8"},
            {"threads", "x", NULL},
            {"threads", "", NULL},
            {"threads", " 8", NULL},
            {"threads", "1e3", NULL},
            {"threads", "99999999999999999999", NULL},
            {"seed", "-1", "-1"},
            {"temp", "0.5", "0.5"},
            {"temp", "nan", NULL},
            {"temp", "-1", NULL},
            {"exporters.datadog.enabled", "yes", "true"},
            {"exporters.datadog.enabled", "OFF", "false"},
            {"exporters.datadog.enabled", "maybe", NULL},
            {"monitor.listen", "0.0.0.0:9000", "\"0.0.0.0:9000\""},
            {"monitor.listen", "9000", NULL},
            {"alerts", "[]", "[]"},
            {"alerts", "[{\"metric\":\"m\",\"op\":\">\",\"threshold\":1}]",
             "[{\"metric\":\"m\",\"op\":\">\",\"threshold\":1}]"},
            {"alerts", "[{\"metric\":\"m\"}]", NULL},
            {"alerts", "[", NULL},
            {"model", "/abs/m.gguf", "\"/abs/m.gguf\""},
            {"model", "~/m.gguf", "\"~/m.gguf\""},
            {"model", "", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bn_config_key *k = bn_config_find_key(cases[i].key);
        assert_non_null(k);
        cJSON *v = NULL;
        char err[256] = "";
        int rc = bn_config_value_parse(k, cases[i].text, &v, err, sizeof err);
        if (!cases[i].want) {
            if (rc == 0 || v) fail_msg("case %zu: '%s' accepted", i, cases[i].text);
            if (strncmp(err, cases[i].key, strlen(cases[i].key)))
                fail_msg("case %zu: message '%s' does not name the key", i, err);
            continue;
        }
        if (rc) fail_msg("case %zu: '%s' rejected: %s", i, cases[i].text, err);
        char *s = cJSON_PrintUnformatted(v);
        if (strcmp(s, cases[i].want)) fail_msg("case %zu: %s, wanted %s", i, s, cases[i].want);
        cJSON_free(s);
        cJSON_Delete(v);
    }
    /* a relative path is made absolute against the current directory */
    cJSON *v;
    char err[256], cwd[1024], want[1100];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(
            bn_config_value_parse(bn_config_find_key("model"), "./m.gguf", &v, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/m.gguf", cwd);
    assert_string_equal(v->valuestring, want);
    cJSON_Delete(v);
    /* the exact words users see */
    assert_int_equal(
            bn_config_value_parse(bn_config_find_key("threads"), "-3", &v, err, sizeof err), -1);
    assert_string_equal(err, "threads: expected an integer from 0 to 4096");
}

static void test_load_defaults_env_paths(void **state)
{
    (void)state;
    char path[512], err[512], want[600];
    bn_config *c;
    /* absent file: the defaults */
    snprintf(path, sizeof path, "%s/absent.json", tmpdir);
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), 0);
    assert_false(bn_config_file_exists(c));
    assert_int_equal(bn_config_get_int(c, "threads"), 0);
    assert_int_equal(bn_config_get_int(c, "history.retention_days"), 90);
    assert_true(bn_config_get_double(c, "temp") == 0.8);
    assert_false(bn_config_get_bool(c, "exporters.cloudwatch.enabled"));
    assert_string_equal(bn_config_get_str(c, "exporters.datadog.api_key_env"), "DD_API_KEY");
    assert_string_equal(bn_config_get_str(c, "model"), "");
    assert_int_equal(bn_config_source_of(c, "threads"), BN_CFG_SRC_DEFAULT);
    assert_null(bn_config_get_str(c, "threads")); /* wrong type */
    assert_null(bn_config_get_str(c, "nope"));
    assert_true(cJSON_IsArray(bn_config_get_json(c, "alerts")));
    bn_config_free(c);
    assert_int_equal(bn_config_load_file(path, BN_CONFIG_MUST_EXIST, &c, err, sizeof err), -1);
    assert_null(c);

    /* a file: values, relative paths against its directory, env overrides */
    snprintf(path, sizeof path, "%s/c.json", tmpdir);
    write_text(path, "{\"threads\": 4, \"model\": \"models/m.gguf\", \"unknown\": {\"x\": 1},"
                     " \"history\": {\"retention_days\": 7}}");
    setenv("BITNET_THREADS", "3", 1);
    setenv("HOME", tmpdir, 1);
    setenv("BITNET_HISTORY_RETENTION_DAYS", "", 1); /* empty: not an override */
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), 0);
    assert_int_equal(bn_config_get_int(c, "threads"), 3);
    assert_int_equal(bn_config_source_of(c, "threads"), BN_CFG_SRC_ENV);
    assert_int_equal(bn_config_get_int(c, "history.retention_days"), 7);
    assert_int_equal(bn_config_source_of(c, "history.retention_days"), BN_CFG_SRC_FILE);
    snprintf(want, sizeof want, "%s/models/m.gguf", tmpdir);
    assert_string_equal(bn_config_get_str(c, "model"), want);
    bn_config_free(c);
    /* without the environment */
    assert_int_equal(bn_config_load_file(path, BN_CONFIG_NO_ENV, &c, err, sizeof err), 0);
    assert_int_equal(bn_config_get_int(c, "threads"), 4);
    bn_config_free(c);
    /* a bad override names the variable */
    setenv("BITNET_THREADS", "many", 1);
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), -1);
    assert_string_equal(err, "BITNET_THREADS: expected an integer from 0 to 4096");
    unsetenv("BITNET_THREADS");
    unsetenv("BITNET_HISTORY_RETENTION_DAYS");
    /* "~/" is the home directory */
    setenv("BITNET_MODEL", "~/x.gguf", 1);
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/x.gguf", tmpdir);
    assert_string_equal(bn_config_get_str(c, "model"), want);
    bn_config_free(c);
    unsetenv("BITNET_MODEL");

    /* a bad file: named with the line and column, or with the key */
    write_text(path, "{\n  \"threads\": 4,\n  \"ctx\": 12,,\n}\n");
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3:", path);
    if (strncmp(err, want, strlen(want))) fail_msg("'%s' does not start '%s'", err, want);
    write_text(path, "{\"threads\": \"x\"}");
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: threads: expected an integer from 0 to 4096", path);
    assert_string_equal(err, want);
    /* a directory is not a config file */
    assert_int_equal(bn_config_load_file(tmpdir, 0, &c, err, sizeof err), -1);
}

static void test_paths_and_data_dir(void **state)
{
    (void)state;
    char buf[512], want[600], err[256];
    setenv("HOME", tmpdir, 1);
    unsetenv("XDG_CONFIG_HOME");
    assert_int_equal(bn_config_path(buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/.config/bitnet/config.json", tmpdir);
    assert_string_equal(buf, want);
    setenv("XDG_CONFIG_HOME", "relative/dir", 1); /* not absolute: ignored */
    assert_int_equal(bn_config_path(buf, sizeof buf), 0);
    assert_string_equal(buf, want);
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    assert_int_equal(bn_config_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/xdg/bitnet/config.json");
    setenv("BITNET_CONFIG", "/etc/bitnet.json", 1);
    assert_int_equal(bn_config_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/etc/bitnet.json");
    unsetenv("BITNET_CONFIG");
    assert_int_equal(bn_config_path(buf, 8), -1);

    snprintf(want, sizeof want, "%s/xdgdata", tmpdir);
    setenv("XDG_DATA_HOME", want, 1);
    assert_int_equal(bn_data_dir(NULL, buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/xdgdata/bitnet", tmpdir);
    assert_string_equal(buf, want);
    assert_int_equal(bn_data_dir_ensure(NULL, buf, sizeof buf, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    unsetenv("XDG_DATA_HOME");
    /* a file in the way */
    snprintf(want, sizeof want, "%s/afile", tmpdir);
    write_text(want, "x");
    setenv("XDG_DATA_HOME", want, 1); /* the data directory would be afile/bitnet */
    assert_int_equal(bn_data_dir_ensure(NULL, buf, sizeof buf, err, sizeof err), -1);
    assert_non_null(strstr(err, "afile"));
    unsetenv("XDG_DATA_HOME");
}

static void test_write_key(void **state)
{
    (void)state;
    char path[512], err[512], link[600];
    int changed;
    snprintf(path, sizeof path, "%s/w/sub/config.json", tmpdir);
    cJSON *v = cJSON_CreateNumber(6);
    /* creates the directories and the file */
    assert_int_equal(bn_config_write_key(path, "threads", v, &changed, err, sizeof err), 0);
    assert_true(changed);
    cJSON_Delete(v);
    v = cJSON_CreateNumber(30);
    assert_int_equal(
            bn_config_write_key(path, "history.retention_days", v, &changed, err, sizeof err), 0);
    cJSON_Delete(v);
    /* keeps keys it does not know, and their order */
    char *text = slurp(path);
    cJSON *doc = cJSON_Parse(text);
    cJSON_AddStringToObject(doc, "zzz_unknown", "kept");
    char *s = cJSON_Print(doc);
    write_text(path, s);
    cJSON_free(s);
    cJSON_Delete(doc);
    v = cJSON_CreateNumber(2);
    assert_int_equal(bn_config_write_key(path, "threads", v, &changed, err, sizeof err), 0);
    cJSON_Delete(v);
    doc = cJSON_Parse(slurp(path));
    assert_non_null(doc);
    if (!cJSON_GetObjectItem(doc, "threads")) fail_msg("no threads in %s", slurp(path));
    assert_int_equal(cJSON_GetObjectItem(doc, "threads")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(doc, "zzz_unknown")->valuestring, "kept");
    assert_string_equal(doc->child->string, "threads");
    cJSON_Delete(doc);
    /* unset removes the key and the sections it leaves empty */
    assert_int_equal(
            bn_config_write_key(path, "history.retention_days", NULL, &changed, err, sizeof err),
            0);
    assert_true(changed);
    assert_null(strstr(slurp(path), "history"));
    assert_int_equal(bn_config_write_key(path, "ctx", NULL, &changed, err, sizeof err), 0);
    assert_false(changed);
    /* a section that is not an object is not overwritten */
    write_text(path, "{\"history\": 3}");
    v = cJSON_CreateNumber(1);
    assert_int_equal(
            bn_config_write_key(path, "history.retention_days", v, &changed, err, sizeof err), -1);
    assert_string_equal(slurp(path), "{\"history\": 3}");
    /* a file that does not parse is left alone, and the error names its line */
    write_text(path, "{\n\"a\": }");
    assert_int_equal(bn_config_write_key(path, "threads", v, &changed, err, sizeof err), -1);
    assert_non_null(strstr(err, "config.json:2:"));
    assert_string_equal(slurp(path), "{\n\"a\": }");
    /* through a symlink: the target is rewritten, the link stays */
    write_text(path, "{}");
    chmod(path, 0640);
    snprintf(link, sizeof link, "%s/link.json", tmpdir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(bn_config_write_key(link, "threads", v, &changed, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_non_null(strstr(slurp(path), "\"threads\""));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* the mode is kept */
    cJSON_Delete(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_linecol),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_check_table),
            cmocka_unit_test(test_warnings),
            cmocka_unit_test(test_durations_and_listen),
            cmocka_unit_test(test_value_parse),
            cmocka_unit_test(test_load_defaults_env_paths),
            cmocka_unit_test(test_paths_and_data_dir),
            cmocka_unit_test(test_write_key),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
