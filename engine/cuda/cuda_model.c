/*
 * cuda_model.c - the host side of the CUDA backend (bitnet/cuda.h): devices, the upload of
 * a loaded model into one GPU pool, and the forward pass as a sequence of kernel launches
 * (cuda_kernels.cu) on the default stream.
 *
 *   per layer   qe = quant(RMSNorm(x) * attn_norm)
 *               q, k, v = qe Wq, qe Wk, qe Wv; RoPE on q, k; k, v into the F16 cache
 *               att = attention(q, cache)
 *               qe = quant(RMSNorm(att) * attn_sub_norm);   x += qe Wo
 *               qe = quant(RMSNorm(x) * ffn_norm);          gate, up = qe Wgate, qe Wup
 *               gate = act(gate) * up;  qf = quant(RMSNorm(gate) * ffn_sub_norm)
 *               x += qf Wdown
 *   head        hn = RMSNorm(x) * output_norm; logits = head(hn) (Q8_0: of hn's Q8_0)
 *
 * Device buffers come from the pool; its size is computed by walking the same list of
 * buffers that carves it (plan()), so the two cannot disagree. Cache layout: K and V are
 * both (layer, position, n_kv * head_dim) in F16.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/cuda.h"
#include "bitnet/gguf.h"
#include "bitnet/types.h"
#include "cuda_internal.h"
#include "model_internal.h"

#define DEFAULT_N_CTX   4096
#define DEFAULT_N_BATCH 512
#define HEAD_CHUNK_ROWS 1024 /* rows of the LM head converted and uploaded at a time */

enum { HEAD_F32 = 0, HEAD_F16 = 1, HEAD_Q8 = 8 };

typedef struct gpu_layer {
    uint8_t *codes[BN__N_LIN];
    float *scales[BN__N_LIN];
    float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* sub-norms may be NULL */
} gpu_layer;

struct bn_cuda_model {
    bn_model *m;
    bn_ctx *ctx;
    bn_gpu_pool *pool;
    int64_t n_ctx, n_batch;
    int64_t first;          /* the first layer on the GPU */
    int head;               /* the LM head is on the GPU */
    int n_seq;              /* KV caches the pool makes room for */
    bn_cuda_seq *seq0;      /* bn_cuda_eval's sequence, made at its first call */
    int n_shrinks;          /* times shrink_ctx halved the context to fit the device */
    int64_t kpad_e, kpad_f; /* padded inputs of the E- and F-wide matrices */
    gpu_layer *layers;      /* host array of device pointers */
    float *out_norm;
    int head_kind;
    void *head_rows; /* V rows: F32, F16, or Q8_0 values (int8) */
    float *head_d;   /* Q8_0: V x E / 32 scales */
    float *x, *q, *k, *v, *att, *gate, *up, *cs, *hn, *logits, *xd;
    int8_t *qe, *qf, *xq;
    int32_t *sum_e, *sum_f;
    float *inv_e, *inv_f;
    float *host_x, *host_cs, *inv_freq; /* host scratch: embeddings, RoPE angles */
    size_t weight_bytes;
};

/* A sequence: its K and V caches, each (GPU layer, position, n_kv * head_dim) in F16. */
struct bn_cuda_seq {
    bn_cuda_model *g;
    uint16_t *kc, *vc; /* NULL while evicted */
    int64_t n_ctx, pos;
    int64_t n_ctx0; /* as made: each new cache tries it first */
};

int bn_cuda_built(void)
{
    return 1;
}

void bn_cuda_params_init(bn_cuda_params *p)
{
    memset(p, 0, sizeof *p);
}

static bn_status cu_fail(bn_ctx *ctx, int err, const char *what)
{
    return bn_ctx_set_error(ctx, BN_ERR_INTERNAL, "CUDA: %s: %s", what, bn__cu_errstr(err));
}

