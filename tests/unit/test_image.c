/* test_image.c - image decoding and transforms (bitnet/image.h) on the files of tests/images
 * (SOURCES.md): every colour mode, EXIF orientations 1-8 against their definition, alpha
 * blending, hostile files (bombs, every truncation, bit flips), allocation failures, and the
 * transforms on small inputs with values computed by Pillow 13 (noted beside each). The
 * comparison on whole photos with Pillow and torchvision is tests/cli/test_image.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <string.h>

#include "bitnet/image.h"

static bn_ctx *g_ctx;

#define IMG(name) "tests/images/" name

static void load_ok(const char *path, const bn_image_load_params *p, bn_image *img)
{
    bn_status rc = bn_image_load(g_ctx, path, p, img);
    if (rc != BN_OK) fail_msg("%s: %s", path, bn_ctx_errmsg(g_ctx));
}

static const uint8_t *px(const bn_image *img, int x, int y)
{
    return img->data + ((size_t)y * (size_t)img->w + (size_t)x) * (size_t)img->c;
}

typedef struct mode_case {
    const char *file, *mode;
    int w, h, depth, alpha, interlaced;
} mode_case;

static void test_modes(void **state)
{
    (void)state;
    static const mode_case cases[] = {
            {"chelsea.jpg", "RGB", 451, 300, 8, 0, 0},
            {"coffee-progressive.jpg", "RGB", 600, 400, 8, 0, 1},
            {"camera-grey.jpg", "L", 160, 160, 8, 0, 0},
            {"camera-grey.png", "L", 256, 256, 8, 0, 0},
            {"cmyk.jpg", "CMYK", 150, 100, 8, 0, 0},
            {"rgb16.png", "RGB", 64, 48, 16, 0, 0},
            {"grey16.png", "L", 40, 30, 16, 0, 0},
            {"rgba.png", "RGBA", 120, 80, 8, 1, 0},
            {"la.png", "LA", 64, 64, 8, 1, 0},
            {"palette.png", "P", 120, 80, 8, 1, 0},
            {"palette4.png", "P", 60, 40, 4, 0, 0},
            {"grey1.png", "L", 64, 64, 1, 0, 0},
            {"interlaced.png", "RGB", 37, 29, 8, 0, 1},
            {"1x1.png", "RGB", 1, 1, 8, 0, 0},
            {"1x1.jpg", "RGB", 1, 1, 8, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mode_case *c = &cases[i];
        char path[256];
        snprintf(path, sizeof path, "tests/images/%s", c->file);
        bn_image img = {0};
        load_ok(path, NULL, &img);
        assert_int_equal(img.w, c->w);
        assert_int_equal(img.h, c->h);
        assert_int_equal(img.c, 3);
        assert_string_equal(img.meta.mode, c->mode);
        assert_int_equal(img.meta.bit_depth, c->depth);
        assert_int_equal(img.meta.has_alpha, c->alpha);
        assert_int_equal(img.meta.interlaced, c->interlaced);
        /* grey sources give R = G = B */
        if (c->mode[0] == 'L')
            for (int k = 0; k < img.w * img.h; k++)
                assert_true(img.data[k * 3] == img.data[k * 3 + 1] &&
                            img.data[k * 3] == img.data[k * 3 + 2]);
        bn_image_meta m;
        assert_int_equal(bn_image_probe(g_ctx, path, &m), BN_OK);
        assert_int_equal(m.width, c->w);
        assert_string_equal(m.mode, c->mode);
        bn_image_release(&img);
        bn_image_release(&img); /* a released image may be released again */
    }
}

static void test_pixels(void **state)
{
    (void)state;
    bn_image img = {0};
    load_ok(IMG("1x1.png"), NULL, &img);
    assert_memory_equal(img.data, ((uint8_t[]){200, 30, 90}), 3);
    bn_image_release(&img);
    /* grey output: (19595 R + 38470 G + 7471 B + 32768) >> 16 = 88 for (200, 30, 90) */
    bn_image_load_params gp = {.channels = 1};
    load_ok(IMG("1x1.png"), &gp, &img);
    assert_int_equal(img.c, 1);
    assert_int_equal(img.data[0], 88);
    bn_image_release(&img);
    /* 16-bit grey keeps its high byte (PIL's convert clips at 255: nearly all white) */
    load_ok(IMG("grey16.png"), NULL, &img);
    long sum = 0;
    for (int k = 0; k < img.w * img.h; k++) sum += img.data[k * 3];
    assert_true(sum / (img.w * img.h) < 200);
    bn_image_release(&img);
    gp.channels = 2;
    assert_int_equal(bn_image_load(g_ctx, IMG("1x1.png"), &gp, &img), BN_ERR_INVALID);
}

