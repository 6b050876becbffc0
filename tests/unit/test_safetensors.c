/* test_safetensors.c - SafeTensors reader: a file written by safetensors.torch.save_file
 * (tests/convert/make_ckpt_fixtures.py), a table of hand-made malformed headers, every
 * truncation, allocation failures, and the dtype conversions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/safetensors.h"

static bn_ctx *g_ctx;

#define SMALL "tests/data/ckpt/small.safetensors"

/* A file: u64 length, the header text, then data_len bytes of data. */
static uint8_t *make(const char *header, size_t data_len, size_t *n)
{
    size_t h = strlen(header);
    *n = 8 + h + data_len;
    uint8_t *p = calloc(1, *n);
    assert_non_null(p);
    for (int k = 0; k < 8; k++) p[k] = (uint8_t)((uint64_t)h >> (8 * k));
    memcpy(p + 8, header, h);
    return p;
}

/* Element k of every fixture tensor is k * 0.25 - 1. */
static void check_ramp(const bn_st_tensor *t)
{
    float *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
    assert_non_null(x);
    assert_int_equal(bn_dtype_to_f32(t->dtype, t->data, t->numel, x), BN_OK);
    for (uint64_t k = 0; k < t->numel; k++) assert_float_equal(x[k], k * 0.25 - 1, 1e-6);
    free(x);
}

static void test_real_file(void **state)
{
    (void)state;
    bn_safetensors *st;
    assert_int_equal(bn_safetensors_open(g_ctx, SMALL, &st), BN_OK);
    assert_int_equal(bn_safetensors_n_tensors(st), 7);
    const bn_st_tensor *t = bn_safetensors_find(st, "a.f32");
    assert_non_null(t);
    assert_int_equal(t->dtype, BN_DTYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->size, 24);
    check_ramp(t);
    check_ramp(bn_safetensors_find(st, "b.f16"));
    t = bn_safetensors_find(st, "c.bf16");
    assert_int_equal(t->dtype, BN_DTYPE_BF16);
    assert_int_equal(t->numel, 12);
    check_ramp(t);
    t = bn_safetensors_find(st, "d.i64");
    float x[7];
    assert_int_equal(bn_dtype_to_f32(t->dtype, t->data, t->numel, x), BN_OK);
    assert_float_equal(x[0], -2, 0);
    assert_float_equal(x[3], 1, 0);
    t = bn_safetensors_find(st, "e.u8");
    assert_int_equal(bn_dtype_to_f32(t->dtype, t->data, t->numel, x), BN_OK);
    assert_float_equal(x[6], 6, 0);
    t = bn_safetensors_find(st, "f.scalar");
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(bn_dtype_to_f32(t->dtype, t->data, 1, x), BN_OK);
    assert_float_equal(x[0], 3.5, 0);
    t = bn_safetensors_find(st, "g.empty");
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->size, 0);
    assert_null(bn_safetensors_find(st, "nope"));
    assert_string_equal(bn_safetensors_meta(st, "format"), "pt");
    assert_string_equal(bn_safetensors_meta(st, "note"), "bitnet test");
    assert_null(bn_safetensors_meta(st, "absent"));
    assert_int_equal(bn_safetensors_n_meta(st), 2);
    bn_safetensors_close(st);
}

static void test_missing_file(void **state)
{
    (void)state;
    bn_safetensors *st = (void *)1;
    assert_int_equal(bn_safetensors_open(g_ctx, "tests/data/ckpt/none.safetensors", &st),
                     BN_ERR_IO);
    assert_null(st);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "No such file"));
}

