/* test_alerts.c - alert rules: parsing and its errors, the state machine (inactive, pending,
 * firing, resolved) with an injected clock, `for` 0, no data and NaN, selectors over several
 * series, restoring a state, sinks, and the notification document; and where transitions and
 * undelivered notifications are kept: the spool (order, done and failed, the bound dropping
 * oldest first, replace), the transitions table, the migration of a version 2 history.
 *
 * common/alerts.c, common/metrics.c, app/monitor/spool.c and common/config.c (durations) come from
 * the app's objects (libbitnetapp.a). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/alerts.h"
#include "common/config.h"
#include "common/metrics.h"
#include "../../app/monitor/spool.h"
#include "bitnet/db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <cjson/cJSON.h>

#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static bn_alerts *parse_ok(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    bn_alerts *a = NULL;
    char err[256] = "";
    int rc = bn_alerts_parse(j, &a, err, sizeof err);
    if (rc) fail_msg("parse failed: %s", err);
    cJSON_Delete(j);
    return a;
}

static void parse_bad(const char *json, const char *want)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    bn_alerts *a = (bn_alerts *)1;
    char err[256] = "";
    assert_int_equal(bn_alerts_parse(j, &a, err, sizeof err), -1);
    assert_null(a);
    if (!strstr(err, want)) fail_msg("'%s' does not contain '%s'", err, want);
    cJSON_Delete(j);
}

/* A registry with one gauge t_temp{gpu} and the recorded transitions. */
typedef struct fixture {
    bn_metrics *m;
    bn_mfamily *temp;
    bn_alert_transition t[32];
    char series[32][256];
    int n;
} fixture;

static void record(void *ud, const bn_alert_transition *t)
{
    fixture *f = ud;
    assert_true(f->n < 32);
    f->t[f->n] = *t;
    snprintf(f->series[f->n], sizeof f->series[0], "%s", t->series);
    f->t[f->n].series = f->series[f->n];
    f->n++;
}

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(bn_metrics_new(&f->m), 0);
    static const char *const lab[] = {"gpu", NULL};
    f->temp = bn_metrics_define(f->m, BN_METRIC_GAUGE, "t_temp", "", lab, NULL, 0);
    assert_non_null(f->temp);
}

static void set_temp(fixture *f, const char *gpu, double v)
{
    const char *lv[] = {gpu};
    assert_int_equal(bn_metric_set(f->temp, lv, v), 0);
}

/* Evaluates a at time now on the registry as it is; returns the number of new transitions. */
static int eval_at(fixture *f, bn_alerts *a, double now)
{
    const int before = f->n;
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(f->m, 0, &snap), 0);
    bn_alerts_eval(a, &snap, now, record, f);
    bn_msnap_release(&snap);
    return f->n - before;
}

static void expect_transition(const fixture *f, int i, bn_alert_state from, bn_alert_state to,
                              double at, int notify)
{
    assert_true(i < f->n);
    assert_int_equal(f->t[i].from, from);
    assert_int_equal(f->t[i].to, to);
    assert_true(f->t[i].at == at);
    assert_int_equal(f->t[i].notify, notify);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_parse(void **state)
{
    (void)state;
    bn_alerts *a = parse_ok("[{\"name\":\"hot\",\"metric\":\"t_temp{gpu=\\\"0\\\"}\",\"op\":\">\","
                            "\"threshold\":80,\"for\":\"1m30s\",\"severity\":\"critical\","
                            "\"labels\":{\"team\":\"ops\"},\"sinks\":[\"webhook\",\"log\"]},"
                            "{\"metric\":\"x\",\"op\":\"<=\",\"threshold\":-1.5,\"for\":2}]");
    assert_int_equal(bn_alerts_count(a), 2);
    const bn_alert_rule *r = bn_alerts_rule(a, 0);
    assert_string_equal(r->name, "hot");
    assert_string_equal(r->sel.name, "t_temp");
    assert_int_equal(r->sel.n, 1);
    assert_int_equal(r->op, BN_ALERT_GT);
    assert_true(r->for_s == 90);
    assert_string_equal(r->severity, "critical");
    assert_string_equal(cJSON_GetObjectItem(r->labels, "team")->valuestring, "ops");
    assert_int_equal(r->n_sinks, 2);
    assert_true(bn_alert_rule_has_sink(r, "webhook"));
    assert_false(bn_alert_rule_has_sink(r, "datadog"));
    assert_int_equal(r->state, BN_ALERT_INACTIVE);
    r = bn_alerts_rule(a, 1);
    assert_string_equal(r->name, "alerts[1]"); /* unnamed */
    assert_string_equal(r->severity, "warning");
    assert_true(r->for_s == 2);
    assert_true(bn_alert_rule_has_sink(r, "datadog")); /* no sinks: every one */
    assert_ptr_equal(bn_alerts_find(a, "hot"), bn_alerts_rule(a, 0));
    assert_null(bn_alerts_find(a, "nope"));
    assert_null(bn_alerts_rule(a, 2));
    bn_alerts_free(a);

    a = parse_ok("[]");
    assert_int_equal(bn_alerts_count(a), 0);
    bn_alerts_free(a);
    char err[64];
    assert_int_equal(bn_alerts_parse(NULL, &a, err, sizeof err), 0); /* no rules */
    bn_alerts_free(a);

    parse_bad("{}", "expected an array");
    parse_bad("[1]", "alerts[0]: expected an object");
    parse_bad("[{\"op\":\">\",\"threshold\":1}]", "alerts[0].metric");
    parse_bad("[{\"metric\":\"x{\",\"op\":\">\",\"threshold\":1}]", "alerts[0].metric");
    parse_bad("[{\"metric\":\"x\",\"op\":\"=>\",\"threshold\":1}]", "alerts[0].op");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\"}]", "alerts[0].threshold");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":\"1\"}]", "threshold");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"for\":\"5 min\"}]", ".for");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"for\":-1}]", ".for");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"severity\":\"bad\"}]", "severity");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"sinks\":[\"pager\"]}]", "sinks");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"sinks\":\"log\"}]", "sinks");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"labels\":{\"a\":1}}]", "labels");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"name\":\"\"}]", "name");
    parse_bad("[{\"name\":\"a\",\"metric\":\"x\",\"op\":\">\",\"threshold\":1},"
              "{\"name\":\"a\",\"metric\":\"y\",\"op\":\">\",\"threshold\":1}]",
              "alerts[1].name: the same name");
}

