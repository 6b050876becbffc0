/* cmd_setup.c - `bitnet setup`: the first-run wizard at the terminal, with readline
 * prompts: (1) the hardware, (2) the environment checks (`bitnet doctor --quick`), (3)
 * the model (the bundled default, the configured one or a file name typed with Tab
 * completion, opened as GGUF) and the threads, (4) a first generation, (5) a short
 * benchmark, (6) the config file (model and threads, each written atomically). At every
 * prompt Enter takes the default, b goes back a step, s skips what can be skipped and q
 * quits without writing. --yes runs it without prompts, --json reports the steps.
 *
 * Checks, generation and benchmark are this program's own commands run as children
 * (self_run.h): the wizard shows exactly what they print, and they record their runs in
 * the history as usual. */
#include "commands.h"

#include <readline/readline.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"
#include "common/config.h"
#include "common/hw.h"
#include "common/model_common.h"
#include "common/self_run.h"

#define FIRST_PROMPT "once upon a time,"
#define FIRST_N      "24"
#define BENCH_P      "32"
#define BENCH_N      "16"
#define BENCH_R      "2"
#define JSON_MAX     ((size_t)4 << 20) /* bytes of a child's --json output kept */
#define GIB          (1024.0 * 1024.0 * 1024.0)
#define MAX_THREADS  1024 /* what generate and bench take */

enum { S_HW, S_CHECKS, S_MODEL, S_GEN, S_BENCH, S_SAVE, S_COUNT };
static const char *const step_id[S_COUNT] = {"hardware", "checks", "model",
                                             "generate", "bench",  "config"};
static const char *const step_title[S_COUNT] = {
        "Hardware", "Environment checks", "Model", "First generation", "Benchmark", "Config"};

typedef enum go { GO_NEXT, GO_BACK, GO_QUIT, GO_FAIL } go;

typedef struct wiz {
    int yes, json, no_bench, interactive;
    const char *model_arg; /* --model, as given */
    long threads;          /* what is written: --threads, typed, else the config's */
    int threads_given;
    bn_config *cfg;
    char cfg_path[BN_CONFIG_PATH_MAX];
    char given[MC_PATH_MAX];      /* --model made absolute, or "" */
    char bundled[MC_PATH_MAX];    /* the bundled model, or "" */
    char configured[MC_PATH_MAX]; /* the config's (or BITNET_MODEL's) model, or "" */
    char model[MC_PATH_MAX];      /* chosen */
    const char *model_from;       /* "--model", "bundled", "config", "typed" */
    char model_what[256];         /* "bitnet-b1.58, 123 tensors" */
    cJSON *steps[S_COUNT];        /* --json: each step's {step, status, ...} */
} wiz;

void cmd_setup_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet setup [--yes] [--model FILE] [--threads N] [--no-bench] [--json]\n\n"
            "The first-run wizard: (1) shows the hardware, (2) runs the environment checks\n"
            "(bitnet doctor --quick), (3) chooses the model - the bundled default, the\n"
            "configured one, or a GGUF file typed at the prompt (Tab completes file names) -\n"
            "and the threads, (4) runs a first generation (%s tokens, streamed), (5) a short\n"
            "benchmark (bench -p %s -n %s -r %s), and (6) writes model and threads to the\n"
            "config file. At each prompt: Enter takes the default, b goes back a step, s\n"
            "skips the generation or the benchmark, q quits without writing anything.\n\n"
            "Options:\n"
            "  -y, --yes          no prompts: every default (the model: --model, else the\n"
            "                     bundled one, else the configured one)\n"
            "  -m, --model FILE   the model to set up (checked by opening it as GGUF)\n"
            "  -t, --threads N    threads to write (0: one per core; default: the config's)\n"
            "  --no-bench         skip the benchmark\n"
            "  --json             with --yes: one JSON document, {steps: [{step, status,\n"
            "                     ...}], config_file, model, threads, written}\n"
            "  -h, --help         this help\n\n"
            "It prompts only on a terminal; elsewhere it needs --yes.\n"
            "Exit status: 0 the config was written, 1 a step failed or the wizard was quit\n"
            "(nothing written), 2 usage error (also: no terminal and no --yes).\n",
            FIRST_N, BENCH_P, BENCH_N, BENCH_R);
}

/* ---- small helpers ------------------------------------------------------------------- */

