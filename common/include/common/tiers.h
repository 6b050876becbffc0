/*
 * tiers.h - the platform's tiers (developer, team, business) as the config holds them
 * (tiers.<tier>.* in bitnet-config(5)): price and limits, read by the usage report and, later,
 * by the server's rate limits and quotas.
 *
 * Usage:
 *
 *     cm_tier t;
 *     if (cm_tier_get(cfg, "team", &t) == 0)
 *         printf("%.0f USD a month, %lld tokens\n", t.price_usd, t.monthly_tokens);
 *     double usd = cm_tier_cost(&t, prompt_tokens + completion_tokens);
 *
 * No state; cfg is the caller's (common/config.h).
 */
#ifndef BITNET_COMMON_TIERS_H
#define BITNET_COMMON_TIERS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "bitnet/db_tenants.h"
#include "common/config.h"

typedef struct cm_tier {
    double price_usd;             /* per month */
    long long requests_per_min;   /* 0: no limit */
    long long tokens_per_min;     /* 0: no limit */
    long long concurrent_streams; /* 0: no limit */
    long long monthly_tokens;     /* 0: no quota */
} cm_tier;

/* Whether name is a tier of the config schema (developer, team, business). */
int cm_tier_known(const char *name);
/* The effective settings of tier name into *out; 0, or -1 when it is not a tier. */
int cm_tier_get(const bn_config *cfg, const char *name, cm_tier *out);
/* The cost of tokens at the tier: tokens x price / monthly_tokens (the price of a token when
 * the quota is used up); the month's price when the tier has no quota. */
double cm_tier_cost(const cm_tier *t, int64_t tokens);
/* A row of the usage report as JSON: tenant_id, tenant, tier, day, requests, prompt_tokens,
 * completion_tokens (bitnet usage report --json and serve's GET /v1/usage). */
cJSON *cm_usage_day_json(const bn_usage_day *d);
/* An API key as JSON, never its hash: id, tenant, prefix, scopes, expires, revoked, last_used
 * (times as cli_fmt_utc gives them; bitnet keys list --json, tenants show, serve's /v1/keys). */
cJSON *cm_api_key_json(const bn_api_key *k);

#endif
