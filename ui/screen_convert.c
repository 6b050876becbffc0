/* screen_convert.c - screen 7: the conversion queue of `bitnet convert --queue` and `bitnet
 * jobs`: every job with its progress, phase and ETA, the selected one's details; add a job,
 * cancel, retry. The screen runs those commands as children (child.h), so it shows and does
 * exactly what the scripted mode does. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "child.h"
#include "jobs_view.h"
#include "common/json.h"

#define REFRESH_S 2.0

typedef struct conv {
    ui_child list;   /* jobs list --json */
    ui_child action; /* convert --queue, jobs cancel, jobs retry */
    cJSON *jobs;     /* {"jobs": [...]}, as shown (filtered and sorted by view) */
    jobs_view view;
    char err[256];
    double listed_at;
    int list_taken, action_taken;
    char action_what[64];
    ui_list l;
    /* the form that adds a job: fields 0 source, 1 output, 2 replace (--force) */
    int adding, field, force;
    ui_input src, out;
} conv;

static void *conv_create(tui *t)
{
    (void)t;
    conv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    ui_child_init(&c->list);
    ui_child_init(&c->action);
    jobs_view_init(&c->view);
    c->list_taken = c->action_taken = 1;
    return c;
}

static void conv_destroy(void *st)
{
    conv *c = st;
    ui_child_release(&c->list);
    ui_child_release(&c->action);
    cJSON_Delete(c->jobs);
    jobs_view_release(&c->view);
    free(c);
}

static void wake_tui(void *t)
{
    tui_wake(t);
}

static void list_jobs(tui *t, conv *c, double max_age)
{
    const double now = bn_time_now();
    if (!c->list_taken || (c->listed_at && now - c->listed_at < max_age)) return;
    static const char *const args[] = {"jobs", "list", "--limit", "200", "--json", NULL};
    c->listed_at = now, c->list_taken = 0;
    ui_child_start(&c->list, args, 1, wake_tui, t);
}

static void conv_tick(tui *t, void *st)
{
    conv *c = st;
    if (!c->list_taken && ui_child_state_get(&c->list) == UI_CHILD_DONE) {
        c->list_taken = 1;
        cJSON *d = ui_child_take(&c->list);
        ui_child_error(&c->list, c->err, sizeof c->err);
        if (d) cJSON_Delete(c->jobs), c->jobs = jobs_view_take(&c->view, d);
    }
    if (!c->action_taken && ui_child_state_get(&c->action) == UI_CHILD_DONE) {
        c->action_taken = 1;
        char msg[512];
        const int rc = ui_child_summary(&c->action, c->action_what, msg, sizeof msg);
        tui_status(t, rc ? CR_FAIL : CR_OK, "%s", msg);
        c->listed_at = 0; /* list again now */
        list_jobs(t, c, 0);
    }
}

static void run_action(tui *t, conv *c, const char *what, const char *const *args)
{
    if (!c->action_taken) {
        tui_status(t, CR_WARN, "busy: %s is still running", c->action_what);
        return;
    }
    snprintf(c->action_what, sizeof c->action_what, "%s", what);
    c->action_taken = 0;
    ui_child_start(&c->action, args, 0, wake_tui, t);
}

/* ---- drawing
 * ------------------------------------------------------------------------------------- */

/* A job's colour: a done one's by its validation verdict (a poor top-1 is no green done). */
static int status_attr(const cJSON *j)
{
    const char *s = cm_json_str(j, "status", ""), *v = cm_json_str(j, "verdict", "");
    if (!strcmp(s, "done"))
        return !strcmp(v, "ok")     ? crt_attr(CR_OK)
               : !strcmp(v, "poor") ? crt_attr(CR_FAIL)
                                    : crt_attr(CR_WARN);
    return !strcmp(s, "failed")    ? crt_attr(CR_FAIL)
           : !strcmp(s, "running") ? crt_attr(CR_GRAPH1)
                                   : crt_attr(CR_WARN);
}

/* What the phase column says: the phase of a running job; the verdict of a done one
 * ("ok top-1 100%", "poor top-1 48%", "unvalidated"); nothing else for the others. */
