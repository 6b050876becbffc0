/* test_retention.c - the retention periods of the store's tables (bitnet/db.h): the usage
 * ledger folded per tenant, day and model (the report per tenant and day, and its totals,
 * unchanged; a dry run changes nothing; the cut at a UTC midnight; folding twice folds
 * nothing more; erase after it keeps the totals), revoked and expired keys deleted (active
 * and recently revoked kept), the audit entry and chain, and the once-a-day gate on open. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/db.h"
#include "bitnet/db_tenants.h"
#include "test_util.h"
#include "store_fx.h"

#define NOW ((int64_t)1781524800000) /* 2026-06-15T12:00:00Z */
#define DAY ((int64_t)86400000)

/* The store at path at time now with the periods (days) of runs, ledger and keys. */
static bn_db *open_with(const char *path, int64_t now, int ledger_days, int keys_days)
{
    bn_db *db;
    bn_db_options o = bn_db_options_default();
    o.now_ms = now;
    o.ledger_days = ledger_days;
    o.keys_days = keys_days;
    bn_status s = bn_db_open(&db, path, &o);
    if (s != BN_OK) fprintf(stderr, "open: %s\n", bn_db_errmsg(db));
    assert_int_equal(s, BN_OK);
    return db;
}

/* The first column of sql's first row, through a connection of its own. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *s;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

static void rec(bn_db *db, int64_t tid, const char *id, const char *model, int64_t p, int64_t c,
                int64_t at)
{
    bn_usage_rec r = {.request_id = id,
                      .tenant_id = tid,
                      .key_id = 1,
                      .model = model,
                      .prompt_tokens = p,
                      .completion_tokens = c,
                      .duration_ms = 5,
                      .status = "ok",
                      .at_ms = at};
    int fresh = 0;
    ok(db, bn_db_usage_record(db, &r, &fresh));
    assert_int_equal(fresh, 1);
}

/* The report per tenant and day as text lines, into buf. */
static int report_line(void *ud, const bn_usage_day *d)
{
    char *buf = ud;
    const size_t n = strlen(buf);
    snprintf(buf + n, 4096 - n, "%lld %s %lld %lld %lld\n", (long long)d->tenant_id, d->day,
             (long long)d->requests, (long long)d->prompt_tokens, (long long)d->completion_tokens);
    return 0;
}

static void report(bn_db *db, char buf[4096])
{
    buf[0] = '\0';
    ok(db, bn_db_usage_report(db, 0, 0, 0, report_line, buf));
}

/* Two tenants' rows: 7 before the cut (the UTC midnight 30 days back: 2026-05-16), 3 after. */
static void fill(bn_db *db, const char *f_path, int64_t *ta, int64_t *tb)
{
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, ta));
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "developer", NULL, tb));
    const int64_t cut = NOW - 30 * DAY - 12 * 3600000; /* 2026-05-16T00:00:00Z */
    rec(db, *ta, "old-1", "m1", 10, 20, cut - 9 * DAY);
    rec(db, *ta, "old-2", "m1", 1, 2, cut - 9 * DAY + 3600000);
    rec(db, *ta, "old-3", "m2", 100, 200, cut - 9 * DAY + 7200000);
    rec(db, *ta, "old-4", "m1", 5, 5, cut - 1); /* the last millisecond before the cut */
    rec(db, *tb, "old-5", "m1", 7, 3, cut - 2 * DAY);
    rec(db, *tb, "old-6", "m1", 7, 3, cut - 2 * DAY + 1000);
    char sql[256]; /* one written by another process, as the sqlite3 command would */
    snprintf(sql, sizeof sql,
             "INSERT INTO usage (request_id, tenant_id, key_id, model, prompt_tokens, "
             "completion_tokens, duration_ms, status, at) VALUES ('old-7', %lld, NULL, 'm1', 1, 1, "
             "5, 'ok', %lld)",
             (long long)*tb, (long long)(cut - 40 * DAY));
    raw_exec(f_path, sql);
    rec(db, *ta, "new-1", "m1", 9, 9, cut);
    rec(db, *ta, "new-2", "m1", 9, 9, NOW - DAY);
    rec(db, *tb, "new-3", "m1", 4, 4, NOW - 1000);
}

