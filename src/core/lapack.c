/* The only door to LAPACK. LAPACKE's _work layer is used throughout: its high-level functions
 * allocate their own scratch, whereas every byte here comes from the caller's workspace, so a
 * family's reported workspace_bytes stays exact. Work is done in double (the analysis results
 * are float64), on float32 data at the boundary. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/core.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* LAPACK's optimal `work` length for dgesdd('S') of an m x n matrix (its own workspace query,
 * which reads no matrix), never below the documented minimum 4 mn^2 + 7 mn. */
static int64_t dgesdd_lwork(int64_t m, int64_t n)
{
    const int64_t mn = min64(m, n);
    const int64_t minimum = 4 * mn * mn + 7 * mn;
    double query = 0.0, dummy = 0.0;
    lapack_int idummy = 0;
    const lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', (lapack_int)m, (lapack_int)n, &dummy,
                                                (lapack_int)m, &dummy, &dummy, (lapack_int)m, &dummy,
                                                (lapack_int)mn, &query, -1, &idummy);
    const int64_t optimal = info == 0 ? (int64_t)query : 0;
    return optimal > minimum ? optimal : minimum;
}

bool attn__pinv_supported(int64_t rows, int64_t cols)
{
    const int64_t mn = min64(rows, cols);
    int64_t elems;
    /* Every extent, the matrix and the documented minimum of `work` must fit lapack_int; the
     * optimal `work` length is queried only then, and must fit too. */
    if (rows < 1 || cols < 1 || !attn__mul(rows, cols, &elems) || elems > INT32_MAX ||
        mn > (INT32_MAX - 7 * mn) / (4 * mn))
        return false;
    return dgesdd_lwork(cols, rows) <= INT32_MAX;
}

/* Scratch layout of an SVD with vectors (attn__pinv, attn__svd_factors): A's copy, S, U, VT and
 * `work` in doubles, then the integer work array. */
typedef struct svd_layout {
    attn_ws_plan ws;
    size_t a, s, u, vt, work, iwork;
    int64_t lwork;
} svd_layout;

static svd_layout svd_layout_of(int64_t rows, int64_t cols)
{
    const int64_t mn = min64(rows, cols), d = sizeof(double);
    svd_layout l = {0};
    l.lwork = dgesdd_lwork(cols, rows);
    l.a = attn__plan_take(&l.ws, d, rows, cols, 1);
    l.s = attn__plan_take(&l.ws, d, mn, 1, 1);
    l.u = attn__plan_take(&l.ws, d, cols, mn, 1);
    l.vt = attn__plan_take(&l.ws, d, mn, rows, 1);
    l.work = attn__plan_take(&l.ws, d, l.lwork, 1, 1);
    l.iwork = attn__plan_take(&l.ws, sizeof(lapack_int), 8, mn, 1);
    return l;
}

size_t attn__pinv_plan(attn_ws_plan *plan, int64_t rows, int64_t cols)
{
    return attn__plan_nest(plan, svd_layout_of(rows, cols).ws);
}

/* The SVD with singular vectors of the row-major rows x cols matrix a (lda), in the scratch of
 * `l`. Row-major A read as column-major is A^T (cols x rows), which LAPACK factors as
 * A^T = U S V^T: then A = V S U^T, and neither end needs a transposed copy. */
