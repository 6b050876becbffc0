/* test_db_pg.c - the platform's store on PostgreSQL (bitnet/db_pg.h) against a real server:
 * the URL in $BITNET_TEST_PG_URL (an ordinary role owning an empty database), which
 * tests/cli/test_serve_pg.sh sets after starting one; without it every test skips.
 * Concurrent migrations (one set of versions), a newer schema refused; tenants, keys and the
 * lookup's reasons; the ledger idempotent by request id (also when threads race on one id)
 * with its meter event; the pool under more threads than connections; row-level security
 * checked through a raw libpq connection (another tenant's rows invisible and unwritable, none
 * without a scope); the audit chain append-only and verified; the outbox claimed once by
 * competing claimers; the history's calls refused plainly. Names carry the process id so the
 * test can run again on the same database. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/db.h"
#include "bitnet/db_pg.h"
#include "bitnet/db_tenants.h"

static const char *url(void)
{
    const char *u = getenv("BITNET_TEST_PG_URL");
    return u && *u ? u : NULL;
}

static void ok_(bn_db *db, bn_status s, int line)
{
    if (s != BN_OK) fail_msg("line %d: status %d: %s", line, (int)s, bn_db_errmsg(db));
}
#define OK(db, s) ok_(db, s, __LINE__)

/* A name unique to this run: "<base>-<pid>" (the main thread only: a ring of buffers). */
static const char *nm(const char *base)
{
    static char buf[8][64];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 64, "%s-%ld", base, (long)getpid());
    return b;
}

static bn_db *open_db(void)
{
    if (!url()) skip();
    bn_db *db;
    const bn_status s = bn_db_open_pg_url(&db, url());
    if (s != BN_OK) fail_msg("open: %s", bn_db_errmsg(db));
    assert_true(bn_db_is_pg(db));
    return db;
}

/* One value of a query on a raw connection scoped to scope (NULL: none); "ERR" on error. */
static void raw(const char *scope, const char *sql, char *out, size_t size)
{
    PGconn *c = PQconnectdb(url());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "BEGIN"));
    if (scope) {
        const char *v[] = {scope};
        PQclear(PQexecParams(c, "SELECT set_config('app.tenant_id', $1, true)", 1, NULL, v, NULL,
                             NULL, 0));
    }
    PGresult *r = PQexec(c, sql);
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    else
        snprintf(out, size, "%s", st == PGRES_COMMAND_OK ? "" : "ERR");
    PQclear(r);
    PQclear(PQexec(c, st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "COMMIT" : "ROLLBACK"));
    PQfinish(c);
}

/* ---- migrations --------------------------------------------------------------------------- */

static void *open_pool(void *arg)
{
    char err[256];
    bn_pg_pool *p;
    *(int *)arg = bn_pg_pool_new(url(), 2, &p, err, sizeof err);
    if (*(int *)arg) fprintf(stderr, "pool: %s\n", err);
    bn_pg_pool_free(*(int *)arg ? NULL : p);
    return NULL;
}

