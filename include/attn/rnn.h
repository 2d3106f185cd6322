/**
 * @file
 * rnn.h: recurrent networks (Elman tanh/relu, LSTM, GRU) with a dense, low-rank or
 * Kronecker-factored recurrence. PyTorch semantics and state_dict tensor names (docs/rnn.md).
 */
#ifndef ATTN_RNN_H
#define ATTN_RNN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A recurrent network (opaque handle): attn_rnn_create makes one, attn_rnn_destroy frees it. */
typedef struct attn_rnn attn_rnn;

/* attn_rnn_options.cell */
#define ATTN_CELL_RNN_TANH 0 /**< h' = tanh(W_ih x + b_ih + R(h) + b_hh)                     */
#define ATTN_CELL_RNN_RELU 1 /**< h' = relu(...)                                              */
#define ATTN_CELL_LSTM 2     /**< gates i, f, g, o (PyTorch row order)                        */
#define ATTN_CELL_GRU 3      /**< gates r, z, n (PyTorch row order)                           */

/* attn_rnn_options.recurrence: how R(h), the (G*H)-by-H recurrent map, is parameterized. */
#define ATTN_RECURRENCE_DENSE 0     /**< R(h) = W_hh h                                        */
#define ATTN_RECURRENCE_LOW_RANK 1  /**< R(h) = U (V h), U (G*H, rank), V (rank, H)           */
#define ATTN_RECURRENCE_KRONECKER 2 /**< per gate g, W_g = K_{g,0} (x) K_{g,1} (x) ... (x) K_{g,F-1}  */

/** KRONECKER factors: the first ATTN_RNN_MAX_FACTORS sizes go in factor_sizes (libattn 1.0), the
 * rest, up to ATTN_RNN_MAX_FACTORS_ALL in all, in more_factor_sizes (appended in libattn 1.2):
 * enough for 2 x 2 factors of any hidden size. */
#define ATTN_RNN_MAX_FACTORS 8
#define ATTN_RNN_MAX_FACTORS_ALL 32 /**< factors in all: factor_sizes and more_factor_sizes */

/** Options of attn_rnn_create; attn_rnn_options_init writes the defaults. */
typedef struct attn_rnn_options {
    uint32_t struct_size; /**< sizeof(attn_rnn_options), written by attn_rnn_options_init */
    int32_t cell;         /**< ATTN_CELL_*; default ATTN_CELL_LSTM */
    int32_t recurrence;   /**< ATTN_RECURRENCE_*; default DENSE */
    int32_t bidirectional; /**< 0 or 1; default 0 */
    int32_t bias;          /**< 0 or 1; default 1 (b_ih and b_hh present) */
    int64_t input_size;    /**< I > 0; no default (0) */
    int64_t hidden_size;   /**< H > 0; no default (0) */
    int64_t num_layers;    /**< L >= 1; default 1 */
    int64_t rank;          /**< LOW_RANK only: 1 <= rank <= H */
    int64_t num_factors;   /**< KRONECKER only: F in 1..ATTN_RNN_MAX_FACTORS_ALL */
    int64_t factor_sizes[ATTN_RNN_MAX_FACTORS]; /**< KRONECKER only: p_f >= 1 for f < F, product = H;
                                                     entries from F on must be 0 */
    uint32_t flags;        /**< reserved, must be 0 */
    /* libattn 1.2 */
    int64_t more_factor_sizes[ATTN_RNN_MAX_FACTORS_ALL - ATTN_RNN_MAX_FACTORS]; /**< KRONECKER only:
                                   p_f for f = 8 .. F-1 at index f - 8; entries from F on must be 0 */
} attn_rnn_options;

/** Writes the defaults and struct_size. Returns ATTN_E_INVALID_ARG for NULL. */
ATTN_API attn_status attn_rnn_options_init(attn_rnn_options *options);

/** Creates a recurrent network. *out is NULL on failure. Parameters are initialized with
 * attn_params_init(params, 0) so a new handle is usable at once; set or load real weights.
 * Init laws (attn_params_init): every tensor U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch, except the
 * LOW_RANK factors (U ~ U(-1/sqrt(rank), 1/sqrt(rank))) and the KRONECKER factors
 * weight_hh_l{l}_kron{f} (G, p_f, p_f): every entry U(-a, a) with a = sqrt(3) * (3H)^(-1/(2F)),
 * which gives the entries of each gate's product W_g the variance 1/(3H) of PyTorch's dense law.
 * Errors: ATTN_E_INVALID_ARG naming the option (for KRONECKER: num_factors outside
 * 1..ATTN_RNN_MAX_FACTORS, a factor_sizes[f] < 1, a nonzero entry beyond num_factors, a product
 * that is not hidden_size or overflows), ATTN_E_NOMEM. */
