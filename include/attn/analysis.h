/**
 * @file
 * analysis.h: the singular-value spectrum of a matrix and what it says about its rank: the numbers
 * that tell whether a recurrent matrix (attn_rnn_recurrent_matrix) or an attention matrix
 * (attn_mha_attention_matrix) is close to low rank, and the Eckart-Young optimum that no rank-r
 * approximation can beat, and the factors that reach it (docs/analysis.md). Added in libattn 1.3.
 *
 * Every function here takes a float32, row-major, contiguous rows x cols matrix `a`, widens it to
 * float64 and computes its singular values sigma_1 >= ... >= sigma_n >= 0 (n = min(rows, cols))
 * with LAPACK dgesdd in double, values only (attn_lowrank_factors: with vectors, see there).
 *
 * Memory: the three spectrum functions take no workspace; each call allocates its scratch and frees it before it
 * returns: a float64 copy of `a` (8 rows cols bytes), dgesdd's `work` (lwork doubles, as LAPACK's
 * own workspace query gives it) and 48 n bytes more, in all at most
 *     8 rows cols + 8 lwork + 48 n + 320 bytes.
 * With LAPACK 3.11 (block size 32) lwork is 3 n + 32 (rows + cols), or 67 n when one side is at
 * least 11/6 times the other, i.e. under 1 % of the copy for any matrix larger than 64 x 64:
 * an 8192 x 8192 matrix needs 516.6 MiB (512 MiB copy, 4.2 MiB work, 0.4 MiB the rest). Besides,
 * BLAS keeps its own buffers, as for any BLAS call. Time is that of dgesdd, O(rows cols n).
 *
 * Limits: rows * cols, each extent and lwork must fit LAPACK's 32-bit indices (rows * cols <=
 * 2^31 - 1, e.g. up to 46340 x 46340, and 3 n + max(rows, cols, 7 n) <= 2^31 - 1); larger shapes
 * are ATTN_E_SHAPE.
 *
 * Thread rule: no handle and no shared state; any number of threads may call these functions at
 * once (BLAS's threads do the parallel work inside dgesdd).
 *
 * Errors, shared by the four functions (attn_last_error() names the function and the argument):
 *   ATTN_E_INVALID_ARG  a or an output pointer is NULL; an output overlapping a (byte ranges);
 *                       rank < 0 (attn_lowrank_error), outside 1..n (attn_lowrank_factors)
 *   ATTN_E_SHAPE        rows or cols < 1; rows * cols overflowing or beyond the limits above
 *   ATTN_E_NUMERICAL    an entry of a is NaN or +-Inf (the message gives its row and column), or
 *                       the SVD did not converge
 *   ATTN_E_NOMEM        the scratch above could not be allocated
 * Every check but the last two causes (no memory, no convergence) runs before anything is
 * allocated: the finiteness scan reads a once first. On failure the outputs are unchanged.
 */
#ifndef ATTN_ANALYSIS_H
#define ATTN_ANALYSIS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** sigma [min(rows, cols)] = the singular values of a [rows, cols], in decreasing order. */
ATTN_API attn_status attn_singular_values(const float *a, int64_t rows, int64_t cols, double *sigma);

/** What the spectrum of a rows x cols matrix A says about its rank; n = min(rows, cols), sigma_i
 * decreasing. Written whole by attn_rank_analyze. Its layout is fixed: a later version that reports
 * more adds a new function rather than fields here. */
typedef struct attn_rank_report {
    double sigma_max;       /**< sigma_1 = the spectral norm ||A||_2 */
    double frobenius;       /**< ||A||_F = sqrt(sum_i sigma_i^2) */
    double stable_rank;     /**< ||A||_F^2 / sigma_1^2, in [1, n] (up to rounding): how many
                                 directions carry the energy */
    double effective_rank;  /**< exp(H(p)), p_i = sigma_i / sum_j sigma_j, H(p) = -sum_i p_i log p_i with
                                 0 log 0 = 0 (Roy & Vetterli 2007), in [1, n] (up to
                                 rounding) */
    int64_t numerical_rank; /**< #{i : sigma_i > sigma_1 * max(rows, cols) * DBL_EPSILON}, DBL_EPSILON =
                                 2^-52 (numpy's matrix_rank default in float64). Counts float32 rounding
                                 noise as rank: see docs/analysis.md */
    int64_t rank_90;        /**< smallest k with sum_{i<=k} sigma_i / sum_i sigma_i >= 0.90 */
    int64_t rank_99;        /**< the same with 0.99 (the Linformer paper's normalized cumulative
                                 singular value) */
} attn_rank_report;

/** *out = the rank report of a [rows, cols], every quantity from one spectrum, evaluated in double
 * as written above (rank_p compares the ratio of the two sums, summed from sigma_1 on, with p).
 * The zero matrix (every sigma_i = 0) gets every field 0, effective_rank included: it is the only
 * matrix whose effective and stable ranks are below 1, and nothing is NaN. */
ATTN_API attn_status attn_rank_analyze(const float *a, int64_t rows, int64_t cols, attn_rank_report *out);

/** *frobenius_error = sqrt(sum_{i > rank} sigma_i^2) (summed from the smallest sigma up): the
 * Frobenius distance from a [rows, cols] to the nearest matrix of rank <= rank (Eckart-Young), a
 * lower bound on ||A - B||_F for every such B, e.g. a Linformer attention matrix with proj_len k =
 * rank or a Nystrom one with num_landmarks m = rank. rank = 0 gives ||A||_F (equal to
 * attn_rank_analyze's frobenius); rank >= min(rows, cols) gives exactly 0, without an SVD (a is
 * still checked for NaN and Inf). ATTN_E_INVALID_ARG for rank < 0. */
ATTN_API attn_status attn_lowrank_error(const float *a, int64_t rows, int64_t cols, int64_t rank,
                                        double *frobenius_error);

/** The best rank-`rank` approximation of a [rows, cols] as a product, u [rows, rank] times
 * v [rank, cols]: the truncated SVD (Eckart-Young), u = U_r S_r and v = V_r^T (orthonormal rows),
 * computed in double by LAPACK dgesdd with singular vectors and rounded to float. Its distance to a
 * is attn_lowrank_error(a, rows, cols, rank). Made to put a trained dense recurrence into a LOW_RANK
 * handle: u and v are weight_hh_l{l}_u (G H, r) and weight_hh_l{l}_v (r, H) of the matrix
 * weight_hh_l{l} (G H, H). Signs of singular vector pairs are LAPACK's (deterministic).
 * 1 <= rank <= min(rows, cols), else ATTN_E_INVALID_ARG. Scratch: 8 rows cols + 8 (rows + cols)
 * min(rows, cols) bytes plus dgesdd's work (its workspace query), allocated per call. Further
 * errors as above: u or v NULL or overlapping a or each other (ATTN_E_INVALID_ARG), sizes
 * (ATTN_E_SHAPE; the SVD with vectors also needs its larger work within 32-bit indices), NaN or
 * Inf in a (ATTN_E_NUMERICAL, naming row and column). Outputs are unchanged on failure. */
ATTN_API attn_status attn_lowrank_factors(const float *a, int64_t rows, int64_t cols, int64_t rank, float *u,
                                          float *v);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_ANALYSIS_H */
