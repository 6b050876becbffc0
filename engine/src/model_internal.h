/* model_internal.h - what model_load.c and model_forward.c share. */
#ifndef BITNET_MODEL_INTERNAL_H
#define BITNET_MODEL_INTERNAL_H

#include "bitnet/model.h"

/* The seven ternary matrices of a layer, in the order of bn__lin_names. */
enum { BN__WQ, BN__WK, BN__WV, BN__WO, BN__WGATE, BN__WUP, BN__WDOWN, BN__N_LIN };

/* Where block b (32 values) of row r of the split Q8_0 head starts in head_qs: rows go in
 * groups of 4 whose blocks interleave (block b of rows 4g .. 4g+3 are 128 consecutive
 * bytes), so a 4-row product reads one sequential stream. */
static inline size_t bn__head_block_offset(int64_t E, int64_t r, int64_t b)
{
    return (size_t)(r / 4) * 4 * (size_t)E + (size_t)(b * 4 + r % 4) * 32;
}

/* y[r] for rows r0 <= r < r1 of a split Q8_0 matrix (qs, d) with n_embd = E, against an
 * activation row quantized to Q8_0 and split into xq (E int8) and xd (E / 32 scales):
 * y[r] = sum over blocks b of (float)(sum of the block's products) * (d[r][b] * xd[b]). */
/* Whether the LM head of type t takes the activation quantized to Q8_0 (Q8_0 rows, or the
 * Q6H / Q4H blocks made at load). */
static inline int bn__head_q8_input(int t)
{
    return t == BN_TYPE_Q8_0 || t == BN_MODEL_HEAD_Q6H || t == BN_MODEL_HEAD_Q4H;
}

typedef void (*bn__head_rows_fn)(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                 int64_t r1, const int8_t *xq, const float *xd, float *y);
void bn__head_q8_rows_ref(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                          const int8_t *xq, const float *xd, float *y);
#if defined(__x86_64__) || defined(__i386__)
void bn__head_q8_rows_avx2(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                           const int8_t *xq, const float *xd, float *y);
void bn__model_q8_0_row_avx2(const float *x, bn_block_q8_0 *y, int64_t n);
/* model_avx512.c: the same product with AVX-512 VNNI, for one token, or for n tokens (token t:
 * xq + t * E, xd + t * E / 32, out y[t]) with each token's result equal to the bit to its own. */
#endif
/* The head as the avx512vnni kernels keep it (m->head_u8): the values offset to unsigned
 * bytes (w + 128, stored as w ^ 0x80), rows in groups of 16 interleaved four bytes at a
 * time - value j of row r at bn__head_u8_offset(E, r, j), so that 64 consecutive bytes hold
 * values 4s .. 4s+3 of 16 rows - rows padded to 16, and the scales of 16 rows side by side
 * per block: the scale of row r, block b at bn__head_d16_index(nb, r, b). */
#define BN__HEAD_U8_MAX_E 16384 /* larger n_embd: the other kernels' form */
static inline size_t bn__head_u8_offset(int64_t E, int64_t r, int64_t j)
{
    return (size_t)(r / 16) * 16 * (size_t)E + (size_t)(j / 4) * 64 + (size_t)(r % 16) * 4 +
           (size_t)(j % 4);
}
static inline size_t bn__head_d16_index(int64_t nb, int64_t r, int64_t b)
{
    return (size_t)(r / 16) * 16 * (size_t)nb + (size_t)b * 16 + (size_t)(r % 16);
}
/* The product of that head in plain C, with the kernels' arithmetic: per row
 * acc = fmaf((float)sum[b], d[r][b] * xd[b], acc) over the blocks in order. The avx512
 * kernels give these bits exactly. */
void bn__head_u8_rows_ref(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                          const int8_t *xq, const float *xd, float *y);
/* Several tokens at once: up to 16 tokens' xq and xd, prepared once per forward pass into
 * a group of bn__head_group_bytes(E) (64-byte aligned); nt tokens, token t's logits in y[t]. */
typedef void (*bn__head_multi_fn)(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                  int64_t r1, const void *grp, int nt, float *const *y);
#if defined(__x86_64__) || defined(__i386__)
/* model_avx512.c: the product of that head for one token, and for a group of tokens */
void bn__head_u8_rows_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                             const int8_t *xq, const float *xd, float *y);
void bn__head_u8_rows_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                   int64_t r1, const void *grp, int nt, float *const *y);
size_t bn__head_group_bytes(int64_t E);
/* xq: nt (<= 16) tokens of E values, xd: their E / 32 scales each */
void bn__head_group_prep(int64_t E, const int8_t *xq, const float *xd, int nt, void *grp);
#endif

