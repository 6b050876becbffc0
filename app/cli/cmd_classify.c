/* cmd_classify.c - `bitnet classify`: the top classes of images (JPEG / PNG, decoded and
 * transformed as torchvision does) or raw float tensors under a ResNet / ViT GGUF, batched,
 * recorded in the run history. */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/image.h"
#include "bitnet/vision.h"
#include "common/history.h"
#include "common/model_common.h"

void cmd_classify_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet classify -m MODEL.gguf INPUT... [options]\n\n"
            "Classifies images with a ResNet, ViT or EfficientNet model (bitnet convert of a\n"
            "torchvision / timm checkpoint, docs/VISION.md) and prints each input's top\n"
            "classes with their softmax probabilities. An INPUT is a JPEG or PNG image\n"
            "(converted to the model's channels, the shorter side resized to --resize with\n"
            "PIL's antialiased bilinear filter, center-cropped to the model's size, scaled\n"
            "to [0,1] and normalised by the model's mean and std) or a raw tensor FILE.f32:\n"
            "one or more already normalised images of C x H x W little-endian float32 (then\n"
            "named FILE.f32[i]). Images run in batches through the ternary engine.\n\n"
            "Options:\n"
            "  -m, --model FILE   the vision GGUF (required)\n"
            "  --top K            classes shown per input (default 5, at most the classes)\n"
            "  --labels FILE      class names, one per line (default: the model's own, else\n"
            "                     the class numbers)\n"
            "  --resize N         Resize(N) before CenterCrop (default: the model's size;\n"
            "                     256 for an ImageNet model at 224)\n"
            "  --batch N          images per forward pass (default 8)\n"
            "  -t, --threads N    threads (default: one per core)\n"
            "  --json             print {\"model\", \"results\": [{\"input\", \"top\": "
            "[{\"class\",\n"
            "                     \"label\", \"prob\", \"logit\"}]}], \"images_per_second\", ...}\n"
            "  -h, --help         this help\n\n"
            "Exit status: 0 ok, 1 the model or an input cannot be used (one line naming it),\n"
            "2 usage error.\n");
}

typedef struct cls_opts {
    const char *model, *labels;
    const char **inputs;
    int n_inputs, top, json, resize, batch, threads;
} cls_opts;

static int parse_int(const char *C, int argc, char **argv, int *i, long lo, long hi, int *out)
{
    long v;
    if (*i + 1 >= argc || cli_parse_long(argv[*i + 1], lo, hi, &v))
        return cli_usage_error(C, "%s needs a number in %ld..%ld", argv[*i], lo, hi);
    (*i)++;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, cls_opts *o)
{
    const char *C = "classify";
    o->top = 5;
    o->batch = 8;
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    if (!o->inputs) return cli_usage_error(C, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_classify_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--labels")) {
            if (i + 1 >= argc) return cli_usage_error(C, "%s needs a file", a);
            *(a[2] == 'l' ? &o->labels : &o->model) = argv[++i];
        } else if (!strcmp(a, "--top")) {
            r = parse_int(C, argc, argv, &i, 1, 100000, &o->top);
        } else if (!strcmp(a, "--resize")) {
            r = parse_int(C, argc, argv, &i, 1, 65535, &o->resize);
        } else if (!strcmp(a, "--batch")) {
            r = parse_int(C, argc, argv, &i, 1, 4096, &o->batch);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            r = parse_int(C, argc, argv, &i, 1, 1024, &o->threads);
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(C, "unknown option '%s'", a);
        } else {
            o->inputs[o->n_inputs++] = a;
        }
        if (r) return r;
    }
    if (!o->model) return cli_usage_error(C, "missing -m MODEL");
    if (!o->n_inputs) return cli_usage_error(C, "no input images");
    return -1;
}

/* ---- labels --------------------------------------------------------------------------------- */

/* The n lines of path (a last newline ends the last line) into *out, pointing into *text;
 * the caller frees both. */
static int read_labels(const char *path, int n, char **text, char ***out)
{
    size_t len;
    if (!(*text = mc_read_file(path, &len))) {
        cli_error("%s: cannot read the labels", path);
        return -1;
    }
    char **l = *out = calloc((size_t)n, sizeof *l);
    if (!l) {
        cli_error("classify: out of memory");
        return -1;
    }
    int cnt = 0;
    for (char *p = *text; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        const size_t k = strlen(p);
        if (k && p[k - 1] == '\r') p[k - 1] = '\0';
        if (cnt < n) l[cnt] = p;
        cnt++;
        if (!e) break;
        p = e + 1;
    }
    if (cnt != n) {
        cli_error("%s: %d labels, the model has %d classes", path, cnt, n);
        return -1;
    }
    return 0;
}

/* ---- inputs ------------------------------------------------------------------------------- */

