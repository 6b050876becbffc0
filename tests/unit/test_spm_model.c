/* test_spm_model.c - SentencePiece model files (bitnet/spm_model.h): LLaMA-2's tokenizer.model
 * against llama.cpp's GGUF of the same vocabulary and its test vectors (needs ../shared; SKIP
 * without), the committed tiny BPE model (tests/convert/make_spm_fixture.py) against
 * SentencePiece's own ids, hand-encoded protobufs (wrong wire types, huge lengths, every
 * check), every truncation, unknown fields, unsupported models and allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include "pb_encode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/gguf.h"
#include "bitnet/spm_model.h"
#include "bitnet/tokenizer.h"

#ifndef LLAMA2_MODEL /* relative to the repository root, where the tests run */
#define LLAMA2_MODEL "../shared/data/tokenizers/llama2-spm.model"
#endif
#define SPM_GGUF "tests/data/ggml-vocab-llama-spm.gguf"
#define TINY     "tests/data/convert/spm/"

static bn_ctx *g_ctx;

static bn_tokenizer *tokenizer_of(const bn_spm_model *m)
{
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    assert_int_equal(bn_spm_model_vocab(g_ctx, m, &v), BN_OK);
    bn_tokenizer *tok;
    if (bn_tokenizer_from_vocab(g_ctx, &v, &tok) != BN_OK) fail_msg("%s", bn_ctx_errmsg(g_ctx));
    return tok;
}

/* Encodes len bytes (no BOS) and compares with want[0..n_want). 1 when equal. */
static int same_ids(const bn_tokenizer *tok, const char *text, size_t len, const int32_t *want,
                    size_t n_want)
{
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_tokenizer_encode_alloc(tok, text, len, 0, &ids, &n), BN_OK);
    int same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        printf("    '%.*s': got", (int)len, text);
        for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
        printf(", want");
        for (size_t i = 0; i < n_want; i++) printf(" %d", want[i]);
        printf("\n");
    }
    bn_free(ids);
    return same;
}

static size_t parse_ids(const char *s, int32_t *ids, size_t max)
{
    size_t n = 0;
    for (char *end; n < max; s = end) {
        while (*s == ' ' || *s == ',' || *s == '[') s++;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
    }
    return n;
}

/* ---- LLaMA-2 against llama.cpp ----------------------------------------------------------- */

/* llama.cpp's test vectors (BASE.inp: texts separated by "\n__ggml_vocab_test__\n"; BASE.out:
 * one line of ids per text) through tok; returns how many matched, *total gets the count. */
