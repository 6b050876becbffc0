/*
 * genmetrics.h - the run metrics of every generation the process runs (the monitor's probe
 * and `bitnet serve`'s requests), under the names llama-server and vLLM users look for (all
 * labelled with the model):
 *
 *   counters    bitnet_prompt_tokens_total         (vllm:prompt_tokens_total)
 *               bitnet_generation_tokens_total     (vllm:generation_tokens_total)
 *               bitnet_prompt_seconds_total        (llamacpp:prompt_seconds_total)
 *               bitnet_generation_seconds_total    (llamacpp:tokens_predicted_seconds_total)
 *               bitnet_generation_requests_total   by result: stop, length or error
 *   histograms  bitnet_generation_time_to_first_token_seconds
 *               bitnet_generation_time_per_output_token_seconds   (each token after the first)
 *               bitnet_generation_duration_seconds                (end to end)
 *   gauges      bitnet_generation_tokens_per_second, bitnet_generation_prompt_tokens_per_second
 *               (the last request's speeds)
 *
 * Rates come from the counters: rate(tokens_total) / rate(seconds_total) is the throughput
 * while generating, over any window; the gauges only show the last request.
 *
 * Usage:
 *
 *     bn_genmetrics g;
 *     if (bn_genmetrics_define(&g, reg)) ...;      // once, on the registry
 *     bn_gen_run r;
 *     bn_gen_run_start(&r, bn_time_now());          // the request arrives
 *     ... evaluate the prompt ...
 *     bn_gen_run_prompt(&r, n_prompt, seconds);
 *     ... each token out: bn_gen_run_token(&r, bn_time_now()) ...
 *     bn_genmetrics_record(&g, "model.gguf", &r, BN_GEN_STOP, bn_time_now());  // releases r
 *
 * Threads: recording takes the registry's lock (one update for the whole request).
 */
#ifndef BITNET_APP_GENMETRICS_H
#define BITNET_APP_GENMETRICS_H

#include <stddef.h>

#include "common/metrics.h"

typedef struct bn_genmetrics {
    bn_metrics *reg;
    bn_mfamily *prompt_tokens, *gen_tokens, *prompt_seconds, *gen_seconds;
    bn_mfamily *ttft, *tpot, *e2e, *requests, *prompt_tps, *gen_tps;
} bn_genmetrics;

/* How a request ended: at an end-of-generation token, at its token or context limit, or by
 * an error. */
typedef enum bn_gen_finish {
    BN_GEN_STOP = 0,
    BN_GEN_LENGTH = 1,
    BN_GEN_ERROR = 2,
} bn_gen_finish;

/* One request's timings, filled as it runs. */
typedef struct bn_gen_run {
    double start, first, last; /* seconds (one clock): request, first and last token */
    size_t n_prompt, n_gen;
    double prompt_s;
    double *itl; /* time of each token after the first since the one before */
    size_t n_itl, cap_itl;
} bn_gen_run;

/* Buckets of request times (seconds), from a tiny model to a large one; for any histogram of
 * them. */
extern const double bn_gen_latency_buckets[];
extern const size_t bn_gen_n_latency_buckets;

/* Defines the families on reg; 0, or -1 with bn_metrics_errmsg(reg). */
int bn_genmetrics_define(bn_genmetrics *g, bn_metrics *reg);

void bn_gen_run_start(bn_gen_run *r, double now);
void bn_gen_run_prompt(bn_gen_run *r, size_t n_prompt, double seconds);
void bn_gen_run_token(bn_gen_run *r, double now);
/* Adds the request to the metrics of model (with BN_GEN_ERROR only the request count) and
 * releases r. */
void bn_genmetrics_record(const bn_genmetrics *g, const char *model, bn_gen_run *r,
                          bn_gen_finish finish, double now);

#endif