#define CK(g, call)                                                                                \
    do {                                                                                           \
        const int e_ = (call);                                                                     \
        if (e_) return cu_fail((g)->ctx, e_, #call);                                               \
    } while (0)

/* ---- devices -------------------------------------------------------------------------------- */

bn_status bn_cuda_devices(bn_cuda_device *out, int max, int *n, char *why, size_t whysz)
{
    int count = 0;
    *n = 0;
    const int e = bn__cu_device_count(&count);
    if (e || count == 0) {
        if (whysz)
            snprintf(why, whysz, "no device (%s)", e ? bn__cu_errstr(e) : "the runtime sees none");
        return BN_OK;
    }
    for (int i = 0; i < count && i < max; i++) {
        bn__cu_props p;
        bn__cu_device_props(i, &p);
        bn_cuda_device *d = &out[i];
        memset(d, 0, sizeof *d);
        d->index = i;
        snprintf(d->name, sizeof d->name, "%s", p.name);
        d->cc_major = p.cc_major, d->cc_minor = p.cc_minor, d->n_sm = p.n_sm;
        d->mem_total = p.mem_total, d->mem_free = p.mem_free;
        d->bus_bits = p.bus_bits, d->mem_khz = p.mem_khz;
        d->runtime = p.runtime, d->driver = p.driver;
        *n = i + 1;
    }
    return BN_OK;
}

/* ---- the plan of device buffers ------------------------------------------------------------ */

/* Walks every device buffer of g: counting (pool NULL: adds what the pool must hold to
 * need) or allocating from g->pool and uploading what the host holds for it. */
typedef struct planner {
    bn_cuda_model *g;
    size_t need;  /* counting: what the pool must hold */
    size_t bytes; /* counting: the buffers' own sizes */
    size_t small_max, align;
    bn_status rc;
} planner;

static void want(planner *pl, void *ptr, size_t size, const void *src)
{
    void **p = ptr;
    if (pl->rc != BN_OK) return;
    if (!pl->g->pool) { /* a small block may take a class slot up to small_max */
        pl->bytes += size;
        pl->need +=
                size <= pl->small_max ? pl->small_max : (size + pl->align - 1) & ~(pl->align - 1);
        return;
    }
    pl->rc = bn_gpu_pool_alloc(pl->g->pool, size, p);
    const int e = pl->rc == BN_OK && src ? bn__cu_h2d(*p, src, size) : 0;
    if (e) pl->rc = cu_fail(pl->g->ctx, e, "uploading the weights");
}

static const bn_gguf_tensor *head_tensor(const bn_model *m);

static void plan_weights(planner *pl)
{
    bn_cuda_model *g = pl->g;
    const bn_model_hparams *h = &g->m->hp;
    const size_t E = (size_t)h->n_embd, F = (size_t)h->n_ff;
    for (int64_t il = g->first; il < h->n_layer; il++) {
        const bn__layer *L = &g->m->layers[il];
        gpu_layer *G = &g->layers[il];
        for (int i = 0; i < BN__N_LIN; i++) {
            const bn_tmat *w = &L->w[i];
            want(pl, &G->codes[i], (size_t)(w->rows_pad * w->row_bytes), w->codes);
            want(pl, &G->scales[i], (size_t)w->rows * sizeof(float), w->scales);
        }
        want(pl, &G->attn_norm, E * 4, L->attn_norm);
        want(pl, &G->ffn_norm, E * 4, L->ffn_norm);
        if (L->attn_sub_norm) want(pl, &G->attn_sub_norm, E * 4, L->attn_sub_norm);
        if (L->ffn_sub_norm) want(pl, &G->ffn_sub_norm, F * 4, L->ffn_sub_norm);
    }
    if (!g->head) return;
    want(pl, &g->out_norm, E * 4, g->m->output_norm);
    const size_t V = (size_t)h->n_vocab;
    if (g->head_kind == HEAD_Q8) { /* upload_head_q8 fills them */
        want(pl, &g->head_rows, V * E, NULL);
        want(pl, &g->head_d, V * (E / 32) * 4, NULL);
    } else { /* the file's rows as they are */
        want(pl, &g->head_rows, V * E * (g->head_kind == HEAD_F16 ? 2 : 4),
             head_tensor(g->m)->data);
    }
}

static void plan_state(planner *pl)
{
    bn_cuda_model *g = pl->g;
    const bn_model_hparams *h = &g->m->hp;
    const size_t B = (size_t)g->n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff;
    const size_t KV = (size_t)(h->n_head_kv * h->head_dim), V = (size_t)h->n_vocab;
    float **fb[] = {&g->x, &g->q, &g->att};
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) want(pl, fb[i], B * E * 4, NULL);
    want(pl, &g->k, B * KV * 4, NULL);
    want(pl, &g->v, B * KV * 4, NULL);
    want(pl, &g->gate, B * F * 4, NULL);
    want(pl, &g->up, B * F * 4, NULL);
    want(pl, &g->cs, B * (size_t)h->n_rot * 4, NULL);
    want(pl, &g->qe, B * (size_t)g->kpad_e, NULL);
    want(pl, &g->qf, B * (size_t)g->kpad_f, NULL);
    if (g->head) {
        want(pl, &g->hn, B * E * 4, NULL);
        want(pl, &g->logits, B * V * 4, NULL);
        want(pl, &g->xq, B * E, NULL);
        want(pl, &g->xd, B * (E / 32) * 4, NULL);
    }
    want(pl, &g->sum_e, B * 4, NULL);
    want(pl, &g->sum_f, B * 4, NULL);
    want(pl, &g->inv_e, B * 4, NULL);
    want(pl, &g->inv_f, B * 4, NULL);
}

/* ---- the LM head ----------------------------------------------------------------------------- */

/* The file's head tensor: output.weight, else token_embd.weight (tied). */
static const bn_gguf_tensor *head_tensor(const bn_model *m)
{
    const bn_gguf_tensor *t = bn_gguf_find_tensor(bn_model_gguf(m), "output.weight");
    return t ? t : bn_gguf_find_tensor(bn_model_gguf(m), "token_embd.weight");
}

