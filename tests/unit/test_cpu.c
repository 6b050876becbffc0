/* test_cpu.c - run-time CPU detection: sane values, consistency, one-time init. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/cpu.h"

/* nonzero when word appears in the space-separated list s */
static int has_word(const char *s, const char *word)
{
    const size_t n = strlen(word);
    for (const char *p = s; (p = strstr(p, word)) != NULL; p += n) {
        const int start_ok = p == s || p[-1] == ' ';
        const int end_ok = p[n] == '\0' || p[n] == ' ';
        if (start_ok && end_ok) return 1;
    }
    return 0;
}

static void test_cpu_sane(void **state)
{
    (void)state;
    const bn_cpu_info *c = bn_cpu_info_get();
    assert_non_null(c);
    assert_true(c->arch[0] != '\0');
    assert_true(memchr(c->arch, '\0', sizeof c->arch) != NULL);
    assert_true(memchr(c->vendor, '\0', sizeof c->vendor) != NULL);
    assert_true(memchr(c->model, '\0', sizeof c->model) != NULL);
    assert_true(c->n_cores >= 1);
    assert_true(c->n_physical >= 1 && c->n_physical <= c->n_cores);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0) assert_int_equal(c->n_cores, online);
    /* cache sizes, when known, look like cache sizes */
    if (c->l1d_bytes) assert_true(c->l1d_bytes >= 1024 && c->l1d_bytes % 1024 == 0);
    if (c->l2_bytes) assert_true(c->l2_bytes >= 16 * 1024);
    if (c->l3_bytes) assert_true(c->l3_bytes >= 64 * 1024);
    if (c->l1d_bytes && c->l2_bytes) assert_true(c->l1d_bytes < c->l2_bytes);
#if defined(__x86_64__)
    assert_string_equal(c->arch, "x86_64");
    assert_true(c->sse3); /* every x86_64 CPU made since 2005 */
    assert_true(c->vendor[0] != '\0');
    assert_int_equal(c->neon, 0);
#elif defined(__aarch64__)
    assert_string_equal(c->arch, "aarch64");
    assert_true(c->neon);
    assert_int_equal(c->avx, 0);
#endif
}

static void test_cpu_implications(void **state)
{
    (void)state;
    const bn_cpu_info *c = bn_cpu_info_get();
    if (c->avx2) assert_true(c->avx);
    if (c->fma) assert_true(c->avx);
    if (c->f16c) assert_true(c->avx);
    if (c->avxvnni) assert_true(c->avx2 || c->avx);
    if (c->avx) assert_true(c->ssse3 && c->sse3);
    if (c->avx512bw) assert_true(c->avx512f);
    if (c->avx512vl) assert_true(c->avx512f);
    if (c->avx512dq) assert_true(c->avx512f);
    if (c->avx512vnni) assert_true(c->avx512f);
    if (c->avx512f) assert_true(c->avx2);
    if (c->dotprod) assert_true(c->neon);
    /* flags are 0 or 1 */
    const int flags[] = {c->sse3,     c->ssse3,   c->avx,      c->avx2,     c->fma,
                         c->f16c,     c->avx512f, c->avx512bw, c->avx512vl, c->avx512vnni,
                         c->avx512dq, c->avxvnni, c->neon,     c->dotprod};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_true(flags[i] == 0 || flags[i] == 1);
}

static void test_features_str(void **state)
{
    (void)state;
    const bn_cpu_info *c = bn_cpu_info_get();
    char buf[256];
    assert_ptr_equal(bn_cpu_features_str(c, buf, sizeof buf), buf);
    const struct {
        const char *name;
        int on;
    } f[] = {
            {"sse3", c->sse3},         {"ssse3", c->ssse3},
            {"avx", c->avx},           {"avx2", c->avx2},
            {"fma", c->fma},           {"f16c", c->f16c},
            {"avx512f", c->avx512f},   {"avx512bw", c->avx512bw},
            {"avx512vl", c->avx512vl}, {"avx512vnni", c->avx512vnni},
            {"avx512dq", c->avx512dq}, {"avxvnni", c->avxvnni},
            {"neon", c->neon},         {"dotprod", c->dotprod},
    };
    size_t n_on = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].on != has_word(buf, f[i].name)) fail_msg("'%s' vs flag %s", buf, f[i].name);
        n_on += (size_t)f[i].on;
    }
    /* words are separated by single spaces, none at the ends */
    size_t spaces = 0;
    for (const char *p = buf; *p; p++) spaces += *p == ' ';
    assert_int_equal(spaces, n_on ? n_on - 1 : 0);
    if (buf[0]) assert_true(buf[0] != ' ' && buf[strlen(buf) - 1] != ' ');

    /* a synthetic struct: exact text */
    bn_cpu_info fake;
    memset(&fake, 0, sizeof fake);
    fake.avx = fake.avx2 = fake.fma = fake.avx512vnni = 1;
    bn_cpu_features_str(&fake, buf, sizeof buf);
    assert_string_equal(buf, "avx avx2 fma avx512vnni");
    memset(&fake, 0, sizeof fake);
    bn_cpu_features_str(&fake, buf, sizeof buf);
    assert_string_equal(buf, "");

    /* small buffers: always terminated, cut at a word boundary */
    fake.avx = fake.avx2 = fake.fma = 1;
    char small[9];
    memset(small, 'x', sizeof small);
    bn_cpu_features_str(&fake, small, sizeof small);
    assert_string_equal(small, "avx avx2");
    bn_cpu_features_str(&fake, small, 8);
    assert_string_equal(small, "avx");
    bn_cpu_features_str(&fake, small, 1);
    assert_string_equal(small, "");
    small[0] = 'q';
    bn_cpu_features_str(&fake, small, 0); /* writes nothing */
    assert_int_equal(small[0], 'q');
}

static void *get_info(void *arg)
{
    (void)arg;
    return (void *)bn_cpu_info_get();
}

static void test_cpu_once(void **state)
{
    (void)state;
    enum { T = 4 };
    pthread_t th[T];
    void *res[T];
    for (int i = 0; i < T; i++) assert_int_equal(pthread_create(&th[i], NULL, get_info, NULL), 0);
    for (int i = 0; i < T; i++) assert_int_equal(pthread_join(th[i], &res[i]), 0);
    const bn_cpu_info *c = bn_cpu_info_get();
    for (int i = 0; i < T; i++) assert_ptr_equal(res[i], c);
    assert_ptr_equal(bn_cpu_info_get(), c);
    bn_cpu_info copy = *c;
    assert_memory_equal(&copy, bn_cpu_info_get(), sizeof copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cpu_once), /* first, so threads race on the first call */
            cmocka_unit_test(test_cpu_sane),
            cmocka_unit_test(test_cpu_implications),
            cmocka_unit_test(test_features_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