static size_t run_vectors(const bn_tokenizer *tok, const char *base, size_t *total)
{
    char path[256];
    size_t inp_len, out_len;
    snprintf(path, sizeof path, "%s.inp", base);
    char *inp = read_all(path, &inp_len);
    snprintf(path, sizeof path, "%s.out", base);
    char *out = read_all(path, &out_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t good = 0, n = 0;
    char *line = out;
    for (size_t pos = 0; pos < inp_len; n++) {
        char *next = memmem(inp + pos, inp_len - pos, sep, sizeof sep - 1);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int32_t want[512];
        size_t n_want = parse_ids(line, want, 512);
        good += (size_t)same_ids(tok, inp + pos, end - pos, want, n_want);
        line = nl + 1;
        if (!next) break;
        pos = end + sizeof sep - 1;
    }
    free(inp);
    free(out);
    *total = n;
    return good;
}

static void test_llama2(void **state)
{
    (void)state;
    if (access(LLAMA2_MODEL, R_OK) != 0) {
        printf("  SKIP: %s not found (the LLaMA-2 model is in ../shared only)\n", LLAMA2_MODEL);
        skip();
    }
    bn_spm_model *m;
    assert_int_equal(bn_spm_model_open(g_ctx, LLAMA2_MODEL, &m), BN_OK);
    const bn_spm_info *in = bn_spm_model_info(m);
    assert_int_equal(in->n_pieces, 32000);
    assert_int_equal(in->algo, BN_SPM_BPE);
    assert_true(in->byte_fallback);
    assert_string_equal(in->normalizer, "identity");
    assert_true(in->add_dummy_prefix);
    assert_false(in->remove_extra_whitespaces);
    /* the arrays llama.cpp's converter wrote for the same model, value for value */
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(g_ctx, SPM_GGUF, &g), BN_OK);
    bn_tokenizer *ref;
    assert_int_equal(bn_tokenizer_from_gguf(g_ctx, g, &ref), BN_OK);
    bn_gguf_close(g);
    assert_int_equal(bn_tokenizer_n_vocab(ref), 32000);
    const char *const *pieces = bn_spm_model_pieces(m);
    const float *scores = bn_spm_model_scores(m);
    const int32_t *types = bn_spm_model_types(m);
    size_t same = 0;
    for (int32_t i = 0; i < 32000; i++) {
        size_t len;
        const char *t = bn_tokenizer_token_text(ref, i, &len);
        float sc = bn_tokenizer_token_score(ref, i);
        if (len == strlen(pieces[i]) && memcmp(t, pieces[i], len) == 0 &&
            memcmp(&sc, &scores[i], sizeof sc) == 0 &&
            (int32_t)bn_tokenizer_token_type(ref, i) == types[i])
            same++;
        else if (same + 5 > (size_t)i)
            printf("    piece %d: '%s' %g %d, llama.cpp '%s' %g %d\n", i, pieces[i],
                   (double)scores[i], types[i], t, (double)sc, bn_tokenizer_token_type(ref, i));
    }
    /* the vocabulary built from the model, through llama.cpp's vectors */
    bn_tokenizer *tok = tokenizer_of(m);
    assert_int_equal(bn_tokenizer_bos(tok), bn_tokenizer_bos(ref));
    assert_int_equal(bn_tokenizer_eos(tok), bn_tokenizer_eos(ref));
    assert_int_equal(bn_tokenizer_unk(tok), bn_tokenizer_unk(ref));
    assert_int_equal(bn_tokenizer_pad(tok), BN_TOKEN_NONE);
    assert_int_equal(bn_tokenizer_add_space_prefix(tok), 1);
    size_t total, good = run_vectors(tok, SPM_GGUF, &total);
    printf("  llama2-spm.model: %zu/32000 pieces (text, score, type) as in %s; %zu/%zu "
           "llama-spm vectors match\n",
           same, SPM_GGUF, good, total);
    assert_int_equal(same, 32000);
    assert_true(total >= 30);
    assert_int_equal(good, total);
    bn_tokenizer_free(tok);
    bn_tokenizer_free(ref);
    bn_spm_model_close(m);
}

/* ---- the committed tiny model against SentencePiece -------------------------------------- */

static void test_tiny(void **state)
{
    (void)state;
    bn_spm_model *m;
    assert_int_equal(bn_spm_model_open(g_ctx, TINY "tokenizer.model", &m), BN_OK);
    const bn_spm_info *in = bn_spm_model_info(m);
    assert_int_equal(in->n_pieces, 384);
    assert_int_equal(in->algo, BN_SPM_BPE);
    assert_true(in->byte_fallback);
    assert_int_equal(in->unk_id, 0);
    assert_int_equal(in->bos_id, 1);
    assert_int_equal(in->eos_id, 2);
    assert_int_equal(in->pad_id, BN_TOKEN_NONE);
    assert_string_equal(bn_spm_model_pieces(m)[3], "<0x00>");
    assert_int_equal(bn_spm_model_types(m)[3], BN_TOKEN_TYPE_BYTE);
    assert_int_equal(bn_spm_model_types(m)[0], BN_TOKEN_TYPE_UNKNOWN);
    assert_int_equal(bn_spm_model_types(m)[1], BN_TOKEN_TYPE_CONTROL);
    bn_tokenizer *tok = tokenizer_of(m);
    size_t len;
    char *exp = read_all(TINY "expected.txt", &len);
    size_t n = 0, good = 0;
    for (char *line = exp, *nl; (nl = strchr(line, '\n')); line = nl + 1, n++) {
        *nl = '\0';
        char path[128];
        snprintf(path, sizeof path, TINY "cases/%.2s.txt", line);
        size_t tl;
        char *text = read_all(path, &tl);
        int32_t want[256];
        size_t n_want = parse_ids(line + 2, want, 256);
        good += (size_t)same_ids(tok, text, tl, want, n_want);
        free(text);
    }
    printf("  tiny tokenizer.model: %zu/%zu cases give SentencePiece's ids\n", good, n);
    assert_true(n >= 12);
    assert_int_equal(good, n);
    free(exp);
    bn_tokenizer_free(tok);
    bn_spm_model_close(m);
}

/* ---- hand-encoded protobufs: pb_encode.h ---------------------------------------------- */

