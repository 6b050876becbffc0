/*
 * bench_kernels.c - `bitnet bench kernels`: ternary GEMV/GEMM speed on the matrix shapes
 * of BitNet b1.58 2B4T, against the scalar reference and against the read bandwidth of
 * this machine measured in the same run.
 *
 * Method. For each shape N x K (outputs x inputs) we build enough distinct weight
 * matrices that together they are at least 128 MiB by default (well past the L3 cache), so
 * a GEMV that cycles through them reads its weights from memory, as generation does.
 * One repetition = one GEMV on every matrix in turn; its time divided by the number of
 * matrices is one per-call time (--wset sets the size of the set). The read-bandwidth probe (a
 * plain streaming sum over a buffer as large as those matrices, on the same number of threads) runs
 * interleaved with the GEMV repetitions, so both see the same state of the shared machine. We
 * report medians. bandwidth_ratio = (weight bytes / GEMV time) / (probe bytes / probe time). GEMM
 * (a batch of tokens) is compute-bound; it runs on one matrix.
 */
#include "common/cli.h"
#include "bench_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/cpu.h"
#include "bitnet/kernels.h"
#include "bitnet/threadpool.h"
#include "common/history.h"

#define BENCH_WSET_MB_DEFAULT 128
#define MAX_THREADS_LIST      8
#define MAX_KERNELS           8

typedef struct shape {
    int64_t rows, cols;
    const char *what;
} shape;

static const shape shapes_2b4t[] = {
        {2560, 2560, "attn q/o"},
        {640, 2560, "attn k/v"},
        {6912, 2560, "ffn gate/up"},
        {2560, 6912, "ffn down"},
};

typedef struct bench_opts {
    int threads[MAX_THREADS_LIST];
    int n_threads;
    int reps;     /* repetitions for SIMD kernels (>= 20 by default) */
    int ref_reps; /* repetitions for the reference kernels */
    int tokens;   /* GEMM batch */
    int json;
    int quick;
    int no_ref;
    size_t wset_bytes; /* GEMV working set */
} bench_opts;

typedef struct result {
    const char *op;
    const shape *sh;
    int tokens, threads;
    const char *kernel;
    int calls;
    double median_s;
    double probe_bps; /* GEMV only */
    double ref_median_s;
    double mac_rate; /* GEMM only: the kernel's multiply-accumulate ceiling, MACs/s */
} result;

/* ---- helpers ---------------------------------------------------------------------- */

/* The probe's buffer: n_words 64-bit words, as large as the GEMV's working set. */
typedef struct probe_job {
    const uint64_t *buf;
    int64_t n_words;
} probe_job;

/* ---- building the working set ----------------------------------------------------- */

typedef struct wset {
    bn_tmat *mats;
    int n;
    size_t bytes_each; /* weight bytes one GEMV reads */
} wset;

static void wset_release(wset *ws)
{
    for (int i = 0; i < ws->n; i++) bn_tmat_release(&ws->mats[i]);
    bn_free(ws->mats);
    memset(ws, 0, sizeof *ws);
}

static int wset_build(wset *ws, const shape *sh, int n_mats, uint64_t seed)
{
    memset(ws, 0, sizeof *ws);
    size_t n = (size_t)(sh->rows * sh->cols);
    int8_t *q = bn_malloc(n);
    ws->mats = bn_calloc((size_t)n_mats, sizeof *ws->mats);
    if (!q || !ws->mats) goto fail;
    for (int m = 0; m < n_mats; m++) {
        /* a fresh pattern every few matrices keeps it cheap but not uniform */
        if (m % 8 == 0)
            for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int)(bn_bench_rng(&seed) % 3) - 1);
        bn_status rc = bn_tmat_from_ternary(&ws->mats[m], q, NULL, 0.02f, sh->rows, sh->cols);
        if (rc != BN_OK) {
            cli_error("bench: building a %lldx%lld matrix: %s", (long long)sh->rows,
                      (long long)sh->cols, bn_status_str(rc));
            goto fail;
        }
        ws->n = m + 1;
    }
    ws->bytes_each = (size_t)(ws->mats[0].rows * ws->mats[0].row_bytes);
    bn_free(q);
    return 0;
fail:
    bn_free(q);
    wset_release(ws);
    return -1;
}

