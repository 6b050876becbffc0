/*
 * model_forward.c - the BitNet b1.58 forward pass over a KV cache.
 *
 * One batch of T tokens is one bn_pool_run: every thread of the pool walks the layers
 * and the phases below, separated by barriers (spin, then yield). Within a phase the
 * threads take the work in chunks from a shared counter (see N_PHASES), so that a
 * thread slowed down by the rest of the machine does less of it. With T = 1 the
 * per-token norms are computed by every thread into its own buffers, so a generated
 * token costs five barriers per layer; with T > 1 the tokens of a norm are split among
 * the threads, followed by a barrier.
 *
 *   norm     h = RMSNorm(x) * attn_norm, quantized to int8 once       (per token)
 *   qkv      q, k, v = h Wq, h Wk, h Wv; RoPE on q and k; k, v into the cache
 *                                                    (a head of q, k or v at a time)
 *   attn     softmax(q K^T / sqrt(d)) V per head, causal   (blocks of queries of one
 *                                                           KV head: heads x tokens)
 *   norm     att = RMSNorm(att) * attn_sub_norm, quantized           (per token;
 *            a model without sub-norms quantizes att as it is, and a as it is below)
 *   o        x += att Wo                                          (chunks of rows)
 *   norm     h = RMSNorm(x) * ffn_norm, quantized                   (per token)
 *   gate/up  a = act(h Wgate) * (h Wup)                           (chunks of rows)
 *   norm     a = RMSNorm(a) * ffn_sub_norm, quantized               (per token)
 *   down     x += a Wdown                                         (chunks of rows)
 *
 * The small steps (norms, the quantizer, the activation, f16 stores, attention) have
 * AVX2 twins in model_avx2.c, chosen per state unless the kernel table is the reference;
 * where the CPU has AVX-512, the norm and the quantizer are one kernel of model_ops_avx512.c
 * (the same bits as the AVX2 pair) on every path.
 *
 * A batch can also be the next token of each of several sequences (bn_model_eval_batch,
 * continuous batching): the matmuls see T tokens as usual, while RoPE, the cache writes and
 * attention take each token's own position and state (tok_pos, tok_state), and attention
 * blocks hold queries of one token only.
 *
 * Shapes: x, h, q, att, y are (T, n_embd); kx, vx (T, n_kv * d); gate, up (T, n_ff).
 * Cache: K is (layer, position, n_kv * d); V is stored by blocks of 8 positions, (layer,
 * kv head, position / 8, d, position % 8) (v_at), so that the second attention product
 * reads 8 positions of a dimension at once and a short context's V lies in a few
 * contiguous blocks (one row per dimension n_ctx apart put each on a page of its own).
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/cpu.h"
#include "bitnet/cuda.h"
#include "bitnet/quant.h"
#include "bitnet/threadpool.h"
#include "model_internal.h"

#define DEFAULT_N_CTX   4096
#define DEFAULT_N_BATCH 512

/* Phases whose work the threads take in chunks from a shared counter: q/k/v, attention,
 * o, gate/up, down per layer, then the LM head. A thread slowed down by whatever else
 * runs on the machine takes fewer chunks instead of holding up the next barrier. */
enum { PH_QKV, PH_ATTN, PH_O, PH_GATE_UP, PH_DOWN, N_PHASES };

struct bn_model_state {
    bn_model *m;
    bn_threadpool *pool;
    int nth;         /* threads the pool may use */
    int64_t n_ctx;   /* cache capacity */
    int64_t n_batch; /* scratch capacity in tokens */
    int64_t pos;     /* tokens in the cache */
    int kv_type;
    /* -ngl: layers [l_gpu, n_layer) on the GPU (gpu_forward), their cache in gseq */
    bn_cuda_model *gpu;
    bn_cuda_seq *gseq; /* NULL: every layer on the CPU */
    int64_t l_gpu;
    int64_t n_ctx_cpu; /* the context of the CPU cache (n_ctx follows a shrunk GPU cache) */
    size_t kv_elt;     /* bytes per cache element */
    void *kc, *vc;     /* K and V cache */
    float *x, *h, *q, *kx, *vx, *att, *y, *gate, *up; /* see the file comment */
    float *cs;          /* (T, n_rot): the cosines of the rotated pairs, then their sines */
    float *inv_freq;    /* n_rot / 2 */
    float *scores;      /* (nth, BN__ATTN_NQ, s_stride) */
    size_t s_stride;    /* n_ctx rounded up to 8 */
    bn_block_q8_0 *x8;  /* (T, n_embd / 32) for a Q8_0 LM head */
    int8_t *xq;         /* (T, n_embd): x8's values, for a split Q8_0 head */
    float *xd;          /* (T, n_embd / 32): x8's scales as f32 */
    void *xg;           /* groups of 16 tokens for head_rows_multi */
    bn_qact qe;         /* quantized (T, n_embd) */
    bn_qact qf;         /* quantized (T, n_ff) */
    struct tpriv *priv; /* per thread, for one-token batches */
    atomic_int bar_count, bar_phase; /* the barrier of the forward task */
    atomic_int *work; /* (n_layer * N_PHASES + 1): the next chunk of each phase's work */
    /* the building blocks: plain C, or their AVX2 twins (model_avx2.c) */
    float (*quantize)(const float *x, int64_t n, int8_t *q, int32_t *sum);
    void (*rmsnorm)(const float *x, const float *w, int64_t n, float eps, float *y);
    /* rmsnorm then quantize in one kernel (model_ops_avx512.c); NULL: the two in turn */
    float (*norm_quant)(const float *x, const float *w, int64_t n, float eps, int8_t *q,
                        int32_t *sum);
    void (*act_mul)(float *g, const float *u, int64_t n); /* relu^2 or SiLU, by arch */
    void (*add)(float *x, const float *y, int64_t n);     /* x += y, the residual */
    void (*to_f16)(const float *x, uint16_t *y, int64_t n);
    void (*attn)(const bn__attn_block *a); /* NULL: attend() per (token, head) */
    struct prof *prof;                     /* NULL unless profiling (bn_model_state_profile) */
};

/* The profile's counters: per thread, the seconds of each class and the time of its last
 * mark, each thread on cache lines of its own; the totals, summed after the pool joins. */
typedef struct prof_thr {
    double s[BN_PROF_N];
    double last;
} prof_thr;
#define PROF_STRIDE ((sizeof(prof_thr) + 63) / 64 * 64)
typedef struct prof {
    unsigned char *thr; /* nth slots of PROF_STRIDE bytes */
    double t0;          /* when the pool was started on the current batch */
    bn_model_profile tot;
} prof;

/* What each thread holds for itself when a batch is one token: the norms are computed by
 * every thread from the shared vector into its own buffers instead of once behind a
 * barrier (a few thousand floats: cheaper than a synchronisation). */
typedef struct tpriv {
    bn_qact qe, qf; /* one token of n_embd, n_ff */
    float *buf;     /* max(n_embd, n_ff) */
    bn_block_q8_0 *x8;
    int8_t *xq;
    float *xd;
} tpriv;

void bn_model_state_params_init(bn_model_state_params *p)
{
    memset(p, 0, sizeof *p);
    p->kv_type = BN_TYPE_F16;
}

/* ---- state ------------------------------------------------------------------------------ */

/* The positions a V head holds (n_ctx rounded up to whole blocks of 8), and the element of
 * position p, dimension i of the V head at hb (its first element). */
static inline size_t v_ctx(size_t n_ctx)
{
    return (n_ctx + 7) / 8 * 8;
}
static inline size_t v_at(size_t hb, size_t d, size_t p, size_t i)
{
    return hb + ((p / 8) * d + i) * 8 + p % 8;
}

