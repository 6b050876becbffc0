/* test_promtext.c - the TUI's reader of the Prometheus text exposition (ui/promtext.c): the
 * registry's own rendering read back sample by sample (escaped label values, histograms
 * typed), the lines the format allows (blanks, CRLF, +Inf, NaN, timestamps, comments, no
 * final newline), a table of hand-made malformed lines each refused with its reason and
 * line number while the good lines around it still count, and 3000 random corruptions of
 * a real exposition that must never crash or over-read (run under ASan in make sanitize). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ui/promtext.h"

#define MAX_SEEN 256

typedef struct seen {
    int n;
    pt_sample s[MAX_SEEN];
} seen;

static void collect(void *ud, const pt_sample *s)
{
    seen *c = ud;
    if (c->n < MAX_SEEN) c->s[c->n] = *s;
    c->n++;
}

static seen got;

static int parse(const char *text, char *err, size_t errsz)
{
    memset(&got, 0, sizeof got);
    return pt_parse(text, strlen(text), collect, &got, err, errsz);
}

/* The registry renders; every series comes back with its labels, value and type. */
static void test_registry_roundtrip(void **state)
{
    (void)state;
    bn_metrics *m;
    assert_int_equal(bn_metrics_new(&m), 0);
    static const char *const ep_code[] = {"endpoint", "code", NULL};
    static const char *const model[] = {"model", NULL};
    static const double buckets[] = {0.1, 1};
    bn_mfamily *c =
            bn_metrics_define(m, BN_METRIC_COUNTER, "req_total", "Requests.", ep_code, NULL, 0);
    bn_mfamily *g = bn_metrics_define(m, BN_METRIC_GAUGE, "slots", "Slots.", NULL, NULL, 0);
    bn_mfamily *h =
            bn_metrics_define(m, BN_METRIC_HISTOGRAM, "ttft_seconds", "TTFT.", model, buckets, 2);
    assert_non_null(c), assert_non_null(g), assert_non_null(h);
    const char *lv1[] = {"/v1/completions", "200"}, *lv2[] = {"odd \"path\"\\\n", "404"};
    bn_metric_add(c, lv1, 7);
    bn_metric_add(c, lv2, 2);
    bn_metric_set(g, NULL, 3);
    const char *mv[] = {"tiny"};
    bn_metric_observe(h, mv, 0.05);
    bn_metric_observe(h, mv, 0.5);
    bn_buf b;
    bn_buf_init(&b, 1 << 20);
    assert_int_equal(bn_metrics_render(m, &b), 0);
    char err[256];
    assert_int_equal(parse(b.s, err, sizeof err), 0);
    /* 2 counter series, 1 gauge, 3 buckets + sum + count */
    assert_int_equal(got.n, 8);
    int found = 0;
    for (int i = 0; i < got.n; i++) {
        const pt_sample *s = &got.s[i];
        const char *ep = pt_label(s, "endpoint");
        if (!strcmp(s->series.name, "req_total") && ep && !strcmp(ep, "odd \"path\"\\\n")) {
            assert_string_equal(pt_label(s, "code"), "404");
            assert_true(s->value == 2);
            assert_int_equal(s->type, PT_COUNTER);
            found |= 1;
        }
        if (!strcmp(s->series.name, "slots")) {
            assert_true(s->value == 3);
            assert_int_equal(s->type, PT_GAUGE);
            assert_int_equal(s->series.n, 0);
            found |= 2;
        }
        if (!strcmp(s->series.name, "ttft_seconds_bucket")) {
            assert_int_equal(s->type, PT_HISTOGRAM);
            if (!strcmp(pt_label(s, "le"), "+Inf")) assert_true(s->value == 2), found |= 4;
        }
        if (!strcmp(s->series.name, "ttft_seconds_sum")) {
            assert_true(fabs(s->value - 0.55) < 1e-12);
            assert_int_equal(s->type, PT_HISTOGRAM);
            found |= 8;
        }
        if (!strcmp(s->series.name, "ttft_seconds_count")) assert_true(s->value == 2), found |= 16;
    }
    assert_int_equal(found, 31);
    bn_buf_release(&b);
    bn_metrics_free(m);
}

