/* screen_history.c - screen 8: the run history (sqlite): browse, filter by command and
 * status, search, sort by any column and choose the columns, details, export. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/history.h"
#include "table.h"

#define LIMIT 1000

static const char *const commands[] = {NULL,         "generate", "chat",  "bench",
                                       "perplexity", "doctor",   "train", "convert"};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

enum { COL_ID, COL_STARTED, COL_COMMAND, COL_STATUS, COL_TIME, COL_MODEL, COL_RESULT, N_COLS };
static const ui_col columns[N_COLS] = {
        {"ID", 7, 1},   {"STARTED", 17, 0}, {"COMMAND", 11, 0}, {"STATUS", 10, 0},
        {"TIME", 9, 1}, {"MODEL", 23, 0},   {"RESULT", 0, 0},
};

typedef struct hist {
    bn_run *runs;
    size_t n;
    size_t *order; /* order[i]: the run shown i-th (the table's sort) */
    ui_table tb;
    ui_list list;
    int cmd;    /* index in commands */
    int status; /* -1 any, else bn_run_status */
    ui_input search;
    int searching;
    int details;
    int detail_scroll;
    unsigned long long seq;
    char err[512];
    char path[BN_CONFIG_PATH_MAX + 32]; /* the history file */
} hist;

static void *hist_create(tui *t)
{
    (void)t;
    hist *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->status = -1;
    h->seq = (unsigned long long)-1;
    ui_table_init(&h->tb, columns, N_COLS, COL_STARTED, 1);
    return h;
}

static void hist_destroy(void *st)
{
    hist *h = st;
    bn_db_runs_free(h->runs, h->n);
    free(h->order);
    free(h);
}

static bn_run_filter filter_of(const hist *h)
{
    bn_run_filter f = bn_run_filter_all();
    f.command = commands[h->cmd];
    f.status = h->status;
    f.text = h->search.len ? h->search.buf : NULL;
    f.limit = LIMIT;
    return f;
}

/* The run shown at row i, or NULL. */
static const bn_run *shown_run(const hist *h, int i)
{
    return i >= 0 && (size_t)i < h->n && h->order ? &h->runs[h->order[i]] : NULL;
}

static long long duration_ms(const bn_run *r)
{
    return r->ended_ms ? (long long)(r->ended_ms - r->started_ms) : -1;
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int cmp_num(long long a, long long b)
{
    return (a > b) - (a < b);
}

static int cmp_run(const void *ctx, int col, size_t ia, size_t ib)
{
    const bn_run *a = &((const bn_run *)ctx)[ia], *b = &((const bn_run *)ctx)[ib];
    char sa[200], sb[200];
    switch (col) {
    case COL_ID:
        return cmp_num(a->id, b->id);
    case COL_STARTED:
        return cmp_num(a->started_ms, b->started_ms) ? cmp_num(a->started_ms, b->started_ms)
                                                     : cmp_num(a->id, b->id);
    case COL_COMMAND:
        return cmp_str(a->command, b->command);
    case COL_STATUS:
        return cmp_str(bn_run_status_str(a->status), bn_run_status_str(b->status));
    case COL_TIME:
        return cmp_num(duration_ms(a), duration_ms(b));
    case COL_MODEL:
        return cmp_str(a->model_path ? tui_base(a->model_path) : NULL,
                       b->model_path ? tui_base(b->model_path) : NULL);
    default:
        tui_run_summary(a, sa, sizeof sa), tui_run_summary(b, sb, sizeof sb);
        return strcmp(sa, sb);
    }
}

/* Orders the runs by the table's column, keeping the selected run selected. */
static void sort_runs(hist *h)
{
    const bn_run *keep = shown_run(h, h->list.sel);
    const int64_t id = keep ? keep->id : -1;
    size_t *order = h->n ? malloc(h->n * sizeof *order) : NULL;
    if (h->n && !order) return; /* out of memory: the old order stays */
    free(h->order);
    h->order = order;
    ui_table_sort(&h->tb, order, h->n, cmp_run, h->runs);
    h->list.sel = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->runs[order[i]].id == id) h->list.sel = (int)i;
}

