/* tiers.c - the platform's tiers from the config (common/tiers.h). */
#include "common/tiers.h"

#include <stdio.h>
#include <string.h>

#include "common/cli.h"

/* "tiers.<name>.<field>" into buf; 0, or -1 when it does not fit. */
static int tier_key(char *buf, size_t size, const char *name, const char *field)
{
    const int n = snprintf(buf, size, "tiers.%s.%s", name, field);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int cm_tier_known(const char *name)
{
    char k[96];
    return name && tier_key(k, sizeof k, name, "price_usd") == 0 && bn_config_find_key(k);
}

double cm_tier_value(const cm_tier *t, int i)
{
    const long long *const v[] = {NULL, &t->requests_per_min, &t->tokens_per_min,
                                  &t->concurrent_streams, &t->monthly_tokens};
    return i == 0 ? t->price_usd : (double)*v[i];
}

static void set_field(cm_tier *t, int i, double v)
{
    long long *const dst[] = {NULL, &t->requests_per_min, &t->tokens_per_min,
                              &t->concurrent_streams, &t->monthly_tokens};
    if (i == 0)
        t->price_usd = v;
    else
        *dst[i] = (long long)v;
}

int cm_tier_get(const bn_config *cfg, const char *name, cm_tier *out)
{
    char k[96];
    if (!cm_tier_known(name)) return -1;
    for (int i = 0; i < CM_TIER_N_FIELDS; i++) {
        tier_key(k, sizeof k, name, cm_tier_field(i));
        set_field(out, i,
                  i == 0 ? bn_config_get_double(cfg, k) : (double)bn_config_get_int(cfg, k));
    }
    return 0;
}

int cm_tenant_limits(const bn_config *cfg, const char *tier, const char *tenant, cm_tier *out,
                     unsigned *overrides)
{
    if (overrides) *overrides = 0;
    if (cm_tier_get(cfg, tier, out)) return -1;
    const cJSON *all = bn_config_get_json(cfg, "tenants");
    const cJSON *mine = tenant ? cJSON_GetObjectItemCaseSensitive(all, tenant) : NULL;
    for (int i = 0; mine && i < CM_TIER_N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(mine, cm_tier_field(i));
        if (!cJSON_IsNumber(v)) continue; /* the load checked it: absent */
        set_field(out, i, v->valuedouble);
        if (overrides) *overrides |= 1u << i;
    }
    return 0;
}

cJSON *cm_tenant_limits_json(const bn_config *cfg, const char *tier, const char *tenant)
{
    cm_tier t;
    unsigned ovr;
    if (cm_tenant_limits(cfg, tier, tenant, &t, &ovr)) return NULL;
    cJSON *o = cJSON_CreateObject(), *names = cJSON_CreateArray();
    for (int i = 0; i < CM_TIER_N_FIELDS; i++) {
        cJSON_AddNumberToObject(o, cm_tier_field(i), cm_tier_value(&t, i));
        if (ovr & 1u << i) cJSON_AddItemToArray(names, cJSON_CreateString(cm_tier_field(i)));
    }
    cJSON_AddItemToObject(o, "overrides", names);
    return o;
}

double cm_tier_cost(const cm_tier *t, int64_t tokens)
{
    if (t->monthly_tokens <= 0) return t->price_usd;
    return (double)tokens * t->price_usd / (double)t->monthly_tokens;
}

cJSON *cm_usage_day_json(const bn_usage_day *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tenant_id", (double)d->tenant_id);
    cJSON_AddStringToObject(o, "tenant", d->tenant_name);
    cJSON_AddStringToObject(o, "tier", d->tier);
    cJSON_AddStringToObject(o, "day", d->day);
    cJSON_AddNumberToObject(o, "requests", (double)d->requests);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)d->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)d->completion_tokens);
    return o;
}

cJSON *cm_api_key_json(const bn_api_key *k)
{
    char sc[32], t1[32], t2[32], t3[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)k->id);
    cJSON_AddNumberToObject(o, "tenant", (double)k->tenant_id);
    cJSON_AddStringToObject(o, "prefix", k->prefix);
    cJSON_AddStringToObject(o, "scopes", bn_scopes_str(k->scopes, sc, sizeof sc));
    cJSON_AddStringToObject(o, "expires", cli_fmt_utc(k->expires_ms, t1, sizeof t1));
    cJSON_AddStringToObject(o, "revoked", cli_fmt_utc(k->revoked_ms, t2, sizeof t2));
    cJSON_AddStringToObject(o, "last_used", cli_fmt_utc(k->last_used_ms, t3, sizeof t3));
    return o;
}
