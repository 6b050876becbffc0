/*
 * keys.h - scripted key sequences for headless runs (`bitnet tui --keys FILE`).
 *
 * The file has one step a line; blank lines and lines starting with '#' are skipped, and
 * spaces around a step are ignored:
 *
 *     q                a single character is that key
 *     F1 .. F12        function keys
 *     ENTER ESC TAB BTAB UP DOWN LEFT RIGHT PGUP PGDN HOME END BACKSPACE DEL SPACE
 *     C-x              Ctrl and a letter (C-u, C-w, ...)
 *     text:hello you   every byte after the colon, as typed
 *     sleep:200        wait 200 ms (at most 600000)
 *     idle[:MS]        wait until no model job runs (at most MS, default 60000)
 *     click:COL,ROW    a left click at a 0-based position
 *     wheelup:COL,ROW / wheeldown:COL,ROW
 *
 * Names are case-insensitive. Each key is delivered after the frame before it was drawn.
 */
#ifndef BITNET_UI_KEYS_H
#define BITNET_UI_KEYS_H

#include <stddef.h>

typedef enum key_kind {
    KS_KEY = 0,
    KS_SLEEP,
    KS_IDLE,
    KS_CLICK,
    KS_WHEEL_UP,
    KS_WHEEL_DOWN,
} key_kind;

typedef struct key_step {
    key_kind kind;
    int key;  /* KS_KEY: a curses key code */
    int ms;   /* KS_SLEEP, KS_IDLE */
    int x, y; /* KS_CLICK, KS_WHEEL_* */
} key_step;

typedef struct key_script {
    key_step *steps;
    int n, cap;
} key_script;

/* Reads and checks the whole file. 0, or -1 with "FILE:LINE: message" in err. */
int keys_load(const char *path, key_script *ks, char *err, size_t errsz);
/* Parses one line (without its newline) into steps appended to ks; 0, or -1 with a
 * message. */
int keys_parse_line(const char *line, key_script *ks, char *err, size_t errsz);
void keys_free(key_script *ks);

/* ---- the terminal's keys ----------------------------------------------------------------
 *
 * Keys are read through curses' keypad mode, that is through the terminal's terminfo
 * entry. Many terminals send the xterm/VT220 sequences whatever TERM says (tmux, screen
 * and PuTTY with TERM=vt100, for one): keys_define_fallbacks() teaches curses those
 * sequences (F1-F12, arrows, Home, End, Insert, Delete, PgUp, PgDn, Shift-Tab) where the
 * entry binds nothing to them; keys_read() drops whole any escape sequence still unknown,
 * instead of passing on Esc and its bytes as keys ("\e[25~" is not Esc, 2, 5 and ~). */

/* Call once after keypad(stdscr, TRUE). */
void keys_define_fallbacks(void);
/* The next key (curses' code), or ERR when none is waiting (stdscr is in no-delay mode). */
int keys_read(void);

#endif
