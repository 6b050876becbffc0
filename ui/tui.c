/* tui.c - the TUI's main loop: input (terminal, mouse, scripted keys), the tab bar, the
 * status line, the help overlay, and the frames. See ui.h and tui.h. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "common/history.h"
#include "keys.h"

const char *const bn_tui_screen_names[] = {"dashboard", "setup",      "hardware",    "models",
                                           "chat",      "benchmarks", "conversions", "history",
                                           "alerts",    "server",     "usage",       NULL};

void bn_tui_opts_init(bn_tui_opts *o)
{
    memset(o, 0, sizeof *o);
    o->graph_style = -1;
}

int bn_tui_terminal_check(char *why, size_t size)
{
    const char *term = getenv("TERM");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(why, size, "not a terminal (%s is redirected)",
                 !isatty(STDIN_FILENO) ? "standard input" : "standard output");
        return -1;
    }
    if (!term || !*term) {
        snprintf(why, size, "TERM is not set");
        return -1;
    }
    if (!strcmp(term, "dumb")) {
        snprintf(why, size, "the terminal is dumb (TERM=dumb): it cannot draw a full screen");
        return -1;
    }
    return 0;
}

/* ---- the wake-up pipe (written from the worker threads) ------------------------------------ */

typedef struct waker {
    int fd[2];
} waker;

static void wake_engine(void *ud)
{
    const char c = 'e';
    if (write(((waker *)ud)->fd[1], &c, 1) < 0) { /* full: a wake-up is pending anyway */
    }
}

void tui_wake(tui *t)
{
    const char c = 'e';
    if (write(t->wake_fd, &c, 1) < 0) {}
}

static void wake_monitor(void *ud)
{
    const char c = 'm';
    if (write(((waker *)ud)->fd[1], &c, 1) < 0) {}
}

/* ---- helpers for the screens ------------------------------------------------------------------
 */

void tui_status(tui *t, crt_role role, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->status, sizeof t->status, fmt, ap);
    va_end(ap);
    t->status_attr = crt_attr(role);
    t->status_t = bn_time_now();
    t->dirty = 1;
}

void tui_switch(tui *t, int screen)
{
    if (screen < 0 || screen >= SCR_COUNT) return;
    t->cur = screen;
    t->help = 0;
    const tui_screen *s = t->screens[screen];
    if (s->enter) s->enter(t, t->state[screen]);
    t->dirty = 1;
}

bn_db *tui_db(tui *t)
{
    if (t->db) return t->db;
    const double now = bn_time_now();
    if (t->db_last_try && now - t->db_last_try < 5) return NULL;
    t->db_last_try = now;
    char path[BN_CONFIG_PATH_MAX + 16];
    if (cm_history_open(&t->db, path, sizeof path, t->db_err, sizeof t->db_err) != 0) {
        t->db = NULL;
        return NULL;
    }
    t->db_err[0] = '\0';
    return t->db;
}

void tui_db_reset(tui *t)
{
    bn_db_close(t->db);
    t->db = NULL;
    t->db_last_try = 0;
}

/* Several connections to the history live in this process (this one, and those the engine
 * worker's runs open through common/history.h). bn_db_open() opens and closes the file itself
 * before sqlite does, and a close() drops every POSIX lock this process holds on the file,
 * sqlite's included; another process may then checkpoint and remove the WAL under a
 * connection here, which afterwards reports "database disk image is malformed". Reading on
 * a fresh connection gives the right view again. */
bn_status tui_run_list(tui *t, const bn_run_filter *f, bn_run **runs, size_t *n, char *err,
                       size_t errsz)
{
    bn_status s = BN_ERR_IO;
    *runs = NULL, *n = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        bn_db *db = tui_db(t);
        if (!db) {
            snprintf(err, errsz, "the history cannot be opened: %.400s", t->db_err);
            return BN_ERR_IO;
        }
        s = bn_db_run_list(db, f, runs, n);
        if (s == BN_OK) return BN_OK;
        snprintf(err, errsz, "history: %.400s", bn_db_errmsg(db));
        tui_db_reset(t);
    }
    return s;
}

void tui_reload_config(tui *t)
{
    bn_config *c = NULL;
    if (bn_config_load(&c, t->cfg_err, sizeof t->cfg_err) != 0) return;
    bn_config_free(t->cfg);
    t->cfg = c;
    t->cfg_err[0] = '\0';
}

