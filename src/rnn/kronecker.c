/* KRONECKER recurrence (a real-valued Kronecker Recurrent Unit, Jose et al. 2018): for each gate g,
 * W_g = K_{g,0} (x) K_{g,1} (x) ... (x) K_{g,F-1} with square factors p_f x p_f, prod p_f = H.
 * Factor f of every gate is one tensor weight_hh_l{l}_kron{f}[_reverse] of shape (G, p_f, p_f).
 *
 * W_g h is applied without forming W_g. Viewed as a row-major tensor (p_0, ..., p_{F-1}), h is
 * multiplied by factor f along mode f: y[.., i_f, ..] = sum_j K_f[i_f, j] x[.., j, ..]. The mode
 * products run over the whole batch as one GEMM each, by rotating the modes: with the batch's states
 * transposed once per step into X (p_0, ..., p_{F-1}, B), the product with the leading factor is
 *     Z (N x p) = X^T K^T    where X is read as a p x N matrix, N = B * H / p,
 * and Z, row-major, is the tensor with that mode processed and moved to the end:
 * (p_1, ..., p_{F-1}, B, p_0). After F such GEMMs every mode is processed and back in place, with
 * the batch first: (B, p_0, ..., p_{F-1}) = the B x H result. So a step costs G * F GEMM calls
 * (M = B*H/p_f, N = K = p_f; 2*B*G*H*sum p_f FLOPs), one B x H transposition shared by the gates
 * and one pass adding each gate's result into the step's gate rows. F = 1 is the dense product.
 *
 * These GEMMs are too thin for OpenBLAS to thread well (a 2-core H = 512 LSTM ran no faster on two
 * threads than on one), so the thread team shares them: the gates' chains are independent, and each
 * GEMM is cut into blocks of rows small enough for OpenBLAS to run on the calling thread alone. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rnn/rnn_internal.h"

enum {
    TRANSPOSE_TILE = 32,
    /* OpenBLAS (0.3.21) runs a GEMM with M*N*K <= 2^18 on its caller alone: team threads running
     * such blocks at once do not queue for OpenBLAS's threads. On one thread the blocks would only
     * add calls (H = 1024, 2^10: 20 % slower), so the products stay whole there. */
    SERIAL_GEMM_MNK = 1 << 18,
    TEAM_MIN_FLOATS = 1 << 15, /* B * G * H below which waking helpers costs more than it saves */
    /* Adjacent factors whose sizes multiply to at most this are applied as one factor, their
     * Kronecker product. A mode product is a GEMM of inner size p that streams the B*H states
     * through memory once; for p <= 32 its time is that pass, 100-300 us at B*H = 65536 whatever p
     * (OpenBLAS, 2 cores), while its FLOPs grow with p. So 2^9 as 32 x 16 takes 2 passes instead of
     * 9 (H = 512 LSTM: 3.8x faster), at 48/18 the FLOPs. */
    MERGED_MAX = 32,
};

/* The factors [f, *end) that apply as one: f and the following ones while their product stays
 * within MERGED_MAX. Returns that product. */
static int64_t merged_group(const attn_rnn_options *o, int64_t f, int64_t *end)
{
    int64_t p = attn__rnn_factor(o, f), e = f + 1;
    while (e < o->num_factors && p * attn__rnn_factor(o, e) <= MERGED_MAX)
        p *= attn__rnn_factor(o, e++);
    *end = e;
    return p;
}

