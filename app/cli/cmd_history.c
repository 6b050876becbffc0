/* cmd_history.c - `bitnet history`: list, show, export and prune the recorded runs. */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "common/history.h"

#define C_NAME        "history"
#define DEFAULT_LIMIT 20

void cmd_history_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet history list [FILTERS] [--limit N] [--json]\n"
            "       bitnet history show ID [--json]\n"
            "       bitnet history export --format json|csv [FILTERS] [-o FILE [--force]]\n"
            "       bitnet history prune --older-than DAYS [--json]\n"
            "       bitnet history path\n\n"
            "The runs of generate, perplexity, bench and the other commands, recorded in a\n"
            "local sqlite file (see 'history path'), newest first.\n\n"
            "Filters:\n"
            "  --command C    runs of command C\n"
            "  --status S     running, ok, failed, incomplete or cancelled\n"
            "  --since DAYS   runs started in the last DAYS days (a number)\n"
            "  --search TEXT  TEXT in the command, model path, parameters, metrics or error\n"
            "Options:\n"
            "  --limit N      list at most N runs (default %d; 0: all)\n"
            "  --format F     export as json ({\"runs\": [...]}) or csv\n"
            "  -o FILE        write the export to FILE (atomically) instead of stdout; its\n"
            "                 folder must exist\n"
            "  --force        replace an existing FILE (never the history database)\n"
            "  --json         one JSON document (list: {\"runs\": [...]}; show: the run)\n"
            "  -h, --help     this help\n\n"
            "Exit status: 0 ok, 1 the history cannot be read or written or the run does not\n"
            "exist, 2 usage error.\n"
            "A run whose stored params or metrics are not valid JSON is still listed, with a\n"
            "warning naming it on stderr and \"problem\" in --json.\n",
            DEFAULT_LIMIT);
}

typedef struct hist_opts {
    bn_run_filter f;
    const char *format, *output;
    long older_than;
    int have_older_than, json, force;
    const char *id;
} hist_opts;

static int parse_days(const char *opt, const char *v, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(d >= 0 && d <= 36500))
        return cli_usage_error(C_NAME, "%s needs a number of days from 0 to 36500", opt);
    *out = d;
    return 0;
}

/* Parses the options of subcommand sub (argv[0]); returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, hist_opts *o)
{
    const char *sub = argv[0];
    const int filters = !strcmp(sub, "list") || !strcmp(sub, "export");
    o->f = bn_run_filter_all();
    o->f.limit = DEFAULT_LIMIT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        double d = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_history_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json") && strcmp(sub, "export") && strcmp(sub, "path")) {
            o->json = 1;
            continue;
        } else if (!strcmp(a, "--force") && !strcmp(sub, "export")) {
            o->force = 1;
            continue;
        } else if (a[0] != '-' && !strcmp(sub, "show") && !o->id) {
            o->id = a;
            continue;
        }
        const int known = (filters && (!strcmp(a, "--command") || !strcmp(a, "--status") ||
                                       !strcmp(a, "--since") || !strcmp(a, "--search"))) ||
                          (!strcmp(sub, "list") && !strcmp(a, "--limit")) ||
                          (!strcmp(sub, "export") && (!strcmp(a, "--format") || !strcmp(a, "-o") ||
                                                      !strcmp(a, "--output"))) ||
                          (!strcmp(sub, "prune") && !strcmp(a, "--older-than"));
        if (!known) return cli_usage_error(C_NAME, "%s: unexpected argument '%s'", sub, a);
        if (!v) return cli_usage_error(C_NAME, "%s needs a value", a);
        i++;
        if (!strcmp(a, "--command")) {
            o->f.command = v;
        } else if (!strcmp(a, "--status")) {
            bn_run_status st;
            if (bn_run_status_parse(v, &st))
                return cli_usage_error(C_NAME,
                                       "--status: '%s' is not one of running, ok, "
                                       "failed, incomplete, cancelled",
                                       v);
            o->f.status = (int)st;
        } else if (!strcmp(a, "--since")) {
            if (parse_days(a, v, &d)) return BN_EXIT_USAGE;
            o->f.since_ms = bn_wall_ms() - (int64_t)(d * 86400000.0);
        } else if (!strcmp(a, "--search")) {
            o->f.text = v;
        } else if (!strcmp(a, "--limit")) {
            if (cli_parse_long(v, 0, 1000000000L, &l))
                return cli_usage_error(C_NAME, "--limit needs a number from 0 up");
            o->f.limit = l;
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "json") && strcmp(v, "csv"))
                return cli_usage_error(C_NAME, "--format: '%s' is not json or csv", v);
            o->format = v;
        } else if (!strcmp(a, "--older-than")) {
            if (cli_parse_long(v, 0, 36500, &o->older_than))
                return cli_usage_error(C_NAME, "--older-than needs whole days from 0 to 36500");
            o->have_older_than = 1;
        } else {
            o->output = v;
        }
    }
    return -1;
}

/* ---- output helpers -------------------------------------------------------------------------- */

