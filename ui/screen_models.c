/* screen_models.c - screen 4: the models this machine knows (loaded, configured, bundled,
 * recent in the history, opened here); inspect a file's metadata and tensors; analyze its
 * layers (bitnet analyze, analyze_view.h); load and unload. */
#include "tui.h"

#include <curses.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/gguf.h"
#include "analyze_view.h"
#include "bitnet/types.h"
#include "browser.h"

#define MAX_MODELS 64
#define MAX_LINES  200000

typedef struct model_entry {
    char path[BN_CONFIG_PATH_MAX];
    char tags[64];
    int exists;
    unsigned long long size;
} model_entry;

typedef struct models {
    model_entry e[MAX_MODELS];
    int n;
    ui_list list;
    char opened[8][BN_CONFIG_PATH_MAX]; /* files chosen with the browser */
    int n_opened;
    unsigned long long seq;
    /* the inspect pane */
    char **lines;
    int n_lines, scroll, focus_pane, show_tensors;
    int meta_end; /* lines[0 .. meta_end) are the header and metadata */
    char inspected[BN_CONFIG_PATH_MAX];
    /* the browser */
    int browsing;
    ui_browser br;
    /* the analyze pane (instead of inspect while analyzing), and its arguments' line */
    analyze_view av;
    int analyzing, asking;
    ui_input ask;
} models;

static void free_lines(models *m)
{
    for (int i = 0; i < m->n_lines; i++) free(m->lines[i]);
    free(m->lines);
    m->lines = NULL;
    m->n_lines = m->scroll = m->meta_end = 0;
}

static void add_line(models *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(models *m, const char *fmt, ...)
{
    if (m->n_lines >= MAX_LINES) return;
    if ((m->n_lines & (m->n_lines - 1)) == 0) { /* grow at powers of two */
        char **p = realloc(m->lines, (size_t)(m->n_lines ? m->n_lines * 2 : 1) * sizeof *p);
        if (!p) return;
        m->lines = p;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->lines[m->n_lines] = strdup(buf);
    if (m->lines[m->n_lines]) m->n_lines++;
}

/* ---- the list -------------------------------------------------------------------------------- */

static void add_model(models *m, const char *path, const char *tag)
{
    if (!path || !*path) return;
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->e[i].path, path)) continue;
        if (!strstr(m->e[i].tags, tag)) {
            const size_t l = strlen(m->e[i].tags);
            snprintf(m->e[i].tags + l, sizeof m->e[i].tags - l, ", %s", tag);
        }
        return;
    }
    if (m->n == MAX_MODELS) return;
    model_entry *e = &m->e[m->n++];
    snprintf(e->path, sizeof e->path, "%s", path);
    snprintf(e->tags, sizeof e->tags, "%s", tag);
    struct stat st;
    e->exists = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    e->size = e->exists ? (unsigned long long)st.st_size : 0;
}

static void reload_list(tui *t, models *m)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    m->n = 0;
    if (es.model.loaded) add_model(m, es.model.path, "loaded");
    if (t->cfg) add_model(m, bn_config_get_str(t->cfg, "model"), "config");
    if (t->bundled_dir[0]) {
        DIR *d = opendir(t->bundled_dir);
        for (struct dirent *de; d && (de = readdir(d));) {
            const size_t n = strlen(de->d_name);
            if (n <= 5 || strcmp(de->d_name + n - 5, ".gguf")) continue;
            char p[BN_CONFIG_PATH_MAX + 256];
            snprintf(p, sizeof p, "%s/%s", t->bundled_dir, de->d_name);
            add_model(m, p, "bundled");
        }
        if (d) closedir(d);
    }
    for (int i = 0; i < m->n_opened; i++) add_model(m, m->opened[i], "opened");
    bn_run_filter f = bn_run_filter_all();
    f.limit = 300;
    bn_run *runs = NULL;
    size_t n = 0;
    char err[512];
    if (tui_run_list(t, &f, &runs, &n, err, sizeof err) == BN_OK)
        for (size_t i = 0; i < n; i++) add_model(m, runs[i].model_path, "recent");
    bn_db_runs_free(runs, n);
    m->seq = t->hist_seq;
}

