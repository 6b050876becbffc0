/* cmd_tui.c - `bitnet tui` (and `bitnet` with no command on a terminal): the full-screen
 * terminal UI of ui/. This file parses the options and refuses terminals that cannot
 * draw it; ui/ does the rest. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "../ui/ui.h"
#include "bitnet/db_pg.h"

void cmd_tui_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet tui [options]\n\n"
            "The full-screen terminal UI: dashboard, setup wizard, hardware, models, chat,\n"
            "benchmarks, conversions, history, alerts, a watched server (each on an F-key\n"
            "(F2-F9, F11, F12), a digit or a letter) and the tenants' usage (U).\n"
            "F1 or ? shows the keys; q or F10 quits.\n"
            "`bitnet` with no command opens it too when it runs on a terminal. g (graph style),\n"
            "w W (graph window), ] [ (refresh interval), the benchmark sizes and the chat's\n"
            "sampling and the colour theme (O) are saved to the config as they change (tui.*:\n"
            "bitnet-config(5)); z pauses.\n"
            "On Alerts, n e S k add, edit, silence and acknowledge rules (checked as validate\n"
            "checks them and saved to the config, as bitnet alerts add|edit|silence|ack do).\n"
            "A key bar along the bottom names the screen's main keys. In a text line a value\n"
            "shown selected is replaced by what is typed; Ctrl-U clears the line. In Chat, Tab\n"
            "leaves the message line. Keys are read through terminfo (TERM); escape sequences\n"
            "it does not know are dropped.\n\n"
            "Options:\n"
            "  -m, --model FILE  load this model (default: the config's, else the bundled one)\n"
            "  -t, --threads N   threads for the model (default: the config's; 0: one per core)\n"
            "  --screen NAME     the first screen (dashboard, setup, hardware, models, chat,\n"
            "                    benchmarks, conversions, history, alerts, server, usage)\n"
            "  --server URL      watch a bitnet serve (host:port or http[s]://host:port): its\n"
            "                    state, slots, queue, requests/s, tokens/s and errors, polled\n"
            "                    every second on the Server screen (F12), which opens first\n"
            "                    (default: the config's tui.server, watched from the start)\n"
            "  --server-key KEY  the server's --api-key, sent to its /metrics\n"
            "  --database URL    the Usage screen reads the platform's store in PostgreSQL\n"
            "                    at URL (default: the config's database, else the history)\n"
            "  --no-color        no colours (also when NO_COLOR is set and not empty)\n"
            "  --no-unicode      ASCII only: no braille or block graphs, no box lines\n"
            "  --no-mouse        leave the mouse to the terminal\n"
            "  --graph STYLE     braille (default), block or ascii\n"
            "  --keys FILE       play a scripted key sequence (see bitnet(1))\n"
            "  --max-frames N    quit after drawing N frames\n"
            "  --stats FILE      write frame and key-latency figures (JSON) at exit\n"
            "  --dump FILE       write the last frame as text at exit\n"
            "  --size COLSxROWS  headless: draw on a virtual screen of this size (default:\n"
            "                    COLUMNS and LINES, else 80x24), reading keys from --keys only\n"
            "                    and quitting when the script ends; no terminal is needed.\n"
            "                    --keys or --max-frames without a terminal run headless too\n"
            "  -h, --help        this help\n\n"
            "Other than headless, it needs a terminal (stdin and stdout) whose TERM is set and\n"
            "not dumb; elsewhere use the scripted commands (bitnet --help).\n"
            "Exit status: 0 ok, 1 no usable terminal or a failure, 2 usage error.\n");
}

static int parse_graph(const char *s)
{
    static const char *const names[] = {"braille", "block", "ascii"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int known_screen(const char *s)
{
    for (int i = 0; bn_tui_screen_names[i]; i++)
        if (!strcmp(s, bn_tui_screen_names[i])) return 1;
    return 0;
}

/* An API key goes into a header: printable, not empty. */
static int key_ok(const char *k)
{
    if (!*k) return 0;
    for (; *k; k++)
        if ((unsigned char)*k < ' ' || *k == 0x7f) return 0;
    return 1;
}

/* "COLSxROWS" -> cols, lines: each 1..10000. 0, or -1. */
static int parse_size(const char *s, int *cols, int *lines)
{
    char *end;
    const long c = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X')) return -1;
    const char *r = end + 1;
    const long l = strtol(r, &end, 10);
    if (end == r || *end || c < 1 || c > 10000 || l < 1 || l > 10000 || *s == '-' || *r == '-')
        return -1;
    *cols = (int)c, *lines = (int)l;
    return 0;
}

