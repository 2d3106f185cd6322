/*
 * test_analysis.c: rank analysis (include/attn/analysis.h, docs/analysis.md).
 *
 * Ground truth from places the library does not share:
 *  - matrices whose spectrum is known by construction: diagonal ones (exact), Q1 diag(s) Q2^T with
 *    orthogonal Q1, Q2 built here from Householder reflections in double, exact integer products
 *    of rank k, the identity, equal rows, the zero matrix, vectors;
 *  - the report's definitions written out again here (ref_report) and applied both to the known
 *    spectrum and to the library's own singular values;
 *  - the Eckart-Young theorem: the truncated SVD computed here (LAPACKE dgesdd with vectors, test
 *    side) reaches attn_lowrank_error, and Linformer (k = r) and Nystrom (m = r) attention matrices
 *    from attn_mha_attention_matrix never come closer to the FULL matrix than it.
 * Plus every error path (status, the message of attn_last_error() naming the argument, outputs
 * untouched), out-of-memory through an address-space limit, and two threads at once.
 *
 * Tolerances. A known spectrum s is that of the double matrix A; the library sees A rounded to
 * float32, A + E. Weyl's inequality bounds the change of every singular value by ||E||_2 <=
 * ||E||_F, which each test computes exactly from the two matrices, so the check is
 *     |sigma_i - s_i| <= ||E||_F + SVD_TOL * s_1,
 * SVD_TOL = 1e-13 covering dgesdd's own backward error (a few n eps) in double. Statistics
 * derived from the library's singular values must match ref_report on the same values to
 * STAT_TOL = 1e-12 relative (only the order of summation differs); against the known spectrum
 * they move with E, so there a relative 1e-5 (||E|| / s_min is at most ~1e-6 for the spectra used).
 * Integer ranks are compared exactly where the cumulative ratio is farther than MARGIN from p.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <float.h>
#include <lapacke.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>

#include "attn/analysis.h"

#define SVD_TOL 1e-13
#define STAT_TOL 1e-12
#define KNOWN_TOL 1e-5
#define MARGIN 1e-6

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ================================================================================================
 * Reference definitions (SPEC section 5), written independently of src/analysis/analysis.c
 * ============================================================================================= */

typedef struct ref_stats {
    attn_rank_report r;
    double margin_90, margin_99; /* min over k of |cumulative ratio_k - p| */
} ref_stats;

static int64_t ref_rank_p(const double *s, int64_t n, double total, double p, double *margin)
{
    int64_t k = n;
    double cum = 0.0;
    *margin = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        cum += s[i];
        const double ratio = cum / total;
        *margin = fmin(*margin, fabs(ratio - p));
        if (ratio >= p && k == n)
            k = i + 1;
    }
    return k;
}

/* The definitions on a spectrum s [n] (decreasing) of a rows x cols matrix. */
static ref_stats ref_report(const double *s, int64_t n, int64_t rows, int64_t cols)
{
    ref_stats st = {{0}, INFINITY, INFINITY};
    double energy = 0.0, total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        energy += s[i] * s[i];
        total += s[i];
    }
    st.r.sigma_max = s[0];
    st.r.frobenius = sqrt(energy);
    if (s[0] == 0.0)
        return st; /* the zero matrix: documented as all zeros */
    st.r.stable_rank = energy / (s[0] * s[0]);
    double h = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (s[i] > 0.0)
            h -= s[i] / total * log(s[i] / total);
    st.r.effective_rank = exp(h);
    for (int64_t i = 0; i < n; i++)
        st.r.numerical_rank += s[i] > s[0] * (double)max64(rows, cols) * DBL_EPSILON;
    st.r.rank_90 = ref_rank_p(s, n, total, 0.90, &st.margin_90);
    st.r.rank_99 = ref_rank_p(s, n, total, 0.99, &st.margin_99);
    return st;
}

static void check_rel(const char *ctx, const char *what, double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fmax(fabs(want), DBL_MIN)) && !(got == want))
        fail_msg("%s: %s = %.17g, want %.17g (relative tolerance %g)", ctx, what, got, want, tol);
}

/* The report against the reference: doubles to `tol` relative; numerical_rank exactly when
 * `exact_numerical`; rank_p exactly where the reference's margin exceeds MARGIN. */
static void check_report(const char *ctx, const attn_rank_report *got, const ref_stats *want, double tol,
                         bool exact_numerical)
{
    check_rel(ctx, "sigma_max", got->sigma_max, want->r.sigma_max, tol);
    check_rel(ctx, "frobenius", got->frobenius, want->r.frobenius, tol);
    check_rel(ctx, "stable_rank", got->stable_rank, want->r.stable_rank, tol);
    check_rel(ctx, "effective_rank", got->effective_rank, want->r.effective_rank, tol);
    if (exact_numerical && got->numerical_rank != want->r.numerical_rank)
        fail_msg("%s: numerical_rank %lld, want %lld", ctx, (long long)got->numerical_rank,
                 (long long)want->r.numerical_rank);
    if (want->margin_90 > MARGIN && got->rank_90 != want->r.rank_90)
        fail_msg("%s: rank_90 %lld, want %lld", ctx, (long long)got->rank_90, (long long)want->r.rank_90);
    if (want->margin_99 > MARGIN && got->rank_99 != want->r.rank_99)
        fail_msg("%s: rank_99 %lld, want %lld", ctx, (long long)got->rank_99, (long long)want->r.rank_99);
}

/* ================================================================================================
 * Matrices with a known spectrum
 * ============================================================================================= */

/* An n x n orthogonal matrix (row-major): the product of n Householder reflections
 * I - 2 v v^T / v^T v with random v, applied to the identity, in double. */
static double *orthogonal(int64_t n, uint64_t seed)
{
    double *q = new_doubles(n * n), *v = new_doubles(n);
    for (int64_t i = 0; i < n * n; i++)
        q[i] = i / n == i % n;
    for (int64_t r = 0; r < n; r++) {
        double vv = 0.0;
        for (int64_t i = 0; i < n; i++) {
            v[i] = rng_uniform(&seed);
            vv += v[i] * v[i];
        }
        /* q = (I - 2 v v^T / vv) q: each column c of q loses 2 v (v . q_c) / vv. */
        for (int64_t c = 0; c < n; c++) {
            double dot = 0.0;
            for (int64_t i = 0; i < n; i++)
                dot += v[i] * q[i * n + c];
            for (int64_t i = 0; i < n; i++)
                q[i * n + c] -= 2.0 * dot / vv * v[i];
        }
    }
    free(v);
    return q;
}

/* A [rows, cols] = Q1[:, :n] diag(s) Q2[:, :n]^T in double (*exact) and rounded to float32
 * (returned); *round_err = ||float32(A) - A||_F, Weyl's bound on how far the float32 matrix's
 * singular values lie from s. */
