/* tenants.c - the platform's tenants: add, find, list, suspend, delete, erase, export. Every
 * change appends its audit entry (audit.c) in the same transaction. */
#include "db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/db_tenants.h"

static int all_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Names go into JSON and tables as they are: printable ASCII, no space, quote,
 * backslash or comma (CSV), not starting with '-' (an option). */
int bn_tenant_name_ok(const char *s)
{
    const size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= BN_TENANT_NAME_MAX || all_digits(s) || s[0] == '-') return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || strchr("\"'\\,", *s)) return 0;
    return 1;
}

static int charset_ok(const char *s, size_t max, const char *extra)
{
    const size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= max) return 0;
    for (; *s; s++) {
        const char c = *s;
        const int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                          (extra[0] == 'A' && c >= 'A' && c <= 'Z');
        if (!alnum && !strchr(extra + 1, c)) return 0;
    }
    return 1;
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, size, "%s", t ? t : "");
}

#define TENANT_COLS                                                                                \
    "t.id, t.name, t.tier, t.status, t.stripe_customer, t.created_at, "                            \
    "(SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL)"

static void read_tenant(sqlite3_stmt *st, bn_tenant *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    copy_col(st, 1, t->name, sizeof t->name);
    copy_col(st, 2, t->tier, sizeof t->tier);
    copy_col(st, 3, t->status, sizeof t->status);
    copy_col(st, 4, t->stripe_customer, sizeof t->stripe_customer);
    t->created_ms = sqlite3_column_int64(st, 5);
    t->n_keys = sqlite3_column_int64(st, 6);
}

static bn_status no_ref(bn_db *db)
{
    return bn__db_err(db, BN_ERR_INVALID, "no tenant named");
}

bn_status bn_db_tenant_get(bn_db *db, const char *ref, bn_tenant *out)
{
    if (!ref || !*ref) return no_ref(db);
    const int by_id = all_digits(ref);
    if (db->pg) return bn__pg_tenant_get(db, ref, by_id, out);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 by_id ? "SELECT " TENANT_COLS " FROM tenants t WHERE t.id = ?1"
                                       : "SELECT " TENANT_COLS " FROM tenants t WHERE t.name = ?1",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
    if (by_id) sqlite3_bind_int64(st, 1, strtoll(ref, NULL, 10));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_tenant(st, out);
    else if (rc == SQLITE_DONE)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no tenant '%s'", ref);
    else
        s = bn__db_sqlerr(db, rc, "reading a tenant");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_tenant_list(bn_db *db, int (*fn)(void *ud, const bn_tenant *t), void *ud)
{
    if (db->pg) return bn__pg_tenant_list(db, fn, ud);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT " TENANT_COLS " FROM tenants t ORDER BY t.id", &st);
    if (s != BN_OK) return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_tenant t;
        read_tenant(st, &t);
        if (fn(ud, &t)) {
            sqlite3_finalize(st);
            return BN_ERR_CANCELLED;
        }
    }
    if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "listing tenants");
    sqlite3_finalize(st);
    return s;
}

/* Runs one statement with up to two bound values: text a (NULL: none) and an integer b. */
static bn_status run(bn_db *db, const char *sql, const char *a, int64_t b, const char *what)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, sql, &st);
    if (s != BN_OK) return s;
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, b);
    return bn__db_step_done(db, st, what);
}

static bn_status audit_tenant(bn_db *db, const char *actor, const char *action, int64_t id,
                              const char *details)
{
    char target[48];
    snprintf(target, sizeof target, "tenant:%" PRId64, id);
    return bn__db_audit_add(db, actor, action, target, details);
}

