/* tenant_keys.c - API keys: creation from getrandom(2), revocation, listing, and the lookup the
 * server runs on every request.
 *
 * A key is "bnk_" + 32 random bytes in base64url (43 characters). The store keeps only the
 * SHA-256 of the key string. A fast hash is right here: a key carries 256 bits of entropy, so
 * nobody can search the key space from a stolen hash, and a slow password hash (argon2,
 * bcrypt) would only cost every request time. */
#include "db_int.h"

#include <errno.h>
#include <inttypes.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "bitnet/db_tenants.h"

#define KEY_TAG       "bnk_"
#define KEY_TAG_LEN   4
#define KEY_RAW_BYTES 32
#define KEY_SHOWN     12               /* the prefix kept and shown: "bnk_" + 8 characters */
#define LAST_USED_MS  ((int64_t)60000) /* last use is written at most this often per key */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const char *const scope_names[] = {"inference", "usage", "admin"};

int bn_scopes_parse(const char *s, unsigned *scopes)
{
    unsigned v = 0;
    if (!s || !*s) return -1;
    while (*s) {
        const char *comma = strchr(s, ',');
        const size_t n = comma ? (size_t)(comma - s) : strlen(s);
        unsigned bit = 0;
        for (unsigned i = 0; i < 3; i++)
            if (strlen(scope_names[i]) == n && !strncmp(s, scope_names[i], n)) bit = 1u << i;
        if (!bit) return -1;
        v |= bit;
        s += n + (comma ? 1 : 0);
        if (comma && !*s) return -1;
    }
    *scopes = v;
    return 0;
}

const char *bn_scopes_str(unsigned scopes, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 3; i++)
        if (scopes & (1u << i) && o < size)
            o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? "," : "", scope_names[i]);
    return buf;
}

const char *bn_key_reason_str(bn_key_reason r)
{
    switch (r) {
    case BN_KEY_OK:
        return "ok";
    case BN_KEY_MALFORMED:
        return "malformed";
    case BN_KEY_UNKNOWN:
        return "unknown";
    case BN_KEY_REVOKED:
        return "revoked";
    case BN_KEY_EXPIRED:
        return "expired";
    case BN_KEY_SUSPENDED:
        return "tenant suspended";
    }
    return "unknown";
}

static void key_hash(const char *key, uint8_t d[SHA256_DIGEST_SIZE])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, strlen(key), (const uint8_t *)key);
    sha256_digest(&c, SHA256_DIGEST_SIZE, d);
}

static int key_well_formed(const char *k)
{
    if (!k || strlen(k) != BN_KEY_STR_LEN || strncmp(k, KEY_TAG, KEY_TAG_LEN)) return 0;
    for (k += KEY_TAG_LEN; *k; k++)
        if (!strchr(b64url, *k)) return 0;
    return 1;
}

/* base64url without padding of n bytes into out (4 * ceil(n / 3) + 1 bytes at most). */
static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                           (i + 2 < n ? in[i + 2] : 0);
        const size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t j = 0; j < chars; j++) out[o++] = b64url[(v >> (18 - 6 * j)) & 63];
    }
    out[o] = '\0';
}

