/* cmd_inspect.c - `bitnet inspect`: a GGUF file's header, metadata and tensors, as text or
 * one JSON document. */
#include "commands.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/vision.h"
#include "common/model_common.h"

#define HEAD_TEXT 5   /* array elements shown in text mode */
#define HEAD_JSON 8   /* array elements in "head" */
#define STR_TEXT  200 /* bytes of a string value shown in text mode */
#define STR_ELEM  32  /* bytes of a string array element shown in text mode */

void cmd_inspect_help(FILE *out)
{
    fprintf(out, "Usage: bitnet inspect FILE [--json] [--tensors]\n\n"
                 "Prints a GGUF file's version, alignment, metadata (arrays summarised as\n"
                 "[type x count] with their first elements) and tensors, then whether it\n"
                 "loads as a model (as generate loads it) and if not, why.\n\n"
                 "Options:\n"
                 "  --tensors  list every tensor: name, type, shape, bytes, offset (text mode\n"
                 "             prints only a summary without it)\n"
                 "  --json     one JSON document: file, version, alignment, metadata, tensors,\n"
                 "             loadable, problem\n"
                 "  -h, --help this help\n\n"
                 "Exit status: 0 ok (a well-formed GGUF, model or not), 1 the file is\n"
                 "unreadable or malformed, 2 usage error.\n");
}

/* ---- text ----------------------------------------------------------------------------- */

/* Writes s (len bytes, at most max of them) quoted and escaped into out. */
static void quote(const char *s, size_t len, size_t max, char *out, size_t cap)
{
    size_t o = 0, n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--; /* whole UTF-8 chars */
    }
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    if (n < len && o + 4 < cap) memcpy(out + o, "...", 4);
}

static size_t elem_size(bn_gguf_vtype t)
{
    switch (t) {
    case BN_GGUF_U8:
    case BN_GGUF_I8:
    case BN_GGUF_BOOL:
        return 1;
    case BN_GGUF_U16:
    case BN_GGUF_I16:
        return 2;
    case BN_GGUF_U32:
    case BN_GGUF_I32:
    case BN_GGUF_F32:
        return 4;
    default:
        return 8;
    }
}

