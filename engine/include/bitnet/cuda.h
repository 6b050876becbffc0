/*
 * bitnet/cuda.h - the CUDA backend: NVIDIA devices, and the BitNet b1.58 forward of a loaded
 * model on one GPU, its weights, KV cache and scratch carved from one GPU pool
 * (bitnet/gpu_pool.h). Built with `make CUDA=1` (nvcc); otherwise every function but
 * bn_cuda_built says "CUDA: not built" (BN_ERR_UNSUPPORTED) and no CUDA library is linked.
 *
 * Usage:
 *
 *     bn_cuda_params p;
 *     bn_cuda_params_init(&p);                             // device 0, context 4096
 *     bn_cuda_model *g;
 *     if (bn_cuda_model_new(model, &p, &g) != BN_OK) ... bn_ctx_errmsg(bn_model_ctx(model)) ...
 *     bn_cuda_eval(g, prompt, n_prompt, 0, 1, logits);    // as bn_model_eval
 *     bn_cuda_eval(g, &next, 1, bn_cuda_pos(g), 1, logits);
 *     bn_cuda_model_free(g);                               // before the model
 *
 * The forward is the CPU engine's (model.h): the ternary weights in their run-time layout
 * (2 bits a weight, kernels.h) read by a dp4a W2A8 product (one token per weight load for
 * generation, eight for prompts), int8 activations quantized exactly as on the CPU, RoPE,
 * attention over an F16 KV cache, relu^2 or SiLU, the final norm and the LM head (Q8_0
 * rows against Q8_0 activations when the CPU's head is Q8_0, requantized from the file's
 * rows with the CPU's rounding; else the file's F16 or F32 rows). The embeddings are looked
 * up on the host. Sums of floats run in another order than on the CPU: logits agree within
 * rounding, not to the bit. Limits: a context of at most 8192 tokens, no Q6/Q4 LM head on
 * the GPU.
 *
 * Partial offload (-ngl N, as llama.cpp counts it): bn_cuda_params.n_layers = N puts the
 * last min(N, n_layer) layers on the GPU, and the LM head too when N > n_layer; the model
 * state (bn_model_state_params.gpu) runs the first layers on the CPU and hands the
 * activations across once per batch (bn_cuda_seq_forward). Several sequences share one
 * bn_cuda_model (its weights and scratch); each holds its own KV cache of the GPU layers,
 * taken from the pool at its first forward and given back by bn_cuda_seq_evict.
 *
 * Errors are set on the model's context (bn_model_ctx) with one line naming the problem:
 * BN_ERR_UNSUPPORTED (not built, no device, a head type the backend lacks), BN_ERR_NOMEM
 * (the device cannot give the pool: the bytes needed and free), BN_ERR_INTERNAL (a CUDA
 * error, named), BN_ERR_INVALID / BN_ERR_RANGE (arguments, as bn_model_eval).
 */
#ifndef BITNET_CUDA_H
#define BITNET_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/gpu_pool.h"
#include "bitnet/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has the CUDA backend, else 0. */
int bn_cuda_built(void);

typedef struct bn_cuda_device {
    int index;
    char name[256];
    int cc_major, cc_minor; /* compute capability */
    int n_sm;
    size_t mem_total, mem_free;
    int bus_bits;        /* memory bus width */
    double mem_khz;      /* memory clock, 0 when unknown */
    int runtime, driver; /* CUDA versions, as 13000 */
} bn_cuda_device;

/* Up to max devices into out and their number into *n. BN_OK with *n 0 and the reason in
 * why (no driver, no device) when there is none; BN_ERR_UNSUPPORTED ("CUDA: not built")
 * without the backend. */
bn_status bn_cuda_devices(bn_cuda_device *out, int max, int *n, char *why, size_t whysz);

typedef struct bn_cuda_params {
    int device;      /* index (default 0) */
    int64_t n_ctx;   /* 0: min(training context, 4096), halved while the device lacks the
                      * memory (bn_cuda_n_ctx); at most 8192 */
    int64_t n_batch; /* tokens per forward (default 512) */
    int n_layers;    /* 0: every layer and the LM head; else the last min(n_layers, n_layer)
                      * layers, and the LM head when n_layers > n_layer (llama.cpp's -ngl) */
    int n_seq;       /* KV caches of n_ctx the pool makes room for (0: 1); halved while the
                      * device lacks the memory, before the context is (bn_cuda_n_seq) */
} bn_cuda_params;

void bn_cuda_params_init(bn_cuda_params *p);

typedef struct bn_cuda_model bn_cuda_model;

/* Uploads m's weights into a pool sized for them, the KV cache and the scratch. m must
 * outlive the result. */
bn_status bn_cuda_model_new(bn_model *m, const bn_cuda_params *p, bn_cuda_model **out);
void bn_cuda_model_free(bn_cuda_model *g); /* NULL is fine */

