/* test_gguf.c - GGUF reader and writer: round trips, the real vocabulary files, hand-made
 * malformed inputs, every truncation, allocation failures, writer atomicity. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/gguf.h"

static bn_ctx *g_ctx;
static char g_dir[64];

/* ---- a byte builder for hand-made files -------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void b_u32(buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int k = 0; k < 4; k++) x[k] = (uint8_t)(v >> (8 * k));
    b_put(b, x, 4);
}

static void b_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int k = 0; k < 8; k++) x[k] = (uint8_t)(v >> (8 * k));
    b_put(b, x, 8);
}

static void b_str(buf *b, const char *s)
{
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}

static void b_header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

static void b_kv_u32(buf *b, const char *key, uint32_t v)
{
    b_str(b, key);
    b_u32(b, BN_GGUF_U32);
    b_u32(b, v);
}

static void b_kv_str(buf *b, const char *key, const char *v)
{
    b_str(b, key);
    b_u32(b, BN_GGUF_STRING);
    b_str(b, v);
}

static void b_tinfo(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                    uint64_t offset)
{
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}

static void b_pad(buf *b, size_t align)
{
    static const uint8_t z[256];
    b_put(b, z, (align - b->n % align) % align);
}

static void b_zeros(buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) b_put(b, "", 1);
}

/* A small valid file: strings, a string array, an f32 array, F32 tensors [4, 2] and [4]
 * whose data ends the file (so every shorter prefix is invalid). */
static buf small_valid(void)
{
    buf b = {0};
    b_header(&b, 3, 2, 4);
    b_kv_str(&b, "general.architecture", "test");
    b_str(&b, "tokenizer.ggml.tokens");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, BN_GGUF_STRING);
    b_u64(&b, 3);
    b_str(&b, "a");
    b_str(&b, "bc");
    b_str(&b, "");
    b_str(&b, "x.scores");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, BN_GGUF_F32);
    b_u64(&b, 2);
    float sc[2] = {1.5f, -2.0f};
    b_put(&b, sc, sizeof sc);
    b_kv_u32(&b, "general.alignment", 32);
    uint64_t ne[2] = {4, 2};
    b_tinfo(&b, "w", 2, ne, BN_TYPE_F32, 0);
    b_tinfo(&b, "v", 1, ne, BN_TYPE_F32, 32);
    b_pad(&b, 32);
    for (int i = 0; i < 12; i++) {
        float f = (float)i;
        b_put(&b, &f, 4);
    }
    return b;
}

/* Opens b (copied into an exact-size heap block so ASan sees overreads); returns status. */
static bn_status open_buf(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    bn_gguf *g = NULL;
    bn_ctx_clear_error(g_ctx);
    bn_status rc = bn_gguf_open_memory(g_ctx, copy, n, &g);
    if (rc == BN_OK) {
        assert_non_null(g);
        bn_gguf_close(g);
    } else {
        assert_null(g);
        assert_int_equal(bn_ctx_status(g_ctx), rc);
        assert_true(strlen(bn_ctx_errmsg(g_ctx)) > 0);
        assert_null(strchr(bn_ctx_errmsg(g_ctx), '\n'));
    }
    free(copy);
    return rc;
}

static void expect_error(buf *b, bn_status want, const char *fragment)
{
    bn_status rc = open_buf(b->p, b->n);
    if (rc != want || !strstr(bn_ctx_errmsg(g_ctx), fragment))
        fail_msg("want status %d with '%s', got %d: %s", want, fragment, rc, bn_ctx_errmsg(g_ctx));
    free(b->p);
    *b = (buf){0};
}

