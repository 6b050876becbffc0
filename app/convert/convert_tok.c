/* convert_tok.c - a Hugging Face model's tokenizer carried over into the GGUF tokenizer keys
 * (tokenizer.ggml.*), and built for validation. Three sources:
 *
 *   tokenizer.json, byte-level BPE   -> "gpt2": tokens, types, merges and the pre-tokenizer's
 *                                        llama.cpp name
 *   tokenizer.model, SentencePiece   -> "llama": pieces, scores, types, add_space_prefix
 *     BPE (engine: spm_model.c)
 *   tokenizer.json, SentencePiece-   -> "llama", scores derived from the merge ranks
 *     style BPE (byte_fallback; spaces become U+2581 through a Replace normalizer or a
 *     Metaspace pre-tokenizer, as transformers writes for LLaMA)
 *
 * tokenizer.model wins over a tokenizer.json that is not byte-level. Added tokens, the
 * special ids (bos, eos, unknown, padding), add_bos/add_eos and the chat template come from
 * tokenizer.json, tokenizer_config.json, added_tokens.json and chat_template.jinja. */
#include "convert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/gguf.h"
#include "bitnet/spm_model.h"
#include "bitnet/tokenizer.h"
#include "common/model_common.h"
#include "common/cli.h"

#define SCORE_ADDED (-1000.0f) /* llama.cpp's scores for added tokens and padding */
#define SCORE_PAD   (-10000.0f)

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

static int file_exists(const char *dir, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    struct stat st; /* not opened: a FIFO is refused when it is read, not waited on here */
    return stat(path, &st) == 0;
}

/* dir/name parsed; NULL when absent, or when it does not parse (*bad set). */
static cJSON *read_json(const char *dir, const char *name, int *bad)
{
    char path[4200];
    if (!file_exists(dir, name, path, sizeof path)) return NULL;
    size_t len;
    char *text = mc_read_file(path, &len);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j && bad) *bad = 1;
    return j;
}

