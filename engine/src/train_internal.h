/*
 * train_internal.h - what the trainer's files share: the f32 GEMM and the layers, each a
 * forward / backward pair. Exposed to tests (tests/unit/test_train.c) for gradient checks.
 *
 * Shapes are written as in llm.c: (B,T,C) is B sequences of T tokens of C floats, row
 * major, so BT = B * T rows. Backward functions ADD into parameter gradients (dw) and,
 * where a flag says so, into input gradients; otherwise they overwrite.
 */
#ifndef BITNET_TRAIN_INTERNAL_H
#define BITNET_TRAIN_INTERNAL_H

#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/threadpool.h"

/* ---- GEMM -------------------------------------------------------------------------------
 * Row-major C(M,N) = [C +] op(A)(M,K) * op(B)(K,N) where op(A)(i,k) is A[i*lda+k] (ta = 0)
 * or A[k*lda+i] (ta = 1), and op(B)(k,j) is B[k*ldb+j] (tb = 0) or B[j*ldb+k] (tb = 1).
 * Blocked and packed (MR x NR micro-tiles, KC-deep panels); threads split the rows or the
 * columns of C. Each element of C is summed in the same order whatever the thread count,
 * so results do not depend on it. */
#define BN__GEMM_MR 6
#define BN__GEMM_NR 16
#define BN__GEMM_KC 256
#define BN__GEMM_MC 96
#define BN__GEMM_NC 1024

/* Per-thread packing buffers, made once by the caller. */
#define BN__GEMM_WS_FLOATS ((size_t)BN__GEMM_MC * BN__GEMM_KC + (size_t)BN__GEMM_KC * BN__GEMM_NC)
typedef struct bn__gemm_ws {
    int n_threads;
    float *buf; /* n_threads * BN__GEMM_WS_FLOATS floats: thread t uses buf + t * that */
} bn__gemm_ws;

bn_status bn__gemm_ws_init(bn__gemm_ws *ws, int n_threads);
void bn__gemm_ws_release(bn__gemm_ws *ws);

/* The micro-kernel: c (MR x NR, row stride ldc) = [c +] pa * pb over kc, where pa is an
 * MR-row panel stored k-major (MR floats per k) and pb an NR-column panel (NR per k). */
typedef void (*bn__gemm_ukernel)(int64_t kc, const float *pa, const float *pb, float *c,
                                 int64_t ldc, int add);
void bn__gemm_ukernel_generic(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                              int add);
#if defined(__x86_64__) || defined(__i386__)
void bn__gemm_ukernel_avx2(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                           int add);
#endif

/* The micro-kernel in use ("avx2" or "generic"; BN_NO_SIMD=1 forces generic). */
const char *bn__gemm_variant(void);
/* Tests and benchmarks: use the named variant from now on (0) or -1 if unavailable. */
int bn__gemm_force(const char *name);

/* pool may be NULL (runs on the caller); ws must have at least the pool's thread count. */
void bn__sgemm(bn_threadpool *pool, bn__gemm_ws *ws, int ta, int tb, int64_t M, int64_t N,
               int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
               int64_t ldc, int accumulate);
/* The same on the calling thread only, with one thread's packing buffer (from a task that
 * runs on the pool: buf = ws->buf + tid * BN__GEMM_WS_FLOATS). */
void bn__sgemm_serial(float *buf, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                      int accumulate);
/* The specification: plain loops, double accumulation. */
void bn__sgemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate);

/* ---- layers ------------------------------------------------------------------------------ */

/* out (BT,C) = wte[inp[i]] rows. */
void bn__encoder_forward(float *out, const int32_t *inp, const float *wte, int64_t BT, int C);
/* dwte[inp[i]] += dout[i], in token order. */
void bn__encoder_backward(float *dwte, const float *dout, const int32_t *inp, int64_t BT, int C);

/* out (BT,C) = inp * rstd * w; rstd (BT) = 1 / sqrt(mean(inp^2) + eps). */
void bn__rmsnorm_forward(bn_threadpool *pool, float *out, float *rstd, const float *inp,
                         const float *w, int64_t BT, int C, float eps);
/* dinp (BT,C) [+]= ..., dw (C) += sum over rows of dout * inp * rstd. */
void bn__rmsnorm_backward(bn_threadpool *pool, float *dinp, float *dw, const float *dout,
                          const float *inp, const float *w, const float *rstd, int64_t BT, int C,
                          int acc_dinp);