static void test_state_machine(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    bn_alerts *a = parse_ok("[{\"name\":\"hot\",\"metric\":\"t_temp\",\"op\":\">\","
                            "\"threshold\":80,\"for\":\"30s\"}]");
    bn_alert_rule *r = bn_alerts_rule(a, 0);
    /* no data: nothing happens */
    assert_int_equal(eval_at(&f, a, 0), 0);
    assert_true(isnan(r->value));
    set_temp(&f, "0", 70);
    assert_int_equal(eval_at(&f, a, 5), 0);
    assert_true(r->value == 70);
    /* holds: pending, silently */
    set_temp(&f, "0", 90);
    assert_int_equal(eval_at(&f, a, 10), 1);
    expect_transition(&f, 0, BN_ALERT_INACTIVE, BN_ALERT_PENDING, 10, 0);
    assert_string_equal(f.t[0].series, "t_temp{gpu=\"0\"}");
    assert_true(f.t[0].value == 90);
    /* still pending before `for` has passed */
    assert_int_equal(eval_at(&f, a, 39.9), 0);
    assert_int_equal(r->state, BN_ALERT_PENDING);
    /* fires once `for` has passed, and notifies */
    assert_int_equal(eval_at(&f, a, 40), 1);
    expect_transition(&f, 1, BN_ALERT_PENDING, BN_ALERT_FIRING, 40, 1);
    assert_int_equal(eval_at(&f, a, 50), 0); /* firing stays firing */
    /* stops holding: resolved, notifies */
    set_temp(&f, "0", 80); /* not > 80 */
    assert_int_equal(eval_at(&f, a, 60), 1);
    expect_transition(&f, 2, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 60, 1);
    assert_int_equal(eval_at(&f, a, 70), 0);
    assert_int_equal(r->state, BN_ALERT_RESOLVED);
    /* holds again: pending; stops before `for`: back to inactive, silently */
    set_temp(&f, "0", 85);
    assert_int_equal(eval_at(&f, a, 80), 1);
    expect_transition(&f, 3, BN_ALERT_RESOLVED, BN_ALERT_PENDING, 80, 0);
    set_temp(&f, "0", 10);
    assert_int_equal(eval_at(&f, a, 90), 1);
    expect_transition(&f, 4, BN_ALERT_PENDING, BN_ALERT_INACTIVE, 90, 0);
    /* `for` is measured from when the condition began to hold, not from the last eval */
    set_temp(&f, "0", 99);
    eval_at(&f, a, 100);
    eval_at(&f, a, 115);
    assert_int_equal(eval_at(&f, a, 129), 0);
    assert_int_equal(eval_at(&f, a, 130), 1);
    expect_transition(&f, 6, BN_ALERT_PENDING, BN_ALERT_FIRING, 130, 1);
    /* the series disappears (no data): resolved */
    bn_mfamily_clear(f.temp);
    assert_int_equal(eval_at(&f, a, 140), 1);
    expect_transition(&f, 7, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 140, 1);
    assert_true(isnan(f.t[7].value));
    assert_string_equal(f.t[7].series, "");
    bn_alerts_free(a);
    bn_metrics_free(f.m);
}

