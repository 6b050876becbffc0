/* config.c - the settings file, its schema, environment overrides and the data
 * directory (see config.h and bitnet-config(5)). */
#include "config.h"

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

#include "alerts.h"

/* ---- the schema ---------------------------------------------------------------------- */

#define MAX_SEED 9007199254740991.0 /* 2^53 - 1: exact in a JSON number */

static const bn_config_key schema[] = {
        {"model", BN_CFG_PATH, "", 0, 0, "default model (GGUF) for the model commands"},
        {"threads", BN_CFG_INT, "0", 0, 4096, "worker threads; 0: one per core"},
        {"ctx", BN_CFG_INT, "0", 0, 1 << 24, "context size in tokens; 0: the command's default"},
        {"temp", BN_CFG_NUMBER, "0.8", 0, 1e6, "sampling temperature; 0: greedy"},
        {"top_k", BN_CFG_INT, "40", 0, 1 << 24, "top-k sampling; 0: off"},
        {"top_p", BN_CFG_NUMBER, "0.95", 0, 1, "top-p (nucleus) sampling; 1: off"},
        {"min_p", BN_CFG_NUMBER, "0.05", 0, 1, "min-p sampling; 0: off"},
        {"repeat_penalty", BN_CFG_NUMBER, "1", 1e-3, 1e3, "repetition penalty; 1: off"},
        {"seed", BN_CFG_INT, "-1", -1, MAX_SEED, "sampling seed; -1: from the clock"},
        {"data_dir", BN_CFG_PATH, NULL, 0, 0, "history and model registry directory"},
        {"history.retention_days", BN_CFG_INT, "90", 0, 36500,
         "days of history kept; 0: keep forever"},
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
};
#define N_KEYS (sizeof schema / sizeof schema[0])

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

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
static int is_section(const char *path)
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
    }
    return "?";
}

const char *bn_config_source_name(bn_config_source s)
{
    return s == BN_CFG_SRC_ENV ? "env" : s == BN_CFG_SRC_FILE ? "file" : "default";
}

/* ---- small helpers --------------------------------------------------------------------- */

static void set_err(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* snprintf that reports truncation: 0 or -1. */
static int fmt_path(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fmt_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h) return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* $VAR/sub when VAR is an absolute path (the XDG rule), else ~/fallback/sub. */
static int xdg_path(char *buf, size_t size, const char *var, const char *fallback, const char *sub)
{
    const char *x = getenv(var);
    if (x && x[0] == '/') return fmt_path(buf, size, "%s/%s", x, sub);
    const char *h = home_dir();
    if (!h) return -1;
    return fmt_path(buf, size, "%s/%s/%s", h, fallback, sub);
}

int bn_config_path(char *buf, size_t size)
{
    const char *p = getenv("BITNET_CONFIG");
    if (p && *p) return fmt_path(buf, size, "%s", p);
    return xdg_path(buf, size, "XDG_CONFIG_HOME", ".config", "bitnet/config.json");
}

/* "~/x" -> $HOME/x; relative -> base/x (base NULL: the current directory). */
static int resolve_path(const char *p, const char *base, char *buf, size_t size)
{
    if (!*p || p[0] == '/') return fmt_path(buf, size, "%s", p);
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
        const char *h = home_dir();
        return h ? fmt_path(buf, size, "%s%s", h, p + 1) : -1;
    }
    if (p[0] == '.' && p[1] == '/') p += 2;
    if (base) return fmt_path(buf, size, "%s/%s", base, p);
    char cwd[BN_CONFIG_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return fmt_path(buf, size, "%s/%s", strcmp(cwd, "/") ? cwd : "", p);
}

int bn_config_resolve_path(const char *p, const char *base, char *buf, size_t size)
{
    return resolve_path(p, base, buf, size);
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
        set_err(err, errsz, "%s:%d:%d: NUL byte in the file", name, l, c);
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
            set_err(err, errsz, "%s:%d:%d: not valid JSON near '%s'", name, l, c, near);
        else
            set_err(err, errsz, "%s:%d:%d: not valid JSON (unexpected end of file)", name, l, c);
        return -1;
    }
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        set_err(err, errsz, "%s: expected a JSON object ({...}) at the top level", name);
        return -1;
    }
    *out = doc;
    return 0;
}

/* ---- checking ------------------------------------------------------------------------ */

int bn_parse_duration(const char *s, double *seconds)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    double total = 0;
    const char *p = s;
    char *end;
    if (!s || !*s) return -1;
    if (strspn(s, "0123456789.") == strlen(s)) { /* a bare number: seconds */
        total = strtod(s, &end);
        if (*end) return -1;
        p = end;
    }
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.') return -1;
        double v = strtod(p, &end);
        if (end == p) return -1;
        p = end;
        size_t u = 0;
        while (u < COUNT(units) && strncmp(p, units[u].name, strlen(units[u].name)) != 0) u++;
        if (u == COUNT(units)) return -1;
        p += strlen(units[u].name);
        total += v * units[u].seconds;
    }
    if (!isfinite(total) || total < 0) return -1;
    *seconds = total;
    return 0;
}