/* A path in the test directory (one of 4 rotating buffers). */
static const char *path_in_dir(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

/* Number of entries in the test directory whose name contains ".tmp-" (bitnet/file.h). */
static int count_temps(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

/* ---- round trip ------------------------------------------------------------------------ */

typedef struct rt_data {
    float f32[6];
    uint16_t f16[4];
    uint8_t i2s[256 / 4 + 32];
    uint8_t tq2[2 * 66];
    int8_t q[512];
} rt_data;

static void fill_rt(rt_data *d)
{
    for (int i = 0; i < 6; i++) d->f32[i] = (float)i * 0.5f - 1.0f;
    for (int i = 0; i < 4; i++) d->f16[i] = bn_f32_to_f16((float)i + 0.25f);
    for (int i = 0; i < 512; i++) d->q[i] = (int8_t)((i * 7) % 3 - 1);
    bn_pack_i2s(d->q, 0.75f, 256, d->i2s);
    bn_pack_tq2_0(d->q, 0.125f, 512, d->tq2);
}

static bn_gguf_writer *make_writer(const rt_data *d, int explicit_align)
{
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = INT64_MIN + 5;
    double f64 = 3.141592653589793;
    assert_int_equal(bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58"), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.u8", BN_GGUF_U8, &u8), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.i8", BN_GGUF_I8, &i8), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.u16", BN_GGUF_U16, &u16), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.i16", BN_GGUF_I16, &i16), BN_OK);
    assert_int_equal(bn_gguf_writer_set_u32(w, "t.u32", 4000000000u), BN_OK);
    assert_int_equal(bn_gguf_writer_set_i32(w, "t.i32", -123456), BN_OK);
    assert_int_equal(bn_gguf_writer_set_f32(w, "t.f32", 1e-5f), BN_OK);
    assert_int_equal(bn_gguf_writer_set_bool(w, "t.bool", 1), BN_OK);
    assert_int_equal(bn_gguf_writer_set_u64(w, "t.u64", UINT64_MAX - 1), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.i64", BN_GGUF_I64, &i64), BN_OK);
    assert_int_equal(bn_gguf_writer_set_scalar(w, "t.f64", BN_GGUF_F64, &f64), BN_OK);
    assert_int_equal(bn_gguf_writer_set_strn(w, "t.strn", "a\0b", 3), BN_OK);
    /* replaced below: the first value must not survive */
    assert_int_equal(bn_gguf_writer_set_u32(w, "t.replaced", 1), BN_OK);
    assert_int_equal(bn_gguf_writer_set_str(w, "t.replaced", "second"), BN_OK);
    int32_t ai[5] = {-1, 0, 1, INT32_MAX, INT32_MIN};
    float af[3] = {0.5f, -1.25f, 1e30f};
    uint8_t ab[4] = {1, 0, 1, 1};
    assert_int_equal(bn_gguf_writer_set_arr(w, "t.arr_i32", BN_GGUF_I32, ai, 5), BN_OK);
    assert_int_equal(bn_gguf_writer_set_arr(w, "t.arr_f32", BN_GGUF_F32, af, 3), BN_OK);
    assert_int_equal(bn_gguf_writer_set_arr(w, "t.arr_bool", BN_GGUF_BOOL, ab, 4), BN_OK);
    assert_int_equal(bn_gguf_writer_set_arr(w, "t.arr_empty", BN_GGUF_U64, NULL, 0), BN_OK);
    const char *strs[4] = {"hello", "", "nul\0inside", "\xc4\xa0world"};
    size_t lens[4] = {5, 0, 10, 7};
    assert_int_equal(bn_gguf_writer_set_arr_strn(w, "t.arr_str", strs, lens, 4), BN_OK);
    assert_int_equal(bn_gguf_writer_set_arr_str(w, "t.arr_str0", strs, 2), BN_OK);
    if (explicit_align) assert_int_equal(bn_gguf_writer_set_u32(w, "general.alignment", 64), BN_OK);
    int64_t ne_f32[2] = {3, 2}, ne_f16[1] = {4}, ne_i2s[2] = {128, 2}, ne_tq2[2] = {256, 2};
    assert_int_equal(
            bn_gguf_writer_add_tensor(w, "a.f32", BN_TYPE_F32, 2, ne_f32, d->f32, sizeof d->f32),
            BN_OK);
    assert_int_equal(
            bn_gguf_writer_add_tensor(w, "b.f16", BN_TYPE_F16, 1, ne_f16, d->f16, sizeof d->f16),
            BN_OK);
    assert_int_equal(
            bn_gguf_writer_add_tensor(w, "c.i2s", BN_TYPE_I2_S, 2, ne_i2s, d->i2s, sizeof d->i2s),
            BN_OK);
    assert_int_equal(
            bn_gguf_writer_add_tensor(w, "d.tq2", BN_TYPE_TQ2_0, 2, ne_tq2, d->tq2, sizeof d->tq2),
            BN_OK);
    return w;
}

static void check_scalars(const bn_gguf *g)
{
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    int bl;
    const char *s;
    assert_int_equal(bn_gguf_get_str(g, "general.architecture", &s), BN_OK);
    assert_string_equal(s, "bitnet-b1.58");
    assert_int_equal(bn_gguf_get_u32(g, "t.u8", &u32), BN_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(bn_gguf_get_i32(g, "t.i8", &i32), BN_OK);
    assert_int_equal(i32, -100);
    assert_int_equal(bn_gguf_get_u32(g, "t.u16", &u32), BN_OK);
    assert_int_equal(u32, 60000);
    assert_int_equal(bn_gguf_get_i32(g, "t.i16", &i32), BN_OK);
    assert_int_equal(i32, -30000);
    assert_int_equal(bn_gguf_get_u32(g, "t.u32", &u32), BN_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(bn_gguf_get_i32(g, "t.u32", &i32), BN_ERR_FORMAT); /* does not fit */
    assert_int_equal(bn_gguf_get_i32(g, "t.i32", &i32), BN_OK);
    assert_int_equal(i32, -123456);
    assert_int_equal(bn_gguf_get_u32(g, "t.i32", &u32), BN_ERR_FORMAT); /* negative */
    assert_int_equal(bn_gguf_get_f32(g, "t.f32", &f), BN_OK);
    assert_true(f == 1e-5f);
    assert_int_equal(bn_gguf_get_bool(g, "t.bool", &bl), BN_OK);
    assert_int_equal(bl, 1);
    assert_int_equal(bn_gguf_get_u64(g, "t.u64", &u64), BN_OK);
    assert_true(u64 == UINT64_MAX - 1);
    assert_int_equal(bn_gguf_get_u32(g, "t.u64", &u32), BN_ERR_FORMAT);
    assert_int_equal(bn_gguf_get_i64(g, "t.i64", &i64), BN_OK);
    assert_true(i64 == INT64_MIN + 5);
    assert_int_equal(bn_gguf_get_f32(g, "t.f64", &f), BN_OK);
    assert_true(f == (float)3.141592653589793);
    assert_true(bn_gguf_kv_f64(g, bn_gguf_find_key(g, "t.f64")) == 3.141592653589793);
    assert_int_equal(bn_gguf_get_str(g, "t.replaced", &s), BN_OK);
    assert_string_equal(s, "second");
    assert_int_equal(bn_gguf_get_u32(g, "t.replaced", &u32), BN_ERR_FORMAT);
    assert_int_equal(bn_gguf_get_u32(g, "no.such.key", &u32), BN_ERR_NOT_FOUND);
    assert_int_equal(bn_gguf_get_f32(g, "t.u32", &f), BN_ERR_FORMAT);
    assert_int_equal(bn_gguf_get_bool(g, "t.u8", &bl), BN_ERR_FORMAT);
    size_t len = 0;
    s = bn_gguf_kv_strn(g, bn_gguf_find_key(g, "t.strn"), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    int64_t iu = bn_gguf_find_key(g, "t.u64");
    assert_int_equal(bn_gguf_kv_type(g, iu), BN_GGUF_U64);
    assert_true(bn_gguf_kv_u64(g, iu) == UINT64_MAX - 1);
    assert_int_equal(bn_gguf_kv_i64(g, bn_gguf_find_key(g, "t.i16")), -30000);
    assert_null(bn_gguf_kv_str(g, iu));
    assert_null(bn_gguf_key(g, -1));
    assert_null(bn_gguf_key(g, bn_gguf_n_kv(g)));
}

static void check_arrays(const bn_gguf *g)
{
    int64_t i = bn_gguf_find_key(g, "t.arr_i32");
    assert_int_equal(bn_gguf_kv_type(g, i), BN_GGUF_ARRAY);
    assert_int_equal(bn_gguf_arr_type(g, i), BN_GGUF_I32);
    assert_int_equal(bn_gguf_arr_n(g, i), 5);
    const int32_t *ai = bn_gguf_arr_data(g, i);
    assert_int_equal(ai[0], -1);
    assert_int_equal(ai[3], INT32_MAX);
    assert_int_equal(ai[4], INT32_MIN);
    i = bn_gguf_find_key(g, "t.arr_f32");
    const float *af = bn_gguf_arr_data(g, i);
    assert_true(af[1] == -1.25f && af[2] == 1e30f);
    i = bn_gguf_find_key(g, "t.arr_bool");
    assert_int_equal(bn_gguf_arr_type(g, i), BN_GGUF_BOOL);
    assert_memory_equal(bn_gguf_arr_data(g, i), "\1\0\1\1", 4);
    i = bn_gguf_find_key(g, "t.arr_empty");
    assert_int_equal(bn_gguf_arr_type(g, i), BN_GGUF_U64);
    assert_int_equal(bn_gguf_arr_n(g, i), 0);
    i = bn_gguf_find_key(g, "t.arr_str");
    assert_int_equal(bn_gguf_arr_type(g, i), BN_GGUF_STRING);
    assert_int_equal(bn_gguf_arr_n(g, i), 4);
    assert_null(bn_gguf_arr_data(g, i));
    size_t len;
    assert_string_equal(bn_gguf_arr_str(g, i, 0, &len), "hello");
    assert_int_equal(len, 5);
    assert_string_equal(bn_gguf_arr_str(g, i, 1, &len), "");
    assert_int_equal(len, 0);
    assert_memory_equal(bn_gguf_arr_str(g, i, 2, &len), "nul\0inside", 11);
    assert_int_equal(len, 10);
    assert_string_equal(bn_gguf_arr_str(g, i, 3, &len), "\xc4\xa0world");
    assert_null(bn_gguf_arr_str(g, i, 4, &len));
    i = bn_gguf_find_key(g, "t.arr_str0");
    assert_int_equal(bn_gguf_arr_n(g, i), 2);
    assert_string_equal(bn_gguf_arr_str(g, i, 0, NULL), "hello");
    assert_int_equal(bn_gguf_arr_n(g, bn_gguf_find_key(g, "t.u32")), 0);
}

static void check_tensors(const bn_gguf *g, const rt_data *d, size_t align)
{
    assert_int_equal(bn_gguf_n_tensors(g), 4);
    const char *names[4] = {"a.f32", "b.f16", "c.i2s", "d.tq2"};
    const void *data[4] = {d->f32, d->f16, d->i2s, d->tq2};
    size_t sizes[4] = {sizeof d->f32, sizeof d->f16, sizeof d->i2s, sizeof d->tq2};
    int types[4] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_I2_S, BN_TYPE_TQ2_0};
    for (int k = 0; k < 4; k++) {
        const bn_gguf_tensor *t = bn_gguf_find_tensor(g, names[k]);
        assert_non_null(t);
        assert_ptr_equal(t, bn_gguf_tensor_at(g, k));
        assert_string_equal(t->name, names[k]);
        assert_int_equal(t->type, types[k]);
        assert_int_equal(t->size, sizes[k]);
        assert_int_equal(t->offset % align, 0);
        assert_int_equal(((const uint8_t *)t->data - (const uint8_t *)bn_gguf_base(g)) % align, 0);
        assert_memory_equal(t->data, data[k], sizes[k]);
    }
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, "a.f32");
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 3);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->ne[3], 1);
    int8_t q[256];
    float scale;
    assert_int_equal(bn_unpack_i2s(bn_gguf_find_tensor(g, "c.i2s")->data, 256, q, &scale), BN_OK);
    assert_memory_equal(q, d->q, 256);
    assert_true(scale == 0.75f);
    assert_null(bn_gguf_find_tensor(g, "nope"));
    assert_null(bn_gguf_tensor_at(g, 4));
}

static void test_round_trip(void **state)
{
    (void)state;
    static rt_data d;
    fill_rt(&d);
    for (int explicit_align = 0; explicit_align < 2; explicit_align++) {
        bn_gguf_writer *w = make_writer(&d, explicit_align);
        const char *path = path_in_dir("rt.gguf");
        assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_OK);
        bn_gguf_writer_free(w);
        assert_int_equal(count_temps(), 0);
        bn_gguf *g;
        assert_int_equal(bn_gguf_open(g_ctx, path, &g), BN_OK);
        assert_int_equal(bn_gguf_version(g), 3);
        size_t align = explicit_align ? 64 : 32;
        assert_int_equal(bn_gguf_alignment(g), align);
        assert_int_equal(bn_gguf_find_key(g, "general.alignment") >= 0, explicit_align);
        assert_int_equal(bn_gguf_data_offset(g) % align, 0);
        assert_string_equal(bn_gguf_key(g, 0), "general.architecture");
        check_scalars(g);
        check_arrays(g);
        check_tensors(g, &d, align);
        /* the same bytes through bn_gguf_open_memory */
        bn_gguf *m;
        assert_int_equal(bn_gguf_open_memory(g_ctx, bn_gguf_base(g), bn_gguf_file_size(g), &m),
                         BN_OK);
        check_tensors(m, &d, align);
        bn_gguf_close(m);
        bn_gguf_close(g);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
    }
}