static void local_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, size, "?");
}

/* A copy of s fit for one table cell: control bytes become '?', at most max bytes. */
static void cell(char *dst, size_t size, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size && n < max; s++)
        dst[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    dst[n] = '\0';
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

/* A short result for the table: the main figure of the metrics, or the error. */
static void summary(const bn_run *r, char *buf, size_t size)
{
    buf[0] = '\0';
    if (r->error && r->status != BN_RUN_OK) {
        cell(buf, size, r->error, 60);
        return;
    }
    cJSON *m = r->metrics_json ? cJSON_Parse(r->metrics_json) : NULL;
    static const struct {
        const char *key, *before, *after;
        int digits;
    } keys[] = {
            {"gen_tokens_per_s", "", " tokens/s", 2},       {"perplexity", "perplexity ", "", 4},
            {"val_loss", "validation loss ", "", 4},        {"tokens_per_s", "", " tokens/s", 2},
            {"best_gemv_weight_gbps", "GEMV ", " GB/s", 2},
    };
    for (size_t i = 0; m && i < sizeof keys / sizeof keys[0] && !buf[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, keys[i].key);
        if (cJSON_IsNumber(v))
            snprintf(buf, size, "%s%.*f%s", keys[i].before, keys[i].digits, v->valuedouble,
                     keys[i].after);
    }
    const cJSON *pass = cJSON_GetObjectItemCaseSensitive(m, "pass"),
                *warn = cJSON_GetObjectItemCaseSensitive(m, "warn");
    if (!buf[0] && cJSON_IsNumber(pass) && cJSON_IsNumber(warn)) /* doctor */
        snprintf(buf, size, "%d pass, %d warn", pass->valueint, warn->valueint);
    cJSON_Delete(m);
}

static void duration(const bn_run *r, char *buf, size_t size)
{
    if (r->ended_ms)
        snprintf(buf, size, "%.2f", (double)(r->ended_ms - r->started_ms) / 1000.0);
    else
        snprintf(buf, size, "-");
}

enum { N_COLS = 7, CELL = 96 };

static void print_table(const bn_run *runs, size_t n)
{
    static const char *const head[N_COLS] = {"ID",      "STARTED", "COMMAND", "STATUS",
                                             "SECONDS", "MODEL",   "RESULT"};
    char(*cells)[N_COLS][CELL] = calloc(n ? n : 1, sizeof *cells);
    if (!cells) return;
    size_t w[N_COLS];
    for (int c = 0; c < N_COLS; c++) w[c] = strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        const bn_run *r = &runs[i];
        snprintf(cells[i][0], CELL, "%lld", (long long)r->id);
        local_time(r->started_ms, cells[i][1], CELL);
        cell(cells[i][2], CELL, r->command, 24);
        snprintf(cells[i][3], CELL, "%s", bn_run_status_str(r->status));
        duration(r, cells[i][4], CELL);
        cell(cells[i][5], CELL, r->model_path ? base_name(r->model_path) : "-", 32);
        summary(r, cells[i][6], CELL);
        for (int c = 0; c < N_COLS; c++)
            if (strlen(cells[i][c]) > w[c]) w[c] = strlen(cells[i][c]);
    }
    /* numbers right-aligned, text left-aligned, no padding after the last column */
    for (size_t i = 0; i <= n; i++) {
        const char *const *row = i == 0 ? head : NULL;
        for (int c = 0; c < N_COLS; c++) {
            const char *s = row ? row[c] : cells[i - 1][c];
            const int right = c == 0 || c == 4;
            if (c == N_COLS - 1)
                printf("%s\n", s);
            else
                printf(right ? "%*s  " : "%-*s  ", (int)w[c], s);
        }
    }
    free(cells);
}

/* ---- subcommands ----------------------------------------------------------------------------- */

