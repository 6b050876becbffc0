/* test_quant.c - absmean ternary weights, per-token int8 activations, error metrics.
 * Expected values are worked out by hand in the comments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "bitnet/quant.h"

/* ---- absmean -------------------------------------------------------------------------- */

/* 2 x 3:  0.5  -1.0  0.0
 *         2.0  0.25 -0.25 */
static const float k_w23[6] = {0.5f, -1.0f, 0.0f, 2.0f, 0.25f, -0.25f};

static void test_absmean_tensor(void **state)
{
    (void)state;
    /* mean |W| = 4 / 6 = 0.6667, inv = 1.5:
     * 0.75 -> 1, -1.5 -> -2 (tie to even) -> clamp -1, 0 -> 0, 3 -> clamp 1,
     * 0.375 -> 0, -0.375 -> 0 */
    int8_t q[6];
    float s[1];
    const int8_t want[6] = {1, -1, 0, 1, 0, 0};
    assert_int_equal(bn_absmean_n_scales(2, 3, BN_QGRAN_TENSOR, 0), 1);
    assert_int_equal(bn_quantize_absmean(k_w23, 2, 3, BN_QGRAN_TENSOR, 0, q, s), BN_OK);
    assert_memory_equal(q, want, 6);
    assert_true(s[0] == (float)(4.0 / 6.0));

    float out[6];
    bn_dequantize_ternary(q, s, 2, 3, BN_QGRAN_TENSOR, 0, out);
    for (int i = 0; i < 6; i++) assert_true(out[i] == (float)want[i] * s[0]);
}

static void test_absmean_channel(void **state)
{
    (void)state;
    /* row 0: mean = 1.5 / 3 = 0.5, inv = 2: 1 -> 1, -2 -> -1, 0 -> 0
     * row 1: mean = 2.5 / 3 = 0.8333, inv = 1.2: 2.4 -> 1 (clamp), 0.3 -> 0, -0.3 -> 0 */
    int8_t q[6];
    float s[2];
    const int8_t want[6] = {1, -1, 0, 1, 0, 0};
    assert_int_equal(bn_absmean_n_scales(2, 3, BN_QGRAN_CHANNEL, 0), 2);
    assert_int_equal(bn_quantize_absmean(k_w23, 2, 3, BN_QGRAN_CHANNEL, 0, q, s), BN_OK);
    assert_memory_equal(q, want, 6);
    assert_true(s[0] == 0.5f);
    assert_true(s[1] == (float)(2.5 / 3.0));

    float out[6];
    bn_dequantize_ternary(q, s, 2, 3, BN_QGRAN_CHANNEL, 0, out);
    const float dq[6] = {0.5f, -0.5f, 0.0f, s[1], 0.0f, 0.0f};
    assert_memory_equal(out, dq, sizeof dq);
}

static void test_absmean_group(void **state)
{
    (void)state;
    /* 2 x 4, groups of 2:
     *   {1, -3}:    mean 2, inv 0.5: 0.5 -> 0 (tie to even), -1.5 -> -2 -> clamp -1
     *   {0.5, 0.5}: mean 0.5, inv 2: 1, 1
     *   {0, 0}:     mean 0 -> floor 1e-5: 0, 0
     *   {4, -2}:    mean 3, inv 1/3: 1.33 -> 1, -0.67 -> -1 */
    const float w[8] = {1.0f, -3.0f, 0.5f, 0.5f, 0.0f, 0.0f, 4.0f, -2.0f};
    const int8_t want[8] = {0, -1, 1, 1, 0, 0, 1, -1};
    int8_t q[8];
    float s[4];
    assert_int_equal(bn_absmean_n_scales(2, 4, BN_QGRAN_GROUP, 2), 4);
    assert_int_equal(bn_quantize_absmean(w, 2, 4, BN_QGRAN_GROUP, 2, q, s), BN_OK);
    assert_memory_equal(q, want, 8);
    assert_true(s[0] == 2.0f && s[1] == 0.5f && s[2] == 1e-5f && s[3] == 3.0f);

    float out[8];
    bn_dequantize_ternary(q, s, 2, 4, BN_QGRAN_GROUP, 2, out);
    const float dq[8] = {0.0f, -2.0f, 0.5f, 0.5f, 0.0f, 0.0f, 3.0f, -3.0f};
    assert_memory_equal(out, dq, sizeof dq);

    /* group == cols is the same as per channel */
    float s2[2], s3[2];
    int8_t q2[6], q3[6];
    assert_int_equal(bn_quantize_absmean(k_w23, 2, 3, BN_QGRAN_GROUP, 3, q2, s2), BN_OK);
    assert_int_equal(bn_quantize_absmean(k_w23, 2, 3, BN_QGRAN_CHANNEL, 0, q3, s3), BN_OK);
    assert_memory_equal(q2, q3, 6);
    assert_memory_equal(s2, s3, sizeof s2);
}

