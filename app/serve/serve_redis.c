/* serve_redis.c - the limits of `bitnet serve --tenants` shared by replicas through Redis
 * (serve_redis.h). */
#include "serve_redis.h"

#include <hiredis.h>
#include <inttypes.h>
#include <nettle/sha1.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/backoff.h"
#include "common/cli.h"

#define CONNECT_US    300000
#define COMMAND_US    500000
#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 5.0
#define POOL_MAX      32
#define COST_MAX      100000000LL /* as serve_tenants.c: cost x 6e7 us stays exact in Lua */
#define WEEK_S        (7 * 86400LL)

/* The one script: ARGV[1] "a" admits, "e" ends. Times in microseconds of the server's clock.
 * KEYS: requests bucket, tokens bucket, streams, the month's quota counter.
 * a: rpm tpm prompt max_streams quota seed ticket quota_ttl_s lease_us
 *    -> {status, used, req ok, remaining, reset, retry, tok ok, remaining, reset, retry};
 *    status 0 admitted, 1 requests, 2 tokens, 3 streams, 4 quota, 5 no counter: run it again
 *    with seed = the ledger's tokens of the month.
 * e: tpm completion ticket used -> {0}.
 * gcra() is srv_gcra_eval (serve_tenants.c) in microseconds. */
static const char SCRIPT[] =
        "local W = 60000000\n"
        "local function fmt(x) return string.format('%.0f', x) end\n"
        "local function inc(limit, cost) return math.floor(cost * W / limit) end\n"
        "local function gcra(tat, now, limit, cost)\n"
        "  local base = math.max(tat, now)\n"
        "  local nxt = base + inc(limit, cost)\n"
        "  local ok = nxt - now <= W\n"
        "  local after = base\n"
        "  if ok then after = nxt end\n"
        "  local unit, room, rem, retry = inc(limit, 1), W - (after - now), 0, 0\n"
        "  if room > 0 then\n"
        "    if unit <= 0 then rem = limit else rem = math.floor(room / unit) end\n"
        "  end\n"
        "  if rem > limit then rem = limit end\n"
        "  if not ok then retry = nxt - W - now end\n"
        "  return ok, after, rem, after - now, retry\n"
        "end\n"
        "local function num(key) return tonumber(redis.call('GET', key) or '0') or 0 end\n"
        "local function put(key, tat, now)\n"
        "  redis.call('SET', key, fmt(tat), 'PX', fmt(math.floor((tat - now) / 1000) + 1))\n"
        "end\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
        "local a = ARGV\n"
        "if a[1] == 'e' then\n"
        "  local tpm, comp, used = tonumber(a[2]), tonumber(a[3]), tonumber(a[5])\n"
        "  if tpm > 0 and comp > 0 then\n"
        "    put(KEYS[2], math.max(num(KEYS[2]), now) + inc(tpm, comp), now)\n"
        "  end\n"
        "  if a[4] ~= '' then redis.call('ZREM', KEYS[3], a[4]) end\n"
        "  if used > 0 and redis.call('EXISTS', KEYS[4]) == 1 then\n"
        "    redis.call('INCRBY', KEYS[4], fmt(used))\n"
        "  end\n"
        "  return {0}\n"
        "end\n"
        "local rpm, tpm, prompt, maxs = tonumber(a[2]), tonumber(a[3]), tonumber(a[4]), "
        "tonumber(a[5])\n"
        "local quota, seed, lease = tonumber(a[6]), tonumber(a[7]), tonumber(a[10])\n"
        "local used = 0\n"
        "if quota > 0 then\n"
        "  local q = redis.call('GET', KEYS[4])\n"
        "  if not q then\n"
        "    if seed < 0 then return {5} end\n"
        "    redis.call('SET', KEYS[4], fmt(seed), 'EX', a[9])\n"
        "    q = seed\n"
        "  end\n"
        "  used = tonumber(q)\n"
        "  if used >= quota then return {4, used} end\n"
        "end\n"
        "local rt, tt = num(KEYS[1]), num(KEYS[2])\n"
        "local rok, rtat, rrem, rres, rwait = true, 0, 0, 0, 0\n"
        "local tok, ttat, trem, tres, twait = true, 0, 0, 0, 0\n"
        "if rpm > 0 then rok, rtat, rrem, rres, rwait = gcra(rt, now, rpm, 1) end\n"
        "if tpm > 0 then tok, ttat, trem, tres, twait = gcra(tt, now, tpm, prompt) end\n"
        "local sok = true\n"
        "if maxs > 0 then\n"
        "  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now - lease))\n"
        "  sok = redis.call('ZCARD', KEYS[3]) < maxs\n"
        "end\n"
        "local status = 0\n"
        "if not sok then status = 3 elseif not tok then status = 2 elseif not rok then "
        "status = 1 end\n"
        "local x, y\n"
        "if status == 0 then\n"
        "  if rpm > 0 then put(KEYS[1], rtat, now) end\n"
        "  if tpm > 0 then put(KEYS[2], ttat, now) end\n"
        "  if maxs > 0 then\n"
        "    redis.call('ZADD', KEYS[3], fmt(now), a[8])\n"
        "    redis.call('PEXPIRE', KEYS[3], fmt(lease / 1000 + 1000))\n"
        "  end\n"
        "else\n"
        "  if rpm > 0 then x, y, rrem, rres = gcra(rt, now, rpm, 0) end\n"
        "  if tpm > 0 then x, y, trem, tres = gcra(tt, now, tpm, 0) end\n"
        "end\n"
        "local function b(v) if v then return 1 end return 0 end\n"
        "return {status, used, b(rok), rrem, rres, rwait, b(tok), trem, tres, twait}\n";

