/* test_tenants.c - the platform's store (bitnet/db_tenants.h): tenants and their audit entries,
 * key lookup with every reason, the ledger's idempotency by request id and its report per day,
 * erase and export, and the audit chain failing verify on an edited, a removed and a reordered
 * entry (tampered with through a raw sqlite connection). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/db.h"
#include "bitnet/db_tenants.h"
#include "../../db/db_int.h" /* the handle's sqlite connection: its prepared statements */
#include "test_util.h"
#include "store_fx.h"

#define T0  ((int64_t)1780000000000) /* 2026-05-28T20:26:40Z */
#define DAY ((int64_t)86400000)

static int count_cb(void *ud, const bn_audit_entry *e)
{
    (void)e;
    (*(int *)ud)++;
    return 0;
}

static int audit_count(bn_db *db)
{
    int n = 0;
    ok(db, bn_db_audit_list(db, count_cb, &n));
    return n;
}

/* ---- tenants ------------------------------------------------------------------------------ */

static void test_tenant_lifecycle(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a, b;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_123", &a));
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "developer", NULL, &b));
    assert_true(b > a);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "123", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "a b", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "-x", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "a,b", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "x\"y", "team", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_tenant_add(db, "cli:t", "ok", "Team!", NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(audit_count(db), 2); /* refused changes leave no entry */

    bn_tenant t;
    ok(db, bn_db_tenant_get(db, "acme", &t));
    assert_int_equal(t.id, a);
    assert_string_equal(t.tier, "team");
    assert_string_equal(t.status, "active");
    assert_string_equal(t.stripe_customer, "cus_123");
    assert_int_equal(t.created_ms, T0);
    char ref[32];
    snprintf(ref, sizeof ref, "%lld", (long long)b);
    ok(db, bn_db_tenant_get(db, ref, &t));
    assert_string_equal(t.name, "globex");
    assert_int_equal(bn_db_tenant_get(db, "nobody", &t), BN_ERR_NOT_FOUND);

    ok(db, bn_db_tenant_suspend(db, "cli:t", "acme", 1));
    ok(db, bn_db_tenant_get(db, "acme", &t));
    assert_string_equal(t.status, "suspended");
    ok(db, bn_db_tenant_suspend(db, "cli:t", "acme", 0));
    ok(db, bn_db_tenant_get(db, "acme", &t));
    assert_string_equal(t.status, "active");
    ok(db, bn_db_tenant_delete(db, "cli:t", "globex"));
    assert_int_equal(bn_db_tenant_get(db, "globex", &t), BN_ERR_NOT_FOUND);
    assert_int_equal(audit_count(db), 5);
    int64_t n, bad;
    ok(db, bn_db_audit_verify(db, &n, &bad, NULL, 0));
    assert_int_equal(n, 5);
    assert_int_equal(bad, 0);
    bn_db_close(db);
}

/* A history from before the platform (schema 4) gains its tables and keeps its runs. */
static void test_from_schema_4(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t run;
    ok(db, bn_db_run_begin(db, "generate", NULL, NULL, NULL, &run));
    bn_db_close(db);
    raw_exec(f->path, "DROP TABLE billing_outbox; DROP TABLE audit; DROP TABLE usage; "
                      "DROP TABLE api_keys; DROP TABLE tenants; PRAGMA user_version=4;");
    db = open_at(f->path, T0);
    assert_int_equal(bn_db_schema_version(db), BN_DB_SCHEMA_VERSION);
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, NULL));
    bn_run r;
    ok(db, bn_db_run_get(db, run, &r));
    assert_string_equal(r.command, "generate");
    bn_run_release(&r);
    bn_db_close(db);
}

/* ---- keys --------------------------------------------------------------------------------- */

static bn_key_reason lookup(bn_db *db, const char *key, bn_key_auth *a)
{
    ok(db, bn_db_key_lookup(db, key, a));
    return a->reason;
}

