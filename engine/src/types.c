/*
 * types.c - type traits, half-precision conversions, Q8_0, Q4_0 and the packed ternary formats.
 *
 * Byte layouts below were checked against the reference sources (read with the code
 * search, not copied):
 *
 *  - ggml-common.h (llama.cpp): block_q8_0 = { ggml_half d; int8_t qs[32]; } (34 bytes);
 *    block_tq1_0 = { uint8_t qs[48]; uint8_t qh[4]; ggml_half d; } (54 bytes, d at 52);
 *    block_tq2_0 = { uint8_t qs[64]; ggml_half d; } (66 bytes, d at 64).
 *  - ggml-quants.c (llama.cpp), quantize_row_q8_0_ref: d = amax / 127,
 *    id = d ? 1/d : 0, qs = roundf(x * id) (ties away from zero), d stored as fp16.
 *  - ggml-common.h: block_q4_0 = { ggml_half d; uint8_t qs[16]; } (18 bytes); ggml-quants.c,
 *    quantize_row_q4_0_ref: d = max / -8 (max: the value of largest |x|), q = MIN(15,
 *    (int8_t)(x / d + 8.5)), value j in the low nibble of qs[j], value j + 16 in its high one.
 *  - ggml-quants.c, quantize_row_tq2_0_ref / dequantize_row_tq2_0: d = amax of the
 *    256-block, code = lroundf(x / d) + 1; qs[j + m] (j = 0, 32) bits 2n..2n+1 hold
 *    weight j*4 + m + 32n, i.e. byte 32c + m holds weights 128c + m + 32n. Matches
 *    FORMATS.md.
 *  - ggml-quants.c, quantize_row_tq1_0_ref / dequantize_row_tq1_0: first 32 bytes hold
 *    weights m + 32n (n = 0..4) of the first 160 as a base-3 number, first weight most
 *    significant; bytes 32..47 hold weights 160 + m + 16n; qh[j] holds weights
 *    240 + j + 4m (m = 0..3), then multiplied by 3; every byte is stored as
 *    ceil(v * 256 / 243). Trit n decodes as ((uint8_t)(b * 3^n) * 3) >> 8. Matches
 *    FORMATS.md (qh: "4 per byte", with the stride of 4 made explicit here).
 *  - microsoft/BitNet src/ggml-bitnet-mad.cpp, quantize_i2_s, x86 (ACT_PARALLEL) branch:
 *    QK_I2_S = 128; weight j of block i goes to byte i*32 + j%32 at shift 6 - 2*(j/32)
 *    (so byte j holds weights j, j+32, j+64, j+96 in bits 7:6, 5:4, 3:2, 1:0); code
 *    2 for x > 0, 0 for x < 0, 1 for |x| < 1e-6; the f32 scale (max |x| of the tensor)
 *    is written at byte n/4, and the tensor takes n/4 + 32 bytes. The dot product
 *    (ggml_vec_dot_i2_i8_s_1x1, AVX2) pairs x >> 6 with activations 0..31, consistent.
 *    The non-ACT_PARALLEL x86 branch of newer versions is a 4-row interleaved layout
 *    and the ARM branch uses 64-weight blocks; neither is handled here.
 */
#include "bitnet/types.h"

#include <math.h>
#include <string.h>

/* ---- type traits --------------------------------------------------------------- */

static const bn_type_traits k_traits[BN_TYPE_COUNT_] = {
        [BN_TYPE_F32] = {"f32", 1, 4},
        [BN_TYPE_F16] = {"f16", 1, 2},
        [BN_TYPE_Q4_0] = {"q4_0", BN_QK4_0, 2 + BN_QK4_0 / 2},
        [BN_TYPE_Q8_0] = {"q8_0", BN_QK8_0, 2 + BN_QK8_0},
        [BN_TYPE_I8] = {"i8", 1, 1},
        [BN_TYPE_I16] = {"i16", 1, 2},
        [BN_TYPE_I32] = {"i32", 1, 4},
        [BN_TYPE_BF16] = {"bf16", 1, 2},
        [BN_TYPE_TQ1_0] = {"tq1_0", BN_QK_TQ, BN_TQ1_0_BLOCK_BYTES},
        [BN_TYPE_TQ2_0] = {"tq2_0", BN_QK_TQ, BN_TQ2_0_BLOCK_BYTES},
        [BN_TYPE_I2_S] = {"i2_s", BN_QK_I2S, BN_QK_I2S / 4},
};

const bn_type_traits *bn_type_get(int type)
{
    if (type < 0 || type >= BN_TYPE_COUNT_ || k_traits[type].name == NULL) return NULL;
    return &k_traits[type];
}

