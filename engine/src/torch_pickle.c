/*
 * torch_pickle.c - the restricted pickle interpreter of PyTorch checkpoints (data.pkl): a
 * stack machine over tagged values in one arena; nothing is ever called. torchzip.c opens
 * the zip archive around it and turns its result into tensors; the value types they share
 * are in torch_pickle_internal.h.
 *
 * The interpreter keeps every value in an arena (vm.v) and refers to values by index, so
 * shared references through the memo need no reference counting and everything is freed at
 * once. Containers hold arrays of value indices (dicts: key, value, key, value, ...). Every
 * value is made by one opcode and every container item consumes a stack entry made by one,
 * so the number of values, memo slots and items are all bounded by the pickle's length.
 */
#include "torch_pickle_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

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

const char *bn__pkl_kind_name(const vm *m, int32_t x)
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
                       bn__pkl_kind_name(m, a->items[0]));
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
        return vm_fail(m, BN_ERR_FORMAT, "REDUCE calls a %s", bn__pkl_kind_name(m, fn));
    if (m->v[args].kind != V_TUPLE)
        return vm_fail(m, BN_ERR_FORMAT, "REDUCE arguments are a %s", bn__pkl_kind_name(m, args));
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
        return vm_fail(m, BN_ERR_FORMAT, "%s on a %s", op_name(op), bn__pkl_kind_name(m, c));
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
        return vm_fail(m, BN_ERR_UNSUPPORTED, "BUILD on a %s", bn__pkl_kind_name(m, obj));
    if (m->v[state].kind != V_DICT && m->v[state].kind != V_NONE)
        return vm_fail(m, BN_ERR_UNSUPPORTED, "BUILD with a %s state", bn__pkl_kind_name(m, state));
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

void bn__pkl_release(vm *m)
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
bn_status bn__pkl_run(vm *m, int32_t *result)
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
