/* test_bench_util.c - the benchmarks' shared helpers: the read-bandwidth probe reads every
 * word of its buffer exactly once (its four skewed streams wrap), on 1 to 3 threads and
 * sizes that leave tails; the median. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "../../app/bench/bench_util.h"
#include "bitnet/threadpool.h"

static void test_probe_reads_every_word_once(void **state)
{
    (void)state;
    /* tails, sizes around a stream's skew (296 words) and powers of two */
    static const int64_t sizes[] = {0,   1,    7,    8,    31,   32,    33,    255,
                                    296, 1184, 1185, 2399, 4096, 10007, 65536, 65545};
    const int64_t max = 65545;
    uint64_t *buf = malloc((size_t)max * sizeof *buf), seed = 7;
    assert_non_null(buf);
    for (int64_t i = 0; i < max; i++) buf[i] = bn_bench_rng(&seed);
    for (int nth = 1; nth <= 3; nth++) {
        bn_threadpool *pool = NULL;
        assert_int_equal(bn_pool_new(&pool, nth), 0);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            uint64_t want = 0, got = 1;
            for (int64_t i = 0; i < sizes[s]; i++) want += buf[i];
            assert_true(bn_bench_probe_seconds(pool, buf, sizes[s], &got) >= 0.0);
            if (got != want)
                fail_msg("threads %d, %lld words: sum differs", nth, (long long)sizes[s]);
        }
        bn_pool_free(pool);
    }
    free(buf);
}

static void test_median(void **state)
{
    (void)state;
    double odd[] = {5, 1, 3}, even[] = {4, 1, 3, 2};
    assert_true(bn_bench_median(odd, 3) == 3.0);
    assert_true(bn_bench_median(even, 4) == 2.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_probe_reads_every_word_once),
            cmocka_unit_test(test_median),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
