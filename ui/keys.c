/* keys.c - scripted key sequences; see keys.h. */
#include "keys.h"

#include <ctype.h>
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bitnet/file.h"

#define MAX_STEPS 100000

static int add(key_script *ks, key_step s)
{
    if (ks->n == ks->cap) {
        if (ks->cap >= MAX_STEPS) return -1;
        const int cap = ks->cap ? ks->cap * 2 : 64;
        key_step *p = realloc(ks->steps, (size_t)cap * sizeof *p);
        if (!p) return -1;
        ks->steps = p, ks->cap = cap;
    }
    ks->steps[ks->n++] = s;
    return 0;
}

static int add_key(key_script *ks, int key)
{
    key_step s = {KS_KEY, key, 0, 0, 0};
    return add(ks, s);
}

static const struct {
    const char *name;
    int key;
} names[] = {
        {"ENTER", '\n'},
        {"ESC", 27},
        {"TAB", '\t'},
        {"BTAB", KEY_BTAB},
        {"UP", KEY_UP},
        {"DOWN", KEY_DOWN},
        {"LEFT", KEY_LEFT},
        {"RIGHT", KEY_RIGHT},
        {"PGUP", KEY_PPAGE},
        {"PGDN", KEY_NPAGE},
        {"HOME", KEY_HOME},
        {"END", KEY_END},
        {"BACKSPACE", KEY_BACKSPACE},
        {"DEL", KEY_DC},
        {"SPACE", ' '},
};

/* A whole number in [lo, hi] ending at *end; -1 when not. */
static long number(const char *s, long lo, long hi, char **end)
{
    if (!isdigit((unsigned char)*s)) return -1;
    long v = strtol(s, end, 10);
    return v < lo || v > hi ? -1 : v;
}

static int parse_pos(const char *s, key_step *st)
{
    char *end;
    long x = number(s, 0, 9999, &end);
    if (x < 0 || *end != ',') return -1;
    long y = number(end + 1, 0, 9999, &end);
    if (y < 0 || *end) return -1;
    st->x = (int)x, st->y = (int)y;
    return 0;
}

int keys_parse_line(const char *line, key_script *ks, char *err, size_t errsz)
{
    if (!strncmp(line, "text:", 5)) {
        for (const char *p = line + 5; *p; p++)
            if (add_key(ks, (unsigned char)*p)) goto nomem;
        return 0;
    }
    char w[64];
    size_t n = strlen(line);
    while (n && isspace((unsigned char)line[n - 1])) n--;
    while (n && isspace((unsigned char)*line)) line++, n--;
    if (n == 0 || *line == '#') return 0;
    if (n >= sizeof w) goto bad;
    memcpy(w, line, n);
    w[n] = '\0';
    if (n == 1) return add_key(ks, (unsigned char)w[0]) ? -1 : 0;
    if ((w[0] == 'F' || w[0] == 'f') && isdigit((unsigned char)w[1])) {
        char *end;
        long f = number(w + 1, 1, 12, &end);
        if (f < 0 || *end) goto bad;
        return add_key(ks, KEY_F((int)f)) ? -1 : 0;
    }
    if ((w[0] == 'C' || w[0] == 'c') && w[1] == '-' && isalpha((unsigned char)w[2]) && !w[3])
        return add_key(ks, tolower((unsigned char)w[2]) & 0x1f) ? -1 : 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(w, names[i].name)) return add_key(ks, names[i].key) ? -1 : 0;
    key_step st = {KS_KEY, 0, 0, 0, 0};
    char *end;
    if (!strncasecmp(w, "sleep:", 6)) {
        long ms = number(w + 6, 0, 600000, &end);
        if (ms < 0 || *end) goto bad;
        st.kind = KS_SLEEP, st.ms = (int)ms;
    } else if (!strcasecmp(w, "idle")) {
        st.kind = KS_IDLE, st.ms = 60000;
    } else if (!strncasecmp(w, "idle:", 5)) {
        long ms = number(w + 5, 0, 600000, &end);
        if (ms < 0 || *end) goto bad;
        st.kind = KS_IDLE, st.ms = (int)ms;
    } else if (!strncasecmp(w, "click:", 6)) {
        st.kind = KS_CLICK;
        if (parse_pos(w + 6, &st)) goto bad;
    } else if (!strncasecmp(w, "wheelup:", 8)) {
        st.kind = KS_WHEEL_UP;
        if (parse_pos(w + 8, &st)) goto bad;
    } else if (!strncasecmp(w, "wheeldown:", 10)) {
        st.kind = KS_WHEEL_DOWN;
        if (parse_pos(w + 10, &st)) goto bad;
    } else {
        goto bad;
    }
    if (add(ks, st)) goto nomem;
    return 0;
bad:
    snprintf(err, errsz, "unknown step '%.*s'", (int)(n > 40 ? 40 : n), line);
    return -1;
nomem:
    snprintf(err, errsz, "too many steps");
    return -1;
}

int keys_load(const char *path, key_script *ks, char *err, size_t errsz)
{
    memset(ks, 0, sizeof *ks);
    FILE *f = bn_file_fopen_read(path, NULL, 0); /* a FIFO is not waited on */
    if (!f) {
        snprintf(err, errsz, "%s: cannot open", path);
        return -1;
    }
    char line[4096], msg[256];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = '\0';
        if (n && line[n - 1] == '\r') line[--n] = '\0';
        if (keys_parse_line(line, ks, msg, sizeof msg)) {
            snprintf(err, errsz, "%s:%d: %s", path, lineno, msg);
            fclose(f);
            keys_free(ks);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

void keys_free(key_script *ks)
{
    free(ks->steps);
    memset(ks, 0, sizeof *ks);
}