static bn_status insert_tenant(bn_db *db, const char *name, const char *tier, const char *stripe,
                               int64_t *id)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "INSERT INTO tenants (name, tier, stripe_customer, created_at) "
                                 "VALUES (?1, ?2, ?3, ?4)",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tier, -1, SQLITE_STATIC);
    if (stripe && *stripe) sqlite3_bind_text(st, 3, stripe, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, bn__db_now_ms(db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        *id = sqlite3_last_insert_rowid(db->sql);
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)
        s = bn__db_err(db, BN_ERR_INVALID, "a tenant named '%s' exists", name);
    else
        s = bn__db_sqlerr(db, rc, "adding a tenant");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_tenant_add(bn_db *db, const char *actor, const char *name, const char *tier,
                           const char *stripe_customer, int64_t *id)
{
    if (!bn_tenant_name_ok(name))
        return bn__db_err(db, BN_ERR_INVALID,
                          "bad tenant name '%s' (1 to %d printable characters, no spaces, "
                          "quotes or commas, not only digits, no leading '-')",
                          name ? name : "", BN_TENANT_NAME_MAX - 1);
    if (!charset_ok(tier, BN_TENANT_TIER_MAX, "a_-"))
        return bn__db_err(db, BN_ERR_INVALID, "bad tier '%s'", tier ? tier : "");
    if (stripe_customer && *stripe_customer && !charset_ok(stripe_customer, BN_STRIPE_ID_MAX, "A_"))
        return bn__db_err(db, BN_ERR_INVALID, "bad Stripe customer id '%s'", stripe_customer);
    int64_t tid = 0;
    /* entries name tenants by id only: the log is never edited, so it must not hold a name
     * that erase has to remove */
    char d[BN_TENANT_TIER_MAX + 32];
    snprintf(d, sizeof d, "{\"tier\":\"%s\"}", tier);
    if (db->pg) return bn__pg_tenant_add(db, actor, name, tier, stripe_customer, d, id);
    bn_status s = bn__db_begin(db, "adding a tenant");
    if (s != BN_OK) return s;
    s = insert_tenant(db, name, tier, stripe_customer, &tid);
    if (s == BN_OK) s = audit_tenant(db, actor, "tenant.add", tid, d);
    s = bn__db_end(db, s, "adding a tenant");
    if (s == BN_OK && id) *id = tid;
    return s;
}

/* Begins a transaction and finds ref's tenant in it. */
static bn_status begin_on(bn_db *db, const char *ref, bn_tenant *t, const char *what)
{
    bn_status s = bn__db_begin(db, what);
    if (s != BN_OK) return s;
    s = bn_db_tenant_get(db, ref, t);
    if (s != BN_OK) bn__db_end(db, s, what);
    return s;
}

bn_status bn_db_tenant_suspend(bn_db *db, const char *actor, const char *ref, int suspend)
{
    const char *what = suspend ? "suspending a tenant" : "resuming a tenant";
    if (db->pg) return ref && *ref ? bn__pg_tenant_suspend(db, actor, ref, suspend) : no_ref(db);
    bn_tenant t;
    bn_status s = begin_on(db, ref, &t, what);
    if (s != BN_OK) return s;
    if (!strcmp(t.status, "erased"))
        s = bn__db_err(db, BN_ERR_INVALID, "tenant %" PRId64 " is erased", t.id);
    if (s == BN_OK)
        s = run(db, "UPDATE tenants SET status = ?1 WHERE id = ?2",
                suspend ? "suspended" : "active", t.id, what);
    if (s == BN_OK)
        s = audit_tenant(db, actor, suspend ? "tenant.suspend" : "tenant.resume", t.id, NULL);
    return bn__db_end(db, s, what);
}

static bn_status count_usage(bn_db *db, int64_t tenant, int64_t *n)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT count(*) FROM usage WHERE tenant_id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        s = bn__db_sqlerr(db, rc, "counting usage");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_tenant_delete(bn_db *db, const char *actor, const char *ref)
{
    const char *what = "deleting a tenant";
    if (db->pg) return ref && *ref ? bn__pg_tenant_delete(db, actor, ref) : no_ref(db);
    bn_tenant t;
    int64_t n = 0;
    bn_status s = begin_on(db, ref, &t, what);
    if (s != BN_OK) return s;
    s = count_usage(db, t.id, &n);
    if (s == BN_OK && n > 0)
        s = bn__db_err(db, BN_ERR_INVALID,
                       "tenant %" PRId64 " has %" PRId64 " usage records (billing data): erase "
                       "it instead",
                       t.id, n);
    if (s == BN_OK) s = run(db, "DELETE FROM api_keys WHERE tenant_id = ?2", NULL, t.id, what);
    if (s == BN_OK) s = run(db, "DELETE FROM tenants WHERE id = ?2", NULL, t.id, what);
    if (s == BN_OK) s = audit_tenant(db, actor, "tenant.delete", t.id, NULL);
    return bn__db_end(db, s, what);
}

/* The usage rows of an erased tenant, folded into one anonymous row per day and model. */
static const char fold_sql[] =
        "INSERT INTO usage (request_id, tenant_id, key_id, model, requests, prompt_tokens, "
        "completion_tokens, duration_ms, status, at) "
        "SELECT NULL, tenant_id, NULL, model, sum(requests), sum(prompt_tokens), "
        "sum(completion_tokens), sum(duration_ms), 'erased', min(at) FROM usage "
        "WHERE tenant_id = ?2 AND status != 'erased' GROUP BY date(at / 1000, 'unixepoch'), model;"
        "DELETE FROM usage WHERE tenant_id = ?2 AND status != 'erased'";

static bn_status fold_usage(bn_db *db, int64_t tenant)
{
    /* two statements: the insert of the folded rows (status 'erased'), then the delete of
     * the rows they replace */
    const char *next = fold_sql;
    bn_status s = BN_OK;
    while (s == BN_OK && next && *next) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(db->sql, next, -1, &st, &next);
        if (rc != SQLITE_OK) return bn__db_sqlerr(db, rc, "folding usage");
        sqlite3_bind_int64(st, 2, tenant);
        s = bn__db_step_done(db, st, "folding usage");
    }
    return s;
}

