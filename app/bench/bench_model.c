/*
 * bench_model.c - `bitnet bench -m MODEL`: llama-bench's prompt and generation tests on a
 * whole model, and the generation ceiling of this machine measured in the same run.
 *
 * The tests are llama-bench's (tools/llama-bench/llama-bench.cpp):
 *   ppN  N prompt tokens evaluated in one call from an empty cache (split into --batch
 *        tokens at a time when N is larger), logits of the last token only; the first
 *        token is BOS when the model adds one, the others random ids.
 *   tgN  N tokens evaluated one at a time from an empty cache (positions 0 .. N-1), each
 *        with its logits; the first token is BOS (or random), the next ones random.
 * Each test runs once as a warm-up (the whole prompt; one generated token), then -r
 * times; every repetition gives tokens / seconds, and we report their mean and sample
 * standard deviation, as llama-bench does. Each thread count gets its own context (a
 * pool of exactly that many threads), so the model is loaded once per count.
 *
 * The ceiling. Generation reads every weight once per token, so its speed is bounded by
 * read bandwidth / bytes per token. Bytes per token = the model's (bn_model_bytes_per_token:
 * ternary weights, norms, LM head) + the KV cache a tgN token reads on average
 * (positions 0 .. N-1: half of what a token at position N reads). The bandwidth comes
 * from a streaming sum (four streams per thread, bench_util.c) over a buffer as large as
 * those bytes (at least 1 MiB, at most
 * 256 MiB, which is past any last-level cache), on the same threads, run once before each
 * tg repetition so that both see the same state of the shared machine; we take the
 * median. ceiling_fraction = tg tokens/s / ceiling tokens/s.
 *
 * The prompt ceiling. A batched prompt is bound by arithmetic, not bandwidth: every token
 * does one int8 multiply-add per ternary weight (n_layer * (2 E^2 + 2 KV E + 3 E F)), and
 * the kernel's multiply-accumulate instruction alone, on register operands and the same
 * threads (bn_bench_mac_rate, run before each pp repetition), bounds how many it can do
 * per second. pp ceiling = that rate / multiply-adds per token (attention, norms and the
 * LM head are left out, so it is an upper bound).
 */
#include "common/cli.h"
#include "bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/kernels.h"
#include "bitnet/threadpool.h"
#include "common/history.h"
#include "common/model_common.h"
#include "common/sysstat.h"

#define MAX_LIST        8
#define DEFAULT_PP      128
#define DEFAULT_TG      32
#define DEFAULT_REPS    5
#define PROBE_MIN_BYTES ((size_t)1 << 20)
#define PROBE_MAX_BYTES ((size_t)256 << 20)

typedef struct bm_opts {
    mc_opts mc; /* -m, --batch, --kv-f32, --lm-head (threads come from -t) */
    int threads[MAX_LIST], n_threads;
    int pp[MAX_LIST], n_pp;
    int tg[MAX_LIST], n_tg;
    int reps, json, warmup;
} bm_opts;

typedef struct bm_result {
    char test[24]; /* "pp128", "tg32" */
    int n_prompt, n_gen, threads, reps;
    double mean, sd; /* tokens/s over the repetitions */
    /* tg only */
    double bw;              /* read bandwidth, bytes/s (median of the probes) */
    double bytes_per_token; /* weights + mean KV cache read */
    double ceiling;         /* bw / bytes_per_token */
    double fraction;        /* mean / ceiling */
    /* pp only */
    double mac_rate;       /* multiply-accumulate ceiling, MACs/s (median of the probes) */
    double macs_per_token; /* ternary multiply-adds of one token */
} bm_result;

typedef struct bm_run {
    bm_result res[3 * MAX_LIST * MAX_LIST];
    int n_res;
    uint64_t *pbuf; /* the probe's buffer */
    size_t pbytes;
    double *ts, *bw, *mac; /* per repetition */
    int32_t *toks;
    float *logits;
    uint64_t rng;
    size_t model_bytes;
    size_t base;     /* the process's resident bytes before the model is opened */
    size_t resident; /* what it holds more after a thread count's tests, the probe's
                        buffer left out (the largest; 0: /proc unreadable) */
    size_t kv_bytes; /* the KV cache of that session */
    char arch[32];
    char head[8]; /* the LM head as it runs (bn_model_head_name) */
} bm_run;

/* ---- help and options ---------------------------------------------------------------- */