static void test_writer_rejects(void **state)
{
    (void)state;
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    float x[8] = {0};
    int64_t ne[2] = {4, 2}, ne_bad[1] = {100}, ne_neg[1] = {-4};
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 2, ne, x, 31), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 0, ne, x, 32), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 5, ne, x, 32), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", 99, 2, ne, x, 32), BN_ERR_UNSUPPORTED);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_TQ2_0, 1, ne_bad, x, 32),
                     BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 1, ne_neg, x, 0),
                     BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "", BN_TYPE_F32, 2, ne, x, 32), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 2, ne, x, 32), BN_OK);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "x", BN_TYPE_F32, 2, ne, x, 32), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_set_u32(w, "", 1), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_set_arr(w, "k", BN_GGUF_STRING, x, 1), BN_ERR_INVALID);
    assert_int_equal(bn_gguf_writer_set_arr(w, "k", BN_GGUF_ARRAY, x, 1), BN_ERR_INVALID);
    char *longkey = malloc(70000);
    memset(longkey, 'k', 69999);
    longkey[69999] = '\0';
    assert_int_equal(bn_gguf_writer_set_u32(w, longkey, 1), BN_ERR_INVALID);
    free(longkey);
    /* a bad alignment fails the write and creates nothing */
    const char *path = path_in_dir("badalign.gguf");
    assert_int_equal(bn_gguf_writer_set_u32(w, "general.alignment", 48), BN_OK);
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "power of two"));
    assert_int_equal(bn_gguf_writer_set_u32(w, "general.alignment", 4), BN_OK);
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_ERR_INVALID);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "not a multiple of 8"));
    assert_int_equal(bn_gguf_writer_set_u64(w, "general.alignment", 64), BN_OK);
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_ERR_INVALID);
    assert_int_equal(access(path, F_OK), -1);
    /* a directory that does not exist: an I/O error, nothing left behind */
    assert_int_equal(bn_gguf_writer_set_u32(w, "general.alignment", 16), BN_OK);
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, "/nonexistent-dir/x.gguf"), BN_ERR_IO);
    bn_gguf_writer_free(w);
    assert_int_equal(count_temps(), 0);
}

