/*
 * bitnet/gpu_pool.h - the GPU memory pool: one device allocation carved into blocks, with
 * statistics and a chain of responses to memory pressure. Host code only: the device
 * memory comes from an allocator hook (cudaMalloc / cudaFree in the CUDA backend, a fake
 * in the tests), and the pool never reads or writes the memory it hands out.
 *
 * Usage:
 *
 *     bn_gpu_allocator a = {.alloc = dev_alloc, .free = dev_free, .user = dev};
 *     bn_gpu_pool_params p;
 *     bn_gpu_pool_params_init(&p);
 *     p.reserve = 8ull << 30;                             // one allocation of 8 GiB
 *     bn_gpu_pool *pool;
 *     if (bn_gpu_pool_new(ctx, &a, &p, &pool) != BN_OK) ... bn_ctx_errmsg(ctx) ...
 *     bn_gpu_pool_set_pressure(pool, BN_GPU_PRESSURE_EVICT_KV, evict_idle_slots, srv);
 *     void *w;
 *     if (bn_gpu_pool_alloc(pool, bytes, &w) != BN_OK) ... // after the pressure chain
 *     ...
 *     bn_gpu_pool_dealloc(pool, w);                       // BN_ERR_INVALID: not ours / twice
 *     bn_gpu_pool_stats s;
 *     bn_gpu_pool_stats_get(pool, &s);                    // reserved, used, fragmentation...
 *     bn_gpu_pool_free(pool);                             // and the device allocation
 *
 * Layout. Every block is aligned to params.align (a power of two; the device allocation
 * must be aligned to it too). Blocks of up to params.small_max bytes come from size
 * classes (powers of two from align to small_max): a class takes arena space in slabs of
 * params.slab_bytes and hands out their slots; a slab whose last slot is freed goes back
 * to the arena. Larger blocks (rounded up to align) come from the arena by best fit (the
 * smallest free extent that holds the block, the lowest address among equals), carved
 * from the front of the extent; a freed block is merged with free neighbours at once, so
 * no two free extents are ever adjacent.
 *
 * Statistics. used is what callers hold (a small block counts its class size, a large one
 * its rounded size); arena_free and largest_free are over the arena's free extents (a
 * slab counts as arena space in use, free slots or not); fragmentation = 1 - largest_free
 * / arena_free (0 when nothing is free): 0 when the free space is one extent, near 1 when
 * it is scattered in small pieces.
 *
 * Memory pressure. When no block fits, the pool calls the responses set for each stage in
 * this order: BN_GPU_PRESSURE_EVICT_KV (drop the KV caches of idle server slots),
 * BN_GPU_PRESSURE_SHRINK_CTX (a smaller context), BN_GPU_PRESSURE_CPU_LAYERS (move layers
 * back to the CPU). Each response frees what it can through bn_gpu_pool_dealloc and
 * returns the bytes it released; after one that released something the allocation is
 * tried again, and the chain stops as soon as it succeeds. Each call is logged (bn_log,
 * BN_LOG_WARN) and counted per stage. Allocations made while a response runs do not start
 * the chain again.
 *
 * Errors: BN_ERR_NOMEM when no block fits after the chain (a message on ctx naming the
 * size, the free bytes and the largest free extent); BN_ERR_INVALID for a pointer the pool
 * did not hand out or one freed already (double free), with a message; nothing changes.
 *
 * Ownership and threads: the pool owns its device allocation (released by
 * bn_gpu_pool_free) and its host bookkeeping (through bn_malloc). A pool is not
 * thread-safe: one thread at a time, or the caller's lock.
 */
#ifndef BITNET_GPU_POOL_H
#define BITNET_GPU_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_gpu_pool bn_gpu_pool;

/* The device allocator: alloc returns size bytes of device memory (aligned to the
 * pool's align) or NULL; free releases what alloc returned. */
typedef struct bn_gpu_allocator {
    void *(*alloc)(size_t size, void *user);
    void (*free)(void *dev, void *user);
    void *user;
} bn_gpu_allocator;

typedef struct bn_gpu_pool_params {
    size_t reserve;    /* bytes of the one device allocation (a multiple of align) */
    size_t align;      /* of every block: a power of two >= 16 (default 256) */
    size_t small_max;  /* largest size-class block: a power of two >= align (default 64 KiB) */
    size_t slab_bytes; /* arena bytes a size class takes at a time: a multiple of align,
                        * at least 2 * small_max (default 1 MiB) */
} bn_gpu_pool_params;

