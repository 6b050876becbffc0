/*
 * gguf_read.c - GGUF v3 reader: strict validation; a mmapped file or the caller's memory.
 * The writer is gguf_write.c; what both use is in gguf_internal.h.
 *
 * One pass over the bytes with a bounds-checked cursor. Every count and length is checked
 * against the bytes left before anything is allocated for it. Strings are copied
 * (NUL-terminated); string arrays go into one blob per array, so a 128k-token vocabulary
 * costs two allocations. Keys and tensor names are indexed by open-addressing hash tables,
 * which also reject duplicates.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The smallest metadata entry: key length (8), type (4), a one-byte value. */
#define GGUF_MIN_KV_BYTES 13u
/* The smallest tensor info: name length (8), n_dims (4), one ne (8), type (4), offset (8). */
#define GGUF_MIN_TENSOR_BYTES 32u

typedef struct gguf_kv {
    char *key;
    bn_gguf_vtype type;
    union {
        uint64_t u; /* unsigned integers and bool */
        int64_t i;  /* signed integers */
        double f;   /* f32 and f64 */
    } v;
    char *str; /* STRING: NUL-terminated copy */
    size_t str_len;
    bn_gguf_vtype arr_type; /* ARRAY */
    uint64_t arr_n;
    void *arr_data;  /* numeric elements, as stored */
    char *arr_blob;  /* string elements, each followed by a NUL */
    size_t *arr_off; /* arr_n + 1 offsets into arr_blob */
} gguf_kv;

struct bn_gguf {
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version;
    size_t alignment;
    size_t data_start; /* file offset of the data section */
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    bn_gguf_tensor *tensors;
    int64_t *kv_index; /* hash table of kv indices, -1 = empty */
    size_t kv_cap;
    int64_t *t_index;
    size_t t_cap;
};

/* ---- small helpers ---------------------------------------------------------------- */

