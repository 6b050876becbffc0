/*
 * convert.h - `bitnet convert`: Hugging Face (SafeTensors), PyTorch and ONNX checkpoints to
 * the bitnet-b1.58 / bitnet GGUF, with an f32 reference forward for accuracy validation.
 *
 * Usage (what cmd_convert.c and the job worker do):
 *
 *     cv_opts o;
 *     cv_opts_init(&o);
 *     o.src = "models/llama-tiny";  o.out = "tiny.gguf";
 *     cJSON *report = NULL;
 *     char err[512];
 *     if (cv_convert(&o, &report, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); }
 *     ... report: the JSON that --json prints (validation included) ...
 *     cJSON_Delete(report);
 *
 * The pieces:
 *   convert_src.c       the source: a model directory (config.json, tokenizer files, weights
 *                       as model.safetensors, shards + model.safetensors.index.json,
 *                       pytorch_model.bin / *.pt / *.pth, or *.onnx) or one weights file
 *                       with config.json beside it; hyper-parameters; tensors by their
 *                       Hugging Face names (ONNX weights mapped back through node names);
 *                       reading rows as f32 and linear weights as ternary codes.
 *   convert_tok.c       the tokenizer -> the GGUF tokenizer keys: a byte-level BPE
 *                       tokenizer.json as gpt2; a SentencePiece BPE tokenizer.model, or an
 *                       SPM-style tokenizer.json, as llama.
 *   convert_validate.c  the f32 reference forward of the source model (layer by layer, so
 *                       memory stays near one layer) and the comparison metrics.
 *   convert_lowrank.c   --lowrank r: the SVD factors of each layer's ternarization residual.
 *   convert_calib.c     --calibrate: each linear layer's input second moment on calibration
 *                       text and its ternarization with error feedback (GPTQ), with the
 *                       output error of absmean and gptq per layer.
 *   convert_mixed.c     --mixed K: each layer's sensitivity to ternarization on the
 *                       calibration text, the K most sensitive kept at 8/4 bits, and the
 *                       size / perplexity trade-off for other K.
 *   analyze.c           `bitnet analyze`: per-tensor statistics of a GGUF, against its
 *                       source and on calibration text (through cv_calib's observer).
 *   convert.c           planning, the two-pass GGUF write (layout with the engine's writer,
 *                       then the data tensor by tensor), verification, rename.
 *
 * Memory: one source tensor at a time (in its own dtype, plus an f32 copy of one linear
 * weight), never the whole model; the output is written to OUT.tmp-<pid>-XXXXXX next to OUT
 * (created with O_EXCL; a killed run's is removed by the next conversion to OUT) and
 * renamed when complete and verified (loaded by the engine, and validated unless asked not).
 */
#ifndef BITNET_APP_CONVERT_H
#define BITNET_APP_CONVERT_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/core.h"
#include "bitnet/onnx.h"
#include "bitnet/safetensors.h"
#include "bitnet/threadpool.h"
#include "bitnet/torchzip.h"

/* ---- options and progress ------------------------------------------------------------- */

typedef struct cv_progress {
    const char *phase;       /* "reading", "reference", "writing", "verifying", "validating" */
    uint64_t done, total;    /* bytes of weights written / to write (0 total: unknown) */
    double elapsed_s, eta_s; /* eta_s < 0: unknown */
} cv_progress;

/* Returns nonzero to cancel the conversion (polled between tensors and layers). */
typedef int (*cv_progress_fn)(void *user, const cv_progress *p);

typedef struct cv_opts {
    const char *src;          /* model directory or weights file */
    const char *out;          /* the GGUF to write */
    int type;                 /* BN_TYPE_I2_S (default), BN_TYPE_TQ2_0, BN_TYPE_TQ1_0 */
    int embd_type;            /* BN_TYPE_F16 (default) or BN_TYPE_Q8_0 */
    int validate;             /* 1 (default): compare with the f32 reference */
    const char *prompts_file; /* one prompt per line; NULL: built in */
    int no_tokenizer;         /* write no tokenizer (else a missing one is an error) */
    int threads;              /* 0: one per core */
    int force;                /* an existing out may be replaced (never an input) */
    cv_progress_fn progress;  /* may be NULL */
    void *user;
    const volatile sig_atomic_t *stop; /* set to stop (a signal handler's flag): polled in
                                          every phase, within a fraction of a second */
    unsigned throttle_ms;  /* a pause at each poll (BITNET_CONVERT_THROTTLE_MS, for tests) */
    const char *calibrate; /* calibration text (a file); NULL: none */
    int method;            /* CV_METHOD_*; -1 (default): gptq with calibrate, else absmean */
    int scales;     /* CV_SCALES_* of gptq; -1 (default): row for tq2_0/tq1_0, tensor for i2_s */
    int lowrank;    /* r > 0: each linear layer gets a rank-r F16 correction of its residual */
    int mixed;      /* K > 0: the K linear layers most sensitive to ternarization (measured on the
                       calibration text) are kept at mixed_type instead */
    int mixed_type; /* BN_TYPE_Q8_0 (default) or BN_TYPE_Q4_0 */
} cv_opts;