void bench_model_help(FILE *out);
void bench_model_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet bench [-m MODEL.gguf] [options]\n\n"
            "llama-bench's tests on a model: ppN evaluates N prompt tokens in one batch from\n"
            "an empty cache, tgN generates N tokens one at a time from an empty cache; the\n"
            "table shows tokens/s, mean +- standard deviation over -r repetitions after a\n"
            "warm-up. For each tg test it also shows the generation ceiling of this machine,\n"
            "read bandwidth (a streaming sum on the same threads, measured in the same run)\n"
            "divided by the bytes a generated token reads (ternary weights, norms, LM head and\n"
            "KV cache), and the fraction of it the model reached. For each pp test it shows\n"
            "the prompt ceiling: the int8 multiply-accumulate rate of the kernels' MAC\n"
            "instruction alone (same threads, same run) divided by the ternary multiply-adds\n"
            "of one token. Last, the memory the process holds after the tests beyond what it\n"
            "held before the model opened (the probe's buffer left out), against the model\n"
            "file plus the KV cache.\n\n"
            "Options:\n"
            "  -m, --model FILE     the GGUF model (default: the config's model, else the\n"
            "                       bundled one)\n"
            "  -p, --n-prompt LIST  prompt sizes, e.g. 128 or 64,512 (default %d; 0: none)\n"
            "  -n, --n-gen LIST     generation lengths (default %d; 0: none)\n"
            "  -t, --threads LIST   thread counts, e.g. 1,2 (default: the config's threads\n"
            "                       when set, else 1,2)\n"
            "  -r, --reps N         repetitions (default %d)\n"
            "  --batch N            prompt tokens evaluated at once (default 512)\n"
            "  --kv-f32             keep the KV cache in f32 (default f16)\n"
            "  -ngl, --gpu-layers N the last N layers on the GPU (the LM head too past the\n"
            "                       model's layers; default: the config's gpu_layers, 0)\n"
            "  --lm-head TYPE       q8_0 (default), q6, q4 or keep (the file's LM head rows)\n"
            "  --no-warmup          skip the warm-up runs\n"
            "  --json               one JSON document: model, model_bytes, lm_head, results\n"
            "                       (test, threads, tokens_per_s, sd, reps), and the ceiling\n"
            "                       of the first tg test on the most threads:\n"
            "                       bandwidth_bytes_per_s,\n"
            "                       bytes_per_token, ceiling_tokens_per_s, ceiling_fraction;\n"
            "                       pp results carry mac_rate_per_s, macs_per_token,\n"
            "                       ceiling_tokens_per_s and ceiling_fraction;\n"
            "                       resident_bytes (that memory) and kv_cache_bytes\n"
            "                       (null without /proc)\n"
            "  -h, --help           this help\n\n"
            "Exit status: 0 ok, 1 the model cannot be used, 2 usage error.\n",
            DEFAULT_PP, DEFAULT_TG, DEFAULT_REPS);
}

/* "0" is an empty list; otherwise cli_parse_int_list (1 .. 4096 each). */
static int parse_counts(const char *s, int *out)
{
    if (s && !strcmp(s, "0")) return 0;
    return cli_parse_int_list(s, out, MAX_LIST);
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, bm_opts *o)
{
    const char *C = "bench";
    o->pp[0] = DEFAULT_PP, o->n_pp = 1;
    o->tg[0] = DEFAULT_TG, o->n_tg = 1;
    o->reps = DEFAULT_REPS;
    o->warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_model_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--no-warmup")) {
            o->warmup = 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if ((o->n_threads = cli_parse_int_list(v, o->threads, MAX_LIST)) < 0)
                return cli_usage_error(C, "%s needs a list of thread counts like 1,2", a);
            i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if ((o->n_pp = parse_counts(v, o->pp)) < 0)
                return cli_usage_error(C, "%s needs 0 or a list of sizes like 128,512", a);
            i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if ((o->n_tg = parse_counts(v, o->tg)) < 0)
                return cli_usage_error(C, "%s needs 0 or a list of lengths like 32,128", a);
            i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            long r;
            if (!v || cli_parse_long(v, 1, 1000, &r))
                return cli_usage_error(C, "%s needs a number in [1, 1000]", a);
            o->reps = (int)r;
            i++;
        } else {
            const int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
            if (r < 0) return BN_EXIT_USAGE;
            if (r == 0 || !strcmp(a, "-c") || !strcmp(a, "--ctx"))
                return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    if (o->n_pp + o->n_tg == 0) return cli_usage_error(C, "nothing to run (-p 0 and -n 0)");
    const int rc = mc_apply_defaults(C, MC_DEF_THREADS, &o->mc, NULL);
    if (rc >= 0) return rc;
    if (o->n_threads == 0 && o->mc.threads > 0) { /* the config's threads */
        o->threads[0] = o->mc.threads > 4096 ? 4096 : (int)o->mc.threads;
        o->n_threads = 1;
    } else if (o->n_threads == 0) {
        o->threads[0] = 1, o->threads[1] = 2, o->n_threads = 2;
    }
    return -1;
}

