/* test_widgets.c - the TUI's text line (ui/widgets.c) as every form has it: a value set there
 * is selected and the first character typed replaces it, Backspace/Delete/Ctrl-U empty it,
 * Left/Home and Right/End keep it and move to its start or end, keys that are not editing
 * keys leave the selection; Ctrl-U clears the whole line wherever the cursor is; UTF-8 kept
 * whole. And ui_fit_path, which shows a long path of a status line from its end. No
 * terminal is started: crt_unicode() is 0, so the ellipsis is "...". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curses.h>
#include <string.h>

#include "../../ui/widgets.h"

static void type(ui_input *in, const char *s)
{
    for (; *s; s++) assert_int_equal(ui_input_key(in, (unsigned char)*s), 1);
}

static void test_typing_replaces_a_set_value(void **state)
{
    (void)state;
    ui_input in;
    ui_input_set(&in, "/tmp/x/llama-st");
    assert_true(in.all);
    type(&in, "/tmp/x/big");
    assert_string_equal(in.buf, "/tmp/x/big"); /* not /tmp/x/llama-st/tmp/x/big */
    assert_false(in.all);
    type(&in, "ger");
    assert_string_equal(in.buf, "/tmp/x/bigger");
    ui_input_set(&in, "");
    assert_false(in.all); /* nothing to select */
}

static void test_erasing_keys_empty_a_selected_value(void **state)
{
    (void)state;
    static const int keys[] = {KEY_BACKSPACE, 127, 8, KEY_DC, 4, 11, 21, 23};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        ui_input in;
        ui_input_set(&in, "value");
        assert_int_equal(ui_input_key(&in, keys[i]), 1);
        assert_string_equal(in.buf, "");
        assert_int_equal(in.len, 0);
        assert_false(in.all);
    }
}

static void test_moving_keeps_a_selected_value(void **state)
{
    (void)state;
    ui_input in;
    ui_input_set(&in, "abc");
    assert_int_equal(ui_input_key(&in, KEY_LEFT), 1); /* to the start, the value kept */
    assert_int_equal(in.cur, 0);
    type(&in, "x");
    assert_string_equal(in.buf, "xabc");
    ui_input_set(&in, "abc");
    assert_int_equal(ui_input_key(&in, KEY_HOME), 1);
    assert_int_equal(in.cur, 0);
    ui_input_set(&in, "abc");
    assert_int_equal(ui_input_key(&in, KEY_END), 1);
    type(&in, "d");
    assert_string_equal(in.buf, "abcd");
    ui_input_set(&in, "abc");
    assert_int_equal(ui_input_key(&in, KEY_RIGHT), 1); /* to the end, not one further */
    assert_int_equal(in.cur, 3);
    ui_input_key(&in, KEY_LEFT);
    ui_input_key(&in, KEY_LEFT);
    type(&in, "-");
    assert_string_equal(in.buf, "a-bc");
}

static void test_other_keys_leave_the_selection(void **state)
{
    (void)state;
    ui_input in;
    ui_input_set(&in, "abc");
    assert_int_equal(ui_input_key(&in, '\n'), 0);
    assert_int_equal(ui_input_key(&in, '\t'), 0);
    assert_int_equal(ui_input_key(&in, KEY_F(5)), 0);
    assert_true(in.all);
    assert_string_equal(in.buf, "abc");
}

static void test_ctrl_u_clears_the_line(void **state)
{
    (void)state;
    ui_input in;
    ui_input_set(&in, "");
    type(&in, "hello world");
    ui_input_key(&in, KEY_LEFT);
    ui_input_key(&in, KEY_LEFT);
    assert_int_equal(ui_input_key(&in, 21), 1);
    assert_string_equal(in.buf, "");
    assert_int_equal(in.cur, 0);
}

static void test_utf8_is_replaced_whole(void **state)
{
    (void)state;
    ui_input in;
    ui_input_set(&in, "caf\xc3\xa9");
    ui_input_key(&in, KEY_END);
    assert_int_equal(ui_input_key(&in, KEY_BACKSPACE), 1);
    assert_string_equal(in.buf, "caf");
    ui_input_set(&in, "\xc3\xa9t\xc3\xa9");
    type(&in, "\xe2\x82\xac");
    assert_string_equal(in.buf, "\xe2\x82\xac");
}

static void test_fit_path_shows_the_end(void **state)
{
    (void)state;
    char out[256];
    ui_fit_path("loaded m.gguf", 40, out, sizeof out); /* fits: unchanged */
    assert_string_equal(out, "loaded m.gguf");
    ui_fit_path("/a/long/folder/name/models/big.gguf: cannot open: No such file", 40, out,
                sizeof out);
    assert_int_equal((int)strlen(out), 40);
    assert_string_equal(out, "...s/big.gguf: cannot open: No such file");
    /* the longest of two paths is the one cut */
    ui_fit_path("wrote /m.gguf to /home/someone/.config/bitnet/config.json", 40, out, sizeof out);
    assert_string_equal(out, "wrote /m.gguf to ...g/bitnet/config.json");
    assert_int_equal((int)strlen(out), 40);
    /* no path, or too little of it left: unchanged (the caller cuts the end) */
    ui_fit_path("a message far too long for the space it is given here", 20, out, sizeof out);
    assert_string_equal(out, "a message far too long for the space it is given here");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_typing_replaces_a_set_value),
            cmocka_unit_test(test_erasing_keys_empty_a_selected_value),
            cmocka_unit_test(test_moving_keeps_a_selected_value),
            cmocka_unit_test(test_other_keys_leave_the_selection),
            cmocka_unit_test(test_ctrl_u_clears_the_line),
            cmocka_unit_test(test_utf8_is_replaced_whole),
            cmocka_unit_test(test_fit_path_shows_the_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
