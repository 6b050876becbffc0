/*
 * vision_internal.h - the model struct shared by vision_model.c (loading) and
 * vision_forward.c (the forward passes).
 */
#ifndef BITNET_VISION_INTERNAL_H
#define BITNET_VISION_INTERNAL_H

#include "bitnet/vision.h"

#define MAX_IMAGE   4096
#define MAX_WIDTH   8192
#define MAX_DEPTH   256
#define MAX_CLASSES 100000
#define MAX_FF      65536

typedef struct rn_block {
    bn_tlayer c1, c2, c3, down;
    int has_c3, has_down;
} rn_block;

typedef struct vit_block {
    float *n1w, *n1b, *n2w, *n2b;
    bn_tlayer qkv, proj, fc1, fc2;
} vit_block;

typedef struct eff_block {
    int in, exp, out, k, stride, se;
    int has_expand, residual;
    bn_tlayer expand, dw, se1, se2, project;
} eff_block;

struct bn_vmodel {
    bn_vmodel_info info;
    char *name;
    char **labels;
    /* resnet */
    int bottleneck, n_stages, depths[BN_VISION_MAX_STAGES], widths[BN_VISION_MAX_STAGES];
    int stem_k, stem_s, stem_pool, n_blocks, feat;
    float *stem_w, *stem_scale, *stem_bias;
    rn_block *blk;
    /* vit */
    int d, depth, heads, ff, patch, grid;
    float eps;
    float *patch_w, *patch_b, *cls, *pos, *norm_w, *norm_b;
    vit_block *vb;
    /* efficientnet (stem_* shared with resnet) */
    int n_eff, stem_width, head_width;
    eff_block *eb;
    bn_tlayer head;
    /* all */
    float *fc_w, *fc_b;
    /* loading: which tensors were used */
    const bn_gguf *g;
    unsigned char *used;
};

/* vision_avx2.c (x86 only; the caller checks AVX2 + FMA): out[r * 16 + j] = sum_i rows[r][i] *
 * wt16[i * 16 + j] for the four rows r (a row may repeat) and the 16 channels of the block. */
void bn__vision_fblock_avx2(const float *const rows[4], const float *wt16, int64_t k, float *out);

#endif /* BITNET_VISION_INTERNAL_H */