static void test_migrations(void **state)
{
    (void)state;
    if (!url()) skip();
    pthread_t th[4];
    int rc[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, open_pool, &rc[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) assert_int_equal(rc[i], 0);
    char v[32];
    raw(NULL, "SELECT count(*) || ':' || max(version) FROM bitnet_schema_migrations", v, sizeof v);
    assert_string_equal(v, "3:3");
    /* a store migrated by a newer bitnet is refused, not touched */
    raw(NULL, "INSERT INTO bitnet_schema_migrations (version) VALUES (99)", v, sizeof v);
    bn_pg_pool *p;
    char err[256];
    assert_int_equal(bn_pg_pool_new(url(), 1, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "newer than this bitnet knows"));
    raw(NULL, "DELETE FROM bitnet_schema_migrations WHERE version = 99", v, sizeof v);
    assert_int_equal(bn_pg_pool_new(url(), 0, &p, err, sizeof err), -1);
    assert_int_equal(bn_pg_pool_new("sqlite:x", 1, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a PostgreSQL URL"));
}

/* ---- tenants and keys ----------------------------------------------------------------------- */

static void test_keys(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid, kid, kid2;
    OK(db, bn_db_tenant_add(db, "test", nm("keys"), "team", NULL, &tid));
    assert_int_equal(bn_db_tenant_add(db, "test", nm("keys"), "team", NULL, NULL), BN_ERR_INVALID);
    assert_non_null(strstr(bn_db_errmsg(db), "exists"));
    bn_tenant t;
    OK(db, bn_db_tenant_get(db, nm("keys"), &t));
    assert_int_equal(t.id, tid);
    assert_int_equal(bn_db_tenant_get(db, "no-such-tenant-x", &t), BN_ERR_NOT_FOUND);
    char key[BN_KEY_STR_MAX], key2[BN_KEY_STR_MAX];
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_INFERENCE | BN_SCOPE_USAGE, 0, key, &kid));
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_ADMIN, 0, key2, &kid2));
    bn_key_auth a;
    OK(db, bn_db_key_lookup(db, key, &a));
    assert_int_equal(a.reason, BN_KEY_OK);
    assert_int_equal(a.tenant_id, tid);
    assert_int_equal(a.key_id, kid);
    assert_int_equal(a.scopes, BN_SCOPE_INFERENCE | BN_SCOPE_USAGE);
    assert_string_equal(a.tier, "team");
    assert_string_equal(a.tenant, nm("keys"));
    const char c10 = key[10];
    key[10] = c10 == 'A' ? 'B' : 'A';
    OK(db, bn_db_key_lookup(db, key, &a));
    assert_int_equal(a.reason, BN_KEY_UNKNOWN);
    key[10] = c10;
    OK(db, bn_db_key_lookup(db, "bnk_short", &a));
    assert_int_equal(a.reason, BN_KEY_MALFORMED);
    OK(db, bn_db_key_revoke(db, "test", kid));
    assert_int_equal(bn_db_key_revoke(db, "test", kid), BN_ERR_NOT_FOUND);
    OK(db, bn_db_key_lookup(db, key, &a));
    assert_int_equal(a.reason, BN_KEY_REVOKED);
    OK(db, bn_db_tenant_suspend(db, "test", nm("keys"), 1));
    OK(db, bn_db_key_lookup(db, key2, &a));
    assert_int_equal(a.reason, BN_KEY_SUSPENDED);
    assert_int_equal(bn_db_key_create(db, "test", tid, BN_SCOPE_ADMIN, 0, key, NULL),
                     BN_ERR_INVALID); /* a suspended tenant gets no key */
    OK(db, bn_db_tenant_suspend(db, "test", nm("keys"), 0));
    OK(db, bn_db_key_lookup(db, key2, &a));
    assert_int_equal(a.reason, BN_KEY_OK);
    bn_db_close(db);
}

/* ---- the ledger --------------------------------------------------------------------------- */

static bn_usage_rec rec(const char *id, int64_t tid)
{
    return (bn_usage_rec){.request_id = id,
                          .tenant_id = tid,
                          .model = "m",
                          .prompt_tokens = 3,
                          .completion_tokens = 4,
                          .duration_ms = 10,
                          .status = "ok"};
}

static void test_usage_idempotent(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid;
    OK(db, bn_db_tenant_add(db, "test", nm("ledger"), "team", "cus_ledger", &tid));
    bn_usage_rec r = rec(nm("req-1"), tid);
    int fresh = -1;
    OK(db, bn_db_usage_record(db, &r, &fresh));
    assert_int_equal(fresh, 1);
    r.completion_tokens = 999; /* the first record wins */
    OK(db, bn_db_usage_record(db, &r, &fresh));
    assert_int_equal(fresh, 0);
    bn_usage_total tot;
    OK(db, bn_db_usage_total(db, tid, 0, 0, &tot));
    assert_int_equal(tot.requests, 1);
    assert_int_equal(tot.completion_tokens, 4);
    char q[256], v[32];
    snprintf(q, sizeof q,
             "SELECT count(*) || ':' || sum(value) FROM billing_outbox WHERE "
             "request_id = '%s'",
             nm("req-1"));
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "1:7"); /* one meter event, of the first record */
    bn_usage_rec bad = rec(nm("req-2"), 987654321);
    assert_int_equal(bn_db_usage_record(db, &bad, &fresh), BN_ERR_NOT_FOUND);
    bn_db_close(db);
}

/* Several rows of one tenant in one statement (serve's ledger writes that come at once): the
 * same rows and meter events as one at a time, quotes and backslashes in the text, no key, a
 * row there before, a malformed one, rows of a tenant erased or of two tenants. */
