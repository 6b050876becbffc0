/* cmd_bench.c - `bitnet bench`: the model benchmark (bench_model.c) or a named suite. */
#include "commands.h"

#include <string.h>

#include "bench/bench_gpu.h"

int bench_kernels_main(int argc, char **argv);
void bench_kernels_help(FILE *out);
int bench_model_main(int argc, char **argv);
void bench_model_help(FILE *out);

void cmd_bench_help(FILE *out)
{
    bench_model_help(out);
    fprintf(out, "\nUsage: bitnet bench kernels [options]\n\n"
                 "Suites:\n"
                 "  kernels   ternary GEMV/GEMM on BitNet b1.58 2B4T shapes, against the\n"
                 "            reference kernels and the measured read bandwidth\n\n"
                 "See 'bitnet bench kernels --help'.\n");
    bench_gpu_help(out);
}

static int has_arg(int argc, char **argv, const char *a)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], a)) return 1;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        cmd_bench_help(stdout);
        return BN_EXIT_OK;
    }
    if (argc >= 2 && !strcmp(argv[1], "kernels"))
        return has_arg(argc, argv, "--gpu") ? bench_kernels_gpu_main(argc - 1, argv + 1)
                                            : bench_kernels_main(argc - 1, argv + 1);
    if (argc >= 2 && argv[1][0] != '-')
        return cli_usage_error("bench",
                               "unknown suite '%s' (kernels; or options for the model "
                               "benchmark)",
                               argv[1]);
    return has_arg(argc, argv, "--gpu") ? bench_model_gpu_main(argc, argv)
                                        : bench_model_main(argc, argv);
}
