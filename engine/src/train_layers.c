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
                          const float *inp, const float *w, const float *rstd, int64_t BT, int C,
                          int acc_dinp)
{
    // dout, inp, dinp are (BT,C); w, dw are (C); rstd is (BT)
    norm_args a = {.dinp = dinp,
                   .dw = dw,
                   .inp = inp,
                   .w = w,
                   .dout = dout,
                   .rstd_in = rstd,
                   .BT = BT,
                   .C = C,
                   .acc = acc_dinp};
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
    float *out, *att, *dq, *dk, *dv, *scratch;
    const float *q, *k, *v, *dout, *att_in;
    bn__gemm_ws *ws;
    int B, T, NH, NKV, HD;
} attn_args;

size_t bn__attention_scratch(int T)
{
    return (size_t)BN__ATT_BLK * (size_t)T;
}

/* In place on rows [r0, r1) of P (row stride T), each row t over columns [0, n): scale,
 * causal mask (columns > t become 0), softmax. */
static void causal_softmax(float *P, int T, int r0, int r1, int n, float scale)
{
    for (int t = r0; t < r1; t++) {
        float *row = P + (int64_t)t * T;
        float mx = -INFINITY;
        for (int c = 0; c <= t; c++) {
            row[c] *= scale;
            mx = row[c] > mx ? row[c] : mx;
        }
        float sum = 0.0f;
        for (int c = 0; c <= t; c++) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        const float inv = 1.0f / sum;
        for (int c = 0; c <= t; c++) row[c] *= inv;
        for (int c = t + 1; c < n; c++) row[c] = 0.0f;
    }
}

/* One task: sequence b, kv head g, and the NH/NKV query heads that read it. Query rows go
 * in blocks [r0, r1), each against keys [0, r1): S = Q K^T, P = softmax, out = P V. */
static void attn_fwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    const attn_args *a = arg;
    const int T = a->T, NH = a->NH, NKV = a->NKV, HD = a->HD, rep = NH / NKV;
    const int64_t qs = (int64_t)NH * HD, ks = (int64_t)NKV * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    float *buf = a->ws->buf + (size_t)tid * BN__GEMM_WS_FLOATS;
    for (int64_t task = begin; task < end; task++) {
        const int b = (int)(task / NKV), g = (int)(task % NKV);
        const float *K = a->k + (int64_t)b * T * ks + (int64_t)g * HD;
        const float *V = a->v + (int64_t)b * T * ks + (int64_t)g * HD;
        for (int h = g * rep; h < (g + 1) * rep; h++) {
            const float *Q = a->q + (int64_t)b * T * qs + (int64_t)h * HD;
            float *O = a->out + (int64_t)b * T * qs + (int64_t)h * HD;
            float *P = a->att + ((int64_t)b * NH + h) * T * T;
            for (int r0 = 0; r0 < T; r0 += BN__ATT_BLK) {
                const int r1 = r0 + BN__ATT_BLK < T ? r0 + BN__ATT_BLK : T, rows = r1 - r0;
                float *Pb = P + (int64_t)r0 * T;
                // S (rows, r1) = Q[r0:r1] @ K[0:r1]^T
                bn__sgemm_serial(buf, 0, 1, rows, r1, HD, Q + r0 * qs, qs, K, ks, Pb, T, 0);
                causal_softmax(P, T, r0, r1, T, scale);
                // O[r0:r1] (rows, HD) = P[r0:r1, 0:r1] @ V[0:r1]
                bn__sgemm_serial(buf, 0, 0, rows, HD, r1, Pb, T, V, ks, O + r0 * qs, qs, 0);
            }
        }
    }
}

void bn__attention_forward(bn_threadpool *pool, bn__gemm_ws *ws, float *out, float *att,
                           const float *q, const float *k, const float *v, int B, int T, int NH,
                           int NKV, int HD)
{
    // q, out are (B,T,NH,HD); k, v are (B,T,NKV,HD); att is (B,NH,T,T)
    BN_ASSERT(ws->n_threads >= (pool ? bn_pool_active(pool) : 1));
    attn_args a = {.out = out,
                   .att = att,
                   .q = q,
                   .k = k,
                   .v = v,
                   .ws = ws,
                   .B = B,
                   .T = T,
                   .NH = NH,
                   .NKV = NKV,
                   .HD = HD};
    bn_pool_parallel_for(pool, (int64_t)B * NKV, 1, attn_fwd_task, &a);
}