static void *models_create(tui *t)
{
    models *m = calloc(1, sizeof *m);
    (void)t;
    if (!m) return NULL;
    m->seq = (unsigned long long)-1;
    analyze_view_init(&m->av);
    return m;
}

static void models_destroy(void *st)
{
    models *m = st;
    free_lines(m);
    ui_browser_free(&m->br);
    analyze_view_release(&m->av);
    free(m);
}

/* ---- inspect ----------------------------------------------------------------------------------
 */

static void kv_line(models *m, const bn_gguf *g, int64_t i)
{
    const char *key = bn_gguf_key(g, i);
    const bn_gguf_vtype ty = bn_gguf_kv_type(g, i);
    if (ty == BN_GGUF_ARRAY) {
        const bn_gguf_vtype at = bn_gguf_arr_type(g, i);
        const uint64_t n = bn_gguf_arr_n(g, i);
        if (at == BN_GGUF_STRING && n > 0) {
            size_t len;
            const char *s0 = bn_gguf_arr_str(g, i, 0, &len);
            add_line(m, "  %-44s [%s x %" PRIu64 "] \"%.30s\"%s", key, bn_gguf_vtype_name((int)at),
                     n, s0 ? s0 : "", n > 1 ? ", ..." : "");
        } else {
            add_line(m, "  %-44s [%s x %" PRIu64 "]", key, bn_gguf_vtype_name((int)at), n);
        }
    } else if (ty == BN_GGUF_STRING) {
        size_t len;
        const char *s = bn_gguf_kv_strn(g, i, &len);
        char v[200];
        size_t o = 0;
        for (size_t k = 0; s && k < len && o + 4 < sizeof v; k++) /* one line */
            v[o++] = s[k] == '\n' ? ' ' : s[k];
        v[o] = '\0';
        add_line(m, "  %-44s \"%s\"%s", key, v, s && len > o ? "..." : "");
    } else if (ty == BN_GGUF_F32 || ty == BN_GGUF_F64) {
        add_line(m, "  %-44s %g", key, bn_gguf_kv_f64(g, i));
    } else if (ty == BN_GGUF_BOOL) {
        add_line(m, "  %-44s %s", key, bn_gguf_kv_u64(g, i) ? "true" : "false");
    } else if (ty == BN_GGUF_U64 || ty == BN_GGUF_U32 || ty == BN_GGUF_U16 || ty == BN_GGUF_U8) {
        add_line(m, "  %-44s %" PRIu64, key, bn_gguf_kv_u64(g, i));
    } else {
        add_line(m, "  %-44s %" PRId64, key, bn_gguf_kv_i64(g, i));
    }
}

static void inspect(tui *t, models *m, const char *path)
{
    free_lines(m);
    snprintf(m->inspected, sizeof m->inspected, "%s", path);
    bn_ctx *ctx;
    bn_ctx_params cp = {.n_threads = 1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        add_line(m, "out of memory");
        return;
    }
    bn_gguf *g;
    if (bn_gguf_open(ctx, path, &g) != BN_OK) {
        add_line(m, "%s: %s", path, bn_ctx_errmsg(ctx));
        bn_ctx_free(ctx);
        return;
    }
    char a[32];
    add_line(m, "%s", path);
    add_line(m, "GGUF v%u, alignment %zu, %s, %" PRId64 " metadata keys, %" PRId64 " tensors",
             bn_gguf_version(g), bn_gguf_alignment(g), ui_bytes(bn_gguf_file_size(g), a, sizeof a),
             bn_gguf_n_kv(g), bn_gguf_n_tensors(g));
    /* tensor types and total elements */
    int count[64] = {0};
    double elems = 0;
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *te = bn_gguf_tensor_at(g, i);
        double n = 1;
        for (int d = 0; d < te->n_dims; d++) n *= (double)te->ne[d];
        elems += n;
        if (te->type >= 0 && te->type < 64) count[te->type]++;
    }
    char types[512] = "";
    size_t o = 0;
    for (int i = 0; i < 64 && o + 32 < sizeof types; i++)
        if (count[i])
            o += (size_t)snprintf(types + o, sizeof types - o, "%s%s x %d", o ? ", " : "",
                                  bn_type_name(i), count[i]);
    add_line(m, "%.1fM parameters; tensor types: %s", elems / 1e6, types);
    add_line(m, "%s", "");
    add_line(m, "Metadata (t: tensors)");
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) kv_line(m, g, i);
    m->meta_end = m->n_lines;
    /* the size before the shape: a narrow pane cuts the end of a line */
    add_line(m, "Tensors (t: metadata): name, type, size, shape (ne0 x ne1 ...)");
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *te = bn_gguf_tensor_at(g, i);
        char shape[96] = "";
        size_t so = 0;
        for (int d = 0; d < te->n_dims; d++)
            so += (size_t)snprintf(shape + so, sizeof shape - so, "%s%" PRId64, d ? " x " : "",
                                   te->ne[d]);
        add_line(m, "  %-32s %-6s %10s  %s", te->name, bn_type_name(te->type),
                 ui_bytes(te->size, a, sizeof a), shape);
    }
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    (void)t;
}

