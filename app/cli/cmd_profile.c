/*
 * cmd_profile.c - `bitnet profile`: where a model's time goes, and what would make it faster,
 * each option tried in the same run.
 *
 * The profile. The forward's own timers (bn_model_state_profile, model.h) split the time of
 * -r passes of a prompt of -p tokens and -n generated tokens after it into classes of work
 * (the ternary matmuls, attention, norms, RoPE, KV stores, element-wise work, the LM head,
 * embeddings, barrier waits); sampling (the default sampler on each generated token's logits)
 * is timed here. Each class has the bytes it reads (bn_model_class_bytes: weights once per
 * batch, the KV cache for attention) and the bandwidth that makes, against the read ceiling
 * of this machine: the streaming-sum probe of `bitnet bench` (bench/bench_util.h) on the same
 * threads in the same run, median of PROBE_REPS.
 *
 * The trials. Each option (another thread count from 1 to the CPUs online, another kernel
 * variant this CPU runs, the other LM heads, a context just large enough for the test, the
 * other KV cache type) is loaded beside the setup as given and both run a pass in turn, -r
 * times; the medians of their generation speeds give the gain, and the larger relative
 * spread (max - min) / median of the two sets of passes the noise. An option is recommended
 * only when its gain exceeds the noise and MIN_GAIN both.
 *
 * --gpu (profile_gpu.c): the same trials for the CUDA backend's layers (-ngl) and context,
 * through bn_model_eval on a state with GPU layers; no class profile (the forward's timers
 * see the CPU layers only).
 */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "bitnet/core.h"
#include "bitnet/kernels.h"
#include "bitnet/model.h"
#include "bitnet/sample.h"
#include "bitnet/threadpool.h"
#include "common/model_common.h"
#include "profile.h"

#define DEFAULT_PP      64
#define DEFAULT_TG      32
#define DEFAULT_REPS    3
#define MIN_REPS        PF_MIN_REPS
#define PROBE_REPS      5
#define MIN_GAIN        PF_MIN_GAIN
#define MAX_TRIALS      ((int)(sizeof((pf_report *)0)->trials / sizeof(pf_trial)))
#define PROBE_MIN_BYTES ((size_t)1 << 20)
#define PROBE_MAX_BYTES ((size_t)256 << 20)

void cmd_profile_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet profile [-m MODEL.gguf] [options]\n\n"
            "Where the time of a prompt and of generation goes, by class of work (ternary\n"
            "matmuls qkv/o/gate_up/down, attention, norms, RoPE, KV stores, element-wise\n"
            "work, LM head, embeddings, barrier waits, sampling), with the bytes each reads\n"
            "and the bandwidth it reaches against the read ceiling measured in the same run\n"
            "(bench's streaming-sum probe, same threads). Then each option is tried against\n"
            "the setup as given, in turn, -r times: other thread counts (1 .. CPUs), other\n"
            "kernel variants, the other LM head (q8_0 or the file's rows) and the 6- and\n"
            "4-bit ones (q6, q4: n_embd a multiple of 256), a context just large enough,\n"
            "the other KV cache type. \"recommended\" lines name, per option,\n"
            "the value with the largest measured generation gain among those above both the\n"
            "noise (the spread of the repeated runs) and %.0f%%; fewer than %d passes\n"
            "recommend nothing. -ngl needs --gpu.\n\n"
            "Options:\n" MC_OPTS_HELP
            "  -c, --ctx N       context (KV cache) in tokens (default: the model's, at most\n"
            "                    4096)\n"
            "  -p, --n-prompt N  prompt tokens (default %d)\n"
            "  -n, --n-gen N     generated tokens after the prompt (default %d)\n"
            "  -r, --reps N      passes of the profile and of each trial (default %d)\n"
            "  --no-try          the profile only, no trials\n"
            "  --gpu             the CUDA backend instead: the setup's GPU layers (-ngl;\n"
            "                    default all and the LM head) and pool, then other layer\n"
            "                    counts and a smaller context tried the same way (a CUDA\n"
            "                    build with a device; otherwise it says so and fails)\n"
            "  --json            one JSON document (see bitnet(1))\n"
            "  -h, --help        this help\n\n"
            "Exit status: 0 ok, 1 the model cannot be used or there is no CUDA device\n"
            "(--gpu), 2 usage error.\n",
            100 * MIN_GAIN, MIN_REPS, DEFAULT_PP, DEFAULT_TG, DEFAULT_REPS);
}

