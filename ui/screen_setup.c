/* screen_setup.c - screen 2: the setup wizard. Steps with Back and Next: the hardware, the
 * environment checks (`bitnet doctor --json --quick`, run as a child of this same program),
 * the model (the bundled default, the configured one or a file), a first generation, a
 * short benchmark, and writing the model to the config file. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <curses.h>
#include <stdlib.h>
#include <string.h>

#include "browser.h"
#include "child.h"

#define FIRST_PROMPT "Once upon a time,"
#define FIRST_N      32
#define BENCH_PP     32
#define BENCH_TG     16

enum { ST_HW, ST_CHECKS, ST_MODEL, ST_GEN, ST_BENCH, ST_SAVE, ST_COUNT };
static const char *const step_names[ST_COUNT] = {"Hardware",         "Checks",    "Model",
                                                 "First generation", "Benchmark", "Save"};

enum { JOB_NONE, JOB_LOADING, JOB_RUNNING, JOB_DONE, JOB_FAILED };

typedef struct option {
    char label[64];
    char path[BN_CONFIG_PATH_MAX];
} option;

typedef struct setup {
    int step;
    ui_child doctor; /* bitnet doctor --json --quick */
    cJSON *checks_doc;
    char checks_err[256];
    int checks_seen; /* its end was taken in */
    ui_list checks;
    option opt[4];
    int n_opt;
    ui_list mlist;
    int browsing;
    ui_browser br;
    char chosen[BN_CONFIG_PATH_MAX];
    int gen_state, gen_job;
    char gen_text[8192];
    size_t gen_len;
    char gen_msg[512];
    int bench_state, bench_job;
    char bench_msg[512];
    int saved;
    char save_msg[2 * BN_CONFIG_PATH_MAX + BN_CONFIG_ERR_MAX + 64];
} setup;

/* ---- the doctor ---------------------------------------------------------------------------- */

static void wake_tui(void *t)
{
    tui_wake(t);
}

static void doctor_start(tui *t, setup *s)
{
    static const char *const args[] = {"doctor", "--json", "--quick", NULL};
    cJSON_Delete(s->checks_doc);
    s->checks_doc = NULL, s->checks_err[0] = '\0', s->checks_seen = 0;
    ui_child_start(&s->doctor, args, 1, wake_tui, t);
}

static int doctor_done(setup *s)
{
    return ui_child_state_get(&s->doctor) == UI_CHILD_DONE;
}

/* ---- create / destroy ----------------------------------------------------------------------- */

static void *setup_create(tui *t)
{
    (void)t;
    setup *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    ui_child_init(&s->doctor);
    return s;
}

static void setup_destroy(void *st)
{
    setup *s = st;
    ui_child_release(&s->doctor);
    cJSON_Delete(s->checks_doc);
    ui_browser_free(&s->br);
    free(s);
}

/* ---- the steps' work ------------------------------------------------------------------------- */

static void fill_options(tui *t, setup *s)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    s->n_opt = 0;
    const char *cfgm = t->cfg ? bn_config_get_str(t->cfg, "model") : "";
    struct {
        const char *label, *path;
    } c[] = {{"bundled default", t->bundled},
             {"configured", cfgm},
             {"loaded now", es.model.loaded ? es.model.path : ""},
             {"chosen", s->chosen}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        if (!c[i].path || !*c[i].path) continue;
        int dup = 0;
        for (int j = 0; j < s->n_opt; j++) dup |= !strcmp(s->opt[j].path, c[i].path);
        if (dup) continue;
        snprintf(s->opt[s->n_opt].label, sizeof s->opt[0].label, "%s", c[i].label);
        snprintf(s->opt[s->n_opt].path, sizeof s->opt[0].path, "%s", c[i].path);
        s->n_opt++;
    }
}