static float *known_matrix(int64_t rows, int64_t cols, const double *s, uint64_t seed, double **exact,
                           double *round_err)
{
    const int64_t n = min64(rows, cols);
    double *q1 = orthogonal(rows, seed), *q2 = orthogonal(cols, seed + 1), *a = new_doubles(rows * cols);
    float *f = xmalloc((size_t)(rows * cols) * sizeof *f);
    double err = 0.0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double sum = 0.0;
            for (int64_t k = 0; k < n; k++)
                sum += q1[i * rows + k] * s[k] * q2[j * cols + k];
            a[i * cols + j] = sum;
            f[i * cols + j] = (float)sum;
            err += ((double)f[i * cols + j] - sum) * ((double)f[i * cols + j] - sum);
        }
    free(q1), free(q2);
    *round_err = sqrt(err);
    if (exact)
        *exact = a;
    else
        free(a);
    return f;
}

/* Fails unless |sigma_i - want_i| <= slack + SVD_TOL * want_0 for all i, and sigma decreases. */
static void check_sigma(const char *ctx, const double *sigma, const double *want, int64_t n, double slack)
{
    for (int64_t i = 0; i < n; i++) {
        if (!(fabs(sigma[i] - want[i]) <= slack + SVD_TOL * want[0]))
            fail_msg("%s: sigma[%lld] = %.17g, want %.17g (tolerance %.3g)", ctx, (long long)i, sigma[i], want[i],
                     slack + SVD_TOL * want[0]);
        if (i > 0 && sigma[i] > sigma[i - 1])
            fail_msg("%s: sigma[%lld] = %.17g exceeds sigma[%lld] = %.17g", ctx, (long long)i, sigma[i],
                     (long long)(i - 1), sigma[i - 1]);
    }
}

/* Runs all three functions on a and checks them against the spectrum `want` (within `slack` by
 * Weyl): sigma, the report against ref_report of the library's sigma (STAT_TOL) and of `want`
 * (KNOWN_TOL, ranks exactly where the margin allows; numerical_rank exactly when
 * `exact_numerical`), and the low-rank errors for every rank against the tail of `want`. */
static void check_all(const char *ctx, const float *a, int64_t rows, int64_t cols, const double *want, double slack,
                      bool exact_numerical)
{
    const int64_t n = min64(rows, cols);
    double *sigma = new_doubles(n);
    ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
    check_sigma(ctx, sigma, want, n, slack);

    attn_rank_report rep;
    ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
    ref_stats own = ref_report(sigma, n, rows, cols), known = ref_report(want, n, rows, cols);
    char what[300];
    snprintf(what, sizeof what, "%s, report vs its own sigma", ctx);
    check_report(what, &rep, &own, STAT_TOL, true);
    snprintf(what, sizeof what, "%s, report vs the known spectrum", ctx);
    const double known_tol = want[0] > 0.0 ? fmax(KNOWN_TOL, 10.0 * slack / want[0]) : 0.0;
    check_report(what, &rep, &known, known_tol, exact_numerical);

    for (int64_t r = 0; r <= n + 1; r++) {
        double got = -1.0, tail = 0.0;
        ASSERT_OK(attn_lowrank_error(a, rows, cols, r, &got));
        for (int64_t i = r; i < n; i++)
            tail += want[i] * want[i];
        /* sqrt(sum of tail^2) moves by at most ||E||_F as well (the tail is the distance to the
         * rank-r matrices, a 1-Lipschitz function of the matrix). */
        if (!(fabs(got - sqrt(tail)) <= slack + SVD_TOL * want[0] * sqrt((double)n)))
            fail_msg("%s: lowrank_error(rank %lld) = %.17g, want %.17g", ctx, (long long)r, got, sqrt(tail));
        if (r == 0 && got != rep.frobenius)
            fail_msg("%s: lowrank_error(rank 0) = %.17g differs from the report's frobenius %.17g", ctx, got,
                     rep.frobenius);
        if (r >= n && got != 0.0)
            fail_msg("%s: lowrank_error(rank %lld >= min(rows, cols)) = %.17g, want exactly 0", ctx, (long long)r,
                     got);
    }
    free(sigma);
}

/* ================================================================================================
 * Known spectra
 * ============================================================================================= */

/* Diagonal matrices (float32 entries, some negative, a zero, wide and tall): the singular values
 * are the sorted absolute values, exactly. */
static void test_diagonal(void **state)
{
    (void)state;
    static const double d[] = {3.0, -1.0, 0.5, 0.0, 2.25, -7.0, 0.125};
    static const int64_t shapes[][2] = {{7, 7}, {7, 10}, {12, 7}, {3, 5}, {5, 3}};
    for (int si = 0; si < COUNT_OF(shapes); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
        float *a = filled_floats(rows * cols, 0.0f);
        double want[7];
        for (int64_t i = 0; i < n; i++) {
            a[i * cols + i] = (float)d[i];
            want[i] = fabs(d[i]);
        }
        for (int64_t i = 0; i < n; i++) /* insertion sort, decreasing */
            for (int64_t j = i; j > 0 && want[j] > want[j - 1]; j--) {
                const double t = want[j];
                want[j] = want[j - 1];
                want[j - 1] = t;
            }
        char ctx[100];
        snprintf(ctx, sizeof ctx, "diagonal %lld x %lld", (long long)rows, (long long)cols);
        check_all(ctx, a, rows, cols, want, 0.0, true);
        free(a);
    }
}

/* Q1 diag(s) Q2^T for several spectra and shapes (square, tall, wide); the float32 rounding makes
 * the known spectrum exact only to Weyl's bound. */
static void test_known_spectrum(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{30, 30}, {40, 12}, {12, 40}, {64, 33}, {2, 9}};
    enum { GEOMETRIC, LINEAR, STEP, FLAT_TAIL, KINDS };
    static const char *const kind_names[] = {"geometric", "linear", "step", "flat tail"};
    uint64_t seed = 100;
    for (int si = 0; si < COUNT_OF(shapes); si++)
        for (int kind = 0; kind < KINDS; kind++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
            double *s = new_doubles(n);
            for (int64_t i = 0; i < n; i++) {
                switch (kind) {
                case GEOMETRIC: s[i] = 10.0 * pow(0.8, (double)i); break;
                case LINEAR: s[i] = (double)(n - i); break;
                case STEP: s[i] = i < (n + 2) / 3 ? 5.0 : 0.5; break;
                default: s[i] = i < 2 ? 100.0 / (double)(i + 1) : 1.0; break;
                }
            }
            double round_err;
            float *a = known_matrix(rows, cols, s, seed++, NULL, &round_err);
            char ctx[120];
            snprintf(ctx, sizeof ctx, "%s spectrum, %lld x %lld", kind_names[kind], (long long)rows, (long long)cols);
            /* Every s_i is far above the rounding (s_min >= 0.5, ||E|| ~ 1e-6), so numerical_rank
             * is n both ways. */
            check_all(ctx, a, rows, cols, s, round_err, true);
            free(a), free(s);
        }
}

/* A spectrum with exact zeros, rounded to float32: the rounding noise (~1e-7 of sigma_1) is far
 * above the float64 cutoff max(rows, cols) eps sigma_1, so numerical_rank counts it: every
 * singular value is counted (the caveat docs/analysis.md explains). rank_90/99 and the stable and
 * effective ranks barely move. */
