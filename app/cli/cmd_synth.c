/* cmd_synth.c - `bitnet synth`: a GGUF model with a real model's shape, random ternary
 * weights and a real tokenizer, for benchmarks without a download. */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"
#include "bitnet/types.h"
#include "common/model_common.h"
#include "common/self_run.h"
#include "synth_vision.h"

typedef struct shape {
    const char *name, *arch;
    int E, L, H, KV, F;
    int V; /* 0: the tokenizer's size */
    int n_ctx;
    float eps, theta;
    int untied;
    const char *vocab_file; /* default vocabulary GGUF (tests/data) */
} shape;

/* 2b4t: microsoft/bitnet-b1.58-2B-4T (FORMATS.md). 700m: 1bitLLM/bitnet_b1_58-large
 * (LLaMA layout: hidden 1536, 24 layers, 16 heads, no GQA, FFN 4096, vocab 32002, SiLU
 * under llama.cpp's "bitnet" architecture, separate lm_head, the LLaMA-2 vocabulary). */
static const shape g_shapes[] = {
        {"2b4t", "bitnet-b1.58", 2560, 30, 20, 5, 6912, 128256, 4096, 1e-5f, 500000.0f, 0,
         "ggml-vocab-gpt-2.gguf"},
        {"700m", "bitnet", 1536, 24, 16, 16, 4096, 32002, 2048, 1e-5f, 10000.0f, 1,
         "ggml-vocab-llama-spm.gguf"},
        {"tiny", "bitnet-b1.58", 256, 4, 4, 2, 512, 0, 2048, 1e-5f, 500000.0f, 0,
         "ggml-vocab-gpt-2.gguf"},
};