static attn_status svd_triplets(const char *fn, const char *what, int64_t rows, int64_t cols, const float *a,
                                int64_t lda, const svd_layout *l, char *base)
{
    double *at = (double *)(base + l->a), *s = (double *)(base + l->s), *u = (double *)(base + l->u);
    double *vt = (double *)(base + l->vt), *work = (double *)(base + l->work);
    lapack_int *iwork = (lapack_int *)(base + l->iwork);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            if (!isfinite(a[i * lda + j]))
                return attn__fail(ATTN_E_NUMERICAL, "%s: the %lld x %lld matrix %s has a non-finite entry at (%lld, "
                                  "%lld)", fn, (long long)rows, (long long)cols, what, (long long)i, (long long)j);
            at[i * cols + j] = a[i * lda + j];
        }
    const lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', (lapack_int)cols, (lapack_int)rows, at,
                                                (lapack_int)cols, s, u, (lapack_int)cols, vt,
                                                (lapack_int)min64(rows, cols), work, (lapack_int)l->lwork, iwork);
    if (info != 0)
        return attn__fail(ATTN_E_NUMERICAL, "%s: the SVD (LAPACK dgesdd) of a %lld x %lld matrix failed (info %d)", fn,
                          (long long)rows, (long long)cols, (int)info);
    return ATTN_OK;
}

attn_status attn__pinv(const char *fn, int64_t rows, int64_t cols, const float *a, int64_t lda, float *out,
                       int64_t ldo, double rtol, void *scratch)
{
    const svd_layout l = svd_layout_of(rows, cols);
    char *base = scratch;
    double *at = (double *)(base + l.a), *s = (double *)(base + l.s), *u = (double *)(base + l.u);
    double *vt = (double *)(base + l.vt);
    const int64_t mn = min64(rows, cols);
    const attn_status st = svd_triplets(fn, "to pseudo-invert", rows, cols, a, lda, &l, base);
    if (st != ATTN_OK)
        return st;
    /* pinv(A) = (pinv(A^T))^T = U S^+ V^T. Singular values come sorted in decreasing order; those
     * at or below the cutoff count as zero, so only the first `rank` singular triplets enter the
     * product. */
    const double cutoff = rtol * s[0];
    int64_t rank = 0;
    while (rank < mn && s[rank] > cutoff) {
        const double inv = 1.0 / s[rank];
        for (int64_t i = 0; i < cols; i++)
            u[rank * cols + i] *= inv;
        rank++;
    }
    /* out (cols x rows, row-major) = U[:, :rank] S^+ VT[:rank, :]; U and VT are column-major, i.e.
     * their transposes row-major. The product reuses the (consumed) copy of A. */
    double *p = at;
    if (rank > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)cols, (int)rows, (int)rank, 1.0, u, (int)cols, vt,
                    (int)mn, 0.0, p, (int)rows);
    else
        memset(p, 0, (size_t)(rows * cols) * sizeof *p);
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < rows; j++)
            out[i * ldo + j] = (float)p[i * rows + j];
    return ATTN_OK;
}

attn_status attn__svd_factors(const char *fn, int64_t rows, int64_t cols, const float *a, int64_t rank, float *u_out,
                              float *v_out, void *scratch)
{
    const svd_layout l = svd_layout_of(rows, cols);
    char *base = scratch;
    const double *s = (double *)(base + l.s), *u = (double *)(base + l.u), *vt = (double *)(base + l.vt);
    const int64_t mn = min64(rows, cols);
    const attn_status st = svd_triplets(fn, "a", rows, cols, a, cols, &l, base);
    if (st != ATTN_OK)
        return st;
    /* A = V S U^T in LAPACK's names: A's left singular vector k is row k of VT (column-major mn x
     * rows), its right one column k of U (column-major cols x mn). */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < rank; k++)
            u_out[i * rank + k] = (float)(vt[i * mn + k] * s[k]);
    for (int64_t k = 0; k < rank; k++)
        for (int64_t j = 0; j < cols; j++)
            v_out[k * cols + j] = (float)u[k * cols + j];
    return ATTN_OK;
}

/* ---- singular values only (the analysis family) ----------------------------------------------- */

/* LAPACK's optimal `work` length for dgesdd('N') of an m x n matrix (its workspace query, which
 * reads no matrix), never below the documented minimum 3 mn + max(mx, 7 mn). Sizes >= 1 whose
 * minimum fits int64 (callers check attn__svd_values_supported first, or pass small sizes). */
