/* screen_alerts.c - screen 9: the alert rules of the config evaluated now, and their recent
 * transitions. The figures come from `bitnet alerts eval --json` (the running monitor daemon's
 * last pass, or, with none running, the rules evaluated by the monitor's code in that child)
 * and `bitnet alerts history --json`, run as children (child.h), so the screen shows what the
 * scripted mode reports, with when and by whom each rule was evaluated. The dashboard's panel
 * reads the same. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/core.h"
#include "child.h"
#include "common/cli.h"
#include "common/json.h"

#define TRANSITIONS "20"

enum { MODE_LIST = 0, MODE_FORM = 1, MODE_SILENCE = 2 };
/* The form's fields: the rule's keys as the config holds them (bitnet-config(5)). */
static const char *const fields[] = {"name", "metric", "op", "threshold", "for", "severity"};
#define NF 6

typedef struct alerts {
    ui_child list, hist;
    cJSON *rules; /* {"evaluated_by", "evaluated_ms", "monitor", "alerts": [...]} */
    cJSON *trans; /* {"transitions": [...]} */
    char err[256];
    double started_at; /* the last refresh; 0: never */
    int taken;         /* both documents of the last refresh taken in */
    int stale;         /* a change was saved during that refresh: evaluate again after it */
    ui_list l;
    /* changing the rules: bitnet alerts add|edit|silence|ack, run as a child */
    ui_child action;
    int action_taken;
    char action_what[64];
    int mode;        /* 0 the list, MODE_FORM adding or editing a rule, MODE_SILENCE */
    char name[128];  /* the rule edited or silenced ("" when adding) */
    int field;       /* the form's field */
    ui_input f[NF];  /* the form's fields, see fields[] */
    ui_input period; /* the silence prompt */
} alerts;

static void *alerts_create(tui *t)
{
    (void)t;
    alerts *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    ui_child_init(&a->list);
    ui_child_init(&a->hist);
    ui_child_init(&a->action);
    a->taken = a->action_taken = 1;
    return a;
}

static void alerts_destroy(void *st)
{
    alerts *a = st;
    ui_child_release(&a->list);
    ui_child_release(&a->hist);
    ui_child_release(&a->action);
    cJSON_Delete(a->rules);
    cJSON_Delete(a->trans);
    free(a);
}

static void wake_tui(void *t)
{
    tui_wake(t);
}

void tui_alerts_refresh(tui *t, double max_age)
{
    alerts *a = t->state[SCR_ALERTS];
    const double now = bn_time_now();
    if (!a->taken || (a->started_at && now - a->started_at < max_age)) return;
    static const char *const list[] = {"alerts", "eval", "--json", NULL};
    static const char *const hist[] = {"alerts", "history", "-n", TRANSITIONS, "--json", NULL};
    a->started_at = now, a->taken = 0;
    ui_child_start(&a->list, list, 1, wake_tui, t);
    ui_child_start(&a->hist, hist, 1, wake_tui, t);
}

static void alerts_tick(tui *t, void *st)
{
    alerts *a = st;
    if (!a->action_taken && ui_child_state_get(&a->action) == UI_CHILD_DONE) {
        char msg[512];
        a->action_taken = 1;
        const int rc = ui_child_summary(&a->action, a->action_what, msg, sizeof msg);
        tui_status(t, rc ? CR_FAIL : CR_OK, "%s", msg);
        a->stale = !a->taken; /* the refresh under way read the rules before the change */
        a->started_at = 0;
        tui_alerts_refresh(t, 0);
    }
    if (a->taken || ui_child_state_get(&a->list) != UI_CHILD_DONE ||
        ui_child_state_get(&a->hist) != UI_CHILD_DONE)
        return;
    a->taken = 1;
    cJSON *r = ui_child_take(&a->list), *h = ui_child_take(&a->hist);
    ui_child_error(&a->list, a->err, sizeof a->err);
    if (!a->err[0]) ui_child_error(&a->hist, a->err, sizeof a->err);
    if (r) cJSON_Delete(a->rules), a->rules = r;
    if (h) cJSON_Delete(a->trans), a->trans = h;
    if (a->stale) {
        a->stale = 0, a->started_at = 0;
        tui_alerts_refresh(t, 0);
    }
}

