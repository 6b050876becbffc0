/*
 * tiers.h - the platform's tiers (developer, team, business) as the config holds them
 * (tiers.<tier>.* in bitnet-config(5)): price and limits, read by the usage report and the
 * server's rate limits and quotas; and a tenant's own overrides of them (the config's
 * tenants object: {"acme": {"requests_per_min": 1200, "monthly_tokens": 0}}).
 *
 * Usage:
 *
 *     cm_tier t;
 *     if (cm_tier_get(cfg, "team", &t) == 0)
 *         printf("%.0f USD a month, %lld tokens\n", t.price_usd, t.monthly_tokens);
 *     double usd = cm_tier_cost(&t, prompt_tokens + completion_tokens);
 *     unsigned ovr;                                     // a tenant: its tier and overrides
 *     cm_tenant_limits(cfg, "team", "acme", &t, &ovr);
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

/* The settings of a tier, in this order; a tenant's overrides name them the same way. */
#define CM_TIER_N_FIELDS 5
/* "price_usd", "requests_per_min", "tokens_per_min", "concurrent_streams", "monthly_tokens"
 * for i in [0, CM_TIER_N_FIELDS); NULL otherwise. */
const char *cm_tier_field(int i);
/* Field i of t as a number. */
double cm_tier_value(const cm_tier *t, int i);

/* Whether name is a tier of the config schema (developer, team, business). */
int cm_tier_known(const char *name);
/* The effective settings of tier name into *out; 0, or -1 when it is not a tier. */
int cm_tier_get(const bn_config *cfg, const char *name, cm_tier *out);
/* The effective settings of tenant (its name) at tier: the tier's, with the tenant's entry of
 * the config's tenants object over them. *overrides (may be NULL): bit i set when field i
 * comes from the tenant's entry. 0, or -1 when tier is not a tier. */
int cm_tenant_limits(const bn_config *cfg, const char *tier, const char *tenant, cm_tier *out,
                     unsigned *overrides);
/* A tenant's effective settings as JSON: price_usd, requests_per_min, tokens_per_min,
 * concurrent_streams, monthly_tokens, and "overrides": the names of those that the tenant's
 * entry sets. NULL when tier is not a tier (bitnet tenants show, the TUI's Usage screen). */
cJSON *cm_tenant_limits_json(const bn_config *cfg, const char *tier, const char *tenant);
/* Checks a tenants object as the config schema wants it (bn_config_check calls it): tenant
 * names as bitnet tenants add takes them, each an object of known fields with the range of
 * the tier setting of the same name. Findings go to fn with keys "tenants.NAME.FIELD". */
void cm_tenants_check(const cJSON *v, bn_config_report_fn fn, void *ud);

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