static int is_type(const cJSON *o, const char *type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* Walks a pre_tokenizer (or a Sequence of them): byte-level or not, and the Split regex. */
static void scan_pre(const cJSON *p, int *bytelevel, int *bl_regex, const char **split)
{
    if (is_type(p, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
                scan_pre(e, bytelevel, bl_regex, split);
    } else if (is_type(p, "ByteLevel")) {
        *bytelevel = 1;
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        *bl_regex = !cJSON_IsFalse(ur);
    } else if (is_type(p, "Split")) {
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

/* ---- the vocabulary being built ------------------------------------------------------------ */

typedef struct vocab {
    const char *model, *pre; /* "gpt2" + its pre-tokenizer, or "llama" + "default" */
    const char *what;        /* the file it came from, for messages */
    char **tok;
    int32_t *type;
    float *score; /* llama only */
    int64_t n;
    char **merges; /* gpt2 only */
    int64_t n_merges;
    int32_t bos, eos, unk, pad; /* -1: not known from the tokenizer's own file */
    int add_space_prefix;       /* -1: not known */
    int prepend_scheme;         /* bn_prepend_scheme: Metaspace's, or SentencePiece's */
    char warning[320];          /* for the report's warnings, "" when none */
} vocab;

static void vocab_release(vocab *v)
{
    for (int64_t i = 0; i < v->n; i++) free(v->tok[i]);
    for (int64_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->score);
    free(v->merges);
}

static int set_token(vocab *v, int64_t id, const char *text, int32_t type, char *err, size_t errsz)
{
    if (id < 0 || id >= v->n)
        return cm_fail(err, errsz, "%s: token id %lld out of range", v->what, (long long)id);
    free(v->tok[id]);
    if (!(v->tok[id] = strdup(text))) return cm_fail(err, errsz, "out of memory");
    v->type[id] = type;
    return 0;
}

/* n tokens, each "[PAD<id>]" and unused, ready to be overwritten. */
static int alloc_tokens(vocab *v, int64_t n, int with_scores, char *err, size_t errsz)
{
    v->n = n;
    v->tok = calloc((size_t)n, sizeof *v->tok);
    v->type = calloc((size_t)n, sizeof *v->type);
    v->score = with_scores ? calloc((size_t)n, sizeof *v->score) : NULL;
    if (!v->tok || !v->type || (with_scores && !v->score))
        return cm_fail(err, errsz, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (set_token(v, i, pad, BN_TOKEN_TYPE_UNUSED, err, errsz)) return -1;
        if (v->score) v->score[i] = SCORE_PAD;
    }
    return 0;
}

/* One merge of model.merges: "a b" or ["a", "b"]. 0 when malformed. */
static int merge_parts(const cJSON *e, const char **a, size_t *alen, const char **b)
{
    if (cJSON_IsString(e)) {
        const char *sp = strchr(e->valuestring, ' ');
        if (!sp) return 0;
        *a = e->valuestring;
        *alen = (size_t)(sp - e->valuestring);
        *b = sp + 1;
        return 1;
    }
    if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
        cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
        *a = cJSON_GetArrayItem(e, 0)->valuestring;
        *alen = strlen(*a);
        *b = cJSON_GetArrayItem(e, 1)->valuestring;
        return 1;
    }
    return 0;
}

/* model.vocab and added_tokens of a tokenizer.json; merges kept as "a b" when keep_merges. */
static int build_vocab(const cJSON *model, const cJSON *added, int64_t n_vocab, int keep_merges,
                       vocab *v, char *err, size_t errsz)
{
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(map)) return cm_fail(err, errsz, "tokenizer.json: model.vocab is missing");
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
        return cm_fail(err, errsz, "tokenizer.json: %lld tokens, the model's vocabulary has %lld",
                       (long long)max_id + 1, (long long)n_vocab);
    if (alloc_tokens(v, n_vocab, !keep_merges, err, errsz)) return -1;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsNumber(e)) return cm_fail(err, errsz, "tokenizer.json: bad vocab entry");
        if (set_token(v, (int64_t)e->valuedouble, e->string, BN_TOKEN_TYPE_NORMAL, err, errsz))
            return -1;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(text))
            return cm_fail(err, errsz, "tokenizer.json: bad added_tokens entry");
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
        if (set_token(v, (int64_t)id->valuedouble, text->valuestring,
                      special ? BN_TOKEN_TYPE_CONTROL : BN_TOKEN_TYPE_USER_DEFINED, err, errsz))
            return -1;
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int64_t nm = cJSON_GetArraySize(merges);
    v->merges = calloc((size_t)(nm ? nm : 1), sizeof *v->merges);
    if (!v->merges) return cm_fail(err, errsz, "out of memory");
    cJSON_ArrayForEach(e, merges)
    {
        const char *a, *b;
        size_t alen;
        if (!merge_parts(e, &a, &alen, &b))
            return cm_fail(err, errsz, "tokenizer.json: bad merges entry");
        if (!keep_merges) continue;
        size_t len = alen + strlen(b) + 2;
        char *m = malloc(len);
        if (!m) return cm_fail(err, errsz, "out of memory");
        snprintf(m, len, "%.*s %s", (int)alen, a, b);
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

/* ---- byte-level BPE (tokenizer.json) -> gpt2 ------------------------------------------------ */

static int from_json_bpe(const cJSON *tj, const cv_source *s, vocab *v, char *err, size_t errsz)
{
    int bytelevel = 0, bl_regex = 0;
    const char *split = NULL;
    scan_pre(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"), &bytelevel, &bl_regex, &split);
    v->model = "gpt2";
    v->pre = NULL;
    if (split) {
        for (size_t i = 0; i < sizeof g_pre / sizeof g_pre[0] && !v->pre; i++)
            if (strcmp(split, g_pre[i].regex) == 0) v->pre = g_pre[i].name;
        if (!v->pre)
            return cm_fail(err, errsz,
                           "tokenizer.json: the pre-tokenizer regex is not one bitnet "
                           "knows (gpt-2, llama-bpe, qwen2)");
    } else if (bl_regex) {
        v->pre = "gpt-2";
    } else {
        return cm_fail(err, errsz, "tokenizer.json: ByteLevel without a regex is not supported");
    }
    return build_vocab(cJSON_GetObjectItemCaseSensitive(tj, "model"),
                       cJSON_GetObjectItemCaseSensitive(tj, "added_tokens"), s->hp.n_vocab, 1, v,
                       err, errsz);
}

/* ---- SentencePiece-style BPE (tokenizer.json) -> llama -------------------------------------- */

static int is_metaspace_char(const cJSON *o, const char *key)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(c) && strcmp(c->valuestring, "\xe2\x96\x81") == 0;
}

/* Checks that a normalizer only does what the llama tokenizer does: Prepend("▁") (the space
 * prefix) and Replace(" " -> "▁"). Sets *prefix and *escape. */
static int spm_normalizer(const cJSON *n, int *prefix, int *escape, char *err, size_t errsz)
{
    if (!n || cJSON_IsNull(n)) return 0;
    if (is_type(n, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
        {
            if (spm_normalizer(e, prefix, escape, err, errsz)) return -1;
        }
        return 0;
    }
    if (is_type(n, "Prepend") && is_metaspace_char(n, "prepend")) {
        *prefix = 1;
        return 0;
    }
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
    if (is_type(n, "Replace") && cJSON_IsString(pat) && strcmp(pat->valuestring, " ") == 0 &&
        is_metaspace_char(n, "content")) {
        *escape = 1;
        return 0;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "type");
    return cm_fail(err, errsz,
                   "tokenizer.json: the %s normalizer is not one the llama tokenizer applies (only "
                   "Prepend and Replace of spaces with U+2581)",
                   cJSON_IsString(t) ? t->valuestring : "(untyped)");
}

/* The same for the pre-tokenizer: none, or Metaspace("▁"). Its "split" is not looked at:
 * cutting the text before each "▁" changes nothing for a vocabulary whose pieces hold "▁"
 * only at their start (SentencePiece's default, split_by_whitespace). */
static int spm_pre(const cJSON *p, int *prefix, int *scheme, int *escape, char *err, size_t errsz)
{
    if (!p || cJSON_IsNull(p)) return 0;
    if (is_type(p, "Sequence") &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) == 1)
        return spm_pre(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), 0),
                       prefix, scheme, escape, err, errsz);
    if (is_type(p, "Metaspace") && is_metaspace_char(p, "replacement")) {
        /* prepend_scheme "first"/"always" (tokenizers >= 0.14), add_prefix_space before (as
         * "always"); either puts no U+2581 before text that starts with one (a space) */
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        if (cJSON_IsString(ps))
            *prefix = strcmp(ps->valuestring, "never") != 0;
        else
            *prefix = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"));
        *scheme = cJSON_IsString(ps) && strcmp(ps->valuestring, "first") == 0 ? BN_PREPEND_FIRST
                                                                              : BN_PREPEND_ALWAYS;
        *escape = 1;
        return 0;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
    return cm_fail(err, errsz,
                   "tokenizer.json: the %s pre-tokenizer is not one the llama tokenizer applies "
                   "(only Metaspace)",
                   cJSON_IsString(t) ? t->valuestring : "(untyped)");
}

/* Scores for a SentencePiece-style tokenizer.json, which stores none. llama.cpp's SPM
 * algorithm merges the adjacent pair whose concatenation is the token with the highest
 * score (leftmost on ties); Hugging Face's BPE merges the pair with the lowest rank in
 * model.merges (leftmost on ties). A token scores minus the rank of the first merge that
 * forms it, so both take the same merges whenever every pair that forms a token is itself
 * a merge ranked with the first: true of the merges transformers derives from a
 * SentencePiece model (every split of a piece into two pieces, in piece-score order), where
 * this gives back the model's own order. A token no merge forms (characters, bytes,
 * specials, pieces no merge reaches) scores below every merge, so the llama tokenizer
 * forms such a token only when nothing else applies (Hugging Face never does). */
static int spm_scores(bn_ctx *ctx, const cJSON *merges, vocab *v, char *err, size_t errsz)
{
    bn_tokenizer_vocab tv;
    bn_tokenizer_vocab_init(&tv);
    tv.model = "llama";
    tv.n_tokens = (size_t)v->n;
    tv.tokens = (const char *const *)v->tok;
    tv.types = v->type;
    bn_tokenizer *probe; /* for its text -> id map */
    if (bn_tokenizer_from_vocab(ctx, &tv, &probe) != BN_OK)
        return cm_fail(err, errsz, "tokenizer.json: %s", bn_ctx_errmsg(ctx));
    const int64_t nm = cJSON_GetArraySize(merges);
    const float low = -(float)nm - 1.0f;
    for (int64_t i = 0; i < v->n; i++) v->score[i] = low;
    char *buf = malloc(2 * (size_t)BN_TOKENIZER_MAX_TOKEN_LEN + 1);
    int rc = buf ? 0 : cm_fail(err, errsz, "out of memory");
    int64_t rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges)
    {
        const char *a, *b;
        size_t alen, blen;
        if (rc || !merge_parts(e, &a, &alen, &b)) break;
        blen = strlen(b);
        if (alen <= BN_TOKENIZER_MAX_TOKEN_LEN && blen <= BN_TOKENIZER_MAX_TOKEN_LEN) {
            memcpy(buf, a, alen);
            memcpy(buf + alen, b, blen);
            int32_t id = bn_tokenizer_find(probe, buf, alen + blen);
            if (id >= 0 && v->score[id] == low) v->score[id] = -(float)rank;
        }
        rank++;
    }
    free(buf);
    bn_tokenizer_free(probe);
    return rc;
}

