/*
 * ref_rnn.h: a float64 reference of attn_rnn (docs/rnn.md), written from the equations and
 * independent of the library's code: it only uses the public API to read the handle's options
 * and weights. Shared by every test that needs ground truth for the recurrent family.
 */
#ifndef ATTN_TEST_REF_RNN_H
#define ATTN_TEST_REF_RNN_H

#include <stddef.h>
#include <stdint.h>

#include "attn/rnn.h"

/* Gates per cell: 1 (Elman), 4 (LSTM), 3 (GRU); 0 for an unknown cell. */
int64_t ref_rnn_gates(int32_t cell);

/* "<base>_l<layer><suffix>", plus "_reverse" for direction 1:
 * ("weight_hh", 0, "_u", 1) gives "weight_hh_l0_u_reverse". */
void ref_rnn_tensor_name(char *buf, size_t size, const char *base, int64_t layer, const char *suffix,
                         int64_t direction);

/* "weight_hh_l<layer>_kron<factor>", plus "_reverse" for direction 1: a KRONECKER factor tensor. */
void ref_rnn_kron_name(char *buf, size_t size, int64_t layer, int64_t factor, int64_t direction);
/* p_f of a KRONECKER network's options: factor_sizes or more_factor_sizes. */
int64_t ref_rnn_factor(const attn_rnn_options *o, int64_t f);
/* Sets num_factors and both factor arrays of o from sizes[0..n) (the rest 0). */
void ref_rnn_set_factors(attn_rnn_options *o, int64_t n, const int64_t *sizes);

/* c[n, p] = a[n, k] b[k, p] in float64, with row strides lda, ldb, ldc (shared by the references
 * and the tests that build matrices for them). */
void ref_matmul(int64_t n, int64_t p, int64_t k, const double *a, int64_t lda, const double *b, int64_t ldb,
                double *c, int64_t ldc);

/* c (ra*rb, ca*cb) = a (ra, ca) (x) b (rb, cb), the Kronecker product in float64:
 * c[i*rb + k, j*cb + l] = a[i, j] b[k, l]. */
void ref_kron(int64_t ra, int64_t ca, const double *a, int64_t rb, int64_t cb, const double *b, double *c);

/* A new malloc'ed float64 copy of tensor `name` of `p` (caller frees); NULL when the tensor does
 * not exist or its element count differs from `expected_count`. */
double *ref_params_get_f64(const attn_params *p, const char *name, int64_t expected_count);

/* The effective recurrent matrix (G*H, H) of one layer and direction in float64: weight_hh for
 * DENSE, the product U V for LOW_RANK, per gate the Kronecker product of the factors
 * weight_hh_l{l}_kron{f} for KRONECKER. Returns 0 on success, -1 otherwise. */
int ref_rnn_recurrent_matrix(attn_rnn *rnn, int64_t layer, int64_t direction, double *out);

/* The forward pass in float64 with PyTorch's semantics.
 *   x [B,T,I]; h0, c0 [L*D,B,H] or NULL for zeros (c0 is used by LSTM only);
 *   y [B,T,D*H]; h_n, c_n [L*D,B,H] or NULL when not wanted (c_n is written by LSTM only).
 * Every recurrence is modelled (KRONECKER through its materialized matrix, as the equations define
 * it). Returns 0 on success, -1 for missing tensors or memory. */
int ref_rnn_forward(attn_rnn *rnn, int64_t batch, int64_t seq_len, const float *x, const float *h0,
                    const float *c0, double *y, double *h_n, double *c_n);

#endif /* ATTN_TEST_REF_RNN_H */
