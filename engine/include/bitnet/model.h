/*
 * bitnet/model.h - BitNet b1.58 transformers from GGUF: loading, the forward pass and
 * the KV cache.
 *
 * Usage:
 *
 *     bn_model *m;
 *     if (bn_model_load(ctx, "model.gguf", NULL, &m) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));      // one line naming the problem
 *         return 1;
 *     }
 *     bn_model_state *st;                                   // KV cache + scratch, one sequence
 *     bn_model_state_new(m, NULL, &st);
 *     float *logits = bn_malloc(bn_model_n_vocab(m) * sizeof(float));
 *     bn_model_eval(st, prompt, n_prompt, 0, 1, logits);    // whole prompt, last logits
 *     int32_t next = argmax(logits);
 *     bn_model_eval(st, &next, 1, bn_model_state_pos(st), 1, logits);
 *     ...
 *     bn_free(logits);
 *     bn_model_state_free(st);
 *     bn_model_free(m);
 *
 * Architectures (general.architecture): "bitnet-b1.58" (microsoft/bitnet-b1.58-2B-4T,
 * squared-ReLU FFN) and "bitnet" (the older 1bitLLM models; SiLU FFN, as llama.cpp and
 * bitnet.cpp run them). Metadata: <arch>.{context_length, embedding_length, block_count,
 * feed_forward_length, attention.head_count} are required; <arch>.vocab_size (else the
 * length of tokenizer.ggml.tokens, else token_embd's rows), attention.head_count_kv
 * (default head_count), rope.dimension_count (default the head size),
 * attention.layer_norm_rms_epsilon (default 1e-5) and rope.freq_base (default 10000)
 * are optional.
 *
 * Tensors: token_embd.weight (F32, F16 or Q8_0; also the LM head when output.weight is
 * absent), output_norm.weight, per layer blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, attn_sub_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, ffn_sub_norm}.weight.
 * The two sub-norms go in every layer or in none (a model converted from LLaMA, which has
 * none: the inputs of attn_output and ffn_down are then quantized as they are); a file with
 * them in some layers only is a format error naming the first missing one. Norms are F32,
 * F16 or BF16. The seven linear layers are ternary: I2_S (bitnet.cpp; one scale in the
 * tensor's tail), TQ2_0 or TQ1_0 (llama.cpp; every block of a row must carry the same d).
 * An optional F32 tensor blk.N.<name>.scale of one element (llama.cpp's wq_scale etc.)
 * multiplies that layer's output. Every shape is checked; an error names the tensor and
 * shows shapes as rows x cols (outputs x inputs), e.g.
 * "blk.3.ffn_up.weight: shape 2560x6912, expected 6912x2560".
 *
 * The forward pass is the reference's: RMSNorm pre-norms; every BitLinear input is
 * quantized per token to int8 (absmax, bn_quantize_act_row), once per input and shared
 * by q/k/v and by gate/up; RoPE in the NEOX (rotate-half) arrangement; grouped-query
 * causal attention over an F16 or F32 KV cache; the attention sub-norm (if any) before
 * attn_output; FFN act(gate) * up, the FFN sub-norm (if any) before ffn_down; the final
 * norm and the LM head (float dot products, Q8_0 rows against Q8_0-quantized activations
 * as ggml does).
 *
 * Memory: the ternary weights are repacked once into the run-time layout and their
 * pages of the file mapping are released (MADV_DONTNEED), so the file is not resident
 * twice; embeddings and the LM head are read in place from the mapping.
 *
 * Threads: evaluation runs on the pool of the context given to bn_model_load. A model is
 * read-only after loading and may serve several states, but calls that use the same
 * context's pool must not run at the same time.
 *
 * Ownership: the model owns its GGUF reader (bn_model_gguf) and every weight; the state
 * owns its cache and scratch. Free states before their model.
 */
#ifndef BITNET_MODEL_H
#define BITNET_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"
#include "bitnet/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_model bn_model;
typedef struct bn_model_state bn_model_state;

/* FFN activation, chosen by the architecture. */
typedef enum bn_model_act {
    BN_ACT_RELU2 = 0, /* relu(x)^2: bitnet-b1.58 */
    BN_ACT_SILU = 1,  /* x * sigmoid(x): bitnet */
} bn_model_act;

