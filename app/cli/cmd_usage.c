/* cmd_usage.c - `bitnet usage report`: the usage ledger per tenant and day, with the cost at
 * each tenant's tier (bitnet/db_tenants.h; prices from the tiers.* settings). */
#include "commands.h"

#include <inttypes.h>
#include <string.h>

#include "common/config.h"
#include "common/tiers.h"
#include "tenancy.h"

#define C_NAME "usage"

void cmd_usage_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet usage report [--tenant T] [--from DATE] [--to DATE] [--json|--csv]\n\n"
            "The usage ledger (one row per finished request of bitnet serve) per tenant and\n"
            "UTC day: requests, prompt and completion tokens, and the cost at the tenant's\n"
            "tier: tokens x tiers.<tier>.price_usd / tiers.<tier>.monthly_tokens (the price\n"
            "of a token when the monthly quota is used up; the month's price when the tier has\n"
            "no quota); a tenant's own price and quota in the config's tenants object\n"
            "come first. An erased tenant's rows are kept as anonymous totals.\n\n"
            "  --tenant T   one tenant (id or name); default: all\n"
            "  --from DATE  from this day (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ), UTC\n"
            "  --to DATE    to the end of this day (a time: up to it, exclusive)\n"
            "  --json       {\"rows\": [...], \"total\": {...}}\n"
            "  --csv        a header line and one line per row\n\n" TN_DATABASE_HELP
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct report {
    const bn_config *cfg;
    cJSON *rows; /* NULL: text or CSV */
    int csv;
    int64_t requests, prompt, completion;
    double cost;
} report;

/* The cost of a tenant's tokens at its tier and its own overrides; < 0 when the tier is not
 * in the config. */
static double tier_cost(const bn_config *cfg, const bn_usage_day *d, int64_t tokens)
{
    cm_tier t;
    return cm_tenant_limits(cfg, d->tier, d->tenant_name, &t, NULL) == 0 ? cm_tier_cost(&t, tokens)
                                                                         : -1;
}

static int row(void *ud, const bn_usage_day *d)
{
    report *r = ud;
    const double cost = tier_cost(r->cfg, d, d->prompt_tokens + d->completion_tokens);
    r->requests += d->requests;
    r->prompt += d->prompt_tokens;
    r->completion += d->completion_tokens;
    if (cost > 0) r->cost += cost;
    if (r->rows) {
        cJSON *o = cm_usage_day_json(d);
        if (cost >= 0)
            cJSON_AddNumberToObject(o, "cost_usd", cost);
        else
            cJSON_AddNullToObject(o, "cost_usd");
        cJSON_AddItemToArray(r->rows, o);
    } else if (r->csv) {
        printf("%" PRId64 ",%s,%s,%s,%" PRId64 ",%" PRId64 ",%" PRId64 ",%.6f\n", d->tenant_id,
               d->tenant_name, d->tier, d->day, d->requests, d->prompt_tokens, d->completion_tokens,
               cost < 0 ? 0 : cost);
    } else {
        printf("%-10s %6" PRId64 "  %-20s %-10s %9" PRId64 " %12" PRId64 " %12" PRId64 " %12.4f\n",
               d->day, d->tenant_id, d->tenant_name, d->tier, d->requests, d->prompt_tokens,
               d->completion_tokens, cost < 0 ? 0 : cost);
    }
    return 0;
}

static void print_total(const report *r, cJSON *doc)
{
    if (doc) {
        cJSON *t = cJSON_AddObjectToObject(doc, "total");
        cJSON_AddNumberToObject(t, "requests", (double)r->requests);
        cJSON_AddNumberToObject(t, "prompt_tokens", (double)r->prompt);
        cJSON_AddNumberToObject(t, "completion_tokens", (double)r->completion);
        cJSON_AddNumberToObject(t, "cost_usd", r->cost);
    } else if (!r->csv) {
        printf("%-10s %6s  %-20s %-10s %9" PRId64 " %12" PRId64 " %12" PRId64 " %12.4f\n", "total",
               "", "", "", r->requests, r->prompt, r->completion, r->cost);
    }
}

static int run_report(const char *C, bn_db *db, const tn_args *a, int64_t tid, int64_t from,
                      int64_t to)
{
    char err[BN_CONFIG_ERR_MAX];
    bn_config *cfg;
    if (bn_config_load(&cfg, err, sizeof err) != 0) {
        cli_error("%s: %s", C, err);
        bn_db_close(db);
        return BN_EXIT_FAIL;
    }
    report r = {.cfg = cfg, .csv = (a->flags & TN_CSV) != 0};
    cJSON *doc = NULL;
    if (a->flags & TN_JSON) {
        doc = cJSON_CreateObject();
        r.rows = cJSON_AddArrayToObject(doc, "rows");
    } else if (r.csv) {
        printf("tenant_id,tenant,tier,day,requests,prompt_tokens,completion_tokens,cost_usd\n");
    } else {
        printf("%-10s %6s  %-20s %-10s %9s %12s %12s %12s\n", "day", "id", "tenant", "tier",
               "requests", "prompt", "completion", "cost (USD)");
    }
    bn_status s = bn_db_usage_report(db, tid, from, to, row, &r);
    if (s == BN_OK) print_total(&r, doc);
    bn_config_free(cfg);
    if (s != BN_OK) {
        cJSON_Delete(doc);
        return tn_fail(C, db);
    }
    bn_db_close(db);
    return doc && cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int sub_report(int argc, char **argv)
{
    const char *C = "usage report";
    tn_args a;
    int64_t from, to, tid = 0;
    int r = tn_parse_args(C, argc, argv, TN_TENANT | TN_FROM | TN_TO | TN_JSON | TN_CSV, &a);
    if (r || (r = tn_parse_range(C, &a, &from, &to))) return r;
    bn_db *db;
    if ((r = tn_open(C, &db))) return r;
    if (a.tenant) {
        bn_tenant t;
        if (bn_db_tenant_get(db, a.tenant, &t) != BN_OK) return tn_fail(C, db);
        tid = t.id;
    }
    return run_report(C, db, &a, tid, from, to);
}

int cmd_usage(int argc, char **argv)
{
    static const tn_sub subs[] = {{"report", sub_report}, {NULL, NULL}};
    return tn_dispatch(C_NAME, argc, argv, subs, cmd_usage_help);
}
