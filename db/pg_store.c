/* pg_store.c - the calls of bitnet/db_tenants.h on a PostgreSQL store (bitnet/db_pg.h): the
 * public functions in tenants.c, tenant_keys.c, usage.c, outbox.c and audit.c check their
 * arguments, then hand over here when db->pg is set. Each call is one transaction; its scope
 * of row-level security is the one tenant it is about, or all for administration, the lookup
 * of a key and the billing sender. Parameterised queries only. */
#include "pg_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define I64(buf, v) (snprintf(buf, sizeof buf, "%" PRId64, (int64_t)(v)), (const char *)buf)

/* One statement (n parameters v) in a transaction of its own with the scope tenant (or
 * BN_PG_ALL), in one round trip; *res its rows (PQclear), NULL on failure. */
static bn_status query1(bn_db *db, int64_t tenant, const char *sql, int n, const char *const *v,
                        PGresult **res, const char *what)
{
    return bn__pg_query1(db, tenant, sql, n, v, res, what);
}

/* ---- the audit log ----------------------------------------------------------------------- */

#define AUDIT_LOCK_KEY "7326720514" /* the chain is appended to one writer at a time */

/* Appends an entry inside the caller's transaction on c. */
static bn_status audit_add(bn_db *db, PGconn *c, const char *actor, const char *action,
                           const char *target, const char *details)
{
    const char *what = "appending to the audit log";
    PGresult *r = NULL;
    bn_status s = bn__pg_q(db, c, "SELECT pg_advisory_xact_lock(" AUDIT_LOCK_KEY ")", 0, NULL, NULL,
                           what);
    if (s == BN_OK)
        s = bn__pg_q(db, c, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", 0, NULL, &r,
                     what);
    if (s != BN_OK) return s;
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000", hash[65];
    bn_audit_entry e = {.actor = actor ? actor : "",
                        .action = action,
                        .target = target,
                        .details = details ? details : "{}",
                        .prev_hash = prev};
    if (PQntuples(r) == 1) {
        e.id = bn__pg_i64(r, 0, 0);
        bn__pg_str(r, 0, 1, prev, sizeof prev);
    }
    PQclear(r);
    e.id++;
    e.at_ms = bn__db_now_ms(db);
    bn__db_audit_hash(&e, hash);
    char id[24], at[24];
    const char *v[] = {I64(id, e.id), I64(at, e.at_ms), e.actor, e.action,
                       e.target,      e.details,        prev,    hash};
    return bn__pg_q(db, c,
                    "INSERT INTO audit (id, at, actor, action, target, details, prev_hash, hash) "
                    "VALUES ($1, $2, $3, $4, $5, $6::json::text, $7, $8)",
                    8, v, NULL, what);
}

bn_status bn__pg_audit_append(bn_db *db, const char *actor, const char *action, const char *target,
                              const char *details)
{
    const char *what = "appending to the audit log";
    PGconn *c;
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    return bn__pg_end(db, c, audit_add(db, c, actor, action, target, details), what);
}

bn_status bn__pg_audit_list(bn_db *db, int (*fn)(void *ud, const bn_audit_entry *e), void *ud)
{
    PGresult *r;
    bn_status s = query1(db, BN_PG_ALL,
                         "SELECT id, at, actor, action, target, details, prev_hash, hash FROM "
                         "audit ORDER BY id",
                         0, NULL, &r, "reading the audit log");
    for (int i = 0; s == BN_OK && i < PQntuples(r); i++) {
        bn_audit_entry e = {bn__pg_i64(r, i, 0), bn__pg_i64(r, i, 1), PQgetvalue(r, i, 2),
                            PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                            PQgetvalue(r, i, 6), PQgetvalue(r, i, 7)};
        if (fn(ud, &e)) s = BN_ERR_CANCELLED;
    }
    PQclear(r);
    return s;
}

/* ---- tenants ----------------------------------------------------------------------------- */

#define TENANT_COLS                                                                                \
    "t.id, t.name, t.tier, t.status, coalesce(t.stripe_customer, ''), t.created_at, "              \
    "(SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL)"

static void read_tenant(const PGresult *r, int i, bn_tenant *t)
{
    memset(t, 0, sizeof *t);
    t->id = bn__pg_i64(r, i, 0);
    bn__pg_str(r, i, 1, t->name, sizeof t->name);
    bn__pg_str(r, i, 2, t->tier, sizeof t->tier);
    bn__pg_str(r, i, 3, t->status, sizeof t->status);
    bn__pg_str(r, i, 4, t->stripe_customer, sizeof t->stripe_customer);
    t->created_ms = bn__pg_i64(r, i, 5);
    t->n_keys = bn__pg_i64(r, i, 6);
}

/* ref's tenant inside the caller's transaction on c. */
static bn_status tenant_get_on(bn_db *db, PGconn *c, const char *ref, int by_id, bn_tenant *out)
{
    PGresult *r;
    const char *v[] = {ref};
    bn_status s = bn__pg_q(db, c,
                           by_id ? "SELECT " TENANT_COLS " FROM tenants t WHERE t.id = $1::bigint"
                                 : "SELECT " TENANT_COLS " FROM tenants t WHERE t.name = $1",
                           1, v, &r, "reading a tenant");
    if (s != BN_OK) return s;
    if (PQntuples(r) == 1)
        read_tenant(r, 0, out);
    else
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no tenant '%s'", ref);
    PQclear(r);
    return s;
}

bn_status bn__pg_tenant_get(bn_db *db, const char *ref, int by_id, bn_tenant *out)
{
    PGconn *c;
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, "reading a tenant");
    if (s != BN_OK) return s;
    s = tenant_get_on(db, c, ref, by_id, out);
    const bn_status e = bn__pg_end(db, c, s == BN_ERR_NOT_FOUND ? BN_OK : s, "reading a tenant");
    return e != BN_OK ? e : s;
}

bn_status bn__pg_tenant_list(bn_db *db, int (*fn)(void *ud, const bn_tenant *t), void *ud)
{
    PGresult *r;
    bn_status s = query1(db, BN_PG_ALL, "SELECT " TENANT_COLS " FROM tenants t ORDER BY t.id", 0,
                         NULL, &r, "listing tenants");
    for (int i = 0; s == BN_OK && i < PQntuples(r); i++) {
        bn_tenant t;
        read_tenant(r, i, &t);
        if (fn(ud, &t)) s = BN_ERR_CANCELLED;
    }
    PQclear(r);
    return s;
}

static bn_status audit_tenant(bn_db *db, PGconn *c, const char *actor, const char *action,
                              int64_t id, const char *details)
{
    char target[48];
    snprintf(target, sizeof target, "tenant:%" PRId64, id);
    return audit_add(db, c, actor, action, target, details);
}

