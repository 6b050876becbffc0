/*
 * torchzip.c - PyTorch checkpoints: the zip archive (libzip), a restricted pickle
 * interpreter (a stack machine over tagged values in one arena; nothing is ever called)
 * and the tensors it describes.
 *
 * The interpreter keeps every value in an arena (vm.v) and refers to values by index, so
 * shared references through the memo need no reference counting and everything is freed at
 * once. Containers hold arrays of value indices (dicts: key, value, key, value, ...). Every
 * value is made by one opcode and every container item consumes a stack entry made by one,
 * so the number of values, memo slots and items are all bounded by the pickle's length.
 */
#include "bitnet/torchzip.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "ckpt_internal.h"

#define PKL_MAX_BYTES  ((size_t)1 << 30) /* data.pkl larger than this is refused */
#define PKL_MAX_NAME   256               /* GLOBAL module / name length */
#define PKL_MAX_DEPTH  16                /* nesting of dicts in the result */
#define PT_MAX_ENTRIES (1 << 24)         /* zip entries */

/* ---- values ---------------------------------------------------------------------------- */

enum {
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR
};

static const char *const g_kind_names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                           "list", "dict", "global", "storage", "tensor"};

/* The globals GLOBAL accepts. */
enum { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };

static const struct {
    const char *module, *name;
    int kind;
    bn_dtype dtype; /* G_STORAGE */
} g_globals[] = {
        {"collections", "OrderedDict", G_ODICT, BN_DTYPE_COUNT_},
        {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, BN_DTYPE_COUNT_},
        {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, BN_DTYPE_COUNT_},
        {"torch", "FloatStorage", G_STORAGE, BN_DTYPE_F32},
        {"torch", "DoubleStorage", G_STORAGE, BN_DTYPE_F64},
        {"torch", "HalfStorage", G_STORAGE, BN_DTYPE_F16},
        {"torch", "BFloat16Storage", G_STORAGE, BN_DTYPE_BF16},
        {"torch", "LongStorage", G_STORAGE, BN_DTYPE_I64},
        {"torch", "IntStorage", G_STORAGE, BN_DTYPE_I32},
        {"torch", "ShortStorage", G_STORAGE, BN_DTYPE_I16},
        {"torch", "CharStorage", G_STORAGE, BN_DTYPE_I8},
        {"torch", "ByteStorage", G_STORAGE, BN_DTYPE_U8},
        {"torch", "BoolStorage", G_STORAGE, BN_DTYPE_BOOL},
};

typedef struct pv {
    uint8_t kind;
    uint8_t g;      /* V_GLOBAL: index into g_globals; V_STORAGE: bn_dtype */
    int64_t i;      /* V_BOOL, V_INT; V_STORAGE: element count; V_TENSOR: record index */
    double f;       /* V_FLOAT */
    char *s;        /* V_STR; V_STORAGE: key */
    int32_t *items; /* V_TUPLE, V_LIST; V_DICT as key, value pairs */
    int32_t n, cap;
} pv;

/* A tensor as _rebuild_tensor_v2 describes it. */
typedef struct ptensor {
    int32_t storage; /* value index of a V_STORAGE */
    uint64_t offset;
    int n_dims;
    int64_t shape[BN_PT_MAX_DIMS], stride[BN_PT_MAX_DIMS];
} ptensor;

typedef struct vm {
    bn_ctx *ctx;
    const uint8_t *p;
    size_t n, pos, op_pos;
    pv *v;
    int32_t nv, capv;
    int32_t *stack;
    int32_t sp, capst;
    int32_t *marks;
    int32_t nm, capm;
    int32_t *memo;
    size_t capmemo;
    ptensor *t;
    int32_t nt, capt;
} vm;

static bn_status vm_fail(vm *m, bn_status s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static bn_status vm_fail(vm *m, bn_status s, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bn_ctx_set_error(m->ctx, s, "pickle: %s (at byte %zu of data.pkl)", msg, m->op_pos);
}

static bn_status nomem(vm *m)
{
    return bn_ctx_set_error(m->ctx, BN_ERR_NOMEM, "out of memory");
}

/* Grows an array of elem-byte entries to hold need (need is bounded by the caller). */
static int grow(void **arr, int32_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) return 0;
    int64_t nc = *cap ? (int64_t)*cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (nc > INT32_MAX) nc = INT32_MAX;
    if (nc < need) return -1;
    void *p = bn_malloc((size_t)nc * elem);
    if (!p) return -1;
    if (*arr) memcpy(p, *arr, (size_t)*cap * elem);
    bn_free(*arr);
    *arr = p;
    *cap = (int32_t)nc;
    return 0;
}

static int32_t new_value(vm *m, int kind)
{
    if (grow((void **)&m->v, &m->capv, (int64_t)m->nv + 1, sizeof *m->v)) return -1;
    pv *x = &m->v[m->nv];
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    return m->nv++;
}

static bn_status push(vm *m, int32_t idx)
{
    if (idx < 0) return nomem(m);
    if ((size_t)m->sp >= m->n) return vm_fail(m, BN_ERR_FORMAT, "stack deeper than the pickle");
    if (grow((void **)&m->stack, &m->capst, (int64_t)m->sp + 1, sizeof *m->stack)) return nomem(m);
    m->stack[m->sp++] = idx;
    return BN_OK;
}

static int32_t floor_sp(const vm *m)
{
    return m->nm ? m->marks[m->nm - 1] : 0;
}

static bn_status pop(vm *m, int32_t *out)
{
    if (m->sp <= floor_sp(m)) return vm_fail(m, BN_ERR_FORMAT, "stack underflow");
    *out = m->stack[--m->sp];
    return BN_OK;
}

static bn_status top(vm *m, int32_t *out)
{
    if (m->sp <= floor_sp(m)) return vm_fail(m, BN_ERR_FORMAT, "stack underflow");
    *out = m->stack[m->sp - 1];
    return BN_OK;
}

