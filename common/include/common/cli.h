/*
 * cli.h - what every command-line front-end of the program shares: the exit codes, the one-line
 * error ("bitnet: <message>" on stderr, kept for the run history), usage errors, JSON on
 * stdout and the parsers of numeric flags. The CLI commands, the monitor, the conversion and
 * the server print through these; the TUI draws its own errors.
 */
#ifndef BITNET_COMMON_CLI_H
#define BITNET_COMMON_CLI_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (documented in bitnet(1)). */
enum {
    BN_EXIT_OK = 0,
    BN_EXIT_FAIL = 1,  /* the command ran and failed */
    BN_EXIT_USAGE = 2, /* bad command line */
};

/* Formats a message into err (errsz bytes; none when err is NULL) and returns -1: the
 * "return cm_fail(err, errsz, "...: %s", why);" of functions that report through a buffer. */
int cm_fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints "bitnet: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message of the last cli_error ("" when none), for the run history. */
const char *cli_last_error(void);
/* Prints "bitnet <cmd>: <message>" and a pointer to --help; returns BN_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a JSON document to stdout (pretty) and frees it; returns 0 or -1. */
int cli_print_json(cJSON *doc);
/* Parses a positive integer list like "1,2,4" into out (max n); returns count or -1. */
int cli_parse_int_list(const char *s, int *out, int max);
/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
/* "YYYY-MM-DD" (UTC midnight) or "YYYY-MM-DDTHH:MM:SSZ" into ms since the epoch; 0 or -1. */
int cli_parse_utc(const char *s, int64_t *ms);
/* ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 24 bytes); "-" for 0. */
const char *cli_fmt_utc(int64_t ms, char *buf, size_t size);
/* Checks an output path before any work (bn_file_check_output, bitnet/file.h): its folder
 * exists; an existing file is replaced only with force (--force) and never when it is one of
 * inputs[0 .. n) (NULL entries skipped). 0, or prints "bitnet: <cmd>: <why>" and returns
 * BN_EXIT_FAIL. */
int cli_check_output(const char *cmd, const char *out, int force, const char *const *inputs, int n);

#endif
