/* test_gpu_pool.c - the GPU memory pool on a fake device allocator (host memory): exact
 * figures of fragmentation scenarios worked out by hand, best fit, size classes, the
 * pressure chain in its order, 10^5 seeded random allocations and frees with the
 * bookkeeping checked throughout, alignment, double frees and foreign pointers, failing
 * host allocations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gpu_pool.h"
#include "common/gpu_pool_metrics.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- the fake device ---------------------------------------------------------------------- */

typedef struct fake_dev {
    int live;        /* allocations not yet freed */
    int calls;       /* alloc calls */
    int fail;        /* alloc returns NULL */
    size_t misalign; /* alloc returns an address this far past an aligned one */
    void *raw;
} fake_dev;

static void *fake_alloc(size_t size, void *user)
{
    fake_dev *d = user;
    d->calls++;
    if (d->fail) return NULL;
    d->raw = aligned_alloc(4096, size + 4096);
    if (!d->raw) return NULL;
    d->live++;
    return (char *)d->raw + d->misalign;
}

static void fake_free(void *dev, void *user)
{
    fake_dev *d = user;
    assert_ptr_equal(dev, (char *)d->raw + d->misalign);
    free(d->raw);
    d->live--;
}

static bn_gpu_pool *pool_make(fake_dev *d, size_t reserve, size_t align, size_t small_max,
                              size_t slab)
{
    bn_gpu_allocator a = {.alloc = fake_alloc, .free = fake_free, .user = d};
    bn_gpu_pool_params p;
    bn_gpu_pool_params_init(&p);
    p.reserve = reserve;
    if (align) p.align = align;
    if (small_max) p.small_max = small_max;
    if (slab) p.slab_bytes = slab;
    bn_gpu_pool *pool = NULL;
    assert_int_equal(bn_gpu_pool_new(NULL, &a, &p, &pool), BN_OK);
    return pool;
}

static bn_gpu_pool_stats stats(const bn_gpu_pool *pool)
{
    bn_gpu_pool_stats s;
    bn_gpu_pool_stats_get(pool, &s);
    assert_int_equal(bn_gpu_pool_check(pool), BN_OK);
    return s;
}

static void *get(bn_gpu_pool *pool, size_t size)
{
    void *p = NULL;
    assert_int_equal(bn_gpu_pool_alloc(pool, size, &p), BN_OK);
    assert_non_null(p);
    return p;
}

/* ---- fragmentation, best fit ---------------------------------------------------------------- */

/* 1 MiB in 16 blocks of 64 KiB; freeing every other one leaves holes that the figures
 * follow exactly. */
static void test_fragmentation_figures(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_pool *pool = pool_make(&d, MIB, 256, 4 * KIB, 16 * KIB);
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(s.reserved, MIB);
    assert_int_equal(s.arena_free, MIB);
    assert_int_equal(s.largest_free, MIB);
    assert_true(s.fragmentation == 0.0);
    char *b[8];
    for (int i = 0; i < 8; i++) b[i] = get(pool, 64 * KIB);
    for (int i = 1; i < 8; i++) assert_ptr_equal(b[i], b[0] + (size_t)i * 64 * KIB);
    s = stats(pool);
    assert_int_equal(s.used, 512 * KIB);
    assert_int_equal(s.arena_free, 512 * KIB);
    assert_true(s.fragmentation == 0.0);
    /* holes at 1, 3, 5 (64 KiB each) and the 512 KiB tail: 1 - 512/704 = 3/11 */
    for (int i = 1; i < 8; i += 2)
        if (i != 7) assert_int_equal(bn_gpu_pool_dealloc(pool, b[i]), BN_OK);
    s = stats(pool);
    assert_int_equal(s.used, 320 * KIB);
    assert_int_equal(s.arena_free, 704 * KIB);
    assert_int_equal(s.largest_free, 512 * KIB);
    assert_float_equal(s.fragmentation, 3.0 / 11.0, 1e-12);
    /* 7 merges with the tail: 576 of 768 free in one piece: 1/4 */
    assert_int_equal(bn_gpu_pool_dealloc(pool, b[7]), BN_OK);
    s = stats(pool);
    assert_int_equal(s.largest_free, 576 * KIB);
    assert_float_equal(s.fragmentation, 0.25, 1e-12);
    /* 2 joins 1 and 3 into 192 KiB: holes 192, 64, 576 of 832: 1 - 576/832 = 4/13 */
    assert_int_equal(bn_gpu_pool_dealloc(pool, b[2]), BN_OK);
    s = stats(pool);
    assert_int_equal(s.arena_free, 832 * KIB);
    assert_float_equal(s.fragmentation, 4.0 / 13.0, 1e-12);
    assert_int_equal(s.peak_used, 512 * KIB);
    /* best fit: 60000 bytes (60160 rounded) go to the 64 KiB hole at 5, not the first
     * hole that holds them (192 KiB at 1); 100000 then to the 192 KiB hole */
    char *x = get(pool, 60000);
    assert_ptr_equal(x, b[5]);
    assert_int_equal(bn_gpu_pool_block_size(pool, x), 60160);
    char *y = get(pool, 100000);
    assert_ptr_equal(y, b[1]);
    s = stats(pool);
    assert_int_equal(s.used, (64 * 3) * KIB + 60160 + 100096);
    assert_int_equal(s.arena_free, MIB - s.used);
    for (int i = 0; i < 8; i += 2)
        if (i != 2) assert_int_equal(bn_gpu_pool_dealloc(pool, b[i]), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, x), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, y), BN_OK);
    s = stats(pool);
    assert_int_equal(s.used, 0);
    assert_int_equal(s.largest_free, MIB);
    assert_true(s.fragmentation == 0.0);
    assert_int_equal(s.n_alloc, 10);
    assert_int_equal(s.n_free, 10);
    bn_gpu_pool_free(pool);
    assert_int_equal(d.live, 0);
}

