/* tokenizer.c - building a tokenizer (from GGUF metadata or plain arrays), lookups,
 * special-token splitting, the encode driver and decoding. The two algorithms live in
 * tokenizer_spm.c and tokenizer_bpe.c. */
#include "tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------ */

bn_status bn__ids_push(bn__ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64, bytes;
        if (bn_mul_size(cap, sizeof *a->v, &bytes)) return BN_ERR_NOMEM;
        int32_t *v = bn_malloc(bytes);
        if (!v) return BN_ERR_NOMEM;
        if (a->n) memcpy(v, a->v, a->n * sizeof *v);
        bn_free(a->v);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return BN_OK;
}

uint64_t bn__tok_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < n + n / 2 + 1) cap *= 2;
    return cap;
}

int32_t bn__tok_find(const bn_tokenizer *tok, const char *s, size_t n)
{
    for (size_t h = bn__tok_hash(s, n) & tok->map_mask;; h = (h + 1) & tok->map_mask) {
        int32_t id = tok->map[h];
        if (id < 0) return BN_TOKEN_NONE;
        const bn__tok_entry *e = &tok->tok[id];
        if (e->len == n && memcmp(tok->text + e->off, s, n) == 0) return id;
    }
}

int32_t bn__tok_merge_rank(const bn_tokenizer *tok, int32_t left, int32_t right)
{
    if (!tok->merge_key) return -1;
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    for (size_t h = mix64(key) & tok->merge_mask;; h = (h + 1) & tok->merge_mask) {
        if (tok->merge_key[h] == 0) return -1;
        if (tok->merge_key[h] == key) return tok->merge_rank[h];
    }
}

/* Copies s[0..n) into dst for an error message: printable, at most ~40 bytes. */
static const char *esc(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= 40) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        else
            dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return dst;
}

/* ---- the vocabulary source: GGUF arrays or plain C arrays ----------------------------- */

typedef struct vocab_src {
    const char *model, *pre;
    size_t n_tokens, n_merges;
    const char *(*token)(const void *u, size_t i, size_t *len);
    float (*score)(const void *u, size_t i);  /* NULL: 0 */
    int32_t (*type)(const void *u, size_t i); /* NULL: normal */
    const char *(*merge)(const void *u, size_t i, size_t *len);
    const void *u;
    int32_t bos, eos, eot, eom, unk, pad;
    int add_bos, add_eos, add_space_prefix, prepend_scheme;
    const char *chat_template;
    const char *what_tokens, *what_merges, *what_bos; /* names for messages */
} vocab_src;

static const char *const id_keys[6] = {
        "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",     "tokenizer.ggml.eom_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
};

/* ---- building ------------------------------------------------------------------------ */

static bn_status fill_tokens(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src)
{
    size_t n = src->n_tokens, total = 0, bytes;
    char buf[32];
    for (size_t i = 0; i < n; i++) { /* first pass: sizes */
        size_t len = 0;
        const char *s = src->token(src->u, i, &len);
        if (!s)
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: token %zu is missing",
                                    src->what_tokens, i);
        if (len > BN_TOKENIZER_MAX_TOKEN_LEN)
            return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: token %zu is %zu bytes long (max %d)",
                                    src->what_tokens, i, len, BN_TOKENIZER_MAX_TOKEN_LEN);
        if (len == 0) len = (size_t)snprintf(buf, sizeof buf, "[EMPTY_%zu]", i);
        total += len + 1;
    }
    if (total >= UINT32_MAX)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %zu bytes of token text (max 4 GiB)",
                                src->what_tokens, total);
    if (bn_mul_size(n, sizeof *tok->tok, &bytes)) return BN_ERR_NOMEM;
    tok->tok = bn_malloc(bytes);
    tok->text = bn_malloc(total);
    if (!tok->tok || !tok->text) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *s = src->token(src->u, i, &len);
        if (len == 0) {
            len = (size_t)snprintf(buf, sizeof buf, "[EMPTY_%zu]", i);
            s = buf;
        }
        memcpy(tok->text + off, s, len);
        tok->text[off + len] = '\0';
        int32_t type = src->type ? src->type(src->u, i) : BN_TOKEN_TYPE_NORMAL;
        if (type < BN_TOKEN_TYPE_UNDEFINED || type > BN_TOKEN_TYPE_BYTE)
            type = BN_TOKEN_TYPE_UNDEFINED;
        tok->tok[i] = (bn__tok_entry){(uint32_t)off, (uint32_t)len,
                                      src->score ? src->score(src->u, i) : 0.0f, type};
        off += len + 1;
    }
    return BN_OK;
}

static bn_status build_map(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src)
{
    size_t cap = table_size((size_t)tok->n_vocab), bytes;
    if (bn_mul_size(cap, sizeof *tok->map, &bytes)) return BN_ERR_NOMEM;
    tok->map = bn_malloc(bytes);
    if (!tok->map) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    memset(tok->map, 0xff, bytes); /* BN_TOKEN_NONE */
    tok->map_mask = cap - 1;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const bn__tok_entry *e = &tok->tok[id];
        const char *s = tok->text + e->off;
        size_t h = bn__tok_hash(s, e->len) & tok->map_mask;
        for (;; h = (h + 1) & tok->map_mask) {
            int32_t other = tok->map[h];
            if (other < 0) break;
            if (tok->tok[other].len == e->len &&
                memcmp(tok->text + tok->tok[other].off, s, e->len) == 0) {
                char t[64];
                return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                        "%s: duplicate token '%s' (ids %d and %d)",
                                        src->what_tokens, esc(t, sizeof t, s, e->len), other, id);
            }
        }
        tok->map[h] = id;
    }
    return BN_OK;
}

