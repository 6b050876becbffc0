/* cmd_monitor.c - `bitnet monitor`: the metrics endpoint, exporters and alert rules as a
 * daemon (or one pass with --once). The machinery is in monitor.c. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "monitor/monitor.h"

void cmd_monitor_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet monitor [options]\n\n"
            "Collects metrics every --interval (process, host, NVIDIA GPUs, the history's runs,\n"
            "and an optional probe generation), serves them to Prometheus at /metrics,\n"
            "evaluates the alert rules of the config, and delivers samples and notifications\n"
            "to the push sinks. Undelivered data waits in the history's spool and is retried\n"
            "with backoff. Runs until SIGINT or SIGTERM (or --duration, --once); SIGHUP\n"
            "reloads the configuration (rules, sinks), keeping the spool.\n\n"
            "Options (the config's monitor.* and exporters.* keys are the defaults):\n"
            "  --listen HOST:PORT    the scrape endpoint (default 127.0.0.1:9464; port 0: any)\n"
            "  --no-listen           no endpoint\n"
            "  --web-config FILE     TLS and basic auth for the endpoint (exporter-toolkit's\n"
            "                        web-config.yml: tls_server_config, basic_auth_users)\n"
            "  --http-timeout S      a client's time to send a request or take the answer\n"
            "                        (default 10s; not restarted by each byte)\n"
            "  --http-max-per-client N  connections from one address at once (default 16)\n"
            "  --textfile DIR        write DIR/bitnet.prom (node_exporter's textfile collector)\n"
            "  --pushgateway URL     push to URL/metrics/job/bitnet/instance/HOST\n"
            "  --cloudwatch          send to CloudWatch (PutMetricData, SigV4)\n"
            "  --cloudwatch-endpoint URL  another endpoint than the region's\n"
            "  --region REGION       the AWS region\n"
            "  --datadog             send series and alert events to Datadog\n"
            "  --datadog-endpoint URL  another endpoint than https://api.SITE\n"
            "  --webhook URL         POST alert notifications as JSON\n"
            "  --interval S          seconds between collections (default 10; 5m, 1h30m)\n"
            "  -m, --probe-model FILE  a short greedy generation every --probe-every\n"
            "  --probe-every S       (default 60s)\n"
            "  --probe-tokens N      tokens per probe (default 16)\n"
            "  --probe-prompt TEXT   (default \"The capital of France is\")\n"
            "  -t, --threads N       probe threads (default: config threads)\n"
            "  --spool-max N         samples the spool keeps (default 10000; oldest dropped)\n"
            "  --spool-max-notifications N  alert notifications it keeps (default 1000)\n"
            "  --backoff-max S       longest wait between retries of a sink (default 60s)\n"
            "  --timeout S           per request to a sink (default 10s)\n"
            "  --duration S          stop after S (default: run until a signal)\n"
            "  --once                one collection and delivery round; print the metrics\n"
            "  --json                with --once: the metrics as JSON; else events as JSON lines\n"
            "  -q, --quiet           no log lines on stderr\n"
            "  -h, --help            this help\n\n"
            "Exit status: 0 ok, 1 cannot start (address in use, missing credentials, another\n"
            "monitor on the same history), 2 usage error.\n");
}

static int duration_opt(const char *v, double min, double *out)
{
    double d;
    if (bn_parse_duration(v, &d) || d < min) return -1;
    *out = d;
    return 0;
}

static const char *const value_opts[] = {
        "--listen",
        "--web-config",
        "--http-timeout",
        "--http-max-per-client",
        "--textfile",
        "--pushgateway",
        "--cloudwatch-endpoint",
        "--region",
        "--datadog-endpoint",
        "--webhook",
        "--interval",
        "-m",
        "--probe-model",
        "--probe-every",
        "--probe-tokens",
        "--probe-prompt",
        "-t",
        "--threads",
        "--spool-max",
        "--spool-max-notifications",
        "--backoff-max",
        "--timeout",
        "--duration",
};

static int takes_value(const char *a)
{
    for (size_t i = 0; i < sizeof value_opts / sizeof value_opts[0]; i++)
        if (!strcmp(a, value_opts[i])) return 1;
    return 0;
}

/* A flag; 1 when a was one. */
static int flag(bn_monitor_opts *o, const char *a)
{
    if (!strcmp(a, "--no-listen"))
        o->listen = NULL;
    else if (!strcmp(a, "--cloudwatch"))
        o->cloudwatch = 1;
    else if (!strcmp(a, "--datadog"))
        o->datadog = 1;
    else if (!strcmp(a, "--once"))
        o->once = 1;
    else if (!strcmp(a, "--json"))
        o->json = 1;
    else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
        o->quiet = 1;
    else
        return 0;
    return 1;
}