typedef struct bad_case {
    const char *what;
    const char *header;
    size_t data_len;
    bn_status want;
    const char *msg; /* a substring of the error */
} bad_case;

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static const bad_case g_bad[] = {
        {"unterminated object", "{" T1, 4, BN_ERR_FORMAT, "expected ',' or '}'"},
        {"not an object", "[1]", 0, BN_ERR_FORMAT, "not a JSON object"},
        {"garbage after", "{" T1 "} x", 4, BN_ERR_FORMAT, "after the header's closing brace"},
        {"padding spaces", "{" T1 "}    ", 4, BN_OK, NULL},
        {"empty header", "{}", 0, BN_OK, NULL},
        {"duplicate tensor",
         "{" T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         BN_ERR_FORMAT, "duplicate tensor 'a'"},
        {"unknown key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
         4, BN_ERR_FORMAT, "unknown key 'x'"},
        {"duplicate key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 4, BN_ERR_FORMAT,
         "duplicate key 'dtype'"},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BN_ERR_FORMAT,
         "missing dtype"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_UNSUPPORTED, "unknown dtype 'F7'"},
        {"size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "span 4 bytes, the shape and dtype need 8"},
        {"outside the file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
         BN_ERR_FORMAT, "outside the file"},
        {"huge offsets",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551614,"
         "18446744073709551615]}}",
         4, BN_ERR_FORMAT, "outside the file"},
        {"offset over u64",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}", 4,
         BN_ERR_FORMAT, "integer too large"},
        {"end before begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
         BN_ERR_FORMAT, "end before they begin"},
        {"overlap",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, BN_ERR_FORMAT, "overlaps"},
        {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         BN_ERR_FORMAT, "4 unused bytes"},
        {"trailing data", "{" T1 "}", 8, BN_ERR_FORMAT, "4 bytes after the last tensor"},
        {"element overflow",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
         4, BN_ERR_FORMAT, "overflows"},
        {"byte overflow",
         "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "overflows"},
        {"fraction", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "fraction"},
        {"negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "non-negative integer"},
        {"leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "leading zero"},
        {"nine dims",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         BN_ERR_FORMAT, "more than 8 entries"},
        {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4,
         BN_ERR_FORMAT, "more than 2 entries"},
        {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         BN_ERR_FORMAT, "needs 2 entries"},
        {"metadata number", "{\"__metadata__\":{\"a\":1}}", 0, BN_ERR_FORMAT, "not a string"},
        {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, BN_ERR_FORMAT,
         "duplicate __metadata__"},
        {"metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, BN_ERR_FORMAT,
         "duplicate key 'k'"},
        {"bad escape", "{\"a\\x\":{}}", 0, BN_ERR_FORMAT, "bad escape"},
        {"lone surrogate", "{\"\\ud800\":{}}", 0, BN_ERR_FORMAT, "surrogate"},
        {"NUL escape", "{\"\\u0000\":{}}", 0, BN_ERR_FORMAT, "NUL"},
        {"control char", "{\"a\tb\":{}}", 0, BN_ERR_FORMAT, "control character"},
        {"unterminated string", "{\"abc", 0, BN_ERR_FORMAT, "unterminated string"},
        {"bad UTF-8", "{\"\xff\":{}}", 0, BN_ERR_FORMAT, "not valid UTF-8"},
        {"overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, BN_ERR_FORMAT, "not valid UTF-8"},
        {"escaped name",
         "{\"\\u00e9\\ud83d\\ude00\\n\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]}}",
         1, BN_OK, NULL},
};

static void test_malformed_headers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof g_bad / sizeof g_bad[0]; i++) {
        const bad_case *c = &g_bad[i];
        size_t n;
        uint8_t *p = make(c->header, c->data_len, &n);
        bn_safetensors *st = (void *)1;
        bn_ctx_clear_error(g_ctx);
        bn_status rc = bn_safetensors_open_memory(g_ctx, p, n, &st);
        if (rc != c->want || (c->msg && !strstr(bn_ctx_errmsg(g_ctx), c->msg)))
            fail_msg("%s: got %d '%s', wanted %d '%s'", c->what, rc, bn_ctx_errmsg(g_ctx), c->want,
                     c->msg ? c->msg : "");
        if (rc == BN_OK)
            bn_safetensors_close(st);
        else
            assert_null(st);
        free(p);
    }
}

static void test_header_sizes(void **state)
{
    (void)state;
    bn_safetensors *st;
    uint8_t b[16] = {0};
    assert_int_equal(bn_safetensors_open_memory(g_ctx, b, 7, &st), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "needs 8"));
    /* 100 MB + 1 declared: refused before anything else */
    uint64_t big = 100000001;
    memcpy(b, &big, 8);
    assert_int_equal(bn_safetensors_open_memory(g_ctx, b, 16, &st), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "100000001"));
    big = UINT64_MAX;
    memcpy(b, &big, 8);
    assert_int_equal(bn_safetensors_open_memory(g_ctx, b, 16, &st), BN_ERR_RANGE);
    /* declared longer than the file */
    big = 9;
    memcpy(b, &big, 8);
    memcpy(b + 8, "{}", 2);
    assert_int_equal(bn_safetensors_open_memory(g_ctx, b, 16, &st), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "9 bytes declared"));
    assert_int_equal(bn_safetensors_open_memory(g_ctx, NULL, 0, &st), BN_ERR_FORMAT);
}

