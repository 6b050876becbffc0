/* cmd_config.c - `bitnet config get|set|unset|list|path`: read and change the settings
 * file (see bitnet-config(5)). */
#include "commands.h"
#include "common/config.h"
#include "monitor/monitor.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cmd_config_help(FILE *out)
{
    fprintf(out, "Usage: bitnet config get KEY [--json]\n"
                 "       bitnet config set KEY VALUE [--json]\n"
                 "       bitnet config unset KEY [--json]\n"
                 "       bitnet config list [--json]\n"
                 "       bitnet config path [--json]\n\n"
                 "Reads and changes the settings file ($XDG_CONFIG_HOME/bitnet/config.json, or\n"
                 "$BITNET_CONFIG). get prints the value in effect (environment BITNET_<KEY>, else\n"
                 "the file, else the default); KEY may also name a section (exporters.datadog).\n"
                 "set checks VALUE against the key's type and rewrites the file atomically,\n"
                 "keeping every other key; unset removes a key (its default applies again).\n"
                 "list shows every key with its value and where the value comes from.\n\n"
                 "Exit status: 0 ok, 1 the file cannot be read, parsed or written, 2 unknown\n"
                 "key or a value of the wrong type. The keys are in bitnet-config(5).\n");
}

/* A value as text: strings raw, everything else as compact JSON. malloc'ed. */
static char *value_text(const cJSON *v)
{
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    return cJSON_PrintUnformatted(v);
}

static int load(bn_config **cfg)
{
    char err[BN_CONFIG_ERR_MAX];
    if (bn_config_load(cfg, err, sizeof err)) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

static int config_get(const char *key, int json)
{
    bn_config *cfg;
    int rc = load(&cfg);
    if (rc) return rc;
    const cJSON *v = bn_config_get_json(cfg, key);
    if (!v) {
        bn_config_free(cfg);
        return cli_usage_error("config", "unknown key '%s' (see 'bitnet config list')", key);
    }
    const bn_config_key *k = bn_config_find_key(key);
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "key", key);
        cJSON_AddItemToObject(d, "value", cJSON_Duplicate(v, 1));
        if (k)
            cJSON_AddStringToObject(d, "source",
                                    bn_config_source_name(bn_config_source_of(cfg, key)));
        bn_config_free(cfg);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    char *s = value_text(v);
    bn_config_free(cfg);
    if (!s) {
        cli_error("out of memory");
        return BN_EXIT_FAIL;
    }
    puts(s);
    free(s);
    return BN_EXIT_OK;
}

static void note_env_override(const char *key)
{
    char env[128];
    const char *ev;
    if (bn_config_env_name(key, env, sizeof env) == 0 && (ev = getenv(env)) && *ev)
        fprintf(stderr,
                "bitnet config: note: %s is set in the environment and overrides "
                "the file\n",
                env);
}

static int config_set(const char *key, const char *text, int json)
{
    char path[BN_CONFIG_PATH_MAX], err[BN_CONFIG_ERR_MAX];
    const bn_config_key *k = bn_config_find_key(key);
    if (!k) return cli_usage_error("config", "unknown key '%s' (see 'bitnet config list')", key);
    cJSON *v = NULL;
    if (text && bn_config_value_parse(k, text, &v, err, sizeof err))
        return cli_usage_error("config", "%s", err);
    bn_config_first_error fe = {err, sizeof err, NULL, 0};
    if (v && !strcmp(key, "alerts") &&
        bn_monitor_check_alerts(v, bn_config_keep_first_error, &fe)) {
        cJSON_Delete(v); /* the rules the monitor would refuse (a metric it never exports) */
        return cli_usage_error("config", "%s", err);
    }
    if (bn_config_path(path, sizeof path)) {
        cJSON_Delete(v);
        cli_error("cannot name the config file: set HOME or XDG_CONFIG_HOME");
        return BN_EXIT_FAIL;
    }
    int changed = 0;
    if (bn_config_write_key(path, key, v, &changed, err, sizeof err)) {
        cJSON_Delete(v);
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    note_env_override(key);
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "key", key);
        if (v)
            cJSON_AddItemToObject(d, "value", v);
        else
            cJSON_AddBoolToObject(d, "removed", changed);
        cJSON_AddStringToObject(d, "path", path);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    cJSON_Delete(v);
    return BN_EXIT_OK;
}

