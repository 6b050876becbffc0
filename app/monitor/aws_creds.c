/* aws_creds.c - AWS credentials by the SDKs' chain: environment, shared files, web identity
 * (STS), container endpoint, instance metadata (IMDSv2); see aws_creds.h. */
#include "aws_creds.h"
#include "aws_creds_internal.h"
#include "common/json.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX  65536 /* bytes of an answer kept */
#define TOKEN_MAX 16384 /* bytes of a token file */

static const char *const source_names[] = {"environment", "shared files", "web identity",
                                           "container", "instance metadata"};

const char *bn_aws_source_name(bn_aws_source s)
{
    return (unsigned)s < 5 ? source_names[s] : "?";
}

static int set_why(char *why, size_t whysz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int set_why(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int copy(char *dst, size_t size, const char *s)
{
    const size_t n = strlen(s);
    if (n >= size) return -1;
    memcpy(dst, s, n + 1);
    return 0;
}

/* ---- the shared files ---------------------------------------------------------------------- */

static void trim(char *s)
{
    char *p = s + strspn(s, " \t");
    memmove(s, p, strlen(p) + 1);
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) s[--n] = '\0';
}

/* Reads key from [section] of an INI file into out. 1 found, 0 not there; *seen says whether
 * the section exists. */
static int ini_get(const char *path, const char *section, const char *key, char *out, size_t size,
                   int *seen)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int in = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        trim(line);
        if (line[0] == '#' || line[0] == ';' || !line[0]) continue;
        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (end) *end = '\0';
            trim(line + 1);
            in = !strcmp(line + 1, section);
            if (in && seen) *seen = 1;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!in || !eq) continue;
        *eq = '\0';
        trim(line);
        trim(eq + 1);
        if (!strcmp(line, key) && eq[1] && copy(out, size, eq + 1) == 0) found = 1;
    }
    fclose(f);
    return found;
}

static void aws_file(const char *var, const char *name, char *out, size_t size)
{
    const char *p = env(var);
    if (p) {
        snprintf(out, size, "%s", p);
        return;
    }
    const char *home = env("HOME");
    if (!home) {
        const struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "";
    }
    snprintf(out, size, "%s/.aws/%s", home, name);
}

/* The profile's files and section names. */
typedef struct profile {
    const char *name;
    char cred[1024], conf[1024], conf_section[160];
} profile;

static void profile_init(profile *p)
{
    p->name = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
    aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", p->cred, sizeof p->cred);
    aws_file("AWS_CONFIG_FILE", "config", p->conf, sizeof p->conf);
    snprintf(p->conf_section, sizeof p->conf_section,
             strcmp(p->name, "default") ? "profile %.128s" : "%.128s", p->name);
}

/* A key of the profile: the credentials file first, then the config file. */
static int profile_get(const profile *p, const char *key, char *out, size_t size, int *seen)
{
    return ini_get(p->cred, p->name, key, out, size, seen) ||
           ini_get(p->conf, p->conf_section, key, out, size, seen);
}

void bn_aws_region(const char *setting, char *out, size_t size)
{
    const char *r = setting && *setting ? setting : env("AWS_REGION");
    if (!r) r = env("AWS_DEFAULT_REGION");
    out[0] = '\0';
    if (r) {
        snprintf(out, size, "%s", r);
        return;
    }
    profile p;
    profile_init(&p);
    if (!ini_get(p.conf, p.conf_section, "region", out, size, NULL)) out[0] = '\0';
}

/* ---- picking the source --------------------------------------------------------------------- */

