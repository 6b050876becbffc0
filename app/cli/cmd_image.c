/* cmd_image.c - `bitnet image info` (what a JPEG or PNG holds) and `bitnet image prep` (the
 * preprocessing of a classifier: torchvision's Resize, CenterCrop, ToTensor, Normalize) on
 * the engine's decoders and transforms (bitnet/image.h). */
#include "commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/file.h"
#include "bitnet/image.h"

void cmd_image_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet image info FILE... [--json]\n"
            "       bitnet image prep FILE [options] [-o OUT [--force]] [--json]\n\n"
            "info: the format, size, colour mode, bit depth, alpha, interlace and EXIF\n"
            "orientation of JPEG and PNG files, read from the header (also of an image over\n"
            "the pixel limit).\n\n"
            "prep: decodes FILE (RGB; EXIF orientation applied; alpha dropped) and runs the\n"
            "steps given, in this order, as torchvision does on a PIL image: channels,\n"
            "Resize, CenterCrop, ToTensor and Normalize. Resizing is PIL's bilinear with\n"
            "antialias. OUT receives the float32 tensor (little-endian, CHW), or with --raw\n"
            "the 8-bit pixels (HWC) before ToTensor.\n\n"
            "Options of prep:\n"
            "  --resize S         the shorter side to S, the longer in proportion\n"
            "  --size WxH         resize to exactly W x H instead\n"
            "  --crop C | WxH     center crop (padded with zeros when larger than the image)\n"
            "  --grey             convert to one channel (ITU-R 601-2 luma, as PIL's 'L')\n"
            "  --mean A,B,C --std A,B,C   Normalize (one value each for --grey)\n"
            "  --imagenet         --resize 256 --crop 224 and ImageNet's mean and std\n"
            "  --no-exif          ignore the EXIF orientation (as PIL's Image.open does)\n"
            "  --background RRGGBB  composite alpha on this colour instead of dropping it\n"
            "  --max-pixels N     refuse a larger image (default %llu)\n"
            "  --raw              write 8-bit pixels instead of the float tensor\n"
            "  -o, --output OUT   write the result (its folder must exist)\n"
            "  --force            replace an existing OUT\n"
            "  --json             print a JSON summary\n"
            "  -h, --help         this help\n\n"
            "Exit status: 0 ok, 1 failure (an unreadable or malformed image), 2 usage error.\n",
            (unsigned long long)BN_IMAGE_MAX_PIXELS);
}

static cJSON *meta_json(const char *file, const bn_image_meta *m)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "file", file);
    cJSON_AddStringToObject(d, "format", bn_image_format_name(m->format));
    cJSON_AddNumberToObject(d, "width", m->width);
    cJSON_AddNumberToObject(d, "height", m->height);
    cJSON_AddStringToObject(d, "mode", m->mode ? m->mode : "");
    cJSON_AddNumberToObject(d, "channels", m->channels);
    cJSON_AddNumberToObject(d, "bit_depth", m->bit_depth);
    cJSON_AddBoolToObject(d, "alpha", m->has_alpha);
    cJSON_AddBoolToObject(d, "interlaced", m->interlaced);
    cJSON_AddNumberToObject(d, "orientation", m->orientation);
    return d;
}

static int image_info(int argc, char **argv)
{
    int json = 0, n_files = 0, rc = BN_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return cmd_image_help(stdout), BN_EXIT_OK;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error("image info", "unknown option '%s'", argv[i]);
        else
            n_files++;
    }
    if (!n_files) return cli_usage_error("image info", "no FILE");
    bn_ctx *ctx = NULL;
    bn_ctx_params cp = {1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) return cli_error("cannot create the engine context"), 1;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) continue;
        bn_image_meta m;
        if (bn_image_probe(ctx, argv[i], &m) != BN_OK) {
            cli_error("%s", bn_ctx_errmsg(ctx));
            rc = BN_EXIT_FAIL;
            continue;
        }
        if (json) {
            cJSON_AddItemToArray(arr, meta_json(argv[i], &m));
            continue;
        }
        printf("%s: %s %dx%d %s, %d-bit%s%s", argv[i], bn_image_format_name(m.format), m.width,
               m.height, m.mode, m.bit_depth, m.has_alpha ? ", alpha" : "",
               m.interlaced ? (m.format == BN_IMAGE_FORMAT_PNG ? ", interlaced" : ", progressive")
                            : "");
        if (m.orientation) printf(", EXIF orientation %d", m.orientation);
        printf("\n");
    }
    if (json && cli_print_json(arr)) rc = BN_EXIT_FAIL;
    bn_ctx_free(ctx);
    return rc;
}

