/* test_linalg.c - bitnet/linalg.h on known matrices: Hilbert (condition numbers up to ~1e16),
 * random orthogonal ones (the Q of a random matrix's QR), graded ill-conditioned ones built
 * from a chosen spectrum, rank-deficient ones, and the statuses of bad input.
 *
 * Tolerances. The factorizations are backward stable, so their reconstruction error
 * ||A - factors|| / ||A|| and the orthogonality ||Q^T Q - I|| are a small multiple of the unit
 * roundoff (2.2e-16) times the dimension whatever the condition number: every such check here
 * uses 1e-10 relative, with room to spare for n <= 40. Quantities whose error grows with the
 * condition number kappa are checked only where kappa allows: a solution x of A x = b has a
 * forward error of about kappa * 1e-16, so it is compared with the true x to 1e-10 only for
 * kappa <= 1e4, and otherwise its residual ||A x - b|| / (||A|| ||x||) is checked to 1e-10. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "bitnet/linalg.h"

#define TOL  1e-10
#define MAXN 40

/* ---- helpers --------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

static void random_mat(double *a, int64_t m, int64_t n)
{
    for (int64_t i = 0; i < m * n; i++) a[i] = urand();
}

static void hilbert(double *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) a[i * n + j] = 1.0 / (double)(i + j + 1);
}

static double fro(const double *a, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * a[i];
    return sqrt(s);
}

/* ||a - b||_F / ||a||_F over n elements */
static double rel_diff(const double *a, const double *b, int64_t n)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++) d += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(d) / fro(a, n);
}

/* ||X^T X - I||_F for X (rows x cols) with orthonormal columns (t = 0) or rows (t = 1). */
static double orth_err(const double *x, int64_t rows, int64_t cols, int t)
{
    int64_t k = t ? rows : cols;
    static double g[MAXN * MAXN];
    assert_true(k <= MAXN);
    assert_int_equal(bn_linalg_gemm(NULL, !t, t, k, k, t ? cols : rows, x, x, g), BN_OK);
    double e = 0;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            double d = g[i * k + j] - (i == j);
            e += d * d;
        }
    return sqrt(e);
}

/* A random orthogonal n x n matrix: the Q of the QR of a random matrix. */
static void random_orthogonal(double *q, int64_t n)
{
    static double a[MAXN * MAXN], r[MAXN * MAXN];
    random_mat(a, n, n);
    assert_int_equal(bn_linalg_qr(NULL, a, n, n, q, r), BN_OK);
}

/* a (n x n) = Q diag(d) Q^T with a random orthogonal Q: symmetric, eigenvalues d. */
static void with_spectrum(double *a, const double *d, int64_t n)
{
    static double q[MAXN * MAXN], qd[MAXN * MAXN];
    random_orthogonal(q, n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) qd[i * n + j] = q[i * n + j] * d[j];
    assert_int_equal(bn_linalg_gemm(NULL, 0, 1, n, n, n, qd, q, a), BN_OK);
    for (int64_t i = 0; i < n; i++) /* exactly symmetric */
        for (int64_t j = 0; j < i; j++) a[j * n + i] = a[i * n + j];
}

/* ---- SVD ------------------------------------------------------------------------------- */

static void check_svd(const double *a, int64_t m, int64_t n)
{
    static double u[MAXN * MAXN], s[MAXN], vt[MAXN * MAXN], us[MAXN * MAXN], b[MAXN * MAXN];
    const int64_t k = m < n ? m : n;
    assert_int_equal(bn_linalg_svd(NULL, a, m, n, u, s, vt), BN_OK);
    for (int64_t i = 0; i < k; i++) {
        assert_true(s[i] >= 0);
        if (i) assert_true(s[i] <= s[i - 1]);
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++) us[i * k + j] = u[i * k + j] * s[j];
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, m, n, k, us, vt, b), BN_OK);
    assert_true(rel_diff(a, b, m * n) < TOL);
    assert_true(orth_err(u, m, k, 0) < TOL);
    assert_true(orth_err(vt, k, n, 1) < TOL);
    /* the values alone are the same */
    static double s2[MAXN];
    assert_int_equal(bn_linalg_svd(NULL, a, m, n, NULL, s2, NULL), BN_OK);
    for (int64_t i = 0; i < k; i++) assert_true(fabs(s2[i] - s[i]) <= TOL * s[0]);
}

