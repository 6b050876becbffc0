/* test_monitor_http.c - the monitor's HTTP endpoint before and after its first collection:
 * /-/ready answers 503 while no collection is done (a scraper must not take the empty
 * registry for the truth) and 200 "ready" after one; /-/healthy answers 200 from the start. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../app/monitor/monitor.h"

/* GET path on 127.0.0.1:port; the whole answer (status line, headers, body) into buf. */
static void http_get(int port, const char *path, char *buf, size_t size)
{
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char rq[256];
    const int n = snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           path);
    assert_int_equal(write(fd, rq, (size_t)n), n);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < size && (k = read(fd, buf + len, size - 1 - len)) > 0) len += (size_t)k;
    buf[len] = '\0';
    close(fd);
}

static void test_ready_after_first_collection(void **state)
{
    (void)state;
    char dir[] = "/tmp/bn_monhttp_XXXXXX", path[256], err[512], ans[8192];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/history.db", dir);
    bn_monitor_opts o;
    bn_monitor_opts_default(&o);
    o.history = path;
    o.listen = "127.0.0.1:0";
    bn_monitor *m = NULL;
    if (bn_monitor_new(&m, &o, err, sizeof err)) fail_msg("bn_monitor_new: %s", err);
    if (mon_http_start(m, err, sizeof err)) fail_msg("mon_http_start: %s", err);
    assert_true(m->http_port > 0);

    http_get(m->http_port, "/-/ready", ans, sizeof ans);
    assert_non_null(strstr(ans, " 503 "));
    assert_non_null(strstr(ans, "not ready: no collection yet"));
    http_get(m->http_port, "/-/healthy", ans, sizeof ans);
    assert_non_null(strstr(ans, " 200 "));

    bn_monitor_collect(m);
    http_get(m->http_port, "/-/ready", ans, sizeof ans);
    assert_non_null(strstr(ans, " 200 "));
    assert_non_null(strstr(ans, "\r\n\r\nready\n"));

    mon_http_stop(m);
    bn_monitor_free(m);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ready_after_first_collection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