static void read_runs(tui *t, hist *h)
{
    h->seq = t->hist_seq;
    const bn_run_filter f = filter_of(h);
    bn_run *runs = NULL;
    size_t n = 0;
    if (tui_run_list(t, &f, &runs, &n, h->err, sizeof h->err) != BN_OK) return;
    const bn_run *sel = shown_run(h, h->list.sel);
    const int64_t keep = sel ? sel->id : -1;
    bn_db_runs_free(h->runs, h->n);
    h->runs = runs, h->n = n, h->err[0] = '\0';
    free(h->order), h->order = NULL;
    sort_runs(h);
    for (size_t i = 0; i < n && h->order; i++)
        if (runs[h->order[i]].id == keep) h->list.sel = (int)i;
}

static int run_cell(const void *row, int col, int y, int x, int w, char *buf, size_t size,
                    int *attr)
{
    const bn_run *r = row;
    const long long d = duration_ms(r);
    switch (col) {
    case COL_ID:
        snprintf(buf, size, "%lld", (long long)r->id);
        break;
    case COL_STARTED:
        ui_time(r->started_ms, buf, size);
        break;
    case COL_COMMAND:
        snprintf(buf, size, "%s", r->command ? r->command : "");
        break;
    case COL_STATUS:
        snprintf(buf, size, "%s", bn_run_status_str(r->status));
        *attr = r->status == BN_RUN_OK       ? crt_attr(CR_OK)
                : r->status == BN_RUN_FAILED ? crt_attr(CR_FAIL)
                                             : crt_attr(CR_WARN);
        break;
    case COL_TIME:
        if (d < 0)
            snprintf(buf, size, "-");
        else
            snprintf(buf, size,
                     d < 10000    ? "%.2f s"
                     : d < 600000 ? "%.0f s"
                                  : "%.0f min",
                     d < 600000 ? (double)d / 1000 : (double)d / 60000);
        break;
    case COL_MODEL:
        snprintf(buf, size, "%s", r->model_path ? tui_base(r->model_path) : "-");
        break;
    default:
        tui_run_summary(r, buf, size);
    }
    (void)y, (void)x, (void)w;
    return 0;
}

static void draw_details(const bn_run *r, int *scroll, int y, int x, int h, int w)
{
    char title[64];
    snprintf(title, sizeof title, "Run %lld (Enter closes)", (long long)r->id);
    ui_box(y, x, h, w, title);
    cJSON *j = r->json ? cJSON_Parse(r->json) : NULL;
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_FAIL), "cannot show this run");
        return;
    }
    int lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    if (*scroll > lines - (h - 2)) *scroll = lines - (h - 2);
    if (*scroll < 0) *scroll = 0;
    /* cJSON prints tabs: draw them as two spaces */
    char *o = malloc(strlen(text) * 2 + 1);
    if (o) {
        size_t k = 0;
        for (const char *p = text; *p; p++) {
            if (*p == '\t')
                o[k++] = ' ', o[k++] = ' ';
            else
                o[k++] = *p;
        }
        o[k] = '\0';
        ui_text_block(y + 1, x + 2, h - 2, w - 4, 0, o, k, *scroll);
        free(o);
    }
    free(text);
}

