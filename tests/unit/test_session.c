/* test_session.c - the generation session (common/session.h) on the bundled model: greedy
 * tokens equal the engine's called directly, one callback per token, the stop reasons
 * (length, end token, stop, context, cancelled), a conversation continued from the pending
 * token, and two sessions on one model interleaved giving each one's tokens alone. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/session.h"

#define N_GREEDY 40

static const char *model_path(void)
{
    const char *p = getenv("BITNET_TEST_MODEL");
    return p && *p ? p : "assets/models/bitnet-tinystories.gguf";
}

static bn_sampler_params greedy(void)
{
    bn_sampler_params p = bn_sampler_params_default();
    p.temperature = 0;
    return p;
}

static int setup(void **state)
{
    FILE *f = fopen(model_path(), "rb");
    if (!f) {
        fprintf(stderr, "test_session: no model at %s: skipped\n", model_path());
        *state = NULL;
        return 0;
    }
    fclose(f);
    cm_model_params mp;
    cm_model_params_init(&mp);
    mp.path = model_path();
    mp.n_threads = 2;
    cm_model *m;
    char err[512];
    if (cm_model_open(&mp, &m, err, sizeof err) != BN_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    cm_model_free(*state);
    return 0;
}

static cm_model *model_or_skip(void **state)
{
    if (!*state) skip();
    return *state;
}

static cm_session *new_session(cm_model *m, int64_t n_ctx)
{
    cm_session_params p;
    cm_session_params_init(&p);
    p.n_ctx = n_ctx;
    const bn_sampler_params sp = greedy();
    cm_session *s = NULL;
    char err[512];
    assert_int_equal(cm_session_new(m, &p, &sp, &s, err, sizeof err), BN_OK);
    return s;
}

static void add_prompt(cm_session *s, const char *text)
{
    size_t n = 0;
    assert_int_equal(cm_session_tokenize(s, text, strlen(text), BN_TOKENIZE_ADD_SPECIAL, &n),
                     BN_OK);
    assert_true(n > 0);
}

/* A session of n_ctx tokens holding prompt (its token count in *np, may be NULL). */
static cm_session *started(cm_model *m, int64_t n_ctx, const char *prompt, size_t *np)
{
    cm_session *s = new_session(m, n_ctx);
    add_prompt(s, prompt);
    if (np) *np = cm_session_n_tokens(s);
    return s;
}

/* The engine alone: the prompt, then n greedy tokens (argmax), end tokens included. */
static void direct_greedy(cm_model *m, const char *text, int32_t *out, int n)
{
    bn_model *bm = cm_model_bn(m);
    int32_t *ids;
    size_t np;
    assert_int_equal(bn_tokenizer_encode_alloc(cm_model_tok(m), text, strlen(text),
                                               BN_TOKENIZE_ADD_SPECIAL, &ids, &np),
                     BN_OK);
    bn_model_state *st;
    assert_int_equal(bn_model_state_new(bm, NULL, &st), BN_OK);
    const int64_t V = bn_model_n_vocab(bm);
    float *logits = malloc((size_t)V * sizeof *logits);
    assert_non_null(logits);
    assert_int_equal(bn_model_eval(st, ids, (int64_t)np, 0, 1, logits), BN_OK);
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        out[i] = best;
        if (i + 1 < n)
            assert_int_equal(bn_model_eval(st, &best, 1, (int64_t)np + i, 1, logits), BN_OK);
    }
    free(logits);
    bn_model_state_free(st);
    bn_free(ids);
}

typedef struct seen {
    int calls;
    int32_t ids[512];
    size_t n_gen_at_call[512];
    int stop_after;   /* on_token: CM_STOP at this call (0: never) */
    int cancel_after; /* cancelled(): nonzero once this many tokens came (0: never) */
} seen;

static int on_token(void *ud, int32_t id, const char *piece, size_t len, const cm_result *r)
{
    seen *w = ud;
    (void)piece, (void)len;
    if (w->calls < 512) w->ids[w->calls] = id, w->n_gen_at_call[w->calls] = r->n_gen;
    w->calls++;
    return w->stop_after && w->calls == w->stop_after ? CM_STOP : CM_GO;
}

static int cancelled(void *ud)
{
    const seen *w = ud;
    return w->cancel_after && w->calls >= w->cancel_after;
}

