/* test_core.c - status strings, errors on the context, the allocation hook, logging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"

static void test_status_str(void **state)
{
    (void)state;
    assert_string_equal(bn_status_str(BN_OK), "ok");
    assert_string_equal(bn_status_str(BN_ERR_NOMEM), "out of memory");
    assert_string_equal(bn_status_str(BN_ERR_FORMAT), "malformed input");
    for (int s = 0; s < BN_STATUS_COUNT_; s++) {
        assert_non_null(bn_status_str((bn_status)s));
        assert_string_not_equal(bn_status_str((bn_status)s), "unknown status");
    }
    assert_string_equal(bn_status_str((bn_status)999), "unknown status");
    assert_string_equal(bn_status_str((bn_status)-1), "unknown status");
}

static void test_ctx_errors(void **state)
{
    (void)state;
    bn_ctx *ctx;
    bn_ctx_params p = {.n_threads = 2};
    assert_int_equal(bn_ctx_new(&ctx, &p), BN_OK);
    assert_int_equal(bn_ctx_n_threads(ctx), 2);
    assert_non_null(bn_ctx_pool(ctx));
    assert_string_equal(bn_ctx_errmsg(ctx), "");
    assert_int_equal(bn_ctx_status(ctx), BN_OK);
    assert_int_equal(bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor '%s': bad type %d", "x", 99),
                     BN_ERR_FORMAT);
    assert_string_equal(bn_ctx_errmsg(ctx), "tensor 'x': bad type 99");
    assert_int_equal(bn_ctx_status(ctx), BN_ERR_FORMAT);
    /* long messages are cut, never overflow */
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bn_ctx_set_error(ctx, BN_ERR_IO, "%s", big);
    assert_true(strlen(bn_ctx_errmsg(ctx)) < sizeof big - 1);
    bn_ctx_clear_error(ctx);
    assert_string_equal(bn_ctx_errmsg(ctx), "");
    bn_ctx_free(ctx);
    /* a NULL context only passes the status through */
    assert_int_equal(bn_ctx_set_error(NULL, BN_ERR_IO, "x"), BN_ERR_IO);
    assert_string_equal(bn_ctx_errmsg(NULL), "");
    bn_ctx_free(NULL);
}

static void test_alloc_alignment(void **state)
{
    (void)state;
    size_t aligns[] = {8, 16, 32, 64, 128, 4096};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *p = bn_aligned_alloc(aligns[i], 100);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % aligns[i], 0);
        memset(p, 1, 100);
        bn_free(p);
    }
    assert_null(bn_aligned_alloc(48, 10)); /* not a power of two */
    void *p = bn_malloc(0);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % BN_DEFAULT_ALIGN, 0);
    bn_free(p);
    bn_free(NULL);
    unsigned char *z = bn_calloc(10, 10);
    assert_non_null(z);
    for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
    bn_free(z);
    assert_null(bn_calloc(SIZE_MAX / 2, 3)); /* overflow */
    char *s = bn_strdup("hello");
    assert_string_equal(s, "hello");
    bn_free(s);
}

static void test_alloc_fail_at(void **state)
{
    (void)state;
    bn_alloc_fail_at(3, 0);
    void *a = bn_malloc(8), *b = bn_malloc(8), *c = bn_malloc(8), *d = bn_malloc(8);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c); /* the third fails */
    assert_non_null(d); /* not sticky */
    bn_free(a);
    bn_free(b);
    bn_free(d);
    bn_alloc_fail_at(2, 1);
    a = bn_malloc(8);
    b = bn_malloc(8);
    c = bn_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_null(c); /* sticky */
    bn_free(a);
    bn_alloc_fail_at(0, 0);
    a = bn_malloc(8);
    assert_non_null(a);
    bn_free(a);
}

/* Every allocation of bn_ctx_new fails in turn: each must give NOMEM (or THREAD) cleanly. */
static void test_ctx_new_oom(void **state)
{
    (void)state;
    for (long n = 1; n < 20; n++) {
        bn_ctx *ctx = (bn_ctx *)1;
        bn_ctx_params p = {.n_threads = 3};
        bn_alloc_fail_at(n, 0);
        bn_status rc = bn_ctx_new(&ctx, &p);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            bn_ctx_free(ctx);
            return; /* past the last allocation: done */
        }
        assert_int_equal(rc, BN_ERR_NOMEM);
        assert_null(ctx);
    }
    fail_msg("bn_ctx_new kept failing");
}

typedef struct counting {
    long allocs, frees;
} counting;

static void *count_alloc(size_t size, size_t align, void *user)
{
    counting *c = user;
    void *p = NULL;
    if (posix_memalign(&p, align, size)) return NULL;
    c->allocs++;
    return p;
}

static void count_free(void *p, void *user)
{
    counting *c = user;
    c->frees++;
    free(p);
}

static void test_custom_allocator(void **state)
{
    (void)state;
    counting c = {0, 0};
    bn_allocator a = {count_alloc, count_free, &c};
    bn_set_allocator(&a);
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, NULL), BN_OK);
    bn_ctx_free(ctx);
    bn_set_allocator(NULL);
    assert_true(c.allocs >= 2);
    assert_int_equal(c.allocs, c.frees);
}

static char g_last_log[256];
static int g_last_level = -1;

static void log_cb(bn_log_level level, const char *msg, void *user)
{
    (void)user;
    g_last_level = (int)level;
    snprintf(g_last_log, sizeof g_last_log, "%s", msg);
}

static void test_log(void **state)
{
    (void)state;
    bn_log(BN_LOG_WARN, "dropped %d", 1); /* no callback: nothing happens */
    assert_int_equal(g_last_level, -1);
    bn_set_log(log_cb, NULL);
    bn_log(BN_LOG_WARN, "hello %d", 42);
    assert_int_equal(g_last_level, BN_LOG_WARN);
    assert_string_equal(g_last_log, "hello 42");
    bn_set_log(NULL, NULL);
    bn_log(BN_LOG_ERROR, "gone");
    assert_string_equal(g_last_log, "hello 42");
}

static void test_checked_arith(void **state)
{
    (void)state;
    size_t s;
    uint64_t u;
    assert_int_equal(bn_mul_size(1000, 1000, &s), 0);
    assert_int_equal(s, 1000000);
    assert_int_not_equal(bn_mul_size(SIZE_MAX / 2 + 1, 2, &s), 0);
    assert_int_not_equal(bn_add_size(SIZE_MAX, 1, &s), 0);
    assert_int_equal(bn_add_u64(1, 2, &u), 0);
    assert_int_equal(u, 3);
    assert_int_not_equal(bn_mul_u64(UINT64_MAX, 2, &u), 0);
    assert_int_not_equal(bn_add_u64(UINT64_MAX, 1, &u), 0);
}

static void test_time(void **state)
{
    (void)state;
    double a = bn_time_now(), b = bn_time_now();
    assert_true(b >= a);
    assert_true(a > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_status_str),      cmocka_unit_test(test_ctx_errors),
            cmocka_unit_test(test_alloc_alignment), cmocka_unit_test(test_alloc_fail_at),
            cmocka_unit_test(test_ctx_new_oom),     cmocka_unit_test(test_custom_allocator),
            cmocka_unit_test(test_log),             cmocka_unit_test(test_checked_arith),
            cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
