/* screen_bench.c - screen 6: prompt (pp) and generation (tg) benchmarks of the loaded model
 * with a live tokens/s graph, compared with the earlier runs in the history. */
#include "tui.h"

#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "common/json.h"

#define EARLIER 50

enum { B_PP, B_TG, B_REPS, B_COUNT };

typedef struct bench {
    int val[B_COUNT];
    int field;
    int job;
    bn_run *runs;
    size_t n_runs;
    unsigned long long seq;
    ui_list list;
    char err[256];
} bench;

/* The sizes are kept in the config, as the editor leaves them. */
static const char *const bench_keys[B_COUNT] = {"tui.bench.pp", "tui.bench.tg", "tui.bench.reps"};
static const int bench_def[B_COUNT] = {128, 32, 3};

static void *bench_create(tui *t)
{
    bench *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    for (int i = 0; i < B_COUNT; i++) b->val[i] = tui_setting_int(t, bench_keys[i], bench_def[i]);
    b->seq = (unsigned long long)-1;
    return b;
}

static void bench_destroy(void *st)
{
    bench *b = st;
    bn_db_runs_free(b->runs, b->n_runs);
    free(b);
}

/* The earlier model benchmarks (suite "model"), newest first. */
static void read_runs(tui *t, bench *b)
{
    if (b->seq == t->hist_seq) return;
    b->seq = t->hist_seq;
    bn_run_filter f = bn_run_filter_all();
    f.command = "bench";
    f.text = "\"model\"";
    f.limit = EARLIER * 4;
    bn_run *runs = NULL;
    size_t n = 0;
    if (tui_run_list(t, &f, &runs, &n, b->err, sizeof b->err) != BN_OK) return;
    size_t k = 0; /* keep the model suite's runs only */
    for (size_t i = 0; i < n; i++) {
        if (tui_run_param_is(&runs[i], "suite", "model") && k < EARLIER) {
            if (k != i) {
                bn_run tmp = runs[k];
                runs[k] = runs[i];
                runs[i] = tmp;
            }
            k++;
        }
    }
    bn_db_runs_free(b->runs, b->n_runs);
    b->runs = runs, b->n_runs = n;
    b->list.n = (int)k;
    b->err[0] = '\0';
}

static double mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

