/*
 * bitnet/db_tenants.h - the platform's store: tenants, their API keys, the usage ledger and the
 * hash-chained audit log (migration 5, db/migrations.c; db/tenants.c, db/tenant_keys.c,
 * db/usage.c, db/audit.c), and the billing outbox of the ledger (migration 6, db/outbox.c).
 *
 * This header is the storage interface of the platform: it names no sqlite type, and every
 * call is one unit of work (one transaction), so that a PostgreSQL store can implement the same
 * functions later. The server calls bn_db_key_lookup() on each request and
 * bn_db_usage_record() when a request finishes; the administrative calls (bitnet tenants, keys,
 * audit) take an actor and append their audit entry in the same transaction as their change.
 *
 * Usage:
 *
 *     bn_db *db;                                      // bn_db_open(), see bitnet/db.h
 *     int64_t tid, kid;
 *     bn_db_tenant_add(db, "cli:alice", "acme", "team", NULL, &tid);
 *     char key[BN_KEY_STR_MAX];                        // shown once, never stored
 *     bn_db_key_create(db, "cli:alice", tid, BN_SCOPE_INFERENCE, 0, key, &kid);
 *     ...
 *     bn_key_auth a;                                   // the server, per request:
 *     if (bn_db_key_lookup(db, bearer, &a) == BN_OK && a.reason == BN_KEY_OK) { ... }
 *     bn_usage_rec u = {.request_id = "req-1", .tenant_id = a.tenant_id, .key_id = a.key_id,
 *                       .model = "m", .prompt_tokens = 12, .completion_tokens = 30,
 *                       .duration_ms = 800, .status = "ok"};
 *     int fresh;
 *     bn_db_usage_record(db, &u, &fresh);              // fresh 0: that request id was recorded
 *
 * Tenants are named by a reference: their id ("12") or their name ("acme").
 *
 * Ownership and errors: as in bitnet/db.h (bn_status, the message on the handle). Records
 * handed to a callback are borrowed for the call; a callback returning non-zero stops the
 * walk (the function then returns BN_ERR_CANCELLED). Strings handed out (export) are
 * bn_malloc'ed. Times are milliseconds since the Unix epoch, UTC.
 */
#ifndef BITNET_DB_TENANTS_H
#define BITNET_DB_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/db.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_TENANT_NAME_MAX 128 /* bytes with the NUL: names are 1 .. 127 bytes */
#define BN_TENANT_TIER_MAX 32
#define BN_STRIPE_ID_MAX   128
#define BN_KEY_STR_MAX     64 /* "bnk_" + 43 base64url characters + NUL */
#define BN_KEY_PREFIX_MAX  16 /* the part of a key shown in listings: "bnk_" + 8 */
#define BN_KEY_STR_LEN     47

/* ---- tenants ------------------------------------------------------------------------------ */

typedef struct bn_tenant {
    int64_t id;
    char name[BN_TENANT_NAME_MAX];
    char tier[BN_TENANT_TIER_MAX];
    char status[16];                        /* active, suspended, erased */
    char stripe_customer[BN_STRIPE_ID_MAX]; /* "" when none */
    int64_t created_ms;
    int64_t n_keys; /* keys not revoked */
} bn_tenant;

/* Whether name is a valid tenant name (as bn_db_tenant_add wants it): 1 or 0. */
int bn_tenant_name_ok(const char *name);
/* Adds an active tenant. name: 1 .. 127 bytes of printable ASCII other than space, quotes,
 * backslash and comma, not all digits (those are ids), not starting with '-'; tier: 1 .. 31
 * bytes of [a-z0-9_-]; stripe_customer may be NULL ([A-Za-z0-9_]). BN_ERR_INVALID for a bad
 * or taken name. Audited as tenant.add. */
bn_status bn_db_tenant_add(bn_db *db, const char *actor, const char *name, const char *tier,
                           const char *stripe_customer, int64_t *id);
/* The tenant that ref names; BN_ERR_NOT_FOUND when none. */
bn_status bn_db_tenant_get(bn_db *db, const char *ref, bn_tenant *out);
/* Every tenant, by id. */
bn_status bn_db_tenant_list(bn_db *db, int (*fn)(void *ud, const bn_tenant *t), void *ud);
/* active <-> suspended (suspend 1 or 0); an erased tenant is refused. A suspended tenant's keys
 * fail lookup with BN_KEY_SUSPENDED. Audited as tenant.suspend / tenant.resume. */
