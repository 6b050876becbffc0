/* test_file.c - bitnet/file.h: inputs that never block, output checks, temporaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitnet/file.h"

static char g_dir[64];

static const char *in_dir(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_open_read(void **state)
{
    (void)state;
    char why[512];
    const char *reg = in_dir("reg"), *fifo = in_dir("fifo");
    put(reg, "hello");
    int fd = bn_file_open_read(reg, why, sizeof why);
    assert_true(fd >= 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 5); /* blocking mode is back: reads normally */
    close(fd);
    FILE *f = bn_file_fopen_read(reg, why, sizeof why);
    assert_non_null(f);
    fclose(f);

    /* A FIFO with no writer: refused at once (a plain open would wait forever). */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(bn_file_open_read(fifo, why, sizeof why), -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(strstr(why, "not a regular file (a FIFO)"));
    assert_null(bn_file_fopen_read(fifo, why, sizeof why));
    assert_int_equal(bn_file_check_regular(fifo, why, sizeof why), BN_ERR_IO);
    assert_non_null(strstr(why, "a FIFO"));

    assert_int_equal(bn_file_open_read("/dev/null", why, sizeof why), -1);
    assert_non_null(strstr(why, "a character device"));
    assert_int_equal(bn_file_open_read(g_dir, why, sizeof why), -1);
    assert_int_equal(errno, EISDIR);
    assert_int_equal(bn_file_open_read(in_dir("missing"), why, sizeof why), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(why, "cannot open"));
    assert_null(strchr(why, '\n'));
    assert_int_equal(bn_file_check_regular(reg, NULL, 0), BN_OK);
    unlink(fifo);
}

static void test_same_and_output(void **state)
{
    (void)state;
    char why[512];
    char a[128], b[128], ln[128], hard[128];
    snprintf(a, sizeof a, "%s", in_dir("a"));
    snprintf(b, sizeof b, "%s", in_dir("b"));
    snprintf(ln, sizeof ln, "%s", in_dir("ln"));
    snprintf(hard, sizeof hard, "%s", in_dir("hard"));
    put(a, "a");
    put(b, "b");
    assert_int_equal(symlink("a", ln), 0);
    assert_int_equal(link(a, hard), 0);
    assert_int_equal(bn_file_same(a, a), 1);
    assert_int_equal(bn_file_same(a, b), 0);
    assert_int_equal(bn_file_same(ln, a), 1);
    assert_int_equal(bn_file_same(hard, a), 1);
    assert_int_equal(bn_file_same(a, in_dir("missing")), 0);

    const char *in[] = {NULL, a};
    /* The input itself, through a symlink or a hard link: never, even with force. */
    const char *outs[] = {a, ln, hard};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bn_file_check_output(outs[i], 1, in, 2, why, sizeof why), BN_ERR_INVALID);
        assert_non_null(strstr(why, "is an input of this run"));
    }
    assert_int_equal(bn_file_check_output(b, 0, in, 2, why, sizeof why), BN_ERR_INVALID);
    assert_non_null(strstr(why, "exists (--force replaces it)"));
    assert_int_equal(bn_file_check_output(b, 1, in, 2, why, sizeof why), BN_OK);
    assert_int_equal(bn_file_check_output(in_dir("new"), 0, in, 2, why, sizeof why), BN_OK);
    assert_int_equal(bn_file_check_output(g_dir, 1, NULL, 0, why, sizeof why), BN_ERR_INVALID);
    assert_non_null(strstr(why, "is a directory"));
    assert_int_equal(bn_file_check_output(in_dir("nodir/x.gguf"), 1, NULL, 0, why, sizeof why),
                     BN_ERR_NOT_FOUND);
    assert_non_null(strstr(why, "does not exist"));
    assert_int_equal(bn_file_check_output(in_dir("a/x.gguf"), 1, NULL, 0, why, sizeof why),
                     BN_ERR_NOT_FOUND);
    assert_non_null(strstr(why, "is not a folder"));
    unlink(ln);
    unlink(hard);
    unlink(a);
    unlink(b);
}

static void test_tmp_match(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ok;
        long pid;
    } cases[] = {
            {"m.gguf.tmp-123-abcdef", 1, 123},
            {"m.gguf.tmp-123-abcdef.tmp-9-zzzzzz", 1, 123}, /* a writer's temporary of ours */
            {"m.gguf.tmp-123-abc", 0, 0},                   /* too short */
            {"m.gguf.tmp--abcdef", 0, 0},
            {"m.gguf.tmp-0-abcdef", 0, 0},
            {"m.gguf.tmp-12a-abcdef", 0, 0},
            {"m.gguf", 0, 0},
            {"n.gguf.tmp-123-abcdef", 0, 0},
            {"m.gguf.tmp.123-abcdef", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long pid = 0;
        int ok = bn_file_tmp_match(cases[i].name, "m.gguf", &pid);
        if (ok != cases[i].ok || (ok && pid != cases[i].pid))
            fail_msg("%s: want %d/%ld, got %d/%ld", cases[i].name, cases[i].ok, cases[i].pid, ok,
                     pid);
    }
}

