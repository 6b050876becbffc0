/*
 * bitnet/onnx.h - ONNX model reader: the initializers (weights) of a model's graph, with
 * their data inline (raw_data or the typed fields) or in external data files.
 *
 * Usage:
 *
 *     bn_onnx *ox;
 *     if (bn_onnx_open(ctx, "model.onnx", &ox) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // one line naming the problem
 *         return 1;
 *     }
 *     for (int64_t i = 0; i < bn_onnx_n_tensors(ox); i++) {
 *         const bn_onnx_tensor *t = bn_onnx_tensor_at(ox, i);
 *         void *raw = bn_malloc(t->size);
 *         if (bn_onnx_read(ox, t, raw) == BN_OK)          // little-endian t->dtype elements
 *             bn_dtype_to_f32(t->dtype, raw, t->numel, x);
 *         bn_free(raw);
 *     }
 *     bn_onnx_close(ox);
 *
 * The protobuf is decoded by libprotobuf-c with onnx.proto compiled at build time
 * (engine/proto/onnx.proto); its allocations go through bn_malloc. A decoding failure
 * (wrong wire type, truncated field, bad length) is BN_ERR_FORMAT. The file is mapped and
 * decoded once; inline tensor data is held in the decoded message (so a model with inline
 * weights costs its size in memory once more), external data is read on demand.
 *
 * Tensors: graph.initializer, then the "value" tensor of every Constant node (named by the
 * node's output). Validation on open: a graph is present; names are non-empty and unique;
 * data_type is set; at most BN_ONNX_MAX_DIMS dims, none negative; checked element counts;
 * exactly one data source whose size matches the shape (raw_data bytes, or the typed field
 * the data type prescribes, or external data); segments are refused. External data:
 * "location" (required) must be a relative path that stays inside the model's directory
 * after resolving symbolic links, "offset" and "length" are decimal strings, the range
 * [offset, offset + length) must lie inside the file and length must equal the tensor's
 * bytes; "checksum" is accepted and not verified; other keys are refused. Tensors whose type
 * bitnet cannot convert (strings, complex, 4-bit, ...) are listed with dtype
 * BN_DTYPE_COUNT_ and refused by bn_onnx_read. Never a crash, whatever the bytes.
 *
 * Ownership: the reader owns every record and name it returns until bn_onnx_close. One
 * thread at a time.
 */
#ifndef BITNET_ONNX_H
#define BITNET_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/safetensors.h" /* bn_dtype */

#ifdef __cplusplus
extern "C" {
#endif

#define BN_ONNX_MAX_DIMS 8

typedef enum bn_onnx_source {
    BN_ONNX_SRC_NONE = 0,     /* no elements */
    BN_ONNX_SRC_RAW = 1,      /* raw_data */
    BN_ONNX_SRC_TYPED = 2,    /* float_data, int32_data, int64_data, double_data, uint64_data */
    BN_ONNX_SRC_EXTERNAL = 3, /* a file next to the model */
} bn_onnx_source;

typedef struct bn_onnx_tensor {
    const char *name;
    int onnx_type;  /* TensorProto.DataType (1 FLOAT, 10 FLOAT16, 16 BFLOAT16, ...) */
    bn_dtype dtype; /* BN_DTYPE_COUNT_ when bitnet cannot read this type */
    int n_dims;
    int64_t shape[BN_ONNX_MAX_DIMS]; /* outermost first */
    uint64_t numel;
    size_t size; /* numel * bn_dtype_size(dtype): the bytes bn_onnx_read writes */
    bn_onnx_source source;
    const char *location; /* BN_ONNX_SRC_EXTERNAL: the resolved path */
    uint64_t ext_offset;  /* byte offset in that file */
} bn_onnx_tensor;

typedef struct bn_onnx bn_onnx;

/* External data is looked up in the directory of path. */
bn_status bn_onnx_open(bn_ctx *ctx, const char *path, bn_onnx **out);
/* A model held in memory (copied while decoding; data may be freed afterwards). dir is
 * the directory external data is relative to; NULL refuses tensors with external data. */
bn_status bn_onnx_open_memory(bn_ctx *ctx, const void *data, size_t size, const char *dir,
                              bn_onnx **out);
void bn_onnx_close(bn_onnx *ox); /* NULL is fine */

int64_t bn_onnx_n_tensors(const bn_onnx *ox);
const bn_onnx_tensor *bn_onnx_tensor_at(const bn_onnx *ox, int64_t i);
const bn_onnx_tensor *bn_onnx_find(const bn_onnx *ox, const char *name);

/* Model facts: ir_version, the producer's name ("" when unset), node count, and the
 * highest opset version imported for the default domain (0 when none). */
int64_t bn_onnx_ir_version(const bn_onnx *ox);
const char *bn_onnx_producer(const bn_onnx *ox);
int64_t bn_onnx_n_nodes(const bn_onnx *ox);
int64_t bn_onnx_opset(const bn_onnx *ox);

/* ---- the graph's nodes (to map exported weights back to module names) ------------- */

typedef struct bn_onnx_node {
    const char *op_type; /* "MatMul", "Gather", ... ("" when unset) */
    const char *name;    /* "" when unset; the TorchScript exporter writes
                            "/model/layers.0/self_attn/q_proj/MatMul" */
    size_t n_inputs, n_outputs;
    const char *const *inputs;
    const char *const *outputs;
} bn_onnx_node;

/* Node i of the graph, in order (BN_ERR_RANGE when i is out of range). */
bn_status bn_onnx_node_at(const bn_onnx *ox, int64_t i, bn_onnx_node *out);
/* The value of node i's metadata_props entry key (the dynamo exporter writes
 * "pkg.torch.onnx.name_scopes"), or NULL. */
const char *bn_onnx_node_meta(const bn_onnx *ox, int64_t i, const char *key);

/* Copies the tensor's t->size bytes (little-endian t->dtype elements, row-major) into dst.
 * BN_ERR_UNSUPPORTED for a type bitnet cannot read; BN_ERR_IO / BN_ERR_FORMAT for external
 * data that cannot be read (changed since open). Messages on the reader's ctx. */
bn_status bn_onnx_read(bn_onnx *ox, const bn_onnx_tensor *t, void *dst);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_ONNX_H */