static void test_for_zero_nan_and_selectors(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    bn_alerts *a =
            parse_ok("[{\"name\":\"any\",\"metric\":\"t_temp\",\"op\":\">=\",\"threshold\":50},"
                     "{\"name\":\"gpu1\",\"metric\":\"t_temp{gpu=\\\"1\\\"}\",\"op\":\"!=\","
                     "\"threshold\":0},"
                     "{\"name\":\"eq\",\"metric\":\"t_temp{gpu!=\\\"1\\\"}\",\"op\":\"==\","
                     "\"threshold\":10}]");
    set_temp(&f, "0", 10);
    set_temp(&f, "1", 60);
    /* for 0: straight to firing; "any" holds through gpu 1 */
    assert_int_equal(eval_at(&f, a, 1), 3);
    expect_transition(&f, 0, BN_ALERT_INACTIVE, BN_ALERT_FIRING, 1, 1);
    assert_string_equal(f.t[0].series, "t_temp{gpu=\"1\"}");
    assert_true(f.t[0].value == 60);
    expect_transition(&f, 1, BN_ALERT_INACTIVE, BN_ALERT_FIRING, 1, 1);
    expect_transition(&f, 2, BN_ALERT_INACTIVE, BN_ALERT_FIRING, 1, 1);
    assert_string_equal(f.t[2].series, "t_temp{gpu=\"0\"}");
    /* NaN never holds, not even for != */
    set_temp(&f, "1", NAN);
    set_temp(&f, "0", NAN);
    assert_int_equal(eval_at(&f, a, 2), 3);
    for (int i = 3; i < 6; i++) expect_transition(&f, i, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 2, 1);
    /* resolved -> firing directly with for 0 */
    set_temp(&f, "0", 50);
    assert_int_equal(eval_at(&f, a, 3), 1);
    expect_transition(&f, 6, BN_ALERT_RESOLVED, BN_ALERT_FIRING, 3, 1);
    /* bn_alert_check alone */
    bn_msnap snap;
    assert_int_equal(bn_metrics_snapshot(f.m, 0, &snap), 0);
    double v;
    char ser[64];
    assert_int_equal(bn_alert_check(bn_alerts_find(a, "eq"), &snap, &v, ser, sizeof ser), 0);
    assert_true(v == 50);
    assert_string_equal(ser, "t_temp{gpu=\"0\"}");
    assert_int_equal(bn_alert_check(bn_alerts_find(a, "any"), NULL, &v, NULL, 0), 0);
    assert_true(isnan(v));
    bn_msnap_release(&snap);
    bn_alerts_free(a);
    bn_metrics_free(f.m);
}

static void test_restore(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    bn_alerts *a = parse_ok("[{\"name\":\"hot\",\"metric\":\"t_temp\",\"op\":\">\","
                            "\"threshold\":80,\"for\":\"30s\"}]");
    bn_alert_rule *r = bn_alerts_rule(a, 0);
    /* firing before a restart: no second firing notification while it still holds */
    bn_alert_restore(r, BN_ALERT_FIRING, 100);
    set_temp(&f, "0", 90);
    assert_int_equal(eval_at(&f, a, 200), 0);
    set_temp(&f, "0", 10);
    assert_int_equal(eval_at(&f, a, 210), 1);
    expect_transition(&f, 0, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 210, 1);
    /* pending since 100: fires at 130 */
    bn_alert_restore(r, BN_ALERT_PENDING, 100);
    set_temp(&f, "0", 90);
    assert_int_equal(eval_at(&f, a, 120), 0);
    assert_int_equal(eval_at(&f, a, 130), 1);
    expect_transition(&f, 1, BN_ALERT_PENDING, BN_ALERT_FIRING, 130, 1);
    bn_alert_restore(r, BN_ALERT_RESOLVED, 5);
    assert_int_equal(r->state, BN_ALERT_INACTIVE);
    bn_alerts_free(a);
    bn_metrics_free(f.m);
}

/* silenced_until and acknowledged_at: parsed (RFC 3339 UTC), in the rule's JSON, and what
 * they mean: a silence ends at its time; an acknowledgement covers the firing it saw. */
