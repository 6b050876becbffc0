/* test_tokenizer.c - SPM and byte-level BPE tokenizers against llama.cpp's test vectors,
 * special tokens, BOS/EOS, decoding, malformed vocabularies and allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"

#define DATA       "tests/data/"
#define SPM_GGUF   DATA "ggml-vocab-llama-spm.gguf"
#define GPT2_GGUF  DATA "ggml-vocab-gpt-2.gguf"
#define LLAMA3_INP DATA "ggml-vocab-llama-bpe.gguf"
#ifndef LLAMA3_JSON /* relative to the repository root, where the tests run */
#define LLAMA3_JSON "../shared/data/tokenizers/llama3-tokenizer.json"
#endif

/* ---- helpers ------------------------------------------------------------------------- */

static bn_ctx *new_ctx(void)
{
    bn_ctx *ctx;
    bn_ctx_params p = {.n_threads = 1};
    assert_int_equal(bn_ctx_new(&ctx, &p), BN_OK);
    return ctx;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    printf("    %s:", what);
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

/* The vectors of llama.cpp's test-tokenizer-0: BASE.inp holds the strings, each followed
 * by "\n__ggml_vocab_test__\n"; BASE.out one line of ids per string. */
typedef struct vectors {
    size_t n;
    const char *text[128];
    size_t len[128];
    int32_t *ids[128];
    size_t n_ids[128];
    char *inp, *out;
} vectors;

static void parse_ids(char *line, int32_t **ids, size_t *n)
{
    size_t cap = strlen(line) / 2 + 1;
    *ids = calloc(cap, sizeof **ids);
    *n = 0;
    for (char *p = line;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
}

static void load_vectors(const char *base, vectors *v)
{
    char path[512];
    size_t inp_len, out_len;
    memset(v, 0, sizeof *v);
    snprintf(path, sizeof path, "%s.inp", base);
    v->inp = read_file(path, &inp_len);
    snprintf(path, sizeof path, "%s.out", base);
    v->out = read_file(path, &out_len);
    if (!v->inp || !v->out)
        fail_msg("cannot read %s.inp/.out (run from the repository root)", base);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < inp_len && v->n < 128;) {
        char *next = memmem(v->inp + pos, inp_len - pos, sep, sizeof sep - 1);
        size_t end = next ? (size_t)(next - v->inp) : inp_len;
        v->text[v->n] = v->inp + pos;
        v->len[v->n++] = end - pos;
        if (!next) break;
        pos = end + sizeof sep - 1;
    }
    size_t k = 0;
    for (char *line = v->out; k < 128 && line < v->out + out_len; k++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        parse_ids(line, &v->ids[k], &v->n_ids[k]);
        if (!nl) break;
        line = nl + 1;
    }
    assert_int_equal(k, v->n);
}

static void free_vectors(vectors *v)
{
    for (size_t i = 0; i < v->n; i++) free(v->ids[i]);
    free(v->inp);
    free(v->out);
}

/* Encodes every vector (no BOS, no special parsing, as test-tokenizer-0 does), compares,
 * and checks that decoding gives the text back. */
static void run_vectors(const bn_tokenizer *tok, const char *base, const char *name)
{
    vectors v;
    load_vectors(base, &v);
    size_t bad = 0, bad_rt = 0;
    for (size_t i = 0; i < v.n; i++) {
        int32_t *ids;
        size_t n;
        assert_int_equal(bn_tokenizer_encode_alloc(tok, v.text[i], v.len[i], 0, &ids, &n), BN_OK);
        int ok = n == v.n_ids[i] && (n == 0 || memcmp(ids, v.ids[i], n * sizeof *ids) == 0);
        if (!ok) {
            bad++;
            printf("  %s: vector %zu '", name, i);
            print_escaped(v.text[i], v.len[i]);
            printf("'\n");
            print_ids("expected", v.ids[i], v.n_ids[i]);
            print_ids("got     ", ids, n);
        }
        char *s;
        size_t len;
        assert_int_equal(bn_tokenizer_decode_alloc(tok, ids, n, 0, &s, &len), BN_OK);
        if (len != v.len[i] || memcmp(s, v.text[i], len) != 0) {
            bad_rt++;
            printf("  %s: round trip %zu '", name, i);
            print_escaped(v.text[i], v.len[i]);
            printf("' -> '");
            print_escaped(s, len);
            printf("'\n");
        }
        bn_free(s);
        /* the fixed-buffer form agrees, and reports the size it needs */
        int32_t few[4];
        size_t need;
        bn_status rc = bn_tokenizer_encode(tok, v.text[i], v.len[i], 0, few, 4, &need);
        assert_int_equal(need, n);
        assert_int_equal(rc, n > 4 ? BN_ERR_RANGE : BN_OK);
        if (n) assert_memory_equal(few, ids, (n < 4 ? n : 4) * sizeof *ids);
        bn_free(ids);
    }
    printf("  %s: %zu/%zu vectors match, %zu/%zu round trips exact\n", name, v.n - bad, v.n,
           v.n - bad_rt, v.n);
    free_vectors(&v);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_rt, 0);
}

