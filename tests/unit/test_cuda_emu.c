/* test_cuda_emu.c - the host side of the CUDA backend (engine/cuda/cuda_model.c and
 * cuda_bench.c) on the kernel emulator of tests/emu/cuda_emu.c: the bundled model's logits
 * through bn_cuda_eval against bn_model_eval, with the F16 head and the Q8_0 head, prompts
 * split into batches, several logits rows, greedy generation; argument errors, a failing
 * launch and no device; the GEMV bench's check against the reference. A wrong stride,
 * cache index or upload shows here without a GPU; the kernels themselves run on a GPU only
 * (scripts/gpu-check.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bitnet/cuda.h"
#include "bitnet/gguf.h"
#include "bitnet/types.h"
#include "bitnet/model.h"
#include "common/session.h"
#include "../../app/serve/serve_gpu.h"

#define MODEL "assets/models/bitnet-tinystories.gguf"

extern long bn_cu_emu_fail_after;
extern int bn_cu_emu_devices;
extern size_t bn_cu_emu_mem_limit;

typedef struct fixture {
    bn_ctx *ctx;
    bn_model *m;
    bn_model_state *st;
    bn_cuda_model *g;
    int64_t V;
} fixture;

static void open_model(fixture *f, int head_type, int64_t n_batch)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(bn_ctx_new(&f->ctx, &(bn_ctx_params){.n_threads = 2}), BN_OK);
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.head_type = head_type;
    /* BN_TEST_CUDA_MODEL: another model for a run by hand (a synthetic 700m: SiLU, its own
     * LM head) */
    const char *path = getenv("BN_TEST_CUDA_MODEL") ? getenv("BN_TEST_CUDA_MODEL") : MODEL;
    if (bn_model_load(f->ctx, path, &mp, &f->m) != BN_OK) fail_msg("%s", bn_ctx_errmsg(f->ctx));
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = 64;
    assert_int_equal(bn_model_state_new(f->m, &sp, &f->st), BN_OK);
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 64;
    cp.n_batch = n_batch;
    if (bn_cuda_model_new(f->m, &cp, &f->g) != BN_OK) fail_msg("%s", bn_ctx_errmsg(f->ctx));
    f->V = bn_model_n_vocab(f->m);
}

static void close_model(fixture *f)
{
    bn_cuda_model_free(f->g);
    bn_model_state_free(f->st);
    bn_model_free(f->m);
    bn_ctx_free(f->ctx);
}

/* max |a - b| over n, which must stay under 0.1% of the largest |a| */
static double check_close(const float *a, const float *b, int64_t n, const char *what)
{
    double d = 0.0, amax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        amax = fmax(amax, fabs((double)a[i]));
        if (isnan(b[i])) fail_msg("%s: NaN at %lld", what, (long long)i);
    }
    if (!(d <= 1e-3 * amax)) fail_msg("%s: max |diff| %g, largest logit %g", what, d, amax);
    return d;
}

static int32_t argmax(const float *v, int64_t n)
{
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return (int32_t)b;
}

/* A prompt of 13 tokens in batches of n_batch with the logits of its last 3, then 12
 * greedy steps, CPU and emulated GPU side by side. */