static bn_status pick_head(bn_cuda_model *g)
{
    const bn_model_hparams *h = &g->m->hp;
    const bn_gguf_tensor *t = head_tensor(g->m);
    if (!t || (t->type != BN_TYPE_F16 && t->type != BN_TYPE_F32 && t->type != BN_TYPE_Q8_0))
        return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                "CUDA: the LM head is %s in the file: the backend takes F16, F32 "
                                "or Q8_0 rows",
                                t ? bn_type_name(t->type) : "missing");
    if (h->head_type == BN_TYPE_Q8_0 && h->n_embd % 32 == 0)
        g->head_kind = HEAD_Q8;
    else if (h->head_type == BN_TYPE_F16 || h->head_type == BN_TYPE_F32)
        g->head_kind = h->head_type == BN_TYPE_F16 ? HEAD_F16 : HEAD_F32;
    else
        return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                "CUDA: LM head %s: the backend runs a q8_0 head or the file's "
                                "F16/F32 rows (--head q8_0 or --head keep)",
                                bn_type_name(h->head_type));
    if (g->head_kind != HEAD_Q8 && t->type != h->head_type)
        return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                "CUDA: the LM head is %s in the model but %s in the file",
                                bn_type_name(h->head_type), bn_type_name(t->type));
    return BN_OK;
}

/* Row r of the file's head as floats. */
static void head_row_f32(const bn_gguf_tensor *t, int64_t E, int64_t r, float *row)
{
    const uint8_t *src = (const uint8_t *)t->data + t->size / (size_t)t->ne[1] * (size_t)r;
    if (t->type == BN_TYPE_F32)
        memcpy(row, src, (size_t)E * 4);
    else if (t->type == BN_TYPE_F16)
        bn_f16_to_f32_row(src, row, E);
    else
        bn_dequantize_row_q8_0((const bn_block_q8_0 *)src, row, E);
}

/* The Q8_0 head: rows quantized as the CPU requantizes them (a Q8_0 file row as it is),
 * split into values and f32 scales, uploaded HEAD_CHUNK_ROWS at a time. */
static bn_status upload_head_q8(bn_cuda_model *g, const bn_gguf_tensor *t)
{
    const int64_t V = g->m->hp.n_vocab, E = g->m->hp.n_embd, nb = E / 32;
    int8_t *qs = bn_malloc((size_t)(HEAD_CHUNK_ROWS * E));
    float *d = bn_malloc((size_t)(HEAD_CHUNK_ROWS * nb) * 4), *row = bn_malloc((size_t)E * 4);
    bn_block_q8_0 *blk = bn_malloc((size_t)nb * sizeof *blk);
    bn_status rc = qs && d && row && blk ? BN_OK : BN_ERR_NOMEM;
    for (int64_t r0 = 0; rc == BN_OK && r0 < V; r0 += HEAD_CHUNK_ROWS) {
        const int64_t n = V - r0 < HEAD_CHUNK_ROWS ? V - r0 : HEAD_CHUNK_ROWS;
        for (int64_t r = 0; r < n; r++) {
            if (t->type == BN_TYPE_Q8_0) {
                memcpy(blk, (const uint8_t *)t->data + t->size / (size_t)V * (size_t)(r0 + r),
                       (size_t)nb * sizeof *blk);
            } else {
                head_row_f32(t, E, r0 + r, row);
                bn_quantize_row_q8_0(row, blk, E);
            }
            for (int64_t b = 0; b < nb; b++) {
                memcpy(qs + r * E + b * 32, blk[b].qs, 32);
                d[r * nb + b] = bn_f16_to_f32(blk[b].d);
            }
        }
        int e = bn__cu_h2d((int8_t *)g->head_rows + r0 * E, qs, (size_t)(n * E));
        if (!e) e = bn__cu_h2d(g->head_d + r0 * nb, d, (size_t)(n * nb) * 4);
        if (e) rc = cu_fail(g->ctx, e, "uploading the LM head");
    }
    if (rc == BN_ERR_NOMEM) bn_ctx_set_error(g->ctx, rc, "CUDA: out of host memory (LM head)");
    bn_free(qs), bn_free(d), bn_free(row), bn_free(blk);
    return rc;
}

/* ---- construction -------------------------------------------------------------------------- */

