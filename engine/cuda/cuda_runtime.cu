/* cuda_runtime.cu - the CUDA runtime as the host side of the backend needs it: devices,
 * the pool's allocator hook, copies, events (cuda_internal.h). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

const char *bn__cu_errstr(int err)
{
    return cudaGetErrorString((cudaError_t)err);
}

int bn__cu_device_count(int *n)
{
    *n = 0;
    const cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) *n = 0;
    return (int)e;
}

int bn__cu_device_props(int dev, bn__cu_props *p)
{
    memset(p, 0, sizeof *p);
    cudaDeviceProp d;
    cudaError_t e = cudaGetDeviceProperties(&d, dev);
    if (e != cudaSuccess) return (int)e;
    snprintf(p->name, sizeof p->name, "%s", d.name);
    p->cc_major = d.major;
    p->cc_minor = d.minor;
    p->n_sm = d.multiProcessorCount;
    p->bus_bits = d.memoryBusWidth;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev) == cudaSuccess)
        p->mem_khz = khz;
    cudaRuntimeGetVersion(&p->runtime);
    cudaDriverGetVersion(&p->driver);
    e = cudaSetDevice(dev);
    if (e == cudaSuccess) e = cudaMemGetInfo(&p->mem_free, &p->mem_total);
    if (e != cudaSuccess) p->mem_total = d.totalGlobalMem;
    return (int)e;
}

int bn__cu_set_device(int dev)
{
    return (int)cudaSetDevice(dev);
}

void *bn__cu_malloc(size_t size, void *user)
{
    (void)user;
    void *p = NULL;
    return cudaMalloc(&p, size) == cudaSuccess ? p : NULL;
}

void bn__cu_free(void *dev, void *user)
{
    (void)user;
    cudaFree(dev);
}

int bn__cu_h2d(void *dst, const void *src, size_t n)
{
    return (int)cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice);
}

int bn__cu_d2h(void *dst, const void *src, size_t n)
{
    return (int)cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost);
}

int bn__cu_d2d(void *dst, const void *src, size_t n)
{
    return (int)cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, 0);
}

int bn__cu_memset(void *dst, int v, size_t n)
{
    return (int)cudaMemsetAsync(dst, v, n, 0);
}

int bn__cu_sync(void)
{
    cudaError_t e = cudaGetLastError();
    const cudaError_t s = cudaDeviceSynchronize();
    return (int)(e != cudaSuccess ? e : s);
}

int bn__cu_event_now(void **ev)
{
    cudaEvent_t e;
    cudaError_t r = cudaEventCreate(&e);
    if (r != cudaSuccess) return (int)r;
    r = cudaEventRecord(e, 0);
    if (r != cudaSuccess) {
        cudaEventDestroy(e);
        return (int)r;
    }
    *ev = (void *)e;
    return 0;
}

int bn__cu_event_ms(void *a, void *b, float *ms)
{
    cudaError_t r = cudaEventSynchronize((cudaEvent_t)b);
    if (r == cudaSuccess) r = cudaEventElapsedTime(ms, (cudaEvent_t)a, (cudaEvent_t)b);
    cudaEventDestroy((cudaEvent_t)a);
    cudaEventDestroy((cudaEvent_t)b);
    return (int)r;
}
