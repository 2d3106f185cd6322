/*
 * ref_attention.h: a float64 reference of attn_mha (docs/attention.md), written from the equations and
 * independent of the library's code: it only uses the public API to read the handle's options
 * and weights. Shared by every test that needs ground truth for the attention family.
 *
 * Layouts follow attention.h: query [B,L,E], key [B,S,kdim], value [B,S,vdim], mask [B,S]
 * (nonzero = ignore) or NULL; per-head tensors are [B,len,E] with head h in columns h*dh..(h+1)*dh-1.
 * Functions return 0 on success and -1 for a missing tensor, an unknown kind or no memory.
 */
#ifndef ATTN_TEST_REF_ATTENTION_H
#define ATTN_TEST_REF_ATTENTION_H

#include <stdint.h>

#include "attn/attention.h"

/* The in-projections in float64: q [B,L,E] (scaled by 1/sqrt(dh)), k and v [B,S,E]. */
int ref_mha_project(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                    const float *key, const float *value, double *q, double *k, double *v);

/* The kind's attention on projected inputs: o [B,L,E] is the concatenated per-head output before
 * the out-projection (NULL to skip); weights [B,h,L,S] the matrix that multiplies V_h as
 * attn_mha_attention_matrix defines it (NULL to skip). k and v are not modified. */
int ref_mha_attend(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const double *q,
                   const double *k, const double *v, const uint8_t *mask, double *o, double *weights);

/* attn_mha_forward in float64: out [B,L,E]. */
int ref_mha_forward(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                    const float *key, const float *value, const uint8_t *mask, double *out);

/* attn_mha_attention_matrix in float64: weights [B,h,L,S]. */
int ref_mha_attention_matrix(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                             const float *key, const float *value, const uint8_t *mask, double *weights);

/* The largest condition number sigma_max / sigma_min of Nystrom's A2 over batch elements and heads,
 * counting only singular values above m * FLT_EPSILON * sigma_max (those the SVD pinv inverts; a
 * masked landmark's exact zero is not one). The float32 rounding of the pseudo-inverse grows with
 * it. 0 for other kinds; -1 on failure. */
double ref_mha_nystrom_condition(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                                 const float *key, const float *value, const uint8_t *mask);

/* z (n x n) = the Newton-Schulz pseudo-inverse of a (n x n) after `iterations` steps, exactly as
 * docs/attention.md writes it: Z0 = a^T / (|a|_1 |a|_inf), Z <- Z (13I - aZ (15I - aZ (7I - aZ))) / 4.
 * A zero matrix gives Z = 0. */
int ref_pinv_newton(const double *a, int64_t n, int64_t iterations, double *z);

/* z (n x n) = the Moore-Penrose pseudo-inverse of a through LAPACK's dgesdd; singular values
 * <= rcond * sigma_max count as zero. */
int ref_pinv_svd(const double *a, int64_t n, double rcond, double *z);

/* The landmark segment [*begin, *end) of segment i of m over n rows:
 * floor(i*n/m) .. floor((i+1)*n/m) - 1. */
void ref_nystrom_segment(int64_t i, int64_t n, int64_t m, int64_t *begin, int64_t *end);

#endif /* ATTN_TEST_REF_ATTENTION_H */
