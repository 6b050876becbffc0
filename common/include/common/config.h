/*
 * config.h - the user's settings: the JSON file, BITNET_* environment overrides, the
 * schema every key follows, and the data directory. The schema is documented for users
 * in bitnet-config(5); the table in config.c is its source of truth.
 *
 * Usage:
 *
 *     bn_config *cfg;
 *     char err[BN_CONFIG_ERR_MAX];
 *     if (bn_config_load(&cfg, err, sizeof err) != 0) {
 *         cli_error("%s", err);        // "FILE:3:14: ..." or "FILE: threads: expected ..."
 *         return BN_EXIT_FAIL;
 *     }
 *     long long threads = bn_config_get_int(cfg, "threads");
 *     const char *model = bn_config_get_str(cfg, "model");   // owned by cfg; "" when unset
 *     char dir[4096];
 *     bn_data_dir_ensure(cfg, dir, sizeof dir, err, sizeof err);  // created on demand
 *     bn_config_free(cfg);
 *
 * Where: $BITNET_CONFIG if set, else $XDG_CONFIG_HOME/bitnet/config.json, else
 * ~/.config/bitnet/config.json. A missing file means every key has its default.
 * Precedence of a value: environment (BITNET_ + the key upper-cased with '.' as '_',
 * e.g. history.retention_days -> BITNET_HISTORY_RETENTION_DAYS) > file > default.
 * Every value is checked against the schema when loading; the first error makes the
 * load fail with a one-line message naming the file and the line:column (JSON syntax)
 * or the key (a wrong type or range). Keys the schema does not know are kept and
 * ignored by the load (bitnet validate reports them).
 *
 * Paths (type BN_CFG_PATH): "~/" is the home directory; a relative path in the file is
 * relative to the file's directory, one from the environment or `config set` to the
 * current directory. The getters return them resolved.
 *
 * Ownership: strings and cJSON values returned by the getters belong to cfg and live
 * until bn_config_free. No global state; error text goes to the caller's buffer.
 */
#ifndef BITNET_COMMON_CONFIG_H
#define BITNET_COMMON_CONFIG_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define BN_CONFIG_ERR_MAX  512
#define BN_CONFIG_FILE_MAX (1 << 20) /* bytes: a larger config file is an error */
#define BN_CONFIG_PATH_MAX 4096

typedef enum bn_config_type {
    BN_CFG_STRING = 0,
    BN_CFG_PATH = 1,   /* a file or directory name, resolved as above */
    BN_CFG_INT = 2,    /* a whole number within [min, max] */
    BN_CFG_NUMBER = 3, /* a finite number within [min, max] */
    BN_CFG_BOOL = 4,
    BN_CFG_LISTEN = 5,   /* "HOST:PORT" or "[V6]:PORT", port 1..65535 */
    BN_CFG_URL = 6,      /* "" or an http:// or https:// URL */
    BN_CFG_ENVNAME = 7,  /* the name of an environment variable */
    BN_CFG_ALERTS = 8,   /* an array of alert rules (see bitnet-config(5)) */
    BN_CFG_DURATION = 9, /* "10s", "5m", "1h30m" or seconds, at least min seconds */
    BN_CFG_TENANTS = 10, /* per-tenant settings: {"NAME": {"requests_per_min": N, ...}} */
} bn_config_type;

typedef enum bn_config_source {
    BN_CFG_SRC_DEFAULT = 0,
    BN_CFG_SRC_FILE = 1,
    BN_CFG_SRC_ENV = 2,
} bn_config_source;

typedef struct bn_config_key {
    const char *key; /* "history.retention_days" */
    bn_config_type type;
    const char *def;  /* the default as `config set` would take it; NULL: computed */
    double min, max;  /* BN_CFG_INT and BN_CFG_NUMBER */
    const char *help; /* one line */
} bn_config_key;

typedef struct bn_config bn_config;

/* The schema: every key, in documentation order. */
const bn_config_key *bn_config_keys(size_t *n);
/* The schema entry of a key, or NULL. */
const bn_config_key *bn_config_find_key(const char *key);
const char *bn_config_type_name(bn_config_type t);
const char *bn_config_source_name(bn_config_source s);

/* The config file's path (see above) into buf; 0, or -1 when it does not fit or no home
 * directory is known. */
int bn_config_path(char *buf, size_t size);

/* Loads the file at bn_config_path with the environment overrides. 0, or -1 with a
 * one-line message in err. */
int bn_config_load(bn_config **out, char *err, size_t errsz);

enum {
    BN_CONFIG_NO_ENV = 1,     /* ignore BITNET_* overrides */
    BN_CONFIG_MUST_EXIST = 2, /* a missing file is an error */
};
/* Loads a given file (flags: the enum above). */
int bn_config_load_file(const char *path, int flags, bn_config **out, char *err, size_t errsz);
void bn_config_free(bn_config *cfg);