/* As bn_model_eval: tokens at positions pos .. pos + n - 1 (pos <= bn_cuda_pos), the logits
 * of the last n_logits tokens into logits (n_logits x n_vocab). */
bn_status bn_cuda_eval(bn_cuda_model *g, const int32_t *tokens, int64_t n, int64_t pos,
                       int64_t n_logits, float *logits);
int64_t bn_cuda_pos(const bn_cuda_model *g);
/* The context in tokens, and how many times it was halved to fit the device (the memory-
 * pressure response shrink_ctx: only when bn_cuda_params.n_ctx was 0, each step logged at
 * BN_LOG_WARN, down to 64 tokens; n_shrinks may be NULL). */
int64_t bn_cuda_n_ctx(const bn_cuda_model *g, int *n_shrinks);
/* The pool's statistics, and the device bytes of the weights alone. */
void bn_cuda_pool_stats(const bn_cuda_model *g, bn_gpu_pool_stats *s);
size_t bn_cuda_weight_bytes(const bn_cuda_model *g);

/* The KV caches the pool was sized for: bn_cuda_params.n_seq or fewer (see there). */
int bn_cuda_n_seq(const bn_cuda_model *g);
/* The first layer on the GPU (0: all of them), and whether the LM head is there too. */
int64_t bn_cuda_first_layer(const bn_cuda_model *g);
int bn_cuda_has_head(const bn_cuda_model *g);
/* The pool, to set memory-pressure responses on (bn_gpu_pool_set_pressure): a server sets
 * BN_GPU_PRESSURE_EVICT_KV to evict the caches of its idle slots (bn_cuda_seq_evict). */
bn_gpu_pool *bn_cuda_pool(bn_cuda_model *g);

/* One sequence on a bn_cuda_model: the KV cache of the GPU layers. */
typedef struct bn_cuda_seq bn_cuda_seq;

/* A sequence of up to n_ctx tokens (at most bn_cuda_n_ctx(g)); no device memory yet. */
bn_status bn_cuda_seq_new(bn_cuda_model *g, int64_t n_ctx, bn_cuda_seq **out);
void bn_cuda_seq_free(bn_cuda_seq *s); /* gives its cache back; NULL is fine */
/* x: T rows of n_embd on the host, the input of the first GPU layer for positions pos ..
 * pos + T - 1 (pos <= bn_cuda_seq_pos). Without its cache (the first call, or after an
 * eviction) it takes one (bn_cuda_seq_take(s, T)) and pos must be 0. On return x holds the last GPU
 * layer's output, unless the LM head is on the GPU and n_logits > 0: then the logits of the last
 * n_logits tokens are in logits (n_logits x n_vocab) and x is undefined. */
bn_status bn_cuda_seq_forward(bn_cuda_seq *s, float *x, int64_t T, int64_t pos, int64_t n_logits,
                              float *logits);
/* Takes the sequence's cache from the pool now (BN_OK at once when it holds one): at the
 * context it was made with, the pool's pressure chain running first when there is no room
 * (a server's evict_kv); then shrink_ctx: the context halved (each step logged at
 * BN_LOG_WARN and counted in the pool's n_pressure) while it holds n_min and 64 tokens;
 * past that BN_ERR_NOMEM (the model state then takes cpu_layers). */
bn_status bn_cuda_seq_take(bn_cuda_seq *s, int64_t n_min);
int64_t bn_cuda_seq_pos(const bn_cuda_seq *s);
int64_t bn_cuda_seq_n_ctx(const bn_cuda_seq *s); /* after any shrink_ctx */
int bn_cuda_seq_resident(const bn_cuda_seq *s);  /* 1 while it holds its cache */
/* Gives the cache back to the pool (its position becomes 0) and returns the bytes the pool
 * got back (0 when it held none). */
size_t bn_cuda_seq_evict(bn_cuda_seq *s);

/* The W2A8 product on a rows x cols ternary matrix: one token on the matrix alone (the
 * latency of a call, launch included), and over `stack` copies of it in one matrix of at
 * least copy_bytes of codes (streaming from memory as a model's layers do, without launch
 * gaps), for one token and for 8 tokens per weight load; against a device-to-device copy
 * of copy_bytes. Every output of the 8-token product is checked against the CPU reference
 * kernel (max_diff, 0 when equal to the bit). */
typedef struct bn_cuda_gemv_bench {
    double gemv_us;  /* one token, the matrix alone, per call */
    double gemv_gbs; /* one token over the stack: bytes read (codes, scales, activations) / s */
    double gemm8_us; /* 8 tokens over the stack, per copy of the matrix */
    double copy_gbs; /* (read + written) / time */
    double max_diff; /* |GPU - CPU reference| over the outputs */
    int64_t stack;   /* copies of the matrix stacked */
} bn_cuda_gemv_bench;

bn_status bn_cuda_bench_gemv(bn_ctx *ctx, int device, int64_t rows, int64_t cols, int iters,
                             size_t copy_bytes, bn_cuda_gemv_bench *out);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_CUDA_H */
