/* convert_mixed.c - `convert --mixed K`: per-layer precision from measured sensitivity. After
 * calibration every linear layer has its ternary codes and scales (convert_calib.c). A layer's
 * sensitivity is what ternarizing it alone costs the float model: the f32 reference forward
 * (convert_validate.c) runs on the calibration tokens once with the float weights and once per
 * layer with that layer's ternary weights in place (its low-rank correction added when the
 * conversion writes one), and the increase of the mean negative log-likelihood is the score.
 * The K layers with the highest scores are written as Q8_0 (or Q4_0) rows instead, which the
 * engine multiplies with the same int8 activations (engine/src/model_qlin.c).
 *
 * The trade-off for other K is simulated the same way: the reference forward with the K most
 * sensitive layers at their Q8_0/Q4_0 values and the others ternary, compared with the float
 * logits on the validation text (perplexity, top-1 agreement, KL). It does not quantize the
 * activations as the engine does; the written file's own numbers are the validation's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/types.h"
#include "common/cli.h"
#include "convert.h"

#define MIXED_TOKENS 512 /* calibration tokens scored per what-if run */

/* What a what-if run puts in place of the float weights. */
typedef struct what_if {
    const cv_calib *cal;
    const cv_mixed *mx;
    int only; /* >= 0: this calibration layer ternary, the others float */
    int k;    /* only < 0: the first k of mx->rank kept (rounded to mx->type), others ternary */
} what_if;

static int layer_index(const cv_calib *cal, const char *name)
{
    for (int i = 0; i < cal->n; i++)
        if (!strcmp(cal->l[i].name, name)) return i;
    return -1;
}

/* w = diag(row_scale) q, plus b a when the layer has a correction. */
static void ternary_weights(const cv_calib_layer *l, float *w)
{
    const int64_t N = l->rows, K = l->cols, R = l->lr.rank;
    for (int64_t i = 0; i < N * K; i++) w[i] = (float)l->q[i] * l->row_scale[i / K];
    for (int64_t r = 0; r < N && R > 0; r++)
        for (int64_t j = 0; j < R; j++) {
            const float b = l->lr.b[r * R + j];
            for (int64_t c = 0; c < K; c++) w[r * K + c] += b * l->lr.a[j * K + c];
        }
}

static int substitute(void *user, const char *name, float *w, int64_t N, int64_t K, char *err,
                      size_t errsz)
{
    const what_if *wi = user;
    const int i = layer_index(wi->cal, name);
    if (i < 0 || wi->cal->l[i].rows != N || wi->cal->l[i].cols != K)
        return cm_fail(err, errsz, "%s: not calibrated", name);
    if (wi->only >= 0) {
        if (i == wi->only) ternary_weights(&wi->cal->l[i], w);
        return 0;
    }
    for (int j = 0; j < wi->k; j++)
        if (wi->mx->rank[j] == i) {
            cv_mixed_round(wi->mx, w, N, K);
            return 0;
        }
    ternary_weights(&wi->cal->l[i], w);
    return 0;
}

void cv_mixed_round(const cv_mixed *mx, float *w, int64_t N, int64_t K)
{
    const int64_t nb = K / BN_QK8_0;
    bn_block_q8_0 *b8 = mx->type == BN_TYPE_Q8_0 ? malloc((size_t)nb * sizeof *b8) : NULL;
    bn_block_q4_0 *b4 = mx->type == BN_TYPE_Q4_0 ? malloc((size_t)nb * sizeof *b4) : NULL;
    for (int64_t r = 0; r < N && (b8 || b4); r++) {
        if (b8) {
            bn_quantize_row_q8_0(w + r * K, b8, K);
            bn_dequantize_row_q8_0(b8, w + r * K, K);
        } else {
            bn_quantize_row_q4_0(w + r * K, b4, K);
            bn_dequantize_row_q4_0(b4, w + r * K, K);
        }
    }
    free(b8);
    free(b4);
}

/* The reference forward over q with wi's weights (wi NULL: the float model): its logits. */
static int forward(cv_source *s, const cv_calib *cal, what_if *wi, const cv_seqs *q,
                   const cv_opts *o, float *logits, char *err, size_t errsz)
{
    cv_calib sub;
    memset(&sub, 0, sizeof sub);
    sub.ctx = cal->ctx;
    sub.pool = cal->pool;
    sub.substitute = substitute;
    sub.user = wi;
    return cv_reference(s, cal->pool, q, logits, o, wi ? &sub : NULL, err, errsz);
}

/* Mean negative log-likelihood of each next token of q (nats). */
static double mean_nll(const float *logits, const cv_seqs *q, int64_t V, int64_t *n_out)
{
    double nll = 0;
    int64_t n = 0, base = 0;
    for (int s = 0; s < q->n; base += q->len[s], s++)
        for (int64_t i = 0; i + 1 < q->len[s]; i++) {
            const float *x = logits + (base + i) * V;
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < V; k++) mx = x[k] > mx ? x[k] : mx;
            for (int64_t k = 0; k < V; k++) sum += exp((double)x[k] - mx);
            nll += mx + log(sum) - x[q->tok[s][i + 1]];
            n++;
        }
    *n_out = n;
    return n ? nll / (double)n : 0;
}