static bn_status add_merge(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src, size_t i)
{
    size_t len = 0;
    char t[64];
    const char *s = src->merge(src->u, i, &len);
    if (!s)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: merge %zu is missing", src->what_merges,
                                i);
    /* like llama.cpp: split at the first space after the first byte */
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!sp)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: merge %zu ('%s') is not 'left right'",
                                src->what_merges, i, esc(t, sizeof t, s, len));
    size_t ll = (size_t)(sp - s), rl = len - ll - 1;
    int32_t left = bn__tok_find(tok, s, ll), right = bn__tok_find(tok, sp + 1, rl);
    if (left < 0 || right < 0) {
        const char *bad = left < 0 ? s : sp + 1;
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: merge %zu names unknown token '%s'",
                                src->what_merges, i, esc(t, sizeof t, bad, left < 0 ? ll : rl));
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t h = mix64(key) & tok->merge_mask;
    for (; tok->merge_key[h] != 0; h = (h + 1) & tok->merge_mask)
        if (tok->merge_key[h] == key) return BN_OK; /* the first (lowest) rank wins */
    tok->merge_key[h] = key;
    tok->merge_rank[h] = (int32_t)i;
    return BN_OK;
}

static bn_status build_merges(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src)
{
    if (src->n_merges > BN_TOKENIZER_MAX_MERGES)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %zu merges (max %d)", src->what_merges,
                                src->n_merges, BN_TOKENIZER_MAX_MERGES);
    tok->n_merges = (int32_t)src->n_merges;
    if (src->n_merges == 0) return BN_OK;
    size_t cap = table_size(src->n_merges);
    tok->merge_key = bn_calloc(cap, sizeof *tok->merge_key);
    tok->merge_rank = bn_calloc(cap, sizeof *tok->merge_rank);
    if (!tok->merge_key || !tok->merge_rank)
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    tok->merge_mask = cap - 1;
    for (size_t i = 0; i < src->n_merges; i++) {
        bn_status rc = add_merge(ctx, tok, src, i);
        if (rc != BN_OK) return rc;
    }
    return BN_OK;
}

/* Resolves one special id: BN_TOKEN_DEFAULT -> def (dropped if out of range). */
static bn_status resolve_id(bn_ctx *ctx, const bn_tokenizer *tok, const vocab_src *src, int k,
                            int32_t v, int32_t def, int32_t *out)
{
    if (v == BN_TOKEN_DEFAULT) {
        *out = def >= 0 && def < tok->n_vocab ? def : BN_TOKEN_NONE;
        return BN_OK;
    }
    if (v < 0) {
        *out = BN_TOKEN_NONE;
        return BN_OK;
    }
    if (v >= tok->n_vocab)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s%s = %d is out of range (%d tokens)",
                                src->what_bos, id_keys[k] + strlen("tokenizer.ggml."), v,
                                tok->n_vocab);
    *out = v;
    return BN_OK;
}

