/*
 * widgets.h - drawing helpers for the screens: clipped UTF-8 text, frames, bars, graphs,
 * an editable line, a scrolling list, wrapped text, and mouse hit regions.
 *
 * Every drawing call clips to the columns it is given, so a narrow terminal never wraps.
 * Text is UTF-8; when the terminal is not (crt_unicode() is 0) characters outside ASCII
 * are drawn as '?'; control characters are never sent to the terminal.
 *
 * Hit regions: a widget that can be clicked registers its rectangle with the key code a
 * click stands for (ui_hit); tui.c turns a click into that key. The list is rebuilt on
 * every frame (ui_hits_reset).
 */
#ifndef BITNET_UI_WIDGETS_H
#define BITNET_UI_WIDGETS_H

#include <stddef.h>

#include "crt.h"
#include "graph.h"

/* Key codes made up by the TUI (above curses' KEY_MAX). */
enum {
    UI_KEY_BASE = 0x10000,
    UI_KEY_ROW = 0x10000,    /* + row index: a click on a list row */
    UI_KEY_SCREEN = 0x20000, /* + screen index: a click on a tab */
    UI_KEY_BUTTON = 0x30000, /* + button id: a click on a button */
    UI_KEY_WHEEL_UP = 0x40000,
    UI_KEY_WHEEL_DOWN = 0x40001,
    UI_KEY_CLICK = 0x40002, /* a click on nothing in particular */
};

/* ---- text ------------------------------------------------------------------------------ */

/* Draws at most w columns of s at (y, x) with attributes attr; returns the columns used. */
int ui_text(int y, int x, int w, int attr, const char *s);
/* The same for n bytes of s. */
int ui_textn(int y, int x, int w, int attr, const char *s, size_t n);
int ui_printf(int y, int x, int w, int attr, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
/* Draws s in at most w columns; when it does not fit, its end is cut and an ellipsis
 * ("\u2026", "~" on ASCII terminals) marks the cut. Returns the columns used. */
int ui_text_cut(int y, int x, int w, int attr, const char *s);
/* The same, cutting the start instead ("\u2026/models/big.gguf"): for paths. */
int ui_text_tail(int y, int x, int w, int attr, const char *s);
/* Fits s into w columns in out: when it is longer, its longest word holding a '/' (a
 * path) is cut from its start ("\u2026/tail"); then, if still too long, the end is cut
 * with an ellipsis. */
void ui_fit_path(const char *s, int w, char *out, size_t size);
/* Columns s takes (as ui_text draws it). */
int ui_width(const char *s);
/* Fills w columns with spaces. */
void ui_clear(int y, int x, int w, int attr);

/* "1.5 GiB", "512 MiB", "0 B" */
const char *ui_bytes(unsigned long long b, char *buf, size_t size);
/* "12:04:31" today, else "2024-05-01 12:04" (local time) from Unix milliseconds */
const char *ui_time(long long ms, char *buf, size_t size);

/* ---- frames, bars, graphs ----------------------------------------------------------------- */

/* A frame with a title on its top edge. */
void ui_box(int y, int x, int h, int w, const char *title);
void ui_hline(int y, int x, int w, int attr);
/* A meter: w columns, filled to frac (0..1), with label drawn over its right end. */
void ui_meter(int y, int x, int w, double frac, int attr, const char *label);
/* A graph of s (h rows, w columns). o gives the window, range and unit; its size and style
 * are set here. */
void ui_graph(int y, int x, int h, int w, const bn_series *s, bn_graph_opts o, int attr);
void ui_graph_style_set(bn_graph_style st);
bn_graph_style ui_graph_style(void);
/* Every time graph shows the last span seconds (0: each caller's own), bridges gaps up to
 * hold seconds, and, when frozen is not 0, ends at that time with "paused" on its axis. */
void ui_graph_view_set(double span, double hold, double frozen);

/* A button "[ label ]" that a click turns into key; returns its width. */
int ui_button(int y, int x, const char *label, int key, int enabled, int focused);

/* ---- an editable line ------------------------------------------------------------------------ */

#define UI_INPUT_MAX 2048

typedef struct ui_input {
    char buf[UI_INPUT_MAX]; /* UTF-8, NUL-terminated */
    size_t len, cur;        /* bytes; cur is on a character boundary */
    int all;                /* the whole value is selected: the next character replaces it */
} ui_input;

/* Sets the value, selected as a whole (as in every form): the first character typed
 * replaces it, Backspace or Delete empties it, a movement key keeps it and moves. */
void ui_input_set(ui_input *in, const char *s);
/* Handles an editing key (printable bytes, Left/Right/Home/End, Backspace/Delete, Ctrl-A,
 * Ctrl-E, Ctrl-U (clears the line), Ctrl-K, Ctrl-W). Returns 1 when it was one. */
int ui_input_key(ui_input *in, int ch);
/* Draws the line in w columns, scrolled so that the cursor shows when focused; a selected
 * value is drawn reversed. */
void ui_input_draw(const ui_input *in, int y, int x, int w, int focused);
/* The keys of a text line, for a key bar (lines of "KEY\tWHAT"). */
#define UI_INPUT_KEYS "Enter\tdone\nEsc\tleave\n^U\tclear\nArrows Home End\tmove\n"

/* ---- a scrolling list --------------------------------------------------------------------------
 */

typedef struct ui_list {
    int n;   /* rows */
    int sel; /* the selected row, -1 when n is 0 */
    int top; /* the first row shown */
    int h;   /* rows shown (set by ui_list_layout) */
} ui_list;

/* Sets n and h and keeps sel in range and on screen. */
void ui_list_layout(ui_list *l, int n, int h);
/* Moves the selection for Up/Down/PgUp/PgDn/Home/End, wheel keys and row clicks
 * (UI_KEY_ROW + i). Returns 1 when it was one of those. */
int ui_list_key(ui_list *l, int ch);
/* Registers row hit regions for the rows shown, starting at screen row y. */
void ui_list_hits(const ui_list *l, int y, int x, int w);

/* ---- wrapped text -------------------------------------------------------------------------------
 */

/* Splits len bytes of text into lines of at most w columns (at spaces when it can, at '\n'
 * always). Calls fn(ud, line_index, start, n_bytes) for each; returns the number of lines. */
typedef void (*ui_wrap_fn)(void *ud, int i, const char *s, size_t n);
int ui_wrap(const char *text, size_t len, int w, ui_wrap_fn fn, void *ud);

/* Draws the lines first .. first+h-1 of the wrapped text; returns the number of lines. */
int ui_text_block(int y, int x, int h, int w, int attr, const char *text, size_t len, int first);

/* ---- mouse hit regions
 * --------------------------------------------------------------------------- */

void ui_hits_reset(void);
void ui_hit(int y, int x, int w, int key);
/* The key of the region at (y, x), or 0. Later regions win. */
int ui_hit_at(int y, int x);

#endif