/* ---- drawing ----------------------------------------------------------------------------------
 */

static void draw_inspect(models *m, int y, int x, int h, int w)
{
    ui_box(y, x, h, w, m->n_lines ? "Inspect" : "Inspect (Enter on a model)");
    if (!m->n_lines) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "no file inspected");
        return;
    }
    /* the header (4 lines) stays; below it the metadata or the tensors */
    const int head = m->n_lines < 4 ? m->n_lines : 4;
    for (int i = 0; i < head && i < h - 2; i++)
        if (i == 0)
            ui_text_tail(y + 1 + i, x + 2, w - 4, crt_attr(CR_TITLE), m->lines[i]); /* a path */
        else
            ui_text_cut(y + 1 + i, x + 2, w - 4, 0, m->lines[i]);
    const int from = m->show_tensors ? m->meta_end : head;
    const int to = m->show_tensors ? m->n_lines : m->meta_end;
    const int rows = h - 2 - head;
    if (m->scroll > to - from - rows) m->scroll = to - from - rows;
    if (m->scroll < 0) m->scroll = 0;
    for (int r = 0; r < rows && from + m->scroll + r < to; r++) {
        const int i = from + m->scroll + r;
        ui_text_cut(y + 1 + head + r, x + 2, w - 4, i == from ? crt_attr(CR_TITLE) : 0,
                    m->lines[i]);
    }
    if (m->focus_pane) ui_text(y + h - 1, x + w - 22, 20, crt_attr(CR_DIM), " Up/Down scroll ");
}

static void models_draw(tui *t, void *st, int y, int x, int h, int w)
{
    models *m = st;
    if (m->seq != t->hist_seq) reload_list(t, m);
    if (m->browsing) {
        ui_browser_draw(&m->br, y, x, h, w);
        return;
    }
    eng_status es;
    eng_status_get(t->eng, &es);
    /* the analyze table wants the whole width: the list above it, as short as it can be */
    const int short_list = m->n + 4 < h / 3 ? m->n + 4 : h / 3;
    const int lw = w >= 110 && !m->analyzing ? w * 2 / 5 : w;
    const int lh = lw < w ? h : m->analyzing ? (short_list > 5 ? short_list : 5) : h / 2;
    ui_box(y, x, lh, lw, "Models");
    ui_text(y + lh - 1, x + 2, lw - 4, crt_attr(CR_DIM),
            " Enter inspect  A analyze  l load  u unload  o open ");
    int row = y + 1;
    if (!t->bundled[0]) ui_text(row++, x + 2, lw - 4, crt_attr(CR_DIM), "no bundled model found");
    if (m->n == 0)
        ui_text(row, x + 2, lw - 4, crt_attr(CR_DIM), "no models known yet: o opens a file");
    ui_list_layout(&m->list, m->n, y + lh - 1 - row);
    for (int r = 0; r < m->list.h && m->list.top + r < m->n; r++) {
        const model_entry *e = &m->e[m->list.top + r];
        const int sel = m->list.top + r == m->list.sel && !m->focus_pane;
        const int a = sel ? crt_attr(CR_SELECT) : !e->exists ? crt_attr(CR_DIM) : 0;
        char sz[32];
        ui_clear(row + r, x + 1, lw - 2, a);
        ui_text_cut(row + r, x + 2, lw - 4 < 22 ? lw - 4 : 22, a, tui_base(e->path));
        char rest[128];
        snprintf(rest, sizeof rest, "%9s  %s%s",
                 e->exists ? ui_bytes(e->size, sz, sizeof sz) : "missing", e->tags,
                 es.job == ENG_LOADING && !strcmp(es.model.path, e->path) ? " ..." : "");
        ui_text_cut(row + r, x + 25, lw - 27, a, rest);
    }
    ui_list_hits(&m->list, row, x + 1, lw - 2);
    if (m->asking) {
        ui_text(y + lh - 2, x + 2, 16, crt_attr(CR_TITLE), "analyze args:");
        ui_input_draw(&m->ask, y + lh - 2, x + 16, lw - 18, 1);
    }
    const int py = lw == w ? y + lh : y, px = lw == w ? x : x + lw;
    const int ph = lw == w ? h - lh : h, pw = lw == w ? w : w - lw;
    if (m->analyzing)
        analyze_view_draw(&m->av, py, px, ph, pw, m->focus_pane);
    else
        draw_inspect(m, py, px, ph, pw);
}

