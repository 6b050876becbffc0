/*
 * test_kernels.c - the ternary and float kernels: every variant this CPU runs against
 * the reference (bit-exact y, exact int32 acc) over odd shapes and extreme values, the
 * reference against a naive product, the repackers against bn_tmat_from_ternary, bad
 * input, allocation failure without leaks, dispatch, and the threaded product.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet/kernels.h"
#include "bitnet/quant.h"
#include "bitnet/threadpool.h"
#include "bitnet/types.h"

#if defined(__x86_64__) || defined(__i386__)
/* The AVX-512 kernels' source against a plain-C model of its intrinsics: checks their
 * logic here even when this CPU has no AVX-512 (the real ones run when it has).
 * The one test that #includes a .c, on purpose: the file must be compiled a second time,
 * against tests/unit/avx512_emu.h instead of <immintrin.h>, which linking libbitnet's
 * kernels_avx512.o cannot do (tests/cli/test_include_paths.sh allows only this one). */
#define BN_KERNELS_AVX512_EMULATE 1
#include "kernels_avx512.c"
#define HAVE_AVX512_EMULATED 1
#endif

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_float(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(rng_next(s) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* Weight patterns: random ternary, all +1, all -1. */
enum { W_RANDOM, W_PLUS, W_MINUS };
/* Activation patterns: random floats, all +127, all -128. */
enum { X_RANDOM, X_MAX, X_MIN };

static int8_t *make_ternary(int64_t rows, int64_t cols, int pattern, uint64_t *seed)
{
    int8_t *q = malloc((size_t)(rows * cols));
    assert_non_null(q);
    for (int64_t i = 0; i < rows * cols; i++)
        q[i] = pattern == W_PLUS    ? 1
               : pattern == W_MINUS ? -1
                                    : (int8_t)((int)(rng_next(seed) % 3) - 1);
    return q;
}

static void make_act(bn_qact *x, int64_t n_tok, int64_t cols, int pattern, uint64_t *seed)
{
    assert_int_equal(bn_qact_init(x, n_tok, cols), BN_OK);
    float *xf = malloc(sizeof(float) * (size_t)(n_tok * cols));
    assert_non_null(xf);
    for (int64_t i = 0; i < n_tok * cols; i++) xf[i] = rng_float(seed) * 3.0f;
    bn_qact_quantize(x, xf, n_tok);
    free(xf);
    if (pattern == X_RANDOM) return;
    /* extreme values written straight into the int8 rows (quantizing floats never gives
     * -128), with their sums */
    const int v = pattern == X_MAX ? 127 : -128;
    for (int64_t t = 0; t < n_tok; t++) {
        memset(x->q + t * x->kpad, v, (size_t)cols);
        x->sum[t] = v * (int32_t)cols;
    }
}

/* acc = q * xq^T straight from the int8 inputs: an independent check of the reference. */
static void naive_acc(const int8_t *q, int64_t rows, int64_t cols, const bn_qact *x, int32_t *acc)
{
    for (int64_t t = 0; t < x->n_tok; t++)
        for (int64_t r = 0; r < rows; r++) {
            int64_t s = 0;
            for (int64_t k = 0; k < cols; k++) s += q[r * cols + k] * x->q[t * x->kpad + k];
            acc[t * rows + r] = (int32_t)s;
        }
}

static const bn_kernels *variant(const char *name)
{
    const bn_kernels *k = bn_kernels_by_name(name);
    if (!k)
        print_message("  [ SKIP     ] kernels '%s': not compiled in or not supported here\n", name);
    return k;
}

/* Runs kernels k on one case and compares with the reference and the naive product.
 * Also checks a partial row range that must leave the rest of y untouched. */
static void check_case(const bn_kernels *k, int64_t rows, int64_t cols, int64_t n_tok, int wpat,
                       int xpat, uint64_t *seed)
{
    int8_t *q = make_ternary(rows, cols, wpat, seed);
    float *scales = malloc(sizeof(float) * (size_t)rows);
    assert_non_null(scales);
    for (int64_t r = 0; r < rows; r++) scales[r] = 0.01f + 0.001f * (float)(r % 13);
    bn_tmat w;
    assert_int_equal(bn_tmat_from_ternary(&w, q, scales, 0.0f, rows, cols), BN_OK);
    bn_qact x;
    make_act(&x, n_tok, cols, xpat, seed);

    const size_t n_out = (size_t)(rows * n_tok);
    int32_t *acc_naive = malloc(sizeof(int32_t) * n_out);
    int32_t *acc_ref = malloc(sizeof(int32_t) * n_out);
    int32_t *acc_k = malloc(sizeof(int32_t) * n_out);
    float *y_ref = malloc(sizeof(float) * n_out);
    float *y_k = malloc(sizeof(float) * n_out);
    assert_true(acc_naive && acc_ref && acc_k && y_ref && y_k);

    naive_acc(q, rows, cols, &x, acc_naive);
    const bn_kernels *ref = bn_kernels_ref();
    ref->tgemm_i32(&w, &x, acc_ref, 0, rows);
    assert_memory_equal(acc_naive, acc_ref, sizeof(int32_t) * n_out);
    ref->tgemm(&w, &x, y_ref, rows, 0, rows);
    for (size_t i = 0; i < n_out; i++) {
        const int64_t t = (int64_t)i / rows, r = (int64_t)i % rows;
        const float want = (float)acc_ref[i] * (scales[r] * x.inv_scale[t]);
        assert_memory_equal(&want, &y_ref[i], sizeof want);
    }

    k->tgemm_i32(&w, &x, acc_k, 0, rows);
    if (memcmp(acc_k, acc_ref, sizeof(int32_t) * n_out) != 0)
        fail_msg("%s tgemm_i32 differs: rows %lld cols %lld tokens %lld w %d x %d", k->name,
                 (long long)rows, (long long)cols, (long long)n_tok, wpat, xpat);
    k->tgemm(&w, &x, y_k, rows, 0, rows);
    if (memcmp(y_k, y_ref, sizeof(float) * n_out) != 0)
        fail_msg("%s tgemm differs: rows %lld cols %lld tokens %lld w %d x %d", k->name,
                 (long long)rows, (long long)cols, (long long)n_tok, wpat, xpat);

    /* rows [r0, r1) with ldy = rows + 3: everything else keeps its sentinel */
    const int64_t r0 = rows > 2 ? 1 : 0, r1 = rows > 3 ? rows - 1 : rows, ldy = rows + 3;
    float *y_part = malloc(sizeof(float) * (size_t)(ldy * n_tok));
    assert_non_null(y_part);
    for (int64_t i = 0; i < ldy * n_tok; i++) y_part[i] = -7.5f;
    k->tgemm(&w, &x, y_part, ldy, r0, r1);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < ldy; r++) {
            const float got = y_part[t * ldy + r];
            if (r >= r0 && r < r1)
                assert_memory_equal(&got, &y_ref[t * rows + r], sizeof got);
            else
                assert_true(got == -7.5f);
        }

    free(y_part);
    free(acc_naive);
    free(acc_ref);
    free(acc_k);
    free(y_ref);
    free(y_k);
    bn_qact_release(&x);
    bn_tmat_release(&w);
    free(scales);
    free(q);
}

static const int64_t g_rows[] = {1, 3, 17, 33, 100};
static const int64_t g_cols[] = {1, 5, 127, 128, 129, 300, 2560};
static const int64_t g_toks[] = {1, 2, 3, 4, 5, 7, 8, 16, 130};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void check_variant(const bn_kernels *k)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < N_OF(g_rows); i++)
        for (size_t j = 0; j < N_OF(g_cols); j++)
            for (size_t t = 0; t < N_OF(g_toks); t++)
                check_case(k, g_rows[i], g_cols[j], g_toks[t], W_RANDOM, X_RANDOM, &seed);
    /* saturation probes: the largest |sum| the int16 stages can see */
    const int64_t cols[] = {128, 2048, 2560, 6912};
    const int64_t toks[] = {1, 9};
    for (size_t j = 0; j < N_OF(cols); j++)
        for (size_t t = 0; t < N_OF(toks); t++)
            for (int wp = W_RANDOM; wp <= W_MINUS; wp++)
                for (int xp = X_RANDOM; xp <= X_MIN; xp++)
                    check_case(k, 5, cols[j], toks[t], wp, xp, &seed);
}