/* Appends k values to container c. */
static bn_status add_items(vm *m, int32_t c, const int32_t *items, int32_t k)
{
    pv *x = &m->v[c];
    if (grow((void **)&x->items, &x->cap, (int64_t)x->n + k, sizeof *x->items)) return nomem(m);
    memcpy(x->items + x->n, items, (size_t)k * sizeof *items);
    x->n += k;
    return BN_OK;
}

/* A new tuple of the top k stack entries (popped). */
static bn_status make_tuple(vm *m, int32_t from)
{
    int32_t k = m->sp - from;
    int32_t t = new_value(m, V_TUPLE);
    if (t < 0) return nomem(m);
    bn_status rc = k ? add_items(m, t, m->stack + from, k) : BN_OK;
    m->sp = from;
    return rc == BN_OK ? push(m, t) : rc;
}

static bn_status need(vm *m, size_t k)
{
    if (m->n - m->pos < k)
        return vm_fail(m, BN_ERR_FORMAT, "truncated: an operand needs %zu bytes, %zu left", k,
                       m->n - m->pos);
    return BN_OK;
}

static uint64_t rd_le(const uint8_t *p, int k)
{
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static const char *op_name(int op)
{
    switch (op) {
    case '(':
        return "MARK";
    case '.':
        return "STOP";
    case '0':
        return "POP";
    case '1':
        return "POP_MARK";
    case '2':
        return "DUP";
    case 'F':
        return "FLOAT";
    case 'I':
        return "INT";
    case 'J':
        return "BININT";
    case 'K':
        return "BININT1";
    case 'L':
        return "LONG";
    case 'M':
        return "BININT2";
    case 'N':
        return "NONE";
    case 'P':
        return "PERSID";
    case 'Q':
        return "BINPERSID";
    case 'R':
        return "REDUCE";
    case 'S':
        return "STRING";
    case 'T':
        return "BINSTRING";
    case 'U':
        return "SHORT_BINSTRING";
    case 'V':
        return "UNICODE";
    case 'X':
        return "BINUNICODE";
    case 'a':
        return "APPEND";
    case 'b':
        return "BUILD";
    case 'c':
        return "GLOBAL";
    case 'd':
        return "DICT";
    case '}':
        return "EMPTY_DICT";
    case 'e':
        return "APPENDS";
    case 'g':
        return "GET";
    case 'h':
        return "BINGET";
    case 'i':
        return "INST";
    case 'j':
        return "LONG_BINGET";
    case 'l':
        return "LIST";
    case ']':
        return "EMPTY_LIST";
    case 'o':
        return "OBJ";
    case 'p':
        return "PUT";
    case 'q':
        return "BINPUT";
    case 'r':
        return "LONG_BINPUT";
    case 's':
        return "SETITEM";
    case 't':
        return "TUPLE";
    case ')':
        return "EMPTY_TUPLE";
    case 'u':
        return "SETITEMS";
    case 'G':
        return "BINFLOAT";
    case 0x80:
        return "PROTO";
    case 0x81:
        return "NEWOBJ";
    case 0x82:
        return "EXT1";
    case 0x83:
        return "EXT2";
    case 0x84:
        return "EXT4";
    case 0x85:
        return "TUPLE1";
    case 0x86:
        return "TUPLE2";
    case 0x87:
        return "TUPLE3";
    case 0x88:
        return "NEWTRUE";
    case 0x89:
        return "NEWFALSE";
    case 0x8a:
        return "LONG1";
    case 0x8b:
        return "LONG4";
    case 'B':
        return "BINBYTES";
    case 'C':
        return "SHORT_BINBYTES";
    case 0x8c:
        return "SHORT_BINUNICODE";
    case 0x8d:
        return "BINUNICODE8";
    case 0x8e:
        return "BINBYTES8";
    case 0x8f:
        return "EMPTY_SET";
    case 0x90:
        return "ADDITEMS";
    case 0x91:
        return "FROZENSET";
    case 0x92:
        return "NEWOBJ_EX";
    case 0x93:
        return "STACK_GLOBAL";
    case 0x94:
        return "MEMOIZE";
    case 0x95:
        return "FRAME";
    case 0x96:
        return "BYTEARRAY8";
    case 0x97:
        return "NEXT_BUFFER";
    case 0x98:
        return "READONLY_BUFFER";
    default:
        return NULL;
    }
}

/* ---- opcodes ------------------------------------------------------------------------- */

static bn_status op_string(vm *m, int lenbytes)
{
    bn_status rc = need(m, (size_t)lenbytes);
    if (rc != BN_OK) return rc;
    uint64_t len = rd_le(m->p + m->pos, lenbytes);
    m->pos += (size_t)lenbytes;
    if ((rc = need(m, len)) != BN_OK) return rc;
    if (!bn__utf8_valid((const char *)m->p + m->pos, (size_t)len))
        return vm_fail(m, BN_ERR_FORMAT, "string is not valid UTF-8");
    if (memchr(m->p + m->pos, 0, (size_t)len))
        return vm_fail(m, BN_ERR_FORMAT, "string holds a NUL character");
    int32_t s = new_value(m, V_STR);
    if (s < 0 || !(m->v[s].s = bn_malloc((size_t)len + 1))) return nomem(m);
    memcpy(m->v[s].s, m->p + m->pos, (size_t)len);
    m->v[s].s[len] = '\0';
    m->v[s].i = (int64_t)len;
    m->pos += (size_t)len;
    return push(m, s);
}

static bn_status push_int(vm *m, int kind, int64_t v)
{
    int32_t x = new_value(m, kind);
    if (x < 0) return nomem(m);
    m->v[x].i = v;
    return push(m, x);
}

static bn_status op_int(vm *m, int op)
{
    int k = op == 'J' ? 4 : op == 'K' ? 1 : 2;
    bn_status rc = need(m, (size_t)k);
    if (rc != BN_OK) return rc;
    uint64_t u = rd_le(m->p + m->pos, k);
    m->pos += (size_t)k;
    int64_t v = op == 'J' ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
    return push_int(m, V_INT, v);
}

static bn_status op_long1(vm *m)
{
    bn_status rc = need(m, 1);
    if (rc != BN_OK) return rc;
    int k = m->p[m->pos++];
    if (k > 8) return vm_fail(m, BN_ERR_UNSUPPORTED, "LONG1 of %d bytes (at most 8)", k);
    if ((rc = need(m, (size_t)k)) != BN_OK) return rc;
    uint64_t u = rd_le(m->p + m->pos, k);
    if (k > 0 && k < 8 && (m->p[m->pos + (size_t)k - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * k);
    m->pos += (size_t)k;
    return push_int(m, V_INT, (int64_t)u);
}

static bn_status op_binfloat(vm *m)
{
    bn_status rc = need(m, 8);
    if (rc != BN_OK) return rc;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = (u << 8) | m->p[m->pos + (size_t)i]; /* big-endian */
    m->pos += 8;
    int32_t x = new_value(m, V_FLOAT);
    if (x < 0) return nomem(m);
    memcpy(&m->v[x].f, &u, 8);
    return push(m, x);
}

/* Reads "text\n" (at most PKL_MAX_NAME bytes) into buf. */
static bn_status read_line(vm *m, char *buf)
{
    const uint8_t *nl = memchr(m->p + m->pos, '\n', m->n - m->pos);
    if (!nl) return vm_fail(m, BN_ERR_FORMAT, "truncated GLOBAL operand");
    size_t len = (size_t)(nl - (m->p + m->pos));
    if (len >= PKL_MAX_NAME) return vm_fail(m, BN_ERR_FORMAT, "GLOBAL name too long");
    memcpy(buf, m->p + m->pos, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 32 || (unsigned char)buf[i] > 126) buf[i] = '?';
    m->pos += len + 1;
    return BN_OK;
}

static bn_status op_global(vm *m)
{
    char mod[PKL_MAX_NAME], name[PKL_MAX_NAME];
    bn_status rc = read_line(m, mod);
    if (rc == BN_OK) rc = read_line(m, name);
    if (rc != BN_OK) return rc;
    for (size_t i = 0; i < sizeof g_globals / sizeof g_globals[0]; i++) {
        if (strcmp(mod, g_globals[i].module) == 0 && strcmp(name, g_globals[i].name) == 0) {
            int32_t x = new_value(m, V_GLOBAL);
            if (x < 0) return nomem(m);
            m->v[x].g = (uint8_t)i;
            return push(m, x);
        }
    }
    return vm_fail(m, BN_ERR_UNSUPPORTED,
                   "global '%.100s.%.100s' is not allowed (only collections.OrderedDict, "
                   "torch._utils rebuild functions and torch storage classes)",
                   mod, name);
}

static bn_status op_memo(vm *m, int op)
{
    int k = (op == 'q' || op == 'h') ? 1 : 4;
    bn_status rc = need(m, (size_t)k);
    if (rc != BN_OK) return rc;
    uint64_t idx = rd_le(m->p + m->pos, k);
    m->pos += (size_t)k;
    if (idx >= m->n)
        return vm_fail(m, BN_ERR_FORMAT, "memo index %llu too large", (unsigned long long)idx);
    if (op == 'q' || op == 'r') {
        int32_t t = 0;
        if ((rc = top(m, &t)) != BN_OK) return rc;
        if (idx >= m->capmemo) {
            size_t nc = m->capmemo ? m->capmemo : 64;
            while (nc <= idx) nc *= 2;
            if (nc > m->n) nc = m->n;
            int32_t *nm = bn_malloc(nc * sizeof *nm);
            if (!nm) return nomem(m);
            if (m->memo) memcpy(nm, m->memo, m->capmemo * sizeof *nm);
            for (size_t i = m->capmemo; i < nc; i++) nm[i] = -1;
            bn_free(m->memo);
            m->memo = nm;
            m->capmemo = nc;
        }
        m->memo[idx] = t;
        return BN_OK;
    }
    if (idx >= m->capmemo || m->memo[idx] < 0)
        return vm_fail(m, BN_ERR_FORMAT, "memo %llu read before it was set",
                       (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static const char *kind_name(const vm *m, int32_t x)
{
    return g_kind_names[m->v[x].kind];
}

/* BINPERSID: ('storage', <storage class>, key, location, numel) -> a storage. */
static bn_status op_persid(vm *m)
{
    int32_t pid = 0;
    bn_status rc = pop(m, &pid);
    if (rc != BN_OK) return rc;
    const pv *t = &m->v[pid];
    if (t->kind != V_TUPLE || t->n != 5)
        return vm_fail(m, BN_ERR_FORMAT, "persistent id is not a 5-tuple");
    const pv *tag = &m->v[t->items[0]], *cls = &m->v[t->items[1]], *key = &m->v[t->items[2]],
             *loc = &m->v[t->items[3]], *num = &m->v[t->items[4]];
    if (tag->kind != V_STR || strcmp(tag->s, "storage") != 0)
        return vm_fail(m, BN_ERR_FORMAT, "persistent id is not a 'storage' record");
    if (cls->kind != V_GLOBAL || g_globals[cls->g].kind != G_STORAGE)
        return vm_fail(m, BN_ERR_FORMAT, "persistent id names no storage class");
    if (key->kind != V_STR || key->i == 0 || loc->kind != V_STR || num->kind != V_INT || num->i < 0)
        return vm_fail(m, BN_ERR_FORMAT, "malformed storage record");
    if (strchr(key->s, '/') || strcmp(key->s, "..") == 0)
        return vm_fail(m, BN_ERR_FORMAT, "storage key '%.40s' is not a plain name", key->s);
    int32_t x = new_value(m, V_STORAGE);
    if (x < 0) return nomem(m);
    pv *s = &m->v[x];
    t = &m->v[pid]; /* the arena may have moved */
    s->g = (uint8_t)g_globals[m->v[t->items[1]].g].dtype;
    s->s = bn_strdup(m->v[t->items[2]].s);
    s->i = m->v[t->items[4]].i;
    if (!s->s) return nomem(m);
    return push(m, x);
}

/* A tuple of non-negative ints into out (at most BN_PT_MAX_DIMS). */
static bn_status int_tuple(vm *m, int32_t x, int64_t *out, int *n, const char *what)
{
    const pv *t = &m->v[x];
    if (t->kind != V_TUPLE) return vm_fail(m, BN_ERR_FORMAT, "tensor %s is not a tuple", what);
    if (t->n > BN_PT_MAX_DIMS)
        return vm_fail(m, BN_ERR_UNSUPPORTED, "tensor with %d dimensions (at most %d)", t->n,
                       BN_PT_MAX_DIMS);
    for (int32_t i = 0; i < t->n; i++) {
        const pv *e = &m->v[t->items[i]];
        if (e->kind != V_INT || e->i < 0)
            return vm_fail(m, BN_ERR_FORMAT, "tensor %s holds a non-integer or negative", what);
        out[i] = e->i;
    }
    *n = t->n;
    return BN_OK;
}

static bn_status rebuild_tensor(vm *m, int32_t args)
{
    const pv *a = &m->v[args];
    if (a->n != 6 && a->n != 7)
        return vm_fail(m, BN_ERR_FORMAT, "_rebuild_tensor_v2 with %d arguments", a->n);
    const pv *st = &m->v[a->items[0]], *off = &m->v[a->items[1]];
    if (st->kind != V_STORAGE)
        return vm_fail(m, BN_ERR_FORMAT, "_rebuild_tensor_v2 on a %s, not a storage",
                       kind_name(m, a->items[0]));
    if (off->kind != V_INT || off->i < 0) return vm_fail(m, BN_ERR_FORMAT, "bad storage offset");
    ptensor pt = {.storage = a->items[0], .offset = (uint64_t)off->i};
    int ns;
    bn_status rc = int_tuple(m, a->items[2], pt.shape, &pt.n_dims, "size");
    if (rc == BN_OK) rc = int_tuple(m, a->items[3], pt.stride, &ns, "stride");
    if (rc != BN_OK) return rc;
    if (ns != pt.n_dims) return vm_fail(m, BN_ERR_FORMAT, "%d sizes but %d strides", pt.n_dims, ns);
    if (grow((void **)&m->t, &m->capt, (int64_t)m->nt + 1, sizeof *m->t)) return nomem(m);
    m->t[m->nt] = pt;
    return push_int(m, V_TENSOR, m->nt++);
}

static bn_status op_reduce(vm *m)
{
    int32_t args = 0, fn = 0;
    bn_status rc = pop(m, &args);
    if (rc == BN_OK) rc = pop(m, &fn);
    if (rc != BN_OK) return rc;
    if (m->v[fn].kind != V_GLOBAL)
        return vm_fail(m, BN_ERR_FORMAT, "REDUCE calls a %s", kind_name(m, fn));
    if (m->v[args].kind != V_TUPLE)
        return vm_fail(m, BN_ERR_FORMAT, "REDUCE arguments are a %s", kind_name(m, args));
    const int g = m->v[fn].g;
    switch (g_globals[g].kind) {
    case G_ODICT:
        if (m->v[args].n != 0) return vm_fail(m, BN_ERR_UNSUPPORTED, "OrderedDict with arguments");
        return push(m, new_value(m, V_DICT));
    case G_REBUILD_V2:
        return rebuild_tensor(m, args);
    case G_REBUILD_PARAM:
        if (m->v[args].n != 3 || m->v[m->v[args].items[0]].kind != V_TENSOR)
            return vm_fail(m, BN_ERR_FORMAT, "_rebuild_parameter needs (tensor, bool, hooks)");
        return push(m, m->v[args].items[0]);
    default:
        return vm_fail(m, BN_ERR_UNSUPPORTED, "REDUCE of %s.%s", g_globals[g].module,
                       g_globals[g].name);
    }
}

/* SETITEM(S), APPEND(S): items from the stack into the container below them. */
static bn_status op_fill(vm *m, int op)
{
    const int is_dict = op == 's' || op == 'u';
    int32_t from, c;
    if (op == 'u' || op == 'e') {
        if (m->nm == 0) return vm_fail(m, BN_ERR_FORMAT, "%s without MARK", op_name(op));
        from = m->marks[--m->nm];
    } else {
        from = m->sp - (is_dict ? 2 : 1);
        if (from < floor_sp(m)) return vm_fail(m, BN_ERR_FORMAT, "stack underflow");
    }
    if (from <= floor_sp(m)) return vm_fail(m, BN_ERR_FORMAT, "%s with no container", op_name(op));
    c = m->stack[from - 1];
    if (m->v[c].kind != (is_dict ? V_DICT : V_LIST))
        return vm_fail(m, BN_ERR_FORMAT, "%s on a %s", op_name(op), kind_name(m, c));
    int32_t k = m->sp - from;
    if (is_dict && k % 2) return vm_fail(m, BN_ERR_FORMAT, "SETITEMS with an odd item count");
    bn_status rc = k ? add_items(m, c, m->stack + from, k) : BN_OK;
    m->sp = from;
    return rc;
}

static bn_status op_build(vm *m)
{
    int32_t state = 0, obj = 0;
    bn_status rc = pop(m, &state);
    if (rc == BN_OK) rc = top(m, &obj);
    if (rc != BN_OK) return rc;
    if (m->v[obj].kind != V_DICT)
        return vm_fail(m, BN_ERR_UNSUPPORTED, "BUILD on a %s", kind_name(m, obj));
    if (m->v[state].kind != V_DICT && m->v[state].kind != V_NONE)
        return vm_fail(m, BN_ERR_UNSUPPORTED, "BUILD with a %s state", kind_name(m, state));
    return BN_OK; /* an OrderedDict's attributes (_metadata): not needed */
}

static bn_status op_mark(vm *m)
{
    if (grow((void **)&m->marks, &m->capm, (int64_t)m->nm + 1, sizeof *m->marks)) return nomem(m);
    m->marks[m->nm++] = m->sp;
    return BN_OK;
}

static bn_status op_tuple(vm *m, int op)
{
    if (op == 't') {
        if (m->nm == 0) return vm_fail(m, BN_ERR_FORMAT, "TUPLE without MARK");
        return make_tuple(m, m->marks[--m->nm]);
    }
    int k = op == ')' ? 0 : op - 0x84;
    if (m->sp - floor_sp(m) < k) return vm_fail(m, BN_ERR_FORMAT, "stack underflow");
    return make_tuple(m, m->sp - k);
}

/* One opcode; *stop is set by STOP. */
static bn_status step(vm *m, int *stop)
{
    m->op_pos = m->pos;
    int op = m->p[m->pos++];
    switch (op) {
    case 0x80: {
        bn_status rc = need(m, 1);
        if (rc != BN_OK) return rc;
        if (m->p[m->pos] > 5)
            return vm_fail(m, BN_ERR_UNSUPPORTED, "pickle protocol %d", m->p[m->pos]);
        m->pos++;
        return BN_OK;
    }
    case '}':
        return push(m, new_value(m, V_DICT));
    case ']':
        return push(m, new_value(m, V_LIST));
    case ')':
    case 0x85:
    case 0x86:
    case 0x87:
    case 't':
        return op_tuple(m, op);
    case '(':
        return op_mark(m);
    case 'X':
        return op_string(m, 4);
    case 0x8c:
        return op_string(m, 1);
    case 'J':
    case 'K':
    case 'M':
        return op_int(m, op);
    case 0x8a:
        return op_long1(m);
    case 'G':
        return op_binfloat(m);
    case 0x88:
        return push_int(m, V_BOOL, 1);
    case 0x89:
        return push_int(m, V_BOOL, 0);
    case 'N':
        return push(m, new_value(m, V_NONE));
    case 'c':
        return op_global(m);
    case 'R':
        return op_reduce(m);
    case 'Q':
        return op_persid(m);
    case 's':
    case 'u':
    case 'a':
    case 'e':
        return op_fill(m, op);
    case 'b':
        return op_build(m);
    case 'q':
    case 'r':
    case 'h':
    case 'j':
        return op_memo(m, op);
    case '.':
        *stop = 1;
        return BN_OK;
    default: {
        const char *nm = op_name(op);
        if (nm) return vm_fail(m, BN_ERR_UNSUPPORTED, "opcode %s (0x%02x) is not allowed", nm, op);
        return vm_fail(m, BN_ERR_FORMAT, "unknown opcode 0x%02x", op);
    }
    }
}

static void vm_release(vm *m)
{
    for (int32_t i = 0; i < m->nv; i++) {
        bn_free(m->v[i].s);
        bn_free(m->v[i].items);
    }
    bn_free(m->v);
    bn_free(m->stack);
    bn_free(m->marks);
    bn_free(m->memo);
    bn_free(m->t);
    memset(m, 0, sizeof *m);
}

/* Runs the pickle; *result gets the value STOP returned. */
static bn_status vm_run(vm *m, int32_t *result)
{
    int stop = 0;
    bn_status rc = BN_OK;
    while (rc == BN_OK && !stop) {
        if (m->pos >= m->n) {
            m->op_pos = m->pos;
            return vm_fail(m, BN_ERR_FORMAT, "truncated: no STOP");
        }
        rc = step(m, &stop);
    }
    if (rc != BN_OK) return rc;
    if (m->nm) m->nm = 0; /* a dangling MARK: harmless, as in Python */
    return pop(m, result);
}

/* ---- the archive ------------------------------------------------------------------------ */

typedef struct pt_extra {
    zip_int64_t entry; /* zip index of the storage */
    uint64_t first;    /* storage element of the first element */
    uint64_t span;     /* elements from first to the last one, + 1 (0 when empty) */
} pt_extra;

struct bn_torch {
    bn_ctx *ctx;
    const void *base;
    size_t size;
    int mapped;
    zip_t *za;
    char *dir; /* "<dir>/" */
    int64_t n_tensors, cap;
    bn_pt_tensor *tensors;
    pt_extra *extra;
    const char **names;
    bn__name_index index;
};

static bn_status zip_fail(bn_torch *pt, bn_status s, zip_error_t *ze, const char *what)
{
    return bn_ctx_set_error(pt->ctx, s, "%s: %s", what, zip_error_strerror(ze));
}

/* Reads all of entry idx (at most max bytes) into a new buffer. */
static bn_status read_entry(bn_torch *pt, zip_int64_t idx, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    zip_stat_t zs;
    if (zip_stat_index(pt->za, (zip_uint64_t)idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
        return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), "zip entry");
    if (zs.size > max)
        return bn_ctx_set_error(pt->ctx, BN_ERR_RANGE, "%s: %llu bytes (limit %zu)", zs.name,
                                (unsigned long long)zs.size, max);
    uint8_t *buf = bn_malloc((size_t)zs.size + 1);
    if (!buf) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    zip_file_t *f = zip_fopen_index(pt->za, (zip_uint64_t)idx, 0);
    bn_status rc = BN_OK;
    if (!f) {
        rc = zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), zs.name);
    } else {
        zip_int64_t got = zip_fread(f, buf, zs.size);
        if (got < 0 || (zip_uint64_t)got != zs.size)
            rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: %s", zs.name,
                                  got < 0 ? zip_error_strerror(zip_file_get_error(f))
                                          : "short read");
        zip_fclose(f);
    }
    if (rc != BN_OK) {
        bn_free(buf);
        return rc;
    }
    *out = buf;
    *len = (size_t)zs.size;
    return BN_OK;
}

/* Finds the one "<dir>/data.pkl"; sets pt->dir. */
static bn_status find_pickle(bn_torch *pt, zip_int64_t *idx)
{
    zip_int64_t n = zip_get_num_entries(pt->za, 0);
    if (n > PT_MAX_ENTRIES)
        return bn_ctx_set_error(pt->ctx, BN_ERR_RANGE, "zip archive with %lld entries",
                                (long long)n);
    *idx = -1;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(pt->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) continue;
        const char *slash = strchr(name, '/');
        if (!slash || strcmp(slash, "/data.pkl") != 0) continue;
        if (*idx >= 0)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                    "not a PyTorch checkpoint: more than one data.pkl");
        *idx = i;
        size_t dl = (size_t)(slash - name) + 1;
        bn_free(pt->dir);
        if (!(pt->dir = bn_malloc(dl + 1)))
            return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        memcpy(pt->dir, name, dl);
        pt->dir[dl] = '\0';
    }
    if (*idx < 0)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                "not a PyTorch checkpoint: no <name>/data.pkl in the zip archive");
    return BN_OK;
}

