/* convert_src.c - the source of a conversion: finding the weights, config.json, the tensor
 * catalog by Hugging Face names, and reading weights as f32 rows or ternary codes. */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bitnet/file.h"
#include "bitnet/quant.h"
#include "bitnet/vision.h"
#include "common/model_common.h"
#include "common/cli.h"

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* ---- config.json ---------------------------------------------------------------------------- */

static int64_t cfg_int(const cJSON *c, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0); /* eos_token_id: [a, b] */
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

static const char *cfg_str(const cJSON *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* transformers' should_convert_module: a pattern keeps a module out of the conversion when
 * it matches the name from the start up to a module boundary (as a regular expression), or
 * is a suffix of it. code: the pattern compiled (NULL: it is no regular expression). */
static int module_matches(const char *name, const char *key, const pcre2_code *code)
{
    size_t n = strlen(name), k = strlen(key);
    if (n >= k && strcmp(name + n - k, key) == 0) return 1;
    if (!code) return strncmp(name, key, k) == 0 && (name[k] == '.' || name[k] == '\0');
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    int rc = md ? pcre2_match(code, (PCRE2_SPTR)name, n, 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* How many layer linears the pattern key keeps in float; the first one's name in first. */
static int kept_by(const cv_hparams *h, const char *key, char *first, size_t size)
{
    static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                      "mlp.down_proj"};
    char re[600], name[128];
    snprintf(re, sizeof re, "(?:%s)(?:(?<=\\.)|(?=\\.|$))", key);
    int e, kept = 0;
    PCRE2_SIZE off;
    pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, &e, &off, NULL);
    for (int64_t il = 0; il < h->n_layer && il < 1024; il++)
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)il, lin[i]);
            if (module_matches(name, key, code) && !kept++) snprintf(first, size, "%s", name);
        }
    pcre2_code_free(code);
    return kept;
}

/* quantization_config.modules_to_not_convert: transformers keeps those linears in float, and
 * the GGUF's layer linears are ternary only, so naming one of them is refused ("lm_head", the
 * usual entry, is kept in float here too). */
static int check_not_converted(const cv_hparams *h, const cJSON *list, const char *path, char *err,
                               size_t errsz)
{
    char first[128] = "", other[128];
    int kept = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (!cJSON_IsString(e))
            return cm_fail(err, errsz,
                           "%s: quantization_config.modules_to_not_convert holds a "
                           "non-string",
                           path);
        kept += kept_by(h, e->valuestring, kept ? other : first, sizeof first);
    }
    if (!kept) return 0;
    return cm_fail(
            err, errsz,
            "%s: quantization_config.modules_to_not_convert keeps %s%s as float linear "
            "layers (transformers does not ternarize them); bitnet's layers are ternary only, "
            "so this model cannot be converted without changing it",
            path, first, kept > 1 ? " and others" : "");
}

static int read_quant(cv_hparams *h, const cJSON *q, const char *path, char *err, size_t errsz)
{
    const char *m = cfg_str(q, "quant_method");
    if (!m || strcmp(m, "bitnet") != 0)
        return cm_fail(err, errsz,
                       "%s: quantization_config quant_method '%s' is not supported (bitnet)", path,
                       m ? m : "");
    h->quant_ref = 1;
    const char *lc = cfg_str(q, "linear_class"), *mode = cfg_str(q, "quantization_mode");
    if (!lc) lc = "bitlinear"; /* BitNetQuantConfig's defaults */
    if (!mode) mode = "offline";
    if (strcmp(lc, "bitlinear") != 0 && strcmp(lc, "autobitlinear") != 0)
        return cm_fail(err, errsz, "%s: quantization_config linear_class '%s' is not supported",
                       path, lc);
    if (strcmp(mode, "offline") != 0 && strcmp(mode, "online") != 0)
        return cm_fail(err, errsz,
                       "%s: quantization_config quantization_mode '%s' is not supported", path,
                       mode);
    h->scale_mul = strcmp(lc, "autobitlinear") == 0;
    h->online = h->scale_mul && strcmp(mode, "online") == 0; /* BitLinear is offline only */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "use_rms_norm")))
        return cm_fail(err, errsz, "%s: quantization_config use_rms_norm is not supported", path);
    return check_not_converted(h, cJSON_GetObjectItemCaseSensitive(q, "modules_to_not_convert"),
                               path, err, errsz);
}

/* What transformers' BitNetConfig and LlamaConfig (5.x) take for a key config.json lacks. */
typedef struct cfg_defaults {
    double vocab, hidden, ffn, layers, heads, kv_heads; /* kv_heads 0: as many as heads */
    double max_pos, eps, rope_theta;                    /* rope_theta: the class's default_theta */
    const char *act;
} cfg_defaults;