/* ---- tests: variants ------------------------------------------------------------------ */

static void test_ref_self(void **state)
{
    (void)state;
    /* the reference against the naive product (inside check_case), with itself */
    uint64_t seed = 1;
    check_case(bn_kernels_ref(), 17, 300, 3, W_RANDOM, X_RANDOM, &seed);
    check_case(bn_kernels_ref(), 4, 256, 2, W_MINUS, X_MIN, &seed);
}

static void test_variant_avx2(void **state)
{
    (void)state;
    const bn_kernels *k = variant("avx2");
    if (!k) skip();
    check_variant(k);
}

static void test_variant_avx512(void **state)
{
    (void)state;
    const bn_kernels *k = variant("avx512vnni");
    if (!k) skip();
    check_variant(k);
}

static void test_variant_avx512_emulated(void **state)
{
    (void)state;
#ifdef HAVE_AVX512_EMULATED
    check_variant(&bn__kernels_avx512_emulated);
#else
    skip();
#endif
}

static void test_variant_neon(void **state)
{
    (void)state;
    const bn_kernels *k = variant("neon");
    if (!k) skip();
    check_variant(k);
}

/* ---- tests: float products ---------------------------------------------------------------- */

/* |got - exact| <= tol * sum |a_i b_i| + tiny, exact computed in double. */
static void assert_close(double got, double exact, double abs_sum, double tol)
{
    if (fabs(got - exact) > tol * abs_sum + 1e-30)
        fail_msg("got %.9g, want %.9g (sum|ab| %.6g)", got, exact, abs_sum);
}

