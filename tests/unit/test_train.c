/* test_train.c - the trainer: GEMM against its reference, a finite-difference gradient
 * check of every layer's backward and of the whole model, a short training run, bit-exact
 * resume, checkpoint corruption, export; the BPE tokenizer trainer.
 *
 * Gradient checks. Each layer's output y is reduced to L = sum_i y_i * R_i (R fixed random,
 * L summed in double) and every input x_j is perturbed by +-h: num = (L(x+h) - L(x-h)) / 2h
 * is compared with the backward pass's dL/dx_j (given dy = R). With f32 forwards and h =
 * 1e-3 the central difference is exact up to O(h^2) truncation plus rounding noise of about
 * eps_f32 * |L| / h; measured: at most 2e-4 for the layers (gradients of size 0.4-3) and
 * 6e-4 for the whole model (whose error falls as h^2: 3e-3 at h = 2e-3). The test passes
 * when max_j |num - ana| <= 5e-3 * max_j |ana| + 1e-4: a wrong term in a backward function
 * shows up as an error of the size of the gradient itself, a hundred times larger.
 * BN_TEST_VERBOSE=1 prints the measured errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/types.h"
#include "bitnet/threadpool.h"
#include "bitnet/tokenizer.h"
#include "bitnet/bpe_train.h"
#include "bitnet/train.h"
#include "train_internal.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t g_rng = 12345;

static float frand(void) /* uniform in [-1, 1) */
{
    return (float)((double)(bn__splitmix64(&g_rng) >> 11) * 0x1.0p-52 - 1.0);
}

static float *rand_vec(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
    return x;
}

static float *zeros(size_t n)
{
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    return x;
}

static bn_ctx *new_ctx(int threads)
{
    bn_ctx *ctx;
    bn_ctx_params p = {threads};
    assert_int_equal(bn_ctx_new(&ctx, &p), BN_OK);
    return ctx;
}

static char g_tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/bn_test_train.XXXXXX");
        assert_non_null(mkdtemp(g_tmpdir));
    }
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmpdir, name);
    return buf[k];
}

/* ---- the generic gradient check ------------------------------------------------------------ */

typedef void (*fwd_fn)(void *arg, float *out);

typedef struct gcheck {
    fwd_fn fwd;
    void *arg;
    float *out;
    const float *R;
    size_t n_out;
} gcheck;

static double gc_loss(const gcheck *g)
{
    g->fwd(g->arg, g->out);
    double s = 0.0;
    for (size_t i = 0; i < g->n_out; i++) s += (double)g->out[i] * g->R[i];
    return s;
}

/* Compares ana (dL/dx) with central differences of L over every element of x. */
static float g_h = 1e-3f;

static void check_grad(const char *what, const gcheck *g, float *x, size_t nx, const float *ana)
{
    const float h = g_h;
    double maxerr = 0.0, maxana = 0.0;
    size_t worst = 0;
    for (size_t j = 0; j < nx; j++) {
        const float x0 = x[j];
        x[j] = x0 + h;
        const double lp = gc_loss(g);
        x[j] = x0 - h;
        const double lm = gc_loss(g);
        x[j] = x0;
        const double num = (lp - lm) / (2.0 * h);
        const double err = fabs(num - ana[j]);
        if (err > maxerr) {
            maxerr = err;
            worst = j;
        }
        if (fabs(ana[j]) > maxana) maxana = fabs(ana[j]);
    }
    const double tol = 5e-3 * maxana + 1e-4;
    if (getenv("BN_TEST_VERBOSE"))
        fprintf(stderr, "  %s: max |num - ana| %.3g, max |ana| %.3g (h %g)\n", what, maxerr, maxana,
                (double)h);
    if (maxerr > tol)
        fprintf(stderr, "%s: max error %.3g at %zu (analytic %.6g) > tol %.3g\n", what, maxerr,
                worst, ana[worst], tol);
    assert_true(maxerr <= tol);
    assert_true(maxana > 0.0); /* the check checked something */
}

/* ---- GEMM ------------------------------------------------------------------------------ */

static void gemm_case(bn_threadpool *pool, bn__gemm_ws *ws, int ta, int tb, int M, int N, int K,
                      int acc)
{
    float *A = rand_vec((size_t)M * K, 1.0f), *B = rand_vec((size_t)K * N, 1.0f);
    float *C = rand_vec((size_t)M * N, 1.0f);
    float *Cr = malloc((size_t)M * N * sizeof *Cr);
    memcpy(Cr, C, (size_t)M * N * sizeof *C);
    const int lda = ta ? M : K, ldb = tb ? K : N;
    bn__sgemm(pool, ws, ta, tb, M, N, K, A, lda, B, ldb, C, N, acc);
    bn__sgemm_ref(ta, tb, M, N, K, A, lda, B, ldb, Cr, N, acc);
    /* f32 sums of K products of magnitude <= 1 against double sums: error <~ K * 2^-24 * sqrt(K) */
    const double tol = 4e-7 * K + 1e-6;
    for (int i = 0; i < M * N; i++) {
        if (fabs(C[i] - Cr[i]) > tol)
            fprintf(stderr, "gemm ta %d tb %d %dx%dx%d acc %d: [%d] %g vs %g\n", ta, tb, M, N, K,
                    acc, i, C[i], Cr[i]);
        assert_true(fabs(C[i] - Cr[i]) <= tol);
    }
    free(A);
    free(B);
    free(C);
    free(Cr);
}

static void test_gemm_vs_ref(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 1},   {5, 7, 3},    {6, 16, 8},    {13, 33, 300},
                                    {97, 17, 5}, {7, 1030, 9}, {130, 40, 257}};
    const char *variants[] = {"generic", "avx2"};
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    bn__gemm_ws ws;
    assert_int_equal(bn__gemm_ws_init(&ws, 2), BN_OK);
    const char *orig = bn__gemm_variant();
    for (int v = 0; v < 2; v++) {
        if (bn__gemm_force(variants[v]) != 0) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    gemm_case(s % 2 ? pool : NULL, &ws, ta, tb, shapes[s][0], shapes[s][1],
                              shapes[s][2], (int)(s + ta) % 2);
    }
    assert_int_equal(bn__gemm_force(orig), 0);
    bn__gemm_ws_release(&ws);
    bn_pool_free(pool);
}

