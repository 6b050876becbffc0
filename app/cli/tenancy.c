/* tenancy.c - the helpers of the platform's commands (tenancy.h). */
#include "tenancy.h"

#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/history.h"

static const char *database; /* --database URL of this process's command (tn_dispatch) */

const char *tn_database_flag(void)
{
    return database;
}

int tn_open(const char *cmd, bn_db **db)
{
    char err[512];
    const char *url = NULL;
    bn_config *cfg = NULL;
    int rc = database ? 0 : bn_config_load(&cfg, err, sizeof err);
    if (!rc) rc = cm_store_url(cfg, database, &url, err, sizeof err);
    if (!rc) rc = cm_store_open_url(db, url, err, sizeof err);
    bn_config_free(cfg);
    if (rc == 0) return BN_EXIT_OK;
    cli_error("%s: %s", cmd, err);
    return BN_EXIT_FAIL;
}

int tn_fail(const char *cmd, bn_db *db)
{
    cli_error("%s: %s", cmd, bn_db_errmsg(db));
    bn_db_close(db);
    return BN_EXIT_FAIL;
}

const char *tn_actor(void)
{
    static char actor[96];
    if (actor[0]) return actor;
    const struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name && *pw->pw_name)
        snprintf(actor, sizeof actor, "cli:%.80s", pw->pw_name);
    else
        snprintf(actor, sizeof actor, "cli:uid-%u", (unsigned)geteuid());
    return actor;
}

/* One option of the table: its flag, its bit, and whether it takes a value (where it goes). */
typedef struct tn_opt {
    const char *flag;
    unsigned bit;
    size_t value; /* offsetof the const char * in tn_args; 0: a switch */
} tn_opt;

static const tn_opt opts[] = {
        {"--tier", TN_TIER, offsetof(tn_args, tier)},
        {"--stripe-customer", TN_STRIPE, offsetof(tn_args, stripe)},
        {"--tenant", TN_TENANT, offsetof(tn_args, tenant)},
        {"--expires", TN_EXPIRES, offsetof(tn_args, expires)},
        {"--from", TN_FROM, offsetof(tn_args, from)},
        {"--to", TN_TO, offsetof(tn_args, to)},
        {"--scope", TN_SCOPE, offsetof(tn_args, scope_arg)},
        {"--json", TN_JSON, 0},
        {"--csv", TN_CSV, 0},
        {"--dry-run", TN_DRY, 0},
};

/* Applies argv[i] (and its value) as one of the options in allow; the next index or -1. */
static int take_opt(const char *cmd, int argc, char **argv, int i, unsigned allow, tn_args *a)
{
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        if (strcmp(argv[i], opts[k].flag) || !(allow & opts[k].bit)) continue;
        if (!opts[k].value) {
            a->flags |= opts[k].bit;
            return i + 1;
        }
        if (i + 1 >= argc || !argv[i + 1][0]) {
            cli_usage_error(cmd, "%s needs a value", argv[i]);
            return -1;
        }
        *(const char **)((char *)a + opts[k].value) = argv[i + 1];
        a->flags |= opts[k].bit;
        if (opts[k].bit == TN_SCOPE) {
            unsigned sc;
            if (bn_scopes_parse(argv[i + 1], &sc) != 0) {
                cli_usage_error(cmd, "bad scope '%s' (inference, usage, admin)", argv[i + 1]);
                return -1;
            }
            a->scopes |= sc;
        }
        return i + 2;
    }
    cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    return -1;
}

int tn_parse_args(const char *cmd, int argc, char **argv, unsigned allow, tn_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 2; i < argc;) {
        if (argv[i][0] != '-' || !argv[i][1]) {
            if (!(allow & TN_POS) || a->pos)
                return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
            a->pos = argv[i++];
            continue;
        }
        i = take_opt(cmd, argc, argv, i, allow, a);
        if (i < 0) return BN_EXIT_USAGE;
    }
    if ((allow & TN_POS) && !a->pos) return cli_usage_error(cmd, "which one? (see --help)");
    if ((a->flags & TN_JSON) && (a->flags & TN_CSV))
        return cli_usage_error(cmd, "--json and --csv exclude each other");
    return 0;
}

int tn_parse_range(const char *cmd, const tn_args *a, int64_t *from, int64_t *to)
{
    *from = *to = 0;
    if (a->from && cli_parse_utc(a->from, from))
        return cli_usage_error(cmd, "bad --from '%s' (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)",
                               a->from);
    if (a->to && cli_parse_utc(a->to, to))
        return cli_usage_error(cmd, "bad --to '%s' (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)", a->to);
    if (a->to && strlen(a->to) == 10) *to += (int64_t)86400000; /* a day: to its end */
    if (*from && *to && *to <= *from) return cli_usage_error(cmd, "--to is before --from");
    return 0;
}

/* Takes --database URL out of argv (anywhere after the command): 0, or -1 when it has no
 * value (printed). */
static int take_database(const char *cmd, int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--database")) continue;
        if (i + 1 >= *argc || !argv[i + 1][0])
            return cli_usage_error(cmd, "--database needs a value"), -1;
        database = argv[i + 1];
        for (int j = i; j + 2 <= *argc; j++) argv[j] = argv[j + 2];
        *argc -= 2;
        i--;
    }
    return 0;
}

int tn_dispatch(const char *cmd, int argc, char **argv, const tn_sub *subs, void (*help)(FILE *))
{
    if (take_database(cmd, &argc, argv)) return BN_EXIT_USAGE;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help(stdout);
            return BN_EXIT_OK;
        }
    char names[160] = "";
    size_t o = 0;
    for (const tn_sub *s = subs; s->name; s++) {
        if (argc >= 2 && !strcmp(argv[1], s->name)) return s->run(argc, argv);
        if (o < sizeof names)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "", s->name);
    }
    if (argc < 2) return cli_usage_error(cmd, "which subcommand? (%s)", names);
    return cli_usage_error(cmd, "unknown subcommand '%s' (%s)", argv[1], names);
}

int tn_open_tenant(const char *cmd, int argc, char **argv, unsigned allow, tn_args *a, bn_db **db,
                   bn_tenant *t)
{
    int r = tn_parse_args(cmd, argc, argv, allow | TN_POS, a);
    if (r || (r = tn_open(cmd, db))) return r;
    if (bn_db_tenant_get(*db, a->pos, t) != BN_OK) return tn_fail(cmd, *db);
    return 0;
}

cJSON *tn_list_begin(int json, const char *name, cJSON **arr)
{
    *arr = NULL;
    if (!json) return NULL;
    cJSON *doc = cJSON_CreateObject();
    *arr = cJSON_AddArrayToObject(doc, name);
    return doc;
}

int tn_list_end(const char *cmd, bn_db *db, bn_status s, cJSON *doc)
{
    if (s != BN_OK) {
        cJSON_Delete(doc);
        return tn_fail(cmd, db);
    }
    bn_db_close(db);
    return doc && cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
}
