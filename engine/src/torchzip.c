/*
 * torchzip.c - PyTorch checkpoints: the zip archive (libzip) and the tensors its pickle
 * describes. The pickle (data.pkl) is run by the restricted interpreter in torch_pickle.c.
 */
#include "bitnet/torchzip.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "ckpt_internal.h"
#include "torch_pickle_internal.h"

#define PKL_MAX_BYTES  ((size_t)1 << 30) /* data.pkl larger than this is refused */
#define PKL_MAX_DEPTH  16                /* nesting of dicts in the result */
#define PT_MAX_ENTRIES (1 << 24)         /* zip entries */

/* ---- the archive ------------------------------------------------------------------------ */

typedef struct pt_extra {
    zip_int64_t entry; /* zip index of the storage */
    uint64_t first;    /* storage element of the first element */
    uint64_t span;     /* elements from first to the last one, + 1 (0 when empty) */
} pt_extra;

struct bn_torch {
    bn_ctx *ctx;
    const void *base;
    size_t size;
    int mapped;
    zip_t *za;
    char *dir; /* "<dir>/" */
    int64_t n_tensors, cap;
    bn_pt_tensor *tensors;
    pt_extra *extra;
    const char **names;
    bn__name_index index;
};

static bn_status zip_fail(bn_torch *pt, bn_status s, zip_error_t *ze, const char *what)
{
    return bn_ctx_set_error(pt->ctx, s, "%s: %s", what, zip_error_strerror(ze));
}

/* Reads all of entry idx (at most max bytes) into a new buffer. */
static bn_status read_entry(bn_torch *pt, zip_int64_t idx, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    zip_stat_t zs;
    if (zip_stat_index(pt->za, (zip_uint64_t)idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
        return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), "zip entry");
    if (zs.size > max)
        return bn_ctx_set_error(pt->ctx, BN_ERR_RANGE, "%s: %llu bytes (limit %zu)", zs.name,
                                (unsigned long long)zs.size, max);
    uint8_t *buf = bn_malloc((size_t)zs.size + 1);
    if (!buf) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    zip_file_t *f = zip_fopen_index(pt->za, (zip_uint64_t)idx, 0);
    bn_status rc = BN_OK;
    if (!f) {
        rc = zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), zs.name);
    } else {
        zip_int64_t got = zip_fread(f, buf, zs.size);
        if (got < 0 || (zip_uint64_t)got != zs.size)
            rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: %s", zs.name,
                                  got < 0 ? zip_error_strerror(zip_file_get_error(f))
                                          : "short read");
        zip_fclose(f);
    }
    if (rc != BN_OK) {
        bn_free(buf);
        return rc;
    }
    *out = buf;
    *len = (size_t)zs.size;
    return BN_OK;
}

/* Finds the one "<dir>/data.pkl"; sets pt->dir. */
static bn_status find_pickle(bn_torch *pt, zip_int64_t *idx)
{
    zip_int64_t n = zip_get_num_entries(pt->za, 0);
    if (n > PT_MAX_ENTRIES)
        return bn_ctx_set_error(pt->ctx, BN_ERR_RANGE, "zip archive with %lld entries",
                                (long long)n);
    *idx = -1;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(pt->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) continue;
        const char *slash = strchr(name, '/');
        if (!slash || strcmp(slash, "/data.pkl") != 0) continue;
        if (*idx >= 0)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                    "not a PyTorch checkpoint: more than one data.pkl");
        *idx = i;
        size_t dl = (size_t)(slash - name) + 1;
        bn_free(pt->dir);
        if (!(pt->dir = bn_malloc(dl + 1)))
            return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        memcpy(pt->dir, name, dl);
        pt->dir[dl] = '\0';
    }
    if (*idx < 0)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                "not a PyTorch checkpoint: no <name>/data.pkl in the zip archive");
    return BN_OK;
}

static bn_status check_byteorder(bn_torch *pt)
{
    char name[PKL_MAX_NAME + 16];
    snprintf(name, sizeof name, "%sbyteorder", pt->dir);
    zip_int64_t i = zip_name_locate(pt->za, name, ZIP_FL_ENC_RAW);
    if (i < 0) return BN_OK; /* older files: little-endian */
    uint8_t *b;
    size_t len;
    bn_status rc = read_entry(pt, i, 64, &b, &len);
    if (rc != BN_OK) return rc;
    if (len != 6 || memcmp(b, "little", 6) != 0)
        rc = bn_ctx_set_error(pt->ctx, BN_ERR_UNSUPPORTED,
                              "PyTorch checkpoint: byte order is not 'little'");
    bn_free(b);
    return rc;
}