static bn_status random_key(bn_db *db, char key[BN_KEY_STR_MAX])
{
    uint8_t raw[KEY_RAW_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return bn__db_err(db, BN_ERR_IO, "getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    memcpy(key, KEY_TAG, KEY_TAG_LEN);
    b64url_encode(raw, sizeof raw, key + KEY_TAG_LEN);
    memset(raw, 0, sizeof raw);
    return BN_OK;
}

static bn_status tenant_status(bn_db *db, int64_t tenant_id, char status[16])
{
    char ref[32];
    bn_tenant t;
    snprintf(ref, sizeof ref, "%" PRId64, tenant_id);
    bn_status s = bn_db_tenant_get(db, ref, &t);
    if (s == BN_OK) memcpy(status, t.status, 16);
    return s;
}

static bn_status insert_key(bn_db *db, int64_t tenant_id, const char *key, unsigned scopes,
                            int64_t expires_ms, int64_t *id)
{
    uint8_t h[SHA256_DIGEST_SIZE];
    key_hash(key, h);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "INSERT INTO api_keys (tenant_id, prefix, hash, scopes, "
                                 "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_text(st, 2, key, KEY_SHOWN, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, h, sizeof h, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, scopes);
    sqlite3_bind_int64(st, 5, bn__db_now_ms(db));
    if (expires_ms) sqlite3_bind_int64(st, 6, expires_ms);
    s = bn__db_step_done(db, st, "adding a key");
    if (s == BN_OK) *id = sqlite3_last_insert_rowid(db->sql);
    return s;
}

static bn_status audit_key(bn_db *db, const char *actor, const char *action, int64_t id,
                           const char *details)
{
    char target[48];
    snprintf(target, sizeof target, "key:%" PRId64, id);
    return bn__db_audit_add(db, actor, action, target, details);
}

/* The key k on a PostgreSQL store: its hash and the prefix shown. */
static bn_status create_pg(bn_db *db, const char *actor, int64_t tenant_id, const char *k,
                           unsigned scopes, int64_t expires_ms, const char *details, int64_t *id)
{
    uint8_t h[SHA256_DIGEST_SIZE];
    char prefix[KEY_SHOWN + 1];
    key_hash(k, h);
    memcpy(prefix, k, KEY_SHOWN);
    prefix[KEY_SHOWN] = '\0';
    return bn__pg_key_create(db, actor, tenant_id, prefix, h, scopes, expires_ms, details, id);
}

bn_status bn_db_key_create(bn_db *db, const char *actor, int64_t tenant_id, unsigned scopes,
                           int64_t expires_ms, char key[BN_KEY_STR_MAX], int64_t *id)
{
    const char *what = "creating a key";
    if (!scopes || scopes & ~(unsigned)BN_SCOPE_ALL_)
        return bn__db_err(db, BN_ERR_INVALID, "a key needs one or more scopes");
    if (expires_ms && expires_ms <= bn__db_now_ms(db))
        return bn__db_err(db, BN_ERR_INVALID, "the expiry is in the past");
    char status[16], k[BN_KEY_STR_MAX], d[160], sc[32];
    int64_t kid = 0;
    bn_status s = random_key(db, k);
    if (s != BN_OK) return s;
    snprintf(d, sizeof d,
             "{\"tenant\":%" PRId64 ",\"prefix\":\"%.*s\",\"scopes\":\"%s\",\"expires_ms\":%" PRId64
             "}",
             tenant_id, KEY_SHOWN, k, bn_scopes_str(scopes, sc, sizeof sc), expires_ms);
    if (db->pg) {
        s = create_pg(db, actor, tenant_id, k, scopes, expires_ms, d, &kid);
    } else if ((s = bn__db_begin(db, what)) == BN_OK) {
        s = tenant_status(db, tenant_id, status);
        if (s == BN_OK && strcmp(status, "active"))
            s = bn__db_err(db, BN_ERR_INVALID, "tenant %" PRId64 " is %s", tenant_id, status);
        if (s == BN_OK) s = insert_key(db, tenant_id, k, scopes, expires_ms, &kid);
        if (s == BN_OK) s = audit_key(db, actor, "key.create", kid, d);
        s = bn__db_end(db, s, what);
    }
    if (s == BN_OK) {
        memcpy(key, k, sizeof k);
        if (id) *id = kid;
    }
    memset(k, 0, sizeof k);
    return s;
}

bn_status bn_db_key_revoke(bn_db *db, const char *actor, int64_t id)
{
    const char *what = "revoking a key";
    if (db->pg) return bn__pg_key_revoke(db, actor, id);
    bn_status s = bn__db_begin(db, what);
    if (s != BN_OK) return s;
    sqlite3_stmt *st;
    s = bn__db_prepare(
            db, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", &st);
    if (s == BN_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, bn__db_now_ms(db));
        s = bn__db_step_done(db, st, what);
    }
    if (s == BN_OK && sqlite3_changes(db->sql) == 0)
        s = bn__db_err(db, BN_ERR_NOT_FOUND, "no key %" PRId64 " that is not revoked", id);
    if (s == BN_OK) s = audit_key(db, actor, "key.revoke", id, NULL);
    return bn__db_end(db, s, what);
}

static int64_t col_i64(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

bn_status bn_db_key_list(bn_db *db, int64_t tenant_id, int (*fn)(void *ud, const bn_api_key *k),
                         void *ud)
{
    if (db->pg) return bn__pg_key_list(db, tenant_id, fn, ud);
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare(db,
                                 "SELECT id, tenant_id, prefix, scopes, created_at, expires_at, "
                                 "revoked_at, last_used_at FROM api_keys "
                                 "WHERE ?1 = 0 OR tenant_id = ?1 ORDER BY id",
                                 &st);
    if (s != BN_OK) return s;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bn_api_key k = {.id = col_i64(st, 0),
                        .tenant_id = col_i64(st, 1),
                        .scopes = (unsigned)col_i64(st, 3),
                        .created_ms = col_i64(st, 4),
                        .expires_ms = col_i64(st, 5),
                        .revoked_ms = col_i64(st, 6),
                        .last_used_ms = col_i64(st, 7)};
        const char *p = (const char *)sqlite3_column_text(st, 2);
        snprintf(k.prefix, sizeof k.prefix, "%s", p ? p : "");
        if (fn(ud, &k)) {
            sqlite3_finalize(st);
            return BN_ERR_CANCELLED;
        }
    }
    if (rc != SQLITE_DONE) s = bn__db_sqlerr(db, rc, "listing keys");
    sqlite3_finalize(st);
    return s;
}

/* Whether a and b (n bytes) are equal, in time that does not depend on where they differ. */
static int equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
    return d == 0;
}

static void touch_key(bn_db *db, int64_t id, int64_t now)
{
    sqlite3_stmt *st;
    if (bn__db_prepare_kept(db, "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", &st) !=
        BN_OK)
        return;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    (void)bn__db_step_done(db, st, "recording a key's use"); /* best effort: a busy store
                                                                 never fails a request */
}

/* Judges the row of a found key; *touch: whether to write its last use now. */
static void judge(const bn__key_row *k, const uint8_t h[SHA256_DIGEST_SIZE], int64_t now,
                  bn_key_auth *out, int *touch)
{
    if (k->hash_len != SHA256_DIGEST_SIZE || !equal_ct(k->hash, h, SHA256_DIGEST_SIZE))
        return; /* stays unknown */
    out->key_id = k->id;
    out->tenant_id = k->tenant_id;
    out->scopes = (unsigned)k->scopes;
    snprintf(out->tier, sizeof out->tier, "%s", k->tier);
    snprintf(out->tenant, sizeof out->tenant, "%s", k->name);
    if (k->revoked)
        out->reason = BN_KEY_REVOKED;
    else if (k->expires && k->expires <= now)
        out->reason = BN_KEY_EXPIRED;
    else if (strcmp(k->status, "active"))
        out->reason = BN_KEY_SUSPENDED;
    else
        out->reason = BN_KEY_OK;
    *touch = out->reason == BN_KEY_OK && now - k->used >= LAST_USED_MS;
}

/* The current row of the lookup's query into k. */
static void read_key_row(sqlite3_stmt *st, bn__key_row *k)
{
    const void *stored = sqlite3_column_blob(st, 2);
    const int n = sqlite3_column_bytes(st, 2);
    k->hash_len = stored && n == SHA256_DIGEST_SIZE ? (size_t)n : 0;
    if (k->hash_len) memcpy(k->hash, stored, k->hash_len);
    int64_t *iv[] = {&k->id, &k->tenant_id, NULL, &k->scopes, &k->expires, &k->revoked, &k->used};
    for (int i = 0; i < 7; i++)
        if (iv[i]) *iv[i] = col_i64(st, i);
    const char *status = (const char *)sqlite3_column_text(st, 7);
    const char *tier = (const char *)sqlite3_column_text(st, 8);
    const char *name = (const char *)sqlite3_column_text(st, 9);
    snprintf(k->status, sizeof k->status, "%s", status ? status : "");
    snprintf(k->tier, sizeof k->tier, "%s", tier ? tier : "");
    snprintf(k->name, sizeof k->name, "%s", name ? name : "");
}

/* The row of the key whose hash is h from the history; *found 0 when none. */
static bn_status find_key(bn_db *db, const uint8_t h[SHA256_DIGEST_SIZE], bn__key_row *k,
                          int *found)
{
    /* the index finds the row by the hash of the secret, not the secret: timing tells an
     * attacker nothing about a key they do not hold */
    sqlite3_stmt *st;
    bn_status s = bn__db_prepare_kept(db,
                                      "SELECT k.id, k.tenant_id, k.hash, k.scopes, k.expires_at, "
                                      "k.revoked_at, k.last_used_at, t.status, t.tier, t.name "
                                      "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                                      "WHERE k.hash = ?1",
                                      &st);
    if (s != BN_OK) return s;
    sqlite3_bind_blob(st, 1, h, SHA256_DIGEST_SIZE, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW)
        read_key_row(st, k);
    else if (rc != SQLITE_DONE)
        s = bn__db_sqlerr(db, rc, "looking up a key");
    bn__db_done(db, st);
    return s;
}

bn_status bn_db_key_lookup(bn_db *db, const char *key, bn_key_auth *out)
{
    memset(out, 0, sizeof *out);
    out->reason = BN_KEY_MALFORMED;
    if (!key_well_formed(key)) return BN_OK;
    uint8_t h[SHA256_DIGEST_SIZE];
    key_hash(key, h);
    return bn_db_key_lookup_hash(db, h, out);
}

_Static_assert(BN_KEY_HASH_LEN == SHA256_DIGEST_SIZE, "the store keeps SHA-256 digests");

void bn_db_key_digest(const char *key, uint8_t h[BN_KEY_HASH_LEN])
{
    key_hash(key, h);
}

bn_status bn_db_key_lookup_hash(bn_db *db, const uint8_t h[BN_KEY_HASH_LEN], bn_key_auth *out)
{
    memset(out, 0, sizeof *out);
    out->reason = BN_KEY_UNKNOWN;
    bn__key_row row;
    int found = 0, touch = 0;
    memset(&row, 0, sizeof row);
    const bn_status s =
            db->pg ? bn__pg_key_find(db, h, &row, &found) : find_key(db, h, &row, &found);
    const int64_t now = bn__db_now_ms(db);
    if (s == BN_OK && found) judge(&row, h, now, out, &touch);
    if (s == BN_OK && touch) {
        if (db->pg)
            bn__pg_key_touch(db, out->key_id, now);
        else
            touch_key(db, out->key_id, now);
    }
    return s;
}