/* ---- measurements -------------------------------------------------------------------- */

static int32_t random_token(bm_run *r, const mc_session *s)
{
    return (int32_t)(bn_bench_rng(&r->rng) % (uint64_t)bn_model_n_vocab(s->model));
}

static int32_t first_token(bm_run *r, const mc_session *s)
{
    const int32_t bos = bn_tokenizer_bos(s->tok);
    return bn_tokenizer_add_bos(s->tok) && bos >= 0 && bos < bn_model_n_vocab(s->model)
                   ? bos
                   : random_token(r, s);
}

/* Read bandwidth in bytes/s of one pass over the probe buffer on the session's threads. */
static double probe_once(bm_run *r, mc_session *s)
{
    const double dt =
            bn_bench_probe_seconds(bn_ctx_pool(s->ctx), r->pbuf, (int64_t)(r->pbytes / 8), NULL);
    return dt > 0 ? (double)r->pbytes / dt : 0.0;
}

static int eval_failed(mc_session *s)
{
    cli_error("%s", bn_ctx_errmsg(s->ctx));
    return BN_EXIT_FAIL;
}

/* One prompt run of n tokens from an empty cache; seconds in *dt. */
static int run_pp(bm_run *r, mc_session *s, int n, double *dt)
{
    r->toks[0] = first_token(r, s);
    for (int i = 1; i < n; i++) r->toks[i] = random_token(r, s);
    bn_model_state_reset(s->st);
    const double t0 = bn_time_now();
    if (bn_model_eval(s->st, r->toks, n, 0, 1, r->logits) != BN_OK) return eval_failed(s);
    *dt = bn_time_now() - t0;
    return BN_EXIT_OK;
}

/* One generation run of n tokens from an empty cache; seconds in *dt. */
static int run_tg(bm_run *r, mc_session *s, int n, double *dt)
{
    int32_t tok = first_token(r, s);
    bn_model_state_reset(s->st);
    const double t0 = bn_time_now();
    for (int i = 0; i < n; i++) {
        if (bn_model_eval(s->st, &tok, 1, i, 1, r->logits) != BN_OK) return eval_failed(s);
        tok = random_token(r, s);
    }
    *dt = bn_time_now() - t0;
    return BN_EXIT_OK;
}

/* Mean and sample standard deviation (0 for one value) of v[0..n). */
static void mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

/* Runs one test (n_prompt xor n_gen) on the open session into r->res[r->n_res]. */
static int run_test(const bm_opts *o, bm_run *r, mc_session *s, int threads, int n_prompt,
                    int n_gen)
{
    bm_result *res = &r->res[r->n_res];
    memset(res, 0, sizeof *res);
    snprintf(res->test, sizeof res->test, "%s%d", n_prompt ? "pp" : "tg",
             n_prompt ? n_prompt : n_gen);
    res->n_prompt = n_prompt, res->n_gen = n_gen, res->threads = threads, res->reps = o->reps;
    double dt = 0;
    int rc = BN_EXIT_OK;
    if (o->warmup) rc = n_prompt ? run_pp(r, s, n_prompt, &dt) : run_tg(r, s, 1, &dt);
    for (int k = 0; k < o->reps && rc == BN_EXIT_OK; k++) {
        if (n_gen) r->bw[k] = probe_once(r, s);
        if (n_prompt) r->mac[k] = bn_bench_mac_rate(bn_ctx_pool(s->ctx), bn_kernels_get(), 0.01, 3);
        rc = n_prompt ? run_pp(r, s, n_prompt, &dt) : run_tg(r, s, n_gen, &dt);
        r->ts[k] = dt > 0 ? (n_prompt + n_gen) / dt : 0.0;
    }
    if (rc != BN_EXIT_OK) return rc;
    mean_sd(r->ts, o->reps, &res->mean, &res->sd);
    if (n_gen) {
        res->bw = bn_bench_median(r->bw, o->reps);
        /* the state holds n_gen tokens: a token at position n_gen reads n_gen + 1 KV
         * entries, the tokens at 0 .. n_gen-1 read (n_gen + 1) / 2 on average */
        res->bytes_per_token = (double)bn_model_bytes_per_token(s->model) +
                               0.5 * (double)bn_model_state_kv_bytes_read(s->st);
        res->ceiling = res->bw / res->bytes_per_token;
        res->fraction = res->ceiling > 0 ? res->mean / res->ceiling : 0.0;
    } else {
        const bn_model_hparams *h = bn_model_hparams_get(s->model);
        const double E = (double)h->n_embd, F = (double)h->n_ff,
                     KV = (double)(h->n_head_kv * h->head_dim);
        res->mac_rate = bn_bench_median(r->mac, o->reps);
        res->macs_per_token = (double)h->n_layer * (2 * E * E + 2 * KV * E + 3 * E * F);
        res->ceiling = res->mac_rate / res->macs_per_token;
        res->fraction = res->ceiling > 0 ? res->mean / res->ceiling : 0.0;
    }
    r->n_res++;
    return BN_EXIT_OK;
}

