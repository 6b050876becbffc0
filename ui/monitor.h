/*
 * monitor.h - the TUI's sampler: a thread that once a second (tui.refresh) reads the
 * machine's CPU use, each core's, the load, swap, disk and network I/O (/proc, sysstat.h),
 * this process's CPU and memory (/proc/self), available memory, the GPUs through NVML
 * (hw.h) and the bitnet processes with their state, keeps them as series for the graphs,
 * and wakes the UI.
 *
 * Usage:
 *
 *     tui_monitor *m;
 *     mon_new(&m, wake, ud);             // collects the hardware report first (off the UI)
 *     const mon_data *d = mon_lock(m);   // read while locked, then
 *     mon_unlock(m);
 *     mon_free(m);
 */
#ifndef BITNET_UI_MONITOR_H
#define BITNET_UI_MONITOR_H

#include "graph.h"
#include "common/hw.h"
#include "common/sysstat.h"

#define MON_MAX_PROCS 32

/* The machine (common/sysstat.h); a rate or percentage is -1 before two samples. */
typedef struct mon_sys {
    int n_cpus;                       /* cores in /proc/stat; 0: unknown */
    double cpu_core[BN_SYS_MAX_CPUS]; /* percent busy, each core */
    int have_load, have_swap;         /* the readings below are known */
    double load[3];                   /* 1, 5, 15 minutes */
    unsigned long long swap_total, swap_free;
    double disk_read, disk_write;     /* bytes/s of the whole disks */
    double net_rx, net_tx;            /* bytes/s of every interface but lo */
    int n_procs;                      /* bitnet processes found (may exceed the table) */
    bn_sys_proc procs[MON_MAX_PROCS]; /* by pid */
    double proc_cpu[MON_MAX_PROCS];   /* percent of one core; -1: first seen */
} mon_sys;

typedef struct mon_data {
    int ready;              /* the hardware report is collected */
    bn_hw_info hw;          /* refreshed every second (memory, GPUs) */
    double cpu_sys;         /* percent of all cores busy, -1 before two samples */
    double cpu_proc;        /* this process, percent of one core, -1 before two samples */
    unsigned long long rss; /* bytes resident */
    int n_threads;          /* this process's threads */
    unsigned long samples;  /* taken so far */
    bn_series s_cpu_sys, s_cpu_proc, s_rss_mib, s_mem_used_pct;
    bn_series s_gpu_util[BN_HW_MAX_GPUS], s_gpu_mem_pct[BN_HW_MAX_GPUS];
    mon_sys sys;
} mon_data;

typedef struct tui_monitor tui_monitor;

/* period_s: seconds between samples (1 normally). 0, or -1 when the thread cannot start. */
int mon_new(tui_monitor **out, double period_s, void (*wake)(void *), void *ud);
void mon_free(tui_monitor *m);
/* Seconds between samples from the next one on (at least 0.05). */
void mon_set_period(tui_monitor *m, double period_s);
/* While paused (1) nothing is sampled and the UI is not woken. */
void mon_pause(tui_monitor *m, int paused);
const mon_data *mon_lock(tui_monitor *m);
void mon_unlock(tui_monitor *m);

#endif
