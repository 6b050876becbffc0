/* utf8.c - checking and cleaning UTF-8; see utf8.h. */
#include "common/utf8.h"

#include <stdlib.h>
#include <string.h>

#include "bitnet/tokenizer.h"

size_t bn_utf8_len(const unsigned char *s, size_t left)
{
    return left && s[0] ? bn_utf8_seq_len(s, left) : 0; /* the engine's rule; NUL ends */
}

int bn_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left) {
        const size_t k = bn_utf8_len(p, left);
        if (!k) return 0;
        p += k;
        left -= k;
    }
    return 1;
}

char *bn_utf8_clean(const char *s, size_t len)
{
    if (len > ((size_t)1 << 30)) return NULL;
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const size_t k = bn_utf8_len((const unsigned char *)s + i, len - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}
