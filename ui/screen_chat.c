/* screen_chat.c - screen 5: a conversation with the loaded model, streamed from the engine
 * worker, with an editable prompt line and sampling settings. */
#include "tui.h"

#include <curses.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 512

enum { ROLE_USER, ROLE_MODEL, ROLE_NOTE };

typedef struct msg {
    int role;
    char *text;
    size_t len;
} msg;

enum { SET_TEMP, SET_TOPK, SET_TOPP, SET_MINP, SET_REP, SET_N, SET_SEED, SET_COUNT };

typedef struct chat {
    msg m[MAX_MSGS];
    int n;
    ui_input in;
    char last_prompt[UI_INPUT_MAX];
    int editing;
    int scroll; /* lines above the bottom */
    int job;    /* the engine job streaming into the last message */
    int conv_id;
    int setting;
    eng_gen_params sp;
    int have_sp;
    int full; /* the last reply was cut by a full context, and the transcript says so */
} chat;

static void *chat_create(tui *t)
{
    chat *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->editing = 1;
    c->conv_id = -1;
    tui_sampling(t, &c->sp, 256);
    return c;
}

static void clear_msgs(chat *c)
{
    for (int i = 0; i < c->n; i++) free(c->m[i].text);
    c->n = 0;
    c->scroll = 0;
}

static void chat_destroy(void *st)
{
    chat *c = st;
    clear_msgs(c);
    free(c);
}

static void append(chat *c, int role, const char *s, size_t n)
{
    if (c->n == 0 || c->m[c->n - 1].role != role || role == ROLE_USER) {
        if (c->n == MAX_MSGS) { /* drop the oldest */
            free(c->m[0].text);
            memmove(c->m, c->m + 1, (MAX_MSGS - 1) * sizeof c->m[0]);
            c->n--;
        }
        c->m[c->n].role = role, c->m[c->n].text = NULL, c->m[c->n].len = 0;
        c->n++;
    }
    msg *m = &c->m[c->n - 1];
    char *p = realloc(m->text, m->len + n + 1);
    if (!p) return;
    memcpy(p + m->len, s, n);
    m->len += n;
    p[m->len] = '\0';
    m->text = p;
}

static void note(chat *c, const char *s)
{
    append(c, ROLE_NOTE, s, strlen(s));
    append(c, ROLE_NOTE, "\n", 1);
}

/* A note before the reply being streamed (the last message). */
static void note_before_reply(chat *c, const char *s)
{
    if (c->n == 0 || c->m[c->n - 1].role != ROLE_MODEL) {
        note(c, s);
        return;
    }
    msg reply = c->m[--c->n];
    note(c, s);
    if (c->n == MAX_MSGS) { /* no room: the reply is kept, the oldest dropped */
        free(c->m[0].text);
        memmove(c->m, c->m + 1, (MAX_MSGS - 1) * sizeof c->m[0]);
        c->n--;
    }
    c->m[c->n++] = reply;
}

/* The end of this screen's chat job: the reasons a reply ended early, at once. */
static void job_ended(chat *c, const eng_status *es)
{
    const int own = es->job_id == c->job;
    if (own && es->conv_id != c->conv_id) { /* this turn started the conversation over */
        if (!c->full)
            note_before_reply(c, "(the context was full: the conversation started over "
                                 "from this message)");
        c->conv_id = es->conv_id;
    }
    c->full = 0;
    if (own && !es->ok) {
        append(c, ROLE_NOTE, "", 0);
        note(c, es->message);
    } else if (own && !strcmp(es->stop, "context")) {
        char s[256];
        snprintf(s, sizeof s,
                 "(the context is full, %lld of %lld tokens: the reply was cut here; the "
                 "next message starts the conversation over)",
                 es->ctx_used, es->model.n_ctx);
        append(c, ROLE_NOTE, "", 0);
        note(c, s);
        c->full = 1;
    }
    c->job = 0;
}

static void chat_tick(tui *t, void *st)
{
    chat *c = st;
    char buf[8192];
    size_t n;
    if (c->job > 0)
        while ((n = eng_take_text(t->eng, c->job, buf, sizeof buf)) > 0)
            append(c, ROLE_MODEL, buf, n);
    eng_status es;
    eng_status_get(t->eng, &es);
    if (c->job > 0 && (es.job_id != c->job || es.job == ENG_IDLE)) job_ended(c, &es);
    if (c->conv_id >= 0 && es.conv_id != c->conv_id && c->n > 0 && c->job == 0) {
        note(c, "(the conversation was reset: new model, new conversation or a generation "
                "elsewhere)");
        c->conv_id = es.conv_id;
    }
}

