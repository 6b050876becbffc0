/* serve_tenants.c - the tenants of `bitnet serve --tenants`: keys, limits, quota, the ledger
 * and the administrative documents (serve_tenants.h). */
#include "serve_tenants.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/db_pg.h"
#include "common/backoff.h"
#include "common/billing.h"
#include "common/cli.h"
#include "common/history.h"
#include "common/tiers.h"
#include "serve_limits.h"
#include "serve_redis.h"

#define COST_MAX  100000000LL /* units one take counts at most (ns arithmetic stays in int64) */
#define DAY_MS    ((int64_t)86400000)
#define NS_PER_MS 1000000LL

/* ---- GCRA ------------------------------------------------------------------------------- */

/* The bucket's time moved by cost units of a limit per minute. */
static int64_t gcra_inc(long long limit, long long cost)
{
    if (cost > COST_MAX) cost = COST_MAX;
    return (int64_t)(cost * SRV_GCRA_WINDOW_NS / limit); /* cost x 6e10 < 2^63 */
}

void srv_gcra_eval(const srv_gcra *g, int64_t now, long long limit, long long cost,
                   srv_gcra_res *out)
{
    const int64_t base = g->tat > now ? g->tat : now;
    const int64_t next = base + gcra_inc(limit, cost);
    out->ok = next - now <= SRV_GCRA_WINDOW_NS;
    const int64_t after = out->ok ? next : base;
    out->tat = after;
    const int64_t unit = gcra_inc(limit, 1), room = SRV_GCRA_WINDOW_NS - (after - now);
    out->remaining = room <= 0 ? 0 : unit <= 0 ? limit : room / unit;
    if (out->remaining > limit) out->remaining = limit;
    out->reset_ns = after - now;
    out->retry_ns = out->ok ? 0 : next - SRV_GCRA_WINDOW_NS - now;
}

void srv_gcra_force(srv_gcra *g, int64_t now, long long limit, long long cost)
{
    g->tat = (g->tat > now ? g->tat : now) + gcra_inc(limit, cost);
}

const char *srv_fmt_reset(int64_t ns, char *buf, size_t size)
{
    if (ns < 0) ns = 0;
    const int64_t ms = (ns + NS_PER_MS - 1) / NS_PER_MS; /* rounded up: wait no less */
    if (ms < 1000) {
        snprintf(buf, size, "%" PRId64 "ms", ms);
        return buf;
    }
    const int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char sec[24];
    if (frac) {
        snprintf(sec, sizeof sec, "%" PRId64 ".%03" PRId64, s, frac);
        for (size_t n = strlen(sec); sec[n - 1] == '0'; n--) sec[n - 1] = '\0';
    } else {
        snprintf(sec, sizeof sec, "%" PRId64, s);
    }
    if (h)
        snprintf(buf, size, "%" PRId64 "h%" PRId64 "m%ss", h, m, sec);
    else if (m)
        snprintf(buf, size, "%" PRId64 "m%ss", m, sec);
    else
        snprintf(buf, size, "%ss", sec);
    return buf;
}

int64_t srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the in-process limiter ---------------------------------------------------------------- */

struct srv_limiter {
    int64_t tenant_id;
    srv_gcra req, tok;
    long long streams; /* admitted and not ended */
    srv_limiter *next;
};

typedef struct local_limits {
    srv_limits base;
    pthread_mutex_t mu;
    srv_limiter *lims;
    srv_ledger_used_fn ledger_used;
    void *ud;
} local_limits;

/* ---- the set of callers ------------------------------------------------------------------ */

/* A key's lookup kept for SRV_KEY_CACHE_MS (the PostgreSQL store): h is the SHA-256 of the
 * key as sent, at_ns when its lookup began, used_ns when a request last took it. */
typedef struct key_cached {
    uint8_t h[BN_KEY_HASH_LEN];
    bn_key_auth a;
    int64_t at_ns; /* 0: free */
    int64_t used_ns;
} key_cached;

struct srv_tenants {
    const bn_config *cfg;
    pthread_mutex_t mu;
    bn_db **idle; /* store handles no thread holds */
    size_t n_idle, cap_idle;
    srv_limits *limits;             /* in process, or Redis (srv_tenants_use_redis) */
    cm_billing *billing;            /* the meter events' sender when billing is configured */
    bn_pg_pool *pg;                 /* the PostgreSQL store (serve --database); NULL: the history */
    const char *pg_url;             /* its URL (the config's or the argument's: outlives t) */
    bn_mfamily *retries, *failures; /* bitnet_store_*_total{call} (srv_tenants_metrics) */
    bn_mfamily *phase;              /* bitnet_tenant_phase_seconds{phase}: auth, admit */
    bn_mfamily *lookups;            /* bitnet_key_lookups_total{from}: store, cache */
    int64_t retention_next_ms;      /* under mu: when to look at the daily retention again */
    pthread_mutex_t kc_mu;          /* guards keys and kc_gen */
    key_cached keys[SRV_KEY_CACHE_N];
    unsigned kc_gen;                /* counts cache_clear: a lookup begun before one is not kept */
    pthread_mutex_t lq_mu;        /* guards the ledger writes waiting (record_usage) */
    pthread_cond_t lq_cv;         /* a batch of them written */
    struct ledger_wait *lq_head;  /* waiting, oldest first */
    int lq_writing;               /* a thread writes a batch */
    pthread_t refresher; /* looks the keys in use up again (refresh_keys) */
    int refreshing;      /* it runs */
    int kc_stop;         /* it is to stop (atomic) */
};

static void *refresh_keys(void *ud);

/* A store handle for this thread alone until db_give; NULL (v: 500) when it cannot open. */
static bn_db *db_take(srv_tenants *t, srv_verdict *v)
{
    bn_db *db = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->n_idle) db = t->idle[--t->n_idle];
    pthread_mutex_unlock(&t->mu);
    char err[256];
    if (!db && cm_store_open(&db, t->pg, err, sizeof err)) {
        db = NULL;
        if (v) {
            v->status = 500, v->type = "server_error", v->code = NULL;
            snprintf(v->msg, sizeof v->msg, "the tenant store cannot be opened: %.200s", err);
        }
    }
    return db;
}

static void db_give(srv_tenants *t, bn_db *db)
{
    if (!db) return;
    pthread_mutex_lock(&t->mu);
    if (t->n_idle == t->cap_idle) {
        const size_t cap = t->cap_idle ? t->cap_idle * 2 : 8;
        bn_db **p = realloc(t->idle, cap * sizeof *p);
        if (p) t->idle = p, t->cap_idle = cap;
    }
    const int kept = t->n_idle < t->cap_idle;
    if (kept) t->idle[t->n_idle++] = db;
    pthread_mutex_unlock(&t->mu);
    if (!kept) bn_db_close(db);
}

#define AUTH_TRIES   5 /* backoff from 0.2 s: about 3 s at most */
#define LEDGER_TRIES 8 /* backoff from 0.2 s to 2 s: about 9 s at most */

