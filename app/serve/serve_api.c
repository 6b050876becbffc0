/* serve_api.c - the documents of OpenAI's API for `bitnet serve`: reading a completion
 * request into a srv_req (its tokens, sampling, limits) and writing answers, chunks and
 * errors; see serve_api.h. */
#include "serve_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/chat_format.h"
#include "common/utf8.h"

cJSON *srv_error_doc(const char *type, const char *msg, const char *param, const char *code)
{
    cJSON *d = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(d, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    return d;
}

/* ---- reading a request ------------------------------------------------------------------- */

int srv_fail(srv_ask *a, const char *param, const char *msg)
{
    snprintf(a->err, sizeof a->err, "%s", msg);
    a->param = param;
    return -1;
}

/* A number member: 0 absent, 1 read into *v, -1 present but not a number in [lo, hi]. */
static int get_num(const cJSON *d, const char *k, double lo, double hi, double *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(d, k);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi)) return -1;
    *v = j->valuedouble;
    return 1;
}

static int get_bool(const cJSON *d, const char *k, int *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(d, k);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsBool(j)) return -1;
    *v = cJSON_IsTrue(j);
    return 1;
}

static int parse_stop(const cJSON *d, srv_req *r, srv_ask *a)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(d, "stop");
    if (!j || cJSON_IsNull(j)) return 0;
    const int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
    if (!cJSON_IsString(j) && !cJSON_IsArray(j))
        return srv_fail(a, "stop", "stop: expected a string or an array of strings");
    if (n > SRV_STOP_MAX) return srv_fail(a, "stop", "stop: at most 4 strings");
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, i) : j;
        if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > 256)
            return srv_fail(a, "stop", "stop: each must be a string of 1 to 256 bytes");
        if (!(r->stop[r->n_stop] = strdup(e->valuestring)))
            return srv_fail(a, NULL, "out of memory");
        r->n_stop++;
    }
    return 0;
}

/* model, stream, n, temperature, top_p, max_tokens, seed, stop. */
static int parse_common(const cJSON *d, srv_req *r, srv_ask *a)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(d, "model");
    if (model && !cJSON_IsString(model)) return srv_fail(a, "model", "model: expected a string");
    if (get_bool(d, "stream", &a->stream) < 0)
        return srv_fail(a, "stream", "stream: expected true or false");
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(d, "stream_options");
    if (so && cJSON_IsObject(so) && get_bool(so, "include_usage", &a->include_usage) < 0)
        return srv_fail(a, "stream_options",
                        "stream_options.include_usage: expected true or false");
    double v;
    if (get_num(d, "n", 1, 1, &v) < 0) return srv_fail(a, "n", "n: only 1 is supported");
    int lp = 0;
    if (get_bool(d, "logprobs", &lp) < 0 || lp)
        return srv_fail(a, "logprobs", "logprobs: not supported");
    r->sp = bn_sampler_params_default();
    r->sp.seed = cm_seed_from_clock();
    if (get_num(d, "temperature", 0, 2, &v) < 0)
        return srv_fail(a, "temperature", "temperature: expected a number from 0 to 2");
    if (get_num(d, "temperature", 0, 2, &v) > 0) r->sp.temperature = (float)v;
    if (get_num(d, "top_p", 0, 1, &v) < 0)
        return srv_fail(a, "top_p", "top_p: expected a number from 0 to 1");
    if (get_num(d, "top_p", 0, 1, &v) > 0) r->sp.top_p = (float)v;
    const char *mt = cJSON_HasObjectItem(d, "max_completion_tokens") ? "max_completion_tokens"
                                                                     : "max_tokens";
    int got = get_num(d, mt, 1, BN_MODEL_MAX_CTX, &v);
    if (got < 0 || (got > 0 && v != floor(v)))
        return srv_fail(a, mt, "max_tokens: expected a whole number of at least 1");
    if (got > 0) a->max_tokens = (int64_t)v;
    got = get_num(d, "seed", -9.2e18, 9.2e18, &v);
    if (got < 0 || (got > 0 && v != floor(v)))
        return srv_fail(a, "seed", "seed: expected an integer");
    if (got > 0) r->sp.seed = (uint64_t)(int64_t)v;
    return parse_stop(d, r, a);
}

static int tokenize(srv *s, const char *text, size_t len, unsigned fl, srv_req *r, srv_ask *a)
{
    if (bn_tokenizer_encode_alloc(cm_model_tok(s->m), text, len, fl, &r->ids, &r->n_ids) != BN_OK)
        return srv_fail(a, NULL, "the prompt cannot be tokenized");
    if (r->n_ids == 0) return srv_fail(a, a->chat ? "messages" : "prompt", "the prompt is empty");
    return 0;
}

/* The text of a message's content: a string, or an array of {"type":"text","text":...}
 * parts (joined); NULL (null, missing) is "". malloc'ed into *out; -1 for any other shape. */
static int content_text(const cJSON *m, char **out)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!c || cJSON_IsNull(c)) return (*out = strdup("")) ? 0 : -1;
    if (cJSON_IsString(c)) return (*out = strdup(c->valuestring)) ? 0 : -1;
    if (!cJSON_IsArray(c)) return -1;
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t)) return -1;
        len += strlen(t->valuestring);
    }
    if (!(*out = malloc(len + 1))) return -1;
    (*out)[0] = '\0';
    cJSON_ArrayForEach(p, c) strcat(*out, cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
    return 0;
}

