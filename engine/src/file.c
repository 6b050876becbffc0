/* file.c - safe inputs, output checks and temporary files (bitnet/file.h). */
#include "bitnet/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_TAG ".tmp-"

static void say(char *why, size_t whysz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whysz, const char *fmt, ...)
{
    if (!why || !whysz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a file";
}

/* 0 for a regular file; else -1 with errno and why. */
static int need_regular(const char *path, const struct stat *st, char *why, size_t whysz)
{
    if (S_ISREG(st->st_mode)) return 0;
    say(why, whysz, "%s: not a regular file (%s)", path, kind_of(st->st_mode));
    errno = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
    return -1;
}

int bn_file_open_read(const char *path, char *why, size_t whysz)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        say(why, whysz, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    struct stat st;
    int flags, e;
    if (fstat(fd, &st) != 0) goto sys;
    if (need_regular(path, &st, why, whysz) != 0) goto bad;
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) goto sys;
    return fd;
sys:
    e = errno;
    say(why, whysz, "%s: %s", path, strerror(e));
    errno = e;
bad:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

FILE *bn_file_fopen_read(const char *path, char *why, size_t whysz)
{
    int fd = bn_file_open_read(path, why, whysz);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        say(why, whysz, "cannot open %s: %s", path, strerror(e));
        close(fd);
        errno = e;
    }
    return f;
}

bn_status bn_file_check_regular(const char *path, char *why, size_t whysz)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        say(why, whysz, "cannot open %s: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    return need_regular(path, &st, why, whysz) == 0 ? BN_OK : BN_ERR_IO;
}

int bn_file_same(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The folder part of path ("." when none) into dir; -1 when it does not fit. */
static int dir_of(const char *path, char *dir, size_t dirsz)
{
    const char *slash = strrchr(path, '/');
    int n;
    if (!slash)
        n = snprintf(dir, dirsz, ".");
    else if (slash == path)
        n = snprintf(dir, dirsz, "/");
    else
        n = snprintf(dir, dirsz, "%.*s", (int)(slash - path), path);
    return n >= 0 && (size_t)n < dirsz ? 0 : -1;
}

bn_status bn_file_check_output(const char *out, int force, const char *const *inputs, int n,
                               char *why, size_t whysz)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!out || !*out) {
        say(why, whysz, "no output file given");
        return BN_ERR_INVALID;
    }
    if (dir_of(out, dir, sizeof dir) != 0) {
        say(why, whysz, "%s: the path is too long", out);
        return BN_ERR_INVALID;
    }
    if (stat(dir, &st) != 0) {
        say(why, whysz, "%s: the folder %s does not exist", out, dir);
        return BN_ERR_NOT_FOUND;
    }
    if (!S_ISDIR(st.st_mode)) {
        say(why, whysz, "%s: %s is not a folder", out, dir);
        return BN_ERR_NOT_FOUND;
    }
    if (lstat(out, &st) != 0) return BN_OK; /* a new file */
    for (int i = 0; i < n; i++)
        if (inputs[i] && bn_file_same(out, inputs[i])) {
            say(why, whysz, "%s is an input of this run (%s): choose another output", out,
                inputs[i]);
            return BN_ERR_INVALID;
        }
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        say(why, whysz, "%s is a directory", out);
        return BN_ERR_INVALID;
    }
    if (!force) {
        say(why, whysz, "%s exists (--force replaces it)", out);
        return BN_ERR_INVALID;
    }
    return BN_OK;
}

int bn_file_tmp_create(const char *final, char *tmp, size_t tmpsz)
{
    int k = snprintf(tmp, tmpsz, "%s" TMP_TAG "%ld-XXXXXX", final, (long)getpid());
    if (k < 0 || (size_t)k >= tmpsz) {
        if (tmpsz) tmp[0] = '\0';
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkostemp(tmp, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
}

int bn_file_tmp_match(const char *name, const char *base, long *pid)
{
    const size_t bl = strlen(base), tl = strlen(TMP_TAG);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, TMP_TAG, tl) != 0) return 0;
    const char *p = name + bl + tl, *q = p;
    long v = 0;
    while (*q >= '0' && *q <= '9' && q - p < 10) v = v * 10 + (*q++ - '0');
    if (q == p || *q != '-' || strlen(q + 1) < 6 || v <= 0) return 0;
    *pid = v;
    return 1;
}

