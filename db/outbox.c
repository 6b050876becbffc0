/* outbox.c - the billing outbox: one meter event per ledger row that bills tokens to a Stripe
 * customer, added in the ledger row's transaction (usage.c), claimed by a sender under a
 * lease, then acknowledged, due again or failed for good; its counts, and the reconciliation
 * of the ledger with it. See bitnet/db_tenants.h; the schema is migration 6. */
#include "db_int.h"

#include <inttypes.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/db_tenants.h"

/* Stripe's identifier for request_id: itself when it fits, else "bn-" + its SHA-256. */
void bn__db_event_id(const char *request_id, char out[BN_EVENT_ID_MAX])
{
    const size_t n = strlen(request_id);
    if (n < BN_EVENT_ID_MAX) {
        memcpy(out, request_id, n + 1);
        return;
    }
    struct sha256_ctx c;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&c);
    sha256_update(&c, n, (const uint8_t *)request_id);
    sha256_digest(&c, sizeof d, d);
    memcpy(out, "bn-", 4);
    for (size_t i = 0; i < sizeof d; i++) snprintf(out + 3 + 2 * i, 3, "%02x", d[i]);
}

bn_status bn__db_outbox_add(bn_db *db, const bn_usage_rec *r, int64_t at_ms)
{
    const int64_t value = r->prompt_tokens + r->completion_tokens;
    if (value <= 0) return BN_OK; /* nothing to bill */
    char eid[BN_EVENT_ID_MAX];
    bn__db_event_id(r->request_id, eid);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare_kept(db,
                                      "INSERT INTO billing_outbox (event_id, request_id, "
                                      "tenant_id, customer, value, at, next_at) "
                                      "SELECT ?1, ?2, id, stripe_customer, ?3, ?4, ?5 FROM tenants "
                                      "WHERE id = ?6 AND coalesce(stripe_customer, '') != '' "
                                      "ON CONFLICT DO NOTHING",
                                      &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, eid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, value);
    sqlite3_bind_int64(st, 4, at_ms);
    sqlite3_bind_int64(st, 5, bn__db_now_ms(db));
    sqlite3_bind_int64(st, 6, r->tenant_id);
    return bn__db_step_done(db, st, "adding the meter event to the billing outbox");
}

bn_status bn__db_outbox_erase(bn_db *db, int64_t tenant_id, char *details, size_t size)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT count(*), total(value) FROM billing_outbox "
                                 "WHERE tenant_id = ?1 AND state = 'pending'",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(details, size, "{\"unbilled_events\": %lld, \"unbilled_tokens\": %lld}",
                 (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1));
    else
        s = bn__db_sqlerr(db, rc, "reading the billing outbox");
    sqlite3_finalize(st);
    if (s != BN_OK) return s;
    s = bn__db_prepare(db, "DELETE FROM billing_outbox WHERE tenant_id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    return bn__db_step_done(db, st, "erasing meter events");
}

/* ---- the sender's calls ---------------------------------------------------------------------- */

static void copy_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? v : "");
}

/* The due events into out (inside the claim's transaction), oldest first through the index
 * of pending ids (migration 7): the planner, left to itself, reads every pending row through
 * billing_outbox_due and sorts them. */
static bn_status select_due(bn_db *db, int64_t now, bn_outbox_event *out, size_t max_n, size_t *n)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT id, event_id, tenant_id, customer, value, at, attempts "
                                 "FROM billing_outbox INDEXED BY billing_outbox_pending "
                                 "WHERE state = 'pending' AND next_at <= ?1 "
                                 "AND (lease_until IS NULL OR lease_until <= ?1) "
                                 "ORDER BY id LIMIT ?2",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max_n);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_outbox_event *e = &out[(*n)++];
        e->id = sqlite3_column_int64(st, 0);
        copy_text(st, 1, e->event_id, sizeof e->event_id);
        e->tenant_id = sqlite3_column_int64(st, 2);
        copy_text(st, 3, e->customer, sizeof e->customer);
        e->value = sqlite3_column_int64(st, 4);
        e->at_ms = sqlite3_column_int64(st, 5);
        e->attempts = sqlite3_column_int64(st, 6);
    }
    if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading the billing outbox");
    sqlite3_finalize(st);
    return s;
}

