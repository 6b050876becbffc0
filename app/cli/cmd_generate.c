/* cmd_generate.c - `bitnet generate`: continue a prompt with a model, streaming the text,
 * and report prompt and generation speed. */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/sample.h"
#include "common/history.h"
#include "common/model_common.h"

#define DEFAULT_N     128
#define DEFAULT_N_CTX 4096

void cmd_generate_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet generate [-m MODEL.gguf] -p TEXT [options]\n\n"
            "Continues TEXT with the model, writing the new text to stdout as it is made,\n"
            "then prints prompt and generation speed (tokens/s) to stderr. Stops after -n\n"
            "tokens, at an end-of-generation token, or when the context is full.\n\n"
            "Options:\n" MC_OPTS_HELP
            "  -p, --prompt TEXT the prompt (special tokens such as <|eot_id|> are parsed)\n"
            "  -f, --file FILE   read the prompt from FILE (- for stdin; at most 64 MiB)\n"
            "  -n, --n-predict N tokens to generate (default %d)\n"
            "  -c, --ctx N       context size in tokens (default: the model's, at most "
            "%d)\n" MC_SAMPLING_HELP "  --ignore-eos      do not stop at end-of-generation tokens\n"
            "  --json            no streaming: one JSON document with the text and timings\n"
            "  -h, --help        this help\n\n"
            "Options not given take their defaults from the config file (bitnet-config(5):\n"
            "model, threads, ctx, temp, top_k, top_p, min_p, repeat_penalty, seed); without\n"
            "-m and a configured model, the bundled model is used. --json prints the seed.\n"
            "Exit status: 0 ok, 1 the model cannot be used or the prompt does not fit,\n"
            "2 usage error.\n",
            DEFAULT_N, DEFAULT_N_CTX);
}

typedef struct gen_opts {
    mc_opts mc;
    const char *prompt, *file;
    long n_predict;
    mc_sampling smp;
    int json, ignore_eos;
} gen_opts;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, gen_opts *o)
{
    const char *C = "generate";
    mc_sampling_init(&o->smp);
    o->n_predict = DEFAULT_N;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
        if (r == 0) r = mc_parse_sampling_opt(C, argc, argv, &i, &o->smp);
        if (r < 0) return BN_EXIT_USAGE;
        if (r > 0) continue;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_generate_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = 1;
            continue;
        }
        const int takes_value = !strcmp(a, "-p") || !strcmp(a, "--prompt") || !strcmp(a, "-f") ||
                                !strcmp(a, "--file") || !strcmp(a, "-n") ||
                                !strcmp(a, "--n-predict");
        if (!takes_value) return cli_usage_error(C, "unknown option '%s'", a);
        if (!v) return cli_usage_error(C, "%s needs a value", a);
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            o->file = v;
        else
            bad = cli_parse_long(v, 0, BN_MODEL_MAX_CTX, &o->n_predict);
        if (bad) return cli_usage_error(C, "%s: bad value '%s'", a, v);
        i++;
    }
    if (!o->prompt && !o->file) return cli_usage_error(C, "missing -p TEXT (or -f FILE)");
    if (o->prompt && o->file) return cli_usage_error(C, "give -p or -f, not both");
    return mc_apply_defaults(C, MC_DEF_THREADS | MC_DEF_CTX, &o->mc, &o->smp);
}

/* Writes the text of each token as it comes (not with --json). */
static int stream_piece(void *ud, int32_t id, const char *piece, size_t len, const cm_result *r)
{
    const gen_opts *o = ud;
    (void)id, (void)r;
    if (o->json) return CM_GO;
    if (piece && len) fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return CM_GO;
}

