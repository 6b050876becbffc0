/*
 * serve_gpu.h - `bitnet serve -ngl N` under GPU memory pressure: the response evict_kv of
 * the GPU pool (bitnet/gpu_pool.h), which gives back the KV caches of idle slots.
 *
 * Usage, in the engine thread (the only one that evaluates, so the only one whose pool
 * allocations can run the pressure chain):
 *
 *     srv_gpu_slot gs[N];                              // filled before each decoding step
 *     bn_gpu_pool_set_pressure(bn_cuda_pool(gpu), BN_GPU_PRESSURE_EVICT_KV, cb, engine);
 *     // cb: return srv_gpu_evict_idle(gs, n, need, NULL);
 *
 * An evicted slot keeps its tokens; its session is emptied (cm_session_gpu_evict), so its
 * next request evaluates its whole prompt again instead of reusing the cached prefix.
 */
#ifndef BITNET_SERVE_GPU_H
#define BITNET_SERVE_GPU_H

#include <stddef.h>

#include "common/session.h"

typedef struct srv_gpu_slot {
    int id;           /* for the log line */
    cm_session *sess; /* NULL: none */
    int busy;         /* running a request: never evicted */
    double last_used; /* when its last request ended (bn_time_now) */
} srv_gpu_slot;

/* Evicts the GPU KV caches of idle slots, the least recently used first, until need bytes
 * came back or none is left; each eviction logged at BN_LOG_WARN. Returns the bytes given
 * back; the count of slots evicted in *n_evicted (may be NULL). */
size_t srv_gpu_evict_idle(srv_gpu_slot *slots, int n, size_t need, int *n_evicted);

#endif
