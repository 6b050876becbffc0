/*
 * monitor.h - the monitoring daemon behind `bitnet monitor` and `bitnet alerts test`: it
 * collects metrics into a registry (metrics.h), serves them to Prometheus, evaluates the alert
 * rules (alerts.h) and delivers samples and notifications to the push sinks through the spool
 * (spool.h), so that a sink that is down or slow loses nothing and blocks nothing.
 *
 *     collector (main thread)          every --interval: process, host, GPUs, history, probe
 *       -> registry  <- HTTP thread (libmicrohttpd): GET /metrics renders it, nothing else
 *       -> alert rules -> transitions (history) and notifications (spool)
 *       -> samples (spool), textfile (written here), pushgateway (spool, latest only)
 *     senders (a thread per sink)      each drains its sink's spool with libcurl, oldest
 *                                      first; on failure keeps the entries and backs off
 *                                      (exponential, jittered, capped); timeouts on every
 *                                      request; a slow sink delays no other
 *
 * Usage (the daemon):
 *
 *     bn_monitor_opts o;
 *     bn_monitor_opts_default(&o);      // then the config and the command line fill it
 *     return bn_monitor_main(&o);       // until SIGINT/SIGTERM, --duration or --once
 *
 * Usage (one collection, as `alerts test` does):
 *
 *     bn_monitor *m;
 *     if (bn_monitor_new(&m, &o, err, sizeof err)) ...;
 *     bn_monitor_collect(m);
 *     ... bn_monitor_registry(m), bn_monitor_alerts(m) ...
 *     bn_monitor_free(m);
 *
 * Files: app/monitor/monitor.c (lifecycle, the collection pass, alerts), monitor_collect.c (the
 * metrics and their sources; the generations' through genmetrics.h), monitor_http.c (the
 * endpoint), monitor_web.c (its TLS and basic auth), monitor_sinks.c (the sender, the
 * backoff), monitor_formats.c (CloudWatch, Datadog, webhook and Pushgateway requests),
 * monitor_aws.c (the CloudWatch credentials, aws_creds.h), monitor_status.c (the daemon's
 * status file, read by `bitnet alerts eval`). The struct below is shared by
 * those files only.
 */
#ifndef BITNET_APP_MONITOR_H
#define BITNET_APP_MONITOR_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alerts.h"
#include "aws_creds.h"
#include "common/config.h"
#include "common/genmetrics.h"
#include "common/metrics.h"
#include "spool.h"

typedef struct bn_monitor_opts {
    const char *listen;      /* "HOST:PORT" (port 0: any free one); NULL: no endpoint */
    const char *textfile;    /* a directory (bitnet.prom in it) or a file name; NULL: off */
    const char *pushgateway; /* base URL; NULL: off */
    const char *webhook;     /* URL for alert notifications; NULL: off */
    int cloudwatch;
    const char *cw_region, *cw_namespace, *cw_endpoint; /* endpoint NULL: the region's */
    int datadog;
    const char *dd_site, *dd_endpoint, *dd_api_key_env; /* endpoint NULL: https://api.SITE */
    double interval_s;                                  /* between collections */
    double duration_s;                                  /* stop after; 0: run until a signal */
    int once;                                           /* one collection, one delivery round */
    int json;                                           /* JSON output (see cmd_monitor.c) */
    const char *probe_model;                            /* NULL: no probe generation */
    double probe_every_s;
    long probe_tokens, threads;
    const char *probe_prompt;
    int64_t spool_max;               /* samples and pushes */
    int64_t spool_max_notifications; /* alert notifications: a bound of their own */
    double backoff_max_s, timeout_s;
    const cJSON *alerts; /* the rules (config "alerts"), may be NULL */
    const char *history; /* the history database */
    int retention_days;
    int quiet; /* no log lines on stderr */
    /* the scrape endpoint (monitor_http.c) */
    const char *web_config;   /* TLS and basic auth (monitor_web.h); NULL: plain, open */
    double http_timeout_s;    /* to send a whole request, take the answer, or send the next */
    long http_max_per_client; /* connections from one address at once */
    /* SIGHUP: fills *o afresh as at the start (the configuration read again, then the command
     * line); 0, or -1 with a one-line message in err. Strings may point into *o or into what
     * the callback keeps until bn_monitor_main returns. NULL: SIGHUP changes nothing. */
    int (*reload)(void *ud, struct bn_monitor_opts *o, char *err, size_t errsz);
    void *reload_ud;
    char history_buf[4096], webhook_buf[1024];
} bn_monitor_opts;