/* The file it was loaded from, and whether that file existed. */
const char *bn_config_file(const bn_config *cfg);
int bn_config_file_exists(const bn_config *cfg);
/* The file's document as parsed (an empty object when it did not exist). */
const cJSON *bn_config_file_doc(const bn_config *cfg);

/* Effective values. key must be in the schema with a matching type, else the getters
 * return NULL / 0. get_str serves STRING, PATH, LISTEN, URL and ENVNAME keys. */
const char *bn_config_get_str(const bn_config *cfg, const char *key);
long long bn_config_get_int(const bn_config *cfg, const char *key);
double bn_config_get_double(const bn_config *cfg, const char *key);
int bn_config_get_bool(const bn_config *cfg, const char *key);
/* DURATION keys: the value in seconds (a string parsed by bn_parse_duration, or a number). */
double bn_config_get_duration(const bn_config *cfg, const char *key);
/* Any key or section ("exporters.cloudwatch") of the effective settings, or NULL. */
const cJSON *bn_config_get_json(const bn_config *cfg, const char *key);
/* All effective settings as one nested object. */
const cJSON *bn_config_effective(const bn_config *cfg);
bn_config_source bn_config_source_of(const bn_config *cfg, const char *key);

/* The data directory: the data_dir setting, else $XDG_DATA_HOME/bitnet, else
 * ~/.local/share/bitnet. bn_data_dir only names it; bn_data_dir_ensure also creates it
 * (and its parents, mode 0700). 0, or -1 (with a message for _ensure). */
int bn_data_dir(const bn_config *cfg, char *buf, size_t size);
int bn_data_dir_ensure(const bn_config *cfg, char *buf, size_t size, char *err, size_t errsz);

/* The directory of the bundled models: <dir of the executable>/../share/bitnet/models
 * (installed) or <dir of the executable>/../assets/models (source tree), the first that
 * exists. 0, or -1 when neither does. */
int bn_bundled_models_dir(char *buf, size_t size);

/* ---- lower level: parsing, checking, writing (validate, config set, tests) ---- */

/* 1-based line and column (in UTF-8 characters) of byte offset off of text. */
void bn_config_linecol(const char *text, size_t len, size_t off, int *line, int *col);

/* Parses a config document; name is used in messages ("NAME:LINE:COL: ..."). The top
 * level must be an object. 0, or -1 with err set. */
int bn_config_parse(const char *text, size_t len, const char *name, cJSON **out, char *err,
                    size_t errsz);

/* Reports one finding: is_error 0 for a warning; key is a path such as "threads" or
 * "alerts[2].op" ("" for the whole file). */
typedef void (*bn_config_report_fn)(void *ud, int is_error, const char *key, const char *msg);
enum {
    BN_CONFIG_CHECK_STRICT = 1, /* unknown keys are errors (else they are not reported) */
};
/* A bn_config_report_fn that keeps the first error, as "PREFIX: KEY: message" (prefix may be
 * NULL; no ": " after an empty key), in buf; ud is a bn_config_first_error, zeroed but for buf,
 * size and prefix. */
typedef struct bn_config_first_error {
    char *buf;
    size_t size;
    const char *prefix;
    int have;
} bn_config_first_error;
void bn_config_keep_first_error(void *ud, int is_error, const char *key, const char *msg);

/* Checks every known key of doc against the schema, and the alert rules. Returns the
 * number of errors reported. */
int bn_config_check(const cJSON *doc, int flags, bn_config_report_fn fn, void *ud);

/* Turns the text of a value ("8", "true", "[...]") into a JSON value of key k's type and
 * checks it. Paths are made absolute against the current directory (not "~/..."). 0, or
 * -1 with err ("threads: expected an integer from 0 to 4096"). */
int bn_config_value_parse(const bn_config_key *k, const char *text, cJSON **out, char *err,
                          size_t errsz);

/* Sets (value != NULL; it is copied) or removes (value NULL) key in the file at path,
 * keeping every other key, and writes the file atomically (temporary file, fsync,
 * rename). Creates the directory (0700) when missing. A file that does not parse is
 * left alone: -1 with the parse error. *changed says whether unset removed anything. */
int bn_config_write_key(const char *path, const char *key, const cJSON *value, int *changed,
                        char *err, size_t errsz);

/* Resolves a path setting: "~/x" is under the home directory, a relative path is under
 * base (NULL: the current directory). 0, or -1 when it does not fit. */
int bn_config_resolve_path(const char *p, const char *base, char *buf, size_t size);

/* "history.retention_days" -> "BITNET_HISTORY_RETENTION_DAYS". 0, or -1 if too long. */
int bn_config_env_name(const char *key, char *buf, size_t size);

/* "90s", "5m", "1h30m", "250ms", "2d", or a bare number of seconds -> seconds. 0/-1. */
int bn_parse_duration(const char *s, double *seconds);
/* "HOST:PORT" / "[V6]:PORT" / ":PORT" (all addresses) -> host (may be "") and port. */
int bn_parse_listen(const char *s, char *host, size_t hostsz, int *port);

#endif