/* The largest --lowrank (the engine's limit, BN__LOWRANK_MAX). */
#define CV_LOWRANK_MAX 256

/* How float linear weights become ternary. */
enum { CV_METHOD_ABSMEAN = 0, CV_METHOD_GPTQ = 1 };
/* How many scales gptq chooses: one per tensor, or one per row (the TQ layouts only). */
enum { CV_SCALES_TENSOR = 0, CV_SCALES_ROW = 1 };

void cv_opts_init(cv_opts *o);

/* 1 when the conversion is asked to stop (*o->stop set); sleeps o->throttle_ms first. */
int cv_poll(const cv_opts *o);

/* Checks o->out before any work (bitnet/file.h): its folder exists; an existing file is
 * replaced only with o->force, and never when it is an input of the run: the source, the
 * prompts, the calibration text, or any file but a .gguf in the source's folder (config.json, the
 * tokenizer files, the weights and their shards are read there). 0, or -1 with a message.
 * cv_convert calls it first; `convert --queue` too, so that a job that cannot succeed is not
 * queued. */
int cv_check_output(const cv_opts *o, char *err, size_t errsz);

/* Converts; 0 on success with *report (the caller frees it), -1 with a one-line message in
 * err (*report may then hold what was learnt so far, or NULL). Cancelled: -2. */
int cv_convert(const cv_opts *o, cJSON **report, char *err, size_t errsz);

/* ---- the source (convert_src.c) ---------------------------------------------------------- */

enum { CV_ARCH_BITNET = 1, CV_ARCH_LLAMA = 2, CV_ARCH_VISION = 3 /* resnet, vit */ };
enum { CV_FMT_SAFETENSORS = 1, CV_FMT_TORCH = 2, CV_FMT_ONNX = 3 };

typedef struct cv_hparams {
    int arch;           /* CV_ARCH_* */
    char arch_name[64]; /* config.json architectures[0] */
    int64_t n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_ctx;
    float eps, rope_theta;
    int tied;      /* no separate lm_head.weight */
    int packed;    /* BitNet linear weights packed 4 per uint8, with weight_scale */
    int scale_mul; /* weight_scale multiplies (autobitlinear), else divides */
    int quant_ref; /* the source model quantizes (a quantization_config is present) */
    int online;    /* autobitlinear, quantization_mode online: absmean of the float weights at
                      every forward, no weight_scale; else (offline) weights are used as stored */
    int32_t bos_id, eos_id;
} cv_hparams;

typedef struct cv_tensor {
    char *name; /* the Hugging Face name (ONNX: recovered from the graph) */
    int dtype;  /* bn_dtype */
    int n_dims;
    int64_t shape[BN_ST_MAX_DIMS]; /* as the model sees it ([out, in] for linear weights) */
    uint64_t numel;
    size_t bytes;    /* numel * dtype size */
    int transposed;  /* stored [in, out] (ONNX MatMul) */
    int file;        /* shard index (SafeTensors) */
    const void *ref; /* bn_st_tensor / bn_pt_tensor / bn_onnx_tensor */
} cv_tensor;

typedef struct cv_source {
    int fmt;            /* CV_FMT_* */
    char dir[4096];     /* the model directory */
    char weights[4096]; /* the weights file (first shard) */
    cJSON *config;      /* config.json */
    cJSON *defaults;    /* {key: value} for each key config.json lacks, as transformers
                           defaults it (BitNetConfig / LlamaConfig) */
    cv_hparams hp;
    bn_ctx *ctx;         /* for the readers' messages */
    bn_safetensors **st; /* shards */
    int n_st;
    bn_torch **pt; /* shards */
    int n_pt;
    bn_onnx *ox;
    cv_tensor *t;
    int n, cap;
    int32_t *slot;         /* open-addressing hash of t by name: index + 1, 0 empty */
    size_t n_slot;         /* a power of two, at least twice n */
    uint64_t weight_bytes; /* sum of all tensors' bytes */
} cv_source;

/* Opens src (directory or file); reads config.json and every tensor's header. 0, or -1 with
 * a message. */
