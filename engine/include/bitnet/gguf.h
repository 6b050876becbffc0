/*
 * bitnet/gguf.h - GGUF v3 reader (strict, mmapped) and writer.
 *
 * Usage (reading):
 *
 *     bn_gguf *g;
 *     if (bn_gguf_open(ctx, "model.gguf", &g) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // one line naming the problem
 *         return 1;
 *     }
 *     uint32_t n_layer;
 *     bn_gguf_get_u32(g, "bitnet-b1.58.block_count", &n_layer);
 *     const bn_gguf_tensor *t = bn_gguf_find_tensor(g, "token_embd.weight");
 *     // t->data points into the mapping, t->size bytes
 *     bn_gguf_close(g);
 *
 * Usage (writing):
 *
 *     bn_gguf_writer *w;
 *     bn_gguf_writer_new(&w);
 *     bn_gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58");
 *     bn_gguf_writer_add_tensor(w, "output_norm.weight", BN_TYPE_F32, 1, ne, data, bytes);
 *     bn_gguf_writer_write(ctx, w, "out.gguf");   // temp file + rename
 *     bn_gguf_writer_free(w);
 *
 * Writer errors: the setters return BN_ERR_INVALID for an empty or over-long key (65535
 * bytes), a bad type or a tensor whose size does not match its type and shape; writing
 * sets a message on ctx. general.alignment is written only when set (a u32 power of two,
 * at least 8).
 *
 * Validation on open: magic "GGUF", version 3 (2 accepted), counts, string lengths and
 * array sizes checked against the bytes left before anything is allocated, at most 4
 * dims, checked size arithmetic, each tensor's data inside the file, general.alignment a
 * power of two and a multiple of 8 (the GGUF rule), duplicate keys and tensor names rejected,
 * unknown tensor types rejected with a message naming the type id. Never a crash, whatever the
 * bytes.
 *
 * Ownership: the reader owns every string, array and tensor record it returns; they live
 * until bn_gguf_close. Tensor data points into the read-only mapping (or into the
 * caller's buffer for bn_gguf_open_memory, which must outlive the reader). In a mapped file
 * it is aligned to general.alignment; in a caller's buffer it is only as aligned as the
 * buffer, so read F32/F16 data with memcpy or bn_f16_to_f32_row (which accept any address),
 * never through a float pointer. The writer
 * copies keys and values; tensor data is referenced, not copied, and must stay valid
 * until bn_gguf_writer_write returns.
 */
#ifndef BITNET_GGUF_H
#define BITNET_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_gguf_vtype {
    BN_GGUF_U8 = 0,
    BN_GGUF_I8 = 1,
    BN_GGUF_U16 = 2,
    BN_GGUF_I16 = 3,
    BN_GGUF_U32 = 4,
    BN_GGUF_I32 = 5,
    BN_GGUF_F32 = 6,
    BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8,
    BN_GGUF_ARRAY = 9,
    BN_GGUF_U64 = 10,
    BN_GGUF_I64 = 11,
    BN_GGUF_F64 = 12,
    BN_GGUF_VTYPE_COUNT_
} bn_gguf_vtype;

#define BN_GGUF_DEFAULT_ALIGNMENT 32
#define BN_GGUF_MAX_DIMS          4

typedef struct bn_gguf bn_gguf;

typedef struct bn_gguf_tensor {
    const char *name;
    int type; /* a bn_type id */
    int n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS]; /* ne[0] innermost; unused dims are 1 */
    uint64_t offset;              /* relative to the data section */
    size_t size;                  /* bytes of data */
    const void *data;
} bn_gguf_tensor;

bn_status bn_gguf_open(bn_ctx *ctx, const char *path, bn_gguf **out);
/* Parses a GGUF held in memory (data must outlive the reader). */
bn_status bn_gguf_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_gguf **out);
void bn_gguf_close(bn_gguf *g);

uint32_t bn_gguf_version(const bn_gguf *g);
size_t bn_gguf_alignment(const bn_gguf *g);
size_t bn_gguf_file_size(const bn_gguf *g);
const void *bn_gguf_base(const bn_gguf *g);   /* start of the file's bytes */
size_t bn_gguf_data_offset(const bn_gguf *g); /* file offset of the data section */

/* ---- metadata ------------------------------------------------------------------ */
int64_t bn_gguf_n_kv(const bn_gguf *g);
const char *bn_gguf_key(const bn_gguf *g, int64_t i);
int64_t bn_gguf_find_key(const bn_gguf *g, const char *key); /* -1 when absent */
bn_gguf_vtype bn_gguf_kv_type(const bn_gguf *g, int64_t i);