static void test_absmean_invalid(void **state)
{
    (void)state;
    int8_t q[8];
    float s[8];
    static const struct {
        int64_t rows, cols;
        bn_qgran g;
        int64_t group;
    } bad[] = {
            {2, 4, BN_QGRAN_GROUP, 0},   {2, 4, BN_QGRAN_GROUP, 3},    {2, 4, BN_QGRAN_GROUP, -2},
            {-1, 4, BN_QGRAN_TENSOR, 0}, {2, -4, BN_QGRAN_CHANNEL, 0}, {2, 4, (bn_qgran)7, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
                bn_quantize_absmean(k_w23, bad[i].rows, bad[i].cols, bad[i].g, bad[i].group, q, s),
                BN_ERR_INVALID);
        assert_int_equal(bn_absmean_n_scales(bad[i].rows, bad[i].cols, bad[i].g, bad[i].group), 0);
    }
    assert_int_equal(bn_quantize_absmean(k_w23, 2, 3, BN_QGRAN_TENSOR, 0, q, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_quantize_absmean(NULL, 2, 3, BN_QGRAN_TENSOR, 0, q, s), BN_ERR_INVALID);
    /* an empty tensor is fine: the scale is the floor */
    assert_int_equal(bn_quantize_absmean(NULL, 0, 0, BN_QGRAN_TENSOR, 0, NULL, s), BN_OK);
    assert_true(s[0] == 1e-5f);
}

static void test_absmean_floor(void **state)
{
    (void)state;
    float w[9] = {0};
    int8_t q[9];
    float s[3];
    memset(q, 7, sizeof q);
    assert_int_equal(bn_quantize_absmean(w, 3, 3, BN_QGRAN_TENSOR, 0, q, s), BN_OK);
    assert_true(s[0] == 1e-5f);
    for (int i = 0; i < 9; i++) assert_int_equal(q[i], 0);
    /* below the floor: mean 1e-6 -> scale 1e-5, inv 1e5: 1e-6 * 1e5 = 0.1 -> 0,
     * 8e-6 -> 0.8 -> 1 */
    w[0] = 1e-6f;
    w[1] = 8e-6f;
    w[2] = -6e-6f;
    assert_int_equal(bn_quantize_absmean(w, 3, 3, BN_QGRAN_CHANNEL, 0, q, s), BN_OK);
    assert_true(s[0] == 1e-5f && s[1] == 1e-5f && s[2] == 1e-5f);
    assert_int_equal(q[0], 0);
    assert_int_equal(q[1], 1);
    assert_int_equal(q[2], -1);
}

static void test_absmean_ties(void **state)
{
    (void)state;
    /* mean |W| = (0.5 + 1.5 + 0.5 + 1.5) / 4 = 1, inv = 1: round half to even */
    float w[4] = {0.5f, 1.5f, -0.5f, -1.5f};
    const int8_t want[4] = {0, 1, 0, -1}; /* 0.5 -> 0, 1.5 -> 2 -> 1, -0.5 -> -0, -1.5 -> -1 */
    int8_t q[4];
    float s;
    assert_int_equal(bn_quantize_absmean(w, 1, 4, BN_QGRAN_TENSOR, 0, q, &s), BN_OK);
    assert_true(s == 1.0f);
    assert_memory_equal(q, want, 4);

    /* 2.5 rounds to 2 (even), still clamped to 1; {2.5, 0.5, -0.5, 0.5}: mean 1 */
    float w2[4] = {2.5f, 0.5f, -0.5f, 0.5f};
    assert_int_equal(bn_quantize_absmean(w2, 1, 4, BN_QGRAN_TENSOR, 0, q, &s), BN_OK);
    assert_int_equal(q[0], 1);
    assert_int_equal(q[1], 0);

    /* fake quantization keeps the sign of -0 (rint(-0.5) = -0) */
    bn_fake_quantize_absmean(w, 4);
    assert_true(w[0] == 0.0f && w[1] == 1.0f && w[2] == 0.0f && w[3] == -1.0f);
    assert_true(signbit(w[2]));
    assert_false(signbit(w[0]));
}

/* fake quantization equals quantize + dequantize, bit for bit */
static void test_fake_quant_absmean_matches(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float w[N], fq[N], dq[N];
    static int8_t q[N];
    uint32_t x = 12345u;
    for (int i = 0; i < N; i++) {
        x = x * 1664525u + 1013904223u;
        w[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    memcpy(fq, w, sizeof w);
    bn_fake_quantize_absmean(fq, N);
    float s;
    assert_int_equal(bn_quantize_absmean(w, 1, N, BN_QGRAN_TENSOR, 0, q, &s), BN_OK);
    bn_dequantize_ternary(q, &s, 1, N, BN_QGRAN_TENSOR, 0, dq);
    for (int i = 0; i < N; i++) {
        assert_true(fabsf(fq[i] - dq[i]) == 0.0f);
        assert_true(q[i] >= -1 && q[i] <= 1);
    }
    /* NaN weights quantize to 0 and do not crash */
    float nanw[4] = {1.0f, NAN, -1.0f, 1.0f};
    int8_t qn[4];
    float sn[4];
    assert_int_equal(bn_quantize_absmean(nanw, 4, 1, BN_QGRAN_CHANNEL, 0, qn, sn), BN_OK);
    assert_int_equal(qn[1], 0);
    assert_int_equal(qn[0], 1);
    assert_int_equal(qn[2], -1);
}

/* ---- activations ------------------------------------------------------------------------ */

static void test_act_row(void **state)
{
    (void)state;
    static const struct {
        float x[4];
        float s;
        int8_t q[4];
        const char *what;
    } cases[] = {
            /* max 2: s = 63.5; 1 -> 63.5 -> 64 (tie to even), -2 -> -127, 0.5 -> 31.75 -> 32 */
            {{1.0f, -2.0f, 0.5f, 0.0f}, 63.5f, {64, -127, 32, 0}, "tie to even up"},
            /* max 2: 2 -> 127; 0.5 * 63.5 = 31.75 -> 32; -1.5 * 63.5 = -95.25 -> -95 */
            {{2.0f, 0.5f, -1.5f, -2.0f}, 63.5f, {127, 32, -95, -127}, "max to +-127"},
            /* max 127: s = 1; 2.5 -> 2, -3.5 -> -4 (ties to even) */
            {{127.0f, 2.5f, -3.5f, 0.5f}, 1.0f, {127, 2, -4, 0}, "ties to even"},
            /* all zero: s = 127 / 1e-5 */
            {{0.0f, 0.0f, 0.0f, 0.0f}, 127.0f / 1e-5f, {0, 0, 0, 0}, "all zero"},
            /* tiny: max 1e-6 < 1e-5 floor: 1e-6 * 1.27e7 = 12.7 -> 13 */
            {{1e-6f, -1e-6f, 0.0f, 5e-7f}, 127.0f / 1e-5f, {13, -13, 0, 6}, "floor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int8_t q[4];
        const float s = bn_quantize_act_row(cases[i].x, 4, q);
        if (s != cases[i].s)
            fail_msg("%s: s = %.9g want %.9g", cases[i].what, (double)s, (double)cases[i].s);
        for (int j = 0; j < 4; j++) {
            if (q[j] != cases[i].q[j])
                fail_msg("%s: q[%d] = %d want %d", cases[i].what, j, q[j], cases[i].q[j]);
        }
    }
    /* NaN is ignored by the max and quantizes to 0 */
    const float xn[3] = {NAN, 1.0f, -0.5f};
    int8_t qn[3];
    assert_true(bn_quantize_act_row(xn, 3, qn) == 127.0f);
    assert_int_equal(qn[0], 0);
    assert_int_equal(qn[1], 127);
    assert_int_equal(qn[2], -64); /* -63.5 -> -64 (even) */
}

static void test_act_rows_and_fake(void **state)
{
    (void)state;
    const float x[8] = {1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 4.0f};
    int8_t q[8];
    float s[2];
    bn_quantize_act(x, 2, 4, q, s);
    assert_true(s[0] == 63.5f && s[1] == 31.75f);
    const int8_t want[8] = {64, -127, 32, 0, 0, 0, 0, 127};
    assert_memory_equal(q, want, 8);

    float f[4] = {1.0f, -2.0f, 0.5f, 0.0f};
    bn_fake_quantize_act_row(f, 4);
    assert_true(f[0] == 64.0f / 63.5f);
    assert_true(f[1] == -127.0f / 63.5f);
    assert_true(f[2] == 32.0f / 63.5f);
    assert_true(f[3] == 0.0f);
}

/* ---- error metrics ----------------------------------------------------------------------- */

static void test_quant_error(void **state)
{
    (void)state;
    bn_qerror e;
    /* ref {1,2,3,4}, approx {1,2,3,5}: noise 1, mse 0.25, signal 30 -> 10 log10(30) dB,
     * cosine 34 / sqrt(30 * 39), max error 1 */
    const float r[4] = {1, 2, 3, 4}, a[4] = {1, 2, 3, 5};
    bn_quant_error(r, a, 4, &e);
    assert_float_equal(e.mse, 0.25, 1e-12);
    assert_float_equal(e.sqnr_db, 10.0 * log10(30.0), 1e-9);
    assert_float_equal(e.cosine, 34.0 / sqrt(30.0 * 39.0), 1e-12);
    assert_float_equal(e.max_abs, 1.0, 0.0);

    bn_quant_error(r, r, 4, &e);
    assert_true(e.mse == 0.0 && isinf(e.sqnr_db) && e.sqnr_db > 0 && e.max_abs == 0.0);
    assert_float_equal(e.cosine, 1.0, 1e-12);

    const float neg[4] = {-1, -2, -3, -4};
    bn_quant_error(r, neg, 4, &e);
    assert_float_equal(e.cosine, -1.0, 1e-12);
    assert_float_equal(e.max_abs, 8.0, 0.0);
    assert_float_equal(e.mse, (4.0 + 16.0 + 36.0 + 64.0) / 4.0, 1e-12);
    assert_float_equal(e.sqnr_db, 10.0 * log10(30.0 / 120.0), 1e-9);

    const float z[4] = {0, 0, 0, 0};
    bn_quant_error(z, z, 4, &e);
    assert_true(e.cosine == 1.0 && e.mse == 0.0 && isinf(e.sqnr_db));
    bn_quant_error(r, z, 4, &e);
    assert_true(e.cosine == 0.0);
    assert_float_equal(e.sqnr_db, 0.0, 1e-12); /* noise == signal */
    assert_float_equal(e.max_abs, 4.0, 0.0);

    bn_quant_error(r, a, 0, &e);
    assert_true(e.mse == 0.0 && e.max_abs == 0.0 && e.cosine == 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_absmean_tensor),
            cmocka_unit_test(test_absmean_channel),
            cmocka_unit_test(test_absmean_group),
            cmocka_unit_test(test_absmean_invalid),
            cmocka_unit_test(test_absmean_floor),
            cmocka_unit_test(test_absmean_ties),
            cmocka_unit_test(test_fake_quant_absmean_matches),
            cmocka_unit_test(test_act_row),
            cmocka_unit_test(test_act_rows_and_fake),
            cmocka_unit_test(test_quant_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
