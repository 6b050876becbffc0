/*
 * train_layers.c - the trainer's layers, one forward / backward pair each, in the order
 * the model runs them: encoder, rmsnorm, activation fake-quant, matmul (BitLinear's
 * product), rope, attention, relu^2 GLU, cross-entropy. Work is split over the thread pool
 * by rows (or by (sequence, kv head) for attention) so that every output is computed by one
 * thread in a fixed order: results do not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "bitnet/quant.h"
#include "train_internal.h"

/* ---- encoder ---------------------------------------------------------------------------- */

void bn__encoder_forward(float *out, const int32_t *inp, const float *wte, int64_t BT, int C)
{
    // out is (BT,C), wte is (V,C)
    for (int64_t i = 0; i < BT; i++)
        memcpy(out + i * C, wte + (int64_t)inp[i] * C, (size_t)C * sizeof(float));
}

void bn__encoder_backward(float *dwte, const float *dout, const int32_t *inp, int64_t BT, int C)
{
    // dout is (BT,C); dwte is (V,C). Serial, in token order (repeated tokens add up).
    for (int64_t i = 0; i < BT; i++) {
        float *d = dwte + (int64_t)inp[i] * C;
        const float *g = dout + i * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* ---- rmsnorm ---------------------------------------------------------------------------- */

typedef struct norm_args {
    float *out, *rstd, *dinp, *dw;
    const float *inp, *w, *dout, *rstd_in;
    int64_t BT;
    int C;
    float eps;
    int acc;
} norm_args;

static void rmsnorm_fwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const norm_args *a = arg;
    const int C = a->C;
    for (int64_t i = begin; i < end; i++) {
        const float *x = a->inp + i * C;
        float *y = a->out + i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        const float r = (float)(1.0 / sqrt(ss / C + a->eps));
        for (int c = 0; c < C; c++) y[c] = x[c] * r * a->w[c];
        a->rstd[i] = r;
    }
}

void bn__rmsnorm_forward(bn_threadpool *pool, float *out, float *rstd, const float *inp,
                         const float *w, int64_t BT, int C, float eps)
{
    // inp, out are (BT,C); w is (C); rstd is (BT)
    norm_args a = {.out = out, .rstd = rstd, .inp = inp, .w = w, .C = C, .eps = eps};
    bn_pool_parallel_for(pool, BT, 16, rmsnorm_fwd_task, &a);
}

static void rmsnorm_bwd_inp_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const norm_args *a = arg;
    const int C = a->C;
    for (int64_t i = begin; i < end; i++) {
        const float *x = a->inp + i * C, *dy = a->dout + i * C;
        float *dx = a->dinp + i * C;
        const float r = a->rstd_in[i];
        // y = x r w, r = (mean x^2 + eps)^-1/2  =>  dx = r (w dy - x r^2 mean(w dy x))
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)a->w[c] * dy[c] * x[c];
        const float k = (float)(dot / C) * r * r;
        for (int c = 0; c < C; c++) {
            const float g = r * (a->w[c] * dy[c] - x[c] * k);
            dx[c] = a->acc ? dx[c] + g : g;
        }
    }
}

static void rmsnorm_bwd_w_task(void *arg, int64_t begin, int64_t end, int tid)
{
    // channels [begin, end) of dw; all tokens, in token order
    (void)tid;
    const norm_args *a = arg;
    const int C = a->C;
    for (int64_t i = 0; i < a->BT; i++) {
        const float *x = a->inp + i * C, *dy = a->dout + i * C;
        const float r = a->rstd_in[i];
        for (int64_t c = begin; c < end; c++) a->dw[c] += dy[c] * x[c] * r;
    }
}

void bn__rmsnorm_backward(bn_threadpool *pool, float *dinp, float *dw, const float *dout,
                          const float *inp, const float *w, const float *rstd, int64_t BT,
                          int C, int acc_dinp)
{
    // dout, inp, dinp are (BT,C); w, dw are (C); rstd is (BT)
    norm_args a = {.dinp = dinp, .dw = dw, .inp = inp, .w = w, .dout = dout, .rstd_in = rstd,
                   .BT = BT, .C = C, .acc = acc_dinp};
    bn_pool_parallel_for(pool, BT, 16, rmsnorm_bwd_inp_task, &a);
    bn_pool_parallel_for(pool, C, 16, rmsnorm_bwd_w_task, &a);
}

/* ---- activation fake quantization (BitLinear inputs) ------------------------------------- */

typedef struct rows_args {
    float *x;
    int C;
} rows_args;

static void actquant_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const rows_args *a = arg;
    for (int64_t i = begin; i < end; i++) bn_fake_quantize_act_row(a->x + i * a->C, a->C);
}

