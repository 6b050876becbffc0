/*
 * bitnet/train.h - quantization-aware training of BitNet b1.58 models, checkpoints, and
 * export to the bitnet-b1.58 GGUF layout.
 *
 * Usage:
 *
 *     bn_train_model_config cfg;
 *     bn_train_config_preset("tiny", vocab_size, &cfg);
 *     bn_train_hparams hp;
 *     bn_train_hparams_default(&hp);
 *     hp.steps = 1000;
 *     bn_trainer *tr;
 *     if (bn_trainer_new(ctx, &cfg, &hp, &tr) != BN_OK) { ... bn_ctx_errmsg(ctx) ... }
 *     bn_trainer_set_tokenizer(tr, tok_gguf_bytes, tok_gguf_len);  // copied into exports
 *     bn_trainer_set_data(tr, tokens, n_tokens);                     // copied; last val_frac held
 * out while (bn_trainer_step_count(tr) < hp.steps) { bn_train_stats st; bn_trainer_step(tr, &st);
 * // one AdamW step on one batch
 *     }
 *     double vloss;
 *     bn_trainer_eval(tr, 8, &vloss, NULL);            // validation loss; perplexity = exp(vloss)
 *     bn_trainer_save(tr, "out/ckpt.bin");             // temp file + rename
 *     bn_trainer_export_gguf(tr, "model.gguf", BN_TYPE_I2_S);
 *     bn_trainer_free(tr);
 *
 * The model is the one `bn_model` runs (architecture bitnet-b1.58): token embedding tied
 * with the LM head; per layer RMSNorm -> BitLinear q, k, v -> RoPE (NEOX, rotate-half) ->
 * causal grouped-query attention -> RMSNorm (attn_sub_norm) -> BitLinear o -> residual;
 * RMSNorm -> BitLinear gate, up -> relu(gate)^2 * up -> RMSNorm (ffn_sub_norm) -> BitLinear
 * down -> residual; final RMSNorm; logits = x @ embedding^T. A BitLinear's forward pass uses
 * absmean-ternarized weights (one scale per tensor) and per-token absmax int8 activations,
 * both fake-quantized in f32 with the formulas of bitnet/quant.h; its backward pass passes
 * gradients straight through (STE) to the f32 master weights. hp.fp32 = 1 trains the same
 * network without quantization.
 *
 * Determinism: with the same data, hyper-parameters and seed, training is bit-exact from
 * run to run, for any thread count, and a run resumed from a checkpoint continues exactly
 * as the uninterrupted run would have.
 *
 * Checkpoint file (little-endian; version 1):
 *   0   8  magic "BNTRCKPT"
 *   8   4  u32 version (1)
 *   12  4  u32 flags (bit 0: fp32 training)
 *   16     model: i32 vocab_size, dim, n_layer, n_head, n_kv_head, ffn_dim, ctx_len;
 *              f32 rope_theta, norm_eps                                   (36 bytes)
 *   52     hparams: i32 batch, seq_len; i64 steps, warmup; f32 lr, min_lr, weight_decay,
 *              beta1, beta2, eps, grad_clip, val_frac, init_std; u64 seed   (68 bytes)
 *   120    state: i64 step, epoch, data_pos; u64 rng, data_hash, n_data_tokens,
 *              n_params, tokenizer_bytes                                   (64 bytes)
 *   184    f32 params[n_params], f32 adam_m[n_params], f32 adam_v[n_params]
 *          u8 tokenizer[tokenizer_bytes]   (a vocabulary-only GGUF, or nothing)
 *   end-8  u64 checksum: FNV-1a 64 of every byte before it
 * (epoch, data_pos) is the data order's whole state (train_data.c: each epoch's order is a
 * function of seed and epoch); data_hash is FNV-1a 64 of the tokens, which a resumed run
 * must give again. The reader checks the magic, the version, the model shape
 * (bn_train_config_check), that n_params matches the shape, that the file size is exactly
 * what the header implies, and the checksum, before it returns a trainer.
 *
 * Ownership: the trainer copies the tokens and the tokenizer bytes it is given; it keeps
 * ctx (for its thread pool and error messages), which must outlive it. Errors set a
 * message on ctx.
 */
#ifndef BITNET_TRAIN_H
#define BITNET_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_train_model_config {
    int32_t vocab_size; /* V */
    int32_t dim;        /* C: embedding width, = n_head * head_dim */
    int32_t n_layer;    /* L */
    int32_t n_head;     /* NH: query heads */
    int32_t n_kv_head;  /* NKV: key/value heads, divides NH */
    int32_t ffn_dim;    /* F */
    int32_t ctx_len;    /* longest sequence the model is made for */
    float rope_theta;   /* RoPE frequency base */
    float norm_eps;     /* RMSNorm epsilon */
} bn_train_model_config;

/* Limits checked by bn_train_config_check (and on every checkpoint read). */
#define BN_TRAIN_MAX_VOCAB (1 << 20)
#define BN_TRAIN_MAX_DIM   8192
#define BN_TRAIN_MAX_LAYER 256
#define BN_TRAIN_MAX_CTX   65536

typedef struct bn_train_hparams {
    int32_t batch;      /* B: sequences per step */
    int32_t seq_len;    /* T: tokens per sequence, <= ctx_len */
    int64_t steps;      /* length of the schedule (warm-up + cosine decay) */
    int64_t warmup;     /* linear warm-up steps */
    float lr;           /* peak learning rate */
    float min_lr;       /* learning rate at the end of the cosine */
    float weight_decay; /* AdamW decay, on matrices (embedding and BitLinear weights) only */
    float beta1, beta2, eps;
    float grad_clip; /* clip the global gradient norm to this (0: no clipping) */
    float val_frac;  /* fraction of the tokens (the last ones) held out for validation */
    float init_std;  /* std of the normal initialisation of matrices */
    uint64_t seed;
    int fp32; /* 1: no fake quantization (the f32 twin) */
} bn_train_hparams;

