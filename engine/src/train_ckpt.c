/*
 * train_ckpt.c - trainer checkpoints: the whole training state (shape, hyper-parameters,
 * step, data position, weights, AdamW moments, tokenizer) in one file whose layout is
 * documented in bitnet/train.h. Written through a temporary file renamed when complete;
 * read back only after the magic, version, shape, size and checksum all agree.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "train_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints are written in host order, which must be little-endian"
#endif

#define CKPT_MAGIC         "BNTRCKPT"
#define CKPT_VERSION       1u
#define CKPT_HEADER        184
#define CKPT_MAX_TOKENIZER ((uint64_t)1 << 30)

/* ---- the header ---------------------------------------------------------------------------- */

typedef struct hbuf {
    unsigned char b[CKPT_HEADER];
    size_t n;
} hbuf;

static void put(hbuf *h, const void *v, size_t n)
{
    BN_ASSERT(h->n + n <= sizeof h->b);
    memcpy(h->b + h->n, v, n);
    h->n += n;
}
static void put_u32(hbuf *h, uint32_t v)
{
    put(h, &v, 4);
}
static void put_i32(hbuf *h, int32_t v)
{
    put(h, &v, 4);
}
static void put_f32(hbuf *h, float v)
{
    put(h, &v, 4);
}
static void put_u64(hbuf *h, uint64_t v)
{
    put(h, &v, 8);
}
static void put_i64(hbuf *h, int64_t v)
{
    put(h, &v, 8);
}

static void get(hbuf *h, void *v, size_t n)
{
    BN_ASSERT(h->n + n <= sizeof h->b);
    memcpy(v, h->b + h->n, n);
    h->n += n;
}

static void header_write(const bn_trainer *tr, hbuf *h)
{
    const bn_train_model_config *c = &tr->cfg;
    const bn_train_hparams *p = &tr->hp;
    h->n = 0;
    put(h, CKPT_MAGIC, 8);
    put_u32(h, CKPT_VERSION);
    put_u32(h, p->fp32 ? 1u : 0u);
    put_i32(h, c->vocab_size);
    put_i32(h, c->dim);
    put_i32(h, c->n_layer);
    put_i32(h, c->n_head);
    put_i32(h, c->n_kv_head);
    put_i32(h, c->ffn_dim);
    put_i32(h, c->ctx_len);
    put_f32(h, c->rope_theta);
    put_f32(h, c->norm_eps);
    put_i32(h, p->batch);
    put_i32(h, p->seq_len);
    put_i64(h, p->steps);
    put_i64(h, p->warmup);
    const float f[9] = {p->lr,  p->min_lr,    p->weight_decay, p->beta1,   p->beta2,
                        p->eps, p->grad_clip, p->val_frac,     p->init_std};
    for (int i = 0; i < 9; i++) put_f32(h, f[i]);
    put_u64(h, p->seed);
    put_i64(h, tr->step);
    put_i64(h, tr->epoch);
    put_i64(h, tr->data_pos);
    put_u64(h, tr->rng);
    put_u64(h, tr->data_hash);
    put_u64(h, (uint64_t)tr->n_tokens);
    put_u64(h, (uint64_t)tr->lay.total);
    put_u64(h, (uint64_t)tr->tok_len);
    BN_ASSERT(h->n == CKPT_HEADER);
}

typedef struct header {
    bn_train_model_config cfg;
    bn_train_hparams hp;
    int64_t step, epoch, data_pos;
    uint64_t rng, data_hash, n_tokens, n_params, tok_len;
} header;

