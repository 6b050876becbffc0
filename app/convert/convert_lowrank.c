/* convert_lowrank.c - `convert --lowrank r`: the residual of a ternarized layer,
 * D = W - diag(s) q (N x K), has a best rank-r approximation in its top r singular triplets
 * (Eckart-Young): D ~= U_r S_r V_r^T. The engine adds b (a x) to the ternary product
 * (engine/src/model_lowrank.c), with a = S_r^1/2 V_r^T (r x K) and b = U_r S_r^1/2 (N x r),
 * stored as F16 tensors <name>.lowrank_a / .lowrank_b: the square root splits the singular
 * values evenly so neither factor leaves the F16 range first. The SVD runs over LAPACK
 * (bitnet/linalg.h) in double. With calibration (cv_lowrank_weighted) the factors minimise
 * the layer's output error on the calibration inputs instead of ||D - L||_F: with H = X^T X
 * (damped) and G = H^1/2, ||X (D - L)^T||_F = ||(D - L) G||_F, so L is the top-r SVD of D G
 * carried back by G^-1. */
#include "convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/linalg.h"
#include "common/cli.h"

void cv_lowrank_release(cv_lowrank *lr)
{
    free(lr->a);
    free(lr->b);
    memset(lr, 0, sizeof *lr);
}

/* The top-r triplets of m (N x K) as lr's factors, a = S^1/2 Vt (times post, K x K, when not
 * NULL), b = U S^1/2; lr->energy the share of ||m||^2 kept. 0 or -1 with a message. */
static int split(bn_ctx *ctx, const double *m, int64_t N, int64_t K, int64_t rank,
                 const double *post, cv_lowrank *lr, char *err, size_t errsz)
{
    const int64_t k = N < K ? N : K, r = rank < k ? rank : k;
    double *u = malloc((size_t)(N * k) * sizeof *u), *s = malloc((size_t)k * sizeof *s),
           *vt = malloc((size_t)(k * K) * sizeof *vt), *ap = malloc((size_t)(r * K) * sizeof *ap);
    lr->a = malloc((size_t)(r * K) * sizeof *lr->a);
    lr->b = malloc((size_t)(N * r) * sizeof *lr->b);
    int rc = u && s && vt && ap && lr->a && lr->b ? 0
                                                  : cm_fail(err, errsz, "out of memory (low rank)");
    if (rc == 0 && bn_linalg_svd(ctx, m, N, K, u, s, vt) != BN_OK)
        rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    double all = 0, kept = 0;
    for (int64_t j = 0; rc == 0 && j < k; j++) {
        all += s[j] * s[j];
        if (j < r) kept += s[j] * s[j];
    }
    for (int64_t j = 0; rc == 0 && j < r; j++) {
        const double h = sqrt(s[j]);
        for (int64_t c = 0; c < K; c++) ap[j * K + c] = h * vt[j * K + c];
        for (int64_t n = 0; n < N; n++) lr->b[n * r + j] = (float)(u[n * k + j] * h);
    }
    if (rc == 0 && post && bn_linalg_gemm(ctx, 0, 0, r, K, K, ap, post, vt) != BN_OK)
        rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    for (int64_t i = 0; rc == 0 && i < r * K; i++) lr->a[i] = (float)(post ? vt[i] : ap[i]);
    lr->rows = N;
    lr->cols = K;
    lr->rank = r;
    lr->energy = all > 0 ? kept / all : 1;
    free(u);
    free(s);
    free(vt);
    free(ap);
    return rc;
}

/* D = W - diag(row_scale) q as doubles (N x K); NULL when out of memory. */
static double *residual(const float *w, const int8_t *q, const float *row_scale, int64_t N,
                        int64_t K)
{
    double *d = malloc((size_t)(N * K) * sizeof *d);
    for (int64_t i = 0; d && i < N * K; i++) d[i] = w[i] - (double)q[i] * row_scale[i / K];
    return d;
}

int cv_lowrank_factors(bn_ctx *ctx, const float *w, const int8_t *q, const float *row_scale,
                       int64_t N, int64_t K, int64_t rank, cv_lowrank *lr, char *err, size_t errsz)
{
    cv_lowrank_release(lr);
    double *d = residual(w, q, row_scale, N, K);
    int rc = d ? split(ctx, d, N, K, rank, NULL, lr, err, errsz)
               : cm_fail(err, errsz, "out of memory (low rank)");
    free(d);
    if (rc != 0) cv_lowrank_release(lr);
    return rc;
}

/* g = (h + lambda I)^1/2 and gi its inverse (K x K), through the eigen-decomposition. */
static int sqrt_pair(bn_ctx *ctx, const double *h, double damp, int64_t K, double *g, double *gi,
                     char *err, size_t errsz)
{
    double *a = malloc((size_t)(K * K) * sizeof *a), *v = malloc((size_t)(K * K) * sizeof *v),
           *e = malloc((size_t)K * sizeof *e);
    int rc = a && v && e ? 0 : cm_fail(err, errsz, "out of memory (low rank)");
    double mean = 0;
    for (int64_t i = 0; rc == 0 && i < K; i++) mean += h[i * K + i] / (double)K;
    const double lambda = damp * (mean > 0 ? mean : 1);
    for (int64_t i = 0; rc == 0 && i < K * K; i++) a[i] = h[i] + (i % (K + 1) == 0 ? lambda : 0);
    if (rc == 0 && bn_linalg_eigh(ctx, a, K, e, v) != BN_OK)
        rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    for (int pass = 0; rc == 0 && pass < 2; pass++) { /* V diag(e^(+-1/2)) V^T */
        double *out = pass ? gi : g;
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++) {
                const double ej = e[j] > lambda * 1e-6 ? e[j] : lambda * 1e-6;
                a[i * K + j] = v[i * K + j] * (pass ? 1 / sqrt(ej) : sqrt(ej));
            }
        if (bn_linalg_gemm(ctx, 0, 1, K, K, K, a, v, out) != BN_OK)
            rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    }
    free(a);
    free(v);
    free(e);
    return rc;
}

int cv_lowrank_weighted(bn_ctx *ctx, const double *h, double damp, const float *w, const int8_t *q,
                        const float *row_scale, int64_t N, int64_t K, int64_t rank, cv_lowrank *lr,
                        char *err, size_t errsz)
{
    cv_lowrank_release(lr);
    double *d = residual(w, q, row_scale, N, K), *g = malloc((size_t)(K * K) * sizeof *g),
           *gi = malloc((size_t)(K * K) * sizeof *gi), *dg = malloc((size_t)(N * K) * sizeof *dg);
    int rc = d && g && gi && dg ? 0 : cm_fail(err, errsz, "out of memory (low rank)");
    if (rc == 0) rc = sqrt_pair(ctx, h, damp, K, g, gi, err, errsz);
    if (rc == 0 && bn_linalg_gemm(ctx, 0, 0, N, K, K, d, g, dg) != BN_OK)
        rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    if (rc == 0) rc = split(ctx, dg, N, K, rank, gi, lr, err, errsz);
    free(d);
    free(g);
    free(gi);
    free(dg);
    if (rc != 0) cv_lowrank_release(lr);
    return rc;
}