static bn_tokenizer *load_gguf_tok(bn_ctx *ctx, const char *path)
{
    bn_gguf *g;
    if (bn_gguf_open(ctx, path, &g) != BN_OK)
        fail_msg("%s: %s (run from the repository root)", path, bn_ctx_errmsg(ctx));
    bn_tokenizer *tok;
    bn_status rc = bn_tokenizer_from_gguf(ctx, g, &tok);
    if (rc != BN_OK) fail_msg("%s: %s", path, bn_ctx_errmsg(ctx));
    bn_gguf_close(g); /* the tokenizer keeps copies */
    return tok;
}

static size_t enc(const bn_tokenizer *tok, const char *s, unsigned flags, int32_t *ids, size_t max)
{
    size_t n;
    assert_int_equal(bn_tokenizer_encode(tok, s, strlen(s), flags, ids, max, &n), BN_OK);
    return n;
}

/* ---- llama.cpp's vectors ------------------------------------------------------------------ */

static void test_spm_vectors(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok = load_gguf_tok(ctx, SPM_GGUF);
    assert_int_equal(bn_tokenizer_kind_of(tok), BN_TOKENIZER_SPM);
    assert_int_equal(bn_tokenizer_n_vocab(tok), 32000);
    assert_int_equal(bn_tokenizer_bos(tok), 1);
    assert_int_equal(bn_tokenizer_eos(tok), 2);
    assert_int_equal(bn_tokenizer_unk(tok), 0);
    assert_int_equal(bn_tokenizer_add_bos(tok), 1);
    assert_int_equal(bn_tokenizer_add_space_prefix(tok), 1);
    run_vectors(tok, SPM_GGUF, "llama-spm");
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

static void test_gpt2_vectors(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok = load_gguf_tok(ctx, GPT2_GGUF);
    assert_int_equal(bn_tokenizer_kind_of(tok), BN_TOKENIZER_BPE);
    assert_string_equal(bn_tokenizer_pre(tok), "gpt-2");
    assert_int_equal(bn_tokenizer_n_vocab(tok), 50257);
    assert_int_equal(bn_tokenizer_n_merges(tok), 50000);
    assert_int_equal(bn_tokenizer_eos(tok), 50256);
    assert_int_equal(bn_tokenizer_eot(tok), 50256); /* "<|endoftext|>" */
    assert_true(bn_tokenizer_is_eog(tok, 50256));
    assert_false(bn_tokenizer_is_eog(tok, 0));
    run_vectors(tok, GPT2_GGUF, "gpt-2");
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

/* LLaMA-3's vocabulary from tokenizer.json: model.vocab, model.merges ("a b" or [a, b]),
 * added_tokens (special ones as control tokens). */
typedef struct json_vocab {
    cJSON *root;
    char **tokens;
    int32_t *types;
    char **merges;
    size_t n_tokens, n_merges;
} json_vocab;

static int load_json_vocab(const char *path, json_vocab *jv)
{
    memset(jv, 0, sizeof *jv);
    char *txt = read_file(path, NULL);
    if (!txt) return -1;
    jv->root = cJSON_Parse(txt);
    free(txt);
    assert_non_null(jv->root);
    cJSON *model = cJSON_GetObjectItem(jv->root, "model");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    cJSON *merges = cJSON_GetObjectItem(model, "merges");
    cJSON *added = cJSON_GetObjectItem(jv->root, "added_tokens");
    assert_true(cJSON_IsObject(vocab) && cJSON_IsArray(merges));
    int max_id = -1;
    cJSON *it;
    cJSON_ArrayForEach(it, vocab) if (it->valueint > max_id) max_id = it->valueint;
    cJSON_ArrayForEach(it, added)
    {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        if (id > max_id) max_id = id;
    }
    jv->n_tokens = (size_t)max_id + 1;
    jv->tokens = calloc(jv->n_tokens, sizeof *jv->tokens);
    jv->types = calloc(jv->n_tokens, sizeof *jv->types);
    cJSON_ArrayForEach(it, vocab)
    {
        jv->tokens[it->valueint] = it->string;
        jv->types[it->valueint] = BN_TOKEN_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(it, added)
    {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        jv->tokens[id] = cJSON_GetObjectItem(it, "content")->valuestring;
        jv->types[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special"))
                                ? BN_TOKEN_TYPE_CONTROL
                                : BN_TOKEN_TYPE_USER_DEFINED;
    }
    for (size_t i = 0; i < jv->n_tokens; i++) assert_non_null(jv->tokens[i]);
    jv->n_merges = (size_t)cJSON_GetArraySize(merges);
    jv->merges = calloc(jv->n_merges, sizeof *jv->merges);
    size_t k = 0;
    cJSON_ArrayForEach(it, merges)
    {
        if (cJSON_IsString(it)) {
            jv->merges[k++] = strdup(it->valuestring);
        } else {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(it, 1)->valuestring;
            char *m = malloc(strlen(a) + strlen(b) + 2);
            sprintf(m, "%s %s", a, b);
            jv->merges[k++] = m;
        }
    }
    return 0;
}

static void free_json_vocab(json_vocab *jv)
{
    for (size_t i = 0; i < jv->n_merges; i++) free(jv->merges[i]);
    free(jv->merges);
    free(jv->tokens);
    free(jv->types);
    cJSON_Delete(jv->root);
}

static void test_llama_bpe_vectors(void **state)
{
    (void)state;
    if (access(LLAMA3_JSON, R_OK) != 0) {
        printf("  SKIP: %s not found (the LLaMA-3 vectors need ../shared)\n", LLAMA3_JSON);
        skip();
    }
    json_vocab jv;
    assert_int_equal(load_json_vocab(LLAMA3_JSON, &jv), 0);
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    v.model = "gpt2";
    v.pre = "llama-bpe";
    v.n_tokens = jv.n_tokens;
    v.tokens = (const char *const *)jv.tokens;
    v.types = jv.types;
    v.n_merges = jv.n_merges;
    v.merges = (const char *const *)jv.merges;
    v.bos_id = 128000;
    v.eos_id = 128001;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok;
    double t0 = bn_time_now();
    bn_status rc = bn_tokenizer_from_vocab(ctx, &v, &tok);
    if (rc != BN_OK) fail_msg("%s", bn_ctx_errmsg(ctx));
    printf("  llama-bpe: %zu tokens, %zu merges built in %.0f ms\n", jv.n_tokens, jv.n_merges,
           (bn_time_now() - t0) * 1e3);
    free_json_vocab(&jv); /* the tokenizer keeps copies */
    assert_int_equal(bn_tokenizer_n_vocab(tok), 128256);
    assert_int_equal(bn_tokenizer_add_bos(tok), 1);  /* llama-bpe's default */
    assert_int_equal(bn_tokenizer_eot(tok), 128009); /* "<|eot_id|>" */
    assert_true(bn_tokenizer_is_eog(tok, 128009));
    assert_true(bn_tokenizer_is_eog(tok, 128001));
    assert_false(bn_tokenizer_is_eog(tok, 128000));
    run_vectors(tok, LLAMA3_INP, "llama-bpe");

    /* special tokens and BOS */
    int32_t ids[64];
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    size_t n = enc(tok, chat, BN_TOKENIZE_ADD_SPECIAL | BN_TOKENIZE_PARSE_SPECIAL, ids, 64);
    assert_true(n >= 6);
    assert_int_equal(ids[0], 128000);
    assert_int_equal(ids[1], 128006);
    assert_int_equal(ids[n - 1], 128009);
    size_t m = enc(tok, chat, 0, ids, 64);
    for (size_t i = 0; i < m; i++) assert_true(ids[i] < 128000);
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

/* ---- special tokens, BOS/EOS, decoding ------------------------------------------------- */

static void test_spm_special(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok = load_gguf_tok(ctx, SPM_GGUF);
    int32_t ids[32];
    /* " Hello" is 15043 and " World" 2787 (llama.cpp's vectors) */
    size_t n = enc(tok, "Hello World", BN_TOKENIZE_ADD_SPECIAL, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    assert_int_equal(ids[2], 2787);
    /* ADD_BOS without ADD_SPECIAL, and EOS on request */
    n = enc(tok, "Hello", BN_TOKENIZE_ADD_BOS | BN_TOKENIZE_ADD_EOS, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 2);
    /* empty text: nothing, or just BOS */
    assert_int_equal(enc(tok, "", 0, ids, 32), 0);
    assert_int_equal(enc(tok, "", BN_TOKENIZE_ADD_SPECIAL, ids, 32), 1);
    /* "<s>" is text unless special tokens are parsed; a space prefix follows a special token */
    n = enc(tok, "<s>Hello", BN_TOKENIZE_PARSE_SPECIAL, ids, 32);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043);
    n = enc(tok, "<s>Hello", 0, ids, 32);
    assert_true(n > 2);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], 1);
    /* decoding: the prefix space goes, BOS is dropped unless asked for */
    int32_t seq[] = {1, 15043, 2787, 2};
    char buf[64];
    size_t need;
    assert_int_equal(bn_tokenizer_decode(tok, seq, 4, 0, buf, sizeof buf, &need), BN_OK);
    assert_string_equal(buf, "Hello World");
    assert_int_equal(need, 11);
    assert_int_equal(bn_tokenizer_decode(tok, seq, 4, BN_DECODE_SPECIAL, buf, sizeof buf, &need),
                     BN_OK);
    assert_string_equal(buf, "<s>Hello World</s>");
    assert_int_equal(bn_tokenizer_decode(tok, seq, 4, BN_DECODE_SPECIAL | BN_DECODE_REMOVE_SPECIAL,
                                         buf, sizeof buf, &need),
                     BN_OK);
    assert_string_equal(buf, "Hello World</s>"); /* the model adds no EOS: it stays */
    assert_int_equal(bn_tokenizer_decode(tok, seq, 4, BN_DECODE_KEEP_SPACE, buf, sizeof buf, &need),
                     BN_OK);
    assert_string_equal(buf, " Hello World");
    /* too small a buffer: the size it needs, a NUL-terminated prefix */
    assert_int_equal(bn_tokenizer_decode(tok, seq, 4, 0, buf, 5, &need), BN_ERR_RANGE);
    assert_int_equal(need, 11);
    assert_true(strlen(buf) < 5);
    int32_t badid = 32000;
    assert_int_equal(bn_tokenizer_decode(tok, &badid, 1, 0, buf, sizeof buf, &need),
                     BN_ERR_INVALID);
    /* pieces: byte tokens give the byte, U+2581 a space */
    size_t len;
    const char *p = bn_tokenizer_piece(tok, 13, &len); /* <0x0A> */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], '\n');
    p = bn_tokenizer_piece(tok, 15043, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, " Hello", 6);
    assert_null(bn_tokenizer_piece(tok, -1, &len));
    assert_int_equal(bn_tokenizer_find(tok, "\xe2\x96\x81Hello", 8), 15043);
    assert_int_equal(bn_tokenizer_find(tok, "no such token at all", 20), BN_TOKEN_NONE);
    assert_int_equal(bn_tokenizer_token_type(tok, 1), BN_TOKEN_TYPE_CONTROL);
    assert_int_equal(bn_tokenizer_token_type(tok, 3), BN_TOKEN_TYPE_BYTE);
    assert_true(bn_tokenizer_token_score(tok, 15043) < 0.0f);
    /* bytes outside the vocabulary fall back to <0xXX> tokens: a lone 0xff byte */
    n = enc(tok, "\xff", 0, ids, 32);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 29871); /* the prefix "\xe2\x96\x81" */
    assert_int_equal(ids[1], 3 + 0xff);
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

static void test_gpt2_special(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok = load_gguf_tok(ctx, GPT2_GGUF);
    int32_t ids[32];
    size_t n = enc(tok, "a<|endoftext|>b", BN_TOKENIZE_PARSE_SPECIAL, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 50256);
    n = enc(tok, "a<|endoftext|>b", 0, ids, 32);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], 50256);
    /* GPT-2 adds no BOS by default; forcing it works */
    assert_int_equal(bn_tokenizer_add_bos(tok), 0);
    n = enc(tok, "Hello", BN_TOKENIZE_ADD_SPECIAL, ids, 32);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 15496);
    n = enc(tok, "Hello", BN_TOKENIZE_ADD_BOS, ids, 32);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 50256);
    /* pieces go back through the byte map; clean-up of spaces on request */
    size_t len;
    const char *p = bn_tokenizer_piece(tok, 220, &len); /* "Ġ" */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], ' ');
    n = enc(tok, "Hello , world ! it 's", 0, ids, 32);
    char *s;
    assert_int_equal(bn_tokenizer_decode_alloc(tok, ids, n, BN_DECODE_CLEAN_SPACES, &s, &len),
                     BN_OK);
    assert_string_equal(s, "Hello, world! it's");
    bn_free(s);
    /* invalid UTF-8 goes through byte by byte and comes back exact */
    const char bad[] = "a\xff\xfe b\xc3";
    int32_t *v;
    assert_int_equal(bn_tokenizer_encode_alloc(tok, bad, sizeof bad - 1, 0, &v, &n), BN_OK);
    assert_int_equal(bn_tokenizer_decode_alloc(tok, v, n, 0, &s, &len), BN_OK);
    assert_int_equal(len, sizeof bad - 1);
    assert_memory_equal(s, bad, len);
    bn_free(s);
    bn_free(v);
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

