/*
 * bitnet/torchzip.h - PyTorch checkpoint reader (.bin, .pt, .pth): the zip archive that
 * torch.save writes since 1.6, with a restricted pickle interpreter that never executes
 * anything.
 *
 * Usage:
 *
 *     bn_torch *pt;
 *     if (bn_torch_open(ctx, "pytorch_model.bin", &pt) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // e.g. "pickle: global
 *         return 1;                                      //  'os.system' is not allowed ..."
 *     }
 *     const bn_pt_tensor *t = bn_torch_find(pt, "model.norm.weight");
 *     void *raw = bn_malloc(t->size);
 *     bn_torch_read(pt, t, raw);                         // t->numel elements, row-major
 *     bn_dtype_to_f32(t->dtype, raw, t->numel, x);       // (bitnet/safetensors.h)
 *     bn_free(raw);
 *     bn_torch_close(pt);
 *
 * The archive (read with libzip, consistency checks on): one "<dir>/data.pkl" (a pickle,
 * protocol <= 5 but only the opcodes below), storages as "<dir>/data/<key>" (raw
 * little-endian, stored or deflated), "<dir>/byteorder" ("little" when present).
 *
 * The pickle interpreter implements only the opcodes such files use: PROTO, EMPTY_DICT,
 * EMPTY_LIST, EMPTY_TUPLE, MARK, BINUNICODE, SHORT_BINUNICODE, BININT, BININT1, BININT2,
 * LONG1 (up to 8 bytes), BINFLOAT, NEWFALSE, NEWTRUE, NONE, TUPLE, TUPLE1-3, GLOBAL,
 * REDUCE, BINPERSID, SETITEM, SETITEMS, APPEND, APPENDS, BUILD (on a dict, whose state is
 * ignored), BINPUT, LONG_BINPUT, BINGET, LONG_BINGET and STOP. Any other opcode is an error
 * naming it (INST, OBJ, NEWOBJ, STACK_GLOBAL, ...). GLOBAL is accepted only for
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter
 * and the storage classes torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}
 * Storage; any other global is refused with its name ("pickle: global 'os.system' is not
 * allowed"). REDUCE calls nothing: it recognises those callables and builds the matching
 * record (an empty dict, a tensor) from checked arguments. Stack depth, memo indices and
 * container sizes are bounded by the pickle's length.
 *
 * The result must be a dict (OrderedDict) of tensors; nested dicts are flattened with dots
 * ({"model": {"w": t}} gives "model.w"); other values (numbers, strings, lists, None) are
 * skipped. Every tensor's extent (offset, sizes, strides) is checked against its storage's
 * declared element count, and that count against the stored entry's size. Errors are
 * BN_ERR_FORMAT (BN_ERR_UNSUPPORTED for a legacy pre-1.6 file or a refused global/opcode),
 * with a one-line message on ctx. Never a crash, whatever the bytes.
 *
 * Ownership: the reader owns the names and records it returns until bn_torch_close; it
 * keeps the file mapped. A reader is used by one thread at a time.
 */
#ifndef BITNET_TORCHZIP_H
#define BITNET_TORCHZIP_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/safetensors.h" /* bn_dtype */

#ifdef __cplusplus
extern "C" {
#endif

#define BN_PT_MAX_DIMS 8

typedef struct bn_pt_tensor {
    const char *name; /* dotted key path */
    bn_dtype dtype;   /* from the storage class */
    int n_dims;
    int64_t shape[BN_PT_MAX_DIMS];  /* outermost first */
    int64_t stride[BN_PT_MAX_DIMS]; /* in elements */
    uint64_t numel;
    uint64_t storage_offset; /* in elements */
    const char *storage;     /* the storage's key ("0", "1", ...) */
    int contiguous;          /* strides are row-major */
    size_t size;             /* numel * element size: the bytes bn_torch_read writes */
} bn_pt_tensor;

typedef struct bn_torch bn_torch;

bn_status bn_torch_open(bn_ctx *ctx, const char *path, bn_torch **out);
/* Parses an archive held in memory (data must outlive the reader). */
bn_status bn_torch_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_torch **out);
void bn_torch_close(bn_torch *pt); /* NULL is fine */

int64_t bn_torch_n_tensors(const bn_torch *pt);
const bn_pt_tensor *bn_torch_tensor_at(const bn_torch *pt, int64_t i);
const bn_pt_tensor *bn_torch_find(const bn_torch *pt, const char *name);

/* Copies the tensor's elements, row-major and packed (t->size bytes), into dst, gathering
 * strided views, then lets the file mapping's pages go: reading every tensor in turn keeps
 * the process near one tensor's size, not the file's. BN_ERR_IO / BN_ERR_FORMAT (a short or
 * corrupt entry) with a message on the reader's ctx. */
bn_status bn_torch_read(bn_torch *pt, const bn_pt_tensor *t, void *dst);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_TORCHZIP_H */
