/* cmd_train.c - `bitnet train`: quantization-aware training of a BitNet b1.58 model on text
 * files, with validation, checkpoints (also on Ctrl-C) and resume; `bitnet train export`
 * writes a checkpoint as a bitnet-b1.58 GGUF. */
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/bpe_train.h"
#include "bitnet/gguf.h"
#include "bitnet/train.h"
#include "common/history.h"
#include "common/model_common.h"

#define EXIT_INTERRUPTED 130
#define MAX_DATA_FILES   64

void cmd_train_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet train --data FILE... --out DIR [options]\n"
            "       bitnet train export CHECKPOINT -o FILE.gguf [--type TYPE] [--force] [--json]\n"
            "       bitnet train bench [--config NAME] [-t 1,2] [--steps N] [--batch B]\n"
            "                          [--ctx T] [--vocab V] [--fp32] [--json]\n\n"
            "Trains a BitNet b1.58 model (ternary weights, int8 activations, fake-quantized in\n"
            "the forward pass, straight-through gradients to f32 master weights) on text files.\n"
            "The last --val-frac of the tokens is held out; validation loss and perplexity are\n"
            "printed every --eval-every steps. DIR receives checkpoint.bin (every --save-every\n"
            "steps, at the end, and on Ctrl-C, which finishes the step, saves and exits 130),\n"
            "tokenizer.gguf, and model.gguf (i2_s) at the end (--fp32: model-ptq.gguf, the f32\n"
            "weights ternarized after training). --resume continues bit-exactly\n"
            "from DIR/checkpoint.bin (model and hyper-parameters come from the checkpoint).\n"
            "A DIR that holds another run's files (checkpoint.bin, model.gguf,\n"
            "model-ptq.gguf, tokenizer.gguf) is refused unless --resume continues that run\n"
            "or --force starts over, replacing them; an input (--data, --tokenizer) is never\n"
            "replaced.\n\n"
            "Options:\n"
            "  --data FILE...     text files (UTF-8; \"<|endoftext|>\" marks document ends; an\n"
            "                     end-of-text token follows each file)\n"
            "  --out DIR          output directory (created)\n"
            "  --config NAME      tiny (default), small, or a JSON file with dim, n_layer,\n"
            "                     n_head, n_kv_head, ffn_dim, ctx_len, rope_theta, norm_eps\n"
            "  --tokenizer FILE   a gpt2 vocabulary GGUF (bitnet tokenizer train); default:\n"
            "                     bytes (257 tokens)\n"
            "  --steps N          optimisation steps (default 1000)\n"
            "  --batch B          sequences per step (default 8)\n"
            "  --ctx T            tokens per sequence (default 256)\n"
            "  --lr LR            peak learning rate (default 2e-3); --min-lr (default lr/10)\n"
            "  --warmup N         warm-up steps (default 5%% of steps)\n"
            "  --weight-decay W   AdamW decay of matrices (default 0.1)\n"
            "  --grad-clip G      global gradient norm limit (default 1; 0: off)\n"
            "  --val-frac F       held-out fraction (default 0.05)\n"
            "  --seed S           initialisation and data order (default 1)\n"
            "  --fp32             no quantization (the f32 twin, for comparison)\n"
            "  --threads N        threads (default: one per core)\n"
            "  --eval-every N     validation interval in steps (default 100; 0: only at the end)\n"
            "  --eval-batches N   validation batches per evaluation (default 16; 0: all; the\n"
            "                     last evaluation uses all)\n"
            "  --save-every N     checkpoint interval in steps (default 500; 0: only at the end)\n"
            "  --log-every N      progress line interval (default 10)\n"
            "  --resume           continue from DIR/checkpoint.bin\n"
            "  --force            start over in a DIR that holds another run's files\n"
            "  --json             progress as one JSON object per line\n"
            "  -h, --help         this help\n\n"
            "Export options:\n"
            "  -o FILE            the GGUF to write (its folder must exist)\n"
            "  --force            replace an existing FILE (never the checkpoint)\n"
            "  --type TYPE        i2_s (default), tq2_0, tq1_0, or f16 / f32 (unquantized)\n\n"
            "Bench: training speed (tokens/s) on random tokens, after one warm-up step, for\n"
            "each thread count of -t (default 1,2); --steps (default 5), --vocab (default "
            "2048).\n\n"
            "Exit status: 0 ok, 1 failure, 2 usage error, 130 interrupted (checkpoint saved).\n");
}

/* ---- options ------------------------------------------------------------------------------- */