/* The same product with 1, 2 and 3 threads is bit-identical. */
static void test_gemm_thread_invariant(void **state)
{
    (void)state;
    const int M = 100, N = 70, K = 600;
    float *A = rand_vec((size_t)M * K, 1.0f), *B = rand_vec((size_t)N * K, 1.0f);
    float *C[3];
    for (int t = 0; t < 3; t++) {
        bn_threadpool *pool;
        bn__gemm_ws ws;
        assert_int_equal(bn_pool_new(&pool, t + 1), BN_OK);
        assert_int_equal(bn__gemm_ws_init(&ws, t + 1), BN_OK);
        C[t] = zeros((size_t)M * N);
        bn__sgemm(pool, &ws, 0, 1, M, N, K, A, K, B, K, C[t], N, 0);
        bn__gemm_ws_release(&ws);
        bn_pool_free(pool);
    }
    assert_memory_equal(C[0], C[1], (size_t)M * N * sizeof(float));
    assert_memory_equal(C[0], C[2], (size_t)M * N * sizeof(float));
    for (int t = 0; t < 3; t++) free(C[t]);
    free(A);
    free(B);
}

/* ---- layer gradient checks ---------------------------------------------------------------- */

enum { GB = 2, GT = 5, GC = 8, GNH = 4, GNKV = 2, GHD = 4, GF = 12, GV = 11 };

typedef struct rms_arg {
    float *inp, *w, *rstd;
    int64_t BT;
    int C;
} rms_arg;

static void rms_fwd(void *arg, float *out)
{
    rms_arg *a = arg;
    bn__rmsnorm_forward(NULL, out, a->rstd, a->inp, a->w, a->BT, a->C, 1e-5f);
}

static void test_grad_rmsnorm(void **state)
{
    (void)state;
    const int BT = GB * GT, C = GF;
    rms_arg a = {rand_vec((size_t)BT * C, 1.0f), rand_vec(C, 1.0f), zeros(BT), BT, C};
    float *out = zeros((size_t)BT * C), *R = rand_vec((size_t)BT * C, 1.0f);
    float *dinp = rand_vec((size_t)BT * C, 1.0f), *dw = zeros(C), *dinp0 = zeros((size_t)BT * C);
    memcpy(dinp0, dinp, (size_t)BT * C * sizeof(float));
    rms_fwd(&a, out);
    /* accumulate into dinp to test acc_dinp = 1: subtract the starting values afterwards */
    bn__rmsnorm_backward(NULL, dinp, dw, R, a.inp, a.w, a.rstd, BT, C, 1);
    for (int i = 0; i < BT * C; i++) dinp[i] -= dinp0[i];
    gcheck g = {rms_fwd, &a, out, R, (size_t)BT * C};
    check_grad("rmsnorm dinp", &g, a.inp, (size_t)BT * C, dinp);
    check_grad("rmsnorm dw", &g, a.w, C, dw);
    free(a.inp), free(a.w), free(a.rstd), free(out), free(R), free(dinp), free(dw), free(dinp0);
}

typedef struct mm_arg {
    float *inp, *w;
    bn__gemm_ws *ws;
    int BT, K, N;
} mm_arg;

static void mm_fwd(void *arg, float *out)
{
    mm_arg *a = arg;
    bn__matmul_forward(NULL, a->ws, out, a->inp, a->w, a->BT, a->K, a->N);
}

static void test_grad_matmul(void **state)
{
    (void)state;
    bn__gemm_ws ws;
    assert_int_equal(bn__gemm_ws_init(&ws, 1), BN_OK);
    mm_arg a = {rand_vec(10 * 7, 1.0f), rand_vec(9 * 7, 1.0f), &ws, 10, 7, 9};
    float *out = zeros(10 * 9), *R = rand_vec(10 * 9, 1.0f);
    float *dinp = zeros(10 * 7), *dw = zeros(9 * 7);
    bn__matmul_backward(NULL, &ws, dinp, dw, R, a.inp, a.w, a.BT, a.K, a.N, 0);
    gcheck g = {mm_fwd, &a, out, R, 10 * 9};
    check_grad("matmul dinp", &g, a.inp, 10 * 7, dinp);
    check_grad("matmul dw", &g, a.w, 9 * 7, dw);
    bn__gemm_ws_release(&ws);
    free(a.inp), free(a.w), free(out), free(R), free(dinp), free(dw);
}

typedef struct rope_arg {
    float *x, *cs, *sn;
} rope_arg;

static void rope_fwd(void *arg, float *out)
{
    rope_arg *a = arg;
    memcpy(out, a->x, GB * GT * GNH * GHD * sizeof(float));
    bn__rope_forward(out, a->cs, a->sn, GB, GT, GNH, GHD);
}

static void test_grad_rope(void **state)
{
    (void)state;
    const size_t n = GB * GT * GNH * GHD;
    rope_arg a = {rand_vec(n, 1.0f), zeros(GT * GHD / 2), zeros(GT * GHD / 2)};
    bn__rope_table(a.cs, a.sn, GT, GHD, 10000.0f);
    /* position 1, pair 0: angle 1 rad */
    assert_true(fabsf(a.cs[GHD / 2] - cosf(1.0f)) < 1e-6f);
    float *out = zeros(n), *R = rand_vec(n, 1.0f), *dx = zeros(n);
    memcpy(dx, R, n * sizeof(float));
    bn__rope_backward(dx, a.cs, a.sn, GB, GT, GNH, GHD);
    gcheck g = {rope_fwd, &a, out, R, n};
    check_grad("rope", &g, a.x, n, dx);
    free(a.x), free(a.cs), free(a.sn), free(out), free(R), free(dx);
}

typedef struct attn_arg {
    float *q, *k, *v, *att;
    bn__gemm_ws *ws;
    int T;
} attn_arg;

static void attn_fwd(void *arg, float *out)
{
    attn_arg *a = arg;
    bn__attention_forward(NULL, a->ws, out, a->att, a->q, a->k, a->v, GB, a->T, GNH, GNKV, GHD);
}

