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

/* ---- the terminal's keys ------------------------------------------------------------------ */

static const struct {
    const char *seq;
    int key;
} fallbacks[] = {
        {"\033OP", KEY_F(1)},    {"\033OQ", KEY_F(2)},    {"\033OR", KEY_F(3)},
        {"\033OS", KEY_F(4)},    {"\033[11~", KEY_F(1)},  {"\033[12~", KEY_F(2)},
        {"\033[13~", KEY_F(3)},  {"\033[14~", KEY_F(4)},  {"\033[15~", KEY_F(5)},
        {"\033[17~", KEY_F(6)},  {"\033[18~", KEY_F(7)},  {"\033[19~", KEY_F(8)},
        {"\033[20~", KEY_F(9)},  {"\033[21~", KEY_F(10)}, {"\033[23~", KEY_F(11)},
        {"\033[24~", KEY_F(12)}, {"\033[A", KEY_UP},      {"\033[B", KEY_DOWN},
        {"\033[C", KEY_RIGHT},   {"\033[D", KEY_LEFT},    {"\033OA", KEY_UP},
        {"\033OB", KEY_DOWN},    {"\033OC", KEY_RIGHT},   {"\033OD", KEY_LEFT},
        {"\033[H", KEY_HOME},    {"\033[F", KEY_END},     {"\033OH", KEY_HOME},
        {"\033OF", KEY_END},     {"\033[1~", KEY_HOME},   {"\033[4~", KEY_END},
        {"\033[7~", KEY_HOME},   {"\033[8~", KEY_END},    {"\033[2~", KEY_IC},
        {"\033[3~", KEY_DC},     {"\033[5~", KEY_PPAGE},  {"\033[6~", KEY_NPAGE},
        {"\033[Z", KEY_BTAB},
};

void keys_define_fallbacks(void)
{
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++)
        if (key_defined(fallbacks[i].seq) == 0) define_key(fallbacks[i].seq, fallbacks[i].key);
}

/* Drops the rest of an escape sequence whose "\e[" or "\eO" was read: a CSI runs to its
 * final byte (0x40-0x7e), an SS3 is one more byte. */
static void drop_sequence(int intro)
{
    for (int ch; (ch = getch()) != ERR;) {
        if (intro == 'O' || (ch >= 0x40 && ch <= 0x7e) || ch < 0x20 || ch > 0x7e) return;
    }
}

int keys_read(void)
{
    for (;;) {
        const int ch = getch();
        if (ch != 27) return ch;
        /* curses hands out Esc and the bytes after it when they are no sequence it knows;
         * bytes that came with the Esc and start a sequence are one unknown key */
        const int next = getch();
        if (next == ERR) return 27;
        if (next != '[' && next != 'O') {
            ungetch(next);
            return 27;
        }
        drop_sequence(next);
    }
}
