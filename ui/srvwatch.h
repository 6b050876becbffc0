/*
 * srvwatch.h - the Server screen's watcher: a thread that once a second asks a `bitnet
 * serve` for GET /health and GET /metrics (libcurl), keeps the last figures, the rates
 * between two polls and a series of generated tokens/s, and wakes the UI when the state
 * changes. The UI thread never waits on the network: it reads the view under the lock.
 *
 * Usage:
 *
 *     sw_watch *w;
 *     if (sw_new(&w, 1.0, wake, ud) != 0) ...;        // idle until it has a URL
 *     char url[SW_URL_MAX], why[256];
 *     if (sw_url_normalize("127.0.0.1:8080", url, sizeof url, why, sizeof why) == 0)
 *         sw_set_url(w, url, NULL);                   // "http://127.0.0.1:8080"
 *     const sw_view *v = sw_lock(w);                  // read while locked, then
 *     sw_unlock(w);
 *     sw_free(w);                                     // stops an answer in flight
 *
 * The figures are read from the families `bitnet serve` writes (man bitnet, serve): slots,
 * queue, requests by result, prompt and generated tokens, 429s, HTTP answers by status,
 * the time to the first token (its histogram's _sum and _count), the batched steps and,
 * from a server run with -ngl, its GPU memory pool (bitnet_gpu_pool_*, summed over GPUs).
 * Rates come from the counters' growth between two polls (a counter that went down, a
 * restarted server, counts from zero). sw_totals_read and sw_rates_between are plain
 * functions for the tests.
 */
#ifndef BITNET_UI_SRVWATCH_H
#define BITNET_UI_SRVWATCH_H

#include <stddef.h>

#include "graph.h"

#define SW_URL_MAX   512
#define SW_MAX_CODES 16

/* The figures of one /metrics answer; counters are summed over models and endpoints. */
typedef struct sw_totals {
    double slots, slots_busy, waiting, in_flight; /* gauges; NaN when absent */
    double gen_tokens, prompt_tokens;
    double requests, req_stop, req_length, req_error; /* generation requests by result */
    double rejected;                                  /* answered 429, the queue full */
    double http;                                      /* HTTP answers, all endpoints */
    int n_codes;                                      /* statuses >= 400, ascending */
    struct {
        int code;
        double n;
    } codes[SW_MAX_CODES];
    double ttft_sum, ttft_count; /* seconds to the first token: the histogram's sum, count */
    double steps, step_tokens;   /* batched decoding steps and the tokens they carried */
    /* the GPU pool (serve -ngl): bytes, NaN when the server has none */
    double gpu_reserved, gpu_used, gpu_peak, gpu_arena_free, gpu_largest_free;
    double gpu_failures; /* allocations that failed after the pressure chain */
    double gpu_stage[3]; /* pressure responses: evict_kv, shrink_ctx, cpu_layers */
    int bad_lines;       /* lines of the answer skipped */
    char bad[256];       /* the first one's reason */
} sw_totals;

/* Reads a /metrics answer into t. 0, or -1 with why when it is not `bitnet serve`'s (no
 * bitnet_slots in it); lines that do not parse are counted in t->bad_lines. */
int sw_totals_read(const char *text, size_t len, sw_totals *t, char *why, size_t whysz);

/* What happened between two answers dt seconds apart. */
typedef struct sw_rates {
    double dt;
    double tokens_s, prompt_s, requests_s; /* per second */
    double batch;                          /* tokens a decoding step; NaN: no step */
    double ttft;                           /* mean seconds of the window's requests; NaN */
    double rejected, errors;               /* 429s and answers >= 400 in the window */
} sw_rates;

void sw_rates_between(const sw_totals *a, const sw_totals *b, double dt, sw_rates *r);

typedef enum sw_state {
    SW_IDLE = 0, /* no URL */
    SW_WAIT,     /* the first poll of this URL has not ended */
    SW_UP,       /* /health 200 */
    SW_LOADING,  /* /health 503, the model is loading */
    SW_STOPPING, /* /health 503, the server is draining */
    SW_DOWN,     /* no answer: refused, unknown host, timed out */
    SW_BAD,      /* an answer, but not a bitnet server's (wrong URL, a 404) */
} sw_state;

/* "no server", "connecting", "up", "loading", "stopping", "down", "error". */
const char *sw_state_name(sw_state s);

typedef struct sw_view {
    char url[SW_URL_MAX];
    sw_state state;
    char err[512];   /* why it is down or bad, or what went wrong with /metrics; "" */
    double poll_at;  /* when the last poll ended (bn_time_now); 0: none yet */
    double ok_at;    /* when /metrics last read well; 0: never */
    long fails;      /* polls in a row that went wrong */
    int have;        /* tot holds an answer */
    sw_totals tot;   /* the last good /metrics */
    int have_rates;  /* rate holds the growth between the last two */
    sw_rates rate;   /* between the last two good answers */
    double ttft_ms;  /* the newest window with requests: mean TTFT; NaN: none yet */
    double batch;    /* the newest window with steps: tokens a step; NaN: none yet */
    bn_series s_tps; /* generated tokens/s, one sample a poll */
} sw_view;

typedef struct sw_watch sw_watch;

/* period_s: seconds between polls. 0, or -1 when the thread cannot start. */
int sw_new(sw_watch **out, double period_s, void (*wake)(void *), void *ud);
/* Stops the thread (an answer in flight is abandoned) and frees w; NULL is fine. */
void sw_free(sw_watch *w);
/* Watches url (normalized; NULL or "": none) from now on, with key as the bearer token
 * for /metrics (NULL: none); the figures of the one before are dropped. */
void sw_set_url(sw_watch *w, const char *url, const char *key);
/* Polls at once rather than at the next tick. */
void sw_poll_now(sw_watch *w);
const sw_view *sw_lock(sw_watch *w);
void sw_unlock(sw_watch *w);

/* "host:port", "http://host:port/", "https://host/prefix" -> "http://host:port",
 * "https://host/prefix": http:// added when there is no scheme, trailing '/' dropped.
 * 0, or -1 with why (empty, blanks or control characters, another scheme, no host, a '?'
 * or '#', too long). */
int sw_url_normalize(const char *in, char *out, size_t size, char *why, size_t whysz);

#endif
