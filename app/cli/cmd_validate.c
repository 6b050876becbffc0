/* cmd_validate.c - `bitnet validate [CONFIG]`: deployment validation of a config file for
 * CI pipelines. Beyond the schema (JSON syntax, known keys, types, alert rules) it checks
 * what a deployment needs: the model is a readable GGUF, the data directory is usable,
 * the listen address can be bound, and whatever the monitor checks when it starts
 * (bn_monitor_check: the same function, so validate never passes what the monitor refuses).
 * Every finding names its key; any error makes the exit status 1. */
#include "commands.h"
#include "common/config.h"
#include "monitor/monitor.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/file.h"
#include "bitnet/db_pg.h"
#include "bitnet/db_tenants.h"
#include "bitnet/gguf.h"
#include "common/history.h"

#define MAX_FINDINGS 256

typedef struct finding {
    int is_error;
    int line, col; /* JSON syntax errors only; 0 otherwise */
    char key[96];
    char msg[BN_CONFIG_ERR_MAX];
} finding;

typedef struct findings {
    finding f[MAX_FINDINGS];
    int n, errors, warnings, dropped;
} findings;

static void on_finding(void *ud, int is_error, const char *key, const char *msg)
{
    findings *fs = ud;
    if (is_error)
        fs->errors++;
    else
        fs->warnings++;
    if (fs->n == MAX_FINDINGS) {
        fs->dropped++;
        return;
    }
    finding *f = &fs->f[fs->n++];
    f->is_error = is_error;
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
}

static void note(findings *fs, int is_error, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void note(findings *fs, int is_error, const char *key, const char *fmt, ...)
{
    char msg[BN_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    on_finding(fs, is_error, key, msg);
}

void cmd_validate_help(FILE *out)
{
    fprintf(out, "Usage: bitnet validate [CONFIG] [--json] [--database URL]\n\n"
                 "Validates a config file (default: the user's) for deployment, for CI\n"
                 "pipelines: JSON syntax (line:column), known keys and their types, alert rules\n"
                 "(as the monitor parses them), the model file (exists, readable GGUF), the\n"
                 "data directory (usable), monitor.listen (the port can be bound now); then\n"
                 "everything `bitnet monitor` checks when it starts, by the monitor's own code:\n"
                 "the textfile's folder, the exporters' URLs, CloudWatch's region and\n"
                 "credentials (fetched through the AWS chain: environment, shared files, web\n"
                 "identity, container, instance metadata), Datadog's API key (api_key_env,\n"
                 "DD_API_KEY by default), the endpoint's web config (monitor.web_config, the\n"
                 "file of `bitnet monitor --web-config`: its TLS certificate and key, its\n"
                 "basic-auth users, no unknown key). A tenants entry naming no tenant of\n"
                 "the platform's store is a warning: the PostgreSQL store of --database URL,\n"
                 "else of the file's database key (a postgresql:// URL, else an error), else\n"
                 "the history (bitnet history path); a PostgreSQL store that cannot be read\n"
                 "is a warning on database.\n"
                 "BITNET_* overrides are not applied: the file is what is validated.\n\n"
                 "Exit status: 0 valid (warnings allowed), 1 an error was found, 2 usage error.\n");
}

/* ---- the deployment checks, each on the raw value of a key that passed its type ---- */

static const cJSON *raw(const cJSON *doc, const char *key, int want_string)
{
    const cJSON *v = doc;
    char part[64];
    for (const char *p = key; v && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof part || !cJSON_IsObject(v)) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        v = cJSON_GetObjectItemCaseSensitive(v, part);
        p += n + (p[n] == '.');
    }
    if (want_string) return cJSON_IsString(v) ? v : NULL;
    return v;
}

static void check_model(findings *fs, const cJSON *doc, const char *base)
{
    const cJSON *v = raw(doc, "model", 1);
    char path[BN_CONFIG_PATH_MAX];
    if (!v || !v->valuestring[0]) {
        if (!raw(doc, "model", 0))
            note(fs, 0, "model", "not set: every model command will need -m FILE");
        return;
    }
    if (bn_config_resolve_path(v->valuestring, base, path, sizeof path)) {
        note(fs, 1, "model", "path too long");
        return;
    }
    if (access(path, R_OK) != 0) {
        note(fs, 1, "model", "%s: %s", path, strerror(errno));
        return;
    }
    bn_ctx *ctx = NULL;
    bn_ctx_params p = {1};
    bn_gguf *g = NULL;
    if (bn_ctx_new(&ctx, &p) != BN_OK) {
        note(fs, 1, "model", "out of memory");
        return;
    }
    const char *arch = NULL;
    if (bn_gguf_open(ctx, path, &g) != BN_OK)
        note(fs, 1, "model", "%s: not a readable GGUF model: %s", path, bn_ctx_errmsg(ctx));
    else if (bn_gguf_get_str(g, "general.architecture", &arch) != BN_OK)
        note(fs, 1, "model", "%s: no general.architecture: not a model file", path);
    else if (strcmp(arch, "bitnet-b1.58") && strcmp(arch, "bitnet"))
        note(fs, 1, "model",
             "%s: architecture '%s' is not one bitnet runs (bitnet-b1.58, "
             "bitnet)",
             path, arch);
    bn_gguf_close(g);
    bn_ctx_free(ctx);
}

/* A directory that exists and is writable, or can be created. */
static void check_dir_usable(findings *fs, const char *key, const char *dir)
{
    struct stat st;
    char anc[BN_CONFIG_PATH_MAX];
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            note(fs, 1, key, "%s is not a directory", dir);
        else if (access(dir, W_OK | X_OK) != 0)
            note(fs, 1, key, "%s is not writable", dir);
        return;
    }
    snprintf(anc, sizeof anc, "%s", dir);
    for (;;) {
        char *slash = strrchr(anc, '/');
        if (!slash) break;
        *(slash == anc ? slash + 1 : slash) = '\0';
        if (stat(anc, &st) == 0) break;
        if (slash == anc) break;
    }
    if (stat(anc, &st) != 0 || !S_ISDIR(st.st_mode) || access(anc, W_OK | X_OK) != 0)
        note(fs, 1, key, "%s does not exist and cannot be created (%s is not writable)", dir, anc);
}

