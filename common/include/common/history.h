/*
 * history.h - how a front-end records its runs in the local history (bitnet/db.h), and the one
 * place that says where that history is.
 *
 * Usage, once the run's arguments are known:
 *
 *     cm_hist_run *h = cm_hist_begin("generate", model, cm_hist_params_argv(argc, argv));
 *     ...
 *     cm_hist_metric(h, "gen_tokens_per_s", tg);   // wherever the numbers are known
 *     ...
 *     cm_hist_end(h, BN_RUN_OK, NULL, NULL);       // or cm_hist_end_exit(h, rc, NULL, error)
 *
 * Each run is its own handle, with its own connection to the history: a process may record
 * several runs at once (the TUI's chat and bench, a server's requests), from several threads
 * as long as one handle is used by one thread at a time. Nothing here keeps a "current run".
 *
 * Recording never fails the run: when the history cannot be opened or written, one warning
 * line goes to stderr (once per process) and the caller goes on. h is then NULL, which every
 * function here accepts. BITNET_HISTORY=0 turns recording off.
 *
 * The file (cm_history_path): $BITNET_HISTORY_DB when set and not empty, else history.db in
 * the data directory (the config's data_dir, which $BITNET_DATA_DIR overrides, else
 * $XDG_DATA_HOME/bitnet, else ~/.local/share/bitnet); retention: config
 * history.retention_days. The model's sha256 is computed once per file and cached in the
 * history by (path, size, modification time).
 *
 * Ownership: cm_hist_begin takes params and cm_hist_end takes metrics (either may be NULL);
 * the handle is freed by cm_hist_end.
 */
#ifndef BITNET_COMMON_HISTORY_H
#define BITNET_COMMON_HISTORY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "bitnet/db.h"

typedef struct cm_hist_run cm_hist_run;

/* {"argv": [the arguments after the command name]}; NULL when out of memory. */
cJSON *cm_hist_params_argv(int argc, char **argv);

/* Records the start of a run of command on model_path (may be NULL) with params; NULL when
 * recording is off or failed (warned once). */
cm_hist_run *cm_hist_begin(const char *command, const char *model_path, cJSON *params);

/* Sets a number or a string in the metrics of run h, replacing an earlier value of key
 * (no-op when h is NULL). */
void cm_hist_metric(cm_hist_run *h, const char *key, double value);
void cm_hist_metric_str(cm_hist_run *h, const char *key, const char *value);

/* Records the end of h with status and error (NULL for none) and frees h. metrics join (and
 * win over) those added with cm_hist_metric. */
void cm_hist_end(cm_hist_run *h, bn_run_status status, cJSON *metrics, const char *error);
/* The same from a process exit code: ok when exit_code is 0 (error unused), else failed with
 * error ("failed" when NULL or empty). */
void cm_hist_end_exit(cm_hist_run *h, int exit_code, cJSON *metrics, const char *error);

/* The history's file name and retention (retention_days may be NULL), as above: the one
 * resolver every front-end uses. 0, or -1 with a one-line message in err. */
int cm_history_path(char *path, size_t pathsz, int *retention_days, char *err, size_t errsz);
/* Opens the history at cm_history_path's file with the retention periods of its tables
 * (history.retention_days, retention.ledger_days, retention.keys_days; applied at most once a
 * day, bitnet/db.h) (migrating it). 0, or -1
 * with a one-line message in err. path receives the file's name (may be NULL). */
int cm_history_open(bn_db **db, char *path, size_t pathsz, char *err, size_t errsz);

/* ---- the platform's store: the history, or PostgreSQL (bitnet/db_pg.h) ----------------------
 *
 * Tenants, keys, the usage ledger, the billing outbox and the audit log live in the history
 * unless a PostgreSQL URL is given: --database URL (serve and the platform's commands), else
 * the config's database key. */

struct bn_config;
struct bn_pg_pool;
/* The PostgreSQL URL in effect into *url: flag when not NULL, else the config's database;
 * NULL when neither names one (the history). 0, or -1 with a one-line message in err (not a
 * postgresql:// URL). */
int cm_store_url(const struct bn_config *cfg, const char *flag, const char **url, char *err,
                 size_t errsz);
/* A handle on the store: on pool when it is set, else the history; a PostgreSQL store's with
 * the config's retention periods, as the history's (bn_db_set_retention). 0, or -1 with err. */
int cm_store_open(bn_db **db, struct bn_pg_pool *pool, char *err, size_t errsz);
/* A handle on the store at url with a connection of its own (NULL: the history). 0, or -1
 * with err (the connection, the role, the migrations). */
int cm_store_open_url(bn_db **db, const char *url, char *err, size_t errsz);

#endif
