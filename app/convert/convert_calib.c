/* convert_calib.c - calibrated ternarization (`convert --calibrate TEXT`): the f32 reference
 * runs over the calibration text and hands each linear layer's input X (T tokens x K) and
 * weight W (N x K) to cv_calib_linear, which forms the input second moment H = X^T X and
 * quantizes W two ways:
 *
 *   absmean  Wq = clamp(round(W / s), -1, 1) * s, s = mean |W| (what a plain convert writes)
 *   gptq     the same grid {-s, 0, s}, but each row is quantized left to right and the error
 *            of every weight is fed back into the weights not yet quantized through the
 *            inverse Hessian (GPTQ, Frantar et al. 2022): with U the upper Cholesky factor of
 *            (H + lambda I)^-1, e = (w_i - q_i) / U_ii and w_j -= e * U_ij for j > i.
 *            lambda = damp * mean(diag H), raised tenfold while the matrix is not positive
 *            definite. The scale s is chosen from a few multiples of mean |W| as the one
 *            with the least output error, then refitted for the codes found: for fixed codes
 *            q the error is a quadratic in s, least at s = q^T H w / q^T H q. Scales: one per
 *            tensor (what I2_S stores), or with row_scales one per row (what TQ2_0 / TQ1_0
 *            store: a row's blocks share their f16 d), each row's multiple chosen and
 *            refitted on its own (GPTQ treats rows independently, so this is exact).
 *            The report also gives the error of the best of those scales with plain
 *            rounding (err_scale_only), so that the part of the gain due to the error
 *            feedback shows.
 *
 * The error reported for a quantized W' is the layer's relative output error on the
 * calibration tokens, ||X W^T - X W'^T||_F / ||X W^T||_F = sqrt(tr(D H D^T) / tr(W H W^T)),
 * D = W - W', computed from H (exactly, without keeping X). */
#include "convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/linalg.h"
#include "bitnet/quant.h"
#include "bitnet/types.h"
#include "common/cli.h"

void cv_calib_init(cv_calib *cal, bn_ctx *ctx, bn_threadpool *pool, int method)
{
    memset(cal, 0, sizeof *cal);
    cal->ctx = ctx;
    cal->pool = pool;
    cal->method = method;
    cal->damp = 0.01;
}

void cv_calib_release(cv_calib *cal)
{
    for (int i = 0; i < cal->n; i++) {
        free(cal->l[i].q);
        free(cal->l[i].row_scale);
        cv_lowrank_release(&cal->l[i].lr);
    }
    free(cal->l);
    free(cal->h);
    memset(cal, 0, sizeof *cal);
}

const cv_calib_layer *cv_calib_find(const cv_calib *cal, const char *name)
{
    for (int i = 0; cal && i < cal->n; i++)
        if (!strcmp(cal->l[i].name, name)) return &cal->l[i];
    return NULL;
}

/* ---- H = X^T X ------------------------------------------------------------------------------ */

