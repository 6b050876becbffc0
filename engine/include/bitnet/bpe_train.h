/*
 * bitnet/bpe_train.h - training a byte-level BPE tokenizer (GPT-2 style) and encoding text
 * with it, for the trainer's data; stored as a vocabulary-only GGUF in the standard "gpt2"
 * layout that bitnet/tokenizer.h and llama.cpp-family tools read.
 *
 * Usage:
 *
 *     const char *texts[] = {corpus};
 *     size_t lens[] = {corpus_len};
 *     bn_bpe_params p;
 *     bn_bpe_params_default(&p);
 *     p.vocab_size = 2048;
 *     bn_bpe *bpe;
 *     if (bn_bpe_train(ctx, texts, lens, 1, &p, &bpe) != BN_OK) { ... bn_ctx_errmsg(ctx) ... }
 *     bn_bpe_write_gguf(ctx, bpe, "tok.gguf");
 *     int32_t *ids; size_t n;
 *     bn_bpe_encode(bpe, text, len, 1, &ids, &n);      // 1: "<|endoftext|>" in text is EOS
 *     char *back; bn_bpe_decode(bpe, ids, n, &back, NULL);   // == text
 *     bn_free(ids); bn_free(back); bn_bpe_free(bpe);
 *
 * The algorithm. Text is cut at special tokens, then split into words by the GPT-2
 * pre-tokenizer regex ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 * PCRE2 with Unicode properties; bytes that are not valid UTF-8 become words of their own).
 * Every word starts as its bytes (token ids 0..255 are the 256 bytes); each round merges the
 * most frequent adjacent pair over all words (ties: the smallest left id, then the smallest
 * right id), which adds one token, until the vocabulary (with the special token) has
 * vocab_size entries or no pair occurs min_frequency times. A merge whose bytes already form
 * a token reuses it. So the result depends only on the texts and the parameters.
 * Encoding applies the merges by rank to each word, as llama.cpp's BPE does.
 *
 * The GGUF: tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "gpt-2" (llama.cpp's name for
 * this regex), tokens in the GPT-2 byte-to-unicode map, token_type (1 normal, 3 control),
 * merges "left right", bos = eos = "<|endoftext|>", add_bos_token true (a prompt then starts
 * as a training document does: after the separator).
 *
 * Ownership: bn_bpe copies what it needs; buffers from encode/decode belong to the caller
 * (bn_free). A built bn_bpe is read-only: threads may encode with it at once.
 */
#ifndef BITNET_BPE_TRAIN_H
#define BITNET_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_BPE_EOS_TEXT  "<|endoftext|>"
#define BN_BPE_MAX_VOCAB (1 << 20)

typedef struct bn_bpe_params {
    int32_t vocab_size;    /* 257 .. BN_BPE_MAX_VOCAB, including the special token */
    int64_t min_frequency; /* stop merging below this pair count (>= 1; default 2) */
} bn_bpe_params;

void bn_bpe_params_default(bn_bpe_params *p); /* vocab 2048, min_frequency 2 */

typedef struct bn_bpe bn_bpe;

bn_status bn_bpe_train(bn_ctx *ctx, const char *const *texts, const size_t *lens, int n_texts,
                       const bn_bpe_params *p, bn_bpe **out);
/* A byte-level BPE vocabulary from a "gpt2" GGUF (ours or e.g. GPT-2's). */
bn_status bn_bpe_from_gguf(bn_ctx *ctx, const bn_gguf *g, bn_bpe **out);
void bn_bpe_free(bn_bpe *bpe); /* NULL is fine */

int32_t bn_bpe_n_vocab(const bn_bpe *bpe);
int32_t bn_bpe_n_merges(const bn_bpe *bpe);
int32_t bn_bpe_eos(const bn_bpe *bpe); /* "<|endoftext|>", or -1 */
/* The bytes a token stands for (special tokens: their text); NULL when out of range. */
const char *bn_bpe_token_bytes(const bn_bpe *bpe, int32_t id, size_t *len);
/* Merge rank r as token ids (BN_ERR_RANGE when out of range). */
bn_status bn_bpe_merge(const bn_bpe *bpe, int32_t r, int32_t *left, int32_t *right,
                       int32_t *result);

/* Encodes len bytes; special tokens written in the text become their ids when
 * parse_special. *ids (bn_free) gets *n ids. */
bn_status bn_bpe_encode(const bn_bpe *bpe, const char *text, size_t len, int parse_special,
                        int32_t **ids, size_t *n);
/* Concatenates the tokens' bytes into a NUL-terminated buffer (bn_free); len may be NULL. */
bn_status bn_bpe_decode(const bn_bpe *bpe, const int32_t *ids, size_t n, char **out, size_t *len);

bn_status bn_bpe_write_gguf(bn_ctx *ctx, const bn_bpe *bpe, const char *path);
/* The same keys on a writer (to combine with other metadata). */
bn_status bn_bpe_set_gguf_keys(const bn_bpe *bpe, bn_gguf_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_BPE_TRAIN_H */
