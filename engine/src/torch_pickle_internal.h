/* torch_pickle_internal.h - the pickle interpreter (torch_pickle.c) as torchzip.c uses it:
 * run data.pkl, walk the values it made, release them. */
#ifndef BITNET_TORCH_PICKLE_INTERNAL_H
#define BITNET_TORCH_PICKLE_INTERNAL_H

#include "bitnet/core.h"
#include "bitnet/torchzip.h"

#include <stddef.h>
#include <stdint.h>

#define PKL_MAX_NAME 256 /* GLOBAL module / name length */

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

typedef struct pv {
    uint8_t kind;
    uint8_t g;      /* V_GLOBAL: index into g_globals (torch_pickle.c); V_STORAGE: bn_dtype */
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

/* Runs the pickle m->p[0..m->n) (m zeroed but for ctx, p and n); *result gets the value STOP
 * returned. Errors go to m->ctx. bn__pkl_release frees everything, also after a failure. */
bn_status bn__pkl_run(vm *m, int32_t *result);
void bn__pkl_release(vm *m);
/* "dict", "tensor", ...: the kind of value x, for messages. */
const char *bn__pkl_kind_name(const vm *m, int32_t x);

#endif