/* ---- who evaluated the rules, and when ------------------------------------------------------ */

/* A span of seconds: "4 s", "12 min", "3 h", "2 d"; "-" when unknown. */
static void span(double s, char *buf, size_t size)
{
    if (isnan(s)) {
        snprintf(buf, size, "-");
        return;
    }
    s = s < 0 ? 0 : s;
    if (s < 120)
        snprintf(buf, size, "%.0f s", s);
    else if (s < 7200)
        snprintf(buf, size, "%.0f min", s / 60);
    else if (s < 172800)
        snprintf(buf, size, "%.0f h", s / 3600);
    else
        snprintf(buf, size, "%.0f d", s / 86400);
}

/* How long ago ms (since the epoch) was. */
static void ago(double ms, char *buf, size_t size)
{
    span(((double)bn_wall_ms() - ms) / 1e3, buf, size);
}

/* Who evaluated the rules: the monitor daemon, or this UI (through its child). */
static const char *evaluator(const cJSON *doc)
{
    return !strcmp(cm_json_str(doc, "evaluated_by", ""), "monitor") ? "monitor" : "tui";
}

/* The daemon's sinks: "webhook ok, datadog 12 waiting (last delivery 5 min ago)". */
static void sinks_text(const cJSON *mon, char *buf, size_t size)
{
    const cJSON *s;
    size_t n = 0;
    buf[0] = '\0';
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(mon, "sinks"))
    {
        char last[32] = "never";
        const double waiting = cm_json_num(s, "spooled", 0), ok = cm_json_num(s, "last_ok_ms", NAN);
        if (!isnan(ok)) ago(ok, last, sizeof last);
        if (waiting > 0)
            snprintf(buf + n, size - n, "%s%s %.0f waiting (last delivery %s%s)", n ? ", " : "",
                     cm_json_str(s, "name", ""), waiting, last, isnan(ok) ? "" : " ago");
        else
            snprintf(buf + n, size - n, "%s%s ok", n ? ", " : "", cm_json_str(s, "name", ""));
        n = strlen(buf);
    }
    if (!n) snprintf(buf, size, "none");
}

/* One line: who evaluated the rules and when, whether a monitor daemon runs, its sinks. */
static int eval_line(const cJSON *doc, char *buf, size_t size)
{
    char age[32], seen[32], sinks[512];
    const cJSON *mon = cJSON_GetObjectItemCaseSensitive(doc, "monitor");
    ago(cm_json_num(doc, "evaluated_ms", NAN), age, sizeof age);
    if (!strcmp(evaluator(doc), "monitor")) {
        sinks_text(mon, sinks, sizeof sinks);
        snprintf(buf, size,
                 "evaluated by the monitor daemon (pid %.0f, every %g s) %s ago; sinks: %s",
                 cm_json_num(mon, "pid", 0), cm_json_num(mon, "interval_s", 0), age, sinks);
        return crt_attr(CR_OK);
    }
    ago(cm_json_num(mon, "at_ms", NAN), seen, sizeof seen);
    snprintf(buf, size,
             "evaluated by this TUI %s ago; no monitor daemon running%s%s%s (nothing is notified: "
             "bitnet monitor)",
             age, cJSON_IsObject(mon) ? " (its last pass " : "", cJSON_IsObject(mon) ? seen : "",
             cJSON_IsObject(mon) ? " ago)" : "");
    return crt_attr(CR_WARN);
}

/* ---- shared with the dashboard ------------------------------------------------------------------
 */

static int state_attr(const char *s)
{
    return !strcmp(s, "firing")     ? crt_attr(CR_FAIL)
           : !strcmp(s, "pending")  ? crt_attr(CR_WARN)
           : !strcmp(s, "resolved") ? crt_attr(CR_OK)
                                    : crt_attr(CR_DIM);
}