typedef struct train_opts {
    const char *data[MAX_DATA_FILES];
    int n_data;
    const char *out, *config, *tokenizer;
    long steps, batch, ctx, warmup, threads, seed;
    long eval_every, eval_batches, save_every, log_every;
    double lr, min_lr, weight_decay, grad_clip, val_frac;
    int fp32, resume, force, json;
    cm_hist_run *hist; /* this run in the history (NULL: not recorded) */
} train_opts;

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse_long_opt(const char *a, const char *v, long lo, long hi, long *out)
{
    if (!v) return cli_usage_error("train", "%s needs a value", a);
    if (cli_parse_long(v, lo, hi, out))
        return cli_usage_error("train", "%s: '%s' is not an integer in [%ld, %ld]", a, v, lo, hi);
    return 0;
}

static int parse_double_opt(const char *a, const char *v, double lo, double hi, double *out)
{
    if (!v) return cli_usage_error("train", "%s needs a value", a);
    if (parse_double(v, lo, hi, out))
        return cli_usage_error("train", "%s: '%s' is not a number in [%g, %g]", a, v, lo, hi);
    return 0;
}

/* Options that take an integer: name, bounds, field. */
static long *long_field(train_opts *o, const char *a, long *lo, long *hi)
{
    static const struct {
        const char *name;
        long lo, hi;
        size_t off;
    } t[] = {
            {"--steps", 1, 100000000, offsetof(train_opts, steps)},
            {"--batch", 1, 4096, offsetof(train_opts, batch)},
            {"--ctx", 2, 65536, offsetof(train_opts, ctx)},
            {"--warmup", 0, 100000000, offsetof(train_opts, warmup)},
            {"--threads", 1, 1024, offsetof(train_opts, threads)},
            {"--seed", 0, 2147483647, offsetof(train_opts, seed)},
            {"--eval-every", 0, 100000000, offsetof(train_opts, eval_every)},
            {"--eval-batches", 0, 1000000, offsetof(train_opts, eval_batches)},
            {"--save-every", 0, 100000000, offsetof(train_opts, save_every)},
            {"--log-every", 1, 100000000, offsetof(train_opts, log_every)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(a, t[i].name) == 0) {
            *lo = t[i].lo;
            *hi = t[i].hi;
            return (long *)((char *)o + t[i].off);
        }
    }
    return NULL;
}

static double *double_field(train_opts *o, const char *a, double *lo, double *hi)
{
    static const struct {
        const char *name;
        double lo, hi;
        size_t off;
    } t[] = {
            {"--lr", 1e-9, 10.0, offsetof(train_opts, lr)},
            {"--min-lr", 0.0, 10.0, offsetof(train_opts, min_lr)},
            {"--weight-decay", 0.0, 10.0, offsetof(train_opts, weight_decay)},
            {"--grad-clip", 0.0, 1e6, offsetof(train_opts, grad_clip)},
            {"--val-frac", 0.0, 0.9, offsetof(train_opts, val_frac)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(a, t[i].name) == 0) {
            *lo = t[i].lo;
            *hi = t[i].hi;
            return (double *)((char *)o + t[i].off);
        }
    }
    return NULL;
}

/* 0 ok, 1 help printed, 2 usage error */
static int parse_train_args(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->batch = 8;
    o->ctx = 256;
    o->warmup = -1;
    o->seed = 1;
    o->eval_every = 100;
    o->eval_batches = 16;
    o->save_every = 500;
    o->log_every = 10;
    o->lr = 2e-3;
    o->min_lr = -1.0;
    o->weight_decay = 0.1;
    o->grad_clip = 1.0;
    o->val_frac = 0.05;
    int in_data = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lo, hi, *lf;
        double dlo, dhi, *df;
        if (a[0] != '-' && in_data) {
            if (o->n_data == MAX_DATA_FILES)
                return cli_usage_error("train", "at most %d data files", MAX_DATA_FILES);
            o->data[o->n_data++] = a;
            continue;
        }
        in_data = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_train_help(stdout);
            return 1;
        } else if (!strcmp(a, "--data")) {
            in_data = 1;
        } else if (!strcmp(a, "--fp32")) {
            o->fp32 = 1;
        } else if (!strcmp(a, "--resume")) {
            o->resume = 1;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--config") || !strcmp(a, "--tokenizer")) {
            if (!v) return cli_usage_error("train", "%s needs a value", a);
            *(a[2] == 'o' ? &o->out : a[2] == 'c' ? &o->config : &o->tokenizer) = v;
            i++;
        } else if ((lf = long_field(o, a, &lo, &hi)) != NULL) {
            if (parse_long_opt(a, v, lo, hi, lf)) return 2;
            i++;
        } else if ((df = double_field(o, a, &dlo, &dhi)) != NULL) {
            if (parse_double_opt(a, v, dlo, dhi, df)) return 2;
            i++;
        } else
            return cli_usage_error("train", "unknown option '%s'", a);
    }
    if (!o->out) return cli_usage_error("train", "--out DIR is required");
    if (!o->n_data) return cli_usage_error("train", "--data FILE is required");
    return 0;
}

