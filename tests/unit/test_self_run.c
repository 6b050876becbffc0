/* test_self_run.c - common/self_run.c: running this program as a child. The program that
 * self_run starts is /proc/self/exe, which here is this test: main() first looks at argv[1]
 * and, for "child-...", behaves as the child asked for and exits before any test runs.
 *
 * common/self_run.c comes from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/self_run.h"
#include "test_util.h"

/* ---- the children ----------------------------------------------------------------------- */

/* n bytes of lines of c on f. */
static void fill(FILE *f, size_t n, char c)
{
    for (size_t i = 0; i < n; i++) fputc(i % 64 == 63 ? '\n' : c, f);
}

static int child_main(int argc, char **argv)
{
    alarm(60); /* a child that some bug leaves blocked ends (and its test fails) */
    const char *what = argv[1];
    if (!strcmp(what, "child-echo") && argc == 4) { /* OUT ERR */
        fputs(argv[2], stdout);
        fputs(argv[3], stderr);
        return 0;
    }
    if (!strcmp(what, "child-fail") && argc == 5) { /* CODE BYTES LAST: BYTES on both pipes */
        const size_t n = (size_t)atol(argv[3]);
        for (size_t done = 0; done < n; done += 4096) { /* interleaved: neither may block */
            fill(stdout, 4096, 'o');
            fill(stderr, 4096, 'e');
        }
        fflush(stdout);
        fprintf(stderr, "\n%s\n", argv[4]);
        return atoi(argv[2]);
    }
    if (!strcmp(what, "child-out") && argc == 3) {
        fill(stdout, (size_t)atol(argv[2]), 'o');
        return 0;
    }
    if (!strcmp(what, "child-sleep")) {
        for (;;) pause();
    }
    if (!strcmp(what, "child-kill") && argc == 3) {
        raise(atoi(argv[2]));
        return 0;
    }
    if (!strcmp(what, "child-int-parent")) {
        kill(getppid(), SIGINT);
        return 0;
    }
    if (!strcmp(what, "child-detached") && argc == 4) { /* MARK PARENT-SID */
        char in[64] = "";
        ssize_t n = readlink("/proc/self/fd/0", in, sizeof in - 1);
        in[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "%s on stderr\n", argv[2]);
        fflush(stderr);
        printf("%s leader=%d same_session=%d stdin=%s done\n", argv[2], getsid(0) == getpid(),
               (long)getsid(0) == atol(argv[3]), in);
        return 0;
    }
    fprintf(stderr, "test_self_run: unknown child %s\n", what);
    return 99;
}

/* ---- the tests -------------------------------------------------------------------------- */

static void test_exe_path(void **state)
{
    (void)state;
    char buf[PATH_MAX], tiny[4];
    assert_int_equal(sr_exe_path(buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "test_self_run"));
    assert_int_equal(access(buf, X_OK), 0);
    assert_int_equal(sr_exe_path(tiny, sizeof tiny), -1); /* does not fit */
}

static void test_stdout_and_stderr(void **state)
{
    (void)state;
    const char *args[] = {"child-echo", "to out, with 'quotes'\n", "to err\n", NULL};
    const char *quiet[] = {"child-echo", "to out, with 'quotes'\n", "", NULL};
    sr_result r;
    char err[256];
    assert_int_equal(sr_run(quiet, SR_CAPTURE, 1024, &r, err, sizeof err), 0);
    assert_string_equal(r.out, "to out, with 'quotes'\n"); /* args arrive as given */
    assert_null(r.err);
    assert_int_equal(r.exit_code, 0);
    sr_result_release(&r);

    assert_int_equal(sr_run(args, SR_CAPTURE | SR_ERR, 1024, &r, err, sizeof err), 0);
    assert_string_equal(r.out, "to out, with 'quotes'\n");
    assert_string_equal(r.err, "to err\n"); /* separately */
    assert_int_equal(r.err_len, 7);
    sr_result_release(&r);

    assert_int_equal(sr_run(args, SR_CAPTURE | SR_MERGE, 1024, &r, err, sizeof err), 0);
    assert_non_null(strstr(r.out, "to out"));
    assert_non_null(strstr(r.out, "to err")); /* together */
    assert_null(r.err);
    sr_result_release(&r);
}

