/*
 * bitnet/core.h - status codes, the context, allocation, logging, checked arithmetic.
 *
 * Usage:
 *
 *     bn_ctx *ctx;
 *     bn_status rc = bn_ctx_new(&ctx, NULL);          // defaults: all cores
 *     if (rc != BN_OK) { fprintf(stderr, "%s\n", bn_status_str(rc)); return 1; }
 *     rc = something_that_takes(ctx, ...);
 *     if (rc != BN_OK) fprintf(stderr, "error: %s\n", bn_ctx_errmsg(ctx));
 *     bn_ctx_free(ctx);
 *
 * Ownership: the caller owns the context and frees it with bn_ctx_free(). The
 * message returned by bn_ctx_errmsg() belongs to the context and stays valid
 * until the next call that sets an error on it.
 *
 * Memory: every allocation of the engine goes through one hook (bn_set_allocator).
 * bn_alloc_fail_at(n) makes the n-th allocation from now fail, so tests can walk
 * every out-of-memory path. Blocks from bn_malloc/bn_calloc/bn_aligned_alloc are
 * all released with bn_free().
 */
#ifndef BITNET_CORE_H
#define BITNET_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BN_VERSION_MAJOR 0
#define BN_VERSION_MINOR 1
#define BN_VERSION_PATCH 0
#define BN_VERSION_STRING "0.1.0"

/* Status codes. Values are stable and only ever grow. */
typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_NOMEM = 1,       /* an allocation failed */
    BN_ERR_INVALID = 2,     /* bad argument from the caller */
    BN_ERR_IO = 3,          /* read, write, open, mmap failed */
    BN_ERR_FORMAT = 4,      /* malformed or truncated input data */
    BN_ERR_UNSUPPORTED = 5, /* valid input this build cannot handle */
    BN_ERR_RANGE = 6,       /* a size or value is out of the allowed range */
    BN_ERR_OVERFLOW = 7,    /* size arithmetic overflowed */
    BN_ERR_NOT_FOUND = 8,   /* a named item does not exist */
    BN_ERR_CANCELLED = 9,   /* work stopped on request */
    BN_ERR_THREAD = 10,     /* a thread could not be created or joined */
    BN_ERR_INTERNAL = 11,   /* a bug: an invariant did not hold */
    BN_STATUS_COUNT_ /* keep last */
} bn_status;

/* A short fixed description of a status ("out of memory"). Never NULL. */
const char *bn_status_str(bn_status s);

/* ---- the context --------------------------------------------------------- */

typedef struct bn_ctx bn_ctx;
typedef struct bn_threadpool bn_threadpool;

typedef struct bn_ctx_params {
    int n_threads; /* 0: one per online core */
} bn_ctx_params;

/* Creates a context with its thread pool. p may be NULL for defaults. */
bn_status bn_ctx_new(bn_ctx **out, const bn_ctx_params *p);
void bn_ctx_free(bn_ctx *ctx);

/* The detailed message of the last error set on ctx ("" when none). */
const char *bn_ctx_errmsg(const bn_ctx *ctx);
/* The status of the last error set on ctx (BN_OK when none). */
bn_status bn_ctx_status(const bn_ctx *ctx);
void bn_ctx_clear_error(bn_ctx *ctx);
/* Sets the error on ctx (ctx may be NULL: then only returns s) and returns s. */
bn_status bn_ctx_set_error(bn_ctx *ctx, bn_status s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The context's thread pool (owned by the context). */
bn_threadpool *bn_ctx_pool(bn_ctx *ctx);
int bn_ctx_n_threads(const bn_ctx *ctx);

/* ---- allocation ---------------------------------------------------------- */

typedef struct bn_allocator {
    /* Returns a block of size bytes aligned to align (a power of two >= sizeof(void *)),
     * or NULL. size is never 0. */
    void *(*alloc)(size_t size, size_t align, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} bn_allocator;

/* Installs a hook (NULL restores the default, posix_memalign/free). Not thread-safe:
 * call it before any other thread uses the engine. */
void bn_set_allocator(const bn_allocator *a);

/* Test mode: the n-th allocation from now (1 = the next one) fails, and so does every
 * later one when sticky is nonzero. n = 0 turns the test mode off. */
void bn_alloc_fail_at(long n, int sticky);
/* Number of allocations made through the hook since start (for tests). */
long bn_alloc_count(void);

#define BN_DEFAULT_ALIGN 64

void *bn_malloc(size_t size);                   /* 64-byte aligned; size 0 -> 1 */
void *bn_calloc(size_t n, size_t size);         /* zeroed; NULL on overflow */
void *bn_aligned_alloc(size_t align, size_t size);
void bn_free(void *p);                          /* NULL is fine */
char *bn_strdup(const char *s);

/* ---- logging --------------------------------------------------------------- */

typedef enum bn_log_level {
    BN_LOG_DEBUG = 0,
    BN_LOG_INFO = 1,
    BN_LOG_WARN = 2,
    BN_LOG_ERROR = 3,
} bn_log_level;

typedef void (*bn_log_fn)(bn_log_level level, const char *msg, void *user);

/* Sets the process-wide log callback (NULL: messages are dropped, the default). */
void bn_set_log(bn_log_fn fn, void *user);
void bn_log(bn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checked size arithmetic --------------------------------------------- */

/* Each returns 0 and stores the result, or returns nonzero on overflow. */
static inline int bn_mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline int bn_add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
static inline int bn_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline int bn_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

/* Programmer errors only (never bad input): prints and aborts. */
#define BN_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) bn__assert_fail(#x, __FILE__, __LINE__);                                         \
    } while (0)
void bn__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Monotonic time in seconds (for benchmarks and progress). */
double bn_time_now(void);
/* The wall clock: milliseconds since the Unix epoch (for records and timestamps). */
int64_t bn_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_CORE_H */
