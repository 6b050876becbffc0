/* image_internal.h - what the image decoders (image_jpeg.c, image_png.c) share with image.c:
 * each decoder turns the bytes into 8-bit pixels of 1 (grey), 3 (RGB) or 4 (RGBA) samples
 * and fills the meta; image.c then applies alpha, channels and the EXIF orientation. */
#ifndef BITNET_IMAGE_INTERNAL_H
#define BITNET_IMAGE_INTERNAL_H

#include "bitnet/image.h"

/* A decoder's job: in (the bytes and limits) and out (pixels, bn_malloc'd, and meta). */
typedef struct bn__image_dec {
    bn_ctx *ctx;
    const char *name; /* for messages */
    const uint8_t *data;
    size_t n;
    uint64_t max_pixels;
    int header_only; /* fill meta only (and do not check max_pixels) */
    bn_image_meta meta;
    uint8_t *pix; /* meta.height rows of meta.width * ncomp bytes */
    int ncomp;    /* 1, 3 or 4 */
} bn__image_dec;

bn_status bn__image_jpeg_decode(bn__image_dec *d);
bn_status bn__image_png_decode(bn__image_dec *d);

/* The orientation (1-8) in EXIF bytes: a TIFF header and IFD0 ("II*\0" or "MM\0*"),
 * with the "Exif\0\0" prefix of a JPEG APP1 when exif_prefix is 1; 0 when absent or bad;
 * -1 when out of memory. */
int bn__image_exif_orientation(const uint8_t *p, size_t n, int exif_prefix);

/* ITU-R 601-2 luma as PIL's convert('L'): (19595 R + 38470 G + 7471 B + 32768) >> 16; the
 * weights sum to 65536, so a grey pixel keeps its value. */
static inline uint8_t bn__image_luma(const uint8_t *rgb)
{
    return (uint8_t)((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

/* The pixel limit check every decoder runs on the header's size. */
bn_status bn__image_check_size(bn__image_dec *d, const char *fmt_name);

#endif /* BITNET_IMAGE_INTERNAL_H */
