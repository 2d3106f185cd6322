/*
 * core.h: the private mechanics every family shares (never installed, never exported).
 * Errors, checked arithmetic, options reading, aligned allocation, workspaces, the parameter
 * registry, and the typed BLAS/LAPACK wrappers and element-wise kernels (the only place that
 * talks to BLAS/LAPACK, so every matmul can be counted, tested and swapped here).
 */
#ifndef ATTN_CORE_H
#define ATTN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/common.h"

#define ATTN__ALIGN 64

/* ---- errors (errors.c) -------------------------------------------------------------------- */

/* Formats the thread-local message (conventionally "function: what is wrong (values)") and
 * returns `status`, so validation reads `return attn__fail(ATTN_E_SHAPE, "...", ...);`. */
attn_status attn__fail(attn_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checked arithmetic (errors.c) -------------------------------------------------------- */

/* *out = a * b; false when a or b is negative or the product overflows int64. */
bool attn__mul(int64_t a, int64_t b, int64_t *out);
/* *out = a * b * c, same rules. */
bool attn__mul3(int64_t a, int64_t b, int64_t c, int64_t *out);
/* True when 0 <= v <= INT32_MAX: the index range of LP64 BLAS/LAPACK. */
bool attn__fits_blas_int(int64_t v);

/* ---- the aliasing contract of every forward (errors.c) ---------------------------------------- */

/* A caller's tensor: its name in messages, its first byte (NULL: not passed) and its size. */
typedef struct attn_buffer {
    const char *name;
    const void *data;
    size_t bytes;
} attn_buffer;

/* An output may overlap no input and no other output (inputs may overlap each other: self-attention
 * passes one tensor as query, key and value). Byte ranges are compared, not only pointers. Returns
 * ATTN_E_INVALID_ARG naming `fn` and both tensors otherwise. */
attn_status attn__check_aliasing(const char *fn, const attn_buffer *inputs, int n_inputs, const attn_buffer *outputs,
                                 int n_outputs);

/* ATTN_E_INVALID_ARG "fn: name must be in lo..hi (got v)" unless lo <= v <= hi. */
attn_status attn__check_option(const char *fn, const char *name, int64_t v, int64_t lo, int64_t hi);

/* ---- options structs (errors.c) ----------------------------------------------------------- */

/* Copies a caller's options struct into `dst` (which already holds the defaults), following the
 * struct_size protocol of docs/abi.md: sizes below `first_size` are rejected, bytes beyond
 * `known_size` must be zero (a newer caller asking for something this library does not know),
 * and the uint32_t flags at `flags_offset` must be 0. `fn` names the caller. */
/* The other direction, for attn_<x>_get_options: writes the first version's `first_size` bytes of
 * src into dst, and the fields appended since only when dst's struct_size already holds
 * `known_size` (the caller's struct has them: attn_<x>_options_init ran on it), so that a caller
 * built against an older header never has more bytes written than its struct has. dst's
 * struct_size is then the size written. */
void attn__options_write(void *dst, const void *src, size_t known_size, size_t first_size);
attn_status attn__options_read(const char *fn, void *dst, size_t known_size, size_t first_size, size_t flags_offset,
                               const void *src);

/* ---- memory (workspace.c) ----------------------------------------------------------------- */

void *attn__alloc(size_t bytes); /* ATTN__ALIGN-aligned, NULL on failure (also for 0 bytes) */
void *attn__calloc(size_t bytes);
void attn__free(void *p);

struct attn_workspace {
    void *data;
    size_t size;
};

/* The scratch one forward call given ws = NULL holds: the calling thread's workspace (then `busy`
 * points to its flag), or when that is busy a block of its own. Lives on the call's stack. */
typedef struct attn_ws_lease {
    attn_workspace own;
    bool *busy;
} attn_ws_lease;

/* Bump-allocation plan for one forward call: each take() reserves an aligned block and returns its
 * offset; `bytes` is then the total to reserve. The same plan function serves forward and cost, so
 * the reported workspace_bytes is by construction what forward uses. Every product and sum of sizes
 * is checked here, once for every family: a size beyond PTRDIFF_MAX sets `overflow` (offsets are
 * then meaningless), and forward and cost both reject such a shape with ATTN_E_SHAPE. */
typedef struct attn_ws_plan {
    size_t bytes;
    bool overflow;
} attn_ws_plan;
/* Reserves a * b * c elements of elem_size bytes each (all >= 0). */
size_t attn__plan_take(attn_ws_plan *plan, int64_t elem_size, int64_t a, int64_t b, int64_t c);
/* Reserves the whole of `inner` (a sub-plan laid out from offset 0) and inherits its overflow. */
size_t attn__plan_nest(attn_ws_plan *plan, attn_ws_plan inner);

/* Makes `ws` (or, when ws is NULL, the calling thread's workspace, or if that is busy the
 * lease's own block) hold at least `bytes`, and returns the base pointer in *base. Start from
 * `attn_ws_lease lease = {0}`; give it back with attn__workspace_release after the call, also when
 * the call failed after reserving. */
attn_status attn__workspace_reserve(const char *fn, attn_workspace *ws, attn_ws_lease *lease, size_t bytes,
                                    char **base);
void attn__workspace_release(attn_ws_lease *lease);

/* ---- parameter registry (params.c) -------------------------------------------------------- */

typedef enum attn_init_law {
    ATTN_INIT_UNIFORM = 0, /* U(-a, a) */
    ATTN_INIT_CONSTANT = 1, /* every element = a */
    ATTN_INIT_NORMAL = 2,   /* N(0, a^2) */
} attn_init_law;

/* `owner` (static storage) names the public function building the handle, e.g. "attn_rnn_create":
 * the registry's error messages name it, since that is the call the user made. */
attn_status attn__params_create(attn_params **out, const char *owner);
void attn__params_destroy(attn_params *p);
/* Declares a tensor (name copied; ndim 1..4; every extent >= 1) with its init law. Returns its
 * index in *index (may be NULL). Tensors are listed in declaration order. Only before finalize. */
attn_status attn__params_add(attn_params *p, const char *name, int64_t ndim, const int64_t *shape,
                             attn_init_law law, float a, int64_t *index);
/* An extra name accepted by attn_params_load (and find) for an existing tensor; never listed. */
attn_status attn__params_alias(attn_params *p, const char *alias, int64_t index);
/* Allocates one contiguous, aligned block for all tensors and runs attn_params_init(p, 0). */
attn_status attn__params_finalize(attn_params *p);
float *attn__params_data(attn_params *p, int64_t index);
const float *attn__params_cdata(const attn_params *p, int64_t index);
int64_t attn__params_total(const attn_params *p); /* sum of counts */

/* ---- BLAS / LAPACK (blas.c) --------------------------------------------------------------- */

/* Row-major C = alpha * op(A) * op(B) + beta * C, op(A) m-by-k, op(B) k-by-n. Callers validate
 * that every size and leading dimension fits attn__fits_blas_int. */
void attn__sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* Row-major y = alpha * op(A) * x + beta * y, A m-by-n (op(A) is n-by-m when trans_a), unit strides. */
void attn__sgemv(bool trans_a, int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
                 float beta, float *y);
/* Name, configuration and thread count of the BLAS in use. */
const char *attn__blas_config(void);
int attn__blas_threads(void);

/* (lapack.c) True when LAPACK's 32-bit indices can hold the SVD with singular vectors of a rows x
 * cols matrix and its scratch; only then may the three functions below be called. */
bool attn__pinv_supported(int64_t rows, int64_t cols);
/* Reserves in `plan` the scratch attn__pinv (or attn__svd_factors) needs for a rows x cols matrix. */
size_t attn__pinv_plan(attn_ws_plan *plan, int64_t rows, int64_t cols);
/* out (cols x rows, row-major, leading dimension ldo) = the Moore-Penrose pseudo-inverse of the
 * row-major rows x cols matrix a (lda), through an SVD in double (LAPACK dgesdd); singular values
 * at or below rtol * sigma_max count as zero. `scratch` is what attn__pinv_plan reserved. ATTN_E_NUMERICAL (message naming `fn`) when a has a non-finite entry or the SVD fails;
 * out is then unchanged. Sizes >= 1 and within attn__fits_blas_int. */
attn_status attn__pinv(const char *fn, int64_t rows, int64_t cols, const float *a, int64_t lda, float *out,
                       int64_t ldo, double rtol, void *scratch);
/* The best rank-`rank` approximation of the contiguous row-major rows x cols matrix a (Eckart-Young:
 * its truncated SVD, in double) as u [rows, rank] times v [rank, cols]: u = U_r S_r, v = V_r^T
 * (orthonormal rows). 1 <= rank <= min(rows, cols); the scratch and the errors of attn__pinv. */
attn_status attn__svd_factors(const char *fn, int64_t rows, int64_t cols, const float *a, int64_t rank, float *u,
                              float *v, void *scratch);

/* (lapack.c) True when a rows x cols matrix (sizes >= 1) is within what the singular-value SVD
 * below can hand LAPACK: rows * cols, every extent and dgesdd's `work` length fit its 32-bit
 * indices. Only then may the two functions below be called. */
bool attn__svd_values_supported(int64_t rows, int64_t cols);
/* Reserves in `plan` the scratch attn__svd_values needs for a rows x cols matrix: the double copy
 * (8 rows cols bytes), dgesdd's `work` (the length its own workspace query gives) and 8 min(rows,
 * cols) LAPACK ints, besides min(rows, cols) doubles. */
size_t attn__svd_values_plan(attn_ws_plan *plan, int64_t rows, int64_t cols);
/* sigma [min(rows, cols)] = the singular values, in decreasing order, of the contiguous row-major
 * rows x cols matrix a, computed in double by LAPACK dgesdd without singular vectors (jobz 'N').
 * `scratch` is what attn__svd_values_plan reserved. Every entry of a must be finite (the callers
 * check: dgesdd on NaN need not stop). ATTN_E_NUMERICAL (message naming `fn`) when the SVD fails;
 * sigma is then unchanged. */
attn_status attn__svd_values(const char *fn, int64_t rows, int64_t cols, const float *a, double *sigma,
                             void *scratch);

/* ---- element-wise kernels (kernels.c) ----------------------------------------------------- */
/* In place over n contiguous floats; vectorized, accurate to a few ulp against libm. */
void attn__sigmoid(float *x, int64_t n);
void attn__tanh(float *x, int64_t n);
void attn__relu(float *x, int64_t n);
/* y[i] += x[i] */
void attn__add(float *y, const float *x, int64_t n);
/* x[i] *= a */
void attn__scale(float *x, int64_t n, float a);
/* x[i] = x[i] (1 - w erase[i]) + w add[i] (an NTM write to one memory row); returns the sum of the
 * new x[i]^2. */
float attn__erase_add(float *x, const float *erase, const float *add, float w, int64_t n);
/* Largest element (-INFINITY for n = 0); NaN elements are skipped, so an all-NaN x gives
 * -INFINITY too: callers for whom that matters ask attn__has_nan on that rare path. */
float attn__max(const float *x, int64_t n);
/* True when some element is NaN. */
bool attn__has_nan(const float *x, int64_t n);
/* x[i] = exp(x[i] - shift) (exactly 0 below e^-87.3, so exp(-inf) = 0); returns the sum. */
float attn__exp_sum(float *x, int64_t n, float shift);
/* x[i] = x[i]^p for x[i] >= 0 and p >= 1 (as exp(p log x): 0 and denormals give exactly 0, NaN
 * stays NaN; a few ulp times p |log x| from powf); returns the sum. */
float attn__pow_sum(float *x, int64_t n, float p);
/* Max-subtracted softmax in place. mask: n bytes, nonzero = ignore (its entry becomes 0), or NULL.
 * A row whose every entry is masked becomes all zeros, never NaN; an unmasked NaN or +Inf makes the
 * whole row NaN (PyTorch's pattern). */
void attn__softmax(float *x, int64_t n, const uint8_t *mask);

/* LayerNorm over each of `rows` rows of `width` floats (x at leading dimension ldx, y at ldy; y may
 * be x): y = (x - mean) / sqrt(var + eps) * weight + bias with the biased variance, as
 * torch.nn.LayerNorm; weight and bias [width] both given, or both NULL for the normalization alone.
 * Mean and variance are accumulated in float over 16 lanes, in two passes (no cancellation). */
void attn__layer_norm(int64_t rows, int64_t width, const float *x, int64_t ldx, float *y, int64_t ldy,
                      const float *weight, const float *bias, float eps);
/* GELU with the exact normal CDF, x * Phi(x) = x/2 * erfc(-x/sqrt 2) (torch's approximate='none'),
 * in place over n floats; vectorized, within 4.2 ulp of the double-precision function wherever the
 * result is a normal float (measured over [-14, 10]; the negative tail too: erfc, not 1 + erf).
 * NaN stays NaN, +Inf stays +Inf, -Inf gives NaN (as PyTorch). */
void attn__gelu(float *x, int64_t n);

/* The LSTM cell of one batch row, shared by the RNN family and the memory RNN's controller:
 * gates [4n] holds the pre-activations in PyTorch's order i, f, g, o and is consumed; then
 * c' = sigmoid(f) c + sigmoid(i) tanh(g) in place of c [n], and h_out [n] = sigmoid(o) tanh(c')
 * (h_out may be the row the caller read h from: the gates are already computed). */
void attn__lstm_cell(int64_t n, float *gates, float *c, float *h_out);

/* ---- thread team (team.c) ----------------------------------------------------------------- */

/* Row work that runs between two BLAS calls (a softmax, a recurrent cell's gates) would run on the
 * calling thread alone while OpenBLAS's threads wait for the next GEMM. A team shares it with
 * helper threads that live for one forward call, never more than OpenBLAS may use, and sleep
 * during the GEMMs (see team.c). fn runs rows [first, end) of ctx's work; distinct ranges may run
 * at the same time on different threads. */
typedef void (*attn_rows_fn)(const void *ctx, int64_t first, int64_t end);

/* Lives on the stack of one call: ATTN__TEAM_INIT, then any number of attn__team_run, then
 * attn__team_stop. Not shared between calls or threads. */
typedef struct attn_team {
    int size;     /* threads including the caller; 1 = the caller alone */
    bool tried;   /* helpers were started (or failed to start) at the first shared run */
    struct attn_team_state *state;
} attn_team;
#define ATTN__TEAM_INIT {1, false, NULL}

/* Runs rows [0, rows) of ctx's work, claimed `chunk` rows at a time. With share (the caller judges
 * the work worth a wake-up) the team takes part, its helpers started at the first such run; else,
 * or when t is NULL, the caller runs every row in order. Returns when every row is done. */
void attn__team_run(attn_team *t, attn_rows_fn fn, const void *ctx, int64_t rows, int64_t chunk, bool share);
/* Ends the helpers; t is then ATTN__TEAM_INIT again. */
void attn__team_stop(attn_team *t);

/* ---- softmax attention of one head (attend.c) ----------------------------------------------- */

/* One (batch element, head) of softmax attention, o = softmax(q k^T + masks) v: q [tgt_len, dh]
 * already scaled (by 1/sqrt(dh) usually), k and v [src_len, dh], each row at its leading dimension
 * (a head's columns inside the rows it shares with the other heads need no copy). */
typedef struct attn_head {
    int64_t tgt_len, src_len, dh;
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv;
    const uint8_t *mask; /* [src_len], nonzero = ignore that key; or NULL */
    bool causal;         /* query i sees keys j <= i only */
} attn_head;

/* How attn__attend walks a head: its score block whole (MATERIALIZE), or tiles of keys with an
 * online softmax (STREAM, memory independent of src_len); AUTO materializes while the score block
 * fits 8 MiB. */
typedef enum attn_attend_mode {
    ATTN_ATTEND_AUTO = 0,
    ATTN_ATTEND_MATERIALIZE = 1,
    ATTN_ATTEND_STREAM = 2,
} attn_attend_mode;

/* The scratch layout of attn__attend for one head shape; byte offsets from its scratch. */
typedef struct attn_attend_plan {
    attn_ws_plan ws;
    bool streaming;
    int64_t rows, keys; /* block of query rows; keys per tile (all src_len when materializing) */
    size_t k_t, v;      /* the head's K^T [dh, src_len] and V [src_len, dh], packed */
    size_t scores;      /* rows x keys floats */
    size_t sums;        /* rows floats: softmax sums */
    size_t maxes;       /* rows floats: running maxima (streaming) */
} attn_attend_plan;

/* Plans the scratch of attn__attend for heads of this shape (sizes >= 1); the same plan serves
 * every head of that shape, one after the other. ws.overflow marks a shape too large to address. */
attn_attend_plan attn__attend_plan(int64_t tgt_len, int64_t src_len, int64_t dh, attn_attend_mode mode);
/* o [tgt_len, dh] (leading dimension ldo) = the head's attention output. A row whose every key is
 * masked gets zeros, never NaN; NaN and +Inf scores make their row NaN (PyTorch's pattern). The
 * softmax rows are shared with `team` (may be NULL) when large enough. */
void attn__attend(attn_team *team, const attn_head *h, const attn_attend_plan *plan, char *scratch, float *o,
                  int64_t ldo);
/* weights [tgt_len, src_len] = the head's softmax matrix (masked and causally hidden keys 0). */
void attn__attend_weights(attn_team *team, const attn_head *h, float *weights);
/* FLOPs of one head (multiply-add = 2): q k^T and p v over the (query, key) pairs causal leaves,
 * 4 dh per pair (causal: the triangle the math needs). A double: absurd shapes are caught as
 * overflow by the callers instead of wrapping. */
double attn__attend_flops(int64_t tgt_len, int64_t src_len, int64_t dh, bool causal);
/* A small head in one block, without packing K and V or a team (Linformer's blocks of k
 * projected keys): as attn__attend with `scores` scratch of tgt_len * src_len floats (afterwards it
 * holds the attention weights). */
void attn__attend_materialized(int64_t tgt_len, int64_t src_len, int64_t dh, const float *q, int64_t ldq,
                               const float *k, int64_t ldk, const float *v, int64_t ldv, const uint8_t *mask,
                               bool causal, float *scores, float *o, int64_t ldo);

#endif /* ATTN_CORE_H */
