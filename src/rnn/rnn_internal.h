/* Private to src/rnn/: the attn_rnn handle, the interface each recurrence (dense, low-rank,
 * Kronecker) implements, and the cells' gate math. rnn.c owns everything the recurrences share:
 * options, parameters, validation, workspace planning, cost and the per-step loop; a recurrence
 * only declares its tensors and turns a batch of states h into R(h). cells.c holds the gate
 * equations of every cell, once. */
#ifndef ATTN_RNN_INTERNAL_H
#define ATTN_RNN_INTERNAL_H

#include "attn/rnn.h"
#include "core/core.h"

/* Indices into the params registry of one layer and direction; -1 where absent. `rec` holds the
 * recurrence's own tensors: weight_hh (DENSE), U and V (LOW_RANK), the factors (KRONECKER). */
typedef struct rnn_tensors {
    int64_t w_ih, b_ih, b_hh;
    int64_t rec[ATTN_RNN_MAX_FACTORS_ALL];
} rnn_tensors;

/* KRONECKER: p_f, from factor_sizes or more_factor_sizes. */
static inline int64_t attn__rnn_factor(const attn_rnn_options *o, int64_t f)
{
    return f < ATTN_RNN_MAX_FACTORS ? o->factor_sizes[f] : o->more_factor_sizes[f - ATTN_RNN_MAX_FACTORS];
}

typedef struct rnn_recurrence rnn_recurrence;

struct attn_rnn {
    attn_rnn_options opt;
    int64_t gates; /* G: 1 Elman, 4 LSTM, 3 GRU */
    int64_t dirs;  /* D: 1 or 2 */
    attn_params *params;
    rnn_tensors *tensors; /* [num_layers * dirs] */
    const rnn_recurrence *rec;
};

/* One parameterization of R(h), the (G*H)-by-H recurrent map. */
struct rnn_recurrence {
    /* Checks the options this recurrence reads (rank, factor sizes); `fn` names the caller. NULL: none. */
    attn_status (*validate)(const char *fn, const attn_rnn_options *o);
    /* Declares its tensors of one layer and direction into t->rec, in state_dict order; `suffix` is
     * "" or "_reverse". `bound` is PyTorch's U(-1/sqrt(H), 1/sqrt(H)) bound. */
    attn_status (*declare)(attn_rnn *rnn, int64_t layer, const char *suffix, float bound, rnn_tensors *t);
    /* Largest batch whose BLAS extents fit 32 bits, beyond the checks rnn.c makes for every
     * recurrence; NULL: no further limit. */
    int64_t (*max_batch)(const attn_rnn *rnn);
    /* Multiply-adds of one R(h) per batch row. */
    int64_t (*macs)(const attn_rnn *rnn);
    /* Scratch floats of one apply per batch row (0: none). */
    int64_t (*scratch)(const attn_rnn *rnn);
    /* acc[b, 0 .. G*H) = beta * acc[b, .] + R(h[b, .]) for b < batch; rows of h at stride ldh, of acc
     * at ldacc; scratch holds batch * scratch() floats. One BLAS call or a few over the whole batch;
     * products too small for BLAS's threads may be shared with `team`. */
    void (*apply)(const attn_rnn *rnn, const rnn_tensors *t, attn_team *team, int64_t batch, const float *h,
                  int64_t ldh, float beta, float *acc, int64_t ldacc, float *scratch);
    /* out [G*H, H]: the effective recurrent matrix, gate blocks in PyTorch's row order. */
    void (*matrix)(const attn_rnn *rnn, const rnn_tensors *t, float *out);
};

extern const rnn_recurrence attn__rnn_dense;
extern const rnn_recurrence attn__rnn_low_rank;
extern const rnn_recurrence attn__rnn_kronecker;

/* Declares one tensor named by the printf-style format with ATTN_INIT_UNIFORM(-bound, bound);
 * its registry index goes to *index. */
attn_status attn__rnn_declare(attn_rnn *rnn, int64_t *index, float bound, int64_t ndim, const int64_t *shape,
                              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- cells (cells.c) ------------------------------------------------------------------------ *
 * One step's cell update of batch rows. Elman and LSTM: `gates` holds W_ih x + b + R(h) (the
 * recurrent product accumulated into the step's input projection). GRU keeps the two apart, since
 * R_n(h) must be scaled by r before meeting W_in x: `gates` holds R(h) and `proj` W_ih x + b. */
typedef struct rnn_cell_rows {
    int32_t cell; /* ATTN_CELL_* */
    int64_t hidden;
    const float *bias_hn; /* GRU's b_hn, or NULL (the other biases are folded into the projection) */
    float *gates;         /* row b at gates + b * ld_gates */
    int64_t ld_gates;
    const float *proj; /* GRU: W_ih x of row b at proj + b * ld_proj */
    int64_t ld_proj;
    float *c;            /* LSTM: row b at c + b * hidden */
    const float *h_prev; /* NULL for a zero state */
    int64_t ld_prev;
    float *h_out;
    int64_t ld_out;
} rnn_cell_rows;

/* An attn_rows_fn over an rnn_cell_rows: batch rows [first, end) of a step; every row reads and
 * writes its own rows only, so any thread of a team may run any range. */
void attn__rnn_cells(const void *ctx, int64_t first, int64_t end);

#endif /* ATTN_RNN_INTERNAL_H */
