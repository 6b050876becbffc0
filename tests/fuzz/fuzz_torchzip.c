/* fuzz_torchzip.c - libFuzzer target for the PyTorch checkpoint reader (zip + restricted
 * pickle): any bytes give either a reader whose every tensor can be read, or an error with a
 * message; never a crash, a leak, or anything executed. `make test` replays
 * tests/fuzz/corpus/torchzip. Inputs starting with the byte 0xB7 are a bare pickle, wrapped
 * here into a valid archive with two storages, so the fuzzer reaches the interpreter. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "bitnet/torchzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(bn_torch *pt)
{
    for (int64_t i = 0; i < bn_torch_n_tensors(pt); i++) {
        const bn_pt_tensor *t = bn_torch_tensor_at(pt, i);
        if (bn_torch_find(pt, t->name) != t) __builtin_trap();
        if (t->size > (1u << 20)) continue;
        void *buf = malloc(t->size ? t->size : 1);
        if (buf) bn_torch_read(pt, t, buf);
        free(buf);
    }
}

/* A zip (stored) holding arc/data.pkl = pkl and storages arc/data/0 (64 B), arc/data/1 (8 B). */
static uint8_t *wrap(const uint8_t *pkl, size_t n, size_t *out_n)
{
    static uint8_t s0[64], s1[8];
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_error_fini(&ze);
    if (!src) return NULL;
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, NULL);
    uint8_t *out = NULL;
    if (z) {
        const char *names[3] = {"arc/data.pkl", "arc/data/0", "arc/data/1"};
        const void *bufs[3] = {pkl, s0, s1};
        size_t lens[3] = {n, sizeof s0, sizeof s1};
        for (int i = 0; i < 3; i++) {
            zip_source_t *b = zip_source_buffer(z, bufs[i], lens[i], 0);
            zip_int64_t idx = b ? zip_file_add(z, names[i], b, 0) : -1;
            if (idx < 0)
                zip_source_free(b);
            else
                zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
        }
        if (zip_close(z) != 0) zip_discard(z);
        zip_stat_t st;
        if (zip_source_stat(src, &st) == 0 && zip_source_open(src) == 0) {
            out = malloc(st.size ? st.size : 1);
            if (out && zip_source_read(src, out, st.size) == (zip_int64_t)st.size)
                *out_n = st.size;
            else {
                free(out);
                out = NULL;
            }
            zip_source_close(src);
        }
    }
    zip_source_free(src);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx;
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    uint8_t *wrapped = NULL;
    if (size > 0 && data[0] == 0xB7) {
        size_t n = 0;
        wrapped = wrap(data + 1, size - 1, &n);
        if (!wrapped) return 0;
        data = wrapped;
        size = n;
    }
    bn_torch *pt = NULL;
    if (bn_torch_open_memory(ctx, data, size, &pt) == BN_OK) {
        walk(pt);
        bn_torch_close(pt);
    } else if (pt != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap();
    }
    free(wrapped);
    return 0;
}
