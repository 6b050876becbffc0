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
 *     ... write fd, fsync, close, rename(tmp, out) (unlink(tmp) on failure) ...
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

/* Creates <final>.tmp-<pid>-XXXXXX with O_EXCL | O_CLOEXEC, mode 0600 (a caller that keeps
 * the file fchmods it). Returns the descriptor with the name in tmp, or -1 with errno
 * (ENAMETOOLONG when tmpsz is too small). */
int bn_file_tmp_create(const char *final, char *tmp, size_t tmpsz);

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
