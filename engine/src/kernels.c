/*
 * kernels.c - the run-time ternary matrix (bn_tmat) and its repackers, quantized
 * activations (bn_qact), the kernel table chosen at run time, and the threaded
 * matrix product.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bitnet/cpu.h"
#include "bitnet/quant.h"
#include "kernels_internal.h"

/* ---- bn_tmat ---------------------------------------------------------------------- */

/* A code byte of four zero weights (code 1 in every crumb): what padding holds. */
#define ZERO_CODES 0x55

/* Code arrays of at least HUGE_BYTES start on a 2 MiB boundary and ask for transparent
 * huge pages: a GEMV streams them once per token, and the hardware prefetchers stop at
 * every 4 KiB page boundary (GEMV ~15% faster from memory on Zen 3). The alignment
 * costs address space only: the pages before the array are never touched. */
#define HUGE_BYTES ((size_t)2 << 20)

static uint8_t *codes_alloc(size_t bytes)
{
    if (bytes < HUGE_BYTES) return bn_aligned_alloc(64, bytes);
    uint8_t *p = bn_aligned_alloc(HUGE_BYTES, bytes);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes / HUGE_BYTES * HUGE_BYTES, MADV_HUGEPAGE);
#endif
    return p;
}

static bn_status tmat_alloc(bn_tmat *w, int64_t rows, int64_t cols)
{
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 1) return BN_ERR_INVALID;
    if (cols > BN__TMAT_MAX_COLS) return BN_ERR_RANGE;
    if (rows > INT64_MAX / 2) return BN_ERR_OVERFLOW;
    const int64_t kpad = (cols + BN_TMAT_KBLOCK - 1) / BN_TMAT_KBLOCK * BN_TMAT_KBLOCK;
    const int64_t rows_pad = (rows + BN_TMAT_RGROUP - 1) / BN_TMAT_RGROUP * BN_TMAT_RGROUP;
    size_t code_bytes, scale_bytes;
    if (bn_mul_size((size_t)rows_pad, (size_t)(kpad / 4), &code_bytes) ||
        bn_mul_size((size_t)rows, sizeof(float), &scale_bytes))
        return BN_ERR_OVERFLOW;
    w->codes = codes_alloc(code_bytes);
    w->scales = bn_malloc(scale_bytes);
    if (!w->codes || !w->scales) {
        bn_tmat_release(w);
        return BN_ERR_NOMEM;
    }
    w->rows = rows;
    w->cols = cols;
    w->kpad = kpad;
    w->row_bytes = kpad / 4;
    w->rows_pad = rows_pad;
    /* padding rows hold zero weights; the packers write every block of the others */
    for (int64_t r = rows; r < rows_pad; r++)
        for (int64_t b = 0; b < kpad / BN_TMAT_KBLOCK; b++)
            memset(bn__tmat_block(w, r, b), ZERO_CODES, 32);
    return BN_OK;
}

void bn_tmat_release(bn_tmat *w)
{
    if (!w) return;
    bn_free(w->codes);
    bn_free(w->scales);
    memset(w, 0, sizeof *w);
}

int bn_tmat_get(const bn_tmat *w, int64_t r, int64_t k)
{
    BN_ASSERT(r >= 0 && r < w->rows && k >= 0 && k < w->kpad);
    const uint8_t *blk = bn__tmat_block(w, r, k / BN_TMAT_KBLOCK);
    const int64_t i = k % BN_TMAT_KBLOCK;
    return ((blk[i % 32] >> (6 - 2 * (i / 32))) & 3) - 1;
}

/* Code of a ternary value, or 1 (zero) with *bad set when it is not -1, 0, +1. */
static unsigned tern_code(int v, int *bad)
{
    if (v < -1 || v > 1) {
        *bad = 1;
        return 1;
    }
    return (unsigned)(v + 1);
}

/* Packs row r of w from cols ternary values q; nonzero if a value is not -1, 0, +1. */
static int pack_row(bn_tmat *w, int64_t r, const int8_t *q, int64_t cols)
{
    int bad = 0;
    for (int64_t b = 0; b < w->kpad / BN_TMAT_KBLOCK; b++) {
        uint8_t *dst = bn__tmat_block(w, r, b);
        const int8_t *qb = q + b * BN_TMAT_KBLOCK;
        const int64_t n = cols - b * BN_TMAT_KBLOCK; /* weights of this block present */
        if (n >= BN_TMAT_KBLOCK) {
            for (int j = 0; j < 32; j++)
                dst[j] = (uint8_t)(tern_code(qb[j], &bad) << 6 | tern_code(qb[j + 32], &bad) << 4 |
                                   tern_code(qb[j + 64], &bad) << 2 | tern_code(qb[j + 96], &bad));
            continue;
        }
        memset(dst, ZERO_CODES, 32);
        for (int64_t i = 0; i < n; i++) {
            const int shift = 6 - 2 * (int)(i / 32);
            dst[i % 32] =
                    (uint8_t)((dst[i % 32] & ~(3u << shift)) | tern_code(qb[i], &bad) << shift);
        }
    }
    return bad;
}