/* ---- output -------------------------------------------------------------------------- */

static void print_row(const bm_result *res)
{
    char ts[64];
    snprintf(ts, sizeof ts, "%.2f ± %.2f", res->mean, res->sd);
    /* "±" is two bytes wide in the buffer and one column on the screen */
    printf("| %7d | %7s | %17s |\n", res->threads, res->test, ts);
    fflush(stdout);
}

static void print_header(const bm_opts *o, const bm_run *r)
{
    printf("model: %s (%s, %.1f MiB; kernels %s; %d repetition%s%s)\n", o->mc.model, r->arch,
           (double)r->model_bytes / (1 << 20), mc_kernels_name(), o->reps, o->reps == 1 ? "" : "s",
           o->warmup ? " after a warm-up" : "");
    printf("| threads |    test |              t/s |\n");
    printf("| ------: | ------: | ---------------: |\n");
    fflush(stdout);
}

static void print_ceilings(const bm_run *r)
{
    int any = 0;
    for (int i = 0; i < r->n_res; i++) {
        const bm_result *res = &r->res[i];
        if (res->n_gen || res->mac_rate <= 0) continue;
        if (!any++) {
            printf("\nprompt ceiling: int8 multiply-accumulate rate (measured in this run, same "
                   "threads) /\nternary multiply-adds per token\n");
            printf("| threads |    test |  GMAC/s | MMAC/token | ceiling t/s |    t/s | of "
                   "ceiling |\n");
            printf("| ------: | ------: | ------: | ---------: | ----------: | -----: | "
                   "---------: |\n");
        }
        printf("| %7d | %7s | %7.1f | %10.1f | %11.2f | %6.2f | %10.2f |\n", res->threads,
               res->test, res->mac_rate / 1e9, res->macs_per_token / 1e6, res->ceiling, res->mean,
               res->fraction);
    }
    any = 0;
    for (int i = 0; i < r->n_res; i++) {
        const bm_result *res = &r->res[i];
        if (!res->n_gen) continue;
        if (!any++) {
            printf("\ngeneration ceiling: read bandwidth (measured in this run, same threads) /"
                   " bytes read per token\n");
            printf("| threads |    test | read GB/s | MB/token | ceiling t/s |    t/s | of "
                   "ceiling |\n");
            printf("| ------: | ------: | --------: | -------: | ----------: | -----: | "
                   "---------: |\n");
        }
        printf("| %7d | %7s | %9.2f | %8.2f | %11.2f | %6.2f | %10.2f |\n", res->threads, res->test,
               res->bw / 1e9, res->bytes_per_token / 1e6, res->ceiling, res->mean, res->fraction);
    }
    if (r->resident)
        printf("\nmemory: %.1f MiB more resident after the tests than before the model"
               " opened (the probe's buffer left out) = %.2f x (file %.1f MiB + KV cache %.1f"
               " MiB)\n",
               (double)r->resident / (1 << 20),
               (double)r->resident / (double)(r->model_bytes + r->kv_bytes),
               (double)r->model_bytes / (1 << 20), (double)r->kv_bytes / (1 << 20));
}

/* The tg result whose ceiling is the headline: the first tg test on the most threads. */
static const bm_result *headline(const bm_run *r)
{
    const bm_result *best = NULL;
    for (int i = 0; i < r->n_res; i++)
        if (r->res[i].n_gen && (!best || r->res[i].threads > best->threads)) best = &r->res[i];
    return best;
}

