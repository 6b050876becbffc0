/* cmd_quickstart.c - `bitnet quickstart`: runs generate, bench and doctor on the default
 * model (the configured one, else the bundled one) as children of this same program
 * (self_run.h), capturing what they print, and writes a short markdown tutorial that shows
 * each command with its real output, says what it shows (quoting its numbers, never making
 * one up) and what to try next. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "common/config.h"
#include "common/metrics.h" /* bn_buf */
#include "common/model_common.h"
#include "common/self_run.h"

#define DEFAULT_OUT "bitnet-quickstart.md"
#define GEN_PROMPT  "once upon a time,"
#define GEN_N       "32"
#define GEN_SEED    "42"
#define BENCH_P     "64"
#define BENCH_N     "32"
#define BENCH_R     "3"
#define OUT_MAX     ((size_t)1 << 20) /* bytes of a command's output kept */
#define DOC_MAX     ((size_t)4 << 20) /* bytes of the tutorial */
#define SHOW_HEAD   30                /* lines shown of a long output: the first ... */
#define SHOW_TAIL   8                 /* ... and the last */
#define SHOW_WIDTH  200               /* bytes of a line shown */
#define FACT_MAX    160

enum { C_GEN, C_BENCH, C_DOCTOR, C_COUNT };

typedef struct qs_cmd {
    const char *name;
    const char *args[16];
    char line[2 * MC_PATH_MAX]; /* as typed: "bitnet generate -p ..." */
    sr_result r;
    char *text; /* the output as valid UTF-8 without control characters */
} qs_cmd;

typedef struct qs {
    const char *out_path, *model_arg;
    int json;
    char model[MC_PATH_MAX];
    const char *model_from; /* "-m", "config", "env", "bundled" */
    qs_cmd cmd[C_COUNT];
} qs;

void cmd_quickstart_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet quickstart [-o FILE] [-m MODEL.gguf] [--json]\n\n"
            "A first tour on the default model (the config's, else the bundled one): runs\n"
            "  bitnet generate -p '%s' -n %s --seed %s\n"
            "  bitnet bench -p %s -n %s -r %s\n"
            "  bitnet doctor\n"
            "as they would run at the prompt, shows their output as it comes, and writes a\n"
            "short tutorial in markdown with each command, its real output (long outputs\n"
            "shortened where marked), what it shows, and what to try next.\n\n"
            "Options:\n"
            "  -o, --output FILE  the tutorial (default ./%s; written atomically)\n"
            "  -m, --model FILE   run the commands on this model (they get -m FILE)\n"
            "  --json             no live output: one JSON document {file, written, model,\n"
            "                     model_from, commands: [{name, command, exit_code,\n"
            "                     seconds, output}]}\n"
            "  -h, --help         this help\n\n"
            "Without a model it says how to make one. A failed check of doctor does not\n"
            "fail the quick start; the tutorial shows it.\n"
            "Exit status: 0 the tutorial was written, 1 no model, a command failed or the\n"
            "file cannot be written, 2 usage error.\n",
            GEN_PROMPT, GEN_N, GEN_SEED, BENCH_P, BENCH_N, BENCH_R, DEFAULT_OUT);
}

/* ---- text helpers ---------------------------------------------------------------------- */

/* The output as valid UTF-8 (U+FFFD for bad bytes) with no control characters but
 * newline and tab: a carriage return goes, others become '?'. malloc'ed, or NULL. */