static void gen(cm_session *s, seen *w, int64_t n_predict, int ignore_eog, cm_result *r)
{
    cm_gen g = {.n_predict = n_predict, .ignore_eog = ignore_eog, .ud = w};
    g.on_token = on_token, g.cancelled = cancelled;
    assert_int_equal(cm_session_generate(s, &g, r), BN_OK);
}

static void test_greedy_matches_engine(void **state)
{
    cm_model *m = model_or_skip(state);
    const char *prompt = "Once upon a time";
    int32_t want[N_GREEDY];
    direct_greedy(m, prompt, want, N_GREEDY);
    cm_session *s = new_session(m, 0);
    add_prompt(s, prompt);
    const size_t np = cm_session_n_tokens(s);
    seen w = {0};
    cm_result r;
    gen(s, &w, N_GREEDY, 1, &r);
    assert_int_equal(r.stop, CM_STOP_LENGTH);
    assert_string_equal(cm_stop_name(r.stop), "length");
    assert_int_equal(r.n_prompt, np);
    assert_int_equal(r.n_gen, N_GREEDY);
    assert_int_equal(r.n_evals, N_GREEDY - 1); /* the last token waits, unevaluated */
    assert_true(r.prompt_s > 0 && r.gen_s > 0);
    assert_int_equal(cm_session_n_tokens(s), np + N_GREEDY);
    assert_int_equal(cm_session_n_evaluated(s), np + N_GREEDY - 1);
    assert_memory_equal(cm_session_tokens(s) + np, want, sizeof want);
    /* the callback: once per token, in order, with the count so far */
    assert_int_equal(w.calls, N_GREEDY);
    assert_memory_equal(w.ids, want, sizeof want);
    for (int i = 0; i < N_GREEDY; i++) assert_int_equal(w.n_gen_at_call[i], i + 1);
    cm_session_free(s);
}

/* An end token stops (not counted, no callback, kept as the pending token). */
static void test_stop_at_end_token(void **state)
{
    cm_model *m = model_or_skip(state);
    size_t np;
    cm_session *s = started(m, 0, "One day", &np);
    seen w = {0};
    cm_result r;
    gen(s, &w, 1000, 0, &r);
    const bn_tokenizer *tok = cm_model_tok(m);
    const int32_t *ids = cm_session_tokens(s);
    const size_t n = cm_session_n_tokens(s);
    assert_int_equal(r.stop, CM_STOP_EOG); /* the bundled model ends this story */
    assert_int_equal(n, np + r.n_gen + 1);
    assert_true(bn_tokenizer_is_eog(tok, ids[n - 1]));
    for (size_t i = np; i + 1 < n; i++) assert_false(bn_tokenizer_is_eog(tok, ids[i]));
    assert_int_equal(w.calls, (int)r.n_gen);
    /* the same run with ignore_eog goes past it, generating the end token as a token */
    cm_session *t = started(m, 0, "One day", NULL);
    seen w2 = {0};
    cm_result r2;
    gen(t, &w2, (int64_t)r.n_gen + 1, 1, &r2);
    assert_int_equal(r2.stop, CM_STOP_LENGTH);
    assert_memory_equal(cm_session_tokens(t), ids, n * sizeof *ids);
    cm_session_free(t);
    cm_session_free(s);
}

static void test_stop_cancel_context(void **state)
{
    cm_model *m = model_or_skip(state);
    cm_session *s = started(m, 0, "Once upon a time", NULL);
    seen w = {.stop_after = 3};
    cm_result r;
    gen(s, &w, 20, 1, &r);
    assert_int_equal(r.stop, CM_STOP_STRING);
    assert_int_equal(r.n_gen, 3);
    assert_int_equal(w.calls, 3);
    cm_session_reset(s);
    assert_int_equal(cm_session_n_tokens(s), 0);
    add_prompt(s, "Once upon a time");
    seen c = {.cancel_after = 5};
    gen(s, &c, 20, 1, &r);
    assert_int_equal(r.stop, CM_STOP_CANCELLED);
    assert_int_equal(r.n_gen, 5);
    cm_session_free(s);
    /* a context of 16 tokens: full after 16 - prompt tokens */
    size_t np;
    cm_session *t = started(m, 16, "Once upon a time", &np);
    seen z = {0};
    gen(t, &z, 100, 1, &r);
    assert_int_equal(r.stop, CM_STOP_CONTEXT);
    assert_int_equal(cm_session_n_tokens(t), 16);
    assert_int_equal(r.n_gen, 16 - np);
    /* the pending token still fits; the one sampled after it does not */
    cm_gen g = {.n_predict = 5};
    assert_int_equal(cm_session_generate(t, &g, &r), BN_OK);
    assert_int_equal(r.stop, CM_STOP_CONTEXT);
    assert_int_equal(r.n_prompt, 1);
    assert_int_equal(r.n_gen, 1);
    assert_int_equal(cm_session_n_tokens(t), 17);
    assert_int_equal(cm_session_generate(t, &g, &r), BN_ERR_RANGE);
    assert_int_equal(r.stop, CM_STOP_ERROR);
    assert_int_equal(cm_session_n_tokens(t), 16); /* the token that did not fit dropped */
    cm_session_free(t);
    /* n_predict 0: the prompt only */
    cm_session *u = started(m, 0, "Once", NULL);
    seen y = {0};
    gen(u, &y, 0, 1, &r);
    assert_int_equal(r.stop, CM_STOP_LENGTH);
    assert_int_equal(r.n_gen, 0);
    assert_int_equal(y.calls, 0);
    cm_session_free(u);
}