int cv_source_open(bn_ctx *ctx, const char *src, cv_source *s, char *err, size_t errsz);
void cv_source_close(cv_source *s);
const cv_tensor *cv_source_find(const cv_source *s, const char *name);

/* A tensor's bytes in its own dtype, as stored: a pointer into a mapping or into *owned
 * (a malloc'd copy the caller frees). 0, or -1 with a message. */
int cv_source_raw(cv_source *s, const cv_tensor *t, const void **data, void **owned, char *err,
                  size_t errsz);
/* Done with a tensor's raw bytes: frees owned and lets the mapping's pages go. */
void cv_source_release(cv_source *s, const cv_tensor *t, void *owned);
/* Rows r0 .. r1-1 of a 2-D tensor (the model's view: [out, in]) as f32, from raw bytes. */
void cv_rows_f32(const cv_tensor *t, const void *raw, int64_t r0, int64_t r1, float *dst);

/* A linear layer's weight [rows, cols] (rows = outputs) as ternary codes and one scale, so
 * that W ~= q * scale: packed BitNet weights and an offline AutoBitLinear's ternary float
 * weights exactly (other values are refused: the source uses them as stored), other float
 * weights by absmean. */
int cv_linear_ternary(cv_source *s, const char *name, int64_t rows, int64_t cols, int8_t *q,
                      float *scale, char *err, size_t errsz);
/* The weight the source model computes with, as f32 [rows, cols], the way transformers
 * computes it: packed weights dequantized; float weights as stored, times weight_scale for an
 * offline AutoBitLinear, or fake-quantized by absmean when the model quantizes online (an
 * online AutoBitLinear, or a quantization_config over float weights). */
int cv_linear_f32(cv_source *s, const char *name, int64_t rows, int64_t cols, float *w, char *err,
                  size_t errsz);
/* Refuses a non-finite weight: 0 when v[0 .. n) (rows row0.. of width cols) are all finite,
 * else -1 with a message naming the tensor and the element. */
int cv_check_finite(const char *name, const float *v, int64_t n, int64_t cols, int64_t row0,
                    char *err, size_t errsz);
/* A 1-D tensor of n values as f32 (norm weights). */
int cv_vector_f32(cv_source *s, const char *name, int64_t n, float *v, char *err, size_t errsz);

/* ---- the tokenizer (convert_tok.c) -------------------------------------------------------- */

typedef struct bn_gguf_writer bn_gguf_writer;
typedef struct bn_tokenizer bn_tokenizer;

/* Reads the tokenizer of dir (tokenizer.json and/or tokenizer.model, with
 * tokenizer_config.json, special_tokens_map.json, added_tokens.json), sets the tokenizer.*
 * keys on w and builds *tok for validation. 0, or -1 with a message saying why it cannot be
 * carried over. kind gets "gpt2" or "llama"; a caveat (a SentencePiece normalizer the llama
 * tokenizer does not apply) is added to warnings (a JSON array; NULL: none kept). */
int cv_tokenizer(bn_ctx *ctx, const cv_source *s, bn_gguf_writer *w, bn_tokenizer **tok,
                 const char **kind, cJSON *warnings, char *err, size_t errsz);

/* ---- the reference forward and metrics (convert_validate.c) ------------------------------ */

typedef struct cv_seqs {
    int n;         /* sequences */
    int32_t **tok; /* tok[i][0 .. len[i]) */
    int *len;
    int64_t total; /* sum of len */
} cv_seqs;

typedef struct cv_calib cv_calib;

/* Runs the source model in f32 over every sequence (each from position 0), layer by layer.
 * logits gets total x n_vocab values (NULL: not kept). cal (NULL: none) gets every linear
 * layer's input and weight (cv_calib_linear). Returns 0, -1 with a message, or -2 when
 * cancelled. */
int cv_reference(cv_source *s, bn_threadpool *pool, const cv_seqs *q, float *logits,
                 const cv_opts *o, cv_calib *cal, char *err, size_t errsz);

/* Compares reference and converted logits (total x n_vocab each); adds the metrics to obj:
 * cosine_mean, cosine_min, top1_agreement, kl_mean, kl_max. text (may be NULL) is the
 * sequence whose perplexity is reported under both (ppl_ref, ppl_conv, ppl_change_pct).
 * 0, or -1 with a message when there is nothing to compare or a logit or metric is not
 * finite (a NaN is a failed validation, never a perfect score). */
int cv_metrics(const float *ref, const float *conv, const cv_seqs *q, int64_t n_vocab, int text_seq,
               cJSON *obj, char *err, size_t errsz);

/* ---- calibrated ternarization (convert_calib.c) ------------------------------------------ */

