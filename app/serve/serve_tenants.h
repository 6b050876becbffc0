/*
 * serve_tenants.h - `bitnet serve --tenants`: the callers are the tenants of the platform's
 * store (bitnet/db_tenants.h): each request's Bearer key is looked up there, its tenant's
 * tier (common/tiers.h) gives its limits, and every finished request leaves one row in the
 * usage ledger (serve_tenants.c).
 *
 * Usage, in a connection's thread:
 *
 *     srv_caller who;
 *     srv_verdict v;
 *     srv_tenants_auth(t, header, BN_SCOPE_INFERENCE, &who, &v);   v.status 0: go on
 *     srv_tenants_admit(t, &who, prompt_tokens, now_ns, &v);       v.status 0: admitted
 *     ...  the request runs; v.hdr: the x-ratelimit-* headers of the answer  ...
 *     srv_tenants_end(t, &who, &rec, now_ns);                      the ledger row, once
 *
 * Limits per tenant (its tier's requests_per_min, tokens_per_min: GCRA over one minute, so a
 * tenant may spend a whole minute's allowance at once and then one request each 60/limit
 * seconds; concurrent_streams; monthly_tokens against the ledger of the calendar month, UTC).
 * Prompt tokens are charged when a request is admitted (it must fit), its completion tokens
 * when it ends (they may take the bucket into debt: later requests wait).
 *
 * The store: one handle per thread at a time, taken from a pool (sqlite handles are not
 * shared by threads at once). srv_tenants owns its handles and the limiter table; cfg is the
 * caller's and outlives it.
 */
#ifndef BITNET_APP_SERVE_TENANTS_H
#define BITNET_APP_SERVE_TENANTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/db_tenants.h"
#include "common/config.h"
#include "common/metrics.h"

/* ---- GCRA (the generic cell rate algorithm), over a window of one minute ---------------- */

#define SRV_GCRA_WINDOW_NS 60000000000LL

typedef struct srv_gcra {
    int64_t tat; /* theoretical arrival time (ns of the caller's clock); 0: fresh */
} srv_gcra;

typedef struct srv_gcra_res {
    int ok;              /* the cost fits now */
    int64_t tat;         /* the bucket's time once the cost is taken */
    long long remaining; /* what could still be taken at once after this one (when ok) */
    int64_t reset_ns;    /* until the bucket is full again (after this one when ok) */
    int64_t retry_ns;    /* until the cost fits (0 when ok) */
} srv_gcra_res;

/* What taking cost (> 0) from a bucket of limit per minute (> 0) at now (ns) would do; g is
 * not changed. Each unit of cost moves the bucket's time by floor(cost x 60 s / limit); the
 * cost fits when that time is at most one minute ahead of now. */
void srv_gcra_eval(const srv_gcra *g, int64_t now, long long limit, long long cost,
                   srv_gcra_res *out);
/* Takes cost whether it fits or not (the completion tokens of a finished request). */
void srv_gcra_force(srv_gcra *g, int64_t now, long long limit, long long cost);
/* A duration as OpenAI's x-ratelimit-reset-* give it: "12ms", "1s", "6m0s", "1h2m3.5s". */
const char *srv_fmt_reset(int64_t ns, char *buf, size_t size);

/* The monotonic clock in ns (the clock of the limits). */
int64_t srv_now_ns(void);

/* ---- callers -------------------------------------------------------------------------- */

typedef struct srv_limiter srv_limiter; /* the in-process limiter's tenant: buckets, streams */
typedef struct srv_limits srv_limits;   /* a limiter (serve_limits.h) */

#define SRV_TICKET_MAX 40

typedef struct srv_caller {
    int64_t tenant_id, key_id;
    unsigned scopes;
    char tier[BN_TENANT_TIER_MAX];
    char tenant[BN_TENANT_NAME_MAX]; /* its name: its own limits in the config's tenants */
    srv_limits *by;   /* once admitted: the limiter holding its stream until srv_tenants_end */
    srv_limiter *lim; /* admitted in process: the tenant's buckets */
    char ticket[SRV_TICKET_MAX]; /* admitted by Redis: its stream's member ("" for none) */
    int64_t t0_ns;               /* admitted at (monotonic) */
} srv_caller;

#define SRV_HDR_MAX 8
/* An answer's HTTP status, error and extra headers: status 0 means go on. */
typedef struct srv_verdict {
    unsigned status;
    const char *type, *code; /* of the error object */
    const char *limit;       /* a 429's: requests, tokens, streams or quota */
    char msg[256];
    int n_hdr;
    char hdr[SRV_HDR_MAX][2][40]; /* name, value */
} srv_verdict;

typedef struct srv_tenants srv_tenants;