const char *bn_type_name(int type)
{
    const bn_type_traits *t = bn_type_get(type);
    return t ? t->name : "unknown";
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int name_equal_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) return 0;
    }
    return *a == '\0' && *b == '\0';
}

int bn_type_from_name(const char *name)
{
    if (name == NULL) return -1;
    for (int t = 0; t < BN_TYPE_COUNT_; t++) {
        if (k_traits[t].name && name_equal_nocase(name, k_traits[t].name)) return t;
    }
    return -1;
}

bn_status bn_type_row_bytes(int type, int64_t n, size_t *out)
{
    const bn_type_traits *t = bn_type_get(type);
    if (out) *out = 0;
    if (t == NULL) return BN_ERR_UNSUPPORTED;
    if (out == NULL || n < 0 || n % t->block_size != 0) return BN_ERR_INVALID;
    uint64_t nblocks = (uint64_t)(n / t->block_size);
    if (nblocks > SIZE_MAX) return BN_ERR_OVERFLOW;
    size_t bytes;
    if (bn_mul_size((size_t)nblocks, t->block_bytes, &bytes)) return BN_ERR_OVERFLOW;
    *out = bytes;
    return BN_OK;
}

/* ---- scalar conversions ------------------------------------------------------------ */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float bn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;

    if (exp == 0x1f) { /* inf, or NaN: payload kept and made quiet, as F16C does */
        uint32_t quiet = mant ? 0x00400000u : 0;
        return f32_from_bits(sign | 0x7f800000u | quiet | (mant << 13));
    }
    if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return f32_from_bits(sign);
    /* subnormal: mant * 2^-24; normalise so the leading 1 lands on bit 10 */
    exp = 113; /* biased f32 exponent of 2^-14 */
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        exp--;
    }
    return f32_from_bits(sign | (exp << 23) | ((mant & 0x3ffu) << 13));
}

/* Rounds m >> shift to nearest, ties to even (1 <= shift <= 31). */
static uint32_t shift_rne(uint32_t m, unsigned shift)
{
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return q;
}

uint16_t bn_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;

    if (a > 0x7f800000u) /* NaN: quiet, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x38800000u) { /* >= 2^-14: normal in f16 unless it overflows */
        uint32_t e = (a >> 23) - 127 + 15;
        if (e >= 31) return (uint16_t)(sign | 0x7c00u);
        /* the mantissa carry may ripple into the exponent, up to inf: still correct */
        uint32_t h = shift_rne((e << 23) | (a & 0x7fffffu), 13);
        return (uint16_t)(sign | h);
    }
    if (a <= 0x33000000u) return sign; /* <= 2^-25 rounds to zero (2^-25 is a tie) */
    /* subnormal f16: value / 2^-24 = m * 2^(E - 150 + 24) = m >> (126 - E) */
    uint32_t E = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_rne(m, 126 - E));
}

float bn_bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t bn_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* The i-th little-endian 16-bit value at p, whatever p's alignment. */
static uint16_t u16_at(const void *p, int64_t i)
{
    const uint8_t *b = (const uint8_t *)p + 2 * i;
    return (uint16_t)(b[0] | (b[1] << 8));
}

void bn_f16_to_f32_row(const void *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = bn_f16_to_f32(u16_at(x, i));
}

void bn_f32_to_f16_row(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = bn_f32_to_f16(x[i]);
}

void bn_bf16_to_f32_row(const void *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = bn_bf16_to_f32(u16_at(x, i));
}

void bn_f32_to_bf16_row(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = bn_f32_to_bf16(x[i]);
}

/* ---- little-endian helpers ----------------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- Q8_0 -------------------------------------------------------------------------- */

