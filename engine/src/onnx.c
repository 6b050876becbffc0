/*
 * onnx.c - ONNX reader: libprotobuf-c decodes the ModelProto (onnx.proto compiled by
 * protoc-c at build time); this file validates the initializers and reads their data,
 * inline or from external files kept inside the model's directory.
 */
#include "bitnet/onnx.h"
#include "bitnet/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "pb_internal.h"
#include "onnx.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx.c assumes a little-endian host"
#endif

typedef Onnx__TensorProto tproto;

typedef struct ox_extra {
    const tproto *tp; /* the decoded tensor (owned by the model) */
} ox_extra;

struct bn_onnx {
    bn_ctx *ctx;
    Onnx__ModelProto *model;
    char *dir;      /* real path of the directory external data is relative to, or NULL */
    int64_t n, cap; /* tensors */
    bn_onnx_tensor *tensors;
    ox_extra *extra;
    const char **names;
    bn__name_index index;
    int64_t n_nodes, opset;
};

/* ---- data types ----------------------------------------------------------------------- */

/* TensorProto.DataType -> bn_dtype (BN_DTYPE_COUNT_: not readable here). */
static bn_dtype map_type(int t)
{
    switch (t) {
    case 1:
        return BN_DTYPE_F32;
    case 2:
        return BN_DTYPE_U8;
    case 3:
        return BN_DTYPE_I8;
    case 4:
        return BN_DTYPE_U16;
    case 5:
        return BN_DTYPE_I16;
    case 6:
        return BN_DTYPE_I32;
    case 7:
        return BN_DTYPE_I64;
    case 9:
        return BN_DTYPE_BOOL;
    case 10:
        return BN_DTYPE_F16;
    case 11:
        return BN_DTYPE_F64;
    case 12:
        return BN_DTYPE_U32;
    case 13:
        return BN_DTYPE_U64;
    case 16:
        return BN_DTYPE_BF16;
    case 17:
        return BN_DTYPE_F8_E4M3;
    case 19:
        return BN_DTYPE_F8_E5M2;
    default:
        return BN_DTYPE_COUNT_;
    }
}

/* The typed field a data type's values live in: 'f' float_data, 'i' int32_data,
 * 'l' int64_data, 'd' double_data, 'u' uint64_data, 0 none we read. */
static char typed_field(bn_dtype d)
{
    switch (d) {
    case BN_DTYPE_F32:
        return 'f';
    case BN_DTYPE_I64:
        return 'l';
    case BN_DTYPE_F64:
        return 'd';
    case BN_DTYPE_U32:
    case BN_DTYPE_U64:
        return 'u';
    case BN_DTYPE_COUNT_:
        return 0;
    default:
        return 'i';
    }
}

/* How many values each typed field holds (the one in use, and how many are set). */
static int count_typed(const tproto *tp, char *which, size_t *n)
{
    int k = 0;
    *which = 0;
    *n = 0;
    const struct {
        char c;
        size_t n;
    } f[] = {{'f', tp->n_float_data},  {'i', tp->n_int32_data},  {'l', tp->n_int64_data},
             {'d', tp->n_double_data}, {'u', tp->n_uint64_data}, {'s', tp->n_string_data}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].n) {
            k++;
            *which = f[i].c;
            *n = f[i].n;
        }
    }
    return k;
}

/* ---- external data --------------------------------------------------------------------- */

static int parse_dec(const char *s, uint64_t *out)
{
    if (!s || !*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        if (bn_mul_u64(v, 10, &v) || bn_add_u64(v, (uint64_t)(*s - '0'), &v)) return -1;
    }
    *out = v;
    return 0;
}

