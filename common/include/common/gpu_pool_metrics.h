/*
 * gpu_pool_metrics.h - the GPU memory pool's statistics (bitnet/gpu_pool.h) as metrics of a
 * registry (common/metrics.h), named bitnet_gpu_pool_*.
 *
 * Usage:
 *
 *     bn_gpu_pool_stats s;
 *     bn_gpu_pool_stats_get(pool, &s);
 *     if (bn_gpu_pool_metrics_update(reg, "0", &s) != 0) ... bn_metrics_errmsg(reg) ...
 *
 * The families are defined on first use (label gpu: the device index; the pressure counter
 * also has label stage: evict_kv, shrink_ctx, cpu_layers); later calls set their values.
 * Gauges: _reserved_bytes, _used_bytes, _peak_used_bytes, _free_bytes, _largest_free_bytes,
 * _fragmentation_ratio, _blocks. Counters: _allocations_total, _frees_total,
 * _failures_total, _pressure_total{stage}, _rescued_total.
 */
#ifndef BITNET_COMMON_GPU_POOL_METRICS_H
#define BITNET_COMMON_GPU_POOL_METRICS_H

#include "bitnet/gpu_pool.h"
#include "common/metrics.h"

/* 0, or -1 (a family could not be defined or set; the reason in bn_metrics_errmsg). */
int bn_gpu_pool_metrics_update(bn_metrics *m, const char *gpu, const bn_gpu_pool_stats *s);

#endif
