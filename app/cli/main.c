/* main.c - the bitnet program: command dispatch, --version, help. */
#include "commands.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/core.h"
#include "bitnet/cpu.h"
#include "bitnet/file.h"
#include "bitnet/kernels.h"

static int cmd_help(int argc, char **argv);
static void cmd_help_help(FILE *out);
static int cmd_version(int argc, char **argv);
static void cmd_version_help(FILE *out);

const bn_command bn_commands[] = {
        {"alerts", "alert rules: list, eval, history, test, add, edit, silence, ack", cmd_alerts,
         cmd_alerts_help},
        {"analyze", "per-layer weight statistics of a GGUF (SQNR, activations with --source)",
         cmd_analyze, cmd_analyze_help},
        {"audit", "the audit log of administrative actions (list, verify)", cmd_audit,
         cmd_audit_help},
        {"bench", "benchmark a model (pp/tg tokens/s, ceiling) or the kernels", cmd_bench,
         cmd_bench_help},
        {"billing", "usage to Stripe's meter events (send, status, reconcile, retry)", cmd_billing,
         cmd_billing_help},
        {"chat", "talk with a model (readline; stdin when not a terminal)", cmd_chat,
         cmd_chat_help},
        {"classify", "the top classes of images (ResNet, ViT, EfficientNet GGUF)", cmd_classify,
         cmd_classify_help},
        {"config", "read and change settings (get, set, unset, list, path)", cmd_config,
         cmd_config_help},
        {"convert", "convert a Hugging Face, PyTorch or ONNX model to a BitNet GGUF",
         cmd_convert, cmd_convert_help},
        {"doctor", "check the environment and health (PASS/WARN/FAIL)", cmd_doctor,
         cmd_doctor_help},
        {"generate", "continue a prompt with a model", cmd_generate, cmd_generate_help},
        {"help", "show help for a command", cmd_help, cmd_help_help},
        {"history", "browse, export and prune the run history", cmd_history, cmd_history_help},
        {"hw", "report CPU, memory, OS, GPUs and kernels", cmd_hw, cmd_hw_help},
        {"image", "decode and preprocess an image (image info, image prep)", cmd_image,
         cmd_image_help},
        {"inspect", "show a GGUF file's metadata and tensors", cmd_inspect, cmd_inspect_help},
        {"jobs", "the conversion queue (list, show, cancel, retry, wait, work)", cmd_jobs,
         cmd_jobs_help},
        {"keys", "API keys of the tenants (create, list, revoke, check)", cmd_keys, cmd_keys_help},
        {"monitor", "metrics endpoint, exporters and alerting (a daemon)", cmd_monitor,
         cmd_monitor_help},
        {"perplexity", "perplexity of a model on a text file", cmd_perplexity,
         cmd_perplexity_help},
        {"profile", "time per operation class, bandwidth, and measured advice (--gpu: CUDA)",
         cmd_profile, cmd_profile_help},
        {"quickstart", "run generate, bench and doctor; write a tutorial of them (markdown)",
         cmd_quickstart, cmd_quickstart_help},
        {"serve", "serve a model over HTTP with OpenAI's completion API", cmd_serve,
         cmd_serve_help},
        {"setup", "the first-run wizard: hardware, checks, model, first run, config", cmd_setup,
         cmd_setup_help},
        {"synth", "write a random model of a real shape", cmd_synth, cmd_synth_help},
        {"tenants", "the platform's tenants (add, list, show, suspend, erase, export)", cmd_tenants,
         cmd_tenants_help},
        {"tokenize", "split text into tokens (ids and pieces)", cmd_tokenize, cmd_tokenize_help},
        {"tokenizer", "train a byte-level BPE tokenizer (tokenizer train)", cmd_tokenizer,
         cmd_tokenizer_help},
        {"train", "train a BitNet b1.58 model (train export: write its GGUF)", cmd_train,
         cmd_train_help},
        {"tui", "the full-screen terminal UI (also: bitnet with no command)", cmd_tui,
         cmd_tui_help},
        {"usage", "usage per tenant and day, with cost (usage report)", cmd_usage, cmd_usage_help},
        {"validate", "check a config file for deployment (CI)", cmd_validate,
         cmd_validate_help},
        {"version", "print version and build information", cmd_version, cmd_version_help},
        {NULL, NULL, NULL, NULL},
};