static attn_status kron_validate(const char *fn, const attn_rnn_options *o)
{
    const int64_t nf = o->num_factors;
    if (nf < 1 || nf > ATTN_RNN_MAX_FACTORS_ALL)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: num_factors must be in 1..%d for KRONECKER (got %lld)", fn,
                          ATTN_RNN_MAX_FACTORS_ALL, (long long)nf);
    for (int64_t f = 0; f < ATTN_RNN_MAX_FACTORS_ALL; f++) {
        const int64_t p = attn__rnn_factor(o, f);
        const char *field = f < ATTN_RNN_MAX_FACTORS ? "factor_sizes" : "more_factor_sizes";
        const long long at = f < ATTN_RNN_MAX_FACTORS ? f : f - ATTN_RNN_MAX_FACTORS;
        if (f < nf && p < 1)
            return attn__fail(ATTN_E_INVALID_ARG, "%s: %s[%lld] must be >= 1 for KRONECKER (got %lld)", fn, field, at,
                              (long long)p);
        if (f >= nf && p != 0)
            return attn__fail(ATTN_E_INVALID_ARG, "%s: %s[%lld] must be 0 beyond num_factors %lld (got %lld)", fn,
                              field, at, (long long)nf, (long long)p);
    }
    char sizes[ATTN_RNN_MAX_FACTORS_ALL * 24] = "";
    int64_t product = 1;
    bool overflow = false;
    for (int64_t f = 0; f < nf; f++) {
        const size_t used = strlen(sizes);
        snprintf(sizes + used, sizeof sizes - used, "%s%lld", f ? " x " : "", (long long)attn__rnn_factor(o, f));
        overflow = overflow || !attn__mul(product, attn__rnn_factor(o, f), &product);
    }
    if (overflow)
        return attn__fail(ATTN_E_INVALID_ARG,
                          "%s: the product of factor_sizes %s overflows int64; it must equal hidden_size %lld", fn,
                          sizes, (long long)o->hidden_size);
    if (product != o->hidden_size)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: the product of factor_sizes %s is %lld, not hidden_size %lld", fn,
                          sizes, (long long)product, (long long)o->hidden_size);
    return ATTN_OK;
}

/* Init law: every factor entry ~ U(-a, a) with a = sqrt(3) * (3H)^(-1/(2F)). Entries of a
 * Kronecker product are products of F independent zero-mean factor entries, so their variance is
 * the product of the factors' variances, (a^2/3)^F = 1/(3H): the variance of PyTorch's dense law
 * U(-1/sqrt(H), 1/sqrt(H)), hence the same scale of W_g h. F = 1 gives PyTorch's bound exactly. */
static attn_status kron_declare(attn_rnn *rnn, int64_t layer, const char *suffix, float bound, rnn_tensors *t)
{
    (void)bound;
    const attn_rnn_options *o = &rnn->opt;
    const float a = (float)(sqrt(3.0) * pow(3.0 * (double)o->hidden_size, -0.5 / (double)o->num_factors));
    for (int64_t f = 0; f < o->num_factors; f++) {
        const int64_t p = attn__rnn_factor(o, f), shape[] = {rnn->gates, p, p};
        attn_status st = attn__rnn_declare(rnn, &t->rec[f], a, 3, shape, "weight_hh_l%lld_kron%lld%s",
                                           (long long)layer, (long long)f, suffix);
        if (st)
            return st;
    }
    return ATTN_OK;
}

/* Every GEMM of apply has M = B * H / p_f rows, read with that leading dimension. */
static int64_t kron_max_batch(const attn_rnn *rnn) { return INT32_MAX / rnn->opt.hidden_size; }

static int64_t kron_macs(const attn_rnn *rnn)
{
    int64_t sum = 0; /* the sizes of the factors as applied (F = 1: H) */
    for (int64_t f = 0, end = 0; f < rnn->opt.num_factors; f = end)
        sum += merged_group(&rnn->opt, f, &end);
    return rnn->gates * rnn->opt.hidden_size * sum;
}

/* F >= 2: the transposed states X and each gate's two ping-pong buffers for the rotated products,
 * H floats each per batch row. F = 1 needs none. */
static int64_t kron_scratch(const attn_rnn *rnn)
{
    return rnn->opt.num_factors == 1 ? 0 : (1 + 2 * rnn->gates) * rnn->opt.hidden_size;
}

/* x = h^T: h is batch x n, rows at stride ldh. */
typedef struct transpose_task {
    int64_t batch, n, ldh;
    const float *h;
    float *x; /* n x batch */
} transpose_task;

