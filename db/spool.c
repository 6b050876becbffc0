/* spool.c - the monitor's spool, alert transitions and run summaries in the history; see
 * bitnet/db_spool.h. The schema is migration 3 of migrations.c; the spool keeps a history
 * handle of its own. */
#include "bitnet/db_spool.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bitnet/db_jobs.h"
#include "db_int.h"

#define MAX_SINKS 8

/* SQL: a notification's rule, and its state unless it is a test (NULL: none, or not JSON). */
#define NOTE_RULE(p) "CASE WHEN json_valid(" p ") THEN json_extract(" p ", '$.rule') END"
#define NOTE_STATE(p)                                                                              \
    "CASE WHEN json_valid(" p ") AND NOT coalesce(json_extract(" p ", '$.test'), 0) THEN "         \
    "json_extract(" p ", '$.state') END"

/* A marker (kind "unfired", payload the rule) left where a firing notification was dropped
 * before its resolved one came: that one is dropped too when it comes. Never sent, never
 * counted as waiting. */
#define KIND_UNFIRED "unfired"

struct bn_spool {
    pthread_mutex_t mu;
    bn_db *db;                 /* the history; errors are left on it */
    bn_status last;            /* the status of the last failure */
    int64_t max_entries;       /* samples and pushes */
    int64_t max_notifications; /* alert notifications: a bound of their own */
    bn_spool_drop_fn drop_fn;
    void *drop_ud;
    struct {
        char sink[32];
        int64_t n;
    } dropped[MAX_SINKS];
};

/* Inside, functions return 0 or -1 with the message on the handle and its status in
 * sp->last; the public ones turn that into a bn_status. */
static int keep(bn_spool *sp, bn_status s)
{
    if (s == BN_OK) return 0;
    sp->last = s;
    return -1;
}

static int sp_err(bn_spool *sp, const char *what)
{
    return keep(sp, bn__db_sqlerr(sp->db, sqlite3_errcode(sp->db->sql), what));
}

static int sp_nomem(bn_spool *sp)
{
    return keep(sp, bn__db_err(sp->db, BN_ERR_NOMEM, "out of memory"));
}

static bn_status status_of(const bn_spool *sp, int rc)
{
    return rc ? sp->last : BN_OK;
}

const char *bn_spool_errmsg(const bn_spool *sp)
{
    return sp ? bn_db_errmsg(sp->db) : "out of memory";
}

const char *bn_spool_path(const bn_spool *sp)
{
    return sp->db->path;
}

static int exec(bn_spool *sp, const char *sql, const char *what)
{
    return keep(sp, bn__db_exec(sp->db, sql, what));
}

/* Prepares sql; binds nothing. */
static sqlite3_stmt *prepare(bn_spool *sp, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (keep(sp, bn__db_prepare(sp->db, sql, &st))) return NULL;
    return st;
}

/* Runs a statement with no rows; finalizes it. */
static int step_done(bn_spool *sp, sqlite3_stmt *st, const char *what)
{
    if (!st) return -1;
    return keep(sp, bn__db_step_done(sp->db, st, what));
}

bn_status bn_spool_open(bn_spool **out, const char *path, int64_t max_entries, int retention_days)
{
    bn_spool *sp = bn_calloc(1, sizeof *sp);
    *out = sp;
    if (!sp) return BN_ERR_NOMEM;
    if (pthread_mutex_init(&sp->mu, NULL)) {
        bn_free(sp);
        *out = NULL;
        return BN_ERR_NOMEM;
    }
    sp->max_entries = max_entries > 0 ? max_entries : BN_SPOOL_MAX_DEFAULT;
    sp->max_notifications = BN_SPOOL_NOTIFY_MAX_DEFAULT;
    bn_db_options opt = bn_db_options_default();
    opt.retention_days = retention_days;
    bn_status s = bn_db_open(&sp->db, path, &opt); /* creates the file, migrates */
    if (!sp->db) return BN_ERR_NOMEM;              /* bn_spool_errmsg(sp) says so */
    if (s == BN_OK && retention_days > 0) {
        char sql[160];
        snprintf(sql, sizeof sql, "DELETE FROM alert_transitions WHERE at < %lld",
                 (long long)(bn__db_now_ms(sp->db) - (int64_t)retention_days * BN_DB_DAY_MS));
        s = bn__db_exec(sp->db, sql, "pruning alert transitions");
    }
    return s;
}