static int from_env(bn_aws_chain *c, char *why, size_t whysz)
{
    const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    const char *token = env("AWS_SESSION_TOKEN");
    if (!id != !secret)
        return set_why(why, whysz,
                       "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
    if (copy(c->cur.key_id, sizeof c->cur.key_id, id) ||
        copy(c->cur.secret, sizeof c->cur.secret, secret) ||
        copy(c->cur.token, sizeof c->cur.token, token ? token : ""))
        return set_why(why, whysz, "an AWS_* credential in the environment is too long");
    c->source = BN_AWS_SRC_ENV;
    return 0;
}

/* The STS endpoint for web identity: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the region's. */
static int sts_url(bn_aws_chain *c, const char *region, char *why, size_t whysz)
{
    const char *u = env("AWS_ENDPOINT_URL_STS");
    if (!u) u = env("AWS_ENDPOINT_URL");
    if (u)
        snprintf(c->url, sizeof c->url, "%s", u);
    else if (region && *region)
        snprintf(c->url, sizeof c->url, "https://sts.%s.amazonaws.com", region);
    else
        return set_why(why, whysz, "web identity: no region for the STS endpoint");
    if (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8))
        return set_why(why, whysz, "web identity: the STS endpoint '%.200s' is not an http(s) URL",
                       c->url);
    return 0;
}

static int web_identity(bn_aws_chain *c, const char *file, const char *role, const char *session,
                        const char *region, char *why, size_t whysz)
{
    if (!role)
        return set_why(why, whysz,
                       "web identity: a token file is given (%.300s) but no role (AWS_ROLE_ARN or "
                       "the profile's role_arn)",
                       file);
    if (access(file, R_OK) != 0)
        return set_why(why, whysz, "web identity: cannot read the token file %.300s", file);
    if (copy(c->token_file, sizeof c->token_file, file) ||
        copy(c->role_arn, sizeof c->role_arn, role))
        return set_why(why, whysz, "web identity: the token file name or role is too long");
    if (session)
        snprintf(c->session_name, sizeof c->session_name, "%s", session);
    else
        snprintf(c->session_name, sizeof c->session_name, "bitnet-%ld", (long)time(NULL));
    c->source = BN_AWS_SRC_WEB_IDENTITY;
    return sts_url(c, region, why, whysz);
}

/* 1: the profile gives credentials (c set), 0: it gives none, -1: it is unusable. */
static int from_files(bn_aws_chain *c, const char *region, char *why, size_t whysz)
{
    profile p;
    profile_init(&p);
    int seen = 0, id = 0, secret = 0;
    snprintf(c->profile, sizeof c->profile, "%s", p.name);
    /* keys from one file: the first that has the key id */
    if (ini_get(p.cred, p.name, "aws_access_key_id", c->cur.key_id, sizeof c->cur.key_id, &seen)) {
        id = 1;
        secret = ini_get(p.cred, p.name, "aws_secret_access_key", c->cur.secret,
                         sizeof c->cur.secret, NULL);
        ini_get(p.cred, p.name, "aws_session_token", c->cur.token, sizeof c->cur.token, NULL);
    } else if (ini_get(p.conf, p.conf_section, "aws_access_key_id", c->cur.key_id,
                       sizeof c->cur.key_id, &seen)) {
        id = 1;
        secret = ini_get(p.conf, p.conf_section, "aws_secret_access_key", c->cur.secret,
                         sizeof c->cur.secret, NULL);
        ini_get(p.conf, p.conf_section, "aws_session_token", c->cur.token, sizeof c->cur.token,
                NULL);
    }
    if (id && !secret)
        return set_why(why, whysz, "profile %s has aws_access_key_id but no aws_secret_access_key",
                       p.name);
    if (id) {
        c->source = BN_AWS_SRC_FILES;
        return 1;
    }
    char file[1024], role[256], session[128], other[64];
    if (profile_get(&p, "web_identity_token_file", file, sizeof file, &seen)) {
        const int has_role = profile_get(&p, "role_arn", role, sizeof role, NULL);
        const int has_session = profile_get(&p, "role_session_name", session, sizeof session, NULL);
        return web_identity(c, file, has_role ? role : NULL, has_session ? session : NULL, region,
                            why, whysz)
                       ? -1
                       : 1;
    }
    static const char *const unsupported[] = {"credential_process", "source_profile",
                                              "credential_source",  "sso_session",
                                              "sso_start_url",      "login_session"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (profile_get(&p, unsupported[i], other, sizeof other, &seen))
            return set_why(why, whysz,
                           "profile %s uses %s, which bitnet does not support (give it keys or "
                           "role_arn with web_identity_token_file)",
                           p.name, unsupported[i]);
    if (env("AWS_PROFILE") && !seen)
        return set_why(why, whysz, "profile %s (AWS_PROFILE) is in neither %s nor %s", p.name,
                       p.cred, p.conf);
    return 0;
}

static int allowed_container_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || a == 0xA9FEAA02u /* 169.254.170.2 */ ||
               a == 0xA9FEAA17u /* 169.254.170.23 */;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        struct in6_addr eks;
        inet_pton(AF_INET6, "fd00:ec2::23", &eks);
        return IN6_IS_ADDR_LOOPBACK(a) || !memcmp(a, &eks, sizeof eks);
    }
    return 0;
}