void tui_sampling(const tui *t, eng_gen_params *gp, int n)
{
    memset(gp, 0, sizeof *gp);
    bn_sampler_params *sp = &gp->sp;
    *sp = bn_sampler_params_default();
    gp->seed_clock = 1;
    gp->n_predict = n;
    if (!t->cfg) return;
    sp->temperature = (float)bn_config_get_double(t->cfg, "temp");
    sp->top_k = (int32_t)bn_config_get_int(t->cfg, "top_k");
    sp->top_p = (float)bn_config_get_double(t->cfg, "top_p");
    sp->min_p = (float)bn_config_get_double(t->cfg, "min_p");
    sp->repeat_penalty = (float)bn_config_get_double(t->cfg, "repeat_penalty");
    const long long seed = bn_config_get_int(t->cfg, "seed");
    gp->seed_clock = seed < 0;
    sp->seed = seed < 0 ? 0 : (uint64_t)seed;
}

const char *tui_base(const char *path)
{
    const char *b = path ? strrchr(path, '/') : NULL;
    return b ? b + 1 : path ? path : "";
}

/* The first *.gguf in the bundled models directory (alphabetically). */
static void find_bundled(tui *t)
{
    t->bundled[0] = t->bundled_dir[0] = '\0';
    if (bn_bundled_models_dir(t->bundled_dir, sizeof t->bundled_dir) != 0) return;
    DIR *d = opendir(t->bundled_dir);
    if (!d) return;
    char best[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > 5 && !strcmp(e->d_name + n - 5, ".gguf") &&
            (!best[0] || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (best[0]) snprintf(t->bundled, sizeof t->bundled, "%s/%s", t->bundled_dir, best);
}

/* ---- drawing
 * ------------------------------------------------------------------------------------- */

/* The position of the screen's letter in its name (case-insensitive), or -1. */
static int hot_index(const tui_screen *s)
{
    for (int i = 0; s->name[i]; i++)
        if ((s->name[i] | 0x20) == (s->letter | 0x20)) return i;
    return -1;
}

static void draw_tabs(tui *t)
{
    const int bar = crt_attr(CR_BAR);
    ui_clear(0, 0, COLS, bar);
    /* whole names with a blank before each tab if they fit, else without it; then the
     * names' first letters, as many as fit */
    int maxlen = 32, pad = 1;
    for (; maxlen > 1; maxlen -= !pad, pad = 0) {
        int need = 0;
        for (int i = 0; i < SCR_COUNT; i++) {
            const int n = (int)strlen(t->screens[i]->name);
            const int fk = t->screens[i]->fkey;
            need += (fk >= 10 ? 5 : fk ? 4 : 0) + pad + (n < maxlen ? n : maxlen);
        }
        if (need <= COLS) break;
    }
    int x = 0;
    for (int i = 0; i < SCR_COUNT && x < COLS; i++) {
        const tui_screen *s = t->screens[i];
        const int act = i == t->cur, a = act ? crt_attr(CR_TAB_ACTIVE) : bar;
        const int x0 = x;
        char fk[8];
        if (s->fkey)
            snprintf(fk, sizeof fk, "%sF%d ", pad ? " " : "", s->fkey);
        else /* its letter opens it */
            snprintf(fk, sizeof fk, "%s", pad ? " " : "");
        x += ui_text(0, x, COLS - x, a, fk);
        const int hot = hot_index(s), n = (int)strlen(s->name);
        for (int c = 0; c < n && c < maxlen && x < COLS; c++) {
            char ch[2] = {s->name[c], 0};
            x += ui_text(0, x, 1, c == hot ? (act ? a | (int)A_UNDERLINE : crt_attr(CR_HOTKEY)) : a,
                         ch);
        }
        if (x < COLS) x += ui_text(0, x, 1, a, " ");
        ui_hit(0, x0, x - x0, UI_KEY_SCREEN + i);
    }
    const char *hint = " ?:help q:quit ";
    if (COLS - x >= (int)strlen(hint)) ui_text(0, COLS - (int)strlen(hint), COLS, bar, hint);
}

static void draw_status(tui *t)
{
    const int y = LINES - 2, a = crt_attr(CR_STATUS);
    ui_clear(y, 0, COLS, a);
    eng_status st;
    eng_status_get(t->eng, &st);
    char right[256];
    const char *model = st.model.loaded ? tui_base(st.model.path) : "no model";
    switch (st.job) {
    case ENG_LOADING:
        snprintf(right, sizeof right, " working: %.60s ", model);
        break;
    case ENG_GENERATING:
        snprintf(right, sizeof right, " %.60s: generating, %lld tokens, %.1f tokens/s ", model,
                 st.gen_tokens, st.gen_tps);
        break;
    case ENG_BENCHING:
        snprintf(right, sizeof right, " %.60s: benchmark, %s %d/%d ", model, st.bench_phase,
                 st.bench_rep + 1, st.bench_reps);
        break;
    default:
        snprintf(right, sizeof right, " %.60s: idle ", model);
    }
    const int rw = ui_width(right);
    const int lw = COLS - rw - 1;
    char fit[sizeof t->status + 8];
    ui_fit_path(t->status, lw - 1, fit, sizeof fit); /* a long path shows its end */
    if (lw > 10) ui_text_cut(y, 1, lw - 1, a | (t->status_attr & ~A_COLOR), fit);
    ui_text(y, COLS - rw < 0 ? 0 : COLS - rw, COLS, a, right);
}

/* ---- the help overlay: wrapped at word boundaries, scrolled ------------------------------- */

#define HELP_KEY_W     16
#define HELP_MAX_LINES 400

typedef struct help_row {
    const char *key, *s; /* key: NULL but on the first line of a "KEY\tWHAT" */
    size_t kn, n;
    int indent; /* in the WHAT column */
} help_row;

typedef struct help_doc {
    help_row r[HELP_MAX_LINES];
    int n;
    const char *key; /* of the line being wrapped; NULL when it has none */
    size_t kn;
    int indent;
    int kw; /* the WHAT column: HELP_KEY_W, or 2 when narrow (the KEY on a row of its own) */
} help_doc;

static void help_piece(void *ud, int i, const char *s, size_t n)
{
    help_doc *d = ud;
    if (d->n == HELP_MAX_LINES) return;
    help_row *r = &d->r[d->n++];
    r->key = i == 0 ? d->key : NULL, r->kn = i == 0 ? d->kn : 0;
    r->s = s, r->n = n, r->indent = d->indent;
}

/* Adds the lines of text ("KEY\tWHAT" lines) wrapped to w columns. */
static void help_add(help_doc *d, const char *text, int w)
{
    for (const char *l = text; *l;) {
        const char *end = strchr(l, '\n'), *tab;
        const size_t len = end ? (size_t)(end - l) : strlen(l);
        tab = memchr(l, '\t', len);
        d->key = tab && tab > l ? l : NULL, d->kn = tab ? (size_t)(tab - l) : 0;
        d->indent = tab != NULL;
        const char *what = tab ? tab + 1 : l;
        const size_t wn = len - (size_t)(what - l);
        if (d->key && d->kw < HELP_KEY_W) { /* narrow: the key first, alone */
            help_piece(d, 0, what, 0);
            d->key = NULL;
        }
        if (wn == 0)
            help_piece(d, 0, what, 0);
        else
            ui_wrap(what, wn, tab ? w - d->kw : w, help_piece, d);
        l += len + (end ? 1 : 0);
    }
}

/* Copies help text to out, joining the lines of a paragraph ("\tWHAT" lines that follow
 * one another, with no KEY) into one line, which help_add then wraps to the width. */
static void help_join(const char *in, char *out, size_t size)
{
    size_t o = 0;
    int para = in[0] == '\t'; /* the line being copied has no KEY */
    for (size_t i = 0; in[i] && o + 1 < size; i++) {
        if (in[i] == '\n' && in[i + 1] == '\t' && para) {
            out[o++] = ' ';
            i++; /* the tab */
            continue;
        }
        out[o++] = in[i];
        if (in[i] == '\n') para = in[i + 1] == '\t';
    }
    out[o] = '\0';
}

static const char global_help[] =
        "F1 ?\tthis help (Esc closes it); Up Down PgUp PgDn Home End scroll it\n"
        "F2-F9 F11 F12\tthe screens; also 1-9, 0 and the underlined letter (U: Usage)\n"
        "Tab S-Tab\tnext / previous screen (in Chat's message line: Tab goes to its "
        "settings)\n"
        "g\tgraph style: braille, block, ascii\n"
        "w W\thow far back the graphs reach: 1, 5 or 15 minutes, an hour\n"
        "] [\tsample and redraw less / more often (0.5 to 30 s)\n"
        "z\tpause the meters and graphs\n"
        "O\tcolour theme: default, light (for a light background), mono\n"
        "Esc\tleave a text line; stop a generation or a benchmark\n"
        "q F10\tquit (F10 also while typing)\n"
        "mouse\tclick a tab, a row, a button or a key of the bottom bar; the wheel scrolls\n"
        "text lines\ta value shown selected is replaced by what you type; Ctrl-U clears, "
        "Left Right Home End move, Backspace and Delete erase\n";

static void draw_help(tui *t)
{
    const tui_screen *s = t->screens[t->cur];
    static help_doc d;
    const int w = COLS - 8 > 76 ? 76 : COLS - 8, tw = w - 4;
    d.n = 0;
    d.kw = tw - HELP_KEY_W >= 36 ? HELP_KEY_W : 2;
    help_add(&d, global_help, tw);
    char head[80];
    snprintf(head, sizeof head, "\n%s:\n", s->name);
    help_add(&d, head, tw);
    static char text[8192];
    help_join(s->help ? s->help : "", text, sizeof text);
    help_add(&d, text, tw);
    const int h = d.n + 4 > LINES - 4 ? LINES - 4 : d.n + 4, rows = h - 4;
    if (t->help_top > d.n - rows) t->help_top = d.n - rows;
    if (t->help_top < 0) t->help_top = 0;
    const int y = (LINES - h) / 2, x = (COLS - w) / 2;
    for (int r = 0; r < h; r++) ui_clear(y + r, x, w, 0);
    ui_box(y, x, h, w, "Help");
    for (int i = 0; i < rows && t->help_top + i < d.n; i++) {
        const help_row *r = &d.r[t->help_top + i];
        const int in = r->indent ? d.kw : 0;
        if (r->key)
            ui_textn(y + 2 + i, x + 2, d.kw < HELP_KEY_W ? tw : HELP_KEY_W - 1, crt_attr(CR_TITLE),
                     r->key, r->kn);
        ui_textn(y + 2 + i, x + 2 + in, tw - in, 0, r->s, r->n);
    }
    if (d.n > rows) {
        char pos[64];
        snprintf(pos, sizeof pos, " %d-%d of %d, %s ", t->help_top + 1, t->help_top + rows, d.n,
                 t->help_top + rows < d.n ? "Down: more" : "the end");
        if (w - ui_width(pos) >= 12) /* after " Help " */
            ui_text(y, x + w - 2 - ui_width(pos), ui_width(pos), crt_attr(CR_TITLE), pos);
    }
    char foot[128];
    snprintf(foot, sizeof foot, "bitnet %s · colours: %s · graphs: %s", BN_VERSION_STRING,
             crt_colors(), bn_graph_style_name(ui_graph_style()));
    ui_text(y + h - 1, x + 2, w - 4, crt_attr(CR_DIM), foot);
}

/* Help keys: scrolling, and what closes it. 1 when the key was used. */
static int help_key(tui *t, int ch)
{
    const int page = LINES - 9 > 1 ? LINES - 9 : 1;
    if (ch == KEY_UP || ch == UI_KEY_WHEEL_UP)
        t->help_top -= ch == KEY_UP ? 1 : 3;
    else if (ch == KEY_DOWN || ch == UI_KEY_WHEEL_DOWN)
        t->help_top += ch == KEY_DOWN ? 1 : 3;
    else if (ch == KEY_PPAGE)
        t->help_top -= page;
    else if (ch == KEY_NPAGE || ch == ' ')
        t->help_top += page;
    else if (ch == KEY_HOME)
        t->help_top = 0;
    else if (ch == KEY_END)
        t->help_top = HELP_MAX_LINES; /* clamped when drawn */
    else if (ch == 27 || ch == '?' || ch == KEY_F(1) || ch == '\n' || ch == '\r' ||
             ch == KEY_ENTER || ch == UI_KEY_CLICK)
        t->help = 0;
    else if (ch == 'q')
        t->quit = 1;
    else
        return 0;
    return 1;
}

/* ---- the key bar along the bottom (as htop's) ----------------------------------------------- */

/* What the key bar lists now: "KEY\tWHAT" lines. */
static const char *keybar_keys(const tui *t)
{
    if (t->help) return "Esc\tclose\nUp Down PgUp PgDn\tscroll\n";
    const tui_screen *s = t->screens[t->cur];
    void *st = t->state[t->cur];
    const char *k = s->keybar ? s->keybar(st) : NULL;
    if (k) return k;
    if (s->editing && s->editing(st)) return UI_INPUT_KEYS;
    return s->help ? s->help : "";
}

/* Whether a help line's KEY is a movement key (Up Down, PgUp, Left Right ...), which goes
 * without saying on a key bar made from the help. */
static int movement_key(const char *key, size_t kn)
{
    static const char *const moves[] = {"Up", "Down", "PgUp", "PgDn", "Left", "Right", "Home"};
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++)
        if (kn >= strlen(moves[i]) && !strncmp(key, moves[i], strlen(moves[i]))) return 1;
    return 0;
}

/* The label of a help line's WHAT on a key bar: its first words, up to 16 bytes, without
 * a dangling small word or punctuation at the end. */
static void short_label(const char *what, size_t wn, char *l, size_t size)
{
    static const char *const small[] = {"a",   "an",  "the", "its", "or", "of", "to",
                                        "and", "for", "by",  "in",  "on", "at", "with"};
    const size_t stop = strcspn(what, "(;:,\n"); /* the first clause */
    if (stop < wn) wn = stop;
    if (wn > 16) {
        size_t cut = 16;
        while (cut > 0 && what[cut] != ' ') cut--;
        wn = cut ? cut : 16;
    }
    snprintf(l, size, "%.*s", (int)wn, what);
    for (int again = 1; again;) {
        again = 0;
        wn = strlen(l);
        while (wn && strchr(",;:(/ ", l[wn - 1])) l[--wn] = '\0';
        const char *sp = strrchr(l, ' ');
        for (size_t i = 0; sp && i < sizeof small / sizeof small[0]; i++)
            if (!strcmp(sp + 1, small[i])) {
                l[sp - l] = '\0';
                again = 1;
                break;
            }
    }
}

/* One item, "KEY what", at x if it fits in w columns; returns the columns used (0: none).
 * A WHAT longer than a label (a help line) is cut to its first words. */
static int keybar_item(int y, int x, int w, const char *key, size_t kn, const char *what, size_t wn)
{
    char k[40], l[40];
    snprintf(k, sizeof k, "%.*s", (int)kn, key);
    short_label(what, wn, l, sizeof l);
    const int need = ui_width(k) + 1 + ui_width(l) + 2;
    if (!kn || need > w) return 0;
    int c = ui_text(y, x, w, crt_attr(CR_NORMAL) | A_BOLD, k);
    c += ui_text(y, x + c, w - c, crt_attr(CR_BAR), " ");
    c += ui_text(y, x + c, w - c, crt_attr(CR_BAR), l);
    return c + 2;
}

/* Draws the items of keys ("KEY\tWHAT" lines) from x while they fit before end; the
 * movement keys of a help text are left out (from_help). Returns the next x. */
static int keybar_items(int y, int x, int end, const char *keys, int from_help)
{
    for (const char *l = keys; *l;) {
        const char *nl = strchr(l, '\n');
        const size_t len = nl ? (size_t)(nl - l) : strlen(l);
        const char *tab = memchr(l, '\t', len);
        if (tab && tab > l && !(from_help && movement_key(l, (size_t)(tab - l)))) {
            const int c = keybar_item(y, x, end - x, l, (size_t)(tab - l), tab + 1,
                                      len - (size_t)(tab - l) - 1);
            if (!c) break;
            x += c;
        }
        l += len + (nl ? 1 : 0);
    }
    return x;
}

static void draw_keybar(tui *t, int y)
{
    ui_clear(y, 0, COLS, crt_attr(CR_BAR));
    const int qw = 10; /* "F10 Quit" at the right end */
    int x = keybar_item(y, 0, COLS - qw, "F1", 2, "Help", 4);
    ui_hit(y, 0, x, KEY_F(1));
    const tui_screen *s = t->screens[t->cur];
    const char *keys = keybar_keys(t);
    x = keybar_items(y, x, COLS - qw, keys, keys == s->help);
    const int editing = s->editing && s->editing(t->state[t->cur]);
    if (!t->help && !editing) /* room left: keys of every screen */
        keybar_items(y, x, COLS - qw, "Tab\tnext screen\ng\tgraphs\nz\tpause\n", 0);
    ui_hit(y, COLS - qw, keybar_item(y, COLS - qw, qw, "F10", 3, "Quit", 4), KEY_F(10));
}

static void draw(tui *t)
{
    ui_hits_reset();
    erase();
    if (LINES < 10 || COLS < 40) {
        ui_printf(0, 0, COLS, 0, "terminal too small (%dx%d): bitnet tui needs at least 40x10",
                  COLS, LINES);
        refresh();
        return;
    }
    draw_tabs(t);
    const tui_screen *s = t->screens[t->cur];
    s->draw(t, t->state[t->cur], 1, 0, LINES - 3, COLS);
    draw_status(t);
    if (t->help) draw_help(t);
    draw_keybar(t, LINES - 1);
    refresh();
}

/* ---- input
 * --------------------------------------------------------------------------------------- */

static int screen_of_key(const tui *t, int ch)
{
    for (int i = 0; i < SCR_COUNT; i++) {
        const int fk = t->screens[i]->fkey;
        if ((fk && ch == KEY_F(fk)) || ch == t->screens[i]->letter) return i;
        if (i < 9 && ch == '1' + i) return i; /* the tenth has '0' for its letter */
    }
    return -1;
}

static void handle_key(tui *t, int ch);

static void handle_mouse(tui *t)
{
    MEVENT ev;
    if (getmouse(&ev) != OK) return;
    if (ev.bstate & BUTTON4_PRESSED)
        handle_key(t, UI_KEY_WHEEL_UP);
    else if (ev.bstate & BUTTON5_PRESSED)
        handle_key(t, UI_KEY_WHEEL_DOWN);
    else if (ev.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED)) {
        const int k = ui_hit_at(ev.y, ev.x);
        if (k) handle_key(t, k);
    }
}