/* ---- model shape ---------------------------------------------------------------------------- */

static int config_from_json(const char *path, bn_train_model_config *c)
{
    size_t len;
    char *text = mc_read_file(path, &len);
    if (!text) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j)) {
        cli_error("%s: not a JSON object", path);
        cJSON_Delete(j);
        return -1;
    }
    int rc = 0;
    for (cJSON *it = j->child; it && rc == 0; it = it->next) {
        int32_t *ip = !strcmp(it->string, "dim")         ? &c->dim
                      : !strcmp(it->string, "n_layer")   ? &c->n_layer
                      : !strcmp(it->string, "n_head")    ? &c->n_head
                      : !strcmp(it->string, "n_kv_head") ? &c->n_kv_head
                      : !strcmp(it->string, "ffn_dim")   ? &c->ffn_dim
                      : !strcmp(it->string, "ctx_len")   ? &c->ctx_len
                                                         : NULL;
        float *fp = !strcmp(it->string, "rope_theta") ? &c->rope_theta
                    : !strcmp(it->string, "norm_eps") ? &c->norm_eps
                                                      : NULL;
        if ((!ip && !fp) || !cJSON_IsNumber(it)) {
            cli_error("%s: unknown key or non-numeric value '%s'", path, it->string);
            rc = -1;
        } else if (ip) {
            if (it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e9) {
                cli_error("%s: %s must be an integer", path, it->string);
                rc = -1;
            } else
                *ip = (int32_t)it->valuedouble;
        } else
            *fp = (float)it->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

/* ---- data --------------------------------------------------------------------------------------
 */

/* The tokenizer: the given GGUF, or the byte-level one; its GGUF bytes in *gguf (free()). */
static bn_bpe *load_tokenizer(bn_ctx *ctx, const train_opts *o, char **gguf, size_t *glen)
{
    bn_bpe *bpe = NULL;
    char path[4096];
    const char *src = o->tokenizer;
    if (!src) {
        /* 256 bytes and <|endoftext|>: training on no text makes no merges */
        bn_bpe_params p = {257, 2};
        const char *t[] = {""};
        const size_t l[] = {0};
        snprintf(path, sizeof path, "%s/tokenizer.gguf", o->out);
        if (bn_bpe_train(ctx, t, l, 1, &p, &bpe) != BN_OK ||
            bn_bpe_write_gguf(ctx, bpe, path) != BN_OK) {
            cli_error("%s", bn_ctx_errmsg(ctx));
            bn_bpe_free(bpe);
            return NULL;
        }
        bn_bpe_free(bpe);
        bpe = NULL;
        src = path;
    }
    *gguf = mc_read_file(src, glen);
    if (!*gguf) return NULL;
    bn_gguf *g;
    bn_status rc = bn_gguf_open_memory(ctx, *gguf, *glen, &g);
    if (rc == BN_OK) {
        rc = bn_bpe_from_gguf(ctx, g, &bpe);
        bn_gguf_close(g);
    }
    if (rc != BN_OK) {
        cli_error("%s: %s", src, bn_ctx_errmsg(ctx));
        free(*gguf);
        *gguf = NULL;
        return NULL;
    }
    return bpe;
}

/* All files' tokens, an end-of-text token after each; NULL on failure (printed). */
static int32_t *tokenize_files(const bn_bpe *bpe, const train_opts *o, size_t *n_out)
{
    int32_t *all = NULL;
    size_t n = 0;
    for (int f = 0; f < o->n_data; f++) {
        size_t len, k;
        char *text = mc_read_file(o->data[f], &len);
        if (!text) goto fail;
        int32_t *ids;
        bn_status rc = bn_bpe_encode(bpe, text, len, 1, &ids, &k);
        free(text);
        if (rc != BN_OK) {
            cli_error("%s: cannot tokenize: %s", o->data[f], bn_status_str(rc));
            goto fail;
        }
        int32_t *grown = realloc(all, (n + k + 1) * sizeof *all);
        if (!grown) {
            bn_free(ids);
            cli_error("out of memory (tokens)");
            goto fail;
        }
        all = grown;
        memcpy(all + n, ids, k * sizeof *ids);
        n += k;
        bn_free(ids);
        if (bn_bpe_eos(bpe) >= 0) all[n++] = bn_bpe_eos(bpe);
    }
    *n_out = n;
    return all;
fail:
    free(all);
    return NULL;
}

/* ---- progress -------------------------------------------------------------------------------- */

/* One JSON object on one line (--json progress), freed. */
static void json_line(cJSON *d)
{
    char *s = d ? cJSON_PrintUnformatted(d) : NULL;
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(d);
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    if (g_stop) _exit(EXIT_INTERRUPTED); /* a second Ctrl-C: leave now */
    g_stop = sig;
}

static void fmt_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e8) s = 0;
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static void print_step(const train_opts *o, const bn_train_stats *st, int64_t steps, double tps,
                       double eta, double elapsed)
{
    if (o->json) {
        printf("{\"event\":\"step\",\"step\":%lld,\"steps\":%lld,\"epoch\":%lld,\"loss\":%.6f,"
               "\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,\"eta_s\":%.1f,"
               "\"elapsed_s\":%.1f}\n",
               (long long)st->step, (long long)steps, (long long)st->epoch, st->loss, st->lr,
               st->grad_norm, tps, eta, elapsed);
    } else {
        char e[32];
        fmt_duration(eta, e, sizeof e);
        printf("step %6lld/%lld | loss %.4f | lr %.2e | norm %6.3f | %7.0f tok/s | ETA %s\n",
               (long long)st->step, (long long)steps, st->loss, st->lr, st->grad_norm, tps, e);
    }
    fflush(stdout);
}

