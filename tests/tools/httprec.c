/* httprec - a loopback HTTP recorder for the tests: it stands in for CloudWatch, Datadog, a
 * Pushgateway or a webhook. It listens on 127.0.0.1, answers every request with one status
 * and writes each request as one JSON line:
 *
 *     {"method": "POST", "path": "/api/v2/series", "headers": {"dd-api-key": "..."},
 *      "body": "..."}
 *
 * (header names lower-cased; a repeated header keeps the last value). One connection at a
 * time, "Connection: close" on every answer; bodies by Content-Length or chunked; answers
 * "100 Continue" when asked.
 *
 * Usage: httprec [--port N] [--port-file F] [--out F] [--status N] [--delay-ms N] [--max N]
 *                [--timeout S] [--first N] [--match TEXT] [--other-status N] [--other-body TEXT]
 *        httprec --free-port       prints a port that was free a moment ago
 *        httprec --fetch PORT PATH [METHOD]
 *                                  one request to 127.0.0.1:PORT (a client for the tests, which
 *                                  cannot count on curl or wget): writes the status line, the
 *                                  headers and the body to stdout; exits 0 when the status is
 *                                  2xx, 1 otherwise or when there is no answer within 10 s
 *
 * --port 0 (the default) takes a free port and writes it to --port-file; --out - (the
 * default) is stdout; --delay-ms waits before answering (a slow sink); it exits after --max
 * requests (0: no limit) or --timeout seconds (default 60). The first --first requests, and
 * those whose body contains --match, get --other-status (default 503) and --other-body
 * instead (a throttling sink, or one that refuses one payload). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (32 * 1024 * 1024)

typedef struct opts {
    int port, status, delay_ms, max, timeout_s, first, other_status;
    const char *port_file, *out, *match, *other_body;
} opts;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: httprec [--port N] [--port-file F] [--out F] [--status N] "
                    "[--delay-ms N] [--max N] [--timeout S] [--first N] [--match TEXT] "
                    "[--other-status N] [--other-body TEXT] | --free-port | "
                    "--fetch PORT PATH [METHOD]\n");
    return 2;
}

static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A connection's bytes: what was read so far, and a read position. */
typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap, pos;
} conn;

/* Reads more; 0, or -1 at the end, on error or past the cap. */
static int fill(conn *c)
{
    if (c->len == c->cap) {
        if (c->cap >= HEAD_MAX + BODY_MAX) return -1;
        size_t cap = c->cap ? c->cap * 2 : 8192;
        char *p = realloc(c->buf, cap + 1);
        if (!p) return -1;
        c->buf = p;
        c->cap = cap;
    }
    ssize_t r;
    do r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return -1;
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    return 0;
}

/* Makes n bytes available from pos. */
static int need(conn *c, size_t n)
{
    while (c->len - c->pos < n)
        if (fill(c)) return -1;
    return 0;
}

/* The end of the line at pos (the \r\n), reading more as needed; -1 when there is none. */
static long line_end(conn *c)
{
    for (;;) {
        char *p = c->len > c->pos ? memmem(c->buf + c->pos, c->len - c->pos, "\r\n", 2) : NULL;
        if (p) return (long)(p - c->buf);
        if (c->len - c->pos > HEAD_MAX || fill(c)) return -1;
    }
}

static int read_chunked(conn *c, char **body, size_t *blen)
{
    size_t n = 0;
    char *b = malloc(1);
    for (;;) {
        long e = line_end(c);
        if (e < 0 || !b) goto fail;
        size_t sz = strtoul(c->buf + c->pos, NULL, 16);
        c->pos = (size_t)e + 2;
        if (sz > BODY_MAX || n + sz > BODY_MAX) goto fail;
        if (sz == 0) {
            e = line_end(c); /* no trailers: the empty line */
            c->pos = (size_t)e + 2;
            break;
        }
        if (need(c, sz + 2)) goto fail;
        char *nb = realloc(b, n + sz + 1);
        if (!nb) goto fail;
        b = nb;
        memcpy(b + n, c->buf + c->pos, sz);
        n += sz;
        c->pos += sz + 2;
    }
    b[n] = '\0';
    *body = b;
    *blen = n;
    return 0;
fail:
    free(b);
    return -1;
}

/* Reads one request into a JSON object; NULL when the connection ended or broke. */
static cJSON *read_request(conn *c)
{
    char *body = NULL;
    size_t blen = 0, clen = 0;
    int chunked = 0;
    long e = line_end(c);
    if (e < 0) return NULL;
    char method[16] = "", path[4096] = "";
    c->buf[e] = '\0';
    if (sscanf(c->buf + c->pos, "%15s %4095s", method, path) != 2) return NULL;
    c->pos = (size_t)e + 2;
    cJSON *req = cJSON_CreateObject(), *h = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", method);
    cJSON_AddStringToObject(req, "path", path);
    cJSON_AddItemToObject(req, "headers", h);
    int expect = 0;
    while ((e = line_end(c)) >= 0 && (size_t)e > c->pos) {
        c->buf[e] = '\0';
        char *line = c->buf + c->pos, *colon = strchr(line, ':');
        c->pos = (size_t)e + 2;
        if (!colon) continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        for (char *p = line; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        cJSON_DeleteItemFromObjectCaseSensitive(h, line);
        cJSON_AddStringToObject(h, line, v);
        if (!strcmp(line, "content-length")) clen = strtoul(v, NULL, 10);
        if (!strcmp(line, "transfer-encoding") && strcasestr(v, "chunked")) chunked = 1;
        if (!strcmp(line, "expect") && strcasestr(v, "100-continue")) expect = 1;
    }
    if (e < 0) goto fail;
    c->pos = (size_t)e + 2;
    if (expect && write_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25)) goto fail;
    if (chunked) {
        if (read_chunked(c, &body, &blen)) goto fail;
    } else {
        if (clen > BODY_MAX || need(c, clen) || !(body = malloc(clen + 1))) goto fail;
        memcpy(body, c->buf + c->pos, clen);
        body[clen] = '\0';
        blen = clen;
        c->pos += clen;
    }
    /* bodies here are text; a NUL byte would cut the JSON string short */
    cJSON_AddStringToObject(req, "body", body);
    cJSON_AddNumberToObject(req, "body_bytes", (double)blen);
    free(body);
    return req;
fail:
    free(body);
    cJSON_Delete(req);
    return NULL;
}

