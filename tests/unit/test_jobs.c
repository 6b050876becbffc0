/* test_jobs.c - the conversion queue's time left (jobs_eta): from the writing's own
 * throughput, unknown before a floor of writing time, so that slow phases before it (reading
 * the source, the reference logits) never inflate it (issue 18: "49 s at 12%, done 3 s
 * later"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>

#include "../../app/convert/jobs.h"

static void test_eta(void **state)
{
    (void)state;
    static const struct {
        double writing_s, written, left, want;
    } cases[] = {
            {0.5, 12, 88, -1},                            /* 12% after half a second: unknown yet */
            {JOBS_ETA_FLOOR_S - 0.01, 50, 50, -1},        /* just under the floor */
            {JOBS_ETA_FLOOR_S, 50, 50, JOBS_ETA_FLOOR_S}, /* half done in 2 s: 2 s left */
            {3, 75, 25, 1},                               /* 25 bytes/s */
            {10, 0, 100, -1},                             /* nothing written yet */
            {0, 0, 0, 0},                                 /* nothing left */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double got = jobs_eta(cases[i].writing_s, cases[i].written, cases[i].left);
        if (fabs(got - cases[i].want) > 1e-9)
            fail_msg("case %zu: %g, wanted %g", i, got, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_eta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