static void fill_activations(float *x, int64_t n, uint64_t *seed)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((double)(bn_bench_rng(seed) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* ---- the measurements --------------------------------------------------------------- */

static int bench_gemv(bn_threadpool *pool, const bn_kernels *k, const wset *ws, bn_qact *x,
                      float *y, probe_job *pj, int reps, double *med_s, double *probe_bps)
{
    double *t = bn_malloc(sizeof(double) * (size_t)reps);
    double *tp = bn_malloc(sizeof(double) * (size_t)reps);
    if (!t || !tp) {
        bn_free(t);
        bn_free(tp);
        return -1;
    }
    /* warm-up: one pass over the set */
    for (int m = 0; m < ws->n; m++) bn_tmatmul(pool, k, &ws->mats[m], x, y);
    for (int r = 0; r < reps; r++) {
        if (pj) tp[r] = bn_bench_probe_seconds(pool, pj->buf, pj->n_words, NULL);
        double t0 = bn_time_now();
        for (int m = 0; m < ws->n; m++) bn_tmatmul(pool, k, &ws->mats[m], x, y);
        t[r] = (bn_time_now() - t0) / ws->n;
    }
    *med_s = bn_bench_median(t, reps);
    if (pj) *probe_bps = (double)pj->n_words * 8.0 / bn_bench_median(tp, reps);
    bn_free(t);
    bn_free(tp);
    return 0;
}

static int bench_gemm(bn_threadpool *pool, const bn_kernels *k, const bn_tmat *w, bn_qact *x,
                      float *y, int reps, double *med_s)
{
    double *t = bn_malloc(sizeof(double) * (size_t)reps);
    if (!t) return -1;
    bn_tmatmul(pool, k, w, x, y);
    for (int r = 0; r < reps; r++) {
        double t0 = bn_time_now();
        bn_tmatmul(pool, k, w, x, y);
        t[r] = bn_time_now() - t0;
    }
    *med_s = bn_bench_median(t, reps);
    bn_free(t);
    return 0;
}

/* ---- output ----------------------------------------------------------------------- */

static double weight_bytes(const result *r)
{
    /* 2 bits per weight of the padded row, as the kernels read them */
    int64_t kpad = (r->sh->cols + BN_TMAT_KBLOCK - 1) / BN_TMAT_KBLOCK * BN_TMAT_KBLOCK;
    return (double)r->sh->rows * (double)kpad / 4.0;
}

static double gops(const result *r)
{
    return 2.0 * (double)r->sh->rows * (double)r->sh->cols * r->tokens / r->median_s * 1e-9;
}

/* GEMM multiply-adds per second over the kernel's ceiling (0 when not measured). */
static double mac_ratio(const result *r)
{
    if (r->mac_rate <= 0) return 0.0;
    return (double)r->sh->rows * (double)r->sh->cols * r->tokens / r->median_s / r->mac_rate;
}

static void print_table(const result *res, int n, const bench_opts *o)
{
    printf("\n%-5s %-11s %-12s %3s %-10s %5s %11s %9s %8s %8s %9s\n", "op", "shape", "role", "thr",
           "kernel", "calls", "median_us", "wGB/s", "GOPS", "vs_ref", "of_ceil");
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        char shp[32], vs[16] = "-", bw[16] = "-";
        snprintf(shp, sizeof shp, "%lldx%lld", (long long)r->sh->rows, (long long)r->sh->cols);
        double wbps = weight_bytes(r) / r->median_s;
        if (r->ref_median_s > 0 && strcmp(r->kernel, "ref") != 0)
            snprintf(vs, sizeof vs, "%.1fx", r->ref_median_s / r->median_s);
        if (r->probe_bps > 0) snprintf(bw, sizeof bw, "%.2f", wbps / r->probe_bps);
        if (r->mac_rate > 0) snprintf(bw, sizeof bw, "%.2f", mac_ratio(r));
        char wb[16] = "-";
        if (r->tokens == 1) snprintf(wb, sizeof wb, "%.2f", wbps * 1e-9);
        printf("%-5s %-11s %-12s %3d %-10s %5d %11.1f %9s %8.1f %8s %9s\n", r->op, shp, r->sh->what,
               r->threads, r->kernel, r->calls, r->median_s * 1e6, wb, gops(r), vs, bw);
    }
    (void)o;
    printf("\nwGB/s: ternary weight bytes (2 bits each) read per second (GEMV); vs_ref: speed-up "
           "over\n"
           "the plain-C reference; of_ceil: for GEMV, wGB/s over the read bandwidth measured with\n"
           "the same threads in this run (target >= 0.8 on 2 threads); for GEMM, multiply-adds\n"
           "per second over the kernel's multiply-accumulate ceiling (its int8 MAC instruction\n"
           "alone, all operands in registers, same threads, this run).\n");
}

static cJSON *results_json(const result *res, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const result *r = &res[i];
        cJSON *o = cJSON_CreateObject();
        double wbps = weight_bytes(r) / r->median_s;
        cJSON_AddStringToObject(o, "op", r->op);
        cJSON_AddNumberToObject(o, "rows", (double)r->sh->rows);
        cJSON_AddNumberToObject(o, "cols", (double)r->sh->cols);
        cJSON_AddStringToObject(o, "role", r->sh->what);
        cJSON_AddNumberToObject(o, "tokens", r->tokens);
        cJSON_AddNumberToObject(o, "threads", r->threads);
        cJSON_AddStringToObject(o, "kernel", r->kernel);
        cJSON_AddNumberToObject(o, "calls", r->calls);
        cJSON_AddNumberToObject(o, "median_s", r->median_s);
        cJSON_AddNumberToObject(o, "weight_bytes_per_s", wbps);
        cJSON_AddNumberToObject(o, "gops", gops(r));
        if (r->ref_median_s > 0 && strcmp(r->kernel, "ref") != 0)
            cJSON_AddNumberToObject(o, "speedup_vs_ref", r->ref_median_s / r->median_s);
        if (r->probe_bps > 0) {
            cJSON_AddNumberToObject(o, "probe_bytes_per_s", r->probe_bps);
            cJSON_AddNumberToObject(o, "bandwidth_ratio", wbps / r->probe_bps);
        }
        if (r->mac_rate > 0) {
            cJSON_AddNumberToObject(o, "mac_ceiling_per_s", r->mac_rate);
            cJSON_AddNumberToObject(o, "mac_ceiling_ratio", mac_ratio(r));
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* For the run history: the results, the default kernel and the best GEMV weight GB/s. */
static cJSON *history_metrics(const result *res, int n)
{
    cJSON *m = cJSON_CreateObject();
    double best = 0;
    for (int i = 0; i < n; i++)
        if (res[i].tokens == 1 && weight_bytes(&res[i]) / res[i].median_s > best)
            best = weight_bytes(&res[i]) / res[i].median_s;
    cJSON_AddNumberToObject(m, "best_gemv_weight_gbps", best * 1e-9);
    cJSON_AddStringToObject(m, "default_kernel", bn_kernels_get()->name);
    cJSON_AddItemToObject(m, "results", results_json(res, n));
    return m;
}

/* ---- the command ----------------------------------------------------------------------- */

static void help(FILE *out)
{
    fprintf(out, "Usage: bitnet bench kernels [options]\n\n"
                 "Measures the ternary x int8 kernels on the matrix shapes of BitNet b1.58 2B4T\n"
                 "(2560x2560, 640x2560, 6912x2560, 2560x6912): GEMV (1 token, weights cycled from\n"
                 "memory) and GEMM (a batch of tokens), for every kernel variant this CPU runs,\n"
                 "with the speed-up over the plain-C reference and, for GEMV, the ratio to the\n"
                 "read bandwidth measured in the same run.\n\n"
                 "Options:\n"
                 "  -t, --threads LIST   thread counts, e.g. 1,2 (default 1,2)\n"
                 "  -r, --reps N         repetitions per SIMD case, median reported (default 20)\n"
                 "      --ref-reps N     repetitions per reference case (default 3)\n"
                 "      --tokens N       GEMM batch size (default 128)\n"
                 "      --wset MB        GEMV working set in MiB (default 128; keep it well\n"
                 "                       above the last-level cache)\n"
                 "      --no-ref         skip the reference kernels (no speed-up column)\n"
                 "      --quick          a short run: 5 repetitions, no reference GEMM\n"
                 "      --json           print one JSON document instead of the table\n"
                 "  -h, --help           this help\n");
}

void bench_kernels_help(FILE *out);
void bench_kernels_help(FILE *out)
{
    help(out);
}

static int parse_opts(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->n_threads = 2;
    o->reps = 20;
    o->ref_reps = 3;
    o->tokens = 128;
    o->wset_bytes = (size_t)BENCH_WSET_MB_DEFAULT << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--no-ref")) {
            o->no_ref = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!v) return cli_usage_error("bench kernels", "%s needs a value", a);
            o->n_threads = cli_parse_int_list(v, o->threads, MAX_THREADS_LIST);
            if (o->n_threads < 0)
                return cli_usage_error("bench kernels", "bad thread list '%s'", v);
            i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps") || !strcmp(a, "--ref-reps") ||
                   !strcmp(a, "--tokens") || !strcmp(a, "--wset")) {
            if (!v || cli_parse_long(v, 1, 100000, &n))
                return cli_usage_error("bench kernels", "%s needs a number from 1 to 100000", a);
            if (!strcmp(a, "--ref-reps"))
                o->ref_reps = (int)n;
            else if (!strcmp(a, "--tokens"))
                o->tokens = (int)n;
            else if (!strcmp(a, "--wset"))
                o->wset_bytes = (size_t)n << 20;
            else
                o->reps = (int)n;
            i++;
        } else {
            return cli_usage_error("bench kernels", "unknown option '%s'", a);
        }
    }
    if (o->quick) {
        if (o->reps > 5) o->reps = 5;
        o->ref_reps = 1;
    }
    return 0;
}

