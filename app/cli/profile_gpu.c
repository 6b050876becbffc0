/* profile_gpu.c - `bitnet profile --gpu`: the CUDA backend's pool and speed on this device,
 * and the context that runs fastest, each context tried in the same run against the one
 * given (or the backend's default), in turn, -r passes each; a build without the backend
 * or a machine without a device says so on one line and fails. */
#include "profile.h"

#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "bitnet/cuda.h"
#include "common/cli.h"

#define GPU_CTX_MAX 8192
#define N_CTX_TRY   3

typedef struct gpu_run {
    const pf_opts *o;
    bn_model *m;
    int32_t *toks;
    float *logits;
} gpu_run;

typedef struct gpu_try {
    int64_t want, got; /* the context asked for (0: default) and given */
    int shrinks;
    double tg, pp, base_tg, noise;
    bn_gpu_pool_stats ps;
    size_t weights;
    char skipped[256];
} gpu_try;

/* A prompt, then n_gen tokens one at a time; the seconds of each. */
static int gpu_pass(bn_cuda_model *g, const gpu_run *r, double *pp_s, double *tg_s)
{
    const int P = r->o->n_prompt, N = r->o->n_gen;
    double t0 = bn_time_now();
    if (bn_cuda_eval(g, r->toks, P, 0, 1, r->logits) != BN_OK) return -1;
    *pp_s = bn_time_now() - t0;
    t0 = bn_time_now();
    for (int i = 0; i < N; i++)
        if (bn_cuda_eval(g, r->toks + P + i, 1, P + i, 1, r->logits) != BN_OK) return -1;
    *tg_s = bn_time_now() - t0;
    return 0;
}

static bn_cuda_model *gpu_open(const gpu_run *r, int64_t n_ctx, char *why, size_t whysz)
{
    bn_cuda_params p;
    bn_cuda_params_init(&p);
    p.n_ctx = n_ctx;
    p.n_batch = r->o->mc.n_batch;
    bn_cuda_model *g = NULL;
    if (bn_cuda_model_new(r->m, &p, &g) != BN_OK)
        snprintf(why, whysz, "%s", bn_ctx_errmsg(bn_model_ctx(r->m)));
    return g;
}

/* The context t->want against base, in turn, -r passes each after a warm-up. */
static int gpu_trial(const gpu_run *r, bn_cuda_model *base, gpu_try *t)
{
    bn_cuda_model *g = base;
    if (t->want != -1 && !(g = gpu_open(r, t->want, t->skipped, sizeof t->skipped))) return 0;
    const int n = r->o->reps;
    double btg[100], ctg[100], cpp[100], a, b;
    int rc = gpu_pass(base, r, &a, &b) | gpu_pass(g, r, &a, &b);
    for (int k = 0; rc == 0 && k < n; k++) {
        rc = gpu_pass(base, r, &a, &b);
        btg[k] = r->o->n_gen / b;
        rc |= gpu_pass(g, r, &a, &b);
        cpp[k] = r->o->n_prompt / a, ctg[k] = r->o->n_gen / b;
    }
    if (rc == 0) {
        t->got = bn_cuda_n_ctx(g, &t->shrinks);
        bn_cuda_pool_stats(g, &t->ps);
        t->weights = bn_cuda_weight_bytes(g);
        t->base_tg = bn_bench_median(btg, n), t->tg = bn_bench_median(ctg, n);
        t->pp = bn_bench_median(cpp, n);
        double lo = btg[0], hi = btg[0];
        for (int k = 0; k < n; k++) {
            lo = btg[k] < lo ? btg[k] : lo, hi = btg[k] > hi ? btg[k] : hi;
            lo = ctg[k] < lo ? ctg[k] : lo, hi = ctg[k] > hi ? ctg[k] : hi;
        }
        t->noise = t->base_tg > 0 ? (hi - lo) / t->base_tg : 0;
    } else {
        snprintf(t->skipped, sizeof t->skipped, "%s", bn_ctx_errmsg(bn_model_ctx(r->m)));
    }
    if (g != base) bn_cuda_model_free(g);
    return rc;
}