/* ModelProto.pieces (1): piece (1), score (2), type (3; 0 = leave out) */
static void add_piece(pb *m, const char *text, float score, int type)
{
    pb p = {0};
    pb_bytes(&p, 1, text, strlen(text));
    pb_float(&p, 2, score);
    if (type) pb_int(&p, 3, type);
    pb_msg(m, 1, &p);
}

/* ModelProto.trainer_spec (2): model_type (3), bos_id (41) */
static void add_trainer(pb *m, int model_type, int32_t bos)
{
    pb t = {0};
    pb_int(&t, 3, model_type);
    pb_int(&t, 41, bos);
    pb_int(&t, 42, -1);
    pb_msg(m, 2, &t);
}

/* <unk>, <s> and "a" "b" "ab" with trainer_spec BPE, plus whatever extra adds. */
static void small_model(pb *m, int model_type)
{
    m->n = 0;
    add_piece(m, "<unk>", 0, 2);
    add_piece(m, "<s>", 0, 3);
    add_piece(m, "\xe2\x96\x81", -1, 0);
    add_piece(m, "a", -2, 1);
    add_piece(m, "b", -3, 1);
    add_piece(m, "ab", -4, 1);
    add_trainer(m, model_type, 1);
}

/* Opens b; want BN_OK, or the status and a one-line message holding msg. */
static void expect(const pb *b, bn_status want, const char *msg)
{
    bn_spm_model *m = NULL;
    bn_status rc = bn_spm_model_open_memory(g_ctx, b->p, b->n, &m);
    const char *e = bn_ctx_errmsg(g_ctx);
    if (rc != want || (msg && !strstr(e, msg)))
        fail_msg("status %s (want %s), message '%s' (want '%s')", bn_status_str(rc),
                 bn_status_str(want), e, msg ? msg : "");
    if (want == BN_OK) {
        assert_non_null(m);
    } else {
        assert_null(m);
        assert_null(strchr(e, '\n'));
    }
    bn_spm_model_close(m);
}

static void test_small(void **state)
{
    (void)state;
    pb b;
    small_model(&b, 2);
    bn_spm_model *m;
    assert_int_equal(bn_spm_model_open_memory(g_ctx, b.p, b.n, &m), BN_OK);
    const bn_spm_info *in = bn_spm_model_info(m);
    assert_int_equal(in->n_pieces, 6);
    assert_int_equal(in->eos_id, BN_TOKEN_NONE);
    assert_int_equal(in->unk_id, 0);
    assert_string_equal(in->normalizer, "");
    assert_true(in->add_dummy_prefix && in->remove_extra_whitespaces && in->escape_whitespaces);
    assert_int_equal(bn_spm_model_types(m)[2], BN_TOKEN_TYPE_NORMAL); /* type left out */
    bn_tokenizer *tok = tokenizer_of(m);
    static const int32_t want[] = {2, 5, 2, 3, 2, 4, 0};
    assert_true(same_ids(tok, "ab a b?", 7, want, 7)); /* ▁ ab ▁ a ▁ b <unk> (no bytes) */
    bn_tokenizer_free(tok);
    bn_spm_model_close(m);
    /* unknown fields, known and unknown wire types, anywhere, are skipped */
    small_model(&b, 2);
    pb_int(&b, 200, 7);
    pb_float(&b, 201, 1.0f);
    pb_bytes(&b, 4, "\x0a\x01x", 3); /* self_test_data, not declared here */
    pb_key(&b, 202, 1);
    pb_raw(&b, "12345678", 8);
    expect(&b, BN_OK, NULL);
}

