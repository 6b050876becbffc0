/*
 * hw.h - what this machine has: CPU (from the engine's detection), memory, OS and
 * kernel, NVIDIA GPUs through NVML (loaded with dlopen at run time, so bitnet neither
 * links nor needs it), and the kernel variant the engine will use. For `bitnet hw`,
 * `bitnet doctor` and the TUI's hardware panel.
 *
 * Usage (once):
 *
 *     bn_hw_info hw;
 *     bn_hw_collect(&hw, NULL);          // opens and closes NVML itself
 *     cJSON *j = bn_hw_to_json(&hw);
 *
 * Usage (live, as a panel refreshing every second):
 *
 *     bn_nvml *nv = NULL;
 *     char why[128];
 *     bn_nvml_open(&nv, why, sizeof why);  // nv stays NULL without NVML: fine
 *     bn_hw_collect(&hw, nv);
 *     for (;;) { bn_hw_refresh(&hw, nv); draw(&hw); sleep(1); }
 *     bn_nvml_close(nv);
 *
 * Everything is copied into bn_hw_info (no pointers into NVML); figures that cannot be
 * read are 0 (sizes) or -1 (percentages, temperatures, power).
 */
#ifndef BITNET_COMMON_HW_H
#define BITNET_COMMON_HW_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "bitnet/cpu.h"

#define BN_HW_MAX_GPUS 16

typedef struct bn_hw_gpu {
    int index;
    char name[96];
    char uuid[96];                /* "" when unknown */
    unsigned long long mem_total; /* bytes */
    unsigned long long mem_used;
    unsigned long long mem_free;
    int util_gpu, util_mem; /* percent busy over the last sample period, or -1 */
    int temp_c;             /* GPU core temperature, or -1 */
    double power_w;         /* board power draw, or -1 */
} bn_hw_gpu;

typedef struct bn_hw_info {
    const bn_cpu_info *cpu;           /* the engine's, never NULL */
    char cpu_features[256];           /* space-separated */
    unsigned long long mem_total;     /* bytes (MemTotal), 0 when unknown */
    unsigned long long mem_available; /* bytes (MemAvailable), 0 when unknown */
    char os_name[128];                /* /etc/os-release PRETTY_NAME, else uname -s */
    char kernel[128];                 /* uname -r */
    char machine[65];                 /* uname -m */
    int nvml;                         /* NVML loaded and initialised */
    int n_gpus;
    bn_hw_gpu gpus[BN_HW_MAX_GPUS];
    char driver_version[80]; /* NVIDIA driver, "" without NVML */
    char gpu_status[192];    /* one line: the GPUs, or why there are none */
    /* the CUDA backend (bitnet/cuda.h), filled by bn_hw_cuda only: "not built", "no
     * device (...)", or the devices it sees, one line */
    int cuda_built, cuda_devices;
    char cuda_status[320];
    const char *kernels; /* bn_kernels_get()->name */
} bn_hw_info;

/* NVML, loaded from libnvidia-ml.so.1 with dlopen and initialised. */
typedef struct bn_nvml bn_nvml;

/* 0, or -1 with why ("NVML not found", "nvmlInit failed: Driver Not Loaded"), *out NULL. */
int bn_nvml_open(bn_nvml **out, char *why, size_t whysz);
/* Fills up to max GPUs (figures read now); returns the number, or -1 with why. */
int bn_nvml_query(bn_nvml *nv, bn_hw_gpu *gpus, int max, char *why, size_t whysz);
/* The driver version, "" when NVML cannot tell. */
void bn_nvml_driver_version(bn_nvml *nv, char *buf, size_t size);
/* Shuts NVML down and unloads it; NULL is fine. */
void bn_nvml_close(bn_nvml *nv);

/* Collects everything. nv: an open NVML to use, or NULL to open and close one here. */
void bn_hw_collect(bn_hw_info *hw, bn_nvml *nv);
/* Re-reads what changes: available memory and the GPUs' figures (nv may be NULL: then
 * only memory). */
void bn_hw_refresh(bn_hw_info *hw, bn_nvml *nv);
/* Asks the CUDA backend for its devices (which starts a CUDA context on each: the front
 * ends that show hardware once call this, the monitors do not) into hw->cuda_*. */
void bn_hw_cuda(bn_hw_info *hw);
/* The document of `bitnet hw --json` (caller frees), NULL when out of memory. */
cJSON *bn_hw_to_json(const bn_hw_info *hw);

/* Memory from /proc/meminfo (bytes); 0, or -1 when it cannot be read. */
int bn_hw_meminfo(unsigned long long *total, unsigned long long *available);

#endif
