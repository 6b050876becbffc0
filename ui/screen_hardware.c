/* screen_hardware.c - screen 3: the `bitnet hw` report, refreshed every second. */
#include "tui.h"

#include <stdlib.h>

#include "bitnet/core.h"

static void *hw_create(tui *t)
{
    (void)t;
    return calloc(1, 1);
}

static void hw_destroy(void *st)
{
    free(st);
}

/* label in the title colour, then the value */
static void field(int y, int x, int w, const char *label, const char *value)
{
    ui_text(y, x, 10, crt_attr(CR_TITLE), label);
    ui_text_cut(y, x + 10, w - 10, 0, value);
}

static int draw_gpu(const bn_hw_gpu *g, int y, int x, int w)
{
    char a[32], b[32], line[256];
    snprintf(line, sizeof line, "%d: %s", g->index, g->name);
    ui_text(y, x, w, crt_attr(CR_TITLE), line);
    snprintf(line, sizeof line, "%s of %s", ui_bytes(g->mem_used, a, sizeof a),
             ui_bytes(g->mem_total, b, sizeof b));
    ui_text(y + 1, x + 2, 8, 0, "memory");
    ui_meter(y + 1, x + 10, w - 12, g->mem_total ? (double)g->mem_used / (double)g->mem_total : 0,
             crt_attr(CR_GRAPH2), line);
    int c = x + 2;
    if (g->util_gpu >= 0) c += ui_printf(y + 2, c, w, 0, "busy %d%%  ", g->util_gpu);
    if (g->util_mem >= 0) c += ui_printf(y + 2, c, w, 0, "memory busy %d%%  ", g->util_mem);
    if (g->temp_c >= 0) c += ui_printf(y + 2, c, w, 0, "%d C  ", g->temp_c);
    if (g->power_w >= 0) c += ui_printf(y + 2, c, w, 0, "%.0f W  ", g->power_w);
    if (g->uuid[0]) ui_text(y + 2, c, x + w - c, crt_attr(CR_DIM), g->uuid);
    return 3;
}

static void hw_draw(tui *t, void *st, int y, int x, int h, int w)
{
    (void)st;
    const mon_data *d = mon_lock(t->mon);
    char a[32], b[32], c[32], line[512];
    const int lw = w >= 100 ? w * 3 / 5 : w;
    ui_box(y, x, h, lw, "Hardware (refreshed every second)");
    if (!d->ready) {
        ui_text(y + 1, x + 2, lw - 4, crt_attr(CR_DIM), "detecting ...");
        mon_unlock(t->mon);
        return;
    }
    const bn_hw_info *hw = &d->hw;
    const bn_cpu_info *cpu = hw->cpu;
    const int iw = lw - 4, bottom = y + h - 1;
    int r = y + 1;
    snprintf(line, sizeof line, "%s (%s%s%s)", cpu->model[0] ? cpu->model : "unknown model",
             cpu->arch, cpu->vendor[0] ? ", " : "", cpu->vendor);
    field(r++, x + 2, iw, "CPU", line);
    snprintf(line, sizeof line, "%d cores, %d threads", cpu->n_physical, cpu->n_cores);
    if (r < bottom) field(r++, x + 2, iw, "", line);
    if (r < bottom)
        field(r++, x + 2, iw, "features", hw->cpu_features[0] ? hw->cpu_features : "none");
    snprintf(line, sizeof line, "L1d %s, L2 %s, L3 %s", ui_bytes(cpu->l1d_bytes, a, sizeof a),
             ui_bytes(cpu->l2_bytes, b, sizeof b), ui_bytes(cpu->l3_bytes, c, sizeof c));
    if (r < bottom) field(r++, x + 2, iw, "caches", line);
    if (r < bottom && d->cpu_sys >= 0) {
        snprintf(line, sizeof line, "%.0f%%", d->cpu_sys);
        ui_text(r, x + 2, 10, crt_attr(CR_TITLE), "busy");
        ui_meter(r++, x + 12, iw - 10, d->cpu_sys / 100, crt_attr(CR_GRAPH2), line);
    }
    if (r < bottom) {
        if (hw->mem_total) {
            const unsigned long long used = hw->mem_total - hw->mem_available;
            snprintf(line, sizeof line, "%s available of %s",
                     ui_bytes(hw->mem_available, a, sizeof a),
                     ui_bytes(hw->mem_total, b, sizeof b));
            ui_text(r, x + 2, 10, crt_attr(CR_TITLE), "Memory");
            ui_meter(r++, x + 12, iw - 10, (double)used / (double)hw->mem_total,
                     crt_attr(CR_GRAPH3), line);
        } else {
            field(r++, x + 2, iw, "Memory", "unknown (/proc/meminfo unreadable)");
        }
    }
    snprintf(line, sizeof line, "%s, kernel %s (%s)", hw->os_name, hw->kernel, hw->machine);
    if (r < bottom) field(r++, x + 2, iw, "OS", line);
    if (r < bottom) field(r++, x + 2, iw, "Kernels", hw->kernels);
    if (r < bottom) field(r++, x + 2, iw, "GPU", hw->gpu_status);
    if (r < bottom && hw->driver_version[0]) field(r++, x + 2, iw, "driver", hw->driver_version);
    for (int i = 0; i < hw->n_gpus && r + 3 <= bottom; i++)
        r += draw_gpu(&hw->gpus[i], r, x + 2, iw);
    if (lw < w) { /* graphs on the right */
        const int gx = x + lw, gw = w - lw;
        const int n = 2 + (hw->n_gpus > 2 ? 2 : hw->n_gpus);
        const int gh = h / n;
        bn_graph_opts o = bn_graph_opts_default();
        o.t_end = bn_time_now(), o.span = 60, o.y_min = 0, o.y_max = 100, o.unit = "%";
        ui_graph(y + 1, gx + 1, gh - 2, gw - 2, &d->s_cpu_sys, o, crt_attr(CR_GRAPH2));
        ui_box(y, gx, gh, gw, "CPU busy");
        ui_graph(y + gh + 1, gx + 1, gh - 2, gw - 2, &d->s_mem_used_pct, o, crt_attr(CR_GRAPH3));
        ui_box(y + gh, gx, gh, gw, "Memory used");
        for (int i = 0; i + 2 < n; i++) {
            snprintf(line, sizeof line, "GPU %d busy", i);
            ui_graph(y + (2 + i) * gh + 1, gx + 1, gh - 2, gw - 2, &d->s_gpu_util[i], o,
                     crt_attr(CR_GRAPH1));
            ui_box(y + (2 + i) * gh, gx, gh, gw, line);
        }
    }
    mon_unlock(t->mon);
}

static int hw_key(tui *t, void *st, int ch)
{
    (void)t, (void)st, (void)ch;
    return 0;
}

const tui_screen scr_hardware = {
        .name = "Hardware",
        .id = "hardware",
        .letter = 'h',
        .fkey = 4,
        .live = 1,
        .help = "\tthe figures of `bitnet hw`; memory, CPU and GPU figures refresh every second",
        .create = hw_create,
        .destroy = hw_destroy,
        .draw = hw_draw,
        .key = hw_key,
};