void bn_quantize_row_q8_0(const float *x, bn_block_q8_0 *y, int64_t n)
{
    BN_ASSERT(n % BN_QK8_0 == 0);
    for (int64_t b = 0; b < n / BN_QK8_0; b++) {
        const float *xb = x + b * BN_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < BN_QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK8_0; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void bn_dequantize_row_q8_0(const bn_block_q8_0 *x, float *y, int64_t n)
{
    BN_ASSERT(n % BN_QK8_0 == 0);
    for (int64_t b = 0; b < n / BN_QK8_0; b++) {
        const float d = bn_f16_to_f32(x[b].d);
        for (int j = 0; j < BN_QK8_0; j++) y[b * BN_QK8_0 + j] = (float)x[b].qs[j] * d;
    }
}

/* ---- Q4_0 -------------------------------------------------------------------------- */

void bn_quantize_row_q4_0(const float *x, bn_block_q4_0 *y, int64_t n)
{
    BN_ASSERT(n % BN_QK4_0 == 0);
    for (int64_t b = 0; b < n / BN_QK4_0; b++) {
        const float *xb = x + b * BN_QK4_0;
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, with its sign */
        for (int j = 0; j < BN_QK4_0; j++)
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK4_0 / 2; j++) {
            const int lo = (int)(int8_t)(xb[j] * id + 8.5f),
                      hi = (int)(int8_t)(xb[j + 16] * id + 8.5f);
            y[b].qs[j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
        }
    }
}

void bn_dequantize_row_q4_0(const bn_block_q4_0 *x, float *y, int64_t n)
{
    BN_ASSERT(n % BN_QK4_0 == 0);
    for (int64_t b = 0; b < n / BN_QK4_0; b++) {
        const float d = bn_f16_to_f32(x[b].d);
        for (int j = 0; j < BN_QK4_0 / 2; j++) {
            y[b * BN_QK4_0 + j] = (float)((x[b].qs[j] & 15) - 8) * d;
            y[b * BN_QK4_0 + j + 16] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- ternary helpers -------------------------------------------------------------------- */

/* -1, 0, +1 -> code 0, 1, 2. Anything else is a programmer error. */
static uint8_t tern_code(int8_t v)
{
    BN_ASSERT(v >= -1 && v <= 1);
    return (uint8_t)(v + 1);
}

/* llama.cpp's reference ternarization of one 256-block: d = amax, q = lroundf(x / d). */
static float tq_ref_block(const float *x, int8_t *q)
{
    float amax = 0.0f;
    for (int j = 0; j < BN_QK_TQ; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax != 0.0f ? 1.0f / amax : 0.0f;
    for (int j = 0; j < BN_QK_TQ; j++) {
        long r = lroundf(x[j] * id);
        q[j] = (int8_t)(r > 1 ? 1 : r < -1 ? -1 : r);
    }
    return amax;
}

/* ---- TQ2_0 --------------------------------------------------------------------------- */

static void tq2_pack_block(const int8_t *q, uint16_t d16, uint8_t *out)
{
    for (int c = 0; c < 2; c++) {
        for (int m = 0; m < 32; m++) {
            uint8_t byte = 0;
            for (int k = 0; k < 4; k++)
                byte |= (uint8_t)(tern_code(q[128 * c + m + 32 * k]) << (2 * k));
            out[32 * c + m] = byte;
        }
    }
    put_le16(out + 64, d16);
}

void bn_pack_tq2_0(const int8_t *q, float d, int64_t n, uint8_t *out)
{
    BN_ASSERT(n % BN_QK_TQ == 0);
    const uint16_t d16 = bn_f32_to_f16(d);
    for (int64_t b = 0; b < n / BN_QK_TQ; b++)
        tq2_pack_block(q + b * BN_QK_TQ, d16, out + b * BN_TQ2_0_BLOCK_BYTES);
}

bn_status bn_unpack_tq2_0(const uint8_t *in, int64_t n, int8_t *q, float *d_out)
{
    if (n < 0 || n % BN_QK_TQ != 0) return BN_ERR_INVALID;
    for (int64_t b = 0; b < n / BN_QK_TQ; b++) {
        const uint8_t *blk = in + b * BN_TQ2_0_BLOCK_BYTES;
        int8_t *qb = q + b * BN_QK_TQ;
        for (int c = 0; c < 2; c++) {
            for (int m = 0; m < 32; m++) {
                const uint8_t byte = blk[32 * c + m];
                for (int k = 0; k < 4; k++) {
                    const int code = (byte >> (2 * k)) & 3;
                    if (code == 3) return BN_ERR_FORMAT;
                    qb[128 * c + m + 32 * k] = (int8_t)(code - 1);
                }
            }
        }
        if (d_out) d_out[b] = bn_f16_to_f32(get_le16(blk + 64));
    }
    return BN_OK;
}

void bn_quantize_row_tq2_0_ref(const float *x, uint8_t *out, int64_t n)
{
    BN_ASSERT(n % BN_QK_TQ == 0);
    int8_t q[BN_QK_TQ];
    for (int64_t b = 0; b < n / BN_QK_TQ; b++) {
        const float d = tq_ref_block(x + b * BN_QK_TQ, q);
        tq2_pack_block(q, bn_f32_to_f16(d), out + b * BN_TQ2_0_BLOCK_BYTES);
    }
}

/* ---- TQ1_0 ------------------------------------------------------------------------------ */

/* ceil(v * 256 / 243): moves the base-3 number into the top of the byte */
static uint8_t tq1_scale_up(unsigned v)
{
    return (uint8_t)((v * 256u + 242u) / 243u);
}

/* trit n (0 = most significant) of a stored byte */
static int tq1_trit(uint8_t b, int n)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t t = (uint8_t)(b * pow3[n]);
    return (t * 3) >> 8;
}

static void tq1_pack_block(const int8_t *q, uint16_t d16, uint8_t *out)
{
    /* bytes 0..31: weights m + 32k of the first 160; bytes 32..47: 160 + m + 16k */
    for (int m = 0; m < 32; m++) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++) v = v * 3 + tern_code(q[m + 32 * k]);
        out[m] = tq1_scale_up(v);
    }
    for (int m = 0; m < 16; m++) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++) v = v * 3 + tern_code(q[160 + m + 16 * k]);
        out[32 + m] = tq1_scale_up(v);
    }
    /* qh[j]: weights 240 + j + 4k, k = 0..3, shifted up one trit */
    for (int j = 0; j < 4; j++) {
        unsigned v = 0;
        for (int k = 0; k < 4; k++) v = v * 3 + tern_code(q[240 + j + 4 * k]);
        out[48 + j] = tq1_scale_up(v * 3);
    }
    put_le16(out + 52, d16);
}

void bn_pack_tq1_0(const int8_t *q, float d, int64_t n, uint8_t *out)
{
    BN_ASSERT(n % BN_QK_TQ == 0);
    const uint16_t d16 = bn_f32_to_f16(d);
    for (int64_t b = 0; b < n / BN_QK_TQ; b++)
        tq1_pack_block(q + b * BN_QK_TQ, d16, out + b * BN_TQ1_0_BLOCK_BYTES);
}

bn_status bn_unpack_tq1_0(const uint8_t *in, int64_t n, int8_t *q, float *d_out)
{
    if (n < 0 || n % BN_QK_TQ != 0) return BN_ERR_INVALID;
    for (int64_t b = 0; b < n / BN_QK_TQ; b++) {
        const uint8_t *blk = in + b * BN_TQ1_0_BLOCK_BYTES;
        int8_t *qb = q + b * BN_QK_TQ;
        for (int m = 0; m < 32; m++)
            for (int k = 0; k < 5; k++) qb[m + 32 * k] = (int8_t)(tq1_trit(blk[m], k) - 1);
        for (int m = 0; m < 16; m++)
            for (int k = 0; k < 5; k++)
                qb[160 + m + 16 * k] = (int8_t)(tq1_trit(blk[32 + m], k) - 1);
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 4; k++)
                qb[240 + j + 4 * k] = (int8_t)(tq1_trit(blk[48 + j], k) - 1);
        if (d_out) d_out[b] = bn_f16_to_f32(get_le16(blk + 52));
    }
    return BN_OK;
}

