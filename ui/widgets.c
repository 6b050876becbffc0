/* widgets.c - drawing helpers for the screens; see widgets.h. */
#include "widgets.h"

#include <curses.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

/* ---- UTF-8 ----------------------------------------------------------------------------- */

/* Decodes one character of s (n > 0 bytes); returns its length (>= 1). Invalid or
 * truncated sequences give U+FFFD for one byte. */
static size_t utf8_dec(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len;
    uint32_t c, min;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    } else if ((u[0] & 0xe0) == 0xc0) {
        len = 2, c = u[0] & 0x1f, min = 0x80;
    } else if ((u[0] & 0xf0) == 0xe0) {
        len = 3, c = u[0] & 0x0f, min = 0x800;
    } else if ((u[0] & 0xf8) == 0xf0) {
        len = 4, c = u[0] & 0x07, min = 0x10000;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (len > n) {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        c = (c << 6) | (u[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c < 0xe000)) c = 0xfffd;
    *cp = c;
    return len;
}

/* Columns of code point cp as drawn (0 for combining marks). */
static int cp_width(uint32_t cp)
{
    if (cp < 0x80) return 1;
    if (!crt_unicode()) return 1;
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w;
}

int ui_textn(int y, int x, int w, int attr, const char *s, size_t n)
{
    if (w <= 0 || !s) return 0;
    move(y, x);
    attron(attr);
    int col = 0;
    size_t i = 0;
    while (i < n && s[i] && col < w) {
        uint32_t cp;
        const size_t len = utf8_dec(s + i, n - i, &cp);
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) cp = cp == '\t' ? ' ' : '?';
        int cw = cp_width(cp);
        if (col + cw > w) break;
        if (cp < 0x80) {
            addch((chtype)cp);
        } else if (!crt_unicode()) {
            addch('?');
        } else if (cp == 0xfffd && len == 1) {
            addstr("\xef\xbf\xbd");
        } else if (cw == 0 && col == 0) {
            /* a combining mark with nothing before it: skip */
        } else {
            addnstr(s + i, (int)len);
        }
        col += cw;
        i += len;
    }
    attroff(attr);
    return col;
}

int ui_text(int y, int x, int w, int attr, const char *s)
{
    return s ? ui_textn(y, x, w, attr, s, strlen(s)) : 0;
}

int ui_printf(int y, int x, int w, int attr, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ui_text(y, x, w, attr, buf);
}

static int width_n(const char *s, size_t n)
{
    int col = 0;
    for (size_t i = 0; i < n && s[i];) {
        uint32_t cp;
        i += utf8_dec(s + i, n - i, &cp);
        col += cp < 0x20 ? 1 : cp_width(cp);
    }
    return col;
}

int ui_width(const char *s)
{
    return s ? width_n(s, strlen(s)) : 0;
}

/* The ellipsis that marks a cut, and its columns. */
static const char *ellipsis(int *cols)
{
    *cols = crt_unicode() ? 1 : 3;
    return crt_unicode() ? "\u2026" : "...";
}

/* Bytes of the first characters of s (n bytes) that fit in cols columns. */
static size_t bytes_in_cols(const char *s, size_t n, int cols)
{
    size_t i = 0;
    int col = 0;
    while (i < n && s[i]) {
        uint32_t cp;
        const size_t len = utf8_dec(s + i, n - i, &cp);
        const int cw = cp < 0x20 ? 1 : cp_width(cp);
        if (col + cw > cols) break;
        col += cw, i += len;
    }
    return i;
}

/* The byte where the last cols columns of s (n bytes) start. */
static size_t tail_start(const char *s, size_t n, int cols)
{
    size_t i = 0;
    while (i < n && width_n(s + i, n - i) > cols) {
        uint32_t cp;
        i += utf8_dec(s + i, n - i, &cp);
    }
    return i;
}

/* s in w columns; when too long, its end (tail 0) or its start (tail 1) is cut and an
 * ellipsis takes the cut's place */
