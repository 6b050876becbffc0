/* monitor_web.c - the web configuration of the scrape endpoint (TLS, basic auth) in the
 * exporter-toolkit format, read with libyaml; passwords checked with crypt(3) (libxcrypt's
 * bcrypt). See monitor_web.h. */
#include "monitor_web.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* The whole file (at most MON_WEB_FILE_MAX bytes), NUL-terminated; NULL with err. */
static char *read_small(const char *path, size_t *len, char *err, size_t errsz)
{
    /* O_NONBLOCK: a FIFO named by mistake must not hang the start */
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    FILE *f = NULL;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode) || !(f = fdopen(fd, "rb"))) {
        snprintf(err, errsz, "%s: %s", path,
                 fd >= 0 && !f ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    char *buf = malloc(MON_WEB_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, MON_WEB_FILE_MAX + 1, f) : 0;
    const int bad = !buf || ferror(f) || n > MON_WEB_FILE_MAX;
    if (bad)
        snprintf(err, errsz, "%s: %s", path,
                 !buf        ? "out of memory"
                 : ferror(f) ? strerror(errno)
                             : "larger than 1 MiB");
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* ---- the YAML document -------------------------------------------------------------------- */

typedef struct web_doc {
    const char *path;
    char dir[4096]; /* the file's folder, for relative names */
    yaml_document_t doc;
    char *err;
    size_t errsz;
} web_doc;

static int doc_fail(web_doc *d, const yaml_node_t *n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int doc_fail(web_doc *d, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(d->err, d->errsz, "%s:%lu: %s", d->path, n ? (unsigned long)n->start_mark.line + 1 : 1,
             msg);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A file named in the config: relative to the config's folder. */
static char *read_named(web_doc *d, const yaml_node_t *n, const char *key)
{
    const char *v = scalar(n);
    if (!v || !*v) {
        doc_fail(d, n, "%s: expected a file name", key);
        return NULL;
    }
    char path[8192], why[1024];
    snprintf(path, sizeof path, "%s%s", v[0] == '/' ? "" : d->dir, v);
    char *text = read_small(path, NULL, why, sizeof why);
    if (!text) doc_fail(d, n, "%s", why);
    return text;
}

/* -1 with the message when a key of the mapping comes twice (YAML leaves it to us), else 0. */
static int no_dup_keys(web_doc *d, const yaml_node_t *map, const char *what)
{
    const yaml_node_pair_t *a = map->data.mapping.pairs.start, *end = map->data.mapping.pairs.top;
    for (; a < end; a++)
        for (const yaml_node_pair_t *b = a + 1; b < end; b++) {
            const yaml_node_t *kb = yaml_document_get_node(&d->doc, b->key);
            const char *x = scalar(yaml_document_get_node(&d->doc, a->key)), *y = scalar(kb);
            if (x && y && !strcmp(x, y)) return doc_fail(d, kb, "%s%s: given twice", what, y);
        }
    return 0;
}

static int load_tls(web_doc *d, mon_web *w, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return doc_fail(d, map, "%s: expected a mapping", "tls_server_config");
    if (no_dup_keys(d, map, "tls_server_config.")) return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(&d->doc, p->key),
                          *v = yaml_document_get_node(&d->doc, p->value);
        const char *key = scalar(k);
        char **slot = !key                        ? NULL
                      : !strcmp(key, "cert_file") ? &w->cert_pem
                      : !strcmp(key, "key_file")  ? &w->key_pem
                                                  : NULL;
        if (!slot)
            return doc_fail(d, k,
                            "tls_server_config.%s: not supported (cert_file and key_file are)",
                            key ? key : "?");
        free(*slot);
        if (!(*slot = read_named(d, v, key))) return -1;
        if (!strstr(*slot, "-----BEGIN ")) return doc_fail(d, v, "%s: not a PEM file", key);
    }
    if (!w->cert_pem || !w->key_pem)
        return doc_fail(d, map, "%s: needs both cert_file and key_file", "tls_server_config");
    return 0;
}

/* A bcrypt hash that crypt(3) takes: $2a$, $2b$ or $2y$, cost and salt well-formed. */
static int bcrypt_hash_ok(const char *h)
{
    if (strncmp(h, "$2a$", 4) && strncmp(h, "$2b$", 4) && strncmp(h, "$2y$", 4)) return 0;
    const int c = crypt_checksalt(h);
    return (c == CRYPT_SALT_OK || c == CRYPT_SALT_METHOD_LEGACY) && strlen(h) == 60;
}

static int load_users(web_doc *d, mon_web *w, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return doc_fail(d, map, "%s: expected a mapping of user: bcrypt hash", "basic_auth_users");
    if (no_dup_keys(d, map, "basic_auth_users.")) return -1;
    const size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > MON_WEB_USERS_MAX)
        return doc_fail(d, map, "%s: more than 64 users", "basic_auth_users");
    if (!(w->users = calloc(n ? n : 1, sizeof *w->users)))
        return doc_fail(d, map, "%s", "out of memory");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(&d->doc, p->key),
                          *v = yaml_document_get_node(&d->doc, p->value);
        const char *user = scalar(k), *hash = scalar(v);
        if (!user || !*user || strchr(user, ':'))
            return doc_fail(d, k, "%s: a user name is a non-empty string without ':'",
                            "basic_auth_users");
        if (!hash || !bcrypt_hash_ok(hash))
            return doc_fail(d, v,
                            "basic_auth_users.%s: expected a bcrypt hash ($2a$, $2b$ or $2y$, as "
                            "htpasswd -nB writes)",
                            user);
        mon_web_user *u = &w->users[w->n_users++];
        if (!(u->name = strdup(user)) || !(u->hash = strdup(hash)))
            return doc_fail(d, k, "%s", "out of memory");
    }
    return 0;
}

static int load_root(web_doc *d, mon_web *w)
{
    const yaml_node_t *root = yaml_document_get_root_node(&d->doc);
    if (!root) return 0; /* an empty file: plain HTTP, no auth */
    if (root->type != YAML_MAPPING_NODE)
        return doc_fail(d, root, "%s", "expected a mapping (tls_server_config, basic_auth_users)");
    if (no_dup_keys(d, root, "")) return -1;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(&d->doc, p->key),
                          *v = yaml_document_get_node(&d->doc, p->value);
        const char *key = scalar(k);
        const int rc = !key                                ? doc_fail(d, k, "%s", "expected a key")
                       : !strcmp(key, "tls_server_config") ? load_tls(d, w, v)
                       : !strcmp(key, "basic_auth_users")  ? load_users(d, w, v)
                                                           : doc_fail(d, k,
                                                                      "%s: not supported "
                                                                       "(tls_server_config and "
                                                                       "basic_auth_users are)",
                                                                      key);
        if (rc) return -1;
    }
    return 0;
}

