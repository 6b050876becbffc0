/* core.c - status strings, the context, the allocation hook, logging. */
#define _POSIX_C_SOURCE 200809L
#include "bitnet/core.h"
#include "bitnet/threadpool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[BN_STATUS_COUNT_] = {
        [BN_OK] = "ok",
        [BN_ERR_NOMEM] = "out of memory",
        [BN_ERR_INVALID] = "invalid argument",
        [BN_ERR_IO] = "input/output error",
        [BN_ERR_FORMAT] = "malformed input",
        [BN_ERR_UNSUPPORTED] = "unsupported",
        [BN_ERR_RANGE] = "value out of range",
        [BN_ERR_OVERFLOW] = "size overflow",
        [BN_ERR_NOT_FOUND] = "not found",
        [BN_ERR_CANCELLED] = "cancelled",
        [BN_ERR_THREAD] = "thread error",
        [BN_ERR_INTERNAL] = "internal error",
};

const char *bn_status_str(bn_status s)
{
    if ((int)s < 0 || s >= BN_STATUS_COUNT_ || !status_names[s]) return "unknown status";
    return status_names[s];
}

/* ---- allocation ---------------------------------------------------------- */

static void *default_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    return p;
}

static void default_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static bn_allocator g_alloc = {default_alloc, default_free, NULL};
static atomic_long g_alloc_count;
static atomic_long g_fail_at; /* absolute allocation number that fails; 0 = off */
static atomic_int g_fail_sticky;

void bn_set_allocator(const bn_allocator *a)
{
    if (a && a->alloc && a->free)
        g_alloc = *a;
    else
        g_alloc = (bn_allocator){default_alloc, default_free, NULL};
}

void bn_alloc_fail_at(long n, int sticky)
{
    atomic_store(&g_fail_sticky, sticky != 0);
    atomic_store(&g_fail_at, n > 0 ? atomic_load(&g_alloc_count) + n : 0);
}

long bn_alloc_count(void)
{
    return atomic_load(&g_alloc_count);
}

void *bn_aligned_alloc(size_t align, size_t size)
{
    if (align < sizeof(void *)) align = sizeof(void *);
    if (align & (align - 1)) return NULL;
    if (size == 0) size = 1;
    long k = atomic_fetch_add(&g_alloc_count, 1) + 1;
    long f = atomic_load(&g_fail_at);
    if (f > 0 && (k == f || (k > f && atomic_load(&g_fail_sticky)))) return NULL;
    return g_alloc.alloc(size, align, g_alloc.user);
}

void *bn_malloc(size_t size)
{
    return bn_aligned_alloc(BN_DEFAULT_ALIGN, size);
}

void *bn_calloc(size_t n, size_t size)
{
    size_t total;
    if (bn_mul_size(n, size, &total)) return NULL;
    void *p = bn_malloc(total);
    if (p) memset(p, 0, total ? total : 1);
    return p;
}

void bn_free(void *p)
{
    if (p) g_alloc.free(p, g_alloc.user);
}

char *bn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = bn_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- logging --------------------------------------------------------------- */

static bn_log_fn g_log_fn;
static void *g_log_user;

void bn_set_log(bn_log_fn fn, void *user)
{
    g_log_fn = fn;
    g_log_user = user;
}

void bn_log(bn_log_level level, const char *fmt, ...)
{
    if (!g_log_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(level, buf, g_log_user);
}

void bn__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "bitnet: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

double bn_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t bn_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the context ------------------------------------------------------------ */

struct bn_ctx {
    bn_threadpool *pool;
    bn_status status;
    char msg[512];
};

bn_status bn_ctx_new(bn_ctx **out, const bn_ctx_params *p)
{
    *out = NULL;
    bn_ctx *ctx = bn_calloc(1, sizeof *ctx);
    if (!ctx) return BN_ERR_NOMEM;
    bn_status rc = bn_pool_new(&ctx->pool, p ? p->n_threads : 0);
    if (rc != BN_OK) {
        bn_free(ctx);
        return rc;
    }
    *out = ctx;
    return BN_OK;
}

void bn_ctx_free(bn_ctx *ctx)
{
    if (!ctx) return;
    bn_pool_free(ctx->pool);
    bn_free(ctx);
}

const char *bn_ctx_errmsg(const bn_ctx *ctx)
{
    return ctx ? ctx->msg : "";
}

bn_status bn_ctx_status(const bn_ctx *ctx)
{
    return ctx ? ctx->status : BN_OK;
}

void bn_ctx_clear_error(bn_ctx *ctx)
{
    if (!ctx) return;
    ctx->status = BN_OK;
    ctx->msg[0] = '\0';
}

bn_status bn_ctx_set_error(bn_ctx *ctx, bn_status s, const char *fmt, ...)
{
    if (!ctx) return s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    ctx->status = s;
    return s;
}

bn_threadpool *bn_ctx_pool(bn_ctx *ctx)
{
    return ctx ? ctx->pool : NULL;
}

int bn_ctx_n_threads(const bn_ctx *ctx)
{
    return ctx ? bn_pool_size(ctx->pool) : 1;
}
