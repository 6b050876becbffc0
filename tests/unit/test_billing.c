/* test_billing.c - the billing outbox of the platform's store (bitnet/db_tenants.h, migration
 * 6): a ledger row's meter event is written in its transaction (a failing outbox insert
 * takes the ledger row back), once per request id, only for tenants with a Stripe customer and
 * requests with tokens; claims lease events (a second sender gets none until the lease runs
 * out); retry, ack (duplicates) and fail move them; counts and the reconciliation of the
 * ledger with what was acknowledged; export shows a tenant's events and erase deletes them
 * (the unsent ones counted in its audit entry); a store of schema 5 gains the table, one of
 * schema 6 the index of pending ids the claims read (migration 7). The sender's
 * pure parts (common/billing.h): the form body (encoding, fields), what each answer means, the
 * backoff's bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bitnet/db.h"
#include "bitnet/db_tenants.h"
#include "common/backoff.h"
#include "common/billing.h"
#include "../../db/db_int.h" /* the handle's sqlite connection: the claim's query plan */
#include "test_util.h"
#include "store_fx.h"

#define T0 ((int64_t)1780000000000) /* 2026-05-28T20:26:40Z */

/* Records request id for tenant tid with p + c tokens at T0 + dt; fresh into *fresh. */
static bn_status record(bn_db *db, int64_t tid, const char *id, int64_t p, int64_t c, int64_t dt,
                        int *fresh)
{
    bn_usage_rec u = {.request_id = id,
                      .tenant_id = tid,
                      .key_id = 0,
                      .model = "m",
                      .prompt_tokens = p,
                      .completion_tokens = c,
                      .duration_ms = 5,
                      .status = "ok",
                      .at_ms = T0 + dt};
    return bn_db_usage_record(db, &u, fresh);
}

static bn_outbox_counts counts(bn_db *db, int64_t now)
{
    bn_outbox_counts c;
    ok(db, bn_db_outbox_counts(db, now, &c));
    return c;
}

static void test_written_with_the_ledger(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a, b;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", &a));
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "team", NULL, &b));
    int fresh = -1;
    ok(db, record(db, a, "req-1", 10, 5, 0, &fresh));
    assert_int_equal(fresh, 1);
    ok(db, record(db, a, "req-1", 99, 99, 0, &fresh)); /* the same request: nothing new */
    assert_int_equal(fresh, 0);
    ok(db, record(db, a, "req-0", 0, 0, 0, NULL)); /* no tokens: nothing to bill */
    ok(db, record(db, b, "req-2", 7, 7, 0, NULL)); /* no Stripe customer */
    bn_outbox_counts c = counts(db, T0);
    assert_int_equal(c.pending, 1);
    assert_int_equal(c.pending_value, 15);
    assert_int_equal(c.due, 1);
    assert_int_equal(c.acked + c.failed, 0);
    assert_int_equal(c.oldest_pending_ms, T0);
    bn_outbox_event e[4];
    size_t n;
    ok(db, bn_db_outbox_claim(db, T0, 1000, e, 4, &n));
    assert_int_equal(n, 1);
    assert_string_equal(e[0].event_id, "req-1");
    assert_string_equal(e[0].customer, "cus_A");
    assert_int_equal(e[0].tenant_id, a);
    assert_int_equal(e[0].value, 15);
    assert_int_equal(e[0].at_ms, T0);
    assert_int_equal(e[0].attempts, 0);

    /* a request id over 100 bytes: "bn-" and its SHA-256 */
    char longid[160];
    memset(longid, 'x', 150);
    longid[150] = '\0';
    ok(db, record(db, a, longid, 1, 1, 0, NULL));
    ok(db, bn_db_outbox_claim(db, T0, 1000, e, 4, &n));
    assert_int_equal(n, 1);
    assert_int_equal(strlen(e[0].event_id), 3 + 64);
    assert_memory_equal(e[0].event_id, "bn-", 3);

    /* one transaction: when the outbox refuses its row, the ledger row is not written */
    raw_exec(f->path, "CREATE TRIGGER no_events BEFORE INSERT ON billing_outbox "
                      "BEGIN SELECT RAISE(ABORT, 'outbox full'); END;");
    assert_int_not_equal(record(db, a, "req-3", 3, 3, 0, &fresh), BN_OK);
    assert_non_null(strstr(bn_db_errmsg(db), "outbox full"));
    bn_usage_total t;
    ok(db, bn_db_usage_total(db, a, 0, 0, &t));
    assert_int_equal(t.requests, 3); /* req-1, req-0, the long one: not req-3 */
    raw_exec(f->path, "DROP TRIGGER no_events");
    ok(db, record(db, a, "req-3", 3, 3, 0, &fresh));
    assert_int_equal(fresh, 1);
    assert_int_equal(counts(db, T0).pending, 3);
    bn_db_close(db);
}

