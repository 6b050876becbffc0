/* bench_gpu.h - `bitnet bench --gpu` and `bitnet bench kernels --gpu` (bench_gpu.c): the CUDA
 * backend against the CPU engine. Both return an exit code; without the backend they fail
 * with "CUDA: not built". */
#ifndef BITNET_APP_BENCH_GPU_H
#define BITNET_APP_BENCH_GPU_H

#include <stdio.h>

/* the --gpu part of `bitnet bench --help` */
void bench_gpu_help(FILE *out);
/* argv[0] is "kernels" */
int bench_kernels_gpu_main(int argc, char **argv);
/* argv[0] is "bench" */
int bench_model_gpu_main(int argc, char **argv);

#endif