void bn_gpu_pool_params_init(bn_gpu_pool_params *p);

/* The stages of the pressure chain, in the order they run. Values only grow. */
typedef enum bn_gpu_pressure {
    BN_GPU_PRESSURE_EVICT_KV = 0,   /* KV caches of idle server slots */
    BN_GPU_PRESSURE_SHRINK_CTX = 1, /* a smaller context */
    BN_GPU_PRESSURE_CPU_LAYERS = 2, /* layers back on the CPU */
    BN_GPU_PRESSURE_COUNT_          /* keep last */
} bn_gpu_pressure;

/* "evict_kv", "shrink_ctx", "cpu_layers" (NULL for another value). */
const char *bn_gpu_pressure_name(bn_gpu_pressure stage);

/* A response: frees blocks of pool (bn_gpu_pool_dealloc) to make room for a block of need
 * bytes and returns the bytes it released (0: nothing to give). */
typedef size_t (*bn_gpu_pressure_fn)(bn_gpu_pool *pool, size_t need, void *user);

typedef struct bn_gpu_pool_stats {
    size_t reserved;      /* the device allocation */
    size_t used;          /* held by callers */
    size_t peak_used;     /* the most used has been */
    size_t arena_free;    /* free bytes of the arena */
    size_t largest_free;  /* the largest free extent */
    double fragmentation; /* 1 - largest_free / arena_free; 0 when nothing is free */
    size_t slab_bytes;    /* arena bytes held by size-class slabs */
    size_t n_blocks;      /* blocks held by callers */
    uint64_t n_alloc;     /* successful allocations */
    uint64_t n_free;      /* successful deallocations */
    uint64_t n_fail;      /* allocations that failed after the pressure chain */
    uint64_t n_pressure[BN_GPU_PRESSURE_COUNT_]; /* calls of each stage's response */
    uint64_t n_rescued;                          /* allocations that succeeded after a response */
} bn_gpu_pool_stats;

/* Reserves p->reserve bytes through a and builds the pool. Errors: BN_ERR_INVALID (bad
 * parameters, an allocation not aligned to align), BN_ERR_NOMEM (the device allocation or
 * host memory). ctx (may be NULL) gets the messages and must outlive the pool. */
bn_status bn_gpu_pool_new(bn_ctx *ctx, const bn_gpu_allocator *a, const bn_gpu_pool_params *p,
                          bn_gpu_pool **out);
void bn_gpu_pool_free(bn_gpu_pool *pool); /* NULL is fine */

/* A block of size bytes (size 0 is BN_ERR_INVALID) into *out. */
bn_status bn_gpu_pool_alloc(bn_gpu_pool *pool, size_t size, void **out);
bn_status bn_gpu_pool_dealloc(bn_gpu_pool *pool, void *ptr);
/* The bytes the block at ptr counts as (its class or rounded size), 0 if ptr is not a
 * block of the pool. */
size_t bn_gpu_pool_block_size(const bn_gpu_pool *pool, const void *ptr);

/* Sets (fn NULL: clears) the response of one stage. */
void bn_gpu_pool_set_pressure(bn_gpu_pool *pool, bn_gpu_pressure stage, bn_gpu_pressure_fn fn,
                              void *user);

/* Records a pressure response taken outside the chain (a caller that shrank its own
 * request, or moved its work to the CPU, after bn_gpu_pool_alloc failed): counted in
 * n_pressure[stage] and logged at BN_LOG_WARN with what (one line). */
void bn_gpu_pool_note_pressure(bn_gpu_pool *pool, bn_gpu_pressure stage, const char *what);

void bn_gpu_pool_stats_get(const bn_gpu_pool *pool, bn_gpu_pool_stats *s);
/* Checks every invariant of the bookkeeping (extents cover the allocation in order, no two
 * free ones adjacent, slab slots and the used figure agree): BN_OK, or BN_ERR_INTERNAL with
 * a message naming the first broken one. For tests. */
bn_status bn_gpu_pool_check(const bn_gpu_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_GPU_POOL_H */
