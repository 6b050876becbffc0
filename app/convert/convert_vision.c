/*
 * convert_vision.c - `bitnet convert` for ResNet and ViT classifiers (docs/VISION.md): the
 * spec from config.json, the source tensors by their torchvision / timm names through
 * bn_vision_write, then the written file loaded back and compared with the source framework's
 * logits on its reference images (ref_inputs.f32, ref_logits.f32, ref_labels.u8 beside the
 * weights). Never compared with our own float path.
 */
#include "convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/vision.h"
#include "common/cli.h"
#include "common/model_common.h"

/* ---- config.json ----------------------------------------------------------------------------- */

typedef struct vcfg {
    const cJSON *c;
    const char *path;
    char *err;
    size_t errsz;
} vcfg;

/* An integer key in lo..hi (def < 0: required). */
static int cfg_i(const vcfg *v, const char *key, long def, long lo, long hi, int *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(v->c, key);
    if (!x && def >= 0) {
        *out = (int)def;
        return 0;
    }
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < lo ||
        x->valuedouble > hi)
        return cm_fail(v->err, v->errsz, "%s: \"%s\" must be an integer in %ld..%ld", v->path, key,
                       lo, hi);
    *out = (int)x->valuedouble;
    return 0;
}

static int cfg_f(const vcfg *v, const char *key, double def, float *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(v->c, key);
    if (!x) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(x) || !(x->valuedouble > 0) || !isfinite(x->valuedouble))
        return cm_fail(v->err, v->errsz, "%s: \"%s\" must be a positive number", v->path, key);
    *out = (float)x->valuedouble;
    return 0;
}

/* An array of numbers: exactly n (n > 0) or 1..max (n == 0, count to *n_out). */
static int cfg_arr(const vcfg *v, const char *key, int n, int max, double *out, int *n_out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(v->c, key), *e;
    const int cnt = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || (n > 0 && cnt != n) || (n == 0 && (cnt < 1 || cnt > max)))
        return cm_fail(v->err, v->errsz, "%s: \"%s\" must be an array of %d number%s", v->path, key,
                       n > 0 ? n : max, n == 1 ? "" : "s");
    int i = 0;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return cm_fail(v->err, v->errsz, "%s: \"%s\"[%d] is not a number", v->path, key, i);
        out[i++] = e->valuedouble;
    }
    if (n_out) *n_out = cnt;
    return 0;
}

static int cfg_resnet(const vcfg *v, bn_vspec *s)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(v->c, "block");
    if (!cJSON_IsString(b) ||
        (strcmp(b->valuestring, "basic") && strcmp(b->valuestring, "bottleneck")))
        return cm_fail(v->err, v->errsz, "%s: \"block\" must be \"basic\" or \"bottleneck\"",
                       v->path);
    s->bottleneck = !strcmp(b->valuestring, "bottleneck");
    double d[BN_VISION_MAX_STAGES], w[BN_VISION_MAX_STAGES];
    if (cfg_arr(v, "depths", 0, BN_VISION_MAX_STAGES, d, &s->n_stages) != 0 ||
        cfg_arr(v, "widths", s->n_stages, 0, w, NULL) != 0)
        return -1;
    for (int i = 0; i < s->n_stages; i++) {
        if (d[i] < 1 || d[i] > 64 || w[i] < 1 || w[i] > 2048 || d[i] != floor(d[i]) ||
            w[i] != floor(w[i]))
            return cm_fail(v->err, v->errsz, "%s: depths 1..64 and widths 1..2048 (stage %d)",
                           v->path, i);
        s->depths[i] = (int)d[i];
        s->widths[i] = (int)w[i];
    }
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(v->c, "stem_pool");
    if (pool && !cJSON_IsBool(pool))
        return cm_fail(v->err, v->errsz, "%s: \"stem_pool\" must be true or false", v->path);
    s->stem_pool = !pool || cJSON_IsTrue(pool);
    if (cfg_i(v, "stem_kernel", 7, 1, 15, &s->stem_k) != 0 ||
        cfg_i(v, "stem_stride", 2, 1, 8, &s->stem_s) != 0)
        return -1;
    return cfg_f(v, "bn_eps", 1e-5, &s->bn_eps);
}

