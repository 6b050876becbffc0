/* model_common.c - shared options, model opening and text helpers of the model commands. */
#include "common/model_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/file.h"
#include "bitnet/kernels.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/utf8.h"

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
    if (!strcmp(a, "--lm-head") || !strcmp(a, "--head")) {
        const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
        if (!v || (strcmp(v, "q8_0") && strcmp(v, "q6") && strcmp(v, "q4") && strcmp(v, "keep")))
            return cli_usage_error(cmd, "%s needs q8_0, q6, q4 or keep", a), -1;
        o->head_keep = !strcmp(v, "keep");
        o->head_type = !strcmp(v, "q6")   ? BN_MODEL_HEAD_Q6H
                       : !strcmp(v, "q4") ? BN_MODEL_HEAD_Q4H
                                          : 0;
        ++*i;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        dst = &o->threads, hi = 1024;
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx"))
        dst = &o->n_ctx, hi = BN_MODEL_MAX_CTX;
    else if (!strcmp(a, "--batch"))
        dst = &o->n_batch, hi = 1 << 16;
    else if (!strcmp(a, "-ngl") || !strcmp(a, "--gpu-layers") || !strcmp(a, "--n-gpu-layers"))
        dst = &o->gpu_layers, lo = 0, hi = 1 << 20, o->gpu_given = 1;
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

void mc_sampling_init(mc_sampling *s)
{
    memset(s, 0, sizeof *s);
    s->sp = bn_sampler_params_default();
}

static int parse_float(const char *cmd, const char *opt, const char *v, float lo, float hi,
                       float *out)
{
    char *end;
    const double d = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(d >= lo && d <= hi))
        return cli_usage_error(cmd, "%s: '%s' is not a number in [%g, %g]", opt, v ? v : "",
                               (double)lo, (double)hi),
               -1;
    *out = (float)d;
    return 1;
}

static int parse_int32(const char *cmd, const char *opt, const char *v, long hi, int32_t *out)
{
    long l;
    if (!v || cli_parse_long(v, 0, hi, &l))
        return cli_usage_error(cmd, "%s: '%s' is not a number in [0, %ld]", opt, v ? v : "", hi),
               -1;
    *out = (int32_t)l;
    return 1;
}

static int parse_seed(const char *cmd, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    const unsigned long long u = v && *v && *v != '-' ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *v == '-' || *end || errno)
        return cli_usage_error(cmd, "--seed: bad value '%s'", v ? v : ""), -1;
    *out = u;
    return 1;
}

int mc_parse_sampling_opt(const char *cmd, int argc, char **argv, int *i, mc_sampling *s)
{
    static const struct {
        const char *name;
        unsigned given;
    } opts[] = {
            {"--temp", MC_GIVEN_TEMP},
            {"--top-k", MC_GIVEN_TOP_K},
            {"--top-p", MC_GIVEN_TOP_P},
            {"--min-p", MC_GIVEN_MIN_P},
            {"--repeat-penalty", MC_GIVEN_REPEAT_PENALTY},
            {"--repeat-last-n", 0},
            {"--seed", MC_GIVEN_SEED},
    };
    const char *a = argv[*i];
    size_t k = 0;
    while (k < sizeof opts / sizeof opts[0] && strcmp(a, opts[k].name)) k++;
    if (k == sizeof opts / sizeof opts[0]) return 0;
    if (*i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", a), -1;
    const char *v = argv[++*i];
    bn_sampler_params *p = &s->sp;
    int r;
    switch (k) {
    case 0:
        r = parse_float(cmd, a, v, 0.0f, 1e6f, &p->temperature);
        break;
    case 1:
        r = parse_int32(cmd, a, v, 1L << 24, &p->top_k);
        break;
    case 2:
        r = parse_float(cmd, a, v, 0.0f, 1.0f, &p->top_p);
        break;
    case 3:
        r = parse_float(cmd, a, v, 0.0f, 1.0f, &p->min_p);
        break;
    case 4:
        r = parse_float(cmd, a, v, 1e-3f, 1e3f, &p->repeat_penalty);
        break;
    case 5:
        r = parse_int32(cmd, a, v, BN_SAMPLER_MAX_LAST_N, &p->repeat_last_n);
        break;
    default:
        r = parse_seed(cmd, v, &p->seed);
        break;
    }
    if (r > 0) s->given |= opts[k].given;
    return r;
}

/* The first line of path (without blanks around it) into buf; 0 or -1. */
static int read_first_line(const char *path, char *buf, size_t size)
{
    FILE *f = bn_file_fopen_read(path, NULL, 0);
    if (!f) return -1;
    const int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    size_t n = strlen(buf), b = 0;
    while (n > 0 && strchr(" \t\r\n", buf[n - 1])) buf[--n] = '\0';
    while (buf[b] == ' ' || buf[b] == '\t') b++;
    memmove(buf, buf + b, n - b + 1);
    return buf[0] ? 0 : -1;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int mc_bundled_model(char *buf, size_t size, char *err, size_t errsz)
{
    char dir[MC_PATH_MAX], name[MC_PATH_MAX];
    if (bn_bundled_models_dir(dir, sizeof dir) != 0) return 1;
    int n = snprintf(buf, size, "%s/DEFAULT", dir);
    if (n > 0 && (size_t)n < size && read_first_line(buf, name, sizeof name) == 0) {
        n = name[0] == '/' ? snprintf(buf, size, "%s", name)
                           : snprintf(buf, size, "%s/%s", dir, name);
        if (n > 0 && (size_t)n < size && is_file(buf)) return 0;
        snprintf(err, errsz, "%s/DEFAULT names '%s', which is not a file", dir, name);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) return 1;
    int found = 0;
    name[0] = '\0';
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".gguf") || e->d_name[0] == '.') continue;
        n = snprintf(buf, size, "%s/%s", dir, e->d_name);
        if (n <= 0 || (size_t)n >= size || !is_file(buf)) continue;
        if (found++ == 0) snprintf(name, sizeof name, "%s", e->d_name);
    }
    closedir(d);
    if (found > 1) {
        snprintf(err, errsz, "%d models in %s and no DEFAULT file naming one", found, dir);
        return -1;
    }
    if (!found) return 1;
    n = snprintf(buf, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size ? 0 : 1;
}