void bn__actquant_forward(bn_threadpool *pool, float *x, int64_t BT, int C)
{
    // x is (BT,C); each row: round(x * s) / s with s = 127 / max|x| (backward: identity)
    rows_args a = {x, C};
    bn_pool_parallel_for(pool, BT, 16, actquant_task, &a);
}

/* ---- matmul ------------------------------------------------------------------------------ */

void bn__matmul_forward(bn_threadpool *pool, bn__gemm_ws *ws, float *out, const float *inp,
                        const float *w, int64_t BT, int K, int N)
{
    // inp is (BT,K), w is (N,K), out is (BT,N)
    bn__sgemm(pool, ws, 0, 1, BT, N, K, inp, K, w, K, out, N, 0);
}

void bn__matmul_backward(bn_threadpool *pool, bn__gemm_ws *ws, float *dinp, float *dw,
                         const float *dout, const float *inp, const float *w, int64_t BT, int K,
                         int N, int acc_dinp)
{
    // dout is (BT,N); dinp (BT,K) = dout @ w; dw (N,K) += dout^T @ inp
    if (dinp) bn__sgemm(pool, ws, 0, 0, BT, K, N, dout, N, w, K, dinp, K, acc_dinp);
    if (dw) bn__sgemm(pool, ws, 1, 0, N, K, BT, dout, N, inp, K, dw, K, 1);
}

/* ---- rope (NEOX: rotate-half) ------------------------------------------------------------- */

void bn__rope_table(float *cos_t, float *sin_t, int T, int HD, float theta)
{
    // cos_t, sin_t are (T, HD/2)
    const int half = HD / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            const double freq = pow((double)theta, -2.0 * i / HD);
            const double ang = t * freq;
            cos_t[t * half + i] = (float)cos(ang);
            sin_t[t * half + i] = (float)sin(ang);
        }
    }
}

static void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int HD, float sign)
{
    // x is (B,T,NH,HD); pair (i, i+HD/2) rotated by sign * angle(t, i)
    const int half = HD / 2;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + t * half, *sn = sin_t + t * half;
            for (int h = 0; h < NH; h++) {
                float *v = x + (((int64_t)b * T + t) * NH + h) * HD;
                for (int i = 0; i < half; i++) {
                    const float x0 = v[i], x1 = v[i + half], s = sign * sn[i];
                    v[i] = x0 * cs[i] - x1 * s;
                    v[i + half] = x1 * cs[i] + x0 * s;
                }
            }
        }
    }
}

void bn__rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH,
                      int HD)
{
    rope_apply(x, cos_t, sin_t, B, T, NH, HD, 1.0f);
}

void bn__rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int NH,
                       int HD)
{
    // the rotation is orthogonal: its gradient is the rotation by the opposite angle
    rope_apply(dx, cos_t, sin_t, B, T, NH, HD, -1.0f);
}

/* ---- causal grouped-query attention ------------------------------------------------------ */

typedef struct attn_args {
    float *out, *att, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *att_in;
    int B, T, NH, NKV, HD;
} attn_args;

static float dotf(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpyf(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* One task: sequence b, kv head g, and the NH/NKV query heads that read it. */
static void attn_fwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const attn_args *a = arg;
    const int T = a->T, NH = a->NH, NKV = a->NKV, HD = a->HD, rep = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    for (int64_t task = begin; task < end; task++) {
        const int b = (int)(task / NKV), g = (int)(task % NKV);
        const float *kb = a->k + ((int64_t)b * T * NKV + g) * HD;
        const float *vb = a->v + ((int64_t)b * T * NKV + g) * HD;
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            for (int t = 0; t < T; t++) {
                const float *qv = a->q + (((int64_t)b * T + t) * NH + h) * HD;
                float *row = a->att + (((int64_t)b * NH + h) * T + t) * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = dotf(qv, kb + (int64_t)t2 * NKV * HD, HD) * scale;
                    mx = fmaxf(mx, row[t2]);
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = expf(row[t2] - mx);
                    sum += row[t2];
                }
                const float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) row[t2] *= inv;
                for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0f;
                float *o = a->out + (((int64_t)b * T + t) * NH + h) * HD;
                memset(o, 0, (size_t)HD * sizeof(float));
                for (int t2 = 0; t2 <= t; t2++) axpyf(o, row[t2], vb + (int64_t)t2 * NKV * HD, HD);
            }
        }
    }
}

void bn__attention_forward(bn_threadpool *pool, float *out, float *att, const float *q,
                           const float *k, const float *v, int B, int T, int NH, int NKV, int HD)
{
    // q, out are (B,T,NH,HD); k, v are (B,T,NKV,HD); att is (B,NH,T,T)
    attn_args a = {.out = out, .att = att, .q = q, .k = k, .v = v,
                   .B = B, .T = T, .NH = NH, .NKV = NKV, .HD = HD};
    bn_pool_parallel_for(pool, (int64_t)B * NKV, 1, attn_fwd_task, &a);
}

