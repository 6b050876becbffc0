/* screen_dashboard.c - screen 1: the loaded model, live tokens/s, CPU (each core), memory,
 * swap, load, disk and network I/O, the GPUs, alerts, the bitnet processes and the recent
 * history at a glance. */
#include "tui.h"

#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"

#define RECENT 12

typedef struct dash {
    bn_run *runs;
    size_t n_runs;
    unsigned long long seq; /* t->hist_seq when read */
    double read_at;
    char err[256];
} dash;

static void *dash_create(tui *t)
{
    (void)t;
    dash *d = calloc(1, sizeof *d);
    if (d) d->seq = (unsigned long long)-1;
    return d;
}

static void dash_destroy(void *st)
{
    dash *d = st;
    bn_db_runs_free(d->runs, d->n_runs);
    free(d);
}

static void read_recent(tui *t, dash *d)
{
    const double now = bn_time_now();
    if (d->seq == t->hist_seq && now - d->read_at < 10) return;
    d->seq = t->hist_seq, d->read_at = now;
    bn_run_filter f = bn_run_filter_all();
    f.limit = RECENT;
    bn_run *runs = NULL;
    size_t n = 0;
    if (tui_run_list(t, &f, &runs, &n, d->err, sizeof d->err) != BN_OK) return;
    bn_db_runs_free(d->runs, d->n_runs);
    d->runs = runs, d->n_runs = n, d->err[0] = '\0';
}

static void draw_model(tui *t, int y, int x, int h, int w)
{
    eng_status st;
    eng_status_get(t->eng, &st);
    ui_box(y, x, h, w, "Model");
    const eng_model_info *m = &st.model;
    char a[32], b[32];
    int r = y + 1;
    const int iw = w - 4;
    if (!m->loaded) {
        if (st.job == ENG_LOADING)
            ui_text(r++, x + 2, iw, crt_attr(CR_WARN), "loading ...");
        else
            ui_text(r++, x + 2, iw, crt_attr(CR_WARN), "no model loaded");
        if (st.message[0] && !st.ok) ui_text(r++, x + 2, iw, crt_attr(CR_FAIL), st.message);
        if (!t->bundled[0] && r < y + h - 1)
            ui_text(r++, x + 2, iw, 0, "no bundled model found in this build");
        if (r < y + h - 1)
            ui_text(r++, x + 2, iw, crt_attr(CR_DIM),
                    "load one on Models (F5, m) or run Setup (F3, s)");
        return;
    }
    ui_text(r++, x + 2, iw, crt_attr(CR_TITLE), tui_base(m->path));
    if (r < y + h - 1)
        ui_printf(r++, x + 2, iw, 0, "%s, %s weights, %.0fM parameters", m->arch, m->weight_type,
                  m->n_params / 1e6);
    if (r < y + h - 1)
        ui_printf(r++, x + 2, iw, 0, "%lld layers, context %lld, %s at run time, KV %s", m->n_layer,
                  m->n_ctx, ui_bytes(m->weight_bytes, a, sizeof a),
                  ui_bytes(m->kv_bytes, b, sizeof b));
    if (r < y + h - 1)
        ui_printf(r++, x + 2, iw, crt_attr(CR_DIM), "loaded in %.2f s, %d threads", m->load_s,
                  m->threads);
    if (r < y + h - 1) {
        if (st.job == ENG_GENERATING)
            ui_printf(r++, x + 2, iw, crt_attr(CR_OK), "generating: %lld tokens, %.1f tokens/s",
                      st.gen_tokens, st.gen_tps);
        else if (st.job == ENG_BENCHING)
            ui_printf(r++, x + 2, iw, crt_attr(CR_OK), "benchmark: %s, run %d of %d",
                      st.bench_phase, st.bench_rep + 1, st.bench_reps);
        else
            ui_text(r++, x + 2, iw, crt_attr(CR_DIM), "idle");
    }
}

static void draw_tps(tui *t, int y, int x, int h, int w)
{
    eng_status st;
    eng_status_get(t->eng, &st);
    char title[96];
    const bn_series *s = eng_lock_tps(t->eng);
    const double last = bn_series_last(s, 0);
    if (st.job == ENG_GENERATING || st.job == ENG_BENCHING)
        snprintf(title, sizeof title, "Tokens/s: %.1f now", st.tps_now);
    else if (s->n)
        snprintf(title, sizeof title, "Tokens/s: idle (last %.1f)", last);
    else
        snprintf(title, sizeof title, "Tokens/s: no generation yet");
    bn_graph_opts o = bn_graph_opts_default();
    o.t_end = bn_time_now(), o.span = 60;
    ui_graph(y + 1, x + 1, h - 2, w - 2, s, o, crt_attr(CR_GRAPH1));
    eng_unlock(t->eng);
    ui_box(y, x, h, w, title);
}

