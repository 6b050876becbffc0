/* convert_tok.c - a Hugging Face tokenizer.json (byte-level BPE) carried over into the GGUF
 * tokenizer keys: tokens with their types, merges, the pre-tokenizer's llama.cpp name, the
 * special ids and the chat template (from tokenizer_config.json). */
#include "convert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"
#include "model_common.h"

static int fail(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}

/* Pre-tokenizer regexes as tokenizer.json spells them, and llama.cpp's names for them. */
static const struct {
    const char *regex, *name;
} g_pre[] = {
        {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
         "llama-bpe"},
        {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
         "qwen2"},
};

static cJSON *read_json(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    size_t len;
    char *text = mc_read_file(path, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

/* Walks a pre_tokenizer (or a Sequence of them): byte-level or not, and the Split regex. */
static void scan_pre(const cJSON *p, int *bytelevel, int *bl_regex, const char **split)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(type)) return;
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
                scan_pre(e, bytelevel, bl_regex, split);
    } else if (strcmp(type->valuestring, "ByteLevel") == 0) {
        *bytelevel = 1;
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        *bl_regex = !cJSON_IsFalse(ur);
    } else if (strcmp(type->valuestring, "Split") == 0) {
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
        if (cJSON_IsString(re)) *split = re->valuestring;
    }
}

