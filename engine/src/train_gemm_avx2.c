/*
 * train_gemm_avx2.c - the GEMM micro-kernel with AVX2 + FMA (compiled with -mavx2 -mfma;
 * called only where bn_cpu_info_get() reports both). A 6 x 16 tile of C lives in twelve
 * ymm registers; each k step loads 16 floats of the B panel and broadcasts 6 of the A
 * panel. Same contract as bn__gemm_ukernel_generic.
 */
#include <immintrin.h>

#include "train_internal.h"

#if BN__GEMM_MR != 6 || BN__GEMM_NR != 16
#error "the AVX2 micro-kernel is written for 6 x 16 tiles"
#endif

void bn__gemm_ukernel_avx2(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                           int add)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
        __m256 a = _mm256_broadcast_ss(pa + 0);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(pa + 1);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(pa + 2);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(pa + 3);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(pa + 4);
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(pa + 5);
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
        pa += 6;
        pb += 16;
    }
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (int i = 0; i < 6; i++) {
        float *row = c + i * ldc;
        __m256 lo = acc[2 * i], hi = acc[2 * i + 1];
        if (add) {
            lo = _mm256_add_ps(_mm256_loadu_ps(row), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(row + 8), hi);
        }
        _mm256_storeu_ps(row, lo);
        _mm256_storeu_ps(row + 8, hi);
    }
}
