/*
 * child.h - runs a scripted command of this same program (`bitnet doctor --json`, `bitnet
 * alerts list --json`, ...) as a child process on a thread of its own and parses the JSON
 * it prints, so that the UI shows exactly what the scripted mode reports and never waits.
 *
 * Usage (UI thread):
 *
 *     ui_child c;
 *     ui_child_init(&c);
 *     const char *args[] = {"doctor", "--json", "--quick", NULL};
 *     ui_child_start(&c, args, 1, wake, ud);   // 1: parse its output as JSON; wake(ud)
 *                                              // is called when it has finished
 *     ...
 *     if (ui_child_state(&c) == UI_CHILD_DONE) {
 *         cJSON *doc = ui_child_take(&c);      // the caller's now (NULL: see the error)
 *     }
 *     ui_child_release(&c);                    // stops a running child, joins the thread
 *
 * The child's stdin is /dev/null; its output is capped at 1 MiB. Its stderr is captured, never
 * written over the screen: when it fails, the last line there (the one-line error every
 * command ends with) is what ui_child_error says. It is started (common/self_run.h's
 * sr_start) on the calling thread, so stopping it never races its start, and read and
 * waited for on the thread.
 */
#ifndef BITNET_UI_CHILD_H
#define BITNET_UI_CHILD_H

#include <cjson/cJSON.h>
#include <pthread.h>

#include "common/self_run.h"

typedef enum ui_child_state {
    UI_CHILD_IDLE = 0, /* never started */
    UI_CHILD_RUNNING = 1,
    UI_CHILD_DONE = 2, /* finished: a document or an error */
} ui_child_state;

typedef struct ui_child {
    pthread_t th;
    pthread_mutex_t mu;
    int started; /* a thread to join */
    int done;
    sr_proc proc;    /* the running child (stop() kills it from the UI thread) */
    int exit_status; /* the child's, -1 when it did not exit normally */
    int json;        /* parse the output */
    char *out;       /* the output as printed (text mode) */
    cJSON *doc;
    char err[256];
    char name[32]; /* the command (args[0]), for messages */
    void (*wake)(void *);
    void *ud;
    double done_at; /* bn_time_now() when it finished */
} ui_child;

void ui_child_init(ui_child *c);
/* Starts `<this program> args...` (a running one is stopped first); json: its output is
 * a JSON document (else it is kept as text). 0, or -1 (the error is then what
 * ui_child_error says and the state is done). */
int ui_child_start(ui_child *c, const char *const *args, int json, void (*wake)(void *), void *ud);
/* Text mode: the first line of the output into buf (""), and the exit status (-1 when it
 * did not exit normally or has not finished). */
int ui_child_result(ui_child *c, char *buf, size_t size);
/* A finished text-mode child as one status line: "WHAT: its first line" ("WHAT: done"), or
 * "WHAT failed: its error" (WHAT said once). 0 when it succeeded, -1 when it failed. */
int ui_child_summary(ui_child *c, const char *what, char *buf, size_t size);
ui_child_state ui_child_state_get(ui_child *c);
/* The document (moved to the caller), or NULL when there is none. */
cJSON *ui_child_take(ui_child *c);
/* A copy of the error ("" when none) into buf. */
void ui_child_error(ui_child *c, char *buf, size_t size);
double ui_child_done_at(ui_child *c);
void ui_child_release(ui_child *c);

#endif