static bn_status header_read(bn_ctx *ctx, hbuf *h, header *o, const char *path)
{
    char magic[8];
    uint32_t version, flags;
    h->n = 0;
    get(h, magic, 8);
    if (memcmp(magic, CKPT_MAGIC, 8) != 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: not a bitnet checkpoint (bad magic)",
                                path);
    get(h, &version, 4);
    if (version != CKPT_VERSION)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "%s: checkpoint version %u is not supported (this build reads %u)",
                                path, version, CKPT_VERSION);
    get(h, &flags, 4);
    memset(o, 0, sizeof *o);
    bn_train_model_config *c = &o->cfg;
    get(h, &c->vocab_size, 4);
    get(h, &c->dim, 4);
    get(h, &c->n_layer, 4);
    get(h, &c->n_head, 4);
    get(h, &c->n_kv_head, 4);
    get(h, &c->ffn_dim, 4);
    get(h, &c->ctx_len, 4);
    get(h, &c->rope_theta, 4);
    get(h, &c->norm_eps, 4);
    bn_train_hparams *p = &o->hp;
    get(h, &p->batch, 4);
    get(h, &p->seq_len, 4);
    get(h, &p->steps, 8);
    get(h, &p->warmup, 8);
    float *f[9] = {&p->lr,  &p->min_lr,    &p->weight_decay, &p->beta1,   &p->beta2,
                   &p->eps, &p->grad_clip, &p->val_frac,     &p->init_std};
    for (int i = 0; i < 9; i++) get(h, f[i], 4);
    get(h, &p->seed, 8);
    p->fp32 = (flags & 1u) != 0;
    get(h, &o->step, 8);
    get(h, &o->epoch, 8);
    get(h, &o->data_pos, 8);
    get(h, &o->rng, 8);
    get(h, &o->data_hash, 8);
    get(h, &o->n_tokens, 8);
    get(h, &o->n_params, 8);
    get(h, &o->tok_len, 8);
    if ((flags & ~1u) != 0)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: unknown checkpoint flags 0x%x", path,
                                flags);
    if (o->step < 0 || o->epoch < 0 || o->data_pos < 0 || o->tok_len > CKPT_MAX_TOKENIZER ||
        o->n_tokens > ((uint64_t)1 << 40))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: corrupt checkpoint header", path);
    return BN_OK;
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct wfile {
    FILE *f;
    uint64_t hash;
    int err;
} wfile;

static void wr(wfile *w, const void *p, size_t n)
{
    if (w->err || n == 0) return;
    w->hash = bn__fnv1a64(w->hash, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->err = errno ? errno : EIO;
}

bn_status bn_trainer_save(bn_trainer *tr, const char *path)
{
    char tmp[4096];
    hbuf h;
    header_write(tr, &h);
    /* <path>.tmp-<pid>-XXXXXX with O_EXCL: a name planted in advance (a symlink to another
     * file) is never followed; what a killed run left goes first. */
    bn_file_tmp_sweep(path);
    const int fd = bn_file_tmp_create(path, tmp, sizeof tmp);
    wfile w = {fd >= 0 ? fdopen(fd, "wb") : NULL, BN__FNV_OFFSET, 0};
    if (!w.f) {
        const int e = errno;
        if (fd >= 0) close(fd), unlink(tmp);
        return bn_ctx_set_error(tr->ctx, BN_ERR_IO, "cannot create a temporary file for %s: %s",
                                path, strerror(e));
    }
    (void)bn_file_tmp_mode(fd, path, 0644); /* a replaced checkpoint keeps its mode */
    const size_t n = tr->lay.total * sizeof(float);
    wr(&w, h.b, h.n);
    wr(&w, tr->params, n);
    wr(&w, tr->m, n);
    wr(&w, tr->v, n);
    wr(&w, tr->tok, tr->tok_len);
    const uint64_t sum = w.hash;
    wr(&w, &sum, sizeof sum);
    if (w.err) {
        fclose(w.f);
        unlink(tmp);
        return bn_ctx_set_error(tr->ctx, BN_ERR_IO, "cannot write checkpoint %s: %s", path,
                                strerror(w.err));
    }
    char why[1024]; /* flush, fsync, close, rename: on failure the temporary goes */
    if (bn_file_commit_stream(w.f, tmp, path, why, sizeof why) != BN_OK)
        return bn_ctx_set_error(tr->ctx, BN_ERR_IO, "cannot write checkpoint %s: %s", path, why);
    return BN_OK;
}

/* ---- reading --------------------------------------------------------------------------------- */

static bn_status rd(bn_ctx *ctx, FILE *f, void *p, size_t n, uint64_t *hash, const char *path)
{
    if (n == 0) return BN_OK;
    if (fread(p, 1, n, f) != n)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: truncated checkpoint", path);
    *hash = bn__fnv1a64(*hash, p, n);
    return BN_OK;
}

static bn_status check_size(bn_ctx *ctx, const header *hd, const bn_trainer *tr, uint64_t fsize,
                            const char *path)
{
    if (hd->n_params != (uint64_t)tr->lay.total)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "%s: %llu parameters stored, the shape needs %zu", path,
                                (unsigned long long)hd->n_params, tr->lay.total);
    uint64_t want = 0;
    if (bn_mul_u64(hd->n_params, 12, &want) || bn_add_u64(want, CKPT_HEADER + 8, &want) ||
        bn_add_u64(want, hd->tok_len, &want) || want != fsize)
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT,
                                "%s: file is %llu bytes, the header implies %llu (truncated or "
                                "corrupt)",
                                path, (unsigned long long)fsize, (unsigned long long)want);
    return BN_OK;
}