/* rgba.png: alpha grows from 0 at the left to 255 at the right */
static void test_alpha(void **state)
{
    (void)state;
    bn_image drop = {0}, blend = {0};
    load_ok(IMG("rgba.png"), NULL, &drop);
    bn_image_load_params p = {.alpha = BN_IMAGE_ALPHA_BLEND, .background = {10, 20, 30}};
    load_ok(IMG("rgba.png"), &p, &blend);
    for (int y = 0; y < drop.h; y++) {
        assert_memory_equal(px(&blend, 0, y), ((uint8_t[]){10, 20, 30}), 3); /* transparent */
        assert_memory_equal(px(&blend, drop.w - 1, y), px(&drop, drop.w - 1, y), 3); /* opaque */
    }
    assert_memory_not_equal(px(&blend, 60, 40), px(&drop, 60, 40), 3);
    bn_image_release(&drop);
    bn_image_release(&blend);
}

/* Where the stored pixel (sx, sy) of a w x h image is seen on screen under orientation o
 * (the EXIF definition: 2 mirror, 3 turn 180, 4 flip, 5 transpose, 6 turn 90 clockwise,
 * 7 transverse, 8 turn 90 counter-clockwise). */
static void seen_at(int o, int w, int h, int sx, int sy, int *x, int *y)
{
    const int t[9][6] = {
            /* x = a*sx + b*sy + c, y = d*sx + e*sy + f with c, f in units of w-1 / h-1 */
            {0},
            {1, 0, 0, 0, 1, 0},
            {-1, 0, 1, 0, 1, 0},
            {-1, 0, 1, 0, -1, 2},
            {1, 0, 0, 0, -1, 2},
            {0, 1, 0, 1, 0, 0},
            {0, -1, 3, 1, 0, 0},
            {0, -1, 3, -1, 0, 4},
            {0, 1, 0, -1, 0, 4},
    };
    const int *r = t[o];
    int cx = r[2] == 1 ? w - 1 : r[2] == 3 ? h - 1 : 0;
    int cy = r[5] == 2 ? h - 1 : r[5] == 4 ? w - 1 : 0;
    *x = r[0] * sx + r[1] * sy + cx;
    *y = r[3] * sx + r[4] * sy + cy;
}

static void test_exif_orientations(void **state)
{
    (void)state;
    bn_image ref = {0};
    load_ok(IMG("exif-1.jpg"), NULL, &ref);
    assert_int_equal(ref.meta.orientation, 1);
    for (int o = 1; o <= 8; o++) {
        char path[64];
        snprintf(path, sizeof path, "tests/images/exif-%d.jpg", o);
        bn_image img = {0}, raw = {0};
        load_ok(path, NULL, &img);
        assert_int_equal(img.meta.orientation, o);
        assert_int_equal(img.w, o >= 5 ? ref.h : ref.w);
        for (int sy = 0; sy < ref.h; sy++)
            for (int sx = 0; sx < ref.w; sx++) {
                int x, y;
                seen_at(o, ref.w, ref.h, sx, sy, &x, &y);
                assert_memory_equal(px(&img, x, y), px(&ref, sx, sy), 3);
            }
        bn_image_load_params p = {.no_exif = 1};
        load_ok(path, &p, &raw);
        assert_memory_equal(raw.data, ref.data, (size_t)ref.w * (size_t)ref.h * 3);
        bn_image_release(&img);
        bn_image_release(&raw);
    }
    /* a PNG eXIf chunk: orientation 6 turns 40x24 into 24x40 */
    bn_image png = {0};
    load_ok(IMG("exif-6.png"), NULL, &png);
    assert_int_equal(png.meta.orientation, 6);
    assert_int_equal(png.w, 24);
    assert_int_equal(png.h, 40);
    bn_image_release(&png);
    bn_image_release(&ref);
}

typedef struct bad_case {
    const char *file;
    bn_status rc;
    const char *msg;
} bad_case;