static void phase_text(const cJSON *j, char *buf, size_t size)
{
    const char *s = cm_json_str(j, "status", "");
    const double top1 =
            cm_json_num(cJSON_GetObjectItemCaseSensitive(j, "validation"), "top1_agreement", NAN);
    buf[0] = '\0';
    if (!strcmp(s, "running"))
        snprintf(buf, size, "%s", cm_json_str(j, "phase", ""));
    else if (!strcmp(s, "done") && !isnan(top1))
        snprintf(buf, size, "%s top-1 %.0f%%", cm_json_str(j, "verdict", ""), 100 * top1);
    else if (!strcmp(s, "done"))
        snprintf(buf, size, "%s", cm_json_str(j, "verdict", ""));
}

/* A cell of a job's row (the columns of jobs_view.h); the progress meter is drawn here. */
static int job_cell(const void *row, int col, int y, int x, int w, char *buf, size_t size,
                    int *attr)
{
    const cJSON *j = row;
    const double pct = cm_json_num(j, "percent", NAN), eta = cm_json_num(j, "eta_s", NAN);
    char lab[32];
    switch (col) {
    case JC_ID:
        snprintf(buf, size, "%d", (int)cm_json_num(j, "id", NAN));
        return 0;
    case JC_STATUS:
        snprintf(buf, size, "%s", cm_json_str(j, "status", ""));
        *attr = status_attr(j);
        return 0;
    case JC_PROGRESS:
        snprintf(lab, sizeof lab, "%5.1f%%", isnan(pct) ? 0.0 : pct);
        ui_meter(y, x, w, isnan(pct) ? 0 : pct / 100, crt_attr(CR_GRAPH1), lab);
        return 1;
    case JC_PHASE:
        phase_text(j, buf, size);
        return 0;
    case JC_ETA:
        if (!isnan(eta) && !strcmp(cm_json_str(j, "status", ""), "running"))
            snprintf(buf, size, "eta %.0fs", eta);
        return 0;
    default:
        snprintf(buf, size, "%s -> %s", tui_base(cm_json_str(j, "src", "")),
                 cm_json_str(j, "out", ""));
        return 0;
    }
}

static void draw_job(conv *c, const cJSON *j, int sel, int y, int x, int w)
{
    const int base = sel ? crt_attr(CR_SELECT) : 0;
    ui_clear(y, x, w, base);
    ui_table_row(&c->view.tb, y, x + 1, w - 1, base, sel, job_cell, j);
}

static void draw_details(const cJSON *j, int y, int x, int h, int w)
{
    char title[64];
    snprintf(title, sizeof title, "Job %d", (int)cm_json_num(j, "id", NAN));
    ui_box(y, x, h, w, title);
    int r = y + 1;
    char a[32], b[32], tm[32];
    ui_printf(r++, x + 2, w - 4, 0, "source  %s", cm_json_str(j, "src", ""));
    if (r < y + h - 1) ui_printf(r++, x + 2, w - 4, 0, "output  %s", cm_json_str(j, "out", ""));
    if (r < y + h - 1 && !isnan(cm_json_num(j, "bytes_total", NAN)) &&
        cm_json_num(j, "bytes_total", NAN) > 0)
        ui_printf(r++, x + 2, w - 4, 0, "bytes   %s of %s",
                  ui_bytes((unsigned long long)cm_json_num(j, "bytes_done", NAN), a, sizeof a),
                  ui_bytes((unsigned long long)cm_json_num(j, "bytes_total", NAN), b, sizeof b));
    if (r < y + h - 1 && !isnan(cm_json_num(j, "created_at", NAN)))
        ui_printf(r++, x + 2, w - 4, crt_attr(CR_DIM), "added   %s, attempt %d",
                  ui_time((long long)cm_json_num(j, "created_at", NAN), tm, sizeof tm),
                  (int)cm_json_num(j, "attempts", NAN));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "validation"), *wn;
    if (cJSON_IsObject(v) && r < y + h - 1) /* against the f32 reference */
        ui_printf(r++, x + 2, w - 4, status_attr(j),
                  "%s: top-1 agreement %.1f%%, cosine mean %.4f, KL mean %.4g, perplexity %.4g "
                  "-> %.4g (%+.1f%%)",
                  cm_json_str(j, "verdict", ""), 100 * cm_json_num(v, "top1_agreement", NAN),
                  cm_json_num(v, "cosine_mean", NAN), cm_json_num(v, "kl_mean", NAN),
                  cm_json_num(v, "ppl_ref", NAN), cm_json_num(v, "ppl_conv", NAN),
                  cm_json_num(v, "ppl_change_pct", NAN));
    cJSON_ArrayForEach(wn, cJSON_GetObjectItemCaseSensitive(j, "warnings"))
    {
        if (r >= y + h - 1 || !cJSON_IsString(wn)) break;
        r += ui_text_block(r, x + 2, y + h - 1 - r, w - 4, crt_attr(CR_WARN), wn->valuestring,
                           strlen(wn->valuestring), 0);
    }
    const char *err = cm_json_str(j, "error", "");
    if (*err && r < y + h - 1)
        ui_text_block(r, x + 2, y + h - 1 - r, w - 4, crt_attr(CR_FAIL), err, strlen(err), 0);
}

