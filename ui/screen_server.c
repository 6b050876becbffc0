/* screen_server.c - screen 10: a `bitnet serve` watched by URL (bitnet tui --server URL, or
 * u here), or started here on the loaded model (n): up, loading or down, slots, queue,
 * requests/s, tokens/s, the mean batch, the time to the first token, 429s, HTTP errors by
 * status, the GPU (the server's GPU memory pool from its /metrics under serve -ngl, and this
 * machine's GPU memory from NVML), and a graph of generated tokens/s. The polls run on
 * srvwatch.c's thread and a
 * server started here is a child (child.h); this file only reads their state. */
#include "tui.h"

#include <arpa/inet.h>
#include <curses.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "child.h"
#include "srvwatch.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

typedef struct srvscr {
    sw_watch *w;
    ui_input in;
    int editing;
    ui_child child;      /* a bitnet serve started here (n), stopped with x or at exit */
    char child_cmd[128]; /* "bitnet serve -m NAME --listen 127.0.0.1:PORT" */
    int child_told;      /* its end was said on the status line */
    char url_err[300];   /* why the configured URL is not watched */
} srvscr;

static void wake(void *ud)
{
    tui_wake(ud);
}

static void *srv_create(tui *t)
{
    srvscr *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    ui_child_init(&s->child);
    if (sw_new(&s->w, 1.0, wake, t) != 0) {
        ui_child_release(&s->child);
        free(s);
        return NULL;
    }
    /* --server, else the config's tui.server (BITNET_TUI_SERVER) */
    const char *u = t->opts.server_url;
    if (!u && t->cfg && *bn_config_get_str(t->cfg, "tui.server"))
        u = bn_config_get_str(t->cfg, "tui.server");
    char url[SW_URL_MAX], why[256];
    if (u && sw_url_normalize(u, url, sizeof url, why, sizeof why) == 0)
        sw_set_url(s->w, url, t->opts.server_key);
    else if (u)
        snprintf(s->url_err, sizeof s->url_err, "tui.server: %s", why);
    return s;
}

static void srv_destroy(void *st)
{
    srvscr *s = st;
    sw_free(s->w);
    ui_child_release(&s->child); /* SIGTERM: it drains and exits */
    free(s);
}

/* label in the title colour, then the value */
static void field(int y, int x, int w, const char *label, int attr, const char *value)
{
    ui_text(y, x, 12, crt_attr(CR_TITLE), label);
    ui_text(y, x + 12, w - 12, attr, value);
}

/* A count: "12", "-" when absent. */
static const char *num(double v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.0f", v);
    return buf;
}

static int state_attr(sw_state st)
{
    switch (st) {
    case SW_UP:
        return crt_attr(CR_OK);
    case SW_DOWN:
    case SW_BAD:
        return crt_attr(CR_FAIL);
    case SW_IDLE:
        return crt_attr(CR_DIM);
    default:
        return crt_attr(CR_WARN);
    }
}

/* The state, the error (wrapped on up to two lines) and whether the figures are old. */
static void draw_state(const sw_view *v, double now, int *r, int x, int w)
{
    char line[256];
    if (v->state == SW_IDLE) {
        field((*r)++, x, w, "state", crt_attr(CR_DIM),
              "no server watched: u enters its URL (or bitnet tui --server URL), n starts one");
        return;
    }
    if (v->state == SW_WAIT)
        snprintf(line, sizeof line, "connecting ...");
    else if (v->state == SW_DOWN || v->state == SW_BAD)
        snprintf(line, sizeof line, "%s, retrying every second (%ld %s failed)",
                 sw_state_name(v->state), v->fails, v->fails == 1 ? "poll" : "polls");
    else if (now - v->poll_at > 2.5)
        snprintf(line, sizeof line, "%s%s, no answer for %.0f s", sw_state_name(v->state),
                 v->state == SW_LOADING ? " (the model)" : "", now - v->poll_at);
    else
        snprintf(line, sizeof line, "%s%s, polled every second", sw_state_name(v->state),
                 v->state == SW_LOADING ? " (the model)" : "");
    field((*r)++, x, w, "state", state_attr(v->state), line);
    if (v->err[0]) {
        ui_text(*r, x, 12, crt_attr(CR_TITLE), "error");
        const int n =
                ui_text_block(*r, x + 12, 2, w - 12, crt_attr(CR_FAIL), v->err, strlen(v->err), 0);
        *r += n < 2 ? 1 : 2;
    }
    if (v->have && (v->err[0] || v->state != SW_UP))
        ui_printf((*r)++, x + 12, w - 12, crt_attr(CR_DIM), "the figures below are %.0f s old",
                  now - v->ok_at);
}

