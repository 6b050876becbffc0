/*
 * store_fx.h - the fixture of the platform's store tests (test_tenants.c, test_billing.c): a
 * temporary directory with a history file in it, opened at a fixed time, a raw sqlite
 * connection to tamper with it, and ok() that prints the store's message before failing.
 * Include after <cmocka.h> and test_util.h.
 */
#ifndef BITNET_TEST_STORE_FX_H
#define BITNET_TEST_STORE_FX_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "bitnet/db.h"

typedef struct fx {
    char dir[256];
    char path[320];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/bn_test_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/history.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    remove_tree(f->dir);
    free(f);
    return 0;
}

/* The store at path with the clock at now (ms). */
static bn_db *open_at(const char *path, int64_t now)
{
    bn_db *db;
    bn_db_options o = bn_db_options_default();
    o.now_ms = now;
    bn_status s = bn_db_open(&db, path, &o);
    if (s != BN_OK) fprintf(stderr, "open: %s\n", bn_db_errmsg(db));
    assert_int_equal(s, BN_OK);
    return db;
}

static void ok(bn_db *db, bn_status s)
{
    if (s != BN_OK) fprintf(stderr, "db: %s\n", bn_db_errmsg(db));
    assert_int_equal(s, BN_OK);
}

/* Runs sql on the file through a connection of its own (around the store). */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *s;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(s, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "raw: %s\n", err ? err : "?");
    sqlite3_free(err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(s);
}

#endif