static void send_line(tui *t, chat *c)
{
    eng_status es;
    eng_status_get(t->eng, &es);
    if (!c->in.len) return;
    if (!es.model.loaded) {
        tui_status(t, CR_WARN, "no model loaded: load one on Models (F5) or in Setup (F3)");
        return;
    }
    if (es.job != ENG_IDLE) {
        tui_status(t, CR_WARN, "busy: wait for the running job, or Esc to stop it");
        return;
    }
    c->conv_id = es.conv_id;
    const int id = eng_chat(t->eng, c->in.buf, &c->sp);
    if (id < 0) {
        tui_status(t, CR_WARN, "busy");
        return;
    }
    if (c->n && c->m[c->n - 1].len && c->m[c->n - 1].text[c->m[c->n - 1].len - 1] != '\n')
        append(c, c->m[c->n - 1].role, "\n", 1);
    append(c, ROLE_USER, c->in.buf, c->in.len);
    append(c, ROLE_USER, "\n", 1);
    append(c, ROLE_MODEL, "", 0);
    snprintf(c->last_prompt, sizeof c->last_prompt, "%s", c->in.buf);
    ui_input_set(&c->in, "");
    c->job = id;
    c->scroll = 0;
}

/* ---- settings ----------------------------------------------------------------------------------
 */