/* Resolves location inside ox->dir; *out gets a bn_malloc'd real path. */
static bn_status resolve_location(bn_onnx *ox, const char *tname, const char *loc, char **out,
                                  uint64_t *fsize)
{
    *out = NULL;
    if (!ox->dir)
        return bn_ctx_set_error(ox->ctx, BN_ERR_UNSUPPORTED,
                                "onnx: %.120s: external data, and no model directory to read it",
                                tname);
    if (!loc || !*loc || loc[0] == '/')
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external data location '%.120s' is not a relative "
                                "path",
                                tname, loc ? loc : "");
    size_t dl = strlen(ox->dir), ll = strlen(loc);
    char *joined = bn_malloc(dl + ll + 2);
    if (!joined) return bn_ctx_set_error(ox->ctx, BN_ERR_NOMEM, "out of memory");
    memcpy(joined, ox->dir, dl);
    joined[dl] = '/';
    memcpy(joined + dl + 1, loc, ll + 1);
    char *real = realpath(joined, NULL);
    int e = errno;
    bn_free(joined);
    if (!real)
        return bn_ctx_set_error(ox->ctx, BN_ERR_IO, "onnx: %.120s: external data '%.120s': %s",
                                tname, loc, strerror(e));
    bn_status rc = BN_OK;
    struct stat st;
    if (strncmp(real, ox->dir, dl) != 0 || (real[dl] != '/' && strcmp(ox->dir, "/") != 0))
        rc = bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                              "onnx: %.120s: external data '%.120s' lies outside the model's "
                              "directory",
                              tname, loc);
    else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        rc = bn_ctx_set_error(ox->ctx, BN_ERR_IO,
                              "onnx: %.120s: external data '%.120s' is not a regular file", tname,
                              loc);
    else if (!(*out = bn_strdup(real)))
        rc = bn_ctx_set_error(ox->ctx, BN_ERR_NOMEM, "out of memory");
    if (rc == BN_OK) *fsize = (uint64_t)st.st_size;
    free(real);
    return rc;
}

static bn_status check_external(bn_onnx *ox, const tproto *tp, bn_onnx_tensor *t)
{
    const char *loc = NULL, *off = NULL, *len = NULL;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = tp->external_data[i];
        const char *k = kv->key ? kv->key : "", *v = kv->value ? kv->value : "";
        const char **slot = strcmp(k, "location") == 0 ? &loc
                            : strcmp(k, "offset") == 0 ? &off
                            : strcmp(k, "length") == 0 ? &len
                                                       : NULL;
        if (strcmp(k, "checksum") == 0) continue;
        if (!slot)
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                    "onnx: %.120s: unknown external data key '%.40s'", t->name, k);
        if (*slot)
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                    "onnx: %.120s: external data key '%s' given twice", t->name, k);
        *slot = v;
    }
    if (!loc)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external data without a "
                                "location",
                                t->name);
    uint64_t o = 0, l = t->size, fsize = 0;
    if ((off && parse_dec(off, &o)) || (len && parse_dec(len, &l)))
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external data offset/length is not a decimal "
                                "number",
                                t->name);
    if (l != t->size)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external data length %llu, the shape needs %zu",
                                t->name, (unsigned long long)l, t->size);
    char *path;
    bn_status rc = resolve_location(ox, t->name, loc, &path, &fsize);
    if (rc != BN_OK) return rc;
    t->location = path;
    t->ext_offset = o;
    uint64_t end;
    if (bn_add_u64(o, l, &end) || end > fsize)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external data [%llu, +%llu) is outside '%.120s' "
                                "(%llu bytes)",
                                t->name, (unsigned long long)o, (unsigned long long)l, loc,
                                (unsigned long long)fsize);
    return BN_OK;
}

/* ---- tensors ----------------------------------------------------------------------------- */

static bn_status check_data(bn_onnx *ox, const tproto *tp, bn_onnx_tensor *t)
{
    char which;
    size_t nt;
    int n_typed = count_typed(tp, &which, &nt);
    const int ext = tp->has_data_location &&
                    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (n_typed + (tp->has_raw_data ? 1 : 0) + ext > 1)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: more than one data field is set", t->name);
    if (ext) {
        t->source = BN_ONNX_SRC_EXTERNAL;
        if (t->dtype == BN_DTYPE_COUNT_) return BN_OK; /* listed, not readable */
        return check_external(ox, tp, t);
    }
    if (tp->n_external_data)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: external_data without data_location EXTERNAL",
                                t->name);
    if (tp->has_raw_data) {
        t->source = BN_ONNX_SRC_RAW;
        if (t->dtype != BN_DTYPE_COUNT_ && tp->raw_data.len != t->size)
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                    "onnx: %.120s: raw_data holds %zu bytes, the shape needs %zu",
                                    t->name, tp->raw_data.len, t->size);
        return BN_OK;
    }
    if (n_typed == 0) {
        if (t->numel != 0 && t->dtype != BN_DTYPE_COUNT_)
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: %.120s: no data", t->name);
        return BN_OK;
    }
    t->source = BN_ONNX_SRC_TYPED;
    if (t->dtype == BN_DTYPE_COUNT_) return BN_OK;
    if (which != typed_field(t->dtype))
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: values in the wrong typed field for data type %d",
                                t->name, t->onnx_type);
    if (nt != t->numel)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                "onnx: %.120s: %zu values, the shape needs %llu", t->name, nt,
                                (unsigned long long)t->numel);
    return BN_OK;
}