static void test_huge_stderr_tail(void **state)
{
    (void)state;
    /* 1 MiB on each pipe, interleaved: a reader of one pipe at a time would block for good */
    const char *args[] = {"child-fail", "3", "1048576", "error: the last line", NULL};
    sr_result r;
    char err[256];
    assert_int_equal(sr_run(args, SR_CAPTURE | SR_ERR, 2u << 20, &r, err, sizeof err), 0);
    assert_int_equal(r.signal, 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.len, 1048576);
    assert_false(r.truncated);
    assert_null(strchr(r.out, 'e')); /* no stderr in stdout */
    assert_int_equal(r.err_len, SR_ERR_MAX);
    assert_int_equal(strlen(r.err), SR_ERR_MAX);
    const char *tail = "\nerror: the last line\n";
    assert_string_equal(r.err + r.err_len - strlen(tail), tail); /* the tail is kept */
    assert_null(strstr(r.err, "oooo"));                          /* no stdout in stderr */
    sr_result_release(&r);
}

static void test_exit_code_and_signal(void **state)
{
    (void)state;
    const char *fail[] = {"child-fail", "7", "0", "bad", NULL};
    sr_result r;
    char err[256];
    assert_int_equal(sr_run(fail, SR_ERR, 0, &r, err, sizeof err), 0);
    assert_int_equal(r.exit_code, 7);
    assert_int_equal(r.signal, 0);
    assert_null(r.out);
    assert_string_equal(r.err, "\nbad\n");
    sr_result_release(&r);

    const char *killed[] = {"child-kill", "15", NULL};
    assert_int_equal(sr_run(killed, SR_CAPTURE, 16, &r, err, sizeof err), 0);
    assert_int_equal(r.signal, SIGTERM);
    assert_int_equal(r.exit_code, 128 + SIGTERM);
    sr_result_release(&r);
}

static void test_output_cap(void **state)
{
    (void)state;
    const char *args[] = {"child-out", "300000", NULL};
    sr_result r;
    char err[256];
    assert_int_equal(sr_run(args, SR_CAPTURE, 1000, &r, err, sizeof err), 0);
    assert_int_equal(r.exit_code, 0); /* the rest was read: the child was not stopped */
    assert_int_equal(r.len, 1000);
    assert_int_equal(strlen(r.out), 1000);
    assert_true(r.truncated);
    sr_result_release(&r);

    assert_int_equal(sr_run(args, SR_CAPTURE, 300000, &r, err, sizeof err), 0);
    assert_int_equal(r.len, 300000);
    assert_false(r.truncated);
    sr_result_release(&r);
}

typedef struct finisher {
    sr_proc *p;
    sr_result r;
    int rc;
    char err[256];
} finisher;

static void *finish_on_thread(void *arg)
{
    finisher *f = arg;
    f->rc = sr_finish(f->p, 1024, &f->r, f->err, sizeof f->err);
    return NULL;
}

static void test_kill_from_another_thread(void **state)
{
    (void)state;
    const char *args[] = {"child-sleep", NULL};
    sr_proc p;
    char err[256];
    sr_proc_init(&p);
    assert_int_equal(sr_kill(&p, SIGTERM), -1); /* nothing started */
    assert_int_equal(sr_start(args, SR_CAPTURE | SR_ERR, &p, err, sizeof err), 0);
    assert_true(p.pid > 0);
    finisher f = {.p = &p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, finish_on_thread, &f), 0);
    assert_int_equal(sr_kill(&p, SIGTERM), 0); /* it sleeps until killed */
    pthread_join(th, NULL);
    assert_int_equal(f.rc, 0);
    assert_int_equal(f.r.signal, SIGTERM);
    assert_int_equal(f.r.exit_code, 128 + SIGTERM);
    assert_int_equal(sr_kill(&p, SIGTERM), -1); /* reaped: its pid is never used again */
    sr_result_release(&f.r);
    sr_proc_release(&p);
}