static int config_list(int json)
{
    bn_config *cfg;
    int rc = load(&cfg);
    if (rc) return rc;
    size_t n;
    const bn_config_key *keys = bn_config_keys(&n);
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "path", bn_config_file(cfg));
        cJSON_AddBoolToObject(d, "exists", bn_config_file_exists(cfg));
        cJSON_AddItemToObject(d, "config", cJSON_Duplicate(bn_config_effective(cfg), 1));
        cJSON *src = cJSON_AddObjectToObject(d, "sources");
        for (size_t i = 0; i < n; i++)
            cJSON_AddStringToObject(src, keys[i].key,
                                    bn_config_source_name(bn_config_source_of(cfg, keys[i].key)));
        bn_config_free(cfg);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("# %s%s\n", bn_config_file(cfg), bn_config_file_exists(cfg) ? "" : " (absent)");
    for (size_t i = 0; i < n; i++) {
        char *s = value_text(bn_config_get_json(cfg, keys[i].key));
        bn_config_source src = bn_config_source_of(cfg, keys[i].key);
        char env[128] = "";
        if (src == BN_CFG_SRC_ENV) bn_config_env_name(keys[i].key, env, sizeof env);
        printf("%-34s %s%s%s%s%s\n", keys[i].key, s && *s ? s : "\"\"",
               src == BN_CFG_SRC_DEFAULT ? "" : "  (",
               src == BN_CFG_SRC_DEFAULT ? ""
               : src == BN_CFG_SRC_ENV   ? "env "
                                         : "file",
               env, src == BN_CFG_SRC_DEFAULT ? "" : ")");
        free(s);
    }
    bn_config_free(cfg);
    return BN_EXIT_OK;
}

static int config_path(int json)
{
    char path[BN_CONFIG_PATH_MAX], data[BN_CONFIG_PATH_MAX];
    if (bn_config_path(path, sizeof path)) {
        cli_error("cannot name the config file: set HOME or XDG_CONFIG_HOME");
        return BN_EXIT_FAIL;
    }
    if (!json) {
        puts(path);
        return BN_EXIT_OK;
    }
    /* the data directory may be set in the file: load it, but a bad file is no error here */
    bn_config *cfg = NULL;
    char err[BN_CONFIG_ERR_MAX];
    bn_config_load(&cfg, err, sizeof err);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "config", path);
    cJSON_AddBoolToObject(d, "exists", access(path, F_OK) == 0);
    if (bn_data_dir(cfg, data, sizeof data) == 0) cJSON_AddStringToObject(d, "data_dir", data);
    bn_config_free(cfg);
    return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int cmd_config(int argc, char **argv)
{
    int json = 0, n = 0;
    const char *args[4] = {NULL, NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cmd_config_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--")) {
            for (i++; i < argc; i++) {
                if (n == 4) return cli_usage_error("config", "too many arguments");
                args[n++] = argv[i];
            }
        } else if (argv[i][0] == '-' && argv[i][1] && n < 2) {
            return cli_usage_error("config", "unknown option '%s'", argv[i]);
        } else {
            if (n == 4) return cli_usage_error("config", "too many arguments");
            args[n++] = argv[i];
        }
    }
    const char *sub = args[0];
    if (!sub) return cli_usage_error("config", "missing action: get, set, unset, list or path");
    int want = !strcmp(sub, "get") || !strcmp(sub, "unset") ? 2 : !strcmp(sub, "set") ? 3 : 1;
    if (strcmp(sub, "get") && strcmp(sub, "set") && strcmp(sub, "unset") && strcmp(sub, "list") &&
        strcmp(sub, "path"))
        return cli_usage_error("config", "unknown action '%s'", sub);
    if (n != want)
        return cli_usage_error("config", "%s takes %d argument%s", sub, want - 1,
                               want == 2 ? "" : "s");
    if (!strcmp(sub, "get")) return config_get(args[1], json);
    if (!strcmp(sub, "set")) return config_set(args[1], args[2], json);
    if (!strcmp(sub, "unset")) return config_set(args[1], NULL, json);
    if (!strcmp(sub, "list")) return config_list(json);
    return config_path(json);
}