static void test_hostile_files(void **state)
{
    (void)state;
    static const bad_case cases[] = {
            {"bomb.png", BN_ERR_RANGE, "100000x100000 pixels is over the limit"},
            {"bomb.jpg", BN_ERR_RANGE, "65000x65000 pixels is over the limit"},
            {"truncated.jpg", BN_ERR_FORMAT, "truncated JPEG data"},
            {"truncated.png", BN_ERR_FORMAT, "truncated PNG data"},
            {"wrongsize.png", BN_ERR_FORMAT, "bad PNG data"},
            {"garbage.bin", BN_ERR_FORMAT, "not a JPEG or PNG image"},
            {"empty.jpg", BN_ERR_FORMAT, "empty file"},
            {"notjpeg.gif", BN_ERR_UNSUPPORTED, "a GIF image"},
            {"missing.png", BN_ERR_IO, "missing.png"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/images/%s", cases[i].file);
        bn_image img = {.w = 7};
        long before = bn_alloc_count();
        assert_int_equal(bn_image_load(g_ctx, path, NULL, &img), cases[i].rc);
        assert_non_null(strstr(bn_ctx_errmsg(g_ctx), cases[i].msg));
        assert_null(strchr(bn_ctx_errmsg(g_ctx), '\n'));
        assert_true(img.w == 0 && img.data == NULL); /* out is zeroed on failure */
        assert_true(bn_alloc_count() - before < 10); /* no pixel memory for a bomb */
    }
    /* limits from the caller */
    bn_image img;
    bn_image_load_params p = {.max_pixels = 451 * 300 - 1};
    assert_int_equal(bn_image_load(g_ctx, IMG("chelsea.jpg"), &p, &img), BN_ERR_RANGE);
    p = (bn_image_load_params){.max_bytes = 1000};
    assert_int_equal(bn_image_load(g_ctx, IMG("chelsea.jpg"), &p, &img), BN_ERR_RANGE);
    assert_non_null(strstr(bn_ctx_errmsg(g_ctx), "over the limit of 1000"));
    /* a bomb's header is still described */
    bn_image_meta m;
    assert_int_equal(bn_image_probe(g_ctx, IMG("bomb.png"), &m), BN_OK);
    assert_int_equal(m.width, 100000);
}

/* Every prefix of a file is an error with a message or (for a prefix that happens to hold
 * the whole image) a success; bit flips likewise. ASan runs this too. */
static void mangle(const char *path, size_t step)
{
    size_t n;
    uint8_t *data = read_all(path, &n);
    for (size_t len = 0; len < n; len += step) {
        bn_image img;
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, data, len);
        bn_status rc = bn_image_load_memory(g_ctx, cut, len, "cut", NULL, &img);
        assert_true(rc != BN_OK || img.data);
        if (rc != BN_OK) assert_true(bn_ctx_errmsg(g_ctx)[0] != '\0');
        bn_image_release(&img);
        free(cut);
    }
    for (size_t k = 0; k < 300; k++) {
        size_t at = (k * 7919u) % n;
        data[at] ^= (uint8_t)(1u << (k % 8));
        bn_image img;
        bn_status rc = bn_image_load_memory(g_ctx, data, n, "flip", NULL, &img);
        if (rc != BN_OK) assert_true(bn_ctx_errmsg(g_ctx)[0] != '\0');
        bn_image_release(&img);
        data[at] ^= (uint8_t)(1u << (k % 8));
    }
    free(data);
}

static void test_truncations_and_flips(void **state)
{
    (void)state;
    mangle(IMG("exif-6.jpg"), 1);
    mangle(IMG("interlaced.png"), 1);
    mangle(IMG("palette4.png"), 7);
    mangle(IMG("cmyk.jpg"), 61);
    mangle(IMG("coffee-progressive.jpg"), 997);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    const char *files[] = {IMG("exif-6.jpg"), IMG("cmyk.jpg"), IMG("interlaced.png"),
                           IMG("exif-6.png")};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        int done = 0;
        for (long k = 1; k < 100 && !done; k++) {
            bn_image img;
            bn_alloc_fail_at(k, 0);
            bn_status rc = bn_image_load(g_ctx, files[f], NULL, &img);
            bn_alloc_fail_at(0, 0);
            if (rc == BN_OK) {
                done = 1;
            } else {
                assert_int_equal(rc, BN_ERR_NOMEM);
                assert_null(img.data);
            }
            bn_image_release(&img);
        }
        assert_true(done);
    }
}

static bn_image grey_row(const uint8_t *v, int w, int h)
{
    bn_image img = {.w = w, .h = h, .c = 1, .data = bn_malloc((size_t)w * (size_t)h)};
    memcpy(img.data, v, (size_t)w * (size_t)h);
    return img;
}

