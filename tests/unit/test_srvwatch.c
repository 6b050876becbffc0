/* test_srvwatch.c - the Server screen's watcher (ui/srvwatch.c): the figures read from the
 * /metrics that `bitnet serve` itself renders (srv_metrics_render, so a renamed family
 * fails here), a /metrics that is not a server's, the rates between two answers (tokens/s,
 * requests/s, the window's mean batch and TTFT, a counter reset), the URLs it takes and
 * refuses, and the thread on a dead port: down with the reason, then idle, then freed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "../../app/serve/serve.h"
#include "../../ui/srvwatch.h"

/* One generation request of model "m": 7 prompt tokens, n generated, the first after
 * ttft seconds. */
static void one_request(srv *s, size_t n, double ttft, bn_gen_finish fin)
{
    bn_gen_run r;
    const double t0 = 1000;
    bn_gen_run_start(&r, t0);
    bn_gen_run_prompt(&r, 7, ttft / 2);
    for (size_t i = 0; i < n; i++) bn_gen_run_token(&r, t0 + ttft + (double)i * 0.01);
    bn_genmetrics_record(&s->gm, "m", &r, fin, t0 + ttft + (double)n * 0.01);
}

static void read_server(srv *s, sw_totals *t)
{
    size_t len = 0;
    char *text = srv_metrics_render(s, 1, &len);
    assert_non_null(text);
    char why[256];
    if (sw_totals_read(text, len, t, why, sizeof why)) fail_msg("%s", why);
    free(text);
}

static void test_serve_metrics(void **state)
{
    (void)state;
    srv s;
    memset(&s, 0, sizeof s);
    assert_int_equal(srv_init(&s), 0);
    s.n_slots = 3;
    sw_totals t;
    read_server(&s, &t); /* a fresh server: slots, zeros */
    assert_true(t.slots == 3 && t.slots_busy == 0 && t.waiting == 0 && t.in_flight == 1);
    assert_true(t.gen_tokens == 0 && t.requests == 0 && t.rejected == 0 && t.steps == 0);
    assert_int_equal(t.n_codes, 0);
    assert_int_equal(t.bad_lines, 0);

    one_request(&s, 24, 0.02, BN_GEN_LENGTH);
    one_request(&s, 10, 0.04, BN_GEN_STOP);
    one_request(&s, 0, 0, BN_GEN_ERROR);
    srv_count_http(&s, "/v1/completions", 200);
    srv_count_http(&s, "/v1/completions", 429);
    srv_count_http(&s, "/v1/chat/completions", 429);
    srv_count_http(&s, "other", 404);
    srv_count_http(&s, "/health", 503);
    srv_count_http(&s, "/metrics", 200);
    bn_metric_add(s.rejected, NULL, 2);
    bn_metric_add(s.decode_steps, NULL, 20);
    bn_metric_add(s.decode_tokens, NULL, 34);
    read_server(&s, &t);
    assert_true(t.gen_tokens == 34);
    assert_true(t.prompt_tokens == 14); /* the failed request recorded no tokens */
    assert_true(t.requests == 3 && t.req_length == 1 && t.req_stop == 1 && t.req_error == 1);
    assert_true(t.rejected == 2);
    assert_true(t.http == 6);
    assert_int_equal(t.n_codes, 3);
    assert_int_equal(t.codes[0].code, 404);
    assert_int_equal(t.codes[1].code, 429);
    assert_true(t.codes[1].n == 2);
    assert_int_equal(t.codes[2].code, 503);
    assert_true(t.ttft_count == 2 && fabs(t.ttft_sum - 0.06) < 1e-9);
    assert_true(t.steps == 20 && t.step_tokens == 34);
    srv_destroy(&s);
}

