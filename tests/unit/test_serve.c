/* test_serve.c - the inside of `bitnet serve` on the bundled model: requests read from
 * OpenAI's documents (bad ones refused naming the field, the chat laid out in the model's
 * format), and the engine: two requests on two slots taking turns give each the text it
 * gets alone, stop strings cut the text, a cancelled request ends early, a request past its
 * deadline ends timed out. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/chat_format.h"
#include "../../app/serve/serve_api.h"

static const char *model_path(void)
{
    const char *p = getenv("BITNET_TEST_MODEL");
    return p && *p ? p : "assets/models/bitnet-tinystories.gguf";
}

/* A server with 2 slots and a queue of 2, its model loaded. */
static int setup(void **state)
{
    FILE *f = fopen(model_path(), "rb");
    if (!f) {
        fprintf(stderr, "test_serve: no model at %s: skipped\n", model_path());
        *state = NULL;
        return 0;
    }
    fclose(f);
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(srv_init(s), 0);
    cm_model_params_init(&s->mp);
    s->mp.path = model_path();
    s->mp.n_threads = 2;
    cm_session_params_init(&s->sp);
    s->n_slots = 2, s->n_queue = 2;
    snprintf(s->model_id, sizeof s->model_id, "m");
    assert_int_equal(srv_start(s), 0);
    pthread_mutex_lock(&s->mu);
    while (!s->ready && !s->load_failed) pthread_cond_wait(&s->loaded, &s->mu);
    pthread_mutex_unlock(&s->mu);
    assert_true(s->ready);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    srv *s = *state;
    if (!s) return 0;
    srv_shutdown(s);
    srv_destroy(s);
    free(s);
    return 0;
}

/* Reads body as a chat (chat 1) or completion request: its rc, the request in *out. */
static int read_req(srv *s, const char *body, int chat, srv_req **out, srv_ask *a)
{
    cJSON *d = cJSON_Parse(body);
    assert_non_null(d);
    memset(a, 0, sizeof *a);
    a->chat = chat;
    *out = srv_req_new();
    assert_non_null(*out);
    const int rc = srv_read_request(s, d, *out, a);
    cJSON_Delete(d);
    return rc;
}

