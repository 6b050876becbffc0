/*
 * bpe_train.c - byte-level BPE: training (pair counts over the words of the GPT-2
 * pre-tokenizer), encoding by merge rank, decoding, and the "gpt2" GGUF vocabulary.
 * See bitnet/bpe_train.h for the algorithm.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "bitnet/bpe_train.h"

#define GPT2_REGEX                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* ---- growable buffers -------------------------------------------------------------------------
 */

/* Makes room for need elements of size elem in *p (capacity *cap); 0 or -1. */
static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64, bytes;
    while (nc < need) {
        if (nc > SIZE_MAX / 4) return -1;
        nc *= 2;
    }
    if (bn_mul_size(nc, elem, &bytes)) return -1;
    void *np = bn_malloc(bytes);
    if (!np) return -1;
    if (*p && *cap) memcpy(np, *p, *cap * elem);
    bn_free(*p);
    *p = np;
    *cap = nc;
    return 0;
}

typedef struct i32vec {
    int32_t *p;
    size_t n, cap;
} i32vec;

static int i32_push(i32vec *v, int32_t x)
{
    if (grow(&v->p, &v->cap, v->n + 1, sizeof *v->p)) return -1;
    v->p[v->n++] = x;
    return 0;
}

typedef struct bytevec {
    unsigned char *p;
    size_t n, cap;
} bytevec;

static int bytes_push(bytevec *v, const void *s, size_t n)
{
    if (grow(&v->p, &v->cap, v->n + n + 1, 1)) return -1;
    memcpy(v->p + v->n, s, n);
    v->n += n;
    return 0;
}

static uint64_t hash_bytes(const void *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* ---- byte string -> int64 map (open addressing; keys in an arena) -----------------------------
 */

typedef struct smap_slot {
    size_t off;
    uint32_t len, used;
    int64_t val;
} smap_slot;

typedef struct smap {
    smap_slot *s;
    size_t cap, n; /* cap: power of two */
    bytevec keys;
} smap;

static void smap_release(smap *m)
{
    bn_free(m->s);
    bn_free(m->keys.p);
    memset(m, 0, sizeof *m);
}

static smap_slot *smap_slot_for(const smap *m, const void *k, size_t n)
{
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        smap_slot *s = &m->s[i];
        if (!s->used || (s->len == n && memcmp(m->keys.p + s->off, k, n) == 0)) return s;
    }
}

static int smap_rehash(smap *m, size_t cap)
{
    smap_slot *old = m->s;
    const size_t oc = m->cap;
    m->s = bn_calloc(cap, sizeof *m->s);
    if (!m->s) {
        m->s = old;
        return -1;
    }
    m->cap = cap;
    for (size_t i = 0; i < oc; i++)
        if (old[i].used) *smap_slot_for(m, m->keys.p + old[i].off, old[i].len) = old[i];
    bn_free(old);
    return 0;
}

/* The value of key k (NULL when absent). */
static int64_t *smap_get(const smap *m, const void *k, size_t n)
{
    if (!m->cap) return NULL;
    smap_slot *s = smap_slot_for(m, k, n);
    return s->used ? &s->val : NULL;
}

/* The value slot of k, inserted with init when absent; NULL when out of memory. */
static int64_t *smap_put(smap *m, const void *k, size_t n, int64_t init)
{
    if (n > UINT32_MAX) return NULL;
    if ((m->n + 1) * 2 > m->cap && smap_rehash(m, m->cap ? 2 * m->cap : 1024)) return NULL;
    smap_slot *s = smap_slot_for(m, k, n);
    if (s->used) return &s->val;
    const size_t off = m->keys.n;
    if (bytes_push(&m->keys, k, n)) return NULL;
    s->off = off;
    s->len = (uint32_t)n;
    s->used = 1;
    s->val = init;
    m->n++;
    return &s->val;
}

/* ---- (u32, u32) -> int64 map --------------------------------------------------------------- */

typedef struct pmap_slot {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    int64_t val;
} pmap_slot;

typedef struct pmap {
    pmap_slot *s;
    size_t cap, n;
} pmap;

#define PAIR(a, b) ((uint64_t)(uint32_t)(a) << 32 | (uint32_t)(b))

static pmap_slot *pmap_slot_for(const pmap *m, uint64_t k)
{
    size_t i = (size_t)hash_u64(k) & (m->cap - 1);
    while (m->s[i].key != UINT64_MAX && m->s[i].key != k) i = (i + 1) & (m->cap - 1);
    return &m->s[i];
}

