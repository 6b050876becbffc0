/* monitor_collect.c - what `bitnet monitor` exports and where each number comes from: the
 * process (/proc/self), the host (/proc/meminfo, /proc/loadavg), the GPUs (NVML through
 * hw.h), the history's runs, the probe generation, and the monitor itself. Only real figures:
 * a source that cannot be read leaves its metric out (and counts an error). */
#include "monitor.h"

#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/kernels.h"
#include "common/hw.h"
#include "common/model_common.h"

/* ---- the families ------------------------------------------------------------------------ */

static const char *const L_NONE[] = {NULL};
static const char *const L_BUILD[] = {"version", "kernels", NULL};
static const char *const L_GPU[] = {"gpu", "name", "uuid", NULL};
static const char *const L_RUNS[] = {"command", "status", NULL};
static const char *const L_STATUS[] = {"status", NULL};
static const char *const L_LAST_TPS[] = {"command", "metric", NULL};
static const char *const L_COMMAND[] = {"command", NULL};
static const char *const L_MODEL[] = {"model", NULL};
static const char *const L_SOURCE[] = {"source", NULL};
static const char *const L_SINK[] = {"sink", NULL};
static const char *const L_SINK_RESULT[] = {"sink", "result", NULL};
static const char *const L_SINK_REASON[] = {"sink", "reason", NULL};
static const char *const L_ALERT[] = {"rule", "severity", "state", NULL};
static const char *const L_ALERT_TO[] = {"rule", "to", NULL};

#define LATENCY_BUCKETS bn_gen_latency_buckets
#define N_LATENCY       bn_gen_n_latency_buckets

typedef struct family_def {
    size_t offset; /* of the bn_mfamily * in mon_families */
    bn_metric_type type;
    const char *name, *help;
    const char *const *labels;
    int histogram;
} family_def;

#define F(field) offsetof(mon_families, field)
#define C        BN_METRIC_COUNTER
#define G        BN_METRIC_GAUGE
#define H        BN_METRIC_HISTOGRAM