void cmd_synth_help(FILE *out)
{
    fprintf(out, "Usage: bitnet synth --shape NAME -o FILE.gguf [options]\n\n"
                 "Writes a model with a real model's shape, random ternary weights, random norms\n"
                 "and embeddings of a sensible scale, and a real tokenizer, so that anyone can\n"
                 "benchmark without a download. The text it generates is noise.\n\n"
                 "Shapes:\n"
                 "  2b4t  bitnet-b1.58: hidden 2560, 30 layers, 20 heads (5 KV), FFN 6912,\n"
                 "        vocab 128256, tied embeddings (BitNet b1.58 2B4T)\n"
                 "  700m  bitnet: hidden 1536, 24 layers, 16 heads, FFN 4096, vocab 32002,\n"
                 "        separate LM head (bitnet_b1_58-large)\n"
                 "  tiny  bitnet-b1.58: hidden 256, 4 layers, 4 heads (2 KV), FFN 512, the\n"
                 "        tokenizer's vocabulary\n"
                 "Image classifiers (224x224 RGB, 1000 classes, ImageNet's mean and std; random\n"
                 "ternary weights as bitnet convert stores them, docs/VISION.md; no tokenizer):\n"
                 "  resnet18, resnet50, vit-s16, vit-b16, efficientnet-b0\n"
                 "A vocabulary smaller than the shape's is padded with unused tokens.\n\n"
                 "Options:\n"
                 "  --shape NAME        one of the shapes above (required)\n"
                 "  -o, --output FILE   the GGUF to write (required; written atomically; its\n"
                 "                      folder must exist)\n"
                 "  --force             replace an existing output file\n"
                 "  --tokenizer FILE    a Hugging Face tokenizer.json (byte-level BPE, e.g.\n"
                 "                      LLaMA-3's); default: the GPT-2 vocabulary (LLaMA-2's for\n"
                 "                      700m) from tests/data\n"
                 "  --vocab FILE        take the tokenizer.* keys of another GGUF\n"
                 "  --type TYPE         ternary weight type: i2_s (default), tq2_0, tq1_0\n"
                 "  --arch NAME         bitnet-b1.58 (relu^2 FFN) or bitnet (SiLU FFN, the\n"
                 "                      name mainline llama.cpp loads); default: the shape's\n"
                 "  --seed S            random seed (default 1)\n"
                 "  --json              print {\"path\", \"shape\", \"type\", \"bytes\", ...}\n"
                 "  -h, --help          this help\n\n"
                 "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

typedef struct synth_opts {
    const shape *sh;
    shape custom; /* the shape with --arch applied */
    const char *out, *tokenizer, *vocab, *arch;
    const char *vshape; /* an image classifier's shape (synth_vision.c) */
    int type;
    unsigned long long seed;
    int json, force;
} synth_opts;

static int parse_args(int argc, char **argv, synth_opts *o)
{
    const char *C = "synth";
    o->type = BN_TYPE_I2_S;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_synth_help(stdout);
            return BN_EXIT_OK;
        }
        if (!strcmp(a, "--json") || !strcmp(a, "--force")) {
            *(strcmp(a, "--json") ? &o->force : &o->json) = 1;
            continue;
        }
        int known = !strcmp(a, "--shape") || !strcmp(a, "-o") || !strcmp(a, "--output") ||
                    !strcmp(a, "--tokenizer") || !strcmp(a, "--vocab") || !strcmp(a, "--type") ||
                    !strcmp(a, "--seed") || !strcmp(a, "--arch");
        if (!known) return cli_usage_error(C, "unknown option '%s'", a);
        if (!v) return cli_usage_error(C, "%s needs a value", a);
        i++;
        if (!strcmp(a, "--shape")) {
            o->sh = NULL;
            o->vshape = synth_vision_known(v) ? v : NULL;
            for (size_t k = 0; k < sizeof g_shapes / sizeof g_shapes[0]; k++)
                if (!strcmp(v, g_shapes[k].name)) o->sh = &g_shapes[k];
            if (!o->sh && !o->vshape)
                return cli_usage_error(C,
                                       "unknown shape '%s' (2b4t, 700m, tiny, resnet18, resnet50, "
                                       "vit-s16, vit-b16, efficientnet-b0)",
                                       v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->out = v;
        } else if (!strcmp(a, "--tokenizer")) {
            o->tokenizer = v;
        } else if (!strcmp(a, "--vocab")) {
            o->vocab = v;
        } else if (!strcmp(a, "--arch")) {
            if (strcmp(v, "bitnet-b1.58") != 0 && strcmp(v, "bitnet") != 0)
                return cli_usage_error(C, "--arch: '%s' is not bitnet-b1.58 or bitnet", v);
            o->arch = v;
        } else if (!strcmp(a, "--type")) {
            o->type = bn_type_from_name(v);
            if (o->type != BN_TYPE_I2_S && o->type != BN_TYPE_TQ2_0 && o->type != BN_TYPE_TQ1_0)
                return cli_usage_error(C, "--type: '%s' is not i2_s, tq2_0 or tq1_0", v);
        } else {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-' || errno)
                return cli_usage_error(C, "--seed: '%s' is not a number", v);
        }
    }
    if (!o->sh && !o->vshape) return cli_usage_error(C, "missing --shape 2b4t|700m|tiny");
    if (!o->out) return cli_usage_error(C, "missing -o FILE.gguf");
    if (o->vshape && (o->tokenizer || o->vocab || o->arch || o->type != BN_TYPE_I2_S))
        return cli_usage_error(C, "--shape %s takes no --tokenizer, --vocab, --arch or --type",
                               o->vshape);
    if (o->vshape) return -1;
    if (o->arch) {
        o->custom = *o->sh;
        o->custom.arch = o->arch;
        o->sh = &o->custom;
    }
    if (o->tokenizer && o->vocab)
        return cli_usage_error(C, "give --tokenizer or --vocab, not both");
    return -1;
}

/* ---- the vocabulary ----------------------------------------------------------------------- */

/* Tokens, scores and types as arrays, whichever source they come from. */
typedef struct vocab {
    size_t n;
    const char **tok;
    size_t *len;
    float *scores;  /* NULL when the source has none */
    int32_t *types; /* NULL when the source has none */
    char **owned;   /* strings this struct allocated (n_owned of them) */
    size_t n_owned, n_owned_cap;
} vocab;

static void vocab_free(vocab *v)
{
    for (size_t i = 0; i < v->n_owned; i++) free(v->owned[i]);
    free(v->owned);
    free(v->tok);
    free(v->len);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

/* Grows v to n tokens (n >= v->n), the new ones unused "<|synth_pad_N|>" tokens. */
static int vocab_pad(vocab *v, size_t n, int with_scores, int with_types)
{
    const size_t old = v->n;
    const char **tok = realloc(v->tok, n * sizeof *tok);
    if (tok) v->tok = tok;
    size_t *len = tok ? realloc(v->len, n * sizeof *len) : NULL;
    if (len) v->len = len;
    char **owned = len ? realloc(v->owned, (v->n_owned + n - old) * sizeof *owned) : NULL;
    if (owned) {
        v->owned = owned;
        v->n_owned_cap = v->n_owned + n - old;
    }
    float *sc = owned && with_scores ? realloc(v->scores, n * sizeof *sc) : NULL;
    if (sc) v->scores = sc;
    int32_t *ty = owned && with_types ? realloc(v->types, n * sizeof *ty) : NULL;
    if (ty) v->types = ty;
    if (!owned || (with_scores && !sc) || (with_types && !ty)) return -1;
    for (size_t i = old; i < n; i++) {
        char buf[40];
        int k = snprintf(buf, sizeof buf, "<|synth_pad_%zu|>", i - old);
        char *s = strdup(buf);
        if (!s) return -1;
        v->owned[v->n_owned++] = s;
        v->tok[i] = s;
        v->len[i] = (size_t)k;
        if (with_scores) v->scores[i] = -1e9f;
        if (with_types) v->types[i] = BN_TOKEN_TYPE_UNUSED;
        v->n = i + 1;
    }
    return 0;
}

/* Copies entry i of g into w. */
static int copy_kv(bn_gguf_writer *w, const bn_gguf *g, int64_t i)
{
    return bn_gguf_writer_copy_kv(w, g, i) == BN_OK ? 0 : -1;
}

/* The token arrays of g into v (strings point into g). */
static int vocab_from_gguf(const bn_gguf *g, vocab *v)
{
    const int64_t it = bn_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (it < 0 || bn_gguf_kv_type(g, it) != BN_GGUF_ARRAY ||
        bn_gguf_arr_type(g, it) != BN_GGUF_STRING || bn_gguf_arr_n(g, it) == 0)
        return -1;
    const size_t n = (size_t)bn_gguf_arr_n(g, it);
    v->tok = malloc(n * sizeof *v->tok);
    v->len = malloc(n * sizeof *v->len);
    if (!v->tok || !v->len) return -1;
    for (size_t j = 0; j < n; j++) v->tok[j] = bn_gguf_arr_str(g, it, j, &v->len[j]);
    v->n = n;
    const int64_t is = bn_gguf_find_key(g, "tokenizer.ggml.scores");
    if (is >= 0 && bn_gguf_arr_type(g, is) == BN_GGUF_F32 && bn_gguf_arr_n(g, is) == n) {
        v->scores = malloc(n * sizeof *v->scores);
        if (!v->scores) return -1;
        memcpy(v->scores, bn_gguf_arr_data(g, is), n * sizeof *v->scores);
    }
    const int64_t ity = bn_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (ity >= 0 && bn_gguf_arr_type(g, ity) == BN_GGUF_I32 && bn_gguf_arr_n(g, ity) == n) {
        v->types = malloc(n * sizeof *v->types);
        if (!v->types) return -1;
        memcpy(v->types, bn_gguf_arr_data(g, ity), n * sizeof *v->types);
    }
    return 0;
}

static int write_vocab(bn_gguf_writer *w, const vocab *v)
{
    int rc = bn_gguf_writer_set_arr_strn(w, "tokenizer.ggml.tokens", v->tok, v->len, v->n);
    if (!rc && v->scores)
        rc = bn_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BN_GGUF_F32, v->scores, v->n);
    if (!rc && v->types)
        rc = bn_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BN_GGUF_I32, v->types, v->n);
    return rc ? -1 : 0;
}

