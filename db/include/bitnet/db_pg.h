/*
 * bitnet/db_pg.h - the platform's store (bitnet/db_tenants.h) on PostgreSQL, for several
 * `bitnet serve` replicas sharing tenants, keys, the usage ledger, the billing outbox and the
 * audit log (db/pg.c: the pool, the connections, the migrations; db/pg_store.c: the calls).
 *
 * A bn_db opened here answers every call of bitnet/db_tenants.h (tenants, keys, the ledger,
 * the outbox and its reconciliation, the audit log) against PostgreSQL through libpq, with
 * parameterised queries only. The history's own calls (runs, jobs, the spool) return
 * BN_ERR_UNSUPPORTED with a message saying so. The retention periods (bitnet/db.h) apply as
 * in the history once set on the handle (bn_db_set_retention; a handle opened here has the
 * ledger and keys periods at 0: kept).
 *
 * Usage (a server: one pool, a handle per thread; a handle only carries its error message):
 *
 *     bn_pg_pool *pool;
 *     char err[256];
 *     if (bn_pg_pool_new("postgresql://bitnet@db/bitnet", 4, &pool, err, sizeof err)) ...
 *     bn_db *db;
 *     bn_db_open_pg(&db, pool);              // then bitnet/db_tenants.h as with the history
 *     ...
 *     bn_db_close(db);                       // the pool stays
 *     bn_pg_pool_free(pool);                 // after every handle on it is closed
 *
 * Schema: numbered migrations (bitnet_schema_migrations holds the versions applied), run
 * by bn_pg_pool_new in one transaction under pg_advisory_xact_lock, so that replicas starting
 * together migrate once. Tenant isolation: row-level security on tenants, api_keys, usage and
 * billing_outbox (FORCE: the owner too) keyed by the setting app.tenant_id, which each
 * transaction sets with set_config(..., true) (SET LOCAL): a tenant's id for the calls on one
 * tenant's rows (recording usage, its quota, its own reports), "all" for the lookup of a key,
 * administration and the billing sender; unset, no row is visible. A role that bypasses
 * row-level security (a superuser, BYPASSRLS) is refused.
 *
 * The pool holds up to n connections (made when first needed, again after the server
 * restarted: a connection found broken at the start of a transaction is remade once); a
 * caller waits (mutex and condition variable) while all are in use. Each connection has
 * defaults the URL may override: 5 s to connect, statement_timeout 30 s, TCP keepalives (a
 * server gone silent is noticed within about 25 s), application_name bitnet. Thread-safe: the pool.
 * Not thread-safe: a bn_db handle (one thread at a time, as with the history).
 */
#ifndef BITNET_DB_PG_H
#define BITNET_DB_PG_H

#include <stddef.h>

#include "bitnet/db.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_PG_POOL_MAX 64 /* connections one pool holds at most */

typedef struct bn_pg_pool bn_pg_pool;

/* Whether s is a PostgreSQL URL (postgresql:// or postgres://): 1 or 0. */
int bn_pg_url_ok(const char *s);
/* Connects to url (a libpq URL; a password is better in PGPASSWORD or ~/.pgpass), refuses a
 * role that bypasses row-level security, runs the missing migrations; n_conns: 1 ..
 * BN_PG_POOL_MAX. 0, or -1 with a one-line message in err. */
int bn_pg_pool_new(const char *url, int n_conns, bn_pg_pool **out, char *err, size_t errsz);
void bn_pg_pool_free(bn_pg_pool *p);
/* The schema version of the PostgreSQL store after bn_pg_pool_new. */
int bn_pg_pool_schema(const bn_pg_pool *p);

/* A handle on pool (borrowed: it must outlive the handle). BN_ERR_NOMEM only. */
bn_status bn_db_open_pg(bn_db **out, bn_pg_pool *pool);
/* A handle with a pool of one connection of its own (the command line's calls). On failure
 * *out is a handle holding the message (bn_db_errmsg), to close. */
bn_status bn_db_open_pg_url(bn_db **out, const char *url);
/* Whether db is a PostgreSQL store: 1 or 0. */
int bn_db_is_pg(const bn_db *db);

#ifdef __cplusplus
}
#endif

#endif