/* Backward of one block of query rows [r0, r1) of head h against keys [0, r1):
 * dP = dO V^T, dV += P^T dO, dS = P (dP - rowsum(P dP)) * scale, dQ = dS K, dK += dS^T Q. */
static void attn_bwd_block(const attn_args *a, float *buf, float *dS, int b, int g, int h, int r0,
                           int r1)
{
    const int T = a->T, NH = a->NH, NKV = a->NKV, HD = a->HD, rows = r1 - r0;
    const int64_t qs = (int64_t)NH * HD, ks = (int64_t)NKV * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t qo = ((int64_t)b * T + r0) * qs + (int64_t)h * HD;
    const int64_t ko = (int64_t)b * T * ks + (int64_t)g * HD;
    const float *P = a->att_in + (((int64_t)b * NH + h) * T + r0) * T; /* (rows, T), ld T */
    // dP (rows, r1) = dO[r0:r1] @ V[0:r1]^T, into dS (ld r1)
    bn__sgemm_serial(buf, 0, 1, rows, r1, HD, a->dout + qo, qs, a->v + ko, ks, dS, r1, 0);
    // dV[0:r1] += P^T @ dO
    bn__sgemm_serial(buf, 1, 0, r1, HD, rows, P, T, a->dout + qo, qs, a->dv + ko, ks, 1);
    for (int i = 0; i < rows; i++) {
        const float *p = P + (int64_t)i * T;
        float *d = dS + (int64_t)i * r1;
        const int t = r0 + i;
        float pdp = 0.0f;
        for (int c = 0; c <= t; c++) pdp += p[c] * d[c];
        for (int c = 0; c <= t; c++) d[c] = p[c] * (d[c] - pdp) * scale;
        for (int c = t + 1; c < r1; c++) d[c] = 0.0f;
    }
    // dQ[r0:r1] = dS @ K[0:r1]; dK[0:r1] += dS^T @ Q[r0:r1]
    bn__sgemm_serial(buf, 0, 0, rows, HD, r1, dS, r1, a->k + ko, ks, a->dq + qo, qs, 0);
    bn__sgemm_serial(buf, 1, 0, r1, HD, rows, dS, r1, a->q + qo, qs, a->dk + ko, ks, 1);
}

static void attn_bwd_task(void *arg, int64_t begin, int64_t end, int tid)
{
    const attn_args *a = arg;
    const int T = a->T, NKV = a->NKV, HD = a->HD, rep = a->NH / NKV;
    const int64_t ks = (int64_t)NKV * HD;
    float *buf = a->ws->buf + (size_t)tid * BN__GEMM_WS_FLOATS;
    float *dS = a->scratch + (size_t)tid * bn__attention_scratch(T);
    for (int64_t task = begin; task < end; task++) {
        const int b = (int)(task / NKV), g = (int)(task % NKV);
        for (int t = 0; t < T; t++) {
            const int64_t o = ((int64_t)b * T + t) * ks + (int64_t)g * HD;
            memset(a->dk + o, 0, (size_t)HD * sizeof(float));
            memset(a->dv + o, 0, (size_t)HD * sizeof(float));
        }
        for (int h = g * rep; h < (g + 1) * rep; h++)
            for (int r0 = 0; r0 < T; r0 += BN__ATT_BLK)
                attn_bwd_block(a, buf, dS, b, g, h, r0,
                               r0 + BN__ATT_BLK < T ? r0 + BN__ATT_BLK : T);
    }
}

void bn__attention_backward(bn_threadpool *pool, bn__gemm_ws *ws, float *scratch, float *dq,
                            float *dk, float *dv, const float *dout, const float *att,
                            const float *q, const float *k, const float *v, int B, int T, int NH,
                            int NKV, int HD)
{
    // dout, dq are (B,T,NH,HD); dk, dv are (B,T,NKV,HD); att is (B,NH,T,T)
    BN_ASSERT(ws->n_threads >= (pool ? bn_pool_active(pool) : 1));
    attn_args a = {.dq = dq,
                   .dk = dk,
                   .dv = dv,
                   .scratch = scratch,
                   .q = q,
                   .k = k,
                   .v = v,
                   .dout = dout,
                   .att_in = att,
                   .ws = ws,
                   .B = B,
                   .T = T,
                   .NH = NH,
                   .NKV = NKV,
                   .HD = HD};
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
    for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
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
