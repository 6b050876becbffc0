/* cmd_convert.c - `bitnet convert`: a Hugging Face / PyTorch / ONNX checkpoint to a BitNet
 * GGUF, validated against the source model; or, with --queue, a job for the worker. */
#include "commands.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/types.h"
#include "convert/convert.h"
#include "common/history.h"
#include "convert/jobs.h"

void cmd_convert_help(FILE *out)
{
    fprintf(out,
            "Usage: bitnet convert SRC -o OUT.gguf [options]\n\n"
            "Converts a model to a BitNet b1.58 GGUF. SRC is a Hugging Face model directory\n"
            "(config.json, tokenizer.json and/or tokenizer.model, and model.safetensors,\n"
            "shards with model.safetensors.index.json, pytorch_model.bin or its shards, *.pt\n"
            "or *.onnx)\n"
            "or one weights file with config.json beside it. Architectures:\n"
            "BitNetForCausalLM (float or packed uint8 weights with weight_scale) and\n"
            "LlamaForCausalLM (ternarized after training; a warning says how much quality\n"
            "that costs); image classifiers whose config.json has \"arch\": \"resnet\",\n"
            "\"vit\" or \"efficientnet\" (torchvision / timm tensor names, docs/VISION.md),\n"
            "validated against the reference logits beside the weights (ref_inputs.f32,\n"
            "ref_logits.f32).\n"
            "The output is written to OUT.gguf.tmp-PID-XXXXXX, checked by loading\n"
            "it, validated, and renamed into place. An existing OUT is replaced only with\n"
            "--force, and never when it is one of the source's files.\n\n"
            "Options:\n"
            "  -o, --output FILE  the GGUF to write (required; its folder must exist)\n"
            "  --force            replace an existing output file\n"
            "  --type TYPE        ternary layout: i2_s (default), tq2_0, tq1_0\n"
            "  --embd TYPE        embeddings and LM head: f16 (default), q8_0\n"
            "  --no-validate      skip the comparison with the f32 reference\n"
            "  --prompts FILE     validation prompts, one per line (default: built in)\n"
            "  --calibrate TEXT   run the float model on the text file TEXT and ternarize\n"
            "                     each linear layer with it (float sources only); the\n"
            "                     report gives each layer's output error, absmean vs gptq\n"
            "  --method M         absmean (no data) or gptq (error feedback through the\n"
            "                     inverse Hessian; the default with --calibrate)\n"
            "  --scales S         gptq's scales: tensor (one, what i2_s stores) or row (one\n"
            "                     per row, tq2_0/tq1_0 only; their default); each chosen\n"
            "                     to minimise the layer's output error\n"
            "  --lowrank R        add to each linear layer a rank-R F16 correction (the top\n"
            "                     singular vectors of its float weights minus the ternary\n"
            "                     ones), applied at run time; float sources only\n"
            "  --mixed K          keep the K linear layers most sensitive to ternarization\n"
            "                     at 8 bits (needs --calibrate: a layer's sensitivity is\n"
            "                     the float model's loss increase on the text when that\n"
            "                     layer alone is ternarized); the report gives every\n"
            "                     layer's score and the size / perplexity trade-off for\n"
            "                     K = 0, 1, 2, 4, ... (the f32 reference with those weights)\n"
            "  --mixed-type T     the kept layers' type: q8_0 (default) or q4_0\n"
            "  --no-tokenizer     write no tokenizer (else a missing one is an error)\n"
            "  -t, --threads N    threads (default: one per core)\n"
            "  --queue            add a job to the queue instead (see bitnet jobs) and start\n"
            "                     a worker in the background if none is running\n"
            "  --json             print the report as JSON (validation included)\n"
            "  -h, --help         this help\n\n"
            "Exit status: 0 ok, 1 the conversion failed (one line on stderr), 2 usage error.\n");
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct cc_opts {
    cv_opts cv;
    int json, queue;
} cc_opts;

static int parse_type(const char *v, const int *allowed, int n)
{
    int t = bn_type_from_name(v);
    for (int i = 0; i < n; i++)
        if (t == allowed[i]) return t;
    return -1;
}

/* 0 when v is n0, 1 when it is n1, else -1 (--method and --scales name their values so). */
_Static_assert(CV_METHOD_ABSMEAN == 0 && CV_METHOD_GPTQ == 1 && CV_SCALES_TENSOR == 0 &&
                       CV_SCALES_ROW == 1,
               "pick() gives the enum values");
static int pick(const char *v, const char *n0, const char *n1)
{
    return !strcmp(v, n0) ? 0 : !strcmp(v, n1) ? 1 : -1;
}

static int parse_args(int argc, char **argv, cc_opts *o)
{
    const char *C = "convert";
    static const int wtypes[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0};
    static const int etypes[] = {BN_TYPE_F16, BN_TYPE_Q8_0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cmd_convert_help(stdout);
            return -1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!has) return cli_usage_error(C, "%s needs a file", a);
            o->cv.out = argv[++i];
        } else if (!strcmp(a, "--type")) {
            if (!has || (o->cv.type = parse_type(argv[++i], wtypes, 3)) < 0)
                return cli_usage_error(C, "--type takes i2_s, tq2_0 or tq1_0");
        } else if (!strcmp(a, "--embd")) {
            if (!has || (o->cv.embd_type = parse_type(argv[++i], etypes, 2)) < 0)
                return cli_usage_error(C, "--embd takes f16 or q8_0");
        } else if (!strcmp(a, "--no-validate")) {
            o->cv.validate = 0;
        } else if (!strcmp(a, "--prompts")) {
            if (!has) return cli_usage_error(C, "--prompts needs a file");
            o->cv.prompts_file = argv[++i];
        } else if (!strcmp(a, "--calibrate")) {
            if (!has) return cli_usage_error(C, "--calibrate needs a text file");
            o->cv.calibrate = argv[++i];
        } else if (!strcmp(a, "--method")) { /* CV_METHOD_ABSMEAN 0, CV_METHOD_GPTQ 1 */
            if ((o->cv.method = pick(has ? argv[++i] : "", "absmean", "gptq")) < 0)
                return cli_usage_error(C, "--method takes absmean or gptq");
        } else if (!strcmp(a, "--scales")) { /* CV_SCALES_TENSOR 0, CV_SCALES_ROW 1 */
            if ((o->cv.scales = pick(has ? argv[++i] : "", "tensor", "row")) < 0)
                return cli_usage_error(C, "--scales takes tensor or row");
        } else if (!strcmp(a, "--lowrank")) {
            long v;
            if (!has || cli_parse_long(argv[++i], 0, CV_LOWRANK_MAX, &v))
                return cli_usage_error(C, "--lowrank takes 0 .. %d", CV_LOWRANK_MAX);
            o->cv.lowrank = (int)v;
        } else if (!strcmp(a, "--mixed")) {
            long v;
            if (!has || cli_parse_long(argv[++i], 0, 100000, &v))
                return cli_usage_error(C, "--mixed takes a number of layers (0 .. 100000)");
            o->cv.mixed = (int)v;
        } else if (!strcmp(a, "--mixed-type")) {
            static const int mtypes[] = {BN_TYPE_Q8_0, BN_TYPE_Q4_0};
            if (!has || (o->cv.mixed_type = parse_type(argv[++i], mtypes, 2)) < 0)
                return cli_usage_error(C, "--mixed-type takes q8_0 or q4_0");
        } else if (!strcmp(a, "--no-tokenizer")) {
            o->cv.no_tokenizer = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long v;
            if (!has || cli_parse_long(argv[++i], 1, 1024, &v))
                return cli_usage_error(C, "%s takes 1 .. 1024", a);
            o->cv.threads = (int)v;
        } else if (!strcmp(a, "--force")) {
            o->cv.force = 1;
        } else if (!strcmp(a, "--queue")) {
            o->queue = 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(C, "unknown option '%s'", a);
        } else if (!o->cv.src) {
            o->cv.src = a;
        } else {
            return cli_usage_error(C, "one source only ('%s' is extra)", a);
        }
    }
    if (!o->cv.src) return cli_usage_error(C, "no source model given");
    if (!o->cv.out) return cli_usage_error(C, "no output given (-o OUT.gguf)");
    if (o->cv.method == CV_METHOD_GPTQ && !o->cv.calibrate)
        return cli_usage_error(C, "--method gptq needs --calibrate TEXT");
    if (o->cv.mixed > 0 && !o->cv.calibrate)
        return cli_usage_error(C, "--mixed needs --calibrate TEXT (each layer's sensitivity is "
                                  "measured on it)");
    if (o->cv.scales == CV_SCALES_ROW && o->cv.type == BN_TYPE_I2_S)
        return cli_usage_error(C, "--scales row needs --type tq2_0 or tq1_0 (i2_s stores one "
                                  "scale per tensor)");
    return 0;
}