bn_status bn_tmat_from_ternary(bn_tmat *w, const int8_t *q, const float *scales, float scale,
                               int64_t rows, int64_t cols)
{
    bn_status rc = tmat_alloc(w, rows, cols);
    if (rc != BN_OK) return rc;
    for (int64_t r = 0; r < rows; r++) {
        if (pack_row(w, r, q + r * cols, cols)) {
            bn_tmat_release(w);
            return BN_ERR_FORMAT;
        }
        w->scales[r] = scales ? scales[r] : scale;
    }
    return BN_OK;
}

/* Nonzero if any crumb of the n bytes is 3 (not a ternary code). */
static int has_code3(const uint8_t *p, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) bad |= p[i] & (p[i] >> 1) & 0x55u;
    return bad != 0;
}

bn_status bn_tmat_from_i2s(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows, int64_t cols)
{
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 1 || cols % BN_QK_I2S != 0) return BN_ERR_INVALID;
    uint64_t n;
    if (bn_mul_u64((uint64_t)rows, (uint64_t)cols, &n) || n > (uint64_t)INT64_MAX / 2)
        return BN_ERR_OVERFLOW;
    if (size < bn_i2s_bytes((int64_t)n)) return BN_ERR_FORMAT;
    bn_status rc = tmat_alloc(w, rows, cols);
    if (rc != BN_OK) return rc;
    /* cols % 128 == 0: the I2_S blocks are this layout's blocks, row after row */
    const size_t code_bytes = (size_t)(n / 4);
    if (has_code3(data, code_bytes)) {
        bn_tmat_release(w);
        return BN_ERR_FORMAT;
    }
    const int64_t nbk = cols / BN_TMAT_KBLOCK;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nbk; b++)
            memcpy(bn__tmat_block(w, r, b), data + (size_t)(r * nbk + b) * 32, 32);
    float scale;
    memcpy(&scale, data + code_bytes, sizeof scale); /* little-endian hosts only */
    for (int64_t r = 0; r < rows; r++) w->scales[r] = scale;
    return BN_OK;
}

/* Size checks shared by the TQ formats: cols a multiple of 256, size large enough. */
static bn_status tq_check(int64_t rows, int64_t cols, size_t block_bytes, size_t size,
                          size_t *row_size)
{
    if (rows < 1 || cols < 1 || cols % BN_QK_TQ != 0) return BN_ERR_INVALID;
    size_t total;
    if (bn_mul_size((size_t)(cols / BN_QK_TQ), block_bytes, row_size) ||
        bn_mul_size(*row_size, (size_t)rows, &total))
        return BN_ERR_OVERFLOW;
    return size < total ? BN_ERR_FORMAT : BN_OK;
}

/* The row's scale from its blocks' scales d[0..nb): all blocks that hold a nonzero
 * weight must agree. nonzero[b] says whether block b does. A row of zero weights gets
 * scale 0, whatever its blocks' d (so y is 0 even if a d is inf or NaN). */
static bn_status row_scale(const float *d, const uint8_t *nonzero, int64_t nb, float *out)
{
    int found = 0;
    *out = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        if (!nonzero[b]) continue;
        if (!found) {
            *out = d[b];
            found = 1;
        } else if (d[b] != *out) {
            return BN_ERR_UNSUPPORTED;
        }
    }
    return BN_OK;
}

/* TQ2_0 crumbs run lowest bits first, this layout's highest first: reverse them. */
static uint8_t crumb_reverse(uint8_t b)
{
    return (uint8_t)((b & 3u) << 6 | (b & 0x0cu) << 2 | (b & 0x30u) >> 2 | (b & 0xc0u) >> 6);
}

/* Row r of w from its nb TQ2_0 blocks at src: each block's two halves of 128 weights
 * are two blocks of this layout. d and nz are scratch for nb entries. */
