/* profile.h - what the parts of `bitnet profile` share: the measurement (cmd_profile.c), its
 * report as text and JSON (profile_out.c) and the GPU variant (profile_gpu.c). */
#ifndef BITNET_APP_PROFILE_H
#define BITNET_APP_PROFILE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "bitnet/cuda.h"
#include "bitnet/kernels.h"
#include "bitnet/model.h"
#include "common/model_common.h"

typedef struct pf_opts {
    mc_opts mc; /* -m, -t, --ctx, --batch, --kv-f32, --lm-head */
    int n_prompt, n_gen, reps;
    int json, gpu, no_try;
} pf_opts;

/* One configuration: what a trial changes. */
typedef struct pf_cfg {
    int threads;
    const bn_kernels *k; /* NULL: bn_kernels_get() */
    int head_type;       /* bn_model_params.head_type */
    int kv_type;
    int64_t n_ctx; /* 0: the engine's default; after loading, the context it got */
    int64_t n_batch;
    int ngl; /* layers on the GPU (-ngl, --gpu): 0 none, more than n_layer all and the head */
} pf_cfg;

/* A configuration loaded: its own context and model, or the base's (own 0). */
typedef struct pf_inst {
    pf_cfg c;
    bn_ctx *ctx;
    bn_model *m;
    bn_model_state *st;
    bn_cuda_model *g; /* the GPU layers (ngl > 0), the instance's own */
    int own;
} pf_inst;

void pf_inst_close(pf_inst *in);

/* The profile of the prompt or of generation, summed over the passes. */
typedef struct pf_phase {
    int tokens;                /* per pass */
    double wall;               /* seconds measured around the evaluations (and sampling) */
    double classes_wall;       /* the forward's own wall seconds (bn_model_profile.wall) */
    double seconds[BN_PROF_N]; /* per class */
    double bytes[BN_PROF_N];   /* read per class */
    double sampling;           /* seconds of sampling (generation only) */
} pf_phase;

typedef struct pf_trial {
    char option[16]; /* "threads", "kernels", "lm_head", "ctx", "kv" */
    char value[32];
    char flag[96];     /* how to ask for it */
    char skipped[256]; /* why it was not run; "" when it was */
    pf_cfg cfg;
    bn_gpu_pool_stats pool; /* --gpu: the pool of the trial's GPU layers (ngl > 0) */
    int tried, recommended;
    double base_tg, tg, base_pp, pp; /* medians, tokens/s */
    double gain_tg, gain_pp;         /* tg / base_tg - 1 */
    double noise;                    /* the larger relative spread of the two */
} pf_trial;

typedef struct pf_report {
    const char *model;
    const pf_inst *base;
    pf_phase pp, tg;
    double probe_bps; /* the read ceiling */
    int gpu;          /* --gpu: the device, the base's pool, no class profile */
    bn_cuda_device dev;
    bn_gpu_pool_stats pool;
    pf_trial trials[24];
    int n_trials;
    char err[1024];
} pf_report;

/* Adds b's seconds, wall, evals and tokens into a. */
void pf_profile_add(bn_model_profile *a, const bn_model_profile *b);

/* The report on stdout; the exit code. */
int pf_print_text(const pf_opts *o, const pf_report *r);
int pf_print_json(const pf_opts *o, const pf_report *r);

/* --gpu: the device into d, or the one line (no backend, no device) printed and -1. */
int pf_gpu_device(bn_cuda_device *d);
/* --gpu: the GPU layers of in (in->c.ngl > 0) for its model and context: 0, or -1 with the
 * reason in err. */
int pf_gpu_open(pf_inst *in, char *err, size_t errsz);
/* --gpu: the trials of other layer counts and contexts. */
void pf_gpu_plan(const pf_inst *base, const pf_opts *o, pf_report *rep);
/* --gpu: the device, the setup's layers and pool, as text or into the JSON document d; a
 * GPU trial's pool into its JSON object j. */
void pf_gpu_text_head(const pf_report *r);
void pf_gpu_json_head(const pf_report *r, cJSON *d);
void pf_gpu_trial_json(const pf_trial *t, cJSON *j);

/* The least relative gain a recommendation needs besides beating the noise. */
#define PF_MIN_GAIN 0.03
/* The passes of a trial below which its noise is unknown: nothing is recommended. */
#define PF_MIN_REPS 3

#endif