static int progress(void *user, const cv_progress *p)
{
    const int tty = *(const int *)user;
    if (tty && p->total > 0) {
        fprintf(stderr, "\r%-10s %5.1f%%", p->phase, 100.0 * (double)p->done / (double)p->total);
        if (p->eta_s >= 0) fprintf(stderr, "  ETA %.0f s   ", p->eta_s);
        fflush(stderr);
    }
    return g_stop != 0;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A ResNet / ViT conversion: the model and its comparison with the source framework. */
static void print_vision(const cJSON *r, const cJSON *vi)
{
    printf("%s (%s, %s) -> %s: %s, %.0fx%.0f, %.0f channels, %.0f classes, %.0f parameters, "
           "%.2f MB\n",
           str(r, "source"), str(r, "format"), str(vi, "arch"), str(r, "output"), str(r, "type"),
           num(vi, "image_size"), num(vi, "image_size"), num(vi, "in_chans"),
           num(vi, "num_classes"), num(vi, "params"), num(r, "bytes_out") / 1e6);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "validation");
    if (v) {
        printf("validation: %.0f reference images: top-1 agreement with the source %.2f%%, "
               "logits max |diff| %.4g, mean %.4g",
               num(v, "images"), 100 * num(v, "top1_agreement"), num(v, "max_abs_diff"),
               num(v, "mean_abs_diff"));
        if (cJSON_GetObjectItemCaseSensitive(v, "accuracy_ours"))
            printf("; accuracy ours %.2f%%, source %.2f%%", 100 * num(v, "accuracy_ours"),
                   100 * num(v, "accuracy_ref"));
        printf("\n");
    }
}

