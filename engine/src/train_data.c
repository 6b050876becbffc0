/*
 * train_data.c - the token stream the trainer reads: the train/validation split, the
 * order of training windows, and the tokenizer bytes kept for exports.
 *
 * The first n_train tokens are for training, the rest (the last val_frac) for validation.
 * Training reads windows of T + 1 tokens (inputs and the targets shifted by one) that start
 * at shift + w * T, w = 0 .. n_windows-1. Each epoch visits every window once in an order
 * shuffled by a generator seeded with (seed, epoch) and uses its own shift in [0, T), so
 * the state of the data order is just (epoch, data_pos): a checkpoint that saves those two
 * numbers resumes the exact sequence of batches.
 */
#include <string.h>

#include "train_internal.h"

bn_status bn_trainer_set_data(bn_trainer *tr, const int32_t *tokens, size_t n)
{
    const int T = tr->hp.seq_len;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= tr->cfg.vocab_size)
            return bn_ctx_set_error(tr->ctx, BN_ERR_RANGE,
                                    "token %d at %zu is outside the vocabulary (%d)", tokens[i], i,
                                    tr->cfg.vocab_size);
    const size_t n_val = (size_t)((double)n * tr->hp.val_frac);
    const size_t n_train = n - n_val;
    if (n_train < (size_t)T + 1)
        return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID,
                                "%zu training tokens: need at least seq_len + 1 = %d", n_train,
                                T + 1);
    const uint64_t hash = bn__fnv1a64(BN__FNV_OFFSET, tokens, n * sizeof(int32_t));
    if (!tr->tokens && tr->data_hash && (hash != tr->data_hash || n != tr->n_tokens))
        return bn_ctx_set_error(tr->ctx, BN_ERR_INVALID,
                                "the data differ from the data the checkpoint was trained on "
                                "(%zu tokens, expected %zu)",
                                n, tr->n_tokens);
    int32_t *copy = bn_malloc(n * sizeof(int32_t));
    if (!copy) return bn_ctx_set_error(tr->ctx, BN_ERR_NOMEM, "out of memory (%zu tokens)", n);
    memcpy(copy, tokens, n * sizeof(int32_t));
    /* Windows with a per-epoch shift need T spare tokens; small sets go without. */
    const int64_t shifted = n_train >= 2 * (size_t)T ? (int64_t)(n_train - T) / T : 0;
    const int64_t n_windows = shifted > 0 ? shifted : (int64_t)(n_train - 1) / T;
    int64_t *perm = bn_malloc((size_t)n_windows * sizeof(int64_t));
    if (!perm) {
        bn_free(copy);
        return bn_ctx_set_error(tr->ctx, BN_ERR_NOMEM, "out of memory (%lld windows)",
                                (long long)n_windows);
    }
    bn_free(tr->tokens);
    bn_free(tr->perm);
    tr->tokens = copy;
    tr->perm = perm;
    tr->n_tokens = n;
    tr->n_train = n_train;
    tr->n_windows = n_windows;
    tr->data_hash = hash;
    tr->perm_epoch = -1;
    tr->shift = 0; /* drawn with each epoch's permutation */
    return BN_OK;
}

/* The permutation of windows and the shift of an epoch. */
static void epoch_order(bn_trainer *tr)
{
    uint64_t s = tr->hp.seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(tr->epoch + 1));
    for (int64_t i = 0; i < tr->n_windows; i++) tr->perm[i] = i;
    for (int64_t i = tr->n_windows - 1; i > 0; i--) {
        const int64_t j = (int64_t)(bn__splitmix64(&s) % (uint64_t)(i + 1));
        const int64_t t = tr->perm[i];
        tr->perm[i] = tr->perm[j];
        tr->perm[j] = t;
    }
    const int64_t T = tr->hp.seq_len;
    const int64_t draw = (int64_t)(bn__splitmix64(&s) % (uint64_t)T);
    tr->shift = (int64_t)(tr->n_train - 1) >= (tr->n_windows + 1) * T ? draw : 0;
    tr->perm_epoch = tr->epoch;
}

void bn__data_next_batch(bn_trainer *tr)
{
    const int B = tr->hp.batch, T = tr->hp.seq_len;
    for (int b = 0; b < B; b++) {
        if (tr->data_pos >= tr->n_windows) {
            tr->epoch++;
            tr->data_pos = 0;
        }
        if (tr->perm_epoch != tr->epoch) epoch_order(tr);
        const int64_t start = tr->shift + tr->perm[tr->data_pos++] * T;
        const int32_t *src = tr->tokens + start;
        memcpy(tr->inputs + (int64_t)b * T, src, (size_t)T * sizeof(int32_t));
        memcpy(tr->targets + (int64_t)b * T, src + 1, (size_t)T * sizeof(int32_t));
    }
}

int64_t bn__data_n_val_windows(const bn_trainer *tr)
{
    const size_t n_val = tr->n_tokens - tr->n_train;
    return n_val > 0 ? (int64_t)(n_val - 1) / tr->hp.seq_len : 0;
}

const int32_t *bn__data_val_window(const bn_trainer *tr, int64_t w)
{
    return tr->tokens + tr->n_train + w * tr->hp.seq_len;
}

bn_status bn_trainer_set_tokenizer(bn_trainer *tr, const void *gguf, size_t len)
{
    unsigned char *copy = NULL;
    if (len > 0) {
        copy = bn_malloc(len);
        if (!copy) return bn_ctx_set_error(tr->ctx, BN_ERR_NOMEM, "out of memory (tokenizer)");
        memcpy(copy, gguf, len);
    }
    bn_free(tr->tok);
    tr->tok = copy;
    tr->tok_len = len;
    return BN_OK;
}

const void *bn_trainer_tokenizer(const bn_trainer *tr, size_t *len)
{
    if (len) *len = tr->tok_len;
    return tr->tok;
}