/* Validation on --eval-batches batches, or on the whole split when full. */
static int run_eval(const train_opts *o, bn_trainer *tr, bn_ctx *ctx, double *vl, int full)
{
    int64_t nt;
    if (bn_trainer_eval(tr, full ? 0 : (int)o->eval_batches, vl, &nt) != BN_OK) {
        cli_error("validation: %s", bn_ctx_errmsg(ctx));
        return -1;
    }
    const long long step = (long long)bn_trainer_step_count(tr);
    if (o->json)
        printf("{\"event\":\"eval\",\"step\":%lld,\"val_loss\":%.6f,\"val_ppl\":%.4f,"
               "\"val_tokens\":%lld}\n",
               step, *vl, exp(*vl), (long long)nt);
    else
        printf("eval step %lld: val loss %.4f, perplexity %.3f (%lld tokens)\n", step, *vl,
               exp(*vl), (long long)nt);
    fflush(stdout);
    return 0;
}

static int save(const train_opts *o, bn_trainer *tr, bn_ctx *ctx, const char *path)
{
    if (bn_trainer_save(tr, path) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        return -1;
    }
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "event", "checkpoint");
        cJSON_AddNumberToObject(d, "step", (double)bn_trainer_step_count(tr));
        cJSON_AddStringToObject(d, "path", path);
        json_line(d);
    } else
        printf("checkpoint: %s (step %lld)\n", path, (long long)bn_trainer_step_count(tr));
    fflush(stdout);
    return 0;
}

/* ---- the training run ------------------------------------------------------------------------ */

static bn_trainer *make_trainer(const train_opts *o, bn_ctx *ctx, int32_t vocab, const char *ckpt)
{
    bn_trainer *tr = NULL;
    if (o->resume) {
        if (bn_trainer_load(ctx, ckpt, &tr) != BN_OK) cli_error("%s", bn_ctx_errmsg(ctx));
        return tr;
    }
    bn_train_model_config c;
    const char *name = o->config ? o->config : "tiny";
    if (bn_train_config_preset(name, vocab, &c) != BN_OK) {
        bn_train_config_preset("tiny", vocab, &c);
        if (config_from_json(name, &c)) return NULL;
    }
    if (c.ctx_len < o->ctx) c.ctx_len = (int32_t)o->ctx;
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = (int32_t)o->batch;
    hp.seq_len = (int32_t)o->ctx;
    hp.steps = o->steps;
    hp.warmup = o->warmup >= 0 ? o->warmup : o->steps / 20;
    hp.lr = (float)o->lr;
    hp.min_lr = (float)(o->min_lr >= 0 ? o->min_lr : o->lr / 10);
    hp.weight_decay = (float)o->weight_decay;
    hp.grad_clip = (float)o->grad_clip;
    hp.val_frac = (float)o->val_frac;
    hp.seed = (uint64_t)o->seed;
    hp.fp32 = o->fp32;
    if (bn_trainer_new(ctx, &c, &hp, &tr) != BN_OK) cli_error("%s", bn_ctx_errmsg(ctx));
    return tr;
}

