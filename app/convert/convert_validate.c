/* convert_validate.c - the f32 reference forward of a source model and the metrics that
 * compare it with the converted one.
 *
 * The reference is the source model as its own framework computes it (transformers'
 * LlamaForCausalLM / BitNetForCausalLM): RMSNorm, q/k/v, RoPE (rotate-half), causal grouped
 * attention, (BitNet: attn_sub_norm), o, RMSNorm, gate/up, silu or relu^2, (BitNet:
 * ffn_sub_norm), down, final norm, LM head. The converted model has the same structure: a
 * LLaMA source gets no sub-norm tensors, and the engine then skips those two steps. When
 * the source quantizes (a BitNet quantization_config), every linear layer sees its input
 * fake-quantized per token to int8 and its ternary weight dequantized, as transformers'
 * BitLinear does; otherwise weights and activations stay f32.
 *
 * It runs layer by layer over all sequences at once: activations of every token stay in
 * memory (tokens x hidden), weights are loaded one matrix at a time, so memory stays near the
 * largest matrix in f32 and the LM head is read in row chunks. */
#include "convert.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/quant.h"
#include "common/cli.h"

const char *const cv_builtin_prompts[] = {
        "The quick brown fox jumps over the lazy dog.",
        "Once upon a time, in a small village by the sea,",
        "The capital of France is",
        "To make a cup of tea, first boil the water, then",
        "def fibonacci(n):\n    if n < 2:\n        return n\n",
        "Q: What is the largest planet in the solar system?\nA:",
        "You may copy and distribute verbatim copies of this document",
        "1, 2, 3, 4, 5, 6, 7,",
        NULL,
};

const char cv_builtin_text[] =
        "Everyone is permitted to copy and distribute verbatim copies of this license document, "
        "but changing it is not allowed. The licenses for most software and other practical works "
        "are designed to take away your freedom to share and change the works. By contrast, a "
        "free license is intended to guarantee your freedom to share and change all versions of "
        "a program, to make sure it remains free software for all its users. When we speak of "
        "free software, we are referring to freedom, not price.";

/* ---- kernels (plain, threaded over output rows) ------------------------------------------- */

typedef struct mm_args {
    const float *x, *w;
    float *y;
    int64_t T, K, N;
    const volatile sig_atomic_t *stop; /* set: the rows left are skipped (result unused) */
} mm_args;

static float dot(const float *a, const float *b, int64_t n)
{
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void mm_rows(void *arg, int64_t n0, int64_t n1, int tid)
{
    (void)tid;
    const mm_args *a = arg;
    for (int64_t n = n0; n < n1 && !(a->stop && *a->stop); n++)
        for (int64_t t = 0; t < a->T; t++)
            a->y[t * a->N + n] = dot(a->x + t * a->K, a->w + n * a->K, a->K);
}

/* y[T][N] = x[T][K] . w[N][K]^T (unfinished when *stop is set) */
static void matmul(bn_threadpool *pool, const float *x, int64_t T, int64_t K, const float *w,
                   int64_t N, float *y, const volatile sig_atomic_t *stop)
{
    mm_args a = {x, w, y, T, K, N, stop};
    bn_pool_parallel_for(pool, N, 8, mm_rows, &a);
}

static void rmsnorm(float *x, int64_t T, int64_t n, const float *w, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)r[i] * r[i];
        float inv = 1.0f / sqrtf((float)(ss / (double)n) + eps);
        for (int64_t i = 0; i < n; i++) r[i] = r[i] * inv * w[i];
    }
}

static void act_quant(float *x, int64_t T, int64_t n)
{
    for (int64_t t = 0; t < T; t++) bn_fake_quantize_act_row(x + t * n, n);
}

/* Rotate-half RoPE on nh heads of hd values per token; positions restart at each sequence. */
static void rope(float *x, const cv_seqs *q, int64_t nh, int64_t hd, float base)
{
    const int64_t half = hd / 2;
    int64_t t = 0;
    for (int s = 0; s < q->n; s++)
        for (int p = 0; p < q->len[s]; p++, t++)
            for (int64_t h = 0; h < nh; h++) {
                float *v = x + (t * nh + h) * hd;
                for (int64_t i = 0; i < half; i++) {
                    float inv = 1.0f / powf(base, (float)(2 * i) / (float)hd);
                    float ang = (float)p * inv, c = cosf(ang), sn = sinf(ang);
                    float a = v[i], b = v[i + half];
                    v[i] = a * c - b * sn;
                    v[i + half] = b * c + a * sn;
                }
            }
}

