/*
 * cmd_chat.c - `bitnet chat`: a conversation with a model.
 *
 * On a terminal, lines are read with GNU readline (editing, and a history kept in
 * <data dir>/chat_history); otherwise one message per line of standard input, so that
 * the command can be scripted. Replies stream to standard output.
 *
 * The conversation lives in one KV cache: each turn evaluates only its own tokens (the
 * end of the previous reply, the new message in the chat format, the opening of the
 * reply) and generation continues from there. The formats (2b4t, llama3, chatml, plain),
 * chosen from tokenizer.chat_template, are those of chat_format.h, shared with the TUI.
 * A reply ends at an end-of-generation token, after -n tokens, on Ctrl-C, or when the
 * context is full. A turn that does not fit in what is left of the context starts the
 * conversation over (the system prompt is kept; earlier turns are forgotten), and says so.
 */
#include "commands.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "bitnet/sample.h"
#include "common/chat_format.h"
#include "common/config.h"
#include "common/history.h"
#include "common/model_common.h"

#define DEFAULT_N       256
#define DEFAULT_N_CTX   4096
#define HISTORY_LINES   1000
#define MAX_INPUT_BYTES (1 << 20)

/* ---- options ------------------------------------------------------------------------------ */

typedef struct chat_opts {
    mc_opts mc;
    mc_sampling smp;
    long n_predict;
    const char *system, *json_log;
} chat_opts;

void cmd_chat_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet chat [-m MODEL.gguf] [options]\n\n"
            "A conversation with the model. On a terminal: line editing and history (kept in\n"
            "the data directory, file chat_history); otherwise one message per line of\n"
            "standard input, each reply written to standard output followed by a newline.\n"
            "The chat format comes from the model's chat template: 2b4t (\"User: ...<|eot_id|>"
            "\n"
            "Assistant: \"), llama3 or chatml; without a template (or with one we do not know)\n"
            "the plain format \"User: ...\\nAssistant:\" is used, where a reply ends at its\n"
            "first line break. The conversation stays in the KV cache; when a turn does not fit\n"
            "in the context, the conversation starts over (keeping the system prompt).\n\n"
            "Options:\n" MC_OPTS_HELP
            "  -c, --ctx N       context size in tokens (default: the model's, at most %d)\n"
            "  -n, --n-predict N at most N tokens per reply (default %d)\n"
            "  --system TEXT     a system prompt\n"
            "  --json-log FILE   append one JSON line per turn to FILE (user, reply, tokens,\n"
            "                    tokens/s, stop reason)\n" MC_SAMPLING_HELP
            "  -h, --help        this help\n\n"
            "Commands: /reset (forget the conversation), /quit, /help. Ctrl-D quits; Ctrl-C\n"
            "stops the reply being written. Options not given take their defaults from the\n"
            "config file (bitnet-config(5)); without -m and a configured model, the bundled\n"
            "model is used.\n"
            "Exit status: 0 ok, 1 the model cannot be used, 2 usage error.\n",
            DEFAULT_N_CTX, DEFAULT_N);
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, chat_opts *o)
{
    const char *C = "chat";
    mc_sampling_init(&o->smp);
    o->n_predict = DEFAULT_N;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
        if (r == 0) r = mc_parse_sampling_opt(C, argc, argv, &i, &o->smp);
        if (r < 0) return BN_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_chat_help(stdout);
            return BN_EXIT_OK;
        }
        if (strcmp(a, "-n") && strcmp(a, "--n-predict") && strcmp(a, "--system") &&
            strcmp(a, "--json-log"))
            return cli_usage_error(C, "unknown option '%s'", a);
        if (!v) return cli_usage_error(C, "%s needs a value", a);
        if (!strcmp(a, "--system"))
            o->system = v;
        else if (!strcmp(a, "--json-log"))
            o->json_log = v;
        else if (cli_parse_long(v, 1, BN_MODEL_MAX_CTX, &o->n_predict))
            return cli_usage_error(C, "%s: '%s' is not a positive number", a, v);
        i++;
    }
    return mc_apply_defaults(C, MC_DEF_THREADS | MC_DEF_CTX, &o->mc, &o->smp);
}

/* ---- the conversation --------------------------------------------------------------------- */

/* The names of the stop reasons (cm_stop) in the JSON log. */
static const char *const g_stop_names[] = {"eos",     "length",      "context",
                                           "newline", "interrupted", "error"};

