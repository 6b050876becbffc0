/*
 * bench_gpu.c - `bitnet bench --gpu` and `bitnet bench kernels --gpu`: the CUDA backend
 * (bitnet/cuda.h) measured and checked.
 *
 * kernels --gpu: the W2A8 GEMV and the 8-token GEMM on the 2B4T shapes, each product's
 * output against the CPU reference kernel (to the bit), the GEMV's bytes per second against
 * a device-to-device copy measured in the same run.
 *
 * --gpu (a model): the CUDA forward against the CPU forward of the same loaded model: the
 * logits of a prompt's last token and of each step of greedy generation (max |difference|),
 * the greedy tokens of both compared step by step; then pp and tg on the GPU (medians of
 * -r runs); the pool's figures beside the device memory NVML reports in use.
 */
#include "bench_gpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "bitnet/core.h"
#include "bitnet/cuda.h"
#include "bitnet/kernels.h"
#include "common/cli.h"
#include "common/hw.h"
#include "common/model_common.h"

static const struct {
    int64_t rows, cols;
    const char *what;
} gpu_shapes[] = {
        {2560, 2560, "attn q/o"},
        {640, 2560, "attn k/v"},
        {6912, 2560, "ffn gate/up"},
        {2560, 6912, "ffn down"},
};

void bench_gpu_help(FILE *out)
{
    fprintf(out, "\nThe CUDA backend (a build with make CUDA=1):\n"
                 "  bitnet bench --gpu [-m MODEL] [-p N] [-n N] [--steps N] [-r N] [--device N]\n"
                 "                     [--lm-head q8_0|keep] [-t N] [-ngl N] [--json]\n"
                 "            the CUDA forward against the CPU's on the same model: max |logit\n"
                 "            difference| and greedy tokens equal over --steps (default 64) steps\n"
                 "            from a prompt of min(N, 32) tokens, beside the CPU's own spread\n"
                 "            (its SIMD against its reference kernels on the prompt); then ppN\n"
                 "            (default 128) and tgN (default 32) on the GPU, median of -r (3)\n"
                 "            runs; the pool's memory beside NVML's figure for the device.\n"
                 "            -ngl N: the last N layers on the GPU and the rest on the CPU\n"
                 "            (partial offload, as generate -ngl runs it; default all of them)\n"
                 "  bitnet bench kernels --gpu [--quick] [-r N] [--json]\n"
                 "            W2A8 GEMV and 8-token GEMM on the 2B4T shapes, each output checked\n"
                 "            against the CPU reference kernel, GEMV bandwidth against a\n"
                 "            device-to-device copy in the same run (-r 200 runs; --quick 20)\n"
                 "Without the backend both exit 1 with \"CUDA: not built\".\n");
}

/* 0, or the exit code after saying so when this build has no CUDA backend */
static int need_cuda(const char *cmd)
{
    if (bn_cuda_built()) return 0;
    cli_error("%s: CUDA: not built (make CUDA=1 builds the backend with nvcc)", cmd);
    return BN_EXIT_FAIL;
}

/* ---- kernels --gpu ------------------------------------------------------------------------- */

static cJSON *kernel_row_json(int i, const bn_cuda_gemv_bench *b)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", (double)gpu_shapes[i].rows);
    cJSON_AddNumberToObject(o, "cols", (double)gpu_shapes[i].cols);
    cJSON_AddStringToObject(o, "what", gpu_shapes[i].what);
    cJSON_AddNumberToObject(o, "gemv_us", b->gemv_us);
    cJSON_AddNumberToObject(o, "gemv_bytes_per_s", b->gemv_gbs * 1e9);
    cJSON_AddNumberToObject(o, "copy_bytes_per_s", b->copy_gbs * 1e9);
    cJSON_AddNumberToObject(o, "ratio", b->gemv_gbs / b->copy_gbs);
    cJSON_AddNumberToObject(o, "gemm8_us_per_token", b->gemm8_us / 8);
    cJSON_AddNumberToObject(o, "max_diff", b->max_diff);
    cJSON_AddNumberToObject(o, "stack", (double)b->stack);
    return o;
}