/* A call on a store handle (arg: its arguments); its status, the message on the handle. */
typedef bn_status (*store_call)(bn_db *db, void *arg);

int srv_tenants_metrics(srv_tenants *t, bn_metrics *reg)
{
    static const char *const by_call[] = {"call", NULL};
    static const char *const calls[][1] = {{"auth"}, {"ledger"}};
    t->retries = bn_metrics_define(reg, BN_METRIC_COUNTER, "bitnet_store_retries_total",
                                   "Store calls tried again after the store failed (PostgreSQL "
                                   "restarting): call auth (the key lookup) or ledger (the "
                                   "usage row).",
                                   by_call, NULL, 0);
    t->failures = bn_metrics_define(reg, BN_METRIC_COUNTER, "bitnet_store_failures_total",
                                    "Store calls that failed after every try: auth answered 500, "
                                    "ledger 503 (the answer withheld).",
                                    by_call, NULL, 0);
    static const char *const by_phase[] = {"phase", NULL};
    static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    t->phase = bn_metrics_define(reg, BN_METRIC_HISTOGRAM, "bitnet_tenant_phase_seconds",
                                 "Time a tenant's request spends before it is queued: phase "
                                 "auth (the key looked up in the store, tries again included), "
                                 "admit (the limits: the Redis script, or in process).",
                                 by_phase, buckets, sizeof buckets / sizeof buckets[0]);
    static const char *const by_from[] = {"from", NULL};
    static const char *const froms[][1] = {{"store"}, {"cache"}, {"refresh"}};
    t->lookups = bn_metrics_define(reg, BN_METRIC_COUNTER, "bitnet_key_lookups_total",
                                   "API keys looked up: from the store, or (PostgreSQL) from "
                                   "this replica's lookups of the last 250 ms; refresh: "
                                   "looked up again in the store for the requests to come.",
                                   by_from, NULL, 0);
    int rc = t->retries && t->failures && t->phase && t->lookups ? 0 : -1;
    for (int i = 0; !rc && i < 2; i++)
        rc = bn_metric_add(t->retries, calls[i], 0) || bn_metric_add(t->failures, calls[i], 0);
    for (int i = 0; !rc && i < 3; i++) rc = bn_metric_add(t->lookups, froms[i], 0);
    return rc;
}

/* Observes the time since t0_ns (srv_now_ns) as phase. */
static void phase_done(const srv_tenants *t, const char *phase, int64_t t0_ns)
{
    const char *lv[] = {phase};
    if (t->phase) bn_metric_observe(t->phase, lv, (double)(srv_now_ns() - t0_ns) * 1e-9);
}

/* Runs fn on a store handle, again with backoff (common/backoff.h) while the store fails
 * (BN_ERR_IO: a PostgreSQL server that restarts, its connections remade at the next try) up
 * to tries times in all, counted under call. The last try's status; its message in err, the
 * tries in *n. */
static bn_status store_retry(srv_tenants *t, const char *call, int tries, store_call fn, void *arg,
                             char *err, size_t errsz, int *n)
{
    unsigned seed = (unsigned)srv_now_ns();
    const char *lv[] = {call};
    srv_verdict v;
    for (*n = 1;; ++*n) {
        bn_db *db = db_take(t, &v);
        const bn_status s = db ? fn(db, arg) : BN_ERR_IO;
        snprintf(err, errsz, "%s", !db ? v.msg : s != BN_OK ? bn_db_errmsg(db) : "");
        db_give(t, db);
        if (s == BN_ERR_IO && *n >= tries && t->failures) bn_metric_add(t->failures, lv, 1);
        if (s != BN_ERR_IO || *n >= tries) return s;
        if (t->retries) bn_metric_add(t->retries, lv, 1);
        const double w = cm_backoff_s(*n, 0.2, 2.0, &seed);
        nanosleep(&(struct timespec){(time_t)w, (long)((w - (double)(time_t)w) * 1e9)}, NULL);
    }
}

/* srv_ledger_used_fn over the tenants' store. */
static int ledger_used(void *ud, int64_t tenant_id, int64_t start_ms, long long *used,
                       srv_verdict *v)
{
    srv_tenants *t = ud;
    bn_db *db = db_take(t, v);
    if (!db) return -1;
    bn_usage_total tot;
    const bn_status rc = bn_db_usage_total(db, tenant_id, start_ms, 0, &tot);
    if (rc != BN_OK)
        snprintf(v->msg, sizeof v->msg, "the usage ledger failed: %s", bn_db_errmsg(db));
    db_give(t, db);
    if (rc != BN_OK) return srv_verdict_set(v, 500, "server_error", NULL, v->msg), -1;
    *used = (long long)(tot.prompt_tokens + tot.completion_tokens);
    return 0;
}

/* The billing sender (common/billing.h) as a thread, when billing.event_name is set. */
static int billing_start(srv_tenants *t, char *err, size_t errsz)
{
    cm_billing_opts o;
    const int r = cm_billing_opts_load(t->cfg, &o, err, errsz);
    if (r) return r < 0 ? -1 : 0; /* 1: billing is off */
    o.database = t->pg_url;       /* the sender's own connection: it never waits for the pool */
    int rc = cm_billing_new(&o, "bitnet serve: billing", &t->billing, err, errsz);
    if (rc == 0 && (rc = cm_billing_start(t->billing)) != 0)
        cm_fail(err, errsz, "cannot start the billing thread");
    if (rc == 0)
        fprintf(stderr, "bitnet serve: billing: meter events '%s' to %s%s\n", o.event_name,
                o.endpoint, CM_BILLING_PATH);
    memset(o.key, 0, sizeof o.key);
    return rc ? -1 : 0;
}

/* The PostgreSQL store at database (or the config's), when one is named. */
static int open_pg(srv_tenants *t, const char *database, char *err, size_t errsz)
{
    const char *url;
    if (cm_store_url(t->cfg, database, &url, err, errsz)) return -1;
    if (!url) return 0;
    if (bn_pg_pool_new(url, SRV_PG_CONNS, &t->pg, err, errsz)) return -1;
    t->pg_url = url;
    fprintf(stderr, "bitnet serve: the tenants' store is PostgreSQL (schema %d, %d connections)\n",
            bn_pg_pool_schema(t->pg), SRV_PG_CONNS);
    return 0;
}