/* Rows draw_state and draw_figures take. */
static int rows_needed(srvscr *s, const sw_view *v)
{
    int n = (s->editing ? 2 : 0) + 1 + (v->err[0] ? 2 : 0) + (s->child_cmd[0] ? 1 : 0) +
            (v->state == SW_IDLE && s->url_err[0]);
    if (v->have) n += (v->err[0] || v->state != SW_UP) + 8 + (v->tot.bad_lines > 0);
    return n;
}

static void draw_http_errors(const sw_totals *t, int r, int x, int w)
{
    char line[256] = "none", n[32];
    size_t at = 0;
    for (int i = 0; i < t->n_codes && at < sizeof line; i++)
        at += (size_t)snprintf(line + at, sizeof line - at, "%s%d: %s", i ? ", " : "",
                               t->codes[i].code, num(t->codes[i].n, n, sizeof n));
    field(r, x, w, "HTTP errors", t->n_codes ? crt_attr(CR_WARN) : 0, line);
}

static void draw_figures(const sw_view *v, int r, int x, int w, int bottom)
{
    const sw_totals *t = &v->tot;
    const sw_rates *rt = &v->rate;
    const int have_r = v->have_rates;
    char line[256], a[32], b[32], c[32], d[32];
    if (r < bottom) {
        snprintf(line, sizeof line, "%s of %s busy", num(t->slots_busy, a, sizeof a),
                 num(t->slots, b, sizeof b));
        ui_text(r, x, 12, crt_attr(CR_TITLE), "slots");
        ui_meter(r++, x + 12, w - 12 > 40 ? 40 : w - 12,
                 t->slots > 0 && !isnan(t->slots_busy) ? t->slots_busy / t->slots : 0,
                 crt_attr(CR_GRAPH2), line);
    }
    snprintf(line, sizeof line, "%s waiting, %s HTTP requests in flight (this poll's included)",
             num(t->waiting, a, sizeof a), num(t->in_flight, b, sizeof b));
    if (r < bottom) field(r++, x, w, "queue", 0, line);
    snprintf(line, sizeof line, "%.2f/s; %s done: %s stop, %s length, %s error",
             have_r ? rt->requests_s : 0.0, num(t->requests, a, sizeof a),
             num(t->req_stop, b, sizeof b), num(t->req_length, c, sizeof c),
             num(t->req_error, d, sizeof d));
    if (r < bottom) field(r++, x, w, "requests", 0, line);
    snprintf(line, sizeof line, "%.1f/s generated, %.1f/s prompt; %s generated, %s prompt in all",
             have_r ? rt->tokens_s : 0.0, have_r ? rt->prompt_s : 0.0,
             num(t->gen_tokens, a, sizeof a), num(t->prompt_tokens, b, sizeof b));
    if (r < bottom) field(r++, x, w, "tokens", 0, line);
    if (!(t->steps > 0))
        snprintf(line, sizeof line, "no batched step yet");
    else if (isnan(v->batch))
        snprintf(line, sizeof line, "%.2f tokens a step in all (%s steps)",
                 t->step_tokens / t->steps, num(t->steps, a, sizeof a));
    else
        snprintf(line, sizeof line, "%.2f tokens a step lately, %.2f in all (%s steps)", v->batch,
                 t->steps > 0 ? t->step_tokens / t->steps : 0.0, num(t->steps, a, sizeof a));
    if (r < bottom) field(r++, x, w, "batch", 0, line);
    const double mean_ms = t->ttft_count > 0 ? t->ttft_sum / t->ttft_count * 1e3 : NAN;
    if (isnan(mean_ms))
        snprintf(line, sizeof line, "no request yet");
    else if (isnan(v->ttft_ms))
        snprintf(line, sizeof line, "%.1f ms mean (%s requests)", mean_ms,
                 num(t->ttft_count, a, sizeof a));
    else
        snprintf(line, sizeof line, "%.1f ms lately, %.1f ms mean (%s requests)", v->ttft_ms,
                 mean_ms, num(t->ttft_count, a, sizeof a));
    if (r < bottom) field(r++, x, w, "TTFT", 0, line);
    snprintf(line, sizeof line, "%s rejected (the queue full), %.0f in the last poll",
             num(t->rejected, a, sizeof a), have_r ? rt->rejected : 0.0);
    if (r < bottom) field(r++, x, w, "429s", t->rejected > 0 ? crt_attr(CR_WARN) : 0, line);
    if (r < bottom) draw_http_errors(t, r++, x, w);
    if (r < bottom && t->bad_lines)
        ui_printf(r++, x, w, crt_attr(CR_WARN), "%d lines of /metrics skipped: %s", t->bad_lines,
                  t->bad);
}

