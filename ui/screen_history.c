/* screen_history.c - screen 8: the run history (sqlite): browse, filter by command and
 * status, search, details, export. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/history.h"

#define LIMIT 1000

static const char *const commands[] = {NULL,         "generate", "chat",  "bench",
                                       "perplexity", "doctor",   "train", "convert"};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

typedef struct hist {
    bn_run *runs;
    size_t n;
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
    return h;
}

static void hist_destroy(void *st)
{
    hist *h = st;
    bn_db_runs_free(h->runs, h->n);
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

static void read_runs(tui *t, hist *h)
{
    h->seq = t->hist_seq;
    const bn_run_filter f = filter_of(h);
    bn_run *runs = NULL;
    size_t n = 0;
    if (tui_run_list(t, &f, &runs, &n, h->err, sizeof h->err) != BN_OK) return;
    int64_t keep = h->list.sel >= 0 && (size_t)h->list.sel < h->n ? h->runs[h->list.sel].id : -1;
    bn_db_runs_free(h->runs, h->n);
    h->runs = runs, h->n = n, h->err[0] = '\0';
    h->list.sel = 0;
    for (size_t i = 0; i < n; i++)
        if (runs[i].id == keep) h->list.sel = (int)i;
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
    c += ui_text(y, c, x + w - c, crt_attr(CR_DIM), " (f)  ");
    const int c0 = c;
    c += ui_text(y, c, x + w - c, crt_attr(CR_TITLE), "status ");
    c += ui_printf(y, c, x + w - c, crt_attr(CR_SELECT), " %s ",
                   hs->status < 0 ? "any" : bn_run_status_str((bn_run_status)hs->status));
    ui_hit(y, c0, c - c0, UI_KEY_BUTTON + 2);
    c += ui_text(y, c, x + w - c, crt_attr(CR_DIM), " (t)  ");
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
        if (hs->list.sel >= 0 && (size_t)hs->list.sel < hs->n)
            draw_details(&hs->runs[hs->list.sel], &hs->detail_scroll, y + 1, x, h - 1, w);
        return;
    }
    ui_box(y + 1, x, h - 1, list_w, title);
    if (hs->err[0])
        ui_text(y + 2, x + 2, list_w - 4, crt_attr(CR_FAIL), hs->err);
    else if (hs->n == 0)
        ui_text(y + 2, x + 2, list_w - 4, crt_attr(CR_DIM), "no runs match");
    const int row = y + 2 + (hs->err[0] ? 1 : 0);
    ui_list_layout(&hs->list, (int)hs->n, y + h - 1 - row);
    for (int r = 0; r < hs->list.h && hs->list.top + r < (int)hs->n; r++) {
        const bn_run *run = &hs->runs[hs->list.top + r];
        const int sel = hs->list.top + r == hs->list.sel;
        char tm[32], sum[200];
        ui_time(run->started_ms, tm, sizeof tm);
        tui_run_summary(run, sum, sizeof sum);
        const int base = sel ? crt_attr(CR_SELECT) : 0;
        const int sa = sel                            ? base
                       : run->status == BN_RUN_OK     ? crt_attr(CR_OK)
                       : run->status == BN_RUN_FAILED ? crt_attr(CR_FAIL)
                                                      : crt_attr(CR_WARN);
        ui_clear(row + r, x + 1, list_w - 2, base);
        int cc = x + 2;
        cc += ui_printf(row + r, cc, list_w - 4, base, "%5lld %-16s %-10s ", (long long)run->id, tm,
                        run->command);
        cc += ui_printf(row + r, cc, x + list_w - 2 - cc, sa, "%-10s ",
                        bn_run_status_str(run->status));
        ui_printf(row + r, cc, x + list_w - 2 - cc, base, "%-22.22s %s",
                  run->model_path ? tui_base(run->model_path) : "-", sum);
    }
    ui_list_hits(&hs->list, row, x + 1, list_w - 2);
    if (hs->details && hs->list.sel >= 0 && (size_t)hs->list.sel < hs->n)
        draw_details(&hs->runs[hs->list.sel], &hs->detail_scroll, y + 1, x + list_w, h - 1,
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
    case UI_KEY_BUTTON + 1:
        h->cmd = (h->cmd + 1) % N_COMMANDS;
        read_runs(t, h);
        return 1;
    case 't':
    case UI_KEY_BUTTON + 2:
        h->status = h->status + 1 >= BN_RUN_STATUS_COUNT_ ? -1 : h->status + 1;
        read_runs(t, h);
        return 1;
    case '/':
        h->searching = 1;
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
    return ((hist *)st)->searching;
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
                "f\tfilter by command (all, generate, chat, bench, ...)\n"
                "t\tfilter by status\n"
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