static void test_malformed(void **state)
{
    (void)state;
    pb b = {0};
    expect(&b, BN_ERR_FORMAT, "no pieces"); /* 0 bytes */
    add_trainer(&b, 2, -1);
    expect(&b, BN_ERR_FORMAT, "no pieces");
    b.n = 0; /* pieces (1) as a varint */
    pb_int(&b, 1, 5);
    expect(&b, BN_ERR_FORMAT, "wrong wire type");
    b.n = 0; /* trainer_spec.bos_id (41) as a string */
    pb t = {0};
    pb_bytes(&t, 41, "x", 1);
    pb_msg(&b, 2, &t);
    expect(&b, BN_ERR_FORMAT, "not a SentencePiece model");
    b.n = 0; /* a length far beyond the end */
    pb_key(&b, 1, 2);
    pb_varint(&b, (uint64_t)1 << 40);
    pb_raw(&b, "abc", 3);
    expect(&b, BN_ERR_FORMAT, "truncated");
    b.n = 0; /* a varint that never ends */
    pb_key(&b, 2, 0);
    pb_raw(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11);
    expect(&b, BN_ERR_FORMAT, "not a SentencePiece model");
    b.n = 0; /* groups (wire types 3 and 4) are not protobuf 3 */
    pb_key(&b, 7, 3);
    expect(&b, BN_ERR_FORMAT, "not a SentencePiece model");
    static const struct {
        const char *text;
        size_t len;
        float score;
        int type;
        const char *msg;
    } bad[] = {
            {"", 0, 0, 1, "piece 6 is empty"},
            {"a\0b", 3, 0, 1, "piece 6 is not UTF-8 text (or holds a NUL)"},
            {"\xff", 1, 0, 1, "piece 6 is not UTF-8"},
            {"\xe2\x96", 2, 0, 1, "piece 6 is not UTF-8"},
            {"x", 1, NAN, 1, "piece 6 has score nan"},
            {"x", 1, INFINITY, 1, "piece 6 has score inf"},
            {"x", 1, 0, 7, "piece 6 has type 7 (SentencePiece's are 1-6)"},
            {"x", 1, 0, -1, "piece 6 has type -1"},
            {"<0xZZ>", 6, 0, 6, "piece 6 has type BYTE but is not <0xXX>"},
            {"x", 1, 0, 6, "type BYTE but is not <0xXX>"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_model(&b, 2);
        pb p = {0};
        pb_bytes(&p, 1, bad[i].text, bad[i].len);
        pb_float(&p, 2, bad[i].score);
        pb_int(&p, 3, bad[i].type);
        pb_msg(&b, 1, &p);
        expect(&b, BN_ERR_FORMAT, bad[i].msg);
    }
    small_model(&b, 2);
    add_trainer(&b, 2, 6); /* a second trainer_spec merges into the first: bos_id 6 */
    expect(&b, BN_ERR_FORMAT, "trainer_spec.bos_id 6 is not -1 or a piece (6 pieces)");
    small_model(&b, 2);
    add_trainer(&b, 2, -2);
    expect(&b, BN_ERR_FORMAT, "bos_id -2");
    b.n = 0; /* no trainer_spec: SentencePiece's defaults, bos_id 1 and eos_id 2 */
    add_piece(&b, "<unk>", 0, 2);
    add_piece(&b, "<s>", 0, 3);
    expect(&b, BN_ERR_FORMAT, "eos_id 2 is not -1 or a piece");
    /* a duplicate piece decodes; the tokenizer built from it refuses it */
    small_model(&b, 2);
    add_piece(&b, "ab", -5, 1);
    bn_spm_model *m;
    assert_int_equal(bn_spm_model_open_memory(g_ctx, b.p, b.n, &m), BN_OK);
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    assert_int_equal(bn_spm_model_vocab(g_ctx, m, &v), BN_OK);
    bn_tokenizer *tok = NULL;
    assert_int_equal(bn_tokenizer_from_vocab(g_ctx, &v, &tok), BN_ERR_FORMAT);
    assert_null(tok);
    bn_spm_model_close(m);
}

/* A piece longer than the limit, encoded exactly. */
static void test_long_piece(void **state)
{
    (void)state;
    size_t n = BN_TOKENIZER_MAX_TOKEN_LEN + 1;
    pb head = {0}, inner = {0};
    pb_key(&inner, 1, 2);
    pb_varint(&inner, n); /* piece, followed by n bytes */
    pb_key(&head, 1, 2);
    pb_varint(&head, inner.n + n); /* pieces */
    uint8_t *buf = malloc(head.n + inner.n + n);
    assert_non_null(buf);
    memcpy(buf, head.p, head.n);
    memcpy(buf + head.n, inner.p, inner.n);
    memset(buf + head.n + inner.n, 'x', n);
    bn_spm_model *m = NULL;
    assert_int_equal(bn_spm_model_open_memory(g_ctx, buf, head.n + inner.n + n, &m), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "piece 0 is 65537 bytes long (max 65536)"));
    assert_null(m);
    free(buf);
}

