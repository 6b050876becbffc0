/* cmd_billing.c - `bitnet billing send|status|reconcile|retry`: the billing outbox of the usage
 * ledger (bitnet/db_tenants.h) sent to Stripe's meter events API (common/billing.h), what waits in
 * it, and the ledger reconciled with what Stripe acknowledged. */
#include "commands.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "common/billing.h"
#include "common/config.h"
#include "common/history.h"
#include "tenancy.h"

#define C_NAME "billing"

void cmd_billing_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet billing send [--once]\n"
            "       bitnet billing status [--json]\n"
            "       bitnet billing reconcile [--tenant T] [--from DATE] [--to DATE] [--json]\n"
            "       bitnet billing retry [--tenant T] [--json]\n\n"
            "Each finished request of bitnet serve --tenants whose tenant has a Stripe customer\n"
            "leaves, with its ledger row and in the same transaction, a meter event in the\n"
            "billing outbox: its tokens (prompt + completion) for that customer, identified by\n"
            "the request id. The sender POSTs each to billing.endpoint/v1/billing/meter_events\n"
            "(form-encoded: event_name = billing.event_name, payload[stripe_customer_id],\n"
            "payload[value], identifier, timestamp) with the secret key of $STRIPE_SECRET_KEY\n"
            "(billing.key_env), one at a time; a failure that may pass (no answer, 5xx, 429,\n"
            "408, 409, 401, 403) is retried with exponential backoff and jitter, another 4xx\n"
            "fails that event for good (kept with the error), and Stripe answering that it has\n"
            "the identifier already counts as delivered. With billing.api stream the events go\n"
            "to Stripe's meter event stream (API v2: billing.stream_endpoint/v2/billing/\n"
            "meter_event_stream, up to 100 a JSON request, with a session token the key makes;\n"
            "Stripe validates them later). bitnet serve --tenants runs the sender itself when\n"
            "billing.event_name is set.\n\n"
            "  send        sends the due events, and then those to come, until SIGINT/SIGTERM\n"
            "    --once    sends what is due now and exits: 1 when some wait for a retry\n"
            "  status      events pending (due, retrying), acknowledged and failed, in tokens\n"
            "  reconcile   per tenant with a Stripe customer or events: the ledger's tokens\n"
            "              beside the outbox's, acknowledged, pending and failed; exit 1 when\n"
            "              a tenant's acknowledged tokens differ from its ledger's (exact)\n"
            "    --tenant T   one tenant (id or name)\n"
            "    --from DATE  from this day (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ), UTC\n"
            "    --to DATE    to the end of this day (a time: up to it, exclusive)\n"
            "  retry       puts the refused events (of T) back as due, once what made Stripe\n"
            "              refuse them is fixed (audited)\n"
            "  --json      one JSON document\n\n" TN_DATABASE_HELP
            "Exit status: 0 ok (reconcile: equal), 1 failure (reconcile: a difference),\n"
            "2 usage error.\n");
}

/* ---- send ------------------------------------------------------------------------------------ */

/* The sender of the config; an exit code when there is none (printed). */
static int open_sender(const char *C, cm_billing **b)
{
    char err[BN_CONFIG_ERR_MAX];
    bn_config *cfg;
    if (bn_config_load(&cfg, err, sizeof err) != 0) {
        cli_error("%s: %s", C, err);
        return BN_EXIT_FAIL;
    }
    cm_billing_opts o;
    int r = cm_billing_opts_load(cfg, &o, err, sizeof err);
    if (r == 1) {
        bn_config_free(cfg);
        cli_error("%s: billing is not configured (set billing.event_name: bitnet config set "
                  "billing.event_name NAME)",
                  C);
        return BN_EXIT_FAIL;
    }
    if (!r) r = cm_store_url(cfg, tn_database_flag(), &o.database, err, sizeof err);
    if (r || cm_billing_new(&o, "bitnet billing send", b, err, sizeof err)) {
        bn_config_free(cfg);
        memset(&o, 0, sizeof o);
        cli_error("%s: %s", C, err);
        return BN_EXIT_FAIL;
    }
    bn_config_free(cfg); /* after cm_billing_new: o.database may point into it */
    memset(&o, 0, sizeof o);
    return 0;
}

