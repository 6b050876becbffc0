/*
 * safetensors.c - SafeTensors reader: a strict parser for the JSON header (only the shapes
 * the format allows), validation of every tensor's extent, and the checkpoint helpers the
 * other readers share (file mapping, name index, dtype conversion).
 */
#include "bitnet/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/types.h"
#include "ckpt_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* ---- dtypes ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} g_dtypes[BN_DTYPE_COUNT_] = {
        [BN_DTYPE_BOOL] = {"BOOL", 1},       [BN_DTYPE_U8] = {"U8", 1},
        [BN_DTYPE_I8] = {"I8", 1},           [BN_DTYPE_I16] = {"I16", 2},
        [BN_DTYPE_U16] = {"U16", 2},         [BN_DTYPE_F16] = {"F16", 2},
        [BN_DTYPE_BF16] = {"BF16", 2},       [BN_DTYPE_I32] = {"I32", 4},
        [BN_DTYPE_U32] = {"U32", 4},         [BN_DTYPE_F32] = {"F32", 4},
        [BN_DTYPE_F64] = {"F64", 8},         [BN_DTYPE_I64] = {"I64", 8},
        [BN_DTYPE_U64] = {"U64", 8},         [BN_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
        [BN_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
};

const char *bn_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < BN_DTYPE_COUNT_ ? g_dtypes[dtype].name : "unknown";
}

size_t bn_dtype_size(int dtype)
{
    return dtype >= 0 && dtype < BN_DTYPE_COUNT_ ? g_dtypes[dtype].size : 0;
}

int bn_dtype_from_name(const char *name)
{
    for (int i = 0; name && i < BN_DTYPE_COUNT_; i++)
        if (strcmp(name, g_dtypes[i].name) == 0) return i;
    return -1;
}

static float f8_e4m3_to_f32(uint8_t b)
{
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m / 8.0f, -6);
    else
        v = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return s ? -v : v;
}

bn_status bn_dtype_to_f32(int dtype, const void *src, size_t n, float *dst)
{
    const uint8_t *p = src;
    const size_t es = bn_dtype_size(dtype);
    if (es == 0) return BN_ERR_INVALID;
    for (size_t i = 0; i < n; i++, p += es) {
        union {
            uint8_t u8;
            int8_t i8;
            uint16_t u16;
            int16_t i16;
            uint32_t u32;
            int32_t i32;
            uint64_t u64;
            int64_t i64;
            float f32;
            double f64;
        } v;
        memcpy(&v, p, es);
        switch ((bn_dtype)dtype) {
        case BN_DTYPE_BOOL:
            dst[i] = v.u8 != 0;
            break;
        case BN_DTYPE_U8:
            dst[i] = v.u8;
            break;
        case BN_DTYPE_I8:
            dst[i] = v.i8;
            break;
        case BN_DTYPE_I16:
            dst[i] = v.i16;
            break;
        case BN_DTYPE_U16:
            dst[i] = v.u16;
            break;
        case BN_DTYPE_F16:
            dst[i] = bn_f16_to_f32(v.u16);
            break;
        case BN_DTYPE_BF16:
            dst[i] = bn_bf16_to_f32(v.u16);
            break;
        case BN_DTYPE_I32:
            dst[i] = (float)v.i32;
            break;
        case BN_DTYPE_U32:
            dst[i] = (float)v.u32;
            break;
        case BN_DTYPE_F32:
            dst[i] = v.f32;
            break;
        case BN_DTYPE_F64:
            dst[i] = (float)v.f64;
            break;
        case BN_DTYPE_I64:
            dst[i] = (float)v.i64;
            break;
        case BN_DTYPE_U64:
            dst[i] = (float)v.u64;
            break;
        case BN_DTYPE_F8_E5M2:
            dst[i] = bn_f16_to_f32((uint16_t)(v.u8 << 8));
            break;
        case BN_DTYPE_F8_E4M3:
            dst[i] = f8_e4m3_to_f32(v.u8);
            break;
        case BN_DTYPE_COUNT_:
            return BN_ERR_INVALID;
        }
    }
    return BN_OK;
}

/* ---- shared helpers ------------------------------------------------------------------- */