static bn_status tq2_row(bn_tmat *w, int64_t r, const uint8_t *src, int64_t nb, float *d,
                         uint8_t *nz)
{
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = src + b * BN_TQ2_0_BLOCK_BYTES;
        if (has_code3(blk, 64)) return BN_ERR_FORMAT;
        unsigned any = 0;
        for (int half = 0; half < 2; half++) {
            uint8_t *dst = bn__tmat_block(w, r, 2 * b + half);
            for (int i = 0; i < 32; i++) {
                any |= blk[32 * half + i] ^ ZERO_CODES;
                dst[i] = crumb_reverse(blk[32 * half + i]);
            }
        }
        nz[b] = any != 0;
        d[b] = bn_f16_to_f32((uint16_t)(blk[64] | blk[65] << 8));
    }
    return row_scale(d, nz, nb, &w->scales[r]);
}

bn_status bn_tmat_from_tq2_0(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows,
                             int64_t cols)
{
    memset(w, 0, sizeof *w);
    size_t row_size;
    bn_status rc = tq_check(rows, cols, BN_TQ2_0_BLOCK_BYTES, size, &row_size);
    if (rc != BN_OK) return rc;
    const int64_t nb = cols / BN_QK_TQ;
    float *d = bn_malloc((size_t)nb * sizeof *d);
    uint8_t *nz = bn_malloc((size_t)nb);
    if (!d || !nz) {
        rc = BN_ERR_NOMEM;
        goto done;
    }
    rc = tmat_alloc(w, rows, cols);
    for (int64_t r = 0; r < rows && rc == BN_OK; r++)
        rc = tq2_row(w, r, data + (size_t)r * row_size, nb, d, nz);
done:
    bn_free(d);
    bn_free(nz);
    if (rc != BN_OK) bn_tmat_release(w);
    return rc;
}

bn_status bn_tmat_from_tq1_0(bn_tmat *w, const uint8_t *data, size_t size, int64_t rows,
                             int64_t cols)
{
    memset(w, 0, sizeof *w);
    size_t row_size;
    bn_status rc = tq_check(rows, cols, BN_TQ1_0_BLOCK_BYTES, size, &row_size);
    if (rc != BN_OK) return rc;
    const int64_t nb = cols / BN_QK_TQ;
    int8_t *q = bn_malloc((size_t)cols);
    float *d = bn_malloc((size_t)nb * sizeof *d);
    uint8_t *nz = bn_malloc((size_t)nb);
    if (!q || !d || !nz) {
        rc = BN_ERR_NOMEM;
        goto done;
    }
    rc = tmat_alloc(w, rows, cols);
    for (int64_t r = 0; r < rows && rc == BN_OK; r++) {
        rc = bn_unpack_tq1_0(data + (size_t)r * row_size, cols, q, d);
        if (rc != BN_OK) break;
        for (int64_t b = 0; b < nb; b++) {
            unsigned any = 0;
            for (int i = 0; i < BN_QK_TQ; i++) any |= (uint8_t)q[b * BN_QK_TQ + i];
            nz[b] = any != 0;
        }
        if (pack_row(w, r, q, cols)) rc = BN_ERR_FORMAT;
        if (rc == BN_OK) rc = row_scale(d, nz, nb, &w->scales[r]);
    }
done:
    bn_free(q);
    bn_free(d);
    bn_free(nz);
    if (rc != BN_OK) bn_tmat_release(w);
    return rc;
}

/* ---- bn_qact ------------------------------------------------------------------------ */

bn_status bn_qact_init(bn_qact *x, int64_t cap, int64_t cols)
{
    memset(x, 0, sizeof *x);
    if (cap < 1 || cols < 1) return BN_ERR_INVALID;
    if (cols > BN__TMAT_MAX_COLS) return BN_ERR_RANGE;
    const int64_t kpad = (cols + BN_TMAT_KBLOCK - 1) / BN_TMAT_KBLOCK * BN_TMAT_KBLOCK;
    size_t qbytes;
    if (bn_mul_size((size_t)cap, (size_t)kpad, &qbytes)) return BN_ERR_OVERFLOW;
    x->q = bn_aligned_alloc(64, qbytes);
    x->inv_scale = bn_calloc((size_t)cap, sizeof *x->inv_scale);
    x->sum = bn_calloc((size_t)cap, sizeof *x->sum);
    if (!x->q || !x->inv_scale || !x->sum) {
        bn_qact_release(x);
        return BN_ERR_NOMEM;
    }
    memset(x->q, 0, qbytes);
    x->cap = cap;
    x->cols = cols;
    x->kpad = kpad;
    return BN_OK;
}