/* A full URI must be https, or on a host that resolves only to allowed addresses. */
static int check_full_uri(const char *uri, char *why, size_t whysz)
{
    if (!strncmp(uri, "https://", 8)) return 0;
    if (strncmp(uri, "http://", 7))
        return set_why(why, whysz, "AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL");
    CURLU *u = curl_url();
    char *host = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, uri, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
    char h[256] = "";
    if (ok) snprintf(h, sizeof h, "%s", host[0] == '[' ? host + 1 : host);
    if (ok && h[0] && h[strlen(h) - 1] == ']') h[strlen(h) - 1] = '\0';
    curl_free(host);
    curl_url_cleanup(u);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    ok = ok && getaddrinfo(h, NULL, &hints, &ai) == 0;
    for (const struct addrinfo *p = ai; ok && p; p = p->ai_next)
        ok = allowed_container_addr(p->ai_addr);
    if (ai) freeaddrinfo(ai);
    if (!ok)
        return set_why(
                why, whysz,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is allowed only to loopback, "
                "169.254.170.2, 169.254.170.23 or fd00:ec2::23 (%.200s)",
                uri);
    return 0;
}

static int from_container(bn_aws_chain *c, char *why, size_t whysz)
{
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (rel) {
        if (rel[0] != '/')
            return set_why(why, whysz, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must begin with /");
        snprintf(c->url, sizeof c->url, "http://169.254.170.2%s", rel);
    } else {
        if (check_full_uri(full, why, whysz)) return -1;
        snprintf(c->url, sizeof c->url, "%s", full);
    }
    const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (file && access(file, R_OK) != 0)
        return set_why(why, whysz,
                       "container: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", file);
    if ((file && copy(c->auth_file, sizeof c->auth_file, file)) ||
        (!file && tok && (copy(c->auth, sizeof c->auth, tok) || strpbrk(tok, "\r\n"))))
        return set_why(why, whysz,
                       "container: the authorization token is too long or has a newline");
    c->source = BN_AWS_SRC_CONTAINER;
    return 0;
}

static void from_imds(bn_aws_chain *c)
{
    const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    if (ep)
        snprintf(c->url, sizeof c->url, "%s", ep);
    else if (mode && !strcasecmp(mode, "IPv6"))
        snprintf(c->url, sizeof c->url, "http://[fd00:ec2::254]");
    else
        snprintf(c->url, sizeof c->url, "http://169.254.169.254");
    size_t n = strlen(c->url);
    while (n > 8 && c->url[n - 1] == '/') c->url[--n] = '\0';
    c->source = BN_AWS_SRC_IMDS;
}

int bn_aws_chain_init(bn_aws_chain *c, const char *region, char *why, size_t whysz)
{
    memset(c, 0, sizeof *c);
    if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) return from_env(c, why, whysz);
    const int files = from_files(c, region, why, whysz);
    if (files) return files < 0 ? -1 : 0;
    memset(&c->cur, 0, sizeof c->cur);
    if (env("AWS_WEB_IDENTITY_TOKEN_FILE"))
        return web_identity(c, env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"),
                            env("AWS_ROLE_SESSION_NAME"), region, why, whysz);
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        return from_container(c, why, whysz);
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    if (off && !strcasecmp(off, "true"))
        return set_why(why, whysz,
                       "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID, "
                       "AWS_SECRET_ACCESS_KEY), none for profile %s in the shared files, no web "
                       "identity (AWS_WEB_IDENTITY_TOKEN_FILE), no container credentials "
                       "(AWS_CONTAINER_CREDENTIALS_*_URI), and instance metadata is off "
                       "(AWS_EC2_METADATA_DISABLED)",
                       c->profile);
    from_imds(c);
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct answer {
    char *text;
    size_t len;
    long status;
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    const size_t bytes = size * n, room = BODY_MAX - 1 - a->len;
    const size_t k = bytes < room ? bytes : room;
    memcpy(a->text + a->len, p, k);
    a->len += k;
    a->text[a->len] = '\0';
    return bytes;
}

/* One request; the answer's status and body (NUL-terminated, at most BODY_MAX - 1 bytes) in a.
 * 0, or -1 with why when no answer came. headers may be NULL; body NULL: none. */
static int request(const char *method, const char *url, const char *const *headers,
                   const char *body, answer *a, char *why, size_t whysz)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    a->len = 0;
    a->status = 0;
    a->text[0] = '\0';
    if (!h) return set_why(why, whysz, "cannot start libcurl");
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *t = curl_slist_append(hl, headers[i]);
        if (t) hl = t;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 2L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, BN_AWS_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (strcmp(method, body ? "POST" : "GET")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    const CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK) return set_why(why, whysz, "%s: %s", url, curl_easy_strerror(cc));
    return 0;
}

