/*
 * bitnet/vision.h - image classifiers on the ternary engine: the layer operations (ternary
 * convolution through im2col and the ternary GEMM, float convolution, pooling, activations,
 * LayerNorm, attention, squeeze-excitation) and ResNet / ViT / EfficientNet models loaded from
 * GGUF.
 *
 * Usage (a model):
 *
 *     bn_vmodel *m;
 *     if (bn_vmodel_load(ctx, "resnet.gguf", &m) != BN_OK) {
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // names the tensor and both shapes
 *         return 1;
 *     }
 *     const bn_vmodel_info *mi = bn_vmodel_info_get(m);
 *     // x: n images of mi->in_chans x mi->image_size x mi->image_size floats, normalised
 *     float *logits = bn_malloc(n * mi->num_classes * sizeof(float));
 *     bn_vmodel_forward(ctx, m, x, n, logits);
 *     bn_vmodel_free(m);
 *
 * Formats and conventions (quantization, tensor names, keys): docs/VISION.md.
 *
 * Tensors are NCHW (n images of C channels of H rows of W floats) for convolutions and
 * token-major (T rows of D floats) for linear layers. A ternary layer holds its codes in a
 * bn_tmat whose row scales are the per-channel multipliers (absmean times the folded BN
 * scale), plus a bias. Activations entering a ternary conv are quantized to int8 with one
 * absmax scale per image (the whole C*H*W tensor), those entering a ternary linear layer
 * with one per token, exactly as bn_quantize_act_row computes it.
 *
 * Every ternary op has a scalar reference (`_ref`) that computes the int32 sums directly and
 * applies the same float formula, y = (float)acc * (scale[c] * inv_scale) + bias[c]; the
 * GEMM path equals it bit for bit (the kernels' guarantee, see bitnet/kernels.h).
 *
 * Ownership: the ops write into caller buffers and allocate only their scratch (through the
 * engine's hook; BN_ERR_NOMEM when it fails). A bn_vmodel owns everything it holds (weights
 * are copied out of the file, which is closed after loading); free it with bn_vmodel_free.
 */
#ifndef BITNET_VISION_H
#define BITNET_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/gguf.h"
#include "bitnet/kernels.h"
#include "bitnet/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution geometry ------------------------------------------------------------ */

typedef struct bn_conv_geom {
    int cin, cout; /* channels in and out */
    int kh, kw;    /* kernel */
    int stride, pad;
    int groups; /* 1, or cin == cout == groups for a depthwise conv */
} bn_conv_geom;

/* Output size of one spatial side: (in + 2 pad - k) / stride + 1, or 0 when it is not
 * positive. */
int bn_conv_out(int in, int k, int stride, int pad);

/* ---- ternary layers ------------------------------------------------------------------ */

/* A ternary conv (K = cin * kh * kw in PyTorch order) or linear layer (K = in features,
 * kh = kw = 1 and the geometry's spatial fields unused). w's row scales are the per-channel
 * multipliers; bias has cout entries (owned). */
typedef struct bn_tlayer {
    bn_conv_geom g;
    bn_tmat w;
    float *bias;
} bn_tlayer;

/* Builds a layer from ternary codes q (cout x K), per-channel multipliers and biases (NULL:
 * zeros); copies everything. BN_ERR_FORMAT when a code is not ternary. */
bn_status bn_tlayer_init(bn_tlayer *l, const bn_conv_geom *g, const int8_t *q, const float *scale,
                         const float *bias);
void bn_tlayer_release(bn_tlayer *l);

/* Time spent inside the ternary convs, for measuring im2col against the GEMM (seconds,
 * accumulated; the caller zeroes it). */
typedef struct bn_vision_timing {
    double quant_s;  /* absmax quantization of the input */
    double im2col_s; /* building the int8 patch rows */
    double gemm_s;   /* bn_tmatmul */
    double out_s;    /* transposing to NCHW with the bias */
} bn_vision_timing;

/* Ternary conv of n images x (n x cin x h x w) into y (n x cout x oh x ow), groups == 1:
 * per image an absmax int8 quantization, im2col of the int8 values into the rows of a
 * bn_qact (the image's scale on each of its rows), one bn_tmatmul over a chunk of images,
 * then bias and transpose. k NULL: bn_kernels_get(). t may be NULL. */
bn_status bn_tconv2d(bn_threadpool *pool, const bn_kernels *k, const bn_tlayer *l, const float *x,
                     int n, int h, int w, float *y, bn_vision_timing *t);
/* The scalar reference: direct convolution over the int8 codes (groups 1 or depthwise). */
bn_status bn_tconv2d_ref(const bn_tlayer *l, const float *x, int n, int h, int w, float *y);
/* Depthwise ternary conv (groups == cin == cout; each row of the layer's codes is one
 * channel's kh * kw kernel), per-image activation scale: exact int32 sums tap by tap over
 * shifted rows, channels split over the pool (NULL: here); equals bn_tconv2d_ref to the bit. */