/* A special token from tokenizer_config.json: "text" or {"content": "text"}. */
static const char *special_text(const cJSON *tc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tc, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct vocab {
    char **tok;
    int32_t *type;
    int64_t n;
    char **merges;
    int64_t n_merges;
} vocab;

static void vocab_release(vocab *v)
{
    for (int64_t i = 0; i < v->n; i++) free(v->tok[i]);
    for (int64_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
}

static int set_token(vocab *v, int64_t id, const char *text, int32_t type, char *err, size_t errsz)
{
    if (id < 0 || id >= v->n)
        return fail(err, errsz, "tokenizer.json: token id %lld out of range", (long long)id);
    free(v->tok[id]);
    if (!(v->tok[id] = strdup(text))) return fail(err, errsz, "out of memory");
    v->type[id] = type;
    return 0;
}

static int build_vocab(const cJSON *model, const cJSON *added, int64_t n_vocab, vocab *v, char *err,
                       size_t errsz)
{
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(map)) return fail(err, errsz, "tokenizer.json: model.vocab is missing");
    int64_t max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) if (cJSON_IsNumber(e) && e->valuedouble > max_id) max_id =
            (int64_t)e->valuedouble;
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > max_id) max_id = (int64_t)id->valuedouble;
    }
    if (max_id + 1 > n_vocab)
        return fail(err, errsz, "tokenizer.json: %lld tokens, the model's vocabulary has %lld",
                    (long long)max_id + 1, (long long)n_vocab);
    v->n = n_vocab;
    v->tok = calloc((size_t)n_vocab, sizeof *v->tok);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    if (!v->tok || !v->type) return fail(err, errsz, "out of memory");
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsNumber(e)) return fail(err, errsz, "tokenizer.json: bad vocab entry");
        if (set_token(v, (int64_t)e->valuedouble, e->string, BN_TOKEN_TYPE_NORMAL, err, errsz))
            return -1;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(text))
            return fail(err, errsz, "tokenizer.json: bad added_tokens entry");
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        if (set_token(v, (int64_t)id->valuedouble, text->valuestring,
                      special ? BN_TOKEN_TYPE_CONTROL : BN_TOKEN_TYPE_USER_DEFINED, err, errsz))
            return -1;
    }
    for (int64_t i = 0; i < n_vocab; i++) {
        if (v->tok[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (set_token(v, i, pad, BN_TOKEN_TYPE_UNUSED, err, errsz)) return -1;
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int64_t nm = cJSON_GetArraySize(merges);
    v->merges = calloc((size_t)(nm ? nm : 1), sizeof *v->merges);
    if (!v->merges) return fail(err, errsz, "out of memory");
    cJSON_ArrayForEach(e, merges)
    {
        const char *a, *b = NULL;
        if (cJSON_IsString(e)) { /* "a b" */
            a = e->valuestring;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) { /* ["a", "b"] */
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
        } else {
            return fail(err, errsz, "tokenizer.json: bad merges entry");
        }
        size_t len = strlen(a) + (b ? strlen(b) + 1 : 0) + 1;
        char *m = malloc(len);
        if (!m) return fail(err, errsz, "out of memory");
        snprintf(m, len, b ? "%s %s" : "%s", a, b ? b : "");
        v->merges[v->n_merges++] = m;
    }
    return 0;
}

static int32_t find_id(const vocab *v, const char *text)
{
    for (int64_t i = 0; text && i < v->n; i++)
        if (strcmp(v->tok[i], text) == 0) return (int32_t)i;
    return -1;
}

int cv_tokenizer(bn_ctx *ctx, const cv_source *s, bn_gguf_writer *w, bn_tokenizer **tok,
                 const char **kind, char *err, size_t errsz)
{
    *tok = NULL;
    *kind = "none";
    cJSON *tj = read_json(s->dir, "tokenizer.json");
    cJSON *tc = read_json(s->dir, "tokenizer_config.json");
    vocab v = {0};
    int rc = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    int bytelevel = 0, bl_regex = 0;
    const char *split = NULL, *pre = NULL;
    scan_pre(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"), &bytelevel, &bl_regex, &split);
    if (!tj) {
        char path[4200];
        snprintf(path, sizeof path, "%s/tokenizer.model", s->dir);
        FILE *f = fopen(path, "rb");
        if (f) fclose(f);
        rc = fail(err, errsz,
                  f ? "%s: only tokenizer.model (SentencePiece) found; carrying it over is not "
                      "supported yet (tokenizer.json is)"
                    : "%s: no tokenizer.json",
                  s->dir);
    } else if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0) {
        rc = fail(err, errsz, "tokenizer.json: model type %s is not supported (BPE)",
                  cJSON_IsString(mtype) ? mtype->valuestring : "(none)");
    } else if (!bytelevel) {
        rc = fail(err, errsz,
                  "tokenizer.json: a SentencePiece-style BPE (no ByteLevel "
                  "pre-tokenizer) is not supported yet");
    } else if (split) {
        for (size_t i = 0; i < sizeof g_pre / sizeof g_pre[0] && !pre; i++)
            if (strcmp(split, g_pre[i].regex) == 0) pre = g_pre[i].name;
        if (!pre)
            rc = fail(err, errsz,
                      "tokenizer.json: the pre-tokenizer regex is not one bitnet "
                      "knows (gpt-2, llama-bpe, qwen2)");
    } else {
        pre = bl_regex ? "gpt-2" : NULL;
        if (!pre)
            rc = fail(err, errsz,
                      "tokenizer.json: ByteLevel without a regex is not "
                      "supported");
    }
    if (rc == 0)
        rc = build_vocab(model, cJSON_GetObjectItemCaseSensitive(tj, "added_tokens"), s->hp.n_vocab,
                         &v, err, errsz);
    int32_t bos = s->hp.bos_id, eos = s->hp.eos_id, add_bos = -1;
    const char *chat = NULL;
    char *chat_owned = NULL;
    if (rc == 0) {
        int32_t b = find_id(&v, special_text(tc, "bos_token"));
        int32_t e = find_id(&v, special_text(tc, "eos_token"));
        if (b >= 0) bos = b;
        if (e >= 0) eos = e;
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(tc, "add_bos_token");
        if (cJSON_IsBool(ab)) add_bos = cJSON_IsTrue(ab);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
        if (cJSON_IsString(ct)) chat = ct->valuestring;
        if (!chat) { /* transformers 5 writes it to chat_template.jinja */
            char path[4200];
            snprintf(path, sizeof path, "%s/chat_template.jinja", s->dir);
            FILE *f = fopen(path, "rb");
            size_t len;
            if (f) {
                fclose(f);
                chat = chat_owned = mc_read_file(path, &len);
            }
        }
        if (add_bos < 0) { /* a TemplateProcessing that starts with a special token */
            const cJSON *single = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(tj, "post_processor"), "single");
            const cJSON *first = cJSON_GetArrayItem(single, 0);
            if (first) add_bos = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken") != NULL;
        }
    }
    if (rc == 0) {
        bn_status st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
        if (st == BN_OK) st = bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
        if (st == BN_OK)
            st = bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok,
                                            (uint64_t)v.n);
        if (st == BN_OK)
            st = bn_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BN_GGUF_I32, v.type,
                                        (uint64_t)v.n);
        if (st == BN_OK)
            st = bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                            (const char *const *)v.merges, (uint64_t)v.n_merges);
        if (st == BN_OK && bos >= 0 && bos < v.n)
            st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        if (st == BN_OK && eos >= 0 && eos < v.n)
            st = bn_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
        if (st == BN_OK && add_bos >= 0)
            st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
        if (st == BN_OK && chat) st = bn_gguf_writer_set_str(w, "tokenizer.chat_template", chat);
        if (st != BN_OK) rc = fail(err, errsz, "tokenizer: %s", bn_status_str(st));
    }
    if (rc == 0) {
        bn_tokenizer_vocab tv;
        bn_tokenizer_vocab_init(&tv);
        tv.model = "gpt2";
        tv.pre = pre;
        tv.n_tokens = (size_t)v.n;
        tv.tokens = (const char *const *)v.tok;
        tv.types = v.type;
        tv.n_merges = (size_t)v.n_merges;
        tv.merges = (const char *const *)v.merges;
        tv.bos_id = bos >= 0 && bos < v.n ? bos : BN_TOKEN_NONE;
        tv.eos_id = eos >= 0 && eos < v.n ? eos : BN_TOKEN_NONE;
        tv.add_bos = add_bos;
        tv.chat_template = chat;
        if (bn_tokenizer_from_vocab(ctx, &tv, tok) != BN_OK)
            rc = fail(err, errsz, "tokenizer.json: %s", bn_ctx_errmsg(ctx));
        else
            *kind = "gpt2";
    }
    vocab_release(&v);
    free(chat_owned);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    return rc;
}