/* ---- the real vocabulary files --------------------------------------------------------- */

static void check_vocab(const char *path, const char *model, uint64_t n_tokens, const char *tok0,
                        const char *tok_last)
{
    bn_gguf *g;
    if (bn_gguf_open(g_ctx, path, &g) != BN_OK) fail_msg("%s: %s", path, bn_ctx_errmsg(g_ctx));
    assert_int_equal(bn_gguf_version(g), 3);
    assert_int_equal(bn_gguf_n_tensors(g), 0);
    const char *s;
    assert_int_equal(bn_gguf_get_str(g, "tokenizer.ggml.model", &s), BN_OK);
    assert_string_equal(s, model);
    int64_t i = bn_gguf_find_key(g, "tokenizer.ggml.tokens");
    assert_true(i >= 0);
    assert_int_equal(bn_gguf_arr_type(g, i), BN_GGUF_STRING);
    assert_int_equal(bn_gguf_arr_n(g, i), n_tokens);
    assert_string_equal(bn_gguf_arr_str(g, i, 0, NULL), tok0);
    assert_string_equal(bn_gguf_arr_str(g, i, n_tokens - 1, NULL), tok_last);
    int64_t tt = bn_gguf_find_key(g, "tokenizer.ggml.token_type");
    assert_int_equal(bn_gguf_arr_type(g, tt), BN_GGUF_I32);
    assert_int_equal(bn_gguf_arr_n(g, tt), n_tokens);
    bn_gguf_close(g);
}

static void test_real_vocab_files(void **state)
{
    (void)state;
    check_vocab("tests/data/ggml-vocab-gpt-2.gguf", "gpt2", 50257, "!", "<|endoftext|>");
    check_vocab("tests/data/ggml-vocab-llama-spm.gguf", "llama", 32000, "<unk>", "\xe7\xbb\x99");
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(g_ctx, "tests/data/ggml-vocab-gpt-2.gguf", &g), BN_OK);
    int64_t m = bn_gguf_find_key(g, "tokenizer.ggml.merges");
    assert_int_equal(bn_gguf_arr_n(g, m), 50000);
    assert_string_equal(bn_gguf_arr_str(g, m, 0, NULL), "\xc4\xa0 t");
    uint32_t bos;
    assert_int_equal(bn_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos), BN_OK);
    assert_int_equal(bos, 50256);
    bn_gguf_close(g);
    assert_int_equal(bn_gguf_open(g_ctx, "tests/data/ggml-vocab-llama-spm.gguf", &g), BN_OK);
    int add_bos;
    assert_int_equal(bn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos), BN_OK);
    assert_int_equal(add_bos, 1);
    const float *scores = bn_gguf_arr_data(g, bn_gguf_find_key(g, "tokenizer.ggml.scores"));
    assert_non_null(scores);
    assert_false(isnan(scores[100]));
    bn_gguf_close(g);
}