static bn_status add_tensor(bn_onnx *ox, const tproto *tp, const char *name)
{
    if (!name || !*name)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: a tensor without a name");
    if (ox->n == ox->cap) {
        int64_t nc = ox->cap ? ox->cap * 2 : 64;
        bn_onnx_tensor *t = bn_calloc((size_t)nc, sizeof *t);
        ox_extra *e = bn_calloc((size_t)nc, sizeof *e);
        if (!t || !e) {
            bn_free(t);
            bn_free(e);
            return bn_ctx_set_error(ox->ctx, BN_ERR_NOMEM, "out of memory");
        }
        if (ox->n) {
            memcpy(t, ox->tensors, (size_t)ox->n * sizeof *t);
            memcpy(e, ox->extra, (size_t)ox->n * sizeof *e);
        }
        bn_free(ox->tensors);
        bn_free(ox->extra);
        ox->tensors = t;
        ox->extra = e;
        ox->cap = nc;
    }
    bn_onnx_tensor *t = &ox->tensors[ox->n];
    ox->extra[ox->n++].tp = tp;
    t->name = name;
    if (tp->segment)
        return bn_ctx_set_error(ox->ctx, BN_ERR_UNSUPPORTED, "onnx: %.120s: segmented tensor",
                                name);
    if (!tp->has_data_type || tp->data_type == 0)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: %.120s: no data_type", name);
    t->onnx_type = tp->data_type;
    t->dtype = map_type(tp->data_type);
    if (tp->n_dims > BN_ONNX_MAX_DIMS)
        return bn_ctx_set_error(ox->ctx, BN_ERR_UNSUPPORTED, "onnx: %.120s: %zu dimensions", name,
                                tp->n_dims);
    t->n_dims = (int)tp->n_dims;
    uint64_t numel = 1, bytes;
    for (int d = 0; d < t->n_dims; d++) {
        if (tp->dims[d] < 0)
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: %.120s: negative dimension",
                                    name);
        t->shape[d] = tp->dims[d];
        if (bn_mul_u64(numel, (uint64_t)tp->dims[d], &numel))
            return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT,
                                    "onnx: %.120s: element count "
                                    "overflows",
                                    name);
    }
    if (bn_mul_u64(numel, bn_dtype_size(t->dtype), &bytes) || bytes > SIZE_MAX / 2)
        return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: %.120s: byte size overflows", name);
    t->numel = numel;
    t->size = (size_t)bytes;
    return check_data(ox, tp, t);
}

static bn_status collect(bn_onnx *ox)
{
    const Onnx__GraphProto *g = ox->model->graph;
    if (!g) return bn_ctx_set_error(ox->ctx, BN_ERR_FORMAT, "onnx: the model has no graph");
    bn_status rc = BN_OK;
    for (size_t i = 0; rc == BN_OK && i < g->n_initializer; i++)
        rc = add_tensor(ox, g->initializer[i], g->initializer[i]->name);
    ox->n_nodes = (int64_t)g->n_node;
    for (size_t i = 0; rc == BN_OK && i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        if (!nd->op_type || strcmp(nd->op_type, "Constant") != 0 || nd->n_output != 1) continue;
        for (size_t a = 0; rc == BN_OK && a < nd->n_attribute; a++) {
            const Onnx__AttributeProto *at = nd->attribute[a];
            if (at->name && strcmp(at->name, "value") == 0 && at->t)
                rc = add_tensor(ox, at->t, nd->output[0]);
        }
    }
    for (size_t i = 0; i < ox->model->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *op = ox->model->opset_import[i];
        if ((!op->domain || !*op->domain || strcmp(op->domain, "ai.onnx") == 0) &&
            op->has_version && op->version > ox->opset)
            ox->opset = op->version;
    }
    if (rc != BN_OK) return rc;
    ox->names = bn_malloc((size_t)(ox->n ? ox->n : 1) * sizeof *ox->names);
    if (!ox->names) return bn_ctx_set_error(ox->ctx, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < ox->n; i++) ox->names[i] = ox->tensors[i].name;
    int64_t dup;
    rc = bn__name_index_build(&ox->index, ox->names, ox->n, &dup);
    if (rc == BN_ERR_FORMAT)
        return bn_ctx_set_error(ox->ctx, rc, "onnx: tensor '%.120s' is defined twice",
                                ox->names[dup]);
    if (rc != BN_OK) return bn_ctx_set_error(ox->ctx, rc, "out of memory");
    return BN_OK;
}

