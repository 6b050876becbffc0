/* cmd_keys.c - `bitnet keys`: the tenants' API keys (create, list, revoke, check); every change
 * audited (bitnet/db_tenants.h). */
#include "commands.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/tiers.h"
#include "tenancy.h"

#define C_NAME "keys"

void cmd_keys_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet keys create --tenant T [--scope S]... [--expires DATE] [--json]\n"
            "       bitnet keys list [--tenant T] [--json]\n"
            "       bitnet keys revoke ID [--json]\n"
            "       bitnet keys check [--json] < KEYFILE\n\n"
            "API keys of the platform's tenants (bitnet tenants). A key is \"bnk_\" and 43\n"
            "characters (32 random bytes); create prints it once: only its SHA-256 is kept.\n\n"
            "  create   a key for tenant T (id or name, active) with scopes inference\n"
            "           (default), usage and/or admin (--scope usage,admin or repeated), and\n"
            "           an expiry: --expires YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)\n"
            "  list     keys (of T): id, tenant, prefix, scopes, expiry, revoked, last used\n"
            "  revoke   key ID stops working at once\n"
            "  check    reads a key on stdin and says whether it works: its tenant and\n"
            "           scopes, or why not (malformed, unknown, revoked, expired, tenant\n"
            "           suspended; exit 1)\n\n" TN_DATABASE_HELP
            "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

/* The id of the tenant that ref names, into *id. */
static int tenant_id(const char *C, bn_db *db, const char *ref, int64_t *id)
{
    bn_tenant t;
    if (bn_db_tenant_get(db, ref, &t) != BN_OK) return tn_fail(C, db);
    *id = t.id;
    return 0;
}

static int sub_create(int argc, char **argv)
{
    const char *C = "keys create";
    tn_args a;
    int64_t expires = 0, tid = 0, kid = 0;
    int r = tn_parse_args(C, argc, argv, TN_TENANT | TN_SCOPE | TN_EXPIRES | TN_JSON, &a);
    if (r) return r;
    if (!a.tenant) return cli_usage_error(C, "--tenant is required");
    if (a.expires && cli_parse_utc(a.expires, &expires))
        return cli_usage_error(C, "bad date '%s' (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)", a.expires);
    bn_db *db;
    if ((r = tn_open(C, &db)) || (r = tenant_id(C, db, a.tenant, &tid))) return r;
    char key[BN_KEY_STR_MAX], sc[32];
    const unsigned scopes = a.scopes ? a.scopes : BN_SCOPE_INFERENCE;
    if (bn_db_key_create(db, tn_actor(), tid, scopes, expires, key, &kid) != BN_OK)
        return tn_fail(C, db);
    bn_db_close(db);
    bn_scopes_str(scopes, sc, sizeof sc);
    if (a.flags & TN_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)kid);
        cJSON_AddNumberToObject(o, "tenant", (double)tid);
        cJSON_AddStringToObject(o, "key", key);
        cJSON_AddStringToObject(o, "scopes", sc);
        memset(key, 0, sizeof key);
        return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("%s\n", key);
    fprintf(stderr,
            "key %" PRId64 " for tenant %" PRId64 " (%s): keep it now, it is not shown "
            "again\n",
            kid, tid, sc);
    memset(key, 0, sizeof key);
    return BN_EXIT_OK;
}

static int list_one(void *ud, const bn_api_key *k)
{
    char sc[32], t1[32], t2[32], t3[32];
    bn_scopes_str(k->scopes, sc, sizeof sc);
    cli_fmt_utc(k->expires_ms, t1, sizeof t1);
    cli_fmt_utc(k->revoked_ms, t2, sizeof t2);
    cli_fmt_utc(k->last_used_ms, t3, sizeof t3);
    if (!ud) {
        printf("%5" PRId64 " %6" PRId64 "  %-13s %-22s %-20s %-20s %s\n", k->id, k->tenant_id,
               k->prefix, sc, t1, t2, t3);
        return 0;
    }
    cJSON_AddItemToArray(ud, cm_api_key_json(k));
    return 0;
}

static int sub_list(int argc, char **argv)
{
    const char *C = "keys list";
    tn_args a;
    int64_t tid = 0;
    int r = tn_parse_args(C, argc, argv, TN_TENANT | TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    if (a.tenant && (r = tenant_id(C, db, a.tenant, &tid))) return r;
    cJSON *arr, *doc = tn_list_begin(a.flags & TN_JSON, "keys", &arr);
    if (!doc)
        printf("%5s %6s  %-13s %-22s %-20s %-20s %s\n", "id", "tenant", "prefix", "scopes",
               "expires", "revoked", "last used");
    return tn_list_end(C, db, bn_db_key_list(db, tid, list_one, arr), doc);
}

static int sub_revoke(int argc, char **argv)
{
    const char *C = "keys revoke";
    tn_args a;
    long id;
    int r = tn_parse_args(C, argc, argv, TN_POS | TN_JSON, &a);
    if (r) return r;
    if (cli_parse_long(a.pos, 1, 1L << 62, &id))
        return cli_usage_error(C, "bad key id '%s'", a.pos);
    bn_db *db;
    if ((r = tn_open(C, &db))) return r;
    if (bn_db_key_revoke(db, tn_actor(), id) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    if (!(a.flags & TN_JSON)) {
        printf("key %ld: revoked\n", id);
        return BN_EXIT_OK;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddBoolToObject(o, "revoked", 1);
    return cli_print_json(o) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* One line of stdin without its end of line; -1 when there is none. */
static int read_key_line(char *buf, size_t size)
{
    if (!fgets(buf, (int)size, stdin)) return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int sub_check(int argc, char **argv)
{
    const char *C = "keys check";
    tn_args a;
    char line[256];
    int r = tn_parse_args(C, argc, argv, TN_JSON, &a);
    if (r) return r;
    if (read_key_line(line, sizeof line)) return cli_usage_error(C, "no key on stdin");
    bn_db *db;
    if ((r = tn_open(C, &db))) return r;
    bn_key_auth au;
    if (bn_db_key_lookup(db, line, &au) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    memset(line, 0, sizeof line);
    char sc[32];
    bn_scopes_str(au.scopes, sc, sizeof sc);
    const int good = au.reason == BN_KEY_OK;
    if (a.flags & TN_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "result", bn_key_reason_str(au.reason));
        if (au.key_id) {
            cJSON_AddNumberToObject(o, "key", (double)au.key_id);
            cJSON_AddNumberToObject(o, "tenant", (double)au.tenant_id);
            cJSON_AddStringToObject(o, "scopes", sc);
            cJSON_AddStringToObject(o, "tier", au.tier);
        }
        if (cli_print_json(o)) return BN_EXIT_FAIL;
    } else if (good) {
        printf("ok: key %" PRId64 ", tenant %" PRId64 " (%s), scopes %s\n", au.key_id, au.tenant_id,
               au.tier, sc);
    }
    if (!good) cli_error("%s: the key does not work: %s", C, bn_key_reason_str(au.reason));
    return good ? BN_EXIT_OK : BN_EXIT_FAIL;
}

int cmd_keys(int argc, char **argv)
{
    static const tn_sub subs[] = {
            {"create", sub_create}, {"list", sub_list}, {"revoke", sub_revoke},
            {"check", sub_check},   {NULL, NULL},
    };
    return tn_dispatch(C_NAME, argc, argv, subs, cmd_keys_help);
}