static void test_svd_shapes(void **state)
{
    (void)state;
    static double a[MAXN * MAXN];
    const int64_t shapes[][2] = {{1, 1}, {1, 7}, {7, 1}, {5, 5}, {13, 6}, {6, 13}, {40, 40}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        random_mat(a, shapes[i][0], shapes[i][1]);
        check_svd(a, shapes[i][0], shapes[i][1]);
    }
}

/* Hilbert 12: kappa ~1.7e16, singular values down to ~1e-16 * s[0]; still backward stable.
 * The largest singular value of H_n is known: H_4's is 1.500214280059243. */
static void test_svd_hilbert(void **state)
{
    (void)state;
    static double a[12 * 12], s[12];
    hilbert(a, 12);
    check_svd(a, 12, 12);
    hilbert(a, 4);
    assert_int_equal(bn_linalg_svd(NULL, a, 4, 4, NULL, s, NULL), BN_OK);
    assert_true(fabs(s[0] - 1.500214280059243) < 1e-12);
    assert_true(fabs(s[3] - 9.670230402258689e-05) < 1e-15); /* kappa(H_4) = 15513.7 */
}

/* Rank 3 in 10 x 8: three singular values away from zero, the other five at roundoff. */
static void test_svd_rank_deficient(void **state)
{
    (void)state;
    static double l[10 * 3], r[3 * 8], a[10 * 8], s[8];
    random_mat(l, 10, 3);
    random_mat(r, 3, 8);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 10, 8, 3, l, r, a), BN_OK);
    check_svd(a, 10, 8);
    assert_int_equal(bn_linalg_svd(NULL, a, 10, 8, NULL, s, NULL), BN_OK);
    assert_true(s[2] > 1e-3 * s[0]);
    for (int i = 3; i < 8; i++) assert_true(s[i] < 1e-13 * s[0]);
}

/* Singular values of Q diag(d) Q^T are d: chosen from 1 down to 1e-12 (kappa 1e12). The
 * error of a computed singular value is about eps * s[0], so each is checked to 1e-14. */
static void test_svd_known_spectrum(void **state)
{
    (void)state;
    static double a[9 * 9], s[9], d[9];
    for (int i = 0; i < 9; i++) d[i] = pow(10.0, -1.5 * i);
    with_spectrum(a, d, 9);
    assert_int_equal(bn_linalg_svd(NULL, a, 9, 9, NULL, s, NULL), BN_OK);
    for (int i = 0; i < 9; i++) assert_true(fabs(s[i] - d[i]) < 1e-14);
    check_svd(a, 9, 9);
}

/* ---- QR -------------------------------------------------------------------------------- */

static void check_qr(const double *a, int64_t m, int64_t n)
{
    static double q[MAXN * MAXN], r[MAXN * MAXN], b[MAXN * MAXN];
    const int64_t k = m < n ? m : n;
    assert_int_equal(bn_linalg_qr(NULL, a, m, n, q, r), BN_OK);
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < i && j < n; j++) assert_true(r[i * n + j] == 0.0);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, m, n, k, q, r, b), BN_OK);
    assert_true(rel_diff(a, b, m * n) < TOL);
    assert_true(orth_err(q, m, k, 0) < TOL);
}

static void test_qr(void **state)
{
    (void)state;
    static double a[MAXN * MAXN];
    const int64_t shapes[][2] = {{1, 1}, {9, 4}, {4, 9}, {40, 40}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        random_mat(a, shapes[i][0], shapes[i][1]);
        check_qr(a, shapes[i][0], shapes[i][1]);
    }
    hilbert(a, 12);
    check_qr(a, 12, 12);
    /* the Q of a random matrix is orthogonal as a square matrix: Q Q^T = I too */
    static double q[20 * 20];
    random_orthogonal(q, 20);
    assert_true(orth_err(q, 20, 20, 0) < TOL);
    assert_true(orth_err(q, 20, 20, 1) < TOL);
}