/* Finds name in tests/data under the working directory or next to the executable. */
static int find_default_vocab(const char *name, char *path, size_t size)
{
    snprintf(path, size, "tests/data/%s", name);
    if (access(path, R_OK) == 0) return 0;
    char exe[PATH_MAX];
    if (sr_exe_path(exe, sizeof exe)) return -1;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';
    static const char *const rel[] = {"../tests/data", "../../tests/data", "../share/bitnet"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        int k = snprintf(path, size, "%s/%s/%s", exe, rel[i], name);
        if (k > 0 && (size_t)k < size && access(path, R_OK) == 0) return 0;
    }
    return -1;
}

/* ---- tokenizer.json (Hugging Face, byte-level BPE) --------------------------------------- */

typedef struct hf_tok {
    vocab v;
    char **merges;
    size_t n_merges;
    int32_t bos, eos;
    const char *pre;
} hf_tok;

static void hf_free(hf_tok *h)
{
    for (size_t i = 0; i < h->n_merges; i++) free(h->merges[i]);
    free(h->merges);
    vocab_free(&h->v);
}

static int hf_set_token(hf_tok *h, long id, const char *text, int32_t type)
{
    if (id < 0 || (size_t)id >= h->v.n) return -1;
    if (h->v.tok[id] && !strcmp(h->v.tok[id], text)) { /* listed in vocab and added_tokens */
        h->v.types[id] = type;
        return 0;
    }
    if (h->v.n_owned == h->v.n_owned_cap) return -1;
    char *s = strdup(text);
    if (!s) return -1;
    h->v.owned[h->v.n_owned++] = s;
    h->v.tok[id] = s;
    h->v.len[id] = strlen(s);
    h->v.types[id] = type;
    return 0;
}

