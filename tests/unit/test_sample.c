/* test_sample.c - the sampler: greedy, top-k, top-p, min-p, repetition penalty, seeds,
 * the empirical distribution against softmax, -inf/NaN/+inf logits, edge sizes,
 * allocation failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "bitnet/sample.h"

/* every filter off: plain temperature sampling */
static bn_sampler_params plain(float temp, uint64_t seed)
{
    bn_sampler_params p = {
        .temperature = temp,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 0,
        .seed = seed,
    };
    return p;
}

static bn_sampler *make(const bn_sampler_params *p)
{
    bn_sampler *s = NULL;
    assert_int_equal(bn_sampler_new(&s, p), BN_OK);
    assert_non_null(s);
    return s;
}

/* fills logits with a fixed pseudo-random pattern */
static void fill_logits(float *l, int n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        l[i] = (float)(x >> 8) / (float)(1 << 24) * 8.0f - 4.0f;
    }
}

static void test_defaults_and_params(void **state)
{
    (void)state;
    bn_sampler_params d = bn_sampler_params_default();
    assert_true(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f);
    assert_true(d.min_p == 0.05f && d.repeat_penalty == 1.0f && d.repeat_last_n == 64);
    bn_sampler *s = make(NULL);
    assert_true(bn_sampler_get_params(s)->top_k == 40);
    bn_sampler_free(s);
    bn_sampler_free(NULL);

    struct {
        const char *what;
        bn_sampler_params p;
    } bad[] = {
        {"nan temp", plain(NAN, 0)},       {"top_k < 0", plain(1, 0)},
        {"top_p < 0", plain(1, 0)},        {"top_p nan", plain(1, 0)},
        {"min_p > 1", plain(1, 0)},        {"min_p < 0", plain(1, 0)},
        {"penalty 0", plain(1, 0)},        {"penalty inf", plain(1, 0)},
        {"last_n < 0", plain(1, 0)},       {"last_n huge", plain(1, 0)},
    };
    bad[1].p.top_k = -1;
    bad[2].p.top_p = -0.1f;
    bad[3].p.top_p = NAN;
    bad[4].p.min_p = 1.5f;
    bad[5].p.min_p = -0.5f;
    bad[6].p.repeat_penalty = 0.0f;
    bad[7].p.repeat_penalty = INFINITY;
    bad[8].p.repeat_last_n = -1;
    bad[9].p.repeat_last_n = BN_SAMPLER_MAX_LAST_N + 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_sampler *x = (bn_sampler *)1;
        if (bn_sampler_new(&x, &bad[i].p) != BN_ERR_INVALID) fail_msg("accepted: %s", bad[i].what);
        assert_null(x);
    }
}

static void test_greedy_argmax(void **state)
{
    (void)state;
    bn_sampler_params p = plain(0.0f, 1);
    bn_sampler *s = make(&p);
    float l[1000];
    for (uint32_t t = 0; t < 20; t++) {
        fill_logits(l, 1000, t);
        int best = 0;
        for (int i = 1; i < 1000; i++)
            if (l[i] > l[best]) best = i;
        assert_int_equal(bn_sampler_sample(s, l, 1000), best);
    }
    /* ties go to the lowest id */
    float tie[6] = {1, 3, 2, 3, 3, -1};
    assert_int_equal(bn_sampler_sample(s, tie, 6), 1);
    /* a negative temperature is greedy too */
    bn_sampler_free(s);
    p.temperature = -1.0f;
    s = make(&p);
    assert_int_equal(bn_sampler_sample(s, tie, 6), 1);
    bn_sampler_free(s);
}

/* top_k = 1 and a tiny top_p reduce any temperature to greedy; so does min_p = 1
 * when the maximum is unique */
