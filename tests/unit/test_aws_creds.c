/* test_aws_creds.c - the AWS credential chain (app/monitor/aws_creds.c): which source the environment
 * and files pick, in AWS's order; the container URI rule; the answers of STS, container
 * endpoints and IMDS as they parse; refresh before expiry with an injected clock, and old
 * credentials serving while a refresh fails. Requests go only to a closed loopback port here
 * (tests/cli/test_aws_creds.sh runs them against a stand-in).
 * app/monitor/aws_creds.c comes from the app's objects (libbitnetapp.a); its answer parsers are
 * declared in app/monitor/aws_creds_internal.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../app/monitor/aws_creds.h"
#include "../../app/monitor/aws_creds_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[256];

static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                   "AWS_SECRET_ACCESS_KEY",
                                   "AWS_SESSION_TOKEN",
                                   "AWS_PROFILE",
                                   "AWS_SHARED_CREDENTIALS_FILE",
                                   "AWS_CONFIG_FILE",
                                   "AWS_WEB_IDENTITY_TOKEN_FILE",
                                   "AWS_ROLE_ARN",
                                   "AWS_ROLE_SESSION_NAME",
                                   "AWS_ENDPOINT_URL_STS",
                                   "AWS_ENDPOINT_URL",
                                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                   "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                   "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                   "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                   "AWS_EC2_METADATA_DISABLED",
                                   "AWS_REGION",
                                   "AWS_DEFAULT_REGION"};

/* A clean environment: no AWS_* but HOME in a fresh directory (no ~/.aws). */
static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    snprintf(dir, sizeof dir, "/tmp/test_aws_creds.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    setenv("HOME", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* init must pick source s (or fail with a message containing want when s < 0). */
static void expect_source(int s, const char *want)
{
    bn_aws_chain c;
    char why[600] = "";
    const int rc = bn_aws_chain_init(&c, "eu-west-1", why, sizeof why);
    if (s < 0) {
        if (rc == 0)
            fail_msg("init picked %s, wanted an error '%s'", bn_aws_source_name(c.source), want);
        if (!strstr(why, want)) fail_msg("'%s' does not say '%s'", why, want);
        return;
    }
    if (rc) fail_msg("init failed: %s", why);
    if ((int)c.source != s)
        fail_msg("picked %s, wanted %s", bn_aws_source_name(c.source),
                 bn_aws_source_name((bn_aws_source)s));
    if (want && !strstr(c.url, want) && !strstr(c.cur.key_id, want))
        fail_msg("url '%s', key '%s': no '%s'", c.url, c.cur.key_id, want);
}

static void test_order(void **state)
{
    (void)state;
    char cred[300], conf[300], jwt[300];
    write_file("jwt", "token\n", jwt, sizeof jwt);
    /* nothing set up: instance metadata, at its default address */
    expect_source(BN_AWS_SRC_IMDS, "http://169.254.169.254");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv6", 1);
    expect_source(BN_AWS_SRC_IMDS, "http://[fd00:ec2::254]");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/", 1);
    expect_source(BN_AWS_SRC_IMDS, "http://127.0.0.1:9");
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    expect_source(-1, "no AWS credentials");
    /* container before instance metadata */
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);
    expect_source(BN_AWS_SRC_CONTAINER, "http://169.254.170.2/v2/credentials/x");
    /* web identity before container */
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", jwt, 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    expect_source(BN_AWS_SRC_WEB_IDENTITY, "https://sts.eu-west-1.amazonaws.com");
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7", 1);
    expect_source(BN_AWS_SRC_WEB_IDENTITY, "http://127.0.0.1:7");
    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:8", 1);
    expect_source(BN_AWS_SRC_WEB_IDENTITY, "http://127.0.0.1:8");
    /* the shared files before web identity: the config file's profile, then the credentials
     * file's */
    write_file("config", "[default]\naws_access_key_id = AKIDCONF\naws_secret_access_key = s\n",
               conf, sizeof conf);
    setenv("AWS_CONFIG_FILE", conf, 1);
    expect_source(BN_AWS_SRC_FILES, "AKIDCONF");
    write_file("credentials",
               "# c\n[default]\n  aws_access_key_id=AKIDCRED \naws_secret_access_key=s\n", cred,
               sizeof cred);
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
    expect_source(BN_AWS_SRC_FILES, "AKIDCRED");
    /* the environment first */
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "e", 1);
    expect_source(BN_AWS_SRC_ENV, "AKIDENV");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    expect_source(-1, "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
}

static void test_errors(void **state)
{
    (void)state;
    char path[300];
    write_file("config", "[profile p]\nsource_profile = q\n[profile k]\naws_access_key_id = A\n",
               path, sizeof path);
    setenv("AWS_CONFIG_FILE", path, 1);
    setenv("AWS_PROFILE", "p", 1);
    expect_source(-1, "uses source_profile, which bitnet does not support");
    setenv("AWS_PROFILE", "k", 1);
    expect_source(-1, "has aws_access_key_id but no aws_secret_access_key");
    setenv("AWS_PROFILE", "nosuch", 1);
    expect_source(-1, "profile nosuch (AWS_PROFILE) is in neither");
    unsetenv("AWS_PROFILE");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    expect_source(-1, "no role (AWS_ROLE_ARN");
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
    expect_source(-1, "cannot read the token file /nonexistent/token");
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/x", 1);
    expect_source(-1, "must begin with /");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    /* FULL_URI: https anywhere; plain http only to loopback and the ECS/EKS addresses */
    static const struct {
        const char *uri;
        int ok;
    } uris[] = {
            {"https://creds.example.com/x", 1}, {"http://127.0.0.1:9/x", 1},
            {"http://127.3.4.5/x", 1},          {"http://[::1]:9/x", 1},
            {"http://169.254.170.2/x", 1},      {"http://169.254.170.23/x", 1},
            {"http://[fd00:ec2::23]/x", 1},     {"http://10.1.2.3/x", 0},
            {"http://169.254.169.254/x", 0},    {"ftp://127.0.0.1/x", 0},
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uris[i].uri, 1);
        if (uris[i].ok)
            expect_source(BN_AWS_SRC_CONTAINER, uris[i].uri);
        else
            expect_source(-1, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    }
}

