/* image.c - loading images (bitnet/image.h): reading the file, telling the format by its
 * first bytes, the decoders' pixels to RGB or grey (alpha dropped or blended), the EXIF
 * orientation (libexif reads the tag; the flips and turns are here). */
#include <errno.h>
#include <libexif/exif-data.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "image_internal.h"

void bn_image_release(bn_image *img)
{
    if (!img) return;
    bn_free(img->data);
    memset(img, 0, sizeof *img);
}

const char *bn_image_format_name(bn_image_format f)
{
    switch (f) {
    case BN_IMAGE_FORMAT_JPEG:
        return "JPEG";
    case BN_IMAGE_FORMAT_PNG:
        return "PNG";
    default:
        return "none";
    }
}

bn_status bn__image_check_size(bn__image_dec *d, const char *fmt_name)
{
    uint64_t px;
    const bn_image_meta *m = &d->meta;
    if (m->width <= 0 || m->height <= 0)
        return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: %s of %dx%d pixels", d->name, fmt_name,
                                m->width, m->height);
    if (bn_mul_u64((uint64_t)m->width, (uint64_t)m->height, &px) || px > d->max_pixels)
        return bn_ctx_set_error(d->ctx, BN_ERR_RANGE,
                                "%s: %s of %dx%d pixels is over the limit of %llu pixels "
                                "(a decompression bomb?)",
                                d->name, fmt_name, m->width, m->height,
                                (unsigned long long)d->max_pixels);
    return BN_OK;
}

int bn__image_exif_orientation(const uint8_t *p, size_t n, int exif_prefix)
{
    static const uint8_t hdr[6] = {'E', 'x', 'i', 'f', 0, 0};
    uint8_t *buf = NULL;
    if (n < 8 || n > ((size_t)1 << 24)) return 0;
    if (!exif_prefix) { /* libexif wants the APP1 form: "Exif\0\0" then the TIFF header */
        if (!(buf = bn_malloc(n + 6))) return -1;
        memcpy(buf, hdr, 6);
        memcpy(buf + 6, p, n);
        p = buf;
        n += 6;
    }
    int o = 0;
    ExifData *ed = exif_data_new();
    if (!ed) o = -1;
    if (ed) {
        /* read only: no "fixing" that would add entries with default values */
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_load_data(ed, p, (unsigned)n);
        ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
        if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2)
            o = exif_get_short(e->data, exif_data_get_byte_order(ed));
        if (o < 1 || o > 8) o = 0;
        exif_data_unref(ed);
    }
    bn_free(buf);
    return o;
}

static bn_status image_decode(bn__image_dec *d)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = d->data;
    size_t n = d->n;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return bn__image_jpeg_decode(d);
    if (n >= 8 && memcmp(b, png_sig, 8) == 0) return bn__image_png_decode(d);
    const char *what = NULL;
    if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        what = "GIF";
    else if (n >= 2 && b[0] == 'B' && b[1] == 'M')
        what = "BMP";
    else if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        what = "WebP";
    else if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
        what = "TIFF";
    if (what)
        return bn_ctx_set_error(d->ctx, BN_ERR_UNSUPPORTED,
                                "%s: a %s image; only JPEG and PNG are supported", d->name, what);
    if (n == 0) return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: empty file", d->name);
    return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT,
                            "%s: not a JPEG or PNG image (it starts with %02x %02x %02x %02x)",
                            d->name, b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
}

/* PIL's DIV255 rounding of BLEND: (c * a + bg * (255 - a)) / 255 to nearest. */
static uint8_t blend(unsigned c, unsigned bg, unsigned a)
{
    unsigned t = c * a + bg * (255u - a) + 128u;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* One pixel of the decoder (1, 3 or 4 samples) to RGB, alpha dropped or blended. */
static void to_rgb(const uint8_t *in, int nc, const bn_image_load_params *p, uint8_t *out)
{
    if (nc == 1) {
        out[0] = out[1] = out[2] = in[0];
        return;
    }
    for (int i = 0; i < 3; i++)
        out[i] = nc == 4 && p->alpha == BN_IMAGE_ALPHA_BLEND ? blend(in[i], p->background[i], in[3])
                                                             : in[i];
}

/* Where source pixel (x, y) of a w x h image goes under EXIF orientation o (2-8 undo a
 * mirror and/or a turn; the output is h x w for 5-8). */
static void orient_xy(int o, int w, int h, int x, int y, int *ox, int *oy)
{
    switch (o) {
    case 2:
        *ox = w - 1 - x, *oy = y;
        break;
    case 3:
        *ox = w - 1 - x, *oy = h - 1 - y;
        break;
    case 4:
        *ox = x, *oy = h - 1 - y;
        break;
    case 5:
        *ox = y, *oy = x;
        break;
    case 6:
        *ox = h - 1 - y, *oy = x;
        break;
    case 7:
        *ox = h - 1 - y, *oy = w - 1 - x;
        break;
    case 8:
        *ox = y, *oy = w - 1 - x;
        break;
    default:
        *ox = x, *oy = y;
        break;
    }
}

/* The decoder's pixels into *out: channels, alpha, orientation in one pass. */
static bn_status image_finish(bn__image_dec *d, const bn_image_load_params *p, bn_image *out)
{
    int w = d->meta.width, h = d->meta.height, c = p->channels == 1 ? 1 : 3;
    int o = p->no_exif ? 1 : d->meta.orientation;
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    if (o <= 1 && d->ncomp == c) { /* nothing to convert: the decoder's pixels are the image */
        *out = (bn_image){.w = w, .h = h, .c = c, .data = d->pix, .meta = d->meta};
        d->pix = NULL;
        return BN_OK;
    }
    uint8_t *px = bn_malloc((size_t)w * (size_t)h * (size_t)c);
    if (!px) return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory", d->name);
    const uint8_t *in = d->pix;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++, in += d->ncomp) {
            int ox, oy;
            orient_xy(o, w, h, x, y, &ox, &oy);
            uint8_t rgb[3];
            to_rgb(in, d->ncomp, p, rgb);
            uint8_t *dst = px + ((size_t)oy * (size_t)ow + (size_t)ox) * (size_t)c;
            if (c == 1)
                dst[0] = d->ncomp == 1 ? in[0] : bn__image_luma(rgb);
            else
                memcpy(dst, rgb, 3);
        }
    *out = (bn_image){.w = ow, .h = oh, .c = c, .data = px, .meta = d->meta};
    return BN_OK;
}

