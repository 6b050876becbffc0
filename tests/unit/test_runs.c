/* test_runs.c - the TUI's one-line summaries of history runs (ui/runs.c): the known metric
 * sets, and any other numbers readable (byte counts in KiB/MiB/GiB, whole numbers whole, no
 * 1.81963e+08). ui/runs.c comes from libbitnetui.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "../../ui/tui.h"

static void summary(const char *metrics, int status, const char *error, char *buf, size_t n)
{
    bn_run r;
    memset(&r, 0, sizeof r);
    r.metrics_json = (char *)metrics;
    r.status = status;
    r.error = (char *)error;
    tui_run_summary(&r, buf, n);
}

static void test_fmt_number(void **state)
{
    (void)state;
    char b[32];
    tui_fmt_number("model_bytes", 181963000, b, sizeof b);
    assert_string_equal(b, "173.5 MiB");
    tui_fmt_number("bytes", 512, b, sizeof b);
    assert_string_equal(b, "512 B");
    tui_fmt_number("kv_bytes", 3.5 * 1024 * 1024 * 1024, b, sizeof b);
    assert_string_equal(b, "3.5 GiB");
    tui_fmt_number("requests", 181963000, b, sizeof b);
    assert_string_equal(b, "181963000");
    tui_fmt_number("ratio", 0.123456, b, sizeof b);
    assert_string_equal(b, "0.1235");
    tui_fmt_number("seconds", 12.5, b, sizeof b);
    assert_string_equal(b, "12.5");
    tui_fmt_number("x", -3, b, sizeof b);
    assert_string_equal(b, "-3");
    tui_fmt_number("bytes", NAN, b, sizeof b);
    assert_string_equal(b, "nan");
    tui_fmt_number("huge", 1e20, b, sizeof b);
    assert_string_equal(b, "1e+20");
}

static void test_summaries(void **state)
{
    (void)state;
    char b[256];
    summary("{\"prompt_tokens_per_s\": 120.34, \"gen_tokens_per_s\": 45.12}", BN_RUN_OK, NULL, b,
            sizeof b);
    assert_string_equal(b, "pp 120.3 / tg 45.1 tokens/s");
    summary("{\"pass\": 9, \"warn\": 2, \"fail\": 0}", BN_RUN_OK, NULL, b, sizeof b);
    assert_string_equal(b, "9 pass, 2 warn, 0 fail");
    summary("{\"requests\": 12, \"model_bytes\": 181963000, \"seconds\": 3.25}", BN_RUN_OK, NULL, b,
            sizeof b);
    assert_string_equal(b, "requests 12, model_bytes 173.5 MiB, seconds 3.25");
    summary("{}", BN_RUN_FAILED, "no such file", b, sizeof b);
    assert_string_equal(b, "no such file");
    summary(NULL, BN_RUN_OK, NULL, b, sizeof b);
    assert_string_equal(b, "");
    summary("not json", BN_RUN_OK, NULL, b, sizeof b);
    assert_string_equal(b, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fmt_number),
            cmocka_unit_test(test_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