int bench_kernels_gpu_main(int argc, char **argv)
{
    int reps = 200, json = 0;
    size_t probe = (size_t)256 << 20;
    for (int i = 1; i < argc; i++) {
        long n;
        if (!strcmp(argv[i], "--gpu")) {
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            bench_gpu_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(argv[i], "--quick")) {
            reps = 20, probe = (size_t)32 << 20;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((!strcmp(argv[i], "-r") || !strcmp(argv[i], "--reps")) && i + 1 < argc &&
                   !cli_parse_long(argv[i + 1], 1, 100000, &n)) {
            reps = (int)n, i++;
        } else {
            return cli_usage_error("bench kernels --gpu",
                                   "unknown option '%s' (--quick, -r N, "
                                   "--json)",
                                   argv[i]);
        }
    }
    if (need_cuda("bench kernels --gpu")) return BN_EXIT_FAIL;
    bn_ctx *ctx = NULL;
    if (bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}) != BN_OK) {
        cli_error("out of memory");
        return BN_EXIT_FAIL;
    }
    cJSON *rows = json ? cJSON_CreateArray() : NULL;
    int status = BN_EXIT_OK;
    if (!json)
        printf("W2A8 on the GPU, %d runs each: GEMV us of one matrix alone; GB/s of the GEMV\n"
               "over copies of it stacked into %zu MiB, against a device-to-device copy of as\n"
               "much; GEMM8 (8 tokens a weight load) per matrix and token\n"
               "%-11s  %-11s  %9s  %8s  %7s  %14s  %s\n",
               reps, probe >> 20, "shape", "what", "GEMV us", "GB/s", "of copy", "GEMM8 us/tok",
               "vs CPU reference");
    for (int i = 0; i < 4 && status == BN_EXIT_OK; i++) {
        bn_cuda_gemv_bench b;
        if (bn_cuda_bench_gemv(ctx, 0, gpu_shapes[i].rows, gpu_shapes[i].cols, reps, probe, &b) !=
            BN_OK) {
            cli_error("bench kernels --gpu: %s", bn_ctx_errmsg(ctx));
            status = BN_EXIT_FAIL;
        } else if (json) {
            cJSON_AddItemToArray(rows, kernel_row_json(i, &b));
        } else {
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)gpu_shapes[i].rows,
                     (long long)gpu_shapes[i].cols);
            printf("%-11s  %-11s  %9.2f  %8.1f  %7.2f  %14.3f  max diff %g (copy %.1f GB/s)\n",
                   shape, gpu_shapes[i].what, b.gemv_us, b.gemv_gbs, b.gemv_gbs / b.copy_gbs,
                   b.gemm8_us / 8, b.max_diff, b.copy_gbs);
        }
    }
    if (json && status == BN_EXIT_OK) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToObject(d, "results", rows);
        rows = NULL;
        status = cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    cJSON_Delete(rows);
    bn_ctx_free(ctx);
    return status;
}

/* ---- the model --gpu ----------------------------------------------------------------------- */

typedef struct gpu_opts {
    mc_opts mc;
    int pp, tg, steps, reps, device, json;
} gpu_opts;

static int gpu_parse(int argc, char **argv, gpu_opts *o)
{
    const char *C = "bench --gpu";
    memset(o, 0, sizeof *o);
    o->pp = 128, o->tg = 32, o->steps = 64, o->reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long n;
        int *dst = NULL;
        if (!strcmp(a, "--gpu")) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_gpu_help(stdout);
            return BN_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) dst = &o->pp;
        if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) dst = &o->tg;
        if (!strcmp(a, "--steps")) dst = &o->steps;
        if (!strcmp(a, "-r") || !strcmp(a, "--reps")) dst = &o->reps;
        if (!strcmp(a, "--device")) dst = &o->device;
        if (dst) {
            if (i + 1 >= argc || cli_parse_long(argv[i + 1], dst == &o->device ? 0 : 1, 4096, &n))
                return cli_usage_error(C, "%s needs a number in [%d, 4096]", a,
                                       dst == &o->device ? 0 : 1);
            *dst = (int)n, i++;
            continue;
        }
        const int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
        if (r < 0) return BN_EXIT_USAGE;
        if (r == 0 || !strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--kv-f32"))
            return cli_usage_error(C, "unknown option '%s'", a);
    }
    return mc_apply_defaults(C, MC_DEF_THREADS, &o->mc, NULL);
}

