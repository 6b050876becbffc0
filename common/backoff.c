/* backoff.c - exponential backoff with jitter (backoff.h). */
#include "common/backoff.h"

#include <math.h>
#include <stdlib.h>

double cm_backoff_s(int failures, double base_s, double max_s, unsigned *seed)
{
    double d = base_s * pow(2, failures < 1 ? 0 : failures > 30 ? 29 : failures - 1);
    if (d > max_s) d = max_s;
    const double u = (double)rand_r(seed) / RAND_MAX;
    return d * (0.5 + 0.5 * u); /* jitter: several senders do not retry in step */
}
