/*
 * serve_api.h - the request and answer documents of `bitnet serve` (serve_api.c), in the
 * shapes of OpenAI's API; serve_http.c moves them over HTTP.
 *
 * Usage, in a connection's thread (the model loaded):
 *
 *     srv_ask a = {.chat = 1};
 *     if (srv_read_request(s, doc, r, &a)) ...  400 with a.err, a.param
 *     ...  the engine generates  ...
 *     cJSON *choice, *d = srv_envelope(&an, 0, &choice);
 *     srv_add_text(&an, choice, r->text, r->len, 0, 1);
 *     srv_add_finish(choice, r->finish);
 *
 * Documents are cJSON trees the caller deletes; srv_buf's bytes are the caller's (free).
 */
#ifndef BITNET_APP_SERVE_API_H
#define BITNET_APP_SERVE_API_H

#include <cjson/cJSON.h>

#include "serve.h"
#include "serve_tenants.h"

/* What a completion request asks, besides the prompt (which goes into r). */
typedef struct srv_ask {
    int chat, stream, include_usage;
    int64_t max_tokens; /* 0: the rest of the context */
    char err[256];
    const char *param;
} srv_ask;

typedef struct srv_answer {
    srv *s;
    srv_req *r;
    int chat, include_usage, fd;
    char id[64];
    double created;
    srv_tenants *tenants; /* --tenants: who's request, metered when it ends */
    srv_caller who;
} srv_answer;

typedef struct srv_buf {
    char *p;
    size_t len;
} srv_buf;

/* Reads a completion request (chat: "messages", else "prompt") into r: the prompt's
 * tokens, sampling, stop strings; a->stream, a->include_usage, a->max_tokens. -1 with the
 * message (and the field, or NULL) in a when the request is bad. */
int srv_read_request(srv *s, const cJSON *d, srv_req *r, srv_ask *a);
/* Sets a's message and field; returns -1. */
int srv_fail(srv_ask *a, const char *param, const char *msg);

/* {"error": {"message", "type", "param", "code"}} (param and code: null when NULL). */
cJSON *srv_error_doc(const char *type, const char *msg, const char *param, const char *code);
/* {"prompt_tokens", "completion_tokens", "total_tokens"} */
cJSON *srv_usage_doc(const srv_req *r);
/* An answer (chunk 0) or a chunk: id, object, created, model, choices; with choice not
 * NULL, one choice (index 0, logprobs null) in it, returned there. */
cJSON *srv_envelope(const srv_answer *an, int chunk, cJSON **choice);
/* The text (made valid UTF-8) as the choice's text, message or delta (with the role when
 * role); -1 when out of memory. */
int srv_add_text(const srv_answer *an, cJSON *choice, const char *t, size_t n, int chunk, int role);
/* "finish_reason": finish, or null. */
void srv_add_finish(cJSON *choice, const char *finish);
/* Appends n bytes (kept NUL-terminated); -1 when out of memory. */
int srv_buf_add(srv_buf *b, const char *t, size_t n);

#endif