static double sdev(const double *v, int n)
{
    if (n < 2) return 0;
    const double m = mean(v, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

static void draw_settings(bench *b, const eng_status *es, int y, int x, int w)
{
    static const char *const names[] = {"prompt tokens (pp)", "generated tokens (tg)", "runs"};
    for (int i = 0; i < B_COUNT; i++) {
        const int a = i == b->field ? crt_attr(CR_SELECT) : 0;
        ui_clear(y + i, x, w, a);
        ui_printf(y + i, x + 1, w - 2, a, "%-24s %5d", names[i], b->val[i]);
        ui_hit(y + i, x, w, UI_KEY_ROW + 1000 + i);
    }
    int c = x + 1;
    const int busy = es->job == ENG_BENCHING;
    c += ui_button(y + B_COUNT + 1, c, "Run (r)", UI_KEY_BUTTON + 1, es->job == ENG_IDLE, 0) + 2;
    ui_button(y + B_COUNT + 1, c, "Stop (x)", UI_KEY_BUTTON + 2, busy, 0);
}

static void draw_results(const eng_status *es, int y, int x, int h, int w)
{
    int r = y;
    if (!es->bench_reps) {
        ui_text(r, x, w, crt_attr(CR_DIM), "no benchmark run in this session yet (r runs one)");
        return;
    }
    char end[64] = "";
    if (es->job != ENG_BENCHING && !strcmp(es->bench_end, "done"))
        snprintf(end, sizeof end, " (done)");
    else if (es->job != ENG_BENCHING && es->bench_end[0])
        snprintf(end, sizeof end, " (%s after %d of %d)", es->bench_end, es->bench_done,
                 es->bench_reps);
    ui_printf(r++, x, w,
              !strcmp(end, " (done)") || !end[0] ? crt_attr(CR_TITLE) : crt_attr(CR_WARN),
              "pp %d, tg %d, %d runs%s", es->bench_pp, es->bench_tg, es->bench_reps, end);
    if (es->job == ENG_BENCHING) {
        char lab[64];
        snprintf(lab, sizeof lab, "run %d/%d %s", es->bench_rep + 1, es->bench_reps,
                 es->bench_phase);
        const double frac = es->bench_tg ? (double)es->bench_pos / es->bench_tg : 0;
        ui_meter(r++, x, w, frac, crt_attr(CR_GRAPH1), lab);
    }
    for (int i = 0; i < es->bench_done && r < y + h - 1; i++)
        ui_printf(r++, x, w, 0, "run %d: pp %8.1f  tg %8.1f tokens/s", i + 1, es->bench_pp_tps[i],
                  es->bench_tg_tps[i]);
    if (es->bench_done && r + 1 < y + h) {
        ui_printf(r++, x, w, crt_attr(CR_OK), "mean   pp %8.1f +- %.1f tokens/s",
                  mean(es->bench_pp_tps, es->bench_done), sdev(es->bench_pp_tps, es->bench_done));
        ui_printf(r++, x, w, crt_attr(CR_OK), "       tg %8.1f +- %.1f tokens/s",
                  mean(es->bench_tg_tps, es->bench_done), sdev(es->bench_tg_tps, es->bench_done));
    }
}

/* A run's sizes: from its results (bitnet bench -m's shape), else from its params (a run
 * stopped before its first result); NaN when neither says. */
static void run_sizes(const bn_run *run, double *pp, double *tg)
{
    *pp = *tg = NAN;
    cJSON *m = run->metrics_json ? cJSON_Parse(run->metrics_json) : NULL;
    const cJSON *res;
    cJSON_ArrayForEach(res, cJSON_GetObjectItemCaseSensitive(m, "results"))
    {
        const double np = cm_json_num(res, "n_prompt", 0), ng = cm_json_num(res, "n_gen", 0);
        if (np > 0) *pp = np;
        if (ng > 0) *tg = ng;
    }
    cJSON_Delete(m);
    cJSON *p = run->params_json ? cJSON_Parse(run->params_json) : NULL;
    if (isnan(*pp)) *pp = cm_json_num(p, "pp", NAN);
    if (isnan(*tg)) *tg = cm_json_num(p, "tg", NAN);
    cJSON_Delete(p);
}

/* A number in w columns, "-" when there is none. */
static void num_or_dash(double v, int prec, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*f", prec, v);
}

static void draw_earlier(tui *t, bench *b, const eng_status *es, int y, int x, int h, int w)
{
    read_runs(t, b);
    ui_box(y, x, h, w, "Earlier model benchmarks (history)");
    if (b->err[0]) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_WARN), b->err);
        return;
    }
    if (b->list.n == 0) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "none recorded yet");
        return;
    }
    /* "vs now": this session's last results against earlier runs of the same model and sizes */
    const double cur_tg = es->bench_done ? mean(es->bench_tg_tps, es->bench_done) : 0;
    ui_printf(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "%-16s %-9s %5s %5s %9s %9s  %-8s %s", "when",
              "status", "pp", "tg", "pp tok/s", "tg tok/s", "vs now", "model");
    ui_list_layout(&b->list, b->list.n, h - 3);
    for (int r = 0; r < b->list.h && b->list.top + r < b->list.n; r++) {
        const bn_run *run = &b->runs[b->list.top + r];
        char tm[32], vs[16] = "-", c[4][16];
        ui_time(run->started_ms, tm, sizeof tm);
        const double tg = tui_run_metric(run, "tg_tokens_per_s", NAN);
        const double pp = tui_run_metric(run, "pp_tokens_per_s", NAN);
        double ppn, tgn;
        run_sizes(run, &ppn, &tgn);
        const int same = es->model.loaded && run->model_path &&
                         !strcmp(run->model_path, es->model.path) && ppn == es->bench_pp &&
                         tgn == es->bench_tg;
        if (same && cur_tg > 0 && tg > 0)
            snprintf(vs, sizeof vs, "%+.0f%%", (cur_tg / tg - 1) * 100);
        num_or_dash(ppn, 0, c[0], sizeof c[0]);
        num_or_dash(tgn, 0, c[1], sizeof c[1]);
        num_or_dash(pp, 1, c[2], sizeof c[2]);
        num_or_dash(tg, 1, c[3], sizeof c[3]);
        const int sel = b->list.top + r == b->list.sel;
        ui_printf(y + 2 + r, x + 2, w - 4, sel ? crt_attr(CR_SELECT) : 0,
                  "%-16s %-9s %5s %5s %9s %9s  %-8s %s", tm, bn_run_status_str(run->status), c[0],
                  c[1], c[2], c[3], vs, run->model_path ? tui_base(run->model_path) : "");
    }
    ui_list_hits(&b->list, y + 2, x + 1, w - 2);
}