/* What the format allows. */
static void test_allowed(void **state)
{
    (void)state;
    char err[256];
    const char *text = "# HELP x some help with { and \" in it\n"
                       "# a comment\n"
                       "# TYPEX x bogus is only a comment\n"
                       "\n"
                       "   \t\n"
                       "x 1\r\n"
                       "  y{}   -2.5e-3  \n"
                       "z\t+Inf\n"
                       "w -Inf 1700000000000\n"
                       "v NaN -5\n"
                       "u{a=\"}\",b=\"x,y=\\\"z\"} 4\n"
                       "t{ a = \"1\" , } 5\n"
                       "last 6";
    assert_int_equal(parse(text, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(got.n, 8);
    assert_true(got.s[0].value == 1 && got.s[0].line == 6);
    assert_string_equal(got.s[1].series.name, "y");
    assert_true(got.s[1].value == -2.5e-3);
    assert_true(isinf(got.s[2].value) && got.s[2].value > 0);
    assert_true(isinf(got.s[3].value) && got.s[3].value < 0);
    assert_true(isnan(got.s[4].value));
    assert_string_equal(pt_label(&got.s[5], "a"), "}");
    assert_string_equal(pt_label(&got.s[5], "b"), "x,y=\"z");
    assert_null(pt_label(&got.s[5], "c"));
    assert_string_equal(pt_label(&got.s[6], "a"), "1");
    assert_true(got.s[7].value == 6 && got.s[7].line == 13);
    for (int i = 0; i < got.n; i++) assert_int_equal(got.s[i].type, PT_UNTYPED);
    assert_int_equal(pt_parse("", 0, collect, &got, err, sizeof err), 0);
    assert_int_equal(pt_parse("x 1\n", 4, NULL, NULL, err, sizeof err), 0);
}

/* A family's type reaches its own samples only. */
static void test_types(void **state)
{
    (void)state;
    char err[256];
    const char *text = "# TYPE h histogram\n"
                       "h_bucket{le=\"1\"} 1\n"
                       "h_sum 1\n"
                       "h_count 1\n"
                       "h_other 1\n"
                       "# TYPE s summary\n"
                       "s{quantile=\"0.5\"} 1\n"
                       "s_bucket 1\n"
                       "s_count 1\n"
                       "# TYPE c counter\n"
                       "c 1\n"
                       "c_sum 1\n"
                       "other 1\n";
    assert_int_equal(parse(text, err, sizeof err), 0);
    static const pt_type want[] = {PT_HISTOGRAM, PT_HISTOGRAM, PT_HISTOGRAM, PT_UNTYPED,
                                   PT_SUMMARY,   PT_UNTYPED,   PT_SUMMARY,   PT_COUNTER,
                                   PT_UNTYPED,   PT_UNTYPED};
    assert_int_equal(got.n, 10);
    for (int i = 0; i < 10; i++) assert_int_equal(got.s[i].type, want[i]);
}

/* Hand-made broken lines: each one is skipped with its reason; the good lines around it
 * still reach the callback. */
static void test_malformed(void **state)
{
    (void)state;
    static char long_line[PT_LINE_MAX + 100], long_value[400];
    memset(long_line, 'a', sizeof long_line - 1);
    memcpy(long_line + sizeof long_line - 4, " 1", 3);
    snprintf(long_value, sizeof long_value, "x{a=\"%0200d\"} 1", 0);
    static const struct {
        const char *line, *why;
    } cases[] = {
            {"x", "a blank and a value expected"},
            {"x{a=\"1\"}", "a blank and a value expected"},
            {"x abc", "bad value 'abc'"},
            {"x 1.5.5", "bad value"},
            {"x 0x", "bad value"},
            {"x 1 2 3", "not a timestamp"},
            {"x 1 12a", "not a timestamp"},
            {"x 1 12345678901234567890", "not a timestamp"},
            {"x{a=\"1\" 1", "without its '}'"},
            {"x{a=\"1} 1", "without its '}'"},
            {"x{a=1} 1", "bad series"},
            {"x{a=\"\\q\"} 1", "bad series"},
            {"x{=\"1\"} 1", "bad series"},
            {"x{__a=\"1\"} 1", "bad series"},
            {"x{a=\"1\"}junk 1", "a blank and a value expected"},
            {"x{a!=\"1\"} 1", "'!='"},
            {"x{a=\"1\",a=\"2\"} 1", "label 'a' given twice"},
            {"1x 1", "bad series"},
            {"x-y 1", "bad series"},
            {"{a=\"1\"} 1", "bad series"},
            {"x{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\",f=\"6\",g=\"7\",h=\"8\",i=\"9\"} 1",
             "too many labels"},
            {"# TYPE", "TYPE: a metric name"},
            {"# TYPE x", "unknown metric type ''"},
            {"# TYPE x frob", "unknown metric type 'frob'"},
            {"# TYPE x counter extra", "text after the type"},
            {"# TYPE 9x counter", "bad metric name '9x'"},
            {"# TYPE x{a=\"1\"} counter", "bad metric name"},
            {long_line, "longer than 4096 bytes"},
            {long_value, "bad series"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static char text[PT_LINE_MAX + 256];
        snprintf(text, sizeof text, "good 1\n%s\ngood 2\n", cases[i].line);
        char err[512];
        const int bad = parse(text, err, sizeof err);
        if (bad != 1 || !strstr(err, cases[i].why) || strncmp(err, "line 2: ", 8))
            fail_msg("case %zu (%.60s): %d bad, '%s', wanted '%s'", i, cases[i].line, bad, err,
                     cases[i].why);
        assert_int_equal(got.n, 2);
        assert_true(got.s[0].value == 1 && got.s[1].value == 2);
        assert_int_equal(got.s[1].line, 3);
    }
    /* a NUL byte inside a line, and the first of several bad lines is the one named */
    const char with_nul[] = "x 1\ny\0 2\nz 3\n";
    char err[256];
    memset(&got, 0, sizeof got);
    assert_int_equal(pt_parse(with_nul, sizeof with_nul - 1, collect, &got, err, sizeof err), 1);
    assert_string_equal(err, "line 2: a NUL byte");
    assert_int_equal(got.n, 2);
    assert_int_equal(parse("a 1\nb\nc x\nd 4\n", err, sizeof err), 2);
    assert_string_equal(err, "line 2: b: a blank and a value expected after the series");
    assert_int_equal(got.n, 2);
    /* no room for the reason: still counted */
    assert_int_equal(parse("b\n", err, 0), 1);
}

/* Random corruptions of a real exposition: flipped, dropped and inserted bytes, cut short.
 * It must not crash or read past the text (ASan); every sample handed out is well formed. */
static void test_corrupted(void **state)
{
    (void)state;
    const char *base = "# HELP bitnet_slots Slots.\n"
                       "# TYPE bitnet_slots gauge\n"
                       "bitnet_slots 2\n"
                       "# TYPE bitnet_http_requests_total counter\n"
                       "bitnet_http_requests_total{endpoint=\"/v1/completions\",code=\"200\"} 5\n"
                       "bitnet_http_requests_total{endpoint=\"other\",code=\"404\"} 1\n"
                       "# TYPE ttft histogram\n"
                       "ttft_bucket{model=\"m\",le=\"0.1\"} 1\n"
                       "ttft_bucket{model=\"m\",le=\"+Inf\"} 2\n"
                       "ttft_sum{model=\"m\"} 0.25\n"
                       "ttft_count{model=\"m\"} 2\n";
    const size_t n0 = strlen(base);
    static const char alphabet[] = "{}\"\\=, \t\n#a1.e+-\r\0";
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 3000; iter++) {
        char *t = malloc(n0 + 16);
        assert_non_null(t);
        memcpy(t, base, n0);
        size_t n = n0;
        for (int k = 0; k < 1 + iter % 6; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const size_t at = (size_t)(rng >> 33) % n;
            const char c = alphabet[(rng >> 20) % (sizeof alphabet - 1)];
            switch ((rng >> 8) % 4) {
            case 0:
                t[at] = c;
                break;
            case 1:
                if (n > 1) memmove(t + at, t + at + 1, n - at - 1), n--;
                break;
            case 2:
                if (n < n0 + 15) memmove(t + at + 1, t + at, n - at), t[at] = c, n++;
                break;
            default:
                n = at + 1;
            }
        }
        char *exact = malloc(n); /* no slack after the text: ASan sees any over-read */
        assert_non_null(exact);
        memcpy(exact, t, n);
        free(t);
        char err[256];
        memset(&got, 0, sizeof got);
        const int bad = pt_parse(exact, n, collect, &got, err, sizeof err);
        assert_true(bad >= 0 && bad <= 16);
        assert_true(bad == 0 || !strncmp(err, "line ", 5));
        for (int i = 0; i < got.n && i < MAX_SEEN; i++) {
            assert_true(got.s[i].series.name[0] != '\0');
            assert_true(got.s[i].series.n <= BN_METRICS_MAX_LABELS);
        }
        free(exact);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_registry_roundtrip),
            cmocka_unit_test(test_allowed),
            cmocka_unit_test(test_types),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_corrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