/* Small blocks share a slab per class; an empty slab goes back to the arena. */
static void test_size_classes(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_pool *pool = pool_make(&d, MIB, 256, 4 * KIB, 16 * KIB);
    char *a = get(pool, 1), *b = get(pool, 256), *c = get(pool, 257), *e = get(pool, 4 * KIB);
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(s.used, 256 + 256 + 512 + 4096);
    assert_int_equal(s.slab_bytes, 3 * 16 * KIB); /* classes 256, 512, 4096 */
    assert_int_equal(s.arena_free, MIB - 48 * KIB);
    assert_ptr_equal(b, a + 256);      /* same slab, next slot */
    assert_ptr_equal(c, a + 16 * KIB); /* the 512 class's slab after it */
    assert_int_equal(bn_gpu_pool_block_size(pool, c), 512);
    assert_int_equal(bn_gpu_pool_block_size(pool, c + 256), 0); /* not a slot's start */
    /* 4 KiB + 1 is a large block: rounded to 4352, from the arena */
    char *big = get(pool, 4 * KIB + 1);
    assert_int_equal(bn_gpu_pool_block_size(pool, big), 4352);
    assert_int_equal(stats(pool).slab_bytes, 48 * KIB);
    /* 16 KiB / 4 KiB = 4 slots: a fifth block of that class takes a second slab */
    char *f[4];
    for (int i = 0; i < 4; i++) f[i] = get(pool, 4000);
    assert_int_equal(stats(pool).slab_bytes, 4 * 16 * KIB);
    for (int i = 0; i < 4; i++) assert_int_equal(bn_gpu_pool_dealloc(pool, f[i]), BN_OK);
    assert_int_equal(stats(pool).slab_bytes, 3 * 16 * KIB);
    assert_int_equal(bn_gpu_pool_dealloc(pool, a), BN_OK);
    assert_int_equal(stats(pool).slab_bytes, 3 * 16 * KIB); /* b still holds it */
    assert_int_equal(bn_gpu_pool_dealloc(pool, b), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, c), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, e), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, big), BN_OK);
    s = stats(pool);
    assert_int_equal(s.slab_bytes, 0);
    assert_int_equal(s.used, 0);
    assert_int_equal(s.largest_free, MIB);
    bn_gpu_pool_free(pool);
    assert_int_equal(d.live, 0);
}

/* ---- the pressure chain ---------------------------------------------------------------------- */

typedef struct responder {
    int order[16], n_calls;
    void *give[BN_GPU_PRESSURE_COUNT_]; /* the block each stage frees (NULL: none) */
    size_t gave[BN_GPU_PRESSURE_COUNT_];
} responder;