static void test_open_errors(void **state)
{
    (void)state;
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(g_ctx, "/nonexistent/x.gguf", &g), BN_ERR_IO);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "cannot open"));
    assert_int_equal(bn_gguf_open(g_ctx, g_dir, &g), BN_ERR_IO);
    const char *empty = path_in_dir("empty.gguf");
    write_file(empty, "", 0);
    assert_int_equal(bn_gguf_open(g_ctx, empty, &g), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "empty"));
    assert_null(g);
    assert_int_equal(bn_gguf_open_memory(NULL, "GGU", 3, &g), BN_ERR_FORMAT); /* NULL ctx */
}

/* ---- malformed inputs ------------------------------------------------------------------- */

static void test_bad_header(void **state)
{
    (void)state;
    buf b = {0};
    b_put(&b, "GGML", 4);
    b_u32(&b, 3);
    b_u64(&b, 0);
    b_u64(&b, 0);
    expect_error(&b, BN_ERR_FORMAT, "bad magic");
    b_header(&b, 1, 0, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "version 1 ");
    b_header(&b, 99, 0, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "version 99 ");
    b_header(&b, 0x03000000u, 0, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "big-endian");
    b_header(&b, 3, 0, (uint64_t)1 << 60);
    expect_error(&b, BN_ERR_FORMAT, "metadata count");
    b_header(&b, 3, UINT64_MAX, 0);
    expect_error(&b, BN_ERR_FORMAT, "tensor count");
    b_header(&b, 3, 2, 1); /* 2 tensors need 64 bytes: 1 kv then nothing */
    b_kv_u32(&b, "a", 1);
    b_zeros(&b, 40);
    expect_error(&b, BN_ERR_FORMAT, "tensor count");
    /* version 2 reads like 3; an empty file with no tensors is valid */
    b_header(&b, 2, 0, 1);
    b_kv_u32(&b, "a", 1);
    assert_int_equal(open_buf(b.p, b.n), BN_OK);
    free(b.p);
}

static void test_bad_metadata(void **state)
{
    (void)state;
    buf b = {0};
    b_header(&b, 3, 0, 1);
    b_u64(&b, UINT64_MAX); /* key length */
    b_zeros(&b, 16);
    expect_error(&b, BN_ERR_FORMAT, "key length");
    b_header(&b, 3, 0, 1);
    b_u64(&b, 70000);
    for (int i = 0; i < 70000 + 8; i++) b_put(&b, "k", 1);
    expect_error(&b, BN_ERR_FORMAT, "exceeds the limit 65535");
    b_header(&b, 3, 0, 1);
    b_str(&b, "s");
    b_u32(&b, BN_GGUF_STRING);
    b_u64(&b, (uint64_t)1 << 62);
    b_zeros(&b, 8);
    expect_error(&b, BN_ERR_FORMAT, "string length");
    b_header(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, BN_GGUF_U32);
    b_u64(&b, (uint64_t)1 << 62);
    b_zeros(&b, 8);
    expect_error(&b, BN_ERR_FORMAT, "array count");
    b_header(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, BN_GGUF_STRING);
    b_u64(&b, UINT64_MAX);
    b_zeros(&b, 8);
    expect_error(&b, BN_ERR_FORMAT, "array count");
    b_header(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, BN_GGUF_ARRAY);
    b_u64(&b, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "nested");
    b_header(&b, 3, 0, 1);
    b_str(&b, "arr");
    b_u32(&b, BN_GGUF_ARRAY);
    b_u32(&b, 13);
    b_u64(&b, 0);
    expect_error(&b, BN_ERR_FORMAT, "element type 13");
    b_header(&b, 3, 0, 1);
    b_str(&b, "v");
    b_u32(&b, 13);
    b_zeros(&b, 8);
    expect_error(&b, BN_ERR_FORMAT, "unknown value type 13");
    b_header(&b, 3, 0, 2);
    b_kv_u32(&b, "dup", 1);
    b_kv_u32(&b, "dup", 2);
    expect_error(&b, BN_ERR_FORMAT, "duplicate key");
    b_header(&b, 3, 0, 1);
    b_u64(&b, 3);
    b_put(&b, "a\0b", 3);
    b_u32(&b, BN_GGUF_U8);
    b_put(&b, "x", 1);
    expect_error(&b, BN_ERR_FORMAT, "NUL");
    b_header(&b, 3, 0, 1);
    b_kv_str(&b, "", "x");
    expect_error(&b, BN_ERR_FORMAT, "empty key");
}