static int count_entries(const char *prefix)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static void test_tmp_create_and_sweep(void **state)
{
    (void)state;
    const char *final = in_dir("out.gguf");
    char tmp[256];
    int fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    assert_true(fd >= 0);
    char want[64];
    snprintf(want, sizeof want, "out.gguf.tmp-%ld-", (long)getpid());
    assert_non_null(strstr(tmp, want));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mode & 077, 0); /* 0600 */
    close(fd);
    char small[8];
    assert_int_equal(bn_file_tmp_create(final, small, sizeof small), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    /* A pid that is surely dead: a child that has exited and been reaped. */
    pid_t child = fork();
    if (child == 0) _exit(0);
    assert_true(child > 0);
    waitpid(child, NULL, 0);
    char dead[256], alive[256];
    snprintf(dead, sizeof dead, "%s/out.gguf.tmp-%ld-qwerty", g_dir, (long)child);
    snprintf(alive, sizeof alive, "%s/out.gguf.tmp-%ld-qwerty", g_dir, (long)getppid());
    put(dead, "x");
    put(alive, "x");
    put(in_dir("other.gguf.tmp-1-abcdef"), "x"); /* another file's: not ours to remove */
    assert_int_equal(bn_file_tmp_sweep(final), 1);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(alive, F_OK), 0);
    assert_int_equal(access(tmp, F_OK), 0); /* this process's own */
    assert_int_equal(count_entries("out.gguf.tmp-"), 2);

    /* A killed process whose parent has not reaped it yet (a zombie) is dead too. */
    child = fork();
    if (child == 0) _exit(0);
    assert_true(child > 0);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0); /* still a zombie */
    snprintf(dead, sizeof dead, "%s/out.gguf.tmp-%ld-zombie", g_dir, (long)child);
    put(dead, "x");
    assert_int_equal(bn_file_tmp_sweep(final), 1);
    assert_int_equal(access(dead, F_OK), -1);
    waitpid(child, NULL, 0);
    unlink(alive);
    unlink(tmp);
    unlink(in_dir("other.gguf.tmp-1-abcdef"));
}

/* The whole content of path into buf (at most size bytes): the byte count, -1 when absent. */
static long slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t n = fread(buf, 1, size, f);
    fclose(f);
    return (long)n;
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static struct rlimit g_fsize;
static void (*g_xfsz)(int);

/* Writes past limit bytes fail with EFBIG (a full disk) until fsize_restore. */
static void fsize_limit(rlim_t limit)
{
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &g_fsize), 0);
    g_xfsz = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = g_fsize;
    lim.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void fsize_restore(void)
{
    const int e = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &g_fsize), 0);
    signal(SIGXFSZ, g_xfsz);
    errno = e;
}

static bn_status write_limited(const char *final, const void *p, size_t n, rlim_t limit, char *why,
                               size_t whysz)
{
    fsize_limit(limit);
    const bn_status rc = bn_file_write_atomic(final, p, n, 0644, why, whysz);
    fsize_restore();
    return rc;
}

/* tmp_create + write + commit replaces the final file; so does the stream form. */
static void test_commit_replaces(void **state)
{
    (void)state;
    const char *final = in_dir("c.bin");
    char tmp[256], why[512], got[64];
    put(final, "old content");
    int fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "new", 3), 3);
    assert_int_equal(bn_file_commit(fd, tmp, final, why, sizeof why), BN_OK);
    assert_int_equal(slurp(final, got, sizeof got), 3);
    assert_memory_equal(got, "new", 3);
    assert_int_equal(access(tmp, F_OK), -1);

    fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("from a stream", f); /* still buffered: the commit flushes it */
    assert_int_equal(bn_file_commit_stream(f, tmp, final, why, sizeof why), BN_OK);
    assert_int_equal(slurp(final, got, sizeof got), 13);
    assert_memory_equal(got, "from a stream", 13);
    assert_int_equal(count_entries("c.bin.tmp-"), 0);
    unlink(final);
}

/* A commit that cannot rename (the final path is a non-empty directory: root cannot bypass
 * that) or cannot sync (a bad descriptor) removes the temporary and leaves the final alone. */
static void test_commit_fails(void **state)
{
    (void)state;
    const char *dir = in_dir("d.out"), *inner = in_dir("d.out/keep"), *final = in_dir("f.out");
    char tmp[256], why[512], got[64];
    assert_int_equal(mkdir(dir, 0700), 0);
    put(inner, "kept");
    int fd = bn_file_tmp_create(dir, tmp, sizeof tmp);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "new", 3), 3);
    assert_int_equal(bn_file_commit(fd, tmp, dir, why, sizeof why), BN_ERR_IO);
    assert_int_equal(errno, EISDIR);
    assert_non_null(strstr(why, "cannot rename"));
    assert_non_null(strstr(why, strerror(EISDIR)));
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(slurp(inner, got, sizeof got), 4);
    assert_int_equal(count_entries("d.out.tmp-"), 0);

    put(final, "old");
    fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(bn_file_commit(-1, tmp, final, why, sizeof why), BN_ERR_IO);
    assert_int_equal(errno, EBADF);
    assert_non_null(strstr(why, ": fsync: "));
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(slurp(final, got, sizeof got), 3);
    assert_memory_equal(got, "old", 3);

    /* a stream whose buffered bytes cannot be written (EFBIG: over the file size limit) */
    fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fsize_limit(0);
    fputs("more than nothing", f);
    const bn_status rc = bn_file_commit_stream(f, tmp, final, why, sizeof why);
    fsize_restore();
    assert_int_equal(rc, BN_ERR_IO);
    assert_non_null(strstr(why, ": write: "));
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(slurp(final, got, sizeof got), 3);
    unlink(inner);
    rmdir(dir);
    unlink(final);
}