typedef struct stage_arg {
    responder *r;
    int stage;
} stage_arg;

static size_t respond(bn_gpu_pool *pool, size_t need, void *user)
{
    stage_arg *a = user;
    responder *r = a->r;
    assert_true(need > 0);
    r->order[r->n_calls++] = a->stage;
    void *p = r->give[a->stage];
    if (!p) return 0;
    const size_t n = bn_gpu_pool_block_size(pool, p);
    assert_int_equal(bn_gpu_pool_dealloc(pool, p), BN_OK);
    r->give[a->stage] = NULL;
    r->gave[a->stage] += n;
    /* an allocation inside a response does not start the chain again */
    void *q = NULL;
    assert_int_equal(bn_gpu_pool_alloc(pool, 768 * KIB, &q), BN_ERR_NOMEM);
    return n;
}

static int n_logged;
static char last_log[256];
static void log_fn(bn_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == BN_LOG_WARN && strstr(msg, "GPU pool")) {
        n_logged++;
        snprintf(last_log, sizeof last_log, "%s", msg);
    }
}

static void test_pressure_chain(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_pool *pool = pool_make(&d, MIB, 256, 4 * KIB, 16 * KIB);
    char *b[4];
    for (int i = 0; i < 4; i++) b[i] = get(pool, 256 * KIB);
    responder r = {.give = {b[0], b[1], b[2]}};
    stage_arg args[3] = {{&r, 0}, {&r, 1}, {&r, 2}};
    /* set in reverse: the chain still runs evict_kv, shrink_ctx, cpu_layers */
    for (int s = 2; s >= 0; s--) bn_gpu_pool_set_pressure(pool, s, respond, &args[s]);
    bn_set_log(log_fn, NULL);
    n_logged = 0;
    /* 512 KiB: evicting b0 frees 256 KiB (not enough), shrinking frees b1 beside it: fits */
    void *big = get(pool, 512 * KIB);
    assert_ptr_equal(big, b[0]);
    assert_int_equal(r.n_calls, 2);
    assert_int_equal(r.order[0], BN_GPU_PRESSURE_EVICT_KV);
    assert_int_equal(r.order[1], BN_GPU_PRESSURE_SHRINK_CTX);
    assert_int_equal(n_logged, 2);
    assert_non_null(strstr(last_log, "shrink_ctx released 262144 bytes"));
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(s.n_pressure[0], 1);
    assert_int_equal(s.n_pressure[1], 1);
    assert_int_equal(s.n_pressure[2], 0);
    assert_int_equal(s.n_rescued, 1);
    assert_int_equal(s.n_fail, 2); /* the two nested tries inside the responses */
    /* 512 KiB again: nothing to evict or shrink, the CPU fallback frees b2 (256 KiB): the
     * allocation fails after all three, in order */
    void *q = NULL;
    assert_int_equal(bn_gpu_pool_alloc(pool, 512 * KIB, &q), BN_ERR_NOMEM);
    assert_null(q);
    assert_int_equal(r.n_calls, 5);
    assert_int_equal(r.order[2], 0);
    assert_int_equal(r.order[3], 1);
    assert_int_equal(r.order[4], 2);
    assert_int_equal(r.gave[2], 256 * KIB);
    s = stats(pool);
    assert_int_equal(s.n_pressure[0], 2);
    assert_int_equal(s.n_pressure[1], 2);
    assert_int_equal(s.n_pressure[2], 1);
    assert_int_equal(s.n_fail, 4);
    assert_int_equal(s.used, 512 * KIB + 256 * KIB);
    assert_int_equal(n_logged, 5);
    bn_set_log(NULL, NULL);
    /* without responses a failure is immediate */
    for (int st = 0; st < 3; st++) bn_gpu_pool_set_pressure(pool, st, NULL, NULL);
    assert_int_equal(bn_gpu_pool_alloc(pool, 512 * KIB, &q), BN_ERR_NOMEM);
    assert_int_equal(r.n_calls, 5);
    assert_string_equal(bn_gpu_pressure_name(BN_GPU_PRESSURE_CPU_LAYERS), "cpu_layers");
    assert_null(bn_gpu_pressure_name(BN_GPU_PRESSURE_COUNT_));
    bn_gpu_pool_free(pool);
    assert_int_equal(d.live, 0);
}

