/*
 * bitnet/tokenizer.h - text <-> token ids with a model's vocabulary, as llama.cpp does it.
 *
 * Usage:
 *
 *     bn_tokenizer *tok;
 *     if (bn_tokenizer_from_gguf(ctx, g, &tok) != BN_OK) {        // g: an open bn_gguf
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));              // one line naming the problem
 *         return 1;
 *     }
 *     int32_t *ids;
 *     size_t n;
 *     unsigned fl = BN_TOKENIZE_ADD_SPECIAL;                       // BOS if the model wants one
 *     if (bn_tokenizer_encode_alloc(tok, text, strlen(text), fl, &ids, &n) == BN_OK) {
 *         for (size_t i = 0; i < n; i++) {
 *             size_t len;
 *             const char *p = bn_tokenizer_piece(tok, ids[i], &len);   // bytes, not a C string
 *             printf("%d '%.*s'\n", ids[i], (int)len, p);
 *         }
 *         char *s;
 *         bn_tokenizer_decode_alloc(tok, ids, n, 0, &s, NULL);      // the whole text again
 *         bn_free(s);
 *         bn_free(ids);
 *     }
 *     bn_tokenizer_free(tok);
 *
 * Two kinds of vocabulary (tokenizer.ggml.model):
 *   "llama"  SentencePiece-style BPE by token score: spaces become U+2581, a space is put in
 *            front of the text (add_space_prefix), bytes with no token fall back to <0xXX>.
 *   "gpt2"   byte-level BPE: the text is split by the pre-tokenizer regex named by
 *            tokenizer.ggml.pre ("gpt-2", "llama-bpe", ...; PCRE2 with Unicode properties),
 *            every byte is mapped to a printable character (the GPT-2 byte map) and pairs
 *            are merged by the rank of tokenizer.ggml.merges.
 * The results match llama.cpp's tokenizer (test-tokenizer-0 vectors) token for token.
 *
 * Special tokens (token type control, user-defined, unknown) are found in the text only
 * with BN_TOKENIZE_PARSE_SPECIAL, except user-defined ones, which are always split out
 * first (as llama.cpp and Hugging Face tokenizers do).
 *
 * Ownership: the tokenizer copies everything it needs; the bn_gguf (or the arrays of a
 * bn_tokenizer_vocab) may be closed or freed right after construction. Strings returned
 * by accessors belong to the tokenizer and live until bn_tokenizer_free. Buffers returned
 * by the *_alloc functions belong to the caller, who releases them with bn_free().
 * A built tokenizer is read-only: any number of threads may encode and decode with it.
 */
#ifndef BITNET_TOKENIZER_H
#define BITNET_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_tokenizer bn_tokenizer;

#define BN_TOKEN_NONE    (-1) /* no such token */
#define BN_TOKEN_DEFAULT (-2) /* in bn_tokenizer_vocab: the model's default id */

/* Kind of vocabulary. Values are stable and only grow. */
typedef enum bn_tokenizer_kind {
    BN_TOKENIZER_SPM = 1, /* "llama" */
    BN_TOKENIZER_BPE = 2, /* "gpt2" */
} bn_tokenizer_kind;

/* tokenizer.ggml.token_type values (as in GGUF and llama.cpp). */
typedef enum bn_token_type {
    BN_TOKEN_TYPE_UNDEFINED = 0,
    BN_TOKEN_TYPE_NORMAL = 1,
    BN_TOKEN_TYPE_UNKNOWN = 2,
    BN_TOKEN_TYPE_CONTROL = 3,
    BN_TOKEN_TYPE_USER_DEFINED = 4,
    BN_TOKEN_TYPE_UNUSED = 5,
    BN_TOKEN_TYPE_BYTE = 6,
} bn_token_type;

/* Limits checked before anything is allocated. */
#define BN_TOKENIZER_MAX_VOCAB     (1 << 24)
#define BN_TOKENIZER_MAX_MERGES    (1 << 24)
#define BN_TOKENIZER_MAX_TOKEN_LEN (1 << 16)

/* ---- construction ---------------------------------------------------------------------- */