/* write_atomic writes exactly the bytes (NULs, nothing at all); a new file gets the mode asked
 * for (not reduced by the umask), a replaced one keeps its own. */
static void test_write_atomic(void **state)
{
    (void)state;
    const char *final = in_dir("w.bin");
    char why[512], got[300], data[256];
    for (int i = 0; i < 256; i++) data[i] = (char)i;
    const mode_t mask = umask(077);
    assert_int_equal(bn_file_write_atomic(final, data, sizeof data, 0644, why, sizeof why), BN_OK);
    umask(mask);
    assert_int_equal(slurp(final, got, sizeof got), 256);
    assert_memory_equal(got, data, 256);
    assert_int_equal(mode_of(final), 0644);

    assert_int_equal(chmod(final, 0640), 0);
    assert_int_equal(bn_file_write_atomic(final, "", 0, 0600, why, sizeof why), BN_OK);
    assert_int_equal(slurp(final, got, sizeof got), 0);
    assert_int_equal(mode_of(final), 0640); /* kept, not the 0600 asked for a new file */
    assert_int_equal(chmod(final, 04755), 0);
    assert_int_equal(bn_file_write_atomic(final, "x", 1, 0600, why, sizeof why), BN_OK);
    assert_int_equal(mode_of(final), 0755); /* never a set-id bit */
    assert_int_equal(count_entries("w.bin.tmp-"), 0);

    /* a dead writer's temporary goes first */
    pid_t child = fork();
    if (child == 0) _exit(0);
    assert_true(child > 0);
    waitpid(child, NULL, 0);
    char dead[256];
    snprintf(dead, sizeof dead, "%s.tmp-%ld-abcdef", final, (long)child);
    put(dead, "x");
    assert_int_equal(bn_file_write_atomic(final, "y", 1, 0600, why, sizeof why), BN_OK);
    assert_int_equal(access(dead, F_OK), -1);
    unlink(final);
}

/* A full disk (EFBIG past the file size limit), a folder that is a file, a directory in the
 * way: an error naming the step, the old content kept, no temporary left. */
static void test_write_atomic_fails(void **state)
{
    (void)state;
    const char *final = in_dir("full.bin");
    char why[512], got[64], big[8192];
    memset(big, 'z', sizeof big);
    put(final, "saved before");
    assert_int_equal(write_limited(final, big, sizeof big, 4096, why, sizeof why), BN_ERR_IO);
    assert_int_equal(errno, EFBIG);
    assert_non_null(strstr(why, "cannot write"));
    assert_non_null(strstr(why, strerror(EFBIG)));
    assert_int_equal(slurp(final, got, sizeof got), 12);
    assert_memory_equal(got, "saved before", 12);
    assert_int_equal(count_entries("full.bin.tmp-"), 0);
    /* the same write under no limit goes through: the limit was the cause */
    assert_int_equal(write_limited(final, big, sizeof big, RLIM_INFINITY, why, sizeof why), BN_OK);
    assert_int_equal(slurp(final, got, sizeof got), 64);

    const char *afile = in_dir("afile"), *under = in_dir("afile/x");
    put(afile, "a file, not a folder");
    assert_int_equal(bn_file_write_atomic(under, "x", 1, 0644, why, sizeof why), BN_ERR_IO);
    assert_int_equal(errno, ENOTDIR);
    assert_non_null(strstr(why, "cannot create a temporary file for"));

    const char *dir = in_dir("wdir"), *inner = in_dir("wdir/keep");
    assert_int_equal(mkdir(dir, 0700), 0);
    put(inner, "kept");
    assert_int_equal(bn_file_write_atomic(dir, "x", 1, 0644, why, sizeof why), BN_ERR_IO);
    assert_non_null(strstr(why, "cannot rename"));
    assert_int_equal(slurp(inner, got, sizeof got), 4);
    assert_int_equal(count_entries("wdir.tmp-"), 0);
    unlink(inner);
    rmdir(dir);
    unlink(afile);
    unlink(final);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/bn_test_file_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_open_read),       cmocka_unit_test(test_same_and_output),
            cmocka_unit_test(test_tmp_match),       cmocka_unit_test(test_tmp_create_and_sweep),
            cmocka_unit_test(test_commit_replaces), cmocka_unit_test(test_commit_fails),
            cmocka_unit_test(test_write_atomic),    cmocka_unit_test(test_write_atomic_fails),
    };
    return cmocka_run_group_tests_name("file", tests, group_setup, group_teardown);
}