static void test_usage_batch(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid, gone;
    OK(db, bn_db_tenant_add(db, "test", nm("batch"), "team", "cus_batch", &tid));
    OK(db, bn_db_tenant_add(db, "test", nm("batch-gone"), "team", NULL, &gone));
    char id[5][96];
    for (int i = 0; i < 5; i++) snprintf(id[i], sizeof id[i], "%s-\"q\\%d,{}", nm("bt"), i);
    bn_usage_rec r[5];
    for (int i = 0; i < 5; i++) r[i] = rec(id[i], tid);
    r[1].model = "m \"odd\" \\ name", r[1].key_id = 0, r[1].completion_tokens = 40;
    r[2].prompt_tokens = 0, r[2].completion_tokens = 0; /* no tokens: no meter event */
    r[3].status = "";                                   /* malformed */
    int fresh[5];
    bn_status each[5];
    OK(db, bn_db_usage_record(db, &r[4], &fresh[0])); /* there before */
    const bn_usage_rec *p[5] = {&r[0], &r[1], &r[2], &r[3], &r[4]};
    OK(db, bn_db_usage_record_n(db, p, 5, fresh, each));
    const int want_fresh[] = {1, 1, 1, 0, 0};
    const bn_status want[] = {BN_OK, BN_OK, BN_OK, BN_ERR_INVALID, BN_OK};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fresh[i], want_fresh[i]);
        assert_int_equal(each[i], want[i]);
    }
    char q[512], v[128];
    snprintf(q, sizeof q,
             "SELECT string_agg(model || '/' || coalesce(key_id::text, '-') || '/' || "
             "prompt_tokens || '/' || completion_tokens, ';' ORDER BY request_id) FROM usage "
             "WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "m/-/3/4;m \"odd\" \\ name/-/3/40;m/-/0/0;m/-/3/4");
    snprintf(q, sizeof q,
             "SELECT count(*) || ':' || sum(value) || ':' || bool_and(event_id = request_id) "
             "FROM billing_outbox WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "3:57:true"); /* r[0] 7, r[1] 43, r[4] 7 (before) */
    /* a second time: nothing new, nothing counted twice */
    OK(db, bn_db_usage_record_n(db, p, 5, fresh, each));
    for (int i = 0; i < 5; i++) assert_int_equal(fresh[i], 0);
    /* an erased tenant: no row, each not found; rows of two tenants refused */
    OK(db, bn_db_tenant_erase(db, "test", nm("batch-gone")));
    bn_usage_rec g[2] = {rec(nm("bg-0"), gone), rec(nm("bg-1"), gone)};
    const bn_usage_rec *pg[2] = {&g[0], &g[1]};
    OK(db, bn_db_usage_record_n(db, pg, 2, fresh, each));
    assert_int_equal(each[0], BN_ERR_NOT_FOUND);
    assert_int_equal(each[1], BN_ERR_NOT_FOUND);
    const bn_usage_rec *mixed[2] = {&r[0], &g[0]};
    assert_int_equal(bn_db_usage_record_n(db, mixed, 2, fresh, each), BN_ERR_INVALID);
    bn_db_close(db);
}

/* ---- the pool under threads ---------------------------------------------------------------- */

typedef struct worker {
    bn_pg_pool *pool;
    int64_t tid;
    int no, failed, fresh_shared;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    bn_db *db;
    if (bn_db_open_pg(&db, w->pool) != BN_OK) return w->failed = 1, NULL;
    char id[80];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "pool-%ld-w%d-%d", (long)getpid(), w->no, i);
        bn_usage_rec r = rec(id, w->tid);
        int fresh;
        if (bn_db_usage_record(db, &r, &fresh) != BN_OK || !fresh) w->failed = 1;
    }
    snprintf(id, sizeof id, "pool-%ld-shared", (long)getpid());
    bn_usage_rec r = rec(id, w->tid); /* every thread: one id */
    int fresh = 0;
    if (bn_db_usage_record(db, &r, &fresh) != BN_OK) w->failed = 1;
    w->fresh_shared = fresh;
    bn_db_close(db);
    return NULL;
}

static void test_pool_threads(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid;
    OK(db, bn_db_tenant_add(db, "test", nm("pool"), "team", NULL, &tid));
    bn_pg_pool *pool;
    char err[256];
    assert_int_equal(bn_pg_pool_new(url(), 3, &pool, err, sizeof err), 0);
    enum { N = 8 };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.pool = pool, .tid = tid, .no = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    int fresh = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failed, 0);
        fresh += w[i].fresh_shared;
    }
    assert_int_equal(fresh, 1); /* the race on one request id: one row */
    bn_pg_pool_free(pool);
    bn_usage_total tot;
    OK(db, bn_db_usage_total(db, tid, 0, 0, &tot));
    assert_int_equal(tot.requests, N * 25 + 1);
    bn_db_close(db);
}

