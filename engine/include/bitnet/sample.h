/*
 * bitnet/sample.h - choosing the next token from logits: greedy, temperature, top-k,
 * top-p, min-p, repetition penalty, with a seeded PRNG of its own.
 *
 * Usage:
 *
 *     bn_sampler_params sp = bn_sampler_params_default();   // llama.cpp's common defaults
 *     sp.temperature = 0.7f; sp.seed = 42;
 *     bn_sampler *s;
 *     if (bn_sampler_new(&s, &sp) != BN_OK) return 1;
 *     for (int i = 0; i < n_prompt; i++) bn_sampler_accept(s, prompt[i]);  // history
 *     for (;;) {
 *         const float *logits = ...;                  // n_vocab values, not modified
 *         int32_t tok = bn_sampler_sample(s, logits, n_vocab);
 *         if (tok < 0) break;                         // out of memory or bad arguments
 *         bn_sampler_accept(s, tok);
 *         ...
 *     }
 *     bn_sampler_free(s);
 *
 * Ownership: the caller owns the sampler and frees it with bn_sampler_free(). The sampler
 * keeps no pointer to the logits. One sampler is not safe for concurrent use.
 *
 * Semantics (those of llama.cpp's src/llama-sampling.cpp with its common default chain
 * "penalties; top-k; top-p; min-p; temperature; dist", the filters llama.cpp adds in
 * between - DRY, top-n-sigma, typical, XTC - being off). Each step works on the
 * candidate list left by the one before; "sorted" means by logit, descending, ties to the
 * lower token id.
 *   0. Candidates are all ids 0..n_vocab-1. A NaN logit counts as -inf.
 *   1. Repetition penalty (repeat_penalty != 1 and repeat_last_n > 0): every distinct
 *      token among the last repeat_last_n accepted tokens, once however often it occurs:
 *      logit > 0 is divided by repeat_penalty, logit <= 0 multiplied by it (llama.cpp's
 *      fix of the CTRL paper's plain division). Ids outside 0..n_vocab-1 are ignored.
 *   2. Top-k (top_k > 0): keeps the top_k highest logits (all when top_k >= n).
 *   3. Top-p (top_p < 1): softmax over the remaining candidates at temperature 1, then
 *      the shortest sorted prefix whose cumulative probability is >= top_p (at least one
 *      token; top_p <= 0 keeps exactly one).
 *   4. Min-p (min_p > 0): keeps the candidates with logit >= max logit + ln(min_p), i.e.
 *      probability >= min_p times the top probability, at temperature 1 (the maximum
 *      always stays).
 *   5. Temperature: temperature <= 0 keeps only the highest logit (ties: lowest id) -
 *      greedy, no random number is drawn; otherwise every logit is divided by it.
 *   6. Draw: p_i = exp(l_i - max) / sum (sum in double), u uniform in [0, 1) from the
 *      PRNG (53 bits), the first candidate in list order whose running sum of p reaches
 *      u * sum; candidates of probability 0 (logit -inf) are never drawn. If every logit
 *      is -inf (or NaN) the result is the lowest id, 0. A +inf logit takes all the mass
 *      (shared evenly when there are several).
 * Differences from llama.cpp, on purpose: the PRNG (xoshiro256** seeded through
 * splitmix64 instead of mt19937, so the same seed gives other draws), ties broken by id
 * (llama.cpp's partial sort leaves their order unspecified), cumulative sums in double,
 * and a zero-probability candidate is never drawn (llama.cpp's draw can return one when
 * u = 0).
 */
#ifndef BITNET_SAMPLE_H
#define BITNET_SAMPLE_H

#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_sampler bn_sampler;

typedef struct bn_sampler_params {
    float temperature;    /* <= 0: greedy (argmax, ties to the lowest id) */
    int32_t top_k;        /* 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* 0: off; at most 1 */
    float repeat_penalty; /* 1: off; > 0 */
    int32_t repeat_last_n; /* tokens of history the penalty looks at; 0: off; <= 1 << 20 */
    uint64_t seed;        /* same seed, same logits, same history: same tokens */
} bn_sampler_params;

#define BN_SAMPLER_MAX_LAST_N (1 << 20)

/* llama.cpp's common defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), repeat_last_n 64, seed 0. */
bn_sampler_params bn_sampler_params_default(void);

/* Checks p and creates a sampler (p NULL: the defaults). BN_ERR_INVALID for a NaN value,
 * top_k < 0, top_p < 0, min_p outside [0, 1], repeat_penalty <= 0 or infinite,
 * repeat_last_n outside [0, BN_SAMPLER_MAX_LAST_N]; BN_ERR_NOMEM. */
bn_status bn_sampler_new(bn_sampler **out, const bn_sampler_params *p);
void bn_sampler_free(bn_sampler *s); /* NULL is fine */

/* Picks a token from n_vocab logits (not modified). Returns the id, or -1 when
 * n_vocab < 1, logits is NULL, or the work buffers (grown to n_vocab on first use,
 * kept afterwards) cannot be allocated. Greedy sampling without an active penalty
 * (temperature <= 0, and repeat_penalty 1 or no history) scans the logits once for the
 * maximum and needs no work buffer. Does not record the token: call bn_sampler_accept
 * for that. */
int32_t bn_sampler_sample(bn_sampler *s, const float *logits, int32_t n_vocab);

/* Records a token in the repetition-penalty history (a ring of repeat_last_n). */
void bn_sampler_accept(bn_sampler *s, int32_t token);

/* Clears the history and restarts the PRNG from the seed. */
void bn_sampler_reset(bn_sampler *s);

/* The parameters the sampler was created with. */
const bn_sampler_params *bn_sampler_get_params(const bn_sampler *s);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_SAMPLE_H */