static int open_db(bn_db **db)
{
    char err[512];
    if (cm_history_open(db, NULL, 0, err, sizeof err) == 0) return BN_EXIT_OK;
    cli_error("history: %s", err);
    return BN_EXIT_FAIL;
}

/* Adds r's JSON to arr; -1 when it does not parse or memory runs out. */
static int add_run_json(cJSON *arr, const bn_run *r)
{
    cJSON *j = cJSON_Parse(r->json);
    return j && cJSON_AddItemToArray(arr, j) ? 0 : (cJSON_Delete(j), -1);
}

static int do_list(bn_db *db, const hist_opts *o)
{
    bn_run *runs;
    size_t n;
    if (bn_db_run_list(db, &o->f, &runs, &n) != BN_OK) {
        cli_error("history: %s", bn_db_errmsg(db));
        return BN_EXIT_FAIL;
    }
    int rc = BN_EXIT_OK;
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(d, "runs");
        for (size_t i = 0; i < n && rc == BN_EXIT_OK; i++)
            if (!arr || add_run_json(arr, &runs[i])) rc = BN_EXIT_FAIL;
        if (rc == BN_EXIT_OK)
            rc = cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
        else {
            cJSON_Delete(d);
            cli_error("history: out of memory");
        }
    } else if (n == 0) {
        printf("no runs recorded%s\n",
               o->f.command || o->f.status >= 0 || o->f.since_ms || o->f.text ? " that match" : "");
    } else {
        print_table(runs, n);
        for (size_t i = 0; i < n; i++) /* listed anyway: name what could not be read */
            if (runs[i].problem)
                fprintf(stderr, "bitnet: warning: run %lld: %s (shown without them)\n",
                        (long long)runs[i].id, runs[i].problem);
    }
    bn_db_runs_free(runs, n);
    return rc;
}

static void print_json_field(const char *label, const char *text)
{
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    char *s = j ? cJSON_Print(j) : NULL;
    if (!s) {
        printf("%-9s %s\n", label, text ? text : "-");
    } else {
        printf("%-9s ", label);
        for (const char *c = s; *c; c++) {
            if (*c == '\t')
                fputs("  ", stdout);
            else
                putchar(*c);
            if (*c == '\n') printf("%-9s ", "");
        }
        putchar('\n');
    }
    cJSON_free(s);
    cJSON_Delete(j);
}

static int do_show(bn_db *db, const hist_opts *o)
{
    long id;
    if (!o->id || cli_parse_long(o->id, 1, LONG_MAX, &id))
        return cli_usage_error(C_NAME, "show needs a run ID (a positive number)");
    bn_run r;
    if (bn_db_run_get(db, id, &r) != BN_OK) {
        cli_error("history: %s", bn_db_errmsg(db));
        return BN_EXIT_FAIL;
    }
    if (o->json) {
        cJSON *j = cJSON_Parse(r.json);
        bn_run_release(&r);
        return j && !cli_print_json(j) ? BN_EXIT_OK : BN_EXIT_FAIL;
    }
    char t0[64], t1[64] = "-", dur[32];
    local_time(r.started_ms, t0, sizeof t0);
    if (r.ended_ms) local_time(r.ended_ms, t1, sizeof t1);
    duration(&r, dur, sizeof dur);
    printf("%-9s %lld\n%-9s %s\n%-9s %s\n", "run", (long long)r.id, "command", r.command, "status",
           bn_run_status_str(r.status));
    printf("%-9s %s\n%-9s %s (%s s)\n", "started", t0, "ended", t1, dur);
    printf("%-9s %s\n%-9s %s\n", "model", r.model_path ? r.model_path : "-", "sha256",
           r.model_sha256 ? r.model_sha256 : "-");
    printf("%-9s %lld on %s\n", "process", (long long)r.pid, r.host ? r.host : "?");
    if (r.error) printf("%-9s %s\n", "error", r.error);
    if (r.problem) printf("%-9s %s\n", "problem", r.problem);
    print_json_field("params", r.params_json);
    print_json_field("metrics", r.metrics_json);
    bn_run_release(&r);
    return BN_EXIT_OK;
}

/* Writes the export to path through a temporary file in the same directory, renamed into
 * place once complete and synced; the file is private to its owner (mode 0600, the
 * temporary's, also when it replaces a file that was readable by others). */
