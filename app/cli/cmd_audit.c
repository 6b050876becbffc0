/* cmd_audit.c - `bitnet audit`: the hash-chained audit log of administrative actions (list,
 * verify; bitnet/db_tenants.h). */
#include "commands.h"

#include <inttypes.h>
#include <string.h>

#include "tenancy.h"

#define C_NAME "audit"

void cmd_audit_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet audit list [--json]\n"
            "       bitnet audit verify [--json]\n\n"
            "The audit log of administrative actions (tenants, keys, exports, erasures),\n"
            "oldest first. It is append-only, and each entry holds the SHA-256 of the one\n"
            "before it.\n\n"
            "  list     id, time, actor, action, target and details of every entry\n"
            "  verify   recomputes the chain; names the first entry that was edited, or\n"
            "           that follows a removed or reordered one, and exits 1\n\n" TN_DATABASE_HELP
            "Exit status: 0 ok (verify: the chain is intact), 1 failure, 2 usage error.\n");
}

static int list_one(void *ud, const bn_audit_entry *e)
{
    char when[32];
    cli_fmt_utc(e->at_ms, when, sizeof when);
    if (!ud) {
        printf("%5" PRId64 "  %s  %-16s %-15s %-12s %s\n", e->id, when, e->actor, e->action,
               e->target, e->details);
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)e->id);
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddNumberToObject(o, "at_ms", (double)e->at_ms);
    cJSON_AddStringToObject(o, "actor", e->actor);
    cJSON_AddStringToObject(o, "action", e->action);
    cJSON_AddStringToObject(o, "target", e->target);
    cJSON *d = cJSON_Parse(e->details);
    if (d)
        cJSON_AddItemToObject(o, "details", d);
    else
        cJSON_AddStringToObject(o, "details", e->details);
    cJSON_AddStringToObject(o, "prev_hash", e->prev_hash);
    cJSON_AddStringToObject(o, "hash", e->hash);
    cJSON_AddItemToArray(ud, o);
    return 0;
}

static int sub_list(int argc, char **argv)
{
    const char *C = "audit list";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    cJSON *arr, *doc = tn_list_begin(a.flags & TN_JSON, "entries", &arr);
    return tn_list_end(C, db, bn_db_audit_list(db, list_one, arr), doc);
}

static int sub_verify(int argc, char **argv)
{
    const char *C = "audit verify";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    int64_t n = 0, bad = 0;
    char why[256];
    if (bn_db_audit_verify(db, &n, &bad, why, sizeof why) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    if (a.flags & TN_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", bad == 0);
        cJSON_AddNumberToObject(o, "entries", (double)n);
        if (bad) {
            cJSON_AddNumberToObject(o, "first_bad", (double)bad);
            cJSON_AddStringToObject(o, "problem", why);
        }
        if (cli_print_json(o)) return BN_EXIT_FAIL;
    } else if (!bad) {
        printf("audit log intact: %" PRId64 " entries\n", n);
    }
    if (bad) cli_error("%s: %s", C, why);
    return bad ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int cmd_audit(int argc, char **argv)
{
    static const tn_sub subs[] = {{"list", sub_list}, {"verify", sub_verify}, {NULL, NULL}};
    return tn_dispatch(C_NAME, argc, argv, subs, cmd_audit_help);
}
