/* cmd_analyze.c - `bitnet analyze`: per-tensor weight statistics of a GGUF, against its float
 * source and on calibration text when given (convert/analyze.c), as a table or JSON. */
#include "commands.h"

#include <math.h>
#include <string.h>

#include "common/json.h"
#include "convert/convert.h"

void cmd_analyze_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet analyze MODEL.gguf [--source SRC [--calibrate TEXT]] [--json]\n\n"
            "Per-tensor statistics of a GGUF's weight matrices. Ternary tensors: the scale\n"
            "(mean, min and max over the tensor's scales), the fractions of zero, +1 and -1\n"
            "weights. Float tensors: mean |w|, rms, max |w| and outliers (|w| over 6 times\n"
            "the rms).\n\n"
            "Options:\n"
            "  --source SRC      the float model the GGUF was converted from (what convert\n"
            "                    takes): each ternary tensor's float weights, their outliers,\n"
            "                    and the SQNR (dB) and cosine of the ternary weights against them\n"
            "  --calibrate TEXT  run the source model over the text file TEXT (needs --source):\n"
            "                    each linear layer's input range, rms, outliers, the SQNR of\n"
            "                    its int8 quantization, and the layer's relative output error\n"
            "                    ||X (W - W')^T|| / ||X W^T|| with the GGUF's weights W'\n"
            "  -t, --threads N   threads (default: one per core)\n"
            "  --json            print the report as JSON\n"
            "  -h, --help        this help\n\n"
            "Exit status: 0 ok, 1 a file is unreadable or malformed or does not match (one\n"
            "line on stderr), 2 usage error.\n");
}

static int parse_args(int argc, char **argv, cv_analyze_opts *o, int *json)
{
    const char *C = "analyze";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_analyze_help(stdout);
            return -1;
        } else if (!strcmp(a, "--source")) {
            if (!has) return cli_usage_error(C, "--source needs a model");
            o->source = argv[++i];
        } else if (!strcmp(a, "--calibrate")) {
            if (!has) return cli_usage_error(C, "--calibrate needs a text file");
            o->calibrate = argv[++i];
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long v;
            if (!has || cli_parse_long(argv[++i], 1, 1024, &v))
                return cli_usage_error(C, "%s takes 1 .. 1024", a);
            o->threads = (int)v;
        } else if (!strcmp(a, "--json")) {
            *json = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(C, "unknown option '%s'", a);
        } else if (!o->model) {
            o->model = a;
        } else {
            return cli_usage_error(C, "one model only ('%s' is extra)", a);
        }
    }
    if (!o->model) return cli_usage_error(C, "no model given");
    if (o->calibrate && !o->source)
        return cli_usage_error(C, "--calibrate needs --source SRC (the float model runs on it)");
    return 0;
}

/* o's number key to prec significant digits into buf, or "-" when it has none. */
static const char *num(const cJSON *o, const char *key, int prec, char *buf, size_t n)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v)) return "-";
    snprintf(buf, n, "%.*g", prec, v->valuedouble);
    return buf;
}

static void print_row(const cJSON *t)
{
    char shape[48], sc[32], z[32], out[32], db[32], lo[32], hi[32], oe[32], range[72];
    const cJSON *c = cJSON_GetObjectItem(t, "calibration");
    const int tern = cJSON_GetObjectItem(t, "zero_frac") != NULL;
    snprintf(shape, sizeof shape, "%.0fx%.0f", cm_json_num(t, "rows", 0),
             cm_json_num(t, "cols", 0));
    const cJSON *zf = cJSON_GetObjectItem(t, "zero_frac");
    if (cJSON_IsNumber(zf))
        snprintf(z, sizeof z, "%.1f", 100 * zf->valuedouble);
    else
        snprintf(z, sizeof z, "-");
    if (c)
        snprintf(range, sizeof range, "[%s, %s]", num(c, "act_min", 3, lo, sizeof lo),
                 num(c, "act_max", 3, hi, sizeof hi));
    else
        snprintf(range, sizeof range, "-");
    /* SQNR is null in JSON when the weights are exact */
    const cJSON *sq = cJSON_GetObjectItem(t, "sqnr_db");
    const char *dbs = sq && !cJSON_IsNumber(sq) ? "exact" : num(t, "sqnr_db", 4, db, sizeof db);
    printf("%-28s %-6s %-11s %-9s %6s %6s %8s %-19s %s\n",
           cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")), shape,
           num(t, "scale", 4, sc, sizeof sc), z,
           num(t, tern ? "src_outliers" : "outliers", 15, out, sizeof out), dbs, range,
           c ? num(c, "out_err", 4, oe, sizeof oe) : "-");
}

static void print_text(const cJSON *r)
{
    printf("%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "model")));
    const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(r, "source"));
    if (src) printf(" (source %s)", src);
    const cJSON *cal = cJSON_GetObjectItem(r, "calibration");
    if (cal)
        printf(", calibration: %.0f tokens of %s", cm_json_num(cal, "tokens", 0),
               cm_json_str(cal, "text", ""));
    printf("\n%-28s %-6s %-11s %-9s %6s %6s %8s %-19s %s\n", "TENSOR", "TYPE", "SHAPE", "SCALE",
           "ZERO%", "OUTL", "SQNR dB", "ACT RANGE", "OUT ERR");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(r, "tensors")) print_row(t);
    const cJSON *s = cJSON_GetObjectItem(r, "summary");
    printf("%.0f tensors (%.0f ternary), %.0f bytes; ternary zero fraction %.1f%% on average",
           cm_json_num(s, "tensors", 0), cm_json_num(s, "ternary", 0), cm_json_num(s, "bytes", 0),
           100 * cm_json_num(s, "zero_frac_mean", 0));
    const double db = cm_json_num(s, "sqnr_db_mean", NAN), e = cm_json_num(s, "out_err_mean", NAN);
    if (!isnan(db)) printf(", SQNR %.2f dB", db);
    if (!isnan(e)) printf(", output error %.4f", e);
    printf("\n");
}

int cmd_analyze(int argc, char **argv)
{
    cv_analyze_opts o = {0};
    int json = 0;
    int rc = parse_args(argc, argv, &o, &json);
    if (rc != 0) return rc < 0 ? BN_EXIT_OK : rc;
    cJSON *r;
    char err[1024];
    if (cv_analyze(&o, &r, err, sizeof err) != 0) {
        cli_error("%s", err);
        return BN_EXIT_FAIL;
    }
    if (json) return cli_print_json(r) == 0 ? BN_EXIT_OK : BN_EXIT_FAIL; /* frees r */
    print_text(r);
    cJSON_Delete(r);
    return BN_EXIT_OK;
}