static const cfg_defaults k_bitnet_defaults = {.vocab = 128256,
                                               .hidden = 2560,
                                               .ffn = 6912,
                                               .layers = 30,
                                               .heads = 20,
                                               .kv_heads = 5,
                                               .max_pos = 2048,
                                               .eps = 1e-5,
                                               .rope_theta = 500000.0,
                                               .act = "relu2"};
static const cfg_defaults k_llama_defaults = {.vocab = 32000,
                                              .hidden = 4096,
                                              .ffn = 11008,
                                              .layers = 32,
                                              .heads = 32,
                                              .kv_heads = 0,
                                              .max_pos = 2048,
                                              .eps = 1e-6,
                                              .rope_theta = 10000.0,
                                              .act = "silu"};

/* config.json's key, or def (noted in s->defaults, which the report lists). */
static double cfg_or_default(cv_source *s, const cJSON *obj, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (s->defaults) cJSON_AddNumberToObject(s->defaults, key, def);
    return def;
}

static int read_shape(cv_source *s, const cfg_defaults *d)
{
    const cJSON *c = s->config;
    cv_hparams *h = &s->hp;
    if (!(s->defaults = cJSON_CreateObject())) return -1;
    h->n_vocab = (int64_t)cfg_or_default(s, c, "vocab_size", d->vocab);
    h->n_embd = (int64_t)cfg_or_default(s, c, "hidden_size", d->hidden);
    h->n_ff = (int64_t)cfg_or_default(s, c, "intermediate_size", d->ffn);
    h->n_layer = (int64_t)cfg_or_default(s, c, "num_hidden_layers", d->layers);
    h->n_head = (int64_t)cfg_or_default(s, c, "num_attention_heads", d->heads);
    h->n_head_kv = (int64_t)cfg_or_default(s, c, "num_key_value_heads",
                                           d->kv_heads > 0 ? d->kv_heads : (double)h->n_head);
    h->n_ctx = (int64_t)cfg_or_default(s, c, "max_position_embeddings", d->max_pos);
    h->head_dim = cfg_int(c, "head_dim", h->n_head > 0 ? h->n_embd / h->n_head : 0);
    h->eps = (float)cfg_or_default(s, c, "rms_norm_eps", d->eps);
    /* rope_theta: at the top (transformers 4.x) or in rope_parameters (5.x) */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c, "rope_parameters");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(c, "rope_theta");
    h->rope_theta =
            (float)(cJSON_IsNumber(top) ? top->valuedouble
                                        : cfg_or_default(s, rp, "rope_theta", d->rope_theta));
    if (!cfg_str(c, "hidden_act")) cJSON_AddStringToObject(s->defaults, "hidden_act", d->act);
    return 0;
}

static int read_config(cv_source *s, char *err, size_t errsz)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", s->dir);
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return cm_fail(err, errsz, "%s: no config.json (the model's hyper-parameters)", s->dir);
    char why[4400];
    if (bn_file_check_regular(path, why, sizeof why) != BN_OK)
        return cm_fail(err, errsz, "%s", why);
    size_t len;
    char *text = mc_read_file(path, &len);
    if (!text) return cm_fail(err, errsz, "%s: cannot read", path);
    s->config = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(s->config)) return cm_fail(err, errsz, "%s: not a JSON object", path);
    const cJSON *c = s->config;
    cv_hparams *h = &s->hp;
    const char *varch = cfg_str(c, "arch"); /* docs/VISION.md's config.json */
    if (varch && bn_vision_is_arch(varch)) {
        h->arch = CV_ARCH_VISION;
        snprintf(h->arch_name, sizeof h->arch_name, "%s", varch);
        return 0;
    }
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : cfg_str(c, "model_type");
    if (!arch) return cm_fail(err, errsz, "%s: no architectures entry", path);
    snprintf(h->arch_name, sizeof h->arch_name, "%s", arch);
    const char *act = cfg_str(c, "hidden_act");
    if (strcmp(arch, "BitNetForCausalLM") == 0 || strcmp(arch, "bitnet") == 0) {
        h->arch = CV_ARCH_BITNET;
        if (act && strcmp(act, "relu2") != 0)
            return cm_fail(err, errsz, "%s: hidden_act '%s' (BitNet b1.58 uses relu2)", path, act);
    } else if (strcmp(arch, "LlamaForCausalLM") == 0 || strcmp(arch, "llama") == 0) {
        h->arch = CV_ARCH_LLAMA;
        if (act && strcmp(act, "silu") != 0)
            return cm_fail(err, errsz, "%s: hidden_act '%s' (LLaMA uses silu)", path, act);
    } else {
        return cm_fail(err, errsz,
                       "%s: architecture %s is not supported (BitNetForCausalLM, LlamaForCausalLM)",
                       path, arch);
    }
    if (read_shape(s, h->arch == CV_ARCH_BITNET ? &k_bitnet_defaults : &k_llama_defaults) != 0)
        return cm_fail(err, errsz, "out of memory");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    const char *rtype = cfg_str(rp, "rope_type");
    if ((cJSON_IsObject(rs) &&
         !(cfg_str(rs, "rope_type") && strcmp(cfg_str(rs, "rope_type"), "default") == 0)) ||
        (rtype && strcmp(rtype, "default") != 0))
        return cm_fail(err, errsz, "%s: RoPE scaling is not supported", path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "attention_bias")) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "mlp_bias")))
        return cm_fail(err, errsz, "%s: biases in the linear layers are not supported", path);
    h->tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings"));
    h->bos_id = (int32_t)cfg_int(c, "bos_token_id", -1);
    h->eos_id = (int32_t)cfg_int(c, "eos_token_id", -1);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    if (cJSON_IsObject(q) && read_quant(h, q, path, err, errsz) != 0) return -1;
    if (h->n_embd <= 0 || h->n_ff <= 0 || h->n_layer <= 0 || h->n_head <= 0 || h->n_head_kv <= 0 ||
        h->n_vocab <= 0 || h->n_head % h->n_head_kv || h->head_dim * h->n_head != h->n_embd ||
        h->head_dim % 2 || h->n_layer > 1024 || h->n_embd > 65536 || h->n_ff > (1 << 20) ||
        h->n_vocab > (1 << 24))
        return cm_fail(err, errsz,
                       "%s: implausible shape (hidden %lld, ffn %lld, layers %lld, heads "
                       "%lld/%lld, vocab %lld)",
                       path, (long long)h->n_embd, (long long)h->n_ff, (long long)h->n_layer,
                       (long long)h->n_head, (long long)h->n_head_kv, (long long)h->n_vocab);
    return 0;
}