static void test_truncations(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all(SMALL, &n);
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, full, k);
        bn_safetensors *st = (void *)1;
        bn_ctx_clear_error(g_ctx);
        assert_int_not_equal(bn_safetensors_open_memory(g_ctx, p, k, &st), BN_OK);
        assert_null(st);
        assert_true(bn_ctx_errmsg(g_ctx)[0] != '\0');
        free(p);
    }
    free(full);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all(SMALL, &n);
    int ok = 0;
    for (long k = 1; k < 1000 && !ok; k++) {
        bn_safetensors *st;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_safetensors_open_memory(g_ctx, full, n, &st);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            ok = 1;
            bn_safetensors_close(st);
        } else {
            assert_int_equal(rc, BN_ERR_NOMEM);
        }
    }
    assert_true(ok);
    free(full);
}

static void test_dtypes(void **state)
{
    (void)state;
    assert_string_equal(bn_dtype_name(BN_DTYPE_BF16), "BF16");
    assert_string_equal(bn_dtype_name(99), "unknown");
    assert_int_equal(bn_dtype_from_name("F8_E4M3"), BN_DTYPE_F8_E4M3);
    assert_int_equal(bn_dtype_from_name("f32"), -1);
    assert_int_equal(bn_dtype_size(BN_DTYPE_I64), 8);
    assert_int_equal(bn_dtype_size(-1), 0);
    float y[4];
    const uint8_t e4m3[4] = {0x38, 0xC0, 0x01, 0x7F}; /* 1, -2, 2^-9, NaN */
    assert_int_equal(bn_dtype_to_f32(BN_DTYPE_F8_E4M3, e4m3, 4, y), BN_OK);
    assert_float_equal(y[0], 1, 0);
    assert_float_equal(y[1], -2, 0);
    assert_float_equal(y[2], 1.0 / 512, 0);
    assert_true(isnan(y[3]));
    const uint8_t e5m2[3] = {0x3C, 0xC0, 0x7C}; /* 1, -2, inf */
    assert_int_equal(bn_dtype_to_f32(BN_DTYPE_F8_E5M2, e5m2, 3, y), BN_OK);
    assert_float_equal(y[0], 1, 0);
    assert_float_equal(y[1], -2, 0);
    assert_true(isinf(y[2]));
    const uint8_t b[3] = {0, 1, 7};
    assert_int_equal(bn_dtype_to_f32(BN_DTYPE_BOOL, b, 3, y), BN_OK);
    assert_float_equal(y[2], 1, 0);
    const uint8_t i16[5] = {0, 0xfe, 0xff, 0, 0}; /* unaligned: -2 at offset 1 */
    assert_int_equal(bn_dtype_to_f32(BN_DTYPE_I16, i16 + 1, 1, y), BN_OK);
    assert_float_equal(y[0], -2, 0);
    assert_int_equal(bn_dtype_to_f32(BN_DTYPE_COUNT_, b, 1, y), BN_ERR_INVALID);
}

/* setup() and teardown() of the group: one-thread context in g_ctx */
TEST_CTX1_FIXTURE(g_ctx)

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_real_file),
            cmocka_unit_test(test_missing_file),
            cmocka_unit_test(test_malformed_headers),
            cmocka_unit_test(test_header_sizes),
            cmocka_unit_test(test_truncations),
            cmocka_unit_test(test_alloc_failures),
            cmocka_unit_test(test_dtypes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
