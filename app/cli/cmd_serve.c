/* cmd_serve.c - `bitnet serve`: an HTTP server with OpenAI's completion API on one loaded
 * model (serve.h: the slots and the queue; serve_http.c: the endpoints). */
#include "commands.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bitnet/core.h"
#include "common/config.h"
#include "common/history.h"
#include "common/model_common.h"
#include "serve/serve.h"
#include "serve/serve_tenants.h"

#define DEFAULT_LISTEN     "127.0.0.1:8080"
#define DEFAULT_SLOTS      1
#define DEFAULT_QUEUE      16
#define DEFAULT_N_CTX      4096
#define BODY_MAX           ((size_t)1 << 20)
#define DRAIN_S            10 /* seconds SIGTERM waits for running requests */
#define DEFAULT_TIMEOUT    600
#define DEFAULT_PER_CLIENT 64     /* connections from one address: slow ones cannot take them all */
#define TIMEOUT_MAX        604800 /* a week */

void cmd_serve_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet serve [-m MODEL.gguf] [options]\n\n"
            "Serves the model over HTTP with OpenAI's API shapes:\n"
            "  POST /v1/chat/completions  POST /v1/completions  (JSON, or server-sent events\n"
            "                             with \"stream\": true)\n"
            "  GET /v1/models             GET /health (503 while the model loads)\n"
            "  GET /metrics               Prometheus text: tokens, latencies, slots, queue, HTTP\n"
            "Each slot is a generation session with its own KV cache on the one loaded model;\n"
            "continuous batching: at each step the running slots' next tokens go through the\n"
            "model in one batched pass (the weights read once for all), new requests'\n"
            "prompts with them. A request goes to the free slot whose cache holds the most\n"
            "of its prompt (that part is not evaluated again).\n"
            "Requests beyond the slots wait in a queue; beyond it they get 429.\n\n"
            "Options:\n" MC_OPTS_HELP
            "  -c, --ctx N       context of each slot in tokens (default: the model's, at most "
            "%d)\n"
            "  --listen ADDR     HOST:PORT to listen on (default %s; port 0: a free one)\n"
            "  --slots N         requests generated at once (default %d, at most 64)\n"
            "  --queue N         requests waiting at most (default %d)\n"
            "  --api-key KEY     require \"Authorization: Bearer KEY\" (not on /health)\n"
            "  --tenants         the keys are the tenants' keys of the store (bitnet keys):\n"
            "                    completions need the inference scope, /metrics and\n"
            "                    GET /v1/tenants admin, GET /v1/usage usage (its tenant) or\n"
            "                    admin (?tenant=T&from=DATE&to=DATE); GET|POST /v1/keys\n"
            "                    and DELETE /v1/keys/ID admin; the tier's limits\n"
            "                    (tiers.* in the config): 429 with Retry-After and\n"
            "                    x-ratelimit-* headers, code insufficient_quota past the\n"
            "                    monthly quota; each finished request is a usage ledger row\n"
            "  --redis URL       with --tenants: the limits and quotas shared by every replica\n"
            "                    through Redis (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or\n"
            "                    unix:///PATH[?db=N]); while it does not answer, rate limits\n"
            "                    are this replica's own and quota tiers get 503\n"
            "  --database URL    with --tenants: the tenants, keys, usage ledger, billing\n"
            "                    outbox and audit log in PostgreSQL (postgresql://USER@HOST\n"
            "                    [:PORT]/DB; the password in PGPASSWORD or ~/.pgpass), shared\n"
            "                    by every replica; default: the config's database, else the\n"
            "                    history\n"
            "  --max-per-client N\n"
            "                    connections from one address at once (default %d; 0: no\n"
            "                    limit: behind a load balancer, which is one address); a\n"
            "                    connection beyond it is closed at once\n"
            "  --timeout SECONDS a request's whole life, waiting and generating (default %d;\n"
            "                    0: none); past it: 504 with code \"timeout\", or in a stream\n"
            "                    an error event and [DONE]\n"
            "  -h, --help        this help\n\n"
            "SIGTERM or SIGINT: new requests get 503, running ones have %d s to finish, then\n"
            "the server exits 0. Exit status: 1 the model cannot be loaded or the address\n"
            "cannot be used, 2 usage error.\n",
            DEFAULT_N_CTX, DEFAULT_LISTEN, DEFAULT_SLOTS, DEFAULT_QUEUE, DEFAULT_PER_CLIENT,
            DEFAULT_TIMEOUT, DRAIN_S);
}