/* The tokens every pass evaluates (random ids, the same for every configuration) and the
 * logits of one token. */
typedef struct pf_run {
    const pf_opts *o;
    int32_t *toks; /* n_prompt + n_gen */
    float *logits;
    int64_t V;
} pf_run;

/* ---- options --------------------------------------------------------------------------- */

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, pf_opts *o)
{
    const char *C = "profile";
    o->n_prompt = DEFAULT_PP, o->n_gen = DEFAULT_TG, o->reps = DEFAULT_REPS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_profile_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--gpu")) {
            o->gpu = 1;
        } else if (!strcmp(a, "--no-try")) {
            o->no_try = 1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!v || cli_parse_long(v, 1, 65536, &n))
                return cli_usage_error(C, "%s needs a number in [1, 65536]", a);
            o->n_prompt = (int)n, i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!v || cli_parse_long(v, 1, 65536, &n))
                return cli_usage_error(C, "%s needs a number in [1, 65536]", a);
            o->n_gen = (int)n, i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (!v || cli_parse_long(v, 1, 100, &n))
                return cli_usage_error(C, "%s needs a number in [1, 100]", a);
            o->reps = (int)n, i++;
        } else {
            const int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
            if (r < 0) return BN_EXIT_USAGE;
            if (r == 0) return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    const int rc = mc_apply_defaults(C, MC_DEF_THREADS, &o->mc, NULL);
    if (rc >= 0) return rc;
    if (o->mc.gpu_given && o->mc.gpu_layers > 0 && !o->gpu)
        return cli_usage_error(C, "-ngl profiles GPU layers: add --gpu");
    return -1;
}

/* ---- a configuration, loaded ----------------------------------------------------------- */

static int same_model(const pf_cfg *a, const pf_cfg *b)
{
    return a->threads == b->threads && a->k == b->k && a->head_type == b->head_type;
}

static int inst_state(const char *path, pf_inst *in, char *err, size_t errsz)
{
    const pf_cfg *c = &in->c;
    if (c->ngl > 0 && pf_gpu_open(in, err, errsz) != 0) return -1;
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = c->n_ctx;
    sp.n_batch = c->n_batch;
    sp.kv_type = c->kv_type;
    sp.gpu = in->g;
    if (bn_model_state_new(in->m, &sp, &in->st) != BN_OK)
        return cm_fail(err, errsz, "%s: %s", path, bn_ctx_errmsg(in->ctx));
    in->c.n_ctx = bn_model_state_n_ctx(in->st);
    return 0;
}

/* Loads c (sharing share's context and model when only the state differs). 0 or -1 with the
 * reason in err. */
static int inst_open(const char *path, const pf_cfg *c, const pf_inst *share, pf_inst *in,
                     char *err, size_t errsz)
{
    memset(in, 0, sizeof *in);
    in->c = *c;
    if (share && same_model(c, &share->c)) {
        in->ctx = share->ctx, in->m = share->m;
    } else {
        bn_ctx_params cp = {.n_threads = c->threads};
        if (bn_ctx_new(&in->ctx, &cp) != BN_OK) return cm_fail(err, errsz, "out of memory");
        in->own = 1;
        bn_model_params mp;
        bn_model_params_init(&mp);
        mp.kernels = c->k;
        mp.head_type = c->head_type;
        if (bn_model_load(in->ctx, path, &mp, &in->m) != BN_OK) {
            cm_fail(err, errsz, "%s: %s", path, bn_ctx_errmsg(in->ctx));
            pf_inst_close(in);
            return -1;
        }
    }
    if (inst_state(path, in, err, errsz) != 0) {
        pf_inst_close(in);
        return -1;
    }
    return 0;
}

void pf_inst_close(pf_inst *in)
{
    bn_model_state_free(in->st);
    bn_cuda_model_free(in->g);
    if (in->own) {
        bn_model_free(in->m);
        bn_ctx_free(in->ctx);
    }
    memset(in, 0, sizeof *in);
}

/* One pass: the prompt from an empty cache, then n_gen tokens one at a time after it, each
 * with its logits (sampled when smp is given, the sampling timed into *smp_s; the profile of
 * the prompt into pp_prof when given, and the state's profile reset). The seconds of the
 * prompt and of the generated tokens; -1 on an engine error (message on the ctx). */