void bn_qact_quantize(bn_qact *a, const float *x, int64_t n_tok)
{
    BN_ASSERT(n_tok >= 0 && n_tok <= a->cap);
    for (int64_t t = 0; t < n_tok; t++) {
        int8_t *q = a->q + t * a->kpad;
        const float s = bn_quantize_act_row(x + t * a->cols, a->cols, q);
        memset(q + a->cols, 0, (size_t)(a->kpad - a->cols));
        int32_t sum = 0;
        for (int64_t k = 0; k < a->cols; k++) sum += q[k];
        a->inv_scale[t] = 1.0f / s;
        a->sum[t] = sum;
    }
    a->n_tok = n_tok;
}

void bn_qact_release(bn_qact *x)
{
    if (!x) return;
    bn_free(x->q);
    bn_free(x->inv_scale);
    bn_free(x->sum);
    memset(x, 0, sizeof *x);
}

/* ---- dispatch ----------------------------------------------------------------------- */

/* Whether this CPU can run the variant k. */
static int can_run(const bn_kernels *k)
{
    if (k == &bn__kernels_ref) return 1;
#ifdef BN__HAVE_X86
    const bn_cpu_info *c = bn_cpu_info_get();
    if (k == &bn__kernels_avx2) return c->avx2 && c->fma && c->f16c;
    if (k == &bn__kernels_avx512)
        return c->avx2 && c->fma && c->f16c && c->avx512f && c->avx512bw && c->avx512vl &&
               c->avx512vnni;
#endif
#ifdef BN__HAVE_NEON
    const bn_cpu_info *c = bn_cpu_info_get();
    if (k == &bn__kernels_neon) return c->neon && c->dotprod;
#endif
    return 0;
}

/* Every variant compiled in, best last. */
static const bn_kernels *const g_variants[] = {
        &bn__kernels_ref,
#ifdef BN__HAVE_X86
        &bn__kernels_avx2,
        &bn__kernels_avx512,
#endif
#ifdef BN__HAVE_NEON
        &bn__kernels_neon,
#endif
};
#define N_VARIANTS ((int)(sizeof g_variants / sizeof g_variants[0]))

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const bn_kernels *g_best;

static void choose_best(void)
{
    const char *e = getenv("BN_NO_SIMD");
    g_best = &bn__kernels_ref;
    if (e && *e && strcmp(e, "0") != 0) return;
    for (int i = 0; i < N_VARIANTS; i++)
        if (can_run(g_variants[i])) g_best = g_variants[i];
}

const bn_kernels *bn_kernels_get(void)
{
    pthread_once(&g_once, choose_best);
    return g_best;
}

const bn_kernels *bn_kernels_ref(void)
{
    return &bn__kernels_ref;
}

const bn_kernels *bn_kernels_by_name(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < N_VARIANTS; i++)
        if (strcmp(g_variants[i]->name, name) == 0)
            return can_run(g_variants[i]) ? g_variants[i] : NULL;
    return NULL;
}

int bn_kernels_list(const bn_kernels **out, int max)
{
    int n = 0;
    for (int i = 0; i < N_VARIANTS; i++) {
        if (!can_run(g_variants[i])) continue;
        if (n < max) out[n] = g_variants[i];
        n++;
    }
    return n < max ? n : max;
}

/* ---- the threaded product ------------------------------------------------------------ */

typedef struct tmatmul_job {
    const bn_kernels *k;
    const bn_tmat *w;
    const bn_qact *x;
    float *y;
} tmatmul_job;

static void tmatmul_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const tmatmul_job *j = arg;
    (void)tid;
    j->k->tgemm(j->w, j->x, j->y, j->w->rows, r0, r1);
}

void bn_tmatmul(bn_threadpool *pool, const bn_kernels *k, const bn_tmat *w, const bn_qact *x,
                float *y)
{
    BN_ASSERT(w->cols == x->cols);
    if (x->n_tok < 1) return;
    tmatmul_job j = {k ? k : bn_kernels_get(), w, x, y};
    /* Each thread gets one contiguous range of whole row groups (a GEMV reads them as one
     * stream): multiples of 32 rows for a GEMV, of 48 (three GEMM row blocks of 16) for
     * a batch. */
    const int64_t grain = x->n_tok == 1 ? 32 : 48;
    bn_pool_parallel_for(pool, w->rows, grain, tmatmul_range, &j);
}
