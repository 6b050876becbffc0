/* monitor_http.c - the scrape endpoint, with libmicrohttpd driven by a thread of its own:
 *
 *   GET /metrics    the registry in the Prometheus text format 0.0.4 (gzip when asked)
 *   GET /-/healthy  "ok" (liveness)
 *   GET /-/ready    "ready" once the first collection is done, else 503
 *   GET /           a short page naming them
 *
 * Other methods get 405 with Allow. Connections are kept alive between requests.
 *
 * Slow clients: each phase of a connection - sending a whole request, taking the answer,
 * sending the next request on a kept-alive connection - has http_timeout_s, counted from
 * the start of the phase and not restarted by every byte (libmicrohttpd's own timeout is
 * an idle timeout, which a client sending one header line every few seconds never meets).
 * The thread runs the daemon (MHD_run_wait) and, between rounds, shuts down the sockets
 * that are past their time; the same thread handles the close, so a descriptor is never
 * shut down after libmicrohttpd has reused it.
 *
 * Slots: at most http_max_per_client connections from one address and CONNECTIONS_MAX in all.
 * When a new connection would pass either, the oldest connection that is only waiting for a
 * request (sending one slowly, or idle between requests) makes room; only when every one is
 * being answered is the newcomer turned away. So stalled clients can never keep a scraper out,
 * not even one on the same address as them (loopback).
 *
 * TLS and basic auth come from the web config (monitor_web.h); with users, every path asks
 * for credentials (401 with WWW-Authenticate), as exporter-toolkit does.
 *
 * A request only reads the registry (under its lock, held by the collector for a few updates
 * at a time); it never waits on a sink, the spool or the probe. */
#include "monitor.h"

#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zlib.h>

#include "common/config.h"
#include "monitor_web.h"

#define RENDER_MAX      (64u << 20) /* bytes of exposition at most */
#define CONNECTIONS_MAX 512u        /* at once, from every client together */

/* One open connection, its client and its current phase. */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int family;             /* AF_INET, AF_INET6; 0: unknown */
    unsigned char addr[16]; /* the client's address */
    int answering;          /* a request is in: being answered */
    double since, deadline; /* monotonic seconds: phase start and end; INFINITY: shut down */
} http_conn;

#define AUTH_CLIENTS 64 /* addresses whose bcrypt budget is kept */

typedef struct auth_bucket {
    int family;
    unsigned char addr[16];
    double tokens, at;
} auth_bucket;

typedef struct mon_http {
    bn_monitor *m;
    struct MHD_Daemon *d;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    double timeout;
    http_conn *conns;
    size_t max_conns;  /* live connections at most (more wait in libmicrohttpd's slack) */
    size_t per_client; /* live connections from one address at most */
    mon_web web;
    auth_bucket buckets[AUTH_CLIENTS];
    double auth_tokens, auth_at; /* the budget of all clients together */
    long n_log, quiet_log;       /* libmicrohttpd's messages logged, and held back */
    double last_log;
} mon_http;

/* ---- answers ------------------------------------------------------------------------------ */

static const char TXT[] = "text/plain; charset=utf-8";

/* Queues body (freed with free() when owned) with its type and the extra headers h (name,
 * value, ..., NULL). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, int owned, const char *const *h)
{
    struct MHD_Response *r =
            owned ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
                  : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    for (; h && h[0]; h += 2) MHD_add_response_header(r, h[0], h[1]);
    const enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text,
                                  const char *const *h)
{
    return reply(c, status, TXT, (char *)text, strlen(text), 0, h);
}

/* Whether the Accept-Encoding value takes gzip (RFC 9110: "gzip", "x-gzip" or "*", with a
 * q-value above 0). */
static int accepts_gzip(const char *ae)
{
    double star = 0, gz = -1;
    for (const char *p = ae; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const size_t n = strcspn(p, ";, \t");
        double q = 1;
        const char *e = p + strcspn(p, ",");
        const char *qp = memchr(p, ';', (size_t)(e - p));
        for (; qp; qp = memchr(qp + 1, ';', (size_t)(e - qp - 1))) {
            const char *v = qp + 1;
            while (*v == ' ') v++;
            if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=') q = strtod(v + 2, NULL);
        }
        if ((n == 4 && !strncasecmp(p, "gzip", 4)) || (n == 6 && !strncasecmp(p, "x-gzip", 6)))
            gz = q;
        else if (n == 1 && *p == '*')
            star = q;
        p = e;
    }
    return gz >= 0 ? gz > 0 : star > 0;
}

