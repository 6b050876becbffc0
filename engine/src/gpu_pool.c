/*
 * gpu_pool.c - the GPU memory pool (see bitnet/gpu_pool.h): host bookkeeping of one device
 * allocation.
 *
 * The arena is a sorted array of extents that tile [0, reserve): each free, a block held
 * by a caller, or a slab of a size class. Offsets are looked up by binary search; best fit
 * scans the free extents. A slab keeps a bitmap of its slots.
 */
#include <stdint.h>
#include <string.h>

#include "bitnet/gpu_pool.h"

#define MAX_CLASSES 32

typedef struct extent {
    size_t off, size;
    int32_t slab; /* index into slabs, -1: none */
    uint8_t free;
} extent;

typedef struct slab {
    size_t off;       /* in the arena; the slab is one extent */
    uint32_t cls;     /* size class */
    uint32_t n_slots; /* slab_bytes / class size */
    uint32_t n_used;
    int32_t next_free; /* free list of unused entries (-1: end); only when unused */
    uint8_t in_use;
    uint64_t *bits; /* n_slots bits: 1 = held */
} slab;

struct bn_gpu_pool {
    bn_ctx *ctx;
    bn_gpu_allocator a;
    bn_gpu_pool_params p;
    uintptr_t base;
    extent *ext;
    size_t n_ext, cap_ext;
    slab *slabs;
    size_t n_slabs, cap_slabs;
    int32_t slab_free; /* first unused slabs entry, -1 none */
    uint32_t n_classes;
    struct {
        bn_gpu_pressure_fn fn;
        void *user;
    } pressure[BN_GPU_PRESSURE_COUNT_];
    int in_pressure;
    bn_gpu_pool_stats st; /* counters kept up to date; the free figures computed on demand */
};

static const char *const pressure_names[BN_GPU_PRESSURE_COUNT_] = {"evict_kv", "shrink_ctx",
                                                                   "cpu_layers"};

const char *bn_gpu_pressure_name(bn_gpu_pressure stage)
{
    return (unsigned)stage < BN_GPU_PRESSURE_COUNT_ ? pressure_names[stage] : NULL;
}

void bn_gpu_pool_params_init(bn_gpu_pool_params *p)
{
    memset(p, 0, sizeof *p);
    p->align = 256;
    p->small_max = 64 << 10;
    p->slab_bytes = 1 << 20;
}

static int pow2(size_t v)
{
    return v && !(v & (v - 1));
}

static bn_status check_params(bn_ctx *ctx, const bn_gpu_pool_params *p)
{
    if (!pow2(p->align) || p->align < 16)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "GPU pool: alignment %zu is not a power of two >= 16", p->align);
    if (!pow2(p->small_max) || p->small_max < p->align)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "GPU pool: small_max %zu is not a power of two >= the alignment",
                                p->small_max);
    if (p->slab_bytes % p->align || p->slab_bytes / 2 < p->small_max)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "GPU pool: slab of %zu bytes: a multiple of %zu, at least %zu",
                                p->slab_bytes, p->align, 2 * p->small_max);
    if (p->reserve == 0 || p->reserve % p->align)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "GPU pool: reserve of %zu bytes: a nonzero multiple of %zu",
                                p->reserve, p->align);
    return BN_OK;
}

bn_status bn_gpu_pool_new(bn_ctx *ctx, const bn_gpu_allocator *a, const bn_gpu_pool_params *p,
                          bn_gpu_pool **out)
{
    BN_ASSERT(a && a->alloc && a->free && p && out);
    *out = NULL;
    bn_status rc = check_params(ctx, p);
    if (rc != BN_OK) return rc;
    bn_gpu_pool *pool = bn_calloc(1, sizeof *pool);
    if (!pool) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "GPU pool: out of host memory");
    pool->ctx = ctx;
    pool->a = *a;
    pool->p = *p;
    pool->slab_free = -1;
    for (size_t c = p->align; c <= p->small_max; c <<= 1) pool->n_classes++;
    pool->cap_ext = 64;
    pool->ext = bn_malloc(pool->cap_ext * sizeof *pool->ext);
    if (!pool->ext) {
        bn_free(pool);
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "GPU pool: out of host memory");
    }
    void *dev = a->alloc(p->reserve, a->user);
    if (!dev) {
        bn_free(pool->ext);
        bn_free(pool);
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "GPU pool: the device has no %zu bytes to give",
                                p->reserve);
    }
    pool->base = (uintptr_t)dev;
    if (pool->base % p->align) {
        a->free(dev, a->user);
        bn_free(pool->ext);
        bn_free(pool);
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "GPU pool: the device allocation is not aligned to %zu", p->align);
    }
    pool->ext[0] = (extent){.off = 0, .size = p->reserve, .slab = -1, .free = 1};
    pool->n_ext = 1;
    pool->st.reserved = p->reserve;
    *out = pool;
    return BN_OK;
}

