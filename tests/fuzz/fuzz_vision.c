/* fuzz_vision.c - libFuzzer target for the vision model loader (bn_vmodel_load_gguf): any
 * bytes must give either a model that runs one image (when it is small enough to run at
 * fuzzing speed) with finite-or-not logits but no crash, or an error with a message; never a
 * crash or a leak. Built with clang by `make fuzz`, and linked with replay.c into a plain
 * program that `make test` runs over tests/fuzz/corpus/vision (the tiny ResNet, bottleneck
 * ResNet and ViT of tests/data/vision, converted, and broken variants). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/vision.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one zero image through a small model (a large one would only be slow, not wrong). */
static void run_one(bn_ctx *ctx, bn_vmodel *m)
{
    const bn_vmodel_info *mi = bn_vmodel_info_get(m);
    if (mi->image_size > 32 || mi->num_classes > 64 || mi->n_params > 200000) return;
    float x[BN_VISION_MAX_CHANS * 32 * 32] = {0}, logits[64];
    if (bn_vmodel_forward(ctx, m, x, 1, logits) != BN_OK && bn_ctx_errmsg(ctx)[0] == '\0')
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    bn_gguf *g = NULL;
    if (bn_gguf_open_memory(ctx, data, size, &g) != BN_OK) return 0;
    bn_vmodel *m = NULL;
    bn_ctx_clear_error(ctx);
    if (bn_vmodel_load_gguf(ctx, g, &m) == BN_OK) {
        run_one(ctx, m);
        bn_vmodel_free(m);
    } else if (m != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap(); /* an error must leave no model and name the problem */
    }
    bn_gguf_close(g);
    return 0;
}
