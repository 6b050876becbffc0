/* profile.h - what the parts of `bitnet profile` share: the measurement (cmd_profile.c), its
 * report as text and JSON (profile_out.c) and the GPU variant (profile_gpu.c). */
#ifndef BITNET_APP_PROFILE_H
#define BITNET_APP_PROFILE_H

#include <stdint.h>

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
} pf_cfg;

/* A configuration loaded: its own context and model, or the base's (own 0). */
typedef struct pf_inst {
    pf_cfg c;
    bn_ctx *ctx;
    bn_model *m;
    bn_model_state *st;
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
    pf_trial trials[24];
    int n_trials;
    char err[1024];
} pf_report;

/* Adds b's seconds, wall, evals and tokens into a. */
void pf_profile_add(bn_model_profile *a, const bn_model_profile *b);

/* The report on stdout; the exit code. */
int pf_print_text(const pf_opts *o, const pf_report *r);
int pf_print_json(const pf_opts *o, const pf_report *r);

/* `bitnet profile --gpu`: the exit code. */
int pf_gpu(const pf_opts *o);

/* The least relative gain a recommendation needs besides beating the noise. */
#define PF_MIN_GAIN 0.03

#endif