static void test_bad_requests(void **state)
{
    srv *s = *state;
    if (!s) skip();
    static const struct {
        int chat;
        const char *body, *param;
    } bad[] = {
            {1, "{}", "messages"},
            {1, "{\"messages\":[]}", "messages"},
            {1, "{\"messages\":[{\"role\":\"user\"}],\"n\":2}", "n"},
            {1, "{\"messages\":[{\"role\":\"user\",\"content\":1}]}", "messages"},
            {1, "{\"messages\":[{\"role\":\"robot\",\"content\":\"a\"}]}", "messages"},
            {1,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\","
             "\"content\":\"b\"}]}",
             "messages"},
            {1, "{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}]}", "messages"},
            {0, "{\"prompt\":\"a\",\"model\":3}", "model"},
            {0, "{\"prompt\":\"a\",\"stream\":\"yes\"}", "stream"},
            {0, "{\"prompt\":\"a\",\"temperature\":2.5}", "temperature"},
            {0, "{\"prompt\":\"a\",\"top_p\":-1}", "top_p"},
            {0, "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens"},
            {0, "{\"prompt\":\"a\",\"max_completion_tokens\":0}", "max_completion_tokens"},
            {0, "{\"prompt\":\"a\",\"seed\":0.5}", "seed"},
            {0, "{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop"},
            {0, "{\"prompt\":\"a\",\"stop\":{}}", "stop"},
            {0, "{\"prompt\":\"a\",\"logprobs\":true}", "logprobs"},
            {0, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_req *r;
        srv_ask a;
        if (read_req(s, bad[i].body, bad[i].chat, &r, &a) != -1 || !a.param ||
            strcmp(a.param, bad[i].param))
            fail_msg("%s: param %s (%s)", bad[i].body, a.param ? a.param : "NULL", a.err);
        assert_true(a.err[0] != '\0');
        srv_release(s, r);
    }
}

static void test_chat_layout(void **state)
{
    srv *s = *state;
    if (!s) skip();
    srv_req *r;
    srv_ask a;
    assert_int_equal(read_req(s,
                              "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                              "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
                              "\"content\":[{\"type\":\"text\",\"text\":\"yo\"}]},"
                              "{\"role\":\"user\",\"content\":\"more\"}],\"stream\":true,"
                              "\"max_tokens\":7,\"stop\":\"x\",\"seed\":5,\"temperature\":0}",
                              1, &r, &a),
                     0);
    assert_true(a.stream);
    assert_int_equal(a.max_tokens, 7);
    assert_int_equal(r->n_stop, 1);
    assert_int_equal(r->sp.seed, 5);
    const bn_tokenizer *tok = cm_model_tok(s->m);
    const bn_chat_format *f = bn_chat_format_for(bn_tokenizer_chat_template(tok), NULL);
    size_t l1, l2;
    char *t1 = bn_chat_turn_text(f, 0, "S", "hi", &l1),
         *t2 = bn_chat_turn_text(f, 1, NULL, "more", &l2);
    char want[512];
    snprintf(want, sizeof want, "%syo%s", t1, t2);
    free(t1), free(t2);
    unsigned fl = BN_TOKENIZE_PARSE_SPECIAL;
    if (bn_tokenizer_add_bos(tok) && bn_tokenizer_bos(tok) >= 0) fl |= BN_TOKENIZE_ADD_BOS;
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_tokenizer_encode_alloc(tok, want, strlen(want), fl, &ids, &n), BN_OK);
    assert_int_equal(n, r->n_ids);
    assert_memory_equal(ids, r->ids, n * sizeof *ids);
    bn_free(ids);
    assert_int_equal(r->line_reply, f->line_reply);
    srv_release(s, r);
}

/* A greedy completion request for prompt, submitted. */
static srv_req *submit(srv *s, const char *prompt, int64_t max_tokens, const char *stop)
{
    char body[512];
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"temperature\":0%s%s%s}", prompt,
             stop ? ",\"stop\":\"" : "", stop ? stop : "", stop ? "\"" : "");
    srv_req *r;
    srv_ask a;
    assert_int_equal(read_req(s, body, 0, &r, &a), 0);
    r->max_tokens = max_tokens;
    assert_int_equal(srv_submit(s, r), SRV_OK);
    return r;
}

/* Waits until r is done; its text (malloc'ed). */
static char *wait_done(srv *s, srv_req *r)
{
    pthread_mutex_lock(&s->mu);
    while (r->state != SRV_DONE) pthread_cond_wait(&r->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    char *t = malloc(r->len + 1);
    assert_non_null(t);
    memcpy(t, r->text ? r->text : "", r->len);
    t[r->len] = '\0';
    return t;
}

static void test_slots_take_turns(void **state)
{
    srv *s = *state;
    if (!s) skip();
    srv_req *a = submit(s, "Once upon a time", 30, NULL);
    char *alone_a = wait_done(s, a);
    srv_req *b = submit(s, "The dog", 30, NULL);
    char *alone_b = wait_done(s, b);
    srv_release(s, a), srv_release(s, b);
    a = submit(s, "Once upon a time", 30, NULL); /* together now */
    b = submit(s, "The dog", 30, NULL);
    char *ta = wait_done(s, a), *tb = wait_done(s, b);
    assert_string_equal(ta, alone_a);
    assert_string_equal(tb, alone_b);
    assert_true(strlen(ta) > 0);
    assert_int_equal(a->n_ids + a->n_gen > a->n_ids, 1);
    assert_string_equal(a->finish, a->n_gen == 30 ? "length" : "stop");
    free(ta), free(tb), free(alone_a), free(alone_b);
    srv_release(s, a), srv_release(s, b);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->n_running + s->n_queued, 0);
    pthread_mutex_unlock(&s->mu);
}