size_t bn__gguf_vtype_size(int t)
{
    switch (t) {
    case BN_GGUF_U8:
    case BN_GGUF_I8:
    case BN_GGUF_BOOL:
        return 1;
    case BN_GGUF_U16:
    case BN_GGUF_I16:
        return 2;
    case BN_GGUF_U32:
    case BN_GGUF_I32:
    case BN_GGUF_F32:
        return 4;
    case BN_GGUF_U64:
    case BN_GGUF_I64:
    case BN_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

const char *bn_gguf_vtype_name(int vtype)
{
    static const char *const names[BN_GGUF_VTYPE_COUNT_] = {
            "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
            "bool", "string", "array", "u64", "i64", "f64",
    };
    if (vtype < 0 || vtype >= BN_GGUF_VTYPE_COUNT_) return "unknown";
    return names[vtype];
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* The GGUF rule for general.alignment: a multiple of 8 (so every F32/F16 tensor of a mapped
 * file starts aligned); like ggml we also want a power of two. */
const char *bn__gguf_alignment_problem(uint64_t a)
{
    if (!is_pow2(a)) return "is not a power of two";
    if (a % 8 != 0) return "is not a multiple of 8";
    return NULL;
}

static int align_up(size_t x, size_t align, size_t *out)
{
    size_t r = x % align;
    if (r == 0) {
        *out = x;
        return 0;
    }
    return bn_add_size(x, align - r, out);
}

/* A table of at least 2n slots (power of two), all empty. */
static bn_status index_new(size_t n, int64_t **out, size_t *cap)
{
    size_t c = 8;
    while (c < n * 2) c *= 2; /* n is bounded by the file size, so this cannot wrap */
    int64_t *t = bn_calloc(c, sizeof *t);
    if (!t) return BN_ERR_NOMEM;
    for (size_t i = 0; i < c; i++) t[i] = -1;
    *out = t;
    *cap = c;
    return BN_OK;
}

/* ---- the cursor --------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n;
    size_t pos;
    bn_ctx *ctx;
    char where[192]; /* "metadata entry 3 ('general.name')": prefix of messages */
} rd;

/* A name for messages: at most 100 bytes, control bytes shown as '?', so that a message
 * stays one line whatever the file holds. */
static void clean_name(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src[n] && n < 100 && n + 4 < cap; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (src[n]) {
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80) n--; /* whole UTF-8 chars */
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

/* Sets the message prefix to "<what> '<name>'". */
static void set_where(rd *r, const char *what, const char *name)
{
    char clean[112];
    clean_name(clean, sizeof clean, name);
    snprintf(r->where, sizeof r->where, "%s'%s'", what, clean);
}

static bn_status rd_fail(rd *r, bn_status s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static bn_status rd_fail(rd *r, bn_status s, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->where[0]) return bn_ctx_set_error(r->ctx, s, "%s: %s", r->where, msg);
    return bn_ctx_set_error(r->ctx, s, "%s", msg);
}

static size_t rd_left(const rd *r)
{
    return r->n - r->pos;
}

static bn_status rd_need(rd *r, size_t k, const char *what)
{
    if (k <= rd_left(r)) return BN_OK;
    return rd_fail(r, BN_ERR_FORMAT, "truncated: %s at offset %zu needs %zu bytes, %zu left", what,
                   r->pos, k, rd_left(r));
}

uint32_t bn__gguf_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)bn__gguf_get_le32(p) | (uint64_t)bn__gguf_get_le32(p + 4) << 32;
}

static bn_status rd_u32(rd *r, const char *what, uint32_t *out)
{
    bn_status rc = rd_need(r, 4, what);
    if (rc != BN_OK) return rc;
    *out = bn__gguf_get_le32(r->p + r->pos);
    r->pos += 4;
    return BN_OK;
}

static bn_status rd_u64(rd *r, const char *what, uint64_t *out)
{
    bn_status rc = rd_need(r, 8, what);
    if (rc != BN_OK) return rc;
    *out = get_le64(r->p + r->pos);
    r->pos += 8;
    return BN_OK;
}

/* A length-prefixed string; *s points into the input. max: cap on the length. */
static bn_status rd_str(rd *r, const char *what, uint64_t max, const uint8_t **s, size_t *len)
{
    size_t at = r->pos;
    uint64_t n;
    bn_status rc = rd_u64(r, what, &n);
    if (rc != BN_OK) return rc;
    if (n > max)
        return rd_fail(r, BN_ERR_FORMAT, "%s length %llu at offset %zu exceeds the limit %llu",
                       what, (unsigned long long)n, at, (unsigned long long)max);
    if (n > rd_left(r))
        return rd_fail(r, BN_ERR_FORMAT,
                       "%s length %llu at offset %zu runs past the end (%zu bytes left)", what,
                       (unsigned long long)n, at, rd_left(r));
    *s = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return BN_OK;
}

/* A key or tensor name: no NUL inside, copied NUL-terminated. */
static bn_status rd_name(rd *r, const char *what, char **out)
{
    const uint8_t *s;
    size_t len;
    size_t at = r->pos;
    bn_status rc = rd_str(r, what, GGUF_MAX_KEY_LEN, &s, &len);
    if (rc != BN_OK) return rc;
    if (len == 0) return rd_fail(r, BN_ERR_FORMAT, "empty %s at offset %zu", what, at);
    if (memchr(s, 0, len))
        return rd_fail(r, BN_ERR_FORMAT, "%s at offset %zu holds a NUL byte", what, at);
    char *k = bn_malloc(len + 1);
    if (!k) return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    memcpy(k, s, len);
    k[len] = '\0';
    *out = k;
    return BN_OK;
}

/* ---- metadata ------------------------------------------------------------------------- */

static bn_status read_scalar(rd *r, int type, gguf_kv *kv)
{
    size_t sz = bn__gguf_vtype_size(type);
    bn_status rc = rd_need(r, sz, "value");
    if (rc != BN_OK) return rc;
    const uint8_t *p = r->p + r->pos;
    r->pos += sz;
    switch (type) {
    case BN_GGUF_U8:
    case BN_GGUF_BOOL:
        kv->v.u = p[0];
        break;
    case BN_GGUF_I8:
        kv->v.i = (int8_t)p[0];
        break;
    case BN_GGUF_U16:
        kv->v.u = (uint16_t)(p[0] | p[1] << 8);
        break;
    case BN_GGUF_I16:
        kv->v.i = (int16_t)(uint16_t)(p[0] | p[1] << 8);
        break;
    case BN_GGUF_U32:
        kv->v.u = bn__gguf_get_le32(p);
        break;
    case BN_GGUF_I32:
        kv->v.i = (int32_t)bn__gguf_get_le32(p);
        break;
    case BN_GGUF_U64:
        kv->v.u = get_le64(p);
        break;
    case BN_GGUF_I64:
        kv->v.i = (int64_t)get_le64(p);
        break;
    case BN_GGUF_F32: {
        uint32_t b = bn__gguf_get_le32(p);
        float f;
        memcpy(&f, &b, 4);
        kv->v.f = f;
        break;
    }
    case BN_GGUF_F64: {
        uint64_t b = get_le64(p);
        memcpy(&kv->v.f, &b, 8);
        break;
    }
    default:
        return rd_fail(r, BN_ERR_INTERNAL, "read_scalar: type %d", type);
    }
    return BN_OK;
}

static bn_status read_string_value(rd *r, gguf_kv *kv)
{
    const uint8_t *s;
    size_t len;
    bn_status rc = rd_str(r, "string", SIZE_MAX - 1, &s, &len);
    if (rc != BN_OK) return rc;
    kv->str = bn_malloc(len + 1);
    if (!kv->str) return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    memcpy(kv->str, s, len);
    kv->str[len] = '\0';
    kv->str_len = len;
    return BN_OK;
}

static bn_status read_string_array(rd *r, gguf_kv *kv, uint64_t n, size_t at)
{
    if (n > rd_left(r) / 8)
        return rd_fail(r, BN_ERR_FORMAT,
                       "array count %llu at offset %zu is more than the %zu bytes left can hold",
                       (unsigned long long)n, at, rd_left(r));
    /* Pass 1: validate every length and total the blob. */
    size_t start = r->pos, total = 0;
    for (uint64_t j = 0; j < n; j++) {
        const uint8_t *s;
        size_t len;
        bn_status rc = rd_str(r, "array string", SIZE_MAX - 1, &s, &len);
        if (rc != BN_OK) return rc;
        total += len + 1; /* bounded by the input size: no overflow */
    }
    /* Pass 2: copy. */
    kv->arr_blob = bn_malloc(total);
    kv->arr_off = bn_calloc((size_t)n + 1, sizeof *kv->arr_off);
    if (!kv->arr_blob || !kv->arr_off) return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    const uint8_t *p = r->p + start;
    size_t off = 0;
    for (uint64_t j = 0; j < n; j++) {
        size_t len = (size_t)get_le64(p);
        kv->arr_off[j] = off;
        memcpy(kv->arr_blob + off, p + 8, len);
        kv->arr_blob[off + len] = '\0';
        off += len + 1;
        p += 8 + len;
    }
    kv->arr_off[n] = off;
    return BN_OK;
}

static bn_status read_array(rd *r, gguf_kv *kv)
{
    size_t at = r->pos;
    uint32_t et;
    uint64_t n;
    bn_status rc = rd_u32(r, "array element type", &et);
    if (rc == BN_OK) rc = rd_u64(r, "array count", &n);
    if (rc != BN_OK) return rc;
    if (et == BN_GGUF_ARRAY)
        return rd_fail(r, BN_ERR_UNSUPPORTED, "nested arrays (offset %zu) are not supported", at);
    if (et >= BN_GGUF_VTYPE_COUNT_)
        return rd_fail(r, BN_ERR_FORMAT, "unknown array element type %u at offset %zu", et, at);
    kv->arr_type = (bn_gguf_vtype)et;
    kv->arr_n = n;
    if (et == BN_GGUF_STRING) return read_string_array(r, kv, n, at + 4);
    size_t esz = bn__gguf_vtype_size((int)et);
    if (n > rd_left(r) / esz)
        return rd_fail(r, BN_ERR_FORMAT,
                       "array count %llu of %s at offset %zu runs past the end (%zu bytes left)",
                       (unsigned long long)n, bn_gguf_vtype_name((int)et), at + 4, rd_left(r));
    size_t bytes = (size_t)n * esz;
    kv->arr_data = bn_malloc(bytes);
    if (!kv->arr_data) return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    if (bytes) memcpy(kv->arr_data, r->p + r->pos, bytes);
    r->pos += bytes;
    return BN_OK;
}

static bn_status index_insert_kv(bn_gguf *g, int64_t i)
{
    size_t mask = g->kv_cap - 1;
    for (size_t h = hash_str(g->kv[i].key) & mask;; h = (h + 1) & mask) {
        int64_t j = g->kv_index[h];
        if (j < 0) {
            g->kv_index[h] = i;
            return BN_OK;
        }
        if (strcmp(g->kv[j].key, g->kv[i].key) == 0) return BN_ERR_FORMAT;
    }
}

static bn_status read_kv(rd *r, bn_gguf *g, int64_t i)
{
    gguf_kv *kv = &g->kv[i];
    size_t at = r->pos;
    snprintf(r->where, sizeof r->where, "metadata entry %lld", (long long)i);
    bn_status rc = rd_name(r, "key", &kv->key);
    if (rc != BN_OK) return rc;
    char what[48];
    snprintf(what, sizeof what, "metadata entry %lld (", (long long)i);
    set_where(r, what, kv->key);
    strncat(r->where, ")", sizeof r->where - strlen(r->where) - 1);
    if (index_insert_kv(g, i) != BN_OK)
        return rd_fail(r, BN_ERR_FORMAT, "duplicate key at offset %zu", at);
    uint32_t t;
    rc = rd_u32(r, "value type", &t);
    if (rc != BN_OK) return rc;
    if (t >= BN_GGUF_VTYPE_COUNT_)
        return rd_fail(r, BN_ERR_FORMAT, "unknown value type %u at offset %zu", t, r->pos - 4);
    kv->type = (bn_gguf_vtype)t;
    if (t == BN_GGUF_STRING) return read_string_value(r, kv);
    if (t == BN_GGUF_ARRAY) return read_array(r, kv);
    return read_scalar(r, (int)t, kv);
}

/* general.alignment, when present, must be a u32 power of two and a multiple of 8. */
static bn_status read_alignment(rd *r, bn_gguf *g)
{
    g->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = bn_gguf_find_key(g, "general.alignment");
    if (i < 0) return BN_OK;
    r->where[0] = '\0';
    if (g->kv[i].type != BN_GGUF_U32)
        return rd_fail(r, BN_ERR_FORMAT, "general.alignment has type %s, expected u32",
                       bn_gguf_vtype_name(g->kv[i].type));
    const char *bad = bn__gguf_alignment_problem(g->kv[i].v.u);
    if (bad)
        return rd_fail(r, BN_ERR_FORMAT, "general.alignment %llu %s",
                       (unsigned long long)g->kv[i].v.u, bad);
    g->alignment = (size_t)g->kv[i].v.u;
    return BN_OK;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static bn_status index_insert_tensor(bn_gguf *g, int64_t i)
{
    size_t mask = g->t_cap - 1;
    for (size_t h = hash_str(g->tensors[i].name) & mask;; h = (h + 1) & mask) {
        int64_t j = g->t_index[h];
        if (j < 0) {
            g->t_index[h] = i;
            return BN_OK;
        }
        if (strcmp(g->tensors[j].name, g->tensors[i].name) == 0) return BN_ERR_FORMAT;
    }
}

/* Bytes of a tensor of type/ne (all checked); sets the message on failure. */
static bn_status tensor_bytes(rd *r, int type, int n_dims, const int64_t *ne, size_t *out)
{
    const bn_type_traits *tr = bn_type_get(type);
    if (!tr || !tr->name) return rd_fail(r, BN_ERR_UNSUPPORTED, "unknown type id %d", type);
    if (tr->block_size <= 0 || ne[0] % tr->block_size != 0)
        return rd_fail(r, BN_ERR_FORMAT,
                       "row of %lld elements is not a multiple of %s's block size %lld",
                       (long long)ne[0], tr->name, (long long)tr->block_size);
    uint64_t nel = 1, rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (bn_mul_u64(nel, (uint64_t)ne[d], &nel) || nel > INT64_MAX)
            return rd_fail(r, BN_ERR_OVERFLOW, "element count overflows");
        if (d > 0 && bn_mul_u64(rows, (uint64_t)ne[d], &rows))
            return rd_fail(r, BN_ERR_OVERFLOW, "row count overflows");
    }
    if (type == BN_TYPE_I2_S) {
        /* n / 4 code bytes + 32: n is below 2^63, so this fits a 64-bit size_t */
        if (nel / 4 > SIZE_MAX - 32) return rd_fail(r, BN_ERR_OVERFLOW, "size overflows");
        *out = bn_i2s_bytes((int64_t)nel);
        return BN_OK;
    }
    size_t row;
    bn_status rc = bn_type_row_bytes(type, ne[0], &row);
    if (rc != BN_OK)
        return rd_fail(r, rc, "row size of %lld elements: %s", (long long)ne[0], bn_status_str(rc));
    if (rows > SIZE_MAX || bn_mul_size(row, (size_t)rows, out))
        return rd_fail(r, BN_ERR_OVERFLOW, "size overflows");
    return BN_OK;
}

static bn_status read_tensor_info(rd *r, bn_gguf *g, int64_t i)
{
    bn_gguf_tensor *t = &g->tensors[i];
    size_t at = r->pos;
    snprintf(r->where, sizeof r->where, "tensor %lld", (long long)i);
    char *name = NULL;
    bn_status rc = rd_name(r, "tensor name", &name);
    if (rc != BN_OK) return rc;
    t->name = name;
    set_where(r, "tensor ", name);
    if (index_insert_tensor(g, i) != BN_OK)
        return rd_fail(r, BN_ERR_FORMAT, "duplicate tensor name at offset %zu", at);
    uint32_t nd;
    if ((rc = rd_u32(r, "n_dims", &nd)) != BN_OK) return rc;
    if (nd < 1 || nd > BN_GGUF_MAX_DIMS)
        return rd_fail(r, BN_ERR_FORMAT, "n_dims %u at offset %zu is not in 1..%d", nd, r->pos - 4,
                       BN_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if ((rc = rd_u64(r, "dimension", &v)) != BN_OK) return rc;
        if (v > INT64_MAX)
            return rd_fail(r, BN_ERR_FORMAT, "dimension %u at offset %zu is negative (%lld)", d,
                           r->pos - 8, (long long)(int64_t)v);
        t->ne[d] = (int64_t)v;
    }
    uint32_t type;
    if ((rc = rd_u32(r, "tensor type", &type)) != BN_OK) return rc;
    t->type = type > INT_MAX ? -1 : (int)type;
    if (!bn_type_get(t->type) || !bn_type_get(t->type)->name)
        return rd_fail(r, BN_ERR_UNSUPPORTED, "unknown type id %u", type);
    if ((rc = rd_u64(r, "tensor offset", &t->offset)) != BN_OK) return rc;
    return tensor_bytes(r, t->type, t->n_dims, t->ne, &t->size);
}

static int cmp_offset(const void *a, const void *b)
{
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a;
    const bn_gguf_tensor *y = *(const bn_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->size > y->size) - (x->size < y->size);
}

/* No two tensors may share data bytes: sorted by offset, each starts after the last ends. */
static bn_status check_overlap(rd *r, bn_gguf *g)
{
    if (g->n_tensors < 2) return BN_OK;
    const bn_gguf_tensor **s = bn_calloc((size_t)g->n_tensors, sizeof *s);
    if (!s) return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++) s[i] = &g->tensors[i];
    qsort(s, (size_t)g->n_tensors, sizeof *s, cmp_offset);
    const bn_gguf_tensor *prev = NULL;
    bn_status rc = BN_OK;
    for (int64_t i = 0; i < g->n_tensors && rc == BN_OK; i++) {
        if (s[i]->size == 0) continue;
        if (prev && s[i]->offset < prev->offset + prev->size) {
            char other[112];
            clean_name(other, sizeof other, prev->name);
            set_where(r, "tensor ", s[i]->name);
            rc = rd_fail(r, BN_ERR_FORMAT,
                         "data at offset %llu overlaps tensor '%s' (offset %llu, %zu bytes)",
                         (unsigned long long)s[i]->offset, other, (unsigned long long)prev->offset,
                         prev->size);
        }
        prev = s[i];
    }
    bn_free(s);
    return rc;
}