/* Every matrix's input is padded as the first GPU layer's; the kernels rely on it. */
static bn_status check_shapes(bn_cuda_model *g)
{
    const bn_model_hparams *h = &g->m->hp;
    g->kpad_e = g->m->layers[g->first].w[BN__WQ].kpad;
    g->kpad_f = g->m->layers[g->first].w[BN__WDOWN].kpad;
    for (int64_t il = g->first; il < h->n_layer; il++)
        for (int i = 0; i < BN__N_LIN; i++) {
            const bn_tmat *w = &g->m->layers[il].w[i];
            if (g->m->layers[il].ql[i].type) /* convert --mixed: not on the GPU yet */
                return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                        "CUDA: blk.%lld.%s is kept at %s (convert --mixed), which "
                                        "the backend does not run: -ngl %lld leaves it on the CPU",
                                        (long long)il, bn__lin_names[i],
                                        bn_type_name(g->m->layers[il].ql[i].type),
                                        (long long)(h->n_layer - 1 - il));
            if (w->kpad != (i == BN__WDOWN ? g->kpad_f : g->kpad_e) || w->kpad % 128)
                return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                        "CUDA: blk.%lld.%s: inputs padded to %lld, unlike the "
                                        "other layers",
                                        (long long)il, bn__lin_names[i], (long long)w->kpad);
            if (g->m->layers[il].lr[i].rank > 0) /* convert --lowrank: not on the GPU yet */
                return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED,
                                        "CUDA: blk.%lld.%s has a low-rank correction (convert "
                                        "--lowrank), which the backend does not apply",
                                        (long long)il, bn__lin_names[i]);
        }
    if (h->n_head % h->n_head_kv)
        return bn_ctx_set_error(g->ctx, BN_ERR_UNSUPPORTED, "CUDA: %lld heads over %lld KV heads",
                                (long long)h->n_head, (long long)h->n_head_kv);
    return BN_OK;
}

/* Bytes of one of a sequence's two caches (K or V) of n_ctx tokens. */
static size_t cache_bytes(const bn_cuda_model *g, int64_t n_ctx)
{
    const bn_model_hparams *h = &g->m->hp;
    return (size_t)(h->n_layer - g->first) * (size_t)n_ctx * (size_t)(h->n_head_kv * h->head_dim) *
           2;
}

/* The pool's size for the model at g's context and batch, with n_seq caches. */
static size_t pool_bytes(bn_cuda_model *g, const bn_gpu_pool_params *pp)
{
    planner pl = {.g = g, .small_max = pp->small_max, .align = pp->align};
    plan_weights(&pl);
    g->weight_bytes = pl.bytes;
    plan_state(&pl);
    const size_t cache = (cache_bytes(g, g->n_ctx) + pp->align - 1) & ~(pp->align - 1);
    /* a partly filled slab per size class at worst */
    return pl.need + 2 * (size_t)g->n_seq * cache + 16 * pp->slab_bytes;
}

/* The pool for the model. When the device cannot give it, the pool is sized for half as
 * many KV caches (down to one: the other sequences then evict idle ones, or shrink their own
 * context, or run on the CPU: bn_cuda_seq_take); then, when the context was not asked for
 * (may_shrink), shrink_ctx halves the context (and the batch with it) down to
 * MIN_SHRUNK_CTX tokens, each step logged and counted; past that the error names the
 * bytes. */
#define MIN_SHRUNK_CTX 64
static bn_status make_pool(bn_cuda_model *g, int device, int may_shrink)
{
    bn_gpu_pool_params pp;
    bn_gpu_pool_params_init(&pp);
    bn__cu_props props;
    const int e = bn__cu_device_props(device, &props);
    if (e) return cu_fail(g->ctx, e, "device properties");
    bn_gpu_allocator a = {.alloc = bn__cu_malloc, .free = bn__cu_free, .user = NULL};
    for (;;) {
        pp.reserve = pool_bytes(g, &pp);
        if (bn_gpu_pool_new(g->ctx, &a, &pp, &g->pool) == BN_OK) break;
        if (g->n_seq > 1) { /* room for fewer caches: the other sequences evict idle ones */
            bn_log(BN_LOG_WARN, "CUDA: %s cannot give %zu MiB for %d KV caches: room for %d",
                   props.name, pp.reserve >> 20, g->n_seq, (g->n_seq + 1) / 2);
            g->n_seq = (g->n_seq + 1) / 2;
            continue;
        }
        if (!may_shrink || g->n_ctx / 2 < MIN_SHRUNK_CTX)
            return bn_ctx_set_error(g->ctx, BN_ERR_NOMEM,
                                    "CUDA: %s has %zu MiB free; the model, a context of %lld and "
                                    "a batch of %lld need %zu MiB",
                                    props.name, props.mem_free >> 20, (long long)g->n_ctx,
                                    (long long)g->n_batch, pp.reserve >> 20);
        bn_log(BN_LOG_WARN,
               "CUDA: %s cannot give %zu MiB for a context of %lld tokens: shrink_ctx to %lld",
               props.name, pp.reserve >> 20, (long long)g->n_ctx, (long long)(g->n_ctx / 2));
        g->n_ctx /= 2;
        g->n_batch = g->n_batch < g->n_ctx ? g->n_batch : g->n_ctx;
        g->n_shrinks++;
    }
    planner pl = {.g = g, .small_max = pp.small_max, .align = pp.align};
    plan_weights(&pl); /* allocates and uploads */
    plan_state(&pl);
    if (pl.rc == BN_OK && g->head && g->head_kind == HEAD_Q8)
        pl.rc = upload_head_q8(g, head_tensor(g->m));
    return pl.rc;
}