static int pass(pf_inst *in, const pf_run *r, bn_sampler *smp, double *pp_s, double *tg_s,
                double *smp_s, bn_model_profile *pp_prof)
{
    const int P = r->o->n_prompt, N = r->o->n_gen;
    double t0 = bn_time_now();
    if (bn_model_eval(in->st, r->toks, P, 0, 1, r->logits) != BN_OK) return -1;
    *pp_s = bn_time_now() - t0;
    if (pp_prof) {
        bn_model_state_profile_get(in->st, pp_prof);
        bn_model_state_profile_reset(in->st);
    }
    double ts = 0.0;
    t0 = bn_time_now();
    for (int i = 0; i < N; i++) {
        if (bn_model_eval(in->st, r->toks + P + i, 1, P + i, 1, r->logits) != BN_OK) return -1;
        if (smp) {
            const double s0 = bn_time_now();
            bn_sampler_accept(smp, bn_sampler_sample(smp, r->logits, (int32_t)r->V));
            ts += bn_time_now() - s0;
        }
    }
    *tg_s = bn_time_now() - t0;
    if (smp_s) *smp_s += ts;
    return 0;
}

/* ---- the profile ----------------------------------------------------------------------- */

/* The KV bytes the generated tokens of a pass read (each at its own position) and the cache
 * the prompt writes (read at least once by its attention). */
static void kv_bytes(const pf_inst *in, const pf_opts *o, double *pp, double *tg)
{
    const bn_model_hparams *h = bn_model_hparams_get(in->m);
    const double per_pos = 2.0 * (double)(h->n_layer * h->n_head_kv * h->head_dim) *
                           (in->c.kv_type == BN_TYPE_F16 ? 2 : 4);
    *pp = per_pos * o->n_prompt;
    *tg = 0;
    for (int i = 0; i < o->n_gen; i++) *tg += per_pos * (o->n_prompt + i + 1);
}

static void fill_phase(pf_phase *ph, const bn_model_profile *p, double wall, int tokens,
                       const size_t *bytes, double per_pass_weights, double kv, int reps)
{
    ph->tokens = tokens;
    ph->wall = wall;
    for (int c = 0; c < BN_PROF_N; c++) {
        ph->seconds[c] = p->seconds[c];
        ph->bytes[c] = c == BN_PROF_EMBED ? (double)bytes[c] * tokens * reps
                                          : (double)bytes[c] * per_pass_weights * reps;
    }
    ph->bytes[BN_PROF_ATTN] = kv * reps;
    ph->classes_wall = p->wall;
}

/* The read ceiling: the probe over at least the bytes of one generated token, on the
 * profiled threads; median of PROBE_REPS. */