static int32_t find_text(const bn_tokenizer *tok, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = bn__tok_find(tok, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return BN_TOKEN_NONE;
}

static void add_eog(bn_tokenizer *tok, int32_t id)
{
    if (id < 0) return;
    for (int i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id) return;
    if (tok->n_eog < BN__TOK_MAX_EOG) tok->eog[tok->n_eog++] = id;
    /* llama.cpp: an end-of-generation token is a control token */
    if (tok->tok[id].type != BN_TOKEN_TYPE_CONTROL) tok->tok[id].type = BN_TOKEN_TYPE_CONTROL;
}

static bn_status resolve_special(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src)
{
    static const char *const eot_names[] = {"<|eot_id|>",    "<|im_end|>",    "<|end|>",
                                            "<end_of_turn>", "<|endoftext|>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const eog_names[] = {"<|eot_id|>",    "<|im_end|>",      "<|end|>",
                                            "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
                                            "<EOT>",         "<|end_of_text|>", NULL};
    int spm = tok->kind == BN_TOKENIZER_SPM;
    const int32_t v[6] = {src->bos, src->eos, src->eot, src->eom, src->unk, src->pad};
    const int32_t def[6] = {spm ? 1 : 11, spm ? 2 : 11, -1, -1, spm ? 0 : -1, -1};
    int32_t *dst[6] = {&tok->bos, &tok->eos, &tok->eot, &tok->eom, &tok->unk, &tok->pad};
    for (int k = 0; k < 6; k++) {
        bn_status rc = resolve_id(ctx, tok, src, k, v[k], def[k], dst[k]);
        if (rc != BN_OK) return rc;
    }
    if (tok->eot < 0) tok->eot = find_text(tok, eot_names);
    if (tok->eom < 0) tok->eom = find_text(tok, eom_names);
    add_eog(tok, tok->eos);
    add_eog(tok, tok->eot);
    add_eog(tok, tok->eom);
    for (const char *const *p = eog_names; *p; p++) add_eog(tok, bn__tok_find(tok, *p, strlen(*p)));
    if (tok->add_bos && tok->bos < 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "%sadd_bos_token is true, but there is no BOS "
                                "token",
                                src->what_bos);
    if (tok->add_eos && tok->eos < 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "%sadd_eos_token is true, but there is no EOS "
                                "token",
                                src->what_bos);
    return BN_OK;
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int cmp_len_id(const void *a, const void *b)
{
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bn_status build_special(bn_ctx *ctx, bn_tokenizer *tok)
{
    int32_t n = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        int32_t t = tok->tok[id].type;
        n += t == BN_TOKEN_TYPE_CONTROL || t == BN_TOKEN_TYPE_USER_DEFINED ||
             t == BN_TOKEN_TYPE_UNKNOWN;
    }
    if (n == 0) return BN_OK;
    len_id *tmp = bn_calloc((size_t)n, sizeof *tmp);
    tok->special = bn_calloc((size_t)n, sizeof *tok->special);
    if (!tmp || !tok->special) {
        bn_free(tmp);
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    }
    int32_t k = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        int32_t t = tok->tok[id].type;
        if (t == BN_TOKEN_TYPE_CONTROL || t == BN_TOKEN_TYPE_USER_DEFINED ||
            t == BN_TOKEN_TYPE_UNKNOWN)
            tmp[k++] = (len_id){tok->tok[id].len, id};
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_len_id);
    for (int32_t i = 0; i < n; i++) tok->special[i] = tmp[i].id;
    tok->n_special = n;
    bn_free(tmp);
    return BN_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes code point at s (valid UTF-8 assumed, else returns the byte); sets *n. */
static uint32_t utf8_cp(const unsigned char *s, size_t left, size_t *n)
{
    size_t k = bn__utf8_len(s[0]);
    if (k == 1 || k > left) {
        *n = 1;
        return s[0];
    }
    uint32_t cp = s[0] & (0xff >> (k + 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *n = 1;
            return s[0];
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *n = k;
    return cp;
}

/* Writes the piece of token id into out (room for the token's length); returns its size. */
static size_t make_piece(const bn_tokenizer *tok, int32_t id, char *out)
{
    const bn__tok_entry *e = &tok->tok[id];
    const char *s = tok->text + e->off;
    size_t o = 0;
    switch (e->type) {
    case BN_TOKEN_TYPE_CONTROL:
    case BN_TOKEN_TYPE_UNKNOWN:
    case BN_TOKEN_TYPE_USER_DEFINED:
        memcpy(out, s, e->len);
        return e->len;
    case BN_TOKEN_TYPE_BYTE:
        if (e->len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            out[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return 1;
        }
        memcpy(out, s, e->len);
        return e->len;
    case BN_TOKEN_TYPE_NORMAL:
        break;
    default:
        return 0; /* unused, undefined */
    }
    for (size_t i = 0; i < e->len;) {
        size_t k;
        if (tok->kind == BN_TOKENIZER_SPM) {
            if (i + 3 <= e->len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                out[o++] = ' ';
                i += 3;
            } else
                out[o++] = s[i++];
            continue;
        }
        uint32_t cp = utf8_cp((const unsigned char *)s + i, e->len - i, &k);
        int b = bn__bpe_cp_to_byte(cp);
        if (b >= 0)
            out[o++] = (char)b;
        else {
            memcpy(out + o, s + i, k);
            o += k;
        }
        i += k;
    }
    return o;
}

static bn_status build_pieces(bn_ctx *ctx, bn_tokenizer *tok)
{
    size_t total = 0, bytes;
    for (int32_t id = 0; id < tok->n_vocab; id++) total += tok->tok[id].len;
    if (bn_mul_size((size_t)tok->n_vocab + 1, sizeof *tok->piece_off, &bytes)) return BN_ERR_NOMEM;
    tok->piece = bn_malloc(total + 1);
    tok->piece_off = bn_malloc(bytes);
    if (!tok->piece || !tok->piece_off) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    uint32_t off = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        tok->piece_off[id] = off;
        off += (uint32_t)make_piece(tok, id, tok->piece + off);
    }
    tok->piece_off[tok->n_vocab] = off;
    return BN_OK;
}

static char *dup_or_null(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = bn_strdup(s);
    if (!d) *fail = 1;
    return d;
}

static bn_status build_flags(bn_ctx *ctx, bn_tokenizer *tok, const vocab_src *src,
                             const bn__pre_def *pre)
{
    int spm = tok->kind == BN_TOKENIZER_SPM;
    tok->add_space_prefix = src->add_space_prefix >= 0 ? src->add_space_prefix != 0 : spm;
    tok->prepend_scheme = src->prepend_scheme;
    tok->add_bos = src->add_bos >= 0 ? src->add_bos != 0 : (spm ? 1 : pre->add_bos);
    tok->add_eos = src->add_eos >= 0 ? src->add_eos != 0 : 0;
    tok->clean_spaces = spm ? 0 : pre->clean_spaces;
    tok->ignore_merges = spm ? 0 : pre->ignore_merges;
    int fail = 0;
    tok->model = dup_or_null(src->model, &fail);
    tok->pre = dup_or_null(src->pre ? src->pre : "default", &fail);
    tok->chat_template = dup_or_null(src->chat_template, &fail);
    return fail ? bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory") : BN_OK;
}

static bn_status build(bn_ctx *ctx, const vocab_src *src, bn_tokenizer **out)
{
    *out = NULL;
    bn_tokenizer_kind kind;
    const bn__pre_def *pre = NULL;
    if (!src->model) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "no tokenizer model given");
    if (strcmp(src->model, "llama") == 0)
        kind = BN_TOKENIZER_SPM;
    else if (strcmp(src->model, "gpt2") == 0)
        kind = BN_TOKENIZER_BPE;
    else
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "tokenizer model '%s' is not supported (llama, gpt2)", src->model);
    pre = bn__bpe_find_pre(kind == BN_TOKENIZER_BPE ? src->pre : NULL);
    if (!pre)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "pre-tokenizer '%s' is not supported",
                                src->pre);
    if (src->n_tokens == 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: the vocabulary is empty",
                                src->what_tokens);
    if (src->n_tokens > BN_TOKENIZER_MAX_VOCAB)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %zu tokens (max %d)", src->what_tokens,
                                src->n_tokens, BN_TOKENIZER_MAX_VOCAB);
    bn_tokenizer *tok = bn_calloc(1, sizeof *tok);
    if (!tok) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    tok->kind = kind;
    tok->n_vocab = (int32_t)src->n_tokens;
    bn_status rc;
    if ((rc = build_flags(ctx, tok, src, pre)) != BN_OK) goto fail;
    if ((rc = fill_tokens(ctx, tok, src)) != BN_OK) goto fail;
    if ((rc = build_map(ctx, tok, src)) != BN_OK) goto fail;
    if (kind == BN_TOKENIZER_BPE && (rc = build_merges(ctx, tok, src)) != BN_OK) goto fail;
    if ((rc = resolve_special(ctx, tok, src)) != BN_OK) goto fail;
    if ((rc = build_special(ctx, tok)) != BN_OK) goto fail;
    if ((rc = build_pieces(ctx, tok)) != BN_OK) goto fail;
    if (kind == BN_TOKENIZER_BPE && (rc = bn__bpe_compile(ctx, tok, pre)) != BN_OK) goto fail;
    *out = tok;
    return BN_OK;
fail:
    bn_tokenizer_free(tok);
    return rc;
}