/* ---- a nesting guard --------------------------------------------------------------------
 * libprotobuf-c decodes nested messages by recursion without a depth limit, so a few hundred
 * kilobytes of nested GraphProto/NodeProto/AttributeProto would overflow the stack. Before
 * decoding, this walks the wire format with the generated descriptors (each byte once) and
 * refuses messages nested deeper than ONNX_MAX_DEPTH. Anything malformed is left for
 * protobuf-c to reject. */

#define ONNX_MAX_DEPTH 64

static int pb_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *pos < n; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* 0 when a message nests deeper than the limit; 1 otherwise (also when malformed). */
static int pb_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth)
{
    if (depth > ONNX_MAX_DEPTH) return 0;
    size_t pos = 0;
    uint64_t key, len;
    while (pos < n) {
        if (!pb_varint(p, n, &pos, &key)) return 1;
        switch (key & 7) {
        case 0:
            if (!pb_varint(p, n, &pos, &len)) return 1;
            break;
        case 1:
            if (n - pos < 8) return 1;
            pos += 8;
            break;
        case 5:
            if (n - pos < 4) return 1;
            pos += 4;
            break;
        case 2: {
            if (!pb_varint(p, n, &pos, &len) || len > n - pos) return 1;
            const ProtobufCFieldDescriptor *f =
                    key >> 3 <= UINT32_MAX
                            ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                            : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !pb_depth_ok(f->descriptor, p + pos, (size_t)len, depth + 1))
                return 0;
            pos += (size_t)len;
            break;
        }
        default:
            return 1;
        }
    }
    return 1;
}

/* ---- opening --------------------------------------------------------------------------- */

static bn_status set_dir(bn_onnx *ox, const char *dir)
{
    if (!dir) return BN_OK;
    char *real = realpath(dir, NULL);
    if (!real)
        return bn_ctx_set_error(ox->ctx, BN_ERR_IO, "onnx: model directory '%.200s': %s", dir,
                                strerror(errno));
    ox->dir = bn_strdup(real);
    free(real);
    return ox->dir ? BN_OK : bn_ctx_set_error(ox->ctx, BN_ERR_NOMEM, "out of memory");
}

bn_status bn_onnx_open_memory(bn_ctx *ctx, const void *data, size_t size, const char *dir,
                              bn_onnx **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    bn_onnx *ox = bn_calloc(1, sizeof *ox);
    if (!ox) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    ox->ctx = ctx;
    bn_status rc = set_dir(ox, dir);
    if (rc == BN_OK &&
        !pb_depth_ok(&onnx__model_proto__descriptor, size ? data : (const void *)"", size, 0))
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "onnx: messages nested more than %d deep",
                              ONNX_MAX_DEPTH);
    if (rc == BN_OK) {
        ox->model = onnx__model_proto__unpack(&bn__pb_allocator, size, size ? data : (const void *)"");
        if (!ox->model)
            rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                  "onnx: not a valid ONNX model (the protobuf does not decode as "
                                  "a ModelProto: wrong wire type, bad length or truncated)");
    }
    if (rc == BN_OK) rc = collect(ox);
    if (rc != BN_OK) {
        bn_onnx_close(ox);
        return rc;
    }
    *out = ox;
    return BN_OK;
}

bn_status bn_onnx_open(bn_ctx *ctx, const char *path, bn_onnx **out)
{
    BN_ASSERT(out && path);
    *out = NULL;
    const void *p;
    size_t size;
    bn_status rc = bn__map_file(ctx, path, &p, &size);
    if (rc != BN_OK) return rc;
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        if ((dir = bn_malloc(dl + 1))) {
            memcpy(dir, path, dl);
            dir[dl] = '\0';
        }
    } else {
        dir = bn_strdup(".");
    }
    if (!dir)
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    else
        rc = bn_onnx_open_memory(ctx, p, size, dir, out);
    bn_free(dir);
    bn__unmap(p, size);
    return rc;
}

void bn_onnx_close(bn_onnx *ox)
{
    if (!ox) return;
    for (int64_t i = 0; i < ox->n; i++) bn_free((void *)ox->tensors[i].location);
    if (ox->model) onnx__model_proto__free_unpacked(ox->model, &bn__pb_allocator);
    bn_free(ox->tensors);
    bn_free(ox->extra);
    bn_free(ox->names);
    bn_free(ox->dir);
    bn__name_index_release(&ox->index);
    bn_free(ox);
}

int64_t bn_onnx_n_tensors(const bn_onnx *ox)
{
    return ox->n;
}

const bn_onnx_tensor *bn_onnx_tensor_at(const bn_onnx *ox, int64_t i)
{
    return i >= 0 && i < ox->n ? &ox->tensors[i] : NULL;
}

