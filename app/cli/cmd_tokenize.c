/* cmd_tokenize.c - `bitnet tokenize`: a text's token ids and pieces with a model's
 * vocabulary (a vocabulary-only GGUF is enough). */
#include "commands.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/file.h"
#include "bitnet/gguf.h"
#include "bitnet/tokenizer.h"

#define MAX_INPUT ((size_t)1 << 30) /* what bn_tokenizer_encode accepts */

void cmd_tokenize_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet tokenize -m MODEL.gguf [options] TEXT\n"
            "       bitnet tokenize -m MODEL.gguf [options] -          (text from stdin)\n"
            "       bitnet tokenize -m MODEL.gguf [options] --file FILE\n\n"
            "Splits the text into tokens with the model's tokenizer (tokenizer.ggml.* keys;\n"
            "the file needs no tensors) and prints one line per token: the id, a tab, and\n"
            "the piece it stands for in quotes (\\n, \\t, \\\\, \\' and \\xNN escaped).\n\n"
            "Options:\n"
            "  -m, --model FILE  the GGUF file\n"
            "  -f, --file FILE   read the text from FILE\n"
            "  --bos             put the BOS token first\n"
            "  --special         turn special tokens written in the text (\"<|eot_id|>\")\n"
            "                    into their ids; otherwise they are ordinary text\n"
            "  --ids-only        print only the ids, on one line\n"
            "  --json            {\"tokens\": [ids], \"pieces\": [strings], \"n_tokens\": N};\n"
            "                    bytes that are not valid UTF-8 appear as <0xNN>\n"
            "  -h, --help        this help\n\n"
            "Exit status: 0 ok, 1 the model or the text cannot be read, 2 usage error.\n");
}

typedef struct opts {
    const char *model, *file, *text;
    int bos, special, json, ids_only, from_stdin;
} opts;

static int parse_args(int argc, char **argv, opts *o, int *done)
{
    int only_args = 0;
    *done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_next = i + 1 < argc;
        if (only_args || a[0] != '-' || !strcmp(a, "-")) {
            if (o->text || o->from_stdin) return cli_usage_error("tokenize", "more than one TEXT");
            if (!only_args && !strcmp(a, "-"))
                o->from_stdin = 1;
            else
                o->text = a;
        } else if (!strcmp(a, "--")) {
            only_args = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_tokenize_help(stdout);
            *done = 1;
            return BN_EXIT_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!has_next) return cli_usage_error("tokenize", "%s needs a file", a);
            o->model = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!has_next) return cli_usage_error("tokenize", "%s needs a file", a);
            o->file = argv[++i];
        } else if (!strcmp(a, "--bos")) {
            o->bos = 1;
        } else if (!strcmp(a, "--special")) {
            o->special = 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--ids-only")) {
            o->ids_only = 1;
        } else {
            return cli_usage_error("tokenize", "unknown option '%s'", a);
        }
    }
    if (!o->model) return cli_usage_error("tokenize", "missing -m MODEL.gguf");
    if (!o->text && !o->from_stdin && !o->file) return cli_usage_error("tokenize", "missing TEXT");
    if (o->file && (o->text || o->from_stdin))
        return cli_usage_error("tokenize", "give either TEXT, '-' or --file, not several");
    if (o->json && o->ids_only)
        return cli_usage_error("tokenize", "--json and --ids-only exclude each other");
    return BN_EXIT_OK;
}

/* Reads all of f into a malloc'ed buffer; NULL with errno set on failure. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            if (cap > MAX_INPUT) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_valid(const unsigned char *s, size_t left)
{
    size_t k = s[0] < 0x80                    ? 1
               : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
               : (s[0] & 0xf0) == 0xe0        ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                              : 0;
    if (k == 0 || k > left) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (k == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
    if (k == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
    return k;
}

/* Writes piece bytes escaped for a terminal line (bytes outside valid UTF-8 as \xNN). */
static void put_escaped(const char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)p[i];
        size_t k = utf8_valid((const unsigned char *)p + i, len - i);
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\\' || c == '\'')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f || k == 0)
            printf("\\x%02x", c);
        else {
            fwrite(p + i, 1, k, stdout);
            i += k;
            continue;
        }
        i++;
    }
}

/* A piece as a JSON-safe (valid UTF-8) NUL-terminated string: bad bytes become <0xNN>. */
static char *json_piece(const char *p, size_t len)
{
    char *s = malloc(len * 6 + 1);
    size_t o = 0;
    if (!s) return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_valid((const unsigned char *)p + i, len - i);
        if (k && p[i] != '\0') {
            memcpy(s + o, p + i, k);
            o += k;
            i += k;
        } else {
            o += (size_t)snprintf(s + o, 7, "<0x%02X>", (unsigned char)p[i]);
            i++;
        }
    }
    s[o] = '\0';
    return s;
}