static void test_bad_alignment(void **state)
{
    (void)state;
    uint32_t bad[3] = {0, 3, 24};
    for (int k = 0; k < 3; k++) {
        buf b = {0};
        b_header(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", bad[k]);
        expect_error(&b, BN_ERR_FORMAT, "not a power of two");
    }
    /* GGUF: "it must be a multiple of 8"; 1, 2 and 4 would let F32 data start anywhere */
    uint32_t small[3] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        buf b = {0};
        b_header(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", small[k]);
        char want[64];
        snprintf(want, sizeof want, "general.alignment %u is not a multiple of 8", small[k]);
        expect_error(&b, BN_ERR_FORMAT, want);
    }
    buf b = {0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, BN_GGUF_U64);
    b_u64(&b, 32);
    expect_error(&b, BN_ERR_FORMAT, "expected u32");
}

/* Alignment 8, the smallest legal one: an F32 tensor [3] at 0 and an F16 tensor [3] at 16,
 * with the data section at an offset that is a multiple of 8 but not of 16 (136). */
static buf align8_file(void)
{
    buf b = {0};
    b_header(&b, 3, 2, 1);
    b_kv_u32(&b, "general.alignment", 8);
    uint64_t ne[1] = {3};
    b_tinfo(&b, "f", 1, ne, BN_TYPE_F32, 0);
    b_tinfo(&b, "f16half", 1, ne, BN_TYPE_F16, 16);
    b_pad(&b, 8);
    if (b.n % 16 != 8) fail_msg("fixture: data section at %zu, want 8 mod 16", b.n);
    const float f[3] = {1.5f, -2.0f, 0.25f};
    b_put(&b, f, sizeof f);
    b_zeros(&b, 4);
    const uint16_t h[3] = {0x3c00, 0xc000, 0x3400}; /* 1, -2, 0.25 */
    b_put(&b, h, sizeof h);
    return b;
}

/* The alignment-8 file read from a caller's buffer at every misalignment 0..7: the tensors'
 * data then starts at addresses that are not multiples of 4 (or 2), and reading it through
 * memcpy / bn_f16_to_f32_row gives the values with no misaligned load (UBSan checks). */
static void test_unaligned_data(void **state)
{
    (void)state;
    buf b = align8_file();
    uint8_t *mem = malloc(b.n + 8);
    assert_non_null(mem);
    for (size_t shift = 0; shift < 8; shift++) {
        memcpy(mem + shift, b.p, b.n);
        bn_gguf *g;
        if (bn_gguf_open_memory(g_ctx, mem + shift, b.n, &g) != BN_OK)
            fail_msg("shift %zu: %s", shift, bn_ctx_errmsg(g_ctx));
        assert_int_equal(bn_gguf_alignment(g), 8);
        const bn_gguf_tensor *tf = bn_gguf_find_tensor(g, "f"),
                             *th = bn_gguf_find_tensor(g, "f16half");
        assert_non_null(tf);
        assert_non_null(th);
        assert_int_equal(((uintptr_t)tf->data - (uintptr_t)mem) % 8, shift);
        float y[3];
        memcpy(y, tf->data, sizeof y);
        assert_true(y[0] == 1.5f && y[1] == -2.0f && y[2] == 0.25f);
        memset(y, 0, sizeof y);
        bn_f16_to_f32_row(th->data, y, 3);
        assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0.25f);
        bn_gguf_close(g);
    }
    free(mem);
    /* the same file from disk: the mapping is page-aligned, so alignment 8 keeps F32 data
     * 4-aligned there */
    const char *path = path_in_dir("align8.gguf");
    write_file(path, b.p, b.n);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(g_ctx, path, &g), BN_OK);
    assert_int_equal((uintptr_t)bn_gguf_find_tensor(g, "f")->data % 8, 0);
    bn_gguf_close(g);
    unlink(path);
    free(b.p);
}

/* One tensor info then 64 bytes of data (alignment 32). */
static void one_tensor(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset)
{
    b_header(b, 3, 1, 0);
    b_tinfo(b, name, n_dims, ne, type, offset);
    b_pad(b, 32);
    b_zeros(b, 64);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    buf b = {0};
    uint64_t ne4[5] = {4, 1, 1, 1, 1};
    one_tensor(&b, "t", 0, ne4, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_FORMAT, "n_dims 0 ");
    one_tensor(&b, "t", 5, ne4, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_FORMAT, "n_dims 5 ");
    uint64_t neg[2] = {4, (uint64_t)-3};
    one_tensor(&b, "t", 2, neg, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_FORMAT, "negative");
    uint64_t ovf[3] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 1};
    one_tensor(&b, "t", 3, ovf, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_OVERFLOW, "overflows");
    uint64_t ovf2[2] = {(uint64_t)1 << 61, 2}; /* elements fit, bytes do not */
    one_tensor(&b, "t", 2, ovf2, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_OVERFLOW, "overflow");
    uint64_t big[2] = {(uint64_t)1 << 20, 4};
    one_tensor(&b, "t", 2, big, BN_TYPE_F32, 0);
    expect_error(&b, BN_ERR_FORMAT, "past the end");
    uint64_t ne16[1] = {16};
    one_tensor(&b, "t", 1, ne16, BN_TYPE_F32, 32); /* 32 + 64 > 64 */
    expect_error(&b, BN_ERR_FORMAT, "past the end");
    one_tensor(&b, "t", 1, ne16, BN_TYPE_F32, UINT64_MAX - 31);
    expect_error(&b, BN_ERR_FORMAT, "past the end");
    uint64_t ne8[1] = {8};
    one_tensor(&b, "t", 1, ne8, BN_TYPE_F32, 4);
    expect_error(&b, BN_ERR_FORMAT, "not a multiple of the alignment");
    one_tensor(&b, "blk.0.w", 1, ne8, 99, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "tensor 'blk.0.w': unknown type id 99");
    one_tensor(&b, "t", 1, ne8, UINT32_MAX, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "unknown type id 4294967295");
    uint64_t ne100[1] = {100};
    one_tensor(&b, "t", 1, ne100, BN_TYPE_TQ2_0, 0);
    expect_error(&b, BN_ERR_FORMAT, "block size 256");
    one_tensor(&b, "t", 1, ne100, BN_TYPE_I2_S, 0);
    expect_error(&b, BN_ERR_FORMAT, "block size 128");
    /* an I2_S tensor of 128 weights: 32 code bytes + 32 = 64 bytes, exactly the data */
    uint64_t ne128[1] = {128};
    one_tensor(&b, "t", 1, ne128, BN_TYPE_I2_S, 0);
    assert_int_equal(open_buf(b.p, b.n), BN_OK);
    free(b.p);
    b = (buf){0};
    b_header(&b, 3, 2, 0);
    b_tinfo(&b, "same", 1, ne8, BN_TYPE_F32, 0);
    b_tinfo(&b, "same", 1, ne8, BN_TYPE_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_error(&b, BN_ERR_FORMAT, "tensor 'same': duplicate tensor name");
    /* overlapping data, in either order of the infos */
    b_header(&b, 3, 2, 0);
    b_tinfo(&b, "late", 1, ne8, BN_TYPE_F32, 32);
    b_tinfo(&b, "wide", 1, ne16, BN_TYPE_F32, 0);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_error(&b, BN_ERR_FORMAT, "tensor 'late': data at offset 32 overlaps tensor 'wide'");
    /* a name with control bytes: the message stays one line (open_buf checks) */
    one_tensor(&b, "a\nb\x1b[31m", 1, ne8, 99, 0);
    expect_error(&b, BN_ERR_UNSUPPORTED, "tensor 'a?b?[31m': unknown type id 99");
    /* tensor infos that end right at EOF: the data section would start past the end */
    b_header(&b, 3, 1, 0);
    b_tinfo(&b, "t", 1, ne8, BN_TYPE_F32, 0);
    b_zeros(&b, 1);
    expect_error(&b, BN_ERR_FORMAT, "data section");
    /* zero-sized tensors are fine */
    uint64_t ne0[2] = {0, 5};
    one_tensor(&b, "t", 2, ne0, BN_TYPE_F32, 64);
    assert_int_equal(open_buf(b.p, b.n), BN_OK);
    free(b.p);
}