static bn_status add_tensor(bn_torch *pt, vm *m, const char *name, const ptensor *src)
{
    if (pt->n_tensors == pt->cap) {
        int64_t nc = pt->cap ? pt->cap * 2 : 64;
        bn_pt_tensor *t = bn_calloc((size_t)nc, sizeof *t);
        pt_extra *e = bn_calloc((size_t)nc, sizeof *e);
        if (!t || !e) {
            bn_free(t);
            bn_free(e);
            return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        }
        if (pt->tensors) memcpy(t, pt->tensors, (size_t)pt->n_tensors * sizeof *t);
        if (pt->extra) memcpy(e, pt->extra, (size_t)pt->n_tensors * sizeof *e);
        bn_free(pt->tensors);
        bn_free(pt->extra);
        pt->tensors = t;
        pt->extra = e;
        pt->cap = nc;
    }
    bn_pt_tensor *t = &pt->tensors[pt->n_tensors];
    pt_extra *e = &pt->extra[pt->n_tensors];
    const pv *st = &m->v[src->storage];
    pt->n_tensors++; /* from here on, close frees the slot's strings */
    if (!(t->name = bn_strdup(name)) || !(t->storage = bn_strdup(st->s)))
        return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    t->dtype = (bn_dtype)st->g;
    t->n_dims = src->n_dims;
    t->storage_offset = src->offset;
    memcpy(t->shape, src->shape, sizeof t->shape);
    memcpy(t->stride, src->stride, sizeof t->stride);
    const size_t es = bn_dtype_size(t->dtype);
    uint64_t numel = 1, last = 0, expect = 1, tmp, bytes;
    int contiguous = 1;
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (bn_mul_u64(numel, (uint64_t)t->shape[d], &numel)) goto overflow;
        if (t->shape[d] > 0) {
            if (bn_mul_u64((uint64_t)t->shape[d] - 1, (uint64_t)t->stride[d], &tmp) ||
                bn_add_u64(last, tmp, &last))
                goto overflow;
        }
        if (t->shape[d] != 1 && (uint64_t)t->stride[d] != expect) contiguous = 0;
        if (bn_mul_u64(expect, (uint64_t)t->shape[d], &expect)) goto overflow;
    }
    if (bn_mul_u64(numel, es, &bytes) || bytes > SIZE_MAX) goto overflow;
    t->numel = numel;
    t->size = (size_t)bytes;
    t->contiguous = contiguous;
    e->first = src->offset;
    e->span = numel ? last + 1 : 0;
    uint64_t end;
    if (bn_add_u64(e->first, e->span, &end) || (numel && end > (uint64_t)st->i))
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                "%.120s: elements [%llu, %llu) lie outside its storage of %lld",
                                name, (unsigned long long)e->first,
                                (unsigned long long)e->first + e->span, (long long)st->i);
    char ename[PKL_MAX_NAME * 2 + 16];
    snprintf(ename, sizeof ename, "%sdata/%s", pt->dir, st->s);
    e->entry = zip_name_locate(pt->za, ename, ZIP_FL_ENC_RAW);
    zip_stat_t zs;
    if (e->entry < 0 || zip_stat_index(pt->za, (zip_uint64_t)e->entry, 0, &zs) != 0)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%.120s: storage %.40s is missing (%.80s)",
                                name, st->s, ename);
    if (bn_mul_u64((uint64_t)st->i, es, &bytes) || zs.size != bytes)
        return bn_ctx_set_error(
                pt->ctx, BN_ERR_FORMAT,
                "%.120s: storage %.40s holds %llu bytes, %lld %s elements need %llu", name, st->s,
                (unsigned long long)zs.size, (long long)st->i, bn_dtype_name(t->dtype),
                (unsigned long long)bytes);
    if (zs.comp_method != ZIP_CM_STORE && zs.comp_method != ZIP_CM_DEFLATE)
        return bn_ctx_set_error(pt->ctx, BN_ERR_UNSUPPORTED,
                                "%.120s: storage compressed with method %d", name,
                                (int)zs.comp_method);
    return BN_OK;
overflow:
    return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%.120s: size arithmetic overflows", name);
}