enum { ST_OK, ST_REQUESTS, ST_TOKENS, ST_STREAMS, ST_QUOTA, ST_SEED };

typedef struct redis_limits {
    srv_limits base;
    srv_redis_addr addr;
    char shown[400]; /* the URL without its password */
    char sha[41];
    int64_t lease_ms;
    srv_ledger_used_fn ledger_used;
    void *ud;
    srv_limits *local;
    bn_mfamily *errors, *mode;
    pthread_mutex_t mu;
    redisContext *idle[POOL_MAX];
    int n_idle;
    int up;     /* 1: limits shared; 0: local, until next_try */
    int trying; /* a thread is connecting while down */
    int missed; /* an end could not be counted while down */
    int64_t next_try_ms;
    int failures;    /* tries since it was last up */
    unsigned jitter; /* the backoff's rand_r seed */
    unsigned long long salt, tickets;
} redis_limits;

/* ---- the URL ------------------------------------------------------------------------------ */

static int bad_url(const char *url, char *err, size_t errsz)
{
    const char *at = strrchr(url, '@'); /* never echo a password */
    return cm_fail(err, errsz,
                   "bad Redis URL '%s%.200s': expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
                   "or unix:///PATH[?db=N]",
                   at ? "redis://...@" : "", at ? at + 1 : url);
}

static int parse_db(const char *s, int *db)
{
    long v;
    if (cli_parse_long(s, 0, 65535, &v)) return -1;
    *db = (int)v;
    return 0;
}

/* HOST[:PORT] or [V6][:PORT] of n bytes. */
static int parse_hostport(const char *s, size_t n, srv_redis_addr *a)
{
    const char *end = s + n, *colon = NULL;
    if (n && *s == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || rb == s + 1 || (size_t)(rb - s - 1) >= sizeof a->host) return -1;
        memcpy(a->host, s + 1, (size_t)(rb - s - 1));
        a->host[rb - s - 1] = '\0';
        if (rb + 1 < end && rb[1] != ':') return -1;
        colon = rb + 1 < end ? rb + 1 : NULL;
    } else {
        colon = memchr(s, ':', n);
        const size_t hl = colon ? (size_t)(colon - s) : n;
        if (!hl || hl >= sizeof a->host) return -1;
        memcpy(a->host, s, hl);
        a->host[hl] = '\0';
    }
    if (!colon) return 0;
    char port[8];
    const size_t pl = (size_t)(end - colon - 1);
    long v;
    if (!pl || pl >= sizeof port) return -1;
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    if (cli_parse_long(port, 1, 65535, &v)) return -1;
    a->port = (int)v;
    return 0;
}