void bn_tokenizer_free(bn_tokenizer *tok)
{
    if (!tok) return;
    bn__bpe_release(tok);
    bn_free(tok->model);
    bn_free(tok->pre);
    bn_free(tok->tok);
    bn_free(tok->text);
    bn_free(tok->piece);
    bn_free(tok->piece_off);
    bn_free(tok->map);
    bn_free(tok->merge_key);
    bn_free(tok->merge_rank);
    bn_free(tok->special);
    bn_free(tok->chat_template);
    bn_free(tok);
}

/* ---- from plain arrays ----------------------------------------------------------------- */

static const char *plain_token(const void *u, size_t i, size_t *len)
{
    const bn_tokenizer_vocab *v = u;
    const char *s = v->tokens[i];
    if (s) *len = v->token_lens ? v->token_lens[i] : strlen(s);
    return s;
}

static float plain_score(const void *u, size_t i)
{
    return ((const bn_tokenizer_vocab *)u)->scores[i];
}

static int32_t plain_type(const void *u, size_t i)
{
    return ((const bn_tokenizer_vocab *)u)->types[i];
}

static const char *plain_merge(const void *u, size_t i, size_t *len)
{
    const char *s = ((const bn_tokenizer_vocab *)u)->merges[i];
    if (s) *len = strlen(s);
    return s;
}

void bn_tokenizer_vocab_init(bn_tokenizer_vocab *v)
{
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->eot_id = v->eom_id = v->unk_id = v->pad_id = BN_TOKEN_DEFAULT;
    v->add_bos = v->add_eos = v->add_space_prefix = -1;
}

bn_status bn_tokenizer_from_vocab(bn_ctx *ctx, const bn_tokenizer_vocab *v, bn_tokenizer **out)
{
    BN_ASSERT(v && out);
    if (v->n_tokens && !v->tokens)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "vocabulary: no token array");
    if (v->n_merges && !v->merges)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "vocabulary: no merge array");
    vocab_src src = {
            .model = v->model,
            .pre = v->pre,
            .n_tokens = v->n_tokens,
            .n_merges = v->n_merges,
            .token = plain_token,
            .score = v->scores ? plain_score : NULL,
            .type = v->types ? plain_type : NULL,
            .merge = plain_merge,
            .u = v,
            .bos = v->bos_id,
            .eos = v->eos_id,
            .eot = v->eot_id,
            .eom = v->eom_id,
            .unk = v->unk_id,
            .pad = v->pad_id,
            .add_bos = v->add_bos,
            .add_eos = v->add_eos,
            .add_space_prefix = v->add_space_prefix,
            .prepend_scheme = v->prepend_scheme,
            .chat_template = v->chat_template,
            .what_tokens = "vocabulary",
            .what_merges = "vocabulary",
            .what_bos = "",
    };
    return build(ctx, &src, out);
}

/* ---- from GGUF ------------------------------------------------------------------------- */

typedef struct gguf_src {
    const bn_gguf *g;
    int64_t tokens, scores, types, merges;
    const unsigned char *score_data, *type_data;
    int scores_i32;
} gguf_src;

