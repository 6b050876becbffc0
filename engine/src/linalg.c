/* linalg.c - bitnet/linalg.h over LAPACKE (the C interface to LAPACK) and CBLAS (OpenBLAS).
 *
 * The public API is row-major; LAPACK is column-major. A row-major m x n matrix is the
 * column-major n x m matrix a^T, so symmetric inputs (Cholesky, eigh) pass as they are, the
 * SVD runs on a^T and swaps its factors (a^T = U' S V'^T gives a = V' S U'^T), and QR and LU
 * transpose into a column-major copy. Only the LAPACKE_*_work entry points are called, with
 * column-major data, so LAPACKE allocates nothing and every workspace comes from bn_malloc
 * (tests can fail it). */
#include "bitnet/linalg.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* ---- checks and workspace ---------------------------------------------------------------- */

static bn_status bad_dims(bn_ctx *ctx, const char *op, int64_t m, int64_t n)
{
    if (m <= 0 || n <= 0 || m > BN_LINALG_MAX_DIM || n > BN_LINALG_MAX_DIM)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "%s: bad shape %lldx%lld (1 to %d each)", op,
                                (long long)m, (long long)n, BN_LINALG_MAX_DIM);
    return BN_OK;
}

static bn_status non_finite(bn_ctx *ctx, const char *op, const double *a, int64_t m, int64_t n)
{
    for (int64_t i = 0; i < m * n; i++)
        if (!isfinite(a[i]))
            return bn_ctx_set_error(ctx, BN_ERR_INVALID, "%s: element (%lld, %lld) is not finite",
                                    op, (long long)(i / n), (long long)(i % n));
    return BN_OK;
}

/* Shape, NULL input and finiteness of an m x n input. */
static bn_status check_in(bn_ctx *ctx, const char *op, const double *a, int64_t m, int64_t n)
{
    bn_status rc = bad_dims(ctx, op, m, n);
    if (rc != BN_OK) return rc;
    if (!a) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "%s: NULL matrix", op);
    return non_finite(ctx, op, a, m, n);
}

static bn_status null_out(bn_ctx *ctx, const char *op)
{
    return bn_ctx_set_error(ctx, BN_ERR_INVALID, "%s: NULL output buffer", op);
}

/* n doubles from bn_malloc (dimensions are capped, so no overflow). */
static double *dalloc(int64_t n)
{
    return bn_malloc((size_t)n * sizeof(double));
}

static bn_status nomem(bn_ctx *ctx, const char *op)
{
    return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "%s: out of memory for the workspace", op);
}

/* A LAPACK argument error is a bug here, never bad input (inputs are checked first). */
static bn_status lapack_arg(bn_ctx *ctx, const char *op, const char *fn, lapack_int info)
{
    return bn_ctx_set_error(ctx, BN_ERR_INTERNAL, "%s: %s rejected argument %d", op, fn,
                            (int)-info);
}

/* The size a workspace query answered (LAPACK returns it as a double). */
static lapack_int query_size(double w)
{
    return w < 1 ? 1 : w > (double)INT32_MAX ? INT32_MAX : (lapack_int)w;
}

/* dst (cols x rows, row-major) = src^T (src rows x cols, row-major). */
static void transpose(const double *src, int64_t rows, int64_t cols, double *dst)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

/* ---- product ----------------------------------------------------------------------------- */

bn_status bn_linalg_gemm_ex(bn_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k,
                            double alpha, const double *a, int64_t lda, const double *b,
                            int64_t ldb, double beta, double *c, int64_t ldc)
{
    bn_status rc = bad_dims(ctx, "gemm", m, n);
    if (rc == BN_OK) rc = bad_dims(ctx, "gemm", k, k);
    if (rc != BN_OK) return rc;
    if (!a || !b || !c) return null_out(ctx, "gemm");
    if (lda < (ta ? m : k) || ldb < (tb ? k : n) || ldc < n || lda > INT32_MAX || ldb > INT32_MAX ||
        ldc > INT32_MAX)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "gemm: a leading dimension is too small or too large (%lld, "
                                "%lld, %lld)",
                                (long long)lda, (long long)ldb, (long long)ldc);
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
    return BN_OK;
}