static void bench_draw(tui *t, void *st, int y, int x, int h, int w)
{
    bench *b = st;
    eng_status es;
    eng_status_get(t->eng, &es);
    const int top = h * 3 / 5 < 14 ? 14 : h * 3 / 5;
    const int lw = w * 2 / 5 < 44 ? 44 : w * 2 / 5;
    char title[300];
    snprintf(title, sizeof title, "Benchmark %s",
             es.model.loaded ? tui_base(es.model.path) : "(no model loaded: Models, F5)");
    ui_box(y, x, top, lw, title);
    draw_settings(b, &es, y + 1, x + 1, lw - 2);
    draw_results(&es, y + B_COUNT + 4, x + 2, top - B_COUNT - 5, lw - 4);
    const bn_series *s = eng_lock_tps(t->eng);
    bn_graph_opts o = bn_graph_opts_default();
    o.t_end = bn_time_now(), o.span = 60;
    ui_graph(y + 1, x + lw + 1, top - 2, w - lw - 2, s, o, crt_attr(CR_GRAPH1));
    eng_unlock(t->eng);
    snprintf(title, sizeof title, "Tokens/s, live%s",
             es.job == ENG_BENCHING ? "" : " (generation and benchmarks)");
    ui_box(y, x + lw, top, w - lw, title);
    draw_earlier(t, b, &es, y + top, x, h - top, w);
}

static int bench_key(tui *t, void *st, int ch)
{
    bench *b = st;
    static const int step[B_COUNT] = {32, 16, 1}, lo[B_COUNT] = {0, 0, 1};
    static const int hi[B_COUNT] = {4096, 2048, ENG_MAX_REPS};
    if (ch >= UI_KEY_ROW + 1000 && ch < UI_KEY_ROW + 1000 + B_COUNT) {
        b->field = ch - UI_KEY_ROW - 1000;
        return 1;
    }
    if (ch >= UI_KEY_ROW && ch < UI_KEY_ROW + 1000) return ui_list_key(&b->list, ch);
    switch (ch) {
    case KEY_UP:
        b->field = (b->field + B_COUNT - 1) % B_COUNT;
        return 1;
    case KEY_DOWN:
        b->field = (b->field + 1) % B_COUNT;
        return 1;
    case KEY_LEFT:
    case '-':
    case KEY_RIGHT:
    case '+': {
        int v = b->val[b->field] + ((ch == KEY_LEFT || ch == '-') ? -1 : 1) * step[b->field];
        v = v < lo[b->field] ? lo[b->field] : v > hi[b->field] ? hi[b->field] : v;
        eng_status es;
        eng_status_get(t->eng, &es);
        const int pp = b->field == B_PP ? v : b->val[B_PP],
                  tg = b->field == B_TG ? v : b->val[B_TG];
        if (b->field != B_REPS && es.model.loaded && pp + tg + 1 > es.model.n_ctx_train &&
            v > b->val[b->field]) { /* refused now, not later at r */
            tui_status(t, CR_WARN, "pp + tg must fit the model's context (%lld): pp %d + tg %d + 1",
                       es.model.n_ctx_train, pp, tg);
            return 1;
        }
        b->val[b->field] = v;
        tui_setting_save_int(t, bench_keys[b->field], b->val[b->field]);
        return 1;
    }
    case 'r':
    case '\n':
    case '\r':
    case KEY_ENTER:
    case UI_KEY_BUTTON + 1: {
        eng_status es;
        eng_status_get(t->eng, &es);
        if (!es.model.loaded) {
            tui_status(t, CR_WARN, "no model loaded: load one on Models (F5)");
            return 1;
        }
        if (b->val[B_PP] + b->val[B_TG] + 1 > es.model.n_ctx_train) {
            tui_status(t, CR_WARN, "pp + tg must fit the model's context (%lld)",
                       es.model.n_ctx_train);
            return 1;
        }
        b->job = eng_bench(t->eng, b->val[B_PP], b->val[B_TG], b->val[B_REPS]);
        if (b->job < 0) tui_status(t, CR_WARN, "busy: wait for the running job, or stop it");
        return 1;
    }
    case 'x':
    case 27:
    case UI_KEY_BUTTON + 2:
        eng_cancel(t->eng);
        return 1;
    case KEY_PPAGE:
    case KEY_NPAGE:
    case UI_KEY_WHEEL_UP:
    case UI_KEY_WHEEL_DOWN:
        return ui_list_key(&b->list, ch);
    default:
        return 0;
    }
}

static void bench_enter(tui *t, void *st)
{
    bench *b = st;
    b->seq = t->hist_seq - 1;
}

const tui_screen scr_bench = {
        .name = "Benchmarks",
        .id = "benchmarks",
        .letter = 'b',
        .fkey = 7,
        .live = 1,
        .help = "Up Down\tchoose pp, tg or runs\n"
                "Left Right - +\tchange it\n"
                "r Enter\trun the benchmark on the loaded model\n"
                "x Esc\tstop it\n"
                "PgUp PgDn\tscroll the earlier runs\n"
                "\tpp: a batch of random prompt tokens; tg: tokens one at a time, as\n"
                "\tin generation; each run is recorded in the history as bitnet bench -m\n"
                "\trecords its runs (bench, suite model), and both are listed here",
        .create = bench_create,
        .destroy = bench_destroy,
        .enter = bench_enter,
        .draw = bench_draw,
        .key = bench_key,
};