static int retry_audit(void *ud, const bn_audit_entry *e)
{
    if (!strcmp(e->action, "billing.retry")) snprintf(ud, 128, "%s %s", e->target, e->details);
    return 0;
}

/* A store at f->path with tenant acme (*a) and its meter events r1, r2, r3 (2, 4, 6 tokens). */
static bn_db *acme_with_three(fx *f, int64_t *a)
{
    bn_db *db = open_at(f->path, T0);
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", a));
    ok(db, record(db, *a, "r1", 1, 1, 0, NULL));
    ok(db, record(db, *a, "r2", 2, 2, 0, NULL));
    ok(db, record(db, *a, "r3", 3, 3, 0, NULL));
    return db;
}

/* bn_db_usage_record_n on the history (serve's ledger writer uses it on both stores): each row
 * as bn_db_usage_record would write it, a malformed one and one there before told apart, rows
 * of two tenants refused whole. */
static void test_record_n(void **state)
{
    fx *f = *state;
    int64_t a, b;
    bn_db *db = acme_with_three(f, &a); /* r1..r3, 3 meter events */
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "team", NULL, &b));
    bn_usage_rec r[3] = {{.request_id = "n1", .tenant_id = a, .model = "m", .prompt_tokens = 4,
                          .completion_tokens = 5, .status = "ok"},
                         {.request_id = "r2", .tenant_id = a, .model = "m", .prompt_tokens = 9,
                          .completion_tokens = 9, .status = "ok"},
                         {.request_id = "n3", .tenant_id = a, .model = "m", .status = ""}};
    const bn_usage_rec *p[3] = {&r[0], &r[1], &r[2]};
    int fresh[3];
    bn_status each[3];
    ok(db, bn_db_usage_record_n(db, p, 3, fresh, each));
    assert_int_equal(fresh[0], 1);
    assert_int_equal(each[0], BN_OK);
    assert_int_equal(fresh[1], 0); /* there before: the first record wins */
    assert_int_equal(each[1], BN_OK);
    assert_int_equal(each[2], BN_ERR_INVALID);
    bn_outbox_counts c = counts(db, T0 + 1);
    assert_int_equal(c.pending, 4);
    assert_int_equal(c.pending_value, 2 + 4 + 6 + 9);
    bn_usage_rec g = {.request_id = "g1", .tenant_id = b, .model = "m", .status = "ok"};
    const bn_usage_rec *mixed[2] = {&r[0], &g};
    assert_int_equal(bn_db_usage_record_n(db, mixed, 2, fresh, each), BN_ERR_INVALID);
    bn_db_close(db);
}

