/*
 * test_vision.c - the vision ops against naive float references (ternary conv and linear via
 * im2col + every kernel variant bit-exact with the scalar reference, and the reference within
 * float rounding of a float conv of the dequantized weights and inputs), pooling,
 * activations, LayerNorm, attention, squeeze-excitation, the TQ2_0 rows, and ResNet / ViT
 * models written with bn_vision_write: loaded, run batched (GEMM == reference, a batch ==
 * its images alone), and malformed GGUFs refused with a message naming the problem.
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
#include <unistd.h>

#include "bitnet/gguf.h"
#include "bitnet/kernels.h"
#include "bitnet/quant.h"
#include "bitnet/types.h"
#include "bitnet/vision.h"

static uint64_t g_rng = 88172645463325252ULL;

static float frand(void) /* [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

static void fill(float *x, int64_t n, float amp)
{
    for (int64_t i = 0; i < n; i++) x[i] = amp * frand();
}

/* A naive direct float convolution (groups 1 or depthwise), the independent reference. */
static void naive_conv(const bn_conv_geom *g, const float *wt, const float *x, int n, int h, int w,
                       float *y)
{
    const int oh = bn_conv_out(h, g->kh, g->stride, g->pad),
              ow = bn_conv_out(w, g->kw, g->stride, g->pad);
    const int cpg = g->cin / g->groups, opg = g->cout / g->groups;
    for (int im = 0; im < n; im++)
        for (int c = 0; c < g->cout; c++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = 0;
                    for (int ci = 0; ci < cpg; ci++)
                        for (int i = 0; i < g->kh; i++)
                            for (int j = 0; j < g->kw; j++) {
                                const int iy = oy * g->stride - g->pad + i,
                                          ix = ox * g->stride - g->pad + j;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                const int cc = (c / opg) * cpg + ci;
                                acc += (double)wt[((c * cpg + ci) * g->kh + i) * g->kw + j] *
                                       x[((im * g->cin + cc) * h + iy) * w + ix];
                            }
                    y[((im * g->cout + c) * oh + oy) * ow + ox] = (float)acc;
                }
}

/* A random ternary layer: codes, scales, biases, and its effective float weights. */
typedef struct tl {
    bn_tlayer l;
    float *weff;
} tl;

static void tl_make(tl *t, const bn_conv_geom *g)
{
    const int64_t k = (int64_t)(g->cin / g->groups) * g->kh * g->kw;
    int8_t *q = malloc((size_t)(g->cout * k));
    float *sc = malloc((size_t)g->cout * 4), *b = malloc((size_t)g->cout * 4);
    t->weff = malloc((size_t)(g->cout * k) * 4);
    for (int c = 0; c < g->cout; c++) {
        sc[c] = 0.01f + 0.05f * fabsf(frand()) * (c % 3 == 2 ? -1.0f : 1.0f);
        b[c] = 0.1f * frand();
        for (int64_t j = 0; j < k; j++) {
            q[c * k + j] = (int8_t)((g_rng >> (j % 40)) % 3) - 1;
            frand();
            t->weff[c * k + j] = sc[c] * q[c * k + j];
        }
    }
    assert_int_equal(bn_tlayer_init(&t->l, g, q, sc, b), BN_OK);
    free(q);
    free(sc);
    free(b);
}

static void tl_free(tl *t)
{
    bn_tlayer_release(&t->l);
    free(t->weff);
}

/* x dequantized per image as the op sees it: q(x) * max / 127. */
static void dequant_images(const float *x, int n, int64_t per, float *xd)
{
    int8_t *q = malloc((size_t)per);
    for (int i = 0; i < n; i++) {
        const float s = bn_quantize_act_row(x + i * per, per, q);
        for (int64_t j = 0; j < per; j++) xd[i * per + j] = (float)q[j] / s;
    }
    free(q);
}

static void expect_close(const float *a, const float *b, int64_t n, float tol)
{
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i]))))
            fail_msg("element %lld: %.7g vs %.7g", (long long)i, (double)a[i], (double)b[i]);
}

/* ---- ternary conv ------------------------------------------------------------------------ */