bn_status bn_linalg_gemm(bn_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k,
                         const double *a, const double *b, double *c)
{
    return bn_linalg_gemm_ex(ctx, ta, tb, m, n, k, 1.0, a, ta ? m : k, b, tb ? k : n, 0.0, c, n);
}

/* ---- SVD --------------------------------------------------------------------------------- */

bn_status bn_linalg_svd(bn_ctx *ctx, const double *a, int64_t m, int64_t n, double *u, double *s,
                        double *vt)
{
    bn_status rc = check_in(ctx, "svd", a, m, n);
    if (rc != BN_OK) return rc;
    if (!s || (!u) != (!vt)) return null_out(ctx, "svd");
    const int64_t k = m < n ? m : n;
    const char job = u ? 'S' : 'N';
    double *at = dalloc(m * n), *work = NULL, wq = 0;
    lapack_int *iwork = bn_malloc((size_t)(8 * k) * sizeof *iwork);
    if (!at || !iwork) {
        rc = nomem(ctx, "svd");
        goto done;
    }
    memcpy(at, a, (size_t)(m * n) * sizeof *at); /* column-major a^T: n x m, lda n */
    /* a^T = U' S V'^T: U' (n x k, col-major) is vt row-major, V'^T (k x m) is u row-major */
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, job, (lapack_int)n, (lapack_int)m, at,
                                          (lapack_int)n, s, vt, (lapack_int)n, u, (lapack_int)k,
                                          &wq, -1, iwork);
    if (info == 0 && !(work = dalloc(query_size(wq)))) {
        rc = nomem(ctx, "svd");
        goto done;
    }
    if (info == 0)
        info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, job, (lapack_int)n, (lapack_int)m, at,
                                   (lapack_int)n, s, vt, (lapack_int)n, u, (lapack_int)k, work,
                                   query_size(wq), iwork);
    if (info < 0) rc = lapack_arg(ctx, "svd", "dgesdd", info);
    if (info > 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE, "svd: no convergence (%d superdiagonals)",
                              (int)info);
done:
    bn_free(at);
    bn_free(work);
    bn_free(iwork);
    return rc;
}

/* ---- QR ---------------------------------------------------------------------------------- */

bn_status bn_linalg_qr(bn_ctx *ctx, const double *a, int64_t m, int64_t n, double *q, double *r)
{
    bn_status rc = check_in(ctx, "qr", a, m, n);
    if (rc != BN_OK) return rc;
    if (!q || !r) return null_out(ctx, "qr");
    const int64_t k = m < n ? m : n;
    double *ac = dalloc(m * n), *tau = dalloc(k), *work = NULL, w1 = 0, w2 = 0;
    if (!ac || !tau) {
        rc = nomem(ctx, "qr");
        goto done;
    }
    transpose(a, m, n, ac); /* column-major a: m x n, lda m */
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, ac,
                                          (lapack_int)m, tau, &w1, -1);
    if (info == 0)
        info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)k, (lapack_int)k,
                                   ac, (lapack_int)m, tau, &w2, -1);
    lapack_int lw = query_size(w1 > w2 ? w1 : w2);
    if (info == 0 && !(work = dalloc(lw))) {
        rc = nomem(ctx, "qr");
        goto done;
    }
    if (info == 0)
        info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, ac,
                                   (lapack_int)m, tau, work, lw);
    if (info != 0) {
        rc = lapack_arg(ctx, "qr", "dgeqrf", info);
        goto done;
    }
    for (int64_t i = 0; i < k; i++) /* r: the upper triangle of the first k rows */
        for (int64_t j = 0; j < n; j++) r[i * n + j] = j >= i ? ac[j * m + i] : 0.0;
    info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)k, (lapack_int)k, ac,
                               (lapack_int)m, tau, work, lw);
    if (info != 0) {
        rc = lapack_arg(ctx, "qr", "dorgqr", info);
        goto done;
    }
    transpose(ac, k, m, q); /* column-major m x k -> row-major m x k */
done:
    bn_free(ac);
    bn_free(tau);
    bn_free(work);
    return rc;
}

/* ---- Cholesky ---------------------------------------------------------------------------- */

