/* test_metrics.c - the metrics registry: the Prometheus text format (HELP/TYPE lines,
 * number formatting, label and help escaping), histogram invariants (buckets cumulative and
 * monotonic, +Inf equal to _count, _sum), definition errors, snapshots, selectors, JSON and
 * the bounded buffer.
 *
 * common/metrics.c comes from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/metrics.h"
#include "common/utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bn_metrics *new_reg(void)
{
    bn_metrics *m = NULL;
    assert_int_equal(bn_metrics_new(&m), 0);
    assert_non_null(m);
    return m;
}

/* The exposition of m as a malloc'ed string. */
static char *render(bn_metrics *m)
{
    bn_buf b;
    bn_buf_init(&b, 1 << 20);
    assert_int_equal(bn_metrics_render(m, &b), 0);
    char *s = bn_buf_detach(&b, NULL);
    assert_non_null(s);
    return s;
}

static void test_fmt_double(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
            {0, "0"},
            {1, "1"},
            {-2.5, "-2.5"},
            {0.1, "0.1"},
            {1e21, "1e+21"},
            {123456789, "123456789"},
            {1.0 / 3, "0.3333333333333333"},
            {INFINITY, "+Inf"},
            {-INFINITY, "-Inf"},
            {NAN, "NaN"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(bn_metrics_fmt_double(cases[i].v, buf), cases[i].want);
    /* every finite value reads back exactly */
    for (double v = 1e-9; v < 1e12; v *= 7.3) {
        bn_metrics_fmt_double(v, buf);
        assert_true(strtod(buf, NULL) == v);
    }
}

static void test_counter_gauge_text(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const char *const lab[] = {"command", "status", NULL};
    bn_mfamily *c = bn_metrics_define(m, BN_METRIC_COUNTER, "t_runs_total", "Runs.", lab, NULL, 0);
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_temp_celsius", "A temperature.", NULL,
                                      NULL, 0);
    bn_mfamily *e = bn_metrics_define(m, BN_METRIC_GAUGE, "t_empty", "Never set.", NULL, NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(e);
    const char *a[] = {"generate", "ok"}, *b[] = {"bench", "failed"};
    assert_int_equal(bn_metric_add(c, a, 1), 0);
    assert_int_equal(bn_metric_add(c, a, 2), 0);
    assert_int_equal(bn_metric_add(c, b, 1), 0);
    assert_int_equal(bn_metric_set(g, NULL, 41.5), 0);
    double v;
    assert_int_equal(bn_metric_get(c, a, &v), 0);
    assert_true(v == 3);
    char *s = render(m);
    assert_string_equal(s, "# HELP t_runs_total Runs.\n"
                           "# TYPE t_runs_total counter\n"
                           "t_runs_total{command=\"generate\",status=\"ok\"} 3\n"
                           "t_runs_total{command=\"bench\",status=\"failed\"} 1\n"
                           "# HELP t_temp_celsius A temperature.\n"
                           "# TYPE t_temp_celsius gauge\n"
                           "t_temp_celsius 41.5\n");
    free(s);
    /* a cleared family disappears from the exposition */
    bn_mfamily_clear(c);
    s = render(m);
    assert_null(strstr(s, "t_runs_total"));
    free(s);
    bn_metrics_free(m);
}

static void test_escaping(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const char *const lab[] = {"path", NULL};
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_x", "Back\\slash and\nnewline \"q\".",
                                      lab, NULL, 0);
    const char *lv[] = {"C:\\dir \"quoted\"\nline2"};
    assert_int_equal(bn_metric_set(g, lv, 1), 0);
    char *s = render(m);
    /* HELP escapes \ and newline only; label values also escape the double quote */
    assert_non_null(strstr(s, "# HELP t_x Back\\\\slash and\\nnewline \"q\".\n"));
    assert_non_null(strstr(s, "t_x{path=\"C:\\\\dir \\\"quoted\\\"\\nline2\"} 1\n"));
    /* one line per sample: no raw newline inside a line */
    int lines = 0;
    for (const char *p = s; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 3);
    free(s);
    /* the snapshot's series text escapes the same way */
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(m, 0, &snap), 0);
    assert_int_equal(snap.n, 1);
    char ser[256];
    bn_msample_series(&snap.v[0], ser, sizeof ser);
    assert_string_equal(ser, "t_x{path=\"C:\\\\dir \\\"quoted\\\"\\nline2\"}");
    assert_string_equal(bn_msample_label(&snap.v[0], "path"), lv[0]);
    bn_msnap_release(&snap);
    bn_metrics_free(m);
}