/* ---- Cholesky and the SPD inverse -------------------------------------------------------- */

static void check_cholesky(const double *a, int64_t n)
{
    static double l[MAXN * MAXN], b[MAXN * MAXN];
    assert_int_equal(bn_linalg_cholesky(NULL, a, n, l), BN_OK);
    for (int64_t i = 0; i < n; i++) {
        assert_true(l[i * n + i] > 0);
        for (int64_t j = i + 1; j < n; j++) assert_true(l[i * n + j] == 0.0);
    }
    assert_int_equal(bn_linalg_gemm(NULL, 0, 1, n, n, n, l, l, b), BN_OK);
    assert_true(rel_diff(a, b, n * n) < TOL);
}

static void test_cholesky(void **state)
{
    (void)state;
    static double a[MAXN * MAXN], g[MAXN * MAXN], d[MAXN];
    random_mat(g, 30, 30); /* G G^T + I: well conditioned */
    assert_int_equal(bn_linalg_gemm(NULL, 0, 1, 30, 30, 30, g, g, a), BN_OK);
    for (int i = 0; i < 30; i++) a[i * 30 + i] += 1.0;
    check_cholesky(a, 30);
    hilbert(a, 10); /* kappa 1.6e13: positive definite, and LAPACK finds it so */
    check_cholesky(a, 10);
    for (int i = 0; i < 12; i++) d[i] = pow(10.0, -i); /* kappa 1e11 */
    with_spectrum(a, d, 12);
    check_cholesky(a, 12);
    /* in place */
    static double l[12 * 12];
    assert_int_equal(bn_linalg_cholesky(NULL, a, 12, l), BN_OK);
    assert_int_equal(bn_linalg_cholesky(NULL, a, 12, a), BN_OK);
    assert_memory_equal(a, l, sizeof l);
}

static void test_cholesky_not_pd(void **state)
{
    (void)state;
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    static double a[8 * 8], l[8 * 8], d[8];
    /* indefinite: one eigenvalue -1 */
    for (int i = 0; i < 8; i++) d[i] = i == 5 ? -1.0 : 1.0 + i;
    with_spectrum(a, d, 8);
    assert_int_equal(bn_linalg_cholesky(ctx, a, 8, l), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "not positive definite"));
    /* [[1, 2], [2, 1]]: the leading minor of order 2 is -3 */
    const double b[4] = {1, 2, 2, 1};
    assert_int_equal(bn_linalg_cholesky(ctx, b, 2, l), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "order 2"));
    assert_int_equal(bn_linalg_spd_inverse(ctx, b, 2, l), BN_ERR_RANGE);
    /* positive semi-definite, rank 1: not positive definite either */
    const double c[4] = {1, 1, 1, 1};
    assert_int_equal(bn_linalg_cholesky(ctx, c, 2, l), BN_ERR_RANGE);
    /* not symmetric */
    const double e[4] = {2, 1, 0, 2};
    assert_int_equal(bn_linalg_cholesky(ctx, e, 2, l), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "not symmetric"));
    bn_ctx_free(ctx);
}

/* inv(A) A = I to kappa * eps: checked on kappa 1e3 to 1e-10 (the error is ~1e-13). */
static void test_spd_inverse(void **state)
{
    (void)state;
    static double a[16 * 16], inv[16 * 16], p[16 * 16], d[16];
    for (int i = 0; i < 16; i++) d[i] = pow(10.0, -0.2 * i);
    with_spectrum(a, d, 16);
    assert_int_equal(bn_linalg_spd_inverse(NULL, a, 16, inv), BN_OK);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 16, 16, 16, inv, a, p), BN_OK);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) assert_true(fabs(p[i * 16 + j] - (i == j)) < TOL);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < i; j++) assert_true(inv[i * 16 + j] == inv[j * 16 + i]);
    /* Hilbert 4: its inverse is an integer matrix; (H_4^-1)[0][0] = 16, [3][3] = 2800 */
    hilbert(a, 4);
    assert_int_equal(bn_linalg_spd_inverse(NULL, a, 4, a), BN_OK);
    assert_true(fabs(a[0] - 16) < 1e-9 && fabs(a[15] - 2800) < 1e-7);
    assert_true(fabs(a[3] - -140) < 1e-8);
}

