/*
 * bitnet/image.h - decoding JPEG and PNG images (libjpeg-turbo, libpng) into 8-bit pixels,
 * and the preprocessing of torchvision's standard evaluation transforms (Resize, CenterCrop,
 * ToTensor, Normalize) on them, reproducing what torchvision does with a PIL image.
 *
 * Usage (what `bitnet classify` does with each file):
 *
 *     bn_image img = {0};
 *     if (bn_image_load(ctx, "cat.jpg", NULL, &img) != BN_OK) {   // NULL: defaults (RGB)
 *         fprintf(stderr, "%s\n", bn_ctx_errmsg(ctx));   // "cat.jpg: truncated JPEG data"
 *         return 1;
 *     }
 *     bn_image_prep p = BN_IMAGE_PREP_IMAGENET;         // Resize(256), CenterCrop(224), ...
 *     float *x;                                        // c*h*w floats, CHW, caller frees
 *     int c, h, w;
 *     bn_status rc = bn_image_prepare(ctx, &img, &p, &x, &c, &h, &w);
 *     bn_image_release(&img);
 *     ...
 *     bn_free(x);
 *
 * Pixels: a bn_image holds h rows of w * c bytes (c = 3: R, G, B; c = 1: grey), row after
 * row with no padding (HWC). The caller owns the struct; its data is allocated with the
 * engine's hook and freed by bn_image_release(), which zeroes the struct (a zeroed struct
 * may be released again). Every function that makes an image writes it to *out only on
 * success (out is left zeroed on failure) and never changes its source.
 *
 * Decoding (the conversions are those of PIL's Image.open(f).convert('RGB'), so a model
 * trained with torchvision sees the same pixels):
 * - JPEG: greyscale (replicated to R = G = B), YCbCr and RGB, CMYK and YCCK (an Adobe APP14
 *   marker means inverted CMYK, as Photoshop writes it; then R = C'K'/255 in PIL's rounding,
 *   with C', K' the stored values; without the marker the values are taken as plain CMYK),
 *   baseline, progressive (at most BN_IMAGE_MAX_SCANS scans) and arithmetic-coded.
 * - PNG: every colour type and bit depth; palette expanded; 16-bit samples keep their high
 *   byte (what PIL does for 16-bit RGB; PIL clips 16-bit greyscale at 255 instead, which
 *   makes most such images white: we do not copy that); interlaced (Adam7) images.
 * - Alpha (PNG RGBA, grey+alpha, a tRNS chunk): BN_IMAGE_ALPHA_DROP (the default, what
 *   convert('RGB') does) keeps the colour and ignores alpha; BN_IMAGE_ALPHA_BLEND composites
 *   on params.background: v = (c * a + bg * (255 - a)) / 255 rounded to nearest, what PIL's
 *   Image.new('RGB', size, bg).paste(im, mask=alpha) gives.
 * - EXIF orientation (tag 0x0112 in a JPEG APP1 or a PNG eXIf chunk, read with libexif):
 *   values 2-8 are undone by flipping and rotating, as PIL's ImageOps.exif_transpose does;
 *   params.no_exif = 1 ignores it (torchvision's ImageFolder loader does not apply it).
 * - No colour management: ICC profiles and gAMA/cHRM/sRGB chunks are ignored (as PIL does).
 * - Greyscale output (params.channels = 1): the luma of ITU-R 601-2 as PIL's convert('L'):
 *   L = (19595 R + 38470 G + 7471 B + 32768) >> 16, exact for grey sources.
 *
 * Hostile input: the file is at most params.max_bytes; width * height is checked against
 * params.max_pixels from the header, before any pixel memory is allocated (a decompression
 * bomb is refused whatever its file size); a truncated file (JPEG or PNG), a corrupt
 * stream, a bad CRC on a critical PNG chunk, or bytes that are neither JPEG nor PNG are
 * errors. Every failure returns a status with one line on ctx starting with the file's
 * name ("<memory>" for a buffer): BN_ERR_FORMAT (malformed or truncated), BN_ERR_RANGE
 * (over a limit), BN_ERR_UNSUPPORTED (another format: GIF, BMP, WebP, TIFF are named),
 * BN_ERR_IO (cannot read), BN_ERR_NOMEM. Never a crash, whatever the bytes (a fuzz target,
 * tests/fuzz/fuzz_image.c, covers both decoders).
 *
 * Transforms (8-bit in, 8-bit out, what PIL computes, to the bit):
 * - bn_image_resize: bilinear with antialias, PIL's Image.resize(size, BILINEAR): a
 *   triangle filter widened by the scale factor when shrinking, separable, 22-bit
 *   fixed-point weights, rounded to 8 bits between the passes; the vertical pass first when
 *   the height loses more than twice as many pixels as the width, else the horizontal one
 *   (Pillow 13's order; Pillow 12 and older always went horizontal first).
 * - bn_image_resize_short: torchvision's Resize(S): the shorter side becomes S and the
 *   longer int(S * long / short).
 * - bn_image_center_crop: torchvision's CenterCrop: offsets int(round((H - h) / 2.0)) with
 *   Python's round-half-to-even; a crop larger than the image pads with zeros first, as
 *   torchvision does.
 * - bn_image_to_chw: ToTensor then Normalize, in float32 as torch does: (v / 255 - mean) / std
 *   into c planes of h * w floats.
 */