static int from_json_spm(bn_ctx *ctx, const cJSON *tj, const cJSON *tc, const cv_source *s,
                         vocab *v, char *err, size_t errsz)
{
    int prefix = 0, escape = 0, scheme = BN_PREPEND_SPM;
    if (spm_normalizer(cJSON_GetObjectItemCaseSensitive(tj, "normalizer"), &prefix, &escape, err,
                       errsz))
        return -1;
    const int norm_prefix = prefix; /* a Prepend normalizer: "▁" before every text, as SPM */
    if (spm_pre(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"), &prefix, &scheme, &escape,
                err, errsz))
        return -1;
    if (!norm_prefix && prefix) v->prepend_scheme = scheme;
    if (!escape)
        return cm_fail(err, errsz,
                       "tokenizer.json: a BPE that neither is byte-level nor turns spaces into "
                       "U+2581 (SentencePiece-style) is not supported");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    v->model = "llama";
    v->pre = "default";
    v->add_space_prefix = prefix;
    if (build_vocab(model, cJSON_GetObjectItemCaseSensitive(tj, "added_tokens"), s->hp.n_vocab, 0,
                    v, err, errsz))
        return -1;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        for (int64_t i = 0; i < v->n; i++) {
            const char *t = v->tok[i];
            if (v->type[i] == BN_TOKEN_TYPE_NORMAL && strlen(t) == 6 && !strncmp(t, "<0x", 3) &&
                t[5] == '>')
                v->type[i] = BN_TOKEN_TYPE_BYTE;
        }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    v->unk = find_id(v, cJSON_IsString(unk) ? unk->valuestring : special_text(tc, "unk_token"));
    if (v->unk >= 0) v->type[v->unk] = BN_TOKEN_TYPE_UNKNOWN;
    return spm_scores(ctx, cJSON_GetObjectItemCaseSensitive(model, "merges"), v, err, errsz);
}