static int default_model(const char *cmd, const bn_config *cfg, mc_opts *o)
{
    const char *m = bn_config_get_str(cfg, "model");
    if (m && *m) {
        if ((size_t)snprintf(o->model_buf, sizeof o->model_buf, "%s", m) >= sizeof o->model_buf)
            return cli_usage_error(cmd, "the config's model path is too long");
        o->model = o->model_buf;
        o->model_from = "config";
        return -1;
    }
    char err[MC_PATH_MAX + 128] = "";
    const int r = mc_bundled_model(o->model_buf, sizeof o->model_buf, err, sizeof err);
    if (r == 0) {
        o->model = o->model_buf;
        o->model_from = "bundled";
        return -1;
    }
    if (r < 0)
        return cli_usage_error(cmd,
                               "no model: %s; pass -m MODEL.gguf or set one with "
                               "'bitnet config set model FILE'",
                               err);
    return cli_usage_error(cmd, "no model: pass -m MODEL.gguf, or set a default with "
                                "'bitnet config set model FILE' (or BITNET_MODEL)");
}

static void sampling_defaults(const bn_config *cfg, mc_sampling *s)
{
    bn_sampler_params *p = &s->sp;
    if (!(s->given & MC_GIVEN_TEMP)) p->temperature = (float)bn_config_get_double(cfg, "temp");
    if (!(s->given & MC_GIVEN_TOP_K)) p->top_k = (int32_t)bn_config_get_int(cfg, "top_k");
    if (!(s->given & MC_GIVEN_TOP_P)) p->top_p = (float)bn_config_get_double(cfg, "top_p");
    if (!(s->given & MC_GIVEN_MIN_P)) p->min_p = (float)bn_config_get_double(cfg, "min_p");
    if (!(s->given & MC_GIVEN_REPEAT_PENALTY))
        p->repeat_penalty = (float)bn_config_get_double(cfg, "repeat_penalty");
    if (!(s->given & MC_GIVEN_SEED)) {
        const long long seed = bn_config_get_int(cfg, "seed");
        p->seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    }
}

int mc_apply_defaults(const char *cmd, unsigned what, mc_opts *o, mc_sampling *s)
{
    bn_config *cfg;
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(&cfg, err, sizeof err) != 0) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    int rc = -1;
    if (o->model)
        o->model_from = "-m";
    else
        rc = default_model(cmd, cfg, o);
    if (!o->gpu_given) o->gpu_layers = (long)bn_config_get_int(cfg, "gpu_layers");
    if ((what & MC_DEF_THREADS) && !o->threads)
        o->threads = (long)bn_config_get_int(cfg, "threads");
    if ((what & MC_DEF_CTX) && !o->n_ctx) {
        o->n_ctx = (long)bn_config_get_int(cfg, "ctx");
        o->ctx_soft = o->n_ctx > 0;
    }
    if (s) sampling_defaults(cfg, s);
    bn_config_free(cfg);
    return rc;
}

/* The model as every model command opens it (the LM head requantized unless head_keep,
 * to head_type, 0: Q8_0). */
static void model_params(const char *path, long threads, int head_keep, int head_type,
                         cm_model_params *mp)
{
    cm_model_params_init(mp);
    mp->path = path;
    mp->n_threads = (int)threads;
    mp->head_keep = head_keep;
    mp->head_type = head_type;
}