bn_status bn_db_tenant_suspend(bn_db *db, const char *actor, const char *ref, int suspend);
/* Deletes a tenant and its keys; refused (BN_ERR_INVALID) when it has usage in the ledger,
 * which is billing data: erase it instead. Audited as tenant.delete. */
bn_status bn_db_tenant_delete(bn_db *db, const char *actor, const char *ref);
/* Erases a tenant's personal data: its keys are deleted, its name becomes "erased-<id>", its
 * Stripe id is cleared, its status is erased, and its usage rows are folded into one
 * anonymous row per day and model (request and token counts kept, no key or request id).
 * Its meter events in the billing outbox are deleted, those not yet sent too (they name the
 * Stripe customer): the audit entry's details count those, {"unbilled_events": n,
 * "unbilled_tokens": t}, so that the business can bill them by hand.
 * Audited as tenant.erase (the entry names the id only). */
bn_status bn_db_tenant_erase(bn_db *db, const char *actor, const char *ref);
/* Every datum held about a tenant as one JSON document (bn_free): the tenant, its keys
 * (prefix, scopes, times: never a hash), its usage rows, its meter events in the billing
 * outbox ("billing_events") and the audit entries about it.
 * Audited as tenant.export. */
bn_status bn_db_tenant_export(bn_db *db, const char *actor, const char *ref, char **json);

/* ---- API keys ----------------------------------------------------------------------------- */

enum {
    BN_SCOPE_INFERENCE = 1, /* the completion endpoints */
    BN_SCOPE_USAGE = 2,     /* reading the tenant's own usage */
    BN_SCOPE_ADMIN = 4,     /* tenants, keys and the usage of all */
    BN_SCOPE_ALL_ = 7,
};
/* Parses "inference,usage,admin" (any of them, comma-separated) into *scopes; 0 or -1. */
int bn_scopes_parse(const char *s, unsigned *scopes);
/* "inference,usage" into buf (at least 24 bytes). */
const char *bn_scopes_str(unsigned scopes, char *buf, size_t size);

typedef struct bn_api_key {
    int64_t id, tenant_id;
    char prefix[BN_KEY_PREFIX_MAX]; /* the first characters of the key, to recognise it */
    unsigned scopes;
    int64_t created_ms, expires_ms, revoked_ms, last_used_ms; /* 0: none / never */
} bn_api_key;

/* Creates a key for tenant tenant_id (active) with scopes (non-zero) and an expiry (0: none;
 * else in the future): 32 bytes from getrandom(2) as "bnk_" + base64url, written into key
 * (BN_KEY_STR_MAX bytes). Only its SHA-256 is stored; the key cannot be shown again.
 * Audited as key.create. */
bn_status bn_db_key_create(bn_db *db, const char *actor, int64_t tenant_id, unsigned scopes,
                           int64_t expires_ms, char key[BN_KEY_STR_MAX], int64_t *id);
/* Revokes key id now (at once, for every reader of the store). Revoking a revoked key is
 * BN_ERR_INVALID. Audited as key.revoke. */
bn_status bn_db_key_revoke(bn_db *db, const char *actor, int64_t id);
/* The keys of tenant_id (0: all), by id. */
bn_status bn_db_key_list(bn_db *db, int64_t tenant_id, int (*fn)(void *ud, const bn_api_key *k),
                         void *ud);

typedef enum bn_key_reason {
    BN_KEY_OK = 0,
    BN_KEY_MALFORMED = 1, /* not "bnk_" + 43 base64url characters */
    BN_KEY_UNKNOWN = 2,   /* no such key (or erased, or deleted) */
    BN_KEY_REVOKED = 3,
    BN_KEY_EXPIRED = 4,
    BN_KEY_SUSPENDED = 5, /* its tenant is suspended */
} bn_key_reason;
/* "ok", "malformed", "unknown", "revoked", "expired", "tenant suspended". */
const char *bn_key_reason_str(bn_key_reason r);

typedef struct bn_key_auth {
    bn_key_reason reason;
    int64_t tenant_id, key_id; /* set when the key exists */
    unsigned scopes;
    char tier[BN_TENANT_TIER_MAX];
    char tenant[BN_TENANT_NAME_MAX]; /* its name: the config's tenants object keys by it */
} bn_key_auth;

/* Authenticates a presented key string (the Bearer token): BN_OK with out->reason saying
 * whether it may be used; a status other than BN_OK only when the store failed. Records the
 * key's last use (at most once a minute per key). */