typedef struct chat {
    const chat_opts *o;
    mc_session s;
    const bn_chat_format *fmt;
    int64_t n_ctx;
    int closed;  /* the last reply ended by itself (no reply_end needed) */
    char *reply; /* the text of the reply being written */
    size_t reply_len, reply_cap;
    FILE *log;
    int tty;
    /* totals */
    long turns;
    size_t gen_tokens, gen_evals, prompt_tokens;
    double gen_s, prompt_s;
} chat;

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* A growing text buffer; 0 or -1 (out of memory). */
static int buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1) nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb) return -1;
        *b = nb, *cap = nc;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
    return 0;
}

/* Whether the session holds a conversation (its last reply's final token is not evaluated
 * yet: the next turn starts with it). */
static int started(const chat *c)
{
    return cm_session_n_tokens(c->s.sess) > 0;
}

/* The tokens of a turn into *ids (bn_free). */
static bn_status turn_tokens(const chat *c, const char *msg, int32_t **ids, size_t *n)
{
    size_t len;
    const int on = started(c);
    char *text = bn_chat_turn_text(c->fmt, on && !c->closed, on ? NULL : c->o->system, msg, &len);
    if (!text) return BN_ERR_NOMEM;
    unsigned fl = BN_TOKENIZE_PARSE_SPECIAL;
    if (!on && bn_tokenizer_add_bos(c->s.tok) && bn_tokenizer_bos(c->s.tok) >= 0)
        fl |= BN_TOKENIZE_ADD_BOS;
    bn_status rc = bn_tokenizer_encode_alloc(c->s.tok, text, len, fl, ids, n);
    free(text);
    return rc;
}

/* Forgets the conversation. */
static void chat_reset(chat *c)
{
    cm_session_reset(c->s.sess);
    c->closed = 1;
}

/* Tokenizes the turn, starting over when it does not fit, and adds it to the session. 0 to
 * generate, 1 to skip the turn (said why). */
static int feed_turn(chat *c, const char *msg)
{
    int32_t *ids = NULL;
    size_t n = 0;
    bn_status rc = turn_tokens(c, msg, &ids, &n);
    const size_t held = cm_session_n_tokens(c->s.sess);
    if (rc == BN_OK && started(c) && (int64_t)(held + n) + 1 > c->n_ctx) {
        bn_free(ids);
        ids = NULL;
        fprintf(stderr, "[the context of %lld tokens is full: starting over%s]\n",
                (long long)c->n_ctx, c->o->system ? " with the system prompt" : "");
        chat_reset(c);
        rc = turn_tokens(c, msg, &ids, &n);
    }
    if (rc == BN_OK && (int64_t)n + 1 > c->n_ctx) {
        bn_free(ids);
        fprintf(stderr, "[the message of %zu tokens does not fit the context of %lld (--ctx)]\n", n,
                (long long)c->n_ctx);
        return 1;
    }
    if (rc == BN_OK) rc = cm_session_append(c->s.sess, ids, n);
    bn_free(ids);
    if (rc != BN_OK) {
        fprintf(stderr, "[cannot tokenize the message: %s]\n", bn_status_str(rc));
        return 1;
    }
    return 0;
}

/* Writes a piece of the reply: leading blanks are dropped; with line_reply, the text
 * stops at a line break (returns 1 then). */
static int emit(chat *c, const char *p, size_t len)
{
    size_t b = 0;
    if (c->reply_len == 0)
        while (b < len && strchr(" \t\r\n", p[b])) b++;
    size_t e = b;
    while (e < len && !(c->fmt->line_reply && p[e] == '\n')) e++;
    if (e > b) {
        fwrite(p + b, 1, e - b, stdout);
        fflush(stdout);
        if (buf_add(&c->reply, &c->reply_len, &c->reply_cap, p + b, e - b)) return -1;
    }
    return e < len;
}

static int on_piece(void *ud, int32_t id, const char *piece, size_t len, const cm_result *r)
{
    (void)id, (void)r;
    const int e = piece ? emit(ud, piece, len) : 0;
    return e < 0 ? CM_FAIL : e > 0 ? CM_STOP : CM_GO;
}

static int interrupted(void *ud)
{
    (void)ud;
    return g_interrupted != 0;
}

/* Evaluates the turn and samples the reply, token by token. 0, or -1 on an error. */
static int generate_reply(chat *c, cm_result *r)
{
    c->reply_len = 0;
    cm_gen g = {.n_predict = c->o->n_predict, .ud = c};
    g.on_token = on_piece, g.cancelled = interrupted;
    if (cm_session_generate(c->s.sess, &g, r) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(c->s.ctx));
        return -1;
    }
    if (r->stop == CM_STOP_ERROR) {
        cli_error("out of memory");
        return -1;
    }
    c->closed = r->stop == CM_STOP_EOG || r->stop == CM_STOP_STRING;
    return 0;
}

