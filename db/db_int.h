/* db_int.h - what the files of the history library share: the handle, errors, the clock,
 * the migrations and the identity of a process. Not installed. */
#ifndef BITNET_DB_INT_H
#define BITNET_DB_INT_H

#include <sqlite3.h>

#include "bitnet/db.h"
#include "bitnet/db_tenants.h"

#define BN__DB_KEPT 16 /* statements a handle keeps prepared (bn__db_prepare_kept) */

struct bn_db {
    sqlite3 *sql;
    /* the statements of the calls made for every request (the key lookup, the ledger, a
     * transaction's BEGIN and COMMIT), compiled once per handle: the SQL text's address, the
     * statement, reset after each use */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } kept[BN__DB_KEPT];
    int n_kept;
    char *path;
    bn_db_options opt;
    int schema;
    int64_t n_incomplete, n_pruned; /* what the last open did */
    char errmsg[512];
    struct bn_pg_pool *pg; /* a PostgreSQL store (pg.c) when set; sql is NULL then */
    int own_pg;            /* pg is this handle's own (bn_db_open_pg_url) */
    int pg_slot;           /* the pool's slot of its transaction (bn__pg_begin .. _end) */
};

#define BN_DB_DAY_MS ((int64_t)86400000)

/* Sets the message on db (printf-style) and returns s. */
bn_status bn__db_err(bn_db *db, bn_status s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Sets "<what>: <sqlite's message>" and returns the status that fits sqlite's code rc. */
bn_status bn__db_sqlerr(bn_db *db, int rc, const char *what);
/* Runs SQL with no results. */
bn_status bn__db_exec(bn_db *db, const char *sql, const char *what);
/* Prepares sql into *st. */
bn_status bn__db_prepare(bn_db *db, const char *sql, sqlite3_stmt **st);
/* Prepares sql into *st once per handle and keeps it for the next call with the same sql,
 * which must be a string that outlives the handle (a literal: the text's address is the key);
 * past BN__DB_KEPT statements it prepares afresh each time. Give it back with bn__db_done. */
bn_status bn__db_prepare_kept(bn_db *db, const char *sql, sqlite3_stmt **st);
/* Done with st: a kept statement is reset (its bindings cleared) for its next use, any other
 * finalized. */
void bn__db_done(bn_db *db, sqlite3_stmt *st);
/* Runs a prepared statement that returns no rows, and is done with it (bn__db_done). */
bn_status bn__db_step_done(bn_db *db, sqlite3_stmt *st, const char *what);
/* Grows the bn_calloc'ed array *arr of *cap elements of elem bytes (n in use) to hold one
 * more, zeroed (doubling; 16 at first). 0, or -1 when out of memory (*arr kept). */
int bn__db_grow(void **arr, size_t elem, size_t n, size_t *cap);
/* Now, in milliseconds since the epoch (opt.now_ms when set). */
int64_t bn__db_now_ms(const bn_db *db);
/* A malloc'ed (bn_malloc) copy of column col, or NULL when it is NULL. *oom set on failure. */
char *bn__db_col_str(sqlite3_stmt *st, int col, int *oom);

/* ---- migrations (migrations.c) ----------------------------------------------------------- */

typedef struct bn__db_migration {
    int version; /* the user_version after it */
    const char *sql;
} bn__db_migration;

/* The migrations in order: entry i takes the schema from version i to version i + 1. */
extern const bn__db_migration bn__db_migrations[];
extern const int bn__db_n_migrations;

/* ---- process identity and recovery (recover.c) ------------------------------------------ */

typedef struct bn__db_proc {
    int64_t pid;
    int64_t start;    /* start time of the process in clock ticks since boot; 0: unknown */
    char host[256];   /* "" when unknown */
    char boot_id[40]; /* "" when unknown */
} bn__db_proc;

/* This process. */
void bn__db_proc_self(bn__db_proc *p);
/* Whether the process p recorded (on this host) is still alive. */
int bn__db_proc_alive(const bn__db_proc *p, const bn__db_proc *self);
/* Marks the running runs of dead processes of this host incomplete; counts them in *n. */
bn_status bn__db_mark_incomplete(bn_db *db, int64_t *n);

/* ---- reading runs (runs.c) ---------------------------------------------------------------- */

/* Prepares the query of the runs that match f (NULL: all, newest first). */
bn_status bn__db_query_runs(bn_db *db, const bn_run_filter *f, sqlite3_stmt **st);
/* Reads the current row of such a query into r (released on failure). */
bn_status bn__db_read_run(bn_db *db, sqlite3_stmt *st, bn_run *r);

/* ---- retention (runs.c, retention.c) ------------------------------------------------------ */

/* Deletes the runs that started before cutoff_ms; *n (may be NULL): how many. */
bn_status bn__db_prune_runs(bn_db *db, int64_t cutoff_ms, int64_t *n);
/* On open: bn_db_retention_daily; *n the runs it deleted. */
bn_status bn__db_apply_retention(bn_db *db, int64_t *n);
/* Whether any period of db is set: 1 or 0. */
int bn__db_retention_any(const bn_db *db);
/* Whether the periods are due at now, last applied at last (0: never): a day or more ago, or
 * the clock went back. */
int bn__db_retention_due(int64_t last, int64_t now);
/* The cutoffs at now of db's periods (0: not set): runs, the ledger (a UTC midnight), keys. */
void bn__db_retention_cuts(const bn_db *db, int64_t now, int64_t cut[3]);
/* The details (JSON) of a retention.apply audit entry with the counts c. */
void bn__db_retention_details(const bn_db *db, const bn_retention_counts *c, char *d, size_t size);

/* ---- the platform's store (tenants.c, tenant_keys.c, usage.c, audit.c) ------------------ */

/* BEGIN IMMEDIATE; and the end of such a transaction: COMMIT when s is BN_OK, else ROLLBACK
 * (the message of s kept). Returns the final status. */
bn_status bn__db_begin(bn_db *db, const char *what);
bn_status bn__db_end(bn_db *db, bn_status s, const char *what);
/* Adds the meter event of ledger row r (recorded at at_ms) to the billing outbox inside the
 * caller's transaction: none when it used no tokens or its tenant has no Stripe customer
 * (outbox.c). */
struct bn_usage_rec;
bn_status bn__db_outbox_add(bn_db *db, const struct bn_usage_rec *r, int64_t at_ms);
/* Deletes the meter events of an erased tenant (inside the caller's transaction); details
 * (JSON, size bytes) gets how many were still unsent and their tokens, for the audit entry. */
bn_status bn__db_outbox_erase(bn_db *db, int64_t tenant_id, char *details, size_t size);
/* Appends an audit entry inside the caller's transaction (details: JSON text, NULL for {}). */
bn_status bn__db_audit_add(bn_db *db, const char *actor, const char *action, const char *target,
                           const char *details);

/* ---- shared by both stores (tenant_keys.c, outbox.c, audit.c) -------------------------- */

/* A key's row as read by a lookup: judged by tenant_keys.c for both stores. */
typedef struct bn__key_row {
    int64_t id, tenant_id, scopes, expires, revoked, used;
    uint8_t hash[32];
    size_t hash_len;
    char status[16], tier[BN_TENANT_TIER_MAX], name[BN_TENANT_NAME_MAX];
} bn__key_row;
/* Stripe's identifier of request_id (outbox.c). */
void bn__db_event_id(const char *request_id, char out[BN_EVENT_ID_MAX]);
/* The hash of an audit entry (prev_hash included) as 64 hex digits (audit.c). */
void bn__db_audit_hash(const bn_audit_entry *e, char hex[65]);

/* ---- the PostgreSQL store (pg.c, pg_store.c): the same calls on db->pg ------------------ */

void bn__pg_close(bn_db *db);
bn_status bn__pg_tenant_add(bn_db *db, const char *actor, const char *name, const char *tier,
                            const char *stripe, const char *details, int64_t *id);
bn_status bn__pg_tenant_get(bn_db *db, const char *ref, int by_id, bn_tenant *out);
bn_status bn__pg_tenant_list(bn_db *db, int (*fn)(void *ud, const bn_tenant *t), void *ud);
bn_status bn__pg_tenant_suspend(bn_db *db, const char *actor, const char *ref, int suspend);
bn_status bn__pg_tenant_delete(bn_db *db, const char *actor, const char *ref);
bn_status bn__pg_tenant_erase(bn_db *db, const char *actor, const char *ref);
bn_status bn__pg_tenant_export(bn_db *db, const char *actor, const char *ref, char **json);
bn_status bn__pg_key_create(bn_db *db, const char *actor, int64_t tenant_id, const char *prefix,
                            const uint8_t hash[32], unsigned scopes, int64_t expires_ms,
                            const char *details, int64_t *id);
bn_status bn__pg_key_revoke(bn_db *db, const char *actor, int64_t id);
bn_status bn__pg_key_list(bn_db *db, int64_t tenant_id, int (*fn)(void *ud, const bn_api_key *k),
                          void *ud);
/* The row of the key whose hash is h; *found 0 when none. */
bn_status bn__pg_key_find(bn_db *db, const uint8_t h[32], bn__key_row *row, int *found);
void bn__pg_key_touch(bn_db *db, int64_t id, int64_t now);
bn_status bn__pg_usage_record(bn_db *db, const bn_usage_rec *r, int64_t at, int *added, int *known);
/* The rows r[i] with each[i] BN_OK (one tenant) in one statement: fresh[i] 1 when new;
 * each[i] BN_ERR_NOT_FOUND when neither new nor there before (the tenant is gone). */
bn_status bn__pg_usage_record_n(bn_db *db, const bn_usage_rec *const *r, size_t n, int64_t now,
                                int *fresh, bn_status *each);
bn_status bn__pg_usage_report(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                              int (*fn)(void *ud, const bn_usage_day *d), void *ud);
bn_status bn__pg_usage_total(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                             bn_usage_total *out);
bn_status bn__pg_outbox_claim(bn_db *db, int64_t now_ms, int64_t lease_ms, bn_outbox_event *out,
                              size_t max_n, size_t *n);
/* op: 'a' ack (flag: duplicate), 'r' retry (at: next_ms), 'f' fail; error may be NULL. */
bn_status bn__pg_outbox_mark(bn_db *db, int op, int64_t id, int flag, int64_t at,
                             const char *error);
/* ack_n (duplicate non-NULL) or release (duplicate NULL) of the n events ids[] */
bn_status bn__pg_outbox_many(bn_db *db, const int64_t *ids, const int *duplicate, size_t n,
                             int64_t now_ms);
bn_status bn__pg_outbox_counts(bn_db *db, int64_t now_ms, bn_outbox_counts *out);
bn_status bn__pg_outbox_requeue(bn_db *db, const char *actor, int64_t tenant_id, int64_t now_ms,
                                int64_t *n);
bn_status bn__pg_billing_reconcile(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                                   int (*fn)(void *ud, const bn_billing_row *r), void *ud);
bn_status bn__pg_audit_append(bn_db *db, const char *actor, const char *action, const char *target,
                              const char *details);
/* bn_db_retention_apply (mark: record the time as bn_db_retention_daily's) and _daily. */
bn_status bn__pg_retention_apply(bn_db *db, int dry_run, int mark, bn_retention_counts *out);
bn_status bn__pg_retention_daily(bn_db *db, int *applied, bn_retention_counts *out);
bn_status bn__pg_audit_list(bn_db *db, int (*fn)(void *ud, const bn_audit_entry *e), void *ud);

#endif