/* An option with a value; 0, or -1 when the value is bad. */
static int option(bn_monitor_opts *o, const char *a, const char *v)
{
    long n;
    if (!strcmp(a, "--listen"))
        o->listen = v;
    else if (!strcmp(a, "--web-config"))
        o->web_config = v;
    else if (!strcmp(a, "--http-timeout"))
        return duration_opt(v, 0.1, &o->http_timeout_s);
    else if (!strcmp(a, "--http-max-per-client")) {
        if (cli_parse_long(v, 1, 4096, &n)) return -1;
        o->http_max_per_client = n;
    } else if (!strcmp(a, "--textfile"))
        o->textfile = v;
    else if (!strcmp(a, "--pushgateway"))
        o->pushgateway = v;
    else if (!strcmp(a, "--cloudwatch-endpoint"))
        o->cw_endpoint = v, o->cloudwatch = 1;
    else if (!strcmp(a, "--region"))
        o->cw_region = v;
    else if (!strcmp(a, "--datadog-endpoint"))
        o->dd_endpoint = v, o->datadog = 1;
    else if (!strcmp(a, "--webhook"))
        o->webhook = v;
    else if (!strcmp(a, "--interval"))
        return duration_opt(v, 0.1, &o->interval_s);
    else if (!strcmp(a, "-m") || !strcmp(a, "--probe-model"))
        o->probe_model = v;
    else if (!strcmp(a, "--probe-every"))
        return duration_opt(v, 0.1, &o->probe_every_s);
    else if (!strcmp(a, "--probe-tokens")) {
        if (cli_parse_long(v, 1, 4096, &n)) return -1;
        o->probe_tokens = n;
    } else if (!strcmp(a, "--probe-prompt"))
        o->probe_prompt = v;
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (cli_parse_long(v, 0, 4096, &n)) return -1;
        o->threads = n;
    } else if (!strcmp(a, "--spool-max")) {
        if (cli_parse_long(v, 1, 100000000, &n)) return -1;
        o->spool_max = n;
    } else if (!strcmp(a, "--spool-max-notifications")) {
        if (cli_parse_long(v, 1, 100000000, &n)) return -1;
        o->spool_max_notifications = n;
    } else if (!strcmp(a, "--backoff-max"))
        return duration_opt(v, 0.1, &o->backoff_max_s);
    else if (!strcmp(a, "--timeout"))
        return duration_opt(v, 0.1, &o->timeout_s);
    else if (!strcmp(a, "--duration"))
        return duration_opt(v, 0.001, &o->duration_s);
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, bn_monitor_opts *o)
{
    const char *C = "monitor";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_monitor_help(stdout);
            return BN_EXIT_OK;
        }
        if (flag(o, a)) continue;
        if (!takes_value(a)) return cli_usage_error(C, "unknown option '%s'", a);
        if (!v) return cli_usage_error(C, "%s needs a value", a);
        if (option(o, a, v)) return cli_usage_error(C, "%s: bad value '%s'", a, v);
        i++;
    }
    if (o->probe_prompt && !*o->probe_prompt)
        return cli_usage_error(C, "--probe-prompt: the prompt is empty");
    return -1;
}

/* SIGHUP: the settings as at the start, from the configuration read again and the same
 * command line. Every configuration loaded is kept until the monitor ends: the running
 * settings point into one of them. */
typedef struct reload_state {
    int argc;
    char **argv;
    bn_config **cfgs;
    size_t n;
} reload_state;

static int reload_opts(void *ud, bn_monitor_opts *o, char *err, size_t errsz)
{
    reload_state *r = ud;
    bn_config *cfg;
    char msg[BN_CONFIG_ERR_MAX];
    bn_config **v = realloc(r->cfgs, (r->n + 1) * sizeof *v);
    if (!v) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    r->cfgs = v;
    if (bn_config_load(&cfg, msg, sizeof msg)) {
        snprintf(err, errsz, "%s", msg);
        return -1;
    }
    r->cfgs[r->n++] = cfg;
    bn_monitor_opts_default(o);
    if (bn_monitor_opts_config(o, cfg, err, errsz)) return -1;
    if (parse_args(r->argc, r->argv, o) >= 0) { /* it took the same line at the start */
        snprintf(err, errsz, "the command line no longer parses");
        return -1;
    }
    o->reload = reload_opts;
    o->reload_ud = r;
    return 0;
}

int cmd_monitor(int argc, char **argv)
{
    bn_monitor_opts o;
    bn_monitor_opts_default(&o);
    reload_state rs = {.argc = argc, .argv = argv};
    o.reload = reload_opts;
    o.reload_ud = &rs;
    bn_config *cfg;
    char err[BN_CONFIG_ERR_MAX];
    for (int i = 1; i < argc; i++) /* --help works without a config */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_monitor_help(stdout);
            return BN_EXIT_OK;
        }
    if (bn_config_load(&cfg, err, sizeof err)) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    int rc = bn_monitor_opts_config(&o, cfg, err, sizeof err) ? BN_EXIT_FAIL : -1;
    if (rc == BN_EXIT_FAIL) cli_error("%s", err);
    if (rc < 0) rc = parse_args(argc, argv, &o);
    if (rc < 0) rc = bn_monitor_main(&o);
    bn_config_free(cfg);
    for (size_t i = 0; i < rs.n; i++) bn_config_free(rs.cfgs[i]);
    free(rs.cfgs);
    return rc;
}