/* The highest id among model.vocab and added_tokens, plus one. */
static size_t hf_count(const cJSON *vocab_obj, const cJSON *added)
{
    long top = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab_obj)
    {
        if (cJSON_IsNumber(e) && e->valuedouble > top) top = (long)e->valuedouble;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > top) top = (long)id->valuedouble;
    }
    return top < 0 || top >= (1L << 24) ? 0 : (size_t)top + 1;
}

static int hf_merges(hf_tok *h, const cJSON *merges)
{
    const int n = cJSON_GetArraySize(merges);
    h->merges = calloc((size_t)(n ? n : 1), sizeof *h->merges);
    if (!h->merges) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges)
    {
        char *s = NULL;
        if (cJSON_IsString(e)) {
            s = strdup(e->valuestring);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) {
            const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsString(a) || !cJSON_IsString(b)) return -1;
            const size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
            s = malloc(la + lb + 2);
            if (s) snprintf(s, la + lb + 2, "%s %s", a->valuestring, b->valuestring);
        } else {
            return -1;
        }
        if (!s) return -1;
        h->merges[h->n_merges++] = s;
    }
    return 0;
}

/* Builds the vocabulary of a byte-level BPE tokenizer.json. Returns 0 or -1 with msg. */
static int hf_parse(const char *path, hf_tok *h, const char **msg)
{
    memset(h, 0, sizeof *h);
    h->bos = h->eos = -1;
    size_t len;
    char *text = mc_read_file(path, &len);
    if (!text) return *msg = NULL, -1;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = -1;
    *msg = "not a JSON document";
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vo = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(doc, "added_tokens");
    if (!doc) goto done;
    *msg = "only byte-level BPE tokenizers (model.type \"BPE\" with vocab and merges) are read";
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0 || !cJSON_IsObject(vo) ||
        !cJSON_IsArray(merges))
        goto done;
    *msg = "token ids out of range";
    const size_t n = hf_count(vo, added);
    if (n == 0) goto done;
    *msg = "out of memory";
    h->v.tok = calloc(n, sizeof *h->v.tok);
    h->v.len = calloc(n, sizeof *h->v.len);
    h->v.types = calloc(n, sizeof *h->v.types);
    h->v.n_owned_cap = 2 * n + (size_t)cJSON_GetArraySize(added);
    h->v.owned = calloc(h->v.n_owned_cap, sizeof *h->v.owned);
    if (!h->v.tok || !h->v.len || !h->v.types || !h->v.owned) goto done;
    h->v.n = n;
    const cJSON *e;
    *msg = "bad vocab entry";
    cJSON_ArrayForEach(e, vo)
    {
        if (!cJSON_IsNumber(e) ||
            hf_set_token(h, (long)e->valuedouble, e->string, BN_TOKEN_TYPE_NORMAL))
            goto done;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(e, "special");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content)) goto done;
        const int32_t ty =
                cJSON_IsTrue(special) ? BN_TOKEN_TYPE_CONTROL : BN_TOKEN_TYPE_USER_DEFINED;
        if (hf_set_token(h, (long)id->valuedouble, content->valuestring, ty)) goto done;
        if (!strcmp(content->valuestring, "<|begin_of_text|>")) h->bos = (int32_t)id->valuedouble;
        if (!strcmp(content->valuestring, "<|end_of_text|>") ||
            !strcmp(content->valuestring, "<|endoftext|>"))
            h->eos = (int32_t)id->valuedouble;
    }
    /* ids nobody named become unused placeholders */
    for (size_t i = 0; i < n; i++) {
        if (h->v.tok[i]) continue;
        char buf[40];
        snprintf(buf, sizeof buf, "<|synth_unused_%zu|>", i);
        if (hf_set_token(h, (long)i, buf, BN_TOKEN_TYPE_UNUSED)) goto done;
    }
    *msg = "bad merges";
    if (hf_merges(h, merges)) goto done;
    /* LLaMA-3's pre-tokenizer has BOS <|begin_of_text|>; otherwise GPT-2's */
    h->pre = h->bos >= 0 ? "llama-bpe" : "gpt-2";
    rc = 0;
