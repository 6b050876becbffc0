/* db.c - opening the history: path, directories, pragmas, migrations, housekeeping; errors. */
#include "db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors and small helpers ------------------------------------------------------------- */

bn_status bn__db_err(bn_db *db, bn_status s, const char *fmt, ...)
{
    if (!db) return s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    return s;
}

bn_status bn__db_sqlerr(bn_db *db, int rc, const char *what)
{
    bn_status s;
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        s = BN_ERR_NOMEM;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        s = BN_ERR_FORMAT;
        break;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        s = BN_ERR_INTERNAL;
        break;
    default:
        s = BN_ERR_IO;
        break;
    }
    const char *msg = db && db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc);
    if (db && db->path) return bn__db_err(db, s, "%s: %s: %s", db->path, what, msg);
    return bn__db_err(db, s, "%s: %s", what, msg);
}

/* The history's calls on a PostgreSQL store (bitnet/db_pg.h), which has none of its tables. */
static bn_status no_sqlite(bn_db *db)
{
    return bn__db_err(db, BN_ERR_UNSUPPORTED,
                      "this is not available with a PostgreSQL store (--database): only the "
                      "tenants' calls of bitnet/db_pg.h are");
}

bn_status bn__db_exec(bn_db *db, const char *sql, const char *what)
{
    if (!db->sql) return no_sqlite(db);
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? BN_OK : bn__db_sqlerr(db, rc, what);
}

bn_status bn__db_prepare(bn_db *db, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    if (!db->sql) return no_sqlite(db);
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, st, NULL);
    return rc == SQLITE_OK ? BN_OK : bn__db_sqlerr(db, rc, "preparing a query");
}

bn_status bn__db_prepare_kept(bn_db *db, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    if (!db->sql) return no_sqlite(db);
    for (int i = 0; i < db->n_kept; i++)
        if (db->kept[i].sql == sql) return *st = db->kept[i].st, BN_OK;
    const int keep = db->n_kept < BN__DB_KEPT;
    const int rc =
            sqlite3_prepare_v3(db->sql, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL);
    if (rc != SQLITE_OK) return bn__db_sqlerr(db, rc, "preparing a query");
    if (keep) {
        db->kept[db->n_kept].sql = sql;
        db->kept[db->n_kept++].st = *st;
    }
    return BN_OK;
}

void bn__db_done(bn_db *db, sqlite3_stmt *st)
{
    for (int i = 0; i < db->n_kept; i++)
        if (db->kept[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

bn_status bn__db_step_done(bn_db *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    bn_status s = rc == SQLITE_DONE ? BN_OK : bn__db_sqlerr(db, rc, what);
    bn__db_done(db, st);
    return s;
}

int bn__db_grow(void **arr, size_t elem, size_t n, size_t *cap)
{
    if (n < *cap) return 0;
    const size_t nc = *cap ? 2 * *cap : 16;
    void *a = bn_calloc(nc, elem);
    if (!a) return -1;
    if (n) memcpy(a, *arr, n * elem);
    bn_free(*arr);
    *arr = a;
    *cap = nc;
    return 0;
}

int64_t bn__db_now_ms(const bn_db *db)
{
    return db && db->opt.now_ms ? db->opt.now_ms : bn_wall_ms();
}

char *bn__db_col_str(sqlite3_stmt *st, int col, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t) return NULL;
    const size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *s = bn_malloc(n + 1);
    if (!s) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, t, n);
    s[n] = '\0';
    return s;
}

const char *bn_db_errmsg(const bn_db *db)
{
    return db ? db->errmsg : "out of memory";
}

int bn_db_schema_version(const bn_db *db)
{
    return db ? db->schema : 0;
}

int64_t bn_db_open_incomplete(const bn_db *db)
{
    return db ? db->n_incomplete : 0;
}

int64_t bn_db_open_pruned(const bn_db *db)
{
    return db ? db->n_pruned : 0;
}

bn_db_options bn_db_options_default(void)
{
    return (bn_db_options){.retention_days = BN_DB_RETENTION_DAYS_DEFAULT,
                           .busy_timeout_ms = BN_DB_BUSY_TIMEOUT_MS_DEFAULT};
}

/* ---- the path --------------------------------------------------------------------------- */

/* Creates the directories above path (mode 0700), like mkdir -p of its dirname. */
static bn_status make_parents(bn_db *db, const char *path)
{
    char *d = bn_strdup(path);
    if (!d) return bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    char *slash = strrchr(d, '/');
    bn_status s = BN_OK;
    if (slash && slash != d) {
        *slash = '\0';
        for (char *p = d + 1; s == BN_OK; p++) {
            const char c = *p;
            if (c != '/' && c != '\0') continue;
            *p = '\0';
            if (mkdir(d, 0700) != 0 && errno != EEXIST)
                s = bn__db_err(db, BN_ERR_IO, "cannot create directory %s: %s", d, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    bn_free(d);
    return s;
}

/* Creates the file with mode 0600 when it does not exist yet (sqlite gives its -wal and -shm
 * files the same mode), so the history is private to its owner. An existing file is never
 * opened here: closing any descriptor of a file drops every POSIX lock this process holds
 * on it, sqlite's included, so another connection of this process (the TUI keeps one
 * open) could lose its locks and another process delete the WAL under it
 * (test_db: test_second_open_keeps_locks). */
static bn_status create_private(bn_db *db, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) return BN_OK;
    if (fd < 0) return bn__db_err(db, BN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    close(fd); /* a file nobody had open: no locks to lose */
    return BN_OK;
}

/* ---- pragmas and migrations ------------------------------------------------------------- */

static bn_status read_version(bn_db *db, int *v)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "PRAGMA user_version", &st);
    if (s != BN_OK) return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? BN_OK : bn__db_sqlerr(db, rc, "reading the schema version");
}

static bn_status refuse_newer(bn_db *db, int v)
{
    return bn__db_err(db, BN_ERR_UNSUPPORTED,
                      "%s: the history has schema version %d, newer than this bitnet knows (%d); "
                      "use a newer bitnet or another BITNET_HISTORY_DB",
                      db->path, v, BN_DB_SCHEMA_VERSION);
}

/* Turns on WAL. Changing the journal mode does not wait through the busy handler, so when
 * several processes open a new file at once it is retried here, within the busy timeout. The
 * reply is the mode in effect; a file system without shared memory keeps the old one, which
 * still works, only with less concurrency. */
static bn_status set_wal(bn_db *db)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "PRAGMA journal_mode=WAL", &st);
    if (s != BN_OK) return s;
    int rc;
    for (int waited_ms = 0;; waited_ms += 10) {
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= db->opt.busy_timeout_ms) break;
        sqlite3_sleep(10);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? BN_OK : bn__db_sqlerr(db, rc, "turning on WAL");
}