static int pmap_rehash(pmap *m, size_t cap)
{
    pmap_slot *old = m->s;
    const size_t oc = m->cap;
    pmap_slot *ns = bn_malloc(cap * sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < cap; i++) ns[i].key = UINT64_MAX;
    m->s = ns;
    m->cap = cap;
    for (size_t i = 0; i < oc; i++)
        if (old[i].key != UINT64_MAX) *pmap_slot_for(m, old[i].key) = old[i];
    bn_free(old);
    return 0;
}

static int64_t *pmap_get(const pmap *m, uint64_t k)
{
    if (!m->cap) return NULL;
    pmap_slot *s = pmap_slot_for(m, k);
    return s->key == k ? &s->val : NULL;
}

static int64_t *pmap_put(pmap *m, uint64_t k, int64_t init)
{
    if ((m->n + 1) * 2 > m->cap && pmap_rehash(m, m->cap ? 2 * m->cap : 4096)) return NULL;
    pmap_slot *s = pmap_slot_for(m, k);
    if (s->key != k) {
        s->key = k;
        s->val = init;
        m->n++;
    }
    return &s->val;
}

static void pmap_release(pmap *m)
{
    bn_free(m->s);
    memset(m, 0, sizeof *m);
}

/* ---- the vocabulary ------------------------------------------------------------------------- */

struct bn_bpe {
    bytevec bytes; /* token bytes, concatenated */
    size_t *off;   /* n_tokens + 1 offsets into bytes */
    int32_t *type; /* token types (1 normal, 3 control, 4 user-defined, ...) */
    int32_t n_tokens;
    size_t tok_cap, off_cap;
    int32_t (*merges)[3]; /* left, right, result */
    int32_t n_merges;
    size_t merge_cap;
    pmap rank;            /* (left, right) -> rank << 32 | result */
    smap tokmap;          /* bytes -> id of normal tokens */
    int32_t byte_id[256]; /* id of each single-byte token, -1 when none */
    int32_t eos;
    i32vec specials;      /* ids of control and user-defined tokens (found in text) */
    uint16_t cp_of[256];  /* the GPT-2 byte map: byte -> code point (< 324) */
    int16_t byte_of[324]; /* and back (-1: no byte) */
    pcre2_code *re;
};

void bn_bpe_params_default(bn_bpe_params *p)
{
    p->vocab_size = 2048;
    p->min_frequency = 2;
}

void bn_bpe_free(bn_bpe *b)
{
    if (!b) return;
    bn_free(b->bytes.p);
    bn_free(b->off);
    bn_free(b->type);
    bn_free(b->merges);
    pmap_release(&b->rank);
    smap_release(&b->tokmap);
    bn_free(b->specials.p);
    if (b->re) pcre2_code_free(b->re);
    bn_free(b);
}

/* ---- the GPT-2 byte map ----------------------------------------------------------------------
 * Printable Latin-1 bytes stand for themselves; the others, in byte order, for code points
 * 256, 257, ... */

static int printable(unsigned c)
{
    return (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff);
}

static void byte_map_init(bn_bpe *b)
{
    for (int i = 0; i < 324; i++) b->byte_of[i] = -1;
    unsigned next = 256;
    for (unsigned c = 0; c < 256; c++) {
        const unsigned cp = printable(c) ? c : next++;
        b->cp_of[c] = (uint16_t)cp;
        b->byte_of[cp] = (int16_t)c;
    }
}

static bn_status bpe_new(bn_ctx *ctx, bn_bpe **out)
{
    bn_bpe *b = bn_calloc(1, sizeof *b);
    if (!b) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (tokenizer)");
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    b->eos = -1;
    byte_map_init(b);
    int err;
    PCRE2_SIZE erroff;
    b->re = pcre2_compile((PCRE2_SPTR)GPT2_REGEX, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &erroff, NULL);
    if (!b->re) {
        bn_bpe_free(b);
        return bn_ctx_set_error(ctx, BN_ERR_INTERNAL, "pre-tokenizer regex: PCRE2 error %d", err);
    }
    pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    if (grow(&b->off, &b->off_cap, 1, sizeof *b->off)) {
        bn_bpe_free(b);
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (tokenizer)");
    }
    b->off[0] = 0;
    *out = b;
    return BN_OK;
}

