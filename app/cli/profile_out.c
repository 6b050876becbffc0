/* profile_out.c - the report of `bitnet profile` as text and as JSON (profile.h). */
#include "profile.h"

#include <stdio.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/types.h"
#include "common/cli.h"

void pf_profile_add(bn_model_profile *a, const bn_model_profile *b)
{
    for (int c = 0; c < BN_PROF_N; c++) a->seconds[c] += b->seconds[c];
    a->wall += b->wall;
    a->evals += b->evals;
    a->tokens += b->tokens;
}

/* One row of a phase's table: class c, or sampling (c == BN_PROF_N). */
typedef struct pf_row {
    const char *name;
    double seconds, share, bytes, bps, of_ceiling; /* bps, of_ceiling: 0 without bytes */
} pf_row;

/* The rows of ph: the classes with time, then sampling (generation), then what was measured
 * around the evaluations but outside the forward; n rows into rows. */
static int phase_rows(const pf_phase *ph, double ceiling, pf_row *rows)
{
    int n = 0;
    const double total = ph->wall > 0 ? ph->wall : 1e-30;
    for (int c = 0; c <= BN_PROF_N + 1; c++) {
        pf_row *w = &rows[n];
        memset(w, 0, sizeof *w);
        if (c < BN_PROF_N) {
            w->name = bn_prof_class_name(c), w->seconds = ph->seconds[c], w->bytes = ph->bytes[c];
        } else if (c == BN_PROF_N) {
            if (ph->sampling <= 0) continue;
            w->name = "sampling", w->seconds = ph->sampling;
        } else {
            w->name = "outside", w->seconds = ph->wall - ph->classes_wall - ph->sampling;
            w->seconds = w->seconds > 0 ? w->seconds : 0;
        }
        w->share = w->seconds / total;
        if (w->bytes > 0 && w->seconds > 0) {
            w->bps = w->bytes / w->seconds;
            w->of_ceiling = ceiling > 0 ? w->bps / ceiling : 0;
        }
        n++;
    }
    return n;
}

static const char *kv_name(int t)
{
    return t == BN_TYPE_F32 ? "f32" : "f16";
}

static const char *kernels_name(const pf_inst *b)
{
    return (b->c.k ? b->c.k : bn_kernels_get())->name;
}

/* ---- text ------------------------------------------------------------------------------ */

static void print_phase(const char *title, const pf_phase *ph, int reps, double ceiling)
{
    pf_row rows[BN_PROF_N + 2];
    const int n = phase_rows(ph, ceiling, rows);
    printf("\n%s: %d tokens x %d passes, %.1f tokens/s\n", title, ph->tokens, reps,
           ph->wall > 0 ? ph->tokens * reps / ph->wall : 0.0);
    printf("  %-10s %10s %7s %10s %8s %10s\n", "CLASS", "ms/pass", "SHARE", "MB/pass", "GB/s",
           "OF CEILING");
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const pf_row *w = &rows[i];
        sum += w->seconds;
        printf("  %-10s %10.3f %6.1f%%", w->name, 1e3 * w->seconds / reps, 100 * w->share);
        if (w->bytes > 0)
            printf(" %10.3f %8.2f %10.2f\n", w->bytes / reps / 1e6, w->bps / 1e9, w->of_ceiling);
        else
            printf(" %10s %8s %10s\n", "-", "-", "-");
    }
    printf("  %-10s %10.3f %6.1f%%\n", "total", 1e3 * sum / reps,
           ph->wall > 0 ? 100 * sum / ph->wall : 0.0);
}

static void print_trials(const pf_opts *o, const pf_report *r)
{
    if (r->n_trials == 0) return;
    printf("\ntried (tokens/s, median of %d passes each, the setup run in turn):\n", o->reps);
    printf("  %-8s %-12s %10s %10s %8s %8s %7s\n", "OPTION", "VALUE", "TG", "SETUP TG", "TG GAIN",
           "PP GAIN", "NOISE");
    for (int i = 0; i < r->n_trials; i++) {
        const pf_trial *t = &r->trials[i];
        if (!t->tried) {
            printf("  %-8s %-12s skipped: %s\n", t->option, t->value, t->skipped);
            continue;
        }
        printf("  %-8s %-12s %10.1f %10.1f %+7.1f%% %+7.1f%% %6.1f%%", t->option, t->value, t->tg,
               t->base_tg, 100 * t->gain_tg, 100 * t->gain_pp, 100 * t->noise);
        if (r->gpu && t->cfg.ngl > 0)
            printf("  pool %.1f MiB, peak %.1f", t->pool.reserved / 1048576.0,
                   t->pool.peak_used / 1048576.0);
        printf("\n");
    }
    int any = 0;
    for (int i = 0; i < r->n_trials; i++) {
        const pf_trial *t = &r->trials[i];
        if (!t->recommended) continue;
        printf("recommended: %s (%+.1f%% tg, measured)\n", t->flag, 100 * t->gain_tg);
        any = 1;
    }
    if (!any && o->reps < PF_MIN_REPS)
        printf("no recommendation: %d passes cannot tell a gain from noise (-r %d or more)\n",
               o->reps, PF_MIN_REPS);
    else if (!any)
        printf("no recommendation: no option beat the setup by more than the noise and %.0f%%\n",
               100 * PF_MIN_GAIN);
}