/* The size of a virtual screen from COLUMNS and LINES (each when set and sane), else 80x24. */
static void env_size(int *cols, int *lines)
{
    const char *c = getenv("COLUMNS"), *l = getenv("LINES");
    long v;
    *cols = c && !cli_parse_long(c, 1, 10000, &v) ? (int)v : 80;
    *lines = l && !cli_parse_long(l, 1, 10000, &v) ? (int)v : 24;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, bn_tui_opts *o)
{
    const char *C = "tui";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_tui_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--no-color")) {
            o->no_color = 1;
        } else if (!strcmp(a, "--no-unicode")) {
            o->no_unicode = 1;
        } else if (!strcmp(a, "--no-mouse")) {
            o->no_mouse = 1;
        } else if (!strcmp(a, "--graph") || !strcmp(a, "--keys") || !strcmp(a, "--stats") ||
                   !strcmp(a, "--max-frames") || !strcmp(a, "-m") || !strcmp(a, "--model") ||
                   !strcmp(a, "-t") || !strcmp(a, "--threads") || !strcmp(a, "--screen") ||
                   !strcmp(a, "--server") || !strcmp(a, "--server-key") || !strcmp(a, "--size") ||
                   !strcmp(a, "--dump") || !strcmp(a, "--database")) {
            if (!v) return cli_usage_error(C, "%s needs a value", a);
            i++;
            if (!strcmp(a, "--graph")) {
                if ((o->graph_style = parse_graph(v)) < 0)
                    return cli_usage_error(C, "--graph: '%s' is not braille, block or ascii", v);
            } else if (!strcmp(a, "--keys")) {
                o->keys_file = v;
            } else if (!strcmp(a, "--stats")) {
                o->stats_file = v;
            } else if (!strcmp(a, "--dump")) {
                o->dump_file = v;
            } else if (!strcmp(a, "--size")) {
                if (parse_size(v, &o->cols, &o->lines))
                    return cli_usage_error(C, "--size: '%s' is not COLSxROWS (such as 100x30)", v);
                o->headless = 1;
            } else if (!strcmp(a, "--max-frames")) {
                if (cli_parse_long(v, 1, 1000000000L, &l))
                    return cli_usage_error(C, "--max-frames: '%s' is not a positive number", v);
                o->max_frames = l;
            } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
                if (cli_parse_long(v, 0, 1024, &l))
                    return cli_usage_error(C, "%s: '%s' is not a number in [0, 1024]", a, v);
                o->threads = (int)l;
            } else if (!strcmp(a, "--screen")) {
                if (!known_screen(v)) return cli_usage_error(C, "--screen: unknown screen '%s'", v);
                o->screen = v;
            } else if (!strcmp(a, "--server")) {
                char why[256];
                if (bn_tui_server_url_check(v, why, sizeof why))
                    return cli_usage_error(C, "--server: %s", why);
                o->server_url = v;
            } else if (!strcmp(a, "--server-key")) {
                if (!key_ok(v))
                    return cli_usage_error(C, "--server-key: empty, or a control character in it");
                o->server_key = v;
            } else if (!strcmp(a, "--database")) {
                if (!bn_pg_url_ok(v))
                    return cli_usage_error(C,
                                           "--database: '%s' is not a PostgreSQL URL "
                                           "(postgresql://...)",
                                           v);
                o->database = v;
            } else {
                o->model = v;
            }
        } else {
            return cli_usage_error(C, "unknown option '%s'", a);
        }
    }
    return -1;
}

int cmd_tui(int argc, char **argv)
{
    bn_tui_opts o;
    bn_tui_opts_init(&o);
    const char *nc = getenv("NO_COLOR");
    o.no_color = nc && *nc;
    const int prc = parse_args(argc, argv, &o);
    if (prc >= 0) return prc;
    if (o.server_url && !o.screen) o.screen = "server";
    char why[512];
    const int no_tty = bn_tui_terminal_check(why, sizeof why) != 0;
    if (no_tty && (o.keys_file || o.max_frames)) o.headless = 1; /* a script, or CI */
    if (o.headless && !o.cols) env_size(&o.cols, &o.lines);
    if (no_tty && !o.headless) {
        cli_error("tui: cannot start the full-screen UI: %s", why);
        fprintf(stderr, "Use the scripted commands instead (generate, bench, hw, doctor, history, "
                        "...): see 'bitnet --help'.\n");
        return BN_EXIT_FAIL;
    }
    const int rc = bn_tui_run(&o, why, sizeof why);
    if (rc == 2) return cli_usage_error("tui", "%s", why);
    if (rc != 0) {
        cli_error("tui: %s", why);
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

int cli_tui_wanted(void)
{
    char why[8];
    return bn_tui_terminal_check(why, sizeof why) == 0;
}
