/*
 * ui.h - the full-screen terminal UI (`bitnet tui`), as the program calls it.
 *
 * Usage (app/cli/cmd_tui.c):
 *
 *     bn_tui_opts o;
 *     bn_tui_opts_init(&o);
 *     o.no_color = getenv("NO_COLOR") && *getenv("NO_COLOR");
 *     char why[256];
 *     if (bn_tui_terminal_check(why, sizeof why) != 0) { ...say why, exit 1... }
 *     int rc = bn_tui_run(&o, why, sizeof why);   // 0 ok; 1 failed; 2 bad --keys file
 *
 * The UI knows the engine through its public headers, the history through db/ and the
 * shared tier (common/: config, hw, chat formats, the history hook, the generation session);
 * it includes nothing from app/. Nothing is printed to stdout; a message for stderr is left
 * in err.
 */
#ifndef BITNET_UI_UI_H
#define BITNET_UI_UI_H

#include <stddef.h>

typedef struct bn_tui_opts {
    int no_color, no_unicode, no_mouse;
    int graph_style;        /* 0 braille, 1 block, 2 ascii; -1: braille (ascii without UTF-8) */
    long max_frames;        /* quit after drawing this many frames; 0: no limit */
    const char *keys_file;  /* a scripted key sequence (see bitnet(1)), or NULL */
    const char *stats_file; /* write frame and key-latency figures here at exit (JSON) */
    const char *dump_file;  /* write the last frame here at exit (text) */
    int headless;           /* no terminal: a virtual screen of lines x cols; keys come from
                               keys_file only, the UI quits when the script ends, and a
                               frame is drawn at least once a second */
    int lines, cols;
    const char *model;      /* load this model; NULL: the config's, else the bundled one */
    int threads;            /* 0: the config's threads */
    const char *screen;     /* the first screen by name ("chat"); NULL: dashboard, or the
                               setup wizard when there is no config file yet */
    const char *server_url; /* a `bitnet serve` the Server screen watches; NULL: none */
    const char *server_key; /* its API key, sent to /metrics as a bearer token; NULL */
    const char *database;   /* the platform's store the Usage screen reads: a PostgreSQL
                               URL; NULL: the config's database, else the history */
} bn_tui_opts;

void bn_tui_opts_init(bn_tui_opts *o);

/* 0 when stdin and stdout are terminals and TERM names a usable one; else -1 and why.
 * Headless runs (opts.headless) need no terminal. */
int bn_tui_terminal_check(char *why, size_t size);

/* Runs the UI until it quits. 0; 1 with a message in err (the terminal could not be
 * used, out of memory); 2 when the keys file is unreadable or malformed. */
int bn_tui_run(const bn_tui_opts *o, char *err, size_t errsz);

/* 0 when url can be watched by the Server screen ("host:port", "http://host:port",
 * "https://host/prefix"); else -1 and why. */
int bn_tui_server_url_check(const char *url, char *why, size_t size);

/* The screens' names in order ("dashboard", "setup", ...), NULL-terminated. */
extern const char *const bn_tui_screen_names[];

#endif