static void test_answers(void **state)
{
    (void)state;
    bn_aws_creds c;
    char why[400];
    assert_true(bn__aws_parse_time("2026-12-06T17:00:00Z") == 1796576400.0);
    assert_true(bn__aws_parse_time("2026-12-06T17:00:00.123Z") == 1796576400.0);
    assert_true(bn__aws_parse_time("2026-12-06T17:00:00+00:00") == 1796576400.0);
    assert_true(bn__aws_parse_time("2026-12-06 17:00:00") < 0);
    assert_true(bn__aws_parse_time("2026-12-06T17:00:00+02:00") < 0);
    assert_int_equal(
            bn__aws_parse_json("{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
                               "\"S\",\"Token\":\"T\",\"Expiration\":\"2026-12-06T17:00:00Z\"}",
                               &c, why, sizeof why),
            0);
    assert_string_equal(c.key_id, "A");
    assert_string_equal(c.token, "T");
    assert_true(c.expires == 1796576400.0);
    assert_int_equal(bn__aws_parse_json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}", &c,
                                        why, sizeof why),
                     0);
    assert_true(c.expires == 0); /* no Expiration: they do not expire */
    assert_int_equal(
            bn__aws_parse_json("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"no\"}", &c,
                               why, sizeof why),
            -1);
    assert_non_null(strstr(why, "AssumeRoleUnauthorizedAccess"));
    assert_int_equal(bn__aws_parse_json("{\"AccessKeyId\":\"A\"}", &c, why, sizeof why), -1);
    assert_non_null(strstr(why, "SecretAccessKey"));
    assert_int_equal(
            bn__aws_parse_json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":"
                               "\"soon\"}",
                               &c, why, sizeof why),
            -1);
    assert_int_equal(bn__aws_parse_json("[]", &c, why, sizeof why), -1);
    assert_int_equal(
            bn__aws_parse_sts(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                    "<Credentials><SessionToken>a&amp;b&lt;c</SessionToken><SecretAccessKey>S"
                    "</SecretAccessKey><Expiration>2026-12-06T17:00:00Z</Expiration>"
                    "<AccessKeyId>ASIA1</AccessKeyId></Credentials>"
                    "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                    &c, why, sizeof why),
            0);
    assert_string_equal(c.key_id, "ASIA1");
    assert_string_equal(c.token, "a&b<c");
    assert_int_equal(
            bn__aws_parse_sts("<ErrorResponse><Error><Code>ExpiredTokenException</Code><Message>"
                              "Token expired</Message></Error></ErrorResponse>",
                              &c, why, sizeof why),
            -1);
    assert_string_equal(why, "ExpiredTokenException: Token expired");
    assert_int_equal(
            bn__aws_parse_sts("<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>A"
                              "</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>",
                              &c, why, sizeof why),
            -1);
}

static void test_refresh(void **state)
{
    (void)state;
    bn_aws_chain c;
    bn_aws_creds got;
    char why[600];
    /* instance metadata on a closed loopback port: every fetch fails at once */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
    assert_int_equal(bn_aws_chain_init(&c, "eu-west-1", why, sizeof why), 0);
    assert_int_equal(bn_aws_chain_get(&c, 1000, &got, why, sizeof why), -1);
    assert_non_null(strstr(why, "AWS credentials from instance metadata (http://127.0.0.1:1)"));
    assert_int_equal(c.fetches, 1);
    /* credentials held and not due: no request */
    snprintf(c.cur.key_id, sizeof c.cur.key_id, "OLD");
    c.cur.expires = 1000 + BN_AWS_REFRESH_S + 60;
    assert_int_equal(bn_aws_chain_get(&c, 1000, &got, why, sizeof why), 0);
    assert_string_equal(got.key_id, "OLD");
    assert_int_equal(c.fetches, 1);
    /* due: a fetch, which fails, and the old ones serve until they expire */
    assert_int_equal(bn_aws_chain_get(&c, 1000 + 120, &got, why, sizeof why), 0);
    assert_string_equal(got.key_id, "OLD");
    assert_int_equal(c.fetches, 2);
    assert_int_equal(bn_aws_chain_get(&c, c.cur.expires, &got, why, sizeof why), -1);
    assert_int_equal(c.fetches, 3);
    /* keys from the environment are never fetched */
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    assert_int_equal(bn_aws_chain_init(&c, "eu-west-1", why, sizeof why), 0);
    assert_int_equal(bn_aws_chain_get(&c, 1e12, &got, why, sizeof why), 0);
    assert_string_equal(got.key_id, "AKID");
    assert_int_equal(c.fetches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_order, setup, teardown),
            cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