/* (--lowrank, convert_lowrank.c) The top-rank factors of a layer's ternarization residual D = W -
 * diag(row_scale) q: a (rank x cols) and b (rows x rank), b a ~= D, for the engine's y = W_t x + b
 * (a x). */
typedef struct cv_lowrank {
    char src[160]; /* the layer (the Hugging Face name) they belong to */
    int64_t rows, cols, rank;
    float *a, *b;
    double energy; /* the share of ||D||_F^2 the rank keeps */
} cv_lowrank;

/* One linear layer: its codes for the output (W ~= q * scale) and the relative output error
 * on the calibration tokens of absmean and of gptq (see convert_calib.c). */
typedef struct cv_calib_layer {
    char name[160]; /* the Hugging Face name */
    int64_t rows, cols;
    int8_t *q;               /* rows x cols, by the method asked for */
    float *row_scale;        /* rows: each row's scale (all equal unless cv_calib.row_scales) */
    float scale, scale_gptq; /* the tensor's scale; gptq's (of row 0 with row scales) */
    double err_absmean, err_gptq, scale_mult, lambda;
    double err_scaled; /* round to nearest at the best of gptq's scales, no feedback */
    cv_lowrank lr;     /* with cv_calib.lowrank: factors weighted by H (rank 0: none) */
} cv_calib_layer;

struct cv_calib {
    bn_ctx *ctx; /* for the linear algebra's messages */
    bn_threadpool *pool;
    int method;     /* CV_METHOD_* */
    int row_scales; /* gptq chooses one scale per row (stored as f16, as TQ2_0/TQ1_0 do) */
    int lowrank;    /* r > 0: each layer's rank-r correction, chosen for its output error */
    double damp;    /* lambda = damp * mean(diag H) */
    int64_t tokens;
    cv_calib_layer *l;
    int n, cap;
    double *h; /* H = X^T X of the last input, h_k x h_k */
    int64_t h_k;
    uint64_t h_key;
    /* set: the reference forward computes each linear layer with the weights this leaves in w
     * (read from the source first) and calibrates nothing (convert --mixed's what-if runs) */
    int (*substitute)(void *user, const char *name, float *w, int64_t N, int64_t K, char *err,
                      size_t errsz);
    /* set: cv_calib_linear hands each layer to observe instead (bitnet analyze) */
    int (*observe)(void *user, const char *name, const float *x, int64_t T, const float *w,
                   int64_t N, int64_t K, char *err, size_t errsz);
    void *user;
};

void cv_calib_init(cv_calib *cal, bn_ctx *ctx, bn_threadpool *pool, int method);
void cv_calib_release(cv_calib *cal);
/* x: the layer's input (T x K) on the calibration tokens, w: its f32 weight (N x K). Adds the
 * layer's codes and errors. 0, or -1 with a message. */
int cv_calib_linear(cv_calib *cal, const char *name, const float *x, int64_t T, const float *w,
                    int64_t N, int64_t K, char *err, size_t errsz);
const cv_calib_layer *cv_calib_find(const cv_calib *cal, const char *name);
/* {method, tokens, damp, err_absmean_mean, err_gptq_mean, layers: [...]} */
cJSON *cv_calib_report(const cv_calib *cal);

/* The text file path as sequences of up to 128 tokens (n_ctx if smaller), at most 2048 tokens
 * in all, tokenized by tok (NULL: its bytes modulo n_vocab are the ids). 0, or -1 with a
 * message (unreadable, untokenizable, fewer than 2 tokens). Free with cv_seqs_release. */
int cv_text_seqs(const bn_tokenizer *tok, const char *path, int64_t n_vocab, int64_t n_ctx,
                 cv_seqs *q, char *err, size_t errsz);
void cv_seqs_release(cv_seqs *q);

/* The Hugging Face name of a GGUF tensor name the converter writes ("blk.3.attn_q.weight" ->
 * "model.layers.3.self_attn.q_proj.weight"); 0, or -1 for a name it does not write. */
int cv_hf_name(const char *gguf, char *out, size_t n);

/* ---- mixed precision (convert_mixed.c) ---------------------------------------------------- */

/* --mixed K: each calibrated linear layer's sensitivity is the increase of the float model's
 * mean negative log-likelihood on the calibration text when that layer alone takes its ternary
 * weights (as they will be written, corrections included); the K most sensitive are kept at
 * 8 or 4 bits. */