/* ---- random use ------------------------------------------------------------------------------ */

/* a 64-bit LCG (Knuth's MMIX constants), the high bits */
static uint32_t rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

#define LIVE_MAX 160

typedef struct live_block {
    char *p;
    size_t size;
    uint64_t tag;
} live_block;

/* the block's first and last 8 bytes hold its tag: an overlap would overwrite one */
static void tag_block(live_block *b)
{
    memcpy(b->p, &b->tag, 8);
    memcpy(b->p + b->size - 8, &b->tag, 8);
}

static void check_tag(const live_block *b)
{
    uint64_t t0, t1;
    memcpy(&t0, b->p, 8);
    memcpy(&t1, b->p + b->size - 8, 8);
    assert_true(t0 == b->tag && t1 == b->tag);
}

static void test_random_no_leak(void **state)
{
    (void)state;
    fake_dev d = {0};
    const size_t align = 512;
    bn_gpu_pool *pool = pool_make(&d, 8 * MIB, align, 8 * KIB, 64 * KIB);
    live_block live[LIVE_MAX];
    size_t n_live = 0, expect_used = 0, n_nomem = 0;
    uint64_t seed = 20261206;
    uint64_t tag = 1;
    for (int op = 0; op < 100000; op++) {
        const uint32_t r = rng(&seed);
        if (n_live == LIVE_MAX || (n_live > 0 && r % 100 < 45)) {
            const size_t i = rng(&seed) % n_live;
            check_tag(&live[i]);
            expect_used -= bn_gpu_pool_block_size(pool, live[i].p);
            assert_int_equal(bn_gpu_pool_dealloc(pool, live[i].p), BN_OK);
            live[i] = live[--n_live];
        } else {
            /* sizes from 16 bytes to 256 KiB, small ones more often (16: room for two tags) */
            const size_t size = 16 + (r >> 8) % (r % 3 ? 8 * KIB : 256 * KIB);
            void *p = NULL;
            const bn_status rc = bn_gpu_pool_alloc(pool, size, &p);
            if (rc == BN_ERR_NOMEM) {
                n_nomem++;
                continue;
            }
            assert_int_equal(rc, BN_OK);
            assert_int_equal((uintptr_t)p % align, 0);
            const size_t got = bn_gpu_pool_block_size(pool, p);
            assert_true(got >= size && got % align == 0);
            expect_used += got;
            live[n_live] = (live_block){.p = p, .size = size, .tag = tag++};
            tag_block(&live[n_live++]);
        }
        if (op % 997 == 0) assert_int_equal(stats(pool).used, expect_used);
    }
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(s.used, expect_used);
    assert_int_equal(s.n_blocks, n_live);
    assert_true(s.peak_used >= s.used && s.peak_used <= 8 * MIB);
    while (n_live) {
        check_tag(&live[n_live - 1]);
        assert_int_equal(bn_gpu_pool_dealloc(pool, live[--n_live].p), BN_OK);
    }
    s = stats(pool);
    assert_int_equal(s.used, 0);
    assert_int_equal(s.n_blocks, 0);
    assert_int_equal(s.slab_bytes, 0);
    assert_int_equal(s.arena_free, 8 * MIB);
    assert_int_equal(s.largest_free, 8 * MIB);
    assert_int_equal(s.n_alloc, s.n_free);
    assert_int_equal(s.n_fail, n_nomem);
    assert_true(s.n_alloc > 40000);
    bn_gpu_pool_free(pool);
    assert_int_equal(d.live, 0);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_alignment(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_pool *pool = pool_make(&d, 4 * MIB, 4096, 64 * KIB, 256 * KIB);
    const size_t sizes[] = {1, 100, 4095, 4096, 4097, 70000, 65536, 65537, 1000000};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = get(pool, sizes[i]);
        assert_int_equal((uintptr_t)p[i] % 4096, 0);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        assert_int_equal(bn_gpu_pool_dealloc(pool, p[i]), BN_OK);
    assert_int_equal(stats(pool).used, 0);
    bn_gpu_pool_free(pool);
    /* a device allocation off the alignment is refused (and released) */
    d.misalign = 256;
    bn_gpu_allocator a = {.alloc = fake_alloc, .free = fake_free, .user = &d};
    bn_gpu_pool_params prm;
    bn_gpu_pool_params_init(&prm);
    prm.reserve = MIB;
    prm.align = 4096;
    bn_gpu_pool *bad = NULL;
    assert_int_equal(bn_gpu_pool_new(NULL, &a, &prm, &bad), BN_ERR_INVALID);
    assert_null(bad);
    assert_int_equal(d.live, 0);
}

static void test_double_free_and_foreign(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_ctx *ctx = NULL;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    bn_gpu_allocator a = {.alloc = fake_alloc, .free = fake_free, .user = &d};
    bn_gpu_pool_params prm;
    bn_gpu_pool_params_init(&prm);
    prm.reserve = MIB;
    prm.small_max = 4 * KIB;
    prm.slab_bytes = 16 * KIB;
    bn_gpu_pool *pool = NULL;
    assert_int_equal(bn_gpu_pool_new(ctx, &a, &prm, &pool), BN_OK);
    char *big = get(pool, 100 * KIB), *s1 = get(pool, 300), *s2 = get(pool, 300);
    const bn_gpu_pool_stats before = stats(pool);
    char local;
    char *const bad[] = {NULL,    &local,   big + 256,     big - 1,
                         s1 + 16, s2 + 512, big + MIB * 2, (char *)d.raw + MIB};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bn_gpu_pool_dealloc(pool, bad[i]), BN_ERR_INVALID);
        assert_non_null(strstr(bn_ctx_errmsg(ctx), "not a block held from this pool"));
    }
    assert_int_equal(bn_gpu_pool_dealloc(pool, s1), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, s1), BN_ERR_INVALID); /* slot of a live slab */
    assert_int_equal(bn_gpu_pool_dealloc(pool, big), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, big), BN_ERR_INVALID); /* in a free extent */
    assert_int_equal(bn_gpu_pool_dealloc(pool, s2), BN_OK);
    assert_int_equal(bn_gpu_pool_dealloc(pool, s2), BN_ERR_INVALID); /* its slab is gone */
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(s.n_free, before.n_free + 3);
    assert_int_equal(s.used, 0);
    void *p = NULL;
    assert_int_equal(bn_gpu_pool_alloc(pool, 0, &p), BN_ERR_INVALID);
    assert_int_equal(bn_gpu_pool_alloc(pool, 2 * MIB, &p), BN_ERR_NOMEM);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "2097152 bytes"));
    bn_gpu_pool_free(pool);
    bn_ctx_free(ctx);
    assert_int_equal(d.live, 0);
}