/* Adds {step, status} to the JSON report and returns it (NULL without --json). */
static cJSON *json_step(wiz *w, int step, const char *status)
{
    if (!w->json) return NULL;
    cJSON_Delete(w->steps[step]);
    cJSON *o = w->steps[step] = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "step", step_id[step]);
    cJSON_AddStringToObject(o, "status", status);
    return o;
}

static void header(const wiz *w, int step)
{
    if (w->json) return;
    printf("\n[%d/%d] %s\n", step + 1, S_COUNT, step_title[step]);
}

/* One answer, trimmed (malloc'ed); NULL at the end of input (Ctrl-D). */
static char *ask(const char *prompt)
{
    char *line = readline(prompt);
    if (!line) {
        putchar('\n');
        return NULL;
    }
    size_t n = strlen(line), s = strspn(line, " \t");
    while (n > s && (line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    memmove(line, line + s, n - s);
    line[n - s] = '\0';
    return line;
}

/* Asks what to do after a step: Enter goes on, b back, q quits. */
static go ask_next(int step)
{
    for (;;) {
        char *a = ask(step > 0 ? "[Enter] next  [b] back  [q] quit: " : "[Enter] next  [q] quit: ");
        if (!a) return GO_QUIT;
        go g = !*a ? GO_NEXT : !strcmp(a, "b") ? GO_BACK : !strcmp(a, "q") ? GO_QUIT : (go)-1;
        free(a);
        if (g == GO_BACK && step == 0) g = (go)-1;
        if ((int)g >= 0) return g;
        printf("  Enter, %sq\n", step > 0 ? "b or " : "");
    }
}

/* Asks whether to run a step's work: 1 run, 0 skip, or a go to leave the step. */
static int ask_run(const char *what, go *leave)
{
    for (;;) {
        printf("%s\n", what);
        char *a = ask("[Enter] run  [s] skip  [b] back  [q] quit: ");
        if (!a) {
            *leave = GO_QUIT;
            return -1;
        }
        int r = !*a ? 1 : !strcmp(a, "s") ? 0 : -1;
        if (!strcmp(a, "b")) *leave = GO_BACK;
        if (!strcmp(a, "q")) *leave = GO_QUIT;
        int known = r >= 0 || !strcmp(a, "b") || !strcmp(a, "q");
        free(a);
        if (known) return r;
        printf("  Enter, s, b or q\n");
    }
}

/* Opens path as GGUF: 0 with "ARCH, N tensors" in what, or -1 with the reason. */
static int check_model(const char *path, char *what, size_t size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(what, size, "not a file");
        return -1;
    }
    bn_ctx *ctx = NULL;
    bn_ctx_params p = {1};
    bn_gguf *g = NULL;
    if (bn_ctx_new(&ctx, &p) != BN_OK) {
        snprintf(what, size, "out of memory");
        return -1;
    }
    int rc = -1;
    const char *arch = NULL;
    if (bn_gguf_open(ctx, path, &g) != BN_OK) {
        snprintf(what, size, "not a GGUF model: %s", bn_ctx_errmsg(ctx));
    } else if (bn_gguf_get_str(g, "general.architecture", &arch) != BN_OK) {
        snprintf(what, size, "a GGUF file without general.architecture: not a model");
    } else {
        snprintf(what, size, "%s, %lld tensors", arch, (long long)bn_gguf_n_tensors(g));
        rc = 0;
    }
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    return rc;
}

/* Runs `bitnet args...`: its output streams to ours, or with --json is parsed into *doc.
 * The exit status, or -1 when it could not be started (printed). */
static int run_child(const wiz *w, const char *const *args, cJSON **doc)
{
    char line[2 * MC_PATH_MAX], err[512];
    sr_result r;
    if (!w->json) {
        sr_command_line(args, line, sizeof line);
        printf("$ %s\n", line);
    }
    if (sr_run(args, w->json ? SR_CAPTURE : 0, JSON_MAX, &r, err, sizeof err)) {
        cli_error("%s", err);
        return -1;
    }
    if (doc) *doc = w->json && !r.truncated ? cJSON_Parse(r.out) : NULL;
    int rc = r.exit_code;
    if (r.signal && !w->json) printf("(stopped by signal %d)\n", r.signal);
    sr_result_release(&r);
    return rc;
}

/* The child's JSON (or null) as the step's "result", and its exit code. */
static void json_result(cJSON *o, int rc, cJSON *doc)
{
    if (!o) {
        cJSON_Delete(doc);
        return;
    }
    cJSON_AddNumberToObject(o, "exit_code", rc);
    cJSON_AddItemToObject(o, "result", doc ? doc : cJSON_CreateNull());
}

/* ---- (1) hardware -------------------------------------------------------------------- */

static go step_hw(wiz *w)
{
    bn_hw_info hw;
    bn_hw_collect(&hw, NULL);
    cJSON *o = json_step(w, S_HW, "ok");
    if (o) {
        cJSON *j = bn_hw_to_json(&hw);
        cJSON_AddItemToObject(o, "result", j ? j : cJSON_CreateNull());
        return GO_NEXT;
    }
    const bn_cpu_info *c = hw.cpu;
    printf("  CPU      %s (%s), %d cores, %d threads\n", c->model[0] ? c->model : "unknown",
           c->arch, c->n_physical, c->n_cores);
    printf("  features %s\n", hw.cpu_features[0] ? hw.cpu_features : "none");
    printf("  kernels  %s (chosen for this CPU)\n", hw.kernels);
    if (hw.mem_total)
        printf("  memory   %.1f GiB total, %.1f GiB available\n", (double)hw.mem_total / GIB,
               (double)hw.mem_available / GIB);
    printf("  OS       %s, kernel %s\n", hw.os_name, hw.kernel);
    printf("  GPU      %s\n", hw.gpu_status);
    printf("bitnet runs ternary models on the CPU: cores, SIMD features and memory bandwidth "
           "decide its speed.\n");
    return w->interactive ? ask_next(S_HW) : GO_NEXT;
}

/* ---- (2) checks ---------------------------------------------------------------------- */

static go step_checks(wiz *w)
{
    const char *args[] = {"doctor", "--quick", w->json ? "--json" : NULL, NULL};
    cJSON *doc = NULL;
    int rc = run_child(w, args, &doc);
    if (rc < 0) return GO_FAIL;
    json_result(json_step(w, S_CHECKS, rc == 0 ? "ok" : "warn"), rc, doc);
    if (rc != 0 && !w->json)
        printf("Some checks failed (see their hints); setup goes on: the next steps may fix "
               "them.\n");
    if (!w->json) printf("The full checks, with sha256 and a kernel benchmark: bitnet doctor\n");
    return w->interactive ? ask_next(S_CHECKS) : GO_NEXT;
}

/* ---- (3) model and threads ------------------------------------------------------------- */

typedef struct choice {
    const char *label, *path;
} choice;

static int list_choices(const wiz *w, choice *c)
{
    const choice all[] = {{"given (--model)", w->given},
                          {"bundled default", w->bundled},
                          {"configured", w->configured},
                          {"chosen", w->model}};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i].path[0]) continue;
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= !strcmp(c[j].path, all[i].path);
        if (!dup) c[n++] = all[i];
    }
    return n;
}