/* The head as Q6H or Q4H blocks in the avx512 kernels' form (m->head_blk when
 * m->head_rows is set): the same values and scales as the blocks of types.h, laid out so
 * that vpdpbusd takes 4 values of 16 rows per vector. Per group of 16 rows and 256-value
 * block ("super") s, a record of bn__head_lanes_rec(q6) bytes at
 * ((r / 16) * (E / 256) + s) * rec: for each 32-value block c of the super, BN__LANES_BLK
 * bytes - 4 vectors of 64 bytes of low nibbles, where byte 4i + k of vector n holds
 * u = q + 32 (Q6H) or q + 8 (Q4H) of row i for value 4n + k of the block in its low
 * nibble and value 16 + 4n + k in its high nibble; then, for Q6H, 2 vectors of the top 2
 * bits: bits 2n of byte 4i + k of vector h for value 16h + 4n + k - then the 16 sub-scales
 * of the 16 rows (sc[j] of row i at 16j + i, 256 bytes), then the rows' super-scales d as
 * f32 (64 bytes). Rows past the vocabulary (to 16) are zeros. */
#define BN__LANES_BLK(q6) ((q6) ? 384 : 256)
static inline size_t bn__head_lanes_rec(int q6)
{
    return 8 * BN__LANES_BLK(q6) + 256 + 64;
}
/* Row r's blocks (bn_block_q6h or bn_block_q4h, E / 256 of them) into the lanes form at
 * lanes (zeroed before: the rows of a group share bytes, each writes only its own). */
void bn__head_lanes_pack(const void *blocks, int q6, int64_t E, int64_t r, uint8_t *lanes);
/* y[r] for rows r0 <= r < r1 of that head against a Q8_0 activation (xq, xd), as plain C
 * with the kernels' arithmetic: per 32-value block c the exact int32
 * S = sc[2c] * sum(q * x) + sc[2c + 1] * sum(q * x) over its two halves, then per row
 * acc = fmaf((float)S, d * xd[c], acc) over the blocks in order (the kernels' bits). */
void bn__head_lanes_rows_ref(const uint8_t *lanes, int q6, int64_t E, int64_t r0, int64_t r1,
                             const int8_t *xq, const float *xd, float *y);
#if defined(__x86_64__) || defined(__i386__)
/* model_avx512.c: the same for one token (bn__head_rows_fn: qs is the lanes form, d NULL) */
void bn__head_q6_lanes_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                              int64_t r1, const int8_t *xq, const float *xd, float *y);
void bn__head_q4_lanes_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                              int64_t r1, const int8_t *xq, const float *xd, float *y);
/* and for a group of tokens (bn__head_multi_fn: qs the lanes form, grp as prepared by
 * bn__head_group_prep), each token's logits equal to the bit to its own alone */
void bn__head_q6_lanes_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                    int64_t r1, const void *grp, int nt, float *const *y);
void bn__head_q4_lanes_multi_avx512(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0,
                                    int64_t r1, const void *grp, int nt, float *const *y);
#endif
#if defined(__x86_64__) || defined(__i386__)
/* AVX2 twins of the forward pass's building blocks (model_avx2.c). The quantizer gives
 * bn__model_quantize_act's bytes and scale; the norm sums its squares in another order
 * (in double, so the result almost always rounds the same). */
float bn__model_quantize_act_avx2(const float *x, int64_t n, int8_t *q, int32_t *sum);
void bn__model_rmsnorm_avx2(const float *x, const float *w, int64_t n, float eps, float *y);
/* g[i] = relu(g[i])^2 * u[i], as the scalar loop computes it (bit for bit). */
void bn__model_relu2_mul_avx2(float *g, const float *u, int64_t n);
/* g = g / (1 + e^-g) * u with a polynomial e^x (within 2e-7 relative of expf's result). */
void bn__model_silu_mul_avx2(float *g, const float *u, int64_t n);
/* y[i] = f16(x[i]), rounding to nearest even as bn_f32_to_f16 (NaN payloads aside). */
void bn__model_f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n);
/* AVX-512 F/BW/VL/DQ (model_ops_avx512.c). RMSNorm(x) * w quantized in one kernel: q, sum
 * and the returned scale are those of bn__model_rmsnorm_avx2 then bn__model_quantize_act
 * (the same sum of squares, in the same order), without storing the normalized row; w NULL
 * quantizes x as it is. The quantizer alone gives bn__model_quantize_act's bytes. */
float bn__model_norm_quant_avx512(const float *x, const float *w, int64_t n, float eps, int8_t *q,
                                  int32_t *sum);
