/*
 * json.h - reading members of a cJSON object without a type check at every call: a member of
 * the wrong type or a missing one reads as the default the caller names.
 *
 *     const char *state = cm_json_str(rule, "state", "");     // "" when absent or not a string
 *     double at = cm_json_num(rule, "active_at", NAN);        // NAN when absent or not a number
 *
 * The string returned belongs to the document (valid while it lives).
 */
#ifndef BITNET_COMMON_JSON_H
#define BITNET_COMMON_JSON_H

#include <cjson/cJSON.h>

const char *cm_json_str(const cJSON *o, const char *key, const char *dflt);
double cm_json_num(const cJSON *o, const char *key, double dflt);

#endif