/* Per-token int8 fake quantization, in place: x (BT,C) rows -> round(x * s) / s. */
void bn__actquant_forward(bn_threadpool *pool, float *x, int64_t BT, int C);

/* out (BT,N) = inp (BT,K) @ w (N,K)^T. */
void bn__matmul_forward(bn_threadpool *pool, bn__gemm_ws *ws, float *out, const float *inp,
                        const float *w, int64_t BT, int K, int N);
/* dinp (BT,K) [+]= dout (BT,N) @ w (N,K); dw (N,K) += dout^T @ inp. dinp or dw may be NULL. */
void bn__matmul_backward(bn_threadpool *pool, bn__gemm_ws *ws, float *dinp, float *dw,
                         const float *dout, const float *inp, const float *w, int64_t BT, int K,
                         int N, int acc_dinp);

/* RoPE tables: cos/sin (T, HD/2) with angle pos * theta^(-2i/HD). */
void bn__rope_table(float *cos_t, float *sin_t, int T, int HD, float theta);
/* In place on x (B,T,NH,HD), NEOX style: pairs (i, i + HD/2). */
void bn__rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH,
                      int HD);
/* The inverse rotation applied to the gradient, in place. */
void bn__rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int HD);

/* Causal GQA attention. q (B,T,NH,HD), k and v (B,T,NKV,HD); query head h reads kv head
 * h / (NH/NKV). att (B,NH,T,T) gets the softmax probabilities (row t: columns <= t, zeros
 * after); out (B,T,NH,HD). The products run as GEMMs on blocks of BN__ATT_BLK query rows
 * (each block only against the keys it can see), one task per (sequence, kv head); ws
 * must hold the pool's thread count. */
#define BN__ATT_BLK 64
void bn__attention_forward(bn_threadpool *pool, bn__gemm_ws *ws, float *out, float *att,
                           const float *q, const float *k, const float *v, int B, int T, int NH,
                           int NKV, int HD);
/* dq, dk, dv are overwritten. scratch: ws->n_threads * bn__attention_scratch(T) floats. */
size_t bn__attention_scratch(int T);
void bn__attention_backward(bn_threadpool *pool, bn__gemm_ws *ws, float *scratch, float *dq,
                            float *dk, float *dv, const float *dout, const float *att,
                            const float *q, const float *k, const float *v, int B, int T, int NH,
                            int NKV, int HD);

/* out (n) = relu(gate)^2 * up. */
void bn__relu2glu_forward(float *out, const float *gate, const float *up, int64_t n);
void bn__relu2glu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, int64_t n);

/* losses (BT) = -log softmax(logits)[target]. */
void bn__xent_forward(bn_threadpool *pool, float *losses, const float *logits,
                      const int32_t *targets, int64_t BT, int V);
/* In place: logits (BT,V) become dloss/dlogits for loss = scale * sum(losses). */
void bn__xent_backward(bn_threadpool *pool, float *logits, const int32_t *targets, int64_t BT,
                       int V, float scale);

/* ---- small helpers ---------------------------------------------------------------------- */
uint64_t bn__fnv1a64(uint64_t h, const void *data, size_t n);
#define BN__FNV_OFFSET 0xcbf29ce484222325ull

/* ---- the trainer ---------------------------------------------------------------------------
 * Parameters lie in one allocation in this order, each tensor stacked over the layers where
 * it is per layer (as llm.c does): (V,C) embedding, then (L,C) attn_norm, (L,C,C) wq,
 * (L,KVD,C) wk, wv, (L,C,C) wo, (L,C) attn_sub_norm, (L,C) ffn_norm, (L,F,C) wg, wu,
 * (L,C,F) wd, (L,F) ffn_sub_norm, and (C) output_norm. Gradients and the two AdamW
 * moments are arrays of the same layout. */
#include "bitnet/train.h"

enum {
    BN__P_WTE,
    BN__P_ATTN_NORM,
    BN__P_WQ,
    BN__P_WK,
    BN__P_WV,
    BN__P_WO,
    BN__P_ATTN_SUB,
    BN__P_FFN_NORM,
    BN__P_WG,
    BN__P_WU,
    BN__P_WD,
    BN__P_FFN_SUB,
    BN__P_OUT_NORM,
    BN__P_COUNT
};

