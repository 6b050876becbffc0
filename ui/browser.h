/*
 * browser.h - a small file browser for choosing a model: directories and *.gguf files of
 * one directory, or a path typed in.
 *
 * Usage:
 *
 *     ui_browser b;
 *     ui_browser_open(&b, ".");                 // lists it (errors show in the widget)
 *     ui_browser_draw(&b, y, x, h, w);
 *     char path[4096];
 *     int r = ui_browser_key(&b, ch, path, sizeof path);
 *     // 1: path was chosen; 0: the key was used; -1: not a browser key (Esc: close it)
 *     ui_browser_free(&b);
 */
#ifndef BITNET_UI_BROWSER_H
#define BITNET_UI_BROWSER_H

#include <stddef.h>

#include "widgets.h"

typedef struct ui_browser_entry {
    char *name;
    int is_dir;
    unsigned long long size;
} ui_browser_entry;

typedef struct ui_browser {
    char dir[4096];
    ui_browser_entry *e;
    int n;
    ui_list list;
    char err[256];
    ui_input path; /* a path typed after '/' */
    int typing;
} ui_browser;

/* Lists dir (made absolute); on failure the widget shows why and keeps the old list. */
void ui_browser_open(ui_browser *b, const char *dir);
void ui_browser_free(ui_browser *b);
void ui_browser_draw(ui_browser *b, int y, int x, int h, int w);
int ui_browser_key(ui_browser *b, int ch, char *out, size_t size);
int ui_browser_editing(const ui_browser *b);
/* Its keys now, for the key bar ("KEY\tWHAT" lines); NULL while a path is typed (the
 * keys of a text line). */
const char *ui_browser_keybar(const ui_browser *b);

#define UI_BROWSER_HELP                                                                            \
    "Up Down\tmove in the file browser\n"                                                          \
    "Enter\topen a directory / choose a model\n"                                                   \
    "Backspace\tthe parent directory\n"                                                            \
    "~\tthe home directory\n"                                                                      \
    "/\ttype a path (Enter takes it): the folder shown is selected, so what you type "             \
    "replaces it (End keeps it and goes on)\n"

#endif