void bn_spool_close(bn_spool *sp)
{
    if (!sp) return;
    bn_db_close(sp->db);
    pthread_mutex_destroy(&sp->mu);
    bn_free(sp);
}

void bn_spool_set_max(bn_spool *sp, int64_t max_entries, int64_t max_notifications)
{
    pthread_mutex_lock(&sp->mu);
    if (max_entries > 0) sp->max_entries = max_entries;
    if (max_notifications > 0) sp->max_notifications = max_notifications;
    pthread_mutex_unlock(&sp->mu);
}

void bn_spool_on_drop(bn_spool *sp, bn_spool_drop_fn fn, void *ud)
{
    pthread_mutex_lock(&sp->mu);
    sp->drop_fn = fn;
    sp->drop_ud = ud;
    pthread_mutex_unlock(&sp->mu);
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void count_drop(bn_spool *sp, const char *sink, const char *kind, int64_t n)
{
    int i = 0;
    while (i < MAX_SINKS && sp->dropped[i].sink[0] && strcmp(sp->dropped[i].sink, sink) != 0) i++;
    if (i < MAX_SINKS) {
        snprintf(sp->dropped[i].sink, sizeof sp->dropped[i].sink, "%s", sink);
        sp->dropped[i].n += n;
    }
    if (sp->drop_fn) sp->drop_fn(sp->drop_ud, sink, kind, n);
}

/* Deletes the oldest samples and pushes past their bound, counting them per sink and kind.
 * Notifications are not counted here: samples never push them out. */
static int enforce_data_bound(bn_spool *sp)
{
    sqlite3_stmt *st = prepare(sp, "SELECT count(*) FROM spool WHERE kind NOT IN "
                                   "('notification', '" KIND_UNFIRED "')");
    if (!st) return -1;
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (n < 0) return sp_err(sp, "counting the spool");
    const int64_t excess = n - sp->max_entries;
    if (excess <= 0) return 0;
    st = prepare(sp, "SELECT sink, kind, count(*) FROM (SELECT sink, kind FROM spool WHERE kind "
                     "NOT IN ('notification', '" KIND_UNFIRED "') ORDER BY id LIMIT ?1) GROUP BY "
                     "sink, kind");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, excess);
    while (sqlite3_step(st) == SQLITE_ROW)
        count_drop(sp, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
    sqlite3_finalize(st);
    st = prepare(sp, "DELETE FROM spool WHERE id IN (SELECT id FROM spool WHERE kind NOT IN "
                     "('notification', '" KIND_UNFIRED "') ORDER BY id LIMIT ?1)");
    if (st) sqlite3_bind_int64(st, 1, excess);
    return step_done(sp, st, "dropping the oldest entries");
}

/* One waiting notification, as the bound sees it. */
typedef struct note {
    int64_t id;
    char sink[32], rule[128];
    int state;    /* 'f' firing, 'r' resolved, 0 anything else (a test, not ours: stands alone) */
    int64_t pair; /* a firing one: the index of its resolved one, or -1 */
} note;

/* The notifications, oldest first, into *out (bn_free) and *n. 0, or -1. */
static int load_notes(bn_spool *sp, note **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = prepare(sp, "SELECT id, sink, " NOTE_RULE("payload") ", " NOTE_STATE(
                                           "payload") " FROM spool WHERE kind = 'notification' "
                                                      "ORDER BY id");
    if (!st) return -1;
    note *v = NULL;
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (bn__db_grow((void **)&v, sizeof *v, *n, &cap)) {
            rc = sp_nomem(sp);
            break;
        }
        note *e = &v[(*n)++];
        const char *rule = (const char *)sqlite3_column_text(st, 2),
                   *state = (const char *)sqlite3_column_text(st, 3);
        e->id = sqlite3_column_int64(st, 0);
        snprintf(e->sink, sizeof e->sink, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(e->rule, sizeof e->rule, "%s", rule ? rule : "");
        e->state = !rule || !state              ? 0
                   : !strcmp(state, "firing")   ? 'f'
                   : !strcmp(state, "resolved") ? 'r'
                                                : 0;
        e->pair = -1;
    }
    if (!rc && step != SQLITE_DONE) rc = sp_err(sp, "reading the notifications");
    sqlite3_finalize(st);
    if (rc) {
        bn_free(v);
        *n = 0;
        return -1;
    }
    *out = v;
    return 0;
}

/* Pairs each firing notification with the resolved one after it (same sink and rule). */
static void pair_notes(note *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].state != 'f') continue;
        for (size_t j = i + 1; j < n; j++) {
            if (!v[j].state || strcmp(v[j].sink, v[i].sink) || strcmp(v[j].rule, v[i].rule))
                continue;
            if (v[j].state == 'r') v[i].pair = (int64_t)j;
            break;
        }
    }
}

