/* cmd_tenants.c - `bitnet tenants`: the platform's tenants (add, list, show, suspend, resume,
 * delete, export, erase), each change audited (bitnet/db_tenants.h). */
#include "commands.h"

#include <inttypes.h>
#include <string.h>

#include "bitnet/core.h"
#include "common/tiers.h"
#include "tenancy.h"

#define C_NAME "tenants"

void cmd_tenants_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet tenants add NAME [--tier T] [--stripe-customer ID] [--json]\n"
            "       bitnet tenants list [--json]\n"
            "       bitnet tenants show T [--json]\n"
            "       bitnet tenants suspend|resume|delete|erase T [--json]\n"
            "       bitnet tenants export T\n"
            "       bitnet tenants retention [--dry-run] [--json]\n\n"
            "The tenants of the platform, kept in the history database (or PostgreSQL:\n"
            "--database). T is a tenant's id or name. Every change is written with an entry\n"
            "of the audit log (bitnet audit).\n\n"
            "  add      a new active tenant; --tier developer (default), team or business\n"
            "           (their prices and limits: the tiers.* settings, bitnet-config(5))\n"
            "  list     every tenant: id, name, tier, status, keys in use, created\n"
            "  show     one tenant, its limits (its tier's, or its own from the config's\n"
            "           tenants object: bitnet-config(5)) and its keys\n"
            "  suspend  its keys stop working at once (resume: they work again)\n"
            "  delete   a tenant with no usage, and its keys (one with usage: erase it)\n"
            "  export   every datum held about the tenant, as JSON on stdout (audited)\n"
            "  erase    removes its keys and personal data: the name becomes erased-<id>,\n"
            "           the Stripe id goes; usage is kept as anonymous totals per day\n"
            "  retention  applies the retention periods now (they apply at most once a day\n"
            "           anyway, when the history is opened, and in bitnet serve --tenants,\n"
            "           on PostgreSQL too): runs older than history.retention_days are\n"
            "           deleted; ledger rows older than retention.ledger_days are folded into\n"
            "           one anonymous row per tenant, day and model (the usage report does\n"
            "           not change); keys revoked or expired retention.keys_days ago are\n"
            "           deleted; the audit log and the billing outbox are kept whole.\n"
            "           --dry-run: only counts\n\n" TN_DATABASE_HELP
            "Exit status: 0 ok, 1 failure (no such tenant, a refused change), 2 usage error.\n");
}

static cJSON *tenant_json(const bn_tenant *t)
{
    char when[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "tier", t->tier);
    cJSON_AddStringToObject(o, "status", t->status);
    if (t->stripe_customer[0])
        cJSON_AddStringToObject(o, "stripe_customer", t->stripe_customer);
    else
        cJSON_AddNullToObject(o, "stripe_customer");
    cJSON_AddStringToObject(o, "created", cli_fmt_utc(t->created_ms, when, sizeof when));
    cJSON_AddNumberToObject(o, "keys", (double)t->n_keys);
    return o;
}

static void print_tenant_row(const bn_tenant *t)
{
    char when[32];
    printf("%5" PRId64 "  %-24s %-10s %-10s %4" PRId64 "  %s\n", t->id, t->name, t->tier, t->status,
           t->n_keys, cli_fmt_utc(t->created_ms, when, sizeof when));
}

/* Prints tenant id (after a change): JSON or a line "tenant ID NAME: WHAT". */
static int print_after(bn_db *db, const char *C, int64_t id, int json, const char *what)
{
    char ref[32];
    bn_tenant t;
    snprintf(ref, sizeof ref, "%" PRId64, id);
    if (bn_db_tenant_get(db, ref, &t) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    if (json) return cli_print_json(tenant_json(&t)) ? BN_EXIT_FAIL : BN_EXIT_OK;
    printf("tenant %" PRId64 " %s: %s\n", t.id, t.name, what);
    return BN_EXIT_OK;
}

static int sub_add(int argc, char **argv)
{
    const char *C = "tenants add";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_POS | TN_TIER | TN_STRIPE | TN_JSON, &a);
    if (r) return r;
    if (!bn_tenant_name_ok(a.pos))
        return cli_usage_error(C,
                               "bad tenant name '%s' (1 to %d printable characters, no spaces, "
                               "quotes or commas, not only digits, no leading '-')",
                               a.pos, BN_TENANT_NAME_MAX - 1);
    const char *tier = a.tier ? a.tier : "developer";
    if (!cm_tier_known(tier))
        return cli_usage_error(C, "unknown tier '%s' (developer, team, business)", tier);
    bn_db *db;
    int64_t id;
    if ((r = tn_open(C, &db))) return r;
    if (bn_db_tenant_add(db, tn_actor(), a.pos, tier, a.stripe, &id) != BN_OK)
        return tn_fail(C, db);
    return print_after(db, C, id, a.flags & TN_JSON, "added");
}

