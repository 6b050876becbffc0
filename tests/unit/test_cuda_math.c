/* test_cuda_math.c - the CUDA kernels' arithmetic (engine/cuda/cuda_w2a8.h) run on the host:
 * the W2A8 product as a warp computes it (lane mapping, dp4a per 2-bit plane, the code
 * offset, the xor-shuffle reduction) equals the reference kernel's output bit for bit on
 * odd shapes; the activation quantizer and the LM head's Q8_0 quantizer give the CPU
 * engine's bytes and scales. Needs no GPU and no nvcc: the GPU runs this very code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/cuda/cuda_w2a8.h"
#include "bitnet/kernels.h"
#include "bitnet/quant.h"
#include "bitnet/types.h"

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void check_shape(int64_t N, int64_t K, int64_t T, uint64_t *seed)
{
    int8_t *q = malloc((size_t)(N * K));
    float *xf = malloc((size_t)(T * K) * sizeof *xf), *scales = malloc((size_t)N * sizeof *scales);
    float *ref = malloc((size_t)(T * N) * sizeof *ref);
    assert_true(q && xf && scales && ref);
    for (int64_t i = 0; i < N * K; i++) q[i] = (int8_t)((int)(rnd(seed) % 3) - 1);
    for (int64_t i = 0; i < T * K; i++) xf[i] = (float)((int)(rnd(seed) % 20001) - 10000) / 977.0f;
    for (int64_t r = 0; r < N; r++) scales[r] = 0.25f + (float)(rnd(seed) % 1000) / 1000.0f;
    bn_tmat w;
    bn_qact x;
    assert_int_equal(bn_tmat_from_ternary(&w, q, scales, 0.0f, N, K), BN_OK);
    assert_int_equal(bn_qact_init(&x, T, K), BN_OK);
    bn_qact_quantize(&x, xf, T);
    bn_kernels_ref()->tgemm(&w, &x, ref, N, 0, N);
    for (int64_t t = 0; t < T; t++) {
        int32_t xsum = 0;
        for (int64_t k = 0; k < x.kpad; k++) xsum += x.q[t * x.kpad + k];
        assert_int_equal(xsum, x.sum[t]);
        for (int64_t g = 0; g < w.rows_pad / 4; g++) {
            int32_t dot[4];
            bn_cu_warp_group_host(w.codes + g * w.kpad, x.q + t * x.kpad, w.kpad, dot);
            for (int i = 0; i < 4 && g * 4 + i < N; i++) {
                const int64_t r = g * 4 + i;
                const float y = bn_cu_tmat_out(dot[i], xsum, w.scales[r], x.inv_scale[t]);
                if (memcmp(&y, &ref[t * N + r], sizeof y))
                    fail_msg("N=%lld K=%lld token %lld row %lld: %.9g, reference %.9g",
                             (long long)N, (long long)K, (long long)t, (long long)r, y,
                             ref[t * N + r]);
            }
        }
    }
    bn_tmat_release(&w);
    bn_qact_release(&x);
    free(q), free(xf), free(scales), free(ref);
}

static void test_w2a8_warp_equals_reference(void **state)
{
    (void)state;
    uint64_t seed = 7;
    /* K: under one block, one block, a chunk's worth, past it with a tail; N: partial groups */
    static const int64_t shapes[][3] = {{1, 1, 1},    {3, 100, 2},  {4, 128, 1}, {5, 512, 3},
                                        {13, 700, 2}, {8, 2560, 1}, {7, 640, 4}, {17, 1000, 1},
                                        {4, 6912, 1}, {9, 129, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_shape(shapes[i][0], shapes[i][1], shapes[i][2], &seed);
}

/* The lane map covers each chunk's 512 bytes exactly once, 4 blocks of 4 rows. */
static void test_lane_map(void **state)
{
    (void)state;
    int seen[BN_CU_CHUNK / 16] = {0};
    for (int lane = 0; lane < 32; lane++) {
        const bn_cu_lane p = bn_cu_lane_at(3, lane);
        assert_int_equal(p.code_off / 16 - 3 * 32, lane);
        seen[lane]++;
        /* row r's block b lives at (4 b + r) * 32 in the group (kernels.h) */
        assert_int_equal(p.code_off, (4 * p.b + p.row) * 32 + (lane % 2) * 16);
        assert_int_equal(p.x_off, p.b * 128 + (lane % 2) * 16);
    }
    for (int i = 0; i < 32; i++) assert_int_equal(seen[i], 1);
}

static void test_quantizers_match_cpu(void **state)
{
    (void)state;
    enum { N = 4096 };
    static float x[N];
    static int8_t q[N];
    uint64_t seed = 11;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < N; i++) {
            const uint32_t r = rnd(&seed);
            /* halves (ties), wide and tiny values, and in one round non-finite ones */
            x[i] = r % 7 == 0
                           ? (float)((int)(r % 255) - 127) * 0.5f
                           : (float)((int)(r % 200001) - 100000) * powf(10.0f, (float)(round - 4));
        }
        if (round == 5) x[3] = INFINITY, x[9] = NAN, x[100] = -INFINITY;
        const float s = bn_quantize_act_row(x, N, q);
        float amax = 0.0f;
        for (int i = 0; i < N; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float gs = bn_cu_act_scale(amax);
        assert_memory_equal(&gs, &s, sizeof s);
        for (int i = 0; i < N; i++)
            if (bn_cu_quant_act(x[i], gs) != q[i])
                fail_msg("round %d value %d (%.9g): %d, CPU %d", round, i, x[i],
                         bn_cu_quant_act(x[i], gs), q[i]);
        if (round == 5) continue;
        /* the LM head's input: Q8_0 blocks */
        bn_block_q8_0 blk[N / BN_QK8_0];
        bn_quantize_row_q8_0(x, blk, N);
        for (int b = 0; b < N / BN_QK8_0; b++) {
            float bm = 0.0f;
            for (int j = 0; j < BN_QK8_0; j++)
                bm = fabsf(x[b * 32 + j]) > bm ? fabsf(x[b * 32 + j]) : bm;
            const float d = bm / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            assert_int_equal(bn_f32_to_f16(d), blk[b].d);
            for (int j = 0; j < BN_QK8_0; j++)
                assert_int_equal(bn_cu_q8_0_value(x[b * 32 + j], id), blk[b].qs[j]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_lane_map),
            cmocka_unit_test(test_w2a8_warp_equals_reference),
            cmocka_unit_test(test_quantizers_match_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
