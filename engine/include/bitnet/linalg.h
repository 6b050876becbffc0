/*
 * bitnet/linalg.h - dense double-precision linear algebra over LAPACKE and OpenBLAS: SVD, QR,
 * Cholesky, LU with solve, symmetric eigen-decomposition, and a matrix product. Nothing here
 * decomposes by hand; every factorization is LAPACK's.
 *
 * Usage:
 *
 *     // a is m x n, row-major; k = min(m, n)
 *     double *u = bn_malloc(m * k * sizeof *u), *s = bn_malloc(k * sizeof *s),
 *            *vt = bn_malloc(k * n * sizeof *vt);
 *     if (bn_linalg_svd(ctx, a, m, n, u, s, vt) != BN_OK)
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));
 *     // a ~= u . diag(s) . vt, s descending
 *
 *     double l[N * N];
 *     bn_status rc = bn_linalg_cholesky(ctx, h, N, l);   // h = l . l^T
 *     if (rc == BN_ERR_RANGE) ...                         // "not positive definite"
 *
 * Conventions: every matrix is row-major and dense (element (i, j) of an r x c matrix is
 * a[i * c + j]); dimensions are > 0 and at most BN_LINALG_MAX_DIM, and every input element
 * must be finite. Inputs are const and never changed; outputs are caller-owned buffers of the
 * sizes given with each function (an output may be the same buffer as the input where a
 * function says so, never a partial overlap). Functions allocate their LAPACK workspace through
 * bn_malloc and free it before returning.
 *
 * Statuses (the message on ctx names the problem; ctx may be NULL):
 *   BN_ERR_INVALID  a bad argument: a dimension <= 0 or too large, a NULL buffer, a
 *                   non-finite element, a matrix that should be symmetric and is not
 *   BN_ERR_RANGE    a numerical property the operation needs does not hold: not positive
 *                   definite (Cholesky), singular to working precision (LU), no convergence
 *                   (SVD, eigen-decomposition)
 *   BN_ERR_NOMEM    the workspace could not be allocated
 */
#ifndef BITNET_LINALG_H
#define BITNET_LINALG_H

#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest dimension accepted (LAPACK's int indices; also bounds m * n). */
#define BN_LINALG_MAX_DIM 46340

/* c (m x n) = op(a) . op(b), op(x) = x or x^T (ta / tb nonzero). a is m x k (ta: k x m),
 * b is k x n (tb: n x k). c must not overlap a or b. */
bn_status bn_linalg_gemm(bn_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k,
                         const double *a, const double *b, double *c);

/* The general form: c = alpha op(a) op(b) + beta c on sub-matrices, with leading dimensions
 * (the distance between rows) lda, ldb, ldc, each at least the width of its matrix as stored
 * (a: ta ? m : k, b: tb ? k : n, c: n). beta 0: c is only written. */
bn_status bn_linalg_gemm_ex(bn_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k,
                            double alpha, const double *a, int64_t lda, const double *b,
                            int64_t ldb, double beta, double *c, int64_t ldc);

/* Thin SVD of a (m x n), k = min(m, n): u (m x k, orthonormal columns), s (k, descending,
 * >= 0), vt (k x n, orthonormal rows), a = u . diag(s) . vt. u and vt may both be NULL for
 * the singular values only (not one of them). */
bn_status bn_linalg_svd(bn_ctx *ctx, const double *a, int64_t m, int64_t n, double *u, double *s,
                        double *vt);

/* Thin QR of a (m x n), k = min(m, n): q (m x k, orthonormal columns), r (k x n, upper
 * triangular, zeros below the diagonal), a = q . r. */
bn_status bn_linalg_qr(bn_ctx *ctx, const double *a, int64_t m, int64_t n, double *q, double *r);

/* Cholesky of the symmetric positive definite a (n x n): l lower triangular (zeros above the
 * diagonal), a = l . l^T. l may be a. BN_ERR_RANGE "not positive definite" names the leading
 * minor that is not. */
bn_status bn_linalg_cholesky(bn_ctx *ctx, const double *a, int64_t n, double *l);

/* The inverse of the symmetric positive definite a (n x n) through its Cholesky factor
 * (LAPACK dpotrf + dpotri); inv may be a. Not positive definite: BN_ERR_RANGE. */
bn_status bn_linalg_spd_inverse(bn_ctx *ctx, const double *a, int64_t n, double *inv);

/* LU with partial pivoting of the square a (n x n): a = P . L . U, lu holds L (unit diagonal,
 * not stored) below the diagonal and U on and above it; piv (n) the LAPACK row interchanges
 * (row i was swapped with row piv[i] - 1, in order). lu may be a. A matrix whose reciprocal
 * condition number (1-norm estimate) is below DBL_EPSILON, or with an exactly zero pivot, is
 * BN_ERR_RANGE "singular"; *rcond (may be NULL) receives the estimate (0 for a zero pivot). */
bn_status bn_linalg_lu(bn_ctx *ctx, const double *a, int64_t n, double *lu, int32_t *piv,
                       double *rcond);
/* Solves a . x = b for nrhs right-hand sides with a factorization from bn_linalg_lu; b is
 * n x nrhs and is overwritten with x. */
bn_status bn_linalg_lu_solve(bn_ctx *ctx, const double *lu, const int32_t *piv, int64_t n,
                             double *b, int64_t nrhs);
/* Both steps: x (n x nrhs) = a^-1 . b, a (n x n) left unchanged; x may be b. */
bn_status bn_linalg_solve(bn_ctx *ctx, const double *a, int64_t n, const double *b, int64_t nrhs,
                          double *x);

/* Eigen-decomposition of the symmetric a (n x n): w (n) the eigenvalues ascending, v (n x n,
 * may be NULL for the values only) the orthonormal eigenvectors as columns (column j belongs
 * to w[j]), a = v . diag(w) . v^T. a must be symmetric to 1e-12 of its largest element
 * (else BN_ERR_INVALID); v may be a. */
bn_status bn_linalg_eigh(bn_ctx *ctx, const double *a, int64_t n, double *w, double *v);

#ifdef __cplusplus
}
#endif

#endif
