/*
 * self_run.h - runs this same program (/proc/self/exe) as a child with other arguments
 * and waits for it: how `bitnet setup` and `bitnet quickstart` run generate, bench and
 * doctor, so that what they show is exactly what those commands print.
 *
 * Usage:
 *
 *     const char *args[] = {"doctor", "--quick", NULL};   // no program name
 *     sr_result r;
 *     char err[256];
 *     if (sr_run(args, SR_CAPTURE | SR_MERGE, 1 << 20, &r, err, sizeof err) != 0) {
 *         cli_error("%s", err);                           // it could not be started
 *         return BN_EXIT_FAIL;
 *     }
 *     use(r.out, r.len, r.exit_code);
 *     sr_result_release(&r);
 *
 * The child reads /dev/null as its standard input. Its stdout (and with SR_MERGE its
 * stderr, interleaved as written) goes into r.out with SR_CAPTURE, else to ours. While
 * it runs, this process ignores SIGINT and SIGQUIT (as system(3) does), so Ctrl-C stops
 * the child and the caller goes on; the child starts with the default actions.
 *
 * Ownership: r.out is malloc'ed, freed by sr_result_release (which also accepts a zeroed
 * result).
 */
#ifndef BITNET_APP_SELF_RUN_H
#define BITNET_APP_SELF_RUN_H

#include <stddef.h>

enum {
    SR_CAPTURE = 1u << 0, /* the child's stdout goes into r.out */
    SR_MERGE = 1u << 1,   /* with SR_CAPTURE: its stderr too */
    SR_ECHO = 1u << 2,    /* with SR_CAPTURE: also copied to our stdout as it comes */
};

typedef struct sr_result {
    char *out;     /* NUL-terminated; NULL without SR_CAPTURE */
    size_t len;    /* bytes in out */
    int truncated; /* the child wrote more than max bytes: the rest was read and dropped */
    int exit_code; /* its exit status, or 128 + the signal that ended it */
    int signal;    /* that signal, or 0 */
    double seconds;
} sr_result;

/* The path of this program into buf. 0, or -1 when it cannot be read or does not fit. */
int sr_exe_path(char *buf, size_t size);

/* Runs this program with args (NULL-terminated, without the program name), keeping at
 * most max bytes of its output. 0 when it ran (whatever its exit status, in r), or -1
 * with a message in err when it could not be started or read (r is then released). */
int sr_run(const char *const *args, unsigned flags, size_t max, sr_result *r, char *err,
           size_t errsz);

void sr_result_release(sr_result *r);

/* The command as a user would type it: "bitnet" and args, each quoted for a POSIX shell
 * where it needs to be ("-p 'once upon a time,'"). 0, or -1 when it does not fit (buf
 * then holds as much as fits). */
int sr_command_line(const char *const *args, char *buf, size_t size);

#endif