/* Causal grouped attention of every sequence: out[T][H*hd]. */
static void attention(const float *qb, const float *kb, const float *vb, const cv_seqs *q,
                      const cv_hparams *hp, float *out, float *scores)
{
    const int64_t H = hp->n_head, KVH = hp->n_head_kv, hd = hp->head_dim, g = H / KVH;
    const float scale = 1.0f / sqrtf((float)hd);
    int64_t base = 0;
    for (int s = 0; s < q->n; base += q->len[s], s++)
        for (int64_t i = 0; i < q->len[s]; i++)
            for (int64_t h = 0; h < H; h++) {
                const float *qi = qb + ((base + i) * H + h) * hd;
                const int64_t kh = h / g;
                float mx = -INFINITY;
                for (int64_t j = 0; j <= i; j++) {
                    scores[j] = dot(qi, kb + ((base + j) * KVH + kh) * hd, hd) * scale;
                    if (scores[j] > mx) mx = scores[j];
                }
                double sum = 0;
                for (int64_t j = 0; j <= i; j++) sum += scores[j] = expf(scores[j] - mx);
                float *o = out + ((base + i) * H + h) * hd;
                memset(o, 0, (size_t)hd * sizeof *o);
                for (int64_t j = 0; j <= i; j++) {
                    const float p = (float)(scores[j] / sum);
                    const float *vj = vb + ((base + j) * KVH + kh) * hd;
                    for (int64_t d = 0; d < hd; d++) o[d] += p * vj[d];
                }
            }
}

/* ---- the forward ---------------------------------------------------------------------------- */

typedef struct ref_bufs {
    float *x, *h, *qb, *kb, *vb, *att, *g, *u, *w, *norm, *scores;
    const cv_opts *o; /* polled after each linear layer */
    cv_calib *cal;    /* NULL: no calibration */
    int stopped;
} ref_bufs;

static int linear(cv_source *s, bn_threadpool *pool, ref_bufs *b, const char *name, const float *in,
                  int64_t T, int64_t K, int64_t N, float *out, char *err, size_t errsz)
{
    if (cv_linear_f32(s, name, N, K, b->w, err, errsz) != 0) return -1;
    if (b->cal && b->cal->substitute) {
        if (b->cal->substitute(b->cal->user, name, b->w, N, K, err, errsz) != 0) return -1;
    } else if (b->cal && cv_calib_linear(b->cal, name, in, T, b->w, N, K, err, errsz) != 0) {
        return -1;
    }
    matmul(pool, in, T, K, b->w, N, out, b->o->stop);
    if (cv_poll(b->o)) {
        b->stopped = 1;
        return cm_fail(err, errsz, "cancelled");
    }
    return 0;
}