/* ---- SentencePiece model (tokenizer.model) -> llama ----------------------------------------- */

/* Says when llama.cpp's tokenizer (no normalization) will differ from SentencePiece's. */
static void warn_normalizer(const bn_spm_info *in, vocab *v)
{
    const int nfkc =
            in->charsmap_size > 0 || (in->normalizer[0] && strcmp(in->normalizer, "identity") != 0);
    if (nfkc || in->remove_extra_whitespaces)
        snprintf(v->warning, sizeof v->warning,
                 "tokenizer.model %s%s%s; the llama tokenizer does not, so text "
                 "that is not already in that form tokenizes differently",
                 nfkc ? "normalizes text (" : "", nfkc ? in->normalizer : "",
                 nfkc ? (in->remove_extra_whitespaces ? ") and drops extra spaces" : ")")
                      : "drops extra spaces (remove_extra_whitespaces)");
}

static int from_model(bn_ctx *ctx, const char *path, const cv_source *s, vocab *v, char *err,
                      size_t errsz)
{
    bn_spm_model *m;
    bn_status st = bn_spm_model_open(ctx, path, &m);
    if (st != BN_OK) return cm_fail(err, errsz, "%s", bn_ctx_errmsg(ctx));
    bn_tokenizer_vocab tv;
    bn_tokenizer_vocab_init(&tv);
    const bn_spm_info *in = bn_spm_model_info(m);
    int rc = 0;
    if (bn_spm_model_vocab(ctx, m, &tv) != BN_OK)
        rc = cm_fail(err, errsz, "%s", bn_ctx_errmsg(ctx));
    else if ((int64_t)in->n_pieces > s->hp.n_vocab)
        rc = cm_fail(err, errsz, "tokenizer.model: %zu pieces, the model's vocabulary has %lld",
                     in->n_pieces, (long long)s->hp.n_vocab);
    if (rc == 0) rc = alloc_tokens(v, s->hp.n_vocab, 1, err, errsz);
    for (size_t i = 0; rc == 0 && i < in->n_pieces; i++) {
        rc = set_token(v, (int64_t)i, tv.tokens[i], tv.types[i], err, errsz);
        v->score[i] = tv.scores[i];
    }
    if (rc == 0) {
        v->model = "llama";
        v->pre = "default";
        v->unk = in->unk_id;
        v->bos = in->bos_id;
        v->eos = in->eos_id;
        v->pad = in->pad_id;
        v->add_space_prefix = in->add_dummy_prefix;
        warn_normalizer(in, v);
    }
    bn_spm_model_close(m);
    return rc;
}

