/* test_serve_tenants.c - the tenants of `bitnet serve --tenants` (app/serve/serve_tenants.h):
 * GCRA arithmetic on an injected clock (bursts of exactly the limit, the wait it gives, the
 * refill, token debt), OpenAI's reset durations, and the callers over a real store in a
 * temporary history: every key refusal, scopes, concurrent streams, the ledger row of an
 * ended request (once), the monthly quota. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/history.h"
#include "../../app/serve/serve_tenants.h"

#define S  1000000000LL
#define T0 (1000 * S) /* the injected clock's start */

/* n takes of cost at now from g: how many fit (each that fits is taken). */
static int burst(srv_gcra *g, int64_t now, long long limit, long long cost, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        srv_gcra_res r;
        srv_gcra_eval(g, now, limit, cost, &r);
        if (r.ok) g->tat = r.tat, ok++;
    }
    return ok;
}

static void test_gcra_requests(void **state)
{
    (void)state;
    srv_gcra g = {0};
    srv_gcra_res r;
    const long long rem[] = {2, 1, 0};
    for (int i = 0; i < 3; i++) { /* 3 a minute: a burst of 3, each moves the bucket 20 s */
        srv_gcra_eval(&g, T0, 3, 1, &r);
        assert_true(r.ok);
        assert_int_equal(r.remaining, rem[i]);
        assert_int_equal(r.reset_ns, (i + 1) * 20 * S);
        g.tat = r.tat;
    }
    srv_gcra_eval(&g, T0, 3, 1, &r);
    assert_false(r.ok);
    assert_int_equal(r.retry_ns, 20 * S);
    assert_int_equal(g.tat, T0 + 60 * S);                     /* eval changes nothing */
    assert_int_equal(burst(&g, T0 + 20 * S - 1, 3, 1, 1), 0); /* 1 ns early */
    assert_int_equal(burst(&g, T0 + 20 * S, 3, 1, 5), 1);
    assert_int_equal(burst(&g, T0 + 140 * S, 3, 1, 10), 3); /* a full minute idle: full again */
    for (long long limit = 1; limit <= 100000; limit = limit * 7 + 3) {
        srv_gcra f = {0};
        assert_int_equal(burst(&f, T0, limit, 1, (int)limit + 5), (int)limit);
    }
    srv_gcra big = {0};
    srv_gcra_eval(&big, T0, 1000000000LL, 1, &r); /* 60 ns per request */
    assert_true(r.ok);
    assert_int_equal(r.remaining, 1000000000LL - 1);
}

static void test_gcra_tokens(void **state)
{
    (void)state;
    srv_gcra g = {0};
    srv_gcra_res r;
    assert_int_equal(burst(&g, T0, 100, 60, 1), 1); /* 100 a minute: 0.6 s per token */
    srv_gcra_eval(&g, T0, 100, 50, &r);
    assert_false(r.ok);
    assert_int_equal(r.retry_ns, 6 * S); /* 110 x 0.6 s - 60 s */
    assert_int_equal(burst(&g, T0, 100, 40, 1), 1);
    srv_gcra_eval(&g, T0, 100, 0, &r); /* cost 0: the bucket as it is */
    assert_true(r.ok);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_ns, 60 * S);
    srv_gcra_force(&g, T0, 100, 100); /* completion tokens: into debt */
    assert_int_equal(g.tat, T0 + 120 * S);
    srv_gcra_eval(&g, T0, 100, 1, &r);
    assert_false(r.ok);
    assert_int_equal(r.retry_ns, 60 * S + 600000000LL);
    srv_gcra_eval(&g, T0, 100, 101, &r); /* more than a minute's allowance: never fits */
    assert_false(r.ok);
}

static void test_fmt_reset(void **state)
{
    (void)state;
    const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
            {0, "0ms"},
            {1, "1ms"},
            {12 * 1000000LL, "12ms"},
            {S, "1s"},
            {360 * S, "6m0s"},
            {252172 * 1000000LL, "4m12.172s"},
            {3723 * S + S / 2, "1h2m3.5s"},
            {-5, "0ms"},
    };
    char buf[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(srv_fmt_reset(cases[i].ns, buf, sizeof buf), cases[i].want);
}

/* ---- callers over a real store -------------------------------------------------------------- */

typedef struct fixture {
    char dir[64], db_path[96];
    bn_config *cfg;
    srv_tenants *t;
    char key[BN_KEY_STR_MAX], admin[BN_KEY_STR_MAX], revoked[BN_KEY_STR_MAX];
    char team[BN_KEY_STR_MAX]; /* globex's inference key (team: 50 tokens a minute) */
    int64_t tid;
} fixture;

