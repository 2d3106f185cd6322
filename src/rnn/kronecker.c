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
 * and one pass adding each gate's result into the step's gate rows. F = 1 is the dense product. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rnn/rnn_internal.h"

enum { TRANSPOSE_TILE = 32 };

static attn_status kron_validate(const char *fn, const attn_rnn_options *o)
{
    const int64_t nf = o->num_factors;
    if (nf < 1 || nf > ATTN_RNN_MAX_FACTORS)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: num_factors must be in 1..%d for KRONECKER (got %lld)", fn,
                          ATTN_RNN_MAX_FACTORS, (long long)nf);
    for (int64_t f = 0; f < ATTN_RNN_MAX_FACTORS; f++) {
        const int64_t p = o->factor_sizes[f];
        if (f < nf && p < 1)
            return attn__fail(ATTN_E_INVALID_ARG, "%s: factor_sizes[%lld] must be >= 1 for KRONECKER (got %lld)", fn,
                              (long long)f, (long long)p);
        if (f >= nf && p != 0)
            return attn__fail(ATTN_E_INVALID_ARG,
                              "%s: factor_sizes[%lld] must be 0 beyond num_factors %lld (got %lld)", fn, (long long)f,
                              (long long)nf, (long long)p);
    }
    char sizes[8 * 24] = "";
    int64_t product = 1;
    bool overflow = false;
    for (int64_t f = 0; f < nf; f++) {
        const size_t used = strlen(sizes);
        snprintf(sizes + used, sizeof sizes - used, "%s%lld", f ? " x " : "", (long long)o->factor_sizes[f]);
        overflow = overflow || !attn__mul(product, o->factor_sizes[f], &product);
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
        const int64_t p = o->factor_sizes[f], shape[] = {rnn->gates, p, p};
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
    int64_t sum = 0;
    for (int64_t f = 0; f < rnn->opt.num_factors; f++)
        sum += rnn->opt.factor_sizes[f];
    return rnn->gates * rnn->opt.hidden_size * sum;
}

/* F >= 2: the transposed states X and two ping-pong buffers for the rotated products, H floats
 * each per batch row. F = 1 needs none. */
static int64_t kron_scratch(const attn_rnn *rnn) { return rnn->opt.num_factors == 1 ? 0 : 3 * rnn->opt.hidden_size; }

/* x (n x batch) = h^T, h rows at stride ldh; in tiles so that both sides stay in cache. */
static void transpose(int64_t batch, int64_t n, const float *h, int64_t ldh, float *x)
{
    for (int64_t b0 = 0; b0 < batch; b0 += TRANSPOSE_TILE)
        for (int64_t j0 = 0; j0 < n; j0 += TRANSPOSE_TILE) {
            const int64_t b1 = b0 + TRANSPOSE_TILE < batch ? b0 + TRANSPOSE_TILE : batch;
            const int64_t j1 = j0 + TRANSPOSE_TILE < n ? j0 + TRANSPOSE_TILE : n;
            for (int64_t b = b0; b < b1; b++)
                for (int64_t j = j0; j < j1; j++)
                    x[j * batch + b] = h[b * ldh + j];
        }
}

static void kron_apply(const attn_rnn *rnn, const rnn_tensors *t, int64_t batch, const float *h, int64_t ldh,
                       float beta, float *acc, int64_t ldacc, float *scratch)
{
    const attn_rnn_options *o = &rnn->opt;
    const int64_t n = o->hidden_size, nf = o->num_factors;
    if (nf == 1) { /* (G, H, H) is laid out like weight_hh: the dense product */
        attn__sgemm(false, true, batch, rnn->gates * n, n, 1.0f, h, ldh, attn__params_cdata(rnn->params, t->rec[0]),
                    n, beta, acc, ldacc);
        return;
    }
    const int64_t bh = batch * n;
    float *x = scratch, *rotated[2] = {scratch + bh, scratch + 2 * bh};
    transpose(batch, n, h, ldh, x);
    for (int64_t g = 0; g < rnn->gates; g++) {
        const float *src = x;
        for (int64_t f = 0; f < nf; f++) {
            const int64_t p = o->factor_sizes[f], rows = bh / p;
            const float *k = attn__params_cdata(rnn->params, t->rec[f]) + g * p * p;
            attn__sgemm(true, true, rows, p, p, 1.0f, src, rows, k, p, 0.0f, rotated[f % 2], p);
            src = rotated[f % 2];
        }
        /* src is now W_g h as B x H rows; beta is 0 (GRU's separate product) or 1 (accumulate). */
        for (int64_t b = 0; b < batch; b++) {
            float *out = acc + b * ldacc + g * n;
            if (beta == 0.0f)
                memcpy(out, src + b * n, (size_t)n * sizeof *out);
            else
                attn__add(out, src + b * n, n);
        }
    }
}

/* W_g = (((1) (x) K_{g,0}) (x) K_{g,1}) ...: gate g's H x H block of `out` grows in place, factor by
 * factor, from its top-left corner. The new n*p x n*p product C (x) K puts C[i, j] K at rows i*p ..,
 * columns j*p ..; walking (i, j) downwards, those cells never hold an entry of C not yet read. */
static void kron_matrix(const attn_rnn *rnn, const rnn_tensors *t, float *out)
{
    const attn_rnn_options *o = &rnn->opt;
    const int64_t h = o->hidden_size;
    for (int64_t g = 0; g < rnn->gates; g++) {
        float *w = out + g * h * h; /* leading dimension h */
        w[0] = 1.0f;
        int64_t n = 1;
        for (int64_t f = 0; f < o->num_factors; f++) {
            const int64_t p = o->factor_sizes[f];
            const float *k = attn__params_cdata(rnn->params, t->rec[f]) + g * p * p;
            for (int64_t i = n - 1; i >= 0; i--)
                for (int64_t j = n - 1; j >= 0; j--) {
                    const float c = w[i * h + j];
                    for (int64_t a = 0; a < p; a++)
                        for (int64_t b = 0; b < p; b++)
                            w[(i * p + a) * h + j * p + b] = c * k[a * p + b];
                }
            n *= p;
        }
    }
}

const rnn_recurrence attn__rnn_kronecker = {kron_validate, kron_declare, kron_max_batch, kron_macs,
                                            kron_scratch,  kron_apply,   kron_matrix};