/* Walks the result: tensors under dotted names, nested dicts flattened. */
static bn_status flatten(bn_torch *pt, vm *m, int32_t dict, char *prefix, size_t plen, int depth)
{
    if (depth > PKL_MAX_DEPTH)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: dicts nested too deep");
    const pv *d = &m->v[dict];
    for (int32_t i = 0; i + 1 < d->n; i += 2) {
        const pv *k = &m->v[d->items[i]], *v = &m->v[d->items[i + 1]];
        if (v->kind != V_TENSOR && v->kind != V_DICT) continue;
        if (k->kind != V_STR)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: a %s key maps to a tensor",
                                    bn__pkl_kind_name(m, d->items[i]));
        size_t kl = (size_t)k->i;
        if (plen + kl + 2 > 4096)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: tensor name too long");
        memcpy(prefix + plen, k->s, kl);
        prefix[plen + kl] = '\0';
        bn_status rc;
        if (v->kind == V_TENSOR) {
            rc = add_tensor(pt, m, prefix, &m->t[v->i]);
        } else {
            prefix[plen + kl] = '.';
            rc = flatten(pt, m, d->items[i + 1], prefix, plen + kl + 1, depth + 1);
        }
        if (rc != BN_OK) return rc;
    }
    return BN_OK;
}

static bn_status parse_pickle(bn_torch *pt, const uint8_t *p, size_t n)
{
    vm m = {.ctx = pt->ctx, .p = p, .n = n};
    int32_t res = 0;
    bn_status rc = bn__pkl_run(&m, &res);
    if (rc == BN_OK && m.v[res].kind != V_DICT)
        rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                              "pickle: the checkpoint holds a %s, not a dict of tensors",
                              bn__pkl_kind_name(&m, res));
    char *prefix = rc == BN_OK ? bn_malloc(4096) : NULL;
    if (rc == BN_OK && !prefix) rc = bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    if (rc == BN_OK) rc = flatten(pt, &m, res, prefix, 0, 0);
    bn_free(prefix);
    bn__pkl_release(&m);
    return rc;
}

static bn_status build_index(bn_torch *pt)
{
    pt->names = bn_malloc((size_t)(pt->n_tensors ? pt->n_tensors : 1) * sizeof *pt->names);
    if (!pt->names) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < pt->n_tensors; i++) pt->names[i] = pt->tensors[i].name;
    int64_t dup;
    bn_status rc = bn__name_index_build(&pt->index, pt->names, pt->n_tensors, &dup);
    if (rc == BN_ERR_FORMAT)
        return bn_ctx_set_error(pt->ctx, rc, "pickle: tensor name '%.120s' occurs twice",
                                pt->names[dup]);
    if (rc != BN_OK) return bn_ctx_set_error(pt->ctx, rc, "out of memory");
    return BN_OK;
}

static bn_status check_magic(bn_ctx *ctx, const uint8_t *p, size_t n)
{
    if (n >= 2 && p[0] == 0x80 && p[1] <= 5)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "legacy PyTorch format (saved before 1.6 or with "
                                "_use_new_zipfile_serialization=False): load and torch.save it "
                                "again");
    if (n > 262 && memcmp(p + 257, "ustar", 5) == 0)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "legacy PyTorch tar format");
    if (n < 4 || p[0] != 'P' || p[1] != 'K' || (p[2] != 3 && p[2] != 5))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "not a PyTorch checkpoint: not a zip archive");
    return BN_OK;
}

static bn_status open_archive(bn_torch *pt)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(pt->base, pt->size, 0, &ze);
    if (!src) {
        bn_status rc = zip_fail(pt, BN_ERR_NOMEM, &ze, "zip");
        zip_error_fini(&ze);
        return rc;
    }
    pt->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!pt->za) {
        zip_source_free(src);
        bn_status rc = zip_fail(pt, BN_ERR_FORMAT, &ze, "not a PyTorch checkpoint: zip archive");
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    return BN_OK;
}

static bn_status parse(bn_torch *pt)
{
    bn_status rc = check_magic(pt->ctx, pt->base, pt->size);
    if (rc == BN_OK) rc = open_archive(pt);
    zip_int64_t pk = -1;
    if (rc == BN_OK) rc = find_pickle(pt, &pk);
    if (rc == BN_OK) rc = check_byteorder(pt);
    uint8_t *pkl = NULL;
    size_t len = 0;
    if (rc == BN_OK) rc = read_entry(pt, pk, PKL_MAX_BYTES, &pkl, &len);
    if (rc == BN_OK) rc = parse_pickle(pt, pkl, len);
    bn_free(pkl);
    if (rc == BN_OK) rc = build_index(pt);
    return rc;
}

static bn_status open_bytes(bn_ctx *ctx, const void *data, size_t size, int mapped, bn_torch **out)
{
    bn_torch *pt = bn_calloc(1, sizeof *pt);
    if (!pt) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    pt->ctx = ctx;
    pt->base = data;
    pt->size = size;
    bn_status rc = parse(pt);
    if (rc != BN_OK) {
        bn_torch_close(pt);
        return rc;
    }
    pt->mapped = mapped;
    *out = pt;
    return BN_OK;
}

