/* test_torchzip.c - PyTorch checkpoint reader: files written by torch.save
 * (tests/convert/make_ckpt_fixtures.py), hand-made pickles in archives written with libzip
 * (refused globals and opcodes, bad stacks and memos, tensors outside their storages),
 * non-zip and legacy inputs, every truncation and allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "bitnet/torchzip.h"

static bn_ctx *g_ctx;
static char g_tmp[64];

static float *read_f32(bn_torch *pt, const bn_pt_tensor *t)
{
    void *raw = malloc(t->size ? t->size : 1);
    float *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
    assert_non_null(raw);
    assert_non_null(x);
    assert_int_equal(bn_torch_read(pt, t, raw), BN_OK);
    assert_int_equal(bn_dtype_to_f32(t->dtype, raw, t->numel, x), BN_OK);
    free(raw);
    return x;
}

static void test_small(void **state)
{
    (void)state;
    bn_torch *pt;
    assert_int_equal(bn_torch_open(g_ctx, "tests/data/ckpt/small.pt", &pt), BN_OK);
    assert_int_equal(bn_torch_n_tensors(pt), 8); /* "epoch" is skipped */
    const bn_pt_tensor *w = bn_torch_find(pt, "w");
    assert_non_null(w);
    assert_int_equal(w->dtype, BN_DTYPE_F32);
    assert_int_equal(w->n_dims, 2);
    assert_int_equal(w->shape[0], 4);
    assert_int_equal(w->shape[1], 3);
    assert_true(w->contiguous);
    float *x = read_f32(pt, w);
    for (int k = 0; k < 12; k++) assert_float_equal(x[k], k * 0.25 - 1, 0);
    free(x);
    const bn_pt_tensor *tied = bn_torch_find(pt, "w_tied");
    assert_string_equal(tied->storage, w->storage);
    const bn_pt_tensor *v = bn_torch_find(pt, "view"); /* w[1:] */
    assert_int_equal(v->storage_offset, 3);
    assert_int_equal(v->shape[0], 3);
    x = read_f32(pt, v);
    for (int k = 0; k < 9; k++) assert_float_equal(x[k], (k + 3) * 0.25 - 1, 0);
    free(x);
    const bn_pt_tensor *t = bn_torch_find(pt, "t"); /* w.t(): 3x4, strides (1, 3) */
    assert_false(t->contiguous);
    x = read_f32(pt, t);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) assert_float_equal(x[r * 4 + c], (c * 3 + r) * 0.25 - 1, 0);
    free(x);
    static const char *const ramps[] = {"h", "bf", "nested.inner"};
    static const bn_dtype types[] = {BN_DTYPE_F16, BN_DTYPE_BF16, BN_DTYPE_F64};
    for (int i = 0; i < 3; i++) {
        const bn_pt_tensor *r = bn_torch_find(pt, ramps[i]);
        assert_non_null(r);
        assert_int_equal(r->dtype, types[i]);
        x = read_f32(pt, r);
        for (uint64_t k = 0; k < r->numel; k++) assert_float_equal(x[k], k * 0.25 - 1, 0);
        free(x);
    }
    const bn_pt_tensor *ti = bn_torch_find(pt, "i");
    assert_int_equal(ti->dtype, BN_DTYPE_I32);
    x = read_f32(pt, ti);
    assert_float_equal(x[4], 4, 0);
    free(x);
    assert_null(bn_torch_find(pt, "epoch"));
    bn_torch_close(pt);
}

static void test_state_dicts(void **state)
{
    (void)state;
    bn_torch *pt;
    assert_int_equal(bn_torch_open(g_ctx, "tests/data/ckpt/linear.pt", &pt), BN_OK);
    assert_int_equal(bn_torch_n_tensors(pt), 2);
    float *x = read_f32(pt, bn_torch_find(pt, "weight"));
    assert_float_equal(x[5], 5 * 0.25 - 1, 0);
    free(x);
    x = read_f32(pt, bn_torch_find(pt, "bias"));
    assert_float_equal(x[1], -0.75, 0);
    free(x);
    bn_torch_close(pt);
    assert_int_equal(bn_torch_open(g_ctx, "tests/data/ckpt/param.pt", &pt), BN_OK);
    x = read_f32(pt, bn_torch_find(pt, "p"));
    assert_float_equal(x[2], -0.5, 0);
    free(x);
    bn_torch_close(pt);
}

/* ---- hand-made pickles ------------------------------------------------------------------- */