static void test_float32_noise_is_rank(void **state)
{
    (void)state;
    const int64_t rows = 24, cols = 16, n = 16;
    double s[16] = {8.0, 4.0, 2.0};
    double round_err;
    float *a = known_matrix(rows, cols, s, 7, NULL, &round_err);
    attn_rank_report rep;
    ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
    if (rep.numerical_rank != n)
        fail_msg("float32 rank-3 matrix: numerical_rank %lld, want %lld (rounding noise above the float64 cutoff)",
                 (long long)rep.numerical_rank, (long long)n);
    const ref_stats known = ref_report(s, n, rows, cols);
    check_report("float32 rank-3 matrix vs its exact spectrum", &rep, &known, fmax(KNOWN_TOL, 10.0 * round_err / s[2]),
                 false);
    double *sigma = new_doubles(n);
    ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
    check_sigma("float32 rank-3 matrix", sigma, s, n, round_err);
    if (!(sigma[3] > (double)max64(rows, cols) * DBL_EPSILON * sigma[0]))
        fail_msg("float32 rank-3 matrix: sigma_4 = %g is not above the float64 cutoff", sigma[3]);
    free(sigma), free(a);
}

/* U V with small integer entries, U = [I_k; random], V = [I_k, random]: exactly of rank k in
 * float32 (every product and sum is an integer below 2^24), so numerical_rank = k, and the rank-k
 * error vanishes to rounding while the rank-(k-1) error does not. */
static void test_rank_k_products(void **state)
{
    (void)state;
    static const int64_t cases[][3] = {{30, 20, 1}, {30, 20, 3}, {20, 30, 7}, {50, 8, 8}, {9, 40, 5}, {33, 33, 32}};
    uint64_t seed = 300;
    for (int c = 0; c < COUNT_OF(cases); c++) {
        const int64_t rows = cases[c][0], cols = cases[c][1], k = cases[c][2], n = min64(rows, cols);
        double *u = new_doubles(rows * k), *v = new_doubles(k * cols);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < k; j++)
                u[i * k + j] = i < k ? (double)(i == j) : (double)((int)(rng_next(&seed) % 7) - 3);
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < cols; j++)
                v[i * cols + j] = j < k ? (double)(i == j) : (double)((int)(rng_next(&seed) % 7) - 3);
        float *a = xmalloc((size_t)(rows * cols) * sizeof *a);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                double sum = 0.0;
                for (int64_t t = 0; t < k; t++)
                    sum += u[i * k + t] * v[t * cols + j];
                a[i * cols + j] = (float)sum;
                assert_true((double)a[i * cols + j] == sum);
            }
        char ctx[100];
        snprintf(ctx, sizeof ctx, "rank-%lld product %lld x %lld", (long long)k, (long long)rows, (long long)cols);
        attn_rank_report rep;
        ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
        if (rep.numerical_rank != k)
            fail_msg("%s: numerical_rank %lld, want %lld", ctx, (long long)rep.numerical_rank, (long long)k);
        double *sigma = new_doubles(n);
        ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
        const ref_stats own = ref_report(sigma, n, rows, cols);
        check_report(ctx, &rep, &own, STAT_TOL, true);
        double err_k, err_k1;
        ASSERT_OK(attn_lowrank_error(a, rows, cols, k, &err_k));
        ASSERT_OK(attn_lowrank_error(a, rows, cols, k - 1, &err_k1));
        if (!(err_k <= 1e-12 * rep.frobenius))
            fail_msg("%s: lowrank_error(rank k) = %g, want ~0 (||A||_F = %g)", ctx, err_k, rep.frobenius);
        if (!(err_k1 >= sigma[k - 1]) || !(sigma[k - 1] > 1e-3 * sigma[0]))
            fail_msg("%s: lowrank_error(rank k - 1) = %g, sigma_k = %g: the rank-k structure is missing", ctx, err_k1,
                     sigma[k - 1]);
        free(u), free(v), free(a), free(sigma);
    }
}

/* The identity: every sigma is 1, so stable = effective = numerical rank = n, rank_p = ceil(p n)
 * (sizes chosen so that p n is not an integer, away from the ratio's rounding), ||I||_F = sqrt(n)
 * and the rank-r error sqrt(n - r). Also a rectangular [I | 0]. */
static void test_identity(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{1, 1}, {7, 7}, {16, 16}, {16, 21}, {23, 7}};
    for (int si = 0; si < COUNT_OF(shapes); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
        float *a = filled_floats(rows * cols, 0.0f);
        for (int64_t i = 0; i < n; i++)
            a[i * cols + i] = 1.0f;
        char ctx[100];
        snprintf(ctx, sizeof ctx, "identity %lld x %lld", (long long)rows, (long long)cols);
        double *ones = new_doubles(n);
        for (int64_t i = 0; i < n; i++)
            ones[i] = 1.0;
        check_all(ctx, a, rows, cols, ones, 0.0, true);
        attn_rank_report rep;
        ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
        const int64_t r90 = (int64_t)ceil(0.9 * (double)n), r99 = (int64_t)ceil(0.99 * (double)n);
        if (rep.numerical_rank != n || rep.rank_90 != r90 || rep.rank_99 != r99)
            fail_msg("%s: numerical_rank %lld, rank_90 %lld, rank_99 %lld; want %lld, %lld, %lld", ctx,
                     (long long)rep.numerical_rank, (long long)rep.rank_90, (long long)rep.rank_99, (long long)n,
                     (long long)r90, (long long)r99);
        check_rel(ctx, "stable_rank", rep.stable_rank, (double)n, STAT_TOL);
        check_rel(ctx, "effective_rank", rep.effective_rank, (double)n, STAT_TOL);
        check_rel(ctx, "frobenius", rep.frobenius, sqrt((double)n), STAT_TOL);
        check_rel(ctx, "sigma_max", rep.sigma_max, 1.0, STAT_TOL);
        free(ones), free(a);
    }
}

/* All rows equal (and the constant matrix): rank 1, sigma_1 = ||row|| sqrt(rows). */
static void test_equal_rows(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{9, 13}, {13, 9}, {40, 3}, {1, 25}, {25, 1}};
    uint64_t seed = 500;
    for (int si = 0; si < COUNT_OF(shapes); si++)
        for (int constant = 0; constant <= 1; constant++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
            float *row = random_floats(cols, seed++, 2.0);
            if (constant)
                for (int64_t j = 0; j < cols; j++)
                    row[j] = -0.75f;
            float *a = xmalloc((size_t)(rows * cols) * sizeof *a);
            double norm2 = 0.0;
            for (int64_t j = 0; j < cols; j++)
                norm2 += (double)row[j] * row[j];
            for (int64_t i = 0; i < rows; i++)
                memcpy(a + i * cols, row, (size_t)cols * sizeof *a);
            double *want = new_doubles(n);
            want[0] = sqrt(norm2 * (double)rows);
            for (int64_t i = 1; i < n; i++)
                want[i] = 0.0;
            char ctx[100];
            snprintf(ctx, sizeof ctx, "%s %lld x %lld", constant ? "constant" : "equal rows", (long long)rows,
                     (long long)cols);
            /* The computed zeros are rounding of the double SVD, far below the cutoff. */
            double *sigma = new_doubles(n);
            ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
            check_sigma(ctx, sigma, want, n, 0.0);
            attn_rank_report rep;
            ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
            if (rep.numerical_rank != 1 || rep.rank_90 != 1 || rep.rank_99 != 1)
                fail_msg("%s: numerical_rank %lld, rank_90 %lld, rank_99 %lld; want 1, 1, 1", ctx,
                         (long long)rep.numerical_rank, (long long)rep.rank_90, (long long)rep.rank_99);
            check_rel(ctx, "stable_rank", rep.stable_rank, 1.0, STAT_TOL);
            check_rel(ctx, "effective_rank", rep.effective_rank, 1.0, 1e-12);
            check_rel(ctx, "sigma_max", rep.sigma_max, want[0], STAT_TOL);
            double err1;
            ASSERT_OK(attn_lowrank_error(a, rows, cols, 1, &err1));
            if (!(err1 <= 1e-13 * want[0]))
                fail_msg("%s: lowrank_error(rank 1) = %g, want ~0", ctx, err1);
            free(row), free(a), free(want), free(sigma);
        }
}