static bn_status state_alloc(bn_model_state *st)
{
    const bn_model_hparams *h = &st->m->hp;
    const size_t B = (size_t)st->n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff;
    const size_t KV = (size_t)(h->n_head_kv * h->head_dim);
    size_t cache, vcache;
    if (bn_mul_size((size_t)h->n_layer * KV, (size_t)st->n_ctx, &cache) ||
        bn_mul_size(cache, st->kv_elt, &cache) ||
        bn_mul_size((size_t)h->n_layer * KV, v_ctx((size_t)st->n_ctx), &vcache) ||
        bn_mul_size(vcache, st->kv_elt, &vcache))
        return BN_ERR_OVERFLOW;
    st->kc = bn_aligned_alloc(64, cache);
    st->vc = bn_aligned_alloc(64, vcache); /* attention reads whole blocks of 8 */
    float **bufs[] = {&st->x, &st->h, &st->q, &st->att, &st->y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = bn_malloc(B * E * 4);
    st->kx = bn_malloc(B * KV * 4);
    st->vx = bn_malloc(B * KV * 4);
    st->gate = bn_malloc(B * F * 4);
    st->up = bn_malloc(B * F * 4);
    st->cs = bn_malloc(B * (size_t)h->n_rot * 4);
    st->inv_freq = bn_malloc((size_t)h->n_rot / 2 * 4);
    st->s_stride = ((size_t)st->n_ctx + 7) / 8 * 8;
    st->scores = bn_malloc((size_t)st->nth * BN__ATTN_NQ * st->s_stride * 4);
    const int q8 = bn__head_q8_input(h->head_type);
    if (q8) {
        st->x8 = bn_malloc(B * E / BN_QK8_0 * sizeof *st->x8);
        st->xq = bn_aligned_alloc(64, B * E);
        st->xd = bn_malloc(B * E / BN_QK8_0 * sizeof *st->xd);
    }
    if (!st->kc || !st->vc || !st->x || !st->h || !st->q || !st->att || !st->y || !st->kx ||
        !st->vx || !st->gate || !st->up || !st->cs || !st->inv_freq || !st->scores ||
        (q8 && (!st->x8 || !st->xq || !st->xd)))
        return BN_ERR_NOMEM;
#if defined(__x86_64__) || defined(__i386__)
    if (st->m->head_rows_multi) {
        st->xg = bn_aligned_alloc(64, (B + 15) / 16 * bn__head_group_bytes(h->n_embd));
        if (!st->xg) return BN_ERR_NOMEM;
    }
#endif
    bn_status rc = bn_qact_init(&st->qe, st->n_batch, h->n_embd);
    if (rc == BN_OK) rc = bn_qact_init(&st->qf, st->n_batch, h->n_ff);
    if (rc != BN_OK) return rc;
    st->work = bn_malloc(((size_t)h->n_layer * N_PHASES + 1) * sizeof *st->work);
    if (!st->work) return BN_ERR_NOMEM;
    st->priv = bn_calloc((size_t)st->nth, sizeof *st->priv);
    if (!st->priv) return BN_ERR_NOMEM;
    for (int t = 0; t < st->nth; t++) {
        tpriv *p = &st->priv[t];
        rc = bn_qact_init(&p->qe, 1, h->n_embd);
        if (rc == BN_OK) rc = bn_qact_init(&p->qf, 1, h->n_ff);
        if (rc != BN_OK) return rc;
        p->qe.n_tok = p->qf.n_tok = 1;
        p->buf = bn_malloc((E > F ? E : F) * 4);
        p->x8 = bn_malloc(E / BN_QK8_0 * sizeof *p->x8 + 1);
        p->xq = bn_aligned_alloc(64, E);
        p->xd = bn_malloc(E / BN_QK8_0 * sizeof *p->xd + 1);
        if (!p->buf || !p->x8 || !p->xq || !p->xd) return BN_ERR_NOMEM;
    }
    /* the cache is not cleared: a position is read only after it has been written, and
     * untouched pages of a large cache stay out of resident memory until used */
    for (int64_t i = 0; i < h->n_rot / 2; i++)
        st->inv_freq[i] = (float)pow((double)h->rope_base, -2.0 * (double)i / (double)h->n_rot);
    return BN_OK;
}

static void relu2_mul(float *g, const float *u, int64_t n);
static void add_row(float *restrict x, const float *restrict y, int64_t n);
static void silu_mul(float *g, const float *u, int64_t n);

/* The building blocks for the model's kernel table: the AVX2 twins unless the table is
 * the reference or the CPU lacks AVX2, FMA or F16C; with AVX-512 F/BW/VL/DQ too, the norm
 * and the quantizer of model_ops_avx512.c (the AVX2 pair's bits), its relu^2 * up and
 * residual add (the plain loops' bits). */
static void choose_ops(bn_model_state *st)
{
    st->quantize = bn__model_quantize_act;
    st->rmsnorm = bn__model_rmsnorm;
    st->norm_quant = NULL;
    const int silu = st->m->hp.act == BN_ACT_SILU;
    st->act_mul = silu ? silu_mul : relu2_mul;
    st->add = add_row;
    st->to_f16 = bn_f32_to_f16_row;
    st->attn = NULL;
#if defined(__x86_64__) || defined(__i386__)
    const bn_cpu_info *c = bn_cpu_info_get();
    if (st->m->k == bn_kernels_ref() || !c->avx2 || !c->fma || !c->f16c) return;
    st->quantize = bn__model_quantize_act_avx2;
    st->rmsnorm = bn__model_rmsnorm_avx2;
    st->act_mul = silu ? bn__model_silu_mul_avx2 : bn__model_relu2_mul_avx2;
    st->to_f16 = bn__model_f32_to_f16_avx2;
    if (st->m->hp.head_dim % 8 == 0) st->attn = bn__model_attn_avx2;
    if (!c->avx512f || !c->avx512bw || !c->avx512vl || !c->avx512dq) return;
    st->quantize = bn__model_quantize_act_avx512;
    st->norm_quant = bn__model_norm_quant_avx512;
    if (!silu) st->act_mul = bn__model_relu2_mul_avx512;
    st->add = bn__model_add_avx512;
#endif
}

bn_status bn_model_state_new(bn_model *m, const bn_model_state_params *p, bn_model_state **out)
{
    BN_ASSERT(m && out);
    *out = NULL;
    bn_model_state_params d;
    if (!p) {
        bn_model_state_params_init(&d);
        p = &d;
    }
    const bn_model_hparams *h = &m->hp;
    int64_t n_ctx = p->n_ctx;
    if (n_ctx == 0) n_ctx = h->n_ctx_train < DEFAULT_N_CTX ? h->n_ctx_train : DEFAULT_N_CTX;
    if (n_ctx < 1 || n_ctx > h->n_ctx_train)
        return bn_ctx_set_error(m->ctx, BN_ERR_RANGE,
                                "context of %lld tokens: the model allows 1 to %lld",
                                (long long)n_ctx, (long long)h->n_ctx_train);
    int64_t n_batch = p->n_batch ? p->n_batch : DEFAULT_N_BATCH;
    if (n_batch < 1 || n_batch > (1 << 16))
        return bn_ctx_set_error(m->ctx, BN_ERR_RANGE, "batch of %lld tokens: allowed 1 to %d",
                                (long long)n_batch, 1 << 16);
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (p->gpu && n_ctx > bn_cuda_n_ctx(p->gpu, NULL)) { /* the GPU model's context shrank */
        bn_log(BN_LOG_WARN, "a context of %lld tokens: the GPU model holds %lld", (long long)n_ctx,
               (long long)bn_cuda_n_ctx(p->gpu, NULL));
        n_ctx = bn_cuda_n_ctx(p->gpu, NULL);
        n_batch = n_batch < n_ctx ? n_batch : n_ctx;
    }
    if (p->kv_type != BN_TYPE_F16 && p->kv_type != BN_TYPE_F32)
        return bn_ctx_set_error(m->ctx, BN_ERR_INVALID, "KV cache type %s: use f16 or f32",
                                bn_type_name(p->kv_type));
    bn_model_state *st = bn_calloc(1, sizeof *st);
    if (!st) return bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "out of memory");
    st->m = m;
    st->pool = bn_ctx_pool(m->ctx);
    st->nth = st->pool ? bn_pool_size(st->pool) : 1;
    st->n_ctx = n_ctx;
    st->n_batch = n_batch;
    st->kv_type = p->kv_type;
    st->kv_elt = p->kv_type == BN_TYPE_F16 ? 2 : 4;
    st->n_ctx_cpu = n_ctx;
    st->l_gpu = h->n_layer;
    choose_ops(st);
    bn_status rc = state_alloc(st);
    if (rc != BN_OK) {
        bn_model_state_free(st);
        return bn_ctx_set_error(m->ctx, rc, "KV cache of %lld tokens: %s", (long long)n_ctx,
                                bn_status_str(rc));
    }
    if (p->gpu && (rc = bn_cuda_seq_new(p->gpu, n_ctx, &st->gseq)) != BN_OK) {
        bn_model_state_free(st);
        return rc;
    }
    if (p->gpu) st->gpu = p->gpu, st->l_gpu = bn_cuda_first_layer(p->gpu);
    *out = st;
    return BN_OK;
}

