/* cmd_perplexity.c - `bitnet perplexity`: llama.cpp's perplexity over a text file. */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/history.h"
#include "common/model_common.h"

#define DEFAULT_N_CTX 512
#define LOGIT_STEP    64 /* tokens whose logits are held at once */

void cmd_perplexity_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet perplexity [-m MODEL.gguf] -f TEXT [options]\n\n"
            "Computes the model's perplexity on a text file as llama.cpp does: the text is\n"
            "tokenized (with BOS when the model adds one) and cut into non-overlapping chunks\n"
            "of --ctx tokens; each chunk is evaluated from an empty cache with its first\n"
            "token replaced by BOS (when the model adds BOS), and the predictions of the\n"
            "second half of the chunk are scored. Progress goes to stderr, one line per\n"
            "chunk; the estimate to stdout.\n\n"
            "Options:\n" MC_OPTS_HELP
            "  -f, --file FILE   the text (required; - for stdin; at most 64 MiB)\n"
            "  -c, --ctx N       chunk size in tokens (default %d)\n"
            "  --chunks N        score at most N chunks (default: all)\n"
            "  --json            one JSON document: perplexity, perplexity_stderr,\n"
            "                    tokens_scored, chunks, n_ctx, seconds, tokens_per_s,\n"
            "                    threads, kernels, lm_head\n"
            "  -h, --help        this help\n\n"
            "The text must hold at least 2 * N tokens (as llama.cpp requires) and N must be\n"
            "at least 3 (a chunk scores the predictions in its second half). The model and\n"
            "threads default to the config's (bitnet-config(5)), the model then to the\n"
            "bundled one; the config's ctx does not apply.\n"
            "Exit status: 0 ok, 1 the model or text cannot be used, 2 usage error.\n",
            DEFAULT_N_CTX);
}

typedef struct ppl_opts {
    mc_opts mc;
    const char *file;
    long max_chunks;
    int json;
    cm_hist_run *hist; /* this run in the history (NULL: not recorded) */
} ppl_opts;

static int parse_args(int argc, char **argv, ppl_opts *o)
{
    const char *C = "perplexity";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
        if (r < 0) return BN_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_perplexity_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return cli_usage_error(C, "%s needs a file", a);
            o->file = argv[++i];
        } else if (!strcmp(a, "--chunks")) {
            if (i + 1 >= argc || cli_parse_long(argv[i + 1], 1, 1L << 30, &o->max_chunks))
                return cli_usage_error(C, "--chunks needs a positive number");
            i++;
        } else {
            return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    if (!o->file) return cli_usage_error(C, "missing -f TEXT");
    /* the config's ctx is not the chunk size: that stays --ctx or 512, as llama.cpp's */
    return mc_apply_defaults(C, MC_DEF_THREADS, &o->mc, NULL);
}

typedef struct ppl_acc {
    double nll, nll2; /* sums of -log p and its square */
    size_t count;
} ppl_acc;