typedef struct prep_opts {
    const char *file, *out;
    bn_image_prep p;
    bn_image_load_params lp;
    int raw, json, force, has_mean, has_std;
} prep_opts;

/* "W" (w = h) or "WxH" into w, h in 1..BN_IMAGE_MAX_SIDE. */
static int parse_size(const char *s, int square_ok, int *w, int *h)
{
    long a, b;
    char buf[32];
    const char *x = strchr(s, 'x');
    if (!x) {
        if (!square_ok || cli_parse_long(s, 1, BN_IMAGE_MAX_SIDE, &a)) return -1;
        *w = *h = (int)a;
        return 0;
    }
    if ((size_t)(x - s) >= sizeof buf) return -1;
    memcpy(buf, s, (size_t)(x - s));
    buf[x - s] = '\0';
    if (cli_parse_long(buf, 1, BN_IMAGE_MAX_SIDE, &a) ||
        cli_parse_long(x + 1, 1, BN_IMAGE_MAX_SIDE, &b))
        return -1;
    *w = (int)a, *h = (int)b;
    return 0;
}

/* "A,B,C" or "A" (repeated) into three finite floats. */
static int parse_floats(const char *s, float v[3])
{
    int n = 0;
    const char *p = s;
    while (n < 3) {
        char *end;
        double d = strtod(p, &end);
        if (end == p || !isfinite(d)) return -1;
        v[n++] = (float)d;
        if (*end == '\0') break;
        if (*end != ',') return -1;
        p = end + 1;
    }
    if (p[0] && strchr(p, ',')) return -1;
    for (int i = n; i < 3; i++) v[i] = v[n - 1];
    return n == 1 || n == 3 ? 0 : -1;
}

static int parse_rgb(const char *s, uint8_t bg[3])
{
    if (s[0] == '#') s++;
    if (strlen(s) != 6 || strspn(s, "0123456789abcdefABCDEF") != 6) return -1;
    unsigned long v = strtoul(s, NULL, 16);
    bg[0] = (uint8_t)(v >> 16), bg[1] = (uint8_t)(v >> 8), bg[2] = (uint8_t)v;
    return 0;
}

/* One option with its value (argv[*i + 1]); -1 for an unknown one, 1 for a bad value. */
static int prep_value_opt(prep_opts *o, const char *a, const char *v)
{
    long n;
    if (!strcmp(a, "--resize"))
        return cli_parse_long(v, 1, BN_IMAGE_MAX_SIDE, &n) ? 1 : (o->p.resize = (int)n, 0);
    if (!strcmp(a, "--size")) return parse_size(v, 0, &o->p.resize_w, &o->p.resize_h) ? 1 : 0;
    if (!strcmp(a, "--crop")) return parse_size(v, 1, &o->p.crop_w, &o->p.crop_h) ? 1 : 0;
    if (!strcmp(a, "--mean")) return parse_floats(v, o->p.mean) ? 1 : (o->has_mean = 1, 0);
    if (!strcmp(a, "--std")) return parse_floats(v, o->p.std) ? 1 : (o->has_std = 1, 0);
    if (!strcmp(a, "--background"))
        return parse_rgb(v, o->lp.background) ? 1 : (o->lp.alpha = BN_IMAGE_ALPHA_BLEND, 0);
    if (!strcmp(a, "--max-pixels"))
        return cli_parse_long(v, 1, 1L << 40, &n) ? 1 : (o->lp.max_pixels = (uint64_t)n, 0);
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) return o->out = v, 0;
    return -1;
}

static int prep_flag_opt(prep_opts *o, const char *a)
{
    if (!strcmp(a, "--raw")) return o->raw = 1, 0;
    if (!strcmp(a, "--json")) return o->json = 1, 0;
    if (!strcmp(a, "--force")) return o->force = 1, 0;
    if (!strcmp(a, "--grey") || !strcmp(a, "--gray")) return o->p.channels = 1, 0;
    if (!strcmp(a, "--no-exif")) return o->lp.no_exif = 1, 0;
    if (!strcmp(a, "--imagenet")) {
        bn_image_prep in = BN_IMAGE_PREP_IMAGENET;
        in.channels = o->p.channels;
        o->p = in;
        o->has_mean = o->has_std = 1;
        return 0;
    }
    return -1;
}

