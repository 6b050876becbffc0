/*
 * common/session.h - the one generation loop of the program: a loaded model that several
 * sessions may share, and a session (one sequence: its KV cache, its tokens, its sampler)
 * that evaluates a prompt, samples, and stops, calling back once per token.
 *
 * Usage:
 *
 *     cm_model_params mp;
 *     cm_model_params_init(&mp);
 *     mp.path = "model.gguf";
 *     cm_model *m;
 *     char err[512];
 *     if (cm_model_open(&mp, &m, err, sizeof err) != BN_OK) { puts(err); return 1; }
 *     cm_session_params sp;
 *     cm_session_params_init(&sp);                // n_ctx: min(context_length, 4096)
 *     cm_session *s;
 *     if (cm_session_new(m, &sp, NULL, &s, err, sizeof err) != BN_OK) ...;
 *     cm_session_tokenize(s, "Once upon a time", BN_TOKENIZE_ADD_SPECIAL, &n);  // appended
 *     cm_gen g = {.n_predict = 64, .on_token = print_piece, .ud = NULL};
 *     cm_result r;
 *     cm_session_generate(s, &g, &r);             // r.stop: why it ended; r.*_s: timings
 *     cm_session_free(s);
 *     cm_model_free(m);
 *
 * The sequence: a session holds the tokens of its sequence, of which the first
 * cm_session_n_evaluated() are in the KV cache. cm_session_append adds tokens (a prompt, a
 * chat turn); cm_session_generate evaluates every token not yet in the cache (the prompt,
 * timed as such), then samples: each sampled token joins the sequence, and all but the last
 * are evaluated, so the last one sampled (an end token included) waits for the next
 * prompt - a conversation continues with it.
 *
 * Sampling: bn_sampler (bitnet/sample.h). Every token that joins the sequence is recorded in
 * the sampler's history (bn_sampler_accept) once; cm_session_set_sampler starts a new
 * sampler whose history is the sequence's last repeat_last_n tokens.
 *
 * Threads: sessions on one model share its context's thread pool: run them from one thread
 * (interleaving them is fine). A model outlives its sessions.
 *
 * Ownership: cm_model_open owns the context it creates (or borrows p->ctx), the engine model
 * and its tokenizer; a session owns its state, sampler, logits and tokens.
 */
#ifndef BITNET_COMMON_SESSION_H
#define BITNET_COMMON_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/model.h"
#include "bitnet/sample.h"
#include "bitnet/tokenizer.h"

typedef struct cm_model cm_model;
typedef struct cm_session cm_session;

/* ---- a loaded model ------------------------------------------------------------------ */

typedef struct cm_model_params {
    const char *path; /* the GGUF file */
    int n_threads;    /* 0: one per core (ignored with ctx) */
    int head_keep;    /* nonzero: the file's LM head rows; else requantized to head_type */
    int head_type;    /* bn_model_params.head_type unless head_keep; 0: BN_TYPE_Q8_0 */
    bn_ctx *ctx;      /* NULL: a context of its own; else this one, borrowed */
    /* -ngl: 0 all on the CPU; else the last n_gpu_layers layers on the GPU, the LM head too
     * when it exceeds the model's layers (bn_cuda_params.n_layers), for gpu_seq sessions of
     * gpu_ctx tokens (0: 1 session, 4096 tokens at most the model's context) and batches of
     * gpu_batch (0: 512). The GPU model is shared by every session of the model. */
    int n_gpu_layers;
    int gpu_seq;
    int64_t gpu_ctx, gpu_batch;
} cm_model_params;

void cm_model_params_init(cm_model_params *p);

/* Creates the context (unless given), loads the model and its tokenizer. On failure a
 * one-line message in err ("cannot start: ..." or "PATH: ...") and nothing to free. */
bn_status cm_model_open(const cm_model_params *p, cm_model **out, char *err, size_t errsz);
void cm_model_free(cm_model *m); /* NULL is fine; sessions first */

bn_ctx *cm_model_ctx(const cm_model *m);
bn_model *cm_model_bn(const cm_model *m);
bn_tokenizer *cm_model_tok(const cm_model *m);
double cm_model_load_seconds(const cm_model *m); /* model and tokenizer, wall clock */
/* The GPU layers' model (NULL without -ngl), e.g. for its pool's statistics. */
bn_cuda_model *cm_model_gpu(const cm_model *m);

/* ---- a session ------------------------------------------------------------------------ */

typedef struct cm_session_params {
    int64_t n_ctx;   /* tokens of context; 0: 4096 */
    int clamp;       /* nonzero: at most the model's context_length */
    int64_t n_batch; /* 0: the engine's default */
    int kv_f32;      /* nonzero: an F32 KV cache (default F16) */
} cm_session_params;

/* n_ctx 0 (4096), clamp 1, n_batch 0, kv_f32 0. */
void cm_session_params_init(cm_session_params *p);

/* A session on m with the sampler sp (NULL: bn_sampler_params_default()). On failure a
 * one-line message in err ("PATH: ..." for the engine's errors). */
bn_status cm_session_new(cm_model *m, const cm_session_params *p, const bn_sampler_params *sp,
                         cm_session **out, char *err, size_t errsz);
void cm_session_free(cm_session *s); /* NULL is fine */

cm_model *cm_session_model(const cm_session *s);
bn_model_state *cm_session_state(const cm_session *s);
int64_t cm_session_n_ctx(const cm_session *s);