typedef struct buf {
    uint8_t p[4096];
    size_t n;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    assert_true(b->n + n <= sizeof b->p);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void op(buf *b, int c)
{
    uint8_t x = (uint8_t)c;
    put(b, &x, 1);
}
static void p_str(buf *b, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    op(b, 'X');
    put(b, &n, 4);
    put(b, s, n);
}
static void p_int(buf *b, int v)
{
    op(b, 'J');
    put(b, &v, 4);
}
static void p_global(buf *b, const char *mod, const char *name)
{
    op(b, 'c');
    put(b, mod, strlen(mod));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
}

/* {name: _rebuild_tensor_v2(storage(key, numel, cls), off, (shape), (stride), False, OD())} */
static void p_tensor(buf *b, const char *name, const char *cls, const char *key, int numel, int off,
                     int n, const int *shape, const int *stride)
{
    p_str(b, name);
    p_global(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    op(b, '(');
    p_str(b, "storage");
    p_global(b, "torch", cls);
    p_str(b, key);
    p_str(b, "cpu");
    p_int(b, numel);
    op(b, 't');
    op(b, 'Q');
    p_int(b, off);
    op(b, '(');
    for (int i = 0; i < n; i++) p_int(b, shape[i]);
    op(b, 't');
    op(b, '(');
    for (int i = 0; i < n; i++) p_int(b, stride[i]);
    op(b, 't');
    op(b, 0x89);
    p_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 't');
    op(b, 'R');
}

static void p_begin(buf *b)
{
    b->n = 0;
    op(b, 0x80);
    op(b, 2);
    op(b, '}');
    op(b, '(');
}

static void p_end(buf *b)
{
    op(b, 'u');
    op(b, '.');
}

/* Writes an archive "arc/" with data.pkl and storages data/0 (16 bytes) and data/1 (8). */
static const char *write_zip(const buf *pkl, const char *byteorder)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/t.pt", g_tmp);
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(z);
    static uint8_t s0[16], s1[8];
    for (int i = 0; i < 4; i++) {
        float f = (float)i;
        memcpy(s0 + 4 * i, &f, 4);
    }
    struct {
        const char *name;
        const void *p;
        size_t n;
    } e[] = {{"arc/data.pkl", pkl->p, pkl->n},
             {"arc/data/0", s0, 16},
             {"arc/data/1", s1, 8},
             {"arc/byteorder", byteorder, byteorder ? strlen(byteorder) : 0}};
    for (int i = 0; i < 4; i++) {
        if (!e[i].p) continue;
        zip_source_t *src = zip_source_buffer(z, e[i].p, e[i].n, 0);
        zip_int64_t idx = zip_file_add(z, e[i].name, src, ZIP_FL_OVERWRITE);
        assert_true(idx >= 0);
        zip_set_file_compression(z, (zip_uint64_t)idx, i == 2 ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    assert_int_equal(zip_close(z), 0);
    return path;
}

static bn_status open_pkl(const buf *b, bn_torch **pt)
{
    bn_ctx_clear_error(g_ctx);
    return bn_torch_open(g_ctx, write_zip(b, "little"), pt);
}

static void expect_err(const buf *b, bn_status want, const char *msg)
{
    bn_torch *pt = (void *)1;
    bn_status rc = open_pkl(b, &pt);
    if (rc != want || !strstr(bn_ctx_errmsg(g_ctx), msg))
        fail_msg("got %d '%s', wanted %d '%s'", rc, bn_ctx_errmsg(g_ctx), want, msg);
    assert_null(pt);
}

static void test_handmade_ok(void **state)
{
    (void)state;
    buf b;
    p_begin(&b);
    const int sh[2] = {2, 2}, st[2] = {2, 1}, sh1[1] = {2}, st1[1] = {1};
    p_tensor(&b, "m", "FloatStorage", "0", 4, 0, 2, sh, st);
    p_tensor(&b, "d", "DoubleStorage", "1", 1, 0, 0, NULL, NULL); /* a scalar */
    p_tensor(&b, "tail", "FloatStorage", "0", 4, 2, 1, sh1, st1);
    p_end(&b);
    bn_torch *pt;
    assert_int_equal(open_pkl(&b, &pt), BN_OK);
    assert_int_equal(bn_torch_n_tensors(pt), 3);
    float *x = read_f32(pt, bn_torch_find(pt, "m"));
    assert_float_equal(x[3], 3, 0);
    free(x);
    x = read_f32(pt, bn_torch_find(pt, "tail"));
    assert_float_equal(x[0], 2, 0);
    assert_float_equal(x[1], 3, 0);
    free(x);
    const bn_pt_tensor *d = bn_torch_find(pt, "d"); /* storage 1 is deflated */
    assert_int_equal(d->n_dims, 0);
    assert_int_equal(d->numel, 1);
    x = read_f32(pt, d);
    assert_float_equal(x[0], 0, 0);
    free(x);
    bn_torch_close(pt);
}

static void test_refused(void **state)
{
    (void)state;
    buf b;
    /* the classic: os.system("ls") */
    b.n = 0;
    op(&b, 0x80);
    op(&b, 2);
    p_global(&b, "os", "system");
    p_str(&b, "ls");
    op(&b, 0x85);
    op(&b, 'R');
    op(&b, '.');
    expect_err(&b, BN_ERR_UNSUPPORTED, "global 'os.system' is not allowed");
    b.n = 0;
    p_global(&b, "posix", "system");
    expect_err(&b, BN_ERR_UNSUPPORTED, "global 'posix.system' is not allowed");
    b.n = 0;
    p_global(&b, "builtins", "eval");
    expect_err(&b, BN_ERR_UNSUPPORTED, "'builtins.eval'");
    b.n = 0;
    p_global(&b, "torch", "load");
    expect_err(&b, BN_ERR_UNSUPPORTED, "'torch.load'");
    /* protocol 4's STACK_GLOBAL, INST, OBJ, NEWOBJ: refused by name */
    static const struct {
        int op;
        const char *name;
    } ops[] = {{0x93, "STACK_GLOBAL"}, {'i', "INST"}, {'o', "OBJ"}, {0x81, "NEWOBJ"},
               {0x95, "FRAME"},        {'0', "POP"},  {'2', "DUP"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        b.n = 0;
        p_str(&b, "builtins");
        op(&b, ops[i].op);
        expect_err(&b, BN_ERR_UNSUPPORTED, ops[i].name);
    }
    b.n = 0;
    op(&b, 0xff);
    expect_err(&b, BN_ERR_FORMAT, "unknown opcode 0xff");
    b.n = 0;
    op(&b, 0x80);
    op(&b, 6);
    expect_err(&b, BN_ERR_UNSUPPORTED, "protocol 6");
    /* REDUCE on a storage class */
    b.n = 0;
    p_global(&b, "torch", "FloatStorage");
    op(&b, ')');
    op(&b, 'R');
    expect_err(&b, BN_ERR_UNSUPPORTED, "REDUCE of torch.FloatStorage");
    /* BUILD on a list */
    b.n = 0;
    op(&b, ']');
    op(&b, '}');
    op(&b, 'b');
    expect_err(&b, BN_ERR_UNSUPPORTED, "BUILD on a list");
}

static void test_bad_machine(void **state)
{
    (void)state;
    buf b;
    b.n = 0;
    op(&b, 'R');
    expect_err(&b, BN_ERR_FORMAT, "stack underflow");
    b.n = 0;
    op(&b, '}');
    op(&b, 'h');
    op(&b, 5);
    for (int i = 0; i < 8; i++) op(&b, 'N');
    expect_err(&b, BN_ERR_FORMAT, "memo 5 read before it was set");
    b.n = 0;
    op(&b, '}');
    op(&b, 'r');
    uint32_t big = 0xffffffff;
    put(&b, &big, 4);
    expect_err(&b, BN_ERR_FORMAT, "memo index 4294967295 too large");
    b.n = 0;
    op(&b, '}');
    expect_err(&b, BN_ERR_FORMAT, "no STOP");
    b.n = 0;
    op(&b, 'X');
    op(&b, 0xff);
    op(&b, 0xff);
    expect_err(&b, BN_ERR_FORMAT, "truncated");
    b.n = 0;
    p_int(&b, 1);
    op(&b, '.');
    expect_err(&b, BN_ERR_FORMAT, "holds a int, not a dict");
    b.n = 0;
    op(&b, 0x8a);
    op(&b, 9);
    expect_err(&b, BN_ERR_UNSUPPORTED, "LONG1 of 9 bytes");
    b.n = 0;
    op(&b, '(');
    op(&b, 'u');
    expect_err(&b, BN_ERR_FORMAT, "SETITEMS with no container");
    b.n = 0;
    op(&b, ']');
    op(&b, '(');
    p_int(&b, 1);
    op(&b, 'u');
    expect_err(&b, BN_ERR_FORMAT, "SETITEMS on a list");
    b.n = 0;
    op(&b, '}');
    op(&b, 'Q');
    expect_err(&b, BN_ERR_FORMAT, "persistent id is not a 5-tuple");
    b.n = 0;
    p_str(&b, "\xff");
    expect_err(&b, BN_ERR_FORMAT, "UTF-8");
}

static void test_bad_tensors(void **state)
{
    (void)state;
    buf b;
    const int sh[1] = {5}, st[1] = {1}, sh2[2] = {2, 2}, st2[2] = {1, 3};
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0, 1, sh, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "x: elements [0, 5) lie outside its storage of 4");
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0, 2, sh2, st2); /* last element at 4 */
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "outside its storage");
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "7", 4, 0, 1, sh2, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "storage 7 is missing");
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 8, 0, 1, sh, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "storage 0 holds 16 bytes, 8 F32 elements need 32");
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "../0", 4, 0, 1, sh, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "not a plain name");
    const int one[1] = {1}, hugest[1] = {0x7fffffff};
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0x7fffffff, 1, one, hugest);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "outside its storage");
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0, 1, one, st);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0, 1, one, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "'x' occurs twice");
    const int neg[1] = {-1};
    p_begin(&b);
    p_tensor(&b, "x", "FloatStorage", "0", 4, 0, 1, neg, st);
    p_end(&b);
    expect_err(&b, BN_ERR_FORMAT, "negative");
}