#define FORM_H 6

static void draw_form(conv *c, int y, int x, int w)
{
    ui_box(y, x, FORM_H, w, "Add a conversion job (bitnet convert SRC -o OUT --queue [--force])");
    ui_text(y + 1, x + 2, 9, crt_attr(CR_TITLE), "source");
    ui_input_draw(&c->src, y + 1, x + 11, w - 13, c->field == 0);
    ui_text(y + 2, x + 2, 9, crt_attr(CR_TITLE), "output");
    ui_input_draw(&c->out, y + 2, x + 11, w - 13, c->field == 1);
    ui_text(y + 3, x + 2, 9, crt_attr(CR_TITLE), "replace");
    ui_printf(y + 3, x + 11, w - 13, c->field == 2 ? crt_attr(CR_SELECT) : 0,
              "[%c] an existing output (--force)", c->force ? 'x' : ' ');
    ui_text(y + 4, x + 2, w - 4, crt_attr(CR_DIM),
            "Tab/Up/Down: field; Space: replace on/off; Enter on output or replace adds the "
            "job; Esc: cancel");
}

static void conv_draw(tui *t, void *st, int y, int x, int h, int w)
{
    conv *c = st;
    list_jobs(t, c, REFRESH_S);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(c->jobs, "jobs");
    const int n = cJSON_GetArraySize(jobs);
    int top = h * 3 / 5;
    if (c->adding) {
        draw_form(c, y, x, w);
        y += FORM_H, h -= FORM_H, top = h * 3 / 5;
    }
    char title[160], how[64];
    jobs_view_describe(&c->view, how, sizeof how);
    snprintf(title, sizeof title, "Conversion queue: %s (n add, x cancel, r retry, f F < > I)",
             how);
    ui_box(y, x, top, w, title);
    int r = y + 1;
    if (c->err[0]) ui_text(r++, x + 2, w - 4, crt_attr(CR_WARN), c->err);
    if (!c->jobs) {
        ui_text(r, x + 2, w - 4, crt_attr(CR_DIM), "reading the queue ...");
    } else if (n == 0) {
        ui_text(r, x + 2, w - 4, crt_attr(CR_DIM),
                "no jobs: n adds one (or bitnet convert SRC -o OUT --queue)");
    } else {
        ui_table_header(&c->view.tb, r++, x + 2, w - 3);
        ui_list_layout(&c->l, n, y + top - 1 - r);
        for (int i = 0; i < c->l.h && c->l.top + i < n; i++)
            draw_job(c, cJSON_GetArrayItem(jobs, c->l.top + i), c->l.top + i == c->l.sel, r + i,
                     x + 1, w - 2);
        ui_list_hits(&c->l, r, x + 1, w - 2);
    }
    if (n > 0 && c->l.sel >= 0 && c->l.sel < n)
        draw_details(cJSON_GetArrayItem(jobs, c->l.sel), y + top, x, h - top, w);
    else
        ui_box(y + top, x, h - top, w, "Job");
}

/* ---- keys
 * ------------------------------------------------------------------------------------------ */