static void test_claim_lease_retry_ack_fail(void **state)
{
    fx *f = *state;
    int64_t a;
    bn_db *db = acme_with_three(f, &a);
    bn_outbox_event e[8];
    size_t n;
    ok(db, bn_db_outbox_claim(db, T0, 5000, e, 2, &n)); /* max_n bounds it, oldest first */
    assert_int_equal(n, 2);
    assert_string_equal(e[0].event_id, "r1");
    assert_string_equal(e[1].event_id, "r2");
    const int64_t id1 = e[0].id, id2 = e[1].id;
    /* another sender (its own handle) gets only what is not leased */
    bn_db *db2 = open_at(f->path, T0);
    ok(db2, bn_db_outbox_claim(db2, T0 + 10, 5000, e, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(e[0].event_id, "r3");
    const int64_t id3 = e[0].id;
    ok(db2, bn_db_outbox_claim(db2, T0 + 20, 5000, e, 8, &n));
    assert_int_equal(n, 0);
    /* the first sender dies: its lease runs out and the events are due again */
    ok(db2, bn_db_outbox_claim(db2, T0 + 5000, 5000, e, 8, &n));
    assert_int_equal(n, 2);
    assert_int_equal(e[0].id, id1);
    /* given back unsent: due again at once for any sender, no attempt counted */
    const int64_t back[] = {id1, id2};
    ok(db2, bn_db_outbox_release(db2, back, 2));
    ok(db, bn_db_outbox_claim(db, T0 + 5001, 5000, e, 8, &n));
    assert_int_equal(n, 2);
    assert_int_equal(e[0].id, id1);
    assert_int_equal(e[1].attempts, 0);

    /* a failure that may pass: due again at next_ms, attempts counted, error kept */
    ok(db, bn_db_outbox_retry(db, id1, T0 + 60000, "HTTP 500: boom"));
    bn_outbox_counts c = counts(db, T0 + 6000);
    assert_int_equal(c.pending, 3);
    assert_int_equal(c.retrying, 1);
    assert_int_equal(c.due, 2);
    assert_string_equal(c.last_error, "HTTP 500: boom");
    /* acknowledged together; one not in the outbox does not stop the others */
    const int64_t acked[] = {id2, 987654321};
    const int dups[] = {0, 0}, dup1[] = {1};
    assert_int_equal(bn_db_outbox_ack_n(db, acked, dups, 2, T0 + 6000), BN_ERR_NOT_FOUND);
    ok(db, bn_db_outbox_ack_n(db, &id3, dup1, 1, T0 + 6000)); /* Stripe had it already */
    ok(db, bn_db_outbox_claim(db, T0 + 59999, 5000, e, 8, &n));
    assert_int_equal(n, 0); /* r1 is not due yet; the others are acknowledged */
    ok(db, bn_db_outbox_claim(db, T0 + 60000, 5000, e, 8, &n));
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, id1);
    assert_int_equal(e[0].attempts, 1);
    ok(db, bn_db_outbox_fail(db, id1, "HTTP 400: No such customer"));
    ok(db, bn_db_outbox_claim(db, T0 + 99999999, 5000, e, 8, &n));
    assert_int_equal(n, 0); /* failed for good: never claimed again */
    /* late answers change nothing: a retry of a failed or acknowledged event, a second ack */
    ok(db, bn_db_outbox_retry(db, id2, T0, "late"));
    ok(db, bn_db_outbox_ack(db, id2, 1, T0 + 7000));
    c = counts(db, T0 + 99999999);
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.acked, 2);
    assert_int_equal(c.duplicates, 1);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.acked_value, 4 + 6);
    assert_int_equal(c.failed_value, 2);
    assert_int_equal(c.oldest_pending_ms, 0);
    assert_string_equal(c.last_error, "HTTP 400: No such customer");
    /* put back (a meter created at last): due again, its attempts and error kept; audited */
    int64_t nq;
    ok(db, bn_db_outbox_requeue(db, "cli:t", a + 1, T0, &nq));
    assert_int_equal(nq, 0); /* another tenant's: none */
    ok(db, bn_db_outbox_requeue(db, "cli:t", 0, T0 + 100000000, &nq));
    assert_int_equal(nq, 1);
    ok(db, bn_db_outbox_claim(db, T0 + 100000000, 5000, e, 8, &n));
    assert_int_equal(n, 1);
    assert_int_equal(e[0].id, id1);
    assert_int_equal(e[0].attempts, 2);
    ok(db, bn_db_outbox_fail(db, id1, "HTTP 400: No such customer"));
    char details[128] = "";
    ok(db, bn_db_audit_list(db, retry_audit, details));
    assert_string_equal(details, "billing {\"events\":1}");
    assert_int_equal(bn_db_outbox_ack(db, 999, 0, T0), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_outbox_retry(db, 999, T0, "x"), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_outbox_fail(db, 999, "x"), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_db_outbox_claim(db, T0, 0, e, 8, &n), BN_ERR_INVALID);
    bn_db_close(db2);
    bn_db_close(db);
}

