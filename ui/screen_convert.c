/* screen_convert.c - screen 7: the model conversion queue. Conversion is not part of this
 * build yet; the screen says so and nothing more. */
#include "tui.h"

#include <stdlib.h>

static void *conv_create(tui *t)
{
    (void)t;
    return calloc(1, 1);
}

static void conv_destroy(void *st)
{
    free(st);
}

static void conv_draw(tui *t, void *st, int y, int x, int h, int w)
{
    (void)t, (void)st;
    ui_box(y, x, h, w, "Conversions");
    ui_text(y + 1, x + 2, w - 4, crt_attr(CR_WARN),
            "not available yet: conversion arrives with `bitnet convert`");
    static const char more[] = "this screen will show its job queue (progress, cancel, retry) "
                               "then; until then use GGUF models (Models: F5)";
    if (h > 4) ui_text_block(y + 3, x + 2, h - 4, w - 4, crt_attr(CR_DIM), more, sizeof more - 1, 0);
}

static int conv_key(tui *t, void *st, int ch)
{
    (void)t, (void)st, (void)ch;
    return 0;
}

const tui_screen scr_convert = {
        .name = "Conversions",
        .id = "conversions",
        .letter = 'v',
        .fkey = 8,
        .help = "\tnot available yet: conversion arrives with `bitnet convert`",
        .create = conv_create,
        .destroy = conv_destroy,
        .draw = conv_draw,
        .key = conv_key,
};