void bn_monitor_opts_default(bn_monitor_opts *o);

struct bn_config;
/* Fills o from the settings (monitor.listen, alerts, exporters.*, threads, the history file;
 * and, until the schema has them, exporters.webhook.url, monitor.interval and
 * monitor.spool_max read from the file or BITNET_*). Strings point into cfg (keep it until
 * the monitor is done) or into o. 0, or -1 with a one-line message in err. */
int bn_monitor_opts_config(bn_monitor_opts *o, const struct bn_config *cfg, char *err,
                           size_t errsz);

typedef struct bn_monitor bn_monitor;

/* Checks the settings as the monitor does when it starts (bn_monitor_new calls it): the alert
 * rules, each on a metric the monitor exports (its registry); the textfile's folder; each
 * enabled sink: its URL, the CloudWatch region and credentials (fetched, as the monitor does),
 * the Datadog key. Reports every problem to fn (warnings too) and returns the number of errors.
 * `bitnet validate` calls it, so that the two never disagree. */
int bn_monitor_check(const bn_monitor_opts *o, bn_config_report_fn fn, void *ud);

/* The alert rules alone, as bn_monitor_check checks them (each on a metric the monitor
 * exports): `config set alerts` calls it. The number of errors. */
int bn_monitor_check_alerts(const cJSON *rules, bn_config_report_fn fn, void *ud);

/* Runs the daemon (or one pass with o->once); returns the exit code. */
int bn_monitor_main(const bn_monitor_opts *o);

/* Sets everything up without threads or the endpoint: registry, spool, rules, sinks. 0, or
 * -1 with a one-line message in err. */
int bn_monitor_new(bn_monitor **out, const bn_monitor_opts *o, char *err, size_t errsz);
void bn_monitor_free(bn_monitor *m);
/* One collection pass: metrics, alert rules, spooling for the sinks, the textfile. */
void bn_monitor_collect(bn_monitor *m);
/* The metrics only (no probe, no rules, nothing spooled or written). */
void bn_monitor_collect_metrics(bn_monitor *m);
bn_metrics *bn_monitor_registry(bn_monitor *m);
bn_alerts *bn_monitor_alerts(bn_monitor *m);
bn_spool *bn_monitor_spool(bn_monitor *m);

/* Evaluates the rules on the registry now (after bn_monitor_collect_metrics), as a pass does:
 * transitions go to the history and to the notification sinks set up. */
void bn_monitor_eval_alerts(bn_monitor *m);
/* The rules and their states: bn_alert_rule_json with since_ms, value, series and
 * evaluated_ms (the time given, seconds since the epoch); NULL when out of memory. */
cJSON *bn_monitor_rules_json(bn_monitor *m, double evaluated);

/* The running daemon's status file: <history>.monitor.json (written after every pass, removed
 * when it stops). 0, or -1 when the name does not fit. */
int bn_monitor_status_path(const char *history, char *buf, size_t size);
/* That file's document ({"pid", "host", "started_ms", "at_ms", "interval_s", "passes",
 * "sinks": [{"name", "spooled", "last_ok_ms"}], "alerts": [...]}) with "running" (its process
 * lives and its last pass is at most three intervals and a minute old) and "age_s" added;
 * NULL when there is none or it does not parse. */
cJSON *bn_monitor_daemon_status(const char *history);

/* Sends a test notification for rule r (its current evaluation) to each of its sinks now,
 * spooling what cannot be delivered. Fills a JSON object {"rule", "holds", "value",
 * "series", "sinks": {"webhook": "delivered" | "spooled: why", ...}}; returns the number of
 * sinks that failed. */
