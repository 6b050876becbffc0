/* screen_usage.c - the Usage screen: each tenant of the platform's store with its usage today
 * and this calendar month (UTC) from the ledger, its cost, how much of its monthly quota is
 * used, and the limits in effect (its tier's, or its own from the config's tenants object).
 * Read through bitnet/db_tenants.h every few seconds, from the store in effect: PostgreSQL when
 * bitnet tui --database or the config's database names one (a connection of this screen's
 * own), else the history. */
#include "tui.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/core.h"
#include "bitnet/db_tenants.h"
#include "common/history.h"
#include "common/tiers.h"

#define REFRESH_S 5.0
#define PG_WAIT_S 30.0 /* after PostgreSQL failed to connect: no new try before (r: at once) */
#define DAY_MS    ((int64_t)86400000)

typedef struct usage_row {
    bn_tenant t;
    bn_usage_total today, month;
    cm_tier lim;  /* the limits in effect */
    unsigned own; /* which of them are the tenant's own (bit i: cm_tier_field(i)) */
    int have_lim; /* its tier is in the config */
} usage_row;

typedef struct usage {
    usage_row *rows;
    size_t n, cap;
    ui_list list;
    double loaded; /* bn_time_now of the last read; 0: never */
    int64_t month_start_ms, month_next_ms;
    char err[512];
    bn_db *pg;          /* the PostgreSQL store, when a URL is in effect */
    char *pg_url;       /* the URL it was opened on */
    int on_pg;          /* the URL in effect names PostgreSQL */
    double pg_next_try; /* after a failed connection: bn_time_now() of the next try */
    char pg_err[400];   /* and why it failed */
} usage;

static void *usage_create(tui *t)
{
    (void)t;
    usage *u = calloc(1, sizeof *u);
    if (u) u->list.sel = -1;
    return u;
}

static void usage_destroy(void *st)
{
    usage *u = st;
    if (u) {
        free(u->rows);
        bn_db_close(u->pg);
        free(u->pg_url);
    }
    free(u);
}

/* The first millisecond of today and of this calendar month (UTC), and of the next month. */
static void bounds(int64_t *day, int64_t *month, int64_t *next)
{
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    *day = (int64_t)now * 1000 - ((int64_t)now * 1000) % DAY_MS;
    tm.tm_mday = 1, tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    *month = (int64_t)timegm(&tm) * 1000;
    if (++tm.tm_mon == 12) tm.tm_mon = 0, tm.tm_year++;
    *next = (int64_t)timegm(&tm) * 1000;
}

static int add_tenant(void *ud, const bn_tenant *t)
{
    usage *u = ud;
    if (u->n == u->cap) {
        const size_t cap = u->cap ? u->cap * 2 : 16;
        usage_row *p = realloc(u->rows, cap * sizeof *p);
        if (!p) return 1;
        u->rows = p, u->cap = cap;
    }
    memset(&u->rows[u->n], 0, sizeof u->rows[0]);
    u->rows[u->n++].t = *t;
    return 0;
}

/* Each tenant's totals and limits; BN_OK or the store's failure. */
static bn_status read_rows(tui *t, usage *u, bn_db *db)
{
    int64_t day, month, next;
    bounds(&day, &month, &next);
    u->month_start_ms = month, u->month_next_ms = next;
    u->n = 0;
    bn_status s = bn_db_tenant_list(db, add_tenant, u);
    if (s == BN_ERR_CANCELLED) snprintf(u->err, sizeof u->err, "out of memory");
    for (size_t i = 0; s == BN_OK && i < u->n; i++) {
        usage_row *r = &u->rows[i];
        s = bn_db_usage_total(db, r->t.id, day, 0, &r->today);
        if (s == BN_OK) s = bn_db_usage_total(db, r->t.id, month, 0, &r->month);
        r->have_lim = t->cfg && !cm_tenant_limits(t->cfg, r->t.tier, r->t.name, &r->lim, &r->own);
    }
    return s;
}

static void store_reset(tui *t, usage *u)
{
    if (!u->on_pg) {
        tui_db_reset(t);
        return;
    }
    bn_db_close(u->pg);
    u->pg = NULL;
}

/* The store in effect: the PostgreSQL store of --database, else of the config's database
 * (opened again when the URL changed), else the history (tui_db). NULL with u->err set. A
 * connection that failed is tried again PG_WAIT_S later, or at once when now: a server that
 * does not answer would hold the UI for libpq's connect_timeout at every refresh. */