/* What every shape's runs share: the options, kernels, pool, probe buffer and activations,
 * and the results so far. */
typedef struct bench_run {
    const bench_opts *o;
    const bn_kernels *const *ks;
    int nk;
    bn_threadpool *pool;
    uint64_t *pbuf;
    const float *xf;
    float *y;
    result *res;
    int n_res;
} bench_run;

/* GEMV (the reference first, then each SIMD variant) and GEMM of one shape on threads;
 * 0, or -1 when out of memory. */
static int bench_threads(bench_run *b, const shape *sh, const wset *ws, bn_qact *x1, bn_qact *xb,
                         int threads)
{
    const bench_opts *o = b->o;
    const bn_kernels *ref = bn_kernels_ref();
    probe_job pj = {b->pbuf, (int64_t)(ws->bytes_each * (size_t)ws->n / 8)};
    double ref_gemv = 0, ref_gemm = 0;
    bn_pool_set_active(b->pool, threads);
    for (int ki = 0; ki < b->nk; ki++) {
        const bn_kernels *k = b->ks[ki];
        const int is_ref = k == ref;
        if (is_ref && o->no_ref) continue;
        const int reps = is_ref ? o->ref_reps : o->reps;
        result *r = &b->res[b->n_res];
        *r = (result){"gemv", sh, 1, threads, k->name, reps, 0, 0, 0, 0};
        wset sub = *ws; /* the reference is compute-bound: a few matrices are enough */
        if (is_ref && sub.n > 4) sub.n = 4;
        if (bench_gemv(b->pool, k, &sub, x1, b->y, is_ref ? NULL : &pj, reps, &r->median_s,
                       &r->probe_bps))
            return -1;
        r->calls = reps * (is_ref ? sub.n : ws->n);
        if (is_ref) ref_gemv = r->median_s;
        r->ref_median_s = ref_gemv;
        b->n_res++;
    }
    for (int ki = 0; ki < b->nk; ki++) {
        const bn_kernels *k = b->ks[ki];
        const int is_ref = k == ref;
        if (is_ref && (o->no_ref || o->quick)) continue;
        const int reps = is_ref ? o->ref_reps : o->reps;
        result *r = &b->res[b->n_res];
        *r = (result){"gemm", sh, o->tokens, threads, k->name, reps, 0, 0, 0, 0};
        if (bench_gemm(b->pool, k, &ws->mats[0], xb, b->y, reps, &r->median_s)) return -1;
        if (is_ref) ref_gemm = r->median_s;
        r->ref_median_s = ref_gemm;
        if (!is_ref) r->mac_rate = bn_bench_mac_rate(b->pool, k, 0.02, 5);
        b->n_res++;
    }
    if (!o->json)
        fprintf(stderr, "  %s %lldx%lld, %d thread%s done\n", sh->what, (long long)sh->rows,
                (long long)sh->cols, threads, threads > 1 ? "s" : "");
    return 0;
}

