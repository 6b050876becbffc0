/* ckpt_internal.h - helpers the checkpoint readers (safetensors.c, torchzip.c, onnx.c)
 * share: mapping a file read-only, and a name index that finds duplicates. Defined in
 * safetensors.c. */
#ifndef BITNET_CKPT_INTERNAL_H
#define BITNET_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"

/* Maps path read-only (a regular, non-empty file). BN_ERR_IO / BN_ERR_FORMAT (empty) with
 * a message on ctx ("cannot open: No such file or directory"). Release with bn__unmap. */
bn_status bn__map_file(bn_ctx *ctx, const char *path, const void **data, size_t *size);
void bn__unmap(const void *data, size_t size);
/* Lets the pages of a mapping that lie wholly inside [data, data + size) go (MADV_DONTNEED):
 * read again, they come back from the file. Bounds a reader's RSS to what it holds. */
void bn__release_pages(const void *data, size_t size);

/* A sorted index over n names (names[i] for i < n; the array must outlive the index).
 * bn__name_index_build returns BN_ERR_NOMEM, or BN_ERR_FORMAT with *dup set to the index of
 * a name that occurs twice (else *dup = -1). */
typedef struct bn__name_index {
    const char *const *names;
    int64_t *order; /* indices sorted by name */
    int64_t n;
} bn__name_index;

bn_status bn__name_index_build(bn__name_index *ix, const char *const *names, int64_t n,
                               int64_t *dup);
int64_t bn__name_index_find(const bn__name_index *ix, const char *name); /* -1 when absent */
void bn__name_index_release(bn__name_index *ix);

/* Whether the n bytes at s are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int bn__utf8_valid(const char *s, size_t n);

#endif
