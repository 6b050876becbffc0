/* tokenizer_bpe.c - byte-level BPE ("gpt2" vocabularies): pre-tokenizer regexes (PCRE2),
 * the GPT-2 byte map and merging by rank.
 *
 * As llama.cpp's llm_tokenizer_bpe: the text is split into words by the pre-tokenizer's
 * regexes (text no regex matches stays a word of its own), each byte of a word is mapped
 * to a printable character, and within a word the adjacent pair with the lowest merge rank
 * (leftmost on ties) is merged until no pair has a rank. With ignore_merges (LLaMA-3) a
 * word that is a token as a whole is taken as it is. */
#include "tokenizer_internal.h"

#include <string.h>

/* ---- pre-tokenizers, as llama.cpp names and defines them ------------------------------ */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                  \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define RE_GPT2_NOSPACE                                                                            \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

static const bn__pre_def pre_defs[] = {
        {.names = "default",
         .regex = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2_NOSPACE, "\\p{N}+", "[0-9][0-9][0-9]"},
         .clean_spaces = 1},
        {.names = "gpt-2|gpt2|phi-2|mpt|olmo|jais|jina-es|jina-de|roberta-bpe",
         .regex = {RE_GPT2},
         .clean_spaces = 1},
        {.names = "llama-bpe|llama3|llama-v3|falcon3|pixtral",
         .regex = {RE_LLAMA3},
         .ignore_merges = 1,
         .add_bos = 1,
         .clean_spaces = 1},
        {.names = "qwen2|deepseek-r1-qwen|megrez", .regex = {RE_QWEN2}},
        {.names = "starcoder|refact|codeshell|exaone|minerva-7b",
         .regex = {"\\p{N}", RE_GPT2_NOSPACE},
         .clean_spaces = 1},
};

static int name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

const bn__pre_def *bn__bpe_find_pre(const char *name)
{
    if (!name) name = "default";
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++)
        if (name_in(pre_defs[i].names, name)) return &pre_defs[i];
    return NULL;
}

static void *re_alloc(size_t n, void *user)
{
    (void)user;
    return bn_malloc(n);
}

static void re_free(void *p, void *user)
{
    (void)user;
    bn_free(p);
}

bn_status bn__bpe_compile(bn_ctx *ctx, bn_tokenizer *tok, const bn__pre_def *pre)
{
    tok->re_gctx = pcre2_general_context_create(re_alloc, re_free, NULL);
    if (!tok->re_gctx) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    pcre2_compile_context *cc = pcre2_compile_context_create(tok->re_gctx);
    if (!cc) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    bn_status rc = BN_OK;
    for (int i = 0; pre->regex[i] && rc == BN_OK; i++) {
        int err;
        PCRE2_SIZE at;
        tok->re[i] = pcre2_compile((PCRE2_SPTR)pre->regex[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &at, cc);
        if (!tok->re[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(err, msg, sizeof msg);
            rc = err == PCRE2_ERROR_HEAP_FAILED || err == PCRE2_ERROR_NOMEMORY
                         ? bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory")
                         : bn_ctx_set_error(ctx, BN_ERR_INTERNAL,
                                            "pre-tokenizer regex %d: %s at offset %zu", i,
                                            (const char *)msg, (size_t)at);
            break;
        }
        tok->n_re = i + 1;
    }
    pcre2_compile_context_free(cc);
    return rc;
}

void bn__bpe_release(bn_tokenizer *tok)
{
    for (int i = 0; i < tok->n_re; i++) pcre2_code_free(tok->re[i]);
    tok->n_re = 0;
    pcre2_general_context_free(tok->re_gctx);
    tok->re_gctx = NULL;
}

/* ---- the GPT-2 byte map ------------------------------------------------------------------ */

/* Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes, in
 * order, become U+0100 + n. */
static uint32_t byte_cp(unsigned char b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xa0) return 0x100 + 33 + (b - 0x7f);
    return 0x100 + 67; /* 0xad */
}

size_t bn__bpe_byte_to_utf8(unsigned char b, char out[2])
{
    uint32_t cp = byte_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

int bn__bpe_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) return byte_cp((unsigned char)cp) == cp ? (int)cp : -1;
    if (cp <= 0x100 + 32) return (int)(cp - 0x100);
    if (cp <= 0x100 + 66) return (int)(cp - 0x100 - 33 + 0x7f);
    if (cp == 0x100 + 67) return 0xad;
    return -1;
}

/* ---- merging ------------------------------------------------------------------------------ */

typedef struct bpe_sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes in the mapped word; n = 0 once merged away */
    int32_t id;        /* the token the symbol spells, or BN_TOKEN_NONE */
} bpe_sym;