void bn_model_state_free(bn_model_state *st)
{
    if (!st) return;
    bn_cuda_seq_free(st->gseq);
    bn_free(st->kc);
    bn_free(st->vc);
    float *bufs[] = {st->x,  st->h,    st->q,  st->att, st->y,        st->kx,
                     st->vx, st->gate, st->up, st->cs,  st->inv_freq, st->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bn_free(bufs[i]);
    bn_free(st->x8);
    bn_free(st->xq);
    bn_free(st->xd);
    bn_free(st->xg);
    bn_qact_release(&st->qe);
    bn_qact_release(&st->qf);
    for (int t = 0; st->priv && t < st->nth; t++) {
        tpriv *p = &st->priv[t];
        bn_qact_release(&p->qe);
        bn_qact_release(&p->qf);
        bn_free(p->buf);
        bn_free(p->x8);
        bn_free(p->xq);
        bn_free(p->xd);
    }
    bn_free(st->priv);
    bn_free(st->work);
    bn_model_state_profile(st, 0);
    bn_free(st);
}

void bn_model_state_reset(bn_model_state *st)
{
    st->pos = 0;
}

void bn_model_state_truncate(bn_model_state *st, int64_t pos)
{
    if (pos >= 0 && pos < st->pos) st->pos = pos;
}

int64_t bn_model_state_pos(const bn_model_state *st)
{
    return st->pos;
}

int64_t bn_model_state_n_ctx(const bn_model_state *st)
{
    return st->n_ctx;
}

size_t bn_model_state_kv_bytes(const bn_model_state *st)
{
    const bn_model_hparams *h = &st->m->hp;
    return (size_t)(h->n_layer * h->n_head_kv * h->head_dim) *
           ((size_t)st->n_ctx + v_ctx((size_t)st->n_ctx)) * st->kv_elt;
}

size_t bn_model_state_kv_bytes_read(const bn_model_state *st)
{
    const bn_model_hparams *h = &st->m->hp;
    return 2 * (size_t)(h->n_layer * h->n_head_kv * h->head_dim) * (size_t)(st->pos + 1) *
           st->kv_elt;
}

/* ---- building blocks -------------------------------------------------------------------- */

/* [*b, *e): thread tid's share of n items in multiples of grain (the last may be short). */
static void split(int64_t n, int64_t grain, int tid, int nth, int64_t *b, int64_t *e)
{
    const int64_t units = (n + grain - 1) / grain;
    const int64_t u0 = units * tid / nth, u1 = units * (tid + 1) / nth;
    *b = u0 * grain < n ? u0 * grain : n;
    *e = u1 * grain < n ? u1 * grain : n;
}

/* The next chunk [*b, *e) of n items in chunks of grain from counter c; 0 when none is
 * left. */
static int grab(atomic_int *c, int64_t n, int64_t grain, int64_t *b, int64_t *e)
{
    const int64_t u = atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    if (u >= (n + grain - 1) / grain) return 0;
    *b = u * grain;
    *e = *b + grain < n ? *b + grain : n;
    return 1;
}

void bn__model_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *y)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* g = act(g) * u for relu^2 (the scalar form of bn__model_relu2_mul_avx2). */
static void relu2_mul(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = g[i] > 0.0f ? g[i] : 0.0f;
        g[i] = (v * v) * u[i];
    }
}

/* g = SiLU(g) * u = g / (1 + e^-g) * u (bn__model_silu_mul_avx2 is its twin). */
static void silu_mul(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float bn__model_quantize_act(const float *x, int64_t n, int8_t *q, int32_t *sum)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax; /* a NaN is skipped, as fmaxf does */
    }
    const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
    const float magic = 12582912.0f; /* 1.5 * 2^23: v + magic - magic = rint(v), |v| < 2^22 */
    int32_t acc = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i] * s;
        float r = fabsf(v) <= 256.0f ? (v + magic) - magic : 0.0f; /* NaN (from inf) -> 0 */
        r = r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r;
        q[i] = (int8_t)r;
        acc += q[i];
    }
    *sum = acc;
    return s;
}

/* Rows [t0, t1) of x (n_tok x cols) normalized, RMSNorm(x) * w (w NULL: as they are), and
 * quantized into a (which holds the whole batch) as bn_qact_quantize does; tmp (the shape
 * of x, may be x) takes the normalized rows where that is two kernels. The padding of a's
 * rows stays zero from bn_qact_init. */
static void norm_quant_rows(const bn_model_state *st, const float *x, const float *w, float *tmp,
                            bn_qact *a, int64_t t0, int64_t t1)
{
    const int64_t n = a->cols;
    const float eps = st->m->hp.eps;
    for (int64_t t = t0; t < t1; t++) {
        const float *xt = x + t * n;
        int8_t *q = a->q + t * a->kpad;
        float s;
        if (st->norm_quant) {
            s = st->norm_quant(xt, w, n, eps, q, &a->sum[t]);
        } else {
            if (w) st->rmsnorm(xt, w, n, eps, tmp + t * n), xt = tmp + t * n;
            s = st->quantize(xt, n, q, &a->sum[t]);
        }
        a->inv_scale[t] = 1.0f / s;
    }
}

/* One thread's view of the forward task: the batch, the layer, and where the phases
 * find their inputs. */
typedef struct job {
    bn_model_state *st;
    const bn__layer *L;
    int64_t il;    /* layer */
    int64_t T;     /* tokens in the batch */
    int64_t pos0;  /* position of the first */
    int64_t n_gpu; /* the last n_gpu layers are left to the GPU (gpu_forward) */
    int no_head;   /* the LM head is left to the GPU, or to a later run */
    /* a batch of several sequences (bn_model_eval_batch): token t is the next one of
     * seqs[t], at position tpos[t], with its own KV cache; NULL: one sequence, st's */
    bn_model_state *const *seqs;
    const int64_t *tpos;
    float *const *louts; /* with seqs: where token t's logits go */
    bn_qact *qe;         /* the quantized input of q/k/v, o and gate/up */
    bn_qact *qf;         /* the quantized input of down */
    /* LM head */
    int64_t n_out;
    float *logits;
    const float *hn;         /* n_out normalized rows */
    const bn_block_q8_0 *x8; /* and quantized for a Q8_0 head */
    const int8_t *xq;
    const float *xd;
    const void *xg; /* the tokens in groups of 16 for head_rows_multi */
    prof_thr *pt;   /* this thread's profile counters, NULL when not profiling */
} job;

/* The time since this thread's last mark goes to class cls. */
static inline void prof_mark(const job *j, int cls)
{
    if (!j->pt) return;
    const double now = bn_time_now();
    j->pt->s[cls] += now - j->pt->last;
    j->pt->last = now;
}

/* The sequence (its state, with the KV cache) and the position of token t of the batch. */
static inline bn_model_state *tok_state(const job *j, int64_t t)
{
    return j->seqs ? j->seqs[t] : j->st;
}

static inline int64_t tok_pos(const job *j, int64_t t)
{
    return j->seqs ? j->tpos[t] : j->pos0 + t;
}

/* All threads of the forward task wait here until every one has arrived; the writes
 * before it are visible after it. Spins briefly, then yields the CPU, so that a thread
 * that was preempted (on a busy or oversubscribed machine) gets to run. */
