/* sysstat.c - system readings from /proc: per-core CPU, load, swap, disks, network and the
 * bitnet processes; see sysstat.h. */
#include "common/sysstat.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The next line of *p (without its newline) into line; 0 at the end of the text. */
static int next_line(const char **p, char *line, size_t size)
{
    if (!**p) return 0;
    const char *nl = strchr(*p, '\n');
    const size_t n = nl ? (size_t)(nl - *p) : strlen(*p);
    snprintf(line, size, "%.*s", (int)(n < size ? n : size - 1), *p);
    *p += n + (nl ? 1 : 0);
    return 1;
}

int bn_sys_parse_cpus(const char *text, bn_sys_cpu *cpus, int max)
{
    char line[512];
    int n = -1;
    memset(cpus, 0, sizeof *cpus * (size_t)max);
    for (const char *p = text; next_line(&p, line, sizeof line);) {
        unsigned long long v[8] = {0};
        int id, used = 0;
        if (strncmp(line, "cpu", 3) || !isdigit((unsigned char)line[3])) continue;
        const int k = sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu%n", &id, &v[0],
                             &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &used);
        if (k < 5 || id < 0 || id >= max) continue;
        cpus[id].total = 0;
        for (int i = 0; i < 8; i++) cpus[id].total += v[i];
        cpus[id].idle = v[3] + v[4];
        if (id + 1 > n) n = id + 1;
    }
    return n;
}

int bn_sys_parse_loadavg(const char *text, double load[3])
{
    return sscanf(text, "%lf %lf %lf", &load[0], &load[1], &load[2]) == 3 ? 0 : -1;
}

/* "Key:   123 kB" of /proc/meminfo in bytes. 0, or -1. */
static int meminfo_value(const char *text, const char *key, unsigned long long *v)
{
    const size_t kn = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        unsigned long long kb;
        if (!strncmp(p, key, kn) && p[kn] == ':' && sscanf(p + kn + 1, "%llu", &kb) == 1) {
            *v = kb * 1024;
            return 0;
        }
    }
    return -1;
}

int bn_sys_parse_swap(const char *text, unsigned long long *total, unsigned long long *free_b)
{
    return meminfo_value(text, "SwapTotal", total) || meminfo_value(text, "SwapFree", free_b) ? -1
                                                                                              : 0;
}

/* Devices that count again what the disks under them count, or hold no disk at all. */
static int virtual_disk(const char *name)
{
    static const char *const skip[] = {"loop", "ram", "zram", "dm-", "md"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strncmp(name, skip[i], strlen(skip[i]))) return 1;
    return 0;
}

/* Whether name is a partition of disk: sda1 of sda, nvme0n1p2 of nvme0n1 (not sdaa of sda). */
static int partition_of(const char *name, const char *disk)
{
    const size_t n = strlen(disk);
    if (strncmp(name, disk, n) != 0) return 0;
    const char *rest = name + n;
    if (*rest == 'p') rest++;
    return isdigit((unsigned char)*rest);
}

#define MAX_DISKS 512

int bn_sys_parse_diskstats(const char *text, unsigned long long *read_b,
                           unsigned long long *written_b)
{
    static _Thread_local struct {
        char name[32];
        unsigned long long rd, wr;
    } d[MAX_DISKS];
    char line[512];
    int n = 0;
    for (const char *p = text; n < MAX_DISKS && next_line(&p, line, sizeof line);) {
        unsigned maj, min;
        unsigned long long f[7];
        /* major minor name reads merged sectors_read ms writes merged sectors_written */
        if (sscanf(line, "%u %u %31s %llu %llu %llu %llu %llu %llu %llu", &maj, &min, d[n].name,
                   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]) != 10)
            continue;
        d[n].rd = f[2] * 512, d[n].wr = f[6] * 512;
        n++;
    }
    if (n == 0) return -1;
    *read_b = *written_b = 0;
    for (int i = 0; i < n; i++) {
        int part = virtual_disk(d[i].name);
        for (int j = 0; j < n && !part; j++) part = j != i && partition_of(d[i].name, d[j].name);
        if (part) continue;
        *read_b += d[i].rd, *written_b += d[i].wr;
    }
    return 0;
}