static void answer(int fd, int status, const char *body)
{
    char head[256];
    const size_t len = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d Recorded\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, body[0] == '<' ? "text/xml" : "application/json", len);
    if (write_all(fd, head, (size_t)n) == 0) write_all(fd, body, len);
}

static void serve(int fd, const opts *o, FILE *out, int nth)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    conn c = {.fd = fd};
    cJSON *req = read_request(&c);
    if (req) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(req, "body");
        const int other = nth < o->first ||
                          (o->match && cJSON_IsString(b) && strstr(b->valuestring, o->match));
        char *line = cJSON_PrintUnformatted(req);
        if (line) {
            fprintf(out, "%s\n", line);
            fflush(out);
        }
        cJSON_free(line);
        cJSON_Delete(req);
        if (o->delay_ms > 0) {
            struct timespec ts = {o->delay_ms / 1000, (o->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        answer(fd, other ? o->other_status : o->status, other ? o->other_body : "{}");
    }
    free(c.buf);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--port"))
            bad = parse_int(v, 0, 65535, &o->port);
        else if (!strcmp(a, "--status"))
            bad = parse_int(v, 100, 599, &o->status);
        else if (!strcmp(a, "--delay-ms"))
            bad = parse_int(v, 0, 3600000, &o->delay_ms);
        else if (!strcmp(a, "--max"))
            bad = parse_int(v, 0, 1 << 30, &o->max);
        else if (!strcmp(a, "--timeout"))
            bad = parse_int(v, 1, 86400, &o->timeout_s);
        else if (!strcmp(a, "--first"))
            bad = parse_int(v, 0, 1 << 30, &o->first);
        else if (!strcmp(a, "--other-status"))
            bad = parse_int(v, 100, 599, &o->other_status);
        else if (!strcmp(a, "--match") && v)
            o->match = v;
        else if (!strcmp(a, "--other-body") && v)
            o->other_body = v;
        else if (!strcmp(a, "--port-file") && v)
            o->port_file = v;
        else if (!strcmp(a, "--out") && v)
            o->out = v;
        else
            return -1;
        if (bad) return -1;
    }
    return 0;
}

static int fetch(const char *port, const char *path, const char *method)
{
    int p;
    if (parse_int(port, 1, 65535, &p)) return 2;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    if (fd < 0) return 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return 1;
    }
    char req[8192];
    const int n = snprintf(req, sizeof req,
                           "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n"
                           "Connection: close\r\n\r\n",
                           method, path, p);
    if (n < 0 || (size_t)n >= sizeof req || write_all(fd, req, (size_t)n)) {
        close(fd);
        return 1;
    }
    char buf[65536];
    ssize_t r;
    int status = 0, first = 1;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0) {
        if (first && sscanf(buf, "HTTP/%*s %d", &status) != 1) status = 0;
        first = 0;
        fwrite(buf, 1, (size_t)r, stdout);
    }
    close(fd);
    return status >= 200 && status < 300 ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts o = {.status = 200, .timeout_s = 60, .out = "-", .other_status = 503, .other_body = "{}"};
    if (argc == 2 && !strcmp(argv[1], "--free-port")) {
        int port, fd = listen_on(0, &port);
        if (fd < 0) return 1;
        close(fd);
        printf("%d\n", port);
        return 0;
    }
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--fetch"))
        return fetch(argv[2], argv[3], argc == 5 ? argv[4] : "GET");
    if (parse_args(argc, argv, &o)) return usage();
    int port, lfd = listen_on(o.port, &port);
    if (lfd < 0) {
        fprintf(stderr, "httprec: cannot listen on 127.0.0.1:%d: %s\n", o.port, strerror(errno));
        return 1;
    }
    FILE *out = strcmp(o.out, "-") ? fopen(o.out, "a") : stdout;
    if (!out) {
        fprintf(stderr, "httprec: %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    if (o.port_file) {
        FILE *pf = fopen(o.port_file, "w");
        if (!pf || fprintf(pf, "%d\n", port) < 0 || fclose(pf)) {
            fprintf(stderr, "httprec: cannot write %s\n", o.port_file);
            return 1;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    const time_t end = time(NULL) + o.timeout_s;
    int served = 0;
    while (!stop && (o.max == 0 || served < o.max) && time(NULL) < end) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        serve(fd, &o, out, served);
        close(fd);
        served++;
    }
    close(lfd);
    if (out != stdout) fclose(out);
    return 0;
}