static cJSON *results_json(const bm_run *r)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->n_res; i++) {
        const bm_result *res = &r->res[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(a, e);
        cJSON_AddStringToObject(e, "test", res->test);
        cJSON_AddNumberToObject(e, "n_prompt", res->n_prompt);
        cJSON_AddNumberToObject(e, "n_gen", res->n_gen);
        cJSON_AddNumberToObject(e, "threads", res->threads);
        cJSON_AddNumberToObject(e, "tokens_per_s", res->mean);
        cJSON_AddNumberToObject(e, "sd", res->sd);
        cJSON_AddNumberToObject(e, "reps", res->reps);
        if (!res->n_gen) {
            if (res->mac_rate <= 0) continue;
            cJSON_AddNumberToObject(e, "mac_rate_per_s", res->mac_rate);
            cJSON_AddNumberToObject(e, "macs_per_token", res->macs_per_token);
            cJSON_AddNumberToObject(e, "ceiling_tokens_per_s", res->ceiling);
            cJSON_AddNumberToObject(e, "ceiling_fraction", res->fraction);
            continue;
        }
        cJSON_AddNumberToObject(e, "bandwidth_bytes_per_s", res->bw);
        cJSON_AddNumberToObject(e, "bytes_per_token", res->bytes_per_token);
        cJSON_AddNumberToObject(e, "ceiling_tokens_per_s", res->ceiling);
        cJSON_AddNumberToObject(e, "ceiling_fraction", res->fraction);
    }
    return a;
}

/* The headline ceiling into d (nulls without a tg test). */
static void add_ceiling(cJSON *d, const bm_run *r)
{
    const bm_result *h = headline(r);
    static const char *const keys[] = {"bandwidth_bytes_per_s", "bytes_per_token",
                                       "ceiling_tokens_per_s", "ceiling_fraction"};
    const double v[] = {h ? h->bw : 0, h ? h->bytes_per_token : 0, h ? h->ceiling : 0,
                        h ? h->fraction : 0};
    for (int i = 0; i < 4; i++) {
        if (h)
            cJSON_AddNumberToObject(d, keys[i], v[i]);
        else
            cJSON_AddNullToObject(d, keys[i]);
    }
}