static void test_bad_params_and_oom(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_allocator a = {.alloc = fake_alloc, .free = fake_free, .user = &d};
    static const struct {
        size_t reserve, align, small_max, slab;
    } bad[] = {
            {MIB, 100, 4096, 16384}, /* align not a power of two */
            {MIB, 8, 4096, 16384},   /* align below 16 */
            {MIB, 256, 3000, 16384}, /* small_max not a power of two */
            {MIB, 256, 128, 16384},  /* small_max below align */
            {MIB, 256, 4096, 4096},  /* slab under 2 * small_max */
            {MIB, 256, 4096, 16400}, /* slab not a multiple of align */
            {0, 256, 4096, 16384},   /* nothing to reserve */
            {MIB + 1, 256, 4096, 16384},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_gpu_pool_params p = {bad[i].reserve, bad[i].align, bad[i].small_max, bad[i].slab};
        bn_gpu_pool *pool = NULL;
        assert_int_equal(bn_gpu_pool_new(NULL, &a, &p, &pool), BN_ERR_INVALID);
        assert_null(pool);
    }
    assert_int_equal(d.calls, 0);
    bn_gpu_pool_params p;
    bn_gpu_pool_params_init(&p);
    p.reserve = MIB;
    bn_gpu_pool *pool = NULL;
    d.fail = 1;
    assert_int_equal(bn_gpu_pool_new(NULL, &a, &p, &pool), BN_ERR_NOMEM);
    d.fail = 0;
    /* each host allocation (the pool, its extent table, the slab table, a slab's bitmap,
     * the extent table growing past 64) fails in turn: a status, never a crash, the
     * bookkeeping stays whole and the device memory is always given back */
    p.small_max = 4 * KIB;
    p.slab_bytes = 16 * KIB;
    for (long n = 1; n < 10; n++) {
        bn_alloc_fail_at(n, 1);
        pool = NULL;
        bn_status rc = bn_gpu_pool_new(NULL, &a, &p, &pool);
        if (rc == BN_OK) {
            void *blk[150];
            int got = 0;
            for (int i = 0; i < 150; i++)
                if (bn_gpu_pool_alloc(pool, i % 3 ? 8 * KIB : 100, &blk[got]) == BN_OK) got++;
            assert_int_equal(bn_gpu_pool_check(pool), BN_OK);
            assert_true(n < 6 || got == 150); /* past the fifth, nothing fails */
            for (int i = 0; i < got; i++)
                assert_int_equal(bn_gpu_pool_dealloc(pool, blk[i]), BN_OK);
            bn_gpu_pool_free(pool);
        } else {
            assert_int_equal(rc, BN_ERR_NOMEM);
        }
        bn_alloc_fail_at(0, 0);
        assert_int_equal(d.live, 0);
    }
}