static void condition(const cJSON *r, char *buf, size_t size)
{
    char th[32];
    snprintf(th, sizeof th, "%g", cm_json_num(r, "threshold", NAN));
    const double f = cm_json_num(r, "for_seconds", NAN);
    if (f > 0)
        snprintf(buf, size, "%s %s %s for %gs", cm_json_str(r, "metric", ""),
                 cm_json_str(r, "op", ""), th, f);
    else
        snprintf(buf, size, "%s %s %s", cm_json_str(r, "metric", ""), cm_json_str(r, "op", ""), th);
}

/* One line a transition: "13:22:13 memory inactive > firing (2.5e10)". */
static int draw_transition(int y, int x, int w, const cJSON *tr)
{
    char tm[32], val[32] = "no data";
    ui_time((long long)cm_json_num(tr, "at_ms", NAN), tm, sizeof tm);
    if (!isnan(cm_json_num(tr, "value", NAN)))
        bn_graph_fmt_num(cm_json_num(tr, "value", NAN), val, sizeof val);
    int c = x;
    if (w < 70) { /* the dashboard's panel: time, rule, new state */
        c += ui_printf(y, c, w, crt_attr(CR_DIM), "%s ", tm);
        c += ui_printf(y, c, x + w - c, 0, "%s > ", cm_json_str(tr, "rule", ""));
        return ui_text(y, c, x + w - c, state_attr(cm_json_str(tr, "to", "")),
                       cm_json_str(tr, "to", ""));
    }
    c += ui_printf(y, c, w, crt_attr(CR_DIM), "%-16s ", tm);
    c += ui_printf(y, c, x + w - c, 0, "%-16s %s > ", cm_json_str(tr, "rule", ""),
                   cm_json_str(tr, "from", ""));
    c += ui_text(y, c, x + w - c, state_attr(cm_json_str(tr, "to", "")), cm_json_str(tr, "to", ""));
    return ui_printf(y, c, x + w - c, crt_attr(CR_DIM), "  value %s", val);
}

void tui_alerts_panel(tui *t, int y, int x, int h, int w)
{
    alerts *a = t->state[SCR_ALERTS];
    tui_alerts_refresh(t, 15);
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(a->rules, "alerts");
    const cJSON *trans = cJSON_GetObjectItemCaseSensitive(a->trans, "transitions");
    int r = y;
    if (a->err[0] && !rules) {
        ui_text(r, x, w, crt_attr(CR_WARN), a->err);
        return;
    }
    if (!a->rules) {
        ui_text(r, x, w, crt_attr(CR_DIM), "reading the alert rules ...");
        return;
    }
    const int n = cJSON_GetArraySize(rules);
    if (n == 0) {
        ui_text(r++, x, w, crt_attr(CR_DIM), "no alert rules (the config's alerts key)");
        return;
    }
    int firing = 0, pending = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        firing += !strcmp(cm_json_str(it, "state", ""), "firing");
        pending += !strcmp(cm_json_str(it, "state", ""), "pending");
    }
    char age[32];
    ago(cm_json_num(a->rules, "evaluated_ms", NAN), age, sizeof age);
    ui_printf(r++, x, w,
              firing    ? crt_attr(CR_FAIL)
              : pending ? crt_attr(CR_WARN)
                        : crt_attr(CR_OK),
              "%d rule%s: %d firing, %d pending (%s %s ago)", n, n == 1 ? "" : "s", firing, pending,
              evaluator(a->rules), age);
    cJSON_ArrayForEach(it, rules)
    {
        if (r >= y + h) return;
        const char *s = cm_json_str(it, "state", "");
        if (strcmp(s, "firing") && strcmp(s, "pending")) continue;
        int c = x + ui_text(r, x, 9, state_attr(s), s);
        ui_printf(r++, c + 1, w - (c + 1 - x), 0, "%s (%s)", cm_json_str(it, "rule", ""),
                  cm_json_str(it, "severity", ""));
    }
    cJSON_ArrayForEach(it, trans)
    {
        if (r >= y + h) return;
        draw_transition(r++, x, w, it);
    }
}

/* ---- changing the rules -----------------------------------------------------------------------
 */