/* One migration: from version `from` to from + 1, in its own transaction. The version is read
 * again inside the transaction, since another process may have migrated meanwhile. */
static bn_status migrate_one(bn_db *db, int *v)
{
    bn_status s = bn__db_exec(db, "BEGIN IMMEDIATE", "starting a migration");
    if (s != BN_OK) return s;
    int now;
    s = read_version(db, &now);
    if (s == BN_OK && now > BN_DB_SCHEMA_VERSION) s = refuse_newer(db, now);
    if (s == BN_OK && now < BN_DB_SCHEMA_VERSION) {
        const bn__db_migration *m = &bn__db_migrations[now];
        char what[64], pragma[64];
        snprintf(what, sizeof what, "migrating the schema to version %d", m->version);
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", m->version);
        s = bn__db_exec(db, m->sql, what);
        if (s == BN_OK) s = bn__db_exec(db, pragma, what);
        now = m->version;
    }
    if (s == BN_OK) s = bn__db_exec(db, "COMMIT", "committing a migration");
    if (s != BN_OK) {
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        return s;
    }
    *v = now;
    return BN_OK;
}

static bn_status migrate(bn_db *db)
{
    int v;
    bn_status s = read_version(db, &v);
    if (s != BN_OK) return s;
    if (v > BN_DB_SCHEMA_VERSION || v < 0) return refuse_newer(db, v);
    while (s == BN_OK && v < BN_DB_SCHEMA_VERSION) s = migrate_one(db, &v);
    db->schema = v;
    return s;
}

static bn_status configure(bn_db *db)
{
    sqlite3_busy_timeout(db->sql, db->opt.busy_timeout_ms);
    sqlite3_extended_result_codes(db->sql, 1);
    int v;
    /* refuse a newer file before changing anything in it */
    bn_status s = read_version(db, &v);
    if (s == BN_OK && v > BN_DB_SCHEMA_VERSION) s = refuse_newer(db, v);
    if (s == BN_OK) s = set_wal(db);
    if (s == BN_OK)
        s = bn__db_exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL", "setting pragmas");
    return s;
}

/* ---- open and close ----------------------------------------------------------------------- */

bn_status bn_db_open(bn_db **out, const char *path, const bn_db_options *opt)
{
    bn_db *db = bn_calloc(1, sizeof *db);
    *out = db;
    if (!db) return BN_ERR_NOMEM;
    db->opt = opt ? *opt : bn_db_options_default();
    if (db->opt.busy_timeout_ms <= 0) db->opt.busy_timeout_ms = BN_DB_BUSY_TIMEOUT_MS_DEFAULT;
    if (!path || !*path) return bn__db_err(db, BN_ERR_INVALID, "no history file given");
    db->path = bn_strdup(path);
    if (!db->path) return bn__db_err(db, BN_ERR_NOMEM, "out of memory");
    bn_status s = make_parents(db, path);
    if (s == BN_OK) s = create_private(db, path);
    if (s != BN_OK) return s;
    int rc = sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) return bn__db_sqlerr(db, rc, "cannot open");
    s = configure(db);
    if (s == BN_OK) s = migrate(db);
    if (s == BN_OK) s = bn__db_mark_incomplete(db, &db->n_incomplete);
    if (s == BN_OK) s = bn__db_apply_retention(db, &db->n_pruned);
    return s;
}

void bn_db_close(bn_db *db)
{
    if (!db) return;
    if (db->pg) bn__pg_close(db);
    for (int i = 0; i < db->n_kept; i++) sqlite3_finalize(db->kept[i].st);
    if (db->sql) sqlite3_close_v2(db->sql);
    bn_free(db->path);
    bn_free(db);
}

void bn_db_set_retention(bn_db *db, const bn_db_options *opt)
{
    if (!db || !opt) return;
    db->opt.retention_days = opt->retention_days;
    db->opt.ledger_days = opt->ledger_days;
    db->opt.keys_days = opt->keys_days;
    db->opt.now_ms = opt->now_ms;
}

void bn_db_set_busy_timeout(bn_db *db, int ms)
{
    if (!db || ms <= 0) return;
    db->opt.busy_timeout_ms = ms;
    if (db->sql) sqlite3_busy_timeout(db->sql, ms);
}

bn_status bn_db_check(bn_db *db)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db, "PRAGMA integrity_check(1)", &st);
    if (s != BN_OK) return s;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        s = bn__db_sqlerr(db, rc, "checking integrity");
    } else {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") != 0)
            s = bn__db_err(db, BN_ERR_FORMAT, "%s: integrity check: %s", db->path,
                           r ? r : "no answer");
    }
    sqlite3_finalize(st);
    return s;
}