/* ---- LU and solve ---------------------------------------------------------------------- */

/* P L U = A, rebuilt from the factors by replaying the interchanges backwards. */
static void check_lu(const double *a, int64_t n)
{
    static double lu[MAXN * MAXN], l[MAXN * MAXN], u[MAXN * MAXN], b[MAXN * MAXN], t[MAXN];
    static int32_t piv[MAXN];
    assert_int_equal(bn_linalg_lu(NULL, a, n, lu, piv, NULL), BN_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            l[i * n + j] = i > j ? lu[i * n + j] : i == j;
            u[i * n + j] = i <= j ? lu[i * n + j] : 0;
        }
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, n, n, n, l, u, b), BN_OK);
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t p = piv[i] - 1;
        memcpy(t, b + i * n, (size_t)n * sizeof *t);
        memcpy(b + i * n, b + p * n, (size_t)n * sizeof *t);
        memcpy(b + p * n, t, (size_t)n * sizeof *t);
    }
    assert_true(rel_diff(a, b, n * n) < TOL);
}

static void test_lu_solve(void **state)
{
    (void)state;
    static double a[MAXN * MAXN], x[MAXN * 3], b[MAXN * 3], y[MAXN * 3];
    /* random 25 x 25 (kappa ~1e2): the solution itself to 1e-10 */
    random_mat(a, 25, 25);
    check_lu(a, 25);
    random_mat(x, 25, 3);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 25, 3, 25, a, x, b), BN_OK);
    assert_int_equal(bn_linalg_solve(NULL, a, 25, b, 3, y), BN_OK);
    assert_true(rel_diff(x, y, 25 * 3) < TOL);
    /* in place: x may be b */
    assert_int_equal(bn_linalg_solve(NULL, a, 25, b, 3, b), BN_OK);
    assert_memory_equal(b, y, 25 * 3 * sizeof *b);
    /* Hilbert 10 (kappa 1.6e13): the factors to 1e-10, the residual to 1e-10, x only to
     * kappa * eps ~ 1e-3 */
    double rcond = 0;
    static int32_t piv[10];
    static double lu[10 * 10], r[10];
    hilbert(a, 10);
    check_lu(a, 10);
    assert_int_equal(bn_linalg_lu(NULL, a, 10, lu, piv, &rcond), BN_OK);
    assert_true(rcond > 1e-15 && rcond < 1e-12);
    for (int i = 0; i < 10; i++) x[i] = 1.0;
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 10, 1, 10, a, x, b), BN_OK);
    memcpy(y, b, 10 * sizeof *y);
    assert_int_equal(bn_linalg_lu_solve(NULL, lu, piv, 10, y, 1), BN_OK);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 10, 1, 10, a, y, r), BN_OK);
    double anorm = 0;
    for (int i = 0; i < 10; i++) anorm += a[i]; /* ||H_10||_inf: the first row sum */
    double res = 0, xn = 0;
    for (int i = 0; i < 10; i++) {
        res = fmax(res, fabs(r[i] - b[i]));
        xn = fmax(xn, fabs(y[i]));
    }
    assert_true(res / (anorm * xn) < TOL);
    assert_true(rel_diff(x, y, 10) < 1e-2);
}

static void test_lu_singular(void **state)
{
    (void)state;
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    static double a[12 * 12], lu[12 * 12], b[12];
    static int32_t piv[12];
    double rcond = 1;
    /* exactly singular: a zero column */
    const double z[9] = {1, 0, 2, 3, 0, 4, 5, 0, 6};
    assert_int_equal(bn_linalg_lu(ctx, z, 3, lu, piv, &rcond), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "singular"));
    assert_true(rcond == 0);
    /* rank 2 in 6 x 6: roundoff keeps the pivots nonzero, the condition estimate does not */
    static double l[6 * 2], r[2 * 6];
    random_mat(l, 6, 2);
    random_mat(r, 2, 6);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 0, 6, 6, 2, l, r, a), BN_OK);
    assert_int_equal(bn_linalg_lu(ctx, a, 6, lu, piv, &rcond), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "singular"));
    assert_true(rcond < DBL_EPSILON);
    for (int i = 0; i < 6; i++) b[i] = 1;
    assert_int_equal(bn_linalg_solve(ctx, a, 6, b, 1, b), BN_ERR_RANGE);
    /* Hilbert 13: kappa ~1e18, singular to working precision */
    static double h13[13 * 13], lu13[13 * 13];
    static int32_t piv13[13];
    hilbert(h13, 13);
    assert_int_equal(bn_linalg_lu(ctx, h13, 13, lu13, piv13, &rcond), BN_ERR_RANGE);
    bn_ctx_free(ctx);
}