static const char *gguf_token(const void *u, size_t i, size_t *len)
{
    const gguf_src *s = u;
    return bn_gguf_arr_str(s->g, s->tokens, i, len);
}

static float gguf_score(const void *u, size_t i)
{
    const gguf_src *s = u;
    if (s->scores_i32) {
        int32_t v;
        memcpy(&v, s->score_data + 4 * i, 4);
        return (float)v;
    }
    float f;
    memcpy(&f, s->score_data + 4 * i, 4);
    return f;
}

static int32_t gguf_type(const void *u, size_t i)
{
    const gguf_src *s = u;
    int32_t v;
    memcpy(&v, s->type_data + 4 * i, 4);
    return v;
}

static const char *gguf_merge(const void *u, size_t i, size_t *len)
{
    const gguf_src *s = u;
    return bn_gguf_arr_str(s->g, s->merges, i, len);
}

/* Finds an array; *idx = -1 when absent and not required. */
static bn_status gguf_array(bn_ctx *ctx, const bn_gguf *g, const char *key, int required,
                            bn_gguf_vtype want, bn_gguf_vtype also, int64_t *idx)
{
    *idx = bn_gguf_find_key(g, key);
    if (*idx < 0)
        return required ? bn_ctx_set_error(ctx, BN_ERR_FORMAT, "missing key %s", key) : BN_OK;
    if (bn_gguf_kv_type(g, *idx) != BN_GGUF_ARRAY)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s is a %s, not an array", key,
                                bn_gguf_vtype_name(bn_gguf_kv_type(g, *idx)));
    bn_gguf_vtype t = bn_gguf_arr_type(g, *idx);
    if (t != want && t != also)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s is an array of %s, expected %s", key,
                                bn_gguf_vtype_name(t), bn_gguf_vtype_name(want));
    return BN_OK;
}

static bn_status gguf_count(bn_ctx *ctx, const bn_gguf *g, int64_t idx, const char *key,
                            uint64_t n_tokens)
{
    uint64_t n = bn_gguf_arr_n(g, idx);
    if (n != n_tokens)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "%s has %llu entries but tokenizer.ggml.tokens has %llu", key,
                                (unsigned long long)n, (unsigned long long)n_tokens);
    return BN_OK;
}

static bn_status gguf_string(bn_ctx *ctx, const bn_gguf *g, const char *key, int required,
                             const char **out)
{
    *out = NULL;
    bn_status rc = bn_gguf_get_str(g, key, out);
    if (rc == BN_ERR_NOT_FOUND)
        return required ? bn_ctx_set_error(ctx, BN_ERR_FORMAT, "missing key %s", key) : BN_OK;
    if (rc != BN_OK) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s is not a string", key);
    return BN_OK;
}

static bn_status gguf_flag(bn_ctx *ctx, const bn_gguf *g, const char *key, int *out)
{
    *out = -1;
    bn_status rc = bn_gguf_get_bool(g, key, out);
    if (rc == BN_ERR_NOT_FOUND) {
        *out = -1;
        return BN_OK;
    }
    if (rc != BN_OK) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s is not a bool", key);
    return BN_OK;
}

/* tokenizer.bitnet.prepend_scheme: "first" or "always" (Metaspace); absent: SentencePiece's. */
static bn_status gguf_prepend(bn_ctx *ctx, const bn_gguf *g, int *out)
{
    static const char key[] = "tokenizer.bitnet.prepend_scheme";
    const char *v = NULL;
    bn_status rc = gguf_string(ctx, g, key, 0, &v);
    *out = BN_PREPEND_SPM;
    if (rc != BN_OK || !v) return rc;
    if (strcmp(v, "first") == 0)
        *out = BN_PREPEND_FIRST;
    else if (strcmp(v, "always") == 0)
        *out = BN_PREPEND_ALWAYS;
    else
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: '%s' (first or always)", key, v);
    return BN_OK;
}

static bn_status gguf_id(bn_ctx *ctx, const bn_gguf *g, const char *key, int32_t *out)
{
    *out = BN_TOKEN_DEFAULT;
    int32_t v;
    bn_status rc = bn_gguf_get_i32(g, key, &v);
    if (rc == BN_ERR_NOT_FOUND) return BN_OK;
    if (rc != BN_OK)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s is not an integer token id", key);
    *out = v < 0 ? BN_TOKEN_NONE : v;
    return BN_OK;
}

