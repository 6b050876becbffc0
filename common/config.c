/* config.c - the settings file: its schema, loading it with environment overrides and
 * defaults, the getters, and writing one key (see config.h and bitnet-config(5)). Checking a
 * document and parsing values is config_check.c; paths and the data directory config_paths.c. */
#include "common/config.h"
#include "config_internal.h"

#include "bitnet/file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the schema ---------------------------------------------------------------------- */

#define MAX_SEED 9007199254740991.0 /* 2^53 - 1: exact in a JSON number */

/* The five keys of a tier of the platform (bitnet tenants; bitnet-config(5)): its price and its
 * limits per tenant; 0 in a limit: none. */
// clang-format off
#define TIER_KEYS(t, T, price, rpm, tpm, streams, monthly)                                        \
    {"tiers." t ".price_usd", BN_CFG_NUMBER, price, 0, 1e9, T " tier: price per month (USD)"},    \
    {"tiers." t ".requests_per_min", BN_CFG_INT, rpm, 0, 1e9,                                     \
     T " tier: requests per minute per tenant; 0: no limit"},                                     \
    {"tiers." t ".tokens_per_min", BN_CFG_INT, tpm, 0, 1e12,                                      \
     T " tier: tokens per minute per tenant; 0: no limit"},                                       \
    {"tiers." t ".concurrent_streams", BN_CFG_INT, streams, 0, 1e6,                               \
     T " tier: requests a tenant runs at once; 0: no limit"},                                     \
    {"tiers." t ".monthly_tokens", BN_CFG_INT, monthly, 0, 1e15,                                  \
     T " tier: tokens per calendar month (quota); 0: no quota"}
// clang-format on