static void print_start(const train_opts *o, bn_trainer *tr, size_t n_tokens, int threads)
{
    const bn_train_model_config *c = bn_trainer_config(tr);
    const bn_train_hparams *hp = bn_trainer_hparams(tr);
    if (o->json) {
        printf("{\"event\":\"start\",\"params\":%zu,\"vocab\":%d,\"dim\":%d,\"n_layer\":%d,"
               "\"n_head\":%d,\"n_kv_head\":%d,\"ffn_dim\":%d,\"batch\":%d,\"ctx\":%d,"
               "\"steps\":%lld,\"fp32\":%s,\"train_tokens\":%zu,\"val_tokens\":%zu,"
               "\"threads\":%d,\"resumed_at\":%lld}\n",
               bn_trainer_param_count(tr), c->vocab_size, c->dim, c->n_layer, c->n_head,
               c->n_kv_head, c->ffn_dim, hp->batch, hp->seq_len, (long long)hp->steps,
               hp->fp32 ? "true" : "false", bn_trainer_n_train_tokens(tr),
               bn_trainer_n_val_tokens(tr), threads, (long long)bn_trainer_step_count(tr));
    } else {
        printf("model: %zu parameters (vocab %d, dim %d, %d layers, %d/%d heads, ffn %d), %s\n",
               bn_trainer_param_count(tr), c->vocab_size, c->dim, c->n_layer, c->n_head,
               c->n_kv_head, c->ffn_dim, hp->fp32 ? "f32" : "ternary (QAT)");
        printf("data: %zu tokens (%zu train, %zu validation); batch %d x %d; %lld steps; "
               "%d threads%s\n",
               n_tokens, bn_trainer_n_train_tokens(tr), bn_trainer_n_val_tokens(tr), hp->batch,
               hp->seq_len, (long long)hp->steps, threads, o->resume ? " (resumed)" : "");
        if (o->resume)
            printf("resuming at step %lld (model and hyper-parameters from the checkpoint)\n",
                   (long long)bn_trainer_step_count(tr));
    }
    fflush(stdout);
}

/* The loop: steps, progress, evaluation, checkpoints; 0, 1 or 130. */
static int train_loop(const train_opts *o, bn_trainer *tr, bn_ctx *ctx, const char *ckpt)
{
    const int64_t steps = bn_trainer_hparams(tr)->steps, first = bn_trainer_step_count(tr);
    const double t0 = bn_time_now();
    double t_log = t0, t_eval = 0.0, vl = NAN;
    int64_t tok_log = 0;
    while (bn_trainer_step_count(tr) < steps) {
        bn_train_stats st;
        if (bn_trainer_step(tr, &st) != BN_OK) {
            cli_error("step %lld: %s", (long long)bn_trainer_step_count(tr) + 1,
                      bn_ctx_errmsg(ctx));
            return BN_EXIT_FAIL;
        }
        tok_log += st.tokens;
        const int64_t s = st.step;
        if (s % o->log_every == 0 || s == first + 1 || s == steps || g_stop) {
            const double now = bn_time_now();
            const double per_step = (now - t0 - t_eval) / (double)(s - first);
            print_step(o, &st, steps, tok_log / (now - t_log), per_step * (double)(steps - s),
                       now - t0);
            t_log = now;
            tok_log = 0;
        }
        if (o->eval_every > 0 && s % o->eval_every == 0 && s < steps) {
            const double te = bn_time_now();
            if (run_eval(o, tr, ctx, &vl, 0)) return BN_EXIT_FAIL;
            t_eval += bn_time_now() - te;
            t_log += bn_time_now() - te;
        }
        if ((o->save_every > 0 && s % o->save_every == 0 && s < steps) || g_stop) {
            if (save(o, tr, ctx, ckpt)) return BN_EXIT_FAIL;
        }
        if (g_stop) {
            fprintf(stderr, "bitnet train: interrupted at step %lld; resume with --resume\n",
                    (long long)s);
            cm_hist_metric(o->hist, "steps", (double)s);
            return EXIT_INTERRUPTED;
        }
    }
    if (run_eval(o, tr, ctx, &vl, 1) || save(o, tr, ctx, ckpt)) return BN_EXIT_FAIL;
    const double wall = bn_time_now() - t0;
    cm_hist_metric(o->hist, "steps", (double)steps);
    cm_hist_metric(o->hist, "val_loss", vl);
    cm_hist_metric(o->hist, "val_ppl", exp(vl));
    cm_hist_metric(o->hist, "seconds", wall);
    cm_hist_metric(o->hist, "tokens_per_s",
                   (double)(steps - first) * bn_trainer_hparams(tr)->batch *
                           bn_trainer_hparams(tr)->seq_len / (wall - t_eval));
    if (o->json)
        printf("{\"event\":\"done\",\"step\":%lld,\"val_loss\":%.6f,\"val_ppl\":%.4f,"
               "\"wall_s\":%.1f,\"train_tokens_per_s\":%.1f}\n",
               (long long)steps, vl, exp(vl), wall,
               (double)(steps - first) * bn_trainer_hparams(tr)->batch *
                       bn_trainer_hparams(tr)->seq_len / (wall - t_eval));
    else
        printf("done: %lld steps in %.1f s; validation loss %.4f, perplexity %.3f\n",
               (long long)steps, wall, vl, exp(vl));
    return BN_EXIT_OK;
}

