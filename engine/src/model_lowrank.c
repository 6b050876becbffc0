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
    *lr = (bn__lowrank){rank, cols, buf, buf + rank * cols, m->k->dot_f32};
    bn_status rc = factor(m, a, rank, cols, lr->a);
    if (rc == BN_OK) rc = factor(m, b, rows, rank, lr->b);
    if (rc != BN_OK)
        bn__lowrank_release(lr);
    else /* what a token reads */
        m->weight_bytes += (size_t)(rank * (cols + rows)) * sizeof *buf;
    return rc;
}

void bn__lowrank_release(bn__lowrank *lr)
{
    bn_free(lr->a);
    memset(lr, 0, sizeof *lr);
}

/* a x_t is taken in slices of the activations converted to floats on the stack, so that the
 * products run in the kernels' dot_f32 (AVX2 or NEON where there is one); a token's result
 * is the same alone or in a batch. */
#define XSLICE 512

/* z = a x_t (R values) */
static void lowrank_z(const bn__lowrank *lr, const bn_qact *x, int64_t t, float *z)
{
    const int64_t R = lr->rank, K = lr->cols;
    const int8_t *xq = x->q + t * x->kpad;
    float xf[XSLICE];
    for (int64_t j = 0; j < R; j++) z[j] = 0;
    for (int64_t k0 = 0; k0 < K; k0 += XSLICE) {
        const int64_t n = K - k0 < XSLICE ? K - k0 : XSLICE;
        for (int64_t i = 0; i < n; i++) xf[i] = (float)xq[k0 + i];
        for (int64_t j = 0; j < R; j++) z[j] += lr->dot(lr->a + j * K + k0, xf, n);
    }
    for (int64_t j = 0; j < R; j++) z[j] *= x->inv_scale[t];
}

void bn__lowrank_apply(const bn__lowrank *lr, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                       int64_t r1, bn__lowrank_z *zc)
{
    const int64_t R = lr->rank;
    float zt[BN__LOWRANK_MAX];
    for (int64_t t = 0; R && t < x->n_tok; t++) {
        float *z = zc && x->n_tok == 1 ? zc->z : zt;
        if (z == zt || !zc->ok) lowrank_z(lr, x, t, z);
        if (z != zt) zc->ok = 1;
        for (int64_t r = r0; r < r1; r++) y[t * ldy + r] += lr->dot(lr->b + r * R, z, R);
    }
}