bn_status bn_image_load_memory(bn_ctx *ctx, const void *data, size_t n, const char *name,
                               const bn_image_load_params *p, bn_image *out)
{
    bn_image_load_params dp = {0};
    if (!p) p = &dp;
    if (!name) name = "<memory>";
    memset(out, 0, sizeof *out);
    if (p->channels != 0 && p->channels != 1 && p->channels != 3)
        return bn_ctx_set_error(ctx, BN_ERR_INVALID, "%s: channels must be 1 or 3, not %d", name,
                                p->channels);
    size_t max_bytes = p->max_bytes ? p->max_bytes : BN_IMAGE_MAX_BYTES;
    if (n > max_bytes)
        return bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %zu bytes is over the limit of %zu", name,
                                n, max_bytes);
    bn__image_dec d = {.ctx = ctx, .name = name, .data = data, .n = n};
    d.max_pixels = p->max_pixels ? p->max_pixels : BN_IMAGE_MAX_PIXELS;
    bn_status rc = image_decode(&d);
    if (rc == BN_OK) rc = image_finish(&d, p, out);
    bn_free(d.pix);
    return rc;
}

/* The whole file into a bn_malloc'd buffer, refusing more than max bytes. */
static bn_status read_file(bn_ctx *ctx, const char *path, size_t max, uint8_t **buf, size_t *n)
{
    char why[512];
    int fd = bn_file_open_read(path, why, sizeof why);
    if (fd < 0) return bn_ctx_set_error(ctx, BN_ERR_IO, "%s", why);
    struct stat st;
    bn_status rc = BN_OK;
    if (fstat(fd, &st) != 0) {
        rc = bn_ctx_set_error(ctx, BN_ERR_IO, "%s: %s", path, strerror(errno));
    } else if ((uint64_t)st.st_size > max) {
        rc = bn_ctx_set_error(ctx, BN_ERR_RANGE, "%s: %lld bytes is over the limit of %zu", path,
                              (long long)st.st_size, max);
    } else if (!(*buf = bn_malloc((size_t)st.st_size + 1))) {
        rc = bn_ctx_set_error(ctx, BN_ERR_NOMEM, "%s: out of memory", path);
    } else {
        size_t got = 0;
        ssize_t k = 1;
        while (got < (size_t)st.st_size && (k = read(fd, *buf + got, (size_t)st.st_size - got)) > 0)
            got += (size_t)k;
        if (k < 0) rc = bn_ctx_set_error(ctx, BN_ERR_IO, "%s: %s", path, strerror(errno));
        *n = got;
    }
    close(fd);
    if (rc != BN_OK) {
        bn_free(*buf);
        *buf = NULL;
    }
    return rc;
}

bn_status bn_image_load(bn_ctx *ctx, const char *path, const bn_image_load_params *p, bn_image *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf = NULL;
    size_t n = 0;
    size_t max = p && p->max_bytes ? p->max_bytes : BN_IMAGE_MAX_BYTES;
    bn_status rc = read_file(ctx, path, max, &buf, &n);
    if (rc != BN_OK) return rc;
    rc = bn_image_load_memory(ctx, buf, n, path, p, out);
    bn_free(buf);
    return rc;
}

bn_status bn_image_probe(bn_ctx *ctx, const char *path, bn_image_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    uint8_t *buf = NULL;
    size_t n = 0;
    bn_status rc = read_file(ctx, path, BN_IMAGE_MAX_BYTES, &buf, &n);
    if (rc != BN_OK) return rc;
    bn__image_dec d = {.ctx = ctx, .name = path, .data = buf, .n = n, .header_only = 1};
    rc = image_decode(&d);
    if (rc == BN_OK) *meta = d.meta;
    bn_free(d.pix);
    bn_free(buf);
    return rc;
}