bn_status bn__map_file(bn_ctx *ctx, const char *path, const void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    /* O_NONBLOCK: a FIFO is refused below (not a regular file) instead of waited on */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return bn_ctx_set_error(ctx, BN_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    bn_status rc = BN_OK;
    if (fstat(fd, &st) != 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "not a regular file");
    else if (st.st_size == 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "the file is empty");
    else if ((uint64_t)st.st_size > SIZE_MAX)
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE, "file too large to map");
    if (rc != BN_OK) {
        close(fd);
        return rc;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return bn_ctx_set_error(ctx, BN_ERR_IO, "cannot map: %s", strerror(e));
    *data = p;
    *size = (size_t)st.st_size;
    return BN_OK;
}

void bn__unmap(const void *data, size_t size)
{
    if (data) munmap((void *)data, size);
}

static int cmp_by_name(const void *a, const void *b, void *names)
{
    const char *const *nm = names;
    return strcmp(nm[*(const int64_t *)a], nm[*(const int64_t *)b]);
}

bn_status bn__name_index_build(bn__name_index *ix, const char *const *names, int64_t n,
                               int64_t *dup)
{
    *dup = -1;
    ix->names = names;
    ix->n = n;
    ix->order = bn_malloc((size_t)(n > 0 ? n : 1) * sizeof *ix->order);
    if (!ix->order) return BN_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) ix->order[i] = i;
    qsort_r(ix->order, (size_t)n, sizeof *ix->order, cmp_by_name, (void *)names);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(names[ix->order[i - 1]], names[ix->order[i]]) == 0) {
            *dup = ix->order[i];
            return BN_ERR_FORMAT;
        }
    }
    return BN_OK;
}

int64_t bn__name_index_find(const bn__name_index *ix, const char *name)
{
    int64_t lo = 0, hi = ix->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->names[ix->order[mid]], name);
        if (c == 0) return ix->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void bn__name_index_release(bn__name_index *ix)
{
    bn_free(ix->order);
    ix->order = NULL;
    ix->n = 0;
}

int bn__utf8_valid(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0)
            k = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            k = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

/* ---- the reader ------------------------------------------------------------------------ */

#define BN_ST_MAX_META 65536 /* __metadata__ entries (each key is checked against the others) */

struct bn_safetensors {
    const uint8_t *base;
    size_t size;
    int mapped;
    int64_t n_tensors, cap_tensors;
    bn_st_tensor *tensors;
    const char **tnames; /* tensors[i].name, for the index */
    bn__name_index index;
    int64_t n_meta, cap_meta;
    char **meta; /* key, value, key, value, ... */
};

/* A strict JSON cursor over the header. */
typedef struct jp {
    const char *p;
    size_t n, pos;
    bn_ctx *ctx;
    const char *where; /* the tensor being parsed, for messages */
} jp;