static int delete_id(bn_spool *sp, int64_t id)
{
    sqlite3_stmt *st = prepare(sp, "DELETE FROM spool WHERE id = ?1");
    if (st) sqlite3_bind_int64(st, 1, id);
    return step_done(sp, st, "dropping a notification");
}

/* Past the notifications' own bound, drops, oldest first, what a receiver can do without:
 * a notification that stands alone (a test), or a firing one together with its resolved
 * one. Never a firing one alone (its resolved one would come without it) nor a resolved
 * one whose firing one went out: so the bound may be passed by at most two notifications
 * per sink and rule. */
static int enforce_notification_bound(bn_spool *sp)
{
    size_t n;
    note *v;
    if (load_notes(sp, &v, &n)) return -1;
    int64_t excess = (int64_t)n - sp->max_notifications;
    int rc = 0;
    if (excess > 0) pair_notes(v, n);
    for (size_t i = 0; !rc && excess > 0 && i < n; i++) {
        const int alone = v[i].state == 0, pair = v[i].state == 'f' && v[i].pair >= 0;
        if (!alone && !pair) continue;
        rc = delete_id(sp, v[i].id);
        if (!rc && pair) rc = delete_id(sp, v[v[i].pair].id);
        if (!rc) count_drop(sp, v[i].sink, "notification", pair ? 2 : 1);
        excess -= pair ? 2 : 1;
    }
    bn_free(v);
    return rc;
}

static int enforce_bound(bn_spool *sp)
{
    return enforce_data_bound(sp) || enforce_notification_bound(sp) ? -1 : 0;
}

/* A notification being added: a resolved one whose firing one was dropped goes too (1, and
 * the marker with it); a firing one clears a marker left for its rule. 0: add it; -1. */
