/* pb_alloc.c - the libprotobuf-c allocator of pb_internal.h. */
#include "pb_internal.h"

#include "bitnet/core.h"

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return bn_malloc(size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    bn_free(p);
}

ProtobufCAllocator bn__pb_allocator = {pb_alloc, pb_free, NULL};