static const family_def defs[] = {
        {F(build_info), G, "bitnet_build_info", "Version and kernel variant of this bitnet (1).",
         L_BUILD, 0},
        {F(proc_cpu), C, "process_cpu_seconds_total", "User and system CPU time of the monitor.",
         L_NONE, 0},
        {F(proc_rss), G, "process_resident_memory_bytes", "Resident memory of the monitor.", L_NONE,
         0},
        {F(proc_vsz), G, "process_virtual_memory_bytes", "Virtual memory of the monitor.", L_NONE,
         0},
        {F(proc_start), G, "process_start_time_seconds",
         "Start time of the monitor, seconds since the epoch.", L_NONE, 0},
        {F(proc_fds), G, "process_open_fds", "Open file descriptors of the monitor.", L_NONE, 0},
        {F(proc_max_fds), G, "process_max_fds", "Limit of open file descriptors.", L_NONE, 0},
        {F(host_mem_total), G, "bitnet_host_memory_total_bytes", "Memory of the host (MemTotal).",
         L_NONE, 0},
        {F(host_mem_avail), G, "bitnet_host_memory_available_bytes",
         "Memory available for new work (MemAvailable).", L_NONE, 0},
        {F(host_load1), G, "bitnet_host_load1", "Load average over 1 minute.", L_NONE, 0},
        {F(host_load5), G, "bitnet_host_load5", "Load average over 5 minutes.", L_NONE, 0},
        {F(host_load15), G, "bitnet_host_load15", "Load average over 15 minutes.", L_NONE, 0},
        {F(host_cpus), G, "bitnet_host_cpus", "Logical CPUs online.", L_NONE, 0},
        {F(gpus), G, "bitnet_gpus", "NVIDIA GPUs seen through NVML (0 without NVML).", L_NONE, 0},
        {F(gpu_mem_used), G, "bitnet_gpu_memory_used_bytes", "GPU memory in use.", L_GPU, 0},
        {F(gpu_mem_total), G, "bitnet_gpu_memory_total_bytes", "GPU memory in all.", L_GPU, 0},
        {F(gpu_util), G, "bitnet_gpu_utilization_ratio",
         "Share of the last sample period the GPU was busy (0 to 1).", L_GPU, 0},
        {F(gpu_mem_util), G, "bitnet_gpu_memory_utilization_ratio",
         "Share of the last sample period GPU memory was read or written (0 to 1).", L_GPU, 0},
        {F(gpu_temp), G, "bitnet_gpu_temperature_celsius", "GPU core temperature.", L_GPU, 0},
        {F(gpu_power), G, "bitnet_gpu_power_watts", "GPU board power draw.", L_GPU, 0},
        {F(hist_runs), G, "bitnet_history_retained_runs",
         "Runs the history holds now (within its retention) by command and status; it drops "
         "when old runs are pruned, so it is a gauge: the monitor's own generations are "
         "counted in bitnet_generation_requests_total.",
         L_RUNS, 0},
        {F(hist_last_tps), G, "bitnet_history_last_run_tokens_per_second",
         "Newest tokens per second of each command and metric among the recent successful runs "
         "(from the history).",
         L_LAST_TPS, 0},
        {F(hist_last_time), G, "bitnet_history_last_run_timestamp_seconds",
         "End of the newest successful run of each command, seconds since the epoch.", L_COMMAND,
         0},
        {F(hist_bench_gbps), G, "bitnet_history_last_bench_gemv_weight_bytes_per_second",
         "Best GEMV weight bandwidth of the newest kernel benchmark.", L_NONE, 0},
        {F(jobs), G, "bitnet_conversion_jobs",
         "Conversion jobs in the queue (bitnet jobs) by status: queued, running, done, failed, "
         "cancelled.",
         L_STATUS, 0},
        {F(billing_events), G, "bitnet_billing_events",
         "Meter events in the billing outbox (bitnet billing) by status: pending, acked, "
         "failed.",
         L_STATUS, 0},
        {F(billing_tokens), G, "bitnet_billing_tokens",
         "Tokens of the meter events in the billing outbox by status: pending, acked, failed.",
         L_STATUS, 0},
        {F(billing_oldest), G, "bitnet_billing_oldest_pending_age_seconds",
         "Age of the oldest meter event not yet acknowledged by Stripe (0: none).", L_NONE, 0},
        {F(model_weights), G, "bitnet_model_weight_bytes", "Memory of the loaded model's weights.",
         L_MODEL, 0},
        {F(model_kv), G, "bitnet_model_kv_cache_bytes", "Memory of the loaded model's KV cache.",
         L_MODEL, 0},
        {F(model_load), G, "bitnet_model_load_seconds", "Time the probe model took to load.",
         L_MODEL, 0},
        {F(errors), C, "bitnet_monitor_errors_total",
         "Errors of the monitor by source (history, probe, gpu, textfile, spool, sink).", L_SOURCE,
         0},
        {F(collect_seconds), G, "bitnet_monitor_collect_duration_seconds",
         "Time the last collection pass took.", L_NONE, 0},
        {F(collections), C, "bitnet_monitor_collections_total", "Collection passes made.", L_NONE,
         0},
        {F(scrapes), C, "bitnet_monitor_scrapes_total", "Requests for /metrics served.", L_NONE, 0},
        {F(spool_entries), G, "bitnet_monitor_spool_entries",
         "Samples and notifications waiting in the spool, by sink.", L_SINK, 0},
        {F(spool_dropped), C, "bitnet_monitor_spool_dropped_total",
         "Spooled entries dropped, oldest first, to keep the spool within its bound.", L_SINK, 0},
        {F(sink_requests), C, "bitnet_monitor_sink_requests_total",
         "Requests to the push sinks by result (ok, error, rejected).", L_SINK_RESULT, 0},
        {F(sink_dropped), C, "bitnet_monitor_sink_dropped_total",
         "Spooled entries a sink will never take, dropped by reason (rejected: the sink refused "
         "them for good; too_old: older than the sink accepts; unsendable: beyond its limits).",
         L_SINK_REASON, 0},
        {F(sink_last_ok), G, "bitnet_monitor_sink_last_success_timestamp_seconds",
         "Last successful delivery to each sink, seconds since the epoch.", L_SINK, 0},
        {F(alerts), G, "bitnet_alerts",
         "Alert rules pending or firing (1), like Prometheus' ALERTS.", L_ALERT, 0},
        {F(alert_transitions), C, "bitnet_alert_transitions_total",
         "Transitions of the alert rules, by the state moved to.", L_ALERT_TO, 0},
};