static void barrier(bn_model_state *st, int nth)
{
    if (nth <= 1) return;
    const int ph = atomic_load_explicit(&st->bar_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&st->bar_count, 1, memory_order_acq_rel) == nth - 1) {
        atomic_store_explicit(&st->bar_count, 0, memory_order_relaxed);
        atomic_store_explicit(&st->bar_phase, ph + 1, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&st->bar_phase, memory_order_acquire) == ph;) {
        if (++spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

/* The time since the last mark to class cls, the barrier, its wait to BN_PROF_SYNC. */
static void mark_barrier(const job *j, int nth, int cls)
{
    prof_mark(j, cls);
    barrier(j->st, nth);
    prof_mark(j, BN_PROF_SYNC);
}

/* RMSNorm(src) * w per token, quantized: the next matmul's input; w NULL (a model without
 * sub-norms) quantizes src as it is. dst: room for the normalized rows (norm_quant_rows).
 * A one-token batch: every thread into its own buffers, no barrier. Otherwise the tokens
 * are split among the threads into the shared buffers, then a barrier. */
static bn_qact *norm_phase(job *j, const float *src, float *dst, const float *w, bn_qact *shared,
                           int ff, int tid, int nth)
{
    bn_model_state *st = j->st;
    if (j->T == 1) {
        tpriv *p = &st->priv[tid];
        bn_qact *qa = ff ? &p->qf : &p->qe;
        norm_quant_rows(st, src, w, p->buf, qa, 0, 1);
        prof_mark(j, BN_PROF_NORM);
        return qa;
    }
    int64_t t0, t1;
    split(j->T, 1, tid, nth, &t0, &t1);
    norm_quant_rows(st, src, w, dst, shared, t0, t1);
    mark_barrier(j, nth, BN_PROF_NORM);
    return shared;
}

/* Pairs [i, i + 8) of rope: a fixed count, which the compiler makes vector code of. */
static void rope8(float *restrict lo, float *restrict hi, const float *restrict c,
                  const float *restrict s)
{
    for (int k = 0; k < 8; k++) {
        const float x0 = lo[k], x1 = hi[k];
        lo[k] = x0 * c[k] - x1 * s[k];
        hi[k] = x0 * s[k] + x1 * c[k];
    }
}

/* NEOX RoPE on one head: pairs (i, i + n_rot/2) rotated by the angles in cs (the cosines,
 * then the sines). */
static void rope(float *x, const float *cs, int64_t n_rot)
{
    const int64_t half = n_rot / 2;
    int64_t i = 0;
    for (; i + 8 <= half; i += 8) rope8(x + i, x + half + i, cs + i, cs + half + i);
    for (; i < half; i++) {
        const float c = cs[i], s = cs[half + i];
        const float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x0 * s + x1 * c;
    }
}

/* A position's d values of one V head into the cache at element at, dimension i at at + 8 i
 * (v_at): converted to f16 a chunk at a time by the state's row converter (the one the K
 * rows go through), then spread out. */
static void store_v(const bn_model_state *st, const float *v, int64_t d, void *base, size_t at)
{
    enum { CHUNK = 64 };
    uint16_t h[CHUNK];
    for (int64_t i0 = 0; i0 < d; i0 += CHUNK) {
        const int64_t n = d - i0 < CHUNK ? d - i0 : CHUNK;
        const size_t a0 = at + (size_t)i0 * 8;
        if (st->kv_type == BN_TYPE_F16) {
            st->to_f16(v + i0, h, n);
            for (int64_t i = 0; i < n; i++) ((uint16_t *)base)[a0 + (size_t)i * 8] = h[i];
        } else {
            for (int64_t i = 0; i < n; i++) ((float *)base)[a0 + (size_t)i * 8] = v[i0 + i];
        }
    }
}

/* ---- the phases --------------------------------------------------------------------- */

/* The cache element of token t's K head g at position 0 and at its own position, and of its
 * V head g at position 0 and at its own (dimension 0; dimension i 8 i further, v_at), in
 * token t's own cache. */
static size_t k_head(const job *j, int64_t t, int64_t g)
{
    const bn_model_hparams *h = &j->st->m->hp;
    const size_t KV = (size_t)(h->n_head_kv * h->head_dim);
    return (size_t)j->il * (size_t)tok_state(j, t)->n_ctx * KV + (size_t)(g * h->head_dim);
}

static size_t k_at(const job *j, int64_t t, int64_t g)
{
    const bn_model_hparams *h = &j->st->m->hp;
    return k_head(j, t, g) + (size_t)tok_pos(j, t) * (size_t)(h->n_head_kv * h->head_dim);
}

static size_t v_head(const job *j, int64_t t, int64_t g)
{
    const bn_model_hparams *h = &j->st->m->hp;
    const size_t d = (size_t)h->head_dim, n_ctx = (size_t)tok_state(j, t)->n_ctx;
    return ((size_t)j->il * (size_t)h->n_head_kv + (size_t)g) * d * v_ctx(n_ctx);
}

static size_t vpos_at(const job *j, int64_t t, int64_t g)
{
    return v_at(v_head(j, t, g), (size_t)j->st->m->hp.head_dim, (size_t)tok_pos(j, t), 0);
}

/* Tokens of several sequences write their K (v 0) or V (v 1) head g into as many caches,
 * each a few lines that the pass through the weights has evicted since the last step:
 * those lines are asked for before the head's product, which then hides their wait. */
static void prefetch_kv(const job *j, int64_t g, int v)
{
    const bn_model_state *st = j->st;
    const size_t d = (size_t)st->m->hp.head_dim;
    const size_t span = (v ? (d - 1) * 8 + 1 : d) * st->kv_elt; /* bytes from the first */
    for (int64_t t = 0; j->seqs && t < j->T; t++) {
        const bn_model_state *ts = tok_state(j, t);
        const uintptr_t p = (uintptr_t)(v ? (const char *)ts->vc + vpos_at(j, t, g) * st->kv_elt
                                          : (const char *)ts->kc + k_at(j, t, g) * st->kv_elt);
        for (uintptr_t a = p & ~(uintptr_t)63; a < p + span; a += 64)
            __builtin_prefetch((const void *)a, 1, 3);
    }
}

/* Unit u of q | k | v (one head's rows of Wq, Wk or Wv, for all tokens): the product,
 * RoPE on q and k, k and v into the cache. */
static void qkv_unit(const job *j, int64_t u, bn__lowrank_z *zc)
{
    bn_model_state *st = j->st;
    const bn_model_hparams *h = &st->m->hp;
    const int64_t d = h->head_dim, nh = h->n_head, nkv = h->n_head_kv, KV = nkv * d;
    const int64_t E = h->n_embd;
    if (u < nh) {
        bn__lin_rows(st->m, j->L, BN__WQ, j->qe, st->q, E, u * d, (u + 1) * d, &zc[0]);
        prof_mark(j, BN_PROF_QKV);
        for (int64_t t = 0; t < j->T; t++)
            rope(st->q + t * E + u * d, st->cs + t * h->n_rot, h->n_rot);
        prof_mark(j, BN_PROF_ROPE);
        return;
    }
    if (u < nh + nkv) {
        const int64_t g = u - nh;
        prefetch_kv(j, g, 0);
        bn__lin_rows(st->m, j->L, BN__WK, j->qe, st->kx, KV, g * d, (g + 1) * d, &zc[1]);
        prof_mark(j, BN_PROF_QKV);
        for (int64_t t = 0; t < j->T; t++)
            rope(st->kx + t * KV + g * d, st->cs + t * h->n_rot, h->n_rot);
        prof_mark(j, BN_PROF_ROPE);
        for (int64_t t = 0; t < j->T; t++) {
            const float *kr = st->kx + t * KV + g * d;
            const bn_model_state *ts = tok_state(j, t);
            const size_t base = k_at(j, t, g);
            if (st->kv_type == BN_TYPE_F16)
                st->to_f16(kr, (uint16_t *)ts->kc + base, d);
            else
                memcpy((float *)ts->kc + base, kr, (size_t)d * sizeof(float));
        }
        prof_mark(j, BN_PROF_KV_STORE);
        return;
    }
    const int64_t g = u - nh - nkv;
    prefetch_kv(j, g, 1);
    bn__lin_rows(st->m, j->L, BN__WV, j->qe, st->vx, KV, g * d, (g + 1) * d, &zc[2]);
    prof_mark(j, BN_PROF_QKV);
    for (int64_t t = 0; t < j->T; t++)
        store_v(st, st->vx + t * KV + g * d, d, tok_state(j, t)->vc, vpos_at(j, t, g));
    prof_mark(j, BN_PROF_KV_STORE);
}

/* q, k, v by heads taken one at a time over [q | k | v]. */
static void task_qkv(void *arg, int tid, int nth)
{
    const job *j = arg;
    const bn_model_hparams *h = &j->st->m->hp;
    atomic_int *c = j->st->work + j->il * N_PHASES + PH_QKV;
    int64_t u, ue;
    (void)tid, (void)nth;
    bn__lowrank_z zc[3] = {{0}}; /* a x of q, k, v: once per thread for one token */
    while (grab(c, h->n_head + 2 * h->n_head_kv, 1, &u, &ue)) qkv_unit(j, u, zc);
}

/* Attention of token t, head hh: att = softmax(q K^T / sqrt(d)) V over positions
 * 0 .. pos0 + t. */
static void attend(const job *j, int64_t t, int64_t hh, float *s)
{
    bn_model_state *st = j->st;
    const bn_model_hparams *h = &st->m->hp;
    const bn_kernels *k = st->m->k;
    const int64_t d = h->head_dim, KV = h->n_head_kv * d;
    const int64_t g = hh / (h->n_head / h->n_head_kv);
    const int64_t n_keys = tok_pos(j, t) + 1;
    const float *q = st->q + t * h->n_embd + hh * d;
    const float scale = 1.0f / sqrtf((float)d);
    const bn_model_state *ts = tok_state(j, t);
    const size_t kbase = k_head(j, t, g), vbase = v_head(j, t, g);
    const int f16 = st->kv_type == BN_TYPE_F16;
    float mx = -INFINITY;
    for (int64_t p = 0; p < n_keys; p++) {
        const size_t at = kbase + (size_t)p * (size_t)KV;
        const float v = f16 ? k->dot_f16_f32((const uint16_t *)ts->kc + at, q, d)
                            : k->dot_f32((const float *)ts->kc + at, q, d);
        s[p] = v * scale;
        mx = s[p] > mx ? s[p] : mx;
    }
    float sum = 0.0f;
    for (int64_t p = 0; p < n_keys; p++) {
        s[p] = expf(s[p] - mx);
        sum += s[p];
    }
    const float inv = 1.0f / sum;
    for (int64_t p = 0; p < n_keys; p++) s[p] *= inv;
    float *out = st->att + t * h->n_embd + hh * d;
    void *row = s + st->s_stride; /* the thread's next scores row: dimension i's values */
    for (int64_t i = 0; i < d; i++) {
        for (int64_t p = 0; p < n_keys; p++) {
            const size_t at = v_at(vbase, (size_t)d, (size_t)p, (size_t)i);
            if (f16)
                ((uint16_t *)row)[p] = ((const uint16_t *)ts->vc)[at];
            else
                ((float *)row)[p] = ((const float *)ts->vc)[at];
        }
        out[i] = f16 ? k->dot_f16_f32(row, s, n_keys) : k->dot_f32(row, s, n_keys);
    }
}

/* The block of queries of heads [h0, h0 + nh) (one KV head's) and tokens [t0, t1), all of
 * one sequence. */
static void attend_block(const job *j, int64_t h0, int64_t nh, int64_t t0, int64_t t1, float *s)
{
    bn_model_state *st = j->st;
    const bn_model_state *ts = tok_state(j, t0);
    const bn_model_hparams *h = &st->m->hp;
    const int64_t d = h->head_dim, nkv = h->n_head_kv, E = h->n_embd;
    const int64_t g = h0 / (h->n_head / nkv);
    bn__attn_block a = {
            .k = (const uint8_t *)ts->kc + k_head(j, t0, g) * st->kv_elt,
            .k_stride = (size_t)(nkv * d),
            .v = (const uint8_t *)ts->vc + v_head(j, t0, g) * st->kv_elt,
            .v_stride = (size_t)d * 8,
            .f16 = st->kv_type == BN_TYPE_F16,
            .d = d,
            .scale = 1.0f / sqrtf((float)d),
            .s = s,
            .s_stride = st->s_stride,
    };
    for (int64_t t = t0; t < t1; t++)
        for (int64_t hh = h0; hh < h0 + nh; hh++) {
            a.n_keys[a.nq] = tok_pos(j, t) + 1;
            a.q[a.nq] = st->q + t * E + hh * d;
            a.out[a.nq] = st->att + t * E + hh * d;
            a.nq++;
        }
    st->attn(&a);
}

/* The K and V lines that token t's attention over KV head g reads (its positions 0 .. its
 * own), asked for a block ahead when one thread takes the blocks in order (split_forward):
 * a sequence's cache was evicted by the pass through the weights since its last step.
 * Into L2 (locality 2, prefetcht1): a block's few hundred lines asked into L1 wait for
 * its miss buffers, and no sooner (cold blocks of 48 keys: 3.8 us each either way
 * against 3.0 into L2). (With several threads taking blocks, the next block is likely
 * another thread's.) */
static void prefetch_history(const job *j, int64_t t, int64_t g)
{
    const bn_model_state *st = j->st, *ts = tok_state(j, t);
    const size_t d = (size_t)st->m->hp.head_dim, KV = (size_t)st->m->hp.n_head_kv * d;
    const size_t n = (size_t)tok_pos(j, t) + 1, e = st->kv_elt;
    const uintptr_t k = (uintptr_t)ts->kc + k_head(j, t, g) * e;
    for (size_t p = 0; p < n; p++) {
        const uintptr_t r = k + p * KV * e;
        for (uintptr_t a = r & ~(uintptr_t)63; a < r + d * e; a += 64)
            __builtin_prefetch((const void *)a, 0, 2);
    }
    const uintptr_t v = (uintptr_t)ts->vc + v_head(j, t, g) * e;
    for (uintptr_t a = v & ~(uintptr_t)63; a < v + (n + 7) / 8 * 8 * d * e; a += 64)
        __builtin_prefetch((const void *)a, 0, 2);
}

/* Attention by blocks of queries that share a KV head: hpu of a group's heads times tpu
 * tokens (at most BN__ATTN_NQ queries), units taken in order (later tokens, which see
 * more keys, last). A group's K and V are read once per block, so one token keeps its
 * groups whole even when they do not divide among the threads. */
static void attn_blocks(const job *j, int tid, int nth)
{
    const bn_model_hparams *h = &j->st->m->hp;
    const int64_t nkv = h->n_head_kv, hpg = h->n_head / nkv;
    int64_t hpu = hpg < BN__ATTN_NQ ? hpg : BN__ATTN_NQ;
    while (hpg % hpu) hpu--;
    /* tokens of several sequences read different caches: one token per block then */
    const int64_t tpu = j->seqs ? 1 : BN__ATTN_NQ / hpu, per_tb = nkv * (hpg / hpu);
    const int64_t units = (j->T + tpu - 1) / tpu * per_tb;
    float *s = j->st->scores + (size_t)tid * BN__ATTN_NQ * j->st->s_stride;
    atomic_int *c = j->st->work + j->il * N_PHASES + PH_ATTN;
    int64_t u, ue;
    while (grab(c, units, 1, &u, &ue)) {
        const int64_t t0 = u / per_tb * tpu, t1 = t0 + tpu < j->T ? t0 + tpu : j->T;
        if (nth == 1 && j->seqs && u + 1 < units)
            prefetch_history(j, (u + 1) / per_tb, (u + 1) % per_tb * hpu / hpg);
        attend_block(j, u % per_tb * hpu, hpu, t0, t1, s);
    }
}

/* (token, head) pairs taken one at a time, in order. */
static void task_attn(void *arg, int tid, int nth)
{
    const job *j = arg;
    if (j->st->attn) {
        attn_blocks(j, tid, nth);
        return;
    }
    const int64_t nh = j->st->m->hp.n_head;
    float *s = j->st->scores + (size_t)tid * BN__ATTN_NQ * j->st->s_stride;
    atomic_int *c = j->st->work + j->il * N_PHASES + PH_ATTN;
    int64_t u, ue;
    while (grab(c, j->T * nh, 1, &u, &ue)) attend(j, u / nh, u % nh, s);
}

/* Rows per chunk of a phase's matrix: long enough streams for a GEMV (160 KB of codes
 * at K = 2560), short enough to even out; whole GEMM row blocks for a batch. */
#define GEMV_CHUNK 256
#define GEMM_CHUNK 96
/* A thread alone on the matrix (a share of split_forward, or a pool of one): nothing to
 * even out, so longer runs (one share of a 16-sequence step, 8 sequences on 1 thread,
 * chunk sizes alternating in one process: 96 -> 256 rows 109.8 -> 106.4 and 111.7 ->
 * 108.7 ms, mostly gate/up and o; 256 -> 512 another 0.5-1 ms) */
#define GEMM_CHUNK_ALONE 512

/* Rows per chunk of a phase's matrix for T tokens on nth threads. */
static int64_t chunk_rows(int64_t T, int nth)
{
    return T == 1 ? GEMV_CHUNK : nth == 1 ? GEMM_CHUNK_ALONE : GEMM_CHUNK;
}

/* x += y over n values (x and y apart), 8 at a time: a fixed count the compiler turns into
 * vector adds without AVX flags (a loop of any count it leaves scalar at -O2); st->add
 * (bn__model_add_avx512 where the CPU has it). */
static void add_row(float *restrict x, const float *restrict y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) x[i + k] += y[i + k];
    for (; i < n; i++) x[i] += y[i];
}

/* x += a W (W is wo or wdown, a in qa), by chunks of rows. */
static void residual_matmul(const job *j, int which, int phase, int cls, const bn_qact *qa, int nth)
{
    bn_model_state *st = j->st;
    const int64_t E = st->m->hp.n_embd; /* the rows of wo and wdown */
    atomic_int *c = st->work + j->il * N_PHASES + phase;
    int64_t r0, r1;
    bn__lowrank_z zc = {0}; /* a x: once per thread for one token */
    while (grab(c, E, chunk_rows(j->T, nth), &r0, &r1)) {
        bn__lin_rows(st->m, j->L, which, qa, st->y, E, r0, r1, &zc);
        prof_mark(j, cls);
        for (int64_t t = 0; t < j->T; t++) st->add(st->x + t * E + r0, st->y + t * E + r0, r1 - r0);
        prof_mark(j, BN_PROF_ELTWISE);
    }
}

static void task_o(void *arg, int tid, int nth)
{
    const job *j = arg;
    (void)tid;
    residual_matmul(j, BN__WO, PH_O, BN_PROF_O, j->qe, nth);
}

static void task_down(void *arg, int tid, int nth)
{
    const job *j = arg;
    (void)tid;
    residual_matmul(j, BN__WDOWN, PH_DOWN, BN_PROF_DOWN, j->qf, nth);
}

/* gate = act(h Wgate) * (h Wup) for rows [r0, r1). */
static void gate_up_rows(const job *j, int64_t r0, int64_t r1, bn__lowrank_z *zc)
{
    bn_model_state *st = j->st;
    const int64_t F = st->m->hp.n_ff;
    bn__lin_rows(st->m, j->L, BN__WGATE, j->qe, st->gate, F, r0, r1, &zc[0]);
    bn__lin_rows(st->m, j->L, BN__WUP, j->qe, st->up, F, r0, r1, &zc[1]);
    prof_mark(j, BN_PROF_GATE_UP);
    for (int64_t t = 0; t < j->T; t++)
        st->act_mul(st->gate + t * F + r0, st->up + t * F + r0, r1 - r0);
    prof_mark(j, BN_PROF_ELTWISE);
}

static void task_gate_up(void *arg, int tid, int nth)
{
    const job *j = arg;
    atomic_int *c = j->st->work + j->il * N_PHASES + PH_GATE_UP;
    int64_t r0, r1;
    bn__lowrank_z zc[2] = {{0}}; /* a x of gate and up: once per thread for one token */
    (void)tid;
    while (grab(c, j->st->m->hp.n_ff, chunk_rows(j->T, nth), &r0, &r1)) gate_up_rows(j, r0, r1, zc);
}

void bn__head_q8_rows_ref(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                          const int8_t *xq, const float *xd, float *y)
{
    const int64_t nb = E / BN_QK8_0;
    for (int64_t r = r0; r < r1; r++) {
        float s = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *w = qs + bn__head_block_offset(E, r, b), *x = xq + b * BN_QK8_0;
            int32_t sumi = 0;
            for (int k = 0; k < BN_QK8_0; k++) sumi += (int32_t)w[k] * (int32_t)x[k];
            s += (float)sumi * (bn_f16_to_f32(d[r * nb + b]) * xd[b]);
        }
        y[r] = s;
    }
}