static const bn_config_key schema[] = {
        {"model", BN_CFG_PATH, "", 0, 0, "default model (GGUF) for the model commands"},
        {"threads", BN_CFG_INT, "0", 0, 4096, "worker threads; 0: one per core"},
        {"ctx", BN_CFG_INT, "0", 0, 1 << 24, "context size in tokens; 0: the command's default"},
        {"gpu_layers", BN_CFG_INT, "0", 0, 1 << 20,
         "layers on the GPU (-ngl): the last N, the LM head too past the model's layers; 0: none"},
        {"temp", BN_CFG_NUMBER, "0.8", 0, 1e6, "sampling temperature; 0: greedy"},
        {"top_k", BN_CFG_INT, "40", 0, 1 << 24, "top-k sampling; 0: off"},
        {"top_p", BN_CFG_NUMBER, "0.95", 0, 1, "top-p (nucleus) sampling; 1: off"},
        {"min_p", BN_CFG_NUMBER, "0.05", 0, 1, "min-p sampling; 0: off"},
        {"repeat_penalty", BN_CFG_NUMBER, "1", 1e-3, 1e3, "repetition penalty; 1: off"},
        {"seed", BN_CFG_INT, "-1", -1, MAX_SEED, "sampling seed; -1: from the clock"},
        {"data_dir", BN_CFG_PATH, NULL, 0, 0, "history and model registry directory"},
        {"history.retention_days", BN_CFG_INT, "90", 0, 36500,
         "days of history kept; 0: keep forever"},
        {"retention.ledger_days", BN_CFG_INT, "400", 0, 36500,
         "days the usage ledger keeps one row per request (older days: totals per tenant, day "
         "and model); 0: forever"},
        {"retention.keys_days", BN_CFG_INT, "90", 0, 36500,
         "days a revoked or expired API key is kept; 0: forever"},
        {"monitor.listen", BN_CFG_LISTEN, "127.0.0.1:9464", 0, 0,
         "address of the metrics endpoint (HOST:PORT)"},
        {"monitor.interval", BN_CFG_DURATION, "10s", 0.1, 0,
         "how often bitnet monitor collects and sends metrics"},
        {"monitor.spool_max", BN_CFG_INT, "10000", 1, 100000000,
         "entries the monitor's spool keeps for a sink that is down (oldest dropped first)"},
        {"monitor.spool_max_notifications", BN_CFG_INT, "1000", 1, 100000000,
         "alert notifications the monitor's spool keeps (a bound of their own)"},
        {"monitor.web_config", BN_CFG_PATH, "", 0, 0,
         "web config (TLS, basic auth) of the metrics endpoint, as exporter-toolkit's; empty: "
         "plain HTTP"},
        {"monitor.http_timeout", BN_CFG_DURATION, "10s", 0.1, 0,
         "time a client of the metrics endpoint has to send a request or take the answer"},
        {"monitor.http_max_per_client", BN_CFG_INT, "16", 1, 4096,
         "connections to the metrics endpoint from one address at once"},
        {"alerts", BN_CFG_ALERTS, "[]", 0, 0, "alert rules"},
        {"exporters.prometheus.pushgateway", BN_CFG_URL, "", 0, 0,
         "Prometheus Pushgateway URL; empty: off"},
        {"exporters.prometheus.textfile", BN_CFG_PATH, "", 0, 0,
         "file for node_exporter's textfile collector; empty: off"},
        {"exporters.cloudwatch.enabled", BN_CFG_BOOL, "false", 0, 0, "send metrics to CloudWatch"},
        {"exporters.cloudwatch.region", BN_CFG_STRING, "", 0, 0,
         "AWS region; empty: $AWS_REGION or $AWS_DEFAULT_REGION"},
        {"exporters.cloudwatch.namespace", BN_CFG_STRING, "BitNet", 0, 0,
         "CloudWatch metric namespace"},
        {"exporters.cloudwatch.endpoint", BN_CFG_URL, "", 0, 0,
         "endpoint URL; empty: the region's"},
        {"exporters.webhook.url", BN_CFG_URL, "", 0, 0,
         "URL that alert notifications are POSTed to as JSON; empty: off"},
        {"exporters.datadog.enabled", BN_CFG_BOOL, "false", 0, 0, "send metrics to Datadog"},
        {"exporters.datadog.site", BN_CFG_STRING, "datadoghq.com", 0, 0, "Datadog site"},
        {"exporters.datadog.api_key_env", BN_CFG_ENVNAME, "DD_API_KEY", 0, 0,
         "environment variable holding the API key"},
        {"tui.server", BN_CFG_URL, "", 0, 0,
         "a bitnet serve the TUI's Server screen watches from the start; empty: none"},
        {"billing.event_name", BN_CFG_STRING, "", 0, 0,
         "the event name of the Stripe meter that usage is sent to; empty: billing off"},
        {"billing.endpoint", BN_CFG_URL, "https://api.stripe.com", 0, 0,
         "the Stripe API the meter events are POSTed to (/v1/billing/meter_events)"},
        {"billing.key_env", BN_CFG_ENVNAME, "STRIPE_SECRET_KEY", 0, 0,
         "environment variable holding the Stripe secret key"},
        {"billing.timeout", BN_CFG_DURATION, "10s", 0.1, 0,
         "time one meter event request may take"},
        {"billing.backoff_max", BN_CFG_DURATION, "5m", 0.1, 0,
         "longest wait between tries while the billing endpoint fails"},
        {"billing.interval", BN_CFG_DURATION, "10s", 0.1, 0,
         "how often the billing sender looks for due meter events when nothing wakes it"},
        {"billing.api", BN_CFG_STRING, "meter_events", 0, 0,
         "meter_events: one POST an event (API v1); stream: up to 100 events a POST to the "
         "meter event stream (API v2, validated by Stripe later)"},
        {"billing.stream_endpoint", BN_CFG_URL, "https://meter-events.stripe.com", 0, 0,
         "the Stripe host of the meter event stream (/v2/billing/meter_event_stream)"},
        {"billing.stripe_version", BN_CFG_STRING, "2026-03-25.dahlia", 0, 0,
         "the Stripe-Version header of the API v2 calls (billing.api stream)"},
        {"tui.graph", BN_CFG_STRING, "braille", 0, 0,
         "the TUI's graph style: braille, block or ascii (g in the TUI)"},
        {"tui.theme", BN_CFG_STRING, "default", 0, 0,
         "the TUI's colours: default (dark background), light or mono (O in the TUI)"},
        {"tui.graph_window", BN_CFG_DURATION, "60s", 10, 3600,
         "the time the TUI's graphs show, 10s to 1h (w in the TUI)"},
        {"tui.refresh", BN_CFG_DURATION, "1s", 0.2, 60,
         "how often the TUI samples CPU, memory, disks, network and GPUs, 0.2s to 60s ([ ] in "
         "the TUI)"},
        {"tui.bench.pp", BN_CFG_INT, "128", 0, 4096, "the TUI's benchmark: prompt tokens"},
        {"tui.bench.tg", BN_CFG_INT, "32", 0, 2048, "the TUI's benchmark: generated tokens"},
        {"tui.bench.reps", BN_CFG_INT, "3", 1, 10, "the TUI's benchmark: runs"},
        TIER_KEYS("developer", "Developer", "99", "60", "40000", "2", "10000000"),
        TIER_KEYS("team", "Team", "499", "600", "400000", "10", "100000000"),
        TIER_KEYS("business", "Business", "2999", "3000", "2000000", "50", "1000000000"),
        {"database", BN_CFG_STRING, "", 0, 0,
         "the platform's store (tenants, keys, usage ledger, billing outbox, audit log) on "
         "PostgreSQL: a postgresql:// URL (the password in PGPASSWORD or ~/.pgpass); empty: the "
         "history"},
        {"tenants", BN_CFG_TENANTS, "{}", 0, 0,
         "per-tenant overrides of their tier's price and limits (common/tiers.h)"},
};
#define N_KEYS (sizeof schema / sizeof schema[0])