done:
    cJSON_Delete(doc);
    return rc;
}

static int hf_write(bn_gguf_writer *w, hf_tok *h, size_t n_vocab)
{
    int rc = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rc |= bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", h->pre);
    rc |= bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)h->merges,
                                     h->n_merges);
    if (h->bos >= 0)
        rc |= bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)h->bos);
    if (h->eos >= 0)
        rc |= bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)h->eos);
    rc |= bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", h->bos >= 0);
    if (rc) return -1;
    if (n_vocab > h->v.n && vocab_pad(&h->v, n_vocab, 0, 1)) return -1;
    return write_vocab(w, &h->v);
}

/* ---- random tensors -------------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_uniform(rng *r) /* [-1, 1) */
{
    return (float)((double)(rng_next(r) >> 40) / 8388608.0 - 1.0);
}

/* The tensors' bytes stay alive until the writer has written them. */
typedef struct tensors {
    void **p;
    size_t n, cap;
    size_t bytes;
} tensors;

static void *tensors_alloc(tensors *t, size_t size)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        void **p = realloc(t->p, cap * sizeof *p);
        if (!p) return NULL;
        t->p = p;
        t->cap = cap;
    }
    void *b = malloc(size ? size : 1);
    if (b) t->p[t->n++] = b;
    t->bytes += size;
    return b;
}

static void tensors_free(tensors *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->p[i]);
    free(t->p);
}

static int add_norm(bn_gguf_writer *w, tensors *ts, rng *r, const char *name, int n, float spread)
{
    float *d = tensors_alloc(ts, (size_t)n * 4);
    if (!d) return -1;
    for (int i = 0; i < n; i++) d[i] = 1.0f + spread * rng_uniform(r);
    const int64_t ne[1] = {n};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_F32, 1, ne, d, (size_t)n * 4) ? -1 : 0;
}

/* A rows x cols ternary matrix, uniform over {-1, 0, 1}, scaled for unit-variance
 * outputs from unit-variance inputs. q is scratch of rows * cols. */
static int add_ternary(bn_gguf_writer *w, tensors *ts, rng *r, int type, const char *name, int rows,
                       int cols, int8_t *q)
{
    const int64_t n = (int64_t)rows * cols;
    for (int64_t i = 0; i < n; i += 8) {
        uint64_t x = rng_next(r);
        for (int k = 0; k < 8 && i + k < n; k++, x >>= 8)
            q[i + k] = (int8_t)((((x & 0xff) * 3) >> 8) - 1);
    }
    const float scale = bn_f16_to_f32(bn_f32_to_f16(sqrtf(1.5f / (float)cols)));
    size_t size;
    if (type == BN_TYPE_I2_S)
        size = bn_i2s_bytes(n);
    else if (bn_type_row_bytes(type, n, &size) != BN_OK)
        return -1;
    uint8_t *d = tensors_alloc(ts, size);
    if (!d) return -1;
    if (type == BN_TYPE_I2_S) {
        memset(d, 0, size);
        bn_pack_i2s(q, scale, n, d);
    } else if (type == BN_TYPE_TQ2_0) {
        bn_pack_tq2_0(q, scale, n, d);
    } else {
        bn_pack_tq1_0(q, scale, n, d);
    }
    const int64_t ne[2] = {cols, rows};
    return bn_gguf_writer_add_tensor(w, name, type, 2, ne, d, size) ? -1 : 0;
}

/* An F16 embedding matrix (rows of E) with elements of standard deviation sd. */
static int add_f16_rows(bn_gguf_writer *w, tensors *ts, rng *r, const char *name, int rows, int E,
                        float sd)
{
    const size_t n = (size_t)rows * (size_t)E;
    uint16_t *d = tensors_alloc(ts, n * 2);
    if (!d) return -1;
    const float a = sd * sqrtf(3.0f);
    for (size_t i = 0; i < n; i++) d[i] = bn_f32_to_f16(a * rng_uniform(r));
    const int64_t ne[2] = {E, rows};
    return bn_gguf_writer_add_tensor(w, name, BN_TYPE_F16, 2, ne, d, n * 2) ? -1 : 0;
}