/* ---- the catalog ------------------------------------------------------------------------- */

/* FNV-1a of a tensor name. */
static uint64_t name_hash(const char *name)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static void slot_put(int32_t *slot, size_t n_slot, const char *name, int32_t i)
{
    size_t k = (size_t)name_hash(name) & (n_slot - 1);
    while (slot[k]) k = (k + 1) & (n_slot - 1);
    slot[k] = i + 1;
}

/* Room in the name hash for one more tensor (kept at most half full). */
static int slots_reserve(cv_source *s)
{
    if ((size_t)(s->n + 1) * 2 <= s->n_slot) return 0;
    size_t ns = s->n_slot ? s->n_slot * 2 : 512;
    int32_t *slot = calloc(ns, sizeof *slot);
    if (!slot) return -1;
    for (int i = 0; i < s->n; i++) slot_put(slot, ns, s->t[i].name, i);
    free(s->slot);
    s->slot = slot;
    s->n_slot = ns;
    return 0;
}

static int add(cv_source *s, const char *name, int dtype, int n_dims, const int64_t *shape,
               int transposed, int file, const void *ref, char *err, size_t errsz)
{
    if (cv_source_find(s, name)) return 1; /* first one wins (ONNX aliases) */
    if (slots_reserve(s) != 0) return cm_fail(err, errsz, "out of memory");
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        cv_tensor *t = realloc(s->t, (size_t)nc * sizeof *t);
        if (!t) return cm_fail(err, errsz, "out of memory");
        s->t = t;
        s->cap = nc;
    }
    cv_tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return cm_fail(err, errsz, "out of memory");
    slot_put(s->slot, s->n_slot, t->name, s->n);
    s->n++;
    t->dtype = dtype;
    t->n_dims = n_dims > BN_ST_MAX_DIMS ? BN_ST_MAX_DIMS : n_dims;
    t->numel = 1;
    for (int i = 0; i < t->n_dims; i++) {
        t->shape[i] = transposed ? shape[t->n_dims - 1 - i] : shape[i];
        t->numel *= (uint64_t)shape[i];
    }
    t->bytes = (size_t)(t->numel * bn_dtype_size(dtype));
    t->transposed = transposed;
    t->file = file;
    t->ref = ref;
    return 0;
}

static int open_safetensors(cv_source *s, const char *const *files, int n, char *err, size_t errsz)
{
    s->st = calloc((size_t)n, sizeof *s->st);
    if (!s->st) return cm_fail(err, errsz, "out of memory");
    for (int f = 0; f < n; f++) {
        if (bn_safetensors_open(s->ctx, files[f], &s->st[f]) != BN_OK)
            return cm_fail(err, errsz, "%s: %s", files[f], bn_ctx_errmsg(s->ctx));
        s->n_st = f + 1;
        for (int64_t i = 0; i < bn_safetensors_n_tensors(s->st[f]); i++) {
            const bn_st_tensor *t = bn_safetensors_tensor_at(s->st[f], i);
            if (cv_source_find(s, t->name))
                return cm_fail(err, errsz, "%s: tensor %s is also in another shard", files[f],
                               t->name);
            if (add(s, t->name, t->dtype, t->n_dims, t->shape, 0, f, t, err, errsz) < 0) return -1;
        }
    }
    return 0;
}

