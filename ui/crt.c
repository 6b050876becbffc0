/* crt.c - the terminal: curses start and restore, signals, colours, UTF-8, mouse, and
 * stderr captured while the screen is in use; see crt.h. */
#include "crt.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#include "keys.h"

/* ---- the global terminal state (the only global state of the TUI) -------------------- */

static SCREEN *scr;
static volatile sig_atomic_t active; /* curses owns the terminal */
static int saved_stderr = -1;        /* the real stderr while captured */
static FILE *captured;               /* where stderr goes meanwhile */
static long captured_seen = -1;      /* size at the last crt_stderr_line */
static int use_unicode, use_mouse, atexit_done;
static const char *color_name = "none";
static int role_attr[CR_ROLE_COUNT_];

static const int fatal_signals[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT, SIGSEGV,
                                    SIGABRT, SIGBUS,  SIGFPE, SIGILL};

/* ---- colours ------------------------------------------------------------------------- */

typedef struct role_style {
    int plain;          /* attributes without colour */
    int with_color;     /* attributes added to the colour pair */
    short fg8, bg8;     /* 8 colours (-1: the terminal's default) */
    short fg256, bg256; /* xterm 256-colour palette */
    int fg_rgb, bg_rgb; /* direct colour, 0xRRGGBB (-1: default) */
} role_style;

static const role_style styles[CR_ROLE_COUNT_] = {
        [CR_NORMAL] = {0, 0, -1, -1, -1, -1, -1, -1},
        [CR_BAR] = {A_REVERSE, 0, COLOR_BLACK, COLOR_CYAN, 16, 74, 0x000000, 0x5fafd7},
        [CR_TAB_ACTIVE] = {A_BOLD, A_BOLD, COLOR_WHITE, COLOR_BLUE, 231, 25, 0xffffff, 0x005faf},
        [CR_HOTKEY] = {A_REVERSE | A_UNDERLINE, A_BOLD, COLOR_RED, COLOR_CYAN, 52, 74, 0x5f0000,
                       0x5fafd7},
        [CR_STATUS] = {A_REVERSE, 0, COLOR_BLACK, COLOR_WHITE, 16, 250, 0x000000, 0xbcbcbc},
        [CR_BORDER] = {0, 0, COLOR_BLUE, -1, 67, -1, 0x5f87af, -1},
        [CR_TITLE] = {A_BOLD, A_BOLD, COLOR_CYAN, -1, 117, -1, 0x87d7ff, -1},
        [CR_DIM] = {A_DIM, 0, COLOR_WHITE, -1, 245, -1, 0x8a8a8a, -1},
        [CR_OK] = {A_BOLD, A_BOLD, COLOR_GREEN, -1, 114, -1, 0x87d787, -1},
        [CR_WARN] = {A_BOLD, A_BOLD, COLOR_YELLOW, -1, 214, -1, 0xffaf00, -1},
        [CR_FAIL] = {A_BOLD, A_BOLD, COLOR_RED, -1, 203, -1, 0xff5f5f, -1},
        [CR_GRAPH1] = {0, 0, COLOR_CYAN, -1, 81, -1, 0x5fd7ff, -1},
        [CR_GRAPH2] = {0, 0, COLOR_MAGENTA, -1, 177, -1, 0xd787ff, -1},
        [CR_GRAPH3] = {0, 0, COLOR_GREEN, -1, 120, -1, 0x87ff87, -1},
        [CR_SELECT] = {A_REVERSE, A_REVERSE, -1, -1, -1, -1, -1, -1},
        [CR_INPUT] = {A_UNDERLINE, 0, COLOR_WHITE, COLOR_BLUE, 255, 237, 0xeeeeee, 0x3a3a3a},
};

/* The light theme: the roles whose colours would not read on a light background. */
static const struct {
    crt_role role;
    short fg8, fg256;
    int fg_rgb;
} light[] = {
        {CR_TITLE, COLOR_BLUE, 25, 0x005faf},      {CR_DIM, COLOR_BLACK, 242, 0x6c6c6c},
        {CR_OK, COLOR_GREEN, 28, 0x008700},        {CR_WARN, COLOR_YELLOW, 130, 0xaf5f00},
        {CR_FAIL, COLOR_RED, 160, 0xd70000},       {CR_GRAPH1, COLOR_BLUE, 31, 0x0087af},
        {CR_GRAPH2, COLOR_MAGENTA, 127, 0xaf00af}, {CR_GRAPH3, COLOR_GREEN, 28, 0x008700},
        {CR_BORDER, COLOR_BLUE, 67, 0x5f87af},
};

static int no_color_opt, colors_started, theme_now;