static void check_data_dir(findings *fs, const cJSON *doc, const char *base)
{
    const cJSON *v = raw(doc, "data_dir", 1);
    char dir[BN_CONFIG_PATH_MAX];
    if (!v || !v->valuestring[0]) return;
    if (bn_config_resolve_path(v->valuestring, base, dir, sizeof dir))
        note(fs, 1, "data_dir", "path too long");
    else
        check_dir_usable(fs, "data_dir", dir);
}

/* Binds a TCP socket to the address as the metrics endpoint would. */
static void check_listen(findings *fs, const cJSON *doc)
{
    const char *key = "monitor.listen";
    const cJSON *v = raw(doc, key, 1);
    char host[256], port_s[8];
    int port;
    if (!v || bn_parse_listen(v->valuestring, host, sizeof host, &port)) return;
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &ai);
    if (rc != 0) {
        note(fs, 1, key, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0) {
        note(fs, 1, key, "socket: %s", strerror(errno));
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0) {
            int e = errno;
            if (e == EADDRINUSE)
                note(fs, 1, key, "port %d on '%s' is in use by another program", port, host);
            else if (e == EACCES)
                note(fs, 1, key,
                     "port %d: permission denied (ports below 1024 need "
                     "privileges)",
                     port);
            else if (e == EADDRNOTAVAIL)
                note(fs, 1, key, "'%s' is not an address of this machine", host);
            else
                note(fs, 1, key, "cannot bind %s: %s", v->valuestring, strerror(e));
        }
        close(fd);
    }
    freeaddrinfo(ai);
}

/* What `bitnet monitor` checks when it starts (alert rules, the textfile's folder, the sinks
 * and their credentials), by the monitor's own function. Not when the file
 * does not load: the monitor refuses it too, and the schema's findings say why. */