static void test_filters_to_greedy(void **state)
{
    (void)state;
    float l[3000];
    bn_sampler_params pk = plain(1.5f, 7), pp = plain(1.5f, 8), pm = plain(1.5f, 9);
    pk.top_k = 1;
    pp.top_p = 1e-6f;
    pm.min_p = 1.0f;
    bn_sampler *sk = make(&pk), *sp = make(&pp), *sm = make(&pm), *sg;
    bn_sampler_params pg = plain(0.0f, 0);
    sg = make(&pg);
    for (uint32_t t = 0; t < 50; t++) {
        fill_logits(l, 3000, 100 + t);
        int32_t g = bn_sampler_sample(sg, l, 3000);
        assert_int_equal(bn_sampler_sample(sk, l, 3000), g);
        assert_int_equal(bn_sampler_sample(sp, l, 3000), g);
        assert_int_equal(bn_sampler_sample(sm, l, 3000), g);
    }
    /* with ties, top-k = 1 keeps the lowest id */
    float tie[5] = {0, 2, 1, 2, 2};
    assert_int_equal(bn_sampler_sample(sk, tie, 5), 1);
    assert_int_equal(bn_sampler_sample(sp, tie, 5), 1); /* top_p tiny: first sorted */
    bn_sampler_free(sk);
    bn_sampler_free(sp);
    bn_sampler_free(sm);
    bn_sampler_free(sg);
}

/* draws n tokens, counting how often each id of n_vocab comes out */
static void histogram(bn_sampler *s, const float *l, int32_t n_vocab, int draws, int *count)
{
    memset(count, 0, (size_t)n_vocab * sizeof *count);
    for (int i = 0; i < draws; i++) {
        int32_t t = bn_sampler_sample(s, l, n_vocab);
        assert_true(t >= 0 && t < n_vocab);
        count[t]++;
    }
}

/* softmax of {ln 0.5, ln 0.25, ln 0.15, ln 0.1}: p = 0.5, 0.25, 0.15, 0.10.
 * min_p = 0.25 keeps p >= 0.125 (ids 0, 1, 2), renormalized: 0.5/0.9, 0.25/0.9, 0.15/0.9.
 * min_p = 0.35 keeps p >= 0.175 (ids 0, 1): 2/3, 1/3. */
static void test_min_p(void **state)
{
    (void)state;
    float l[4] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.10f)};
    int count[4];
    bn_sampler_params p = plain(1.0f, 11);
    p.min_p = 0.25f;
    bn_sampler *s = make(&p);
    histogram(s, l, 4, 20000, count);
    assert_int_equal(count[3], 0);
    assert_true(fabs(count[0] / 20000.0 - 0.5 / 0.9) < 0.02);
    assert_true(fabs(count[1] / 20000.0 - 0.25 / 0.9) < 0.02);
    assert_true(fabs(count[2] / 20000.0 - 0.15 / 0.9) < 0.02);
    bn_sampler_free(s);

    p.min_p = 0.35f;
    s = make(&p);
    histogram(s, l, 4, 20000, count);
    assert_int_equal(count[2] + count[3], 0);
    assert_true(fabs(count[0] / 20000.0 - 2.0 / 3.0) < 0.02);
    bn_sampler_free(s);
}

/* Same distribution: top_p = 0.7 keeps 0.5 + 0.25 = 0.75 >= 0.7 (ids 0, 1); top_p = 0.76
 * needs the third (0.9 >= 0.76: ids 0, 1, 2); top_k = 3 drops id 3. */
static void test_top_p_top_k(void **state)
{
    (void)state;
    float l[4] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.10f)};
    int count[4];
    bn_sampler_params p = plain(1.0f, 12);
    p.top_p = 0.7f;
    bn_sampler *s = make(&p);
    histogram(s, l, 4, 5000, count);
    assert_int_equal(count[2] + count[3], 0);
    assert_true(count[0] > 0 && count[1] > 0);
    bn_sampler_free(s);

    p.top_p = 0.76f;
    s = make(&p);
    histogram(s, l, 4, 5000, count);
    assert_int_equal(count[3], 0);
    assert_true(count[2] > 0);
    bn_sampler_free(s);

    p = plain(1.0f, 13);
    p.top_k = 3;
    s = make(&p);
    histogram(s, l, 4, 5000, count);
    assert_int_equal(count[3], 0);
    assert_true(count[0] > 0 && count[1] > 0 && count[2] > 0);
    bn_sampler_free(s);
}

