/* synth_vision.c - `bitnet synth --shape resnet18|resnet50|vit-s16|vit-b16|efficientnet-b0`:
 * the real models' shapes (224 x 224 RGB, 1000 classes, ImageNet's mean and std) with random
 * weights of a sensible scale, written through bn_vision_write. */
#include "synth_vision.h"

#include <string.h>

#include "bitnet/vision.h"
#include "commands.h"

static const float k_mean[3] = {0.485f, 0.456f, 0.406f}, k_std[3] = {0.229f, 0.224f, 0.225f};

static void imagenet(bn_vspec *s, bn_varch arch)
{
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->image_size = 224;
    s->in_chans = 3;
    s->num_classes = 1000;
    memcpy(s->mean, k_mean, sizeof k_mean);
    memcpy(s->std, k_std, sizeof k_std);
    s->bn_eps = 1e-5f;
    s->ln_eps = 1e-6f;
}

static void resnet(bn_vspec *s, int bottleneck, const int *depths)
{
    imagenet(s, BN_VARCH_RESNET);
    s->bottleneck = bottleneck;
    s->n_stages = 4;
    for (int i = 0; i < 4; i++) {
        s->depths[i] = depths[i];
        s->widths[i] = 64 << i;
    }
    s->stem_k = 7, s->stem_s = 2, s->stem_pool = 1;
}

static void vit(bn_vspec *s, int d, int heads)
{
    imagenet(s, BN_VARCH_VIT);
    s->patch = 16, s->d = d, s->depth = 12, s->heads = heads, s->ff = 4 * d;
}

/* torchvision's EfficientNet-B0 stages. */
static void effnet_b0(bn_vspec *s)
{
    static const int rows[7][6] = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},
                                   {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
                                   {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4},
                                   {6, 3, 1, 192, 320, 1}};
    imagenet(s, BN_VARCH_EFFICIENTNET);
    s->n_mb = 7;
    for (int i = 0; i < 7; i++) {
        s->mb[i].expand_ratio = (float)rows[i][0];
        s->mb[i].kernel = rows[i][1], s->mb[i].stride = rows[i][2];
        s->mb[i].in = rows[i][3], s->mb[i].out = rows[i][4], s->mb[i].layers = rows[i][5];
    }
}

static int shape_of(const char *name, bn_vspec *s)
{
    static const int d18[4] = {2, 2, 2, 2}, d50[4] = {3, 4, 6, 3};
    if (!strcmp(name, "resnet18"))
        resnet(s, 0, d18);
    else if (!strcmp(name, "resnet50"))
        resnet(s, 1, d50);
    else if (!strcmp(name, "vit-s16"))
        vit(s, 384, 6);
    else if (!strcmp(name, "vit-b16"))
        vit(s, 768, 12);
    else if (!strcmp(name, "efficientnet-b0"))
        effnet_b0(s);
    else
        return -1;
    s->name = name;
    return 0;
}

int synth_vision_known(const char *name)
{
    bn_vspec s;
    return shape_of(name, &s) == 0;
}

int synth_vision(const char *name, const char *out, uint64_t seed, int json)
{
    bn_vspec s;
    if (shape_of(name, &s) != 0) return cli_usage_error("synth", "unknown shape '%s'", name);
    bn_ctx *ctx;
    bn_ctx_params cp = {.n_threads = 1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot start: out of memory");
        return BN_EXIT_FAIL;
    }
    const double t0 = bn_time_now();
    bn_vmodel *m = NULL;
    bn_status rc = bn_vision_write(ctx, &s, bn_vsrc_random, &seed, out);
    if (rc == BN_OK) rc = bn_vmodel_load(ctx, out, &m);
    if (rc != BN_OK) {
        cli_error("synth: %s", bn_ctx_errmsg(ctx));
        bn_ctx_free(ctx);
        return BN_EXIT_FAIL;
    }
    const bn_vmodel_info *mi = bn_vmodel_info_get(m);
    const double secs = bn_time_now() - t0;
    int ret = BN_EXIT_OK;
    if (json) {
        cJSON *d = cJSON_CreateObject();
        if (d) {
            cJSON_AddStringToObject(d, "path", out);
            cJSON_AddStringToObject(d, "shape", name);
            cJSON_AddStringToObject(d, "arch", mi->arch_name);
            cJSON_AddNumberToObject(d, "params", (double)mi->n_params);
            cJSON_AddNumberToObject(d, "seconds", secs);
        }
        ret = !d || cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    } else {
        printf("wrote %s: %s shape (%s), %lld parameters, random ternary weights, in %.1f s\n", out,
               name, mi->arch_name, (long long)mi->n_params, secs);
    }
    bn_vmodel_free(m);
    bn_ctx_free(ctx);
    return ret;
}
