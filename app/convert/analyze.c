/* analyze.c - `bitnet analyze`: what ternarization did to each weight matrix of a GGUF.
 *
 * For every 2-D tensor of the GGUF:
 *   ternary (i2_s, tq2_0, tq1_0)  the scale (one per tensor for i2_s, one per block of 256
 *                                 for the TQ layouts: mean, min, max), the fractions of
 *                                 zero, +1 and -1 codes, and of all-zero groups of 4 and 32
 *                                 weights (what a zero-skipping kernel could skip)
 *   float (f32, f16, bf16, q8_0)  mean |w|, rms, max |w| and the outliers
 * With the float source model (as `convert` takes it), each ternary tensor's float weights
 * W as the source computes with them: the same statistics and the SQNR and cosine of the
 * dequantized ternary weights W' (plus their low-rank correction b a when the file has one,
 * as the engine adds it) against W (SQNR = 10 log10(sum W^2 / sum (W - W')^2)).
 * With calibration text too, the source's f32 reference forward runs over the text and each
 * linear layer's input X (T tokens x K) gives the activation range, rms and outliers, the
 * SQNR of the engine's int8 per-token absmax quantization of X, and the layer's relative
 * output error on those tokens ||X (W - W')^T||_F / ||X W^T||_F (the weights' share of the
 * error; the activations' share is the int8 SQNR).
 *
 * An outlier is a value whose magnitude is over OUTLIER_RMS times the tensor's rms (the
 * threshold LLM.int8() uses for activations, in units of the rms). */
#include "convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/linalg.h"
#include "bitnet/quant.h"
#include "bitnet/tokenizer.h"
#include "bitnet/types.h"
#include "common/cli.h"
#include "common/json.h"

#define OUTLIER_RMS 6.0

typedef struct an_run {
    const cv_analyze_opts *o;
    bn_ctx *ctx;
    bn_gguf *g;
    cv_source src;
    int have_src;
    cJSON *tensors;  /* the report's array */
    char (*hf)[160]; /* the source name of each entry ("" when none) */
    int n;
} an_run;

static int is_ternary(int type)
{
    return type == BN_TYPE_I2_S || type == BN_TYPE_TQ2_0 || type == BN_TYPE_TQ1_0;
}

static int is_float(int type)
{
    return type == BN_TYPE_F32 || type == BN_TYPE_F16 || type == BN_TYPE_BF16 ||
           type == BN_TYPE_Q8_0;
}

/* ---- statistics ----------------------------------------------------------------------------- */

/* mean |v|, rms, max |v|, min, max and the count of |v| > OUTLIER_RMS * rms, into o. */
static void add_value_stats(cJSON *o, const char *prefix, const float *v, int64_t n, int range)
{
    double sa = 0, s2 = 0, mx = 0, lo = n ? v[0] : 0, hi = n ? v[0] : 0;
    for (int64_t i = 0; i < n; i++) {
        const double a = fabs(v[i]);
        sa += a;
        s2 += a * a;
        mx = a > mx ? a : mx;
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    const double rms = n ? sqrt(s2 / (double)n) : 0;
    int64_t out = 0;
    for (int64_t i = 0; i < n; i++) out += fabs(v[i]) > OUTLIER_RMS * rms;
    char k[64];
#define ADD(name, val)                                                                             \
    (snprintf(k, sizeof k, "%s%s", prefix, name), cJSON_AddNumberToObject(o, k, (val)))
    ADD("mean_abs", n ? sa / (double)n : 0);
    ADD("rms", rms);
    ADD("max_abs", mx);
    if (range) {
        ADD("min", lo);
        ADD("max", hi);
    }
    ADD("outliers", (double)out);
#undef ADD
}

static void add_ternary_stats(cJSON *o, const int8_t *q, int64_t n, const float *sc, int64_t nsc)
{
    int64_t cnt[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) cnt[q[i] + 1]++;
    double s = 0, lo = sc[0], hi = sc[0];
    for (int64_t i = 0; i < nsc; i++) {
        s += sc[i];
        lo = sc[i] < lo ? sc[i] : lo;
        hi = sc[i] > hi ? sc[i] : hi;
    }
    cJSON_AddNumberToObject(o, "scale", s / (double)nsc);
    cJSON_AddNumberToObject(o, "scale_min", lo);
    cJSON_AddNumberToObject(o, "scale_max", hi);
    cJSON_AddNumberToObject(o, "scales", (double)nsc);
    cJSON_AddNumberToObject(o, "zero_frac", (double)cnt[1] / (double)n);
    cJSON_AddNumberToObject(o, "plus_frac", (double)cnt[2] / (double)n);
    cJSON_AddNumberToObject(o, "minus_frac", (double)cnt[0] / (double)n);
    /* what a kernel that skips zero groups could skip: groups of g consecutive weights of a
     * row (rows are multiples of 128) that are all zero */
    static const int groups[] = {4, 32};
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        const int g = groups[gi];
        int64_t all = 0;
        for (int64_t i = 0; i + g <= n; i += g) {
            int z = 1;
            for (int j = 0; z && j < g; j++) z = q[i + j] == 0;
            all += z;
        }
        char k[32];
        snprintf(k, sizeof k, "zero_groups_%d", g);
        cJSON_AddNumberToObject(o, k, (double)all / (double)(n / g));
    }
}

