/*
 * self_run.h - runs this same program (/proc/self/exe) as a child with other arguments:
 * the one way `bitnet setup` and `bitnet quickstart` run generate, bench and doctor (so that
 * what they show is exactly what those commands print), the TUI runs its scripted commands,
 * and the conversion queue starts its detached worker.
 *
 * Usage, waiting for it:
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
 * Usage, from a worker thread while another one may stop it:
 *
 *     sr_proc p;
 *     sr_proc_init(&p);
 *     if (sr_start(args, SR_CAPTURE | SR_ERR, &p, err, sizeof err) == 0) {
 *         // worker:      sr_finish(&p, 1 << 20, &r, err, sizeof err);
 *         // any thread:  sr_kill(&p, SIGTERM);
 *     }
 *     sr_proc_release(&p);                                // once no thread can sr_kill
 *
 * The child reads /dev/null as its standard input and starts with the default actions for
 * SIGINT, SIGQUIT, SIGPIPE and SIGTERM and no blocked signals. Its stdout (and with SR_MERGE
 * its stderr, interleaved as written) goes into r.out with SR_CAPTURE, else to ours; with
 * SR_ERR its stderr goes, separately, into r.err (the last SR_ERR_MAX bytes: a command's
 * one-line error comes last). Both pipes are read together, so a child that fills one while
 * we wait on the other never blocks.
 *
 * Signals: sr_run ignores SIGINT and SIGQUIT in this process while the child runs (as
 * system(3) does), so Ctrl-C stops the child and the caller goes on. sr_start, sr_finish
 * and sr_kill never change this process's signal actions: they are safe on any thread.
 *
 * Ownership: r.out and r.err are malloc'ed, freed by sr_result_release (which also accepts
 * a zeroed result). An sr_proc is the caller's; sr_proc_release frees what sr_proc_init made.
 */
#ifndef BITNET_APP_SELF_RUN_H
#define BITNET_APP_SELF_RUN_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    SR_CAPTURE = 1u << 0, /* the child's stdout goes into r.out */
    SR_MERGE = 1u << 1,   /* with SR_CAPTURE: its stderr too */
    SR_ECHO = 1u << 2,    /* with SR_CAPTURE: also copied to our stdout as it comes */
    SR_ERR = 1u << 3,     /* its stderr goes into r.err (not with SR_MERGE) */
};

#define SR_ERR_MAX (64u << 10) /* the tail of its stderr kept in r.err */

typedef struct sr_result {
    char *out;     /* NUL-terminated; NULL without SR_CAPTURE */
    size_t len;    /* bytes in out */
    int truncated; /* the child wrote more than max bytes: the rest was read and dropped */
    char *err;     /* with SR_ERR: the tail of its stderr, NUL-terminated; else NULL */
    size_t err_len;
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

/* A child between sr_start and sr_finish. The fields are self_run's; read none of them. */
typedef struct sr_proc {
    pthread_mutex_t mu; /* guards pid: sr_kill may run on another thread */
    pid_t pid;          /* the child, until sr_finish has reaped it; else 0 */
    int out_fd, err_fd; /* our ends of its stdout and stderr pipes, or -1 */
    unsigned flags;
    double t0;
} sr_proc;

void sr_proc_init(sr_proc *p);
/* Frees what sr_proc_init made. A child still running is killed (SIGKILL) and reaped. */
void sr_proc_release(sr_proc *p);

/* Starts this program with args (NULL-terminated, without the program name) and returns at
 * once: 0, or -1 with a message in err when it could not be started. p must be initialized
 * and hold no child. */
int sr_start(const char *const *args, unsigned flags, sr_proc *p, char *err, size_t errsz);

/* Reads the output of p's child (at most max bytes of its stdout kept) until it closes
 * both pipes, and waits for it to end: 0 (whatever its exit status, in r), or -1 with a
 * message in err when there was no child or its output could not be read or kept (r is
 * then released; the child is reaped either way). */
int sr_finish(sr_proc *p, size_t max, sr_result *r, char *err, size_t errsz);

/* Sends sig to p's child, from any thread: 0, or -1 when none is running (never started,
 * or already reaped by sr_finish: a pid that may now be another process's is never used). */
int sr_kill(sr_proc *p, int sig);

/* Starts this program with args as a daemon and does not wait for it: its own session (no
 * controlling terminal), not our child (it is reparented when we exit), stdin /dev/null,
 * stdout and stderr appended to log_path (created 0600). 0 when it was started (exec
 * succeeded), or -1 with a message in err. */
int sr_detach(const char *const *args, const char *log_path, char *err, size_t errsz);

/* The command as a user would type it: "bitnet" and args, each quoted for a POSIX shell
 * where it needs to be ("-p 'once upon a time,'"). 0, or -1 when it does not fit (buf
 * then holds as much as fits). */
int sr_command_line(const char *const *args, char *buf, size_t size);

#endif
