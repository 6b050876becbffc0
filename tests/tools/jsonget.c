/* jsonget - reads one JSON document on stdin; exits 1 if it does not parse.
 * With PATH arguments (a.b.0.c: object members and array indexes) prints each value
 * found (strings raw, others as JSON) on its own line, and exits 3 if one is missing.
 * Used by the CLI tests to parse every --json output back. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *walk(const cJSON *j, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && j;
         t = strtok_r(NULL, ".", &save)) {
        if (cJSON_IsArray(j)) {
            char *end;
            long i = strtol(t, &end, 10);
            j = *end ? NULL : cJSON_GetArrayItem(j, (int)i);
        } else {
            j = cJSON_GetObjectItemCaseSensitive(j, t);
        }
    }
    return j;
}

int main(int argc, char **argv)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += r;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    if (!buf) return 2;
    buf[n] = '\0';
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(buf, &end, 1);
    if (!doc) {
        fprintf(stderr, "jsonget: not one valid JSON document (near byte %ld)\n",
                end ? (long)(end - buf) : -1L);
        return 1;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const cJSON *v = walk(doc, argv[i]);
        if (!v) {
            fprintf(stderr, "jsonget: no '%s'\n", argv[i]);
            rc = 3;
            continue;
        }
        if (cJSON_IsString(v)) {
            puts(v->valuestring);
        } else {
            char *s = cJSON_PrintUnformatted(v);
            puts(s ? s : "");
            free(s);
        }
    }
    cJSON_Delete(doc);
    free(buf);
    return rc;
}