static void hist_draw(tui *t, void *st, int y, int x, int h, int w)
{
    hist *hs = st;
    if (hs->seq != t->hist_seq) read_runs(t, hs);
    /* the filter line */
    int c = x + 1;
    c += ui_text(y, c, w, crt_attr(CR_TITLE), "command ");
    c += ui_printf(y, c, x + w - c, crt_attr(CR_SELECT), " %s ",
                   commands[hs->cmd] ? commands[hs->cmd] : "all");
    ui_hit(y, x + 1, c - x - 1, UI_KEY_BUTTON + 1);
    c += ui_text(y, c, x + w - c, crt_attr(CR_DIM), " (f F)  ");
    const int c0 = c;
    c += ui_text(y, c, x + w - c, crt_attr(CR_TITLE), "status ");
    c += ui_printf(y, c, x + w - c, crt_attr(CR_SELECT), " %s ",
                   hs->status < 0 ? "any" : bn_run_status_str((bn_run_status)hs->status));
    ui_hit(y, c0, c - c0, UI_KEY_BUTTON + 2);
    c += ui_text(y, c, x + w - c, crt_attr(CR_DIM), " (t T)  ");
    c += ui_text(y, c, x + w - c, crt_attr(CR_TITLE), "search ");
    if (hs->searching || hs->search.len)
        ui_input_draw(&hs->search, y, c, x + w - c - 1 < 30 ? x + w - c - 1 : 30, hs->searching);
    else
        ui_text(y, c, x + w - c, crt_attr(CR_DIM), "(/)");
    const int list_w = hs->details && w >= 120 ? w / 2 : w;
    char title[BN_CONFIG_PATH_MAX + 96];
    snprintf(title, sizeof title, "%zu run%s%s in %s (e/E export json/csv)", hs->n,
             hs->n == 1 ? "" : "s", hs->n == LIMIT ? "+" : "", hs->path);
    if (hs->details && list_w == w) {
        if (shown_run(hs, hs->list.sel))
            draw_details(shown_run(hs, hs->list.sel), &hs->detail_scroll, y + 1, x, h - 1, w);
        return;
    }
    ui_box(y + 1, x, h - 1, list_w, title);
    if (hs->err[0])
        ui_text(y + 2, x + 2, list_w - 4, crt_attr(CR_FAIL), hs->err);
    else if (hs->n == 0)
        ui_text(y + 3, x + 2, list_w - 4, crt_attr(CR_DIM), "no runs match");
    const int head = y + 2 + (hs->err[0] ? 1 : 0), row = head + 1;
    ui_table_header(&hs->tb, head, x + 2, list_w - 4);
    ui_list_layout(&hs->list, (int)hs->n, y + h - 1 - row);
    for (int r = 0; r < hs->list.h && hs->list.top + r < (int)hs->n; r++) {
        const int sel = hs->list.top + r == hs->list.sel;
        ui_clear(row + r, x + 1, list_w - 2, sel ? crt_attr(CR_SELECT) : 0);
        ui_table_row(&hs->tb, row + r, x + 2, list_w - 4, sel ? crt_attr(CR_SELECT) : 0, sel,
                     run_cell, shown_run(hs, hs->list.top + r));
    }
    ui_list_hits(&hs->list, row, x + 1, list_w - 2);
    if (hs->details && shown_run(hs, hs->list.sel))
        draw_details(shown_run(hs, hs->list.sel), &hs->detail_scroll, y + 1, x + list_w, h - 1,
                     w - list_w);
}

static void export_runs(tui *t, hist *h, bn_db_format fmt)
{
    tui_db_reset(t); /* a fresh connection (see tui_run_list) */
    bn_db *db = tui_db(t);
    char dir[BN_CONFIG_PATH_MAX], err[256], file[BN_CONFIG_PATH_MAX + 64];
    if (!db) {
        tui_status(t, CR_FAIL, "the history cannot be opened: %s", t->db_err);
        return;
    }
    if (!t->cfg || bn_data_dir_ensure(t->cfg, dir, sizeof dir, err, sizeof err) != 0) {
        tui_status(t, CR_FAIL, "no data directory: %s", t->cfg ? err : t->cfg_err);
        return;
    }
    char stamp[32];
    const time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(file, sizeof file, "%s/history-%s.%s", dir, stamp,
             fmt == BN_DB_FORMAT_CSV ? "csv" : "json");
    FILE *f = fopen(file, "w");
    if (!f) {
        tui_status(t, CR_FAIL, "%s: %s", file, strerror(errno));
        return;
    }
    bn_run_filter flt = filter_of(h);
    flt.limit = 0;
    flt.oldest_first = 1;
    const bn_status rc = bn_db_export(db, &flt, fmt, f);
    if (fclose(f) != 0 || rc != BN_OK)
        tui_status(t, CR_FAIL, "export to %s failed: %s", file, bn_db_errmsg(db));
    else
        tui_status(t, CR_OK, "exported the runs shown to %s", file);
}