bn_status bn_db_tenant_erase(bn_db *db, const char *actor, const char *ref)
{
    const char *what = "erasing a tenant";
    if (db->pg) return ref && *ref ? bn__pg_tenant_erase(db, actor, ref) : no_ref(db);
    bn_tenant t;
    bn_status s = begin_on(db, ref, &t, what);
    if (s != BN_OK) return s;
    char name[64];
    snprintf(name, sizeof name, "erased-%" PRId64, t.id);
    s = run(db, "DELETE FROM api_keys WHERE tenant_id = ?2", NULL, t.id, what);
    if (s == BN_OK)
        s = run(db,
                "UPDATE tenants SET name = ?1, status = 'erased', stripe_customer = NULL "
                "WHERE id = ?2",
                name, t.id, what);
    if (s == BN_OK) s = fold_usage(db, t.id);
    char unbilled[96] = "{}"; /* events not yet sent go too: they name the Stripe customer */
    if (s == BN_OK) s = bn__db_outbox_erase(db, t.id, unbilled, sizeof unbilled);
    if (s == BN_OK) s = audit_tenant(db, actor, "tenant.erase", t.id, unbilled);
    return bn__db_end(db, s, what);
}

/* The whole export as one document, built by sqlite's JSON functions. */
static const char export_sql[] =
        "SELECT json_object("
        " 'tenant', (SELECT json_object('id', id, 'name', name, 'tier', tier, 'status', status,"
        "   'stripe_customer', stripe_customer, 'created_ms', created_at)"
        "   FROM tenants WHERE id = ?1),"
        " 'keys', (SELECT json_group_array(json_object('id', id, 'prefix', prefix,"
        "   'scopes', trim((CASE WHEN scopes & 1 THEN 'inference,' ELSE '' END) ||"
        "     (CASE WHEN scopes & 2 THEN 'usage,' ELSE '' END) ||"
        "     (CASE WHEN scopes & 4 THEN 'admin' ELSE '' END), ','),"
        "   'created_ms', created_at, 'expires_ms', expires_at, 'revoked_ms', revoked_at,"
        "   'last_used_ms', last_used_at))"
        "   FROM (SELECT * FROM api_keys WHERE tenant_id = ?1 ORDER BY id)),"
        " 'usage', (SELECT json_group_array(json_object('request_id', request_id,"
        "   'key_id', key_id, 'model', model, 'requests', requests,"
        "   'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,"
        "   'duration_ms', duration_ms, 'status', status, 'at_ms', at))"
        "   FROM (SELECT * FROM usage WHERE tenant_id = ?1 ORDER BY id)),"
        " 'billing_events', (SELECT json_group_array(json_object('event_id', event_id,"
        "   'request_id', request_id, 'stripe_customer', customer, 'value', value, 'at_ms', at,"
        "   'state', state, 'attempts', attempts, 'acked_ms', acked_at,"
        "   'duplicate', duplicate, 'last_error', last_error))"
        "   FROM (SELECT * FROM billing_outbox WHERE tenant_id = ?1 ORDER BY id)),"
        " 'audit', (SELECT json_group_array(json_object('id', id, 'at_ms', at, 'actor', actor,"
        "   'action', action, 'target', target, 'details', json(details)))"
        "   FROM (SELECT * FROM audit WHERE target = ?2 OR target IN"
        "     (SELECT 'key:' || id FROM api_keys WHERE tenant_id = ?1) ORDER BY id)))";

static bn_status export_doc(bn_db *db, int64_t id, char **json)
{
    char target[48];
    snprintf(target, sizeof target, "tenant:%" PRId64, id);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, export_sql, &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), oom = 0;
    if (rc == SQLITE_ROW) {
        *json = bn__db_col_str(st, 0, &oom);
        if (!*json) s = bn__db_err(db, oom ? BN_ERR_NOMEM : BN_ERR_INTERNAL, "exporting");
    } else {
        s = bn__db_sqlerr(db, rc, "exporting a tenant");
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_tenant_export(bn_db *db, const char *actor, const char *ref, char **json)
{
    const char *what = "exporting a tenant";
    bn_tenant t;
    *json = NULL;
    if (db->pg) return ref && *ref ? bn__pg_tenant_export(db, actor, ref, json) : no_ref(db);
    bn_status s = begin_on(db, ref, &t, what);
    if (s != BN_OK) return s;
    s = audit_tenant(db, actor, "tenant.export", t.id, NULL);
    if (s == BN_OK) s = export_doc(db, t.id, json);
    s = bn__db_end(db, s, what);
    if (s != BN_OK) {
        bn_free(*json);
        *json = NULL;
    }
    return s;
}
