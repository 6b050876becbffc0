/*
 * bitnet/kernels.h - the run-time ternary matrix, quantized activations, and the
 * products the model needs, with a plain-C reference and SIMD variants.
 *
 * Usage:
 *
 *     bn_tmat w;                       // N x K ternary weights in the run-time layout
 *     bn_tmat_from_ternary(&w, q, scales_per_row_or_NULL, scale, N, K);
 *     bn_qact x;                       // T tokens of K int8 activations
 *     bn_qact_init(&x, T, K);
 *     bn_qact_quantize(&x, xf, T);     // xf is T x K floats
 *     bn_tmatmul(pool, NULL, &w, &x, y); // y is T x N floats, threaded on pool
 *     bn_qact_release(&x); bn_tmat_release(&w);
 *
 * Definitions. For token t and output row r:
 *     acc[t][r] = sum_k Wq[r][k] * xq[t][k]                (exact int32)
 *     y[t][r]   = (float)acc[t][r] * (w->scales[r] * x->inv_scale[t])
 * where w->scales[r] is the weight dequantization multiplier (mean |W|) and
 * x->inv_scale[t] = 1 / s_t (the activation scale s_t = 127 / max|x_t|). Every kernel
 * computes acc exactly in integers and applies exactly this float formula, so every
 * variant's y equals the reference's y bit for bit.
 *
 * Run-time layout (bn_tmat.codes). K is padded with zero weights to kpad, a multiple of
 * BN_TMAT_KBLOCK; a row's codes take row_bytes = kpad / 4 bytes. Each block of 128
 * weights of a row takes 32 bytes laid out like I2_S: byte j holds weights j, j+32,
 * j+64, j+96 in bits 7:6, 5:4, 3:2, 1:0, each stored as the code Wq + 1 (0, 1, 2).
 * Rows are stored in groups of BN_TMAT_RGROUP (4), the last group padded with rows
 * of zero weights up to rows_pad: group g takes the 4 * row_bytes bytes at
 * codes + g * 4 * row_bytes, in which block b of row 4g + i is the 32 bytes at offset
 * (4b + i) * 32. So a GEMV over four rows reads one sequential stream (which the
 * hardware prefetchers follow far better than four short ones), and an I2_S tensor
 * whose K is a multiple of 128 repacks by copying 32-byte blocks. Activation rows are
 * padded with zeros to kpad.
 *
 * Ownership: bn_tmat_* and bn_qact_init allocate through the engine's hook; release
 * with bn_tmat_release / bn_qact_release (which zero the struct). On any error the
 * constructors leave the struct zeroed and nothing allocated. K is limited to 2^22
 * (BN_ERR_RANGE beyond), which keeps every integer sum exact in int32.
 *
 * Threads: a table's functions only read w and x, so any number of threads may call
 * them on disjoint row ranges; bn_tmatmul splits the rows over the pool in ranges of
 * whole row groups.
 */
#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/threadpool.h"
#include "bitnet/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_TMAT_KBLOCK 128
#define BN_TMAT_RGROUP 4

typedef struct bn_tmat {
    int64_t rows;      /* N: outputs */
    int64_t cols;      /* K: inputs */
    int64_t kpad;      /* K rounded up to BN_TMAT_KBLOCK */
    int64_t row_bytes; /* kpad / 4: code bytes per row */
    int64_t rows_pad;  /* rows rounded up to BN_TMAT_RGROUP */
    uint8_t *codes;    /* rows_pad * row_bytes bytes, 64-byte aligned */
    float *scales;     /* rows entries */
} bn_tmat;

/* q: N x K ternary values. scales: N per-row multipliers, or NULL to use `scale` for
 * every row. BN_ERR_FORMAT if a value is not in {-1, 0, 1}. */
bn_status bn_tmat_from_ternary(bn_tmat *w, const int8_t *q, const float *scales, float scale,
                               int64_t rows, int64_t cols);
/* From the file formats. I2_S: the whole tensor, rows * cols / 4 code bytes then the
 * 32-byte tail whose f32 scale becomes every row's scale; cols % 128 == 0.
 * TQ2_0 / TQ1_0: rows of cols / 256 blocks (cols % 256 == 0); each row's blocks must
 * share one d (all-zero blocks may differ), which becomes the row's scale; otherwise
 * BN_ERR_UNSUPPORTED. Errors: BN_ERR_INVALID for a bad shape, BN_ERR_FORMAT when size
 * is too small or a 2-bit code is 3, BN_ERR_NOMEM, BN_ERR_RANGE, BN_ERR_OVERFLOW. */