int mon_define_metrics(bn_monitor *m)
{
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        const family_def *d = &defs[i];
        bn_mfamily *f = bn_metrics_define(m->reg, d->type, d->name, d->help, d->labels,
                                          d->histogram ? LATENCY_BUCKETS : NULL,
                                          d->histogram ? N_LATENCY : 0);
        if (!f) return -1;
        *(bn_mfamily **)((char *)&m->f + d->offset) = f;
    }
    if (bn_genmetrics_define(&m->f.gen, m->reg)) return -1;
    const char *lv[] = {BN_VERSION_STRING, bn_kernels_get()->name};
    return bn_metric_set(m->f.build_info, lv, 1);
}

/* ---- the process ------------------------------------------------------------------------- */

static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    double bt = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) bt = strtod(line + 6, NULL);
    if (f) fclose(f);
    return bt;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void mon_collect_process(bn_monitor *m)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime, start, vsize;
    long long rss;
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss */
    if (!p ||
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) != 5) {
        mon_error(m, "process");
        return;
    }
    const double tck = (double)sysconf(_SC_CLK_TCK);
    bn_metric_set(m->f.proc_cpu, NULL, (double)(utime + stime) / tck);
    bn_metric_set(m->f.proc_rss, NULL, (double)rss * (double)sysconf(_SC_PAGESIZE));
    bn_metric_set(m->f.proc_vsz, NULL, (double)vsize);
    const double bt = boot_time();
    if (bt > 0) bn_metric_set(m->f.proc_start, NULL, bt + (double)start / tck);
    const int fds = count_fds();
    if (fds >= 0) bn_metric_set(m->f.proc_fds, NULL, fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        bn_metric_set(m->f.proc_max_fds, NULL, (double)rl.rlim_cur);
}

/* ---- the host ---------------------------------------------------------------------------- */

void mon_collect_host(bn_monitor *m)
{
    unsigned long long total, avail;
    if (bn_hw_meminfo(&total, &avail) == 0) {
        bn_metric_set(m->f.host_mem_total, NULL, (double)total);
        bn_metric_set(m->f.host_mem_avail, NULL, (double)avail);
    }
    double l1, l5, l15;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3) {
        bn_metric_set(m->f.host_load1, NULL, l1);
        bn_metric_set(m->f.host_load5, NULL, l5);
        bn_metric_set(m->f.host_load15, NULL, l15);
    }
    if (f) fclose(f);
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0) bn_metric_set(m->f.host_cpus, NULL, (double)cpus);
}

/* ---- GPUs --------------------------------------------------------------------------------- */

static void set_if(bn_mfamily *f, const char *const *lv, double v, int ok)
{
    if (ok) bn_metric_set(f, lv, v);
}

void mon_collect_gpus(bn_monitor *m)
{
    bn_hw_info *hw = m->hw;
    bn_mfamily *fam[] = {m->f.gpu_mem_used, m->f.gpu_mem_total, m->f.gpu_util,
                         m->f.gpu_mem_util, m->f.gpu_temp,      m->f.gpu_power};
    bn_metrics_lock(m->reg);
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) bn_mfamily_clear(fam[i]);
    if (!m->nvml || !hw) {
        bn_metric_set(m->f.gpus, NULL, 0);
        bn_metrics_unlock(m->reg);
        return;
    }
    bn_hw_refresh(hw, m->nvml);
    bn_metric_set(m->f.gpus, NULL, hw->n_gpus);
    for (int i = 0; i < hw->n_gpus; i++) {
        const bn_hw_gpu *g = &hw->gpus[i];
        char idx[16];
        snprintf(idx, sizeof idx, "%d", g->index);
        const char *lv[] = {idx, g->name, g->uuid};
        set_if(m->f.gpu_mem_used, lv, (double)g->mem_used, g->mem_total > 0);
        set_if(m->f.gpu_mem_total, lv, (double)g->mem_total, g->mem_total > 0);
        set_if(m->f.gpu_util, lv, g->util_gpu / 100.0, g->util_gpu >= 0);
        set_if(m->f.gpu_mem_util, lv, g->util_mem / 100.0, g->util_mem >= 0);
        set_if(m->f.gpu_temp, lv, g->temp_c, g->temp_c >= 0);
        set_if(m->f.gpu_power, lv, g->power_w, g->power_w >= 0);
    }
    bn_metrics_unlock(m->reg);
}