int bn_parse_listen(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (!s) return -1;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
        if (hl == 0) return -1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) return -1; /* v6 needs [] */
        hl = (size_t)(colon - s);
    }
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == '[' || h[i] == ']') return -1;
    const char *ps = colon + 1;
    if (!*ps || strlen(ps) > 5 || strspn(ps, "0123456789") != strlen(ps)) return -1;
    long p = strtol(ps, NULL, 10);
    if (p < 1 || p > 65535 || hl >= hostsz) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int is_env_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

static int is_url(const char *s)
{
    const char *r = NULL;
    if (strncmp(s, "http://", 7) == 0)
        r = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        r = s + 8;
    if (!r || !*r || *r == '/' || *r == ':') return 0;
    for (; *r; r++)
        if ((unsigned char)*r <= 0x20 || *r == 0x7f) return 0;
    return 1;
}

typedef struct checker {
    bn_config_report_fn fn;
    void *ud;
    int flags;
    int errors;
} checker;

static void report(checker *ck, int is_error, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void report(checker *ck, int is_error, const char *key, const char *fmt, ...)
{
    char msg[BN_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (is_error) ck->errors++;
    if (ck->fn) ck->fn(ck->ud, is_error, key, msg);
}

/* The rules, as the monitor parses them (alerts.c): one parser, so that a file that loads
 * never holds rules the monitor refuses. */
static void on_alert_finding(void *ud, int is_error, const char *key, const char *msg)
{
    report(ud, is_error, key, "%s", msg);
}

static void check_alerts(checker *ck, const cJSON *v)
{
    bn_alerts_check(v, on_alert_finding, ck);
}

static void check_value(checker *ck, const bn_config_key *k, const cJSON *v, const char *key)
{
    char host[256];
    int port;
    switch (k->type) {
    case BN_CFG_STRING:
    case BN_CFG_PATH:
        if (!cJSON_IsString(v))
            report(ck, 1, key, "expected a string");
        else if (strlen(v->valuestring) >= BN_CONFIG_PATH_MAX)
            report(ck, 1, key, "longer than %d bytes", BN_CONFIG_PATH_MAX - 1);
        break;
    case BN_CFG_INT:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < k->min || v->valuedouble > k->max)
            report(ck, 1, key, "expected an integer from %.0f to %.0f", k->min, k->max);
        break;
    case BN_CFG_NUMBER:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < k->min ||
            v->valuedouble > k->max)
            report(ck, 1, key, "expected a number from %g to %g", k->min, k->max);
        break;
    case BN_CFG_BOOL:
        if (!cJSON_IsBool(v)) report(ck, 1, key, "expected true or false");
        break;
    case BN_CFG_LISTEN:
        if (!cJSON_IsString(v) || bn_parse_listen(v->valuestring, host, sizeof host, &port))
            report(ck, 1, key, "expected \"HOST:PORT\" with a port from 1 to 65535");
        break;
    case BN_CFG_URL:
        if (!cJSON_IsString(v) || (v->valuestring[0] && !is_url(v->valuestring)))
            report(ck, 1, key, "expected an http:// or https:// URL (or \"\")");
        break;
    case BN_CFG_ENVNAME:
        if (!cJSON_IsString(v) || !is_env_name(v->valuestring))
            report(ck, 1, key, "expected the name of an environment variable");
        break;
    case BN_CFG_ALERTS:
        check_alerts(ck, v);
        break;
    case BN_CFG_DURATION: {
        double d = -1;
        if (cJSON_IsString(v)) {
            if (bn_parse_duration(v->valuestring, &d)) d = -1;
        } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            d = v->valuedouble;
        }
        if (d < k->min)
            report(ck, 1, key, "expected a duration such as \"10s\" or \"1m\", at least %gs",
                   k->min);
        break;
    }
    }
}

static void walk_object(checker *ck, const cJSON *obj, const char *prefix)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        char path[256];
        const char *name = c->string ? c->string : "";
        if (fmt_path(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name)) {
            report(ck, 1, prefix, "key name too long");
            continue;
        }
        int dup = 0;
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (d->string && strcmp(d->string, name) == 0) dup = 1;
        if (dup) {
            report(ck, 1, path, "duplicate key (only the first is used)");
            continue;
        }
        int ki = key_index(path);
        if (ki >= 0)
            check_value(ck, &schema[ki], c, path);
        else if (is_section(path) && cJSON_IsObject(c))
            walk_object(ck, c, path);
        else if (is_section(path))
            report(ck, 1, path, "expected an object (a section of settings)");
        else
            report(ck, ck->flags & BN_CONFIG_CHECK_STRICT ? 1 : 0, path,
                   "unknown key (see bitnet-config(5))");
    }
}