static void start_gen(tui *t, setup *s)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    s->gen_len = 0, s->gen_text[0] = '\0', s->gen_msg[0] = '\0';
    if (es.model.loaded && !strcmp(es.model.path, s->chosen)) {
        eng_gen_params gp;
        tui_sampling(t, &gp, FIRST_N);
        s->gen_job = eng_generate(t->eng, FIRST_PROMPT, &gp);
        s->gen_state = s->gen_job > 0 ? JOB_RUNNING : JOB_NONE;
    } else {
        s->gen_job = eng_load(t->eng, s->chosen);
        s->gen_state = s->gen_job > 0 ? JOB_LOADING : JOB_NONE;
    }
    if (s->gen_state == JOB_NONE) snprintf(s->gen_msg, sizeof s->gen_msg, "busy: waiting ...");
}

static void start_bench(tui *t, setup *s)
{
    s->bench_msg[0] = '\0';
    s->bench_job = eng_bench(t->eng, BENCH_PP, BENCH_TG, 1);
    s->bench_state = s->bench_job > 0 ? JOB_RUNNING : JOB_NONE;
    if (s->bench_state == JOB_NONE)
        snprintf(s->bench_msg, sizeof s->bench_msg, "busy: waiting ...");
}

static void save_config(tui *t, setup *s)
{
    char path[BN_CONFIG_PATH_MAX], err[BN_CONFIG_ERR_MAX];
    if (t->cfg)
        snprintf(path, sizeof path, "%s", bn_config_file(t->cfg));
    else if (bn_config_path(path, sizeof path) != 0) {
        snprintf(s->save_msg, sizeof s->save_msg, "no place for the config file (HOME unset)");
        return;
    }
    cJSON *v = cJSON_CreateString(s->chosen);
    int changed = 0;
    if (!v || bn_config_write_key(path, "model", v, &changed, err, sizeof err) != 0) {
        snprintf(s->save_msg, sizeof s->save_msg, "cannot write %s: %s", path,
                 v ? err : "out of memory");
        cJSON_Delete(v);
        return;
    }
    cJSON_Delete(v);
    s->saved = 1;
    snprintf(s->save_msg, sizeof s->save_msg, "wrote model = %s to %s", s->chosen, path);
    tui_reload_config(t);
    tui_status(t, CR_OK, "setup complete: %s", s->save_msg);
}

static void choose(setup *s, const char *path);

/* With nothing chosen yet, the model loaded now (the bundled one on a first run) is the
 * choice, highlighted: Next takes it. */
static void choose_loaded(tui *t, setup *s)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    if (s->chosen[0] || !es.model.loaded) return;
    for (int i = 0; i < s->n_opt; i++)
        if (!strcmp(s->opt[i].path, es.model.path)) {
            s->mlist.sel = i;
            choose(s, s->opt[i].path);
            return;
        }
}

/* Starts the work of the step entered, once. */
static void enter_step(tui *t, setup *s)
{
    if (s->step == ST_CHECKS && ui_child_state_get(&s->doctor) == UI_CHILD_IDLE) doctor_start(t, s);
    if (s->step == ST_MODEL) fill_options(t, s), choose_loaded(t, s);
    if (s->step == ST_GEN && s->gen_state == JOB_NONE) start_gen(t, s);
    if (s->step == ST_BENCH && s->bench_state == JOB_NONE) start_bench(t, s);
}

static int can_next(tui *t, setup *s)
{
    switch (s->step) {
    case ST_HW: {
        const int ready = mon_lock(t->mon)->ready;
        mon_unlock(t->mon);
        return ready;
    }
    case ST_CHECKS:
        return doctor_done(s);
    case ST_MODEL:
        return s->chosen[0] != '\0';
    case ST_GEN:
        return s->gen_state == JOB_DONE;
    case ST_BENCH:
        return s->bench_state == JOB_DONE || s->bench_state == JOB_FAILED;
    default:
        return 1;
    }
}