/* The columns of h in tiles [first, end) (TRANSPOSE_TILE wide), transposed into x in tiles so that
 * both sides stay in cache. */
static void transpose(const void *ctx, int64_t first, int64_t end)
{
    const transpose_task *k = ctx;
    const int64_t batch = k->batch, n = k->n, ldh = k->ldh;
    const float *h = k->h;
    float *x = k->x;
    for (int64_t b0 = 0; b0 < batch; b0 += TRANSPOSE_TILE)
        for (int64_t j0 = first * TRANSPOSE_TILE; j0 < n && j0 < end * TRANSPOSE_TILE; j0 += TRANSPOSE_TILE) {
            const int64_t b1 = b0 + TRANSPOSE_TILE < batch ? b0 + TRANSPOSE_TILE : batch;
            const int64_t j1 = j0 + TRANSPOSE_TILE < n ? j0 + TRANSPOSE_TILE : n;
            for (int64_t b = b0; b < b1; b++)
                for (int64_t j = j0; j < j1; j++)
                    x[j * batch + b] = h[b * ldh + j];
        }
}

/* c = c (x) k in place: c is n x n at the top-left of a matrix of leading dimension ldc, k is
 * p x p; the n*p x n*p product puts c[i, j] k at rows i*p .., columns j*p ..; walking (i, j)
 * downwards, those cells never hold an entry of c not yet read. Applied factor by factor from the
 * 1 x 1 matrix 1, it forms K_0 (x) K_1 (x) ... */
static void kron_grow(float *c, int64_t ldc, int64_t n, const float *k, int64_t p)
{
    for (int64_t i = n - 1; i >= 0; i--)
        for (int64_t j = n - 1; j >= 0; j--) {
            const float v = c[i * ldc + j];
            for (int64_t a = 0; a < p; a++)
                for (int64_t b = 0; b < p; b++)
                    c[(i * p + a) * ldc + j * p + b] = v * k[a * p + b];
        }
}

enum { MAX_GATES = 4 }; /* the LSTM's */

/* Gate g's factor of size p applied in one mode product: K_{g,f}, or for a group [f, end) the
 * Kronecker product K_{g,f} (x) K_{g,f+1} (x) ..., grown into `merged` (p x p) from the 1 x 1
 * matrix 1. */
static const float *mode_factor(const attn_rnn *rnn, const rnn_tensors *t, int64_t g, int64_t f, int64_t end,
                                int64_t p, float *merged)
{
    if (end == f + 1)
        return attn__params_cdata(rnn->params, t->rec[f]) + g * p * p;
    int64_t n = 1;
    merged[0] = 1.0f;
    for (int64_t m = f; m < end; m++) {
        const int64_t q = attn__rnn_factor(&rnn->opt, m);
        kron_grow(merged, p, n, attn__params_cdata(rnn->params, t->rec[m]) + g * q * q, q);
        n *= q;
    }
    return merged;
}

/* One mode product of every gate with its factor of size p; M = rows, in blocks. */
typedef struct mode_task {
    const float *factor[MAX_GATES];
    int64_t p, rows, block, blocks;
    const float *x; /* the first product's input, shared by the gates */
    float *rotated; /* gate g's ping-pong buffers at (2g, 2g + 1) * B*H */
    int64_t pass;
} mode_task;

/* Blocks [first, end) of the pass, block j of gate j / blocks: Z = X^T K^T on its rows. */
static void mode_blocks(const void *ctx, int64_t first, int64_t end)
{
    const mode_task *k = ctx;
    const int64_t p = k->p, bh = k->rows * p;
    for (int64_t j = first; j < end; j++) {
        const int64_t g = j / k->blocks, row = j % k->blocks * k->block;
        const int64_t rows = k->rows - row < k->block ? k->rows - row : k->block;
        const float *src = k->pass ? k->rotated + (2 * g + (k->pass - 1) % 2) * bh : k->x;
        float *dst = k->rotated + (2 * g + k->pass % 2) * bh;
        attn__sgemm(true, true, rows, p, p, 1.0f, src + row, k->rows, k->factor[g], p, 0.0f, dst + row * p, p);
    }
}

