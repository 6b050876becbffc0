/* test_onnx.c - ONNX reader: models written by onnx.save (tests/convert/make_ckpt_fixtures.py;
 * inline and external data), hand-encoded protobufs (wrong wire types, truncation, deep
 * nesting, every tensor check), external data kept inside the model's directory, every
 * truncation, allocation failures, and every model of Debian's libonnx-testdata. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include "pb_encode.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/onnx.h"

static bn_ctx *g_ctx;
static char g_tmp[64];

static float *read_f32(bn_onnx *ox, const bn_onnx_tensor *t)
{
    assert_non_null(t);
    void *raw = malloc(t->size ? t->size : 1);
    float *x = malloc((t->numel ? t->numel : 1) * sizeof *x);
    assert_int_equal(bn_onnx_read(ox, t, raw), BN_OK);
    assert_int_equal(bn_dtype_to_f32(t->dtype, raw, t->numel, x), BN_OK);
    free(raw);
    return x;
}

static void check_tiny(bn_onnx *ox, bn_onnx_source wsrc)
{
    assert_int_equal(bn_onnx_n_tensors(ox), 5);
    const bn_onnx_tensor *w = bn_onnx_find(ox, "w");
    assert_int_equal(w->source, wsrc);
    assert_int_equal(w->dtype, BN_DTYPE_F32);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    float *x = read_f32(ox, w);
    for (int k = 0; k < 6; k++) assert_float_equal(x[k], k * 0.25 - 1, 0);
    free(x);
    const bn_onnx_tensor *b = bn_onnx_find(ox, "b");
    assert_int_equal(b->source, BN_ONNX_SRC_TYPED);
    x = read_f32(ox, b);
    assert_float_equal(x[1], -0.5, 0);
    free(x);
    x = read_f32(ox, bn_onnx_find(ox, "h")); /* FLOAT16 in int32_data */
    assert_float_equal(x[0], 1, 0);
    assert_float_equal(x[1], -2, 0);
    free(x);
    x = read_f32(ox, bn_onnx_find(ox, "i")); /* INT64 in int64_data */
    assert_float_equal(x[1], -8, 0);
    free(x);
    x = read_f32(ox, bn_onnx_find(ox, "k")); /* a Constant node's value, by its output */
    assert_float_equal(x[1], 5, 0);
    free(x);
    assert_int_equal(bn_onnx_n_nodes(ox), 3);
    bn_onnx_node nd;
    assert_int_equal(bn_onnx_node_at(ox, 1, &nd), BN_OK);
    assert_string_equal(nd.op_type, "MatMul");
    assert_string_equal(nd.name, "/model/layers.0/proj/MatMul");
    assert_int_equal(nd.n_inputs, 2);
    assert_string_equal(nd.inputs[1], "w");
    assert_int_equal(bn_onnx_node_at(ox, 3, &nd), BN_ERR_RANGE);
    assert_null(bn_onnx_node_meta(ox, 1, "pkg.torch.onnx.name_scopes"));
    assert_string_equal(bn_onnx_producer(ox), "bitnet-test");
    assert_int_equal(bn_onnx_opset(ox), 17);
    assert_true(bn_onnx_ir_version(ox) >= 7);
}

static void test_tiny(void **state)
{
    (void)state;
    bn_onnx *ox;
    assert_int_equal(bn_onnx_open(g_ctx, "tests/data/ckpt/tiny.onnx", &ox), BN_OK);
    check_tiny(ox, BN_ONNX_SRC_RAW);
    bn_onnx_close(ox);
    assert_int_equal(bn_onnx_open(g_ctx, "tests/data/ckpt/tiny_ext.onnx", &ox), BN_OK);
    check_tiny(ox, BN_ONNX_SRC_EXTERNAL);
    const bn_onnx_tensor *w = bn_onnx_find(ox, "w");
    assert_non_null(strstr(w->location, "/tests/data/ckpt/tiny_ext.onnx.data"));
    bn_onnx_close(ox);
    /* in memory without a directory: external data is refused */
    size_t n;
    uint8_t *p = read_all("tests/data/ckpt/tiny_ext.onnx", &n);
    assert_int_equal(bn_onnx_open_memory(g_ctx, p, n, NULL, &ox), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "no model directory"));
    free(p);
}

/* ---- hand-encoded protobufs: pb_encode.h ---------------------------------------------- */

/* TensorProto fields */
enum {
    T_DIMS = 1,
    T_TYPE = 2,
    T_SEGMENT = 3,
    T_FLOAT = 4,
    T_INT64 = 7,
    T_NAME = 8,
    T_RAW = 9,
    T_EXT = 13,
    T_LOC = 14
};

