/* child.c - scripted commands of this program run as children; see child.h. */
#include "child.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crt.h"
#include "bitnet/core.h"

#define OUT_MAX (1 << 20)

void ui_child_init(ui_child *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    sr_proc_init(&c->proc);
    c->exit_status = -1;
}

/* The last non-empty line of text into buf (unchanged when there is none), without the
 * "bitnet: " every one-line error starts with (cli_error's): a screen shows it as its own. A
 * usage error's closing "Try 'bitnet CMD --help'." gives way to the line naming the problem. */
static void last_line(const char *text, char *buf, size_t size)
{
    size_t end = text ? strlen(text) : 0, start;
    for (;;) {
        while (end && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
            end--;
        if (!end) return;
        start = end;
        while (start && text[start - 1] != '\n') start--;
        if (start == 0 || strncmp(text + start, "Try 'bitnet ", 12)) break;
        end = start; /* the line before it */
    }
    if (end - start > 8 && !strncmp(text + start, "bitnet: ", 8)) start += 8;
    snprintf(buf, size, "%.*s", (int)(end - start), text + start);
}

/* What a finished child leaves: its document or text, or the error (else ""). */
static void outcome(ui_child *c, sr_result *r, cJSON **doc, char **out, char *err, size_t errsz)
{
    if (r->exit_code != 0) { /* a failed child's one-line error (its last stderr line) */
        if (r->signal)
            snprintf(err, errsz, "bitnet %s was killed by signal %d", c->name, r->signal);
        else
            snprintf(err, errsz, "bitnet %s failed (exit status %d)", c->name, r->exit_code);
        last_line(r->err, err, errsz);
    }
    if (!c->json) {
        *out = r->out, r->out = NULL;
        return;
    }
    *doc = cJSON_Parse(r->out);
    if (!*doc && r->exit_code == 0)
        snprintf(err, errsz, "bitnet %s printed no JSON", c->name);
    else if (*doc)
        err[0] = '\0'; /* a document, even with a non-zero exit (doctor's failed checks) */
}

static void *run(void *arg)
{
    ui_child *c = arg;
    char err[256] = "", *out = NULL;
    cJSON *doc = NULL;
    sr_result r;
    int status = -1;
    if (sr_finish(&c->proc, OUT_MAX, &r, err, sizeof err) == 0) {
        status = r.signal ? -1 : r.exit_code;
        outcome(c, &r, &doc, &out, err, sizeof err);
        sr_result_release(&r);
    }
    pthread_mutex_lock(&c->mu);
    c->doc = doc, c->out = out, c->done = 1, c->exit_status = status;
    c->done_at = bn_time_now();
    snprintf(c->err, sizeof c->err, "%s", err);
    pthread_mutex_unlock(&c->mu);
    if (c->wake) c->wake(c->ud);
    return NULL;
}

static void stop(ui_child *c)
{
    if (!c->started) return;
    sr_kill(&c->proc, SIGTERM);
    pthread_join(c->th, NULL);
    c->started = 0;
}

int ui_child_start(ui_child *c, const char *const *args, int json, void (*wake)(void *), void *ud)
{
    stop(c);
    cJSON_Delete(c->doc);
    free(c->out);
    c->doc = NULL, c->out = NULL, c->done = 0, c->err[0] = '\0', c->exit_status = -1;
    c->json = json;
    c->wake = wake, c->ud = ud;
    snprintf(c->name, sizeof c->name, "%s", args[0] ? args[0] : "");
    if (sr_start(args, SR_CAPTURE | SR_ERR, &c->proc, c->err, sizeof c->err) != 0) {
        c->done = 1;
        return -1;
    }
    const int rc = crt_thread_start(&c->th, run, c);
    if (rc != 0) { /* no thread to read and reap it: kill and reap it here */
        sr_proc_release(&c->proc);
        sr_proc_init(&c->proc);
        c->done = 1;
        snprintf(c->err, sizeof c->err, "cannot run bitnet %s: %s", c->name, strerror(rc));
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

int ui_child_summary(ui_child *c, const char *what, char *buf, size_t size)
{
    char line[256], why[256];
    if (ui_child_result(c, line, sizeof line) == 0) {
        snprintf(buf, size, "%s: %s", what, line[0] ? line : "done");
        return 0;
    }
    ui_child_error(c, why, sizeof why);
    /* "convert --queue: X" or "alerts: X" (the "bitnet: " dropped): the command said once */
    const char *w = why;
    const char *const names[] = {what, c->name};
    for (int i = 0; i < 2; i++) {
        const size_t n = strlen(names[i]);
        if (n && !strncmp(w, names[i], n) && !strncmp(w + n, ": ", 2)) {
            w += n + 2;
            break;
        }
    }
    snprintf(buf, size, "%s failed: %s", what, w[0] ? w : "no error message");
    return -1;
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
    cJSON_Delete(c->doc);
    free(c->out);
    c->doc = NULL, c->out = NULL;
    sr_proc_release(&c->proc);
    pthread_mutex_destroy(&c->mu);
}