/* top-p on a large vocabulary, where the candidates are first only partly sorted:
 * a flat distribution needs almost all of them (the fallback to a full sort), a peaked
 * one only a few */
static void test_top_p_large_vocab(void **state)
{
    (void)state;
    enum { N = 2000 };
    static float l[N];
    static int count[N];
    for (int i = 0; i < N; i++) l[i] = 0.0f;
    bn_sampler_params p = plain(1.0f, 14);
    p.top_p = 0.9f;
    bn_sampler *s = make(&p);
    /* flat: top-p keeps the 1800 lowest ids (sorted ties by id); 4000 draws reach
     * about 1800 * (1 - exp(-4000 / 1800)) = 1608 of them */
    histogram(s, l, N, 4000, count);
    for (int i = 1800; i < N; i++) assert_int_equal(count[i], 0);
    int used = 0;
    for (int i = 0; i < 1800; i++) used += count[i] > 0;
    assert_true(used > 1400);
    /* peaked: ids 10, 20, 30 hold ~all the mass */
    for (int i = 0; i < N; i++) l[i] = -20.0f;
    l[10] = 5.0f;
    l[20] = 4.0f;
    l[30] = 3.0f;
    histogram(s, l, N, 2000, count);
    for (int i = 0; i < N; i++)
        if (i != 10 && i != 20 && i != 30) assert_int_equal(count[i], 0);
    bn_sampler_free(s);
}

/* greedy would pick 0; once 0 and 2 are in the history the penalty 2 makes them
 * 3.0 / 2 = 1.5 and -0.5 * 2 = -1, so 1 (2.0) wins. Repeats count once. */
static void test_repeat_penalty(void **state)
{
    (void)state;
    float l[4] = {3.0f, 2.0f, -0.5f, -0.4f};
    bn_sampler_params p = plain(0.0f, 0);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 3;
    bn_sampler *s = make(&p);
    assert_int_equal(bn_sampler_sample(s, l, 4), 0);
    bn_sampler_accept(s, 0);
    bn_sampler_accept(s, 0); /* twice: still divided once */
    assert_int_equal(bn_sampler_sample(s, l, 4), 1);
    float m[3] = {1.2f, 1.0f, 0.0f};
    /* 0 in history: 0.6 < 1.0 -> 1; out-of-range and negative ids are ignored */
    bn_sampler_accept(s, 99);
    bn_sampler_accept(s, -5);
    /* history now [0, 99, -5]: id 0 still penalised */
    assert_int_equal(bn_sampler_sample(s, m, 3), 1);
    bn_sampler_accept(s, 1);
    /* history [99, -5, 1]: 0 fell out of the window, 1 penalised to 0.5 -> 0 wins */
    assert_int_equal(bn_sampler_sample(s, m, 3), 0);
    /* negative logits are multiplied: {-1, -1.5} with 0 penalised -> -2 < -1.5 */
    float n2[2] = {-1.0f, -1.5f};
    bn_sampler_reset(s);
    bn_sampler_accept(s, 0);
    assert_int_equal(bn_sampler_sample(s, n2, 2), 1);
    /* the caller's logits are not modified */
    assert_true(n2[0] == -1.0f && l[0] == 3.0f);
    /* reset clears the history */
    bn_sampler_reset(s);
    assert_int_equal(bn_sampler_sample(s, l, 4), 0);
    bn_sampler_free(s);
    /* penalty 1 or last_n 0 is off */
    p.repeat_last_n = 0;
    s = make(&p);
    bn_sampler_accept(s, 0);
    assert_int_equal(bn_sampler_sample(s, l, 4), 0);
    bn_sampler_free(s);
}