static int form_key(tui *t, conv *c, int ch)
{
    ui_input *in = c->field ? &c->out : &c->src;
    if (ch == 27) {
        c->adding = 0;
        return 1;
    }
    if (ch == '\t' || ch == KEY_DOWN) {
        c->field = (c->field + 1) % 3;
        return 1;
    }
    if (ch == KEY_UP || ch == KEY_BTAB) {
        c->field = (c->field + 2) % 3;
        return 1;
    }
    if (c->field == 2 && ch == ' ') {
        c->force = !c->force;
        return 1;
    }
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        if (c->field == 0) {
            if (!c->out.len && c->src.len) { /* a default beside the source */
                char o[UI_INPUT_MAX + 8];
                size_t n = c->src.len;
                if (n > 1 && c->src.buf[n - 1] == '/') n--;
                snprintf(o, sizeof o, "%.*s.gguf", (int)n, c->src.buf);
                ui_input_set(&c->out, o);
            }
            c->field = 1;
            return 1;
        }
        if (!c->src.len || !c->out.len) {
            tui_status(t, CR_WARN, "a source and an output are needed");
            return 1;
        }
        const char *args[] = {"convert",  c->src.buf, "-o",
                              c->out.buf, "--queue",  c->force ? "--force" : NULL,
                              NULL};
        run_action(t, c, c->force ? "convert --queue --force" : "convert --queue", args);
        c->adding = 0;
        return 1;
    }
    if (c->field == 2) return ch >= 0x20 && ch <= 0xff; /* no text here */
    return ui_input_key(in, ch);
}

static int conv_key(tui *t, void *st, int ch)
{
    conv *c = st;
    if (c->adding) return form_key(t, c, ch);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(c->jobs, "jobs");
    const cJSON *j = c->l.sel >= 0 ? cJSON_GetArrayItem(jobs, c->l.sel) : NULL;
    char id[32];
    snprintf(id, sizeof id, "%d", j ? (int)cm_json_num(j, "id", NAN) : 0);
    if (jobs_view_key(&c->view, ch)) {
        cJSON *s = jobs_view_shown(&c->view);
        if (s) cJSON_Delete(c->jobs), c->jobs = s;
        return 1;
    }
    switch (ch) {
    case 'n':
        c->adding = 1, c->field = 0, c->force = 0;
        return 1;
    case 'x':
    case KEY_DC: {
        if (!j) return 1;
        const char *args[] = {"jobs", "cancel", id, NULL};
        run_action(t, c, "jobs cancel", args);
        return 1;
    }
    case 'r': {
        if (!j) return 1;
        const char *args[] = {"jobs", "retry", id, NULL};
        run_action(t, c, "jobs retry", args);
        return 1;
    }
    case 'l':
        c->listed_at = 0;
        list_jobs(t, c, 0);
        return 1;
    default:
        return ui_list_key(&c->l, ch);
    }
}

static int conv_editing(void *st)
{
    const conv *c = st;
    return c->adding || c->view.tb.picking;
}

static void conv_enter(tui *t, void *st)
{
    conv *c = st;
    c->listed_at = 0;
    list_jobs(t, c, 0);
}

const tui_screen scr_convert = {
        .name = "Conversions",
        .id = "conversions",
        .letter = 'v',
        .fkey = 8,
        .live = 1,
        .help = "Up Down\tchoose a job (its details below: validation figures, warnings)\n"
                "\ta done job shows its validation verdict (ok, warnings, poor) and top-1\n"
                "\tagreement, coloured by it\n"
                "n\tadd a job: a Hugging Face, PyTorch or ONNX model to a BitNet GGUF\n"
                "\tin the form, Space on replace passes --force (an existing output)\n"
                "x Del\tcancel the job (a running one stops within a tensor)\n"
                "r\tretry a failed or cancelled job\n"
                "l\tlist again (every 2 s anyway)\n"
                "f F\tshow the jobs of one status (all, queued, running, done, failed,\n"
                "\tcancelled): next / previous\n"
                "< >\tsort by ID, status, progress, phase, time left or source\n"
                "I\tinvert the order (the title and the header say which)\n"
                "C\tchoose the columns: Left Right pick one, Space shows / hides it, Esc\n"
                "\tthe queue of bitnet convert --queue and bitnet jobs, in the history file",
        .create = conv_create,
        .destroy = conv_destroy,
        .enter = conv_enter,
        .draw = conv_draw,
        .key = conv_key,
        .editing = conv_editing,
        .tick = conv_tick,
};