/* ---- small vocabularies built from arrays ----------------------------------------------- */

static const char *const tiny_bpe_tokens[] = {"a",   "b",  "c",          "Ġ",     "ab",
                                              "abc", "Ġa", "<|eot_id|>", "<user>"};
static const int32_t tiny_bpe_types[] = {1, 1, 1, 1, 1, 1, 1, 3, 4};
static const char *const tiny_bpe_merges[] = {"a b", "ab c", "Ġ a"};

static void tiny_bpe(bn_tokenizer_vocab *v)
{
    bn_tokenizer_vocab_init(v);
    v->model = "gpt2";
    v->pre = "gpt-2";
    v->n_tokens = 9;
    v->tokens = tiny_bpe_tokens;
    v->types = tiny_bpe_types;
    v->n_merges = 3;
    v->merges = tiny_bpe_merges;
    v->bos_id = BN_TOKEN_NONE;
    v->eos_id = 7;
    v->chat_template = "{{ messages }}";
}

static void test_vocab_bpe(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer_vocab v;
    tiny_bpe(&v);
    bn_tokenizer *tok;
    assert_int_equal(bn_tokenizer_from_vocab(ctx, &v, &tok), BN_OK);
    int32_t ids[16];
    /* "abc" merges fully; in "Ġab" the pair "a b" (rank 0) beats "Ġ a" (rank 2) */
    size_t n = enc(tok, "abc ab", 0, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);
    n = enc(tok, " a", 0, ids, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 6);
    /* user-defined tokens are split out even without PARSE_SPECIAL; control ones not */
    n = enc(tok, "a<user>b", 0, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 8);
    assert_int_equal(bn_tokenizer_eot(tok), 7);
    assert_true(bn_tokenizer_is_eog(tok, 7));
    assert_int_equal(bn_tokenizer_bos(tok), BN_TOKEN_NONE);
    assert_string_equal(bn_tokenizer_chat_template(tok), "{{ messages }}");
    assert_string_equal(bn_tokenizer_model(tok), "gpt2");
    /* no BOS to add */
    size_t m;
    assert_int_equal(bn_tokenizer_encode(tok, "a", 1, BN_TOKENIZE_ADD_BOS, ids, 16, &m),
                     BN_ERR_INVALID);
    /* characters with no token are dropped, as llama.cpp does */
    n = enc(tok, "xa", 0, ids, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 0);
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

static void test_vocab_spm(void **state)
{
    (void)state;
    static const char *const toks[] = {"<unk>",
                                       "<s>",
                                       "</s>",
                                       "\xe2\x96\x81",
                                       "a",
                                       "b",
                                       "\xe2\x96\x81"
                                       "a",
                                       "ab",
                                       "\xe2\x96\x81"
                                       "ab",
                                       "<0x63>"};
    static const float scores[] = {0, 0, 0, -1, -2, -3, -4, -5, -1.5f, 0};
    static const int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6};
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    v.model = "llama";
    v.n_tokens = 10;
    v.tokens = toks;
    v.scores = scores;
    v.types = types;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok;
    assert_int_equal(bn_tokenizer_from_vocab(ctx, &v, &tok), BN_OK);
    assert_int_equal(bn_tokenizer_bos(tok), 1); /* the SPM defaults */
    assert_int_equal(bn_tokenizer_unk(tok), 0);
    int32_t ids[16];
    /* "▁ab": "▁a" (-4) and "ab" (-5) compete, "▁a" wins, then "▁ab" (-1.5) */
    size_t n = enc(tok, "ab", 0, ids, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 8);
    /* 'c' has a byte token, 'd' has none: <unk> */
    n = enc(tok, "cd", 0, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 9);
    assert_int_equal(ids[2], 0);
    char buf[16];
    size_t need;
    assert_int_equal(bn_tokenizer_decode(tok, ids, n, 0, buf, sizeof buf, &need), BN_OK);
    assert_string_equal(buf, "c");
    assert_int_equal(bn_tokenizer_decode(tok, ids, n, BN_DECODE_SPECIAL, buf, sizeof buf, &need),
                     BN_OK);
    assert_string_equal(buf, "c<unk>");
    bn_tokenizer_free(tok);
    /* the space prefix: SentencePiece's before every text (" ab" is "▁▁ab"); Metaspace's not
     * before a text that starts with a space, and with "first" not after a special token */
    static const struct {
        int scheme;
        const char *text;
        size_t n;
        int32_t ids[4];
    } P[] = {
            {BN_PREPEND_SPM, " ab", 2, {3, 8}},
            {BN_PREPEND_FIRST, " ab", 1, {8}},
            {BN_PREPEND_ALWAYS, " ab", 1, {8}},
            {BN_PREPEND_SPM, "ab</s>ab", 3, {8, 2, 8}},
            {BN_PREPEND_FIRST, "ab</s>ab", 3, {8, 2, 7}},
            {BN_PREPEND_ALWAYS, "ab</s>ab", 3, {8, 2, 8}},
    };
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        v.prepend_scheme = P[i].scheme;
        assert_int_equal(bn_tokenizer_from_vocab(ctx, &v, &tok), BN_OK);
        n = enc(tok, P[i].text, BN_TOKENIZE_PARSE_SPECIAL, ids, 16);
        assert_int_equal(n, P[i].n);
        for (size_t k = 0; k < n; k++) assert_int_equal(ids[k], P[i].ids[k]);
        bn_tokenizer_free(tok);
    }
    v.prepend_scheme = BN_PREPEND_SPM;
    /* without the space prefix "ab" is "ab" */
    v.add_space_prefix = 0;
    assert_int_equal(bn_tokenizer_from_vocab(ctx, &v, &tok), BN_OK);
    assert_int_equal(bn_tokenizer_add_space_prefix(tok), 0);
    n = enc(tok, "ab", 0, ids, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 7);
    assert_int_equal(bn_tokenizer_decode(tok, ids, n, 0, buf, sizeof buf, &need), BN_OK);
    assert_string_equal(buf, "ab");
    bn_tokenizer_free(tok);
    bn_ctx_free(ctx);
}

