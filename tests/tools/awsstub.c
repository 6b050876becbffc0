/* awsstub - a loopback stand-in for the AWS endpoints that hand out credentials, for the tests
 * of the CloudWatch credential chain. It checks each request against the documented shape and
 * answers as AWS does, or with an error naming what is wrong:
 *
 *   PUT  /latest/api/token                         IMDSv2 session: needs the header
 *                                                  X-aws-ec2-metadata-token-ttl-seconds (1..21600)
 *   GET  /latest/meta-data/iam/security-credentials/        the role name     } both need the
 *   GET  /latest/meta-data/iam/security-credentials/ROLE    its credentials   } session token in
 *                                                                              X-aws-ec2-metadata-token
 *   POST / Action=AssumeRoleWithWebIdentity        STS (form body or query): Version 2011-06-15,
 *                                                  RoleArn, RoleSessionName, WebIdentityToken
 *                                                  equal to --token; unsigned; XML answer
 *   GET  /container/...                            container credentials: Authorization equal
 *                                                  to --token; JSON answer
 *   POST / Action=PutMetricData                    CloudWatch: records the access key id of the
 *                                                  SigV4 Authorization and X-Amz-Security-Token
 *
 * Credentials handed out are numbered (ASIAIMDS0001, ASIASTS0002, ASIACONT0003, ...) and expire
 * --expires seconds from now. Each request is one JSON line in --out: {"route", "ok", "why",
 * "key" (handed out, or signed with), "token" (the security token signed with)}.
 *
 * Usage: awsstub [--port-file F] [--out F] [--token T] [--expires S] [--timeout S]
 * It listens on a free port of 127.0.0.1 (written to --port-file), one connection at a time,
 * and exits after --timeout seconds (default 60) or on SIGTERM. */
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

#define REQ_MAX 65536
#define ROLE    "bitnet-test-role"

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

typedef struct stub {
    const char *token; /* web identity token and container Authorization */
    long expires_s;
    int issued;           /* credentials handed out */
    char sessions[8][64]; /* IMDSv2 session tokens handed out (the last 8) */
    int n_sessions;
} stub;

typedef struct req {
    char method[16], path[2048];
    char *head, *body; /* into the buffer */
} req;

/* A header's value (case-insensitive name), copied into out; NULL when absent. */
static const char *header(const req *r, const char *name, char *out, size_t size)
{
    const size_t n = strlen(name);
    for (const char *p = r->head; p && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
        if (strncasecmp(p, name, n) || p[n] != ':') continue;
        const char *v = p + n + 1 + strspn(p + n + 1, " \t");
        const size_t len = strcspn(v, "\r\n");
        snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), v);
        return out;
    }
    return NULL;
}

static int hex(int c)
{
    return c >= '0' && c <= '9'                 ? c - '0'
           : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                : -1;
}

/* A form parameter from "a=1&b=2" (percent- and plus-decoded) into out; NULL when absent. */
static const char *param(const char *form, const char *name, char *out, size_t size)
{
    const size_t n = strlen(name);
    for (const char *p = form; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) || p[n] != '=') continue;
        size_t k = 0;
        for (const char *q = p + n + 1; *q && *q != '&' && k + 1 < size; q++) {
            if (*q == '%' && hex(q[1]) >= 0 && hex(q[2]) >= 0) {
                out[k++] = (char)(hex(q[1]) * 16 + hex(q[2]));
                q += 2;
            } else {
                out[k++] = *q == '+' ? ' ' : *q;
            }
        }
        out[k] = '\0';
        return out;
    }
    return NULL;
}