/* After the infos: place the data section and check every tensor's range. */
static bn_status place_tensors(rd *r, bn_gguf *g)
{
    r->where[0] = '\0';
    if (align_up(r->pos, g->alignment, &g->data_start))
        return rd_fail(r, BN_ERR_OVERFLOW, "data section offset overflows");
    if (g->data_start > g->size) {
        if (g->n_tensors > 0)
            return rd_fail(r, BN_ERR_FORMAT,
                           "data section at offset %zu starts past the end of the file (%zu bytes)",
                           g->data_start, g->size);
        g->data_start = g->size; /* no tensors: the padding may be left out */
    }
    size_t data_size = g->size - g->data_start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        set_where(r, "tensor ", t->name);
        if (t->offset % g->alignment != 0)
            return rd_fail(r, BN_ERR_FORMAT,
                           "data offset %llu is not a multiple of the alignment %zu",
                           (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->size > data_size - t->offset)
            return rd_fail(r, BN_ERR_FORMAT,
                           "data (offset %llu + %zu bytes) runs past the end of the file "
                           "(data section holds %zu bytes)",
                           (unsigned long long)t->offset, t->size, data_size);
        t->data = g->base + g->data_start + t->offset;
    }
    return check_overlap(r, g);
}

/* ---- open / close ---------------------------------------------------------------------------- */