/* 0 when pid names no process, or a zombie (a killed process its parent has not reaped yet,
 * which has closed its files for good); 1 otherwise, also when it is another user's. */
static int pid_alive(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return 1;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the state follows "(comm)" */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

int bn_file_tmp_sweep(const char *final)
{
    char dir[PATH_MAX];
    if (dir_of(final, dir, sizeof dir) != 0) return 0;
    const char *slash = strrchr(final, '/');
    const char *base = slash ? slash + 1 : final;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    long pid;
    for (struct dirent *e; (e = readdir(d));) {
        if (!bn_file_tmp_match(e->d_name, base, &pid) || pid == (long)getpid()) continue;
        if (pid_alive(pid)) continue;
        removed += unlinkat(dirfd(d), e->d_name, 0) == 0;
    }
    closedir(d);
    return removed;
}

int bn_file_tmp_mode(int fd, const char *final, unsigned mode)
{
    struct stat st;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode)) mode = st.st_mode & 0777;
    return fchmod(fd, (mode_t)(mode & 0777));
}

/* fsync of the folder holding path, so that the rename survives a crash. Not reported: the
 * new file is in place by then, and some file systems refuse fsync on a folder. */
static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    if (dir_of(path, dir, sizeof dir) != 0) return;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* The end of a failed commit: the temporary goes, errno stays e. */
static bn_status commit_fail(int e, const char *tmp)
{
    unlink(tmp);
    errno = e;
    return BN_ERR_IO;
}

/* The last step of both commits: rename over final, then the folder's fsync. */
static bn_status commit_rename(const char *tmp, const char *final, char *why, size_t whysz)
{
    if (rename(tmp, final) != 0) {
        const int e = errno;
        say(why, whysz, "cannot rename %s to %s: %s", tmp, final, strerror(e));
        return commit_fail(e, tmp);
    }
    sync_dir_of(final);
    return BN_OK;
}

bn_status bn_file_commit(int fd, const char *tmp, const char *final, char *why, size_t whysz)
{
    const char *step = "fsync";
    int e = 0;
    if (fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno, step = "close";
    if (e) {
        say(why, whysz, "cannot write %s: %s: %s", tmp, step, strerror(e));
        return commit_fail(e, tmp);
    }
    return commit_rename(tmp, final, why, whysz);
}

bn_status bn_file_commit_stream(FILE *fp, const char *tmp, const char *final, char *why,
                                size_t whysz)
{
    const char *step = "write";
    int e = 0;
    errno = 0;
    if (fflush(fp) != 0 || ferror(fp))
        e = errno ? errno : EIO;
    else if (fsync(fileno(fp)) != 0)
        e = errno, step = "fsync";
    if (fclose(fp) != 0 && !e) e = errno ? errno : EIO, step = "close";
    if (e) {
        say(why, whysz, "cannot write %s: %s: %s", tmp, step, strerror(e));
        return commit_fail(e, tmp);
    }
    return commit_rename(tmp, final, why, whysz);
}

/* Writes all of p to fd through short writes and EINTR: 0, or -1 with errno. */
static int write_full(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        const ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

bn_status bn_file_write_atomic(const char *final, const void *data, size_t len, unsigned mode,
                               char *why, size_t whysz)
{
    char tmp[PATH_MAX + 64];
    bn_file_tmp_sweep(final);
    const int fd = bn_file_tmp_create(final, tmp, sizeof tmp);
    if (fd < 0) {
        const int e = errno;
        say(why, whysz, "cannot create a temporary file for %s: %s", final, strerror(e));
        errno = e;
        return BN_ERR_IO;
    }
    (void)bn_file_tmp_mode(fd, final, mode); /* refused (vfat): it stays 0600, never wider */
    if (write_full(fd, data, len) != 0) {
        const int e = errno;
        say(why, whysz, "cannot write %s: %s", tmp, strerror(e));
        close(fd);
        return commit_fail(e, tmp);
    }
    return bn_file_commit(fd, tmp, final, why, whysz);
}
