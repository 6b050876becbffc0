/*
 * analyze_view.h - `bitnet analyze MODEL --json` as a sortable table: a row per tensor with
 * its type, shape, scale, zero fraction, outliers, the SQNR of the ternary weights and the
 * input activations' range (those two when the arguments give --source and --calibrate), the
 * output error; the models screen's analyze pane.
 *
 * Usage (screen_models.c, UI thread):
 *
 *     analyze_view v;
 *     analyze_view_init(&v);
 *     analyze_view_start(&v, path, "--source ./src", wake, ud); // runs bitnet analyze
 *     analyze_view_tick(&v);                   // on every wake-up: takes its report
 *     analyze_view_draw(&v, y, x, h, w, focused);
 *     if (analyze_view_key(&v, ch)) ...        // Up Down, < > I C (table.h)
 *     analyze_view_release(&v);                // stops a running analysis
 */
#ifndef BITNET_UI_ANALYZE_VIEW_H
#define BITNET_UI_ANALYZE_VIEW_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "child.h"
#include "table.h"
#include "widgets.h"

enum {
    AC_INDEX, /* the tensor's place in the file (the default order) */
    AC_TENSOR,
    AC_TYPE,
    AC_SHAPE,
    AC_SCALE,
    AC_ZERO,
    AC_OUTL,
    AC_SQNR,
    AC_ACT,
    AC_ERR,
    AC_COUNT
};

typedef struct analyze_view {
    ui_table tb;
    ui_list list;
    ui_child child;
    int active;   /* started at least once: the pane shows this view */
    cJSON *doc;   /* the last report */
    cJSON **rows; /* its tensors in the table's order */
    size_t n;
    char model[4096];
    char args[512]; /* the extra arguments ("" or "--source SRC --calibrate TEXT") */
    char err[256];
} analyze_view;

void analyze_view_init(analyze_view *v);
void analyze_view_release(analyze_view *v);
/* Runs `bitnet analyze model ARGS --json` (args: words split at spaces, "" for none), stopping
 * one that runs; 0, or -1 with the error shown in the pane. */
int analyze_view_start(analyze_view *v, const char *model, const char *args, void (*wake)(void *),
                       void *ud);
/* Takes a finished run's report (or its error); 1 when something changed. */
int analyze_view_tick(analyze_view *v);
void analyze_view_draw(analyze_view *v, int y, int x, int h, int w, int focused);
/* Up Down PgUp PgDn Home End move, < > the sort column, I the order, C the column picker:
 * 1 when ch was taken. */
int analyze_view_key(analyze_view *v, int ch);

#define ANALYZE_VIEW_KEYS "Up Down\ta tensor\n< >\tsort column\nI\tsort order\nC\tcolumns\n"

#endif