void bn_gpu_pool_free(bn_gpu_pool *pool)
{
    if (!pool) return;
    pool->a.free((void *)pool->base, pool->a.user);
    for (size_t i = 0; i < pool->n_slabs; i++) bn_free(pool->slabs[i].bits);
    bn_free(pool->slabs);
    bn_free(pool->ext);
    bn_free(pool);
}

void bn_gpu_pool_set_pressure(bn_gpu_pool *pool, bn_gpu_pressure stage, bn_gpu_pressure_fn fn,
                              void *user)
{
    BN_ASSERT(pool && (unsigned)stage < BN_GPU_PRESSURE_COUNT_);
    pool->pressure[stage].fn = fn;
    pool->pressure[stage].user = user;
}

/* ---- the arena ------------------------------------------------------------------------ */

/* The index of the extent that contains offset off (off < reserve). */
static size_t ext_find(const bn_gpu_pool *pool, size_t off)
{
    size_t lo = 0, hi = pool->n_ext;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (pool->ext[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Room for one more extent; 0 or -1 (out of host memory). */
static int ext_reserve(bn_gpu_pool *pool)
{
    if (pool->n_ext < pool->cap_ext) return 0;
    extent *e = bn_malloc(pool->cap_ext * 2 * sizeof *e);
    if (!e) return -1;
    memcpy(e, pool->ext, pool->n_ext * sizeof *e);
    bn_free(pool->ext);
    pool->ext = e;
    pool->cap_ext *= 2;
    return 0;
}

static void ext_remove(bn_gpu_pool *pool, size_t i)
{
    memmove(pool->ext + i, pool->ext + i + 1, (pool->n_ext - i - 1) * sizeof *pool->ext);
    pool->n_ext--;
}

/* The offset of a new extent of size bytes (a multiple of align) by best fit, marked held
 * (slab: its slab index or -1); SIZE_MAX when no free extent holds it or out of host
 * memory. */
static size_t arena_take(bn_gpu_pool *pool, size_t size, int32_t slab_ix)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < pool->n_ext; i++) {
        const extent *e = &pool->ext[i];
        if (e->free && e->size >= size && (best == SIZE_MAX || e->size < pool->ext[best].size))
            best = i;
    }
    if (best == SIZE_MAX) return SIZE_MAX;
    if (pool->ext[best].size > size) { /* split: the rest stays free after the block */
        if (ext_reserve(pool)) return SIZE_MAX;
        memmove(pool->ext + best + 2, pool->ext + best + 1,
                (pool->n_ext - best - 1) * sizeof *pool->ext);
        pool->n_ext++;
        extent *e = &pool->ext[best];
        pool->ext[best + 1] =
                (extent){.off = e->off + size, .size = e->size - size, .slab = -1, .free = 1};
        e->size = size;
    }
    extent *e = &pool->ext[best];
    e->free = 0;
    e->slab = slab_ix;
    return e->off;
}

/* Frees extent i and merges it with free neighbours. */
static void arena_give(bn_gpu_pool *pool, size_t i)
{
    pool->ext[i].free = 1;
    pool->ext[i].slab = -1;
    if (i + 1 < pool->n_ext && pool->ext[i + 1].free) {
        pool->ext[i].size += pool->ext[i + 1].size;
        ext_remove(pool, i + 1);
    }
    if (i > 0 && pool->ext[i - 1].free) {
        pool->ext[i - 1].size += pool->ext[i].size;
        ext_remove(pool, i);
    }
}

/* ---- size classes ---------------------------------------------------------------------- */

static size_t class_size(const bn_gpu_pool *pool, uint32_t cls)
{
    return pool->p.align << cls;
}

static uint32_t class_of(const bn_gpu_pool *pool, size_t size)
{
    uint32_t c = 0;
    while (class_size(pool, c) < size) c++;
    return c;
}

/* An unused slabs entry, or -1 (out of host memory). */
static int32_t slab_entry(bn_gpu_pool *pool)
{
    if (pool->slab_free >= 0) {
        const int32_t i = pool->slab_free;
        pool->slab_free = pool->slabs[i].next_free;
        return i;
    }
    if (pool->n_slabs == pool->cap_slabs) {
        const size_t cap = pool->cap_slabs ? pool->cap_slabs * 2 : 16;
        slab *s = bn_malloc(cap * sizeof *s);
        if (!s) return -1;
        if (pool->n_slabs) memcpy(s, pool->slabs, pool->n_slabs * sizeof *s);
        bn_free(pool->slabs);
        pool->slabs = s;
        pool->cap_slabs = cap;
    }
    pool->slabs[pool->n_slabs] = (slab){.bits = NULL};
    return (int32_t)pool->n_slabs++;
}

static void slab_entry_release(bn_gpu_pool *pool, int32_t i)
{
    slab *s = &pool->slabs[i];
    bn_free(s->bits);
    *s = (slab){.next_free = pool->slab_free};
    pool->slab_free = i;
}

/* A new slab of class cls from the arena: its entry, or -1. */
static int32_t slab_new(bn_gpu_pool *pool, uint32_t cls)
{
    const int32_t i = slab_entry(pool);
    if (i < 0) return -1;
    const uint32_t n = (uint32_t)(pool->p.slab_bytes / class_size(pool, cls));
    uint64_t *bits = bn_calloc((n + 63) / 64, sizeof *bits);
    const size_t off = bits ? arena_take(pool, pool->p.slab_bytes, i) : SIZE_MAX;
    if (off == SIZE_MAX) {
        bn_free(bits);
        pool->slabs[i].bits = NULL;
        slab_entry_release(pool, i);
        return -1;
    }
    pool->slabs[i] = (slab){.off = off, .cls = cls, .n_slots = n, .in_use = 1, .bits = bits};
    pool->st.slab_bytes += pool->p.slab_bytes;
    return i;
}

/* A slot of class cls: its offset, or SIZE_MAX. Slabs with room are used before a new one
 * is made, the lowest-addressed first. */
static size_t small_take(bn_gpu_pool *pool, uint32_t cls)
{
    int32_t best = -1;
    for (size_t i = 0; i < pool->n_slabs; i++) {
        const slab *s = &pool->slabs[i];
        if (s->in_use && s->cls == cls && s->n_used < s->n_slots &&
            (best < 0 || s->off < pool->slabs[best].off))
            best = (int32_t)i;
    }
    if (best < 0) best = slab_new(pool, cls);
    if (best < 0) return SIZE_MAX;
    slab *s = &pool->slabs[best];
    for (uint32_t w = 0; w < (s->n_slots + 63) / 64; w++) {
        if (s->bits[w] == UINT64_MAX) continue;
        const uint32_t b = (uint32_t)__builtin_ctzll(~s->bits[w]), slot = w * 64 + b;
        if (slot >= s->n_slots) break;
        s->bits[w] |= 1ull << b;
        s->n_used++;
        return s->off + (size_t)slot * class_size(pool, cls);
    }
    return SIZE_MAX; /* not reached: n_used < n_slots */
}

/* ---- allocation ------------------------------------------------------------------------ */

/* The block's counted size and offset (SIZE_MAX: no room) without the pressure chain. */
static size_t take(bn_gpu_pool *pool, size_t size, size_t *counted)
{
    if (size <= pool->p.small_max) {
        const uint32_t cls = class_of(pool, size);
        *counted = class_size(pool, cls);
        return small_take(pool, cls);
    }
    *counted = (size + pool->p.align - 1) & ~(pool->p.align - 1);
    return arena_take(pool, *counted, -1);
}

static void stats_free_figures(const bn_gpu_pool *pool, size_t *total, size_t *largest)
{
    *total = *largest = 0;
    for (size_t i = 0; i < pool->n_ext; i++)
        if (pool->ext[i].free) {
            *total += pool->ext[i].size;
            if (pool->ext[i].size > *largest) *largest = pool->ext[i].size;
        }
}

/* The pressure chain for a block of size bytes: the offset once one fits, else SIZE_MAX. */
static size_t take_under_pressure(bn_gpu_pool *pool, size_t size, size_t *counted)
{
    size_t off = SIZE_MAX;
    pool->in_pressure = 1;
    for (int s = 0; s < BN_GPU_PRESSURE_COUNT_ && off == SIZE_MAX; s++) {
        if (!pool->pressure[s].fn) continue;
        pool->st.n_pressure[s]++;
        const size_t got = pool->pressure[s].fn(pool, size, pool->pressure[s].user);
        bn_log(BN_LOG_WARN, "GPU pool: no room for %zu bytes: %s released %zu bytes", size,
               pressure_names[s], got);
        if (got) off = take(pool, size, counted);
        if (off != SIZE_MAX) pool->st.n_rescued++;
    }
    pool->in_pressure = 0;
    return off;
}

void bn_gpu_pool_note_pressure(bn_gpu_pool *pool, bn_gpu_pressure stage, const char *what)
{
    BN_ASSERT(pool && (unsigned)stage < BN_GPU_PRESSURE_COUNT_);
    pool->st.n_pressure[stage]++;
    bn_log(BN_LOG_WARN, "GPU pool: %s: %s", pressure_names[stage], what);
}

bn_status bn_gpu_pool_alloc(bn_gpu_pool *pool, size_t size, void **out)
{
    BN_ASSERT(pool && out);
    *out = NULL;
    if (size == 0 || size > pool->p.reserve) {
        pool->st.n_fail += size != 0;
        return bn_ctx_set_error(pool->ctx, size ? BN_ERR_NOMEM : BN_ERR_INVALID,
                                "GPU pool: a block of %zu bytes (the pool holds %zu)", size,
                                pool->p.reserve);
    }
    size_t counted = 0, off = take(pool, size, &counted);
    if (off == SIZE_MAX && !pool->in_pressure) off = take_under_pressure(pool, size, &counted);
    if (off == SIZE_MAX) {
        size_t total, largest;
        stats_free_figures(pool, &total, &largest);
        pool->st.n_fail++;
        return bn_ctx_set_error(pool->ctx, BN_ERR_NOMEM,
                                "GPU pool: no room for %zu bytes (%zu free, the largest free "
                                "extent %zu)",
                                size, total, largest);
    }
    pool->st.used += counted;
    if (pool->st.used > pool->st.peak_used) pool->st.peak_used = pool->st.used;
    pool->st.n_blocks++;
    pool->st.n_alloc++;
    *out = (void *)(pool->base + off);
    return BN_OK;
}

/* Where ptr is: its extent, and for a slab its slot; -1 when ptr is not in the allocation,
 * not at a block's start, or in a free extent. */
static int locate(const bn_gpu_pool *pool, const void *ptr, size_t *ei, uint32_t *slot)
{
    const uintptr_t a = (uintptr_t)ptr;
    if (a < pool->base || a - pool->base >= pool->p.reserve) return -1;
    const size_t off = a - pool->base;
    *ei = ext_find(pool, off);
    const extent *e = &pool->ext[*ei];
    if (e->free) return -1;
    if (e->slab < 0) return off == e->off ? 0 : -1;
    const slab *s = &pool->slabs[e->slab];
    const size_t cs = class_size(pool, s->cls);
    if ((off - e->off) % cs) return -1;
    *slot = (uint32_t)((off - e->off) / cs);
    return *slot < s->n_slots && (s->bits[*slot / 64] >> (*slot % 64) & 1) ? 0 : -1;
}

size_t bn_gpu_pool_block_size(const bn_gpu_pool *pool, const void *ptr)
{
    size_t ei;
    uint32_t slot;
    if (locate(pool, ptr, &ei, &slot)) return 0;
    const extent *e = &pool->ext[ei];
    return e->slab < 0 ? e->size : class_size(pool, pool->slabs[e->slab].cls);
}

bn_status bn_gpu_pool_dealloc(bn_gpu_pool *pool, void *ptr)
{
    BN_ASSERT(pool);
    size_t ei;
    uint32_t slot;
    if (locate(pool, ptr, &ei, &slot))
        return bn_ctx_set_error(pool->ctx, BN_ERR_INVALID,
                                "GPU pool: %p is not a block held from this pool (freed twice, "
                                "or never handed out)",
                                ptr);
    extent *e = &pool->ext[ei];
    if (e->slab < 0) {
        pool->st.used -= e->size;
        arena_give(pool, ei);
    } else {
        const int32_t si = e->slab;
        slab *s = &pool->slabs[si];
        s->bits[slot / 64] &= ~(1ull << (slot % 64));
        s->n_used--;
        pool->st.used -= class_size(pool, s->cls);
        if (s->n_used == 0) { /* the empty slab goes back to the arena */
            pool->st.slab_bytes -= pool->p.slab_bytes;
            slab_entry_release(pool, si);
            arena_give(pool, ei);
        }
    }
    pool->st.n_blocks--;
    pool->st.n_free++;
    return BN_OK;
}

void bn_gpu_pool_stats_get(const bn_gpu_pool *pool, bn_gpu_pool_stats *s)
{
    *s = pool->st;
    stats_free_figures(pool, &s->arena_free, &s->largest_free);
    s->fragmentation = s->arena_free ? 1.0 - (double)s->largest_free / (double)s->arena_free : 0.0;
}

/* ---- the invariants ---------------------------------------------------------------------- */

static bn_status broken(const bn_gpu_pool *pool, const char *what, size_t i)
{
    return bn_ctx_set_error(pool->ctx, BN_ERR_INTERNAL, "GPU pool: %s (extent %zu)", what, i);
}

bn_status bn_gpu_pool_check(const bn_gpu_pool *pool)
{
    size_t at = 0, used = 0, blocks = 0, slabs = 0;
    for (size_t i = 0; i < pool->n_ext; i++) {
        const extent *e = &pool->ext[i];
        if (e->off != at || e->size == 0 || e->size % pool->p.align)
            return broken(pool, "extents do not tile the allocation", i);
        at += e->size;
        if (e->free && (e->slab >= 0 || (i > 0 && pool->ext[i - 1].free)))
            return broken(pool, "a free extent beside another or holding a slab", i);
        if (e->free) continue;
        if (e->slab < 0) {
            used += e->size, blocks++;
            continue;
        }
        const slab *s = &pool->slabs[e->slab];
        if (!s->in_use || s->off != e->off || e->size != pool->p.slab_bytes || s->n_used == 0)
            return broken(pool, "a slab extent without its slab, or an empty slab", i);
        uint32_t n = 0;
        for (uint32_t w = 0; w < (s->n_slots + 63) / 64; w++)
            n += (uint32_t)__builtin_popcountll(s->bits[w]);
        if (n != s->n_used) return broken(pool, "a slab's bitmap disagrees with its count", i);
        used += (size_t)n * class_size(pool, s->cls), blocks += n, slabs++;
    }
    if (at != pool->p.reserve) return broken(pool, "extents end before the allocation", 0);
    for (size_t i = 0, live = 0; i < pool->n_slabs; i++) {
        live += pool->slabs[i].in_use;
        if (i + 1 == pool->n_slabs && live != slabs)
            return broken(pool, "slabs in use that no extent holds", i);
    }
    if (used != pool->st.used || blocks != pool->st.n_blocks ||
        slabs * pool->p.slab_bytes != pool->st.slab_bytes)
        return broken(pool, "the used, block or slab figures disagree with the extents", 0);
    return BN_OK;
}