/* Takes path (from where) as the model when it opens as GGUF: 0; else -1 with the reason
 * in w->model_what (printed when interactive). */
static int take_model(wiz *w, const char *path, const char *from)
{
    char copy[MC_PATH_MAX]; /* path may be w->model itself */
    snprintf(copy, sizeof copy, "%s", path);
    if (check_model(copy, w->model_what, sizeof w->model_what)) {
        if (w->interactive) printf("  %s: %s\n", copy, w->model_what);
        return -1;
    }
    snprintf(w->model, sizeof w->model, "%s", copy);
    w->model_from = from;
    if (w->interactive) printf("  model: %s (%s)\n", w->model, w->model_what);
    return 0;
}

/* The model from an answer: Enter (the first choice), a number, or a file name. */
static int answer_model(wiz *w, const char *a, const choice *c, int n)
{
    char *end, path[MC_PATH_MAX];
    long k = strtol(a, &end, 10);
    if (!*a && n > 0) return take_model(w, c[0].path, c[0].label);
    if (!*a) {
        printf("  type the name of a GGUF file\n");
        return -1;
    }
    if (*end == '\0' && k >= 1 && k <= n) return take_model(w, c[k - 1].path, c[k - 1].label);
    if (bn_config_resolve_path(a, NULL, path, sizeof path)) {
        printf("  the name is too long\n");
        return -1;
    }
    return take_model(w, path, "typed");
}