/* [USER]:PASSWORD of n bytes. */
static int parse_userinfo(const char *s, size_t n, srv_redis_addr *a)
{
    const char *colon = memchr(s, ':', n);
    const size_t ul = colon ? (size_t)(colon - s) : n;
    const size_t pl = colon ? n - ul - 1 : 0;
    if (ul >= sizeof a->user || pl >= sizeof a->pass || (!pl && !colon && !ul)) return -1;
    memcpy(a->user, s, ul);
    a->user[ul] = '\0';
    if (colon) memcpy(a->pass, colon + 1, pl);
    a->pass[pl] = '\0';
    if (!colon) memcpy(a->pass, a->user, ul + 1), a->user[0] = '\0'; /* redis://PASSWORD@ */
    return 0;
}

static int parse_unix(const char *url, srv_redis_addr *a, char *err, size_t errsz)
{
    const char *p = url + 7, *q = strchr(p, '?');
    const size_t n = q ? (size_t)(q - p) : strlen(p);
    if (*p != '/' || n >= sizeof a->path) return bad_url(url, err, errsz);
    memcpy(a->path, p, n);
    a->path[n] = '\0';
    if (q && (strncmp(q, "?db=", 4) || parse_db(q + 4, &a->db))) return bad_url(url, err, errsz);
    return 0;
}

int srv_redis_parse_url(const char *url, srv_redis_addr *a, char *err, size_t errsz)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (!strncmp(url, "unix://", 7)) return parse_unix(url, a, err, errsz);
    if (strncmp(url, "redis://", 8)) return bad_url(url, err, errsz);
    const char *p = url + 8, *slash = strchr(p, '/'), *at = strrchr(p, '@');
    if (at && slash && at > slash) at = NULL;
    if (at && parse_userinfo(p, (size_t)(at - p), a)) return bad_url(url, err, errsz);
    const char *h = at ? at + 1 : p;
    const size_t hn = slash ? (size_t)(slash - h) : strlen(h);
    if (parse_hostport(h, hn, a)) return bad_url(url, err, errsz);
    if (slash && slash[1] && parse_db(slash + 1, &a->db)) return bad_url(url, err, errsz);
    return 0;
}

static void show_addr(const srv_redis_addr *a, char *buf, size_t size)
{
    const char *v6 = strchr(a->host, ':') ? "[" : "";
    if (a->path[0])
        snprintf(buf, size, "unix://%s%s", a->path, a->db ? "?db=..." : "");
    else
        snprintf(buf, size, "redis://%s%s%s:%d/%d", v6, a->host, *v6 ? "]" : "", a->port, a->db);
}

/* ---- connections and the state ------------------------------------------------------------ */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One command; NULL when the connection failed (c->err) or the server said no (err). */
static redisReply *command(redisContext *c, int argc, const char **argv, char *err, size_t errsz)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) return snprintf(err, errsz, "%s", c->errstr[0] ? c->errstr : "no answer"), NULL;
    if (r->type != REDIS_REPLY_ERROR) return r;
    snprintf(err, errsz, "%s: %.200s", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
}

