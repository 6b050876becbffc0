/*
 * monitor.h - the TUI's sampler: a thread that once a second reads the machine's CPU use
 * (/proc/stat), this process's CPU and memory (/proc/self), available memory and the
 * GPUs through NVML (hw.h), keeps them as series for the graphs, and wakes the UI.
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