static go ask_model(wiz *w)
{
    choice c[4];
    int n = list_choices(w, c);
    for (int i = 0; i < n; i++) printf("  %d) %-16s %s\n", i + 1, c[i].label, c[i].path);
    if (n == 0)
        printf("  no bundled or configured model: type the name of a GGUF file (or make one:\n"
               "  bitnet synth --shape tiny -o m.gguf)\n");
    char prompt[160];
    snprintf(prompt, sizeof prompt, "Model [%s%sa file name (Tab completes), b back, q quit]: ",
             n ? "Enter: 1, " : "", n > 1 ? "a number, " : "");
    for (;;) {
        char *a = ask(prompt);
        if (!a) return GO_QUIT;
        go g = !strcmp(a, "b") ? GO_BACK : !strcmp(a, "q") ? GO_QUIT : GO_NEXT;
        if (g == GO_NEXT && answer_model(w, a, c, n)) g = (go)-1;
        free(a);
        if ((int)g >= 0) return g;
    }
}

static void threads_label(long t, char *buf, size_t size)
{
    if (t == 0)
        snprintf(buf, size, "0 (one per core)");
    else
        snprintf(buf, size, "%ld", t);
}

/* GO_NEXT with w->threads set, GO_BACK to the model prompt, or GO_QUIT. */
static go ask_threads(wiz *w)
{
    char prompt[160], cur[32];
    threads_label(w->threads, cur, sizeof cur);
    snprintf(prompt, sizeof prompt, "Threads [Enter: %s; a number%s; b back, q quit]: ", cur,
             w->threads ? ", 0 = one per core" : "");
    for (;;) {
        char *a = ask(prompt);
        if (!a) return GO_QUIT;
        long t;
        go g = !strcmp(a, "b") ? GO_BACK : !strcmp(a, "q") ? GO_QUIT : GO_NEXT;
        if (g == GO_NEXT && *a) {
            if (cli_parse_long(a, 0, MAX_THREADS, &t)) {
                printf("  a number from 0 to %d\n", MAX_THREADS);
                g = (go)-1;
            } else {
                w->threads = t;
            }
        }
        free(a);
        if ((int)g >= 0) return g;
    }
}

/* Without prompts: --model, else the bundled model, else the configured one; checked
 * before the first step. 0, or -1 (printed). */
static int pick_model(wiz *w)
{
    const char *path = w->given[0] ? w->given : w->bundled[0] ? w->bundled : w->configured;
    const char *from = w->given[0] ? "--model" : w->bundled[0] ? "bundled" : "config";
    if (!path[0]) {
        cli_error("setup: no model: none bundled and none configured; make one with 'bitnet "
                  "synth --shape tiny -o m.gguf' and run 'bitnet setup --yes --model m.gguf'");
        return -1;
    }
    if (take_model(w, path, from)) {
        cli_error("setup: %s: %s", path, w->model_what);
        return -1;
    }
    return 0;
}

static go step_model(wiz *w)
{
    if (!w->interactive) {
        if (!w->json) printf("  model: %s (%s)\n", w->model, w->model_what);
        return GO_NEXT;
    }
    for (;;) {
        go g = ask_model(w);
        if (g != GO_NEXT) return g;
        g = ask_threads(w);
        if (g != GO_BACK) return g;
    }
}

static void json_model(wiz *w)
{
    cJSON *o = json_step(w, S_MODEL, "ok");
    if (!o) return;
    cJSON_AddStringToObject(o, "path", w->model);
    cJSON_AddStringToObject(o, "from", w->model_from);
    cJSON_AddStringToObject(o, "summary", w->model_what);
    cJSON_AddNumberToObject(o, "threads", (double)w->threads);
}

/* ---- (4) generation and (5) benchmark ------------------------------------------------------ */

/* Runs a step's command: interactively after asking (Enter runs, s skips); again after a
 * failure (or back to choose another model). */
static go run_step(wiz *w, int step, const char *const *args, const char *about)
{
    for (;;) {
        go leave = GO_NEXT;
        if (w->interactive) {
            int r = ask_run(about, &leave);
            if (r < 0) return leave;
            if (r == 0) return GO_NEXT;
        } else if (!w->json) {
            printf("%s\n", about);
        }
        cJSON *doc = NULL;
        int rc = run_child(w, args, &doc);
        if (rc < 0) return GO_FAIL;
        json_result(json_step(w, step, rc == 0 ? "ok" : "failed"), rc, doc);
        if (rc == 0) return GO_NEXT;
        if (!w->interactive) {
            cli_error("setup: '%s' failed (exit status %d); the config was not written",
                      args[0], rc);
            return GO_FAIL;
        }
        printf("It failed (exit status %d): Enter tries again, b goes back to choose another "
               "model.\n",
               rc);
    }
}

/* The arguments of a child command, NULL-terminated. */
typedef struct args {
    const char *a[24];
    int n;
} args;