static void test_key_lookup_reasons(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t tid, k1, k2, k3;
    char key1[BN_KEY_STR_MAX], key2[BN_KEY_STR_MAX], key3[BN_KEY_STR_MAX];
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "business", NULL, &tid));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE | BN_SCOPE_USAGE, 0, key1, &k1));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_ADMIN, T0 + DAY, key2, &k2));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, 0, key3, &k3));
    assert_int_equal(strlen(key1), BN_KEY_STR_LEN);
    assert_memory_equal(key1, "bnk_", 4);
    assert_string_not_equal(key1, key2);
    assert_int_equal(bn_db_key_create(db, "cli:t", tid, 0, 0, key3, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_key_create(db, "cli:t", tid, 1, T0 - 1, key3, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_db_key_create(db, "cli:t", 999, 1, 0, key3, NULL), BN_ERR_NOT_FOUND);

    bn_key_auth a;
    assert_int_equal(lookup(db, key1, &a), BN_KEY_OK);
    assert_int_equal(a.tenant_id, tid);
    assert_int_equal(a.key_id, k1);
    assert_int_equal(a.scopes, BN_SCOPE_INFERENCE | BN_SCOPE_USAGE);
    assert_string_equal(a.tier, "business");
    assert_string_equal(a.tenant, "acme"); /* its own limits in the config go by its name */
    assert_int_equal(lookup(db, "", &a), BN_KEY_MALFORMED);
    assert_int_equal(lookup(db, NULL, &a), BN_KEY_MALFORMED);
    assert_int_equal(lookup(db, "bnk_short", &a), BN_KEY_MALFORMED);
    char bad[BN_KEY_STR_MAX];
    memcpy(bad, key1, sizeof bad);
    bad[10] = bad[10] == 'A' ? 'B' : 'A'; /* well formed, not ours */
    assert_int_equal(lookup(db, bad, &a), BN_KEY_UNKNOWN);
    bad[10] = '!';
    assert_int_equal(lookup(db, bad, &a), BN_KEY_MALFORMED);
    memcpy(bad, key1, sizeof bad);
    bad[0] = 'x';
    assert_int_equal(lookup(db, bad, &a), BN_KEY_MALFORMED);

    ok(db, bn_db_key_revoke(db, "cli:t", k3));
    assert_int_equal(lookup(db, key3, &a), BN_KEY_REVOKED);
    assert_int_equal(bn_db_key_revoke(db, "cli:t", k3), BN_ERR_NOT_FOUND);
    ok(db, bn_db_tenant_suspend(db, "cli:t", "acme", 1));
    assert_int_equal(lookup(db, key1, &a), BN_KEY_SUSPENDED);
    ok(db, bn_db_tenant_suspend(db, "cli:t", "acme", 0));
    assert_int_equal(lookup(db, key2, &a), BN_KEY_OK);
    bn_db_close(db);

    db = open_at(f->path, T0 + DAY); /* a day later: key2 has expired */
    assert_int_equal(lookup(db, key2, &a), BN_KEY_EXPIRED);
    assert_int_equal(lookup(db, key1, &a), BN_KEY_OK);
    bn_db_close(db);

    /* the store holds no key: neither the key nor its random part is in the file's text */
    FILE *fp = fopen(f->path, "rb");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_null(memmem(buf, n, key1 + 4, BN_KEY_STR_LEN - 4));
    assert_null(memmem(buf, n, key2 + 4, BN_KEY_STR_LEN - 4));
}

static void test_scopes(void **state)
{
    (void)state;
    unsigned s;
    char buf[32];
    assert_int_equal(bn_scopes_parse("inference,admin", &s), 0);
    assert_int_equal(s, BN_SCOPE_INFERENCE | BN_SCOPE_ADMIN);
    assert_string_equal(bn_scopes_str(s, buf, sizeof buf), "inference,admin");
    assert_int_equal(bn_scopes_parse("usage", &s), 0);
    assert_int_equal(s, BN_SCOPE_USAGE);
    assert_int_equal(bn_scopes_parse("", &s), -1);
    assert_int_equal(bn_scopes_parse("inference,", &s), -1);
    assert_int_equal(bn_scopes_parse("root", &s), -1);
    assert_int_equal(bn_scopes_parse("inferenc", &s), -1);
}

/* ---- the ledger --------------------------------------------------------------------------- */

typedef struct tot {
    int days;
    int64_t requests, prompt, completion;
    char first_day[16];
} tot;

static int sum_cb(void *ud, const bn_usage_day *d)
{
    tot *t = ud;
    if (!t->days++) snprintf(t->first_day, sizeof t->first_day, "%s", d->day);
    t->requests += d->requests;
    t->prompt += d->prompt_tokens;
    t->completion += d->completion_tokens;
    return 0;
}

static tot report(bn_db *db, int64_t tenant, int64_t from, int64_t to)
{
    tot t = {0};
    ok(db, bn_db_usage_report(db, tenant, from, to, sum_cb, &t));
    return t;
}

static void record(bn_db *db, const char *rid, int64_t tenant, int64_t at, int expect_fresh)
{
    bn_usage_rec u = {.request_id = rid,
                      .tenant_id = tenant,
                      .key_id = 1,
                      .model = "m",
                      .prompt_tokens = 10,
                      .completion_tokens = 20,
                      .duration_ms = 5,
                      .status = "ok",
                      .at_ms = at};
    int fresh = -1;
    ok(db, bn_db_usage_record(db, &u, &fresh));
    assert_int_equal(fresh, expect_fresh);
}

static void test_usage_idempotent(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a, b;
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, &a));
    ok(db, bn_db_tenant_add(db, "cli:t", "globex", "team", NULL, &b));
    record(db, "req-1", a, T0, 1);
    record(db, "req-2", a, T0 + DAY, 1);
    record(db, "req-1", a, T0, 0); /* a retry of the same request */
    record(db, "req-1", b, T0, 0); /* the first record wins, whoever repeats the id */
    record(db, "req-3", b, T0, 1);
    tot t = report(db, a, 0, 0);
    assert_int_equal(t.days, 2);
    assert_int_equal(t.requests, 2);
    assert_int_equal(t.prompt, 20);
    assert_int_equal(t.completion, 40);
    assert_string_equal(t.first_day, "2026-05-28");
    t = report(db, 0, 0, 0);
    assert_int_equal(t.requests, 3);
    bn_usage_total tt;
    ok(db, bn_db_usage_total(db, a, 0, 0, &tt));
    assert_int_equal(tt.requests, 2);
    assert_int_equal(tt.prompt_tokens, 20);
    assert_int_equal(tt.completion_tokens, 40);
    ok(db, bn_db_usage_total(db, a, T0 + DAY, T0 + 2 * DAY, &tt));
    assert_int_equal(tt.requests, 1);
    ok(db, bn_db_usage_total(db, 999, 0, 0, &tt));
    assert_int_equal(tt.requests, 0);
    t = report(db, a, T0 + 1, 0); /* from: after the first request */
    assert_int_equal(t.requests, 1);
    t = report(db, 0, 0, T0 + 1); /* to: exclusive */
    assert_int_equal(t.requests, 2);

    bn_usage_rec u = {.request_id = "req-9", .tenant_id = 77, .model = "m", .status = "ok"};
    assert_int_equal(bn_db_usage_record(db, &u, NULL), BN_ERR_NOT_FOUND);
    u.tenant_id = a;
    u.prompt_tokens = -1;
    assert_int_equal(bn_db_usage_record(db, &u, NULL), BN_ERR_INVALID);
    u.prompt_tokens = 0;
    u.request_id = "";
    assert_int_equal(bn_db_usage_record(db, &u, NULL), BN_ERR_INVALID);
    assert_int_equal(report(db, 0, 0, 0).requests, 3);
    bn_db_close(db);
}