static bn_status lease(bn_db *db, const bn_outbox_event *e, size_t n, int64_t now, int64_t until)
{
    if (n == 0) return BN_OK;
    sqlite3_stmt *st = NULL;
    bn_status s = bn__db_prepare(
            db, "UPDATE billing_outbox SET lease_until = ?2, sent_at = ?3 WHERE id = ?1", &st);
    for (size_t i = 0; s == BN_OK && i < n; i++) {
        sqlite3_bind_int64(st, 1, e[i].id);
        sqlite3_bind_int64(st, 2, until);
        sqlite3_bind_int64(st, 3, now);
        const int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "leasing meter events");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_outbox_claim(bn_db *db, int64_t now_ms, int64_t lease_ms, bn_outbox_event *out,
                             size_t max_n, size_t *n)
{
    *n = 0;
    if (max_n == 0) return BN_OK;
    if (lease_ms <= 0) return bn__db_err(db, BN_ERR_INVALID, "outbox: the lease must be > 0");
    if (db->pg) return bn__pg_outbox_claim(db, now_ms, lease_ms, out, max_n, n);
    bn_status s = bn__db_begin(db, "claiming meter events");
    if (s != BN_OK) return s;
    s = select_due(db, now_ms, out, max_n, n);
    if (s == BN_OK) s = lease(db, out, *n, now_ms, now_ms + lease_ms);
    s = bn__db_end(db, s, "claiming meter events");
    if (s != BN_OK) *n = 0;
    return s;
}

/* Runs an UPDATE of one event (st prepared, bound); BN_ERR_NOT_FOUND when no row has id. */
static bn_status update_one(bn_db *db, sqlite3_stmt *st, int64_t id, const char *what)
{
    bn_status s = bn__db_step_done(db, st, what);
    if (s != BN_OK || sqlite3_changes(db->sql) == 1) return s;
    s = bn__db_prepare(db, "SELECT 1 FROM billing_outbox WHERE id = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "outbox: no meter event %" PRId64, id);
    else if (rc != SQLITE_ROW)
        s = bn__db_sqlerr(db, rc, what);
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_outbox_ack(bn_db *db, int64_t id, int duplicate, int64_t now_ms)
{
    if (db->pg) return bn__pg_outbox_mark(db, 'a', id, duplicate, now_ms, NULL);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "UPDATE billing_outbox SET state = 'acked', acked_at = ?2, "
                                 "duplicate = ?3, lease_until = NULL WHERE id = ?1 "
                                 "AND state != 'acked'",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int(st, 3, duplicate != 0);
    return update_one(db, st, id, "acknowledging a meter event");
}

bn_status bn_db_outbox_ack_n(bn_db *db, const int64_t *ids, const int *duplicate, size_t n,
                             int64_t now_ms)
{
    if (n == 0) return BN_OK;
    if (db->pg) return bn__pg_outbox_many(db, ids, duplicate, n, now_ms);
    const char *what = "acknowledging meter events";
    bn_status s = bn__db_begin(db, what), missing = BN_OK;
    for (size_t i = 0; s == BN_OK && i < n; i++) {
        s = bn_db_outbox_ack(db, ids[i], duplicate[i], now_ms);
        if (s == BN_ERR_NOT_FOUND) missing = s, s = BN_OK; /* the others all the same */
    }
    s = bn__db_end(db, s, what);
    if (s == BN_OK && missing != BN_OK)
        s = bn__db_err(db, missing, "outbox: a meter event acknowledged is not in the outbox");
    return s;
}

bn_status bn_db_outbox_release(bn_db *db, const int64_t *ids, size_t n)
{
    if (n == 0) return BN_OK;
    if (db->pg) return bn__pg_outbox_many(db, ids, NULL, n, 0);
    const char *what = "giving back meter events";
    sqlite3_stmt *st = NULL;
    bn_status s = bn__db_begin(db, what);
    if (s == BN_OK)
        s = bn__db_prepare(db,
                           "UPDATE billing_outbox SET lease_until = NULL WHERE id = ?1 "
                           "AND state = 'pending'",
                           &st);
    for (size_t i = 0; s == BN_OK && i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        const int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, what);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return bn__db_end(db, s, what);
}

bn_status bn_db_outbox_retry(bn_db *db, int64_t id, int64_t next_ms, const char *error)
{
    if (db->pg) return bn__pg_outbox_mark(db, 'r', id, 0, next_ms, error);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "UPDATE billing_outbox SET attempts = attempts + 1, "
                                 "last_error = ?3, next_at = ?2, lease_until = NULL "
                                 "WHERE id = ?1 AND state = 'pending'",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, next_ms);
    sqlite3_bind_text(st, 3, error ? error : "", -1, SQLITE_STATIC);
    return update_one(db, st, id, "recording a failed attempt");
}

bn_status bn_db_outbox_fail(bn_db *db, int64_t id, const char *error)
{
    if (db->pg) return bn__pg_outbox_mark(db, 'f', id, 0, 0, error);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "UPDATE billing_outbox SET state = 'failed', attempts = "
                                 "attempts + 1, last_error = ?2, lease_until = NULL "
                                 "WHERE id = ?1 AND state = 'pending'",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, error ? error : "", -1, SQLITE_STATIC);
    return update_one(db, st, id, "recording a refused meter event");
}

bn_status bn_db_outbox_requeue(bn_db *db, const char *actor, int64_t tenant_id, int64_t now_ms,
                               int64_t *n)
{
    *n = 0;
    if (db->pg) return bn__pg_outbox_requeue(db, actor, tenant_id, now_ms, n);
    const char *what = "putting refused meter events back";
    bn_status s = bn__db_begin(db, what);
    if (s != BN_OK) return s;
    sqlite3_stmt *st;
    s = bn__db_prepare(db,
                       "UPDATE billing_outbox SET state = 'pending', next_at = ?2 "
                       "WHERE state = 'failed' AND (?1 = 0 OR tenant_id = ?1)",
                       &st);
    if (s == BN_OK) {
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, now_ms);
        s = bn__db_step_done(db, st, what);
    }
    if (s == BN_OK) *n = sqlite3_changes(db->sql);
    char target[48], details[48];
    snprintf(target, sizeof target, "tenant:%" PRId64, tenant_id);
    if (!tenant_id) snprintf(target, sizeof target, "billing");
    snprintf(details, sizeof details, "{\"events\": %" PRId64 "}", *n);
    if (s == BN_OK && *n) s = bn__db_audit_add(db, actor, "billing.retry", target, details);
    s = bn__db_end(db, s, what);
    if (s != BN_OK) *n = 0;
    return s;
}