static void check_monitor(findings *fs, const char *path)
{
    bn_config *cfg;
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load_file(path, BN_CONFIG_NO_ENV | BN_CONFIG_MUST_EXIST, &cfg, err, sizeof err))
        return;
    bn_monitor_opts o;
    bn_monitor_opts_default(&o);
    /* its one failure is naming the history, which the check does not use */
    (void)bn_monitor_opts_config(&o, cfg, err, sizeof err);
    bn_monitor_check(&o, on_finding, fs);
    bn_config_free(cfg);
}

static void check_threads(findings *fs, const cJSON *doc)
{
    const cJSON *v = raw(doc, "threads", 0);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (cJSON_IsNumber(v) && online > 0 && v->valuedouble > (double)online)
        note(fs, 0, "threads",
             "%.0f threads on %ld CPUs: more threads than CPUs slow "
             "generation down",
             v->valuedouble, online);
}

/* ---- the command --------------------------------------------------------------------- */

/* The PostgreSQL URL of the platform's store: --database (checked by the caller), else the
 * file's database key (an error unless a postgresql:// URL); NULL: the history. */
static const char *check_database(findings *fs, const cJSON *doc, const char *flag)
{
    const cJSON *v = raw(doc, "database", 1);
    if (flag) return flag;
    if (!v || !*v->valuestring) return NULL;
    if (bn_pg_url_ok(v->valuestring)) return v->valuestring;
    note(fs, 1, "database", "not a PostgreSQL URL (postgresql://...)");
    return NULL;
}

/* Entries of the tenants object that name no tenant of the platform's store: the PostgreSQL
 * store at url, else the history (when it exists); warnings, for a misspelt name gives no one
 * its limits. A PostgreSQL store that cannot be read is a warning on database. */
static void check_tenants(findings *fs, const cJSON *doc, const char *url)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(doc, "tenants");
    char file[BN_CONFIG_PATH_MAX + 16], err[512], key[160];
    struct stat st;
    bn_db *db = NULL;
    if (!cJSON_IsObject(ts) || !ts->child) return;
    if (url) {
        if (cm_store_open_url(&db, url, err, sizeof err)) {
            note(fs, 0, "database", "tenants not checked: %s", err);
            return;
        }
        snprintf(file, sizeof file, "the PostgreSQL store");
    } else if (cm_history_path(file, sizeof file, NULL, err, sizeof err) || stat(file, &st) != 0 ||
               cm_history_open(&db, NULL, 0, err, sizeof err)) {
        return;
    }
    for (const cJSON *t = ts->child; t; t = t->next) {
        bn_tenant tn;
        if (!bn_tenant_name_ok(t->string) ||
            bn_db_tenant_get(db, t->string, &tn) != BN_ERR_NOT_FOUND)
            continue;
        snprintf(key, sizeof key, "tenants.%.140s", t->string);
        note(fs, 0, key, "no tenant '%s' in %s: these limits apply to no one until it is added",
             t->string, file);
    }
    bn_db_close(db);
}