static void test_not_a_server(void **state)
{
    (void)state;
    sw_totals t;
    char why[256];
    const char *monitor = "# TYPE bitnet_host_memory_total_bytes gauge\n"
                          "bitnet_host_memory_total_bytes 1e9\n";
    assert_int_equal(sw_totals_read(monitor, strlen(monitor), &t, why, sizeof why), -1);
    assert_string_equal(why, "not the metrics of bitnet serve (no bitnet_slots)");
    const char *html = "<html><body>Not here</body></html>\n";
    assert_int_equal(sw_totals_read(html, strlen(html), &t, why, sizeof why), -1);
    assert_non_null(strstr(why, "no bitnet_slots; line 1: "));
    assert_int_equal(t.bad_lines, 1);
    /* a broken line beside good ones: read, and counted */
    const char *mixed = "bitnet_slots 2\nbitnet_slots_busy{ 1\nbitnet_requests_waiting 4\n";
    assert_int_equal(sw_totals_read(mixed, strlen(mixed), &t, why, sizeof why), 0);
    assert_true(t.slots == 2 && t.waiting == 4 && isnan(t.slots_busy));
    assert_int_equal(t.bad_lines, 1);
    assert_non_null(strstr(t.bad, "line 2: "));
    /* more statuses than it keeps: the lowest ones, in order */
    char many[4096];
    size_t at = (size_t)snprintf(many, sizeof many, "bitnet_slots 1\n");
    for (int c = 599; c >= 400; c -= 10)
        at += (size_t)snprintf(many + at, sizeof many - at,
                               "bitnet_http_requests_total{endpoint=\"x\",code=\"%d\"} 1\n", c);
    at += (size_t)snprintf(many + at, sizeof many - at,
                           "bitnet_http_requests_total{endpoint=\"x\",code=\"abc\"} 5\n");
    assert_int_equal(sw_totals_read(many, at, &t, why, sizeof why), 0);
    assert_int_equal(t.n_codes, SW_MAX_CODES);
    for (int i = 1; i < t.n_codes; i++) assert_true(t.codes[i - 1].code < t.codes[i].code);
    assert_true(t.http == 25);
}

static void totals_of(const char *text, sw_totals *t)
{
    char why[256];
    if (sw_totals_read(text, strlen(text), t, why, sizeof why)) fail_msg("%s", why);
}

static void test_rates(void **state)
{
    (void)state;
    sw_totals a, b;
    sw_rates r;
    totals_of("bitnet_slots 2\n"
              "bitnet_generation_tokens_total{model=\"m\"} 100\n"
              "bitnet_prompt_tokens_total{model=\"m\"} 10\n"
              "bitnet_generation_requests_total{model=\"m\",result=\"stop\"} 4\n"
              "bitnet_generation_time_to_first_token_seconds_sum{model=\"m\"} 0.4\n"
              "bitnet_generation_time_to_first_token_seconds_count{model=\"m\"} 4\n"
              "bitnet_decode_steps_total 50\n"
              "bitnet_decode_tokens_total 100\n"
              "bitnet_requests_rejected_total 1\n"
              "bitnet_http_requests_total{endpoint=\"x\",code=\"429\"} 1\n",
              &a);
    totals_of("bitnet_slots 2\n"
              "bitnet_generation_tokens_total{model=\"m\"} 160\n"
              "bitnet_generation_tokens_total{model=\"n\"} 40\n"
              "bitnet_prompt_tokens_total{model=\"m\"} 30\n"
              "bitnet_generation_requests_total{model=\"m\",result=\"stop\"} 6\n"
              "bitnet_generation_requests_total{model=\"m\",result=\"length\"} 2\n"
              "bitnet_generation_time_to_first_token_seconds_sum{model=\"m\"} 1.2\n"
              "bitnet_generation_time_to_first_token_seconds_count{model=\"m\"} 8\n"
              "bitnet_decode_steps_total 90\n"
              "bitnet_decode_tokens_total 250\n"
              "bitnet_requests_rejected_total 4\n"
              "bitnet_http_requests_total{endpoint=\"x\",code=\"429\"} 4\n"
              "bitnet_http_requests_total{endpoint=\"y\",code=\"400\"} 2\n",
              &b);
    sw_rates_between(&a, &b, 2, &r);
    assert_true(r.dt == 2);
    assert_true(r.tokens_s == 50);             /* (200 - 100) / 2 */
    assert_true(r.prompt_s == 10);             /* (30 - 10) / 2 */
    assert_true(r.requests_s == 2);            /* (8 - 4) / 2 */
    assert_true(fabs(r.batch - 3.75) < 1e-12); /* 150 tokens in 40 steps */
    assert_true(fabs(r.ttft - 0.2) < 1e-12);   /* 0.8 s over 4 requests */
    assert_true(r.rejected == 3 && r.errors == 5);
    /* nothing happened: no batch, no TTFT, zero rates */
    sw_rates_between(&b, &b, 1, &r);
    assert_true(r.tokens_s == 0 && r.requests_s == 0 && isnan(r.batch) && isnan(r.ttft));
    /* a restarted server: its counters count from zero */
    sw_rates_between(&b, &a, 1, &r);
    assert_true(r.tokens_s == 100 && r.requests_s == 4 && r.batch == 2);
    assert_true(fabs(r.ttft - 0.1) < 1e-12);
}