int bn_sys_parse_netdev(const char *text, unsigned long long *rx, unsigned long long *tx)
{
    char line[512];
    int found = 0;
    *rx = *tx = 0;
    for (const char *p = text; next_line(&p, line, sizeof line);) {
        char *colon = strchr(line, ':');
        if (!colon) continue; /* the two header lines */
        *colon = '\0';
        const char *name = line + strspn(line, " ");
        unsigned long long r, t, f[7];
        /* rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes ... */
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &r, &f[0], &f[1],
                   &f[2], &f[3], &f[4], &f[5], &f[6], &t) != 9)
            continue;
        found = 1;
        if (!strcmp(name, "lo")) continue;
        *rx += r, *tx += t;
    }
    return found ? 0 : -1;
}

int bn_sys_parse_pid_stat(const char *text, long page_size, bn_sys_proc *p)
{
    const char *close = strrchr(text, ')'); /* the name may hold spaces and parentheses */
    unsigned long ut, st;
    long rss;
    char state;
    if (!close || sscanf(text, "%d", &p->pid) != 1) return -1;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) cutime cstime priority nice threads itrealvalue starttime(22)
     * vsize rss(24) */
    if (sscanf(close + 1,
               " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u "
               "%*u %ld",
               &state, &ut, &st, &rss) != 4)
        return -1;
    p->state = state;
    p->ticks = (unsigned long long)ut + st;
    p->rss = rss > 0 ? (unsigned long long)rss * (unsigned long long)page_size : 0;
    return 0;
}

int bn_sys_parse_lock_holder(const char *text, unsigned dev_major, unsigned dev_minor,
                             unsigned long long inode)
{
    char line[512];
    for (const char *p = text; next_line(&p, line, sizeof line);) {
        char kind[16];
        int pid;
        unsigned maj, min;
        unsigned long long ino;
        /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (major, minor in hex); a
         * waiting lock has "->" before FLOCK and holds nothing */
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &pid, &maj, &min, &ino) != 5)
            continue;
        if (!strcmp(kind, "FLOCK") && maj == dev_major && min == dev_minor && ino == inode &&
            pid > 0)
            return pid;
    }
    return 0;
}

const char *bn_sys_state_name(char state)
{
    switch (state) {
    case 'R':
        return "running";
    case 'S':
        return "sleeping";
    case 'D':
        return "disk wait";
    case 'Z':
        return "zombie";
    case 'T':
        return "stopped";
    case 't':
        return "traced";
    case 'I':
        return "idle";
    case 'X':
        return "dead";
    default:
        return "unknown";
    }
}

int bn_sys_read_file(const char *path, char *buf, size_t size)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || size == 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t n = 0;
    for (ssize_t r; n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0;) n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    return 0;
}

/* ---- the bitnet processes ------------------------------------------------------------------ */

/* The role of a bitnet command line (its arguments, NUL-separated, n bytes). */
static void proc_role(const char *args, size_t n, bn_sys_proc *p)
{
    const char *a1 = strlen(args) + 1 < n ? args + strlen(args) + 1 : "";
    const char *a2 = *a1 && a1 + strlen(a1) + 1 < args + n ? a1 + strlen(a1) + 1 : "";
    const char *role = !*a1 || !strcmp(a1, "tui")                   ? "tui"
                       : !strcmp(a1, "serve")                       ? "server"
                       : !strcmp(a1, "monitor")                     ? "monitor"
                       : !strcmp(a1, "jobs") && !strcmp(a2, "work") ? "job worker"
                                                                    : a1;
    snprintf(p->role, sizeof p->role, "%.*s", (int)sizeof p->role - 1, role);
    size_t o = (size_t)snprintf(p->cmd, sizeof p->cmd, "bitnet"); /* argv[0] without its path */
    for (size_t i = strlen(args); i < n && o + 1 < sizeof p->cmd; i++)
        p->cmd[o++] = args[i] ? args[i] : ' ';
    while (o > 0 && p->cmd[o - 1] == ' ') o--;
    p->cmd[o] = '\0';
}