static void test_tconv_shapes(void **state)
{
    (void)state;
    static const bn_conv_geom gs[] = {
            {3, 5, 3, 3, 1, 1, 1},  {5, 7, 3, 3, 2, 1, 1}, {4, 9, 1, 1, 1, 0, 1},
            {6, 4, 1, 1, 2, 0, 1},  {2, 3, 5, 5, 1, 2, 1}, {33, 17, 3, 3, 2, 1, 1},
            {1, 16, 7, 7, 2, 3, 1}, {8, 8, 3, 1, 1, 0, 1},
    };
    const bn_kernels *ks[8];
    const int nk = bn_kernels_list(ks, 8);
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
        const bn_conv_geom *g = &gs[gi];
        const int n = 3, h = 9 + (int)gi % 3, w = 7 + (int)gi;
        const int oh = bn_conv_out(h, g->kh, g->stride, g->pad),
                  ow = bn_conv_out(w, g->kw, g->stride, g->pad);
        const int64_t in = (int64_t)n * g->cin * h * w, out = (int64_t)n * g->cout * oh * ow;
        tl t;
        tl_make(&t, g);
        float *x = malloc(in * 4), *xd = malloc(in * 4), *yr = malloc(out * 4),
              *yg = malloc(out * 4), *yf = malloc(out * 4);
        fill(x, in, 2.0f);
        x[5] = 7.5f; /* one image with a large max */
        assert_int_equal(bn_tconv2d_ref(&t.l, x, n, h, w, yr), BN_OK);
        for (int ki = 0; ki < nk; ki++) {
            bn_vision_timing tm = {0};
            memset(yg, 0, out * 4);
            assert_int_equal(bn_tconv2d(pool, ks[ki], &t.l, x, n, h, w, yg, &tm), BN_OK);
            if (memcmp(yg, yr, out * 4))
                fail_msg("geometry %zu, kernels %s: GEMM path differs from the reference", gi,
                         ks[ki]->name);
        }
        /* The reference against a float conv of the dequantized operands. */
        dequant_images(x, n, (int64_t)g->cin * h * w, xd);
        naive_conv(g, t.weff, xd, n, h, w, yf);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < g->cout; c++)
                for (int p = 0; p < oh * ow; p++)
                    yf[(i * g->cout + c) * oh * ow + p] += t.l.bias[c];
        expect_close(yr, yf, out, 2e-5f);
        tl_free(&t);
        free(x), free(xd), free(yr), free(yg), free(yf);
    }
    bn_pool_free(pool);
}

/* An image of several quantization pieces (quantized over the pool) with a NaN in it: the
 * GEMM path equals the reference (bn_quantize_act_row) to the bit. */
static void test_tconv_large(void **state)
{
    (void)state;
    const bn_conv_geom g = {8, 6, 3, 3, 1, 1, 1};
    const int n = 2, h = 70, w = 70;
    const int64_t in = (int64_t)n * 8 * h * w, out = (int64_t)n * 6 * h * w;
    tl t;
    tl_make(&t, &g);
    float *x = malloc(in * 4), *yr = malloc(out * 4), *yg = malloc(out * 4);
    fill(x, in, 1.0f);
    x[100] = NAN;
    x[40000] = -9.0f; /* the max of image 0 sits in its last piece */
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    assert_int_equal(bn_tconv2d_ref(&t.l, x, n, h, w, yr), BN_OK);
    assert_int_equal(bn_tconv2d(pool, NULL, &t.l, x, n, h, w, yg, NULL), BN_OK);
    assert_memory_equal(yg, yr, (size_t)out * 4);
    bn_pool_free(pool);
    tl_free(&t);
    free(x), free(yr), free(yg);
}

static void test_tconv_depthwise(void **state)
{
    (void)state;
    const bn_conv_geom g = {6, 6, 3, 3, 2, 1, 6};
    const int n = 2, h = 8, w = 7, oh = 4, ow = 4;
    tl t;
    tl_make(&t, &g);
    float x[2 * 6 * 8 * 7], xd[2 * 6 * 8 * 7], y[2 * 6 * 16], yf[2 * 6 * 16];
    fill(x, sizeof x / 4, 1.0f);
    float yr[2 * 6 * 16];
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    assert_int_equal(bn_tconv2d_dw(pool, &t.l, x, n, h, w, y), BN_OK);
    assert_int_equal(bn_tconv2d_ref(&t.l, x, n, h, w, yr), BN_OK);
    assert_memory_equal(y, yr, sizeof y);
    dequant_images(x, n, 6 * 8 * 7, xd);
    naive_conv(&g, t.weff, xd, n, h, w, yf);
    for (int i = 0; i < n * 6; i++)
        for (int p = 0; p < oh * ow; p++) yf[i * 16 + p] += t.l.bias[i % 6];
    expect_close(y, yf, 2 * 6 * 16, 2e-5f);
    /* A conv that is not depthwise is refused. */
    const bn_conv_geom g1 = {6, 6, 3, 3, 1, 1, 1};
    tl t1;
    tl_make(&t1, &g1);
    assert_int_equal(bn_tconv2d_dw(pool, &t1.l, x, n, h, w, y), BN_ERR_INVALID);
    bn_pool_free(pool);
    tl_free(&t);
    tl_free(&t1);
}