static void test_stop_string_and_cancel(void **state)
{
    srv *s = *state;
    if (!s) skip();
    srv_req *r = submit(s, "Once upon a time", 40, NULL);
    char *full = wait_done(s, r);
    srv_release(s, r);
    const char *cut = strstr(full + 1, " ");
    assert_non_null(cut); /* the text up to its second word */
    char stop[64];
    snprintf(stop, sizeof stop, "%.*s", (int)(strcspn(cut + 1, " ") + 1), cut);
    r = submit(s, "Once upon a time", 40, stop);
    char *t = wait_done(s, r);
    assert_int_equal(strlen(t), (size_t)(strstr(full, stop) - full));
    assert_memory_equal(t, full, strlen(t));
    assert_string_equal(r->finish, "stop");
    srv_release(s, r);
    free(t), free(full);

    srv_ask a; /* a request whose client is gone before it starts: no token, no finish */
    assert_int_equal(read_req(s, "{\"prompt\":\"Once\"}", 0, &r, &a), 0);
    r->max_tokens = 50;
    r->cancel = 1;
    assert_int_equal(srv_submit(s, r), SRV_OK);
    free(wait_done(s, r));
    assert_null(r->finish);
    assert_int_equal(r->n_gen, 0);
    srv_release(s, r);
}

/* A counter of the run metrics, model "m" (and result, for requests_total). */
static double gm_value(bn_mfamily *f, const char *result)
{
    const char *lv[] = {"m", result};
    double v = 0;
    bn_metric_get(f, lv, &v);
    return v;
}

static void test_metrics(void **state)
{
    srv *s = *state;
    if (!s) skip();
    const double p0 = gm_value(s->gm.prompt_tokens, NULL), g0 = gm_value(s->gm.gen_tokens, NULL),
                 len0 = gm_value(s->gm.requests, "length"),
                 err0 = gm_value(s->gm.requests, "error");
    srv_req *r = submit(s, "Once upon a time", 5, NULL);
    free(wait_done(s, r));
    assert_string_equal(r->finish, "length");
    assert_int_equal(r->n_gen, 5);
    /* recorded before the request is done: the counters hold its usage */
    assert_true(gm_value(s->gm.prompt_tokens, NULL) == p0 + (double)r->n_ids);
    assert_true(gm_value(s->gm.gen_tokens, NULL) == g0 + 5);
    assert_true(gm_value(s->gm.requests, "length") == len0 + 1);
    /* slot 0 (the first free) holds the prompt and every token but the last sampled; it is
     * set before the request is done */
    char kv[160];
    snprintf(kv, sizeof kv,
             "\nbitnet_slot_kv_tokens{slot=\"0\"} %zu\n"
             "bitnet_slot_kv_tokens{slot=\"1\"} ",
             r->n_ids + 4);
    srv_release(s, r);
    char *before = srv_metrics_render(s, 1, &(size_t){0});
    assert_non_null(before);
    if (!strstr(before, kv)) fail_msg("want %s in:\n%s", kv, before);
    snprintf(kv, sizeof kv, "\nbitnet_slot_kv_capacity_tokens{slot=\"1\"} %lld\n",
             (long long)s->n_ctx);
    assert_non_null(strstr(before, kv));
    free(before);

    srv_ask a; /* cancelled before its first token: an error, no tokens */
    assert_int_equal(read_req(s, "{\"prompt\":\"Once\"}", 0, &r, &a), 0);
    r->max_tokens = 50;
    r->cancel = 1;
    assert_int_equal(srv_submit(s, r), SRV_OK);
    free(wait_done(s, r));
    srv_release(s, r);
    assert_true(gm_value(s->gm.requests, "error") == err0 + 1);
    assert_true(gm_value(s->gm.gen_tokens, NULL) == g0 + 5);

    srv_count_http(s, "/metrics", 200);
    size_t len;
    char *text = srv_metrics_render(s, 1, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "\nbitnet_slots 2\n"));
    assert_non_null(strstr(text, "\nbitnet_slots_busy 0\n"));
    assert_non_null(strstr(text, "\nbitnet_requests_waiting 0\n"));
    assert_non_null(strstr(text, "\nbitnet_http_requests_in_flight 1\n"));
    assert_non_null(strstr(text, "\nbitnet_requests_rejected_total 0\n"));
    assert_non_null(
            strstr(text, "bitnet_http_requests_total{endpoint=\"/metrics\",code=\"200\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE bitnet_generation_time_to_first_token_seconds histogram"));
    free(text);
}

