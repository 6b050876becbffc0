/* cli.c - the exit codes' helpers, errors and JSON output of the command line; see cli.h. */
#include "common/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/file.h"

static char last_error[512]; /* for the history: why a run failed */

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bitnet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *cli_last_error(void)
{
    return last_error;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bitnet %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'bitnet %s --help'.\n", cmd);
    va_end(ap);
    return BN_EXIT_USAGE;
}

int cli_print_json(cJSON *doc)
{
    char *s = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) {
        cli_error("out of memory while writing JSON");
        return -1;
    }
    puts(s);
    cJSON_free(s);
    return fflush(stdout) == 0 ? 0 : -1;
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_check_output(const char *cmd, const char *out, int force, const char *const *inputs, int n)
{
    char why[1024];
    if (bn_file_check_output(out, force, inputs, n, why, sizeof why) == BN_OK) return 0;
    cli_error("%s: %s", cmd, why);
    return BN_EXIT_FAIL;
}

int cli_parse_int_list(const char *s, int *out, int max)
{
    int n = 0;
    char buf[256];
    if (!s || strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (n >= max || cli_parse_long(tok, 1, 4096, &v)) return -1;
        out[n++] = (int)v;
    }
    return n > 0 ? n : -1;
}

int cm_fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -1;
}