/* Appends a token; -1 when out of memory. Normal tokens are indexed by their bytes. */
static int add_token(bn_bpe *b, const void *s, size_t n, int32_t type)
{
    if (grow(&b->off, &b->off_cap, (size_t)b->n_tokens + 2, sizeof *b->off) ||
        grow(&b->type, &b->tok_cap, (size_t)b->n_tokens + 1, sizeof *b->type) ||
        bytes_push(&b->bytes, s, n))
        return -1;
    const int32_t id = b->n_tokens++;
    b->off[id + 1] = b->bytes.n;
    b->type[id] = type;
    if ((type == 3 || type == 4) && n > 0 && i32_push(&b->specials, id)) return -1;
    if (type == 1) {
        int64_t *v = smap_put(&b->tokmap, s, n, id);
        if (!v) return -1;
        if (n == 1 && b->byte_id[*(const unsigned char *)s] < 0)
            b->byte_id[*(const unsigned char *)s] = id;
    }
    return 0;
}

static int add_merge(bn_bpe *b, int32_t l, int32_t r, int32_t res)
{
    if (grow(&b->merges, &b->merge_cap, (size_t)b->n_merges + 1, sizeof *b->merges)) return -1;
    if (!pmap_get(&b->rank, PAIR(l, r))) {
        int64_t *v = pmap_put(&b->rank, PAIR(l, r), 0);
        if (!v) return -1;
        *v = (int64_t)b->n_merges << 32 | (uint32_t)res;
    }
    b->merges[b->n_merges][0] = l;
    b->merges[b->n_merges][1] = r;
    b->merges[b->n_merges][2] = res;
    b->n_merges++;
    return 0;
}

int32_t bn_bpe_n_vocab(const bn_bpe *b)
{
    return b->n_tokens;
}
int32_t bn_bpe_n_merges(const bn_bpe *b)
{
    return b->n_merges;
}
int32_t bn_bpe_eos(const bn_bpe *b)
{
    return b->eos;
}

const char *bn_bpe_token_bytes(const bn_bpe *b, int32_t id, size_t *len)
{
    if (id < 0 || id >= b->n_tokens) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = b->off[id + 1] - b->off[id];
    return (const char *)b->bytes.p + b->off[id];
}

bn_status bn_bpe_merge(const bn_bpe *b, int32_t r, int32_t *left, int32_t *right, int32_t *result)
{
    if (r < 0 || r >= b->n_merges) return BN_ERR_RANGE;
    *left = b->merges[r][0];
    *right = b->merges[r][1];
    *result = b->merges[r][2];
    return BN_OK;
}

/* ---- pre-tokenization ------------------------------------------------------------------------ */

typedef int (*word_fn)(void *arg, const char *w, size_t n);