bn_status bn__pg_tenant_add(bn_db *db, const char *actor, const char *name, const char *tier,
                            const char *stripe, const char *details, int64_t *id)
{
    const char *what = "adding a tenant";
    char now[24];
    const char *v[] = {name, tier, stripe && *stripe ? stripe : NULL, I64(now, bn__db_now_ms(db))};
    PGconn *c;
    PGresult *r = NULL;
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = bn__pg_q(db, c,
                 "INSERT INTO tenants (name, tier, stripe_customer, created_at) "
                 "VALUES ($1, $2, $3, $4) RETURNING id",
                 4, v, &r, what);
    if (s == BN_ERR_INVALID) bn__db_err(db, s, "a tenant named '%s' exists", name);
    const int64_t tid = s == BN_OK ? bn__pg_i64(r, 0, 0) : 0;
    PQclear(r);
    if (s == BN_OK) s = audit_tenant(db, c, actor, "tenant.add", tid, details);
    s = bn__pg_end(db, c, s, what);
    if (s == BN_OK && id) *id = tid;
    return s;
}

bn_status bn__pg_tenant_suspend(bn_db *db, const char *actor, const char *ref, int suspend)
{
    const char *what = suspend ? "suspending a tenant" : "resuming a tenant";
    PGconn *c;
    bn_tenant t;
    const int by_id = strspn(ref, "0123456789") == strlen(ref);
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = tenant_get_on(db, c, ref, by_id, &t);
    if (s == BN_OK && !strcmp(t.status, "erased"))
        s = bn__db_err(db, BN_ERR_INVALID, "tenant %" PRId64 " is erased", t.id);
    char id[24];
    const char *v[] = {suspend ? "suspended" : "active", I64(id, t.id)};
    if (s == BN_OK)
        s = bn__pg_q(db, c, "UPDATE tenants SET status = $1 WHERE id = $2", 2, v, NULL, what);
    if (s == BN_OK)
        s = audit_tenant(db, c, actor, suspend ? "tenant.suspend" : "tenant.resume", t.id, NULL);
    return bn__pg_end(db, c, s, what);
}

/* ---- API keys ---------------------------------------------------------------------------- */

/* \x and hex: a bytea parameter in text form. */
static void bytea_hex(const uint8_t *b, size_t n, char *out)
{
    memcpy(out, "\\x", 2);
    for (size_t i = 0; i < n; i++) snprintf(out + 2 + 2 * i, 3, "%02x", b[i]);
}

static bn_status audit_key(bn_db *db, PGconn *c, const char *actor, const char *action, int64_t id,
                           const char *details)
{
    char target[48];
    snprintf(target, sizeof target, "key:%" PRId64, id);
    return audit_add(db, c, actor, action, target, details);
}

bn_status bn__pg_key_create(bn_db *db, const char *actor, int64_t tenant_id, const char *prefix,
                            const uint8_t hash[32], unsigned scopes, int64_t expires_ms,
                            const char *details, int64_t *id)
{
    const char *what = "creating a key";
    char tid[24], hex[80], sc[24], now[24], exp[24], ref[24];
    bytea_hex(hash, 32, hex);
    const char *v[] = {I64(tid, tenant_id),
                       prefix,
                       hex,
                       I64(sc, scopes),
                       I64(now, bn__db_now_ms(db)),
                       expires_ms ? I64(exp, expires_ms) : NULL};
    PGconn *c;
    PGresult *r = NULL;
    bn_tenant t;
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = tenant_get_on(db, c, I64(ref, tenant_id), 1, &t);
    if (s == BN_OK && strcmp(t.status, "active"))
        s = bn__db_err(db, BN_ERR_INVALID, "tenant %" PRId64 " is %s", tenant_id, t.status);
    if (s == BN_OK)
        s = bn__pg_q(db, c,
                     "INSERT INTO api_keys (tenant_id, prefix, hash, scopes, created_at, "
                     "expires_at) VALUES ($1, $2, $3::bytea, $4, $5, $6) RETURNING id",
                     6, v, &r, what);
    const int64_t kid = s == BN_OK ? bn__pg_i64(r, 0, 0) : 0;
    PQclear(r);
    if (s == BN_OK) s = audit_key(db, c, actor, "key.create", kid, details);
    s = bn__pg_end(db, c, s, what);
    if (s == BN_OK) *id = kid;
    return s;
}

bn_status bn__pg_key_revoke(bn_db *db, const char *actor, int64_t id)
{
    const char *what = "revoking a key";
    char kid[24], now[24];
    const char *v[] = {I64(kid, id), I64(now, bn__db_now_ms(db))};
    PGconn *c;
    PGresult *r = NULL;
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = bn__pg_q(db, c,
                 "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL "
                 "RETURNING id",
                 2, v, &r, what);
    if (s == BN_OK && PQntuples(r) == 0)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no key %" PRId64 " that is not revoked", id);
    PQclear(r);
    if (s == BN_OK) s = audit_key(db, c, actor, "key.revoke", id, NULL);
    return bn__pg_end(db, c, s, what);
}

bn_status bn__pg_key_list(bn_db *db, int64_t tenant_id, int (*fn)(void *ud, const bn_api_key *k),
                          void *ud)
{
    char tid[24];
    const char *v[] = {I64(tid, tenant_id)};
    PGresult *r;
    bn_status s = query1(db, tenant_id ? tenant_id : BN_PG_ALL,
                         "SELECT id, tenant_id, prefix, scopes, created_at, expires_at, "
                         "revoked_at, last_used_at FROM api_keys WHERE $1::bigint = 0 OR "
                         "tenant_id = $1::bigint ORDER BY id",
                         1, v, &r, "listing keys");
    for (int i = 0; s == BN_OK && i < PQntuples(r); i++) {
        bn_api_key k = {.id = bn__pg_i64(r, i, 0),
                        .tenant_id = bn__pg_i64(r, i, 1),
                        .scopes = (unsigned)bn__pg_i64(r, i, 3),
                        .created_ms = bn__pg_i64(r, i, 4),
                        .expires_ms = bn__pg_i64(r, i, 5),
                        .revoked_ms = bn__pg_i64(r, i, 6),
                        .last_used_ms = bn__pg_i64(r, i, 7)};
        bn__pg_str(r, i, 2, k.prefix, sizeof k.prefix);
        if (fn(ud, &k)) s = BN_ERR_CANCELLED;
    }
    PQclear(r);
    return s;
}

