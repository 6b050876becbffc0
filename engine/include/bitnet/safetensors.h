/*
 * bitnet/safetensors.h - SafeTensors reader (strict, mmapped), and the element types of
 * checkpoint files that the three checkpoint readers (this one, torchzip.h, onnx.h) share.
 *
 * Usage:
 *
 *     bn_safetensors *st;
 *     if (bn_safetensors_open(ctx, "model.safetensors", &st) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // one line naming the problem
 *         return 1;
 *     }
 *     const bn_st_tensor *t = bn_safetensors_find(st, "model.norm.weight");
 *     float *x = bn_malloc(t->numel * sizeof(float));
 *     bn_dtype_to_f32(t->dtype, t->data, t->numel, x);   // any float or integer dtype
 *     const char *fmt = bn_safetensors_meta(st, "format");   // __metadata__, or NULL
 *     bn_free(x);
 *     bn_safetensors_close(st);
 *
 * The file: a u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data; offsets are relative to the byte
 * after the header.
 *
 * Validation on open, as the reference implementation (huggingface/safetensors) does it and
 * a little more: N at most 100 MB (BN_ST_MAX_HEADER) and inside the file; the header is
 * UTF-8 JSON parsed by a strict parser (no duplicate keys, no unknown keys in a tensor entry,
 * integers only for shapes and offsets, nothing but spaces after the closing brace);
 * __metadata__ maps strings to strings; known dtype names only (an unknown one is
 * BN_ERR_UNSUPPORTED naming it); at most BN_ST_MAX_DIMS dimensions; end - begin equals
 * the element count times the dtype's size (checked arithmetic); sorted by offset, the
 * tensors must tile the data section exactly: the first begins at 0, each begins where
 * the previous ends (so no overlap and no gap) and the last ends at the end of the file.
 * Errors are BN_ERR_FORMAT (BN_ERR_RANGE for the header size) with a one-line message on
 * ctx naming the tensor and the problem. Never a crash, whatever the bytes.
 *
 * Ownership: the reader owns every name and string it returns; they live until
 * bn_safetensors_close. Tensor data points into the read-only mapping (or into the
 * caller's buffer for bn_safetensors_open_memory, which must outlive the reader); it has
 * no particular alignment.
 */
#ifndef BITNET_SAFETENSORS_H
#define BITNET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of checkpoint files. Values are stable and only grow. */
typedef enum bn_dtype {
    BN_DTYPE_BOOL = 0,
    BN_DTYPE_U8 = 1,
    BN_DTYPE_I8 = 2,
    BN_DTYPE_I16 = 3,
    BN_DTYPE_U16 = 4,
    BN_DTYPE_F16 = 5,
    BN_DTYPE_BF16 = 6,
    BN_DTYPE_I32 = 7,
    BN_DTYPE_U32 = 8,
    BN_DTYPE_F32 = 9,
    BN_DTYPE_F64 = 10,
    BN_DTYPE_I64 = 11,
    BN_DTYPE_U64 = 12,
    BN_DTYPE_F8_E5M2 = 13,
    BN_DTYPE_F8_E4M3 = 14,
    BN_DTYPE_COUNT_ /* keep last */
} bn_dtype;

/* "F32", "BF16", ... (SafeTensors spelling); "unknown" for a bad value. */
const char *bn_dtype_name(int dtype);
/* Bytes per element (0 for a bad value). */
size_t bn_dtype_size(int dtype);
/* Parses a SafeTensors dtype name; -1 when unknown. */
int bn_dtype_from_name(const char *name);
/* Converts n little-endian elements at src (any alignment) to f32. Every dtype converts
 * (booleans to 0/1, integers rounded to the nearest float, F8 as OCP's E5M2/E4M3FN).
 * BN_ERR_INVALID for a bad dtype. */
bn_status bn_dtype_to_f32(int dtype, const void *src, size_t n, float *dst);

#define BN_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* bytes, as the reference */
#define BN_ST_MAX_DIMS   8

typedef struct bn_st_tensor {
    const char *name;
    bn_dtype dtype;
    int n_dims;                    /* 0 for a scalar */
    int64_t shape[BN_ST_MAX_DIMS]; /* outermost first, as written */
    uint64_t numel;                /* product of the shape (1 for a scalar) */
    uint64_t offset;               /* file offset of the first byte */
    size_t size;                   /* bytes */
    const void *data;
} bn_st_tensor;

typedef struct bn_safetensors bn_safetensors;

bn_status bn_safetensors_open(bn_ctx *ctx, const char *path, bn_safetensors **out);
/* Parses a file held in memory (data must outlive the reader). */
bn_status bn_safetensors_open_memory(bn_ctx *ctx, const void *data, size_t size,
                                     bn_safetensors **out);
void bn_safetensors_close(bn_safetensors *st); /* NULL is fine */

/* Tensors in the order of the header. */
int64_t bn_safetensors_n_tensors(const bn_safetensors *st);
const bn_st_tensor *bn_safetensors_tensor_at(const bn_safetensors *st, int64_t i);
const bn_st_tensor *bn_safetensors_find(const bn_safetensors *st, const char *name);

/* __metadata__ entries, in the order of the header. */
int64_t bn_safetensors_n_meta(const bn_safetensors *st);
const char *bn_safetensors_meta_key(const bn_safetensors *st, int64_t i);
const char *bn_safetensors_meta_value(const bn_safetensors *st, int64_t i);
const char *bn_safetensors_meta(const bn_safetensors *st, const char *key); /* NULL: absent */

size_t bn_safetensors_file_size(const bn_safetensors *st);

/* Drops the whole pages inside t's data from this process's memory (a mapped file only;
 * madvise MADV_DONTNEED): a converter that reads each tensor once keeps its resident memory
 * near one tensor instead of the whole file. The data stays readable (it is read from the
 * file again on the next access). */
void bn_safetensors_release(const bn_safetensors *st, const bn_st_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_SAFETENSORS_H */