struct bn_config {
    char *path;
    int exists;
    cJSON *file;         /* as parsed */
    cJSON *eff;          /* effective values, nested */
    cJSON *vals[N_KEYS]; /* into eff */
    bn_config_source src[N_KEYS];
};

const bn_config_key *bn_config_keys(size_t *n)
{
    if (n) *n = N_KEYS;
    return schema;
}

static int key_index(const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (key && strcmp(schema[i].key, key) == 0) return (int)i;
    return -1;
}

const bn_config_key *bn_config_find_key(const char *key)
{
    int i = key_index(key);
    return i < 0 ? NULL : &schema[i];
}

/* Is path a section: a proper prefix of some key, ending at a '.'? */
int bn__config_is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(schema[i].key, path, n) == 0 && schema[i].key[n] == '.') return 1;
    return 0;
}

const char *bn_config_type_name(bn_config_type t)
{
    switch (t) {
    case BN_CFG_STRING:
        return "string";
    case BN_CFG_PATH:
        return "path";
    case BN_CFG_INT:
        return "integer";
    case BN_CFG_NUMBER:
        return "number";
    case BN_CFG_BOOL:
        return "boolean";
    case BN_CFG_LISTEN:
        return "address";
    case BN_CFG_URL:
        return "url";
    case BN_CFG_ENVNAME:
        return "env-name";
    case BN_CFG_ALERTS:
        return "alerts";
    case BN_CFG_DURATION:
        return "duration";
    case BN_CFG_TENANTS:
        return "tenants";
    }
    return "?";
}

const char *bn_config_source_name(bn_config_source s)
{
    return s == BN_CFG_SRC_ENV ? "env" : s == BN_CFG_SRC_FILE ? "file" : "default";
}

/* ---- small helpers --------------------------------------------------------------------- */

void bn__config_set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ---- parsing ------------------------------------------------------------------------- */