/* acc rows [first, end) += (or =, beta = 0) every gate's result. */
typedef struct gather_task {
    int64_t n, gates, ldacc;
    float beta;
    const float *results; /* gate g's B x H result at g * 2 * B*H */
    int64_t stride;       /* 2 * B*H */
    float *acc;
} gather_task;

static void gather_gates(const void *ctx, int64_t first, int64_t end)
{
    const gather_task *k = ctx;
    for (int64_t b = first; b < end; b++)
        for (int64_t g = 0; g < k->gates; g++) {
            float *out = k->acc + b * k->ldacc + g * k->n;
            const float *src = k->results + g * k->stride + b * k->n;
            if (k->beta == 0.0f)
                memcpy(out, src, (size_t)k->n * sizeof *out);
            else
                attn__add(out, src, k->n);
        }
}

static void kron_apply(const attn_rnn *rnn, const rnn_tensors *t, attn_team *team, int64_t batch, const float *h,
                       int64_t ldh, float beta, float *acc, int64_t ldacc, float *scratch)
{
    const attn_rnn_options *o = &rnn->opt;
    const int64_t n = o->hidden_size, nf = o->num_factors;
    if (nf == 1) { /* (G, H, H) is laid out like weight_hh: the dense product */
        attn__sgemm(false, true, batch, rnn->gates * n, n, 1.0f, h, ldh, attn__params_cdata(rnn->params, t->rec[0]),
                    n, beta, acc, ldacc);
        return;
    }
    const int64_t bh = batch * n;
    const bool share = bh * rnn->gates >= TEAM_MIN_FLOATS && attn__blas_threads() > 1;
    float *x = scratch, *rotated = scratch + bh;
    const transpose_task tr = {batch, n, ldh, h, x};
    attn__team_run(team, transpose, &tr, (n + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE, 1, share);
    int64_t pass = 0;
    float merged[MAX_GATES][MERGED_MAX * MERGED_MAX];
    for (int64_t f = 0, end; f < nf; f = end, pass++) {
        const int64_t p = merged_group(o, f, &end), rows = bh / p;
        const int64_t block = !share ? rows : SERIAL_GEMM_MNK / (p * p) > 0 ? SERIAL_GEMM_MNK / (p * p) : 1;
        mode_task task = {.p = p, .rows = rows, .block = block, .blocks = (rows + block - 1) / block, .x = x,
                          .rotated = rotated, .pass = pass};
        for (int64_t g = 0; g < rnn->gates; g++)
            task.factor[g] = mode_factor(rnn, t, g, f, end, p, merged[g]);
        attn__team_run(team, mode_blocks, &task, rnn->gates * task.blocks, 1, share);
    }
    /* Each gate's W_g h is now B x H rows in its last buffer. */
    const gather_task gather = {n, rnn->gates, ldacc, beta, rotated + (pass - 1) % 2 * bh, 2 * bh, acc};
    attn__team_run(team, gather_gates, &gather, batch, 4, share);
}

static void kron_matrix(const attn_rnn *rnn, const rnn_tensors *t, float *out)
{
    const attn_rnn_options *o = &rnn->opt;
    const int64_t h = o->hidden_size;
    for (int64_t g = 0; g < rnn->gates; g++) {
        float *w = out + g * h * h;
        w[0] = 1.0f;
        int64_t n = 1;
        for (int64_t f = 0; f < o->num_factors; f++) {
            const int64_t p = attn__rnn_factor(o, f);
            kron_grow(w, h, n, attn__params_cdata(rnn->params, t->rec[f]) + g * p * p, p);
            n *= p;
        }
    }
}

const rnn_recurrence attn__rnn_kronecker = {kron_validate, kron_declare, kron_max_batch, kron_macs,
                                            kron_scratch,  kron_apply,   kron_matrix};