static void test_dots(void **state)
{
    (void)state;
    const bn_kernels *ks[8];
    const int nk = bn_kernels_list(ks, 8);
    const int64_t ns[] = {0, 1, 7, 8, 9, 31, 32, 33, 100, 2560, 4099};
    uint64_t seed = 42;
    for (size_t i = 0; i < N_OF(ns); i++) {
        const int64_t n = ns[i];
        float *a = malloc(sizeof(float) * (size_t)(n + 1)),
              *b = malloc(sizeof(float) * (size_t)(n + 1));
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n + 1));
        assert_true(a && b && h);
        double exact = 0, exact_h = 0, abs_sum = 0, abs_sum_h = 0;
        for (int64_t j = 0; j < n; j++) {
            a[j] = rng_float(&seed) * 4.0f;
            b[j] = rng_float(&seed);
            h[j] = bn_f32_to_f16(a[j]);
            const double ah = bn_f16_to_f32(h[j]);
            exact += (double)a[j] * b[j];
            abs_sum += fabs((double)a[j] * b[j]);
            exact_h += ah * b[j];
            abs_sum_h += fabs(ah * b[j]);
        }
        /* f32 accumulation of up to ~4k terms: 1e-4 of sum |ab| is ample */
        for (int v = 0; v < nk; v++) {
            assert_close(ks[v]->dot_f32(a, b, n), exact, abs_sum, 1e-4);
            assert_close(ks[v]->dot_f16_f32(h, b, n), exact_h, abs_sum_h, 1e-4);
        }
        free(a);
        free(b);
        free(h);
    }
}

/* ---- tests: the LM head in Q6H / Q4H blocks ------------------------------------------ */

/* Every variant this CPU runs, plus the emulated AVX-512 one; returns the count. */
static int head_variants(const bn_kernels **ks)
{
    int nk = bn_kernels_list(ks, 7);
#ifdef HAVE_AVX512_EMULATED
    ks[nk++] = &bn__kernels_avx512_emulated;
#endif
    return nk;
}

/* A Q8_0 activation row split into values and f32 scales, as the head takes it. */
static void split_q8(const float *x, int64_t n, int8_t *xq, float *xd)
{
    bn_block_q8_0 *b = malloc(sizeof *b * (size_t)(n / BN_QK8_0));
    assert_non_null(b);
    bn_quantize_row_q8_0(x, b, n);
    for (int64_t i = 0; i < n / BN_QK8_0; i++) {
        memcpy(xq + i * BN_QK8_0, b[i].qs, BN_QK8_0);
        xd[i] = bn_f16_to_f32(b[i].d);
    }
    free(b);
}

/* Both formats' products on odd block counts against the dequantized row in double
 * (the int sums are exact, only the float summation order differs: 1e-5 of the sum of
 * the absolute terms), and extremes (q = -32 or -8, x = -128, sc = 127, d = 1) where
 * every variant's float sum is exact. */
static void test_dot_head_blocks(void **state)
{
    (void)state;
    const bn_kernels *ks[8];
    const int nk = head_variants(ks);
    const int64_t ns[] = {256, 768, 2560, 4352};
    uint64_t seed = 11;
    for (size_t t = 0; t < N_OF(ns); t++) {
        const int64_t n = ns[t], nb = n / BN_QK_H;
        float *w = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)n);
        float *w6 = malloc(sizeof(float) * (size_t)n), *w4 = malloc(sizeof(float) * (size_t)n);
        float *xd = malloc(sizeof(float) * (size_t)(n / 32));
        int8_t *xq = malloc((size_t)n);
        bn_block_q6h *a6 = malloc(sizeof *a6 * (size_t)nb);
        bn_block_q4h *a4 = malloc(sizeof *a4 * (size_t)nb);
        assert_true(w && x && w6 && w4 && xd && xq && a6 && a4);
        for (int64_t j = 0; j < n; j++) {
            w[j] = rng_float(&seed) * (float)(1 + j % 7);
            x[j] = rng_float(&seed);
        }
        split_q8(x, n, xq, xd);
        bn_quantize_row_q6h_ref(w, a6, n);
        bn_quantize_row_q4h_ref(w, a4, n);
        bn_dequantize_row_q6h(a6, w6, n);
        bn_dequantize_row_q4h(a4, w4, n);
        double e6 = 0, s6 = 0, e4 = 0, s4 = 0;
        for (int64_t j = 0; j < n; j++) {
            const double xv = (double)xq[j] * xd[j / 32];
            e6 += w6[j] * xv, s6 += fabs(w6[j] * xv);
            e4 += w4[j] * xv, s4 += fabs(w4[j] * xv);
        }
        for (int v = 0; v < nk; v++) {
            assert_close(ks[v]->dot_q6h_q8(a6, xq, xd, n), e6, s6, 1e-5);
            assert_close(ks[v]->dot_q4h_q8(a4, xq, xd, n), e4, s4, 1e-5);
        }
        for (int64_t i = 0; i < nb; i++) {
            a6[i].d = a4[i].d = 0x3c00; /* 1.0 */
            memset(a6[i].sc, 127, sizeof a6[i].sc);
            memset(a4[i].sc, 127, sizeof a4[i].sc);
            memset(a6[i].ql, 0, sizeof a6[i].ql);
            memset(a6[i].qh, 0, sizeof a6[i].qh);
            memset(a4[i].ql, 0, sizeof a4[i].ql);
        }
        memset(xq, 0x80, (size_t)n);
        for (int64_t i = 0; i < n / 32; i++) xd[i] = 1.0f;
        for (int v = 0; v < nk; v++) {
            if (ks[v]->dot_q6h_q8(a6, xq, xd, n) != (float)(32.0 * 128 * 127 * (double)n))
                fail_msg("%s: q6h extremes, n %lld", ks[v]->name, (long long)n);
            if (ks[v]->dot_q4h_q8(a4, xq, xd, n) != (float)(8.0 * 128 * 127 * (double)n))
                fail_msg("%s: q4h extremes, n %lld", ks[v]->name, (long long)n);
        }
        free(w), free(x), free(w6), free(w4), free(xd), free(xq), free(a6), free(a4);
    }
}

