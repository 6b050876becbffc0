/* tier_fields.c - the settings of a tier by name, and the check of the config's tenants
 * object (common/tiers.h). Apart from tiers.c so that the config's check, which every
 * program links, pulls in nothing else of the platform. */
#include "common/tiers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The fields of cm_tier, in the order of tiers.<tier>.* */
static const char *const fields[CM_TIER_N_FIELDS] = {
        "price_usd", "requests_per_min", "tokens_per_min", "concurrent_streams", "monthly_tokens"};

const char *cm_tier_field(int i)
{
    return i >= 0 && i < CM_TIER_N_FIELDS ? fields[i] : NULL;
}

/* Checks one field of a tenant's entry against the range of the tier setting it overrides. */
static void check_field(const cJSON *v, const char *path, bn_config_report_fn fn, void *ud)
{
    char k[96], msg[160];
    int i = 0;
    while (i < CM_TIER_N_FIELDS && strcmp(v->string, fields[i])) i++;
    if (i == CM_TIER_N_FIELDS) {
        fn(ud, 1, path,
           "unknown setting (price_usd, requests_per_min, tokens_per_min, concurrent_streams, "
           "monthly_tokens)");
        return;
    }
    snprintf(k, sizeof k, "tiers.developer.%s", fields[i]);
    const bn_config_key *key = bn_config_find_key(k);
    const double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (cJSON_IsNumber(v) && isfinite(d) && d >= key->min && d <= key->max &&
        (i == 0 || d == floor(d)))
        return;
    snprintf(msg, sizeof msg, "expected %s from %.0f to %.0f", i == 0 ? "a number" : "an integer",
             key->min, key->max);
    fn(ud, 1, path, msg);
}

/* Whether an earlier member of obj has item's name. */
static int dup_before(const cJSON *obj, const cJSON *item)
{
    for (const cJSON *d = obj->child; d != item; d = d->next)
        if (!strcmp(d->string, item->string)) return 1;
    return 0;
}

static void check_tenant(const cJSON *t, const char *path, bn_config_report_fn fn, void *ud)
{
    char p[256];
    if (!bn_tenant_name_ok(t->string)) {
        fn(ud, 1, path,
           "not a tenant name (printable, no spaces, quotes or commas, not only digits)");
        return;
    }
    if (!cJSON_IsObject(t)) {
        fn(ud, 1, path, "expected an object of settings (\"requests_per_min\": 1200, ...)");
        return;
    }
    for (const cJSON *f = t->child; f; f = f->next) {
        snprintf(p, sizeof p, "%.200s.%.40s", path, f->string);
        if (dup_before(t, f))
            fn(ud, 1, p, "duplicate key (only the first is used)");
        else
            check_field(f, p, fn, ud);
    }
}

void cm_tenants_check(const cJSON *v, bn_config_report_fn fn, void *ud)
{
    char path[256];
    if (!cJSON_IsObject(v)) {
        fn(ud, 1, "tenants", "expected an object of tenant names ({\"acme\": {...}})");
        return;
    }
    for (const cJSON *t = v->child; t; t = t->next) {
        snprintf(path, sizeof path, "tenants.%.200s", t->string);
        if (dup_before(v, t))
            fn(ud, 1, path, "duplicate tenant (only the first is used)");
        else
            check_tenant(t, path, fn, ud);
    }
}
