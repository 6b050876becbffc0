/*
 * sysstat.h - system readings from /proc for the meters of `bitnet tui` (and whoever wants
 * them): per-core CPU ticks, load average, swap, disk and network byte counters, and the
 * bitnet processes running on the machine with their state and role.
 *
 * Usage:
 *
 *     char text[65536];
 *     bn_sys_cpu cpu[BN_SYS_MAX_CPUS];
 *     if (bn_sys_read_file("/proc/stat", text, sizeof text) == 0) {
 *         int n = bn_sys_parse_cpus(text, cpu, BN_SYS_MAX_CPUS);   // cores, or -1
 *         ...busy = 1 - d(idle) / d(total) between two readings...
 *     }
 *     bn_sys_proc ps[64];
 *     static bn_sys_skip skip;                  // zeroed: remembers the others
 *     int n = bn_sys_bitnet_procs(history_path, ps, 64, &skip);
 *
 * The parsers take the text of a /proc file and never touch the file system, so the unit
 * tests feed them fixtures; lines that do not parse are skipped. Counters are cumulative:
 * a rate is the difference of two readings over the time between them. No allocation, no
 * global state.
 */
#ifndef BITNET_COMMON_SYSSTAT_H
#define BITNET_COMMON_SYSSTAT_H

#include <stddef.h>

#define BN_SYS_MAX_CPUS 256

typedef struct bn_sys_cpu {
    unsigned long long total, idle; /* ticks: all, and idle + iowait */
} bn_sys_cpu;

/* The "cpuN ..." lines of /proc/stat into cpus[N] for N < max (cores that are offline stay
 * zero). Returns the number of cores (the largest N + 1, at most max), or -1 without any. */
int bn_sys_parse_cpus(const char *text, bn_sys_cpu *cpus, int max);

/* /proc/loadavg: the 1, 5 and 15 minute load averages. 0, or -1. */
int bn_sys_parse_loadavg(const char *text, double load[3]);

/* /proc/meminfo: SwapTotal and SwapFree in bytes. 0, or -1 when either is missing. */
int bn_sys_parse_swap(const char *text, unsigned long long *total, unsigned long long *free_b);

/* /proc/diskstats: bytes read and written by the whole disks (sectors x 512). A device
 * whose name starts with another device's name (sda1 after sda, nvme0n1p1 after nvme0n1)
 * is a partition and is left out, as are loop, ram, zram, dm- and md devices (they count
 * what the disks under them count). 0, or -1 when no line parses. */
int bn_sys_parse_diskstats(const char *text, unsigned long long *read_b,
                           unsigned long long *written_b);

/* /proc/net/dev: bytes received and sent by every interface but lo. 0, or -1. */
int bn_sys_parse_netdev(const char *text, unsigned long long *rx, unsigned long long *tx);

typedef struct bn_sys_proc {
    int pid;
    char state;               /* R S D Z T t I ... as /proc/PID/stat */
    unsigned long long ticks; /* utime + stime */
    unsigned long long rss;   /* bytes resident */
    char role[24];            /* "server", "monitor", "job worker", "tui", else the command */
    int holds_lock;           /* the monitor or the job worker holds its lock file */
    char cmd[160];            /* the command line, spaces between the arguments */
} bn_sys_proc;

/* /proc/PID/stat: state, utime + stime and the resident pages (times page_size into rss).
 * 0, or -1. */
int bn_sys_parse_pid_stat(const char *text, long page_size, bn_sys_proc *p);

/* /proc/locks: the pid of a FLOCK lock on the file (device major:minor, inode), or 0. */
int bn_sys_parse_lock_holder(const char *text, unsigned dev_major, unsigned dev_minor,
                             unsigned long long inode);

/* A process state letter in words ("running", "sleeping", "disk wait", "zombie", ...). */
const char *bn_sys_state_name(char state);

/* Reads a small file (a /proc file) whole into buf, NUL-terminated. 0, or -1. */
int bn_sys_read_file(const char *path, char *buf, size_t size);

/* Pids known not to be bitnet programs, so that a scan a second reads only new processes'
 * command lines: zero it before the first scan; it forgets them every 30 scans (a pid used
 * again by a bitnet program is seen then). */
#define BN_SYS_SKIP_MAX 8192
typedef struct bn_sys_skip {
    int pid[BN_SYS_SKIP_MAX]; /* sorted */
    int n;
    unsigned scans;
} bn_sys_skip;

/* The processes whose argv[0] is a "bitnet" program, up to max, the monitors first, then
 * job workers, servers, UIs and the rest, each by pid (of all found, the first max in /proc's
 * order are kept): their
 * state, role and command line; holds_lock when the process holds the monitor's or the job
 * worker's lock file beside history (the history database's path; NULL: not looked at).
 * skip: NULL, or the pids to pass over (kept up to date here). Returns the number found
 * (also those beyond max), or -1 when /proc cannot be read. */
int bn_sys_bitnet_procs(const char *history, bn_sys_proc *out, int max, bn_sys_skip *skip);

#endif