int srv_tenants_new(const bn_config *cfg, const char *database, srv_tenants **out, char *err,
                    size_t errsz)
{
    srv_tenants *t = calloc(1, sizeof *t);
    if (!t) return cm_fail(err, errsz, "out of memory");
    t->cfg = cfg;
    if (pthread_mutex_init(&t->mu, NULL)) return free(t), cm_fail(err, errsz, "out of resources");
    if (pthread_mutex_init(&t->kc_mu, NULL)) {
        pthread_mutex_destroy(&t->mu);
        return free(t), cm_fail(err, errsz, "out of resources");
    }
    if (pthread_mutex_init(&t->lq_mu, NULL) || pthread_cond_init(&t->lq_cv, NULL)) {
        pthread_mutex_destroy(&t->kc_mu);
        pthread_mutex_destroy(&t->mu);
        return free(t), cm_fail(err, errsz, "out of resources");
    }
    t->limits = srv_limits_local_new(ledger_used, t);
    bn_db *db = NULL;
    if (!t->limits || open_pg(t, database, err, errsz) || cm_store_open(&db, t->pg, err, errsz)) {
        if (!t->limits) cm_fail(err, errsz, "out of memory");
        srv_tenants_free(t);
        return -1;
    }
    db_give(t, db);
    if (billing_start(t, err, errsz)) {
        srv_tenants_free(t);
        return -1;
    }
    if (t->pg && pthread_create(&t->refresher, NULL, refresh_keys, t) == 0)
        t->refreshing = 1;
    else if (t->pg) /* the requests look their keys up themselves when a lookup runs out */
        fprintf(stderr, "bitnet serve: cannot start the thread that keeps key lookups fresh\n");
    *out = t;
    return 0;
}

int srv_tenants_use_redis(srv_tenants *t, const char *url, int64_t lease_ms, bn_metrics *reg,
                          char *err, size_t errsz)
{
    const srv_redis_opts o = {.url = url,
                              .lease_ms = lease_ms,
                              .reg = reg,
                              .ledger_used = ledger_used,
                              .ud = t,
                              .local = t->limits};
    srv_limits *r;
    if (srv_limits_redis_new(&o, &r, err, errsz)) return -1;
    t->limits = r; /* it owns the local one now */
    return 0;
}