bn_status bn_trainer_load(bn_ctx *ctx, const char *path, bn_trainer **out)
{
    *out = NULL;
    bn_trainer *tr = NULL;
    bn_status rc = BN_OK;
    char why[512];
    FILE *f = bn_file_fopen_read(path, why, sizeof why); /* a FIFO is refused, not waited on */
    if (!f) return bn_ctx_set_error(ctx, BN_ERR_IO, "%s", why);
    struct stat st;
    hbuf h;
    header hd;
    uint64_t hash = BN__FNV_OFFSET, stored;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (fread(h.b, 1, CKPT_HEADER, f) != CKPT_HEADER) {
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: truncated checkpoint (no header)", path);
        goto fail;
    }
    hash = bn__fnv1a64(hash, h.b, CKPT_HEADER);
    if ((rc = header_read(ctx, &h, &hd, path)) != BN_OK) goto fail;
    if ((rc = bn__trainer_alloc(ctx, &hd.cfg, &hd.hp, &tr)) != BN_OK) goto fail;
    if ((rc = check_size(ctx, &hd, tr, (uint64_t)st.st_size, path)) != BN_OK) goto fail;
    const size_t n = tr->lay.total * sizeof(float);
    if (hd.tok_len > 0 && !(tr->tok = bn_malloc(hd.tok_len))) {
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory (tokenizer)");
        goto fail;
    }
    tr->tok_len = hd.tok_len;
    if ((rc = rd(ctx, f, tr->params, n, &hash, path)) != BN_OK ||
        (rc = rd(ctx, f, tr->m, n, &hash, path)) != BN_OK ||
        (rc = rd(ctx, f, tr->v, n, &hash, path)) != BN_OK ||
        (rc = rd(ctx, f, tr->tok, tr->tok_len, &hash, path)) != BN_OK)
        goto fail;
    if (fread(&stored, 1, 8, f) != 8) {
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: truncated checkpoint", path);
        goto fail;
    }
    if (stored != hash) {
        rc = bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: checksum mismatch (corrupt checkpoint)",
                              path);
        goto fail;
    }
    fclose(f);
    tr->step = hd.step;
    tr->epoch = hd.epoch;
    tr->data_pos = hd.data_pos;
    tr->rng = hd.rng;
    tr->data_hash = hd.data_hash;
    tr->n_tokens = (size_t)hd.n_tokens;
    *out = tr;
    return BN_OK;
fail:
    fclose(f);
    bn_trainer_free(tr);
    return rc;
}