static void test_silence_and_ack(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    bn_alerts *a = parse_ok("[{\"name\":\"hot\",\"metric\":\"t_temp\",\"op\":\">\","
                            "\"threshold\":80,\"silenced_until\":\"1970-01-01T00:03:20Z\","
                            "\"acknowledged_at\":\"1970-01-01T00:02:30Z\"}]");
    bn_alert_rule *r = bn_alerts_rule(a, 0);
    assert_true(r->silenced_until == 200 && r->acked_at == 150);
    assert_true(bn_alert_silenced(r, 199.5));
    assert_false(bn_alert_silenced(r, 200));
    set_temp(&f, "0", 90);
    assert_int_equal(eval_at(&f, a, 100), 1); /* fires at 100, acknowledged at 150 */
    assert_true(bn_alert_acknowledged(r));
    cJSON *j = bn_alert_rule_json(r);
    assert_string_equal(cJSON_GetObjectItem(j, "silenced_until")->valuestring,
                        "1970-01-01T00:03:20Z");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "acknowledged")));
    cJSON_Delete(j);
    set_temp(&f, "0", 10);
    assert_int_equal(eval_at(&f, a, 300), 1); /* resolved */
    assert_false(bn_alert_acknowledged(r));
    set_temp(&f, "0", 90);
    assert_int_equal(eval_at(&f, a, 400), 1); /* fires again, after the acknowledgement */
    assert_false(bn_alert_acknowledged(r));
    bn_alerts_free(a);
    bn_metrics_free(f.m);
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"silenced_until\":\"soon\"}]",
              "alerts[0].silenced_until: expected a UTC time");
    parse_bad("[{\"metric\":\"x\",\"op\":\">\",\"threshold\":1,\"acknowledged_at\":5}]",
              "alerts[0].acknowledged_at: expected a UTC time");
}

static void test_names_and_json(void **state)
{
    (void)state;
    bn_alert_state s;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bn_alert_state_parse(bn_alert_state_str((bn_alert_state)i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(bn_alert_state_parse("bogus", &s), -1);
    assert_string_equal(bn_alert_state_str((bn_alert_state)9), "unknown");
    assert_string_equal(bn_alert_op_str(BN_ALERT_LE), "<=");
    bn_alerts *a = parse_ok("[{\"name\":\"slow\",\"metric\":\"t_tps\",\"op\":\"<\","
                            "\"threshold\":5,\"for\":\"5m\",\"labels\":{\"team\":\"ml\"}}]");
    const bn_alert_rule *r = bn_alerts_rule(a, 0);
    cJSON *n = bn_alert_notification_json(r, BN_ALERT_PENDING, BN_ALERT_FIRING, 1700000000.25, 3.5,
                                          "t_tps", "host1", 1);
    assert_non_null(n);
    assert_string_equal(cJSON_GetObjectItem(n, "rule")->valuestring, "slow");
    assert_string_equal(cJSON_GetObjectItem(n, "state")->valuestring, "firing");
    assert_string_equal(cJSON_GetObjectItem(n, "previous_state")->valuestring, "pending");
    assert_string_equal(cJSON_GetObjectItem(n, "at")->valuestring, "2023-11-14T22:13:20Z");
    assert_true(cJSON_GetObjectItem(n, "at_ms")->valuedouble == 1700000000250.0);
    assert_true(cJSON_GetObjectItem(n, "value")->valuedouble == 3.5);
    assert_true(cJSON_GetObjectItem(n, "for_seconds")->valuedouble == 300);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(n, "test")));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(n, "labels"), "team")->valuestring,
                        "ml");
    /* an id for receivers to drop resends by: 16 hex digits, the same for the same
     * notification, another for another transition */
    char id[32];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(n, "id")->valuestring);
    assert_int_equal(strlen(id), 16);
    assert_int_equal(strspn(id, "0123456789abcdef"), 16);
    cJSON_Delete(n);
    n = bn_alert_notification_json(r, BN_ALERT_PENDING, BN_ALERT_FIRING, 1700000000.25, 3.5,
                                   "t_tps", "host1", 1);
    assert_string_equal(cJSON_GetObjectItem(n, "id")->valuestring, id);
    cJSON_Delete(n);
    n = bn_alert_notification_json(r, BN_ALERT_PENDING, BN_ALERT_FIRING, 1700000000.26, 3.5,
                                   "t_tps", "host1", 1);
    assert_string_not_equal(cJSON_GetObjectItem(n, "id")->valuestring, id);
    cJSON_Delete(n);
    n = bn_alert_notification_json(r, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 1700000000.25, 3.5,
                                   "t_tps", "host1", 1);
    assert_string_not_equal(cJSON_GetObjectItem(n, "id")->valuestring, id);
    cJSON_Delete(n);
    n = bn_alert_notification_json(r, BN_ALERT_FIRING, BN_ALERT_RESOLVED, 0, NAN, NULL, NULL, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(n, "value")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(n, "test")));
    cJSON_Delete(n);
    n = bn_alert_rule_json(r);
    assert_string_equal(cJSON_GetObjectItem(n, "state")->valuestring, "inactive");
    assert_string_equal(cJSON_GetObjectItem(n, "op")->valuestring, "<");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(n, "sinks")), 0);
    cJSON_Delete(n);
    bn_alerts_free(a);
}

