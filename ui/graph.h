/*
 * graph.h - time series and their graphs as text: braille (2x4 dots a cell), block
 * elements (eighths) or plain ASCII, with min/max labels and a time axis. Rendering
 * writes UTF-8 lines into a buffer, so it needs no terminal and is unit-tested.
 *
 * Usage:
 *
 *     bn_series s;
 *     bn_series_clear(&s);
 *     bn_series_push(&s, now, tokens_per_s);          // times in seconds, increasing
 *     bn_graph_opts o = bn_graph_opts_default();
 *     o.width = 60; o.height = 8; o.t_end = now; o.span = 60; o.unit = "";
 *     static bn_graph_out g;
 *     if (bn_graph_render(&s, &o, &g) == 0)
 *         for (int r = 0; r < g.rows; r++) mvaddstr(y + r, x, g.line[r]);
 *
 * Layout (height rows, width columns):
 *
 *      12.5 ┤⣀⣠⣴⣾⣿      the max label on the top row, the min label on the last plot row
 *           │⣿⣿⣿⣿⣿
 *       0.0 ┤⣿⣿⣿⣿⣿
 *           -60s   now    the time axis: the window's start, middle and "now"
 *
 * Values are drawn as a filled area. Each x slot (2 a cell in braille, 1 otherwise)
 * takes the largest sample that falls in it; an empty slot repeats the previous value
 * when the last sample before it is at most hold_s seconds older (samples taken every
 * second then draw a continuous area), else it stays blank. NaN samples are skipped.
 * A window without samples shows "no data". Every line is exactly width columns.
 *
 * Ownership: plain values; no allocation, no global state.
 */
#ifndef BITNET_UI_GRAPH_H
#define BITNET_UI_GRAPH_H

#include <stddef.h>

#define BN_SERIES_MAX     3600 /* samples kept (an hour at one a second) */
#define BN_GRAPH_MAX_ROWS 64
#define BN_GRAPH_MAX_COLS 400
#define BN_GRAPH_LINE_MAX (BN_GRAPH_MAX_COLS * 3 + 1) /* braille: 3 bytes a column */

/* A ring of (time, value) samples, oldest dropped first. */
typedef struct bn_series {
    double t[BN_SERIES_MAX], v[BN_SERIES_MAX];
    int head; /* index of the oldest sample */
    int n;
} bn_series;

void bn_series_clear(bn_series *s);
void bn_series_push(bn_series *s, double t, double v);
/* Sample i (0: the oldest); 0, or -1 when i is out of range. */
int bn_series_get(const bn_series *s, int i, double *t, double *v);
/* The newest value, or def when empty. */
double bn_series_last(const bn_series *s, double def);

typedef enum bn_graph_style {
    BN_GRAPH_BRAILLE = 0,
    BN_GRAPH_BLOCK = 1,
    BN_GRAPH_ASCII = 2,
} bn_graph_style;

/* "braille", "block", "ascii". */
const char *bn_graph_style_name(bn_graph_style s);

typedef struct bn_graph_opts {
    int width, height; /* of the whole graph, labels included: at least 8 x 2 */
    bn_graph_style style;
    double t_end, span;  /* the window is [t_end - span, t_end] (seconds) */
    double y_min, y_max; /* a fixed range when y_max > y_min; else from the data */
    int y_from_zero;     /* data range: the bottom is 0 unless values are negative */
    const char *unit;    /* appended to the y labels ("%", " MiB"); NULL: none */
    double hold_s;       /* see above; 0: never repeat */
    /* Time axis texts; NULL: "-<span>", "-<span/2>", "now". */
    const char *x_left, *x_mid, *x_right;
} bn_graph_opts;

/* width 40, height 6, braille, span 60 s, range from the data from zero, hold 2.5 s. */
bn_graph_opts bn_graph_opts_default(void);

typedef struct bn_graph_out {
    int rows;      /* lines written (= height) */
    int label_w;   /* columns before the plot area (labels and the axis) */
    double lo, hi; /* the y range drawn */
    int n_samples; /* samples inside the window */
    char line[BN_GRAPH_MAX_ROWS][BN_GRAPH_LINE_MAX]; /* UTF-8, NUL-terminated */
} bn_graph_out;

/* Renders s with o into out. 0, or -1 when the size is out of range (too small: width < 8
 * or height < 2; too large: over BN_GRAPH_MAX_COLS / BN_GRAPH_MAX_ROWS) or span <= 0. */
int bn_graph_render(const bn_series *s, const bn_graph_opts *o, bn_graph_out *out);

/* A number for a label in at most 6 characters: "0.00", "12.5", "123", "1.2k", "45M". */
void bn_graph_fmt_num(double v, char *buf, size_t size);

#endif
