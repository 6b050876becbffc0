/* cmd_alerts.c - `bitnet alerts list|eval|history|test|add|edit|rm|silence|ack`: the alert
 * rules of the config, the state bitnet monitor last recorded for each or their evaluation
 * now, their transitions in the history, a test notification to a rule's sinks, and changes
 * to the rules (checked as validate checks them, written atomically). */
#include "commands.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/json.h"
#include "monitor/monitor.h"

void cmd_alerts_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet alerts list [--json]\n"
            "       bitnet alerts eval [--json]\n"
            "       bitnet alerts history [RULE] [-n N] [--json]\n"
            "       bitnet alerts test RULE [--webhook URL] [--datadog] [--datadog-endpoint URL]\n"
            "                              [--json]\n"
            "       bitnet alerts add JSON | edit RULE JSON | rm RULE\n"
            "       bitnet alerts silence RULE DURATION | ack RULE\n\n"
            "list     the rules of the config with the state bitnet monitor last recorded\n"
            "eval     the rules evaluated now: by the running monitor daemon (its last pass,\n"
            "         with its age and its sinks' backlog), or, with none running, here\n"
            "         with the monitor's code (transitions recorded, nothing notified)\n"
            "history  the transitions (inactive, pending, firing, resolved), newest first\n"
            "         (-n: at most N, default 50; 0: all)\n"
            "test     evaluates RULE on the metrics now and sends a notification marked as a\n"
            "         test to each of its sinks; what cannot be delivered is spooled\n"
            "add      appends a rule (JSON, as the config's alerts array holds it)\n"
            "edit     replaces RULE (its silence and acknowledgement kept); rm removes it\n"
            "silence  no notification of RULE for DURATION (30m, 2h; 0 lifts it)\n"
            "ack      acknowledges RULE while it fires\n"
            "         each change is checked as validate checks it and written to the config\n"
            "         atomically; a running monitor daemon reads the rules again (SIGHUP)\n\n"
            "Exit status: 0 ok, 1 failure (test: a sink did not take the notification; an\n"
            "unknown rule; a change refused), 2 usage error.\n");
}

typedef struct alerts_args {
    const char *sub, *rule, *arg;
    long limit;
    int json;
    bn_monitor_opts o;
} alerts_args;

/* The subcommands and the arguments each takes. */
static const struct {
    const char *name;
    int min, max;      /* positional arguments after it */
    const char *needs; /* what is missing below min */
} subs[] = {
        {"list", 0, 0, ""},
        {"eval", 0, 0, ""},
        {"history", 0, 1, ""},
        {"test", 1, 1, "a RULE"},
        {"add", 1, 1, "the rule as a JSON object"},
        {"edit", 2, 2, "a RULE and the rule as a JSON object"},
        {"rm", 1, 1, "a RULE"},
        {"silence", 2, 2, "a RULE and a DURATION (0 lifts the silence)"},
        {"ack", 1, 1, "a RULE"},
};

static int check_sub(const alerts_args *a)
{
    const char *C = "alerts";
    if (!a->sub)
        return cli_usage_error(C, "missing a subcommand: list, eval, history, test, add, edit, "
                                  "rm, silence or ack");
    const int n = !!a->rule + !!a->arg;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(a->sub, subs[i].name)) continue;
        if (n < subs[i].min) return cli_usage_error(C, "%s needs %s", a->sub, subs[i].needs);
        if (n > subs[i].max)
            return cli_usage_error(C, "unexpected argument '%s'", n == 2 ? a->arg : a->rule);
        return -1;
    }
    return cli_usage_error(C, "unknown subcommand '%s'", a->sub);
}

static int parse_args(int argc, char **argv, alerts_args *a)
{
    const char *C = "alerts";
    a->limit = 50;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            cmd_alerts_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(s, "--json")) {
            a->json = 1;
        } else if (!strcmp(s, "--datadog")) {
            a->o.datadog = 1;
        } else if (!strcmp(s, "-n") || !strcmp(s, "--webhook") ||
                   !strcmp(s, "--datadog-endpoint")) {
            if (!v) return cli_usage_error(C, "%s needs a value", s);
            if (!strcmp(s, "-n") && cli_parse_long(v, 0, 1000000000, &a->limit))
                return cli_usage_error(C, "-n: bad value '%s'", v);
            if (!strcmp(s, "--webhook")) a->o.webhook = v;
            if (!strcmp(s, "--datadog-endpoint")) a->o.dd_endpoint = v, a->o.datadog = 1;
            i++;
        } else if (s[0] == '-') {
            return cli_usage_error(C, "unknown option '%s'", s);
        } else if (!a->sub) {
            a->sub = s;
        } else if (!a->rule) {
            a->rule = s;
        } else if (!a->arg) {
            a->arg = s;
        } else {
            return cli_usage_error(C, "unexpected argument '%s'", s);
        }
    }
    return check_sub(a);
}