static void run_action(tui *t, alerts *a, const char *what, const char *const *args)
{
    if (!a->action_taken) {
        tui_status(t, CR_WARN, "busy: %s is still running", a->action_what);
        return;
    }
    snprintf(a->action_what, sizeof a->action_what, "%s", what);
    a->action_taken = 0;
    ui_child_start(&a->action, args, 0, wake_tui, t);
}

/* The selected rule of the last evaluation, or NULL. */
static const cJSON *selected(const alerts *a)
{
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(a->rules, "alerts");
    return a->l.sel >= 0 ? cJSON_GetArrayItem(rules, a->l.sel) : NULL;
}

/* Opens the form: empty (r NULL: a new rule) or with rule r's fields. */
static void form_open(alerts *a, const cJSON *r)
{
    char th[32] = "", fr[32] = "";
    if (r) {
        snprintf(th, sizeof th, "%g", cm_json_num(r, "threshold", 0));
        if (cm_json_num(r, "for_seconds", 0) > 0)
            snprintf(fr, sizeof fr, "%gs", cm_json_num(r, "for_seconds", 0));
    }
    const char *v[NF] = {r ? cm_json_str(r, "rule", "") : "",
                         r ? cm_json_str(r, "metric", "") : "",
                         r ? cm_json_str(r, "op", ">") : ">",
                         th,
                         fr,
                         r ? cm_json_str(r, "severity", "warning") : "warning"};
    for (int i = 0; i < NF; i++) ui_input_set(&a->f[i], v[i]);
    snprintf(a->name, sizeof a->name, "%s", r ? cm_json_str(r, "rule", "") : "");
    a->mode = MODE_FORM, a->field = 0;
}

/* The form as a rule (JSON text, cJSON_free): the threshold a number when it reads as one
 * (else the text, which the check refuses with its own message), empty fields left out. */
static char *form_rule(const alerts *a)
{
    cJSON *r = cJSON_CreateObject();
    for (int i = 0; r && i < NF; i++) {
        const char *v = a->f[i].buf;
        char *end;
        const double d = strtod(v, &end);
        if (!v[0]) continue;
        if (i == 3 && end != v && !*end)
            cJSON_AddNumberToObject(r, fields[i], d);
        else
            cJSON_AddStringToObject(r, fields[i], v);
    }
    char *text = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return text;
}

static void form_save(tui *t, alerts *a)
{
    char *rule = form_rule(a);
    if (!rule) return;
    if (a->name[0]) {
        const char *args[] = {"alerts", "edit", a->name, rule, NULL};
        run_action(t, a, "alerts edit", args);
    } else {
        const char *args[] = {"alerts", "add", rule, NULL};
        run_action(t, a, "alerts add", args);
    }
    cJSON_free(rule);
    a->mode = MODE_LIST;
}

static int form_key(tui *t, alerts *a, int ch)
{
    if (ch == 27) {
        a->mode = MODE_LIST;
    } else if (ch == '\t' || ch == KEY_DOWN) {
        a->field = (a->field + 1) % NF;
    } else if (ch == KEY_UP || ch == KEY_BTAB) {
        a->field = (a->field + NF - 1) % NF;
    } else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        form_save(t, a);
    } else {
        return ui_input_key(&a->f[a->field], ch);
    }
    return 1;
}

static int silence_key(tui *t, alerts *a, int ch)
{
    if (ch == 27) {
        a->mode = MODE_LIST;
    } else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        const char *args[] = {"alerts", "silence", a->name, a->period.buf, NULL};
        run_action(t, a, "alerts silence", args);
        a->mode = MODE_LIST;
    } else {
        return ui_input_key(&a->period, ch);
    }
    return 1;
}

#define FORM_H (NF + 3)