static void attn_bwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const attn_args *a = arg;
    const int T = a->T, NH = a->NH, NKV = a->NKV, HD = a->HD, rep = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    for (int64_t task = begin; task < end; task++) {
        const int b = (int)(task / NKV), g = (int)(task % NKV);
        const int64_t kvo = ((int64_t)b * T * NKV + g) * HD, kvs = (int64_t)NKV * HD;
        for (int t = 0; t < T; t++) {
            memset(a->dk + kvo + t * kvs, 0, (size_t)HD * sizeof(float));
            memset(a->dv + kvo + t * kvs, 0, (size_t)HD * sizeof(float));
        }
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            for (int t = 0; t < T; t++) {
                const int64_t qo = (((int64_t)b * T + t) * NH + h) * HD;
                const float *dy = a->dout + qo, *qv = a->q + qo;
                const float *row = a->att_in + (((int64_t)b * NH + h) * T + t) * T;
                float *dqv = a->dq + qo;
                // out = sum p v: dv += p dy, dp = dy . v; softmax: ds = p (dp - sum p dp)
                float pdp = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    pdp += row[t2] * dotf(dy, a->v + kvo + t2 * kvs, HD);
                    axpyf(a->dv + kvo + t2 * kvs, row[t2], dy, HD);
                }
                memset(dqv, 0, (size_t)HD * sizeof(float));
                for (int t2 = 0; t2 <= t; t2++) {
                    const float dp = dotf(dy, a->v + kvo + t2 * kvs, HD);
                    const float ds = row[t2] * (dp - pdp) * scale;
                    axpyf(dqv, ds, a->k + kvo + t2 * kvs, HD);
                    axpyf(a->dk + kvo + t2 * kvs, ds, qv, HD);
                }
            }
        }
    }
}

void bn__attention_backward(bn_threadpool *pool, float *dq, float *dk, float *dv,
                            const float *dout, const float *att, const float *q, const float *k,
                            const float *v, int B, int T, int NH, int NKV, int HD)
{
    // dout, dq are (B,T,NH,HD); dk, dv are (B,T,NKV,HD); att is (B,NH,T,T)
    attn_args a = {.dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout,
                   .att_in = att, .B = B, .T = T, .NH = NH, .NKV = NKV, .HD = HD};
    bn_pool_parallel_for(pool, (int64_t)B * NKV, 1, attn_bwd_task, &a);
}

/* ---- relu^2 gated linear unit ------------------------------------------------------------ */

void bn__relu2glu_forward(float *out, const float *gate, const float *up, int64_t n)
{
    // out = relu(gate)^2 * up, elementwise over (BT,F)
    for (int64_t i = 0; i < n; i++) {
        const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
        out[i] = r * r * up[i];
    }
}

void bn__relu2glu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
        dgate[i] = dout[i] * up[i] * 2.0f * r;
        dup[i] = dout[i] * r * r;
    }
}

/* ---- softmax cross-entropy --------------------------------------------------------------- */

typedef struct xent_args {
    float *losses, *logits_rw;
    const float *logits;
    const int32_t *targets;
    int V;
    float scale;
} xent_args;

static float row_lse(const float *x, int V)
{
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = fmaxf(mx, x[j]);
    double s = 0.0;
    for (int j = 0; j < V; j++) s += expf(x[j] - mx);
    return mx + (float)log(s);
}

static void xent_fwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const xent_args *a = arg;
    for (int64_t i = begin; i < end; i++) {
        const float *x = a->logits + i * a->V;
        a->losses[i] = row_lse(x, a->V) - x[a->targets[i]];
    }
}

void bn__xent_forward(bn_threadpool *pool, float *losses, const float *logits,
                      const int32_t *targets, int64_t BT, int V)
{
    // logits is (BT,V); losses is (BT)
    xent_args a = {.losses = losses, .logits = logits, .targets = targets, .V = V};
    bn_pool_parallel_for(pool, BT, 8, xent_fwd_task, &a);
}

static void xent_bwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const xent_args *a = arg;
    for (int64_t i = begin; i < end; i++) {
        float *x = a->logits_rw + i * a->V;
        const float lse = row_lse(x, a->V);
        for (int j = 0; j < a->V; j++) x[j] = a->scale * expf(x[j] - lse);
        x[a->targets[i]] -= a->scale;
    }
}

void bn__xent_backward(bn_threadpool *pool, float *logits, const int32_t *targets, int64_t BT,
                       int V, float scale)
{
    // in place: logits (BT,V) -> scale * (softmax - onehot(target))
    xent_args a = {.logits_rw = logits, .targets = targets, .V = V, .scale = scale};
    bn_pool_parallel_for(pool, BT, 8, xent_bwd_task, &a);
}