/* ---- reading a tensor ----------------------------------------------------------------------- */

/* t (rows x cols, 2-D) as f32 into w; for a ternary type also its codes into q (may be NULL)
 * and its scales into sc (n / 256 entries at most; *nsc gets their number). 0, or -1 with a
 * message naming the tensor. */
static int read_tensor(const bn_gguf_tensor *t, float *w, int8_t *q, float *sc, int64_t *nsc,
                       char *err, size_t errsz)
{
    const int64_t n = t->ne[0] * t->ne[1];
    bn_status st = BN_OK;
    switch (t->type) {
    case BN_TYPE_F32:
        memcpy(w, t->data, (size_t)n * sizeof *w);
        return 0;
    case BN_TYPE_F16:
        bn_f16_to_f32_row(t->data, w, n);
        return 0;
    case BN_TYPE_BF16:
        bn_bf16_to_f32_row(t->data, w, n);
        return 0;
    case BN_TYPE_Q8_0:
        bn_dequantize_row_q8_0(t->data, w, n);
        return 0;
    case BN_TYPE_I2_S:
        st = bn_unpack_i2s(t->data, n, q, sc);
        *nsc = 1;
        break;
    case BN_TYPE_TQ2_0:
        st = bn_unpack_tq2_0(t->data, n, q, sc);
        *nsc = n / BN_QK_TQ;
        break;
    default: /* TQ1_0 */
        st = bn_unpack_tq1_0(t->data, n, q, sc);
        *nsc = n / BN_QK_TQ;
        break;
    }
    if (st == BN_ERR_FORMAT)
        return cm_fail(err, errsz, "%s: not ternary (a 2-bit code is 3)", t->name);
    if (st != BN_OK)
        return cm_fail(err, errsz, "%s: %lldx%lld cannot be read as %s (%s)", t->name,
                       (long long)t->ne[1], (long long)t->ne[0], bn_type_name(t->type),
                       bn_status_str(st));
    const int64_t per = n / *nsc;
    for (int64_t i = 0; i < n; i++) w[i] = (float)q[i] * sc[i / per];
    return 0;
}

/* The low-rank correction of ternary tensor t (`convert --lowrank`: <base>.lowrank_a, r x K,
 * and <base>.lowrank_b, N x r), added to its dequantized weights w (N x K) as the engine adds
 * it; *rank gets r (0: none). 0, or -1 with a message. */
static int add_lowrank(const bn_gguf *g, const bn_gguf_tensor *t, float *w, int64_t *rank,
                       char *err, size_t errsz)
{
    const int64_t N = t->ne[1], K = t->ne[0];
    char base[128], na[160], nb[160];
    const size_t len = strlen(t->name);
    *rank = 0;
    if (len < 8 || strcmp(t->name + len - 7, ".weight")) return 0;
    snprintf(base, sizeof base, "%.*s", (int)(len - 7), t->name);
    snprintf(na, sizeof na, "%s.lowrank_a", base);
    snprintf(nb, sizeof nb, "%s.lowrank_b", base);
    const bn_gguf_tensor *a = bn_gguf_find_tensor(g, na), *b = bn_gguf_find_tensor(g, nb);
    if (!a && !b) return 0;
    const int64_t R = a ? a->ne[1] : 0;
    if (!a || !b || a->n_dims != 2 || b->n_dims != 2 || a->ne[0] != K || b->ne[0] != R ||
        b->ne[1] != N || !is_float(a->type) || !is_float(b->type) || R < 1)
        return cm_fail(err, errsz, "%s: its low-rank factors %s and %s do not fit it", t->name, na,
                       nb);
    float *fa = malloc((size_t)(R * K) * sizeof *fa), *fb = malloc((size_t)(N * R) * sizeof *fb);
    int64_t nsc;
    int rc = fa && fb ? 0 : cm_fail(err, errsz, "out of memory (%s)", na);
    if (rc == 0) rc = read_tensor(a, fa, NULL, NULL, &nsc, err, errsz);
    if (rc == 0) rc = read_tensor(b, fb, NULL, NULL, &nsc, err, errsz);
    for (int64_t r = 0; rc == 0 && r < N; r++)
        for (int64_t j = 0; j < R; j++) {
            const float br = fb[r * R + j];
            for (int64_t k = 0; k < K; k++) w[r * K + k] += br * fa[j * K + k];
        }
    free(fa);
    free(fb);
    *rank = R;
    return rc;
}