/* Relative RMS error of a Gaussian row through quantize + dequantize: 6-bit values with
 * 16-value sub-scales lose about 1/62 of each sub-block's range, 4-bit about 1/14. */
static double head_roundtrip_rms(int bits, const float *x, float *y, int64_t n)
{
    void *blk = malloc((size_t)(n / BN_QK_H) * sizeof(bn_block_q6h));
    assert_non_null(blk);
    if (bits == 6) {
        bn_quantize_row_q6h_ref(x, blk, n);
        bn_dequantize_row_q6h(blk, y, n);
    } else {
        bn_quantize_row_q4h_ref(x, blk, n);
        bn_dequantize_row_q4h(blk, y, n);
    }
    free(blk);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        ref += (double)x[i] * x[i];
    }
    return sqrt(err / ref);
}

/* bounds on the relative RMS error of a Gaussian row (measured: 0.0195 and 0.0854) */
#define RMS_Q6H 0.025
#define RMS_Q4H 0.10

static void test_head_blocks_roundtrip(void **state)
{
    (void)state;
    const int64_t n = 256 * 64;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    assert_true(x && y);
    uint64_t seed = 5;
    for (int64_t i = 0; i < n; i += 2) { /* Box-Muller: Gaussian rows, sd 0.02 */
        const double u = (double)(rng_next(&seed) >> 11) * 0x1.0p-53 + 1e-300;
        const double v = (double)(rng_next(&seed) >> 11) * 0x1.0p-53;
        x[i] = (float)(0.02 * sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
        x[i + 1] = (float)(0.02 * sqrt(-2 * log(u)) * sin(6.283185307179586 * v));
    }
    const double e6 = head_roundtrip_rms(6, x, y, n), e4 = head_roundtrip_rms(4, x, y, n);
    if (!(e6 < RMS_Q6H && e4 < RMS_Q4H))
        fail_msg("relative RMS error q6h %.4f (bound %.3f), q4h %.4f (bound %.3f)", e6, RMS_Q6H, e4,
                 RMS_Q4H);
    print_message("relative RMS error: q6h %.4f, q4h %.4f\n", e6, e4);
    /* zeros stay zeros; a NaN gives 0 and leaves its block finite */
    for (int64_t i = 0; i < 256; i++) x[i] = 0.0f;
    x[300] = NAN;
    for (int bits = 4; bits <= 6; bits += 2) {
        head_roundtrip_rms(bits, x, y, n);
        for (int64_t i = 0; i < 256; i++) assert_true(y[i] == 0.0f);
        assert_true(y[300] == 0.0f);
        for (int64_t i = 256; i < 512; i++) assert_true(isfinite(y[i]));
    }
    free(x);
    free(y);
}

static void test_dot_q8_0(void **state)
{
    (void)state;
    const bn_kernels *ks[8];
    const int nk = bn_kernels_list(ks, 8);
    const int64_t ns[] = {32, 64, 96, 2560, 4096};
    uint64_t seed = 7;
    for (size_t i = 0; i < N_OF(ns); i++) {
        const int64_t n = ns[i], nb = n / BN_QK8_0;
        float *fa = malloc(sizeof(float) * (size_t)n), *fb = malloc(sizeof(float) * (size_t)n);
        bn_block_q8_0 *a = malloc(sizeof *a * (size_t)nb), *b = malloc(sizeof *b * (size_t)nb);
        assert_true(fa && fb && a && b);
        for (int64_t j = 0; j < n; j++) {
            fa[j] = rng_float(&seed) * (float)(1 + j % 5);
            fb[j] = rng_float(&seed);
        }
        bn_quantize_row_q8_0(fa, a, n);
        bn_quantize_row_q8_0(fb, b, n);
        double exact = 0, abs_sum = 0;
        for (int64_t blk = 0; blk < nb; blk++) {
            const double d = (double)bn_f16_to_f32(a[blk].d) * bn_f16_to_f32(b[blk].d);
            for (int j = 0; j < BN_QK8_0; j++) {
                exact += d * a[blk].qs[j] * b[blk].qs[j];
                abs_sum += fabs(d * a[blk].qs[j] * b[blk].qs[j]);
            }
        }
        for (int v = 0; v < nk; v++) assert_close(ks[v]->dot_q8_0(a, b, n), exact, abs_sum, 1e-5);
        /* -128 * -128 everywhere with d = 1: every sum is an exact integer in float */
        for (int64_t blk = 0; blk < nb; blk++) {
            a[blk].d = b[blk].d = 0x3c00; /* 1.0 */
            memset(a[blk].qs, 0x80, BN_QK8_0);
            memset(b[blk].qs, 0x80, BN_QK8_0);
        }
        for (int v = 0; v < nk; v++)
            assert_true(ks[v]->dot_q8_0(a, b, n) == (float)(16384.0 * (double)n));
        free(fa);
        free(fb);
        free(a);
        free(b);
    }
}

/* ---- tests: bn_tmat and its repackers ---------------------------------------------------- */

static void assert_tmat_equal(const bn_tmat *a, const bn_tmat *b)
{
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    assert_int_equal(a->kpad, b->kpad);
    assert_int_equal(a->row_bytes, b->row_bytes);
    assert_int_equal(a->rows_pad, b->rows_pad);
    assert_memory_equal(a->codes, b->codes, (size_t)(a->rows_pad * a->row_bytes));
    assert_memory_equal(a->scales, b->scales, sizeof(float) * (size_t)a->rows);
}

static void test_tmat_get_and_padding(void **state)
{
    (void)state;
    uint64_t seed = 3;
    const int64_t rows = 5, cols = 300;
    int8_t *q = make_ternary(rows, cols, W_RANDOM, &seed);
    bn_tmat w;
    assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.5f, rows, cols), BN_OK);
    assert_int_equal(w.kpad, 384);
    assert_int_equal(w.row_bytes, 96);
    assert_int_equal(w.rows_pad, 8);
    assert_int_equal((uintptr_t)w.codes % 64, 0);
    for (int64_t r = 0; r < rows; r++) {
        assert_true(w.scales[r] == 0.5f);
        for (int64_t k = 0; k < w.kpad; k++)
            assert_int_equal(bn_tmat_get(&w, r, k), k < cols ? q[r * cols + k] : 0);
    }
    /* the layout itself: block b of row r at group offset (4b + r % 4) * 32 */
    for (int64_t r = 0; r < w.rows_pad; r++)
        for (int64_t k = 0; k < w.kpad; k++) {
            const uint8_t byte =
                    w.codes[(r / 4) * 4 * w.row_bytes + ((k / 128) * 4 + r % 4) * 32 + k % 32];
            const int code = (byte >> (6 - 2 * (k % 128 / 32))) & 3;
            assert_int_equal(code - 1, r < rows && k < cols ? q[r * cols + k] : 0);
        }
    bn_tmat_release(&w);
    assert_null(w.codes);
    q[7] = 2;
    assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.5f, rows, cols), BN_ERR_FORMAT);
    assert_null(w.codes);
    assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.5f, 0, cols), BN_ERR_INVALID);
    assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.5f, rows, 0), BN_ERR_INVALID);
    assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.5f, 1, (int64_t)1 << 40), BN_ERR_RANGE);
    free(q);
}

