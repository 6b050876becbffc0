/* tokenizer_spm.c - SentencePiece-style BPE by token score ("llama" vocabularies).
 *
 * The algorithm of llama.cpp's llm_tokenizer_spm: spaces become U+2581, the text is cut
 * into UTF-8 characters, and the adjacent pair whose concatenation is the token with the
 * highest score (leftmost on ties) is merged until no pair forms a token. A symbol that is
 * not a token falls back to one <0xXX> token per byte. */
#include "tokenizer_internal.h"

#include <string.h>

typedef struct spm_sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes in the escaped text; n = 0 once merged away */
} spm_sym;

typedef struct spm_bigram {
    int32_t left, right;
    float score;
    uint32_t size;
} spm_bigram;

typedef struct spm_heap {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* a comes out before b: higher score, then the leftmost pair */
static int spm_before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bn_status heap_push(spm_heap *h, spm_bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *v = bn_calloc(cap, sizeof *v);
        if (!v) return BN_ERR_NOMEM;
        if (h->n) memcpy(v, h->v, h->n * sizeof *v);
        bn_free(h->v);
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!spm_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return BN_OK;
}

static spm_bigram heap_pop(spm_heap *h)
{
    spm_bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && spm_before(&h->v[c + 1], &h->v[c])) c++;
        if (!spm_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct spm_state {
    const bn_tokenizer *tok;
    const char *text; /* escaped */
    spm_sym *sym;
    spm_heap heap;
} spm_state;

static bn_status try_add_bigram(spm_state *st, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) return BN_OK;
    uint32_t size = st->sym[left].n + st->sym[right].n;
    int32_t id = bn__tok_find(st->tok, st->text + st->sym[left].start, size);
    if (id < 0) return BN_OK;
    spm_bigram b = {left, right, st->tok->tok[id].score, size};
    return heap_push(&st->heap, b);
}

static int32_t byte_token(const bn_tokenizer *tok, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
    int32_t id = bn__tok_find(tok, buf, 6);
    if (id < 0) id = bn__tok_find(tok, (const char *)&c, 1);
    return id >= 0 ? id : tok->unk;
}

static bn_status resegment(spm_state *st, const spm_sym *s, bn__ids *out)
{
    const char *p = st->text + s->start;
    int32_t id = bn__tok_find(st->tok, p, s->n);
    if (id >= 0) return bn__ids_push(out, id);
    /* Only single characters can fail to be tokens (every merge forms one): bytes. */
    for (uint32_t j = 0; j < s->n; j++) {
        int32_t b = byte_token(st->tok, (unsigned char)p[j]);
        if (b < 0) continue; /* no byte token and no <unk>: dropped */
        bn_status rc = bn__ids_push(out, b);
        if (rc != BN_OK) return rc;
    }
    return BN_OK;
}

/* Escapes (optional leading space, spaces -> U+2581) into a new buffer. */
static char *escape(const char *text, size_t len, int prefix_space, size_t *out_len)
{
    size_t spaces = prefix_space ? 1 : 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t n = len + (prefix_space ? 1 : 0) + 2 * spaces;
    char *buf = bn_malloc(n ? n : 1);
    if (!buf) return NULL;
    size_t o = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else
            buf[o++] = text[i];
    }
    *out_len = o;
    return buf;
}

static bn_status spm_merge(spm_state *st)
{
    bn_status rc = BN_OK;
    while (st->heap.n && rc == BN_OK) {
        spm_bigram b = heap_pop(&st->heap);
        spm_sym *l = &st->sym[b.left], *r = &st->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) st->sym[r->next].prev = b.left;
        rc = try_add_bigram(st, l->prev, b.left);
        if (rc == BN_OK) rc = try_add_bigram(st, b.left, l->next);
    }
    return rc;
}

bn_status bn__spm_encode(const bn_tokenizer *tok, const char *text, size_t len, int prefix_space,
                         bn__ids *out)
{
    size_t n = 0, nsym = 0;
    spm_state st = {.tok = tok};
    bn_status rc = BN_ERR_NOMEM;
    char *buf = escape(text, len, prefix_space, &n);
    if (!buf) return BN_ERR_NOMEM;
    if (n == 0) {
        bn_free(buf);
        return BN_OK;
    }
    st.text = buf;
    for (size_t o = 0; o < n; nsym++) o += bn__utf8_len((unsigned char)buf[o]);
    st.sym = bn_calloc(nsym, sizeof *st.sym);
    if (!st.sym) goto done;
    for (size_t o = 0, i = 0; o < n; i++) {
        size_t k = bn__utf8_len((unsigned char)buf[o]);
        if (k > n - o) k = n - o;
        st.sym[i] = (spm_sym){(int32_t)i - 1, o + k == n ? -1 : (int32_t)i + 1, (uint32_t)o,
                              (uint32_t)k};
        o += k;
    }
    rc = BN_OK;
    for (size_t i = 1; i < nsym && rc == BN_OK; i++)
        rc = try_add_bigram(&st, (int32_t)i - 1, (int32_t)i);
    if (rc == BN_OK) rc = spm_merge(&st);
    for (int32_t i = 0; i != -1 && rc == BN_OK; i = st.sym[i].next)
        rc = resegment(&st, &st.sym[i], out);
done:
    bn_free(st.heap.v);
    bn_free(st.sym);
    bn_free(buf);
    return rc;
}
