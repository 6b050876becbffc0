/* browser.c - the model file browser; see browser.h. */
#include "browser.h"

#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/file.h"

#define MAX_ENTRIES 4096

static void clear_entries(ui_browser *b)
{
    for (int i = 0; i < b->n; i++) free(b->e[i].name);
    free(b->e);
    b->e = NULL;
    b->n = 0;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const ui_browser_entry *a = pa, *b = pb;
    if (!strcmp(a->name, "..")) return -1;
    if (!strcmp(b->name, "..")) return 1;
    if (a->is_dir != b->is_dir) return b->is_dir - a->is_dir;
    return strcmp(a->name, b->name);
}

static int is_gguf(const char *name)
{
    const size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".gguf");
}

void ui_browser_open(ui_browser *b, const char *dir)
{
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) {
        snprintf(b->err, sizeof b->err, "%.200s: %s", dir, strerror(errno));
        return;
    }
    DIR *d = opendir(abs);
    if (!d) {
        snprintf(b->err, sizeof b->err, "%.200s: %s", abs, strerror(errno));
        return;
    }
    clear_entries(b);
    b->err[0] = '\0';
    snprintf(b->dir, sizeof b->dir, "%s", abs);
    b->e = calloc(MAX_ENTRIES, sizeof *b->e);
    for (struct dirent *de; b->e && b->n < MAX_ENTRIES && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || (de->d_name[0] == '.' && strcmp(de->d_name, "..")))
            continue;
        if (!strcmp(de->d_name, "..") && !strcmp(abs, "/")) continue;
        char full[PATH_MAX + 256];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", abs, de->d_name);
        if (stat(full, &st) != 0) continue;
        const int dir_ = S_ISDIR(st.st_mode);
        if (!dir_ && !(S_ISREG(st.st_mode) && is_gguf(de->d_name))) continue;
        b->e[b->n].name = strdup(de->d_name);
        if (!b->e[b->n].name) break;
        b->e[b->n].is_dir = dir_;
        b->e[b->n].size = (unsigned long long)st.st_size;
        b->n++;
    }
    closedir(d);
    if (b->n) qsort(b->e, (size_t)b->n, sizeof *b->e, cmp_entry);
    b->list.sel = b->n > 1 && !strcmp(b->e[0].name, "..") ? 1 : 0;
    b->list.top = 0;
}

void ui_browser_free(ui_browser *b)
{
    clear_entries(b);
}

int ui_browser_editing(const ui_browser *b)
{
    return b->typing;
}

const char *ui_browser_keybar(const ui_browser *b)
{
    return b->typing ? NULL
                     : "Enter\topen/choose\nBackspace\tparent\n/\ttype a path\n~\thome\nEsc\t"
                       "close\n";
}

void ui_browser_draw(ui_browser *b, int y, int x, int h, int w)
{
    ui_box(y, x, h, w, "Choose a model file (*.gguf)");
    ui_text(y + 1, x + 2, w - 4, crt_attr(CR_DIM), b->dir);
    int row = y + 2;
    if (b->typing) {
        ui_text(row, x + 2, 6, crt_attr(CR_TITLE), "path:");
        ui_input_draw(&b->path, row, x + 8, w - 10, 1);
        row++;
    }
    if (b->err[0]) ui_text(row++, x + 2, w - 4, crt_attr(CR_FAIL), b->err);
    const int lh = y + h - 1 - row;
    ui_list_layout(&b->list, b->n, lh);
    if (b->n == 0) ui_text(row, x + 2, w - 4, crt_attr(CR_DIM), "(no directories or .gguf files)");
    for (int r = 0; r < lh && b->list.top + r < b->n; r++) {
        const ui_browser_entry *e = &b->e[b->list.top + r];
        const int sel = b->list.top + r == b->list.sel;
        const int a = sel ? crt_attr(CR_SELECT) : e->is_dir ? crt_attr(CR_TITLE) : 0;
        char sz[32] = "";
        if (!e->is_dir) ui_bytes(e->size, sz, sizeof sz);
        ui_clear(row + r, x + 1, w - 2, a);
        ui_printf(row + r, x + 2, w - 14, a, "%s%s", e->name, e->is_dir ? "/" : "");
        ui_text(row + r, x + w - 12, 10, a, sz);
    }
    ui_list_hits(&b->list, row, x + 1, w - 2);
}

static int choose(ui_browser *b, const char *path, char *out, size_t size)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(b->err, sizeof b->err, "%.200s: %s", path, strerror(errno));
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        ui_browser_open(b, path);
        return 0;
    }
    char magic[4] = {0};
    FILE *f = bn_file_fopen_read(path, NULL, 0); /* a FIFO is not waited on */
    const size_t got = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f) fclose(f);
    if (got != sizeof magic || memcmp(magic, "GGUF", 4)) {
        snprintf(b->err, sizeof b->err, "%.200s: %s", path,
                 f ? "not a GGUF model file (it does not start with GGUF)" : "cannot be read");
        return 0;
    }
    char abs[PATH_MAX];
    snprintf(out, size, "%s", realpath(path, abs) ? abs : path);
    return 1;
}

int ui_browser_key(ui_browser *b, int ch, char *out, size_t size)
{
    if (b->typing) {
        if (ch == 27) {
            b->typing = 0;
            return 0;
        }
        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            b->typing = 0;
            return choose(b, b->path.buf, out, size);
        }
        return ui_input_key(&b->path, ch) ? 0 : -1;
    }
    if (ui_list_key(&b->list, ch)) return 0;
    char path[PATH_MAX + 256];
    switch (ch) {
    case '\n':
    case '\r':
    case KEY_ENTER:
    case KEY_RIGHT:
        if (b->list.sel < 0 || b->list.sel >= b->n) return 0;
        snprintf(path, sizeof path, "%s/%s", b->dir, b->e[b->list.sel].name);
        if (ch == KEY_RIGHT && !b->e[b->list.sel].is_dir) return 0;
        return choose(b, path, out, size);
    case KEY_BACKSPACE:
    case 127:
    case 8:
    case KEY_LEFT:
        snprintf(path, sizeof path, "%s/..", b->dir);
        ui_browser_open(b, path);
        return 0;
    case '~': {
        const char *home = getenv("HOME");
        if (home) ui_browser_open(b, home);
        return 0;
    }
    case '/': /* the folder shown, selected: a path typed replaces it, End goes on from it */
        b->typing = 1;
        snprintf(path, sizeof path, "%s%s", b->dir, strcmp(b->dir, "/") ? "/" : "");
        ui_input_set(&b->path, path);
        return 0;
    default:
        return -1;
    }
}
