/*
 * gguf_write.c - GGUF v3 writer: each metadata value is serialized when set, so writing is a
 * straight copy into a temporary file, then fsync and rename. The reader is gguf_read.c.
 */
#include "bitnet/gguf.h"
#include "bitnet/file.h"
#include "gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct wkv {
    char *key;
    bn_gguf_vtype type;
    uint8_t *val; /* the value exactly as written (after the type field) */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS];
    const void *data;
    size_t size;
    uint64_t offset; /* set by write */
} wtensor;

struct bn_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}

bn_status bn_gguf_writer_new(bn_gguf_writer **out)
{
    BN_ASSERT(out);
    *out = bn_calloc(1, sizeof **out);
    return *out ? BN_OK : BN_ERR_NOMEM;
}

void bn_gguf_writer_free(bn_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        bn_free(w->kv[i].key);
        bn_free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) bn_free(w->t[i].name);
    bn_free(w->kv);
    bn_free(w->t);
    bn_free(w);
}

/* Grows *arr (of *cap elements of size esz) to hold one more than n. */
static bn_status grow(void **arr, size_t *cap, size_t n, size_t esz)
{
    if (n < *cap) return BN_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = bn_calloc(nc, esz);
    if (!p) return BN_ERR_NOMEM;
    if (n) memcpy(p, *arr, n * esz);
    bn_free(*arr);
    *arr = p;
    *cap = nc;
    return BN_OK;
}

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= GGUF_MAX_KEY_LEN;
}

/* Sets key to a serialized value; takes ownership of val (freed on failure too). */
static bn_status set_raw(bn_gguf_writer *w, const char *key, bn_gguf_vtype type, uint8_t *val,
                         size_t len)
{
    if (!valid_name(key)) {
        bn_free(val);
        return BN_ERR_INVALID;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            bn_free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_len = len;
            return BN_OK;
        }
    }
    char *k = bn_strdup(key);
    if (!k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv) != BN_OK) {
        bn_free(k);
        bn_free(val);
        return BN_ERR_NOMEM;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, len};
    return BN_OK;
}

static bn_status set_scalar(bn_gguf_writer *w, const char *key, bn_gguf_vtype type, uint64_t bits)
{
    size_t n = bn__gguf_vtype_size(type);
    uint8_t *val = bn_malloc(n);
    if (!val) return BN_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) val[k] = (uint8_t)(bits >> (8 * k));
    return set_raw(w, key, type, val, n);
}

bn_status bn_gguf_writer_set_u32(bn_gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, BN_GGUF_U32, v);
}

bn_status bn_gguf_writer_set_i32(bn_gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, BN_GGUF_I32, (uint32_t)v);
}

bn_status bn_gguf_writer_set_u64(bn_gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, BN_GGUF_U64, v);
}

bn_status bn_gguf_writer_set_f32(bn_gguf_writer *w, const char *key, float v)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return set_scalar(w, key, BN_GGUF_F32, b);
}

bn_status bn_gguf_writer_set_bool(bn_gguf_writer *w, const char *key, int v)
{
    return set_scalar(w, key, BN_GGUF_BOOL, v != 0);
}

bn_status bn_gguf_writer_set_scalar(bn_gguf_writer *w, const char *key, bn_gguf_vtype vtype,
                                    const void *v)
{
    size_t n = bn__gguf_vtype_size(vtype);
    if (n == 0 || !v) return BN_ERR_INVALID;
    uint8_t *val = bn_malloc(n);
    if (!val) return BN_ERR_NOMEM;
    memcpy(val, v, n);
    return set_raw(w, key, vtype, val, n);
}

bn_status bn_gguf_writer_set_strn(bn_gguf_writer *w, const char *key, const char *v, size_t len)
{
    if (!v && len) return BN_ERR_INVALID;
    size_t n;
    if (bn_add_size(len, 8, &n)) return BN_ERR_OVERFLOW;
    uint8_t *val = bn_malloc(n);
    if (!val) return BN_ERR_NOMEM;
    put_le64(val, len);
    if (len) memcpy(val + 8, v, len);
    return set_raw(w, key, BN_GGUF_STRING, val, n);
}

