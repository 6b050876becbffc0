/* test_serve_redis.c - the Redis URLs of `bitnet serve --redis` (app/serve/serve_redis.h):
 * hosts, IPv6, ports, databases, user and password, unix sockets; every bad form refused with
 * a message that never holds the password. (The limiter itself runs against a real
 * redis-server in tests/cli/test_serve_redis.sh and test_scaleout.sh.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "../../app/serve/serve_redis.h"

typedef struct url_case {
    const char *url, *host, *path, *user, *pass;
    int port, db;
} url_case;

static void test_parse_good(void **state)
{
    (void)state;
    static const url_case cases[] = {
            {"redis://localhost", "localhost", "", "", "", 6379, 0},
            {"redis://10.0.0.7:6380", "10.0.0.7", "", "", "", 6380, 0},
            {"redis://h:1/3", "h", "", "", "", 1, 3},
            {"redis://h/", "h", "", "", "", 6379, 0},
            {"redis://[::1]:7000/2", "::1", "", "", "", 7000, 2},
            {"redis://[fe80::1]", "fe80::1", "", "", "", 6379, 0},
            {"redis://:pw@h", "h", "", "", "pw", 6379, 0},
            {"redis://pw@h", "h", "", "", "pw", 6379, 0},
            {"redis://alice:p:w@h:1", "h", "", "alice", "p:w", 1, 0},
            {"redis://u:p@ss@h", "h", "", "u", "p@ss", 6379, 0},
            {"unix:///run/redis.sock", "", "/run/redis.sock", "", "", 6379, 0},
            {"unix:///run/redis.sock?db=5", "", "/run/redis.sock", "", "", 6379, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const url_case *c = &cases[i];
        srv_redis_addr a;
        char err[300];
        assert_int_equal(srv_redis_parse_url(c->url, &a, err, sizeof err), 0);
        assert_string_equal(a.host, c->host);
        assert_string_equal(a.path, c->path);
        assert_string_equal(a.user, c->user);
        assert_string_equal(a.pass, c->pass);
        assert_int_equal(a.port, c->port);
        assert_int_equal(a.db, c->db);
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
            "",
            "localhost",
            "http://h",
            "redis://",
            "redis://:1",
            "redis://h:",
            "redis://h:0",
            "redis://h:x",
            "redis://h:1x",
            "redis://h:65536",
            "redis://h/x",
            "redis://h/-1",
            "redis://[::1",
            "redis://[]",
            "redis://[::1]x",
            "unix://",
            "unix://r.sock",
            "unix:///s?db=",
            "unix:///s?x=1",
            "redis://@h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_redis_addr a;
        char err[300] = "";
        assert_int_equal(srv_redis_parse_url(bad[i], &a, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad Redis URL"));
    }
    srv_redis_addr a;
    char err[300];
    assert_int_equal(srv_redis_parse_url("redis://u:s3cret@h:x", &a, err, sizeof err), -1);
    assert_null(strstr(err, "s3cret"));
    char long_url[400] = "redis://";
    memset(long_url + 8, 'h', 300);
    long_url[308] = '\0';
    assert_int_equal(srv_redis_parse_url(long_url, &a, err, sizeof err), -1); /* host > 255 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_good),
            cmocka_unit_test(test_parse_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