int bn_monitor_test_alert(bn_monitor *m, bn_alert_rule *r, cJSON *report);

/* ==== internal: shared by app/monitor*.c ================================================ */

typedef enum mon_kind {
    MON_SAMPLES = 0,      /* metric samples (CloudWatch, Datadog series) */
    MON_NOTIFICATION = 1, /* alert notifications (webhook, Datadog events) */
    MON_PUSH = 2,         /* the whole exposition, latest only (Pushgateway) */
} mon_kind;

/* One destination: a sink name and what it takes, and its own sender thread, so that a slow
 * or dead sink never delays another. */
typedef struct mon_sink {
    const char *name; /* the spool's sink name: cloudwatch, datadog, datadog-events, ... */
    mon_kind kind;
    char url[1024];
    struct bn_monitor *m;
    void *curl; /* CURL *, kept for connection reuse; the sender's only */
    pthread_t thread;
    int started;
    pthread_cond_t cv; /* with the monitor's mu */
    int wake;
    double deadline; /* a flush: no new request after (monotonic seconds); 0: none */
    int flush_rc;    /* a flush: what the drain returned */
    /* backoff (the sender's) */
    int failures;
    double next_try; /* monotonic seconds */
    int down;        /* logged as down */
    size_t batch;    /* entries per request: BATCH, less while narrowing down a rejection */
    double timeout;  /* per request, seconds: --timeout, raised (up to 4 times) after a timeout */
    char last_error[320];
} mon_sink;

#define MON_MAX_SINKS 6

typedef struct mon_aws {
    char region[64];
    char key_id[128], secret[256], token[2048]; /* what requests are signed with now */
    char ns[256];
    bn_aws_chain chain; /* where they come from (aws_creds.h) */
} mon_aws;

typedef struct mon_families {
    bn_mfamily *build_info;
    bn_mfamily *proc_cpu, *proc_rss, *proc_vsz, *proc_start, *proc_fds, *proc_max_fds;
    bn_mfamily *host_mem_total, *host_mem_avail, *host_load1, *host_load5, *host_load15, *host_cpus;
    bn_mfamily *gpus, *gpu_mem_used, *gpu_mem_total, *gpu_util, *gpu_mem_util, *gpu_temp,
            *gpu_power;
    bn_mfamily *hist_runs, *hist_last_tps, *hist_last_time, *hist_bench_gbps;
    bn_mfamily *jobs;
    bn_mfamily *billing_events, *billing_tokens, *billing_oldest;
    bn_genmetrics gen; /* the generations (genmetrics.h): the probe's */
    bn_mfamily *model_weights, *model_kv, *model_load;
    bn_mfamily *errors, *collect_seconds, *collections, *scrapes;
    bn_mfamily *spool_entries, *spool_dropped, *sink_requests, *sink_dropped, *sink_last_ok;
    bn_mfamily *alerts, *alert_transitions;
} mon_families;

/* A counter's last value, for the deltas the push sinks receive. */
typedef struct mon_prev {
    char *key;
    double v;
} mon_prev;

struct bn_monitor {
    bn_monitor_opts o;
    char host[256];
    bn_metrics *reg;
    mon_families f;
    bn_spool *spool;
    bn_alerts *alerts;
    void *nvml;  /* bn_nvml * */
    void *hw;    /* bn_hw_info * */
    void *probe; /* mc_session *, open while a probe model is loaded */
    double next_probe;
    double start_wall;
    mon_sink sinks[MON_MAX_SINKS];
    int n_sinks;
    mon_aws aws;
    char dd_key[256];
    mon_prev *prev;
    size_t n_prev;
    int have_baseline;
    /* the senders (one thread per sink) */
    int worker_started;
    pthread_mutex_t mu;
    int stop;
    unsigned rng;
    void *http; /* the endpoint (monitor_http.c), NULL when not listening */
    int http_port;
    int lock_fd;
    long passes; /* collection passes made */
    int status;  /* the daemon: write the status file after each pass */
};

