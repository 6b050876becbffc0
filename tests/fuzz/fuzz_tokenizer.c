/* fuzz_tokenizer.c - libFuzzer target for the tokenizers. The first byte picks the mode:
 *   0-2  the rest is text, encoded with the gpt-2 (0), llama-spm (1) vocabulary, or gpt-2
 *        with special-token parsing (2); byte-level BPE must decode back to the same bytes;
 *   3    the rest is a GGUF file whose tokenizer.* keys build a tokenizer, which then
 *        encodes and decodes a fixed text.
 * The vocabularies come from tests/data (run from the repository root). Any input must
 * give tokens or an error with a message; never a crash, a leak or a wrong round trip. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bn_ctx *g_ctx;
static bn_tokenizer *g_tok[2];

static void setup(void)
{
    static const char *const paths[2] = {"tests/data/ggml-vocab-gpt-2.gguf",
                                         "tests/data/ggml-vocab-llama-spm.gguf"};
    bn_ctx_params p = {.n_threads = 1};
    if (bn_ctx_new(&g_ctx, &p) != BN_OK) __builtin_trap();
    for (int i = 0; i < 2; i++) {
        bn_gguf *g;
        if (bn_gguf_open(g_ctx, paths[i], &g) != BN_OK) __builtin_trap();
        if (bn_tokenizer_from_gguf(g_ctx, g, &g_tok[i]) != BN_OK) __builtin_trap();
        bn_gguf_close(g);
    }
}

static void encode_text(const bn_tokenizer *tok, const char *text, size_t len, unsigned flags,
                        int must_round_trip)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (bn_tokenizer_encode_alloc(tok, text, len, flags, &ids, &n) != BN_OK) {
        if (ids) __builtin_trap();
        return;
    }
    int32_t nv = bn_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) __builtin_trap();
    char *back = NULL;
    size_t blen = 0;
    if (bn_tokenizer_decode_alloc(tok, ids, n, BN_DECODE_SPECIAL, &back, &blen) == BN_OK) {
        if (must_round_trip && (blen != len || memcmp(back, text, len) != 0)) __builtin_trap();
        bn_free(back);
    }
    bn_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ctx) setup();
    if (size < 1) return 0;
    int mode = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (mode == 0) encode_text(g_tok[0], text, len, 0, 1);
    if (mode == 1) encode_text(g_tok[1], text, len, 0, 0);
    if (mode == 2) encode_text(g_tok[0], text, len, BN_TOKENIZE_PARSE_SPECIAL, 0);
    if (mode == 3) {
        bn_gguf *g = NULL;
        if (bn_gguf_open_memory(g_ctx, data + 1, len, &g) != BN_OK) return 0;
        bn_tokenizer *tok = NULL;
        bn_status rc = bn_tokenizer_from_gguf(g_ctx, g, &tok);
        bn_gguf_close(g); /* the tokenizer must not keep pointers into the file */
        if (rc == BN_OK) {
            static const char sample[] = "Hello world, <|endoftext|> 123 \xe4\xbd\xa0\xe5\xa5\xbd!";
            encode_text(tok, sample, sizeof sample - 1, BN_TOKENIZE_ADD_SPECIAL, 0);
            encode_text(tok, sample, sizeof sample - 1, BN_TOKENIZE_PARSE_SPECIAL, 0);
            bn_tokenizer_free(tok);
        } else if (tok != NULL || bn_ctx_errmsg(g_ctx)[0] == '\0') {
            __builtin_trap();
        }
    }
    return 0;
}