void srv_tenants_free(srv_tenants *t)
{
    if (!t) return;
    if (t->refreshing) {
        __atomic_store_n(&t->kc_stop, 1, __ATOMIC_RELEASE);
        pthread_join(t->refresher, NULL);
    }
    cm_billing_free(t->billing); /* first: its thread stops */
    for (size_t i = 0; i < t->n_idle; i++) bn_db_close(t->idle[i]);
    free(t->idle);
    if (t->limits) t->limits->ops->free(t->limits);
    bn_pg_pool_free(t->pg); /* after every handle on it */
    pthread_cond_destroy(&t->lq_cv);
    pthread_mutex_destroy(&t->lq_mu);
    pthread_mutex_destroy(&t->kc_mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void srv_verdict_set(srv_verdict *v, unsigned status, const char *type, const char *code,
                     const char *msg)
{
    v->status = status, v->type = type, v->code = code;
    if (msg != v->msg) snprintf(v->msg, sizeof v->msg, "%s", msg);
}

static void add_hdr(srv_verdict *v, const char *name, const char *value)
{
    if (v->n_hdr >= SRV_HDR_MAX) return;
    snprintf(v->hdr[v->n_hdr][0], sizeof v->hdr[0][0], "%s", name);
    snprintf(v->hdr[v->n_hdr][1], sizeof v->hdr[0][1], "%s", value);
    v->n_hdr++;
}

/* ---- authentication ---------------------------------------------------------------------- */

static void key_refused(srv_verdict *v, bn_key_reason r)
{
    char msg[128];
    snprintf(msg, sizeof msg, "API key refused: %s", bn_key_reason_str(r));
    if (r == BN_KEY_SUSPENDED)
        srv_verdict_set(v, 403, "permission_error", "tenant_suspended", msg);
    else
        srv_verdict_set(v, 401, "invalid_request_error", "invalid_api_key", msg);
}

typedef struct lookup_arg {
    const char *key;
    bn_key_auth a;
} lookup_arg;

static bn_status lookup(bn_db *db, void *arg)
{
    lookup_arg *la = arg;
    return bn_db_key_lookup(db, la->key, &la->a);
}

/* ---- the lookups kept (the PostgreSQL store) ------------------------------------------------
 *
 * Every request looks its key up; on PostgreSQL that is a round trip and a query, and under
 * load the replicas send hundreds a second for the same few keys. A lookup whose key was
 * found (revoked, expired and suspended ones too) is kept for SRV_KEY_CACHE_MS from when it
 * began, so that a revocation or a suspension committed in the store is seen by every
 * replica within that time (the bound: a second); this replica's own revocation
 * (DELETE /v1/keys/ID) forgets them all at once. Unknown keys are not kept: a caller trying
 * keys cannot fill it. The history (sqlite, one machine) is read every time. */

static int same_hash(const uint8_t *a, const uint8_t *b)
{
    unsigned d = 0;
    for (size_t i = 0; i < BN_KEY_HASH_LEN; i++) d |= a[i] ^ b[i];
    return d == 0;
}

/* The lookup of h kept since now_ns - SRV_KEY_CACHE_MS into *a; 0 when there is none. */
static int cache_get(srv_tenants *t, const uint8_t *h, int64_t now_ns, bn_key_auth *a)
{
    int hit = 0;
    pthread_mutex_lock(&t->kc_mu);
    for (int i = 0; i < SRV_KEY_CACHE_N && !hit; i++) {
        const key_cached *k = &t->keys[i];
        if (k->at_ns && now_ns - k->at_ns < SRV_KEY_CACHE_MS * NS_PER_MS && same_hash(k->h, h))
            *a = k->a, hit = 1, t->keys[i].used_ns = now_ns;
    }
    pthread_mutex_unlock(&t->kc_mu);
    return hit;
}

/* The count of cache_clear so far, for cache_put. */
static unsigned cache_gen(srv_tenants *t)
{
    pthread_mutex_lock(&t->kc_mu);
    const unsigned g = t->kc_gen;
    pthread_mutex_unlock(&t->kc_mu);
    return g;
}

/* Keeps a (the lookup of h begun at at_ns, when the count of cache_clear was gen) in h's
 * entry, a free one or the oldest; not when the cache was cleared since (a revocation by this
 * replica the lookup may not have seen). */
static void cache_put(srv_tenants *t, const uint8_t *h, int64_t at_ns, unsigned gen,
                      const bn_key_auth *a)
{
    pthread_mutex_lock(&t->kc_mu);
    if (gen != t->kc_gen) {
        pthread_mutex_unlock(&t->kc_mu);
        return;
    }
    key_cached *slot = &t->keys[0];
    for (int i = 0; i < SRV_KEY_CACHE_N; i++) {
        key_cached *k = &t->keys[i];
        if (k->at_ns && same_hash(k->h, h)) {
            slot = k;
            break;
        }
        if (k->at_ns < slot->at_ns) slot = k;
    }
    if (at_ns > slot->at_ns || !same_hash(slot->h, h)) {
        if (!same_hash(slot->h, h)) slot->used_ns = at_ns;
        memcpy(slot->h, h, sizeof slot->h);
        slot->a = *a;
        slot->at_ns = at_ns;
    }
    pthread_mutex_unlock(&t->kc_mu);
}

static void cache_clear(srv_tenants *t)
{
    pthread_mutex_lock(&t->kc_mu);
    memset(t->keys, 0, sizeof t->keys);
    t->kc_gen++;
    pthread_mutex_unlock(&t->kc_mu);
}

/* Forgets h's lookup (its key is gone from the store). */
static void cache_drop(srv_tenants *t, const uint8_t *h)
{
    pthread_mutex_lock(&t->kc_mu);
    for (int i = 0; i < SRV_KEY_CACHE_N; i++)
        if (t->keys[i].at_ns && same_hash(t->keys[i].h, h)) memset(&t->keys[i], 0, sizeof t->keys[i]);
    pthread_mutex_unlock(&t->kc_mu);
}

/* The refresher: every SRV_KEY_REFRESH_MS, the keys a request took in the last
 * SRV_KEY_IDLE_MS whose lookup began SRV_KEY_REFRESH_AGE_MS ago or more are looked up again
 * (a thread of its own, with one store handle a round), so that under a steady load their lookup
 * is always fresh and no request waits for the store, nor do the requests that come together
 * when a lookup runs out each look the key up. A kept lookup is still used only for
 * SRV_KEY_CACHE_MS from when it began: a refresh that fails or is slow (the store
 * restarting) changes nothing, the requests look the key up themselves again. */
#define SRV_KEY_REFRESH_MS     50
#define SRV_KEY_REFRESH_AGE_MS 100
#define SRV_KEY_IDLE_MS        10000

static void *refresh_keys(void *ud)
{
    srv_tenants *t = ud;
    const char *lv[] = {"refresh"};
    const struct timespec period = {0, SRV_KEY_REFRESH_MS * 1000000L};
    while (!__atomic_load_n(&t->kc_stop, __ATOMIC_ACQUIRE)) {
        nanosleep(&period, NULL);
        uint8_t due[SRV_KEY_CACHE_N][BN_KEY_HASH_LEN];
        int n = 0;
        const int64_t now = srv_now_ns();
        pthread_mutex_lock(&t->kc_mu);
        for (int i = 0; i < SRV_KEY_CACHE_N; i++) {
            const key_cached *k = &t->keys[i];
            if (k->at_ns && now - k->used_ns < SRV_KEY_IDLE_MS * NS_PER_MS &&
                now - k->at_ns >= SRV_KEY_REFRESH_AGE_MS * NS_PER_MS)
                memcpy(due[n++], k->h, BN_KEY_HASH_LEN);
        }
        pthread_mutex_unlock(&t->kc_mu);
        bn_db *db = n ? db_take(t, NULL) : NULL;
        for (int i = 0; db && i < n && !__atomic_load_n(&t->kc_stop, __ATOMIC_ACQUIRE); i++) {
            const int64_t t0 = srv_now_ns();
            const unsigned gen = cache_gen(t);
            bn_key_auth a;
            if (bn_db_key_lookup_hash(db, due[i], &a) != BN_OK)
                break; /* the store fails: the requests try it themselves */
            if (t->lookups) bn_metric_add(t->lookups, lv, 1);
            if (a.reason == BN_KEY_UNKNOWN)
                cache_drop(t, due[i]);
            else
                cache_put(t, due[i], t0, gen, &a);
        }
        db_give(t, db);
    }
    return NULL;
}

/* la's key looked up (the cache, then the store with tries again); its status, the message
 * in err. */
static bn_status lookup_key(srv_tenants *t, lookup_arg *la, int64_t t0, char *err, size_t errsz)
{
    uint8_t h[BN_KEY_HASH_LEN] = {0};
    const char *lv[][1] = {{"store"}, {"cache"}};
    if (t->pg) bn_db_key_digest(la->key, h);
    const int hit = t->pg && cache_get(t, h, t0, &la->a);
    const unsigned gen = t->pg ? cache_gen(t) : 0;
    if (t->lookups) bn_metric_add(t->lookups, lv[hit], 1);
    if (hit) return BN_OK;
    int n;
    const bn_status rc = store_retry(t, "auth", AUTH_TRIES, lookup, la, err, errsz, &n);
    if (rc == BN_OK && t->pg && la->a.reason != BN_KEY_MALFORMED && la->a.reason != BN_KEY_UNKNOWN)
        cache_put(t, h, t0, gen, &la->a);
    return rc;
}

void srv_tenants_auth(srv_tenants *t, const char *authorization, unsigned scope, srv_caller *who,
                      srv_verdict *v)
{
    memset(who, 0, sizeof *who);
    memset(v, 0, sizeof *v);
    if (!authorization)
        return srv_verdict_set(v, 401, "invalid_request_error", "invalid_api_key",
                               "no API key: send the header Authorization: Bearer KEY");
    if (strncmp(authorization, "Bearer ", 7) || !authorization[7])
        return srv_verdict_set(v, 401, "invalid_request_error", "invalid_api_key",
                               "malformed Authorization header: expected Bearer KEY");
    lookup_arg la = {authorization + 7, {0}};
    char err[512];
    const int64_t t0 = srv_now_ns();
    const bn_status rc = lookup_key(t, &la, t0, err, sizeof err);
    phase_done(t, "auth", t0);
    const bn_key_auth a = la.a;
    if (rc != BN_OK) {
        snprintf(v->msg, sizeof v->msg, "the tenant store failed: %.200s", err);
        return srv_verdict_set(v, 500, "server_error", NULL, v->msg);
    }
    if (a.reason != BN_KEY_OK) return key_refused(v, a.reason);
    if (!(a.scopes & scope)) {
        char want[32], msg[128];
        snprintf(msg, sizeof msg, "this key lacks the scope this endpoint needs (%s)",
                 bn_scopes_str(scope, want, sizeof want));
        return srv_verdict_set(v, 403, "permission_error", "insufficient_scope", msg);
    }
    who->tenant_id = a.tenant_id, who->key_id = a.key_id, who->scopes = a.scopes;
    snprintf(who->tier, sizeof who->tier, "%s", a.tier);
    snprintf(who->tenant, sizeof who->tenant, "%s", a.tenant);
}

/* ---- refusals and headers (both limiters) ------------------------------------------------ */

void srv_month_bounds(int64_t *start_ms, int64_t *next_ms)
{
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_mday = 1, tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    *start_ms = (int64_t)timegm(&tm) * 1000;
    if (++tm.tm_mon == 12) tm.tm_mon = 0, tm.tm_year++;
    *next_ms = (int64_t)timegm(&tm) * 1000;
}

void srv_retry_after(srv_verdict *v, int64_t ns)
{
    char b[32];
    const long long secs = (long long)((ns + 999999999LL) / 1000000000LL);
    snprintf(b, sizeof b, "%lld", secs > 0 ? secs : 1LL);
    add_hdr(v, "Retry-After", b);
    snprintf(b, sizeof b, "%lld", (long long)((ns + NS_PER_MS - 1) / NS_PER_MS));
    add_hdr(v, "retry-after-ms", b);
}

void srv_refuse_quota(srv_verdict *v, const srv_caller *who, const cm_tier *tier, long long used)
{
    char msg[200];
    int64_t start, next;
    srv_month_bounds(&start, &next);
    snprintf(msg, sizeof msg,
             "the monthly quota of tier %s (%lld tokens) is used up: %lld tokens this month",
             who->tier, tier->monthly_tokens, used);
    srv_verdict_set(v, 429, "insufficient_quota", "insufficient_quota", msg);
    v->limit = "quota";
    srv_retry_after(v, (next - (int64_t)time(NULL) * 1000) * NS_PER_MS);
}

void srv_refuse_rate(srv_verdict *v, const srv_caller *who, const cm_tier *tier, const char *by,
                     int64_t prompt, int64_t wait_ns)
{
    char msg[200];
    if (!strcmp(by, "streams")) {
        snprintf(msg, sizeof msg, "tier %s runs at most %lld requests at once", who->tier,
                 tier->concurrent_streams);
        srv_verdict_set(v, 429, "requests", "rate_limit_exceeded", msg);
        v->limit = "streams";
        return srv_retry_after(v, 1000000000LL);
    }
    if (tier->tokens_per_min > 0 && prompt > tier->tokens_per_min)
        snprintf(msg, sizeof msg,
                 "the prompt's %lld tokens exceed tier %s's %lld tokens per minute",
                 (long long)prompt, who->tier, tier->tokens_per_min);
    else
        snprintf(msg, sizeof msg,
                 "rate limit of tier %s reached (%lld requests, %lld tokens per "
                 "minute); retry later",
                 who->tier, tier->requests_per_min, tier->tokens_per_min);
    srv_verdict_set(v, 429, strcmp(by, "tokens") ? "requests" : "tokens", "rate_limit_exceeded",
                    msg);
    v->limit = v->type;
    srv_retry_after(v, wait_ns);
}

void srv_bucket_hdrs(srv_verdict *v, const char *what, long long limit, const srv_gcra_res *r)
{
    char name[40], val[40];
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", what);
    snprintf(val, sizeof val, "%lld", limit);
    add_hdr(v, name, val);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", what);
    snprintf(val, sizeof val, "%lld", r->ok ? r->remaining : 0);
    add_hdr(v, name, val);
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", what);
    add_hdr(v, name, srv_fmt_reset(r->reset_ns, val, sizeof val));
}

/* ---- the in-process limiter: admission and end --------------------------------------------- */

/* Under L->mu: the tenant's limiter (made on first use); NULL when out of memory. */
static srv_limiter *limiter_locked(local_limits *L, int64_t tenant_id)
{
    for (srv_limiter *l = L->lims; l; l = l->next)
        if (l->tenant_id == tenant_id) return l;
    srv_limiter *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->tenant_id = tenant_id;
    l->next = L->lims;
    L->lims = l;
    return l;
}

/* The headers of a bucket after an admission: when refused, the bucket as it is (nothing was
 * taken), its remaining 0 when it was the one that refused. */
static void show_bucket(srv_verdict *v, const char *what, const srv_gcra *g, long long limit,
                        int64_t now, int admitted, const srv_gcra_res *r)
{
    if (admitted) return srv_bucket_hdrs(v, what, limit, r);
    srv_gcra_res cur;
    srv_gcra_eval(g, now, limit, 0, &cur);
    cur.ok = r->ok;
    srv_bucket_hdrs(v, what, limit, &cur);
}

/* Under L->mu: the tenant's limits for a request of prompt tokens; 0 when it may run. */
static int take_limits(srv_limiter *l, const cm_tier *tier, const srv_caller *who, int64_t prompt,
                       int64_t now, srv_verdict *v)
{
    srv_gcra_res rq = {.ok = 1}, tk = {.ok = 1};
    if (tier->requests_per_min > 0) srv_gcra_eval(&l->req, now, tier->requests_per_min, 1, &rq);
    if (tier->tokens_per_min > 0) srv_gcra_eval(&l->tok, now, tier->tokens_per_min, prompt, &tk);
    const int streams_ok = tier->concurrent_streams <= 0 || l->streams < tier->concurrent_streams;
    const int ok = rq.ok && tk.ok && streams_ok;
    if (ok && tier->requests_per_min > 0) l->req.tat = rq.tat;
    if (ok && tier->tokens_per_min > 0) l->tok.tat = tk.tat;
    if (ok) l->streams++;
    if (tier->requests_per_min > 0)
        show_bucket(v, "requests", &l->req, tier->requests_per_min, now, ok, &rq);
    if (tier->tokens_per_min > 0)
        show_bucket(v, "tokens", &l->tok, tier->tokens_per_min, now, ok, &tk);
    if (ok) return 0;
    const int64_t wait = rq.retry_ns > tk.retry_ns ? rq.retry_ns : tk.retry_ns;
    srv_refuse_rate(v, who, tier,
                    !streams_ok ? "streams"
                    : tk.ok     ? "requests"
                                : "tokens",
                    prompt, wait);
    return -1;
}

static int local_admit(srv_limits *base, srv_caller *who, const cm_tier *tier, int64_t prompt,
                       int64_t now, srv_verdict *v)
{
    local_limits *L = (local_limits *)base;
    if (tier->monthly_tokens > 0) {
        int64_t start, next;
        long long used;
        srv_month_bounds(&start, &next);
        if (L->ledger_used(L->ud, who->tenant_id, start, &used, v)) return -1;
        if (used >= tier->monthly_tokens) return srv_refuse_quota(v, who, tier, used), -1;
    }
    pthread_mutex_lock(&L->mu);
    srv_limiter *l = limiter_locked(L, who->tenant_id);
    const int bad = !l || take_limits(l, tier, who, prompt, now, v);
    pthread_mutex_unlock(&L->mu);
    if (!l) return srv_verdict_set(v, 500, "server_error", NULL, "out of memory"), -1;
    if (bad) return -1;
    who->lim = l, who->by = base;
    return 0;
}

static void local_end(srv_limits *base, srv_caller *who, const cm_tier *tier, int64_t completion,
                      int64_t used, int64_t now)
{
    (void)used; /* the quota is the ledger's: the row is its count */
    local_limits *L = (local_limits *)base;
    srv_limiter *l = who->lim;
    if (!l) return;
    who->lim = NULL;
    pthread_mutex_lock(&L->mu);
    if (tier && tier->tokens_per_min > 0 && completion > 0)
        srv_gcra_force(&l->tok, now, tier->tokens_per_min, completion);
    l->streams--;
    pthread_mutex_unlock(&L->mu);
}

static void local_free(srv_limits *base)
{
    local_limits *L = (local_limits *)base;
    for (srv_limiter *l = L->lims, *next; l; l = next) next = l->next, free(l);
    pthread_mutex_destroy(&L->mu);
    free(L);
}

srv_limits *srv_limits_local_new(srv_ledger_used_fn used, void *ud)
{
    static const struct srv_limits_ops ops = {local_admit, local_end, local_free};
    local_limits *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    if (pthread_mutex_init(&L->mu, NULL)) return free(L), NULL;
    L->base.ops = &ops, L->ledger_used = used, L->ud = ud;
    return &L->base;
}

/* ---- admission --------------------------------------------------------------------------- */

void srv_tenants_admit(srv_tenants *t, srv_caller *who, int64_t prompt_tokens, int64_t now_ns,
                       srv_verdict *v)
{
    memset(v, 0, sizeof *v);
    cm_tier tier;
    const int64_t t0 = srv_now_ns();
    if (cm_tenant_limits(t->cfg, who->tier, who->tenant, &tier, NULL)) {
        snprintf(v->msg, sizeof v->msg, "the tenant's tier '%s' is not in the config", who->tier);
        return srv_verdict_set(v, 500, "server_error", NULL, v->msg);
    }
    const int refused = t->limits->ops->admit(t->limits, who, &tier, prompt_tokens, now_ns, v);
    phase_done(t, "admit", t0);
    if (refused) return;
    who->t0_ns = now_ns;
}

/* The store's retention periods (bitnet/db.h), applied when a day has passed since they last
 * were, by any process (bn_db_retention_daily); looked at once an hour, after a ledger row, so
 * that a server that runs for weeks applies them daily. */
static void daily_retention(srv_tenants *t, bn_db *db)
{
    const int64_t wall = (int64_t)time(NULL) * 1000;
    pthread_mutex_lock(&t->mu);
    const int due = wall >= t->retention_next_ms;
    if (due) t->retention_next_ms = wall + 3600000;
    pthread_mutex_unlock(&t->mu);
    bn_retention_counts c;
    int applied = 0;
    if (!due) return;
    if (bn_db_retention_daily(db, &applied, &c) != BN_OK)
        fprintf(stderr, "bitnet serve: retention not applied: %s\n", bn_db_errmsg(db));
    else if (applied && (c.runs || c.ledger_rows || c.keys))
        fprintf(stderr,
                "bitnet serve: retention: %" PRId64 " runs deleted, %" PRId64
                " ledger rows folded into %" PRId64 ", %" PRId64 " keys deleted\n",
                c.runs, c.ledger_rows, c.ledger_aggregates, c.keys);
}

/* ---- the ledger writes of requests that end together ---------------------------------------
 *
 * On PostgreSQL a ledger row is a transaction and a round trip, and most of the store's work
 * under load. The rows of requests that end while another row is being written wait for it,
 * and the next writer (the first of them whose turn it is) writes up to LEDGER_BATCH of them,
 * of one tenant, in one statement (bn_db_usage_record_n): group commit. On the history
 * (sqlite) the same batch is a row at a time, in this one writer instead of in each request's
 * thread. A lone request writes its row at once; each waits for its own row to be in the store
 * before its answer is sent. */
#define LEDGER_BATCH 32

typedef struct ledger_wait {
    const bn_usage_rec *rec;
    struct ledger_wait *next;
    int done, fresh, tries;
    bn_status s;
    char err[400];
} ledger_wait;

typedef struct batch_arg {
    srv_tenants *t;
    const bn_usage_rec *recs[LEDGER_BATCH];
    int fresh[LEDGER_BATCH];
    bn_status each[LEDGER_BATCH];
    size_t n;
} batch_arg;

static bn_status record_batch(bn_db *db, void *arg)
{
    batch_arg *b = arg;
    const bn_status s = bn_db_usage_record_n(db, b->recs, b->n, b->fresh, b->each);
    if (s == BN_OK) daily_retention(b->t, db);
    return s;
}

/* w's row written, by this thread in a batch or by another's; t->lq_mu held. */
static void record_queued(srv_tenants *t, ledger_wait *w)
{
    ledger_wait **end = &t->lq_head;
    while (*end) end = &(*end)->next;
    *end = w;
    while (!w->done) {
        if (t->lq_writing) {
            pthread_cond_wait(&t->lq_cv, &t->lq_mu);
            continue;
        }
        t->lq_writing = 1;
        ledger_wait *batch[LEDGER_BATCH];
        batch_arg ba = {.t = t, .n = 0};
        const int64_t tenant = t->lq_head->rec->tenant_id;
        for (ledger_wait **p = &t->lq_head; *p && ba.n < LEDGER_BATCH;) {
            if ((*p)->rec->tenant_id != tenant) {
                p = &(*p)->next;
                continue;
            }
            batch[ba.n] = *p;
            ba.recs[ba.n++] = (*p)->rec;
            *p = (*p)->next;
        }
        pthread_mutex_unlock(&t->lq_mu);
        char err[400];
        int n;
        const bn_status s =
                store_retry(t, "ledger", LEDGER_TRIES, record_batch, &ba, err, sizeof err, &n);
        pthread_mutex_lock(&t->lq_mu);
        for (size_t i = 0; i < ba.n; i++) {
            ledger_wait *x = batch[i];
            x->s = s != BN_OK ? s : ba.each[i];
            x->fresh = s == BN_OK && ba.fresh[i];
            x->tries = n;
            if (s != BN_OK)
                snprintf(x->err, sizeof x->err, "%s", err);
            else if (ba.each[i] == BN_ERR_NOT_FOUND)
                snprintf(x->err, sizeof x->err, "usage: no tenant %" PRId64 " (or it is erased)",
                         tenant);
            else if (ba.each[i] != BN_OK)
                snprintf(x->err, sizeof x->err, "usage: a malformed ledger row");
            x->done = 1;
        }
        t->lq_writing = 0;
        pthread_cond_broadcast(&t->lq_cv);
    }
}

/* The ledger row of rec, tried again with backoff while the store fails: the row is
 * idempotent by request id, so a try after a write whose answer was lost counts it once. 0,
 * or -1 after the last try (logged). */
static int record_usage(srv_tenants *t, const bn_usage_rec *rec, int *fresh)
{
    ledger_wait w = {.rec = rec};
    pthread_mutex_lock(&t->lq_mu);
    record_queued(t, &w);
    pthread_mutex_unlock(&t->lq_mu);
    const bn_status s = w.s;
    *fresh = w.fresh;
    if (s == BN_OK && w.tries > 1)
        fprintf(stderr, "bitnet serve: the usage of %s is in the ledger (try %d)\n",
                rec->request_id, w.tries);
    if (s != BN_OK)
        fprintf(stderr, "bitnet serve: the usage of %s is not in the ledger: %s\n", rec->request_id,
                w.err);
    return s == BN_OK ? 0 : -1;
}

int srv_tenants_end(srv_tenants *t, srv_caller *who, bn_usage_rec *rec, int64_t now)
{
    srv_limits *by = who->by;
    if (!by) return 0; /* not admitted, or ended already */
    who->by = NULL;
    int rc = 0, fresh = 0;
    if (rec) {
        rec->tenant_id = who->tenant_id, rec->key_id = who->key_id;
        rc = record_usage(t, rec, &fresh);
        if (fresh) cm_billing_wake(t->billing); /* its meter event is in the outbox */
    }
    /* the ledger first: a quota counter seeded from the ledger meanwhile counts it at most
     * twice, never not at all */
    cm_tier tier;
    const int have = !cm_tenant_limits(t->cfg, who->tier, who->tenant, &tier, NULL);
    const int64_t used = rec && fresh ? rec->prompt_tokens + rec->completion_tokens : 0;
    by->ops->end(by, who, have ? &tier : NULL, rec ? rec->completion_tokens : 0, used, now);
    return rc;
}

/* ---- the administrative documents ------------------------------------------------------- */

static char *print_doc(cJSON *d, srv_verdict *v)
{
    char *text = d ? cJSON_PrintUnformatted(d) : NULL;
    cJSON_Delete(d);
    if (!text) srv_verdict_set(v, 500, "server_error", NULL, "out of memory");
    return text;
}

static void actor_of(const srv_caller *who, char *buf, size_t size);

static void audit(bn_db *db, const srv_caller *who, const char *action, const char *target)
{
    char actor[40];
    actor_of(who, actor, sizeof actor);
    if (bn_db_audit_append(db, actor, action, target, NULL) != BN_OK)
        fprintf(stderr, "bitnet serve: audit entry %s not written: %s\n", action, bn_db_errmsg(db));
}

/* The rows of GET /v1/tenants: into arr, with each tenant's limits from cfg. */
typedef struct tenant_rows {
    cJSON *arr;
    const bn_config *cfg;
} tenant_rows;

static int tenant_row(void *ud, const bn_tenant *tn)
{
    const tenant_rows *tr = ud;
    char when[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)tn->id);
    cJSON_AddStringToObject(o, "object", "tenant");
    cJSON_AddStringToObject(o, "name", tn->name);
    cJSON_AddStringToObject(o, "tier", tn->tier);
    cJSON_AddStringToObject(o, "status", tn->status);
    cJSON_AddStringToObject(o, "created", cli_fmt_utc(tn->created_ms, when, sizeof when));
    cJSON_AddNumberToObject(o, "keys", (double)tn->n_keys);
    cJSON *lim = cm_tenant_limits_json(tr->cfg, tn->tier, tn->name);
    cJSON_AddItemToObject(o, "limits", lim ? lim : cJSON_CreateNull());
    cJSON_AddItemToArray(tr->arr, o);
    return 0;
}

char *srv_tenants_list_doc(srv_tenants *t, const srv_caller *who, srv_verdict *v)
{
    bn_db *db = db_take(t, v);
    if (!db) return NULL;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "object", "list");
    tenant_rows tr = {cJSON_AddArrayToObject(d, "data"), t->cfg};
    const bn_status rc = bn_db_tenant_list(db, tenant_row, &tr);
    if (rc != BN_OK)
        snprintf(v->msg, sizeof v->msg, "the tenant store failed: %s", bn_db_errmsg(db));
    if (rc == BN_OK) audit(db, who, "api.tenants.list", "");
    db_give(t, db);
    if (rc != BN_OK)
        return cJSON_Delete(d), srv_verdict_set(v, 500, "server_error", NULL, v->msg), NULL;
    return print_doc(d, v);
}