static char *clean_output(const char *s, size_t len)
{
    char *t = mc_utf8_clean(s, len);
    if (!t) return NULL;
    char *w = t;
    for (const char *p = t; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r') continue;
        *w++ = (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    *w = '\0';
    return t;
}

/* The length of the longest run of backticks in s. */
static size_t longest_backticks(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == '`' ? run + 1 : 0;
        if (run > best) best = run;
    }
    return best;
}

/* Bytes of line (len n) to show: at most SHOW_WIDTH, not cutting a UTF-8 character. */
static size_t shown_width(const char *line, size_t n)
{
    if (n <= SHOW_WIDTH) return n;
    size_t w = SHOW_WIDTH;
    while (w > 0 && ((unsigned char)line[w] & 0xC0) == 0x80) w--;
    return w;
}

static void add_line(bn_buf *b, const char *line, size_t n)
{
    size_t w = shown_width(line, n);
    bn_buf_add(b, line, w);
    if (w < n) bn_buf_add(b, " [...]", 6);
    bn_buf_add(b, "\n", 1);
}

/* A fenced block of text: SHOW_HEAD and SHOW_TAIL lines of a long one, long lines cut. */
static void add_block(bn_buf *b, const char *text)
{
    size_t fence = longest_backticks(text) + 1;
    if (fence < 3) fence = 3;
    int n_lines = 0;
    for (const char *p = text; *p; p++) n_lines += *p == '\n' || (p[1] == '\0');
    for (size_t i = 0; i < fence; i++) bn_buf_add(b, "`", 1);
    bn_buf_add(b, "text\n", 5);
    int i = 0;
    for (const char *p = text; *p; i++) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (i < SHOW_HEAD || i >= n_lines - SHOW_TAIL || n_lines <= SHOW_HEAD + SHOW_TAIL)
            add_line(b, p, n);
        else if (i == SHOW_HEAD)
            bn_buf_printf(b, "[... %d lines not shown ...]\n", n_lines - SHOW_HEAD - SHOW_TAIL);
        p += n + (e != NULL);
    }
    for (size_t k = 0; k < fence; k++) bn_buf_add(b, "`", 1);
    bn_buf_add(b, "\n\n", 2);
}