/* T = 5 (one block of query rows) and T = 70 (two blocks: 64 + 6), with 2 threads */
static void grad_attention(int T)
{
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    bn__gemm_ws ws;
    assert_int_equal(bn__gemm_ws_init(&ws, 2), BN_OK);
    const size_t nq = (size_t)GB * T * GNH * GHD, nk = (size_t)GB * T * GNKV * GHD;
    attn_arg a = {rand_vec(nq, 1.5f),
                  rand_vec(nk, 1.5f),
                  rand_vec(nk, 1.0f),
                  zeros((size_t)GB * GNH * T * T),
                  &ws,
                  T};
    float *out = zeros(nq), *R = rand_vec(nq, 1.0f), *out2 = zeros(nq);
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
    float *scratch = zeros(2 * bn__attention_scratch(T));
    attn_fwd(&a, out);
    /* causal: row t of every head sums to 1 over columns <= t, 0 after */
    for (int r = 0; r < GB * GNH * T; r++) {
        double s = 0.0;
        for (int t2 = 0; t2 < T; t2++) {
            s += a.att[(size_t)r * T + t2];
            if (t2 > r % T) assert_true(a.att[(size_t)r * T + t2] == 0.0f);
        }
        assert_true(fabs(s - 1.0) < 1e-5);
    }
    /* the pool gives the same bits */
    bn__attention_forward(pool, &ws, out2, a.att, a.q, a.k, a.v, GB, T, GNH, GNKV, GHD);
    assert_memory_equal(out, out2, nq * sizeof(float));
    bn__attention_backward(pool, &ws, scratch, dq, dk, dv, R, a.att, a.q, a.k, a.v, GB, T, GNH,
                           GNKV, GHD);
    gcheck g = {attn_fwd, &a, out, R, nq};
    /* a subset of the inputs for the long case (every 7th), all for the short one */
    const size_t step = T > 8 ? 7 : 1;
    float *ana = zeros(nq);
    float *xs[3] = {a.q, a.k, a.v}, *ds[3] = {dq, dk, dv};
    const size_t ns[3] = {nq, nk, nk};
    const char *names[3] = {"attention dq", "attention dk", "attention dv"};
    for (int w = 0; w < 3; w++) {
        /* check_grad over a strided view: copy the picked entries, perturb through a map */
        size_t m = 0;
        for (size_t j = 0; j < ns[w]; j += step) ana[m++] = ds[w][j];
        if (step == 1) {
            check_grad(names[w], &g, xs[w], ns[w], ds[w]);
            continue;
        }
        double maxerr = 0.0, maxana = 0.0;
        for (size_t j = 0, i = 0; j < ns[w]; j += step, i++) {
            const float x0 = xs[w][j];
            xs[w][j] = x0 + g_h;
            const double lp = gc_loss(&g);
            xs[w][j] = x0 - g_h;
            const double lm = gc_loss(&g);
            xs[w][j] = x0;
            const double num = (lp - lm) / (2.0 * g_h);
            maxerr = fmax(maxerr, fabs(num - ana[i]));
            maxana = fmax(maxana, fabs(ana[i]));
        }
        if (getenv("BN_TEST_VERBOSE"))
            fprintf(stderr, "  %s (T %d): max |num - ana| %.3g, max |ana| %.3g\n", names[w], T,
                    maxerr, maxana);
        assert_true(maxerr <= 5e-3 * maxana + 1e-4);
    }
    free(ana), free(scratch), free(out2);
    free(a.q), free(a.k), free(a.v), free(a.att), free(out), free(R), free(dq), free(dk), free(dv);
    bn__gemm_ws_release(&ws);
    bn_pool_free(pool);
}

static void test_grad_attention(void **state)
{
    (void)state;
    grad_attention(GT);
    grad_attention(70);
}

typedef struct glu_arg {
    float *gate, *up;
    int64_t n;
} glu_arg;

static void glu_fwd(void *arg, float *out)
{
    glu_arg *a = arg;
    bn__relu2glu_forward(out, a->gate, a->up, a->n);
}

static void test_grad_relu2glu(void **state)
{
    (void)state;
    const int n = 60;
    glu_arg a = {rand_vec(n, 1.0f), rand_vec(n, 1.0f), n};
    /* keep gates away from the kink at 0 by more than h */
    for (int i = 0; i < n; i++)
        if (fabsf(a.gate[i]) < 0.05f) a.gate[i] = 0.3f;
    float *out = zeros(n), *R = rand_vec(n, 1.0f), *dg = zeros(n), *du = zeros(n);
    bn__relu2glu_backward(dg, du, R, a.gate, a.up, n);
    gcheck g = {glu_fwd, &a, out, R, n};
    check_grad("relu2glu dgate", &g, a.gate, n, dg);
    check_grad("relu2glu dup", &g, a.up, n, du);
    free(a.gate), free(a.up), free(out), free(R), free(dg), free(du);
}

typedef struct xent_arg {
    float *logits;
    int32_t *targets;
} xent_arg;

static void xent_fwd(void *arg, float *out)
{
    xent_arg *a = arg;
    bn__xent_forward(NULL, out, a->logits, a->targets, GB * GT, GV);
}

static void test_grad_xent(void **state)
{
    (void)state;
    const int BT = GB * GT;
    xent_arg a = {rand_vec((size_t)BT * GV, 3.0f), malloc(BT * sizeof(int32_t))};
    for (int i = 0; i < BT; i++) a.targets[i] = (i * 7) % GV;
    float *out = zeros(BT), *R = zeros(BT), *d = zeros((size_t)BT * GV);
    for (int i = 0; i < BT; i++) R[i] = 0.5f; /* L = 0.5 * sum(losses) */
    xent_fwd(&a, out);
    for (int i = 0; i < BT; i++) assert_true(out[i] > 0.0f);
    memcpy(d, a.logits, (size_t)BT * GV * sizeof(float));
    bn__xent_backward(NULL, d, a.targets, BT, GV, 0.5f);
    gcheck g = {xent_fwd, &a, out, R, BT};
    check_grad("xent", &g, a.logits, (size_t)BT * GV, d);
    free(a.logits), free(a.targets), free(out), free(R), free(d);
}

typedef struct enc_arg {
    float *wte;
    int32_t *inp;
} enc_arg;

static void enc_fwd(void *arg, float *out)
{
    enc_arg *a = arg;
    bn__encoder_forward(out, a->inp, a->wte, GB * GT, GC);
}

