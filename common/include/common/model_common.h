/* model_common.h - what the commands that run a model share: the options every one of
 * them takes (-m, -t, --ctx) and the sampling options, their defaults from the config
 * file and the default model, opening the model with its tokenizer and a state, reading
 * text files, and JSON-safe text.
 *
 * Usage, in a command:
 *
 *     mc_opts o = {0};
 *     mc_sampling smp;
 *     mc_sampling_init(&smp);
 *     for (int i = 1; i < argc; i++) {
 *         int r = mc_parse_opt("generate", argc, argv, &i, &o);
 *         if (r == 0) r = mc_parse_sampling_opt("generate", argc, argv, &i, &smp);
 *         if (r < 0) return BN_EXIT_USAGE;
 *         ...
 *     }
 *     int rc = mc_apply_defaults("generate", MC_DEF_CTX, &o, &smp);  // after parsing
 *     if (rc >= 0) return rc;                                       // no model, bad config
 *     mc_session s;
 *     if (mc_open(&o, 4096, &s) != BN_EXIT_OK) return BN_EXIT_FAIL;
 *     ...
 *     mc_close(&s);
 *
 * The default model, when -m is not given: the config's "model" key (BITNET_MODEL
 * overrides it), else the bundled model: in bn_bundled_models_dir(), the file named by
 * the first line of its DEFAULT file, else its only .gguf file. */
#ifndef BITNET_APP_MODEL_COMMON_H
#define BITNET_APP_MODEL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/model.h"
#include "bitnet/sample.h"
#include "bitnet/tokenizer.h"
#include "common/session.h"

#define MC_PATH_MAX 4096

typedef struct mc_opts {
    const char *model;           /* -m FILE; after mc_apply_defaults, the model to open */
    long threads;                /* -t N; 0: one per core */
    long n_ctx;                  /* --ctx N; 0: the command's default */
    long n_batch;                /* --batch N; 0: the engine's default */
    int kv_f32;                  /* --kv-f32 */
    int head_keep;               /* --lm-head keep: the file's LM head rows (default: q8_0) */
    int head_type;               /* --lm-head q6|q4: BN_MODEL_HEAD_Q6H / _Q4H; 0: q8_0 */
    int ctx_soft;                /* n_ctx is the config's: at most the model's context */
    long gpu_layers;             /* -ngl N: the last N layers on the GPU (config gpu_layers) */
    int gpu_given;               /* -ngl was on the command line */
    const char *model_from;      /* "-m", "config" or "bundled" (mc_apply_defaults) */
    char model_buf[MC_PATH_MAX]; /* holds the default model's path */
} mc_opts;

/* If argv[*i] is one of the shared options, consumes it (and its value) and returns 1;
 * returns 0 when it is not one; on a bad value prints a usage error for cmd and returns
 * -1. */
int mc_parse_opt(const char *cmd, int argc, char **argv, int *i, mc_opts *o);

/* The lines of --help for the shared options. */
#define MC_OPTS_HELP                                                                               \
    "  -m, --model FILE  the GGUF model (default: the config's model, else the bundled one)\n"     \
    "  -t, --threads N   threads (default: the config's threads, else one per core)\n"             \
    "  --batch N         prompt tokens evaluated at once (default 512)\n"                          \
    "  --kv-f32          keep the KV cache in f32 (default f16)\n"                                 \
    "  -ngl, --gpu-layers N  the last N layers on the GPU, the LM head too when N exceeds the\n"    \
    "                    model's layers (llama.cpp's count; default: the config's gpu_layers, 0)\n" \
    "  --lm-head TYPE    requantize the LM head at load to q8_0 (default), q6 or q4 (6.56 or\n"    \
    "                    4.56 bits per weight, n_embd a multiple of 256); keep: the file's\n"      \
    "                    rows as they are (--head is the same option)\n"

/* The sampling options of generate and chat, and which of them the command line gave. */
typedef struct mc_sampling {
    bn_sampler_params sp;
    unsigned given; /* MC_GIVEN_* */
} mc_sampling;

enum {
    MC_GIVEN_TEMP = 1u << 0,
    MC_GIVEN_TOP_K = 1u << 1,
    MC_GIVEN_TOP_P = 1u << 2,
    MC_GIVEN_MIN_P = 1u << 3,
    MC_GIVEN_REPEAT_PENALTY = 1u << 4,
    MC_GIVEN_SEED = 1u << 5,
};