static bn_status read_header(rd *r, bn_gguf *g, uint64_t *n_tensors, uint64_t *n_kv)
{
    if (r->n < 4 || memcmp(r->p, "GGUF", 4) != 0) {
        if (r->n < 4)
            return rd_fail(r, BN_ERR_FORMAT, "not a GGUF file: %zu bytes, too short for the magic",
                           r->n);
        return rd_fail(r, BN_ERR_FORMAT,
                       "not a GGUF file: bad magic %02x %02x %02x %02x at offset 0 (want \"GGUF\")",
                       r->p[0], r->p[1], r->p[2], r->p[3]);
    }
    r->pos = 4;
    bn_status rc = rd_u32(r, "version", &g->version);
    if (rc != BN_OK) return rc;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return rd_fail(r, BN_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (g->version != 2 && g->version != 3)
        return rd_fail(r, BN_ERR_UNSUPPORTED, "GGUF version %u is not supported (only 2 and 3)",
                       g->version);
    if ((rc = rd_u64(r, "tensor count", n_tensors)) != BN_OK) return rc;
    if ((rc = rd_u64(r, "metadata count", n_kv)) != BN_OK) return rc;
    /* Plausibility before allocating: each entry needs a minimum number of bytes. */
    size_t left = rd_left(r);
    if (*n_kv > left / GGUF_MIN_KV_BYTES)
        return rd_fail(r, BN_ERR_FORMAT,
                       "metadata count %llu (offset 16) is more than the %zu bytes left can hold",
                       (unsigned long long)*n_kv, left);
    if (*n_tensors > left / GGUF_MIN_TENSOR_BYTES ||
        *n_kv * GGUF_MIN_KV_BYTES + *n_tensors * GGUF_MIN_TENSOR_BYTES > left)
        return rd_fail(r, BN_ERR_FORMAT,
                       "tensor count %llu (offset 8) is more than the %zu bytes left can hold",
                       (unsigned long long)*n_tensors, left);
    return BN_OK;
}

static bn_status parse(rd *r, bn_gguf *g)
{
    uint64_t nt, nkv;
    bn_status rc = read_header(r, g, &nt, &nkv);
    if (rc != BN_OK) return rc;
    g->kv = bn_calloc((size_t)nkv ? (size_t)nkv : 1, sizeof *g->kv);
    if (!g->kv || index_new((size_t)nkv, &g->kv_index, &g->kv_cap) != BN_OK)
        return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = (int64_t)i + 1; /* entries up to i are freed by close */
        if ((rc = read_kv(r, g, (int64_t)i)) != BN_OK) return rc;
    }
    if ((rc = read_alignment(r, g)) != BN_OK) return rc;
    r->where[0] = '\0';
    if (nt > rd_left(r) / GGUF_MIN_TENSOR_BYTES)
        return rd_fail(
                r, BN_ERR_FORMAT,
                "tensor count %llu is more than the %zu bytes left after the metadata can hold",
                (unsigned long long)nt, rd_left(r));
    g->tensors = bn_calloc((size_t)nt ? (size_t)nt : 1, sizeof *g->tensors);
    if (!g->tensors || index_new((size_t)nt, &g->t_index, &g->t_cap) != BN_OK)
        return rd_fail(r, BN_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < nt; i++) {
        g->n_tensors = (int64_t)i + 1;
        if ((rc = read_tensor_info(r, g, (int64_t)i)) != BN_OK) return rc;
    }
    return place_tensors(r, g);
}