/* role's style in the theme (light overrides some colours of the default). */
static role_style theme_style(crt_role role)
{
    role_style s = styles[role];
    for (size_t i = 0; theme_now == CRT_THEME_LIGHT && i < sizeof light / sizeof light[0]; i++)
        if (light[i].role == role)
            s.fg8 = light[i].fg8, s.fg256 = light[i].fg256, s.fg_rgb = light[i].fg_rgb;
    if (theme_now == CRT_THEME_LIGHT && role == CR_INPUT) { /* dark text on light grey */
        s.fg8 = COLOR_BLACK, s.bg8 = COLOR_WHITE, s.fg256 = 16, s.bg256 = 253;
        s.fg_rgb = 0, s.bg_rgb = 0xdadada;
    }
    return s;
}

static void init_colors(int no_color)
{
    for (int r = 0; r < CR_ROLE_COUNT_; r++) role_attr[r] = styles[r].plain;
    color_name = "none";
    if (no_color || theme_now == CRT_THEME_MONO || !has_colors()) return;
    if (!colors_started && start_color() != OK) return;
    colors_started = 1;
    if (COLORS < 8) return;
    const int dflt = use_default_colors() == OK;
    const int depth = COLORS >= 0x1000000 ? 24 : COLORS >= 256 ? 8 : 3;
    color_name = depth == 24 ? "direct" : depth == 8 ? "256" : "8";
    for (int r = 1; r < CR_ROLE_COUNT_; r++) {
        const role_style st = theme_style((crt_role)r), *s = &st;
        int fg = depth == 24 ? s->fg_rgb : depth == 8 ? s->fg256 : s->fg8;
        int bg = depth == 24 ? s->bg_rgb : depth == 8 ? s->bg256 : s->bg8;
        if (!dflt && fg < 0) fg = COLOR_WHITE;
        if (!dflt && bg < 0) bg = COLOR_BLACK;
        if (s->fg8 < 0 && s->bg8 < 0) continue; /* attributes only (the selection) */
        if (init_extended_pair(r, fg, bg) != OK) continue;
        role_attr[r] = (int)COLOR_PAIR(r) | s->with_color;
    }
}

void crt_theme_set(crt_theme theme)
{
    theme_now = theme;
    if (scr) init_colors(no_color_opt);
}

crt_theme crt_theme_get(void)
{
    return (crt_theme)theme_now;
}

const char *crt_theme_name(crt_theme theme)
{
    return theme == CRT_THEME_LIGHT ? "light" : theme == CRT_THEME_MONO ? "mono" : "default";
}

int crt_attr(crt_role r)
{
    return r >= 0 && r < CR_ROLE_COUNT_ ? role_attr[r] : 0;
}

const char *crt_colors(void)
{
    return color_name;
}

int crt_unicode(void)
{
    return use_unicode;
}

int crt_mouse(void)
{
    return use_mouse;
}

/* ---- stderr -------------------------------------------------------------------------- */

static void capture_stderr(void)
{
    fflush(stderr);
    captured = tmpfile();
    if (!captured) return;
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stderr < 0 || dup2(fileno(captured), STDERR_FILENO) < 0) {
        if (saved_stderr >= 0) close(saved_stderr);
        saved_stderr = -1;
        fclose(captured);
        captured = NULL;
    }
}

/* Puts stderr back and copies what was written meanwhile to it (async-signal-safe). */
static void release_stderr(void)
{
    if (saved_stderr < 0) return;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    if (!captured) return;
    char buf[4096];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fileno(captured), buf, sizeof buf, off);
        if (n <= 0) break;
        if (write(STDERR_FILENO, buf, (size_t)n) != n) break;
        off += n;
    }
}

int crt_stderr_line(char *buf, size_t size)
{
    struct stat st;
    if (!captured || size == 0 || fstat(fileno(captured), &st) != 0) return 0;
    if ((long)st.st_size == captured_seen) return 0;
    captured_seen = (long)st.st_size;
    char tail[512];
    off_t from = st.st_size > (off_t)sizeof tail - 1 ? st.st_size - (off_t)sizeof tail + 1 : 0;
    ssize_t n = pread(fileno(captured), tail, sizeof tail - 1, from);
    if (n <= 0) return 0;
    tail[n] = '\0';
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) tail[--n] = '\0';
    const char *line = strrchr(tail, '\n');
    line = line ? line + 1 : tail;
    if (!*line) return 0;
    snprintf(buf, size, "%s", line);
    return 1;
}

int crt_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    const int rc = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- the virtual screen of headless runs ----------------------------------------------- */

static FILE *virt_in, *virt_out; /* /dev/null, for curses */

static void close_virtual(void)
{
    if (virt_in) fclose(virt_in);
    if (virt_out) fclose(virt_out);
    virt_in = virt_out = NULL;
}

/* curses on /dev/null: TERM when it names a full-screen terminal, else xterm-256color. */
static SCREEN *open_virtual(const char **term)
{
    virt_in = fopen("/dev/null", "r");
    virt_out = fopen("/dev/null", "w");
    if (!virt_in || !virt_out) return NULL;
    if (!*term || !**term || !strcmp(*term, "dumb")) *term = "xterm-256color";
    SCREEN *s = newterm(*term, virt_out, virt_in);
    if (!s && strcmp(*term, "xterm-256color"))
        s = newterm(*term = "xterm-256color", virt_out, virt_in);
    return s;
}