/* text as a gzip member; NULL when out of memory. */
static char *gzip_text(const char *text, size_t len, size_t *out_len)
{
    z_stream z = {0};
    if (len > UINT32_MAX ||
        deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    const uLong cap = deflateBound(&z, (uLong)len);
    char *out = malloc(cap);
    int rc = Z_MEM_ERROR;
    if (out) {
        z.next_in = (Bytef *)text;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        rc = deflate(&z, Z_FINISH);
    }
    *out_len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static enum MHD_Result metrics(bn_monitor *m, struct MHD_Connection *c)
{
    bn_metric_add(m->f.scrapes, NULL, 1);
    bn_buf b;
    bn_buf_init(&b, RENDER_MAX);
    size_t len = 0;
    char *text = bn_metrics_render(m->reg, &b) == 0 ? bn_buf_detach(&b, &len) : NULL;
    bn_buf_release(&b);
    if (!text) return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
    static const char *const vary[] = {MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING, NULL};
    static const char *const gz[] = {MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip", MHD_HTTP_HEADER_VARY,
                                     MHD_HTTP_HEADER_ACCEPT_ENCODING, NULL};
    if (accepts_gzip(
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING))) {
        size_t zlen;
        char *z = gzip_text(text, len, &zlen);
        if (z) {
            free(text);
            return reply(c, MHD_HTTP_OK, BN_METRICS_CONTENT_TYPE, z, zlen, 1, gz);
        }
    }
    return reply(c, MHD_HTTP_OK, BN_METRICS_CONTENT_TYPE, text, len, 1, vary);
}

static enum MHD_Result ready(bn_monitor *m, struct MHD_Connection *c)
{
    double n = 0;
    if (bn_metric_get(m->f.collections, NULL, &n) == 0 && n >= 1)
        return reply_text(c, MHD_HTTP_OK, "ready\n", NULL);
    return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: no collection yet\n", NULL);
}

/* ---- connections and their time ------------------------------------------------------------- */

static void set_phase(mon_http *h, struct MHD_Connection *c, int answering)
{
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_conn *k = ci ? ci->socket_context : NULL;
    if (!k || !isfinite(k->deadline)) return;
    k->since = mon_now();
    k->deadline = k->since + h->timeout;
    k->answering = answering;
}

static void shut(http_conn *k)
{
    shutdown(k->fd, SHUT_RDWR);
    k->deadline = INFINITY;
}

static void client_of(struct MHD_Connection *c, http_conn *k)
{
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        memcpy(k->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        k->family = AF_INET;
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(k->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        k->family = AF_INET6;
    }
}

static int same_client(const http_conn *a, const http_conn *b)
{
    return a->family && a->family == b->family && !memcmp(a->addr, b->addr, 16);
}

/* Makes room for the new connection k when its client (same) or everyone (!same) already
 * holds max live connections: shuts down the one waiting longest for a request, else k. */
static void make_room(http_conn *k, int same, size_t max)
{
    size_t n = 0;
    http_conn *oldest = NULL;
    for (http_conn *o = k->next; o; o = o->next) {
        if (!isfinite(o->deadline) || (same && !same_client(o, k))) continue;
        n++;
        if (!o->answering && (!oldest || o->since < oldest->since)) oldest = o;
    }
    if (n >= max) shut(oldest ? oldest : k);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    mon_http *h = cls;
    http_conn *k = *ctx;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!k) return;
        if (k->prev) k->prev->next = k->next;
        if (k->next) k->next->prev = k->prev;
        if (h->conns == k) h->conns = k->next;
        free(k);
        *ctx = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return;
    if (!(k = calloc(1, sizeof *k))) { /* cannot watch its time: not taken at all */
        shutdown(ci->connect_fd, SHUT_RDWR);
        return;
    }
    k->fd = ci->connect_fd;
    k->since = mon_now();
    k->deadline = k->since + h->timeout;
    client_of(c, k);
    k->next = h->conns;
    if (h->conns) h->conns->prev = k;
    h->conns = k;
    *ctx = k;
    make_room(k, 1, h->per_client);
    if (isfinite(k->deadline)) make_room(k, 0, h->max_conns);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    (void)state, (void)toe;
    set_phase(cls, c, 0); /* waiting for the next request on a kept-alive connection */
}

/* Shuts down the sockets past their time; libmicrohttpd sees the end and closes them. */
static void reap(mon_http *h)
{
    const double now = mon_now();
    for (http_conn *k = h->conns; k; k = k->next)
        if (now > k->deadline) shut(k);
}

static void *http_loop(void *arg)
{
    mon_http *h = arg;
    while (!atomic_load(&h->stop)) {
        MHD_run_wait(h->d, 100);
        reap(h);
    }
    return NULL;
}

/* ---- requests ---------------------------------------------------------------------------------
 */

static enum MHD_Result route(mon_http *h, struct MHD_Connection *c, const char *url)
{
    static char index[] = "<html><head><title>bitnet monitor</title></head><body>"
                          "<h1>bitnet monitor</h1><p><a href=\"/metrics\">/metrics</a> "
                          "<a href=\"/-/healthy\">/-/healthy</a> "
                          "<a href=\"/-/ready\">/-/ready</a></p></body></html>\n";
    if (!strcmp(url, "/metrics")) return metrics(h->m, c);
    if (!strcmp(url, "/-/healthy") || !strcmp(url, "/healthz"))
        return reply_text(c, MHD_HTTP_OK, "ok\n", NULL);
    if (!strcmp(url, "/-/ready") || !strcmp(url, "/readyz")) return ready(h->m, c);
    if (!strcmp(url, "/"))
        return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", index, sizeof index - 1, 0, NULL);
    return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
}

/* ---- basic auth ----------------------------------------------------------------------------- */

/* A bcrypt check holds this thread for milliseconds to a second (its cost is the hash's), so
 * credentials that did not pass before are checked within a budget of thread time - per
 * client address and in all, each a burst that refills at a rate (seconds of bcrypt a
 * second) - and refused unchecked while it is spent. A flood of wrong passwords then costs
 * the scrapers a quarter of the thread at most, and passwords that passed before never wait. */
#define AUTH_CLIENT_BURST 0.5 /* seconds of bcrypt */
#define AUTH_CLIENT_RATE  0.1 /* seconds of bcrypt a second */
#define AUTH_ALL_BURST    1.0
#define AUTH_ALL_RATE     0.25

/* Refills the bucket (tokens, at) of burst and rate; 1 when some budget is left. */
static int budget_left(double *tokens, double *at, double burst, double rate, double now)
{
    *tokens += (now - *at) * rate;
    if (*tokens > burst) *tokens = burst;
    *at = now;
    return *tokens > 0;
}

/* The bucket of k's client: found, else the one used least recently (full again). */
static auth_bucket *client_bucket(mon_http *h, const http_conn *k, double now)
{
    auth_bucket *b = &h->buckets[0];
    for (size_t i = 0; i < AUTH_CLIENTS; i++) {
        auth_bucket *o = &h->buckets[i];
        if (o->family && o->family == k->family && !memcmp(o->addr, k->addr, 16)) return o;
        if (o->at < b->at) b = o;
    }
    *b = (auth_bucket){.family = k->family, .tokens = AUTH_CLIENT_BURST, .at = now};
    memcpy(b->addr, k->addr, 16);
    return b;
}

static int authorized(mon_http *h, struct MHD_Connection *c)
{
    const char *auth =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const int known = mon_web_authorized(&h->web, auth, 1);
    if (known >= 0) return known; /* passed before, or malformed */
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const http_conn *k = ci ? ci->socket_context : NULL;
    const double now = mon_now();
    auth_bucket *b = k ? client_bucket(h, k, now) : NULL;
    if (!b || !budget_left(&b->tokens, &b->at, AUTH_CLIENT_BURST, AUTH_CLIENT_RATE, now) ||
        !budget_left(&h->auth_tokens, &h->auth_at, AUTH_ALL_BURST, AUTH_ALL_RATE, now))
        return 0;
    const int ok = mon_web_authorized(&h->web, auth, 0) == 1;
    const double spent = mon_now() - now;
    b->tokens -= spent;
    h->auth_tokens -= spent;
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void)version, (void)upload;
    mon_http *h = cls;
    static int seen;
    static const char *const allow[] = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL};
    static const char *const challenge[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                            "Basic realm=\"bitnet monitor\", charset=\"UTF-8\"",
                                            NULL};
    if (!*state) { /* the headers are in: the answer has a time of its own */
        *state = &seen;
        set_phase(h, c, 1);
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", allow);
        return MHD_YES; /* answered once the request (and any body) is read: keep-alive */
    }
    if (*upload_size) { /* a body on a GET: read and dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (h->web.n_users && !authorized(h, c))
        return reply_text(c, MHD_HTTP_UNAUTHORIZED, "unauthorized\n", challenge);
    return route(h, c, url);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    mon_http *h = cls;
    /* a client can cause a message per connection (closed, too slow, bad request): at most
     * one a minute after the first few, so slow clients cannot flood the log */
    const double now = mon_now();
    if (h->n_log >= 5 && now - h->last_log < 60) {
        h->quiet_log++;
        return;
    }
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = '\0';
    if (h->quiet_log)
        mon_log(h->m, "http: %s (and %ld more messages in the last minute)", msg, h->quiet_log);
    else
        mon_log(h->m, "http: %s", msg);
    h->n_log++;
    h->last_log = now;
    h->quiet_log = 0;
}