int srv_buf_add(srv_buf *b, const char *t, size_t n)
{
    char *q = realloc(b->p, b->len + n + 1);
    if (!q) return -1;
    memcpy(q + b->len, t, n);
    b->p = q, b->len += n, b->p[b->len] = '\0';
    return 0;
}

/* The conversation laid out in the model's chat format (chat_format.h): system messages
 * first, then user and assistant turns, the last one the user's. */
static int chat_text(const cJSON *msgs, const bn_chat_format *f, srv_buf *b, srv_ask *a)
{
    char *system = NULL;
    int started = 0, after_reply = 0, last_user = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        char *text = NULL;
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || content_text(m, &text)) {
            free(system);
            return srv_fail(a, "messages", "messages: each needs a role and a text content");
        }
        const char *rl = role->valuestring;
        int bad = 0;
        if (!strcmp(rl, "system") || !strcmp(rl, "developer")) {
            bad = started || system;
            if (!bad) system = text, text = NULL;
        } else if (!strcmp(rl, "user")) {
            size_t len;
            char *t = bn_chat_turn_text(f, after_reply,
                                        started  ? NULL
                                        : system ? system
                                                 : NULL,
                                        text, &len);
            bad = !t || srv_buf_add(b, t, len);
            free(t);
            started = 1, after_reply = 0, last_user = 1;
        } else if (!strcmp(rl, "assistant")) {
            bad = !last_user || srv_buf_add(b, text, strlen(text));
            after_reply = 1, last_user = 0;
        } else {
            bad = 1;
        }
        free(text);
        if (bad) {
            free(system);
            return srv_fail(a, "messages",
                            "messages: a system message first, then user and assistant turns");
        }
    }
    free(system);
    if (!last_user) return srv_fail(a, "messages", "messages: the last one must be the user's");
    return 0;
}

static int parse_prompt(srv *s, const cJSON *d, srv_req *r, srv_ask *a)
{
    const bn_tokenizer *tok = cm_model_tok(s->m);
    if (a->chat) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(d, "messages");
        if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
            return srv_fail(a, "messages", "messages: expected a non-empty array");
        const bn_chat_format *f = bn_chat_format_for(bn_tokenizer_chat_template(tok), NULL);
        srv_buf b = {0};
        int rc = chat_text(msgs, f, &b, a);
        unsigned fl = BN_TOKENIZE_PARSE_SPECIAL;
        if (bn_tokenizer_add_bos(tok) && bn_tokenizer_bos(tok) >= 0) fl |= BN_TOKENIZE_ADD_BOS;
        if (rc == 0) rc = tokenize(s, b.p, b.len, fl, r, a);
        free(b.p);
        r->line_reply = f->line_reply;
        return rc;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
    if (!cJSON_IsString(p)) return srv_fail(a, "prompt", "prompt: expected a string");
    const unsigned fl = BN_TOKENIZE_ADD_SPECIAL | BN_TOKENIZE_PARSE_SPECIAL;
    return tokenize(s, p->valuestring, strlen(p->valuestring), fl, r, a);
}

/* ---- the srv_answer's documents -------------------------------------------------------------- */

cJSON *srv_usage_doc(const srv_req *r)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)r->n_ids);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(r->n_ids + r->n_gen));
    return u;
}

/* The envelope of an srv_answer or a chunk, with one choice (returned) in "choices". */
cJSON *srv_envelope(const srv_answer *an, int chunk, cJSON **choice)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "id", an->id);
    const char *obj =
            an->chat ? chunk ? "chat.completion.chunk" : "chat.completion" : "text_completion";
    cJSON_AddStringToObject(d, "object", obj);
    cJSON_AddNumberToObject(d, "created", an->created);
    cJSON_AddStringToObject(d, "model", an->s->model_id);
    cJSON *cs = cJSON_AddArrayToObject(d, "choices");
    if (choice) {
        *choice = cJSON_CreateObject();
        cJSON_AddItemToArray(cs, *choice);
        cJSON_AddNumberToObject(*choice, "index", 0);
        cJSON_AddNullToObject(*choice, "logprobs");
    }
    return d;
}

/* Adds the text (cleaned to valid UTF-8) as the choice's text, message or delta. */
int srv_add_text(const srv_answer *an, cJSON *choice, const char *t, size_t n, int chunk, int role)
{
    char *clean = bn_utf8_clean(t, n);
    if (!clean) return -1;
    if (an->chat) {
        cJSON *m = cJSON_AddObjectToObject(choice, chunk ? "delta" : "message");
        if (role) cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", clean);
    } else {
        cJSON_AddStringToObject(choice, "text", clean);
    }
    free(clean);
    return 0;
}

void srv_add_finish(cJSON *choice, const char *finish)
{
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
}

int srv_read_request(srv *s, const cJSON *d, srv_req *r, srv_ask *a)
{
    if (parse_common(d, r, a)) return -1;
    return parse_prompt(s, d, r, a);
}