static void test_im2col(void **state)
{
    (void)state;
    /* 1 channel 3x3 image 1..9, 3x3 kernel pad 1 stride 2: 2x2 rows of 9 (ld 12). */
    const bn_conv_geom g = {1, 1, 3, 3, 2, 1, 1};
    const int8_t x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int8_t rows[4 * 12];
    int32_t sum[4];
    memset(rows, 0x55, sizeof rows);
    assert_int_equal(bn_im2col_q8(NULL, &g, x, 3, 3, rows, 12, sum), BN_OK);
    const int8_t r0[12] = {0, 0, 0, 0, 1, 2, 0, 4, 5, 0, 0, 0};
    const int8_t r3[12] = {5, 6, 0, 8, 9, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(rows, r0, 12);
    assert_memory_equal(rows + 36, r3, 12);
    assert_int_equal(sum[0], 12);
    assert_int_equal(sum[3], 28);
    assert_int_equal(bn_conv_out(3, 3, 2, 1), 2);
    assert_int_equal(bn_conv_out(2, 5, 1, 0), 0);
}

static void test_tlinear(void **state)
{
    (void)state;
    const int in = 70, out = 13, T = 5;
    const bn_conv_geom g = {in, out, 1, 1, 1, 0, 1};
    tl t;
    tl_make(&t, &g);
    float x[5 * 70], xd[5 * 70], yr[5 * 13], yg[5 * 13], yf[5 * 13];
    fill(x, T * in, 3.0f);
    assert_int_equal(bn_tlinear_ref(&t.l, x, T, yr), BN_OK);
    assert_int_equal(bn_tlinear(NULL, NULL, &t.l, x, T, yg), BN_OK);
    assert_memory_equal(yg, yr, sizeof yr);
    dequant_images(x, T, in, xd); /* per token */
    bn_linear_f32(t.weff, t.l.bias, in, out, xd, T, yf);
    expect_close(yr, yf, T * out, 2e-5f);
    tl_free(&t);
}

/* ---- float ops ------------------------------------------------------------------------- */

static void test_conv_f32(void **state)
{
    (void)state;
    static const bn_conv_geom gs[] = {{3, 4, 3, 3, 1, 1, 1},
                                      {2, 5, 7, 7, 2, 3, 1},
                                      {4, 4, 3, 3, 2, 1, 4},
                                      {3, 2, 4, 4, 4, 0, 1},
                                      {3, 37, 3, 3, 1, 1, 1}};
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
        const bn_conv_geom *g = &gs[gi];
        const int n = 2, h = 12, w = 9;
        const int oh = bn_conv_out(h, g->kh, g->stride, g->pad),
                  ow = bn_conv_out(w, g->kw, g->stride, g->pad);
        const int64_t nw = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
        const int64_t out = (int64_t)n * g->cout * oh * ow;
        float *wt = malloc(nw * 4), *x = malloc(n * g->cin * h * w * 4), *y = malloc(out * 4),
              *yf = malloc(out * 4), b[40], sc[40], sh[40];
        fill(wt, nw, 0.5f);
        fill(x, n * g->cin * h * w, 1.0f);
        fill(b, 40, 1.0f);
        fill(sc, 40, 2.0f);
        fill(sh, 40, 1.0f);
        assert_int_equal(bn_conv2d_f32(pool, g, wt, b, sc, sh, x, n, h, w, y), BN_OK);
        naive_conv(g, wt, x, n, h, w, yf);
        for (int64_t i = 0; i < out; i++) {
            const int c = (int)(i / (oh * ow)) % g->cout;
            yf[i] = (yf[i] + b[c]) * sc[c] + sh[c];
        }
        expect_close(y, yf, out, 1e-5f);
        free(wt), free(x), free(y), free(yf);
    }
    bn_pool_free(pool);
}

