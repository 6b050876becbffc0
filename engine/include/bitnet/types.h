/*
 * bitnet/types.h - element types, half-precision conversions and the packed ternary
 * file formats, byte for byte as the ecosystem writes them.
 *
 * Usage:
 *
 *     // 256 ternary weights (-1, 0, +1) with scale 0.02 into llama.cpp's TQ2_0
 *     uint8_t blk[66];
 *     bn_pack_tq2_0(q, 0.02f, 256, blk);
 *     bn_unpack_tq2_0(blk, 256, q_back, &scale_back);   // per-block scales, see below
 *
 * Type ids are ggml's (so GGUF type fields map one to one); the enum only ever grows.
 * Nothing here allocates: callers pass buffers of the sizes that bn_type_row_bytes()
 * or bn_i2s_bytes() give.
 */
#ifndef BITNET_TYPES_H
#define BITNET_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_type {
    BN_TYPE_F32 = 0,
    BN_TYPE_F16 = 1,
    BN_TYPE_Q4_0 = 2, /* linear layers kept at 4 bits (convert --mixed) */
    /* 3-7: ggml Q4_1, (retired 4, 5), Q5_0, Q5_1 - not supported */
    BN_TYPE_Q8_0 = 8,
    /* 9-23: other ggml block types - not supported */
    BN_TYPE_I8 = 24,
    BN_TYPE_I16 = 25,
    BN_TYPE_I32 = 26,
    BN_TYPE_BF16 = 30,
    BN_TYPE_TQ1_0 = 34,
    BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S = 36, /* bitnet.cpp's id */
    BN_TYPE_COUNT_ = 37
} bn_type;

typedef struct bn_type_traits {
    const char *name;   /* "f32", "tq2_0", "i2_s", ... NULL for ids we do not know */
    int64_t block_size; /* elements per block (1 for scalars) */
    size_t block_bytes; /* bytes per block (for I2_S: 32 bytes per 128, tail separate) */
} bn_type_traits;

/* Traits of a type id, or NULL when the id is unknown to this build. */
const bn_type_traits *bn_type_get(int type);
const char *bn_type_name(int type); /* "unknown" for unknown ids */
/* Parses "f32", "F16", "tq2_0", "i2_s", ...; returns -1 when unknown. */
int bn_type_from_name(const char *name);

/* Bytes of one row of n elements of a block type (BN_ERR_INVALID when n is negative
 * or not a multiple of the block size; BN_ERR_UNSUPPORTED for an unknown type id;
 * BN_ERR_OVERFLOW on overflow; *out is 0 on error). For I2_S this is the
 * code bytes only (n / 4); see bn_i2s_bytes for a whole tensor. */
bn_status bn_type_row_bytes(int type, int64_t n, size_t *out);

/* ---- scalar conversions ---------------------------------------------------- */

/* Bit-exact with x86 F16C (checked over all f16 values and a 1/37 sample of all f32
 * bit patterns): NaNs keep their top payload bits and come out quiet. */
float bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f); /* round to nearest even; overflow -> inf; NaN kept */
float bn_bf16_to_f32(uint16_t h);
uint16_t bn_f32_to_bf16(float f); /* round to nearest even; NaN stays a quiet NaN */

/* The *_to_f32_row readers take n little-endian 16-bit values at any address (file data
 * need not be 2-byte aligned). */
void bn_f16_to_f32_row(const void *x, float *y, int64_t n);
void bn_f32_to_f16_row(const float *x, uint16_t *y, int64_t n);
void bn_bf16_to_f32_row(const void *x, float *y, int64_t n);
void bn_f32_to_bf16_row(const float *x, uint16_t *y, int64_t n);

/* ---- Q8_0 (ggml): blocks of 32 int8 with an fp16 scale d, x = d * q ------------ */

#define BN_QK8_0 32
typedef struct bn_block_q8_0 {
    uint16_t d;
    int8_t qs[BN_QK8_0];
} bn_block_q8_0;

/* n must be a multiple of 32. As ggml: d = amax / 127, q = round(x / d). */
void bn_quantize_row_q8_0(const float *x, bn_block_q8_0 *y, int64_t n);
void bn_dequantize_row_q8_0(const bn_block_q8_0 *x, float *y, int64_t n);

/* ---- Q4_0 (ggml): blocks of 32 values, an fp16 scale d and 16 bytes of nibbles --------
 * value j < 16 in the low nibble of qs[j], value j + 16 in its high nibble, each as
 * q + 8 (q in -8 .. 7): x = d * q. */
#define BN_QK4_0 32
typedef struct bn_block_q4_0 {
    uint16_t d;
    uint8_t qs[BN_QK4_0 / 2];
} bn_block_q4_0;