static double probe_bw(pf_inst *in)
{
    size_t n = bn_model_bytes_per_token(in->m);
    n = n < PROBE_MIN_BYTES ? PROBE_MIN_BYTES : n > PROBE_MAX_BYTES ? PROBE_MAX_BYTES : n;
    n = n / 8 * 8;
    uint64_t *buf = malloc(n);
    if (!buf) return 0.0;
    for (size_t i = 0; i < n / 8; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;
    double s[PROBE_REPS];
    for (int i = 0; i < PROBE_REPS; i++)
        s[i] = bn_bench_probe_seconds(bn_ctx_pool(in->ctx), buf, (int64_t)(n / 8), NULL);
    free(buf);
    const double med = bn_bench_median(s, PROBE_REPS);
    return med > 0 ? (double)n / med : 0.0;
}

static int run_profile(pf_inst *in, const pf_run *r, pf_report *rep)
{
    const pf_opts *o = r->o;
    bn_sampler *smp = NULL;
    bn_sampler_params spar = bn_sampler_params_default();
    spar.seed = 1;
    if (bn_sampler_new(&smp, &spar) != BN_OK || bn_model_state_profile(in->st, 1) != BN_OK) {
        bn_sampler_free(smp);
        return cm_fail(rep->err, sizeof rep->err, "out of memory");
    }
    double pp_s, tg_s, sum_pp = 0, sum_tg = 0, smp_s = 0;
    bn_model_profile pp = {0}, tg = {0}, p;
    int rc = pass(in, r, NULL, &pp_s, &tg_s, NULL, NULL); /* warm-up */
    for (int k = 0; rc == 0 && k < o->reps; k++) {
        bn_model_state_profile_reset(in->st);
        rc = pass(in, r, smp, &pp_s, &tg_s, &smp_s, &p);
        pf_profile_add(&pp, &p);
        bn_model_state_profile_get(in->st, &p);
        pf_profile_add(&tg, &p);
        sum_pp += pp_s, sum_tg += tg_s;
    }
    bn_sampler_free(smp);
    bn_model_state_profile(in->st, 0);
    if (rc != 0) return cm_fail(rep->err, sizeof rep->err, "%s", bn_ctx_errmsg(in->ctx));
    size_t bytes[BN_PROF_N];
    bn_model_class_bytes(in->m, bytes);
    double kv_pp, kv_tg;
    kv_bytes(in, o, &kv_pp, &kv_tg);
    const int64_t nb = bn_model_state_n_batch(in->st);
    fill_phase(&rep->pp, &pp, sum_pp, o->n_prompt, bytes, (double)((o->n_prompt + nb - 1) / nb),
               kv_pp, o->reps);
    rep->pp.bytes[BN_PROF_HEAD] = (double)bytes[BN_PROF_HEAD] * o->reps; /* last token only */
    fill_phase(&rep->tg, &tg, sum_tg, o->n_gen, bytes, o->n_gen, kv_tg, o->reps);
    rep->tg.sampling = smp_s;
    rep->probe_bps = probe_bw(in);
    return 0;
}

/* ---- trials ---------------------------------------------------------------------------- */

static double spread(double *v, int n)
{
    double lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    const double med = bn_bench_median(v, n);
    return med > 0 ? (hi - lo) / med : 0.0;
}

/* Runs t's configuration against the base in turn, o->reps times each, after a warm-up of
 * each. 0, or -1 with the reason in err (a configuration that cannot load is skipped by the
 * caller with the reason in t->skipped). */
static int run_trial(const char *path, pf_inst *base, const pf_run *r, pf_trial *t, char *err,
                     size_t errsz)
{
    pf_inst cand;
    if (inst_open(path, &t->cfg, base, &cand, t->skipped, sizeof t->skipped) != 0) return 0;
    if (!strcmp(t->option, "lm_head") &&
        !strcmp(bn_model_head_name(cand.m), bn_model_head_name(base->m))) {
        snprintf(t->skipped, sizeof t->skipped, "the file's LM head is %s already",
                 bn_model_head_name(base->m));
        pf_inst_close(&cand);
        return 0;
    }
    const int n = r->o->reps;
    double btg[100], ctg[100], bpp[100], cpp[100], a, b;
    int rc = pass(base, r, NULL, &a, &b, NULL, NULL); /* warm-ups */
    if (rc == 0) rc = pass(&cand, r, NULL, &a, &b, NULL, NULL);
    for (int k = 0; rc == 0 && k < n; k++) {
        rc = pass(base, r, NULL, &a, &b, NULL, NULL);
        bpp[k] = r->o->n_prompt / a, btg[k] = r->o->n_gen / b;
        if (rc == 0) rc = pass(&cand, r, NULL, &a, &b, NULL, NULL);
        cpp[k] = r->o->n_prompt / a, ctg[k] = r->o->n_gen / b;
    }
    if (cand.g) bn_cuda_pool_stats(cand.g, &t->pool);
    if (rc != 0) {
        const char *e = bn_ctx_errmsg(cand.ctx);
        cm_fail(err, errsz, "%s", *e ? e : bn_ctx_errmsg(base->ctx));
        pf_inst_close(&cand);
        return -1;
    }
    pf_inst_close(&cand);
    const double sb = spread(btg, n), sc = spread(ctg, n);
    t->noise = sb > sc ? sb : sc;
    t->base_tg = bn_bench_median(btg, n), t->tg = bn_bench_median(ctg, n);
    t->base_pp = bn_bench_median(bpp, n), t->pp = bn_bench_median(cpp, n);
    t->gain_tg = t->tg / t->base_tg - 1.0;
    t->gain_pp = t->pp / t->base_pp - 1.0;
    t->tried = 1;
    t->recommended = n >= MIN_REPS && t->gain_tg > t->noise && t->gain_tg > MIN_GAIN;
    return 0;
}

static pf_trial *add_trial(pf_report *rep, const pf_cfg *base, const char *option)
{
    if (rep->n_trials >= MAX_TRIALS) return NULL;
    pf_trial *t = &rep->trials[rep->n_trials++];
    memset(t, 0, sizeof *t);
    t->cfg = *base;
    snprintf(t->option, sizeof t->option, "%s", option);
    return t;
}

/* The options to try: every other thread count up to the CPUs online, every other kernel
 * variant but the reference, the other LM heads, the least context that holds the test (or
 * the default when that is the setup), the other KV type. */
static void plan_trials(const pf_inst *base, const pf_opts *o, pf_report *rep)
{
    const pf_cfg *b = &base->c;
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int th = 1; th <= ncpu && th <= 256; th++) {
        if (th == b->threads) continue;
        pf_trial *t = add_trial(rep, b, "threads");
        if (!t) return;
        t->cfg.threads = th;
        snprintf(t->value, sizeof t->value, "%d", th);
        snprintf(t->flag, sizeof t->flag, "-t %d", th);
    }
    const bn_kernels *ks[8];
    const int nk = bn_kernels_list(ks, 8);
    for (int i = 0; i < nk; i++) {
        if (ks[i] == (b->k ? b->k : bn_kernels_get()) || ks[i] == bn_kernels_ref()) continue;
        pf_trial *t = add_trial(rep, b, "kernels");
        if (!t) return;
        t->cfg.k = ks[i];
        snprintf(t->value, sizeof t->value, "%s", ks[i]->name);
        snprintf(t->flag, sizeof t->flag, "kernels %s (no option selects it; the engine picks %s)",
                 ks[i]->name, bn_kernels_get()->name);
    }
    pf_trial *t = add_trial(rep, b, "lm_head");
    if (t) {
        t->cfg.head_type = b->head_type == BN_TYPE_Q8_0 ? 0 : BN_TYPE_Q8_0;
        snprintf(t->value, sizeof t->value, "%s", t->cfg.head_type ? "q8_0" : "keep");
        snprintf(t->flag, sizeof t->flag, "--lm-head %s", t->value);
    }
    /* the 6- and 4-bit heads (fewer bytes a token, at a perplexity cost the flag's help
     * and bitnet perplexity --lm-head show) where the embedding length allows them */
    const int q_types[] = {BN_MODEL_HEAD_Q6H, BN_MODEL_HEAD_Q4H};
    for (int i = 0; i < 2 && bn_model_hparams_get(base->m)->n_embd % 256 == 0; i++) {
        if (b->head_type == q_types[i] || !(t = add_trial(rep, b, "lm_head"))) continue;
        t->cfg.head_type = q_types[i];
        snprintf(t->value, sizeof t->value, "%s", i ? "q4" : "q6");
        snprintf(t->flag, sizeof t->flag, "--lm-head %s (changes the logits)", t->value);
    }
    const int64_t need = (int64_t)o->n_prompt + o->n_gen;
    t = add_trial(rep, b, "ctx");
    if (t) {
        t->cfg.n_ctx = b->n_ctx > need ? need : 0;
        if (t->cfg.n_ctx)
            snprintf(t->value, sizeof t->value, "%lld", (long long)need);
        else
            snprintf(t->value, sizeof t->value, "default");
        snprintf(t->flag, sizeof t->flag, "--ctx %s", t->value);
    }
    t = add_trial(rep, b, "kv");
    if (t) {
        t->cfg.kv_type = b->kv_type == BN_TYPE_F16 ? BN_TYPE_F32 : BN_TYPE_F16;
        snprintf(t->value, sizeof t->value, "%s", bn_type_name(t->cfg.kv_type));
        snprintf(t->flag, sizeof t->flag, "%s",
                 t->cfg.kv_type == BN_TYPE_F32 ? "--kv-f32" : "no --kv-f32");
    }
}