static void print_main_help(FILE *out)
{
    fprintf(out, "bitnet %s - a toolkit for 1.58-bit (ternary) language models\n\n",
            BN_VERSION_STRING);
    fprintf(out, "Usage: bitnet <command> [options]\n       bitnet --version | --help\n\n");
    fprintf(out, "Commands:\n");
    for (const bn_command *c = bn_commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nEvery command takes --help; see bitnet(1) for the full manual.\n"
                 "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static const bn_command *find_command(const char *name)
{
    for (const bn_command *c = bn_commands; c->name; c++)
        if (strcmp(c->name, name) == 0) return c;
    return NULL;
}

static void cmd_help_help(FILE *out)
{
    fprintf(out, "Usage: bitnet help [COMMAND] [--json]\n\nShows the help of COMMAND, or the "
                 "list of commands.\n--json prints {\"version\", \"commands\": [{\"name\", "
                 "\"summary\"}]} (with COMMAND: that one entry and its \"help\" text).\n");
}

/* The help text of one command, captured into a malloc'ed string (NULL on failure). */
static char *help_text(const bn_command *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    c->help(f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int cmd_help(int argc, char **argv)
{
    int json = 0;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_help_help(stdout);
            return BN_EXIT_OK;
        } else if (argv[i][0] == '-' || name)
            return cli_usage_error("help", "unexpected argument '%s'", argv[i]);
        else
            name = argv[i];
    }
    const bn_command *one = name ? find_command(name) : NULL;
    if (name && !one) return cli_usage_error("help", "unknown command '%s'", name);
    if (!json) {
        if (one)
            one->help(stdout);
        else
            print_main_help(stdout);
        return BN_EXIT_OK;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "version", BN_VERSION_STRING);
    cJSON *arr = cJSON_AddArrayToObject(d, "commands");
    for (const bn_command *c = bn_commands; c->name; c++) {
        if (one && c != one) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddStringToObject(o, "summary", c->summary);
        if (one) {
            char *h = help_text(c);
            if (h) cJSON_AddStringToObject(o, "help", h);
            free(h);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static void cmd_version_help(FILE *out)
{
    fprintf(out, "Usage: bitnet version [--json]\n\nPrints the version, the CPU features "
                 "detected and the kernel variant in use.\n");
}

static int cmd_version(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cmd_version_help(stdout);
            return BN_EXIT_OK;
        } else
            return cli_usage_error("version", "unknown option '%s'", argv[i]);
    }
    const bn_cpu_info *cpu = bn_cpu_info_get();
    char feats[256];
    bn_cpu_features_str(cpu, feats, sizeof feats);
    const char *kern = bn_kernels_get()->name;
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "version", BN_VERSION_STRING);
        cJSON_AddStringToObject(d, "arch", cpu->arch);
        cJSON_AddStringToObject(d, "cpu_features", feats);
        cJSON_AddStringToObject(d, "kernels", kern);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("bitnet %s (%s; features: %s; kernels: %s)\n", BN_VERSION_STRING, cpu->arch,
           feats[0] ? feats : "none", kern);
    return BN_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        /* on a terminal: the full-screen UI; otherwise (pipes, scripts, dumb) the help */
        if (cli_tui_wanted()) return cmd_tui(argc, argv);
        print_main_help(stdout);
        return BN_EXIT_OK;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0)
        return cmd_version(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_main_help(stdout);
        return BN_EXIT_OK;
    }
    const bn_command *c = find_command(cmd);
    if (!c) {
        cli_error("unknown command '%s'", cmd);
        fprintf(stderr, "Try 'bitnet --help'.\n");
        return BN_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
