/* fuzz_onnx.c - libFuzzer target for the ONNX reader: any bytes give either a reader whose
 * every tensor and node can be walked (inline data read; no directory, so external data is
 * refused), or an error with a message; never a crash or a leak. `make test` replays
 * tests/fuzz/corpus/onnx. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(bn_onnx *ox)
{
    for (int64_t i = 0; i < bn_onnx_n_tensors(ox); i++) {
        const bn_onnx_tensor *t = bn_onnx_tensor_at(ox, i);
        if (bn_onnx_find(ox, t->name) != t) __builtin_trap();
        if (t->source == BN_ONNX_SRC_EXTERNAL && t->dtype != BN_DTYPE_COUNT_) __builtin_trap();
        if (t->size > (1u << 20)) continue;
        void *buf = malloc(t->size ? t->size : 1);
        if (buf) bn_onnx_read(ox, t, buf);
        free(buf);
    }
    bn_onnx_node nd;
    for (int64_t i = 0; bn_onnx_node_at(ox, i, &nd) == BN_OK; i++) {
        volatile size_t s = strlen(nd.op_type) + strlen(nd.name);
        for (size_t k = 0; k < nd.n_inputs; k++) s += strlen(nd.inputs[k]);
        (void)bn_onnx_node_meta(ox, i, "pkg.torch.onnx.name_scopes");
        (void)s;
    }
    volatile size_t s = strlen(bn_onnx_producer(ox)) + (size_t)bn_onnx_opset(ox);
    (void)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    bn_onnx *ox = NULL;
    if (bn_onnx_open_memory(ctx, data, size, NULL, &ox) == BN_OK) {
        walk(ox);
        bn_onnx_close(ox);
    } else if (ox != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