ATTN_API attn_status attn_rnn_create(attn_rnn **out, const attn_rnn_options *options);
/** NULL is accepted and ignored. */
ATTN_API void attn_rnn_destroy(attn_rnn *rnn);
/** The handle's tensors (names as torch.nn.RNN/LSTM/GRU's state_dict; see docs/rnn.md).
 * NULL for a NULL handle. Owned by the handle. */
ATTN_API attn_params *attn_rnn_params(attn_rnn *rnn);
/** The options the handle was created with. The fields of libattn 1.0 are always written; those
 * appended since (more_factor_sizes) only when out->struct_size already holds this header's size
 * (call attn_rnn_options_init(out) first), so that a caller built against an older header never
 * gets more bytes than its struct has. out->struct_size is then the size written. */
ATTN_API attn_status attn_rnn_get_options(const attn_rnn *rnn, attn_rnn_options *out);

/** Runs the network over a batch of sequences.
 *   x   [batch, seq_len, input_size]
 *   h0  [num_layers * D, batch, hidden_size] initial hidden state, or NULL for zeros (D = 2 if
 *       bidirectional, else 1)
 *   c0  same shape, LSTM only (must be NULL for other cells), or NULL for zeros
 *   y   [batch, seq_len, D * hidden_size] output of the last layer (both directions concatenated)
 *   h_n [num_layers * D, batch, hidden_size] final hidden states, or NULL if not wanted
 *   c_n same, LSTM only, or NULL
 * No output may overlap an input or another output (byte ranges are compared; inputs may share
 * memory). Thread-safe on a const handle as long as each thread uses its own workspace (or NULL:
 * the calling thread's workspace, which the library keeps; see attn_thread_workspace_release). Errors: ATTN_E_INVALID_ARG (NULL
 * handle, x or y; c0/c_n for a non-LSTM cell; overlapping outputs), ATTN_E_SHAPE (batch or seq_len
 * < 1, sizes beyond the 32-bit index range of BLAS -- for KRONECKER also batch * hidden_size --,
 * or whose FLOP count or workspace overflows;
 * attn_rnn_cost rejects exactly the same shapes), ATTN_E_NOMEM. NaN and Inf in the inputs are not
 * rejected: they propagate through the gates as in PyTorch. */
ATTN_API attn_status attn_rnn_forward(const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                                      const float *x, const float *h0, const float *c0, float *y, float *h_n,
                                      float *c_n);

/** (Added in 1.1.) Runs the network over a batch of variable-length sequences, as PyTorch's
 * pack_padded_sequence -> module -> pad_packed_sequence (enforce_sorted=False, batch_first=True):
 * sequence b has lengths[b] valid steps, 1 <= lengths[b] <= seq_len, in any order. The tensors are
 * those of attn_rnn_forward.
 * Inputs x[b, t] for t >= lengths[b] are never read into a state (they may hold anything, NaN
 * included); y[b, t] for t >= lengths[b] is 0; h_n/c_n hold each sequence's state after its own last
 * step (lengths[b] - 1 forward; step 0 for a reverse direction, which starts at lengths[b] - 1).
 * With every length equal to seq_len the results equal attn_rnn_forward's bit for bit. Uses the
 * workspace attn_rnn_cost reports for (batch, seq_len). Same thread rule and aliasing rule as
 * attn_rnn_forward (lengths counts as an input). Errors: those of attn_rnn_forward, and
 * ATTN_E_INVALID_ARG for a NULL lengths, ATTN_E_SHAPE naming lengths[b] for a length outside
 * 1..seq_len. */
ATTN_API attn_status attn_rnn_forward_lengths(const attn_rnn *rnn, attn_workspace *ws, int64_t batch,
                                              int64_t seq_len, const int64_t *lengths, const float *x,
                                              const float *h0, const float *c0, float *y, float *h_n, float *c_n);

/** Materializes the effective recurrent matrix of one layer and direction (0 forward, 1 reverse):
 * out [G * hidden_size, hidden_size], gate blocks in PyTorch's row order. For DENSE it is weight_hh,
 * for LOW_RANK the product U V, for KRONECKER gate block g is K_{g,0} (x) ... (x) K_{g,F-1}.
 * Intended for rank analysis; forward never forms it. */
ATTN_API attn_status attn_rnn_recurrent_matrix(const attn_rnn *rnn, int64_t layer, int64_t direction, float *out);

/** Parameters, FLOPs and workspace bytes of attn_rnn_forward for this shape. FLOPs count the matrix
 * products (input projections and recurrence, multiply-add = 2), not the element-wise gate math;
 * the recurrence costs 2*B*G*H*H per step (DENSE), 2*B*(r*H + G*H*r) (LOW_RANK) or
 * 2*B*G*H*sum(p_f) (KRONECKER). */
ATTN_API attn_status attn_rnn_cost(const attn_rnn *rnn, int64_t batch, int64_t seq_len, attn_cost *out);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_RNN_H */