float bn__model_quantize_act_avx512(const float *x, int64_t n, int8_t *q, int32_t *sum);
/* g[i] = relu(g[i])^2 * u[i], and x[i] += y[i], as the plain loops compute them (bit for bit). */
void bn__model_relu2_mul_avx512(float *g, const float *u, int64_t n);
void bn__model_add_avx512(float *x, const float *y, int64_t n);
#endif

/* Attention of up to BN__ATTN_NQ queries that share one KV head: for each query j,
 * s = softmax(q_j K^T * scale) over its first n_keys[j] positions, out_j = s V. K rows
 * (head_dim values) are read once for all the queries, and V rows too. A query's
 * result does not depend on the other queries of its block (for finite K and V), so a
 * token gets the same numbers in a batch as alone. head_dim must be a multiple of 8. */
#define BN__ATTN_NQ 8
typedef struct bn__attn_block {
    const void *k;   /* the position-0 row of this KV head's keys */
    size_t k_stride; /* elements from one position's row to the next */
    const void *v;   /* V by blocks of 8 positions: position p, dimension i at element */
    size_t v_stride; /* (p / 8) * v_stride + i * 8 + p % 8 (v_stride = d * 8) */
    int f16;         /* cache elements are f16 (else f32) */
    int64_t d;       /* head_dim */
    float scale;     /* 1 / sqrt(d) */
    int nq;          /* queries, 1 .. BN__ATTN_NQ */
    int64_t n_keys[BN__ATTN_NQ]; /* nondecreasing in j */
    const float *q[BN__ATTN_NQ]; /* d values each */
    float *out[BN__ATTN_NQ];     /* d values each */
    float *s;                    /* scratch: BN__ATTN_NQ rows of s_stride floats */
    size_t s_stride;             /* >= max n_keys rounded up to 8 */
} bn__attn_block;
void bn__model_attn_avx2(const bn__attn_block *a);

/* bn__model_q8_0_row or its AVX2 twin, as the CPU allows (NULL kernels: any). */
typedef void (*bn__q8_row_fn)(const float *x, bn_block_q8_0 *y, int64_t n);
bn__q8_row_fn bn__model_q8_0_row_fn(const bn_kernels *k);

/* A low-rank correction of a ternary matrix W (N x K), from the optional F16 tensors
 * <base>.lowrank_a (rank x K) and <base>.lowrank_b (N x rank): the layer computes
 * y = W x + b (a x) (model_lowrank.c). rank 0: none. */
#define BN__LOWRANK_MAX 256
typedef struct bn__lowrank {
    int64_t rank, cols;
    float *a, *b; /* rank x cols, then rows x rank, in one allocation at a */
    float (*dot)(const float *a, const float *b, int64_t n); /* the model's kernels' dot_f32 */
} bn__lowrank;
/* Reads base's factors when the file has them (else a zeroed lr); checks shapes, types
 * (f16, f32), rank (1 .. min(rows, cols, BN__LOWRANK_MAX)) and finiteness. */
bn_status bn__lowrank_load(bn_model *m, const char *base, int64_t rows, int64_t cols,
                           bn__lowrank *lr);
void bn__lowrank_release(bn__lowrank *lr);
/* a x of one token, kept across the row ranges one thread takes of a matrix: zeroed before
 * the thread's loop, filled by the first bn__lowrank_apply of a one-token x. */
typedef struct bn__lowrank_z {
    int ok;
    float z[BN__LOWRANK_MAX];
} bn__lowrank_z;
/* y[t * ldy + r] += b_r . (a x_t) for the tokens of x and rows r0 <= r < r1, x_t the token's
 * int8 activations times its scale; nothing when lr->rank is 0. zc (may be NULL) keeps a x
 * of a one-token x between calls; the result is the same bits either way. */
void bn__lowrank_apply(const bn__lowrank *lr, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                       int64_t r1, bn__lowrank_z *zc);

/* A linear layer kept at 8 or 4 bits (`convert --mixed`): its file rows of Q8_0 or Q4_0
 * blocks, used in place in the mapping (model_qlin.c). The layer's input is the same int8
 * activation row the ternary products take (x_t = q_t * inv_scale_t), so that
 * y[t][r] = inv_scale_t * sum over blocks b of d[r][b] * (sum of the block's w q_t). type 0:
 * the layer is ternary (bn__layer.w). */
