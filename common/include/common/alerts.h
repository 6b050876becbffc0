/*
 * alerts.h - alert rules (the config's "alerts" array) and their state machine, as
 * Prometheus defines it:
 *
 *     inactive --holds--> pending --holds for `for`--> firing --stops holding--> resolved
 *        ^                   |                                                      |
 *        +---stops holding---+                     resolved --holds--> pending (or firing)
 *
 * A rule with `for` 0 goes from inactive (or resolved) straight to firing. A rule "holds" when
 * some series its selector matches compares true with the threshold; no matching series (no
 * data) or NaN does not hold. Firing and resolved are the transitions that notify; every
 * transition is reported to the caller (which stores it in the history).
 *
 * Usage:
 *
 *     bn_alerts *a;
 *     char err[256];
 *     if (bn_alerts_parse(bn_config_get_json(cfg, "alerts"), &a, err, sizeof err)) ...;
 *     for (;;) {
 *         bn_msnap snap;
 *         bn_metrics_snapshot(reg, 0, &snap);
 *         bn_alerts_eval(a, &snap, now_seconds, on_transition, ud);   // the clock is injected
 *         bn_msnap_release(&snap);
 *     }
 *     bn_alerts_free(a);
 *
 * Ownership: the set owns its rules; a transition passed to the callback lives for the call.
 */
#ifndef BITNET_COMMON_ALERTS_H
#define BITNET_COMMON_ALERTS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "common/config.h"
#include "common/metrics.h"

#define BN_ALERTS_MAX       256 /* rules */
#define BN_ALERTS_MAX_SINKS 8

/* Stored as text in the history; values only grow. */
typedef enum bn_alert_state {
    BN_ALERT_INACTIVE = 0,
    BN_ALERT_PENDING = 1,
    BN_ALERT_FIRING = 2,
    BN_ALERT_RESOLVED = 3,
} bn_alert_state;

typedef enum bn_alert_op {
    BN_ALERT_GT = 0,
    BN_ALERT_GE = 1,
    BN_ALERT_LT = 2,
    BN_ALERT_LE = 3,
    BN_ALERT_EQ = 4,
    BN_ALERT_NE = 5,
} bn_alert_op;

typedef struct bn_alert_rule {
    char name[128];   /* "alerts[N]" when the rule has none */
    char metric[512]; /* the selector as written */
    bn_msel sel;
    bn_alert_op op;
    double threshold;
    double for_s;      /* seconds */
    char severity[16]; /* "info", "warning" (default), "critical" */
    cJSON *labels;     /* an object of strings (never NULL) */
    int n_sinks;       /* 0: every notification sink in use */
    char sinks[BN_ALERTS_MAX_SINKS][16];
    double silenced_until; /* "silenced_until": no notification before (epoch seconds; 0: none) */
    double acked_at;       /* "acknowledged_at": when an operator acknowledged it (0: never) */
    /* the state */
    bn_alert_state state;
    double since;     /* when the state began (seconds, the caller's clock) */
    double active_at; /* when the condition began to hold (pending and firing) */
    double value;     /* the last value seen; NaN when no series matched */
    char series[256]; /* the series that value came from; "" when none */
} bn_alert_rule;

typedef struct bn_alerts bn_alerts;

typedef struct bn_alert_transition {
    const bn_alert_rule *rule;
    bn_alert_state from, to;
    double at;          /* the caller's clock */
    double value;       /* NaN: no data */
    const char *series; /* "" when none */
    int notify;         /* to firing, or firing to resolved */
} bn_alert_transition;

typedef void (*bn_alert_fn)(void *ud, const bn_alert_transition *t);

/* The notification sinks a rule may name. */
extern const char *const bn_alert_sink_names[]; /* NULL-terminated */

/* Parses and checks the rules (rules may be NULL: none). 0, or -1 with "alerts[2].op: ..."
 * in err. */
int bn_alerts_parse(const cJSON *rules, bn_alerts **out, char *err, size_t errsz);
/* The same parse, reporting every rule that fails (each problem, keyed "alerts[2].op"),
 * rules with the same name, and warnings (unknown fields, no name) to fn; the number of errors.
 * The config's schema check uses it, so a file that loads holds rules the monitor takes. */
int bn_alerts_check(const cJSON *rules, bn_config_report_fn fn, void *ud);
void bn_alerts_free(bn_alerts *a); /* NULL is fine */
size_t bn_alerts_count(const bn_alerts *a);
bn_alert_rule *bn_alerts_rule(bn_alerts *a, size_t i);
bn_alert_rule *bn_alerts_find(bn_alerts *a, const char *name);

/* Whether r holds on snap now: 1 or 0; *value and series (may be NULL) tell which series
 * and value decided (NaN and "" when none matched). */
int bn_alert_check(const bn_alert_rule *r, const bn_msnap *snap, double *value, char *series,
                   size_t seriessz);
/* Evaluates every rule at time now and calls fn (may be NULL) for each transition. */
void bn_alerts_eval(bn_alerts *a, const bn_msnap *snap, double now, bn_alert_fn fn, void *ud);
/* Puts a rule back in a state it had (from the history, at start-up): pending or firing since
 * the given time; other states make it inactive. */
void bn_alert_restore(bn_alert_rule *r, bn_alert_state s, double since);

/* Whether the rule's notifications are silenced at now (epoch seconds). */
int bn_alert_silenced(const bn_alert_rule *r, double now);
/* Whether it fires and was acknowledged since it began to (acknowledged_at >= since). */
int bn_alert_acknowledged(const bn_alert_rule *r);

/* Whether the rule sends to the sink named (its sinks, or every one when it names none). */
int bn_alert_rule_has_sink(const bn_alert_rule *r, const char *sink);

const char *bn_alert_state_str(bn_alert_state s);
int bn_alert_state_parse(const char *s, bn_alert_state *out);
const char *bn_alert_op_str(bn_alert_op op);

/* The rule and its state, as `bitnet alerts list --json` shows it (with "silenced_until" and
 * "acknowledged_at", RFC 3339 or null, and "acknowledged"); NULL when out of memory. */
cJSON *bn_alert_rule_json(const bn_alert_rule *r);
/* A notification (webhook body): rule, state, previous_state, severity, metric, op,
 * threshold, for_seconds, value, series, labels, host, at (RFC 3339), at_ms, test. at is
 * seconds since the epoch. NULL when out of memory. */
cJSON *bn_alert_notification_json(const bn_alert_rule *r, bn_alert_state from, bn_alert_state to,
                                  double at, double value, const char *series, const char *host,
                                  int test);

#endif