static int64_t dgesdd_values_lwork(int64_t m, int64_t n)
{
    const int64_t mn = min64(m, n), mx = m > n ? m : n;
    const int64_t minimum = 3 * mn + (mx > 7 * mn ? mx : 7 * mn);
    double query = 0.0, dummy = 0.0;
    lapack_int idummy = 0;
    const lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)n, &dummy,
                                                (lapack_int)m, &dummy, &dummy, 1, &dummy, 1, &query, -1, &idummy);
    const int64_t optimal = info == 0 && query < 0x1p62 ? (int64_t)query : 0;
    return optimal > minimum ? optimal : minimum;
}

bool attn__svd_values_supported(int64_t rows, int64_t cols)
{
    int64_t elems;
    /* The element count must fit lapack_int too, not only each extent: an implementation may
     * compute an element's offset (column times leading dimension) in 32-bit arithmetic, and the
     * byte size of the double copy must not overflow. Then the minimum of `work`; the optimal
     * length is queried only then, and must fit as well. */
    if (rows < 1 || cols < 1 || !attn__mul(rows, cols, &elems) || elems > INT32_MAX)
        return false;
    const int64_t mn = min64(rows, cols), mx = rows > cols ? rows : cols;
    if (3 * mn + (mx > 7 * mn ? mx : 7 * mn) > INT32_MAX)
        return false;
    return dgesdd_values_lwork(cols, rows) <= INT32_MAX;
}

/* Scratch layout of attn__svd_values: A's copy, S and `work` in doubles, then the integer work
 * array (8 mn, as dgesdd documents for every jobz). */
typedef struct svd_values_layout {
    attn_ws_plan ws;
    size_t a, s, work, iwork;
    int64_t lwork;
} svd_values_layout;

static svd_values_layout svd_values_layout_of(int64_t rows, int64_t cols)
{
    const int64_t mn = min64(rows, cols), d = sizeof(double);
    svd_values_layout l = {0};
    l.lwork = dgesdd_values_lwork(cols, rows);
    l.a = attn__plan_take(&l.ws, d, rows, cols, 1);
    l.s = attn__plan_take(&l.ws, d, mn, 1, 1);
    l.work = attn__plan_take(&l.ws, d, l.lwork, 1, 1);
    l.iwork = attn__plan_take(&l.ws, sizeof(lapack_int), 8, mn, 1);
    return l;
}

size_t attn__svd_values_plan(attn_ws_plan *plan, int64_t rows, int64_t cols)
{
    return attn__plan_nest(plan, svd_values_layout_of(rows, cols).ws);
}

attn_status attn__svd_values(const char *fn, int64_t rows, int64_t cols, const float *a, double *sigma,
                             void *scratch)
{
    const svd_values_layout l = svd_values_layout_of(rows, cols);
    char *base = scratch;
    double *at = (double *)(base + l.a), *s = (double *)(base + l.s), *work = (double *)(base + l.work);
    lapack_int *iwork = (lapack_int *)(base + l.iwork);
    const int64_t n = rows * cols, mn = min64(rows, cols);

    /* Row-major A read as column-major is A^T (cols x rows), which has the same singular values:
     * a plain widening copy, no transpose. */
    for (int64_t i = 0; i < n; i++)
        at[i] = a[i];
    double none = 0.0; /* U and VT are not referenced with jobz = 'N' */
    const lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', (lapack_int)cols, (lapack_int)rows, at,
                                                (lapack_int)cols, s, &none, 1, &none, 1, work, (lapack_int)l.lwork,
                                                iwork);
    if (info != 0)
        return attn__fail(ATTN_E_NUMERICAL, "%s: the SVD (LAPACK dgesdd) of a %lld x %lld matrix failed (info %d)", fn,
                          (long long)rows, (long long)cols, (int)info);
    memcpy(sigma, s, (size_t)mn * sizeof *s);
    return ATTN_OK;
}
