/* cmd_bench.c - `bitnet bench`: the model benchmark (bench_model.c) or a named suite. */
#include "commands.h"

#include <string.h>

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
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        cmd_bench_help(stdout);
        return BN_EXIT_OK;
    }
    if (argc >= 2 && !strcmp(argv[1], "kernels")) return bench_kernels_main(argc - 1, argv + 1);
    if (argc >= 2 && argv[1][0] != '-')
        return cli_usage_error("bench",
                               "unknown suite '%s' (kernels; or options for the model "
                               "benchmark)",
                               argv[1]);
    return bench_model_main(argc, argv);
}