static void test_start_errors(void **state)
{
    (void)state;
    const char *args[] = {"child-echo", "a", "b", NULL}, *none[] = {NULL};
    sr_proc p;
    sr_result r;
    char err[256];
    sr_proc_init(&p);
    assert_int_equal(sr_start(args, SR_CAPTURE | SR_MERGE | SR_ERR, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "SR_MERGE"));
    assert_int_equal(sr_start(none, SR_CAPTURE, &p, err, sizeof err), -1);
    assert_int_equal(sr_finish(&p, 16, &r, err, sizeof err), -1); /* nothing to wait for */
    assert_null(r.out);
    /* a child started and never finished is killed and reaped by the release */
    const char *sleep_args[] = {"child-sleep", NULL};
    assert_int_equal(sr_start(sleep_args, SR_CAPTURE, &p, err, sizeof err), 0);
    const pid_t pid = p.pid;
    assert_int_equal(sr_start(sleep_args, SR_CAPTURE, &p, err, sizeof err), -1); /* busy */
    sr_proc_release(&p);
    assert_int_equal(kill(pid, 0), -1); /* gone, not a zombie */
}

static volatile sig_atomic_t g_ints;

static void on_int(int sig)
{
    (void)sig;
    g_ints++;
}

/* sr_run ignores SIGINT while its child runs (as system(3)) and puts the handler back;
 * sr_start/sr_finish leave this process's signal actions alone (they run on threads). */
static void test_signal_actions(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_int}, old, now;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    const char *args[] = {"child-int-parent", NULL};
    sr_result r;
    char err[256];
    g_ints = 0;
    assert_int_equal(sr_run(args, SR_CAPTURE, 16, &r, err, sizeof err), 0);
    sr_result_release(&r);
    assert_int_equal(g_ints, 0);
    sigaction(SIGINT, NULL, &now);
    assert_ptr_equal(now.sa_handler, on_int);

    sr_proc p;
    sr_proc_init(&p);
    assert_int_equal(sr_start(args, SR_CAPTURE, &p, err, sizeof err), 0);
    assert_int_equal(sr_finish(&p, 16, &r, err, sizeof err), 0);
    sr_proc_release(&p);
    sr_result_release(&r);
    assert_int_equal(g_ints, 1); /* our handler saw the child's SIGINT */
    sigaction(SIGINT, &old, NULL);
}

/* Waits (generously) until path holds needle; its text (free), or NULL. */
static char *wait_for(const char *path, const char *needle)
{
    for (int i = 0; i < 1200; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            static char buf[4096];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            if (strstr(buf, needle)) return strdup(buf);
        }
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    return NULL;
}

static void test_detach(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_self_run.XXXXXX", log[256], sid[32], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(log, sizeof log, "%s/worker.log", dir);
    snprintf(sid, sizeof sid, "%ld", (long)getsid(0));
    const char *args[] = {"child-detached", "MARK", sid, NULL};
    assert_int_equal(sr_detach(args, log, err, sizeof err), 0);
    char *text = wait_for(log, " done\n");
    assert_non_null(text);
    assert_non_null(strstr(text, "MARK on stderr\n")); /* stderr to the log too */
    /* a session of its own, not its leader (cannot get a terminal back), stdin /dev/null */
    assert_non_null(strstr(text, "MARK leader=0 same_session=0 stdin=/dev/null done\n"));
    free(text);

    /* a log it cannot open is an error here, not a silent failure in the daemon */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/worker.log", dir);
    assert_int_equal(sr_detach(args, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(remove_tree(dir), 0);
}

static void test_command_line(void **state)
{
    (void)state;
    const char *args[] = {"generate", "-p", "once upon a time,", "it's", NULL};
    char buf[128], tiny[10];
    assert_int_equal(sr_command_line(args, buf, sizeof buf), 0);
    assert_string_equal(buf, "bitnet generate -p 'once upon a time,' 'it'\\''s'");
    assert_int_equal(sr_command_line(args, tiny, sizeof tiny), -1);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strncmp(argv[1], "child-", 6)) return child_main(argc, argv);
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exe_path),
            cmocka_unit_test(test_stdout_and_stderr),
            cmocka_unit_test(test_huge_stderr_tail),
            cmocka_unit_test(test_exit_code_and_signal),
            cmocka_unit_test(test_output_cap),
            cmocka_unit_test(test_kill_from_another_thread),
            cmocka_unit_test(test_start_errors),
            cmocka_unit_test(test_signal_actions),
            cmocka_unit_test(test_detach),
            cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
