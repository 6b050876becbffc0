/* test_table.c - the sortable columns of the TUI's lists (ui/table.c): the keys (< > wrap
 * round, I inverts, C opens the picker, which keeps the keys until Esc and never hides the
 * last column), and a stable sort either way through the screen's comparison. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../ui/table.h"

#include <curses.h>
#include <string.h>

static const ui_col cols[] = {{"KEY", 4, 1}, {"NAME", 8, 0}, {"REST", 0, 0}};

typedef struct row {
    int key;
    const char *name;
} row;

static int cmp(const void *ctx, int col, size_t a, size_t b)
{
    const row *r = ctx;
    return col == 0 ? (r[a].key > r[b].key) - (r[a].key < r[b].key) : strcmp(r[a].name, r[b].name);
}

static void test_keys(void **state)
{
    (void)state;
    ui_table tb;
    ui_table_init(&tb, cols, 3, 1, 0);
    assert_true(ui_table_key(&tb, '>') && tb.resort && tb.sort == 2);
    assert_true(ui_table_key(&tb, '>') && tb.sort == 0); /* round */
    assert_true(ui_table_key(&tb, '<') && tb.sort == 2);
    assert_true(ui_table_key(&tb, 'I') && tb.desc == 1 && tb.resort);
    assert_false(ui_table_key(&tb, 'x'));
    assert_false(tb.resort);
    assert_true(ui_table_key(&tb, 'C') && tb.picking && tb.cursor == 2);
    assert_true(ui_table_key(&tb, 'q')); /* the picker keeps the keys */
    assert_true(ui_table_key(&tb, ' ') && tb.hidden == 4u);
    assert_true(ui_table_key(&tb, KEY_LEFT) && tb.cursor == 1);
    assert_true(ui_table_key(&tb, ' ') && tb.hidden == 6u);
    assert_true(ui_table_key(&tb, KEY_LEFT) && tb.cursor == 0);
    assert_true(ui_table_key(&tb, ' ') && tb.hidden == 6u); /* the last one stays */
    assert_true(ui_table_key(&tb, KEY_RIGHT) && ui_table_key(&tb, ' ') && tb.hidden == 4u);
    assert_true(ui_table_key(&tb, 27) && !tb.picking);
}

static void test_sort(void **state)
{
    (void)state;
    const row rows[] = {{3, "b"}, {1, "a"}, {2, "b"}, {1, "c"}, {5, "a"}};
    size_t order[5];
    ui_table tb;
    ui_table_init(&tb, cols, 3, 0, 0);
    ui_table_sort(&tb, order, 5, cmp, rows);
    const size_t up[] = {1, 3, 2, 0, 4}; /* equal keys keep their order: 1 before 3 */
    assert_memory_equal(order, up, sizeof up);
    tb.desc = 1;
    ui_table_sort(&tb, order, 5, cmp, rows);
    const size_t down[] = {4, 0, 2, 1, 3}; /* stable the other way too */
    assert_memory_equal(order, down, sizeof down);
    tb.sort = 1, tb.desc = 0;
    ui_table_sort(&tb, order, 5, cmp, rows);
    const size_t names[] = {1, 4, 0, 2, 3};
    assert_memory_equal(order, names, sizeof names);
    ui_table_sort(&tb, order, 0, cmp, rows); /* nothing to sort */
    ui_table_sort(&tb, order, 1, cmp, rows);
    assert_int_equal(order[0], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_keys),
            cmocka_unit_test(test_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