/* ---- the spool -------------------------------------------------------------------------- */

static char tmpdir[256];

static int spool_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bn_test_alerts.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int spool_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static bn_spool *spool_open_ok(const char *name, int64_t max)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    bn_spool *sp = NULL;
    if (bn_spool_open(&sp, path, max, 90) != BN_OK) fail_msg("open: %s", bn_spool_errmsg(sp));
    return sp;
}

typedef struct drops {
    char sink[8][32];
    int64_t n[8];
    int calls;
} drops;

static void on_drop(void *ud, const char *sink, const char *kind, int64_t n)
{
    drops *d = ud;
    (void)kind;
    assert_true(d->calls < 8);
    snprintf(d->sink[d->calls], sizeof d->sink[0], "%s", sink);
    d->n[d->calls++] = n;
}

static void test_spool_queue(void **state)
{
    (void)state;
    bn_spool *sp = spool_open_ok("q.db", 5);
    drops d = {0};
    bn_spool_on_drop(sp, on_drop, &d);
    assert_int_equal(bn_spool_push(sp, "webhook", "notification", "{\"n\":1}", 1000, 0), 0);
    assert_int_equal(bn_spool_push(sp, "datadog", "samples", "{\"n\":2}", 1001, 0), 0);
    assert_int_equal(bn_spool_push(sp, "webhook", "notification", "{\"n\":3}", 1002, 0), 0);
    assert_int_equal(bn_spool_count(sp, NULL), 3);
    assert_int_equal(bn_spool_count(sp, "webhook"), 2);
    bn_spool_entry *e;
    size_t n;
    assert_int_equal(bn_spool_peek(sp, "webhook", 10, &e, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].payload, "{\"n\":1}"); /* oldest first */
    assert_string_equal(e[1].payload, "{\"n\":3}");
    assert_string_equal(e[0].kind, "notification");
    assert_int_equal(e[0].created_ms, 1000);
    /* a failed send keeps them and counts the attempt */
    int64_t ids[2] = {e[0].id, e[1].id};
    bn_spool_entries_free(e, n);
    assert_int_equal(bn_spool_failed(sp, ids, 2, "connection refused"), 0);
    assert_int_equal(bn_spool_peek(sp, "webhook", 1, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].attempts, 1);
    bn_spool_entries_free(e, n);
    /* delivered: gone */
    assert_int_equal(bn_spool_done(sp, ids, 2), 0);
    assert_int_equal(bn_spool_count(sp, "webhook"), 0);
    assert_int_equal(bn_spool_count(sp, NULL), 1);
    /* replace keeps only the latest of a sink's kind */
    assert_int_equal(bn_spool_push(sp, "pushgateway", "push", "a 1\n", 2000, 1), 0);
    assert_int_equal(bn_spool_push(sp, "pushgateway", "push", "a 2\n", 2001, 1), 0);
    assert_int_equal(bn_spool_peek(sp, "pushgateway", 10, &e, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].payload, "a 2\n");
    bn_spool_entries_free(e, n);
    /* the bound (5 samples and pushes) drops the oldest first, whatever their sink, and
     * counts them; a notification waiting meanwhile is not made room for */
    char p[32];
    assert_int_equal(bn_spool_push(sp, "webhook", "notification", "{\"w\":0}", 2500, 0), 0);
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "{\"c\":%d}", i);
        assert_int_equal(bn_spool_push(sp, "cloudwatch", "samples", p, 3000 + i, 0), 0);
    }
    assert_int_equal(bn_spool_count(sp, NULL), 6);
    assert_int_equal(bn_spool_count(sp, "webhook"), 1);
    assert_int_equal(bn_spool_count(sp, "datadog"), 0);
    assert_int_equal(bn_spool_count(sp, "pushgateway"), 0);
    assert_int_equal(bn_spool_dropped(sp, "datadog"), 1);
    assert_int_equal(bn_spool_dropped(sp, "pushgateway"), 1);
    assert_int_equal(bn_spool_dropped(sp, "cloudwatch"), 1);
    assert_int_equal(bn_spool_dropped(sp, "webhook"), 0);
    assert_int_equal(bn_spool_dropped(sp, NULL), 3);
    int64_t sum = 0;
    for (int i = 0; i < d.calls; i++) sum += d.n[i];
    assert_int_equal(sum, 3);
    assert_int_equal(bn_spool_peek(sp, "cloudwatch", 10, &e, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(e[0].payload, "{\"c\":1}");
    assert_string_equal(e[4].payload, "{\"c\":5}");
    bn_spool_entries_free(e, n);
    bn_spool_close(sp);
    /* entries survive a reopen */
    sp = spool_open_ok("q.db", 5);
    assert_int_equal(bn_spool_count(sp, "cloudwatch"), 5);
    assert_int_equal(bn_spool_count(sp, "webhook"), 1);
    bn_spool_close(sp);
}

/* A notification as the monitor spools it, reduced to what the bound looks at. */
static void push_note(bn_spool *sp, const char *sink, const char *rule, const char *state, int test)
{
    char p[160];
    snprintf(p, sizeof p, "{\"rule\":\"%s\",\"state\":\"%s\",\"test\":%s}", rule, state,
             test ? "true" : "false");
    assert_int_equal(bn_spool_push(sp, sink, "notification", p, 1000, 0), 0);
}

/* The payloads waiting for sink, "rule:state" each, oldest first, joined by spaces. */
static void notes_of(bn_spool *sp, const char *sink, char *out, size_t size)
{
    bn_spool_entry *e;
    size_t n;
    out[0] = '\0';
    assert_int_equal(bn_spool_peek(sp, sink, 100, &e, &n), 0);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_Parse(e[i].payload);
        const size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s:%s%s", len ? " " : "",
                 cJSON_GetObjectItem(j, "rule")->valuestring,
                 cJSON_GetObjectItem(j, "state")->valuestring,
                 cJSON_IsTrue(cJSON_GetObjectItem(j, "test")) ? "(test)" : "");
        cJSON_Delete(j);
    }
    bn_spool_entries_free(e, n);
}

