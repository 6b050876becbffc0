/*
 * spm_model.c - SentencePiece model files: libprotobuf-c decodes the ModelProto
 * (engine/proto/sentencepiece_model.proto, compiled by protoc-c at build time); this file
 * checks the pieces and settings and keeps them in flat arrays, freeing the decoded message.
 */
#include "bitnet/spm_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ckpt_internal.h"
#include "pb_internal.h"
#include "sentencepiece_model.pb-c.h"

typedef Sentencepiece__ModelProto mproto;
typedef Sentencepiece__ModelProto__SentencePiece pproto;

struct bn_spm_model {
    bn_spm_info info;
    char **pieces; /* into text */
    float *scores;
    int32_t *types;
    char *text;       /* every piece, each followed by a NUL */
    char *normalizer; /* info.normalizer */
};

/* ---- checks ---------------------------------------------------------------------------- */

static int is_byte_piece(const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    return n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && memchr(hex, s[3], 16) &&
           memchr(hex, s[4], 16);
}

/* One piece: non-empty, bounded, UTF-8 without NUL, finite score, a known type. */
static bn_status check_piece(bn_ctx *ctx, const pproto *p, size_t i)
{
    const size_t n = p->has_piece ? p->piece.len : 0;
    const int type = p->has_type ? (int)p->type : 1;
    if (n == 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer.model: piece %zu is empty", i);
    if (n > BN_TOKENIZER_MAX_TOKEN_LEN)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: piece %zu is %zu bytes long (max %d)", i, n,
                                BN_TOKENIZER_MAX_TOKEN_LEN);
    if (memchr(p->piece.data, '\0', n) || !bn__utf8_valid((const char *)p->piece.data, n))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: piece %zu is not UTF-8 text (or holds a NUL)", i);
    if (p->has_score && !isfinite(p->score))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer.model: piece %zu has score %g", i,
                                (double)p->score);
    if (type < BN_TOKEN_TYPE_NORMAL || type > BN_TOKEN_TYPE_BYTE)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: piece %zu has type %d (SentencePiece's are 1-6)",
                                i, type);
    if (type == BN_TOKEN_TYPE_BYTE && !is_byte_piece(p->piece.data, n))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: piece %zu has type BYTE but is not <0xXX>", i);
    return BN_OK;
}

static bn_status check_id(bn_ctx *ctx, const char *what, int32_t id, size_t n, int32_t *out)
{
    if (id < -1 || (id >= 0 && (size_t)id >= n))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: trainer_spec.%s %d is not -1 or a piece (%zu "
                                "pieces)",
                                what, (int)id, n);
    *out = id < 0 ? BN_TOKEN_NONE : id;
    return BN_OK;
}

/* ---- copying out of the decoded message ----------------------------------------------- */

static bn_status copy_settings(bn_ctx *ctx, bn_spm_model *m, const mproto *mp)
{
    bn_spm_info *in = &m->info;
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    const Sentencepiece__NormalizerSpec *ns = mp->normalizer_spec;
    /* absent messages: SentencePiece's defaults, which protobuf-c puts into a fresh one */
    Sentencepiece__TrainerSpec ts0 = SENTENCEPIECE__TRAINER_SPEC__INIT;
    Sentencepiece__NormalizerSpec ns0 = SENTENCEPIECE__NORMALIZER_SPEC__INIT;
    if (!ts) ts = &ts0;
    if (!ns) ns = &ns0;
    const size_t n = in->n_pieces;
    in->algo = (int)ts->model_type;
    in->byte_fallback = ts->byte_fallback != 0;
    in->treat_whitespace_as_suffix = ts->treat_whitespace_as_suffix != 0;
    bn_status rc = check_id(ctx, "unk_id", ts->unk_id, n, &in->unk_id);
    if (rc == BN_OK) rc = check_id(ctx, "bos_id", ts->bos_id, n, &in->bos_id);
    if (rc == BN_OK) rc = check_id(ctx, "eos_id", ts->eos_id, n, &in->eos_id);
    if (rc == BN_OK) rc = check_id(ctx, "pad_id", ts->pad_id, n, &in->pad_id);
    if (rc != BN_OK) return rc;
    m->normalizer = bn_strdup(ns->name ? ns->name : "");
    if (!m->normalizer) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    in->normalizer = m->normalizer;
    in->charsmap_size = ns->has_precompiled_charsmap ? ns->precompiled_charsmap.len : 0;
    in->add_dummy_prefix = ns->add_dummy_prefix != 0;
    in->remove_extra_whitespaces = ns->remove_extra_whitespaces != 0;
    in->escape_whitespaces = ns->escape_whitespaces != 0;
    return BN_OK;
}