static void log_turn(chat *c, const char *msg, size_t n_prompt, size_t n_gen, double tps,
                     cm_stop why)
{
    if (!c->log) return;
    cJSON *d = cJSON_CreateObject();
    char *u = mc_utf8_clean(msg, strlen(msg));
    char *r = mc_utf8_clean(c->reply ? c->reply : "", c->reply_len);
    if (d && u && r) {
        cJSON_AddNumberToObject(d, "turn", (double)c->turns);
        cJSON_AddStringToObject(d, "user", u);
        cJSON_AddStringToObject(d, "reply", r);
        cJSON_AddNumberToObject(d, "prompt_tokens", (double)n_prompt);
        cJSON_AddNumberToObject(d, "reply_tokens", (double)n_gen);
        cJSON_AddNumberToObject(d, "tokens_per_s", tps);
        cJSON_AddStringToObject(d, "stop", g_stop_names[why]);
        cJSON_AddNumberToObject(d, "context_used", (double)bn_model_state_pos(c->s.st));
        char *line = cJSON_PrintUnformatted(d);
        if (line) fprintf(c->log, "%s\n", line);
        fflush(c->log);
        free(line);
    }
    cJSON_Delete(d);
    free(u);
    free(r);
}

/* One message and its reply. 0, or -1 on an engine error. */
static int chat_turn(chat *c, const char *msg)
{
    g_interrupted = 0;
    if (feed_turn(c, msg)) return 0;
    cm_result r;
    const int rc = generate_reply(c, &r);
    c->prompt_tokens += r.n_prompt;
    c->prompt_s += r.prompt_s;
    if (rc) return -1;
    fputc('\n', stdout);
    fflush(stdout);
    c->turns++;
    c->gen_tokens += r.n_gen;
    c->gen_evals += r.n_evals;
    c->gen_s += r.gen_s;
    const double tps = cm_result_gen_tps(&r);
    if (r.stop == CM_STOP_CANCELLED) fprintf(stderr, "[reply stopped]\n");
    if (r.stop == CM_STOP_CONTEXT) fprintf(stderr, "[the context is full]\n");
    if (c->tty)
        fprintf(stderr, "[%zu tokens, %.1f tokens/s, context %lld/%lld]\n", r.n_gen, tps,
                (long long)bn_model_state_pos(c->s.st), (long long)c->n_ctx);
    log_turn(c, msg, r.n_prompt, r.n_gen, tps, r.stop);
    return 0;
}

/* ---- input -------------------------------------------------------------------------------- */

/* Called by readline when a signal interrupted its read: Ctrl-C clears the line. */
static int on_signal_event(void)
{
    if (g_interrupted) {
        g_interrupted = 0;
        rl_replace_line("", 0);
        rl_crlf();
        rl_on_new_line();
        rl_redisplay();
    }
    return 0;
}

/* The next line (malloc'ed, no newline), or NULL at the end of input. */
static char *read_message(const chat *c)
{
    if (c->tty) return readline("> ");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    return line;
}

static void print_commands(void)
{
    fprintf(stderr, "/reset  forget the conversation (the system prompt stays)\n"
                    "/quit   leave (also Ctrl-D)\n"
                    "/help   this list\n"
                    "Ctrl-C stops the reply being written.\n");
}

/* 1 when the line was a command (done), 2 for /quit, 0 for a message. */
static int command(chat *c, const char *line)
{
    if (line[0] != '/') return 0;
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) return 2;
    if (!strcmp(line, "/reset")) {
        chat_reset(c);
        fprintf(stderr, "[conversation reset]\n");
    } else if (!strcmp(line, "/help")) {
        print_commands();
    } else {
        fprintf(stderr, "[unknown command %s: /help lists them]\n", line);
    }
    return 1;
}

/* <data dir>/chat_history into path; 0 or -1 (no history then). */
static int history_file(char *path, size_t size)
{
    bn_config *cfg;
    char err[BN_CONFIG_ERR_MAX], dir[BN_CONFIG_PATH_MAX];
    if (bn_config_load(&cfg, err, sizeof err) != 0) return -1;
    int rc = bn_data_dir_ensure(cfg, dir, sizeof dir, err, sizeof err);
    bn_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "bitnet: no chat history: %s\n", err);
        return -1;
    }
    rc = snprintf(path, size, "%s/chat_history", dir);
    return rc > 0 && (size_t)rc < size ? 0 : -1;
}