static int cfg_vit(const vcfg *v, bn_vspec *s)
{
    if (cfg_i(v, "patch_size", -1, 1, 4096, &s->patch) != 0 ||
        cfg_i(v, "embed_dim", -1, 1, 8192, &s->d) != 0 ||
        cfg_i(v, "depth", -1, 1, 256, &s->depth) != 0 ||
        cfg_i(v, "num_heads", -1, 1, 8192, &s->heads) != 0 ||
        cfg_f(v, "ln_eps", 1e-6, &s->ln_eps) != 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(v->c, "mlp_dim"))
        return cfg_i(v, "mlp_dim", -1, 1, 65536, &s->ff);
    float ratio;
    if (cfg_f(v, "mlp_ratio", 4.0, &ratio) != 0) return -1;
    const double ff = round((double)s->d * ratio);
    if (ff < 1 || ff > 65536)
        return cm_fail(v->err, v->errsz, "%s: \"mlp_ratio\" gives %g", v->path, ff);
    s->ff = (int)ff;
    return 0;
}

/* torchvision's EfficientNet-B0 stages: expand ratio, kernel, stride, in, out, layers. */
static const double k_b0[7][6] = {
        {1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
        {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}};

/* torchvision's _make_divisible(v, 8). */
static int div8(double v)
{
    int n = (int)(v + 4) / 8 * 8;
    if (n < 8) n = 8;
    return n < 0.9 * v ? n + 8 : n;
}

/* "blocks": [[expand_ratio, kernel, stride, in, out, layers], ...] as given, or B0's scaled
 * by "width_mult" and "depth_mult" as torchvision's _efficientnet_conf scales them. */
static int cfg_effnet(const vcfg *v, bn_vspec *s)
{
    const cJSON *bl = cJSON_GetObjectItemCaseSensitive(v->c, "blocks"), *row;
    float wm = 1.0f, dm = 1.0f;
    if (cfg_f(v, "width_mult", 1.0, &wm) != 0 || cfg_f(v, "depth_mult", 1.0, &dm) != 0 ||
        cfg_f(v, "bn_eps", 1e-5, &s->bn_eps) != 0 ||
        cfg_i(v, "head_width", 0, 0, 8192, &s->head_width) != 0)
        return -1;
    if (!bl) {
        s->n_mb = 7;
        for (int i = 0; i < 7; i++) {
            s->mb[i].expand_ratio = (float)k_b0[i][0];
            s->mb[i].kernel = (int)k_b0[i][1];
            s->mb[i].stride = (int)k_b0[i][2];
            s->mb[i].in = div8(k_b0[i][3] * wm);
            s->mb[i].out = div8(k_b0[i][4] * wm);
            s->mb[i].layers = (int)ceil(k_b0[i][5] * dm);
        }
        return 0;
    }
    const int n = cJSON_GetArraySize(bl);
    if (!cJSON_IsArray(bl) || n < 1 || n > BN_VISION_MAX_MB)
        return cm_fail(v->err, v->errsz, "%s: \"blocks\" must be 1 to %d rows", v->path,
                       BN_VISION_MAX_MB);
    cJSON_ArrayForEach(row, bl)
    {
        double r[6];
        int i = 0;
        const cJSON *e;
        if (cJSON_GetArraySize(row) != 6) i = -1;
        cJSON_ArrayForEach(e, row) if (i >= 0 && i < 6) r[i++] =
                cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (i != 6 || r[0] < 1 || r[1] < 1 || r[2] < 1 || r[3] < 1 || r[4] < 1 || r[5] < 1)
            return cm_fail(v->err, v->errsz,
                           "%s: \"blocks\"[%d] must be [expand_ratio, kernel, stride, in, out, "
                           "layers], positive numbers",
                           v->path, s->n_mb);
        s->mb[s->n_mb].expand_ratio = (float)r[0];
        s->mb[s->n_mb].kernel = (int)r[1];
        s->mb[s->n_mb].stride = (int)r[2];
        s->mb[s->n_mb].in = (int)r[3];
        s->mb[s->n_mb].out = (int)r[4];
        s->mb[s->n_mb].layers = (int)r[5];
        s->n_mb++;
    }
    return 0;
}

/* The spec of config.json; labels point into s->config. */
static int read_spec(const cv_source *src, bn_vspec *s, const char **labels, char *err,
                     size_t errsz)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", src->dir);
    const vcfg v = {src->config, path, err, errsz};
    memset(s, 0, sizeof *s);
    s->arch = !strcmp(src->hp.arch_name, "resnet") ? BN_VARCH_RESNET
              : !strcmp(src->hp.arch_name, "vit")  ? BN_VARCH_VIT
                                                   : BN_VARCH_EFFICIENTNET;
    double mean[BN_VISION_MAX_CHANS], std[BN_VISION_MAX_CHANS];
    if (cfg_i(&v, "in_chans", 3, 1, BN_VISION_MAX_CHANS, &s->in_chans) != 0 ||
        cfg_i(&v, "num_classes", -1, 1, 100000, &s->num_classes) != 0 ||
        cfg_i(&v, "image_size", -1, 1, 4096, &s->image_size) != 0 ||
        cfg_arr(&v, "mean", s->in_chans, 0, mean, NULL) != 0 ||
        cfg_arr(&v, "std", s->in_chans, 0, std, NULL) != 0)
        return -1;
    for (int c = 0; c < s->in_chans; c++) {
        s->mean[c] = (float)mean[c];
        s->std[c] = (float)std[c];
    }
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(src->config, "labels"), *e;
    if (lab) {
        int i = 0;
        if (!cJSON_IsArray(lab) || cJSON_GetArraySize(lab) != s->num_classes)
            return cm_fail(err, errsz, "%s: \"labels\" must be an array of %d strings", path,
                           s->num_classes);
        cJSON_ArrayForEach(e, lab)
        {
            if (!cJSON_IsString(e) || strlen(e->valuestring) > 256)
                return cm_fail(err, errsz, "%s: \"labels\"[%d] is not a short string", path, i);
            labels[i++] = e->valuestring;
        }
        s->labels = labels;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(src->config, "name");
    s->name = cJSON_IsString(name) ? name->valuestring : NULL;
    if (s->arch == BN_VARCH_EFFICIENTNET) return cfg_effnet(&v, s);
    return s->arch == BN_VARCH_RESNET ? cfg_resnet(&v, s) : cfg_vit(&v, s);
}

/* ---- the tensor source ---------------------------------------------------------------------- */

typedef struct vsrc {
    cv_source *s;
    const cv_opts *o;
    int cancelled;
} vsrc;

static bn_status src_tensor(void *user, bn_ctx *ctx, const char *name, int nd, const int64_t *shape,
                            float *dst)
{
    vsrc *v = user;
    if (cv_poll(v->o)) {
        v->cancelled = 1;
        return bn_ctx_set_error(ctx, BN_ERR_CANCELLED, "cancelled");
    }
    const cv_tensor *t = cv_source_find(v->s, name);
    if (!t) return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "%s: no tensor %s", v->s->weights, name);
    int ok = t->n_dims == nd && !t->transposed;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char a[128] = "", b[128] = "";
        for (int i = 0; i < t->n_dims; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        for (int i = 0; i < nd; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: shape [%s], config.json gives [%s]",
                                name, a, b);
    }
    const void *raw;
    void *owned;
    char err[512];
    if (cv_source_raw(v->s, t, &raw, &owned, err, sizeof err) != 0)
        return bn_ctx_set_error(ctx, BN_ERR_IO, "%s", err);
    bn_status rc = bn_dtype_to_f32(t->dtype, raw, (size_t)t->numel, dst);
    cv_source_release(v->s, t, owned);
    if (rc != BN_OK) return bn_ctx_set_error(ctx, rc, "tensor %s: cannot read as f32", name);
    for (uint64_t i = 0; i < t->numel; i++)
        if (!isfinite(dst[i]))
            return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "tensor %s: element %llu is not finite",
                                    name, (unsigned long long)i);
    return BN_OK;
}