static int unfired_check(bn_spool *sp, const char *sink, const char *payload)
{
    sqlite3_stmt *st = prepare(
            sp,
            "SELECT id, " NOTE_STATE("?2") " FROM spool WHERE sink = ?1 AND kind = '" KIND_UNFIRED
                                           "' AND payload = " NOTE_RULE("?2") " LIMIT 1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, payload, -1, SQLITE_STATIC);
    int64_t marker = -1;
    char state[16] = "";
    if (sqlite3_step(st) == SQLITE_ROW) {
        marker = sqlite3_column_int64(st, 0);
        const char *s = (const char *)sqlite3_column_text(st, 1);
        snprintf(state, sizeof state, "%s", s ? s : "");
    }
    sqlite3_finalize(st);
    if (marker < 0 || (strcmp(state, "resolved") && strcmp(state, "firing"))) return 0;
    if (delete_id(sp, marker)) return -1;
    if (!strcmp(state, "firing")) return 0;
    count_drop(sp, sink, "notification", 1);
    return 1;
}

static int push_locked(bn_spool *sp, const char *sink, const char *kind, const char *payload,
                       int64_t now, int replace)
{
    if (strlen(payload) > BN_SPOOL_PAYLOAD_MAX || strlen(sink) >= 32 || strlen(kind) >= 16) {
        return keep(sp,
                    bn__db_err(sp->db, BN_ERR_RANGE, "spool: an entry for %s is too large", sink));
    }
    if (exec(sp, "BEGIN IMMEDIATE", "adding to the spool")) return -1;
    sqlite3_stmt *st;
    int rc = 0;
    if (replace) {
        st = prepare(sp, "DELETE FROM spool WHERE sink = ?1 AND kind = ?2");
        if (st) {
            sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
        }
        rc = step_done(sp, st, "replacing an entry");
    }
    int skip = 0;
    if (!rc && !strcmp(kind, "notification") && (skip = unfired_check(sp, sink, payload)) < 0)
        rc = -1;
    if (!rc && !skip) {
        st = prepare(sp,
                     "INSERT INTO spool (sink, kind, payload, created_at) VALUES (?1,?2,?3,?4)");
        if (st) {
            sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, payload, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, now);
        }
        rc = step_done(sp, st, "adding to the spool");
    }
    if (!rc) rc = enforce_bound(sp);
    if (!rc) rc = exec(sp, "COMMIT", "adding to the spool");
    if (rc) sqlite3_exec(sp->db->sql, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

bn_status bn_spool_push(bn_spool *sp, const char *sink, const char *kind, const char *payload,
                        int64_t now, int replace)
{
    pthread_mutex_lock(&sp->mu);
    bn_status s = status_of(sp, push_locked(sp, sink, kind, payload, now, replace));
    pthread_mutex_unlock(&sp->mu);
    return s;
}

void bn_spool_entries_free(bn_spool_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) bn_free(e[i].payload);
    bn_free(e);
}

static int read_entry(sqlite3_stmt *st, bn_spool_entry *e)
{
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(st, 0);
    snprintf(e->sink, sizeof e->sink, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(e->kind, sizeof e->kind, "%s", (const char *)sqlite3_column_text(st, 2));
    const unsigned char *p = sqlite3_column_text(st, 3);
    e->len = (size_t)sqlite3_column_bytes(st, 3);
    if (!(e->payload = bn_malloc(e->len + 1))) return -1;
    if (p) memcpy(e->payload, p, e->len);
    e->payload[e->len] = '\0';
    e->created_ms = sqlite3_column_int64(st, 4);
    e->attempts = sqlite3_column_int(st, 5);
    return 0;
}

bn_status bn_spool_peek(bn_spool *sp, const char *sink, size_t max_n, bn_spool_entry **out,
                        size_t *n)
{
    *out = NULL;
    *n = 0;
    if (max_n == 0) return BN_OK;
    pthread_mutex_lock(&sp->mu);
    bn_spool_entry *e = bn_calloc(max_n, sizeof *e);
    if (!e) {
        sp_nomem(sp);
        pthread_mutex_unlock(&sp->mu);
        return BN_ERR_NOMEM;
    }
    sqlite3_stmt *st =
            prepare(sp, "SELECT id, sink, kind, payload, created_at, attempts FROM spool "
                        "WHERE (?1 IS NULL OR sink = ?1) AND kind <> '" KIND_UNFIRED
                        "' ORDER BY id LIMIT ?2");
    int rc = st ? 0 : -1, step = SQLITE_DONE;
    size_t k = 0;
    if (st) {
        if (sink) sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)max_n);
        while (k < max_n && (step = sqlite3_step(st)) == SQLITE_ROW)
            if (read_entry(st, &e[k++])) {
                rc = sp_nomem(sp);
                break;
            }
        if (!rc && step != SQLITE_ROW && step != SQLITE_DONE) rc = sp_err(sp, "reading the spool");
        sqlite3_finalize(st);
    }
    const bn_status s = status_of(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    if (rc || k == 0) {
        bn_spool_entries_free(e, k);
        return s;
    }
    *out = e;
    *n = k;
    return BN_OK;
}

/* Runs sql (with ?1 the id) for each id, in one transaction. */
static bn_status each_id(bn_spool *sp, const char *sql, const int64_t *ids, size_t n,
                         const char *text)
{
    pthread_mutex_lock(&sp->mu);
    int rc = exec(sp, "BEGIN IMMEDIATE", "updating the spool");
    sqlite3_stmt *st = rc ? NULL : prepare(sp, sql);
    if (!rc && !st) rc = -1;
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        if (text) sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) rc = sp_err(sp, "updating the spool");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (!rc) rc = exec(sp, "COMMIT", "updating the spool");
    if (rc) sqlite3_exec(sp->db->sql, "ROLLBACK", NULL, NULL, NULL);
    const bn_status s = status_of(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return s;
}

bn_status bn_spool_done(bn_spool *sp, const int64_t *ids, size_t n)
{
    return each_id(sp, "DELETE FROM spool WHERE id = ?1", ids, n, NULL);
}

/* Drops entry id for good. A firing notification takes its resolved one along: the queued
 * one, else (a marker) the one to come. */
static int drop_one(bn_spool *sp, int64_t id)
{
    sqlite3_stmt *st = prepare(sp, "SELECT sink, " NOTE_RULE("payload") ", " NOTE_STATE(
                                           "payload") " FROM spool WHERE id = ?1 AND kind = "
                                                      "'notification'");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, id);
    char sink[32] = "", rule[256] = "";
    int firing = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 1),
                   *s = (const char *)sqlite3_column_text(st, 2);
        firing = r && s && !strcmp(s, "firing") && strlen(r) < sizeof rule;
        snprintf(sink, sizeof sink, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(rule, sizeof rule, "%s", r ? r : "");
    }
    sqlite3_finalize(st);
    if (delete_id(sp, id) || !firing) return firing ? -1 : 0;
    st = prepare(
            sp,
            "SELECT id, " NOTE_STATE(
                    "payload") " FROM spool WHERE sink = ?1 AND kind = "
                               "'notification' AND id > ?2 AND " NOTE_RULE(
                                       "payload") " = ?3 AND " NOTE_STATE("payload") " IS NOT NULL "
                                                                                     "ORDER BY id "
                                                                                     "LIMIT 1");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_text(st, 3, rule, -1, SQLITE_STATIC);
    int64_t next = -1;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 1) &&
        !strcmp((const char *)sqlite3_column_text(st, 1), "resolved"))
        next = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (next >= 0) {
        count_drop(sp, sink, "notification", 1);
        return delete_id(sp, next);
    }
    st = prepare(sp,
                 "INSERT INTO spool (sink, kind, payload, created_at) VALUES (?1, '" KIND_UNFIRED
                 "', ?2, ?3)");
    if (st) {
        sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rule, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, bn__db_now_ms(sp->db));
    }
    return step_done(sp, st, "marking a dropped notification");
}

