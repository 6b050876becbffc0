/* serve_gpu.c - evict_kv for `bitnet serve -ngl`; see serve_gpu.h. */
#include "serve_gpu.h"

#include "bitnet/model.h"

/* The idle slot holding a GPU cache that was used the longest ago, or -1. */
static int oldest_idle(const srv_gpu_slot *slots, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        const srv_gpu_slot *g = &slots[i];
        if (g->busy || !g->sess || !bn_model_state_gpu_resident(cm_session_state(g->sess)))
            continue;
        if (best < 0 || g->last_used < slots[best].last_used) best = i;
    }
    return best;
}

size_t srv_gpu_evict_idle(srv_gpu_slot *slots, int n, size_t need, int *n_evicted)
{
    size_t got = 0;
    int count = 0;
    for (int i; got < need && (i = oldest_idle(slots, n)) >= 0; count++) {
        const size_t b = cm_session_gpu_evict(slots[i].sess);
        bn_log(BN_LOG_WARN,
               "serve: GPU memory pressure: slot %d's KV cache evicted (%zu bytes); its next "
               "request evaluates its prompt again",
               slots[i].id, b);
        got += b;
    }
    if (n_evicted) *n_evicted = count;
    return got;
}