/* A key or tensor name for the terminal: control bytes as '?', at most 120 bytes. */
static const char *clean(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; s[n] && n < 120 && n + 4 < cap; n++)
        out[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    if (s[n]) {
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Element j of a numeric array: its raw bits (little-endian host, as the reader stores). */
static uint64_t elem_raw(bn_gguf_vtype t, const void *data, uint64_t j)
{
    uint64_t raw = 0;
    size_t sz = elem_size(t);
    memcpy(&raw, (const unsigned char *)data + j * sz, sz);
    return raw;
}

static double elem_f64(bn_gguf_vtype t, uint64_t raw)
{
    float f;
    double d;
    uint32_t b = (uint32_t)raw;
    switch (t) {
    case BN_GGUF_I8:
        return (int8_t)raw;
    case BN_GGUF_I16:
        return (int16_t)raw;
    case BN_GGUF_I32:
        return (int32_t)raw;
    case BN_GGUF_I64:
        return (double)(int64_t)raw;
    case BN_GGUF_F32:
        memcpy(&f, &b, 4);
        return f;
    case BN_GGUF_F64:
        memcpy(&d, &raw, 8);
        return d;
    default:
        return (double)raw;
    }
}

/* The shortest %g text that reads back as the same float (f32) or double. */
static void fmt_float(double v, int is_f32, char *out, size_t cap)
{
    for (int prec = is_f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (is_f32 ? strtof(out, NULL) == (float)v : strtod(out, NULL) == v) return;
    }
}

/* Element j of a numeric array as text. */
static void fmt_elem(bn_gguf_vtype t, const void *data, uint64_t j, char *out, size_t cap)
{
    uint64_t raw = elem_raw(t, data, j);
    if (t == BN_GGUF_BOOL)
        snprintf(out, cap, "%s", raw ? "true" : "false");
    else if (t == BN_GGUF_F32 || t == BN_GGUF_F64)
        fmt_float(elem_f64(t, raw), t == BN_GGUF_F32, out, cap);
    else if (t == BN_GGUF_U8 || t == BN_GGUF_U16 || t == BN_GGUF_U32 || t == BN_GGUF_U64)
        snprintf(out, cap, "%" PRIu64, raw);
    else if (t == BN_GGUF_I64)
        snprintf(out, cap, "%" PRId64, (int64_t)raw);
    else
        snprintf(out, cap, "%.0f", elem_f64(t, raw)); /* i8, i16, i32: exact in a double */
}

static int is_unsigned(bn_gguf_vtype t)
{
    return t == BN_GGUF_U8 || t == BN_GGUF_U16 || t == BN_GGUF_U32 || t == BN_GGUF_U64;
}

static int is_signed(bn_gguf_vtype t)
{
    return t == BN_GGUF_I8 || t == BN_GGUF_I16 || t == BN_GGUF_I32 || t == BN_GGUF_I64;
}

static void print_array(const bn_gguf *g, int64_t i)
{
    bn_gguf_vtype et = bn_gguf_arr_type(g, i);
    uint64_t n = bn_gguf_arr_n(g, i);
    printf("[%s x %" PRIu64 "]", bn_gguf_vtype_name(et), n);
    char buf[4 * STR_ELEM + 16];
    for (uint64_t j = 0; j < n && j < HEAD_TEXT; j++) {
        if (et == BN_GGUF_STRING) {
            size_t len;
            const char *s = bn_gguf_arr_str(g, i, j, &len);
            quote(s, len, STR_ELEM, buf, sizeof buf);
        } else {
            fmt_elem(et, bn_gguf_arr_data(g, i), j, buf, sizeof buf);
        }
        printf("%s %s", j ? "," : "", buf);
    }
    if (n > HEAD_TEXT) printf(", ...");
}

static void print_value(const bn_gguf *g, int64_t i)
{
    bn_gguf_vtype t = bn_gguf_kv_type(g, i);
    if (t == BN_GGUF_ARRAY) {
        print_array(g, i);
    } else if (t == BN_GGUF_STRING) {
        size_t len;
        const char *s = bn_gguf_kv_strn(g, i, &len);
        char buf[4 * STR_TEXT + 16];
        quote(s, len, STR_TEXT, buf, sizeof buf);
        printf("%s", buf);
    } else if (t == BN_GGUF_BOOL) {
        printf("%s", bn_gguf_kv_u64(g, i) ? "true" : "false");
    } else if (is_unsigned(t)) {
        printf("%" PRIu64, bn_gguf_kv_u64(g, i));
    } else if (is_signed(t)) {
        printf("%" PRId64, bn_gguf_kv_i64(g, i));
    } else {
        char buf[64];
        fmt_float(bn_gguf_kv_f64(g, i), t == BN_GGUF_F32, buf, sizeof buf);
        printf("%s", buf);
    }
}

static void fmt_shape(const bn_gguf_tensor *t, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(out + o, cap - o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

static void print_tensors(const bn_gguf *g, int list)
{
    int64_t n = bn_gguf_n_tensors(g);
    uint64_t total = 0;
    int64_t count_by_type[BN_TYPE_COUNT_] = {0};
    for (int64_t i = 0; i < n; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        total += t->size;
        if (t->type >= 0 && t->type < BN_TYPE_COUNT_) count_by_type[t->type]++;
    }
    printf("tensors:   %" PRId64 " (%" PRIu64 " bytes", n, total);
    for (int k = 0; k < BN_TYPE_COUNT_; k++)
        if (count_by_type[k]) printf("; %s %" PRId64, bn_type_name(k), count_by_type[k]);
    printf(")\n");
    if (!list || n == 0) return;
    printf("  %-40s %-6s %-22s %12s %12s\n", "name", "type", "shape", "bytes", "offset");
    for (int64_t i = 0; i < n; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        char shape[128];
        fmt_shape(t, shape, sizeof shape);
        char name[128];
        printf("  %-40s %-6s %-22s %12zu %12" PRIu64 "\n", clean(t->name, name, sizeof name),
               bn_type_name(t->type), shape, t->size, t->offset);
    }
}

/* Whether the file loads as a model: the model loader itself decides (model_common.c). */
typedef struct load_check {
    int loadable;
    int vision; /* an image classifier (resnet, vit): loaded as classify loads it */
    char problem[512];
} load_check;

static void check_load(bn_ctx *ctx, const char *path, const bn_gguf *g, load_check *lc)
{
    const char *arch;
    lc->problem[0] = '\0';
    lc->vision =
            bn_gguf_get_str(g, "general.architecture", &arch) == BN_OK && bn_vision_is_arch(arch);
    bn_vmodel *vm = NULL;
    if (lc->vision) {
        lc->loadable = bn_vmodel_load_gguf(ctx, g, &vm) == BN_OK;
        if (!lc->loadable) snprintf(lc->problem, sizeof lc->problem, "%s", bn_ctx_errmsg(ctx));
        bn_vmodel_free(vm);
    } else {
        lc->loadable = mc_check_loadable(path, lc->problem, sizeof lc->problem) == 0;
    }
    for (char *c = lc->problem; *c; c++) /* one line on a terminal, whatever the file held */
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
}

static void print_text(const char *path, const bn_gguf *g, int list, const load_check *lc)
{
    printf("file:      %s\n", path);
    printf("version:   %u\n", bn_gguf_version(g));
    printf("alignment: %zu\n", bn_gguf_alignment(g));
    printf("size:      %zu bytes (data section at offset %zu)\n", bn_gguf_file_size(g),
           bn_gguf_data_offset(g));
    printf("metadata:  %" PRId64 " entries\n", bn_gguf_n_kv(g));
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        bn_gguf_vtype t = bn_gguf_kv_type(g, i);
        char key[128];
        printf("  %-40s %-6s ", clean(bn_gguf_key(g, i), key, sizeof key), bn_gguf_vtype_name(t));
        print_value(g, i);
        printf("\n");
    }
    print_tensors(g, list);
    if (lc->loadable && lc->vision)
        printf("model:     loads (as classify loads it)\n");
    else if (lc->loadable)
        printf("model:     loads (as generate, chat and perplexity load it)\n");
    else
        printf("model:     does not load: %s\n", lc->problem);
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* Adds item to obj under key (or to an array when key is NULL); -1 when out of memory. */
static int jadd(cJSON *obj, const char *key, cJSON *item)
{
    if (!item) return -1;
    cJSON_bool ok = key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item);
    if (!ok) cJSON_Delete(item);
    return ok ? 0 : -1;
}

/* A JSON number; an f32 goes through its shortest decimal (1e-05, not 9.99999974737875e-06). */
static cJSON *json_number(double v, int is_f32)
{
    char buf[64];
    if (!is_f32) return cJSON_CreateNumber(v);
    fmt_float(v, 1, buf, sizeof buf);
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static cJSON *json_elem(const bn_gguf *g, int64_t i, bn_gguf_vtype et, uint64_t j)
{
    if (et == BN_GGUF_STRING) return cJSON_CreateString(bn_gguf_arr_str(g, i, j, NULL));
    uint64_t raw = elem_raw(et, bn_gguf_arr_data(g, i), j);
    if (et == BN_GGUF_BOOL) return cJSON_CreateBool(raw != 0);
    return json_number(elem_f64(et, raw), et == BN_GGUF_F32);
}

static cJSON *json_value(const bn_gguf *g, int64_t i)
{
    bn_gguf_vtype t = bn_gguf_kv_type(g, i);
    if (t == BN_GGUF_STRING) return cJSON_CreateString(bn_gguf_kv_str(g, i));
    if (t == BN_GGUF_BOOL) return cJSON_CreateBool(bn_gguf_kv_u64(g, i) != 0);
    if (is_unsigned(t)) return cJSON_CreateNumber((double)bn_gguf_kv_u64(g, i));
    if (is_signed(t)) return cJSON_CreateNumber((double)bn_gguf_kv_i64(g, i));
    if (t != BN_GGUF_ARRAY) return json_number(bn_gguf_kv_f64(g, i), t == BN_GGUF_F32);
    cJSON *a = cJSON_CreateObject(), *head = cJSON_CreateArray();
    bn_gguf_vtype et = bn_gguf_arr_type(g, i);
    uint64_t n = bn_gguf_arr_n(g, i);
    int rc = a && head ? 0 : -1;
    for (uint64_t j = 0; rc == 0 && j < n && j < HEAD_JSON; j++)
        rc = jadd(head, NULL, json_elem(g, i, et, j));
    if (rc == 0) rc = jadd(a, "type", cJSON_CreateString("array"));
    if (rc == 0) rc = jadd(a, "element_type", cJSON_CreateString(bn_gguf_vtype_name(et)));
    if (rc == 0) rc = jadd(a, "count", cJSON_CreateNumber((double)n));
    if (rc == 0) {
        rc = jadd(a, "head", head);
        head = NULL;
    }
    cJSON_Delete(head);
    if (rc != 0) {
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

static cJSON *json_tensor(const bn_gguf_tensor *t)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
    int rc = o && shape ? 0 : -1;
    for (int d = 0; rc == 0 && d < t->n_dims; d++)
        rc = jadd(shape, NULL, cJSON_CreateNumber((double)t->ne[d]));
    if (rc == 0) rc = jadd(o, "name", cJSON_CreateString(t->name));
    if (rc == 0) rc = jadd(o, "type", cJSON_CreateString(bn_type_name(t->type)));
    if (rc == 0) {
        rc = jadd(o, "shape", shape);
        shape = NULL;
    }
    if (rc == 0) rc = jadd(o, "bytes", cJSON_CreateNumber((double)t->size));
    if (rc == 0) rc = jadd(o, "offset", cJSON_CreateNumber((double)t->offset));
    cJSON_Delete(shape);
    if (rc != 0) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *json_doc(const char *path, const bn_gguf *g, const load_check *lc)
{
    cJSON *d = cJSON_CreateObject(), *md = cJSON_CreateObject(), *ts = cJSON_CreateArray();
    int rc = d && md && ts ? 0 : -1;
    for (int64_t i = 0; rc == 0 && i < bn_gguf_n_kv(g); i++)
        rc = jadd(md, bn_gguf_key(g, i), json_value(g, i));
    for (int64_t i = 0; rc == 0 && i < bn_gguf_n_tensors(g); i++)
        rc = jadd(ts, NULL, json_tensor(bn_gguf_tensor_at(g, i)));
    if (rc == 0) rc = jadd(d, "file", cJSON_CreateString(path));
    if (rc == 0) rc = jadd(d, "version", cJSON_CreateNumber(bn_gguf_version(g)));
    if (rc == 0) rc = jadd(d, "alignment", cJSON_CreateNumber((double)bn_gguf_alignment(g)));
    if (rc == 0) rc = jadd(d, "size", cJSON_CreateNumber((double)bn_gguf_file_size(g)));
    if (rc == 0) rc = jadd(d, "data_offset", cJSON_CreateNumber((double)bn_gguf_data_offset(g)));
    if (rc == 0) {
        rc = jadd(d, "metadata", md);
        md = NULL;
    }
    if (rc == 0) {
        rc = jadd(d, "tensors", ts);
        ts = NULL;
    }
    if (rc == 0) rc = jadd(d, "loadable", cJSON_CreateBool(lc->loadable));
    if (rc == 0)
        rc = jadd(d, "problem",
                  lc->loadable ? cJSON_CreateNull() : cJSON_CreateString(lc->problem));
    cJSON_Delete(md);
    cJSON_Delete(ts);
    if (rc != 0) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* ---- the command ---------------------------------------------------------------------- */

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, list = 0, opts = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            cmd_inspect_help(stdout);
            return BN_EXIT_OK;
        } else if (opts && !strcmp(a, "--json")) {
            json = 1;
        } else if (opts && !strcmp(a, "--tensors")) {
            list = 1;
        } else if (opts && !strcmp(a, "--")) {
            opts = 0;
        } else if (opts && a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("inspect", "unknown option '%s'", a);
        } else if (path) {
            return cli_usage_error("inspect", "one FILE only ('%s' and '%s')", path, a);
        } else {
            path = a;
        }
    }
    if (!path) return cli_usage_error("inspect", "missing FILE");

    bn_ctx *ctx;
    bn_ctx_params p = {.n_threads = 1};
    if (bn_ctx_new(&ctx, &p) != BN_OK) {
        fprintf(stderr, "bitnet inspect: out of memory\n");
        return BN_EXIT_FAIL;
    }
    bn_gguf *g;
    if (bn_gguf_open(ctx, path, &g) != BN_OK) {
        fprintf(stderr, "bitnet inspect: %s: %s\n", path, bn_ctx_errmsg(ctx));
        bn_ctx_free(ctx);
        return BN_EXIT_FAIL;
    }
    int rc = BN_EXIT_OK;
    load_check lc;
    check_load(ctx, path, g, &lc);
    if (json) {
        cJSON *doc = json_doc(path, g, &lc);
        if (!doc) fprintf(stderr, "bitnet inspect: %s: out of memory\n", path);
        if (!doc || cli_print_json(doc) != 0) rc = BN_EXIT_FAIL;
    } else {
        print_text(path, g, list, &lc);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "bitnet inspect: cannot write the output\n");
            rc = BN_EXIT_FAIL;
        }
    }
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    return rc;
}
