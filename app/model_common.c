/* model_common.c - shared options, model opening and text helpers of the model commands. */
#include "model_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "cli.h"

int mc_parse_opt(const char *cmd, int argc, char **argv, int *i, mc_opts *o)
{
    const char *a = argv[*i];
    long *dst = NULL, lo = 1, hi = 1;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (*i + 1 >= argc) return cli_usage_error(cmd, "%s needs a file", a), -1;
        o->model = argv[++*i];
        return 1;
    }
    if (!strcmp(a, "--kv-f32")) {
        o->kv_f32 = 1;
        return 1;
    }
    if (!strcmp(a, "--lm-head")) {
        const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
        if (!v || (strcmp(v, "q8_0") && strcmp(v, "keep")))
            return cli_usage_error(cmd, "--lm-head needs q8_0 or keep"), -1;
        o->head_keep = !strcmp(v, "keep");
        ++*i;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        dst = &o->threads, hi = 1024;
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx"))
        dst = &o->n_ctx, hi = BN_MODEL_MAX_CTX;
    else if (!strcmp(a, "--batch"))
        dst = &o->n_batch, hi = 1 << 16;
    else
        return 0;
    if (*i + 1 >= argc) return cli_usage_error(cmd, "%s needs a number", a), -1;
    if (cli_parse_long(argv[*i + 1], lo, hi, dst))
        return cli_usage_error(cmd, "%s: '%s' is not a number in [%ld, %ld]", a, argv[*i + 1], lo,
                               hi),
               -1;
    ++*i;
    return 1;
}

int mc_open(const mc_opts *o, long def_ctx, mc_session *s)
{
    memset(s, 0, sizeof *s);
    bn_ctx_params cp = {.n_threads = (int)o->threads};
    bn_status rc = bn_ctx_new(&s->ctx, &cp);
    if (rc != BN_OK) {
        cli_error("cannot start: %s", bn_status_str(rc));
        return BN_EXIT_FAIL;
    }
    const double t0 = bn_time_now();
    bn_model_params mp;
    bn_model_params_init(&mp);
    mp.head_type = o->head_keep ? 0 : BN_TYPE_Q8_0;
    rc = bn_model_load(s->ctx, o->model, &mp, &s->model);
    if (rc == BN_OK) rc = bn_tokenizer_from_gguf(s->ctx, bn_model_gguf(s->model), &s->tok);
    if (rc == BN_OK) {
        bn_model_state_params sp;
        bn_model_state_params_init(&sp);
        sp.n_ctx = o->n_ctx ? o->n_ctx : def_ctx;
        if (!o->n_ctx && sp.n_ctx > bn_model_n_ctx_train(s->model))
            sp.n_ctx = bn_model_n_ctx_train(s->model);
        sp.n_batch = o->n_batch;
        sp.kv_type = o->kv_f32 ? BN_TYPE_F32 : BN_TYPE_F16;
        rc = bn_model_state_new(s->model, &sp, &s->st);
    }
    if (rc != BN_OK) {
        cli_error("%s: %s", o->model, bn_ctx_errmsg(s->ctx));
        mc_close(s);
        return BN_EXIT_FAIL;
    }
    s->load_seconds = bn_time_now() - t0;
    return BN_EXIT_OK;
}

void mc_close(mc_session *s)
{
    bn_model_state_free(s->st);
    bn_tokenizer_free(s->tok);
    bn_model_free(s->model);
    bn_ctx_free(s->ctx);
    memset(s, 0, sizeof *s);
}

char *mc_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            if (cap >= ((size_t)1 << 30)) {
                cli_error("%s: larger than 1 GiB", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (!buf || ferror(f)) {
        cli_error("cannot read %s: %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Length of the valid UTF-8 sequence at s (no overlongs, surrogates or NUL), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    const unsigned c = s[0];
    size_t k = c == 0                   ? 0
               : c < 0x80               ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : (c & 0xf0) == 0xe0     ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (k == 0 || k > left) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (k == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))) return 0;
    if (k == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))) return 0;
    return k;
}

char *mc_utf8_clean(const char *s, size_t len)
{
    if (len > ((size_t)1 << 30)) return NULL;
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const size_t k = utf8_len((const unsigned char *)s + i, len - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

const char *mc_kernels_name(void)
{
    return bn_kernels_get()->name;
}
