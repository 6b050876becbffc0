/*
 * recover.c - finding the runs whose process died without ending them.
 *
 * A run records the process that began it: pid, host name, boot id and the process's start
 * time. At open, a run still marked running is incomplete when it was begun on this host and
 * the machine has rebooted since, or no process has its pid any more, or the process with its
 * pid is a zombie or started at another time (the pid was reused). Runs of other hosts (a
 * shared home directory) are left alone: their processes cannot be seen from here.
 */
#include "db_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void read_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) return;
    if (!fgets(buf, (int)size, f)) buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

/* From /proc/PID/stat: the state letter and the start time (field 22). 0 when unknown. */
static int64_t proc_start(int64_t pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    *state = '?';
    read_line(path, buf, sizeof buf);
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (!p) return 0;
    long long v = 0;
    char st;
    /* after ")": state (field 3), then fields 4..21, then starttime (22) */
    if (sscanf(p + 1,
               " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
               "%*s %lld",
               &st, &v) != 2)
        return 0;
    *state = st;
    return v;
}

void bn__db_proc_self(bn__db_proc *p)
{
    memset(p, 0, sizeof *p);
    p->pid = (int64_t)getpid();
    char st;
    p->start = proc_start(p->pid, &st);
    if (gethostname(p->host, sizeof p->host - 1) != 0) p->host[0] = '\0';
    read_line("/proc/sys/kernel/random/boot_id", p->boot_id, sizeof p->boot_id);
}

int bn__db_proc_alive(const bn__db_proc *p, const bn__db_proc *self)
{
    if (p->host[0] && self->host[0] && strcmp(p->host, self->host) != 0) return 1;
    if (p->boot_id[0] && self->boot_id[0] && strcmp(p->boot_id, self->boot_id) != 0) return 0;
    if (p->pid <= 0) return 0;
    if (p->pid == self->pid) return !p->start || !self->start || p->start == self->start;
    if (kill((pid_t)p->pid, 0) != 0 && errno == ESRCH) return 0;
    char state;
    const int64_t start = proc_start(p->pid, &state);
    if (state == 'Z' || state == 'X') return 0;
    if (p->start && start && start != p->start) return 0;
    return 1;
}

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* The ids of dead running runs after id *after, at most cap of them; *after moves to the last id
 * looked at and *more says whether rows remain past it. */
static bn_status find_dead(bn_db *db, int64_t *after, int64_t *ids, int cap, int *n, int *more)
{
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT id, pid, host, boot_id, proc_start FROM runs "
                                 "WHERE status = 'running' AND id > ?1 ORDER BY id",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, *after);
    bn__db_proc self, p;
    bn__db_proc_self(&self);
    int rc;
    *n = 0;
    *more = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            *more = 1;
            break;
        }
        memset(&p, 0, sizeof p);
        *after = sqlite3_column_int64(st, 0);
        p.pid = sqlite3_column_int64(st, 1);
        copy_col(st, 2, p.host, sizeof p.host);
        copy_col(st, 3, p.boot_id, sizeof p.boot_id);
        p.start = sqlite3_column_int64(st, 4);
        if (!bn__db_proc_alive(&p, &self)) ids[(*n)++] = *after;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) s = bn__db_sqlerr(db, rc, "reading running runs");
    sqlite3_finalize(st);
    return s;
}

/* Marks the given runs incomplete, adding the number changed to *n_marked. */
static bn_status mark_ids(bn_db *db, const int64_t *ids, int n, int64_t *n_marked)
{
    sqlite3_stmt *st;
    bn_status s =
            bn__db_prepare(db,
                           "UPDATE runs SET status = 'incomplete', error = coalesce(error, "
                           "'the process (pid ' || pid || ') ended without recording the end of "
                           "the run (killed, crashed or the machine restarted)') "
                           "WHERE id = ?1 AND status = 'running'",
                           &st);
    if (s != BN_OK) return s;
    for (int i = 0; i < n && s == BN_OK; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "marking a run incomplete");
        *n_marked += sqlite3_changes(db->sql);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return s;
}

bn_status bn__db_mark_incomplete(bn_db *db, int64_t *n_marked)
{
    /* In batches of CAP ids, so that every dead run is marked however many there are. */
    enum { CAP = 256 };
    int64_t ids[CAP], after = 0;
    int n = 0, more = 1;
    *n_marked = 0;
    bn_status s = BN_OK;
    while (s == BN_OK && more) {
        s = find_dead(db, &after, ids, CAP, &n, &more);
        if (s == BN_OK && n > 0) s = mark_ids(db, ids, n, n_marked);
    }
    return s;
}
