/*
 * spool.h - the monitor's store: the spool, alert transitions and run summaries are
 * bitnet/db_spool.h (db/spool.c, every statement about those tables); here, what the program
 * makes of them: the transitions as the JSON that `bitnet alerts history` prints.
 */
#ifndef BITNET_APP_SPOOL_H
#define BITNET_APP_SPOOL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "bitnet/db_spool.h"

/* The transitions of rule (NULL: all), newest first, at most limit (0: all), as a JSON
 * array of {"id", "rule", "from", "to", "at" (RFC 3339), "at_ms", "value", "series",
 * "metric", "severity", "host"}. 0, or -1 (the message on sp, or out of memory). */
int spool_transitions_json(bn_spool *sp, const char *rule, int64_t limit, cJSON **out);

#endif