bn_status bn_torch_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_torch **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    return open_bytes(ctx, size ? data : "", size, 0, out);
}

bn_status bn_torch_open(bn_ctx *ctx, const char *path, bn_torch **out)
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

void bn_torch_close(bn_torch *pt)
{
    if (!pt) return;
    if (pt->za) zip_discard(pt->za);
    for (int64_t i = 0; i < pt->n_tensors; i++) {
        bn_free((void *)pt->tensors[i].name);
        bn_free((void *)pt->tensors[i].storage);
    }
    bn_free(pt->tensors);
    bn_free(pt->extra);
    bn_free(pt->names);
    bn_free(pt->dir);
    bn__name_index_release(&pt->index);
    if (pt->mapped) bn__unmap(pt->base, pt->size);
    bn_free(pt);
}

int64_t bn_torch_n_tensors(const bn_torch *pt)
{
    return pt->n_tensors;
}

const bn_pt_tensor *bn_torch_tensor_at(const bn_torch *pt, int64_t i)
{
    return i >= 0 && i < pt->n_tensors ? &pt->tensors[i] : NULL;
}

const bn_pt_tensor *bn_torch_find(const bn_torch *pt, const char *name)
{
    int64_t i = bn__name_index_find(&pt->index, name);
    return i >= 0 ? &pt->tensors[i] : NULL;
}

/* Reads len bytes at byte offset off of an entry into dst. */
static bn_status read_span(bn_torch *pt, const bn_pt_tensor *t, zip_int64_t entry, uint64_t off,
                           uint8_t *dst, size_t len)
{
    zip_stat_t zs;
    if (zip_stat_index(pt->za, (zip_uint64_t)entry, 0, &zs) != 0)
        return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), t->name);
    zip_file_t *f = zip_fopen_index(pt->za, (zip_uint64_t)entry, 0);
    if (!f) return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), t->name);
    bn_status rc = BN_OK;
    if (off > 0 && zs.comp_method == ZIP_CM_STORE) {
        if (zip_fseek(f, (zip_int64_t)off, SEEK_SET) != 0)
            rc = zip_fail(pt, BN_ERR_FORMAT, zip_file_get_error(f), t->name);
    } else {
        uint8_t scratch[4096]; /* deflated: read up to the offset */
        for (uint64_t left = off; left > 0 && rc == BN_OK;) {
            size_t k = left < sizeof scratch ? (size_t)left : sizeof scratch;
            zip_int64_t got = zip_fread(f, scratch, k);
            if (got <= 0)
                rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: short read", t->name);
            else
                left -= (uint64_t)got;
        }
    }
    for (size_t done = 0; rc == BN_OK && done < len;) {
        zip_int64_t got = zip_fread(f, dst + done, len - done);
        if (got <= 0)
            rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: %s", t->name,
                                  got < 0 ? zip_error_strerror(zip_file_get_error(f))
                                          : "short read");
        else
            done += (size_t)got;
    }
    zip_fclose(f);
    return rc;
}

/* Copies a strided view out of the span that holds it. */
static void gather(const bn_pt_tensor *t, const uint8_t *span, uint8_t *dst, size_t es)
{
    int64_t idx[BN_PT_MAX_DIMS] = {0};
    for (uint64_t k = 0; k < t->numel; k++) {
        uint64_t off = 0;
        for (int d = 0; d < t->n_dims; d++) off += (uint64_t)idx[d] * (uint64_t)t->stride[d];
        memcpy(dst + k * es, span + off * es, es);
        for (int d = t->n_dims - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

bn_status bn_torch_read(bn_torch *pt, const bn_pt_tensor *t, void *dst)
{
    BN_ASSERT(pt && t && dst && t >= pt->tensors && t < pt->tensors + pt->n_tensors);
    const pt_extra *e = &pt->extra[t - pt->tensors];
    if (t->numel == 0) return BN_OK;
    const size_t es = bn_dtype_size(t->dtype);
    const uint64_t off = e->first * es; /* fits: checked against the entry's size on open */
    bn_status rc;
    if (t->contiguous) {
        rc = read_span(pt, t, e->entry, off, dst, t->size);
    } else {
        size_t span = (size_t)(e->span * es);
        uint8_t *tmp = bn_malloc(span);
        if (!tmp) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        rc = read_span(pt, t, e->entry, off, tmp, span);
        if (rc == BN_OK) gather(t, tmp, dst, es);
        bn_free(tmp);
    }
    /* the copy is made: the mapping's pages go (libzip reads the entry, and the central
     * directory again next time, from the file), so RSS stays near one tensor, not the file */
    if (pt->mapped) bn__release_pages(pt->base, pt->size);
    return rc;
}
