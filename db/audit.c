/* audit.c - the append-only, hash-chained audit log of administrative actions.
 *
 * Each entry's hash is SHA-256 over "bitnet-audit-v1\n", the previous entry's hash (64 hex
 * digits; 64 zeros for the first), and the entry's canonical bytes: its id and time in
 * decimal, then actor, action, target and details each as "<length>:<bytes>", every field
 * ended by '\n'. Lengths make the encoding unambiguous; the id ties an entry to its place.
 * An edited entry no longer matches its hash; a removed or reordered one breaks the link of
 * the entry after it. (Dropping the newest entries leaves a valid shorter chain: the log
 * cannot tell that by itself.) */
#include "db_int.h"

#include <inttypes.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/db_tenants.h"

static const char zero_hash[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* Runs sql (no rows) as a statement the handle keeps: a transaction's edges are compiled once. */
static bn_status exec_kept(bn_db *db, const char *sql, const char *what)
{
    sqlite3_stmt *st;
    const bn_status s = bn__db_prepare_kept(db, sql, &st);
    return s != BN_OK ? s : bn__db_step_done(db, st, what);
}

bn_status bn__db_begin(bn_db *db, const char *what)
{
    return exec_kept(db, "BEGIN IMMEDIATE", what);
}

bn_status bn__db_end(bn_db *db, bn_status s, const char *what)
{
    if (s == BN_OK) s = exec_kept(db, "COMMIT", what);
    if (s != BN_OK) sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

static void put_field(struct sha256_ctx *c, const char *s)
{
    char len[32];
    const size_t n = strlen(s);
    snprintf(len, sizeof len, "%zu:", n);
    sha256_update(c, strlen(len), (const uint8_t *)len);
    sha256_update(c, n, (const uint8_t *)s);
    sha256_update(c, 1, (const uint8_t *)"\n");
}

/* The hash of an entry (prev_hash included) as 64 hex digits into hex. */
void bn__db_audit_hash(const bn_audit_entry *e, char hex[65])
{
    struct sha256_ctx c;
    char num[64];
    sha256_init(&c);
    sha256_update(&c, 16, (const uint8_t *)"bitnet-audit-v1\n");
    sha256_update(&c, strlen(e->prev_hash), (const uint8_t *)e->prev_hash);
    snprintf(num, sizeof num, "\n%" PRId64 "\n%" PRId64 "\n", e->id, e->at_ms);
    sha256_update(&c, strlen(num), (const uint8_t *)num);
    put_field(&c, e->actor);
    put_field(&c, e->action);
    put_field(&c, e->target);
    put_field(&c, e->details);
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&c, sizeof d, d);
    for (size_t i = 0; i < sizeof d; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* The details minified by sqlite's json() into buf (bn_free); BN_ERR_INVALID if not JSON. */
static bn_status minify(bn_db *db, const char *details, char **out)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT json(?1)", &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, details ? details : "{}", -1, SQLITE_STATIC);
    int oom = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = bn__db_col_str(st, 0, &oom);
        if (!*out && !oom) s = bn__db_err(db, BN_ERR_INVALID, "audit details are not JSON");
    } else {
        s = bn__db_err(db, BN_ERR_INVALID, "audit details are not JSON: %s", details);
    }
    sqlite3_finalize(st);
    if (oom) s = bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    return s;
}

/* The id and hash of the newest entry (0 and zeros when there is none). */
static bn_status last_entry(bn_db *db, int64_t *id, char hash[65])
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &st);
    if (s != BN_OK) return s;
    *id = 0;
    memcpy(hash, zero_hash, 65);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(hash, 65, "%s", h ? h : "");
    } else if (rc != SQLITE_DONE) {
        s = bn__db_sqlerr(db, rc, "reading the audit log");
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn__db_audit_add(bn_db *db, const char *actor, const char *action, const char *target,
                           const char *details)
{
    char *min = NULL, prev[65], hash[65];
    bn_audit_entry e = {.actor = actor ? actor : "", .action = action, .target = target};
    bn_status s = minify(db, details, &min);
    if (s == BN_OK) s = last_entry(db, &e.id, prev);
    if (s != BN_OK) goto done;
    e.id++;
    e.at_ms = bn__db_now_ms(db);
    e.details = min;
    e.prev_hash = prev;
    bn__db_audit_hash(&e, hash);
    sqlite3_stmt *st;
    s = bn__db_prepare(db,
                       "INSERT INTO audit (id, at, actor, action, target, details, prev_hash, "
                       "hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                       &st);
    if (s != BN_OK) goto done;
    sqlite3_bind_int64(st, 1, e.id);
    sqlite3_bind_int64(st, 2, e.at_ms);
    sqlite3_bind_text(st, 3, e.actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e.action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e.target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e.details, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, prev, 64, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, hash, 64, SQLITE_STATIC);
    s = bn__db_step_done(db, st, "appending to the audit log");
done:
    bn_free(min);
    return s;
}

bn_status bn_db_audit_append(bn_db *db, const char *actor, const char *action, const char *target,
                             const char *details)
{
    if (!action || !target) return bn__db_err(db, BN_ERR_INVALID, "audit: no action or target");
    if (db->pg) return bn__pg_audit_append(db, actor, action, target, details);
    bn_status s = bn__db_begin(db, "appending to the audit log");
    if (s != BN_OK) return s;
    return bn__db_end(db, bn__db_audit_add(db, actor, action, target, details),
                      "appending to the audit log");
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* Walks the log oldest first, calling fn with each entry. */
static bn_status walk(bn_db *db, int (*fn)(void *ud, const bn_audit_entry *e), void *ud)
{
    if (db->pg) return bn__pg_audit_list(db, fn, ud);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT id, at, actor, action, target, details, prev_hash, hash "
                                 "FROM audit ORDER BY id",
                                 &st);
    if (s != BN_OK) return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_audit_entry e = {sqlite3_column_int64(st, 0),
                            sqlite3_column_int64(st, 1),
                            col(st, 2),
                            col(st, 3),
                            col(st, 4),
                            col(st, 5),
                            col(st, 6),
                            col(st, 7)};
        if (fn(ud, &e)) {
            sqlite3_finalize(st);
            return BN_ERR_CANCELLED;
        }
    }
    if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "reading the audit log");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_audit_list(bn_db *db, int (*fn)(void *ud, const bn_audit_entry *e), void *ud)
{
    return walk(db, fn, ud);
}

typedef struct verify_state {
    int64_t n, bad, prev_id;
    char expect[65];
    char *why;
    size_t why_size;
} verify_state;

static int verify_one(void *ud, const bn_audit_entry *e)
{
    verify_state *v = ud;
    char h[65];
    v->n++;
    if (strcmp(e->prev_hash, v->expect) != 0) {
        if (v->prev_id)
            snprintf(v->why, v->why_size,
                     "entry %" PRId64 " does not follow entry %" PRId64
                     " (an entry was removed or reordered)",
                     e->id, v->prev_id);
        else
            snprintf(v->why, v->why_size,
                     "entry %" PRId64 " is not the start of the chain (entries before it "
                     "were removed)",
                     e->id);
        v->bad = e->id;
        return 1;
    }
    bn__db_audit_hash(e, h);
    if (strcmp(h, e->hash) != 0) {
        snprintf(v->why, v->why_size, "entry %" PRId64 " was edited (its hash does not match)",
                 e->id);
        v->bad = e->id;
        return 1;
    }
    snprintf(v->expect, sizeof v->expect, "%s", e->hash);
    v->prev_id = e->id;
    return 0;
}

bn_status bn_db_audit_verify(bn_db *db, int64_t *n, int64_t *bad_id, char *why, size_t why_size)
{
    char dummy[8];
    verify_state v = {.why = why && why_size ? why : dummy,
                      .why_size = why && why_size ? why_size : sizeof dummy};
    memcpy(v.expect, zero_hash, 65);
    v.why[0] = '\0';
    bn_status s = walk(db, verify_one, &v);
    if (s == BN_ERR_CANCELLED) s = BN_OK; /* stopped at the first bad entry */
    if (n) *n = v.n;
    if (bad_id) *bad_id = v.bad;
    return s;
}