static void compare_forward(int head_type, int64_t n_batch)
{
    fixture f;
    open_model(&f, head_type, n_batch);
    int32_t prompt[13];
    for (int i = 0; i < 13; i++) prompt[i] = (int32_t)((i * 7919 + 13) % f.V);
    float *lc = malloc((size_t)(3 * f.V) * 4), *lg = malloc((size_t)(3 * f.V) * 4);
    assert_true(lc && lg);
    assert_int_equal(bn_model_eval(f.st, prompt, 13, 0, 3, lc), BN_OK);
    assert_int_equal(bn_cuda_eval(f.g, prompt, 13, 0, 3, lg), BN_OK);
    assert_int_equal(bn_cuda_pos(f.g), 13);
    check_close(lc, lg, 3 * f.V, "prompt");
    for (int step = 0; step < 12; step++) {
        int32_t tc = argmax(lc, f.V), tg = argmax(lg, f.V);
        assert_int_equal(tc, tg);
        assert_int_equal(bn_model_eval(f.st, &tc, 1, 13 + step, 1, lc), BN_OK);
        assert_int_equal(bn_cuda_eval(f.g, &tg, 1, 13 + step, 1, lg), BN_OK);
        check_close(lc, lg, f.V, "a greedy step");
    }
    /* again from position 5: the cache is rewritten from there on, as on the CPU */
    assert_int_equal(bn_model_eval(f.st, prompt + 5, 8, 5, 1, lc), BN_OK);
    assert_int_equal(bn_cuda_eval(f.g, prompt + 5, 8, 5, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "a rewind");
    bn_gpu_pool_stats s;
    bn_cuda_pool_stats(f.g, &s);
    assert_true(s.used > 0 && s.used <= s.reserved && s.n_fail == 0);
    assert_true(bn_cuda_weight_bytes(f.g) > 0 && bn_cuda_weight_bytes(f.g) < s.reserved);
    free(lc);
    free(lg);
    close_model(&f);
}

static void test_f16_head(void **state)
{
    (void)state;
    compare_forward(0, 5); /* the file's F16 head; batches of 5, 5, 3 tokens */
}

static void test_q8_head(void **state)
{
    (void)state;
    compare_forward(BN_TYPE_Q8_0, 512); /* requantized head, one batch */
}

static void test_errors(void **state)
{
    (void)state;
    fixture f;
    open_model(&f, 0, 8);
    float *l = malloc((size_t)f.V * 4);
    int32_t tok[3] = {1, 2, 3}, bad = (int32_t)f.V;
    assert_int_equal(bn_cuda_eval(f.g, tok, 3, 1, 1, l), BN_ERR_INVALID); /* past the cache */
    assert_non_null(strstr(bn_ctx_errmsg(f.ctx), "position 1 is past"));
    assert_int_equal(bn_cuda_eval(f.g, &bad, 1, 0, 1, l), BN_ERR_INVALID);
    assert_int_equal(bn_cuda_eval(f.g, tok, 0, 0, 0, l), BN_ERR_INVALID);
    assert_int_equal(bn_cuda_eval(f.g, tok, 3, 0, 4, l), BN_ERR_INVALID);
    int32_t many[65] = {0};
    assert_int_equal(bn_cuda_eval(f.g, many, 65, 0, 1, l), BN_ERR_RANGE);
    bn_cu_emu_fail_after = 3; /* the third launch fails: an error naming it, no crash */
    assert_int_equal(bn_cuda_eval(f.g, tok, 3, 0, 1, l), BN_ERR_INTERNAL);
    assert_non_null(strstr(bn_ctx_errmsg(f.ctx), "emulated failure"));
    bn_cu_emu_fail_after = 0;
    assert_int_equal(bn_cuda_eval(f.g, tok, 3, 0, 1, l), BN_OK);
    free(l);
    /* a context past the backend's limit, and no device */
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 100000;
    bn_cuda_model *g2 = NULL;
    assert_int_equal(bn_cuda_model_new(f.m, &cp, &g2), BN_ERR_RANGE);
    bn_cu_emu_devices = 0;
    assert_int_equal(bn_cuda_model_new(f.m, NULL, &g2), BN_ERR_UNSUPPORTED);
    assert_non_null(strstr(bn_ctx_errmsg(f.ctx), "CUDA: no device 0"));
    bn_cu_emu_devices = 1;
    assert_null(g2);
    close_model(&f);
}

/* The bundled model opened in *g, and a writer *w holding its keys, for a test to add its
 * tensors (changed or not) to. */
static void open_with_writer(bn_ctx *ctx, bn_gguf **g, bn_gguf_writer **w)
{
    assert_int_equal(bn_gguf_open(ctx, MODEL, g), BN_OK);
    assert_int_equal(bn_gguf_writer_new(w), BN_OK);
    for (int64_t i = 0; i < bn_gguf_n_kv(*g); i++)
        assert_int_equal(bn_gguf_writer_copy_kv(*w, *g, i), BN_OK);
}

/* Writes w to a new file named from the template path (mkstemp), frees w and closes g. */
static void write_and_close(bn_ctx *ctx, bn_gguf_writer *w, bn_gguf *g, char *path)
{
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(bn_gguf_writer_write(ctx, w, path), BN_OK);
    bn_gguf_writer_free(w);
    bn_gguf_close(g);
}

/* A model with a low-rank correction (convert --lowrank) is refused with a line naming the
 * layer, not run without it: the bundled model plus a rank-1 correction of blk.0.attn_q. */
static void test_lowrank_refused(void **state)
{
    (void)state;
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    bn_gguf *g;
    bn_gguf_writer *w;
    open_with_writer(ctx, &g, &w);
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        assert_int_equal(
                bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size),
                BN_OK);
    }
    const bn_gguf_tensor *q = bn_gguf_find_tensor(g, "blk.0.attn_q.weight");
    assert_non_null(q);
    const int64_t K = q->ne[0], N = q->ne[1];
    float *fa = calloc((size_t)(K + N), sizeof *fa);
    assert_non_null(fa);
    fa[0] = 0.01f;
    assert_int_equal(bn_gguf_writer_add_tensor(w, "blk.0.attn_q.lowrank_a", BN_TYPE_F32, 2,
                                               (const int64_t[]){K, 1}, fa, (size_t)K * 4),
                     BN_OK);
    assert_int_equal(bn_gguf_writer_add_tensor(w, "blk.0.attn_q.lowrank_b", BN_TYPE_F32, 2,
                                               (const int64_t[]){1, N}, fa + K, (size_t)N * 4),
                     BN_OK);
    char path[] = "/tmp/test_cuda_emu_lowrankXXXXXX";
    write_and_close(ctx, w, g, path);
    free(fa);
    bn_model *m;
    if (bn_model_load(ctx, path, NULL, &m) != BN_OK) fail_msg("%s", bn_ctx_errmsg(ctx));
    bn_cuda_model *gm = NULL;
    assert_int_equal(bn_cuda_model_new(m, NULL, &gm), BN_ERR_UNSUPPORTED);
    assert_null(gm);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "blk.0.attn_q has a low-rank correction"));
    bn_model_free(m);
    unlink(path);
    bn_ctx_free(ctx);
}

