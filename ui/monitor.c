/* monitor.c - the TUI's once-a-second sampler of CPU, memory and GPUs; see monitor.h. */
#include "monitor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crt.h"
#include "bitnet/core.h"
#include "common/history.h"

struct tui_monitor {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    int paused, kick; /* kick: the period or the pause changed: wake now */
    double period;
    void (*wake)(void *);
    void *ud;
    bn_nvml *nv;
    mon_data d;
    /* previous readings */
    unsigned long long prev_total, prev_idle, prev_proc;
    double prev_t;
    int have_prev;
    bn_sys_cpu prev_cores[BN_SYS_MAX_CPUS];
    unsigned long long prev_io[4]; /* disk read, written, net rx, tx */
    int have_io[2];                /* disks, network */
    double prev_sys_t;
    int prev_pid[MON_MAX_PROCS];
    unsigned long long prev_ticks[MON_MAX_PROCS];
    int n_prev_procs;
    char history[4200]; /* for the lock files of the monitor and the job worker; "" */
    char text[65536];   /* a /proc file being read */
    mon_sys sys;        /* read off the lock, then copied */
    bn_sys_skip skip;   /* the processes that are not bitnet */
};

/* /proc/stat's first line: all ticks and idle ticks (idle + iowait). */
static int read_cpu(unsigned long long *total, unsigned long long *idle)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[8] = {0};
    const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                         &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4) return -1;
    *total = 0;
    for (int i = 0; i < 8; i++) *total += v[i];
    *idle = v[3] + v[4];
    return 0;
}

/* utime + stime (ticks) and the number of threads of this process. */
static int read_proc(unsigned long long *ticks, int *threads)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (!p) return -1;
    unsigned long ut, st;
    long nth;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) cutime cstime priority nice num_threads(20) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld",
               &ut, &st, &nth) != 3)
        return -1;
    *ticks = (unsigned long long)ut + st;
    *threads = (int)nth;
    return 0;
}

static unsigned long long read_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size, res;
    const int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? (unsigned long long)res * (unsigned long long)sysconf(_SC_PAGESIZE) : 0;
}

/* Percent busy of each core from two readings of /proc/stat. */
static void sample_cores(tui_monitor *m, mon_sys *d)
{
    bn_sys_cpu cur[BN_SYS_MAX_CPUS];
    const int n = bn_sys_read_file("/proc/stat", m->text, sizeof m->text) == 0
                          ? bn_sys_parse_cpus(m->text, cur, BN_SYS_MAX_CPUS)
                          : -1;
    d->n_cpus = n > 0 ? n : 0;
    for (int i = 0; i < d->n_cpus; i++) {
        const bn_sys_cpu *p = &m->prev_cores[i];
        const unsigned long long dt = cur[i].total - p->total, di = cur[i].idle - p->idle;
        d->cpu_core[i] = p->total && cur[i].total > p->total && di <= dt
                                 ? 100.0 * (double)(dt - di) / (double)dt
                                 : -1;
        m->prev_cores[i] = cur[i];
    }
}

/* A rate from a counter's previous value; -1 without one (or when it went back). */
static double rate(unsigned long long cur, unsigned long long *prev, int have, double dt)
{
    const double r = have && dt > 0 && cur >= *prev ? (double)(cur - *prev) / dt : -1;
    *prev = cur;
    return r;
}

static void sample_io(tui_monitor *m, mon_sys *d, double now)
{
    const double dt = now - m->prev_sys_t;
    unsigned long long a, b;
    d->have_load = bn_sys_read_file("/proc/loadavg", m->text, sizeof m->text) == 0 &&
                   bn_sys_parse_loadavg(m->text, d->load) == 0;
    d->have_swap = bn_sys_read_file("/proc/meminfo", m->text, sizeof m->text) == 0 &&
                   bn_sys_parse_swap(m->text, &d->swap_total, &d->swap_free) == 0;
    d->disk_read = d->disk_write = d->net_rx = d->net_tx = -1;
    if (bn_sys_read_file("/proc/diskstats", m->text, sizeof m->text) == 0 &&
        bn_sys_parse_diskstats(m->text, &a, &b) == 0) {
        d->disk_read = rate(a, &m->prev_io[0], m->have_io[0], dt);
        d->disk_write = rate(b, &m->prev_io[1], m->have_io[0], dt);
        m->have_io[0] = 1;
    }
    if (bn_sys_read_file("/proc/net/dev", m->text, sizeof m->text) == 0 &&
        bn_sys_parse_netdev(m->text, &a, &b) == 0) {
        d->net_rx = rate(a, &m->prev_io[2], m->have_io[1], dt);
        d->net_tx = rate(b, &m->prev_io[3], m->have_io[1], dt);
        m->have_io[1] = 1;
    }
    m->prev_sys_t = now;
}

/* The bitnet processes, each one's CPU from its ticks at the previous sample. */
static void sample_procs(tui_monitor *m, mon_sys *d, double dt)
{
    const double hz = (double)sysconf(_SC_CLK_TCK);
    const int n = bn_sys_bitnet_procs(m->history[0] ? m->history : NULL, d->procs, MON_MAX_PROCS,
                                      &m->skip);
    d->n_procs = n > 0 ? n : 0;
    const int shown = d->n_procs < MON_MAX_PROCS ? d->n_procs : MON_MAX_PROCS;
    for (int i = 0; i < shown; i++) {
        const bn_sys_proc *p = &d->procs[i];
        d->proc_cpu[i] = -1;
        for (int j = 0; j < m->n_prev_procs; j++)
            if (m->prev_pid[j] == p->pid && p->ticks >= m->prev_ticks[j] && dt > 0 && hz > 0)
                d->proc_cpu[i] = 100.0 * (double)(p->ticks - m->prev_ticks[j]) / hz / dt;
    }
    for (int i = 0; i < shown; i++)
        m->prev_pid[i] = d->procs[i].pid, m->prev_ticks[i] = d->procs[i].ticks;
    m->n_prev_procs = shown;
}