/* n must be a multiple of 32. As ggml: d = -(the value of largest magnitude) / 8,
 * q = min(15, (int8_t)(x / d + 8.5)) - 8. */
void bn_quantize_row_q4_0(const float *x, bn_block_q4_0 *y, int64_t n);
void bn_dequantize_row_q4_0(const bn_block_q4_0 *x, float *y, int64_t n);

/* ---- Q6H and Q4H: LM-head blocks made at load (no file stores them) ----------------
 * 256 values per block: an f16 super-scale d, 16 int8 sub-scales sc (one per 16 values,
 * 0..127) and signed values q, 6-bit (-32..31) or 4-bit (-8..7): x[i] ~= d * sc[i / 16]
 * * q[i]. Q6H keeps the low 4 bits of q[i] + 32 in ql[i % 128] (low nibble for i < 128,
 * high nibble after) and its top 2 bits in bits 2 * (i / 64) of qh[i % 64]; Q4H keeps
 * q[i] + 8 in ql[i % 128] the same way. 6.56 and 4.56 bits per value (Q8_0: 8.5). */
#define BN_QK_H 256
typedef struct bn_block_q6h {
    uint16_t d;
    int8_t sc[BN_QK_H / 16];
    uint8_t ql[BN_QK_H / 2];
    uint8_t qh[BN_QK_H / 4];
} bn_block_q6h;
typedef struct bn_block_q4h {
    uint16_t d;
    int8_t sc[BN_QK_H / 16];
    uint8_t ql[BN_QK_H / 2];
} bn_block_q4h;

/* n must be a multiple of 256. Per 16 values f = amax / 31 (Q6H) or / 7 (Q4H); d = max f
 * / 127 (as f16), sc = round(f / d), q = clamp(round(x / (d * sc))). NaN gives 0. */
void bn_quantize_row_q6h_ref(const float *x, bn_block_q6h *y, int64_t n);
void bn_dequantize_row_q6h(const bn_block_q6h *x, float *y, int64_t n);
void bn_quantize_row_q4h_ref(const float *x, bn_block_q4h *y, int64_t n);
void bn_dequantize_row_q4h(const bn_block_q4h *x, float *y, int64_t n);

/* ---- ternary packed formats --------------------------------------------------
 * In every function below, q holds ternary values -1, 0, +1 as int8_t, one per weight,
 * in row order. */

/* TQ2_0 (llama.cpp): 256 weights in 66 bytes: qs[64] then fp16 d. n multiple of 256.
 * Pack: every block gets the same scale d. Unpack: q and the d of each block
 * (d_out has n / 256 entries, or is NULL). Returns BN_ERR_FORMAT if a code is 3 (not
 * ternary), BN_ERR_INVALID if n is not a multiple of 256. */
#define BN_QK_TQ             256
#define BN_TQ2_0_BLOCK_BYTES 66
#define BN_TQ1_0_BLOCK_BYTES 54
void bn_pack_tq2_0(const int8_t *q, float d, int64_t n, uint8_t *out);
bn_status bn_unpack_tq2_0(const uint8_t *in, int64_t n, int8_t *q, float *d_out);
/* llama.cpp's reference quantizer: d = max |x| of each block, q = lroundf(x / d)
 * (ties away from zero), byte-exact with quantize_row_tq2_0_ref. */
void bn_quantize_row_tq2_0_ref(const float *x, uint8_t *out, int64_t n);

/* TQ1_0 (llama.cpp): 256 weights in 54 bytes: qs[48], qh[4], fp16 d. n multiple of 256.
 * Every byte decodes to valid trits, so unpack fails only on a bad n (BN_ERR_INVALID). */
void bn_pack_tq1_0(const int8_t *q, float d, int64_t n, uint8_t *out);
bn_status bn_unpack_tq1_0(const uint8_t *in, int64_t n, int8_t *q, float *d_out);
void bn_quantize_row_tq1_0_ref(const float *x, uint8_t *out, int64_t n);

/* I2_S (bitnet.cpp, x86 layout): a whole tensor of n weights (n multiple of 128):
 * n / 4 code bytes, then a 32-byte tail whose first 4 bytes are the f32 scale. */
#define BN_QK_I2S 128
size_t bn_i2s_bytes(int64_t n); /* n / 4 + 32 */
void bn_pack_i2s(const int8_t *q, float scale, int64_t n, uint8_t *out);
/* Returns BN_ERR_FORMAT if a code is 3 (BN_ERR_INVALID if n is not a multiple of 128);
 * scale may be NULL. */
bn_status bn_unpack_i2s(const uint8_t *in, int64_t n, int8_t *q, float *scale);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_TYPES_H */