bn_status bn_gguf_writer_set_str(bn_gguf_writer *w, const char *key, const char *v)
{
    if (!v) return BN_ERR_INVALID;
    return bn_gguf_writer_set_strn(w, key, v, strlen(v));
}

bn_status bn_gguf_writer_set_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype vtype,
                                 const void *data, uint64_t n)
{
    size_t esz = bn__gguf_vtype_size(vtype);
    size_t bytes, total;
    if (esz == 0 || (!data && n)) return BN_ERR_INVALID;
    if (n > SIZE_MAX || bn_mul_size((size_t)n, esz, &bytes) || bn_add_size(bytes, 12, &total))
        return BN_ERR_OVERFLOW;
    uint8_t *val = bn_malloc(total);
    if (!val) return BN_ERR_NOMEM;
    put_le32(val, (uint32_t)vtype);
    put_le64(val + 4, n);
    if (bytes) memcpy(val + 12, data, bytes);
    return set_raw(w, key, BN_GGUF_ARRAY, val, total);
}

bn_status bn_gguf_writer_set_arr_strn(bn_gguf_writer *w, const char *key, const char *const *v,
                                      const size_t *lens, uint64_t n)
{
    if (n && !v) return BN_ERR_INVALID;
    size_t total = 12;
    for (uint64_t j = 0; j < n; j++) {
        size_t len = lens ? lens[j] : (v[j] ? strlen(v[j]) : 0);
        if (!v[j] && len) return BN_ERR_INVALID;
        if (bn_add_size(total, 8, &total) || bn_add_size(total, len, &total))
            return BN_ERR_OVERFLOW;
    }
    uint8_t *val = bn_malloc(total);
    if (!val) return BN_ERR_NOMEM;
    put_le32(val, BN_GGUF_STRING);
    put_le64(val + 4, n);
    uint8_t *p = val + 12;
    for (uint64_t j = 0; j < n; j++) {
        size_t len = lens ? lens[j] : (v[j] ? strlen(v[j]) : 0);
        put_le64(p, len);
        if (len) memcpy(p + 8, v[j], len);
        p += 8 + len;
    }
    return set_raw(w, key, BN_GGUF_ARRAY, val, total);
}

bn_status bn_gguf_writer_set_arr_str(bn_gguf_writer *w, const char *key, const char *const *v,
                                     uint64_t n)
{
    return bn_gguf_writer_set_arr_strn(w, key, v, NULL, n);
}

/* Bytes a tensor of this type and shape needs, or a status. */
static bn_status expected_bytes(int type, int n_dims, const int64_t *ne, size_t *out)
{
    const bn_type_traits *tr = bn_type_get(type);
    if (!tr || !tr->name || tr->block_size <= 0) return BN_ERR_UNSUPPORTED;
    if (ne[0] % tr->block_size != 0) return BN_ERR_INVALID;
    uint64_t nel = 1, rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return BN_ERR_INVALID;
        if (bn_mul_u64(nel, (uint64_t)ne[d], &nel) || nel > INT64_MAX) return BN_ERR_OVERFLOW;
        if (d > 0 && bn_mul_u64(rows, (uint64_t)ne[d], &rows)) return BN_ERR_OVERFLOW;
    }
    if (type == BN_TYPE_I2_S) {
        *out = bn_i2s_bytes((int64_t)nel);
        return BN_OK;
    }
    size_t row;
    bn_status rc = bn_type_row_bytes(type, ne[0], &row);
    if (rc != BN_OK) return rc;
    if (rows > SIZE_MAX || bn_mul_size(row, (size_t)rows, out)) return BN_ERR_OVERFLOW;
    return BN_OK;
}

bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, int type, int n_dims,
                                    const int64_t *ne, const void *data, size_t size)
{
    if (!valid_name(name) || n_dims < 1 || n_dims > BN_GGUF_MAX_DIMS || !ne || (!data && size))
        return BN_ERR_INVALID;
    size_t want;
    bn_status rc = expected_bytes(type, n_dims, ne, &want);
    if (rc != BN_OK) return rc;
    if (want != size) return BN_ERR_INVALID;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return BN_ERR_INVALID;
    char *nm = bn_strdup(name);
    if (!nm || grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t) != BN_OK) {
        bn_free(nm);
        return BN_ERR_NOMEM;
    }
    wtensor *t = &w->t[w->n_t++];
    *t = (wtensor){.name = nm, .type = type, .n_dims = n_dims, .data = data, .size = size};
    for (int d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    return BN_OK;
}