int mc_check_loadable(const char *path, char *why, size_t whysz)
{
    cm_model_params mp;
    model_params(path, 0, 1, 0, &mp); /* the file's head: no requantizing */
    cm_model *m;
    char err[1024];
    if (cm_model_open(&mp, &m, err, sizeof err) != BN_OK) {
        const size_t n = strlen(path);
        /* the loader's reason without the "PATH: " cm_model_open puts first */
        snprintf(why, whysz, "%s", !strncmp(err, path, n) && err[n] == ':' ? err + n + 2 : err);
        return -1;
    }
    cm_model_free(m);
    return 0;
}

int mc_open(const mc_opts *o, long def_ctx, mc_session *s)
{
    memset(s, 0, sizeof *s);
    cm_session_params sp;
    cm_session_params_init(&sp);
    sp.n_ctx = o->n_ctx ? o->n_ctx : def_ctx;
    sp.clamp = !o->n_ctx || o->ctx_soft;
    sp.n_batch = o->n_batch;
    sp.kv_f32 = o->kv_f32;
    cm_model_params mp;
    model_params(o->model, o->threads, o->head_keep, o->head_type, &mp);
    mp.n_gpu_layers = (int)o->gpu_layers;
    mp.gpu_ctx = sp.n_ctx;
    mp.gpu_batch = sp.n_batch;
    char err[1024];
    if (cm_model_open(&mp, &s->cm, err, sizeof err) != BN_OK) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    if (cm_session_new(s->cm, &sp, NULL, &s->sess, err, sizeof err) != BN_OK) {
        cli_error("%s", err);
        mc_close(s);
        return BN_EXIT_FAIL;
    }
    s->ctx = cm_model_ctx(s->cm);
    s->model = cm_model_bn(s->cm);
    s->tok = cm_model_tok(s->cm);
    s->st = cm_session_state(s->sess);
    s->load_seconds = cm_model_load_seconds(s->cm);
    return BN_EXIT_OK;
}

void mc_close(mc_session *s)
{
    cm_session_free(s->sess);
    cm_model_free(s->cm);
    memset(s, 0, sizeof *s);
}

/* "64 MiB", "1 GiB": a limit for messages. */
static void size_text(size_t n, char *buf, size_t size)
{
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, size, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", n >> 20);
    else
        snprintf(buf, size, "%zu bytes", n);
}

static void close_text(FILE *f)
{
    if (f != stdin) fclose(f);
}

static char *too_large(const char *path, size_t max, FILE *f, char *buf)
{
    char lim[32];
    size_text(max, lim, sizeof lim);
    cli_error("%s: larger than %s, the limit for this file", path, lim);
    free(buf);
    close_text(f);
    return NULL;
}

/* Reads all of f (closed here unless it is stdin) with a limit of max bytes. */
static char *read_bounded(const char *path, FILE *f, size_t max, size_t *len)
{
    struct stat sb; /* a regular file tells its size: refuse without reading */
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max)
        return too_large(path, max, f, NULL);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n > max) return too_large(path, max, f, buf);
        if (r == 0) break;
        if (n == cap) {
            const size_t nc = cap > max / 2 ? max + 1 : cap * 2; /* max + 1: sees "more" */
            char *nb = realloc(buf, nc + 1);
            if (!nb) free(buf);
            buf = nb;
            cap = nc;
        }
    }
    if (!buf || ferror(f)) {
        cli_error("cannot read %s: %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        close_text(f);
        return NULL;
    }
    close_text(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *mc_read_text(const char *path, size_t max, size_t *len)
{
    char why[512];
    FILE *f = bn_file_fopen_read(path, why, sizeof why); /* a FIFO or a device: refused */
    if (!f) {
        cli_error("%s", why);
        return NULL;
    }
    return read_bounded(path, f, max, len);
}

/* A pipe, opened without waiting for a writer: one that is being written (-f <(cmd), or a
 * writer waiting in open) is read to its end; one nobody writes reads as empty at once, an
 * error rather than a wait. */
static char *read_fifo(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), flags;
    FILE *f = NULL;
    if (fd < 0 || (flags = fcntl(fd, F_GETFL)) < 0 ||
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 || !(f = fdopen(fd, "rb"))) {
        cli_error("cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    char *text = read_bounded(path, f, MC_TEXT_MAX, len);
    if (text && *len == 0) {
        cli_error("%s: a FIFO with nothing written to it (no writer)", path);
        free(text);
        return NULL;
    }
    return text;
}

char *mc_read_prompt(const char *path, size_t *len)
{
    if (!strcmp(path, "-")) return read_bounded("standard input", stdin, MC_TEXT_MAX, len);
    struct stat sb; /* a pipe (-f <(cmd), /dev/stdin) is what a user gives on purpose */
    if (stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode)) return read_fifo(path, len);
    return mc_read_text(path, MC_TEXT_MAX, len);
}

char *mc_read_file(const char *path, size_t *len)
{
    return mc_read_text(path, (size_t)1 << 30, len);
}

char *mc_utf8_clean(const char *s, size_t len)
{
    return bn_utf8_clean(s, len);
}

const char *mc_kernels_name(void)
{
    return bn_kernels_get()->name;
}