/* The zero matrix (also of -0.0): every field of the report is 0, nothing NaN; sigma all 0, every
 * low-rank error 0. */
static void test_zero_matrix(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{1, 1}, {3, 5}, {6, 2}, {8, 8}};
    for (int si = 0; si < COUNT_OF(shapes); si++)
        for (int negative = 0; negative <= 1; negative++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
            float *a = filled_floats(rows * cols, negative ? -0.0f : 0.0f);
            char ctx[100];
            snprintf(ctx, sizeof ctx, "zero matrix %lld x %lld%s", (long long)rows, (long long)cols,
                     negative ? " (-0.0)" : "");
            double *sigma = new_doubles(n);
            ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
            for (int64_t i = 0; i < n; i++)
                if (sigma[i] != 0.0)
                    fail_msg("%s: sigma[%lld] = %g", ctx, (long long)i, sigma[i]);
            attn_rank_report rep;
            memset(&rep, 0x5A, sizeof rep);
            ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
            const attn_rank_report zero = {0};
            if (memcmp(&rep, &zero, sizeof rep) != 0)
                fail_msg("%s: report {%g, %g, %g, %g, %lld, %lld, %lld}, want all 0", ctx, rep.sigma_max,
                         rep.frobenius, rep.stable_rank, rep.effective_rank, (long long)rep.numerical_rank,
                         (long long)rep.rank_90, (long long)rep.rank_99);
            for (int64_t r = 0; r <= n; r++) {
                double e = -1.0;
                ASSERT_OK(attn_lowrank_error(a, rows, cols, r, &e));
                if (e != 0.0)
                    fail_msg("%s: lowrank_error(rank %lld) = %g", ctx, (long long)r, e);
            }
            free(a), free(sigma);
        }
}

/* 1 x 1, and vectors (1 x n, n x 1, long enough to leave the small-matrix paths): sigma = ||a||. */
static void test_vectors(void **state)
{
    (void)state;
    const float one = -2.5f;
    check_all("1 x 1", &one, 1, 1, (double[]){2.5}, 0.0, true);
    attn_rank_report rep;
    ASSERT_OK(attn_rank_analyze(&one, 1, 1, &rep));
    if (rep.sigma_max != 2.5 || rep.frobenius != 2.5 || rep.stable_rank != 1.0 || rep.effective_rank != 1.0 ||
        rep.numerical_rank != 1 || rep.rank_90 != 1 || rep.rank_99 != 1)
        fail_msg("1 x 1: report {%g, %g, %g, %g, %lld, %lld, %lld}, want {2.5, 2.5, 1, 1, 1, 1, 1}", rep.sigma_max,
                 rep.frobenius, rep.stable_rank, rep.effective_rank, (long long)rep.numerical_rank,
                 (long long)rep.rank_90, (long long)rep.rank_99);
    static const int64_t lengths[] = {2, 17, 100000};
    for (int li = 0; li < COUNT_OF(lengths); li++) {
        const int64_t len = lengths[li];
        float *a = random_floats(len, 600 + (uint64_t)li, 1.0);
        double norm2 = 0.0;
        for (int64_t i = 0; i < len; i++)
            norm2 += (double)a[i] * a[i];
        const double want = sqrt(norm2);
        for (int wide = 0; wide <= 1; wide++) {
            char ctx[100];
            snprintf(ctx, sizeof ctx, "vector %lld x %lld", (long long)(wide ? 1 : len), (long long)(wide ? len : 1));
            check_all(ctx, a, wide ? 1 : len, wide ? len : 1, &want, 1e-15 * want * sqrt((double)len), true);
        }
        free(a);
    }
}

/* ================================================================================================
 * Against LAPACK test-side, and Eckart-Young
 * ============================================================================================= */

/* The truncated SVD, computed here with singular vectors (LAPACKE dgesdd 'S' on the widened float32
 * data, row-major), reaches attn_lowrank_error: ||A - U_r S_r V_r^T||_F formed explicitly agrees
 * to 1e-10 relative (plus 1e-13 ||A||_F for the rounding of the explicit difference); and
 * attn_singular_values agrees with dgesdd's values. Random matrices of every shape class and a
 * known spectrum with a slow tail. */
static void test_eckart_young(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{25, 17}, {17, 25}, {32, 32}, {60, 6}, {1, 9}};
    for (int si = 0; si < COUNT_OF(shapes) + 1; si++) {
        const bool known = si == COUNT_OF(shapes);
        const int64_t rows = known ? 20 : shapes[si][0], cols = known ? 28 : shapes[si][1], n = min64(rows, cols);
        float *a;
        if (known) {
            double s[20], round_err;
            for (int i = 0; i < 20; i++)
                s[i] = 1.0 / (1.0 + i);
            a = known_matrix(rows, cols, s, 42, NULL, &round_err);
        } else {
            a = random_floats(rows * cols, 700 + (uint64_t)si, 1.0);
        }
        double *d = to_f64(a, rows * cols), *work = to_f64(a, rows * cols);
        double *s = new_doubles(n), *u = new_doubles(rows * n), *vt = new_doubles(n * cols);
        assert_int_equal(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)rows, (lapack_int)cols, work,
                                        (lapack_int)cols, s, u, (lapack_int)n, vt, (lapack_int)cols),
                         0);
        char ctx[120];
        snprintf(ctx, sizeof ctx, "%s %lld x %lld", known ? "known 1/(1+i) spectrum" : "random", (long long)rows,
                 (long long)cols);
        double *sigma = new_doubles(n);
        ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
        check_sigma(ctx, sigma, s, n, 0.0);

        double frob = 0.0, previous = INFINITY;
        for (int64_t i = 0; i < rows * cols; i++)
            frob += d[i] * d[i];
        frob = sqrt(frob);
        for (int64_t r = 0; r <= n; r++) {
            /* ||A - sum_{t<r} s_t u_t v_t^T||_F, formed entry by entry. */
            double direct = 0.0;
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                    double ar = 0.0;
                    for (int64_t t = 0; t < r; t++)
                        ar += u[i * n + t] * s[t] * vt[t * cols + j];
                    direct += (d[i * cols + j] - ar) * (d[i * cols + j] - ar);
                }
            direct = sqrt(direct);
            double got = -1.0;
            ASSERT_OK(attn_lowrank_error(a, rows, cols, r, &got));
            if (!(fabs(got - direct) <= 1e-10 * direct + 1e-13 * frob))
                fail_msg("%s: lowrank_error(rank %lld) = %.17g, truncated SVD reaches %.17g", ctx, (long long)r, got,
                         direct);
            if (got > previous)
                fail_msg("%s: lowrank_error grows from %.17g to %.17g at rank %lld", ctx, previous, got, (long long)r);
            previous = got;
            if (r == 0)
                check_rel(ctx, "lowrank_error(rank 0) vs ||A||_F", got, frob, 1e-13);
        }
        free(a), free(d), free(work), free(s), free(u), free(vt), free(sigma);
    }
}

