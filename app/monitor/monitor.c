/* monitor.c - the monitor's lifecycle: setting up, the collection pass (metrics, alert rules,
 * spooling, the textfile), the daemon's loop and signals, one-shot runs, test notifications.
 * See monitor.h for the picture. */
#include "monitor.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/history.h"
#include "common/hw.h"
#include "monitor_web.h"

void bn_monitor_opts_default(bn_monitor_opts *o)
{
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:9464";
    o->interval_s = 10;
    o->probe_every_s = 60;
    o->probe_tokens = 16;
    o->probe_prompt = "The capital of France is";
    o->spool_max = BN_SPOOL_MAX_DEFAULT;
    o->spool_max_notifications = BN_SPOOL_NOTIFY_MAX_DEFAULT;
    o->backoff_max_s = 60;
    o->timeout_s = 10;
    o->http_timeout_s = 10;
    o->http_max_per_client = 16;
    o->cw_namespace = "BitNet";
    o->dd_site = "datadoghq.com";
    o->dd_api_key_env = "DD_API_KEY";
    o->retention_days = 90;
}

/* ---- settings ----------------------------------------------------------------------------------
 */

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

int bn_monitor_opts_config(bn_monitor_opts *o, const bn_config *cfg, char *err, size_t errsz)
{
    o->listen = nonempty(bn_config_get_str(cfg, "monitor.listen"));
    o->alerts = bn_config_get_json(cfg, "alerts");
    o->textfile = nonempty(bn_config_get_str(cfg, "exporters.prometheus.textfile"));
    o->pushgateway = nonempty(bn_config_get_str(cfg, "exporters.prometheus.pushgateway"));
    o->cloudwatch = bn_config_get_bool(cfg, "exporters.cloudwatch.enabled");
    o->cw_region = nonempty(bn_config_get_str(cfg, "exporters.cloudwatch.region"));
    o->cw_namespace = bn_config_get_str(cfg, "exporters.cloudwatch.namespace");
    o->cw_endpoint = nonempty(bn_config_get_str(cfg, "exporters.cloudwatch.endpoint"));
    o->datadog = bn_config_get_bool(cfg, "exporters.datadog.enabled");
    o->dd_site = bn_config_get_str(cfg, "exporters.datadog.site");
    o->dd_api_key_env = bn_config_get_str(cfg, "exporters.datadog.api_key_env");
    o->threads = (long)bn_config_get_int(cfg, "threads");
    const char *v = bn_config_get_str(cfg, "exporters.webhook.url");
    if (v && *v) {
        snprintf(o->webhook_buf, sizeof o->webhook_buf, "%s", v);
        o->webhook = o->webhook_buf;
    }
    /* the schema has checked both (monitor.interval >= 100 ms, spool_max 1..1e8) */
    if (bn_config_source_of(cfg, "monitor.interval") != BN_CFG_SRC_DEFAULT)
        o->interval_s = bn_config_get_duration(cfg, "monitor.interval");
    o->web_config = nonempty(bn_config_get_str(cfg, "monitor.web_config"));
    o->http_timeout_s = bn_config_get_duration(cfg, "monitor.http_timeout");
    o->http_max_per_client = (long)bn_config_get_int(cfg, "monitor.http_max_per_client");
    if (bn_config_source_of(cfg, "monitor.spool_max") != BN_CFG_SRC_DEFAULT)
        o->spool_max = bn_config_get_int(cfg, "monitor.spool_max");
    if (bn_config_source_of(cfg, "monitor.spool_max_notifications") != BN_CFG_SRC_DEFAULT)
        o->spool_max_notifications = bn_config_get_int(cfg, "monitor.spool_max_notifications");
    if (cm_history_path(o->history_buf, sizeof o->history_buf, &o->retention_days, err, errsz))
        return -1;
    o->history = o->history_buf;
    return 0;
}

/* ---- small helpers --------------------------------------------------------------------------- */

double mon_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double mon_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mon_log(bn_monitor *m, const char *fmt, ...)
{
    if (m->o.quiet) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "bitnet monitor: %s\n", msg);
}

void mon_error(bn_monitor *m, const char *source)
{
    const char *lv[] = {source};
    bn_metric_add(m->f.errors, lv, 1);
}

mon_sink *mon_sink_find(bn_monitor *m, const char *name)
{
    for (int i = 0; i < m->n_sinks; i++)
        if (!strcmp(m->sinks[i].name, name)) return &m->sinks[i];
    return NULL;
}

