/* child.c - scripted commands of this program run as children; see child.h. */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet/core.h"

#define OUT_MAX (1 << 20)

extern char **environ;

void ui_child_init(ui_child *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->exit_status = -1;
}

/* Reads the child's output until EOF (at most OUT_MAX bytes). */
static char *read_all(int fd)
{
    char *out = malloc(OUT_MAX + 1);
    size_t len = 0;
    if (!out) return NULL;
    for (ssize_t r; len < OUT_MAX && (r = read(fd, out + len, OUT_MAX - len)) != 0;) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        len += (size_t)r;
    }
    out[len] = '\0';
    return out;
}

static void *run(void *arg)
{
    ui_child *c = arg;
    char err[256] = "", *out = NULL;
    cJSON *doc = NULL;
    int status = -1, pfd[2] = {-1, -1};
    pid_t pid = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipe(pfd) != 0) {
        snprintf(err, sizeof err, "cannot run bitnet %s: %s", c->argv[1], strerror(errno));
        goto done;
    }
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    const int rc = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
    close(pfd[1]);
    if (rc != 0) {
        snprintf(err, sizeof err, "cannot run bitnet %s: %s", c->argv[1], strerror(rc));
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    c->pid = pid;
    pthread_mutex_unlock(&c->mu);
    out = read_all(pfd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (c->json) {
        doc = out ? cJSON_Parse(out) : NULL;
        if (!doc)
            snprintf(err, sizeof err, "bitnet %s printed no JSON (exit status %d)", c->argv[1],
                     status);
        free(out);
        out = NULL;
    }
done:
    posix_spawn_file_actions_destroy(&fa);
    if (pfd[0] >= 0) close(pfd[0]);
    pthread_mutex_lock(&c->mu);
    c->doc = doc, c->out = out, c->done = 1, c->pid = 0, c->exit_status = status;
    c->done_at = bn_time_now();
    snprintf(c->err, sizeof c->err, "%s", err);
    pthread_mutex_unlock(&c->mu);
    if (c->wake) c->wake(c->ud);
    return NULL;
}

static void stop(ui_child *c)
{
    if (!c->started) return;
    pthread_mutex_lock(&c->mu);
    if (c->pid > 0) kill(c->pid, SIGTERM);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    c->started = 0;
}

static void free_argv(ui_child *c)
{
    for (int i = 0; i < UI_CHILD_MAX_ARGS + 2; i++) {
        free(c->argv[i]);
        c->argv[i] = NULL;
    }
}

int ui_child_start(ui_child *c, const char *const *args, int json, void (*wake)(void *), void *ud)
{
    stop(c);
    free_argv(c);
    cJSON_Delete(c->doc);
    free(c->out);
    c->doc = NULL, c->out = NULL, c->done = 0, c->err[0] = '\0', c->exit_status = -1;
    c->json = json;
    c->wake = wake, c->ud = ud;
    char exe[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int ok = n > 0;
    if (ok) {
        exe[n] = '\0';
        c->argv[0] = strdup(exe);
        ok = c->argv[0] != NULL;
    }
    for (int i = 0; ok && args[i] && i < UI_CHILD_MAX_ARGS; i++)
        ok = (c->argv[i + 1] = strdup(args[i])) != NULL;
    if (ok) {
        sigset_t all, old; /* the terminal's signals stay with the UI thread */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        ok = pthread_create(&c->th, NULL, run, c) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!ok) {
        c->done = 1;
        snprintf(c->err, sizeof c->err, "cannot run bitnet %s", args[0] ? args[0] : "");
        return -1;
    }
    c->started = 1;
    return 0;
}

ui_child_state ui_child_state_get(ui_child *c)
{
    pthread_mutex_lock(&c->mu);
    const ui_child_state s = c->done      ? UI_CHILD_DONE
                             : c->started ? UI_CHILD_RUNNING
                                          : UI_CHILD_IDLE;
    pthread_mutex_unlock(&c->mu);
    return s;
}

cJSON *ui_child_take(ui_child *c)
{
    pthread_mutex_lock(&c->mu);
    cJSON *d = c->doc;
    c->doc = NULL;
    pthread_mutex_unlock(&c->mu);
    return d;
}

void ui_child_error(ui_child *c, char *buf, size_t size)
{
    pthread_mutex_lock(&c->mu);
    snprintf(buf, size, "%s", c->err);
    pthread_mutex_unlock(&c->mu);
}

int ui_child_result(ui_child *c, char *buf, size_t size)
{
    pthread_mutex_lock(&c->mu);
    const char *o = c->out ? c->out : "";
    const size_t n = strcspn(o, "\n");
    snprintf(buf, size, "%.*s", (int)n, o);
    const int st = c->done ? c->exit_status : -1;
    pthread_mutex_unlock(&c->mu);
    return st;
}

double ui_child_done_at(ui_child *c)
{
    pthread_mutex_lock(&c->mu);
    const double t = c->done_at;
    pthread_mutex_unlock(&c->mu);
    return t;
}

void ui_child_release(ui_child *c)
{
    stop(c);
    free_argv(c);
    cJSON_Delete(c->doc);
    free(c->out);
    c->doc = NULL, c->out = NULL;
    pthread_mutex_destroy(&c->mu);
}