/* the expected values are Pillow 13's Image.resize(size, BILINEAR) on the same bytes */
static void test_resize(void **state)
{
    (void)state;
    bn_image a = grey_row((const uint8_t[]){0, 100, 200, 255}, 4, 1), out;
    assert_int_equal(bn_image_resize(g_ctx, &a, 2, 1, &out), BN_OK);
    assert_memory_equal(out.data, ((uint8_t[]){71, 209}), 2); /* antialiased: 3 taps */
    bn_image_release(&out);
    bn_image_release(&a);
    a = grey_row((const uint8_t[]){0, 255}, 2, 1);
    assert_int_equal(bn_image_resize(g_ctx, &a, 5, 1, &out), BN_OK);
    assert_memory_equal(out.data, ((uint8_t[]){0, 25, 128, 230, 255}), 5);
    bn_image_release(&out);
    bn_image_release(&a);
    a = grey_row((const uint8_t[]){10, 20, 30, 40, 50, 60}, 3, 2);
    assert_int_equal(bn_image_resize(g_ctx, &a, 2, 3, &out), BN_OK);
    assert_memory_equal(out.data, ((uint8_t[]){14, 26, 29, 41, 44, 56}), 6);
    bn_image_release(&out);
    /* wider and shorter: Pillow 13 runs the vertical pass first (horizontal first gives 59,
     * 76, 179, 194 at 2, 6, 9, 10) */
    bn_image b = grey_row(
            (const uint8_t[]){136, 117, 52, 162, 15, 11, 13, 4, 195, 110, 216, 14, 113, 224, 253},
            3, 5);
    assert_int_equal(bn_image_resize(g_ctx, &b, 4, 3, &out), BN_OK);
    assert_memory_equal(out.data,
                        ((uint8_t[]){147, 101, 58, 34, 68, 59, 77, 114, 112, 180, 195, 151}), 12);
    bn_image_release(&out);
    bn_image_release(&b);
    /* both shrink: vertical first only when the height loses more than twice the width's
     * pixels; Pillow 13 on an 8x8 image: to 4x5 (width -4, height -3) horizontal first, to
     * 7x3 (width -1, height -5) vertical first; the other order differs in both */
    static const uint8_t to_4x5[20] = {47, 114, 175, 99,  124, 168, 138, 85,  182, 100,
                                       95, 151, 131, 102, 161, 118, 106, 173, 158, 72};
    static const uint8_t to_7x3[21] = {62,  103, 137, 166, 170, 114, 65,  171, 155, 108, 101,
                                       116, 131, 134, 121, 107, 133, 175, 170, 109, 72};
    uint8_t v64[64];
    for (int k = 0; k < 64; k++) v64[k] = (uint8_t)((k * 37 + (k >> 3) * 11) & 0xff);
    b = grey_row(v64, 8, 8);
    assert_int_equal(bn_image_resize(g_ctx, &b, 4, 5, &out), BN_OK);
    assert_memory_equal(out.data, to_4x5, 20);
    bn_image_release(&out);
    assert_int_equal(bn_image_resize(g_ctx, &b, 7, 3, &out), BN_OK);
    assert_memory_equal(out.data, to_7x3, 21);
    bn_image_release(&out);
    bn_image_release(&b);
    /* the same size is a copy; a flat image stays flat; bad sizes are refused */
    assert_int_equal(bn_image_resize(g_ctx, &a, 3, 2, &out), BN_OK);
    assert_memory_equal(out.data, a.data, 6);
    bn_image_release(&out);
    assert_int_equal(bn_image_resize(g_ctx, &a, 0, 2, &out), BN_ERR_RANGE);
    assert_int_equal(bn_image_resize(g_ctx, &a, 2, BN_IMAGE_MAX_SIDE + 1, &out), BN_ERR_RANGE);
    bn_image_release(&a);
    bn_image img = {0};
    load_ok(IMG("1x1.png"), NULL, &img);
    assert_int_equal(bn_image_resize(g_ctx, &img, 9, 4, &out), BN_OK);
    for (int k = 0; k < 36; k++) assert_memory_equal(out.data + k * 3, img.data, 3);
    bn_image_release(&out);
    /* Resize(S): the shorter side to S, the longer int(S * long / short) */
    bn_image big = {0};
    load_ok(IMG("chelsea.jpg"), NULL, &big); /* 451x300 */
    assert_int_equal(bn_image_resize_short(g_ctx, &big, 256, &out), BN_OK);
    assert_int_equal(out.w, 384); /* 256 * 451 / 300 = 384.85 */
    assert_int_equal(out.h, 256);
    bn_image_release(&out);
    assert_int_equal(bn_image_resize_short(g_ctx, &big, 65535, &out), BN_ERR_RANGE);
    bn_image_release(&big);
    bn_image_release(&img);
}