#ifndef BITNET_IMAGE_H
#define BITNET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default limits (params fields left 0 take these). BN_IMAGE_MAX_PIXELS is PIL's
 * MAX_IMAGE_PIXELS, the size past which PIL warns of a decompression bomb. */
#define BN_IMAGE_MAX_PIXELS 89478485ULL
#define BN_IMAGE_MAX_BYTES  ((size_t)256 << 20)
#define BN_IMAGE_MAX_SCANS  500   /* progressive JPEG scans (a CPU bomb otherwise) */
#define BN_IMAGE_MAX_SIDE   65535 /* any output of a transform, each side */

/* The container format. Values are stable and only grow. */
typedef enum bn_image_format {
    BN_IMAGE_FORMAT_NONE = 0,
    BN_IMAGE_FORMAT_JPEG = 1,
    BN_IMAGE_FORMAT_PNG = 2,
} bn_image_format;

typedef enum bn_image_alpha {
    BN_IMAGE_ALPHA_DROP = 0,  /* keep the colour, ignore alpha (PIL's convert('RGB')) */
    BN_IMAGE_ALPHA_BLEND = 1, /* composite on params.background */
} bn_image_alpha;

/* What the file said, before conversion. */
typedef struct bn_image_meta {
    bn_image_format format;
    int width, height; /* as stored, before the EXIF orientation is applied */
    int channels;      /* stored components: 1 grey, 2 grey+alpha, 3, 4 (RGBA or CMYK) */
    int bit_depth;     /* bits per sample as stored: 1, 2, 4, 8 or 16 */
    const char *mode;  /* "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCCK" (static text) */
    int has_alpha;     /* an alpha channel or a tRNS chunk */
    int interlaced;    /* PNG Adam7, or a progressive JPEG */
    int orientation;   /* EXIF orientation 1-8; 0 when there is none (or not read) */
} bn_image_meta;

/* Pixels, HWC, 8 bits per sample. See the top of this file for ownership. */
typedef struct bn_image {
    int w, h, c;        /* c: 3 (RGB) or 1 (grey) */
    uint8_t *data;      /* h * w * c bytes */
    bn_image_meta meta; /* of the file it was decoded from (zero for a transform's output) */
} bn_image;

typedef struct bn_image_load_params {
    uint64_t max_pixels;   /* width * height as stored; 0: BN_IMAGE_MAX_PIXELS */
    size_t max_bytes;      /* of the file or buffer; 0: BN_IMAGE_MAX_BYTES */
    int channels;          /* 0 or 3: RGB; 1: grey (PIL's convert('L')) */
    bn_image_alpha alpha;  /* what happens to alpha */
    uint8_t background[3]; /* R, G, B under a transparent image (BN_IMAGE_ALPHA_BLEND) */
    int no_exif;           /* 1: ignore the EXIF orientation */
} bn_image_load_params;