static void expect_notes(bn_spool *sp, const char *sink, const char *want)
{
    char got[512];
    notes_of(sp, sink, got, sizeof got);
    assert_string_equal(got, want);
}

static void test_spool_notification_bound(void **state)
{
    (void)state;
    /* samples flooding a small spool never push a notification out (they did: a receiver
     * then got the resolved notification without the firing one) */
    bn_spool *sp = spool_open_ok("n.db", 3);
    push_note(sp, "webhook", "a", "firing", 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(bn_spool_push(sp, "cloudwatch", "samples", "{}", 2000 + i, 0), 0);
    push_note(sp, "webhook", "a", "resolved", 0);
    expect_notes(sp, "webhook", "a:firing a:resolved");
    assert_int_equal(bn_spool_count(sp, "cloudwatch"), 3);
    assert_int_equal(bn_spool_dropped(sp, "webhook"), 0);
    bn_spool_close(sp);
    /* past their own bound: a test, or a firing one with its resolved one, oldest first;
     * never a firing one alone, nor a resolved one whose firing one went out */
    sp = spool_open_ok("n2.db", 100);
    bn_spool_set_max(sp, 0, 3);
    push_note(sp, "webhook", "a", "resolved", 0); /* its firing one was delivered */
    push_note(sp, "webhook", "b", "firing", 0);
    push_note(sp, "webhook", "a", "firing", 0);
    push_note(sp, "webhook", "c", "firing", 1);
    expect_notes(sp, "webhook", "a:resolved b:firing a:firing"); /* 4 > 3: the test goes */
    push_note(sp, "datadog-events", "a", "firing", 0);           /* another sink: not a's pair */
    push_note(sp, "webhook", "a", "resolved", 0);
    expect_notes(sp, "webhook",
                 "a:resolved b:firing"); /* 5 > 3: a's firing and resolved go together */
    expect_notes(sp, "datadog-events", "a:firing");
    push_note(sp, "webhook", "d", "firing", 0);
    /* 4 > 3 but nothing can go without breaking a pair: the bound gives way */
    expect_notes(sp, "webhook", "a:resolved b:firing d:firing");
    assert_int_equal(bn_spool_count(sp, NULL), 4);
    assert_int_equal(bn_spool_dropped(sp, "webhook"), 3);
    bn_spool_close(sp);
    /* dropped for good (refused by the sink, or too old for it): a firing one takes its
     * resolved one along, the one queued or else the one to come */
    sp = spool_open_ok("n3.db", 100);
    push_note(sp, "webhook", "a", "firing", 0);
    push_note(sp, "webhook", "a", "resolved", 0);
    push_note(sp, "webhook", "b", "firing", 0);
    bn_spool_entry *e;
    size_t n;
    assert_int_equal(bn_spool_peek(sp, "webhook", 10, &e, &n), 0);
    assert_int_equal(n, 3);
    const int64_t a_firing = e[0].id, b_firing = e[2].id;
    bn_spool_entries_free(e, n);
    assert_int_equal(bn_spool_drop(sp, &a_firing, 1), 0);
    expect_notes(sp, "webhook", "b:firing");
    assert_int_equal(bn_spool_drop(sp, &b_firing, 1), 0);
    assert_int_equal(bn_spool_count(sp, NULL), 0);       /* the marker is not waiting to be sent */
    push_note(sp, "datadog-events", "b", "resolved", 0); /* another sink: goes */
    push_note(sp, "webhook", "b", "resolved", 0);        /* its firing one was dropped */
    expect_notes(sp, "webhook", "");
    push_note(sp, "webhook", "b", "firing", 0);
    push_note(sp, "webhook", "b", "resolved", 0);
    expect_notes(sp, "webhook", "b:firing b:resolved");
    assert_int_equal(bn_spool_count(sp, "datadog-events"), 1);
    assert_int_equal(bn_spool_dropped(sp, "webhook"), 2);
    bn_spool_close(sp);
}

/* Records transitions into the spool, as the monitor does. */
static void store(void *ud, const bn_alert_transition *t)
{
    bn_spool *sp = ud;
    const bn_spool_transition st = {
            .rule = t->rule->name,
            .from = bn_alert_state_str(t->from),
            .to = bn_alert_state_str(t->to),
            .at_ms = (int64_t)(t->at * 1000),
            .value = t->value,
            .series = t->series,
            .metric = t->rule->metric,
            .severity = t->rule->severity,
            .host = "h",
    };
    assert_int_equal(bn_spool_transition_add(sp, &st), 0);
}

static void test_spool_transitions(void **state)
{
    (void)state;
    bn_spool *sp = spool_open_ok("t.db", 100);
    fixture f;
    fixture_init(&f);
    bn_alerts *a = parse_ok("[{\"name\":\"hot\",\"metric\":\"t_temp\",\"op\":\">\","
                            "\"threshold\":80,\"for\":\"10s\"},"
                            "{\"name\":\"cold\",\"metric\":\"t_temp\",\"op\":\"<\","
                            "\"threshold\":0}]");
    const double t0 = 1700000000;
    bn_msnap snap;
    static const double temps[] = {90, 90, 90, 50, -5};
    for (int i = 0; i < 5; i++) {
        set_temp(&f, "0", temps[i]);
        assert_int_equal(bn_metrics_snapshot(f.m, 0, &snap), 0);
        bn_alerts_eval(a, &snap, t0 + i * 10, store, sp);
        bn_msnap_release(&snap);
    }
    cJSON *j;
    assert_int_equal(spool_transitions_json(sp, "hot", 0, &j), 0);
    assert_int_equal(cJSON_GetArraySize(j), 3); /* pending, firing, resolved */
    const cJSON *newest = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItem(newest, "from")->valuestring, "firing");
    assert_string_equal(cJSON_GetObjectItem(newest, "to")->valuestring, "resolved");
    assert_string_equal(cJSON_GetObjectItem(newest, "at")->valuestring, "2023-11-14T22:13:50.000Z");
    assert_true(cJSON_GetObjectItem(newest, "value")->valuedouble == 50);
    assert_string_equal(cJSON_GetObjectItem(newest, "series")->valuestring, "t_temp{gpu=\"0\"}");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 2), "to")->valuestring,
                        "pending");
    cJSON_Delete(j);
    assert_int_equal(spool_transitions_json(sp, NULL, 2, &j), 0);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "rule")->valuestring, "cold");
    cJSON_Delete(j);
    char st[16];
    int64_t at;
    assert_int_equal(bn_spool_last_state(sp, "hot", st, sizeof st, &at), 0);
    assert_string_equal(st, "resolved");
    assert_int_equal(at, (int64_t)(t0 + 30) * 1000);
    assert_int_equal(bn_spool_last_state(sp, "none", st, sizeof st, &at), BN_ERR_NOT_FOUND);
    bn_alerts_free(a);
    bn_metrics_free(f.m);
    bn_spool_close(sp);
}

