/* threadpool.c - persistent workers that spin briefly, then sleep, between jobs. */
#define _POSIX_C_SOURCE 200809L
#include "bitnet/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle worker spins before it sleeps on the condition variable. */
#define SPIN_SECONDS 0.002

typedef struct worker {
    struct bn_threadpool *pool;
    pthread_t thread;
    int tid;
} worker;

struct bn_threadpool {
    int size;   /* threads including the caller */
    int active; /* threads used by the next job */
    worker *workers;
    int n_started;

    /* the current job */
    bn_task_fn task;
    void *task_arg;
    int task_nth;

    atomic_uint gen;     /* bumped once per job */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleeping; /* workers blocked on cond */
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

static void *worker_main(void *arg)
{
    worker *w = arg;
    bn_threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen && !atomic_load(&p->stop)) {
            double t0 = bn_time_now();
            int spins = 0;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
                   !atomic_load(&p->stop)) {
                cpu_relax();
                if (++spins % 256 == 0) {
                    if (bn_time_now() - t0 > SPIN_SECONDS) break;
                    if (spins >= 4096) sched_yield(); /* let a runnable thread have the core */
                }
            }
            if (g == seen && !atomic_load(&p->stop)) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleeping, 1);
                while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                    pthread_cond_wait(&p->cond, &p->mu);
                atomic_fetch_sub(&p->sleeping, 1);
                pthread_mutex_unlock(&p->mu);
            }
        }
        if (atomic_load(&p->stop)) break;
        seen = g;
        /* every worker acknowledges every job, so that no job's fields are read
         * after the caller has moved on to the next one */
        if (w->tid < p->task_nth) p->task(p->task_arg, w->tid, p->task_nth);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bn_status bn_pool_new(bn_threadpool **out, int n_threads)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = online_cores();
    if (n_threads > 1024) n_threads = 1024;
    bn_threadpool *p = bn_calloc(1, sizeof *p);
    if (!p) return BN_ERR_NOMEM;
    p->size = n_threads;
    p->active = n_threads;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        bn_free(p);
        return BN_ERR_THREAD;
    }
    if (pthread_cond_init(&p->cond, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        bn_free(p);
        return BN_ERR_THREAD;
    }
    if (n_threads > 1) {
        p->workers = bn_calloc((size_t)n_threads, sizeof *p->workers);
        if (!p->workers) {
            bn_pool_free(p);
            return BN_ERR_NOMEM;
        }
        for (int t = 1; t < n_threads; t++) {
            worker *w = &p->workers[t];
            w->pool = p;
            w->tid = t;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                bn_pool_free(p);
                return BN_ERR_THREAD;
            }
            p->n_started = t;
        }
    }
    *out = p;
    return BN_OK;
}

void bn_pool_free(bn_threadpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t <= p->n_started; t++) pthread_join(p->workers[t].thread, NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    bn_free(p->workers);
    bn_free(p);
}

int bn_pool_size(const bn_threadpool *p)
{
    return p ? p->size : 1;
}

void bn_pool_set_active(bn_threadpool *p, int n)
{
    if (!p) return;
    p->active = (n <= 0 || n > p->size) ? p->size : n;
}

int bn_pool_active(const bn_threadpool *p)
{
    return p ? p->active : 1;
}

void bn_pool_run(bn_threadpool *p, bn_task_fn fn, void *arg)
{
    if (!p || p->active <= 1 || p->size <= 1) {
        fn(arg, 0, 1);
        return;
    }
    int nth = p->active;
    p->task = fn;
    p->task_arg = arg;
    p->task_nth = nth;
    atomic_store_explicit(&p->pending, p->size - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the workers' sleeping count */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, nth);
    /* Spin briefly (the workers usually finish within microseconds of the caller), then
     * yield the CPU each round: when the machine is oversubscribed, a worker may be
     * waiting for this very core. */
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < 4096)
            cpu_relax();
        else
            sched_yield();
    }
}

typedef struct range_job {
    bn_range_fn fn;
    void *arg;
    int64_t n, grain;
} range_job;

static void range_task(void *arg, int tid, int nth)
{
    const range_job *j = arg;
    int64_t chunks = (j->n + j->grain - 1) / j->grain;
    int64_t c0 = chunks * tid / nth, c1 = chunks * (tid + 1) / nth;
    int64_t b = c0 * j->grain, e = c1 * j->grain;
    if (e > j->n) e = j->n;
    if (b < e) j->fn(j->arg, b, e, tid);
}

void bn_pool_parallel_for(bn_threadpool *p, int64_t n, int64_t grain, bn_range_fn fn, void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    range_job j = {fn, arg, n, grain};
    if (!p || p->active <= 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    bn_pool_run(p, range_task, &j);
}