/* llama.cpp's defaults (bn_sampler_params_default), nothing given. */
void mc_sampling_init(mc_sampling *s);

/* Like mc_parse_opt for --temp, --top-k, --top-p, --min-p, --repeat-penalty,
 * --repeat-last-n and --seed. */
int mc_parse_sampling_opt(const char *cmd, int argc, char **argv, int *i, mc_sampling *s);

#define MC_SAMPLING_HELP                                                                           \
    "  --temp T          temperature (default 0.8; 0: greedy)\n"                                   \
    "  --top-k K         keep the K most likely tokens (default 40; 0: off)\n"                     \
    "  --top-p P         nucleus sampling (default 0.95; 1: off)\n"                                \
    "  --min-p P         drop tokens below P times the top probability (default 0.05)\n"           \
    "  --repeat-penalty R  penalty for the last --repeat-last-n tokens (default 1: off)\n"         \
    "  --repeat-last-n N tokens the penalty looks at (default 64)\n"                               \
    "  --seed S          random seed (default: from the clock)\n"

/* What mc_apply_defaults takes from the config besides the model. */
enum {
    MC_DEF_THREADS = 1u << 0, /* threads */
    MC_DEF_CTX = 1u << 1,     /* ctx */
};

/* Fills what the command line left out: the model (see the top of this file), the
 * config's gpu_layers, threads and ctx (as `what` says) and, when s is not NULL, its sampling keys
 * (temp, top_k, top_p, min_p, repeat_penalty, seed; a seed of -1 is taken from the
 * clock). Returns -1 to go on; else the exit code after printing the error: usage when
 * there is no model, failure when the config file cannot be loaded. */
int mc_apply_defaults(const char *cmd, unsigned what, mc_opts *o, mc_sampling *s);

/* Finds the bundled model into buf (see the top). 0; 1 when there is none; -1 when the
 * directory is ambiguous (several .gguf files and no DEFAULT) or DEFAULT names a missing
 * file, with the reason in err. */
int mc_bundled_model(char *buf, size_t size, char *err, size_t errsz);

/* A model and one generation session on it (common/session.h); ctx, model, tok and st are
 * theirs, for the commands that call the engine directly. */
typedef struct mc_session {
    cm_model *cm;
    cm_session *sess;
    bn_ctx *ctx;
    bn_model *model;
    bn_tokenizer *tok;
    bn_model_state *st;
    double load_seconds;
} mc_session;

/* Opens the model (cm_model_open) with a session of n_ctx tokens (o->n_ctx, else def_ctx;
 * at most the model's context unless --ctx gave it) and the default sampler. On failure
 * prints one line ("bitnet: FILE: message") and returns BN_EXIT_FAIL with everything
 * released. */
int mc_open(const mc_opts *o, long def_ctx, mc_session *s);
void mc_close(mc_session *s);

/* Whether the file at path loads as generate, chat and perplexity load it (the engine's
 * model loader, then the tokenizer in the file; no evaluation state): 0 when it does, else
 * -1 with the loader's one-line reason in why. Costs a full load. */
int mc_check_loadable(const char *path, char *why, size_t whysz);

/* Reads a whole file into a NUL-terminated malloc'ed buffer (free()); prints the error
 * and returns NULL on failure. At most 1 GiB. */
char *mc_read_file(const char *path, size_t *len);

/* The most a text given with -f (generate, perplexity) may hold: 64 MiB, far more than
 * any context, so that `-f /dev/zero` fails at once instead of filling memory. */
#define MC_TEXT_MAX ((size_t)64 << 20)

/* The text given with -f (generate, perplexity): "-" is standard input, a pipe (-f <(cmd))
 * is read like a regular file, all with the limit MC_TEXT_MAX; a device or a folder is
 * refused (mc_read_text). */
char *mc_read_prompt(const char *path, size_t *len);

/* mc_read_file with a limit of max bytes: a larger regular file is refused before it is
 * read, anything else (a pipe, a device) once more than max bytes have come. */
char *mc_read_text(const char *path, size_t max, size_t *len);

/* A copy of len bytes as valid UTF-8 (bad bytes become U+FFFD) with no NUL bytes, for
 * JSON; malloc'ed, NULL when out of memory. */
char *mc_utf8_clean(const char *s, size_t len);

/* Kernel variant name, threads in use. */
const char *mc_kernels_name(void);

#endif