static int open_torch(cv_source *s, const char *const *files, int n, char *err, size_t errsz)
{
    s->pt = calloc((size_t)n, sizeof *s->pt);
    if (!s->pt) return cm_fail(err, errsz, "out of memory");
    for (int f = 0; f < n; f++) {
        if (bn_torch_open(s->ctx, files[f], &s->pt[f]) != BN_OK)
            return cm_fail(err, errsz, "%s: %s", files[f], bn_ctx_errmsg(s->ctx));
        s->n_pt = f + 1;
        for (int64_t i = 0; i < bn_torch_n_tensors(s->pt[f]); i++) {
            const bn_pt_tensor *t = bn_torch_tensor_at(s->pt[f], i);
            if (cv_source_find(s, t->name))
                return cm_fail(err, errsz, "%s: tensor %s is also in another shard", files[f],
                               t->name);
            if (add(s, t->name, t->dtype, t->n_dims, t->shape, 0, f, t, err, errsz) < 0) return -1;
        }
    }
    return 0;
}

/* model.safetensors.index.json or pytorch_model.bin.index.json: {"weight_map": {tensor:
 * file}} -> the distinct files. */
static int open_sharded(cv_source *s, const char *index, char *err, size_t errsz)
{
    size_t len;
    char *text = mc_read_file(index, &len);
    if (!text) return cm_fail(err, errsz, "%s: cannot read", index);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(j);
        return cm_fail(err, errsz, "%s: no weight_map object", index);
    }
    char **files = NULL;
    int n = 0, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
            rc = cm_fail(err, errsz, "%s: weight_map entry for %s is not a file name", index,
                         e->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(files[i] + strlen(s->dir) + 1, e->valuestring) == 0;
        if (seen) continue;
        char **nf = realloc(files, (size_t)(n + 1) * sizeof *files);
        size_t pl = strlen(s->dir) + strlen(e->valuestring) + 2;
        if (!nf || !(nf[n] = malloc(pl))) {
            files = nf ? nf : files;
            rc = cm_fail(err, errsz, "out of memory");
            break;
        }
        files = nf;
        snprintf(files[n++], pl, "%s/%s", s->dir, e->valuestring);
    }
    if (rc == 0 && n == 0) rc = cm_fail(err, errsz, "%s: empty weight_map", index);
    if (rc == 0) {
        snprintf(s->weights, sizeof s->weights, "%s", files[0]);
        rc = s->fmt == CV_FMT_TORCH
                     ? open_torch(s, (const char *const *)files, n, err, errsz)
                     : open_safetensors(s, (const char *const *)files, n, err, errsz);
    }
    /* every tensor the index names must be where it says */
    cJSON_ArrayForEach(e, map)
    {
        if (rc != 0) break;
        const cv_tensor *t = cv_source_find(s, e->string);
        if (!t || strcmp(files[t->file] + strlen(s->dir) + 1, e->valuestring) != 0)
            rc = cm_fail(err, errsz, "%s: %s is not in %s", index, e->string, e->valuestring);
    }
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
    cJSON_Delete(j);
    return rc;
}

/* The module path of a node that uses a weight: from the dynamo exporter's name scopes
 * ("['', 'model', 'model.layers.0.self_attn.q_proj', 'linear']": the entry before the op's
 * own), or from a TorchScript node name ("/model/layers.0/self_attn/q_proj/MatMul"). */
static int node_scope(const bn_onnx *ox, int64_t i, const bn_onnx_node *nd, char *out, size_t n)
{
    const char *ns = bn_onnx_node_meta(ox, i, "pkg.torch.onnx.name_scopes");
    if (ns) {
        const char *q[64];
        int k = 0;
        for (const char *p = ns; (p = strchr(p, '\'')) && k < 64; p++) q[k++] = p;
        if (k < 4 || k % 2) return -1;
        const char *b = q[k - 4] + 1, *e = q[k - 3];
        if (e <= b || (size_t)(e - b) >= n) return -1;
        memcpy(out, b, (size_t)(e - b));
        out[e - b] = '\0';
        return 0;
    }
    if (nd->name[0] != '/') return -1;
    const char *last = strrchr(nd->name, '/');
    size_t len = (size_t)(last - nd->name - 1);
    if (last == nd->name || len >= n) return -1;
    memcpy(out, nd->name + 1, len);
    out[len] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '/') *p = '.';
    return 0;
}