static int prep_parse(int argc, char **argv, prep_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cmd_image_help(stdout), -1;
        if (prep_flag_opt(o, a) == 0) continue;
        if (a[0] == '-' && a[1]) {
            int r = v ? prep_value_opt(o, a, v) : -1;
            if (r == -1 && v) return cli_usage_error("image prep", "unknown option '%s'", a);
            if (r == -1)
                return cli_usage_error("image prep", "%s needs a value (or is unknown)", a);
            if (r == 1) return cli_usage_error("image prep", "%s: bad value '%s'", a, v);
            i++;
        } else if (o->file) {
            return cli_usage_error("image prep", "one FILE only ('%s' and '%s')", o->file, a);
        } else {
            o->file = a;
        }
    }
    if (!o->file) return cli_usage_error("image prep", "no FILE");
    if (o->has_mean != o->has_std)
        return cli_usage_error("image prep", "--mean and --std go together");
    for (int k = 0; o->has_std && k < 3; k++)
        if (o->p.std[k] == 0.0f) return cli_usage_error("image prep", "--std: 0 is not allowed");
    if (o->p.resize && o->p.resize_w)
        return cli_usage_error("image prep", "--resize or --size, not both");
    return 0;
}

static int prep_write(const prep_opts *o, const void *data, size_t len)
{
    char why[600];
    if (bn_file_write_atomic(o->out, data, len, 0644, why, sizeof why) != BN_OK) {
        cli_error("image prep: %s", why);
        return -1;
    }
    return 0;
}

static void prep_report(const prep_opts *o, const bn_image *img, const float *x, int c, int h,
                        int w)
{
    size_t n = (size_t)c * (size_t)h * (size_t)w;
    double sum = 0, lo = x[0], hi = x[0];
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (!o->json) {
        printf("%s: %dx%d -> tensor %dx%dx%d (CHW), mean %.6f, min %.6f, max %.6f%s%s\n", o->file,
               img->w, img->h, c, h, w, sum / (double)n, lo, hi, o->out ? "; written to " : "",
               o->out ? o->out : "");
        return;
    }
    cJSON *d = meta_json(o->file, &img->meta);
    cJSON_AddNumberToObject(d, "decoded_width", img->w);
    cJSON_AddNumberToObject(d, "decoded_height", img->h);
    cJSON *shape = cJSON_AddArrayToObject(d, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(c));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(h));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(w));
    cJSON_AddStringToObject(d, "dtype", o->raw ? "u8 HWC" : "f32 CHW");
    cJSON_AddNumberToObject(d, "mean", sum / (double)n);
    cJSON_AddNumberToObject(d, "min", lo);
    cJSON_AddNumberToObject(d, "max", hi);
    if (o->out) cJSON_AddStringToObject(d, "output", o->out);
    cli_print_json(d);
}

static int image_prep(int argc, char **argv)
{
    prep_opts o = {0};
    int r = prep_parse(argc, argv, &o);
    if (r) return r == -1 ? BN_EXIT_OK : r; /* -1: --help */
    if (o.out && cli_check_output("image prep", o.out, o.force, &o.file, 1)) return BN_EXIT_FAIL;
    bn_ctx *ctx = NULL;
    bn_ctx_params cp = {1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) return cli_error("cannot create the engine context"), 1;
    bn_image img = {0}, px = {0};
    float *x = NULL;
    int c = 0, h = 0, w = 0, rc = BN_EXIT_FAIL;
    if (bn_image_load(ctx, o.file, &o.lp, &img) != BN_OK ||
        bn_image_prepare(ctx, &img, &o.p, &x, &c, &h, &w) != BN_OK ||
        (o.raw && bn_image_apply(ctx, &img, &o.p, &px) != BN_OK)) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        goto done;
    }
    size_t n = (size_t)c * (size_t)h * (size_t)w;
    if (o.out && (o.raw ? prep_write(&o, px.data, n) : prep_write(&o, x, n * sizeof(float))))
        goto done;
    prep_report(&o, &img, x, c, h, w);
    rc = BN_EXIT_OK;
done:
    bn_free(x);
    bn_image_release(&px);
    bn_image_release(&img);
    bn_ctx_free(ctx);
    return rc;
}

int cmd_image(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        cmd_image_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? BN_EXIT_USAGE : BN_EXIT_OK;
    }
    if (!strcmp(argv[1], "info")) return image_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "prep")) return image_prep(argc - 1, argv + 1);
    return cli_usage_error("image", "unknown subcommand '%s' (info, prep)", argv[1]);
}
