/* test_model_ops.c - the forward pass's AVX-512 per-token steps (model_ops_avx512.c)
 * against their plain C definitions in model_forward.c and against the AVX2 twins they
 * replace: RMSNorm + the activation quantizer in one kernel, and the quantizer alone, on
 * every tail length, rows that end at an unreadable page, ties, zeros, NaN, inf, huge and
 * tiny values; relu^2 * up and the residual add. Skipped on a CPU without AVX-512
 * F/BW/VL/DQ (and AVX2, FMA, F16C). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bitnet/cpu.h"
#include "model_internal.h"

#if defined(__x86_64__) || defined(__i386__) /* the kernels are x86's (up to main) */

#define MAXN  7000
#define GUARD 64 /* bytes after the codes that a kernel must leave alone */
#define EPS   1e-5f

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

/* xorshift64*: uniform in [0, 1) */
static double uniform(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static int have_avx512(void)
{
    const bn_cpu_info *c = bn_cpu_info_get();
    return c->avx2 && c->fma && c->f16c && c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq;
}

#define SKIP_WITHOUT_AVX512()                                                                      \
    do {                                                                                           \
        if (!have_avx512()) {                                                                      \
            print_message("SKIP: this CPU has no AVX-512 F/BW/VL/DQ\n");                           \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The kinds of rows: rep 0-3 random of growing spread; the rest the special cases. */
enum {
    ROW_RANDOM = 4,
    ROW_DYADIC = ROW_RANDOM, /* k / 64: every sum of squares exact, so any order agrees */
    ROW_TIES,                /* max 127 and k + 0.5 values, with w = 1: ties to even */
    ROW_ZERO,
    ROW_NAN,
    ROW_INF,
    ROW_HUGE,   /* squares overflow float: the scale is 0 */
    ROW_TINY,   /* subnormal squares */
    ROW_SMALLW, /* w so small that every |y| is below the quantizer's floor of 1e-5 */
    N_ROWS
};

static void fill_row(int kind, int64_t n, float *x, float *w)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)((uniform() * 2.0 - 1.0) * (kind < ROW_RANDOM ? 1 << (3 * kind) : 1));
        w[i] = (float)(0.5 + uniform());
    }
    switch (kind) {
    case ROW_DYADIC:
        for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(uniform() * 1025) - 512) / 64.0f;
        break;
    case ROW_TIES:
        x[0] = 127.0f;
        for (int64_t i = 1; i < n; i++) x[i] = (float)((int)(uniform() * 126)) + 0.5f;
        for (int64_t i = 0; i < n; i++) w[i] = 1.0f;
        break;
    case ROW_ZERO:
        memset(x, 0, (size_t)n * sizeof *x);
        break;
    case ROW_NAN:
        x[n / 2] = NAN;
        break;
    case ROW_INF:
        x[n - 1] = n % 2 ? INFINITY : -INFINITY;
        break;
    case ROW_HUGE:
        x[0] = 3e38f;
        break;
    case ROW_TINY:
        for (int64_t i = 0; i < n; i++) x[i] *= 1e-30f;
        break;
    case ROW_SMALLW:
        for (int64_t i = 0; i < n; i++) w[i] *= 1e-9f;
        break;
    }
}

/* The two-step form of norm + quantize, with rmsnorm (plain C or the AVX2 twin) and then
 * the quantizer of the same ISA. */
typedef void (*norm_fn)(const float *x, const float *w, int64_t n, float eps, float *y);
typedef float (*quant_fn)(const float *x, int64_t n, int8_t *q, int32_t *sum);

static float two_step(norm_fn nf, quant_fn qf, const float *x, const float *w, int64_t n, int8_t *q,
                      int32_t *sum)
{
    static float y[MAXN];
    if (!w) return qf(x, n, q, sum);
    nf(x, w, n, EPS, y);
    return qf(y, n, q, sum);
}

/* Runs the fused kernel on row (x, w) of n values: codes, sum and scale, and checks that
 * the GUARD bytes after the codes are untouched. */