void bn__head_u8_rows_ref(const int8_t *qs, const uint16_t *d, int64_t E, int64_t r0, int64_t r1,
                          const int8_t *xq, const float *xd, float *y)
{
    const int64_t nb = E / BN_QK8_0;
    for (int64_t r = r0; r < r1; r++) {
        float acc = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *x = xq + b * BN_QK8_0;
            int32_t sumi = 0;
            for (int k = 0; k < BN_QK8_0; k++) {
                const uint8_t w = (uint8_t)qs[bn__head_u8_offset(E, r, b * BN_QK8_0 + k)];
                sumi += ((int32_t)w - 128) * (int32_t)x[k];
            }
            const float dx = bn_f16_to_f32(d[bn__head_d16_index(nb, r, b)]) * xd[b];
            acc = fmaf((float)sumi, dx, acc);
        }
        y[r] = acc;
    }
}

/* logits[i][r] for vocabulary rows r in chunks of HEAD_CHUNK and the n_out normalized
 * rows in h, 64 rows at a time for all tokens, so that the rows stay in cache across
 * tokens. */
#define HEAD_CHUNK 1024

/* What head_rows and head_rows_multi take: the split Q8_0 values, or the Q6H / Q4H lanes. */
static inline const int8_t *head_weights(const bn_model *m)
{
    return m->head_qs ? m->head_qs : (const int8_t *)m->head_blk;
}

