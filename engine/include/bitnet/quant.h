/*
 * bitnet/quant.h - BitNet b1.58 quantization: ternary weights by absmean, int8
 * activations by per-token absmax, and error metrics.
 *
 * Usage:
 *
 *     int8_t q[ROWS * COLS]; float scale;
 *     bn_quantize_absmean(w, ROWS, COLS, BN_QGRAN_TENSOR, 0, q, &scale);
 *     // w ~= q * scale
 *     int8_t xq[COLS];
 *     float s = bn_quantize_act_row(x, COLS, xq);   // x ~= xq / s
 *     bn_qerror e; bn_quant_error(w, w_dequantized, ROWS * COLS, &e);
 *
 * Formulas (as transformers' BitNet and bitnet.cpp compute them, in f32, rounding
 * ties to even):
 *   weights:     m = mean |W| over the group, inv = 1 / max(m, 1e-5),
 *                Wq = clamp(round(W * inv), -1, 1), W ~= Wq * max(m, 1e-5)
 *   activations: s = 127 / max(max |x|, 1e-5), xq = clamp(round(x * s), -128, 127)
 * Nothing here allocates.
 */
#ifndef BITNET_QUANT_H
#define BITNET_QUANT_H

#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_qgran {
    BN_QGRAN_TENSOR = 0,  /* one scale for the whole matrix */
    BN_QGRAN_CHANNEL = 1, /* one scale per row (output channel) */
    BN_QGRAN_GROUP = 2,   /* one scale per `group` consecutive weights of a row */
} bn_qgran;

/* Number of scales bn_quantize_absmean writes: 1, rows, or rows * cols / group
 * (0 when the arguments are invalid). */
int64_t bn_absmean_n_scales(int64_t rows, int64_t cols, bn_qgran g, int64_t group);

/* w is rows x cols, row-major. q receives rows * cols ternary values; scales receives
 * bn_absmean_n_scales() dequantization multipliers (max(mean|W|, 1e-5)). For
 * BN_QGRAN_GROUP, group must be > 0 and divide cols (else BN_ERR_INVALID). Groups are
 * consecutive weights, so a group never spans two rows. mean |W| is accumulated in
 * double and rounded to float; an empty group gets the 1e-5 floor. NaN weights give 0. */
bn_status bn_quantize_absmean(const float *w, int64_t rows, int64_t cols, bn_qgran g,
                              int64_t group, int8_t *q, float *scales);
/* The inverse: out = q * scale of its group. */
void bn_dequantize_ternary(const int8_t *q, const float *scales, int64_t rows, int64_t cols,
                           bn_qgran g, int64_t group, float *out);
/* In-place fake quantization of one tensor (what QAT's forward pass does):
 * w = clamp(round(w * inv), -1, 1) * max(m, 1e-5), equal to quantize + dequantize. */
void bn_fake_quantize_absmean(float *w, int64_t n);

/* One token: writes n int8 values and returns s = 127 / max(max|x|, 1e-5). */
float bn_quantize_act_row(const float *x, int64_t n, int8_t *q);
/* rows tokens of n values each; s receives one scale per token. */
void bn_quantize_act(const float *x, int64_t rows, int64_t n, int8_t *q, float *s);
/* In-place fake quantization of one token: x = clamp(round(x * s), -128, 127) / s. */
void bn_fake_quantize_act_row(float *x, int64_t n);

typedef struct bn_qerror {
    double mse;     /* mean squared error */
    double sqnr_db; /* 10 log10(signal power / noise power); +inf when exact */
    double cosine;  /* cosine similarity (1 when both are zero) */
    double max_abs; /* largest absolute error */
} bn_qerror;

void bn_quant_error(const float *ref, const float *approx, int64_t n, bn_qerror *out);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_QUANT_H */
