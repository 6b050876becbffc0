/* hw.c - the machine's hardware and OS, and NVIDIA GPUs through NVML loaded at run time
 * (see hw.h). */
#include "common/hw.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "bitnet/cuda.h"
#include "bitnet/kernels.h"

/* ---- NVML: the few declarations we need (from NVIDIA's nvml.h, API v2) ---------------- */

typedef int nvml_return;              /* nvmlReturn_t: 0 is NVML_SUCCESS */
typedef struct nvml_dev *nvml_device; /* nvmlDevice_t: an opaque handle */
typedef struct nvml_memory {          /* nvmlMemory_t (v1) */
    unsigned long long total, free, used;
} nvml_memory;
typedef struct nvml_utilization { /* nvmlUtilization_t */
    unsigned int gpu, memory;
} nvml_utilization;

#define NVML_SUCCESS               0
#define NVML_TEMPERATURE_GPU       0
#define NVML_DEVICE_NAME_V2_BUFFER 96
#define NVML_DRIVER_VERSION_BUFFER 80
#define NVML_UUID_V2_BUFFER        96

struct bn_nvml {
    void *lib;
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    const char *(*error_string)(nvml_return);
    nvml_return (*driver_version)(char *, unsigned int);
    nvml_return (*count)(unsigned int *);
    nvml_return (*by_index)(unsigned int, nvml_device *);
    nvml_return (*name)(nvml_device, char *, unsigned int);
    nvml_return (*uuid)(nvml_device, char *, unsigned int);
    nvml_return (*memory)(nvml_device, nvml_memory *);
    nvml_return (*utilization)(nvml_device, nvml_utilization *);
    nvml_return (*temperature)(nvml_device, int, unsigned int *);
    nvml_return (*power)(nvml_device, unsigned int *);
};

static const char *nvml_err(const bn_nvml *nv, nvml_return r)
{
    const char *s = nv->error_string ? nv->error_string(r) : NULL;
    return s ? s : "unknown error";
}

int bn_nvml_open(bn_nvml **out, char *why, size_t whysz)
{
    *out = NULL;
    bn_nvml *nv = calloc(1, sizeof *nv);
    if (!nv) {
        snprintf(why, whysz, "out of memory");
        return -1;
    }
    nv->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!nv->lib) {
        snprintf(why, whysz, "NVML not found");
        free(nv);
        return -1;
    }
    /* dlsym returns a data pointer; POSIX guarantees it converts to a function pointer */
#define SYM(field, name) (*(void **)&nv->field = dlsym(nv->lib, name))
    SYM(init, "nvmlInit_v2");
    SYM(shutdown, "nvmlShutdown");
    SYM(error_string, "nvmlErrorString");
    SYM(driver_version, "nvmlSystemGetDriverVersion");
    SYM(count, "nvmlDeviceGetCount_v2");
    SYM(by_index, "nvmlDeviceGetHandleByIndex_v2");
    SYM(name, "nvmlDeviceGetName");
    SYM(uuid, "nvmlDeviceGetUUID");
    SYM(memory, "nvmlDeviceGetMemoryInfo");
    SYM(utilization, "nvmlDeviceGetUtilizationRates");
    SYM(temperature, "nvmlDeviceGetTemperature");
    SYM(power, "nvmlDeviceGetPowerUsage");
#undef SYM
    if (!nv->init || !nv->shutdown || !nv->count || !nv->by_index || !nv->name || !nv->memory) {
        snprintf(why, whysz, "NVML too old (nvmlInit_v2 and the v2 device calls missing)");
        dlclose(nv->lib);
        free(nv);
        return -1;
    }
    nvml_return r = nv->init();
    if (r != NVML_SUCCESS) {
        snprintf(why, whysz, "nvmlInit failed: %s", nvml_err(nv, r));
        dlclose(nv->lib);
        free(nv);
        return -1;
    }
    *out = nv;
    return 0;
}

void bn_nvml_close(bn_nvml *nv)
{
    if (!nv) return;
    nv->shutdown();
    dlclose(nv->lib);
    free(nv);
}