/* ---- the history -------------------------------------------------------------------------- */

static void on_count(void *ud, const char *command, const char *status, int64_t n)
{
    bn_monitor *m = ud;
    const char *lv[] = {command, status};
    bn_metric_set(m->f.hist_runs, lv, (double)n);
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Every metric of a run named *tokens_per_s becomes a series; the bench's best GEMV
 * bandwidth too. Called oldest first: the newest value stays. */
static void on_run_metric(void *ud, const char *command, const char *key, double value)
{
    bn_monitor *m = ud;
    if (!isfinite(value)) return;
    if (ends_with(key, "tokens_per_s")) {
        const char *lv[] = {command, key};
        bn_metric_set(m->f.hist_last_tps, lv, value);
    } else if (!strcmp(command, "bench") && !strcmp(key, "best_gemv_weight_gbps")) {
        bn_metric_set(m->f.hist_bench_gbps, NULL, value * 1e9);
    }
}

static void on_last_run(void *ud, const char *command, const char *metrics, int64_t ended_ms)
{
    bn_monitor *m = ud;
    (void)metrics;
    const char *lv[] = {command};
    if (ended_ms > 0) bn_metric_set(m->f.hist_last_time, lv, (double)ended_ms / 1000);
}

static void on_job_count(void *ud, const char *status, int64_t n)
{
    bn_monitor *m = ud;
    const char *lv[] = {status};
    bn_metric_set(m->f.jobs, lv, (double)n);
}

/* The billing outbox: what waits for Stripe, and since when (an alert rule on the age sees a
 * billing outage). */
static void collect_billing(bn_monitor *m)
{
    bn_outbox_counts c;
    const double now = mon_wall();
    if (bn_spool_outbox_counts(m->spool, (int64_t)(now * 1000), &c)) {
        mon_error(m, "history");
        return;
    }
    const struct {
        const char *status;
        int64_t events, tokens;
    } st[] = {{"pending", c.pending, c.pending_value},
              {"acked", c.acked, c.acked_value},
              {"failed", c.failed, c.failed_value}};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        const char *lv[] = {st[i].status};
        bn_metric_set(m->f.billing_events, lv, (double)st[i].events);
        bn_metric_set(m->f.billing_tokens, lv, (double)st[i].tokens);
    }
    const double age = c.oldest_pending_ms ? now - (double)c.oldest_pending_ms / 1000 : 0;
    bn_metric_set(m->f.billing_oldest, NULL, age > 0 ? age : 0);
}

void mon_collect_history(bn_monitor *m)
{
    bn_metrics_lock(m->reg);
    bn_mfamily_clear(m->f.hist_runs);
    bn_mfamily_clear(m->f.hist_last_tps);
    bn_mfamily_clear(m->f.hist_last_time);
    bn_mfamily_clear(m->f.hist_bench_gbps);
    if (bn_spool_run_counts(m->spool, on_count, m) ||
        bn_spool_last_runs(m->spool, on_last_run, m) ||
        bn_spool_run_metrics(m->spool, on_run_metric, m))
        mon_error(m, "history");
    /* every status is present (0 when no job has it), so a dashboard sees zeros, not gaps */
    static const char *const job_states[] = {"queued", "running", "done", "failed", "cancelled"};
    bn_mfamily_clear(m->f.jobs);
    for (size_t i = 0; i < sizeof job_states / sizeof job_states[0]; i++)
        on_job_count(m, job_states[i], 0);
    if (bn_spool_job_counts(m->spool, on_job_count, m)) mon_error(m, "history");
    collect_billing(m);
    bn_metrics_unlock(m->reg);
}

/* ---- the probe generation ------------------------------------------------------------------- */

/* The probe's context: enough for the prompt and the tokens, capped at what the model allows
 * (the bundled model has 256). */
#define PROBE_CTX 512