/* Calls fn on each word of text; bytes no pattern matches (invalid UTF-8) are words too. */
static int pretokenize(const bn_bpe *b, const char *text, size_t len, word_fn fn, void *arg)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(b->re, NULL);
    if (!md) return -1;
    size_t pos = 0;
    int rc = 0;
    while (pos < len && rc == 0) {
        const int m = pcre2_match(b->re, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        if (m < 0) {
            rc = fn(arg, text + pos, len - pos);
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (s > pos) rc = fn(arg, text + pos, s - pos);
        if (e <= s) e = s + 1; /* never happens with this regex; guards the loop */
        if (rc == 0) rc = fn(arg, text + s, e - s);
        pos = e;
    }
    pcre2_match_data_free(md);
    return rc;
}

/* ---- training -------------------------------------------------------------------------------- */

typedef struct trainer {
    smap words; /* word bytes -> count */
} trainer;

static int count_word(void *arg, const char *w, size_t n)
{
    trainer *t = arg;
    int64_t *v = smap_put(&t->words, w, n, 0);
    if (!v) return -1;
    (*v)++;
    return 0;
}

/* Calls fn on each word of the text parts between occurrences of the special text. */
static int split_special(const bn_bpe *b, const char *text, size_t len, word_fn fn, void *arg)
{
    const char *sp = BN_BPE_EOS_TEXT;
    const size_t sl = strlen(sp);
    size_t pos = 0;
    while (pos < len) {
        const char *hit = memmem(text + pos, len - pos, sp, sl);
        const size_t end = hit ? (size_t)(hit - text) : len;
        if (end > pos && pretokenize(b, text + pos, end - pos, fn, arg)) return -1;
        pos = hit ? end + sl : len;
    }
    return 0;
}

typedef struct wordset {
    int32_t *sym;  /* all words' symbols */
    size_t *start; /* word i: sym[start[i] .. start[i] + len[i]) */
    uint32_t *len;
    int64_t *count;
    size_t n;
} wordset;

static void wordset_release(wordset *w)
{
    bn_free(w->sym);
    bn_free(w->start);
    bn_free(w->len);
    bn_free(w->count);
}

static int wordset_init(wordset *w, const smap *words)
{
    memset(w, 0, sizeof *w);
    w->sym = bn_malloc((words->keys.n + 1) * sizeof *w->sym);
    w->start = bn_malloc((words->n + 1) * sizeof *w->start);
    w->len = bn_malloc((words->n + 1) * sizeof *w->len);
    w->count = bn_malloc((words->n + 1) * sizeof *w->count);
    if (!w->sym || !w->start || !w->len || !w->count) return -1;
    /* in table order: a fixed function of the texts, so the result is deterministic */
    size_t k = 0;
    for (size_t i = 0; i < words->cap; i++) {
        const smap_slot *s = &words->s[i];
        if (!s->used) continue;
        w->start[k] = s->off;
        w->len[k] = s->len;
        w->count[k] = s->val;
        for (uint32_t j = 0; j < s->len; j++) w->sym[s->off + j] = words->keys.p[s->off + j];
        k++;
    }
    w->n = k;
    return 0;
}

/* Adds sign * count for every adjacent pair of word i. */
static int count_pairs(pmap *pc, const wordset *w, size_t i, int64_t sign)
{
    const int32_t *s = w->sym + w->start[i];
    for (uint32_t j = 0; j + 1 < w->len[i]; j++) {
        int64_t *v = pmap_put(pc, PAIR(s[j], s[j + 1]), 0);
        if (!v) return -1;
        *v += sign * w->count[i];
    }
    return 0;
}

/* Replaces each (l, r) in word i by res, left to right. */
static void merge_word(wordset *w, size_t i, int32_t l, int32_t r, int32_t res)
{
    int32_t *s = w->sym + w->start[i];
    uint32_t o = 0;
    for (uint32_t j = 0; j < w->len[i]; j++) {
        if (j + 1 < w->len[i] && s[j] == l && s[j + 1] == r) {
            s[o++] = res;
            j++;
        } else
            s[o++] = s[j];
    }
    w->len[i] = o;
}

static int has_pair(const wordset *w, size_t i, int32_t l, int32_t r)
{
    const int32_t *s = w->sym + w->start[i];
    for (uint32_t j = 0; j + 1 < w->len[i]; j++)
        if (s[j] == l && s[j + 1] == r) return 1;
    return 0;
}

/* The most frequent pair (ties: smallest key); count 0 when none. */
static uint64_t best_pair(const pmap *pc, int64_t *count)
{
    uint64_t best = UINT64_MAX;
    int64_t bc = 0;
    for (size_t i = 0; i < pc->cap; i++) {
        const pmap_slot *s = &pc->s[i];
        if (s->key == UINT64_MAX || s->val <= 0) continue;
        if (s->val > bc || (s->val == bc && s->key < best)) {
            bc = s->val;
            best = s->key;
        }
    }
    *count = bc;
    return best;
}

/* One merge round; 1 when merged, 0 when no pair is frequent enough, -1 out of memory. */
static int merge_round(bn_bpe *b, wordset *w, pmap *pc, int64_t min_freq)
{
    int64_t cnt;
    const uint64_t k = best_pair(pc, &cnt);
    if (cnt < min_freq || cnt <= 0) return 0;
    const int32_t l = (int32_t)(k >> 32), r = (int32_t)(k & 0xffffffffu);
    size_t nl, nr;
    const char *bl = bn_bpe_token_bytes(b, l, &nl), *br = bn_bpe_token_bytes(b, r, &nr);
    unsigned char *cat = bn_malloc(nl + nr);
    if (!cat) return -1;
    memcpy(cat, bl, nl);
    memcpy(cat + nl, br, nr);
    const int64_t *existing = smap_get(&b->tokmap, cat, nl + nr);
    int32_t res = existing ? (int32_t)*existing : b->n_tokens;
    int fail = !existing && add_token(b, cat, nl + nr, 1);
    bn_free(cat);
    if (fail || add_merge(b, l, r, res)) return -1;
    for (size_t i = 0; i < w->n; i++) {
        if (!has_pair(w, i, l, r)) continue;
        if (count_pairs(pc, w, i, -1)) return -1;
        merge_word(w, i, l, r, res);
        if (count_pairs(pc, w, i, +1)) return -1;
    }
    return 1;
}

bn_status bn_bpe_train(bn_ctx *ctx, const char *const *texts, const size_t *lens, int n_texts,
                       const bn_bpe_params *p, bn_bpe **out)
{
    *out = NULL;
    if (p->vocab_size < 257 || p->vocab_size > BN_BPE_MAX_VOCAB || p->min_frequency < 1)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "vocabulary size %d out of range (257..%d)",
                                p->vocab_size, BN_BPE_MAX_VOCAB);
    bn_bpe *b;
    bn_status rc = bpe_new(ctx, &b);
    if (rc != BN_OK) return rc;
    trainer t = {0};
    wordset w = {0};
    pmap pc = {0};
    for (int i = 0; i < 256; i++) {
        const unsigned char c = (unsigned char)i;
        if (add_token(b, &c, 1, 1)) goto nomem;
    }
    for (int i = 0; i < n_texts; i++)
        if (split_special(b, texts[i], lens[i], count_word, &t)) goto nomem;
    if (wordset_init(&w, &t.words)) goto nomem;
    smap_release(&t.words);
    for (size_t i = 0; i < w.n; i++)
        if (count_pairs(&pc, &w, i, +1)) goto nomem;
    while (b->n_tokens < p->vocab_size - 1) {
        const int r = merge_round(b, &w, &pc, p->min_frequency);
        if (r < 0) goto nomem;
        if (r == 0) break;
    }
    if (add_token(b, BN_BPE_EOS_TEXT, strlen(BN_BPE_EOS_TEXT), 3)) goto nomem;
    b->eos = b->n_tokens - 1;
    wordset_release(&w);
    pmap_release(&pc);
    *out = b;
    return BN_OK;
nomem:
    smap_release(&t.words);
    wordset_release(&w);
    pmap_release(&pc);
    bn_bpe_free(b);
    return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (tokenizer training)");
}