/* ---- what is in it -----------------------------------------------------------------------------
 */

static bn_status last_error(bn_db *db, bn_outbox_counts *out)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT last_error FROM billing_outbox WHERE state != 'acked' "
                                 "AND coalesce(last_error, '') != '' ORDER BY sent_at DESC, id "
                                 "DESC LIMIT 1",
                                 &st);
    if (s != BN_OK) return s;
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        copy_text(st, 0, out->last_error, sizeof out->last_error);
    else if (rc != SQLITE_DONE)
        s = bn__db_sqlerr(db, rc, "reading the billing outbox");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_outbox_counts(bn_db *db, int64_t now_ms, bn_outbox_counts *out)
{
    memset(out, 0, sizeof *out);
    if (db->pg) return bn__pg_outbox_counts(db, now_ms, out);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db,
            "SELECT total(state = 'pending'), total(state = 'acked'), total(state = 'failed'), "
            "total(state = 'pending' AND next_at <= ?1), "
            "total(state = 'pending' AND attempts > 0), total(state = 'acked' AND duplicate), "
            "total(CASE WHEN state = 'pending' THEN value END), "
            "total(CASE WHEN state = 'acked' THEN value END), "
            "total(CASE WHEN state = 'failed' THEN value END), "
            "min(CASE WHEN state = 'pending' THEN at END) FROM billing_outbox",
            &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, now_ms);
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t *v[] = {&out->pending,       &out->acked,
                        &out->failed,        &out->due,
                        &out->retrying,      &out->duplicates,
                        &out->pending_value, &out->acked_value,
                        &out->failed_value,  &out->oldest_pending_ms};
        for (int i = 0; i < (int)(sizeof v / sizeof v[0]); i++) *v[i] = sqlite3_column_int64(st, i);
    } else {
        s = bn__db_sqlerr(db, rc, "reading the billing outbox");
    }
    sqlite3_finalize(st);
    return s == BN_OK ? last_error(db, out) : s;
}