static bn_status cuda_params(bn_cuda_model *g, const bn_cuda_params *p)
{
    const bn_model_hparams *h = &g->m->hp;
    int64_t n_ctx = p && p->n_ctx ? p->n_ctx : h->n_ctx_train;
    if (!(p && p->n_ctx) && n_ctx > DEFAULT_N_CTX) n_ctx = DEFAULT_N_CTX;
    if (n_ctx < 1 || n_ctx > h->n_ctx_train || n_ctx > BN__CU_MAX_CTX)
        return bn_ctx_set_error(
                g->ctx, BN_ERR_RANGE, "CUDA: context of %lld tokens: allowed 1 to %lld",
                (long long)n_ctx,
                (long long)(h->n_ctx_train < BN__CU_MAX_CTX ? h->n_ctx_train : BN__CU_MAX_CTX));
    int64_t n_batch = p && p->n_batch ? p->n_batch : DEFAULT_N_BATCH;
    if (n_batch < 1 || n_batch > 65535)
        return bn_ctx_set_error(g->ctx, BN_ERR_RANGE, "CUDA: batch of %lld tokens: 1 to 65535",
                                (long long)n_batch);
    if (p && (p->n_layers < 0 || p->n_seq < 0 || p->n_seq > 4096))
        return bn_ctx_set_error(g->ctx, BN_ERR_RANGE,
                                "CUDA: %d layers, %d sequences: layers 0 (all) or more, "
                                "sequences 0 to 4096",
                                p->n_layers, p->n_seq);
    const int64_t nl = p && p->n_layers ? p->n_layers : h->n_layer + 1;
    g->first = nl >= h->n_layer ? 0 : h->n_layer - nl;
    g->head = nl > h->n_layer;
    g->n_seq = p && p->n_seq ? p->n_seq : 1;
    g->n_ctx = n_ctx;
    g->n_batch = n_batch < n_ctx ? n_batch : n_ctx;
    return BN_OK;
}

bn_status bn_cuda_model_new(bn_model *m, const bn_cuda_params *p, bn_cuda_model **out)
{
    BN_ASSERT(m && out);
    *out = NULL;
    bn_ctx *ctx = bn_model_ctx(m);
    int n = 0;
    const int e = bn__cu_device_count(&n);
    const int dev = p ? p->device : 0;
    if (e || dev < 0 || dev >= n)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "CUDA: no device %d (%s)", dev,
                                e   ? bn__cu_errstr(e)
                                : n ? "out of range"
                                    : "the runtime sees none");
    if (bn__cu_set_device(dev))
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "CUDA: device %d", dev);
    bn_cuda_model *g = bn_calloc(1, sizeof *g);
    if (!g) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    g->m = m;
    g->ctx = ctx;
    const bn_model_hparams *h = &m->hp;
    bn_status rc = cuda_params(g, p);
    if (rc == BN_OK) rc = check_shapes(g);
    if (rc == BN_OK && g->head) rc = pick_head(g);
    if (rc == BN_OK) {
        g->layers = bn_calloc((size_t)h->n_layer, sizeof *g->layers);
        g->host_x = bn_malloc((size_t)(g->n_batch * h->n_embd) * 4);
        g->host_cs = bn_malloc((size_t)(g->n_batch * h->n_rot) * 4);
        g->inv_freq = bn_malloc((size_t)(h->n_rot / 2 + 1) * 4);
        if (!g->layers || !g->host_x || !g->host_cs || !g->inv_freq)
            rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    }
    if (rc == BN_OK) rc = make_pool(g, dev, !(p && p->n_ctx));
    if (rc != BN_OK) {
        bn_cuda_model_free(g);
        return rc;
    }
    for (int64_t i = 0; i < h->n_rot / 2; i++)
        g->inv_freq[i] = (float)pow((double)h->rope_base, -2.0 * (double)i / (double)h->n_rot);
    *out = g;
    return BN_OK;
}

void bn_cuda_model_free(bn_cuda_model *g)
{
    if (!g) return;
    bn_cuda_seq_free(g->seq0);
    bn_gpu_pool_free(g->pool); /* every device buffer at once */
    bn_free(g->layers);
    bn_free(g->host_x);
    bn_free(g->host_cs);
    bn_free(g->inv_freq);
    bn_free(g);
}

int64_t bn_cuda_pos(const bn_cuda_model *g)
{
    return g->seq0 ? g->seq0->pos : 0;
}

int bn_cuda_n_seq(const bn_cuda_model *g)
{
    return g->n_seq;
}

int64_t bn_cuda_first_layer(const bn_cuda_model *g)
{
    return g->first;
}

int bn_cuda_has_head(const bn_cuda_model *g)
{
    return g->head;
}

bn_gpu_pool *bn_cuda_pool(bn_cuda_model *g)
{
    return g->pool;
}