static int text_cut(int y, int x, int w, int attr, const char *s, int tail)
{
    if (!s || w <= 0) return 0;
    const size_t n = strlen(s);
    int ew;
    const char *e = ellipsis(&ew);
    if (width_n(s, n) <= w || w <= ew) return ui_textn(y, x, w, attr, s, n);
    if (!tail) {
        const int used = ui_textn(y, x, w - ew, attr, s, bytes_in_cols(s, n, w - ew));
        return used + ui_text(y, x + used, ew, attr, e);
    }
    const int used = ui_text(y, x, ew, attr, e);
    const size_t from = tail_start(s, n, w - ew);
    return used + ui_textn(y, x + used, w - ew, attr, s + from, n - from);
}

int ui_text_cut(int y, int x, int w, int attr, const char *s)
{
    return text_cut(y, x, w, attr, s, 0);
}

int ui_text_tail(int y, int x, int w, int attr, const char *s)
{
    return text_cut(y, x, w, attr, s, 1);
}

void ui_fit_path(const char *s, int w, char *out, size_t size)
{
    snprintf(out, size, "%s", s);
    const size_t n = strlen(s);
    const int over = width_n(s, n) - w;
    if (over <= 0) return;
    size_t best = 0, best_len = 0; /* the longest word with a '/' */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != ' ') j++;
        if (memchr(s + i, '/', j - i) && j - i > best_len) best = i, best_len = j - i;
        i = j + 1;
    }
    int ew;
    const char *e = ellipsis(&ew);
    const int keep = width_n(s + best, best_len) - over - ew;
    if (!best_len || keep < 4) return;
    const size_t from = best + tail_start(s + best, best_len, keep);
    snprintf(out, size, "%.*s%s%s", (int)best, s, e, s + from);
}

void ui_clear(int y, int x, int w, int attr)
{
    if (w <= 0) return;
    attron(attr);
    mvhline(y, x, ' ', w);
    attroff(attr);
}