int bn_config_check(const cJSON *doc, int flags, bn_config_report_fn fn, void *ud)
{
    checker ck = {fn, ud, flags, 0};
    if (!cJSON_IsObject(doc)) {
        report(&ck, 1, "", "expected a JSON object at the top level");
        return ck.errors;
    }
    walk_object(&ck, doc, "");
    return ck.errors;
}

void bn_config_keep_first_error(void *ud, int is_error, const char *key, const char *msg)
{
    bn_config_first_error *fe = ud;
    if (!is_error || fe->have) return;
    fe->have = 1;
    if (fe->prefix)
        set_err(fe->buf, fe->size, "%s: %s%s%s", fe->prefix, key, *key ? ": " : "", msg);
    else
        set_err(fe->buf, fe->size, "%s%s%s", key, *key ? ": " : "", msg);
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

int bn_config_value_parse(const bn_config_key *k, const char *text, cJSON **out, char *err,
                          size_t errsz)
{
    cJSON *v = NULL;
    char *end;
    char buf[BN_CONFIG_PATH_MAX];
    *out = NULL;
    switch (k->type) {
    case BN_CFG_INT:
    case BN_CFG_NUMBER: {
        errno = 0;
        double d = k->type == BN_CFG_INT ? (double)strtoll(text, &end, 10) : strtod(text, &end);
        if (!*text || *end || errno || isspace((unsigned char)*text))
            v = cJSON_CreateString(text); /* fails the check below with the right words */
        else
            v = cJSON_CreateNumber(d);
        break;
    }
    case BN_CFG_BOOL: {
        int b;
        v = parse_bool(text, &b) ? cJSON_CreateString(text) : cJSON_CreateBool(b);
        break;
    }
    case BN_CFG_ALERTS: {
        const char *pe = NULL;
        v = cJSON_ParseWithOpts(text, &pe, 1);
        if (!v) {
            set_err(err, errsz, "%s: not valid JSON near byte %ld", k->key,
                    pe ? (long)(pe - text) : 0L);
            return -1;
        }
        break;
    }
    case BN_CFG_PATH:
        if (resolve_path(text, NULL, buf, sizeof buf)) {
            set_err(err, errsz, "%s: path too long", k->key);
            return -1;
        }
        v = cJSON_CreateString(text[0] == '~' ? text : buf);
        break;
    default:
        v = cJSON_CreateString(text);
        break;
    }
    if (!v) {
        set_err(err, errsz, "out of memory");
        return -1;
    }
    bn_config_first_error fe = {err, errsz, NULL, 0};
    checker ck = {bn_config_keep_first_error, &fe, 0, 0};
    check_value(&ck, k, v, k->key);
    if (ck.errors) {
        cJSON_Delete(v);
        return -1;
    }
    *out = v;
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
        set_err(err, errsz, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        set_err(err, errsz, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > BN_CONFIG_FILE_MAX) {
        set_err(err, errsz, "%s: larger than %d bytes", path, BN_CONFIG_FILE_MAX);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        set_err(err, errsz, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            set_err(err, errsz, "%s: read error: %s", path, strerror(errno));
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

static void dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        fmt_path(buf, size, ".");
    else if (slash == path)
        fmt_path(buf, size, "/");
    else
        fmt_path(buf, size, "%.*s", (int)(slash - path), path);
}

static int default_data_dir(char *buf, size_t size)
{
    return xdg_path(buf, size, "XDG_DATA_HOME", ".local/share", "bitnet");
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
            set_err(err, errsz, "%s: %s", env, strchr(buf, ':') ? strchr(buf, ':') + 2 : buf);
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
        if (default_data_dir(buf, sizeof buf)) buf[0] = '\0';
        v = cJSON_CreateString(buf);
        c->src[i] = BN_CFG_SRC_DEFAULT;
    }
    if (!v) goto nomem;
    if (k->type == BN_CFG_PATH && v->valuestring[0] && v->valuestring[0] != '/') {
        char base[BN_CONFIG_PATH_MAX];
        dir_of(c->path, base, sizeof base);
        if (resolve_path(v->valuestring, c->src[i] == BN_CFG_SRC_FILE ? base : NULL, buf,
                         sizeof buf)) {
            cJSON_Delete(v);
            set_err(err, errsz, "%s: %s: path too long", c->path, k->key);
            return -1;
        }
        cJSON_Delete(v);
        if (!(v = cJSON_CreateString(buf))) goto nomem;
    }
    c->vals[i] = v;
    if (set_path(c->eff, k->key, v) == 0) return 0;
    c->vals[i] = NULL;
nomem:
    set_err(err, errsz, "out of memory");
    return -1;
}

int bn_config_load_file(const char *path, int flags, bn_config **out, char *err, size_t errsz)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    bn_config *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path)) || !(c->eff = cJSON_CreateObject())) {
        set_err(err, errsz, "out of memory");
        goto fail;
    }
    int rc = read_file(path, &text, &len, err, errsz);
    if (rc < 0) goto fail;
    if (rc == 1 && (flags & BN_CONFIG_MUST_EXIST)) {
        set_err(err, errsz, "%s: no such file", path);
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
        set_err(err, errsz,
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

/* ---- directories --------------------------------------------------------------------- */

int bn_data_dir(const bn_config *c, char *buf, size_t size)
{
    const char *d = c ? bn_config_get_str(c, "data_dir") : NULL;
    if (d && *d) return fmt_path(buf, size, "%s", d);
    return default_data_dir(buf, size);
}

/* mkdir -p with mode for the directories it creates. */
static int mkdir_p(const char *path, mode_t mode, char *err, size_t errsz)
{
    char buf[BN_CONFIG_PATH_MAX];
    if (fmt_path(buf, sizeof buf, "%s", path)) {
        set_err(err, errsz, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            set_err(err, errsz, "%s: cannot create: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
        set_err(err, errsz, "%s: not a directory", path);
        return -1;
    }
    return 0;
}

int bn_data_dir_ensure(const bn_config *c, char *buf, size_t size, char *err, size_t errsz)
{
    if (bn_data_dir(c, buf, size)) {
        set_err(err, errsz, "cannot name the data directory (set HOME or XDG_DATA_HOME)");
        return -1;
    }
    return mkdir_p(buf, 0700, err, errsz);
}

int bn_bundled_models_dir(char *buf, size_t size)
{
    char exe[BN_CONFIG_PATH_MAX], top[BN_CONFIG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    dir_of(exe, top, sizeof top); /* .../bin or .../build */
    dir_of(top, exe, sizeof exe); /* the prefix or the source tree */
    static const char *const subs[] = {"share/bitnet/models", "assets/models"};
    for (size_t i = 0; i < COUNT(subs); i++) {
        struct stat st;
        if (fmt_path(buf, size, "%s/%s", strcmp(exe, "/") ? exe : "", subs[i]) == 0 &&
            stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
    }
    return -1;
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

static int write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes text to path through a temporary file in the same directory and a rename. */
static int write_atomic(const char *path, const char *text, mode_t mode, char *err, size_t errsz)
{
    char tmp[BN_CONFIG_PATH_MAX], dir[BN_CONFIG_PATH_MAX];
    if (fmt_path(tmp, sizeof tmp, "%s.XXXXXX", path)) {
        set_err(err, errsz, "%s: path too long", path);
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errsz, "%s: cannot create a temporary file: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) || write_all(fd, text, strlen(text)) || fsync(fd)) {
        set_err(err, errsz, "%s: write error: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) || rename(tmp, path)) {
        set_err(err, errsz, "%s: cannot replace: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    dir_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int bn_config_write_key(const char *path, const char *key, const cJSON *value, int *changed,
                        char *err, size_t errsz)
{
    char real[PATH_MAX], dir[BN_CONFIG_PATH_MAX];
    char *text = NULL, *out = NULL;
    size_t len;
    cJSON *doc = NULL;
    int ret = -1;
    mode_t mode = 0600;
    struct stat st;
    if (changed) *changed = 0;
    /* write through a symlink to its target (dotfile managers link config files) */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real)) path = real;
    if (stat(path, &st) == 0) mode = st.st_mode & 07777;
    int rc = read_file(path, &text, &len, err, errsz);
    if (rc < 0) return -1;
    if (rc == 0 && bn_config_parse(text, len, path, &doc, err, errsz)) goto done;
    if (rc == 1 && !(doc = cJSON_CreateObject())) goto nomem;
    if (value) {
        cJSON *v = cJSON_Duplicate(value, 1);
        if (!v) goto nomem;
        if (set_path(doc, key, v)) {
            set_err(err, errsz, "%s: cannot set %s: a section on its path is not an object", path,
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
    dir_of(path, dir, sizeof dir);
    if (mkdir_p(dir, 0700, err, errsz)) goto done;
    ret = write_atomic(path, out, mode, err, errsz);
    goto done;
nomem:
    set_err(err, errsz, "out of memory");
done:
    free(text);
    free(out);
    cJSON_Delete(doc);
    return ret;
}