static void test_ledger_fold(void **state)
{
    fx *f = *state;
    int64_t ta, tb;
    bn_db *db = open_at(f->path, NOW);
    fill(db, f->path, &ta, &tb);
    char before[4096], after[4096];
    report(db, before);
    bn_usage_total t0, t1;
    ok(db, bn_db_usage_total(db, 0, 0, 0, &t0));
    bn_db_close(db);

    db = open_with(f->path, NOW, 30, 0); /* applied at the first open today: not again */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage"), 10);
    bn_retention_counts c;
    ok(db, bn_db_retention_apply(db, 1, &c)); /* a dry run: counts, no change */
    assert_int_equal(c.ledger_rows, 7);
    assert_int_equal(c.ledger_aggregates, 5); /* acme: day 1 m1, m2; day 2 m1; globex: 2 days */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage"), 10);
    const int64_t n_audit = raw_int(f->path, "SELECT count(*) FROM audit");

    ok(db, bn_db_retention_apply(db, 0, &c));
    assert_int_equal(c.ledger_rows, 7);
    assert_int_equal(c.ledger_aggregates, 5);
    assert_int_equal(c.keys, 0);
    report(db, after);
    assert_string_equal(after, before); /* per tenant and day: the same */
    ok(db, bn_db_usage_total(db, 0, 0, 0, &t1));
    assert_memory_equal(&t0, &t1, sizeof t0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE request_id LIKE 'old-%'"),
                     0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE status = 'aggregate' "
                                      "AND key_id IS NULL AND request_id IS NULL"),
                     5);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE request_id LIKE 'new-%'"),
                     3);
    assert_int_equal(raw_int(f->path, "SELECT sum(requests) FROM usage WHERE tenant_id = 1 AND "
                                      "model = 'm1' AND at < 1778889600000"),
                     3);

    /* audited, the chain intact */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), n_audit + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE action = "
                                      "'retention.apply' AND actor = 'system:retention'"),
                     1);
    int64_t n, bad = -1;
    char why[128];
    ok(db, bn_db_audit_verify(db, &n, &bad, why, sizeof why));
    assert_int_equal(bad, 0);

    /* again: nothing more to fold, no entry */
    ok(db, bn_db_retention_apply(db, 0, &c));
    assert_int_equal(c.ledger_rows, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), n_audit + 1);

    /* a recent request id is still known; erase folds the aggregates too, totals kept */
    bn_usage_rec r = {.request_id = "new-1", .tenant_id = ta, .model = "m1", .status = "ok"};
    int fresh = 1;
    ok(db, bn_db_usage_record(db, &r, &fresh));
    assert_int_equal(fresh, 0);
    ok(db, bn_db_tenant_erase(db, "cli:t", "acme"));
    report(db, after);
    assert_string_equal(after, before);
    bn_db_close(db);
}

static void test_keys(void **state)
{
    fx *f = *state;
    char key[BN_KEY_STR_MAX];
    int64_t tid, k_old, k_exp, k_recent, k_live;
    bn_db *db = open_at(f->path, NOW - 100 * DAY);
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, &tid));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, 0, key, &k_old));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, NOW - 95 * DAY, key, &k_exp));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, 0, key, &k_recent));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, NOW + DAY, key, &k_live));
    ok(db, bn_db_key_revoke(db, "cli:t", k_old));
    bn_db_close(db);
    db = open_at(f->path, NOW - 10 * DAY);
    ok(db, bn_db_key_revoke(db, "cli:t", k_recent));
    bn_db_close(db);

    bn_db_close(open_at(f->path, NOW)); /* today's retention: no key period */
    db = open_with(f->path, NOW, 0, 30);
    bn_retention_counts c;
    ok(db, bn_db_retention_apply(db, 0, &c));
    bn_db_close(db);
    assert_int_equal(c.keys, 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM api_keys"), 2);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM api_keys WHERE id IN (%lld, %lld)",
             (long long)k_recent, (long long)k_live);
    assert_int_equal(raw_int(f->path, sql), 2);
    (void)k_exp;
}

static void test_daily(void **state)
{
    fx *f = *state;
    int64_t tid;
    bn_db *db = open_with(f->path, NOW, 30, 0); /* the first open applies (nothing) */
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, &tid));
    rec(db, tid, "old", "m", 1, 1, NOW - 40 * DAY);
    int applied = 1;
    bn_retention_counts c;
    ok(db, bn_db_retention_daily(db, &applied, &c));
    assert_int_equal(applied, 0); /* applied less than a day ago */
    bn_db_close(db);
    db = open_with(f->path, NOW + DAY - 1, 30, 0);
    bn_db_close(db);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE request_id = 'old'"), 1);
    db = open_with(f->path, NOW + DAY, 30, 0); /* a day later: the open applies it */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE request_id = 'old'"), 0);
    ok(db, bn_db_retention_daily(db, &applied, &c));
    assert_int_equal(applied, 0);
    bn_db_close(db);
    /* no period set: nothing applied, nothing recorded */
    db = open_with(f->path, NOW + 5 * DAY, 0, 0);
    bn_db_close(db);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM usage WHERE status = 'aggregate'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_ledger_fold, setup, teardown),
            cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_daily, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