static float fused(const float *x, const float *w, int64_t n, int8_t *q, int32_t *sum)
{
    memset(q, 0x5a, (size_t)n + GUARD);
    const float s = bn__model_norm_quant_avx512(x, w, n, EPS, q, sum);
    for (int g = 0; g < GUARD; g++) assert_int_equal(q[n + g], 0x5a);
    return s;
}

static int32_t code_sum(const int8_t *q, int64_t n)
{
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

static const int64_t sizes[] = {1,  2,  7,  8,  9,  15,  16,  17,  31,  32,  33,   47,   48,  63,
                                64, 65, 79, 80, 95, 127, 128, 129, 200, 257, 1000, 2560, 6912};

/* The fused kernel gives the AVX2 pair's codes, sum and scale to the bit: the same float
 * operations per value and the same order of the sum of squares. */
static void test_norm_quant_vs_avx2(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    static float x[MAXN], w[MAXN];
    static int8_t qa[MAXN + GUARD], qb[MAXN + GUARD];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        for (int kind = 0; kind < N_ROWS; kind++) {
            fill_row(kind, n, x, w);
            for (int sub = 0; sub < 2; sub++) { /* with the norm, then the quantizer alone */
                const float *wn = sub ? NULL : w;
                int32_t sa, sb;
                const float fa = two_step(bn__model_rmsnorm_avx2, bn__model_quantize_act_avx2, x,
                                          wn, n, qa, &sa);
                const float fb = fused(x, wn, n, qb, &sb);
                assert_memory_equal(&fa, &fb, sizeof fa);
                assert_memory_equal(qa, qb, (size_t)n);
                assert_int_equal(sa, sb);
                assert_int_equal(sb, code_sum(qb, n));
            }
        }
    }
}

/* Against the plain C definitions (bn__model_rmsnorm, then bn__model_quantize_act): the
 * quantizer alone to the bit; the norm to the bit where the sum of squares cannot round
 * differently (fewer than 8 values: both add them in turn; dyadic rows: every partial sum
 * exact), and otherwise the same codes wherever the scale came out the same, and no code
 * more than 1 apart where it did not. */
static void test_norm_quant_vs_plain(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    static float x[MAXN], w[MAXN];
    static int8_t qa[MAXN + GUARD], qb[MAXN + GUARD];
    int rows = 0, scale_differs = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        for (int kind = 0; kind < N_ROWS; kind++) {
            fill_row(kind, n, x, w);
            int32_t sa, sb;
            /* the quantizer alone */
            float fa = bn__model_quantize_act(x, n, qa, &sa);
            float fb = bn__model_quantize_act_avx512(x, n, qb, &sb);
            assert_memory_equal(&fa, &fb, sizeof fa);
            assert_memory_equal(qa, qb, (size_t)n);
            assert_int_equal(sa, sb);
            /* the norm and the quantizer */
            fa = two_step(bn__model_rmsnorm, bn__model_quantize_act, x, w, n, qa, &sa);
            fb = fused(x, w, n, qb, &sb);
            rows++;
            if (n < 8 || kind == ROW_DYADIC || memcmp(&fa, &fb, sizeof fa) == 0) {
                assert_memory_equal(&fa, &fb, sizeof fa);
                assert_memory_equal(qa, qb, (size_t)n);
                assert_int_equal(sa, sb);
                continue;
            }
            scale_differs++;
            assert_true(fabsf(fa - fb) <= 4e-7f * fabsf(fa));
            for (int64_t i = 0; i < n; i++) assert_true(abs(qa[i] - qb[i]) <= 1);
            assert_int_equal(sb, code_sum(qb, n));
        }
    }
    print_message("    %d rows, %d with a scale 1 ulp or so apart (sum of squares order)\n", rows,
                  scale_differs);
    assert_true(scale_differs * 10 < rows); /* rare: the sum is in double */
}

/* Rows whose last value is the last of a readable page, the next page unmapped: the tails
 * are read under a mask, never past the row (a read past it faults). */