int64_t bn_cuda_n_ctx(const bn_cuda_model *g, int *n_shrinks)
{
    if (n_shrinks) *n_shrinks = g->n_shrinks;
    return g->n_ctx;
}

void bn_cuda_pool_stats(const bn_cuda_model *g, bn_gpu_pool_stats *s)
{
    bn_gpu_pool_stats_get(g->pool, s);
}

size_t bn_cuda_weight_bytes(const bn_cuda_model *g)
{
    return g->weight_bytes;
}

/* ---- sequences ------------------------------------------------------------------------------ */

bn_status bn_cuda_seq_new(bn_cuda_model *g, int64_t n_ctx, bn_cuda_seq **out)
{
    BN_ASSERT(g && out);
    *out = NULL;
    if (n_ctx < 1 || n_ctx > g->n_ctx)
        return bn_ctx_set_error(g->ctx, BN_ERR_RANGE,
                                "CUDA: a sequence of %lld tokens: allowed 1 to %lld (the GPU "
                                "model's context)",
                                (long long)n_ctx, (long long)g->n_ctx);
    bn_cuda_seq *s = bn_calloc(1, sizeof *s);
    if (!s) return bn_ctx_set_error(g->ctx, BN_ERR_NOMEM, "out of memory");
    s->g = g;
    s->n_ctx = s->n_ctx0 = n_ctx;
    *out = s;
    return BN_OK;
}

size_t bn_cuda_seq_evict(bn_cuda_seq *s)
{
    size_t n = 0;
    uint16_t **c[] = {&s->kc, &s->vc};
    for (int i = 0; i < 2; i++) {
        if (!*c[i]) continue;
        n += bn_gpu_pool_block_size(s->g->pool, *c[i]);
        bn_gpu_pool_dealloc(s->g->pool, *c[i]);
        *c[i] = NULL;
    }
    s->pos = 0;
    return n;
}

void bn_cuda_seq_free(bn_cuda_seq *s)
{
    if (!s) return;
    bn_cuda_seq_evict(s);
    bn_free(s);
}

int64_t bn_cuda_seq_pos(const bn_cuda_seq *s)
{
    return s->pos;
}

int64_t bn_cuda_seq_n_ctx(const bn_cuda_seq *s)
{
    return s->n_ctx;
}

int bn_cuda_seq_resident(const bn_cuda_seq *s)
{
    return s->kc != NULL;
}

bn_status bn_cuda_seq_take(bn_cuda_seq *s, int64_t n_min)
{
    bn_cuda_model *g = s->g;
    if (s->kc) return BN_OK;
    s->n_ctx = s->n_ctx0;
    for (;;) {
        const size_t b = cache_bytes(g, s->n_ctx);
        bn_status rc = bn_gpu_pool_alloc(g->pool, b, (void **)&s->kc);
        if (rc == BN_OK) rc = bn_gpu_pool_alloc(g->pool, b, (void **)&s->vc);
        if (rc == BN_OK) return BN_OK;
        bn_cuda_seq_evict(s); /* the K cache, when only V found no room */
        const int64_t half = s->n_ctx / 2;
        if (rc != BN_ERR_NOMEM || half < MIN_SHRUNK_CTX || half < n_min)
            return rc != BN_ERR_NOMEM ? rc
                                      : bn_ctx_set_error(g->ctx, BN_ERR_NOMEM,
                                                         "CUDA: no room in the GPU pool for a "
                                                         "KV cache of %lld tokens (2 x %zu bytes)",
                                                         (long long)s->n_ctx, b);
        char what[160];
        snprintf(what, sizeof what,
                 "a KV cache of %lld tokens does not fit: the context is now %lld",
                 (long long)s->n_ctx, (long long)half);
        bn_gpu_pool_note_pressure(g->pool, BN_GPU_PRESSURE_SHRINK_CTX, what);
        s->n_ctx = half;
    }
}

/* ---- the forward --------------------------------------------------------------------------- */

/* Embeddings of T tokens into host_x, as the CPU looks them up. */
static void embed(bn_cuda_model *g, const int32_t *tokens, int64_t T)
{
    const bn_model *m = g->m;
    const int64_t E = m->hp.n_embd;
    const bn_gguf_tensor *te = bn_gguf_find_tensor(bn_model_gguf(m), "token_embd.weight");
    const size_t row_bytes = te->size / (size_t)te->ne[1];
    for (int64_t t = 0; t < T; t++) {
        const uint8_t *row = (const uint8_t *)te->data + (size_t)tokens[t] * row_bytes;
        float *x = g->host_x + t * E;
        if (te->type == BN_TYPE_F32)
            memcpy(x, row, (size_t)E * 4);
        else if (te->type == BN_TYPE_F16)
            bn_f16_to_f32_row(row, x, E);
        else
            bn_dequantize_row_q8_0((const bn_block_q8_0 *)row, x, E);
    }
}