static void wake_tui(void *t)
{
    tui_wake(t);
}

/* Analyzes the selected model with args (see analyze_view_start) in the pane. */
static void analyze(tui *t, models *m, const char *path, const char *args)
{
    m->analyzing = 1;
    if (analyze_view_start(&m->av, path, args, wake_tui, t) == 0)
        tui_status(t, CR_NORMAL, "analyzing %s ...", tui_base(path));
}

/* The line of arguments for analyze ('e'): Enter runs it, Esc leaves it. */
static int ask_key(tui *t, models *m, const char *path, int ch)
{
    if (ch == 27) {
        m->asking = 0;
    } else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        m->asking = 0;
        if (path) analyze(t, m, path, m->ask.buf);
    } else {
        ui_input_key(&m->ask, ch);
    }
    return 1;
}

/* ---- keys --------------------------------------------------------------------------------------
 */

static const model_entry *selected(const models *m)
{
    return m->list.sel >= 0 && m->list.sel < m->n ? &m->e[m->list.sel] : NULL;
}

static void remember(models *m, const char *path)
{
    for (int i = 0; i < m->n_opened; i++)
        if (!strcmp(m->opened[i], path)) return;
    if (m->n_opened == 8)
        memmove(m->opened[0], m->opened[1], sizeof m->opened[0] * 7), m->n_opened--;
    snprintf(m->opened[m->n_opened++], sizeof m->opened[0], "%s", path);
}

