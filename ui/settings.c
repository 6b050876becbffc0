/* settings.c - the settings an operator changes while the TUI runs (graph style and
 * window, refresh interval, pause, benchmark sizes, sampling) and their keys in the config
 * file (tui.*, and the sampling keys): read at start, saved at once when changed. */
#include "tui.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/core.h"

static const double windows[] = {60, 300, 900, 3600};     /* w / W */
static const double refreshes[] = {0.5, 1, 2, 5, 10, 30}; /* ] / [ */
#define N_WINDOWS   (int)(sizeof windows / sizeof windows[0])
#define N_REFRESHES (int)(sizeof refreshes / sizeof refreshes[0])

int tui_setting_save(tui *t, const char *key, const char *text)
{
    char err[BN_CONFIG_ERR_MAX], path[BN_CONFIG_PATH_MAX];
    const bn_config_key *k = bn_config_find_key(key);
    cJSON *v = NULL;
    int changed = 0;
    if (!k) {
        snprintf(err, sizeof err, "%s: not a config key", key);
    } else if (bn_config_value_parse(k, text, &v, err, sizeof err) == 0) {
        if (t->cfg)
            snprintf(path, sizeof path, "%s", bn_config_file(t->cfg));
        else if (bn_config_path(path, sizeof path) != 0)
            snprintf(err, sizeof err, "no config file path (HOME is not set)"), path[0] = '\0';
        const int rc = path[0] ? bn_config_write_key(path, key, v, &changed, err, sizeof err) : -1;
        cJSON_Delete(v);
        if (rc == 0) {
            tui_reload_config(t);
            return 0;
        }
    }
    tui_status(t, CR_FAIL, "not saved: %s", err);
    return -1;
}

static int save_seconds(tui *t, const char *key, double s)
{
    char text[32];
    snprintf(text, sizeof text, "%gs", s);
    return tui_setting_save(t, key, text);
}

int tui_setting_int(const tui *t, const char *key, int def)
{
    return t->cfg && bn_config_find_key(key) ? (int)bn_config_get_int(t->cfg, key) : def;
}

int tui_setting_save_int(tui *t, const char *key, long long v)
{
    if (t->cfg && bn_config_get_int(t->cfg, key) == v) return 0;
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    return tui_setting_save(t, key, text);
}

/* Tells the graphs and the sampler the window, the refresh interval and the pause. */
static void apply_view(tui *t)
{
    ui_graph_view_set(t->window, 2.5 * t->refresh, t->paused ? t->paused_at : 0);
    mon_set_period(t->mon, t->refresh);
    mon_pause(t->mon, t->paused);
}

void tui_settings_start(tui *t)
{
    int g = t->opts.graph_style;
    const char *name = t->cfg ? bn_config_get_str(t->cfg, "tui.graph") : NULL;
    for (int i = 0; g < 0 && name && i < 3; i++)
        if (!strcmp(name, bn_graph_style_name((bn_graph_style)i))) g = i;
    ui_graph_style_set(g >= 0 && g <= 2 ? (bn_graph_style)g : BN_GRAPH_BRAILLE);
    const char *theme = t->cfg ? bn_config_get_str(t->cfg, "tui.theme") : NULL;
    for (int i = 0; theme && i < 3; i++)
        if (!strcmp(theme, crt_theme_name((crt_theme)i))) crt_theme_set((crt_theme)i);
    t->window = t->cfg ? bn_config_get_duration(t->cfg, "tui.graph_window") : 60;
    t->refresh = t->cfg ? bn_config_get_duration(t->cfg, "tui.refresh") : 1;
    if (!(t->window > 0)) t->window = 60;
    if (!(t->refresh > 0)) t->refresh = 1;
    apply_view(t);
}

/* The first step above v (dir 1) or the last below it (dir -1), round the ends. */
static double step_from(const double *steps, int n, double v, int dir)
{
    if (dir > 0) {
        for (int i = 0; i < n; i++)
            if (steps[i] > v + 1e-9) return steps[i];
        return steps[0];
    }
    for (int i = n - 1; i >= 0; i--)
        if (steps[i] < v - 1e-9) return steps[i];
    return steps[n - 1];
}