/* attn_lowrank_factors: u v is the truncated SVD. Its distance to a is attn_lowrank_error (up to the
 * rounding of u and v to float), v has orthonormal rows, u orthogonal columns of norms sigma_k; at
 * full rank u v = a. And the use it is made for: a dense LSTM and a LOW_RANK one carrying the
 * factors of its W_hh at rank H run alike. */
static void test_lowrank_factors(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{25, 17}, {17, 25}, {60, 6}, {1, 9}, {9, 1}};
    for (int si = 0; si < COUNT_OF(shapes); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1], n = min64(rows, cols);
        float *a = random_floats(rows * cols, 1100 + (uint64_t)si, 1.0);
        double *sigma = new_doubles(n), frob = 0.0;
        ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
        for (int64_t i = 0; i < rows * cols; i++)
            frob += (double)a[i] * a[i];
        frob = sqrt(frob);
        for (int64_t r = 1; r <= n; r++) {
            float *u = (float *)new_doubles(rows * r), *v = (float *)new_doubles(r * cols);
            ASSERT_OK(attn_lowrank_factors(a, rows, cols, r, u, v));
            char ctx[96];
            snprintf(ctx, sizeof ctx, "%lld x %lld at rank %lld", (long long)rows, (long long)cols, (long long)r);
            double dist = 0.0, best;
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                    double p = 0.0;
                    for (int64_t k = 0; k < r; k++)
                        p += (double)u[i * r + k] * v[k * cols + j];
                    dist += (a[i * cols + j] - p) * (a[i * cols + j] - p);
                }
            dist = sqrt(dist);
            ASSERT_OK(attn_lowrank_error(a, rows, cols, r, &best));
            if (!(fabs(dist - best) <= 1e-6 * frob))
                fail_msg("%s: ||a - u v||_F = %.9g, the optimum %.9g", ctx, dist, best);
            for (int64_t k = 0; k < r; k++)
                for (int64_t l = 0; l < r; l++) {
                    double vv = 0.0, uu = 0.0;
                    for (int64_t j = 0; j < cols; j++)
                        vv += (double)v[k * cols + j] * v[l * cols + j];
                    for (int64_t i = 0; i < rows; i++)
                        uu += (double)u[i * r + k] * u[i * r + l];
                    const double want_uu = k == l ? sigma[k] * sigma[k] : 0.0;
                    if (fabs(vv - (k == l)) > 1e-6 || fabs(uu - want_uu) > 1e-6 * sigma[0] * sigma[0])
                        fail_msg("%s: (v v^T)[%lld][%lld] = %.9g, (u^T u) = %.9g (want %.9g)", ctx, (long long)k,
                                 (long long)l, vv, uu, want_uu);
                }
            free(u), free(v);
        }
        free(a), free(sigma);
    }

    enum { NB = 3, NT = 7, NI = 5, NH = 12 };
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o));
    o.input_size = NI;
    o.hidden_size = NH;
    attn_rnn *dense, *low;
    ASSERT_OK(attn_rnn_create(&dense, &o));
    o.recurrence = ATTN_RECURRENCE_LOW_RANK;
    o.rank = NH;
    ASSERT_OK(attn_rnn_create(&low, &o));
    attn_params *pd = attn_rnn_params(dense), *pl = attn_rnn_params(low);
    ASSERT_OK(attn_params_init(pd, 5));
    float w[4 * NH * NH], u[4 * NH * NH], v[NH * NH], buf[4 * NH * NI];
    static const char *const shared[] = {"weight_ih_l0", "bias_ih_l0", "bias_hh_l0"};
    for (int k = 0; k < COUNT_OF(shared); k++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(pd, shared[k], &info));
        ASSERT_OK(attn_params_get(pd, shared[k], buf, info.count));
        ASSERT_OK(attn_params_set(pl, shared[k], buf, info.count));
    }
    ASSERT_OK(attn_params_get(pd, "weight_hh_l0", w, 4 * NH * NH));
    ASSERT_OK(attn_lowrank_factors(w, 4 * NH, NH, NH, u, v));
    ASSERT_OK(attn_params_set(pl, "weight_hh_l0_u", u, 4 * NH * NH));
    ASSERT_OK(attn_params_set(pl, "weight_hh_l0_v", v, NH * NH));
    float *x = random_floats(NB * NT * NI, 1200, 1.0), y_dense[NB * NT * NH], y_low[NB * NT * NH];
    ASSERT_OK(attn_rnn_forward(dense, NULL, NB, NT, x, NULL, NULL, y_dense, NULL, NULL));
    ASSERT_OK(attn_rnn_forward(low, NULL, NB, NT, x, NULL, NULL, y_low, NULL, NULL));
    for (int i = 0; i < NB * NT * NH; i++)
        if (fabsf(y_dense[i] - y_low[i]) > 1e-5f * fmaxf(1.0f, fabsf(y_dense[i])))
            fail_msg("LSTM output %d: dense %.9g, LOW_RANK at rank H with attn_lowrank_factors %.9g", i,
                     (double)y_dense[i], (double)y_low[i]);
    free(x);
    attn_rnn_destroy(dense);
    attn_rnn_destroy(low);

    /* errors: pointers, rank outside 1..min(rows, cols), NaN, outputs overlapping a or each other */
    float a[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, fu[12], fv[12];
    EXPECT_FAILURE(attn_lowrank_factors(NULL, 3, 4, 2, fu, fv), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "a", "a");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 2, NULL, fv), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "u", "u");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 2, fu, NULL), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "v", "v");
    EXPECT_FAILURE(attn_lowrank_factors(a, 0, 4, 1, fu, fv), ATTN_E_SHAPE, "attn_lowrank_factors", "rows", "rows 0");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 0, fu, fv), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "rank",
                   "rank 0");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 4, fu, fv), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "rank",
                   "rank 4 > 3");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 2, a + 4, fv), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "u",
                   "u inside a");
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 2, fu, fu + 2), ATTN_E_INVALID_ARG, "attn_lowrank_factors", "v",
                   "v overlapping u");
    a[7] = NAN;
    EXPECT_FAILURE(attn_lowrank_factors(a, 3, 4, 2, fu, fv), ATTN_E_NUMERICAL, "attn_lowrank_factors", "(1, 3)",
                   "NaN at row 1, col 3");
}

