/* commands.h - the command table of the bitnet program and each command's entry point and
 * help (exit codes and output helpers: common/cli.h). */
#ifndef BITNET_APP_COMMANDS_H
#define BITNET_APP_COMMANDS_H

#include <stdio.h>

#include "common/cli.h"

typedef struct bn_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*help)(FILE *out);
} bn_command;

extern const bn_command bn_commands[];

int cmd_alerts(int argc, char **argv);
void cmd_alerts_help(FILE *out);
int cmd_analyze(int argc, char **argv);
void cmd_analyze_help(FILE *out);
int cmd_audit(int argc, char **argv);
void cmd_audit_help(FILE *out);
int cmd_bench(int argc, char **argv);
void cmd_bench_help(FILE *out);
int cmd_billing(int argc, char **argv);
void cmd_billing_help(FILE *out);
int cmd_chat(int argc, char **argv);
void cmd_chat_help(FILE *out);
int cmd_classify(int argc, char **argv);
void cmd_classify_help(FILE *out);
int cmd_config(int argc, char **argv);
void cmd_config_help(FILE *out);
int cmd_convert(int argc, char **argv);
void cmd_convert_help(FILE *out);
int cmd_jobs(int argc, char **argv);
void cmd_jobs_help(FILE *out);
int cmd_doctor(int argc, char **argv);
void cmd_doctor_help(FILE *out);
int cmd_history(int argc, char **argv);
void cmd_history_help(FILE *out);
int cmd_hw(int argc, char **argv);
void cmd_hw_help(FILE *out);
int cmd_image(int argc, char **argv);
void cmd_image_help(FILE *out);
int cmd_validate(int argc, char **argv);
void cmd_validate_help(FILE *out);
int cmd_inspect(int argc, char **argv);
void cmd_inspect_help(FILE *out);
int cmd_keys(int argc, char **argv);
void cmd_keys_help(FILE *out);
int cmd_monitor(int argc, char **argv);
void cmd_monitor_help(FILE *out);
int cmd_generate(int argc, char **argv);
void cmd_generate_help(FILE *out);
int cmd_perplexity(int argc, char **argv);
void cmd_perplexity_help(FILE *out);
int cmd_profile(int argc, char **argv);
void cmd_profile_help(FILE *out);
int cmd_quickstart(int argc, char **argv);
void cmd_quickstart_help(FILE *out);
int cmd_serve(int argc, char **argv);
void cmd_serve_help(FILE *out);
int cmd_setup(int argc, char **argv);
void cmd_setup_help(FILE *out);
int cmd_synth(int argc, char **argv);
void cmd_synth_help(FILE *out);
int cmd_tenants(int argc, char **argv);
void cmd_tenants_help(FILE *out);
int cmd_tokenize(int argc, char **argv);
void cmd_tokenize_help(FILE *out);
int cmd_tokenizer(int argc, char **argv);
void cmd_tokenizer_help(FILE *out);
int cmd_train(int argc, char **argv);
void cmd_train_help(FILE *out);
int cmd_usage(int argc, char **argv);
void cmd_usage_help(FILE *out);
int cmd_tui(int argc, char **argv);
void cmd_tui_help(FILE *out);
/* Whether `bitnet` with no command should open the TUI (a usable terminal). */
int cli_tui_wanted(void);

#endif
