/* usage.c - the usage ledger: one row per finished request, idempotent by request id, with
 * its meter event in the billing outbox (outbox.c) in the same transaction, and the report
 * per tenant and day. */
#include "db_int.h"

#include <inttypes.h>
#include <string.h>

#include "bitnet/db_tenants.h"

static bn_status request_known(bn_db *db, const char *request_id, int *known)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare_kept(db, "SELECT 1 FROM usage WHERE request_id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *known = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading the ledger");
    bn__db_done(db, st);
    return s;
}

static bn_status check_rec(bn_db *db, const bn_usage_rec *r)
{
    if (!r->request_id || !*r->request_id || strlen(r->request_id) > 200)
        return bn__db_err(db, BN_ERR_INVALID, "usage: a request id of 1 to 200 bytes is needed");
    if (!r->model || !r->status || !*r->status)
        return bn__db_err(db, BN_ERR_INVALID, "usage: no model or status");
    if (r->prompt_tokens < 0 || r->completion_tokens < 0 || r->duration_ms < 0)
        return bn__db_err(db, BN_ERR_INVALID, "usage: negative counts");
    if (!strcmp(r->status, "erased"))
        return bn__db_err(db, BN_ERR_INVALID, "usage: the status 'erased' is reserved");
    return BN_OK;
}

/* The ledger row; *added 1 when it is new (a tenant that is gone or erased inserts nothing). */
static bn_status insert_row(bn_db *db, const bn_usage_rec *r, int64_t at, int *added)
{
    *added = 0;
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare_kept(db,
                                      "INSERT INTO usage (request_id, tenant_id, key_id, model, "
                                      "prompt_tokens, completion_tokens, duration_ms, status, at) "
                                      "SELECT ?1, id, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM tenants "
                                      "WHERE id = ?2 AND status != 'erased' "
                                      "ON CONFLICT(request_id) DO NOTHING",
                                      &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->tenant_id);
    if (r->key_id) sqlite3_bind_int64(st, 3, r->key_id);
    sqlite3_bind_text(st, 4, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->prompt_tokens);
    sqlite3_bind_int64(st, 6, r->completion_tokens);
    sqlite3_bind_int64(st, 7, r->duration_ms);
    sqlite3_bind_text(st, 8, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, at);
    s = bn__db_step_done(db, st, "recording usage");
    if (s == BN_OK) *added = sqlite3_changes(db->sql) == 1;
    return s;
}

static bn_status record(bn_db *db, const bn_usage_rec *r, int64_t at, int *added)
{
    bn_status s = bn__db_begin(db, "recording usage");
    if (s != BN_OK) return s;
    s = insert_row(db, r, at, added);
    if (s == BN_OK && *added) s = bn__db_outbox_add(db, r, at);
    return bn__db_end(db, s, "recording usage");
}

bn_status bn_db_usage_record(bn_db *db, const bn_usage_rec *r, int *fresh)
{
    if (fresh) *fresh = 0;
    bn_status s = check_rec(db, r);
    if (s != BN_OK) return s;
    const int64_t at = r->at_ms ? r->at_ms : bn__db_now_ms(db);
    int added = 0, known = 0;
    /* the row and its meter event in one transaction: both or neither */
    s = db->pg ? bn__pg_usage_record(db, r, at, &added, &known) : record(db, r, at, &added);
    if (s != BN_OK) return s;
    if (added) {
        if (fresh) *fresh = 1;
        return BN_OK;
    }
    if (!db->pg) s = request_known(db, r->request_id, &known);
    if (s == BN_OK && !known)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "usage: no tenant %" PRId64 " (or it is erased)",
                       r->tenant_id);
    return s;
}

bn_status bn_db_usage_record_n(bn_db *db, const bn_usage_rec *const *r, size_t n, int *fresh,
                               bn_status *each)
{
    for (size_t i = 0; i < n; i++) fresh[i] = 0, each[i] = BN_OK;
    if (n == 0) return BN_OK;
    for (size_t i = 1; i < n; i++)
        if (r[i]->tenant_id != r[0]->tenant_id)
            return bn__db_err(db, BN_ERR_INVALID, "usage: rows of more than one tenant");
    if (!db->pg) {
        for (size_t i = 0; i < n; i++) {
            each[i] = bn_db_usage_record(db, r[i], &fresh[i]);
            if (each[i] != BN_OK && each[i] != BN_ERR_NOT_FOUND && each[i] != BN_ERR_INVALID)
                return each[i];
        }
        return BN_OK;
    }
    for (size_t i = 0; i < n; i++) each[i] = check_rec(db, r[i]);
    return bn__pg_usage_record_n(db, r, n, bn__db_now_ms(db), fresh, each);
}

bn_status bn_db_usage_report(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                             int (*fn)(void *ud, const bn_usage_day *d), void *ud)
{
    if (db->pg) return bn__pg_usage_report(db, tenant_id, from_ms, to_ms, fn, ud);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db,
            "SELECT u.tenant_id, t.name, t.tier, date(u.at / 1000, 'unixepoch') AS day, "
            "sum(u.requests), sum(u.prompt_tokens), sum(u.completion_tokens) "
            "FROM usage u JOIN tenants t ON t.id = u.tenant_id "
            "WHERE (?1 = 0 OR u.tenant_id = ?1) AND (?2 = 0 OR u.at >= ?2) "
            "AND (?3 = 0 OR u.at < ?3) GROUP BY u.tenant_id, day ORDER BY u.tenant_id, day",
            &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, from_ms);
    sqlite3_bind_int64(st, 3, to_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *tier = (const char *)sqlite3_column_text(st, 2);
        const char *day = (const char *)sqlite3_column_text(st, 3);
        bn_usage_day d = {sqlite3_column_int64(st, 0),
                          name ? name : "",
                          tier ? tier : "",
                          day ? day : "",
                          sqlite3_column_int64(st, 4),
                          sqlite3_column_int64(st, 5),
                          sqlite3_column_int64(st, 6)};
        if (fn(ud, &d)) {
            sqlite3_finalize(st);
            return BN_ERR_CANCELLED;
        }
    }
    if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading the ledger");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_usage_total(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                            bn_usage_total *out)
{
    memset(out, 0, sizeof *out);
    if (db->pg) return bn__pg_usage_total(db, tenant_id, from_ms, to_ms, out);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT total(requests), total(prompt_tokens), "
                                 "total(completion_tokens) FROM usage "
                                 "WHERE (?1 = 0 OR tenant_id = ?1) AND (?2 = 0 OR at >= ?2) "
                                 "AND (?3 = 0 OR at < ?3)",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, from_ms);
    sqlite3_bind_int64(st, 3, to_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->requests = sqlite3_column_int64(st, 0);
        out->prompt_tokens = sqlite3_column_int64(st, 1);
        out->completion_tokens = sqlite3_column_int64(st, 2);
    } else {
        s = bn__db_sqlerr(db, rc, "reading the ledger");
    }
    sqlite3_finalize(st);
    return s;
}