typedef struct bpe_bigram {
    int32_t left, right, rank;
    int32_t lid, rid;
} bpe_bigram;

typedef struct bpe_work {
    const bn_tokenizer *tok;
    char *w; /* the mapped word */
    size_t wcap;
    bpe_sym *sym;
    size_t scap;
    bpe_bigram *heap;
    size_t hn, hcap;
    pcre2_match_data *md;
    pcre2_match_context *mc;
} bpe_work;

/* a comes out before b: lower rank, then the leftmost pair */
static int bpe_before(const bpe_bigram *a, const bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bn_status heap_push(bpe_work *wk, bpe_bigram b)
{
    if (wk->hn == wk->hcap) {
        size_t cap = wk->hcap ? wk->hcap * 2 : 64;
        bpe_bigram *v = bn_calloc(cap, sizeof *v);
        if (!v) return BN_ERR_NOMEM;
        if (wk->hn) memcpy(v, wk->heap, wk->hn * sizeof *v);
        bn_free(wk->heap);
        wk->heap = v;
        wk->hcap = cap;
    }
    size_t i = wk->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bpe_before(&b, &wk->heap[p])) break;
        wk->heap[i] = wk->heap[p];
        i = p;
    }
    wk->heap[i] = b;
    return BN_OK;
}

static bpe_bigram heap_pop(bpe_work *wk)
{
    bpe_bigram top = wk->heap[0], last = wk->heap[--wk->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= wk->hn) break;
        if (c + 1 < wk->hn && bpe_before(&wk->heap[c + 1], &wk->heap[c])) c++;
        if (!bpe_before(&wk->heap[c], &last)) break;
        wk->heap[i] = wk->heap[c];
        i = c;
    }
    if (wk->hn) wk->heap[i] = last;
    return top;
}

static bn_status add_bigram(bpe_work *wk, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return BN_OK;
    int32_t lid = wk->sym[left].id, rid = wk->sym[right].id;
    if (lid < 0 || rid < 0) return BN_OK;
    int32_t rank = bn__tok_merge_rank(wk->tok, lid, rid);
    if (rank < 0) return BN_OK;
    bpe_bigram b = {left, right, rank, lid, rid};
    return heap_push(wk, b);
}

static bn_status grow(bpe_work *wk, size_t wlen)
{
    if (wlen > wk->wcap) {
        size_t cap = wlen < 256 ? 256 : wlen * 2;
        char *w = bn_malloc(cap);
        bpe_sym *s = bn_calloc(cap, sizeof *s);
        if (!w || !s) {
            bn_free(w);
            bn_free(s);
            return BN_ERR_NOMEM;
        }
        bn_free(wk->w);
        bn_free(wk->sym);
        wk->w = w;
        wk->sym = s;
        wk->wcap = wk->scap = cap;
    }
    return BN_OK;
}

static bn_status bpe_merge(bpe_work *wk)
{
    bn_status rc = BN_OK;
    while (wk->hn && rc == BN_OK) {
        bpe_bigram b = heap_pop(wk);
        bpe_sym *l = &wk->sym[b.left], *r = &wk->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->id != b.lid || r->id != b.rid || l->next != b.right)
            continue; /* stale */
        l->n += r->n;
        l->id = bn__tok_find(wk->tok, wk->w + l->start, l->n);
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) wk->sym[r->next].prev = b.left;
        rc = add_bigram(wk, l->prev, b.left);
        if (rc == BN_OK) rc = add_bigram(wk, b.left, l->next);
    }
    return rc;
}

static bn_status emit(bpe_work *wk, bn__ids *out)
{
    bn_status rc = BN_OK;
    for (int32_t i = 0; i != -1 && rc == BN_OK; i = wk->sym[i].next) {
        const bpe_sym *s = &wk->sym[i];
        if (s->id >= 0) {
            rc = bn__ids_push(out, s->id);
            continue;
        }
        for (uint32_t j = 0; j < s->n && rc == BN_OK; j++) { /* as llama.cpp: single bytes */
            int32_t id = bn__tok_find(wk->tok, wk->w + s->start + j, 1);
            if (id >= 0) rc = bn__ids_push(out, id);
        }
    }
    return rc;
}