static int open_onnx(cv_source *s, char *err, size_t errsz)
{
    if (bn_onnx_open(s->ctx, s->weights, &s->ox) != BN_OK)
        return cm_fail(err, errsz, "%s: %s", s->weights, bn_ctx_errmsg(s->ctx));
    for (int64_t i = 0; i < bn_onnx_n_tensors(s->ox); i++) {
        const bn_onnx_tensor *t = bn_onnx_tensor_at(s->ox, i);
        if (t->dtype == BN_DTYPE_COUNT_) continue;
        if (add(s, t->name, t->dtype, t->n_dims, t->shape, 0, 0, t, err, errsz) < 0) return -1;
    }
    bn_onnx_node nd;
    for (int64_t i = 0; bn_onnx_node_at(s->ox, i, &nd) == BN_OK; i++) {
        /* the TorchScript exporter keeps one copy of equal tensors and names the others
         * through Identity nodes (two BatchNorm biases of the same values, say) */
        if (strcmp(nd.op_type, "Identity") == 0 && nd.n_inputs == 1 && nd.n_outputs == 1) {
            const bn_onnx_tensor *t = bn_onnx_find(s->ox, nd.inputs[0]);
            if (t && t->dtype != BN_DTYPE_COUNT_ &&
                add(s, nd.outputs[0], t->dtype, t->n_dims, t->shape, 0, 0, t, err, errsz) < 0)
                return -1;
            continue;
        }
        int k = -1, tr = 0, want_dims = 0;
        if (strcmp(nd.op_type, "MatMul") == 0 && nd.n_inputs == 2)
            k = 1, tr = 1, want_dims = 2;
        else if (strcmp(nd.op_type, "Gather") == 0 && nd.n_inputs == 2)
            k = 0, want_dims = 2;
        else if (strcmp(nd.op_type, "Mul") == 0 && nd.n_inputs == 2)
            k = 0, want_dims = 1;
        if (k < 0) continue;
        char scope[512], name[520];
        for (int m = k; m < (int)nd.n_inputs && m <= 1; m++) {
            const bn_onnx_tensor *t = bn_onnx_find(s->ox, nd.inputs[m]);
            if (!t || t->n_dims != want_dims || t->dtype == BN_DTYPE_COUNT_) continue;
            if (node_scope(s->ox, i, &nd, scope, sizeof scope) != 0) break;
            snprintf(name, sizeof name, "%s.weight", scope);
            if (add(s, name, t->dtype, t->n_dims, t->shape, tr, 0, t, err, errsz) < 0) return -1;
            break;
        }
    }
    return 0;
}

static int pick_weights(cv_source *s, const char *src, char *err, size_t errsz)
{
    struct stat st;
    if (stat(src, &st) != 0) return cm_fail(err, errsz, "%s: %s", src, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        snprintf(s->weights, sizeof s->weights, "%s", src);
        const char *slash = strrchr(src, '/');
        if (slash)
            snprintf(s->dir, sizeof s->dir, "%.*s", (int)(slash - src), src);
        else
            snprintf(s->dir, sizeof s->dir, ".");
        if (s->dir[0] == '\0') snprintf(s->dir, sizeof s->dir, "/");
        return 0;
    }
    snprintf(s->dir, sizeof s->dir, "%s", src);
    static const char *const names[] = {"model.safetensors.index.json", "model.safetensors",
                                        "pytorch_model.bin.index.json", "pytorch_model.bin",
                                        "model.onnx"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(s->weights, sizeof s->weights, "%s/%s", src, names[i]);
        if (is_file(s->weights)) return 0;
    }
    /* exactly one *.safetensors / *.bin / *.pt / *.pth / *.onnx */
    DIR *d = opendir(src);
    if (!d) return cm_fail(err, errsz, "%s: %s", src, strerror(errno));
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        static const char *const ext[] = {".safetensors", ".bin", ".pt", ".pth", ".onnx"};
        for (size_t i = 0; i < 5; i++) {
            if (!ends_with(e->d_name, ext[i])) continue;
            found++;
            snprintf(s->weights, sizeof s->weights, "%s/%s", src, e->d_name);
        }
    }
    closedir(d);
    if (found == 1) return 0;
    if (found > 1)
        return cm_fail(err, errsz,
                       "%s: %d weight files; name one (or add "
                       "model.safetensors.index.json)",
                       src, found);
    return cm_fail(err, errsz,
                   "%s: no weights (model.safetensors, shards with "
                   "model.safetensors.index.json, pytorch_model.bin, *.pt, *.onnx)",
                   src);
}

