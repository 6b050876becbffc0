/*
 * tui.h - what the TUI's main loop (tui.c) and its screens (screen_*.c) share: the
 * application state and the screen "class", a struct of function pointers as in htop.
 *
 * A screen draws itself into a rectangle (everything between the tab bar and the status
 * line) and gets the keys the main loop does not take first. Only the UI thread runs
 * screen code; long work goes to the engine worker (engine.h), samples come from the
 * monitor (monitor.h), and both wake the UI through a pipe.
 */
#ifndef BITNET_UI_TUI_H
#define BITNET_UI_TUI_H

#include <stddef.h>

#include "bitnet/db.h"
#include "common/config.h"
#include "engine.h"
#include "monitor.h"
#include "ui.h"
#include "widgets.h"

enum {
    SCR_DASHBOARD,
    SCR_SETUP,
    SCR_HARDWARE,
    SCR_MODELS,
    SCR_CHAT,
    SCR_BENCH,
    SCR_CONVERT,
    SCR_HISTORY,
    SCR_ALERTS,
    SCR_SERVER,
    SCR_USAGE,
    SCR_COUNT
};

typedef struct tui tui;

typedef struct tui_screen {
    const char *name; /* on the tab */
    const char *id;   /* for --screen */
    char letter;      /* the key that opens it */
    int fkey;         /* F-key number that opens it; 0: none (its letter does) */
    int live;         /* redrawn on every monitor sample */
    const char *help; /* its keys: lines of "KEY\tWHAT" */
    void *(*create)(tui *t);
    void (*destroy)(void *st);
    void (*enter)(tui *t, void *st); /* may be NULL */
    void (*draw)(tui *t, void *st, int y, int x, int h, int w);
    int (*key)(tui *t, void *st, int ch); /* 1 when it took the key */
    int (*editing)(void *st);             /* a text line has the keys; may be NULL */
    void (*tick)(tui *t, void *st);       /* on every engine wake-up; may be NULL */
    /* The keys for the key bar along the bottom now ("KEY\tWHAT" lines, the most used
     * first); NULL, or NULL returned: a text line's keys while editing, else the first
     * keys of help. */
    const char *(*keybar)(void *st);
} tui_screen;

extern const tui_screen scr_dashboard, scr_setup, scr_hardware, scr_models, scr_chat, scr_bench,
        scr_convert, scr_history, scr_alerts, scr_server, scr_usage;

struct tui {
    bn_tui_opts opts;
    tui_engine *eng;
    tui_monitor *mon;
    bn_config *cfg; /* NULL when the config file does not load: cfg_err says why */
    char cfg_err[BN_CONFIG_ERR_MAX];
    bn_db *db; /* the history, opened on demand (tui_db) */
    char db_err[512];
    char bundled[BN_CONFIG_PATH_MAX + 256]; /* the bundled default model, "" when none */
    char bundled_dir[BN_CONFIG_PATH_MAX];
    const tui_screen *screens[SCR_COUNT];
    void *state[SCR_COUNT];
    int cur;
    int help;     /* the help overlay is shown */
    int help_top; /* its first line shown (it scrolls) */
    int quit;
    int dirty; /* draw a frame */
    char status[512];
    int status_attr;
    double status_t;
    unsigned long long hist_seq; /* grows when a run may have been recorded */
    double db_last_try;          /* when tui_db last tried to open the history */
    int wake_fd;                 /* the write end of the wake-up pipe */

    /* settings.c */
    double window, refresh; /* the graphs' time span, the sampling interval (seconds) */
    int paused;             /* z: the sampler and the graphs stand still */
    double paused_at;
};

/* A message on the status line (role: CR_NORMAL, CR_OK, CR_WARN, CR_FAIL). */
void tui_status(tui *t, crt_role role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void tui_switch(tui *t, int screen);
/* The history, opened on first use; NULL with t->db_err set. */
bn_db *tui_db(tui *t);
/* Lists runs (bn_db_run_list) through tui_db. When the query fails, the connection is
 * dropped and the query tried once more on a fresh one: a connection of this process can
 * be left with a stale view of the file when another connection here is opened (see the
 * report in tui.c). BN_OK, or the status with a message in err. */
bn_status tui_run_list(tui *t, const bn_run_filter *f, bn_run **runs, size_t *n, char *err,
                       size_t errsz);
/* Closes the connection; the next tui_db opens a new one at once. */
void tui_db_reset(tui *t);
/* Reloads the config after it was written. */
void tui_reload_config(tui *t);
/* Sampling settings from the config (n_predict: n). */
void tui_sampling(const tui *t, eng_gen_params *gp, int n);
/* "name" of a path */
const char *tui_base(const char *path);
/* Wakes the UI from another thread (the screens' tick functions then run). */
void tui_wake(tui *t);

/* Settings (settings.c). tui_setting_save checks text as the config key's value (the
 * schema, as `bitnet config set`), writes it to the config file atomically and reloads the
 * config; 0, or -1 with the reason on the status line. tui_setting_int: the config's value
 * of an integer key (def without a config); tui_setting_save_int saves v when it differs.
 * tui_settings_start applies tui.graph (unless --graph), tui.graph_window and tui.refresh;
 * tui_settings_key takes g (graph style), w W (window), ] [ (refresh), z (pause): 1 when it
 * took ch. tui_sampling_save saves the sampling keys (temp, top_k, ...) that differ. */
int tui_setting_save(tui *t, const char *key, const char *text);
int tui_setting_int(const tui *t, const char *key, int def);
int tui_setting_save_int(tui *t, const char *key, long long v);
void tui_settings_start(tui *t);
int tui_settings_key(tui *t, int ch);
void tui_sampling_save(tui *t, const eng_gen_params *gp);

/* The alert rules and transitions (screen_alerts.c): read again with `bitnet alerts` when
 * older than max_age seconds; a panel of them for the dashboard. */
void tui_alerts_refresh(tui *t, double max_age);
void tui_alerts_panel(tui *t, int y, int x, int h, int w);

/* A run's metric as a number (def when absent), and a one-line summary of its metrics
 * ("45.1 tokens/s", "pp 120.3 / tg 45.1 tokens/s", "9 pass, 2 warn, 0 fail"). */
double tui_run_metric(const bn_run *r, const char *key, double def);
void tui_run_summary(const bn_run *r, char *buf, size_t size);
/* A metric's value for people: a key naming bytes in B/KiB/MiB/GiB/TiB (one decimal), a
 * whole number whole (no 1.81963e+08), anything else to 4 significant digits. */
void tui_fmt_number(const char *key, double v, char *buf, size_t size);
/* Whether the run's params hold "key": "value". */
int tui_run_param_is(const bn_run *r, const char *key, const char *value);

#endif
