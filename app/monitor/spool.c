/* spool.c - the alert transitions of the monitor's store (bitnet/db_spool.h) as JSON; see
 * spool.h. */
#include "spool.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static void add_str(cJSON *o, const char *k, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, k, s);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *transition_json(const bn_spool_transition_rec *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "id", (double)t->id);
    add_str(o, "rule", t->rule);
    add_str(o, "from", t->from);
    add_str(o, "to", t->to);
    char when[40] = "";
    const time_t secs = (time_t)(t->at_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm)) {
        char base[32];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when, sizeof when, "%s.%03dZ", base, (int)(t->at_ms % 1000));
    }
    cJSON_AddStringToObject(o, "at", when);
    cJSON_AddNumberToObject(o, "at_ms", (double)t->at_ms);
    if (isnan(t->value))
        cJSON_AddNullToObject(o, "value");
    else
        cJSON_AddNumberToObject(o, "value", t->value);
    add_str(o, "series", t->series);
    add_str(o, "metric", t->metric);
    add_str(o, "severity", t->severity);
    add_str(o, "host", t->host);
    return o;
}

int spool_transitions_json(bn_spool *sp, const char *rule, int64_t limit, cJSON **out)
{
    *out = NULL;
    bn_spool_transition_rec *t;
    size_t n;
    if (bn_spool_transitions(sp, rule, limit, &t, &n) != BN_OK) return -1;
    cJSON *a = cJSON_CreateArray();
    int rc = a ? 0 : -1;
    for (size_t i = 0; !rc && i < n; i++) {
        cJSON *o = transition_json(&t[i]);
        if (!o || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            rc = -1;
        }
    }
    bn_spool_transitions_free(t, n);
    if (rc) {
        cJSON_Delete(a);
        return -1;
    }
    *out = a;
    return 0;
}
