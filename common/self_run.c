/* self_run.c - runs this program as a child (see self_run.h). */
#include "common/self_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 64

int sr_exe_path(char *buf, size_t size)
{
    if (size < 2) return -1;
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) return -1;
    buf[n] = '\0';
    return 0;
}

void sr_result_release(sr_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* argv for this program and args into argv (MAX_ARGS + 2 slots), exe holding the path. */
static int make_argv(const char *const *args, char *exe, size_t exesz, char **argv, char *err,
                     size_t errsz)
{
    if (!args[0]) {
        snprintf(err, errsz, "cannot run bitnet: no command");
        return -1;
    }
    if (sr_exe_path(exe, exesz)) {
        snprintf(err, errsz, "cannot run bitnet %s: cannot find the path of this program", args[0]);
        return -1;
    }
    int n = 0;
    argv[n++] = exe;
    for (; args[n - 1]; n++) {
        if (n > MAX_ARGS) {
            snprintf(err, errsz, "cannot run bitnet %s: more than %d arguments", args[0], MAX_ARGS);
            return -1;
        }
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    return 0;
}

void sr_proc_init(sr_proc *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->out_fd = p->err_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Waits until p's child has ended, forgets its pid (so sr_kill cannot reach a process that
 * reuses it), then reaps it. Its wait status into *status. */
static void reap(sr_proc *p, int *status)
{
    siginfo_t si;
    while (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
    pthread_mutex_lock(&p->mu);
    const pid_t pid = p->pid;
    p->pid = 0;
    pthread_mutex_unlock(&p->mu);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
}

void sr_proc_release(sr_proc *p)
{
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    if (p->pid > 0) {
        int status;
        kill(p->pid, SIGKILL);
        reap(p, &status);
    }
    pthread_mutex_destroy(&p->mu);
}

int sr_kill(sr_proc *p, int sig)
{
    pthread_mutex_lock(&p->mu);
    const int rc = p->pid > 0 ? kill(p->pid, sig) : -1;
    pthread_mutex_unlock(&p->mu);
    return rc ? -1 : 0;
}

/* The child's side: stdin /dev/null, the pipes on stdout/stderr, default signal actions. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int out_w, int err_w,
                       unsigned flags)
{
    sigset_t def, none;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGQUIT);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGTERM);
    int rc = posix_spawnattr_setsigdefault(at, &def);
    if (!rc) rc = posix_spawnattr_setsigmask(at, &none);
    if (!rc) rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (!rc) rc = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!rc && out_w >= 0) rc = posix_spawn_file_actions_adddup2(fa, out_w, STDOUT_FILENO);
    if (!rc && out_w >= 0 && (flags & SR_MERGE))
        rc = posix_spawn_file_actions_adddup2(fa, out_w, STDERR_FILENO);
    if (!rc && err_w >= 0) rc = posix_spawn_file_actions_adddup2(fa, err_w, STDERR_FILENO);
    return rc;
}

/* posix_spawn with the pipes' write ends (-1: the child shares ours); 0 or an errno. */
static int spawn(sr_proc *p, char *exe, char **argv, int out_w, int err_w)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    pid_t pid = 0;
    int rc = spawn_setup(&fa, &at, out_w, err_w, p->flags);
    if (!rc) rc = posix_spawn(&pid, exe, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (!rc) {
        pthread_mutex_lock(&p->mu);
        p->pid = pid;
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

int sr_start(const char *const *args, unsigned flags, sr_proc *p, char *err, size_t errsz)
{
    char exe[PATH_MAX], *argv[MAX_ARGS + 2];
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, rc = 0;
    if (p->pid > 0 || ((flags & SR_MERGE) && (flags & SR_ERR))) {
        snprintf(err, errsz, "cannot run bitnet %s: %s", args[0] ? args[0] : "",
                 p->pid > 0 ? "a child is already running" : "SR_MERGE with SR_ERR");
        return -1;
    }
    if (make_argv(args, exe, sizeof exe, argv, err, errsz)) return -1;
    p->flags = flags;
    if (((flags & SR_CAPTURE) && pipe2(po, O_CLOEXEC)) ||
        ((flags & SR_ERR) && pipe2(pe, O_CLOEXEC)))
        rc = errno;
    /* output the child writes straight to ours comes after what we have buffered */
    if (!(flags & SR_CAPTURE)) fflush(stdout);
    if (!(flags & (SR_ERR | SR_MERGE))) fflush(stderr);
    p->t0 = now_s();
    if (!rc) rc = spawn(p, exe, argv, po[1], pe[1]);
    close_fd(&po[1]);
    close_fd(&pe[1]);
    if (rc) {
        close_fd(&po[0]);
        close_fd(&pe[0]);
        snprintf(err, errsz, "cannot run bitnet %s: %s", args[0], strerror(rc));
        return -1;
    }
    p->out_fd = po[0], p->err_fd = pe[0];
    return 0;
}

/* Where one pipe's bytes go: the first cap (truncated set past them), or the last cap. */
typedef struct sink {
    char *buf;
    size_t len, cap;
    int tail;
    int *truncated;
} sink;

static void sink_put(sink *k, const char *b, size_t n)
{
    if (k->tail && n > k->cap) b += n - k->cap, n = k->cap;
    if (k->tail && k->len + n > k->cap) {
        const size_t drop = k->len + n - k->cap;
        memmove(k->buf, k->buf + drop, k->len - drop);
        k->len -= drop;
    }
    if (!k->tail && n > k->cap - k->len) n = k->cap - k->len, *k->truncated = 1;
    memcpy(k->buf + k->len, b, n);
    k->len += n;
    k->buf[k->len] = '\0';
}

/* Reads both pipes together until each is at its end; 0, or an errno. */
static int drain(sr_proc *p, sink *ks)
{
    struct pollfd pf[2] = {{.fd = p->out_fd, .events = POLLIN},
                           {.fd = p->err_fd, .events = POLLIN}};
    int rc = 0;
    char chunk[4096];
    while (pf[0].fd >= 0 || pf[1].fd >= 0) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents) continue;
            const ssize_t n = read(pf[i].fd, chunk, sizeof chunk);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n <= 0) {
                if (n < 0 && !rc) rc = errno;
                pf[i].fd = -1; /* its end, or an error: stop reading it */
                continue;
            }
            if (i == 0 && (p->flags & SR_ECHO)) {
                fwrite(chunk, 1, (size_t)n, stdout);
                fflush(stdout);
            }
            sink_put(&ks[i], chunk, (size_t)n);
        }
    }
    return rc;
}

int sr_finish(sr_proc *p, size_t max, sr_result *r, char *err, size_t errsz)
{
    memset(r, 0, sizeof *r);
    if (p->pid <= 0) {
        snprintf(err, errsz, "no child to wait for");
        return -1;
    }
    char scratch[1];
    sink ks[2] = {{.buf = scratch, .truncated = &r->truncated},
                  {.buf = scratch, .tail = 1, .truncated = &r->truncated}};
    int nomem = 0;
    if (p->out_fd >= 0 && (r->out = malloc(max + 1))) ks[0].buf = r->out, ks[0].cap = max;
    if (p->err_fd >= 0 && (r->err = malloc(SR_ERR_MAX + 1)))
        ks[1].buf = r->err, ks[1].cap = SR_ERR_MAX;
    nomem = (p->out_fd >= 0 && !r->out) || (p->err_fd >= 0 && !r->err);
    ks[0].buf[0] = ks[1].buf[0] = '\0';
    const int rc = drain(p, ks); /* without memory it is still read (and dropped) */
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    r->len = ks[0].len, r->err_len = ks[1].len;
    int status = 0;
    reap(p, &status);
    r->seconds = now_s() - p->t0;
    if (rc || nomem) {
        snprintf(err, errsz, "cannot read the output of a child: %s",
                 nomem ? "out of memory" : strerror(rc));
        sr_result_release(r);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        r->signal = WTERMSIG(status);
        r->exit_code = 128 + r->signal;
    } else {
        r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    return 0;
}

int sr_run(const char *const *args, unsigned flags, size_t max, sr_result *r, char *err,
           size_t errsz)
{
    memset(r, 0, sizeof *r);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sr_proc p;
    sr_proc_init(&p);
    int rc = sr_start(args, flags, &p, err, errsz);
    if (!rc) rc = sr_finish(&p, max, r, err, errsz);
    sr_proc_release(&p);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return rc;
}

/* ---- a detached daemon ----------------------------------------------------------------- */

/* In the forked child (async-signal-safe calls only): errno to the parent through fd, then
 * out. */
static _Noreturn void child_fail(int fd, int e)
{
    ssize_t w = write(fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* The grandchild: stdin /dev/null, stdout/stderr to the log, default signals, then exec. */
static _Noreturn void exec_detached(char *exe, char **argv, const char *log_path, int fd)
{
    const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int lg = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (in < 0 || lg < 0) child_fail(fd, errno);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(lg, STDOUT_FILENO) < 0 || dup2(lg, STDERR_FILENO) < 0)
        child_fail(fd, errno);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    static const int sigs[] = {SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(exe, argv);
    child_fail(fd, errno);
}

int sr_detach(const char *const *args, const char *log_path, char *err, size_t errsz)
{
    char exe[PATH_MAX], *argv[MAX_ARGS + 2];
    int pfd[2], e = 0, status;
    if (make_argv(args, exe, sizeof exe, argv, err, errsz)) return -1;
    if (pipe2(pfd, O_CLOEXEC)) {
        snprintf(err, errsz, "cannot start bitnet %s: %s", args[0], strerror(errno));
        return -1;
    }
    const pid_t pid = fork();
    if (pid == 0) { /* a new session, then a second fork: not a session leader, not ours */
        close(pfd[0]);
        if (setsid() < 0) child_fail(pfd[1], errno);
        const pid_t gc = fork();
        if (gc < 0) child_fail(pfd[1], errno);
        if (gc == 0) exec_detached(exe, argv, log_path, pfd[1]);
        _exit(0);
    }
    if (pid < 0) e = errno;
    close(pfd[1]);
    /* the write end closes on exec (success) or after an errno is written (failure) */
    if (pid > 0) {
        int got = 0;
        ssize_t n;
        while ((n = read(pfd[0], &got, sizeof got)) < 0 && errno == EINTR) {}
        if (n == (ssize_t)sizeof got) e = got;
    }
    close(pfd[0]);
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (e) {
        snprintf(err, errsz, "cannot start bitnet %s (log %s): %s", args[0], log_path, strerror(e));
        return -1;
    }
    return 0;
}

/* Appends the bytes of s to buf at *at, keeping it NUL-terminated; -1 when full. */
static int put(char *buf, size_t size, size_t *at, const char *s)
{
    for (; *s; s++) {
        if (*at + 1 >= size) return -1;
        buf[(*at)++] = *s;
        buf[*at] = '\0';
    }
    return 0;
}

/* Appends s to buf at *at, quoted for a POSIX shell where it needs to be. */
static int append_word(char *buf, size_t size, size_t *at, const char *s)
{
    const char *plain = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-";
    if (*s && s[strspn(s, plain)] == '\0') return put(buf, size, at, s);
    if (put(buf, size, at, "'")) return -1;
    for (char one[2] = {0, 0}; *s; s++) {
        one[0] = *s;
        if (put(buf, size, at, *s == '\'' ? "'\\''" : one)) return -1;
    }
    return put(buf, size, at, "'");
}

int sr_command_line(const char *const *args, char *buf, size_t size)
{
    if (size == 0) return -1;
    size_t at = 0;
    buf[0] = '\0';
    if (put(buf, size, &at, "bitnet")) return -1;
    for (; *args; args++)
        if (put(buf, size, &at, " ") || append_word(buf, size, &at, *args)) return -1;
    return 0;
}