/* The character of a line-drawing cell (A_ALTCHARSET) as text. */
static const char *acs_text(wchar_t c, int unicode)
{
    static const struct {
        char acs;
        const char *u, *a;
    } map[] = {{'q', "\u2500", "-"}, {'x', "\u2502", "|"}, {'l', "\u250c", "+"},
               {'k', "\u2510", "+"}, {'m', "\u2514", "+"}, {'j', "\u2518", "+"},
               {'t', "\u251c", "+"}, {'u', "\u2524", "+"}, {'w', "\u252c", "+"},
               {'v', "\u2534", "+"}, {'n', "\u253c", "+"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (c == (wchar_t)map[i].acs) return unicode ? map[i].u : map[i].a;
    return NULL;
}

/* One row of the screen as UTF-8 into buf, trailing blanks dropped. */
static void dump_row(int y, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int x = 0; x < COLS; x++) {
        cchar_t cc;
        wchar_t wc[CCHARW_MAX + 1] = {0};
        attr_t at;
        short pair;
        if (mvin_wch(y, x, &cc) == ERR || getcchar(&cc, wc, &at, &pair, NULL) == ERR) break;
        char ch[MB_LEN_MAX * (CCHARW_MAX + 1) + 1];
        size_t len = 0;
        const char *acs = (at & A_ALTCHARSET) ? acs_text(wc[0], use_unicode) : NULL;
        if (acs) {
            len = (size_t)snprintf(ch, sizeof ch, "%s", acs);
        } else {
            mbstate_t ms;
            memset(&ms, 0, sizeof ms);
            for (int i = 0; wc[i] && i < CCHARW_MAX; i++) {
                const size_t k = wcrtomb(ch + len, wc[i], &ms);
                if (k == (size_t)-1) break;
                len += k;
            }
        }
        if (len == 0) continue; /* the second column of a wide character */
        if (n + len + 1 >= size) break;
        memcpy(buf + n, ch, len);
        n += len;
        buf[n] = '\0';
    }
    while (n > 0 && buf[n - 1] == ' ') buf[--n] = '\0';
}

int crt_dump(const char *path, char *err, size_t errsz)
{
    if (!scr) {
        snprintf(err, errsz, "no screen to write");
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    static char line[16 * 4096];
    for (int y = 0; y < LINES; y++) {
        dump_row(y, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    if (fclose(f) != 0) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- start, restore, signals ---------------------------------------------------------- */

static void restore(void)
{
    if (active) {
        active = 0;
        if (use_mouse) mousemask(0, NULL);
        curs_set(1);
        endwin();
    }
    release_stderr();
}

static void on_fatal(int sig)
{
    /* endwin() is not async-signal-safe, but leaving the terminal in raw mode with the
     * cursor hidden is worse (htop makes the same choice) */
    restore();
    if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP) {
        static const char msg[] = "bitnet tui: fatal signal; the terminal was restored\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing more to do */
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        sigaction(fatal_signals[i], &sa, NULL);
}

static void remove_handlers(void)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        signal(fatal_signals[i], SIG_DFL);
}

static void at_exit(void)
{
    crt_done();
}

int crt_init(const crt_opts *o, char *err, size_t errsz)
{
    setlocale(LC_CTYPE, "");
    const char *cs = nl_langinfo(CODESET);
    use_unicode = !o->no_unicode && cs && strcmp(cs, "UTF-8") == 0;
    install_handlers(); /* before newterm, so that curses keeps ours */
    const char *term = getenv("TERM");
    if (o->headless) {
        scr = open_virtual(&term);
    } else {
        scr = newterm(NULL, stdout, stdin);
    }
    if (!scr) {
        remove_handlers();
        close_virtual();
        snprintf(err, errsz, "cannot use the terminal type '%s' (not in the terminfo database?)",
                 term ? term : "");
        return -1;
    }
    set_term(scr);
    if (o->headless && resizeterm(o->lines, o->cols) != OK) {
        crt_done();
        snprintf(err, errsz, "cannot make a virtual screen of %dx%d", o->cols, o->lines);
        return -1;
    }
    active = 1;
    if (!atexit_done) atexit_done = atexit(at_exit) == 0;
    capture_stderr();
    set_escdelay(25);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    keys_define_fallbacks();
    nodelay(stdscr, TRUE);
    curs_set(0);
    no_color_opt = o->no_color;
    init_colors(o->no_color);
    use_mouse = 0;
    if (!o->no_mouse && !o->headless) {
        mmask_t want = BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED;
        use_mouse = mousemask(want, NULL) != 0;
        mouseinterval(0);
    }
    return 0;
}

void crt_done(void)
{
    const int was = active;
    restore();
    if (was) remove_handlers();
    if (scr && !active) {
        delscreen(scr);
        scr = NULL;
    }
    if (captured) {
        fclose(captured);
        captured = NULL;
    }
    if (!scr) close_virtual();
    colors_started = 0; /* a new screen starts its colours again */
}
