/*
 * monitor_web.h - the web configuration of the scrape endpoint (`bitnet monitor
 * --web-config FILE`): TLS and HTTP basic auth, in the YAML format of Prometheus'
 * exporter-toolkit (web-config.yml), so that one file serves bitnet and the exporters:
 *
 *     tls_server_config:
 *       cert_file: server.crt        # PEM; relative names are relative to FILE's folder
 *       key_file: server.key         # PEM, not encrypted
 *     basic_auth_users:
 *       prometheus: $2y$10$...       # bcrypt ($2a$, $2b$, $2y$), as htpasswd -nB writes
 *
 * Any other key (client_auth_type, min_version, http_server_config, ...) is refused with
 * its name rather than ignored: a setting that looks applied and is not is worse than an
 * error.
 *
 * Usage:
 *
 *     mon_web w;
 *     if (mon_web_load(&w, path, err, sizeof err)) ...;   // err: "FILE:LINE: why"
 *     ... w.cert_pem, w.key_pem (NULL: plain HTTP), w.n_users (0: no auth) ...
 *     if (!mon_web_authorized(&w, authorization_header)) ...401...;
 *     mon_web_release(&w);
 *
 * Ownership: w owns every string in it. Not thread-safe: one thread checks (the HTTP one).
 */
#ifndef BITNET_APP_MONITOR_WEB_H
#define BITNET_APP_MONITOR_WEB_H

#include <stddef.h>

#define MON_WEB_FILE_MAX  (1u << 20) /* bytes of a web config, certificate or key file */
#define MON_WEB_USERS_MAX 64
#define MON_WEB_CACHE     16 /* credentials that passed bcrypt, remembered as SHA-256 */

typedef struct mon_web_user {
    char *name, *hash;
} mon_web_user;

typedef struct mon_web {
    char *cert_pem, *key_pem; /* NUL-terminated PEM text; NULL: no TLS */
    mon_web_user *users;
    size_t n_users;
    unsigned char ok[MON_WEB_CACHE][32]; /* SHA-256 of user, password and hash that matched */
    size_t n_ok, next_ok;
} mon_web;

/* Reads and checks the file (every hash must be bcrypt that crypt(3) takes; the certificate
 * and key must be readable PEM). 0, or -1 with one line in err. */
int mon_web_load(mon_web *w, const char *path, char *err, size_t errsz);
void mon_web_release(mon_web *w);
/* 1 when user and password match an entry of basic_auth_users (bcrypt, compared in
 * constant time; a pair that matched before is recognised by its SHA-256 without bcrypt),
 * else 0. With cached_only, no bcrypt runs: -1 when it would be needed. An unknown user costs
 * a bcrypt too, so that timing does not tell which users exist. */
int mon_web_check(mon_web *w, const char *user, const char *password, int cached_only);
/* The same for an Authorization header value ("Basic BASE64(user:password)"); NULL or a
 * malformed value is 0 at once. */
int mon_web_authorized(mon_web *w, const char *authorization, int cached_only);

#endif