static void t_head(pb *t, const char *name, int type, int nd, const int64_t *dims)
{
    t->n = 0;
    if (name) pb_str(t, T_NAME, name);
    if (type) pb_int(t, T_TYPE, type);
    for (int i = 0; i < nd; i++) pb_int(t, T_DIMS, dims[i]);
}

static void t_ext(pb *t, const char *key, const char *value)
{
    pb e = {.n = 0};
    pb_str(&e, 1, key);
    pb_str(&e, 2, value);
    pb_msg(t, T_EXT, &e);
}

/* ModelProto { graph { initializer: tensors } } */
static void model_of(pb *m, const pb *tensors, int n)
{
    pb g = {.n = 0};
    for (int i = 0; i < n; i++) pb_msg(&g, 5, &tensors[i]);
    m->n = 0;
    pb_int(m, 1, 8); /* ir_version */
    pb_msg(m, 7, &g);
}

static void expect(const pb *m, const char *dir, bn_status want, const char *msg)
{
    bn_onnx *ox = (void *)1;
    bn_ctx_clear_error(g_ctx);
    bn_status rc = bn_onnx_open_memory(g_ctx, m->p, m->n, dir, &ox);
    if (rc != want || (msg && !strstr(bn_ctx_errmsg(g_ctx), msg)))
        fail_msg("got %d '%s', wanted %d '%s'", rc, bn_ctx_errmsg(g_ctx), want, msg ? msg : "");
    if (rc == BN_OK)
        bn_onnx_close(ox);
    else
        assert_null(ox);
}

static void test_wire(void **state)
{
    (void)state;
    pb m = {.n = 0};
    pb_int(&m, 7, 5); /* graph as a varint: wrong wire type */
    expect(&m, NULL, BN_ERR_FORMAT, "does not decode");
    m.n = 0;
    pb_key(&m, 7, 2);
    pb_varint(&m, 100); /* length past the end */
    expect(&m, NULL, BN_ERR_FORMAT, "does not decode");
    m.n = 0;
    pb_key(&m, 7, 3); /* a group */
    expect(&m, NULL, BN_ERR_FORMAT, "does not decode");
    m.n = 0;
    pb_str(&m, 2, "prod"); /* producer_name as a string: fine, but no graph */
    expect(&m, NULL, BN_ERR_FORMAT, "has no graph");
    m.n = 0;
    expect(&m, NULL, BN_ERR_FORMAT, "has no graph"); /* empty input */
    pb t;
    int64_t d2[2] = {2, 2};
    t_head(&t, "x", 1, 2, d2);
    pb_int(&t, T_RAW, 7); /* raw_data as a varint */
    model_of(&m, &t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "does not decode");
    /* nesting: graph.node.attribute.g.node... 200 deep */
    pb inner = {.n = 0}, tmp;
    for (int i = 0; i < 200 && inner.n + 16 < sizeof inner.p; i++) {
        pb attr = {.n = 0};
        pb_msg(&attr, 6, &inner);
        pb node = {.n = 0};
        pb_msg(&node, 5, &attr);
        tmp.n = 0;
        pb_msg(&tmp, 1, &node);
        inner = tmp;
    }
    m.n = 0;
    pb_msg(&m, 7, &inner);
    expect(&m, NULL, BN_ERR_FORMAT, "nested more than 64 deep");
}

