/* cli.h - what the bitnet commands share: exit codes, the command table, output. */
#ifndef BITNET_APP_CLI_H
#define BITNET_APP_CLI_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Exit codes (documented in bitnet(1)). */
enum {
    BN_EXIT_OK = 0,
    BN_EXIT_FAIL = 1,  /* the command ran and failed */
    BN_EXIT_USAGE = 2, /* bad command line */
};

typedef struct bn_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*help)(FILE *out);
} bn_command;

extern const bn_command bn_commands[];

/* Prints "bitnet: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message of the last cli_error ("" when none), for the run history. */
const char *cli_last_error(void);
/* Prints "bitnet <cmd>: <message>" and a pointer to --help; returns BN_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a JSON document to stdout (pretty) and frees it; returns 0 or -1. */
int cli_print_json(cJSON *doc);
/* Parses a positive integer list like "1,2,4" into out (max n); returns count or -1. */
int cli_parse_int_list(const char *s, int *out, int max);
/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
/* Checks an output path before any work (bn_file_check_output, bitnet/file.h): its folder
 * exists; an existing file is replaced only with force (--force) and never when it is one of
 * inputs[0 .. n) (NULL entries skipped). 0, or prints "bitnet: <cmd>: <why>" and returns
 * BN_EXIT_FAIL. */
int cli_check_output(const char *cmd, const char *out, int force, const char *const *inputs, int n);

int cmd_alerts(int argc, char **argv);
void cmd_alerts_help(FILE *out);
int cmd_bench(int argc, char **argv);
void cmd_bench_help(FILE *out);
int cmd_chat(int argc, char **argv);
void cmd_chat_help(FILE *out);
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
int cmd_validate(int argc, char **argv);
void cmd_validate_help(FILE *out);
int cmd_inspect(int argc, char **argv);
void cmd_inspect_help(FILE *out);
int cmd_monitor(int argc, char **argv);
void cmd_monitor_help(FILE *out);
int cmd_generate(int argc, char **argv);
void cmd_generate_help(FILE *out);
int cmd_perplexity(int argc, char **argv);
void cmd_perplexity_help(FILE *out);
int cmd_quickstart(int argc, char **argv);
void cmd_quickstart_help(FILE *out);
int cmd_serve(int argc, char **argv);
void cmd_serve_help(FILE *out);
int cmd_setup(int argc, char **argv);
void cmd_setup_help(FILE *out);
int cmd_synth(int argc, char **argv);
void cmd_synth_help(FILE *out);
int cmd_tokenize(int argc, char **argv);
void cmd_tokenize_help(FILE *out);
int cmd_tokenizer(int argc, char **argv);
void cmd_tokenizer_help(FILE *out);
int cmd_train(int argc, char **argv);
void cmd_train_help(FILE *out);
int cmd_tui(int argc, char **argv);
void cmd_tui_help(FILE *out);
/* Whether `bitnet` with no command should open the TUI (a usable terminal). */
int cli_tui_wanted(void);

#endif