static void print_try(const gpu_try *t, const bn_cuda_device *d)
{
    if (t->skipped[0]) {
        printf("  ctx %-8lld skipped: %s\n", (long long)t->want, t->skipped);
        return;
    }
    printf("  ctx %-8lld %10.1f %10.1f %+7.1f%% %6.1f%%  pool %.1f MiB reserved, %.1f used, "
           "peak %.1f, largest free %.1f, fragmentation %.3f; device free %.1f of %.1f MiB\n",
           (long long)t->got, t->tg, t->pp, 100 * (t->tg / t->base_tg - 1), 100 * t->noise,
           t->ps.reserved / 1048576.0, t->ps.used / 1048576.0, t->ps.peak_used / 1048576.0,
           t->ps.largest_free / 1048576.0, t->ps.fragmentation, d->mem_free / 1048576.0,
           d->mem_total / 1048576.0);
}

static cJSON *try_json(const gpu_try *t)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n_ctx_asked", (double)t->want);
    if (t->skipped[0]) {
        cJSON_AddStringToObject(j, "skipped", t->skipped);
        return j;
    }
    cJSON_AddNumberToObject(j, "n_ctx", (double)t->got);
    cJSON_AddNumberToObject(j, "ctx_shrinks", t->shrinks);
    cJSON_AddNumberToObject(j, "tg_tokens_per_s", t->tg);
    cJSON_AddNumberToObject(j, "pp_tokens_per_s", t->pp);
    cJSON_AddNumberToObject(j, "base_tg_tokens_per_s", t->base_tg);
    cJSON_AddNumberToObject(j, "noise", t->noise);
    cJSON_AddNumberToObject(j, "weight_bytes", (double)t->weights);
    cJSON_AddNumberToObject(j, "pool_reserved", (double)t->ps.reserved);
    cJSON_AddNumberToObject(j, "pool_used", (double)t->ps.used);
    cJSON_AddNumberToObject(j, "pool_peak_used", (double)t->ps.peak_used);
    cJSON_AddNumberToObject(j, "pool_largest_free", (double)t->ps.largest_free);
    cJSON_AddNumberToObject(j, "pool_fragmentation", t->ps.fragmentation);
    return j;
}

/* The report: every context tried, the layers (all of them: the backend runs the whole
 * model), the KV type (f16 only), and the fastest context when it beats the given one by
 * more than the noise and PF_MIN_GAIN. */
static int gpu_report(const pf_opts *o, const bn_cuda_device *d, const gpu_run *r, const gpu_try *t,
                      int n)
{
    const gpu_try *best = NULL;
    for (int i = 1; i < n; i++) {
        const double gain = t[i].tg / t[i].base_tg - 1;
        if (!t[i].skipped[0] && gain > t[i].noise && gain > PF_MIN_GAIN &&
            (!best || t[i].tg > best->tg))
            best = &t[i];
    }
    const int64_t n_layer = bn_model_hparams_get(r->m)->n_layer;
    if (o->json) {
        cJSON *doc = cJSON_CreateObject(), *a = cJSON_CreateArray();
        cJSON_AddStringToObject(doc, "model", o->mc.model);
        cJSON_AddStringToObject(doc, "device", d->name);
        cJSON_AddNumberToObject(doc, "device_mem_total", (double)d->mem_total);
        cJSON_AddNumberToObject(doc, "device_mem_free", (double)d->mem_free);
        cJSON_AddNumberToObject(doc, "layers_on_gpu", (double)n_layer);
        cJSON_AddStringToObject(doc, "kv_type", "f16");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, try_json(&t[i]));
        cJSON_AddItemToObject(doc, "contexts", a);
        cJSON *rec = cJSON_AddArrayToObject(doc, "recommendations");
        if (best) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "option", "ctx");
            cJSON_AddNumberToObject(x, "value", (double)best->got);
            cJSON_AddNumberToObject(x, "gain_tg", best->tg / best->base_tg - 1);
            cJSON_AddItemToArray(rec, x);
        }
        return cli_print_json(doc) == 0 ? BN_EXIT_OK : BN_EXIT_FAIL;
    }
    printf("%s on %s (compute %d.%d, %d SMs)\n", o->mc.model, d->name, d->cc_major, d->cc_minor,
           d->n_sm);
    printf("layers: all %lld on the GPU (the model fits: it loaded), KV cache f16 (the only type "
           "the backend keeps)\n",
           (long long)n_layer);
    printf("contexts tried (tokens/s, median of %d passes, the first context run in turn):\n",
           o->reps);
    printf("  %-12s %10s %10s %8s %7s\n", "CONTEXT", "TG", "PP", "TG GAIN", "NOISE");
    for (int i = 0; i < n; i++) print_try(&t[i], d);
    if (best)
        printf("recommended: --ctx %lld (%+.1f%% tg, measured)\n", (long long)best->got,
               100 * (best->tg / best->base_tg - 1));
    else
        printf("no recommendation: no context beat the first by more than the noise and %.0f%%\n",
               100 * PF_MIN_GAIN);
    return BN_EXIT_OK;
}