static void test_grad_encoder(void **state)
{
    (void)state;
    const int BT = GB * GT;
    enc_arg a = {rand_vec(GV * GC, 1.0f), malloc(BT * sizeof(int32_t))};
    for (int i = 0; i < BT; i++) a.inp[i] = (i * 3) % 4; /* repeated tokens add up */
    float *out = zeros((size_t)BT * GC), *R = rand_vec((size_t)BT * GC, 1.0f);
    float *dwte = zeros(GV * GC);
    bn__encoder_backward(dwte, R, a.inp, BT, GC);
    gcheck g = {enc_fwd, &a, out, R, (size_t)BT * GC};
    check_grad("encoder", &g, a.wte, GV * GC, dwte);
    free(a.wte), free(a.inp), free(out), free(R), free(dwte);
}

/* ---- the whole model ------------------------------------------------------------------------ */

static bn_train_model_config tiny_cfg(void)
{
    bn_train_model_config c = {GV, GC, 2, GNH, GNKV, GF, GT, 10000.0f, 1e-5f};
    return c;
}

typedef struct model_arg {
    bn_trainer *tr;
    int32_t *inp, *tgt;
} model_arg;

static void model_fwd(void *arg, float *out)
{
    model_arg *a = arg;
    assert_int_equal(bn_trainer_forward(a->tr, a->inp, a->tgt, GB, GT, out, NULL), BN_OK);
}

static void test_grad_model(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_train_model_config c = tiny_cfg();
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = GB;
    hp.seq_len = GT;
    hp.fp32 = 1;
    hp.init_std = 0.5f; /* large weights: every path carries gradient */
    bn_trainer *tr;
    assert_int_equal(bn_trainer_new(ctx, &c, &hp, &tr), BN_OK);
    const size_t n = bn_trainer_param_count(tr);
    assert_int_equal(n, bn_train_n_params(&c));
    float *P = bn_trainer_params(tr);
    for (size_t i = 0; i < n; i++) P[i] += 0.2f * frand(); /* norm weights away from 1 */
    model_arg a = {tr, malloc(GB * GT * sizeof(int32_t)), malloc(GB * GT * sizeof(int32_t))};
    for (int i = 0; i < GB * GT; i++) {
        a.inp[i] = (i * 5 + 1) % GV;
        a.tgt[i] = (i * 3 + 2) % GV;
    }
    float loss, R = 1.0f;
    model_fwd(&a, &loss);
    assert_int_equal(bn_trainer_backward(tr), BN_OK);
    float *ana = malloc(n * sizeof *ana);
    memcpy(ana, bn_trainer_grads(tr), n * sizeof *ana);
    gcheck g = {model_fwd, &a, &loss, &R, 1};
    check_grad("model", &g, P, n, ana);
    free(ana), free(a.inp), free(a.tgt);
    bn_trainer_free(tr);
    bn_ctx_free(ctx);
}

/* ---- training ----------------------------------------------------------------------------------
 */

/* A learnable stream: a fixed random successor table over V tokens (each token has one
 * likely successor and three rarer ones), drawn with a fixed seed. */
static int32_t *markov_tokens(size_t n, int V)
{
    int32_t *t = malloc(n * sizeof *t);
    assert_non_null(t);
    uint64_t s = 99;
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        t[i] = cur;
        const uint64_t r = bn__splitmix64(&s);
        const int pick = (r & 7) < 5 ? 0 : 1 + (int)((r >> 3) % 3);
        cur = (int32_t)((cur * 7 + 3 + pick * 11) % V);
    }
    return t;
}

static bn_trainer *small_trainer(bn_ctx *ctx, int fp32, int steps)
{
    bn_train_model_config c = {64, 64, 2, 4, 2, 128, 32, 10000.0f, 1e-5f};
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = 4;
    hp.seq_len = 32;
    hp.steps = steps;
    hp.warmup = 5;
    hp.lr = 1e-2f;
    hp.min_lr = 1e-3f;
    hp.val_frac = 0.1f;
    hp.seed = 7;
    hp.fp32 = fp32;
    bn_trainer *tr;
    assert_int_equal(bn_trainer_new(ctx, &c, &hp, &tr), BN_OK);
    int32_t *tok = markov_tokens(8000, 64);
    assert_int_equal(bn_trainer_set_data(tr, tok, 8000), BN_OK);
    free(tok);
    return tr;
}

/* Loss starts near ln(64) = 4.16; the stream's entropy is 1.07 nats per token (5/8, 1/8, 1/8,
 * 1/8 successors). 150 steps of 128 tokens must bring the validation loss below 1.5 (a fall
 * of more than 2.6 nats) for both the ternary and the f32 model; both reach about 1.21. */
static void test_training_loss_falls(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    for (int fp32 = 0; fp32 < 2; fp32++) {
        bn_trainer *tr = small_trainer(ctx, fp32, 150);
        double v0, v1;
        assert_int_equal(bn_trainer_eval(tr, 0, &v0, NULL), BN_OK);
        assert_true(fabs(v0 - log(64.0)) < 0.3);
        bn_train_stats st = {0};
        for (int i = 0; i < 150; i++) assert_int_equal(bn_trainer_step(tr, &st), BN_OK);
        assert_int_equal(st.step, 150);
        assert_int_equal(bn_trainer_eval(tr, 0, &v1, NULL), BN_OK);
        fprintf(stderr, "  training (%s): val loss %.3f -> %.3f\n", fp32 ? "f32" : "ternary", v0,
                v1);
        assert_true(v1 < 1.5);
        bn_trainer_free(tr);
    }
    bn_ctx_free(ctx);
}

static void test_lr_schedule(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_trainer *tr = small_trainer(ctx, 1, 105);
    /* warmup 5: 1/5, 2/5, ..; then cosine from 1e-2 to 1e-3 over 100 steps */
    assert_true(fabsf(bn_trainer_lr_at(tr, 0) - 2e-3f) < 1e-9f);
    assert_true(fabsf(bn_trainer_lr_at(tr, 4) - 1e-2f) < 1e-9f);
    assert_true(fabsf(bn_trainer_lr_at(tr, 5) - 1e-2f) < 1e-7f);
    assert_true(fabsf(bn_trainer_lr_at(tr, 55) - 5.5e-3f) < 1e-7f);
    assert_true(fabsf(bn_trainer_lr_at(tr, 105) - 1e-3f) < 1e-7f);
    assert_true(fabsf(bn_trainer_lr_at(tr, 500) - 1e-3f) < 1e-7f);
    bn_trainer_free(tr);
    bn_ctx_free(ctx);
}

