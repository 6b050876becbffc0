/*
 * table.h - the columns of a list as htop's: a header naming them with the sort column
 * marked, sorting by any column either way, and a column picker that shows or hides them.
 * The rows stay the screen's; the table orders them (an index array) and lays their cells
 * out.
 *
 * Usage:
 *
 *     static const ui_col cols[] = {{"ID", 5, 1}, {"COMMAND", 10, 0}, {"RESULT", 0, 0}};
 *     ui_table tb;
 *     ui_table_init(&tb, cols, 3, 0, 1);        // sorted by ID, descending
 *     ...
 *     if (ui_table_key(&tb, ch)) { if (tb.resort) resort...; return 1; }
 *     ui_table_sort(&tb, order, n, cmp, rows);   // order[i]: the row shown i-th
 *     ui_table_header(&tb, y, x, w);
 *     ui_table_row(&tb, y + 1, x, w, attr, cell, &rows[order[i]]);
 *
 * Keys (ui_table_key): < > the sort column, I the order; C the column picker (Left Right
 * choose a column, Space shows or hides it, Esc, Enter or C leave it).
 */
#ifndef BITNET_UI_TABLE_H
#define BITNET_UI_TABLE_H

#include <stddef.h>

typedef struct ui_col {
    const char *name; /* in the header */
    int width;        /* columns; 0: the rest of the line (one such, the last shown) */
    int right;        /* aligned right (numbers) */
} ui_col;

#define UI_TABLE_MAX_COLS 16

typedef struct ui_table {
    const ui_col *cols;
    int n;
    int sort;        /* the column sorted by */
    int desc;        /* largest first */
    unsigned hidden; /* bit i: column i is hidden */
    int picking;     /* the column picker has the keys */
    int cursor;      /* its column */
    int resort;      /* set by ui_table_key when the order changed */
} ui_table;

void ui_table_init(ui_table *tb, const ui_col *cols, int n, int sort, int desc);

/* Takes the table's keys (see above); 1 when ch was taken. */
int ui_table_key(ui_table *tb, int ch);

/* Compares rows a and b on column col (ctx: the screen's rows): <0, 0, >0. */
typedef int (*ui_table_cmp)(const void *ctx, int col, size_t a, size_t b);

/* Fills order[0..n) with the rows' indexes sorted by the table's column (stable: equal rows
 * keep their order). */
void ui_table_sort(const ui_table *tb, size_t *order, size_t n, ui_table_cmp cmp, const void *ctx);

/* Draws the header row (the picker's cursor when picking). */
void ui_table_header(const ui_table *tb, int y, int x, int w);

/* Formats the cell of column col for the row into buf, and may set *attr; or draws it
 * itself in the w columns at y, x (a meter) and returns 1. */
typedef int (*ui_table_cell)(const void *row, int col, int y, int x, int w, char *buf, size_t size,
                             int *attr);

/* Draws one row: each shown column's cell at its place, in attr unless the cell sets its
 * own (sel: the row is selected, and every cell keeps attr). */
void ui_table_row(const ui_table *tb, int y, int x, int w, int attr, int sel, ui_table_cell cell,
                  const void *row);

#endif