static int32_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *amax)
{
    double d = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        d = e > d || isnan(e) ? e : d;
        if (fabs((double)a[i]) > *amax) *amax = fabs((double)a[i]);
    }
    return d;
}

typedef struct compare {
    double max_diff, max_logit;
    double ref_diff; /* the CPU's own: SIMD against reference kernels, the prompt's logits */
    int equal_steps, first_diff; /* greedy steps whose tokens agree; -1: all */
} compare;

/* The GPU side: every layer through bn_cuda_eval, or with -ngl a model state whose last
 * layers run on g. */
typedef struct gpu_side {
    bn_cuda_model *g;
    bn_model_state *st; /* -ngl; NULL: bn_cuda_eval */
} gpu_side;

static bn_status gpu_eval(const gpu_side *gs, const int32_t *tok, int64_t n, int64_t pos,
                          float *logits)
{
    return gs->st ? bn_model_eval(gs->st, tok, n, pos, 1, logits)
                  : bn_cuda_eval(gs->g, tok, n, pos, 1, logits);
}

/* CPU and GPU on the same prompt, then `steps` greedy tokens each on its own tokens. */
static int compare_logits(const gpu_opts *o, mc_session *s, const gpu_side *g,
                          const int32_t *prompt, int n_prompt, compare *c, float *prompt_logits)
{
    const int64_t V = bn_model_n_vocab(s->model);
    float *lc = malloc((size_t)V * 4), *lg = malloc((size_t)V * 4);
    int rc = lc && lg ? BN_EXIT_OK : BN_EXIT_FAIL;
    memset(c, 0, sizeof *c);
    c->first_diff = -1;
    bn_model_state_reset(s->st);
    if (rc == BN_EXIT_OK && (bn_model_eval(s->st, prompt, n_prompt, 0, 1, lc) != BN_OK ||
                             gpu_eval(g, prompt, n_prompt, 0, lg) != BN_OK))
        rc = BN_EXIT_FAIL;
    if (rc == BN_EXIT_OK) memcpy(prompt_logits, lc, (size_t)V * 4);
    for (int step = 0; rc == BN_EXIT_OK; step++) {
        if (c->first_diff < 0)
            c->max_diff = fmax(c->max_diff, max_abs_diff(lc, lg, V, &c->max_logit));
        if (step == o->steps) break;
        int32_t tc = argmax(lc, V), tg = argmax(lg, V);
        if (tc == tg && c->first_diff < 0) c->equal_steps++;
        if (tc != tg && c->first_diff < 0) c->first_diff = step;
        if (bn_model_eval(s->st, &tc, 1, n_prompt + step, 1, lc) != BN_OK ||
            gpu_eval(g, &tg, 1, n_prompt + step, lg) != BN_OK)
            rc = BN_EXIT_FAIL;
    }
    if (rc != BN_EXIT_OK)
        cli_error("bench --gpu: %s", lc && lg ? bn_ctx_errmsg(s->ctx) : "out of memory");
    free(lc);
    free(lg);
    return rc;
}

/* The yardstick of "within rounding": the prompt's last logits from the same file with the
 * plain-C reference kernels against the session's (lc), max |difference| into *spread. */
static int cpu_spread(const gpu_opts *o, mc_session *s, const int32_t *prompt, int n,
                      const float *lc, double *spread)
{
    const int64_t V = bn_model_n_vocab(s->model);
    const int ht = bn_model_hparams_get(s->model)->head_type;
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.kernels = bn_kernels_ref();
    mp.head_type = ht == BN_TYPE_F16 || ht == BN_TYPE_F32 ? 0 : ht;
    bn_model *m = NULL;
    bn_model_state *st = NULL;
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = n;
    float *l = malloc((size_t)V * 4);
    double amax = 0.0;
    int rc = l && bn_model_load(s->ctx, o->mc.model, &mp, &m) == BN_OK &&
                             bn_model_state_new(m, &sp, &st) == BN_OK &&
                             bn_model_eval(st, prompt, n, 0, 1, l) == BN_OK
                     ? BN_EXIT_OK
                     : BN_EXIT_FAIL;
    if (rc == BN_EXIT_OK)
        *spread = max_abs_diff(lc, l, V, &amax);
    else
        cli_error("bench --gpu: reference kernels: %s",
                  l ? bn_ctx_errmsg(s->ctx) : "out of memory");
    bn_model_state_free(st);
    bn_model_free(m);
    free(l);
    return rc;
}