static void fmt_time(int64_t ms, char *buf, size_t size)
{
    const time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&s, &tm)) {
        snprintf(buf, size, "-");
        return;
    }
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---- list -------------------------------------------------------------------------------------
 */

static int list(const alerts_args *a, bn_spool *sp)
{
    bn_alerts *rules;
    char err[256];
    if (bn_alerts_parse(a->o.alerts, &rules, err, sizeof err)) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
    if (!a->json)
        printf("%-20s %-9s %-19s %-8s %s\n", "NAME", "STATE", "SINCE", "SEVERITY", "CONDITION");
    for (size_t i = 0; i < bn_alerts_count(rules); i++) {
        bn_alert_rule *r = bn_alerts_rule(rules, i);
        char st[16] = "inactive", when[40];
        int64_t at = 0;
        bn_alert_state s;
        if (bn_spool_last_state(sp, r->name, st, sizeof st, &at) == 0 &&
            bn_alert_state_parse(st, &s) == 0)
            r->state = s, r->since = (double)at / 1000;
        fmt_time(at, when, sizeof when);
        if (a->json) {
            cJSON *o = bn_alert_rule_json(r);
            if (at > 0)
                cJSON_AddNumberToObject(o, "since_ms", (double)at);
            else
                cJSON_AddNullToObject(o, "since_ms");
            cJSON_AddItemToArray(arr, o);
            continue;
        }
        char sinks[128] = "";
        for (int k = 0; k < r->n_sinks; k++) {
            const size_t n = strlen(sinks);
            snprintf(sinks + n, sizeof sinks - n, "%s%s", k ? "," : "", r->sinks[k]);
        }
        printf("%-20s %-9s %-19s %-8s %s %s %g", r->name, bn_alert_state_str(r->state), when,
               r->severity, r->metric, bn_alert_op_str(r->op), r->threshold);
        if (r->for_s > 0) printf(" for %gs", r->for_s);
        printf("%s%s\n", sinks[0] ? " -> " : "", sinks);
    }
    bn_alerts_free(rules);
    if (!a->json) return BN_EXIT_OK;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "alerts", arr);
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* ---- eval -------------------------------------------------------------------------------------
 */

/* The rules evaluated now by this process, through the monitor's own pass (its registry, its
 * rules, the states restored from the history, transitions recorded there); no sink is set
 * up, so nothing is notified: delivering is the daemon's job. */
static cJSON *eval_here(alerts_args *a, double *at, char *err, size_t errsz)
{
    bn_monitor_opts *o = &a->o;
    o->listen = o->textfile = o->pushgateway = o->webhook = NULL;
    o->cloudwatch = o->datadog = 0;
    o->probe_model = NULL;
    o->quiet = 1;
    bn_monitor *m;
    if (bn_monitor_new(&m, o, err, errsz)) return NULL;
    bn_monitor_collect_metrics(m);
    bn_monitor_eval_alerts(m);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *at = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    cJSON *rules = bn_monitor_rules_json(m, *at);
    bn_monitor_free(m);
    if (!rules) snprintf(err, errsz, "out of memory");
    return rules;
}

static void print_eval(const cJSON *d)
{
    const cJSON *mon = cJSON_GetObjectItem(d, "monitor"), *r;
    const int daemon = !strcmp(cm_json_str(d, "evaluated_by", ""), "monitor");
    if (daemon)
        printf("evaluated by the monitor daemon (pid %.0f) %.0f s ago, every %g s\n",
               cm_json_num(mon, "pid", 0), cm_json_num(mon, "age_s", 0),
               cm_json_num(mon, "interval_s", 0));
    else
        printf("evaluated now by this command: no monitor daemon is running\n");
    printf("%-20s %-9s %-12s %s\n", "NAME", "STATE", "VALUE", "CONDITION");
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(d, "alerts"))
    {
        char num[32] = "no data";
        const double v = cm_json_num(r, "value", NAN);
        if (!isnan(v)) bn_metrics_fmt_double(v, num);
        printf("%-20s %-9s %-12s %s %s %g\n", cm_json_str(r, "rule", ""),
               cm_json_str(r, "state", ""), num, cm_json_str(r, "metric", ""),
               cm_json_str(r, "op", ""), cm_json_num(r, "threshold", NAN));
    }
}