/* Checks the histogram invariants on the text of one series: _bucket lines cumulative and
 * non-decreasing with increasing le, the last le="+Inf" and equal to _count. */
static void check_histogram_text(const char *text, const char *name, double want_count,
                                 double want_sum)
{
    char key[128];
    snprintf(key, sizeof key, "%s_bucket{", name);
    double prev_le = -INFINITY, prev = -1, last = -1;
    int n = 0, saw_inf = 0;
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        const char *le = strstr(p, "le=\"");
        assert_non_null(le);
        le += 4;
        double lev = strncmp(le, "+Inf", 4) == 0 ? INFINITY : strtod(le, NULL);
        assert_false(saw_inf); /* nothing after +Inf */
        assert_true(lev > prev_le);
        const char *val = strchr(p, '}') + 2;
        double v = strtod(val, NULL);
        assert_true(v >= prev);
        prev = v;
        prev_le = lev;
        last = v;
        saw_inf = isinf(lev);
        n++;
    }
    assert_true(n >= 2);
    assert_true(saw_inf);
    snprintf(key, sizeof key, "\n%s_count ", name);
    const char *c = strstr(text, key);
    assert_non_null(c);
    assert_true(strtod(c + strlen(key), NULL) == want_count);
    assert_true(last == want_count);
    snprintf(key, sizeof key, "\n%s_sum ", name);
    c = strstr(text, key);
    assert_non_null(c);
    assert_true(fabs(strtod(c + strlen(key), NULL) - want_sum) < 1e-9);
}

/* A label value that is not valid UTF-8 (a Latin-1 model path, a stray byte, a truncated
 * sequence, an overlong, a surrogate) is kept with U+FFFD in place of each bad byte, so the
 * exposition stays valid for Prometheus; the same bytes find the same series again. */
