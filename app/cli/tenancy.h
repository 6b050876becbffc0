/* tenancy.h - what the platform's commands (tenants, keys, usage, audit) share: opening the
 * store, the actor their audit entries name, dates, options and subcommands (the tiers:
 * common/tiers.h). The store is bitnet/db_tenants.h in the history database
 * (common/history.h says where it is). */
#ifndef BITNET_APP_TENANCY_H
#define BITNET_APP_TENANCY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "bitnet/db_tenants.h"

/* The line of every platform command's --help about --database (tn_dispatch takes it). */
#define TN_DATABASE_HELP                                                                           \
    "  --database URL  any subcommand: the store in PostgreSQL at URL\n"                           \
    "           (postgresql://USER@HOST/DB; default: the config's database, else\n"                \
    "           the history)\n\n"

/* Opens the platform's store: the PostgreSQL store of --database URL (taken out of argv by
 * tn_dispatch) or of the config's database key, else the history; BN_EXIT_OK, or
 * BN_EXIT_FAIL with the error printed (cmd names the command). */
int tn_open(const char *cmd, bn_db **db);
/* The value of --database (NULL: none given); cm_store_url() says which store is in effect. */
const char *tn_database_flag(void);
/* Prints "bitnet: CMD: <the store's message>", closes db and returns BN_EXIT_FAIL. */
int tn_fail(const char *cmd, bn_db *db);
/* The actor of this process's audit entries: "cli:<user name>" (or "cli:uid-N"). */
const char *tn_actor(void);

/* The options of the platform's commands: each subcommand allows some (a mask of TN_*). */
enum {
    TN_POS = 1, /* one positional argument: required */
    TN_JSON = 2,
    TN_CSV = 4,
    TN_TIER = 8,
    TN_STRIPE = 16,
    TN_TENANT = 32,
    TN_EXPIRES = 64,
    TN_FROM = 128,
    TN_TO = 256,
    TN_SCOPE = 512, /* repeatable; comma lists too */
    TN_DRY = 1024,  /* --dry-run */
};

typedef struct tn_args {
    unsigned flags; /* the TN_* given */
    const char *pos, *tier, *stripe, *tenant, *expires, *from, *to, *scope_arg;
    unsigned scopes; /* every --scope, parsed */
} tn_args;

/* Parses argv[2 ..] (argv[1] is the subcommand) into a; 0, or BN_EXIT_USAGE with the one-line
 * error printed. */
int tn_parse_args(const char *cmd, int argc, char **argv, unsigned allow, tn_args *a);

/* --from and --to of a into [*from, *to) in ms (0: open; a day as --to: to its end); 0, or
 * BN_EXIT_USAGE with the one-line error printed. */
int tn_parse_range(const char *cmd, const tn_args *a, int64_t *from, int64_t *to);

/* Parses the options (allow: TN_POS and others), opens the store and finds the tenant the
 * positional argument names. 0 with *db open, or an exit code (printed; nothing open). */
int tn_open_tenant(const char *cmd, int argc, char **argv, unsigned allow, tn_args *a, bn_db **db,
                   bn_tenant *t);

/* A listing's JSON document {"<name>": []} when json (its array in *arr), else NULL (*arr
 * NULL: text). */
cJSON *tn_list_begin(int json, const char *name, cJSON **arr);
/* Ends a listing whose walk returned s: on failure frees doc and prints the store's error;
 * else closes db and prints doc (when there is one). The exit code. */
int tn_list_end(const char *cmd, bn_db *db, bn_status s, cJSON *doc);

/* A subcommand: its name and entry (argv[1] is its name). */
typedef struct tn_sub {
    const char *name;
    int (*run)(int argc, char **argv);
} tn_sub;
/* Runs the subcommand argv[1] names from subs (ended by {NULL}); --help or -h anywhere prints
 * help; a missing or unknown subcommand is a usage error listing the known ones. */
int tn_dispatch(const char *cmd, int argc, char **argv, const tn_sub *subs, void (*help)(FILE *));

#endif