/* ---- start and stop -----------------------------------------------------------------------------
 */

static int is_loopback(const struct addrinfo *ai)
{
    if (!ai) return 0;
    if (ai->ai_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    return ai->ai_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
}

/* The address to listen on: host and port into *ai (NULL: every address) and *port. */
static int listen_addr(const char *listen, struct addrinfo **ai, int *port, char *err, size_t errsz)
{
    char host[256], tmp[300];
    /* "HOST:0" picks a free port (tests); bn_parse_listen wants 1..65535 */
    snprintf(tmp, sizeof tmp, "%s", listen);
    const size_t tl = strlen(tmp);
    const int any_port = tl > 2 && !strcmp(tmp + tl - 2, ":0");
    if (any_port) snprintf(tmp + tl - 1, sizeof tmp - tl + 1, "1");
    if (bn_parse_listen(tmp, host, sizeof host, port)) {
        snprintf(err, errsz, "--listen '%s': expected HOST:PORT or [V6]:PORT", listen);
        return -1;
    }
    if (any_port) *port = 0;
    *ai = NULL;
    if (!host[0]) return 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    char ports[16];
    snprintf(ports, sizeof ports, "%d", *port);
    const int rc = getaddrinfo(host, ports, &hints, ai);
    if (rc || !*ai) {
        snprintf(err, errsz, "--listen %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static unsigned connection_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return CONNECTIONS_MAX;
    const rlim_t half = rl.rlim_cur / 2;
    return half < 16 ? 16 : half < CONNECTIONS_MAX ? (unsigned)half : CONNECTIONS_MAX;
}

static struct MHD_Daemon *start_daemon(mon_http *h, const struct addrinfo *ai, int port)
{
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ai && ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (!ai) flags |= MHD_USE_DUAL_STACK;
    if (h->web.cert_pem) flags |= MHD_USE_TLS;
    const double idle = ceil(h->timeout);
    struct MHD_OptionItem opt[16] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)(idle < 1 ? 1 : idle), NULL},
            /* slack over max_conns: shut connections hold a slot until they are closed */
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)h->max_conns + 64, NULL},
    };
    size_t n = 5;
    if (ai) opt[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    if (h->web.cert_pem) {
        opt[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->web.cert_pem};
        opt[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->web.key_pem};
        opt[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                           (void *)"NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"};
    }
    opt[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opt,
                            MHD_OPTION_END);
}