const bn_onnx_tensor *bn_onnx_find(const bn_onnx *ox, const char *name)
{
    int64_t i = bn__name_index_find(&ox->index, name);
    return i >= 0 ? &ox->tensors[i] : NULL;
}

int64_t bn_onnx_ir_version(const bn_onnx *ox)
{
    return ox->model->has_ir_version ? ox->model->ir_version : 0;
}

const char *bn_onnx_producer(const bn_onnx *ox)
{
    return ox->model->producer_name ? ox->model->producer_name : "";
}

int64_t bn_onnx_n_nodes(const bn_onnx *ox)
{
    return ox->n_nodes;
}

int64_t bn_onnx_opset(const bn_onnx *ox)
{
    return ox->opset;
}

bn_status bn_onnx_node_at(const bn_onnx *ox, int64_t i, bn_onnx_node *out)
{
    if (i < 0 || i >= ox->n_nodes) return BN_ERR_RANGE;
    const Onnx__NodeProto *nd = ox->model->graph->node[i];
    out->op_type = nd->op_type ? nd->op_type : "";
    out->name = nd->name ? nd->name : "";
    out->n_inputs = nd->n_input;
    out->n_outputs = nd->n_output;
    out->inputs = (const char *const *)nd->input;
    out->outputs = (const char *const *)nd->output;
    return BN_OK;
}

const char *bn_onnx_node_meta(const bn_onnx *ox, int64_t i, const char *key)
{
    if (i < 0 || i >= ox->n_nodes) return NULL;
    const Onnx__NodeProto *nd = ox->model->graph->node[i];
    for (size_t k = 0; k < nd->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *kv = nd->metadata_props[k];
        if (kv->key && kv->value && strcmp(kv->key, key) == 0) return kv->value;
    }
    return NULL;
}

/* ---- reading ------------------------------------------------------------------------------ */

static void read_typed(const tproto *tp, const bn_onnx_tensor *t, uint8_t *dst)
{
    const size_t es = bn_dtype_size(t->dtype);
    for (uint64_t i = 0; i < t->numel; i++) {
        uint8_t *o = dst + i * es;
        switch (typed_field(t->dtype)) {
        case 'f':
            memcpy(o, &tp->float_data[i], 4);
            break;
        case 'l':
            memcpy(o, &tp->int64_data[i], 8);
            break;
        case 'd':
            memcpy(o, &tp->double_data[i], 8);
            break;
        case 'u':
            memcpy(o, &tp->uint64_data[i], es);
            break; /* low bytes (little-endian) */
        default: {
            uint32_t v = (uint32_t)tp->int32_data[i];
            memcpy(o, &v, es);
        }
        }
    }
}

static bn_status read_external(bn_onnx *ox, const bn_onnx_tensor *t, uint8_t *dst)
{
    char why[512];
    int fd = bn_file_open_read(t->location, why, sizeof why); /* never waits on a FIFO */
    if (fd < 0) return bn_ctx_set_error(ox->ctx, BN_ERR_IO, "onnx: %.120s: %s", t->name, why);
    bn_status rc = BN_OK;
    for (size_t done = 0; done < t->size;) {
        ssize_t k = pread(fd, dst + done, t->size - done, (off_t)(t->ext_offset + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            rc = bn_ctx_set_error(ox->ctx, k < 0 ? BN_ERR_IO : BN_ERR_FORMAT,
                                  "onnx: %.120s: %s: %s", t->name, t->location,
                                  k < 0 ? strerror(errno) : "file shorter than when opened");
            break;
        }
        done += (size_t)k;
    }
    close(fd);
    return rc;
}

bn_status bn_onnx_read(bn_onnx *ox, const bn_onnx_tensor *t, void *dst)
{
    BN_ASSERT(ox && t && t >= ox->tensors && t < ox->tensors + ox->n);
    const tproto *tp = ox->extra[t - ox->tensors].tp;
    if (t->dtype == BN_DTYPE_COUNT_)
        return bn_ctx_set_error(ox->ctx, BN_ERR_UNSUPPORTED,
                                "onnx: %.120s: data type %d is not supported", t->name,
                                t->onnx_type);
    switch (t->source) {
    case BN_ONNX_SRC_NONE:
        return BN_OK;
    case BN_ONNX_SRC_RAW:
        if (t->size) memcpy(dst, tp->raw_data.data, t->size);
        return BN_OK;
    case BN_ONNX_SRC_TYPED:
        read_typed(tp, t, dst);
        return BN_OK;
    case BN_ONNX_SRC_EXTERNAL:
        return read_external(ox, t, dst);
    }
    return BN_ERR_INTERNAL;
}