static int unhex(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The bytea in text form (\x and hex) of column col into out (at most max bytes). */
static size_t read_bytea(const PGresult *r, int row, int col, uint8_t *out, size_t max)
{
    const char *t = PQgetvalue(r, row, col);
    size_t n = 0;
    if (strncmp(t, "\\x", 2)) return 0;
    for (t += 2; t[0] && t[1] && n < max; t += 2) {
        const int hi = unhex(t[0]), lo = unhex(t[1]);
        if (hi < 0 || lo < 0) return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return *t ? 0 : n;
}

bn_status bn__pg_key_find(bn_db *db, const uint8_t h[32], bn__key_row *row, int *found)
{
    /* the key is not yet known to belong to a tenant: the lookup reads with scope all, and
     * names nothing but the key's own row and its tenant */
    char hex[80];
    bytea_hex(h, 32, hex);
    const char *v[] = {hex};
    PGresult *r;
    *found = 0;
    const bn_status s = query1(db, BN_PG_ALL,
                               "SELECT k.id, k.tenant_id, k.hash, k.scopes, k.expires_at, "
                               "k.revoked_at, k.last_used_at, t.status, t.tier, t.name FROM "
                               "api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = "
                               "$1::bytea",
                               1, v, &r, "looking up a key");
    if (s == BN_OK && PQntuples(r) == 1) {
        *found = 1;
        int64_t *iv[] = {&row->id,      &row->tenant_id, NULL,      &row->scopes,
                         &row->expires, &row->revoked,   &row->used};
        for (int i = 0; i < 7; i++)
            if (iv[i]) *iv[i] = bn__pg_i64(r, 0, i);
        row->hash_len = read_bytea(r, 0, 2, row->hash, sizeof row->hash);
        bn__pg_str(r, 0, 7, row->status, sizeof row->status);
        bn__pg_str(r, 0, 8, row->tier, sizeof row->tier);
        bn__pg_str(r, 0, 9, row->name, sizeof row->name);
    }
    PQclear(r);
    return s;
}

void bn__pg_key_touch(bn_db *db, int64_t id, int64_t now)
{
    char kid[24], t[24];
    const char *v[] = {I64(kid, id), I64(t, now)};
    PGresult *r; /* best effort: a busy store never fails a request */
    if (query1(db, BN_PG_ALL, "UPDATE api_keys SET last_used_at = $2 WHERE id = $1", 2, v, &r,
               "recording a key's use") == BN_OK)
        PQclear(r);
}

/* ---- the usage ledger -------------------------------------------------------------------- */

/* The ledger row ($1..$9) and, when it is new, its meter event ($10 event id, $11 value, $12
 * now) when the tenant has a Stripe customer and the value is positive, in one statement; its
 * row: rows added to each. */
static const char record_sql[] =
        "WITH u AS (INSERT INTO usage (request_id, tenant_id, key_id, model, prompt_tokens, "
        "completion_tokens, duration_ms, status, at) "
        "SELECT $1, id, $3::bigint, $4, $5::bigint, $6::bigint, $7::bigint, $8, $9::bigint "
        "FROM tenants WHERE id = $2::bigint AND status <> 'erased' "
        "ON CONFLICT (request_id) DO NOTHING RETURNING id), "
        "o AS (INSERT INTO billing_outbox (event_id, request_id, tenant_id, customer, value, at, "
        "next_at) SELECT $10, $1, t.id, t.stripe_customer, $11::bigint, $9::bigint, $12::bigint "
        "FROM tenants t, u WHERE t.id = $2::bigint AND coalesce(t.stripe_customer, '') <> '' "
        "AND $11::bigint > 0 ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM o)";

bn_status bn__pg_usage_record(bn_db *db, const bn_usage_rec *r, int64_t at, int *added, int *known)
{
    char tid[24], kid[24], pt[24], ct[24], dur[24], a[24], eid[BN_EVENT_ID_MAX], val[24], now[24];
    bn__db_event_id(r->request_id, eid);
    const char *v[] = {r->request_id,
                       I64(tid, r->tenant_id),
                       r->key_id ? I64(kid, r->key_id) : NULL,
                       r->model,
                       I64(pt, r->prompt_tokens),
                       I64(ct, r->completion_tokens),
                       I64(dur, r->duration_ms),
                       r->status,
                       I64(a, at),
                       eid,
                       I64(val, r->prompt_tokens + r->completion_tokens),
                       I64(now, bn__db_now_ms(db))};
    /* one round trip, under the tenant's own scope (the policy refuses a row of any other
     * tenant); the second statement sees a row of the same id written before (a try again) */
    bn__pg_stmt st[] = {
            {.sql = record_sql, .n = 12, .vals = v, .keep = 1},
            {.sql = "SELECT 1 FROM usage WHERE request_id = $1", .n = 1, .vals = v, .keep = 1}};
    const bn_status s = bn__pg_run(db, r->tenant_id, 0, st, 2, "recording usage");
    *added = s == BN_OK && bn__pg_i64(st[0].res, 0, 0) == 1;
    *known = s == BN_OK && !*added && PQntuples(st[1].res) == 1;
    PQclear(st[0].res);
    PQclear(st[1].res);
    return s;
}

/* The value of a row for one column of record_n_sql as text in buf (24 bytes, or an event id),
 * or the row's own string; NULL: SQL NULL */
typedef const char *(*arr_val)(const bn_usage_rec *r, char *buf);

/* The PostgreSQL array literal of value over rows[0..n), its strings quoted when quote
 * ("{\"a\",\"b\"}", "{1,NULL}"); the caller frees it; NULL when out of memory. */
static char *arr_lit(const bn_usage_rec *rows, size_t n, arr_val value, int quote)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap), buf[BN_EVENT_ID_MAX > 24 ? BN_EVENT_ID_MAX : 24];
    if (out) out[len++] = '{';
    for (size_t i = 0; out && i < n; i++) {
        const char *v = value(&rows[i], buf);
        const int q = v && quote; /* NULL is the bare word */
        if (!v) v = "NULL";
        const size_t need = len + 2 * strlen(v) + 5; /* escapes, quotes, ',' and "}\0" */
        if (need > cap) {
            char *g = realloc(out, cap = 2 * need);
            if (!g) return free(out), NULL;
            out = g;
        }
        if (i) out[len++] = ',';
        if (q) out[len++] = '"';
        for (; *v; v++) {
            if (q && (*v == '"' || *v == '\\')) out[len++] = '\\';
            out[len++] = *v;
        }
        if (q) out[len++] = '"';
    }
    if (out) out[len++] = '}', out[len] = '\0';
    return out;
}

/* as I64, into b of 24 bytes or more */
#define I64N(b, v) (snprintf(b, 24, "%" PRId64, (int64_t)(v)), (const char *)b)