static void http_free(mon_http *h)
{
    if (!h) return;
    if (h->thread_started) {
        atomic_store(&h->stop, 1);
        pthread_join(h->thread, NULL);
    }
    if (h->d) MHD_stop_daemon(h->d); /* closes the connections: their records go */
    mon_web_release(&h->web);
    free(h);
}

static int load_web(mon_http *h, char *err, size_t errsz)
{
    const char *path = h->m->o.web_config;
    if (!path || !*path) return 0;
    char why[1024];
    if (mon_web_load(&h->web, path, why, sizeof why)) {
        snprintf(err, errsz, "web config %s", why);
        return -1;
    }
    if (h->web.cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errsz, "web config %s: this libmicrohttpd has no TLS", path);
        return -1;
    }
    return 0;
}

int mon_http_start(bn_monitor *m, char *err, size_t errsz)
{
    mon_http *h = calloc(1, sizeof *h);
    struct addrinfo *ai = NULL;
    int port;
    if (!h) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    h->m = m;
    h->timeout = m->o.http_timeout_s > 0 ? m->o.http_timeout_s : 10;
    h->max_conns = connection_limit();
    /* copied: this thread never reads m->o, which a reload (SIGHUP) may replace */
    h->per_client = m->o.http_max_per_client > 0 ? (size_t)m->o.http_max_per_client : 16;
    h->auth_tokens = AUTH_ALL_BURST;
    h->auth_at = mon_now();
    if (load_web(h, err, errsz) || listen_addr(m->o.listen, &ai, &port, err, errsz)) goto fail;
    h->d = start_daemon(h, ai, port);
    if (!h->d) {
        snprintf(err, errsz, "cannot listen on %s (in use, or not an address of this host)",
                 m->o.listen);
        goto fail;
    }
    if (!is_loopback(ai) && !h->web.cert_pem)
        mon_log(m,
                "warning: %s is reachable beyond this host over plain HTTP%s; "
                "--web-config adds TLS and basic auth",
                m->o.listen, h->web.n_users ? "" : " without auth");
    if (ai) freeaddrinfo(ai);
    ai = NULL;
    if (pthread_create(&h->thread, NULL, http_loop, h)) {
        snprintf(err, errsz, "cannot start the HTTP thread");
        goto fail;
    }
    h->thread_started = 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    m->http_port = info ? info->port : port;
    m->http = h;
    return 0;
fail:
    if (ai) freeaddrinfo(ai);
    http_free(h);
    return -1;
}

const char *mon_http_scheme(const bn_monitor *m)
{
    const mon_http *h = m->http;
    return h && h->web.cert_pem ? "https" : "http";
}

void mon_http_stop(bn_monitor *m)
{
    http_free(m->http);
    m->http = NULL;
}