/* ---- row-level security -------------------------------------------------------------------- */

static void test_rls(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t a, b;
    OK(db, bn_db_tenant_add(db, "test", nm("rls-a"), "team", NULL, &a));
    OK(db, bn_db_tenant_add(db, "test", nm("rls-b"), "team", NULL, &b));
    bn_usage_rec ra = rec(nm("rls-req-a"), a), rb = rec(nm("rls-req-b"), b);
    OK(db, bn_db_usage_record(db, &ra, NULL));
    OK(db, bn_db_usage_record(db, &rb, NULL));
    char sa[24], q[256], v[32];
    snprintf(sa, sizeof sa, "%lld", (long long)a);
    snprintf(q, sizeof q, "SELECT count(*) FROM usage WHERE tenant_id = %lld", (long long)b);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "1");
    raw(sa, q, v, sizeof v);
    assert_string_equal(v, "0"); /* B's row is not there for A */
    snprintf(q, sizeof q, "SELECT count(*) FROM usage WHERE tenant_id = %lld", (long long)a);
    raw(sa, q, v, sizeof v);
    assert_string_equal(v, "1");
    raw(NULL, q, v, sizeof v);
    assert_string_equal(v, "0"); /* no scope: nothing, the owner included */
    raw("garbage", q, v, sizeof v);
    assert_string_equal(v, "0");
    snprintf(q, sizeof q, "SELECT count(*) FROM tenants WHERE id = %lld", (long long)b);
    raw(sa, q, v, sizeof v);
    assert_string_equal(v, "0");
    snprintf(q, sizeof q,
             "INSERT INTO usage (request_id, tenant_id, model, prompt_tokens, completion_tokens, "
             "duration_ms, status, at) VALUES ('%s', %lld, 'm', 1, 1, 1, 'ok', 0)",
             nm("forged"), (long long)b);
    raw(sa, q, v, sizeof v);
    assert_string_equal(v, "ERR"); /* A cannot write a row of B */
    snprintf(q, sizeof q, "UPDATE usage SET completion_tokens = 0 WHERE tenant_id = %lld",
             (long long)b);
    raw(sa, q, v, sizeof v);
    OK(db, bn_db_usage_record(db, &rb, NULL));
    bn_usage_total tot;
    OK(db, bn_db_usage_total(db, b, 0, 0, &tot));
    assert_int_equal(tot.completion_tokens, 4); /* A's update touched nothing of B */
    bn_db_close(db);
}

/* ---- the audit log and the outbox ------------------------------------------------------------ */