/* ---- symmetric eigen-decomposition ------------------------------------------------------- */

static void check_eigh(const double *a, int64_t n)
{
    static double w[MAXN], v[MAXN * MAXN], vw[MAXN * MAXN], b[MAXN * MAXN];
    assert_int_equal(bn_linalg_eigh(NULL, a, n, w, v), BN_OK);
    for (int64_t i = 1; i < n; i++) assert_true(w[i] >= w[i - 1]);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) vw[i * n + j] = v[i * n + j] * w[j];
    assert_int_equal(bn_linalg_gemm(NULL, 0, 1, n, n, n, vw, v, b), BN_OK);
    assert_true(rel_diff(a, b, n * n) < TOL);
    assert_true(orth_err(v, n, n, 0) < TOL);
}

static void test_eigh(void **state)
{
    (void)state;
    static double a[MAXN * MAXN], d[MAXN], w[MAXN];
    /* known spectrum with a repeated eigenvalue and a negative one */
    const double want[7] = {-3, 0.5, 1, 1, 2, 7, 1e3};
    with_spectrum(a, want, 7);
    check_eigh(a, 7);
    assert_int_equal(bn_linalg_eigh(NULL, a, 7, w, NULL), BN_OK);
    for (int i = 0; i < 7; i++) assert_true(fabs(w[i] - want[i]) < 1e-12 * 1e3);
    /* Hilbert 12 and an ill-conditioned graded spectrum (kappa 1e14) */
    hilbert(a, 12);
    check_eigh(a, 12);
    for (int i = 0; i < 15; i++) d[i] = pow(10.0, -i);
    with_spectrum(a, d, 15);
    check_eigh(a, 15);
    /* rank-deficient: G G^T with G 20 x 4 has 16 eigenvalues at roundoff */
    static double g[20 * 4];
    random_mat(g, 20, 4);
    assert_int_equal(bn_linalg_gemm(NULL, 0, 1, 20, 20, 4, g, g, a), BN_OK);
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < i; j++) a[j * 20 + i] = a[i * 20 + j];
    check_eigh(a, 20);
    assert_int_equal(bn_linalg_eigh(NULL, a, 20, w, NULL), BN_OK);
    for (int i = 0; i < 16; i++) assert_true(fabs(w[i]) < 1e-13 * w[19]);
    assert_true(w[16] > 1e-6 * w[19]);
}

/* gemm_ex on sub-matrices: c[1:3, 2:5] += 2 * a[0:2, 1:4] . b^T, checked element by element
 * against the sums written out (exact in doubles: small integers). */
