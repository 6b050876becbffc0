/* config_internal.h - what the three parts of the settings code share: config.c (the schema,
 * loading, getters, writing a key), config_check.c (checking a document and parsing values)
 * and config_paths.c (the config file's path, the data directory, path resolution). */
#ifndef BITNET_COMMON_CONFIG_INTERNAL_H
#define BITNET_COMMON_CONFIG_INTERNAL_H

#include "common/config.h"

#include <stddef.h>
#include <sys/types.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* vsnprintf into err (nothing when err is NULL or errsz 0). */
void bn__config_set_err(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* snprintf that reports truncation: 0 or -1. */
int bn__config_fmt_path(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The directory part of path ("." without a slash, "/" for a file at the root). */
void bn__config_dir_of(const char *path, char *buf, size_t size);
/* mkdir -p with mode for the directories it creates; -1 with err. */
int bn__config_mkdir_p(const char *path, mode_t mode, char *err, size_t errsz);
/* Is path a section: a proper prefix of some key, ending at a '.'? */
int bn__config_is_section(const char *path);

#endif
