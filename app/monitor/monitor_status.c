/* monitor_status.c - what a running monitor says about itself, and the rules evaluated on
 * demand: the daemon writes <history>.monitor.json after every pass (its pid, when it last
 * evaluated the rules and what they gave, each sink's backlog and last delivery), and
 * `bitnet alerts eval` (the TUI's source) reads it, or, with no daemon running, evaluates the
 * rules itself through the same pass (bn_monitor_eval_alerts). */
#include "monitor.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "common/model_common.h"

int bn_monitor_status_path(const char *history, char *buf, size_t size)
{
    const int n = snprintf(buf, size, "%s.monitor.json", history);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* The value of family{sink="name"} in snap; NaN when it has none. */
static double sink_value(const bn_msnap *snap, const char *family, const char *sink)
{
    char text[256], why[128];
    bn_msel sel;
    snprintf(text, sizeof text, "%s{sink=\"%s\"}", family, sink);
    if (bn_msel_parse(text, &sel, why, sizeof why)) return NAN;
    for (size_t i = 0; i < snap->n; i++)
        if (bn_msel_match(&sel, &snap->v[i])) return snap->v[i].value;
    return NAN;
}

static void add_ms(cJSON *o, const char *k, double seconds)
{
    if (isfinite(seconds) && seconds > 0)
        cJSON_AddNumberToObject(o, k, floor(seconds * 1000));
    else
        cJSON_AddNullToObject(o, k);
}

/* The rules as the last pass left them: bn_alert_rule_json with since_ms, value, series. */
cJSON *bn_monitor_rules_json(bn_monitor *m, double evaluated)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < bn_alerts_count(m->alerts); i++) {
        const bn_alert_rule *r = bn_alerts_rule(m->alerts, i);
        cJSON *o = bn_alert_rule_json(r);
        if (!o) continue;
        add_ms(o, "since_ms", r->since);
        if (isfinite(r->value))
            cJSON_AddNumberToObject(o, "value", r->value);
        else
            cJSON_AddNullToObject(o, "value");
        cJSON_AddStringToObject(o, "series", r->series);
        add_ms(o, "evaluated_ms", evaluated);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* Each sink: entries waiting, and the last successful delivery (from the registry, which the
 * senders update under its lock). */
static cJSON *sinks_json(bn_monitor *m, const bn_msnap *snap)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < m->n_sinks; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        const char *name = m->sinks[i].name;
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "spooled", (double)bn_spool_count(m->spool, name));
        add_ms(o, "last_ok_ms",
               sink_value(snap, "bitnet_monitor_sink_last_success_timestamp_seconds", name));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

void mon_status_write(bn_monitor *m, const bn_msnap *snap, double wall)
{
    char path[4200], why[512];
    if (bn_monitor_status_path(m->o.history, path, sizeof path)) return;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "pid", (double)getpid());
    cJSON_AddStringToObject(d, "host", m->host);
    add_ms(d, "started_ms", m->start_wall);
    add_ms(d, "at_ms", wall);
    cJSON_AddNumberToObject(d, "interval_s", m->o.interval_s);
    cJSON_AddNumberToObject(d, "passes", (double)m->passes);
    cJSON_AddItemToObject(d, "sinks", sinks_json(m, snap));
    cJSON_AddItemToObject(d, "alerts", bn_monitor_rules_json(m, wall));
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (!text || bn_file_write_atomic(path, text, strlen(text), 0600, why, sizeof why) != BN_OK) {
        mon_error(m, "history");
        static int warned;
        if (!warned++) mon_log(m, "cannot write %s: %s", path, text ? why : "out of memory");
    }
    cJSON_free(text);
}

void mon_status_remove(bn_monitor *m)
{
    char path[4200];
    if (bn_monitor_status_path(m->o.history, path, sizeof path) == 0) unlink(path);
}

/* Whether the process that wrote the status lives. */
static int pid_alive(double pid)
{
    if (!(pid >= 1 && pid < 1e9)) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

cJSON *bn_monitor_daemon_status(const char *history)
{
    char path[4200];
    if (bn_monitor_status_path(history, path, sizeof path)) return NULL;
    size_t len = 0;
    char *text = access(path, F_OK) == 0 ? mc_read_text(path, 8u << 20, &len) : NULL;
    cJSON *d = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return NULL;
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(d, "at_ms");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(d, "interval_s");
    const double age = cJSON_IsNumber(at) ? mon_wall() - at->valuedouble / 1000 : INFINITY;
    /* a pass may run late (a probe generation, a slow history); three intervals and a minute */
    const double late = 3 * (cJSON_IsNumber(iv) ? iv->valuedouble : 15) + 60;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(d, "pid");
    cJSON_AddBoolToObject(d, "running",
                          cJSON_IsNumber(pid) && pid_alive(pid->valuedouble) && age <= late);
    if (isfinite(age)) cJSON_AddNumberToObject(d, "age_s", age);
    return d;
}

void bn_monitor_eval_alerts(bn_monitor *m)
{
    bn_msnap snap;
    const double wall = mon_wall();
    if (bn_metrics_snapshot(m->reg, 0, &snap) != 0) {
        mon_error(m, "alerts");
        return;
    }
    mon_eval_alerts(m, &snap, wall);
    bn_msnap_release(&snap);
}
