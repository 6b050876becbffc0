/* test_threadpool.c - the persistent pool: coverage of ranges, reuse, no thread per call. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/threadpool.h"

typedef struct cover {
    atomic_int *hits;
    int64_t grain, n;
    atomic_int bad_bounds;
    atomic_int calls_per_tid[16];
} cover;

static void cover_fn(void *arg, int64_t b, int64_t e, int tid)
{
    cover *c = arg;
    if (b % c->grain != 0 || (e != c->n && e % c->grain != 0) || b >= e || tid < 0 || tid >= 16)
        atomic_fetch_add(&c->bad_bounds, 1);
    else
        atomic_fetch_add(&c->calls_per_tid[tid], 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

static void check_cover(bn_threadpool *pool, int64_t n, int64_t grain)
{
    cover c;
    memset(&c, 0, sizeof c);
    c.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *c.hits);
    c.grain = grain < 1 ? 1 : grain;
    c.n = n;
    bn_pool_parallel_for(pool, n, grain, cover_fn, &c);
    for (int64_t i = 0; i < n; i++) assert_int_equal(atomic_load(&c.hits[i]), 1);
    assert_int_equal(atomic_load(&c.bad_bounds), 0);
    for (int t = 0; t < 16; t++) assert_true(atomic_load(&c.calls_per_tid[t]) <= 1);
    free(c.hits);
}

static void test_cover_all(void **state)
{
    (void)state;
    int sizes[] = {1, 2, 3, 4, 7};
    int64_t ns[] = {0, 1, 2, 3, 5, 16, 17, 100, 1000, 4097};
    int64_t grains[] = {0, 1, 3, 16, 64};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        bn_threadpool *pool;
        assert_int_equal(bn_pool_new(&pool, sizes[s]), BN_OK);
        assert_int_equal(bn_pool_size(pool), sizes[s]);
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            for (size_t g = 0; g < sizeof grains / sizeof *grains; g++)
                check_cover(pool, ns[i], grains[g]);
        bn_pool_free(pool);
    }
    check_cover(NULL, 100, 7); /* no pool: inline */
}

static void task_fn(void *arg, int tid, int nth)
{
    atomic_int *seen = arg;
    if (tid >= 0 && tid < nth && nth <= 8) atomic_fetch_add(&seen[tid], 1);
}

static void test_run_each_thread(void **state)
{
    (void)state;
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 4), BN_OK);
    atomic_int seen[8];
    memset(seen, 0, sizeof seen);
    bn_pool_run(pool, task_fn, seen);
    for (int t = 0; t < 4; t++) assert_int_equal(atomic_load(&seen[t]), 1);
    assert_int_equal(atomic_load(&seen[4]), 0);
    /* fewer active threads */
    memset(seen, 0, sizeof seen);
    bn_pool_set_active(pool, 2);
    assert_int_equal(bn_pool_active(pool), 2);
    bn_pool_run(pool, task_fn, seen);
    assert_int_equal(atomic_load(&seen[0]), 1);
    assert_int_equal(atomic_load(&seen[1]), 1);
    assert_int_equal(atomic_load(&seen[2]), 0);
    bn_pool_set_active(pool, 0);
    assert_int_equal(bn_pool_active(pool), 4);
    bn_pool_free(pool);
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void sum_fn(void *arg, int64_t b, int64_t e, int tid)
{
    (void)tid;
    atomic_long *s = arg;
    long local = 0;
    for (int64_t i = b; i < e; i++) local += (long)i;
    atomic_fetch_add(s, local);
}

/* Many calls in a row, switching the active count: results stay right, and the
 * number of threads of the process does not grow (no thread per call). */
static void test_many_calls_no_new_threads(void **state)
{
    (void)state;
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 3), BN_OK);
    int before = count_threads();
    for (int it = 0; it < 20000; it++) {
        atomic_long s = 0;
        if (it % 1000 == 0) bn_pool_set_active(pool, 1 + (it / 1000) % 3);
        bn_pool_parallel_for(pool, 1000, 10, sum_fn, &s);
        assert_int_equal(atomic_load(&s), 999L * 1000 / 2);
    }
    int after = count_threads();
    if (before > 0) assert_int_equal(before, after);
    bn_pool_free(pool);
    if (before > 0) assert_int_equal(count_threads(), before - 2);
}

/* Workers that went to sleep (after the spin period) wake up for the next job. */
static void test_wake_after_sleep(void **state)
{
    (void)state;
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 2), BN_OK);
    for (int it = 0; it < 5; it++) {
        struct timespec ts = {0, 20 * 1000 * 1000}; /* 20 ms: past the spin period */
        nanosleep(&ts, NULL);
        check_cover(pool, 64, 1);
    }
    bn_pool_free(pool);
}

static void test_new_oom(void **state)
{
    (void)state;
    for (long n = 1; n < 10; n++) {
        bn_threadpool *pool = (bn_threadpool *)1;
        bn_alloc_fail_at(n, 0);
        bn_status rc = bn_pool_new(&pool, 3);
        bn_alloc_fail_at(0, 0);
        if (rc == BN_OK) {
            bn_pool_free(pool);
            return;
        }
        assert_int_equal(rc, BN_ERR_NOMEM);
        assert_null(pool);
    }
    fail_msg("bn_pool_new kept failing");
}

static void test_default_size(void **state)
{
    (void)state;
    bn_threadpool *pool;
    assert_int_equal(bn_pool_new(&pool, 0), BN_OK);
    assert_true(bn_pool_size(pool) >= 1);
    bn_pool_free(pool);
    bn_pool_free(NULL);
    assert_int_equal(bn_pool_size(NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cover_all),
            cmocka_unit_test(test_run_each_thread),
            cmocka_unit_test(test_many_calls_no_new_threads),
            cmocka_unit_test(test_wake_after_sleep),
            cmocka_unit_test(test_new_oom),
            cmocka_unit_test(test_default_size),
    };
    return cmocka_run_group_tests_name("threadpool", tests, NULL, NULL);
}