static void test_pool(void **state)
{
    (void)state;
    const float x[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    float y[4];
    bn_maxpool2d(x, 1, 1, 4, 4, 3, 2, 1, y); /* windows clipped at the border */
    const float mx[4] = {6, 8, 14, 16};
    assert_memory_equal(y, mx, sizeof mx);
    bn_avgpool2d(x, 1, 1, 4, 4, 2, 2, 0, y);
    const float av[4] = {3.5f, 5.5f, 11.5f, 13.5f};
    assert_memory_equal(y, av, sizeof av);
    bn_avgpool2d(x, 1, 1, 4, 4, 3, 2, 1, y); /* padding counts (torch's default) */
    expect_close(y,
                 (const float[]){(1 + 2 + 5 + 6) / 9.0f, (3 + 4 + 7 + 8 + 2 + 6) / 9.0f,
                                 (5 + 6 + 9 + 10 + 13 + 14) / 9.0f, 99 / 9.0f},
                 4, 1e-6f);
    float gp[2];
    bn_global_avgpool(x, 1, 2, 8, gp);
    assert_true(gp[0] == 4.5f && gp[1] == 12.5f);
    const float neg[4] = {-3, -1, -2, -4};
    bn_maxpool2d(neg, 1, 1, 2, 2, 3, 1, 1, y); /* padding never wins */
    assert_true(y[0] == -1.0f && y[3] == -1.0f);
}

static void test_activations(void **state)
{
    (void)state;
    float x[5] = {-2.0f, -0.5f, 0.0f, 1.0f, 3.0f}, r[5], s[5], g[5];
    memcpy(r, x, sizeof x);
    memcpy(s, x, sizeof x);
    memcpy(g, x, sizeof x);
    bn_relu(r, 5);
    bn_silu(s, 5);
    bn_gelu(g, 5);
    expect_close(r, (const float[]){0, 0, 0, 1, 3}, 5, 0);
    for (int i = 0; i < 5; i++) {
        assert_true(fabsf(s[i] - x[i] / (1.0f + expf(-x[i]))) < 1e-6f);
        const double ge = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        assert_true(fabs(g[i] - ge) < 1e-6);
    }
    assert_true(fabsf(g[3] - 0.8413447f) < 1e-6f); /* torch.nn.functional.gelu(1.0) */
}

static void test_layernorm(void **state)
{
    (void)state;
    const float x[8] = {1, 2, 3, 4, -1, -1, -1, 5}, w[4] = {1, 2, 1, 1}, b[4] = {0, 0, 1, 0};
    float y[8];
    bn_layernorm(x, w, b, 2, 4, 1e-6f, y);
    const float sd = sqrtf(1.25f + 1e-6f);
    expect_close(y, (const float[]){-1.5f / sd, -1.0f / sd, 0.5f / sd + 1, 1.5f / sd}, 4, 1e-6f);
    /* row 2: mean 0.5, var 6.75 */
    assert_true(fabsf(y[7] - 4.5f / sqrtf(6.75f + 1e-6f)) < 1e-6f);
}

static void test_mhsa(void **state)
{
    (void)state;
    enum { N = 2, T = 4, D = 6, H = 2 };
    float qkv[N * T * 3 * D], out[N * T * D];
    fill(qkv, N * T * 3 * D, 1.0f);
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    assert_int_equal(bn_mhsa(pool, qkv, N, T, D, H, out), BN_OK);
    bn_pool_free(pool);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                const float *b = qkv + n * T * 18;
                double p[T], sum = 0;
                for (int u = 0; u < T; u++) {
                    double s = 0;
                    for (int i = 0; i < 3; i++)
                        s += b[t * 18 + h * 3 + i] * b[u * 18 + 6 + h * 3 + i];
                    p[u] = exp(s / sqrt(3.0));
                    sum += p[u];
                }
                for (int i = 0; i < 3; i++) {
                    double o = 0;
                    for (int u = 0; u < T; u++) o += p[u] / sum * b[u * 18 + 12 + h * 3 + i];
                    assert_true(fabs(out[(n * T + t) * D + h * 3 + i] - o) < 1e-5);
                }
            }
}

static void test_squeeze_excite(void **state)
{
    (void)state;
    /* c = 2, cr = 1: z = silu(w1 . mean + b1), s = sigmoid(w2 z + b2). */
    float x[8] = {1, 1, 1, 1, 2, 2, 2, 2};
    const float w1[2] = {0.5f, 0.25f}, b1[1] = {0.1f}, w2[2] = {1.0f, -2.0f}, b2[2] = {0, 0.5f};
    float scratch[3];
    bn_squeeze_excite(x, 1, 2, 4, w1, b1, w2, b2, 1, scratch);
    const float z = 1.1f / (1.0f + expf(-1.1f));
    const float s0 = 1.0f / (1.0f + expf(-z)), s1 = 1.0f / (1.0f + expf(-(-2.0f * z + 0.5f)));
    assert_true(fabsf(x[0] - s0) < 1e-6f && fabsf(x[7] - 2.0f * s1) < 1e-6f);
}