static int layer(cv_source *s, bn_threadpool *pool, ref_bufs *b, const cv_seqs *q, int il,
                 char *err, size_t errsz)
{
    const cv_hparams *hp = &s->hp;
    const int64_t T = q->total, E = hp->n_embd, F = hp->n_ff, KVD = hp->n_head_kv * hp->head_dim;
    const int bitnet = hp->arch == CV_ARCH_BITNET, qr = hp->quant_ref;
    char n[256];
#define NAME(x) (snprintf(n, sizeof n, "model.layers.%d.%s.weight", il, x), n)
    memcpy(b->h, b->x, (size_t)(T * E) * sizeof *b->h);
    if (cv_vector_f32(s, NAME("input_layernorm"), E, b->norm, err, errsz)) return -1;
    rmsnorm(b->h, T, E, b->norm, hp->eps);
    if (qr) act_quant(b->h, T, E);
    if (linear(s, pool, b, NAME("self_attn.q_proj"), b->h, T, E, E, b->qb, err, errsz) ||
        linear(s, pool, b, NAME("self_attn.k_proj"), b->h, T, E, KVD, b->kb, err, errsz) ||
        linear(s, pool, b, NAME("self_attn.v_proj"), b->h, T, E, KVD, b->vb, err, errsz))
        return -1;
    rope(b->qb, q, hp->n_head, hp->head_dim, hp->rope_theta);
    rope(b->kb, q, hp->n_head_kv, hp->head_dim, hp->rope_theta);
    attention(b->qb, b->kb, b->vb, q, hp, b->att, b->scores);
    if (bitnet) {
        if (cv_vector_f32(s, NAME("self_attn.attn_sub_norm"), E, b->norm, err, errsz)) return -1;
        rmsnorm(b->att, T, E, b->norm, hp->eps);
    }
    if (qr) act_quant(b->att, T, E);
    if (linear(s, pool, b, NAME("self_attn.o_proj"), b->att, T, E, E, b->h, err, errsz)) return -1;
    for (int64_t i = 0; i < T * E; i++) b->x[i] += b->h[i];
    memcpy(b->h, b->x, (size_t)(T * E) * sizeof *b->h);
    if (cv_vector_f32(s, NAME("post_attention_layernorm"), E, b->norm, err, errsz)) return -1;
    rmsnorm(b->h, T, E, b->norm, hp->eps);
    if (qr) act_quant(b->h, T, E);
    if (linear(s, pool, b, NAME("mlp.gate_proj"), b->h, T, E, F, b->g, err, errsz) ||
        linear(s, pool, b, NAME("mlp.up_proj"), b->h, T, E, F, b->u, err, errsz))
        return -1;
    for (int64_t i = 0; i < T * F; i++) {
        float gv = b->g[i];
        float a = bitnet ? (gv > 0 ? gv * gv : 0) : gv / (1.0f + expf(-gv));
        b->g[i] = a * b->u[i];
    }
    if (bitnet) {
        if (cv_vector_f32(s, NAME("mlp.ffn_sub_norm"), F, b->norm, err, errsz)) return -1;
        rmsnorm(b->g, T, F, b->norm, hp->eps);
    }
    if (qr) act_quant(b->g, T, F);
    if (linear(s, pool, b, NAME("mlp.down_proj"), b->g, T, F, E, b->h, err, errsz)) return -1;
    for (int64_t i = 0; i < T * E; i++) b->x[i] += b->h[i];
#undef NAME
    return 0;
}

static int embed(cv_source *s, const cv_seqs *q, float *x, char *err, size_t errsz)
{
    const int64_t E = s->hp.n_embd, V = s->hp.n_vocab;
    const cv_tensor *t = cv_source_find(s, "model.embed_tokens.weight");
    if (!t)
        return cm_fail(err, errsz, "%s: tensor model.embed_tokens.weight is missing", s->weights);
    if (t->n_dims != 2 || t->shape[0] != V || t->shape[1] != E)
        return cm_fail(err, errsz, "model.embed_tokens.weight: shape is not %lldx%lld",
                       (long long)V, (long long)E);
    const void *raw;
    void *own;
    if (cv_source_raw(s, t, &raw, &own, err, errsz)) return -1;
    int64_t k = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < q->n; i++)
        for (int j = 0; rc == 0 && j < q->len[i]; j++, k++) {
            cv_rows_f32(t, raw, q->tok[i][j], q->tok[i][j] + 1, x + k * E);
            rc = cv_check_finite(t->name, x + k * E, E, E, q->tok[i][j], err, errsz);
        }
    cv_source_release(s, t, own);
    return rc;
}

