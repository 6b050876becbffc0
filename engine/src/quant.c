/*
 * quant.c - BitNet b1.58 absmean weight quantization, per-token int8 activation
 * quantization and error metrics.
 *
 * Rounding is rintf (ties to even in the default rounding mode), as torch.round. A NaN
 * input quantizes to 0 rather than reaching an undefined float-to-int conversion.
 */
#include "bitnet/quant.h"

#include <math.h>

#define ABSMEAN_FLOOR 1e-5f
#define ACT_FLOOR     1e-5f

/* Elements that share one scale (rows * cols, cols or group), or -1 when invalid. */
static int64_t absmean_chunk(int64_t rows, int64_t cols, bn_qgran g, int64_t group)
{
    int64_t total;
    if (rows < 0 || cols < 0 || __builtin_mul_overflow(rows, cols, &total)) return -1;
    switch (g) {
    case BN_QGRAN_TENSOR:
        return total;
    case BN_QGRAN_CHANNEL:
        return cols;
    case BN_QGRAN_GROUP:
        return (group > 0 && cols % group == 0) ? group : -1;
    }
    return -1;
}

int64_t bn_absmean_n_scales(int64_t rows, int64_t cols, bn_qgran g, int64_t group)
{
    if (absmean_chunk(rows, cols, g, group) < 0) return 0;
    switch (g) {
    case BN_QGRAN_TENSOR:
        return 1;
    case BN_QGRAN_CHANNEL:
        return rows;
    case BN_QGRAN_GROUP:
        return rows * (cols / group);
    }
    return 0;
}

/* max(mean |w|, 1e-5), the mean accumulated in double and then rounded to float */
static float absmean_scale(const float *w, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += fabs((double)w[i]);
    float m = n > 0 ? (float)(sum / (double)n) : 0.0f;
    return m > ABSMEAN_FLOOR ? m : ABSMEAN_FLOOR;
}

/* clamp(round(v), lo, hi) as a float; NaN -> 0 */
static float round_clamp(float v, float lo, float hi)
{
    float r = rintf(v);
    if (isnan(r)) return 0.0f;
    return r < lo ? lo : r > hi ? hi : r;
}

bn_status bn_quantize_absmean(const float *w, int64_t rows, int64_t cols, bn_qgran g, int64_t group,
                              int8_t *q, float *scales)
{
    const int64_t chunk = absmean_chunk(rows, cols, g, group);
    if (chunk < 0) return BN_ERR_INVALID;
    if (scales == NULL || (rows * cols > 0 && (w == NULL || q == NULL))) return BN_ERR_INVALID;
    const int64_t ns = bn_absmean_n_scales(rows, cols, g, group);
    for (int64_t c = 0; c < ns; c++) {
        const float *wc = w ? w + c * chunk : NULL;
        const float m = absmean_scale(wc, chunk);
        const float inv = 1.0f / m;
        scales[c] = m;
        for (int64_t i = 0; i < chunk; i++)
            q[c * chunk + i] = (int8_t)round_clamp(wc[i] * inv, -1.0f, 1.0f);
    }
    return BN_OK;
}

void bn_dequantize_ternary(const int8_t *q, const float *scales, int64_t rows, int64_t cols,
                           bn_qgran g, int64_t group, float *out)
{
    const int64_t chunk = absmean_chunk(rows, cols, g, group);
    BN_ASSERT(chunk >= 0);
    const int64_t total = rows * cols;
    for (int64_t i = 0; i < total; i++) out[i] = (float)q[i] * scales[i / chunk];
}

void bn_fake_quantize_absmean(float *w, int64_t n)
{
    if (n <= 0) return;
    const float m = absmean_scale(w, n);
    const float inv = 1.0f / m;
    for (int64_t i = 0; i < n; i++) w[i] = round_clamp(w[i] * inv, -1.0f, 1.0f) * m;
}

/* s = 127 / max(max |x|, 1e-5) */
static float act_scale(const float *x, int64_t n)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    return 127.0f / (amax > ACT_FLOOR ? amax : ACT_FLOOR);
}

float bn_quantize_act_row(const float *x, int64_t n, int8_t *q)
{
    const float s = act_scale(x, n);
    for (int64_t i = 0; i < n; i++) q[i] = (int8_t)round_clamp(x[i] * s, -128.0f, 127.0f);
    return s;
}

void bn_quantize_act(const float *x, int64_t rows, int64_t n, int8_t *q, float *s)
{
    for (int64_t r = 0; r < rows; r++) s[r] = bn_quantize_act_row(x + r * n, n, q + r * n);
}

void bn_fake_quantize_act_row(float *x, int64_t n)
{
    const float s = act_scale(x, n);
    for (int64_t i = 0; i < n; i++) x[i] = round_clamp(x[i] * s, -128.0f, 127.0f) / s;
}

void bn_quant_error(const float *ref, const float *approx, int64_t n, bn_qerror *out)
{
    double sig = 0.0, noise = 0.0, dot = 0.0, aa = 0.0, maxe = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double r = ref[i], a = approx[i], e = r - a;
        sig += r * r;
        noise += e * e;
        dot += r * a;
        aa += a * a;
        if (fabs(e) > maxe || isnan(e)) maxe = fabs(e);
    }
    out->mse = n > 0 ? noise / (double)n : 0.0;
    out->sqnr_db = noise == 0.0 ? INFINITY : 10.0 * log10(sig / noise);
    if (sig == 0.0 && aa == 0.0)
        out->cosine = 1.0;
    else if (sig == 0.0 || aa == 0.0)
        out->cosine = 0.0;
    else
        out->cosine = dot / (sqrt(sig) * sqrt(aa));
    out->max_abs = maxe;
}