/* monitor.c */
void mon_log(bn_monitor *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mon_error(bn_monitor *m, const char *source);
double mon_now(void);  /* monotonic seconds */
double mon_wall(void); /* seconds since the epoch */
mon_sink *mon_sink_find(bn_monitor *m, const char *name);

/* monitor.c: evaluates the rules on snap (transitions to the history and the sinks) */
void mon_eval_alerts(bn_monitor *m, const bn_msnap *snap, double wall);
/* monitor_status.c: the daemon's status file */
void mon_status_write(bn_monitor *m, const bn_msnap *snap, double wall);
void mon_status_remove(bn_monitor *m);

/* monitor_collect.c */
int mon_define_metrics(bn_monitor *m);
void mon_collect_process(bn_monitor *m);
void mon_collect_host(bn_monitor *m);
void mon_collect_gpus(bn_monitor *m);
void mon_collect_history(bn_monitor *m);
void mon_probe(bn_monitor *m);
void mon_probe_close(bn_monitor *m);
void mon_update_sink_metrics(bn_monitor *m);

/* monitor_http.c */
int mon_http_start(bn_monitor *m, char *err, size_t errsz);
void mon_http_stop(bn_monitor *m);
/* "https" when the endpoint serves TLS, else "http". */
const char *mon_http_scheme(const bn_monitor *m);

/* monitor_sinks.c */
int mon_sinks_setup(bn_monitor *m, char *err, size_t errsz);
int mon_sender_start(bn_monitor *m);
void mon_sender_stop(bn_monitor *m);
void mon_sender_wake(bn_monitor *m);
/* Drains every sink at once (a thread each, ignoring backoff; with skip_down, not the sinks
 * that are down), each until its spool is empty, a request fails or deadline passes (no new
 * request after it); 0 when the spool of every sink is empty afterwards. After the senders
 * stopped, or before they start. */
int mon_sinks_flush(bn_monitor *m, double deadline, int skip_down);
/* Sends one payload to sink now, bypassing the spool; 0, or -1 with the error in why. */
int mon_send_one(bn_monitor *m, mon_sink *s, const char *payload, char *why, size_t whysz);
void mon_sinks_release(bn_monitor *m);

/* monitor_formats.c: builds the request for the longest prefix of e[0..n) within the sink's
 * limits; *used says how many entries it covers. 0 with rq->body NULL: those entries have
 * nothing to send (mark them done). -1 with *used 0: the first entry alone cannot be sent
 * (it does not parse or exceeds the limits). The body is malloc'ed. */
typedef struct mon_request {
    char *body;
    size_t len;
    const char *method;       /* "POST" or "PUT" */
    const char *content_type; /* sent explicitly */
    char path[512];           /* appended to the sink's URL */
    char idempotency_key[64]; /* sent as Idempotency-Key when not empty (the webhook) */
} mon_request;
int mon_format(bn_monitor *m, const mon_sink *s, const bn_spool_entry *e, size_t n, mon_request *rq,
               size_t *used);
void mon_request_release(mon_request *rq);
/* The samples of one collection as the spool keeps them: {"t": ms, "interval": s,
 * "samples": [{"n", "k": "g"|"c", "v", "l": {...}}]}; counters as deltas since the last
 * collection. NULL when out of memory. */
char *mon_samples_payload(bn_monitor *m, const bn_msnap *snap, double wall);
/* monitor_aws.c: the region, the namespace and the credentials (the AWS chain, fetched now).
 * 0, or -1 with why. */
int mon_aws_load(mon_aws *a, const char *region, const char *ns, char *why, size_t whysz);
/* Fetches the credentials again when they are due (before a CloudWatch request; the sender of
 * that sink only). 0, or -1 with why. */
int mon_aws_refresh(mon_aws *a, char *why, size_t whysz);

#define MON_CW_MAX_DATUMS 1000    /* per PutMetricData request */
#define MON_CW_MAX_BYTES  1000000 /* 1 MB per request */
#define MON_DD_MAX_BYTES  500000  /* v2 series: 500 KB (512000 bytes) uncompressed */
#define MON_DD_TITLE_MAX  100     /* v1 events */
#define MON_DD_TEXT_MAX   4000

#endif