/* batch 8, seq_len 256, steps 1000, warmup 50, lr 2e-3, min_lr 2e-4, weight decay 0.1,
 * betas 0.9/0.95, eps 1e-8, grad_clip 1, val_frac 0.05, init_std 0.02, seed 1, fp32 0. */
void bn_train_hparams_default(bn_train_hparams *hp);

/* Named shapes: "tiny" (dim 256, 4 layers, 4 heads, 2 kv heads, ffn 768, ctx 256) and
 * "small" (dim 512, 6 layers, 8 heads, 4 kv heads, ffn 1536, ctx 512); rope_theta 10000,
 * norm_eps 1e-5. BN_ERR_NOT_FOUND for another name. */
bn_status bn_train_config_preset(const char *name, int32_t vocab_size, bn_train_model_config *out);
/* Checks the shape (positive, within limits, NH * head_dim = C, even head_dim, NKV | NH);
 * sets a message on ctx (may be NULL) and returns BN_ERR_INVALID when it is not usable. */
bn_status bn_train_config_check(bn_ctx *ctx, const bn_train_model_config *c);
/* Number of f32 parameters of the shape (0 when it does not pass the check). */
size_t bn_train_n_params(const bn_train_model_config *c);

typedef struct bn_trainer bn_trainer;

bn_status bn_trainer_new(bn_ctx *ctx, const bn_train_model_config *cfg, const bn_train_hparams *hp,
                         bn_trainer **out);
void bn_trainer_free(bn_trainer *tr); /* NULL is fine */

/* Copies n tokens (each < vocab_size); the last val_frac of them are the validation split.
 * Needs at least seq_len + 1 training tokens. After bn_trainer_load, the tokens must be the
 * ones the checkpoint was trained on (their count and hash are checked). */
bn_status bn_trainer_set_data(bn_trainer *tr, const int32_t *tokens, size_t n);
/* A vocabulary-only GGUF whose tokenizer.* keys exports copy (len 0: none). */
bn_status bn_trainer_set_tokenizer(bn_trainer *tr, const void *gguf, size_t len);
const void *bn_trainer_tokenizer(const bn_trainer *tr, size_t *len);

typedef struct bn_train_stats {
    int64_t step;    /* steps done after this one */
    int64_t epoch;   /* passes over the training split started so far (from 0) */
    float loss;      /* mean cross-entropy of the batch, before the update */
    float lr;        /* learning rate used */
    float grad_norm; /* global gradient norm before clipping */
    int64_t tokens;  /* tokens in the batch (B * T) */
} bn_train_stats;

/* One step: next batch, forward, backward, clipping, AdamW. st may be NULL. */
bn_status bn_trainer_step(bn_trainer *tr, bn_train_stats *st);
/* Mean loss over at most max_batches batches of the validation split (all of it when
 * max_batches <= 0). n_tokens (may be NULL) gets the number of tokens scored. */
bn_status bn_trainer_eval(bn_trainer *tr, int max_batches, double *loss, int64_t *n_tokens);
/* The learning rate the schedule gives at step (0-based). */
float bn_trainer_lr_at(const bn_trainer *tr, int64_t step);

/* Checkpoints (format above). */
bn_status bn_trainer_save(bn_trainer *tr, const char *path);
bn_status bn_trainer_load(bn_ctx *ctx, const char *path, bn_trainer **out);

/* Writes the model as a bitnet-b1.58 GGUF: token_embd F16, norms F32, BitLinear weights
 * ternarized by absmean (as the forward pass does) in type (BN_TYPE_I2_S, BN_TYPE_TQ2_0,
 * BN_TYPE_TQ1_0; or BN_TYPE_F32 / BN_TYPE_F16 for unquantized weights), and the tokenizer's
 * tokenizer.* keys. I2_S needs every weight's input width to be a multiple of 128, TQ2_0 and
 * TQ1_0 a multiple of 256 (else BN_ERR_UNSUPPORTED). */
bn_status bn_trainer_export_gguf(bn_trainer *tr, const char *path, int type);

/* ---- inspection (tests, tools) -------------------------------------------------------- */
const bn_train_model_config *bn_trainer_config(const bn_trainer *tr);
const bn_train_hparams *bn_trainer_hparams(const bn_trainer *tr);
int64_t bn_trainer_step_count(const bn_trainer *tr);
size_t bn_trainer_param_count(const bn_trainer *tr);
float *bn_trainer_params(bn_trainer *tr); /* the f32 master weights, n_params */
float *bn_trainer_grads(bn_trainer *tr);  /* gradients of the last backward */
/* Train/validation token counts of the data set (0 before bn_trainer_set_data). */
size_t bn_trainer_n_train_tokens(const bn_trainer *tr);
size_t bn_trainer_n_val_tokens(const bn_trainer *tr);

/* Forward pass on b sequences of t tokens (b <= batch, t <= seq_len), quantized unless
 * fp32. With targets (b * t ids), *loss gets the mean cross-entropy; logits (may be NULL)
 * gets b * t * vocab_size values. */
bn_status bn_trainer_forward(bn_trainer *tr, const int32_t *tokens, const int32_t *targets, int b,
                             int t, float *loss, float *logits);
/* Gradients of the mean loss of the last forward (which had targets) into the grads. */
bn_status bn_trainer_backward(bn_trainer *tr);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_TRAIN_H */