static bn_model_state *gpu_state(const fixture *f, bn_cuda_model *g, int64_t n_ctx);

/* A model whose blk.0.attn_q is kept at 8 bits (convert --mixed, Q8_0 rows): refused with a
 * line naming the layer and the -ngl that leaves it on the CPU, which then runs and agrees
 * with the CPU forward. */
static void test_mixed_refused(void **state)
{
    (void)state;
    bn_ctx *ctx;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 2}), BN_OK);
    bn_gguf *g;
    bn_gguf_writer *w;
    open_with_writer(ctx, &g, &w);
    bn_block_q8_0 *q8 = NULL;
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (strcmp(t->name, "blk.0.attn_q.weight")) {
            assert_int_equal(bn_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                                       t->data, t->size),
                             BN_OK);
            continue;
        }
        const int64_t K = t->ne[0], N = t->ne[1];
        float *row = malloc((size_t)K * sizeof *row);
        q8 = malloc((size_t)(N * K / 32) * sizeof *q8);
        assert_true(row && q8);
        for (int64_t r = 0; r < N; r++) {
            for (int64_t k = 0; k < K; k++) row[k] = 0.02f * (float)((r * 7 + k * 3) % 5 - 2);
            bn_quantize_row_q8_0(row, q8 + r * (K / 32), K);
        }
        free(row);
        assert_int_equal(bn_gguf_writer_add_tensor(w, t->name, BN_TYPE_Q8_0, 2, t->ne, q8,
                                                   (size_t)(N * K / 32) * sizeof *q8),
                         BN_OK);
    }
    char path[] = "/tmp/test_cuda_emu_mixedXXXXXX";
    write_and_close(ctx, w, g, path);
    free(q8);
    fixture f = {.ctx = ctx};
    if (bn_model_load(ctx, path, NULL, &f.m) != BN_OK) fail_msg("%s", bn_ctx_errmsg(ctx));
    f.V = bn_model_n_vocab(f.m);
    const int64_t L = bn_model_hparams_get(f.m)->n_layer;
    bn_cuda_model *gm = NULL;
    assert_int_equal(bn_cuda_model_new(f.m, NULL, &gm), BN_ERR_UNSUPPORTED);
    assert_null(gm);
    assert_non_null(strstr(bn_ctx_errmsg(ctx), "blk.0.attn_q is kept at q8_0"));
    char hint[64];
    snprintf(hint, sizeof hint, "-ngl %lld leaves it on the CPU", (long long)(L - 1));
    assert_non_null(strstr(bn_ctx_errmsg(ctx), hint));
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 64;
    cp.n_layers = (int)L - 1;
    if (bn_cuda_model_new(f.m, &cp, &gm) != BN_OK) fail_msg("%s", bn_ctx_errmsg(ctx));
    bn_model_state *cpu = NULL, *st = gpu_state(&f, gm, 64);
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = 64;
    assert_int_equal(bn_model_state_new(f.m, &sp, &cpu), BN_OK);
    int32_t prompt[9];
    for (int i = 0; i < 9; i++) prompt[i] = (int32_t)((i * 577 + 1) % f.V);
    float *lc = malloc((size_t)f.V * 4), *lg = malloc((size_t)f.V * 4);
    assert_true(lc && lg);
    assert_int_equal(bn_model_eval(cpu, prompt, 9, 0, 1, lc), BN_OK);
    assert_int_equal(bn_model_eval(st, prompt, 9, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "a mixed layer on the CPU, the rest on the GPU");
    free(lc);
    free(lg);
    bn_model_state_free(st);
    bn_model_state_free(cpu);
    bn_cuda_model_free(gm);
    bn_model_free(f.m);
    unlink(path);
    bn_ctx_free(ctx);
}

static int n_shrink_logs;
static void log_fn(bn_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == BN_LOG_WARN && strstr(msg, "shrink_ctx to 128")) n_shrink_logs++;
}