static int eval(alerts_args *a)
{
    cJSON *d = cJSON_CreateObject(), *st = bn_monitor_daemon_status(a->o.history), *rules;
    char err[1024];
    double at = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItem(st, "running"))) {
        rules = cJSON_DetachItemFromObject(st, "alerts");
        at = cm_json_num(st, "at_ms", 0) / 1000;
        cJSON_AddStringToObject(d, "evaluated_by", "monitor");
    } else {
        cJSON_DeleteItemFromObject(st, "alerts");
        if (!(rules = eval_here(a, &at, err, sizeof err))) {
            cli_error("alerts: %s", err);
            cJSON_Delete(st);
            cJSON_Delete(d);
            return BN_EXIT_FAIL;
        }
        cJSON_AddStringToObject(d, "evaluated_by", "alerts eval");
    }
    cJSON_AddNumberToObject(d, "evaluated_ms", floor(at * 1000));
    cJSON_AddItemToObject(d, "monitor", st ? st : cJSON_CreateNull());
    cJSON_AddItemToObject(d, "alerts", rules ? rules : cJSON_CreateArray());
    if (a->json) return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    print_eval(d);
    cJSON_Delete(d);
    return BN_EXIT_OK;
}

/* ---- changing the rules: add, edit, rm, silence, ack ------------------------------------------
 */

/* Index of the rule named name in rules ("alerts[N]" names one without a name), or -1. */
static int rule_index(const cJSON *rules, const char *name)
{
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rules)
    {
        char def[32];
        snprintf(def, sizeof def, "alerts[%d]", i);
        if (!strcmp(cm_json_str(r, "name", def), name)) return i;
        i++;
    }
    return -1;
}