static void probe_model_label(const bn_monitor *m, char *buf, size_t size)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", m->o.probe_model);
    snprintf(buf, size, "%s", basename(tmp));
}

static int probe_open(bn_monitor *m, const char *model)
{
    mc_session *s = calloc(1, sizeof *s);
    if (!s) return -1;
    mc_opts o = {.model = m->o.probe_model, .threads = m->o.threads}; /* n_ctx 0: capped */
    if (mc_open(&o, PROBE_CTX, s) != 0) {
        free(s);
        return -1;
    }
    bn_sampler_params greedy = bn_sampler_params_default();
    greedy.temperature = 0, greedy.top_k = 0, greedy.top_p = 1, greedy.min_p = 0;
    cm_session_set_sampler(s->sess, &greedy); /* valid settings: cannot fail */
    m->probe = s;
    const char *lv[] = {model};
    bn_metric_set(m->f.model_weights, lv, (double)bn_model_weight_bytes(s->model));
    bn_metric_set(m->f.model_kv, lv, (double)bn_model_state_kv_bytes(s->st));
    bn_metric_set(m->f.model_load, lv, s->load_seconds);
    return 0;
}

static void probe_prompt(void *ud, const cm_result *res)
{
    bn_gen_run_prompt(ud, res->n_prompt, res->prompt_s);
}

static int probe_token(void *ud, int32_t id, const char *piece, size_t len, const cm_result *res)
{
    (void)id, (void)piece, (void)len, (void)res;
    bn_gen_run_token(ud, bn_time_now());
    return CM_GO;
}

/* One greedy generation of up to probe_tokens tokens after the prompt (a fresh sequence),
 * timed into r; how it ended in *finish (an end token counts as a token). 0, or -1 on an
 * error. */
static int probe_run(bn_monitor *m, mc_session *s, bn_gen_run *r, bn_gen_finish *finish)
{
    size_t n = 0;
    const unsigned fl = BN_TOKENIZE_ADD_SPECIAL | BN_TOKENIZE_PARSE_SPECIAL;
    const char *prompt = m->o.probe_prompt;
    bn_gen_run_start(r, bn_time_now());
    cm_session_reset(s->sess);
    if (cm_session_tokenize(s->sess, prompt, strlen(prompt), fl, &n) != BN_OK || n == 0 ||
        (int64_t)n >= cm_session_n_ctx(s->sess))
        return -1;
    cm_gen g = {.n_predict = m->o.probe_tokens, .ud = r};
    g.on_prompt = probe_prompt, g.on_token = probe_token;
    cm_result res;
    if (cm_session_generate(s->sess, &g, &res) != BN_OK) return -1;
    *finish = BN_GEN_LENGTH; /* the token limit or the context's */
    if (res.stop == CM_STOP_EOG) {
        bn_gen_run_token(r, bn_time_now());
        *finish = BN_GEN_STOP;
    }
    return 0;
}

void mon_probe(bn_monitor *m)
{
    if (!m->o.probe_model || mon_now() < m->next_probe) return;
    m->next_probe = mon_now() + m->o.probe_every_s;
    char model[256];
    probe_model_label(m, model, sizeof model);
    bn_gen_run r;
    bn_gen_finish finish = BN_GEN_ERROR;
    bn_gen_run_start(&r, bn_time_now());
    if ((!m->probe && probe_open(m, model)) || probe_run(m, m->probe, &r, &finish)) {
        finish = BN_GEN_ERROR;
        mon_error(m, "probe");
    }
    bn_genmetrics_record(&m->f.gen, model, &r, finish, bn_time_now());
}

void mon_probe_close(bn_monitor *m)
{
    if (!m->probe) return;
    mc_close(m->probe);
    free(m->probe);
    m->probe = NULL;
}

/* ---- the monitor's own -------------------------------------------------------------------- */

void mon_update_sink_metrics(bn_monitor *m)
{
    for (int i = 0; i < m->n_sinks; i++) {
        const char *lv[] = {m->sinks[i].name};
        const int64_t n = bn_spool_count(m->spool, m->sinks[i].name);
        if (n >= 0) bn_metric_set(m->f.spool_entries, lv, (double)n);
        bn_metric_set(m->f.spool_dropped, lv, (double)bn_spool_dropped(m->spool, lv[0]));
    }
}