static void test_from_i2s(void **state)
{
    (void)state;
    uint64_t seed = 11;
    const int64_t rows = 7, cols = 384, n = rows * cols;
    int8_t *q = make_ternary(rows, cols, W_RANDOM, &seed);
    const size_t size = bn_i2s_bytes(n);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    bn_pack_i2s(q, 0.75f, n, buf);
    bn_tmat a, b;
    assert_int_equal(bn_tmat_from_ternary(&a, q, NULL, 0.75f, rows, cols), BN_OK);
    assert_int_equal(bn_tmat_from_i2s(&b, buf, size, rows, cols), BN_OK);
    assert_tmat_equal(&a, &b);
    bn_tmat_release(&b);
    /* truncated, bad shape, code 3 */
    assert_int_equal(bn_tmat_from_i2s(&b, buf, size - 1, rows, cols), BN_ERR_FORMAT);
    assert_null(b.codes);
    assert_int_equal(bn_tmat_from_i2s(&b, buf, size, rows, 100), BN_ERR_INVALID);
    buf[5] |= 0x03;
    buf[5] |= 0x0c;
    assert_int_equal(bn_tmat_from_i2s(&b, buf, size, rows, cols), BN_ERR_FORMAT);
    assert_null(b.codes);
    bn_tmat_release(&a);
    free(buf);
    free(q);
}