/* Decodes a JPEG or PNG file (the format is told by its first bytes, not its name).
 * p may be NULL for the defaults. */
bn_status bn_image_load(bn_ctx *ctx, const char *path, const bn_image_load_params *p,
                        bn_image *out);
/* The same from n bytes in memory (not kept after the call); name labels messages (NULL:
 * "<memory>"). */
bn_status bn_image_load_memory(bn_ctx *ctx, const void *data, size_t n, const char *name,
                               const bn_image_load_params *p, bn_image *out);
/* Reads the header only (no pixel memory, so it also describes an image over the limits,
 * which then is not an error here): fills *meta. The EXIF orientation is read from a JPEG
 * and from a PNG eXIf chunk before the image data. */
bn_status bn_image_probe(bn_ctx *ctx, const char *path, bn_image_meta *meta);

/* Frees the pixels and zeroes *img. NULL is fine. */
void bn_image_release(bn_image *img);

/* "JPEG", "PNG", or "none". */
const char *bn_image_format_name(bn_image_format f);

/* ---- transforms (src is unchanged; *out is a new image) ------------------------------- */

/* Bilinear with antialias to exactly w x h (PIL's resize(BILINEAR)); w, h in
 * 1..BN_IMAGE_MAX_SIDE. The same size gives a copy. */
bn_status bn_image_resize(bn_ctx *ctx, const bn_image *src, int w, int h, bn_image *out);
/* torchvision's Resize(size): the shorter side to size, the longer in proportion. */
bn_status bn_image_resize_short(bn_ctx *ctx, const bn_image *src, int size, bn_image *out);
/* torchvision's CenterCrop((h, w)). */
bn_status bn_image_center_crop(bn_ctx *ctx, const bn_image *src, int w, int h, bn_image *out);
/* RGB to grey (ITU-R 601-2 luma, PIL's convert('L')); a grey image is copied. */
bn_status bn_image_to_grey(bn_ctx *ctx, const bn_image *src, bn_image *out);
/* RGB from grey (R = G = B); an RGB image is copied. */
bn_status bn_image_to_rgb(bn_ctx *ctx, const bn_image *src, bn_image *out);

/* ToTensor + Normalize: out[k * h * w + y * w + x] = (v / 255 - mean[k]) / std[k] for each
 * channel k < img->c, in float32. mean and std may be NULL (0 and 1). out holds
 * c * h * w floats. */
void bn_image_to_chw(const bn_image *img, const float *mean, const float *std, float *out);

/* ---- the standard evaluation pipeline ------------------------------------------------- */

/* Each step runs when its field is nonzero, in this order: grey/rgb, resize, crop, then
 * ToTensor + Normalize (std[k] == 0 means mean 0, std 1 for all channels). */
typedef struct bn_image_prep {
    int channels;           /* 0: keep; 1: to grey; 3: to RGB */
    int resize;             /* Resize(resize): the shorter side */
    int resize_w, resize_h; /* Resize((h, w)): exact size (instead of resize) */
    int crop_w, crop_h;     /* CenterCrop((crop_h, crop_w)) */
    float mean[3], std[3];
} bn_image_prep;

/* torchvision's ImageNet evaluation transform of ResNet and ViT models. */
#define BN_IMAGE_PREP_IMAGENET                                                                     \
    ((bn_image_prep){.channels = 3,                                                                \
                     .resize = 256,                                                                \
                     .crop_w = 224,                                                                \
                     .crop_h = 224,                                                                \
                     .mean = {0.485f, 0.456f, 0.406f},                                             \
                     .std = {0.229f, 0.224f, 0.225f}})

/* The 8-bit steps of p (channels, resize, crop) on src, without ToTensor and Normalize. */
bn_status bn_image_apply(bn_ctx *ctx, const bn_image *src, const bn_image_prep *p, bn_image *out);

/* Runs the steps of p on src and returns the tensor in *out (bn_malloc'd, *c * *h * *w
 * floats, CHW; the caller frees it with bn_free). */
bn_status bn_image_prepare(bn_ctx *ctx, const bn_image *src, const bn_image_prep *p, float **out,
                           int *c, int *h, int *w);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_IMAGE_H */