void bn_quantize_row_tq1_0_ref(const float *x, uint8_t *out, int64_t n)
{
    BN_ASSERT(n % BN_QK_TQ == 0);
    int8_t q[BN_QK_TQ];
    for (int64_t b = 0; b < n / BN_QK_TQ; b++) {
        const float d = tq_ref_block(x + b * BN_QK_TQ, q);
        tq1_pack_block(q, bn_f32_to_f16(d), out + b * BN_TQ1_0_BLOCK_BYTES);
    }
}

/* ---- I2_S ----------------------------------------------------------------------------- */

size_t bn_i2s_bytes(int64_t n)
{
    BN_ASSERT(n >= 0);
    return (size_t)(n / 4) + 32;
}

void bn_pack_i2s(const int8_t *q, float scale, int64_t n, uint8_t *out)
{
    BN_ASSERT(n >= 0 && n % BN_QK_I2S == 0);
    for (int64_t b = 0; b < n / BN_QK_I2S; b++) {
        const int8_t *qb = q + b * BN_QK_I2S;
        uint8_t *ob = out + b * (BN_QK_I2S / 4);
        for (int j = 0; j < 32; j++) {
            ob[j] = (uint8_t)((tern_code(qb[j]) << 6) | (tern_code(qb[j + 32]) << 4) |
                              (tern_code(qb[j + 64]) << 2) | tern_code(qb[j + 96]));
        }
    }
    uint8_t *tail = out + n / 4;
    memset(tail, 0, 32);
    put_le32(tail, f32_bits(scale));
}

bn_status bn_unpack_i2s(const uint8_t *in, int64_t n, int8_t *q, float *scale)
{
    if (n < 0 || n % BN_QK_I2S != 0) return BN_ERR_INVALID;
    for (int64_t b = 0; b < n / BN_QK_I2S; b++) {
        const uint8_t *ib = in + b * (BN_QK_I2S / 4);
        int8_t *qb = q + b * BN_QK_I2S;
        for (int j = 0; j < 32; j++) {
            for (int k = 0; k < 4; k++) {
                const int code = (ib[j] >> (6 - 2 * k)) & 3;
                if (code == 3) return BN_ERR_FORMAT;
                qb[j + 32 * k] = (int8_t)(code - 1);
            }
        }
    }
    if (scale) *scale = f32_from_bits(get_le32(in + n / 4));
    return BN_OK;
}