static void test_not_checkpoints(void **state)
{
    (void)state;
    bn_torch *pt;
    const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 'l', 'e', 'g'};
    assert_int_equal(bn_torch_open_memory(g_ctx, legacy, sizeof legacy, &pt), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "legacy PyTorch format"));
    assert_int_equal(bn_torch_open_memory(g_ctx, "hello world", 11, &pt), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "not a zip archive"));
    assert_int_equal(bn_torch_open_memory(g_ctx, "PK\x03\x04garbage", 11, &pt), BN_ERR_FORMAT);
    assert_int_equal(bn_torch_open(g_ctx, "tests/data/ckpt/small.safetensors", &pt), BN_ERR_FORMAT);
    buf b;
    p_begin(&b);
    p_end(&b);
    assert_int_equal(bn_torch_open(g_ctx, write_zip(&b, "big"), &pt), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "byte order"));
    assert_int_equal(bn_torch_open(g_ctx, write_zip(&b, NULL), &pt), BN_OK); /* no byteorder */
    assert_int_equal(bn_torch_n_tensors(pt), 0);
    bn_torch_close(pt);
    /* a zip without data.pkl */
    char path[128];
    snprintf(path, sizeof path, "%s/nopkl.zip", g_tmp);
    int err;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    zip_file_add(z, "a/other", zip_source_buffer(z, "x", 1, 0), 0);
    assert_int_equal(zip_close(z), 0);
    assert_int_equal(bn_torch_open(g_ctx, path, &pt), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "no <name>/data.pkl"));
}