/* Limits checked before anything is allocated. */
#define BN_MODEL_MAX_EMBD  65536
#define BN_MODEL_MAX_FF    (1 << 20)
#define BN_MODEL_MAX_LAYER 1024
#define BN_MODEL_MAX_HEAD  1024
#define BN_MODEL_MAX_VOCAB (1 << 24)
#define BN_MODEL_MAX_CTX   (1 << 24)

typedef struct bn_model_hparams {
    char arch[32]; /* "bitnet-b1.58" or "bitnet" */
    bn_model_act act;
    int64_t n_vocab;
    int64_t n_ctx_train; /* context_length */
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_ff;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim; /* n_embd / n_head */
    int64_t n_rot;    /* rotated dimensions of a head (even, <= head_dim) */
    float eps;        /* RMSNorm epsilon */
    float rope_base;  /* rope.freq_base */
    int weight_type;  /* bn_type of the ternary weights (of the first ternary matrix) */
    int embd_type;    /* bn_type of token_embd */
    int head_type;    /* bn_type of the LM head, or BN_MODEL_HEAD_Q6H / _Q4H */
    int tied;         /* 1 when token_embd is also the LM head */
    int sub_norms;    /* 1: attn_sub_norm and ffn_sub_norm in every layer; 0: in none */
} bn_model_hparams;

/* LM-head formats made at load that no file stores: bn_model_params.head_type asks for
 * them and bn_model_hparams.head_type then reports them (Q6H, Q4H blocks of types.h). */
enum { BN_MODEL_HEAD_Q6H = 0x106, BN_MODEL_HEAD_Q4H = 0x104 };

typedef struct bn_model_params {
    const bn_kernels *kernels; /* NULL: bn_kernels_get() */
    int keep_mapping;          /* nonzero: do not release the repacked tensors' file pages */
    /* The LM head at run time: 0 keeps the file's rows; BN_TYPE_Q8_0 requantizes F16/F32
     * rows to Q8_0 at load when n_embd is a multiple of 32 (else keeps them): about half
     * the bytes an F16 head reads per token, at a small accuracy cost. BN_MODEL_HEAD_Q6H
     * and BN_MODEL_HEAD_Q4H requantize to the 6.56- and 4.56-bit blocks of types.h (n_embd
     * a multiple of 256, else BN_ERR_INVALID); `bitnet perplexity` shows what each costs.
     * The file's pages of the head are released afterwards. Other values: BN_ERR_INVALID. */
    int head_type;
} bn_model_params;

void bn_model_params_init(bn_model_params *p);

/* Opens and maps path, validates it and builds the model. Errors: BN_ERR_IO (cannot
 * open/map), BN_ERR_FORMAT (malformed file, missing tensor or key, wrong shape),
 * BN_ERR_UNSUPPORTED (another architecture, a tensor type we do not run), BN_ERR_RANGE
 * (a dimension over the limits), BN_ERR_NOMEM; each with a one-line message on ctx.
 * p may be NULL for defaults. ctx must outlive the model. */
bn_status bn_model_load(bn_ctx *ctx, const char *path, const bn_model_params *p, bn_model **out);
void bn_model_free(bn_model *m); /* NULL is fine */

const bn_model_hparams *bn_model_hparams_get(const bn_model *m);
int64_t bn_model_n_vocab(const bn_model *m);
int64_t bn_model_n_ctx_train(const bn_model *m);
/* The model's GGUF reader (for the tokenizer and metadata); owned by the model. */
const bn_gguf *bn_model_gguf(const bn_model *m);
bn_ctx *bn_model_ctx(const bn_model *m);
/* Bytes of weights as held at run time (repacked ternary matrices, norms, token_embd
 * and the LM head; token_embd stays in the file mapping, where only the rows looked up
 * become resident once a requantized head has replaced it), and the size of the file. */
size_t bn_model_weight_bytes(const bn_model *m);
size_t bn_model_file_size(const bn_model *m);
/* Bytes one generated token reads: ternary weights, norms and the LM head (the KV cache
 * not included: see bn_model_state_kv_bytes_read). */
size_t bn_model_bytes_per_token(const bn_model *m);
/* The LM head as it runs: "f32", "f16", "q8_0", "q6" or "q4" (static storage). */
const char *bn_model_head_name(const bn_model *m);