static const char *v_id(const bn_usage_rec *r, char *b) { return (void)b, r->request_id; }
static const char *v_key(const bn_usage_rec *r, char *b) { return r->key_id ? I64N(b, r->key_id) : NULL; }
static const char *v_model(const bn_usage_rec *r, char *b) { return (void)b, r->model; }
static const char *v_pt(const bn_usage_rec *r, char *b) { return I64N(b, r->prompt_tokens); }
static const char *v_ct(const bn_usage_rec *r, char *b) { return I64N(b, r->completion_tokens); }
static const char *v_dur(const bn_usage_rec *r, char *b) { return I64N(b, r->duration_ms); }
static const char *v_status(const bn_usage_rec *r, char *b) { return (void)b, r->status; }
static const char *v_at(const bn_usage_rec *r, char *b) { return I64N(b, r->at_ms); }
static const char *v_event(const bn_usage_rec *r, char *b)
{
    bn__db_event_id(r->request_id, b);
    return b;
}
static const char *v_value(const bn_usage_rec *r, char *b)
{
    return I64N(b, r->prompt_tokens + r->completion_tokens);
}

/* record_sql for many rows of one tenant ($11) given as arrays; its rows: (request id, 1) for
 * each new row, (request id, 0) for each there before */
static const char record_n_sql[] =
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], "
        "$5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::bigint[]) AS "
        "r(request_id, key_id, model, pt, ct, dur, status, at, event_id, value)), "
        "u AS (INSERT INTO usage (request_id, tenant_id, key_id, model, prompt_tokens, "
        "completion_tokens, duration_ms, status, at) "
        "SELECT r.request_id, t.id, r.key_id, r.model, r.pt, r.ct, r.dur, r.status, r.at "
        "FROM r, tenants t WHERE t.id = $11::bigint AND t.status <> 'erased' "
        "ON CONFLICT (request_id) DO NOTHING RETURNING request_id), "
        "o AS (INSERT INTO billing_outbox (event_id, request_id, tenant_id, customer, value, at, "
        "next_at) SELECT r.event_id, r.request_id, t.id, t.stripe_customer, r.value, r.at, "
        "$12::bigint FROM r JOIN u ON u.request_id = r.request_id, tenants t WHERE t.id = "
        "$11::bigint AND coalesce(t.stripe_customer, '') <> '' AND r.value > 0 "
        "ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT request_id, 1 FROM u UNION ALL "
        "SELECT request_id, 0 FROM usage WHERE request_id = ANY($1::text[])";

bn_status bn__pg_usage_record_n(bn_db *db, const bn_usage_rec *const *r, size_t n, int64_t now,
                                int *fresh, bn_status *each)
{
    const char *what = "recording usage";
    static const arr_val vals[] = {v_id, v_key, v_model, v_pt,    v_ct,
                                   v_dur, v_status, v_at, v_event, v_value};
    static const int quoted[] = {1, 0, 1, 0, 0, 0, 1, 0, 1, 0};
    /* the rows to write (each[i] BN_OK), with their times (0: now), and where each came from */
    bn_usage_rec *rows = malloc((n ? n : 1) * sizeof *rows);
    size_t *from = malloc((n ? n : 1) * sizeof *from), m = 0;
    char *lit[10] = {0}, tid[24], nw[24];
    bn_status s = rows && from ? BN_OK : BN_ERR_NOMEM;
    for (size_t i = 0; s == BN_OK && i < n; i++)
        if (each[i] == BN_OK) {
            rows[m] = *r[i];
            if (!rows[m].at_ms) rows[m].at_ms = now;
            from[m++] = i;
        }
    for (int c = 0; s == BN_OK && m && c < 10; c++)
        if (!(lit[c] = arr_lit(rows, m, vals[c], quoted[c]))) s = BN_ERR_NOMEM;
    if (s == BN_ERR_NOMEM) bn__db_err(db, s, "%s: out of memory", what);
    if (s == BN_OK && m) {
        const char *v[] = {lit[0], lit[1], lit[2], lit[3], lit[4], lit[5], lit[6], lit[7], lit[8],
                           lit[9], I64(tid, rows[0].tenant_id), I64(nw, now)};
        /* under the tenant's own scope, as one row's (the policy refuses any other tenant's) */
        bn__pg_stmt st = {.sql = record_n_sql, .n = 12, .vals = v, .keep = 1};
        s = bn__pg_run(db, rows[0].tenant_id, 0, &st, 1, what);
        /* a row the statement does not name (neither new nor there before): its tenant is gone */
        for (size_t k = 0; s == BN_OK && k < m; k++) each[from[k]] = BN_ERR_NOT_FOUND;
        for (int i = 0; s == BN_OK && i < PQntuples(st.res); i++) {
            const char *id = PQgetvalue(st.res, i, 0);
            for (size_t k = 0; k < m; k++)
                if (!strcmp(rows[k].request_id, id)) {
                    each[from[k]] = BN_OK;
                    if (bn__pg_i64(st.res, i, 1) == 1) fresh[from[k]] = 1;
                }
        }
        PQclear(st.res);
    }
    for (int c = 0; c < 10; c++) free(lit[c]);
    free(from);
    free(rows);
    return s;
}