static void add_arg(args *b, const char *s)
{
    if (b->n < (int)(sizeof b->a / sizeof b->a[0]) - 1) b->a[b->n++] = s;
    b->a[b->n] = NULL;
}

/* -m MODEL, then -t N when threads are set (0 leaves the command its default). */
static void add_model_args(args *b, const wiz *w, char *t, size_t tsz)
{
    add_arg(b, "-m");
    add_arg(b, w->model);
    if (w->threads > 0) {
        snprintf(t, tsz, "%ld", w->threads);
        add_arg(b, "-t");
        add_arg(b, t);
    }
}

static go step_gen(wiz *w)
{
    char t[24];
    args b = {.n = 0};
    add_arg(&b, "generate");
    add_model_args(&b, w, t, sizeof t);
    const char *rest[] = {"-p", FIRST_PROMPT, "-n", FIRST_N, "--seed", "1"};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) add_arg(&b, rest[i]);
    if (w->json) add_arg(&b, "--json");
    go g = run_step(w, S_GEN, b.a,
                    "The model continues a short prompt, streaming its text, then reports its "
                    "speed in tokens/s.");
    if (g == GO_NEXT && !w->steps[S_GEN]) json_step(w, S_GEN, "skipped");
    return g;
}

static go step_bench(wiz *w)
{
    if (w->no_bench) {
        json_step(w, S_BENCH, "skipped");
        if (!w->json) printf("skipped (--no-bench)\n");
        return GO_NEXT;
    }
    char t[24];
    args b = {.n = 0};
    add_arg(&b, "bench");
    add_model_args(&b, w, t, sizeof t);
    const char *rest[] = {"-p", BENCH_P, "-n", BENCH_N, "-r", BENCH_R};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) add_arg(&b, rest[i]);
    if (w->json) add_arg(&b, "--json");
    go g = run_step(w, S_BENCH, b.a,
                    "llama-bench's tests: ppN processes a prompt of N tokens, tgN generates N "
                    "tokens; tokens/s, and how near generation gets to the ceiling that memory "
                    "bandwidth sets.");
    if (g == GO_NEXT && !w->steps[S_BENCH]) json_step(w, S_BENCH, "skipped");
    return g;
}

/* ---- (6) config ------------------------------------------------------------------------ */

static int write_key(wiz *w, const char *key, const char *text)
{
    char err[BN_CONFIG_ERR_MAX];
    cJSON *v = NULL;
    int rc = bn_config_value_parse(bn_config_find_key(key), text, &v, err, sizeof err);
    if (rc == 0) rc = bn_config_write_key(w->cfg_path, key, v, NULL, err, sizeof err);
    cJSON_Delete(v);
    if (rc) cli_error("setup: %s", err);
    return rc;
}

static go step_save(wiz *w)
{
    char t[32], cur[32];
    snprintf(t, sizeof t, "%ld", w->threads);
    threads_label(w->threads, cur, sizeof cur);
    if (!w->json) printf("  model   = %s\n  threads = %s\n  file:     %s\n", w->model, cur, w->cfg_path);
    if (w->interactive) {
        for (;;) {
            char *a = ask("[Enter] write  [b] back  [q] quit without writing: ");
            if (!a) return GO_QUIT;
            go g = !*a ? GO_NEXT : !strcmp(a, "b") ? GO_BACK : !strcmp(a, "q") ? GO_QUIT : (go)-1;
            free(a);
            if (g == GO_BACK || g == GO_QUIT) return g;
            if (g == GO_NEXT) break;
            printf("  Enter, b or q\n");
        }
    }
    cJSON *o = json_step(w, S_SAVE, "failed");
    if (write_key(w, "model", w->model) || write_key(w, "threads", t)) {
        if (o) cJSON_AddStringToObject(o, "error", cli_last_error());
        return GO_FAIL;
    }
    if (o) {
        cJSON_ReplaceItemInObject(o, "status", cJSON_CreateString("ok"));
        cJSON_AddStringToObject(o, "file", w->cfg_path);
    }
    if (w->json) return GO_NEXT;
    printf("wrote model and threads to %s\n", w->cfg_path);
    if (bn_config_source_of(w->cfg, "model") == BN_CFG_SRC_ENV)
        printf("note: BITNET_MODEL is set and overrides the file's model\n");
    if (bn_config_source_of(w->cfg, "threads") == BN_CFG_SRC_ENV)
        printf("note: BITNET_THREADS is set and overrides the file's threads\n");
    printf("\nNext: bitnet chat (talk with the model), bitnet generate -p TEXT, bitnet tui,\n"
           "bitnet quickstart (a tutorial of the commands on this model), bitnet doctor.\n");
    return GO_NEXT;
}

