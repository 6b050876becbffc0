/*
 * history_hook.h - how a command records its run in the local history (bitnet/db.h).
 *
 * Usage, in a command, once its arguments are parsed:
 *
 *     hist_run *h = hist_begin("generate", o.model, hist_params_argv(argc, argv));
 *     ...
 *     hist_metric("gen_tokens_per_s", tg);         // wherever the numbers are known
 *     ...
 *     hist_end(h, rc, NULL, NULL);                 // at every exit, with the exit code
 *
 * Recording never fails the command: when the history cannot be opened or written, one
 * warning line goes to stderr (once per process) and the command goes on. h is then NULL,
 * which every function here accepts. BITNET_HISTORY=0 turns recording off.
 *
 * The file: $BITNET_HISTORY_DB, else history.db in the data directory (config data_dir,
 * $XDG_DATA_HOME/bitnet, ~/.local/share/bitnet); retention: config history.retention_days.
 * The model's sha256 is computed once per file and cached in the history by (path, size,
 * modification time).
 *
 * Ownership: hist_begin takes params and hist_end takes metrics (either may be NULL); the
 * handle is freed by hist_end. A process records one run at a time: hist_metric adds to the
 * run begun last and not yet ended.
 */
#ifndef BITNET_APP_HISTORY_HOOK_H
#define BITNET_APP_HISTORY_HOOK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "bitnet/db.h"

typedef struct hist_run hist_run;

/* {"argv": [the arguments after the command name]}; NULL when out of memory. */
cJSON *hist_params_argv(int argc, char **argv);

/* Records the start of a run of command on model_path (may be NULL) with params. */
hist_run *hist_begin(const char *command, const char *model_path, cJSON *params);

/* Adds a number or a string to the metrics of the current run (no-op without one). */
void hist_metric(const char *key, double value);
void hist_metric_str(const char *key, const char *value);

/* Records the end: status ok when exit_code is 0, else failed with error (NULL: the last
 * message the command printed with cli_error). metrics join those from hist_metric. */
void hist_end(hist_run *h, int exit_code, cJSON *metrics, const char *error);
/* The same with an explicit status (cancelled, ...). */
void hist_end_status(hist_run *h, bn_run_status status, cJSON *metrics, const char *error);

/* The history's file name and retention, as commands find them. 0, or -1 with err. */
int hist_db_path(char *path, size_t pathsz, int *retention_days, char *err, size_t errsz);
/* Opens the history as commands do (path and retention from the environment and config).
 * 0, or -1 with a one-line message in err. path receives the file's name (may be NULL). */
int hist_db_open(bn_db **db, char *path, size_t pathsz, char *err, size_t errsz);

#endif
