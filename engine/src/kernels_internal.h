/*
 * kernels_internal.h - what the kernel variants share: the per-ISA tables, the
 * reference building blocks, and the one float formula every variant applies.
 *
 * Each ISA's file defines one `const bn_kernels bn__kernels_<isa>` and nothing else
 * outside; kernels.c picks among them at run time.
 */
#ifndef BITNET_KERNELS_INTERNAL_H
#define BITNET_KERNELS_INTERNAL_H

#include <stdint.h>

#include "bitnet/kernels.h"

/* Largest K the integer paths accept: |sum_k c * x| <= 256 * K must fit an int32
 * (c in 0..2, |x| <= 128), with room to spare. */
#define BN__TMAT_MAX_COLS ((int64_t)1 << 22)

extern const bn_kernels bn__kernels_ref;
/* The reference LM-head block products (quant_head.c), which the NEON table shares. */
float bn__dot_q6h_q8_ref(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n);
float bn__dot_q4h_q8_ref(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n);
#if defined(__x86_64__) || defined(__i386__)
#define BN__HAVE_X86 1
extern const bn_kernels bn__kernels_avx2;
extern const bn_kernels bn__kernels_avx512;
/* The AVX2 float products, which the AVX-512 table shares. */
float bn__dot_f32_avx2(const float *a, const float *b, int64_t n);
float bn__dot_f16_f32_avx2(const uint16_t *a, const float *b, int64_t n);
float bn__dot_q8_0_avx2(const bn_block_q8_0 *a, const bn_block_q8_0 *b, int64_t n);
float bn__dot_q6h_q8_avx2(const bn_block_q6h *a, const int8_t *xq, const float *xd, int64_t n);
float bn__dot_q4h_q8_avx2(const bn_block_q4h *a, const int8_t *xq, const float *xd, int64_t n);
#endif
#if defined(__aarch64__)
#define BN__HAVE_NEON 1
extern const bn_kernels bn__kernels_neon;
#endif

/* Bytes from one block of a row to the next (the group's four rows interleave). */
#define BN__TMAT_BSTRIDE (32 * BN_TMAT_RGROUP)

/* The 32 code bytes of block b of row r (see the layout in kernels.h). */
static inline uint8_t *bn__tmat_block(const bn_tmat *w, int64_t r, int64_t b)
{
    return w->codes + (r / BN_TMAT_RGROUP) * BN_TMAT_RGROUP * w->row_bytes +
           (b * BN_TMAT_RGROUP + r % BN_TMAT_RGROUP) * 32;
}

/* The output formula of kernels.h, in exactly this order of float operations, so that
 * every variant's y is bit for bit the reference's. SIMD variants compute
 * cvt(acc) * (scale_w * inv_scale_x) lane-wise, which rounds identically. */
static inline float bn__tmat_out(int32_t acc, float scale_w, float inv_scale_x)
{
    return (float)acc * (scale_w * inv_scale_x);
}

/* Reference building blocks, usable by variants for odd leftovers. */
void bn__tgemm_i32_ref(const bn_tmat *w, const bn_qact *x, int32_t *acc, int64_t r0, int64_t r1);
void bn__tgemm_ref(const bn_tmat *w, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                   int64_t r1);

#endif /* BITNET_KERNELS_INTERNAL_H */