/* N steps straight == N/2 steps, checkpoint, load, N/2 steps: bit for bit, also with a
 * different thread count after the resume. */
static void test_resume_bit_exact(void **state)
{
    (void)state;
    const int N = 8;
    bn_ctx *ctx2 = new_ctx(2), *ctx1 = new_ctx(1);
    bn_trainer *a = small_trainer(ctx2, 0, N);
    for (int i = 0; i < N; i++) assert_int_equal(bn_trainer_step(a, NULL), BN_OK);

    bn_trainer *b = small_trainer(ctx2, 0, N);
    for (int i = 0; i < N / 2; i++) assert_int_equal(bn_trainer_step(b, NULL), BN_OK);
    const char *path = tmp_path("resume.ckpt");
    assert_int_equal(bn_trainer_set_tokenizer(b, "abc", 3), BN_OK);
    assert_int_equal(bn_trainer_save(b, path), BN_OK);
    bn_trainer_free(b);

    bn_trainer *c;
    assert_int_equal(bn_trainer_load(ctx1, path, &c), BN_OK);
    assert_int_equal(bn_trainer_step_count(c), N / 2);
    size_t tl;
    const void *tok = bn_trainer_tokenizer(c, &tl);
    assert_int_equal(tl, 3);
    assert_memory_equal(tok, "abc", 3);
    /* other data are refused */
    int32_t *other = markov_tokens(8001, 64);
    assert_int_equal(bn_trainer_set_data(c, other, 8001), BN_ERR_INVALID);
    free(other);
    int32_t *data = markov_tokens(8000, 64);
    assert_int_equal(bn_trainer_set_data(c, data, 8000), BN_OK);
    free(data);
    for (int i = 0; i < N / 2; i++) assert_int_equal(bn_trainer_step(c, NULL), BN_OK);
    const size_t n = bn_trainer_param_count(a);
    assert_memory_equal(bn_trainer_params(a), bn_trainer_params(c), n * sizeof(float));
    assert_memory_equal(a->m, c->m, n * sizeof(float));
    assert_memory_equal(a->v, c->v, n * sizeof(float));
    double la, lc;
    assert_int_equal(bn_trainer_eval(a, 0, &la, NULL), BN_OK);
    assert_int_equal(bn_trainer_eval(c, 0, &lc, NULL), BN_OK);
    assert_true(la == lc);
    bn_trainer_free(a);
    bn_trainer_free(c);
    bn_ctx_free(ctx1);
    bn_ctx_free(ctx2);
}

static void write_all(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void expect_load_fails(bn_ctx *ctx, const char *path, bn_status want, const char *needle)
{
    bn_trainer *t = (bn_trainer *)1;
    assert_int_equal(bn_trainer_load(ctx, path, &t), want);
    assert_null(t);
    if (!strstr(bn_ctx_errmsg(ctx), needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", bn_ctx_errmsg(ctx), needle);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), needle));
}

static void test_checkpoint_corruption(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_trainer *tr = small_trainer(ctx, 0, 4);
    assert_int_equal(bn_trainer_step(tr, NULL), BN_OK);
    const char *good = tmp_path("good.ckpt"), *bad = tmp_path("bad.ckpt");
    assert_int_equal(bn_trainer_save(tr, good), BN_OK);
    bn_trainer_free(tr);
    size_t n;
    unsigned char *b = read_all(good, &n);
    /* truncated anywhere: in the header, in the weights, just before the end */
    const size_t cuts[] = {0, 7, 100, 183, 184, 1000, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad, b, cuts[i]);
        expect_load_fails(ctx, bad, BN_ERR_FORMAT, "truncated");
    }
    /* trailing bytes */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 0;
    write_all(bad, longer, n + 1);
    expect_load_fails(ctx, bad, BN_ERR_FORMAT, "bytes");
    free(longer);
    /* bad magic, bad version */
    b[0] ^= 1;
    write_all(bad, b, n);
    expect_load_fails(ctx, bad, BN_ERR_FORMAT, "magic");
    b[0] ^= 1;
    b[8] = 99;
    write_all(bad, b, n);
    expect_load_fails(ctx, bad, BN_ERR_UNSUPPORTED, "version");
    b[8] = 1;
    /* one flipped bit in the weights, in the moments, in the header's learning rate */
    const size_t flips[] = {184 + 10, n - 20, 76};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        b[flips[i]] ^= 0x10;
        write_all(bad, b, n);
        expect_load_fails(ctx, bad, BN_ERR_FORMAT, "checksum");
        b[flips[i]] ^= 0x10;
    }
    /* an impossible shape (n_head 3 does not divide dim 32) */
    b[28] = 3;
    write_all(bad, b, n);
    expect_load_fails(ctx, bad, BN_ERR_INVALID, "n_head");
    b[28] = 4;
    /* intact again: loads */
    write_all(bad, b, n);
    bn_trainer *t;
    assert_int_equal(bn_trainer_load(ctx, bad, &t), BN_OK);
    bn_trainer_free(t);
    expect_load_fails(ctx, tmp_path("missing.ckpt"), BN_ERR_IO, "cannot open");
    free(b);
    bn_ctx_free(ctx);
}

/* Allocation failures while creating a trainer are statuses, never crashes or leaks. */
static void test_trainer_alloc_failures(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_train_model_config c = tiny_cfg();
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = 2;
    hp.seq_len = 4;
    for (long k = 1; k < 40; k++) {
        bn_trainer *tr = NULL;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_trainer_new(ctx, &c, &hp, &tr);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            bn_trainer_free(tr);
            break;
        }
        assert_int_equal(rc, BN_ERR_NOMEM);
        assert_null(tr);
    }
    bn_ctx_free(ctx);
}

static void test_config_checks(void **state)
{
    (void)state;
    bn_train_model_config c;
    assert_int_equal(bn_train_config_preset("tiny", 1000, &c), BN_OK);
    assert_int_equal(c.vocab_size, 1000);
    assert_int_equal(bn_train_config_check(NULL, &c), BN_OK);
    assert_int_equal(bn_train_config_preset("huge", 1000, &c), BN_ERR_NOT_FOUND);
    bn_train_model_config bad = tiny_cfg();
    bad.n_kv_head = 3;
    assert_int_equal(bn_train_config_check(NULL, &bad), BN_ERR_INVALID);
    bad = tiny_cfg();
    bad.n_head = 8; /* head dim 1: odd */
    assert_int_equal(bn_train_config_check(NULL, &bad), BN_ERR_INVALID);
    assert_int_equal(bn_train_n_params(&bad), 0);
    /* V*C + L*(3C + 2C*C + 2*KVD*C + 3*F*C + F) + C */
    c = tiny_cfg();
    const size_t want = GV * GC + 2 * (3 * GC + 2 * GC * GC + 2 * 4 * GC + 3 * GF * GC + GF) + GC;
    assert_int_equal(bn_train_n_params(&c), want);
}