/* Tokenizes one pre-tokenized word. */
static bn_status bpe_word(bpe_work *wk, const char *text, size_t len, bn__ids *out)
{
    const bn_tokenizer *tok = wk->tok;
    bn_status rc = grow(wk, 2 * len);
    if (rc != BN_OK) return rc;
    size_t wl = 0;
    for (size_t i = 0; i < len; i++) wl += bn__bpe_byte_to_utf8((unsigned char)text[i], wk->w + wl);
    if (tok->ignore_merges) {
        int32_t id = bn__tok_find(tok, wk->w, wl);
        if (id >= 0) return bn__ids_push(out, id);
    }
    int32_t ns = 0;
    for (size_t o = 0; o < wl; ns++) {
        size_t k = bn__utf8_len((unsigned char)wk->w[o]);
        if (k > wl - o) k = wl - o;
        wk->sym[ns] = (bpe_sym){ns - 1, o + k == wl ? -1 : ns + 1, (uint32_t)o, (uint32_t)k,
                                bn__tok_find(tok, wk->w + o, k)};
        o += k;
    }
    wk->hn = 0;
    for (int32_t i = 1; i < ns && rc == BN_OK; i++) rc = add_bigram(wk, i - 1, i);
    if (rc == BN_OK) rc = bpe_merge(wk);
    if (rc == BN_OK && ns > 0) rc = emit(wk, out);
    return rc;
}

size_t bn_utf8_seq_len(const unsigned char *s, size_t left)
{
    if (left == 0) return 0;
    const unsigned char c = s[0];
    const size_t k = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : (c & 0xf0) == 0xe0     ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
    if (k == 0 || k > left) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (k == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))) return 0;
    if (k == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))) return 0;
    return k;
}

/* The text the regexes see: text itself when it is valid UTF-8, else a copy in which
 * every byte outside a well-formed sequence is 0x01 - a character that is neither letter,
 * number nor space, as the U+FFFD llama.cpp puts there. Word bytes still come from text. */
static bn_status regex_subject(const char *text, size_t len, const char **subj, char **copy)
{
    size_t i = 0, k;
    *copy = NULL;
    *subj = text;
    while (i < len && (k = bn_utf8_seq_len((const unsigned char *)text + i, len - i)) != 0) i += k;
    if (i == len) return BN_OK;
    char *c = bn_malloc(len);
    if (!c) return BN_ERR_NOMEM;
    memcpy(c, text, i);
    while (i < len) {
        k = bn_utf8_seq_len((const unsigned char *)text + i, len - i);
        if (k == 0) {
            c[i++] = '\x01';
            continue;
        }
        memcpy(c + i, text + i, k);
        i += k;
    }
    *subj = *copy = c;
    return BN_OK;
}

/* Splits text[0..len) with regex level lv (matches and the text between them are words)
 * and hands each word to the next level, or to BPE after the last. subj is what the
 * regexes match (see regex_subject), of the same length. */
static bn_status split(bpe_work *wk, int lv, const char *text, const char *subj, size_t len,
                       bn__ids *out)
{
    if (lv == wk->tok->n_re) return bpe_word(wk, text, len, out);
    size_t pos = 0, done = 0;
    bn_status rc = BN_OK;
    while (pos < len && rc == BN_OK) {
        int m = pcre2_match(wk->tok->re[lv], (PCRE2_SPTR)subj, len, pos, PCRE2_NO_UTF_CHECK, wk->md,
                            wk->mc);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0)
            return m == PCRE2_ERROR_NOMEMORY || m == PCRE2_ERROR_HEAPLIMIT ? BN_ERR_NOMEM
                                                                           : BN_ERR_INTERNAL;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(wk->md);
        size_t s = ov[0], e = ov[1];
        if (e <= s) { /* an empty match: step over one character */
            if (s >= len) break;
            pos = s + bn__utf8_len((unsigned char)subj[s]);
            continue;
        }
        if (s > done) rc = split(wk, lv + 1, text + done, subj + done, s - done, out);
        if (rc == BN_OK) rc = split(wk, lv + 1, text + s, subj + s, e - s, out);
        pos = done = e;
    }
    if (rc == BN_OK && done < len)
        rc = split(wk, lv + 1, text + done, subj + done, len - done, out);
    return rc;
}

bn_status bn__bpe_encode(const bn_tokenizer *tok, const char *text, size_t len, bn__ids *out)
{
    bpe_work wk = {.tok = tok};
    const char *subj;
    char *copy;
    bn_status rc = regex_subject(text, len, &subj, &copy);
    if (rc != BN_OK) return rc;
    wk.md = pcre2_match_data_create(1, tok->re_gctx);
    wk.mc = pcre2_match_context_create(tok->re_gctx);
    rc = wk.md && wk.mc ? split(&wk, 0, text, subj, len, out) : BN_ERR_NOMEM;
    bn_free(copy);
    pcre2_match_data_free(wk.md);
    pcre2_match_context_free(wk.mc);
    bn_free(wk.w);
    bn_free(wk.sym);
    bn_free(wk.heap);
    return rc;
}