static void sequence(uint64_t seed, int32_t *out, int n)
{
    bn_sampler_params p = bn_sampler_params_default();
    p.seed = seed;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.1f;
    bn_sampler *s = make(&p);
    float l[300];
    for (int i = 0; i < n; i++) {
        fill_logits(l, 300, 5);
        for (int j = 0; j < 300; j++) l[j] *= 0.3f; /* flat enough to vary */
        out[i] = bn_sampler_sample(s, l, 300);
        bn_sampler_accept(s, out[i]);
    }
    bn_sampler_free(s);
}

static void test_seeds(void **state)
{
    (void)state;
    int32_t a[200], b[200], c[200];
    sequence(42, a, 200);
    sequence(42, b, 200);
    sequence(43, c, 200);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    for (int i = 0; i < 200; i++) differ += a[i] != c[i];
    assert_true(differ > 100);
    /* reset restarts the same sequence */
    bn_sampler_params p = plain(1.0f, 42);
    bn_sampler *s = make(&p);
    float l[50];
    fill_logits(l, 50, 3);
    int32_t first[20];
    for (int i = 0; i < 20; i++) first[i] = bn_sampler_sample(s, l, 50);
    bn_sampler_reset(s);
    for (int i = 0; i < 20; i++) assert_int_equal(bn_sampler_sample(s, l, 50), first[i]);
    bn_sampler_free(s);
}

/* 20000 draws at temperature 1 from softmax{0, 1, 2, -1}: each frequency within 0.015 of
 * its probability (the largest standard deviation, sqrt(0.64 * 0.36 / 20000) = 0.0034,
 * makes that more than 4 sigma). Temperature 2 flattens it to softmax{0, .5, 1, -.5}. */
static void test_distribution(void **state)
{
    (void)state;
    float l[4] = {0.0f, 1.0f, 2.0f, -1.0f};
    float temps[2] = {1.0f, 2.0f};
    for (int t = 0; t < 2; t++) {
        double z = 0, pr[4];
        for (int i = 0; i < 4; i++) z += exp(l[i] / temps[t]);
        for (int i = 0; i < 4; i++) pr[i] = exp(l[i] / temps[t]) / z;
        bn_sampler_params p = plain(temps[t], 1234);
        bn_sampler *s = make(&p);
        int count[4];
        histogram(s, l, 4, 20000, count);
        for (int i = 0; i < 4; i++) {
            double f = count[i] / 20000.0;
            if (fabs(f - pr[i]) > 0.015) fail_msg("T=%g id %d: %f vs %f", temps[t], i, f, pr[i]);
        }
        bn_sampler_free(s);
    }
}