/* --mixed: the layers by sensitivity, and the trade-off. */
static void print_mixed(const cJSON *m)
{
    const cJSON *e;
    if (!m) return;
    printf("mixed precision: %.0f of %.0f linear layers kept at %s, the most sensitive to "
           "ternarization (float loss %.4f nats/token on %.0f calibration tokens; increase when "
           "the layer alone is ternarized):\n",
           num(m, "kept"), num(m, "layers_ranked"), str(m, "type"), num(m, "nll_float"),
           num(m, "tokens"));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "layers"))
    {
        printf("  %-40s %+.4f%s\n", str(e, "name"), num(e, "nll_increase"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "kept")) ? "  kept" : "");
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "tradeoff");
    if (!t) return;
    printf("trade-off (%s):\n     K        bytes   perplexity  top-1\n", str(m, "tradeoff_by"));
    cJSON_ArrayForEach(e, t)
    {
        printf("  %4.0f %12.0f %12.3f %5.1f%%%s\n", num(e, "k"), num(e, "bytes"), num(e, "ppl"),
               100 * num(e, "top1_agreement"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "written")) ? "  (written)" : "");
    }
}

static void print_report(const cJSON *r)
{
    const cJSON *vi = cJSON_GetObjectItemCaseSensitive(r, "vision");
    if (vi) {
        print_vision(r, vi);
        return;
    }
    printf("%s (%s, %s, %.0f layers) -> %s: %s, embeddings %s, tokenizer %s, %.1f MB in %.1f s\n",
           str(r, "source"), str(r, "format"), str(r, "source_architecture"), num(r, "n_layer"),
           str(r, "output"), str(r, "type"), str(r, "embd_type"), str(r, "tokenizer"),
           num(r, "bytes_out") / 1e6, num(r, "seconds"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "defaults"), *e;
    if (cJSON_GetArraySize(d) > 0) {
        printf("defaults for keys config.json lacks (as transformers' config class):");
        cJSON_ArrayForEach(e, d)
        {
            if (cJSON_IsNumber(e))
                printf(" %s %g", e->string, e->valuedouble);
            else
                printf(" %s %s", e->string, cJSON_IsString(e) ? e->valuestring : "?");
        }
        printf("\n");
    }
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(r, "calibration");
    if (cal) {
        printf("calibration: %s on %.0f tokens of %s, gptq scales per %s; layer output error "
               "absmean -> gptq (mean %.4f -> %.4f)\n",
               str(cal, "method"), num(cal, "tokens"), str(cal, "text"), str(cal, "scales"),
               num(cal, "err_absmean_mean"), num(cal, "err_gptq_mean"));
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cal, "layers"))
        {
            printf("  %-40s %.4f -> %.4f (scale alone %.4f)\n", str(e, "name"),
                   num(e, "err_absmean"), num(e, "err_gptq"), num(e, "err_scale_only"));
        }
    }
    print_mixed(cJSON_GetObjectItemCaseSensitive(r, "mixed"));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "validation");
    if (v)
        printf("validation: %.0f prompts, %.0f tokens: logits cosine %.4f (min %.4f), top-1 "
               "agreement %.1f%%, KL %.4f (max %.4f), perplexity %.3f -> %.3f (%+.1f%%)\n",
               num(v, "prompts"), num(v, "tokens"), num(v, "cosine_mean"), num(v, "cosine_min"),
               100 * num(v, "top1_agreement"), num(v, "kl_mean"), num(v, "kl_max"),
               num(v, "ppl_ref"), num(v, "ppl_conv"), num(v, "ppl_change_pct"));
    printf("sha256 %s\n", str(r, "sha256"));
}

