/*
 * train_gemm.c - the trainer's f32 GEMM: a packed, blocked product in the style of BLIS
 * (C is cut into NC-wide column blocks and KC-deep slices; each slice of B is packed into
 * NR-wide panels and each MC-row block of A into MR-row panels, and a micro-kernel
 * computes one MR x NR tile of C from two panels), threaded over rows or columns of C.
 * The micro-kernel is chosen once: the AVX2+FMA one (train_gemm_avx2.c) where the CPU has
 * it, else the generic one below. bn__sgemm_ref is the specification.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/cpu.h"
#include "train_internal.h"

#define MR        BN__GEMM_MR
#define NR        BN__GEMM_NR
#define KC        BN__GEMM_KC
#define MC        BN__GEMM_MC
#define NC        BN__GEMM_NC
#define WS_FLOATS BN__GEMM_WS_FLOATS

/* ---- the reference ------------------------------------------------------------------ */

void bn__sgemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = accumulate ? C[i * ldc + j] : 0.0;
            for (int64_t k = 0; k < K; k++) {
                const float a = ta ? A[k * lda + i] : A[i * lda + k];
                const float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += (double)a * b;
            }
            C[i * ldc + j] = (float)s;
        }
    }
}

/* ---- the generic micro-kernel ----------------------------------------------------------
 * Portable: GCC/Clang vector extensions (4 floats, what SSE2 and NEON hold), two passes of 8
 * columns so that the 6 x 8 accumulator stays in 12 of 16 vector registers. */

typedef float v4f __attribute__((vector_size(16)));

static v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

void bn__gemm_ukernel_generic(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                              int add)
{
#if MR != 6
#error "the generic micro-kernel is written for 6 rows"
#endif
    for (int h = 0; h < NR; h += 8) {
        /* named accumulators: an array would live in memory at -O2 */
        v4f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
        v4f c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
        for (int64_t k = 0; k < kc; k++) {
            const float *a = pa + k * MR;
            const v4f b0 = v4_load(pb + k * NR + h), b1 = v4_load(pb + k * NR + h + 4);
            c00 += a[0] * b0;
            c01 += a[0] * b1;
            c10 += a[1] * b0;
            c11 += a[1] * b1;
            c20 += a[2] * b0;
            c21 += a[2] * b1;
            c30 += a[3] * b0;
            c31 += a[3] * b1;
            c40 += a[4] * b0;
            c41 += a[4] * b1;
            c50 += a[5] * b0;
            c51 += a[5] * b1;
        }
        const v4f acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                {c30, c31}, {c40, c41}, {c50, c51}};
        for (int i = 0; i < MR; i++) {
            float out[8];
            memcpy(out, acc[i], sizeof out);
            for (int j = 0; j < 8; j++)
                c[i * ldc + h + j] = (add ? c[i * ldc + h + j] : 0.0f) + out[j];
        }
    }
}

/* ---- dispatch (filled once) ---------------------------------------------------------- */

static bn__gemm_ukernel g_ukernel;
static const char *g_ukernel_name;
static pthread_once_t g_ukernel_once = PTHREAD_ONCE_INIT;

/* Fills the dispatch once, before any GEMM reads it (pthread_once orders the writes for
 * every thread: a worker must never see a half-made choice, or one product of a step would
 * run with the other kernel and round differently). */
static void choose_ukernel(void)
{
    bn__gemm_ukernel k = bn__gemm_ukernel_generic;
    const char *name = "generic";
#if defined(__x86_64__) || defined(__i386__)
    const char *e = getenv("BN_NO_SIMD");
    const bn_cpu_info *c = bn_cpu_info_get();
    if (!(e && *e && strcmp(e, "0") != 0) && c->avx2 && c->fma) {
        k = bn__gemm_ukernel_avx2;
        name = "avx2";
    }
#endif
    g_ukernel = k;
    g_ukernel_name = name;
}

static bn__gemm_ukernel ukernel(void)
{
    pthread_once(&g_ukernel_once, choose_ukernel);
    return g_ukernel;
}

const char *bn__gemm_variant(void)
{
    ukernel();
    return g_ukernel_name;
}