static uint64_t hash_floats(const float *x, int64_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)x;
    for (int64_t i = 0; i < n * (int64_t)sizeof *x; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* cal->h (K x K) for the input x; kept while the same input comes again (q, k and v share
 * theirs, so do gate and up). */
static int second_moment(cv_calib *cal, const float *x, int64_t T, int64_t K, char *err,
                         size_t errsz)
{
    const uint64_t key = hash_floats(x, T * K);
    if (cal->h && cal->h_k == K && cal->h_key == key) return 0;
    free(cal->h);
    cal->h = malloc((size_t)(K * K) * sizeof *cal->h);
    double *xd = malloc((size_t)(T * K) * sizeof *xd);
    if (!cal->h || !xd) {
        free(xd);
        return cm_fail(err, errsz, "out of memory (calibration: %lldx%lld)", (long long)K,
                       (long long)K);
    }
    for (int64_t i = 0; i < T * K; i++) xd[i] = x[i];
    bn_status st = bn_linalg_gemm(cal->ctx, 1, 0, K, K, T, xd, xd, cal->h);
    free(xd);
    if (st != BN_OK) return cm_fail(err, errsz, "calibration: %s", bn_ctx_errmsg(cal->ctx));
    cal->h_k = K;
    cal->h_key = key;
    return 0;
}

/* sum over rows of a_r^T H a_r for a (N x K): the squared Frobenius norm of the layer's output
 * for the weights a; each row's term into out (NULL: not kept). ah is N x K scratch. */
static double h_norm2(const cv_calib *cal, const double *a, int64_t N, int64_t K, double *ah,
                      double *out)
{
    if (bn_linalg_gemm(cal->ctx, 0, 0, N, K, K, a, cal->h, ah) != BN_OK) return NAN;
    double s = 0;
    for (int64_t r = 0; r < N; r++) {
        double sr = 0;
        for (int64_t k = r * K; k < (r + 1) * K; k++) sr += a[k] * ah[k];
        if (out) out[r] = sr;
        s += sr;
    }
    return s;
}

/* tr(D H D^T), D = W - diag(scale) q (N x K, scale one per row; q NULL: D = W), each row's
 * term into out (NULL: not kept); NaN when out of memory. */
static double h_quad(const cv_calib *cal, const float *w, const int8_t *q, const double *scale,
                     int64_t N, int64_t K, double *out)
{
    double *a = calloc((size_t)(N * K), sizeof *a), *ah = malloc((size_t)(N * K) * sizeof *ah);
    double r = NAN;
    if (a && ah) {
        for (int64_t i = 0; i < N * K; i++) a[i] = w[i] - (q ? q[i] * scale[i / K] : 0.0);
        r = h_norm2(cal, a, N, K, ah, out);
    }
    free(a);
    free(ah);
    return r;
}

/* sqrt(num / den) as the relative output error, den = tr(W H W^T) (h_quad with q NULL). */
static double rel_error(double num, double den)
{
    return den > 0 ? sqrt(num / den) : den == 0 ? 0 : NAN;
}

/* ---- GPTQ ----------------------------------------------------------------------------------- */

/* u (K x K, row-major): the upper Cholesky factor of (H + lambda I)^-1, inputs that never
 * fired (H_ii = 0) get H_ii = 1 (their weights meet only zeros). 0 or -1 with a message. */
static int inverse_factor(cv_calib *cal, int64_t K, double *u, double *lambda, char *err,
                          size_t errsz)
{
    double *a = malloc((size_t)(K * K) * sizeof *a);
    if (!a) return cm_fail(err, errsz, "out of memory (calibration)");
    double mean = 0;
    for (int64_t i = 0; i < K; i++) mean += cal->h[i * K + i];
    mean /= (double)K;
    *lambda = cal->damp * (mean > 0 ? mean : 1);
    bn_status st = BN_ERR_RANGE;
    for (int tries = 0; st == BN_ERR_RANGE && tries < 8; tries++, *lambda *= 10) {
        memcpy(a, cal->h, (size_t)(K * K) * sizeof *a);
        for (int64_t i = 0; i < K; i++) a[i * K + i] += (a[i * K + i] == 0 ? 1 : 0) + *lambda;
        st = bn_linalg_spd_inverse(cal->ctx, a, K, a);
        if (st == BN_OK) st = bn_linalg_cholesky(cal->ctx, a, K, a); /* inv = L L^T */
        if (st == BN_OK) break;
    }
    if (st == BN_OK) /* U = L^T */
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++) u[i * K + j] = a[j * K + i];
    free(a);
    if (st != BN_OK) return cm_fail(err, errsz, "calibration: %s", bn_ctx_errmsg(cal->ctx));
    return 0;
}

static int8_t tern(double v)
{
    double r = rint(v);
    return (int8_t)(r > 1 ? 1 : r < -1 ? -1 : r);
}

/* Columns are quantized in blocks of GPTQ_BLOCK: inside a block the error of each column is
 * fed to the block's later columns one by one; the columns after the block get the whole
 * block's errors at once, as one matrix product (E . U[block, after]), which is the same
 * arithmetic in another order and runs at BLAS speed. */
#define GPTQ_BLOCK 128

typedef struct gptq_args {
    double *w;       /* N x K, corrected in place */
    const double *u; /* K x K, upper */
    double *e;       /* N x (i2 - i1): the block's errors, divided by U_ii */
    int64_t K, i1, i2;
    const double *scale; /* N: each row's */
    int8_t *q;
} gptq_args;