static int enqueue(const cc_opts *o)
{
    int64_t id;
    char err[512];
    if (jobs_enqueue_convert(&o->cv, &id, err, sizeof err) != 0) {
        cli_error("convert --queue: %s", err);
        return BN_EXIT_FAIL;
    }
    int started = jobs_start_worker();
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "job", (double)id);
        cJSON_AddStringToObject(d, "status", "queued");
        cJSON_AddBoolToObject(d, "worker_started", started > 0);
        return cli_print_json(d) ? BN_EXIT_FAIL : BN_EXIT_OK;
    }
    printf("queued job %lld%s\n", (long long)id,
           started > 0    ? " (worker started)"
           : started == 0 ? " (a worker is running)"
                          : "");
    return BN_EXIT_OK;
}

int cmd_convert(int argc, char **argv)
{
    cc_opts o;
    memset(&o, 0, sizeof o);
    cv_opts_init(&o.cv);
    int r = parse_args(argc, argv, &o);
    if (r != 0) return r < 0 ? BN_EXIT_OK : r;
    if (o.queue) return enqueue(&o);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int tty = isatty(2) && !o.json;
    o.cv.progress = progress;
    o.cv.user = &tty;
    o.cv.stop = &g_stop;
    cm_hist_run *h = cm_hist_begin("convert", NULL, cm_hist_params_argv(argc, argv));
    cJSON *report = NULL;
    char err[1024];
    int rc = cv_convert(&o.cv, &report, err, sizeof err);
    if (tty) fprintf(stderr, "\r%40s\r", "");
    if (rc != 0) {
        cli_error("convert: %s", err);
        cm_hist_end(h, rc == -2 ? BN_RUN_CANCELLED : BN_RUN_FAILED, report, err);
        return BN_EXIT_FAIL;
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(report, "warnings"))
            fprintf(stderr, "bitnet: warning: %s\n", w->valuestring);
    cJSON *metrics = cJSON_Duplicate(report, 1);
    if (o.json) {
        if (cli_print_json(report)) rc = -1;
    } else {
        print_report(report);
        cJSON_Delete(report);
    }
    if (metrics) cJSON_AddStringToObject(metrics, "output_sha256", str(metrics, "sha256"));
    cm_hist_end_exit(h, rc ? BN_EXIT_FAIL : BN_EXIT_OK, metrics, cli_last_error());
    return rc ? BN_EXIT_FAIL : BN_EXIT_OK;
}
