/* utf8.c - checking and cleaning UTF-8; see utf8.h. */
#include "common/utf8.h"

#include <stdlib.h>
#include <string.h>

size_t bn_utf8_len(const unsigned char *s, size_t left)
{
    if (left == 0) return 0;
    const unsigned c = s[0];
    size_t k = c == 0                   ? 0
               : c < 0x80               ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : (c & 0xf0) == 0xe0     ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (k == 0 || k > left) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (k == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))) return 0;
    if (k == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))) return 0;
    return k;
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