bn_status bn_db_key_lookup(bn_db *db, const char *key, bn_key_auth *out);
/* The SHA-256 of key as the store keeps it (what bn_db_key_lookup_hash takes). */
#define BN_KEY_HASH_LEN 32
void bn_db_key_digest(const char *key, uint8_t h[BN_KEY_HASH_LEN]);
/* bn_db_key_lookup of the key whose digest (bn_db_key_digest) is h, for a caller that keeps
 * the digests of keys it has seen (serve's lookups kept on PostgreSQL) and not the keys;
 * out->reason is never BN_KEY_MALFORMED. */
bn_status bn_db_key_lookup_hash(bn_db *db, const uint8_t h[BN_KEY_HASH_LEN], bn_key_auth *out);

/* ---- the usage ledger --------------------------------------------------------------------- */

typedef struct bn_usage_rec {
    const char *request_id; /* unique per request: the ledger's idempotency key */
    int64_t tenant_id, key_id;
    const char *model;
    int64_t prompt_tokens, completion_tokens, duration_ms;
    const char *status; /* ok, error, cancelled, ... */
    int64_t at_ms;      /* 0: now */
} bn_usage_rec;

/* Records one finished request, and in the same transaction its meter event in the billing
 * outbox (below). *fresh (may be NULL) is 1 when recorded now, 0 when that request id was
 * already in the ledger (which is left as it was, its event too: the first record wins). */
bn_status bn_db_usage_record(bn_db *db, const bn_usage_rec *r, int *fresh);
/* bn_db_usage_record of the n rows r[0..n) of one tenant together (on PostgreSQL one
 * statement, one transaction: a server's ledger writes that come at once); fresh[i] as
 * bn_db_usage_record's, each[i] its status (BN_ERR_INVALID: a malformed row, not written;
 * BN_ERR_NOT_FOUND: no such tenant, or erased). Returns what failed for all (the store: then
 * no row was written), BN_ERR_INVALID for rows of more than one tenant, else BN_OK. */
bn_status bn_db_usage_record_n(bn_db *db, const bn_usage_rec *const *r, size_t n, int *fresh,
                               bn_status *each);

typedef struct bn_usage_day {
    int64_t tenant_id;
    const char *tenant_name, *tier;
    const char *day; /* "YYYY-MM-DD", UTC */
    int64_t requests, prompt_tokens, completion_tokens;
} bn_usage_day;

/* Usage per tenant and day, for tenant_id (0: all) in [from_ms, to_ms) (0: open), by tenant
 * then day. */
bn_status bn_db_usage_report(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                             int (*fn)(void *ud, const bn_usage_day *d), void *ud);

typedef struct bn_usage_total {
    int64_t requests, prompt_tokens, completion_tokens;
} bn_usage_total;

/* The totals of tenant_id (0: all) in [from_ms, to_ms) (0: open): what a monthly quota is
 * checked against. */
bn_status bn_db_usage_total(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                            bn_usage_total *out);

/* ---- the billing outbox (migration 6, db/outbox.c) ------------------------------------------
 *
 * bn_db_usage_record() writes, in the ledger row's transaction, one meter event for the
 * billing sender when the request used tokens and its tenant has a Stripe customer: event id
 * (Stripe's identifier: the request id, or "bn-" and its SHA-256 when that is over
 * BN_EVENT_ID_MAX - 1 bytes), customer, value (prompt + completion tokens) and time. A
 * sender claims the due events (each for lease_ms: another sender skips it meanwhile, and
 * takes it again once the lease runs out, as after a crash), sends them, and marks each
 * acknowledged (Stripe took it, or had that identifier already), due again at a later time
 * (a failure that may pass), or failed for good (Stripe refused it; kept with the error). */

#define BN_EVENT_ID_MAX 101 /* Stripe's identifier: at most 100 characters */

typedef struct bn_outbox_event {
    int64_t id; /* the outbox row */
    char event_id[BN_EVENT_ID_MAX];
    int64_t tenant_id;
    char customer[BN_STRIPE_ID_MAX];
    int64_t value;    /* tokens */
    int64_t at_ms;    /* when the request finished */
    int64_t attempts; /* failed tries so far */
} bn_outbox_event;

/* Up to max_n events that are pending, due (next attempt time <= now_ms) and not leased,
 * oldest first, into out[0 .. *n); each is leased until now_ms + lease_ms. */