static void test_unsupported(void **state)
{
    (void)state;
    static const struct {
        int model_type;
        unsigned field;
        const char *msg;
    } cases[] = {
            {1, 0, "a unigram SentencePiece model (model_type 1); only BPE models"},
            {3, 0, "a word SentencePiece model"},
            {4, 0, "a char SentencePiece model"},
            {9, 0, "a unknown SentencePiece model (model_type 9)"},
            {2, 24, "whitespace is a suffix"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb b;
        small_model(&b, cases[i].model_type);
        if (cases[i].field) {
            pb t = {0};
            pb_int(&t, cases[i].field, 1);
            pb_msg(&b, 2, &t);
        }
        bn_spm_model *m;
        assert_int_equal(bn_spm_model_open_memory(g_ctx, b.p, b.n, &m), BN_OK);
        bn_tokenizer_vocab v;
        bn_tokenizer_vocab_init(&v);
        assert_int_equal(bn_spm_model_vocab(g_ctx, m, &v), BN_ERR_UNSUPPORTED);
        if (!strstr(bn_ctx_errmsg(g_ctx), cases[i].msg))
            fail_msg("'%s' lacks '%s'", bn_ctx_errmsg(g_ctx), cases[i].msg);
        bn_spm_model_close(m);
    }
    /* normalizer_spec (3): escape_whitespaces (5) false */
    pb b, ns = {0};
    small_model(&b, 2);
    pb_int(&ns, 5, 0);
    pb_bytes(&ns, 1, "nmt_nfkc", 8);
    pb_bytes(&ns, 2, "\x01\x02\x03", 3);
    pb_msg(&b, 3, &ns);
    bn_spm_model *m;
    assert_int_equal(bn_spm_model_open_memory(g_ctx, b.p, b.n, &m), BN_OK);
    assert_string_equal(bn_spm_model_info(m)->normalizer, "nmt_nfkc");
    assert_int_equal(bn_spm_model_info(m)->charsmap_size, 3);
    bn_tokenizer_vocab v;
    bn_tokenizer_vocab_init(&v);
    assert_int_equal(bn_spm_model_vocab(g_ctx, m, &v), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "spaces are not escaped"));
    bn_spm_model_close(m);
}

/* Every prefix of the tiny model fails cleanly or decodes (a prefix that ends between two
 * fields is a valid, shorter message). */
static void test_truncations(void **state)
{
    (void)state;
    size_t n;
    char *p = read_all(TINY "tokenizer.model", &n);
    size_t ok = 0;
    for (size_t k = 0; k < n; k++) {
        bn_spm_model *m = NULL;
        bn_status rc = bn_spm_model_open_memory(g_ctx, p, k, &m);
        if (rc == BN_OK) {
            ok++;
            bn_spm_model_close(m);
        } else {
            assert_int_equal(rc, BN_ERR_FORMAT);
            assert_null(m);
        }
    }
    assert_true(ok < n / 10);
    free(p);
}

static void test_files(void **state)
{
    (void)state;
    bn_spm_model *m = NULL;
    assert_int_equal(bn_spm_model_open(g_ctx, "tests/data/no-such.model", &m), BN_ERR_IO);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "tests/data/no-such.model: cannot open"));
    assert_null(m);
    /* a GGUF is not a SentencePiece model */
    assert_int_equal(bn_spm_model_open(g_ctx, SPM_GGUF, &m), BN_ERR_FORMAT);
    assert_null(m);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    size_t n;
    char *p = read_all(TINY "tokenizer.model", &n);
    int done = 0;
    for (long k = 1; k < 5000 && !done; k++) {
        bn_spm_model *m = NULL;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_spm_model_open_memory(g_ctx, p, n, &m);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            done = 1;
            bn_spm_model_close(m);
        } else {
            /* protobuf-c reports a failed allocation as a decoding failure */
            assert_true(rc == BN_ERR_NOMEM || rc == BN_ERR_FORMAT);
            assert_null(m);
        }
    }
    assert_true(done);
    free(p);
}

int main(void)
{
    bn_ctx_params cp = {.n_threads = 1};
    if (bn_ctx_new(&g_ctx, &cp) != BN_OK) return 1;
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_llama2),         cmocka_unit_test(test_tiny),
            cmocka_unit_test(test_small),          cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_long_piece),     cmocka_unit_test(test_unsupported),
            cmocka_unit_test(test_truncations),    cmocka_unit_test(test_files),
            cmocka_unit_test(test_alloc_failures),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    bn_ctx_free(g_ctx);
    return rc;
}