static void test_tq2_rows(void **state)
{
    (void)state;
    assert_int_equal(bn_vision_kpad(1), 256);
    assert_int_equal(bn_vision_kpad(256), 256);
    assert_int_equal(bn_vision_kpad(576), 768);
    assert_int_equal(bn_tq2_rows_bytes(3, 300), 3 * 2 * 66);
    assert_int_equal(bn_tq2_rows_bytes(INT64_MAX / 2, 1 << 30), 0);
    int8_t q[2 * 300], back[512];
    for (int i = 0; i < 600; i++) q[i] = (int8_t)(i % 3) - 1;
    uint8_t buf[2 * 2 * 66];
    float d[2];
    bn_tq2_rows_pack(q, 2, 300, buf);
    assert_int_equal(bn_unpack_tq2_0(buf + 132, 512, back, d), BN_OK);
    assert_memory_equal(back, q + 300, 300);
    for (int i = 300; i < 512; i++) assert_int_equal(back[i], 0);
    assert_true(d[0] == 1.0f && d[1] == 1.0f);
}

/* ---- models ---------------------------------------------------------------------------- */

static bn_vspec tiny_resnet(int bottleneck)
{
    bn_vspec s;
    memset(&s, 0, sizeof s);
    s.arch = BN_VARCH_RESNET;
    s.name = "tiny";
    s.image_size = 12;
    s.in_chans = 2;
    s.num_classes = 3;
    s.mean[0] = 0.5f, s.mean[1] = 0.25f, s.std[0] = 0.5f, s.std[1] = 2.0f;
    s.bottleneck = bottleneck;
    s.n_stages = 2;
    s.depths[0] = 1, s.depths[1] = 2;
    s.widths[0] = 4, s.widths[1] = 6;
    s.stem_k = 3, s.stem_s = 1, s.stem_pool = 1, s.bn_eps = 1e-5f;
    return s;
}

static bn_vspec tiny_vit(void)
{
    bn_vspec s;
    memset(&s, 0, sizeof s);
    s.arch = BN_VARCH_VIT;
    s.image_size = 8;
    s.in_chans = 1;
    s.num_classes = 4;
    s.std[0] = 1.0f;
    s.patch = 4, s.d = 8, s.depth = 2, s.heads = 2, s.ff = 16, s.ln_eps = 1e-6f;
    return s;
}

static bn_vspec tiny_effnet(void)
{
    bn_vspec s;
    memset(&s, 0, sizeof s);
    s.arch = BN_VARCH_EFFICIENTNET;
    s.image_size = 12;
    s.in_chans = 3;
    s.num_classes = 4;
    s.std[0] = s.std[1] = s.std[2] = 1.0f;
    s.bn_eps = 1e-5f;
    s.n_mb = 2;
    s.mb[0].expand_ratio = 1, s.mb[0].kernel = 3, s.mb[0].stride = 1;
    s.mb[0].in = 8, s.mb[0].out = 8, s.mb[0].layers = 1;
    s.mb[1].expand_ratio = 4, s.mb[1].kernel = 5, s.mb[1].stride = 2;
    s.mb[1].in = 8, s.mb[1].out = 16, s.mb[1].layers = 2;
    return s;
}

static char g_dir[64];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static bn_vmodel *write_and_load(bn_ctx *ctx, const bn_vspec *s, const char *file)
{
    char p[128];
    uint64_t seed = 7;
    path_of(p, sizeof p, file);
    assert_int_equal(bn_vision_write(ctx, s, bn_vsrc_random, &seed, p), BN_OK);
    bn_vmodel *m;
    if (bn_vmodel_load(ctx, p, &m) != BN_OK) fail_msg("%s", bn_ctx_errmsg(ctx));
    return m;
}

/* GEMM forward == reference forward bit for bit; a batch equals each image alone. */
static void check_model(bn_ctx *ctx, bn_vmodel *m)
{
    const bn_vmodel_info *mi = bn_vmodel_info_get(m);
    const int n = 3, nc = mi->num_classes;
    const int64_t per = (int64_t)mi->in_chans * mi->image_size * mi->image_size;
    float *x = malloc(n * per * 4), lg[3 * 8], lr[3 * 8], l1[8];
    fill(x, n * per, 1.5f);
    bn_vision_timing t = {0};
    assert_int_equal(bn_vmodel_forward_ex(ctx, m, x, n, lg, 0, &t), BN_OK);
    assert_int_equal(bn_vmodel_forward_ex(ctx, m, x, n, lr, 1, NULL), BN_OK);
    assert_memory_equal(lg, lr, (size_t)(n * nc) * 4);
    for (int i = 0; i < n; i++) {
        assert_int_equal(bn_vmodel_forward(ctx, m, x + i * per, 1, l1), BN_OK);
        assert_memory_equal(l1, lg + i * nc, (size_t)nc * 4);
    }
    for (int i = 0; i < n * nc; i++) assert_true(isfinite(lg[i]));
    assert_true(lg[0] != lg[nc]); /* different images, different logits */
    free(x);
}

