/*
 * sample.c - the sampler chain of sample.h: penalties, top-k, top-p, min-p, temperature,
 * draw. The candidate list is an array of (id, logit) that each step shortens; "sorted"
 * means logit descending, ties to the lower id, which makes every result independent of
 * the sorting algorithm.
 */
#include "bitnet/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Top-p first sorts only this many candidates, and sorts the rest only if it must. */
#define TOP_P_PREFIX 256

typedef struct cand {
    int32_t id;
    float logit;
} cand;

struct bn_sampler {
    bn_sampler_params p;
    uint64_t rng[4];   /* xoshiro256** state */
    int32_t *hist;     /* ring of the last repeat_last_n accepted tokens */
    int32_t hist_n;    /* tokens held (<= repeat_last_n) */
    int32_t hist_next; /* where the next token goes */
    cand *cands;       /* work buffers for cap tokens */
    uint8_t *seen;
    int32_t cap;
};

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw --------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&x);
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(uint64_t s[4])
{
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

/* ---- parameters, lifecycle -------------------------------------------------------- */

bn_sampler_params bn_sampler_params_default(void)
{
    bn_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    return p;
}

static int params_valid(const bn_sampler_params *p)
{
    if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p)) return 0;
    if (p->top_k < 0 || p->top_p < 0.0f) return 0;
    if (p->min_p < 0.0f || p->min_p > 1.0f) return 0;
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty)) return 0;
    return p->repeat_last_n >= 0 && p->repeat_last_n <= BN_SAMPLER_MAX_LAST_N;
}

bn_status bn_sampler_new(bn_sampler **out, const bn_sampler_params *p)
{
    BN_ASSERT(out != NULL);
    *out = NULL;
    bn_sampler_params params = p ? *p : bn_sampler_params_default();
    if (!params_valid(&params)) return BN_ERR_INVALID;
    bn_sampler *s = bn_calloc(1, sizeof *s);
    if (!s) return BN_ERR_NOMEM;
    s->p = params;
    if (params.repeat_last_n > 0) {
        s->hist = bn_malloc((size_t)params.repeat_last_n * sizeof *s->hist);
        if (!s->hist) {
            bn_free(s);
            return BN_ERR_NOMEM;
        }
    }
    rng_seed(s->rng, params.seed);
    *out = s;
    return BN_OK;
}

void bn_sampler_free(bn_sampler *s)
{
    if (!s) return;
    bn_free(s->hist);
    bn_free(s->cands);
    bn_free(s->seen);
    bn_free(s);
}

void bn_sampler_reset(bn_sampler *s)
{
    BN_ASSERT(s != NULL);
    s->hist_n = 0;
    s->hist_next = 0;
    rng_seed(s->rng, s->p.seed);
}

const bn_sampler_params *bn_sampler_get_params(const bn_sampler *s)
{
    BN_ASSERT(s != NULL);
    return &s->p;
}

void bn_sampler_accept(bn_sampler *s, int32_t token)
{
    BN_ASSERT(s != NULL);
    int32_t cap = s->p.repeat_last_n;
    if (cap == 0) return;
    s->hist[s->hist_next] = token;
    s->hist_next = (s->hist_next + 1) % cap;
    if (s->hist_n < cap) s->hist_n++;
}

/* ---- the steps ------------------------------------------------------------------- */

/* a comes before b in sorted order */
static int cand_before(const cand *a, const cand *b)
{
    if (a->logit != b->logit) return a->logit > b->logit;
    return a->id < b->id;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (cand_before(a, b)) return -1;
    return cand_before(b, a) ? 1 : 0;
}

/* min-heap on sorted order: the root is the candidate that comes last */
static void heap_sift_down(cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&h[m], &h[l])) m = l;
        if (r < n && cand_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Moves the first k candidates of sorted order to c[0..k), sorted; the others stay in
 * c[k..n) (in some order). */
static void sort_prefix(cand *c, int32_t n, int32_t k)
{
    if (k >= n / 4) {
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        return;
    }
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            heap_sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

/* The first k (< n / 4) candidates of sorted order of the logits l[0..n) (NaN as -inf),
 * sorted into c[0..k): sort_prefix's heap, fed from the logits themselves. Candidates come
 * in id order, so one comes before the heap's root only with a larger logit: a block of W
 * with none larger (one vectorized compare; NaN never is) is skipped whole. */
static void top_k_direct(const float *l, int32_t n, int32_t k, cand *c)
{
    enum { W = 32 };
    for (int32_t i = 0; i < k; i++) c[i] = (cand){i, isnan(l[i]) ? -INFINITY : l[i]};
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_sift_down(c, k, i);
    for (int32_t b = k; b < n;) {
        const int32_t e = b % W || b + W > n ? b + 1 : b + W; /* one value, or a whole block */
        if (e - b == W) {
            const float r = c[0].logit;
            int any = 0;
            for (int j = 0; j < W; j++) any |= l[b + j] > r;
            if (!any) {
                b = e;
                continue;
            }
        }
        for (; b < e; b++)
            if (l[b] > c[0].logit) {
                c[0] = (cand){b, l[b]};
                heap_sift_down(c, k, 0);
            }
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

static void apply_penalty(bn_sampler *s, cand *c, int32_t n)
{
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->hist_n == 0) return;
    /* here c[i].id == i */
    for (int32_t j = 0; j < s->hist_n; j++) {
        int32_t t = s->hist[j];
        if (t < 0 || t >= n || s->seen[t]) continue;
        s->seen[t] = 1;
        c[t].logit = c[t].logit <= 0.0f ? c[t].logit * pen : c[t].logit / pen;
    }
    for (int32_t j = 0; j < s->hist_n; j++) {
        int32_t t = s->hist[j];
        if (t >= 0 && t < n) s->seen[t] = 0;
    }
}

static float max_logit(const cand *c, int32_t n)
{
    float m = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > m) m = c[i].logit;
    return m;
}

/* exp(l - max) with the conventions of sample.h: -inf -> 0; max +inf -> 1 for each +inf */
static double rel_prob(float l, float max)
{
    if (isinf(max)) return l == max && max > 0 ? 1.0 : 0.0;
    return exp((double)l - (double)max);
}

static double sum_probs(const cand *c, int32_t n, float max)
{
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += rel_prob(c[i].logit, max);
    return sum;
}

/* Returns the new candidate count; sets *sorted. */
static int32_t apply_top_p(cand *c, int32_t n, float top_p, int *sorted)
{
    float max = max_logit(c, n);
    double sum = sum_probs(c, n, max);
    if (!(sum > 0.0)) return n; /* all -inf: nothing to rank */
    int32_t k = *sorted ? n : (n > TOP_P_PREFIX ? TOP_P_PREFIX : n);
    if (!*sorted) sort_prefix(c, n, k);
    double cum = 0.0, target = (double)top_p * sum;
    for (int32_t i = 0; i < n; i++) {
        if (i == k) { /* the prefix was not enough: sort everything */
            qsort(c, (size_t)n, sizeof *c, cand_cmp);
            k = n;
        }
        cum += rel_prob(c[i].logit, max);
        if (cum >= target) {
            *sorted = 1;
            return i + 1;
        }
    }
    if (k < n) qsort(c, (size_t)n, sizeof *c, cand_cmp); /* rounding kept cum < target */
    *sorted = 1;
    return n;
}

static int32_t apply_min_p(cand *c, int32_t n, float min_p)
{
    float min_logit = max_logit(c, n) + logf(min_p);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= min_logit) c[m++] = c[i]; /* keeps the order */
    return m > 0 ? m : 1;                           /* +inf max with min_p = 0: unreachable */
}

/* index of the highest logit, the first in list order among ties */
static int32_t argmax_index(const cand *c, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > c[best].logit) best = i;
    return best;
}

