/* profile_gpu.c - `bitnet profile --gpu`: the device, the GPU layers of a setup (-ngl, as
 * llama.cpp counts them; all of them and the LM head by default) and the trials of other layer
 * counts and contexts, each run in turn with the setup as on the CPU (cmd_profile.c), with the
 * pool's statistics of each; a build without the backend or a machine without a device says
 * so on one line and fails. */
#include "profile.h"

#include <stdio.h>
#include <string.h>

#include "common/cli.h"

int pf_gpu_device(bn_cuda_device *d)
{
    char why[256] = "";
    int n = 0;
    if (!bn_cuda_built()) {
        cli_error("profile --gpu: this build has no CUDA backend (build with make CUDA=1)");
        return -1;
    }
    if (bn_cuda_devices(d, 1, &n, why, sizeof why) != BN_OK || n < 1) {
        cli_error("profile --gpu: no CUDA device%s%s", why[0] ? ": " : "", why);
        return -1;
    }
    return 0;
}

int pf_gpu_open(pf_inst *in, char *err, size_t errsz)
{
    bn_cuda_params p;
    bn_cuda_params_init(&p);
    p.n_layers = in->c.ngl;
    p.n_ctx = in->c.n_ctx;
    p.n_batch = in->c.n_batch;
    if (bn_cuda_model_new(in->m, &p, &in->g) != BN_OK)
        return cm_fail(err, errsz, "%s", bn_ctx_errmsg(bn_model_ctx(in->m)));
    return 0;
}

/* Layers on the GPU as a count from 0 to n_layer + 1 (the head too). */
static int layers(int ngl, int64_t n_layer)
{
    return ngl > n_layer ? (int)n_layer + 1 : ngl;
}

void pf_gpu_plan(const pf_inst *base, const pf_opts *o, pf_report *rep)
{
    const int64_t L = bn_model_hparams_get(base->m)->n_layer;
    const int have = layers(base->c.ngl, L);
    const int tries[] = {0, (int)(L / 2), (int)L, (int)L + 1};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        int dup = tries[i] == have || (i > 0 && tries[i] == tries[i - 1]);
        if (dup || rep->n_trials >= (int)(sizeof rep->trials / sizeof rep->trials[0])) continue;
        pf_trial *t = &rep->trials[rep->n_trials++];
        memset(t, 0, sizeof *t);
        t->cfg = base->c;
        t->cfg.ngl = tries[i];
        snprintf(t->option, sizeof t->option, "ngl");
        snprintf(t->value, sizeof t->value, "%d", tries[i]);
        snprintf(t->flag, sizeof t->flag, "-ngl %d", tries[i]);
    }
    const int64_t need = (int64_t)o->n_prompt + o->n_gen;
    if (rep->n_trials < (int)(sizeof rep->trials / sizeof rep->trials[0]) && base->c.n_ctx > need) {
        pf_trial *t = &rep->trials[rep->n_trials++];
        memset(t, 0, sizeof *t);
        t->cfg = base->c;
        t->cfg.n_ctx = need;
        snprintf(t->option, sizeof t->option, "ctx");
        snprintf(t->value, sizeof t->value, "%lld", (long long)need);
        snprintf(t->flag, sizeof t->flag, "--ctx %lld", (long long)need);
    }
}

/* The most layers that loaded (the setup's or a trial's; a count whose pool the device could
 * not give was skipped), and the pool it took. */
static int most_layers(const pf_report *r, size_t *pool)
{
    const int64_t L = bn_model_hparams_get(r->base->m)->n_layer;
    int best = layers(r->base->c.ngl, L);
    *pool = r->pool.reserved;
    for (int i = 0; i < r->n_trials; i++) {
        const pf_trial *t = &r->trials[i];
        if (!t->tried || strcmp(t->option, "ngl") || layers(t->cfg.ngl, L) <= best) continue;
        best = layers(t->cfg.ngl, L), *pool = t->pool.reserved;
    }
    return best;
}

void pf_gpu_text_head(const pf_report *r)
{
    const bn_cuda_device *d = &r->dev;
    const pf_inst *b = r->base;
    const int64_t L = bn_model_hparams_get(b->m)->n_layer;
    const int have = layers(b->c.ngl, L);
    printf("%s on %s (compute %d.%d, %d SMs), %.1f of %.1f MiB free\n", r->model, d->name,
           d->cc_major, d->cc_minor, d->n_sm, d->mem_free / 1048576.0, d->mem_total / 1048576.0);
    printf("setup: -ngl %d (%d of %lld layers%s on the GPU), context %lld; the GPU's KV cache is "
           "f16 (the only type it keeps)\n",
           have, have > L ? (int)L : have, (long long)L, have > L ? " and the LM head" : "",
           (long long)b->c.n_ctx);
    printf("pool: %.1f MiB reserved, %.1f used, peak %.1f, largest free %.1f, fragmentation "
           "%.3f\n",
           r->pool.reserved / 1048576.0, r->pool.used / 1048576.0, r->pool.peak_used / 1048576.0,
           r->pool.largest_free / 1048576.0, r->pool.fragmentation);
    size_t most_pool;
    const int most = most_layers(r, &most_pool);
    printf("memory: -ngl %d is the most that loaded here (a pool of %.1f MiB; %.1f MiB of the "
           "device were free)\n",
           most, most_pool / 1048576.0, r->dev.mem_free / 1048576.0);
}

static cJSON *pool_json(const bn_gpu_pool_stats *s)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "reserved", (double)s->reserved);
    cJSON_AddNumberToObject(p, "used", (double)s->used);
    cJSON_AddNumberToObject(p, "peak_used", (double)s->peak_used);
    cJSON_AddNumberToObject(p, "largest_free", (double)s->largest_free);
    cJSON_AddNumberToObject(p, "fragmentation", s->fragmentation);
    return p;
}

void pf_gpu_json_head(const pf_report *r, cJSON *d)
{
    const pf_inst *b = r->base;
    const int64_t L = bn_model_hparams_get(b->m)->n_layer;
    cJSON_AddStringToObject(d, "device", r->dev.name);
    cJSON_AddNumberToObject(d, "device_mem_total", (double)r->dev.mem_total);
    cJSON_AddNumberToObject(d, "device_mem_free", (double)r->dev.mem_free);
    cJSON_AddNumberToObject(d, "ngl", layers(b->c.ngl, L));
    cJSON_AddNumberToObject(d, "n_layer", (double)L);
    cJSON_AddItemToObject(d, "pool", pool_json(&r->pool));
    size_t most_pool;
    cJSON_AddNumberToObject(d, "ngl_most_loaded", most_layers(r, &most_pool));
    cJSON_AddNumberToObject(d, "ngl_most_loaded_pool", (double)most_pool);
}

void pf_gpu_trial_json(const pf_trial *t, cJSON *j)
{
    if (t->cfg.ngl > 0 && t->tried) cJSON_AddItemToObject(j, "pool", pool_json(&t->pool));
}
