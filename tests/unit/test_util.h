/*
 * test_util.h - small helpers the unit tests share. Include after <cmocka.h>.
 */
#ifndef BITNET_TEST_UTIL_H
#define BITNET_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file at path (relative to the repository root, where the tests run), with a
 * NUL after its *n bytes; the test fails when it cannot be read. free() it. */
static inline void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(len >= 0);
    char *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    p[len] = '\0';
    *n = (size_t)len;
    return p;
}

/* Removes the directory dir and all below it (a test's temporary directory): 0, or -1. */
static inline int remove_tree(const char *dir)
{
    char cmd[4200];
    if (snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir) >= (int)sizeof cmd) return -1;
    return system(cmd) == 0 ? 0 : -1;
}

/* Defines setup() and teardown() for cmocka_run_group_tests: a context of one thread in the
 * file's `static bn_ctx *ctx` (bitnet/core.h included), freed after the group. */
#define TEST_CTX1_FIXTURE(ctx)                                                                     \
    static int setup(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        bn_ctx_params p_ = {.n_threads = 1};                                                       \
        return bn_ctx_new(&(ctx), &p_) == BN_OK ? 0 : -1;                                          \
    }                                                                                              \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        (void)state;                                                                               \
        bn_ctx_free(ctx);                                                                          \
        return 0;                                                                                  \
    }

#endif