static bn_status copy_pieces(bn_ctx *ctx, bn_spm_model *m, const mproto *mp)
{
    const size_t n = mp->n_pieces;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        bn_status rc = check_piece(ctx, mp->pieces[i], i);
        if (rc != BN_OK) return rc;
        total += mp->pieces[i]->piece.len + 1; /* bounded by the file's size */
    }
    m->pieces = bn_calloc(n, sizeof *m->pieces);
    m->scores = bn_calloc(n, sizeof *m->scores);
    m->types = bn_calloc(n, sizeof *m->types);
    m->text = bn_malloc(total);
    if (!m->pieces || !m->scores || !m->types || !m->text)
        return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const pproto *p = mp->pieces[i];
        m->pieces[i] = m->text + off;
        memcpy(m->text + off, p->piece.data, p->piece.len);
        off += p->piece.len;
        m->text[off++] = '\0';
        m->scores[i] = p->has_score ? p->score : 0.0f;
        m->types[i] = p->has_type ? (int32_t)p->type : BN_TOKEN_TYPE_NORMAL;
    }
    m->info.n_pieces = n;
    return BN_OK;
}

/* ---- opening --------------------------------------------------------------------------- */

bn_status bn_spm_model_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_spm_model **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    if (size > BN_SPM_MAX_FILE)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: %zu bytes; a SentencePiece model is smaller than "
                                "%zu",
                                size, BN_SPM_MAX_FILE);
    mproto *mp =
            sentencepiece__model_proto__unpack(&bn__pb_allocator, size, size ? data : (const void *)"");
    if (!mp)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "tokenizer.model: not a SentencePiece model (the protobuf does not "
                                "decode as a ModelProto: wrong wire type, bad length or "
                                "truncated)");
    bn_status rc = BN_OK;
    if (mp->n_pieces == 0)
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer.model: the model has no pieces");
    else if (mp->n_pieces > BN_TOKENIZER_MAX_VOCAB)
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tokenizer.model: %zu pieces (max %d)",
                              mp->n_pieces, BN_TOKENIZER_MAX_VOCAB);
    bn_spm_model *m = NULL;
    if (rc == BN_OK && !(m = bn_calloc(1, sizeof *m)))
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    if (rc == BN_OK) rc = copy_pieces(ctx, m, mp);
    if (rc == BN_OK) rc = copy_settings(ctx, m, mp);
    sentencepiece__model_proto__free_unpacked(mp, &bn__pb_allocator);
    if (rc != BN_OK) {
        bn_spm_model_close(m);
        return rc;
    }
    *out = m;
    return BN_OK;
}

bn_status bn_spm_model_open(bn_ctx *ctx, const char *path, bn_spm_model **out)
{
    BN_ASSERT(out && path);
    *out = NULL;
    const void *p;
    size_t size;
    bn_status rc = bn__map_file(ctx, path, &p, &size);
    if (rc != BN_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", bn_ctx_errmsg(ctx));
        return bn_ctx_set_error(ctx, rc, "%.300s: %s", path, msg);
    }
    rc = bn_spm_model_open_memory(ctx, p, size, out);
    bn__unmap(p, size);
    return rc;
}

void bn_spm_model_close(bn_spm_model *m)
{
    if (!m) return;
    bn_free(m->pieces);
    bn_free(m->scores);
    bn_free(m->types);
    bn_free(m->text);
    bn_free(m->normalizer);
    bn_free(m);
}

/* ---- access ---------------------------------------------------------------------------- */

const bn_spm_info *bn_spm_model_info(const bn_spm_model *m)
{
    return &m->info;
}

const char *const *bn_spm_model_pieces(const bn_spm_model *m)
{
    return (const char *const *)m->pieces;
}

const float *bn_spm_model_scores(const bn_spm_model *m)
{
    return m->scores;
}

const int32_t *bn_spm_model_types(const bn_spm_model *m)
{
    return m->types;
}

static const char *algo_name(int algo)
{
    switch (algo) {
    case BN_SPM_UNIGRAM:
        return "unigram";
    case BN_SPM_WORD:
        return "word";
    case BN_SPM_CHAR:
        return "char";
    default:
        return "unknown";
    }
}

bn_status bn_spm_model_vocab(bn_ctx *ctx, const bn_spm_model *m, bn_tokenizer_vocab *v)
{
    const bn_spm_info *in = &m->info;
    if (in->algo != BN_SPM_BPE)
        return bn_ctx_set_error(
                ctx, BN_ERR_UNSUPPORTED,
                "tokenizer.model: a %s SentencePiece model (model_type %d); only "
                "BPE models (as LLaMA's) tokenize the same with the llama tokenizer",
                algo_name(in->algo), in->algo);
    if (in->treat_whitespace_as_suffix || !in->escape_whitespaces)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "tokenizer.model: %s; the llama tokenizer puts U+2581 for each "
                                "space at the start of pieces",
                                in->treat_whitespace_as_suffix
                                        ? "whitespace is a suffix (treat_whitespace_as_suffix)"
                                        : "spaces are not escaped (escape_whitespaces false)");
    v->model = "llama";
    v->pre = "default";
    v->n_tokens = in->n_pieces;
    v->tokens = (const char *const *)m->pieces;
    v->token_lens = NULL;
    v->scores = m->scores;
    v->types = m->types;
    v->n_merges = 0;
    v->merges = NULL;
    v->unk_id = in->unk_id;
    v->bos_id = in->bos_id;
    v->eos_id = in->eos_id;
    v->pad_id = in->pad_id;
    v->add_space_prefix = in->add_dummy_prefix;
    return BN_OK;
}