static void test_center_crop(void **state)
{
    (void)state;
    bn_image a = grey_row((const uint8_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8}, 9, 1), out;
    /* offsets int(round((9 - w) / 2)), halves to even: w 6 -> 2 (1.5), w 4 -> 2 (2.5),
     * w 8 -> 0 (0.5), w 2 -> 4 (3.5) */
    const int widths[] = {6, 4, 8, 2, 9, 1}, starts[] = {2, 2, 0, 4, 0, 4};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(bn_image_center_crop(g_ctx, &a, widths[i], 1, &out), BN_OK);
        assert_int_equal(out.data[0], starts[i]);
        assert_int_equal(out.data[widths[i] - 1], starts[i] + widths[i] - 1);
        bn_image_release(&out);
    }
    /* larger than the image: zeros around it, left (12 - 9) / 2 = 1, top (3 - 1) / 2 = 1 */
    assert_int_equal(bn_image_center_crop(g_ctx, &a, 12, 3, &out), BN_OK);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 12; x++)
            assert_int_equal(out.data[y * 12 + x], y == 1 && x >= 1 && x <= 9 ? x - 1 : 0);
    bn_image_release(&out);
    bn_image_release(&a);
}

static void test_grey_and_tensor(void **state)
{
    (void)state;
    bn_image rgb = {.w = 3, .h = 1, .c = 3, .data = bn_malloc(9)}, g, back;
    memcpy(rgb.data, (const uint8_t[]){255, 0, 0, 0, 255, 0, 0, 0, 255}, 9);
    assert_int_equal(bn_image_to_grey(g_ctx, &rgb, &g), BN_OK);
    assert_memory_equal(g.data, ((uint8_t[]){76, 150, 29}), 3); /* PIL's convert('L') */
    assert_int_equal(bn_image_to_rgb(g_ctx, &g, &back), BN_OK);
    assert_memory_equal(back.data, ((uint8_t[]){76, 76, 76, 150, 150, 150, 29, 29, 29}), 9);
    float x[9];
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.5f, 0.25f, 2.0f};
    bn_image_to_chw(&rgb, mean, std, x);
    /* CHW: channel 0 is R of the 3 pixels */
    const float want[9] = {1.0f, -1.0f, -1.0f, -1.0f, 3.0f, -1.0f, 0.0f, 0.0f, 0.5f};
    for (int i = 0; i < 9; i++) assert_float_equal(x[i], want[i], 1e-6);
    bn_image_release(&rgb);
    bn_image_release(&g);
    bn_image_release(&back);
}

static void test_prepare(void **state)
{
    (void)state;
    bn_image img = {0};
    load_ok(IMG("1x1.png"), NULL, &img);
    bn_image_prep p = BN_IMAGE_PREP_IMAGENET;
    float *x;
    int c, h, w;
    assert_int_equal(bn_image_prepare(g_ctx, &img, &p, &x, &c, &h, &w), BN_OK);
    assert_true(c == 3 && h == 224 && w == 224);
    const float v[3] = {200.0f, 30.0f, 90.0f};
    for (int k = 0; k < 3; k++) {
        float want = (v[k] / 255.0f - p.mean[k]) / p.std[k];
        assert_float_equal(x[k * 224 * 224], want, 0);
        assert_float_equal(x[k * 224 * 224 + 224 * 224 - 1], want, 0);
    }
    bn_free(x);
    bn_image_prep q = {.channels = 1, .resize_w = 28, .resize_h = 28};
    assert_int_equal(bn_image_prepare(g_ctx, &img, &q, &x, &c, &h, &w), BN_OK);
    assert_true(c == 1 && h == 28 && w == 28);
    assert_float_equal(x[0], 88.0f / 255.0f, 0);
    bn_free(x);
    bn_image none = {0};
    assert_int_equal(bn_image_prepare(g_ctx, &none, &q, &x, &c, &h, &w), BN_ERR_INVALID);
    assert_null(x);
    bn_image_release(&img);
}

/* setup() and teardown() of the group: one-thread context in g_ctx */
TEST_CTX1_FIXTURE(g_ctx)

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_modes),          cmocka_unit_test(test_pixels),
            cmocka_unit_test(test_alpha),          cmocka_unit_test(test_exif_orientations),
            cmocka_unit_test(test_hostile_files),  cmocka_unit_test(test_truncations_and_flips),
            cmocka_unit_test(test_alloc_failures), cmocka_unit_test(test_resize),
            cmocka_unit_test(test_center_crop),    cmocka_unit_test(test_grey_and_tensor),
            cmocka_unit_test(test_prepare),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