int cv_source_open(bn_ctx *ctx, const char *src, cv_source *s, char *err, size_t errsz)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    if (pick_weights(s, src, err, errsz) != 0) return -1;
    if (read_config(s, err, errsz) != 0) return -1;
    const char *w = s->weights;
    int rc;
    if (ends_with(w, ".index.json")) {
        s->fmt = ends_with(w, ".bin.index.json") ? CV_FMT_TORCH : CV_FMT_SAFETENSORS;
        rc = open_sharded(s, w, err, errsz);
    } else if (ends_with(w, ".safetensors")) {
        s->fmt = CV_FMT_SAFETENSORS;
        rc = open_safetensors(s, &w, 1, err, errsz);
    } else if (ends_with(w, ".onnx")) {
        s->fmt = CV_FMT_ONNX;
        rc = open_onnx(s, err, errsz);
    } else {
        s->fmt = CV_FMT_TORCH;
        rc = open_torch(s, &w, 1, err, errsz);
    }
    if (rc != 0) return -1;
    for (int i = 0; i < s->n; i++) s->weight_bytes += s->t[i].bytes;
    if (!cv_source_find(s, "lm_head.weight")) s->hp.tied = 1;
    const cv_tensor *q = cv_source_find(s, "model.layers.0.self_attn.q_proj.weight");
    s->hp.packed = q && q->dtype == BN_DTYPE_U8;
    if (s->hp.packed && s->hp.arch != CV_ARCH_BITNET)
        return cm_fail(err, errsz, "%s: packed uint8 weights in a %s model", w, s->hp.arch_name);
    return 0;
}

void cv_source_close(cv_source *s)
{
    for (int i = 0; i < s->n_st; i++) bn_safetensors_close(s->st[i]);
    free(s->st);
    for (int i = 0; i < s->n_pt; i++) bn_torch_close(s->pt[i]);
    free(s->pt);
    bn_onnx_close(s->ox);
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    free(s->slot);
    cJSON_Delete(s->config);
    cJSON_Delete(s->defaults);
    memset(s, 0, sizeof *s);
}

const cv_tensor *cv_source_find(const cv_source *s, const char *name)
{
    if (!s->n_slot) return NULL;
    for (size_t k = (size_t)name_hash(name) & (s->n_slot - 1); s->slot[k];
         k = (k + 1) & (s->n_slot - 1))
        if (strcmp(s->t[s->slot[k] - 1].name, name) == 0) return &s->t[s->slot[k] - 1];
    return NULL;
}

/* ---- reading ------------------------------------------------------------------------------ */

int cv_source_raw(cv_source *s, const cv_tensor *t, const void **data, void **owned, char *err,
                  size_t errsz)
{
    *owned = NULL;
    if (s->fmt == CV_FMT_SAFETENSORS) {
        *data = ((const bn_st_tensor *)t->ref)->data;
        return 0;
    }
    void *buf = malloc(t->bytes ? t->bytes : 1);
    if (!buf) return cm_fail(err, errsz, "%s: out of memory (%zu bytes)", t->name, t->bytes);
    bn_status rc = s->fmt == CV_FMT_TORCH ? bn_torch_read(s->pt[t->file], t->ref, buf)
                                          : bn_onnx_read(s->ox, t->ref, buf);
    if (rc != BN_OK) {
        free(buf);
        return cm_fail(err, errsz, "%s: %s", s->weights, bn_ctx_errmsg(s->ctx));
    }
    *data = *owned = buf;
    return 0;
}

void cv_source_release(cv_source *s, const cv_tensor *t, void *owned)
{
    free(owned);
    if (s->fmt == CV_FMT_SAFETENSORS) bn_safetensors_release(s->st[t->file], t->ref);
}

void cv_rows_f32(const cv_tensor *t, const void *raw, int64_t r0, int64_t r1, float *dst)
{
    const int64_t cols = t->n_dims >= 2 ? t->shape[t->n_dims - 1] : (int64_t)t->numel;
    const int64_t rows = cols ? (int64_t)t->numel / cols : 0;
    const size_t es = bn_dtype_size(t->dtype);
    const uint8_t *p = raw;
    if (!t->transposed) {
        bn_dtype_to_f32(t->dtype, p + (size_t)r0 * (size_t)cols * es, (size_t)((r1 - r0) * cols),
                        dst);
        return;
    }
    for (int64_t r = r0; r < r1; r++) /* stored [cols, rows] */
        for (int64_t c = 0; c < cols; c++)
            bn_dtype_to_f32(t->dtype, p + ((size_t)c * (size_t)rows + (size_t)r) * es, 1,
                            &dst[(r - r0) * cols + c]);
}

int cv_check_finite(const char *name, const float *v, int64_t n, int64_t cols, int64_t row0,
                    char *err, size_t errsz)
{
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(v[i])) continue;
        if (cols > 0)
            return cm_fail(err, errsz, "%s: element [%lld, %lld] is %s; a weight must be finite",
                           name, (long long)(row0 + i / cols), (long long)(i % cols),
                           isnan(v[i]) ? "NaN" : "infinite");
        return cm_fail(err, errsz, "%s: element %lld is %s; a weight must be finite", name,
                       (long long)i, isnan(v[i]) ? "NaN" : "infinite");
    }
    return 0;
}