/* ---- malformed vocabularies --------------------------------------------------------------- */

static void expect_vocab_error(bn_tokenizer_vocab *v, bn_status want, const char *msg)
{
    bn_ctx *ctx = new_ctx();
    bn_tokenizer *tok = (bn_tokenizer *)&tok;
    assert_int_equal(bn_tokenizer_from_vocab(ctx, v, &tok), want);
    assert_null(tok);
    if (!strstr(bn_ctx_errmsg(ctx), msg))
        fail_msg("message '%s' does not mention '%s'", bn_ctx_errmsg(ctx), msg);
    assert_null(strchr(bn_ctx_errmsg(ctx), '\n'));
    bn_ctx_free(ctx);
}

static void test_vocab_errors(void **state)
{
    (void)state;
    bn_tokenizer_vocab v;
    tiny_bpe(&v);
    v.model = "bert";
    expect_vocab_error(&v, BN_ERR_UNSUPPORTED, "'bert'");
    tiny_bpe(&v);
    v.pre = "no-such-pre";
    expect_vocab_error(&v, BN_ERR_UNSUPPORTED, "no-such-pre");
    tiny_bpe(&v);
    static const char *const bad_merge[] = {"a b", "a x"};
    v.merges = bad_merge;
    v.n_merges = 2;
    expect_vocab_error(&v, BN_ERR_FORMAT, "merge 1 names unknown token 'x'");
    static const char *const no_space[] = {"ab"};
    v.merges = no_space;
    v.n_merges = 1;
    expect_vocab_error(&v, BN_ERR_FORMAT, "not 'left right'");
    tiny_bpe(&v);
    static const char *const dup[] = {"a", "b", "a"};
    v.tokens = dup;
    v.n_tokens = 3;
    v.types = NULL;
    v.n_merges = 0;
    v.eos_id = BN_TOKEN_NONE;
    expect_vocab_error(&v, BN_ERR_FORMAT, "duplicate token 'a' (ids 0 and 2)");
    tiny_bpe(&v);
    v.eos_id = 9;
    expect_vocab_error(&v, BN_ERR_FORMAT, "eos_token_id = 9 is out of range");
    tiny_bpe(&v);
    v.add_bos = 1;
    expect_vocab_error(&v, BN_ERR_FORMAT, "no BOS");
    tiny_bpe(&v);
    v.n_tokens = 0;
    expect_vocab_error(&v, BN_ERR_FORMAT, "empty");
    tiny_bpe(&v);
    v.model = NULL;
    expect_vocab_error(&v, BN_ERR_INVALID, "model");
}