/* logits = norm(x) . head^T, the head read in chunks of rows. */
static int head(cv_source *s, bn_threadpool *pool, ref_bufs *b, int64_t T, float *logits, char *err,
                size_t errsz)
{
    const int64_t E = s->hp.n_embd, V = s->hp.n_vocab, CH = 1024;
    const char *name = s->hp.tied ? "model.embed_tokens.weight" : "lm_head.weight";
    const cv_tensor *t = cv_source_find(s, name);
    if (!t || t->n_dims != 2 || t->shape[0] != V || t->shape[1] != E)
        return cm_fail(err, errsz, "%s: missing or not %lldx%lld", name, (long long)V,
                       (long long)E);
    const void *raw;
    void *own;
    if (cv_source_raw(s, t, &raw, &own, err, errsz)) return -1;
    float *rows = malloc((size_t)(CH * E) * sizeof *rows),
          *y = malloc((size_t)(CH * T) * sizeof *y);
    int rc = rows && y ? 0 : cm_fail(err, errsz, "out of memory");
    for (int64_t r0 = 0; rc == 0 && r0 < V; r0 += CH) {
        int64_t r1 = r0 + CH < V ? r0 + CH : V;
        cv_rows_f32(t, raw, r0, r1, rows);
        rc = cv_check_finite(name, rows, (r1 - r0) * E, E, r0, err, errsz);
        if (rc != 0) break;
        matmul(pool, b->x, T, E, rows, r1 - r0, y, b->o->stop);
        if (b->o->stop && *b->o->stop) {
            b->stopped = 1;
            rc = cm_fail(err, errsz, "cancelled");
            break;
        }
        for (int64_t tt = 0; tt < T; tt++)
            memcpy(logits + tt * V + r0, y + tt * (r1 - r0), (size_t)(r1 - r0) * sizeof *y);
    }
    free(rows);
    free(y);
    cv_source_release(s, t, own);
    return rc;
}

int cv_reference(cv_source *s, bn_threadpool *pool, const cv_seqs *q, float *logits,
                 const cv_opts *o, cv_calib *cal, char *err, size_t errsz)
{
    const cv_hparams *hp = &s->hp;
    const int64_t T = q->total, E = hp->n_embd, F = hp->n_ff, KVD = hp->n_head_kv * hp->head_dim;
    const int64_t W = (F > E ? F : E) * E, NV = F > E ? F : E;
    int64_t maxlen = 1;
    for (int i = 0; i < q->n; i++)
        if (q->len[i] > maxlen) maxlen = q->len[i];
    static const cv_opts no_opts;
    ref_bufs b = {.o = o ? o : &no_opts, .cal = cal};
    size_t fl = sizeof(float);
    b.x = malloc((size_t)(T * E) * fl);
    b.h = malloc((size_t)(T * E) * fl);
    b.qb = malloc((size_t)(T * E) * fl);
    b.kb = malloc((size_t)(T * KVD) * fl);
    b.vb = malloc((size_t)(T * KVD) * fl);
    b.att = malloc((size_t)(T * E) * fl);
    b.g = malloc((size_t)(T * F) * fl);
    b.u = malloc((size_t)(T * F) * fl);
    b.w = malloc((size_t)W * fl);
    b.norm = malloc((size_t)NV * fl);
    b.scores = malloc((size_t)maxlen * fl);
    int rc = b.x && b.h && b.qb && b.kb && b.vb && b.att && b.g && b.u && b.w && b.norm && b.scores
                     ? 0
                     : cm_fail(err, errsz, "out of memory (reference forward)");
    if (rc == 0) rc = embed(s, q, b.x, err, errsz);
    double t0 = bn_time_now();
    for (int il = 0; rc == 0 && il < hp->n_layer; il++) {
        if (o && o->progress) {
            double el = bn_time_now() - t0;
            cv_progress p = {"reference", (uint64_t)il, (uint64_t)hp->n_layer, el,
                             il ? el / il * (double)(hp->n_layer - il) : -1};
            if (o->progress(o->user, &p)) rc = -2;
        }
        if (rc == 0) rc = layer(s, pool, &b, q, il, err, errsz);
    }
    if (rc == 0 && logits) {
        rc = cv_vector_f32(s, "model.norm.weight", E, b.norm, err, errsz);
        if (rc == 0) {
            rmsnorm(b.x, T, E, b.norm, hp->eps);
            rc = head(s, pool, &b, T, logits, err, errsz);
        }
    }
    if (b.stopped) rc = -2;
    free(b.x);
    free(b.h);
    free(b.qb);
    free(b.kb);
    free(b.vb);
    free(b.att);
    free(b.g);
    free(b.u);
    free(b.w);
    free(b.norm);
    free(b.scores);
    return rc;
}

/* ---- metrics ----------------------------------------------------------------------------------
 */