bn_status bn_tconv2d_dw(bn_threadpool *pool, const bn_tlayer *l, const float *x, int n, int h,
                        int w, float *y);

/* Ternary linear layer on T tokens (x: T x K, y: T x cout): per-token int8, the GEMM,
 * bias. The _ref variant sums directly. */
bn_status bn_tlinear(bn_threadpool *pool, const bn_kernels *k, const bn_tlayer *l, const float *x,
                     int64_t n_tok, float *y);
bn_status bn_tlinear_ref(const bn_tlayer *l, const float *x, int64_t n_tok, float *y);

/* The int8 patch rows of one quantized image (xq: cin x h x w): row p = oy * ow + ox holds
 * K = cin * kh * kw values (zero outside the image), padded with zeros to ld; rsum[p] gets
 * the row's sum (may be NULL). Built from a zero-padded copy of the image (BN_ERR_NOMEM when
 * it cannot be allocated), split over the pool by output rows (pool may be NULL). */
bn_status bn_im2col_q8(bn_threadpool *pool, const bn_conv_geom *g, const int8_t *xq, int h, int w,
                       int8_t *rows, int64_t ld, int32_t *rsum);

/* ---- float layers ----------------------------------------------------------------------- */

/* Float conv (groups 1 or depthwise): wt is cout x (cin / groups) x kh x kw (PyTorch order);
 * y = conv + bias (bias NULL: none); then, when scale is not NULL, y = y * scale[c] +
 * shift[c] (a folded BN; shift NULL: none). groups 1: im2col and the kernel table's dot_f32
 * over the pool (pool may be NULL); BN_ERR_NOMEM when its scratch cannot be allocated. */
bn_status bn_conv2d_f32(bn_threadpool *pool, const bn_conv_geom *g, const float *wt,
                        const float *bias, const float *scale, const float *shift, const float *x,
                        int n, int h, int w, float *y);
/* y (T x out) = x (T x in) W^T + b; W is out x in (b NULL: none). */
void bn_linear_f32(const float *wt, const float *b, int64_t in, int64_t out, const float *x,
                   int64_t n_tok, float *y);

/* ---- pooling and element-wise ------------------------------------------------------- */

/* Max pool (padding never wins) and average pool (count_include_pad as torch's default) of
 * n x c planes of h x w. */
void bn_maxpool2d(const float *x, int n, int c, int h, int w, int k, int stride, int pad, float *y);
void bn_avgpool2d(const float *x, int n, int c, int h, int w, int k, int stride, int pad, float *y);
/* y[n][c] = mean of the plane (n x c outputs). */
void bn_global_avgpool(const float *x, int n, int c, int hw, float *y);

void bn_relu(float *x, int64_t n);
void bn_silu(float *x, int64_t n);
void bn_gelu(float *x, int64_t n); /* exact: x/2 (1 + erf(x / sqrt 2)) */
/* x += r, element-wise. */
void bn_add(float *x, const float *r, int64_t n);

/* LayerNorm over each row of d (biased variance, eps inside the root); w, b may be NULL. */
void bn_layernorm(const float *x, const float *wt, const float *b, int64_t rows, int64_t d,
                  float eps, float *y);

/* Squeeze-excitation on n x c x hw: s = sigmoid(W2 silu(W1 mean + b1) + b2) per channel
 * (W1: cr x c, W2: c x cr, float), x *= s. scratch: c + cr floats. */
void bn_squeeze_excite(float *x, int n, int c, int hw, const float *w1, const float *b1,
                       const float *w2, const float *b2, int cr, float *scratch);

/* Multi-head self-attention, not causal, float, of n_img images of n_tok tokens each: qkv is
 * n_img * n_tok rows of 3D (q, k, v, heads contiguous, head dim D / heads), out n_img * n_tok
 * rows of D; scale 1/sqrt(head dim). The (image, head) pairs run over the pool (NULL: here);
 * BN_ERR_NOMEM when the score scratch cannot be allocated. */
bn_status bn_mhsa(bn_threadpool *pool, const float *qkv, int n_img, int64_t n_tok, int d, int heads,
                  float *out);

/* ---- GGUF helpers ------------------------------------------------------------------------ */

/* A ternary layer's weight tensor as docs/VISION.md stores it: TQ2_0 rows of Kp = K rounded
 * up to 256 (zero padded), every block's d 1.0. bn_tq2_rows_bytes gives the size (0 on
 * overflow); pack writes rows * Kp / 256 blocks. */
