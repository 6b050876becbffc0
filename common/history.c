/* history.c - recording runs in the history, and where it is; see common/history.h. */
#include "common/history.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/db_pg.h"
#include "bitnet/file.h"
#include "common/config.h"

struct cm_hist_run {
    bn_db *db;
    int64_t id;
    cJSON *metrics; /* from cm_hist_metric */
};

static atomic_int warned; /* one warning per process, whichever run or thread meets it */

static void warn_once(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_once(const char *fmt, ...)
{
    if (atomic_exchange(&warned, 1)) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("bitnet: warning: history not recorded: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int disabled(void)
{
    const char *v = getenv("BITNET_HISTORY");
    return v && (!strcmp(v, "0") || !strcasecmp(v, "off") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "false"));
}

/* The retention periods of the store's tables from the config (history.retention_days,
 * retention.*). */
static void periods(const bn_config *cfg, bn_db_options *opt)
{
    opt->retention_days = (int)bn_config_get_int(cfg, "history.retention_days");
    opt->ledger_days = (int)bn_config_get_int(cfg, "retention.ledger_days");
    opt->keys_days = (int)bn_config_get_int(cfg, "retention.keys_days");
}

/* The file (as cm_history_path) and, when opt is not NULL, the retention periods of its
 * tables. */
static int history_where(char *path, size_t pathsz, bn_db_options *opt, char *err, size_t errsz)
{
    bn_config *cfg;
    if (bn_config_load(&cfg, err, errsz) != 0) return -1;
    char dir[BN_CONFIG_PATH_MAX];
    const char *env = getenv("BITNET_HISTORY_DB");
    int n = -1;
    if (env && *env)
        n = snprintf(path, pathsz, "%s", env);
    else if (bn_data_dir(cfg, dir, sizeof dir) == 0)
        n = snprintf(path, pathsz, "%s/history.db", dir);
    if (opt) periods(cfg, opt);
    bn_config_free(cfg);
    if (n < 0 || (size_t)n >= pathsz) {
        snprintf(err, errsz, "no place for the history (set BITNET_HISTORY_DB or HOME)");
        return -1;
    }
    return 0;
}

int cm_history_path(char *path, size_t pathsz, int *retention_days, char *err, size_t errsz)
{
    bn_db_options opt = bn_db_options_default();
    if (history_where(path, pathsz, &opt, err, errsz)) return -1;
    if (retention_days) *retention_days = opt.retention_days;
    return 0;
}

int cm_history_open(bn_db **db, char *path, size_t pathsz, char *err, size_t errsz)
{
    *db = NULL;
    char file[BN_CONFIG_PATH_MAX + 16];
    bn_db_options opt = bn_db_options_default();
    if (history_where(file, sizeof file, &opt, err, errsz) != 0) return -1;
    if (path) snprintf(path, pathsz, "%s", file);
    if (bn_db_open(db, file, &opt) != BN_OK) {
        snprintf(err, errsz, "%s", bn_db_errmsg(*db));
        bn_db_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

int cm_store_url(const bn_config *cfg, const char *flag, const char **url, char *err, size_t errsz)
{
    const char *u = flag ? flag : cfg ? bn_config_get_str(cfg, "database") : NULL;
    *url = u && *u ? u : NULL;
    if (*url && !bn_pg_url_ok(*url)) {
        snprintf(err, errsz, "%s: not a PostgreSQL URL (postgresql://...)",
                 flag ? "--database" : "the config's database");
        return -1;
    }
    return 0;
}

/* A PostgreSQL store's handle gets the config's periods as the history's file does; none
 * (everything kept) when the config does not load: a command given --database works without
 * one, and the command that applies them (tenants retention) says why it failed. */
static void pg_periods(bn_db *db)
{
    bn_config *cfg;
    char err[256];
    if (bn_config_load(&cfg, err, sizeof err) != 0) return;
    bn_db_options opt = bn_db_options_default();
    periods(cfg, &opt);
    bn_config_free(cfg);
    bn_db_set_retention(db, &opt);
}

int cm_store_open(bn_db **db, struct bn_pg_pool *pool, char *err, size_t errsz)
{
    if (!pool) return cm_history_open(db, NULL, 0, err, errsz);
    if (bn_db_open_pg(db, pool) == BN_OK) {
        pg_periods(*db);
        return 0;
    }
    *db = NULL;
    snprintf(err, errsz, "out of memory");
    return -1;
}

int cm_store_open_url(bn_db **db, const char *url, char *err, size_t errsz)
{
    if (!url) return cm_history_open(db, NULL, 0, err, errsz);
    if (bn_db_open_pg_url(db, url) == BN_OK) {
        pg_periods(*db);
        return 0;
    }
    snprintf(err, errsz, "%s", bn_db_errmsg(*db));
    bn_db_close(*db);
    *db = NULL;
    return -1;
}

/* ---- the model's sha256 ------------------------------------------------------------------ */

static int sha256_fd(int fd, char hex[65])
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK), d[SHA256_DIGEST_SIZE];
    if (!buf) return -1;
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    ssize_t n;
    while ((n = read(fd, buf, CHUNK)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        sha256_update(&ctx, (size_t)n, buf);
    }
    free(buf);
    if (n < 0) return -1;
    sha256_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* The sha256 of the file at path (canonical), from the cache or computed and cached. */
static int model_sha256(bn_db *db, const char *path, char hex[65])
{
    int fd = bn_file_open_read(path, NULL, 0); /* a FIFO is not waited on */
    if (fd < 0) return -1;
    struct stat sb;
    int rc = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        const int64_t mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        if (bn_db_hash_lookup(db, path, (int64_t)sb.st_size, mtime_ns, hex) == BN_OK) {
            rc = 0;
        } else if (sha256_fd(fd, hex) == 0) {
            bn_db_hash_store(db, path, (int64_t)sb.st_size, mtime_ns, hex);
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

/* ---- runs --------------------------------------------------------------------------------- */

cJSON *cm_hist_params_argv(int argc, char **argv)
{
    cJSON *p = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(p, "argv");
    for (int i = 1; a && i < argc; i++) cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
    if (!a) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

cm_hist_run *cm_hist_begin(const char *command, const char *model_path, cJSON *params)
{
    cm_hist_run *h = NULL;
    char err[BN_CONFIG_ERR_MAX], *ptext = NULL, sha[65], real[PATH_MAX];
    if (disabled()) goto done;
    h = calloc(1, sizeof *h);
    ptext = params ? cJSON_PrintUnformatted(params) : NULL;
    if (!h || (params && !ptext)) {
        warn_once("out of memory");
        goto fail;
    }
    if (cm_history_open(&h->db, NULL, 0, err, sizeof err) != 0) {
        warn_once("%s", err);
        goto fail;
    }
    const char *model = model_path && realpath(model_path, real) ? real : model_path;
    const int have_sha = model && model_sha256(h->db, model, sha) == 0;
    if (bn_db_run_begin(h->db, command, model, have_sha ? sha : NULL, ptext, &h->id) != BN_OK) {
        warn_once("%s", bn_db_errmsg(h->db));
        goto fail;
    }
    goto done;
fail:
    if (h) bn_db_close(h->db);
    free(h);
    h = NULL;
done:
    cJSON_free(ptext);
    cJSON_Delete(params);
    return h;
}

/* Sets key in h's metrics to item (taken), replacing an earlier value of key. */
static void put(cm_hist_run *h, const char *key, cJSON *item)
{
    if (!h->metrics) h->metrics = cJSON_CreateObject();
    if (!h->metrics || !item) {
        cJSON_Delete(item);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(h->metrics, key);
    cJSON_AddItemToObject(h->metrics, key, item);
}

void cm_hist_metric(cm_hist_run *h, const char *key, double value)
{
    if (h) put(h, key, cJSON_CreateNumber(value));
}

void cm_hist_metric_str(cm_hist_run *h, const char *key, const char *value)
{
    if (h) put(h, key, cJSON_CreateString(value ? value : ""));
}

void cm_hist_end(cm_hist_run *h, bn_run_status status, cJSON *metrics, const char *error)
{
    if (!h) {
        cJSON_Delete(metrics);
        return;
    }
    /* metrics given here join (and win over) those added with cm_hist_metric */
    if (metrics && !h->metrics) h->metrics = cJSON_CreateObject();
    for (const cJSON *it = metrics ? metrics->child : NULL; it; it = it->next)
        if (it->string) put(h, it->string, cJSON_Duplicate(it, 1));
    cJSON_Delete(metrics);
    char *mtext = h->metrics ? cJSON_PrintUnformatted(h->metrics) : NULL;
    cJSON_Delete(h->metrics);
    bn_status s = bn_db_run_end(h->db, h->id, status, mtext, error);
    /* a run pruned meanwhile (history prune --older-than 0) is not worth a warning */
    if (s != BN_OK && s != BN_ERR_NOT_FOUND) warn_once("%s", bn_db_errmsg(h->db));
    cJSON_free(mtext);
    bn_db_close(h->db);
    free(h);
}

void cm_hist_end_exit(cm_hist_run *h, int exit_code, cJSON *metrics, const char *error)
{
    if (exit_code == 0)
        cm_hist_end(h, BN_RUN_OK, metrics, NULL);
    else
        cm_hist_end(h, BN_RUN_FAILED, metrics, error && *error ? error : "failed");
}