static bn_status jp_fail(jp *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bn_status jp_fail(jp *j, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (j->where)
        return bn_ctx_set_error(j->ctx, BN_ERR_FORMAT, "safetensors header: %.120s: %s", j->where,
                                msg);
    return bn_ctx_set_error(j->ctx, BN_ERR_FORMAT, "safetensors header: %s (byte %zu)", msg,
                            j->pos);
}

static void jp_ws(jp *j)
{
    while (j->pos < j->n) {
        char c = j->p[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

/* Skips white space; returns the next byte or -1 at the end. */
static int jp_peek(jp *j)
{
    jp_ws(j);
    return j->pos < j->n ? (unsigned char)j->p[j->pos] : -1;
}

static bn_status jp_expect(jp *j, char c)
{
    int got = jp_peek(j);
    if (got != c) {
        if (got < 0) return jp_fail(j, "truncated: expected '%c'", c);
        return jp_fail(j, "expected '%c', found '%c'", c, got >= 32 && got < 127 ? got : '?');
    }
    j->pos++;
    return BN_OK;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \u escape (and its low surrogate) at j->pos (just after the backslash-u). */
static bn_status jp_uescape(jp *j, uint32_t *cp)
{
    if (j->n - j->pos < 4 || hex4(j->p + j->pos, cp) != 0) return jp_fail(j, "bad \\u escape");
    j->pos += 4;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return jp_fail(j, "lone low surrogate in \\u escape");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (j->n - j->pos < 6 || j->p[j->pos] != '\\' || j->p[j->pos + 1] != 'u' ||
            hex4(j->p + j->pos + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return jp_fail(j, "lone high surrogate in \\u escape");
        j->pos += 6;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return BN_OK;
}

/* A string: *out gets a NUL-terminated copy (bn_free). Strings holding NUL are refused. */
static bn_status jp_string(jp *j, char **out)
{
    *out = NULL;
    bn_status rc = jp_expect(j, '"');
    if (rc != BN_OK) return rc;
    size_t start = j->pos, end = start;
    while (end < j->n && j->p[end] != '"') end += j->p[end] == '\\' ? 2 : 1;
    if (end >= j->n) return jp_fail(j, "unterminated string");
    char *s = bn_malloc(end - start + 1); /* escapes only shrink */
    if (!s) return bn_ctx_set_error(j->ctx, BN_ERR_NOMEM, "out of memory");
    size_t o = 0;
    while (j->pos < end) {
        unsigned char c = (unsigned char)j->p[j->pos++];
        if (c < 0x20) {
            bn_free(s);
            return jp_fail(j, "control character in a string");
        }
        if (c != '\\') {
            s[o++] = (char)c;
            continue;
        }
        char e = j->p[j->pos++];
        uint32_t cp = 0;
        switch (e) {
        case '"':
            s[o++] = '"';
            break;
        case '\\':
            s[o++] = '\\';
            break;
        case '/':
            s[o++] = '/';
            break;
        case 'b':
            s[o++] = '\b';
            break;
        case 'f':
            s[o++] = '\f';
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 'r':
            s[o++] = '\r';
            break;
        case 't':
            s[o++] = '\t';
            break;
        case 'u':
            if ((rc = jp_uescape(j, &cp)) != BN_OK) {
                bn_free(s);
                return rc;
            }
            if (cp == 0) {
                bn_free(s);
                return jp_fail(j, "NUL character in a string");
            }
            o += put_utf8(s + o, cp);
            break;
        default:
            bn_free(s);
            return jp_fail(j, "bad escape in a string");
        }
    }
    j->pos = end + 1;
    s[o] = '\0';
    *out = s;
    return BN_OK;
}

/* A non-negative integer (no sign, fraction, exponent or leading zero) that fits a u64. */
static bn_status jp_uint(jp *j, uint64_t *out)
{
    int c = jp_peek(j);
    if (c < '0' || c > '9') return jp_fail(j, "expected a non-negative integer");
    uint64_t v = 0;
    size_t start = j->pos;
    while (j->pos < j->n && j->p[j->pos] >= '0' && j->p[j->pos] <= '9') {
        if (bn_mul_u64(v, 10, &v) || bn_add_u64(v, (uint64_t)(j->p[j->pos] - '0'), &v))
            return jp_fail(j, "integer too large");
        j->pos++;
    }
    if (j->p[start] == '0' && j->pos - start > 1) return jp_fail(j, "integer with a leading zero");
    if (j->pos < j->n && (j->p[j->pos] == '.' || j->p[j->pos] == 'e' || j->p[j->pos] == 'E'))
        return jp_fail(j, "expected an integer, found a fraction or exponent");
    *out = v;
    return BN_OK;
}

/* [u, u, ...] into v (at most max; *n gets the count). */
static bn_status jp_uint_array(jp *j, uint64_t *v, int max, int *n, const char *what)
{
    bn_status rc = jp_expect(j, '[');
    *n = 0;
    if (rc != BN_OK) return rc;
    if (jp_peek(j) == ']') {
        j->pos++;
        return BN_OK;
    }
    for (;;) {
        if (*n >= max) return jp_fail(j, "%s has more than %d entries", what, max);
        if ((rc = jp_uint(j, &v[(*n)++])) != BN_OK) return rc;
        int c = jp_peek(j);
        j->pos++;
        if (c == ']') return BN_OK;
        if (c != ',') return jp_fail(j, "expected ',' or ']' in %s", what);
    }
}

static bn_status grow(void **arr, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) return BN_OK;
    int64_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    size_t bytes;
    if (bn_mul_size((size_t)nc, elem, &bytes)) return BN_ERR_OVERFLOW;
    void *p = bn_malloc(bytes);
    if (!p) return BN_ERR_NOMEM;
    if (*arr) memcpy(p, *arr, (size_t)*cap * elem);
    bn_free(*arr);
    *arr = p;
    *cap = nc;
    return BN_OK;
}

static bn_status parse_metadata(jp *j, bn_safetensors *st)
{
    bn_status rc = jp_expect(j, '{');
    if (rc != BN_OK) return rc;
    if (jp_peek(j) == '}') {
        j->pos++;
        return BN_OK;
    }
    for (;;) {
        if (st->n_meta >= BN_ST_MAX_META)
            return jp_fail(j, "__metadata__ has more than %d entries", BN_ST_MAX_META);
        if (grow((void **)&st->meta, &st->cap_meta, 2 * (st->n_meta + 1), sizeof(char *)))
            return bn_ctx_set_error(j->ctx, BN_ERR_NOMEM, "out of memory");
        char **kv = &st->meta[2 * st->n_meta];
        kv[0] = kv[1] = NULL;
        st->n_meta++;
        if ((rc = jp_string(j, &kv[0])) != BN_OK) return rc;
        for (int64_t i = 0; i + 1 < st->n_meta; i++)
            if (strcmp(st->meta[2 * i], kv[0]) == 0)
                return jp_fail(j, "__metadata__: duplicate key '%.80s'", kv[0]);
        if ((rc = jp_expect(j, ':')) != BN_OK) return rc;
        if (jp_peek(j) != '"')
            return jp_fail(j, "__metadata__: the value of '%.80s' is not a string", kv[0]);
        if ((rc = jp_string(j, &kv[1])) != BN_OK) return rc;
        int c = jp_peek(j);
        j->pos++;
        if (c == '}') return BN_OK;
        if (c != ',') return jp_fail(j, "__metadata__: expected ',' or '}'");
    }
}

/* The body of one tensor entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static bn_status parse_tensor(jp *j, bn_st_tensor *t, uint64_t off[2])
{
    bn_status rc = jp_expect(j, '{');
    int seen = 0; /* bits: dtype, shape, data_offsets */
    while (rc == BN_OK) {
        char *key;
        if ((rc = jp_string(j, &key)) != BN_OK) return rc;
        int bit = strcmp(key, "dtype") == 0          ? 1
                  : strcmp(key, "shape") == 0        ? 2
                  : strcmp(key, "data_offsets") == 0 ? 4
                                                     : 0;
        if (bit == 0 || (seen & bit)) {
            rc = jp_fail(j, bit ? "duplicate key '%.40s'" : "unknown key '%.40s'", key);
            bn_free(key);
            return rc;
        }
        bn_free(key);
        seen |= bit;
        if ((rc = jp_expect(j, ':')) != BN_OK) return rc;
        if (bit == 1) {
            char *dt;
            if ((rc = jp_string(j, &dt)) != BN_OK) return rc;
            int d = bn_dtype_from_name(dt);
            if (d < 0) {
                rc = bn_ctx_set_error(j->ctx, BN_ERR_UNSUPPORTED,
                                      "safetensors header: %.120s: unknown dtype '%.20s'", j->where,
                                      dt);
                bn_free(dt);
                return rc;
            }
            bn_free(dt);
            t->dtype = (bn_dtype)d;
        } else if (bit == 2) {
            uint64_t shape[BN_ST_MAX_DIMS];
            rc = jp_uint_array(j, shape, BN_ST_MAX_DIMS, &t->n_dims, "shape");
            for (int i = 0; rc == BN_OK && i < t->n_dims; i++) {
                if (shape[i] > (uint64_t)INT64_MAX) return jp_fail(j, "dimension too large");
                t->shape[i] = (int64_t)shape[i];
            }
        } else {
            int n;
            rc = jp_uint_array(j, off, 2, &n, "data_offsets");
            if (rc == BN_OK && n != 2) return jp_fail(j, "data_offsets needs 2 entries");
        }
        if (rc != BN_OK) return rc;
        int c = jp_peek(j);
        j->pos++;
        if (c == '}') break;
        if (c != ',') return jp_fail(j, "expected ',' or '}'");
    }
    if (rc != BN_OK) return rc;
    if (seen != 7)
        return jp_fail(j, "missing %s",
                       !(seen & 1)   ? "dtype"
                       : !(seen & 2) ? "shape"
                                     : "data_offsets");
    return BN_OK;
}

/* Checks a tensor's extent against its shape and dtype and places it in the data. */
static bn_status check_extent(jp *j, bn_safetensors *st, bn_st_tensor *t, const uint64_t off[2],
                              size_t data_start)
{
    uint64_t numel = 1, bytes;
    for (int i = 0; i < t->n_dims; i++)
        if (bn_mul_u64(numel, (uint64_t)t->shape[i], &numel))
            return jp_fail(j, "element count overflows");
    if (bn_mul_u64(numel, bn_dtype_size(t->dtype), &bytes))
        return jp_fail(j, "byte size overflows");
    if (off[1] < off[0])
        return jp_fail(j, "data_offsets [%llu, %llu] end before they begin",
                       (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] - off[0] != bytes)
        return jp_fail(j, "data_offsets span %llu bytes, the shape and dtype need %llu",
                       (unsigned long long)(off[1] - off[0]), (unsigned long long)bytes);
    const size_t data_size = st->size - data_start;
    if (off[1] > data_size)
        return jp_fail(j, "data [%llu, %llu) is outside the file (%zu data bytes)",
                       (unsigned long long)off[0], (unsigned long long)off[1], data_size);
    t->numel = numel;
    t->offset = data_start + off[0];
    t->size = (size_t)bytes;
    t->data = st->base + t->offset;
    return BN_OK;
}

static bn_status parse_header(jp *j, bn_safetensors *st, size_t data_start)
{
    bn_status rc = jp_expect(j, '{');
    int seen_meta = 0;
    if (rc == BN_OK && jp_peek(j) == '}') {
        j->pos++;
        return BN_OK;
    }
    while (rc == BN_OK) {
        char *name;
        if ((rc = jp_string(j, &name)) != BN_OK) return rc;
        if ((rc = jp_expect(j, ':')) != BN_OK) {
            bn_free(name);
            return rc;
        }
        if (strcmp(name, "__metadata__") == 0) {
            bn_free(name);
            if (seen_meta++) return jp_fail(j, "duplicate __metadata__");
            rc = parse_metadata(j, st);
        } else {
            if (grow((void **)&st->tensors, &st->cap_tensors, st->n_tensors + 1,
                     sizeof *st->tensors)) {
                bn_free(name);
                return bn_ctx_set_error(j->ctx, BN_ERR_NOMEM, "out of memory");
            }
            bn_st_tensor *t = &st->tensors[st->n_tensors++];
            memset(t, 0, sizeof *t);
            t->name = name;
            j->where = name;
            uint64_t off[2];
            rc = parse_tensor(j, t, off);
            if (rc == BN_OK) rc = check_extent(j, st, t, off, data_start);
            j->where = NULL;
        }
        if (rc != BN_OK) return rc;
        int c = jp_peek(j);
        j->pos++;
        if (c == '}') break;
        if (c != ',') return jp_fail(j, "expected ',' or '}'");
    }
    return rc;
}

static int cmp_extent(const void *a, const void *b, void *arg)
{
    const bn_st_tensor *t = arg;
    const bn_st_tensor *x = &t[*(const int64_t *)a], *y = &t[*(const int64_t *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->size != y->size) return x->size < y->size ? -1 : 1;
    return 0;
}

/* Sorted by offset, the tensors must tile the data section exactly. */
static bn_status check_tiling(bn_ctx *ctx, bn_safetensors *st, size_t data_start)
{
    int64_t n = st->n_tensors;
    int64_t *ord = bn_malloc((size_t)(n ? n : 1) * sizeof *ord);
    if (!ord) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_extent, st->tensors);
    uint64_t at = data_start;
    bn_status rc = BN_OK;
    for (int64_t k = 0; k < n && rc == BN_OK; k++) {
        const bn_st_tensor *t = &st->tensors[ord[k]];
        if (t->offset < at)
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "safetensors: %.120s: data overlaps %.120s",
                                  t->name, st->tensors[ord[k - 1]].name);
        else if (t->offset > at)
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                  "safetensors: %.120s: %llu unused bytes before its data", t->name,
                                  (unsigned long long)(t->offset - at));
        at = t->offset + t->size;
    }
    if (rc == BN_OK && at != st->size)
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                              "safetensors: %llu bytes after the last tensor's data",
                              (unsigned long long)(st->size - at));
    bn_free(ord);
    return rc;
}

static bn_status parse(bn_ctx *ctx, bn_safetensors *st)
{
    if (st->size < 8)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "not a safetensors file: %zu bytes, the header length needs 8",
                                st->size);
    uint64_t hlen;
    memcpy(&hlen, st->base, 8);
    if (hlen > BN_ST_MAX_HEADER)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                "safetensors: header of %llu bytes declared (the limit is %llu)",
                                (unsigned long long)hlen, (unsigned long long)BN_ST_MAX_HEADER);
    if (hlen > st->size - 8)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "safetensors: header of %llu bytes declared, the file has %zu "
                                "after the length",
                                (unsigned long long)hlen, st->size - 8);
    if (hlen < 2 || st->base[8] != '{')
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "not a safetensors file: the header is not a JSON object");
    const char *h = (const char *)st->base + 8;
    if (!bn__utf8_valid(h, (size_t)hlen))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "safetensors header: not valid UTF-8");
    jp j = {.p = h, .n = (size_t)hlen, .pos = 0, .ctx = ctx, .where = NULL};
    const size_t data_start = 8 + (size_t)hlen;
    bn_status rc = parse_header(&j, st, data_start);
    if (rc != BN_OK) return rc;
    jp_ws(&j);
    if (j.pos != j.n) return jp_fail(&j, "unexpected bytes after the header's closing brace");
    st->tnames = bn_malloc((size_t)(st->n_tensors ? st->n_tensors : 1) * sizeof *st->tnames);
    if (!st->tnames) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < st->n_tensors; i++) st->tnames[i] = st->tensors[i].name;
    int64_t dup;
    rc = bn__name_index_build(&st->index, st->tnames, st->n_tensors, &dup);
    if (rc == BN_ERR_FORMAT)
        return bn_ctx_set_error(ctx, rc, "safetensors header: duplicate tensor '%.120s'",
                                st->tnames[dup]);
    if (rc != BN_OK) return bn_ctx_set_error(ctx, rc, "out of memory");
    return check_tiling(ctx, st, data_start);
}