static void dispatch_key(tui *t, int ch);

/* A key; a message on the status line set before it goes when it changes the screen. */
static void handle_key(tui *t, int ch)
{
    const int cur = t->cur;
    const double said = t->status_t;
    dispatch_key(t, ch);
    if (t->cur != cur && t->status_t == said) t->status[0] = '\0';
}

static void dispatch_key(tui *t, int ch)
{
    const tui_screen *s = t->screens[t->cur];
    void *st = t->state[t->cur];
    t->dirty = 1;
    if (ch == KEY_RESIZE) return;
    if (ch == KEY_MOUSE) {
        handle_mouse(t);
        return;
    }
    if (ch == KEY_F(10)) {
        t->quit = 1;
        return;
    }
    if (t->help) {
        help_key(t, ch);
        return;
    }
    if (ch == KEY_F(1)) {
        t->help = 1, t->help_top = 0;
        return;
    }
    if (ch >= UI_KEY_SCREEN && ch < UI_KEY_SCREEN + SCR_COUNT) {
        tui_switch(t, ch - UI_KEY_SCREEN);
        return;
    }
    const int editing = s->editing && s->editing(st);
    if (!editing) {
        int to = ch >= KEY_F(1) && ch <= KEY_F(12) ? screen_of_key(t, ch) : -1;
        if (ch == 'q') {
            t->quit = 1;
            return;
        } else if (ch == '?') {
            t->help = 1, t->help_top = 0;
            return;
        } else if (ch == '\t' || ch == KEY_BTAB) {
            to = (t->cur + (ch == '\t' ? 1 : SCR_COUNT - 1)) % SCR_COUNT;
        } else if (tui_settings_key(t, ch)) { /* g w W [ ] z: settings.c */
            return;
        } else if (ch < 0x80 && to < 0) {
            to = screen_of_key(t, ch);
        }
        if (to >= 0) {
            tui_switch(t, to);
            return;
        }
    } else if (ch >= KEY_F(1) && ch <= KEY_F(12)) {
        const int to = screen_of_key(t, ch);
        if (to >= 0) {
            tui_switch(t, to);
            return;
        }
    }
    s->key(t, st, ch);
}