/* ---- validation against the reference logits --------------------------------------------------
 */

typedef struct vref {
    float *x, *logits;
    unsigned char *labels;
    int64_t n;
} vref;

/* Reads file f of the source's folder whole; NULL with *len 0 when it does not exist. */
static void *read_beside(const cv_source *s, const char *f, size_t *len, int *missing)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", s->dir, f);
    *len = 0;
    *missing = stat(path, &st) != 0;
    return *missing ? NULL : mc_read_file(path, len);
}

static int load_ref(const cv_source *s, const bn_vmodel_info *mi, vref *r, char *err, size_t errsz)
{
    size_t lx, ll, lb;
    int mx, ml, mb;
    memset(r, 0, sizeof *r);
    r->x = read_beside(s, "ref_inputs.f32", &lx, &mx);
    r->logits = read_beside(s, "ref_logits.f32", &ll, &ml);
    r->labels = read_beside(s, "ref_labels.u8", &lb, &mb);
    if (mx || ml) return 0; /* no reference: said in the report */
    if (!r->x || !r->logits)
        return cm_fail(err, errsz, "%s: cannot read the reference files", s->dir);
    const size_t per = (size_t)mi->in_chans * mi->image_size * mi->image_size * sizeof(float);
    r->n = (int64_t)(lx / per);
    if (lx == 0 || lx % per)
        return cm_fail(err, errsz,
                       "%s/ref_inputs.f32: %zu bytes is not a whole number of %dx%dx%d images",
                       s->dir, lx, mi->in_chans, mi->image_size, mi->image_size);
    if (ll != (size_t)r->n * (size_t)mi->num_classes * sizeof(float))
        return cm_fail(err, errsz,
                       "%s/ref_logits.f32: %zu bytes, expected %lld images x %d classes", s->dir,
                       ll, (long long)r->n, mi->num_classes);
    if (!mb && lb != (size_t)r->n)
        return cm_fail(err, errsz, "%s/ref_labels.u8: %zu bytes, expected %lld", s->dir, lb,
                       (long long)r->n);
    return 0;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Our logits on the reference images, compared; adds "validation" to report. */
static int validate(bn_ctx *ctx, bn_vmodel *m, const vref *r, cJSON *report, cJSON *warnings,
                    char *err, size_t errsz)
{
    const bn_vmodel_info *mi = bn_vmodel_info_get(m);
    const int nc = mi->num_classes, batch = 32;
    const int64_t per = (int64_t)mi->in_chans * mi->image_size * mi->image_size;
    float *ours = malloc((size_t)batch * nc * sizeof(float));
    if (!ours) return cm_fail(err, errsz, "out of memory");
    double max_d = 0, sum_d = 0;
    int64_t agree = 0, ok_ref = 0, ok_ours = 0;
    const double t0 = bn_time_now();
    for (int64_t i0 = 0; i0 < r->n; i0 += batch) {
        const int cnt = (int)(r->n - i0 < batch ? r->n - i0 : batch);
        if (bn_vmodel_forward(ctx, m, r->x + i0 * per, cnt, ours) != BN_OK) {
            free(ours);
            return cm_fail(err, errsz, "validation: %s", bn_ctx_errmsg(ctx));
        }
        for (int i = 0; i < cnt; i++) {
            const float *a = ours + (int64_t)i * nc, *b = r->logits + (i0 + i) * nc;
            for (int k = 0; k < nc; k++) {
                const double d = fabs((double)a[k] - b[k]);
                max_d = d > max_d ? d : max_d;
                sum_d += d;
            }
            const int pa = argmax(a, nc), pb = argmax(b, nc);
            agree += pa == pb;
            if (r->labels) ok_ours += pa == r->labels[i0 + i], ok_ref += pb == r->labels[i0 + i];
        }
    }
    free(ours);
    cJSON *v = cJSON_AddObjectToObject(report, "validation");
    if (!v) return cm_fail(err, errsz, "out of memory");
    cJSON_AddStringToObject(v, "reference", "the source framework's logits (ref_logits.f32)");
    cJSON_AddNumberToObject(v, "images", (double)r->n);
    cJSON_AddNumberToObject(v, "max_abs_diff", max_d);
    cJSON_AddNumberToObject(v, "mean_abs_diff", sum_d / (double)(r->n * nc));
    cJSON_AddNumberToObject(v, "top1_agreement", (double)agree / (double)r->n);
    if (r->labels) {
        cJSON_AddNumberToObject(v, "accuracy_ours", (double)ok_ours / (double)r->n);
        cJSON_AddNumberToObject(v, "accuracy_ref", (double)ok_ref / (double)r->n);
    }
    cJSON_AddNumberToObject(v, "seconds", bn_time_now() - t0);
    if ((double)agree < 0.99 * (double)r->n) {
        char w[160];
        snprintf(w, sizeof w, "top-1 agreement with the source model is %.1f%% (< 99%%)",
                 100.0 * (double)agree / (double)r->n);
        cJSON_AddItemToArray(warnings, cJSON_CreateString(w));
    }
    return 0;
}

/* ---- the conversion -------------------------------------------------------------------------- */

static void describe(const cv_source *s, const cv_opts *o, const bn_vmodel_info *mi,
                     const char *tmp, cJSON *report)
{
    struct stat st;
    cJSON_AddStringToObject(report, "source", o->src);
    cJSON_AddStringToObject(report, "format",
                            s->fmt == CV_FMT_SAFETENSORS ? "safetensors"
                            : s->fmt == CV_FMT_TORCH     ? "pytorch"
                                                         : "onnx");
    cJSON_AddStringToObject(report, "source_architecture", s->hp.arch_name);
    cJSON_AddStringToObject(report, "output", o->out);
    cJSON_AddStringToObject(report, "type", "tq2_0");
    cJSON *v = cJSON_AddObjectToObject(report, "vision");
    if (v) {
        cJSON_AddStringToObject(v, "arch", mi->arch_name);
        cJSON_AddNumberToObject(v, "image_size", mi->image_size);
        cJSON_AddNumberToObject(v, "in_chans", mi->in_chans);
        cJSON_AddNumberToObject(v, "num_classes", mi->num_classes);
        cJSON_AddNumberToObject(v, "params", (double)mi->n_params);
    }
    cJSON_AddNumberToObject(report, "bytes_out", stat(tmp, &st) == 0 ? (double)st.st_size : 0);
}

static int write_and_check(cv_source *s, bn_ctx *ctx, const cv_opts *o, const char *tmp,
                           bn_vmodel **m, char *err, size_t errsz)
{
    bn_vspec spec;
    const char **labels = calloc(100000, sizeof *labels);
    if (!labels) return cm_fail(err, errsz, "out of memory");
    int rc = read_spec(s, &spec, labels, err, errsz);
    vsrc vs = {s, o, 0};
    if (rc == 0 && bn_vision_write(ctx, &spec, src_tensor, &vs, tmp) != BN_OK)
        rc = vs.cancelled ? -2 : cm_fail(err, errsz, "%s", bn_ctx_errmsg(ctx));
    free(labels);
    if (rc != 0) return rc;
    if (bn_vmodel_load(ctx, tmp, m) != BN_OK)
        return cm_fail(err, errsz, "the written file does not load: %s", bn_ctx_errmsg(ctx));
    return 0;
}

int cv_vision_convert(cv_source *s, bn_ctx *ctx, const cv_opts *o, cJSON *report, cJSON *warnings,
                      char *err, size_t errsz)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->out, (long)getpid());
    bn_vmodel *m = NULL;
    vref r = {0};
    int rc = write_and_check(s, ctx, o, tmp, &m, err, errsz);
    if (rc == 0) {
        describe(s, o, bn_vmodel_info_get(m), tmp, report);
        if (o->validate) rc = load_ref(s, bn_vmodel_info_get(m), &r, err, errsz);
    }
    if (rc == 0 && o->validate && r.n > 0) rc = validate(ctx, m, &r, report, warnings, err, errsz);
    if (rc == 0 && o->validate && r.n == 0)
        cJSON_AddItemToArray(
                warnings, cJSON_CreateString("no reference outputs (ref_inputs.f32, "
                                             "ref_logits.f32) beside the weights: not validated"));
    if (rc == 0 && cv_poll(o)) rc = -2;
    if (rc == 0 && rename(tmp, o->out) != 0)
        rc = cm_fail(err, errsz, "%s: cannot rename into place", o->out);
    if (rc != 0) unlink(tmp);
    bn_vmodel_free(m);
    free(r.x);
    free(r.logits);
    free(r.labels);
    return rc;
}