static int send_once(cm_billing *b)
{
    cm_billing_stats st = {0};
    const int rc = cm_billing_pass(b, &st);
    printf("acknowledged %" PRId64 ", duplicates %" PRId64 ", refused %" PRId64
           ", failed attempts %" PRId64 "%s\n",
           st.acked, st.duplicates, st.refused, st.retried,
           st.waiting ? "; the endpoint fails: the rest waits for the next run" : "");
    cm_billing_free(b);
    return rc || st.waiting ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* In the foreground until SIGINT or SIGTERM (the sender's thread, this one waiting for the
 * signal). */
static int send_loop(cm_billing *b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before the thread: it inherits the mask */
    if (cm_billing_start(b)) {
        cm_billing_free(b);
        cli_error("billing send: cannot start the sender thread");
        return BN_EXIT_FAIL;
    }
    fprintf(stderr, "bitnet billing send: sending (SIGINT or SIGTERM stops)\n");
    int sig = 0;
    sigwait(&set, &sig);
    cm_billing_free(b);
    fprintf(stderr, "bitnet billing send: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return BN_EXIT_OK;
}

static int sub_send(int argc, char **argv)
{
    const char *C = "billing send";
    int once = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--once")) return cli_usage_error(C, "unknown option '%s'", argv[i]);
        once = 1;
    }
    cm_billing *b;
    const int r = open_sender(C, &b);
    if (r) return r;
    return once ? send_once(b) : send_loop(b);
}

/* ---- status ---------------------------------------------------------------------------------- */

static cJSON *status_json(const bn_outbox_counts *c)
{
    cJSON *d = cJSON_CreateObject();
    const struct {
        const char *k;
        int64_t v;
    } n[] = {{"pending", c->pending},
             {"due", c->due},
             {"retrying", c->retrying},
             {"acked", c->acked},
             {"duplicates", c->duplicates},
             {"failed", c->failed},
             {"pending_tokens", c->pending_value},
             {"acked_tokens", c->acked_value},
             {"failed_tokens", c->failed_value}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        cJSON_AddNumberToObject(d, n[i].k, (double)n[i].v);
    char when[40];
    if (c->oldest_pending_ms)
        cJSON_AddStringToObject(d, "oldest_pending",
                                cli_fmt_utc(c->oldest_pending_ms, when, sizeof when));
    else
        cJSON_AddNullToObject(d, "oldest_pending");
    if (c->last_error[0])
        cJSON_AddStringToObject(d, "last_error", c->last_error);
    else
        cJSON_AddNullToObject(d, "last_error");
    return d;
}

static void status_text(const bn_outbox_counts *c)
{
    char when[40] = "-";
    if (c->oldest_pending_ms) cli_fmt_utc(c->oldest_pending_ms, when, sizeof when);
    printf("pending       %" PRId64 " events, %" PRId64 " tokens (%" PRId64 " due, %" PRId64
           " after a failed try; oldest %s)\n",
           c->pending, c->pending_value, c->due, c->retrying, when);
    printf("acknowledged  %" PRId64 " events, %" PRId64 " tokens (%" PRId64
           " answered as duplicates)\n",
           c->acked, c->acked_value, c->duplicates);
    printf("failed        %" PRId64 " events, %" PRId64 " tokens\n", c->failed, c->failed_value);
    if (c->last_error[0]) printf("last error    %s\n", c->last_error);
}

static int sub_status(int argc, char **argv)
{
    const char *C = "billing status";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    bn_outbox_counts c;
    if (bn_db_outbox_counts(db, bn_wall_ms(), &c) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    if (a.flags & TN_JSON) return cli_print_json(status_json(&c)) ? BN_EXIT_FAIL : BN_EXIT_OK;
    status_text(&c);
    return BN_EXIT_OK;
}

/* ---- retry ----------------------------------------------------------------------------------- */

static int sub_retry(int argc, char **argv)
{
    const char *C = "billing retry";
    tn_args a;
    int r = tn_parse_args(C, argc, argv, TN_TENANT | TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_open(C, &db))) return r;
    int64_t tid = 0, n;
    bn_tenant t;
    if (a.tenant && bn_db_tenant_get(db, a.tenant, &t) != BN_OK) return tn_fail(C, db);
    if (a.tenant) tid = t.id;
    if (bn_db_outbox_requeue(db, tn_actor(), tid, bn_wall_ms(), &n) != BN_OK) return tn_fail(C, db);
    bn_db_close(db);
    if (!(a.flags & TN_JSON)) {
        printf("%" PRId64 " refused events are due again\n", n);
        return BN_EXIT_OK;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "requeued", (double)n);
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* ---- reconcile ------------------------------------------------------------------------------- */

typedef struct recon {
    cJSON *rows; /* NULL: text */
    int64_t tenants, differ;
    bn_billing_row sum;
} recon;

/* What a tenant's row says: "equal", or how it differs. */
static const char *verdict(const bn_billing_row *r)
{
    if (r->ledger_tokens == r->acked_tokens && r->queued_tokens == r->acked_tokens) return "equal";
    if (r->ledger_tokens > r->queued_tokens) return "not in the outbox";
    if (r->failed_tokens) return "refused";
    if (r->pending_tokens) return "pending";
    return "differs";
}

static cJSON *recon_json(const bn_billing_row *r, const char *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tenant_id", (double)r->tenant_id);
    cJSON_AddStringToObject(o, "tenant", r->tenant_name);
    if (r->customer[0])
        cJSON_AddStringToObject(o, "stripe_customer", r->customer);
    else
        cJSON_AddNullToObject(o, "stripe_customer");
    const struct {
        const char *k;
        int64_t v;
    } n[] = {{"ledger_requests", r->ledger_requests},
             {"ledger_tokens", r->ledger_tokens},
             {"events", r->events},
             {"queued_tokens", r->queued_tokens},
             {"acked_tokens", r->acked_tokens},
             {"pending_tokens", r->pending_tokens},
             {"failed_tokens", r->failed_tokens},
             {"difference", r->ledger_tokens - r->acked_tokens}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        cJSON_AddNumberToObject(o, n[i].k, (double)n[i].v);
    cJSON_AddStringToObject(o, "verdict", v);
    return o;
}

static int recon_row(void *ud, const bn_billing_row *r)
{
    recon *rc = ud;
    const char *v = verdict(r);
    rc->tenants++;
    rc->differ += strcmp(v, "equal") != 0;
    rc->sum.ledger_tokens += r->ledger_tokens;
    rc->sum.acked_tokens += r->acked_tokens;
    rc->sum.pending_tokens += r->pending_tokens;
    rc->sum.failed_tokens += r->failed_tokens;
    if (rc->rows) {
        cJSON_AddItemToArray(rc->rows, recon_json(r, v));
        return 0;
    }
    printf("%6" PRId64 "  %-20s %-20s %12" PRId64 " %12" PRId64 " %10" PRId64 " %10" PRId64
           " %10" PRId64 "  %s\n",
           r->tenant_id, r->tenant_name, r->customer[0] ? r->customer : "-", r->ledger_tokens,
           r->acked_tokens, r->pending_tokens, r->failed_tokens, r->ledger_tokens - r->acked_tokens,
           v);
    return 0;
}

static int recon_end(const recon *rc, cJSON *doc)
{
    if (doc) {
        cJSON_AddBoolToObject(doc, "equal", rc->differ == 0);
        cJSON_AddNumberToObject(doc, "tenants_differing", (double)rc->differ);
        cJSON_AddNumberToObject(doc, "ledger_tokens", (double)rc->sum.ledger_tokens);
        cJSON_AddNumberToObject(doc, "acked_tokens", (double)rc->sum.acked_tokens);
        if (cli_print_json(doc)) return BN_EXIT_FAIL;
    } else {
        printf("%s: %" PRId64 " of %" PRId64 " tenants differ; ledger %" PRId64
               " tokens, acknowledged %" PRId64 ", pending %" PRId64 ", refused %" PRId64 "\n",
               rc->differ ? "DIFFERENT" : "equal", rc->differ, rc->tenants, rc->sum.ledger_tokens,
               rc->sum.acked_tokens, rc->sum.pending_tokens, rc->sum.failed_tokens);
    }
    return rc->differ ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int sub_reconcile(int argc, char **argv)
{
    const char *C = "billing reconcile";
    tn_args a;
    int64_t from, to, tid = 0;
    int r = tn_parse_args(C, argc, argv, TN_TENANT | TN_FROM | TN_TO | TN_JSON, &a);
    bn_db *db;
    if (r || (r = tn_parse_range(C, &a, &from, &to)) || (r = tn_open(C, &db))) return r;
    if (a.tenant) {
        bn_tenant t;
        if (bn_db_tenant_get(db, a.tenant, &t) != BN_OK) return tn_fail(C, db);
        tid = t.id;
    }
    recon rc = {0};
    cJSON *doc = NULL;
    if (a.flags & TN_JSON) {
        doc = cJSON_CreateObject();
        rc.rows = cJSON_AddArrayToObject(doc, "tenants");
    } else {
        printf("%6s  %-20s %-20s %12s %12s %10s %10s %10s  %s\n", "id", "tenant", "customer",
               "ledger", "acknowledged", "pending", "refused", "difference", "verdict");
    }
    if (bn_db_billing_reconcile(db, tid, from, to, recon_row, &rc) != BN_OK) {
        cJSON_Delete(doc);
        return tn_fail(C, db);
    }
    bn_db_close(db);
    return recon_end(&rc, doc);
}

int cmd_billing(int argc, char **argv)
{
    static const tn_sub subs[] = {{"send", sub_send},
                                  {"status", sub_status},
                                  {"reconcile", sub_reconcile},
                                  {"retry", sub_retry},
                                  {NULL, NULL}};
    return tn_dispatch(C_NAME, argc, argv, subs, cmd_billing_help);
}