typedef struct usage_acc {
    cJSON *rows;
    int64_t requests, prompt, completion;
} usage_acc;

static int usage_row(void *ud, const bn_usage_day *u)
{
    usage_acc *a = ud;
    cJSON_AddItemToArray(a->rows, cm_usage_day_json(u));
    a->requests += u->requests, a->prompt += u->prompt_tokens;
    a->completion += u->completion_tokens;
    return 0;
}

/* from and to into [from, to) ms (a day as to: to its end); 0, or -1 with v the 400. */
static int usage_range(const char *from, const char *to, int64_t *f, int64_t *tt, srv_verdict *v)
{
    *f = *tt = 0;
    if ((from && cli_parse_utc(from, f)) || (to && cli_parse_utc(to, tt)))
        return srv_verdict_set(v, 400, "invalid_request_error", "invalid_date",
                               "from and to: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"),
               -1;
    if (to && strlen(to) == 10) *tt += DAY_MS;
    if (*f && *tt && *tt <= *f)
        return srv_verdict_set(v, 400, "invalid_request_error", "invalid_date",
                               "to is before from"),
               -1;
    return 0;
}

/* The tenant id whose usage who may read (0: all, for an admin); -1 with v set. */
static int64_t usage_tenant(bn_db *db, const srv_caller *who, const char *ref, srv_verdict *v)
{
    const int admin = (who->scopes & BN_SCOPE_ADMIN) != 0;
    if (!ref || !*ref) return admin ? 0 : who->tenant_id;
    bn_tenant tn;
    const bn_status rc = bn_db_tenant_get(db, ref, &tn);
    if (rc == BN_OK && (admin || tn.id == who->tenant_id)) return tn.id;
    if (rc == BN_OK || (rc == BN_ERR_NOT_FOUND && !admin))
        srv_verdict_set(v, 403, "permission_error", "insufficient_scope",
                        "a usage key reads its own tenant's usage only");
    else if (rc == BN_ERR_NOT_FOUND)
        srv_verdict_set(v, 404, "invalid_request_error", "tenant_not_found", "no such tenant");
    else
        srv_verdict_set(v, 500, "server_error", NULL, "the tenant store failed");
    return -1;
}