/* A rate in bytes per second for people ("1.2 MiB/s"), or "-" before two samples. */
static const char *rate_text(double bps, char *buf, size_t size)
{
    char b[32];
    if (bps < 0) return snprintf(buf, size, "-"), buf;
    snprintf(buf, size, "%s/s", ui_bytes((unsigned long long)bps, b, sizeof b));
    return buf;
}

/* Each core: a meter per core when they fit in rows rows, else one character a core
 * (eighths of a block, or a digit 0-9 without Unicode). Returns the rows used. */
static int draw_cores(const mon_sys *s, int y, int x, int w, int rows)
{
    const int n = s->n_cpus, cell = 15, per_row = w / cell > 0 ? w / cell : 1;
    if (n == 0) return 0;
    if ((n + per_row - 1) / per_row <= rows) {
        for (int i = 0; i < n; i++) {
            char lab[24];
            const double v = s->cpu_core[i];
            snprintf(lab, sizeof lab, v < 0 ? "cpu%d -" : "cpu%d %.0f%%", i, v);
            ui_meter(y + i / per_row, x + (i % per_row) * cell, cell - 1, v < 0 ? 0 : v / 100,
                     crt_attr(CR_GRAPH2), lab);
        }
        return (n + per_row - 1) / per_row;
    }
    static const char *const eighths[] = {" ",      "\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588"};
    int c = x + ui_text(y, x, w, crt_attr(CR_DIM), "cores ");
    for (int i = 0; i < n && c < x + w; i++, c++) {
        const double v = s->cpu_core[i] < 0 ? 0 : s->cpu_core[i];
        char d[2] = {(char)('0' + (int)(v / 10.01)), 0};
        ui_text(y, c, 1, crt_attr(CR_GRAPH2),
                crt_unicode() ? eighths[(int)(v / 100 * 8 + 0.5)] : d);
    }
    return 1;
}

static void draw_system(const mon_data *d, int y, int x, int h, int w)
{
    const mon_sys *s = &d->sys;
    char a[32], b[32], lab[96];
    int r = y;
    const int end = y + h;
    r += draw_cores(s, r, x, w, end - r - 3 > 1 ? end - r - 3 : 1);
    if (r < end && d->ready && d->hw.mem_total) {
        const unsigned long long used = d->hw.mem_total - d->hw.mem_available;
        snprintf(lab, sizeof lab, "%s of %s", ui_bytes(used, a, sizeof a),
                 ui_bytes(d->hw.mem_total, b, sizeof b));
        ui_text(r, x, 5, 0, "mem");
        ui_meter(r++, x + 5, w - 5, (double)used / (double)d->hw.mem_total, crt_attr(CR_GRAPH3),
                 lab);
    }
    if (r < end && s->have_swap) {
        const unsigned long long used = s->swap_total - s->swap_free;
        snprintf(lab, sizeof lab, "%s of %s", ui_bytes(used, a, sizeof a),
                 ui_bytes(s->swap_total, b, sizeof b));
        ui_text(r, x, 5, 0, "swap");
        ui_meter(r++, x + 5, w - 5, s->swap_total ? (double)used / (double)s->swap_total : 0,
                 crt_attr(CR_GRAPH3), s->swap_total ? lab : "none");
    }
    if (r < end && s->have_load)
        ui_printf(r++, x, w, 0, "load %.2f %.2f %.2f", s->load[0], s->load[1], s->load[2]);
    if (r < end)
        ui_printf(r++, x, w, 0, "disk read %s, write %s", rate_text(s->disk_read, a, sizeof a),
                  rate_text(s->disk_write, b, sizeof b));
    if (r < end)
        ui_printf(r++, x, w, 0, "net  in %s, out %s", rate_text(s->net_rx, a, sizeof a),
                  rate_text(s->net_tx, b, sizeof b));
}

static void draw_cpu_mem(tui *t, int y, int x, int h, int w)
{
    const mon_data *d = mon_lock(t->mon);
    char title[128], a[32];
    const int lw = w / 2, rw = w - lw;
    if (d->cpu_sys >= 0)
        snprintf(title, sizeof title, "CPU: %.0f%% of %d, bitnet %.0f%% of one", d->cpu_sys,
                 d->ready ? d->hw.cpu->n_cores : 0, d->cpu_proc);
    else
        snprintf(title, sizeof title, "CPU: measuring ...");
    bn_graph_opts o = bn_graph_opts_default();
    o.t_end = bn_time_now(), o.span = 60, o.y_min = 0, o.y_max = 100, o.unit = "%";
    ui_graph(y + 1, x + 1, h - 2, lw - 2, &d->s_cpu_sys, o, crt_attr(CR_GRAPH2));
    ui_box(y, x, h, lw, title);
    snprintf(title, sizeof title, "System: bitnet %s resident", ui_bytes(d->rss, a, sizeof a));
    ui_box(y, x + lw, h, rw, title);
    draw_system(d, y + 1, x + lw + 2, h - 2, rw - 4);
    mon_unlock(t->mon);
}