void bn_config_linecol(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) { /* not a UTF-8 continuation byte */
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* A short, printable excerpt of the text at p (for "near '...'"). */
static void excerpt(const char *p, const char *end, char *buf, size_t size)
{
    size_t n = 0;
    while (p < end && *p && *p != '\n' && n + 1 < size && n < 16) {
        unsigned char ch = (unsigned char)*p++;
        buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    buf[n] = '\0';
}

int bn_config_parse(const char *text, size_t len, const char *name, cJSON **out, char *err,
                    size_t errsz)
{
    *out = NULL;
    if (memchr(text, '\0', len)) {
        size_t off = (size_t)((const char *)memchr(text, '\0', len) - text);
        int l, c;
        bn_config_linecol(text, len, off, &l, &c);
        bn__config_set_err(err, errsz, "%s:%d:%d: NUL byte in the file", name, l, c);
        return -1;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (doc) { /* only white space may follow */
        while (end < text + len && isspace((unsigned char)*end)) end++;
        if (end < text + len) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    if (!doc) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        int l, c;
        bn_config_linecol(text, len, off, &l, &c);
        char near[24];
        excerpt(text + off, text + len, near, sizeof near);
        if (near[0])
            bn__config_set_err(err, errsz, "%s:%d:%d: not valid JSON near '%s'", name, l, c, near);
        else
            bn__config_set_err(err, errsz, "%s:%d:%d: not valid JSON (unexpected end of file)",
                               name, l, c);
        return -1;
    }
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        bn__config_set_err(err, errsz, "%s: expected a JSON object ({...}) at the top level", name);
        return -1;
    }
    *out = doc;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------- */

/* Reads a whole regular file (at most BN_CONFIG_FILE_MAX bytes). 0; 1 when it does not
 * exist; -1 with err. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errsz)
{
    *text = NULL;
    /* O_NONBLOCK: a FIFO is refused below (not a regular file) instead of waited on */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return 1;
        bn__config_set_err(err, errsz, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        bn__config_set_err(err, errsz, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > BN_CONFIG_FILE_MAX) {
        bn__config_set_err(err, errsz, "%s: larger than %d bytes", path, BN_CONFIG_FILE_MAX);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        bn__config_set_err(err, errsz, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            bn__config_set_err(err, errsz, "%s: read error: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0 || (n += (size_t)r) == cap - 1) break;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The item at a dotted path of nested objects, or NULL. */
static cJSON *get_path(const cJSON *obj, const char *key)
{
    char part[128];
    const char *p = key;
    cJSON *cur = (cJSON *)obj;
    while (cur && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part || !cJSON_IsObject(cur)) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        p += n;
        if (*p == '.') p++;
    }
    return cur;
}

/* Puts v (taken over) at a dotted path, creating or replacing sections as needed. */
static int set_path(cJSON *obj, const char *key, cJSON *v)
{
    char part[128];
    const char *p = key;
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part) break;
        memcpy(part, p, n);
        part[n] = '\0';
        if (p[n] == '\0') {
            cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, part);
            if (old ? cJSON_ReplaceItemInObjectCaseSensitive(obj, part, v)
                    : cJSON_AddItemToObject(obj, part, v))
                return 0;
            break;
        }
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, part);
        if (next && !cJSON_IsObject(next)) break;
        if (!next) {
            next = cJSON_AddObjectToObject(obj, part);
            if (!next) break;
        }
        obj = next;
        p += n + 1;
    }
    cJSON_Delete(v);
    return -1;
}

/* The effective value of key i: environment, file or default. */
static int effective_value(bn_config *c, size_t i, int flags, char *err, size_t errsz)
{
    const bn_config_key *k = &schema[i];
    char env[128], buf[BN_CONFIG_PATH_MAX];
    const char *ev = NULL;
    cJSON *v = NULL;
    if (!(flags & BN_CONFIG_NO_ENV) && bn_config_env_name(k->key, env, sizeof env) == 0)
        ev = getenv(env);
    if (ev && *ev) {
        if (bn_config_value_parse(k, ev, &v, buf, sizeof buf)) {
            bn__config_set_err(err, errsz, "%s: %s", env,
                               strchr(buf, ':') ? strchr(buf, ':') + 2 : buf);
            return -1;
        }
        c->src[i] = BN_CFG_SRC_ENV;
    } else if ((v = get_path(c->file, k->key)) != NULL) {
        v = cJSON_Duplicate(v, 1);
        c->src[i] = BN_CFG_SRC_FILE;
    } else if (k->def) {
        if (bn_config_value_parse(k, k->def, &v, err, errsz)) return -1;
        c->src[i] = BN_CFG_SRC_DEFAULT;
    } else {
        if (bn_data_dir(NULL, buf, sizeof buf)) buf[0] = '\0';
        v = cJSON_CreateString(buf);
        c->src[i] = BN_CFG_SRC_DEFAULT;
    }
    if (!v) goto nomem;
    if (k->type == BN_CFG_PATH && v->valuestring[0] && v->valuestring[0] != '/') {
        char base[BN_CONFIG_PATH_MAX];
        bn__config_dir_of(c->path, base, sizeof base);
        if (bn_config_resolve_path(v->valuestring, c->src[i] == BN_CFG_SRC_FILE ? base : NULL, buf,
                                   sizeof buf)) {
            cJSON_Delete(v);
            bn__config_set_err(err, errsz, "%s: %s: path too long", c->path, k->key);
            return -1;
        }
        cJSON_Delete(v);
        if (!(v = cJSON_CreateString(buf))) goto nomem;
    }
    c->vals[i] = v;
    if (set_path(c->eff, k->key, v) == 0) return 0;
    c->vals[i] = NULL;
nomem:
    bn__config_set_err(err, errsz, "out of memory");
    return -1;
}

int bn_config_load_file(const char *path, int flags, bn_config **out, char *err, size_t errsz)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    bn_config *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path)) || !(c->eff = cJSON_CreateObject())) {
        bn__config_set_err(err, errsz, "out of memory");
        goto fail;
    }
    int rc = read_file(path, &text, &len, err, errsz);
    if (rc < 0) goto fail;
    if (rc == 1 && (flags & BN_CONFIG_MUST_EXIST)) {
        bn__config_set_err(err, errsz, "%s: no such file", path);
        goto fail;
    }
    if (rc == 1) {
        c->file = cJSON_CreateObject();
        if (!c->file) goto fail;
    } else {
        c->exists = 1;
        if (bn_config_parse(text, len, path, &c->file, err, errsz)) goto fail;
        bn_config_first_error fe = {err, errsz, path, 0};
        if (bn_config_check(c->file, 0, bn_config_keep_first_error, &fe)) goto fail;
    }
    for (size_t i = 0; i < N_KEYS; i++)
        if (effective_value(c, i, flags, err, errsz)) goto fail;
    free(text);
    *out = c;
    return 0;