static void draw_form(alerts *a, int y, int x, int w)
{
    char title[256];
    snprintf(title, sizeof title, "%s%s (checked as bitnet validate checks it, then saved)",
             a->name[0] ? "Edit the rule " : "Add a rule", a->name);
    ui_box(y, x, FORM_H, w, title);
    static const char *const hint[NF] = {
            "", "a metric the monitor exports, or a selector",     "> >= < <= == !=",
            "", "how long it must hold: 30s, 5m (empty: at once)", "info, warning or critical"};
    for (int i = 0; i < NF; i++) {
        ui_text(y + 1 + i, x + 2, 11, crt_attr(CR_TITLE), fields[i]);
        ui_input_draw(&a->f[i], y + 1 + i, x + 13, w / 2 - 13, a->field == i);
        ui_text(y + 1 + i, x + w / 2 + 1, w - w / 2 - 3, crt_attr(CR_DIM), hint[i]);
    }
    ui_text(y + NF + 1, x + 2, w - 4, crt_attr(CR_DIM),
            "Tab/Up/Down: field; Enter saves the rule to the config; Esc: cancel");
}

static void draw_silence(alerts *a, int y, int x, int w)
{
    char title[256];
    snprintf(title, sizeof title, "Silence %s: no notification for (0 lifts it)", a->name);
    ui_box(y, x, 3, w, title);
    ui_input_draw(&a->period, y + 1, x + 2, 20, 1);
    ui_text(y + 1, x + 24, w - 26, crt_attr(CR_DIM),
            "30m, 2h, 1d; Enter saves it to the config; Esc: cancel");
}

/* What an operator set on rule r, put before its condition: "silenced 2 h more; acked; ". */
static void marks(const cJSON *r, char *buf, size_t size)
{
    int64_t ms;
    char left[32];
    const char *until = cm_json_str(r, "silenced_until", "");
    buf[0] = '\0';
    if (until[0] && cli_parse_utc(until, &ms) == 0 && (double)ms > (double)bn_wall_ms()) {
        span(((double)ms - (double)bn_wall_ms()) / 1e3, left, sizeof left);
        snprintf(buf, size, "silenced %s more; ", left);
    }
    const size_t n = strlen(buf);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "acknowledged")))
        snprintf(buf + n, size - n, "acked; ");
}

/* ---- the screen
 * ---------------------------------------------------------------------------------- */