/* A ternary tensor dequantized (rows x cols), with its low-rank correction, into a new
 * buffer; NULL with a message. */
static float *dequantized(const bn_gguf *g, const bn_gguf_tensor *t, char *err, size_t errsz)
{
    const int64_t n = t->ne[0] * t->ne[1];
    float *w = malloc((size_t)n * sizeof *w), *sc = malloc((size_t)(n / BN_QK_TQ + 1) * sizeof *sc);
    int8_t *q = malloc((size_t)n);
    int64_t nsc, rank;
    int rc = w && q && sc ? 0 : cm_fail(err, errsz, "out of memory (%s)", t->name);
    if (rc == 0) rc = read_tensor(t, w, q, sc, &nsc, err, errsz);
    if (rc == 0) rc = add_lowrank(g, t, w, &rank, err, errsz);
    free(q);
    free(sc);
    if (rc == 0) return w;
    free(w);
    return NULL;
}

/* ---- the weights ---------------------------------------------------------------------------- */

/* With the source: its float weights of t (hf) beside the GGUF's w. */
static int compare_source(an_run *a, const bn_gguf_tensor *t, const char *hf, const float *w,
                          cJSON *o, char *err, size_t errsz)
{
    const int64_t rows = t->ne[1], cols = t->ne[0], n = rows * cols;
    if (!cv_source_find(&a->src, hf))
        return cm_fail(err, errsz, "%s: the source has no %s (is it the source of %s?)",
                       a->o->source, hf, a->o->model);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f) return cm_fail(err, errsz, "out of memory (%s)", hf);
    int rc = cv_linear_f32(&a->src, hf, rows, cols, f, err, errsz);
    if (rc == 0) {
        bn_qerror e;
        bn_quant_error(f, w, n, &e);
        add_value_stats(o, "src_", f, n, 0);
        if (isfinite(e.sqnr_db)) /* +inf: exact, null in JSON */
            cJSON_AddNumberToObject(o, "sqnr_db", e.sqnr_db);
        else
            cJSON_AddNullToObject(o, "sqnr_db");
        cJSON_AddNumberToObject(o, "cosine", e.cosine);
    }
    free(f);
    return rc;
}

static int analyze_tensor(an_run *a, const bn_gguf_tensor *t, char *err, size_t errsz)
{
    const int64_t rows = t->ne[1], cols = t->ne[0], n = rows * cols;
    if (t->n_dims != 2 || n <= 0 || !(is_ternary(t->type) || is_float(t->type))) return 0;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(a->tensors, o)) {
        cJSON_Delete(o);
        return cm_fail(err, errsz, "out of memory");
    }
    char(*hf)[160] = realloc(a->hf, (size_t)(a->n + 1) * sizeof *hf);
    if (!hf) return cm_fail(err, errsz, "out of memory");
    a->hf = hf;
    if (cv_hf_name(t->name, hf[a->n], sizeof hf[a->n]) != 0) hf[a->n][0] = '\0';
    a->n++;
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "type", bn_type_name(t->type));
    cJSON_AddNumberToObject(o, "rows", (double)rows);
    cJSON_AddNumberToObject(o, "cols", (double)cols);
    cJSON_AddNumberToObject(o, "bytes", (double)t->size);
    cJSON_AddNumberToObject(o, "bits_per_weight", 8.0 * (double)t->size / (double)n);
    const int tern = is_ternary(t->type);
    float *w = malloc((size_t)n * sizeof *w), *sc = malloc((size_t)(n / BN_QK_TQ + 1) * sizeof *sc);
    int8_t *q = tern ? malloc((size_t)n) : NULL;
    int64_t nsc = 0;
    int rc = w && sc && (q || !tern) ? 0 : cm_fail(err, errsz, "out of memory (%s)", t->name);
    if (rc == 0) rc = read_tensor(t, w, q, sc, &nsc, err, errsz);
    if (rc == 0 && tern) add_ternary_stats(o, q, n, sc, nsc);
    int64_t rank = 0; /* the rest sees the weights the engine computes with */
    if (rc == 0 && tern) rc = add_lowrank(a->g, t, w, &rank, err, errsz);
    if (rc == 0 && rank) cJSON_AddNumberToObject(o, "lowrank", (double)rank);
    if (rc == 0 && !tern) add_value_stats(o, "", w, n, 0);
    if (rc == 0 && tern && a->have_src) {
        if (!a->hf[a->n - 1][0])
            rc = cm_fail(err, errsz, "%s: no source tensor is known for it", t->name);
        else
            rc = compare_source(a, t, a->hf[a->n - 1], w, o, err, errsz);
    }
    free(w);
    free(q);
    free(sc);
    return rc;
}

