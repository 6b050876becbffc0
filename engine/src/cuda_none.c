/* cuda_none.c - bitnet/cuda.h in a build without the CUDA backend (make without CUDA=1):
 * every call says so. `make CUDA=1` replaces this file with engine/cuda/. */
#include <stdio.h>
#include <string.h>

#include "bitnet/cuda.h"

#define NOT_BUILT "CUDA: not built (make CUDA=1 builds the backend with nvcc)"

int bn_cuda_built(void)
{
    return 0;
}

bn_status bn_cuda_devices(bn_cuda_device *out, int max, int *n, char *why, size_t whysz)
{
    (void)out, (void)max;
    *n = 0;
    if (whysz) snprintf(why, whysz, "%s", NOT_BUILT);
    return BN_ERR_UNSUPPORTED;
}

void bn_cuda_params_init(bn_cuda_params *p)
{
    memset(p, 0, sizeof *p);
}

bn_status bn_cuda_model_new(bn_model *m, const bn_cuda_params *p, bn_cuda_model **out)
{
    (void)p;
    *out = NULL;
    return bn_ctx_set_error(bn_model_ctx(m), BN_ERR_UNSUPPORTED, "%s", NOT_BUILT);
}

void bn_cuda_model_free(bn_cuda_model *g)
{
    (void)g;
}

bn_status bn_cuda_eval(bn_cuda_model *g, const int32_t *tokens, int64_t n, int64_t pos,
                       int64_t n_logits, float *logits)
{
    (void)g, (void)tokens, (void)n, (void)pos, (void)n_logits, (void)logits;
    return BN_ERR_UNSUPPORTED;
}

int64_t bn_cuda_pos(const bn_cuda_model *g)
{
    (void)g;
    return 0;
}

int64_t bn_cuda_n_ctx(const bn_cuda_model *g, int *n_shrinks)
{
    (void)g;
    if (n_shrinks) *n_shrinks = 0;
    return 0;
}

void bn_cuda_pool_stats(const bn_cuda_model *g, bn_gpu_pool_stats *s)
{
    (void)g;
    memset(s, 0, sizeof *s);
}

size_t bn_cuda_weight_bytes(const bn_cuda_model *g)
{
    (void)g;
    return 0;
}

bn_status bn_cuda_bench_gemv(bn_ctx *ctx, int device, int64_t rows, int64_t cols, int iters,
                             size_t copy_bytes, bn_cuda_gemv_bench *out)
{
    (void)device, (void)rows, (void)cols, (void)iters, (void)copy_bytes;
    memset(out, 0, sizeof *out);
    return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "%s", NOT_BUILT);
}

int bn_cuda_n_seq(const bn_cuda_model *g)
{
    (void)g;
    return 0;
}

int64_t bn_cuda_first_layer(const bn_cuda_model *g)
{
    (void)g;
    return 0;
}

int bn_cuda_has_head(const bn_cuda_model *g)
{
    (void)g;
    return 0;
}

bn_gpu_pool *bn_cuda_pool(bn_cuda_model *g)
{
    (void)g;
    return NULL;
}

bn_status bn_cuda_seq_new(bn_cuda_model *g, int64_t n_ctx, bn_cuda_seq **out)
{
    (void)g, (void)n_ctx;
    *out = NULL;
    return BN_ERR_UNSUPPORTED;
}

void bn_cuda_seq_free(bn_cuda_seq *s)
{
    (void)s;
}

bn_status bn_cuda_seq_forward(bn_cuda_seq *s, float *x, int64_t T, int64_t pos, int64_t n_logits,
                              float *logits)
{
    (void)s, (void)x, (void)T, (void)pos, (void)n_logits, (void)logits;
    return BN_ERR_UNSUPPORTED;
}

bn_status bn_cuda_seq_take(bn_cuda_seq *s, int64_t n_min)
{
    (void)s, (void)n_min;
    return BN_ERR_UNSUPPORTED;
}

int64_t bn_cuda_seq_pos(const bn_cuda_seq *s)
{
    (void)s;
    return 0;
}

int64_t bn_cuda_seq_n_ctx(const bn_cuda_seq *s)
{
    (void)s;
    return 0;
}

int bn_cuda_seq_resident(const bn_cuda_seq *s)
{
    (void)s;
    return 0;
}

size_t bn_cuda_seq_evict(bn_cuda_seq *s)
{
    (void)s;
    return 0;
}
