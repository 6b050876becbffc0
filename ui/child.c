/* child.c - scripted commands of this program run as children; see child.h. */
#include "child.h"

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

#define ERR_MAX (64 << 10)

/* Reads the child's stdout (at most OUT_MAX bytes kept) and stderr (the last ERR_MAX bytes
 * kept) until both reach EOF; the caller frees both. */
static void read_both(int ofd, int efd, char **out, char **errout)
{
    char *o = malloc(OUT_MAX + 1), *e = malloc(ERR_MAX + 1);
    size_t on = 0, en = 0;
    struct pollfd p[2] = {{.fd = ofd, .events = POLLIN}, {.fd = efd, .events = POLLIN}};
    while ((p[0].fd >= 0 || p[1].fd >= 0) && o && e) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        char chunk[4096];
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents) continue;
            const ssize_t r = read(p[i].fd, chunk, sizeof chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                p[i].fd = -1; /* EOF or an error: stop reading it */
                continue;
            }
            if (i == 0) {
                const size_t k = on + (size_t)r <= OUT_MAX ? (size_t)r : OUT_MAX - on;
                memcpy(o + on, chunk, k), on += k;
            } else {
                if (en + (size_t)r > ERR_MAX) { /* keep the tail: the error comes last */
                    const size_t drop = en + (size_t)r - ERR_MAX < en ? en + (size_t)r - ERR_MAX : en;
                    memmove(e, e + drop, en - drop), en -= drop;
                }
                const size_t k = (size_t)r <= ERR_MAX - en ? (size_t)r : ERR_MAX - en;
                memcpy(e + en, chunk + (size_t)r - k, k), en += k;
            }
        }
    }
    if (o) o[on] = '\0';
    if (e) e[en] = '\0';
    *out = o, *errout = e;
}

/* The last non-empty line of text into buf (unchanged when there is none). */
static void last_line(const char *text, char *buf, size_t size)
{
    size_t end = text ? strlen(text) : 0;
    while (end && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' ')) end--;
    if (!end) return;
    size_t start = end;
    while (start && text[start - 1] != '\n') start--;
    snprintf(buf, size, "%.*s", (int)(end - start), text + start);
}

static void *run(void *arg)
{
    ui_child *c = arg;
    char err[256] = "", *out = NULL, *errout = NULL;
    cJSON *doc = NULL;
    int status = -1, pfd[2] = {-1, -1}, efd[2] = {-1, -1};
    pid_t pid = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipe(pfd) != 0 || pipe(efd) != 0) {
        snprintf(err, sizeof err, "cannot run bitnet %s: %s", c->argv[1], strerror(errno));
        goto done;
    }
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, efd[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    posix_spawn_file_actions_addclose(&fa, efd[0]);
    posix_spawn_file_actions_addclose(&fa, efd[1]);
    const int rc = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
    close(pfd[1]), pfd[1] = -1;
    close(efd[1]), efd[1] = -1;
    if (rc != 0) {
        snprintf(err, sizeof err, "cannot run bitnet %s: %s", c->argv[1], strerror(rc));
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    c->pid = pid;
    pthread_mutex_unlock(&c->mu);
    read_both(pfd[0], efd[0], &out, &errout);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    /* a failed child's one-line error (its last line on stderr) is what the UI shows */
    if (status != 0) {
        if (WIFSIGNALED(ws))
            snprintf(err, sizeof err, "bitnet %s was killed by signal %d", c->argv[1],
                     WTERMSIG(ws));
        else
            snprintf(err, sizeof err, "bitnet %s failed (exit status %d)", c->argv[1], status);
        last_line(errout, err, sizeof err);
    }
    if (c->json) {
        doc = out ? cJSON_Parse(out) : NULL;
        if (!doc && status == 0)
            snprintf(err, sizeof err, "bitnet %s printed no JSON", c->argv[1]);
        else if (doc)
            err[0] = '\0'; /* a document, even with a non-zero exit (doctor's failed checks) */
        free(out);
        out = NULL;
    }
done:
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (pfd[i] >= 0) close(pfd[i]);
        if (efd[i] >= 0) close(efd[i]);
    }
    free(errout);
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