static void test_infinities(void **state)
{
    (void)state;
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = 1.0f;
    p.repeat_penalty = 1.3f;
    bn_sampler *s = make(&p);
    bn_sampler_accept(s, 1);
    /* -inf logits are never drawn */
    float l[5] = {-INFINITY, 0.5f, -INFINITY, 0.4f, NAN};
    for (int i = 0; i < 2000; i++) {
        int32_t t = bn_sampler_sample(s, l, 5);
        assert_true(t == 1 || t == 3);
    }
    /* all -inf (or NaN): the lowest id, no NaN arithmetic trap */
    float all[3] = {-INFINITY, NAN, -INFINITY};
    assert_int_equal(bn_sampler_sample(s, all, 3), 0);
    /* +inf takes all the mass, shared evenly */
    float pinf[4] = {1.0f, INFINITY, 1e30f, INFINITY};
    int hits[4] = {0};
    for (int i = 0; i < 2000; i++) hits[bn_sampler_sample(s, pinf, 4)]++;
    assert_int_equal(hits[0] + hits[2], 0);
    assert_true(hits[1] > 800 && hits[3] > 800);
    bn_sampler_free(s);
    /* the same with every filter off and greedy */
    bn_sampler_params g = plain(0.0f, 0);
    s = make(&g);
    assert_int_equal(bn_sampler_sample(s, all, 3), 0);
    assert_int_equal(bn_sampler_sample(s, l, 5), 1);
    assert_int_equal(bn_sampler_sample(s, pinf, 4), 1);
    bn_sampler_free(s);
    /* only -inf survives min-p / top-p filtering without NaN */
    bn_sampler_params q = plain(0.7f, 3);
    q.top_p = 0.5f;
    q.min_p = 0.1f;
    s = make(&q);
    assert_int_equal(bn_sampler_sample(s, all, 3), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(bn_sampler_sample(s, l, 5), 1);
    bn_sampler_free(s);
}

static void test_edge_sizes(void **state)
{
    (void)state;
    bn_sampler *s = make(NULL);
    float one = -3.0f;
    for (int i = 0; i < 10; i++) assert_int_equal(bn_sampler_sample(s, &one, 1), 0);
    assert_int_equal(bn_sampler_sample(s, &one, 0), -1);
    assert_int_equal(bn_sampler_sample(s, &one, -4), -1);
    assert_int_equal(bn_sampler_sample(s, NULL, 4), -1);
    /* growing the work buffer after a small vocabulary */
    float l[2000];
    fill_logits(l, 2000, 9);
    int32_t t = bn_sampler_sample(s, l, 2000);
    assert_true(t >= 0 && t < 2000);
    /* top_k larger than the vocabulary is no filter */
    bn_sampler_params p = plain(0.0f, 0);
    p.top_k = 100;
    bn_sampler *k = make(&p);
    float small[3] = {0.0f, 0.1f, -0.1f};
    assert_int_equal(bn_sampler_sample(k, small, 3), 1);
    bn_sampler_free(k);
    bn_sampler_free(s);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    bn_sampler_params p = bn_sampler_params_default();
    for (long n = 1; n <= 2; n++) {
        bn_sampler *s = (bn_sampler *)1;
        bn_alloc_fail_at(n, 0);
        assert_int_equal(bn_sampler_new(&s, &p), BN_ERR_NOMEM);
        assert_null(s);
        bn_alloc_fail_at(0, 0);
    }
    bn_sampler *s = make(&p);
    float l[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (long n = 1; n <= 2; n++) {
        bn_alloc_fail_at(n, 0);
        assert_int_equal(bn_sampler_sample(s, l, 8), -1);
        bn_alloc_fail_at(0, 0);
    }
    int32_t t = bn_sampler_sample(s, l, 8);
    assert_true(t >= 0 && t < 8);
    bn_sampler_free(s);
    /* greedy with the default filters and no penalty needs no work buffer: it cannot fail
     * for memory (a server samples every slot's vocabulary each step) */
    p.temperature = 0.0f;
    s = make(&p);
    bn_alloc_fail_at(1, 0);
    assert_int_equal(bn_sampler_sample(s, l, 8), 7);
    bn_alloc_fail_at(0, 0);
    /* with a penalty and a history it runs the whole chain (its buffers) */
    bn_sampler_params pen = p;
    pen.repeat_penalty = 1.5f;
    bn_sampler *q = make(&pen);
    bn_sampler_accept(q, 7);
    bn_alloc_fail_at(1, 0);
    assert_int_equal(bn_sampler_sample(q, l, 8), -1);
    bn_alloc_fail_at(0, 0);
    assert_int_equal(bn_sampler_sample(q, l, 8), 6); /* 7 / 1.5 < 6 */
    bn_sampler_free(q);
    bn_sampler_free(s);
}

/* Greedy with the default filters (top-k 40, top-p 0.95, min-p 0.05) is the first index
 * of the highest logit over a LLaMA-3-sized vocabulary, wherever it lies (the vectorized
 * scan's 16 lanes and its tail), with ties, NaN and -inf around it. */
static void test_greedy_large_vocab(void **state)
{
    (void)state;
    enum { V = 128256 };
    static float l[V];
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = 0.0f;
    bn_sampler *s = make(&p);
    const int32_t at[] = {0, 1, 15, 16, 17, 4095, 64000, V - 17, V - 16, V - 1};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        fill_logits(l, V, (uint32_t)k);
        l[at[k]] = 9.0f;
        if (at[k] + 3 < V) l[at[k] + 3] = 9.0f; /* a tie later: the first wins */
        l[V / 2 + 1] = NAN;
        if (at[k] > 0) l[at[k] - 1] = -INFINITY;
        assert_int_equal(bn_sampler_sample(s, l, V), at[k]);
    }
    for (int32_t n = 1; n <= 40; n++) { /* short vocabularies: all in the tail */
        fill_logits(l, n, (uint32_t)n);
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (l[i] > l[best]) best = i;
        assert_int_equal(bn_sampler_sample(s, l, n), best);
    }
    for (int32_t i = 0; i < 40; i++) l[i] = i % 2 ? NAN : -INFINITY;
    assert_int_equal(bn_sampler_sample(s, l, 40), 0);
    l[33] = INFINITY;
    assert_int_equal(bn_sampler_sample(s, l, 40), 33);
    bn_sampler_free(s);
}

/* Top-k without a penalty takes its candidates straight from the logits, skipping blocks of
 * 32 that cannot enter; with a penalty the chain builds every candidate first. A penalty
 * whose only history token has logit 0 changes nothing (0 * penalty), so the two paths
 * must draw the same tokens from the same seed: vocabularies of 161 to 128256 tokens,
 * k from 1 to 200, ties (logits rounded to a coarse grid), NaN and -inf runs, blocks whose
 * best equals the heap's worst, the best tokens at the ends. */
static void test_top_k_direct(void **state)
{
    (void)state;
    enum { V = 128256 };
    static float l[V];
    const int32_t ks[] = {1, 2, 7, 16, 40, 200};
    const int32_t vs[] = {161, 1000, 32000, V};
    int draws = 0;
    for (size_t vi = 0; vi < sizeof vs / sizeof vs[0]; vi++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const int32_t n = vs[vi], k = ks[ki];
            if (k >= n / 4) continue;
            bn_sampler_params p = bn_sampler_params_default();
            p.top_k = k;
            p.seed = (uint64_t)(vi * 16 + ki + 1);
            bn_sampler_params q = p;
            q.repeat_penalty = 1.3f;
            bn_sampler *a = make(&p), *b = make(&q);
            for (int round = 0; round < 12; round++) {
                fill_logits(l, n, (uint32_t)(round * 31 + (int)ki + 7 * (int)vi));
                for (int32_t i = 0; i < n; i++) /* a coarse grid: many ties */
                    l[i] = roundf(l[i] * (round % 2 ? 2.0f : 64.0f)) / 8.0f;
                if (round % 3 == 0)
                    for (int32_t i = n / 3; i < n / 3 + 40; i++) l[i] = i % 2 ? NAN : -INFINITY;
                if (round % 4 == 1) l[n - 1] = 30.0f, l[0] = 29.0f;
                if (round == 5)
                    for (int32_t i = 0; i < n; i++) l[i] = 1.0f; /* all tied: ids decide */
                l[n / 2] = 0.0f;
                bn_sampler_reset(a), bn_sampler_reset(b); /* the same draws from here */
                bn_sampler_accept(b, n / 2);              /* penalty on, changes nothing */
                for (int d = 0; d < 4; d++, draws++) {
                    const int32_t x = bn_sampler_sample(a, l, n), y = bn_sampler_sample(b, l, n);
                    if (x != y)
                        fail_msg("n %d k %d round %d draw %d: %d vs %d", n, k, round, d, x, y);
                }
            }
            bn_sampler_free(a);
            bn_sampler_free(b);
        }
    print_message("    %d draws alike\n", draws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_params),
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_filters_to_greedy),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_top_p_top_k),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_infinities),
        cmocka_unit_test(test_edge_sizes),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_greedy_large_vocab),
        cmocka_unit_test(test_top_k_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