/* ---- erase and export --------------------------------------------------------------------- */

/* The runs of the kept statement whose SQL starts with prefix (-1: none kept); every
 * statement of the handle is reset (not left running) after its call. */
static int kept_runs(bn_db *db, const char *prefix)
{
    int runs = -1;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db->sql, NULL); st;
         st = sqlite3_next_stmt(db->sql, st)) {
        assert_false(sqlite3_stmt_busy(st));
        if (!strncmp(sqlite3_sql(st), prefix, strlen(prefix)))
            runs = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 0);
    }
    return runs;
}

/* The statements of every served request (the key lookup, the ledger row, its meter event
 * and their transaction) are compiled once per handle and kept, reset after each call;
 * a failed call leaves them usable. */
static void test_statements_kept(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t tid, kid;
    char key[BN_KEY_STR_MAX], rid[32];
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_1", &tid));
    ok(db, bn_db_key_create(db, "cli:t", tid, BN_SCOPE_INFERENCE, 0, key, &kid));
    bn_key_auth a;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lookup(db, key, &a), BN_KEY_OK);
        snprintf(rid, sizeof rid, "req-%d", i);
        record(db, rid, tid, T0, 1);
    }
    record(db, "req-0", tid, T0, 0); /* a repeat: looked up by its id */
    assert_int_equal(kept_runs(db, "SELECT k.id, k.tenant_id"), 5);
    assert_int_equal(kept_runs(db, "INSERT INTO usage"), 6);
    assert_int_equal(kept_runs(db, "INSERT INTO billing_outbox"), 5);
    assert_int_equal(kept_runs(db, "SELECT 1 FROM usage"), 1);
    assert_true(kept_runs(db, "BEGIN IMMEDIATE") >= 6);
    assert_true(kept_runs(db, "COMMIT") >= 6);

    bn_usage_rec u = {.request_id = "req-x", .tenant_id = 999, .model = "m", .status = "ok"};
    assert_int_equal(bn_db_usage_record(db, &u, NULL), BN_ERR_NOT_FOUND); /* no such tenant */
    const char was = key[5];
    key[5] = was == 'A' ? 'B' : 'A'; /* another well-formed key: unknown */
    assert_int_equal(lookup(db, key, &a), BN_KEY_UNKNOWN);
    key[5] = was;
    record(db, "req-5", tid, T0, 1);
    assert_int_equal(lookup(db, key, &a), BN_KEY_OK);
    assert_int_equal(kept_runs(db, "INSERT INTO usage"), 8);
    tot t = report(db, tid, 0, 0);
    assert_int_equal(t.requests, 6);
    bn_db_close(db); /* kept statements finalized: the sanitizers' leak check */
}