static void test_invalid_utf8_labels(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const char *const lab[] = {"model", NULL};
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_u", "U.", lab, NULL, 0);
    static const struct {
        const char *in, *want;
    } cases[] = {
            {"mod\xe8le.gguf", "mod\xef\xbf\xbdle.gguf"},             /* Latin-1 e-grave */
            {"a\xff", "a\xef\xbf\xbd"},                               /* never valid */
            {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},           /* truncated euro sign */
            {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
            {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
            {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}, /* valid: as is */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *lv[] = {cases[i].in};
        assert_int_equal(bn_metric_set(g, lv, (double)i), 0);
        assert_int_equal(bn_metric_set(g, lv, (double)i + 0.5), 0); /* the same series */
        char *s = render(m), want[128];
        snprintf(want, sizeof want, "t_u{model=\"%s\"} %g\n", cases[i].want, (double)i + 0.5);
        assert_non_null(strstr(s, want));
        assert_true(bn_utf8_valid(s));
        free(s);
        double v;
        assert_int_equal(bn_metric_get(g, lv, &v), 0);
        assert_true(v == (double)i + 0.5);
    }
    /* snapshots and JSON carry the cleaned value too */
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(m, 0, &snap), 0);
    assert_int_equal(snap.n, sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < snap.n; i++) assert_true(bn_utf8_valid(snap.v[i].labels[0].value));
    bn_msnap_release(&snap);
    cJSON *j = bn_metrics_to_json(m);
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(strstr(text, "mod\xef\xbf\xbdle.gguf"));
    assert_true(bn_utf8_valid(text));
    cJSON_free(text);
    cJSON_Delete(j);
    bn_metrics_free(m);
}

/* The push and textfile outputs rename process_* families (node_exporter and the Pushgateway
 * have their own); everything else, and the scrape's rendering, stays as it is. */
static void test_render_renamed(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    bn_mfamily *p = bn_metrics_define(m, BN_METRIC_COUNTER, "process_cpu_seconds_total", "CPU.",
                                      NULL, NULL, 0);
    static const double b[] = {1};
    bn_mfamily *h =
            bn_metrics_define(m, BN_METRIC_HISTOGRAM, "process_x_seconds", "X.", NULL, b, 1);
    bn_mfamily *o = bn_metrics_define(m, BN_METRIC_GAUGE, "t_processes", "P.", NULL, NULL, 0);
    assert_int_equal(bn_metric_add(p, NULL, 2), 0);
    assert_int_equal(bn_metric_observe(h, NULL, 0.5), 0);
    assert_int_equal(bn_metric_set(o, NULL, 3), 0);
    bn_buf out;
    bn_buf_init(&out, 1 << 20);
    assert_int_equal(bn_metrics_render_renamed(m, &out, "process_", "bitnet_process_"), 0);
    assert_string_equal(out.s, "# HELP bitnet_process_cpu_seconds_total CPU.\n"
                               "# TYPE bitnet_process_cpu_seconds_total counter\n"
                               "bitnet_process_cpu_seconds_total 2\n"
                               "# HELP bitnet_process_x_seconds X.\n"
                               "# TYPE bitnet_process_x_seconds histogram\n"
                               "bitnet_process_x_seconds_bucket{le=\"1\"} 1\n"
                               "bitnet_process_x_seconds_bucket{le=\"+Inf\"} 1\n"
                               "bitnet_process_x_seconds_sum 0.5\n"
                               "bitnet_process_x_seconds_count 1\n"
                               "# HELP t_processes P.\n"
                               "# TYPE t_processes gauge\n"
                               "t_processes 3\n");
    bn_buf_release(&out);
    char *s = render(m);
    assert_non_null(strstr(s, "\nprocess_cpu_seconds_total 2\n"));
    assert_null(strstr(s, "bitnet_process"));
    free(s);
    bn_metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const double bk[] = {0.01, 0.1, 1, 10};
    bn_mfamily *h =
            bn_metrics_define(m, BN_METRIC_HISTOGRAM, "t_latency_seconds", "Latency.", NULL, bk, 4);
    assert_non_null(h);
    static const double obs[] = {0.005, 0.01, 0.05, 0.5, 0.5, 3, 99, 1e6};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        assert_int_equal(bn_metric_observe(h, NULL, obs[i]), 0);
        sum += obs[i];
    }
    assert_int_equal(bn_metric_observe(h, NULL, NAN), -1);
    assert_int_equal(bn_metric_observe(h, NULL, INFINITY), -1);
    assert_int_equal(bn_metric_set(h, NULL, 1), -1);
    char *s = render(m);
    assert_non_null(strstr(s, "# TYPE t_latency_seconds histogram\n"));
    /* a value equal to a bound counts in that bucket (le is "less or equal") */
    assert_non_null(strstr(s, "t_latency_seconds_bucket{le=\"0.01\"} 2\n"));
    assert_non_null(strstr(s, "t_latency_seconds_bucket{le=\"0.1\"} 3\n"));
    assert_non_null(strstr(s, "t_latency_seconds_bucket{le=\"1\"} 5\n"));
    assert_non_null(strstr(s, "t_latency_seconds_bucket{le=\"10\"} 6\n"));
    assert_non_null(strstr(s, "t_latency_seconds_bucket{le=\"+Inf\"} 8\n"));
    check_histogram_text(s, "t_latency_seconds", 8, sum);
    free(s);

    /* with labels, several series; le comes last */
    static const char *const lab[] = {"model", NULL};
    bn_mfamily *h2 =
            bn_metrics_define(m, BN_METRIC_HISTOGRAM, "t_ttft_seconds", "TTFT.", lab, bk, 4);
    const char *a[] = {"a"}, *b[] = {"b"};
    for (int i = 0; i < 50; i++) bn_metric_observe(h2, i % 3 ? a : b, i * 0.37);
    s = render(m);
    assert_non_null(strstr(s, "t_ttft_seconds_bucket{model=\"a\",le=\"0.01\"}"));
    assert_non_null(strstr(s, "t_ttft_seconds_count{model=\"a\"} 33\n"));
    assert_non_null(strstr(s, "t_ttft_seconds_count{model=\"b\"} 17\n"));
    assert_non_null(strstr(s, "t_ttft_seconds_bucket{model=\"b\",le=\"+Inf\"} 17\n"));

    /* the snapshot has the same numbers; buckets only on request */
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(m, 0, &snap), 0);
    assert_int_equal(snap.n, 2 + 2 * 2); /* sum and count per series */
    assert_string_equal(snap.v[0].name, "t_latency_seconds_sum");
    assert_int_equal(snap.v[1].kind, BN_MSAMPLE_COUNT);
    assert_true(snap.v[1].value == 8);
    bn_msnap_release(&snap);
    assert_int_equal(bn_metrics_snapshot(m, 1, &snap), 0);
    assert_int_equal(snap.n, 3 * (5 + 2));
    assert_string_equal(snap.v[4].name, "t_latency_seconds_bucket");
    assert_string_equal(bn_msample_label(&snap.v[4], "le"), "+Inf");
    assert_true(snap.v[4].value == 8);
    bn_msnap_release(&snap);
    free(s);
    bn_metrics_free(m);
}