/* Columns i1 .. i2-1 of rows n0 .. n1-1. */
static void gptq_block_rows(void *arg, int64_t n0, int64_t n1, int tid)
{
    (void)tid;
    const gptq_args *a = arg;
    const int64_t K = a->K, nb = a->i2 - a->i1;
    for (int64_t r = n0; r < n1; r++) {
        double *wr = a->w + r * K, *er = a->e + r * nb;
        for (int64_t i = a->i1; i < a->i2; i++) {
            const double *ui = a->u + i * K;
            const int8_t qi = tern(wr[i] / a->scale[r]);
            a->q[r * K + i] = qi;
            const double e = (wr[i] - qi * a->scale[r]) / ui[i];
            er[i - a->i1] = e;
            for (int64_t j = i + 1; j < a->i2; j++) wr[j] -= e * ui[j];
        }
    }
}

/* q (N x K): the GPTQ codes of w at the rows' scales, with u from inverse_factor. 0 or -1
 * with a message. */
static int gptq(cv_calib *cal, const float *w, int64_t N, int64_t K, const double *u,
                const double *scale, int8_t *q, char *err, size_t errsz)
{
    double *wd = malloc((size_t)(N * K) * sizeof *wd),
           *e = malloc((size_t)(N * GPTQ_BLOCK) * sizeof *e);
    int rc = wd && e ? 0 : cm_fail(err, errsz, "out of memory (calibration)");
    gptq_args a = {wd, u, e, K, 0, 0, scale, q};
    for (int64_t i = 0; rc == 0 && i < N * K; i++) wd[i] = w[i];
    for (int64_t i1 = 0; rc == 0 && i1 < K; i1 += GPTQ_BLOCK) {
        a.i1 = i1;
        a.i2 = i1 + GPTQ_BLOCK < K ? i1 + GPTQ_BLOCK : K;
        const int64_t nb = a.i2 - i1;
        bn_pool_parallel_for(cal->pool, N, 4, gptq_block_rows, &a);
        if (a.i2 < K && bn_linalg_gemm_ex(cal->ctx, 0, 0, N, K - a.i2, nb, -1.0, e, nb,
                                          u + i1 * K + a.i2, K, 1.0, wd + a.i2, K) != BN_OK)
            rc = cm_fail(err, errsz, "calibration: %s", bn_ctx_errmsg(cal->ctx));
    }
    free(wd);
    free(e);
    return rc;
}

/* ---- one layer ------------------------------------------------------------------------------ */

static double mean_abs(const float *w, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs(w[i]);
    s /= (double)n;
    return s > 1e-5 ? s : 1e-5;
}

static int add_layer(cv_calib *cal, const char *name, int64_t N, int64_t K, char *err, size_t errsz)
{
    if (cal->n == cal->cap) {
        int cap = cal->cap ? 2 * cal->cap : 16;
        cv_calib_layer *l = realloc(cal->l, (size_t)cap * sizeof *l);
        if (!l) return cm_fail(err, errsz, "out of memory (calibration)");
        cal->l = l;
        cal->cap = cap;
    }
    cv_calib_layer *l = &cal->l[cal->n];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->rows = N;
    l->cols = K;
    cal->n++;
    if (!(l->q = malloc((size_t)(N * K))) ||
        !(l->row_scale = malloc((size_t)N * sizeof *l->row_scale)))
        return cm_fail(err, errsz, "out of memory");
    return 0;
}

/* A scale as the layout stores it: f16 in the TQ layouts, f32 in I2_S. */
static double stored(const cv_calib *cal, double v)
{
    return cal->row_scales ? bn_f16_to_f32(bn_f32_to_f16((float)v)) : (double)(float)v;
}

/* The search's state for one layer: the best codes and scales found so far, each row's error
 * (row scales) or the whole's (one scale). */
typedef struct calib_best {
    int8_t *q;     /* N x K */
    double *scale; /* N */
    double *err;   /* N: each row's tr term (row scales); err[0]: the total (one scale) */
} calib_best;

/* Keeps q at scale where it beats the best: row by row with row scales, else as a whole. e is
 * each row's term. */
static void keep_better(const cv_calib *cal, calib_best *b, const int8_t *q, const double *scale,
                        const double *e, int64_t N, int64_t K)
{
    if (cal->row_scales) {
        for (int64_t r = 0; r < N; r++)
            if (e[r] < b->err[r]) {
                b->err[r] = e[r];
                b->scale[r] = scale[r];
                if (q != b->q) memcpy(b->q + r * K, q + r * K, (size_t)K);
            }
        return;
    }
    double t = 0;
    for (int64_t r = 0; r < N; r++) t += e[r];
    if (t < b->err[0]) {
        b->err[0] = t;
        memcpy(b->scale, scale, (size_t)N * sizeof *scale);
        if (q != b->q) memcpy(b->q, q, (size_t)(N * K));
    }
}