bn_metrics *bn_monitor_registry(bn_monitor *m)
{
    return m->reg;
}

bn_alerts *bn_monitor_alerts(bn_monitor *m)
{
    return m->alerts;
}

bn_spool *bn_monitor_spool(bn_monitor *m)
{
    return m->spool;
}

/* ---- setup ------------------------------------------------------------------------------------
 */

static void on_drop(void *ud, const char *sink, const char *kind, int64_t n)
{
    if (!strcmp(kind, "notification"))
        mon_log(ud,
                "spool full: dropped %lld notification%s of %s (a test, or a firing one with "
                "its resolved one)",
                (long long)n, n == 1 ? "" : "s", sink);
    else
        mon_log(ud, "spool full: dropped the %lld oldest %s entries of %s", (long long)n, kind,
                sink);
}

/* Puts each rule back in the pending or firing state the history last recorded for it. */
static void restore_alerts(bn_monitor *m)
{
    for (size_t i = 0; i < bn_alerts_count(m->alerts); i++) {
        bn_alert_rule *r = bn_alerts_rule(m->alerts, i);
        char st[16];
        int64_t at;
        bn_alert_state s;
        if (bn_spool_last_state(m->spool, r->name, st, sizeof st, &at) == 0 &&
            bn_alert_state_parse(st, &s) == 0)
            bn_alert_restore(r, s, (double)at / 1000);
    }
}

static void open_nvml(bn_monitor *m)
{
    bn_nvml *nv = NULL;
    char why[128];
    if (bn_nvml_open(&nv, why, sizeof why) != 0) return; /* no NVIDIA GPU: fine */
    bn_hw_info *hw = calloc(1, sizeof *hw);
    if (!hw) {
        bn_nvml_close(nv);
        return;
    }
    bn_hw_collect(hw, nv);
    m->nvml = nv;
    m->hw = hw;
}

/* ---- the settings check: what the monitor refuses to start with ------------------------------
 */

static const char *const datadog_sites[] = {
        "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com",
        "datadoghq.eu",  "ap1.datadoghq.com", "ddog-gov.com",
};

/* Whether the monitor exports samples under this name: a family of its registry, or the _sum
 * or _count of a histogram (rules never see buckets). */
static int exported(bn_monitor *m, const char *name)
{
    if (bn_metrics_find(m->reg, name)) return 1;
    static const char *const suffix[] = {"_sum", "_count"};
    char fam[128];
    const size_t n = strlen(name);
    for (int i = 0; i < 2; i++) {
        const size_t k = strlen(suffix[i]);
        if (n <= k || n - k >= sizeof fam || strcmp(name + n - k, suffix[i])) continue;
        memcpy(fam, name, n - k);
        fam[n - k] = '\0';
        const bn_mfamily *f = bn_metrics_find(m->reg, fam);
        if (f && bn_mfamily_type(f) == BN_METRIC_HISTOGRAM) return 1;
    }
    return 0;
}

/* The rules, and each one's metric among those the registry defines (mon_define_metrics: the
 * code that exports them, so no second list to keep in step). */
static int check_alerts(bn_monitor *m, bn_config_report_fn fn, void *ud)
{
    char err[512], key[64], msg[320];
    if (bn_alerts_parse(m->o.alerts, &m->alerts, err, sizeof err)) {
        fn(ud, 1, "", err);
        return 1;
    }
    int errors = 0;
    for (size_t i = 0; i < bn_alerts_count(m->alerts); i++) {
        const bn_alert_rule *r = bn_alerts_rule(m->alerts, i);
        if (exported(m, r->sel.name)) continue;
        snprintf(key, sizeof key, "alerts[%zu].metric", i);
        snprintf(msg, sizeof msg,
                 "'%.128s' is not a metric bitnet monitor exports (`bitnet monitor --once` "
                 "lists them)",
                 r->sel.name);
        fn(ud, 1, key, msg);
        errors++;
    }
    return errors;
}

/* The textfile: a writable folder, or a file in one; node_exporter's folder is not ours to
 * create. */