/* x (T rows, host) and the RoPE angles of positions pos0 .. pos0 + T - 1 onto the device. */
static bn_status batch_inputs(bn_cuda_model *g, const float *x, int64_t T, int64_t pos0)
{
    const int64_t E = g->m->hp.n_embd, n_rot = g->m->hp.n_rot;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n_rot / 2; i++) {
            const double a = (double)(pos0 + t) * (double)g->inv_freq[i];
            g->host_cs[t * n_rot + 2 * i] = (float)cos(a);
            g->host_cs[t * n_rot + 2 * i + 1] = (float)sin(a);
        }
    CK(g, bn__cu_h2d(g->x, x, (size_t)(T * E) * 4));
    if (n_rot) CK(g, bn__cu_h2d(g->cs, g->host_cs, (size_t)(T * n_rot) * 4));
    return BN_OK;
}
/* y (ld ldy) = or += the product of layer il's matrix i with the quantized input */
static int lin(bn_cuda_model *g, int64_t il, int i, int64_t T, float *y, int64_t ldy, int add)
{
    const bn_tmat *w = &g->m->layers[il].w[i];
    const gpu_layer *G = &g->layers[il];
    const int ff = i == BN__WDOWN;
    return bn__cu_w2a8(G->codes[i], G->scales[i], w->rows, w->kpad, ff ? g->qf : g->qe,
                       ff ? g->sum_f : g->sum_e, ff ? g->inv_f : g->inv_e, T, y, ldy, add);
}

static bn_status layer_forward(bn_cuda_model *g, bn_cuda_seq *s, int64_t il, int64_t T,
                               int64_t pos0)
{
    const bn_model_hparams *h = &g->m->hp;
    const gpu_layer *G = &g->layers[il];
    const int64_t E = h->n_embd, F = h->n_ff, KV = h->n_head_kv * h->head_dim;
    CK(g, bn__cu_norm_quant(g->x, E, G->attn_norm, E, h->eps, T, g->qe, g->kpad_e, g->sum_e,
                            g->inv_e));
    CK(g, lin(g, il, BN__WQ, T, g->q, E, 0));
    CK(g, lin(g, il, BN__WK, T, g->k, KV, 0));
    CK(g, lin(g, il, BN__WV, T, g->v, KV, 0));
    const bn__cu_rope r = {.q = g->q,
                           .k = g->k,
                           .v = g->v,
                           .cs = g->cs,
                           .kc = s->kc,
                           .vc = s->vc,
                           .T = T,
                           .n_head = h->n_head,
                           .n_kv = h->n_head_kv,
                           .d = h->head_dim,
                           .n_rot = h->n_rot,
                           .il = il - g->first,
                           .n_ctx = s->n_ctx,
                           .pos0 = pos0};
    CK(g, bn__cu_rope_store(&r));
    CK(g, bn__cu_attention(g->q, s->kc, s->vc, g->att, T, h->n_head, h->n_head_kv, h->head_dim,
                           il - g->first, s->n_ctx, pos0));
    CK(g, bn__cu_norm_quant(g->att, E, G->attn_sub_norm, E, h->eps, T, g->qe, g->kpad_e, g->sum_e,
                            g->inv_e));
    CK(g, lin(g, il, BN__WO, T, g->x, E, 1));
    CK(g,
       bn__cu_norm_quant(g->x, E, G->ffn_norm, E, h->eps, T, g->qe, g->kpad_e, g->sum_e, g->inv_e));
    CK(g, lin(g, il, BN__WGATE, T, g->gate, F, 0));
    CK(g, lin(g, il, BN__WUP, T, g->up, F, 0));
    CK(g, bn__cu_act_mul(g->gate, g->up, T * F, h->act == BN_ACT_SILU));
    CK(g, bn__cu_norm_quant(g->gate, F, G->ffn_sub_norm, F, h->eps, T, g->qf, g->kpad_f, g->sum_f,
                            g->inv_f));
    CK(g, lin(g, il, BN__WDOWN, T, g->x, E, 1));
    return BN_OK;
}

static bn_status head_forward(bn_cuda_model *g, int64_t T, int64_t n_out, float *logits)
{
    const bn_model_hparams *h = &g->m->hp;
    const int64_t E = h->n_embd, V = h->n_vocab;
    CK(g, bn__cu_rmsnorm(g->x + (T - n_out) * E, g->out_norm, E, h->eps, n_out, g->hn));
    if (g->head_kind == HEAD_Q8) CK(g, bn__cu_q8_0_rows(g->hn, E, n_out, g->xq, g->xd));
    CK(g, bn__cu_head(g->head_kind, g->head_rows, g->head_d, V, E, g->hn, g->xq, g->xd, n_out,
                      g->logits));
    CK(g, bn__cu_d2h(logits, g->logits, (size_t)(n_out * V) * 4));
    return BN_OK;
}