/* A row of TQ blocks each packed with its own d. */
typedef void (*pack_fn)(const int8_t *q, float d, int64_t n, uint8_t *out);

static void pack_rows(pack_fn pack, size_t block_bytes, const int8_t *q, const float *d_blocks,
                      int64_t rows, int64_t cols, uint8_t *out)
{
    const int64_t nb = cols / BN_QK_TQ;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++)
            pack(q + r * cols + b * BN_QK_TQ, d_blocks[r * nb + b], BN_QK_TQ,
                 out + (size_t)(r * nb + b) * block_bytes);
}

static void check_tq(pack_fn pack, size_t block_bytes,
                     bn_status (*from)(bn_tmat *, const uint8_t *, size_t, int64_t, int64_t))
{
    uint64_t seed = 5;
    const int64_t rows = 6, cols = 768, nb = cols / BN_QK_TQ;
    int8_t *q = make_ternary(rows, cols, W_RANDOM, &seed);
    /* row 2, block 1 all zero: its d may differ from the row's */
    memset(q + 2 * cols + BN_QK_TQ, 0, BN_QK_TQ);
    float d[6 * 3], scales[6];
    for (int64_t r = 0; r < rows; r++) {
        scales[r] = 0.125f * (float)(r + 1); /* exact in fp16 */
        for (int64_t b = 0; b < nb; b++) d[r * nb + b] = scales[r];
    }
    d[2 * nb + 1] = 3.0f;
    const size_t size = (size_t)(rows * nb) * block_bytes;
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    pack_rows(pack, block_bytes, q, d, rows, cols, buf);
    bn_tmat a, b;
    assert_int_equal(bn_tmat_from_ternary(&a, q, scales, 0.0f, rows, cols), BN_OK);
    assert_int_equal(from(&b, buf, size, rows, cols), BN_OK);
    assert_tmat_equal(&a, &b);
    bn_tmat_release(&b);
    /* truncated; cols not a multiple of 256 */
    assert_int_equal(from(&b, buf, size - 1, rows, cols), BN_ERR_FORMAT);
    assert_null(b.codes);
    assert_int_equal(from(&b, buf, size, rows, 128), BN_ERR_INVALID);
    /* mixed scales within a row (block with nonzero weights) */
    d[4 * nb + 2] = 0.25f;
    pack_rows(pack, block_bytes, q, d, rows, cols, buf);
    assert_int_equal(from(&b, buf, size, rows, cols), BN_ERR_UNSUPPORTED);
    assert_null(b.codes);
    /* a row of zero blocks only: accepted, all weights 0 */
    memset(q, 0, (size_t)cols);
    d[0] = INFINITY;
    d[4 * nb + 2] = scales[4];
    pack_rows(pack, block_bytes, q, d, rows, cols, buf);
    assert_int_equal(from(&b, buf, size, rows, cols), BN_OK);
    for (int64_t k = 0; k < cols; k++) assert_int_equal(bn_tmat_get(&b, 0, k), 0);
    assert_true(b.scales[0] == 0.0f);
    bn_tmat_release(&b);
    bn_tmat_release(&a);
    free(buf);
    free(q);
}

static void test_from_tq2_0(void **state)
{
    (void)state;
    check_tq(bn_pack_tq2_0, BN_TQ2_0_BLOCK_BYTES, bn_tmat_from_tq2_0);
    /* a code 3 is not ternary */
    int8_t q[BN_QK_TQ] = {0};
    uint8_t blk[BN_TQ2_0_BLOCK_BYTES];
    bn_pack_tq2_0(q, 1.0f, BN_QK_TQ, blk);
    blk[10] |= 0xc0;
    bn_tmat w;
    assert_int_equal(bn_tmat_from_tq2_0(&w, blk, sizeof blk, 1, BN_QK_TQ), BN_ERR_FORMAT);
    assert_null(w.codes);
}

static void test_from_tq1_0(void **state)
{
    (void)state;
    check_tq(bn_pack_tq1_0, BN_TQ1_0_BLOCK_BYTES, bn_tmat_from_tq1_0);
}

/* ---- tests: activations ------------------------------------------------------------------- */