/* Writes a GGUF with the given tokenizer keys (a small GPT-2 style vocabulary by default)
 * and expects bn_tokenizer_from_gguf to fail with a message containing msg. */
enum {
    BREAK_NONE,
    BREAK_NO_MODEL,
    BREAK_MODEL_TYPE,
    BREAK_NO_TOKENS,
    BREAK_TOKENS_TYPE,
    BREAK_SCORES_LEN,
    BREAK_TYPES_LEN,
    BREAK_SCORES_TYPE,
    BREAK_NO_MERGES,
    BREAK_MERGE,
    BREAK_BOS_RANGE,
    BREAK_BOS_TYPE,
    BREAK_ADD_BOS_TYPE,
    BREAK_PRE
};

static bn_status gguf_case(int brk, const char **msg_out, char *msg, size_t cap)
{
    static const char *const toks[] = {"a", "b", "ab", "<|endoftext|>"};
    static const char *const merges[] = {"a b"};
    static const char *const bad_merges[] = {"a q"};
    const float scores[4] = {0, 0, 0, 0};
    const int32_t types[4] = {1, 1, 1, 3};
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    if (brk == BREAK_MODEL_TYPE)
        bn_gguf_writer_set_u32(w, "tokenizer.ggml.model", 2);
    else if (brk != BREAK_NO_MODEL)
        bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", brk == BREAK_PRE ? "klingon" : "gpt-2");
    if (brk == BREAK_TOKENS_TYPE)
        bn_gguf_writer_set_arr(w, "tokenizer.ggml.tokens", BN_GGUF_I32, types, 4);
    else if (brk != BREAK_NO_TOKENS)
        bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    if (brk == BREAK_SCORES_TYPE)
        bn_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BN_GGUF_U8, "abcd", 4);
    else
        bn_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BN_GGUF_F32, scores,
                               brk == BREAK_SCORES_LEN ? 3 : 4);
    bn_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BN_GGUF_I32, types,
                           brk == BREAK_TYPES_LEN ? 5 - 2 : 4);
    if (brk != BREAK_NO_MERGES)
        bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                   brk == BREAK_MERGE ? bad_merges : merges, 1);
    if (brk == BREAK_BOS_TYPE)
        bn_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "3");
    else
        bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", brk == BREAK_BOS_RANGE ? 4 : 3);
    bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 3);
    if (brk == BREAK_ADD_BOS_TYPE)
        bn_gguf_writer_set_u32(w, "tokenizer.ggml.add_bos_token", 1);
    else
        bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 0);
    bn_gguf_writer_set_str(w, "tokenizer.chat_template", "tmpl");
    char path[] = "/tmp/bn_test_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    bn_ctx *ctx = new_ctx();
    assert_int_equal(bn_gguf_writer_write(ctx, w, path), BN_OK);
    bn_gguf_writer_free(w);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(ctx, path, &g), BN_OK);
    bn_tokenizer *tok = NULL;
    bn_status rc = bn_tokenizer_from_gguf(ctx, g, &tok);
    snprintf(msg, cap, "%s", bn_ctx_errmsg(ctx));
    *msg_out = msg;
    if (rc == BN_OK) {
        int32_t ids[8];
        size_t n = enc(tok, "ab", 0, ids, 8);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], 2);
        assert_string_equal(bn_tokenizer_chat_template(tok), "tmpl");
        assert_int_equal(bn_tokenizer_add_bos(tok), 0);
    } else
        assert_null(tok);
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    unlink(path);
    return rc;
}