void bn_nvml_driver_version(bn_nvml *nv, char *buf, size_t size)
{
    char v[NVML_DRIVER_VERSION_BUFFER] = "";
    if (nv && nv->driver_version && nv->driver_version(v, sizeof v) == NVML_SUCCESS)
        v[sizeof v - 1] = '\0';
    else
        v[0] = '\0';
    snprintf(buf, size, "%s", v);
}

static void query_one(bn_nvml *nv, nvml_device d, bn_hw_gpu *g)
{
    nvml_memory m;
    nvml_utilization u;
    unsigned int t, mw;
    if (nv->name(d, g->name, sizeof g->name) != NVML_SUCCESS)
        snprintf(g->name, sizeof g->name, "?");
    g->name[sizeof g->name - 1] = '\0';
    if (!nv->uuid || nv->uuid(d, g->uuid, sizeof g->uuid) != NVML_SUCCESS) g->uuid[0] = '\0';
    g->uuid[sizeof g->uuid - 1] = '\0';
    if (nv->memory(d, &m) == NVML_SUCCESS) {
        g->mem_total = m.total;
        g->mem_used = m.used;
        g->mem_free = m.free;
    }
    g->util_gpu = g->util_mem = -1;
    if (nv->utilization && nv->utilization(d, &u) == NVML_SUCCESS) {
        g->util_gpu = (int)u.gpu;
        g->util_mem = (int)u.memory;
    }
    g->temp_c = -1;
    if (nv->temperature && nv->temperature(d, NVML_TEMPERATURE_GPU, &t) == NVML_SUCCESS)
        g->temp_c = (int)t;
    g->power_w = -1;
    if (nv->power && nv->power(d, &mw) == NVML_SUCCESS) g->power_w = mw / 1000.0;
}

int bn_nvml_query(bn_nvml *nv, bn_hw_gpu *gpus, int max, char *why, size_t whysz)
{
    unsigned int n = 0;
    nvml_return r = nv->count(&n);
    if (r != NVML_SUCCESS) {
        snprintf(why, whysz, "nvmlDeviceGetCount failed: %s", nvml_err(nv, r));
        return -1;
    }
    int k = 0;
    for (unsigned int i = 0; i < n && k < max; i++) {
        nvml_device d = NULL;
        if (nv->by_index(i, &d) != NVML_SUCCESS) continue; /* e.g. no permission on it */
        memset(&gpus[k], 0, sizeof gpus[k]);
        gpus[k].index = (int)i;
        query_one(nv, d, &gpus[k]);
        k++;
    }
    return k;
}

/* ---- memory and OS ------------------------------------------------------------------- */

int bn_hw_meminfo(unsigned long long *total, unsigned long long *available)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    unsigned long long t = 0, a = 0, fr = 0, buf = 0, cached = 0, v;
    int have_avail = 0;
    while (fgets(line, sizeof line, f)) {
        char key[64];
        if (sscanf(line, "%63[^:]: %llu", key, &v) != 2) continue;
        if (!strcmp(key, "MemTotal"))
            t = v * 1024;
        else if (!strcmp(key, "MemAvailable"))
            a = v * 1024, have_avail = 1;
        else if (!strcmp(key, "MemFree"))
            fr = v * 1024;
        else if (!strcmp(key, "Buffers"))
            buf = v * 1024;
        else if (!strcmp(key, "Cached"))
            cached = v * 1024;
    }
    fclose(f);
    if (!have_avail) a = fr + buf + cached; /* kernels before 3.14 */
    *total = t;
    *available = a;
    return t ? 0 : -1;
}