/* One shape: its working set of matrices and activations, every thread count; 0 or -1
 * (out of memory, said). */
static int bench_shape(bench_run *b, const shape *sh, uint64_t seed)
{
    const bench_opts *o = b->o;
    const size_t one = (size_t)sh->rows * (size_t)sh->cols / 4;
    int n_mats = (int)((o->wset_bytes + one - 1) / one);
    if (o->quick && n_mats > 48) n_mats = 48;
    wset ws;
    if (wset_build(&ws, sh, n_mats, seed)) return -1;
    bn_qact x1 = {0}, xb = {0};
    int rc = bn_qact_init(&x1, 1, sh->cols) == BN_OK &&
                             bn_qact_init(&xb, o->tokens, sh->cols) == BN_OK
                     ? 0
                     : -1;
    if (rc == 0) {
        bn_qact_quantize(&x1, b->xf, 1);
        bn_qact_quantize(&xb, b->xf, o->tokens);
    }
    for (int ti = 0; rc == 0 && ti < o->n_threads; ti++)
        rc = bench_threads(b, sh, &ws, &x1, &xb, o->threads[ti]);
    if (rc) cli_error("bench: out of memory");
    bn_qact_release(&x1);
    bn_qact_release(&xb);
    wset_release(&ws);
    return rc;
}