/* Reads tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id,
 * eos_token_id, eot_token_id, eom_token_id, unknown_token_id, padding_token_id,
 * add_bos_token, add_eos_token, add_space_prefix} and tokenizer.chat_template.
 * Missing required keys, wrong value types, arrays whose lengths disagree with
 * tokenizer.ggml.tokens, duplicate tokens, merges naming unknown tokens and ids out of
 * range are BN_ERR_FORMAT with a message on ctx; an unknown model or pre-tokenizer name is
 * BN_ERR_UNSUPPORTED. */
bn_status bn_tokenizer_from_gguf(bn_ctx *ctx, const bn_gguf *g, bn_tokenizer **out);

/* When the SPM space prefix (add_space_prefix) goes in front of a piece of text: always, as
 * SentencePiece's add_dummy_prefix and llama.cpp do; or as Hugging Face's Metaspace
 * pre-tokenizer does, never in front of text that already starts with a space (or U+2581),
 * and with "first" only at the start of the text, not after a special token. GGUF key
 * tokenizer.bitnet.prepend_scheme: "first" or "always" (absent: SentencePiece's). */
typedef enum bn_prepend_scheme {
    BN_PREPEND_SPM = 0,
    BN_PREPEND_FIRST = 1,
    BN_PREPEND_ALWAYS = 2,
} bn_prepend_scheme;

/* A vocabulary held in plain arrays (for tests, converters and the trainer). Start from
 * bn_tokenizer_vocab_init(), which sets every id to BN_TOKEN_DEFAULT and every flag to -1
 * ("the model's default", as llama.cpp chooses them). */
typedef struct bn_tokenizer_vocab {
    const char *model;         /* "llama" or "gpt2" (required) */
    const char *pre;           /* pre-tokenizer name; NULL: "default" */
    size_t n_tokens;           /* ids are 0 .. n_tokens-1 */
    const char *const *tokens; /* token texts */
    const size_t *token_lens;  /* byte lengths (texts may hold NUL); NULL: strlen */
    const float *scores;       /* NULL: all 0 */
    const int32_t *types;      /* bn_token_type per token; NULL: all normal */
    size_t n_merges;           /* BPE only: "left right", in rank order */
    const char *const *merges; /* NUL-terminated */
    int32_t bos_id, eos_id, eot_id, eom_id, unk_id, pad_id; /* BN_TOKEN_NONE/DEFAULT or id */
    int add_bos, add_eos, add_space_prefix;                 /* 0, 1 or -1 (default) */
    int prepend_scheme;                                     /* bn_prepend_scheme */
    const char *chat_template;                              /* NULL: none */
} bn_tokenizer_vocab;

void bn_tokenizer_vocab_init(bn_tokenizer_vocab *v);
bn_status bn_tokenizer_from_vocab(bn_ctx *ctx, const bn_tokenizer_vocab *v, bn_tokenizer **out);

void bn_tokenizer_free(bn_tokenizer *tok); /* NULL is fine */

/* ---- encoding -------------------------------------------------------------------------- */

enum {
    BN_TOKENIZE_ADD_BOS = 1u << 0,       /* put BOS first (BN_ERR_INVALID if there is none) */
    BN_TOKENIZE_ADD_EOS = 1u << 1,       /* put EOS last (BN_ERR_INVALID if there is none) */
    BN_TOKENIZE_ADD_SPECIAL = 1u << 2,   /* BOS/EOS as the vocabulary asks (add_bos_token..) */
    BN_TOKENIZE_PARSE_SPECIAL = 1u << 3, /* control tokens written in the text become tokens */
};

/* Encodes len bytes of text (any bytes; need not be NUL-terminated or valid UTF-8) into
 * at most max_ids ids. *n_ids is set to the number of ids the text needs; when that is
 * more than max_ids the first max_ids are stored and BN_ERR_RANGE is returned. */
bn_status bn_tokenizer_encode(const bn_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t *ids, size_t max_ids, size_t *n_ids);
/* The same into a buffer allocated for the caller (bn_free); *ids is NULL on failure. */
bn_status bn_tokenizer_encode_alloc(const bn_tokenizer *tok, const char *text, size_t len,
                                    unsigned flags, int32_t **ids, size_t *n_ids);

/* ---- decoding -------------------------------------------------------------------------- */