char *srv_tenants_usage_doc(srv_tenants *t, const srv_caller *who, const char *tenant,
                            const char *from, const char *to, srv_verdict *v)
{
    int64_t f, tt;
    if (usage_range(from, to, &f, &tt, v)) return NULL;
    bn_db *db = db_take(t, v);
    if (!db) return NULL;
    const int64_t tid = usage_tenant(db, who, tenant, v);
    cJSON *d = cJSON_CreateObject();
    usage_acc a = {.rows = NULL};
    cJSON_AddStringToObject(d, "object", "list");
    a.rows = cJSON_AddArrayToObject(d, "data");
    const bn_status rc = tid < 0 ? BN_OK : bn_db_usage_report(db, tid, f, tt, usage_row, &a);
    if (rc != BN_OK)
        snprintf(v->msg, sizeof v->msg, "the usage ledger failed: %s", bn_db_errmsg(db));
    if (tid >= 0 && rc == BN_OK && tid != who->tenant_id) {
        char target[32];
        snprintf(target, sizeof target, "%lld", (long long)tid);
        audit(db, who, "api.usage.read", tid ? target : "all");
    }
    db_give(t, db);
    if (rc != BN_OK) srv_verdict_set(v, 500, "server_error", NULL, v->msg);
    if (tid < 0 || rc != BN_OK) return cJSON_Delete(d), NULL;
    cJSON *tot = cJSON_AddObjectToObject(d, "total");
    cJSON_AddNumberToObject(tot, "requests", (double)a.requests);
    cJSON_AddNumberToObject(tot, "prompt_tokens", (double)a.prompt);
    cJSON_AddNumberToObject(tot, "completion_tokens", (double)a.completion);
    return print_doc(d, v);
}

