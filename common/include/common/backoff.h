/*
 * backoff.h - how long a sender waits before trying a failing endpoint again: exponential
 * backoff with jitter, one formula for the monitor's sinks (app/monitor/monitor_sinks.c) and
 * the billing sender (common/billing.c).
 *
 *     unsigned seed = time(NULL) ^ getpid();
 *     double s = cm_backoff_s(++failures, 1.0, max_s, &seed);   // 0.5 .. 1 s, 1 .. 2 s, ...
 *
 * No state but the caller's seed (rand_r): guard it when threads share it.
 */
#ifndef BITNET_COMMON_BACKOFF_H
#define BITNET_COMMON_BACKOFF_H

/* The wait before retry number failures (>= 1): base_s doubled per failure up to max_s, times
 * a factor from [0.5, 1] (rand_r on *seed) so that several senders do not retry in step. */
double cm_backoff_s(int failures, double base_s, double max_s, unsigned *seed);

#endif