/* ---- the activations ------------------------------------------------------------------------ */

/* ||A B^T||_F^2 for A (T x K) and B (N x K), through doubles; NaN when out of memory. */
static double prod_norm2(bn_ctx *ctx, const float *a, int64_t T, const float *b, int64_t N,
                         int64_t K)
{
    double *ad = malloc((size_t)(T * K) * sizeof *ad), *bd = malloc((size_t)(N * K) * sizeof *bd),
           *c = malloc((size_t)(T * N) * sizeof *c);
    double r = NAN;
    if (ad && bd && c) {
        for (int64_t i = 0; i < T * K; i++) ad[i] = a[i];
        for (int64_t i = 0; i < N * K; i++) bd[i] = b[i];
        if (bn_linalg_gemm(ctx, 0, 1, T, N, K, ad, bd, c) == BN_OK) {
            r = 0;
            for (int64_t i = 0; i < T * N; i++) r += c[i] * c[i];
        }
    }
    free(ad);
    free(bd);
    free(c);
    return r;
}

/* The engine's int8 per-token quantization of x (T x K): its SQNR in dB. */
static double int8_sqnr(const float *x, int64_t T, int64_t K, int *ok)
{
    float *f = malloc((size_t)(T * K) * sizeof *f);
    if (!(*ok = f != NULL)) return 0;
    memcpy(f, x, (size_t)(T * K) * sizeof *f);
    for (int64_t t = 0; t < T; t++) bn_fake_quantize_act_row(f + t * K, K);
    bn_qerror e;
    bn_quant_error(x, f, T * K, &e);
    free(f);
    return e.sqnr_db;
}

/* cv_calib's observer: layer name's input x (T x K) and float weight w (N x K). */
static int observe(void *user, const char *name, const float *x, int64_t T, const float *w,
                   int64_t N, int64_t K, char *err, size_t errsz)
{
    an_run *a = user;
    int i = 0;
    while (i < a->n && strcmp(a->hf[i], name)) i++;
    cJSON *o = cJSON_GetArrayItem(a->tensors, i);
    const bn_gguf_tensor *t =
            o ? bn_gguf_find_tensor(a->g, cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")))
              : NULL;
    if (!t || !is_ternary(t->type))
        return cm_fail(err, errsz, "%s: no ternary tensor for the source's %s", a->o->model, name);
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToObject(o, "calibration", c)) {
        cJSON_Delete(c);
        return cm_fail(err, errsz, "out of memory");
    }
    add_value_stats(c, "act_", x, T * K, 1);
    int ok;
    cJSON_AddNumberToObject(c, "act_int8_sqnr_db", int8_sqnr(x, T, K, &ok));
    float *d = ok ? dequantized(a->g, t, err, errsz) : NULL;
    if (!d) return ok ? -1 : cm_fail(err, errsz, "out of memory (%s)", name);
    for (int64_t k = 0; k < N * K; k++) d[k] = w[k] - d[k];
    const double num = prod_norm2(a->ctx, x, T, d, N, K), den = prod_norm2(a->ctx, x, T, w, N, K);
    free(d);
    if (num != num || den != den) return cm_fail(err, errsz, "out of memory (%s)", name);
    cJSON_AddNumberToObject(c, "out_err", den > 0 ? sqrt(num / den) : 0);
    return 0;
}