static int chat_loop(chat *c)
{
    char hist[BN_CONFIG_PATH_MAX];
    const int have_hist = c->tty && history_file(hist, sizeof hist) == 0;
    if (have_hist) {
        stifle_history(HISTORY_LINES);
        read_history(hist);
    }
    int rc = 0;
    for (char *line; rc == 0 && (line = read_message(c)) != NULL; free(line)) {
        if (!line[0]) continue;
        if (strlen(line) > MAX_INPUT_BYTES) {
            fprintf(stderr, "[a message is at most %d bytes]\n", MAX_INPUT_BYTES);
            continue;
        }
        if (c->tty) add_history(line);
        const int cmd = command(c, line);
        if (cmd == 2) {
            free(line);
            break;
        }
        if (cmd == 0 && chat_turn(c, line) < 0) rc = -1;
    }
    if (have_hist) {
        if (write_history(hist) != 0) fprintf(stderr, "bitnet: cannot write %s\n", hist);
        history_truncate_file(hist, HISTORY_LINES);
    }
    return rc;
}

/* ---- the command -------------------------------------------------------------------------- */

static int chat_open(chat *c, const chat_opts *o)
{
    memset(c, 0, sizeof *c);
    c->o = o;
    c->closed = 1;
    c->tty = isatty(STDIN_FILENO);
    if (o->json_log && !(c->log = fopen(o->json_log, "a"))) {
        cli_error("cannot open %s: %s", o->json_log, strerror(errno));
        return BN_EXIT_FAIL;
    }
    int rc = mc_open(&o->mc, DEFAULT_N_CTX, &c->s);
    if (rc != BN_EXIT_OK) return rc;
    c->n_ctx = cm_session_n_ctx(c->s.sess);
    if (cm_session_set_sampler(c->s.sess, &o->smp.sp) != BN_OK) {
        cli_error("cannot set up sampling: bad settings");
        return BN_EXIT_FAIL;
    }
    const char *why;
    c->fmt = bn_chat_format_for(bn_tokenizer_chat_template(c->s.tok), &why);
    fprintf(stderr, "chat: %s; format %s (%s); context %lld tokens\n", o->mc.model, c->fmt->name,
            why, (long long)c->n_ctx);
    if (c->tty) fprintf(stderr, "/help lists the commands; Ctrl-D quits.\n");
    return BN_EXIT_OK;
}

static void chat_close(chat *c)
{
    if (c->log) fclose(c->log);
    free(c->reply);
    if (c->s.ctx) mc_close(&c->s);
}

static void record(const chat *c, cm_hist_run *h)
{
    const double tps = c->gen_s > 0 ? (double)c->gen_evals / c->gen_s : 0.0;
    cm_hist_metric(h, "turns", (double)c->turns);
    cm_hist_metric(h, "tokens", (double)c->gen_tokens);
    cm_hist_metric(h, "prompt_tokens", (double)c->prompt_tokens);
    cm_hist_metric(h, "tokens_per_s", tps);
    cm_hist_metric(h, "prompt_tokens_per_s",
                   c->prompt_s > 0 ? (double)c->prompt_tokens / c->prompt_s : 0);
    if (c->s.ctx) {
        cm_hist_metric(h, "load_seconds", c->s.load_seconds);
        cm_hist_metric(h, "threads", bn_ctx_n_threads(c->s.ctx));
    }
    if (c->fmt) cm_hist_metric_str(h, "format", c->fmt->name);
    if (c->turns)
        fprintf(stderr, "chat: %ld turn%s, %zu tokens generated, %.2f tokens/s\n", c->turns,
                c->turns == 1 ? "" : "s", c->gen_tokens, tps);
}

int cmd_chat(int argc, char **argv)
{
    chat_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    cm_hist_run *h = cm_hist_begin("chat", o.mc.model, cm_hist_params_argv(argc, argv));
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    rl_signal_event_hook = on_signal_event;
    chat c;
    rc = chat_open(&c, &o);
    if (rc == BN_EXIT_OK && chat_loop(&c) != 0) rc = BN_EXIT_FAIL;
    record(&c, h);
    cm_hist_end_exit(h, rc, NULL, cli_last_error());
    chat_close(&c);
    sigaction(SIGINT, &old, NULL);
    return rc;
}