typedef struct bn__param_layout {
    size_t off[BN__P_COUNT];   /* offset of the tensor (all layers) in floats */
    size_t size[BN__P_COUNT];  /* floats in one layer's tensor (whole tensor if not per layer) */
    int64_t rows[BN__P_COUNT]; /* N (outputs) of one layer's tensor; 1 for vectors */
    int64_t cols[BN__P_COUNT]; /* K (inputs) */
    int per_layer[BN__P_COUNT];
    int ternary[BN__P_COUNT]; /* BitLinear weights (fake-quantized, exported ternary) */
    int decay[BN__P_COUNT];   /* AdamW weight decay applies (matrices) */
    size_t total;
} bn__param_layout;

/* 0 on success; -1 when the sizes overflow. */
int bn__param_layout_init(bn__param_layout *lay, const bn_train_model_config *c);
/* Pointer to layer l's slice of tensor p inside base. */
float *bn__param(const bn__param_layout *lay, float *base, int p, int l);

/* Activations saved by the forward pass for the backward pass, for one layer. */
typedef struct bn__layer_acts {
    float *res2; /* (BT,C) residual after attention */
    float *ln1;  /* (BT,C) attn_norm output, fake-quantized: the q/k/v input */
    float *q;    /* (BT,C) after rope */
    float *k;    /* (BT,KVD) after rope */
    float *v;    /* (BT,KVD) */
    float *att;  /* (B,NH,T,T) softmax probabilities */
    float *atty; /* (BT,C) attention output */
    float *sub1; /* (BT,C) attn_sub_norm output, fake-quantized: the o input */
    float *ln2;  /* (BT,C) ffn_norm output, fake-quantized: the gate/up input */
    float *gate; /* (BT,F) */
    float *up;   /* (BT,F) */
    float *sub2; /* (BT,F) ffn_sub_norm output, fake-quantized: the down input */
    float *out;  /* (BT,C) layer output (the next layer's input) */
    float *rstd1, *rstd_s1, *rstd2, *rstd_s2; /* (BT) */
} bn__layer_acts;

struct bn_trainer {
    bn_ctx *ctx;
    bn_threadpool *pool;
    bn_train_model_config cfg;
    bn_train_hparams hp;
    bn__param_layout lay;
    float *mem; /* params, grads, m, v: 4 * lay.total floats */
    float *params, *grads, *m, *v;
    float *wq; /* fake-quantized BitLinear weights (same layout; unused entries stay 0) */
    float *act_mem;
    bn__layer_acts *layers; /* n_layer */
    float *enc, *lnf, *rstdf, *logits, *losses;
    float *dres, *dln, *dsub1, *datty, *dq, *dk, *dv, *fa, *fb, *fc, *fd;
    float *rope_cos, *rope_sin; /* (seq_len, HD/2) */
    float *att_scratch;         /* threads * bn__attention_scratch(seq_len) */
    bn__gemm_ws ws;
    int32_t *inputs, *targets; /* (B,T) */
    int last_b, last_t, last_has_targets;
    int64_t step;
    uint64_t rng; /* reserved for stochastic parts (none yet); saved and restored */
    /* data */
    int32_t *tokens;
    size_t n_tokens, n_train;
    uint64_t data_hash;
    int64_t epoch, data_pos, perm_epoch, n_windows, shift;
    int64_t *perm;
    /* tokenizer GGUF bytes */
    unsigned char *tok;
    size_t tok_len;
};

/* Allocates everything but the data; params are zero. */
bn_status bn__trainer_alloc(bn_ctx *ctx, const bn_train_model_config *cfg,
                            const bn_train_hparams *hp, bn_trainer **out);
/* Fills the weights with the initialisation of hp.seed. */
void bn__trainer_init_weights(bn_trainer *tr);
/* The next training batch into tr->inputs / tr->targets (advances epoch, data_pos). */
void bn__data_next_batch(bn_trainer *tr);
/* Validation window w (T + 1 tokens from the validation split); count in *n. */
int64_t bn__data_n_val_windows(const bn_trainer *tr);
const int32_t *bn__data_val_window(const bn_trainer *tr, int64_t w);
uint64_t bn__splitmix64(uint64_t *state);

#endif /* BITNET_TRAIN_INTERNAL_H */