/* The rule given on the command line: a JSON object, or NULL with the error said. */
static cJSON *rule_arg(const char *text)
{
    cJSON *r = cJSON_Parse(text);
    if (cJSON_IsObject(r)) return r;
    cJSON_Delete(r);
    cli_error("alerts: the rule is not a JSON object: %.60s", text);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sets (v) or removes (v NULL) field k of a rule. */
static void rule_set(cJSON *r, const char *k, cJSON *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(r, k);
    if (v) cJSON_AddItemToObject(r, k, v);
}

/* ack: the rule r must fire (the state last recorded in the history). */
static int ack_rule(const alerts_args *a, cJSON *r, char *done, size_t size)
{
    char st[16] = "inactive", when[40];
    int64_t since = 0;
    bn_spool *sp;
    if (bn_spool_open(&sp, a->o.history, a->o.spool_max, a->o.retention_days) != BN_OK) {
        cli_error("%s", bn_spool_errmsg(sp));
        bn_spool_close(sp);
        return BN_EXIT_FAIL;
    }
    bn_spool_last_state(sp, a->rule, st, sizeof st, &since);
    bn_spool_close(sp);
    if (strcmp(st, "firing")) {
        cli_error("alerts: %s is not firing (%s): nothing to acknowledge", a->rule, st);
        return BN_EXIT_FAIL;
    }
    rule_set(r, "acknowledged_at",
             cJSON_CreateString(cli_fmt_utc((int64_t)ceil(now_s()) * 1000, when, sizeof when)));
    snprintf(done, size, "acknowledged %s (firing since %s)", a->rule,
             cli_fmt_utc(since, when, sizeof when));
    return 0;
}

/* Applies the change to rules (the config file's, a copy); 0, or BN_EXIT_* with the error
 * said. done: what to print when it is saved. */
static int apply_change(const alerts_args *a, cJSON *rules, char *done, size_t size)
{
    const int at = a->rule ? rule_index(rules, a->rule) : -1;
    char when[40];
    if (!strcmp(a->sub, "add")) {
        cJSON *r = rule_arg(a->rule);
        if (!r) return BN_EXIT_FAIL;
        const char *name = cm_json_str(r, "name", "");
        cJSON_AddItemToArray(rules, r);
        snprintf(done, size, "added rule %s", name[0] ? name : "(no name)");
        if (name[0] && rule_index(rules, name) != cJSON_GetArraySize(rules) - 1) {
            cli_error("alerts: a rule named '%s' exists (bitnet alerts edit changes it)", name);
            return BN_EXIT_FAIL;
        }
        return 0;
    }
    if (at < 0) {
        cli_error("alerts: no rule named '%s' in the config", a->rule);
        return BN_EXIT_FAIL;
    }
    cJSON *old = cJSON_GetArrayItem(rules, at);
    if (!strcmp(a->sub, "edit")) {
        cJSON *r = rule_arg(a->arg);
        if (!r) return BN_EXIT_FAIL;
        static const char *const keep[] = {"silenced_until", "acknowledged_at"};
        for (int i = 0; i < 2; i++) /* what the operator set on it stays */
            if (!cJSON_HasObjectItem(r, keep[i]) && cJSON_HasObjectItem(old, keep[i]))
                cJSON_AddItemToObject(
                        r, keep[i],
                        cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(old, keep[i]), 1));
        cJSON_ReplaceItemInArray(rules, at, r);
        snprintf(done, size, "changed rule %s", a->rule);
    } else if (!strcmp(a->sub, "rm")) {
        cJSON_DeleteItemFromArray(rules, at);
        snprintf(done, size, "removed rule %s", a->rule);
    } else if (!strcmp(a->sub, "silence")) {
        double d;
        if (bn_parse_duration(a->arg, &d)) {
            cli_error("alerts: silence: '%s' is not a duration such as 30m, 2h or 0", a->arg);
            return BN_EXIT_FAIL;
        }
        cli_fmt_utc((int64_t)((now_s() + d) * 1000), when, sizeof when);
        rule_set(old, "silenced_until", d > 0 ? cJSON_CreateString(when) : NULL);
        if (d > 0)
            snprintf(done, size, "silenced %s until %s", a->rule, when);
        else
            snprintf(done, size, "%s: no longer silenced", a->rule);
    } else {
        return ack_rule(a, old, done, size);
    }
    return 0;
}
/* add, edit, rm, silence, ack: the config file's rules changed, checked as validate checks
 * them (the monitor's code) and written atomically; a running monitor daemon is told to read
 * them again (SIGHUP). */
static int change(const alerts_args *a, const bn_config *cfg)
{
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(bn_config_file_doc(cfg), "alerts");
    cJSON *rules = cJSON_IsArray(cur) ? cJSON_Duplicate(cur, 1) : cJSON_CreateArray();
    char done[256] = "", err[1024];
    bn_config_first_error fe = {err, sizeof err, NULL, 0};
    int rc = apply_change(a, rules, done, sizeof done);
    if (!rc && bn_monitor_check_alerts(rules, bn_config_keep_first_error, &fe)) {
        cli_error("alerts: %s", err);
        rc = BN_EXIT_FAIL;
    }
    if (!rc && bn_config_write_key(bn_config_file(cfg), "alerts", rules, NULL, err, sizeof err)) {
        cli_error("%s", err);
        rc = BN_EXIT_FAIL;
    }
    cJSON_Delete(rules);
    if (rc) return rc;
    cJSON *st = bn_monitor_daemon_status(a->o.history);
    const double pid = cm_json_num(st, "pid", 0);
    const int hup =
            cJSON_IsTrue(cJSON_GetObjectItem(st, "running")) && kill((pid_t)pid, SIGHUP) == 0;
    cJSON_Delete(st);
    printf("%s%s\n", done, hup ? "; the monitor daemon reads the rules again" : "");
    return BN_EXIT_OK;
}

/* ---- history ----------------------------------------------------------------------------------
 */

