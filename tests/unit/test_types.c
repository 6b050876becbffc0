/* test_types.c - type traits, f16/bf16 conversions, Q8_0 and the packed ternary formats.
 *
 * The expected bytes of the packed formats are worked out by hand in the comments next
 * to them, from the layouts in FORMATS.md (checked against llama.cpp's ggml-quants.c and
 * bitnet.cpp's quantize_i2_s), so they test the layout and not just a round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "bitnet/types.h"

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* deterministic generator (xorshift32) */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- traits ------------------------------------------------------------------------- */

static void test_type_traits(void **state)
{
    (void)state;
    static const struct {
        int id;
        const char *name;
        int64_t block;
        size_t bytes;
    } cases[] = {
            {BN_TYPE_F32, "f32", 1, 4},        {BN_TYPE_F16, "f16", 1, 2},
            {BN_TYPE_Q4_0, "q4_0", 32, 18},    {BN_TYPE_Q8_0, "q8_0", 32, 34},
            {BN_TYPE_I8, "i8", 1, 1},          {BN_TYPE_I16, "i16", 1, 2},
            {BN_TYPE_I32, "i32", 1, 4},        {BN_TYPE_BF16, "bf16", 1, 2},
            {BN_TYPE_TQ1_0, "tq1_0", 256, 54}, {BN_TYPE_TQ2_0, "tq2_0", 256, 66},
            {BN_TYPE_I2_S, "i2_s", 128, 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bn_type_traits *t = bn_type_get(cases[i].id);
        assert_non_null(t);
        assert_string_equal(t->name, cases[i].name);
        assert_string_equal(bn_type_name(cases[i].id), cases[i].name);
        assert_int_equal(t->block_size, cases[i].block);
        assert_int_equal(t->block_bytes, cases[i].bytes);
        assert_int_equal(bn_type_from_name(cases[i].name), cases[i].id);
    }
    static const int unknown[] = {-1, 3, 9, 14, 23, 27, 29, 31, 33, BN_TYPE_COUNT_, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_null(bn_type_get(unknown[i]));
        assert_string_equal(bn_type_name(unknown[i]), "unknown");
    }
    assert_int_equal(bn_type_from_name("TQ2_0"), BN_TYPE_TQ2_0);
    assert_int_equal(bn_type_from_name("I2_S"), BN_TYPE_I2_S);
    assert_int_equal(bn_type_from_name("Bf16"), BN_TYPE_BF16);
    assert_int_equal(bn_type_from_name("f3"), -1);
    assert_int_equal(bn_type_from_name("f32 "), -1);
    assert_int_equal(bn_type_from_name("q4_0"), BN_TYPE_Q4_0);
    assert_int_equal(bn_type_from_name("q4_1"), -1);
    assert_int_equal(bn_type_from_name(""), -1);
    assert_int_equal(bn_type_from_name(NULL), -1);
}

static void test_row_bytes(void **state)
{
    (void)state;
    static const struct {
        int type;
        int64_t n;
        bn_status rc;
        size_t bytes;
    } cases[] = {
            {BN_TYPE_F32, 0, BN_OK, 0},
            {BN_TYPE_F32, 3, BN_OK, 12},
            {BN_TYPE_F16, 5, BN_OK, 10},
            {BN_TYPE_BF16, 7, BN_OK, 14},
            {BN_TYPE_I8, 9, BN_OK, 9},
            {BN_TYPE_I32, 2, BN_OK, 8},
            {BN_TYPE_Q8_0, 64, BN_OK, 68},
            {BN_TYPE_Q8_0, 33, BN_ERR_INVALID, 0},
            {BN_TYPE_Q8_0, 16, BN_ERR_INVALID, 0},
            {BN_TYPE_TQ2_0, 512, BN_OK, 132},
            {BN_TYPE_TQ2_0, 255, BN_ERR_INVALID, 0},
            {BN_TYPE_TQ1_0, 256, BN_OK, 54},
            {BN_TYPE_TQ1_0, 2560, BN_OK, 540},
            {BN_TYPE_TQ1_0, 257, BN_ERR_INVALID, 0},
            {BN_TYPE_I2_S, 256, BN_OK, 64},
            {BN_TYPE_I2_S, 100, BN_ERR_INVALID, 0},
            {BN_TYPE_F32, -1, BN_ERR_INVALID, 0},
            {BN_TYPE_Q4_0, 64, BN_OK, 36},
            {BN_TYPE_Q4_0, 48, BN_ERR_INVALID, 0},
            {3, 32, BN_ERR_UNSUPPORTED, 0},
            {-5, 32, BN_ERR_UNSUPPORTED, 0},
            {BN_TYPE_F32, INT64_MAX, BN_ERR_OVERFLOW, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t out = 12345;
        assert_int_equal(bn_type_row_bytes(cases[i].type, cases[i].n, &out), cases[i].rc);
        assert_int_equal(out, cases[i].bytes);
    }
    assert_int_equal(bn_type_row_bytes(BN_TYPE_F32, 4, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_i2s_bytes(128), 64);
    assert_int_equal(bn_i2s_bytes(2560 * 6912), 2560 * 6912 / 4 + 32);
}

/* ---- f16 ---------------------------------------------------------------------------- */

static void test_f32_to_f16_known(void **state)
{
    (void)state;
    static const struct {
        uint32_t f; /* f32 bits */
        uint16_t h;
        const char *what;
    } cases[] = {
            {0x3f800000u, 0x3c00, "1.0"},
            {0xc0000000u, 0xc000, "-2.0"},
            {0x00000000u, 0x0000, "+0"},
            {0x80000000u, 0x8000, "-0"},
            {0x477fe000u, 0x7bff, "65504 (max)"},
            {0x477fefffu, 0x7bff, "just under 65520 rounds down"},
            {0x477ff000u, 0x7c00, "65520: tie, rounds to even = inf"},
            {0x47800000u, 0x7c00, "65536 overflows"},
            {0x7f7fffffu, 0x7c00, "FLT_MAX"},
            {0x7f800000u, 0x7c00, "+inf"},
            {0xff800000u, 0xfc00, "-inf"},
            {0x3dcccccdu, 0x2e66, "0.1"},
            {0x38800000u, 0x0400, "2^-14 smallest normal"},
            {0x387fc000u, 0x03ff, "largest subnormal"},
            {0x33800000u, 0x0001, "2^-24 smallest subnormal"},
            {0xb3800000u, 0x8001, "-2^-24"},
            {0x33000000u, 0x0000, "2^-25: tie, rounds to even 0"},
            {0x33000001u, 0x0001, "just above 2^-25 rounds up"},
            {0x33c00000u, 0x0002, "1.5 * 2^-24: tie, rounds to even 2"},
            {0x34200000u, 0x0002, "2.5 * 2^-24: tie, rounds to even 2"},
            {0x32800000u, 0x0000, "2^-26 underflows"},
            {0x3f801000u, 0x3c00, "1 + 2^-11: tie, rounds to even"},
            {0x3f803000u, 0x3c02, "1 + 3*2^-11: tie, rounds to even (up)"},
            {0x3f801001u, 0x3c01, "just above the tie rounds up"},
            {0x3f802000u, 0x3c01, "1 + 2^-10 exact"},
            {0x3ffff000u, 0x4000, "2 - 2^-11: tie, carry into the exponent"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = bn_f32_to_f16(bits_f32(cases[i].f));
        if (h != cases[i].h) fail_msg("%s: got 0x%04x want 0x%04x", cases[i].what, h, cases[i].h);
    }
    /* NaNs stay NaNs (never inf), quiet, sign kept */
    static const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fbfffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = bn_f32_to_f16(bits_f32(nans[i]));
        assert_int_equal(h & 0x7c00, 0x7c00);
        assert_true((h & 0x03ff) != 0);
        assert_true((h & 0x0200) != 0);
        assert_int_equal(h >> 15, nans[i] >> 31);
    }
}

static void test_f16_to_f32_known(void **state)
{
    (void)state;
    static const struct {
        uint16_t h;
        uint32_t f;
    } cases[] = {
            {0x3c00, 0x3f800000u}, {0xc000, 0xc0000000u}, {0x0000, 0x00000000u},
            {0x8000, 0x80000000u}, {0x7bff, 0x477fe000u}, {0x0400, 0x38800000u},
            {0x0001, 0x33800000u}, {0x03ff, 0x387fc000u}, {0x0200, 0x38000000u},
            {0x7c00, 0x7f800000u}, {0xfc00, 0xff800000u}, {0x3555, 0x3eaaa000u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t got = f32_bits(bn_f16_to_f32(cases[i].h));
        if (got != cases[i].f)
            fail_msg("0x%04x: got 0x%08x want 0x%08x", cases[i].h, got, cases[i].f);
    }
    assert_true(isnan(bn_f16_to_f32(0x7e00)));
    assert_true(isnan(bn_f16_to_f32(0x7c01))); /* signalling in, quiet NaN out */
    assert_int_equal(f32_bits(bn_f16_to_f32(0x7c01)), 0x7fc02000u);
    assert_true(signbit(bn_f16_to_f32(0xfe00)));
}

static void test_f16_round_trip_all(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bn_f16_to_f32((uint16_t)h);
        const uint16_t back = bn_f32_to_f16(f);
        const int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        const uint16_t want = is_nan ? (uint16_t)(h | 0x200) : (uint16_t)h;
        if (back != want) fail_msg("0x%04x -> %g -> 0x%04x", h, (double)f, back);
        /* monotonic on the positive finite values */
        if (h > 0 && h < 0x7c00) assert_true(bn_f16_to_f32((uint16_t)(h - 1)) < f);
    }
}

static void test_f16_rows(void **state)
{
    (void)state;
    const float x[5] = {1.0f, -2.0f, 0.1f, 65504.0f, 0.0f};
    uint16_t h[5];
    float y[5];
    bn_f32_to_f16_row(x, h, 5);
    assert_int_equal(h[0], 0x3c00);
    assert_int_equal(h[1], 0xc000);
    assert_int_equal(h[2], 0x2e66);
    assert_int_equal(h[3], 0x7bff);
    assert_int_equal(h[4], 0);
    bn_f16_to_f32_row(h, y, 5);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[3] == 65504.0f && y[4] == 0.0f);
    assert_float_equal(y[2], 0.0999755859375f, 0.0f);

    bn_f32_to_bf16_row(x, h, 5);
    assert_int_equal(h[0], 0x3f80);
    assert_int_equal(h[1], 0xc000);
    assert_int_equal(h[2], 0x3dcd);
    bn_bf16_to_f32_row(h, y, 5);
    assert_true(y[0] == 1.0f && y[1] == -2.0f);
    assert_int_equal(f32_bits(y[2]), 0x3dcd0000u);

    /* file data at an odd address (a GGUF in a caller's buffer): same values, and no
     * misaligned 16-bit load for UBSan to see */
    uint8_t raw[1 + 2 * 5];
    bn_f32_to_f16_row(x, h, 5);
    memcpy(raw + 1, h, sizeof h);
    memset(y, 0, sizeof y);
    bn_f16_to_f32_row(raw + 1, y, 5);
    assert_true(y[0] == 1.0f && y[1] == -2.0f && y[3] == 65504.0f && y[4] == 0.0f);
    bn_f32_to_bf16_row(x, h, 5);
    memcpy(raw + 1, h, sizeof h);
    bn_bf16_to_f32_row(raw + 1, y, 5);
    assert_true(y[0] == 1.0f && y[1] == -2.0f);
    assert_int_equal(f32_bits(y[2]), 0x3dcd0000u);
}

/* ---- bf16 --------------------------------------------------------------------------- */

static void test_bf16_known(void **state)
{
    (void)state;
    static const struct {
        uint32_t f;
        uint16_t h;
        const char *what;
    } cases[] = {
            {0x3f800000u, 0x3f80, "1.0"},
            {0x80000000u, 0x8000, "-0"},
            {0x7f800000u, 0x7f80, "+inf"},
            {0xff800000u, 0xff80, "-inf"},
            {0x3f808000u, 0x3f80, "1 + 2^-8: tie, rounds to even"},
            {0x3f818000u, 0x3f82, "1 + 3*2^-8: tie, rounds to even (up)"},
            {0x3f808001u, 0x3f81, "just above the tie"},
            {0x3f807fffu, 0x3f80, "just below the tie"},
            {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to inf"},
            {0x00010000u, 0x0001, "subnormal kept"},
            {0x00008000u, 0x0000, "subnormal tie to even 0"},
            {0x00018000u, 0x0002, "subnormal tie to even 2"},
            {0x3dcccccdu, 0x3dcd, "0.1"},
            {0x7fc00000u, 0x7fc0, "quiet NaN"},
            {0x7f800001u, 0x7fc0, "signalling NaN with low payload: NaN, not inf"},
            {0xff800001u, 0xffc0, "negative signalling NaN"},
            {0x7fffffffu, 0x7fff, "NaN with all payload bits: no carry into the sign"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = bn_f32_to_bf16(bits_f32(cases[i].f));
        if (h != cases[i].h) fail_msg("%s: got 0x%04x want 0x%04x", cases[i].what, h, cases[i].h);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bn_bf16_to_f32((uint16_t)h);
        assert_int_equal(f32_bits(f), h << 16);
        const int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
        assert_int_equal(bn_f32_to_bf16(f), is_nan ? (h | 0x40) : h);
    }
}

/* ---- Q8_0 --------------------------------------------------------------------------- */

static void test_q8_0_known(void **state)
{
    (void)state;
    float x[96] = {0};
    /* block 0: amax 127 -> d = 1 (fp16 0x3c00), id = 1; roundf rounds ties away from 0 */
    const float b0[8] = {127.0f, -127.0f, 0.5f, -0.5f, 1.5f, 2.5f, 3.49f, -100.6f};
    const int8_t q0[8] = {127, -127, 1, -1, 2, 3, 3, -101};
    memcpy(x, b0, sizeof b0);
    /* block 1: all zero -> d = 0, id = 0, q = 0 */
    /* block 2: amax 63.5 -> d = 0.5 (0x3800), id = 2 */
    const float b2[4] = {0.25f, -63.5f, 10.0f, 0.2f};
    const int8_t q2[4] = {1, -127, 20, 0};
    memcpy(x + 64, b2, sizeof b2);

    bn_block_q8_0 y[3];
    memset(y, 0xaa, sizeof y);
    bn_quantize_row_q8_0(x, y, 96);
    assert_int_equal(sizeof(bn_block_q8_0), 34);
    assert_int_equal(y[0].d, 0x3c00);
    assert_memory_equal(y[0].qs, q0, 8);
    for (int j = 8; j < 32; j++) assert_int_equal(y[0].qs[j], 0);
    assert_int_equal(y[1].d, 0x0000);
    for (int j = 0; j < 32; j++) assert_int_equal(y[1].qs[j], 0);
    assert_int_equal(y[2].d, 0x3800);
    assert_memory_equal(y[2].qs, q2, 4);

    float back[96];
    bn_dequantize_row_q8_0(y, back, 96);
    assert_true(back[0] == 127.0f && back[2] == 1.0f && back[7] == -101.0f);
    assert_true(back[32] == 0.0f);
    assert_true(back[64] == 0.5f && back[65] == -63.5f && back[66] == 10.0f);

    /* d goes through fp16: 1.27 / 127 = 0.01 is stored as 0x211f */
    float z[32] = {1.27f};
    bn_quantize_row_q8_0(z, y, 32);
    assert_int_equal(y[0].d, bn_f32_to_f16(1.27f / 127.0f));
    assert_int_equal(y[0].qs[0], 127);
}

/* Q4_0 as ggml's quantize_row_q4_0_ref: d = max / -8 from the value of largest magnitude
 * (its sign too), q = min(15, (int8_t)(x / d + 8.5)), value j in the low nibble of byte j,
 * value j + 16 in its high nibble. */
static void test_q4_0_known(void **state)
{
    (void)state;
    float x[64] = {0};
    /* block 0: the largest is -16 -> d = 2 (0x4000), id = 0.5: -16 -> 0, 14 -> 15 (7 + 8),
     * 3 -> (int8_t)10 = 10, -3 -> (int8_t)7 = 7, 1 -> (int8_t)9 = 9 */
    x[0] = -16.0f, x[1] = 14.0f, x[2] = 3.0f, x[16] = -3.0f, x[17] = 1.0f;
    /* block 1: the largest is +8 -> d = -1 (0xbc00), id = -1: 8 -> 0, -7 -> 15, 2 -> 6 */
    x[32] = 8.0f, x[33] = -7.0f, x[48] = 2.0f;
    bn_block_q4_0 y[2];
    memset(y, 0xaa, sizeof y);
    bn_quantize_row_q4_0(x, y, 64);
    assert_int_equal(sizeof(bn_block_q4_0), 18);
    assert_int_equal(y[0].d, 0x4000);
    assert_int_equal(y[0].qs[0], 0 | 7 << 4);
    assert_int_equal(y[0].qs[1], 15 | 9 << 4);
    assert_int_equal(y[0].qs[2], 10 | 8 << 4);
    assert_int_equal(y[0].qs[3], 8 | 8 << 4);
    assert_int_equal(y[1].d, 0xbc00);
    assert_int_equal(y[1].qs[0], 0 | 6 << 4);
    assert_int_equal(y[1].qs[1], 15 | 8 << 4);
    float back[64];
    bn_dequantize_row_q4_0(y, back, 64);
    assert_true(back[0] == -16.0f && back[1] == 14.0f && back[2] == 4.0f && back[3] == 0.0f);
    assert_true(back[16] == -2.0f && back[17] == 2.0f);
    assert_true(back[32] == 8.0f && back[33] == -7.0f && back[48] == 2.0f);
    /* all zero: d = -0 (0 / -8, as ggml), every value 8 (q 0) */
    float z[32] = {0};
    bn_quantize_row_q4_0(z, y, 32);
    assert_int_equal(y[0].d, 0x8000);
    for (int j = 0; j < 16; j++) assert_int_equal(y[0].qs[j], 0x88);
}

/* ---- TQ2_0 -------------------------------------------------------------------------- */

static void test_tq2_0_known(void **state)
{
    (void)state;
    int8_t q[256] = {0};
    uint8_t got[66], want[66];
    /* all zero: every code is 1, so every byte is 01 01 01 01 = 0x55 */
    memset(want, 0x55, 64);
    /* d = 1.0 -> fp16 0x3c00, little-endian after the 64 code bytes */
    want[64] = 0x00;
    want[65] = 0x3c;
    bn_pack_tq2_0(q, 1.0f, 256, got);
    assert_memory_equal(got, want, 66);

    /* weight 0 = -1: byte 0, bits 1:0 = 00 -> 01 01 01 00 = 0x54
     * weight 37 = +1: 37 = 5 + 32*1 -> byte 5, bits 3:2 = 10 -> 01 01 10 01 = 0x59
     * weight 200 = -1: 200 = 128 + 8 + 32*2 -> byte 32 + 8, bits 5:4 = 00 -> 0x45
     * weight 255 = +1: 255 = 128 + 31 + 32*3 -> byte 63, bits 7:6 = 10 -> 0x95
     * d = 0.5 -> 0x3800 */
    q[0] = -1;
    q[37] = 1;
    q[200] = -1;
    q[255] = 1;
    want[0] = 0x54;
    want[5] = 0x59;
    want[40] = 0x45;
    want[63] = 0x95;
    want[64] = 0x00;
    want[65] = 0x38;
    bn_pack_tq2_0(q, 0.5f, 256, got);
    assert_memory_equal(got, want, 66);

    int8_t back[256];
    float d;
    assert_int_equal(bn_unpack_tq2_0(got, 256, back, &d), BN_OK);
    assert_memory_equal(back, q, 256);
    assert_true(d == 0.5f);

    /* a known pattern: weight i = (i % 3) - 1; byte m (c = 0) holds i = m + 32n:
     * m = 0: i = 0, 32, 64, 96 -> codes 0, 2, 1, 0 -> 00 01 10 00 = 0x18 */
    for (int i = 0; i < 256; i++) q[i] = (int8_t)(i % 3 - 1);
    bn_pack_tq2_0(q, 1.0f, 256, got);
    assert_int_equal(got[0], 0x18);
    /* m = 1: i = 1, 33, 65, 97 -> codes 1, 0, 2, 1 -> 01 10 00 01 = 0x61 */
    assert_int_equal(got[1], 0x61);
    /* byte 32 (c = 1, m = 0): i = 128, 160, 192, 224 -> codes 2, 1, 0, 2 -> 10 00 01 10 = 0x86 */
    assert_int_equal(got[32], 0x86);
}

static void test_tq2_0_reject(void **state)
{
    (void)state;
    uint8_t blk[2 * 66];
    memset(blk, 0x55, sizeof blk);
    blk[64] = 0;
    blk[65] = 0x3c;
    blk[66 + 64] = 0;
    blk[66 + 65] = 0x40;
    int8_t q[512];
    float d[2];
    assert_int_equal(bn_unpack_tq2_0(blk, 512, q, d), BN_OK);
    assert_true(d[0] == 1.0f && d[1] == 2.0f);
    blk[66 + 17] = 0xd5; /* bits 7:6 = 11: code 3 in the second block */
    assert_int_equal(bn_unpack_tq2_0(blk, 512, q, d), BN_ERR_FORMAT);
    assert_int_equal(bn_unpack_tq2_0(blk, 100, q, d), BN_ERR_INVALID);
    assert_int_equal(bn_unpack_tq2_0(blk, -256, q, d), BN_ERR_INVALID);
}

/* The reference quantizer rounds x / max|x| with lroundf: ties go away from zero. */
static void test_tq_ref_quantizers(void **state)
{
    (void)state;
    float x[512];
    int8_t want[512];
    for (int i = 0; i < 512; i++) {
        static const float v[6] = {2.0f, 1.0f, -1.0f, 0.99f, -0.999f, 0.0f};
        static const int8_t w[6] = {1, 1, -1, 0, 0, 0}; /* / 2: 1, 0.5, -0.5, 0.495, ... */
        x[i] = v[i % 6];
        want[i] = w[i % 6];
    }
    for (int i = 256; i < 512; i++) { /* second block: amax 4, d = 4 */
        x[i] *= 2.0f;
    }
    uint8_t got[2 * 66], exp[2 * 66];
    int8_t back[512];
    float d[2];

    bn_quantize_row_tq2_0_ref(x, got, 512);
    bn_pack_tq2_0(want, 2.0f, 256, exp);
    bn_pack_tq2_0(want + 256, 4.0f, 256, exp + 66);
    assert_memory_equal(got, exp, sizeof got);
    assert_int_equal(bn_unpack_tq2_0(got, 512, back, d), BN_OK);
    assert_memory_equal(back, want, 512);
    assert_true(d[0] == 2.0f && d[1] == 4.0f);

    uint8_t got1[2 * 54], exp1[2 * 54];
    bn_quantize_row_tq1_0_ref(x, got1, 512);
    bn_pack_tq1_0(want, 2.0f, 256, exp1);
    bn_pack_tq1_0(want + 256, 4.0f, 256, exp1 + 54);
    assert_memory_equal(got1, exp1, sizeof got1);

    /* an all-zero block: d = 0 and every weight 0 */
    float zero[256] = {0};
    bn_quantize_row_tq2_0_ref(zero, got, 256);
    assert_int_equal(got[0], 0x55);
    assert_int_equal(got[64], 0);
    assert_int_equal(got[65], 0);
}

/* ---- TQ1_0 -------------------------------------------------------------------------- */

static void test_tq1_0_known(void **state)
{
    (void)state;
    int8_t q[256] = {0};
    uint8_t got[54], want[54];
    /* all zero: a 5-trit byte is 11111 in base 3 = 121, stored as ceil(121 * 256 / 243)
     * = ceil(127.47) = 128 = 0x80; a qh byte is 1111 base 3 = 40, times 3 = 120,
     * ceil(120 * 256 / 243) = ceil(126.42) = 127 = 0x7f; d = 1.0 -> 0x3c00 at offset 52 */
    memset(want, 0x80, 48);
    memset(want + 48, 0x7f, 4);
    want[52] = 0x00;
    want[53] = 0x3c;
    bn_pack_tq1_0(q, 1.0f, 256, got);
    assert_memory_equal(got, want, 54);

    /* weight 0 = +1: byte 0, most significant trit: 21111_3 = 202 -> ceil(212.8) = 213 = 0xd5
     * weight 33 = -1: 33 = 1 + 32*1 -> byte 1, second trit: 10111_3 = 94 -> ceil(99.03) = 100
     * weight 170 = +1: 170 - 160 = 10 + 16*0 -> byte 32 + 10, first trit: 202 -> 0xd5
     * weight 244 = +1: 244 - 240 = 0 + 4*1 -> qh[0], second trit: 1211_3 = 49, *3 = 147
     *   -> ceil(154.86) = 155 = 0x9b
     * weight 255 = -1: 255 - 240 = 3 + 4*3 -> qh[3], last trit: 1110_3 = 39, *3 = 117
     *   -> ceil(123.26) = 124 = 0x7c
     * d = -0.25 -> fp16 0xb400 */
    q[0] = 1;
    q[33] = -1;
    q[170] = 1;
    q[244] = 1;
    q[255] = -1;
    want[0] = 0xd5;
    want[1] = 100;
    want[42] = 0xd5;
    want[48] = 0x9b;
    want[51] = 0x7c;
    want[52] = 0x00;
    want[53] = 0xb4;
    bn_pack_tq1_0(q, -0.25f, 256, got);
    assert_memory_equal(got, want, 54);

    int8_t back[256];
    float d;
    assert_int_equal(bn_unpack_tq1_0(got, 256, back, &d), BN_OK);
    assert_memory_equal(back, q, 256);
    assert_true(d == -0.25f);
    assert_int_equal(bn_unpack_tq1_0(got, 128, back, &d), BN_ERR_INVALID);
}

/* every 5-trit value in every position of a byte, and every 4-trit qh value */
static void test_tq1_0_all_bytes(void **state)
{
    (void)state;
    uint8_t blk[54];
    int8_t q[256], back[256];
    for (int v = 0; v < 243; v++) {
        memset(q, 0, sizeof q);
        int t = v;
        for (int k = 4; k >= 0; k--, t /= 3) {
            q[7 + 32 * k] = (int8_t)(t % 3 - 1);       /* byte 7 */
            q[160 + 9 + 16 * k] = (int8_t)(t % 3 - 1); /* byte 32 + 9 */
        }
        for (int k = 3, u = v % 81; k >= 0; k--, u /= 3) q[240 + 1 + 4 * k] = (int8_t)(u % 3 - 1);
        bn_pack_tq1_0(q, 1.0f, 256, blk);
        assert_int_equal(blk[7], (v * 256 + 242) / 243);
        assert_int_equal(bn_unpack_tq1_0(blk, 256, back, NULL), BN_OK);
        assert_memory_equal(back, q, 256);
    }
}

/* ---- I2_S --------------------------------------------------------------------------- */

static void test_i2s_known(void **state)
{
    (void)state;
    int8_t q[256] = {0};
    uint8_t got[96], want[96];
    /* all zero: codes 1 -> 01 01 01 01 = 0x55 in all 64 code bytes */
    memset(want, 0x55, 64);
    /* weight 0 = +1: byte 0 bits 7:6 = 10 -> 10 01 01 01 = 0x95
     * weight 33 = -1: byte 1 (33 = 1 + 32), bits 5:4 = 00 -> 01 00 01 01 = 0x45
     * weight 127 = +1: byte 31 (127 = 31 + 96), bits 1:0 = 10 -> 01 01 01 10 = 0x56
     * weight 194 = -1: block 1, 194 - 128 = 66 = 2 + 64 -> byte 32 + 2, bits 3:2 = 00 -> 0x51
     * tail at n/4 = 64: f32 1.5 = 0x3fc00000 little-endian, then 28 zero bytes */
    q[0] = 1;
    q[33] = -1;
    q[127] = 1;
    q[194] = -1;
    want[0] = 0x95;
    want[1] = 0x45;
    want[31] = 0x56;
    want[34] = 0x51;
    memset(want + 64, 0, 32);
    want[66] = 0xc0;
    want[67] = 0x3f;
    memset(got, 0xee, sizeof got);
    assert_int_equal(bn_i2s_bytes(256), 96);
    bn_pack_i2s(q, 1.5f, 256, got);
    assert_memory_equal(got, want, 96);

    int8_t back[256];
    float s = 0;
    assert_int_equal(bn_unpack_i2s(got, 256, back, &s), BN_OK);
    assert_memory_equal(back, q, 256);
    assert_true(s == 1.5f);

    got[40] = 0x57; /* bits 1:0 = 11 -> code 3 */
    assert_int_equal(bn_unpack_i2s(got, 256, back, &s), BN_ERR_FORMAT);
    assert_int_equal(bn_unpack_i2s(got, 200, back, &s), BN_ERR_INVALID);
}

/* ---- random round trips ------------------------------------------------------------ */

static void test_round_trips(void **state)
{
    (void)state;
    enum { N = 2048 };
    static int8_t q[N], back[N];
    static uint8_t buf[N];
    float d[N / 256], s;
    uint32_t seed = 0x12345678u;
    for (int it = 0; it < 50; it++) {
        const int64_t n = 256 * (1 + it % 8);
        for (int64_t i = 0; i < n; i++) q[i] = (int8_t)(rng_next(&seed) % 3) - 1;
        const float scale = (float)(1 + it) * 0.125f; /* exact in fp16 */

        bn_pack_tq2_0(q, scale, n, buf);
        memset(back, 9, sizeof back);
        assert_int_equal(bn_unpack_tq2_0(buf, n, back, d), BN_OK);
        assert_memory_equal(back, q, (size_t)n);
        assert_true(d[n / 256 - 1] == scale);

        bn_pack_tq1_0(q, scale, n, buf);
        memset(back, 9, sizeof back);
        assert_int_equal(bn_unpack_tq1_0(buf, n, back, d), BN_OK);
        assert_memory_equal(back, q, (size_t)n);
        assert_true(d[0] == scale);

        bn_pack_i2s(q, scale * 0.1f, n, buf);
        memset(back, 9, sizeof back);
        assert_int_equal(bn_unpack_i2s(buf, n, back, &s), BN_OK);
        assert_memory_equal(back, q, (size_t)n);
        assert_true(s == scale * 0.1f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_type_traits),        cmocka_unit_test(test_row_bytes),
            cmocka_unit_test(test_f32_to_f16_known),   cmocka_unit_test(test_f16_to_f32_known),
            cmocka_unit_test(test_f16_round_trip_all), cmocka_unit_test(test_f16_rows),
            cmocka_unit_test(test_bf16_known),         cmocka_unit_test(test_q8_0_known),
            cmocka_unit_test(test_q4_0_known),         cmocka_unit_test(test_tq2_0_known),
            cmocka_unit_test(test_tq2_0_reject),       cmocka_unit_test(test_tq_ref_quantizers),
            cmocka_unit_test(test_tq1_0_known),        cmocka_unit_test(test_tq1_0_all_bytes),
            cmocka_unit_test(test_i2s_known),          cmocka_unit_test(test_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