typedef struct rows {
    int n;
    bn_billing_row r[8];
    char names[8][32];
} rows;

static int row_cb(void *ud, const bn_billing_row *r)
{
    rows *rs = ud;
    if (rs->n == 8) return 1;
    snprintf(rs->names[rs->n], sizeof rs->names[0], "%s", r->tenant_name);
    rs->r[rs->n] = *r;
    rs->r[rs->n].tenant_name = rs->names[rs->n];
    rs->r[rs->n].customer = "";
    rs->n++;
    return 0;
}

static void test_reconcile(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a, b, c;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", &a));
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "team", NULL, &b));
    ok(db, bn_db_tenant_add(db, "cli:t", "initech", "team", "cus_C", &c));
    ok(db, record(db, a, "a1", 10, 20, 0, NULL));
    ok(db, record(db, a, "a2", 1, 2, 86400000, NULL)); /* the next day */
    ok(db, record(db, b, "b1", 5, 5, 0, NULL));        /* globex: not billed through Stripe */
    rows rs = {0};
    ok(db, bn_db_billing_reconcile(db, 0, 0, 0, row_cb, &rs));
    assert_int_equal(rs.n, 2); /* acme and initech (a customer, no usage) */
    assert_string_equal(rs.r[0].tenant_name, "acme");
    assert_int_equal(rs.r[0].ledger_requests, 2);
    assert_int_equal(rs.r[0].ledger_tokens, 33);
    assert_int_equal(rs.r[0].events, 2);
    assert_int_equal(rs.r[0].queued_tokens, 33);
    assert_int_equal(rs.r[0].pending_tokens, 33);
    assert_int_equal(rs.r[0].acked_tokens, 0);
    assert_string_equal(rs.r[1].tenant_name, "initech");
    assert_int_equal(rs.r[1].ledger_tokens + rs.r[1].events, 0);

    bn_outbox_event e[4];
    size_t n;
    ok(db, bn_db_outbox_claim(db, T0, 1000, e, 4, &n));
    assert_int_equal(n, 2);
    ok(db, bn_db_outbox_ack(db, e[0].id, 0, T0));
    ok(db, bn_db_outbox_fail(db, e[1].id, "refused"));
    memset(&rs, 0, sizeof rs);
    ok(db, bn_db_billing_reconcile(db, a, 0, 0, row_cb, &rs));
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].acked_tokens, 30);
    assert_int_equal(rs.r[0].failed_tokens, 3);
    assert_int_equal(rs.r[0].pending_tokens, 0);
    /* a window of the first day only: both sides cut the same way */
    memset(&rs, 0, sizeof rs);
    ok(db, bn_db_billing_reconcile(db, a, T0, T0 + 86400000, row_cb, &rs));
    assert_int_equal(rs.r[0].ledger_tokens, 30);
    assert_int_equal(rs.r[0].acked_tokens, 30);
    assert_int_equal(rs.r[0].failed_tokens, 0);
    /* one tenant asked for by id is reported even without a customer */
    memset(&rs, 0, sizeof rs);
    ok(db, bn_db_billing_reconcile(db, b, 0, 0, row_cb, &rs));
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].ledger_tokens, 10);
    assert_int_equal(rs.r[0].events, 0);
    bn_db_close(db);
}

static int last_audit(void *ud, const bn_audit_entry *e)
{
    if (!strcmp(e->action, "tenant.erase")) snprintf(ud, 128, "%s", e->details);
    return 0;
}