/* Linformer with k = r and Nystrom with m = r imply L x S attention matrices of rank <= r, so by
 * Eckart-Young none is closer to the FULL matrix (same in-projection weights, same inputs) than
 * attn_lowrank_error(FULL, r). In float32 the approximations have rank r only up to rounding: the
 * bound is applied rigorously as
 *     ||A_approx - A_full||_F >= lowrank_error(A_full, r) - lowrank_error(A_approx, r)
 * (triangle inequality through A_approx's nearest rank-r matrix), after checking that the second
 * term is rounding (<= 1e-4 ||A_approx||_F). Every (batch element, head) block; with and without a
 * key padding mask; Nystrom with both pseudo-inverses. */
static void test_attention_approximations(void **state)
{
    (void)state;
    const int64_t B = 2, L = 24, S = 24, E = 8, H = 2, block = L * S;
    static const int64_t ranks[] = {1, 2, 4, 8};
    float *x = random_floats(B * L * E, 900, 1.0);
    uint8_t mask[2 * 24] = {0};
    for (int64_t j = 19; j < S; j++)
        mask[S + j] = 1; /* batch element 1: the last 5 keys are padding */
    attn_mha_options fo;
    ASSERT_OK(attn_mha_options_init(&fo));
    fo.embed_dim = E;
    fo.num_heads = H;
    attn_mha *full = NULL;
    ASSERT_OK(attn_mha_create(&full, &fo));
    ASSERT_OK(attn_params_init(attn_mha_params(full), 11));
    /* Sharper softmax rows than PyTorch's init gives at this size, so that the FULL matrix is far
     * from low rank and the bound is not trivially 0. */
    float w[3 * 8 * 8];
    ASSERT_OK(attn_params_get(attn_mha_params(full), "in_proj_weight", w, 3 * E * E));
    for (int64_t i = 0; i < 2 * E * E; i++)
        w[i] *= 4.0f;
    ASSERT_OK(attn_params_set(attn_mha_params(full), "in_proj_weight", w, 3 * E * E));
    float bias[3 * 8];
    for (int i = 0; i < 3 * 8; i++)
        bias[i] = (float)(0.2 * sin(i));
    ASSERT_OK(attn_params_set(attn_mha_params(full), "in_proj_bias", bias, 3 * E));
    float *ref = xmalloc((size_t)(B * H * block) * sizeof *ref), *got = xmalloc((size_t)(B * H * block) * sizeof *got);

    for (int masked = 0; masked <= 1; masked++) {
        const uint8_t *m = masked ? mask : NULL;
        ASSERT_OK(attn_mha_attention_matrix(full, NULL, B, L, S, x, x, x, m, ref));
        for (int ri = 0; ri < COUNT_OF(ranks); ri++)
            for (int kind = 0; kind < 3; kind++) {
                const int64_t r = ranks[ri];
                attn_mha_options o = fo;
                const char *name;
                if (kind == 0) {
                    o.kind = ATTN_MHA_LINFORMER;
                    o.max_seq_len = S;
                    o.proj_len = r;
                    name = "LINFORMER";
                } else {
                    o.kind = ATTN_MHA_NYSTROM;
                    o.num_landmarks = r;
                    o.pinv = kind == 1 ? ATTN_PINV_SVD : ATTN_PINV_NEWTON;
                    name = kind == 1 ? "NYSTROM (SVD pinv)" : "NYSTROM (NEWTON pinv)";
                }
                attn_mha *approx = NULL;
                ASSERT_OK(attn_mha_create(&approx, &o));
                /* Everything but the kind's own tensors (proj_e, proj_f: N(0, 1/k) from this seed)
                 * comes from the FULL layer. */
                ASSERT_OK(attn_params_init(attn_mha_params(approx), 12 + (uint64_t)(ri * 3 + kind)));
                ASSERT_OK(attn_params_set(attn_mha_params(approx), "in_proj_weight", w, 3 * E * E));
                ASSERT_OK(attn_params_set(attn_mha_params(approx), "in_proj_bias", bias, 3 * E));
                ASSERT_OK(attn_mha_attention_matrix(approx, NULL, B, L, S, x, x, x, m, got));
                for (int64_t bh = 0; bh < B * H; bh++) {
                    const float *af = ref + bh * block, *aa = got + bh * block;
                    double dist = 0.0, norm = 0.0;
                    for (int64_t i = 0; i < block; i++) {
                        dist += ((double)aa[i] - af[i]) * ((double)aa[i] - af[i]);
                        norm += (double)aa[i] * aa[i];
                    }
                    dist = sqrt(dist);
                    norm = sqrt(norm);
                    double optimum, own_tail;
                    ASSERT_OK(attn_lowrank_error(af, L, S, r, &optimum));
                    ASSERT_OK(attn_lowrank_error(aa, L, S, r, &own_tail));
                    char ctx[200];
                    snprintf(ctx, sizeof ctx, "%s r=%lld batch %lld head %lld%s", name, (long long)r,
                             (long long)(bh / H), (long long)(bh % H), masked ? " (masked)" : "");
                    if (!(own_tail <= 1e-4 * norm))
                        fail_msg("%s: the approximation is not of rank <= r: distance %g to rank r, norm %g", ctx,
                                 own_tail, norm);
                    if (!(optimum > 1e-3))
                        fail_msg("%s: the FULL matrix is already of rank r (tail %g): the test shows nothing", ctx,
                                 optimum);
                    if (!(dist >= optimum - own_tail - 1e-12 * norm))
                        fail_msg("%s: ||approx - full||_F = %.9g beats the Eckart-Young optimum %.9g (approximation's "
                                 "own distance to rank r: %.3g)",
                                 ctx, dist, optimum, own_tail);
                }
                attn_mha_destroy(approx);
            }
    }
    free(x), free(ref), free(got);
    attn_mha_destroy(full);
}

/* ================================================================================================
 * Errors
 * ============================================================================================= */

enum { F_SV, F_RA, F_LE, F_COUNT };
static const char *const fn_names[] = {"attn_singular_values", "attn_rank_analyze", "attn_lowrank_error"};
static const char *const out_names[] = {"sigma", "out", "frobenius_error"};

typedef struct outputs {
    double sigma[8];
    attn_rank_report rep;
    double err;
} outputs;

static void fill_outputs(outputs *o) { memset(o, 0x5A, sizeof *o); }

static void expect_outputs_untouched(const outputs *o, const char *what)
{
    outputs fresh;
    fill_outputs(&fresh);
    if (memcmp(o, &fresh, sizeof fresh) != 0)
        fail_msg("%s: a failed call wrote its output", what);
}

static attn_status call(int f, const float *a, int64_t rows, int64_t cols, int64_t rank, bool null_out, outputs *o)
{
    switch (f) {
    case F_SV: return attn_singular_values(a, rows, cols, null_out ? NULL : o->sigma);
    case F_RA: return attn_rank_analyze(a, rows, cols, null_out ? NULL : &o->rep);
    default: return attn_lowrank_error(a, rows, cols, rank, null_out ? NULL : &o->err);
    }
}

