/*
 * rnn.h: recurrent networks (Elman tanh/relu, LSTM, GRU) with a dense, low-rank or
 * Kronecker-factored recurrence. PyTorch semantics and state_dict tensor names (docs/rnn.md).
 */
#ifndef ATTN_RNN_H
#define ATTN_RNN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_rnn attn_rnn;

/* attn_rnn_options.cell */
#define ATTN_CELL_RNN_TANH 0 /* h' = tanh(W_ih x + b_ih + R(h) + b_hh)                       */
#define ATTN_CELL_RNN_RELU 1 /* h' = relu(...)                                                */
#define ATTN_CELL_LSTM 2     /* gates i, f, g, o (PyTorch row order)                          */
#define ATTN_CELL_GRU 3      /* gates r, z, n (PyTorch row order)                             */

/* attn_rnn_options.recurrence: how R(h), the (G*H)-by-H recurrent map, is parameterized. */
#define ATTN_RECURRENCE_DENSE 0     /* R(h) = W_hh h                                          */
#define ATTN_RECURRENCE_LOW_RANK 1  /* R(h) = U (V h), U (G*H, rank), V (rank, H)             */
#define ATTN_RECURRENCE_KRONECKER 2 /* per gate, W_g = K_0 (x) K_1 (x) ... (not yet: UNSUPPORTED) */

#define ATTN_RNN_MAX_FACTORS 8

typedef struct attn_rnn_options {
    uint32_t struct_size; /* sizeof(attn_rnn_options), written by attn_rnn_options_init */
    int32_t cell;         /* ATTN_CELL_*; default ATTN_CELL_LSTM */
    int32_t recurrence;   /* ATTN_RECURRENCE_*; default DENSE */
    int32_t bidirectional; /* 0 or 1; default 0 */
    int32_t bias;          /* 0 or 1; default 1 (b_ih and b_hh present) */
    int64_t input_size;    /* I > 0; no default (0) */
    int64_t hidden_size;   /* H > 0; no default (0) */
    int64_t num_layers;    /* L >= 1; default 1 */
    int64_t rank;          /* LOW_RANK only: 1 <= rank <= H */
    int64_t num_factors;   /* KRONECKER only: 1..ATTN_RNN_MAX_FACTORS */
    int64_t factor_sizes[ATTN_RNN_MAX_FACTORS]; /* KRONECKER only: p_f >= 1, product = H */
    uint32_t flags;        /* reserved, must be 0 */
} attn_rnn_options;

/* Writes the defaults and struct_size. Returns ATTN_E_INVALID_ARG for NULL. */
ATTN_API attn_status attn_rnn_options_init(attn_rnn_options *options);

/* Creates a recurrent network. *out is NULL on failure. Parameters are initialized with
 * attn_params_init(params, 0) so a new handle is usable at once; set or load real weights. */
ATTN_API attn_status attn_rnn_create(attn_rnn **out, const attn_rnn_options *options);
/* NULL is accepted and ignored. */
ATTN_API void attn_rnn_destroy(attn_rnn *rnn);
/* The handle's tensors (names as torch.nn.RNN/LSTM/GRU's state_dict; see docs/rnn.md).
 * NULL for a NULL handle. Owned by the handle. */
ATTN_API attn_params *attn_rnn_params(attn_rnn *rnn);
/* The options the handle was created with (struct_size = this header's). */
ATTN_API attn_status attn_rnn_get_options(const attn_rnn *rnn, attn_rnn_options *out);

/* Runs the network over a batch of sequences.
 *   x   [batch, seq_len, input_size]
 *   h0  [num_layers * D, batch, hidden_size] initial hidden state, or NULL for zeros (D = 2 if
 *       bidirectional, else 1)
 *   c0  same shape, LSTM only (must be NULL for other cells), or NULL for zeros
 *   y   [batch, seq_len, D * hidden_size] output of the last layer (both directions concatenated)
 *   h_n [num_layers * D, batch, hidden_size] final hidden states, or NULL if not wanted
 *   c_n same, LSTM only, or NULL
 * No output may overlap an input or another output (byte ranges are compared; inputs may share
 * memory). Thread-safe on a const handle as long as each thread uses its own workspace (or NULL:
 * the call then allocates and frees its scratch memory itself). Errors: ATTN_E_INVALID_ARG (NULL
 * handle, x or y; c0/c_n for a non-LSTM cell; overlapping outputs), ATTN_E_SHAPE (batch or seq_len
 * < 1, sizes beyond the 32-bit index range of BLAS, or whose FLOP count or workspace overflows;
 * attn_rnn_cost rejects exactly the same shapes), ATTN_E_NOMEM. NaN and Inf in the inputs are not
 * rejected: they propagate through the gates as in PyTorch. */
ATTN_API attn_status attn_rnn_forward(const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                                      const float *x, const float *h0, const float *c0, float *y, float *h_n,
                                      float *c_n);

/* Materializes the effective recurrent matrix of one layer and direction (0 forward, 1 reverse):
 * out [G * hidden_size, hidden_size], gate blocks in PyTorch's row order. For DENSE it is weight_hh,
 * for LOW_RANK the product U V. Intended for rank analysis; forward never forms it. */
ATTN_API attn_status attn_rnn_recurrent_matrix(const attn_rnn *rnn, int64_t layer, int64_t direction, float *out);

/* Parameters, FLOPs and workspace bytes of attn_rnn_forward for this shape. FLOPs count the matrix
 * products (input projections and recurrence, multiply-add = 2), not the element-wise gate math. */
ATTN_API attn_status attn_rnn_cost(const attn_rnn *rnn, int64_t batch, int64_t seq_len, attn_cost *out);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_RNN_H */
