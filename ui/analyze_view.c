/* analyze_view.c - the report of `bitnet analyze --json` as a sortable table; see
 * analyze_view.h. */
#include "analyze_view.h"

#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "crt.h"

static const ui_col acols[AC_COUNT] = {
        {"#", 3, 1},          {"TENSOR", 26, 0}, {"TYPE", 6, 0}, {"SHAPE", 11, 0},
        {"SCALE", 9, 1},      {"ZERO%", 6, 1},   {"OUTL", 6, 1}, {"SQNR dB", 8, 1},
        {"ACT RANGE", 18, 0}, {"OUT ERR", 0, 0},
};

#define MAX_ARGS 16

void analyze_view_init(analyze_view *v)
{
    memset(v, 0, sizeof *v);
    ui_table_init(&v->tb, acols, AC_COUNT, AC_INDEX, 0); /* the file's order */
    ui_child_init(&v->child);
}

static void drop_doc(analyze_view *v)
{
    cJSON_Delete(v->doc);
    free(v->rows);
    v->doc = NULL, v->rows = NULL, v->n = 0;
}

void analyze_view_release(analyze_view *v)
{
    ui_child_release(&v->child);
    drop_doc(v);
}

int analyze_view_start(analyze_view *v, const char *model, const char *args, void (*wake)(void *),
                       void *ud)
{
    char words[sizeof v->args];
    const char *argv[MAX_ARGS + 4];
    int n = 0;
    snprintf(v->model, sizeof v->model, "%s", model);
    snprintf(v->args, sizeof v->args, "%s", args ? args : "");
    snprintf(words, sizeof words, "%s", v->args);
    argv[n++] = "analyze";
    argv[n++] = v->model;
    for (char *save = NULL, *w = strtok_r(words, " \t", &save); w;
         w = strtok_r(NULL, " \t", &save)) {
        if (n == MAX_ARGS + 2) {
            snprintf(v->err, sizeof v->err, "too many arguments (at most %d)", MAX_ARGS);
            v->active = 1;
            return -1;
        }
        argv[n++] = w;
    }
    argv[n++] = "--json";
    argv[n] = NULL;
    drop_doc(v);
    v->err[0] = '\0';
    v->active = 1;
    if (ui_child_start(&v->child, argv, 1, wake, ud) != 0) {
        ui_child_error(&v->child, v->err, sizeof v->err);
        return -1;
    }
    return 0;
}

/* ---- sorting --------------------------------------------------------------------------- */

/* The number behind a cell: NAN when the tensor has none (sorted below every number). */
static double act_abs(const cJSON *t)
{
    const cJSON *c = cJSON_GetObjectItem(t, "calibration");
    const double lo = cm_json_num(c, "act_min", NAN), hi = cm_json_num(c, "act_max", NAN);
    return fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
}

static double outliers(const cJSON *t)
{
    const int tern = cJSON_GetObjectItem(t, "zero_frac") != NULL;
    return cm_json_num(t, tern ? "src_outliers" : "outliers", NAN);
}

static double sqnr(const cJSON *t)
{
    const cJSON *s = cJSON_GetObjectItem(t, "sqnr_db");
    return s && cJSON_IsNull(s) ? INFINITY : cm_json_num(t, "sqnr_db", NAN); /* null: exact */
}

static double col_num(const cJSON *t, int col)
{
    switch (col) {
    case AC_INDEX:
        return cm_json_num(t, "index", NAN);
    case AC_SHAPE:
        return cm_json_num(t, "rows", 0) * cm_json_num(t, "cols", 0);
    case AC_SCALE:
        return cm_json_num(t, "scale", NAN);
    case AC_ZERO:
        return cm_json_num(t, "zero_frac", NAN);
    case AC_OUTL:
        return outliers(t);
    case AC_SQNR:
        return sqnr(t);
    case AC_ACT:
        return act_abs(t);
    default:
        return cm_json_num(cJSON_GetObjectItem(t, "calibration"), "out_err", NAN);
    }
}

static int cmp_tensor(const void *ctx, int col, size_t ia, size_t ib)
{
    const cJSON *const *items = ctx;
    const cJSON *a = items[ia], *b = items[ib];
    if (col == AC_TENSOR || col == AC_TYPE) {
        const char *k = col == AC_TENSOR ? "name" : "type";
        return strcmp(cm_json_str(a, k, ""), cm_json_str(b, k, ""));
    }
    double x = col_num(a, col), y = col_num(b, col);
    x = isnan(x) ? -INFINITY : x, y = isnan(y) ? -INFINITY : y;
    return (x > y) - (x < y);
}

/* The tensors of the report in the table's order (the file's order kept among equals). */
static void sort_rows(analyze_view *v)
{
    const cJSON *arr = cJSON_GetObjectItem(v->doc, "tensors");
    const int n = cJSON_GetArraySize(arr);
    cJSON **items = n ? calloc((size_t)n, sizeof *items) : NULL;
    size_t *order = n ? calloc((size_t)n, sizeof *order) : NULL;
    cJSON **rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n && (!items || !order || !rows)) {
        free(items), free(order), free(rows);
        return; /* out of memory: the old order stays */
    }
    int k = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, arr) items[k++] = t;
    ui_table_sort(&v->tb, order, (size_t)n, cmp_tensor, items);
    for (int i = 0; i < n; i++) rows[i] = items[order[i]];
    free(items), free(order), free(v->rows);
    v->rows = rows, v->n = (size_t)n;
}