static void iso_time(long offset_s, char *buf, size_t size)
{
    const time_t t = time(NULL) + offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The answer: status, content type and body. */
typedef struct ans {
    int status;
    const char *type;
    char body[8192];
} ans;

static void creds_json(stub *s, const char *prefix, ans *a, cJSON *log)
{
    char key[32], exp[32];
    snprintf(key, sizeof key, "ASIA%s%04d", prefix, ++s->issued);
    iso_time(s->expires_s, exp, sizeof exp);
    snprintf(a->body, sizeof a->body,
             "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"%s\","
             "\"SecretAccessKey\":\"secret-%s\",\"Token\":\"session-%s\",\"Expiration\":\"%s\"}",
             key, key, key, exp);
    a->type = "application/json";
    cJSON_AddStringToObject(log, "key", key);
}

static int imds_session_ok(const stub *s, const req *r)
{
    char v[128];
    if (!header(r, "X-aws-ec2-metadata-token", v, sizeof v)) return 0;
    for (int i = 0; i < s->n_sessions && i < 8; i++)
        if (!strcmp(v, s->sessions[i])) return 1;
    return 0;
}

static const char *route_imds(stub *s, const req *r, ans *a, cJSON *log)
{
    char v[64];
    const char *base = "/latest/meta-data/iam/security-credentials/";
    if (!strcmp(r->path, "/latest/api/token")) {
        cJSON_AddStringToObject(log, "route", "imds-token");
        if (strcmp(r->method, "PUT")) return "the token is asked for with PUT";
        if (header(r, "X-Forwarded-For", v, sizeof v)) return "X-Forwarded-For is refused";
        const long ttl = header(r, "X-aws-ec2-metadata-token-ttl-seconds", v, sizeof v)
                                 ? strtol(v, NULL, 10)
                                 : 0;
        if (ttl < 1 || ttl > 21600) return "X-aws-ec2-metadata-token-ttl-seconds: 1 to 21600";
        snprintf(s->sessions[s->n_sessions % 8], sizeof s->sessions[0], "imds-session-%d",
                 s->n_sessions + 1);
        snprintf(a->body, sizeof a->body, "%s", s->sessions[s->n_sessions++ % 8]);
        return NULL;
    }
    cJSON_AddStringToObject(log, "route", strcmp(r->path, base) ? "imds-creds" : "imds-role");
    if (strcmp(r->method, "GET")) return "GET only";
    if (!imds_session_ok(s, r)) {
        a->status = 401;
        return "no valid X-aws-ec2-metadata-token (IMDSv2)";
    }
    if (!strcmp(r->path, base)) {
        snprintf(a->body, sizeof a->body, "%s", ROLE);
        return NULL;
    }
    if (strcmp(r->path + strlen(base), ROLE)) {
        a->status = 404;
        return "no such role";
    }
    creds_json(s, "IMDS", a, log);
    return NULL;
}

static const char *route_sts(stub *s, const req *r, const char *form, ans *a, cJSON *log)
{
    char v[4096], auth[16];
    cJSON_AddStringToObject(log, "route", "sts");
    if (header(r, "Authorization", auth, sizeof auth))
        return "AssumeRoleWithWebIdentity is unsigned";
    if (!param(form, "Version", v, sizeof v) || strcmp(v, "2011-06-15"))
        return "Version 2011-06-15";
    if (!param(form, "RoleArn", v, sizeof v) || strncmp(v, "arn:", 4)) return "RoleArn";
    cJSON_AddStringToObject(log, "role", v);
    if (!param(form, "RoleSessionName", v, sizeof v) || strlen(v) < 2 || strlen(v) > 64)
        return "RoleSessionName (2 to 64 characters)";
    if (!param(form, "WebIdentityToken", v, sizeof v) || !s->token || strcmp(v, s->token)) {
        a->status = 400;
        snprintf(a->body, sizeof a->body,
                 "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                 "<Message>the token is not the one given</Message></Error></ErrorResponse>");
        a->type = "text/xml";
        return "WebIdentityToken";
    }
    char key[32], exp[32];
    snprintf(key, sizeof key, "ASIASTS%04d", ++s->issued);
    iso_time(s->expires_s, exp, sizeof exp);
    snprintf(a->body, sizeof a->body,
             "<AssumeRoleWithWebIdentityResponse "
             "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>"
             "<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>secret-%s"
             "</SecretAccessKey><SessionToken>session-%s&amp;x</SessionToken><Expiration>%s"
             "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
             "</AssumeRoleWithWebIdentityResponse>",
             key, key, key, exp);
    a->type = "text/xml";
    cJSON_AddStringToObject(log, "key", key);
    return NULL;
}

static const char *route_cloudwatch(const req *r, ans *a, cJSON *log)
{
    char v[2048];
    cJSON_AddStringToObject(log, "route", "cloudwatch");
    const char *cred = header(r, "Authorization", v, sizeof v) ? strstr(v, "Credential=") : NULL;
    if (!cred) return "not signed";
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(cred + 11, "/"), cred + 11);
    cJSON_AddStringToObject(log, "key", key);
    if (header(r, "X-Amz-Security-Token", v, sizeof v)) cJSON_AddStringToObject(log, "token", v);
    snprintf(a->body, sizeof a->body, "<PutMetricDataResponse/>");
    a->type = "text/xml";
    return NULL;
}

static void route(stub *s, req *r, ans *a, cJSON *log)
{
    char form[8192] = "", v[4096], act[64] = "";
    char *q = strchr(r->path, '?');
    if (q) snprintf(form, sizeof form, "%s&", q + 1);
    snprintf(form + strlen(form), sizeof form - strlen(form), "%s", r->body);
    a->status = 200;
    a->type = "text/plain";
    a->body[0] = '\0';
    const char *why;
    param(form, "Action", act, sizeof act);
    if (!strncmp(r->path, "/latest/", 8)) {
        why = route_imds(s, r, a, log);
    } else if (!strncmp(r->path, "/container/", 11)) {
        cJSON_AddStringToObject(log, "route", "container");
        why = !s->token || !header(r, "Authorization", v, sizeof v) || strcmp(v, s->token)
                      ? "Authorization is not the token given"
                      : NULL;
        if (why) a->status = 401;
        if (!why) creds_json(s, "CONT", a, log);
    } else if (!strcmp(act, "AssumeRoleWithWebIdentity")) {
        why = route_sts(s, r, form, a, log);
    } else if (!strcmp(act, "PutMetricData")) {
        why = route_cloudwatch(r, a, log);
    } else {
        cJSON_AddStringToObject(log, "route", "unknown");
        a->status = 404;
        why = "no such route";
    }
    if (why && a->status == 200) a->status = 400;
    if (why && !a->body[0]) snprintf(a->body, sizeof a->body, "%s", why);
    cJSON_AddBoolToObject(log, "ok", !why);
    if (why) cJSON_AddStringToObject(log, "why", why);
}

/* Reads one request (headers, then Content-Length bytes); 0, or -1. */
static int read_req(int fd, char *buf, req *r)
{
    size_t len = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        const ssize_t n = recv(fd, buf + len, REQ_MAX - 1 - len, 0);
        if (n <= 0) return -1;
        len += (size_t)n;
        buf[len] = '\0';
    }
    *end = '\0';
    r->body = end + 4;
    r->head = strstr(buf, "\r\n") ? strstr(buf, "\r\n") + 2 : end;
    if (sscanf(buf, "%15s %2047s", r->method, r->path) != 2) return -1;
    char v[32];
    const size_t want = header(r, "Content-Length", v, sizeof v) ? strtoul(v, NULL, 10) : 0;
    if (want > REQ_MAX / 2) return -1;
    while ((size_t)(buf + len - r->body) < want) {
        const ssize_t n = recv(fd, buf + len, REQ_MAX - 1 - len, 0);
        if (n <= 0) return -1;
        len += (size_t)n;
        buf[len] = '\0';
    }
    r->body[want] = '\0';
    return 0;
}