static void setting_text(const chat *c, int i, char *buf, size_t size)
{
    const bn_sampler_params *s = &c->sp.sp;
    switch (i) {
    case SET_TEMP:
        snprintf(buf, size, "temp %.2f", (double)s->temperature);
        break;
    case SET_TOPK:
        snprintf(buf, size, "top-k %d", s->top_k);
        break;
    case SET_TOPP:
        snprintf(buf, size, "top-p %.2f", (double)s->top_p);
        break;
    case SET_MINP:
        snprintf(buf, size, "min-p %.2f", (double)s->min_p);
        break;
    case SET_REP:
        snprintf(buf, size, "repeat %.2f", (double)s->repeat_penalty);
        break;
    case SET_N:
        snprintf(buf, size, "max %d tokens", c->sp.n_predict);
        break;
    default:
        if (c->sp.seed_clock)
            snprintf(buf, size, "seed clock");
        else
            snprintf(buf, size, "seed %llu", (unsigned long long)s->seed);
    }
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void adjust(chat *c, int dir)
{
    bn_sampler_params *s = &c->sp.sp;
    switch (c->setting) {
    case SET_TEMP:
        s->temperature = clampf(s->temperature + 0.05f * (float)dir, 0, 5);
        break;
    case SET_TOPK:
        s->top_k = s->top_k + 5 * dir < 0 ? 0 : s->top_k + 5 * dir;
        break;
    case SET_TOPP:
        s->top_p = clampf(s->top_p + 0.05f * (float)dir, 0, 1);
        break;
    case SET_MINP:
        s->min_p = clampf(s->min_p + 0.01f * (float)dir, 0, 1);
        break;
    case SET_REP:
        s->repeat_penalty = clampf(s->repeat_penalty + 0.05f * (float)dir, 0.05f, 3);
        break;
    case SET_N:
        c->sp.n_predict = c->sp.n_predict + 32 * dir < 16 ? 16 : c->sp.n_predict + 32 * dir;
        if (c->sp.n_predict > 8192) c->sp.n_predict = 8192;
        break;
    default: /* the clock, 0, 1, ... */
        if (c->sp.seed_clock && dir > 0)
            c->sp.seed_clock = 0, s->seed = 0;
        else if (!c->sp.seed_clock && dir < 0 && s->seed == 0)
            c->sp.seed_clock = 1;
        else if (!c->sp.seed_clock)
            s->seed = dir < 0 ? s->seed - 1 : s->seed + 1;
    }
}

/* ---- drawing
 * ------------------------------------------------------------------------------------- */

#define CHAT_HINT                                                                                  \
    "type a message and press Enter. Tab or Esc leaves the message line for the sampling "         \
    "settings (Tab again: the next screen), Shift-Tab goes to the previous screen, F10 quits, "    \
    "F1 lists the keys"

typedef struct count_ctx {
    int lines;
} count_ctx;

static void count_line(void *ud, int i, const char *s, size_t n)
{
    (void)i, (void)s, (void)n;
    ((count_ctx *)ud)->lines++;
}

/* Lines of message m at width w (a trailing newline adds none). */
static int msg_lines(const msg *m, int w)
{
    size_t len = m->len;
    if (len && m->text[len - 1] == '\n') len--;
    count_ctx cc = {0};
    ui_wrap(m->text ? m->text : "", len, w, count_line, &cc);
    return cc.lines ? cc.lines : (m->role == ROLE_MODEL ? 1 : 0);
}

static void draw_transcript(chat *c, int y, int x, int h, int w)
{
    const int tw = w - 7; /* "you > " / "model " prefix column */
    int total = 0;
    for (int i = 0; i < c->n; i++) total += msg_lines(&c->m[i], tw);
    if (c->scroll > total - h) c->scroll = total - h > 0 ? total - h : 0;
    int first = total - h - c->scroll; /* the first line shown */
    if (first < 0) first = 0;
    int line = 0;
    for (int i = 0; i < c->n; i++) {
        const msg *m = &c->m[i];
        const int nl = msg_lines(m, tw);
        if (line + nl > first && line < first + h) {
            size_t len = m->len;
            if (len && m->text[len - 1] == '\n') len--;
            const int from = first > line ? first - line : 0;
            const int row = y + (line + from - first);
            const int rows = h - (row - y);
            const int a = m->role == ROLE_USER   ? crt_attr(CR_TITLE)
                          : m->role == ROLE_NOTE ? crt_attr(CR_DIM)
                                                 : 0;
            if (from == 0 && m->role != ROLE_NOTE)
                ui_text(row, x, 6, m->role == ROLE_USER ? crt_attr(CR_TITLE) : crt_attr(CR_OK),
                        m->role == ROLE_USER ? "you" : "model");
            ui_text_block(row, x + 7, rows, tw, a, m->text ? m->text : "", len, from);
        }
        line += nl;
    }
    if (c->n == 0) ui_text_block(y, x, h, w, crt_attr(CR_DIM), CHAT_HINT, strlen(CHAT_HINT), 0);
}

static void chat_draw(tui *t, void *st, int y, int x, int h, int w)
{
    chat *c = st;
    eng_status es;
    eng_status_get(t->eng, &es);
    char head[512];
    if (es.model.loaded)
        snprintf(head, sizeof head, "Chat with %s (format %s, %s)", tui_base(es.model.path),
                 es.model.chat_format,
                 strcmp(es.model.chat_format, "plain") ? "from the model's chat template"
                                                       : "no chat template we know");
    else
        snprintf(head, sizeof head, "Chat: no model loaded (Models: F5)");
    ui_box(y, x, h - 3, w, head);
    draw_transcript(c, y + 1, x + 2, h - 5, w - 4);
    /* the settings line */
    int cx = x + 1;
    const int sy = y + h - 3;
    for (int i = 0; i < SET_COUNT && cx < x + w; i++) {
        char s[48];
        setting_text(c, i, s, sizeof s);
        const int a = !c->editing && i == c->setting ? crt_attr(CR_SELECT) : crt_attr(CR_DIM);
        cx += ui_text(sy, cx, x + w - cx, a, s);
        cx += ui_text(sy, cx, x + w - cx, 0, "  ");
    }
    /* the speed line */
    char sp[256];
    if (es.job == ENG_GENERATING)
        snprintf(sp, sizeof sp,
                 "generating: %lld tokens, %.1f tokens/s (prompt %.1f tokens/s), "
                 "context %lld/%lld",
                 es.gen_tokens, es.gen_tps, es.prompt_tps, es.ctx_used, es.model.n_ctx);
    else if (es.gen_tokens)
        snprintf(sp, sizeof sp,
                 "last reply: %lld tokens, %.1f tokens/s, stop: %s; context %lld/%lld",
                 es.gen_tokens, es.gen_tps, es.stop, es.ctx_used, es.model.n_ctx);
    else
        snprintf(sp, sizeof sp, "%s", es.model.loaded ? "ready" : "");
    ui_text(sy + 1, x + 1, w - 2, es.job == ENG_GENERATING ? crt_attr(CR_OK) : crt_attr(CR_DIM),
            sp);
    ui_text(sy + 2, x, 2, crt_attr(CR_TITLE), ">");
    ui_input_draw(&c->in, sy + 2, x + 2, w - 2, c->editing);
    ui_hit(sy + 2, x, w, UI_KEY_BUTTON + 1);
}

static int chat_key(tui *t, void *st, int ch)
{
    chat *c = st;
    eng_status es;
    eng_status_get(t->eng, &es);
    const int busy = es.job == ENG_GENERATING && es.job_id == c->job;
    if (ch == UI_KEY_BUTTON + 1) {
        c->editing = 1;
        return 1;
    }
    if (ch == UI_KEY_WHEEL_UP || ch == KEY_PPAGE) {
        c->scroll += ch == KEY_PPAGE ? 10 : 3;
        return 1;
    }
    if (ch == UI_KEY_WHEEL_DOWN || ch == KEY_NPAGE) {
        c->scroll -= ch == KEY_NPAGE ? 10 : 3;
        if (c->scroll < 0) c->scroll = 0;
        return 1;
    }
    if (ch == 27) {
        if (busy) {
            eng_cancel(t->eng);
            tui_status(t, CR_WARN, "stopping the generation");
        } else {
            c->editing = 0;
        }
        return 1;
    }
    if (c->editing) {
        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            send_line(t, c);
            return 1;
        }
        if (ch == '\t') { /* to the settings; Tab there goes on to the next screen */
            c->editing = 0;
            return 1;
        }
        if (ch == KEY_BTAB) { /* as on every screen */
            tui_switch(t, (t->cur + SCR_COUNT - 1) % SCR_COUNT);
            return 1;
        }
        if (ch == KEY_UP) {
            ui_input_set(&c->in, c->last_prompt);
            ui_input_key(&c->in, KEY_END); /* to be edited, not replaced */
            return 1;
        }
        return ui_input_key(&c->in, ch);
    }
    switch (ch) {
    case '\n':
    case '\r':
    case KEY_ENTER:
    case 'e':
        c->editing = 1;
        return 1;
    case KEY_UP:
    case KEY_LEFT:
    case '-':
        if (ch == KEY_UP)
            c->setting = (c->setting + SET_COUNT - 1) % SET_COUNT;
        else
            adjust(c, -1), tui_sampling_save(t, &c->sp);
        return 1;
    case KEY_DOWN:
    case KEY_RIGHT:
    case '+':
        if (ch == KEY_DOWN)
            c->setting = (c->setting + 1) % SET_COUNT;
        else
            adjust(c, 1), tui_sampling_save(t, &c->sp);
        return 1;
    case 'x':
        if (busy) eng_cancel(t->eng);
        return 1;
    case 'n':
        if (eng_chat_new(t->eng) < 0) {
            tui_status(t, CR_WARN, "busy: stop the running job first (Esc)");
            return 1;
        }
        clear_msgs(c);
        c->conv_id = -1, c->full = 0;
        return 1;
    default:
        return 0;
    }
}