static int list_one(void *ud, const bn_tenant *t)
{
    if (ud)
        cJSON_AddItemToArray(ud, tenant_json(t));
    else
        print_tenant_row(t);
    return 0;
}

static int sub_list(int argc, char **argv)
{
    const char *C = "tenants list";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    cJSON *arr, *doc = tn_list_begin(a.flags & TN_JSON, "tenants", &arr);
    if (!doc)
        printf("%5s  %-24s %-10s %-10s %4s  %s\n", "id", "name", "tier", "status", "keys",
               "created");
    return tn_list_end(C, db, bn_db_tenant_list(db, list_one, arr), doc);
}

static int key_json_one(void *ud, const bn_api_key *k)
{
    cJSON_AddItemToArray(ud, cm_api_key_json(k));
    return 0;
}

/* The tenant's effective limits (its tier's, its overrides from the config's tenants object)
 * added to o as "limits" (null when its tier is not in the config); -1 when the config does
 * not load (printed). */
static int add_limits(const char *C, cJSON *o, const bn_tenant *t)
{
    char err[BN_CONFIG_ERR_MAX];
    bn_config *cfg;
    if (bn_config_load(&cfg, err, sizeof err) != 0) {
        cli_error("%s: %s", C, err);
        return -1;
    }
    cJSON *l = cm_tenant_limits_json(cfg, t->tier, t->name);
    cJSON_AddItemToObject(o, "limits", l ? l : cJSON_CreateNull());
    bn_config_free(cfg);
    return 0;
}

/* "  limits   600 requests/min, ... (own: requests_per_min)" from the limits object. */
static void print_limits(const cJSON *l)
{
    if (!cJSON_IsObject(l)) {
        printf("  limits   - (the tier is not in the config)\n");
        return;
    }
    static const char *const unit[CM_TIER_N_FIELDS] = {"USD/month", "requests/min", "tokens/min",
                                                       "streams", "tokens/month"};
    printf("  limits  ");
    for (int i = 0; i < CM_TIER_N_FIELDS; i++)
        printf("%s %.15g %s", i ? "," : "", cJSON_GetObjectItem(l, cm_tier_field(i))->valuedouble,
               unit[i]);
    const cJSON *n, *own = cJSON_GetObjectItem(l, "overrides");
    if (cJSON_GetArraySize(own)) {
        printf(" (the tenant's own:");
        cJSON_ArrayForEach(n, own) printf(" %s", n->valuestring);
        printf(")");
    }
    printf("\n");
}

static int sub_show(int argc, char **argv)
{
    const char *C = "tenants show";
    tn_args a;
    bn_db *db;
    bn_tenant t;
    int r = tn_open_tenant(C, argc, argv, TN_JSON, &a, &db, &t);
    if (r) return r;
    cJSON *o = tenant_json(&t), *keys = cJSON_AddArrayToObject(o, "key_list");
    if (add_limits(C, o, &t)) {
        cJSON_Delete(o);
        bn_db_close(db);
        return BN_EXIT_FAIL;
    }
    if (bn_db_key_list(db, t.id, key_json_one, keys) != BN_OK) {
        cJSON_Delete(o);
        return tn_fail(C, db);
    }
    bn_db_close(db);
    if (a.flags & TN_JSON) return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
    char when[32];
    printf("tenant %" PRId64 " %s\n  tier     %s\n  status   %s\n  stripe   %s\n  created  %s\n",
           t.id, t.name, t.tier, t.status, t.stripe_customer[0] ? t.stripe_customer : "-",
           cli_fmt_utc(t.created_ms, when, sizeof when));
    print_limits(cJSON_GetObjectItem(o, "limits"));
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        printf("  key %.0f %s... %s, revoked %s\n", cJSON_GetObjectItem(k, "id")->valuedouble,
               cJSON_GetObjectItem(k, "prefix")->valuestring,
               cJSON_GetObjectItem(k, "scopes")->valuestring,
               cJSON_GetObjectItem(k, "revoked")->valuestring);
    }
    cJSON_Delete(o);
    return BN_EXIT_OK;
}

typedef enum change { CH_SUSPEND, CH_RESUME, CH_DELETE, CH_ERASE } change;

