/*
 * billing.h - the billing sender: the meter events of the outbox (bitnet/db_tenants.h) to
 * Stripe's meter events API, for `bitnet serve --tenants` (a thread) and `bitnet billing
 * send` (cron, or in the foreground).
 *
 * Each event is one request, one at a time (Stripe takes one call per customer and meter at
 * once): POST {billing.endpoint}/v1/billing/meter_events, form-encoded, with event_name,
 * payload[stripe_customer_id], payload[value] (the tokens), identifier (the event id, so that
 * a retry cannot bill twice) and timestamp (seconds), and "Authorization: Bearer" the secret
 * key from the environment variable billing.key_env names (never from the config, never in a
 * log). What an answer means is cm_billing_verdict's. After a failure that may pass, the
 * event is due again after a backoff (1 s doubling up to billing.backoff_max, jittered, at
 * least the Retry-After asked for; common/backoff.h), and the sender waits for it before sending
 * any other. Events are claimed up to 16 at a time (one transaction), and those delivered
 * acknowledged together (one more); those of a claim not sent are given back at once.
 *
 * Usage:
 *
 *     cm_billing_opts o;
 *     if (cm_billing_opts_load(cfg, &o, err, sizeof err) != 0) ...   // 1: not configured
 *     cm_billing *b;
 *     cm_billing_new(&o, "bitnet serve: billing", &b, err, sizeof err);
 *     cm_billing_start(b);          // a thread; cm_billing_wake(b) when a ledger row is new
 *     ...
 *     cm_billing_free(b);           // stops it (a request in flight is aborted)
 *
 * or, in the foreground: cm_billing_pass(b, &stats) sends what is due now.
 *
 * Threads: cm_billing_wake and cm_billing_stop may be called from any thread; the rest from
 * the owner. The sender has a store handle of its own.
 */
#ifndef BITNET_COMMON_BILLING_H
#define BITNET_COMMON_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/db_tenants.h"
#include "common/config.h"

#define CM_BILLING_PATH "/v1/billing/meter_events"
/* billing.api stream: Stripe's meter event stream (API v2), up to CM_BILLING_STREAM_MAX events a
 * request, authenticated by a session token (15 minutes) that the secret key makes */
#define CM_BILLING_SESSION_PATH "/v2/billing/meter_event_session"
#define CM_BILLING_STREAM_PATH  "/v2/billing/meter_event_stream"
#define CM_BILLING_STREAM_MAX   100

typedef struct cm_billing_opts {
    char endpoint[512];   /* billing.endpoint without a trailing '/' */
    char event_name[101]; /* billing.event_name: 1 .. 100 bytes */
    char key_env[64];     /* billing.key_env */
    char key[512];        /* the secret key, from $key_env */
    double timeout_s;     /* billing.timeout: one request */
    double backoff_max_s; /* billing.backoff_max */
    double interval_s;    /* billing.interval: how often an idle sender looks */
    int stream;           /* billing.api is "stream" (else "meter_events") */
    char stream_endpoint[512]; /* billing.stream_endpoint without a trailing '/' */
    char stripe_version[64];   /* billing.stripe_version: the Stripe-Version of API v2 calls */
    const char *database; /* the outbox of the PostgreSQL store at this URL, on a connection
                             of the sender's own; NULL: the history's. Not set by
                             cm_billing_opts_load; read by cm_billing_new only */
} cm_billing_opts;

/* The options from cfg and the environment: 0; 1 when billing is not configured
 * (billing.event_name is empty); -1 with a one-line message in err (a bad value, or the key's
 * variable unset or empty). */
int cm_billing_opts_load(const bn_config *cfg, cm_billing_opts *o, char *err, size_t errsz);

/* The JSON body of a meter event stream request (billing.api stream) of e[0..n): {"events":
 * [{"identifier", "event_name", "timestamp" (RFC 3339, UTC, ms), "payload":
 * {"stripe_customer_id", "value" (a string)}}]}; cJSON_free it; NULL when out of memory. */
char *cm_billing_stream_body(const char *event_name, const bn_outbox_event *e, size_t n);

/* The form body of event e into buf (NUL-terminated): 0, or -1 when it does not fit. */
int cm_billing_form(const char *event_name, const bn_outbox_event *e, char *buf, size_t size);

typedef enum cm_bill_verdict {
    CM_BILL_ACKED = 0,     /* 2xx with the meter event in it */
    CM_BILL_DUPLICATE = 1, /* Stripe had this identifier already: delivered before */
    CM_BILL_RETRY = 2,     /* no answer, 5xx, 429, 408, 409, 401/403 (the key, not the event),
                              a 2xx that is not a meter event, or Stripe-Should-Retry: true */
    CM_BILL_REFUSED = 3,   /* any other 4xx: this event, for good */
} cm_bill_verdict;

/* What HTTP status (0: no answer) with body (may be NULL) means for event_id; should_retry:
 * the Stripe-Should-Retry header (1 true, 0 false, -1 absent). */
cm_bill_verdict cm_billing_verdict(long status, const char *body, const char *event_id,
                                   int should_retry);

typedef struct cm_billing cm_billing;

typedef struct cm_billing_stats {
    int64_t acked, duplicates, retried, refused;
    int waiting; /* the pass stopped after a failure that may pass (see cm_billing_next) */
} cm_billing_stats;

/* A sender with opts (copied) that logs with the prefix log_prefix ("bitnet serve: billing");
 * opens its store handle now. 0, or -1 with a one-line message in err. */
int cm_billing_new(const cm_billing_opts *o, const char *log_prefix, cm_billing **out, char *err,
                   size_t errsz);
/* Stops the thread (if started) and frees b (NULL is fine). */
void cm_billing_free(cm_billing *b);
/* Sends the events due now, oldest first, until none is due, a failure that may pass (the
 * sender then waits: st->waiting), or a stop. Adds to *st. 0, or -1 when the store fails
 * (logged). */
int cm_billing_pass(cm_billing *b, cm_billing_stats *st);
/* When the sender may send again after a failure (ms since the epoch; 0: now). */
int64_t cm_billing_next(const cm_billing *b);

/* A thread that makes a pass when woken, every interval, and once a backoff ends. 0 or -1. */
int cm_billing_start(cm_billing *b);
void cm_billing_wake(cm_billing *b);
/* Asks the thread (or a pass) to stop; a request in flight is aborted. */
void cm_billing_stop(cm_billing *b);

#endif