static void test_qact(void **state)
{
    (void)state;
    uint64_t seed = 9;
    const int64_t cols = 200;
    bn_qact x;
    assert_int_equal(bn_qact_init(&x, 4, cols), BN_OK);
    assert_int_equal(x.kpad, 256);
    assert_int_equal(x.cap, 4);
    float xf[3 * 200];
    for (int i = 0; i < 3 * 200; i++) xf[i] = rng_float(&seed) * 10.0f;
    bn_qact_quantize(&x, xf, 3);
    assert_int_equal(x.n_tok, 3);
    for (int t = 0; t < 3; t++) {
        int8_t want[200];
        const float s = bn_quantize_act_row(xf + t * cols, cols, want);
        assert_memory_equal(x.q + t * x.kpad, want, (size_t)cols);
        int32_t sum = 0;
        for (int k = 0; k < cols; k++) sum += want[k];
        assert_int_equal(x.sum[t], sum);
        assert_true(x.inv_scale[t] == 1.0f / s);
        for (int64_t k = cols; k < x.kpad; k++) assert_int_equal(x.q[t * x.kpad + k], 0);
    }
    bn_qact_release(&x);
    assert_null(x.q);
    assert_int_equal(bn_qact_init(&x, 0, cols), BN_ERR_INVALID);
    assert_int_equal(bn_qact_init(&x, 1, 0), BN_ERR_INVALID);
}

/* ---- tests: allocation failure ------------------------------------------------------------ */

static long g_live;

static void *count_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    g_live++;
    return p;
}

static void count_free(void *p, void *user)
{
    (void)user;
    if (p) g_live--;
    free(p);
}

/* Fails the n-th allocation of op for n = 1, 2, ... until op succeeds; every failure must
 * be BN_ERR_NOMEM and leave nothing allocated. */
static void walk_nomem(bn_status (*op)(void *ctx), void (*undo)(void *ctx), void *ctx)
{
    const bn_allocator counting = {count_alloc, count_free, NULL};
    bn_set_allocator(&counting);
    g_live = 0;
    int failures = 0;
    for (long n = 1; n < 100; n++) {
        bn_alloc_fail_at(n, 0);
        const bn_status rc = op(ctx);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            undo(ctx);
            break;
        }
        assert_int_equal(rc, BN_ERR_NOMEM);
        assert_int_equal(g_live, 0);
        failures++;
    }
    assert_int_equal(g_live, 0);
    assert_true(failures >= 1);
    bn_set_allocator(NULL);
}

typedef struct nomem_ctx {
    bn_tmat w;
    bn_qact x;
    const uint8_t *buf;
    size_t size;
} nomem_ctx;

static bn_status op_qact(void *p)
{
    return bn_qact_init(&((nomem_ctx *)p)->x, 3, 300);
}
static void undo_qact(void *p)
{
    bn_qact_release(&((nomem_ctx *)p)->x);
}
static bn_status op_ternary(void *p)
{
    static const int8_t q[2 * 130] = {1, -1, 0, 1};
    return bn_tmat_from_ternary(&((nomem_ctx *)p)->w, q, NULL, 1.0f, 2, 130);
}
static bn_status op_tq2(void *p)
{
    nomem_ctx *c = p;
    return bn_tmat_from_tq2_0(&c->w, c->buf, c->size, 2, BN_QK_TQ);
}
static bn_status op_tq1(void *p)
{
    nomem_ctx *c = p;
    return bn_tmat_from_tq1_0(&c->w, c->buf, c->size, 2, BN_QK_TQ);
}
static bn_status op_i2s(void *p)
{
    nomem_ctx *c = p;
    return bn_tmat_from_i2s(&c->w, c->buf, c->size, 2, BN_QK_TQ);
}
static void undo_tmat(void *p)
{
    bn_tmat_release(&((nomem_ctx *)p)->w);
}

static void test_nomem(void **state)
{
    (void)state;
    nomem_ctx c;
    memset(&c, 0, sizeof c);
    int8_t q[2 * BN_QK_TQ];
    for (int i = 0; i < 2 * BN_QK_TQ; i++) q[i] = (int8_t)(i % 3 - 1);
    uint8_t tq2[2 * BN_TQ2_0_BLOCK_BYTES], tq1[2 * BN_TQ1_0_BLOCK_BYTES];
    uint8_t i2s[2 * BN_QK_TQ / 4 + 32];
    bn_pack_tq2_0(q, 0.5f, 2 * BN_QK_TQ, tq2);
    bn_pack_tq1_0(q, 0.5f, 2 * BN_QK_TQ, tq1);
    bn_pack_i2s(q, 0.5f, 2 * BN_QK_TQ, i2s);
    walk_nomem(op_qact, undo_qact, &c);
    walk_nomem(op_ternary, undo_tmat, &c);
    c.buf = tq2;
    c.size = sizeof tq2;
    walk_nomem(op_tq2, undo_tmat, &c);
    c.buf = tq1;
    c.size = sizeof tq1;
    walk_nomem(op_tq1, undo_tmat, &c);
    c.buf = i2s;
    c.size = sizeof i2s;
    walk_nomem(op_i2s, undo_tmat, &c);
}

/* ---- tests: dispatch ---------------------------------------------------------------------- */

/* In a child process (the choice is made once per process): the name bn_kernels_get()
 * picks with BN_NO_SIMD set to value, compared with want (NULL: the best listed). */