static void setup_tick(tui *t, void *st)
{
    setup *s = st;
    if (!s->checks_seen && doctor_done(s)) {
        s->checks_seen = 1;
        s->checks_doc = ui_child_take(&s->doctor);
        ui_child_error(&s->doctor, s->checks_err, sizeof s->checks_err);
        if (s->checks_doc &&
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s->checks_doc, "checks")))
            snprintf(s->checks_err, sizeof s->checks_err, "bitnet doctor gave no report");
        t->hist_seq++; /* doctor recorded its run */
    }
    eng_status es;
    eng_status_get(t->eng, &es);
    if (s->gen_state == JOB_LOADING && es.job_id == s->gen_job && es.job == ENG_IDLE) {
        if (es.ok) {
            start_gen(t, s);
        } else {
            s->gen_state = JOB_FAILED;
            snprintf(s->gen_msg, sizeof s->gen_msg, "%s", es.message);
        }
    } else if (s->gen_state == JOB_RUNNING) {
        const size_t room = sizeof s->gen_text - 1 - s->gen_len;
        s->gen_len += eng_take_text(t->eng, s->gen_job, s->gen_text + s->gen_len, room);
        s->gen_text[s->gen_len] = '\0';
        if (es.job_id == s->gen_job && es.job == ENG_IDLE) {
            s->gen_state = es.ok ? JOB_DONE : JOB_FAILED;
            snprintf(s->gen_msg, sizeof s->gen_msg, "%s", es.message);
        }
    }
    if (s->bench_state == JOB_RUNNING && es.job_id == s->bench_job && es.job == ENG_IDLE) {
        s->bench_state = es.ok ? JOB_DONE : JOB_FAILED;
        snprintf(s->bench_msg, sizeof s->bench_msg, "%s", es.message);
    }
    /* a step waiting for a busy engine starts when it is free */
    if (t->cur == SCR_SETUP && es.job == ENG_IDLE) {
        if (s->step == ST_GEN && s->gen_state == JOB_NONE) start_gen(t, s);
        if (s->step == ST_BENCH && s->bench_state == JOB_NONE) start_bench(t, s);
    }
}

/* ---- drawing -----------------------------------------------------------------------------------
 */

static void draw_hw(tui *t, int y, int x, int h, int w)
{
    const mon_data *d = mon_lock(t->mon);
    char a[32], b[32];
    int r = y;
    if (!d->ready) {
        ui_text(r, x, w, crt_attr(CR_DIM), "detecting ...");
    } else {
        const bn_hw_info *hw = &d->hw;
        ui_printf(r++, x, w, 0, "CPU      %s, %d cores, %d threads",
                  hw->cpu->model[0] ? hw->cpu->model : "unknown", hw->cpu->n_physical,
                  hw->cpu->n_cores);
        ui_text(r, x, 9, 0, "features");
        ui_text_cut(r++, x + 9, w - 9, 0, hw->cpu_features[0] ? hw->cpu_features : "none");
        ui_printf(r++, x, w, 0, "kernels  %s (chosen for this CPU)", hw->kernels);
        ui_printf(r++, x, w, 0, "memory   %s total, %s available",
                  ui_bytes(hw->mem_total, a, sizeof a), ui_bytes(hw->mem_available, b, sizeof b));
        ui_printf(r++, x, w, 0, "OS       %s, kernel %s", hw->os_name, hw->kernel);
        ui_printf(r++, x, w, 0, "GPU      %s", hw->gpu_status);
        r++;
        if (r < y + h)
            ui_text(r, x, w, crt_attr(CR_DIM),
                    "bitnet runs ternary models on the CPU; the figures above decide its speed");
    }
    mon_unlock(t->mon);
}

