/* fuzz_image.c - libFuzzer target for the image decoders (JPEG and PNG, bitnet/image.h) and
 * the transforms after them: any bytes give either an image whose every pixel can be read,
 * resized, cropped and turned into a tensor, or an error with a message; never a crash, a
 * leak or a read out of bounds. The first byte picks the options (grey, alpha blend, EXIF
 * ignored). `make test` replays tests/fuzz/corpus/image. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "bitnet/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned walk(bn_ctx *ctx, const bn_image *img)
{
    unsigned sum = 0;
    size_t n = (size_t)img->w * (size_t)img->h * (size_t)img->c;
    for (size_t i = 0; i < n; i++) sum += img->data[i];
    bn_image_prep p = {.resize = 5, .crop_w = 4, .crop_h = 3, .std = {1, 1, 1}};
    float *x = NULL;
    int c, h, w;
    if (bn_image_prepare(ctx, img, &p, &x, &c, &h, &w) != BN_OK) __builtin_trap();
    if (c != img->c || h != 3 || w != 4) __builtin_trap();
    sum += (unsigned)(x[0] >= 0.0f);
    bn_free(x);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params cp = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &cp) != BN_OK) return 0;
    }
    if (size < 1) return 0;
    /* a small pixel limit keeps each run fast; the check itself is what is fuzzed */
    bn_image_load_params p = {.max_pixels = 1 << 20,
                              .channels = data[0] & 1 ? 1 : 3,
                              .alpha = data[0] & 2 ? BN_IMAGE_ALPHA_BLEND : BN_IMAGE_ALPHA_DROP,
                              .background = {data[0], 128, 255},
                              .no_exif = (data[0] >> 2) & 1};
    bn_image img;
    if (bn_image_load_memory(ctx, data + 1, size - 1, "fuzz", &p, &img) == BN_OK) {
        if (!img.data || img.w < 1 || img.h < 1) __builtin_trap();
        volatile unsigned sink = walk(ctx, &img);
        (void)sink;
        bn_image_release(&img);
    } else if (img.data != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