static void test_truncations(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all("tests/data/ckpt/small.pt", &n);
    for (size_t k = 0; k < n; k += (k < 64 || n - k < 64) ? 1 : 7) {
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, full, k);
        bn_torch *pt = (void *)1;
        bn_ctx_clear_error(g_ctx);
        assert_int_not_equal(bn_torch_open_memory(g_ctx, p, k, &pt), BN_OK);
        assert_null(pt);
        assert_true(bn_ctx_errmsg(g_ctx)[0] != '\0');
        free(p);
    }
    /* every byte of the pickle flipped: never a crash */
    uint8_t *p = malloc(n);
    for (size_t k = 0; k < 420 && k < n; k++) {
        memcpy(p, full, n);
        p[k] ^= 0x5a;
        bn_torch *pt = NULL;
        if (bn_torch_open_memory(g_ctx, p, n, &pt) == BN_OK) bn_torch_close(pt);
    }
    free(p);
    free(full);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all("tests/data/ckpt/small.pt", &n);
    int ok = 0;
    for (long k = 1; k < 5000 && !ok; k++) {
        bn_torch *pt;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_torch_open_memory(g_ctx, full, n, &pt);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            ok = 1;
            bn_torch_close(pt);
        } else {
            assert_int_equal(rc, BN_ERR_NOMEM);
        }
    }
    assert_true(ok);
    free(full);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bn_torchzip_XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    bn_ctx_params p = {.n_threads = 1};
    return bn_ctx_new(&g_ctx, &p) == BN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    static const char *const names[] = {"t.pt", "nopkl.zip"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", g_tmp, names[i]);
        unlink(path);
    }
    rmdir(g_tmp);
    bn_ctx_free(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_small),           cmocka_unit_test(test_state_dicts),
            cmocka_unit_test(test_handmade_ok),     cmocka_unit_test(test_refused),
            cmocka_unit_test(test_bad_machine),     cmocka_unit_test(test_bad_tensors),
            cmocka_unit_test(test_not_checkpoints), cmocka_unit_test(test_truncations),
            cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