static bn_db *store(tui *t, usage *u, int now)
{
    const char *url = NULL;
    char err[400];
    if (cm_store_url(t->cfg, t->opts.database, &url, err, sizeof err)) {
        snprintf(u->err, sizeof u->err, "%s", err);
        return NULL;
    }
    if (u->pg && (!url || strcmp(url, u->pg_url))) bn_db_close(u->pg), u->pg = NULL;
    if ((u->on_pg = url != NULL) == 0) {
        bn_db *db = tui_db(t);
        if (!db) snprintf(u->err, sizeof u->err, "the store cannot be opened: %.400s", t->db_err);
        return db;
    }
    if (u->pg) return u->pg;
    if (!now && bn_time_now() < u->pg_next_try) {
        snprintf(u->err, sizeof u->err, "the store in PostgreSQL: %s (r: try again)", u->pg_err);
        return NULL;
    }
    char *copy = strdup(url);
    if (!copy || cm_store_open_url(&u->pg, url, err, sizeof err)) {
        snprintf(u->pg_err, sizeof u->pg_err, "%s", copy ? err : "out of memory");
        snprintf(u->err, sizeof u->err, "the store in PostgreSQL: %s", u->pg_err);
        u->pg_next_try = bn_time_now() + PG_WAIT_S;
        free(copy);
        return NULL;
    }
    free(u->pg_url);
    u->pg_url = copy;
    return u->pg;
}

/* Reads the store again (on a fresh connection once when it fails, as tui_run_list); now:
 * asked for (r), so a failed PostgreSQL is tried again at once. */
static void reload(tui *t, usage *u, int now)
{
    u->loaded = bn_time_now();
    u->err[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        bn_db *db = store(t, u, now);
        if (!db) {
            u->n = 0;
            return;
        }
        if (read_rows(t, u, db) == BN_OK) return;
        if (!u->err[0]) snprintf(u->err, sizeof u->err, "the store: %.400s", bn_db_errmsg(db));
        store_reset(t, u);
    }
    u->n = 0;
}

static void usage_enter(tui *t, void *st)
{
    reload(t, st, 0);
}

/* The cost of the month's tokens at the tenant's price and quota; -1 when unknown. */
static double month_cost(const usage_row *r)
{
    if (!r->have_lim) return -1;
    return cm_tier_cost(&r->lim, r->month.prompt_tokens + r->month.completion_tokens);
}

/* The share of the monthly quota used, or -1 when there is no quota. */
static double quota_used(const usage_row *r)
{
    if (!r->have_lim || r->lim.monthly_tokens <= 0) return -1;
    return (double)(r->month.prompt_tokens + r->month.completion_tokens) /
           (double)r->lim.monthly_tokens;
}

/* Wide (WIDE columns or more inside the frame): today's figures and the status as columns;
 * narrow: the month's figures, cost and quota only (today's are in the selected tenant's
 * lines below). */
#define WIDE 110

static void draw_row(const usage_row *r, int sel, int wide, int y, int x, int w)
{
    const int base = sel ? crt_attr(CR_SELECT) : 0;
    const double cost = month_cost(r), q = quota_used(r);
    char cs[32] = "-", qs[32] = "no quota";
    if (cost >= 0) snprintf(cs, sizeof cs, "%.2f", cost);
    if (q >= 0) snprintf(qs, sizeof qs, "%.1f%%", q * 100);
    ui_clear(y, x, w, base);
    const int st = strcmp(r->t.status, "active") ? crt_attr(CR_WARN) : base;
    int c = x + 1;
    c += ui_printf(y, c, x + w - c, base, "%-16.16s %-9.9s ", r->t.name, r->t.tier);
    if (wide) {
        c += ui_printf(y, c, x + w - c, sel ? base : st, "%-9.9s ", r->t.status);
        c += ui_printf(y, c, x + w - c, base, "%9" PRId64 " %11" PRId64 " ", r->today.requests,
                       r->today.prompt_tokens + r->today.completion_tokens);
    }
    c += ui_printf(y, c, x + w - c, base, "%9" PRId64 " %12" PRId64 " %9s ", r->month.requests,
                   r->month.prompt_tokens + r->month.completion_tokens, cs);
    const int mw = x + w - c - 1;
    if (q < 0 || mw < 8)
        ui_text(y, c, x + w - c, sel ? base : crt_attr(CR_DIM), qs);
    else
        ui_meter(y, c, mw, q > 1 ? 1 : q, q >= 1 ? crt_attr(CR_FAIL) : crt_attr(CR_GRAPH2), qs);
}

static void draw_head(int wide, int y, int x, int w)
{
    const int a = crt_attr(CR_TITLE);
    int c = x + 1;
    c += ui_printf(y, c, x + w - c, a, "%-16s %-9s ", "tenant", "tier");
    if (wide)
        c += ui_printf(y, c, x + w - c, a, "%-9s %9s %11s ", "status", "req today", "tok today");
    ui_printf(y, c, x + w - c, a, "%9s %12s %9s %s", "req month", "tokens month", "cost USD",
              "quota used");
}

/* Limit i of r ("1200 requests/min*", "no tokens/min"), '*' when it is the tenant's own. */
static void put_limit(char *buf, size_t size, const usage_row *r, int i, const char *unit)
{
    const double v = cm_tier_value(&r->lim, i);
    const char *own = r->own & 1u << i ? "*" : "";
    if (i > 0 && v == 0)
        snprintf(buf, size, "no %s%s", unit, own);
    else
        snprintf(buf, size, "%.15g %s%s", v, unit, own);
}