/* ---- encoding -------------------------------------------------------------------------------- */

typedef struct encoder {
    const bn_bpe *b;
    i32vec out;
    i32vec cache_ids; /* per cached word: n, then n ids */
    smap cache;       /* word -> offset in cache_ids */
    i32vec tmp;
    int bad_byte;
} encoder;

/* BPE on one word into e->tmp. */
static int bpe_word(encoder *e, const unsigned char *w, size_t n)
{
    const bn_bpe *b = e->b;
    e->tmp.n = 0;
    for (size_t i = 0; i < n; i++) {
        if (b->byte_id[w[i]] < 0) {
            e->bad_byte = w[i] + 1;
            return -1;
        }
        if (i32_push(&e->tmp, b->byte_id[w[i]])) return -1;
    }
    int32_t *s = e->tmp.p;
    size_t len = e->tmp.n;
    for (;;) {
        int64_t best = INT64_MAX;
        for (size_t j = 0; j + 1 < len; j++) {
            const int64_t *v = pmap_get(&b->rank, PAIR(s[j], s[j + 1]));
            if (v && *v < best) best = *v;
        }
        if (best == INT64_MAX) break;
        const int32_t l = b->merges[best >> 32][0], r = b->merges[best >> 32][1];
        const int32_t res = (int32_t)(best & 0xffffffff);
        size_t o = 0;
        for (size_t j = 0; j < len; j++) {
            if (j + 1 < len && s[j] == l && s[j + 1] == r) {
                s[o++] = res;
                j++;
            } else
                s[o++] = s[j];
        }
        len = o;
    }
    e->tmp.n = len;
    return 0;
}

static int encode_word(void *arg, const char *w, size_t n)
{
    encoder *e = arg;
    const int64_t *c = smap_get(&e->cache, w, n);
    if (!c) {
        if (bpe_word(e, (const unsigned char *)w, n)) return -1;
        const size_t off = e->cache_ids.n;
        if (i32_push(&e->cache_ids, (int32_t)e->tmp.n)) return -1;
        for (size_t i = 0; i < e->tmp.n; i++)
            if (i32_push(&e->cache_ids, e->tmp.p[i])) return -1;
        int64_t *v = smap_put(&e->cache, w, n, (int64_t)off);
        if (!v) return -1;
        c = v;
    }
    const int32_t *ids = e->cache_ids.p + *c;
    for (int32_t i = 0; i < ids[0]; i++)
        if (i32_push(&e->out, ids[1 + i])) return -1;
    return 0;
}

