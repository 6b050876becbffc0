/*
 * bitnet/file.h - the one way every part of bitnet opens an input, checks an output path
 * and makes a temporary file, so that a user's files are never destroyed.
 *
 * Usage (what `bitnet convert`, `synth`, `train`, `history export` and `tokenizer train` do):
 *
 *     char why[512];
 *     const char *inputs[] = {src, prompts};
 *     if (bn_file_check_output(out, force, inputs, 2, why, sizeof why) != BN_OK)
 *         die("%s", why);                       // "out.gguf exists (--force replaces it)"
 *     bn_file_tmp_sweep(out);                   // temporaries of killed runs go
 *     char tmp[4200];
 *     int fd = bn_file_tmp_create(out, tmp, sizeof tmp);   // out.tmp-<pid>-XXXXXX, O_EXCL
 *     bn_file_tmp_mode(fd, out, 0644);          // an existing out keeps its permissions
 *     ... write fd (on failure: close(fd), unlink(tmp)) ...
 *     if (bn_file_commit(fd, tmp, out, why, sizeof why) != BN_OK)   // fsync, close, rename
 *         die("%s", why);                       // the temporary is gone, out is untouched
 *
 *     // a small file in one call (the same steps, after a sweep):
 *     bn_file_write_atomic(path, text, strlen(text), 0600, why, sizeof why);
 *
 *     int in = bn_file_open_read(path, why, sizeof why);   // never blocks on a FIFO
 *
 * Inputs: bn_file_open_read and bn_file_fopen_read open with O_NONBLOCK, refuse anything that
 * is not a regular file (a FIFO, a device, a directory, a socket) and only then clear
 * O_NONBLOCK, so a FIFO given as a model, config, tokenizer or data file is an error at once
 * instead of a process (or the job queue) waiting forever for a writer.
 *
 * Temporaries are named <final>.tmp-<pid>-<six random characters> beside the final file and
 * created with O_EXCL (mkostemp): a name planted in advance (a symlink to another file) is
 * never followed. bn_file_tmp_sweep(final) removes those of <final> whose pid is no longer
 * alive - what a killed run left behind - and never one of a running process.
 *
 * Replacing a file: the temporary is written, synced (fsync), closed and renamed over the
 * final file, then the folder is synced. Until the rename the final file is untouched; after
 * it, it holds the whole new content; a reader never sees half a file. On any failure the
 * temporary is removed and the final file stays as it was (or absent).
 *
 * Modes: a new file gets the mode its writer asks for (not reduced by the umask: the
 * temporary is made 0600 and then changed with fchmod). Replacing an existing regular file
 * keeps that file's permission bits (0777; never set-id bits), so a model or a config the user
 * made private stays private. A writer that must stay private whatever was there (the history
 * export) skips bn_file_tmp_mode and keeps the temporary's 0600.
 *
 * Messages: functions with why/whysz write one line naming the path there (why may be NULL).
 * Nothing here allocates through the engine's hook or exits.
 */
#ifndef BITNET_FILE_H
#define BITNET_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "bitnet/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens path for reading (O_RDONLY | O_CLOEXEC) if it is a regular file: the descriptor, or
 * -1 with errno set (ENOENT, EISDIR for a directory, EINVAL for any other non-regular file)
 * and why filled ("FILE: not a regular file (a FIFO)"). Never blocks. */
int bn_file_open_read(const char *path, char *why, size_t whysz);

/* The same as a stdio stream ("rb"); NULL with errno and why on failure. */
FILE *bn_file_fopen_read(const char *path, char *why, size_t whysz);

/* BN_OK when path is a regular file (following symlinks), without opening it; else
 * BN_ERR_IO with why, as bn_file_open_read would say. For readers that take a path only
 * (libraries that open the file themselves). */
bn_status bn_file_check_regular(const char *path, char *why, size_t whysz);

/* 1 when a and b name the same file (same device and inode, through symlinks and hard
 * links), 0 when not or when either does not exist. */
int bn_file_same(const char *a, const char *b);

/* Checks an output path before any work starts: its folder must exist and be a folder; an
 * existing out must not be any of inputs[0 .. n) (the same file: device and inode; NULL
 * entries are skipped) nor a directory, and replacing it needs force. BN_OK, else
 * BN_ERR_INVALID (BN_ERR_NOT_FOUND: the folder is missing) with why, one line. */
bn_status bn_file_check_output(const char *out, int force, const char *const *inputs, int n,
                               char *why, size_t whysz);

/* Creates <final>.tmp-<pid>-XXXXXX with O_EXCL | O_CLOEXEC, mode 0600 (bn_file_tmp_mode gives
 * it the final file's mode). Returns the descriptor with the name in tmp, or -1 with errno
 * (ENAMETOOLONG when tmpsz is too small). */
int bn_file_tmp_create(const char *final, char *tmp, size_t tmpsz);

/* The mode policy above: fchmod of the temporary fd to final's permission bits when final is
 * an existing regular file (through a symlink), else to mode & 0777. 0, or -1 with errno (a
 * file system that refuses it, vfat, leaves the temporary 0600: never wider than asked). */
int bn_file_tmp_mode(int fd, const char *final, unsigned mode);

/* Commits a temporary made by bn_file_tmp_create: fsync(fd), close(fd), rename(tmp, final),
 * fsync of final's folder (not reported when it fails: the file is in place by then). fd is
 * closed in every case. BN_OK; else BN_ERR_IO with errno set, the temporary removed, final
 * untouched and why naming the step: "cannot write TMP: fsync: ERROR" (or close), "cannot
 * rename TMP to FINAL: ERROR". */
bn_status bn_file_commit(int fd, const char *tmp, const char *final, char *why, size_t whysz);

/* The same for a stdio stream on the temporary (fdopen of its fd): fflush (an earlier write
 * error, ferror, fails it too: "cannot write TMP: write: ERROR"), fsync, fclose, rename. fp is
 * closed in every case. */
bn_status bn_file_commit_stream(FILE *fp, const char *tmp, const char *final, char *why,
                                size_t whysz);

/* Replaces (or creates) final with exactly len bytes of data: sweeps final's dead temporaries,
 * bn_file_tmp_create, writes through short writes and EINTR, bn_file_tmp_mode(mode), then
 * bn_file_commit. BN_OK; else BN_ERR_IO with errno and why ("cannot create a temporary file
 * for FINAL: ERROR", "cannot write TMP: ERROR", or a commit step), final untouched, no
 * temporary left. */
bn_status bn_file_write_atomic(const char *final, const void *data, size_t len, unsigned mode,
                               char *why, size_t whysz);

/* Removes every <final>.tmp-<pid>-* beside final whose pid is not a live process (none, or a
 * zombie: killed, not yet reaped). Returns the number removed. */
int bn_file_tmp_sweep(const char *final);

/* 1 when name (a file name, no folder) is a temporary of base (a file name) made by
 * bn_file_tmp_create, with *pid set; 0 otherwise. */
int bn_file_tmp_match(const char *name, const char *base, long *pid);

#ifdef __cplusplus
}
#endif

#endif