static void serve(stub *s, int fd, FILE *out)
{
    static char buf[REQ_MAX];
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    buf[0] = '\0';
    req r;
    memset(&r, 0, sizeof r);
    if (read_req(fd, buf, &r)) return;
    ans a;
    cJSON *log = cJSON_CreateObject();
    cJSON_AddStringToObject(log, "method", r.method);
    cJSON_AddStringToObject(log, "path", r.path);
    route(s, &r, &a, log);
    char *line = cJSON_PrintUnformatted(log);
    if (line) fprintf(out, "%s\n", line), fflush(out);
    cJSON_free(line);
    cJSON_Delete(log);
    char head[256];
    const int n = snprintf(head, sizeof head,
                           "HTTP/1.1 %d Stub\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n",
                           a.status, a.type, strlen(a.body));
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) == n)
        send(fd, a.body, strlen(a.body), MSG_NOSIGNAL);
}

int main(int argc, char **argv)
{
    stub s = {.expires_s = 3600};
    const char *port_file = NULL, *outp = "-";
    long timeout_s = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port-file"))
            port_file = argv[i + 1];
        else if (!strcmp(argv[i], "--out"))
            outp = argv[i + 1];
        else if (!strcmp(argv[i], "--token"))
            s.token = argv[i + 1];
        else if (!strcmp(argv[i], "--expires"))
            s.expires_s = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--timeout"))
            timeout_s = strtol(argv[i + 1], NULL, 10);
        else
            break;
    }
    if (argc % 2 == 0 || timeout_s < 1 || timeout_s > 3600) {
        fprintf(stderr, "usage: awsstub [--port-file F] [--out F] [--token T] [--expires S] "
                        "[--timeout S]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl)) {
        fprintf(stderr, "awsstub: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        return 1;
    }
    FILE *out = strcmp(outp, "-") ? fopen(outp, "a") : stdout;
    FILE *pf = port_file ? fopen(port_file, "w") : NULL;
    if (!out || (port_file && (!pf || fprintf(pf, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(pf)))) {
        fprintf(stderr, "awsstub: cannot write %s\n", !out ? outp : port_file);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    const time_t end = time(NULL) + timeout_s;
    while (!stop && time(NULL) < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        const int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve(&s, c, out);
        close(c);
    }
    close(fd);
    if (out != stdout) fclose(out);
    return 0;
}