#define HIT_NONE    SIZE_MAX       /* the special token does not occur any more */
#define HIT_UNKNOWN (SIZE_MAX - 1) /* not searched yet */

/* The next special token at or after pos (HIT_NONE: none). next[i] caches where special i
 * occurs next, so the text is scanned about once per special token. */
static size_t next_special(const bn_bpe *b, const char *text, size_t len, size_t pos, size_t *next,
                           int32_t *id, size_t *sl)
{
    size_t best = HIT_NONE;
    for (size_t i = 0; i < b->specials.n; i++) {
        size_t n;
        const char *s = bn_bpe_token_bytes(b, b->specials.p[i], &n);
        if (next[i] == HIT_UNKNOWN || next[i] < pos) {
            const char *hit = memmem(text + pos, len - pos, s, n);
            next[i] = hit ? (size_t)(hit - text) : HIT_NONE;
        }
        if (next[i] < best || (next[i] == best && best != HIT_NONE && n > *sl)) {
            best = next[i];
            *id = b->specials.p[i];
            *sl = n;
        }
    }
    return best;
}

bn_status bn_bpe_encode(const bn_bpe *b, const char *text, size_t len, int parse_special,
                        int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    encoder e = {.b = b};
    size_t *next = NULL;
    if (parse_special && b->specials.n) {
        next = bn_malloc(b->specials.n * sizeof *next);
        if (!next) return BN_ERR_NOMEM;
        for (size_t i = 0; i < b->specials.n; i++) next[i] = HIT_UNKNOWN;
    }
    size_t pos = 0;
    int fail = 0;
    while (pos < len && !fail) {
        int32_t sid = -1;
        size_t sl = 0, end = len;
        if (next) {
            end = next_special(b, text, len, pos, next, &sid, &sl);
            if (end == HIT_NONE) end = len;
        }
        if (end > pos) fail = pretokenize(b, text + pos, end - pos, encode_word, &e) != 0;
        if (!fail && end < len) fail = i32_push(&e.out, sid) != 0;
        pos = end < len ? end + sl : len;
    }
    bn_free(next);
    bn_free(e.cache_ids.p);
    bn_free(e.tmp.p);
    smap_release(&e.cache);
    if (fail) {
        bn_free(e.out.p);
        return e.bad_byte ? BN_ERR_FORMAT : BN_ERR_NOMEM;
    }
    if (!e.out.p && !(e.out.p = bn_malloc(sizeof(int32_t)))) return BN_ERR_NOMEM;
    *ids = e.out.p;
    *n = e.out.n;
    return BN_OK;
}

bn_status bn_bpe_decode(const bn_bpe *b, const int32_t *ids, size_t n, char **out, size_t *len)
{
    bytevec v = {0};
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = bn_bpe_token_bytes(b, ids[i], &k);
        if (!s) {
            bn_free(v.p);
            return BN_ERR_INVALID;
        }
        if (bytes_push(&v, s, k)) {
            bn_free(v.p);
            return BN_ERR_NOMEM;
        }
    }
    if (grow(&v.p, &v.cap, v.n + 1, 1)) {
        bn_free(v.p);
        return BN_ERR_NOMEM;
    }
    v.p[v.n] = 0;
    *out = (char *)v.p;
    if (len) *len = v.n;
    return BN_OK;
}

/* Token bytes -> byte-mapped UTF-8 (each byte becomes one 1- or 2-byte character). */
static int map_bytes(const bn_bpe *b, const char *s, size_t n, bytevec *out)
{
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t cp = b->cp_of[(unsigned char)s[i]];
        unsigned char u[2];
        size_t k = 1;
        if (cp < 0x80)
            u[0] = (unsigned char)cp;
        else {
            u[0] = (unsigned char)(0xc0 | (cp >> 6));
            u[1] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 2;
        }
        if (bytes_push(out, u, k)) return -1;
    }
    return grow(&out->p, &out->cap, out->n + 1, 1) ? -1 : (out->p[out->n] = 0, 0);
}

