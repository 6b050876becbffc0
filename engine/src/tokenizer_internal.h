/* tokenizer_internal.h - what tokenizer.c, tokenizer_spm.c and tokenizer_bpe.c share. */
#ifndef BITNET_TOKENIZER_INTERNAL_H
#define BITNET_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bitnet/tokenizer.h"

#define BN__TOK_MAX_RE  4  /* regexes in one pre-tokenizer */
#define BN__TOK_MAX_EOG 16 /* end-of-generation ids */

typedef struct bn__tok_entry {
    uint32_t off; /* into bn_tokenizer.text (NUL-terminated there) */
    uint32_t len;
    float score;
    int32_t type; /* bn_token_type */
} bn__tok_entry;

/* A pre-tokenizer: the regexes llama.cpp applies one after the other. */
typedef struct bn__pre_def {
    const char *names;                     /* '|'-separated tokenizer.ggml.pre values */
    const char *regex[BN__TOK_MAX_RE + 1]; /* NULL-terminated */
    int ignore_merges;                     /* a word that is a whole token stays whole */
    int add_bos;                           /* default of add_bos_token */
    int clean_spaces;
} bn__pre_def;

struct bn_tokenizer {
    bn_tokenizer_kind kind;
    char *model, *pre;
    int32_t n_vocab;
    bn__tok_entry *tok;
    char *text;          /* every token text, each followed by a NUL */
    char *piece;         /* decoded pieces, back to back */
    uint32_t *piece_off; /* n_vocab + 1 offsets into piece */

    int32_t *map; /* token text -> id, open addressing, BN_TOKEN_NONE = empty */
    size_t map_mask;

    uint64_t *merge_key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t *merge_rank;
    size_t merge_mask;
    int32_t n_merges;

    int32_t *special; /* control / user-defined / unknown ids, longest text first */
    int32_t n_special;

    int32_t bos, eos, eot, eom, unk, pad;
    int32_t eog[BN__TOK_MAX_EOG];
    int n_eog;
    int add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;
    int prepend_scheme; /* bn_prepend_scheme */

    pcre2_general_context *re_gctx;
    pcre2_code *re[BN__TOK_MAX_RE];
    int n_re;

    char *chat_template;
};

/* A growable array of ids. */
typedef struct bn__ids {
    int32_t *v;
    size_t n, cap;
} bn__ids;

bn_status bn__ids_push(bn__ids *a, int32_t id);

/* Lookups (tokenizer.c). */
uint64_t bn__tok_hash(const char *s, size_t n);
int32_t bn__tok_find(const bn_tokenizer *tok, const char *s, size_t n);
int32_t bn__tok_merge_rank(const bn_tokenizer *tok, int32_t left, int32_t right);

/* UTF-8 sequence length from its first byte (1 for stray continuation bytes). */
static inline size_t bn__utf8_len(unsigned char c)
{
    static const unsigned char lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

/* SPM (tokenizer_spm.c): encodes one fragment of raw text (the space prefix is added by
 * the caller through prefix_space). */
bn_status bn__spm_encode(const bn_tokenizer *tok, const char *text, size_t len, int prefix_space,
                         bn__ids *out);

/* BPE (tokenizer_bpe.c). */
const bn__pre_def *bn__bpe_find_pre(const char *name);
bn_status bn__bpe_compile(bn_ctx *ctx, bn_tokenizer *tok, const bn__pre_def *pre);
void bn__bpe_release(bn_tokenizer *tok);
bn_status bn__bpe_encode(const bn_tokenizer *tok, const char *text, size_t len, bn__ids *out);
/* The GPT-2 byte map: byte -> UTF-8 of its code point (1 or 2 bytes, returns the length). */
size_t bn__bpe_byte_to_utf8(unsigned char b, char out[2]);
/* Reverse: code point -> byte, or -1. */
int bn__bpe_cp_to_byte(uint32_t cp);

#endif