static bn_status check_byteorder(bn_torch *pt)
{
    char name[PKL_MAX_NAME + 16];
    snprintf(name, sizeof name, "%sbyteorder", pt->dir);
    zip_int64_t i = zip_name_locate(pt->za, name, ZIP_FL_ENC_RAW);
    if (i < 0) return BN_OK; /* older files: little-endian */
    uint8_t *b;
    size_t len;
    bn_status rc = read_entry(pt, i, 64, &b, &len);
    if (rc != BN_OK) return rc;
    if (len != 6 || memcmp(b, "little", 6) != 0)
        rc = bn_ctx_set_error(pt->ctx, BN_ERR_UNSUPPORTED,
                              "PyTorch checkpoint: byte order is not 'little'");
    bn_free(b);
    return rc;
}

static bn_status add_tensor(bn_torch *pt, vm *m, const char *name, const ptensor *src)
{
    if (pt->n_tensors == pt->cap) {
        int64_t nc = pt->cap ? pt->cap * 2 : 64;
        bn_pt_tensor *t = bn_calloc((size_t)nc, sizeof *t);
        pt_extra *e = bn_calloc((size_t)nc, sizeof *e);
        if (!t || !e) {
            bn_free(t);
            bn_free(e);
            return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        }
        if (pt->tensors) memcpy(t, pt->tensors, (size_t)pt->n_tensors * sizeof *t);
        if (pt->extra) memcpy(e, pt->extra, (size_t)pt->n_tensors * sizeof *e);
        bn_free(pt->tensors);
        bn_free(pt->extra);
        pt->tensors = t;
        pt->extra = e;
        pt->cap = nc;
    }
    bn_pt_tensor *t = &pt->tensors[pt->n_tensors];
    pt_extra *e = &pt->extra[pt->n_tensors];
    const pv *st = &m->v[src->storage];
    pt->n_tensors++; /* from here on, close frees the slot's strings */
    if (!(t->name = bn_strdup(name)) || !(t->storage = bn_strdup(st->s)))
        return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    t->dtype = (bn_dtype)st->g;
    t->n_dims = src->n_dims;
    t->storage_offset = src->offset;
    memcpy(t->shape, src->shape, sizeof t->shape);
    memcpy(t->stride, src->stride, sizeof t->stride);
    const size_t es = bn_dtype_size(t->dtype);
    uint64_t numel = 1, last = 0, expect = 1, tmp, bytes;
    int contiguous = 1;
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (bn_mul_u64(numel, (uint64_t)t->shape[d], &numel)) goto overflow;
        if (t->shape[d] > 0) {
            if (bn_mul_u64((uint64_t)t->shape[d] - 1, (uint64_t)t->stride[d], &tmp) ||
                bn_add_u64(last, tmp, &last))
                goto overflow;
        }
        if (t->shape[d] != 1 && (uint64_t)t->stride[d] != expect) contiguous = 0;
        if (bn_mul_u64(expect, (uint64_t)t->shape[d], &expect)) goto overflow;
    }
    if (bn_mul_u64(numel, es, &bytes) || bytes > SIZE_MAX) goto overflow;
    t->numel = numel;
    t->size = (size_t)bytes;
    t->contiguous = contiguous;
    e->first = src->offset;
    e->span = numel ? last + 1 : 0;
    uint64_t end;
    if (bn_add_u64(e->first, e->span, &end) || (numel && end > (uint64_t)st->i))
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                                "%.120s: elements [%llu, %llu) lie outside its storage of %lld",
                                name, (unsigned long long)e->first,
                                (unsigned long long)e->first + e->span, (long long)st->i);
    char ename[PKL_MAX_NAME * 2 + 16];
    snprintf(ename, sizeof ename, "%sdata/%s", pt->dir, st->s);
    e->entry = zip_name_locate(pt->za, ename, ZIP_FL_ENC_RAW);
    zip_stat_t zs;
    if (e->entry < 0 || zip_stat_index(pt->za, (zip_uint64_t)e->entry, 0, &zs) != 0)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%.120s: storage %.40s is missing (%.80s)",
                                name, st->s, ename);
    if (bn_mul_u64((uint64_t)st->i, es, &bytes) || zs.size != bytes)
        return bn_ctx_set_error(
                pt->ctx, BN_ERR_FORMAT,
                "%.120s: storage %.40s holds %llu bytes, %lld %s elements need %llu", name, st->s,
                (unsigned long long)zs.size, (long long)st->i, bn_dtype_name(t->dtype),
                (unsigned long long)bytes);
    if (zs.comp_method != ZIP_CM_STORE && zs.comp_method != ZIP_CM_DEFLATE)
        return bn_ctx_set_error(pt->ctx, BN_ERR_UNSUPPORTED,
                                "%.120s: storage compressed with method %d", name,
                                (int)zs.comp_method);
    return BN_OK;