/* ---- BPE tokenizer training ------------------------------------------------------------------ */

static const char k_sennrich[] = "low low low low low lower lower newest newest newest newest "
                                 "newest newest widest widest widest";

static bn_bpe *train_bpe(bn_ctx *ctx, const char *text, int vocab)
{
    bn_bpe_params p;
    bn_bpe_params_default(&p);
    p.vocab_size = vocab;
    const char *texts[] = {text};
    const size_t lens[] = {strlen(text)};
    bn_bpe *b;
    assert_int_equal(bn_bpe_train(ctx, texts, lens, 1, &p, &b), BN_OK);
    return b;
}

static void expect_merge(const bn_bpe *b, int r, const char *left, const char *right)
{
    int32_t l, rr, res;
    assert_int_equal(bn_bpe_merge(b, r, &l, &rr, &res), BN_OK);
    size_t nl, nr, nres;
    const char *sl = bn_bpe_token_bytes(b, l, &nl), *sr = bn_bpe_token_bytes(b, rr, &nr);
    const char *sres = bn_bpe_token_bytes(b, res, &nres);
    assert_int_equal(nl, strlen(left));
    assert_memory_equal(sl, left, nl);
    assert_int_equal(nr, strlen(right));
    assert_memory_equal(sr, right, nr);
    assert_int_equal(nres, nl + nr);
    assert_memory_equal(sres, left, nl);
    assert_memory_equal(sres + nl, right, nr);
}

/* The words are "low" 1, " low" 4, " lower" 2, " newest" 6, " widest" 3. Pair counts: e-s 9
 * and s-t 9 (tie: the smaller ids, e-s), then es-t 9, l-o 7 and o-w 7 (l-o), lo-w 7, then
 * five pairs of 6 of which " n" has the smallest ids. */
static void test_bpe_train_known_merges(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_bpe *b = train_bpe(ctx, k_sennrich, 262);
    assert_int_equal(bn_bpe_n_vocab(b), 262); /* 256 bytes + 5 merges + <|endoftext|> */
    assert_int_equal(bn_bpe_n_merges(b), 5);
    expect_merge(b, 0, "e", "s");
    expect_merge(b, 1, "es", "t");
    expect_merge(b, 2, "l", "o");
    expect_merge(b, 3, "lo", "w");
    expect_merge(b, 4, " ", "n");
    assert_int_equal(bn_bpe_eos(b), 261);
    size_t n;
    assert_memory_equal(bn_bpe_token_bytes(b, 261, &n), "<|endoftext|>", 13);
    /* encode: " newest" -> " n" e w est */
    int32_t *ids;
    assert_int_equal(bn_bpe_encode(b, " newest", 7, 0, &ids, &n), BN_OK);
    const int32_t want[] = {260, 'e', 'w', 257};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want, sizeof want);
    bn_free(ids);
    /* a vocabulary larger than the text supports stops when no pair occurs twice */
    bn_bpe *big = train_bpe(ctx, k_sennrich, 5000);
    assert_true(bn_bpe_n_vocab(big) < 5000);
    bn_bpe_free(big);
    bn_bpe_free(b);
    bn_ctx_free(ctx);
}

static char *read_text(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    b[sz] = 0;
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static const char k_story[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in "
        "the sun. One day, she saw a big red ball in the park. \"Can I play with it?\" she "
        "asked her mom. Her mom smiled and said, \"Yes, you can!\" Lily played all day. It's "
        "3 o'clock; they'll go home.\n\nThe end.\n";

static void roundtrip(const bn_bpe *b, const char *text, size_t len, int special)
{
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_bpe_encode(b, text, len, special, &ids, &n), BN_OK);
    char *back;
    size_t bl;
    assert_int_equal(bn_bpe_decode(b, ids, n, &back, &bl), BN_OK);
    assert_int_equal(bl, len);
    assert_memory_equal(back, text, len);
    bn_free(ids);
    bn_free(back);
}

/* Same text, same merges, twice; encode/decode round trips (also odd bytes); the GGUF
 * reads back to the same tokenizer, and bitnet/tokenizer.h encodes like we do. */
static void test_bpe_deterministic_roundtrip(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_bpe *a = train_bpe(ctx, k_story, 330), *b = train_bpe(ctx, k_story, 330);
    assert_int_equal(bn_bpe_n_merges(a), bn_bpe_n_merges(b));
    assert_true(bn_bpe_n_merges(a) > 20);
    for (int r = 0; r < bn_bpe_n_merges(a); r++) {
        int32_t x[3], y[3];
        bn_bpe_merge(a, r, &x[0], &x[1], &x[2]);
        bn_bpe_merge(b, r, &y[0], &y[1], &y[2]);
        assert_memory_equal(x, y, sizeof x);
    }
    roundtrip(a, k_story, strlen(k_story), 0);
    static const char odd[] = "\xff\xfe broken \xc3 utf-8 \xe2\x82\xac \t\t  tabs\n\n\n 12345 "
                              "<|endoftext|>x<|endoftext|>";
    roundtrip(a, odd, sizeof odd - 1, 0);
    roundtrip(a, odd, sizeof odd - 1, 1);
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_bpe_encode(a, "a<|endoftext|>b", 15, 1, &ids, &n), BN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], bn_bpe_eos(a));
    bn_free(ids);
    assert_int_equal(bn_bpe_encode(a, "", 0, 1, &ids, &n), BN_OK);
    assert_int_equal(n, 0);
    bn_free(ids);

    const char *path = tmp_path("tok.gguf");
    assert_int_equal(bn_bpe_write_gguf(ctx, a, path), BN_OK);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, path, &g), BN_OK);
    const char *pre;
    assert_int_equal(bn_gguf_get_str(g, "tokenizer.ggml.pre", &pre), BN_OK);
    assert_string_equal(pre, "gpt-2");
    bn_bpe *c;
    assert_int_equal(bn_bpe_from_gguf(ctx, g, &c), BN_OK);
    assert_int_equal(bn_bpe_n_vocab(c), bn_bpe_n_vocab(a));
    assert_int_equal(bn_bpe_n_merges(c), bn_bpe_n_merges(a));
    assert_int_equal(bn_bpe_eos(c), bn_bpe_eos(a));
    int32_t *ia, *ic;
    size_t na, nc;
    assert_int_equal(bn_bpe_encode(a, odd, sizeof odd - 1, 1, &ia, &na), BN_OK);
    assert_int_equal(bn_bpe_encode(c, odd, sizeof odd - 1, 1, &ic, &nc), BN_OK);
    assert_int_equal(na, nc);
    assert_memory_equal(ia, ic, na * sizeof *ia);
    bn_free(ic);
    /* the engine's tokenizer reads the file and tokenizes the same way */
    bn_tokenizer *tok;
    assert_int_equal(bn_tokenizer_from_gguf(ctx, g, &tok), BN_OK);
    assert_int_equal(bn_tokenizer_n_vocab(tok), bn_bpe_n_vocab(a));
    int32_t *it;
    size_t nt;
    assert_int_equal(bn_tokenizer_encode_alloc(tok, k_story, strlen(k_story), 0, &it, &nt), BN_OK);
    bn_free(ia);
    assert_int_equal(bn_bpe_encode(a, k_story, strlen(k_story), 0, &ia, &na), BN_OK);
    assert_int_equal(nt, na);
    assert_memory_equal(it, ia, na * sizeof *ia);
    bn_free(it);
    bn_free(ia);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    bn_bpe_free(c);
    bn_bpe_free(a);
    bn_bpe_free(b);
    bn_ctx_free(ctx);
}