typedef struct serve_opts {
    mc_opts mc;
    const char *listen, *api_key, *redis, *database;
    long slots, queue, timeout, per_client;
    int tenants;
} serve_opts;

static int parse_args(int argc, char **argv, serve_opts *o)
{
    const char *C = "serve";
    o->listen = DEFAULT_LISTEN;
    o->slots = DEFAULT_SLOTS, o->queue = DEFAULT_QUEUE, o->timeout = DEFAULT_TIMEOUT;
    o->per_client = DEFAULT_PER_CLIENT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const int r = mc_parse_opt(C, argc, argv, &i, &o->mc);
        if (r < 0) return BN_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_serve_help(stdout);
            return BN_EXIT_OK;
        }
        if (!strcmp(a, "--tenants")) {
            o->tenants = 1;
            continue;
        }
        int bad = 0;
        if (strcmp(a, "--listen") && strcmp(a, "--slots") && strcmp(a, "--queue") &&
            strcmp(a, "--api-key") && strcmp(a, "--timeout") && strcmp(a, "--redis") &&
            strcmp(a, "--database") && strcmp(a, "--max-per-client"))
            return cli_usage_error(C, "unknown option '%s'", a);
        if (!v) return cli_usage_error(C, "%s needs a value", a);
        if (!strcmp(a, "--listen"))
            o->listen = v;
        else if (!strcmp(a, "--api-key"))
            bad = !*(o->api_key = v);
        else if (!strcmp(a, "--redis"))
            bad = !*(o->redis = v);
        else if (!strcmp(a, "--database"))
            bad = !*(o->database = v);
        else if (!strcmp(a, "--slots"))
            bad = cli_parse_long(v, 1, 64, &o->slots);
        else if (!strcmp(a, "--timeout"))
            bad = cli_parse_long(v, 0, TIMEOUT_MAX, &o->timeout);
        else if (!strcmp(a, "--max-per-client"))
            bad = cli_parse_long(v, 0, 256, &o->per_client);
        else
            bad = cli_parse_long(v, 0, 4096, &o->queue);
        if (bad) return cli_usage_error(C, "%s: bad value '%s'", a, v);
        i++;
    }
    if (o->tenants && o->api_key)
        return cli_usage_error(C, "--tenants and --api-key exclude each other");
    if (o->redis && !o->tenants) return cli_usage_error(C, "--redis needs --tenants");
    if (o->database && !o->tenants) return cli_usage_error(C, "--database needs --tenants");
    return mc_apply_defaults(C, MC_DEF_THREADS | MC_DEF_CTX, &o->mc, NULL);
}

/* The model's name in the API: its file name without ".gguf". */
static void model_id(const char *path, char *buf, size_t size)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, size, "%s", b ? b + 1 : path);
    const size_t n = strlen(buf);
    if (n > 5 && !strcmp(buf + n - 5, ".gguf")) buf[n - 5] = '\0';
}