static int history(const alerts_args *a, bn_spool *sp)
{
    cJSON *t;
    if (spool_transitions_json(sp, a->rule, a->limit, &t)) {
        cli_error("%s", bn_spool_errmsg(sp));
        return BN_EXIT_FAIL;
    }
    if (a->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToObject(d, "transitions", t);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("%-19s %-20s %-9s %-9s %-12s %s\n", "AT", "RULE", "FROM", "TO", "VALUE", "SERIES");
    const cJSON *e;
    cJSON_ArrayForEach(e, t)
    {
        char when[40], num[32] = "-";
        fmt_time((int64_t)cJSON_GetObjectItem(e, "at_ms")->valuedouble, when, sizeof when);
        const cJSON *v = cJSON_GetObjectItem(e, "value"), *s = cJSON_GetObjectItem(e, "series");
        if (cJSON_IsNumber(v)) bn_metrics_fmt_double(v->valuedouble, num);
        printf("%-19s %-20s %-9s %-9s %-12s %s\n", when,
               cJSON_GetObjectItem(e, "rule")->valuestring,
               cJSON_GetObjectItem(e, "from")->valuestring,
               cJSON_GetObjectItem(e, "to")->valuestring, num,
               cJSON_IsString(s) ? s->valuestring : "");
    }
    cJSON_Delete(t);
    return BN_EXIT_OK;
}

/* ---- test -------------------------------------------------------------------------------------
 */

static int test(alerts_args *a)
{
    bn_monitor_opts *o = &a->o;
    o->listen = NULL;
    o->textfile = NULL;
    o->pushgateway = NULL;
    o->cloudwatch = 0; /* takes samples, not notifications */
    o->probe_model = NULL;
    o->quiet = 1;
    bn_monitor *m;
    char err[1024];
    if (bn_monitor_new(&m, o, err, sizeof err)) {
        cli_error("alerts: %s", err);
        return BN_EXIT_FAIL;
    }
    bn_alert_rule *r = bn_alerts_find(bn_monitor_alerts(m), a->rule);
    if (!r) {
        cli_error("alerts: no rule named '%s' in the config", a->rule);
        bn_monitor_free(m);
        return BN_EXIT_FAIL;
    }
    bn_monitor_collect_metrics(m);
    cJSON *rep = cJSON_CreateObject();
    const int failed = bn_monitor_test_alert(m, r, rep);
    bn_monitor_free(m);
    if (a->json) {
        if (cli_print_json(rep)) return BN_EXIT_FAIL;
    } else {
        const cJSON *v = cJSON_GetObjectItem(rep, "value"), *s;
        char num[32] = "no data";
        if (cJSON_IsNumber(v)) bn_metrics_fmt_double(v->valuedouble, num);
        printf("%s: %s (value %s%s%s)\n", a->rule,
               cJSON_IsTrue(cJSON_GetObjectItem(rep, "holds")) ? "holds" : "does not hold", num,
               cJSON_GetObjectItem(rep, "series")->valuestring[0] ? " on " : "",
               cJSON_GetObjectItem(rep, "series")->valuestring);
        int any = 0;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(rep, "sinks"))
        {
            printf("  %-10s %s\n", s->string, s->valuestring);
            any = 1;
        }
        if (!any)
            printf("  no sink takes this rule's notifications (configure a webhook or Datadog)\n");
        cJSON_Delete(rep);
    }
    return failed ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int cmd_alerts(int argc, char **argv)
{
    alerts_args a;
    memset(&a, 0, sizeof a);
    bn_monitor_opts_default(&a.o);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    bn_monitor_opts cli = a.o; /* the command line wins over the config */
    bn_config *cfg = NULL;
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(&cfg, err, sizeof err) ||
        bn_monitor_opts_config(&a.o, cfg, err, sizeof err)) {
        cli_error("%s", err);
        if (cfg) bn_config_free(cfg);
        return BN_EXIT_FAIL;
    }
    if (cli.webhook) a.o.webhook = cli.webhook;
    if (cli.datadog) a.o.datadog = 1;
    if (cli.dd_endpoint) a.o.dd_endpoint = cli.dd_endpoint;
    if (!strcmp(a.sub, "test")) {
        rc = test(&a);
    } else if (!strcmp(a.sub, "eval")) {
        rc = eval(&a);
    } else if (strcmp(a.sub, "list") && strcmp(a.sub, "history")) {
        rc = change(&a, cfg);
    } else {
        bn_spool *sp;
        if (bn_spool_open(&sp, a.o.history, a.o.spool_max, a.o.retention_days) != BN_OK) {
            cli_error("%s", bn_spool_errmsg(sp));
            rc = BN_EXIT_FAIL;
        } else {
            rc = !strcmp(a.sub, "list") ? list(&a, sp) : history(&a, sp);
        }
        bn_spool_close(sp);
    }
    bn_config_free(cfg);
    return rc;
}