static int32_t draw(bn_sampler *s, const cand *c, int32_t n)
{
    float max = max_logit(c, n);
    double sum = sum_probs(c, n, max);
    if (!(sum > 0.0)) return argmax_index(c, n);
    double target = rng_uniform(s->rng) * sum, run = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        double p = rel_prob(c[i].logit, max);
        if (p <= 0.0) continue;
        run += p;
        last = i;
        if (run >= target) return i;
    }
    return last; /* rounding: the last candidate with mass */
}

static int reserve(bn_sampler *s, int32_t n)
{
    if (n <= s->cap) return 0;
    cand *c = bn_malloc((size_t)n * sizeof *c);
    uint8_t *seen = bn_calloc((size_t)n, 1);
    if (!c || !seen) {
        bn_free(c);
        bn_free(seen);
        return -1;
    }
    bn_free(s->cands);
    bn_free(s->seen);
    s->cands = c;
    s->seen = seen;
    s->cap = n;
    return 0;
}

/* The first index of the highest logit, NaN counting as -inf; 0 when none is above -inf.
 * What the chain gives at temperature <= 0 without a penalty: top-k, top-p and min-p keep
 * the best candidate and sort ties to the lower id. Two passes that the compiler
 * vectorizes (x > m ? x : m is maxps), no work buffer: 16 server slots sample a
 * 128256-token vocabulary in well under a millisecond. */
static int32_t greedy(const float *l, int32_t n)
{
    enum { W = 16 };
    float m[W];
    for (int k = 0; k < W; k++) m[k] = -INFINITY;
    int32_t i = 0;
    for (; i + W <= n; i += W)
        for (int k = 0; k < W; k++) m[k] = l[i + k] > m[k] ? l[i + k] : m[k];
    float best = -INFINITY;
    for (; i < n; i++) best = l[i] > best ? l[i] : best;
    for (int k = 0; k < W; k++) best = m[k] > best ? m[k] : best;
    if (best == -INFINITY) return 0;
    for (i = 0; l[i] != best; i++) {}
    return i;
}

int32_t bn_sampler_sample(bn_sampler *s, const float *logits, int32_t n_vocab)
{
    BN_ASSERT(s != NULL);
    if (!logits || n_vocab < 1) return -1;
    if (!(s->p.temperature > 0.0f) && (s->p.repeat_penalty == 1.0f || s->hist_n == 0))
        return greedy(logits, n_vocab);
    if (reserve(s, n_vocab) != 0) return -1;
    cand *c = s->cands;
    int32_t n = n_vocab;
    int sorted = 0;
    if (s->p.top_k > 0 && s->p.top_k < n / 4 && (s->p.repeat_penalty == 1.0f || s->hist_n == 0)) {
        top_k_direct(logits, n, s->p.top_k, c); /* no penalty to apply first */
        n = s->p.top_k;
        sorted = 1;
    } else {
        for (int32_t i = 0; i < n_vocab; i++) {
            c[i].id = i;
            c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        }
        apply_penalty(s, c, n);
        if (s->p.top_k > 0 && s->p.top_k < n) {
            sort_prefix(c, n, s->p.top_k);
            n = s->p.top_k;
            sorted = 1;
        }
    }
    if (s->p.top_p < 1.0f) n = apply_top_p(c, n, s->p.top_p, &sorted);
    if (s->p.min_p > 0.0f) n = apply_min_p(c, n, s->p.min_p);
    if (!(s->p.temperature > 0.0f)) return c[argmax_index(c, n)].id;
    for (int32_t i = 0; i < n; i++) c[i].logit /= s->p.temperature;
    return c[draw(s, c, n)].id;
}