/* ---- writing the file ---------------------------------------------------------------------- */

#define WBUF_SIZE (1u << 16)

typedef struct wout {
    int fd;
    uint8_t *buf;
    size_t n;
    uint64_t written;
    int err; /* errno of the first failure */
} wout;

static int write_all(wout *o, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (n > 0 && !o->err) {
        ssize_t k = write(o->fd, s, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            o->err = k < 0 ? errno : EIO;
            break;
        }
        s += k;
        n -= (size_t)k;
    }
    return o->err ? -1 : 0;
}

static int out_flush(wout *o)
{
    int r = write_all(o, o->buf, o->n);
    o->n = 0;
    return r;
}

static int out_put(wout *o, const void *p, size_t n)
{
    o->written += n;
    if (n >= WBUF_SIZE) return out_flush(o) || write_all(o, p, n) ? -1 : 0;
    if (o->n + n > WBUF_SIZE && out_flush(o)) return -1;
    memcpy(o->buf + o->n, p, n);
    o->n += n;
    return 0;
}

static int out_u32(wout *o, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    return out_put(o, b, 4);
}

static int out_u64(wout *o, uint64_t v)
{
    uint8_t b[8];
    put_le64(b, v);
    return out_put(o, b, 8);
}

static int out_str(wout *o, const char *s)
{
    size_t n = strlen(s);
    return out_u64(o, n) || out_put(o, s, n) ? -1 : 0;
}

static int out_pad(wout *o, size_t align)
{
    static const uint8_t zeros[256];
    size_t pad = (size_t)((align - o->written % align) % align);
    while (pad > 0) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        if (out_put(o, zeros, k)) return -1;
        pad -= k;
    }
    return 0;
}

/* The alignment the file will use: general.alignment when set (a u32 power of two, at least 8). */
static bn_status writer_alignment(bn_ctx *ctx, const bn_gguf_writer *w, size_t *align)
{
    *align = BN_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        if (w->kv[i].type != BN_GGUF_U32)
            return bn_ctx_set_error(ctx, BN_ERR_INVALID, "general.alignment must be a u32");
        uint32_t a = bn__gguf_get_le32(w->kv[i].val);
        const char *bad = bn__gguf_alignment_problem(a);
        if (bad) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "general.alignment %u %s", a, bad);
        *align = a;
    }
    return BN_OK;
}

static int write_contents(wout *o, bn_gguf_writer *w, size_t align)
{
    if (out_put(o, "GGUF", 4) || out_u32(o, 3) || out_u64(o, w->n_t) || out_u64(o, w->n_kv))
        return -1;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        if (out_str(o, kv->key) || out_u32(o, kv->type) || out_put(o, kv->val, kv->val_len))
            return -1;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (out_str(o, t->name) || out_u32(o, (uint32_t)t->n_dims)) return -1;
        for (int d = 0; d < t->n_dims; d++)
            if (out_u64(o, (uint64_t)t->ne[d])) return -1;
        if (out_u32(o, (uint32_t)t->type) || out_u64(o, t->offset)) return -1;
    }
    if (out_pad(o, align)) return -1;
    for (size_t i = 0; i < w->n_t; i++) {
        if (out_put(o, w->t[i].data, w->t[i].size) || out_pad(o, align)) return -1;
    }
    return out_flush(o);
}

/* Places every tensor's data; fails on overflow. */
static bn_status layout(bn_ctx *ctx, bn_gguf_writer *w, size_t align)
{
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        if (bn_add_u64(off, w->t[i].size, &off) || bn_add_u64(off, align - 1, &off))
            return bn_ctx_set_error(ctx, BN_ERR_OVERFLOW, "tensor data size overflows");
        off -= off % align;
    }
    return BN_OK;
}