static bn_status open_bytes(bn_ctx *ctx, const void *data, size_t size, int mapped, bn_gguf **out)
{
    bn_gguf *g = bn_calloc(1, sizeof *g);
    if (!g) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    g->base = data;
    g->size = size;
    g->alignment = BN_GGUF_DEFAULT_ALIGNMENT;
    rd r = {.p = data, .n = size, .pos = 0, .ctx = ctx, .where = ""};
    bn_status rc = parse(&r, g);
    if (rc != BN_OK) {
        g->mapped = 0; /* the caller unmaps */
        bn_gguf_close(g);
        return rc;
    }
    g->mapped = mapped;
    *out = g;
    return BN_OK;
}

bn_status bn_gguf_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_gguf **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    return open_bytes(ctx, size ? data : "", size, 0, out);
}

bn_status bn_gguf_open(bn_ctx *ctx, const char *path, bn_gguf **out)
{
    BN_ASSERT(out && path);
    *out = NULL;
    /* O_NONBLOCK: a FIFO is refused below (not a regular file) instead of waited on */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return bn_ctx_set_error(ctx, BN_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bn_ctx_set_error(ctx, BN_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bn_ctx_set_error(ctx, BN_ERR_IO, "not a regular file");
    }
    if (st.st_size == 0) {
        close(fd);
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "not a GGUF file: the file is empty");
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "file too large to map");
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return bn_ctx_set_error(ctx, BN_ERR_IO, "cannot map: %s", strerror(e));
    bn_status rc = open_bytes(ctx, p, size, 1, out);
    if (rc != BN_OK) munmap(p, size);
    return rc;
}

