/* test_tiers.c - the platform's tiers from the config (common/tiers.h): the documented
 * defaults, a file and an environment override, the cost of tokens, unknown tiers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tiers.h"

static bn_config *load(const char *text)
{
    char path[] = "/tmp/bn_test_tiers_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    bn_config *c;
    char err[BN_CONFIG_ERR_MAX];
    int r = bn_config_load_file(path, 0, &c, err, sizeof err);
    unlink(path);
    if (r) fprintf(stderr, "config: %s\n", err);
    assert_int_equal(r, 0);
    return c;
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("BITNET_TIERS_TEAM_PRICE_USD");
    bn_config *c = load("{}");
    cm_tier t;
    assert_int_equal(cm_tier_get(c, "developer", &t), 0);
    assert_true(t.price_usd == 99);
    assert_int_equal(t.requests_per_min, 60);
    assert_int_equal(t.monthly_tokens, 10000000);
    assert_int_equal(cm_tier_get(c, "team", &t), 0);
    assert_true(t.price_usd == 499);
    assert_int_equal(t.concurrent_streams, 10);
    assert_int_equal(cm_tier_get(c, "business", &t), 0);
    assert_true(t.price_usd == 2999);
    assert_int_equal(t.tokens_per_min, 2000000);
    assert_true(fabs(cm_tier_cost(&t, 1000000) - 2.999) < 1e-12);
    assert_int_equal(cm_tier_get(c, "gold", &t), -1);
    assert_int_equal(cm_tier_get(c, "", &t), -1);
    assert_false(cm_tier_known("gold"));
    assert_false(cm_tier_known(NULL));
    assert_true(cm_tier_known("team"));
    bn_config_free(c);
}

static void test_overrides(void **state)
{
    (void)state;
    setenv("BITNET_TIERS_TEAM_PRICE_USD", "100", 1);
    bn_config *c = load("{\"tiers\": {\"team\": {\"price_usd\": 7, \"monthly_tokens\": 0, "
                        "\"requests_per_min\": 5}}}");
    cm_tier t;
    assert_int_equal(cm_tier_get(c, "team", &t), 0);
    assert_true(t.price_usd == 100); /* the environment wins over the file */
    assert_int_equal(t.requests_per_min, 5);
    assert_int_equal(t.monthly_tokens, 0);
    assert_true(cm_tier_cost(&t, 12345) == 100); /* no quota: the month's price */
    unsetenv("BITNET_TIERS_TEAM_PRICE_USD");
    bn_config_free(c);

    bn_config *bad;
    char err[BN_CONFIG_ERR_MAX];
    char path[] = "/tmp/bn_test_tiers_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, "{\"tiers\":{\"team\":{\"price_usd\":-1}}}", 35) == 35);
    close(fd);
    assert_int_not_equal(bn_config_load_file(path, 0, &bad, err, sizeof err), 0);
    unlink(path);
}

/* A config text that must not load; its error must hold want. */
static void refused(const char *text, const char *want)
{
    char path[] = "/tmp/bn_test_tiers_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    bn_config *bad = NULL;
    char err[BN_CONFIG_ERR_MAX] = "";
    assert_int_not_equal(bn_config_load_file(path, 0, &bad, err, sizeof err), 0);
    unlink(path);
    if (!strstr(err, want)) fprintf(stderr, "error '%s' lacks '%s'\n", err, want);
    assert_non_null(strstr(err, want));
}

static void test_tenant_overrides(void **state)
{
    (void)state;
    unsetenv("BITNET_TENANTS");
    bn_config *c = load("{\"tenants\": {\"acme\": {\"requests_per_min\": 1200, "
                        "\"monthly_tokens\": 0, \"price_usd\": 250.5}, \"globex\": {}}}");
    cm_tier t;
    unsigned ovr = 99;
    assert_int_equal(cm_tenant_limits(c, "team", "acme", &t, &ovr), 0);
    assert_int_equal(t.requests_per_min, 1200);
    assert_int_equal(t.monthly_tokens, 0);
    assert_true(t.price_usd == 250.5);
    assert_int_equal(t.tokens_per_min, 400000); /* the tier's */
    assert_int_equal(ovr, 1u | 2u | 16u);        /* price, requests, monthly */
    assert_string_equal(cm_tier_field(1), "requests_per_min");
    assert_null(cm_tier_field(CM_TIER_N_FIELDS));
    assert_true(cm_tier_value(&t, 1) == 1200);
    assert_int_equal(cm_tenant_limits(c, "team", "globex", &t, &ovr), 0);
    assert_int_equal(ovr, 0);
    assert_int_equal(t.requests_per_min, 600);
    assert_int_equal(cm_tenant_limits(c, "developer", "other", &t, NULL), 0);
    assert_int_equal(t.requests_per_min, 60);
    assert_int_equal(cm_tenant_limits(c, "gold", "acme", &t, &ovr), -1);
    bn_config_free(c);

    setenv("BITNET_TENANTS", "{\"acme\": {\"concurrent_streams\": 3}}", 1);
    c = load("{\"tenants\": {\"acme\": {\"requests_per_min\": 1200}}}");
    assert_int_equal(cm_tenant_limits(c, "team", "acme", &t, &ovr), 0);
    assert_int_equal(ovr, 8u); /* the environment's object replaces the file's */
    assert_int_equal(t.concurrent_streams, 3);
    assert_int_equal(t.requests_per_min, 600);
    unsetenv("BITNET_TENANTS");
    bn_config_free(c);

    refused("{\"tenants\": []}", "tenants: expected an object of tenant names");
    refused("{\"tenants\": {\"a b\": {}}}", "tenants.a b: not a tenant name");
    refused("{\"tenants\": {\"123\": {}}}", "tenants.123: not a tenant name");
    refused("{\"tenants\": {\"acme\": 5}}", "tenants.acme: expected an object");
    refused("{\"tenants\": {\"acme\": {\"rpm\": 5}}}", "tenants.acme.rpm: unknown setting");
    refused("{\"tenants\": {\"acme\": {\"requests_per_min\": 1.5}}}",
            "tenants.acme.requests_per_min: expected an integer from 0 to 1000000000");
    refused("{\"tenants\": {\"acme\": {\"monthly_tokens\": -1}}}",
            "tenants.acme.monthly_tokens: expected an integer");
    refused("{\"tenants\": {\"acme\": {\"price_usd\": \"9\"}}}",
            "tenants.acme.price_usd: expected a number");
    refused("{\"tenants\": {\"acme\": {}, \"acme\": {}}}", "tenants.acme: duplicate tenant");
    refused("{\"tenants\": {\"acme\": {\"price_usd\": 1, \"price_usd\": 2}}}",
            "tenants.acme.price_usd: duplicate key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_overrides),
            cmocka_unit_test(test_tenant_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
