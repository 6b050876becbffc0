/* cmd_tokenizer.c - `bitnet tokenizer train`: a byte-level BPE tokenizer learnt from text
 * files, written as a vocabulary-only GGUF in the standard gpt2 layout. */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "bitnet/bpe_train.h"
#include "common/model_common.h"

#define MAX_FILES 64

void cmd_tokenizer_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet tokenizer train --vocab N [-o TOK.gguf] [options] FILE...\n\n"
            "Learns a byte-level BPE tokenizer (GPT-2 byte map and pre-tokenizer) from the\n"
            "text FILEs: 256 byte tokens, merges of the most frequent adjacent pairs until the\n"
            "vocabulary has N tokens, and <|endoftext|> (BOS and EOS). The result is\n"
            "deterministic. It is written as a vocabulary-only GGUF (tokenizer.ggml.model\n"
            "\"gpt2\", pre \"gpt-2\") that bitnet and llama.cpp-family tools load; use it with\n"
            "bitnet train --tokenizer.\n\n"
            "Options:\n"
            "  --vocab N          vocabulary size, 257 .. %d (required)\n"
            "  -o, --output FILE  the GGUF to write (default tokenizer.gguf; its folder must\n"
            "                     exist)\n"
            "  --force            replace an existing output file (never an input FILE)\n"
            "  --min-frequency K  stop when no pair occurs K times (default 2)\n"
            "  --json             a JSON summary\n"
            "  -h, --help         this help\n\n"
            "Exit status: 0 ok, 1 failure, 2 usage error.\n",
            BN_BPE_MAX_VOCAB);
}

static int tokenizer_train(int argc, char **argv)
{
    const char *files[MAX_FILES], *out = "tokenizer.gguf";
    int n_files = 0, json = 0, force = 0;
    long vocab = 0, minf = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_tokenizer_help(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--vocab") || !strcmp(a, "--min-frequency")) {
            const int is_vocab = !strcmp(a, "--vocab");
            if (!v || cli_parse_long(v, is_vocab ? 257 : 1, is_vocab ? BN_BPE_MAX_VOCAB : 1L << 40,
                                     is_vocab ? &vocab : &minf))
                return cli_usage_error("tokenizer train", "%s: '%s' is out of range", a,
                                       v ? v : "");
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) return cli_usage_error("tokenizer train", "%s needs a value", a);
            out = v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("tokenizer train", "unknown option '%s'", a);
        } else {
            if (n_files == MAX_FILES)
                return cli_usage_error("tokenizer train", "at most %d files", MAX_FILES);
            files[n_files++] = a;
        }
    }
    if (!vocab) return cli_usage_error("tokenizer train", "--vocab N is required");
    if (!n_files) return cli_usage_error("tokenizer train", "no input FILE");
    if (cli_check_output("tokenizer train", out, force, files, n_files)) return BN_EXIT_FAIL;

    char *texts[MAX_FILES] = {0};
    size_t lens[MAX_FILES], total = 0;
    int rc = BN_EXIT_FAIL;
    bn_ctx *ctx = NULL;
    bn_bpe *bpe = NULL;
    for (int f = 0; f < n_files; f++) {
        if (!(texts[f] = mc_read_file(files[f], &lens[f]))) goto done;
        total += lens[f];
    }
    bn_ctx_params cp = {1};
    if (bn_ctx_new(&ctx, &cp) != BN_OK) {
        cli_error("cannot create the engine context");
        goto done;
    }
    bn_bpe_params p = {(int32_t)vocab, minf};
    const double t0 = bn_time_now();
    if (bn_bpe_train(ctx, (const char *const *)texts, lens, n_files, &p, &bpe) != BN_OK ||
        bn_bpe_write_gguf(ctx, bpe, out) != BN_OK) {
        cli_error("%s", bn_ctx_errmsg(ctx));
        goto done;
    }
    const double secs = bn_time_now() - t0;
    /* how well it compresses its own training text */
    size_t n_tok = 0;
    for (int f = 0; f < n_files; f++) {
        int32_t *ids;
        size_t n;
        if (bn_bpe_encode(bpe, texts[f], lens[f], 1, &ids, &n) == BN_OK) n_tok += n;
        bn_free(ids);
    }
    const double bpt = n_tok ? (double)total / (double)n_tok : 0.0;
    if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "output", out);
        cJSON_AddNumberToObject(d, "vocab", bn_bpe_n_vocab(bpe));
        cJSON_AddNumberToObject(d, "merges", bn_bpe_n_merges(bpe));
        cJSON_AddNumberToObject(d, "text_bytes", (double)total);
        cJSON_AddNumberToObject(d, "text_tokens", (double)n_tok);
        cJSON_AddNumberToObject(d, "bytes_per_token", bpt);
        cJSON_AddNumberToObject(d, "seconds", secs);
        rc = cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    } else {
        printf("%s: %d tokens (%d merges); %zu bytes of text -> %zu tokens (%.2f bytes/token); "
               "%.1f s\n",
               out, bn_bpe_n_vocab(bpe), bn_bpe_n_merges(bpe), total, n_tok, bpt, secs);
        if (bn_bpe_n_vocab(bpe) < vocab)
            printf("note: stopped at %d tokens: no pair occurs %ld times\n", bn_bpe_n_vocab(bpe),
                   minf);
        rc = BN_EXIT_OK;
    }
done:
    for (int f = 0; f < n_files; f++) free(texts[f]);
    bn_bpe_free(bpe);
    bn_ctx_free(ctx);
    return rc;
}

int cmd_tokenizer(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        cmd_tokenizer_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? BN_EXIT_USAGE : BN_EXIT_OK;
    }
    if (strcmp(argv[1], "train") == 0) return tokenizer_train(argc - 1, argv + 1);
    return cli_usage_error("tokenizer", "unknown subcommand '%s' (train)", argv[1]);
}