/* A device, or the one line saying why there is none. */
static int gpu_device(bn_cuda_device *d)
{
    char why[256] = "";
    int n = 0;
    if (!bn_cuda_built()) {
        cli_error("profile --gpu: this build has no CUDA backend (build with make CUDA=1)");
        return -1;
    }
    if (bn_cuda_devices(d, 1, &n, why, sizeof why) != BN_OK || n < 1) {
        cli_error("profile --gpu: no CUDA device%s%s", why[0] ? ": " : "", why);
        return -1;
    }
    return 0;
}

int pf_gpu(const pf_opts *o)
{
    bn_cuda_device d;
    if (gpu_device(&d) != 0) return BN_EXIT_FAIL;
    bn_ctx *ctx = NULL;
    bn_ctx_params cp = {.n_threads = (int)o->mc.threads};
    gpu_run r = {.o = o};
    gpu_try t[N_CTX_TRY];
    bn_cuda_model *base = NULL;
    int rc = BN_EXIT_FAIL, n = 0;
    memset(t, 0, sizeof t);
    if (bn_ctx_new(&ctx, &cp) != BN_OK) goto out;
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.head_type = o->mc.head_keep ? 0 : BN_TYPE_Q8_0;
    if (bn_model_load(ctx, o->mc.model, &mp, &r.m) != BN_OK) {
        cli_error("%s: %s", o->mc.model, bn_ctx_errmsg(ctx));
        goto out;
    }
    const int P = o->n_prompt, N = o->n_gen;
    const int64_t V = bn_model_n_vocab(r.m);
    r.toks = malloc((size_t)(P + N) * sizeof *r.toks);
    r.logits = malloc((size_t)V * sizeof *r.logits);
    uint64_t seed = 42;
    for (int i = 0; r.toks && i < P + N; i++)
        r.toks[i] = (int32_t)(bn_bench_rng(&seed) % (uint64_t)V);
    char why[256] = "";
    if (!r.toks || !r.logits || !(base = gpu_open(&r, o->mc.n_ctx, why, sizeof why))) {
        cli_error("profile --gpu: %s", why[0] ? why : "out of memory");
        goto out;
    }
    if (bn_cuda_n_ctx(base, NULL) < P + N) {
        cli_error("profile --gpu: -p %d plus -n %d tokens do not fit the context of %lld", P, N,
                  (long long)bn_cuda_n_ctx(base, NULL));
        goto out;
    }
    const int64_t need = (P + N + 63) / 64 * 64, tries[N_CTX_TRY] = {-1, need, GPU_CTX_MAX};
    for (int i = 0; i < N_CTX_TRY; i++) {
        if (i > 0 && tries[i] == bn_cuda_n_ctx(base, NULL)) continue;
        t[n].want = tries[i]; /* -1: the base itself, against itself */
        if (gpu_trial(&r, base, &t[n]) != 0 && i == 0) {
            cli_error("profile --gpu: %s", t[n].skipped);
            goto out;
        }
        if (i == 0) t[n].want = t[n].got;
        n++;
    }
    rc = gpu_report(o, &d, &r, t, n);
out:
    bn_cuda_model_free(base);
    bn_model_free(r.m);
    bn_ctx_free(ctx);
    free(r.toks);
    free(r.logits);
    return rc;
}