/* The GPU panel: the watched server's GPU pool (serve -ngl) and this machine's GPUs (NVML). */
#define GPU_PANEL_H 6
static void draw_gpu(tui *t, const sw_view *v, int y, int x, int h, int w)
{
    const sw_totals *g = &v->tot;
    char line[256], a[32], b[32], c[32];
    const int iw = w - 4;
    int r = y + 1;
    ui_box(y, x, h, w, "GPU");
    if (!v->have) {
        field(r++, x + 2, iw, "pool", crt_attr(CR_DIM), "no figures from a server yet");
    } else if (isnan(g->gpu_reserved)) {
        field(r++, x + 2, iw, "pool", crt_attr(CR_DIM),
              "none: the server runs every layer on the CPU (serve without -ngl)");
    } else {
        snprintf(line, sizeof line, "%s of %s used, peak %s",
                 ui_bytes((unsigned long long)g->gpu_used, a, sizeof a),
                 ui_bytes((unsigned long long)g->gpu_reserved, b, sizeof b),
                 ui_bytes((unsigned long long)g->gpu_peak, c, sizeof c));
        ui_text(r, x + 2, 12, crt_attr(CR_TITLE), "pool");
        ui_meter(r++, x + 14, iw - 12 > 50 ? 50 : iw - 12,
                 g->gpu_reserved > 0 ? g->gpu_used / g->gpu_reserved : 0, crt_attr(CR_GRAPH2),
                 line);
        const double frag =
                g->gpu_arena_free > 0 ? 1.0 - g->gpu_largest_free / g->gpu_arena_free : 0.0;
        snprintf(line, sizeof line, "%s free, the largest block %s: fragmentation %.0f%%",
                 ui_bytes((unsigned long long)g->gpu_arena_free, a, sizeof a),
                 ui_bytes((unsigned long long)g->gpu_largest_free, b, sizeof b), frag * 100);
        if (r < y + h - 1) field(r++, x + 2, iw, "free", 0, line);
        snprintf(line, sizeof line, "evict_kv %.0f, shrink_ctx %.0f, cpu_layers %.0f; %.0f failed",
                 g->gpu_stage[0], g->gpu_stage[1], g->gpu_stage[2], g->gpu_failures);
        const int hot = g->gpu_stage[0] + g->gpu_stage[1] + g->gpu_stage[2] + g->gpu_failures > 0;
        if (r < y + h - 1) field(r++, x + 2, iw, "pressure", hot ? crt_attr(CR_WARN) : 0, line);
    }
    const mon_data *d = mon_lock(t->mon);
    for (int i = 0; d->ready && i < d->hw.n_gpus && r < y + h - 1; i++) {
        const bn_hw_gpu *u = &d->hw.gpus[i];
        snprintf(line, sizeof line, "%d: %s, %s of %s used", u->index, u->name,
                 ui_bytes(u->mem_used, a, sizeof a), ui_bytes(u->mem_total, b, sizeof b));
        field(r++, x + 2, iw, "NVML", 0, line);
    }
    if (r < y + h - 1 && (!d->ready || d->hw.n_gpus == 0)) {
        snprintf(line, sizeof line, "%s", !d->ready ? "detecting ..." : "no GPU: ");
        if (d->ready) snprintf(line + 8, sizeof line - 8, "%s", d->hw.gpu_status);
        field(r, x + 2, iw, "NVML", crt_attr(CR_DIM), line);
    }
    mon_unlock(t->mon);
}