static void fmt_seconds(double s, char *buf, size_t size)
{
    if (s >= 3600 && fmod(s, 3600) == 0)
        snprintf(buf, size, "%g h", s / 3600);
    else if (s >= 60 && fmod(s, 60) == 0)
        snprintf(buf, size, "%g min", s / 60);
    else
        snprintf(buf, size, "%g s", s);
}

static void key_graph_style(tui *t)
{
    const bn_graph_style g = (bn_graph_style)((ui_graph_style() + 1) % 3);
    ui_graph_style_set(g);
    if (tui_setting_save(t, "tui.graph", bn_graph_style_name(g)) == 0)
        tui_status(t, CR_NORMAL, "graphs: %s (saved)%s", bn_graph_style_name(ui_graph_style()),
                   crt_unicode() ? "" : " (the terminal is not UTF-8)");
}

static void key_theme(tui *t)
{
    const crt_theme th = (crt_theme)((crt_theme_get() + 1) % 3);
    crt_theme_set(th);
    if (tui_setting_save(t, "tui.theme", crt_theme_name(th)) == 0)
        tui_status(t, CR_NORMAL, "theme: %s (saved)%s", crt_theme_name(th),
                   t->opts.no_color ? "; colours are off (--no-color or NO_COLOR)" : "");
}

static void key_window(tui *t, int dir)
{
    char a[32];
    t->window = step_from(windows, N_WINDOWS, t->window, dir);
    apply_view(t);
    fmt_seconds(t->window, a, sizeof a);
    if (save_seconds(t, "tui.graph_window", t->window) == 0)
        tui_status(t, CR_NORMAL, "graphs show the last %s (saved)", a);
}

static void key_refresh(tui *t, int dir)
{
    char a[32];
    t->refresh = step_from(refreshes, N_REFRESHES, t->refresh, dir);
    if (t->window < 60 * t->refresh) t->window = 60 * t->refresh; /* 60 samples at least */
    apply_view(t);
    fmt_seconds(t->refresh, a, sizeof a);
    if (save_seconds(t, "tui.refresh", t->refresh) == 0)
        tui_status(t, CR_NORMAL, "refresh every %s (saved)", a);
}

static void key_pause(tui *t)
{
    t->paused = !t->paused;
    t->paused_at = bn_time_now();
    apply_view(t);
    if (t->paused)
        tui_status(t, CR_WARN, "paused: meters and graphs stand still (z resumes)");
    else
        tui_status(t, CR_NORMAL, "resumed");
}

int tui_settings_key(tui *t, int ch)
{
    switch (ch) {
    case 'g':
        key_graph_style(t);
        return 1;
    case 'w':
    case 'W':
        key_window(t, ch == 'w' ? 1 : -1);
        return 1;
    case ']':
    case '[':
        key_refresh(t, ch == ']' ? 1 : -1);
        return 1;
    case 'z':
    case 'Z':
        key_pause(t);
        return 1;
    case 'O':
        key_theme(t);
        return 1;
    default:
        return 0;
    }
}

/* One sampling key when the value differs from the config's. */
static void save_number(tui *t, const char *key, double v, int *failed)
{
    if (*failed || (t->cfg && fabs(bn_config_get_double(t->cfg, key) - v) < 1e-6)) return;
    char text[32];
    snprintf(text, sizeof text, "%.4g", v);
    *failed = tui_setting_save(t, key, text) != 0;
}

void tui_sampling_save(tui *t, const eng_gen_params *gp)
{
    const bn_sampler_params *s = &gp->sp;
    int failed = 0;
    save_number(t, "temp", s->temperature, &failed);
    save_number(t, "top_p", s->top_p, &failed);
    save_number(t, "min_p", s->min_p, &failed);
    save_number(t, "repeat_penalty", s->repeat_penalty, &failed);
    if (!failed) failed = tui_setting_save_int(t, "top_k", s->top_k) != 0;
    if (!failed) tui_setting_save_int(t, "seed", gp->seed_clock ? -1 : (long long)s->seed);
}
