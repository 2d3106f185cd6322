/* The analysis family: singular values, the rank report and the Eckart-Young optimum
 * (include/attn/analysis.h, docs/analysis.md). The SVD itself is src/core/lapack.c's; this file
 * validates, owns the scratch of one call and turns a spectrum into the numbers of the report. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "attn/analysis.h"
#include "core/core.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The checks every function shares, in the order the header documents. First the pointers and
 * sizes; `out_name` names the caller's output. */
static attn_status check_sizes(const char *fn, const float *a, int64_t rows, int64_t cols, const void *out,
                               const char *out_name)
{
    if (!a)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: a is NULL", fn);
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, out_name);
    if (rows < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: rows must be > 0 (got %lld)", fn, (long long)rows);
    if (cols < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: cols must be > 0 (got %lld)", fn, (long long)cols);
    int64_t elems;
    if (!attn__mul(rows, cols, &elems))
        return attn__fail(ATTN_E_SHAPE, "%s: rows %lld x cols %lld overflows a 64-bit element count", fn,
                          (long long)rows, (long long)cols);
    if (!attn__svd_values_supported(rows, cols))
        return attn__fail(ATTN_E_SHAPE,
                          "%s: rows %lld x cols %lld is beyond the 32-bit index range of LAPACK "
                          "(rows * cols and dgesdd's work, 3 min + max(rows, cols, 7 min), must be at most %d)",
                          fn, (long long)rows, (long long)cols, INT32_MAX);
    return ATTN_OK;
}

/* Then, on valid sizes (rows * cols <= INT32_MAX, so no byte count below overflows), the output
 * (out_bytes) must not overlap a, and every entry of a must be finite: one read of a before any
 * allocation, so a NaN costs no memory and no SVD. */
static attn_status check_data(const char *fn, const float *a, int64_t rows, int64_t cols, const void *out,
                              const char *out_name, size_t out_bytes)
{
    const int64_t elems = rows * cols;
    const attn_buffer input = {"a", a, (size_t)elems * sizeof *a}, output = {out_name, out, out_bytes};
    const attn_status s = attn__check_aliasing(fn, &input, 1, &output, 1);
    if (s != ATTN_OK)
        return s;
    for (int64_t i = 0; i < elems; i++)
        if (!isfinite(a[i]))
            return attn__fail(ATTN_E_NUMERICAL, "%s: a has a non-finite entry (%g) at row %lld, col %lld", fn,
                              (double)a[i], (long long)(i / cols), (long long)(i % cols));
    return ATTN_OK;
}

/* sigma [min(rows, cols)] = the spectrum of a valid matrix, through scratch allocated here. */
static attn_status spectrum(const char *fn, const float *a, int64_t rows, int64_t cols, double *sigma)
{
    attn_ws_plan plan = {0};
    const size_t at = attn__svd_values_plan(&plan, rows, cols);
    /* attn__svd_values_supported bounds every block, so the plan cannot overflow; checked anyway
     * so that a change there cannot turn into a short allocation. */
    if (plan.overflow)
        return attn__fail(ATTN_E_INTERNAL, "%s: the scratch size of a %lld x %lld SVD overflows", fn,
                          (long long)rows, (long long)cols);
    char *scratch = attn__alloc(plan.bytes);
    if (!scratch)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %zu bytes of scratch for the SVD of a %lld x %lld matrix",
                          fn, plan.bytes, (long long)rows, (long long)cols);
    const attn_status s = attn__svd_values(fn, rows, cols, a, sigma, scratch + at);
    attn__free(scratch);
    return s;
}

/* sum_{i >= from} sigma_i^2, summed from the smallest term up (the large terms come last, so the
 * small ones are not lost against them). The one sum behind frobenius and every low-rank error,
 * so that attn_lowrank_error(a, 0) equals the report's frobenius bit for bit. */
static double tail_energy(const double *sigma, int64_t n, int64_t from)
{
    double sum = 0.0;
    for (int64_t i = n - 1; i >= from; i--)
        sum += sigma[i] * sigma[i];
    return sum;
}

/* Smallest k with sum_{i<k} sigma_i / total >= p, the sums taken from sigma_1 on as in `total`
 * (so the ratio reaches exactly 1 at k = n and the loop always ends there at the latest). */
static int64_t rank_at(const double *sigma, int64_t n, double total, double p)
{
    double cum = 0.0;
    for (int64_t k = 0; k < n; k++) {
        cum += sigma[k];
        if (cum / total >= p)
            return k + 1;
    }
    return n;
}

static void report_of(const double *sigma, int64_t rows, int64_t cols, attn_rank_report *r)
{
    const int64_t n = min64(rows, cols), longest = rows > cols ? rows : cols;
    const double energy = tail_energy(sigma, n, 0);
    *r = (attn_rank_report){.sigma_max = sigma[0], .frobenius = sqrt(energy)};
    /* The zero matrix: every ratio below is 0/0; its ranks are all 0 (documented in the header). */
    if (!(sigma[0] > 0.0))
        return;
    /* energy >= sigma_1^2 holds in floating point too (a sum of nonnegative terms that includes
     * it), so stable_rank >= 1 exactly. */
    r->stable_rank = energy / (sigma[0] * sigma[0]);
    double total = 0.0;
    for (int64_t i = 0; i < n; i++)
        total += sigma[i];
    double entropy = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double p = sigma[i] / total;
        if (p > 0.0) /* 0 log 0 = 0 */
            entropy -= p * log(p);
    }
    r->effective_rank = exp(entropy);
    const double cutoff = sigma[0] * (double)longest * DBL_EPSILON;
    while (r->numerical_rank < n && sigma[r->numerical_rank] > cutoff)
        r->numerical_rank++;
    r->rank_90 = rank_at(sigma, n, total, 0.90);
    r->rank_99 = rank_at(sigma, n, total, 0.99);
}