static bn_status gguf_arrays(bn_ctx *ctx, const bn_gguf *g, gguf_src *s, vocab_src *src)
{
    bn_status rc;
    if ((rc = gguf_array(ctx, g, "tokenizer.ggml.tokens", 1, BN_GGUF_STRING, BN_GGUF_STRING,
                         &s->tokens)) != BN_OK)
        return rc;
    uint64_t n = bn_gguf_arr_n(g, s->tokens);
    if (n > BN_TOKENIZER_MAX_VOCAB)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "tokenizer.ggml.tokens: %llu tokens (max %d)",
                                (unsigned long long)n, BN_TOKENIZER_MAX_VOCAB);
    src->n_tokens = (size_t)n;
    if ((rc = gguf_array(ctx, g, "tokenizer.ggml.scores", 0, BN_GGUF_F32, BN_GGUF_I32,
                         &s->scores)) != BN_OK)
        return rc;
    if (s->scores >= 0) {
        if ((rc = gguf_count(ctx, g, s->scores, "tokenizer.ggml.scores", n)) != BN_OK) return rc;
        s->score_data = bn_gguf_arr_data(g, s->scores);
        s->scores_i32 = bn_gguf_arr_type(g, s->scores) == BN_GGUF_I32;
        if (s->score_data || n == 0) src->score = gguf_score;
    }
    if ((rc = gguf_array(ctx, g, "tokenizer.ggml.token_type", 0, BN_GGUF_I32, BN_GGUF_I32,
                         &s->types)) != BN_OK)
        return rc;
    if (s->types >= 0) {
        if ((rc = gguf_count(ctx, g, s->types, "tokenizer.ggml.token_type", n)) != BN_OK) return rc;
        s->type_data = bn_gguf_arr_data(g, s->types);
        if (s->type_data || n == 0) src->type = gguf_type;
    }
    int bpe = src->model && strcmp(src->model, "gpt2") == 0;
    if ((rc = gguf_array(ctx, g, "tokenizer.ggml.merges", bpe, BN_GGUF_STRING, BN_GGUF_STRING,
                         &s->merges)) != BN_OK)
        return rc;
    if (bpe) {
        uint64_t m = bn_gguf_arr_n(g, s->merges);
        if (m > BN_TOKENIZER_MAX_MERGES)
            return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                    "tokenizer.ggml.merges: %llu merges "
                                    "(max %d)",
                                    (unsigned long long)m, BN_TOKENIZER_MAX_MERGES);
        src->n_merges = (size_t)m;
    }
    return BN_OK;
}

bn_status bn_tokenizer_from_gguf(bn_ctx *ctx, const bn_gguf *g, bn_tokenizer **out)
{
    BN_ASSERT(g && out);
    *out = NULL;
    gguf_src s = {.g = g, .tokens = -1, .scores = -1, .types = -1, .merges = -1};
    vocab_src src = {.token = gguf_token,
                     .merge = gguf_merge,
                     .u = &s,
                     .what_tokens = "tokenizer.ggml.tokens",
                     .what_merges = "tokenizer.ggml.merges",
                     .what_bos = "tokenizer.ggml."};
    bn_status rc;
    if ((rc = gguf_string(ctx, g, "tokenizer.ggml.model", 1, &src.model)) != BN_OK) return rc;
    if ((rc = gguf_string(ctx, g, "tokenizer.ggml.pre", 0, &src.pre)) != BN_OK) return rc;
    if ((rc = gguf_string(ctx, g, "tokenizer.chat_template", 0, &src.chat_template)) != BN_OK)
        return rc;
    if ((rc = gguf_arrays(ctx, g, &s, &src)) != BN_OK) return rc;
    int32_t *ids[6] = {&src.bos, &src.eos, &src.eot, &src.eom, &src.unk, &src.pad};
    for (int k = 0; k < 6; k++)
        if ((rc = gguf_id(ctx, g, id_keys[k], ids[k])) != BN_OK) return rc;
    if ((rc = gguf_flag(ctx, g, "tokenizer.ggml.add_bos_token", &src.add_bos)) != BN_OK ||
        (rc = gguf_flag(ctx, g, "tokenizer.ggml.add_eos_token", &src.add_eos)) != BN_OK ||
        (rc = gguf_flag(ctx, g, "tokenizer.ggml.add_space_prefix", &src.add_space_prefix)) !=
                BN_OK ||
        (rc = gguf_prepend(ctx, g, &src.prepend_scheme)) != BN_OK)
        return rc;
    return build(ctx, &src, out);
}

/* ---- encoding -------------------------------------------------------------------------- */

typedef struct frag {
    size_t off, len;
    int32_t id; /* a special token, or BN_TOKEN_NONE for raw text */
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static bn_status frag_push(frags *f, size_t off, size_t len, int32_t id)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *v = bn_calloc(cap, sizeof *v);
        if (!v) return BN_ERR_NOMEM;
        if (f->n) memcpy(v, f->v, f->n * sizeof *v);
        bn_free(f->v);
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (frag){off, len, id};
    return BN_OK;
}

/* Splits the raw fragments of *cur around every occurrence of special token id, into *nxt. */
static bn_status split_one(const bn_tokenizer *tok, const char *text, int32_t id, const frags *cur,
                           frags *nxt)
{
    const char *s = tok->text + tok->tok[id].off;
    size_t sl = tok->tok[id].len;
    bn_status rc = BN_OK;
    nxt->n = 0;
    for (size_t i = 0; i < cur->n && rc == BN_OK; i++) {
        frag f = cur->v[i];
        if (f.id >= 0 || f.len < sl) {
            rc = frag_push(nxt, f.off, f.len, f.id);
            continue;
        }
        size_t p = f.off, end = f.off + f.len;
        const char *m;
        while (rc == BN_OK && (m = memmem(text + p, end - p, s, sl)) != NULL) {
            size_t at = (size_t)(m - text);
            if (at > p) rc = frag_push(nxt, p, at - p, BN_TOKEN_NONE);
            if (rc == BN_OK) rc = frag_push(nxt, at, sl, id);
            p = at + sl;
        }
        if (rc == BN_OK && p < end) rc = frag_push(nxt, p, end - p, BN_TOKEN_NONE);
    }
    return rc;
}

