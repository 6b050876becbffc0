/* bench_util.c - the GEMV-against-bandwidth measurement of bench_util.h. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/kernels.h"
#include "bitnet/threadpool.h"

#define ROWS 2560
#define COLS 2560

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bn_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

uint64_t bn_bench_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct probe {
    const uint64_t *buf;
    int64_t n_words;
    uint64_t sums[64];
} probe;

/* Streams each thread reads at once, and how many words apart they walk (streams_sum). */
#define PROBE_STREAMS 4
#define PROBE_SKEW    (37 * 8)

/* One cache line (8 words) of a stream into its sum. */
static inline uint64_t line_sum(const uint64_t *w)
{
    return (w[0] + w[4]) + (w[1] + w[5]) + (w[2] + w[6]) + (w[3] + w[7]);
}

/* Sums words [b, e) as PROBE_STREAMS contiguous pieces read one line of each in turn:
 * like a GEMV reading several rows, the core keeps several independent miss streams in
 * flight (one stream read 0.6-0.8x what four did on a Zen host; a software prefetch
 * ahead of each stream, tried too, did not help, the hardware prefetchers already follow
 * four streams). Piece k starts its walk PROBE_SKEW * k words in (and wraps), so the
 * streams do not hit the same cache sets when the piece length is a power of two (they
 * did: 4 unskewed streams read less than one). */
static uint64_t streams_sum(const uint64_t *w, int64_t b, int64_t e)
{
    const int64_t len = (e - b) / (8 * PROBE_STREAMS) * 8; /* whole lines per piece */
    uint64_t s[PROBE_STREAMS] = {0};
    for (int64_t i = 0; i < len; i += 8)
        for (int k = 0; k < PROBE_STREAMS; k++) {
            int64_t at = i + PROBE_SKEW * k;
            while (at >= len) at -= len; /* rare: only near the end of the walk */
            const uint64_t *p = w + b + k * len + at;
            s[k] += line_sum(p);
        }
    uint64_t t = 0;
    for (int k = 0; k < PROBE_STREAMS; k++) t += s[k];
    for (int64_t i = b + PROBE_STREAMS * len; i < e; i++) t += w[i]; /* the tail */
    return t;
}

/* Each thread reads one contiguous slice of the buffer. */
static void probe_task(void *arg, int tid, int nth)
{
    probe *p = arg;
    const int64_t b = p->n_words * tid / nth, e = p->n_words * (tid + 1) / nth;
    p->sums[tid & 63] += streams_sum(p->buf, b, e);
}

double bn_bench_probe_seconds(bn_threadpool *pool, const uint64_t *buf, int64_t n_words,
                              uint64_t *sum)
{
    probe p = {buf, n_words, {0}};
    double t0 = bn_time_now();
    bn_pool_run(pool, probe_task, &p);
    const double dt = bn_time_now() - t0;
    uint64_t t = 0;
    for (int i = 0; i < 64; i++) t += p.sums[i];
    volatile uint64_t sink = t; /* the sums are used: the loop is not dropped */
    (void)sink;
    if (sum) *sum = t;
    return dt;
}

typedef struct macp {
    const bn_kernels *k;
    int64_t rounds;
    int64_t macs[64];
} macp;

static void mac_task(void *arg, int tid, int nth)
{
    (void)nth;
    macp *p = arg;
    p->macs[tid & 63] = p->k->mac_probe(p->rounds);
}

double bn_bench_mac_rate(bn_threadpool *pool, const bn_kernels *k, double seconds, int reps)
{
    if (!k || !k->mac_probe || reps < 1) return 0.0;
    /* rounds for `seconds` on one thread, from a short calibration */
    int64_t rounds = 1 << 16;
    double dt = 0;
    for (;;) {
        const double t0 = bn_time_now();
        k->mac_probe(rounds);
        dt = bn_time_now() - t0;
        if (dt > 0.002 || rounds > ((int64_t)1 << 40)) break;
        rounds *= 4;
    }
    if (dt > 0) rounds = (int64_t)((double)rounds * seconds / dt) + 1;
    double v[32];
    if (reps > 32) reps = 32;
    for (int r = 0; r < reps; r++) {
        macp p = {k, rounds, {0}};
        const double t0 = bn_time_now();
        bn_pool_run(pool, mac_task, &p);
        const double t = bn_time_now() - t0;
        int64_t total = 0;
        for (int i = 0; i < 64; i++) total += p.macs[i];
        v[r] = t > 0 ? (double)total / t : 0.0;
    }
    return bn_bench_median(v, reps);
}

typedef struct state {
    bn_threadpool *pool;
    bn_tmat *mats;
    int n_mats;
    int8_t *q;
    uint64_t *pbuf;
    float *xf, *y;
    double *t, *tp;
    bn_qact x;
} state;