overflow:
    return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%.120s: size arithmetic overflows", name);
}

/* Walks the result: tensors under dotted names, nested dicts flattened. */
static bn_status flatten(bn_torch *pt, vm *m, int32_t dict, char *prefix, size_t plen, int depth)
{
    if (depth > PKL_MAX_DEPTH)
        return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: dicts nested too deep");
    const pv *d = &m->v[dict];
    for (int32_t i = 0; i + 1 < d->n; i += 2) {
        const pv *k = &m->v[d->items[i]], *v = &m->v[d->items[i + 1]];
        if (v->kind != V_TENSOR && v->kind != V_DICT) continue;
        if (k->kind != V_STR)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: a %s key maps to a tensor",
                                    kind_name(m, d->items[i]));
        size_t kl = (size_t)k->i;
        if (plen + kl + 2 > 4096)
            return bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "pickle: tensor name too long");
        memcpy(prefix + plen, k->s, kl);
        prefix[plen + kl] = '\0';
        bn_status rc;
        if (v->kind == V_TENSOR) {
            rc = add_tensor(pt, m, prefix, &m->t[v->i]);
        } else {
            prefix[plen + kl] = '.';
            rc = flatten(pt, m, d->items[i + 1], prefix, plen + kl + 1, depth + 1);
        }
        if (rc != BN_OK) return rc;
    }
    return BN_OK;
}

