/* model_qlin.c - linear layers kept at 8 or 4 bits in a mixed-precision model (`convert
 * --mixed K`): the file stores the K layers most sensitive to ternarization as ggml Q8_0 or
 * Q4_0 rows instead of ternary codes. Such a layer reads the same int8 activations as the
 * ternary ones (one scale per token), so the block products are integer sums:
 *
 *     y[t][r] = inv_scale_t * sum over blocks b of d[r][b] * (sum_j w[r][32 b + j] q_t[32 b + j])
 *
 * Q8_0 rows go through the kernel table's dot_q8_0 against the activation cut into Q8_0
 * blocks whose scale is 1 (exact in f16); Q4_0 rows through a plain C product here. A token's
 * result does not depend on the other tokens of its batch. */
#include <stdio.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "model_internal.h"

/* Blocks of the activation converted at a time, on the stack (64 x 34 bytes). */
#define QSLICE 64

static float dot_q4_0(const bn_block_q4_0 *w, const bn_block_q8_0 *x, int64_t nb)
{
    float s = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < BN_QK4_0 / 2; j++)
            sumi += ((w[b].qs[j] & 15) - 8) * x[b].qs[j] +
                    ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        s += (float)sumi * bn_f16_to_f32(w[b].d);
    }
    return s;
}

void bn__qlin_rows(const bn__qlin *ql, const bn_qact *x, float *y, int64_t ldy, int64_t r0,
                   int64_t r1)
{
    const int64_t nb = ql->cols / BN_QK8_0;
    const size_t blk = ql->type == BN_TYPE_Q8_0 ? sizeof(bn_block_q8_0) : sizeof(bn_block_q4_0);
    bn_block_q8_0 xb[QSLICE];
    for (int64_t t = 0; t < x->n_tok; t++) {
        const int8_t *xq = x->q + t * x->kpad;
        float *yt = y + t * ldy;
        for (int64_t r = r0; r < r1; r++) yt[r] = 0.0f;
        for (int64_t b0 = 0; b0 < nb; b0 += QSLICE) {
            const int64_t n = nb - b0 < QSLICE ? nb - b0 : QSLICE;
            for (int64_t i = 0; i < n; i++) {
                xb[i].d = 0x3c00; /* 1.0 */
                memcpy(xb[i].qs, xq + (b0 + i) * BN_QK8_0, BN_QK8_0);
            }
            for (int64_t r = r0; r < r1; r++) {
                const uint8_t *row = ql->data + (size_t)r * ql->row_bytes + (size_t)b0 * blk;
                yt[r] += ql->type == BN_TYPE_Q8_0
                                 ? ql->dot_q8_0((const bn_block_q8_0 *)row, xb, n * BN_QK8_0)
                                 : dot_q4_0((const bn_block_q4_0 *)row, xb, n);
            }
        }
        for (int64_t r = r0; r < r1; r++) yt[r] *= x->inv_scale[t];
    }
}

/* A tensor named base + suffix that must not be there beside an 8/4-bit layer. */
static bn_status refuse_beside(bn_model *m, const char *base, const char *suffix, int type,
                               const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    if (!bn_gguf_find_tensor(m->g, name)) return BN_OK;
    return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                            "%s: %s of a %s layer (only ternary layers take one)", name, what,
                            bn_type_name(type));
}

bn_status bn__qlin_load(bn_model *m, const char *base, int64_t rows, int64_t cols, bn__qlin *ql)
{
    char name[96];
    snprintf(name, sizeof name, "%s.weight", base);
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, name);
    memset(ql, 0, sizeof *ql);
    if (!t || (t->type != BN_TYPE_Q8_0 && t->type != BN_TYPE_Q4_0)) return BN_OK;
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: shape %lldx%lld, expected %lldx%lld",
                                name, (long long)t->ne[1], (long long)t->ne[0], (long long)rows,
                                (long long)cols);
    if (cols % BN_QK8_0 != 0)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                "%s: %s rows of %lld weights (not a "
                                "multiple of 32)",
                                name, bn_type_name(t->type), (long long)cols);
    bn_status rc = refuse_beside(m, base, ".lowrank_a", t->type, "a low-rank correction");
    if (rc == BN_OK) rc = refuse_beside(m, base, ".lowrank_b", t->type, "a low-rank correction");
    if (rc == BN_OK) rc = refuse_beside(m, base, ".scale", t->type, "a scale tensor");
    if (rc != BN_OK) return rc;
    size_t rb;
    if (bn_type_row_bytes(t->type, cols, &rb) != BN_OK || t->size != rb * (size_t)rows)
        return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT, "%s: %zu bytes for %lldx%lld %s", name,
                                t->size, (long long)rows, (long long)cols, bn_type_name(t->type));
    const size_t blk = t->type == BN_TYPE_Q8_0 ? sizeof(bn_block_q8_0) : sizeof(bn_block_q4_0);
    for (int64_t i = 0; i < rows * (cols / BN_QK8_0); i++) { /* every block's scale finite */
        uint16_t d;
        memcpy(&d, (const uint8_t *)t->data + (size_t)i * blk, sizeof d);
        if ((d & 0x7c00) == 0x7c00)
            return bn_ctx_set_error(m->ctx, BN_ERR_FORMAT,
                                    "%s: the scale of block %lld is not finite", name,
                                    (long long)i);
    }
    *ql = (bn__qlin){t->type, rows, cols, t->data, rb, m->k->dot_q8_0};
    m->tmat_bytes += t->size;
    return BN_OK;
}