static void state_release(state *s)
{
    for (int i = 0; i < s->n_mats; i++) bn_tmat_release(&s->mats[i]);
    bn_free(s->mats);
    bn_free(s->q);
    bn_free(s->pbuf);
    bn_free(s->xf);
    bn_free(s->y);
    bn_free(s->t);
    bn_free(s->tp);
    bn_qact_release(&s->x);
    bn_pool_free(s->pool);
}

static int build(state *s, int n_mats, char *err, size_t errsz)
{
    uint64_t seed = 42;
    size_t n = (size_t)ROWS * COLS;
    for (int m = 0; m < n_mats; m++) {
        if (m % 8 == 0) /* a fresh pattern every few matrices: cheap but not uniform */
            for (size_t i = 0; i < n; i++) s->q[i] = (int8_t)((int)(bn_bench_rng(&seed) % 3) - 1);
        bn_status rc = bn_tmat_from_ternary(&s->mats[m], s->q, NULL, 0.02f, ROWS, COLS);
        if (rc != BN_OK) {
            snprintf(err, errsz, "building a weight matrix: %s", bn_status_str(rc));
            return -1;
        }
        s->n_mats = m + 1;
    }
    for (int64_t i = 0; i < COLS; i++)
        s->xf[i] = (float)((double)(bn_bench_rng(&seed) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    bn_qact_quantize(&s->x, s->xf, 1);
    return 0;
}

int bn_bench_gemv_bandwidth(int threads, size_t wset_bytes, int reps, bn_bench_bw *out, char *err,
                            size_t errsz)
{
    state s;
    memset(&s, 0, sizeof s);
    memset(out, 0, sizeof *out);
    if (threads < 1) threads = 1;
    if (reps < 1) reps = 1;
    size_t one = (size_t)ROWS * COLS / 4;
    int n_mats = (int)((wset_bytes + one - 1) / one);
    if (n_mats < 2) n_mats = 2;
    size_t probe_bytes = one * (size_t)n_mats;
    bn_status rc = bn_pool_new(&s.pool, threads);
    if (rc != BN_OK) {
        snprintf(err, errsz, "cannot start %d threads: %s", threads, bn_status_str(rc));
        return -1;
    }
    s.mats = bn_calloc((size_t)n_mats, sizeof *s.mats);
    s.q = bn_malloc((size_t)ROWS * COLS);
    s.pbuf = bn_malloc(probe_bytes);
    s.xf = bn_malloc(sizeof(float) * COLS);
    s.y = bn_malloc(sizeof(float) * ROWS);
    s.t = bn_malloc(sizeof(double) * (size_t)reps);
    s.tp = bn_malloc(sizeof(double) * (size_t)reps);
    if (!s.mats || !s.q || !s.pbuf || !s.xf || !s.y || !s.t || !s.tp ||
        bn_qact_init(&s.x, 1, COLS) != BN_OK) {
        snprintf(err, errsz, "out of memory (%zu MiB working set)", probe_bytes >> 20);
        state_release(&s);
        return -1;
    }
    for (size_t i = 0; i < probe_bytes / 8; i++) s.pbuf[i] = i * 0x9e3779b97f4a7c15ull;
    if (build(&s, n_mats, err, errsz)) {
        state_release(&s);
        return -1;
    }
    const bn_kernels *k = bn_kernels_get();
    for (int m = 0; m < s.n_mats; m++) bn_tmatmul(s.pool, k, &s.mats[m], &s.x, s.y); /* warm */
    for (int r = 0; r < reps; r++) {
        s.tp[r] = bn_bench_probe_seconds(s.pool, s.pbuf, (int64_t)(probe_bytes / 8), NULL);
        double t0 = bn_time_now();
        for (int m = 0; m < s.n_mats; m++) bn_tmatmul(s.pool, k, &s.mats[m], &s.x, s.y);
        s.t[r] = (bn_time_now() - t0) / s.n_mats;
    }
    out->kernel = k->name;
    out->threads = threads;
    out->rows = ROWS;
    out->cols = COLS;
    out->n_mats = s.n_mats;
    out->wset_bytes = probe_bytes;
    out->reps = reps;
    out->gemv_s = bn_bench_median(s.t, reps);
    out->probe_bps = (double)probe_bytes / bn_bench_median(s.tp, reps);
    /* 2 bits per weight of the padded row, as the kernels read them */
    double wbytes = (double)ROWS * (double)s.mats[0].kpad / 4.0;
    out->weight_bps = wbytes / out->gemv_s;
    out->ratio = out->weight_bps / out->probe_bps;
    state_release(&s);
    return 0;
}
