/* gguf_internal.h - what the GGUF reader (gguf_read.c) and writer (gguf_write.c) share. */
#ifndef BITNET_GGUF_INTERNAL_H
#define BITNET_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_read.c and gguf_write.c assume a little-endian host (numeric arrays are kept as stored)"
#endif

/* The longest key or tensor name either side accepts. */
#define GGUF_MAX_KEY_LEN 65535u

/* Bytes of one value of scalar type vtype (bn_gguf_vtype); 0 for STRING, ARRAY, unknown. */
size_t bn__gguf_vtype_size(int vtype);
/* Why a general.alignment value is not allowed ("is not a power of two", ...), or NULL. */
const char *bn__gguf_alignment_problem(uint64_t a);
/* The little-endian u32 at p. */
uint32_t bn__gguf_get_le32(const uint8_t *p);

#endif