/* log-softmax of n logits into out (double). */
static void log_softmax(const float *x, int64_t n, double *out)
{
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int64_t i = 0; i < n; i++) out[i] = (double)x[i] - lse;
}

static int64_t argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The first position whose logits hold a NaN or infinity, or -1. */
static int64_t non_finite_at(const float *x, int64_t n_pos, int64_t V)
{
    for (int64_t i = 0; i < n_pos * V; i++)
        if (!isfinite(x[i])) return i / V;
    return -1;
}

int cv_metrics(const float *ref, const float *conv, const cv_seqs *q, int64_t V, int text_seq,
               cJSON *obj, char *err, size_t errsz)
{
    if (q->total <= 0) return cm_fail(err, errsz, "validation: no token to compare");
    int64_t bad = non_finite_at(ref, q->total, V);
    if (bad >= 0)
        return cm_fail(err, errsz,
                       "validation failed: the source model's logits are not finite (position "
                       "%lld); the weights overflow f32",
                       (long long)bad);
    if ((bad = non_finite_at(conv, q->total, V)) >= 0)
        return cm_fail(err, errsz,
                       "validation failed: the converted model's logits are not finite (position "
                       "%lld)",
                       (long long)bad);
    double *lr = malloc((size_t)V * sizeof *lr), *lc = malloc((size_t)V * sizeof *lc);
    if (!lr || !lc) {
        free(lr);
        free(lc);
        return cm_fail(err, errsz, "out of memory (validation)");
    }
    double cos_sum = 0, cos_min = 1, kl_sum = 0, kl_max = 0, nll_r = 0, nll_c = 0;
    int64_t agree = 0, n = 0, n_text = 0, base = 0;
    for (int s = 0; s < q->n; base += q->len[s], s++)
        for (int64_t i = 0; i < q->len[s]; i++, n++) {
            const float *a = ref + (base + i) * V, *b = conv + (base + i) * V;
            double ab = 0, aa = 0, bb = 0;
            for (int64_t k = 0; k < V; k++) {
                ab += (double)a[k] * b[k];
                aa += (double)a[k] * a[k];
                bb += (double)b[k] * b[k];
            }
            double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
            cos_sum += c;
            if (c < cos_min) cos_min = c;
            agree += argmax(a, V) == argmax(b, V);
            log_softmax(a, V, lr);
            log_softmax(b, V, lc);
            double kl = 0;
            for (int64_t k = 0; k < V; k++) kl += exp(lr[k]) * (lr[k] - lc[k]);
            kl_sum += kl;
            if (kl > kl_max) kl_max = kl;
            if (s == text_seq && i + 1 < q->len[s]) {
                nll_r -= lr[q->tok[s][i + 1]];
                nll_c -= lc[q->tok[s][i + 1]];
                n_text++;
            }
        }
    free(lr);
    free(lc);
    if (!isfinite(cos_sum) || !isfinite(kl_sum) || !isfinite(nll_r) || !isfinite(nll_c))
        return cm_fail(err, errsz, "validation failed: a metric is not finite (KL %g, NLL %g / %g)",
                       kl_sum, nll_r, nll_c);
    cJSON_AddNumberToObject(obj, "positions", (double)n);
    cJSON_AddNumberToObject(obj, "cosine_mean", n ? cos_sum / (double)n : 1);
    cJSON_AddNumberToObject(obj, "cosine_min", cos_min);
    cJSON_AddNumberToObject(obj, "top1_agreement", n ? (double)agree / (double)n : 1);
    cJSON_AddNumberToObject(obj, "kl_mean", n ? kl_sum / (double)n : 0);
    cJSON_AddNumberToObject(obj, "kl_max", kl_max);
    if (n_text > 0) {
        double pr = exp(nll_r / (double)n_text), pc = exp(nll_c / (double)n_text);
        cJSON_AddNumberToObject(obj, "text_tokens", (double)n_text);
        cJSON_AddNumberToObject(obj, "ppl_ref", pr);
        cJSON_AddNumberToObject(obj, "ppl_conv", pc);
        cJSON_AddNumberToObject(obj, "ppl_change_pct", 100.0 * (pc - pr) / pr);
    }
    return 0;
}