bn_status bn__pg_usage_report(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                              int (*fn)(void *ud, const bn_usage_day *d), void *ud)
{
    char tid[24], f[24], t[24];
    const char *v[] = {I64(tid, tenant_id), I64(f, from_ms), I64(t, to_ms)};
    PGresult *r;
    bn_status s =
            query1(db, tenant_id ? tenant_id : BN_PG_ALL,
                   "SELECT u.tenant_id, t.name, t.tier, "
                   "to_char(to_timestamp(u.at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
                   "sum(u.requests), sum(u.prompt_tokens), sum(u.completion_tokens) "
                   "FROM usage u JOIN tenants t ON t.id = u.tenant_id "
                   "WHERE ($1::bigint = 0 OR u.tenant_id = $1::bigint) "
                   "AND ($2::bigint = 0 OR u.at >= $2::bigint) "
                   "AND ($3::bigint = 0 OR u.at < $3::bigint) "
                   "GROUP BY u.tenant_id, t.name, t.tier, day ORDER BY u.tenant_id, day",
                   3, v, &r, "reading the ledger");
    for (int i = 0; s == BN_OK && i < PQntuples(r); i++) {
        bn_usage_day d = {bn__pg_i64(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                          PQgetvalue(r, i, 3), bn__pg_i64(r, i, 4), bn__pg_i64(r, i, 5),
                          bn__pg_i64(r, i, 6)};
        if (fn(ud, &d)) s = BN_ERR_CANCELLED;
    }
    PQclear(r);
    return s;
}

bn_status bn__pg_usage_total(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                             bn_usage_total *out)
{
    char tid[24], f[24], t[24];
    const char *v[] = {I64(tid, tenant_id), I64(f, from_ms), I64(t, to_ms)};
    PGresult *r;
    const bn_status s = query1(
            db, tenant_id ? tenant_id : BN_PG_ALL,
            "SELECT coalesce(sum(requests), 0), coalesce(sum(prompt_tokens), 0), "
            "coalesce(sum(completion_tokens), 0) FROM usage "
            "WHERE ($1::bigint = 0 OR tenant_id = $1::bigint) "
            "AND ($2::bigint = 0 OR at >= $2::bigint) AND ($3::bigint = 0 OR at < $3::bigint)",
            3, v, &r, "reading the ledger");
    if (s == BN_OK) {
        out->requests = bn__pg_i64(r, 0, 0);
        out->prompt_tokens = bn__pg_i64(r, 0, 1);
        out->completion_tokens = bn__pg_i64(r, 0, 2);
    }
    PQclear(r);
    return s;
}

/* ---- the billing outbox ------------------------------------------------------------------ */

bn_status bn__pg_outbox_claim(bn_db *db, int64_t now_ms, int64_t lease_ms, bn_outbox_event *out,
                              size_t max_n, size_t *n)
{
    char now[24], until[24], lim[24];
    const char *v[] = {I64(now, now_ms), I64(until, now_ms + lease_ms), I64(lim, max_n)};
    PGresult *r;
    *n = 0;
    /* SKIP LOCKED: replicas' senders claim different events at the same time */
    /* in id order through the pending index (billing_outbox_pending), not by reading and
     * sorting every pending row: under a load the queue grows faster than the statistics
     * follow it, and a plan made for a few pending rows read thousands at every claim */
    bn__pg_stmt st = {.sql = "UPDATE billing_outbox SET lease_until = $2, sent_at = $1 WHERE id IN "
                             "(SELECT id FROM billing_outbox WHERE state = 'pending' AND next_at "
                             "<= $1 AND (lease_until IS NULL OR lease_until <= $1) ORDER BY id "
                             "LIMIT $3 FOR UPDATE SKIP LOCKED) "
                             "RETURNING id, event_id, tenant_id, customer, value, at, attempts",
                      .n = 3,
                      .vals = v,
                      .keep = 1};
    const bn_status s = bn__pg_run(db, BN_PG_ALL, BN_PG_NOSORT, &st, 1, "claiming meter events");
    r = st.res;
    for (int i = 0; s == BN_OK && i < PQntuples(r) && (size_t)i < max_n; i++) {
        bn_outbox_event *e = &out[(*n)++];
        e->id = bn__pg_i64(r, i, 0);
        bn__pg_str(r, i, 1, e->event_id, sizeof e->event_id);
        e->tenant_id = bn__pg_i64(r, i, 2);
        bn__pg_str(r, i, 3, e->customer, sizeof e->customer);
        e->value = bn__pg_i64(r, i, 4);
        e->at_ms = bn__pg_i64(r, i, 5);
        e->attempts = bn__pg_i64(r, i, 6);
    }
    PQclear(r);
    return s;
}

bn_status bn__pg_outbox_mark(bn_db *db, int op, int64_t id, int flag, int64_t at, const char *error)
{
    /* one statement, one round trip; its row: whether the event exists at all */
    static const char ack[] = "WITH m AS (UPDATE billing_outbox SET state = 'acked', acked_at = "
                              "$2::bigint, duplicate = $3::boolean, lease_until = NULL WHERE id = "
                              "$1::bigint AND state <> 'acked' RETURNING 1) "
                              "SELECT count(*) FROM billing_outbox WHERE id = $1::bigint";
    static const char retry[] = "WITH m AS (UPDATE billing_outbox SET attempts = attempts + 1, "
                                "last_error = $3, next_at = $2::bigint, lease_until = NULL WHERE "
                                "id = $1::bigint AND state = 'pending' RETURNING 1) "
                                "SELECT count(*) FROM billing_outbox WHERE id = $1::bigint";
    static const char fail[] = "WITH m AS (UPDATE billing_outbox SET state = 'failed', attempts = "
                               "attempts + 1, last_error = $2, lease_until = NULL WHERE id = "
                               "$1::bigint AND state = 'pending' RETURNING 1) "
                               "SELECT count(*) FROM billing_outbox WHERE id = $1::bigint";
    const char *what = op == 'a' ? "acknowledging a meter event" : "recording a failed attempt";
    char eid[24], a[24];
    const char *v[] = {I64(eid, id), I64(a, at),
                       op == 'a' ? (flag ? "true" : "false")
                       : error   ? error
                                 : ""};
    const char *vf[] = {v[0], v[2]}; /* fail: no time */
    PGresult *r;
    bn_status s = op == 'f' ? query1(db, BN_PG_ALL, fail, 2, vf, &r, what)
                            : query1(db, BN_PG_ALL, op == 'a' ? ack : retry, 3, v, &r, what);
    if (s == BN_OK && bn__pg_i64(r, 0, 0) == 0)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "outbox: no meter event %" PRId64, id);
    PQclear(r);
    return s;
}

/* ids[i] (those with flags[i] set, when flags) as a PostgreSQL array literal: "{1,2}" */
static char *array_lit(const int64_t *ids, const int *flags, size_t n)
{
    char *s = malloc(n * 21 + 3), *p = s;
    if (!s) return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (flags && !flags[i]) continue;
        if (p > s + 1) *p++ = ',';
        p += sprintf(p, "%" PRId64, ids[i]);
    }
    strcpy(p, "}");
    return s;
}

bn_status bn__pg_outbox_many(bn_db *db, const int64_t *ids, const int *duplicate, size_t n,
                             int64_t now_ms)
{
    /* one statement, one round trip; its row: how many of the events exist at all */
    /* id = ANY: the primary key's index (a join with the unnest of the ids was planned as a
     * hash join over a scan of the whole outbox) */
    static const char ack[] =
            "WITH m AS (UPDATE billing_outbox SET state = 'acked', acked_at = $3::bigint, "
            "duplicate = id = ANY($2::bigint[]), lease_until = NULL WHERE id = ANY($1::bigint[]) "
            "AND state <> 'acked' RETURNING 1) "
            "SELECT count(*) FROM billing_outbox WHERE id = ANY($1::bigint[])";
    static const char release[] = "UPDATE billing_outbox SET lease_until = NULL WHERE id = "
                                  "ANY($1::bigint[]) AND state = 'pending'";
    const char *what = duplicate ? "acknowledging meter events" : "giving back meter events";
    char a[24], *idl = array_lit(ids, NULL, n), *dl = duplicate ? array_lit(ids, duplicate, n) : NULL;
    if (!idl || (duplicate && !dl)) {
        free(idl);
        return bn__db_err(db, BN_ERR_NOMEM, "%s: out of memory", what);
    }
    const char *v[] = {idl, dl, I64(a, now_ms)};
    PGresult *r = NULL;
    bn_status s = duplicate ? query1(db, BN_PG_ALL, ack, 3, v, &r, what)
                            : query1(db, BN_PG_ALL, release, 1, v, NULL, what);
    if (s == BN_OK && duplicate && bn__pg_i64(r, 0, 0) != (int64_t)n)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "outbox: a meter event acknowledged is not in the "
                                             "outbox");
    PQclear(r);
    free(idl);
    free(dl);
    return s;
}