static void head_rows(const job *j, int64_t r0, int64_t r1)
{
    const bn_model *m = j->st->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab, nb = E / BN_QK8_0;
    for (int64_t c0 = r0; c0 < r1; c0 += 64) {
        const int64_t c1 = c0 + 64 < r1 ? c0 + 64 : r1;
#if defined(__x86_64__) || defined(__i386__)
        if (m->head_rows_multi && j->n_out > 1) { /* the tokens share rows, 16 at a time */
            const size_t gb = bn__head_group_bytes(E);
            float *ys[16];
            for (int64_t i0 = 0; i0 < j->n_out; i0 += 16) {
                const int n = j->n_out - i0 < 16 ? (int)(j->n_out - i0) : 16;
                for (int i = 0; i < n; i++)
                    ys[i] = j->louts ? j->louts[i0 + i] : j->logits + (i0 + i) * V;
                m->head_rows_multi(head_weights(m), m->head_d, E, c0, c1,
                                   (const char *)j->xg + (size_t)(i0 / 16) * gb, n, ys);
            }
            continue;
        }
#endif
        for (int64_t i = 0; i < j->n_out; i++) {
            float *y = j->louts ? j->louts[i] : j->logits + i * V;
            if (m->head_rows) {
                m->head_rows(head_weights(m), m->head_d, E, c0, c1, j->xq + i * E, j->xd + i * nb,
                             y);
                continue;
            }
            for (int64_t r = c0; r < c1; r++) {
                const void *row = (const uint8_t *)m->head + (size_t)r * m->head_row_bytes;
                if (m->hp.head_type == BN_TYPE_F16)
                    y[r] = m->k->dot_f16_f32(row, j->hn + i * E, E);
                else if (m->hp.head_type == BN_TYPE_F32)
                    y[r] = m->k->dot_f32(row, j->hn + i * E, E);
                else if (m->hp.head_type == BN_MODEL_HEAD_Q6H)
                    y[r] = m->k->dot_q6h_q8(row, j->xq + i * E, j->xd + i * nb, E);
                else if (m->hp.head_type == BN_MODEL_HEAD_Q4H)
                    y[r] = m->k->dot_q4h_q8(row, j->xq + i * E, j->xd + i * nb, E);
                else
                    y[r] = m->k->dot_q8_0(row, j->x8 + i * nb, E);
            }
        }
    }
}

static void task_head(void *arg, int tid, int nth)
{
    const job *j = arg;
    const bn_model *m = j->st->m;
    atomic_int *c = j->st->work + m->hp.n_layer * N_PHASES;
    int64_t r0, r1;
    (void)tid, (void)nth;
    while (grab(c, m->hp.n_vocab, HEAD_CHUNK, &r0, &r1)) head_rows(j, r0, r1);
}

/* ---- profiling ---------------------------------------------------------------------- */

/* After a batch: the caller's own work (embeddings from t_start to t_embed, then the RoPE
 * angles and the setup to t0) at its wall time; each thread's counters (its tail, from its
 * last mark to the join, as waiting) averaged over the threads that ran; then zeroed. */
static void prof_fold(bn_model_state *st, int64_t T, double t_start, double t_embed)
{
    prof *pf = st->prof;
    const double now = bn_time_now();
    const int nth = st->pool ? bn_pool_active(st->pool) : 1;
    pf->tot.seconds[BN_PROF_EMBED] += t_embed - t_start;
    pf->tot.seconds[BN_PROF_ROPE] += pf->t0 - t_embed;
    for (int t = 0; t < nth; t++) {
        prof_thr *p = (prof_thr *)(pf->thr + (size_t)t * PROF_STRIDE);
        p->s[BN_PROF_SYNC] += now - p->last;
        for (int c = 0; c < BN_PROF_N; c++) {
            pf->tot.seconds[c] += p->s[c] / nth;
            p->s[c] = 0.0;
        }
    }
    pf->tot.wall += now - t_start;
    pf->tot.evals++;
    pf->tot.tokens += T;
}

bn_status bn_model_state_profile(bn_model_state *st, int on)
{
    if (!on || st->prof) {
        if (!on && st->prof) {
            bn_free(st->prof->thr);
            bn_free(st->prof);
            st->prof = NULL;
        }
        if (st->prof) bn_model_state_profile_reset(st);
        return BN_OK;
    }
    prof *pf = bn_calloc(1, sizeof *pf);
    if (pf) pf->thr = bn_calloc((size_t)st->nth, PROF_STRIDE);
    if (!pf || !pf->thr) {
        bn_free(pf);
        return bn_ctx_set_error(st->m->ctx, BN_ERR_NOMEM, "out of memory (profile)");
    }
    st->prof = pf;
    return BN_OK;
}

void bn_model_state_profile_get(const bn_model_state *st, bn_model_profile *out)
{
    if (st->prof)
        *out = st->prof->tot;
    else
        memset(out, 0, sizeof *out);
}

void bn_model_state_profile_reset(bn_model_state *st)
{
    if (st->prof) memset(&st->prof->tot, 0, sizeof st->prof->tot);
}

/* ---- evaluation --------------------------------------------------------------------- */

static void embed(bn_model_state *st, const int32_t *tokens, int64_t T)
{
    const bn_model *m = st->m;
    const int64_t E = m->hp.n_embd;
    for (int64_t t = 0; t < T; t++) {
        const uint8_t *row = (const uint8_t *)m->embd + (size_t)tokens[t] * m->embd_row_bytes;
        float *x = st->x + t * E;
        if (m->hp.embd_type == BN_TYPE_F32)
            memcpy(x, row, (size_t)E * sizeof(float));
        else if (m->hp.embd_type == BN_TYPE_F16)
            bn_f16_to_f32_row(row, x, E);
        else
            bn_dequantize_row_q8_0((const bn_block_q8_0 *)row, x, E);
    }
}

static void rope_angles(bn_model_state *st, const job *j)
{
    const int64_t n_rot = st->m->hp.n_rot;
    for (int64_t t = 0; t < j->T; t++) {
        float *cs = st->cs + t * n_rot;
        for (int64_t i = 0; i < n_rot / 2; i++) {
            const double a = (double)tok_pos(j, t) * (double)st->inv_freq[i];
            cs[i] = (float)cos(a);
            cs[n_rot / 2 + i] = (float)sin(a);
        }
    }
}

static void layer_forward(job *j, int tid, int nth)
{
    bn_model_state *st = j->st;
    const bn__layer *L = j->L;
    j->qe = norm_phase(j, st->x, st->h, L->attn_norm, &st->qe, 0, tid, nth);
    task_qkv(j, tid, nth);
    mark_barrier(j, nth, BN_PROF_QKV);
    task_attn(j, tid, nth);
    mark_barrier(j, nth, BN_PROF_ATTN);
    j->qe = norm_phase(j, st->att, st->att, L->attn_sub_norm, &st->qe, 0, tid, nth);
    task_o(j, tid, nth);
    mark_barrier(j, nth, BN_PROF_O);
    j->qe = norm_phase(j, st->x, st->h, L->ffn_norm, &st->qe, 0, tid, nth);
    task_gate_up(j, tid, nth);
    mark_barrier(j, nth, BN_PROF_GATE_UP);
    j->qf = norm_phase(j, st->gate, st->gate, L->ffn_sub_norm, &st->qf, 1, tid, nth);
    task_down(j, tid, nth);
    mark_barrier(j, nth, BN_PROF_DOWN);
}

/* The final norm of a token's x into hn, and its Q8_0 form for a Q8_0, Q6H or Q4H head. */
static void head_input(const bn_model *m, const float *x, float *hn, bn_block_q8_0 *x8, int8_t *xq,
                       float *xd)
{
    const int64_t E = m->hp.n_embd, nb = E / BN_QK8_0;
    bn__model_rmsnorm(x, m->output_norm, E, m->hp.eps, hn);
    if (!bn__head_q8_input(m->hp.head_type)) return;
    bn__model_q8_0_row_fn(m->k)(hn, x8, E);
    for (int64_t b = 0; b < nb && (m->head_rows || m->head_blk); b++) {
        memcpy(xq + b * BN_QK8_0, x8[b].qs, BN_QK8_0);
        xd[b] = bn_f16_to_f32(x8[b].d);
    }
}

/* The final norm and the LM head for tokens [T - n_out, T) of the batch: for one token
 * every thread prepares its own input; otherwise the tokens are split, then a barrier. */
