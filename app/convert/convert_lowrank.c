/* convert_lowrank.c - `convert --lowrank r`: the residual of a ternarized layer,
 * D = W - diag(s) q (N x K), has a best rank-r approximation in its top r singular triplets
 * (Eckart-Young): D ~= U_r S_r V_r^T. The engine adds b (a x) to the ternary product
 * (engine/src/model_lowrank.c), with a = S_r^1/2 V_r^T (r x K) and b = U_r S_r^1/2 (N x r),
 * stored as F16 tensors <name>.lowrank_a / .lowrank_b: the square root splits the singular
 * values evenly so neither factor leaves the F16 range first. The SVD runs over LAPACK
 * (bitnet/linalg.h) in double. */
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

int cv_lowrank_factors(bn_ctx *ctx, const float *w, const int8_t *q, const float *row_scale,
                       int64_t N, int64_t K, int64_t rank, cv_lowrank *lr, char *err, size_t errsz)
{
    const int64_t k = N < K ? N : K, r = rank < k ? rank : k;
    cv_lowrank_release(lr);
    double *d = malloc((size_t)(N * K) * sizeof *d), *u = malloc((size_t)(N * k) * sizeof *u),
           *s = malloc((size_t)k * sizeof *s), *vt = malloc((size_t)(k * K) * sizeof *vt);
    lr->a = malloc((size_t)(r * K) * sizeof *lr->a);
    lr->b = malloc((size_t)(N * r) * sizeof *lr->b);
    int rc = d && u && s && vt && lr->a && lr->b ? 0
                                                 : cm_fail(err, errsz, "out of memory (low rank)");
    for (int64_t i = 0; rc == 0 && i < N * K; i++) d[i] = w[i] - (double)q[i] * row_scale[i / K];
    if (rc == 0 && bn_linalg_svd(ctx, d, N, K, u, s, vt) != BN_OK)
        rc = cm_fail(err, errsz, "low rank: %s", bn_ctx_errmsg(ctx));
    double all = 0, kept = 0;
    for (int64_t j = 0; rc == 0 && j < k; j++) {
        all += s[j] * s[j];
        if (j < r) kept += s[j] * s[j];
    }
    for (int64_t j = 0; rc == 0 && j < r; j++) {
        const double h = sqrt(s[j]);
        for (int64_t c = 0; c < K; c++) lr->a[j * K + c] = (float)(h * vt[j * K + c]);
        for (int64_t n = 0; n < N; n++) lr->b[n * r + j] = (float)(u[n * k + j] * h);
    }
    lr->rows = N;
    lr->cols = K;
    lr->rank = r;
    lr->energy = all > 0 ? kept / all : 1;
    free(d);
    free(u);
    free(s);
    free(vt);
    if (rc != 0) cv_lowrank_release(lr);
    return rc;
}