int pf_print_text(const pf_opts *o, const pf_report *r)
{
    const pf_inst *b = r->base;
    if (r->gpu) {
        pf_gpu_text_head(r);
        print_trials(o, r);
        return BN_EXIT_OK;
    }
    printf("%s: %d threads, kernels %s, LM head %s, KV %s, context %lld, batch %lld\n", r->model,
           b->c.threads, kernels_name(b), bn_model_head_name(b->m), kv_name(b->c.kv_type),
           (long long)b->c.n_ctx, (long long)bn_model_state_n_batch(b->st));
    printf("read ceiling: %.2f GB/s (streaming sum on the same threads, this run)\n",
           r->probe_bps / 1e9);
    print_phase("prompt", &r->pp, o->reps, r->probe_bps);
    print_phase("generation after the prompt", &r->tg, o->reps, r->probe_bps);
    print_trials(o, r);
    return BN_EXIT_OK;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static cJSON *phase_json(const pf_phase *ph, int reps, double ceiling)
{
    cJSON *p = cJSON_CreateObject(), *cl = cJSON_CreateArray();
    pf_row rows[BN_PROF_N + 2];
    const int n = phase_rows(ph, ceiling, rows);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const pf_row *w = &rows[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "class", w->name);
        cJSON_AddNumberToObject(c, "seconds", w->seconds);
        cJSON_AddNumberToObject(c, "share", w->share);
        cJSON_AddNumberToObject(c, "bytes", w->bytes);
        cJSON_AddNumberToObject(c, "bytes_per_s", w->bps);
        cJSON_AddNumberToObject(c, "ceiling_fraction", w->of_ceiling);
        cJSON_AddItemToArray(cl, c);
        sum += w->seconds;
    }
    cJSON_AddNumberToObject(p, "tokens", ph->tokens);
    cJSON_AddNumberToObject(p, "passes", reps);
    cJSON_AddNumberToObject(p, "seconds", ph->wall);
    cJSON_AddNumberToObject(p, "tokens_per_s", ph->wall > 0 ? ph->tokens * reps / ph->wall : 0);
    cJSON_AddNumberToObject(p, "classes_seconds", sum);
    cJSON_AddItemToObject(p, "classes", cl);
    return p;
}

static cJSON *trial_json(const pf_trial *t)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "option", t->option);
    cJSON_AddStringToObject(j, "value", t->value);
    cJSON_AddStringToObject(j, "flag", t->flag);
    if (!t->tried) {
        cJSON_AddStringToObject(j, "skipped", t->skipped);
        return j;
    }
    cJSON_AddNumberToObject(j, "tg_tokens_per_s", t->tg);
    cJSON_AddNumberToObject(j, "base_tg_tokens_per_s", t->base_tg);
    cJSON_AddNumberToObject(j, "pp_tokens_per_s", t->pp);
    cJSON_AddNumberToObject(j, "base_pp_tokens_per_s", t->base_pp);
    cJSON_AddNumberToObject(j, "gain_tg", t->gain_tg);
    cJSON_AddNumberToObject(j, "gain_pp", t->gain_pp);
    cJSON_AddNumberToObject(j, "noise", t->noise);
    cJSON_AddBoolToObject(j, "recommended", t->recommended);
    pf_gpu_trial_json(t, j);
    return j;
}

int pf_print_json(const pf_opts *o, const pf_report *r)
{
    const pf_inst *b = r->base;
    cJSON *d = cJSON_CreateObject(), *tr = cJSON_CreateArray(), *rec = cJSON_CreateArray();
    cJSON_AddStringToObject(d, "model", r->model);
    cJSON_AddNumberToObject(d, "threads", b->c.threads);
    cJSON_AddStringToObject(d, "kernels", kernels_name(b));
    cJSON_AddStringToObject(d, "lm_head", bn_model_head_name(b->m));
    cJSON_AddStringToObject(d, "kv_type", kv_name(b->c.kv_type));
    cJSON_AddNumberToObject(d, "n_ctx", (double)b->c.n_ctx);
    cJSON_AddNumberToObject(d, "n_batch", (double)bn_model_state_n_batch(b->st));
    if (r->gpu) {
        pf_gpu_json_head(r, d);
    } else {
        cJSON_AddNumberToObject(d, "read_ceiling_bytes_per_s", r->probe_bps);
        cJSON_AddItemToObject(d, "prompt", phase_json(&r->pp, o->reps, r->probe_bps));
        cJSON_AddItemToObject(d, "generation", phase_json(&r->tg, o->reps, r->probe_bps));
    }
    for (int i = 0; i < r->n_trials; i++) {
        const pf_trial *t = &r->trials[i];
        cJSON_AddItemToArray(tr, trial_json(t));
        if (!t->recommended) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "option", t->option);
        cJSON_AddStringToObject(x, "value", t->value);
        cJSON_AddStringToObject(x, "flag", t->flag);
        cJSON_AddNumberToObject(x, "gain_tg", t->gain_tg);
        cJSON_AddItemToArray(rec, x);
    }
    cJSON_AddNumberToObject(d, "min_gain", PF_MIN_GAIN);
    cJSON_AddNumberToObject(d, "min_reps", PF_MIN_REPS);
    cJSON_AddNumberToObject(d, "reps", o->reps);
    cJSON_AddItemToObject(d, "trials", tr);
    cJSON_AddItemToObject(d, "recommendations", rec);
    return cli_print_json(d) == 0 ? BN_EXIT_OK : BN_EXIT_FAIL;
}