static void test_tensor_checks(void **state)
{
    (void)state;
    pb t[2], m;
    int64_t d2[2] = {2, 2}, neg[1] = {-1}, big[2] = {INT64_MAX / 2, 4},
            d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float f[4] = {1, 2, 3, 4};
    t_head(&t[0], "x", 1, 2, d2);
    pb_bytes(&t[0], T_RAW, f, 12);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "raw_data holds 12 bytes, the shape needs 16");
    t_head(&t[0], "x", 1, 2, d2);
    pb_bytes(&t[0], T_FLOAT, f, 12); /* packed float_data: 3 values */
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "3 values, the shape needs 4");
    t_head(&t[0], "x", 7, 2, d2); /* INT64 with float_data */
    pb_bytes(&t[0], T_FLOAT, f, 16);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "wrong typed field");
    t_head(&t[0], "x", 1, 2, d2);
    pb_bytes(&t[0], T_FLOAT, f, 16);
    pb_bytes(&t[0], T_RAW, f, 16);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "more than one data field");
    t_head(&t[0], "x", 1, 2, d2);
    pb_bytes(&t[0], T_RAW, f, 16);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_OK, NULL);
    t_head(&t[0], "x", 0, 2, d2);
    pb_bytes(&t[0], T_RAW, f, 16);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "no data_type");
    t_head(&t[0], "x", 1, 1, neg);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "negative dimension");
    t_head(&t[0], "x", 1, 2, big);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "overflows");
    t_head(&t[0], "x", 1, 9, d9);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_UNSUPPORTED, "9 dimensions");
    t_head(&t[0], "x", 1, 2, d2);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "x: no data");
    t_head(&t[0], NULL, 1, 0, NULL);
    pb_bytes(&t[0], T_RAW, f, 4);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_FORMAT, "without a name");
    t_head(&t[0], "x", 1, 0, NULL);
    pb_bytes(&t[0], T_RAW, f, 4);
    t[1] = t[0];
    model_of(&m, t, 2);
    expect(&m, NULL, BN_ERR_FORMAT, "'x' is defined twice");
    t_head(&t[0], "x", 1, 0, NULL);
    pb seg = {.n = 0};
    pb_int(&seg, 1, 0);
    pb_msg(&t[0], T_SEGMENT, &seg);
    model_of(&m, t, 1);
    expect(&m, NULL, BN_ERR_UNSUPPORTED, "segmented");
    /* a string tensor is listed, not readable */
    t_head(&t[0], "s", 8, 1, (int64_t[]){1});
    pb_str(&t[0], 6, "hello");
    model_of(&m, t, 1);
    bn_onnx *ox;
    assert_int_equal(bn_onnx_open_memory(g_ctx, m.p, m.n, NULL, &ox), BN_OK);
    const bn_onnx_tensor *s = bn_onnx_find(ox, "s");
    assert_int_equal(s->dtype, BN_DTYPE_COUNT_);
    char buf[8];
    assert_int_equal(bn_onnx_read(ox, s, buf), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "data type 8"));
    bn_onnx_close(ox);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void ext_case(const char *loc, const char *off, const char *len, const char *extra_key,
                     bn_status want, const char *msg)
{
    pb t, m;
    int64_t d[1] = {4};
    t_head(&t, "x", 1, 1, d);
    if (loc) t_ext(&t, "location", loc);
    if (off) t_ext(&t, "offset", off);
    if (len) t_ext(&t, "length", len);
    if (extra_key) t_ext(&t, extra_key, "1");
    pb_int(&t, T_LOC, 1);
    model_of(&m, &t, 1);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/model", g_tmp);
    expect(&m, dir, want, msg);
}

static void test_external(void **state)
{
    (void)state;
    char path[160];
    float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    snprintf(path, sizeof path, "%s/model", g_tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/model/w.bin", g_tmp);
    write_file(path, f, sizeof f);
    snprintf(path, sizeof path, "%s/secret.bin", g_tmp);
    write_file(path, f, sizeof f);
    char link[160];
    snprintf(link, sizeof link, "%s/model/link.bin", g_tmp);
    unlink(link);
    assert_int_equal(symlink(path, link), 0);
    ext_case("w.bin", NULL, NULL, NULL, BN_OK, NULL);
    ext_case("w.bin", "16", "16", "checksum", BN_OK, NULL);
    ext_case("./w.bin", "4", NULL, NULL, BN_OK, NULL);
    ext_case("w.bin", "20", NULL, NULL, BN_ERR_FORMAT, "is outside 'w.bin' (32 bytes)");
    ext_case("w.bin", "18446744073709551615", NULL, NULL, BN_ERR_FORMAT, "is outside");
    ext_case("w.bin", NULL, "12", NULL, BN_ERR_FORMAT, "length 12, the shape needs 16");
    ext_case("w.bin", "1x", NULL, NULL, BN_ERR_FORMAT, "not a decimal number");
    ext_case("w.bin", "-1", NULL, NULL, BN_ERR_FORMAT, "not a decimal number");
    ext_case(NULL, "0", NULL, NULL, BN_ERR_FORMAT, "without a location");
    ext_case("w.bin", NULL, NULL, "color", BN_ERR_FORMAT, "unknown external data key 'color'");
    ext_case("/etc/passwd", NULL, NULL, NULL, BN_ERR_FORMAT, "not a relative path");
    ext_case("../secret.bin", NULL, NULL, NULL, BN_ERR_FORMAT, "outside the model's directory");
    ext_case("link.bin", NULL, NULL, NULL, BN_ERR_FORMAT, "outside the model's directory");
    ext_case("none.bin", NULL, NULL, NULL, BN_ERR_IO, "No such file");
    ext_case(".", NULL, NULL, NULL, BN_ERR_FORMAT, "outside");
    /* reading: the bytes at the offset */
    pb t, m;
    int64_t d[1] = {4};
    t_head(&t, "x", 1, 1, d);
    t_ext(&t, "location", "w.bin");
    t_ext(&t, "offset", "8");
    pb_int(&t, T_LOC, 1);
    model_of(&m, &t, 1);
    snprintf(path, sizeof path, "%s/model", g_tmp);
    bn_onnx *ox;
    assert_int_equal(bn_onnx_open_memory(g_ctx, m.p, m.n, path, &ox), BN_OK);
    float *x = read_f32(ox, bn_onnx_find(ox, "x"));
    assert_float_equal(x[0], 3, 0);
    assert_float_equal(x[3], 6, 0);
    free(x);
    /* the file shrank after open */
    snprintf(path, sizeof path, "%s/model/w.bin", g_tmp);
    write_file(path, f, 8);
    float y[4];
    assert_int_equal(bn_onnx_read(ox, bn_onnx_find(ox, "x"), y), BN_ERR_FORMAT);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "shorter"));
    bn_onnx_close(ox);
}

