/* test_graph.c - the TUI's text graphs (ui/graph.c) rendered into buffers: exact ASCII
 * output, braille and block cells, min/max labels, the time axis, holding between samples,
 * gaps, NaN, empty windows, fixed ranges, sizes out of range, the series ring, numbers.
 * ui/graph.c comes from libbitnetui.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../ui/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bn_series ser;
static bn_graph_out out;

/* samples at t = 1, 2, ... */
static void series_of(const double *v, int n)
{
    bn_series_clear(&ser);
    for (int i = 0; i < n; i++) bn_series_push(&ser, i + 1, v[i]);
}

static bn_graph_opts ascii_opts(int w, int h, double t_end, double span)
{
    bn_graph_opts o = bn_graph_opts_default();
    o.width = w, o.height = h, o.style = BN_GRAPH_ASCII, o.t_end = t_end, o.span = span;
    o.hold_s = 0;
    return o;
}

/* columns of a UTF-8 line (every character here is one column wide) */
static int columns(const char *s)
{
    int n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) n++;
    return n;
}

static void test_ascii_exact(void **state)
{
    (void)state;
    /* 4 samples in a window of 4 s over 4 plot columns: one sample a column */
    const double v[] = {1, 2, 3, 4};
    series_of(v, 4);
    bn_graph_opts o = ascii_opts(10, 3, 4.5, 4);
    o.x_left = "-4s", o.x_mid = "", o.x_right = "now";
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_int_equal(out.rows, 3);
    assert_int_equal(out.label_w, 6);
    /* range 0..4 over 2 rows of 2 levels: 1 -> 1, 2 -> 2, 3 -> 3, 4 -> 4 levels */
    assert_string_equal(out.line[0], "4.00 +  .#");
    assert_string_equal(out.line[1], "0.00 +.###");
    assert_string_equal(out.line[2], "       now"); /* "-4s" does not fit beside it */
    assert_true(out.lo == 0 && out.hi == 4);
    assert_int_equal(out.n_samples, 4);
}

static void test_labels_and_axis(void **state)
{
    (void)state;
    const double v[] = {10, 1500, 250};
    series_of(v, 3);
    bn_graph_opts o = ascii_opts(30, 5, 3, 60);
    o.unit = "%";
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_non_null(strstr(out.line[0], "1.5k%"));
    assert_non_null(strstr(out.line[3], "0.00%"));
    assert_int_equal(strncmp(out.line[1] + out.label_w - 1, "|", 1), 0);
    /* the time axis: "-60s" at the plot's left, "-30s" in the middle, "now" at the right */
    assert_non_null(strstr(out.line[4], "-60s"));
    assert_non_null(strstr(out.line[4], "-30s"));
    assert_int_equal(strcmp(out.line[4] + strlen(out.line[4]) - 3, "now"), 0);
    for (int r = 0; r < out.rows; r++) assert_int_equal(columns(out.line[r]), 30);
    /* minutes and hours */
    o.span = 600;
    o.t_end = 600;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_non_null(strstr(out.line[4], "-10m"));
    o.span = 7200 * 3;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_non_null(strstr(out.line[4], "-6h"));
}

static void test_braille(void **state)
{
    (void)state;
    /* 8 samples, one per braille dot column, over 4 cells of one row (4 dots high) */
    const double v[] = {4, 0, 2, 2, 0, 0, 1, 4};
    bn_series_clear(&ser);
    for (int i = 0; i < 8; i++) bn_series_push(&ser, 0.25 + 0.5 * i, v[i]);
    bn_graph_opts o = ascii_opts(10, 2, 4, 4);
    o.style = BN_GRAPH_BRAILLE;
    o.x_left = o.x_mid = o.x_right = "";
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    /* 4|0: the whole left column (0x47); 2|2: the lower two dots of both (0xe4); 0|0:
     * a space; 1|4: the lowest left dot and the whole right column (0xf8) */
    assert_string_equal(out.line[0], "4.00 \u2524\u2847\u28e4 \u28f8");
    for (int r = 0; r < out.rows; r++) assert_int_equal(columns(out.line[r]), 10);
}

static void test_block(void **state)
{
    (void)state;
    const double v[] = {8, 4, 1, 0};
    series_of(v, 4);
    bn_graph_opts o = ascii_opts(10, 2, 4.5, 4);
    o.style = BN_GRAPH_BLOCK;
    o.y_min = 0, o.y_max = 8;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_string_equal(out.line[0], "8.00 \u2524\u2588\u2584\u2581 ");
}

static void test_hold_and_gaps(void **state)
{
    (void)state;
    /* samples at t = 1 and t = 2, window [0, 8] over 8 columns: with hold 2 s the value
     * is repeated up to 2 s after the last sample, then the columns are blank */
    bn_series_clear(&ser);
    bn_series_push(&ser, 1, 2);
    bn_series_push(&ser, 2, 2);
    bn_graph_opts o = ascii_opts(14, 2, 8, 8);
    o.hold_s = 2;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_string_equal(out.line[0], "2.00 + ####   ");
    o.hold_s = 0;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_string_equal(out.line[0], "2.00 + ##     ");
    /* a sample before the window is held into it */
    bn_series_clear(&ser);
    bn_series_push(&ser, -0.5, 2);
    bn_series_push(&ser, 3.5, 2);
    o.hold_s = 1;
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_string_equal(out.line[0], "2.00 +#  ##   ");
    assert_int_equal(out.n_samples, 1);
}