static void test_erase_export(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    int64_t a, k;
    char key[BN_KEY_STR_MAX];
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", "cus_9", &a));
    ok(db, bn_db_key_create(db, "cli:t", a, BN_SCOPE_INFERENCE, 0, key, &k));
    record(db, "req-1", a, T0, 1);
    record(db, "req-2", a, T0 + 1000, 1);
    record(db, "req-3", a, T0 + DAY, 1);
    assert_int_equal(bn_db_tenant_delete(db, "cli:t", "acme"), BN_ERR_INVALID);

    char *json = NULL;
    ok(db, bn_db_tenant_export(db, "cli:t", "acme", &json));
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    const cJSON *t = cJSON_GetObjectItem(doc, "tenant");
    assert_string_equal(cJSON_GetObjectItem(t, "name")->valuestring, "acme");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "keys")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "usage")), 3);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "audit")) >= 2);
    assert_null(strstr(json, "hash"));
    cJSON_Delete(doc);
    bn_free(json);

    ok(db, bn_db_tenant_erase(db, "cli:t", "acme"));
    bn_tenant te;
    char name[32];
    snprintf(name, sizeof name, "erased-%lld", (long long)a);
    ok(db, bn_db_tenant_get(db, name, &te));
    assert_string_equal(te.status, "erased");
    assert_string_equal(te.stripe_customer, "");
    assert_int_equal(bn_db_tenant_get(db, "acme", &te), BN_ERR_NOT_FOUND);
    bn_key_auth au;
    assert_int_equal(lookup(db, key, &au), BN_KEY_UNKNOWN);
    tot r = report(db, a, 0, 0); /* the aggregates stay */
    assert_int_equal(r.requests, 3);
    assert_int_equal(r.days, 2);
    assert_int_equal(r.prompt, 30);
    ok(db, bn_db_tenant_export(db, "cli:t", name, &json));
    assert_null(strstr(json, "req-1")); /* no request ids, no key ids, no name */
    assert_null(strstr(json, "acme"));
    assert_null(strstr(json, "cus_9"));
    doc = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "usage")), 2);
    cJSON_Delete(doc);
    bn_free(json);
    assert_int_equal(bn_db_tenant_suspend(db, "cli:t", name, 0), BN_ERR_INVALID);
    bn_usage_rec u = {.request_id = "req-4", .tenant_id = a, .model = "m", .status = "ok"};
    assert_int_equal(bn_db_usage_record(db, &u, NULL), BN_ERR_NOT_FOUND);
    int64_t n, bad;
    ok(db, bn_db_audit_verify(db, &n, &bad, NULL, 0));
    assert_int_equal(bad, 0);
    bn_db_close(db);
}

/* ---- the audit chain ---------------------------------------------------------------------- */

/* Five entries, then the tampering, then verify: the first bad entry's id. */
static void remove_db(const char *path)
{
    char p[400];
    remove(path);
    snprintf(p, sizeof p, "%s-wal", path);
    remove(p);
    snprintf(p, sizeof p, "%s-shm", path);
    remove(p);
}

static int64_t tamper(const char *path, const char *sql, char *why, size_t whysz)
{
    remove_db(path);
    bn_db *db = open_at(path, T0);
    for (int i = 0; i < 5; i++) {
        char d[32];
        snprintf(d, sizeof d, "{\"i\": %d}", i);
        ok(db, bn_db_audit_append(db, "test", "config.set", "key:threads", d));
    }
    int64_t n, bad;
    ok(db, bn_db_audit_verify(db, &n, &bad, why, whysz));
    assert_int_equal(n, 5);
    assert_int_equal(bad, 0);
    bn_db_close(db);
    raw_exec(path, sql);
    db = open_at(path, T0);
    ok(db, bn_db_audit_verify(db, &n, &bad, why, whysz));
    bn_db_close(db);
    return bad;
}