static void test_define_errors(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const double bk[] = {1, 2}, bad_bk[] = {2, 1}, inf_bk[] = {1, INFINITY};
    static const char *const le[] = {"le", NULL}, *const dunder[] = {"__x", NULL},
                             *const dup[] = {"a", "a", NULL}, *const digit[] = {"1a", NULL};
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "1abc", "", NULL, NULL, 0));
    assert_non_null(strstr(bn_metrics_errmsg(m), "not a valid metric name"));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "a-b", "", NULL, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "", "", NULL, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "ok", "", dunder, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "ok", "", dup, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "ok", "", digit, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_HISTOGRAM, "h", "", le, bk, 2));
    assert_null(bn_metrics_define(m, BN_METRIC_HISTOGRAM, "h", "", NULL, bad_bk, 2));
    assert_null(bn_metrics_define(m, BN_METRIC_HISTOGRAM, "h", "", NULL, inf_bk, 2));
    assert_null(bn_metrics_define(m, BN_METRIC_HISTOGRAM, "h", "", NULL, NULL, 0));
    assert_non_null(bn_metrics_define(m, BN_METRIC_GAUGE, "ns:ok_1", "", le, NULL, 0));
    assert_null(bn_metrics_define(m, BN_METRIC_GAUGE, "ns:ok_1", "", NULL, NULL, 0));
    assert_non_null(strstr(bn_metrics_errmsg(m), "twice"));
    bn_mfamily *c = bn_metrics_define(m, BN_METRIC_COUNTER, "c_total", "", NULL, NULL, 0);
    assert_int_equal(bn_metric_add(c, NULL, -1), -1);
    assert_int_equal(bn_metric_add(c, NULL, NAN), -1);
    assert_int_equal(bn_metric_observe(c, NULL, 1), -1);
    assert_ptr_equal(bn_metrics_find(m, "c_total"), c);
    assert_null(bn_metrics_find(m, "nope"));
    /* the series cap */
    static const char *const lab[] = {"i", NULL};
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "many", "", lab, NULL, 0);
    char num[16];
    const char *lv[] = {num};
    for (int i = 0; i < BN_METRICS_MAX_SERIES; i++) {
        snprintf(num, sizeof num, "%d", i);
        assert_int_equal(bn_metric_set(g, lv, i), 0);
    }
    snprintf(num, sizeof num, "x");
    assert_int_equal(bn_metric_set(g, lv, 1), -1);
    snprintf(num, sizeof num, "7");
    assert_int_equal(bn_metric_set(g, lv, 1), 0); /* an existing one still works */
    bn_metrics_free(m);
}