/* Export shows the tenant's meter events; erase deletes them (those unsent too: they name the
 * customer), counting the unsent ones in its audit entry, and reconcile then passes it over. */
static void test_erase_export(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", &a));
    ok(db, record(db, a, "r1", 1, 2, 0, NULL));
    ok(db, record(db, a, "r2", 3, 4, 0, NULL));
    bn_outbox_event e[2];
    size_t n;
    ok(db, bn_db_outbox_claim(db, T0, 1000, e, 1, &n));
    ok(db, bn_db_outbox_ack(db, e[0].id, 0, T0));
    char *json = NULL;
    ok(db, bn_db_tenant_export(db, "cli:t", "acme", &json));
    cJSON *doc = cJSON_Parse(json);
    const cJSON *ev = cJSON_GetObjectItem(doc, "billing_events");
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    const cJSON *e0 = cJSON_GetArrayItem(ev, 0);
    assert_string_equal(cJSON_GetObjectItem(e0, "event_id")->valuestring, "r1");
    assert_string_equal(cJSON_GetObjectItem(e0, "state")->valuestring, "acked");
    assert_string_equal(cJSON_GetObjectItem(e0, "stripe_customer")->valuestring, "cus_A");
    assert_int_equal(cJSON_GetObjectItem(e0, "value")->valueint, 3);
    cJSON_Delete(doc);
    bn_free(json);

    ok(db, bn_db_tenant_erase(db, "cli:t", "acme"));
    char details[128] = "";
    ok(db, bn_db_audit_list(db, last_audit, details));
    cJSON *d = cJSON_Parse(details);
    assert_int_equal(cJSON_GetObjectItem(d, "unbilled_events")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(d, "unbilled_tokens")->valueint, 7);
    cJSON_Delete(d);
    assert_int_equal(counts(db, T0).pending + counts(db, T0).acked, 0);
    char name[32];
    snprintf(name, sizeof name, "erased-%lld", (long long)a);
    ok(db, bn_db_tenant_export(db, "cli:t", name, &json));
    assert_null(strstr(json, "cus_A"));
    assert_null(strstr(json, "\"r1\""));
    bn_free(json);
    rows rs = {0};
    ok(db, bn_db_billing_reconcile(db, 0, 0, 0, row_cb, &rs));
    assert_int_equal(rs.n, 0);
    bn_db_close(db);
}

static void test_from_schema_5(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", &a));
    bn_db_close(db);
    raw_exec(f->path, "DROP TABLE billing_outbox; PRAGMA user_version=5;");
    db = open_at(f->path, T0);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    ok(db, record(db, a, "r1", 1, 1, 0, NULL));
    assert_int_equal(counts(db, T0).pending, 1);
    bn_db_close(db);
}

/* Keeps the text of the claim's query as it runs (sqlite3_trace_v2 on the handle's connection). */
static int catch_claim(unsigned type, void *ud, void *stmt, void *x)
{
    const char *sql = sqlite3_sql(stmt);
    const int claim = sql && strstr(sql, "FROM billing_outbox") && strstr(sql, "ORDER BY id");
    if (claim) snprintf(ud, 1024, "%s", sql);
    return (void)type, (void)x, 0;
}

/* A store of schema 6 gains the index of pending ids (migration 7), and a claim reads the
 * oldest pending events through it, in order, without reading and sorting every pending row
 * (EXPLAIN QUERY PLAN of the claim's own query, caught as it ran). */