/* ---- metrics ------------------------------------------------------------------------------- */

static void expect_line(const bn_buf *b, const char *line)
{
    if (!strstr(b->s, line)) fail_msg("no line %s in\n%s", line, b->s);
}

static void test_metrics(void **state)
{
    (void)state;
    fake_dev d = {0};
    bn_gpu_pool *pool = pool_make(&d, MIB, 256, 4 * KIB, 16 * KIB);
    char *b[3];
    for (int i = 0; i < 3; i++) b[i] = get(pool, 256 * KIB);
    assert_int_equal(bn_gpu_pool_dealloc(pool, b[1]), BN_OK);
    bn_metrics *m = NULL;
    assert_int_equal(bn_metrics_new(&m), 0);
    bn_gpu_pool_stats s = stats(pool);
    assert_int_equal(bn_gpu_pool_metrics_update(m, "0", &s), 0);
    /* a second update sets the same families again */
    void *q = NULL;
    assert_int_equal(bn_gpu_pool_alloc(pool, 768 * KIB, &q), BN_ERR_NOMEM);
    s = stats(pool);
    assert_int_equal(bn_gpu_pool_metrics_update(m, "0", &s), 0);
    bn_buf out;
    bn_buf_init(&out, 1 << 20);
    assert_int_equal(bn_metrics_render(m, &out), 0);
    /* 512 KiB free in two extents of 256 KiB: fragmentation 1/2 */
    expect_line(&out, "bitnet_gpu_pool_reserved_bytes{gpu=\"0\"} 1048576\n");
    expect_line(&out, "bitnet_gpu_pool_used_bytes{gpu=\"0\"} 524288\n");
    expect_line(&out, "bitnet_gpu_pool_peak_used_bytes{gpu=\"0\"} 786432\n");
    expect_line(&out, "bitnet_gpu_pool_free_bytes{gpu=\"0\"} 524288\n");
    expect_line(&out, "bitnet_gpu_pool_largest_free_bytes{gpu=\"0\"} 262144\n");
    expect_line(&out, "bitnet_gpu_pool_fragmentation_ratio{gpu=\"0\"} 0.5\n");
    expect_line(&out, "bitnet_gpu_pool_allocations_total{gpu=\"0\"} 3\n");
    expect_line(&out, "bitnet_gpu_pool_frees_total{gpu=\"0\"} 1\n");
    expect_line(&out, "bitnet_gpu_pool_failures_total{gpu=\"0\"} 1\n");
    expect_line(&out, "bitnet_gpu_pool_pressure_total{gpu=\"0\",stage=\"cpu_layers\"} 0\n");
    expect_line(&out, "# TYPE bitnet_gpu_pool_frees_total counter\n");
    bn_buf_release(&out);
    bn_metrics_free(m);
    bn_gpu_pool_free(pool);
    assert_int_equal(d.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fragmentation_figures),
            cmocka_unit_test(test_size_classes),
            cmocka_unit_test(test_pressure_chain),
            cmocka_unit_test(test_random_no_leak),
            cmocka_unit_test(test_alignment),
            cmocka_unit_test(test_double_free_and_foreign),
            cmocka_unit_test(test_bad_params_and_oom),
            cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
