/* cli.c - the exit codes' helpers, errors and JSON output of the command line; see cli.h. */
#include "common/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int cli_parse_utc(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
    const size_t len = s ? strlen(s) : 0;
    const int day = len == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10;
    const int full = !day && len == 20 &&
                     sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &se, &n) == 6 &&
                     n == 20;
    if (!day && !full) return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    const time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) return -1; /* 2026-02-30 moved to March */
    *ms = (int64_t)t * 1000;
    return 0;
}

const char *cli_fmt_utc(int64_t ms, char *buf, size_t size)
{
    struct tm tm;
    const time_t t = (time_t)(ms / 1000);
    if (!ms || !gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "-");
    return buf;
}