static void test_resnet_basic(void **state)
{
    bn_ctx *ctx = *state;
    const bn_vspec s = tiny_resnet(0);
    bn_vmodel *m = write_and_load(ctx, &s, "rb.gguf");
    const bn_vmodel_info *mi = bn_vmodel_info_get(m);
    assert_string_equal(mi->arch_name, "resnet");
    assert_string_equal(mi->name, "tiny");
    assert_int_equal(mi->num_classes, 3);
    assert_true(mi->std[1] == 2.0f);
    check_model(ctx, m);
    bn_vmodel_free(m);
}

static void test_resnet_bottleneck(void **state)
{
    bn_ctx *ctx = *state;
    bn_vspec s = tiny_resnet(1);
    s.f16 = 1;
    const char *labels[3] = {"cat", "dog", "bird"};
    s.labels = labels;
    bn_vmodel *m = write_and_load(ctx, &s, "rn.gguf");
    assert_string_equal(bn_vmodel_info_get(m)->labels[2], "bird");
    check_model(ctx, m);
    bn_vmodel_free(m);
}

static void test_vit(void **state)
{
    bn_ctx *ctx = *state;
    const bn_vspec s = tiny_vit();
    bn_vmodel *m = write_and_load(ctx, &s, "vit.gguf");
    assert_string_equal(bn_vmodel_info_get(m)->arch_name, "vit");
    check_model(ctx, m);
    bn_vmodel_free(m);
}

static void test_effnet(void **state)
{
    bn_ctx *ctx = *state;
    const bn_vspec s = tiny_effnet();
    bn_vmodel *m = write_and_load(ctx, &s, "eff.gguf");
    assert_string_equal(bn_vmodel_info_get(m)->arch_name, "efficientnet");
    check_model(ctx, m);
    bn_vmodel_free(m);
    /* the stage table is checked before anything is written */
    bn_vspec bad = tiny_effnet();
    bad.mb[1].kernel = 4;
    char p[128];
    uint64_t seed = 1;
    path_of(p, sizeof p, "effbad.gguf");
    assert_int_equal(bn_vision_write(ctx, &bad, bn_vsrc_random, &seed, p), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "blocks"));
}

/* BN folding: a 1-block ResNet whose source has a known BN gives the folded scale/bias. */
static bn_status src_known_bn(void *user, bn_ctx *ctx, const char *name, int nd,
                              const int64_t *shape, float *dst)
{
    bn_status rc = bn_vsrc_random(user, ctx, name, nd, shape, dst);
    if (!strcmp(name, "layer1.0.bn1.weight")) dst[0] = -2.0f;
    if (!strcmp(name, "layer1.0.bn1.bias")) dst[0] = 0.5f;
    if (!strcmp(name, "layer1.0.bn1.running_mean")) dst[0] = 1.0f;
    if (!strcmp(name, "layer1.0.bn1.running_var")) dst[0] = 3.0f;
    if (!strcmp(name, "layer1.0.conv1.weight"))
        for (int i = 0; i < 4 * 9; i++) dst[i] = (i % 3 - 1) * 0.3f; /* absmean 0.2 */
    return rc;
}

static void test_bn_fold(void **state)
{
    bn_ctx *ctx = *state;
    bn_vspec s = tiny_resnet(0);
    s.n_stages = 1;
    s.depths[0] = 1;
    char p[128];
    uint64_t seed = 3;
    path_of(p, sizeof p, "fold.gguf");
    assert_int_equal(bn_vision_write(ctx, &s, src_known_bn, &seed, p), BN_OK);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, p, &g), BN_OK);
    float sc, b;
    memcpy(&sc, bn_gguf_find_tensor(g, "blk.0.conv1.scale")->data, 4);
    memcpy(&b, bn_gguf_find_tensor(g, "blk.0.conv1.bias")->data, 4);
    const float c = -2.0f / sqrtf(3.0f + 1e-5f);
    assert_true(fabsf(sc - 0.2f * c) < 1e-6f);
    assert_true(fabsf(b - (0.5f - 1.0f * c)) < 1e-6f);
    int8_t q[256];
    assert_int_equal(
            bn_unpack_tq2_0(bn_gguf_find_tensor(g, "blk.0.conv1.weight")->data, 256, q, NULL),
            BN_OK);
    for (int i = 0; i < 36; i++) assert_int_equal(q[i], i % 3 - 1);
    bn_gguf_close(g);
}

/* ---- malformed GGUFs ---------------------------------------------------------------- */