static void test_from_schema_6(void **state)
{
    fx *f = *state;
    int64_t a;
    bn_db_close(acme_with_three(f, &a));
    raw_exec(f->path, "DROP INDEX billing_outbox_pending; PRAGMA user_version=6;");
    bn_db *db = open_at(f->path, T0);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    char sql[1024] = "";
    sqlite3_trace_v2(db->sql, SQLITE_TRACE_STMT, catch_claim, sql);
    bn_outbox_event e[2];
    size_t n;
    ok(db, bn_db_outbox_claim(db, T0 + 1000, 60000, e, 2, &n));
    sqlite3_trace_v2(db->sql, 0, NULL, NULL);
    assert_int_equal(n, 2);
    assert_true(e[0].id < e[1].id);
    assert_true(sql[0] != '\0');
    char q[1100];
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db->sql, q, -1, &st, NULL), SQLITE_OK);
    int through = 0, sorted = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        through += d && strstr(d, "USING INDEX billing_outbox_pending") != NULL;
        sorted += d && strstr(d, "TEMP B-TREE") != NULL;
    }
    sqlite3_finalize(st);
    assert_int_equal(through, 1);
    assert_int_equal(sorted, 0);
    bn_db_close(db);
}

/* ---- the sender's pure parts ------------------------------------------------------------------
 */

static void test_form(void **state)
{
    (void)state;
    bn_outbox_event e = {.id = 1, .tenant_id = 2, .value = 1234, .at_ms = T0 + 999};
    snprintf(e.event_id, sizeof e.event_id, "%s", "cmpl-1a2b_c.d~e");
    snprintf(e.customer, sizeof e.customer, "%s", "cus_NciAYcXfLnqBoz");
    char buf[512];
    assert_int_equal(cm_billing_form("ai tokens/v1", &e, buf, sizeof buf), 0);
    assert_string_equal(buf, "event_name=ai+tokens%2Fv1"
                             "&payload%5Bstripe_customer_id%5D=cus_NciAYcXfLnqBoz"
                             "&payload%5Bvalue%5D=1234&identifier=cmpl-1a2b_c.d~e"
                             "&timestamp=1780000000");
    /* an identifier with characters that must be encoded */
    snprintf(e.event_id, sizeof e.event_id, "%s", "a&b=c%d+e\xc3\xa9");
    assert_int_equal(cm_billing_form("n", &e, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "&identifier=a%26b%3Dc%25d%2Be%C3%A9&"));
    /* too small a buffer: -1, never a cut body */
    const size_t need = strlen(buf) + 1;
    assert_int_equal(cm_billing_form("n", &e, buf, need), 0);
    assert_int_equal(cm_billing_form("n", &e, buf, need - 1), -1);
}

/* The body of a meter event stream request: each event's identifier, name, RFC 3339 time with
 * its milliseconds and payload, the value a string; JSON escapes (checked by parsing it). */
static void test_stream_body(void **state)
{
    (void)state;
    bn_outbox_event e[2] = {{.id = 1, .tenant_id = 2, .value = 1234, .at_ms = T0 + 999},
                            {.id = 2, .tenant_id = 2, .value = 7, .at_ms = T0 + 61005}};
    snprintf(e[0].event_id, sizeof e[0].event_id, "%s", "cmpl-1");
    snprintf(e[1].event_id, sizeof e[1].event_id, "%s", "q\"uo\\te");
    snprintf(e[0].customer, sizeof e[0].customer, "%s", "cus_A");
    snprintf(e[1].customer, sizeof e[1].customer, "%s", "cus_B");
    char *body = cm_billing_stream_body("ai tokens", e, 2);
    assert_non_null(body);
    cJSON *d = cJSON_Parse(body);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "events");
    assert_int_equal(cJSON_GetArraySize(ev), 2);
    const char *want[][5] = {{"cmpl-1", "2026-05-28T20:26:40.999Z", "cus_A", "1234", "ai tokens"},
                             {"q\"uo\\te", "2026-05-28T20:27:41.005Z", "cus_B", "7", "ai tokens"}};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(ev, i);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "payload");
        assert_int_equal(cJSON_GetArraySize(x), 4);
        assert_int_equal(cJSON_GetArraySize(p), 2);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "identifier")->valuestring, want[i][0]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "timestamp")->valuestring, want[i][1]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "stripe_customer_id")->valuestring,
                            want[i][2]);
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "value")));
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "value")->valuestring, want[i][3]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "event_name")->valuestring, want[i][4]);
    }
    cJSON_Delete(d);
    cJSON_free(body);
}