static void test_gemm_ex(void **state)
{
    (void)state;
    double a[3 * 5], b[3 * 4], c[4 * 6], want[4 * 6];
    for (int i = 0; i < 15; i++) a[i] = i - 7;
    for (int i = 0; i < 12; i++) b[i] = 3 - i;
    for (int i = 0; i < 24; i++) c[i] = want[i] = i;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += a[i * 5 + 1 + k] * b[j * 4 + k];
            want[(1 + i) * 6 + 2 + j] += 2 * s;
        }
    assert_int_equal(bn_linalg_gemm_ex(NULL, 0, 1, 2, 3, 3, 2.0, a + 1, 5, b, 4, 1.0, c + 8, 6),
                     BN_OK);
    assert_memory_equal(c, want, sizeof c);
    /* a leading dimension narrower than the matrix */
    assert_int_equal(bn_linalg_gemm_ex(NULL, 0, 1, 2, 3, 3, 1.0, a, 2, b, 4, 0.0, c, 6),
                     BN_ERR_INVALID);
    assert_int_equal(bn_linalg_gemm_ex(NULL, 0, 0, 2, 3, 3, 1.0, a, 5, b, 2, 0.0, c, 6),
                     BN_ERR_INVALID);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    double a[4] = {1, 0, 0, 1}, o[4], s[2];
    int32_t piv[2];
    assert_int_equal(bn_linalg_svd(ctx, a, 0, 2, o, s, o), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "bad shape 0x2"));
    assert_int_equal(bn_linalg_svd(ctx, a, 2, -1, o, s, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_svd(ctx, a, BN_LINALG_MAX_DIM + 1, 1, o, s, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_svd(ctx, a, 2, 2, o, s, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_svd(ctx, NULL, 2, 2, o, s, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_qr(ctx, a, 2, 0, o, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_qr(ctx, a, 2, 2, NULL, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_cholesky(ctx, a, 0, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_lu(ctx, a, 2, o, NULL, NULL), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_eigh(ctx, a, -3, s, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_solve(ctx, a, 2, a, 0, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_gemm(ctx, 0, 0, 2, 2, 0, a, a, o), BN_ERR_INVALID);
    const double ns[4] = {1, 2, 3, 1};
    assert_int_equal(bn_linalg_eigh(ctx, ns, 2, s, o), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "not symmetric"));
    /* a NaN or infinity anywhere is refused before LAPACK sees it */
    a[3] = NAN;
    assert_int_equal(bn_linalg_svd(ctx, a, 2, 2, o, s, o), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "(1, 1) is not finite"));
    a[3] = INFINITY;
    assert_int_equal(bn_linalg_cholesky(ctx, a, 2, o), BN_ERR_INVALID);
    assert_int_equal(bn_linalg_lu(ctx, a, 2, o, piv, NULL), BN_ERR_INVALID);
    a[3] = 1;
    double b[2] = {1, NAN};
    assert_int_equal(bn_linalg_solve(ctx, a, 2, b, 1, b), BN_ERR_INVALID);
    int32_t badpiv[2] = {3, 2};
    assert_int_equal(bn_linalg_lu_solve(ctx, a, badpiv, 2, s, 1), BN_ERR_INVALID);
    bn_ctx_free(ctx);
}

/* Every allocation failure is BN_ERR_NOMEM with a message, never a crash or a leak. */
static void test_nomem(void **state)
{
    (void)state;
    static double a[6 * 5], o1[36], o2[36], o3[36];
    static int32_t piv[6];
    random_mat(a, 6, 5);
    for (long n = 1; n <= 3; n++) {
        bn_alloc_fail_at(n, 0);
        bn_status rc = bn_linalg_svd(NULL, a, 6, 5, o1, o2, o3);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
        bn_alloc_fail_at(n, 0);
        rc = bn_linalg_lu(NULL, a, 5, o1, piv, NULL);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
    }
    for (long n = 1; n <= 3; n++) {
        bn_alloc_fail_at(n, 0);
        bn_status rc = bn_linalg_qr(NULL, a, 6, 5, o1, o2);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
    }
    const double e[4] = {2, 1, 1, 2};
    for (long n = 1; n <= 3; n++) {
        bn_alloc_fail_at(n, 0);
        bn_status rc = bn_linalg_eigh(NULL, e, 2, o1, o2);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_svd_shapes),
            cmocka_unit_test(test_svd_hilbert),
            cmocka_unit_test(test_svd_rank_deficient),
            cmocka_unit_test(test_svd_known_spectrum),
            cmocka_unit_test(test_qr),
            cmocka_unit_test(test_cholesky),
            cmocka_unit_test(test_cholesky_not_pd),
            cmocka_unit_test(test_spd_inverse),
            cmocka_unit_test(test_lu_solve),
            cmocka_unit_test(test_lu_singular),
            cmocka_unit_test(test_eigh),
            cmocka_unit_test(test_bad_input),
            cmocka_unit_test(test_nomem),
            cmocka_unit_test(test_gemm_ex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