/* Copies the valid tiny ResNet into a writer, lets `edit` change it, writes and loads it;
 * the load must fail with a message containing want. */
typedef void (*edit_fn)(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip);

static void expect_refused(bn_ctx *ctx, edit_fn edit, const char *want)
{
    char src[128], dst[128];
    path_of(src, sizeof src, "rb.gguf");
    path_of(dst, sizeof dst, "bad.gguf");
    const bn_vspec s = tiny_resnet(0);
    uint64_t seed = 7;
    assert_int_equal(bn_vision_write(ctx, &s, bn_vsrc_random, &seed, src), BN_OK);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, src, &g), BN_OK);
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        int skip = 0;
        edit(w, g, -1 - i, &skip);
        if (!skip) assert_int_equal(bn_gguf_writer_copy_kv(w, g, i), BN_OK);
    }
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        int skip = 0;
        edit(w, g, i, &skip);
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (!skip)
            assert_int_equal(bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                                       t->data, t->size),
                             BN_OK);
    }
    edit(w, g, INT64_MAX, NULL);
    assert_int_equal(bn_gguf_writer_write(ctx, w, dst), BN_OK);
    bn_gguf_writer_free(w);
    bn_gguf_close(g);
    bn_vmodel *m = NULL;
    const bn_status rc = bn_vmodel_load(ctx, dst, &m);
    if (rc == BN_OK) fail_msg("loaded a model that should be refused (%s)", want);
    assert_null(m);
    if (!strstr(bn_ctx_errmsg(ctx), want))
        fail_msg("message '%s' does not name '%s'", bn_ctx_errmsg(ctx), want);
}

static const char *tname(const bn_gguf *g, int64_t i)
{
    return i >= 0 && i < bn_gguf_n_tensors(g) ? bn_gguf_tensor_at(g, i)->name : "";
}
static const char *kname(const bn_gguf *g, int64_t i)
{
    return i < 0 ? bn_gguf_key(g, -1 - i) : "";
}

static void e_missing(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    (void)w;
    if (skip && !strcmp(tname(g, i), "blk.1.conv2.scale")) *skip = 1;
}
static void e_shape(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (!skip || strcmp(tname(g, i), "fc.bias")) return;
    *skip = 1;
    static const float z[4];
    const int64_t ne[1] = {4};
    bn_gguf_writer_add_tensor(w, "fc.bias", BN_TYPE_F32, 1, ne, z, sizeof z);
}
static void e_type(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (!skip || strcmp(tname(g, i), "blk.0.conv1.weight")) return;
    *skip = 1;
    const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
    static uint8_t z[256 * 4 * 4];
    bn_gguf_writer_add_tensor(w, t->name, BN_TYPE_I8, 2, t->ne, z, (size_t)(t->ne[0] * t->ne[1]));
}
static void e_extra(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    (void)g;
    if (skip) return;
    (void)i;
    static const float z[2];
    const int64_t ne[1] = {2};
    bn_gguf_writer_add_tensor(w, "blk.9.conv1.bias", BN_TYPE_F32, 1, ne, z, sizeof z);
}
static void e_count(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (skip && !strcmp(kname(g, i), "resnet.block_count")) {
        *skip = 1;
        bn_gguf_writer_set_u32(w, "resnet.block_count", 4);
    }
}
static void e_arch(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (skip && !strcmp(kname(g, i), "general.architecture")) {
        *skip = 1;
        bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58");
    }
}
static void e_std(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (skip && !strcmp(kname(g, i), "resnet.image_std")) {
        *skip = 1;
        const float v[2] = {1.0f, 0.0f};
        bn_gguf_writer_set_arr(w, "resnet.image_std", BN_GGUF_F32, v, 2);
    }
}
static void e_width(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (skip && !strcmp(kname(g, i), "resnet.stage_widths")) {
        *skip = 1;
        const uint32_t v[3] = {4, 6, 8};
        bn_gguf_writer_set_arr(w, "resnet.stage_widths", BN_GGUF_U32, v, 3);
    }
}
/* A TQ2_0 weight whose block scale is not 1, or whose padding is not zero. */
static uint8_t g_bad_w[4 * 66];
static void e_blockd(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (!skip || strcmp(tname(g, i), "blk.0.conv1.weight")) return;
    *skip = 1;
    const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
    memcpy(g_bad_w, t->data, t->size);
    const uint16_t half = bn_f32_to_f16(0.5f);
    memcpy(g_bad_w + 66 + 64, &half, 2);
    bn_gguf_writer_add_tensor(w, t->name, t->type, 2, t->ne, g_bad_w, t->size);
}
static void e_pad(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (!skip || strcmp(tname(g, i), "blk.0.conv1.weight")) return;
    *skip = 1;
    const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
    memcpy(g_bad_w, t->data, t->size);
    g_bad_w[40] ^= 0x02; /* weight 40 + 96 = 136 >= K = 36: code 1 -> 3 or 2 */
    g_bad_w[40] &= (uint8_t)~0x01;
    bn_gguf_writer_add_tensor(w, t->name, t->type, 2, t->ne, g_bad_w, t->size);
}
static void e_nan(bn_gguf_writer *w, const bn_gguf *g, int64_t i, int *skip)
{
    if (!skip || strcmp(tname(g, i), "stem.bias")) return;
    *skip = 1;
    static float v[4] = {0, NAN, 0, 0};
    const int64_t ne[1] = {4};
    bn_gguf_writer_add_tensor(w, "stem.bias", BN_TYPE_F32, 1, ne, v, sizeof v);
}