typedef struct bn__qlin {
    int type; /* 0, BN_TYPE_Q8_0 or BN_TYPE_Q4_0 */
    int64_t rows, cols;
    const uint8_t *data; /* rows x row_bytes */
    size_t row_bytes;
    float (*dot_q8_0)(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n); /* kernels' */
} bn__qlin;
/* Reads base.weight when its type is Q8_0 or Q4_0 (ql->type 0 otherwise, nothing read):
 * shape rows x cols, cols a multiple of 32; no low-rank correction or .scale tensor beside it
 * (those are for ternary layers). */
bn_status bn__qlin_load(bn_model *m, const char *base, int64_t rows, int64_t cols, bn__qlin *ql);
/* y[t * ldy + r] for the tokens of x and rows r0 <= r < r1, as tgemm writes them. */
void bn__qlin_rows(const bn__qlin *ql, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                   int64_t r1);

typedef struct bn__layer {
    const float *attn_norm;     /* n_embd */
    const float *attn_sub_norm; /* n_embd; NULL when the model has no sub-norms */
    const float *ffn_norm;      /* n_embd */
    const float *ffn_sub_norm;  /* n_ff; NULL when the model has no sub-norms */
    bn_tmat w[BN__N_LIN];       /* zeroed where the layer is kept at 8 or 4 bits (ql) */
    bn__lowrank lr[BN__N_LIN];  /* rank 0 where the file has no correction */
    bn__qlin ql[BN__N_LIN];     /* type 0 where the layer is ternary */
} bn__layer;

/* y = W x for the layer's matrix which (BN__WQ ..), rows r0 <= r < r1 of every token of x:
 * the ternary product or the 8/4-bit one, then the low-rank correction where there is one. */
static inline void bn__lin_rows(const bn_model *m, const bn__layer *L, int which, const bn_qact *x,
                                float *y, int64_t ldy, int64_t r0, int64_t r1, bn__lowrank_z *zc);

struct bn_model {
    bn_ctx *ctx;
    bn_gguf *g;
    const bn_kernels *k;
    bn_model_hparams hp;
    bn__layer *layers; /* n_layer */
    float *norms;      /* every norm vector, one allocation */
    const float *output_norm;
    const void *embd; /* n_vocab rows of embd_row_bytes, in the mapping */
    size_t embd_row_bytes;
    const void *head; /* the LM head: n_vocab rows of head_row_bytes */
    size_t head_row_bytes;
    /* The head as Q8_0 split into values and scales (owned), when requantized at load:
     * row r's 32-value block b is at head_qs + bn__head_block_offset(), its f16 scale
     * head_d[r * n_embd / 32 + b]. head_rows computes it for one activation row. */
    int8_t *head_qs;
    uint16_t *head_d;
    bn__head_rows_fn head_rows;
    /* head_rows for a prepared group of tokens, where a kernel does that (else NULL) */
    bn__head_multi_fn head_rows_multi;
    int head_u8; /* head_qs and head_d in the avx512 kernels' form (bn__head_d16_index) */
    /* The head as Q6H or Q4H rows (owned; head points at them), when requantized to them;
     * with the avx512 kernels in the lanes form instead (head NULL, head_rows set). */
    uint8_t *head_blk;
    size_t weight_bytes;
    size_t tmat_bytes; /* of the linear layers (ternary, and 8/4-bit ones) */
};

static inline void bn__lin_rows(const bn_model *m, const bn__layer *L, int which, const bn_qact *x,
                                float *y, int64_t ldy, int64_t r0, int64_t r1, bn__lowrank_z *zc)
{
    if (L->ql[which].type)
        bn__qlin_rows(&L->ql[which], x, y, ldy, r0, r1);
    else
        m->k->tgemm(&L->w[which], x, y, ldy, r0, r1);
    bn__lowrank_apply(&L->lr[which], x, y, ldy, r0, r1, zc);
}

extern const char *const bn__lin_names[BN__N_LIN];

/* bn_quantize_row_q8_0 without libm calls (same bytes for finite input; a non-finite
 * scaled value gives 0): requantizes the LM head at load. n multiple of 32. */
void bn__model_q8_0_row(const float *x, bn_block_q8_0 *y, int64_t n);

/* bn_quantize_act_row without libm calls (same q and scale; rounding by the 1.5 * 2^23
 * trick, ties to even); also stores sum q. */
float bn__model_quantize_act(const float *x, int64_t n, int8_t *q, int32_t *sum);

/* y = x / sqrt(mean(x^2) + eps) * w, over n values (y may be x): the sum of squares in
 * double, as ggml's rms_norm, of the float products in turn; then scale = 1 / sqrtf((float)
 * (sum / n) + eps) and y = (x * scale) * w. The plain definition of the forward pass's
 * norms (its SIMD twins sum in another order). */
void bn__model_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *y);

#endif /* BITNET_MODEL_INTERNAL_H */