static void test_audit_outbox(void **state)
{
    (void)state;
    bn_db *db = open_db();
    OK(db, bn_db_audit_append(db, "test", "test.note", "x", "{\"a\": 1}"));
    assert_int_equal(bn_db_audit_append(db, "test", "test.note", "x", "{not json"), BN_ERR_IO);
    int64_t n, bad;
    char why[128];
    OK(db, bn_db_audit_verify(db, &n, &bad, why, sizeof why));
    assert_int_equal(bad, 0);
    assert_true(n >= 1);
    char v[32];
    raw("all", "UPDATE audit SET actor = 'mallory'", v, sizeof v);
    assert_string_equal(v, "ERR"); /* append-only */
    raw("all", "DELETE FROM audit", v, sizeof v);
    assert_string_equal(v, "ERR");

    /* the events of the other tests (and of earlier runs) delivered first */
    bn_outbox_event e1[8], e2[8];
    size_t n1 = 0, n2 = 0;
    int64_t now = (int64_t)time(NULL) * 1000 + 1000;
    do {
        OK(db, bn_db_outbox_claim(db, now + 86400000, 1000, e1, 8, &n1));
        for (size_t i = 0; i < n1; i++) OK(db, bn_db_outbox_ack(db, e1[i].id, 0, now));
    } while (n1);
    bn_outbox_counts c0, c;
    OK(db, bn_db_outbox_counts(db, now, &c0));
    int64_t tid;
    OK(db, bn_db_tenant_add(db, "test", nm("outbox"), "team", "cus_outbox", &tid));
    for (int i = 0; i < 3; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", nm("ob"), i);
        bn_usage_rec r = rec(id, tid);
        OK(db, bn_db_usage_record(db, &r, NULL));
    }
    /* two claimers: each event once while leased */
    now = (int64_t)time(NULL) * 1000 + 1000; /* after the events: they are due */
    bn_db *db2 = open_db();
    OK(db, bn_db_outbox_claim(db, now, 60000, e1, 8, &n1));
    OK(db2, bn_db_outbox_claim(db2, now, 60000, e2, 8, &n2));
    assert_int_equal(n1, 3);
    assert_int_equal(n2, 0);
    /* given back unsent: the other claims it at once, no attempt counted */
    OK(db, bn_db_outbox_release(db, &e1[2].id, 1));
    OK(db2, bn_db_outbox_claim(db2, now, 60000, e2, 8, &n2));
    assert_int_equal(n2, 1);
    assert_int_equal(e2[0].id, e1[2].id);
    assert_int_equal(e2[0].attempts, 0);
    OK(db, bn_db_outbox_retry(db, e1[0].id, now + 5000, "503"));
    /* acknowledged together, in one statement; one not in the outbox does not stop the
     * others */
    const int64_t ids[] = {e1[1].id, e2[0].id, 987654321};
    const int dups[] = {0, 1, 0};
    assert_int_equal(bn_db_outbox_ack_n(db, ids, dups, 3, now), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_outbox_ack(db, 987654321, 0, now), BN_ERR_NOT_FOUND);
    OK(db, bn_db_outbox_counts(db, now, &c));
    assert_int_equal(c.pending, 1);
    assert_int_equal(c.retrying, 1);
    assert_int_equal(c.due, 0);
    if (!c0.failed) assert_string_equal(c.last_error, "503"); /* else an older run's newer */
    OK(db2, bn_db_outbox_claim(db2, now + 6000, 60000, e2, 8, &n2));
    assert_int_equal(n2, 1);
    OK(db2, bn_db_outbox_fail(db2, e2[0].id, "400 no such meter"));
    OK(db, bn_db_outbox_counts(db, now, &c));
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.failed, c0.failed + 1);
    assert_int_equal(c.acked, c0.acked + 2);
    assert_int_equal(c.duplicates, c0.duplicates + 1);
    bn_db_close(db2);
    bn_db_close(db);
}

/* ---- export, erase, delete; requeue and reconcile -------------------------------------------- */

typedef struct rec_copy {
    bn_billing_row r;
    char customer[BN_STRIPE_ID_MAX]; /* the row's strings are borrowed for the call */
} rec_copy;

static int rec_row(void *ud, const bn_billing_row *r)
{
    rec_copy *c = ud;
    c->r = *r;
    snprintf(c->customer, sizeof c->customer, "%s", r->customer);
    c->r.customer = c->customer, c->r.tenant_name = NULL;
    return 0;
}