/* ---- the loop
 * -------------------------------------------------------------------------------------- */

typedef struct loop_stats {
    long frames, keys;
    double lat_max, lat_sum;
    double pending; /* time the first key not yet drawn arrived; 0 when none */
} loop_stats;

typedef struct script_state {
    key_script ks;
    int at;
    double due; /* when the next step may run */
    double idle_until;
} script_state;

static void script_mouse(tui *t, int kind, int x, int y)
{
    if (kind == KS_WHEEL_UP || kind == KS_WHEEL_DOWN) {
        handle_key(t, kind == KS_WHEEL_UP ? UI_KEY_WHEEL_UP : UI_KEY_WHEEL_DOWN);
        return;
    }
    const int k = ui_hit_at(y, x);
    if (k) handle_key(t, k);
    t->dirty = 1;
}

/* Runs the script's next step when it is due; returns the ms until it is (-1: done). */
static int script_step(tui *t, script_state *sc, loop_stats *ls, double now)
{
    while (sc->at < sc->ks.n) {
        const key_step *s = &sc->ks.steps[sc->at];
        if (now < sc->due) return (int)((sc->due - now) * 1000) + 1;
        if (s->kind == KS_SLEEP) {
            sc->at++;
            sc->due = now + s->ms / 1000.0;
            continue;
        }
        if (s->kind == KS_IDLE) {
            eng_status st;
            eng_status_get(t->eng, &st);
            if (sc->idle_until == 0) sc->idle_until = now + s->ms / 1000.0;
            if (st.job != ENG_IDLE && now < sc->idle_until) return 20;
            sc->idle_until = 0;
            sc->at++;
            continue;
        }
        sc->at++;
        if (!ls->pending) ls->pending = now;
        ls->keys++;
        if (s->kind == KS_KEY)
            handle_key(t, s->key);
        else
            script_mouse(t, s->kind, s->x, s->y);
        sc->due = now; /* the next key after this frame */
        return 0;
    }
    return -1;
}

