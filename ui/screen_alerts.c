/* screen_alerts.c - screen 9: alert rules and their states. Evaluating rules arrives with
 * the monitoring and alerting feature; until then this screen says so and lists the rules
 * the config holds, as written there. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static void *alerts_create(tui *t)
{
    (void)t;
    return calloc(1, 1);
}

static void alerts_destroy(void *st)
{
    free(st);
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static void alerts_draw(tui *t, void *st, int y, int x, int h, int w)
{
    (void)st;
    ui_box(y, x, h, w, "Alerts");
    int r = y + 1;
    static const char msg[] = "alerts: not available yet: rules are evaluated and their states "
                              "shown once the monitoring and alerting feature lands";
    r += ui_text_block(r, x + 2, 3, w - 4, crt_attr(CR_WARN), msg, sizeof msg - 1, 0) + 1;
    if (!t->cfg) {
        ui_printf(r, x + 2, w - 4, crt_attr(CR_FAIL), "config: %s", t->cfg_err);
        return;
    }
    const cJSON *rules = bn_config_get_json(t->cfg, "alerts");
    const int n = cJSON_GetArraySize(rules);
    ui_printf(r++, x + 2, w - 4, crt_attr(CR_TITLE), "Rules in %s: %d", bn_config_file(t->cfg), n);
    if (n == 0) {
        ui_text(r, x + 2, w - 4, crt_attr(CR_DIM),
                "none (the alerts key of bitnet-config(5) holds them)");
        return;
    }
    ui_printf(r++, x + 2, w - 4, crt_attr(CR_DIM), "%-20s %-22s %-3s %10s %-8s %-9s %s", "name",
              "metric", "op", "threshold", "for", "severity", "state");
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        if (r >= y + h - 1) break;
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(it, "threshold");
        char thr[32] = "-";
        if (cJSON_IsNumber(th)) snprintf(thr, sizeof thr, "%g", th->valuedouble);
        ui_printf(r++, x + 2, w - 4, 0, "%-20s %-22s %-3s %10s %-8s %-9s %s", str_of(it, "name"),
                  str_of(it, "metric"), str_of(it, "op"), thr, str_of(it, "for"),
                  str_of(it, "severity"), "not evaluated");
    }
}

static int alerts_key(tui *t, void *st, int ch)
{
    (void)t, (void)st, (void)ch;
    return 0;
}

const tui_screen scr_alerts = {
        .name = "Alerts",
        .id = "alerts",
        .letter = 'a',
        .fkey = 11,
        .help = "\tthe alert rules of the config; their evaluation is not available yet",
        .create = alerts_create,
        .destroy = alerts_destroy,
        .draw = alerts_draw,
        .key = alerts_key,
};