/* The context trial when the setup has the default context already and the test needs it
 * whole: nothing to try, dropped. */
static void drop_same(pf_report *rep, const pf_inst *base)
{
    const int64_t train = bn_model_n_ctx_train(base->m), def = train < 4096 ? train : 4096;
    int w = 0;
    for (int i = 0; i < rep->n_trials; i++) {
        const pf_trial *t = &rep->trials[i];
        if (!strcmp(t->option, "ctx") && t->cfg.n_ctx == 0 && base->c.n_ctx >= def) continue;
        rep->trials[w++] = *t;
    }
    rep->n_trials = w;
}

/* Of the recommended values of one option, only the one with the largest gain stays. */
static void best_only(pf_report *rep)
{
    for (int i = 0; i < rep->n_trials; i++) {
        pf_trial *a = &rep->trials[i];
        for (int k = 0; a->recommended && k < rep->n_trials; k++) {
            const pf_trial *b = &rep->trials[k];
            if (k != i && b->recommended && !strcmp(a->option, b->option) &&
                (b->gain_tg > a->gain_tg || (b->gain_tg == a->gain_tg && k < i)))
                a->recommended = 0;
        }
    }
}

/* ---- the command ----------------------------------------------------------------------- */

static int random_tokens(pf_run *r, const pf_inst *in)
{
    const int n = r->o->n_prompt + r->o->n_gen;
    r->V = bn_model_n_vocab(in->m);
    r->toks = malloc((size_t)n * sizeof *r->toks);
    r->logits = malloc((size_t)r->V * sizeof *r->logits);
    if (!r->toks || !r->logits) return -1;
    uint64_t s = 42;
    for (int i = 0; i < n; i++) r->toks[i] = (int32_t)(bn_bench_rng(&s) % (uint64_t)r->V);
    return 0;
}

