/* image_png.c - PNG decoding with libpng for bitnet/image.h: every colour type and depth
 * expanded to 8-bit RGBA (palette, grey, tRNS, 16-bit high byte), Adam7 interlace, EXIF
 * orientation from an eXIf chunk; libpng's errors become a status with its message. */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "image_internal.h"

typedef struct png_state {
    png_structp png;
    png_infop info;
    bn__image_dec *d;
    size_t pos;      /* read position in d->data */
    png_bytep *rows; /* d->meta.height pointers into d->pix */
    char msg[200];   /* libpng's error text */
    int truncated;   /* the data ended before libpng was done */
} png_state;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_state *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    png_state *s = png_get_io_ptr(png);
    if (n > s->d->n - s->pos) {
        s->truncated = 1;
        png_error(png, "truncated");
    }
    memcpy(out, s->d->data + s->pos, n);
    s->pos += n;
}

static int png_orientation(png_state *s)
{
    png_uint_32 n = 0;
    png_bytep exif = NULL;
    if (!png_get_valid(s->png, s->info, PNG_INFO_eXIf)) return 0;
    if (png_get_eXIf_1(s->png, s->info, &n, &exif) == 0 || !exif) return 0;
    return bn__image_exif_orientation(exif, n, 0);
}

static void png_meta(png_state *s)
{
    bn_image_meta *m = &s->d->meta;
    png_uint_32 w, h;
    int depth, type, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &type, &interlace, NULL, NULL);
    m->format = BN_IMAGE_FORMAT_PNG;
    m->width = (int)w;
    m->height = (int)h;
    m->bit_depth = depth;
    m->channels = png_get_channels(s->png, s->info);
    m->interlaced = interlace != PNG_INTERLACE_NONE;
    m->has_alpha = (type & PNG_COLOR_MASK_ALPHA) || png_get_valid(s->png, s->info, PNG_INFO_tRNS);
    m->orientation = png_orientation(s);
    switch (type) {
    case PNG_COLOR_TYPE_GRAY:
        m->mode = "L";
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        m->mode = "LA";
        break;
    case PNG_COLOR_TYPE_PALETTE:
        m->mode = "P";
        break;
    case PNG_COLOR_TYPE_RGB:
        m->mode = "RGB";
        break;
    default:
        m->mode = "RGBA";
        break;
    }
}

/* Whatever is stored becomes 8-bit RGBA. 16-bit samples keep the high byte (as PIL does
 * for RGB), palette and grey expand, tRNS becomes alpha, no alpha becomes 255. */
static void png_to_rgba(png_state *s)
{
    png_structp png = s->png;
    int type = png_get_color_type(png, s->info), depth = png_get_bit_depth(png, s->info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);
    if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    if (!(type & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, s->info, PNG_INFO_tRNS))
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, s->info);
}

static bn_status png_pixels(png_state *s)
{
    bn__image_dec *d = s->d;
    size_t w = (size_t)d->meta.width, h = (size_t)d->meta.height, bytes;
    png_to_rgba(s);
    if (png_get_rowbytes(s->png, s->info) != w * 4)
        return bn_ctx_set_error(d->ctx, BN_ERR_INTERNAL, "%s: PNG rows of %zu bytes, not %zu",
                                d->name, (size_t)png_get_rowbytes(s->png, s->info), w * 4);
    if (bn_mul_size(w * 4, h, &bytes))
        return bn_ctx_set_error(d->ctx, BN_ERR_OVERFLOW, "%s: size", d->name);
    d->pix = bn_malloc(bytes);
    s->rows = bn_calloc(h, sizeof *s->rows);
    if (!d->pix || !s->rows)
        return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory for %zux%zu pixels",
                                d->name, w, h);
    for (size_t y = 0; y < h; y++) s->rows[y] = d->pix + y * w * 4;
    d->ncomp = 4;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, s->info);
    if (!d->meta.orientation) d->meta.orientation = png_orientation(s); /* eXIf after IDAT */
    if (d->meta.orientation < 0)
        return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory for EXIF", d->name);
    return BN_OK;
}

static bn_status png_run(png_state *s)
{
    bn__image_dec *d = s->d;
    if (setjmp(png_jmpbuf(s->png))) {
        if (s->truncated)
            return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: truncated PNG data", d->name);
        return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: bad PNG data: %s", d->name,
                                s->msg[0] ? s->msg : "unknown error");
    }
    /* our own limit on width * height replaces libpng's (1000000 a side) */
    png_set_user_limits(s->png, 0x7fffffffU, 0x7fffffffU);
    png_set_read_fn(s->png, s, png_on_read);
    png_read_info(s->png, s->info);
    png_meta(s);
    if (d->meta.orientation < 0)
        return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory for EXIF", d->name);
    if (d->header_only) return BN_OK;
    bn_status rc = bn__image_check_size(d, "PNG");
    return rc != BN_OK ? rc : png_pixels(s);
}

bn_status bn__image_png_decode(bn__image_dec *d)
{
    png_state *s = bn_calloc(1, sizeof *s);
    if (!s) return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory", d->name);
    s->d = d;
    bn_status rc = BN_ERR_NOMEM;
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, png_on_error, png_on_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (s->png && s->info)
        rc = png_run(s);
    else
        bn_ctx_set_error(d->ctx, rc, "%s: out of memory for the PNG reader", d->name);
    png_destroy_read_struct(&s->png, &s->info, NULL);
    bn_free(s->rows);
    if (rc != BN_OK) {
        bn_free(d->pix);
        d->pix = NULL;
    }
    bn_free(s);
    return rc;
}
