/*
 * utf8.h - checking and cleaning UTF-8 text that comes from outside (model files, paths,
 * labels), shared by the model commands and the metrics registry.
 *
 *     char *c = bn_utf8_clean(s, len);   // a malloc'ed copy; free() it
 *     if (bn_utf8_valid(s)) ...          // a NUL-terminated string, as it is
 */
#ifndef BITNET_COMMON_UTF8_H
#define BITNET_COMMON_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (no overlongs, surrogates or NUL) within left
 * bytes, or 0. */
size_t bn_utf8_len(const unsigned char *s, size_t left);
/* Whether the NUL-terminated s is valid UTF-8. */
int bn_utf8_valid(const char *s);
/* A copy of len bytes as valid UTF-8 (each bad byte becomes U+FFFD, NUL bytes too), NUL-
 * terminated and malloc'ed; NULL when out of memory or len is over 1 GiB. */
char *bn_utf8_clean(const char *s, size_t len);

#endif
