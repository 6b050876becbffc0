/* graph.c - time series and their text graphs; see graph.h. */
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_SLOTS (2 * BN_GRAPH_MAX_COLS)

void bn_series_clear(bn_series *s)
{
    s->head = 0;
    s->n = 0;
}

void bn_series_push(bn_series *s, double t, double v)
{
    int at;
    if (s->n < BN_SERIES_MAX) {
        at = (s->head + s->n) % BN_SERIES_MAX;
        s->n++;
    } else {
        at = s->head;
        s->head = (s->head + 1) % BN_SERIES_MAX;
    }
    s->t[at] = t;
    s->v[at] = v;
}

int bn_series_get(const bn_series *s, int i, double *t, double *v)
{
    if (i < 0 || i >= s->n) return -1;
    const int at = (s->head + i) % BN_SERIES_MAX;
    *t = s->t[at];
    *v = s->v[at];
    return 0;
}

double bn_series_last(const bn_series *s, double def)
{
    double t, v;
    return bn_series_get(s, s->n - 1, &t, &v) == 0 ? v : def;
}

const char *bn_graph_style_name(bn_graph_style s)
{
    switch (s) {
    case BN_GRAPH_BRAILLE:
        return "braille";
    case BN_GRAPH_BLOCK:
        return "block";
    case BN_GRAPH_ASCII:
        return "ascii";
    }
    return "?";
}

bn_graph_opts bn_graph_opts_default(void)
{
    bn_graph_opts o;
    memset(&o, 0, sizeof o);
    o.width = 40;
    o.height = 6;
    o.style = BN_GRAPH_BRAILLE;
    o.span = 60;
    o.y_from_zero = 1;
    o.hold_s = 2.5;
    return o;
}

void bn_graph_fmt_num(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "-");
        return;
    }
    const char *sign = v < 0 ? "-" : "";
    double a = fabs(v);
    static const struct {
        double div;
        const char *suffix;
    } big[] = {{1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        if (a >= big[i].div) {
            const double x = a / big[i].div;
            if (x < 9.95)
                snprintf(buf, size, "%s%.1f%s", sign, x, big[i].suffix);
            else
                snprintf(buf, size, "%s%.0f%s", sign, x, big[i].suffix);
            return;
        }
    }
    if (a >= 99.5)
        snprintf(buf, size, "%s%.0f", sign, a);
    else if (a >= 9.95)
        snprintf(buf, size, "%s%.1f", sign, a);
    else
        snprintf(buf, size, "%s%.2f", sign, a);
}

/* "-90s", "-5m", "-2h" */
static void fmt_ago(double s, char *buf, size_t size)
{
    if (s < 120)
        snprintf(buf, size, "-%.0fs", s);
    else if (s < 7200)
        snprintf(buf, size, "-%.0fm", s / 60);
    else
        snprintf(buf, size, "-%.0fh", s / 3600);
}

typedef struct slots {
    int n;
    double v[MAX_SLOTS];
    unsigned char has[MAX_SLOTS];
} slots;

/* Fills the slots from the samples in the window; returns the number of samples in it. */
static int fill_slots(const bn_series *s, const bn_graph_opts *o, slots *sl)
{
    const double t0 = o->t_end - o->span, dt = o->span / sl->n;
    double last_t[MAX_SLOTS];
    double prev_t = 0, prev_v = 0;
    int have_prev = 0, n_in = 0;
    memset(sl->has, 0, sizeof sl->has);
    for (int i = 0; i < s->n; i++) {
        double t, v;
        bn_series_get(s, i, &t, &v);
        if (isnan(v) || t > o->t_end) continue;
        if (t < t0) { /* the newest sample before the window can be held into it */
            prev_t = t, prev_v = v, have_prev = 1;
            continue;
        }
        int k = (int)((t - t0) / dt);
        if (k >= sl->n) k = sl->n - 1;
        if (k < 0) k = 0;
        if (!sl->has[k] || v > sl->v[k]) sl->v[k] = v;
        if (!sl->has[k] || t > last_t[k]) last_t[k] = t;
        sl->has[k] = 1;
        n_in++;
    }
    for (int k = 0; k < sl->n; k++) {
        if (sl->has[k]) {
            prev_t = last_t[k], prev_v = sl->v[k], have_prev = 1;
        } else if (have_prev && t0 + k * dt - prev_t <= o->hold_s) {
            sl->v[k] = prev_v;
            sl->has[k] = 2; /* held */
        }
    }
    return n_in;
}

static void data_range(const slots *sl, const bn_graph_opts *o, double *lo, double *hi)
{
    if (o->y_max > o->y_min) {
        *lo = o->y_min, *hi = o->y_max;
        return;
    }
    int any = 0;
    double mn = 0, mx = 0;
    for (int k = 0; k < sl->n; k++) {
        if (!sl->has[k]) continue;
        if (!any || sl->v[k] < mn) mn = sl->v[k];
        if (!any || sl->v[k] > mx) mx = sl->v[k];
        any = 1;
    }
    if (o->y_from_zero && mn > 0) mn = 0;
    if (o->y_from_zero && mx < 0) mx = 0;
    if (!(mx - mn > 1e-12)) mx = mn + (fabs(mn) > 0 ? fabs(mn) : 1);
    *lo = mn, *hi = mx;
}

/* Appends s to line at *pos (bounded). */
static void put(char *line, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= BN_GRAPH_LINE_MAX) n = BN_GRAPH_LINE_MAX - 1 - *pos;
    memcpy(line + *pos, s, n);
    *pos += n;
    line[*pos] = '\0';
}