/* A new set of callers over the platform's store (opened now, so that a bad store fails at
 * start): the PostgreSQL store at database (serve --database; NULL: the config's database
 * key), with a pool of SRV_PG_CONNS connections, else the history. -1 with a one-line
 * message in err. */
#define SRV_PG_CONNS 8
/* On the PostgreSQL store a key's lookup is kept this long (from when it began) for the next
 * requests with that key, in at most SRV_KEY_CACHE_N keys: a revocation or a suspension in
 * the store is seen by every replica within it (serve_tenants.c). */
#define SRV_KEY_CACHE_MS 250
#define SRV_KEY_CACHE_N  64
int srv_tenants_new(const bn_config *cfg, const char *database, srv_tenants **out, char *err,
                    size_t errsz);
void srv_tenants_free(srv_tenants *t);
/* Defines bitnet_store_retries_total and bitnet_store_failures_total{call="auth"|"ledger"} in
 * reg: the store's calls tried again with backoff, and those that failed after every try;
 * bitnet_tenant_phase_seconds{phase}; bitnet_key_lookups_total{from="store"|"cache"}. 0, or
 * -1 (out of memory, a name taken). */
int srv_tenants_metrics(srv_tenants *t, bn_metrics *reg);
/* Shares the limits of every replica through the Redis at url (serve_redis.c, serve --redis):
 * redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N]. A bad url is -1 with
 * err; an unreachable server is not (the limits are local until it answers, logged).
 * lease_ms: how long a stream of a replica that vanished is held. reg (may be NULL) gets
 * bitnet_redis_errors_total and bitnet_limits_mode. */
int srv_tenants_use_redis(srv_tenants *t, const char *url, int64_t lease_ms, bn_metrics *reg,
                          char *err, size_t errsz);

/* Checks the Authorization header (may be NULL) for a key with scope (any of the bits): 401
 * for a missing, malformed, unknown, revoked or expired key, 403 for a suspended tenant or a
 * key without the scope, 500 when the store fails. */
void srv_tenants_auth(srv_tenants *t, const char *authorization, unsigned scope, srv_caller *who,
                      srv_verdict *v);
/* Admits a request of prompt_tokens for who at now_ns (monotonic): its tier's limits and
 * quota; 429 (type requests or tokens, code rate_limit_exceeded; or insufficient_quota for
 * the month's quota) with
 * Retry-After. v->hdr gets the x-ratelimit-* headers either way. On success who->lim holds
 * one of the tenant's streams: srv_tenants_end gives it back. */
void srv_tenants_admit(srv_tenants *t, srv_caller *who, int64_t prompt_tokens, int64_t now_ns,
                       srv_verdict *v);
/* The end of an admitted request: its ledger row (rec: tenant and key are who's), its
 * completion tokens charged, its stream given back. Idempotent by rec->request_id. -1 when
 * the ledger could not be written (the server logs it). rec NULL: the request did not run
 * (no row, nothing charged but its admission). */
int srv_tenants_end(srv_tenants *t, srv_caller *who, bn_usage_rec *rec, int64_t now_ns);

/* ---- the administrative documents (GET /v1/tenants, GET /v1/usage) ------------------ */

/* The JSON text (free()) of GET /v1/tenants for an admin key; NULL with v set on failure. */
char *srv_tenants_list_doc(srv_tenants *t, const srv_caller *who, srv_verdict *v);
/* The JSON text of GET /v1/usage with its query values (each may be NULL): an admin key sees
 * every tenant or tenant=REF, a usage key its own tenant only (another one: 403); from and to
 * as `bitnet usage report` takes them. NULL with v set (400, 403, 404, 500). */
char *srv_tenants_usage_doc(srv_tenants *t, const srv_caller *who, const char *tenant,
                            const char *from, const char *to, srv_verdict *v);
/* GET /v1/keys[?tenant=T] (admin): the keys (never a hash) of every tenant or of T. */
char *srv_tenants_keys_doc(srv_tenants *t, const srv_caller *who, const char *tenant,
                           srv_verdict *v);
/* POST /v1/keys (admin) with body {"tenant": name or id, "scopes": "inference,usage" or
 * ["inference", ...], "expires": DATE (optional)}: the new key, shown this once; audited as
 * key.create by "key:<who's id>". 400 for a bad body, 404 for an unknown tenant. */
char *srv_tenants_key_create(srv_tenants *t, const srv_caller *who, const char *body, size_t len,
                             srv_verdict *v);
/* DELETE /v1/keys/ID (admin): revokes key ID at once (audited); 404 when there is no such
 * key that is not revoked, 400 for a bad id. */
char *srv_tenants_key_revoke(srv_tenants *t, const srv_caller *who, const char *id, srv_verdict *v);

#endif