static int add_layers(bn_gguf_writer *w, tensors *ts, rng *r, const synth_opts *o)
{
    const shape *s = o->sh;
    const int KV = s->KV * (s->E / s->H);
    int8_t *q = malloc((size_t)s->F * (size_t)s->E);
    if (!q) return -1;
    static const char *const lin[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                       "ffn_gate", "ffn_up", "ffn_down"};
    const int rows[7] = {s->E, KV, KV, s->E, s->F, s->F, s->E};
    const int cols[7] = {s->E, s->E, s->E, s->E, s->E, s->E, s->F};
    int rc = 0;
    char name[64];
    for (int l = 0; l < s->L && !rc; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        rc |= add_norm(w, ts, r, name, s->E, 0.1f);
        snprintf(name, sizeof name, "blk.%d.attn_sub_norm.weight", l);
        rc |= add_norm(w, ts, r, name, s->E, 0.1f);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        rc |= add_norm(w, ts, r, name, s->E, 0.1f);
        snprintf(name, sizeof name, "blk.%d.ffn_sub_norm.weight", l);
        rc |= add_norm(w, ts, r, name, s->F, 0.1f);
        for (int i = 0; i < 7 && !rc; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lin[i]);
            rc = add_ternary(w, ts, r, o->type, name, rows[i], cols[i], q);
        }
    }
    free(q);
    return rc;
}

static int set_hparams(bn_gguf_writer *w, const shape *s, size_t n_vocab)
{
    char k[96];
    int rc = bn_gguf_writer_set_str(w, "general.architecture", s->arch);
    char desc[96];
    snprintf(desc, sizeof desc, "synthetic %s: random ternary weights (bitnet synth)", s->name);
    rc |= bn_gguf_writer_set_str(w, "general.name", desc);
#define U32(key, v)                                                                                \
    snprintf(k, sizeof k, "%s." key, s->arch);                                                     \
    rc |= bn_gguf_writer_set_u32(w, k, (uint32_t)(v))
    U32("vocab_size", n_vocab);
    U32("context_length", s->n_ctx);
    U32("embedding_length", s->E);
    U32("block_count", s->L);
    U32("feed_forward_length", s->F);
    U32("attention.head_count", s->H);
    U32("attention.head_count_kv", s->KV);
    U32("rope.dimension_count", s->E / s->H);
#undef U32
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", s->arch);
    rc |= bn_gguf_writer_set_f32(w, k, s->eps);
    snprintf(k, sizeof k, "%s.rope.freq_base", s->arch);
    rc |= bn_gguf_writer_set_f32(w, k, s->theta);
    return rc ? -1 : 0;
}

/* ---- the command ----------------------------------------------------------------------------- */

/* Sets the tokenizer keys; *n_vocab gets the vocabulary size after padding. */
static int add_tokenizer(bn_ctx *ctx, bn_gguf_writer *w, const synth_opts *o, bn_gguf **g,
                         hf_tok *hf, vocab *v, size_t *n_vocab)
{
    if (o->tokenizer) {
        const char *msg;
        if (hf_parse(o->tokenizer, hf, &msg)) {
            if (msg) cli_error("%s: %s", o->tokenizer, msg);
            return -1;
        }
        *n_vocab = o->sh->V > 0 && (size_t)o->sh->V > hf->v.n ? (size_t)o->sh->V : hf->v.n;
        if (hf_write(w, hf, *n_vocab)) return cli_error("out of memory"), -1;
        return 0;
    }
    char path[PATH_MAX];
    const char *vf = o->vocab;
    if (!vf) {
        if (find_default_vocab(o->sh->vocab_file, path, sizeof path)) {
            cli_error("no default vocabulary (tests/data/%s): give --tokenizer or --vocab",
                      o->sh->vocab_file);
            return -1;
        }
        vf = path;
    }
    if (bn_gguf_open(ctx, vf, g) != BN_OK) {
        cli_error("%s: %s", vf, bn_ctx_errmsg(ctx));
        return -1;
    }
    for (int64_t i = 0; i < bn_gguf_n_kv(*g); i++)
        if (!strncmp(bn_gguf_key(*g, i), "tokenizer.", 10) && copy_kv(w, *g, i))
            return cli_error("%s: cannot copy %s", vf, bn_gguf_key(*g, i)), -1;
    if (vocab_from_gguf(*g, v)) return cli_error("%s: no tokenizer.ggml.tokens", vf), -1;
    *n_vocab = o->sh->V > 0 && (size_t)o->sh->V > v->n ? (size_t)o->sh->V : v->n;
    if (*n_vocab > v->n &&
        (vocab_pad(v, *n_vocab, v->scores != NULL, v->types != NULL) || write_vocab(w, v)))
        return cli_error("out of memory"), -1;
    return 0;
}