static void test_gguf_errors(void **state)
{
    (void)state;
    static const struct {
        int brk;
        bn_status rc;
        const char *msg;
    } cases[] = {
            {BREAK_NONE, BN_OK, ""},
            {BREAK_NO_MODEL, BN_ERR_FORMAT, "missing key tokenizer.ggml.model"},
            {BREAK_MODEL_TYPE, BN_ERR_FORMAT, "tokenizer.ggml.model is not a string"},
            {BREAK_NO_TOKENS, BN_ERR_FORMAT, "missing key tokenizer.ggml.tokens"},
            {BREAK_TOKENS_TYPE, BN_ERR_FORMAT, "tokenizer.ggml.tokens is an array of i32"},
            {BREAK_SCORES_LEN, BN_ERR_FORMAT,
             "tokenizer.ggml.scores has 3 entries but "
             "tokenizer.ggml.tokens has 4"},
            {BREAK_TYPES_LEN, BN_ERR_FORMAT, "tokenizer.ggml.token_type has 3 entries"},
            {BREAK_SCORES_TYPE, BN_ERR_FORMAT, "tokenizer.ggml.scores is an array of u8"},
            {BREAK_NO_MERGES, BN_ERR_FORMAT, "missing key tokenizer.ggml.merges"},
            {BREAK_MERGE, BN_ERR_FORMAT,
             "tokenizer.ggml.merges: merge 0 names unknown token "
             "'q'"},
            {BREAK_BOS_RANGE, BN_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 4 is out of range"},
            {BREAK_BOS_TYPE, BN_ERR_FORMAT, "tokenizer.ggml.bos_token_id is not an integer"},
            {BREAK_ADD_BOS_TYPE, BN_ERR_FORMAT, "tokenizer.ggml.add_bos_token is not a bool"},
            {BREAK_PRE, BN_ERR_UNSUPPORTED, "pre-tokenizer 'klingon'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[512];
        const char *msg;
        bn_status rc = gguf_case(cases[i].brk, &msg, buf, sizeof buf);
        if (rc != cases[i].rc || !strstr(msg, cases[i].msg))
            fail_msg("case %zu: status %d '%s', expected %d '%s'", i, rc, msg, cases[i].rc,
                     cases[i].msg);
    }
}

/* A long text (llama.cpp's vectors over and over) goes through in linear time and comes
 * back exact; a quadratic pre-tokenizer would take minutes here. */
static void test_long_text(void **state)
{
    (void)state;
    vectors v;
    load_vectors(SPM_GGUF, &v);
    size_t cap = 600000, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; len + 200 < cap; i = (i + 1) % v.n) {
        size_t k = v.len[i] < 150 ? v.len[i] : 150;
        memcpy(text + len, v.text[i], k);
        len += k;
        text[len++] = ' ';
    }
    free_vectors(&v);
    bn_ctx *ctx = new_ctx();
    const char *paths[2] = {SPM_GGUF, GPT2_GGUF};
    for (int t = 0; t < 2; t++) {
        bn_tokenizer *tok = load_gguf_tok(ctx, paths[t]);
        double t0 = bn_time_now();
        int32_t *ids;
        size_t n, back;
        char *s;
        assert_int_equal(bn_tokenizer_encode_alloc(tok, text, len, 0, &ids, &n), BN_OK);
        assert_int_equal(bn_tokenizer_decode_alloc(tok, ids, n, 0, &s, &back), BN_OK);
        double dt = bn_time_now() - t0;
        printf("  %s: %zu bytes -> %zu tokens and back in %.0f ms\n", paths[t], len, n, dt * 1e3);
        assert_int_equal(back, len);
        assert_memory_equal(s, text, len);
        assert_true(dt < 10.0);
        bn_free(s);
        bn_free(ids);
        bn_tokenizer_free(tok);
    }
    free(text);
    bn_ctx_free(ctx);
}

/* ---- allocation failures ----------------------------------------------------------------- */

static void test_alloc_failures(void **state)
{
    (void)state;
    bn_ctx *ctx = new_ctx();
    bn_tokenizer_vocab v;
    tiny_bpe(&v);
    /* construction: every allocation fails once, in turn */
    int done = 0;
    for (long k = 1; k < 1000 && !done; k++) {
        bn_tokenizer *tok = NULL;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_tokenizer_from_vocab(ctx, &v, &tok);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            bn_tokenizer_free(tok);
            done = 1;
        } else {
            assert_int_equal(rc, BN_ERR_NOMEM);
            assert_null(tok);
        }
    }
    assert_true(done);
    /* encoding and decoding, SPM and BPE */
    bn_tokenizer *toks[2];
    toks[0] = load_gguf_tok(ctx, SPM_GGUF);
    toks[1] = load_gguf_tok(ctx, GPT2_GGUF);
    const char *text = "Hello <|endoftext|> world!\n\n 3333 \xf0\x9f\xa6\x99.cpp";
    for (int t = 0; t < 2; t++) {
        int32_t *ref;
        size_t nref;
        unsigned fl = BN_TOKENIZE_ADD_BOS | BN_TOKENIZE_PARSE_SPECIAL;
        assert_int_equal(bn_tokenizer_encode_alloc(toks[t], text, strlen(text), fl, &ref, &nref),
                         BN_OK);
        done = 0;
        for (long k = 1; k < 1000 && !done; k++) {
            int32_t *ids = NULL;
            size_t n = 0;
            char *s = NULL;
            bn_alloc_fail_at(k, 0);
            bn_status rc = bn_tokenizer_encode_alloc(toks[t], text, strlen(text), fl, &ids, &n);
            if (rc == BN_OK) rc = bn_tokenizer_decode_alloc(toks[t], ids, n, 0, &s, NULL);
            bn_alloc_fail_at(0, 0);
            if (rc == BN_OK) {
                assert_int_equal(n, nref);
                assert_memory_equal(ids, ref, n * sizeof *ids);
                done = 1;
            } else
                assert_int_equal(rc, BN_ERR_NOMEM);
            bn_free(ids);
            bn_free(s);
        }
        assert_true(done);
        bn_free(ref);
        bn_tokenizer_free(toks[t]);
    }
    bn_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_spm_vectors),       cmocka_unit_test(test_gpt2_vectors),
            cmocka_unit_test(test_llama_bpe_vectors), cmocka_unit_test(test_spm_special),
            cmocka_unit_test(test_gpt2_special),      cmocka_unit_test(test_vocab_bpe),
            cmocka_unit_test(test_vocab_spm),         cmocka_unit_test(test_vocab_errors),
            cmocka_unit_test(test_gguf_errors),       cmocka_unit_test(test_long_text),
            cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
