/* model_lowrank.c - low-rank corrections of ternary matrices (`convert --lowrank r`): a layer
 * whose file has <base>.lowrank_a (rank x K) and <base>.lowrank_b (N x rank) computes
 * y = W x + b (a x), where W x is the ternary product and x the token's activations as the
 * ternary product sees them (int8 times the token's scale). The factors are the top singular
 * vectors of the float weights' residual W_float - W_ternary, so the sum is closer to the
 * float layer. Cost per token: rank * (K + N) float multiply-adds, next to the N * K of the
 * ternary product; each call computes a x again for its rows (no state between calls). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "model_internal.h"

/* One factor (rows x cols, ne {cols, rows}) as f32 into dst; F16 or F32 in the file. */
static bn_status factor(bn_model *m, const bn_gguf_tensor *t, int64_t rows, int64_t cols,
                        float *dst)
{
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: shape %lldx%lld, expected %lldx%lld",
                                t->name, (long long)t->ne[1], (long long)t->ne[0], (long long)rows,
                                (long long)cols);
    if (t->type == BN_TYPE_F16)
        bn_f16_to_f32_row(t->data, dst, rows * cols);
    else if (t->type == BN_TYPE_F32)
        memcpy(dst, t->data, (size_t)(rows * cols) * sizeof *dst);
    else
        return bn_ctx_set_error(m->ctx, BN_ERR_UNSUPPORTED, "%s: type %s (f16 or f32 expected)",
                                t->name, bn_type_name(t->type));
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(dst[i]))
            return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: element %lld is not finite",
                                    t->name, (long long)i);
    return BN_OK;
}

bn_status bn__lowrank_load(bn_model *m, const char *base, int64_t rows, int64_t cols,
                           bn__lowrank *lr)
{
    char na[96], nb[96];
    snprintf(na, sizeof na, "%s.lowrank_a", base);
    snprintf(nb, sizeof nb, "%s.lowrank_b", base);
    const bn_gguf_tensor *a = bn_gguf_find_tensor(m->g, na), *b = bn_gguf_find_tensor(m->g, nb);
    memset(lr, 0, sizeof *lr);
    if (!a && !b) return BN_OK;
    if (!a || !b)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s without %s", a ? na : nb, a ? nb : na);
    const int64_t rank = a->ne[1];
    const int64_t most = rows < cols ? rows : cols;
    if (rank < 1 || rank > BN__LOWRANK_MAX || rank > most)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: rank %lld (1 .. %lld allowed)", na,
                                (long long)rank,
                                (long long)(most < BN__LOWRANK_MAX ? most : BN__LOWRANK_MAX));
    float *buf = bn_malloc((size_t)(rank * (cols + rows)) * sizeof *buf);
    if (!buf) return bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "%s: out of memory", na);
    *lr = (bn__lowrank){rank, cols, buf, buf + rank * cols};
    bn_status rc = factor(m, a, rank, cols, lr->a);
    if (rc == BN_OK) rc = factor(m, b, rows, rank, lr->b);
    if (rc != BN_OK) bn__lowrank_release(lr);
    return rc;
}

void bn__lowrank_release(bn__lowrank *lr)
{
    bn_free(lr->a);
    memset(lr, 0, sizeof *lr);
}

/* sum a[k] * b[k] in eight interleaved sums (which the compiler keeps in vector lanes), the
 * same order on every path, so a token's result does not depend on its batch. */
static float dot8_i8(const float *a, const int8_t *b, int64_t n)
{
    float acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int i = 0; i < 8; i++) acc[i] += a[k + i] * (float)b[k + i];
    for (; k < n; k++) acc[k % 8] += a[k] * (float)b[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot8(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int i = 0; i < 8; i++) acc[i] += a[k + i] * b[k + i];
    for (; k < n; k++) acc[k % 8] += a[k] * b[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void bn__lowrank_apply(const bn__lowrank *lr, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                       int64_t r1)
{
    const int64_t R = lr->rank, K = lr->cols;
    float z[BN__LOWRANK_MAX];
    for (int64_t t = 0; R && t < x->n_tok; t++) {
        const int8_t *xq = x->q + t * x->kpad;
        for (int64_t j = 0; j < R; j++) z[j] = dot8_i8(lr->a + j * K, xq, K) * x->inv_scale[t];
        for (int64_t r = r0; r < r1; r++) y[t * ldy + r] += dot8(lr->b + r * R, z, R);
    }
}