static void validate(const char *path, const char *database, findings *fs)
{
    char err[BN_CONFIG_ERR_MAX], base[BN_CONFIG_PATH_MAX];
    /* syntax and schema first: a file that does not parse has nothing else to check */
    FILE *f = bn_file_fopen_read(path, err, sizeof err); /* a FIFO: refused, not waited on */
    if (!f) {
        note(fs, 1, "", "%s", err);
        return;
    }
    char *text = malloc(BN_CONFIG_FILE_MAX + 1);
    size_t len = text ? fread(text, 1, BN_CONFIG_FILE_MAX + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (!text || rerr || len > BN_CONFIG_FILE_MAX) {
        note(fs, 1, "", "%s", !text ? "out of memory" : rerr ? "read error" : "larger than 1 MiB");
        free(text);
        return;
    }
    cJSON *doc = NULL;
    if (bn_config_parse(text, len, path, &doc, err, sizeof err)) {
        free(text);
        /* "PATH:LINE:COL: message" or "PATH: message": keep the position apart */
        size_t pl = strlen(path);
        int line = 0, col = 0, used = 0;
        const char *msg = err;
        if (!strncmp(err, path, pl) && err[pl] == ':') {
            msg = err + pl + 1;
            if (sscanf(msg, "%d:%d: %n", &line, &col, &used) == 2 && used > 0)
                msg += used;
            else
                line = col = 0;
            msg += strspn(msg, " ");
        }
        note(fs, 1, "", "%s", msg);
        fs->f[fs->n - 1].line = line;
        fs->f[fs->n - 1].col = col;
        return;
    }
    free(text);
    bn_config_check(doc, BN_CONFIG_CHECK_STRICT, on_finding, fs);
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (!slash)
        snprintf(base, sizeof base, ".");
    else
        *(slash == base ? slash + 1 : slash) = '\0';
    check_model(fs, doc, base);
    check_data_dir(fs, doc, base);
    check_threads(fs, doc);
    check_listen(fs, doc);
    check_tenants(fs, doc, check_database(fs, doc, database));
    cJSON_Delete(doc);
    check_monitor(fs, path);
}

static int print_findings(const char *path, const findings *fs, int json)
{
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "file", path);
        cJSON_AddBoolToObject(d, "valid", fs->errors == 0);
        cJSON *a = cJSON_AddArrayToObject(d, "findings");
        for (int i = 0; i < fs->n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "key", fs->f[i].key);
            cJSON_AddStringToObject(o, "severity", fs->f[i].is_error ? "error" : "warning");
            cJSON_AddStringToObject(o, "message", fs->f[i].msg);
            if (fs->f[i].line) {
                cJSON_AddNumberToObject(o, "line", fs->f[i].line);
                cJSON_AddNumberToObject(o, "col", fs->f[i].col);
            }
            cJSON_AddItemToArray(a, o);
        }
        cJSON *s = cJSON_AddObjectToObject(d, "summary");
        cJSON_AddNumberToObject(s, "errors", fs->errors);
        cJSON_AddNumberToObject(s, "warnings", fs->warnings);
        if (cli_print_json(d)) return BN_EXIT_FAIL;
    } else {
        for (int i = 0; i < fs->n; i++) {
            const finding *f = &fs->f[i];
            if (f->line)
                printf("%s:%d:%d: error: %s\n", path, f->line, f->col, f->msg);
            else
                printf("%s: %s: %s%s%s\n", path, f->is_error ? "error" : "warning", f->key,
                       f->key[0] ? ": " : "", f->msg);
        }
        if (fs->dropped) printf("%s: %d more findings not shown\n", path, fs->dropped);
        printf("%s: %s (%d error%s, %d warning%s)\n", path, fs->errors ? "invalid" : "valid",
               fs->errors, fs->errors == 1 ? "" : "s", fs->warnings, fs->warnings == 1 ? "" : "s");
        if (fflush(stdout)) return BN_EXIT_FAIL;
    }
    return fs->errors ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int cmd_validate(int argc, char **argv)
{
    int json = 0;
    const char *file = NULL, *database = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--database")) {
            if (i + 1 >= argc) return cli_usage_error("validate", "--database needs a value");
            database = argv[++i];
            if (!bn_pg_url_ok(database))
                return cli_usage_error(
                        "validate", "--database: '%s' is not a PostgreSQL URL (postgresql://...)",
                        database);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_validate_help(stdout);
            return BN_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("validate", "unknown option '%s'", argv[i]);
        } else if (file) {
            return cli_usage_error("validate", "one config file at a time");
        } else {
            file = argv[i];
        }
    }
    char path[BN_CONFIG_PATH_MAX];
    if (!file) {
        if (bn_config_path(path, sizeof path)) {
            cli_error("cannot name the config file: set HOME or XDG_CONFIG_HOME");
            return BN_EXIT_FAIL;
        }
        file = path;
    }
    static findings fs;
    memset(&fs, 0, sizeof fs);
    validate(file, database, &fs);
    return print_findings(file, &fs, json);
}