static void test_truncations(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all("tests/data/ckpt/tiny.onnx", &n);
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, full, k);
        bn_onnx *ox = NULL;
        if (bn_onnx_open_memory(g_ctx, p, k, NULL, &ox) == BN_OK) bn_onnx_close(ox);
        free(p);
    }
    free(full);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    size_t n;
    uint8_t *full = read_all("tests/data/ckpt/tiny.onnx", &n);
    int ok = 0;
    for (long k = 1; k < 2000 && !ok; k++) {
        bn_onnx *ox;
        bn_alloc_fail_at(k, 0);
        bn_status rc = bn_onnx_open_memory(g_ctx, full, n, NULL, &ox);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            ok = 1;
            bn_onnx_close(ox);
        } else {
            assert_true(rc == BN_ERR_NOMEM || rc == BN_ERR_FORMAT); /* protobuf-c: no detail */
        }
    }
    assert_true(ok);
    free(full);
}

/* ---- Debian's libonnx-testdata: every model parses or is refused, never a crash ---------- */

static void walk(const char *dir, int *parsed, int *refused, int *tensors)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(path, parsed, refused, tensors);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".onnx") != 0) continue;
        bn_onnx *ox;
        if (bn_onnx_open(g_ctx, path, &ox) == BN_OK) {
            (*parsed)++;
            for (int64_t i = 0; i < bn_onnx_n_tensors(ox); i++) {
                const bn_onnx_tensor *t = bn_onnx_tensor_at(ox, i);
                if (t->dtype == BN_DTYPE_COUNT_ || t->size > (1u << 26)) continue;
                void *buf = malloc(t->size ? t->size : 1);
                assert_int_equal(bn_onnx_read(ox, t, buf), BN_OK);
                free(buf);
                (*tensors)++;
            }
            bn_onnx_node nd;
            for (int64_t i = 0; bn_onnx_node_at(ox, i, &nd) == BN_OK; i++)
                for (size_t k = 0; k < nd.n_inputs; k++) assert_non_null(nd.inputs[k]);
            bn_onnx_close(ox);
        } else {
            (*refused)++;
        }
    }
    closedir(d);
}

static void test_onnx_testdata(void **state)
{
    (void)state;
    const char *root = "/usr/share/libonnx-testdata";
    struct stat st;
    if (stat(root, &st) != 0) {
        printf("  (skipped: %s is not installed)\n", root);
        skip();
    }
    int parsed = 0, refused = 0, tensors = 0;
    walk(root, &parsed, &refused, &tensors);
    printf("  libonnx-testdata: %d models parsed, %d refused, %d tensors read\n", parsed, refused,
           tensors);
    assert_true(parsed > 500);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bn_onnx_XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    bn_ctx_params p = {.n_threads = 1};
    return bn_ctx_new(&g_ctx, &p) == BN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[160];
    static const char *const names[] = {"model/w.bin", "model/link.bin", "secret.bin", "model"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", g_tmp, names[i]);
        if (i == 3)
            rmdir(path);
        else
            unlink(path);
    }
    rmdir(g_tmp);
    bn_ctx_free(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_tiny),          cmocka_unit_test(test_wire),
            cmocka_unit_test(test_tensor_checks), cmocka_unit_test(test_external),
            cmocka_unit_test(test_truncations),   cmocka_unit_test(test_alloc_failures),
            cmocka_unit_test(test_onnx_testdata),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