bn_status bn_spool_drop(bn_spool *sp, const int64_t *ids, size_t n)
{
    pthread_mutex_lock(&sp->mu);
    int rc = exec(sp, "BEGIN IMMEDIATE", "dropping from the spool");
    for (size_t i = 0; !rc && i < n; i++) rc = drop_one(sp, ids[i]);
    if (!rc) rc = exec(sp, "COMMIT", "dropping from the spool");
    if (rc) sqlite3_exec(sp->db->sql, "ROLLBACK", NULL, NULL, NULL);
    const bn_status s = status_of(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return s;
}

bn_status bn_spool_failed(bn_spool *sp, const int64_t *ids, size_t n, const char *error)
{
    return each_id(sp, "UPDATE spool SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                   ids, n, error ? error : "");
}

int64_t bn_spool_count(bn_spool *sp, const char *sink)
{
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = prepare(sp, "SELECT count(*) FROM spool WHERE (?1 IS NULL OR sink = ?1) "
                                   "AND kind <> '" KIND_UNFIRED "'");
    int64_t n = -1;
    if (st) {
        if (sink) sqlite3_bind_text(st, 1, sink, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        else
            sp_err(sp, "counting the spool");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&sp->mu);
    return n;
}

int64_t bn_spool_dropped(bn_spool *sp, const char *sink)
{
    int64_t n = 0;
    pthread_mutex_lock(&sp->mu);
    for (int i = 0; i < MAX_SINKS && sp->dropped[i].sink[0]; i++)
        if (!sink || strcmp(sp->dropped[i].sink, sink) == 0) n += sp->dropped[i].n;
    pthread_mutex_unlock(&sp->mu);
    return n;
}

/* ---- alert transitions -------------------------------------------------------------------- */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

bn_status bn_spool_transition_add(bn_spool *sp, const bn_spool_transition *t)
{
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = prepare(sp, "INSERT INTO alert_transitions (rule, from_state, to_state, at, "
                                   "value, series, metric, severity, host) "
                                   "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)");
    if (st) {
        sqlite3_bind_text(st, 1, t->rule, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->from, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, t->to, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, t->at_ms);
        if (isfinite(t->value))
            sqlite3_bind_double(st, 5, t->value);
        else
            sqlite3_bind_null(st, 5);
        bind_text_or_null(st, 6, t->series);
        bind_text_or_null(st, 7, t->metric);
        bind_text_or_null(st, 8, t->severity);
        bind_text_or_null(st, 9, t->host);
    }
    const bn_status s = status_of(sp, step_done(sp, st, "recording an alert transition"));
    pthread_mutex_unlock(&sp->mu);
    return s;
}

void bn_spool_transitions_free(bn_spool_transition_rec *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        bn_free(t[i].rule);
        bn_free(t[i].from);
        bn_free(t[i].to);
        bn_free(t[i].series);
        bn_free(t[i].metric);
        bn_free(t[i].severity);
        bn_free(t[i].host);
    }
    bn_free(t);
}

/* Reads the current row into r (its strings bn_malloc'ed). 0, or -1 when out of memory. */
static int read_transition(sqlite3_stmt *st, bn_spool_transition_rec *r)
{
    int oom = 0;
    r->id = sqlite3_column_int64(st, 0);
    r->rule = bn__db_col_str(st, 1, &oom);
    r->from = bn__db_col_str(st, 2, &oom);
    r->to = bn__db_col_str(st, 3, &oom);
    r->at_ms = sqlite3_column_int64(st, 4);
    r->value = sqlite3_column_type(st, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5);
    r->series = bn__db_col_str(st, 6, &oom);
    r->metric = bn__db_col_str(st, 7, &oom);
    r->severity = bn__db_col_str(st, 8, &oom);
    r->host = bn__db_col_str(st, 9, &oom);
    return oom ? -1 : 0;
}

bn_status bn_spool_transitions(bn_spool *sp, const char *rule, int64_t limit,
                               bn_spool_transition_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = prepare(sp, "SELECT id, rule, from_state, to_state, at, value, series, "
                                   "metric, severity, host FROM alert_transitions "
                                   "WHERE ?1 IS NULL OR rule = ?1 ORDER BY at DESC, id DESC "
                                   "LIMIT ?2");
    int rc = st ? 0 : -1, step = SQLITE_DONE;
    bn_spool_transition_rec *t = NULL;
    size_t k = 0, cap = 0;
    if (st) {
        if (rule) sqlite3_bind_text(st, 1, rule, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            if (bn__db_grow((void **)&t, sizeof *t, k, &cap) || read_transition(st, &t[k++])) {
                rc = sp_nomem(sp);
                break;
            }
        }
        if (!rc && step != SQLITE_DONE) rc = sp_err(sp, "reading alert transitions");
        sqlite3_finalize(st);
    }
    const bn_status s = status_of(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    if (rc) {
        bn_spool_transitions_free(t, k);
        return s;
    }
    *out = t;
    *n = k;
    return BN_OK;
}

bn_status bn_spool_last_state(bn_spool *sp, const char *rule, char *state, size_t size,
                              int64_t *at_ms)
{
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = prepare(sp, "SELECT to_state, at FROM alert_transitions WHERE rule = ?1 "
                                   "ORDER BY at DESC, id DESC LIMIT 1");
    bn_status rc = st ? BN_ERR_INTERNAL : sp->last;
    if (st) {
        sqlite3_bind_text(st, 1, rule, -1, SQLITE_STATIC);
        const int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(state, size, "%s", (const char *)sqlite3_column_text(st, 0));
            *at_ms = sqlite3_column_int64(st, 1);
            rc = BN_OK;
        } else if (step == SQLITE_DONE) {
            rc = bn__db_err(sp->db, BN_ERR_NOT_FOUND, "rule %s has no transition", rule);
        } else {
            sp_err(sp, "reading alert transitions");
            rc = sp->last;
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* ---- run summaries -------------------------------------------------------------------------- */

/* A summary's callback: (text, text, integer) or (text, text, real) per row. */
typedef struct row_cb {
    void (*tti)(void *ud, const char *a, const char *b, int64_t n);
    void (*ttd)(void *ud, const char *a, const char *b, double v);
    void *ud;
} row_cb;

/* Runs sql under the lock and calls cb with each row; what names it in an error. */
static bn_status each_row(bn_spool *sp, const char *sql, const char *what, const row_cb *cb)
{
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = prepare(sp, sql);
    int rc = st ? 0 : -1, step = SQLITE_DONE;
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(st, 0),
                   *b = (const char *)sqlite3_column_text(st, 1);
        if (cb->tti)
            cb->tti(cb->ud, a, b, sqlite3_column_int64(st, 2));
        else
            cb->ttd(cb->ud, a, b, sqlite3_column_double(st, 2));
    }
    if (st && step != SQLITE_DONE) rc = sp_err(sp, what);
    sqlite3_finalize(st);
    const bn_status s = status_of(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return s;
}

bn_status bn_spool_run_counts(bn_spool *sp,
                              void (*fn)(void *ud, const char *command, const char *status,
                                         int64_t n),
                              void *ud)
{
    const row_cb cb = {.tti = fn, .ud = ud};
    return each_row(sp,
                    "SELECT command, status, count(*) FROM runs GROUP BY command, status "
                    "ORDER BY command, status",
                    "counting runs", &cb);
}

bn_status bn_spool_job_counts(bn_spool *sp, void (*fn)(void *ud, const char *status, int64_t n),
                              void *ud)
{
    pthread_mutex_lock(&sp->mu);
    const bn_status s = bn_db_job_counts(sp->db, fn, ud); /* bitnet/db_jobs.h */
    pthread_mutex_unlock(&sp->mu);
    return s;
}

bn_status bn_spool_outbox_counts(bn_spool *sp, int64_t now_ms, bn_outbox_counts *out)
{
    pthread_mutex_lock(&sp->mu);
    const bn_status s = bn_db_outbox_counts(sp->db, now_ms, out);
    pthread_mutex_unlock(&sp->mu);
    return s;
}

bn_status bn_spool_last_runs(bn_spool *sp,
                             void (*fn)(void *ud, const char *command, const char *metrics_json,
                                        int64_t ended_ms),
                             void *ud)
{
    const row_cb cb = {.tti = fn, .ud = ud};
    return each_row(sp,
                    "SELECT command, metrics, ended_at FROM runs WHERE id IN (SELECT max(id) "
                    "FROM runs WHERE status = 'ok' AND metrics IS NOT NULL GROUP BY command) "
                    "ORDER BY command",
                    "reading runs", &cb);
}

bn_status bn_spool_run_metrics(bn_spool *sp,
                               void (*fn)(void *ud, const char *command, const char *key,
                                          double value),
                               void *ud)
{
    const row_cb cb = {.ttd = fn, .ud = ud};
    return each_row(sp,
                    "SELECT r.command, j.key, j.value FROM (SELECT id, command, metrics FROM "
                    "runs WHERE status = 'ok' AND metrics IS NOT NULL AND json_valid(metrics) "
                    "ORDER BY id DESC LIMIT 256) AS r, json_each(r.metrics) AS j "
                    "WHERE j.type IN ('integer', 'real') AND (j.key LIKE '%tokens_per_s' OR "
                    "j.key = 'best_gemv_weight_gbps') ORDER BY r.id",
                    "reading run metrics", &cb);
}