static void setup(srv *s, const serve_opts *o)
{
    cm_model_params_init(&s->mp);
    s->mp.path = o->mc.model;
    s->mp.n_threads = (int)o->mc.threads;
    s->mp.head_keep = o->mc.head_keep;
    s->mp.head_type = o->mc.head_type;
    cm_session_params_init(&s->sp);
    s->sp.n_ctx = o->mc.n_ctx ? o->mc.n_ctx : DEFAULT_N_CTX;
    s->sp.clamp = !o->mc.n_ctx || o->mc.ctx_soft;
    /* a decoding step batches one token per slot: the scratch must hold every slot */
    s->sp.n_batch = o->mc.n_batch && o->mc.n_batch < o->slots ? o->slots : o->mc.n_batch;
    s->sp.kv_f32 = o->mc.kv_f32;
    /* -ngl: one GPU model for every slot, its pool sized for each slot's KV cache */
    s->mp.n_gpu_layers = (int)o->mc.gpu_layers;
    s->mp.gpu_seq = (int)o->slots;
    s->mp.gpu_ctx = s->sp.n_ctx;
    s->mp.gpu_batch = s->sp.n_batch;
    s->n_slots = (int)o->slots, s->n_queue = (int)o->queue;
    s->timeout_s = (double)o->timeout;
    model_id(o->mc.model, s->model_id, sizeof s->model_id);
}

/* Waits for SIGTERM or SIGINT (blocked in every thread), reporting the model's load; 1 when
 * the model failed to load. */
static int wait_signal(srv *s, const sigset_t *set)
{
    int announced = 0;
    for (;;) {
        const struct timespec t = {0, 200000000L};
        const int sig = sigtimedwait(set, NULL, &t);
        pthread_mutex_lock(&s->mu);
        const int ready = s->ready, failed = s->load_failed;
        pthread_mutex_unlock(&s->mu);
        if (failed) return cli_error("%s", s->load_err), 1;
        if (ready && !announced) {
            fprintf(stderr, "bitnet serve: model %s ready (%d slots of %lld tokens, queue %d)\n",
                    s->model_id, s->n_slots, (long long)s->n_ctx, s->n_queue);
            announced = 1;
        }
        if (sig > 0) return 0;
        if (sig < 0 && errno != EAGAIN && errno != EINTR) return 0;
    }
}

/* New requests get 503; running and queued ones have DRAIN_S seconds, then are cancelled. */
static void drain(srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "bitnet serve: stopping\n");
    for (int i = 0; i < DRAIN_S * 10; i++) {
        pthread_mutex_lock(&s->mu);
        const int busy = s->n_running + s->n_queued;
        pthread_mutex_unlock(&s->mu);
        if (!busy) break;
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
}

/* --tenants: the config (the tiers), the store and --redis; 0, or -1 with the error printed. */
static int open_tenants(srv *s, const serve_opts *o, bn_config **cfg, struct srv_tenants **t)
{
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(cfg, err, sizeof err)) return cli_error("serve: %s", err), -1;
    if (srv_tenants_new(*cfg, o->database, t, err, sizeof err) == 0) {
        /* a stream of a replica that vanished is held for its longest life, and a minute */
        const int64_t lease = (o->timeout ? o->timeout : 3600) * 1000LL + 60000;
        if (s->reg && srv_tenants_metrics(*t, s->reg))
            snprintf(err, sizeof err, "the store's metrics: out of memory");
        else if (!o->redis || !srv_tenants_use_redis(*t, o->redis, lease, s->reg, err, sizeof err))
            return 0;
        srv_tenants_free(*t);
        *t = NULL;
    }
    bn_config_free(*cfg);
    *cfg = NULL;
    return cli_error("serve --tenants: %s", err), -1;
}

static void close_tenants(bn_config *cfg, struct srv_tenants *t)
{
    srv_tenants_free(t);
    bn_config_free(cfg);
}