void bn_gguf_close(bn_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; g->kv && i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        bn_free(kv->key);
        bn_free(kv->str);
        bn_free(kv->arr_data);
        bn_free(kv->arr_blob);
        bn_free(kv->arr_off);
    }
    for (int64_t i = 0; g->tensors && i < g->n_tensors; i++) bn_free((void *)g->tensors[i].name);
    bn_free(g->kv);
    bn_free(g->tensors);
    bn_free(g->kv_index);
    bn_free(g->t_index);
    if (g->mapped) munmap((void *)g->base, g->size);
    bn_free(g);
}

uint32_t bn_gguf_version(const bn_gguf *g)
{
    return g->version;
}

size_t bn_gguf_alignment(const bn_gguf *g)
{
    return g->alignment;
}

size_t bn_gguf_file_size(const bn_gguf *g)
{
    return g->size;
}

const void *bn_gguf_base(const bn_gguf *g)
{
    return g->base;
}

size_t bn_gguf_data_offset(const bn_gguf *g)
{
    return g->data_start;
}

/* ---- metadata access --------------------------------------------------------------------- */

static const gguf_kv *kv_at(const bn_gguf *g, int64_t i)
{
    return (g && i >= 0 && i < g->n_kv) ? &g->kv[i] : NULL;
}