/* The line of text that starts with prefix (after leading spaces), or NULL. */
static const char *line_starting(const char *text, const char *prefix)
{
    for (const char *p = text; p && *p;) {
        const char *q = p + strspn(p, " ");
        if (!strncmp(q, prefix, strlen(prefix))) return q;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

/* Copies from s up to the first of the characters in stop (or the line's end), trimmed. */
static void copy_until(const char *s, const char *stop, char *out, size_t size)
{
    size_t n = strcspn(s, stop);
    size_t nl = strcspn(s, "\n");
    if (nl < n) n = nl;
    while (n > 0 && s[n - 1] == ' ') n--;
    if (n >= size) n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* The cells of a markdown table row "| a | b |" (trimmed) into cells; their count. */
static int row_cells(const char *line, char cells[][FACT_MAX], int max)
{
    if (*line != '|') return 0;
    int n = 0;
    for (const char *p = line + 1; *p && *p != '\n' && n < max;) {
        const char *e = p + strcspn(p, "|\n");
        if (*e != '|') break;
        while (p < e && *p == ' ') p++;
        size_t len = (size_t)(e - p);
        while (len > 0 && p[len - 1] == ' ') len--;
        if (len >= FACT_MAX) len = FACT_MAX - 1;
        memcpy(cells[n], p, len);
        cells[n++][len] = '\0';
        p = e + 1;
    }
    return n;
}

/* The first row of a table in text (from start) whose second cell starts with test: its
 * cells, or 0. */
static int find_row(const char *text, const char *test, char cells[][FACT_MAX], int max)
{
    for (const char *p = text; p && *p;) {
        int n = row_cells(p, cells, max);
        if (n >= 2 && !strncmp(cells[1], test, strlen(test))) return n;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return 0;
}

/* ---- running ---------------------------------------------------------------------------- */

static void build_commands(qs *q)
{
    static const char *const gen[] = {"-p", GEN_PROMPT, "-n", GEN_N, "--seed", GEN_SEED, NULL};
    static const char *const bench[] = {"-p", BENCH_P, "-n", BENCH_N, "-r", BENCH_R, NULL};
    const char *const *rest[C_COUNT] = {gen, bench, NULL};
    static const char *const names[C_COUNT] = {"generate", "bench", "doctor"};
    for (int c = 0; c < C_COUNT; c++) {
        qs_cmd *k = &q->cmd[c];
        int n = 0;
        k->name = names[c];
        k->args[n++] = names[c];
        if (c != C_DOCTOR && q->model_arg) k->args[n++] = "-m", k->args[n++] = q->model;
        for (int i = 0; rest[c] && rest[c][i]; i++) k->args[n++] = rest[c][i];
        k->args[n] = NULL;
        sr_command_line(k->args, k->line, sizeof k->line);
    }
}

/* Runs command c; 0, or -1 when it could not run or failed (printed). */
static int run_command(qs *q, int c)
{
    qs_cmd *k = &q->cmd[c];
    char err[512];
    if (!q->json) printf("$ %s\n", k->line);
    unsigned fl = SR_CAPTURE | SR_MERGE | (q->json ? 0 : SR_ECHO);
    if (sr_run(k->args, fl, OUT_MAX, &k->r, err, sizeof err)) {
        cli_error("quickstart: %s", err);
        return -1;
    }
    if (!q->json) printf("\n");
    if (!(k->text = clean_output(k->r.out, k->r.len))) {
        cli_error("quickstart: out of memory");
        return -1;
    }
    if (k->r.exit_code != 0 && c != C_DOCTOR) {
        char first[FACT_MAX] = "";
        const char *l = line_starting(k->text, "bitnet");
        if (l) copy_until(l, "\n", first, sizeof first);
        cli_error("quickstart: '%s' failed (exit status %d)%s%s", k->line, k->r.exit_code,
                  first[0] ? ": " : "", first);
        return -1;
    }
    return 0;
}

/* ---- the tutorial ------------------------------------------------------------------------- */

static void add_command(bn_buf *b, const qs_cmd *k)
{
    bn_buf_printf(b, "```sh\n$ %s\n```\n\n", k->line);
    if (k->text[0])
        add_block(b, k->text);
    else
        bn_buf_printf(b, "(no output)\n\n");
    if (k->r.truncated) bn_buf_printf(b, "(the output was longer; this is its beginning)\n\n");
}

static void explain_generate(bn_buf *b, const qs_cmd *k)
{
    char pp[FACT_MAX] = "", tg[FACT_MAX] = "";
    const char *l = line_starting(k->text, "prompt: ");
    const char *g = l ? strstr(l, "generation: ") : NULL;
    if (l) copy_until(l, ";\n", pp, sizeof pp);
    if (g) copy_until(g, "(\n", tg, sizeof tg);
    bn_buf_printf(b, "`generate` continues the prompt with the model and writes the new text as it "
                     "is made, on stdout. Then one line on stderr reports the speed");
    if (pp[0] && tg[0])
        bn_buf_printf(b,
                      ": reading the prompt (`%s`) and generating (`%s`), with the kernels, the "
                      "threads, why it stopped, and the memory the weights and the KV cache take",
                      pp, tg);
    bn_buf_printf(
            b,
            ".\n\n`--seed %s` makes the sampling repeatable: the same command writes the same "
            "text. Try another seed, `--temp 0` (always the most likely token), `-n 128` "
            "for a longer text, or `--json` for scripts.\n\n",
            GEN_SEED);
}

static void explain_bench(bn_buf *b, const qs_cmd *k)
{
    char c[8][FACT_MAX], t[8][FACT_MAX];
    bn_buf_printf(b,
                  "`bench` runs llama-bench's tests: `ppN` evaluates a prompt of N tokens in one "
                  "batch, `tgN` generates N tokens one at a time, each repeated %s times after a "
                  "warm-up; the first table gives tokens/s as mean ± standard deviation per "
                  "thread count.",
                  BENCH_R);
    if (find_row(k->text, "tg", t, 8) >= 3 && find_row(k->text, "pp", c, 8) >= 3)
        bn_buf_printf(b, " Here, on %s thread%s: `%s` at %s tokens/s and `%s` at %s tokens/s.",
                      c[0], strcmp(c[0], "1") ? "s" : "", c[1], c[2], t[1], t[2]);
    bn_buf_printf(b,
                  "\n\nGenerating a token reads every weight once, so memory bandwidth sets a "
                  "ceiling: the second table divides the read bandwidth measured in the same run "
                  "by the bytes one token reads.");
    const char *ceil = strstr(k->text, "generation ceiling");
    if (ceil && find_row(ceil, "tg", t, 8) >= 7)
        bn_buf_printf(b,
                      " Here `%s` on %s thread%s could reach %s tokens/s and reached %s of that.",
                      t[1], t[0], strcmp(t[0], "1") ? "s" : "", t[4], t[6]);
    bn_buf_printf(b,
                  "\n\nTry `bitnet bench -t 1,2,4` to see how the threads scale, `-p 512 -n 128` "
                  "for llama-bench's usual sizes, or `bitnet bench kernels` for the kernels "
                  "alone.\n\n");
}

static void explain_doctor(bn_buf *b, const qs_cmd *k)
{
    char sum[FACT_MAX] = "", names[512] = "";
    const char *s = line_starting(k->text, "summary: ");
    if (s) copy_until(s, "\n", sum, sizeof sum);
    for (const char *p = k->text; p && *p;) {
        if (!strncmp(p, "WARN  ", 6) || !strncmp(p, "FAIL  ", 6)) {
            char name[64];
            copy_until(p + 6, " \n", name, sizeof name);
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, "%s`%s`", n ? ", " : "", name);
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    bn_buf_printf(b, "`doctor` checks the environment: the libraries, the config file, the config "
                     "and data directories, free disk, memory, the CPU's SIMD support, GPUs, the "
                     "models (sha256 of the bundled one) and a short kernel benchmark against the "
                     "memory bandwidth. Each check is PASS, WARN or FAIL; what is not a PASS comes "
                     "with a hint.");
    if (sum[0]) bn_buf_printf(b, " Here: `%s`", sum);
    if (names[0]) bn_buf_printf(b, "; the hints above say what to do about %s", names);
    bn_buf_printf(b,
                  "%s\n\n`bitnet doctor --json` gives the same for scripts; `--quick` skips the "
                  "benchmark and the checksums.\n\n",
                  sum[0] ? "." : "");
}

static const char *model_source(const qs *q)
{
    if (!strcmp(q->model_from, "-m")) return "given with `-m`; the commands get it with `-m`";
    if (!strcmp(q->model_from, "env"))
        return "set by `BITNET_MODEL`; the commands name no model, so they use it";
    if (!strcmp(q->model_from, "config"))
        return "the config's `model`; the commands name no model, so they use it";
    return "the model bundled with bitnet, the default while no model is configured; the "
           "commands name no model, so they use it";
}

static void add_next(bn_buf *b)
{
    const char *h = getenv("BITNET_HISTORY");
    bn_buf_printf(b, "## What to try next\n\n"
                     "- `bitnet chat` - a conversation with the model at a readline prompt "
                     "(`/help` lists its commands).\n"
                     "- `bitnet perplexity -f FILE` - how well the model predicts a text file "
                     "(lower is better).\n"
                     "- `bitnet tui` - the full-screen terminal UI: dashboard, setup wizard, chat, "
                     "benchmarks, history.\n");
    if (h && !strcmp(h, "0"))
        bn_buf_printf(b, "- `bitnet history list` - the run history (recording was off for these "
                         "runs: `BITNET_HISTORY=0`).\n");
    else
        bn_buf_printf(b,
                      "- `bitnet history list` - the three runs above were recorded in the local "
                      "history; `bitnet history show ID` gives one in full.\n");
    bn_buf_printf(b, "- `bitnet setup` - the wizard that checks a model and writes it, and the "
                     "threads, to the config file.\n"
                     "- `man bitnet` - every command and option.\n");
}

static char *tutorial(const qs *q)
{
    bn_buf b;
    bn_buf_init(&b, DOC_MAX);
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, " on %Y-%m-%d at %H:%M", &tm);
    bn_buf_printf(&b,
                  "# bitnet quick start\n\n"
                  "`bitnet quickstart` wrote this page%s from three commands it had just run on "
                  "this machine. Every output below is theirs, shortened only where it says so.\n\n"
                  "The model: `%s` (%s; `-m FILE` picks another).\n\n",
                  when, q->model, model_source(q));
    static const char *const titles[C_COUNT] = {"Generate text", "Benchmark the model",
                                                "Check the environment"};
    static void (*const explain[C_COUNT])(bn_buf *, const qs_cmd *) = {
            explain_generate, explain_bench, explain_doctor};
    for (int c = 0; c < C_COUNT; c++) {
        bn_buf_printf(&b, "## %d. %s\n\n", c + 1, titles[c]);
        add_command(&b, &q->cmd[c]);
        explain[c](&b, &q->cmd[c]);
    }
    add_next(&b);
    return bn_buf_detach(&b, NULL); /* NULL when past DOC_MAX or out of memory */
}

/* Whether the tutorial's directory takes a new file: 0, or -1 (printed). */
static int check_output_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) == 0) return 0;
    cli_error("quickstart: cannot write the tutorial: %s: %s", dir, strerror(errno));
    return -1;
}

/* ---- the command ------------------------------------------------------------------------- */

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, qs *q)
{
    const char *C = "quickstart";
    q->out_path = DEFAULT_OUT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_quickstart_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            q->json = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "-m") ||
                   !strcmp(a, "--model")) {
            if (!v || !*v) return cli_usage_error(C, "%s needs a file name", a);
            if (a[1] == 'o' || a[2] == 'o')
                q->out_path = v;
            else
                q->model_arg = v;
            i++;
        } else {
            return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    return -1;
}