/* DIR/model.gguf (I2_S). An f32 run's file is its post-training ternarization, named
 * model-ptq.gguf so that it is not taken for a QAT model. */
static int export_final(const train_opts *o, bn_trainer *tr, bn_ctx *ctx)
{
    char path[4096];
    const int ptq = bn_trainer_hparams(tr)->fp32;
    snprintf(path, sizeof path, "%s/%s", o->out, ptq ? "model-ptq.gguf" : "model.gguf");
    const bn_status rc = bn_trainer_export_gguf(tr, path, BN_TYPE_I2_S);
    if (rc == BN_ERR_UNSUPPORTED) {
        fprintf(stderr, "bitnet train: no model.gguf: %s\n", bn_ctx_errmsg(ctx));
        return BN_EXIT_OK;
    }
    if (rc != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        return BN_EXIT_FAIL;
    }
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "event", "export");
        cJSON_AddStringToObject(d, "path", path);
        cJSON_AddStringToObject(d, "type", "i2_s");
        cJSON_AddBoolToObject(d, "post_training_quantized", ptq);
        json_line(d);
    } else
        printf("model: %s (i2_s%s)\n", path,
               ptq ? "; f32 weights ternarized after training, for comparison" : "");
    return BN_EXIT_OK;
}

/* The files a run writes in DIR, checked before any work starts: none may be an input
 * (--data, --tokenizer), even with --force; an existing one belongs to another run and is
 * replaced only with --force, or with --resume, which continues the run that wrote them. */
static int check_outputs(const train_opts *o, const char *ckpt)
{
    const char *const names[] = {"model.gguf", "model-ptq.gguf", "tokenizer.gguf"};
    const char *inputs[MAX_DATA_FILES + 1];
    int n = 0;
    for (int i = 0; i < o->n_data; i++) inputs[n++] = o->data[i];
    inputs[n++] = o->tokenizer;
    struct stat st;
    if (!o->resume && !o->force && lstat(ckpt, &st) == 0) {
        cli_error("train: %s exists (--resume continues that run, --force starts over)", ckpt);
        return BN_EXIT_FAIL;
    }
    if (cli_check_output("train", ckpt, 1, inputs, n)) return BN_EXIT_FAIL;
    /* tokenizer.gguf is written only when no --tokenizer is given */
    for (size_t i = 0; i < sizeof names / sizeof names[0] - (o->tokenizer != NULL); i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o->out, names[i]);
        if (cli_check_output("train", path, o->force || o->resume, inputs, n)) return BN_EXIT_FAIL;
    }
    return 0;
}

static int cmd_train_export(int argc, char **argv);
static int cmd_train_bench(int argc, char **argv);