int64_t bn_gguf_n_kv(const bn_gguf *g)
{
    return g->n_kv;
}

const char *bn_gguf_key(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

int64_t bn_gguf_find_key(const bn_gguf *g, const char *key)
{
    if (!g || !key || !g->kv_index) return -1;
    size_t mask = g->kv_cap - 1;
    for (size_t h = hash_str(key) & mask;; h = (h + 1) & mask) {
        int64_t j = g->kv_index[h];
        if (j < 0) return -1;
        if (strcmp(g->kv[j].key, key) == 0) return j;
    }
}

bn_gguf_vtype bn_gguf_kv_type(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : BN_GGUF_VTYPE_COUNT_;
}

static int is_signed_int(int t)
{
    return t == BN_GGUF_I8 || t == BN_GGUF_I16 || t == BN_GGUF_I32 || t == BN_GGUF_I64;
}

static int is_unsigned_int(int t)
{
    return t == BN_GGUF_U8 || t == BN_GGUF_U16 || t == BN_GGUF_U32 || t == BN_GGUF_U64;
}

/* The entry for key, or NULL with *rc set. */
static const gguf_kv *kv_find(const bn_gguf *g, const char *key, bn_status *rc)
{
    int64_t i = bn_gguf_find_key(g, key);
    *rc = i < 0 ? BN_ERR_NOT_FOUND : BN_OK;
    return i < 0 ? NULL : &g->kv[i];
}

/* An integer entry as [lo, hi]-checked int64 / uint64. */
static bn_status kv_int_range(const bn_gguf *g, const char *key, int64_t lo, uint64_t hi, int *neg,
                              uint64_t *mag)
{
    bn_status rc;
    const gguf_kv *kv = kv_find(g, key, &rc);
    if (!kv) return rc;
    if (is_unsigned_int(kv->type)) {
        if (kv->v.u > hi) return BN_ERR_FORMAT;
        *neg = 0;
        *mag = kv->v.u;
        return BN_OK;
    }
    if (is_signed_int(kv->type)) {
        if (kv->v.i < lo || (kv->v.i > 0 && (uint64_t)kv->v.i > hi)) return BN_ERR_FORMAT;
        *neg = kv->v.i < 0;
        *mag = (uint64_t)kv->v.i;
        return BN_OK;
    }
    return BN_ERR_FORMAT;
}

bn_status bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out)
{
    int neg;
    uint64_t m;
    bn_status rc = kv_int_range(g, key, 0, UINT32_MAX, &neg, &m);
    if (rc == BN_OK) *out = (uint32_t)m;
    return rc;
}

bn_status bn_gguf_get_i32(const bn_gguf *g, const char *key, int32_t *out)
{
    int neg;
    uint64_t m;
    bn_status rc = kv_int_range(g, key, INT32_MIN, INT32_MAX, &neg, &m);
    if (rc == BN_OK) *out = (int32_t)(int64_t)m;
    return rc;
}