static void draw_checks(setup *s, int y, int x, int h, int w)
{
    if (!s->checks_seen) {
        ui_text(y, x, w, crt_attr(CR_DIM), "running bitnet doctor --quick ...");
    } else if (s->checks_err[0]) {
        ui_text(y, x, w, crt_attr(CR_FAIL), s->checks_err);
    } else {
        const cJSON *checks = cJSON_GetObjectItemCaseSensitive(s->checks_doc, "checks");
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(s->checks_doc, "summary");
        const int n = cJSON_GetArraySize(checks);
        ui_printf(y, x, w, crt_attr(CR_TITLE),
                  "%d checks: %d pass, %d warn, %d fail (r: run again)", n,
                  cJSON_GetObjectItemCaseSensitive(sum, "pass")
                          ? cJSON_GetObjectItemCaseSensitive(sum, "pass")->valueint
                          : 0,
                  cJSON_GetObjectItemCaseSensitive(sum, "warn")
                          ? cJSON_GetObjectItemCaseSensitive(sum, "warn")->valueint
                          : 0,
                  cJSON_GetObjectItemCaseSensitive(sum, "fail")
                          ? cJSON_GetObjectItemCaseSensitive(sum, "fail")->valueint
                          : 0);
        ui_list_layout(&s->checks, n, h - 1);
        for (int r = 0; r < s->checks.h && s->checks.top + r < n; r++) {
            const cJSON *c = cJSON_GetArrayItem(checks, s->checks.top + r);
            const cJSON *stv = cJSON_GetObjectItemCaseSensitive(c, "status");
            const char *stt = cJSON_IsString(stv) ? stv->valuestring : "?";
            const int a = !strcmp(stt, "pass")   ? crt_attr(CR_OK)
                          : !strcmp(stt, "warn") ? crt_attr(CR_WARN)
                                                 : crt_attr(CR_FAIL);
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(c, "detail");
            const cJSON *hn = cJSON_GetObjectItemCaseSensitive(c, "hint");
            char up[8];
            snprintf(up, sizeof up, "%s", stt);
            for (char *p = up; *p; p++) *p = (char)(*p & ~0x20);
            ui_text(y + 1 + r, x, 5, a, up);
            int cx = x + 6;
            cx += ui_printf(y + 1 + r, cx, w - 6, 0, "%-15s ",
                            cJSON_IsString(nm) ? nm->valuestring : "?");
            const int sel = s->checks.top + r == s->checks.sel;
            const char *txt = sel && cJSON_IsString(hn) && *hn->valuestring && strcmp(stt, "pass")
                                      ? hn->valuestring
                              : cJSON_IsString(dt) ? dt->valuestring
                                                   : "";
            ui_text_cut(y + 1 + r, cx, x + w - cx, sel ? crt_attr(CR_SELECT) : 0, txt);
        }
        ui_list_hits(&s->checks, y + 1, x, w);
    }
}

static void draw_model_step(tui *t, setup *s, int y, int x, int h, int w)
{
    (void)t;
    if (s->browsing) {
        ui_browser_draw(&s->br, y, x, h, w);
        return;
    }
    int r = y;
    if (!t->bundled[0])
        ui_text(r++, x, w, crt_attr(CR_WARN),
                "no bundled model found in this build: choose a GGUF file (o: browse, /: type a "
                "path)");
    ui_text(r++, x, w, crt_attr(CR_DIM),
            "Up/Down and Enter choose; o browses for a file; / types a path");
    const int n = s->n_opt + 1;
    ui_list_layout(&s->mlist, n, h - (r - y) - 2);
    for (int i = 0; i < n && i < s->mlist.h; i++) {
        const int sel = i == s->mlist.sel;
        const int a = sel ? crt_attr(CR_SELECT) : 0;
        ui_clear(r + i, x, w, a);
        if (i < s->n_opt)
            ui_printf(r + i, x + 1, w - 2, a, "%-16s %s%s", s->opt[i].label, s->opt[i].path,
                      !strcmp(s->opt[i].path, s->chosen) ? "  (chosen)" : "");
        else
            ui_text(r + i, x + 1, w - 2, a, "another file ...");
    }
    ui_list_hits(&s->mlist, r, x, w);
    if (s->chosen[0]) ui_printf(y + h - 1, x, w, crt_attr(CR_OK), "chosen: %s", s->chosen);
}