/* A device short of memory: the default context is halved until the pool fits (logged,
 * counted), and the model still agrees with the CPU; an explicit context is not shrunk. */
static void test_shrink_ctx(void **state)
{
    (void)state;
    fixture f;
    open_model(&f, 0, 512);
    bn_cuda_model_free(f.g);
    f.g = NULL;
    assert_int_equal(bn_cuda_model_new(f.m, NULL, &f.g), BN_OK); /* context 256 */
    int shrinks = -1;
    assert_int_equal(bn_cuda_n_ctx(f.g, &shrinks), 256);
    assert_int_equal(shrinks, 0);
    bn_gpu_pool_stats s;
    bn_cuda_pool_stats(f.g, &s);
    bn_cuda_model_free(f.g);
    f.g = NULL;
    bn_cu_emu_mem_limit = s.reserved - 1;
    bn_set_log(log_fn, NULL);
    assert_int_equal(bn_cuda_model_new(f.m, NULL, &f.g), BN_OK);
    bn_set_log(NULL, NULL);
    assert_int_equal(bn_cuda_n_ctx(f.g, &shrinks), 128);
    assert_int_equal(shrinks, 1);
    assert_int_equal(n_shrink_logs, 1);
    int32_t tok[4] = {5, 6, 7, 8};
    float *lc = malloc((size_t)f.V * 4), *lg = malloc((size_t)f.V * 4);
    assert_int_equal(bn_model_eval(f.st, tok, 4, 0, 1, lc), BN_OK);
    assert_int_equal(bn_cuda_eval(f.g, tok, 4, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "a shrunk context");
    free(lc);
    free(lg);
    bn_cuda_model_free(f.g);
    f.g = NULL;
    /* asked for 256: no shrinking, an error naming the bytes */
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 256;
    assert_int_equal(bn_cuda_model_new(f.m, &cp, &f.g), BN_ERR_NOMEM);
    assert_non_null(strstr(bn_ctx_errmsg(f.ctx), "a context of 256"));
    /* nothing fits even at 64 tokens */
    bn_cu_emu_mem_limit = 1 << 20;
    assert_int_equal(bn_cuda_model_new(f.m, NULL, &f.g), BN_ERR_NOMEM);
    assert_non_null(strstr(bn_ctx_errmsg(f.ctx), "a context of 64"));
    bn_cu_emu_mem_limit = 0;
    assert_null(f.g);
    close_model(&f);
}

/* A model state with the GPU layers of g, at a context of n_ctx. */
static bn_model_state *gpu_state(const fixture *f, bn_cuda_model *g, int64_t n_ctx)
{
    bn_model_state_params sp;
    bn_model_state_params_init(&sp);
    sp.n_ctx = n_ctx;
    sp.gpu = g;
    bn_model_state *st = NULL;
    if (bn_model_state_new(f->m, &sp, &st) != BN_OK) fail_msg("%s", bn_ctx_errmsg(f->ctx));
    return st;
}

/* -ngl N as llama.cpp counts it: the last N layers on the (emulated) GPU, the rest and the
 * LM head on the CPU, the head too past n_layer; the logits of a prompt in batches, greedy
 * steps, a rewind and a batch of two sequences agree with the CPU forward for every N. */
static void offload_case(fixture *f, int ngl, const int32_t *prompt, float *lc, float *lg)
{
    const int64_t L = bn_model_hparams_get(f->m)->n_layer;
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 64;
    cp.n_batch = 5;
    cp.n_layers = ngl;
    cp.n_seq = 2;
    bn_cuda_model *g = NULL;
    if (bn_cuda_model_new(f->m, &cp, &g) != BN_OK) fail_msg("%s", bn_ctx_errmsg(f->ctx));
    assert_int_equal(bn_cuda_first_layer(g), ngl >= L ? 0 : L - ngl);
    assert_int_equal(bn_cuda_has_head(g), ngl > L);
    bn_model_state *st = gpu_state(f, g, 64), *st2 = gpu_state(f, g, 64);
    assert_int_equal(bn_model_state_gpu_layers(st), ngl > L ? L : ngl);
    assert_false(bn_model_state_gpu_resident(st));
    bn_model_state_reset(f->st);
    assert_int_equal(bn_model_eval(f->st, prompt, 13, 0, 3, lc), BN_OK);
    assert_int_equal(bn_model_eval(st, prompt, 13, 0, 3, lg), BN_OK);
    assert_true(bn_model_state_gpu_resident(st));
    check_close(lc, lg, 3 * f->V, "-ngl: a prompt");
    for (int step = 0; step < 6; step++) {
        const int32_t tc = argmax(lc + 2 * f->V, f->V), tg = argmax(lg + 2 * f->V, f->V);
        assert_int_equal(tc, tg);
        assert_int_equal(bn_model_eval(f->st, &tc, 1, 13 + step, 1, lc + 2 * f->V), BN_OK);
        assert_int_equal(bn_model_eval(st, &tg, 1, 13 + step, 1, lg + 2 * f->V), BN_OK);
        check_close(lc + 2 * f->V, lg + 2 * f->V, f->V, "-ngl: a greedy step");
    }
    assert_int_equal(bn_model_eval(f->st, prompt + 5, 8, 5, 1, lc), BN_OK);
    assert_int_equal(bn_model_eval(st, prompt + 5, 8, 5, 1, lg), BN_OK);
    check_close(lc, lg, f->V, "-ngl: a rewind");
    /* two sequences in one call (one after the other with GPU layers), each as alone */
    const int32_t *toks[2] = {prompt, prompt + 3};
    const int64_t n_tok[2] = {1, 4};
    float *louts[2] = {lg, lg + f->V};
    bn_model_state *sts[2] = {st, st2};
    assert_int_equal(bn_model_eval_batch(sts, 2, toks, n_tok, louts), BN_OK);
    assert_int_equal(bn_model_state_pos(st), 14);
    assert_int_equal(bn_model_eval(f->st, prompt, 1, 13, 1, lc), BN_OK);
    check_close(lc, lg, f->V, "-ngl: a batch, sequence 0");
    assert_int_equal(bn_model_eval(f->st, prompt + 3, 4, 0, 1, lc), BN_OK);
    check_close(lc, lg + f->V, f->V, "-ngl: a batch, sequence 1");
    bn_gpu_pool_stats s;
    bn_cuda_pool_stats(g, &s);
    assert_true(s.n_fail == 0 && s.used <= s.reserved);
    /* the device holds the GPU layers (and the head) only */
    assert_true(bn_cuda_weight_bytes(g) > 0);
    bn_model_state_free(st);
    bn_model_state_free(st2);
    bn_cuda_model_free(g);
}

static void test_offload_layers(void **state)
{
    (void)state;
    fixture f;
    open_model(&f, BN_TYPE_Q8_0, 512);
    const int64_t L = bn_model_hparams_get(f.m)->n_layer;
    int32_t prompt[13];
    for (int i = 0; i < 13; i++) prompt[i] = (int32_t)((i * 4099 + 7) % f.V);
    float *lc = malloc((size_t)(3 * f.V) * 4), *lg = malloc((size_t)(3 * f.V) * 4);
    assert_true(lc && lg);
    const int ngls[] = {1, (int)L / 2, (int)L, (int)L + 1, 99};
    size_t prev = 0;
    for (size_t i = 0; i < sizeof ngls / sizeof ngls[0]; i++)
        offload_case(&f, ngls[i], prompt, lc, lg);
    /* fewer layers, fewer device bytes */
    for (int ngl = 1; ngl <= (int)L + 1; ngl++) {
        bn_cuda_params cp;
        bn_cuda_params_init(&cp);
        cp.n_ctx = 64;
        cp.n_layers = ngl;
        bn_cuda_model *g;
        assert_int_equal(bn_cuda_model_new(f.m, &cp, &g), BN_OK);
        assert_true(bn_cuda_weight_bytes(g) > prev);
        prev = bn_cuda_weight_bytes(g);
        /* bn_cuda_eval needs every layer and the head on the GPU */
        assert_int_equal(bn_cuda_eval(g, prompt, 2, 0, 1, lg), ngl > L ? BN_OK : BN_ERR_INVALID);
        bn_cuda_model_free(g);
    }
    /* a state wants logits of the GPU head only when it is there */
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_layers = -1;
    bn_cuda_model *g = NULL;
    assert_int_equal(bn_cuda_model_new(f.m, &cp, &g), BN_ERR_RANGE);
    free(lc);
    free(lg);
    close_model(&f);
}

/* The idle states whose GPU cache a pressure response may evict (a server's idle slots). */
typedef struct idle_set {
    bn_model_state *st[2];
    int n_calls;
} idle_set;

static size_t evict_idle(bn_gpu_pool *pool, size_t need, void *user)
{
    (void)pool, (void)need;
    idle_set *is = user;
    is->n_calls++;
    size_t got = 0;
    for (int i = 0; i < 2; i++)
        if (is->st[i]) got += bn_model_state_gpu_evict(is->st[i]);
    return got;
}

/* Blocks of size bytes from pool until it has no room (no pressure response set). */
static int fill(bn_gpu_pool *pool, size_t size, void **blk, int max)
{
    int n = 0;
    while (n < max && bn_gpu_pool_alloc(pool, size, &blk[n]) == BN_OK) n++;
    assert_true(n < max);
    return n;
}

/* Memory pressure on the GPU pool with states of partial offload: a new sequence's cache
 * evicts an idle one's (evict_kv; the evicted one starts again at 0), then takes a halved
 * context (shrink_ctx), then runs on the CPU (cpu_layers); each counted, and the logits of
 * every one equal to the CPU's. */
static void test_pressure(void **state)
{
    (void)state;
    fixture f;
    open_model(&f, BN_TYPE_Q8_0, 512);
    bn_model_state_free(f.st);
    bn_model_state_params rp;
    bn_model_state_params_init(&rp);
    rp.n_ctx = 256;
    assert_int_equal(bn_model_state_new(f.m, &rp, &f.st), BN_OK);
    bn_cuda_params cp;
    bn_cuda_params_init(&cp);
    cp.n_ctx = 256;
    cp.n_layers = 2;
    bn_cuda_model *g = NULL;
    if (bn_cuda_model_new(f.m, &cp, &g) != BN_OK) fail_msg("%s", bn_ctx_errmsg(f.ctx));
    bn_gpu_pool *pool = bn_cuda_pool(g);
    const bn_model_hparams *h = bn_model_hparams_get(f.m);
    const size_t cache = (size_t)(2 * 256 * h->n_head_kv * h->head_dim * 2); /* K or V */
    void *blk[1024], *small[1024];
    int nb = fill(pool, cache, blk, 1024);
    assert_int_equal(bn_gpu_pool_dealloc(pool, blk[--nb]), BN_OK); /* room for one sequence */
    assert_int_equal(bn_gpu_pool_dealloc(pool, blk[--nb]), BN_OK);
    int32_t prompt[13];
    for (int i = 0; i < 13; i++) prompt[i] = (int32_t)((i * 31 + 3) % f.V);
    float *lc = malloc((size_t)f.V * 4), *lg = malloc((size_t)f.V * 4);
    assert_true(lc && lg);
    assert_int_equal(bn_model_eval(f.st, prompt, 13, 0, 1, lc), BN_OK);
    bn_model_state *a = gpu_state(&f, g, 256), *b = gpu_state(&f, g, 256);
    assert_int_equal(bn_model_eval(a, prompt, 13, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "pressure: the first sequence");
    /* evict_kv: b's cache takes a's, which is idle */
    idle_set is = {.st = {a, NULL}};
    bn_gpu_pool_set_pressure(pool, BN_GPU_PRESSURE_EVICT_KV, evict_idle, &is);
    assert_int_equal(bn_model_eval(b, prompt, 13, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "pressure: after evict_kv");
    assert_int_equal(is.n_calls, 1);
    assert_false(bn_model_state_gpu_resident(a));
    assert_int_equal(bn_model_state_pos(a), 0);
    assert_int_equal(bn_model_eval(a, prompt, 1, 13, 1, lg), BN_ERR_INVALID); /* emptied */
    is.st[0] = b; /* a again, from the start: b is idle now */
    assert_int_equal(bn_model_eval(a, prompt, 13, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "pressure: evicted and evaluated again");
    assert_false(bn_model_state_gpu_resident(b));
    bn_gpu_pool_stats s;
    bn_cuda_pool_stats(g, &s);
    assert_int_equal(s.n_pressure[BN_GPU_PRESSURE_EVICT_KV], 2);
    assert_true(s.n_rescued >= 2);
    /* shrink_ctx: nothing idle, room for half a context */
    bn_gpu_pool_set_pressure(pool, BN_GPU_PRESSURE_EVICT_KV, NULL, NULL);
    assert_int_equal(bn_gpu_pool_dealloc(pool, blk[--nb]), BN_OK);
    bn_model_state *c = gpu_state(&f, g, 256);
    assert_int_equal(bn_model_eval(c, prompt, 13, 0, 1, lg), BN_OK);
    check_close(lc, lg, f.V, "pressure: a shrunk context");
    assert_int_equal(bn_model_state_n_ctx(c), 128);
    assert_int_equal(bn_model_state_gpu_layers(c), 2);
    bn_cuda_pool_stats(g, &s);
    assert_int_equal(s.n_pressure[BN_GPU_PRESSURE_SHRINK_CTX], 1);
    /* cpu_layers: no room at all (the size classes' slabs cannot be had either) */
    int ns = fill(pool, 64 * 1024 + 256, small, 1024);
    ns += fill(pool, 64 * 1024, small + ns, 1024 - ns); /* the free slots of the 64 KiB class */
    bn_model_state *d = gpu_state(&f, g, 256);
    assert_int_equal(bn_model_eval(d, prompt, 13, 0, 1, lg), BN_OK);
    assert_memory_equal(lc, lg, (size_t)f.V * 4); /* all on the CPU: the same bits */
    assert_int_equal(bn_model_state_gpu_layers(d), 0);
    assert_int_equal(bn_model_state_n_ctx(d), 256);
    bn_cuda_pool_stats(g, &s);
    assert_int_equal(s.n_pressure[BN_GPU_PRESSURE_CPU_LAYERS], 1);
    assert_int_equal(s.n_pressure[BN_GPU_PRESSURE_SHRINK_CTX], 3); /* 128, then 64 tried */
    assert_int_equal(bn_gpu_pool_check(pool), BN_OK);
    for (int i = 0; i < ns; i++) bn_gpu_pool_dealloc(pool, small[i]);
    for (int i = 0; i < nb; i++) bn_gpu_pool_dealloc(pool, blk[i]);
    bn_model_state_free(a);
    bn_model_state_free(b);
    bn_model_state_free(c);
    bn_model_state_free(d);
    assert_int_equal(bn_gpu_pool_check(pool), BN_OK);
    bn_cuda_model_free(g);
    free(lc);
    free(lg);
    close_model(&f);
}

/* ---- serve -ngl: evict_kv over the slots (app/serve/serve_gpu.c) ------------------------ */

static cm_model *open_cm(int ngl, int seqs)
{
    cm_model_params mp;
    cm_model_params_init(&mp);
    mp.path = MODEL;
    mp.n_threads = 2;
    mp.n_gpu_layers = ngl;
    mp.gpu_seq = seqs;
    mp.gpu_ctx = 256;
    cm_model *m = NULL;
    char err[512];
    if (cm_model_open(&mp, &m, err, sizeof err) != BN_OK) fail_msg("%s", err);
    return m;
}

static cm_session *greedy_session(cm_model *m)
{
    cm_session_params sp;
    cm_session_params_init(&sp);
    sp.n_ctx = 256;
    bn_sampler_params smp = bn_sampler_params_default();
    smp.temperature = 0.0f;
    cm_session *s = NULL;
    char err[512];
    if (cm_session_new(m, &sp, &smp, &s, err, sizeof err) != BN_OK) fail_msg("%s", err);
    return s;
}

/* A turn: text appended, 4 greedy tokens; the sequence's tokens after it into out. */
static size_t turn(cm_session *s, const char *text, int32_t *out)
{
    assert_int_equal(cm_session_tokenize(s, text, strlen(text), 0, NULL), BN_OK);
    cm_gen g = {.n_predict = 4, .ignore_eog = 1};
    cm_result r;
    assert_int_equal(cm_session_generate(s, &g, &r), BN_OK);
    memcpy(out, cm_session_tokens(s), cm_session_n_tokens(s) * sizeof *out);
    return cm_session_n_tokens(s);
}

static size_t evict_slots(bn_gpu_pool *pool, size_t need, void *user)
{
    (void)pool;
    int n = 0;
    const size_t got = srv_gpu_evict_idle(user, 3, need, &n);
    assert_true(n > 0 || got == 0);
    return got;
}

static int resident(cm_session *s)
{
    return bn_model_state_gpu_resident(cm_session_state(s));
}

/* Three slots on a device with room for two KV caches: a busy slot's request evicts the idle
 * slot used the longest ago (never a busy one); the evicted slot's next turn evaluates its
 * whole conversation again; every turn's tokens equal those of the CPU alone. */
static void test_serve_evict(void **state)
{
    (void)state;
    cm_model *m1 = open_cm(2, 1), *m2 = open_cm(2, 2);
    bn_gpu_pool_stats s1, s2;
    bn_cuda_pool_stats(cm_model_gpu(m1), &s1);
    bn_cuda_pool_stats(cm_model_gpu(m2), &s2);
    cm_model_free(m1);
    cm_model_free(m2);
    assert_true(s2.reserved > s1.reserved);
    bn_cu_emu_mem_limit = s2.reserved; /* three slots asked, room for two */
    cm_model *m = open_cm(2, 3), *cpu = open_cm(0, 0);
    bn_cu_emu_mem_limit = 0;
    assert_int_equal(bn_cuda_n_seq(cm_model_gpu(m)), 2);
    assert_null(cm_model_gpu(cpu));
    cm_session *ref = greedy_session(cpu);
    srv_gpu_slot gs[3];
    for (int i = 0; i < 3; i++) gs[i] = (srv_gpu_slot){.id = i, .sess = greedy_session(m)};
    bn_gpu_pool *pool = bn_cuda_pool(cm_model_gpu(m));
    /* the pool's slack for size classes taken: room for two sequences' caches exactly */
    const bn_model_hparams *h = bn_model_hparams_get(cm_model_bn(m));
    void *blk[1024];
    int nb = fill(pool, (size_t)(2 * 256 * h->n_head_kv * h->head_dim * 2), blk, 1024);
    assert_true(nb >= 4);
    for (int i = 0; i < 4; i++) assert_int_equal(bn_gpu_pool_dealloc(pool, blk[--nb]), BN_OK);
    bn_gpu_pool_set_pressure(pool, BN_GPU_PRESSURE_EVICT_KV, evict_slots, gs);
    int32_t a[256], b[256];
    const char *prompts[3] = {"Once upon a time", "The little dog", "A big red ball"};
    for (int i = 0; i < 2; i++) { /* slots 0 and 1 hold the two caches */
        gs[i].busy = 1;
        const size_t n = turn(gs[i].sess, prompts[i], a);
        cm_session_reset(ref);
        assert_int_equal(turn(ref, prompts[i], b), n);
        assert_memory_equal(a, b, n * sizeof *a);
        gs[i].busy = 0, gs[i].last_used = 10.0 - i; /* slot 1 is the older */
    }
    assert_true(resident(gs[0].sess) && resident(gs[1].sess));
    gs[2].busy = 1; /* slot 2's request: slot 1 goes */
    const size_t n2 = turn(gs[2].sess, prompts[2], a);
    cm_session_reset(ref);
    assert_int_equal(turn(ref, prompts[2], b), n2);
    assert_memory_equal(a, b, n2 * sizeof *a);
    assert_true(resident(gs[0].sess) && !resident(gs[1].sess) && resident(gs[2].sess));
    assert_int_equal(cm_session_n_evaluated(gs[1].sess), 0);
    assert_true(cm_session_n_tokens(gs[1].sess) > 0); /* its conversation is kept */
    bn_gpu_pool_stats st;
    bn_cuda_pool_stats(cm_model_gpu(m), &st);
    assert_int_equal(st.n_pressure[BN_GPU_PRESSURE_EVICT_KV], 1);
    /* slot 1's next turn: its conversation again from the first token, 0 (busy) and 2
     * (idle, the older) */
    gs[0].busy = 1, gs[1].busy = 1, gs[2].busy = 0, gs[2].last_used = 1.0;
    const size_t n1 = turn(gs[1].sess, " and then", a);
    cm_session_reset(ref);
    turn(ref, prompts[1], b);
    assert_int_equal(turn(ref, " and then", b), n1);
    assert_memory_equal(a, b, n1 * sizeof *a);
    assert_true(resident(gs[0].sess) && resident(gs[1].sess) && !resident(gs[2].sess));
    /* all busy: no slot is evicted; slot 2 gets a shrunk context or the CPU */
    gs[2].busy = 1;
    const size_t n3 = turn(gs[2].sess, prompts[0], a);
    cm_session_reset(ref);
    turn(ref, prompts[2], b);
    assert_int_equal(turn(ref, prompts[0], b), n3);
    assert_memory_equal(a, b, n3 * sizeof *a);
    assert_true(resident(gs[0].sess) && resident(gs[1].sess));
    bn_cuda_pool_stats(cm_model_gpu(m), &st);
    assert_true(st.n_pressure[BN_GPU_PRESSURE_SHRINK_CTX] +
                        st.n_pressure[BN_GPU_PRESSURE_CPU_LAYERS] >
                0);
    for (int i = 0; i < 3; i++) cm_session_free(gs[i].sess);
    for (int i = 0; i < nb; i++) assert_int_equal(bn_gpu_pool_dealloc(pool, blk[i]), BN_OK);
    assert_int_equal(bn_gpu_pool_check(pool), BN_OK);
    cm_session_free(ref);
    cm_model_free(m);
    cm_model_free(cpu);
}

static void test_bench_gemv(void **state)
{
    (void)state;
    bn_ctx *ctx = NULL;
    assert_int_equal(bn_ctx_new(&ctx, &(bn_ctx_params){.n_threads = 1}), BN_OK);
    bn_cuda_gemv_bench b;
    assert_int_equal(bn_cuda_bench_gemv(ctx, 0, 70, 300, 2, 1 << 20, &b), BN_OK);
    assert_true(b.max_diff == 0.0); /* the product equals the CPU reference to the bit */
    assert_int_equal(b.stack, (1 << 20) / (72 * 96)); /* 1 MiB of 72 rows of 96 code bytes */
    assert_true(b.gemv_us > 0.0 && b.copy_gbs > 0.0);
    assert_int_equal(bn_cuda_bench_gemv(ctx, 1, 70, 300, 2, 1 << 20, &b), BN_ERR_UNSUPPORTED);
    bn_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_f16_head),        cmocka_unit_test(test_q8_head),
            cmocka_unit_test(test_lowrank_refused), cmocka_unit_test(test_errors),
            cmocka_unit_test(test_shrink_ctx),      cmocka_unit_test(test_bench_gemv),
            cmocka_unit_test(test_offload_layers),  cmocka_unit_test(test_pressure),
            cmocka_unit_test(test_serve_evict),     cmocka_unit_test(test_mixed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