static void draw_graph(const sw_view *v, double now, int y, int x, int h, int w)
{
    char title[128];
    double peak = 0;
    for (int i = 0; i < v->s_tps.n; i++) {
        double ts, val;
        if (bn_series_get(&v->s_tps, i, &ts, &val) == 0 && ts >= now - 60 && val > peak) peak = val;
    }
    if (v->have_rates)
        snprintf(title, sizeof title, "Generated tokens/s: %.1f now, %.1f peak in 60 s",
                 v->rate.tokens_s, peak);
    else
        snprintf(title, sizeof title, "Generated tokens/s");
    bn_graph_opts o = bn_graph_opts_default();
    o.t_end = now, o.span = 60;
    ui_graph(y + 1, x + 1, h - 2, w - 2, &v->s_tps, o, crt_attr(CR_GRAPH1));
    ui_box(y, x, h, w, title);
}

/* The server started here, when there is one. */
static void draw_child(srvscr *s, int *r, int x, int w)
{
    if (!s->child_cmd[0]) return;
    char line[512], err[256];
    const int running = ui_child_state_get(&s->child) == UI_CHILD_RUNNING;
    ui_child_error(&s->child, err, sizeof err);
    if (running)
        snprintf(line, sizeof line, "%s, running (x stops it)", s->child_cmd);
    else
        snprintf(line, sizeof line, "%s, ended%s%s", s->child_cmd, err[0] ? ": " : "", err);
    field((*r)++, x, w, "started", running ? 0 : crt_attr(err[0] ? CR_FAIL : CR_DIM), line);
}

static void srv_draw(tui *t, void *st, int y, int x, int h, int w)
{
    srvscr *s = st;
    const double now = bn_time_now();
    const sw_view *v = sw_lock(s->w);
    int fh = rows_needed(s, v) + 2;
    if (h - fh < 6) fh = h;
    char title[SW_URL_MAX + 16];
    snprintf(title, sizeof title, "Server%s%s", v->url[0] ? " " : "", v->url);
    ui_box(y, x, fh, w, title);
    const int iw = w - 4, bottom = y + fh - 1;
    int r = y + 1;
    if (s->editing) {
        ui_text(r, x + 2, 12, crt_attr(CR_TITLE), "URL");
        ui_input_draw(&s->in, r++, x + 14, iw - 12, 1);
        ui_text(r++, x + 14, iw - 12, crt_attr(CR_DIM), "Enter: watch it, Esc: leave it as it was");
    }
    draw_child(s, &r, x + 2, iw);
    draw_state(v, now, &r, x + 2, iw);
    if (v->state == SW_IDLE && s->url_err[0])
        field(r++, x + 2, iw, "error", crt_attr(CR_FAIL), s->url_err);
    if (v->have) draw_figures(v, r, x + 2, iw, bottom);
    int gy = y + fh, gh = h - fh;
    if (gh >= GPU_PANEL_H + 3) { /* the GPU panel, then the graph below it */
        draw_gpu(t, v, gy, x, GPU_PANEL_H, w);
        gy += GPU_PANEL_H, gh -= GPU_PANEL_H;
    }
    if (gh > 0 && fh < h) draw_graph(v, now, gy, x, gh, w);
    sw_unlock(s->w);
}

static void apply_url(tui *t, srvscr *s)
{
    char url[SW_URL_MAX], why[256];
    if (sw_url_normalize(s->in.buf, url, sizeof url, why, sizeof why) != 0) {
        tui_status(t, CR_FAIL, "server: %s", why);
        return;
    }
    sw_set_url(s->w, url, t->opts.server_key);
    s->editing = 0;
    s->url_err[0] = '\0';
    tui_status(t, CR_NORMAL, "watching %s", url);
}

/* A loopback port nobody listens on now (the kernel's choice), or -1. */
static int free_port(void)
{
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    socklen_t n = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* The model to serve: the loaded one, the configured one, the bundled one; NULL. */
static const char *model_to_serve(tui *t, char *buf, size_t size)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    if (es.model.loaded)
        snprintf(buf, size, "%s", es.model.path);
    else if (t->cfg && *bn_config_get_str(t->cfg, "model"))
        snprintf(buf, size, "%s", bn_config_get_str(t->cfg, "model"));
    else if (t->bundled[0])
        snprintf(buf, size, "%s", t->bundled);
    else
        return NULL;
    return buf;
}