static const cv_tensor *need(cv_source *s, const char *name, int64_t rows, int64_t cols, char *err,
                             size_t errsz)
{
    const cv_tensor *t = cv_source_find(s, name);
    if (!t) {
        cm_fail(err, errsz, "%s: tensor %s is missing", s->weights, name);
        return NULL;
    }
    int64_t r = t->n_dims >= 2 ? t->shape[0] : 1, c = t->shape[t->n_dims >= 2 ? 1 : 0];
    if (t->n_dims < 1 || t->n_dims > 2 || r != rows || c != cols) {
        cm_fail(err, errsz, "%s: shape %lldx%lld, expected %lldx%lld", name, (long long)r,
                (long long)c, (long long)rows, (long long)cols);
        return NULL;
    }
    return t;
}

/* weight_scale of a BitNet layer (1 when absent); *present says whether it exists. */
static int weight_scale(cv_source *s, const char *name, float *ws, int *present, char *err,
                        size_t errsz)
{
    char sn[512];
    snprintf(sn, sizeof sn, "%.*sweight_scale", (int)(strlen(name) - strlen("weight")), name);
    const cv_tensor *t = cv_source_find(s, sn);
    *ws = 1.0f;
    *present = t != NULL;
    if (!t) return 0;
    if (t->numel != 1)
        return cm_fail(err, errsz, "%s: %llu values, expected 1", sn, (unsigned long long)t->numel);
    const void *d;
    void *own;
    if (cv_source_raw(s, t, &d, &own, err, errsz) != 0) return -1;
    bn_dtype_to_f32(t->dtype, d, 1, ws);
    cv_source_release(s, t, own);
    if (!(*ws > 0) || !isfinite(*ws))
        return cm_fail(err, errsz, "%s: %g is not a positive scale", sn, (double)*ws);
    return 0;
}

/* Packed BitNet: weight [rows/4, cols] uint8, row j + i*rows/4 in bits 2i..2i+1, value-1. */
static int unpack(cv_source *s, const char *name, int64_t rows, int64_t cols, int8_t *q,
                  float *scale, char *err, size_t errsz)
{
    if (rows % 4)
        return cm_fail(err, errsz, "%s: %lld rows do not pack by 4", name, (long long)rows);
    const int64_t R = rows / 4;
    const cv_tensor *t = need(s, name, R, cols, err, errsz);
    float ws;
    int present;
    if (!t || weight_scale(s, name, &ws, &present, err, errsz) != 0) return -1;
    if (!present) return cm_fail(err, errsz, "%s: packed weight without weight_scale", name);
    const void *d;
    void *own;
    if (cv_source_raw(s, t, &d, &own, err, errsz) != 0) return -1;
    const uint8_t *p = d;
    int rc = 0;
    for (int64_t j = 0; j < R && rc == 0; j++)
        for (int64_t k = 0; k < cols; k++) {
            uint8_t b = p[j * cols + k];
            for (int i = 0; i < 4; i++) {
                int v = (b >> (2 * i)) & 3;
                if (v == 3) {
                    rc = cm_fail(err, errsz, "%s: byte [%lld, %lld] holds code 3 (not ternary)",
                                 name, (long long)j, (long long)k);
                    break;
                }
                q[(j + i * R) * cols + k] = (int8_t)(v - 1);
            }
        }
    cv_source_release(s, t, own);
    *scale = s->hp.scale_mul ? ws : 1.0f / ws;
    return rc;
}

/* Float weight [rows, cols] as f32 as stored; *ws its weight_scale (1 when absent). */
static int float_weight(cv_source *s, const char *name, int64_t rows, int64_t cols, float *w,
                        float *ws, char *err, size_t errsz)
{
    const cv_tensor *t = need(s, name, rows, cols, err, errsz);
    int present;
    if (!t || weight_scale(s, name, ws, &present, err, errsz) != 0) return -1;
    if (t->dtype == BN_DTYPE_U8 || t->dtype == BN_DTYPE_BOOL)
        return cm_fail(err, errsz, "%s: %s weight where a float was expected", name,
                       bn_dtype_name(t->dtype));
    const void *d;
    void *own;
    if (cv_source_raw(s, t, &d, &own, err, errsz) != 0) return -1;
    cv_rows_f32(t, d, 0, rows, w);
    cv_source_release(s, t, own);
    return cv_check_finite(name, w, rows * cols, cols, 0, err, errsz);
}

/* An offline AutoBitLinear uses its float weight as stored (times weight_scale): exact when
 * every value is 0 or +-a for one a, and refused otherwise (rounding it would change it). */