/* -log softmax(logits)[target], in double. */
static double neg_log_prob(const float *logits, int64_t V, int32_t target)
{
    float mx = logits[0];
    for (int64_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return -((double)logits[target] - mx - log(sum));
}

/* The predictions one chunk of n_ctx tokens scores (score_chunk): tokens n_ctx/2 + 1 ..
 * n_ctx - 1. */
static int64_t chunk_scored(int64_t n_ctx)
{
    return n_ctx - n_ctx / 2 - 1;
}

/* One chunk (n_ctx tokens at tok, the first already replaced by BOS when it applies):
 * the first half without logits, then LOGIT_STEP tokens at a time with logits, scoring
 * the predictions of tokens first+1 .. n_ctx-1. */
static int score_chunk(mc_session *s, const int32_t *tok, int64_t n_ctx, float *logits,
                       ppl_acc *acc)
{
    const int64_t V = bn_model_n_vocab(s->model), first = n_ctx / 2;
    bn_status rc = bn_model_eval(s->st, tok, first, 0, 0, NULL);
    for (int64_t p = first; p < n_ctx && rc == BN_OK; p += LOGIT_STEP) {
        const int64_t n = n_ctx - p < LOGIT_STEP ? n_ctx - p : LOGIT_STEP;
        rc = bn_model_eval(s->st, tok + p, n, p, n, logits);
        for (int64_t i = 0; i < n && rc == BN_OK; i++) {
            if (p + i + 1 >= n_ctx) break;
            const double v = neg_log_prob(logits + (size_t)i * (size_t)V, V, tok[p + i + 1]);
            acc->nll += v;
            acc->nll2 += v * v;
            acc->count++;
        }
    }
    if (rc != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(s->ctx));
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

static double ppl_of(const ppl_acc *a)
{
    return a->count ? exp(a->nll / (double)a->count) : 0.0;
}

/* llama.cpp's uncertainty: ppl * sqrt(var(nll) / (count - 1)). */
static double ppl_err(const ppl_acc *a)
{
    if (a->count < 2) return 0.0;
    const double m = a->nll / (double)a->count, m2 = a->nll2 / (double)a->count;
    const double var = m2 - m * m;
    return var > 0 ? ppl_of(a) * sqrt(var / (double)(a->count - 1)) : 0.0;
}

static int report(const ppl_opts *o, const mc_session *s, const ppl_acc *a, long chunks,
                  int64_t n_ctx, double secs)
{
    const double tps = secs > 0 ? (double)chunks * (double)n_ctx / secs : 0.0;
    cm_hist_metric(o->hist, "perplexity", ppl_of(a));
    cm_hist_metric(o->hist, "perplexity_stderr", ppl_err(a));
    cm_hist_metric(o->hist, "tokens_scored", (double)a->count);
    cm_hist_metric(o->hist, "chunks", (double)chunks);
    cm_hist_metric(o->hist, "n_ctx", (double)n_ctx);
    cm_hist_metric(o->hist, "seconds", secs);
    cm_hist_metric(o->hist, "tokens_per_s", tps);
    cm_hist_metric(o->hist, "threads", bn_ctx_n_threads(s->ctx));
    if (!o->json) {
        printf("perplexity: %.4f +/- %.4f over %zu tokens in %ld chunks of %lld (LM head %s, "
               "%.1f s, %.1f tokens/s)\n",
               ppl_of(a), ppl_err(a), a->count, chunks, (long long)n_ctx,
               bn_model_head_name(s->model), secs, tps);
        return BN_EXIT_OK;
    }
    cJSON *d = cJSON_CreateObject();
    if (!d) return BN_EXIT_FAIL;
    cJSON_AddNumberToObject(d, "perplexity", ppl_of(a));
    cJSON_AddNumberToObject(d, "perplexity_stderr", ppl_err(a));
    cJSON_AddNumberToObject(d, "tokens_scored", (double)a->count);
    cJSON_AddNumberToObject(d, "chunks", (double)chunks);
    cJSON_AddNumberToObject(d, "n_ctx", (double)n_ctx);
    cJSON_AddNumberToObject(d, "seconds", secs);
    cJSON_AddNumberToObject(d, "tokens_per_s", tps);
    cJSON_AddNumberToObject(d, "threads", bn_ctx_n_threads(s->ctx));
    cJSON_AddStringToObject(d, "kernels", mc_kernels_name());
    cJSON_AddStringToObject(d, "lm_head", bn_model_head_name(s->model));
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int run(const ppl_opts *o, mc_session *s, const int32_t *ids, size_t n_ids)
{
    const int64_t n_ctx = bn_model_state_n_ctx(s->st);
    if (chunk_scored(n_ctx) < 1) {
        cli_error("perplexity: a context of %lld tokens scores no token (each chunk scores "
                  "the predictions in its second half): use --ctx 3 or more",
                  (long long)n_ctx);
        return BN_EXIT_FAIL;
    }
    if ((int64_t)n_ids < 2 * n_ctx) {
        cli_error("%s: %zu tokens; perplexity with a context of %lld needs at least %lld", o->file,
                  n_ids, (long long)n_ctx, (long long)(2 * n_ctx));
        return BN_EXIT_FAIL;
    }
    long n_chunks = (long)((int64_t)n_ids / n_ctx);
    if (o->max_chunks && o->max_chunks < n_chunks) n_chunks = o->max_chunks;
    const int32_t bos = bn_tokenizer_bos(s->tok);
    const int add_bos = bn_tokenizer_add_bos(s->tok) && bos >= 0;
    const int64_t V = bn_model_n_vocab(s->model);
    float *logits = malloc((size_t)LOGIT_STEP * (size_t)V * sizeof *logits);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    if (!logits || !chunk) {
        free(logits);
        free(chunk);
        cli_error("out of memory");
        return BN_EXIT_FAIL;
    }
    ppl_acc acc = {0};
    int rc = BN_EXIT_OK;
    const double t0 = bn_time_now();
    for (long c = 0; c < n_chunks && rc == BN_EXIT_OK; c++) {
        memcpy(chunk, ids + (size_t)c * (size_t)n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = bos;
        rc = score_chunk(s, chunk, n_ctx, logits, &acc);
        if (rc == BN_EXIT_OK)
            fprintf(stderr, "[%ld/%ld] perplexity %.4f (%.1f s)\n", c + 1, n_chunks, ppl_of(&acc),
                    bn_time_now() - t0);
    }
    if (rc == BN_EXIT_OK) rc = report(o, s, &acc, n_chunks, n_ctx, bn_time_now() - t0);
    free(logits);
    free(chunk);
    return rc;
}

int cmd_perplexity(int argc, char **argv)
{
    ppl_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    cm_hist_run *h = cm_hist_begin("perplexity", o.mc.model, cm_hist_params_argv(argc, argv));
    o.hist = h;
    size_t len;
    char *text = mc_read_prompt(o.file, &len);
    if (!text) {
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    mc_session s;
    memset(&s, 0, sizeof s);
    rc = mc_open(&o.mc, DEFAULT_N_CTX, &s);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (rc == BN_EXIT_OK) {
        bn_status st =
                bn_tokenizer_encode_alloc(s.tok, text, len, BN_TOKENIZE_ADD_SPECIAL, &ids, &n_ids);
        if (st != BN_OK) {
            cli_error("%s: cannot tokenize: %s", o.file, bn_status_str(st));
            rc = BN_EXIT_FAIL;
        }
    }
    if (rc == BN_EXIT_OK) rc = run(&o, &s, ids, n_ids);
    cm_hist_end_exit(h, rc, NULL, cli_last_error());
    bn_free(ids);
    free(text);
    if (s.ctx) mc_close(&s);
    return rc;
}