static void test_every_truncation(void **state)
{
    (void)state;
    buf b = small_valid();
    assert_int_equal(open_buf(b.p, b.n), BN_OK);
    for (size_t n = 0; n < b.n; n++) {
        bn_status rc = open_buf(b.p, n);
        if (rc == BN_OK) fail_msg("prefix of %zu bytes (of %zu) accepted", n, b.n);
    }
    free(b.p);
}

/* Every byte replaced by a few values: never a crash, never a leak (ASan). */
static void test_byte_mutations(void **state)
{
    (void)state;
    buf b = small_valid();
    int ok = 0;
    for (size_t i = 0; i < b.n; i++) {
        uint8_t orig = b.p[i];
        uint8_t vals[4] = {0, 0xff, (uint8_t)(orig ^ 1), (uint8_t)(orig + 0x40)};
        for (int k = 0; k < 4; k++) {
            b.p[i] = vals[k];
            ok += open_buf(b.p, b.n) == BN_OK;
        }
        b.p[i] = orig;
    }
    assert_true(ok > 0); /* e.g. changes inside the tensor data */
    free(b.p);
}

/* ---- resource exhaustion ---------------------------------------------------------------- */

static void test_alloc_failures_open(void **state)
{
    (void)state;
    buf b = small_valid();
    bn_gguf *g;
    long before = bn_alloc_count();
    assert_int_equal(bn_gguf_open_memory(g_ctx, b.p, b.n, &g), BN_OK);
    long n_allocs = bn_alloc_count() - before;
    bn_gguf_close(g);
    assert_true(n_allocs >= 8);
    for (int sticky = 0; sticky < 2; sticky++) {
        for (long k = 1; k <= n_allocs; k++) {
            bn_alloc_fail_at(k, sticky);
            bn_status rc = bn_gguf_open_memory(g_ctx, b.p, b.n, &g);
            bn_alloc_fail_at(0, 0);
            if (rc != BN_ERR_NOMEM) fail_msg("allocation %ld: status %d", k, rc);
            assert_null(g);
            assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "out of memory"));
        }
    }
    /* and through the file path (mmap) */
    const char *path = path_in_dir("small.gguf");
    write_file(path, b.p, b.n);
    for (long k = 1; k <= n_allocs; k++) {
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_gguf_open(g_ctx, path, &g);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
    }
    free(b.p);
}

/* Creates a writer with a few entries and a tensor, then frees it; returns the first error. */
static bn_status build_small_writer(const rt_data *d)
{
    bn_gguf_writer *w;
    bn_status rc = bn_gguf_writer_new(&w);
    if (rc != BN_OK) return rc;
    int64_t ne[1] = {6};
    const char *strs[1] = {"x"};
    rc = bn_gguf_writer_set_u32(w, "a", 1);
    if (rc == BN_OK) rc = bn_gguf_writer_set_arr_str(w, "b", strs, 1);
    if (rc == BN_OK) rc = bn_gguf_writer_set_strn(w, "c", "x", 1);
    if (rc == BN_OK) rc = bn_gguf_writer_add_tensor(w, "t", BN_TYPE_F32, 1, ne, d->f32, 24);
    bn_gguf_writer_free(w);
    return rc;
}

static void test_alloc_failures_writer(void **state)
{
    (void)state;
    static rt_data d;
    fill_rt(&d);
    const char *path = path_in_dir("atomic.gguf");
    const char old[] = "old contents";
    write_file(path, old, sizeof old);
    /* building a writer */
    long before = bn_alloc_count();
    assert_int_equal(build_small_writer(&d), BN_OK);
    long n_build = bn_alloc_count() - before;
    assert_true(n_build >= 6);
    for (int sticky = 0; sticky < 2; sticky++) {
        for (long k = 1; k <= n_build; k++) {
            bn_alloc_fail_at(k, sticky);
            bn_status rc = build_small_writer(&d);
            bn_alloc_fail_at(0, 0);
            assert_int_equal(rc, BN_ERR_NOMEM);
        }
    }
    bn_gguf_writer *w;
    /* writing: every allocation failure leaves the old file and no temporary */
    w = make_writer(&d, 1);
    before = bn_alloc_count();
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path_in_dir("count.gguf")), BN_OK);
    long n_write = bn_alloc_count() - before;
    assert_true(n_write >= 2);
    for (long k = 1; k <= n_write; k++) {
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_gguf_writer_write(g_ctx, w, path);
        bn_alloc_fail_at(0, 0);
        assert_int_equal(rc, BN_ERR_NOMEM);
        uint8_t got[64];
        assert_int_equal(read_file(path, got, sizeof got), sizeof old);
        assert_memory_equal(got, old, sizeof old);
        assert_int_equal(count_temps(), 0);
    }
    bn_gguf_writer_free(w);
}