typedef struct item {
    char name[4200];
    float *x; /* per floats (bn_malloc'd) */
} item;

typedef struct run_state {
    const cls_opts *o;
    bn_ctx *ctx;
    bn_vmodel *m;
    const bn_vmodel_info *mi;
    int64_t per;
    item *batch;
    int n;
    float *x, *logits;
    const char *const *labels;
    char *ltext, **lbuf; /* --labels */
    cJSON *results;
    int64_t done;
    double fwd_s;
} run_state;

static int image_item(run_state *s, const char *path, item *it)
{
    const bn_vmodel_info *mi = s->mi;
    if (mi->in_chans != 1 && mi->in_chans != 3) {
        cli_error("%s: the model takes %d channels; give a raw .f32 tensor", path, mi->in_chans);
        return -1;
    }
    bn_image_load_params lp = {0};
    lp.channels = mi->in_chans;
    bn_image img = {0};
    if (bn_image_load(s->ctx, path, &lp, &img) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(s->ctx));
        return -1;
    }
    bn_image_prep p = {0};
    p.channels = mi->in_chans;
    p.resize = s->o->resize ? s->o->resize : mi->image_size;
    p.crop_w = p.crop_h = mi->image_size;
    for (int c = 0; c < mi->in_chans; c++) p.mean[c] = mi->mean[c], p.std[c] = mi->std[c];
    int c, h, w;
    const bn_status rc = bn_image_prepare(s->ctx, &img, &p, &it->x, &c, &h, &w);
    bn_image_release(&img);
    if (rc != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(s->ctx));
        return -1;
    }
    if (c != mi->in_chans || h != mi->image_size || w != mi->image_size) {
        cli_error("%s: prepared to %dx%dx%d, the model takes %dx%dx%d", path, c, h, w, mi->in_chans,
                  mi->image_size, mi->image_size);
        return -1;
    }
    snprintf(it->name, sizeof it->name, "%s", path);
    return 0;
}

