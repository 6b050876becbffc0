/* hashes.c - the sha256 cache of model files, keyed by path, size and modification time. */
#include "db_int.h"

#include <ctype.h>
#include <string.h>

static int is_sha256_hex(const char *s)
{
    size_t i = 0;
    for (; s && s[i]; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return 0;
    return i == 64;
}

bn_status bn_db_hash_lookup(bn_db *db, const char *path, int64_t size, int64_t mtime_ns,
                            char sha256[65])
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(
            db, "SELECT sha256 FROM file_hashes WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3",
            &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    int rc = sqlite3_step(st);
    const char *h = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (rc == SQLITE_ROW && is_sha256_hex(h))
        memcpy(sha256, h, 65);
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no hash recorded for %s", path);
    else
        s = bn__db_sqlerr(db, rc, "looking up a file hash");
    sqlite3_finalize(st);
    return s;
}

bn_status bn_db_hash_store(bn_db *db, const char *path, int64_t size, int64_t mtime_ns,
                           const char *sha256)
{
    if (!path || !is_sha256_hex(sha256))
        return bn__db_err(db, BN_ERR_INVALID, "a file hash needs a path and 64 hex digits");
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "INSERT OR REPLACE INTO file_hashes "
                                 "(path, size, mtime_ns, sha256, hashed_at) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    sqlite3_bind_text(st, 4, sha256, 64, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, bn__db_now_ms(db));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? BN_OK : bn__db_sqlerr(db, rc, "recording a file hash");
}