int64_t bn_vision_kpad(int64_t k);
size_t bn_tq2_rows_bytes(int64_t rows, int64_t k);
void bn_tq2_rows_pack(const int8_t *q, int64_t rows, int64_t k, uint8_t *out);

/* ---- models --------------------------------------------------------------------------- */

typedef enum bn_varch {
    BN_VARCH_RESNET = 0,
    BN_VARCH_VIT = 1,
    BN_VARCH_EFFICIENTNET = 2,
} bn_varch;

#define BN_VISION_MAX_STAGES 4
#define BN_VISION_MAX_CHANS  16
#define BN_VISION_MAX_MB     16 /* MBConv stages */
#define BN_VISION_MAX_BLOCKS 128

typedef struct bn_vmodel_info {
    bn_varch arch;
    const char *arch_name; /* "resnet", "vit", "efficientnet" */
    const char *name;      /* general.name or "" */
    int image_size, in_chans, num_classes;
    float mean[BN_VISION_MAX_CHANS], std[BN_VISION_MAX_CHANS];
    const char *const *labels; /* num_classes strings, or NULL */
    int64_t n_params;          /* weights and biases */
    size_t weight_bytes;       /* in memory */
} bn_vmodel_info;

typedef struct bn_vmodel bn_vmodel;

/* Loads and validates a vision GGUF (every key, tensor type and shape; extra tensors are
 * refused). BN_ERR_FORMAT / BN_ERR_RANGE / BN_ERR_UNSUPPORTED with a one-line message. */
bn_status bn_vmodel_load(bn_ctx *ctx, const char *path, bn_vmodel **out);
bn_status bn_vmodel_load_gguf(bn_ctx *ctx, const bn_gguf *g, bn_vmodel **out);
void bn_vmodel_free(bn_vmodel *m);
const bn_vmodel_info *bn_vmodel_info_get(const bn_vmodel *m);
/* True when general.architecture names a vision model. */
int bn_vision_is_arch(const char *arch);

/* Logits of n images (x: n x in_chans x image_size^2, normalised) into logits
 * (n x num_classes), on ctx's pool. ref nonzero: the scalar reference ops throughout. */
bn_status bn_vmodel_forward(bn_ctx *ctx, bn_vmodel *m, const float *x, int n, float *logits);
bn_status bn_vmodel_forward_ex(bn_ctx *ctx, bn_vmodel *m, const float *x, int n, float *logits,
                               int ref, bn_vision_timing *t);

/* ---- writing a model (the converter, synthetic models) ------------------------------------ */

/* The hyper-parameters of a model (docs/VISION.md's config.json). */
typedef struct bn_vspec {
    bn_varch arch;
    const char *name; /* general.name (NULL: none) */
    int image_size, in_chans, num_classes;
    float mean[BN_VISION_MAX_CHANS], std[BN_VISION_MAX_CHANS];
    const char *const *labels; /* num_classes strings, or NULL */
    int f16;                   /* float layers (stem, patch, classifier) as F16 */
    /* resnet */
    int bottleneck, n_stages, depths[BN_VISION_MAX_STAGES], widths[BN_VISION_MAX_STAGES];
    int stem_k, stem_s, stem_pool;
    float bn_eps;
    /* vit */
    int patch, d, depth, heads, ff;
    float ln_eps;
    /* efficientnet: torchvision's MBConvConfig rows (after width / depth scaling); the stem
     * has mb[0].in channels, the head conv head_width (0: 4 * the last out) */
    int n_mb;
    struct {
        float expand_ratio;
        int kernel, stride, in, out, layers;
    } mb[BN_VISION_MAX_MB];
    int head_width;
} bn_vspec;

/* A source of float tensors by their torchvision / timm names (docs/VISION.md): fills dst
 * with the tensor's elements as f32, row-major, after checking that its shape is exactly
 * shape[0..nd) (outermost first, PyTorch's order). On error returns a status with a one-line
 * message on ctx naming the tensor. */
typedef bn_status (*bn_vsrc_fn)(void *user, bn_ctx *ctx, const char *name, int nd,
                                const int64_t *shape, float *dst);

/* Checks the spec (the loader's limits), reads every tensor from src, quantizes the ternary
 * layers (absmean per output channel), folds each BatchNorm into its conv's scale and bias,
 * and writes the GGUF at path (temp file + rename). */
bn_status bn_vision_write(bn_ctx *ctx, const bn_vspec *s, bn_vsrc_fn src, void *user,
                          const char *path);

/* A bn_vsrc_fn of random weights (user: a uint64_t seed, advanced), of a sensible scale
 * (He-style for weights, BN statistics near 1 and 0), for tests and benchmarks. */
bn_status bn_vsrc_random(void *user, bn_ctx *ctx, const char *name, int nd, const int64_t *shape,
                         float *dst);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_VISION_H */