/* Level (0 .. total) of slot k. */
static int level(const slots *sl, int k, double lo, double hi, int total)
{
    if (k >= sl->n || !sl->has[k] || !(sl->v[k] > lo)) return 0;
    int h = (int)lround((sl->v[k] - lo) / (hi - lo) * total);
    if (h < 1) h = 1;
    return h > total ? total : h;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The text of one plot cell (row r of R from the top, column c). */
static void cell(const slots *sl, bn_graph_style st, int r, int R, int c, double lo, double hi,
                 char out[8])
{
    static const char *const eighths[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588"};
    if (st == BN_GRAPH_BRAILLE) {
        static const unsigned left[] = {0x40, 0x04, 0x02, 0x01}, right[] = {0x80, 0x20, 0x10, 0x08};
        const int base = (R - 1 - r) * 4;
        const int nl = clampi(level(sl, 2 * c, lo, hi, R * 4) - base, 0, 4);
        const int nr = clampi(level(sl, 2 * c + 1, lo, hi, R * 4) - base, 0, 4);
        unsigned bits = 0;
        for (int i = 0; i < nl; i++) bits |= left[i];
        for (int i = 0; i < nr; i++) bits |= right[i];
        if (!bits) {
            strcpy(out, " ");
            return;
        }
        const unsigned cp = 0x2800 + bits;
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        out[3] = '\0';
    } else if (st == BN_GRAPH_BLOCK) {
        const int n = clampi(level(sl, c, lo, hi, R * 8) - (R - 1 - r) * 8, 0, 8);
        strcpy(out, eighths[n]);
    } else {
        const int n = clampi(level(sl, c, lo, hi, R * 2) - (R - 1 - r) * 2, 0, 2);
        out[0] = " .#"[n];
        out[1] = '\0';
    }
}

/* The time axis: left, middle and right texts over the plot width P after lw columns. */
static void time_axis(const bn_graph_opts *o, int lw, int P, char *line)
{
    char l[32], m[32];
    fmt_ago(o->span, l, sizeof l);
    fmt_ago(o->span / 2, m, sizeof m);
    const char *left = o->x_left ? o->x_left : l, *mid = o->x_mid ? o->x_mid : m;
    const char *right = o->x_right ? o->x_right : "now";
    char row[BN_GRAPH_MAX_COLS + 1];
    memset(row, ' ', (size_t)P);
    row[P] = '\0';
    const int nl = (int)strlen(left), nm = (int)strlen(mid), nr = (int)strlen(right);
    int right_at = P - nr, mid_at = P / 2 - nm / 2;
    if (right_at >= 0) memcpy(row + right_at, right, (size_t)nr);
    if (mid_at > nl && mid_at + nm < right_at) memcpy(row + mid_at, mid, (size_t)nm);
    if (nl < right_at) memcpy(row, left, (size_t)nl);
    snprintf(line, BN_GRAPH_LINE_MAX, "%*s%s", lw, "", row);
}

int bn_graph_render(const bn_series *s, const bn_graph_opts *o, bn_graph_out *out)
{
    out->rows = 0;
    if (o->width < 8 || o->height < 2 || o->width > BN_GRAPH_MAX_COLS ||
        o->height > BN_GRAPH_MAX_ROWS || !(o->span > 0))
        return -1;
    const int R = o->height - 1; /* plot rows; the last row is the time axis */
    char hs[32], ls[32];
    static slots sl_buf; /* large; rendering happens on one thread */
    slots *sl = &sl_buf;
    /* the label width depends on the range, which depends on the slots: fill them for the
     * widest plot first, then again for the real width (cheap: at most BN_SERIES_MAX) */
    sl->n = (o->style == BN_GRAPH_BRAILLE ? 2 : 1) * (o->width - 3);
    fill_slots(s, o, sl);
    double lo, hi;
    data_range(sl, o, &lo, &hi);
    const char *unit = o->unit ? o->unit : "";
    char a[24], b[24];
    bn_graph_fmt_num(hi, a, sizeof a);
    bn_graph_fmt_num(lo, b, sizeof b);
    snprintf(hs, sizeof hs, "%s%s", a, unit);
    snprintf(ls, sizeof ls, "%s%s", b, unit);
    int lw = (int)strlen(hs);
    if ((int)strlen(ls) > lw) lw = (int)strlen(ls);
    if (lw > o->width - 6) lw = o->width - 6;
    const int P = o->width - lw - 2;
    sl->n = (o->style == BN_GRAPH_BRAILLE ? 2 : 1) * P;
    out->n_samples = fill_slots(s, o, sl);
    data_range(sl, o, &lo, &hi);
    out->lo = lo, out->hi = hi, out->label_w = lw + 2;
    int any = 0;
    for (int k = 0; k < sl->n; k++) any |= sl->has[k];
    const int ascii = o->style == BN_GRAPH_ASCII;
    for (int r = 0; r < R; r++) {
        char *line = out->line[r];
        size_t pos = 0;
        char lab[64];
        const char *txt = r == 0 ? hs : (r == R - 1 ? ls : "");
        snprintf(lab, sizeof lab, "%*.*s ", lw, lw, txt);
        line[0] = '\0';
        put(line, &pos, lab);
        put(line, &pos, *txt ? (ascii ? "+" : "\u2524") : (ascii ? "|" : "\u2502"));
        for (int c = 0; c < P; c++) {
            char cs[8];
            cell(sl, o->style, r, R, c, lo, hi, cs);
            if (!any && r == R / 2 && c >= P / 2 - 3 && c < P / 2 + 4)
                cs[0] = "no data"[c - (P / 2 - 3)], cs[1] = '\0';
            put(line, &pos, cs);
        }
    }
    time_axis(o, lw + 2, P, out->line[R]);
    out->rows = o->height;
    return 0;
}