static int setup_conn(const redis_limits *R, redisContext *c, char *err, size_t errsz)
{
    const struct timeval cmd = {0, COMMAND_US};
    if (redisSetTimeout(c, cmd) != REDIS_OK) return snprintf(err, errsz, "%s", c->errstr), -1;
    redisReply *r = NULL;
    if (R->addr.pass[0]) {
        const char *user[] = {"AUTH", R->addr.user, R->addr.pass}, *pw[] = {"AUTH", R->addr.pass};
        r = R->addr.user[0] ? command(c, 3, user, err, errsz) : command(c, 2, pw, err, errsz);
        if (!r) return -1;
        freeReplyObject(r);
    }
    char db[16];
    snprintf(db, sizeof db, "%d", R->addr.db);
    const char *sel[] = {"SELECT", db};
    if (R->addr.db && !(r = command(c, 2, sel, err, errsz))) return -1;
    if (r) freeReplyObject(r);
    return 0;
}

static redisContext *connect_redis(const redis_limits *R, char *err, size_t errsz)
{
    const struct timeval ct = {0, CONNECT_US};
    redisContext *c = R->addr.path[0] ? redisConnectUnixWithTimeout(R->addr.path, ct)
                                      : redisConnectWithTimeout(R->addr.host, R->addr.port, ct);
    if (!c) return snprintf(err, errsz, "out of memory"), NULL;
    if (c->err) snprintf(err, errsz, "%s", c->errstr);
    if (c->err || setup_conn(R, c, err, errsz)) return redisFree(c), NULL;
    return c;
}

static void set_mode(redis_limits *R, int up)
{
    const char *redis[] = {"redis"}, *local[] = {"local"};
    if (!R->mode) return;
    bn_metric_set(R->mode, redis, up);
    bn_metric_set(R->mode, local, !up);
}

static void count_error(redis_limits *R)
{
    if (R->errors) bn_metric_add(R->errors, NULL, 1);
}

/* A command or connection failed (err): local limits until the next try, said once. */
static void went_down(redis_limits *R, redisContext *c, const char *err)
{
    if (c) redisFree(c);
    count_error(R);
    pthread_mutex_lock(&R->mu);
    const int was_up = R->up;
    R->up = 0, R->trying = 0;
    R->failures = was_up ? 1 : R->failures + 1;
    R->next_try_ms = wall_ms() + (int64_t)(1000 * cm_backoff_s(R->failures, BACKOFF_MIN_S,
                                                               BACKOFF_MAX_S, &R->jitter));
    while (R->n_idle) redisFree(R->idle[--R->n_idle]); /* the same server: as dead */
    pthread_mutex_unlock(&R->mu);
    if (!was_up) return;
    set_mode(R, 0);
    fprintf(stderr,
            "bitnet serve: Redis %s does not answer (%s): rate limits are this replica's own "
            "and tiers with a monthly quota get 503 until it does\n",
            R->shown, err);
}