int mon_web_load(mon_web *w, const char *path, char *err, size_t errsz)
{
    memset(w, 0, sizeof *w);
    size_t len;
    char *text = read_small(path, &len, err, errsz);
    if (!text) return -1;
    web_doc d = {.path = path, .err = err, .errsz = errsz};
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(d.dir, sizeof d.dir, "%.*s/", (int)(slash - path), path);
    yaml_parser_t p;
    int rc = -1;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errsz, "%s: out of memory", path);
        free(text);
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d.doc)) {
        snprintf(err, errsz, "%s:%lu: %s", path, (unsigned long)p.problem_mark.line + 1,
                 p.problem ? p.problem : "not YAML");
    } else {
        rc = load_root(&d, w);
        yaml_document_delete(&d.doc);
    }
    yaml_parser_delete(&p);
    free(text);
    if (rc) mon_web_release(w);
    return rc;
}

void mon_web_release(mon_web *w)
{
    free(w->cert_pem);
    free(w->key_pem);
    for (size_t i = 0; i < w->n_users; i++) {
        free(w->users[i].name);
        free(w->users[i].hash);
    }
    free(w->users);
    memset(w, 0, sizeof *w);
}

/* ---- checking credentials ------------------------------------------------------------------ */

static void pair_digest(const char *user, const char *password, const char *hash,
                        unsigned char out[32])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, strlen(user) + 1, (const uint8_t *)user);
    sha256_update(&c, strlen(password) + 1, (const uint8_t *)password);
    sha256_update(&c, strlen(hash), (const uint8_t *)hash);
    sha256_digest(&c, 32, out);
}

int mon_web_check(mon_web *w, const char *user, const char *password, int cached_only)
{
    const mon_web_user *u = NULL;
    for (size_t i = 0; i < w->n_users; i++)
        if (!strcmp(w->users[i].name, user)) u = &w->users[i];
    const char *hash = u ? u->hash : w->n_users ? w->users[0].hash : NULL;
    if (!hash) return 0;
    unsigned char dg[32];
    pair_digest(user, password, hash, dg);
    for (size_t i = 0; u && i < w->n_ok; i++)
        if (memeql_sec(w->ok[i], dg, 32)) return 1;
    if (cached_only) return -1;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    const char *out = cd ? crypt_rn(password, hash, cd, (int)sizeof *cd) : NULL;
    const int ok = u && out && strlen(out) == strlen(hash) && memeql_sec(out, hash, strlen(hash));
    free(cd);
    if (ok) {
        memcpy(w->ok[w->next_ok], dg, 32);
        w->next_ok = (w->next_ok + 1) % MON_WEB_CACHE;
        if (w->n_ok < MON_WEB_CACHE) w->n_ok++;
    }
    return ok;
}

int mon_web_authorized(mon_web *w, const char *authorization, int cached_only)
{
    if (!authorization || strncasecmp(authorization, "Basic ", 6)) return 0;
    const char *b64 = authorization + 6;
    while (*b64 == ' ') b64++;
    const size_t n = strlen(b64);
    if (n == 0 || n > 1024) return 0;
    char plain[BASE64_DECODE_LENGTH(1024) + 1];
    size_t len = sizeof plain - 1;
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &len, (uint8_t *)plain, n, b64) || !base64_decode_final(&ctx))
        return 0;
    plain[len] = '\0';
    char *colon = memchr(plain, ':', len);
    if (!colon || strlen(plain) != len) return 0; /* no NUL inside */
    *colon = '\0';
    const int ok = mon_web_check(w, plain, colon + 1, cached_only);
    explicit_bzero(plain, sizeof plain);
    return ok;
}