static bn_status parse_pickle(bn_torch *pt, const uint8_t *p, size_t n)
{
    vm m = {.ctx = pt->ctx, .p = p, .n = n};
    int32_t res = 0;
    bn_status rc = vm_run(&m, &res);
    if (rc == BN_OK && m.v[res].kind != V_DICT)
        rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT,
                              "pickle: the checkpoint holds a %s, not a dict of tensors",
                              kind_name(&m, res));
    char *prefix = rc == BN_OK ? bn_malloc(4096) : NULL;
    if (rc == BN_OK && !prefix) rc = bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    if (rc == BN_OK) rc = flatten(pt, &m, res, prefix, 0, 0);
    bn_free(prefix);
    vm_release(&m);
    return rc;
}

static bn_status build_index(bn_torch *pt)
{
    pt->names = bn_malloc((size_t)(pt->n_tensors ? pt->n_tensors : 1) * sizeof *pt->names);
    if (!pt->names) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < pt->n_tensors; i++) pt->names[i] = pt->tensors[i].name;
    int64_t dup;
    bn_status rc = bn__name_index_build(&pt->index, pt->names, pt->n_tensors, &dup);
    if (rc == BN_ERR_FORMAT)
        return bn_ctx_set_error(pt->ctx, rc, "pickle: tensor name '%.120s' occurs twice",
                                pt->names[dup]);
    if (rc != BN_OK) return bn_ctx_set_error(pt->ctx, rc, "out of memory");
    return BN_OK;
}

