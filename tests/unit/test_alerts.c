/* test_alerts.c - alert rules: parsing and its errors, the state machine (inactive, pending,
 * firing, resolved) with an injected clock, `for` 0, no data and NaN, selectors over several
 * series, restoring a state, sinks, and the notification document.
 *
 * app/alerts.c, app/metrics.c and app/config.c (durations) are not part of libbitnet: they are
 * compiled into this test by #include. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../app/config.c"
#include "../../app/metrics.c"
#include "../../app/alerts.c"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_state_machine),
            cmocka_unit_test(test_for_zero_nan_and_selectors),
            cmocka_unit_test(test_restore),
            cmocka_unit_test(test_names_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
