/* pg_int.h - what db/pg.c gives db/pg_store.c: a transaction on a pooled connection with the
 * tenant scope of row-level security set, and parameterised queries. Not installed. */
#ifndef BITNET_DB_PG_INT_H
#define BITNET_DB_PG_INT_H

#include <libpq-fe.h>

#include "bitnet/db_pg.h"
#include "db_int.h"

/* The scope of row-level security of a transaction: one tenant's rows, or every row. */
#define BN_PG_ALL ((int64_t)-1)

/* Takes a connection of db's pool (waiting while all are in use), BEGINs and sets
 * app.tenant_id to tenant (BN_PG_ALL: "all"). A connection found broken is remade once. */
bn_status bn__pg_begin(bn_db *db, int64_t tenant, PGconn **c, const char *what);
/* COMMIT when s is BN_OK, else ROLLBACK; gives the connection back. Returns the final
 * status (a failed COMMIT is BN_ERR_IO: the transaction may or may not have happened). */
bn_status bn__pg_end(bn_db *db, PGconn *c, bn_status s, const char *what);
/* A statement of bn__pg_run: sql with n text parameters vals (NULL: SQL NULL); res its rows
 * when keep (the caller PQclears them), NULL when the transaction failed. */
typedef struct bn__pg_stmt {
    const char *sql;
    int n;
    const char *const *vals;
    int keep;
    PGresult *res;
} bn__pg_stmt;

/* flags of bn__pg_run: the transaction's plans read an index in order instead of sorting
 * (enable_sort off), whatever the table's statistics (stale under a fast-growing queue) say */
#define BN_PG_NOSORT 1

/* st[0..n) (at most 5) in one transaction with the scope tenant, in one round trip: BEGIN,
 * the scope, the statements and COMMIT pipelined (libpq's pipeline mode), each a statement
 * prepared once per connection (parsed and planned once; the first use sends the Parse in
 * the same round trip). A failed one rolls the transaction back. A connection found broken
 * before the transaction began is remade once, as by bn__pg_begin. */
bn_status bn__pg_run(bn_db *db, int64_t tenant, int flags, bn__pg_stmt *st, int n,
                     const char *what);
/* sql (n text parameters) in a transaction of its own with the scope tenant, in one round
 * trip (bn__pg_run). res (may be NULL): its rows. */
bn_status bn__pg_query1(bn_db *db, int64_t tenant, const char *sql, int n, const char *const *vals,
                        PGresult **res, const char *what);
/* Runs sql with n text parameters (NULL: SQL NULL). res (may be NULL): the rows, for the
 * caller to PQclear. A unique violation is BN_ERR_INVALID, other failures BN_ERR_IO, with
 * "<what>: <PostgreSQL's message>" on db. */
bn_status bn__pg_q(bn_db *db, PGconn *c, const char *sql, int n, const char *const *vals,
                   PGresult **res, const char *what);
/* Column col of row r as an int64 (0 when NULL), and into dst (size bytes; "" when NULL). */
int64_t bn__pg_i64(const PGresult *r, int row, int col);
void bn__pg_str(const PGresult *r, int row, int col, char *dst, size_t size);

#endif