/* n: `bitnet serve` on the loaded model and a free loopback port, watched here. */
static void start_child(tui *t, srvscr *s)
{
    char model[BN_CONFIG_PATH_MAX + 256], listen[32], url[64];
    if (ui_child_state_get(&s->child) == UI_CHILD_RUNNING) {
        tui_status(t, CR_WARN, "the server started here is running (x stops it)");
        return;
    }
    if (!model_to_serve(t, model, sizeof model)) {
        tui_status(t, CR_FAIL, "no model to serve: load one on Models (F5)");
        return;
    }
    const int port = free_port();
    if (port <= 0) {
        tui_status(t, CR_FAIL, "no free loopback port: %s", strerror(errno));
        return;
    }
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *args[] = {"serve", "-m", model, "--listen", listen, NULL};
    snprintf(s->child_cmd, sizeof s->child_cmd, "bitnet serve -m %.40s --listen %s",
             tui_base(model), listen);
    s->child_told = 0;
    if (ui_child_start(&s->child, args, 0, wake, t) != 0) {
        char err[256];
        ui_child_error(&s->child, err, sizeof err);
        tui_status(t, CR_FAIL, "%s", err);
        return;
    }
    snprintf(url, sizeof url, "http://%s", listen);
    sw_set_url(s->w, url, NULL);
    s->url_err[0] = '\0';
    tui_status(t, CR_NORMAL, "started %s", s->child_cmd);
}

/* x: SIGTERM to the server started here; it drains, and its end comes through srv_tick. */
static void stop_child(tui *t, srvscr *s)
{
    if (ui_child_state_get(&s->child) != UI_CHILD_RUNNING || sr_kill(&s->child.proc, SIGTERM)) {
        tui_status(t, CR_WARN, "no server started here is running (n starts one)");
        return;
    }
    tui_status(t, CR_NORMAL, "stopping %s ...", s->child_cmd);
}

static void srv_tick(tui *t, void *st)
{
    srvscr *s = st;
    if (!s->child_cmd[0] || s->child_told || ui_child_state_get(&s->child) != UI_CHILD_DONE) return;
    s->child_told = 1;
    char err[256];
    ui_child_error(&s->child, err, sizeof err);
    if (err[0])
        tui_status(t, CR_FAIL, "bitnet serve: %s", err);
    else
        tui_status(t, CR_NORMAL, "the server started here has stopped");
}

static int srv_key(tui *t, void *st, int ch)
{
    srvscr *s = st;
    if (s->editing) {
        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER)
            apply_url(t, s);
        else if (ch == 27)
            s->editing = 0;
        else
            return ui_input_key(&s->in, ch);
        return 1;
    }
    if (ch == 'u') {
        const sw_view *v = sw_lock(s->w);
        ui_input_set(&s->in, v->url[0] ? v->url : DEFAULT_URL);
        sw_unlock(s->w);
        s->editing = 1;
        return 1;
    }
    if (ch == 'r') {
        sw_poll_now(s->w);
        return 1;
    }
    if (ch == 'n') {
        start_child(t, s);
        return 1;
    }
    if (ch == 'x') {
        stop_child(t, s);
        return 1;
    }
    return 0;
}

static int srv_editing(void *st)
{
    return ((srvscr *)st)->editing;
}

const tui_screen scr_server = {
        .name = "Server",
        .id = "server",
        .letter = '0',
        .fkey = 12,
        .live = 1,
        .help = "u\twatch a bitnet serve: its URL (bitnet tui --server URL at start)\n"
                "n\tstart bitnet serve here on the loaded model (a free loopback port)\n"
                "x\tstop the server started here (it also stops when the UI quits)\n"
                "r\tpoll now (it polls GET /health and /metrics every second)\n"
                "\trates are the counters' growth between two polls; the graph shows\n"
                "\tthe last 60 s of generated tokens/s",
        .create = srv_create,
        .destroy = srv_destroy,
        .draw = srv_draw,
        .key = srv_key,
        .editing = srv_editing,
        .tick = srv_tick,
};

int bn_tui_server_url_check(const char *url, char *why, size_t size)
{
    char out[SW_URL_MAX];
    return sw_url_normalize(url, out, sizeof out, why, size);
}
