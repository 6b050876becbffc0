/* fuzz_gguf.c - libFuzzer target for the GGUF reader: any bytes must give either a reader
 * whose every record can be walked, or an error with a message; never a crash or a leak.
 * Built with clang by `make fuzz`, and linked with replay.c into a plain program that
 * `make test` runs over tests/fuzz/corpus/gguf. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every record the reader hands out, so ASan sees any bad pointer or length. */
static unsigned walk(const bn_gguf *g)
{
    unsigned sum = bn_gguf_version(g) + (unsigned)bn_gguf_alignment(g);
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        const char *key = bn_gguf_key(g, i);
        if (bn_gguf_find_key(g, key) != i) __builtin_trap();
        sum += (unsigned)strlen(key) + (unsigned)bn_gguf_kv_i64(g, i);
        size_t len = 0;
        const char *s = bn_gguf_kv_strn(g, i, &len);
        if (s) sum += (unsigned)len + (unsigned char)s[len]; /* the NUL after the bytes */
        uint64_t n = bn_gguf_arr_n(g, i);
        bn_gguf_vtype et = bn_gguf_arr_type(g, i);
        if (et == BN_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                s = bn_gguf_arr_str(g, i, j, &len);
                sum += (unsigned)len + (unsigned char)s[len];
            }
        } else if (n > 0) {
            const uint8_t *p = bn_gguf_arr_data(g, i);
            sum += p[0];
        }
    }
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (bn_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->size > 0) {
            const uint8_t *p = t->data;
            sum += p[0] + p[t->size - 1];
        }
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_ctx *ctx; /* one context for the whole run, so messages are formatted too */
    if (!ctx) {
        bn_ctx_params p = {.n_threads = 1};
        if (bn_ctx_new(&ctx, &p) != BN_OK) return 0;
    }
    bn_gguf *g = NULL;
    if (bn_gguf_open_memory(ctx, data, size, &g) == BN_OK) {
        volatile unsigned sink = walk(g);
        (void)sink;
        bn_gguf_close(g);
    } else if (g != NULL || bn_ctx_errmsg(ctx)[0] == '\0') {
        __builtin_trap(); /* an error must leave no reader and name the problem */
    }
    return 0;
}