static int chat_editing(void *st)
{
    return ((chat *)st)->editing;
}

static const char *chat_keybar(void *st)
{
    const chat *c = st;
    if (c->editing)
        return c->job > 0 ? "Esc\tstop the reply\nTab\tsettings\nS-Tab\tprevious screen\n"
                          : "Enter\tsend\nTab\tsettings\nEsc\tleave\n^U\tclear\nUp\tlast "
                            "message\nS-Tab\tprevious screen\n";
    return "Enter\ttype\nUp Down\tsetting\n- +\tchange\nn\tnew chat\nx\tstop\nTab\tnext "
           "screen\n";
}

static void chat_enter(tui *t, void *st)
{
    (void)t;
    ((chat *)st)->editing = 1;
}

const tui_screen scr_chat = {
        .name = "Chat",
        .id = "chat",
        .letter = 'c',
        .fkey = 6,
        .help = "Enter\tsend the line (while typing); start typing (otherwise)\n"
                "Tab\tleave the message line for the settings; from the settings, the next "
                "screen\n"
                "S-Tab\tthe previous screen (also from the message line)\n"
                "Esc\tstop the reply; leave the line\n"
                "Up\trecall the last message (while typing)\n"
                "PgUp PgDn\tscroll the conversation (also the wheel)\n"
                "Up Down\tchoose a sampling setting (not typing)\n"
                "Left Right - +\tchange it\n"
                "n\ta new conversation\n"
                "x\tstop the reply\n"
                "\tthe formats of bitnet chat: 2b4t, llama3 or chatml from the model's chat "
                "template, else plain (User: / Assistant: lines). A reply that fills the context "
                "is cut with a note saying so; the next message then starts the conversation "
                "over",
        .create = chat_create,
        .destroy = chat_destroy,
        .enter = chat_enter,
        .draw = chat_draw,
        .key = chat_key,
        .editing = chat_editing,
        .tick = chat_tick,
        .keybar = chat_keybar,
};