static void test_norm_quant_page_end(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = 4 * pg; /* room for 2 * pg floats: x and w, each on its own pages */
    char *mem = mmap(NULL, 2 * (bytes + pg), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    assert_true(mem != MAP_FAILED);
    char *xa = mem, *wa = mem + bytes + pg;
    assert_int_equal(mprotect(xa + bytes, pg, PROT_NONE), 0);
    assert_int_equal(mprotect(wa + bytes, pg, PROT_NONE), 0);
    static float xs[MAXN], ws[MAXN];
    static int8_t qa[MAXN + GUARD], qb[MAXN + GUARD];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        if ((size_t)n * sizeof(float) > bytes) continue;
        float *x = (float *)(xa + bytes) - n, *w = (float *)(wa + bytes) - n;
        fill_row(0, n, xs, ws);
        memcpy(x, xs, (size_t)n * sizeof *x);
        memcpy(w, ws, (size_t)n * sizeof *w);
        int32_t sa, sb;
        const float fa =
                two_step(bn__model_rmsnorm_avx2, bn__model_quantize_act_avx2, xs, ws, n, qa, &sa);
        const float fb = fused(x, w, n, qb, &sb);
        assert_memory_equal(&fa, &fb, sizeof fa);
        assert_memory_equal(qa, qb, (size_t)n);
        bn__model_quantize_act_avx512(x, n, qb, &sb); /* the quantizer alone */
    }
    munmap(mem, 2 * (bytes + pg));
}

/* a and b hold the same n floats to the bit, or NaN both: the sign and payload of x + y
 * when both are NaN follow the operand order, which the compiler may swap (it does at -O1
 * here), so the plain loop's NaN is not the spec's. */
static void assert_same_floats(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i]))) assert_memory_equal(&a[i], &b[i], sizeof a[i]);
}

/* relu(g)^2 * u and x += y: the plain loops' float operations, so their bits, on every tail
 * length (the values past n untouched), with NaN, inf, -0 and subnormal inputs. */
static void test_eltwise(void **state)
{
    (void)state;
    SKIP_WITHOUT_AVX512();
    enum { PAD = 20 };
    static float g[MAXN + PAD], u[MAXN + PAD], a[MAXN + PAD], b[MAXN + PAD];
    static const float odd[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -1e-40f};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        for (int64_t i = 0; i < n + PAD; i++) {
            g[i] = (float)(uniform() * 8.0 - 4.0);
            u[i] = (float)(uniform() * 8.0 - 4.0);
            if (uniform() < 0.05) g[i] = odd[(int)(uniform() * 8)];
            if (uniform() < 0.05) u[i] = odd[(int)(uniform() * 8)];
        }
        /* relu^2 * up, against the definition the plain relu2_mul implements */
        memcpy(a, g, sizeof a);
        bn__model_relu2_mul_avx512(a, u, n);
        for (int64_t i = 0; i < n; i++) {
            const float v = g[i] > 0.0f ? g[i] : 0.0f;
            b[i] = (v * v) * u[i];
        }
        memcpy(b + n, g + n, PAD * sizeof *b);
        assert_same_floats(a, b, n + PAD);
        /* the residual add */
        memcpy(a, g, sizeof a);
        bn__model_add_avx512(a, u, n);
        for (int64_t i = 0; i < n; i++) b[i] = g[i] + u[i];
        memcpy(b + n, g + n, PAD * sizeof *b);
        assert_same_floats(a, b, n + PAD);
    }
}

#else
static void test_not_x86(void **state)
{
    (void)state;
    print_message("SKIP: the AVX-512 kernels are x86's\n");
    skip();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#if defined(__x86_64__) || defined(__i386__)
        cmocka_unit_test(test_norm_quant_vs_avx2),
        cmocka_unit_test(test_norm_quant_vs_plain),
        cmocka_unit_test(test_norm_quant_page_end),
        cmocka_unit_test(test_eltwise),
#else
        cmocka_unit_test(test_not_x86),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