/* An added token over the pieces (as llama.cpp's converter does): a new text replaces the
 * piece at its id (control when special, else user-defined); the piece's own text leaves
 * it as it is (so <unk> stays the unknown token). */
static int add_token(vocab *v, double id, const char *text, int special, const char *from,
                     char *err, size_t errsz)
{
    if (!(id >= 0 && id < (double)v->n))
        return cm_fail(err, errsz,
                       "%s: added token '%.60s' has id %.0f, beyond the model's "
                       "vocabulary (%lld)",
                       from, text, id, (long long)v->n);
    int64_t i = (int64_t)id;
    if (v->type[i] != BN_TOKEN_TYPE_UNUSED && strcmp(v->tok[i], text) == 0) return 0;
    v->score[i] = SCORE_ADDED;
    return set_token(v, i, text, special ? BN_TOKEN_TYPE_CONTROL : BN_TOKEN_TYPE_USER_DEFINED, err,
                     errsz);
}

/* added_tokens.json {"text": id}, tokenizer.json added_tokens, tokenizer_config.json
 * added_tokens_decoder {"id": {"content": ..., "special": ...}}, in that order. */
static int added_tokens(const cv_source *s, const cJSON *tj, const cJSON *tc, vocab *v, char *err,
                        size_t errsz)
{
    int bad = 0, rc = 0;
    cJSON *aj = read_json(s->dir, "added_tokens.json", &bad);
    if (bad) rc = cm_fail(err, errsz, "added_tokens.json: not valid JSON");
    const cJSON *e;
    cJSON_ArrayForEach(e, aj)
    {
        if (rc == 0 && cJSON_IsNumber(e))
            rc = add_token(v, e->valuedouble, e->string, 0, "added_tokens.json", err, errsz);
    }
    cJSON_Delete(aj);
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tj, "added_tokens"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (rc == 0 && cJSON_IsNumber(id) && cJSON_IsString(text))
            rc = add_token(v, id->valuedouble, text->valuestring,
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")),
                           "tokenizer.json", err, errsz);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tc, "added_tokens_decoder"))
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "content");
        char *end;
        double id = strtod(e->string, &end);
        if (rc == 0 && cJSON_IsString(text) && end != e->string && *end == '\0')
            rc = add_token(v, id, text->valuestring,
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")),
                           "tokenizer_config.json", err, errsz);
    }
    return rc;
}

/* ---- choosing the source -------------------------------------------------------------------- */

