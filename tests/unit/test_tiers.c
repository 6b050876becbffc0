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

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