static int child_choice_is(const char *value, const char *want)
{
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("BN_NO_SIMD", value, 1);
        const bn_kernels *ks[8];
        const int n = bn_kernels_list(ks, 8);
        const char *expect = want ? want : ks[n - 1]->name;
        _exit(strcmp(bn_kernels_get()->name, expect) == 0 ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_dispatch(void **state)
{
    (void)state;
    assert_true(child_choice_is("1", "ref"));
    assert_true(child_choice_is("0", NULL));
    assert_true(child_choice_is("", NULL));

    const bn_kernels *ks[8];
    const int n = bn_kernels_list(ks, 8);
    assert_true(n >= 1);
    assert_ptr_equal(ks[0], bn_kernels_ref());
    assert_string_equal(ks[0]->name, "ref");
    for (int i = 0; i < n; i++) {
        assert_ptr_equal(bn_kernels_by_name(ks[i]->name), ks[i]);
        assert_non_null(ks[i]->tgemm);
        assert_non_null(ks[i]->tgemm_i32);
        assert_non_null(ks[i]->dot_f32);
        assert_non_null(ks[i]->dot_f16_f32);
        assert_non_null(ks[i]->dot_q8_0);
        /* the ceiling probe counts the multiply-adds of its instruction: 8 sums a round of
         * 1 (scalar), 32 (maddubs, 256 bits), 64 (vpdpbusd, 512 bits), 16 (sdot) pairs */
        assert_non_null(ks[i]->mac_probe);
        const char *nm = ks[i]->name;
        const int64_t per = !strcmp(nm, "ref")    ? 8
                            : !strcmp(nm, "avx2") ? 8 * 32
                            : !strcmp(nm, "neon") ? 8 * 16
                                                  : 8 * 64;
        assert_int_equal(ks[i]->mac_probe(1000), 1000 * per);
        assert_int_equal(ks[i]->mac_probe(0), 0);
    }
    assert_int_equal(bn_kernels_list(ks, 1), 1);
    assert_null(bn_kernels_by_name("no-such-kernels"));
    assert_null(bn_kernels_by_name(NULL));
    const bn_kernels *best = bn_kernels_get();
    assert_non_null(best);
    if (getenv("BN_NO_SIMD") == NULL) assert_ptr_equal(best, ks[n - 1]);
    assert_ptr_equal(bn_kernels_get(), best);
}

/* ---- tests: the threaded product ------------------------------------------------------------ */

static void test_tmatmul_threads(void **state)
{
    (void)state;
    uint64_t seed = 77;
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    const int64_t shapes[][3] = {{1000, 300, 1}, {1000, 256, 5}, {97, 2560, 1}, {33, 129, 130}};
    const bn_kernels *ks[8];
    const int nk = bn_kernels_list(ks, 8);
    for (size_t s = 0; s < N_OF(shapes); s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n_tok = shapes[s][2];
        int8_t *q = make_ternary(rows, cols, W_RANDOM, &seed);
        bn_tmat w;
        assert_int_equal(bn_tmat_from_ternary(&w, q, NULL, 0.03f, rows, cols), BN_OK);
        bn_qact x;
        make_act(&x, n_tok, cols, X_RANDOM, &seed);
        const size_t n_out = (size_t)(rows * n_tok);
        float *y1 = malloc(sizeof(float) * n_out), *y2 = malloc(sizeof(float) * n_out);
        assert_true(y1 && y2);
        bn_tmatmul(NULL, bn_kernels_ref(), &w, &x, y1);
        for (int v = 0; v < nk; v++) {
            memset(y2, 0, sizeof(float) * n_out);
            bn_tmatmul(pool, ks[v], &w, &x, y2);
            assert_memory_equal(y1, y2, sizeof(float) * n_out);
        }
        memset(y2, 0, sizeof(float) * n_out);
        bn_tmatmul(pool, NULL, &w, &x, y2);
        assert_memory_equal(y1, y2, sizeof(float) * n_out);
        free(y1);
        free(y2);
        bn_qact_release(&x);
        bn_tmat_release(&w);
        free(q);
    }
    bn_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dispatch), /* first: forks before any choice is made */
            cmocka_unit_test(test_ref_self),
            cmocka_unit_test(test_variant_avx2),
            cmocka_unit_test(test_variant_avx512),
            cmocka_unit_test(test_variant_avx512_emulated),
            cmocka_unit_test(test_variant_neon),
            cmocka_unit_test(test_dots),
            cmocka_unit_test(test_dot_q8_0),
            cmocka_unit_test(test_dot_head_blocks),
            cmocka_unit_test(test_head_blocks_roundtrip),
            cmocka_unit_test(test_tmat_get_and_padding),
            cmocka_unit_test(test_from_i2s),
            cmocka_unit_test(test_from_tq2_0),
            cmocka_unit_test(test_from_tq1_0),
            cmocka_unit_test(test_qact),
            cmocka_unit_test(test_nomem),
            cmocka_unit_test(test_tmatmul_threads),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
