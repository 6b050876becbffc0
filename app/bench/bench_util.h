/* bench_util.h - a short measurement of the ternary GEMV against this machine's read
 * bandwidth, by the method of `bitnet bench kernels` (see bench_kernels.c): the GEMV
 * cycles through distinct weight matrices larger together than the last-level cache,
 * and a streaming-sum probe over a buffer of the same size runs interleaved with it on
 * the same threads; medians of both give the bandwidth ratio. Used by `bitnet doctor`. */
#ifndef BITNET_APP_BENCH_UTIL_H
#define BITNET_APP_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct bn_bench_bw {
    const char *kernel; /* the variant measured (bn_kernels_get()) */
    int threads;
    int64_t rows, cols; /* the matrix shape (2560 x 2560: attention q/o of 2B4T) */
    int n_mats;         /* matrices in the working set */
    size_t wset_bytes;  /* their weight bytes */
    int reps;
    double gemv_s;     /* median seconds per GEMV */
    double weight_bps; /* ternary weight bytes read per second by the GEMV */
    double probe_bps;  /* read bandwidth measured by the probe */
    double ratio;      /* weight_bps / probe_bps */
} bn_bench_bw;

/* Helpers the benchmarks share. */
/* The median of v[0..n) (sorts v). */
double bn_bench_median(double *v, int n);
/* splitmix64: the next value of the sequence in *state. */
uint64_t bn_bench_rng(uint64_t *state);
/* The read-bandwidth probe: one sum over n_words 64-bit words of buf (wrapping), split
 * over the pool's active threads in contiguous slices, each slice read as four streams
 * at once; returns the seconds it took, and the sum in *sum unless sum is NULL. */
struct bn_threadpool;
double bn_bench_probe_seconds(struct bn_threadpool *pool, const uint64_t *buf, int64_t n_words,
                              uint64_t *sum);

/* The multiply-accumulate ceiling of kernels k on the pool's active threads: each thread
 * runs k->mac_probe for about `seconds`, all at once; the median over reps of the
 * multiply-adds per second of all threads together (0 when k has no probe). What a
 * GEMM could reach if it did nothing but its multiply-accumulate instruction. */
struct bn_kernels;
double bn_bench_mac_rate(struct bn_threadpool *pool, const struct bn_kernels *k, double seconds,
                         int reps);

/* Runs the measurement on `threads` threads with a working set of at least wset_bytes
 * and `reps` repetitions. 0, or -1 with a message in err. */
int bn_bench_gemv_bandwidth(int threads, size_t wset_bytes, int reps, bn_bench_bw *out, char *err,
                            size_t errsz);

#endif