/* Scalar getters by key: BN_ERR_NOT_FOUND when absent, BN_ERR_FORMAT when the stored
 * type does not fit (integer getters accept any integer type whose value fits). */
bn_status bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out);
bn_status bn_gguf_get_i32(const bn_gguf *g, const char *key, int32_t *out);
bn_status bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out);
bn_status bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out);
bn_status bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out); /* f32 or f64 */
bn_status bn_gguf_get_bool(const bn_gguf *g, const char *key, int *out);
bn_status bn_gguf_get_str(const bn_gguf *g, const char *key, const char **out);

/* Scalar value of entry i as double / int64 / string (for printing; 0 or NULL when the
 * entry is not of a fitting kind). */
double bn_gguf_kv_f64(const bn_gguf *g, int64_t i);
int64_t bn_gguf_kv_i64(const bn_gguf *g, int64_t i);
const char *bn_gguf_kv_str(const bn_gguf *g, int64_t i);
/* Unsigned integers and bool as stored (a negative signed value gives 0). */
uint64_t bn_gguf_kv_u64(const bn_gguf *g, int64_t i);
/* A string value with its exact byte length (it may hold NUL bytes). */
const char *bn_gguf_kv_strn(const bn_gguf *g, int64_t i, size_t *len);

/* Arrays: element type, count, and elements. Numeric elements are stored contiguous
 * and little-endian (bool as u8); string elements are NUL-terminated copies, with their
 * byte length (strings may hold NUL bytes; len is exact). */
bn_gguf_vtype bn_gguf_arr_type(const bn_gguf *g, int64_t i);
uint64_t bn_gguf_arr_n(const bn_gguf *g, int64_t i);
const void *bn_gguf_arr_data(const bn_gguf *g, int64_t i); /* NULL for string arrays */
const char *bn_gguf_arr_str(const bn_gguf *g, int64_t i, uint64_t j, size_t *len);

/* ---- tensors ---------------------------------------------------------------------- */
int64_t bn_gguf_n_tensors(const bn_gguf *g);
const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, int64_t i);
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name);

const char *bn_gguf_vtype_name(int vtype); /* "u32", "string", ... or "unknown" */

/* ---- writer ------------------------------------------------------------------------ */
typedef struct bn_gguf_writer bn_gguf_writer;

bn_status bn_gguf_writer_new(bn_gguf_writer **out);
void bn_gguf_writer_free(bn_gguf_writer *w);
/* Setting an existing key replaces its value. */
bn_status bn_gguf_writer_set_u32(bn_gguf_writer *w, const char *key, uint32_t v);
bn_status bn_gguf_writer_set_i32(bn_gguf_writer *w, const char *key, int32_t v);
bn_status bn_gguf_writer_set_u64(bn_gguf_writer *w, const char *key, uint64_t v);
bn_status bn_gguf_writer_set_f32(bn_gguf_writer *w, const char *key, float v);
bn_status bn_gguf_writer_set_bool(bn_gguf_writer *w, const char *key, int v);
bn_status bn_gguf_writer_set_str(bn_gguf_writer *w, const char *key, const char *v);
/* Numeric array: n elements of vtype (not STRING or ARRAY), copied. */
bn_status bn_gguf_writer_set_arr(bn_gguf_writer *w, const char *key, bn_gguf_vtype vtype,
                                 const void *data, uint64_t n);
/* String array: n NUL-terminated strings, copied. */
bn_status bn_gguf_writer_set_arr_str(bn_gguf_writer *w, const char *key, const char *const *v,
                                     uint64_t n);
/* String array with explicit byte lengths (strings may hold NUL bytes; lens NULL: strlen). */
bn_status bn_gguf_writer_set_arr_strn(bn_gguf_writer *w, const char *key, const char *const *v,
                                      const size_t *lens, uint64_t n);
/* A string of len bytes (may hold NUL bytes). */
bn_status bn_gguf_writer_set_strn(bn_gguf_writer *w, const char *key, const char *v, size_t len);
/* Any scalar type (not STRING or ARRAY): v points to its value in host order. */
bn_status bn_gguf_writer_set_scalar(bn_gguf_writer *w, const char *key, bn_gguf_vtype vtype,
                                    const void *v);
/* Copies metadata entry i of the reader g (any type: scalar, string, array) into w under
 * the same key. */
bn_status bn_gguf_writer_copy_kv(bn_gguf_writer *w, const bn_gguf *g, int64_t i);
/* Adds a tensor; size must equal the bytes its type and shape need. data is referenced. */
bn_status bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, int type, int n_dims,
                                    const int64_t *ne, const void *data, size_t size);
/* Writes path through a temporary file in the same directory, renamed when complete. */
bn_status bn_gguf_writer_write(bn_ctx *ctx, bn_gguf_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_GGUF_H */