/* ---- evaluation state: the KV cache and scratch of one sequence ----------------------- */

typedef struct bn_cuda_model bn_cuda_model; /* bitnet/cuda.h */

typedef struct bn_model_state_params {
    int64_t n_ctx;   /* tokens the cache holds; 0: min(context_length, 4096) */
    int64_t n_batch; /* tokens evaluated at once (longer calls are split); 0: 512 */
    int kv_type;     /* BN_TYPE_F16 or BN_TYPE_F32 */
    /* Partial offload (-ngl): the layers of gpu (a bn_cuda_model of this model, which may
     * serve several states and must outlive them) run on the GPU, the others on the CPU;
     * the activations cross once per batch, and the LM head runs where gpu says. The GPU
     * layers keep their KV cache on the GPU in F16 (taken at the first evaluation, see
     * bn_cuda_seq_forward) and n_ctx is at most the GPU model's context. When the GPU pool
     * has no room for the cache even at a shrunk context, the state runs every layer on the
     * CPU from then on (cpu_layers, logged and counted in the pool's statistics). NULL: all
     * on the CPU. */
    bn_cuda_model *gpu;
} bn_model_state_params;

/* Defaults: n_ctx 0, n_batch 0, kv_type BN_TYPE_F16, gpu NULL. */
void bn_model_state_params_init(bn_model_state_params *p);

/* BN_ERR_RANGE when n_ctx exceeds the model's context_length (or the limits);
 * BN_ERR_INVALID for another kv_type; BN_ERR_NOMEM. p may be NULL for defaults. */
bn_status bn_model_state_new(bn_model *m, const bn_model_state_params *p, bn_model_state **out);
void bn_model_state_free(bn_model_state *st); /* NULL is fine */

/* Empties the cache: the next evaluation starts at position 0. */
void bn_model_state_reset(bn_model_state *st);
/* Forgets the cache past its first pos tokens (pos < bn_model_state_pos; else nothing): the
 * next evaluation that continues the sequence (bn_model_eval_batch) starts at pos. */
void bn_model_state_truncate(bn_model_state *st, int64_t pos);
int64_t bn_model_state_pos(const bn_model_state *st);   /* tokens in the cache */
int64_t bn_model_state_n_ctx(const bn_model_state *st); /* capacity */
size_t bn_model_state_kv_bytes(const bn_model_state *st);
/* Bytes of the cache one more token at the current position reads (K and V). */
size_t bn_model_state_kv_bytes_read(const bn_model_state *st);

/* Evaluates n tokens at positions pos .. pos+n-1. pos may be at most the current
 * position; the cache keeps positions < pos and drops the rest (so pos = 0 starts a new
 * sequence and pos = bn_model_state_pos() continues). Tokens go through the batched
 * (GEMM) path n_batch at a time, one token through GEMV. The logits of the last
 * n_logits tokens (0 .. n) are written to logits, n_logits rows of n_vocab floats (logits
 * may be NULL when n_logits is 0; the LM head is then skipped).
 * Errors, with a message on the model's ctx: BN_ERR_RANGE when pos + n exceeds n_ctx
 * (the state is unchanged), BN_ERR_INVALID for a token id out of range, n < 1, pos past
 * the current position or n_logits out of range. */
bn_status bn_model_eval(bn_model_state *st, const int32_t *tokens, int64_t n, int64_t pos,
                        int64_t n_logits, float *logits);

/* Continuous batching: evaluates the next tokens of each of n_seq sequences in one batched
 * pass, so the weights are read once for all of them, through the GEMM kernels: the n_tok[i]
 * tokens of tokens[i] go to sts[i] from its current position (bn_model_state_pos) into its
 * own KV cache - one for a generated token, more for a prompt joining the batch - and the
 * logits of its last token (n_vocab floats) to logits[i]. The states must be of one model,
 * with the same n_ctx and kv_type, each at most once, and all the tokens at most the first
 * state's n_batch (one sequence alone may have more: it is bn_model_eval then). The first
 * state's threads do the work, with its scratch; a decode step (one token a sequence) of
 * at least 8 sequences a thread is shared out by sequences instead, each thread running
 * the whole forward of its share with the scratch of the share's first state (no barrier
 * between the phases). So none of the states may be evaluated elsewhere meanwhile. The
 * logits are those of bn_model_eval of each sequence alone, to the bit (test_model). Errors, with a message on the model's ctx, change no state:
 * BN_ERR_INVALID (mixed states, a token id out of range, no tokens, too many), BN_ERR_RANGE
 * (a sequence's tokens do not fit in its cache). */