static int check_textfile(const char *t, bn_config_report_fn fn, void *ud)
{
    const char *key = "exporters.prometheus.textfile";
    char dir[4096], msg[4400];
    struct stat sb;
    if (!t) return 0;
    if (stat(t, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", t);
    } else {
        snprintf(dir, sizeof dir, "%s", t);
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else
            *(slash == dir ? slash + 1 : slash) = '\0';
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        snprintf(msg, sizeof msg, "the folder %s does not exist", dir);
    else if (access(dir, W_OK | X_OK) != 0)
        snprintf(msg, sizeof msg, "the folder %s is not writable", dir);
    else
        return 0;
    fn(ud, 1, key, msg);
    return 1;
}

static int check_sinks(bn_monitor *m, bn_config_report_fn fn, void *ud)
{
    const bn_monitor_opts *o = &m->o;
    char why[512];
    int errors = 0;
    if (o->cloudwatch && mon_aws_load(&m->aws, o->cw_region, o->cw_namespace, why, sizeof why)) {
        fn(ud, 1, "exporters.cloudwatch", why);
        errors++;
    }
    if (o->datadog) {
        const char *env = nonempty(o->dd_api_key_env) ? o->dd_api_key_env : "DD_API_KEY";
        const char *k = getenv(env);
        if (!k || !*k || strlen(k) >= sizeof m->dd_key || strpbrk(k, "\r\n")) {
            snprintf(why, sizeof why, "Datadog needs an API key in $%s", env);
            fn(ud, 1, "exporters.datadog.api_key_env", why);
            errors++;
        } else {
            snprintf(m->dd_key, sizeof m->dd_key, "%s", k);
        }
        size_t i = 0, n = sizeof datadog_sites / sizeof datadog_sites[0];
        while (o->dd_site && i < n && strcmp(o->dd_site, datadog_sites[i])) i++;
        if (o->dd_site && i == n) {
            snprintf(why, sizeof why,
                     "'%.64s' is not a known Datadog site (datadoghq.com, datadoghq.eu, ...)",
                     o->dd_site);
            fn(ud, 0, "exporters.datadog.site", why);
        }
    }
    if (!errors && mon_sinks_setup(m, why, sizeof why)) {
        fn(ud, 1, "exporters", why);
        errors++;
    }
    return errors;
}

/* Every check, filling m (rules, credentials, sinks) as it goes; the number of errors. */
/* The endpoint's web config (TLS, basic auth), read and checked as the endpoint reads it. */
static int check_web_config(const bn_monitor_opts *o, bn_config_report_fn fn, void *ud)
{
    mon_web w;
    char err[1024];
    if (!o->listen || !o->web_config) return 0;
    if (mon_web_load(&w, o->web_config, err, sizeof err) == 0) {
        mon_web_release(&w);
        return 0;
    }
    fn(ud, 1, "monitor.web_config", err);
    return 1;
}

static int check_setup(bn_monitor *m, bn_config_report_fn fn, void *ud)
{
    int errors = check_alerts(m, fn, ud);
    errors += check_textfile(m->o.textfile, fn, ud);
    errors += check_web_config(&m->o, fn, ud);
    return errors + check_sinks(m, fn, ud);
}

static bn_monitor *monitor_alloc(const bn_monitor_opts *o)
{
    bn_monitor *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->o = *o;
    m->lock_fd = -1;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

/* Runs check on a monitor with its registry defined but nothing started. */
static int check_with(const bn_monitor_opts *o,
                      int (*check)(bn_monitor *, bn_config_report_fn, void *),
                      bn_config_report_fn fn, void *ud)
{
    bn_monitor *m = monitor_alloc(o);
    if (!m || bn_metrics_new(&m->reg) || mon_define_metrics(m)) {
        fn(ud, 1, "", "out of memory");
        bn_monitor_free(m);
        return 1;
    }
    const int errors = check(m, fn, ud);
    bn_monitor_free(m);
    return errors;
}

int bn_monitor_check(const bn_monitor_opts *o, bn_config_report_fn fn, void *ud)
{
    return check_with(o, check_setup, fn, ud);
}

int bn_monitor_check_alerts(const cJSON *rules, bn_config_report_fn fn, void *ud)
{
    bn_monitor_opts o;
    bn_monitor_opts_default(&o);
    o.alerts = rules;
    return check_with(&o, check_alerts, fn, ud);
}

int bn_monitor_new(bn_monitor **out, const bn_monitor_opts *o, char *err, size_t errsz)
{
    *out = NULL;
    bn_monitor *m = monitor_alloc(o);
    if (!m) goto oom;
    m->rng = (unsigned)time(NULL) ^ (unsigned)getpid();
    m->start_wall = mon_wall();
    if (gethostname(m->host, sizeof m->host) != 0) snprintf(m->host, sizeof m->host, "localhost");
    m->host[sizeof m->host - 1] = '\0';
    if (bn_metrics_new(&m->reg)) goto oom;
    if (mon_define_metrics(m)) {
        snprintf(err, errsz, "metrics: %s", bn_metrics_errmsg(m->reg));
        goto fail;
    }
    bn_config_first_error fe = {err, errsz, NULL, 0};
    if (check_setup(m, bn_config_keep_first_error, &fe)) goto fail;
    if (bn_spool_open(&m->spool, o->history, o->spool_max, o->retention_days) != BN_OK) {
        snprintf(err, errsz, "%s", bn_spool_errmsg(m->spool));
        bn_spool_close(m->spool);
        m->spool = NULL;
        goto fail;
    }
    bn_spool_set_max(m->spool, o->spool_max, o->spool_max_notifications);
    bn_spool_on_drop(m->spool, on_drop, m);
    restore_alerts(m);
    open_nvml(m);
    mon_update_sink_metrics(m);
    *out = m;
    return 0;
oom:
    snprintf(err, errsz, "out of memory");
fail:
    bn_monitor_free(m);
    return -1;
}

void bn_monitor_free(bn_monitor *m)
{
    if (!m) return;
    mon_http_stop(m);
    mon_sender_stop(m);
    mon_sinks_release(m);
    mon_probe_close(m);
    if (m->nvml) bn_nvml_close(m->nvml);
    free(m->hw);
    bn_alerts_free(m->alerts);
    bn_spool_close(m->spool);
    bn_metrics_free(m->reg);
    for (size_t i = 0; i < m->n_prev; i++) free(m->prev[i].key);
    free(m->prev);
    if (m->lock_fd >= 0) close(m->lock_fd);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- alerts -------------------------------------------------------------------------------------
 */

/* The rule's name for a notification sink ("datadog-events" is "datadog" in a rule). */
static const char *rule_sink_name(const mon_sink *s)
{
    return !strcmp(s->name, "datadog-events") ? "datadog" : s->name;
}

static void notify(bn_monitor *m, const bn_alert_transition *t)
{
    const bn_alert_rule *r = t->rule;
    cJSON *n =
            bn_alert_notification_json(r, t->from, t->to, t->at, t->value, t->series, m->host, 0);
    char *text = n ? cJSON_PrintUnformatted(n) : NULL;
    cJSON_Delete(n);
    if (!text) {
        mon_error(m, "alerts");
        return;
    }
    for (int i = 0; i < m->n_sinks; i++) {
        const mon_sink *s = &m->sinks[i];
        if (s->kind != MON_NOTIFICATION || !bn_alert_rule_has_sink(r, rule_sink_name(s))) continue;
        if (bn_spool_push(m->spool, s->name, "notification", text, (int64_t)(t->at * 1000), 0))
            mon_error(m, "spool");
    }
    if (m->o.json) {
        printf("{\"event\":\"alert\",\"notification\":%s}\n", text);
        fflush(stdout);
    }
    cJSON_free(text);
}

static void on_transition(void *ud, const bn_alert_transition *t)
{
    bn_monitor *m = ud;
    const bn_alert_rule *r = t->rule;
    const bn_spool_transition st = {
            .rule = r->name,
            .from = bn_alert_state_str(t->from),
            .to = bn_alert_state_str(t->to),
            .at_ms = (int64_t)floor(t->at * 1000),
            .value = t->value,
            .series = t->series,
            .metric = r->metric,
            .severity = r->severity,
            .host = m->host,
    };
    if (bn_spool_transition_add(m->spool, &st)) mon_error(m, "history");
    const char *lv[] = {r->name, st.to};
    bn_metric_add(m->f.alert_transitions, lv, 1);
    if (!t->notify) return;
    if (bn_alert_silenced(r, t->at)) { /* recorded, not notified (bitnet alerts silence) */
        char until[40];
        mon_log(m, "alert %s: %s -> %s, silenced until %s: not notified", r->name, st.from, st.to,
                cli_fmt_utc((int64_t)(r->silenced_until * 1000), until, sizeof until));
        return;
    }
    if (bn_alert_rule_has_sink(r, "log")) {
        char num[32] = "no data";
        if (!isnan(t->value)) bn_metrics_fmt_double(t->value, num);
        mon_log(m, "alert %s: %s -> %s (%s %s %g; value %s%s%s)", r->name, st.from, st.to,
                r->metric, bn_alert_op_str(r->op), r->threshold, num, t->series[0] ? " on " : "",
                t->series);
    }
    notify(m, t);
}

static void alert_metrics(bn_monitor *m)
{
    bn_metrics_lock(m->reg);
    bn_mfamily_clear(m->f.alerts);
    for (size_t i = 0; i < bn_alerts_count(m->alerts); i++) {
        const bn_alert_rule *r = bn_alerts_rule(m->alerts, i);
        if (r->state != BN_ALERT_PENDING && r->state != BN_ALERT_FIRING) continue;
        const char *lv[] = {r->name, r->severity, bn_alert_state_str(r->state)};
        bn_metric_set(m->f.alerts, lv, 1);
    }
    bn_metrics_unlock(m->reg);
}

void mon_eval_alerts(bn_monitor *m, const bn_msnap *snap, double wall)
{
    bn_alerts_eval(m->alerts, snap, wall, on_transition, m);
    alert_metrics(m);
}

/* ---- the pass -----------------------------------------------------------------------------------
 */

/* DIR/bitnet.prom when the setting names a directory, else the file itself. */
static int textfile_path(const bn_monitor *m, char *buf, size_t size)
{
    struct stat sb;
    const char *t = m->o.textfile;
    const int dir = stat(t, &sb) == 0 && S_ISDIR(sb.st_mode);
    const int n = dir ? snprintf(buf, size, "%s/bitnet.prom", t) : snprintf(buf, size, "%s", t);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Writes the exposition through a temporary file beside the target renamed over it, so
 * node_exporter never reads half a file (the temporary, <target>.tmp-<pid>-XXXXXX, does not
 * end in .prom). A new file is 0644: node_exporter may run as another user. */
static void write_textfile(bn_monitor *m, const char *text, size_t len)
{
    char path[4096], why[1024];
    if (textfile_path(m, path, sizeof path)) {
        errno = ENAMETOOLONG;
        snprintf(why, sizeof why, "%s: %s", m->o.textfile, strerror(errno));
    } else if (bn_file_write_atomic(path, text, len, 0644, why, sizeof why) == BN_OK)
        return;
    mon_error(m, "textfile");
    static int warned;
    if (!warned++) mon_log(m, "cannot write the textfile %s: %s", m->o.textfile, why);
}

static void spool_samples(bn_monitor *m, const bn_msnap *snap, double wall)
{
    char *payload = NULL;
    for (int i = 0; i < m->n_sinks; i++) {
        if (m->sinks[i].kind != MON_SAMPLES) continue;
        if (!payload && !(payload = mon_samples_payload(m, snap, wall))) {
            mon_error(m, "spool");
            return;
        }
        if (bn_spool_push(m->spool, m->sinks[i].name, "samples", payload, (int64_t)(wall * 1000),
                          0))
            mon_error(m, "spool");
    }
    cJSON_free(payload);
}

static void exposition_outputs(bn_monitor *m, double wall)
{
    mon_sink *pg = mon_sink_find(m, "pushgateway");
    if (!pg && !m->o.textfile) return;
    bn_buf b;
    bn_buf_init(&b, BN_SPOOL_PAYLOAD_MAX);
    size_t len = 0;
    /* process_* names belong to the scrape endpoint only: node_exporter and the Pushgateway
     * export their own, and a second copy breaks their scrape (bitnet_process_* here) */
    char *text = bn_metrics_render_renamed(m->reg, &b, "process_", "bitnet_process_") == 0
                         ? bn_buf_detach(&b, &len)
                         : NULL;
    bn_buf_release(&b);
    if (!text) {
        mon_error(m, m->o.textfile ? "textfile" : "spool");
        return;
    }
    if (m->o.textfile) write_textfile(m, text, len);
    if (pg && bn_spool_push(m->spool, pg->name, "push", text, (int64_t)(wall * 1000), 1))
        mon_error(m, "spool");
    free(text);
}

void bn_monitor_collect_metrics(bn_monitor *m)
{
    mon_collect_process(m);
    mon_collect_host(m);
    mon_collect_gpus(m);
    mon_collect_history(m);
    mon_update_sink_metrics(m);
}

void bn_monitor_collect(bn_monitor *m)
{
    const double t0 = mon_now(), wall = mon_wall();
    mon_collect_process(m);
    mon_collect_host(m);
    mon_collect_gpus(m);
    mon_collect_history(m);
    mon_probe(m);
    bn_msnap snap;
    if (bn_metrics_snapshot(m->reg, 0, &snap) == 0) {
        mon_eval_alerts(m, &snap, wall);
        spool_samples(m, &snap, wall);
        if (m->status) mon_status_write(m, &snap, wall);
        bn_msnap_release(&snap);
    } else {
        mon_error(m, "alerts");
    }
    mon_update_sink_metrics(m);
    bn_metric_set(m->f.collect_seconds, NULL, mon_now() - t0);
    bn_metric_add(m->f.collections, NULL, 1);
    m->passes++;
    exposition_outputs(m, wall);
    if (m->worker_started) mon_sender_wake(m);
}

/* ---- test notifications
 * -------------------------------------------------------------------------- */

int bn_monitor_test_alert(bn_monitor *m, bn_alert_rule *r, cJSON *report)
{
    bn_msnap snap;
    double value = NAN;
    char series[256] = "";
    int holds = 0;
    if (bn_metrics_snapshot(m->reg, 0, &snap) == 0) {
        holds = bn_alert_check(r, &snap, &value, series, sizeof series);
        bn_msnap_release(&snap);
    }
    const double now = mon_wall();
    cJSON_AddStringToObject(report, "rule", r->name);
    cJSON_AddBoolToObject(report, "holds", holds);
    if (isfinite(value))
        cJSON_AddNumberToObject(report, "value", value);
    else
        cJSON_AddNullToObject(report, "value");
    cJSON_AddStringToObject(report, "series", series);
    cJSON *sinks = cJSON_AddObjectToObject(report, "sinks");
    cJSON *n = bn_alert_notification_json(r, r->state, holds ? BN_ALERT_FIRING : BN_ALERT_INACTIVE,
                                          now, value, series, m->host, 1);
    char *text = n ? cJSON_PrintUnformatted(n) : NULL;
    cJSON_Delete(n);
    if (!text || !sinks) {
        cJSON_free(text);
        return 1;
    }
    int failed = 0;
    if (bn_alert_rule_has_sink(r, "log")) {
        fprintf(stderr, "bitnet alerts: test notification: %s\n", text);
        cJSON_AddStringToObject(sinks, "log", "delivered");
    }
    for (int i = 0; i < m->n_sinks; i++) {
        mon_sink *s = &m->sinks[i];
        if (s->kind != MON_NOTIFICATION || !bn_alert_rule_has_sink(r, rule_sink_name(s))) continue;
        char why[300], res[400];
        if (mon_send_one(m, s, text, why, sizeof why) == 0) {
            cJSON_AddStringToObject(sinks, rule_sink_name(s), "delivered");
            continue;
        }
        failed++;
        const int spooled = bn_spool_push(m->spool, s->name, "notification", text,
                                          (int64_t)(now * 1000), 0) == 0;
        snprintf(res, sizeof res, "%s: %s", spooled ? "spooled" : "lost", why);
        cJSON_AddStringToObject(sinks, rule_sink_name(s), res);
    }
    cJSON_free(text);
    return failed;
}

/* ---- the daemon
 * ------------------------------------------------------------------------------------ */

/* One monitor drains a history's spool at a time: a lock file beside the history. */
static int take_lock(bn_monitor *m)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.monitor.lock", m->o.history);
    m->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (m->lock_fd < 0) return -1;
    if (flock(m->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(m->lock_fd);
        m->lock_fd = -1;
        return -1;
    }
    return 0;
}

static void print_once(bn_monitor *m)
{
    if (!m->o.json) {
        bn_buf b;
        bn_buf_init(&b, 64u << 20);
        if (bn_metrics_render(m->reg, &b) == 0) fwrite(b.s, 1, b.len, stdout);
        bn_buf_release(&b);
        fflush(stdout);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "metrics", bn_metrics_to_json(m->reg));
    cJSON *a = cJSON_AddArrayToObject(d, "alerts");
    for (size_t i = 0; a && i < bn_alerts_count(m->alerts); i++)
        cJSON_AddItemToArray(a, bn_alert_rule_json(bn_alerts_rule(m->alerts, i)));
    cJSON *sp = cJSON_AddObjectToObject(d, "spool");
    for (int i = 0; sp && i < m->n_sinks; i++)
        cJSON_AddNumberToObject(sp, m->sinks[i].name,
                                (double)bn_spool_count(m->spool, m->sinks[i].name));
    cli_print_json(d);
}

/* Waits up to s seconds for SIGINT, SIGTERM or SIGHUP; returns the signal, or 0. */
static int wait_signal(const sigset_t *set, double s)
{
    if (s <= 0) return 0;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    for (;;) {
        const int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0) return sig;
        if (errno == EAGAIN) return 0;
        if (errno != EINTR) return 0;
    }
}

/* The settings a reload changes: the sinks, the rules, the pace, the probe. The rest (the
 * history, the endpoint's: its thread reads them while it runs) stays as it is. */
static void opts_take(bn_monitor_opts *d, const bn_monitor_opts *s)
{
    d->textfile = s->textfile;
    d->pushgateway = s->pushgateway;
    memcpy(d->webhook_buf, s->webhook_buf, sizeof d->webhook_buf);
    d->webhook = s->webhook == s->webhook_buf ? d->webhook_buf : s->webhook;
    d->cloudwatch = s->cloudwatch;
    d->cw_region = s->cw_region;
    d->cw_namespace = s->cw_namespace;
    d->cw_endpoint = s->cw_endpoint;
    d->datadog = s->datadog;
    d->dd_site = s->dd_site;
    d->dd_endpoint = s->dd_endpoint;
    d->dd_api_key_env = s->dd_api_key_env;
    d->interval_s = s->interval_s;
    d->probe_model = s->probe_model;
    d->probe_every_s = s->probe_every_s;
    d->probe_tokens = s->probe_tokens;
    d->threads = s->threads;
    d->probe_prompt = s->probe_prompt;
    d->spool_max = s->spool_max;
    d->spool_max_notifications = s->spool_max_notifications;
    d->backoff_max_s = s->backoff_max_s;
    d->timeout_s = s->timeout_s;
    d->alerts = s->alerts;
}

/* Moves the checked rules, credentials and sinks of n into the running m. The senders are
 * stopped (a transfer in progress is aborted: its entries stay in the spool). */
static void take_setup(bn_monitor *m, bn_monitor *n)
{
    mon_sinks_release(m);
    bn_alerts_free(m->alerts);
    m->alerts = n->alerts;
    n->alerts = NULL;
    m->aws = n->aws;
    memcpy(m->dd_key, n->dd_key, sizeof m->dd_key);
    memcpy(m->sinks, n->sinks, sizeof m->sinks);
    m->n_sinks = n->n_sinks;
    n->n_sinks = 0;
    for (int i = 0; i < m->n_sinks; i++) m->sinks[i].m = m;
}

/* SIGHUP: the configuration again, checked in full as at the start; when it passes, its rules
 * and sinks replace the running ones (each rule back in the state the history has for it), the
 * spool, the history and the endpoint stay. When it does not, nothing changes. */
static void reload(bn_monitor *m)
{
    char err[1024];
    bn_monitor_opts o;
    if (!m->o.reload) return;
    if (m->o.reload(m->o.reload_ud, &o, err, sizeof err)) {
        mon_log(m, "SIGHUP: the configuration is not reloaded: %s", err);
        mon_error(m, "config");
        return;
    }
    o.history = m->o.history; /* the spool and the endpoint stay as they are */
    o.retention_days = m->o.retention_days;
    o.listen = m->o.listen;
    o.web_config = m->o.web_config;
    o.http_timeout_s = m->o.http_timeout_s;
    o.http_max_per_client = m->o.http_max_per_client;
    bn_monitor *n = monitor_alloc(&o);
    bn_config_first_error fe = {err, sizeof err, NULL, 0};
    if (!n || bn_metrics_new(&n->reg) || mon_define_metrics(n))
        snprintf(err, sizeof err, "out of memory");
    else if (!check_setup(n, bn_config_keep_first_error, &fe))
        err[0] = '\0';
    if (err[0]) {
        mon_log(m, "SIGHUP: the configuration is not reloaded: %s", err);
        mon_error(m, "config");
        bn_monitor_free(n);
        return;
    }
    mon_sender_stop(m);
    take_setup(m, n);
    bn_monitor_free(n);
    if (m->probe && (!o.probe_model || strcmp(o.probe_model, m->o.probe_model))) mon_probe_close(m);
    opts_take(&m->o, &o);
    bn_spool_set_max(m->spool, o.spool_max, o.spool_max_notifications);
    restore_alerts(m);
    if (mon_sender_start(m)) mon_log(m, "SIGHUP: cannot start the sender threads");
    char sinks[256] = "";
    for (int i = 0; i < m->n_sinks; i++) {
        const size_t k = strlen(sinks);
        snprintf(sinks + k, sizeof sinks - k, "%s%s", k ? ", " : "", m->sinks[i].name);
    }
    mon_log(m, "SIGHUP: configuration reloaded: %zu alert rules; every %gs; sinks: %s",
            bn_alerts_count(m->alerts), m->o.interval_s, sinks[0] ? sinks : "none");
}

static int run_once(bn_monitor *m, int locked)
{
    bn_monitor_collect(m);
    if (locked && m->n_sinks) {
        const int left = mon_sinks_flush(m, mon_now() + 2 * m->o.timeout_s, 0);
        if (left)
            mon_log(m, "some entries could not be delivered; they stay in the spool of %s",
                    m->o.history);
    }
    print_once(m);
    return BN_EXIT_OK;
}

static void log_start(bn_monitor *m)
{
    char sinks[256] = "";
    for (int i = 0; i < m->n_sinks; i++) {
        const size_t n = strlen(sinks);
        snprintf(sinks + n, sizeof sinks - n, "%s%s", n ? ", " : "", m->sinks[i].name);
    }
    if (m->http)
        mon_log(m, "listening on %s://%s/metrics (port %d); every %gs; sinks: %s",
                mon_http_scheme(m), m->o.listen, m->http_port, m->o.interval_s,
                sinks[0] ? sinks : "none");
    else
        mon_log(m, "every %gs; sinks: %s", m->o.interval_s, sinks[0] ? sinks : "none");
    if (m->o.json) {
        printf("{\"event\":\"start\",\"port\":%d,\"interval\":%g,\"pid\":%ld}\n", m->http_port,
               m->o.interval_s, (long)getpid());
        fflush(stdout);
    }
}

static int run_daemon(bn_monitor *m, const sigset_t *set)
{
    char err[512];
    if (m->o.listen && mon_http_start(m, err, sizeof err)) {
        cli_error("monitor: %s", err);
        return BN_EXIT_FAIL;
    }
    if (mon_sender_start(m)) {
        cli_error("monitor: cannot start the sender thread");
        return BN_EXIT_FAIL;
    }
    log_start(m);
    m->status = 1; /* <history>.monitor.json after each pass, for bitnet alerts eval */
    const double start = mon_now();
    for (;;) {
        const double t = mon_now();
        bn_monitor_collect(m);
        double wait = m->o.interval_s - (mon_now() - t);
        if (m->o.duration_s > 0) {
            const double left = m->o.duration_s - (mon_now() - start);
            if (left <= 0) break;
            if (left < wait) wait = left;
        }
        const int sig = wait_signal(set, wait);
        if (sig == SIGHUP) {
            reload(m);
            continue;
        }
        if (sig) break;
        if (m->o.duration_s > 0 && mon_now() - start >= m->o.duration_s) break;
    }
    mon_sender_stop(m);
    mon_status_remove(m);
    /* one last round to the sinks that answer (not those down or slow: they would delay the
     * stop); what is left stays in the spool for the next start */
    mon_sinks_flush(m, mon_now() + m->o.timeout_s, 1);
    mon_log(m, "stopping after %ld collections; %lld entries stay in the spool", m->passes,
            (long long)bn_spool_count(m->spool, NULL));
    return BN_EXIT_OK;
}

int bn_monitor_main(const bn_monitor_opts *o)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread: they inherit the mask */
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error("monitor: cannot initialise libcurl");
        return BN_EXIT_FAIL;
    }
    bn_monitor *m;
    char err[1024];
    int rc = BN_EXIT_FAIL;
    if (bn_monitor_new(&m, o, err, sizeof err)) {
        cli_error("monitor: %s", err);
        goto done;
    }
    const int locked = take_lock(m) == 0;
    if (!locked && !o->once) {
        cli_error("monitor: another bitnet monitor is running on %s", o->history);
    } else {
        if (!locked) mon_log(m, "another monitor is running: it delivers the spool");
        rc = o->once ? run_once(m, locked) : run_daemon(m, &set);
    }
    bn_monitor_free(m);
done:
    curl_global_cleanup();
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return rc;
}