static void drain_wakeups(tui *t, int fd, int *engine, int *monitor)
{
    char buf[64];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'e') *engine = 1;
            if (buf[i] == 'm') *monitor = 1;
        }
    (void)t;
}

/* On an engine wake-up: the screens take their output; a job that ended says so. */
static void engine_tick(tui *t, int *reported)
{
    eng_status st;
    eng_status_get(t->eng, &st);
    for (int i = 0; i < SCR_COUNT; i++)
        if (t->screens[i]->tick) t->screens[i]->tick(t, t->state[i]);
    if (st.job == ENG_IDLE && st.job_id != *reported) {
        *reported = st.job_id;
        t->hist_seq++;
        if (st.message[0]) tui_status(t, st.ok ? CR_OK : CR_FAIL, "%s", st.message);
    }
    t->dirty = 1;
}

static void write_stats(const tui *t, const loop_stats *ls, double t0)
{
    if (!t->opts.stats_file) return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "frames", (double)ls->frames);
    cJSON_AddNumberToObject(d, "keys", (double)ls->keys);
    cJSON_AddNumberToObject(d, "key_latency_ms_max", ls->lat_max * 1e3);
    cJSON_AddNumberToObject(d, "key_latency_ms_mean",
                            ls->keys ? ls->lat_sum / (double)ls->keys * 1e3 : 0);
    cJSON_AddNumberToObject(d, "wall_s", bn_time_now() - t0);
    cJSON_AddNumberToObject(d, "cpu_s",
                            (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
    cJSON_AddStringToObject(d, "colors", crt_colors());
    cJSON_AddStringToObject(d, "theme", crt_theme_name(crt_theme_get()));
    cJSON_AddBoolToObject(d, "unicode", crt_unicode());
    cJSON_AddBoolToObject(d, "mouse", crt_mouse());
    cJSON_AddStringToObject(d, "screen", t->screens[t->cur]->id);
    cJSON_AddBoolToObject(d, "headless", t->opts.headless);
    cJSON_AddNumberToObject(d, "pid", (double)getpid());
    cJSON_AddNumberToObject(d, "lines", LINES);
    cJSON_AddNumberToObject(d, "cols", COLS);
    char *s = cJSON_Print(d);
    cJSON_Delete(d);
    FILE *f = s ? fopen(t->opts.stats_file, "w") : NULL;
    if (f) {
        fprintf(f, "%s\n", s);
        fclose(f);
    }
    cJSON_free(s);
}

static void run_loop(tui *t, script_state *sc, int wake_fd)
{
    loop_stats ls;
    memset(&ls, 0, sizeof ls);
    const double t0 = bn_time_now();
    int reported = 0; /* the last job whose end was reported */
    char line[512];
    for (;;) {
        if (crt_stderr_line(line, sizeof line)) tui_status(t, CR_WARN, "%s", line);
        if (t->dirty) {
            draw(t);
            t->dirty = 0;
            ls.frames++;
            if (ls.pending) {
                const double lat = bn_time_now() - ls.pending;
                ls.lat_sum += lat;
                if (lat > ls.lat_max) ls.lat_max = lat;
                ls.pending = 0;
            }
            if (t->opts.max_frames && ls.frames >= t->opts.max_frames) break;
        }
        if (t->quit) break;
        int timeout = 1000;
        if (sc) {
            const int d = script_step(t, sc, &ls, bn_time_now());
            if (d >= 0 && d < timeout) timeout = d;
            if (t->dirty) continue; /* a scripted key: draw its frame first */
            /* headless, the script's end (its last sleep over) is the end: nobody types */
            if (d < 0 && t->opts.headless) {
                const double left = sc->due - bn_time_now();
                if (left <= 0) break;
                if (left * 1000 < timeout) timeout = (int)(left * 1000) + 1;
            }
        }
        const int in_fd = t->opts.headless ? -1 : STDIN_FILENO; /* poll skips -1 */
        struct pollfd fds[2] = {{in_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        const int r = poll(fds, 2, timeout);
        if (r == 0 && t->opts.headless) t->dirty = 1; /* --max-frames counts on */
        const double now = bn_time_now();
        int eng = 0, mon = 0;
        if (r > 0 && (fds[1].revents & POLLIN)) drain_wakeups(t, wake_fd, &eng, &mon);
        if (eng) engine_tick(t, &reported);
        if (mon && t->screens[t->cur]->live && !t->paused) t->dirty = 1;
        for (int ch; (ch = keys_read()) != ERR;) {
            if (!ls.pending && ch != KEY_RESIZE) ls.pending = now;
            if (ch != KEY_RESIZE) ls.keys++;
            handle_key(t, ch);
            if (t->quit) break;
        }
    }
    write_stats(t, &ls, t0);
}

/* ---- start and end
 * --------------------------------------------------------------------------------- */

static const tui_screen *const all_screens[SCR_COUNT] = {
        &scr_dashboard, &scr_setup,   &scr_hardware, &scr_models, &scr_chat,  &scr_bench,
        &scr_convert,   &scr_history, &scr_alerts,   &scr_server, &scr_usage,
};

/* Whether the config file holds nothing yet but the UI's own settings (tui.*, saved as
 * they change): the setup wizard has not been through. */
static int only_ui_settings(const bn_config *cfg)
{
    if (!bn_config_file_exists(cfg)) return 1;
    for (const cJSON *c = bn_config_file_doc(cfg)->child; c; c = c->next)
        if (!c->string || strcmp(c->string, "tui") != 0) return 0;
    return 1;
}

static int first_screen(const tui *t)
{
    if (t->opts.screen) {
        for (int i = 0; i < SCR_COUNT; i++)
            if (!strcasecmp(t->opts.screen, t->screens[i]->id) ||
                !strcasecmp(t->opts.screen, t->screens[i]->name))
                return i;
    }
    if (t->cfg && only_ui_settings(t->cfg)) return SCR_SETUP;
    return SCR_DASHBOARD;
}

/* The model to open at start: -m, the config's, the bundled one. */
static void start_model(tui *t)
{
    const char *m = t->opts.model;
    if (!m && t->cfg && *bn_config_get_str(t->cfg, "model")) m = bn_config_get_str(t->cfg, "model");
    if (!m && t->bundled[0]) m = t->bundled;
    if (m) {
        eng_load(t->eng, m);
        tui_status(t, CR_NORMAL, "loading %s ...", tui_base(m));
    } else {
        tui_status(t, CR_WARN,
                   "no bundled model found: choose one on the Models screen (F5) or in Setup (F3)");
    }
}

static int setup_state(tui *t, waker *wk, char *err, size_t errsz)
{
    if (bn_config_load(&t->cfg, t->cfg_err, sizeof t->cfg_err) != 0) t->cfg = NULL;
    find_bundled(t);
    int threads = t->opts.threads;
    long n_ctx = 0;
    if (t->cfg) {
        if (!threads) threads = (int)bn_config_get_int(t->cfg, "threads");
        n_ctx = (long)bn_config_get_int(t->cfg, "ctx");
    }
    if (pipe(wk->fd) != 0) {
        snprintf(err, errsz, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(wk->fd[i], F_SETFL, fcntl(wk->fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(wk->fd[i], F_SETFD, FD_CLOEXEC);
    }
    t->wake_fd = wk->fd[1];
    if (eng_new(&t->eng, threads, n_ctx, wake_engine, wk) != 0 ||
        mon_new(&t->mon, 1.0, wake_monitor, wk) != 0) {
        snprintf(err, errsz, "cannot start the worker threads");
        return -1;
    }
    for (int i = 0; i < SCR_COUNT; i++) {
        t->screens[i] = all_screens[i];
        t->state[i] = t->screens[i]->create(t);
        if (!t->state[i]) {
            snprintf(err, errsz, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void release_state(tui *t, waker *wk)
{
    eng_free(t->eng); /* first: its jobs may still write the history */
    mon_free(t->mon);
    for (int i = 0; i < SCR_COUNT; i++)
        if (t->state[i]) t->screens[i]->destroy(t->state[i]);
    bn_db_close(t->db);
    bn_config_free(t->cfg);
    for (int i = 0; i < 2; i++)
        if (wk->fd[i] >= 0) close(wk->fd[i]);
}

int bn_tui_run(const bn_tui_opts *o, char *err, size_t errsz)
{
    script_state sc;
    memset(&sc, 0, sizeof sc);
    if (o->keys_file && keys_load(o->keys_file, &sc.ks, err, errsz) != 0) return 2;
    static tui t; /* large; one UI a process */
    memset(&t, 0, sizeof t);
    t.opts = *o;
    waker wk = {{-1, -1}};
    int rc = setup_state(&t, &wk, err, errsz) ? 1 : 0;
    crt_opts co = {o->no_color, o->no_unicode, o->no_mouse, o->headless, o->lines, o->cols};
    if (rc == 0 && crt_init(&co, err, errsz) != 0) rc = 1;
    if (rc == 0) {
        tui_settings_start(&t);
        if (t.cfg_err[0]) tui_status(&t, CR_FAIL, "config: %s", t.cfg_err);
        start_model(&t);
        tui_switch(&t, first_screen(&t));
        run_loop(&t, o->keys_file ? &sc : NULL, wk.fd[0]);
        if (o->dump_file && crt_dump(o->dump_file, err, errsz) != 0) rc = 1;
        crt_done();
    }
    release_state(&t, &wk);
    keys_free(&sc.ks);
    return rc;
}