/* The answer's first line, for an error message. */
static const char *excerpt(answer *a)
{
    a->text[strcspn(a->text, "\r\n")] = '\0';
    if (strlen(a->text) > 160) a->text[160] = '\0';
    return a->text;
}

/* A token file's content, trimmed. 0, or -1 with why. */
static int read_token(const char *path, char *out, size_t size, char *why, size_t whysz)
{
    FILE *f = fopen(path, "rb");
    if (!f) return set_why(why, whysz, "cannot read %s", path);
    const size_t n = fread(out, 1, size - 1, f);
    const int big = !feof(f);
    fclose(f);
    out[n] = '\0';
    trim(out);
    if (big || !out[0]) return set_why(why, whysz, "%s is empty or too large", path);
    return 0;
}

/* ---- the answers ------------------------------------------------------------------------------
 */

double bn__aws_parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
        return -1;
    const char *rest = s + used;
    if (*rest == '.') rest += 1 + strspn(rest + 1, "0123456789");
    if (strcmp(rest, "Z") && strcmp(rest, "+00:00")) return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (double)t;
}

static int take(char *dst, size_t size, const char *v, const char *name, char *why, size_t whysz)
{
    if (!v || !*v || copy(dst, size, v) || strpbrk(v, "\r\n"))
        return set_why(why, whysz, "%s missing or malformed in the answer", name);
    return 0;
}

static int take_expiration(bn_aws_creds *c, const char *v, char *why, size_t whysz)
{
    c->expires = 0;
    if (!v) return 0;
    c->expires = bn__aws_parse_time(v);
    return c->expires < 0 ? set_why(why, whysz, "Expiration '%.40s' does not parse", v) : 0;
}

int bn__aws_parse_json(const char *text, bn_aws_creds *c, char *why, size_t whysz)
{
    cJSON *j = cJSON_Parse(text);
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j))
        set_why(why, whysz, "the answer is not a JSON object");
    else if (cm_json_str(j, "Code", NULL) && strcmp(cm_json_str(j, "Code", NULL), "Success"))
        set_why(why, whysz, "Code %.64s: %.160s", cm_json_str(j, "Code", NULL),
                cm_json_str(j, "Message", NULL) ? cm_json_str(j, "Message", NULL) : "");
    else if (!take(c->key_id, sizeof c->key_id, cm_json_str(j, "AccessKeyId", NULL), "AccessKeyId",
                   why, whysz) &&
             !take(c->secret, sizeof c->secret, cm_json_str(j, "SecretAccessKey", NULL),
                   "SecretAccessKey", why, whysz) &&
             !(cm_json_str(j, "Token", NULL) &&
               take(c->token, sizeof c->token, cm_json_str(j, "Token", NULL), "Token", why,
                    whysz)) &&
             !take_expiration(c, cm_json_str(j, "Expiration", NULL), why, whysz))
        rc = 0;
    cJSON_Delete(j);
    return rc;
}