/* The bytes one token stands for: U+2581 -> space and <0xXX> -> the byte (SPM), the GPT-2
 * byte map reversed (BPE); control and unknown tokens give their text, unused ones "".
 * Not NUL-terminated in general (a piece may be a lone byte of a UTF-8 sequence); *len
 * gets the length. Returns NULL (len 0) for an id out of range. */
const char *bn_tokenizer_piece(const bn_tokenizer *tok, int32_t id, size_t *len);

enum {
    BN_DECODE_SPECIAL = 1u << 0,        /* render control/unknown tokens (default: drop) */
    BN_DECODE_REMOVE_SPECIAL = 1u << 1, /* drop a leading BOS / trailing EOS the model adds */
    BN_DECODE_KEEP_SPACE = 1u << 2,     /* keep the space an SPM vocabulary put in front */
    BN_DECODE_CLEAN_SPACES = 1u << 3,   /* " ," -> "," etc. where the vocabulary asks (BPE) */
};

/* Turns ids back into text. Unless BN_DECODE_KEEP_SPACE, the first token after an
 * optional leading BOS loses one leading space when the vocabulary adds a space prefix,
 * so decode(encode(s)) == s. Writes at most size bytes (always NUL-terminated when size >
 * 0); *needed gets the length of the whole text without the NUL. BN_ERR_RANGE when it did
 * not fit; BN_ERR_INVALID for an id out of range. */
bn_status bn_tokenizer_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char *buf, size_t size, size_t *needed);
/* The same into a NUL-terminated buffer allocated for the caller (bn_free). len may be NULL. */
bn_status bn_tokenizer_decode_alloc(const bn_tokenizer *tok, const int32_t *ids, size_t n,
                                    unsigned flags, char **out, size_t *len);

/* ---- the vocabulary -------------------------------------------------------------------- */

bn_tokenizer_kind bn_tokenizer_kind_of(const bn_tokenizer *tok);
const char *bn_tokenizer_model(const bn_tokenizer *tok); /* "llama" / "gpt2" */
const char *bn_tokenizer_pre(const bn_tokenizer *tok);   /* "default", "gpt-2", ... */
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok);
int32_t bn_tokenizer_n_merges(const bn_tokenizer *tok);

/* The token's text as stored in the vocabulary (e.g. "\xe2\x96\x81Hello", "Ġworld"); NULL
 * for an id out of range. NUL-terminated; len (may be NULL) gets the exact length. */
const char *bn_tokenizer_token_text(const bn_tokenizer *tok, int32_t id, size_t *len);
float bn_tokenizer_token_score(const bn_tokenizer *tok, int32_t id);
bn_token_type bn_tokenizer_token_type(const bn_tokenizer *tok, int32_t id);
/* The id of the token whose text is exactly text[0..len), or BN_TOKEN_NONE. */
int32_t bn_tokenizer_find(const bn_tokenizer *tok, const char *text, size_t len);

/* Special ids (BN_TOKEN_NONE when absent). eot comes from tokenizer.ggml.eot_token_id or a
 * token "<|eot_id|>" (then "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"). */
int32_t bn_tokenizer_bos(const bn_tokenizer *tok);
int32_t bn_tokenizer_eos(const bn_tokenizer *tok);
int32_t bn_tokenizer_eot(const bn_tokenizer *tok);
int32_t bn_tokenizer_unk(const bn_tokenizer *tok);
int32_t bn_tokenizer_pad(const bn_tokenizer *tok);
int bn_tokenizer_add_bos(const bn_tokenizer *tok); /* 1 when the model wants BOS first */
int bn_tokenizer_add_eos(const bn_tokenizer *tok);
int bn_tokenizer_add_space_prefix(const bn_tokenizer *tok);
/* End of generation: EOS, EOT, EOM and tokens such as "<|eot_id|>" or "<|end_of_text|>". */
int bn_tokenizer_is_eog(const bn_tokenizer *tok, int32_t id);
/* tokenizer.chat_template, or NULL. */
const char *bn_tokenizer_chat_template(const bn_tokenizer *tok);

/* Length of the well-formed UTF-8 sequence at s, of at most left bytes (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF; a NUL byte is a 1-byte
 * sequence), or 0 when there is none (left 0 included). */
size_t bn_utf8_seq_len(const unsigned char *s, size_t left);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_TOKENIZER_H */
