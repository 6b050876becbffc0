/*
 * crt.h - all terminal state of the TUI: starting and restoring curses, the signal
 * handlers that restore the terminal before the process dies, colours (none, 8, 256 or
 * direct "true" colour), UTF-8 detection, the mouse, and stderr, which is captured into a
 * temporary file while the screen is in use and written back to the terminal afterwards.
 *
 * Usage:
 *
 *     crt_opts o = {.no_color = 0, .no_unicode = 0, .no_mouse = 0};
 *     char err[256];
 *     if (crt_init(&o, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
 *     attron(crt_attr(CR_OK)); addstr("PASS"); attroff(crt_attr(CR_OK));
 *     ...
 *     crt_done();        // also run at exit and from the signal handlers; idempotent
 *
 * One screen per process: this is the one place that keeps global state.
 */
#ifndef BITNET_UI_CRT_H
#define BITNET_UI_CRT_H

#include <pthread.h>
#include <stddef.h>

/* What a piece of text is; crt_attr maps it to colours and attributes. */
typedef enum crt_role {
    CR_NORMAL = 0,
    CR_BAR,        /* the tab bar */
    CR_TAB_ACTIVE, /* the current screen's tab */
    CR_HOTKEY,     /* the key letter in a tab */
    CR_STATUS,     /* the status line */
    CR_BORDER,     /* panel frames */
    CR_TITLE,      /* panel titles, headings */
    CR_DIM,        /* secondary text */
    CR_OK,
    CR_WARN,
    CR_FAIL,
    CR_GRAPH1,
    CR_GRAPH2,
    CR_GRAPH3,
    CR_SELECT, /* the selected row */
    CR_INPUT,  /* an editable line */
    CR_ROLE_COUNT_
} crt_role;

typedef struct crt_opts {
    int no_color;   /* --no-color, or NO_COLOR set and not empty */
    int no_unicode; /* --no-unicode: ASCII only */
    int no_mouse;   /* --no-mouse */
    int headless;   /* a virtual screen of lines x cols: curses reads and writes /dev/null,
                       so no terminal is needed (keys come from a script) */
    int lines, cols;
} crt_opts;

/* Starts curses on the terminal of stdin/stdout (cbreak, no echo, keypad, hidden cursor,
 * ESCDELAY 25 ms), installs the signal handlers and captures stderr. 0, or -1 with a
 * message (the terminal is then left as it was). */
int crt_init(const crt_opts *o, char *err, size_t errsz);
/* Writes the screen as last drawn to path as UTF-8 text, one line a row, trailing blanks
 * dropped (line drawing as box characters, or - | + without Unicode). 0, or -1 with why. */
int crt_dump(const char *path, char *err, size_t errsz);
/* Restores the terminal and stderr (and prints what was captured). Safe to call twice. */
void crt_done(void);

/* The colour theme: default (for a dark background), light (colours that read on a light
 * one), mono (attributes only, as --no-color). Set before crt_init or at any time after. */
typedef enum crt_theme { CRT_THEME_DEFAULT = 0, CRT_THEME_LIGHT = 1, CRT_THEME_MONO = 2 } crt_theme;
void crt_theme_set(crt_theme theme);
crt_theme crt_theme_get(void);
/* "default", "light", "mono" */
const char *crt_theme_name(crt_theme theme);

int crt_unicode(void);        /* UTF-8 output is used */
int crt_mouse(void);          /* mouse events are enabled */
const char *crt_colors(void); /* "none", "8", "256" or "direct" */
int crt_attr(crt_role r);     /* attributes (colour pair included) for r */

/* Starts a thread with every signal blocked, so that the terminal's signals stay with the
 * UI thread (the engine worker, the sampler, the child readers, the server watcher; what
 * those start inherits the mask). 0, or pthread_create's error. */
int crt_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* The newest line written to stderr while captured, when it changed since the last call:
 * 1 and the line in buf; else 0. */
int crt_stderr_line(char *buf, size_t size);

#endif