bn_status bn_gguf_writer_write(bn_ctx *ctx, bn_gguf_writer *w, const char *path)
{
    BN_ASSERT(w && path);
    size_t align;
    bn_status rc = writer_alignment(ctx, w, &align);
    if (rc == BN_OK) rc = layout(ctx, w, align);
    if (rc != BN_OK) return rc;

    const size_t tmpsz = strlen(path) + 40;
    char *tmp = bn_malloc(tmpsz);
    if (!tmp) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    bn_file_tmp_sweep(path); /* what a killed writer of path left */
    wout o = {.fd = bn_file_tmp_create(path, tmp, tmpsz)};
    if (o.fd < 0) {
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        bn_free(tmp);
        return rc;
    }
    (void)bn_file_tmp_mode(o.fd, path, 0644); /* a replaced file keeps its mode */
    o.buf = bn_malloc(WBUF_SIZE);
    if (!o.buf) {
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (write_contents(&o, w, align) != 0) {
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "cannot write %s: %s", tmp, strerror(o.err));
        goto fail;
    }
    char why[1024];
    const int fd = o.fd;
    o.fd = -1;
    if (bn_file_commit(fd, tmp, path, why, sizeof why) != BN_OK) { /* fsync, close, rename */
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "%s", why);
        goto fail;
    }
    bn_free(o.buf);
    bn_free(tmp);
    return BN_OK;

fail:
    if (o.fd >= 0) close(o.fd);
    unlink(tmp);
    bn_free(o.buf);
    bn_free(tmp);
    return rc;
}

bn_status bn_gguf_writer_copy_kv(bn_gguf_writer *w, const bn_gguf *g, int64_t i)
{
    if (!w || !g || i < 0 || i >= bn_gguf_n_kv(g)) return BN_ERR_INVALID;
    const char *key = bn_gguf_key(g, i);
    const bn_gguf_vtype t = bn_gguf_kv_type(g, i);
    if (t == BN_GGUF_STRING) {
        size_t len;
        const char *s = bn_gguf_kv_strn(g, i, &len);
        return bn_gguf_writer_set_strn(w, key, s, len);
    }
    if (t == BN_GGUF_ARRAY) {
        const bn_gguf_vtype et = bn_gguf_arr_type(g, i);
        const uint64_t n = bn_gguf_arr_n(g, i);
        if (et != BN_GGUF_STRING)
            return bn_gguf_writer_set_arr(w, key, et, bn_gguf_arr_data(g, i), n);
        size_t bytes;
        if (bn_mul_size((size_t)(n ? n : 1), sizeof(const char *) + sizeof(size_t), &bytes))
            return BN_ERR_OVERFLOW;
        const char **p = bn_malloc(bytes); /* the pointers, then the lengths */
        if (!p) return BN_ERR_NOMEM;
        size_t *lens = (size_t *)(p + (n ? n : 1));
        for (uint64_t j = 0; j < n; j++) p[j] = bn_gguf_arr_str(g, i, j, &lens[j]);
        bn_status rc = bn_gguf_writer_set_arr_strn(w, key, p, lens, n); /* copies them */
        bn_free(p);
        return rc;
    }
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } v;
    switch (t) {
    case BN_GGUF_U8:
        v.u8 = (uint8_t)bn_gguf_kv_u64(g, i);
        break;
    case BN_GGUF_BOOL:
        v.u8 = bn_gguf_kv_u64(g, i) != 0;
        break;
    case BN_GGUF_I8:
        v.i8 = (int8_t)bn_gguf_kv_i64(g, i);
        break;
    case BN_GGUF_U16:
        v.u16 = (uint16_t)bn_gguf_kv_u64(g, i);
        break;
    case BN_GGUF_I16:
        v.i16 = (int16_t)bn_gguf_kv_i64(g, i);
        break;
    case BN_GGUF_U32:
        v.u32 = (uint32_t)bn_gguf_kv_u64(g, i);
        break;
    case BN_GGUF_I32:
        v.i32 = (int32_t)bn_gguf_kv_i64(g, i);
        break;
    case BN_GGUF_F32:
        v.f32 = (float)bn_gguf_kv_f64(g, i);
        break;
    case BN_GGUF_U64:
        v.u64 = bn_gguf_kv_u64(g, i);
        break;
    case BN_GGUF_I64:
        v.i64 = bn_gguf_kv_i64(g, i);
        break;
    case BN_GGUF_F64:
        v.f64 = bn_gguf_kv_f64(g, i);
        break;
    default:
        return BN_ERR_FORMAT;
    }
    return bn_gguf_writer_set_scalar(w, key, t, &v);
}
