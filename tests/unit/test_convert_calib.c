/* test_convert_calib.c - calibrated ternarization (app/convert/convert_calib.c) on synthetic
 * layers: inputs X with a few loud channels, weights W whose rows differ in magnitude. The
 * errors the calibration reports are checked against ||X (W - W')^T|| / ||X W^T|| computed
 * directly here, and the scales it chooses against their neighbours: moving any chosen scale
 * by 1% either way must not lower the output error (the scales minimise it for the codes). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../app/convert/convert.h"
#include "bitnet/quant.h"
#include "bitnet/types.h"

#define T 256 /* tokens */
#define K 256 /* inputs */
#define N 16  /* outputs */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static double urand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

typedef struct layer {
    float x[T * K], w[N * K];
} layer;

static void make_layer(layer *l)
{
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) /* every 7th channel 4x louder, as LLM activations have */
            l->x[t * K + k] = (float)(urand() * (k % 7 == 0 ? 4.0 : 1.0));
    for (int r = 0; r < N; r++) /* rows from 0.25x to 2x: one scale cannot suit them all */
        for (int k = 0; k < K; k++)
            l->w[r * K + k] = (float)(urand() * urand() * 0.05 * (0.25 + r / 8.0));
}

/* ||X (W - diag(s) q)^T||_F / ||X W^T||_F, directly; s_row (may be NULL) replaces row r's. */
static double direct_err(const layer *l, const int8_t *q, const float *s, int r_alt, double s_alt)
{
    double num = 0, den = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < N; r++) {
            const double sr = r == r_alt ? s_alt : s[r];
            double y = 0, d = 0;
            for (int k = 0; k < K; k++) {
                y += (double)l->x[t * K + k] * l->w[r * K + k];
                d += (double)l->x[t * K + k] * (l->w[r * K + k] - q[r * K + k] * sr);
            }
            num += d * d;
            den += y * y;
        }
    return sqrt(num / den);
}

static layer L; /* the layer every test calibrates */
static bn_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    make_layer(&L);
    return bn_ctx_new(&ctx, NULL) == BN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    bn_ctx_free(ctx);
    return 0;
}

/* Runs the calibration of one layer; *cal is released by the caller. */
static const cv_calib_layer *calibrate(cv_calib *cal, const layer *l, int method, int row_scales)
{
    char err[256];
    cv_calib_init(cal, ctx, bn_ctx_pool(ctx), method);
    cal->row_scales = row_scales;
    assert_int_equal(cv_calib_linear(cal, "w", l->x, T, l->w, N, K, err, sizeof err), 0);
    return cv_calib_find(cal, "w");
}

static void test_tensor_scale(void **state)
{
    (void)state;
    cv_calib cal;
    const cv_calib_layer *c = calibrate(&cal, &L, CV_METHOD_GPTQ, 0);
    for (int r = 0; r < N; r++) assert_true(c->row_scale[r] == c->scale); /* one scale */
    const double e = direct_err(&L, c->q, c->row_scale, -1, 0);
    assert_true(fabs(e - c->err_gptq) < 1e-6 * e);
    assert_true(c->err_gptq < c->err_scaled && c->err_gptq < c->err_absmean);
    /* the scale minimises the error for the codes: 1% either way is worse */
    float up[N], down[N];
    for (int r = 0; r < N; r++) up[r] = c->scale * 1.01f, down[r] = c->scale * 0.99f;
    assert_true(direct_err(&L, c->q, up, -1, 0) > e && direct_err(&L, c->q, down, -1, 0) > e);
    cv_calib_release(&cal);
}

