/* test_genmetrics.c - the run metrics of generations: counters of prompt and generated tokens
 * and of the time spent on each, time to first token, time per output token (one observation
 * per token after the first) and end-to-end histograms, requests by result, the last speeds;
 * an error counts the request only; the counters only grow.
 *
 * common/genmetrics.c and common/metrics.c come from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/genmetrics.h"
#include "common/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of one series (a line "series value") in the exposition of reg; NAN when absent. */
static double value_of(bn_metrics *reg, const char *series)
{
    bn_buf b;
    bn_buf_init(&b, 1 << 20);
    assert_int_equal(bn_metrics_render(reg, &b), 0);
    char want[256];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(b.s, want);
    const double v = p ? strtod(p + strlen(want), NULL) : NAN;
    bn_buf_release(&b);
    return v;
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

/* A request at t=10: a prompt of 5 tokens in 0.2 s, tokens at 10.3, 10.35 and 10.45, done at
 * 10.5 by its token limit. */
static void one_request(bn_genmetrics *g, const char *model, bn_gen_finish finish)
{
    bn_gen_run r;
    bn_gen_run_start(&r, 10);
    bn_gen_run_prompt(&r, 5, 0.2);
    bn_gen_run_token(&r, 10.3);
    bn_gen_run_token(&r, 10.35);
    bn_gen_run_token(&r, 10.45);
    bn_genmetrics_record(g, model, &r, finish, 10.5);
    assert_null(r.itl); /* released */
}

static void test_record(void **state)
{
    (void)state;
    bn_metrics *reg;
    assert_int_equal(bn_metrics_new(&reg), 0);
    bn_genmetrics g;
    assert_int_equal(bn_genmetrics_define(&g, reg), 0);
    one_request(&g, "m.gguf", BN_GEN_LENGTH);
    assert_near(value_of(reg, "bitnet_prompt_tokens_total{model=\"m.gguf\"}"), 5);
    assert_near(value_of(reg, "bitnet_generation_tokens_total{model=\"m.gguf\"}"), 3);
    assert_near(value_of(reg, "bitnet_prompt_seconds_total{model=\"m.gguf\"}"), 0.2);
    assert_near(value_of(reg, "bitnet_generation_seconds_total{model=\"m.gguf\"}"), 0.15);
    assert_near(
            value_of(reg, "bitnet_generation_time_to_first_token_seconds_sum{model=\"m.gguf\"}"),
            0.3);
    assert_near(value_of(reg,
                         "bitnet_generation_time_per_output_token_seconds_count{model=\"m.gguf\"}"),
                2);
    assert_near(
            value_of(reg, "bitnet_generation_time_per_output_token_seconds_sum{model=\"m.gguf\"}"),
            0.15);
    /* 0.05 and 0.1: one in the 0.05 bucket, both by 0.1 */
    assert_near(value_of(reg, "bitnet_generation_time_per_output_token_seconds_bucket{model=\"m."
                              "gguf\",le=\"0.05\"}"),
                1);
    assert_near(value_of(reg, "bitnet_generation_time_per_output_token_seconds_bucket{model=\"m."
                              "gguf\",le=\"0.1\"}"),
                2);
    assert_near(value_of(reg, "bitnet_generation_duration_seconds_sum{model=\"m.gguf\"}"), 0.5);
    assert_near(
            value_of(reg, "bitnet_generation_requests_total{model=\"m.gguf\",result=\"length\"}"),
            1);
    assert_near(value_of(reg, "bitnet_generation_tokens_per_second{model=\"m.gguf\"}"), 2 / 0.15);
    assert_near(value_of(reg, "bitnet_generation_prompt_tokens_per_second{model=\"m.gguf\"}"), 25);
    /* a second request adds to the counters; an error adds a request and nothing else */
    one_request(&g, "m.gguf", BN_GEN_STOP);
    one_request(&g, "m.gguf", BN_GEN_ERROR);
    assert_near(value_of(reg, "bitnet_prompt_tokens_total{model=\"m.gguf\"}"), 10);
    assert_near(value_of(reg, "bitnet_generation_tokens_total{model=\"m.gguf\"}"), 6);
    assert_near(value_of(reg, "bitnet_generation_requests_total{model=\"m.gguf\",result=\"stop\"}"),
                1);
    assert_near(
            value_of(reg, "bitnet_generation_requests_total{model=\"m.gguf\",result=\"error\"}"),
            1);
    assert_near(value_of(reg, "bitnet_generation_duration_seconds_count{model=\"m.gguf\"}"), 2);
    bn_metrics_free(reg);
}

/* Types: counters where a rate makes sense, histograms for latencies. */
static void test_types(void **state)
{
    (void)state;
    bn_metrics *reg;
    assert_int_equal(bn_metrics_new(&reg), 0);
    bn_genmetrics g;
    assert_int_equal(bn_genmetrics_define(&g, reg), 0);
    assert_int_equal(bn_mfamily_type(g.prompt_tokens), BN_METRIC_COUNTER);
    assert_int_equal(bn_mfamily_type(g.gen_tokens), BN_METRIC_COUNTER);
    assert_int_equal(bn_mfamily_type(g.gen_seconds), BN_METRIC_COUNTER);
    assert_int_equal(bn_mfamily_type(g.requests), BN_METRIC_COUNTER);
    assert_int_equal(bn_mfamily_type(g.ttft), BN_METRIC_HISTOGRAM);
    assert_int_equal(bn_mfamily_type(g.tpot), BN_METRIC_HISTOGRAM);
    assert_int_equal(bn_mfamily_type(g.e2e), BN_METRIC_HISTOGRAM);
    /* defining twice on one registry is refused (the names are taken) */
    bn_genmetrics again;
    assert_int_equal(bn_genmetrics_define(&again, reg), -1);
    bn_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_record),
            cmocka_unit_test(test_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