/* Median seconds of pp (a prompt of n tokens) or tg (n tokens one at a time) on the GPU. */
static int time_gpu(const gpu_opts *o, mc_session *s, const gpu_side *g, const int32_t *tok, int n,
                    int gen, double *median)
{
    const int64_t V = bn_model_n_vocab(s->model);
    float *logits = malloc((size_t)V * 4);
    double *t = malloc((size_t)(o->reps + 1) * sizeof *t);
    int rc = logits && t ? BN_EXIT_OK : BN_EXIT_FAIL;
    for (int r = 0; r <= o->reps && rc == BN_EXIT_OK; r++) { /* run 0 warms up */
        const double t0 = bn_time_now();
        bn_status st = gen ? BN_OK : gpu_eval(g, tok, n, 0, logits);
        for (int i = 0; gen && i < n && st == BN_OK; i++) st = gpu_eval(g, &tok[i], 1, i, logits);
        t[r] = bn_time_now() - t0;
        if (st != BN_OK) rc = BN_EXIT_FAIL;
    }
    if (rc == BN_EXIT_OK)
        *median = bn_bench_median(t + 1, o->reps);
    else
        cli_error("bench --gpu: %s", logits && t ? bn_ctx_errmsg(s->ctx) : "out of memory");
    free(logits);
    free(t);
    return rc;
}

/* The device memory NVML reports in use (0 when it cannot tell). */
static unsigned long long nvml_used(int device)
{
    bn_nvml *nv = NULL;
    bn_hw_gpu gpus[BN_HW_MAX_GPUS];
    char why[160];
    unsigned long long used = 0;
    if (bn_nvml_open(&nv, why, sizeof why) != 0) return 0;
    const int n = bn_nvml_query(nv, gpus, BN_HW_MAX_GPUS, why, sizeof why);
    if (device < n) used = gpus[device].mem_used;
    bn_nvml_close(nv);
    return used;
}

typedef struct gpu_result {
    compare c;
    double pp_s, tg_s;
    bn_gpu_pool_stats ps;
    size_t weights;
    unsigned long long nvml;
} gpu_result;

