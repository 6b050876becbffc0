/*
 * serve_limits.h - the limits of `bitnet serve --tenants` behind one interface: the
 * in-process limiter (serve_tenants.c: each replica its own buckets, the quota read from the
 * ledger) and the Redis limiter (serve_redis.c: the buckets, the streams and the month's
 * quota counter of every replica in one Redis, taken by one atomic script per request).
 * serve_tenants.c picks one at start and calls it through srv_limits_ops; a request is ended
 * by the limiter that admitted it (srv_caller.by).
 *
 * The helpers below build the refusals and the x-ratelimit-* headers the same way for both,
 * so a client cannot tell which limiter answered but by the numbers.
 */
#ifndef BITNET_APP_SERVE_LIMITS_H
#define BITNET_APP_SERVE_LIMITS_H

#include "common/tiers.h"
#include "serve_tenants.h"

struct srv_limits_ops {
    /* Admits who's request of prompt tokens under tier: the month's quota, the requests and
     * tokens per minute, the streams at once. 0 when it may run (v->hdr: the x-ratelimit-*
     * headers; who->by and the limiter's fields of who set), else v is the refusal. */
    int (*admit)(srv_limits *l, srv_caller *who, const cm_tier *tier, int64_t prompt, int64_t now,
                 srv_verdict *v);
    /* The end of a request this limiter admitted: completion tokens charged to the tokens
     * bucket, used tokens to the month's quota (0: none), its stream given back. */
    void (*end)(srv_limits *l, srv_caller *who, const cm_tier *tier, int64_t completion,
                int64_t used, int64_t now);
    void (*free)(srv_limits *l);
};

struct srv_limits {
    const struct srv_limits_ops *ops;
};

/* The month's tokens of a tenant in the ledger (from start_ms on); 0, or -1 with v the 500. */
typedef int (*srv_ledger_used_fn)(void *ud, int64_t tenant_id, int64_t start_ms, long long *used,
                                  srv_verdict *v);

/* ---- shared by the limiters (serve_tenants.c) ----------------------------------------- */

/* The first millisecond of this calendar month (UTC), and of the next. */
void srv_month_bounds(int64_t *start_ms, int64_t *next_ms);
void srv_verdict_set(srv_verdict *v, unsigned status, const char *type, const char *code,
                     const char *msg);
/* Retry-After (whole seconds, at least 1) and retry-after-ms of a wait of ns. */
void srv_retry_after(srv_verdict *v, int64_t ns);
/* The x-ratelimit-{limit,remaining,reset}-WHAT headers of one bucket (remaining 0 unless ok). */
void srv_bucket_hdrs(srv_verdict *v, const char *what, long long limit, const srv_gcra_res *r);
/* v the 429 insufficient_quota of who's tier (used tokens this month). */
void srv_refuse_quota(srv_verdict *v, const srv_caller *who, const cm_tier *tier, long long used);
/* v the 429 rate_limit_exceeded of who's tier: by "streams", "requests" or "tokens" (the
 * bucket that refused), Retry-After wait_ns. */
void srv_refuse_rate(srv_verdict *v, const srv_caller *who, const cm_tier *tier, const char *by,
                     int64_t prompt, int64_t wait_ns);

/* The in-process limiter (serve_tenants.c); the quota from ledger_used. NULL: out of memory. */
srv_limits *srv_limits_local_new(srv_ledger_used_fn ledger_used, void *ud);

#endif