/* The text of the first <tag>...</tag> in xml with the five XML entities decoded; NULL. */
static const char *xml_text(const char *xml, const char *tag, char *out, size_t size)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(xml, open), *b = a ? strstr(a, close) : NULL;
    if (!b) return NULL;
    static const char *const ent[][2] = {
            {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
    size_t n = 0;
    for (const char *p = a + strlen(open); p < b && n + 1 < size;) {
        size_t i = 0, k = 0;
        while (i < 5 && strncmp(p, ent[i][0], (k = strlen(ent[i][0])))) i++;
        out[n++] = i < 5 ? ent[i][1][0] : *p;
        p += i < 5 ? k : 1;
    }
    out[n] = '\0';
    return out;
}

int bn__aws_parse_sts(const char *text, bn_aws_creds *c, char *why, size_t whysz)
{
    char *v = malloc(4096);
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!v) return set_why(why, whysz, "out of memory");
    char code[128] = "";
    if (xml_text(text, "Code", code, sizeof code))
        set_why(why, whysz, "%s: %.200s", code,
                xml_text(text, "Message", v, 4096) ? v : "(no message)");
    else if (!strstr(text, "<AssumeRoleWithWebIdentityResult>"))
        set_why(why, whysz, "not an AssumeRoleWithWebIdentity answer");
    else if (!take(c->key_id, sizeof c->key_id, xml_text(text, "AccessKeyId", v, 4096),
                   "AccessKeyId", why, whysz) &&
             !take(c->secret, sizeof c->secret, xml_text(text, "SecretAccessKey", v, 4096),
                   "SecretAccessKey", why, whysz) &&
             !take(c->token, sizeof c->token, xml_text(text, "SessionToken", v, 4096),
                   "SessionToken", why, whysz) &&
             !take_expiration(c, xml_text(text, "Expiration", v, 4096), why, whysz))
        rc = 0;
    free(v);
    return rc;
}

/* ---- the fetches ------------------------------------------------------------------------------
 */

static int fetch_sts(bn_aws_chain *c, answer *a, bn_aws_creds *out, char *why, size_t whysz)
{
    char *tok = malloc(TOKEN_MAX), *body = NULL;
    int rc = -1;
    if (!tok) return set_why(why, whysz, "out of memory");
    if (read_token(c->token_file, tok, TOKEN_MAX, why, whysz) == 0) {
        char *t = curl_easy_escape(NULL, tok, 0), *r = curl_easy_escape(NULL, c->role_arn, 0);
        char *s = curl_easy_escape(NULL, c->session_name, 0);
        const size_t n = (t ? strlen(t) : 0) + (r ? strlen(r) : 0) + (s ? strlen(s) : 0) + 256;
        if (t && r && s && (body = malloc(n)))
            snprintf(body, n,
                     "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&"
                     "RoleSessionName=%s&WebIdentityToken=%s",
                     r, s, t);
        curl_free(t), curl_free(r), curl_free(s);
        static const char *const hdr[] = {
                "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
                "Accept: text/xml", NULL};
        if (!body)
            set_why(why, whysz, "out of memory");
        else if (request("POST", c->url, hdr, body, a, why, whysz) == 0) {
            rc = bn__aws_parse_sts(a->text, out, why, whysz);
            if (rc == 0 && a->status != 200)
                rc = set_why(why, whysz, "HTTP %ld", a->status);
            else if (rc && a->status != 200 && !strstr(a->text, "<Code>"))
                set_why(why, whysz, "HTTP %ld: %s", a->status, excerpt(a));
        }
    }
    free(body);
    free(tok);
    return rc;
}