/* ---- the wizard ------------------------------------------------------------------------ */

static go run_wizard(wiz *w)
{
    static go (*const steps[S_COUNT])(wiz *) = {step_hw,  step_checks, step_model,
                                                step_gen, step_bench,  step_save};
    int step = 0;
    while (step < S_COUNT) {
        header(w, step);
        go g = steps[step](w);
        if (g == GO_FAIL || g == GO_QUIT) return g;
        if (step == S_MODEL && g == GO_NEXT) json_model(w);
        step = g == GO_BACK ? (step > 0 ? step - 1 : 0) : step + 1;
    }
    return GO_NEXT;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, wiz *w)
{
    const char *C = "setup";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_setup_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "-y") || !strcmp(a, "--yes")) {
            w->yes = 1;
        } else if (!strcmp(a, "--json")) {
            w->json = 1;
        } else if (!strcmp(a, "--no-bench")) {
            w->no_bench = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) return cli_usage_error(C, "%s needs a file name", a);
            w->model_arg = v;
            i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!v || cli_parse_long(v, 0, MAX_THREADS, &w->threads))
                return cli_usage_error(C, "%s needs a number from 0 to %d", a, MAX_THREADS);
            w->threads_given = 1;
            i++;
        } else {
            return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    if (w->json && !w->yes) return cli_usage_error(C, "--json does not prompt: add --yes");
    if (!w->yes && !(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)))
        return cli_usage_error(C, "no terminal to prompt on: use --yes (with --model FILE, "
                                  "--threads N) to set up without prompts");
    return -1;
}

/* Loads the config and finds the models on offer. 0, or -1 (printed). */
static int prepare(wiz *w)
{
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(&w->cfg, err, sizeof err)) {
        cli_error("setup: %s (fix the file first: bitnet validate FILE)", err);
        return -1;
    }
    snprintf(w->cfg_path, sizeof w->cfg_path, "%s", bn_config_file(w->cfg));
    if (!w->threads_given) w->threads = (long)bn_config_get_int(w->cfg, "threads");
    const char *m = bn_config_get_str(w->cfg, "model");
    snprintf(w->configured, sizeof w->configured, "%s", m ? m : "");
    const int b = mc_bundled_model(w->bundled, sizeof w->bundled, err, sizeof err);
    if (b < 0) fprintf(stderr, "bitnet setup: bundled model: %s\n", err);
    if (b != 0) w->bundled[0] = '\0';
    if (w->model_arg && bn_config_resolve_path(w->model_arg, NULL, w->given, sizeof w->given)) {
        cli_error("setup: %s: the name is too long", w->model_arg);
        return -1;
    }
    return 0;
}

int cmd_setup(int argc, char **argv)
{
    static wiz w;
    memset(&w, 0, sizeof w);
    int rc = parse_args(argc, argv, &w);
    if (rc >= 0) return rc;
    w.interactive = !w.yes;
    if (prepare(&w) || (!w.interactive && pick_model(&w))) {
        bn_config_free(w.cfg);
        return BN_EXIT_FAIL;
    }
    if (w.interactive) {
        rl_readline_name = "bitnet-setup";
        rl_attempted_completion_function = NULL;
        rl_completion_entry_function = NULL; /* file names */
        printf("bitnet setup: six steps; at each prompt Enter takes the default, b goes back, "
               "q quits.\n");
    }
    go g = run_wizard(&w);
    rc = g == GO_NEXT ? BN_EXIT_OK : BN_EXIT_FAIL;
    if (g == GO_QUIT) printf("setup quit: nothing was written\n");
    if (w.json) {
        cJSON *d = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(d, "steps");
        for (int i = 0; i < S_COUNT; i++)
            if (w.steps[i]) cJSON_AddItemToArray(a, w.steps[i]);
        cJSON_AddStringToObject(d, "config_file", w.cfg_path);
        if (w.model[0])
            cJSON_AddStringToObject(d, "model", w.model);
        else
            cJSON_AddNullToObject(d, "model");
        cJSON_AddNumberToObject(d, "threads", (double)w.threads);
        cJSON_AddBoolToObject(d, "written", rc == BN_EXIT_OK);
        if (cli_print_json(d)) rc = BN_EXIT_FAIL;
    } else {
        for (int i = 0; i < S_COUNT; i++) cJSON_Delete(w.steps[i]);
    }
    bn_config_free(w.cfg);
    return rc;
}