bn_status bn_tmat_from_i2s(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows,
                           int64_t cols);
bn_status bn_tmat_from_tq2_0(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows,
                             int64_t cols);
bn_status bn_tmat_from_tq1_0(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows,
                             int64_t cols);
/* Wq[r][k] as -1, 0, +1 (0 for padding, k < kpad). */
int bn_tmat_get(const bn_tmat *w, int64_t r, int64_t k);
void bn_tmat_release(bn_tmat *w);

typedef struct bn_qact {
    int64_t n_tok;    /* tokens held (<= cap) */
    int64_t cap;      /* tokens allocated */
    int64_t cols;     /* K */
    int64_t kpad;     /* K rounded up to BN_TMAT_KBLOCK */
    int8_t *q;        /* cap * kpad, zero padded */
    float *inv_scale; /* cap entries: 1 / s_t = max|x_t| / 127 */
    int32_t *sum;     /* cap entries: sum_k xq[t][k] (for the code offset) */
} bn_qact;

bn_status bn_qact_init(bn_qact *x, int64_t cap, int64_t cols);
/* Quantizes n_tok rows of x (n_tok x cols floats) with bn_quantize_act_row's formula. */
void bn_qact_quantize(bn_qact *a, const float *x, int64_t n_tok);
void bn_qact_release(bn_qact *x);

/* ---- the kernel table ------------------------------------------------------- */

typedef struct bn_kernels {
    const char *name; /* "ref", "avx2", "avx512vnni", "neon" */
    /* Integer core: acc[t * w->rows + r] for all tokens of x, rows r0 <= r < r1. */
    void (*tgemm_i32)(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0, int64_t r1);
    /* y[t * ldy + r] for all tokens of x, rows r0 <= r < r1 (GEMV when x->n_tok == 1). */
    void (*tgemm)(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                  int64_t r1);
    /* Float products for the LM head and embeddings. Unlike the ternary products these
     * are not bit-exact across variants (the summation order differs); each stays
     * within ~1e-4 of sum |a_i b_i| of the exact value for n up to a few thousand. */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_f16_f32)(const uint16_t *a, const float *b, int64_t n);
    /* n multiple of 32: sum over blocks of (exact int sum of the products) * d_a * d_b,
     * as ggml computes it. */
    float (*dot_q8_0)(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n);
    /* n multiple of 256: a row of Q6H / Q4H blocks (types.h) against an activation row
     * quantized to Q8_0 and split into xq (n int8) and xd (n / 32 f32 scales): per 32
     * values the exact int sum of each 16-value half times its sub-scale, times d * xd,
     * summed in float (the order differs across variants; within ~1e-5 of the sum of
     * the absolute terms). */
    float (*dot_q6h_q8)(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n);
    float (*dot_q4h_q8)(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n);
    /* The multiply-accumulate ceiling probe (for benchmarks): `rounds` rounds of the
     * GEMM's int8 multiply-accumulate instruction (AVX2: maddubs into an int16 sum;
     * AVX-512: vpdpbusd; NEON: sdot; ref: a scalar multiply-add) on eight independent
     * register accumulators, with no memory traffic. Returns the multiply-adds done
     * (products of an int8 pair). */
    int64_t (*mac_probe)(int64_t rounds);
} bn_kernels;

/* The table for this CPU, chosen once on first use (thread-safe): AVX-512 VNNI where
 * the CPU has avx512f/bw/vl/vnni, else AVX2 (with FMA and F16C), else NEON with the
 * dot-product extension, else the reference. BN_NO_SIMD set to anything but "" or "0"
 * in the environment forces the reference. */
const bn_kernels *bn_kernels_get(void);
const bn_kernels *bn_kernels_ref(void);
/* A named variant, or NULL when it is not compiled in or this CPU cannot run it. */
const bn_kernels *bn_kernels_by_name(const char *name);
/* All variants this CPU can run, reference first, best last; writes at most max and
 * returns the number written. */
int bn_kernels_list(const bn_kernels **out, int max);

/* y = x * W^T on the pool with kernels k (NULL: bn_kernels_get()); y is n_tok x rows. */
void bn_tmatmul(bn_threadpool *pool, const bn_kernels *k, const bn_tmat *w, const bn_qact *x,
                float *y);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_KERNELS_H */
