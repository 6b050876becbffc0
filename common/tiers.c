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

int cm_tier_get(const bn_config *cfg, const char *name, cm_tier *out)
{
    static const char *const fields[] = {"requests_per_min", "tokens_per_min", "concurrent_streams",
                                         "monthly_tokens"};
    long long *const dst[] = {&out->requests_per_min, &out->tokens_per_min,
                              &out->concurrent_streams, &out->monthly_tokens};
    char k[96];
    if (!cm_tier_known(name)) return -1;
    tier_key(k, sizeof k, name, "price_usd");
    out->price_usd = bn_config_get_double(cfg, k);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        tier_key(k, sizeof k, name, fields[i]);
        *dst[i] = bn_config_get_int(cfg, k);
    }
    return 0;
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