bn_status bn__pg_outbox_counts(bn_db *db, int64_t now_ms, bn_outbox_counts *out)
{
    char now[24];
    const char *v[] = {I64(now, now_ms)};
    PGresult *r;
    const bn_status s =
            query1(db, BN_PG_ALL,
                   "SELECT count(*) FILTER (WHERE state = 'pending'), "
                   "count(*) FILTER (WHERE state = 'acked'), count(*) FILTER (WHERE state = "
                   "'failed'), count(*) FILTER (WHERE state = 'pending' AND next_at <= $1), "
                   "count(*) FILTER (WHERE state = 'pending' AND attempts > 0), "
                   "count(*) FILTER (WHERE state = 'acked' AND duplicate), "
                   "coalesce(sum(value) FILTER (WHERE state = 'pending'), 0), "
                   "coalesce(sum(value) FILTER (WHERE state = 'acked'), 0), "
                   "coalesce(sum(value) FILTER (WHERE state = 'failed'), 0), "
                   "coalesce(min(at) FILTER (WHERE state = 'pending'), 0), "
                   "(SELECT last_error FROM billing_outbox WHERE state <> 'acked' AND "
                   "coalesce(last_error, '') <> '' ORDER BY sent_at DESC NULLS LAST, id DESC "
                   "LIMIT 1) FROM billing_outbox",
                   1, v, &r, "reading the billing outbox");
    if (s == BN_OK) {
        int64_t *f[] = {&out->pending,       &out->acked,
                        &out->failed,        &out->due,
                        &out->retrying,      &out->duplicates,
                        &out->pending_value, &out->acked_value,
                        &out->failed_value,  &out->oldest_pending_ms};
        for (int i = 0; i < (int)(sizeof f / sizeof f[0]); i++) *f[i] = bn__pg_i64(r, 0, i);
        bn__pg_str(r, 0, 10, out->last_error, sizeof out->last_error);
    }
    PQclear(r);
    return s;
}