static int do_change(int argc, char **argv, change ch)
{
    static const char *const names[] = {"tenants suspend", "tenants resume", "tenants delete",
                                        "tenants erase"};
    static const char *const done[] = {"suspended", "resumed", "deleted", "erased"};
    const char *C = names[ch];
    tn_args a;
    bn_db *db;
    bn_tenant t;
    int r = tn_open_tenant(C, argc, argv, TN_JSON, &a, &db, &t);
    if (r) return r;
    const char *actor = tn_actor();
    bn_status s = ch == CH_DELETE  ? bn_db_tenant_delete(db, actor, a.pos)
                  : ch == CH_ERASE ? bn_db_tenant_erase(db, actor, a.pos)
                                   : bn_db_tenant_suspend(db, actor, a.pos, ch == CH_SUSPEND);
    if (s != BN_OK) return tn_fail(C, db);
    if (ch != CH_DELETE) return print_after(db, C, t.id, a.flags & TN_JSON, done[ch]);
    bn_db_close(db);
    if (!(a.flags & TN_JSON)) {
        printf("tenant %" PRId64 " %s: deleted\n", t.id, t.name);
        return BN_EXIT_OK;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)t.id);
    cJSON_AddBoolToObject(o, "deleted", 1);
    return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int sub_suspend(int argc, char **argv)
{
    return do_change(argc, argv, CH_SUSPEND);
}
static int sub_resume(int argc, char **argv)
{
    return do_change(argc, argv, CH_RESUME);
}
static int sub_delete(int argc, char **argv)
{
    return do_change(argc, argv, CH_DELETE);
}
static int sub_erase(int argc, char **argv)
{
    return do_change(argc, argv, CH_ERASE);
}

static int sub_export(int argc, char **argv)
{
    const char *C = "tenants export";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_POS | TN_JSON, &a); /* always JSON */
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    char *text = NULL;
    if (bn_db_tenant_export(db, tn_actor(), a.pos, &text) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    cJSON *doc = cJSON_Parse(text);
    bn_free(text);
    if (!doc) {
        cli_error("%s: the export is not valid JSON (a bug)", C);
        return BN_EXIT_FAIL;
    }
    return cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* The retention periods of the config into o ("periods"); -1 when it does not load. */
static int add_periods(const char *C, cJSON *o)
{
    static const char *const keys[] = {"history.retention_days", "retention.ledger_days",
                                       "retention.keys_days"};
    static const char *const names[] = {"runs_days", "ledger_days", "keys_days"};
    char err[BN_CONFIG_ERR_MAX];
    bn_config *cfg;
    if (bn_config_load(&cfg, err, sizeof err) != 0) {
        cli_error("%s: %s", C, err);
        return -1;
    }
    cJSON *p = cJSON_AddObjectToObject(o, "periods");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cJSON_AddNumberToObject(p, names[i], (double)bn_config_get_int(cfg, keys[i]));
    bn_config_free(cfg);
    return 0;
}

static void print_retention(const cJSON *o, int dry)
{
    const cJSON *p = cJSON_GetObjectItem(o, "periods");
#define N(obj, k) cJSON_GetObjectItem(obj, k)->valuedouble
    printf("retention%s: runs %.0f days, ledger %.0f days, keys %.0f days (0: kept)\n",
           dry ? " (dry run: nothing changed)" : "", N(p, "runs_days"), N(p, "ledger_days"),
           N(p, "keys_days"));
    printf("  runs deleted        %.0f\n  ledger rows folded  %.0f into %.0f daily totals\n"
           "  keys deleted        %.0f\n",
           N(o, "runs"), N(o, "ledger_rows"), N(o, "ledger_aggregates"), N(o, "keys"));
#undef N
}

static int sub_retention(int argc, char **argv)
{
    const char *C = "tenants retention";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_DRY | TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    const int dry = (a.flags & TN_DRY) != 0;
    bn_retention_counts c;
    if (bn_db_retention_apply(db, dry, &c) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "dry_run", dry);
    cJSON_AddNumberToObject(o, "runs", (double)c.runs);
    cJSON_AddNumberToObject(o, "ledger_rows", (double)c.ledger_rows);
    cJSON_AddNumberToObject(o, "ledger_aggregates", (double)c.ledger_aggregates);
    cJSON_AddNumberToObject(o, "keys", (double)c.keys);
    if (add_periods(C, o)) {
        cJSON_Delete(o);
        return BN_EXIT_FAIL;
    }
    if (a.flags & TN_JSON) return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
    print_retention(o, dry);
    cJSON_Delete(o);
    return BN_EXIT_OK;
}

int cmd_tenants(int argc, char **argv)
{
    static const tn_sub subs[] = {
            {"add", sub_add},
            {"list", sub_list},
            {"show", sub_show},
            {"suspend", sub_suspend},
            {"resume", sub_resume},
            {"delete", sub_delete},
            {"export", sub_export},
            {"erase", sub_erase},
            {"retention", sub_retention},
            {NULL, NULL},
    };
    return tn_dispatch(C_NAME, argc, argv, subs, cmd_tenants_help);
}