static int hist_key(tui *t, void *st, int ch)
{
    hist *h = st;
    if (h->searching) {
        if (ch == 27 || ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            h->searching = 0;
            read_runs(t, h);
            return 1;
        }
        if (ui_input_key(&h->search, ch)) {
            read_runs(t, h); /* filter as you type */
            return 1;
        }
        return 0;
    }
    if (ui_table_key(&h->tb, ch)) {
        if (h->tb.resort) sort_runs(h);
        return 1;
    }
    switch (ch) {
    case '\n':
    case '\r':
    case KEY_ENTER:
        h->details = !h->details;
        h->detail_scroll = 0;
        return 1;
    case 27:
        h->details = 0;
        return 1;
    case 'j':
        h->detail_scroll++;
        return 1;
    case 'k':
        h->detail_scroll--;
        return 1;
    case 'f':
    case 'F':
    case UI_KEY_BUTTON + 1:
        h->cmd = (h->cmd + (ch == 'F' ? N_COMMANDS - 1 : 1)) % N_COMMANDS;
        read_runs(t, h);
        return 1;
    case 't':
    case 'T': /* any, then each status: BN_RUN_STATUS_COUNT_ + 1 places */
    case UI_KEY_BUTTON + 2:
        h->status = (h->status + 1 + (ch == 'T' ? BN_RUN_STATUS_COUNT_ : 1)) %
                            (BN_RUN_STATUS_COUNT_ + 1) -
                    1;
        read_runs(t, h);
        return 1;
    case '/': /* the last search, selected: what is typed replaces it */
        h->searching = 1, h->search.all = h->search.len > 0;
        return 1;
    case 'r':
        read_runs(t, h);
        return 1;
    case 'e':
        export_runs(t, h, BN_DB_FORMAT_JSON);
        return 1;
    case 'E':
        export_runs(t, h, BN_DB_FORMAT_CSV);
        return 1;
    default:
        if (ui_list_key(&h->list, ch)) {
            h->detail_scroll = 0;
            return 1;
        }
        return 0;
    }
}

static int hist_editing(void *st)
{
    const hist *h = st;
    return h->searching || h->tb.picking;
}

static void hist_enter(tui *t, void *st)
{
    hist *h = st;
    char err[256];
    if (cm_history_path(h->path, sizeof h->path, NULL, err, sizeof err) != 0)
        snprintf(h->path, sizeof h->path, "?");
    read_runs(t, h);
}

const tui_screen scr_history = {
        .name = "History",
        .id = "history",
        .letter = 'i',
        .fkey = 9,
        .help = "Up Down PgUp PgDn\tchoose a run (also the wheel and clicks)\n"
                "Enter\tshow / hide its details (j k scroll them)\n"
                "f F\tfilter by command (all, generate, chat, bench, ...): next / previous\n"
                "t T\tfilter by status: next / previous\n"
                "< >\tsort by the previous / next column (marked in the header)\n"
                "I\tinvert the order\n"
                "C\tchoose the columns: Left Right pick one, Space shows / hides it, Esc\n"
                "/\tsearch text in the command, model, parameters, metrics, error\n"
                "e E\texport the runs shown to the data directory (JSON, CSV)\n"
                "r\tread the history again",
        .create = hist_create,
        .destroy = hist_destroy,
        .enter = hist_enter,
        .draw = hist_draw,
        .key = hist_key,
        .editing = hist_editing,
};