/* A request past its deadline before its first step: it ends timed out, with no token and
 * no finish, its slot free; counted in n_failed, n_timeouts and the metrics. */
static void test_timeout(void **state)
{
    srv *s = *state;
    if (!s) skip();
    pthread_mutex_lock(&s->mu);
    const uint64_t failed0 = s->n_failed, late0 = s->n_timeouts;
    s->timeout_s = 1e-9; /* past before the engine first looks at it */
    pthread_mutex_unlock(&s->mu);
    double t0 = 0, t1 = 0;
    bn_metric_get(s->timeouts, NULL, &t0);
    srv_req *r = submit(s, "Once upon a time", 50, NULL);
    free(wait_done(s, r));
    assert_true(r->timed_out);
    assert_null(r->finish);
    assert_int_equal(r->n_gen, 0);
    assert_non_null(strstr(r->err, "timeout"));
    srv_release(s, r);
    pthread_mutex_lock(&s->mu);
    s->timeout_s = 0;
    assert_int_equal(s->n_timeouts, late0 + 1);
    assert_int_equal(s->n_failed, failed0 + 1);
    assert_int_equal(s->n_running + s->n_queued, 0);
    pthread_mutex_unlock(&s->mu);
    bn_metric_get(s->timeouts, NULL, &t1);
    assert_true(t1 == t0 + 1);
    r = submit(s, "Once upon a time", 3, NULL); /* timeout 0: none */
    free(wait_done(s, r));
    assert_false(r->timed_out);
    assert_string_equal(r->finish, "length");
    srv_release(s, r);
}

static void test_sendable(void **state)
{
    (void)state;
    static const struct {
        const char *text, *stop1, *stop2;
        size_t want;
    } cases[] = {
            {"", NULL, NULL, 0},
            {"a little", NULL, NULL, 8},
            {"a little", "tle gi", NULL, 5},       /* "tle" may begin the stop string */
            {"a little", "ex", "lex", 6},          /* the longest: "le" of "lex" */
            {"a little x", "tle gi", NULL, 10},    /* "tle x" begins no stop string */
            {"a little g", "tle gi", NULL, 5},     /* "tle g" */
            {"caf\xc3", NULL, NULL, 3},            /* half of an e with an acute accent */
            {"caf\xc3\xa9", NULL, NULL, 5},        /* whole */
            {"\xe2\x80", NULL, NULL, 0},           /* two bytes of three */
            {"ok\xf0\x9f\x98\x80", NULL, NULL, 6}, /* a 4-byte character, whole */
            {"ok\xf0\x9f\x98", "k", NULL, 2},      /* not whole; "k" ends no stop string */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_req r = {0};
        r.text = (char *)cases[i].text;
        r.len = strlen(cases[i].text);
        if (cases[i].stop1) r.stop[r.n_stop++] = (char *)cases[i].stop1;
        if (cases[i].stop2) r.stop[r.n_stop++] = (char *)cases[i].stop2;
        if (srv_sendable(&r) != cases[i].want)
            fail_msg("case %zu: %zu, want %zu", i, srv_sendable(&r), cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sendable),
            cmocka_unit_test(test_bad_requests),
            cmocka_unit_test(test_chat_layout),
            cmocka_unit_test(test_slots_take_turns),
            cmocka_unit_test(test_stop_string_and_cancel),
            cmocka_unit_test(test_metrics),
            cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