static int calibrate(an_run *a, cJSON *report, char *err, size_t errsz)
{
    const cv_hparams *h = &a->src.hp;
    bn_tokenizer *tok = NULL;
    if (bn_tokenizer_from_gguf(a->ctx, a->g, &tok) != BN_OK) tok = NULL; /* bytes as ids */
    const int have_tok = tok != NULL;
    cv_seqs q = {0};
    int rc = cv_text_seqs(tok, a->o->calibrate, h->n_vocab, h->n_ctx, &q, err, errsz);
    bn_tokenizer_free(tok);
    cv_calib cal;
    cv_calib_init(&cal, a->ctx, bn_ctx_pool(a->ctx), CV_METHOD_ABSMEAN);
    cal.observe = observe;
    cal.user = a;
    if (rc == 0) rc = cv_reference(&a->src, bn_ctx_pool(a->ctx), &q, NULL, NULL, &cal, err, errsz);
    cv_calib_release(&cal);
    cJSON *c = rc == 0 ? cJSON_AddObjectToObject(report, "calibration") : NULL;
    if (c) {
        cJSON_AddStringToObject(c, "text", a->o->calibrate);
        cJSON_AddNumberToObject(c, "tokens", (double)q.total);
        cJSON_AddStringToObject(c, "tokenizer", have_tok ? "model" : "bytes");
    }
    cv_seqs_release(&q);
    return rc;
}

/* ---- the whole ------------------------------------------------------------------------------ */

/* Means over the ternary tensors, into report.summary. */
static void summarize(const an_run *a, cJSON *report)
{
    double z = 0, s = 0, e = 0, bytes = 0;
    int nt = 0, ns = 0, ne = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, a->tensors)
    {
        bytes += cm_json_num(o, "bytes", 0);
        if (!cJSON_GetObjectItem(o, "zero_frac")) continue;
        nt++;
        z += cm_json_num(o, "zero_frac", 0);
        const double db = cm_json_num(o, "sqnr_db", NAN);
        if (isfinite(db)) s += db, ns++;
        const cJSON *c = cJSON_GetObjectItem(o, "calibration");
        if (c) e += cm_json_num(c, "out_err", 0), ne++;
    }
    cJSON *r = cJSON_AddObjectToObject(report, "summary");
    cJSON_AddNumberToObject(r, "tensors", cJSON_GetArraySize(a->tensors));
    cJSON_AddNumberToObject(r, "ternary", nt);
    cJSON_AddNumberToObject(r, "bytes", bytes);
    cJSON_AddNumberToObject(r, "zero_frac_mean", nt ? z / nt : 0);
    if (ns) cJSON_AddNumberToObject(r, "sqnr_db_mean", s / ns);
    if (ne) cJSON_AddNumberToObject(r, "out_err_mean", e / ne);
}

static int run(an_run *a, cJSON *report, char *err, size_t errsz)
{
    const cv_analyze_opts *o = a->o;
    if (bn_gguf_open(a->ctx, o->model, &a->g) != BN_OK)
        return cm_fail(err, errsz, "%s: %s", o->model, bn_ctx_errmsg(a->ctx));
    if (o->source && cv_source_open(a->ctx, o->source, &a->src, err, errsz) != 0) return -1;
    a->have_src = o->source != NULL;
    cJSON_AddStringToObject(report, "model", o->model);
    if (o->source) cJSON_AddStringToObject(report, "source", o->source);
    cJSON_AddNumberToObject(report, "outlier_rms", OUTLIER_RMS);
    if (!(a->tensors = cJSON_AddArrayToObject(report, "tensors")))
        return cm_fail(err, errsz, "out of memory");
    for (int64_t i = 0; i < bn_gguf_n_tensors(a->g); i++)
        if (analyze_tensor(a, bn_gguf_tensor_at(a->g, i), err, errsz) != 0) return -1;
    if (o->calibrate && calibrate(a, report, err, errsz) != 0) return -1;
    summarize(a, report);
    return 0;
}

int cv_analyze(const cv_analyze_opts *o, cJSON **report, char *err, size_t errsz)
{
    *report = NULL;
    err[0] = '\0';
    if (o->calibrate && !o->source)
        return cm_fail(err, errsz,
                       "--calibrate needs --source SRC (activations come from the float model)");
    an_run a = {.o = o};
    bn_ctx_params cp = {.n_threads = o->threads};
    cJSON *r = cJSON_CreateObject();
    int rc = r ? 0 : cm_fail(err, errsz, "out of memory");
    if (rc == 0 && bn_ctx_new(&a.ctx, &cp) != BN_OK)
        rc = cm_fail(err, errsz, "cannot start threads");
    if (rc == 0) rc = run(&a, r, err, errsz);
    cv_source_close(&a.src); /* zeroed or (partly) opened: either is fine */
    bn_gguf_close(a.g);
    bn_ctx_free(a.ctx);
    free(a.hf);
    if (rc != 0) {
        cJSON_Delete(r);
        return -1;
    }
    *report = r;
    return 0;
}