static int by_sensitivity(const void *a, const void *b, void *sens)
{
    const double *s = sens, x = s[*(const int *)a], y = s[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* qsort_r is not in C11: a small insertion sort (n is the number of linear layers). */
static void sort_rank(int *rank, int n, double *sens)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && by_sensitivity(&rank[j - 1], &rank[j], sens) > 0; j--) {
            const int t = rank[j];
            rank[j] = rank[j - 1];
            rank[j - 1] = t;
        }
}

int cv_mixed_rank(cv_source *s, const cv_calib *cal, const cv_seqs *q0, const cv_opts *o,
                  cv_mixed *mx, char *err, size_t errsz)
{
    cv_seqs q = *q0; /* the first sequences, up to MIXED_TOKENS */
    q.total = 0;
    for (q.n = 0; q.n < q0->n && q.total + q0->len[q.n] <= MIXED_TOKENS; q.n++)
        q.total += q0->len[q.n];
    if (q.n == 0) q.n = 1, q.total = q0->len[0];
    const int64_t V = s->hp.n_vocab;
    mx->n = cal->n;
    mx->rank = malloc((size_t)cal->n * sizeof *mx->rank);
    mx->sens = malloc((size_t)cal->n * sizeof *mx->sens);
    float *logits = malloc((size_t)(q.total * V) * sizeof *logits);
    int rc = mx->rank && mx->sens && logits ? 0 : cm_fail(err, errsz, "out of memory (--mixed)");
    if (rc == 0) rc = forward(s, cal, NULL, &q, o, logits, err, errsz);
    if (rc == 0) mx->nll_float = mean_nll(logits, &q, V, &mx->tokens);
    for (int i = 0; rc == 0 && i < cal->n; i++) {
        what_if wi = {cal, mx, i, 0};
        int64_t n;
        rc = forward(s, cal, &wi, &q, o, logits, err, errsz);
        if (rc == 0) mx->sens[i] = mean_nll(logits, &q, V, &n) - mx->nll_float;
        mx->rank[i] = i;
    }
    if (rc == 0) sort_rank(mx->rank, cal->n, mx->sens);
    free(logits);
    return rc;
}

int cv_mixed_kept(const cv_mixed *mx, const cv_calib *cal, const char *name)
{
    const int i = layer_index(cal, name);
    for (int j = 0; i >= 0 && j < mx->k; j++)
        if (mx->rank[j] == i) return 1;
    return 0;
}

int cv_mixed_tradeoff(cv_source *s, const cv_calib *cal, const cv_mixed *mx, const cv_seqs *q,
                      int text_seq, const float *ref_logits, const double *bytes, const cv_opts *o,
                      cJSON *out, char *err, size_t errsz)
{
    const int64_t V = s->hp.n_vocab;
    float *logits = malloc((size_t)(q->total * V) * sizeof *logits);
    int rc = logits ? 0 : cm_fail(err, errsz, "out of memory (--mixed)");
    for (int k = 0; rc == 0 && k <= mx->n; k++) {
        /* 0, 1, 2, 4, 8, ..., the K asked, and every layer */
        if (k > 0 && (k & (k - 1)) && k != mx->k && k != mx->n) continue;
        what_if wi = {cal, mx, -1, k};
        cJSON *m = cJSON_CreateObject(), *row = cJSON_CreateObject();
        rc = forward(s, cal, &wi, q, o, logits, err, errsz);
        if (rc == 0) rc = cv_metrics(ref_logits, logits, q, V, text_seq, m, err, errsz);
        cJSON_AddNumberToObject(row, "k", k);
        cJSON_AddNumberToObject(row, "bytes", bytes[k]);
        const char *keys[] = {"ppl_conv", "top1_agreement", "kl_mean", "cosine_mean"};
        const char *as[] = {"ppl", "top1_agreement", "kl_mean", "cosine_mean"};
        for (int i = 0; i < 4; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, keys[i]);
            if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(row, as[i], v->valuedouble);
        }
        cJSON_AddBoolToObject(row, "written", k == mx->k);
        cJSON_AddItemToArray(out, row);
        cJSON_Delete(m);
    }
    free(logits);
    return rc;
}

cJSON *cv_mixed_report(const cv_mixed *mx, const cv_calib *cal)
{
    cJSON *r = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(r, "type", bn_type_name(mx->type));
    cJSON_AddNumberToObject(r, "kept", mx->k);
    cJSON_AddNumberToObject(r, "layers_ranked", mx->n);
    cJSON_AddNumberToObject(r, "tokens", (double)mx->tokens);
    cJSON_AddNumberToObject(r, "nll_float", mx->nll_float);
    for (int j = 0; j < mx->n; j++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", cal->l[mx->rank[j]].name);
        cJSON_AddNumberToObject(o, "nll_increase", mx->sens[mx->rank[j]]);
        cJSON_AddBoolToObject(o, "kept", j < mx->k);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(r, "layers", arr);
    return r;
}

void cv_mixed_release(cv_mixed *mx)
{
    free(mx->rank);
    free(mx->sens);
    const int type = mx->type, k = mx->k;
    memset(mx, 0, sizeof *mx);
    mx->type = type, mx->k = k;
}