static int build_any(bn_ctx *ctx, const cv_source *s, const cJSON *tj, const cJSON *tc, vocab *v,
                     char *err, size_t errsz)
{
    char mpath[4200];
    const int have_model = file_exists(s->dir, "tokenizer.model", mpath, sizeof mpath);
    const cJSON *mtype =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tj, "model"), "type");
    const int bpe = cJSON_IsString(mtype) && strcmp(mtype->valuestring, "BPE") == 0;
    int bytelevel = 0, bl_regex = 0;
    const char *split = NULL;
    scan_pre(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"), &bytelevel, &bl_regex, &split);
    if (tj && bpe && bytelevel) {
        v->what = "tokenizer.json";
        return from_json_bpe(tj, s, v, err, errsz);
    }
    if (have_model) {
        v->what = "tokenizer.model";
        if (from_model(ctx, mpath, s, v, err, errsz)) return -1;
        return added_tokens(s, tj, tc, v, err, errsz);
    }
    if (!tj) return cm_fail(err, errsz, "%s: no tokenizer.json or tokenizer.model", s->dir);
    if (!bpe)
        return cm_fail(err, errsz, "tokenizer.json: model type %s is not supported (BPE)",
                       cJSON_IsString(mtype) ? mtype->valuestring : "(none)");
    v->what = "tokenizer.json";
    return from_json_spm(ctx, tj, tc, s, v, err, errsz);
}

/* A vocabulary with no ordinary token (empty, or only specials and padding) tokenizes no text. */
static int check_usable(const vocab *v, char *err, size_t errsz)
{
    int64_t normal = 0;
    for (int64_t i = 0; i < v->n; i++)
        normal += v->type[i] == BN_TOKEN_TYPE_NORMAL || v->type[i] == BN_TOKEN_TYPE_BYTE;
    if (normal > 0) return 0;
    return cm_fail(err, errsz,
                   "%s: the vocabulary has no ordinary token (%lld ids, all special or unused): it "
                   "cannot tokenize text",
                   v->what ? v->what : "tokenizer", (long long)v->n);
}

/* ---- special ids, flags, the chat template -------------------------------------------------- */

typedef struct tok_meta {
    int32_t bos, eos, unk, pad;
    int add_bos, add_eos; /* -1: not known */
    const char *chat;
    char *chat_owned;
} tok_meta;

static int32_t pick_id(const vocab *v, const cJSON *tc, const char *key, int32_t dflt)
{
    int32_t id = find_id(v, special_text(tc, key));
    if (id < 0) id = dflt;
    return id >= 0 && id < v->n ? id : -1;
}

static void find_meta(const cv_source *s, const cJSON *tj, const cJSON *tc, const vocab *v,
                      tok_meta *m)
{
    m->bos = pick_id(v, tc, "bos_token", v->bos >= 0 ? v->bos : s->hp.bos_id);
    m->eos = pick_id(v, tc, "eos_token", v->eos >= 0 ? v->eos : s->hp.eos_id);
    m->unk = pick_id(v, tc, "unk_token", v->unk);
    m->pad = pick_id(v, tc, "pad_token", v->pad);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(tc, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(tc, "add_eos_token");
    m->add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : -1;
    m->add_eos = cJSON_IsBool(ae) ? cJSON_IsTrue(ae) : -1;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(tj, "post_processor"), "single");
    const int n = cJSON_GetArraySize(single);
    if (m->add_bos < 0 && n > 0) /* a TemplateProcessing that starts with a special token */
        m->add_bos = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0),
                                                      "SpecialToken") != NULL;
    if (m->add_eos < 0 && n > 0)
        m->add_eos = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1),
                                                      "SpecialToken") != NULL;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tc, "chat_template");
    if (cJSON_IsString(ct)) m->chat = ct->valuestring;
    char path[4200];
    size_t len;
    if (!m->chat && file_exists(s->dir, "chat_template.jinja", path, sizeof path))
        m->chat = m->chat_owned = mc_read_file(path, &len); /* transformers 5 writes it there */
}