static void draw_gen(tui *t, setup *s, int y, int x, int h, int w)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    ui_printf(y, x, w, crt_attr(CR_DIM), "%s, %d tokens from \"%s\"", tui_base(s->chosen), FIRST_N,
              FIRST_PROMPT);
    const char *what = s->gen_state == JOB_LOADING   ? "loading the model ..."
                       : s->gen_state == JOB_RUNNING ? "generating ..."
                       : s->gen_state == JOB_DONE    ? "done (r: again)"
                       : s->gen_state == JOB_FAILED  ? "failed (Back to choose another model)"
                                                     : "waiting for the engine ...";
    ui_text(y + 1, x, w, s->gen_state == JOB_FAILED ? crt_attr(CR_FAIL) : crt_attr(CR_TITLE), what);
    char text[sizeof s->gen_text + 64];
    const int n = snprintf(text, sizeof text, "%s%s", FIRST_PROMPT, s->gen_text);
    ui_text_block(y + 3, x, h - 6, w, 0, text, (size_t)n, 0);
    if (s->gen_msg[0])
        ui_text(y + h - 2, x, w, s->gen_state == JOB_FAILED ? crt_attr(CR_FAIL) : crt_attr(CR_OK),
                s->gen_msg);
    if (s->gen_state == JOB_RUNNING)
        ui_printf(y + h - 1, x, w, crt_attr(CR_DIM), "%lld tokens, %.1f tokens/s", es.gen_tokens,
                  es.gen_tps);
}

static void draw_bench_step(tui *t, setup *s, int y, int x, int h, int w)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    ui_printf(y, x, w, crt_attr(CR_DIM),
              "%d prompt tokens in a batch, then %d generated one at a time", BENCH_PP, BENCH_TG);
    if (s->bench_state == JOB_RUNNING) {
        char lab[64];
        snprintf(lab, sizeof lab, "%s", es.bench_phase);
        ui_meter(y + 2, x, w < 60 ? w : 60, es.bench_tg ? (double)es.bench_pos / es.bench_tg : 0,
                 crt_attr(CR_GRAPH1), lab);
    } else if (s->bench_state == JOB_DONE && es.bench_done) {
        ui_printf(y + 2, x, w, crt_attr(CR_OK), "prompt %.1f tokens/s, generation %.1f tokens/s",
                  es.bench_pp_tps[0], es.bench_tg_tps[0]);
        ui_text(y + 4, x, w, crt_attr(CR_DIM),
                "Benchmarks (F7) runs longer ones and compares them with earlier runs");
    }
    if (s->bench_msg[0])
        ui_text(y + h - 1, x, w, s->bench_state == JOB_FAILED ? crt_attr(CR_FAIL) : 0,
                s->bench_msg);
}

static void draw_save(tui *t, setup *s, int y, int x, int h, int w)
{
    char path[BN_CONFIG_PATH_MAX];
    if (t->cfg)
        snprintf(path, sizeof path, "%s", bn_config_file(t->cfg));
    else if (bn_config_path(path, sizeof path) != 0)
        snprintf(path, sizeof path, "?");
    ui_printf(y, x, w, 0, "the config file: %s", path);
    ui_printf(y + 2, x, w, 0, "model = %s", s->chosen[0] ? s->chosen : "(none chosen)");
    ui_text(y + 4, x, w, crt_attr(CR_DIM),
            "Enter writes it (other settings are kept); bitnet config changes more later");
    if (s->save_msg[0])
        ui_text(y + 6, x, w, s->saved ? crt_attr(CR_OK) : crt_attr(CR_FAIL), s->save_msg);
    if (s->saved && h > 8)
        ui_text(y + 8, x, w, crt_attr(CR_TITLE),
                "setup complete: Finish opens the Dashboard; Chat (F6) talks to the model");
}