static int ends_with(const char *s, const char *suf)
{
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* ---- running ------------------------------------------------------------------------------ */

static void print_one(run_state *s, const char *name, const float *lg)
{
    const int nc = s->mi->num_classes, k = s->o->top < nc ? s->o->top : nc;
    float mx = lg[0];
    for (int i = 1; i < nc; i++) mx = lg[i] > mx ? lg[i] : mx;
    double sum = 0;
    for (int i = 0; i < nc; i++) sum += exp((double)lg[i] - mx);
    cJSON *r = NULL, *top = NULL;
    if (s->o->json && (r = cJSON_CreateObject())) {
        cJSON_AddStringToObject(r, "input", name);
        top = cJSON_AddArrayToObject(r, "top");
        cJSON_AddItemToArray(s->results, r);
    }
    if (!s->o->json) printf("%s:", name);
    unsigned char *used = calloc((size_t)nc, 1);
    for (int j = 0; j < k && used; j++) {
        int b = -1;
        for (int i = 0; i < nc; i++)
            if (!used[i] && (b < 0 || lg[i] > lg[b])) b = i;
        used[b] = 1;
        const double p = exp((double)lg[b] - mx) / sum;
        char num[16];
        snprintf(num, sizeof num, "%d", b);
        const char *label = s->labels ? s->labels[b] : num;
        if (!s->o->json) {
            printf("%s %s (%d) %.2f%%", j ? "," : "", label, b, 100 * p);
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddNumberToObject(e, "class", b);
        cJSON_AddStringToObject(e, "label", label);
        cJSON_AddNumberToObject(e, "prob", p);
        cJSON_AddNumberToObject(e, "logit", lg[b]);
        cJSON_AddItemToArray(top, e);
    }
    free(used);
    if (!s->o->json) printf("\n");
}

static int flush(run_state *s)
{
    if (!s->n) return 0;
    for (int i = 0; i < s->n; i++)
        memcpy(s->x + i * s->per, s->batch[i].x, (size_t)s->per * sizeof(float));
    const double t0 = bn_time_now();
    if (bn_vmodel_forward(s->ctx, s->m, s->x, s->n, s->logits) != BN_OK) {
        cli_error("classify: %s", bn_ctx_errmsg(s->ctx));
        return -1;
    }
    s->fwd_s += bn_time_now() - t0;
    for (int i = 0; i < s->n; i++) {
        print_one(s, s->batch[i].name, s->logits + (int64_t)i * s->mi->num_classes);
        bn_free(s->batch[i].x);
        s->batch[i].x = NULL;
    }
    s->done += s->n;
    s->n = 0;
    return 0;
}

/* Adds a raw tensor file's images (each named FILE[i] when there are several). */
static int add_raw(run_state *s, const char *path)
{
    size_t len;
    char *data = mc_read_file(path, &len);
    if (!data) {
        cli_error("%s: cannot read", path);
        return -1;
    }
    const size_t bytes = (size_t)s->per * sizeof(float);
    if (len == 0 || len % bytes) {
        free(data);
        cli_error("%s: %zu bytes is not a whole number of %dx%dx%d float32 images", path, len,
                  s->mi->in_chans, s->mi->image_size, s->mi->image_size);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < len / bytes && rc == 0; i++) {
        item *it = &s->batch[s->n];
        if (!(it->x = bn_malloc(bytes))) {
            cli_error("out of memory");
            rc = -1;
            break;
        }
        memcpy(it->x, data + i * bytes, bytes);
        if (len / bytes > 1)
            snprintf(it->name, sizeof it->name, "%s[%zu]", path, i);
        else
            snprintf(it->name, sizeof it->name, "%s", path);
        if (++s->n == s->o->batch) rc = flush(s);
    }
    free(data);
    return rc;
}

static int run_inputs(run_state *s)
{
    for (int i = 0; i < s->o->n_inputs; i++) {
        const char *in = s->o->inputs[i];
        int rc;
        if (ends_with(in, ".f32")) {
            rc = add_raw(s, in);
        } else {
            rc = image_item(s, in, &s->batch[s->n]);
            if (rc == 0 && ++s->n == s->o->batch) rc = flush(s);
        }
        if (rc) return -1;
    }
    return flush(s);
}

static void report(run_state *s, cm_hist_run *h)
{
    const double ips = s->fwd_s > 0 ? (double)s->done / s->fwd_s : 0;
    cm_hist_metric(h, "images", (double)s->done);
    cm_hist_metric(h, "images_per_s", ips);
    if (!s->o->json) {
        fprintf(stderr, "%lld images in %.3f s (%.1f images/s, batch %d, %s)\n", (long long)s->done,
                s->fwd_s, ips, s->o->batch, s->mi->arch_name);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    if (!d) return;
    cJSON_AddStringToObject(d, "model", s->o->model);
    cJSON_AddStringToObject(d, "arch", s->mi->arch_name);
    cJSON_AddNumberToObject(d, "num_classes", s->mi->num_classes);
    cJSON_AddNumberToObject(d, "images", (double)s->done);
    cJSON_AddNumberToObject(d, "batch", s->o->batch);
    cJSON_AddNumberToObject(d, "seconds", s->fwd_s);
    cJSON_AddNumberToObject(d, "images_per_second", ips);
    cJSON_AddItemToObject(d, "results", s->results);
    s->results = NULL;
    cli_print_json(d);
}

static int classify(run_state *s, cm_hist_run *h)
{
    const cls_opts *o = s->o;
    bn_ctx_params cp = {.n_threads = o->threads};
    if (bn_ctx_new(&s->ctx, &cp) != BN_OK) {
        cli_error("classify: cannot start threads");
        return BN_EXIT_FAIL;
    }
    if (bn_vmodel_load(s->ctx, o->model, &s->m) != BN_OK) {
        cli_error("%s: %s", o->model, bn_ctx_errmsg(s->ctx));
        return BN_EXIT_FAIL;
    }
    s->mi = bn_vmodel_info_get(s->m);
    s->per = (int64_t)s->mi->in_chans * s->mi->image_size * s->mi->image_size;
    s->labels = s->mi->labels;
    if (o->labels) {
        if (read_labels(o->labels, s->mi->num_classes, &s->ltext, &s->lbuf) != 0)
            return BN_EXIT_FAIL;
        s->labels = (const char *const *)s->lbuf;
    }
    s->batch = calloc((size_t)o->batch, sizeof *s->batch);
    s->x = malloc((size_t)(o->batch * s->per) * sizeof(float));
    s->logits = malloc((size_t)o->batch * (size_t)s->mi->num_classes * sizeof(float));
    s->results = cJSON_CreateArray();
    if (!s->batch || !s->x || !s->logits || !s->results) {
        cli_error("classify: out of memory");
        return BN_EXIT_FAIL;
    }
    if (run_inputs(s) != 0) return BN_EXIT_FAIL;
    report(s, h);
    return BN_EXIT_OK;
}

int cmd_classify(int argc, char **argv)
{
    cls_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) {
        free(o.inputs);
        return rc;
    }
    cm_hist_run *h = cm_hist_begin("classify", o.model, cm_hist_params_argv(argc, argv));
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    rc = classify(&s, h);
    cm_hist_end_exit(h, rc, NULL, cli_last_error());
    for (int i = 0; s.batch && i < o.batch; i++) bn_free(s.batch[i].x);
    free(s.batch);
    free(s.x);
    free(s.logits);
    cJSON_Delete(s.results);
    bn_vmodel_free(s.m);
    bn_ctx_free(s.ctx);
    free(s.lbuf);
    free(s.ltext);
    free(o.inputs);
    return rc;
}