int cmd_train(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return cmd_train_export(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) return cmd_train_bench(argc - 1, argv + 1);
    train_opts o;
    int rc = parse_train_args(argc, argv, &o);
    if (rc) return rc == 1 ? BN_EXIT_OK : BN_EXIT_USAGE;
    cm_hist_run *h = cm_hist_begin("train", NULL, cm_hist_params_argv(argc, argv));
    o.hist = h;
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        cli_error("cannot create %s: %s", o.out, strerror(errno));
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", o.out);
    if (check_outputs(&o, ckpt)) {
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    bn_ctx *ctx;
    bn_ctx_params cp = {(int)o.threads};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot create the engine context");
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    char *gguf = NULL;
    size_t glen = 0, n_tok = 0;
    int32_t *tokens = NULL;
    bn_bpe *bpe = NULL;
    bn_trainer *tr = NULL;
    rc = BN_EXIT_FAIL;
    if (o.resume) {
        if (!(tr = make_trainer(&o, ctx, 0, ckpt))) goto done;
        const void *tb = bn_trainer_tokenizer(tr, &glen);
        bn_gguf *g;
        if (!glen || bn_gguf_open_memory(ctx, tb, glen, &g) != BN_OK) {
            cli_error("%s: the checkpoint holds no readable tokenizer", ckpt);
            goto done;
        }
        bn_status s = bn_bpe_from_gguf(ctx, g, &bpe);
        bn_gguf_close(g);
        if (s != BN_OK) {
            cli_error("%s: %s", ckpt, bn_ctx_errmsg(ctx));
            goto done;
        }
    } else if (!(bpe = load_tokenizer(ctx, &o, &gguf, &glen)))
        goto done;
    if (!(tokens = tokenize_files(bpe, &o, &n_tok))) goto done;
    if (!tr && !(tr = make_trainer(&o, ctx, bn_bpe_n_vocab(bpe), ckpt))) goto done;
    if (bn_trainer_config(tr)->vocab_size != bn_bpe_n_vocab(bpe)) {
        cli_error("the tokenizer has %d tokens, the model %d", bn_bpe_n_vocab(bpe),
                  bn_trainer_config(tr)->vocab_size);
        goto done;
    }
    if ((gguf && bn_trainer_set_tokenizer(tr, gguf, glen) != BN_OK) ||
        bn_trainer_set_data(tr, tokens, n_tok) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        goto done;
    }
    print_start(&o, tr, n_tok, bn_ctx_n_threads(ctx));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = train_loop(&o, tr, ctx, ckpt);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == BN_EXIT_OK) rc = export_final(&o, tr, ctx);
done:
    if (rc == EXIT_INTERRUPTED)
        cm_hist_end(h, BN_RUN_CANCELLED, NULL, "interrupted; resume with --resume");
    else
        cm_hist_end_exit(h, rc, NULL, cli_last_error());
    bn_trainer_free(tr);
    bn_bpe_free(bpe);
    free(tokens);
    free(gguf);
    bn_ctx_free(ctx);
    return rc;
}

/* ---- export ------------------------------------------------------------------------------------
 */

static int cmd_train_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *type_name = "i2_s";
    int json = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_train_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--force"))
            force = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--type")) {
            if (i + 1 >= argc) return cli_usage_error("train export", "%s needs a value", a);
            *(strcmp(a, "--type") ? &out : &type_name) = argv[++i];
        } else if (a[0] == '-')
            return cli_usage_error("train export", "unknown option '%s'", a);
        else if (!ckpt)
            ckpt = a;
        else
            return cli_usage_error("train export", "one checkpoint only ('%s')", a);
    }
    if (!ckpt || !out)
        return cli_usage_error("train export", "CHECKPOINT and -o FILE are required");
    const int type = bn_type_from_name(type_name);
    if (type != BN_TYPE_I2_S && type != BN_TYPE_TQ2_0 && type != BN_TYPE_TQ1_0 &&
        type != BN_TYPE_F16 && type != BN_TYPE_F32)
        return cli_usage_error("train export", "--type: '%s' is not i2_s, tq2_0, tq1_0, f16 or f32",
                               type_name);
    if (cli_check_output("train export", out, force, &ckpt, 1)) return BN_EXIT_FAIL;
    bn_ctx *ctx;
    bn_ctx_params cp = {1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot create the engine context");
        return BN_EXIT_FAIL;
    }
    bn_trainer *tr = NULL;
    int rc = BN_EXIT_FAIL;
    if (bn_trainer_load(ctx, ckpt, &tr) != BN_OK || bn_trainer_export_gguf(tr, out, type) != BN_OK)
        cli_error("%s", bn_ctx_errmsg(ctx));
    else {
        struct stat st;
        const long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
        if (json) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "checkpoint", ckpt);
            cJSON_AddStringToObject(d, "output", out);
            cJSON_AddStringToObject(d, "type", bn_type_name(type));
            cJSON_AddNumberToObject(d, "step", (double)bn_trainer_step_count(tr));
            cJSON_AddNumberToObject(d, "params", (double)bn_trainer_param_count(tr));
            cJSON_AddNumberToObject(d, "bytes", (double)size);
            rc = cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
        } else {
            printf("%s: %s, step %lld, %zu parameters, %lld bytes\n", out, bn_type_name(type),
                   (long long)bn_trainer_step_count(tr), bn_trainer_param_count(tr), size);
            rc = BN_EXIT_OK;
        }
    }
    bn_trainer_free(tr);
    bn_ctx_free(ctx);
    return rc;
}

/* ---- bench
 * --------------------------------------------------------------------------------------- */