/* The sequence: its tokens, how many, how many of them are in the KV cache. */
const int32_t *cm_session_tokens(const cm_session *s);
size_t cm_session_n_tokens(const cm_session *s);
size_t cm_session_n_evaluated(const cm_session *s);

/* Appends n tokens to the sequence (recorded in the sampler's history); not evaluated yet.
 * BN_ERR_NOMEM. */
bn_status cm_session_append(cm_session *s, const int32_t *ids, size_t n);
/* Tokenizes text (bn_tokenizer_encode_alloc with flags) and appends it; the count in *n
 * (may be NULL). Errors of the tokenizer, or BN_ERR_NOMEM; the sequence is then unchanged. */
bn_status cm_session_tokenize(cm_session *s, const char *text, size_t len, unsigned flags,
                              size_t *n);
/* Gives the session's GPU KV cache back to the pool (memory pressure: an idle server slot);
 * its tokens stay and are evaluated again from the first at the next generation. Returns the
 * bytes the pool got back (0: it held none). */
size_t cm_session_gpu_evict(cm_session *s);
/* Keeps the first n tokens (the cache follows at the next evaluation). */
void cm_session_truncate(cm_session *s, size_t n);
/* An empty sequence and cache; the sampler's history cleared and its PRNG restarted. */
void cm_session_reset(cm_session *s);
/* A new sampler (see the top); BN_ERR_INVALID for bad parameters (the old one kept). */
bn_status cm_session_set_sampler(cm_session *s, const bn_sampler_params *sp);

/* ---- generating ------------------------------------------------------------------------- */

/* Why a generation ended. Values only grow. */
typedef enum cm_stop {
    CM_STOP_EOG = 0,       /* an end-of-generation token was sampled */
    CM_STOP_LENGTH = 1,    /* n_predict tokens */
    CM_STOP_CONTEXT = 2,   /* the context is full */
    CM_STOP_STRING = 3,    /* on_token asked to stop (a stop string, a line break) */
    CM_STOP_CANCELLED = 4, /* cancelled() said so */
    CM_STOP_ERROR = 5,     /* the engine or the sampler failed (message on the model's ctx) */
} cm_stop;

/* "eos", "length", "context", "stop", "cancelled", "error". */
const char *cm_stop_name(cm_stop stop);

/* A generation's counts and times, filled as it runs. */
typedef struct cm_result {
    cm_stop stop;
    size_t n_prompt; /* tokens evaluated before the first sample */
    size_t n_gen;    /* tokens generated (an end token not counted) */
    size_t n_evals;  /* evaluations of generated tokens */
    double prompt_s; /* seconds in the prompt's evaluation */
    double gen_s;    /* seconds in the generated tokens' evaluations */
    double t_start;  /* bn_time_now() when the generation started */
} cm_result;

/* Tokens per second of the prompt and of generation (0 when no time passed). */
double cm_result_prompt_tps(const cm_result *r);
double cm_result_gen_tps(const cm_result *r);

/* Token callback results. */
enum { CM_GO = 0, CM_STOP = 1, CM_FAIL = -1 };

typedef struct cm_gen {
    int64_t n_predict; /* tokens at most; 0: none */
    int ignore_eog;    /* nonzero: an end token is generated like any other */
    /* Once per generated token (not for an end token that stops): its id, its text (NULL
     * for a control or unused token) and the counts so far. CM_GO, CM_STOP (ends with
     * CM_STOP_STRING, the token kept) or CM_FAIL (ends with CM_STOP_ERROR). May be NULL. */
    int (*on_token)(void *ud, int32_t id, const char *piece, size_t len, const cm_result *r);
    /* After the prompt's evaluation. May be NULL. */
    void (*on_prompt)(void *ud, const cm_result *r);
    /* Before each sample: nonzero ends with CM_STOP_CANCELLED. May be NULL. */
    int (*cancelled)(void *ud);
    void *ud;
} cm_gen;

/* Evaluates what is not in the cache (at least one token must be, unless the last
 * evaluation - cm_session_eval_batch's or this function's - left logits for the whole
 * sequence: else BN_ERR_INVALID), then samples up to g->n_predict tokens (see the top). BN_OK with the reason in r->stop
 * (CM_STOP_ERROR when on_token failed); else the engine's status with its message on the
 * model's ctx, r->stop CM_STOP_ERROR and, when the prompt failed, its tokens dropped. */
bn_status cm_session_generate(cm_session *s, const cm_gen *g, cm_result *r);

/* Continuous batching: evaluates what each of n sessions of one model has not evaluated yet
 * (the last token sampled, or a new prompt) in one batched pass (bn_model_eval_batch), so
 * that the next cm_session_generate of each samples at once from its logits. All their
 * pending tokens must fit in cm_session_n_batch of the first (one session alone may have
 * more). The wall time in *seconds (may be NULL). BN_ERR_INVALID (another model, a session
 * with nothing to evaluate, too many tokens), the engine's errors (message on the model's
 * ctx); on error no session changes. */
bn_status cm_session_eval_batch(cm_session *const *ss, size_t n, double *seconds);
/* The same with at most most[i] of session i's pending tokens (the first ones; at least one;
 * most NULL: all): a long prompt goes in over several passes beside the others' decoding. A
 * session left with pending tokens has no logits to sample from until the pass that
 * evaluates its last one. */
bn_status cm_session_eval_part(cm_session *const *ss, size_t n, const size_t *most,
                               double *seconds);
/* Tokens one evaluation of the session takes at once. */
int64_t cm_session_n_batch(const cm_session *s);

/* A seed from the clock, for "seed -1". */
uint64_t cm_seed_from_clock(void);

#endif