/* Finds the model as the commands will: -m, the config (or BITNET_MODEL), the bundled one.
 * 0, or -1 after one line saying why there is none. */
static int find_model(qs *q)
{
    char err[BN_CONFIG_ERR_MAX];
    bn_config *cfg = NULL;
    const char *how = "make one with 'bitnet synth --shape tiny -o m.gguf', then 'bitnet "
                      "config set model m.gguf'";
    if (q->model_arg) {
        snprintf(q->model, sizeof q->model, "%s", q->model_arg);
        q->model_from = "-m";
    } else if (bn_config_load(&cfg, err, sizeof err)) {
        cli_error("quickstart: %s", err);
        return -1;
    } else {
        const char *m = bn_config_get_str(cfg, "model");
        if (m && *m) {
            snprintf(q->model, sizeof q->model, "%s", m);
            q->model_from = bn_config_source_of(cfg, "model") == BN_CFG_SRC_ENV ? "env" : "config";
        }
        bn_config_free(cfg);
    }
    if (!q->model_from) {
        int r = mc_bundled_model(q->model, sizeof q->model, err, sizeof err);
        if (r != 0) {
            cli_error("quickstart: no model: %s; %s",
                      r < 0 ? err : "none configured and none bundled", how);
            return -1;
        }
        q->model_from = "bundled";
    }
    struct stat st;
    if (stat(q->model, &st) != 0 || !S_ISREG(st.st_mode)) {
        cli_error("quickstart: no model: %s (%s) is not a file; %s", q->model,
                  !strcmp(q->model_from, "env") ? "BITNET_MODEL" : q->model_from, how);
        return -1;
    }
    return 0;
}