/* Byte-mapped UTF-8 -> bytes; -1 when a character is not in the map. */
static int unmap_bytes(const bn_bpe *bpe, const char *s, size_t n, bytevec *out)
{
    out->n = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if ((c & 0xe0) == 0xc0 && i + 1 < n && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
            cp = (uint32_t)(c & 0x1f) << 6 | ((unsigned char)s[i + 1] & 0x3f);
            i += 2;
        } else
            return -1;
        const int b = cp < 324 ? bpe->byte_of[cp] : -1;
        if (b < 0) return -1;
        const unsigned char ub = (unsigned char)b;
        if (bytes_push(out, &ub, 1)) return -1;
    }
    return 0;
}

/* ---- GGUF -------------------------------------------------------------------------------------
 */

bn_status bn_bpe_set_gguf_keys(const bn_bpe *b, bn_gguf_writer *w)
{
    const size_t nt = (size_t)b->n_tokens, nm = (size_t)b->n_merges;
    char **tok = bn_calloc(nt + 1, sizeof *tok), **mer = bn_calloc(nm + 1, sizeof *mer);
    size_t *tlen = bn_calloc(nt + 1, sizeof *tlen);
    bytevec v = {0}, v2 = {0};
    bn_status rc = BN_ERR_NOMEM;
    if (!tok || !mer || !tlen) goto done;
    for (size_t i = 0; i < nt; i++) {
        size_t n;
        const char *s = bn_bpe_token_bytes(b, (int32_t)i, &n);
        if (b->type[i] == 1) {
            if (map_bytes(b, s, n, &v)) goto done;
            s = (const char *)v.p;
            n = v.n;
        }
        if (!(tok[i] = bn_malloc(n + 1))) goto done;
        memcpy(tok[i], s, n);
        tok[i][n] = 0;
        tlen[i] = n;
    }
    for (size_t r = 0; r < nm; r++) {
        size_t nl, nr;
        const char *l = bn_bpe_token_bytes(b, b->merges[r][0], &nl);
        const char *rr = bn_bpe_token_bytes(b, b->merges[r][1], &nr);
        if (map_bytes(b, l, nl, &v) || map_bytes(b, rr, nr, &v2)) goto done;
        if (!(mer[r] = bn_malloc(v.n + v2.n + 2))) goto done;
        memcpy(mer[r], v.p, v.n);
        mer[r][v.n] = ' ';
        memcpy(mer[r] + v.n + 1, v2.p, v2.n);
        mer[r][v.n + 1 + v2.n] = 0;
    }
    rc = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (rc == BN_OK) rc = bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    if (rc == BN_OK)
        rc = bn_gguf_writer_set_arr_strn(w, "tokenizer.ggml.tokens", (const char *const *)tok, tlen,
                                         nt);
    if (rc == BN_OK)
        rc = bn_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BN_GGUF_I32, b->type, nt);
    if (rc == BN_OK)
        rc = bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mer, nm);
    if (rc == BN_OK && b->eos >= 0) {
        rc = bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)b->eos);
        if (rc == BN_OK)
            rc = bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)b->eos);
        if (rc == BN_OK) rc = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    }
done:
    for (size_t i = 0; tok && i < nt; i++) bn_free(tok[i]);
    for (size_t i = 0; mer && i < nm; i++) bn_free(mer[i]);
    bn_free(tok);
    bn_free(mer);
    bn_free(tlen);
    bn_free(v.p);
    bn_free(v2.p);
    return rc;
}