/* For fixed codes q the output error is a quadratic in each scale, least at
 * s = q^T H w / q^T H q (per row, or summed over the rows for one scale): into s (N). 0, or -1
 * when out of memory. */
static int refit(const cv_calib *cal, const float *w, const int8_t *q, int64_t N, int64_t K,
                 double *s)
{
    double *qd = malloc((size_t)(N * K) * sizeof *qd), *qh = malloc((size_t)(N * K) * sizeof *qh);
    int rc = qd && qh ? 0 : -1;
    for (int64_t i = 0; rc == 0 && i < N * K; i++) qd[i] = q[i];
    if (rc == 0 && bn_linalg_gemm(cal->ctx, 0, 0, N, K, K, qd, cal->h, qh) != BN_OK) rc = -1;
    double tn = 0, td = 0;
    for (int64_t r = 0; rc == 0 && r < N; r++) {
        double num = 0, den = 0;
        for (int64_t k = r * K; k < (r + 1) * K; k++) {
            num += qh[k] * w[k];
            den += qh[k] * qd[k];
        }
        tn += num;
        td += den;
        s[r] = num > 0 && den > 0 ? stored(cal, num / den) : s[r];
    }
    for (int64_t r = 0; rc == 0 && !cal->row_scales && r < N; r++)
        s[r] = tn > 0 && td > 0 ? stored(cal, tn / td) : s[r];
    free(qd);
    free(qh);
    return rc;
}

/* gptq at each multiple of mean |W| (of each row with row scales), the best kept, then its
 * scales refitted (kept where better). err_scaled: plain rounding at the same scales. */
static int search(cv_calib *cal, cv_calib_layer *l, const float *w, const double *u, double den,
                  calib_best *b, char *err, size_t errsz)
{
    static const double mult[] = {0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0};
    const int64_t N = l->rows, K = l->cols;
    int8_t *q = malloc((size_t)(N * K));
    double *sc = malloc((size_t)N * sizeof *sc), *e = malloc((size_t)N * sizeof *e),
           *m = malloc((size_t)N * sizeof *m);
    int rc = q && sc && e && m ? 0 : cm_fail(err, errsz, "out of memory (calibration)");
    for (int64_t r = 0; rc == 0 && r < N; r++)
        m[r] = cal->row_scales ? mean_abs(w + r * K, K) : mean_abs(w, N * K);
    for (int64_t r = 0; rc == 0 && r < N; r++) b->err[r] = INFINITY;
    l->err_scaled = INFINITY;
    for (size_t i = 0; rc == 0 && i < sizeof mult / sizeof *mult; i++) {
        for (int64_t r = 0; r < N; r++) sc[r] = stored(cal, m[r] * mult[i]);
        /* round to nearest at the same scales: what the scale search alone gives */
        for (int64_t j = 0; j < N * K; j++) q[j] = tern(w[j] / sc[j / K]);
        const double e0 = rel_error(h_quad(cal, w, q, sc, N, K, NULL), den);
        if (e0 < l->err_scaled) l->err_scaled = e0;
        rc = gptq(cal, w, N, K, u, sc, q, err, errsz);
        if (rc == 0 && !(h_quad(cal, w, q, sc, N, K, e) >= 0))
            rc = cm_fail(err, errsz, "out of memory (calibration)");
        if (rc == 0) keep_better(cal, b, q, sc, e, N, K);
    }
    /* the scales that minimise the output error for the codes found */
    if (rc == 0) memcpy(sc, b->scale, (size_t)N * sizeof *sc);
    if (rc == 0 && refit(cal, w, b->q, N, K, sc) != 0)
        rc = cm_fail(err, errsz, "out of memory (calibration)");
    if (rc == 0 && !(h_quad(cal, w, b->q, sc, N, K, e) >= 0))
        rc = cm_fail(err, errsz, "out of memory (calibration)");
    if (rc == 0) keep_better(cal, b, b->q, sc, e, N, K);
    for (int64_t r = 0; rc == 0 && r < N; r++) l->scale_mult += b->scale[r] / m[r] / (double)N;
    free(q);
    free(sc);
    free(e);
    free(m);
    return rc;
}