/* PRETTY_NAME from os-release into buf; 0 or -1. */
static int os_pretty_name(char *buf, size_t size)
{
    static const char *const files[] = {"/etc/os-release", "/usr/lib/os-release"};
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) continue;
        char line[512];
        int found = 0;
        while (!found && fgets(line, sizeof line, f)) {
            if (strncmp(line, "PRETTY_NAME=", 12)) continue;
            char *v = line + 12;
            v[strcspn(v, "\r\n")] = '\0';
            size_t n = strlen(v);
            if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                v[n - 1] = '\0';
                v++;
            }
            /* drop shell escapes: \" \\ \$ \` */
            char *w = v;
            for (char *r = v; *r; r++) {
                if (*r == '\\' && r[1]) r++;
                *w++ = *r;
            }
            *w = '\0';
            found = v[0] != '\0';
            if (found) snprintf(buf, size, "%.*s", (int)size - 1, v);
        }
        fclose(f);
        if (found) return 0;
    }
    return -1;
}

/* ---- collecting ---------------------------------------------------------------------- */

static void gpus_refresh(bn_hw_info *hw, bn_nvml *nv)
{
    char why[160];
    int n = bn_nvml_query(nv, hw->gpus, BN_HW_MAX_GPUS, why, sizeof why);
    hw->n_gpus = n < 0 ? 0 : n;
    if (n < 0)
        snprintf(hw->gpu_status, sizeof hw->gpu_status, "no NVIDIA GPU detected (%s)", why);
    else if (n == 0)
        snprintf(hw->gpu_status, sizeof hw->gpu_status,
                 "no NVIDIA GPU detected (NVML found no device)");
    else
        snprintf(hw->gpu_status, sizeof hw->gpu_status, "%d NVIDIA GPU%s (driver %s)", n,
                 n == 1 ? "" : "s", hw->driver_version[0] ? hw->driver_version : "unknown");
}

void bn_hw_refresh(bn_hw_info *hw, bn_nvml *nv)
{
    if (bn_hw_meminfo(&hw->mem_total, &hw->mem_available)) hw->mem_total = hw->mem_available = 0;
    if (nv) gpus_refresh(hw, nv);
}

void bn_hw_collect(bn_hw_info *hw, bn_nvml *nv)
{
    memset(hw, 0, sizeof *hw);
    hw->cpu = bn_cpu_info_get();
    bn_cpu_features_str(hw->cpu, hw->cpu_features, sizeof hw->cpu_features);
    hw->kernels = bn_kernels_get()->name;
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(hw->kernel, sizeof hw->kernel, "%s", u.release);
        snprintf(hw->machine, sizeof hw->machine, "%s", u.machine);
        snprintf(hw->os_name, sizeof hw->os_name, "%s", u.sysname);
    }
    os_pretty_name(hw->os_name, sizeof hw->os_name);

    char why[160] = "";
    bn_nvml *own = NULL;
    if (!nv && bn_nvml_open(&own, why, sizeof why) == 0) nv = own;
    hw->nvml = nv != NULL;
    if (nv) {
        bn_nvml_driver_version(nv, hw->driver_version, sizeof hw->driver_version);
    } else {
        snprintf(hw->gpu_status, sizeof hw->gpu_status, "no NVIDIA GPU detected (%s)",
                 why[0] ? why : "NVML not found");
    }
    bn_hw_refresh(hw, nv);
    bn_nvml_close(own);
}

void bn_hw_cuda(bn_hw_info *hw)
{
    bn_cuda_device dev[4];
    char why[160] = "";
    hw->cuda_devices = 0;
    hw->cuda_built = bn_cuda_built();
    if (bn_cuda_devices(dev, 4, &hw->cuda_devices, why, sizeof why) != BN_OK ||
        hw->cuda_devices == 0) {
        snprintf(hw->cuda_status, sizeof hw->cuda_status, "%s", hw->cuda_built ? why : "not built");
        return;
    }
    size_t at = 0;
    for (int i = 0; i < hw->cuda_devices && at < sizeof hw->cuda_status; i++) {
        const bn_cuda_device *d = &dev[i];
        const int n =
                snprintf(hw->cuda_status + at, sizeof hw->cuda_status - at,
                         "%s%d: %s, compute %d.%d, %d SMs, %.1f GiB (%.1f free), CUDA %d.%d",
                         i ? "; " : "", d->index, d->name, d->cc_major, d->cc_minor, d->n_sm,
                         (double)d->mem_total / 1073741824.0, (double)d->mem_free / 1073741824.0,
                         d->runtime / 1000, d->runtime % 1000 / 10);
        at += n > 0 ? (size_t)n : 0;
    }
}