static void head_forward(job *j, int tid, int nth)
{
    bn_model_state *st = j->st;
    const bn_model *m = st->m;
    const int64_t E = m->hp.n_embd, nb = E / BN_QK8_0, first = j->T - j->n_out;
    if (j->n_out == 1) {
        tpriv *p = &st->priv[tid];
        head_input(m, st->x + first * E, p->buf, p->x8, p->xq, p->xd);
        j->hn = p->buf;
        j->x8 = p->x8;
        j->xq = p->xq;
        j->xd = p->xd;
    } else {
        int64_t i0, i1;
        split(j->n_out, 1, tid, nth, &i0, &i1);
        for (int64_t i = i0; i < i1; i++)
            head_input(m, st->x + (first + i) * E, st->h + i * E, st->x8 + i * nb, st->xq + i * E,
                       st->xd + i * nb);
        mark_barrier(j, nth, BN_PROF_HEAD);
        j->hn = st->h;
        j->x8 = st->x8;
        j->xq = st->xq;
        j->xd = st->xd;
#if defined(__x86_64__) || defined(__i386__)
        if (m->head_rows_multi) { /* the tokens in groups of 16 for its kernel */
            const int64_t ng = (j->n_out + 15) / 16;
            const size_t gb = bn__head_group_bytes(E);
            int64_t g0, g1;
            split(ng, 1, tid, nth, &g0, &g1);
            for (int64_t g = g0; g < g1; g++) {
                const int nt = j->n_out - g * 16 < 16 ? (int)(j->n_out - g * 16) : 16;
                bn__head_group_prep(E, st->xq + g * 16 * E, st->xd + g * 16 * nb, nt,
                                    (char *)st->xg + (size_t)g * gb);
            }
            mark_barrier(j, nth, BN_PROF_HEAD);
            j->xg = st->xg;
        }
#endif
    }
    task_head(j, tid, nth);
    prof_mark(j, BN_PROF_HEAD);
}

/* The whole batch on every thread of the pool, one bn_pool_run; its phases are
 * separated by barriers. */
static void task_forward(void *arg, int tid, int nth)
{
    job j = *(const job *)arg; /* this thread's copy */
    const bn_model *m = j.st->m;
    if (j.st->prof) { /* the time since the pool was started: waking up */
        j.pt = (prof_thr *)(j.st->prof->thr + (size_t)tid * PROF_STRIDE);
        j.pt->last = j.st->prof->t0;
        prof_mark(&j, BN_PROF_SYNC);
    }
    for (int64_t il = 0; il < m->hp.n_layer - j.n_gpu; il++) {
        j.il = il;
        j.L = &m->layers[il];
        layer_forward(&j, tid, nth);
    }
    if (j.n_out > 0 && !j.no_head) head_forward(&j, tid, nth);
}

/* The batch's token count in st's activations, its barrier and its phases' counters from
 * zero: st's scratch is about to take a batch of T tokens. */
static void start_batch(bn_model_state *st, int64_t T)
{
    st->qe.n_tok = st->qf.n_tok = T;
    atomic_store(&st->bar_count, 0);
    for (int64_t i = 0; i <= st->m->hp.n_layer * N_PHASES; i++)
        atomic_store_explicit(&st->work[i], 0, memory_order_relaxed);
}

/* One batch of T <= n_batch tokens: of one sequence at pos0 (j->seqs NULL; the logits of
 * its last n_out tokens), or the next token of each of T sequences (logits of all). */
static void batch_forward(bn_model_state *st, const int32_t *tokens, job j)
{
    const int64_t T = j.T;
    prof *pf = st->prof;
    const double t_start = pf ? bn_time_now() : 0.0;
    embed(st, tokens, T);
    const double t_embed = pf ? bn_time_now() : 0.0;
    rope_angles(st, &j);
    start_batch(st, T);
    if (pf) pf->t0 = bn_time_now();
    bn_pool_run(st->pool, task_forward, &j);
    if (pf) prof_fold(st, T, t_start, t_embed);
    if (j.seqs) /* a sequence's tokens are in order of position: its last one is last */
        for (int64_t t = 0; t < T; t++) j.seqs[t]->pos = j.tpos[t] + 1;
    else
        st->pos = j.pos0 + T;
}

/* Tokens a thread takes at least for split_forward: with fewer, each thread's own pass
 * through the weights would cost more than the barriers it saves. */
#define SPLIT_MIN 8
#define MAX_SPLIT 64 /* threads (more: the pass goes the shared way) */

/* Whether the batch of n_seq sequences, T tokens, goes through split_forward: one token a
 * sequence (the decode steps of a server's slots), at least SPLIT_MIN a thread, every
 * share's first state with room for its share, and no profile (which follows one pool). */
static int split_ok(bn_model_state *const *sts, int64_t n_seq, int64_t T)
{
    const int nth = sts[0]->pool ? bn_pool_active(sts[0]->pool) : 1;
    if (nth < 2 || nth > MAX_SPLIT || T != n_seq || n_seq < (int64_t)SPLIT_MIN * nth) return 0;
    for (int k = 0; k < nth; k++) {
        const bn_model_state *lead = sts[n_seq * k / nth];
        if (lead->prof || lead->n_batch < n_seq * (k + 1) / nth - n_seq * k / nth) return 0;
    }
    return 1;
}

/* Thread k of split_forward: the whole forward of its share, alone (no barrier). */
static void task_split(void *arg, int tid, int nth)
{
    (void)nth;
    task_forward((job *)arg + tid, 0, 1);
}

/* The decode step of many sequences shared out by sequences, not by rows: each thread
 * runs the whole forward of its share of them with the scratch of the share's first
 * state, so that no phase waits at a barrier for the other threads and every activation
 * stays on the core that made it. With rows shared out, each of a layer's nine phases
 * ends at a barrier, and a thread that other work preempts (a server's connection
 * threads, its clients) holds the others up at each: on a loaded 2-core machine a
 * 16-sequence step took 204 ms that way against 164 split; with nothing else running
 * (the threads at real-time priority) both took ~110 ms. Each thread reads all the
 * weights; with SPLIT_MIN tokens a thread the products still wait on the multiply-adds,
 * not on memory. The logits are each sequence's own, to the bit, as in batch_forward. */
static void split_forward(bn_model_state *const *sts, int64_t n_seq, const int32_t *tok,
                          bn_model_state **seqs, const int64_t *tpos, float *const *logits)
{
    job parts[MAX_SPLIT];
    const int nth = bn_pool_active(sts[0]->pool);
    for (int k = 0; k < nth; k++) {
        const int64_t b = n_seq * k / nth, e = n_seq * (k + 1) / nth;
        bn_model_state *st = sts[b];
        parts[k] = (job){.st = st,
                         .T = e - b,
                         .n_out = e - b,
                         .seqs = seqs + b,
                         .tpos = tpos + b,
                         .louts = logits + b};
        embed(st, tok + b, e - b);
        rope_angles(st, &parts[k]);
        start_batch(st, e - b);
    }
    bn_pool_run(sts[0]->pool, task_split, parts);
    for (int64_t t = 0; t < n_seq; t++) seqs[t]->pos = tpos[t] + 1;
}

static bn_status check_eval(bn_model_state *st, const int32_t *tokens, int64_t n, int64_t pos,
                            int64_t n_logits, const float *logits)
{
    bn_ctx *ctx = st->m->ctx;
    if (n < 1 || !tokens)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "nothing to evaluate (%lld tokens)",
                                (long long)n);
    if (pos < 0 || pos > st->pos)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "position %lld is past the %lld tokens in the cache",
                                (long long)pos, (long long)st->pos);
    if (n > st->n_ctx - pos)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                "context overflow: %lld tokens at position %lld exceed the "
                                "context of %lld tokens",
                                (long long)n, (long long)pos, (long long)st->n_ctx);
    if (n_logits < 0 || n_logits > n || (n_logits > 0 && !logits))
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "logits for %lld of %lld tokens",
                                (long long)n_logits, (long long)n);
    const int64_t V = st->m->hp.n_vocab;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                    "token id %ld at index %lld is out of range [0, %lld)",
                                    (long)tokens[i], (long long)i, (long long)V);
    return BN_OK;
}

/* ---- partial offload (-ngl): the last layers on the GPU ------------------------------- */

/* cpu_layers, the last response to GPU memory pressure: st runs every layer on the CPU from
 * now on, with its own cache at its first context. */
static void gpu_fallback(bn_model_state *st, int64_t n)
{
    char what[200];
    snprintf(what, sizeof what,
             "no room for the KV cache of %lld tokens: layers %lld to %lld of a "
             "sequence on the CPU",
             (long long)n, (long long)st->l_gpu, (long long)st->m->hp.n_layer - 1);
    bn_gpu_pool_note_pressure(bn_cuda_pool(st->gpu), BN_GPU_PRESSURE_CPU_LAYERS, what);
    bn_cuda_seq_free(st->gseq);
    st->gseq = NULL;
    st->l_gpu = st->m->hp.n_layer;
    st->n_ctx = st->n_ctx_cpu;
}

/* Before an evaluation of n tokens from position 0 without a GPU cache (the first, or after
 * an eviction): the cache, at the state's first context or as the pool's pressure responses
 * leave it, the context following; past them, gpu_fallback. */