static int print_json(const bn_tokenizer *tok, const int32_t *ids, size_t n)
{
    cJSON *doc = cJSON_CreateObject(), *t = cJSON_CreateArray(), *p = cJSON_CreateArray();
    int ok = doc && t && p;
    if (ok) {
        cJSON_AddItemToObject(doc, "tokens", t);
        cJSON_AddItemToObject(doc, "pieces", p);
    }
    for (size_t i = 0; i < n && ok; i++) {
        size_t len;
        const char *piece = bn_tokenizer_piece(tok, ids[i], &len);
        char *s = json_piece(piece, len);
        cJSON *num = cJSON_CreateNumber(ids[i]), *str = s ? cJSON_CreateString(s) : NULL;
        free(s);
        ok = num && str;
        if (num) cJSON_AddItemToArray(t, num);
        if (str) cJSON_AddItemToArray(p, str);
    }
    if (ok) ok = cJSON_AddNumberToObject(doc, "n_tokens", (double)n) != NULL;
    if (!ok) {
        if (!doc) {
            cJSON_Delete(t);
            cJSON_Delete(p);
        }
        cJSON_Delete(doc);
        cli_error("out of memory while writing JSON");
        return BN_EXIT_FAIL;
    }
    return cli_print_json(doc) ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int print_tokens(const bn_tokenizer *tok, const opts *o, const int32_t *ids, size_t n)
{
    if (o->json) return print_json(tok, ids, n);
    if (o->ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const char *p = bn_tokenizer_piece(tok, ids[i], &len);
            printf("%d\t'", ids[i]);
            put_escaped(p, len);
            fputs("'\n", stdout);
        }
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write the output: %s", strerror(errno));
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

static char *load_text(const opts *o, size_t *len)
{
    if (o->text) {
        *len = strlen(o->text);
        char *s = malloc(*len + 1);
        if (s)
            memcpy(s, o->text, *len + 1);
        else
            cli_error("out of memory");
        return s;
    }
    const char *name = o->file ? o->file : "stdin";
    char why[512];
    FILE *f = o->file ? bn_file_fopen_read(o->file, why, sizeof why) : stdin;
    if (!f) {
        cli_error("%s", why);
        return NULL;
    }
    char *s = read_all(f, len);
    int e = errno;
    if (o->file) fclose(f);
    if (!s) cli_error("%s: cannot read: %s", name, strerror(e));
    return s;
}

static int tokenize(const opts *o, const bn_tokenizer *tok)
{
    size_t len = 0, n = 0;
    char *text = load_text(o, &len);
    if (!text) return BN_EXIT_FAIL;
    int32_t *ids = NULL;
    unsigned flags =
            (o->bos ? BN_TOKENIZE_ADD_BOS : 0) | (o->special ? BN_TOKENIZE_PARSE_SPECIAL : 0);
    bn_status rc = bn_tokenizer_encode_alloc(tok, text, len, flags, &ids, &n);
    free(text);
    if (rc == BN_ERR_INVALID && o->bos) {
        cli_error("%s: the model has no BOS token", o->model);
        return BN_EXIT_FAIL;
    }
    if (rc != BN_OK) {
        cli_error("%s: cannot tokenize: %s", o->file ? o->file : "the text", bn_status_str(rc));
        return BN_EXIT_FAIL;
    }
    int ret = print_tokens(tok, o, ids, n);
    bn_free(ids);
    return ret;
}

int cmd_tokenize(int argc, char **argv)
{
    opts o = {0};
    int done;
    int ret = parse_args(argc, argv, &o, &done);
    if (ret != BN_EXIT_OK || done) return ret;
    bn_ctx *ctx;
    bn_ctx_params p = {.n_threads = 1};
    bn_status rc = bn_ctx_new(&ctx, &p);
    if (rc != BN_OK) {
        cli_error("%s", bn_status_str(rc));
        return BN_EXIT_FAIL;
    }
    bn_gguf *g = NULL;
    bn_tokenizer *tok = NULL;
    if (bn_gguf_open(ctx, o.model, &g) != BN_OK || bn_tokenizer_from_gguf(ctx, g, &tok) != BN_OK) {
        cli_error("%s: %s", o.model, bn_ctx_errmsg(ctx));
        ret = BN_EXIT_FAIL;
    } else {
        bn_gguf_close(g); /* the tokenizer keeps copies */
        g = NULL;
        ret = tokenize(&o, tok);
    }
    bn_tokenizer_free(tok);
    bn_gguf_close(g);
    bn_ctx_free(ctx);
    return ret;
}