static int run_generation(const gen_opts *o, mc_session *s, cm_result *r)
{
    if (cm_session_set_sampler(s->sess, &o->smp.sp) != BN_OK) {
        cli_error("cannot set up sampling: bad settings");
        return BN_EXIT_FAIL;
    }
    cm_gen g = {.n_predict = o->n_predict, .ignore_eog = o->ignore_eos};
    g.on_token = stream_piece, g.ud = (void *)o;
    if (cm_session_generate(s->sess, &g, r) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(s->ctx));
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

static int report(const gen_opts *o, mc_session *s, const cm_result *r, cm_hist_run *h)
{
    const double pp = cm_result_prompt_tps(r), tg = cm_result_gen_tps(r);
    const char *stop = cm_stop_name(r->stop);
    cm_hist_metric(h, "prompt_tokens", (double)r->n_prompt);
    cm_hist_metric(h, "generated_tokens", (double)r->n_gen);
    cm_hist_metric(h, "prompt_tokens_per_s", pp);
    cm_hist_metric(h, "gen_tokens_per_s", tg);
    cm_hist_metric(h, "load_seconds", s->load_seconds);
    cm_hist_metric(h, "threads", bn_ctx_n_threads(s->ctx));
    cm_hist_metric_str(h, "kernels", mc_kernels_name());
    cm_hist_metric_str(h, "stop_reason", stop);
    if (!o->json) {
        printf("\n");
        fflush(stdout);
        fprintf(stderr,
                "prompt: %zu tokens in %.3f s, %.2f tokens/s; generation: %zu tokens, %.2f "
                "tokens/s (%s, %d threads, stop: %s; weights %.0f MB, KV cache %.0f MB)\n",
                r->n_prompt, r->prompt_s, pp, r->n_gen, tg, mc_kernels_name(),
                bn_ctx_n_threads(s->ctx), stop, (double)bn_model_weight_bytes(s->model) / 1e6,
                (double)bn_model_state_kv_bytes(s->st) / 1e6);
        return BN_EXIT_OK;
    }
    char *text = NULL, *clean = NULL;
    size_t len = 0;
    const int32_t *gen = cm_session_tokens(s->sess) + r->n_prompt;
    if (bn_tokenizer_decode_alloc(s->tok, gen, r->n_gen, 0, &text, &len) == BN_OK)
        clean = mc_utf8_clean(text, len);
    bn_free(text);
    cJSON *d = cJSON_CreateObject();
    if (!clean || !d) {
        free(clean);
        cJSON_Delete(d);
        cli_error("out of memory while writing JSON");
        return BN_EXIT_FAIL;
    }
    cJSON_AddStringToObject(d, "text", clean);
    free(clean);
    cJSON_AddNumberToObject(d, "prompt_tokens", (double)r->n_prompt);
    cJSON_AddNumberToObject(d, "generated_tokens", (double)r->n_gen);
    cJSON_AddNumberToObject(d, "prompt_tokens_per_s", pp);
    cJSON_AddNumberToObject(d, "gen_tokens_per_s", tg);
    cJSON_AddNumberToObject(d, "prompt_seconds", r->prompt_s);
    cJSON_AddNumberToObject(d, "gen_seconds", r->gen_s);
    cJSON_AddNumberToObject(d, "load_seconds", s->load_seconds);
    cJSON_AddStringToObject(d, "stop_reason", stop);
    cJSON_AddNumberToObject(d, "seed", (double)o->smp.sp.seed);
    cJSON_AddNumberToObject(d, "threads", bn_ctx_n_threads(s->ctx));
    cJSON_AddNumberToObject(d, "n_ctx", (double)bn_model_state_n_ctx(s->st));
    cJSON_AddStringToObject(d, "kernels", mc_kernels_name());
    cJSON_AddNumberToObject(d, "weight_bytes", (double)bn_model_weight_bytes(s->model));
    cJSON_AddNumberToObject(d, "kv_cache_bytes", (double)bn_model_state_kv_bytes(s->st));
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* Tokenizes the prompt into the session. */
static int tokenize_prompt(mc_session *s, const char *text, size_t len)
{
    size_t n;
    const unsigned fl = BN_TOKENIZE_ADD_SPECIAL | BN_TOKENIZE_PARSE_SPECIAL;
    bn_status st = cm_session_tokenize(s->sess, text, len, fl, &n);
    if (st != BN_OK) {
        cli_error("cannot tokenize the prompt: %s", bn_status_str(st));
        return BN_EXIT_FAIL;
    }
    const int64_t n_ctx = bn_model_state_n_ctx(s->st);
    if (n == 0) {
        cli_error("the prompt is empty (no tokens)");
        return BN_EXIT_FAIL;
    }
    if ((int64_t)n > n_ctx) {
        cli_error("the prompt of %zu tokens does not fit the context of %lld tokens (--ctx)", n,
                  (long long)n_ctx);
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

int cmd_generate(int argc, char **argv)
{
    gen_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    cJSON *hp = cm_hist_params_argv(argc, argv);
    cJSON_AddNumberToObject(hp, "seed", (double)o.smp.sp.seed);
    cm_hist_run *h = cm_hist_begin("generate", o.mc.model, hp);
    char *filetext = NULL;
    size_t len = 0;
    if (o.file && !(filetext = mc_read_prompt(o.file, &len))) {
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    const char *text = filetext ? filetext : o.prompt;
    if (!filetext) len = strlen(text);
    mc_session s;
    memset(&s, 0, sizeof s);
    cm_result r;
    rc = mc_open(&o.mc, DEFAULT_N_CTX, &s);
    if (rc == BN_EXIT_OK) rc = tokenize_prompt(&s, text, len);
    if (rc == BN_EXIT_OK) rc = run_generation(&o, &s, &r);
    if (rc == BN_EXIT_OK) rc = report(&o, &s, &r, h);
    cm_hist_end_exit(h, rc, NULL, cli_last_error());
    free(filetext);
    if (s.ctx) mc_close(&s);
    return rc;
}