static bn_status check_magic(bn_ctx *ctx, const uint8_t *p, size_t n)
{
    if (n >= 2 && p[0] == 0x80 && p[1] <= 5)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED,
                                "legacy PyTorch format (saved before 1.6 or with "
                                "_use_new_zipfile_serialization=False): load and torch.save it "
                                "again");
    if (n > 262 && memcmp(p + 257, "ustar", 5) == 0)
        return bn_ctx_set_error(ctx, BN_ERR_UNSUPPORTED, "legacy PyTorch tar format");
    if (n < 4 || p[0] != 'P' || p[1] != 'K' || (p[2] != 3 && p[2] != 5))
        return bn_ctx_set_error(ctx, BN_ERR_FORMAT, "not a PyTorch checkpoint: not a zip archive");
    return BN_OK;
}

static bn_status open_archive(bn_torch *pt)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(pt->base, pt->size, 0, &ze);
    if (!src) {
        bn_status rc = zip_fail(pt, BN_ERR_NOMEM, &ze, "zip");
        zip_error_fini(&ze);
        return rc;
    }
    pt->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!pt->za) {
        zip_source_free(src);
        bn_status rc = zip_fail(pt, BN_ERR_FORMAT, &ze, "not a PyTorch checkpoint: zip archive");
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    return BN_OK;
}