int analyze_view_tick(analyze_view *v)
{
    if (ui_child_state_get(&v->child) != UI_CHILD_DONE) return 0;
    cJSON *doc = ui_child_take(&v->child);
    if (!doc) {
        char e[256];
        ui_child_error(&v->child, e, sizeof e);
        if (!e[0] || !strcmp(e, v->err)) return 0;
        snprintf(v->err, sizeof v->err, "%s", e);
        return 1;
    }
    drop_doc(v);
    v->doc = doc;
    v->list.sel = 0, v->list.top = 0;
    int i = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(doc, "tensors"))
            cJSON_AddNumberToObject(t, "index", i++);
    sort_rows(v);
    return 1;
}

/* ---- drawing --------------------------------------------------------------------------- */

static int tensor_cell(const void *row, int col, int y, int x, int w, char *buf, size_t size,
                       int *attr)
{
    const cJSON *t = row;
    const double v = col_num(t, col);
    (void)y, (void)x, (void)w, (void)attr;
    switch (col) {
    case AC_TENSOR:
    case AC_TYPE:
        snprintf(buf, size, "%s", cm_json_str(t, col == AC_TENSOR ? "name" : "type", ""));
        break;
    case AC_INDEX:
        snprintf(buf, size, "%.0f", v);
        break;
    case AC_SHAPE:
        snprintf(buf, size, "%.0fx%.0f", cm_json_num(t, "rows", 0), cm_json_num(t, "cols", 0));
        break;
    case AC_ZERO:
        snprintf(buf, size, isnan(v) ? "-" : "%.1f", 100 * v);
        break;
    case AC_SQNR:
        snprintf(buf, size, isinf(v) ? "exact" : isnan(v) ? "-" : "%.2f", v);
        break;
    case AC_ACT: {
        const cJSON *c = cJSON_GetObjectItem(t, "calibration");
        if (c)
            snprintf(buf, size, "[%.3g, %.3g]", cm_json_num(c, "act_min", NAN),
                     cm_json_num(c, "act_max", NAN));
        else
            snprintf(buf, size, "-");
        break;
    }
    default:
        snprintf(buf, size, isnan(v) ? "-" : "%.4g", v);
    }
    return 0;
}

/* "12 tensors (10 ternary), zero 33.1%, SQNR 5.61 dB, by SCALE v" for the box's title. */
static void title(const analyze_view *v, char *buf, size_t size)
{
    const cJSON *s = cJSON_GetObjectItem(v->doc, "summary");
    const char *mark =
            crt_unicode() ? (v->tb.desc ? "\u25bc" : "\u25b2") : (v->tb.desc ? "v" : "^");
    int o = snprintf(buf, size, "Analyze: %.0f tensors (%.0f ternary), zero %.1f%%",
                     cm_json_num(s, "tensors", 0), cm_json_num(s, "ternary", 0),
                     100 * cm_json_num(s, "zero_frac_mean", 0));
    const double db = cm_json_num(s, "sqnr_db_mean", NAN);
    if (!isnan(db) && o > 0 && (size_t)o < size)
        o += snprintf(buf + o, size - (size_t)o, ", SQNR %.2f dB", db);
    if (o > 0 && (size_t)o < size)
        snprintf(buf + o, size - (size_t)o, ", by %s%s", acols[v->tb.sort].name, mark);
}

void analyze_view_draw(analyze_view *v, int y, int x, int h, int w, int focused)
{
    char t[160];
    const int running = ui_child_state_get(&v->child) == UI_CHILD_RUNNING;
    if (v->doc)
        title(v, t, sizeof t);
    else
        snprintf(t, sizeof t, "Analyze");
    ui_box(y, x, h, w, t);
    int row = y + 1;
    ui_text_tail(row++, x + 2, w - 4, crt_attr(CR_DIM), v->model);
    if (v->args[0]) ui_text_cut(row++, x + 2, w - 4, crt_attr(CR_DIM), v->args);
    if (running) ui_text(row++, x + 2, w - 4, crt_attr(CR_WARN), "analyzing ...");
    if (v->err[0]) ui_text_cut(row++, x + 2, w - 4, crt_attr(CR_FAIL), v->err);
    if (!v->doc) return;
    ui_table_header(&v->tb, row++, x + 2, w - 4);
    ui_list_layout(&v->list, (int)v->n, y + h - 1 - row);
    for (int r = 0; r < v->list.h && v->list.top + r < (int)v->n; r++) {
        const int sel = focused && v->list.top + r == v->list.sel;
        const int a = sel ? crt_attr(CR_SELECT) : 0;
        ui_clear(row + r, x + 1, w - 2, a);
        ui_table_row(&v->tb, row + r, x + 2, w - 4, a, sel, tensor_cell, v->rows[v->list.top + r]);
    }
    if (focused) ui_list_hits(&v->list, row, x + 1, w - 2);
}

int analyze_view_key(analyze_view *v, int ch)
{
    if (ui_table_key(&v->tb, ch)) {
        if (v->tb.resort && v->doc) sort_rows(v);
        return 1;
    }
    return ui_list_key(&v->list, ch);
}
