/* fuzz_spm.c - libFuzzer target for the SentencePiece model reader: any bytes give either a
 * model whose pieces can be walked and, when it is a BPE model the llama tokenizer accepts,
 * a tokenizer that encodes and decodes a fixed text, or an error with a message; never a
 * crash or a leak. `make test` replays tests/fuzz/corpus/spm. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/spm_model.h"
#include "bitnet/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use(bn_ctx *ctx, const bn_spm_model *m)
{
    const bn_spm_info *in = bn_spm_model_info(m);
    const char *const *pieces = bn_spm_model_pieces(m);
    volatile size_t s = strlen(in->normalizer);
    for (size_t i = 0; i < in->n_pieces; i++) {
        s += strlen(pieces[i]) + (size_t)bn_spm_model_types(m)[i];
        if (bn_spm_model_scores(m)[i] != bn_spm_model_scores(m)[i]) __builtin_trap(); /* NaN */
    }
    (void)s;
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    bn_tokenizer *tok = NULL;
    if (bn_spm_model_vocab(ctx, m, &v) != BN_OK || bn_tokenizer_from_vocab(ctx, &v, &tok) != BN_OK)
        return;
    static const char text[] = "Hello  world\n\xe6\x97\xa5\xf0\x9f\xa6\x99 <s>ab\x01";
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    if (bn_tokenizer_encode_alloc(tok, text, sizeof text - 1, BN_TOKENIZE_PARSE_SPECIAL, &ids,
                                  &n) == BN_OK)
        bn_tokenizer_decode_alloc(tok, ids, n, 0, &back, NULL);
    bn_free(back);
    bn_free(ids);
    bn_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    bn_spm_model *m = NULL;
    if (bn_spm_model_open_memory(ctx, data, size, &m) == BN_OK) {
        use(ctx, m);
        bn_spm_model_close(m);
    } else if (m != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