static int gpu_height(tui *t, int avail)
{
    const mon_data *d = mon_lock(t->mon);
    const int n = d->ready ? d->hw.n_gpus : 0;
    mon_unlock(t->mon);
    int h = n ? 2 + n + 4 : 3;
    return h > avail ? avail : h;
}

static void draw_gpus(tui *t, int y, int x, int h, int w)
{
    const mon_data *d = mon_lock(t->mon);
    char a[32], b[32], lab[96];
    if (!d->ready) {
        ui_box(y, x, h, w, "GPU");
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "detecting ...");
    } else if (d->hw.n_gpus == 0) {
        ui_box(y, x, h, w, "GPU");
        ui_printf(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "no GPU detected: %s", d->hw.gpu_status);
    } else {
        ui_box(y, x, h, w, "GPUs (NVML)");
        const int n = d->hw.n_gpus;
        int r = y + 1;
        for (int i = 0; i < n && r < y + h - 1; i++, r++) {
            const bn_hw_gpu *g = &d->hw.gpus[i];
            const int tw = w / 2;
            if (g->util_gpu >= 0)
                ui_printf(r, x + 2, tw - 2, 0, "%d: %s, %d%% busy", g->index, g->name, g->util_gpu);
            else
                ui_printf(r, x + 2, tw - 2, 0, "%d: %s", g->index, g->name);
            snprintf(lab, sizeof lab, "%s / %s", ui_bytes(g->mem_used, a, sizeof a),
                     ui_bytes(g->mem_total, b, sizeof b));
            ui_meter(r, x + tw, w - tw - 2,
                     g->mem_total ? (double)g->mem_used / (double)g->mem_total : 0,
                     crt_attr(CR_GRAPH2), lab);
        }
        const int gh = y + h - 1 - r;
        const int gw = (w - 2) / (2 * n);
        for (int i = 0; gh >= 2 && gw >= 12 && i < n; i++) {
            bn_graph_opts o = bn_graph_opts_default();
            o.t_end = bn_time_now(), o.span = 60, o.y_min = 0, o.y_max = 100, o.unit = "%";
            char l[32], m[32];
            snprintf(l, sizeof l, "gpu%d busy", i);
            snprintf(m, sizeof m, "gpu%d mem", i);
            o.x_left = l;
            ui_graph(r, x + 1 + 2 * i * gw, gh, gw - 1, &d->s_gpu_util[i], o, crt_attr(CR_GRAPH1));
            o.x_left = m;
            ui_graph(r, x + 1 + (2 * i + 1) * gw, gh, gw - 1, &d->s_gpu_mem_pct[i], o,
                     crt_attr(CR_GRAPH2));
        }
    }
    mon_unlock(t->mon);
}

static void draw_recent(tui *t, dash *d, int y, int x, int h, int w)
{
    read_recent(t, d);
    ui_box(y, x, h, w, "Recent history");
    if (d->err[0]) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_WARN), d->err);
        return;
    }
    if (d->n_runs == 0) {
        ui_text(y + 1, x + 2, w - 4, crt_attr(CR_DIM), "no runs recorded yet");
        return;
    }
    for (size_t i = 0; i < d->n_runs && (int)i < h - 2; i++) {
        const bn_run *r = &d->runs[i];
        char tm[32], sum[160];
        ui_time(r->started_ms, tm, sizeof tm);
        tui_run_summary(r, sum, sizeof sum);
        const int sa = r->status == BN_RUN_OK       ? crt_attr(CR_OK)
                       : r->status == BN_RUN_FAILED ? crt_attr(CR_FAIL)
                                                    : crt_attr(CR_WARN);
        const int row = y + 1 + (int)i;
        int c = x + 2;
        c += ui_printf(row, c, w - 4, crt_attr(CR_DIM), "%-16s ", tm);
        c += ui_printf(row, c, x + w - 2 - c, 0, "%-10s ", r->command);
        c += ui_printf(row, c, x + w - 2 - c, sa, "%-10s ", bn_run_status_str(r->status));
        ui_printf(row, c, x + w - 2 - c, 0, "%s%s%s", sum, r->model_path ? "  " : "",
                  r->model_path ? tui_base(r->model_path) : "");
    }
}