/* Our encoder on GPT-2's vocabulary reproduces llama.cpp's test-tokenizer-0 vectors. */
static void test_bpe_gpt2_vectors(void **state)
{
    (void)state;
    size_t ni, no;
    char *inp = read_text("tests/data/ggml-vocab-gpt-2.gguf.inp", &ni);
    char *outp = read_text("tests/data/ggml-vocab-gpt-2.gguf.out", &no);
    if (!inp || !outp) {
        free(inp), free(outp);
        skip();
    }
    bn_ctx *ctx = new_ctx(1);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, "tests/data/ggml-vocab-gpt-2.gguf", &g), BN_OK);
    bn_bpe *b;
    assert_int_equal(bn_bpe_from_gguf(ctx, g, &b), BN_OK);
    assert_int_equal(bn_bpe_n_vocab(b), 50257);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp, *line = outp;
    int cases = 0;
    for (char *q; (q = strstr(p, sep)) != NULL; p = q + strlen(sep)) {
        char *eol = strchr(line, '\n');
        assert_non_null(eol);
        *eol = 0;
        int32_t *ids;
        size_t n;
        assert_int_equal(bn_bpe_encode(b, p, (size_t)(q - p), 0, &ids, &n), BN_OK);
        char got[4096] = "";
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof got - 16; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[i]);
        if (strcmp(got, line) != 0)
            fprintf(stderr, "case %d: got '%s' want '%s'\n", cases, got, line);
        assert_string_equal(got, line);
        bn_free(ids);
        line = eol + 1;
        cases++;
    }
    assert_int_equal(cases, 46);
    bn_bpe_free(b);
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    free(inp);
    free(outp);
}

static void test_bpe_errors(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(1);
    bn_bpe_params p;
    bn_bpe_params_default(&p);
    p.vocab_size = 100;
    const char *t[] = {"abc"};
    const size_t l[] = {3};
    bn_bpe *b = (bn_bpe *)1;
    assert_int_equal(bn_bpe_train(ctx, t, l, 1, &p, &b), BN_ERR_INVALID);
    assert_null(b);
    /* allocation failures: a status, never a crash */
    p.vocab_size = 300;
    for (long k = 1; k < 200; k++) {
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_bpe_train(ctx, t, l, 1, &p, &b);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            bn_bpe_free(b);
            break;
        }
        assert_int_equal(rc, BN_ERR_NOMEM);
    }
    /* a llama (SPM) vocabulary is not byte-level BPE */
    bn_gguf *g;
    if (bn_gguf_open(ctx, "tests/data/ggml-vocab-llama-spm.gguf", &g) == BN_OK) {
        assert_int_equal(bn_bpe_from_gguf(ctx, g, &b), BN_ERR_UNSUPPORTED);
        bn_gguf_close(g);
    }
    bn_ctx_free(ctx);
}

/* ---- export, then run in the engine ---------------------------------------------------------- */

/* Logits of the exported model in the engine (F32 KV cache, the LM head as stored). */
static float *engine_logits(bn_ctx *ctx, const char *path, const int32_t *tok, int T, int V)
{
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.head_type = 0;
    bn_model *m;
    const bn_status rc = bn_model_load(ctx, path, &mp, &m);
    if (rc != BN_OK) fprintf(stderr, "load %s: %s\n", path, bn_ctx_errmsg(ctx));
    assert_int_equal(rc, BN_OK);
    const bn_model_hparams *h = bn_model_hparams_get(m);
    assert_int_equal(h->n_vocab, V);
    assert_int_equal(h->tied, 1);
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = T;
    sp.kv_type = BN_TYPE_F32;
    bn_model_state *st;
    assert_int_equal(bn_model_state_new(m, &sp, &st), BN_OK);
    float *lg = malloc((size_t)T * V * sizeof *lg);
    assert_int_equal(bn_model_eval(st, tok, T, 0, T, lg), BN_OK);
    bn_model_state_free(st);
    bn_model_free(m);
    return lg;
}

/* max |a - b| over all logits, relative to max |a|, and the mean |a - b| likewise. */
static void logit_diff(const float *a, const float *b, size_t n, double *max_rel, double *mean_rel)
{
    double mx = 0.0, amax = 0.0, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        mx = fmax(mx, d);
        sum += d;
        amax = fmax(amax, fabs(a[i]));
    }
    *max_rel = mx / amax;
    *mean_rel = sum / (double)n / amax;
}

