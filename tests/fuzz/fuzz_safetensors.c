/* fuzz_safetensors.c - libFuzzer target for the SafeTensors reader: any bytes give either a
 * reader whose every tensor and metadata entry can be walked and converted, or an error with
 * a message; never a crash or a leak. `make test` replays tests/fuzz/corpus/safetensors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned walk(const bn_safetensors *st)
{
    unsigned sum = 0;
    for (int64_t i = 0; i < bn_safetensors_n_tensors(st); i++) {
        const bn_st_tensor *t = bn_safetensors_tensor_at(st, i);
        if (bn_safetensors_find(st, t->name) != t) __builtin_trap();
        if (t->size != t->numel * bn_dtype_size(t->dtype)) __builtin_trap();
        if (t->size > 0) {
            const uint8_t *p = t->data;
            sum += p[0] + p[t->size - 1];
            size_t n = t->numel < 64 ? (size_t)t->numel : 64;
            float x[64];
            if (bn_dtype_to_f32(t->dtype, t->data, n, x) != BN_OK) __builtin_trap();
            sum += (unsigned)(x[0] == x[0]);
        }
    }
    for (int64_t i = 0; i < bn_safetensors_n_meta(st); i++) {
        const char *k = bn_safetensors_meta_key(st, i);
        sum += (unsigned)strlen(k) + (unsigned)strlen(bn_safetensors_meta_value(st, i));
        if (!bn_safetensors_meta(st, k)) __builtin_trap();
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    bn_safetensors *st = NULL;
    if (bn_safetensors_open_memory(ctx, data, size, &st) == BN_OK) {
        volatile unsigned sink = walk(st);
        (void)sink;
        bn_safetensors_close(st);
    } else if (st != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