int bn__gemm_force(const char *name)
{
    ukernel(); /* the default first, so that it cannot overwrite the forced one later */
    if (strcmp(name, "generic") == 0) {
        g_ukernel = bn__gemm_ukernel_generic;
        g_ukernel_name = "generic";
        return 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    const bn_cpu_info *c = bn_cpu_info_get();
    if (strcmp(name, "avx2") == 0 && c->avx2 && c->fma) {
        g_ukernel = bn__gemm_ukernel_avx2;
        g_ukernel_name = "avx2";
        return 0;
    }
#endif
    return -1;
}

/* ---- workspace -------------------------------------------------------------------------- */

bn_status bn__gemm_ws_init(bn__gemm_ws *ws, int n_threads)
{
    memset(ws, 0, sizeof *ws);
    if (n_threads < 1) n_threads = 1;
    size_t n;
    if (bn_mul_size(WS_FLOATS * sizeof(float), (size_t)n_threads, &n)) return BN_ERR_OVERFLOW;
    ws->buf = bn_aligned_alloc(64, n);
    if (!ws->buf) return BN_ERR_NOMEM;
    ws->n_threads = n_threads;
    return BN_OK;
}

void bn__gemm_ws_release(bn__gemm_ws *ws)
{
    if (!ws) return;
    bn_free(ws->buf);
    memset(ws, 0, sizeof *ws);
}

/* ---- packing ---------------------------------------------------------------------------- */

typedef struct gemm_args {
    int ta, tb;
    int64_t M, N, K;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    int accumulate;
    int split_rows; /* threads split rows (1) or columns (0) of C */
    float *buf;     /* packing buffers: thread t uses buf + t * WS_FLOATS */
} gemm_args;

/* Rows i0..i0+mc of op(A), columns k0..k0+kc, into MR-row panels, zero padded. The loops
 * run along the stored rows (contiguous reads) and scatter into the panel. */
static void pack_a(const gemm_args *g, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *dst)
{
    for (int64_t p = 0; p < mc; p += MR) {
        const int64_t rows = mc - p < MR ? mc - p : MR;
        float *d = dst + p * kc;
        if (rows < MR) memset(d, 0, (size_t)(kc * MR) * sizeof(float));
        if (g->ta) {
            for (int64_t k = 0; k < kc; k++)
                memcpy(d + k * MR, g->A + (k0 + k) * g->lda + i0 + p, (size_t)rows * sizeof(float));
            continue;
        }
        for (int64_t r = 0; r < rows; r++) {
            const float *src = g->A + (i0 + p + r) * g->lda + k0;
            for (int64_t k = 0; k < kc; k++) d[k * MR + r] = src[k];
        }
    }
}

/* Rows k0..k0+kc of op(B), columns j0..j0+nc, into NR-column panels, zero padded. */
static void pack_b(const gemm_args *g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *dst)
{
    for (int64_t q = 0; q < nc; q += NR) {
        const int64_t cols = nc - q < NR ? nc - q : NR;
        float *d = dst + q * kc;
        if (cols < NR) memset(d, 0, (size_t)(kc * NR) * sizeof(float));
        if (!g->tb) {
            for (int64_t k = 0; k < kc; k++)
                memcpy(d + k * NR, g->B + (k0 + k) * g->ldb + j0 + q, (size_t)cols * sizeof(float));
            continue;
        }
        for (int64_t c = 0; c < cols; c++) {
            const float *src = g->B + (j0 + q + c) * g->ldb + k0;
            for (int64_t k = 0; k < kc; k++) d[k * NR + c] = src[k];
        }
    }
}

/* One packed block: C[i0.., j0..] (mc x nc) [+]= pa * pb over kc. */
static void macro_kernel(const gemm_args *g, bn__gemm_ukernel uk, int64_t i0, int64_t mc,
                         int64_t j0, int64_t nc, int64_t kc, const float *pa, const float *pb,
                         int add)
{
    float tile[MR * NR];
    for (int64_t q = 0; q < nc; q += NR) {
        const int64_t cols = nc - q < NR ? nc - q : NR;
        for (int64_t p = 0; p < mc; p += MR) {
            const int64_t rows = mc - p < MR ? mc - p : MR;
            float *c = g->C + (i0 + p) * g->ldc + j0 + q;
            if (rows == MR && cols == NR) {
                uk(kc, pa + p * kc, pb + q * kc, c, g->ldc, add);
                continue;
            }
            uk(kc, pa + p * kc, pb + q * kc, tile, NR, 0);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < cols; j++)
                    c[r * g->ldc + j] = (add ? c[r * g->ldc + j] : 0.0f) + tile[r * NR + j];
        }
    }
}

/* The product restricted to rows [m0, m1) and columns [n0, n1) of C. */
static void gemm_region(const gemm_args *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int tid)
{
    bn__gemm_ukernel uk = ukernel();
    float *pa = g->buf + (size_t)tid * WS_FLOATS;
    float *pb = pa + (size_t)MC * KC;
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = n1 - jc < NC ? n1 - jc : NC;
        for (int64_t pc = 0; pc < g->K; pc += KC) {
            const int64_t kc = g->K - pc < KC ? g->K - pc : KC;
            const int add = pc > 0 || g->accumulate;
            pack_b(g, pc, kc, jc, nc, pb);
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = m1 - ic < MC ? m1 - ic : MC;
                pack_a(g, ic, mc, pc, kc, pa);
                macro_kernel(g, uk, ic, mc, jc, nc, kc, pa, pb, add);
            }
        }
    }
}

static void gemm_task(void *arg, int64_t begin, int64_t end, int tid)
{
    const gemm_args *g = arg;
    if (g->split_rows)
        gemm_region(g, begin, end, 0, g->N, tid);
    else
        gemm_region(g, 0, g->M, begin, end, tid);
}

void bn__sgemm(bn_threadpool *pool, bn__gemm_ws *ws, int ta, int tb, int64_t M, int64_t N,
               int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
               int64_t ldc, int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    BN_ASSERT(ws && ws->buf && ws->n_threads >= (pool ? bn_pool_active(pool) : 1));
    ukernel(); /* on the caller, before the workers read it */
    gemm_args g = {ta, tb, M, N, K, A, B, lda, ldb, ldc, C, accumulate, 1, ws->buf};
    /* Split the dimension that gives each thread more whole micro-tiles. */
    g.split_rows = (M + MR - 1) / MR >= (N + NR - 1) / NR;
    if (g.split_rows)
        bn_pool_parallel_for(pool, M, MR, gemm_task, &g);
    else
        bn_pool_parallel_for(pool, N, NR, gemm_task, &g);
}

void bn__sgemm_serial(float *buf, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                      int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    gemm_args g = {ta, tb, M, N, K, A, B, lda, ldb, ldc, C, accumulate, 1, buf};
    gemm_region(&g, 0, M, 0, N, 0);
}

/* ---- FNV-1a, for checkpoints and data hashes -------------------------------------------- */

uint64_t bn__fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