const char *ui_bytes(unsigned long long b, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

const char *ui_time(long long ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000), now = time(NULL);
    struct tm tm, tn;
    localtime_r(&t, &tm);
    localtime_r(&now, &tn);
    if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday)
        strftime(buf, size, "%H:%M:%S", &tm);
    else
        strftime(buf, size, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

/* ---- frames, bars, graphs ------------------------------------------------------------------ */

void ui_hline(int y, int x, int w, int attr)
{
    if (w <= 0) return;
    attron(attr);
    mvhline(y, x, crt_unicode() ? ACS_HLINE : '-', w);
    attroff(attr);
}

void ui_box(int y, int x, int h, int w, const char *title)
{
    if (h < 2 || w < 2) return;
    const int a = crt_attr(CR_BORDER), u = crt_unicode();
    attron(a);
    mvhline(y, x + 1, u ? ACS_HLINE : '-', w - 2);
    mvhline(y + h - 1, x + 1, u ? ACS_HLINE : '-', w - 2);
    mvvline(y + 1, x, u ? ACS_VLINE : '|', h - 2);
    mvvline(y + 1, x + w - 1, u ? ACS_VLINE : '|', h - 2);
    mvaddch(y, x, u ? ACS_ULCORNER : '+');
    mvaddch(y, x + w - 1, u ? ACS_URCORNER : '+');
    mvaddch(y + h - 1, x, u ? ACS_LLCORNER : '+');
    mvaddch(y + h - 1, x + w - 1, u ? ACS_LRCORNER : '+');
    attroff(a);
    if (title && *title && w > 6) {
        char t[256];
        snprintf(t, sizeof t, " %s ", title);
        ui_text(y, x + 2, w - 4, crt_attr(CR_TITLE), t);
    }
}

void ui_meter(int y, int x, int w, double frac, int attr, const char *label)
{
    int lw = label ? ui_width(label) : 0;
    int bw = w - (lw ? lw + 1 : 0);
    if (bw < 3) bw = w, lw = 0;
    if (!(frac >= 0)) frac = 0;
    if (frac > 1) frac = 1;
    const int eighths = (int)(frac * bw * 8 + 0.5);
    const int full = eighths / 8, part = eighths % 8;
    static const char *const parts[] = {"",       "\u258f", "\u258e", "\u258d",
                                        "\u258c", "\u258b", "\u258a", "\u2589"};
    move(y, x);
    attron(attr);
    for (int i = 0; i < full; i++) addstr(crt_unicode() ? "\u2588" : "#");
    int used = full;
    if (part && used < bw) {
        addstr(crt_unicode() ? parts[part] : (part >= 4 ? "#" : ""));
        if (crt_unicode() || part >= 4) used++;
    }
    attroff(attr);
    const int dim = crt_attr(CR_DIM);
    attron(dim);
    for (; used < bw; used++) addstr(crt_unicode() ? "\u00b7" : ".");
    attroff(dim);
    if (label && lw) ui_text(y, x + bw + 1, w - bw - 1, 0, label);
}

static bn_graph_style graph_style = BN_GRAPH_BRAILLE;

void ui_graph_style_set(bn_graph_style st)
{
    graph_style = st;
}

bn_graph_style ui_graph_style(void)
{
    return crt_unicode() ? graph_style : BN_GRAPH_ASCII;
}

static double view_span, view_hold, view_frozen;

void ui_graph_view_set(double span, double hold, double frozen)
{
    view_span = span, view_hold = hold, view_frozen = frozen;
}

/* Bytes of the first cols columns of a graph line. */
static size_t bytes_for_cols(const char *s, int cols)
{
    size_t i = 0;
    for (int c = 0; c < cols && s[i]; c++) {
        uint32_t cp;
        i += utf8_dec(s + i, strlen(s + i), &cp);
    }
    return i;
}

void ui_graph(int y, int x, int h, int w, const bn_series *s, bn_graph_opts o, int attr)
{
    static bn_graph_out g; /* about 80 KB; drawing happens on one thread */
    o.width = w > BN_GRAPH_MAX_COLS ? BN_GRAPH_MAX_COLS : w;
    o.height = h > BN_GRAPH_MAX_ROWS ? BN_GRAPH_MAX_ROWS : h;
    o.style = ui_graph_style();
    if (view_span > 0) o.span = view_span;
    if (view_hold > o.hold_s) o.hold_s = view_hold;
    if (view_frozen > 0) o.t_end = view_frozen, o.x_right = "paused";
    if (bn_graph_render(s, &o, &g) != 0) {
        if (h > 0 && w > 0) ui_text(y, x, w, crt_attr(CR_DIM), "(too small for a graph)");
        return;
    }
    const int dim = crt_attr(CR_DIM);
    for (int r = 0; r < g.rows; r++) {
        const char *line = g.line[r];
        if (r == g.rows - 1) {
            ui_text(y + r, x, w, dim, line);
            continue;
        }
        const size_t lb = bytes_for_cols(line, g.label_w);
        move(y + r, x);
        attron(dim);
        addnstr(line, (int)lb);
        attroff(dim);
        attron(attr);
        addstr(line + lb);
        attroff(attr);
    }
}

int ui_button(int y, int x, const char *label, int key, int enabled, int focused)
{
    char b[128];
    snprintf(b, sizeof b, "[ %s ]", label);
    const int a = !enabled ? crt_attr(CR_DIM) : focused ? crt_attr(CR_SELECT) : crt_attr(CR_TITLE);
    const int w = ui_text(y, x, 200, a, b);
    if (enabled) ui_hit(y, x, w, key);
    return w;
}

/* ---- an editable line ------------------------------------------------------------------------ */

void ui_input_set(ui_input *in, const char *s)
{
    snprintf(in->buf, sizeof in->buf, "%s", s ? s : "");
    in->len = in->cur = strlen(in->buf);
    in->all = in->len > 0;
}

static size_t prev_char(const ui_input *in, size_t at)
{
    if (at == 0) return 0;
    at--;
    while (at > 0 && ((unsigned char)in->buf[at] & 0xc0) == 0x80) at--;
    return at;
}

static size_t next_char(const ui_input *in, size_t at)
{
    if (at >= in->len) return in->len;
    at++;
    while (at < in->len && ((unsigned char)in->buf[at] & 0xc0) == 0x80) at++;
    return at;
}

static void erase_range(ui_input *in, size_t a, size_t b)
{
    memmove(in->buf + a, in->buf + b, in->len - b + 1);
    in->len -= b - a;
    in->cur = a;
}

static int input_char(int ch)
{
    return ch >= 0x20 && ch <= 0xff && ch != 0x7f;
}

/* A key on a selected value: a character replaces it, an erasing key empties it, Left and
 * Home go to its start, Right and End to its end; 1 when the key is done with. Other keys
 * leave the selection as it is. */
static int input_selected_key(ui_input *in, int ch)
{
    switch (ch) {
    case KEY_LEFT:
    case KEY_HOME:
    case 1:
        in->cur = 0;
        break;
    case KEY_RIGHT:
    case KEY_END:
    case 5:
        in->cur = in->len;
        break;
    case KEY_BACKSPACE:
    case 127:
    case 8:
    case KEY_DC:
    case 4:
    case 11:
    case 21:
    case 23:
        in->buf[0] = '\0';
        in->len = in->cur = 0;
        break;
    default:
        if (!input_char(ch)) return 0;
        in->buf[0] = '\0';
        in->len = in->cur = 0;
        in->all = 0;
        return 0; /* typed below */
    }
    in->all = 0;
    return 1;
}

int ui_input_key(ui_input *in, int ch)
{
    if (in->all && input_selected_key(in, ch)) return 1;
    if (input_char(ch)) {
        if (in->len + 1 >= sizeof in->buf) return 1;
        memmove(in->buf + in->cur + 1, in->buf + in->cur, in->len - in->cur + 1);
        in->buf[in->cur++] = (char)ch;
        in->len++;
        return 1;
    }
    switch (ch) {
    case KEY_LEFT:
        in->cur = prev_char(in, in->cur);
        return 1;
    case KEY_RIGHT:
        in->cur = next_char(in, in->cur);
        return 1;
    case KEY_HOME:
    case 1: /* Ctrl-A */
        in->cur = 0;
        return 1;
    case KEY_END:
    case 5: /* Ctrl-E */
        in->cur = in->len;
        return 1;
    case KEY_BACKSPACE:
    case 127:
    case 8:
        if (in->cur > 0) erase_range(in, prev_char(in, in->cur), in->cur);
        return 1;
    case KEY_DC:
    case 4: /* Ctrl-D */
        if (in->cur < in->len) erase_range(in, in->cur, next_char(in, in->cur));
        return 1;
    case 21: /* Ctrl-U: the whole line */
        in->buf[0] = '\0';
        in->len = in->cur = 0;
        return 1;
    case 11: /* Ctrl-K */
        in->buf[in->cur] = '\0';
        in->len = in->cur;
        return 1;
    case 23: { /* Ctrl-W: the word before the cursor */
        size_t a = in->cur;
        while (a > 0 && in->buf[a - 1] == ' ') a--;
        while (a > 0 && in->buf[a - 1] != ' ') a--;
        erase_range(in, a, in->cur);
        return 1;
    }
    default:
        return 0;
    }
}

void ui_input_draw(const ui_input *in, int y, int x, int w, int focused)
{
    if (w <= 0) return;
    const int a = crt_attr(CR_INPUT);
    ui_clear(y, x, w, a);
    if (in->all && focused) { /* selected: shown reversed, its end in view */
        ui_text_tail(y, x, w, a | A_REVERSE, in->buf);
        return;
    }
    size_t start = 0;
    if (focused) /* scroll so that the cursor is inside the last column */
        while (start < in->cur && width_n(in->buf + start, in->cur - start) > w - 1)
            start = next_char(in, start);
    const int before = ui_textn(y, x, w, a, in->buf + start, in->cur - start);
    const int after = ui_textn(y, x + before, w - before, a, in->buf + in->cur, in->len - in->cur);
    (void)after;
    if (!focused || before >= w) return;
    char c[8] = " ";
    if (in->cur < in->len) {
        size_t n = next_char(in, in->cur) - in->cur;
        memcpy(c, in->buf + in->cur, n);
        c[n] = '\0';
    }
    ui_text(y, x + before, w - before, a | A_REVERSE, c);
}

/* ---- a scrolling list --------------------------------------------------------------------------
 */

void ui_list_layout(ui_list *l, int n, int h)
{
    l->n = n;
    l->h = h < 1 ? 1 : h;
    if (n <= 0) {
        l->sel = -1, l->top = 0;
        return;
    }
    if (l->sel < 0) l->sel = 0;
    if (l->sel >= n) l->sel = n - 1;
    if (l->top > l->sel) l->top = l->sel;
    if (l->sel >= l->top + l->h) l->top = l->sel - l->h + 1;
    if (l->top > n - l->h) l->top = n - l->h;
    if (l->top < 0) l->top = 0;
}

int ui_list_key(ui_list *l, int ch)
{
    int to = l->sel;
    if (ch == KEY_UP)
        to--;
    else if (ch == KEY_DOWN)
        to++;
    else if (ch == UI_KEY_WHEEL_UP)
        to -= 3;
    else if (ch == UI_KEY_WHEEL_DOWN)
        to += 3;
    else if (ch == KEY_PPAGE)
        to -= l->h > 1 ? l->h - 1 : 1;
    else if (ch == KEY_NPAGE)
        to += l->h > 1 ? l->h - 1 : 1;
    else if (ch == KEY_HOME)
        to = 0;
    else if (ch == KEY_END)
        to = l->n - 1;
    else if (ch >= UI_KEY_ROW && ch < UI_KEY_SCREEN)
        to = ch - UI_KEY_ROW;
    else
        return 0;
    if (l->n <= 0) return 1;
    l->sel = to < 0 ? 0 : to >= l->n ? l->n - 1 : to;
    ui_list_layout(l, l->n, l->h);
    return 1;
}

void ui_list_hits(const ui_list *l, int y, int x, int w)
{
    for (int r = 0; r < l->h && l->top + r < l->n; r++)
        ui_hit(y + r, x, w, UI_KEY_ROW + l->top + r);
}

/* ---- wrapped text -------------------------------------------------------------------------------
 */

int ui_wrap(const char *text, size_t len, int w, ui_wrap_fn fn, void *ud)
{
    int lines = 0;
    if (w < 1) w = 1;
    size_t i = 0;
    while (i < len) {
        size_t start = i, brk = 0;
        int col = 0, have_brk = 0;
        while (i < len && text[i] != '\n') {
            uint32_t cp;
            const size_t n = utf8_dec(text + i, len - i, &cp);
            const int cw = cp < 0x20 ? 1 : cp_width(cp);
            if (col + cw > w) break;
            if (cp == ' ') brk = i, have_brk = 1;
            col += cw;
            i += n;
        }
        if (i < len && text[i] == '\n') {
            fn(ud, lines++, text + start, i - start);
            i++;
        } else if (i < len) { /* the line is full: break at the last space if any */
            if (have_brk && brk > start) {
                fn(ud, lines++, text + start, brk - start);
                i = brk + 1;
            } else {
                if (i == start) i += 1; /* a character wider than w */
                fn(ud, lines++, text + start, i - start);
            }
        } else {
            fn(ud, lines++, text + start, i - start);
        }
    }
    if (len > 0 && text[len - 1] == '\n') fn(ud, lines++, text + len, 0);
    return lines;
}

typedef struct block_ctx {
    int y, x, h, w, attr, first;
} block_ctx;

static void block_line(void *ud, int i, const char *s, size_t n)
{
    const block_ctx *b = ud;
    if (i >= b->first && i < b->first + b->h)
        ui_textn(b->y + i - b->first, b->x, b->w, b->attr, s, n);
}

int ui_text_block(int y, int x, int h, int w, int attr, const char *text, size_t len, int first)
{
    block_ctx b = {y, x, h, w, attr, first};
    return ui_wrap(text, len, w, block_line, &b);
}

/* ---- mouse hit regions
 * --------------------------------------------------------------------------- */

#define MAX_HITS 512

static struct {
    int y, x, w, key;
} hits[MAX_HITS];
static int n_hits;

void ui_hits_reset(void)
{
    n_hits = 0;
}

void ui_hit(int y, int x, int w, int key)
{
    if (n_hits < MAX_HITS && w > 0) {
        hits[n_hits].y = y, hits[n_hits].x = x, hits[n_hits].w = w, hits[n_hits].key = key;
        n_hits++;
    }
}

int ui_hit_at(int y, int x)
{
    for (int i = n_hits - 1; i >= 0; i--)
        if (hits[i].y == y && x >= hits[i].x && x < hits[i].x + hits[i].w) return hits[i].key;
    return 0;
}