/* A model trained a few steps, exported as I2_S, TQ2_0 and TQ1_0 and run by bn_model: its
 * logits equal the trainer's quantized forward pass. They cannot be bit-equal: the trainer
 * dequantizes activations as round(x s) / s and multiplies floats, the engine sums int8 x
 * ternary products exactly and scales once, and RMSNorm, softmax and RoPE round differently,
 * so each activation differs by a few ulp (~1e-6 relative); where such a difference moves
 * x * s across a rounding boundary of the next int8 quantization, one activation changes by
 * one step (max|x| / 127), which is the largest effect. Measured (relative to the largest
 * logit): I2_S max 3.0e-4, mean 2.9e-6; TQ2_0 and TQ1_0, which store the scale as f16
 * (relative rounding up to 2^-11 per layer), max 3.7e-4, mean 4.3e-5. Bounds: I2_S max
 * 5e-3, mean 5e-5; TQ2_0/TQ1_0 max 1e-2, mean 5e-4. The embedding is rounded to f16 in the
 * trainer first, as the file stores it. */
static void test_export_engine_logits(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx(2);
    bn_bpe *bpe = train_bpe(ctx, k_story, 300);
    const int V = bn_bpe_n_vocab(bpe), T = 16;
    bn_train_model_config c = {V, 256, 2, 4, 2, 256, 64, 10000.0f, 1e-5f};
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = 2;
    hp.seq_len = T;
    hp.steps = 20;
    hp.warmup = 2;
    hp.val_frac = 0.0f;
    bn_trainer *tr;
    assert_int_equal(bn_trainer_new(ctx, &c, &hp, &tr), BN_OK);
    const char *tokp = tmp_path("export_tok.gguf");
    assert_int_equal(bn_bpe_write_gguf(ctx, bpe, tokp), BN_OK);
    size_t tl;
    unsigned char *tb = read_all(tokp, &tl);
    assert_int_equal(bn_trainer_set_tokenizer(tr, tb, tl), BN_OK);
    free(tb);
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_bpe_encode(bpe, k_story, strlen(k_story), 0, &ids, &n), BN_OK);
    assert_true(n > 2 * (size_t)T + 1);
    assert_int_equal(bn_trainer_set_data(tr, ids, n), BN_OK);
    for (int i = 0; i < 20; i++) assert_int_equal(bn_trainer_step(tr, NULL), BN_OK);
    /* the file stores the embedding in f16: use the same values in the trainer */
    float *P = bn_trainer_params(tr);
    for (size_t i = 0; i < (size_t)V * c.dim; i++) P[i] = bn_f16_to_f32(bn_f32_to_f16(P[i]));
    float *want = malloc((size_t)T * V * sizeof *want);
    assert_int_equal(bn_trainer_forward(tr, ids, NULL, 1, T, NULL, want), BN_OK);
    const int types[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};
    const double max_tol[] = {5e-3, 1e-2, 1e-2}, mean_tol[] = {5e-5, 5e-4, 5e-4};
    for (int k = 0; k < 3; k++) {
        const char *path = tmp_path("export.gguf");
        assert_int_equal(bn_trainer_export_gguf(tr, path, types[k]), BN_OK);
        float *got = engine_logits(ctx, path, ids, T, V);
        double mx, mean;
        logit_diff(want, got, (size_t)T * V, &mx, &mean);
        if (getenv("BN_TEST_VERBOSE"))
            fprintf(stderr, "  export %s: max %.3g, mean %.3g of max |logit|\n",
                    bn_type_name(types[k]), mx, mean);
        assert_true(mx <= max_tol[k]);
        assert_true(mean <= mean_tol[k]);
        free(got);
    }
    /* the file carries the tokenizer: the engine's tokenizer reads it */
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, tmp_path("export.gguf"), &g), BN_OK);
    uint32_t u;
    assert_int_equal(bn_gguf_get_u32(g, "bitnet-b1.58.block_count", &u), BN_OK);
    assert_int_equal(u, 2);
    bn_tokenizer *tok;
    assert_int_equal(bn_tokenizer_from_gguf(ctx, g, &tok), BN_OK);
    assert_int_equal(bn_tokenizer_n_vocab(tok), V);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    free(want);
    bn_free(ids);
    bn_trainer_free(tr);
    /* widths that are not multiples of 256 cannot be TQ2_0 */
    bn_train_model_config c2 = {V, 128, 1, 2, 1, 128, 16, 10000.0f, 1e-5f};
    assert_int_equal(bn_trainer_new(ctx, &c2, &hp, &tr), BN_OK);
    assert_int_equal(bn_trainer_export_gguf(tr, tmp_path("x.gguf"), BN_TYPE_TQ2_0),
                     BN_ERR_UNSUPPORTED);
    assert_int_equal(bn_trainer_export_gguf(tr, tmp_path("x.gguf"), BN_TYPE_I2_S), BN_OK);
    bn_trainer_free(tr);
    bn_bpe_free(bpe);
    bn_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_gemm_vs_ref),
            cmocka_unit_test(test_gemm_thread_invariant),
            cmocka_unit_test(test_grad_rmsnorm),
            cmocka_unit_test(test_grad_matmul),
            cmocka_unit_test(test_grad_rope),
            cmocka_unit_test(test_grad_attention),
            cmocka_unit_test(test_grad_relu2glu),
            cmocka_unit_test(test_grad_xent),
            cmocka_unit_test(test_grad_encoder),
            cmocka_unit_test(test_grad_model),
            cmocka_unit_test(test_config_checks),
            cmocka_unit_test(test_lr_schedule),
            cmocka_unit_test(test_training_loss_falls),
            cmocka_unit_test(test_resume_bit_exact),
            cmocka_unit_test(test_checkpoint_corruption),
            cmocka_unit_test(test_trainer_alloc_failures),
            cmocka_unit_test(test_bpe_train_known_merges),
            cmocka_unit_test(test_bpe_deterministic_roundtrip),
            cmocka_unit_test(test_bpe_gpt2_vectors),
            cmocka_unit_test(test_bpe_errors),
            cmocka_unit_test(test_export_engine_logits),
    };
    const char *filter = getenv("BN_TEST_FILTER"); /* e.g. BN_TEST_FILTER='test_grad_*' */
    if (filter) cmocka_set_test_filter(filter);
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_tmpdir[0]) remove_tree(g_tmpdir); /* every run left its folder in /tmp */
    return failed;
}