/* NULL pointers, sizes (< 1, overflowing int64, beyond LAPACK's 32-bit indices), negative ranks:
 * status, the message naming the argument, outputs untouched, and no read of `a` (a one-element
 * buffer backs every huge shape: validation happens before the data is touched). */
static void test_argument_errors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        bool null_a, null_out;
        int64_t rows, cols;
        attn_status want;
        const char *args; /* NULL: out_names[f] */
    } cases[] = {
        {"NULL a", true, false, 2, 2, ATTN_E_INVALID_ARG, "a"},
        {"NULL output", false, true, 2, 2, ATTN_E_INVALID_ARG, NULL},
        {"NULL a and output", true, true, 2, 2, ATTN_E_INVALID_ARG, "a"},
        {"rows 0", false, false, 0, 2, ATTN_E_SHAPE, "rows"},
        {"rows -1", false, false, -1, 2, ATTN_E_SHAPE, "rows"},
        {"rows INT64_MIN", false, false, INT64_MIN, 2, ATTN_E_SHAPE, "rows"},
        {"cols 0", false, false, 2, 0, ATTN_E_SHAPE, "cols"},
        {"cols -7", false, false, 2, -7, ATTN_E_SHAPE, "cols"},
        {"rows x cols overflows int64", false, false, HUGE_SIZE, HUGE_SIZE, ATTN_E_SHAPE, "rows|cols"},
        {"rows x cols overflows int64 (INT64_MAX x 2)", false, false, INT64_MAX, 2, ATTN_E_SHAPE, "rows|cols"},
        {"rows beyond int32", false, false, (int64_t)1 << 31, 1, ATTN_E_SHAPE, "rows|cols"},
        {"cols beyond int32", false, false, 1, (int64_t)1 << 31, ATTN_E_SHAPE, "rows|cols"},
        {"rows x cols = 2^32", false, false, 65536, 65536, ATTN_E_SHAPE, "rows|cols"},
        {"rows x cols just beyond int32", false, false, 46341, 46341, ATTN_E_SHAPE, "rows|cols"},
        {"rows x cols = 2^31", false, false, (int64_t)1 << 16, (int64_t)1 << 15, ATTN_E_SHAPE, "rows|cols"},
        /* rows * cols fits int32, dgesdd's minimum work 3 + max(cols, 7) does not. */
        {"1 x (2^31 - 1): LAPACK's work beyond int32", false, false, 1, INT32_MAX, ATTN_E_SHAPE, "rows|cols"},
        {"(2^31 - 3) x 1: LAPACK's work beyond int32", false, false, INT32_MAX - 2, 1, ATTN_E_SHAPE, "rows|cols"},
    };
    const float a[1] = {1.0f};
    outputs o;
    char what[200];
    for (int c = 0; c < COUNT_OF(cases); c++)
        for (int f = 0; f < F_COUNT; f++) {
            fill_outputs(&o);
            snprintf(what, sizeof what, "%s: %s", fn_names[f], cases[c].what);
            const char *args = cases[c].args ? cases[c].args : out_names[f];
            EXPECT_FAILURE(call(f, cases[c].null_a ? NULL : a, cases[c].rows, cases[c].cols, 1, cases[c].null_out, &o),
                           cases[c].want, fn_names[f], args, what);
            expect_outputs_untouched(&o, what);
        }
    /* rank < 0 (checked before the data is read: the NaN would answer otherwise). */
    static const int64_t bad_ranks[] = {-1, -1000, INT64_MIN};
    const float nan_a[4] = {1.0f, NAN, 2.0f, 3.0f};
    for (int i = 0; i < COUNT_OF(bad_ranks); i++) {
        fill_outputs(&o);
        snprintf(what, sizeof what, "attn_lowrank_error: rank %lld", (long long)bad_ranks[i]);
        EXPECT_FAILURE(attn_lowrank_error(nan_a, 2, 2, bad_ranks[i], &o.err), ATTN_E_INVALID_ARG, "attn_lowrank_error",
                       "rank", what);
        expect_outputs_untouched(&o, what);
    }
    /* Accepted shapes at the limits (46340 x 46340, 1 x (2^31 - 4)) are not run: 8 GiB and more. */
}

/* NaN, +Inf, -Inf anywhere (first, middle, last entry; tall and wide): ATTN_E_NUMERICAL naming a
 * and the entry's row and column, outputs untouched; also with rank >= min(rows, cols) (no SVD is
 * needed then, but the data is still checked). */
static void test_non_finite(void **state)
{
    (void)state;
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    static const int64_t shapes[][2] = {{3, 5}, {5, 3}, {1, 1}};
    outputs o;
    char what[200], where[60];
    for (int si = 0; si < COUNT_OF(shapes); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1];
        const int64_t positions[] = {0, rows * cols / 2, rows * cols - 1};
        for (int b = 0; b < COUNT_OF(bad); b++)
            for (int p = 0; p < COUNT_OF(positions); p++) {
                float *a = random_floats(rows * cols, 800, 1.0);
                a[positions[p]] = bad[b];
                snprintf(where, sizeof where, "row %lld, col %lld", (long long)(positions[p] / cols),
                         (long long)(positions[p] % cols));
                for (int f = 0; f < F_COUNT; f++)
                    for (int64_t rank = 0; rank <= (f == F_LE ? min64(rows, cols) : 0); rank += min64(rows, cols)) {
                        fill_outputs(&o);
                        snprintf(what, sizeof what, "%s: %g at %s of a %lld x %lld matrix (rank %lld)", fn_names[f],
                                 (double)bad[b], where, (long long)rows, (long long)cols, (long long)rank);
                        EXPECT_FAILURE(call(f, a, rows, cols, rank, false, &o), ATTN_E_NUMERICAL, fn_names[f], "a",
                                       what);
                        if (!strstr(attn_last_error(), where))
                            fail_msg("%s: attn_last_error() = \"%s\" does not give the position \"%s\"", what,
                                     attn_last_error(), where);
                        expect_outputs_untouched(&o, what);
                    }
                free(a);
            }
    }
}

/* An output overlapping a (byte ranges): ATTN_E_INVALID_ARG naming both; touching is fine. */
static void test_aliasing(void **state)
{
    (void)state;
    float *a = random_floats(64, 850, 1.0);
    double sigma_ok[4];
    EXPECT_FAILURE(attn_singular_values(a, 4, 16, (double *)(void *)(a + 60)), ATTN_E_INVALID_ARG,
                   "attn_singular_values", "sigma", "sigma overlapping the end of a");
    assert_non_null(strstr(attn_last_error(), "overlaps input a"));
    EXPECT_FAILURE(attn_rank_analyze(a + 8, 4, 14, (attn_rank_report *)(void *)a), ATTN_E_INVALID_ARG,
                   "attn_rank_analyze", "out", "out overlapping the start of a");
    EXPECT_FAILURE(attn_lowrank_error(a, 8, 8, 2, (double *)(void *)(a + 20)), ATTN_E_INVALID_ARG,
                   "attn_lowrank_error", "frobenius_error", "frobenius_error inside a");
    /* Touching: sigma right after a (a copy of a's first 56 floats, then room for 4 doubles). */
    float *buf = xmalloc(56 * sizeof *buf + 4 * sizeof(double));
    memcpy(buf, a, 56 * sizeof *buf);
    ASSERT_OK(attn_singular_values(buf, 4, 14, (double *)(void *)(buf + 56)));
    ASSERT_OK(attn_singular_values(a, 4, 14, sigma_ok));
    for (int i = 0; i < 4; i++)
        assert_true(((double *)(void *)(buf + 56))[i] == sigma_ok[i]);
    free(buf), free(a);
}