static int print_json(const bm_opts *o, const bm_run *r)
{
    cJSON *d = cJSON_CreateObject();
    if (!d) return BN_EXIT_FAIL;
    cJSON_AddStringToObject(d, "model", o->mc.model);
    cJSON_AddNumberToObject(d, "model_bytes", (double)r->model_bytes);
    cJSON_AddStringToObject(d, "arch", r->arch);
    cJSON_AddStringToObject(d, "lm_head", r->head);
    cJSON_AddStringToObject(d, "kernels", mc_kernels_name());
    cJSON_AddItemToObject(d, "results", results_json(r));
    add_ceiling(d, r);
    if (r->resident) {
        cJSON_AddNumberToObject(d, "resident_bytes", (double)r->resident);
        cJSON_AddNumberToObject(d, "kv_cache_bytes", (double)r->kv_bytes);
    } else {
        cJSON_AddNullToObject(d, "resident_bytes");
        cJSON_AddNullToObject(d, "kv_cache_bytes");
    }
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static cJSON *history_metrics(const bm_run *r)
{
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddNumberToObject(m, "model_bytes", (double)r->model_bytes);
    cJSON_AddStringToObject(m, "kernels", mc_kernels_name());
    const bm_result *h = headline(r);
    for (int i = r->n_res - 1; i >= 0; i--) /* the prompt speed on the most threads */
        if (r->res[i].n_prompt && (!h || r->res[i].threads == h->threads)) {
            cJSON_AddNumberToObject(m, "pp_tokens_per_s", r->res[i].mean);
            break;
        }
    if (h) cJSON_AddNumberToObject(m, "tg_tokens_per_s", h->mean);
    add_ceiling(m, r);
    cJSON_AddItemToObject(m, "results", results_json(r));
    return m;
}

/* ---- the command ----------------------------------------------------------------------- */

static int max_of(const int *v, int n)
{
    int m = 0;
    for (int i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

/* Buffers sized once the first session has the model open. */
static int alloc_run(const bm_opts *o, bm_run *r, const mc_session *s)
{
    const size_t bpt = bn_model_bytes_per_token(s->model);
    r->pbytes = bpt < PROBE_MIN_BYTES   ? PROBE_MIN_BYTES
                : bpt > PROBE_MAX_BYTES ? PROBE_MAX_BYTES
                                        : (bpt + 7) / 8 * 8;
    r->pbuf = malloc(r->pbytes);
    r->ts = malloc(sizeof *r->ts * (size_t)o->reps);
    r->bw = malloc(sizeof *r->bw * (size_t)o->reps);
    r->mac = malloc(sizeof *r->mac * (size_t)o->reps);
    r->toks = malloc(sizeof *r->toks * (size_t)(max_of(o->pp, o->n_pp) + 1));
    r->logits = malloc(sizeof *r->logits * (size_t)bn_model_n_vocab(s->model));
    if (!r->pbuf || !r->ts || !r->bw || !r->mac || !r->toks || !r->logits) {
        cli_error("bench: out of memory");
        return BN_EXIT_FAIL;
    }
    for (size_t i = 0; i < r->pbytes / 8; i++) r->pbuf[i] = i * 0x9e3779b97f4a7c15ull;
    r->model_bytes = bn_model_file_size(s->model);
    snprintf(r->arch, sizeof r->arch, "%s", bn_model_hparams_get(s->model)->arch);
    snprintf(r->head, sizeof r->head, "%s", bn_model_head_name(s->model));
    return BN_EXIT_OK;
}

/* The bytes this process has resident (/proc/self/stat). 0, or -1. */
static int resident_bytes(size_t *out)
{
    char text[1024];
    bn_sys_proc p;
    if (bn_sys_read_file("/proc/self/stat", text, sizeof text) != 0 ||
        bn_sys_parse_pid_stat(text, sysconf(_SC_PAGESIZE), &p) != 0)
        return -1;
    *out = (size_t)p.rss;
    return 0;
}

/* Every test on one thread count, with its own context and model. */
static int run_threads(const bm_opts *o, bm_run *r, int threads)
{
    mc_opts mo = o->mc;
    mo.threads = threads;
    const int ctx = max_of(o->pp, o->n_pp) > max_of(o->tg, o->n_tg) ? max_of(o->pp, o->n_pp)
                                                                    : max_of(o->tg, o->n_tg);
    mo.n_ctx = ctx;
    mo.ctx_soft = 0;
    mc_session s;
    int rc = mc_open(&mo, ctx, &s);
    if (rc != BN_EXIT_OK) return rc;
    if (!r->pbuf) {
        rc = alloc_run(o, r, &s);
        if (rc == BN_EXIT_OK && !o->json) print_header(o, r);
    }
    for (int i = 0; i < o->n_pp && rc == BN_EXIT_OK; i++) {
        rc = run_test(o, r, &s, threads, o->pp[i], 0);
        if (rc == BN_EXIT_OK && !o->json) print_row(&r->res[r->n_res - 1]);
    }
    for (int i = 0; i < o->n_tg && rc == BN_EXIT_OK; i++) {
        rc = run_test(o, r, &s, threads, 0, o->tg[i]);
        if (rc == BN_EXIT_OK && !o->json) print_row(&r->res[r->n_res - 1]);
    }
    size_t rss = 0;
    if (rc == BN_EXIT_OK && r->base && resident_bytes(&rss) == 0 && rss > r->pbytes + r->base &&
        rss - r->pbytes - r->base > r->resident) {
        r->resident = rss - r->pbytes - r->base;
        r->kv_bytes = bn_model_state_kv_bytes(s.st);
    }
    mc_close(&s);
    return rc;
}

int bench_model_main(int argc, char **argv);
int bench_model_main(int argc, char **argv)
{
    bm_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    cJSON *hp = cm_hist_params_argv(argc, argv);
    cJSON_AddStringToObject(hp, "suite", "model");
    cm_hist_run *h = cm_hist_begin("bench", o.mc.model, hp);
    bm_run *r = calloc(1, sizeof *r);
    if (!r) {
        cli_error("bench: out of memory");
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    r->rng = 42;
    if (resident_bytes(&r->base) != 0) r->base = 0;
    rc = BN_EXIT_OK;
    for (int i = 0; i < o.n_threads && rc == BN_EXIT_OK; i++) rc = run_threads(&o, r, o.threads[i]);
    if (rc == BN_EXIT_OK && o.json) rc = print_json(&o, r);
    if (rc == BN_EXIT_OK && !o.json) print_ceilings(r);
    cm_hist_end_exit(h, rc, rc == BN_EXIT_OK ? history_metrics(r) : NULL, cli_last_error());
    free(r->pbuf);
    free(r->ts);
    free(r->bw);
    free(r->mac);
    free(r->toks);
    free(r->logits);
    free(r);
    return rc;
}