static void test_erase_export(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid, kid, other;
    OK(db, bn_db_tenant_add(db, "test", nm("erase"), "team", "cus_erase", &tid));
    char key[BN_KEY_STR_MAX];
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_INFERENCE, 0, key, &kid));
    for (int i = 0; i < 2; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", nm("er"), i);
        bn_usage_rec r = rec(id, tid);
        OK(db, bn_db_usage_record(db, &r, NULL));
    }
    rec_copy b = {.r.tenant_id = 0};
    OK(db, bn_db_billing_reconcile(db, tid, 0, 0, rec_row, &b));
    assert_int_equal(b.r.tenant_id, tid);
    assert_int_equal(b.r.ledger_requests, 2);
    assert_int_equal(b.r.ledger_tokens, 14);
    assert_int_equal(b.r.pending_tokens, 14);
    assert_string_equal(b.customer, "cus_erase");
    char *doc = NULL;
    OK(db, bn_db_tenant_export(db, "test", nm("erase"), &doc));
    assert_non_null(strstr(doc, "cus_erase"));
    assert_non_null(strstr(doc, "\"usage\""));
    assert_non_null(strstr(doc, nm("er")));
    assert_non_null(strstr(doc, "tenant.export")); /* its own entry is in it */
    bn_free(doc);

    OK(db, bn_db_tenant_erase(db, "test", nm("erase")));
    bn_tenant t;
    char ref[24];
    snprintf(ref, sizeof ref, "%lld", (long long)tid);
    OK(db, bn_db_tenant_get(db, ref, &t));
    assert_string_equal(t.status, "erased");
    assert_string_equal(t.stripe_customer, "");
    assert_int_equal(t.n_keys, 0);
    char q[256], v[64];
    snprintf(q, sizeof q,
             "SELECT count(*) || ':' || sum(requests) || ':' || count(request_id) "
             "FROM usage WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "1:2:0"); /* one anonymous row, the counts kept */
    snprintf(q, sizeof q, "SELECT count(*) FROM billing_outbox WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "0");
    raw("all", "SELECT details FROM audit WHERE action = 'tenant.erase' ORDER BY id DESC LIMIT 1",
        v, sizeof v);
    assert_non_null(strstr(v, "\"unbilled_events\": 2"));
    int64_t n, bad;
    OK(db, bn_db_audit_verify(db, &n, &bad, NULL, 0));
    assert_int_equal(bad, 0);

    assert_int_equal(bn_db_tenant_delete(db, "test", ref), BN_ERR_INVALID); /* billing data */
    OK(db, bn_db_tenant_add(db, "test", nm("delete"), "team", NULL, &other));
    OK(db, bn_db_tenant_delete(db, "test", nm("delete")));
    assert_int_equal(bn_db_tenant_get(db, nm("delete"), &t), BN_ERR_NOT_FOUND);
    bn_db_close(db);
}

static void test_requeue(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t tid, n;
    OK(db, bn_db_tenant_add(db, "test", nm("requeue"), "team", "cus_requeue", &tid));
    bn_usage_rec r = rec(nm("rq"), tid);
    OK(db, bn_db_usage_record(db, &r, NULL));
    char q[256], v[32];
    snprintf(q, sizeof q, "UPDATE billing_outbox SET state = 'failed' WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    OK(db, bn_db_outbox_requeue(db, "test", tid, 1000, &n));
    assert_int_equal(n, 1);
    snprintf(q, sizeof q, "SELECT state FROM billing_outbox WHERE tenant_id = %lld",
             (long long)tid);
    raw("all", q, v, sizeof v);
    assert_string_equal(v, "pending");
    OK(db, bn_db_outbox_requeue(db, "test", tid, 1000, &n));
    assert_int_equal(n, 0);
    bn_db_close(db);
}

/* ---- what it does not do -------------------------------------------------------------------- */

static void test_unsupported(void **state)
{
    (void)state;
    bn_db *db = open_db();
    int64_t id;
    assert_int_equal(bn_db_run_begin(db, "generate", NULL, NULL, NULL, &id), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_db_errmsg(db), "PostgreSQL"));
    bn_db_close(db);
}

/* ---- round trips ---------------------------------------------------------------------------- */

/* The round trips the proxy of tests/cli/pg_turns.py counted so far. */
/* The proxy's count: of round trips (suffix ""), or of Parse messages (".parse"). */
static long proxy_count(const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", getenv("BITNET_TEST_PG_TURNS"), suffix);
    FILE *f = fopen(path, "r");
    long n = -1;
    if (f && fscanf(f, "%ld", &n) != 1) n = -1;
    if (f) fclose(f);
    assert_true(n >= 0);
    return n;
}

static long turns(void)
{
    return proxy_count("");
}

/* A key lookup (the request path of serve --tenants) is one round trip: BEGIN, the scope, the
 * query and COMMIT pipelined, counted by a proxy ($BITNET_TEST_PG_TURNS_URL, its count in
 * $BITNET_TEST_PG_TURNS), where one after the other took four. So are a read of the ledger's
 * totals, the ledger row of a request with its meter event (five before), and the billing
 * sender's claim and acknowledgement of an event (five before). Each statement is prepared
 * on the connection once: sent again, nothing is parsed (the proxy counts Parse messages;
 * every statement was parsed each time before). (A broken connection found by the pipeline
 * is remade: test_serve_pg.sh's restarts.) */
static void test_round_trips(void **state)
{
    (void)state;
    const char *purl = getenv("BITNET_TEST_PG_TURNS_URL");
    if (!url() || !purl || !getenv("BITNET_TEST_PG_TURNS")) skip();
    bn_db *db;
    if (bn_db_open_pg_url(&db, purl) != BN_OK) fail_msg("open: %s", bn_db_errmsg(db));
    int64_t tid, kid;
    char key[BN_KEY_STR_MAX];
    OK(db, bn_db_tenant_add(db, "test", nm("trips"), "team", "cus_trips", &tid));
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_INFERENCE, 0, key, &kid));
    bn_key_auth a;
    OK(db, bn_db_key_lookup(db, key, &a)); /* its first use is written too */
    const long t0 = turns(), p0 = proxy_count(".parse");
    OK(db, bn_db_key_lookup(db, key, &a));
    assert_int_equal(a.reason, BN_KEY_OK);
    assert_int_equal(a.key_id, kid);
    assert_int_equal(turns() - t0, 1);
    assert_int_equal(proxy_count(".parse") - p0, 0);
    bn_usage_total u;
    const long t1 = turns();
    OK(db, bn_db_usage_total(db, tid, 0, 0, &u));
    assert_int_equal(turns() - t1, 1);
    bn_outbox_event left[64];
    size_t n_left;
    do { /* earlier tests' events out of the way: the claims below find this one alone */
        OK(db, bn_db_outbox_claim(db, (int64_t)time(NULL) * 1000 + 2000, 60000, left, 64, &n_left));
        for (size_t i = 0; i < n_left; i++)
            OK(db, bn_db_outbox_ack(db, left[i].id, 0, (int64_t)time(NULL) * 1000));
    } while (n_left);
    for (int i = 0; i < 2; i++) { /* the second time, nothing is parsed */
        char id[32];
        snprintf(id, sizeof id, "trip-%d", i);
        const bn_usage_rec r = {.request_id = nm(id),
                                .tenant_id = tid,
                                .model = "m",
                                .prompt_tokens = 3,
                                .completion_tokens = 4,
                                .status = "ok"};
        int fresh;
        bn_outbox_event e[4];
        size_t n;
        const long t2 = turns(), p2 = proxy_count(".parse");
        OK(db, bn_db_usage_record(db, &r, &fresh));
        assert_int_equal(fresh, 1);
        assert_int_equal(turns() - t2, 1);
        const long t3 = turns();
        OK(db, bn_db_outbox_claim(db, (int64_t)time(NULL) * 1000 + 2000, 60000, e, 4, &n));
        assert_int_equal(turns() - t3, 1);
        assert_int_equal(n, 1);
        assert_int_equal(e[0].value, 7);
        const long t4 = turns();
        OK(db, bn_db_outbox_ack(db, e[0].id, 0, (int64_t)time(NULL) * 1000));
        assert_int_equal(turns() - t4, 1);
        if (i) assert_int_equal(proxy_count(".parse") - p2, 0);
    }
    bn_db_close(db);
}