static void test_verdict(void **state)
{
    (void)state;
    static const char ok_body[] = "{\"object\": \"billing.meter_event\", \"identifier\": \"ev1\"}";
    static const char other[] = "{\"object\": \"billing.meter_event\", \"identifier\": \"ev2\"}";
    static const char dup[] = "{\"error\": {\"message\": \"An event already exists with "
                              "identifier ev1.\", \"type\": \"invalid_request_error\"}}";
    static const char dup2[] = "{\"error\": {\"message\": \"An event already exists with "
                               "identifier ev9.\", \"type\": \"invalid_request_error\"}}";
    static const char bad[] = "{\"error\": {\"message\": \"No such customer\"}}";
    static const struct {
        long status;
        const char *body;
        int should_retry;
        cm_bill_verdict want;
    } t[] = {
            {200, ok_body, -1, CM_BILL_ACKED},
            {200, other, -1, CM_BILL_RETRY},          /* not our event */
            {200, "<html>hiccup", -1, CM_BILL_RETRY}, /* garbage */
            {200, NULL, -1, CM_BILL_RETRY},
            {400, dup, 0, CM_BILL_DUPLICATE},
            {400, dup2, 0, CM_BILL_REFUSED}, /* another identifier's duplicate */
            {400, bad, -1, CM_BILL_REFUSED},
            {400, bad, 1, CM_BILL_RETRY}, /* Stripe-Should-Retry: true */
            {404, bad, -1, CM_BILL_REFUSED},
            {422, "", -1, CM_BILL_REFUSED},
            {401, bad, -1, CM_BILL_RETRY}, /* the key, not the event */
            {403, bad, -1, CM_BILL_RETRY},
            {408, "", -1, CM_BILL_RETRY},
            {409, "", -1, CM_BILL_RETRY},
            {429, "", -1, CM_BILL_RETRY},
            {500, "", 0, CM_BILL_RETRY},
            {503, "garbage", -1, CM_BILL_RETRY},
            {302, "", -1, CM_BILL_RETRY},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const cm_bill_verdict v =
                cm_billing_verdict(t[i].status, t[i].body, "ev1", t[i].should_retry);
        if (v != t[i].want)
            fail_msg("case %zu: HTTP %ld gave %d, wanted %d", i, t[i].status, v, t[i].want);
    }
}

static void test_backoff(void **state)
{
    (void)state;
    unsigned seed = 7;
    for (int f = 1; f <= 40; f++) {
        const double full = f > 10 ? 300 : fmin(300, pow(2, f - 1));
        for (int k = 0; k < 20; k++) {
            const double d = cm_backoff_s(f, 1.0, 300, &seed);
            assert_true(d >= 0.5 * full - 1e-9 && d <= full + 1e-9);
        }
    }
    /* jitter: not all the same */
    const double a = cm_backoff_s(5, 1.0, 300, &seed), b = cm_backoff_s(5, 1.0, 300, &seed);
    const double c = cm_backoff_s(5, 1.0, 300, &seed);
    assert_false(a == b && b == c);
}

/* The store of the sender tests, with no config file, and a tenant (acme, *a) with a customer. */
static bn_db *sender_store(fx *f, int64_t *a)
{
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/none.json", f->dir);
    setenv("BITNET_CONFIG", cfg, 1);
    setenv("BITNET_HISTORY_DB", f->path, 1);
    bn_db *db = open_at(f->path, T0);
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_A", a));
    return db;
}

/* o's endpoint: a port nothing listens on (connections refused), with an event name and key. */
static void refusing_endpoint(cm_billing_opts *o)
{
    snprintf(o->endpoint, sizeof o->endpoint, "http://127.0.0.1:1");
    snprintf(o->event_name, sizeof o->event_name, "t");
    snprintf(o->key, sizeof o->key, "sk_test_x");
}