int cv_calib_linear(cv_calib *cal, const char *name, const float *x, int64_t T, const float *w,
                    int64_t N, int64_t K, char *err, size_t errsz)
{
    if (cal->observe) return cal->observe(cal->user, name, x, T, w, N, K, err, errsz);
    if (second_moment(cal, x, T, K, err, errsz) || add_layer(cal, name, N, K, err, errsz))
        return -1;
    cv_calib_layer *l = &cal->l[cal->n - 1];
    double *u = malloc((size_t)(K * K) * sizeof *u);
    calib_best b = {malloc((size_t)(N * K)), malloc((size_t)N * sizeof *b.scale),
                    malloc((size_t)N * sizeof *b.err)};
    int rc = u && b.q && b.scale && b.err ? 0 : cm_fail(err, errsz, "out of memory (calibration)");
    /* absmean, as a plain conversion writes it: one scale */
    float s_abs;
    if (rc == 0 && bn_quantize_absmean(w, N, K, BN_QGRAN_TENSOR, 0, l->q, &s_abs) != BN_OK)
        rc = cm_fail(err, errsz, "%s: cannot quantize", name);
    for (int64_t r = 0; rc == 0 && r < N; r++) b.scale[r] = s_abs;
    const double den = rc == 0 ? h_quad(cal, w, NULL, NULL, N, K, NULL) : 0;
    if (rc == 0) l->err_absmean = rel_error(h_quad(cal, w, l->q, b.scale, N, K, NULL), den);
    if (rc == 0) rc = inverse_factor(cal, K, u, &l->lambda, err, errsz);
    if (rc == 0) rc = search(cal, l, w, u, den, &b, err, errsz);
    if (rc == 0) {
        double t = 0;
        for (int64_t r = 0; r < (cal->row_scales ? N : 1); r++) t += b.err[r];
        l->err_gptq = rel_error(t, den);
        l->scale_gptq = (float)b.scale[0];
    }
    if (rc == 0 && cal->method == CV_METHOD_GPTQ) {
        memcpy(l->q, b.q, (size_t)(N * K));
        for (int64_t r = 0; r < N; r++) l->row_scale[r] = (float)b.scale[r];
    } else {
        for (int64_t r = 0; r < N; r++) l->row_scale[r] = s_abs;
    }
    l->scale = cal->method == CV_METHOD_GPTQ ? l->scale_gptq : s_abs;
    if (rc == 0 && cal->lowrank > 0) /* for the codes written, on these inputs */
        rc = cv_lowrank_weighted(cal->ctx, cal->h, cal->damp, w, l->q, l->row_scale, N, K,
                                 cal->lowrank, &l->lr, err, errsz);
    free(u);
    free(b.q);
    free(b.scale);
    free(b.err);
    return rc;
}

cJSON *cv_calib_report(const cv_calib *cal)
{
    cJSON *r = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    double sa = 0, sg = 0;
    for (int i = 0; i < cal->n; i++) {
        const cv_calib_layer *l = &cal->l[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", l->name);
        cJSON_AddNumberToObject(o, "rows", (double)l->rows);
        cJSON_AddNumberToObject(o, "cols", (double)l->cols);
        cJSON_AddNumberToObject(o, "err_absmean", l->err_absmean);
        cJSON_AddNumberToObject(o, "err_gptq", l->err_gptq);
        cJSON_AddNumberToObject(o, "err_scale_only", l->err_scaled);
        cJSON_AddNumberToObject(o, "gptq_scale_mult", l->scale_mult);
        cJSON_AddNumberToObject(o, "gptq_scale", l->scale_gptq);
        cJSON_AddNumberToObject(o, "damping", l->lambda);
        cJSON_AddItemToArray(arr, o);
        sa += l->err_absmean;
        sg += l->err_gptq;
    }
    cJSON_AddStringToObject(r, "method", cal->method == CV_METHOD_GPTQ ? "gptq" : "absmean");
    cJSON_AddNumberToObject(r, "tokens", (double)cal->tokens);
    cJSON_AddStringToObject(r, "scales", cal->row_scales ? "row" : "tensor");
    cJSON_AddNumberToObject(r, "damp", cal->damp);
    cJSON_AddNumberToObject(r, "err_absmean_mean", cal->n ? sa / cal->n : 0);
    cJSON_AddNumberToObject(r, "err_gptq_mean", cal->n ? sg / cal->n : 0);
    cJSON_AddItemToObject(r, "layers", arr);
    return r;
}