static int fetch_container(bn_aws_chain *c, answer *a, bn_aws_creds *out, char *why, size_t whysz)
{
    char auth[TOKEN_MAX + 32], tok[TOKEN_MAX];
    const char *hdr[] = {"Accept: application/json", NULL, NULL};
    if (c->auth_file[0]) {
        if (read_token(c->auth_file, tok, sizeof tok, why, whysz)) return -1;
        if (strpbrk(tok, "\r\n")) return set_why(why, whysz, "the token file has a newline in it");
        snprintf(auth, sizeof auth, "Authorization: %s", tok);
        hdr[1] = auth;
    } else if (c->auth[0]) {
        snprintf(auth, sizeof auth, "Authorization: %s", c->auth);
        hdr[1] = auth;
    }
    if (request("GET", c->url, hdr, NULL, a, why, whysz)) return -1;
    if (a->status != 200) return set_why(why, whysz, "HTTP %ld: %s", a->status, excerpt(a));
    return bn__aws_parse_json(a->text, out, why, whysz);
}

static int fetch_imds(bn_aws_chain *c, answer *a, bn_aws_creds *out, char *why, size_t whysz)
{
    char url[1400], session[1100], role[256];
    static const char *const put_hdr[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    snprintf(url, sizeof url, "%s/latest/api/token", c->url);
    if (request("PUT", url, put_hdr, "", a, why, whysz)) return -1;
    if (a->status != 200 || !a->len || a->len >= 1000)
        return set_why(why, whysz, "no IMDSv2 session token (PUT /latest/api/token: HTTP %ld)",
                       a->status);
    trim(a->text);
    snprintf(session, sizeof session, "X-aws-ec2-metadata-token: %s", a->text);
    const char *hdr[] = {session, NULL};
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/", c->url);
    if (request("GET", url, hdr, NULL, a, why, whysz)) return -1;
    a->text[strcspn(a->text, "\r\n")] = '\0';
    trim(a->text);
    if (a->status != 200 || !a->text[0] || strlen(a->text) >= sizeof role || strchr(a->text, '/'))
        return set_why(why, whysz, "no instance role (HTTP %ld): is an IAM role attached?",
                       a->status);
    snprintf(role, sizeof role, "%s", a->text);
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/%s", c->url, role);
    if (request("GET", url, hdr, NULL, a, why, whysz)) return -1;
    if (a->status != 200) return set_why(why, whysz, "role %s: HTTP %ld", role, a->status);
    return bn__aws_parse_json(a->text, out, why, whysz);
}

static int fetch(bn_aws_chain *c, bn_aws_creds *out, char *why, size_t whysz)
{
    answer a = {.text = malloc(BODY_MAX)};
    int rc = -1;
    if (!a.text) return set_why(why, whysz, "out of memory");
    c->fetches++;
    if (c->source == BN_AWS_SRC_WEB_IDENTITY)
        rc = fetch_sts(c, &a, out, why, whysz);
    else if (c->source == BN_AWS_SRC_CONTAINER)
        rc = fetch_container(c, &a, out, why, whysz);
    else if (c->source == BN_AWS_SRC_IMDS)
        rc = fetch_imds(c, &a, out, why, whysz);
    free(a.text);
    return rc;
}

int bn_aws_chain_get(bn_aws_chain *c, double now, bn_aws_creds *out, char *why, size_t whysz)
{
    const int fixed = c->source == BN_AWS_SRC_ENV || c->source == BN_AWS_SRC_FILES;
    const int fresh =
            c->cur.key_id[0] && (c->cur.expires == 0 || now < c->cur.expires - BN_AWS_REFRESH_S);
    if (!fixed && !fresh) {
        bn_aws_creds got;
        char w[400];
        if (fetch(c, &got, w, sizeof w) == 0)
            c->cur = got;
        else if (!c->cur.key_id[0] || now >= c->cur.expires) /* else the old ones serve */
            return set_why(why, whysz, "AWS credentials from %s (%.200s): %s%s",
                           bn_aws_source_name(c->source), c->url, w,
                           c->source == BN_AWS_SRC_IMDS
                                   ? " (the last source: no keys, profile, web identity or "
                                     "container is set up)"
                                   : "");
    }
    *out = c->cur;
    return 0;
}
