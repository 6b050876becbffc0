/* table.c - sortable columns that can be shown or hidden; see table.h. */
#include "table.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crt.h"
#include "widgets.h"

void ui_table_init(ui_table *tb, const ui_col *cols, int n, int sort, int desc)
{
    memset(tb, 0, sizeof *tb);
    tb->cols = cols;
    tb->n = n < UI_TABLE_MAX_COLS ? n : UI_TABLE_MAX_COLS;
    tb->sort = sort, tb->desc = desc;
}

static int shown(const ui_table *tb, int c)
{
    return !(tb->hidden & (1u << c));
}

static int picker_key(ui_table *tb, int ch)
{
    switch (ch) {
    case KEY_LEFT:
        tb->cursor = (tb->cursor + tb->n - 1) % tb->n;
        return 1;
    case KEY_RIGHT:
        tb->cursor = (tb->cursor + 1) % tb->n;
        return 1;
    case ' ': { /* one column stays: a table of none shows nothing */
        const unsigned h = tb->hidden ^ (1u << tb->cursor);
        if ((h & ((1u << tb->n) - 1)) != (1u << tb->n) - 1) tb->hidden = h;
        return 1;
    }
    case 27:
    case '\n':
    case '\r':
    case KEY_ENTER:
    case 'C':
        tb->picking = 0;
        return 1;
    default:
        return 1; /* the picker keeps the keys until it is left */
    }
}

int ui_table_key(ui_table *tb, int ch)
{
    tb->resort = 0;
    if (tb->picking) return picker_key(tb, ch);
    switch (ch) {
    case '>':
    case '<':
        tb->sort = (tb->sort + (ch == '>' ? 1 : tb->n - 1)) % tb->n;
        tb->resort = 1;
        return 1;
    case 'I':
        tb->desc = !tb->desc;
        tb->resort = 1;
        return 1;
    case 'C':
        tb->picking = 1;
        tb->cursor = tb->sort;
        return 1;
    default:
        return 0;
    }
}

/* A stable merge sort of order[lo, hi) with tmp as scratch. */
static void merge_sort(size_t *order, size_t *tmp, size_t lo, size_t hi, const ui_table *tb,
                       ui_table_cmp cmp, const void *ctx)
{
    if (hi - lo < 2) return;
    const size_t mid = lo + (hi - lo) / 2;
    merge_sort(order, tmp, lo, mid, tb, cmp, ctx);
    merge_sort(order, tmp, mid, hi, tb, cmp, ctx);
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
        int c = cmp(ctx, tb->sort, order[i], order[j]);
        if (tb->desc) c = -c;
        tmp[k++] = c <= 0 ? order[i++] : order[j++];
    }
    while (i < mid) tmp[k++] = order[i++];
    while (j < hi) tmp[k++] = order[j++];
    memcpy(order + lo, tmp + lo, (hi - lo) * sizeof *order);
}

void ui_table_sort(const ui_table *tb, size_t *order, size_t n, ui_table_cmp cmp, const void *ctx)
{
    for (size_t i = 0; i < n; i++) order[i] = i;
    size_t *tmp = n > 1 ? malloc(n * sizeof *tmp) : NULL;
    if (tmp) merge_sort(order, tmp, 0, n, tb, cmp, ctx); /* out of memory: unsorted */
    free(tmp);
}

/* The width of column c at x0 in a line ending at end. */
static int col_width(const ui_table *tb, int c, int x0, int end)
{
    const int w = tb->cols[c].width ? tb->cols[c].width : end - x0;
    return w < end - x0 ? w : end - x0;
}

void ui_table_header(const ui_table *tb, int y, int x, int w)
{
    const int dim = crt_attr(CR_DIM), end = x + w;
    int c0 = x;
    for (int c = 0; c < tb->n && c0 < end; c++) {
        if (!shown(tb, c) && !tb->picking) continue;
        char name[48];
        const char *mark = c == tb->sort ? (crt_unicode() ? (tb->desc ? "\u25bc" : "\u25b2")
                                                          : (tb->desc ? "v" : "^"))
                                         : "";
        snprintf(name, sizeof name, "%s%s%s", tb->picking && !shown(tb, c) ? "-" : "",
                 tb->cols[c].name, mark);
        int cw = col_width(tb, c, c0, end);
        if (tb->picking && cw < ui_width(name) + 1) cw = ui_width(name) + 1;
        const int a = tb->picking && c == tb->cursor ? crt_attr(CR_SELECT)
                      : c == tb->sort                ? crt_attr(CR_TITLE)
                                                     : dim;
        const int nw = ui_width(name), room = cw - 1 > 0 ? cw - 1 : cw;
        ui_text(y, tb->cols[c].right && nw < room ? c0 + room - nw : c0, room, a, name);
        c0 += cw;
    }
}

void ui_table_row(const ui_table *tb, int y, int x, int w, int attr, int sel, ui_table_cell cell,
                  const void *row)
{
    const int end = x + w;
    int c0 = x;
    ui_clear(y, x, w, attr);
    for (int c = 0; c < tb->n && c0 < end; c++) {
        if (!shown(tb, c)) continue;
        char buf[512];
        int a = attr;
        buf[0] = '\0';
        const int cw = col_width(tb, c, c0, end);
        if (cell(row, c, y, c0, cw > 1 ? cw - 1 : cw, buf, sizeof buf, &a)) {
            c0 += cw;
            continue;
        }
        const int tw = ui_width(buf);
        const int at = tb->cols[c].right && tw < cw - 1 ? c0 + cw - 1 - tw : c0;
        ui_text_cut(y, at, c0 + cw - at - (cw > 1 ? 1 : 0), sel ? attr : a, buf);
        c0 += cw;
    }
}