/* ---- JSON ---------------------------------------------------------------------------- */

static cJSON *features_array(const char *s)
{
    cJSON *a = cJSON_CreateArray();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && a; t = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(a, cJSON_CreateString(t));
    return a;
}

static void add_opt_int(cJSON *o, const char *k, double v)
{
    if (v >= 0)
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *gpu_json(const bn_hw_gpu *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", g->index);
    cJSON_AddStringToObject(o, "name", g->name);
    if (g->uuid[0])
        cJSON_AddStringToObject(o, "uuid", g->uuid);
    else
        cJSON_AddNullToObject(o, "uuid");
    cJSON_AddNumberToObject(o, "memory_total_bytes", (double)g->mem_total);
    cJSON_AddNumberToObject(o, "memory_used_bytes", (double)g->mem_used);
    cJSON_AddNumberToObject(o, "memory_free_bytes", (double)g->mem_free);
    add_opt_int(o, "utilization_gpu_percent", g->util_gpu);
    add_opt_int(o, "utilization_memory_percent", g->util_mem);
    add_opt_int(o, "temperature_c", g->temp_c);
    add_opt_int(o, "power_w", g->power_w);
    return o;
}

cJSON *bn_hw_to_json(const bn_hw_info *hw)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *cpu = cJSON_AddObjectToObject(d, "cpu");
    cJSON_AddStringToObject(cpu, "model", hw->cpu->model[0] ? hw->cpu->model : "unknown");
    cJSON_AddStringToObject(cpu, "vendor", hw->cpu->vendor);
    cJSON_AddStringToObject(cpu, "arch", hw->cpu->arch);
    cJSON_AddNumberToObject(cpu, "cores", hw->cpu->n_physical);
    cJSON_AddNumberToObject(cpu, "threads", hw->cpu->n_cores);
    cJSON_AddItemToObject(cpu, "features", features_array(hw->cpu_features));
    cJSON *c = cJSON_AddObjectToObject(cpu, "caches");
    cJSON_AddNumberToObject(c, "l1d_bytes", (double)hw->cpu->l1d_bytes);
    cJSON_AddNumberToObject(c, "l2_bytes", (double)hw->cpu->l2_bytes);
    cJSON_AddNumberToObject(c, "l3_bytes", (double)hw->cpu->l3_bytes);
    cJSON *m = cJSON_AddObjectToObject(d, "memory");
    cJSON_AddNumberToObject(m, "total_bytes", (double)hw->mem_total);
    cJSON_AddNumberToObject(m, "available_bytes", (double)hw->mem_available);
    cJSON *os = cJSON_AddObjectToObject(d, "os");
    cJSON_AddStringToObject(os, "name", hw->os_name);
    cJSON_AddStringToObject(os, "kernel", hw->kernel);
    cJSON_AddStringToObject(os, "machine", hw->machine);
    cJSON *g = cJSON_AddArrayToObject(d, "gpus");
    for (int i = 0; i < hw->n_gpus; i++) cJSON_AddItemToArray(g, gpu_json(&hw->gpus[i]));
    cJSON_AddStringToObject(d, "gpu_status", hw->gpu_status);
    if (hw->driver_version[0])
        cJSON_AddStringToObject(d, "nvidia_driver", hw->driver_version);
    else
        cJSON_AddNullToObject(d, "nvidia_driver");
    cJSON_AddStringToObject(d, "kernels", hw->kernels);
    if (hw->cuda_status[0]) {
        cJSON *cu = cJSON_AddObjectToObject(d, "cuda");
        cJSON_AddBoolToObject(cu, "built", hw->cuda_built);
        cJSON_AddNumberToObject(cu, "devices", hw->cuda_devices);
        cJSON_AddStringToObject(cu, "status", hw->cuda_status);
    }
    /* a failed allocation anywhere above leaves a member out: say so rather than lie */
    if (!cJSON_GetObjectItemCaseSensitive(d, "kernels")) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}