bn_status bn__pg_outbox_requeue(bn_db *db, const char *actor, int64_t tenant_id, int64_t now_ms,
                                int64_t *n)
{
    const char *what = "putting refused meter events back";
    char tid[24], now[24], target[48], details[48];
    const char *v[] = {I64(tid, tenant_id), I64(now, now_ms)};
    PGconn *c;
    PGresult *r = NULL;
    *n = 0;
    bn_status s = bn__pg_begin(db, tenant_id ? tenant_id : BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = bn__pg_q(db, c,
                 "UPDATE billing_outbox SET state = 'pending', next_at = $2 WHERE state = "
                 "'failed' AND ($1::bigint = 0 OR tenant_id = $1::bigint) RETURNING id",
                 2, v, &r, what);
    const int64_t got = s == BN_OK ? PQntuples(r) : 0;
    PQclear(r);
    if (tenant_id)
        snprintf(target, sizeof target, "tenant:%" PRId64, tenant_id);
    else
        snprintf(target, sizeof target, "billing");
    snprintf(details, sizeof details, "{\"events\": %" PRId64 "}", got);
    if (s == BN_OK && got) s = audit_add(db, c, actor, "billing.retry", target, details);
    s = bn__pg_end(db, c, s, what);
    if (s == BN_OK) *n = got;
    return s;
}

/* The ledger and the outbox per tenant over the same window ($2, $3), as outbox.c's. */
#define RECONCILE_SQL                                                                              \
    "WITH l AS (SELECT tenant_id, sum(requests) AS r, "                                            \
    "sum(prompt_tokens + completion_tokens) AS tok FROM usage "                                    \
    "WHERE ($2::bigint = 0 OR at >= $2::bigint) AND ($3::bigint = 0 OR at < $3::bigint) "          \
    "GROUP BY tenant_id), "                                                                        \
    "o AS (SELECT tenant_id, count(*) AS n, sum(value) AS q, "                                     \
    "coalesce(sum(value) FILTER (WHERE state = 'acked'), 0) AS a, "                                \
    "coalesce(sum(value) FILTER (WHERE state = 'pending'), 0) AS p, "                              \
    "coalesce(sum(value) FILTER (WHERE state = 'failed'), 0) AS f FROM billing_outbox "            \
    "WHERE ($2::bigint = 0 OR at >= $2::bigint) AND ($3::bigint = 0 OR at < $3::bigint) "          \
    "GROUP BY tenant_id) "                                                                         \
    "SELECT t.id, t.name, coalesce(t.stripe_customer, ''), coalesce(l.r, 0), "                     \
    "coalesce(l.tok, 0), coalesce(o.n, 0), coalesce(o.q, 0), coalesce(o.a, 0), "                   \
    "coalesce(o.p, 0), coalesce(o.f, 0) FROM tenants t "                                           \
    "LEFT JOIN l ON l.tenant_id = t.id LEFT JOIN o ON o.tenant_id = t.id "                         \
    "WHERE ($1::bigint <> 0 AND t.id = $1::bigint) OR ($1::bigint = 0 AND "                        \
    "(coalesce(t.stripe_customer, '') <> '' OR o.n IS NOT NULL)) ORDER BY t.id"

bn_status bn__pg_billing_reconcile(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                                   int (*fn)(void *ud, const bn_billing_row *r), void *ud)
{
    char tid[24], f[24], t[24];
    const char *v[] = {I64(tid, tenant_id), I64(f, from_ms), I64(t, to_ms)};
    PGresult *r;
    bn_status s = query1(db, tenant_id ? tenant_id : BN_PG_ALL, RECONCILE_SQL, 3, v, &r,
                         "reconciling the ledger with the outbox");
    for (int i = 0; s == BN_OK && i < PQntuples(r); i++) {
        bn_billing_row b = {.tenant_name = PQgetvalue(r, i, 1), .customer = PQgetvalue(r, i, 2)};
        int64_t *iv[] = {&b.tenant_id,
                         NULL,
                         NULL,
                         &b.ledger_requests,
                         &b.ledger_tokens,
                         &b.events,
                         &b.queued_tokens,
                         &b.acked_tokens,
                         &b.pending_tokens,
                         &b.failed_tokens};
        for (int k = 0; k < 10; k++)
            if (iv[k]) *iv[k] = bn__pg_i64(r, i, k);
        if (fn(ud, &b)) s = BN_ERR_CANCELLED;
    }
    PQclear(r);
    return s;
}

/* ---- delete, erase, export --------------------------------------------------------------- */

/* Begins a transaction (scope all) and finds ref's tenant in it. */
static bn_status begin_tenant(bn_db *db, const char *ref, PGconn **c, bn_tenant *t,
                              const char *what)
{
    bn_status s = bn__pg_begin(db, BN_PG_ALL, c, what);
    if (s != BN_OK) return s;
    s = tenant_get_on(db, *c, ref, strspn(ref, "0123456789") == strlen(ref), t);
    if (s != BN_OK) bn__pg_end(db, *c, s, what);
    return s;
}

/* Runs each of the statements of sqls (NULL-ended) with $1 the tenant's id. */
static bn_status run_each(bn_db *db, PGconn *c, const char *const *sqls, int64_t tenant,
                          const char *what)
{
    char tid[24];
    const char *v[] = {I64(tid, tenant)};
    bn_status s = BN_OK;
    for (; s == BN_OK && *sqls; sqls++) s = bn__pg_q(db, c, *sqls, 1, v, NULL, what);
    return s;
}

bn_status bn__pg_tenant_delete(bn_db *db, const char *actor, const char *ref)
{
    static const char *const del[] = {"DELETE FROM api_keys WHERE tenant_id = $1",
                                      "DELETE FROM tenants WHERE id = $1", NULL};
    const char *what = "deleting a tenant";
    PGconn *c;
    bn_tenant t;
    bn_status s = begin_tenant(db, ref, &c, &t, what);
    if (s != BN_OK) return s;
    char tid[24];
    const char *v[] = {I64(tid, t.id)};
    PGresult *r = NULL;
    s = bn__pg_q(db, c, "SELECT count(*) FROM usage WHERE tenant_id = $1", 1, v, &r, what);
    const int64_t n = s == BN_OK ? bn__pg_i64(r, 0, 0) : 0;
    PQclear(r);
    if (s == BN_OK && n > 0)
        s = bn__db_err(db, BN_ERR_INVALID,
                       "tenant %" PRId64 " has %" PRId64 " usage records (billing data): erase "
                       "it instead",
                       t.id, n);
    if (s == BN_OK) s = run_each(db, c, del, t.id, what);
    if (s == BN_OK) s = audit_tenant(db, c, actor, "tenant.delete", t.id, NULL);
    return bn__pg_end(db, c, s, what);
}

bn_status bn__pg_tenant_erase(bn_db *db, const char *actor, const char *ref)
{
    /* as tenants.c: the keys go, the name and Stripe id too, the usage rows are folded into
     * one anonymous row per UTC day and model, the meter events are deleted (counted) */
    static const char *const erase[] = {
            "DELETE FROM api_keys WHERE tenant_id = $1",
            "UPDATE tenants SET name = 'erased-' || id, status = 'erased', stripe_customer = "
            "NULL WHERE id = $1",
            "INSERT INTO usage (request_id, tenant_id, key_id, model, requests, prompt_tokens, "
            "completion_tokens, duration_ms, status, at) SELECT NULL, tenant_id, NULL, model, "
            "sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(duration_ms), "
            "'erased', min(at) FROM usage WHERE tenant_id = $1 AND status <> 'erased' "
            "GROUP BY tenant_id, at / 86400000, model",
            "DELETE FROM usage WHERE tenant_id = $1 AND status <> 'erased'",
            "DELETE FROM billing_outbox WHERE tenant_id = $1",
            NULL};
    const char *what = "erasing a tenant";
    PGconn *c;
    bn_tenant t;
    bn_status s = begin_tenant(db, ref, &c, &t, what);
    if (s != BN_OK) return s;
    char tid[24], unbilled[96] = "{}";
    const char *v[] = {I64(tid, t.id)};
    PGresult *r = NULL;
    s = bn__pg_q(db, c,
                 "SELECT count(*), coalesce(sum(value), 0) FROM billing_outbox WHERE tenant_id "
                 "= $1 AND state = 'pending'",
                 1, v, &r, what);
    if (s == BN_OK)
        snprintf(unbilled, sizeof unbilled,
                 "{\"unbilled_events\": %" PRId64 ", \"unbilled_tokens\": %" PRId64 "}",
                 bn__pg_i64(r, 0, 0), bn__pg_i64(r, 0, 1));
    PQclear(r);
    if (s == BN_OK) s = run_each(db, c, erase, t.id, what);
    if (s == BN_OK) s = audit_tenant(db, c, actor, "tenant.erase", t.id, unbilled);
    return bn__pg_end(db, c, s, what);
}

/* The whole export as one document, as tenants.c's, built by PostgreSQL's JSON functions. */
static const char export_sql[] =
        "SELECT json_build_object("
        " 'tenant', (SELECT json_build_object('id', id, 'name', name, 'tier', tier, 'status',"
        "   status, 'stripe_customer', stripe_customer, 'created_ms', created_at)"
        "   FROM tenants WHERE id = $1),"
        " 'keys', (SELECT coalesce(json_agg(json_build_object('id', id, 'prefix', prefix,"
        "   'scopes', trim(BOTH ',' FROM (CASE WHEN scopes & 1 <> 0 THEN 'inference,' ELSE '' END)"
        "     || (CASE WHEN scopes & 2 <> 0 THEN 'usage,' ELSE '' END)"
        "     || (CASE WHEN scopes & 4 <> 0 THEN 'admin' ELSE '' END)),"
        "   'created_ms', created_at, 'expires_ms', expires_at, 'revoked_ms', revoked_at,"
        "   'last_used_ms', last_used_at) ORDER BY id), '[]') FROM api_keys WHERE tenant_id = $1),"
        " 'usage', (SELECT coalesce(json_agg(json_build_object('request_id', request_id,"
        "   'key_id', key_id, 'model', model, 'requests', requests,"
        "   'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,"
        "   'duration_ms', duration_ms, 'status', status, 'at_ms', at) ORDER BY id), '[]')"
        "   FROM usage WHERE tenant_id = $1),"
        " 'billing_events', (SELECT coalesce(json_agg(json_build_object('event_id', event_id,"
        "   'request_id', request_id, 'stripe_customer', customer, 'value', value, 'at_ms', at,"
        "   'state', state, 'attempts', attempts, 'acked_ms', acked_at,"
        "   'duplicate', CASE WHEN duplicate THEN 1 ELSE 0 END, 'last_error', last_error)"
        "   ORDER BY id), '[]') FROM billing_outbox WHERE tenant_id = $1),"
        " 'audit', (SELECT coalesce(json_agg(json_build_object('id', id, 'at_ms', at, 'actor',"
        "   actor, 'action', action, 'target', target, 'details', details::json) ORDER BY id),"
        "   '[]') FROM audit WHERE target = $2 OR target IN"
        "   (SELECT 'key:' || id FROM api_keys WHERE tenant_id = $1)))::text";

bn_status bn__pg_tenant_export(bn_db *db, const char *actor, const char *ref, char **json)
{
    const char *what = "exporting a tenant";
    PGconn *c;
    bn_tenant t;
    *json = NULL;
    bn_status s = begin_tenant(db, ref, &c, &t, what);
    if (s != BN_OK) return s;
    char tid[24], target[48];
    snprintf(target, sizeof target, "tenant:%" PRId64, t.id);
    const char *v[] = {I64(tid, t.id), target};
    PGresult *r = NULL;
    s = audit_tenant(db, c, actor, "tenant.export", t.id, NULL);
    if (s == BN_OK) s = bn__pg_q(db, c, export_sql, 2, v, &r, what);
    if (s == BN_OK && !(*json = bn_strdup(PQgetvalue(r, 0, 0))))
        s = bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    PQclear(r);
    s = bn__pg_end(db, c, s, what);
    if (s != BN_OK) bn_free(*json), *json = NULL;
    return s;
}

/* ---- retention (retention.c's periods, cutoffs and audit entry) ----------------------------
 *
 * One transaction per table, with the scope of every tenant (administration's): the ledger's
 * rows of requests before its cutoff (a UTC midnight) folded into one 'aggregate' row per
 * tenant, UTC day and model by one statement, so that the rows deleted are exactly those
 * summed while replicas go on writing; keys revoked or expired before theirs deleted. Each is
 * audited as retention.apply when it changed rows. As in the history, the billing outbox is
 * kept whole (undelivered events included) and the audit log is never pruned (its hash chain
 * still verifies); the PostgreSQL store has no runs. */

static const char fold_sql[] =
        "WITH gone AS (DELETE FROM usage WHERE at < $1::bigint AND request_id IS NOT NULL "
        "RETURNING tenant_id, model, requests, prompt_tokens, completion_tokens, duration_ms, at), "
        "folded AS (INSERT INTO usage (request_id, tenant_id, key_id, model, requests, "
        "prompt_tokens, completion_tokens, duration_ms, status, at) SELECT NULL, tenant_id, NULL, "
        "model, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(duration_ms), "
        "'aggregate', min(at) FROM gone GROUP BY tenant_id, at / 86400000, model RETURNING 1) "
        "SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM folded)";
static const char keys_sql[] =
        "WITH gone AS (DELETE FROM api_keys WHERE revoked_at < $1::bigint OR "
        "(revoked_at IS NULL AND expires_at < $1::bigint) RETURNING 1) SELECT count(*) FROM gone";

/* The ledger's step (ledger) or the keys' at cut, in a transaction of its own, rolled back
 * when dry; its counts added to out. */
static bn_status retention_step(bn_db *db, int ledger, int64_t cut, int dry,
                                bn_retention_counts *out)
{
    const char *what = ledger ? "folding the ledger" : "deleting old keys";
    bn_retention_counts one = {0};
    PGconn *c;
    PGresult *r = NULL;
    char cs[24];
    const char *v[] = {I64(cs, cut)};
    bn_status s = bn__pg_begin(db, BN_PG_ALL, &c, what);
    if (s != BN_OK) return s;
    s = bn__pg_q(db, c, ledger ? fold_sql : keys_sql, 1, v, &r, what);
    if (s == BN_OK && ledger)
        one.ledger_rows = bn__pg_i64(r, 0, 0), one.ledger_aggregates = bn__pg_i64(r, 0, 1);
    else if (s == BN_OK)
        one.keys = bn__pg_i64(r, 0, 0);
    PQclear(r);
    if (s == BN_OK && !dry && (one.ledger_rows || one.keys)) {
        char d[256];
        bn__db_retention_details(db, &one, d, sizeof d);
        s = audit_add(db, c, "system:retention", "retention.apply", "store", d);
    }
    if (s == BN_OK && dry) s = BN_ERR_CANCELLED; /* rolled back, counts kept */
    s = bn__pg_end(db, c, s, what);
    if (s == BN_ERR_CANCELLED && dry) s = BN_OK;
    if (s != BN_OK) return s;
    out->ledger_rows += one.ledger_rows;
    out->ledger_aggregates += one.ledger_aggregates;
    out->keys += one.keys;
    return BN_OK;
}

#define APPLIED_KEY "retention_applied_ms"

bn_status bn__pg_retention_apply(bn_db *db, int dry_run, int mark, bn_retention_counts *out)
{
    const int64_t now = bn__db_now_ms(db);
    int64_t cut[3];
    bn__db_retention_cuts(db, now, cut);
    memset(out, 0, sizeof *out);
    bn_status s = BN_OK;
    if (cut[1]) s = retention_step(db, 1, cut[1], dry_run, out);
    if (s == BN_OK && cut[2]) s = retention_step(db, 0, cut[2], dry_run, out);
    if (s != BN_OK || !mark || dry_run) return s;
    PGresult *r;
    char ns[24];
    const char *v[] = {APPLIED_KEY, I64(ns, now)};
    s = query1(db, BN_PG_ALL,
               "INSERT INTO bitnet_meta (key, value) VALUES ($1, $2::bigint) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               2, v, &r, "recording the retention's time");
    PQclear(r);
    return s;
}

/* Replicas that find it due together each apply it: the second finds nothing left to do. */
bn_status bn__pg_retention_daily(bn_db *db, int *applied, bn_retention_counts *out)
{
    PGresult *r;
    const char *v[] = {APPLIED_KEY};
    bn_status s = query1(db, BN_PG_ALL, "SELECT value FROM bitnet_meta WHERE key = $1", 1, v, &r,
                         "reading the retention's time");
    const int64_t last = s == BN_OK && PQntuples(r) == 1 ? bn__pg_i64(r, 0, 0) : 0;
    PQclear(r);
    if (s != BN_OK || !bn__db_retention_due(last, bn__db_now_ms(db))) return s;
    bn_retention_counts c;
    s = bn__pg_retention_apply(db, 0, 1, &c);
    if (s == BN_OK && applied) *applied = 1;
    if (out) *out = c;
    return s;
}
