/* model_common.h - what the commands that run a model share: the options every one of
 * them takes (-m, -t, --ctx), opening the model with its tokenizer and a state, reading
 * text files, and JSON-safe text. */
#ifndef BITNET_APP_MODEL_COMMON_H
#define BITNET_APP_MODEL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/model.h"
#include "bitnet/tokenizer.h"

typedef struct mc_opts {
    const char *model; /* -m FILE */
    long threads;      /* -t N; 0: one per core */
    long n_ctx;        /* --ctx N; 0: the command's default */
    long n_batch;      /* --batch N; 0: the engine's default */
    int kv_f32;        /* --kv-f32 */
    int head_keep;     /* --lm-head keep: the file's LM head rows (default: q8_0) */
} mc_opts;

/* If argv[*i] is one of the shared options, consumes it (and its value) and returns 1;
 * returns 0 when it is not one; on a bad value prints a usage error for cmd and returns
 * -1. */
int mc_parse_opt(const char *cmd, int argc, char **argv, int *i, mc_opts *o);

/* The lines of --help for the shared options. */
#define MC_OPTS_HELP                                                                               \
    "  -m, --model FILE  the GGUF model (required)\n"                                              \
    "  -t, --threads N   threads (default: one per core)\n"                                        \
    "  --batch N         prompt tokens evaluated at once (default 512)\n"                          \
    "  --kv-f32          keep the KV cache in f32 (default f16)\n"                                 \
    "  --lm-head TYPE    q8_0 (default): requantize the LM head at load; keep: the file's\n"

typedef struct mc_session {
    bn_ctx *ctx;
    bn_model *model;
    bn_tokenizer *tok;
    bn_model_state *st;
    double load_seconds;
} mc_session;

/* Creates the context, loads the model and its tokenizer and a state of n_ctx tokens
 * (o->n_ctx, else def_ctx, else the engine's default). On failure prints one line
 * ("bitnet: FILE: message") and returns BN_EXIT_FAIL with everything released. */
int mc_open(const mc_opts *o, long def_ctx, mc_session *s);
void mc_close(mc_session *s);

/* Reads a whole file into a NUL-terminated malloc'ed buffer (free()); prints the error
 * and returns NULL on failure. */
char *mc_read_file(const char *path, size_t *len);

/* A copy of len bytes as valid UTF-8 (bad bytes become U+FFFD) with no NUL bytes, for
 * JSON; malloc'ed, NULL when out of memory. */
char *mc_utf8_clean(const char *s, size_t len);

/* Kernel variant name, threads in use. */
const char *mc_kernels_name(void);

#endif