static int models_key(tui *t, void *st, int ch)
{
    models *m = st;
    if (m->browsing) {
        char path[BN_CONFIG_PATH_MAX];
        const int r = ui_browser_key(&m->br, ch, path, sizeof path);
        if (r == 1) {
            m->browsing = 0;
            remember(m, path);
            reload_list(t, m);
            for (int i = 0; i < m->n; i++)
                if (!strcmp(m->e[i].path, path)) m->list.sel = i;
            inspect(t, m, path);
        } else if (r < 0 && ch == 27) {
            m->browsing = 0;
        }
        return 1;
    }
    const model_entry *e = selected(m);
    if (m->asking) return ask_key(t, m, e ? e->path : NULL, ch);
    if (m->focus_pane && m->analyzing) {
        if (ch == KEY_LEFT || ch == 27)
            m->focus_pane = 0;
        else if (ch == 'A' && m->av.model[0])
            analyze(t, m, m->av.model, m->av.args);
        else
            analyze_view_key(&m->av, ch);
        return 1;
    }
    if (m->focus_pane) {
        if (ch == KEY_UP || ch == UI_KEY_WHEEL_UP) m->scroll -= ch == KEY_UP ? 1 : 3;
        if (ch == KEY_DOWN || ch == UI_KEY_WHEEL_DOWN) m->scroll += ch == KEY_DOWN ? 1 : 3;
        if (ch == KEY_PPAGE) m->scroll -= 10;
        if (ch == KEY_NPAGE) m->scroll += 10;
        if (ch == KEY_HOME) m->scroll = 0;
        if (ch == KEY_LEFT || ch == 27) m->focus_pane = 0;
        if (ch == 't') m->show_tensors = !m->show_tensors, m->scroll = 0;
        return 1;
    }
    if (ui_list_key(&m->list, ch)) return 1;
    switch (ch) {
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (e) inspect(t, m, e->path);
        m->analyzing = 0;
        return 1;
    case KEY_RIGHT:
        if (m->n_lines || m->analyzing) m->focus_pane = 1;
        return 1;
    case 'A':
        if (e) analyze(t, m, e->path, "");
        return 1;
    case 'e':
        if (!e) return 1;
        m->asking = 1;
        ui_input_set(&m->ask, m->ask.len ? m->ask.buf : "--source SRC --calibrate TEXT");
        return 1;
    case 't':
        m->show_tensors = !m->show_tensors, m->scroll = 0;
        return 1;
    case 'l':
        if (!e) return 1;
        if (eng_load(t->eng, e->path) < 0)
            tui_status(t, CR_WARN,
                       "busy: wait for the running job, or stop it (Esc on its screen)");
        else
            tui_status(t, CR_NORMAL, "loading %s ...", tui_base(e->path));
        return 1;
    case 'u':
        if (eng_unload(t->eng) < 0) tui_status(t, CR_WARN, "busy: wait for the running job");
        return 1;
    case 'o':
        m->browsing = 1;
        ui_browser_open(&m->br, m->br.dir[0] ? m->br.dir : ".");
        return 1;
    case 'r':
        reload_list(t, m);
        return 1;
    default:
        return 0;
    }
}

static int models_editing(void *st)
{
    const models *m = st;
    return m->asking || (m->browsing && ui_browser_editing(&m->br));
}

static const char *models_keybar(void *st)
{
    const models *m = st;
    if (m->browsing) return ui_browser_keybar(&m->br);
    if (m->asking) return UI_INPUT_KEYS;
    if (m->focus_pane && m->analyzing) return ANALYZE_VIEW_KEYS "A\tagain\nLeft Esc\tback\n";
    if (m->focus_pane) return "Up Down PgUp PgDn\tscroll\nt\tmetadata/tensors\nLeft Esc\tback\n";
    return "Enter\tinspect\nl\tload\nu\tunload\no\topen a file\nA\tanalyze\ne\tanalyze with "
           "args\nt\ttensors\nRight\tinto the pane\nr\treread\n";
}

static void models_enter(tui *t, void *st)
{
    reload_list(t, st);
}

static void models_tick(tui *t, void *st)
{
    models *m = st;
    eng_status es;
    eng_status_get(t->eng, &es);
    if (es.model.loaded && (m->n == 0 || strcmp(m->e[0].path, es.model.path))) m->seq--;
    if (analyze_view_tick(&m->av) && !m->av.err[0] && m->av.doc)
        tui_status(t, CR_OK, "analyzed %s: Right, then < > sort by a column",
                   tui_base(m->av.model));
}

const tui_screen scr_models = {
        .name = "Models",
        .id = "models",
        .letter = 'm',
        .fkey = 5,
        .help = "Up Down\tchoose a model\n"
                "Enter\tinspect it: metadata and tensors\n"
                "t\tmetadata / tensors\n"
                "A\tanalyze it (bitnet analyze): a row per tensor with scale, zero\n"
                "\tfraction, outliers, SQNR and activation range; Right, then < > I\n"
                "\tsort by a column, C picks the columns\n"
                "e\tanalyze with arguments: --source SRC (SQNR) --calibrate TEXT\n"
                "\t(activation ranges, output error)\n"
                "Right Left\tinto / out of the inspect pane (Up Down PgUp PgDn scroll)\n"
                "l\tload the model (for Chat and Benchmarks)\n"
                "u\tunload it\n"
                "o\topen a file with the browser\n"
                "r\tread the list again\n" UI_BROWSER_HELP,
        .create = models_create,
        .destroy = models_destroy,
        .enter = models_enter,
        .draw = models_draw,
        .key = models_key,
        .editing = models_editing,
        .tick = models_tick,
        .keybar = models_keybar,
};
