/* slowclient - slow HTTP clients for the tests of the monitor's endpoint: opens --conns
 * connections to 127.0.0.1:PORT, from --addrs consecutive source addresses beginning at
 * --from (every 127.x.y.z is this host on Linux), sends the request line and then one header
 * line on each every --every-ms, never ending the request, and stops by itself after
 * --for-ms. It notes when the server closes each connection.
 *
 *   slowclient --port P [--conns 200] [--from 127.0.0.2] [--addrs 10] [--every-ms 5000]
 *              [--for-ms 4000] [--ready FILE]
 *
 * --ready FILE is written ("N\n") once every connection is open. At the end one line:
 *   opened=N refused=R closed=K open=N-K first_close_ms=A last_close_ms=B
 * (refused: closed within 200 ms of opening; the times are from each connection's start).
 * Exit 0, or 2 on a usage error or when the connections cannot be made. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 2000

typedef struct conn {
    int fd;
    double opened, closed; /* ms; closed 0 while open */
} conn;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int open_one(int port, struct in_addr from)
{
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = from};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char line[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (bind(fd, (struct sockaddr *)&src, sizeof src) ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) ||
        send(fd, line, sizeof line - 1, MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Marks c closed when the server ended it (EOF, reset, or a send that fails). */
static void check(conn *c, int send_line, int k)
{
    if (c->closed) return;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    char buf[512];
    int gone = 0;
    if (poll(&p, 1, 0) > 0) {
        const ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        gone = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
               (p.revents & (POLLHUP | POLLERR));
    }
    if (!gone && send_line) {
        char line[64];
        const int n = snprintf(line, sizeof line, "X-Slow-%d: %d\r\n", k, k);
        gone = send(c->fd, line, (size_t)n, MSG_NOSIGNAL) < 0;
    }
    if (gone) c->closed = now_ms();
}

static long arg_long(const char *v, long lo, long hi)
{
    char *end;
    const long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || n < lo || n > hi) {
        fprintf(stderr, "slowclient: bad number '%s'\n", v ? v : "");
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    long port = 0, n = 200, addrs = 10, every = 5000, duration = 4000;
    const char *from = "127.0.0.2", *ready = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
        if (!strcmp(a, "--port"))
            port = arg_long(v, 1, 65535);
        else if (!strcmp(a, "--conns"))
            n = arg_long(v, 1, MAX_CONNS);
        else if (!strcmp(a, "--addrs"))
            addrs = arg_long(v, 1, 250);
        else if (!strcmp(a, "--every-ms"))
            every = arg_long(v, 10, 600000);
        else if (!strcmp(a, "--for-ms"))
            duration = arg_long(v, 10, 600000);
        else if (!strcmp(a, "--from"))
            from = v;
        else if (!strcmp(a, "--ready"))
            ready = v;
        else {
            fprintf(stderr, "slowclient: unknown option '%s'\n", a);
            return 2;
        }
    }
    struct in_addr base;
    if (!port || !from || inet_pton(AF_INET, from, &base) != 1) {
        fprintf(stderr, "slowclient: --port and a valid --from are needed\n");
        return 2;
    }
    static conn c[MAX_CONNS];
    const double t0 = now_ms();
    for (long i = 0; i < n; i++) {
        struct in_addr a = {.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)(i % addrs))};
        c[i].fd = open_one((int)port, a);
        c[i].opened = now_ms();
        if (c[i].fd < 0) {
            fprintf(stderr, "slowclient: connection %ld: %s\n", i, strerror(errno));
            return 2;
        }
    }
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) fprintf(f, "%ld\n", n), fclose(f);
    }
    double next = now_ms() + (double)every;
    for (int k = 0; now_ms() - t0 < (double)duration; k++) {
        const int send_line = now_ms() >= next;
        if (send_line) next += (double)every;
        for (long i = 0; i < n; i++) check(&c[i], send_line, k);
        usleep(20000);
    }
    long closed = 0, refused = 0;
    double first = -1, last = -1;
    for (long i = 0; i < n; i++) {
        check(&c[i], 0, 0);
        if (!c[i].closed) continue;
        const double life = c[i].closed - c[i].opened;
        closed++;
        refused += life < 200;
        if (first < 0 || life < first) first = life;
        if (life > last) last = life;
        close(c[i].fd);
    }
    printf("opened=%ld refused=%ld closed=%ld open=%ld first_close_ms=%.0f last_close_ms=%.0f\n", n,
           refused, closed, n - closed, first, last);
    return 0;
}