static void test_urls(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out; /* out NULL: refused, with this in why */
        const char *why;
    } cases[] = {
            {"127.0.0.1:8080", "http://127.0.0.1:8080", NULL},
            {"  http://127.0.0.1:8080/  ", "http://127.0.0.1:8080", NULL},
            {"HTTPS://example.com/bitnet//", "https://example.com/bitnet", NULL},
            {"http://[::1]:9000", "http://[::1]:9000", NULL},
            {"localhost", "http://localhost", NULL},
            {"", NULL, "no URL given"},
            {"   ", NULL, "no URL given"},
            {"http://", NULL, "the URL names no host"},
            {"http:///x", NULL, "the URL names no host"},
            {"ftp://host", NULL, "'ftp://host': not an http:// or https:// URL"},
            {"http://a b", NULL, "blanks or control characters"},
            {"http://a\tb", NULL, "blanks or control characters"},
            {"http://a\x7f", NULL, "blanks or control characters"},
            {"http://a/?x=1", NULL, "no '?' or '#'"},
            {"http://a#frag", NULL, "no '?' or '#'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[SW_URL_MAX] = "", why[256] = "";
        const int rc = sw_url_normalize(cases[i].in, out, sizeof out, why, sizeof why);
        if (cases[i].out) {
            if (rc || strcmp(out, cases[i].out))
                fail_msg("'%s': %d '%s' '%s'", cases[i].in, rc, out, why);
        } else if (rc != -1 || !strstr(why, cases[i].why)) {
            fail_msg("'%s': %d '%s', wanted '%s'", cases[i].in, rc, why, cases[i].why);
        }
    }
    char big[SW_URL_MAX + 8], out[SW_URL_MAX], why[256];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sw_url_normalize(big, out, sizeof out, why, sizeof why), -1);
    assert_non_null(strstr(why, "too long"));
    char small[16];
    assert_int_equal(sw_url_normalize("http://a.example", small, sizeof small, why, sizeof why),
                     -1);
}

static int wakes;
static void count_wake(void *ud)
{
    (void)ud;
    __atomic_add_fetch(&wakes, 1, __ATOMIC_SEQ_CST);
}

/* A port nobody listens on: down with curl's reason, retried; no URL: idle; freed at once. */
static void test_watch_dead_port(void **state)
{
    (void)state;
    sw_watch *w;
    assert_int_equal(sw_new(&w, 0.2, count_wake, NULL), 0);
    const sw_view *v = sw_lock(w);
    assert_int_equal(v->state, SW_IDLE);
    sw_unlock(w);
    sw_set_url(w, "http://127.0.0.1:1", NULL);
    int fails = 0;
    for (int i = 0; i < 300 && fails < 2; i++) { /* up to 30 s on a loaded machine */
        usleep(100000);
        v = sw_lock(w);
        fails = (int)v->fails;
        if (fails >= 2) {
            assert_int_equal(v->state, SW_DOWN);
            assert_non_null(strstr(v->err, "cannot reach http://127.0.0.1:1: "));
            assert_false(v->have);
        }
        sw_unlock(w);
    }
    assert_true(fails >= 2);
    assert_true(__atomic_load_n(&wakes, __ATOMIC_SEQ_CST) >= 1);
    assert_string_equal(sw_state_name(SW_DOWN), "down");
    sw_set_url(w, NULL, NULL);
    v = sw_lock(w);
    assert_int_equal(v->state, SW_IDLE);
    assert_string_equal(v->err, "");
    sw_unlock(w);
    const double t0 = bn_time_now();
    sw_free(w);
    assert_true(bn_time_now() - t0 < 5);
    sw_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_serve_metrics),   cmocka_unit_test(test_not_a_server),
            cmocka_unit_test(test_rates),           cmocka_unit_test(test_urls),
            cmocka_unit_test(test_watch_dead_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