/* Tokens/s of n_steps training steps (after one warm-up step) with threads threads. */
static int bench_one(const bn_train_model_config *c, const bn_train_hparams *hp, int threads,
                     int n_steps, double *tps)
{
    bn_ctx *ctx;
    bn_ctx_params cp = {threads};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot create the engine context");
        return -1;
    }
    bn_trainer *tr = NULL;
    const size_t n = (size_t)hp->batch * hp->seq_len * 4 + 1;
    int32_t *tok = malloc(n * sizeof *tok);
    uint64_t s = 42;
    int rc = -1;
    if (!tok) {
        cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)c->vocab_size);
    }
    if (bn_trainer_new(ctx, c, hp, &tr) != BN_OK || bn_trainer_set_data(tr, tok, n) != BN_OK ||
        bn_trainer_step(tr, NULL) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        goto done;
    }
    const double t0 = bn_time_now();
    for (int i = 0; i < n_steps; i++)
        if (bn_trainer_step(tr, NULL) != BN_OK) {
            cli_error("%s", bn_ctx_errmsg(ctx));
            goto done;
        }
    *tps = (double)n_steps * hp->batch * hp->seq_len / (bn_time_now() - t0);
    rc = 0;
done:
    bn_trainer_free(tr);
    free(tok);
    bn_ctx_free(ctx);
    return rc;
}

static int cmd_train_bench(int argc, char **argv)
{
    const char *config = "tiny";
    int threads[16] = {1, 2}, n_threads = 2, json = 0, fp32 = 0;
    long steps = 5, batch = 8, ctx_len = 256, vocab = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *lp = !strcmp(a, "--steps")   ? &steps
                   : !strcmp(a, "--batch") ? &batch
                   : !strcmp(a, "--ctx")   ? &ctx_len
                   : !strcmp(a, "--vocab") ? &vocab
                                           : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_train_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--fp32"))
            fp32 = 1;
        else if (!strcmp(a, "--config") && v) {
            config = v;
            i++;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && v) {
            if ((n_threads = cli_parse_int_list(v, threads, 16)) < 0)
                return cli_usage_error("train bench", "%s: '%s' is not a list like 1,2", a, v);
            i++;
        } else if (lp && v) {
            if (cli_parse_long(v, lp == &vocab ? 2 : 1, lp == &ctx_len ? 65536 : 1 << 20, lp))
                return cli_usage_error("train bench", "%s: '%s' is out of range", a, v);
            i++;
        } else
            return cli_usage_error("train bench", "unknown option or missing value '%s'", a);
    }
    bn_train_model_config c;
    if (bn_train_config_preset(config, (int32_t)vocab, &c) != BN_OK) {
        bn_train_config_preset("tiny", (int32_t)vocab, &c);
        if (config_from_json(config, &c)) return BN_EXIT_FAIL;
    }
    if (c.ctx_len < ctx_len) c.ctx_len = (int32_t)ctx_len;
    bn_train_hparams hp;
    bn_train_hparams_default(&hp);
    hp.batch = (int32_t)batch;
    hp.seq_len = (int32_t)ctx_len;
    hp.val_frac = 0.0f;
    hp.fp32 = fp32;
    cJSON *doc = json ? cJSON_CreateObject() : NULL, *arr = json ? cJSON_CreateArray() : NULL;
    if (!json)
        printf("train bench: config %s (%zu parameters), batch %ld x %ld, %s, %ld steps\n", config,
               bn_train_n_params(&c), batch, ctx_len, fp32 ? "f32" : "ternary (QAT)", steps);
    for (int k = 0; k < n_threads; k++) {
        double tps;
        if (bench_one(&c, &hp, threads[k], (int)steps, &tps)) {
            cJSON_Delete(doc);
            cJSON_Delete(arr);
            return BN_EXIT_FAIL;
        }
        if (json) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "test", "train");
            cJSON_AddNumberToObject(r, "threads", threads[k]);
            cJSON_AddNumberToObject(r, "tokens_per_s", tps);
            cJSON_AddItemToArray(arr, r);
        } else
            printf("  threads %2d: %8.0f tokens/s\n", threads[k], tps);
        fflush(stdout);
    }
    if (!json) return BN_EXIT_OK;
    cJSON_AddStringToObject(doc, "config", config);
    cJSON_AddNumberToObject(doc, "params", (double)bn_train_n_params(&c));
    cJSON_AddNumberToObject(doc, "batch", (double)batch);
    cJSON_AddNumberToObject(doc, "ctx", (double)ctx_len);
    cJSON_AddBoolToObject(doc, "fp32", fp32);
    cJSON_AddItemToObject(doc, "results", arr);
    return cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
}