static void test_nan_empty_flat(void **state)
{
    (void)state;
    bn_series_clear(&ser);
    bn_graph_opts o = ascii_opts(20, 4, 10, 10);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_non_null(strstr(out.line[1], "no data"));
    assert_int_equal(out.n_samples, 0);
    /* NaN only: still no data */
    bn_series_push(&ser, 5, NAN);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_non_null(strstr(out.line[1], "no data"));
    /* all zero: a range of 0..1, nothing drawn, labels fine */
    const double z[] = {0, 0, 0};
    series_of(z, 3);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_null(strchr(out.line[0] + out.label_w, '#'));
    assert_true(out.hi > out.lo);
    /* negative values: the range goes below zero */
    const double n[] = {-5, 5};
    series_of(n, 2);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_true(out.lo == -5 && out.hi == 5);
    assert_non_null(strstr(out.line[2], "-5.00"));
    /* samples after t_end are ignored */
    bn_series_clear(&ser);
    bn_series_push(&ser, 11, 3);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_int_equal(out.n_samples, 0);
}

static void test_sizes(void **state)
{
    (void)state;
    const double v[] = {1, 2};
    series_of(v, 2);
    bn_graph_opts o = ascii_opts(7, 4, 2, 2);
    assert_int_equal(bn_graph_render(&ser, &o, &out), -1);
    o.width = 8, o.height = 1;
    assert_int_equal(bn_graph_render(&ser, &o, &out), -1);
    o.height = BN_GRAPH_MAX_ROWS + 1;
    assert_int_equal(bn_graph_render(&ser, &o, &out), -1);
    o.height = 3, o.width = BN_GRAPH_MAX_COLS + 1;
    assert_int_equal(bn_graph_render(&ser, &o, &out), -1);
    o.width = 20, o.span = 0;
    assert_int_equal(bn_graph_render(&ser, &o, &out), -1);
    /* the largest size, every style: every line exactly width columns */
    for (int st = 0; st < 3; st++) {
        bn_graph_opts b = ascii_opts(BN_GRAPH_MAX_COLS, BN_GRAPH_MAX_ROWS, 2, 2);
        b.style = (bn_graph_style)st;
        assert_int_equal(bn_graph_render(&ser, &b, &out), 0);
        for (int r = 0; r < out.rows; r++) assert_int_equal(columns(out.line[r]), b.width);
    }
    /* the smallest */
    o = ascii_opts(8, 2, 2, 2);
    assert_int_equal(bn_graph_render(&ser, &o, &out), 0);
    assert_int_equal(columns(out.line[0]), 8);
    assert_int_equal(columns(out.line[1]), 8);
}

static void test_series_ring(void **state)
{
    (void)state;
    bn_series_clear(&ser);
    double t = 0, v = 0;
    assert_int_equal(bn_series_get(&ser, 0, &t, &v), -1);
    assert_true(bn_series_last(&ser, -7) == -7);
    for (int i = 0; i < BN_SERIES_MAX + 5; i++) bn_series_push(&ser, i, i * 2);
    assert_int_equal(ser.n, BN_SERIES_MAX);
    assert_int_equal(bn_series_get(&ser, 0, &t, &v), 0);
    assert_true(t == 5 && v == 10);
    assert_int_equal(bn_series_get(&ser, BN_SERIES_MAX - 1, &t, &v), 0);
    assert_true(t == BN_SERIES_MAX + 4);
    assert_int_equal(bn_series_get(&ser, BN_SERIES_MAX, &t, &v), -1);
    assert_int_equal(bn_series_get(&ser, -1, &t, &v), -1);
    assert_true(bn_series_last(&ser, 0) == (BN_SERIES_MAX + 4) * 2);
}

static void test_fmt_num(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
            {0, "0.00"},     {1.234, "1.23"}, {12.34, "12.3"},     {123.4, "123"},
            {999.4, "999"},  {999.6, "1000"}, {1234, "1.2k"},      {12345, "12k"},
            {2.5e6, "2.5M"}, {3e9, "3.0G"},   {-12.5, "-12.5"},    {-1500, "-1.5k"},
            {NAN, "-"},      {9.96, "10.0"},  {123456789, "123M"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[16];
        bn_graph_fmt_num(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].s);
        assert_true(strlen(buf) <= 6);
    }
    assert_string_equal(bn_graph_style_name(BN_GRAPH_BLOCK), "block");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ascii_exact),   cmocka_unit_test(test_labels_and_axis),
            cmocka_unit_test(test_braille),       cmocka_unit_test(test_block),
            cmocka_unit_test(test_hold_and_gaps), cmocka_unit_test(test_nan_empty_flat),
            cmocka_unit_test(test_sizes),         cmocka_unit_test(test_series_ring),
            cmocka_unit_test(test_fmt_num),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
