/* runs.c - reading the metrics of history runs for the screens; see tui.h. */
#include "tui.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

double tui_run_metric(const bn_run *r, const char *key, double def)
{
    if (!r->metrics_json) return def;
    cJSON *m = cJSON_Parse(r->metrics_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    const double d = cJSON_IsNumber(v) ? v->valuedouble : def;
    cJSON_Delete(m);
    return d;
}

int tui_run_param_is(const bn_run *r, const char *key, const char *value)
{
    if (!r->params_json) return 0;
    cJSON *p = cJSON_Parse(r->params_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    const int is = cJSON_IsString(v) && !strcmp(v->valuestring, value);
    cJSON_Delete(p);
    return is;
}

void tui_fmt_number(const char *key, double v, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (key && strstr(key, "bytes") && isfinite(v) && v >= 0) {
        int u = 0;
        while (v >= 1024.0 && u < 4) v /= 1024.0, u++;
        snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    } else if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
    } else {
        snprintf(buf, size, "%.4g", v);
    }
}

void tui_run_summary(const bn_run *r, char *buf, size_t size)
{
    buf[0] = '\0';
    if (r->status == BN_RUN_FAILED && r->error) {
        snprintf(buf, size, "%s", r->error);
        return;
    }
    cJSON *m = r->metrics_json ? cJSON_Parse(r->metrics_json) : NULL;
    if (!m) return;
#define NUM(k) cJSON_GetObjectItemCaseSensitive(m, k)
    const cJSON *pp = NUM("prompt_tokens_per_s"), *tg = NUM("gen_tokens_per_s");
    if (!cJSON_IsNumber(tg)) tg = NUM("tg_tokens_per_s"); /* bench -m */
    if (!cJSON_IsNumber(pp)) pp = NUM("pp_tokens_per_s");
    if (!cJSON_IsNumber(tg)) tg = NUM("tokens_per_s"); /* chat */
    const cJSON *pass = NUM("pass"), *warn = NUM("warn"), *fail = NUM("fail");
    const cJSON *ppl = NUM("perplexity"), *loss = NUM("val_loss");
#undef NUM
    if (cJSON_IsNumber(pp) && cJSON_IsNumber(tg))
        snprintf(buf, size, "pp %.1f / tg %.1f tokens/s", pp->valuedouble, tg->valuedouble);
    else if (cJSON_IsNumber(tg))
        snprintf(buf, size, "%.1f tokens/s", tg->valuedouble);
    else if (cJSON_IsNumber(pass) && cJSON_IsNumber(warn) && cJSON_IsNumber(fail))
        snprintf(buf, size, "%d pass, %d warn, %d fail", pass->valueint, warn->valueint,
                 fail->valueint);
    else if (cJSON_IsNumber(ppl))
        snprintf(buf, size, "perplexity %.3f", ppl->valuedouble);
    else if (cJSON_IsNumber(loss))
        snprintf(buf, size, "validation loss %.4f", loss->valuedouble);
    else if (m->child) {
        /* the first numbers, readable: byte counts in KiB/MiB/GiB, whole numbers whole */
        size_t n = 0;
        for (const cJSON *it = m->child; it && n + 32 < size; it = it->next) {
            if (!cJSON_IsNumber(it) || !it->string) continue;
            char v[32];
            tui_fmt_number(it->string, it->valuedouble, v, sizeof v);
            n += (size_t)snprintf(buf + n, size - n, "%s%s %s", n ? ", " : "", it->string, v);
        }
    }
    cJSON_Delete(m);
}