/* An I/O failure half-way (file size limit): the old file stays, no temporary is left. */
static void test_writer_atomic_io_error(void **state)
{
    (void)state;
    const char *path = path_in_dir("atomic2.gguf");
    const char old[] = "previous model";
    write_file(path, old, sizeof old);
    size_t n = 1 << 18;
    float *big = calloc(n, sizeof *big);
    assert_non_null(big);
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    assert_int_equal(bn_gguf_writer_set_str(w, "general.architecture", "x"), BN_OK);
    int64_t ne[1] = {(int64_t)n};
    assert_int_equal(bn_gguf_writer_add_tensor(w, "big", BN_TYPE_F32, 1, ne, big, n * 4), BN_OK);
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = saved;
    lim.rlim_cur = 100000;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bn_status rc = bn_gguf_writer_write(g_ctx, w, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, BN_ERR_IO);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "cannot write"));
    uint8_t got[64];
    assert_int_equal(read_file(path, got, sizeof got), sizeof old);
    assert_memory_equal(got, old, sizeof old);
    assert_int_equal(count_temps(), 0);
    /* without the limit the same writer replaces the file */
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_OK);
    bn_gguf *g;
    assert_int_equal(bn_gguf_open(g_ctx, path, &g), BN_OK);
    assert_int_equal(bn_gguf_find_tensor(g, "big")->size, n * 4);
    bn_gguf_close(g);
    bn_gguf_writer_free(w);
    free(big);
}

static void test_vtype_names(void **state)
{
    (void)state;
    assert_string_equal(bn_gguf_vtype_name(BN_GGUF_U32), "u32");
    assert_string_equal(bn_gguf_vtype_name(BN_GGUF_STRING), "string");
    assert_string_equal(bn_gguf_vtype_name(BN_GGUF_F64), "f64");
    assert_string_equal(bn_gguf_vtype_name(13), "unknown");
    assert_string_equal(bn_gguf_vtype_name(-1), "unknown");
}

/* bn_gguf_writer_copy_kv: every entry of a real vocabulary (string arrays, numbers,
 * strings) copied into a writer reads back the same. */
static void test_copy_kv(void **state)
{
    (void)state;
    bn_gguf *a;
    assert_int_equal(bn_gguf_open(g_ctx, "tests/data/ggml-vocab-llama-spm.gguf", &a), BN_OK);
    bn_gguf_writer *w;
    assert_int_equal(bn_gguf_writer_new(&w), BN_OK);
    for (int64_t i = 0; i < bn_gguf_n_kv(a); i++)
        assert_int_equal(bn_gguf_writer_copy_kv(w, a, i), BN_OK);
    assert_int_equal(bn_gguf_writer_copy_kv(w, a, bn_gguf_n_kv(a)), BN_ERR_INVALID);
    char path[128];
    snprintf(path, sizeof path, "%s/copy.gguf", g_dir);
    assert_int_equal(bn_gguf_writer_write(g_ctx, w, path), BN_OK);
    bn_gguf_writer_free(w);
    bn_gguf *b;
    assert_int_equal(bn_gguf_open(g_ctx, path, &b), BN_OK);
    assert_int_equal(bn_gguf_n_kv(b), bn_gguf_n_kv(a));
    for (int64_t i = 0; i < bn_gguf_n_kv(a); i++) {
        const char *key = bn_gguf_key(a, i);
        const int64_t j = bn_gguf_find_key(b, key);
        assert_true(j >= 0);
        assert_int_equal(bn_gguf_kv_type(b, j), bn_gguf_kv_type(a, i));
        if (bn_gguf_kv_type(a, i) == BN_GGUF_ARRAY) {
            const uint64_t n = bn_gguf_arr_n(a, i);
            assert_int_equal(bn_gguf_arr_type(b, j), bn_gguf_arr_type(a, i));
            assert_int_equal(bn_gguf_arr_n(b, j), n);
            for (uint64_t k = 0; k < n; k += 97) {
                if (bn_gguf_arr_type(a, i) != BN_GGUF_STRING) break;
                size_t la, lb;
                const char *sa = bn_gguf_arr_str(a, i, k, &la), *sb = bn_gguf_arr_str(b, j, k, &lb);
                assert_int_equal(la, lb);
                assert_memory_equal(sa, sb, la);
            }
        } else {
            assert_int_equal(bn_gguf_kv_i64(b, j), bn_gguf_kv_i64(a, i));
        }
    }
    bn_gguf_close(b);
    bn_gguf_close(a);
}

/* ---- setup ------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    bn_ctx_params p = {.n_threads = 1};
    return bn_ctx_new(&g_ctx, &p) == BN_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bn_ctx_free(g_ctx);
    DIR *d = opendir(g_dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_writer_rejects),
            cmocka_unit_test(test_real_vocab_files),
            cmocka_unit_test(test_copy_kv),
            cmocka_unit_test(test_open_errors),
            cmocka_unit_test(test_bad_header),
            cmocka_unit_test(test_bad_metadata),
            cmocka_unit_test(test_bad_alignment),
            cmocka_unit_test(test_unaligned_data),
            cmocka_unit_test(test_bad_tensors),
            cmocka_unit_test(test_every_truncation),
            cmocka_unit_test(test_byte_mutations),
            cmocka_unit_test(test_alloc_failures_open),
            cmocka_unit_test(test_alloc_failures_writer),
            cmocka_unit_test(test_writer_atomic_io_error),
            cmocka_unit_test(test_vtype_names),
    };
    return cmocka_run_group_tests_name("gguf", tests, group_setup, group_teardown);
}