static void test_selectors(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const char *const lab[] = {"gpu", "name", NULL};
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_gpu_used_bytes", "", lab, NULL, 0);
    const char *g0[] = {"0", "H100 \"SXM\""}, *g1[] = {"1", "A100"};
    bn_metric_set(g, g0, 10);
    bn_metric_set(g, g1, 20);
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(m, 0, &snap), 0);
    bn_msel sel;
    char err[128];
    assert_int_equal(bn_msel_parse("t_gpu_used_bytes", &sel, err, sizeof err), 0);
    assert_true(bn_msel_match(&sel, &snap.v[0]) && bn_msel_match(&sel, &snap.v[1]));
    assert_int_equal(bn_msel_parse(" t_gpu_used_bytes { gpu = \"1\" } ", &sel, err, sizeof err), 0);
    assert_false(bn_msel_match(&sel, &snap.v[0]));
    assert_true(bn_msel_match(&sel, &snap.v[1]));
    assert_int_equal(bn_msel_parse("t_gpu_used_bytes{gpu!=\"1\",name=\"H100 \\\"SXM\\\"\"}", &sel,
                                   err, sizeof err),
                     0);
    assert_true(bn_msel_match(&sel, &snap.v[0]));
    assert_false(bn_msel_match(&sel, &snap.v[1]));
    assert_int_equal(bn_msel_parse("t_gpu_used_bytes{missing=\"\"}", &sel, err, sizeof err), 0);
    assert_true(bn_msel_match(&sel, &snap.v[0])); /* an absent label equals "" */
    assert_int_equal(bn_msel_parse("other", &sel, err, sizeof err), 0);
    assert_false(bn_msel_match(&sel, &snap.v[0]));
    static const char *const bad[] = {
            "",          "1x",           "x{",           "x{a}",        "x{a=1}",
            "x{a=\"1\"", "x{a=\"1\"} y", "x{__a=\"1\"}", "x{a==\"1\"}", "x y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(bn_msel_parse(bad[i], &sel, err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
    bn_msnap_release(&snap);
    bn_metrics_free(m);
}

static void test_json(void **state)
{
    (void)state;
    bn_metrics *m = new_reg();
    static const double bk[] = {1};
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_g", "G.", NULL, NULL, 0);
    bn_mfamily *h = bn_metrics_define(m, BN_METRIC_HISTOGRAM, "t_h", "H.", NULL, bk, 1);
    bn_metric_set(g, NULL, NAN);
    bn_metric_observe(h, NULL, 0.5);
    bn_metric_observe(h, NULL, 5);
    cJSON *j = bn_metrics_to_json(m);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    const cJSON *a = cJSON_GetArrayItem(j, 0), *b = cJSON_GetArrayItem(j, 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "value"))); /* NaN is null */
    assert_string_equal(cJSON_GetObjectItem(b, "type")->valuestring, "histogram");
    const cJSON *bks = cJSON_GetObjectItem(b, "buckets");
    assert_int_equal(cJSON_GetArraySize(bks), 2);
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(bks, 1), "count")->valuedouble == 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(bks, 1), "le")->valuestring, "+Inf");
    assert_true(cJSON_GetObjectItem(b, "sum")->valuedouble == 5.5);
    cJSON_Delete(j);
    bn_metrics_free(m);
}

static void test_buf(void **state)
{
    (void)state;
    bn_buf b;
    bn_buf_init(&b, 10);
    assert_int_equal(bn_buf_puts(&b, "12345"), 0);
    assert_int_equal(bn_buf_printf(&b, "%d", 6789), 0);
    assert_string_equal(b.s, "123456789");
    assert_int_equal(bn_buf_puts(&b, "ab"), -1); /* past max */
    assert_true(b.failed);
    assert_int_equal(bn_buf_puts(&b, ""), -1); /* stays failed */
    assert_null(bn_buf_detach(&b, NULL));
    bn_buf_init(&b, 1 << 20);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(bn_buf_printf(&b, "<%s>", big), 0); /* longer than the small buffer */
    assert_int_equal(b.len, 601);
    size_t len;
    char *s = bn_buf_detach(&b, &len);
    assert_int_equal(len, 601);
    assert_true(s[0] == '<' && s[600] == '>');
    free(s);
    /* a render that does not fit fails cleanly */
    bn_metrics *m = new_reg();
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "t_g", big, NULL, NULL, 0);
    bn_metric_set(g, NULL, 1);
    bn_buf_init(&b, 100);
    assert_int_equal(bn_metrics_render(m, &b), -1);
    bn_buf_release(&b);
    bn_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fmt_double),
            cmocka_unit_test(test_counter_gauge_text),
            cmocka_unit_test(test_escaping),
            cmocka_unit_test(test_histogram),
            cmocka_unit_test(test_define_errors),
            cmocka_unit_test(test_selectors),
            cmocka_unit_test(test_json),
            cmocka_unit_test(test_buf),
            cmocka_unit_test(test_invalid_utf8_labels),
            cmocka_unit_test(test_render_renamed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