static int run(srv *s, const serve_opts *o)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit it */
    signal(SIGPIPE, SIG_IGN);
    srv_http_opts ho = {.listen = o->listen,
                        .api_key = o->api_key,
                        .body_max = BODY_MAX,
                        .per_client_max = (unsigned)o->per_client};
    srv_http *h = NULL;
    char err[512];
    int port;
    bn_config *cfg = NULL;
    if (o->tenants && open_tenants(s, o, &cfg, &ho.tenants)) return BN_EXIT_FAIL;
    if (srv_http_start(s, &ho, &h, &port, err, sizeof err)) {
        close_tenants(cfg, ho.tenants);
        return cli_error("%s", err), 1;
    }
    fprintf(stderr, "bitnet serve: listening on %s (port %d), loading %s\n", o->listen, port,
            o->mc.model);
    if (srv_start(s)) {
        srv_http_stop(h);
        close_tenants(cfg, ho.tenants);
        return cli_error("cannot start the engine thread"), 1;
    }
    const int failed = wait_signal(s, &set);
    if (!failed) drain(s);
    srv_shutdown(s);
    srv_http_stop(h);
    close_tenants(cfg, ho.tenants);
    pthread_mutex_lock(&s->mu);
    if (!failed)
        fprintf(stderr,
                "bitnet serve: stopped after %llu requests (%llu prompt, %llu generated "
                "tokens)\n",
                (unsigned long long)s->n_requests, (unsigned long long)s->n_prompt_tokens,
                (unsigned long long)s->n_gen_tokens);
    pthread_mutex_unlock(&s->mu);
    return failed ? BN_EXIT_FAIL : BN_EXIT_OK;
}

/* The run's parameters for the history: the arguments, the API key's value and a Redis or
 * PostgreSQL URL with a password hidden. */
static cJSON *hist_params(int argc, char **argv)
{
    cJSON *p = cm_hist_params_argv(argc, argv);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "argv");
    for (int i = 0; i + 1 < cJSON_GetArraySize(a); i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "--api-key"))
            cJSON_ReplaceItemInArray(a, i + 1, cJSON_CreateString("(hidden)"));
        const cJSON *n = cJSON_GetArrayItem(a, i + 1); /* a password in a URL */
        if (cJSON_IsString(v) &&
            (!strcmp(v->valuestring, "--redis") || !strcmp(v->valuestring, "--database")) &&
            cJSON_IsString(n) && strchr(n->valuestring, '@'))
            cJSON_ReplaceItemInArray(a, i + 1, cJSON_CreateString("(hidden)"));
    }
    return p;
}

/* The server's totals for its run in the history (the engine and the HTTP side stopped). */
static cJSON *hist_totals(srv *s, double seconds)
{
    cJSON *m = cJSON_CreateObject();
    pthread_mutex_lock(&s->mu);
    cJSON_AddNumberToObject(m, "requests", (double)s->n_requests);
    cJSON_AddNumberToObject(m, "prompt_tokens", (double)s->n_prompt_tokens);
    cJSON_AddNumberToObject(m, "generated_tokens", (double)s->n_gen_tokens);
    cJSON_AddNumberToObject(m, "errors", (double)s->n_failed);
    cJSON_AddNumberToObject(m, "timeouts", (double)s->n_timeouts);
    cJSON_AddNumberToObject(m, "rejected", (double)s->n_rejected);
    cJSON_AddNumberToObject(m, "limited", (double)s->n_limited);
    pthread_mutex_unlock(&s->mu);
    cJSON_AddNumberToObject(m, "seconds", seconds);
    cJSON_AddNumberToObject(m, "slots", s->n_slots);
    cJSON_AddNumberToObject(m, "ctx", (double)s->n_ctx);
    return m;
}

int cmd_serve(int argc, char **argv)
{
    serve_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    /* one run for the server's lifetime, its totals at the end */
    cm_hist_run *h = cm_hist_begin("serve", o.mc.model, hist_params(argc, argv));
    srv s;
    memset(&s, 0, sizeof s);
    if (srv_init(&s)) {
        cli_error("cannot start: out of resources");
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    setup(&s, &o);
    const double t0 = bn_time_now();
    rc = run(&s, &o);
    cm_hist_end_exit(h, rc, hist_totals(&s, bn_time_now() - t0), cli_last_error());
    srv_destroy(&s);
    return rc;
}