/* Symmetric to 1e-12 of the largest element. */
static bn_status check_sym(bn_ctx *ctx, const char *op, const double *a, int64_t n)
{
    double mx = 0;
    for (int64_t i = 0; i < n * n; i++) mx = fmax(mx, fabs(a[i]));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++)
            if (fabs(a[i * n + j] - a[j * n + i]) > 1e-12 * mx)
                return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                        "%s: the matrix is not symmetric ((%lld, %lld) %g, "
                                        "(%lld, %lld) %g)",
                                        op, (long long)i, (long long)j, a[i * n + j], (long long)j,
                                        (long long)i, a[j * n + i]);
    return BN_OK;
}

/* dpotrf on l (a copy of a): col-major upper = row-major lower. */
static bn_status potrf(bn_ctx *ctx, const char *op, const double *a, int64_t n, double *l)
{
    bn_status rc = check_in(ctx, op, a, n, n);
    if (rc == BN_OK && !l) rc = null_out(ctx, op);
    if (rc == BN_OK) rc = check_sym(ctx, op, a, n);
    if (rc != BN_OK) return rc;
    if (l != a) memcpy(l, a, (size_t)(n * n) * sizeof *l);
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, l, (lapack_int)n);
    if (info < 0) return lapack_arg(ctx, op, "dpotrf", info);
    if (info > 0)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                "%s: the matrix is not positive definite (leading minor of "
                                "order %d)",
                                op, (int)info);
    return BN_OK;
}

bn_status bn_linalg_cholesky(bn_ctx *ctx, const double *a, int64_t n, double *l)
{
    bn_status rc = potrf(ctx, "cholesky", a, n, l);
    if (rc != BN_OK) return rc;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) l[i * n + j] = 0.0;
    return BN_OK;
}

bn_status bn_linalg_spd_inverse(bn_ctx *ctx, const double *a, int64_t n, double *inv)
{
    bn_status rc = potrf(ctx, "spd_inverse", a, n, inv);
    if (rc != BN_OK) return rc;
    lapack_int info = LAPACKE_dpotri_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, inv, (lapack_int)n);
    if (info < 0) return lapack_arg(ctx, "spd_inverse", "dpotri", info);
    if (info > 0) return bn_ctx_set_error(ctx, BN_ERR_RANGE, "spd_inverse: the matrix is singular");
    for (int64_t i = 0; i < n; i++) /* col-major upper = row-major lower: mirror it up */
        for (int64_t j = i + 1; j < n; j++) inv[i * n + j] = inv[j * n + i];
    return BN_OK;
}

/* ---- LU ---------------------------------------------------------------------------------- */

/* The 1-norm (largest column sum) of the row-major n x n a. */
static double norm1(const double *a, int64_t n)
{
    double best = 0;
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += fabs(a[i * n + j]);
        best = fmax(best, s);
    }
    return best;
}

bn_status bn_linalg_lu(bn_ctx *ctx, const double *a, int64_t n, double *lu, int32_t *piv,
                       double *rcond)
{
    bn_status rc = check_in(ctx, "lu", a, n, n);
    if (rc != BN_OK) return rc;
    if (!lu || !piv) return null_out(ctx, "lu");
    const double anorm = norm1(a, n);
    double *ac = dalloc(n * n), *work = dalloc(4 * n), rc1 = 0;
    lapack_int *ipiv = bn_malloc((size_t)n * sizeof *ipiv);
    if (!ac || !work || !ipiv) {
        rc = nomem(ctx, "lu");
        goto done;
    }
    transpose(a, n, n, ac);
    lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, (lapack_int)n, (lapack_int)n, ac,
                                          (lapack_int)n, ipiv);
    if (info < 0) {
        rc = lapack_arg(ctx, "lu", "dgetrf", info);
        goto done;
    }
    transpose(ac, n, n, lu);
    for (int64_t i = 0; i < n; i++) piv[i] = (int32_t)ipiv[i];
    /* dgecon's iwork: the pivot array is free again after the copy */
    if (info == 0)
        info = LAPACKE_dgecon_work(LAPACK_COL_MAJOR, '1', (lapack_int)n, ac, (lapack_int)n, anorm,
                                   &rc1, work, ipiv);
    if (info < 0) {
        rc = lapack_arg(ctx, "lu", "dgecon", info);
        goto done;
    }
    if (info > 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE, "lu: the matrix is singular (U(%d,%d) = 0)",
                              (int)info, (int)info);
    else if (!(rc1 >= DBL_EPSILON))
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE,
                              "lu: the matrix is singular to working precision (reciprocal "
                              "condition number %.3g)",
                              rc1);
    if (rcond) *rcond = info > 0 ? 0.0 : rc1;