static void setup_draw(tui *t, void *st, int y, int x, int h, int w)
{
    setup *s = st;
    /* the steps */
    int c = x + 1;
    for (int i = 0; i < ST_COUNT && c < x + w; i++) {
        char lab[64];
        snprintf(lab, sizeof lab, "%d %s", i + 1, step_names[i]);
        const int a = i == s->step  ? crt_attr(CR_TAB_ACTIVE)
                      : i < s->step ? crt_attr(CR_OK)
                                    : crt_attr(CR_DIM);
        const int c0 = c;
        c += ui_text(y, c, x + w - c, a, lab);
        if (i + 1 < ST_COUNT)
            c += ui_text(y, c, x + w - c, crt_attr(CR_DIM), crt_unicode() ? " \u203a " : " > ");
        ui_hit(y, c0, c - c0, UI_KEY_BUTTON + 100 + i);
    }
    char title[96];
    snprintf(title, sizeof title, "Setup %d/%d: %s", s->step + 1, ST_COUNT, step_names[s->step]);
    ui_box(y + 1, x, h - 2, w, title);
    const int iy = y + 2, ix = x + 2, ih = h - 4, iw = w - 4;
    switch (s->step) {
    case ST_HW:
        draw_hw(t, iy, ix, ih, iw);
        break;
    case ST_CHECKS:
        draw_checks(s, iy, ix, ih, iw);
        break;
    case ST_MODEL:
        draw_model_step(t, s, iy, ix, ih, iw);
        break;
    case ST_GEN:
        draw_gen(t, s, iy, ix, ih, iw);
        break;
    case ST_BENCH:
        draw_bench_step(t, s, iy, ix, ih, iw);
        break;
    default:
        draw_save(t, s, iy, ix, ih, iw);
    }
    const int by = y + h - 1;
    int bx = x + 1;
    bx += ui_button(by, bx, "< Back (p)", UI_KEY_BUTTON + 1, s->step > 0, 0) + 2;
    ui_button(by, bx, s->step == ST_SAVE ? "Finish" : "Next > (n)", UI_KEY_BUTTON + 2,
              can_next(t, s), 0);
}

/* ---- keys --------------------------------------------------------------------------------------
 */

static void go(tui *t, setup *s, int step)
{
    if (step < 0 || step >= ST_COUNT) return;
    s->step = step;
    s->browsing = 0;
    enter_step(t, s);
}

static void choose(setup *s, const char *path)
{
    snprintf(s->chosen, sizeof s->chosen, "%s", path);
    s->gen_state = s->bench_state = JOB_NONE; /* a new model: generate and measure again */
    s->saved = 0, s->save_msg[0] = '\0';
}

static int model_key(tui *t, setup *s, int ch)
{
    if (s->browsing) {
        char path[BN_CONFIG_PATH_MAX];
        const int r = ui_browser_key(&s->br, ch, path, sizeof path);
        if (r == 1) {
            s->browsing = 0;
            choose(s, path);
            fill_options(t, s);
        } else if (r < 0 && ch == 27) {
            s->browsing = 0;
        }
        return 1;
    }
    if (ui_list_key(&s->mlist, ch)) return 1;
    if (ch == 'o' || ch == '/' ||
        ((ch == '\n' || ch == '\r' || ch == KEY_ENTER) && s->mlist.sel == s->n_opt)) {
        s->browsing = 1;
        ui_browser_open(&s->br, s->br.dir[0] ? s->br.dir : ".");
        if (ch == '/') ui_browser_key(&s->br, '/', NULL, 0);
        return 1;
    }
    if ((ch == '\n' || ch == '\r' || ch == KEY_ENTER) && s->mlist.sel >= 0 &&
        s->mlist.sel < s->n_opt) {
        choose(s, s->opt[s->mlist.sel].path);
        return 1;
    }
    return 0;
}