/* Whether argv[0] names a program called bitnet. */
static int is_bitnet(const char *argv0)
{
    const char *b = strrchr(argv0, '/');
    return !strcmp(b ? b + 1 : argv0, "bitnet");
}

/* The pid holding the flock of the file at path, or 0. */
static int lock_holder(const char *path, const char *locks)
{
    struct stat st;
    if (!locks || stat(path, &st) != 0) return 0;
    return bn_sys_parse_lock_holder(locks, major(st.st_dev), minor(st.st_dev),
                                    (unsigned long long)st.st_ino);
}

/* The daemons first (monitor, job worker, servers), then the rest; by pid within a role. */
static int role_rank(const char *role)
{
    static const char *const order[] = {"monitor", "job worker", "server", "tui"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(role, order[i])) return i;
    return 4;
}

static int by_role_pid(const void *a, const void *b)
{
    const bn_sys_proc *p = a, *q = b;
    const int ra = role_rank(p->role), rb = role_rank(q->role);
    return ra != rb ? ra - rb : p->pid - q->pid;
}

/* One /proc/PID of a bitnet program into p; 0, or -1 (not bitnet, gone). */
static int read_proc(int pid, long page, bn_sys_proc *p)
{
    char path[64], args[1024], stat_text[1024];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const ssize_t n = read(fd, args, sizeof args - 1);
    close(fd);
    if (n <= 0) return -1;
    args[n] = '\0';
    if (!is_bitnet(args)) return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    memset(p, 0, sizeof *p);
    if (bn_sys_read_file(path, stat_text, sizeof stat_text) != 0 ||
        bn_sys_parse_pid_stat(stat_text, page, p) != 0)
        return -1;
    proc_role(args, (size_t)n, p);
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Remembers pid as not bitnet (unsorted past n0 until skip_done). */
static void skip_add(bn_sys_skip *skip, int pid)
{
    if (skip && skip->n < BN_SYS_SKIP_MAX) skip->pid[skip->n++] = pid;
}

static void skip_done(bn_sys_skip *skip)
{
    if (skip) qsort(skip->pid, (size_t)skip->n, sizeof skip->pid[0], cmp_int);
}

int bn_sys_bitnet_procs(const char *history, bn_sys_proc *out, int max, bn_sys_skip *skip)
{
    static _Thread_local char locks[65536];
    DIR *d = opendir("/proc");
    if (!d) return -1;
    const long page = sysconf(_SC_PAGESIZE);
    int n = 0, mon = 0, worker = 0;
    if (history && bn_sys_read_file("/proc/locks", locks, sizeof locks) == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s.monitor.lock", history);
        mon = lock_holder(path, locks);
        snprintf(path, sizeof path, "%s.worker.lock", history);
        worker = lock_holder(path, locks);
    }
    if (skip && skip->scans++ % 30 == 0) skip->n = 0; /* forget: pids are used again */
    const int n_known = skip ? skip->n : 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        const int pid = (int)strtol(e->d_name, NULL, 10);
        bn_sys_proc p;
        if (pid <= 0 || (skip && bsearch(&pid, skip->pid, (size_t)n_known, sizeof pid, cmp_int)))
            continue;
        if (read_proc(pid, page, &p) != 0) {
            skip_add(skip, pid);
            continue;
        }
        p.holds_lock = (mon && p.pid == mon) || (worker && p.pid == worker);
        if (n < max) out[n] = p;
        n++;
    }
    closedir(d);
    skip_done(skip);
    qsort(out, (size_t)(n < max ? n : max), sizeof *out, by_role_pid);
    return n;
}