static bn_status check_forward(bn_cuda_seq *s, const float *x, int64_t n, int64_t pos,
                               int64_t n_logits, const float *logits)
{
    bn_ctx *ctx = s->g->ctx;
    if (n < 1 || !x)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "nothing to evaluate (%lld tokens)",
                                (long long)n);
    if (pos < 0 || pos > s->pos)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "position %lld is past the %lld tokens in the cache",
                                (long long)pos, (long long)s->pos);
    if (n > s->n_ctx - pos)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                "context overflow: %lld tokens at position %lld exceed the "
                                "context of %lld tokens",
                                (long long)n, (long long)pos, (long long)s->n_ctx);
    if (n_logits < 0 || n_logits > n || (n_logits > 0 && (!logits || !s->g->head)))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "logits for %lld of %lld tokens%s",
                                (long long)n_logits, (long long)n,
                                s->g->head ? "" : " (the LM head is on the CPU)");
    return BN_OK;
}

bn_status bn_cuda_seq_forward(bn_cuda_seq *s, float *x, int64_t T, int64_t pos, int64_t n_logits,
                              float *logits)
{
    BN_ASSERT(s);
    bn_cuda_model *g = s->g;
    bn_status rc = BN_OK;
    if (!s->kc) { /* the first forward, or after an eviction: from position 0 */
        if (pos != 0)
            return bn_ctx_set_error(g->ctx, BN_ERR_INVALID,
                                    "CUDA: position %lld: the sequence's KV cache was evicted, "
                                    "start again at 0",
                                    (long long)pos);
        rc = bn_cuda_seq_take(s, T);
    }
    if (rc == BN_OK) rc = check_forward(s, x, T, pos, n_logits, logits);
    const int64_t E = g->m->hp.n_embd, V = g->m->hp.n_vocab, first_out = T - n_logits;
    for (int64_t b0 = 0; rc == BN_OK && b0 < T; b0 += g->n_batch) {
        const int64_t Tb = T - b0 < g->n_batch ? T - b0 : g->n_batch;
        const int64_t o0 = first_out > b0 ? first_out : b0;
        const int64_t n_out = b0 + Tb > o0 ? b0 + Tb - o0 : 0;
        rc = batch_inputs(g, x + b0 * E, Tb, pos + b0);
        for (int64_t il = g->first; rc == BN_OK && il < g->m->hp.n_layer; il++)
            rc = layer_forward(g, s, il, Tb, pos + b0);
        if (rc == BN_OK && n_logits && n_out)
            rc = head_forward(g, Tb, n_out, logits + (size_t)(o0 - first_out) * (size_t)V);
        if (rc == BN_OK && !n_logits) {
            const int e = bn__cu_d2h(x + b0 * E, g->x, (size_t)(Tb * E) * 4);
            if (e) rc = cu_fail(g->ctx, e, "the activations back to the host");
        }
        if (rc == BN_OK) {
            const int e = bn__cu_sync();
            if (e) rc = cu_fail(g->ctx, e, "the forward pass");
        }
        if (rc == BN_OK) s->pos = pos + b0 + Tb;
    }
    return rc;
}

bn_status bn_cuda_eval(bn_cuda_model *g, const int32_t *tokens, int64_t n, int64_t pos,
                       int64_t n_logits, float *logits)
{
    BN_ASSERT(g);
    if (g->first || !g->head)
        return bn_ctx_set_error(g->ctx, BN_ERR_INVALID,
                                "CUDA: layers 0 to %lld%s are on the CPU: evaluate through a "
                                "model state (bn_model_state_params.gpu)",
                                (long long)g->first - 1, g->head ? "" : " and the LM head");
    bn_status rc = g->seq0 ? BN_OK : bn_cuda_seq_new(g, g->n_ctx, &g->seq0);
    if (rc != BN_OK) return rc;
    if (n < 1 || !tokens || n_logits < 0 || n_logits > n)
        return bn_ctx_set_error(g->ctx, BN_ERR_INVALID, "%lld tokens, logits of %lld", (long long)n,
                                (long long)n_logits);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->m->hp.n_vocab)
            return bn_ctx_set_error(g->ctx, BN_ERR_INVALID,
                                    "token id %ld at index %lld is out of range [0, %lld)",
                                    (long)tokens[i], (long long)i, (long long)g->m->hp.n_vocab);
    if (pos > g->seq0->pos || n > g->seq0->n_ctx - pos) /* the errors of check_forward */
        return check_forward(g->seq0, g->host_x, n, pos, 0, NULL);
    const int64_t V = g->m->hp.n_vocab, first_out = n - n_logits;
    for (int64_t b0 = 0; rc == BN_OK && b0 < n; b0 += g->n_batch) {
        const int64_t T = n - b0 < g->n_batch ? n - b0 : g->n_batch;
        const int64_t o0 = first_out > b0 ? first_out : b0;
        const int64_t n_out = b0 + T > o0 ? b0 + T - o0 : 0;
        embed(g, tokens + b0, T);
        rc = bn_cuda_seq_forward(g->seq0, g->host_x, T, pos + b0, n_out,
                                 n_out ? logits + (size_t)(o0 - first_out) * (size_t)V : NULL);
    }
    return rc;
}