static bn_status open_bytes(bn_ctx *ctx, const void *data, size_t size, int mapped,
                            bn_safetensors **out)
{
    bn_safetensors *st = bn_calloc(1, sizeof *st);
    if (!st) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    st->base = data;
    st->size = size;
    bn_status rc = parse(ctx, st);
    if (rc != BN_OK) {
        bn_safetensors_close(st); /* not mapped yet: the caller unmaps */
        return rc;
    }
    st->mapped = mapped;
    *out = st;
    return BN_OK;
}

bn_status bn_safetensors_open_memory(bn_ctx *ctx, const void *data, size_t size,
                                     bn_safetensors **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    return open_bytes(ctx, size ? data : "", size, 0, out);
}

bn_status bn_safetensors_open(bn_ctx *ctx, const char *path, bn_safetensors **out)
{
    BN_ASSERT(out && path);
    *out = NULL;
    const void *p;
    size_t size;
    bn_status rc = bn__map_file(ctx, path, &p, &size);
    if (rc != BN_OK) return rc;
    rc = open_bytes(ctx, p, size, 1, out);
    if (rc != BN_OK) bn__unmap(p, size);
    return rc;
}

void bn_safetensors_close(bn_safetensors *st)
{
    if (!st) return;
    for (int64_t i = 0; i < st->n_tensors; i++) bn_free((void *)st->tensors[i].name);
    for (int64_t i = 0; i < 2 * st->n_meta; i++) bn_free(st->meta[i]);
    bn_free(st->tensors);
    bn_free(st->tnames);
    bn_free(st->meta);
    bn__name_index_release(&st->index);
    if (st->mapped) bn__unmap(st->base, st->size);
    bn_free(st);
}