/* The selected tenant, in 4 lines from y. */
static void draw_detail(const usage *u, const usage_row *r, int y, int x, int w)
{
    char a[64], b[64], c[64], when[32];
    ui_printf(y, x, w, crt_attr(CR_TITLE), "%s (id %" PRId64 ", tier %s, %s)", r->t.name, r->t.id,
              r->t.tier, r->t.status);
    ui_printf(y + 1, x, w, 0,
              "today %" PRId64 " requests, %" PRId64 " tokens; month %" PRId64 " requests, %" PRId64
              " prompt + %" PRId64 " completion",
              r->today.requests, r->today.prompt_tokens + r->today.completion_tokens,
              r->month.requests, r->month.prompt_tokens, r->month.completion_tokens);
    if (!r->have_lim) {
        ui_printf(y + 2, x, w, crt_attr(CR_WARN), "limits: tier '%s' is not in the config",
                  r->t.tier);
        return;
    }
    put_limit(a, sizeof a, r, 1, "requests/min");
    put_limit(b, sizeof b, r, 2, "tokens/min");
    put_limit(c, sizeof c, r, 3, "streams");
    ui_printf(y + 2, x, w, 0, "limits: %s, %s, %s%s", a, b, c, r->own ? " (*: its own)" : "");
    const time_t next = (time_t)(u->month_next_ms / 1000);
    struct tm tm;
    gmtime_r(&next, &tm);
    strftime(when, sizeof when, "%Y-%m-%d", &tm);
    put_limit(a, sizeof a, r, 4, "tokens a month");
    put_limit(b, sizeof b, r, 0, "USD a month");
    ui_printf(y + 3, x, w, 0, "quota %s (again %s), price %s", a, when, b);
}

static void usage_draw(tui *t, void *st, int y, int x, int h, int w)
{
    usage *u = st;
    if (!u->loaded || bn_time_now() - u->loaded >= REFRESH_S) reload(t, u, 0);
    ui_box(y, x, h, w,
           u->on_pg ? "Usage per tenant: today and this month (UTC), from the ledger in PostgreSQL"
                    : "Usage per tenant: today and this month (UTC), from the ledger");
    const int iw = w - 2, bottom = y + h - 1, wide = iw >= WIDE;
    int row = y + 1;
    if (u->err[0]) ui_text(row++, x + 2, iw - 2, crt_attr(CR_FAIL), u->err);
    if (!t->cfg) ui_text(row++, x + 2, iw - 2, crt_attr(CR_WARN), t->cfg_err);
    if (!u->err[0] && u->n == 0) {
        ui_text(row, x + 2, iw - 2, crt_attr(CR_DIM),
                "no tenants yet (bitnet tenants add NAME; bitnet serve --tenants meters them)");
        return;
    }
    draw_head(wide, row++, x + 1, iw);
    const int detail = bottom - row >= 9 ? 5 : 0; /* room for the selected tenant's lines */
    ui_list_layout(&u->list, (int)u->n, bottom - row - detail);
    for (int r = 0; r < u->list.h && u->list.top + r < (int)u->n; r++)
        draw_row(&u->rows[u->list.top + r], u->list.top + r == u->list.sel, wide, row + r, x + 1,
                 iw);
    ui_list_hits(&u->list, row, x + 1, iw);
    if (detail && u->list.sel >= 0 && (size_t)u->list.sel < u->n) {
        ui_hline(bottom - detail, x + 1, iw, crt_attr(CR_BORDER));
        draw_detail(u, &u->rows[u->list.sel], bottom - detail + 1, x + 2, iw - 2);
    }
}

static int usage_key(tui *t, void *st, int ch)
{
    usage *u = st;
    if (ui_list_key(&u->list, ch)) return 1;
    if (ch == 'r') {
        reload(t, u, 1);
        tui_status(t, CR_NORMAL, "usage read again: %zu tenants", u->n);
        return 1;
    }
    return 0;
}

const tui_screen scr_usage = {
        .name = "Usage",
        .id = "usage",
        .letter = 'U',
        .fkey = 0,
        .live = 1,
        .help = "\teach tenant of the platform's store (bitnet tenants): requests and tokens "
                "today\n"
                "\tand this calendar month (UTC) from the usage ledger that bitnet serve "
                "--tenants\n"
                "\twrites, the month's cost at its price, the share of its monthly quota used,\n"
                "\tand below, the selected tenant's limits (* marks its own, from the config's\n"
                "\ttenants object); read again every 5 seconds, from PostgreSQL when\n"
                "\tbitnet tui --database or the config's database names it\n"
                "Up Down\tselect a tenant\n"
                "r\tread the ledger again now",
        .create = usage_create,
        .destroy = usage_destroy,
        .enter = usage_enter,
        .draw = usage_draw,
        .key = usage_key,
};
