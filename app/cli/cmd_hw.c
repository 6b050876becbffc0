/* cmd_hw.c - `bitnet hw`: the hardware report (see hw.h). */
#include "commands.h"
#include "common/hw.h"

#include <string.h>

void cmd_hw_help(FILE *out)
{
    fprintf(out, "Usage: bitnet hw [--json]\n\n"
                 "Reports the CPU (model, cores and threads, ISA features, caches), memory\n"
                 "(total and available), the OS and kernel, NVIDIA GPUs (through NVML, loaded\n"
                 "at run time when the driver is installed: name, memory, utilisation,\n"
                 "temperature, power, driver version), the CUDA backend (\"not built\" unless\n"
                 "built with make CUDA=1; else the devices it sees, or \"no device\") and the\n"
                 "kernel variant the engine uses.\n");
}

/* "1.5 GiB" */
static const char *human(unsigned long long b, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

static void print_text(const bn_hw_info *hw)
{
    char a[32], b[32], c[32];
    const bn_cpu_info *cpu = hw->cpu;
    printf("CPU       %s (%s%s%s)\n", cpu->model[0] ? cpu->model : "unknown model", cpu->arch,
           cpu->vendor[0] ? ", " : "", cpu->vendor);
    printf("          %d cores, %d threads\n", cpu->n_physical, cpu->n_cores);
    printf("          features: %s\n", hw->cpu_features[0] ? hw->cpu_features : "none");
    printf("          caches: L1d %s, L2 %s, L3 %s\n", human(cpu->l1d_bytes, a, sizeof a),
           human(cpu->l2_bytes, b, sizeof b), human(cpu->l3_bytes, c, sizeof c));
    if (hw->mem_total)
        printf("Memory    %s total, %s available\n", human(hw->mem_total, a, sizeof a),
               human(hw->mem_available, b, sizeof b));
    else
        printf("Memory    unknown (/proc/meminfo unreadable)\n");
    printf("OS        %s, kernel %s (%s)\n", hw->os_name, hw->kernel, hw->machine);
    printf("GPU       %s\n", hw->gpu_status);
    for (int i = 0; i < hw->n_gpus; i++) {
        const bn_hw_gpu *g = &hw->gpus[i];
        printf("          %d: %s, %s memory (%s used)", g->index, g->name,
               human(g->mem_total, a, sizeof a), human(g->mem_used, b, sizeof b));
        if (g->util_gpu >= 0) printf(", %d%% busy", g->util_gpu);
        if (g->temp_c >= 0) printf(", %d C", g->temp_c);
        if (g->power_w >= 0) printf(", %.0f W", g->power_w);
        printf("\n");
    }
    printf("CUDA      %s\n", hw->cuda_status);
    printf("Kernels   %s\n", hw->kernels);
}

int cmd_hw(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_hw_help(stdout);
            return BN_EXIT_OK;
        } else {
            return cli_usage_error("hw", "unknown option '%s'", argv[i]);
        }
    }
    bn_hw_info hw;
    bn_hw_collect(&hw, NULL);
    bn_hw_cuda(&hw);
    if (json) {
        cJSON *d = bn_hw_to_json(&hw);
        if (!d) {
            cli_error("out of memory");
            return BN_EXIT_FAIL;
        }
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    print_text(&hw);
    return fflush(stdout) ? BN_EXIT_FAIL : BN_EXIT_OK;
}