static void alerts_draw(tui *t, void *st, int y, int x, int h, int w)
{
    alerts *a = st;
    tui_alerts_refresh(t, 5);
    if (a->mode != MODE_LIST) { /* the form or the prompt above the rules */
        const int fh = a->mode == MODE_FORM ? FORM_H : 3;
        if (a->mode == MODE_FORM)
            draw_form(a, y, x, w);
        else
            draw_silence(a, y, x, w);
        y += fh, h -= fh;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(a->rules, "alerts");
    const cJSON *trans = cJSON_GetObjectItemCaseSensitive(a->trans, "transitions");
    const int n = cJSON_GetArraySize(rules), nt = cJSON_GetArraySize(trans);
    int top = n + 5 < h / 2 ? n + 5 : h / 2;
    if (top < 5) top = 5;
    char title[BN_CONFIG_PATH_MAX + 64];
    snprintf(title, sizeof title, "Alert rules of %s",
             t->cfg ? bn_config_file(t->cfg) : "the config");
    ui_box(y, x, top, w, title);
    int r = y + 1;
    if (a->err[0]) ui_text(r++, x + 2, w - 4, crt_attr(CR_WARN), a->err);
    if (a->rules) {
        char line[1024];
        const int attr = eval_line(a->rules, line, sizeof line);
        ui_text(r++, x + 2, w - 4, attr, line);
    }
    if (!a->rules) {
        ui_text(r, x + 2, w - 4, crt_attr(CR_DIM), "reading ...");
    } else if (n == 0) {
        ui_text(r, x + 2, w - 4, crt_attr(CR_DIM),
                "no rules: the alerts key of the config holds them (bitnet-config(5))");
    } else {
        ui_printf(r++, x + 2, w - 4, crt_attr(CR_DIM), "%-9s %-16s %-16s %-13s %-8s %s", "state",
                  "rule", "since", "evaluated", "severity", "condition");
        ui_list_layout(&a->l, n, y + top - 1 - r);
        for (int i = 0; i < a->l.h && a->l.top + i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(rules, a->l.top + i);
            char since[32] = "-", cond[600], age[32], when[48], mark[96];
            ago(cm_json_num(it, "evaluated_ms", NAN), age, sizeof age);
            snprintf(when, sizeof when, "%s %s", evaluator(a->rules), age);
            if (!isnan(cm_json_num(it, "since_ms", NAN)))
                ui_time((long long)cm_json_num(it, "since_ms", NAN), since, sizeof since);
            condition(it, cond, sizeof cond);
            marks(it, mark, sizeof mark);
            const int row = r + i, sel = a->l.top + i == a->l.sel;
            const int base = sel ? crt_attr(CR_SELECT) : 0;
            ui_clear(row, x + 1, w - 2, base);
            int c = x + 2;
            c += ui_printf(row, c, 10, sel ? base : state_attr(cm_json_str(it, "state", "")),
                           "%-9s ", cm_json_str(it, "state", ""));
            ui_printf(row, c, x + w - 2 - c, base, "%-16.16s %-16s %-13s %-8s %s%s",
                      cm_json_str(it, "rule", ""), since, when, cm_json_str(it, "severity", ""),
                      mark, cond);
        }
        ui_list_hits(&a->l, r, x + 1, w - 2);
    }
    ui_box(y + top, x, h - top, w,
           "Recent transitions (recorded by bitnet monitor and by this TUI)");
    r = y + top + 1;
    if (nt == 0) ui_text(r, x + 2, w - 4, crt_attr(CR_DIM), "none recorded");
    for (int i = 0; i < nt && r < y + h - 1; i++)
        draw_transition(r++, x + 2, w - 4, cJSON_GetArrayItem(trans, i));
}

static int alerts_key(tui *t, void *st, int ch)
{
    alerts *a = st;
    if (a->mode == MODE_FORM) return form_key(t, a, ch);
    if (a->mode == MODE_SILENCE) return silence_key(t, a, ch);
    const cJSON *r = selected(a);
    switch (ch) {
    case 'r':
        a->started_at = 0;
        tui_alerts_refresh(t, 0);
        return 1;
    case 'n':
        form_open(a, NULL);
        return 1;
    case 'e':
        if (r) form_open(a, r);
        return 1;
    case 'S':
        if (!r) return 1;
        snprintf(a->name, sizeof a->name, "%s", cm_json_str(r, "rule", ""));
        ui_input_set(&a->period, "1h");
        a->mode = MODE_SILENCE;
        return 1;
    case 'k': {
        if (!r) return 1;
        const char *args[] = {"alerts", "ack", cm_json_str(r, "rule", ""), NULL};
        run_action(t, a, "alerts ack", args);
        return 1;
    }
    default:
        return ui_list_key(&a->l, ch);
    }
}

static int alerts_editing(void *st)
{
    return ((alerts *)st)->mode != MODE_LIST;
}

static void alerts_enter(tui *t, void *st)
{
    (void)st;
    tui_alerts_refresh(t, 0);
}

const tui_screen scr_alerts = {
        .name = "Alerts",
        .id = "alerts",
        .letter = 'a',
        .fkey = 11,
        .live = 1,
        .help = "Up Down\tchoose a rule\n"
                "n\tadd a rule (a form: name, metric, op, threshold, for, severity)\n"
                "e\tedit the rule\n"
                "S\tsilence its notifications for a period (0 lifts the silence)\n"
                "k\tacknowledge the firing rule\n"
                "\teach change is checked as bitnet validate checks it and written to the\n"
                "\tconfig atomically (bitnet alerts add|edit|silence|ack); a running monitor\n"
                "\tdaemon reads the rules again\n"
                "r\tevaluate the rules and read the transitions again (every 5 s anyway)\n"
                "\tthe rules are evaluated with the monitor's code (bitnet alerts eval): the\n"
                "\trunning monitor daemon's last pass, else by this TUI while the Dashboard or\n"
                "\tAlerts screen shows; each rule says when and by whom (tui or monitor), and\n"
                "\tthe top line whether a daemon runs and how its sinks deliver",
        .create = alerts_create,
        .destroy = alerts_destroy,
        .enter = alerts_enter,
        .draw = alerts_draw,
        .key = alerts_key,
        .editing = alerts_editing,
        .tick = alerts_tick,
};