static void sample(tui_monitor *m)
{
    const double now = bn_time_now();
    unsigned long long total = 0, idle = 0, proc = 0;
    int threads = 0;
    const int ok_cpu = read_cpu(&total, &idle) == 0, ok_proc = read_proc(&proc, &threads) == 0;
    const unsigned long long rss = read_rss();
    const double hz = (double)sysconf(_SC_CLK_TCK);
    sample_cores(m, &m->sys);
    sample_procs(m, &m->sys, now - m->prev_sys_t);
    sample_io(m, &m->sys, now);
    pthread_mutex_lock(&m->mu);
    mon_data *d = &m->d;
    bn_hw_refresh(&d->hw, m->nv);
    d->rss = rss;
    d->n_threads = threads;
    d->cpu_sys = d->cpu_proc = -1;
    if (m->have_prev && ok_cpu && total > m->prev_total)
        d->cpu_sys = 100.0 * (double)((total - m->prev_total) - (idle - m->prev_idle)) /
                     (double)(total - m->prev_total);
    if (m->have_prev && ok_proc && now > m->prev_t && hz > 0)
        d->cpu_proc = 100.0 * (double)(proc - m->prev_proc) / hz / (now - m->prev_t);
    m->prev_total = total, m->prev_idle = idle, m->prev_proc = proc, m->prev_t = now;
    m->have_prev = ok_cpu && ok_proc;
    if (d->cpu_sys >= 0) bn_series_push(&d->s_cpu_sys, now, d->cpu_sys);
    if (d->cpu_proc >= 0) bn_series_push(&d->s_cpu_proc, now, d->cpu_proc);
    bn_series_push(&d->s_rss_mib, now, (double)rss / (1024.0 * 1024.0));
    if (d->hw.mem_total)
        bn_series_push(&d->s_mem_used_pct, now,
                       100.0 * (double)(d->hw.mem_total - d->hw.mem_available) /
                               (double)d->hw.mem_total);
    for (int i = 0; i < d->hw.n_gpus; i++) {
        const bn_hw_gpu *g = &d->hw.gpus[i];
        if (g->util_gpu >= 0) bn_series_push(&d->s_gpu_util[i], now, g->util_gpu);
        if (g->mem_total)
            bn_series_push(&d->s_gpu_mem_pct[i], now,
                           100.0 * (double)g->mem_used / (double)g->mem_total);
    }
    d->sys = m->sys;
    d->samples++;
    pthread_mutex_unlock(&m->mu);
}

static void *run(void *arg)
{
    tui_monitor *m = arg;
    char why[128];
    bn_nvml *nv = NULL;
    bn_nvml_open(&nv, why, sizeof why); /* without NVML nv stays NULL: no GPUs */
    bn_hw_info hw;                      /* collected unlocked (NVML may be slow), then copied */
    bn_hw_collect(&hw, nv);
    if (cm_history_path(m->history, sizeof m->history, NULL, why, sizeof why) != 0)
        m->history[0] = '\0';
    pthread_mutex_lock(&m->mu);
    m->nv = nv;
    m->d.hw = hw;
    m->d.ready = 1;
    pthread_mutex_unlock(&m->mu);
    for (;;) {
        pthread_mutex_lock(&m->mu);
        const int paused = m->paused;
        pthread_mutex_unlock(&m->mu);
        if (!paused) sample(m);
        if (m->wake && !paused) m->wake(m->ud);
        pthread_mutex_lock(&m->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const long long ns = ts.tv_nsec + (long long)(m->period * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000), ts.tv_nsec = (long)(ns % 1000000000);
        while (!m->quit && !m->kick && pthread_cond_timedwait(&m->cv, &m->mu, &ts) != ETIMEDOUT) {}
        m->kick = 0;
        const int quit = m->quit;
        pthread_mutex_unlock(&m->mu);
        if (quit) break;
    }
    return NULL;
}

int mon_new(tui_monitor **out, double period_s, void (*wakefn)(void *), void *ud)
{
    tui_monitor *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) return -1;
    m->period = period_s > 0 ? period_s : 1;
    m->wake = wakefn, m->ud = ud;
    m->d.cpu_sys = m->d.cpu_proc = -1;
    m->d.sys.disk_read = m->d.sys.disk_write = m->d.sys.net_rx = m->d.sys.net_tx = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    const int rc = crt_thread_start(&m->th, run, m);
    if (rc) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
        free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void mon_free(tui_monitor *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->quit = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->th, NULL);
    bn_nvml_close(m->nv);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

void mon_set_period(tui_monitor *m, double period_s)
{
    pthread_mutex_lock(&m->mu);
    m->period = period_s > 0.05 ? period_s : 0.05;
    m->kick = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void mon_pause(tui_monitor *m, int paused)
{
    pthread_mutex_lock(&m->mu);
    m->kick |= m->paused != paused;
    m->paused = paused;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

const mon_data *mon_lock(tui_monitor *m)
{
    pthread_mutex_lock(&m->mu);
    return &m->d;
}

void mon_unlock(tui_monitor *m)
{
    pthread_mutex_unlock(&m->mu);
}