/* The bitnet processes on this machine: the monitor daemon, job workers, servers, UIs. */
static void draw_procs(tui *t, int y, int x, int h, int w)
{
    const mon_data *d = mon_lock(t->mon);
    const mon_sys *s = &d->sys;
    char title[64], a[32], cpu[16];
    snprintf(title, sizeof title, "bitnet processes (%d)", s->n_procs);
    ui_box(y, x, h, w, title);
    const int iw = w - 4;
    int r = y + 1;
    if (r < y + h - 1)
        ui_printf(r++, x + 2, iw, crt_attr(CR_DIM), "%7s %-10s %-9s %5s %9s  %s", "PID", "ROLE",
                  "STATE", "CPU", "RSS", "COMMAND");
    const int shown = s->n_procs < MON_MAX_PROCS ? s->n_procs : MON_MAX_PROCS;
    for (int i = 0; i < shown && r < y + h - 1; i++, r++) {
        const bn_sys_proc *p = &s->procs[i];
        const char st = p->state;
        const int sa = st == 'R'                             ? crt_attr(CR_OK)
                       : st == 'D' || st == 'Z' || st == 'T' ? crt_attr(CR_WARN)
                                                             : 0;
        char role[32];
        snprintf(role, sizeof role, "%s%s", p->role, p->holds_lock ? "*" : "");
        snprintf(cpu, sizeof cpu, s->proc_cpu[i] < 0 ? "-" : "%.0f%%", s->proc_cpu[i]);
        int c = x + 2;
        c += ui_printf(r, c, iw, 0, "%7d %-10.10s ", p->pid, role);
        c += ui_printf(r, c, x + w - 2 - c, sa, "%-9s ", bn_sys_state_name(st));
        c += ui_printf(r, c, x + w - 2 - c, 0, "%5s %9s  ", cpu, ui_bytes(p->rss, a, sizeof a));
        ui_text(r, c, x + w - 2 - c, crt_attr(CR_DIM), p->cmd);
    }
    if (r < y + h - 1 && shown < s->n_procs)
        ui_printf(r++, x + 2, iw, crt_attr(CR_DIM), "... %d more", s->n_procs - shown);
    if (r < y + h - 1)
        ui_text(r, x + 2, iw, crt_attr(CR_DIM), "*: holds the monitor's or the job worker's lock");
    mon_unlock(t->mon);
}

static void draw_alerts(tui *t, int y, int x, int h, int w)
{
    ui_box(y, x, h, w, "Alerts");
    tui_alerts_panel(t, y + 1, x + 2, h - 2, w - 4);
}

static void dash_draw(tui *t, void *st, int y, int x, int h, int w)
{
    dash *d = st;
    int top = h >= 30 ? 8 : h >= 22 ? 7 : 6;
    int mid = top;
    int gpu = gpu_height(t, h - top - mid - 4);
    if (gpu < 3) gpu = 3;
    int rest = h - top - mid - gpu;
    if (rest < 3) { /* a short terminal: smaller graphs first */
        top = mid = (h - gpu - 3) / 2;
        if (top < 4) top = mid = 4;
        rest = h - top - mid - gpu;
    }
    const int half = w / 2;
    draw_model(t, y, x, top, half);
    draw_tps(t, y, x + half, top, w - half);
    draw_cpu_mem(t, y + top, x, mid, w);
    draw_gpus(t, y + top + mid, x, gpu, w);
    if (rest >= 3) {
        const int aw = w >= 100 ? w / 2 : w / 2, ry = y + top + mid + gpu;
        const int ah = rest >= 10 ? rest / 2 : rest; /* the processes below the alerts */
        draw_recent(t, d, ry, x, rest, w - aw);
        draw_alerts(t, ry, x + w - aw, ah, aw);
        if (rest - ah >= 3) draw_procs(t, ry + ah, x + w - aw, rest - ah, aw);
    }
}

static int dash_key(tui *t, void *st, int ch)
{
    dash *d = st;
    if (ch == 'r') {
        d->seq = t->hist_seq - 1;
        return 1;
    }
    return 0;
}

static void dash_enter(tui *t, void *st)
{
    dash *d = st;
    d->seq = t->hist_seq - 1; /* read the history again */
}

const tui_screen scr_dashboard = {
        .name = "Dashboard",
        .id = "dashboard",
        .letter = 'd',
        .fkey = 2,
        .live = 1,
        .help = "r\tread the recent history again\n"
                "w W\tthe graphs' window: 1 min, 5 min, 15 min, 1 h (every screen; saved)\n"
                "[ ]\trefresh faster / slower: 0.5 s to 30 s (every screen; saved)\n"
                "z\tpause: the meters and graphs stand still until z again\n"
                "g\tgraph style (every screen; saved)\n"
                "\tthe history updates as runs end",
        .create = dash_create,
        .destroy = dash_destroy,
        .enter = dash_enter,
        .draw = dash_draw,
        .key = dash_key,
};
