/* image_jpeg.c - JPEG decoding with libjpeg-turbo for bitnet/image.h: grey, RGB, YCbCr,
 * CMYK and YCCK (Adobe inverted), EXIF orientation from APP1; errors and premature end of
 * file become a status with a message (libjpeg's own text), never an exit. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image_internal.h"

/* libjpeg reports errors through error_exit; we jump back to jpeg_run's setjmp. */
typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
    int too_many_scans;
} jpeg_err;

typedef struct jpeg_state {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    struct jpeg_progress_mgr progress;
    bn__image_dec *d;
    uint8_t *row; /* one CMYK row, converted into d->pix */
    int created;
} jpeg_state;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_err *e = (jpeg_err *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings are ignored (PIL ignores them too: many real files have extra bytes before a
 * marker), except the end of the data before the image is complete: libjpeg would fill
 * the rest with grey, PIL refuses such a file ("image file is truncated") and so do we. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    jpeg_err *e = (jpeg_err *)c->err;
    if (level >= 0) return;
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        longjmp(e->jb, 1);
    }
    c->err->num_warnings++;
}

static void jpeg_on_output(j_common_ptr c)
{
    (void)c;
}

/* A progressive file can hold any number of scans, each a pass over every coefficient:
 * a few kilobytes can keep the CPU busy for minutes. */
static void jpeg_on_progress(j_common_ptr c)
{
    j_decompress_ptr di = (j_decompress_ptr)c;
    jpeg_err *e = (jpeg_err *)c->err;
    if (di->progressive_mode && di->input_scan_number > BN_IMAGE_MAX_SCANS) {
        e->too_many_scans = 1;
        longjmp(e->jb, 1);
    }
}

static int jpeg_exif(struct jpeg_decompress_struct *ci)
{
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return bn__image_exif_orientation(m->data, m->data_length, 1);
    return 0;
}

static bn_status jpeg_meta(jpeg_state *s)
{
    struct jpeg_decompress_struct *ci = &s->cinfo;
    bn_image_meta *m = &s->d->meta;
    m->format = BN_IMAGE_FORMAT_JPEG;
    m->width = (int)ci->image_width;
    m->height = (int)ci->image_height;
    m->channels = ci->num_components;
    m->bit_depth = ci->data_precision;
    m->interlaced = ci->progressive_mode ? 1 : 0;
    m->orientation = jpeg_exif(ci);
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        m->mode = "L";
        ci->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_RGB:
    case JCS_YCbCr:
        m->mode = "RGB";
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
        m->mode = "CMYK";
        ci->out_color_space = JCS_CMYK;
        break;
    case JCS_YCCK:
        m->mode = "YCCK";
        ci->out_color_space = JCS_CMYK;
        break;
    default:
        m->mode = "unknown";
        return bn_ctx_set_error(s->d->ctx, BN_ERR_UNSUPPORTED,
                                "%s: JPEG with %d components in an unknown colour space",
                                s->d->name, ci->num_components);
    }
    return BN_OK;
}

/* PIL's MULDIV255: a * b / 255 rounded, exact for 8-bit a and b. */
static uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* CMYK to RGB as PIL does: R = (255 - C)(255 - K) / 255. With the Adobe marker the stored
 * values are inverted (C' = 255 - C), so R = C'K' / 255. */
static void jpeg_cmyk_row(const uint8_t *in, uint8_t *out, int w, int inverted)
{
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        unsigned k = inverted ? in[3] : 255u - in[3];
        for (int i = 0; i < 3; i++) out[i] = muldiv255(inverted ? in[i] : 255u - in[i], k);
    }
}

static bn_status jpeg_pixels(jpeg_state *s)
{
    struct jpeg_decompress_struct *ci = &s->cinfo;
    bn__image_dec *d = s->d;
    size_t w = ci->output_width, h = ci->output_height, oc = (size_t)ci->output_components;
    size_t nc = oc == 4 ? 3 : oc, bytes;
    if (bn_mul_size(w * nc, h, &bytes))
        return bn_ctx_set_error(d->ctx, BN_ERR_OVERFLOW, "%s: size", d->name);
    d->pix = bn_malloc(bytes);
    if (oc == 4) s->row = bn_malloc(w * 4);
    if (!d->pix || (oc == 4 && !s->row))
        return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory for %zux%zu pixels",
                                d->name, w, h);
    d->ncomp = (int)nc;
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = d->pix + (size_t)ci->output_scanline * w * nc;
        JSAMPROW r = oc == 4 ? s->row : dst;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) /* never with a memory source; be sure */
            return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: truncated JPEG data", d->name);
        if (oc == 4) jpeg_cmyk_row(s->row, dst, (int)w, ci->saw_Adobe_marker);
    }
    jpeg_finish_decompress(ci);
    return BN_OK;
}

static bn_status jpeg_run(jpeg_state *s)
{
    bn__image_dec *d = s->d;
    struct jpeg_decompress_struct *ci = &s->cinfo;
    if (setjmp(s->err.jb)) {
        if (s->err.truncated)
            return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: truncated JPEG data", d->name);
        if (s->err.too_many_scans)
            return bn_ctx_set_error(d->ctx, BN_ERR_RANGE,
                                    "%s: progressive JPEG with more than %d scans", d->name,
                                    BN_IMAGE_MAX_SCANS);
        return bn_ctx_set_error(d->ctx, BN_ERR_FORMAT, "%s: bad JPEG data: %s", d->name,
                                s->err.msg);
    }
    s->created = 1; /* jpeg_destroy_decompress copes with a half-made struct */
    jpeg_create_decompress(ci);
    ci->progress = &s->progress;
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
    jpeg_mem_src(ci, d->data, (unsigned long)d->n);
    jpeg_read_header(ci, TRUE);
    bn_status rc = jpeg_meta(s);
    if (rc != BN_OK || d->header_only) return rc;
    if ((rc = bn__image_check_size(d, "JPEG")) != BN_OK) return rc;
    jpeg_start_decompress(ci);
    return jpeg_pixels(s);
}

bn_status bn__image_jpeg_decode(bn__image_dec *d)
{
    jpeg_state *s = bn_calloc(1, sizeof *s);
    if (!s) return bn_ctx_set_error(d->ctx, BN_ERR_NOMEM, "%s: out of memory", d->name);
    s->d = d;
    s->cinfo.err = jpeg_std_error(&s->err.pub);
    s->err.pub.error_exit = jpeg_on_error;
    s->err.pub.emit_message = jpeg_on_message;
    s->err.pub.output_message = jpeg_on_output;
    s->progress.progress_monitor = jpeg_on_progress;
    bn_status rc = jpeg_run(s);
    if (s->created) jpeg_destroy_decompress(&s->cinfo);
    bn_free(s->row);
    if (rc != BN_OK) {
        bn_free(d->pix);
        d->pix = NULL;
    }
    bn_free(s);
    return rc;
}