static int offline_ternary(const char *name, const float *w, int64_t n, float ws, int8_t *q,
                           float *scale, char *err, size_t errsz)
{
    float a = 0;
    for (int64_t i = 0; i < n; i++) {
        const float m = fabsf(w[i]);
        if (m != 0 && a == 0) a = m;
        if (m != 0 && m != a)
            return cm_fail(err, errsz,
                           "%s: element %lld is %g where others are +-%g: an offline AutoBitLinear "
                           "weight is used as stored, and this one is not ternary",
                           name, (long long)i, (double)w[i], (double)a);
        q[i] = (int8_t)(w[i] > 0 ? 1 : w[i] < 0 ? -1 : 0);
    }
    *scale = (a != 0 ? a : 1.0f) * ws;
    return 0;
}

/* The source holds float weights that it uses as stored (an offline AutoBitLinear). */
static int offline_float(const cv_source *s)
{
    return !s->hp.packed && s->hp.quant_ref && s->hp.scale_mul && !s->hp.online;
}

int cv_linear_ternary(cv_source *s, const char *name, int64_t rows, int64_t cols, int8_t *q,
                      float *scale, char *err, size_t errsz)
{
    if (s->hp.packed) return unpack(s, name, rows, cols, q, scale, err, errsz);
    float *w = malloc((size_t)(rows * cols) * sizeof *w), ws;
    if (!w) return cm_fail(err, errsz, "%s: out of memory", name);
    int rc = float_weight(s, name, rows, cols, w, &ws, err, errsz);
    if (rc == 0 && offline_float(s)) {
        rc = offline_ternary(name, w, rows * cols, ws, q, scale, err, errsz);
    } else if (rc == 0) {
        if (!s->hp.online) /* an online AutoBitLinear has no weight_scale */
            for (int64_t i = 0; i < rows * cols; i++) w[i] *= ws;
        if (bn_quantize_absmean(w, rows, cols, BN_QGRAN_TENSOR, 0, q, scale) != BN_OK)
            rc = cm_fail(err, errsz, "%s: cannot quantize", name);
    }
    free(w);
    return rc;
}

/* The reference's weight (see convert.h): written apart from cv_linear_ternary, from what
 * transformers' AutoBitLinear and BitLinear compute, so that a conversion mistake shows. */
int cv_linear_f32(cv_source *s, const char *name, int64_t rows, int64_t cols, float *w, char *err,
                  size_t errsz)
{
    const int64_t n = rows * cols;
    if (!s->hp.packed) {
        float ws;
        if (float_weight(s, name, rows, cols, w, &ws, err, errsz) != 0) return -1;
        if (s->hp.online || (s->hp.quant_ref && !s->hp.scale_mul)) {
            bn_fake_quantize_absmean(w, n); /* WeightQuant at every forward */
        } else {
            for (int64_t i = 0; i < n; i++) w[i] *= ws; /* F.linear(x, w) * weight_scale */
        }
        return 0;
    }
    /* packed: what transformers' unpack_weights does, apart from unpack() above: stored row j
     * holds rows j + i * rows/4 in bits 2i..2i+1 as value + 1; BitLinear divides the product
     * by weight_scale, AutoBitLinear multiplies it */
    const cv_tensor *t = need(s, name, rows / 4, cols, err, errsz);
    float ws;
    int present;
    if (!t || weight_scale(s, name, &ws, &present, err, errsz) != 0) return -1;
    if (rows % 4 || !present)
        return cm_fail(err, errsz, "%s: packed weight without weight_scale or rows by 4", name);
    const void *d;
    void *own;
    if (cv_source_raw(s, t, &d, &own, err, errsz) != 0) return -1;
    const uint8_t *p = d;
    const float mul = s->hp.scale_mul ? ws : 1.0f / ws;
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < rows / 4; j++)
            for (int64_t k = 0; k < cols; k++)
                w[(i * (rows / 4) + j) * cols + k] =
                        (float)(((p[j * cols + k] >> (2 * i)) & 3) - 1) * mul;
    cv_source_release(s, t, own);
    return 0;
}

int cv_vector_f32(cv_source *s, const char *name, int64_t n, float *v, char *err, size_t errsz)
{
    const cv_tensor *t = cv_source_find(s, name);
    if (!t) return cm_fail(err, errsz, "%s: tensor %s is missing", s->weights, name);
    if (t->numel != (uint64_t)n)
        return cm_fail(err, errsz, "%s: %llu values, expected %lld", name,
                       (unsigned long long)t->numel, (long long)n);
    const void *d;
    void *own;
    if (cv_source_raw(s, t, &d, &own, err, errsz) != 0) return -1;
    bn_dtype_to_f32(t->dtype, d, (size_t)n, v);
    cv_source_release(s, t, own);
    return cv_check_finite(name, v, n, 0, 0, err, errsz);
}