static bn_config *load_config(const char *dir, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    bn_config *c;
    char err[BN_CONFIG_ERR_MAX];
    assert_int_equal(bn_config_load_file(path, 0, &c, err, sizeof err), 0);
    return c;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/bn_test_srvten_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db_path, sizeof fx->db_path, "%s/history.db", fx->dir);
    setenv("BITNET_HISTORY_DB", fx->db_path, 1);
    fx->cfg = load_config(fx->dir, "{\"tiers\": {\"developer\": {\"requests_per_min\": 100, "
                                   "\"tokens_per_min\": 0, \"concurrent_streams\": 1, "
                                   "\"monthly_tokens\": 40}, \"team\": {\"requests_per_min\": 0, "
                                   "\"tokens_per_min\": 50, \"monthly_tokens\": 0}}}");
    bn_db *db;
    char err[256];
    assert_int_equal(cm_history_open(&db, NULL, 0, err, sizeof err), 0);
    int64_t other, kid;
    assert_int_equal(bn_db_tenant_add(db, "t", "acme", "developer", NULL, &fx->tid), BN_OK);
    assert_int_equal(bn_db_tenant_add(db, "t", "globex", "team", NULL, &other), BN_OK);
    assert_int_equal(bn_db_key_create(db, "t", fx->tid, BN_SCOPE_INFERENCE, 0, fx->key, &kid),
                     BN_OK);
    assert_int_equal(bn_db_key_create(db, "t", other, BN_SCOPE_ADMIN, 0, fx->admin, &kid), BN_OK);
    assert_int_equal(bn_db_key_create(db, "t", other, BN_SCOPE_INFERENCE, 0, fx->team, &kid),
                     BN_OK);
    assert_int_equal(bn_db_key_create(db, "t", fx->tid, BN_SCOPE_ALL_, 0, fx->revoked, &kid),
                     BN_OK);
    assert_int_equal(bn_db_key_revoke(db, "t", kid), BN_OK);
    bn_db_close(db);
    assert_int_equal(srv_tenants_new(fx->cfg, NULL, &fx->t, err, sizeof err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    srv_tenants_free(fx->t);
    bn_config_free(fx->cfg);
    char path[128];
    const char *const files[] = {"history.db", "history.db-wal", "history.db-shm", "config.json"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        unlink(path);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void expect_auth(fixture *fx, const char *header, unsigned scope, unsigned status,
                        const char *code)
{
    srv_caller who;
    srv_verdict v;
    srv_tenants_auth(fx->t, header, scope, &who, &v);
    assert_int_equal(v.status, status);
    if (code) assert_string_equal(v.code, code);
    if (!status) assert_int_equal(who.tenant_id, fx->tid);
}

static void test_auth(void **state)
{
    fixture *fx = *state;
    char h[128];
    snprintf(h, sizeof h, "Bearer %s", fx->key);
    expect_auth(fx, h, BN_SCOPE_INFERENCE, 0, NULL);
    expect_auth(fx, h, BN_SCOPE_ADMIN, 403, "insufficient_scope");
    expect_auth(fx, NULL, BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    expect_auth(fx, "Bearer", BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    expect_auth(fx, "Bearer ", BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    expect_auth(fx, "Basic dXNlcjpwYXNz", BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    expect_auth(fx, "Bearer bnk_short", BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    expect_auth(fx, "Bearer bnk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", BN_SCOPE_INFERENCE,
                401, "invalid_api_key");
    snprintf(h, sizeof h, "Bearer %s", fx->revoked);
    expect_auth(fx, h, BN_SCOPE_INFERENCE, 401, "invalid_api_key");
    snprintf(h, sizeof h, "bearer %s", fx->key); /* the scheme as RFC 6750 spells it */
    expect_auth(fx, h, BN_SCOPE_INFERENCE, 401, "invalid_api_key");
}

static void end(fixture *fx, srv_caller *who, const char *id, int64_t prompt, int64_t gen)
{
    bn_usage_rec rec = {.request_id = id,
                        .model = "m",
                        .prompt_tokens = prompt,
                        .completion_tokens = gen,
                        .status = "ok"};
    assert_int_equal(srv_tenants_end(fx->t, who, &rec, T0), 0);
}

/* Two callers a and b with key (its inference scope checked). */
static void callers(fixture *fx, const char *key, srv_caller *a, srv_caller *b)
{
    char h[128];
    srv_verdict v;
    snprintf(h, sizeof h, "Bearer %s", key);
    srv_tenants_auth(fx->t, h, BN_SCOPE_INFERENCE, a, &v);
    assert_int_equal(v.status, 0);
    *b = *a;
}

static void test_streams_ledger_quota(void **state)
{
    fixture *fx = *state;
    srv_caller a, b;
    srv_verdict v;
    callers(fx, fx->key, &a, &b);
    srv_tenants_admit(fx->t, &a, 5, T0, &v);
    assert_int_equal(v.status, 0);
    srv_tenants_admit(fx->t, &b, 5, T0, &v); /* one stream at once */
    assert_int_equal(v.status, 429);
    assert_string_equal(v.code, "rate_limit_exceeded");
    end(fx, &a, "req-1", 5, 20);
    end(fx, &a, "req-1", 5, 20); /* ended already: nothing more */
    srv_tenants_admit(fx->t, &b, 5, T0, &v);
    assert_int_equal(v.status, 0);
    assert_int_equal(srv_tenants_end(fx->t, &b, NULL, T0), 0); /* did not run: no row */
    bn_db *db;
    char err[256];
    assert_int_equal(cm_history_open(&db, NULL, 0, err, sizeof err), 0);
    bn_usage_total tot;
    assert_int_equal(bn_db_usage_total(db, fx->tid, 0, 0, &tot), BN_OK);
    assert_int_equal(tot.requests, 1);
    assert_int_equal(tot.prompt_tokens + tot.completion_tokens, 25);
    bn_usage_rec more = {.request_id = "req-2",
                         .tenant_id = fx->tid,
                         .model = "m",
                         .completion_tokens = 15,
                         .status = "ok"};
    assert_int_equal(bn_db_usage_record(db, &more, NULL), BN_OK); /* 40: the quota */
    bn_db_close(db);
    srv_tenants_admit(fx->t, &b, 5, T0, &v);
    assert_int_equal(v.status, 429);
    assert_string_equal(v.code, "insufficient_quota");
    int retry = 0;
    for (int i = 0; i < v.n_hdr; i++) retry |= !strcmp(v.hdr[i][0], "Retry-After");
    assert_true(retry);
}

/* The value of header name in v ("" when none). */
static const char *hdr(const srv_verdict *v, const char *name)
{
    for (int i = 0; i < v->n_hdr; i++)
        if (!strcmp(v->hdr[i][0], name)) return v->hdr[i][1];
    return "";
}

/* 50 tokens a minute (1.2 s each): the prompt is taken at admission, the completion at the
 * end (into debt), and the next request waits until the bucket is back within a minute. */
static void test_tokens_per_minute(void **state)
{
    fixture *fx = *state;
    srv_caller a, b;
    srv_verdict v;
    callers(fx, fx->team, &a, &b);
    srv_tenants_admit(fx->t, &a, 30, T0, &v);
    assert_int_equal(v.status, 0);
    assert_string_equal(hdr(&v, "x-ratelimit-limit-tokens"), "50");
    assert_string_equal(hdr(&v, "x-ratelimit-remaining-tokens"), "20");
    assert_string_equal(hdr(&v, "x-ratelimit-reset-tokens"), "36s");
    assert_string_equal(hdr(&v, "x-ratelimit-limit-requests"), ""); /* no request limit */
    end(fx, &a, "req-t1", 30, 30);                                  /* 72 s ahead now */
    srv_tenants_admit(fx->t, &b, 5, T0 + 12 * S, &v);               /* 72 + 6 - 12 > 60 */
    assert_int_equal(v.status, 429);
    assert_string_equal(v.type, "tokens");
    assert_string_equal(v.code, "rate_limit_exceeded");
    assert_string_equal(hdr(&v, "Retry-After"), "6");
    assert_string_equal(hdr(&v, "retry-after-ms"), "6000");
    assert_string_equal(hdr(&v, "x-ratelimit-remaining-tokens"), "0");
    assert_string_equal(hdr(&v, "x-ratelimit-reset-tokens"), "1m0s");
    srv_tenants_admit(fx->t, &b, 5, T0 + 18 * S, &v); /* 78 - 18 = 60: fits */
    assert_int_equal(v.status, 0);
    assert_int_equal(srv_tenants_end(fx->t, &b, NULL, T0 + 18 * S), 0);
    srv_tenants_admit(fx->t, &b, 51, T0 + 3600 * S, &v); /* more than a minute's tokens */
    assert_int_equal(v.status, 429);
    assert_non_null(strstr(v.msg, "exceed"));
}

int main(void)
{
    const struct CMUnitTest pure[] = {
            cmocka_unit_test(test_gcra_requests),
            cmocka_unit_test(test_gcra_tokens),
            cmocka_unit_test(test_fmt_reset),
    };
    const struct CMUnitTest store[] = {
            cmocka_unit_test(test_auth),
            cmocka_unit_test(test_streams_ledger_quota),
            cmocka_unit_test(test_tokens_per_minute),
    };
    const int a = cmocka_run_group_tests(pure, NULL, NULL);
    return a + cmocka_run_group_tests(store, setup, teardown);
}