static bn_status parse(bn_torch *pt)
{
    bn_status rc = check_magic(pt->ctx, pt->base, pt->size);
    if (rc == BN_OK) rc = open_archive(pt);
    zip_int64_t pk = -1;
    if (rc == BN_OK) rc = find_pickle(pt, &pk);
    if (rc == BN_OK) rc = check_byteorder(pt);
    uint8_t *pkl = NULL;
    size_t len = 0;
    if (rc == BN_OK) rc = read_entry(pt, pk, PKL_MAX_BYTES, &pkl, &len);
    if (rc == BN_OK) rc = parse_pickle(pt, pkl, len);
    bn_free(pkl);
    if (rc == BN_OK) rc = build_index(pt);
    return rc;
}

static bn_status open_bytes(bn_ctx *ctx, const void *data, size_t size, int mapped, bn_torch **out)
{
    bn_torch *pt = bn_calloc(1, sizeof *pt);
    if (!pt) return bn_ctx_set_error(ctx, BN_ERR_NOMEM, "out of memory");
    pt->ctx = ctx;
    pt->base = data;
    pt->size = size;
    bn_status rc = parse(pt);
    if (rc != BN_OK) {
        bn_torch_close(pt);
        return rc;
    }
    pt->mapped = mapped;
    *out = pt;
    return BN_OK;
}