static bn_status gpu_take_cache(bn_model_state *st, int64_t n)
{
    const bn_status rc = bn_cuda_seq_take(st->gseq, n);
    if (rc == BN_ERR_NOMEM)
        gpu_fallback(st, n);
    else if (rc == BN_OK)
        st->n_ctx = bn_cuda_seq_n_ctx(st->gseq);
    return rc == BN_ERR_NOMEM ? BN_OK : rc;
}

/* One batch with layers [l_gpu, n_layer) on the GPU: the first layers on the CPU
 * (batch_forward without the head), x across and back once, then the LM head on the
 * CPU unless the GPU has it. */
static bn_status gpu_forward(bn_model_state *st, const int32_t *tokens, job j)
{
    const int64_t L = st->m->hp.n_layer, n_out = j.n_out;
    const int gpu_head = bn_cuda_has_head(st->gpu) && n_out > 0;
    j.n_gpu = L - st->l_gpu;
    j.no_head = 1;
    batch_forward(st, tokens, j);
    const bn_status rc = bn_cuda_seq_forward(st->gseq, st->x, j.T, j.pos0, gpu_head ? n_out : 0,
                                             gpu_head ? j.logits : NULL);
    if (rc != BN_OK) {
        st->pos = bn_cuda_seq_pos(st->gseq) < j.pos0 ? bn_cuda_seq_pos(st->gseq) : j.pos0;
        return rc;
    }
    if (n_out > 0 && !gpu_head) { /* the head alone, on x from the GPU */
        j.n_gpu = L;
        j.no_head = 0;
        atomic_store(&st->bar_count, 0);
        atomic_store_explicit(&st->work[L * N_PHASES], 0, memory_order_relaxed);
        bn_pool_run(st->pool, task_forward, &j);
    }
    return BN_OK;
}

int64_t bn_model_state_gpu_layers(const bn_model_state *st)
{
    return st->gseq ? st->m->hp.n_layer - st->l_gpu : 0;
}

int bn_model_state_gpu_resident(const bn_model_state *st)
{
    return st->gseq && bn_cuda_seq_resident(st->gseq);
}

size_t bn_model_state_gpu_evict(bn_model_state *st)
{
    if (!st->gseq || !bn_cuda_seq_resident(st->gseq)) return 0;
    st->pos = 0;
    return bn_cuda_seq_evict(st->gseq);
}

bn_status bn_model_eval(bn_model_state *st, const int32_t *tokens, int64_t n, int64_t pos,
                        int64_t n_logits, float *logits)
{
    BN_ASSERT(st);
    bn_status rc = check_eval(st, tokens, n, pos, n_logits, logits);
    if (rc == BN_OK && st->gseq && !bn_cuda_seq_resident(st->gseq)) rc = gpu_take_cache(st, n);
    if (rc != BN_OK) return rc;
    const int64_t V = st->m->hp.n_vocab, first_out = n - n_logits;
    for (int64_t b0 = 0; b0 < n; b0 += st->n_batch) {
        const int64_t T = n - b0 < st->n_batch ? n - b0 : st->n_batch;
        /* tokens of this batch whose logits are wanted: [max(b0, first_out), b0 + T) */
        const int64_t o0 = first_out > b0 ? first_out : b0;
        const int64_t n_out = b0 + T > o0 ? b0 + T - o0 : 0;
        float *out = n_out ? logits + (size_t)(o0 - first_out) * (size_t)V : NULL;
        const job j = {.st = st, .T = T, .pos0 = pos + b0, .n_out = n_out, .logits = out};
        if (!st->gseq)
            batch_forward(st, tokens + b0, j);
        else if ((rc = gpu_forward(st, tokens + b0, j)) != BN_OK)
            return rc;
    }
    return BN_OK;
}

/* Several sequences of one model, each with its next tokens: same model, cache size and
 * type, each state once, every token in range and in the cache, all in one batch. */
static bn_status check_eval_batch(bn_model_state *const *sts, int64_t n_seq,
                                  const int32_t *const *tokens, const int64_t *n_tok,
                                  float *const *logits, int64_t *total)
{
    bn_model_state *st = sts[0];
    bn_ctx *ctx = st->m->ctx;
    *total = 0;
    for (int64_t i = 0; i < n_seq; i++) {
        const bn_model_state *o = sts[i];
        if (!o || !logits[i] || !tokens[i] || n_tok[i] < 1 || o->m != st->m ||
            o->n_ctx != st->n_ctx || o->kv_type != st->kv_type)
            return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                    "sequence %lld of the batch: another model, cache size or "
                                    "cache type, no tokens or no logits",
                                    (long long)i);
        for (int64_t k = 0; k < i; k++)
            if (sts[k] == o)
                return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                        "sequences %lld and %lld of the batch are one state",
                                        (long long)k, (long long)i);
        if (n_tok[i] > o->n_ctx - o->pos)
            return bn_ctx_set_error(ctx, BN_ERR_RANGE,
                                    "context overflow: sequence %lld holds %lld of %lld tokens "
                                    "and gets %lld more",
                                    (long long)i, (long long)o->pos, (long long)o->n_ctx,
                                    (long long)n_tok[i]);
        for (int64_t t = 0; t < n_tok[i]; t++)
            if (tokens[i][t] < 0 || tokens[i][t] >= st->m->hp.n_vocab)
                return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                        "token id %ld of sequence %lld is out of range [0, %lld)",
                                        (long)tokens[i][t], (long long)i,
                                        (long long)st->m->hp.n_vocab);
        *total += n_tok[i];
    }
    if (*total > st->n_batch)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID,
                                "%lld tokens in one batch: more than its %lld (n_batch)",
                                (long long)*total, (long long)st->n_batch);
    return BN_OK;
}

/* The sequences of a batch one after the other, for states with GPU layers. */
static bn_status eval_each(bn_model_state *const *sts, int64_t n_seq, const int32_t *const *tokens,
                           const int64_t *n_tok, float *const *logits)
{
    for (int64_t i = 0; i < n_seq; i++) {
        if (!sts[i] || sts[i]->m != sts[0]->m)
            return bn_ctx_set_error(sts[0]->m->ctx, BN_ERR_INVALID,
                                    "sequence %lld of the batch: another model", (long long)i);
        const bn_status rc = bn_model_eval(sts[i], tokens[i], n_tok[i], sts[i]->pos, 1, logits[i]);
        if (rc != BN_OK) return rc;
    }
    return BN_OK;
}

bn_status bn_model_eval_batch(bn_model_state *const *sts, int64_t n_seq,
                              const int32_t *const *tokens, const int64_t *n_tok,
                              float *const *logits)
{
    BN_ASSERT(sts && tokens && n_tok && logits);
    if (n_seq < 1 || !sts[0]) return BN_ERR_INVALID;
    if (n_seq == 1) /* alone: bn_model_eval splits it by n_batch */
        return bn_model_eval(sts[0], tokens[0], n_tok[0], sts[0]->pos, 1, logits[0]);
    for (int64_t i = 0; i < n_seq; i++)
        if (sts[i] && sts[i]->gseq) /* -ngl: one sequence at a time (its own GPU cache) */
            return eval_each(sts, n_seq, tokens, n_tok, logits);
    int64_t T;
    bn_status rc = check_eval_batch(sts, n_seq, tokens, n_tok, logits, &T);
    if (rc != BN_OK) return rc;
    /* the batch: every sequence's tokens but its last, then the last one of each (in
     * sequence order), whose logits the head computes; the order within a pass does not
     * matter, as every K and V is in the caches before attention reads them */
    int32_t *tok = bn_malloc((size_t)T * sizeof *tok);
    int64_t *tpos = bn_malloc((size_t)T * sizeof *tpos);
    bn_model_state **seqs = bn_malloc((size_t)T * sizeof *seqs);
    if (!tok || !tpos || !seqs) {
        bn_free(tok), bn_free(tpos), bn_free(seqs);
        return bn_ctx_set_error(sts[0]->m->ctx, BN_ERR_NOMEM, "out of memory (batch)");
    }
    int64_t at = 0;
    for (int64_t i = 0; i < n_seq; i++)
        for (int64_t t = 0; t + 1 < n_tok[i]; t++, at++)
            tok[at] = tokens[i][t], tpos[at] = sts[i]->pos + t, seqs[at] = sts[i];
    for (int64_t i = 0; i < n_seq; i++, at++)
        tok[at] = tokens[i][n_tok[i] - 1], tpos[at] = sts[i]->pos + n_tok[i] - 1, seqs[at] = sts[i];
    if (split_ok(sts, n_seq, T))
        split_forward(sts, n_seq, tok, seqs, tpos, logits);
    else /* the pool, the scratch and the barrier of the first state; each its own cache */
        batch_forward(sts[0], tok,
                      (job){.st = sts[0],
                            .T = T,
                            .n_out = n_seq,
                            .seqs = seqs,
                            .tpos = tpos,
                            .louts = logits});
    bn_free(tok);
    bn_free(tpos);
    bn_free(seqs);
    return BN_OK;
}

int64_t bn_model_state_n_batch(const bn_model_state *st)
{
    return st->n_batch;
}
