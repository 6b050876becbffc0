/*
 * bitnet/threadpool.h - a persistent pool of worker threads with a parallel-for.
 *
 * Usage:
 *
 *     static void work(void *arg, int64_t begin, int64_t end, int tid) {
 *         float *y = arg;
 *         for (int64_t i = begin; i < end; i++) y[i] = 2.0f * y[i];
 *     }
 *     bn_threadpool *pool;
 *     if (bn_pool_new(&pool, 4) == BN_OK) {
 *         bn_pool_parallel_for(pool, n, 16, work, y);   // blocks until all done
 *         bn_pool_free(pool);
 *     }
 *
 * The threads are created once by bn_pool_new and live until bn_pool_free; a call to
 * bn_pool_parallel_for wakes them (they spin briefly, then sleep on a condition
 * variable when idle), so no thread is created per call. The calling thread takes
 * part as thread 0. One caller at a time: the pool is not re-entrant, and fn must
 * not call back into the same pool.
 */
#ifndef BITNET_THREADPOOL_H
#define BITNET_THREADPOOL_H

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Work on the index range [begin, end) as thread tid (0 .. n_threads-1). */
typedef void (*bn_range_fn)(void *arg, int64_t begin, int64_t end, int tid);
/* Work run once by each thread tid of nth. */
typedef void (*bn_task_fn)(void *arg, int tid, int nth);

/* n_threads <= 0: one per online core. The pool holds n_threads - 1 workers. */
bn_status bn_pool_new(bn_threadpool **out, int n_threads);
void bn_pool_free(bn_threadpool *pool);
int bn_pool_size(const bn_threadpool *pool);

/* Splits [0, n) into at most n_threads contiguous ranges whose bounds are multiples of
 * grain (except the last end, n), calls fn on each, and returns when all are done.
 * Ranges are handed out statically: thread t always gets the t-th range, which keeps
 * each thread on the same rows from call to call. pool may be NULL (runs inline). */
void bn_pool_parallel_for(bn_threadpool *pool, int64_t n, int64_t grain, bn_range_fn fn,
                          void *arg);

/* Runs fn(arg, tid, nth) on every thread and returns when all are done. pool may be NULL. */
void bn_pool_run(bn_threadpool *pool, bn_task_fn fn, void *arg);

/* Limits how many of the pool's threads the next calls use (1 .. size; 0 = all). */
void bn_pool_set_active(bn_threadpool *pool, int n_active);
int bn_pool_active(const bn_threadpool *pool);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_THREADPOOL_H */