/* ---- keys (admin) ------------------------------------------------------------------------ */

static int key_row(void *ud, const bn_api_key *k)
{
    cJSON_AddItemToArray(ud, cm_api_key_json(k));
    return 0;
}

static void actor_of(const srv_caller *who, char *buf, size_t size)
{
    snprintf(buf, size, "key:%lld", (long long)who->key_id);
}

char *srv_tenants_keys_doc(srv_tenants *t, const srv_caller *who, const char *tenant,
                           srv_verdict *v)
{
    bn_db *db = db_take(t, v);
    if (!db) return NULL;
    const int64_t tid = tenant && *tenant ? usage_tenant(db, who, tenant, v) : 0;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "object", "list");
    const bn_status rc =
            tid < 0 ? BN_OK : bn_db_key_list(db, tid, key_row, cJSON_AddArrayToObject(d, "data"));
    if (rc != BN_OK) snprintf(v->msg, sizeof v->msg, "the key store failed: %s", bn_db_errmsg(db));
    if (tid >= 0 && rc == BN_OK)
        audit(db, who, "api.keys.list", tenant && *tenant ? tenant : "all");
    db_give(t, db);
    if (rc != BN_OK) srv_verdict_set(v, 500, "server_error", NULL, v->msg);
    if (tid < 0 || rc != BN_OK) return cJSON_Delete(d), NULL;
    return print_doc(d, v);
}