static void test_malformed(void **state)
{
    bn_ctx *ctx = *state;
    expect_refused(ctx, e_missing, "tensor blk.1.conv2.scale: missing");
    expect_refused(ctx, e_shape, "tensor fc.bias: shape [4], expected [3]");
    expect_refused(ctx, e_type, "tensor blk.0.conv1.weight: type i8, expected tq2_0");
    expect_refused(ctx, e_extra, "tensor blk.9.conv1.bias: not part of a resnet model");
    expect_refused(ctx, e_count, "resnet.block_count: 4, but the stage depths add up to 3");
    expect_refused(ctx, e_arch, "is not a vision model");
    expect_refused(ctx, e_std, "resnet.image_std: element 1");
    expect_refused(ctx, e_width, "resnet.stage_widths: 3 stages, expected 2");
    expect_refused(ctx, e_blockd, "blk.0.conv1.weight: block scale 0.5");
    expect_refused(ctx, e_pad, "blk.0.conv1.weight: padding column");
    expect_refused(ctx, e_nan, "tensor stem.bias: element 1 is not finite");
}

/* Every allocation of loading and a forward pass may fail: a status, no leak, no crash. */
static void test_alloc_failures(void **state)
{
    bn_ctx *ctx = *state;
    char p[128];
    path_of(p, sizeof p, "vit.gguf");
    float x[64], lg[4];
    fill(x, 64, 1.0f);
    for (long k = 1; k < 400; k++) {
        bn_vmodel *m = NULL;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_vmodel_load(ctx, p, &m);
        if (rc == BN_OK) rc = bn_vmodel_forward(ctx, m, x, 1, lg);
        bn_alloc_fail_at(0, 0);
        bn_vmodel_free(m);
        if (rc == BN_OK) return;
        assert_true(rc == BN_ERR_NOMEM || rc == BN_ERR_IO);
    }
    fail_msg("still failing after 400 allocations");
}

static void test_write_bad_spec(void **state)
{
    bn_ctx *ctx = *state;
    char p[128];
    uint64_t seed = 1;
    path_of(p, sizeof p, "no.gguf");
    bn_vspec s = tiny_vit();
    s.heads = 3;
    assert_int_equal(bn_vision_write(ctx, &s, bn_vsrc_random, &seed, p), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "num_heads"));
    s = tiny_resnet(0);
    s.n_stages = 5;
    assert_int_equal(bn_vision_write(ctx, &s, bn_vsrc_random, &seed, p), BN_ERR_RANGE);
    assert_int_equal(access(p, F_OK), -1);
}

static int setup(void **state)
{
    bn_ctx *ctx;
    const bn_ctx_params prm = {2};
    if (bn_ctx_new(&ctx, &prm) != BN_OK) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_vision.XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    *state = ctx;
    return 0;
}

static int teardown(void **state)
{
    bn_ctx_free(*state);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_im2col),
            cmocka_unit_test(test_tconv_shapes),
            cmocka_unit_test(test_tconv_large),
            cmocka_unit_test(test_tconv_depthwise),
            cmocka_unit_test(test_tlinear),
            cmocka_unit_test(test_conv_f32),
            cmocka_unit_test(test_pool),
            cmocka_unit_test(test_activations),
            cmocka_unit_test(test_layernorm),
            cmocka_unit_test(test_mhsa),
            cmocka_unit_test(test_squeeze_excite),
            cmocka_unit_test(test_tq2_rows),
            cmocka_unit_test(test_resnet_basic),
            cmocka_unit_test(test_resnet_bottleneck),
            cmocka_unit_test(test_vit),
            cmocka_unit_test(test_effnet),
            cmocka_unit_test(test_bn_fold),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_alloc_failures),
            cmocka_unit_test(test_write_bad_spec),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