static void print_header(const bench_opts *o, const bn_kernels *const *ks, int nk)
{
    const bn_cpu_info *cpu = bn_cpu_info_get();
    char feats[256];
    bn_cpu_features_str(cpu, feats, sizeof feats);
    printf("bitnet bench kernels: %s (%s)\n", cpu->model[0] ? cpu->model : cpu->arch, feats);
    printf("kernels:");
    for (int i = 0; i < nk; i++) printf(" %s", ks[i]->name);
    printf(" (default: %s); GEMV cycles through >= %zu MB of weights; GEMM: %d tokens\n",
           bn_kernels_get()->name, o->wset_bytes >> 20, o->tokens);
    fflush(stdout);
}

/* The results as JSON on stdout, or the table. */
static int print_results(const bench_run *b, const bn_kernels *const *ks, int nk)
{
    if (!b->o->json) {
        print_table(b->res, b->n_res, b->o);
        return BN_EXIT_OK;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "cpu", bn_cpu_info_get()->model);
    cJSON *kl = cJSON_AddArrayToObject(d, "kernels");
    for (int i = 0; i < nk; i++) cJSON_AddItemToArray(kl, cJSON_CreateString(ks[i]->name));
    cJSON_AddStringToObject(d, "default_kernel", bn_kernels_get()->name);
    cJSON_AddNumberToObject(d, "gemv_working_set_bytes", (double)b->o->wset_bytes);
    cJSON_AddNumberToObject(d, "gemm_tokens", b->o->tokens);
    cJSON_AddItemToObject(d, "results", results_json(b->res, b->n_res));
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int bench_kernels_main(int argc, char **argv);
int bench_kernels_main(int argc, char **argv)
{
    bench_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc) return prc == 1 ? BN_EXIT_OK : prc;
    cJSON *hp = cm_hist_params_argv(argc, argv);
    cJSON_AddStringToObject(hp, "suite", "kernels");
    cm_hist_run *h = cm_hist_begin("bench", NULL, hp);
    int max_thr = 1;
    for (int i = 0; i < o.n_threads; i++)
        if (o.threads[i] > max_thr) max_thr = o.threads[i];
    const bn_kernels *ks[MAX_KERNELS];
    const int nk = bn_kernels_list(ks, MAX_KERNELS);
    bench_run b = {.o = &o, .ks = ks, .nk = nk};
    bn_status rc = bn_pool_new(&b.pool, max_thr);
    if (rc != BN_OK) {
        cli_error("bench: cannot start %d threads: %s", max_thr, bn_status_str(rc));
        cm_hist_end_exit(h, BN_EXIT_FAIL, NULL, cli_last_error());
        return BN_EXIT_FAIL;
    }
    const size_t n_sh = sizeof shapes_2b4t / sizeof shapes_2b4t[0];
    b.res = bn_calloc(n_sh * (size_t)o.n_threads * (size_t)(nk + 1) * 2, sizeof *b.res);
    /* the probe buffer: as large as the biggest working set */
    const size_t probe_bytes = o.wset_bytes + (size_t)(6912 * 2560 / 4);
    b.pbuf = bn_malloc(probe_bytes);
    float *xf = bn_malloc(sizeof(float) * (size_t)(o.tokens * 6912));
    b.xf = xf;
    b.y = bn_malloc(sizeof(float) * (size_t)(o.tokens * 6912));
    int status = BN_EXIT_FAIL;
    uint64_t seed = 42;
    if (!b.res || !b.pbuf || !xf || !b.y) {
        cli_error("bench: out of memory");
        goto done;
    }
    for (size_t i = 0; i < probe_bytes / 8; i++) b.pbuf[i] = i * 0x9e3779b97f4a7c15ull;
    fill_activations(xf, (int64_t)o.tokens * 6912, &seed);
    if (!o.json) print_header(&o, ks, nk);
    for (size_t s = 0; s < n_sh; s++)
        if (bench_shape(&b, &shapes_2b4t[s], seed + s)) goto done;
    status = print_results(&b, ks, nk);
done:
    cm_hist_end_exit(h, status, status == BN_EXIT_OK ? history_metrics(b.res, b.n_res) : NULL,
                     cli_last_error());
    bn_free(b.res);
    bn_free(b.pbuf);
    bn_free(xf);
    bn_free(b.y);
    bn_pool_free(b.pool);
    return status;
}