static void bad_field(srv_verdict *v, const char *msg)
{
    srv_verdict_set(v, 400, "invalid_request_error", "invalid_value", msg);
}

/* "scopes" as a string or an array of strings into bits; 0, or -1 with v the 400. */
static int read_scopes(const cJSON *sc, unsigned *scopes, srv_verdict *v)
{
    char buf[64] = "";
    if (cJSON_IsString(sc)) snprintf(buf, sizeof buf, "%s", sc->valuestring);
    const cJSON *e;
    size_t n = 0;
    const cJSON *arr = cJSON_IsArray(sc) ? sc : NULL;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e) || n + strlen(e->valuestring) + 2 > sizeof buf) n = sizeof buf;
        if (n >= sizeof buf) break;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? "," : "", e->valuestring);
    }
    if (n < sizeof buf && buf[0] && bn_scopes_parse(buf, scopes) == 0 && *scopes) return 0;
    bad_field(v, "scopes: expected inference, usage and/or admin (a string or an array)");
    return -1;
}

/* The body of POST /v1/keys into a tenant reference, scopes and expiry; 0 or -1 (v: 400). */
static int read_key_body(const cJSON *d, char *ref, size_t refsz, unsigned *scopes,
                         int64_t *expires, srv_verdict *v)
{
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(d, "tenant");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(d, "expires");
    if (cJSON_IsString(tn) && tn->valuestring[0] && strlen(tn->valuestring) < refsz)
        snprintf(ref, refsz, "%s", tn->valuestring);
    else if (cJSON_IsNumber(tn) && tn->valuedouble >= 1 && tn->valuedouble < 9e15)
        snprintf(ref, refsz, "%lld", (long long)tn->valuedouble);
    else
        return bad_field(v, "tenant: expected a tenant's name or id"), -1;
    if (read_scopes(cJSON_GetObjectItemCaseSensitive(d, "scopes"), scopes, v)) return -1;
    *expires = 0;
    if (ex && !cJSON_IsNull(ex) && (!cJSON_IsString(ex) || cli_parse_utc(ex->valuestring, expires)))
        return bad_field(v, "expires: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"), -1;
    return 0;
}

static cJSON *new_key_doc(int64_t id, int64_t tid, const char *key, unsigned scopes)
{
    char sc[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "api_key");
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddNumberToObject(o, "tenant", (double)tid);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "scopes", bn_scopes_str(scopes, sc, sizeof sc));
    return o;
}

char *srv_tenants_key_create(srv_tenants *t, const srv_caller *who, const char *body, size_t len,
                             srv_verdict *v)
{
    cJSON *d = body ? cJSON_ParseWithLength(body, len) : NULL;
    char ref[BN_TENANT_NAME_MAX], actor[40], key[BN_KEY_STR_MAX];
    unsigned scopes = 0;
    int64_t expires, kid = 0;
    const int bad = !cJSON_IsObject(d) ? (bad_field(v, "the body is not a JSON object"), -1)
                                       : read_key_body(d, ref, sizeof ref, &scopes, &expires, v);
    cJSON_Delete(d);
    if (bad) return NULL;
    bn_db *db = db_take(t, v);
    if (!db) return NULL;
    bn_tenant tn;
    bn_status rc = bn_db_tenant_get(db, ref, &tn);
    actor_of(who, actor, sizeof actor);
    if (rc == BN_OK) rc = bn_db_key_create(db, actor, tn.id, scopes, expires, key, &kid);
    snprintf(v->msg, sizeof v->msg, "%s", rc == BN_OK ? "" : bn_db_errmsg(db));
    db_give(t, db);
    if (rc == BN_ERR_NOT_FOUND)
        return srv_verdict_set(v, 404, "invalid_request_error", "tenant_not_found",
                               "no such tenant"),
               NULL;
    if (rc == BN_ERR_INVALID)
        return srv_verdict_set(v, 400, "invalid_request_error", "invalid_value", v->msg), NULL;
    if (rc != BN_OK) return srv_verdict_set(v, 500, "server_error", NULL, v->msg), NULL;
    char *text = print_doc(new_key_doc(kid, tn.id, key, scopes), v);
    memset(key, 0, sizeof key);
    return text;
}

char *srv_tenants_key_revoke(srv_tenants *t, const srv_caller *who, const char *id, srv_verdict *v)
{
    long kid;
    if (!id || cli_parse_long(id, 1, 1L << 62, &kid))
        return bad_field(v, "DELETE /v1/keys/ID: ID is a key's number"), NULL;
    bn_db *db = db_take(t, v);
    if (!db) return NULL;
    char actor[40];
    actor_of(who, actor, sizeof actor);
    const bn_status rc = bn_db_key_revoke(db, actor, kid);
    snprintf(v->msg, sizeof v->msg, "%s", rc == BN_OK ? "" : bn_db_errmsg(db));
    db_give(t, db);
    if (rc == BN_ERR_NOT_FOUND || rc == BN_ERR_INVALID)
        return srv_verdict_set(v, 404, "invalid_request_error", "key_not_found", v->msg), NULL;
    if (rc != BN_OK) return srv_verdict_set(v, 500, "server_error", NULL, v->msg), NULL;
    cache_clear(t); /* refused here at once, by the other replicas within SRV_KEY_CACHE_MS */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "api_key");
    cJSON_AddNumberToObject(o, "id", (double)kid);
    cJSON_AddBoolToObject(o, "revoked", 1);
    return print_doc(o, v);
}