static int print_result(const gpu_opts *o, const gpu_result *r, int n_prompt)
{
    if (!o->json) {
        if (o->mc.gpu_layers > 0) printf("-ngl %ld: partial offload\n", o->mc.gpu_layers);
        printf("logits, CUDA vs CPU: max |diff| %.6g (max |logit| %.4g) over the prompt of %d "
               "tokens and %d greedy steps\n",
               r->c.max_diff, r->c.max_logit, n_prompt, r->c.equal_steps);
        printf("the CPU's own spread (SIMD against reference kernels, the prompt): %.6g\n",
               r->c.ref_diff);
        printf("greedy tokens equal for %d of %d steps%s\n", r->c.equal_steps, o->steps,
               r->c.first_diff < 0 ? "" : " (they part after that)");
        printf("pp%d %.1f t/s, tg%d %.1f t/s (GPU, median of %d)\n", o->pp, o->pp / r->pp_s, o->tg,
               o->tg / r->tg_s, o->reps);
        printf("pool: %zu MiB reserved, %zu MiB used (weights %zu MiB), fragmentation %.3f; "
               "NVML: %llu MiB in use on the device\n",
               r->ps.reserved >> 20, r->ps.used >> 20, r->weights >> 20, r->ps.fragmentation,
               r->nvml >> 20);
        return fflush(stdout) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "gpu_layers", (double)o->mc.gpu_layers);
    cJSON_AddNumberToObject(d, "max_abs_diff", r->c.max_diff);
    cJSON_AddNumberToObject(d, "max_abs_logit", r->c.max_logit);
    cJSON_AddNumberToObject(d, "cpu_ref_max_abs_diff", r->c.ref_diff);
    cJSON_AddNumberToObject(d, "steps", o->steps);
    cJSON_AddNumberToObject(d, "greedy_equal_steps", r->c.equal_steps);
    cJSON_AddNumberToObject(d, "pp", o->pp);
    cJSON_AddNumberToObject(d, "pp_tokens_per_s", o->pp / r->pp_s);
    cJSON_AddNumberToObject(d, "tg", o->tg);
    cJSON_AddNumberToObject(d, "tg_tokens_per_s", o->tg / r->tg_s);
    cJSON_AddNumberToObject(d, "pool_reserved_bytes", (double)r->ps.reserved);
    cJSON_AddNumberToObject(d, "pool_used_bytes", (double)r->ps.used);
    cJSON_AddNumberToObject(d, "weight_bytes", (double)r->weights);
    cJSON_AddNumberToObject(d, "nvml_used_bytes", (double)r->nvml);
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* A state of s's model with the GPU layers of g (-ngl). */
static bn_status gpu_state(const mc_session *s, bn_cuda_model *g, int64_t n_ctx,
                           bn_model_state **out)
{
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = n_ctx;
    sp.gpu = g;
    return bn_model_state_new(s->model, &sp, out);
}

int bench_model_gpu_main(int argc, char **argv)
{
    gpu_opts o;
    int rc = gpu_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    if (need_cuda("bench --gpu")) return BN_EXIT_FAIL;
    const int n_prompt = o.pp < 32 ? o.pp : 32, longest = o.pp > o.tg ? o.pp : o.tg;
    mc_opts mo = o.mc;
    mo.n_ctx = longest > n_prompt + o.steps ? longest : n_prompt + o.steps;
    mo.ctx_soft = 0;
    mo.gpu_layers = 0; /* the CPU reference; the GPU model below is its own */
    mc_session s;
    rc = mc_open(&mo, mo.n_ctx, &s);
    if (rc != BN_EXIT_OK) return rc;
    bn_cuda_params p;
    bn_cuda_params_init(&p);
    p.device = o.device;
    p.n_ctx = mo.n_ctx;
    p.n_layers = (int)o.mc.gpu_layers; /* 0: all */
    gpu_side g = {0};
    gpu_result r;
    memset(&r, 0, sizeof r);
    int32_t *tok = malloc((size_t)longest * sizeof *tok);
    uint64_t seed = 42;
    if (!tok) {
        cli_error("out of memory");
        rc = BN_EXIT_FAIL;
    } else if (bn_cuda_model_new(s.model, &p, &g.g) != BN_OK ||
               (p.n_layers && gpu_state(&s, g.g, mo.n_ctx, &g.st) != BN_OK)) {
        cli_error("bench --gpu: %s", bn_ctx_errmsg(s.ctx));
        rc = BN_EXIT_FAIL;
    }
    for (int i = 0; rc == BN_EXIT_OK && i < longest; i++)
        tok[i] = (int32_t)(bn_bench_rng(&seed) % (uint64_t)bn_model_n_vocab(s.model));
    float *pl = malloc((size_t)bn_model_n_vocab(s.model) * 4);
    if (rc == BN_EXIT_OK && !pl) {
        cli_error("out of memory");
        rc = BN_EXIT_FAIL;
    }
    if (rc == BN_EXIT_OK) rc = compare_logits(&o, &s, &g, tok, n_prompt, &r.c, pl);
    if (rc == BN_EXIT_OK) rc = cpu_spread(&o, &s, tok, n_prompt, pl, &r.c.ref_diff);
    free(pl);
    if (rc == BN_EXIT_OK) rc = time_gpu(&o, &s, &g, tok, o.pp, 0, &r.pp_s);
    if (rc == BN_EXIT_OK) rc = time_gpu(&o, &s, &g, tok, o.tg, 1, &r.tg_s);
    if (rc == BN_EXIT_OK) {
        bn_cuda_pool_stats(g.g, &r.ps);
        r.weights = bn_cuda_weight_bytes(g.g);
        r.nvml = nvml_used(o.device);
        rc = print_result(&o, &r, n_prompt);
    }
    bn_model_state_free(g.st);
    bn_cuda_model_free(g.g);
    free(tok);
    mc_close(&s);
    return rc;
}