/* Out of memory: under an address-space limit just above what the process holds, the scratch
 * (8 rows cols bytes and more) cannot be allocated: ATTN_E_NOMEM naming the function, outputs
 * untouched, nothing leaked (the same call succeeds once the limit is lifted). Not under the
 * sanitizers or valgrind, whose runtimes reserve address space of their own. */
static void test_out_of_memory(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip();
#else
    if (getenv("ATTN_TEST_VALGRIND"))
        skip();
    const int64_t n = 2048; /* a: 16 MiB of floats; the scratch needs 32 MiB and more */
    float *a = random_floats(n * n, 870, 1.0);
    struct rlimit saved, limited;
    assert_int_equal(getrlimit(RLIMIT_AS, &saved), 0);
    long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    assert_non_null(statm);
    assert_int_equal(fscanf(statm, "%ld", &pages), 1);
    fclose(statm);
    const rlim_t now = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE), room = (rlim_t)8 << 20;
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < now + room) {
        free(a);
        skip(); /* a hard limit already below what the test needs to set */
    }
    limited = saved;
    limited.rlim_cur = now + room;
    outputs o;
    attn_status status[F_COUNT];
    char msgs[F_COUNT][512];
    bool wrote[F_COUNT];
    /* Nothing but the calls runs under the limit; their results are checked once it is lifted. */
    assert_int_equal(setrlimit(RLIMIT_AS, &limited), 0);
    for (int f = 0; f < F_COUNT; f++) {
        fill_outputs(&o);
        status[f] = call(f, a, n, n, 1, false, &o);
        snprintf(msgs[f], sizeof msgs[f], "%s", attn_last_error());
        outputs fresh;
        fill_outputs(&fresh);
        wrote[f] = memcmp(&o, &fresh, sizeof o) != 0;
    }
    assert_int_equal(setrlimit(RLIMIT_AS, &saved), 0);
    for (int f = 0; f < F_COUNT; f++) {
        if (status[f] != ATTN_E_NOMEM)
            fail_msg("%s under an address-space limit: status %d, want ATTN_E_NOMEM (%d); message \"%s\"",
                     fn_names[f], status[f], ATTN_E_NOMEM, msgs[f]);
        if (!strstr(msgs[f], fn_names[f]) || !has_any_word(msgs[f], "allocate|memory"))
            fail_msg("%s: message \"%s\" does not name the function and the allocation", fn_names[f], msgs[f]);
        if (wrote[f])
            fail_msg("%s: a call that ran out of memory wrote its output", fn_names[f]);
    }
    /* Nothing was leaked or left broken: with the limit lifted the calls succeed (a smaller shape
     * of the same data keeps this fast). */
    ASSERT_OK(attn_singular_values(a, 64, 64, o.sigma));
    free(a);
#endif
}

/* ================================================================================================
 * Threads
 * ============================================================================================= */

typedef struct thread_job {
    const float *a;
    int64_t rows, cols;
    attn_rank_report want;
    double want_err;
    int failures, mismatches, message_wrong;
    pthread_barrier_t *start;
} thread_job;

static bool report_close(const attn_rank_report *x, const attn_rank_report *y)
{
    const double d[4][2] = {{x->sigma_max, y->sigma_max}, {x->frobenius, y->frobenius},
                            {x->stable_rank, y->stable_rank}, {x->effective_rank, y->effective_rank}};
    for (int i = 0; i < 4; i++)
        if (!(fabs(d[i][0] - d[i][1]) <= STAT_TOL * fabs(d[i][1])))
            return false;
    return x->numerical_rank == y->numerical_rank && x->rank_90 == y->rank_90 && x->rank_99 == y->rank_99;
}

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    pthread_barrier_wait(job->start);
    for (int it = 0; it < 20; it++) {
        attn_rank_report rep;
        double err;
        if (attn_rank_analyze(job->a, job->rows, job->cols, &rep) != ATTN_OK ||
            attn_lowrank_error(job->a, job->rows, job->cols, 3, &err) != ATTN_OK) {
            job->failures++;
            continue;
        }
        job->mismatches += !report_close(&rep, &job->want) || !(fabs(err - job->want_err) <= STAT_TOL * job->want_err);
        /* The thread-local message names this thread's failing call. */
        if (attn_lowrank_error(job->a, job->rows, job->cols, -(int64_t)job->rows, &err) != ATTN_E_INVALID_ARG ||
            !strstr(attn_last_error(), "attn_lowrank_error: rank must be >= 0"))
            job->message_wrong++;
        else if (attn_rank_analyze(job->a, -job->cols, job->cols, &rep) != ATTN_E_SHAPE ||
                 !strstr(attn_last_error(), "attn_rank_analyze: rows must be > 0"))
            job->message_wrong++;
    }
    return NULL;
}

/* Two threads at once, each on its own matrix (tall and wide): results as single-threaded, errors
 * reported per thread. */
static void test_threads(void **state)
{
    (void)state;
    thread_job jobs[2] = {{.rows = 48, .cols = 20}, {.rows = 20, .cols = 56}};
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    float *mats[2];
    for (int t = 0; t < 2; t++) {
        mats[t] = random_floats(jobs[t].rows * jobs[t].cols, 880 + (uint64_t)t, 1.0);
        jobs[t].a = mats[t];
        jobs[t].start = &start;
        ASSERT_OK(attn_rank_analyze(jobs[t].a, jobs[t].rows, jobs[t].cols, &jobs[t].want));
        ASSERT_OK(attn_lowrank_error(jobs[t].a, jobs[t].rows, jobs[t].cols, 3, &jobs[t].want_err));
    }
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, thread_main, &jobs[t]), 0);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < 2; t++) {
        if (jobs[t].failures || jobs[t].mismatches || jobs[t].message_wrong)
            fail_msg("thread %d: %d failed calls, %d results differing from the single-threaded ones, %d wrong "
                     "error messages",
                     t, jobs[t].failures, jobs[t].mismatches, jobs[t].message_wrong);
        free(mats[t]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_aliasing),
        cmocka_unit_test(test_diagonal),
        cmocka_unit_test(test_known_spectrum),
        cmocka_unit_test(test_float32_noise_is_rank),
        cmocka_unit_test(test_rank_k_products),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_equal_rows),
        cmocka_unit_test(test_zero_matrix),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_eckart_young),
        cmocka_unit_test(test_lowrank_factors),
        cmocka_unit_test(test_attention_approximations),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