bn_status bn_model_eval_batch(bn_model_state *const *sts, int64_t n_seq,
                              const int32_t *const *tokens, const int64_t *n_tok,
                              float *const *logits);
/* Tokens one evaluation takes at once (its scratch). */
int64_t bn_model_state_n_batch(const bn_model_state *st);

/* Layers of st that run on the GPU (0: none, or none any more after cpu_layers), and
 * whether their KV cache is on the GPU now. */
int64_t bn_model_state_gpu_layers(const bn_model_state *st);
int bn_model_state_gpu_resident(const bn_model_state *st);
/* Gives the GPU KV cache of st back to the pool (memory pressure: an idle server slot) and
 * empties st (its position becomes 0, so the sequence is evaluated again from its start);
 * returns the bytes the pool got back, 0 when st held none. */
size_t bn_model_state_gpu_evict(bn_model_state *st);

/* ---- profiling: where the forward's time goes (`bitnet profile`) -------------------- */

/* The classes of work of the forward. Every moment of an evaluation falls in one: each
 * thread marks the end of each piece of work it does, and the time since its previous
 * mark goes to that piece's class. */
typedef enum bn_prof_class {
    BN_PROF_QKV,      /* ternary matmuls attn_q, attn_k, attn_v (with low-rank corrections) */
    BN_PROF_O,        /* attn_output */
    BN_PROF_GATE_UP,  /* ffn_gate and ffn_up */
    BN_PROF_DOWN,     /* ffn_down */
    BN_PROF_ATTN,     /* attention over the KV cache */
    BN_PROF_NORM,     /* the RMSNorms and the int8 quantization of their outputs */
    BN_PROF_ROPE,     /* RoPE: the angles and the rotations of q and k */
    BN_PROF_KV_STORE, /* K and V into the cache */
    BN_PROF_ELTWISE,  /* relu^2 / SiLU times up, the residual adds */
    BN_PROF_HEAD,     /* the final norm and the LM head */
    BN_PROF_EMBED,    /* the embedding lookups */
    BN_PROF_SYNC,     /* waiting at barriers, waking and joining the pool's threads */
    BN_PROF_N
} bn_prof_class;

/* "qkv", "o", "gate_up", "down", "attention", "norm", "rope", "kv_store", "eltwise",
 * "lm_head", "embed", "sync"; NULL out of range. */
const char *bn_prof_class_name(int c);

typedef struct bn_model_profile {
    /* Seconds of each class: work done by the calling thread alone (embeddings, RoPE
     * angles) counts its wall time, work of the pool the sum of its threads' times divided
     * by their number, so the classes add up to `wall`. */
    double seconds[BN_PROF_N];
    double wall;    /* wall seconds of the batches evaluated */
    int64_t evals;  /* batches evaluated */
    int64_t tokens; /* tokens evaluated */
} bn_model_profile;

/* Turns the profile of st on (nonzero, zeroing it; BN_ERR_NOMEM when its per-thread
 * counters cannot be had) or off (0, freeing them). Off, the forward's only cost is one
 * test of a NULL pointer per piece of work. Each thread writes only its own counters, and
 * they are summed after the pool has joined, so any thread count is fine; evaluations on
 * st (bn_model_eval, bn_model_eval_batch with st first) add to it. */
bn_status bn_model_state_profile(bn_model_state *st, int on);
/* Copies the totals since it was turned on or reset (all zero when it is off). */
void bn_model_state_profile_get(const bn_model_state *st, bn_model_profile *out);
void bn_model_state_profile_reset(bn_model_state *st);
/* The bytes of weights each class reads in one forward of one token (matmuls: codes and
 * scales of their matrices, with low-rank factors; norm: the norm vectors; lm_head: the
 * head as it runs; embed: one row), 0 for the others; the KV cache is not included (see
 * bn_model_state_kv_bytes_read). */
void bn_model_class_bytes(const bn_model *m, size_t bytes[BN_PROF_N]);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_MODEL_H */
