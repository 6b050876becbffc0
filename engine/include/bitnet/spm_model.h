/*
 * bitnet/spm_model.h - SentencePiece model files (tokenizer.model): the pieces with their
 * scores and types, and the trainer and normalizer settings that decide whether llama.cpp's
 * SPM tokenizer (the "llama" vocabulary of bitnet/tokenizer.h) tokenizes like SentencePiece.
 *
 * Usage:
 *
 *     bn_spm_model *m;
 *     if (bn_spm_model_open(ctx, "tokenizer.model", &m) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));      // one line naming the problem
 *         return 1;
 *     }
 *     const bn_spm_info *info = bn_spm_model_info(m);       // n_pieces, algorithm, ids, ...
 *     bn_tokenizer_vocab v;
 *     bn_tokenizer *tok;
 *     if (bn_spm_model_vocab(ctx, m, &v) == BN_OK &&        // BPE models only
 *         bn_tokenizer_from_vocab(ctx, &v, &tok) == BN_OK) {
 *         ...
 *         bn_tokenizer_free(tok);
 *     }
 *     bn_spm_model_close(m);                                // v's arrays go with it
 *
 * The file is a protobuf sentencepiece.ModelProto, decoded by libprotobuf-c with the
 * fields bitnet needs (engine/proto/sentencepiece_model.proto, compiled at build time);
 * every other field is skipped. Checked on open, each a BN_ERR_FORMAT with a message: the
 * protobuf decodes (wire types, lengths, truncation); at least one piece and at most
 * BN_TOKENIZER_MAX_VOCAB; every piece non-empty, at most BN_TOKENIZER_MAX_TOKEN_LEN bytes,
 * valid UTF-8 without NUL, with a finite score and a type from 1 to 6; a BYTE piece is
 * spelled <0xXX>; unk/bos/eos/pad ids are -1 or a piece. Files over BN_SPM_MAX_FILE bytes
 * are refused before decoding. Never a crash, whatever the bytes.
 *
 * Ownership: the model owns its arrays and strings (and those a bn_tokenizer_vocab filled by
 * bn_spm_model_vocab points to) until bn_spm_model_close. A model is read-only once open.
 */
#ifndef BITNET_SPM_MODEL_H
#define BITNET_SPM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_spm_model bn_spm_model;

#define BN_SPM_MAX_FILE ((size_t)1 << 30)

/* trainer_spec.model_type. Values are SentencePiece's. */
typedef enum bn_spm_algo {
    BN_SPM_UNIGRAM = 1, /* SentencePiece's default */
    BN_SPM_BPE = 2,
    BN_SPM_WORD = 3,
    BN_SPM_CHAR = 4,
} bn_spm_algo;

typedef struct bn_spm_info {
    size_t n_pieces;
    int algo;                               /* bn_spm_algo, or another value the file holds */
    int byte_fallback;                      /* unknown characters become <0xXX> pieces */
    int32_t unk_id, bos_id, eos_id, pad_id; /* BN_TOKEN_NONE when the file says -1 */
    int treat_whitespace_as_suffix;         /* "▁" ends pieces instead of starting them */
    /* normalizer_spec */
    const char *normalizer;       /* its name ("identity", "nmt_nfkc", ...); "" when unset */
    size_t charsmap_size;         /* bytes of its precompiled character map (0: none) */
    int add_dummy_prefix;         /* a space is put in front of the text */
    int remove_extra_whitespaces; /* leading, trailing and repeated spaces are dropped */
    int escape_whitespaces;       /* spaces become U+2581 */
} bn_spm_info;

/* Maps and decodes path. BN_ERR_IO when it cannot be read, BN_ERR_FORMAT as above,
 * BN_ERR_NOMEM. */
bn_status bn_spm_model_open(bn_ctx *ctx, const char *path, bn_spm_model **out);
/* The same from size bytes at data (copied from; data may go after the call). */
bn_status bn_spm_model_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_spm_model **out);
void bn_spm_model_close(bn_spm_model *m); /* NULL is fine */

const bn_spm_info *bn_spm_model_info(const bn_spm_model *m);
/* n_pieces entries each: the pieces (NUL-terminated UTF-8, "▁" for spaces), their scores,
 * and their types as bn_token_type (SentencePiece's numbering is the same). */
const char *const *bn_spm_model_pieces(const bn_spm_model *m);
const float *bn_spm_model_scores(const bn_spm_model *m);
const int32_t *bn_spm_model_types(const bn_spm_model *m);

/* Fills v (after bn_tokenizer_vocab_init) for a "llama" vocabulary of the pieces: scores,
 * types, the unk/bos/eos/pad ids, add_space_prefix from add_dummy_prefix; add_bos/add_eos
 * stay "default". BN_ERR_UNSUPPORTED with a message when llama.cpp's algorithm cannot
 * tokenize like the model: not BPE (unigram, word, char), whitespace as a suffix, or
 * spaces not escaped. Text normalization (a normalizer other than "identity", or
 * remove_extra_whitespaces) is not refused: the llama tokenizer does neither, so only text
 * already in normal form tokenizes the same; callers may warn about it (see info). */
bn_status bn_spm_model_vocab(bn_ctx *ctx, const bn_spm_model *m, bn_tokenizer_vocab *v);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_SPM_MODEL_H */
