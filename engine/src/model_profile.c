/* model_profile.c - what `bitnet profile` needs to know of a model besides the forward's
 * timers (model_forward.c): the names of the classes of work and the bytes of weights
 * each class reads per token. */
#include "model_internal.h"

const char *bn_prof_class_name(int c)
{
    static const char *const names[BN_PROF_N] = {
            [BN_PROF_QKV] = "qkv",         [BN_PROF_O] = "o",
            [BN_PROF_GATE_UP] = "gate_up", [BN_PROF_DOWN] = "down",
            [BN_PROF_ATTN] = "attention",  [BN_PROF_NORM] = "norm",
            [BN_PROF_ROPE] = "rope",       [BN_PROF_KV_STORE] = "kv_store",
            [BN_PROF_ELTWISE] = "eltwise", [BN_PROF_HEAD] = "lm_head",
            [BN_PROF_EMBED] = "embed",     [BN_PROF_SYNC] = "sync",
    };
    return c >= 0 && c < BN_PROF_N ? names[c] : NULL;
}

/* Codes and scales of w as the kernels read them, and its low-rank factors (f32). */
static size_t matrix_bytes(const bn_tmat *w, const bn__lowrank *lr)
{
    return (size_t)(w->rows_pad * w->row_bytes) + (size_t)w->rows * sizeof(float) +
           (size_t)(lr->rank * (lr->cols + w->rows)) * sizeof(float);
}

void bn_model_class_bytes(const bn_model *m, size_t bytes[BN_PROF_N])
{
    static const int cls[BN__N_LIN] = {
            [BN__WQ] = BN_PROF_QKV,     [BN__WK] = BN_PROF_QKV,        [BN__WV] = BN_PROF_QKV,
            [BN__WO] = BN_PROF_O,       [BN__WGATE] = BN_PROF_GATE_UP, [BN__WUP] = BN_PROF_GATE_UP,
            [BN__WDOWN] = BN_PROF_DOWN,
    };
    const bn_model_hparams *h = &m->hp;
    for (int c = 0; c < BN_PROF_N; c++) bytes[c] = 0;
    for (int64_t il = 0; il < h->n_layer; il++) {
        const bn__layer *L = &m->layers[il];
        for (int i = 0; i < BN__N_LIN; i++) /* ternary, or kept at 8/4 bits (w zeroed) */
            bytes[cls[i]] +=
                    matrix_bytes(&L->w[i], &L->lr[i]) + (size_t)L->ql[i].rows * L->ql[i].row_bytes;
    }
    const size_t per_layer = (size_t)(2 * h->n_embd + (h->sub_norms ? h->n_embd + h->n_ff : 0));
    bytes[BN_PROF_NORM] = per_layer * (size_t)h->n_layer * sizeof(float);
    bytes[BN_PROF_HEAD] =
            m->head_row_bytes * (size_t)h->n_vocab + (size_t)h->n_embd * sizeof(float);
    bytes[BN_PROF_EMBED] = m->embd_row_bytes;
}