/* The schema of versions 1 and 2 as released: a history made by an older bitnet. */
static void count_cb(void *ud, const char *command, const char *status, int64_t n)
{
    int *seen = ud;
    if (!strcmp(command, "generate") && !strcmp(status, "ok")) seen[0] += (int)n;
    if (!strcmp(command, "generate") && !strcmp(status, "failed")) seen[1] += (int)n;
}

static void last_cb(void *ud, const char *command, const char *metrics, int64_t ended)
{
    int *seen = ud;
    if (strcmp(command, "generate") == 0) {
        assert_string_equal(metrics, "{\"gen_tokens_per_s\":7.5}");
        assert_int_equal(ended, 1700000002000);
    } else {
        assert_string_equal(command, "bench");
        assert_int_equal(ended, 1700000008000); /* the newest */
    }
    seen[2]++;
}

/* The newest value of each (command, metric) is the last one seen. */
typedef struct metric_seen {
    double gen, pp, tg, gbps;
    int calls;
} metric_seen;

static void metric_cb(void *ud, const char *command, const char *key, double value)
{
    metric_seen *m = ud;
    m->calls++;
    if (!strcmp(command, "generate") && !strcmp(key, "gen_tokens_per_s")) m->gen = value;
    if (!strcmp(command, "bench") && !strcmp(key, "pp_tokens_per_s")) m->pp = value;
    if (!strcmp(command, "bench") && !strcmp(key, "tg_tokens_per_s")) m->tg = value;
    if (!strcmp(command, "bench") && !strcmp(key, "best_gemv_weight_gbps")) m->gbps = value;
}

