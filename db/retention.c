/* retention.c - the retention periods of the history's tables (bitnet/db.h): runs deleted,
 * the usage ledger folded into anonymous aggregates per tenant, day and model, revoked and
 * expired API keys deleted; applied at most once a day on open, or at once. A PostgreSQL
 * store's are applied by pg_store.c with the same cutoffs and audit entry. */
#include "db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char applied_key[] = "retention_applied_ms";

static bn_status meta_get_int(bn_db *db, const char *key, int64_t *v)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading meta");
    sqlite3_finalize(st);
    return s;
}

static bn_status meta_set_int(bn_db *db, const char *key, int64_t v)
{
    sqlite3_stmt *st;
    bn_status s =
            bn__db_prepare(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    return bn__db_step_done(db, st, "writing meta");
}

/* Runs one statement with ?1 bound to cutoff; *n: the rows it changed. */
static bn_status run_cut(bn_db *db, const char *sql, int64_t cutoff, int64_t *n, const char *what)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, sql, &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, cutoff);
    s = bn__db_step_done(db, st, what);
    if (s == BN_OK) *n = sqlite3_changes(db->sql);
    return s;
}

/* The ledger's rows of requests before cutoff (a UTC midnight), each day's folded into one row
 * per tenant and model: the reports per tenant and day sum the same. Rows already folded (no
 * request id: aggregates, an erased tenant's) stay as they are. */
static bn_status fold_ledger(bn_db *db, int64_t cutoff, bn_retention_counts *c)
{
    static const char ins[] =
            "INSERT INTO usage (request_id, tenant_id, key_id, model, requests, prompt_tokens, "
            "completion_tokens, duration_ms, status, at) "
            "SELECT NULL, tenant_id, NULL, model, sum(requests), sum(prompt_tokens), "
            "sum(completion_tokens), sum(duration_ms), 'aggregate', min(at) FROM usage "
            "WHERE at < ?1 AND request_id IS NOT NULL "
            "GROUP BY tenant_id, date(at / 1000, 'unixepoch'), model";
    static const char del[] = "DELETE FROM usage WHERE at < ?1 AND request_id IS NOT NULL";
    bn_status s = run_cut(db, ins, cutoff, &c->ledger_aggregates, "folding the ledger");
    if (s == BN_OK) s = run_cut(db, del, cutoff, &c->ledger_rows, "folding the ledger");
    return s;
}

static bn_status prune_keys(bn_db *db, int64_t cutoff, bn_retention_counts *c)
{
    return run_cut(db,
                   "DELETE FROM api_keys WHERE revoked_at < ?1 OR "
                   "(revoked_at IS NULL AND expires_at < ?1)",
                   cutoff, &c->keys, "deleting old keys");
}

void bn__db_retention_details(const bn_db *db, const bn_retention_counts *c, char *d, size_t size)
{
    snprintf(d, size,
             "{\"runs\":%" PRId64 ",\"ledger_rows\":%" PRId64 ",\"ledger_aggregates\":%" PRId64
             ",\"keys\":%" PRId64 ",\"ledger_days\":%d,\"keys_days\":%d}",
             c->runs, c->ledger_rows, c->ledger_aggregates, c->keys, db->opt.ledger_days,
             db->opt.keys_days);
}

static bn_status audit_counts(bn_db *db, const bn_retention_counts *c)
{
    char d[256];
    bn__db_retention_details(db, c, d, sizeof d);
    return bn__db_audit_add(db, "system:retention", "retention.apply", "store", d);
}

void bn__db_retention_cuts(const bn_db *db, int64_t now, int64_t cut[3])
{
    const bn_db_options *o = &db->opt;
    const int64_t ledger = now - (int64_t)o->ledger_days * BN_DB_DAY_MS;
    cut[0] = o->retention_days > 0 ? now - (int64_t)o->retention_days * BN_DB_DAY_MS : 0;
    cut[1] =
            o->ledger_days > 0 ? ledger - (ledger % BN_DB_DAY_MS + BN_DB_DAY_MS) % BN_DB_DAY_MS : 0;
    cut[2] = o->keys_days > 0 ? now - (int64_t)o->keys_days * BN_DB_DAY_MS : 0;
}

/* Inside a transaction: each period that is set. */
static bn_status apply_all(bn_db *db, int64_t now, bn_retention_counts *c)
{
    int64_t cut[3];
    bn__db_retention_cuts(db, now, cut);
    bn_status s = BN_OK;
    if (cut[0]) s = bn__db_prune_runs(db, cut[0], &c->runs);
    if (s == BN_OK && cut[1]) s = fold_ledger(db, cut[1], c);
    if (s == BN_OK && cut[2]) s = prune_keys(db, cut[2], c);
    return s;
}

int bn__db_retention_due(int64_t last, int64_t now)
{
    return !last || last > now || now - last >= BN_DB_DAY_MS;
}

int bn__db_retention_any(const bn_db *db)
{
    return db->opt.retention_days > 0 || db->opt.ledger_days > 0 || db->opt.keys_days > 0;
}

/* apply, with the time of this application recorded when mark. */
static bn_status apply(bn_db *db, int dry_run, int mark, bn_retention_counts *out)
{
    const char *what = "applying retention";
    const int64_t now = bn__db_now_ms(db);
    memset(out, 0, sizeof *out);
    bn_status s = bn__db_begin(db, what);
    if (s != BN_OK) return s;
    s = apply_all(db, now, out);
    if (s == BN_OK && !dry_run && (out->ledger_rows || out->keys)) s = audit_counts(db, out);
    if (s == BN_OK && mark && !dry_run) s = meta_set_int(db, applied_key, now);
    if (s == BN_OK && dry_run) s = BN_ERR_CANCELLED; /* rolled back, counts kept */
    s = bn__db_end(db, s, what);
    return s == BN_ERR_CANCELLED && dry_run ? BN_OK : s;
}

bn_status bn_db_retention_apply(bn_db *db, int dry_run, bn_retention_counts *out)
{
    bn_retention_counts c;
    bn_status s = db->pg ? bn__pg_retention_apply(db, dry_run, !dry_run, &c)
                         : apply(db, dry_run, !dry_run && bn__db_retention_any(db), &c);
    if (out) *out = c;
    return s;
}

bn_status bn_db_retention_daily(bn_db *db, int *applied, bn_retention_counts *out)
{
    bn_retention_counts c = {0};
    int64_t last = 0;
    if (applied) *applied = 0;
    if (out) *out = c;
    if (!bn__db_retention_any(db)) return BN_OK;
    if (db->pg) return bn__pg_retention_daily(db, applied, out);
    const int64_t now = bn__db_now_ms(db);
    bn_status s = meta_get_int(db, applied_key, &last);
    if (s != BN_OK || !bn__db_retention_due(last, now)) return s;
    s = apply(db, 0, 1, &c);
    if (s == BN_OK && applied) *applied = 1;
    if (out) *out = c;
    return s;
}

bn_status bn__db_apply_retention(bn_db *db, int64_t *n)
{
    bn_retention_counts c;
    bn_status s = bn_db_retention_daily(db, NULL, &c);
    *n = c.runs;
    return s;
}