static bn_status write_keys(bn_gguf_writer *w, const vocab *v, const tok_meta *m)
{
    bn_status st = bn_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model);
    if (st == BN_OK) st = bn_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    if (st == BN_OK)
        st = bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok,
                                        (uint64_t)v->n);
    if (st == BN_OK && v->score)
        st = bn_gguf_writer_set_arr(w, "tokenizer.ggml.scores", BN_GGUF_F32, v->score,
                                    (uint64_t)v->n);
    if (st == BN_OK)
        st = bn_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", BN_GGUF_I32, v->type,
                                    (uint64_t)v->n);
    if (st == BN_OK && v->merges && strcmp(v->model, "gpt2") == 0)
        st = bn_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                        (uint64_t)v->n_merges);
    const struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", m->bos},
               {"tokenizer.ggml.eos_token_id", m->eos},
               {"tokenizer.ggml.unknown_token_id", m->unk},
               {"tokenizer.ggml.padding_token_id", m->pad}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (st == BN_OK && ids[i].id >= 0)
            st = bn_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id);
    if (st == BN_OK && m->add_bos >= 0)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", m->add_bos);
    if (st == BN_OK && m->add_eos >= 0)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", m->add_eos);
    if (st == BN_OK && v->add_space_prefix >= 0)
        st = bn_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    if (st == BN_OK && v->prepend_scheme != BN_PREPEND_SPM)
        st = bn_gguf_writer_set_str(w, "tokenizer.bitnet.prepend_scheme",
                                    v->prepend_scheme == BN_PREPEND_FIRST ? "first" : "always");
    if (st == BN_OK && m->chat) st = bn_gguf_writer_set_str(w, "tokenizer.chat_template", m->chat);
    return st;
}

static bn_status build_tokenizer(bn_ctx *ctx, const vocab *v, const tok_meta *m, bn_tokenizer **tok)
{
    bn_tokenizer_vocab tv;
    bn_tokenizer_vocab_init(&tv);
    tv.model = v->model;
    tv.pre = v->pre;
    tv.n_tokens = (size_t)v->n;
    tv.tokens = (const char *const *)v->tok;
    tv.scores = v->score;
    tv.types = v->type;
    if (strcmp(v->model, "gpt2") == 0) {
        tv.n_merges = (size_t)v->n_merges;
        tv.merges = (const char *const *)v->merges;
    }
    const int32_t *src[] = {&m->bos, &m->eos, &m->unk, &m->pad};
    int32_t *dst[] = {&tv.bos_id, &tv.eos_id, &tv.unk_id, &tv.pad_id};
    for (size_t i = 0; i < 4; i++) *dst[i] = *src[i] >= 0 ? *src[i] : BN_TOKEN_NONE;
    tv.add_bos = m->add_bos;
    tv.add_eos = m->add_eos;
    tv.add_space_prefix = v->add_space_prefix;
    tv.prepend_scheme = v->prepend_scheme;
    tv.chat_template = m->chat;
    return bn_tokenizer_from_vocab(ctx, &tv, tok);
}

int cv_tokenizer(bn_ctx *ctx, const cv_source *s, bn_gguf_writer *w, bn_tokenizer **tok,
                 const char **kind, cJSON *warnings, char *err, size_t errsz)
{
    *tok = NULL;
    *kind = "none";
    int bad_tj = 0, bad_tc = 0;
    cJSON *tj = read_json(s->dir, "tokenizer.json", &bad_tj);
    cJSON *tc = read_json(s->dir, "tokenizer_config.json", &bad_tc);
    vocab v = {.bos = -1, .eos = -1, .unk = -1, .pad = -1, .add_space_prefix = -1};
    tok_meta m = {0};
    int rc = 0;
    if (bad_tj || bad_tc)
        rc = cm_fail(err, errsz, "%s: not valid JSON",
                     bad_tj ? "tokenizer.json" : "tokenizer_config.json");
    if (rc == 0) rc = build_any(ctx, s, tj, tc, &v, err, errsz);
    if (rc == 0) rc = check_usable(&v, err, errsz);
    if (rc == 0) {
        find_meta(s, tj, tc, &v, &m);
        bn_status st = write_keys(w, &v, &m);
        if (st != BN_OK) rc = cm_fail(err, errsz, "tokenizer: %s", bn_status_str(st));
    }
    if (rc == 0) {
        if (build_tokenizer(ctx, &v, &m, tok) != BN_OK)
            rc = cm_fail(err, errsz, "%s: %s", v.what, bn_ctx_errmsg(ctx));
        else
            *kind = v.model;
    }
    if (rc == 0 && v.warning[0] && warnings)
        cJSON_AddItemToArray(warnings, cJSON_CreateString(v.warning));
    vocab_release(&v);
    free(m.chat_owned);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    return rc;
}