/* The sender against an endpoint that refuses connections: the event waits with the error and
 * the sender backs off (a pass meanwhile tries nothing); once the backoff is over and another
 * sender has delivered the event, the sender is not left in a backoff that has passed (it
 * would spin on the outbox). */
static void test_sender_backoff(void **state)
{
    fx *f = *state;
    int64_t a;
    bn_db *db = sender_store(f, &a);
    ok(db, record(db, a, "r1", 1, 2, 0, NULL));
    cm_billing_opts o = {.timeout_s = 2, .backoff_max_s = 0.5, .interval_s = 1};
    refusing_endpoint(&o);
    cm_billing *b;
    char err[256];
    assert_int_equal(cm_billing_new(&o, "test_billing", &b, err, sizeof err), 0);
    cm_billing_stats st = {0};
    assert_int_equal(cm_billing_pass(b, &st), 0);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.waiting, 1);
    assert_true(cm_billing_next(b) > 0);
    assert_int_equal(cm_billing_pass(b, &st), 0); /* within the backoff (>= 0.25 s): no try */
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.waiting, 1);
    bn_outbox_counts c = counts(db, T0);
    assert_int_equal(c.pending, 1);
    assert_int_equal(c.retrying, 1);
    assert_true(c.last_error[0] != '\0');
    /* another sender delivers it meanwhile */
    bn_outbox_event e;
    size_t n;
    ok(db, bn_db_outbox_claim(db, 4102444800000LL, 1000, &e, 1, &n)); /* 2100: past any backoff */
    assert_int_equal(n, 1);
    ok(db, bn_db_outbox_ack(db, e.id, 1, T0));
    nanosleep(&(struct timespec){0, 600000000L}, NULL); /* the backoff (<= 0.5 s) is over */
    cm_billing_stats st2 = {0};
    assert_int_equal(cm_billing_pass(b, &st2), 0);
    assert_int_equal(st2.waiting + st2.retried + st2.acked, 0);
    assert_int_equal(cm_billing_next(b), 0);
    cm_billing_free(b);
    bn_db_close(db);
}

/* The sender's thread: woken, it tries the due event (the endpoint refuses: the event waits
 * with a failed try); freeing it stops and joins it, also in the middle of a backoff. */
static void test_sender_thread(void **state)
{
    fx *f = *state;
    int64_t a;
    bn_db *db = sender_store(f, &a);
    cm_billing_opts o = {.timeout_s = 2, .backoff_max_s = 60, .interval_s = 60};
    refusing_endpoint(&o);
    cm_billing *b;
    char err[256];
    assert_int_equal(cm_billing_new(&o, "test_billing", &b, err, sizeof err), 0);
    assert_int_equal(cm_billing_start(b), 0);
    nanosleep(&(struct timespec){0, 100000000L}, NULL); /* its first pass: nothing due */
    ok(db, record(db, a, "r1", 1, 2, 0, NULL));
    cm_billing_wake(b);
    int tried = 0;
    for (int i = 0; i < 300 && !tried; i++) { /* up to 30 s on a loaded machine */
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
        tried = counts(db, T0).retrying == 1;
    }
    assert_true(tried);
    cm_billing_free(b); /* in a 60 s wait: returns at once */
    assert_int_equal(counts(db, T0).pending, 1);
    bn_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_written_with_the_ledger, setup, teardown),
            cmocka_unit_test_setup_teardown(test_record_n, setup, teardown),
            cmocka_unit_test_setup_teardown(test_claim_lease_retry_ack_fail, setup, teardown),
            cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
            cmocka_unit_test_setup_teardown(test_erase_export, setup, teardown),
            cmocka_unit_test_setup_teardown(test_from_schema_5, setup, teardown),
            cmocka_unit_test_setup_teardown(test_from_schema_6, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sender_backoff, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sender_thread, setup, teardown),
            cmocka_unit_test(test_form),
            cmocka_unit_test(test_stream_body),
            cmocka_unit_test(test_verdict),
            cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