static int text_has(const char *text, const frags *f, const char *s, size_t sl)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].id < 0 && f->v[i].len >= sl && memmem(text + f->v[i].off, f->v[i].len, s, sl))
            return 1;
    return 0;
}

/* Like llama.cpp's tokenizer_st_partition: special tokens, longest first. */
static bn_status partition(const bn_tokenizer *tok, const char *text, size_t len, int parse_special,
                           frags *out)
{
    frags tmp = {0};
    bn_status rc = len ? frag_push(out, 0, len, BN_TOKEN_NONE) : BN_OK;
    for (int32_t k = 0; k < tok->n_special && rc == BN_OK && out->n; k++) {
        int32_t id = tok->special[k];
        int32_t t = tok->tok[id].type;
        if (!parse_special && t != BN_TOKEN_TYPE_USER_DEFINED) continue;
        if (!text_has(text, out, tok->text + tok->tok[id].off, tok->tok[id].len)) continue;
        rc = split_one(tok, text, id, out, &tmp);
        if (rc == BN_OK) {
            frags sw = *out;
            *out = tmp;
            tmp = sw;
        }
    }
    bn_free(tmp.v);
    return rc;
}

/* Whether the SPM space prefix goes in front of the text fragment fr (bn_prepend_scheme). */
static int space_prefix(const bn_tokenizer *tok, const char *text, const frag *fr, int prev_special)
{
    if (!tok->add_space_prefix || !prev_special) return 0;
    if (tok->prepend_scheme == BN_PREPEND_SPM) return 1;
    const char *t = text + fr->off;
    if (fr->len && (t[0] == ' ' || (fr->len >= 3 && memcmp(t, "\xe2\x96\x81", 3) == 0))) return 0;
    return tok->prepend_scheme == BN_PREPEND_ALWAYS || fr->off == 0;
}

static bn_status encode_ids(const bn_tokenizer *tok, const char *text, size_t len, unsigned flags,
                            bn__ids *out)
{
    int add_bos =
            (flags & BN_TOKENIZE_ADD_BOS) || ((flags & BN_TOKENIZE_ADD_SPECIAL) && tok->add_bos);
    int add_eos =
            (flags & BN_TOKENIZE_ADD_EOS) || ((flags & BN_TOKENIZE_ADD_SPECIAL) && tok->add_eos);
    if ((add_bos && tok->bos < 0) || (add_eos && tok->eos < 0)) return BN_ERR_INVALID;
    if (len > ((size_t)1 << 30)) return BN_ERR_RANGE;
    if (len && !text) return BN_ERR_INVALID;
    frags f = {0};
    bn_status rc = partition(tok, text, len, (flags & BN_TOKENIZE_PARSE_SPECIAL) != 0, &f);
    if (rc == BN_OK && add_bos) rc = bn__ids_push(out, tok->bos);
    int prev_special = 1; /* SPM: a space in front of text that follows a special token */
    for (size_t i = 0; i < f.n && rc == BN_OK; i++) {
        if (f.v[i].id >= 0) {
            rc = bn__ids_push(out, f.v[i].id);
            prev_special = 1;
        } else if (tok->kind == BN_TOKENIZER_SPM) {
            rc = bn__spm_encode(tok, text + f.v[i].off, f.v[i].len,
                                space_prefix(tok, text, &f.v[i], prev_special), out);
            prev_special = 0;
        } else {
            rc = bn__bpe_encode(tok, text + f.v[i].off, f.v[i].len, out);
        }
    }
    if (rc == BN_OK && add_eos) rc = bn__ids_push(out, tok->eos);
    bn_free(f.v);
    return rc;
}

bn_status bn_tokenizer_encode(const bn_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t *ids, size_t max_ids, size_t *n_ids)
{
    BN_ASSERT(tok && n_ids);
    bn__ids a = {0};
    *n_ids = 0;
    bn_status rc = encode_ids(tok, text, len, flags, &a);
    if (rc == BN_OK) {
        *n_ids = a.n;
        size_t k = a.n < max_ids ? a.n : max_ids;
        if (k) memcpy(ids, a.v, k * sizeof *ids);
        if (a.n > max_ids) rc = BN_ERR_RANGE;
    }
    bn_free(a.v);
    return rc;
}

bn_status bn_tokenizer_encode_alloc(const bn_tokenizer *tok, const char *text, size_t len,
                                    unsigned flags, int32_t **ids, size_t *n_ids)
{
    BN_ASSERT(tok && ids && n_ids);
    bn__ids a = {0};
    *ids = NULL;
    *n_ids = 0;
    bn_status rc = encode_ids(tok, text, len, flags, &a);
    if (rc == BN_OK && !a.v) { /* empty result: still hand out a block */
        a.v = bn_malloc(sizeof *a.v);
        if (!a.v) rc = BN_ERR_NOMEM;
    }
    if (rc != BN_OK) {
        bn_free(a.v);
        return rc;
    }
    *ids = a.v;
    *n_ids = a.n;
    return BN_OK;
}

/* ---- decoding -------------------------------------------------------------------------- */

