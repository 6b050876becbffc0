/*
 * vision_avx2.c - the float convolution's block product for AVX2 + FMA (compiled with
 * -mavx2 -mfma; chosen at run time in vision_ops.c): 4 patch rows x 16 output channels held
 * in eight registers over the whole K, one broadcast per row and two weight loads per k.
 */
#include <immintrin.h>

#include "vision_internal.h"

void bn__vision_fblock_avx2(const float *const rows[4], const float *wt16, int64_t k, float *out)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
    for (int64_t i = 0; i < k; i++) {
        const __m256 w0 = _mm256_loadu_ps(wt16 + i * 16), w1 = _mm256_loadu_ps(wt16 + i * 16 + 8);
        __m256 x = _mm256_broadcast_ss(rows[0] + i);
        a0 = _mm256_fmadd_ps(x, w0, a0);
        a1 = _mm256_fmadd_ps(x, w1, a1);
        x = _mm256_broadcast_ss(rows[1] + i);
        b0 = _mm256_fmadd_ps(x, w0, b0);
        b1 = _mm256_fmadd_ps(x, w1, b1);
        x = _mm256_broadcast_ss(rows[2] + i);
        c0 = _mm256_fmadd_ps(x, w0, c0);
        c1 = _mm256_fmadd_ps(x, w1, c1);
        x = _mm256_broadcast_ss(rows[3] + i);
        d0 = _mm256_fmadd_ps(x, w0, d0);
        d1 = _mm256_fmadd_ps(x, w1, d1);
    }
    _mm256_storeu_ps(out, a0), _mm256_storeu_ps(out + 8, a1);
    _mm256_storeu_ps(out + 16, b0), _mm256_storeu_ps(out + 24, b1);
    _mm256_storeu_ps(out + 32, c0), _mm256_storeu_ps(out + 40, c1);
    _mm256_storeu_ps(out + 48, d0), _mm256_storeu_ps(out + 56, d1);
}