static int synth(bn_ctx *ctx, const synth_opts *o, size_t *bytes, size_t *n_vocab_out)
{
    const shape *s = o->sh;
    bn_gguf_writer *w = NULL;
    bn_gguf *g = NULL;
    hf_tok hf;
    memset(&hf, 0, sizeof hf);
    vocab v;
    memset(&v, 0, sizeof v);
    tensors ts;
    memset(&ts, 0, sizeof ts);
    rng r = {o->seed};
    size_t n_vocab = 0;
    int rc = bn_gguf_writer_new(&w) == BN_OK ? 0 : -1;
    if (rc) cli_error("out of memory");
    if (!rc) rc = add_tokenizer(ctx, w, o, &g, &hf, &v, &n_vocab); /* prints its errors */
    if (!rc && n_vocab > (size_t)BN_MODEL_MAX_VOCAB) {
        cli_error("a vocabulary of %zu tokens is too large", n_vocab);
        rc = -1;
    }
    if (!rc) {
        /* the embeddings' scale keeps tied logits at a few units: sd * sqrt(E) ~ 3 */
        const float sd = 3.0f / sqrtf((float)s->E);
        rc = set_hparams(w, s, n_vocab);
        if (!rc) rc = add_f16_rows(w, &ts, &r, "token_embd.weight", (int)n_vocab, s->E, sd);
        if (!rc && s->untied)
            rc = add_f16_rows(w, &ts, &r, "output.weight", (int)n_vocab, s->E, sd);
        if (!rc) rc = add_norm(w, &ts, &r, "output_norm.weight", s->E, 0.1f);
        if (!rc) rc = add_layers(w, &ts, &r, o);
        if (rc) cli_error("cannot build the model: out of memory");
    }
    if (!rc && bn_gguf_writer_write(ctx, w, o->out) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        rc = -1;
    }
    *bytes = ts.bytes;
    *n_vocab_out = n_vocab;
    bn_gguf_writer_free(w);
    tensors_free(&ts);
    hf_free(&hf);
    vocab_free(&v);
    bn_gguf_close(g);
    return rc;
}

int cmd_synth(int argc, char **argv)
{
    synth_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    const char *in[] = {o.tokenizer, o.vocab};
    if (cli_check_output("synth", o.out, o.force, in, 2)) return BN_EXIT_FAIL;
    if (o.vshape) return synth_vision(o.vshape, o.out, (uint64_t)o.seed, o.json);
    bn_ctx *ctx;
    bn_ctx_params cp = {.n_threads = 1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot start: out of memory");
        return BN_EXIT_FAIL;
    }
    const double t0 = bn_time_now();
    size_t bytes = 0, n_vocab = 0;
    rc = synth(ctx, &o, &bytes, &n_vocab) ? BN_EXIT_FAIL : BN_EXIT_OK;
    const double secs = bn_time_now() - t0;
    bn_ctx_free(ctx);
    if (rc != BN_EXIT_OK) return rc;
    if (o.json) {
        cJSON *d = cJSON_CreateObject();
        if (!d) return BN_EXIT_FAIL;
        cJSON_AddStringToObject(d, "path", o.out);
        cJSON_AddStringToObject(d, "shape", o.sh->name);
        cJSON_AddStringToObject(d, "arch", o.sh->arch);
        cJSON_AddStringToObject(d, "type", bn_type_name(o.type));
        cJSON_AddNumberToObject(d, "n_vocab", (double)n_vocab);
        cJSON_AddNumberToObject(d, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(d, "seconds", secs);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("wrote %s: %s shape (%s), %s weights, vocabulary %zu, %.1f MB of tensors in %.1f s\n",
           o.out, o.sh->name, o.sh->arch, bn_type_name(o.type), n_vocab, (double)bytes / 1e6, secs);
    return BN_EXIT_OK;
}