typedef struct cv_mixed {
    int type;         /* BN_TYPE_Q8_0 or BN_TYPE_Q4_0 */
    int k;            /* how many are kept: the first k of rank */
    int n;            /* linear layers ranked */
    int *rank;        /* n indexes into the calibration's layers, most sensitive first */
    double *sens;     /* n: by the calibration's layer index (nats per token) */
    double nll_float; /* the float model's mean NLL on those tokens */
    int64_t tokens;   /* predictions scored */
} cv_mixed;

/* Measures and ranks (q: the calibration tokens; at most the first 512 are used). 0, -1 with
 * a message, -2 when cancelled. */
int cv_mixed_rank(cv_source *s, const cv_calib *cal, const cv_seqs *q, const cv_opts *o,
                  cv_mixed *mx, char *err, size_t errsz);
/* 1 when the layer (Hugging Face name) is among the kept ones. */
int cv_mixed_kept(const cv_mixed *mx, const cv_calib *cal, const char *name);
/* w (N x K, float) as the file keeps it at mx->type: quantized and dequantized row by row. */
void cv_mixed_round(const cv_mixed *mx, float *w, int64_t N, int64_t K);
/* The trade-off: for K = 0, 1, 2, 4, ... up to every layer (and mx->k), the logits of the model
 * with the K most sensitive layers kept and the others ternary (the f32 reference forward with
 * those weights) against ref_logits on q: an array of {k, bytes, ppl, top1_agreement, kl_mean}
 * into out. bytes[K]: the file's tensor bytes with K kept. 0, -1 with a message, -2 cancelled. */
int cv_mixed_tradeoff(cv_source *s, const cv_calib *cal, const cv_mixed *mx, const cv_seqs *q,
                      int text_seq, const float *ref_logits, const double *bytes, const cv_opts *o,
                      cJSON *out, char *err, size_t errsz);
/* {type, kept, tokens, nll_float, layers: [{name, nll_increase, kept}] most sensitive first} */
cJSON *cv_mixed_report(const cv_mixed *mx, const cv_calib *cal);
void cv_mixed_release(cv_mixed *mx);

/* ---- bitnet analyze (analyze.c) ----------------------------------------------------------- */

typedef struct cv_analyze_opts {
    const char *model;     /* the GGUF */
    const char *source;    /* its float source model (as convert takes it); NULL: none */
    const char *calibrate; /* text for activation statistics (needs source); NULL: none */
    int threads;           /* 0: one per core */
} cv_analyze_opts;

/* Per-tensor statistics of model's weight matrices (see analyze.c), and with source the
 * SQNR of the GGUF's weights against the float ones, and with calibrate each linear layer's
 * input ranges and output error on the text. 0 with *report (the caller frees it), or -1
 * with a one-line message. */
int cv_analyze(const cv_analyze_opts *o, cJSON **report, char *err, size_t errsz);

/* ---- low-rank corrections (convert_lowrank.c; cv_lowrank above) -------------------------- */

/* The factors of w (N x K) float, q its codes, row_scale its N scales; rank is cut to min(N, K). 0,
 * or -1 with a message. */
int cv_lowrank_factors(bn_ctx *ctx, const float *w, const int8_t *q, const float *row_scale,
                       int64_t N, int64_t K, int64_t rank, cv_lowrank *lr, char *err, size_t errsz);
/* The same for the layer's output error on inputs with second moment h (K x K): the rank-r L
 * minimising tr((D - L) (h + lambda I) (D - L)^T), lambda = damp * mean(diag h): with
 * G = (h + lambda I)^1/2, the top-r SVD of D G, times G^-1. energy: the share of the weighted
 * norm kept. */
int cv_lowrank_weighted(bn_ctx *ctx, const double *h, double damp, const float *w, const int8_t *q,
                        const float *row_scale, int64_t N, int64_t K, int64_t rank, cv_lowrank *lr,
                        char *err, size_t errsz);
void cv_lowrank_release(cv_lowrank *lr);

/* ---- vision models (convert_vision.c; docs/VISION.md) ---------------------------------- */

/* A ResNet / ViT source (hp.arch CV_ARCH_VISION) to o->out: the spec from config.json, the
 * tensors through bn_vision_write, written to a temporary file, loaded back, compared with
 * the reference logits beside the weights (ref_inputs.f32, ref_logits.f32, ref_labels.u8)
 * unless o->validate is 0, and renamed. Fills report ("vision", "validation") and warnings.
 * 0, or -1 with a one-line message. */
int cv_vision_convert(cv_source *s, bn_ctx *ctx, const cv_opts *o, cJSON *report, cJSON *warnings,
                      char *err, size_t errsz);

/* The built-in prompts and text (NUL-terminated). */
extern const char *const cv_builtin_prompts[];
extern const char cv_builtin_text[];

#endif