/* ---- retention ------------------------------------------------------------------------------ */

/* One value of a query (printf-style) as a number, with the scope of all. */
static long long num(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long num(const char *fmt, ...)
{
    char sql[512], v[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    raw("all", sql, v, sizeof v);
    return atoll(v);
}

/* Records a row of tid for request id at at_ms (the handle's clock set there). */
static void record_at(bn_db *db, int64_t tid, const char *id, const char *model, int64_t at_ms)
{
    bn_db_options o = bn_db_options_default();
    o.now_ms = at_ms;
    bn_db_set_retention(db, &o);
    const bn_usage_rec r = {.request_id = nm(id),
                            .tenant_id = tid,
                            .model = model,
                            .prompt_tokens = 10,
                            .completion_tokens = 5,
                            .duration_ms = 7,
                            .status = "ok"};
    int fresh;
    OK(db, bn_db_usage_record(db, &r, &fresh));
    assert_int_equal(fresh, 1);
}

/* The history's periods on PostgreSQL (retention.c's cutoffs): ledger rows of days that ended
 * over 30 days ago folded per tenant, UTC day and model (totals unchanged), a key revoked 400
 * days ago deleted, the active one kept, the meter events kept whole (pending ones too), each
 * table's transaction audited with the chain still verifying; a dry run changes nothing; again
 * finds nothing; the daily gate kept in bitnet_meta for every replica. */
static void test_retention(void **state)
{
    (void)state;
    bn_db *db = open_db();
    const int64_t day = 86400000, now = (int64_t)time(NULL) * 1000;
    const int64_t d0 = (now / day - 400) * day + 3600000; /* 01:00 UTC, 400 days ago */
    int64_t tid, k_old, k_new, n, bad;
    char key[BN_KEY_STR_MAX], why[128];
    bn_db_options o = bn_db_options_default();
    o.now_ms = d0;
    bn_db_set_retention(db, &o);
    OK(db, bn_db_tenant_add(db, "test", nm("kept"), "team", "cus_kept", &tid));
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_INFERENCE, 0, key, &k_old));
    OK(db, bn_db_key_revoke(db, "test", k_old));
    OK(db, bn_db_key_create(db, "test", tid, BN_SCOPE_INFERENCE, 0, key, &k_new));
    record_at(db, tid, "r1", "m", d0);
    record_at(db, tid, "r2", "m", d0 + 3600000);  /* the same day and model */
    record_at(db, tid, "r3", "m2", d0 + 7200000); /* another model */
    record_at(db, tid, "r4", "m", d0 + day);      /* the next day */
    record_at(db, tid, "r5", "m", now - 1000);    /* recent: kept as it is */
    bn_usage_total before, after;
    OK(db, bn_db_usage_total(db, tid, 0, 0, &before));
    const long long audits = num("SELECT count(*) FROM audit");
    o.now_ms = 0, o.ledger_days = 30, o.keys_days = 30;
    bn_db_set_retention(db, &o);

    bn_retention_counts c;
    OK(db, bn_db_retention_apply(db, 1, &c));
    assert_int_equal(c.ledger_rows, 4);
    assert_int_equal(c.ledger_aggregates, 3);
    assert_int_equal(c.keys, 1);
    assert_int_equal(num("SELECT count(*) FROM usage WHERE tenant_id = %lld", (long long)tid), 5);
    assert_int_equal(num("SELECT count(*) FROM api_keys WHERE tenant_id = %lld", (long long)tid),
                     2);

    OK(db, bn_db_retention_apply(db, 0, &c));
    assert_int_equal(c.ledger_rows, 4);
    assert_int_equal(c.ledger_aggregates, 3);
    assert_int_equal(c.keys, 1);
    assert_int_equal(num("SELECT count(*) FROM usage WHERE tenant_id = %lld AND status = "
                         "'aggregate' AND request_id IS NULL AND key_id IS NULL",
                         (long long)tid),
                     3);
    assert_int_equal(num("SELECT sum(requests) FROM usage WHERE tenant_id = %lld AND status = "
                         "'aggregate'",
                         (long long)tid),
                     4);
    assert_int_equal(num("SELECT count(*) FROM usage WHERE tenant_id = %lld", (long long)tid), 4);
    OK(db, bn_db_usage_total(db, tid, 0, 0, &after));
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(num("SELECT count(*) FROM api_keys WHERE tenant_id = %lld", (long long)tid),
                     1);
    assert_int_equal(num("SELECT min(id) FROM api_keys WHERE tenant_id = %lld", (long long)tid),
                     k_new);
    assert_int_equal(num("SELECT count(*) FROM billing_outbox WHERE tenant_id = %lld AND "
                         "state = 'pending'",
                         (long long)tid),
                     5);
    assert_int_equal(num("SELECT count(*) FROM audit"), audits + 2);
    /* the last two entries: the ledger's step, then the keys' */
    assert_int_equal(num("SELECT (string_agg(details::json->>'ledger_rows' || '/' || "
                         "(details::json->>'keys'), ',' ORDER BY id) = '4/0,0/1')::int FROM "
                         "(SELECT * FROM audit ORDER BY id DESC LIMIT 2) a WHERE action = "
                         "'retention.apply' AND actor = 'system:retention'"),
                     1);
    OK(db, bn_db_audit_verify(db, &n, &bad, why, sizeof why));
    assert_int_equal(bad, 0);

    OK(db, bn_db_retention_apply(db, 0, &c));
    assert_int_equal(c.ledger_rows + c.ledger_aggregates + c.keys, 0);
    int applied = 1;
    OK(db, bn_db_retention_daily(db, &applied, &c)); /* applied just now: not due */
    assert_int_equal(applied, 0);
    char v[32];
    raw(NULL,
        "UPDATE bitnet_meta SET value = value - 2 * 86400000 WHERE key = "
        "'retention_applied_ms' RETURNING 'x'",
        v, sizeof v);
    assert_string_equal(v, "x");
    OK(db, bn_db_retention_daily(db, &applied, &c));
    assert_int_equal(applied, 1);
    assert_int_equal(c.ledger_rows, 0);
    bn_db_close(db);
}

int main(void)
{
    if (!url())
        fprintf(stderr, "test_db_pg: every test skips: BITNET_TEST_PG_URL is not set "
                        "(tests/cli/test_serve_pg.sh sets it)\n");
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_migrations),
            cmocka_unit_test(test_keys),
            cmocka_unit_test(test_usage_idempotent),
            cmocka_unit_test(test_usage_batch),
            cmocka_unit_test(test_pool_threads),
            cmocka_unit_test(test_rls),
            cmocka_unit_test(test_audit_outbox),
            cmocka_unit_test(test_erase_export),
            cmocka_unit_test(test_requeue),
            cmocka_unit_test(test_unsupported),
            cmocka_unit_test(test_retention),
            cmocka_unit_test(test_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