bn_status bn_torch_open_memory(bn_ctx *ctx, const void *data, size_t size, bn_torch **out)
{
    BN_ASSERT(out);
    *out = NULL;
    if (!data && size > 0) return bn_ctx_set_error(ctx, BN_ERR_INVALID, "NULL data");
    return open_bytes(ctx, size ? data : "", size, 0, out);
}

bn_status bn_torch_open(bn_ctx *ctx, const char *path, bn_torch **out)
{
    BN_ASSERT(out && path);
    *out = NULL;
    const void *p;
    size_t size;
    bn_status rc = bn__map_file(ctx, path, &p, &size);
    if (rc != BN_OK) return rc;
    rc = open_bytes(ctx, p, size, 1, out);
    if (rc != BN_OK) bn__unmap(p, size);
    return rc;
}

void bn_torch_close(bn_torch *pt)
{
    if (!pt) return;
    if (pt->za) zip_discard(pt->za);
    for (int64_t i = 0; i < pt->n_tensors; i++) {
        bn_free((void *)pt->tensors[i].name);
        bn_free((void *)pt->tensors[i].storage);
    }
    bn_free(pt->tensors);
    bn_free(pt->extra);
    bn_free(pt->names);
    bn_free(pt->dir);
    bn__name_index_release(&pt->index);
    if (pt->mapped) bn__unmap(pt->base, pt->size);
    bn_free(pt);
}

int64_t bn_torch_n_tensors(const bn_torch *pt)
{
    return pt->n_tensors;
}

const bn_pt_tensor *bn_torch_tensor_at(const bn_torch *pt, int64_t i)
{
    return i >= 0 && i < pt->n_tensors ? &pt->tensors[i] : NULL;
}

const bn_pt_tensor *bn_torch_find(const bn_torch *pt, const char *name)
{
    int64_t i = bn__name_index_find(&pt->index, name);
    return i >= 0 ? &pt->tensors[i] : NULL;
}

/* Reads len bytes at byte offset off of an entry into dst. */
static bn_status read_span(bn_torch *pt, const bn_pt_tensor *t, zip_int64_t entry, uint64_t off,
                           uint8_t *dst, size_t len)
{
    zip_stat_t zs;
    if (zip_stat_index(pt->za, (zip_uint64_t)entry, 0, &zs) != 0)
        return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), t->name);
    zip_file_t *f = zip_fopen_index(pt->za, (zip_uint64_t)entry, 0);
    if (!f) return zip_fail(pt, BN_ERR_FORMAT, zip_get_error(pt->za), t->name);
    bn_status rc = BN_OK;
    if (off > 0 && zs.comp_method == ZIP_CM_STORE) {
        if (zip_fseek(f, (zip_int64_t)off, SEEK_SET) != 0)
            rc = zip_fail(pt, BN_ERR_FORMAT, zip_file_get_error(f), t->name);
    } else {
        uint8_t scratch[4096]; /* deflated: read up to the offset */
        for (uint64_t left = off; left > 0 && rc == BN_OK;) {
            size_t k = left < sizeof scratch ? (size_t)left : sizeof scratch;
            zip_int64_t got = zip_fread(f, scratch, k);
            if (got <= 0)
                rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: short read", t->name);
            else
                left -= (uint64_t)got;
        }
    }
    for (size_t done = 0; rc == BN_OK && done < len;) {
        zip_int64_t got = zip_fread(f, dst + done, len - done);
        if (got <= 0)
            rc = bn_ctx_set_error(pt->ctx, BN_ERR_FORMAT, "%s: %s", t->name,
                                  got < 0 ? zip_error_strerror(zip_file_get_error(f))
                                          : "short read");
        else
            done += (size_t)got;
    }
    zip_fclose(f);
    return rc;
}

/* Copies a strided view out of the span that holds it. */
static void gather(const bn_pt_tensor *t, const uint8_t *span, uint8_t *dst, size_t es)
{
    int64_t idx[BN_PT_MAX_DIMS] = {0};
    for (uint64_t k = 0; k < t->numel; k++) {
        uint64_t off = 0;
        for (int d = 0; d < t->n_dims; d++) off += (uint64_t)idx[d] * (uint64_t)t->stride[d];
        memcpy(dst + k * es, span + off * es, es);
        for (int d = t->n_dims - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

bn_status bn_torch_read(bn_torch *pt, const bn_pt_tensor *t, void *dst)
{
    BN_ASSERT(pt && t && dst && t >= pt->tensors && t < pt->tensors + pt->n_tensors);
    const pt_extra *e = &pt->extra[t - pt->tensors];
    if (t->numel == 0) return BN_OK;
    const size_t es = bn_dtype_size(t->dtype);
    const uint64_t off = e->first * es; /* fits: checked against the entry's size on open */
    bn_status rc;
    if (t->contiguous) {
        rc = read_span(pt, t, e->entry, off, dst, t->size);
    } else {
        size_t span = (size_t)(e->span * es);
        uint8_t *tmp = bn_malloc(span);
        if (!tmp) return bn_ctx_set_error(pt->ctx, BN_ERR_NOMEM, "out of memory");
        rc = read_span(pt, t, e->entry, off, tmp, span);
        if (rc == BN_OK) gather(t, tmp, dst, es);
        bn_free(tmp);
    }
    /* the copy is made: the mapping's pages go (libzip reads the entry, and the central
     * directory again next time, from the file), so RSS stays near one tensor, not the file */
    if (pt->mapped) bn__release_pages(pt->base, pt->size);
    return rc;
}