bn_status bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out)
{
    int neg;
    uint64_t m;
    bn_status rc = kv_int_range(g, key, 0, UINT64_MAX, &neg, &m);
    if (rc == BN_OK) *out = m;
    return rc;
}

bn_status bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out)
{
    int neg;
    uint64_t m;
    bn_status rc = kv_int_range(g, key, INT64_MIN, INT64_MAX, &neg, &m);
    if (rc == BN_OK) *out = (int64_t)m;
    return rc;
}

bn_status bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out)
{
    bn_status rc;
    const gguf_kv *kv = kv_find(g, key, &rc);
    if (!kv) return rc;
    if (kv->type != BN_GGUF_F32 && kv->type != BN_GGUF_F64) return BN_ERR_FORMAT;
    *out = (float)kv->v.f;
    return BN_OK;
}

bn_status bn_gguf_get_bool(const bn_gguf *g, const char *key, int *out)
{
    bn_status rc;
    const gguf_kv *kv = kv_find(g, key, &rc);
    if (!kv) return rc;
    if (kv->type != BN_GGUF_BOOL) return BN_ERR_FORMAT;
    *out = kv->v.u != 0;
    return BN_OK;
}

bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, const char **out)
{
    bn_status rc;
    const gguf_kv *kv = kv_find(g, key, &rc);
    if (!kv) return rc;
    if (kv->type != BN_GGUF_STRING) return BN_ERR_FORMAT;
    *out = kv->str;
    return BN_OK;
}

double bn_gguf_kv_f64(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return 0;
    if (kv->type == BN_GGUF_F32 || kv->type == BN_GGUF_F64) return kv->v.f;
    if (is_signed_int(kv->type)) return (double)kv->v.i;
    if (is_unsigned_int(kv->type) || kv->type == BN_GGUF_BOOL) return (double)kv->v.u;
    return 0;
}

int64_t bn_gguf_kv_i64(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return 0;
    if (is_signed_int(kv->type)) return kv->v.i;
    if (is_unsigned_int(kv->type) || kv->type == BN_GGUF_BOOL)
        return kv->v.u > INT64_MAX ? INT64_MAX : (int64_t)kv->v.u;
    return 0;
}

uint64_t bn_gguf_kv_u64(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return 0;
    if (is_unsigned_int(kv->type) || kv->type == BN_GGUF_BOOL) return kv->v.u;
    if (is_signed_int(kv->type)) return kv->v.i < 0 ? 0 : (uint64_t)kv->v.i;
    return 0;
}

const char *bn_gguf_kv_str(const bn_gguf *g, int64_t i)
{
    return bn_gguf_kv_strn(g, i, NULL);
}

const char *bn_gguf_kv_strn(const bn_gguf *g, int64_t i, size_t *len)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != BN_GGUF_STRING) return NULL;
    if (len) *len = kv->str_len;
    return kv->str;
}

bn_gguf_vtype bn_gguf_arr_type(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return (kv && kv->type == BN_GGUF_ARRAY) ? kv->arr_type : BN_GGUF_VTYPE_COUNT_;
}

uint64_t bn_gguf_arr_n(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return (kv && kv->type == BN_GGUF_ARRAY) ? kv->arr_n : 0;
}

const void *bn_gguf_arr_data(const bn_gguf *g, int64_t i)
{
    const gguf_kv *kv = kv_at(g, i);
    return (kv && kv->type == BN_GGUF_ARRAY) ? kv->arr_data : NULL;
}

const char *bn_gguf_arr_str(const bn_gguf *g, int64_t i, uint64_t j, size_t *len)
{
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != BN_GGUF_ARRAY || kv->arr_type != BN_GGUF_STRING || j >= kv->arr_n)
        return NULL;
    if (len) *len = kv->arr_off[j + 1] - kv->arr_off[j] - 1;
    return kv->arr_blob + kv->arr_off[j];
}

/* ---- tensor access ---------------------------------------------------------------------- */

int64_t bn_gguf_n_tensors(const bn_gguf *g)
{
    return g->n_tensors;
}

const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, int64_t i)
{
    return (g && i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name)
{
    if (!g || !name || !g->t_index) return NULL;
    size_t mask = g->t_cap - 1;
    for (size_t h = hash_str(name) & mask;; h = (h + 1) & mask) {
        int64_t j = g->t_index[h];
        if (j < 0) return NULL;
        if (strcmp(g->tensors[j].name, name) == 0) return &g->tensors[j];
    }
}
