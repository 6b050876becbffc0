/* test_cli.c - the small helpers of common/ that the command-line front-ends share: cm_fail,
 * the number parsers of common/cli.h, and the typed JSON reads of common/json.h.
 *
 * common/cli.c and common/json.c come from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "common/cli.h"
#include "common/json.h"
#include "common/utf8.h"
#include "bitnet/tokenizer.h"

static void test_fail(void **state)
{
    (void)state;
    char err[16];
    assert_int_equal(cm_fail(err, sizeof err, "%s: %d", "abc", 42), -1);
    assert_string_equal(err, "abc: 42");
    assert_int_equal(cm_fail(err, sizeof err, "%s", "a message longer than the buffer"), -1);
    assert_int_equal(strlen(err), sizeof err - 1); /* cut, still terminated */
    assert_int_equal(cm_fail(NULL, 0, "nowhere"), -1);
}

static void test_parse(void **state)
{
    (void)state;
    long v = 0;
    assert_int_equal(cli_parse_long("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cli_parse_long("0", 1, 100, &v), -1);   /* below */
    assert_int_equal(cli_parse_long("101", 1, 100, &v), -1); /* above */
    assert_int_equal(cli_parse_long("4x", 1, 100, &v), -1);  /* trailing junk */
    assert_int_equal(cli_parse_long("", 1, 100, &v), -1);
    assert_int_equal(cli_parse_long("99999999999999999999", 1, 100, &v), -1); /* overflow */
    int l[4];
    assert_int_equal(cli_parse_int_list("1,2,4", l, 4), 3);
    assert_int_equal(l[2], 4);
    assert_int_equal(cli_parse_int_list("1,2,3,4,5", l, 4), -1); /* too many */
    assert_int_equal(cli_parse_int_list("1,,2", l, 4), 2);       /* strtok skips empties */
    assert_int_equal(cli_parse_int_list("1,0", l, 4), -1);
    assert_int_equal(cli_parse_int_list("", l, 4), -1);
}

static void test_json(void **state)
{
    (void)state;
    cJSON *o = cJSON_Parse("{\"s\": \"x\", \"n\": 2.5, \"b\": true, \"z\": null}");
    assert_non_null(o);
    assert_string_equal(cm_json_str(o, "s", ""), "x");
    assert_string_equal(cm_json_str(o, "n", "dflt"), "dflt"); /* not a string */
    assert_null(cm_json_str(o, "missing", NULL));
    assert_true(cm_json_num(o, "n", 0) == 2.5);
    assert_true(isnan(cm_json_num(o, "s", NAN))); /* not a number */
    assert_true(cm_json_num(o, "b", -1) == -1);
    assert_true(cm_json_num(o, "z", -2) == -2);
    assert_true(cm_json_num(NULL, "n", 7) == 7); /* no object */
    cJSON_Delete(o);
}

/* One rule of UTF-8 sequences: the engine's bn_utf8_seq_len (the tokenizer's), which
 * common's bn_utf8_len follows but for NUL, which ends a string there. */
static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t left, want;
    } cases[] = {
            {"a", 1, 1},
            {"\xc3\xa9", 2, 2},         /* e acute */
            {"\xe2\x82\xac", 3, 3},     /* euro */
            {"\xf0\x9f\x98\x80", 4, 4}, /* emoji */
            {"\xc3\xa9", 1, 0},         /* cut short */
            {"\xc0\x80", 2, 0},         /* overlong NUL */
            {"\xe0\x80\xaf", 3, 0},     /* overlong */
            {"\xed\xa0\x80", 3, 0},     /* a surrogate */
            {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
            {"\xf5\x80\x80\x80", 4, 0},
            {"\x80", 1, 0}, /* a continuation byte alone */
            {"\xc3(", 2, 0},
            {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *u = (const unsigned char *)cases[i].s;
        assert_int_equal(bn_utf8_seq_len(u, cases[i].left), cases[i].want);
        assert_int_equal(bn_utf8_len(u, cases[i].left), cases[i].want);
    }
    const unsigned char nul[1] = {0};
    assert_int_equal(bn_utf8_seq_len(nul, 1), 1); /* a NUL byte is a character */
    assert_int_equal(bn_utf8_len(nul, 1), 0);     /* and the end of a string */
    assert_true(bn_utf8_valid("caf\xc3\xa9"));
    assert_false(bn_utf8_valid("caf\xc3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_fail),
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_json),
            cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