int64_t bn_safetensors_n_tensors(const bn_safetensors *st)
{
    return st->n_tensors;
}

const bn_st_tensor *bn_safetensors_tensor_at(const bn_safetensors *st, int64_t i)
{
    return i >= 0 && i < st->n_tensors ? &st->tensors[i] : NULL;
}

const bn_st_tensor *bn_safetensors_find(const bn_safetensors *st, const char *name)
{
    int64_t i = bn__name_index_find(&st->index, name);
    return i >= 0 ? &st->tensors[i] : NULL;
}

int64_t bn_safetensors_n_meta(const bn_safetensors *st)
{
    return st->n_meta;
}

const char *bn_safetensors_meta_key(const bn_safetensors *st, int64_t i)
{
    return i >= 0 && i < st->n_meta ? st->meta[2 * i] : NULL;
}

const char *bn_safetensors_meta_value(const bn_safetensors *st, int64_t i)
{
    return i >= 0 && i < st->n_meta ? st->meta[2 * i + 1] : NULL;
}

const char *bn_safetensors_meta(const bn_safetensors *st, const char *key)
{
    for (int64_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

size_t bn_safetensors_file_size(const bn_safetensors *st)
{
    return st->size;
}

void bn__release_pages(const void *data, size_t size)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t b = ((uintptr_t)data + pg - 1) & ~(pg - 1);
    const uintptr_t e = ((uintptr_t)data + size) & ~(pg - 1);
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

void bn_safetensors_release(const bn_safetensors *st, const bn_st_tensor *t)
{
    if (!st->mapped || !t || t->size == 0) return;
    bn__release_pages(t->data, t->size);
}
