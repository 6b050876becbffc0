/*
 * pb_internal.h - what the protobuf readers (onnx.c, spm_model.c) share: a libprotobuf-c
 * allocator that goes through the engine's allocation hook (bn_malloc / bn_free), so that
 * the fail-the-N-th-allocation tests reach protobuf-c's own allocations too.
 */
#ifndef BITNET_PB_INTERNAL_H
#define BITNET_PB_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

extern ProtobufCAllocator bn__pb_allocator;

#endif
