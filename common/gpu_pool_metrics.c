/* gpu_pool_metrics.c - the GPU pool's statistics as bitnet_gpu_pool_* metrics; see
 * gpu_pool_metrics.h. */
#include "common/gpu_pool_metrics.h"

#include <stddef.h>

static const char *const gpu_label[] = {"gpu", NULL};
static const char *const stage_labels[] = {"gpu", "stage", NULL};

/* A family by name, defined on first use. */
static bn_mfamily *family(bn_metrics *m, bn_metric_type type, const char *name, const char *help,
                          const char *const *labels)
{
    bn_mfamily *f = bn_metrics_find(m, name);
    return f ? f : bn_metrics_define(m, type, name, help, labels, NULL, 0);
}

int bn_gpu_pool_metrics_update(bn_metrics *m, const char *gpu, const bn_gpu_pool_stats *s)
{
    const struct {
        bn_metric_type type;
        const char *name, *help;
        double v;
    } rows[] = {
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_reserved_bytes",
             "Device memory the GPU pool holds (its one allocation).", (double)s->reserved},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_used_bytes", "GPU pool bytes held by blocks.",
             (double)s->used},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_peak_used_bytes", "The most the pool has lent.",
             (double)s->peak_used},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_free_bytes", "Free bytes of the pool's arena.",
             (double)s->arena_free},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_largest_free_bytes",
             "The largest free extent of the pool's arena.", (double)s->largest_free},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_fragmentation_ratio",
             "1 - largest free extent / free bytes.", s->fragmentation},
            {BN_METRIC_GAUGE, "bitnet_gpu_pool_blocks", "Blocks held from the GPU pool.",
             (double)s->n_blocks},
            {BN_METRIC_COUNTER, "bitnet_gpu_pool_allocations_total", "GPU pool allocations.",
             (double)s->n_alloc},
            {BN_METRIC_COUNTER, "bitnet_gpu_pool_frees_total", "GPU pool blocks freed.",
             (double)s->n_free},
            {BN_METRIC_COUNTER, "bitnet_gpu_pool_failures_total",
             "GPU pool allocations that failed after the pressure chain.", (double)s->n_fail},
            {BN_METRIC_COUNTER, "bitnet_gpu_pool_rescued_total",
             "GPU pool allocations that succeeded after a pressure response.",
             (double)s->n_rescued},
    };
    const char *lv[] = {gpu, NULL};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        bn_mfamily *f = family(m, rows[i].type, rows[i].name, rows[i].help, gpu_label);
        if (!f || bn_metric_set(f, lv, rows[i].v)) return -1;
    }
    bn_mfamily *f = family(m, BN_METRIC_COUNTER, "bitnet_gpu_pool_pressure_total",
                           "Calls of a memory-pressure response, by stage.", stage_labels);
    for (int st = 0; st < BN_GPU_PRESSURE_COUNT_; st++) {
        lv[1] = bn_gpu_pressure_name((bn_gpu_pressure)st);
        if (!f || bn_metric_set(f, lv, (double)s->n_pressure[st])) return -1;
    }
    return 0;
}