bn_status bn_bpe_write_gguf(bn_ctx *ctx, const bn_bpe *b, const char *path)
{
    bn_gguf_writer *w;
    bn_status rc = bn_gguf_writer_new(&w);
    if (rc != BN_OK) return bn_ctx_set_error(ctx, rc, "out of memory (GGUF writer)");
    rc = bn_gguf_writer_set_str(w, "general.architecture", "gpt2");
    if (rc == BN_OK) rc = bn_gguf_writer_set_str(w, "general.name", "bitnet-bpe");
    if (rc == BN_OK) rc = bn_bpe_set_gguf_keys(b, w);
    if (rc == BN_OK)
        rc = bn_gguf_writer_write(ctx, w, path);
    else
        rc = bn_ctx_set_error(ctx, rc, "cannot build the vocabulary GGUF: %s", bn_status_str(rc));
    bn_gguf_writer_free(w);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------------
 */

static bn_status load_tokens(bn_ctx *ctx, bn_bpe *b, const bn_gguf *g, int64_t kt)
{
    const int64_t ktt = bn_gguf_find_key(g, "tokenizer.ggml.token_type");
    const uint64_t n = bn_gguf_arr_n(g, kt);
    if (n < 1 || n > BN_BPE_MAX_VOCAB)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer: %llu tokens",
                                (unsigned long long)n);
    const int32_t *types = NULL;
    if (ktt >= 0) {
        if (bn_gguf_kv_type(g, ktt) != BN_GGUF_ARRAY || bn_gguf_arr_type(g, ktt) != BN_GGUF_I32 ||
            bn_gguf_arr_n(g, ktt) != n)
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer.ggml.token_type is malformed");
        types = bn_gguf_arr_data(g, ktt);
    }
    bytevec v = {0};
    bn_status rc = BN_OK;
    for (uint64_t i = 0; i < n && rc == BN_OK; i++) {
        size_t len;
        const char *s = bn_gguf_arr_str(g, kt, i, &len);
        int32_t type = types ? types[i] : 1;
        if (type == 1 || type == 6) {
            type = 1;
            if (unmap_bytes(b, s, len, &v))
                rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "token %llu is not in the GPT-2 byte map",
                                      (unsigned long long)i);
            else if (add_token(b, v.p, v.n, 1))
                rc = BN_ERR_NOMEM;
        } else if (add_token(b, s, len, type))
            rc = BN_ERR_NOMEM;
    }
    bn_free(v.p);
    return rc == BN_ERR_NOMEM ? bn_ctx_set_error(ctx, rc, "out of memory (vocabulary)") : rc;
}

static bn_status load_merges(bn_ctx *ctx, bn_bpe *b, const bn_gguf *g, int64_t km)
{
    const uint64_t n = bn_gguf_arr_n(g, km);
    bytevec l = {0}, r = {0};
    bn_status rc = BN_OK;
    for (uint64_t i = 0; i < n && rc == BN_OK; i++) {
        size_t len;
        const char *s = bn_gguf_arr_str(g, km, i, &len);
        const char *sp = memchr(s, ' ', len);
        if (!sp || unmap_bytes(b, s, (size_t)(sp - s), &l) ||
            unmap_bytes(b, sp + 1, len - (size_t)(sp - s) - 1, &r)) {
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "merge %llu is malformed",
                                  (unsigned long long)i);
            break;
        }
        const int64_t *il = smap_get(&b->tokmap, l.p, l.n), *ir = smap_get(&b->tokmap, r.p, r.n);
        if (bytes_push(&l, r.p, r.n)) {
            rc = BN_ERR_NOMEM;
            break;
        }
        const int64_t *res = smap_get(&b->tokmap, l.p, l.n);
        if (!il || !ir || !res)
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                  "merge %llu names a token not in the vocabulary",
                                  (unsigned long long)i);
        else if (add_merge(b, (int32_t)*il, (int32_t)*ir, (int32_t)*res))
            rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (merges)");
    }
    bn_free(l.p);
    bn_free(r.p);
    return rc;
}

bn_status bn_bpe_from_gguf(bn_ctx *ctx, const bn_gguf *g, bn_bpe **out)
{
    *out = NULL;
    const char *model = NULL;
    if (bn_gguf_get_str(g, "tokenizer.ggml.model", &model) != BN_OK || strcmp(model, "gpt2") != 0)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "tokenizer model '%s' is not byte-level BPE (gpt2)",
                                model ? model : "(none)");
    const int64_t kt = bn_gguf_find_key(g, "tokenizer.ggml.tokens");
    const int64_t km = bn_gguf_find_key(g, "tokenizer.ggml.merges");
    if (kt < 0 || bn_gguf_kv_type(g, kt) != BN_GGUF_ARRAY ||
        bn_gguf_arr_type(g, kt) != BN_GGUF_STRING || km < 0 ||
        bn_gguf_kv_type(g, km) != BN_GGUF_ARRAY || bn_gguf_arr_type(g, km) != BN_GGUF_STRING)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer: tokens or merges missing");
    bn_bpe *b;
    bn_status rc = bpe_new(ctx, &b);
    if (rc == BN_OK) rc = load_tokens(ctx, b, g, kt);
    if (rc == BN_OK) rc = load_merges(ctx, b, g, km);
    uint32_t eos;
    if (rc == BN_OK && bn_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos) == BN_OK &&
        eos < (uint32_t)b->n_tokens)
        b->eos = (int32_t)eos;
    if (rc != BN_OK) {
        bn_bpe_free(b);
        return rc;
    }
    *out = b;
    return BN_OK;
}
