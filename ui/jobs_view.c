/* jobs_view.c - the conversion queue filtered by status and sorted by a column; see
 * jobs_view.h. */
#include "jobs_view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "crt.h"

static const ui_col jcols[JC_COUNT] = {
        {"ID", 5, 1},     {"STATUS", 10, 0}, {"PROGRESS", 23, 0},
        {"PHASE", 18, 0}, {"ETA", 10, 0},    {"SOURCE -> OUTPUT", 0, 0},
};
static const char *const statuses[] = {NULL, "queued", "running", "done", "failed", "cancelled"};
#define N_STATUSES (int)(sizeof statuses / sizeof statuses[0])

void jobs_view_init(jobs_view *v)
{
    memset(v, 0, sizeof *v);
    ui_table_init(&v->tb, jcols, JC_COUNT, JC_ID, 1); /* the newest first */
}

void jobs_view_release(jobs_view *v)
{
    cJSON_Delete(v->raw);
    v->raw = NULL;
}

static const char *base(const char *p)
{
    const char *b = strrchr(p, '/');
    return b && b[1] ? b + 1 : p;
}

static int cmp_num(double a, double b)
{
    a = isnan(a) ? -1 : a, b = isnan(b) ? -1 : b;
    return (a > b) - (a < b);
}

static int cmp_job(const void *ctx, int col, size_t ia, size_t ib)
{
    const cJSON *const *items = ctx;
    const cJSON *a = items[ia], *b = items[ib];
    switch (col) {
    case JC_ID:
        return cmp_num(cm_json_num(a, "id", NAN), cm_json_num(b, "id", NAN));
    case JC_STATUS:
        return strcmp(cm_json_str(a, "status", ""), cm_json_str(b, "status", ""));
    case JC_PROGRESS:
        return cmp_num(cm_json_num(a, "percent", NAN), cm_json_num(b, "percent", NAN));
    case JC_PHASE:
        return strcmp(cm_json_str(a, "phase", ""), cm_json_str(b, "phase", ""));
    case JC_ETA:
        return cmp_num(cm_json_num(a, "eta_s", NAN), cm_json_num(b, "eta_s", NAN));
    default:
        return strcmp(base(cm_json_str(a, "src", "")), base(cm_json_str(b, "src", "")));
    }
}

/* The jobs of the chosen status, sorted, moved from arr into a new array. */
static cJSON *ordered(const jobs_view *v, cJSON *arr)
{
    const int n = cJSON_GetArraySize(arr);
    cJSON **items = n ? calloc((size_t)n, sizeof *items) : NULL;
    size_t *order = n ? calloc((size_t)n, sizeof *order) : NULL;
    cJSON *out = cJSON_CreateArray();
    size_t k = 0;
    if (!out || (n && (!items || !order))) goto done;
    for (cJSON *j = cJSON_DetachItemFromArray(arr, 0); j; j = cJSON_DetachItemFromArray(arr, 0)) {
        if (!statuses[v->status] || !strcmp(cm_json_str(j, "status", ""), statuses[v->status]))
            items[k++] = j;
        else
            cJSON_Delete(j);
    }
    ui_table_sort(&v->tb, order, k, cmp_job, items);
    for (size_t i = 0; i < k; i++)
        cJSON_AddItemToArray(out, items[order[i]]), items[order[i]] = NULL;
done:
    for (size_t i = 0; items && i < k; i++) cJSON_Delete(items[i]);
    free(items);
    free(order);
    return out;
}

cJSON *jobs_view_shown(const jobs_view *v)
{
    cJSON *d = v->raw ? cJSON_Duplicate(v->raw, 1) : NULL;
    cJSON *arr = cJSON_DetachItemFromObjectCaseSensitive(d, "jobs");
    if (!d || !arr) {
        cJSON_Delete(arr);
        return d;
    }
    cJSON *o = ordered(v, arr);
    cJSON_Delete(arr);
    if (o) cJSON_AddItemToObject(d, "jobs", o);
    return d;
}

cJSON *jobs_view_take(jobs_view *v, cJSON *doc)
{
    cJSON_Delete(v->raw);
    v->raw = doc;
    return jobs_view_shown(v);
}

int jobs_view_key(jobs_view *v, int ch)
{
    if (ch == 'f' || ch == 'F') {
        v->status = (v->status + (ch == 'f' ? 1 : N_STATUSES - 1)) % N_STATUSES;
        return 1;
    }
    return ui_table_key(&v->tb, ch);
}

void jobs_view_describe(const jobs_view *v, char *buf, size_t size)
{
    const char *mark =
            crt_unicode() ? (v->tb.desc ? "\u25bc" : "\u25b2") : (v->tb.desc ? "v" : "^");
    snprintf(buf, size, "%s, by %s%s", statuses[v->status] ? statuses[v->status] : "all",
             jcols[v->tb.sort].name, mark);
}