/* Two sessions on one model, generating in chunks of 5 turn by turn (each chunk continues
 * from the pending token), give each one's tokens generated alone in one go. */
static void test_two_sessions_interleaved(void **state)
{
    cm_model *m = model_or_skip(state);
    const char *prompts[2] = {"Once upon a time", "The little dog"};
    int32_t want[2][N_GREEDY];
    for (int k = 0; k < 2; k++) direct_greedy(m, prompts[k], want[k], N_GREEDY);
    cm_session *s[2];
    size_t np[2];
    for (int k = 0; k < 2; k++) {
        s[k] = new_session(m, 0);
        add_prompt(s[k], prompts[k]);
        np[k] = cm_session_n_tokens(s[k]);
    }
    for (int chunk = 0; chunk < N_GREEDY / 5; chunk++) {
        for (int k = 0; k < 2; k++) {
            seen w = {0};
            cm_result r;
            gen(s[k], &w, 5, 1, &r);
            assert_int_equal(r.stop, CM_STOP_LENGTH);
            assert_int_equal(r.n_prompt, chunk ? 1 : np[k]);
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(cm_session_n_tokens(s[k]), np[k] + N_GREEDY);
        assert_memory_equal(cm_session_tokens(s[k]) + np[k], want[k], sizeof want[k]);
        cm_session_free(s[k]);
    }
}

/* Continuous batching: three sessions take one token each per step, evaluated together by
 * cm_session_eval_batch, and generate exactly the greedy tokens of the engine alone; a
 * session whose prompt is pending, or one of another state, is refused unchanged. */
static void test_eval_batch(void **state)
{
    cm_model *m = model_or_skip(state);
    enum { NS = 3 };
    const char *prompts[NS] = {"Once upon a time", "The little dog", "Tom and Lily went"};
    int32_t want[NS][N_GREEDY];
    for (int k = 0; k < NS; k++) direct_greedy(m, prompts[k], want[k], N_GREEDY);
    cm_session *s[NS];
    size_t np[NS];
    for (int k = 0; k < NS; k++) {
        s[k] = started(m, 0, prompts[k], &np[k]);
        seen w = {0};
        cm_result r;
        gen(s[k], &w, 1, 1, &r); /* the prompt alone, and the first token */
        assert_int_equal(r.n_prompt, np[k]);
    }
    for (int step = 1; step < N_GREEDY; step++) {
        double secs = -1;
        assert_int_equal(cm_session_eval_batch(s, NS, &secs), BN_OK);
        assert_true(secs >= 0);
        for (int k = 0; k < NS; k++) {
            assert_int_equal(cm_session_n_evaluated(s[k]), cm_session_n_tokens(s[k]));
            seen w = {0};
            cm_result r;
            gen(s[k], &w, 1, 1, &r); /* samples from the batch's logits: nothing evaluated */
            assert_int_equal(r.n_prompt, 0);
            assert_int_equal(r.n_evals, 0);
            assert_int_equal(r.stop, CM_STOP_LENGTH);
        }
    }
    for (int k = 0; k < NS; k++) {
        assert_int_equal(cm_session_n_tokens(s[k]), np[k] + N_GREEDY);
        assert_memory_equal(cm_session_tokens(s[k]) + np[k], want[k], sizeof want[k]);
    }
    /* a new prompt joins the batch: s[1] gets a sentence more, the others their last token;
     * its next greedy token is that of a fresh session fed the same whole sequence */
    add_prompt(s[1], " and then");
    assert_int_equal(cm_session_eval_batch(s, NS, NULL), BN_OK);
    cm_session *ref = new_session(m, 0);
    assert_int_equal(cm_session_append(ref, cm_session_tokens(s[1]), cm_session_n_tokens(s[1])),
                     BN_OK);
    seen w1 = {0}, w2 = {0};
    cm_result r1, r2;
    gen(s[1], &w1, 1, 1, &r1);
    assert_int_equal(r1.n_prompt, 0); /* evaluated by the batch */
    gen(ref, &w2, 1, 1, &r2);
    assert_int_equal(cm_session_n_tokens(ref), cm_session_n_tokens(s[1]));
    assert_int_equal(cm_session_tokens(ref)[cm_session_n_tokens(ref) - 1],
                     cm_session_tokens(s[1])[cm_session_n_tokens(s[1]) - 1]);
    cm_session_free(ref);
    /* a session with nothing to evaluate is refused, and nothing changes */
    const size_t n1 = cm_session_n_evaluated(s[1]), n0 = cm_session_n_evaluated(s[0]);
    assert_int_equal(cm_session_n_evaluated(s[0]), cm_session_n_tokens(s[0]));
    assert_int_equal(cm_session_eval_batch(s, 2, NULL), BN_ERR_INVALID);
    assert_int_equal(cm_session_n_evaluated(s[1]), n1);
    assert_int_equal(cm_session_n_evaluated(s[0]), n0);
    assert_true(cm_session_n_batch(s[0]) >= 1);
    /* nothing pending and no fresh logits after a truncation: generate refuses */
    cm_session_truncate(s[2], np[2]);
    cm_gen g = {.n_predict = 1};
    cm_result r;
    assert_int_equal(cm_session_generate(s[2], &g, &r), BN_ERR_INVALID);
    for (int k = 0; k < NS; k++) cm_session_free(s[k]);
}

/* A long prompt in parts (cm_session_eval_part): two of its tokens per pass beside another
 * session's decoding, its logits only after the pass with its last token; then both
 * generate exactly the greedy tokens of the engine alone. Zero tokens is refused. */
static void test_eval_part(void **state)
{
    cm_model *m = model_or_skip(state);
    const char *prompts[2] = {"Once upon a time", "The little dog went to the park and saw"};
    int32_t want[2][N_GREEDY];
    for (int k = 0; k < 2; k++) direct_greedy(m, prompts[k], want[k], N_GREEDY);
    size_t np[2];
    cm_session *s[2] = {started(m, 0, prompts[0], &np[0]), started(m, 0, prompts[1], &np[1])};
    seen w = {0};
    cm_result r;
    gen(s[0], &w, 1, 1, &r); /* s[0] decodes; s[1]'s prompt is pending */
    assert_true(np[1] > 4);
    size_t most[2] = {1, 2}, steps = 0;
    while (cm_session_n_evaluated(s[1]) < cm_session_n_tokens(s[1])) {
        const size_t before = cm_session_n_evaluated(s[1]);
        assert_int_equal(cm_session_eval_part(s, 2, most, NULL), BN_OK);
        const size_t left = np[1] - before;
        assert_int_equal(cm_session_n_evaluated(s[1]), before + (left < 2 ? left : 2));
        gen(s[0], &w, 1, 1, &r); /* s[0] samples from the pass's logits */
        assert_int_equal(r.n_evals + r.n_prompt, 0);
        steps++;
    }
    assert_int_equal(steps, (np[1] + 1) / 2);
    gen(s[1], &w, 1, 1, &r); /* its first token from the last part's logits */
    assert_int_equal(r.n_prompt, 0);
    const size_t all[2] = {5, 5}; /* more than pending: all */
    for (int step = 0; step < 8; step++) {
        assert_int_equal(cm_session_eval_part(s, 2, all, NULL), BN_OK);
        for (int k = 0; k < 2; k++) gen(s[k], &w, 1, 1, &r);
    }
    for (int k = 0; k < 2; k++) {
        const size_t got = cm_session_n_tokens(s[k]) - np[k];
        assert_true(got >= 2);
        assert_memory_equal(cm_session_tokens(s[k]) + np[k], want[k], got * sizeof(int32_t));
    }
    const size_t zero[2] = {0, 0};
    const size_t ev = cm_session_n_evaluated(s[0]);
    assert_int_equal(cm_session_eval_part(s, 2, zero, NULL), BN_ERR_INVALID);
    assert_int_equal(cm_session_n_evaluated(s[0]), ev);
    for (int k = 0; k < 2; k++) cm_session_free(s[k]);
}

/* Truncating drops tokens and the cache follows; a bad sampler is refused, the old kept. */
static void test_truncate_and_sampler(void **state)
{
    cm_model *m = model_or_skip(state);
    int32_t want[N_GREEDY];
    direct_greedy(m, "Once upon a time", want, N_GREEDY);
    size_t np;
    cm_session *s = started(m, 0, "Once upon a time", &np);
    seen w = {0};
    cm_result r;
    gen(s, &w, 10, 1, &r);
    cm_session_truncate(s, np);
    assert_int_equal(cm_session_n_evaluated(s), np);
    assert_int_equal(cm_session_generate(s, &(cm_gen){.n_predict = 1}, &r), BN_ERR_INVALID);
    /* back into the prompt: the cache follows, and generation continues as at first */
    const int32_t last = cm_session_tokens(s)[np - 1];
    cm_session_truncate(s, np - 1);
    assert_int_equal(cm_session_n_evaluated(s), np - 1);
    bn_sampler_params bad = greedy();
    bad.top_k = -1;
    assert_int_equal(cm_session_set_sampler(s, &bad), BN_ERR_INVALID);
    const bn_sampler_params ok = greedy();
    assert_int_equal(cm_session_set_sampler(s, &ok), BN_OK);
    assert_int_equal(cm_session_append(s, &last, 1), BN_OK);
    seen w2 = {0};
    gen(s, &w2, N_GREEDY, 1, &r);
    assert_int_equal(r.n_prompt, 1);
    assert_memory_equal(cm_session_tokens(s) + np, want, sizeof want);
    cm_session_free(s);
}

/* Truncated back into its prompt after generating, then evaluated in a batch beside another
 * session (a server slot keeping the start of its last request's prompt): the sequence goes
 * on from the truncation, and its greedy tokens are the engine's for that prompt. */
static void test_truncate_then_batch(void **state)
{
    cm_model *m = model_or_skip(state);
    int32_t want[N_GREEDY];
    direct_greedy(m, "Once upon a time", want, N_GREEDY);
    size_t np;
    cm_session *s[2] = {started(m, 0, "Once upon a time", &np),
                        started(m, 0, "The little dog", NULL)};
    seen w = {0};
    cm_result r;
    gen(s[0], &w, 12, 1, &r); /* 11 generated tokens in the cache past the prompt */
    const int32_t last = cm_session_tokens(s[0])[np - 1];
    cm_session_truncate(s[0], np - 1);
    assert_int_equal(cm_session_n_evaluated(s[0]), np - 1);
    assert_int_equal(cm_session_append(s[0], &last, 1), BN_OK);
    assert_int_equal(cm_session_eval_batch(s, 2, NULL), BN_OK);
    seen w2 = {0};
    gen(s[0], &w2, N_GREEDY, 1, &r);
    assert_int_equal(r.n_prompt, 0); /* evaluated by the batch */
    assert_memory_equal(cm_session_tokens(s[0]) + np, want, sizeof want);
    for (int k = 0; k < 2; k++) cm_session_free(s[k]);
}

static void test_open_errors(void **state)
{
    (void)state;
    cm_model_params mp;
    cm_model_params_init(&mp);
    mp.path = "no/such/model.gguf";
    cm_model *m = (cm_model *)&mp;
    char err[512] = "";
    assert_int_not_equal(cm_model_open(&mp, &m, err, sizeof err), BN_OK);
    assert_null(m);
    assert_non_null(strstr(err, "no/such/model.gguf: "));
    assert_string_equal(cm_stop_name((cm_stop)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_greedy_matches_engine),
            cmocka_unit_test(test_stop_at_end_token),
            cmocka_unit_test(test_stop_cancel_context),
            cmocka_unit_test(test_two_sessions_interleaved),
            cmocka_unit_test(test_eval_batch),
            cmocka_unit_test(test_eval_part),
            cmocka_unit_test(test_truncate_and_sampler),
            cmocka_unit_test(test_truncate_then_batch),
            cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