attn_status attn_singular_values(const float *a, int64_t rows, int64_t cols, double *sigma)
{
    static const char fn[] = "attn_singular_values";
    attn_status s = check_sizes(fn, a, rows, cols, sigma, "sigma");
    if (s == ATTN_OK)
        s = check_data(fn, a, rows, cols, sigma, "sigma", (size_t)min64(rows, cols) * sizeof *sigma);
    if (s != ATTN_OK)
        return s;
    /* Into scratch first, so that a failed SVD leaves sigma unchanged: attn__svd_values writes its
     * output only on success. */
    return spectrum(fn, a, rows, cols, sigma);
}

/* The spectrum into memory of its own (the report and the low-rank error need it only inside). */
static attn_status own_spectrum(const char *fn, const float *a, int64_t rows, int64_t cols, double **sigma)
{
    const int64_t n = min64(rows, cols);
    *sigma = attn__alloc((size_t)n * sizeof **sigma);
    if (!*sigma)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %lld singular values", fn, (long long)n);
    const attn_status s = spectrum(fn, a, rows, cols, *sigma);
    if (s != ATTN_OK) {
        attn__free(*sigma);
        *sigma = NULL;
    }
    return s;
}

attn_status attn_rank_analyze(const float *a, int64_t rows, int64_t cols, attn_rank_report *out)
{
    static const char fn[] = "attn_rank_analyze";
    attn_status s = check_sizes(fn, a, rows, cols, out, "out");
    if (s == ATTN_OK)
        s = check_data(fn, a, rows, cols, out, "out", sizeof *out);
    if (s != ATTN_OK)
        return s;
    double *sigma;
    if ((s = own_spectrum(fn, a, rows, cols, &sigma)) != ATTN_OK)
        return s;
    report_of(sigma, rows, cols, out);
    attn__free(sigma);
    return ATTN_OK;
}

attn_status attn_lowrank_error(const float *a, int64_t rows, int64_t cols, int64_t rank, double *frobenius_error)
{
    static const char fn[] = "attn_lowrank_error";
    attn_status s = check_sizes(fn, a, rows, cols, frobenius_error, "frobenius_error");
    if (s == ATTN_OK && rank < 0)
        s = attn__fail(ATTN_E_INVALID_ARG, "%s: rank must be >= 0 (got %lld)", fn, (long long)rank);
    if (s == ATTN_OK)
        s = check_data(fn, a, rows, cols, frobenius_error, "frobenius_error", sizeof *frobenius_error);
    if (s != ATTN_OK)
        return s;
    const int64_t n = min64(rows, cols);
    /* A matrix has rank <= n: it is its own best approximation, no SVD needed. */
    if (rank >= n) {
        *frobenius_error = 0.0;
        return ATTN_OK;
    }
    double *sigma;
    if ((s = own_spectrum(fn, a, rows, cols, &sigma)) != ATTN_OK)
        return s;
    *frobenius_error = sqrt(tail_energy(sigma, n, rank));
    attn__free(sigma);
    return ATTN_OK;
}

attn_status attn_lowrank_factors(const float *a, int64_t rows, int64_t cols, int64_t rank, float *u, float *v)
{
    static const char fn[] = "attn_lowrank_factors";
    attn_status s = check_sizes(fn, a, rows, cols, u, "u");
    if (s == ATTN_OK && !v)
        s = attn__fail(ATTN_E_INVALID_ARG, "%s: v is NULL", fn);
    if (s == ATTN_OK && (rank < 1 || rank > min64(rows, cols)))
        s = attn__fail(ATTN_E_INVALID_ARG, "%s: rank must be in 1..min(rows, cols) = %lld (got %lld)", fn,
                       (long long)min64(rows, cols), (long long)rank);
    /* the SVD with vectors needs more of LAPACK's 32-bit work than the values alone */
    if (s == ATTN_OK && !attn__pinv_supported(rows, cols))
        s = attn__fail(ATTN_E_SHAPE, "%s: rows %lld x cols %lld is beyond the 32-bit index range of LAPACK's SVD "
                       "with singular vectors", fn, (long long)rows, (long long)cols);
    if (s != ATTN_OK)
        return s;
    const attn_buffer input = {"a", a, (size_t)(rows * cols) * sizeof *a};
    const attn_buffer outputs[2] = {{"u", u, (size_t)(rows * rank) * sizeof *u}, {"v", v, (size_t)(rank * cols) * sizeof *v}};
    if ((s = attn__check_aliasing(fn, &input, 1, outputs, 2)) != ATTN_OK)
        return s;
    attn_ws_plan plan = {0};
    const size_t at = attn__pinv_plan(&plan, rows, cols);
    if (plan.overflow)
        return attn__fail(ATTN_E_INTERNAL, "%s: the scratch size of a %lld x %lld SVD overflows", fn, (long long)rows,
                          (long long)cols);
    char *scratch = attn__alloc(plan.bytes);
    if (!scratch)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %zu bytes of scratch for the SVD of a %lld x %lld matrix",
                          fn, plan.bytes, (long long)rows, (long long)cols);
    /* a NaN or Inf is found by the copy into the scratch, before LAPACK runs */
    s = attn__svd_factors(fn, rows, cols, a, rank, u, v, scratch + at);
    attn__free(scratch);
    return s;
}
