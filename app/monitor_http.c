/* monitor_http.c - the scrape endpoint, with libmicrohttpd on a thread of its own:
 *
 *   GET /metrics    the registry in the Prometheus text format 0.0.4
 *   GET /-/healthy  "ok" (liveness)
 *   GET /           a short page naming the two
 *
 * A request only reads the registry (under its lock, held by the collector for a few updates
 * at a time); it never waits on a sink, the spool or the probe. */
#include "monitor.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"

#define RENDER_MAX (64u << 20) /* bytes of exposition at most */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, int owned)
{
    struct MHD_Response *r =
            owned ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
                  : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result metrics(bn_monitor *m, struct MHD_Connection *c)
{
    bn_metric_add(m->f.scrapes, NULL, 1);
    bn_buf b;
    bn_buf_init(&b, RENDER_MAX);
    size_t len = 0;
    char *text = bn_metrics_render(m->reg, &b) == 0 ? bn_buf_detach(&b, &len) : NULL;
    bn_buf_release(&b);
    if (!text) {
        static char oom[] = "out of memory\n";
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", oom,
                     sizeof oom - 1, 0);
    }
    return reply(c, MHD_HTTP_OK, BN_METRICS_CONTENT_TYPE, text, len, 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)state;
    bn_monitor *m = cls;
    static char index[] = "<html><head><title>bitnet monitor</title></head><body>"
                          "<h1>bitnet monitor</h1><p><a href=\"/metrics\">/metrics</a> "
                          "<a href=\"/-/healthy\">/-/healthy</a></p></body></html>\n";
    static char healthy[] = "ok\n", missing[] = "not found\n", no[] = "method not allowed\n";
    if (*upload_size) { /* a body: read nothing of it */
        *upload_size = 0;
        return MHD_YES;
    }
    const char *txt = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, txt, no, sizeof no - 1, 0);
    if (!strcmp(url, "/metrics")) return metrics(m, c);
    if (!strcmp(url, "/-/healthy") || !strcmp(url, "/healthz"))
        return reply(c, MHD_HTTP_OK, txt, healthy, sizeof healthy - 1, 0);
    if (!strcmp(url, "/"))
        return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", index, sizeof index - 1, 0);
    return reply(c, MHD_HTTP_NOT_FOUND, txt, missing, sizeof missing - 1, 0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    bn_monitor *m = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = '\0';
    mon_log(m, "http: %s", msg);
}

int mon_http_start(bn_monitor *m, char *err, size_t errsz)
{
    char host[256];
    int port;
    const char *listen = m->o.listen;
    /* "HOST:0" picks a free port (tests); bn_parse_listen wants 1..65535 */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", listen);
    const size_t tl = strlen(tmp);
    const int any_port = tl > 2 && !strcmp(tmp + tl - 2, ":0");
    if (any_port) snprintf(tmp + tl - 1, sizeof tmp - tl + 1, "1");
    if (bn_parse_listen(tmp, host, sizeof host, &port)) {
        snprintf(err, errsz, "--listen '%s': expected HOST:PORT or [V6]:PORT", listen);
        return -1;
    }
    if (any_port) port = 0;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
#if MHD_VERSION >= 0x00095300
    flags |= MHD_USE_AUTO;
#endif
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    if (host[0]) {
        const int rc = getaddrinfo(host, ports, &hints, &ai);
        if (rc || !ai) {
            snprintf(err, errsz, "--listen %s: %s", listen, gai_strerror(rc));
            return -1;
        }
        if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    } else {
        flags |= MHD_USE_DUAL_STACK;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
            on_mhd_log, m, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)64, ai ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, ai ? ai->ai_addr : NULL,
            MHD_OPTION_END);
    if (ai) freeaddrinfo(ai);
    if (!d) {
        snprintf(err, errsz, "cannot listen on %s (in use, or not an address of this host)",
                 listen);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    m->http_port = info ? info->port : port;
    m->http = d;
    return 0;
}

void mon_http_stop(bn_monitor *m)
{
    if (!m->http) return;
    MHD_stop_daemon(m->http);
    m->http = NULL;
}
