/* self_run.c - runs this program as a child (see self_run.h). */
#include "common/self_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads fd to its end into r->out (at most max bytes kept), echoing when asked. */
static int drain(int fd, size_t max, int echo, sr_result *r)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 0;
        if (echo) {
            fwrite(chunk, 1, (size_t)n, stdout);
            fflush(stdout);
        }
        size_t keep = (size_t)n;
        if (keep > max - r->len) keep = max - r->len, r->truncated = 1;
        memcpy(r->out + r->len, chunk, keep);
        r->len += keep;
        r->out[r->len] = '\0';
    }
}

static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int pfd_w,
                       unsigned flags)
{
    sigset_t def, none;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGQUIT);
    sigaddset(&def, SIGPIPE);
    int rc = posix_spawnattr_setsigdefault(at, &def);
    if (!rc) rc = posix_spawnattr_setsigmask(at, &none);
    if (!rc) rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (!rc) rc = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!rc && pfd_w >= 0) rc = posix_spawn_file_actions_adddup2(fa, pfd_w, STDOUT_FILENO);
    if (!rc && pfd_w >= 0 && (flags & SR_MERGE))
        rc = posix_spawn_file_actions_adddup2(fa, pfd_w, STDERR_FILENO);
    return rc;
}

int sr_run(const char *const *args, unsigned flags, size_t max, sr_result *r, char *err,
           size_t errsz)
{
    char exe[PATH_MAX];
    char *argv[MAX_ARGS + 2];
    int pfd[2] = {-1, -1}, n = 0, rc;
    memset(r, 0, sizeof *r);
    if (sr_exe_path(exe, sizeof exe)) {
        snprintf(err, errsz, "cannot find this program (/proc/self/exe): %s", strerror(errno));
        return -1;
    }
    argv[n++] = exe;
    for (; args[n - 1]; n++) {
        if (n > MAX_ARGS) {
            snprintf(err, errsz, "too many arguments");
            return -1;
        }
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;
    const int capture = (flags & SR_CAPTURE) != 0;
    if (capture && (!(r->out = malloc(max + 1)) || pipe2(pfd, O_CLOEXEC) != 0)) {
        snprintf(err, errsz, "cannot run %s: %s", args[0], r->out ? strerror(errno) : "out of memory");
        sr_result_release(r);
        return -1;
    }
    if (capture) r->out[0] = '\0';
    fflush(stdout);
    fflush(stderr);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    const double t0 = now_s();
    pid_t pid = -1;
    rc = spawn_setup(&fa, &at, pfd[1], flags);
    if (!rc) rc = posix_spawn(&pid, exe, &fa, &at, argv, environ);
    if (pfd[1] >= 0) close(pfd[1]);
    int read_err = 0;
    if (!rc && capture) read_err = drain(pfd[0], max, (flags & SR_ECHO) != 0, r) ? errno : 0;
    if (pfd[0] >= 0) close(pfd[0]);
    int status = 0;
    if (!rc)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    r->seconds = now_s() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc || read_err) {
        snprintf(err, errsz, "cannot run %s %s: %s", exe, args[0], strerror(rc ? rc : read_err));
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