/* Deletes the month's quota counters (they start again from the ledger). */
static void drop_counters(redisContext *c)
{
    int64_t start, next;
    srv_month_bounds(&start, &next);
    const time_t t = (time_t)(start / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char match[48], cursor[32] = "0", err[256];
    snprintf(match, sizeof match, "bitnet:*:quota:%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = command(c, 6, scan, err, sizeof err);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return freeReplyObject(r);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str ? r->element[0]->str : "0");
        const redisReply *keys = r->element[1];
        for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
            const char *del[] = {"DEL", keys->element[i]->str};
            redisReply *d = keys->element[i]->str ? command(c, 2, del, err, sizeof err) : NULL;
            if (d) freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
}

static void came_up(redis_limits *R, redisContext *c)
{
    pthread_mutex_lock(&R->mu);
    const int missed = R->missed;
    R->up = 1, R->trying = 0, R->failures = 0, R->missed = 0;
    pthread_mutex_unlock(&R->mu);
    if (missed) drop_counters(c);
    set_mode(R, 1);
    fprintf(stderr, "bitnet serve: limits shared through Redis %s%s\n", R->shown,
            missed ? " (the month's quota counters start again from the ledger)" : "");
}

/* A connection for this thread, or NULL: Redis is down (use the local limits). */
static redisContext *take(redis_limits *R)
{
    redisContext *c = NULL;
    int dial = 0, retry = 0;
    pthread_mutex_lock(&R->mu);
    if (R->up && R->n_idle)
        c = R->idle[--R->n_idle];
    else if (R->up)
        dial = 1;
    else if (!R->trying && wall_ms() >= R->next_try_ms)
        dial = retry = R->trying = 1;
    pthread_mutex_unlock(&R->mu);
    if (!dial) return c;
    char err[256];
    c = connect_redis(R, err, sizeof err);
    if (!c) return went_down(R, NULL, err), NULL;
    if (retry) came_up(R, c);
    return c;
}

static void give(redis_limits *R, redisContext *c)
{
    pthread_mutex_lock(&R->mu);
    const int kept = R->up && R->n_idle < POOL_MAX;
    if (kept) R->idle[R->n_idle++] = c;
    pthread_mutex_unlock(&R->mu);
    if (!kept) redisFree(c);
}

/* The script with args (after the keys); its array of integers of at least n_min, or NULL
 * (the connection is then freed and the state down). */
static redisReply *run_script(redis_limits *R, redisContext *c, const char keys[4][64],
                              const char **args, int n_args, size_t n_min)
{
    const char *argv[20] = {"EVALSHA", R->sha, "4", keys[0], keys[1], keys[2], keys[3]};
    for (int i = 0; i < n_args; i++) argv[7 + i] = args[i];
    char err[256];
    redisReply *r = redisCommandArgv(c, 7 + n_args, argv, NULL);
    if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
        freeReplyObject(r);
        argv[0] = "EVAL", argv[1] = SCRIPT;
        r = redisCommandArgv(c, 7 + n_args, argv, NULL);
    }
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= n_min;
    for (size_t i = 0; ok && i < r->elements; i++) ok = r->element[i]->type == REDIS_REPLY_INTEGER;
    if (ok) return r;
    if (!r)
        snprintf(err, sizeof err, "%s", c->errstr[0] ? c->errstr : "no answer");
    else
        snprintf(err, sizeof err, "the limits script: %.200s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an answer of the wrong shape");
    freeReplyObject(r);
    went_down(R, c, err);
    return NULL;
}

static void tenant_keys(int64_t tenant, char keys[4][64])
{
    int64_t start, next;
    srv_month_bounds(&start, &next);
    const time_t t = (time_t)(start / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    const long long id = (long long)tenant;
    snprintf(keys[0], 64, "bitnet:{t%lld}:req", id);
    snprintf(keys[1], 64, "bitnet:{t%lld}:tok", id);
    snprintf(keys[2], 64, "bitnet:{t%lld}:streams", id);
    snprintf(keys[3], 64, "bitnet:{t%lld}:quota:%04d%02d", id, tm.tm_year + 1900, tm.tm_mon + 1);
}

/* ---- admission and end --------------------------------------------------------------------- */

/* Redis does not answer: the local rate limits; a tier with a quota is refused (fail closed). */
static int fallback_admit(redis_limits *R, srv_caller *who, const cm_tier *tier, int64_t prompt,
                          int64_t now, srv_verdict *v)
{
    if (tier->monthly_tokens <= 0) return R->local->ops->admit(R->local, who, tier, prompt, now, v);
    srv_verdict_set(v, 503, "server_error", "quota_unavailable",
                    "the shared quota counter (Redis) does not answer; retry later");
    srv_retry_after(v, 1000000000LL);
    return -1;
}

/* The admission's answer r (status ST_OK..ST_QUOTA) into v and who. */
static int read_admission(redis_limits *R, const redisReply *r, srv_caller *who,
                          const cm_tier *tier, int64_t prompt, const char *ticket, srv_verdict *v)
{
    const long long st = r->element[0]->integer, used = r->element[1]->integer;
    if (st == ST_QUOTA) return srv_refuse_quota(v, who, tier, used), -1;
    const long long *e[8];
    for (int i = 0; i < 8; i++) e[i] = &r->element[2 + i]->integer;
    const srv_gcra_res rq = {.ok = (int)*e[0], .remaining = *e[1], .reset_ns = *e[2] * 1000},
                       tk = {.ok = (int)*e[4], .remaining = *e[5], .reset_ns = *e[6] * 1000};
    if (tier->requests_per_min > 0) srv_bucket_hdrs(v, "requests", tier->requests_per_min, &rq);
    if (tier->tokens_per_min > 0) srv_bucket_hdrs(v, "tokens", tier->tokens_per_min, &tk);
    if (st == ST_OK) {
        who->by = &R->base;
        snprintf(who->ticket, sizeof who->ticket, "%s", tier->concurrent_streams > 0 ? ticket : "");
        return 0;
    }
    const long long wait = *e[3] > *e[7] ? *e[3] : *e[7];
    const char *by = st == ST_STREAMS ? "streams" : st == ST_TOKENS ? "tokens" : "requests";
    srv_refuse_rate(v, who, tier, by, prompt, (int64_t)wait * 1000);
    return -1;
}

/* The admission's numbers: rpm, tpm, prompt, streams, quota, the counter's TTL (s), the lease
 * (us); returns the month's first ms. */
static int64_t admit_nums(const redis_limits *R, const cm_tier *tier, int64_t prompt,
                          char num[7][24])
{
    int64_t start, next;
    srv_month_bounds(&start, &next);
    const long long vals[] = {tier->requests_per_min,
                              tier->tokens_per_min,
                              prompt < COST_MAX ? (long long)prompt : COST_MAX,
                              tier->concurrent_streams,
                              tier->monthly_tokens,
                              (long long)((next - (int64_t)time(NULL) * 1000) / 1000 + WEEK_S),
                              (long long)R->lease_ms * 1000};
    for (int i = 0; i < 7; i++) snprintf(num[i], 24, "%lld", vals[i]);
    return start;
}

static int redis_admit(srv_limits *base, srv_caller *who, const cm_tier *tier, int64_t prompt,
                       int64_t now, srv_verdict *v)
{
    redis_limits *R = (redis_limits *)base;
    redisContext *c = take(R);
    if (!c) return fallback_admit(R, who, tier, prompt, now, v);
    char keys[4][64], ticket[SRV_TICKET_MAX], num[7][24], seed[24] = "-1";
    tenant_keys(who->tenant_id, keys);
    pthread_mutex_lock(&R->mu);
    snprintf(ticket, sizeof ticket, "%012llx-%llx", R->salt & 0xFFFFFFFFFFFFULL, ++R->tickets);
    pthread_mutex_unlock(&R->mu);
    int64_t start = admit_nums(R, tier, prompt, num);
    for (int pass = 0; pass < 2; pass++) {
        const char *args[] = {"a",    num[0], num[1], num[2], num[3],
                              num[4], seed,   ticket, num[5], num[6]};
        redisReply *r = run_script(R, c, keys, args, 10, 1);
        if (!r) return fallback_admit(R, who, tier, prompt, now, v);
        const long long st = r->element[0]->integer;
        const int full = st == ST_SEED || r->elements >= (st == ST_QUOTA ? 2u : 10u);
        if (st != ST_SEED && full) {
            const int rc = read_admission(R, r, who, tier, prompt, ticket, v);
            freeReplyObject(r);
            give(R, c);
            return rc;
        }
        freeReplyObject(r);
        long long used;
        if (!full || pass || R->ledger_used(R->ud, who->tenant_id, start, &used, v)) break;
        snprintf(seed, sizeof seed, "%lld", used);
    }
    give(R, c);
    if (!v->status) srv_verdict_set(v, 500, "server_error", NULL, "the limits script misbehaved");
    return -1;
}

static void redis_end(srv_limits *base, srv_caller *who, const cm_tier *tier, int64_t completion,
                      int64_t used, int64_t now)
{
    (void)now; /* the server's clock */
    redis_limits *R = (redis_limits *)base;
    redisContext *c = take(R);
    if (!c) {
        count_error(R); /* its ticket expires with the lease; its tokens are in the ledger */
        pthread_mutex_lock(&R->mu);
        R->missed = R->missed || used > 0;
        pthread_mutex_unlock(&R->mu);
        return;
    }
    char keys[4][64], tpm[24], comp[24], u[24];
    tenant_keys(who->tenant_id, keys);
    snprintf(tpm, sizeof tpm, "%lld", tier ? tier->tokens_per_min : 0);
    snprintf(comp, sizeof comp, "%lld", (long long)(completion < COST_MAX ? completion : COST_MAX));
    snprintf(u, sizeof u, "%lld", (long long)used);
    const char *args[] = {"e", tpm, comp, who->ticket, u};
    redisReply *r = run_script(R, c, keys, args, 5, 1);
    if (!r) {
        pthread_mutex_lock(&R->mu);
        R->missed = R->missed || used > 0;
        pthread_mutex_unlock(&R->mu);
        return;
    }
    freeReplyObject(r);
    give(R, c);
    who->ticket[0] = '\0';
}

static void redis_free(srv_limits *base)
{
    redis_limits *R = (redis_limits *)base;
    while (R->n_idle) redisFree(R->idle[--R->n_idle]);
    R->local->ops->free(R->local);
    pthread_mutex_destroy(&R->mu);
    free(R);
}

/* ---- construction -------------------------------------------------------------------------- */

static void script_sha(char out[41])
{
    struct sha1_ctx ctx;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, sizeof SCRIPT - 1, (const uint8_t *)SCRIPT);
    sha1_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA1_DIGEST_SIZE; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int define_metrics(redis_limits *R, bn_metrics *reg)
{
    static const char *const by_mode[] = {"mode", NULL};
    if (!reg) return 0;
    R->errors = bn_metrics_define(
            reg, BN_METRIC_COUNTER, "bitnet_redis_errors_total",
            "Redis commands of the shared limits that failed (refused or lost connection, "
            "timeout, script error); serve --redis.",
            NULL, NULL, 0);
    R->mode = bn_metrics_define(
            reg, BN_METRIC_GAUGE, "bitnet_limits_mode",
            "1 for the limits in force: redis (shared by the replicas) or local (this "
            "replica's own while Redis does not answer; quota tiers get 503).",
            by_mode, NULL, 0);
    return !R->errors || !R->mode || bn_metric_add(R->errors, NULL, 0) ? -1 : 0;
}

int srv_limits_redis_new(const srv_redis_opts *o, srv_limits **out, char *err, size_t errsz)
{
    static const struct srv_limits_ops ops = {redis_admit, redis_end, redis_free};
    redis_limits *R = calloc(1, sizeof *R);
    if (!R) return cm_fail(err, errsz, "out of memory");
    if (srv_redis_parse_url(o->url, &R->addr, err, errsz)) return free(R), -1;
    if (pthread_mutex_init(&R->mu, NULL)) return free(R), cm_fail(err, errsz, "out of resources");
    if (define_metrics(R, o->reg)) {
        pthread_mutex_destroy(&R->mu);
        free(R);
        return cm_fail(err, errsz, "the Redis metrics: out of memory");
    }
    R->base.ops = &ops, R->lease_ms = o->lease_ms > 0 ? o->lease_ms : 3600000;
    R->ledger_used = o->ledger_used, R->ud = o->ud, R->local = o->local;
    show_addr(&R->addr, R->shown, sizeof R->shown);
    script_sha(R->sha);
    if (getrandom(&R->salt, sizeof R->salt, 0) != (ssize_t)sizeof R->salt)
        R->salt = (unsigned long long)wall_ms() * 0x9E3779B97F4A7C15ULL;
    R->jitter = (unsigned)R->salt;
    char why[256];
    redisContext *c = connect_redis(R, why, sizeof why);
    if (c) {
        came_up(R, c);
        give(R, c);
    } else {
        R->up = 1; /* so that went_down says it */
        went_down(R, NULL, why);
    }
    *out = &R->base;
    return 0;
}