static void test_row_scales(void **state)
{
    (void)state;
    cv_calib one, rows;
    const cv_calib_layer *c1 = calibrate(&one, &L, CV_METHOD_GPTQ, 0);
    const cv_calib_layer *c = calibrate(&rows, &L, CV_METHOD_GPTQ, 1);
    const double e = direct_err(&L, c->q, c->row_scale, -1, 0);
    assert_true(fabs(e - c->err_gptq) < 1e-6 * e);
    print_message("output error: absmean %.4f, gptq one scale %.4f, a scale per row %.4f\n",
                  c->err_absmean, c1->err_gptq, c->err_gptq);
    assert_true(c->err_gptq < c1->err_gptq);
    float lo = c->row_scale[0], hi = lo;
    for (int r = 0; r < N; r++) {
        const float s = c->row_scale[r];
        assert_true(bn_f16_to_f32(bn_f32_to_f16(s)) == s); /* as TQ2_0 stores it */
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
        /* each row's scale is the best for its codes (the f16 grid is 0.05%, the step 1%) */
        assert_true(direct_err(&L, c->q, c->row_scale, r, s * 1.01) > e);
        assert_true(direct_err(&L, c->q, c->row_scale, r, s * 0.99) > e);
    }
    assert_true(hi > 3 * lo); /* the rows span 8x in magnitude */
    cv_calib_release(&one);
    cv_calib_release(&rows);
}

static void test_absmean_codes(void **state)
{
    (void)state;
    cv_calib cal;
    const cv_calib_layer *c = calibrate(&cal, &L, CV_METHOD_ABSMEAN, 1);
    static int8_t q[N * K];
    float s;
    assert_int_equal(bn_quantize_absmean(L.w, N, K, BN_QGRAN_TENSOR, 0, q, &s), BN_OK);
    assert_memory_equal(c->q, q, sizeof q); /* what a plain convert writes */
    for (int r = 0; r < N; r++) assert_true(c->row_scale[r] == s);
    assert_true(fabs(direct_err(&L, q, c->row_scale, -1, 0) - c->err_absmean) < 1e-6);
    cv_calib_release(&cal);
}

/* ||X (W - diag(s) q - b a)^T||_F / ||X W^T||_F with lr's factors. */
static double lowrank_err(const layer *l, const int8_t *q, const float *s, const cv_lowrank *lr)
{
    static float w2[N * K];
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            double c = 0;
            for (int j = 0; j < lr->rank; j++)
                c += (double)lr->b[r * lr->rank + j] * lr->a[j * K + k];
            w2[r * K + k] = l->w[r * K + k] - (float)c; /* the part the codes must carry */
        }
    double num = 0, den = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < N; r++) {
            double y = 0, d = 0;
            for (int k = 0; k < K; k++) {
                y += (double)l->x[t * K + k] * l->w[r * K + k];
                d += (double)l->x[t * K + k] * (w2[r * K + k] - q[r * K + k] * s[r]);
            }
            num += d * d;
            den += y * y;
        }
    return sqrt(num / den);
}

/* With calibration the low-rank factors are chosen for the output error: below plain SVD's
 * (which minimises ||D - L||_F, blind to the loud input channels) and below no factors. */
static void test_lowrank_weighted(void **state)
{
    (void)state;
    cv_calib cal;
    char err[256];
    cv_calib_init(&cal, ctx, bn_ctx_pool(ctx), CV_METHOD_ABSMEAN);
    cal.lowrank = 4;
    assert_int_equal(cv_calib_linear(&cal, "w", L.x, T, L.w, N, K, err, sizeof err), 0);
    const cv_calib_layer *c = cv_calib_find(&cal, "w");
    assert_int_equal(c->lr.rank, 4);
    cv_lowrank plain = {0};
    assert_int_equal(
            cv_lowrank_factors(ctx, L.w, c->q, c->row_scale, N, K, 4, &plain, err, sizeof err), 0);
    const double e0 = direct_err(&L, c->q, c->row_scale, -1, 0);
    const double ep = lowrank_err(&L, c->q, c->row_scale, &plain);
    const double ew = lowrank_err(&L, c->q, c->row_scale, &c->lr);
    print_message("output error: absmean %.4f (%.4f), + rank 4 by SVD %.4f, weighted %.4f\n", e0,
                  c->err_absmean, ep, ew);
    assert_true(ew < ep && ep < e0);
    cv_lowrank_release(&plain);
    cv_calib_release(&cal);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tensor_scale),
            cmocka_unit_test(test_row_scales),
            cmocka_unit_test(test_absmean_codes),
            cmocka_unit_test(test_lowrank_weighted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