static void test_audit_tamper(void **state)
{
    fx *f = *state;
    char why[256];
    const char *drop = "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;";
    char sql[512];
    snprintf(sql, sizeof sql, "%s UPDATE audit SET details = '{\"i\":7}' WHERE id = 3;", drop);
    assert_int_equal(tamper(f->path, sql, why, sizeof why), 3);
    assert_non_null(strstr(why, "edited"));
    snprintf(sql, sizeof sql, "%s UPDATE audit SET actor = 'eve' WHERE id = 1;", drop);
    assert_int_equal(tamper(f->path, sql, why, sizeof why), 1);
    snprintf(sql, sizeof sql, "%s DELETE FROM audit WHERE id = 2;", drop);
    assert_int_equal(tamper(f->path, sql, why, sizeof why), 3);
    assert_non_null(strstr(why, "removed or reordered"));
    snprintf(sql, sizeof sql, "%s DELETE FROM audit WHERE id = 1;", drop);
    assert_int_equal(tamper(f->path, sql, why, sizeof why), 2);
    /* entries 2 and 4 swap places (ids and all: each still matches its own hash) */
    snprintf(sql, sizeof sql,
             "%s UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 4;"
             "UPDATE audit SET id = 4 WHERE id = 100;",
             drop);
    assert_int_equal(tamper(f->path, sql, why, sizeof why), 2);

    /* on a file nobody tampered with, the triggers refuse an ordinary UPDATE or DELETE */
    remove_db(f->path);
    bn_db *db = open_at(f->path, T0);
    ok(db, bn_db_audit_append(db, "t", "a", "x", NULL));
    assert_int_equal(bn_db_audit_append(db, "t", "a", "x", "{not json"), BN_ERR_INVALID);
    assert_int_equal(audit_count(db), 1);
    bn_db_close(db);
    sqlite3 *s;
    assert_int_equal(sqlite3_open(f->path, &s), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(s, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(s, "UPDATE audit SET actor = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(s);
}

/* Every allocation of an audited change and of an export fails in turn: a clean status, no
 * leak (ASan), and the chain stays whole. */
static void test_alloc_failures(void **state)
{
    fx *f = *state;
    bn_db *db = open_at(f->path, T0);
    ok(db, bn_db_tenant_add(db, "cli:t", "acme", "team", NULL, NULL));
    int saw_ok = 0;
    for (long k = 1; k < 50 && !saw_ok; k++) {
        char *json = NULL;
        bn_alloc_fail_at(k, 0);
        bn_status s = bn_db_tenant_export(db, "cli:t", "acme", &json);
        bn_alloc_fail_at(0, 0);
        if (s == BN_OK) {
            assert_non_null(json);
            saw_ok = 1;
        } else {
            assert_int_equal(s, BN_ERR_NOMEM);
            assert_null(json);
        }
        bn_free(json);
    }
    assert_true(saw_ok);
    saw_ok = 0;
    for (long k = 1; k < 50 && !saw_ok; k++) {
        bn_alloc_fail_at(k, 0);
        bn_status s = bn_db_tenant_suspend(db, "cli:t", "acme", (int)(k & 1));
        bn_alloc_fail_at(0, 0);
        saw_ok = s == BN_OK;
        if (!saw_ok) assert_int_equal(s, BN_ERR_NOMEM);
    }
    assert_true(saw_ok);
    int64_t n, bad;
    ok(db, bn_db_audit_verify(db, &n, &bad, NULL, 0));
    assert_int_equal(bad, 0);
    assert_int_equal(n, 3); /* add, one export and one suspend or resume: no half entries */
    bn_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_tenant_lifecycle, setup, teardown),
            cmocka_unit_test_setup_teardown(test_from_schema_4, setup, teardown),
            cmocka_unit_test_setup_teardown(test_key_lookup_reasons, setup, teardown),
            cmocka_unit_test(test_scopes),
            cmocka_unit_test_setup_teardown(test_usage_idempotent, setup, teardown),
            cmocka_unit_test_setup_teardown(test_statements_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(test_erase_export, setup, teardown),
            cmocka_unit_test_setup_teardown(test_audit_tamper, setup, teardown),
            cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