/* The ledger and the outbox per tenant, over the same window of time (?2, ?3). */
#define RECONCILE_SQL                                                                              \
    "WITH l AS (SELECT tenant_id, sum(requests) AS r, "                                            \
    "sum(prompt_tokens + completion_tokens) AS tok FROM usage "                                    \
    "WHERE (?2 = 0 OR at >= ?2) AND (?3 = 0 OR at < ?3) GROUP BY tenant_id), "                     \
    "o AS (SELECT tenant_id, count(*) AS n, sum(value) AS q, "                                     \
    "total(CASE WHEN state = 'acked' THEN value END) AS a, "                                       \
    "total(CASE WHEN state = 'pending' THEN value END) AS p, "                                     \
    "total(CASE WHEN state = 'failed' THEN value END) AS f FROM billing_outbox "                   \
    "WHERE (?2 = 0 OR at >= ?2) AND (?3 = 0 OR at < ?3) GROUP BY tenant_id) "                      \
    "SELECT t.id, t.name, coalesce(t.stripe_customer, ''), coalesce(l.r, 0), "                     \
    "coalesce(l.tok, 0), coalesce(o.n, 0), coalesce(o.q, 0), coalesce(o.a, 0), "                   \
    "coalesce(o.p, 0), coalesce(o.f, 0) FROM tenants t "                                           \
    "LEFT JOIN l ON l.tenant_id = t.id LEFT JOIN o ON o.tenant_id = t.id "                         \
    "WHERE (?1 != 0 AND t.id = ?1) OR (?1 = 0 AND (coalesce(t.stripe_customer, '') != '' "         \
    "OR o.n IS NOT NULL)) ORDER BY t.id"

bn_status bn_db_billing_reconcile(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                                  int (*fn)(void *ud, const bn_billing_row *r), void *ud)
{
    if (db->pg) return bn__pg_billing_reconcile(db, tenant_id, from_ms, to_ms, fn, ud);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, RECONCILE_SQL, &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, from_ms);
    sqlite3_bind_int64(st, 3, to_ms);
    int rc = SQLITE_DONE, stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_billing_row r;
        int64_t *v[] = {&r.tenant_id,     &r.ledger_requests, &r.ledger_tokens,  &r.events,
                        &r.queued_tokens, &r.acked_tokens,    &r.pending_tokens, &r.failed_tokens};
        static const int cols[] = {0, 3, 4, 5, 6, 7, 8, 9};
        for (int i = 0; i < (int)(sizeof cols / sizeof cols[0]); i++)
            *v[i] = sqlite3_column_int64(st, cols[i]);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *cus = (const char *)sqlite3_column_text(st, 2);
        r.tenant_name = name ? name : "";
        r.customer = cus ? cus : "";
        stop = fn(ud, &r) != 0;
    }
    if (stop)
        s = BN_ERR_CANCELLED;
    else if (rc != SQLITE_DONE)
        s = bn__db_sqlerr(db, rc, "reconciling the ledger with the outbox");
    sqlite3_finalize(st);
    return s;
}