bn_status bn_db_outbox_claim(bn_db *db, int64_t now_ms, int64_t lease_ms, bn_outbox_event *out,
                             size_t max_n, size_t *n);
/* Stripe acknowledged event id (its outbox row) at now_ms; duplicate: it answered that it had
 * the identifier already (delivered before). An acknowledged event stays so. */
bn_status bn_db_outbox_ack(bn_db *db, int64_t id, int duplicate, int64_t now_ms);
/* bn_db_outbox_ack of the n events ids[] (duplicate[i] for each) in one transaction (one
 * statement on PostgreSQL). BN_ERR_NOT_FOUND when one of them is not in the outbox; the others
 * are acknowledged all the same. */
bn_status bn_db_outbox_ack_n(bn_db *db, const int64_t *ids, const int *duplicate, size_t n,
                             int64_t now_ms);
/* Gives back the leases of the n events ids[] (claimed, not sent): those still pending are due
 * for any sender at once, with no attempt counted. */
bn_status bn_db_outbox_release(bn_db *db, const int64_t *ids, size_t n);
/* Not delivered, may pass: one more attempt counted, error kept, due again at next_ms, lease
 * released. A no-op for an event acknowledged meanwhile. */
bn_status bn_db_outbox_retry(bn_db *db, int64_t id, int64_t next_ms, const char *error);
/* Refused for good (error kept): state failed, never claimed again. */
bn_status bn_db_outbox_fail(bn_db *db, int64_t id, const char *error);

/* Puts the failed events of tenant_id (0: all) back as pending, due at now_ms (once what
 * made Stripe refuse them is fixed: a meter created, a key's rights); *n how many. Audited as
 * billing.retry when there were any. */
bn_status bn_db_outbox_requeue(bn_db *db, const char *actor, int64_t tenant_id, int64_t now_ms,
                               int64_t *n);

typedef struct bn_outbox_counts {
    int64_t pending, acked, failed;                   /* events */
    int64_t due;                                      /* pending and due at now_ms */
    int64_t retrying;                                 /* pending with a failed attempt */
    int64_t duplicates;                               /* acknowledged as a duplicate */
    int64_t pending_value, acked_value, failed_value; /* tokens */
    int64_t oldest_pending_ms;                        /* 0: none pending */
    char last_error[256];                             /* of the newest failed attempt ("" none) */
} bn_outbox_counts;

/* The events by state (at now_ms, for due). */
bn_status bn_db_outbox_counts(bn_db *db, int64_t now_ms, bn_outbox_counts *out);

typedef struct bn_billing_row {
    int64_t tenant_id;
    const char *tenant_name, *customer;     /* customer: "" when the tenant has none now */
    int64_t ledger_requests, ledger_tokens; /* the ledger: prompt + completion tokens */
    int64_t events, queued_tokens;          /* the outbox's events of those requests */
    int64_t acked_tokens, pending_tokens, failed_tokens;
} bn_billing_row;

/* Reconciliation: per tenant (tenant_id 0: each that has a Stripe customer now or events in
 * the outbox), the ledger's tokens in [from_ms, to_ms) (0: open) beside its outbox's events
 * of the same time, by state; by tenant id. Billing is exact when ledger_tokens ==
 * acked_tokens. */
bn_status bn_db_billing_reconcile(bn_db *db, int64_t tenant_id, int64_t from_ms, int64_t to_ms,
                                  int (*fn)(void *ud, const bn_billing_row *r), void *ud);

/* ---- the audit log ------------------------------------------------------------------------ */

typedef struct bn_audit_entry {
    int64_t id, at_ms;
    const char *actor, *action, *target, *details; /* details: JSON text */
    const char *prev_hash, *hash;                  /* 64 hex digits */
} bn_audit_entry;

/* Appends an entry (details: JSON text, NULL for {}) in its own transaction: for actions with
 * no store change of their own. */
bn_status bn_db_audit_append(bn_db *db, const char *actor, const char *action, const char *target,
                             const char *details);
/* The entries, oldest first. */
bn_status bn_db_audit_list(bn_db *db, int (*fn)(void *ud, const bn_audit_entry *e), void *ud);
/* Recomputes the chain: *bad_id is 0 when every entry holds the hash of the one before it
 * and its own hash is right, else the id of the first entry that does not (why says how, in
 * why_size bytes). *n: the entries checked. */
bn_status bn_db_audit_verify(bn_db *db, int64_t *n, int64_t *bad_id, char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#endif