static void base_cfg(const pf_opts *o, pf_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->threads = o->mc.threads > 0 ? (int)o->mc.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c->threads < 1) c->threads = 1;
    c->k = NULL;
    c->head_type = o->mc.head_keep ? 0 : o->mc.head_type ? o->mc.head_type : BN_TYPE_Q8_0;
    c->kv_type = o->mc.kv_f32 ? BN_TYPE_F32 : BN_TYPE_F16;
    c->n_ctx = o->mc.n_ctx;
    c->n_batch = o->mc.n_batch;
    /* --gpu: the config's or -ngl's layers, else all of them and the head */
    c->ngl = !o->gpu ? 0 : o->mc.gpu_layers > 0 ? (int)o->mc.gpu_layers : 1 << 20;
}

int cmd_profile(int argc, char **argv)
{
    pf_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    pf_report *rep = calloc(1, sizeof *rep);
    pf_run r = {.o = &o};
    pf_inst base = {0};
    pf_cfg c;
    base_cfg(&o, &c);
    rc = BN_EXIT_FAIL;
    if (!rep) {
        cli_error("out of memory");
        goto out;
    }
    rep->gpu = o.gpu;
    if (o.gpu && pf_gpu_device(&rep->dev) != 0) goto out;
    rep->model = o.mc.model;
    if (inst_open(o.mc.model, &c, NULL, &base, rep->err, sizeof rep->err) != 0) goto fail;
    if ((int64_t)o.n_prompt + o.n_gen > base.c.n_ctx) {
        cm_fail(rep->err, sizeof rep->err,
                "-p %d plus -n %d tokens do not fit the context of %lld (use --ctx)", o.n_prompt,
                o.n_gen, (long long)base.c.n_ctx);
        goto fail;
    }
    if (random_tokens(&r, &base) != 0) {
        cm_fail(rep->err, sizeof rep->err, "out of memory");
        goto fail;
    }
    rep->base = &base;
    if (o.gpu && base.g) bn_cuda_pool_stats(base.g, &rep->pool);
    if (!o.gpu && run_profile(&base, &r, rep) != 0) goto fail;
    if (!o.no_try) {
        if (o.gpu)
            pf_gpu_plan(&base, &o, rep);
        else
            plan_trials(&base, &o, rep);
        drop_same(rep, &base);
        for (int i = 0; i < rep->n_trials; i++)
            if (run_trial(o.mc.model, &base, &r, &rep->trials[i], rep->err, sizeof rep->err))
                goto fail;
        best_only(rep);
    }
    if (o.gpu && base.g) bn_cuda_pool_stats(base.g, &rep->pool); /* with its KV cache */
    rc = o.json ? pf_print_json(&o, rep) : pf_print_text(&o, rep);
    goto out;
fail:
    cli_error("%s", rep->err);
out:
    pf_inst_close(&base);
    free(r.toks);
    free(r.logits);
    free(rep);
    return rc;
}