static int setup_key(tui *t, void *st, int ch)
{
    setup *s = st;
    if (ch >= UI_KEY_BUTTON + 100 && ch < UI_KEY_BUTTON + 100 + ST_COUNT) {
        const int to = ch - UI_KEY_BUTTON - 100;
        if (to <= s->step) go(t, s, to);
        return 1;
    }
    if (s->step == ST_MODEL && model_key(t, s, ch)) return 1;
    if (s->step == ST_CHECKS && ui_list_key(&s->checks, ch)) return 1;
    const int enter = ch == '\n' || ch == '\r' || ch == KEY_ENTER;
    if (ch == 'n' || ch == KEY_RIGHT || ch == UI_KEY_BUTTON + 2 || (enter && s->step != ST_SAVE)) {
        if (!can_next(t, s)) {
            tui_status(t, CR_WARN, "%s",
                       s->step == ST_MODEL ? "choose a model first"
                                           : "this step is not finished yet");
            return 1;
        }
        if (s->step == ST_SAVE) {
            if (!s->saved) save_config(t, s);
            if (s->saved) tui_switch(t, SCR_DASHBOARD);
            return 1;
        }
        go(t, s, s->step + 1);
        return 1;
    }
    if (ch == 'p' || ch == KEY_LEFT || ch == UI_KEY_BUTTON + 1) {
        go(t, s, s->step - 1);
        return 1;
    }
    if (enter && s->step == ST_SAVE) { /* write; once written, finish */
        if (s->saved)
            tui_switch(t, SCR_DASHBOARD);
        else
            save_config(t, s);
        return 1;
    }
    if (ch == 'r') {
        if (s->step == ST_CHECKS && doctor_done(s)) doctor_start(t, s);
        if (s->step == ST_GEN && (s->gen_state == JOB_DONE || s->gen_state == JOB_FAILED))
            start_gen(t, s);
        if (s->step == ST_BENCH && s->bench_state != JOB_RUNNING) start_bench(t, s);
        return 1;
    }
    if (ch == 27 || ch == 'x') {
        eng_cancel(t->eng);
        return 1;
    }
    return 0;
}

static int setup_editing(void *st)
{
    const setup *s = st;
    return s->step == ST_MODEL && s->browsing && ui_browser_editing(&s->br);
}

static void setup_enter(tui *t, void *st)
{
    enter_step(t, st);
}

static const char *setup_keybar(void *st)
{
    const setup *s = st;
    switch (s->step) {
    case ST_HW:
        return "n\tnext step\n";
    case ST_CHECKS:
        return "n\tnext\np\tback\nUp Down\ta check's hint\nr\trun again\n";
    case ST_MODEL:
        if (s->browsing) return ui_browser_keybar(&s->br);
        return "Enter\tchoose\nn\tnext\np\tback\no\tbrowse\n/\ttype a path\n";
    case ST_GEN:
    case ST_BENCH:
        return "n\tnext\np\tback\nr\tagain\nEsc\tstop\n";
    default:
        return s->saved ? "Enter\tfinish\np\tback\n" : "Enter\twrite the config\np\tback\n";
    }
}

const tui_screen scr_setup = {
        .name = "Setup",
        .id = "setup",
        .letter = 's',
        .fkey = 3,
        .live = 1,
        .help = "n Right Enter\tnext step (when this one is done)\n"
                "p Left\tprevious step\n"
                "r\trun the step again (checks, generation, benchmark)\n"
                "Esc x\tstop the generation or benchmark\n"
                "o /\tthe model step: browse for a file, or type its path\n" UI_BROWSER_HELP
                "\tthe last step writes the model to the config file",
        .create = setup_create,
        .destroy = setup_destroy,
        .enter = setup_enter,
        .draw = setup_draw,
        .key = setup_key,
        .editing = setup_editing,
        .tick = setup_tick,
        .keybar = setup_keybar,
};