fail:
    free(text);
    bn_config_free(c);
    return -1;
}

int bn_config_load(bn_config **out, char *err, size_t errsz)
{
    char path[BN_CONFIG_PATH_MAX];
    *out = NULL;
    if (bn_config_path(path, sizeof path)) {
        bn__config_set_err(err, errsz,
                           "cannot name the config file: no home directory (set HOME or "
                           "XDG_CONFIG_HOME)");
        return -1;
    }
    return bn_config_load_file(path, 0, out, err, errsz);
}

void bn_config_free(bn_config *c)
{
    if (!c) return;
    free(c->path);
    cJSON_Delete(c->file);
    cJSON_Delete(c->eff);
    free(c);
}

const char *bn_config_file(const bn_config *c)
{
    return c->path;
}

int bn_config_file_exists(const bn_config *c)
{
    return c->exists;
}

const cJSON *bn_config_file_doc(const bn_config *c)
{
    return c->file;
}

/* ---- getters ------------------------------------------------------------------------- */

static const cJSON *value_of(const bn_config *c, const char *key)
{
    int i = key_index(key);
    return i < 0 ? NULL : c->vals[i];
}

const char *bn_config_get_str(const bn_config *c, const char *key)
{
    const cJSON *v = value_of(c, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long bn_config_get_int(const bn_config *c, const char *key)
{
    const cJSON *v = value_of(c, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

double bn_config_get_duration(const bn_config *c, const char *key)
{
    const cJSON *v = value_of(c, key);
    double d = 0;
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsString(v) && bn_parse_duration(v->valuestring, &d) == 0) return d;
    return 0;
}

double bn_config_get_double(const bn_config *c, const char *key)
{
    const cJSON *v = value_of(c, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

int bn_config_get_bool(const bn_config *c, const char *key)
{
    return cJSON_IsTrue(value_of(c, key));
}

const cJSON *bn_config_get_json(const bn_config *c, const char *key)
{
    return get_path(c->eff, key);
}

const cJSON *bn_config_effective(const bn_config *c)
{
    return c->eff;
}

bn_config_source bn_config_source_of(const bn_config *c, const char *key)
{
    int i = key_index(key);
    return i < 0 ? BN_CFG_SRC_DEFAULT : c->src[i];
}

int bn_config_env_name(const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    if (7 + n + 1 > size) return -1;
    memcpy(buf, "BITNET_", 7);
    for (size_t i = 0; i < n; i++)
        buf[7 + i] = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
    buf[7 + n] = '\0';
    return 0;
}

/* ---- writing ------------------------------------------------------------------------- */

/* Removes key; then drops the sections it leaves empty. Returns 1 if removed. */
static int remove_path(cJSON *obj, const char *key)
{
    const char *dot = strchr(key, '.');
    if (!dot) {
        cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(obj, key);
        cJSON_Delete(it);
        return it != NULL;
    }
    char part[128];
    size_t n = (size_t)(dot - key);
    if (n >= sizeof part) return 0;
    memcpy(part, key, n);
    part[n] = '\0';
    cJSON *sub = cJSON_GetObjectItemCaseSensitive(obj, part);
    if (!cJSON_IsObject(sub) || !remove_path(sub, dot + 1)) return 0;
    if (!sub->child) cJSON_Delete(cJSON_DetachItemViaPointer(obj, sub));
    return 1;
}

int bn_config_write_key(const char *path, const char *key, const cJSON *value, int *changed,
                        char *err, size_t errsz)
{
    char real[PATH_MAX], dir[BN_CONFIG_PATH_MAX];
    char *text = NULL, *out = NULL;
    size_t len;
    cJSON *doc = NULL;
    int ret = -1;
    struct stat st;
    if (changed) *changed = 0;
    /* write through a symlink to its target (dotfile managers link config files) */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real)) path = real;
    int rc = read_file(path, &text, &len, err, errsz);
    if (rc < 0) return -1;
    if (rc == 0 && bn_config_parse(text, len, path, &doc, err, errsz)) goto done;
    if (rc == 1 && !(doc = cJSON_CreateObject())) goto nomem;
    if (value) {
        cJSON *v = cJSON_Duplicate(value, 1);
        if (!v) goto nomem;
        if (set_path(doc, key, v)) {
            bn__config_set_err(err, errsz,
                               "%s: cannot set %s: a section on its path is not an object", path,
                               key);
            goto done;
        }
        if (changed) *changed = 1;
    } else {
        int removed = remove_path(doc, key);
        if (changed) *changed = removed;
        if (!removed) {
            ret = 0;
            goto done;
        }
    }
    if (!(out = cJSON_Print(doc))) goto nomem;
    size_t olen = strlen(out);
    char *withnl = realloc(out, olen + 2);
    if (!withnl) goto nomem;
    out = withnl;
    memcpy(out + olen, "\n", 2);
    bn__config_dir_of(path, dir, sizeof dir);
    if (bn__config_mkdir_p(dir, 0700, err, errsz)) goto done;
    /* temporary + rename (bitnet/file.h): a new file is 0600, a replaced one keeps its mode */
    if (bn_file_write_atomic(path, out, strlen(out), 0600, err, errsz) == BN_OK) ret = 0;
    goto done;
nomem:
    bn__config_set_err(err, errsz, "out of memory");
done:
    free(text);
    free(out);
    cJSON_Delete(doc);
    return ret;
}