static int print_json(const qs *q, int written)
{
    cJSON *d = cJSON_CreateObject(), *a;
    cJSON_AddStringToObject(d, "file", q->out_path);
    cJSON_AddBoolToObject(d, "written", written);
    cJSON_AddStringToObject(d, "model", q->model);
    cJSON_AddStringToObject(d, "model_from", q->model_from);
    a = cJSON_AddArrayToObject(d, "commands");
    for (int c = 0; c < C_COUNT; c++) {
        const qs_cmd *k = &q->cmd[c];
        if (!k->text) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", k->name);
        cJSON_AddStringToObject(o, "command", k->line);
        cJSON_AddNumberToObject(o, "exit_code", k->r.exit_code);
        cJSON_AddNumberToObject(o, "seconds", k->r.seconds);
        cJSON_AddStringToObject(o, "output", k->text);
        cJSON_AddBoolToObject(o, "truncated", k->r.truncated);
        cJSON_AddItemToArray(a, o);
    }
    return cli_print_json(d);
}

static void release(qs *q)
{
    for (int c = 0; c < C_COUNT; c++) {
        sr_result_release(&q->cmd[c].r);
        free(q->cmd[c].text);
    }
}

int cmd_quickstart(int argc, char **argv)
{
    static qs q;
    memset(&q, 0, sizeof q);
    int rc = parse_args(argc, argv, &q);
    if (rc >= 0) return rc;
    if (find_model(&q) || check_output_dir(q.out_path)) return BN_EXIT_FAIL;
    build_commands(&q);
    rc = BN_EXIT_OK;
    for (int c = 0; c < C_COUNT && rc == BN_EXIT_OK; c++)
        if (run_command(&q, c)) rc = BN_EXIT_FAIL;
    char *doc = rc == BN_EXIT_OK ? tutorial(&q) : NULL;
    char err[PATH_MAX + 128];
    if (rc == BN_EXIT_OK && !doc) {
        cli_error("quickstart: out of memory");
        rc = BN_EXIT_FAIL;
    } else if (rc == BN_EXIT_OK && /* temporary + rename; a new file 0644 */
               bn_file_write_atomic(q.out_path, doc, strlen(doc), 0644, err, sizeof err) != BN_OK) {
        cli_error("quickstart: cannot write the tutorial: %s", err);
        rc = BN_EXIT_FAIL;
    }
    free(doc);
    if (q.json) {
        if (print_json(&q, rc == BN_EXIT_OK)) rc = BN_EXIT_FAIL;
    } else if (rc == BN_EXIT_OK) {
        printf("wrote %s: these three commands with their output, what they show, and what "
               "to try next\n",
               q.out_path);
    } else {
        printf("no tutorial written\n");
    }
    release(&q);
    return rc;
}