static void test_spool_migrates_v2(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/v2.db", tmpdir);
    sqlite3 *s;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    const char *v2 =
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT NOT NULL, "
            "model_path TEXT, model_sha256 TEXT, params TEXT, metrics TEXT, "
            "started_at INTEGER NOT NULL, ended_at INTEGER, status TEXT NOT NULL DEFAULT "
            "'running', error TEXT, pid INTEGER, host TEXT, boot_id TEXT, proc_start INTEGER);"
            "CREATE INDEX runs_started ON runs(started_at);"
            "CREATE INDEX runs_command ON runs(command, started_at);"
            "CREATE INDEX runs_status ON runs(status);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, hashed_at INTEGER NOT NULL);"
            "INSERT INTO runs (command, metrics, started_at, ended_at, status) VALUES "
            "('generate', '{\"gen_tokens_per_s\":5}', 1700000000000, 1700000001000, 'ok'),"
            "('generate', '{\"gen_tokens_per_s\":7.5}', 1700000001000, 1700000002000, 'ok'),"
            "('generate', NULL, 1700000003000, 1700000004000, 'failed'),"
            "('bench', '{\"pp_tokens_per_s\":100,\"tg_tokens_per_s\":9}', 1700000005000, "
            "1700000006000, 'ok'),"
            "('bench', '{\"best_gemv_weight_gbps\":20.5,\"results\":[]}', 1700000007000, "
            "1700000008000, 'ok');"
            "PRAGMA user_version=2;";
    assert_int_equal(sqlite3_exec(s, v2, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    bn_spool *sp = NULL;
    if (bn_spool_open(&sp, path, 10, 0) != BN_OK) fail_msg("open: %s", bn_spool_errmsg(sp));
    int seen[3] = {0};
    assert_int_equal(bn_spool_run_counts(sp, count_cb, seen), 0);
    assert_int_equal(bn_spool_last_runs(sp, last_cb, seen), 0);
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 2);
    metric_seen ms = {0};
    assert_int_equal(bn_spool_run_metrics(sp, metric_cb, &ms), 0);
    assert_int_equal(ms.calls, 5);           /* 2 generate, 2 + 1 bench; no results array */
    assert_true(ms.gen == 7.5);              /* the newer of two */
    assert_true(ms.pp == 100 && ms.tg == 9); /* kept though a newer bench run lacks them */
    assert_true(ms.gbps == 20.5);
    assert_int_equal(bn_spool_push(sp, "webhook", "notification", "{}", 1, 0), 0);
    bn_spool_close(sp);
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), BN_DB_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_state_machine),
            cmocka_unit_test(test_for_zero_nan_and_selectors),
            cmocka_unit_test(test_restore),
            cmocka_unit_test(test_silence_and_ack),
            cmocka_unit_test(test_names_and_json),
            cmocka_unit_test_setup_teardown(test_spool_queue, spool_setup, spool_teardown),
            cmocka_unit_test_setup_teardown(test_spool_notification_bound, spool_setup,
                                            spool_teardown),
            cmocka_unit_test_setup_teardown(test_spool_transitions, spool_setup, spool_teardown),
            cmocka_unit_test_setup_teardown(test_spool_migrates_v2, spool_setup, spool_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