done:
    bn_free(ac);
    bn_free(work);
    bn_free(ipiv);
    return rc;
}

bn_status bn_linalg_lu_solve(bn_ctx *ctx, const double *lu, const int32_t *piv, int64_t n,
                             double *b, int64_t nrhs)
{
    bn_status rc = bad_dims(ctx, "lu_solve", n, nrhs);
    if (rc != BN_OK) return rc;
    if (!lu || !piv || !b) return null_out(ctx, "lu_solve");
    for (int64_t i = 0; i < n; i++) {
        if (piv[i] < 1 || piv[i] > n)
            return bn_ctx_set_error(ctx, BN_ERR_INVALID, "lu_solve: pivot %lld is out of range",
                                    (long long)i);
        if (piv[i] - 1 != i) /* the row interchanges, in order: b = P^T b */
            cblas_dswap((blasint)nrhs, b + i * nrhs, 1, b + (int64_t)(piv[i] - 1) * nrhs, 1);
    }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, (blasint)n,
                (blasint)nrhs, 1.0, lu, (blasint)n, b, (blasint)nrhs);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, (blasint)n,
                (blasint)nrhs, 1.0, lu, (blasint)n, b, (blasint)nrhs);
    return BN_OK;
}

bn_status bn_linalg_solve(bn_ctx *ctx, const double *a, int64_t n, const double *b, int64_t nrhs,
                          double *x)
{
    bn_status rc = bad_dims(ctx, "solve", n, nrhs);
    if (rc == BN_OK && (!b || !x)) rc = null_out(ctx, "solve");
    if (rc == BN_OK) rc = non_finite(ctx, "solve", b, n, nrhs);
    if (rc != BN_OK) return rc;
    double *lu = dalloc(n * n);
    int32_t *piv = bn_malloc((size_t)n * sizeof *piv);
    if (!lu || !piv) rc = nomem(ctx, "solve");
    if (rc == BN_OK) rc = bn_linalg_lu(ctx, a, n, lu, piv, NULL);
    if (rc == BN_OK) {
        if (x != b) memcpy(x, b, (size_t)(n * nrhs) * sizeof *x);
        rc = bn_linalg_lu_solve(ctx, lu, piv, n, x, nrhs);
    }
    bn_free(lu);
    bn_free(piv);
    return rc;
}

/* ---- symmetric eigen-decomposition ------------------------------------------------------- */

bn_status bn_linalg_eigh(bn_ctx *ctx, const double *a, int64_t n, double *w, double *v)
{
    bn_status rc = check_in(ctx, "eigh", a, n, n);
    if (rc == BN_OK && !w) rc = null_out(ctx, "eigh");
    if (rc == BN_OK) rc = check_sym(ctx, "eigh", a, n);
    if (rc != BN_OK) return rc;
    const char job = v ? 'V' : 'N';
    double *ac = dalloc(n * n), *work = NULL, wq = 0;
    lapack_int *iwork = NULL, iq = 0;
    if (!ac) {
        rc = nomem(ctx, "eigh");
        goto done;
    }
    memcpy(ac, a, (size_t)(n * n) * sizeof *ac);
    lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, job, 'L', (lapack_int)n, ac,
                                          (lapack_int)n, w, &wq, -1, &iq, -1);
    if (info == 0) {
        work = dalloc(query_size(wq));
        iwork = bn_malloc((size_t)(iq < 1 ? 1 : iq) * sizeof *iwork);
        if (!work || !iwork) {
            rc = nomem(ctx, "eigh");
            goto done;
        }
        info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, job, 'L', (lapack_int)n, ac, (lapack_int)n, w,
                                   work, query_size(wq), iwork, iq < 1 ? 1 : iq);
    }
    if (info < 0)
        rc = lapack_arg(ctx, "eigh", "dsyevd", info);
    else if (info > 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE, "eigh: no convergence (%d)", (int)info);
    else if (v)
        transpose(ac, n, n, v); /* column-major eigenvectors -> row-major, still as columns */
done:
    bn_free(ac);
    bn_free(work);
    bn_free(iwork);
    return rc;
}