const char *bn_tokenizer_piece(const bn_tokenizer *tok, int32_t id, size_t *len)
{
    if (!tok || id < 0 || id >= tok->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->piece_off[id + 1] - tok->piece_off[id];
    return tok->piece + tok->piece_off[id];
}

/* llama.cpp's clean-up of a BPE decode: " ?" " !" " ." " ," lose the space, " ' " becomes
 * "'", and " 's" " 'm" " 're" " 've" lose the space. Returns the new length. */
static size_t clean_spaces(char *t, size_t n)
{
    size_t o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) o--;
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            i++;
        }
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1], x2 = i + 2 < n ? t[i + 2] : 0;
            if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) o--;
        }
        t[o++] = x;
    }
    return o;
}

bn_status bn_tokenizer_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char *buf, size_t size, size_t *needed)
{
    BN_ASSERT(tok && (ids || n == 0) && (buf || size == 0));
    size_t i0 = 0, total = 0;
    if (needed) *needed = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) return BN_ERR_INVALID;
    if ((flags & BN_DECODE_REMOVE_SPECIAL) && tok->add_bos && n > 0 && ids[0] == tok->bos) i0 = 1;
    if ((flags & BN_DECODE_REMOVE_SPECIAL) && tok->add_eos && n > i0 && ids[n - 1] == tok->eos) n--;
    size_t first = i0 < n && ids[i0] == tok->bos ? i0 + 1 : i0;
    int strip = tok->add_space_prefix && !(flags & BN_DECODE_KEEP_SPACE);
    for (size_t i = i0; i < n; i++) {
        int32_t t = tok->tok[ids[i]].type;
        if (!(flags & BN_DECODE_SPECIAL) &&
            (t == BN_TOKEN_TYPE_CONTROL || t == BN_TOKEN_TYPE_UNKNOWN))
            continue;
        size_t len;
        const char *p = bn_tokenizer_piece(tok, ids[i], &len);
        if (i == first && strip && len && p[0] == ' ') {
            p++;
            len--;
        }
        if (total + len < size) memcpy(buf + total, p, len);
        total += len;
    }
    if (total >= size) {
        if (size) buf[size - 1] = '\0';
        if (needed) *needed = total;
        return BN_ERR_RANGE;
    }
    if ((flags & BN_DECODE_CLEAN_SPACES) && tok->clean_spaces) total = clean_spaces(buf, total);
    buf[total] = '\0';
    if (needed) *needed = total;
    return BN_OK;
}

bn_status bn_tokenizer_decode_alloc(const bn_tokenizer *tok, const int32_t *ids, size_t n,
                                    unsigned flags, char **out, size_t *len)
{
    BN_ASSERT(out);
    size_t need = 0;
    *out = NULL;
    if (len) *len = 0;
    bn_status rc = bn_tokenizer_decode(tok, ids, n, flags, NULL, 0, &need);
    if (rc != BN_OK && rc != BN_ERR_RANGE) return rc;
    char *s = bn_malloc(need + 1);
    if (!s) return BN_ERR_NOMEM;
    rc = bn_tokenizer_decode(tok, ids, n, flags, s, need + 1, &need);
    if (rc != BN_OK) {
        bn_free(s);
        return rc;
    }
    *out = s;
    if (len) *len = need;
    return BN_OK;
}

/* ---- accessors ------------------------------------------------------------------------- */

bn_tokenizer_kind bn_tokenizer_kind_of(const bn_tokenizer *tok)
{
    return tok->kind;
}

const char *bn_tokenizer_model(const bn_tokenizer *tok)
{
    return tok->model;
}

const char *bn_tokenizer_pre(const bn_tokenizer *tok)
{
    return tok->pre;
}

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok)
{
    return tok->n_vocab;
}

int32_t bn_tokenizer_n_merges(const bn_tokenizer *tok)
{
    return tok->n_merges;
}

const char *bn_tokenizer_token_text(const bn_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->tok[id].len;
    return tok->text + tok->tok[id].off;
}

float bn_tokenizer_token_score(const bn_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab ? tok->tok[id].score : 0.0f;
}

bn_token_type bn_tokenizer_token_type(const bn_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_vocab ? (bn_token_type)tok->tok[id].type
                                        : BN_TOKEN_TYPE_UNDEFINED;
}

int32_t bn_tokenizer_find(const bn_tokenizer *tok, const char *text, size_t len)
{
    return text ? bn__tok_find(tok, text, len) : BN_TOKEN_NONE;
}

int32_t bn_tokenizer_bos(const bn_tokenizer *tok)
{
    return tok->bos;
}

int32_t bn_tokenizer_eos(const bn_tokenizer *tok)
{
    return tok->eos;
}

int32_t bn_tokenizer_eot(const bn_tokenizer *tok)
{
    return tok->eot;
}

int32_t bn_tokenizer_unk(const bn_tokenizer *tok)
{
    return tok->unk;
}

int32_t bn_tokenizer_pad(const bn_tokenizer *tok)
{
    return tok->pad;
}

int bn_tokenizer_add_bos(const bn_tokenizer *tok)
{
    return tok->add_bos;
}

int bn_tokenizer_add_eos(const bn_tokenizer *tok)
{
    return tok->add_eos;
}

int bn_tokenizer_add_space_prefix(const bn_tokenizer *tok)
{
    return tok->add_space_prefix;
}

int bn_tokenizer_is_eog(const bn_tokenizer *tok, int32_t id)
{
    if (id < 0) return 0;
    for (int i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id) return 1;
    return 0;
}

const char *bn_tokenizer_chat_template(const bn_tokenizer *tok)
{
    return tok->chat_template;
}
