/*
 * serve_redis.h - the Redis limiter of `bitnet serve --tenants --redis URL` (serve_limits.h):
 * every replica's requests of a tenant share its buckets, its streams and its month's quota
 * counter in one Redis. Each admission is one Lua script run atomically by the server
 * (EVALSHA, EVAL when the server does not have it yet) on the server's clock: GCRA of the
 * requests and tokens per minute, the streams held (a sorted set of tickets, each held at most
 * lease_ms when its replica vanished), the month's tokens against the quota. The end of a
 * request is a second run: its completion tokens into the tokens bucket, its ticket out, its
 * tokens added to the month's counter (only for a fresh ledger row, so never twice).
 *
 * The month's counter starts from the ledger (the store stays the truth): when the script
 * finds no counter it asks for the ledger's total and is run again with it.
 *
 * When Redis does not answer (connection refused or lost, a command past 500 ms, a script
 * error): the rate limits fall back to this replica's own (the in-process limiter, local),
 * requests of a tier with a monthly quota are refused with 503 code quota_unavailable (fail
 * closed), one log line says so, and the connection is tried again after 100 ms, doubling up
 * to 5 s, each wait times a random 0.5-1 so that replicas do not retry in step
 * (common/backoff.h); one log line says when it answers again. A replica that could not count
 * an end while Redis was away drops the month's counters when it is back, so they start again
 * from the ledger. Metrics: bitnet_redis_errors_total, bitnet_limits_mode{mode="redis"|"local"}.
 * A command that timed out may still run when a slow Redis gets to it: an admission then
 * takes its allowance and holds its stream's ticket until the lease, though the request ran on
 * the local limits (the safe side: a tenant may get less, never more).
 *
 * Keys (a tenant's in one hash slot: {t<id>}): bitnet:{t7}:req, bitnet:{t7}:tok (GCRA
 * times, expiring when full again), bitnet:{t7}:streams, bitnet:{t7}:quota:202612 (expires
 * a week after its month).
 */
#ifndef BITNET_APP_SERVE_REDIS_H
#define BITNET_APP_SERVE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"
#include "serve_limits.h"

typedef struct srv_redis_addr {
    char host[256]; /* "" for a unix socket */
    int port;       /* 6379 unless given */
    char path[108]; /* the unix socket */
    int db;         /* SELECT db when not 0 */
    char user[64], pass[256];
} srv_redis_addr;

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (HOST may be [IPv6]) or unix:///PATH[?db=N]
 * into *a; -1 with a one-line message (the password never in it). */
int srv_redis_parse_url(const char *url, srv_redis_addr *a, char *err, size_t errsz);

typedef struct srv_redis_opts {
    const char *url;
    int64_t lease_ms; /* a stream's ticket is dropped this long after its admission at most */
    bn_metrics *reg;  /* may be NULL */
    srv_ledger_used_fn ledger_used;
    void *ud;
    srv_limits *local; /* the fallback for the rate limits; owned by the new limiter */
} srv_redis_opts;

/* A Redis limiter (tried at once: unreachable is logged, not an error); -1 with err for a bad
 * URL or no memory (o->local is then still the caller's). */
int srv_limits_redis_new(const srv_redis_opts *o, srv_limits **out, char *err, size_t errsz);

#endif