static int export_file(bn_db *db, const hist_opts *o, bn_db_format fmt, const bn_run_filter *f)
{
    const size_t n = strlen(o->output) + 40;
    char *tmp = malloc(n);
    if (!tmp) return cli_error("out of memory"), BN_EXIT_FAIL;
    bn_file_tmp_sweep(o->output); /* what a killed export to the same file left */
    int fd = bn_file_tmp_create(o->output, tmp, n);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) {
        cli_error("history: cannot write %s: %s", o->output, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return BN_EXIT_FAIL;
    }
    char why[1024];
    int rc = BN_EXIT_OK;
    if (bn_db_export(db, f, fmt, fp) != BN_OK) {
        cli_error("history: %s: %s", o->output, bn_db_errmsg(db));
        fclose(fp);
        unlink(tmp);
        rc = BN_EXIT_FAIL;
    } else if (bn_file_commit_stream(fp, tmp, o->output, why, sizeof why) != BN_OK) {
        cli_error("history: %s", why); /* "cannot write TMP: fsync: ...": nothing replaced */
        rc = BN_EXIT_FAIL;
    }
    free(tmp);
    return rc;
}

/* Export -o: never the history database (or its -wal, -shm), an existing file only with
 * --force. 0, or an error printed. */
static int check_export_output(const hist_opts *o)
{
    char db[4200], wal[4210], shm[4210], err[512];
    if (cm_history_path(db, sizeof db, NULL, err, sizeof err) != 0) {
        cli_error("history: %s", err);
        return -1;
    }
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    const char *in[] = {db, wal, shm};
    return cli_check_output("history export", o->output, o->force, in, 3) ? -1 : 0;
}

static int do_export(bn_db *db, hist_opts *o)
{
    if (!o->format) return cli_usage_error(C_NAME, "export needs --format json or csv");
    const bn_db_format fmt = !strcmp(o->format, "csv") ? BN_DB_FORMAT_CSV : BN_DB_FORMAT_JSON;
    o->f.limit = 0;
    o->f.oldest_first = 1;
    if (o->output) return export_file(db, o, fmt, &o->f);
    if (bn_db_export(db, &o->f, fmt, stdout) != BN_OK) {
        cli_error("history: %s", bn_db_errmsg(db));
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

static int do_prune(bn_db *db, const hist_opts *o)
{
    if (!o->have_older_than) return cli_usage_error(C_NAME, "prune needs --older-than DAYS");
    int64_t n = 0;
    const int days = (int)o->older_than;
    if (bn_db_prune(db, days, &n) != BN_OK) {
        cli_error("history: %s", bn_db_errmsg(db));
        return BN_EXIT_FAIL;
    }
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "deleted", (double)n);
        cJSON_AddNumberToObject(d, "older_than_days", days);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("deleted %lld run%s older than %d day%s\n", (long long)n, n == 1 ? "" : "s", days,
           days == 1 ? "" : "s");
    return BN_EXIT_OK;
}

int cmd_history(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(C_NAME, "missing subcommand (list, show, export, prune)");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        cmd_history_help(stdout);
        return BN_EXIT_OK;
    }
    if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "export") &&
        strcmp(sub, "prune") && strcmp(sub, "path"))
        return cli_usage_error(C_NAME, "unknown subcommand '%s'", sub);
    hist_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc - 1, argv + 1, &o);
    if (rc >= 0) return rc;
    if (!strcmp(sub, "show") && !o.id) return cli_usage_error(C_NAME, "show needs a run ID");
    if (!strcmp(sub, "export") && !o.format)
        return cli_usage_error(C_NAME, "export needs --format json or csv");
    if (!strcmp(sub, "prune") && !o.have_older_than)
        return cli_usage_error(C_NAME, "prune needs --older-than DAYS");
    bn_db *db;
    char path[4200], err[512];
    if (!strcmp(sub, "path")) {
        if (cm_history_path(path, sizeof path, NULL, err, sizeof err) != 0) {
            cli_error("history: %s", err);
            return BN_EXIT_FAIL;
        }
        printf("%s\n", path);
        return BN_EXIT_OK;
    }
    if (o.output && check_export_output(&o) != 0) return BN_EXIT_FAIL;
    if ((rc = open_db(&db)) != BN_EXIT_OK) return rc;
    if (!strcmp(sub, "list"))
        rc = do_list(db, &o);
    else if (!strcmp(sub, "show"))
        rc = do_show(db, &o);
    else if (!strcmp(sub, "export"))
        rc = do_export(db, &o);
    else
        rc = do_prune(db, &o);
    bn_db_close(db);
    return rc;
}
