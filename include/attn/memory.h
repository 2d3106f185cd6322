/**
 * @file
 * memory.h: the memory-network RNN: a Neural Turing Machine with an LSTM controller, the
 * EncapsulatedNTM of loudinthecloud/pytorch-ntm with its semantics and state_dict tensor names
 * (docs/memory.md), with dense addressing or a sparse (top-k) variant for large memories.
 */
#ifndef ATTN_MEMORY_H
#define ATTN_MEMORY_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A memory-network RNN (opaque handle): attn_memrnn_create makes one, attn_memrnn_destroy frees it. */
typedef struct attn_memrnn attn_memrnn;

/* attn_memrnn_options.addressing (not to be confused with attention.h's ATTN_MEMORY_AUTO,
 * _MATERIALIZE and _STREAMING, the values of attn_mha_options.memory_mode). */
#define ATTN_MEMORY_DENSE 0  /**< every head reads and writes all N slots with its weighting        */
#define ATTN_MEMORY_SPARSE 1 /**< each head keeps its top_k largest weights (renormalized); reads
                                  and writes touch only those slots                                 */

/** Options of attn_memrnn_create; attn_memrnn_options_init writes the defaults. */
typedef struct attn_memrnn_options {
    uint32_t struct_size;    /**< sizeof(attn_memrnn_options), written by attn_memrnn_options_init */
    int64_t input_size;      /**< external input features (> 0); no default (0) */
    int64_t output_size;     /**< external output features (> 0); no default (0) */
    int64_t controller_size; /**< C: hidden size of the LSTM controller (> 0); no default (0) */
    int64_t controller_layers; /**< L, 1..65536; default 1 */
    int64_t num_heads;       /**< R: pairs of (read head, write head), 1..65536; default 1 */
    int64_t memory_slots;    /**< N: rows of the memory (> 0); no default (0) */
    int64_t memory_width;    /**< W: columns of the memory (> 0); no default (0) */
    int32_t addressing;      /**< ATTN_MEMORY_DENSE or ATTN_MEMORY_SPARSE; default DENSE */
    int64_t top_k;           /**< SPARSE: slots kept per head, >= 1 (>= N equals DENSE); ignored by
                                  DENSE (must be >= 0); default 0 */
    uint32_t flags;          /**< reserved, must be 0 */
} attn_memrnn_options;

/** Writes the defaults and struct_size. ATTN_E_INVALID_ARG for NULL. */
ATTN_API attn_status attn_memrnn_options_init(attn_memrnn_options *options);

/** Creates a memory-network RNN. *out is NULL on failure. Parameters are initialized with
 * attn_params_init(params, 0) following pytorch-ntm's reset_parameters laws (docs/memory.md), so a
 * new handle is usable at once; set or load real weights. Thread-safe (it only builds the new
 * handle). Errors: ATTN_E_INVALID_ARG (NULL out or options; a size < 1 or above INT32_MAX / 8,
 * layers or heads above 65536; addressing unknown; top_k < 1 for SPARSE or < 0; nonzero flags;
 * struct_size smaller than the first version's), ATTN_E_UNSUPPORTED (a newer struct_size with
 * unknown fields set), ATTN_E_SHAPE (sizes whose products overflow or exceed BLAS's 32-bit
 * indices), ATTN_E_NOMEM. */
ATTN_API attn_status attn_memrnn_create(attn_memrnn **out, const attn_memrnn_options *options);
/** NULL is accepted and ignored. */
ATTN_API void attn_memrnn_destroy(attn_memrnn *memrnn);
/** The handle's tensors, named as EncapsulatedNTM's state_dict (docs/memory.md); loading also accepts
 * the aliases PyTorch's state_dict repeats for the memory bias (ntm.memory.mem_bias,
 * ntm.heads.{j}.memory.mem_bias). NULL for a NULL handle. Owned by the handle. */
ATTN_API attn_params *attn_memrnn_params(attn_memrnn *memrnn);
/** The options the handle was created with (struct_size = this header's). ATTN_E_INVALID_ARG for
 * NULL arguments. */
ATTN_API attn_status attn_memrnn_get_options(const attn_memrnn *memrnn, attn_memrnn_options *out);

/** Runs the machine over a batch of sequences, each starting from the learned initial state (memory =
 * mem_bias, reads = read{i}_bias, head weightings 0, controller state lstm_h_bias/lstm_c_bias).
 *   x            [batch, seq_len, input_size]
 *   y            [batch, seq_len, output_size]  sigmoid outputs
 *   read_weights [batch, seq_len, num_heads, memory_slots] each read head's weighting, or NULL
 *   memory_out   [batch, memory_slots, memory_width] the memory after the last step, or NULL
 * No output may overlap an input or another output (byte ranges are compared). Thread-safe on a
 * const handle as long as each thread uses its own workspace (or NULL: the calling thread's
 * workspace, which the library keeps; see attn_thread_workspace_release). Errors: ATTN_E_INVALID_ARG (NULL handle, x or y; overlapping
 * outputs), ATTN_E_SHAPE (batch or seq_len < 1, tensors beyond the 32-bit index range of BLAS, or
 * whose FLOP count, byte size or workspace overflows; attn_memrnn_cost rejects exactly the same
 * shapes), ATTN_E_NOMEM. NaN and Inf in x are not rejected; they propagate. */
ATTN_API attn_status attn_memrnn_forward(const attn_memrnn *memrnn, attn_workspace *ws, int64_t batch,
                                         int64_t seq_len, const float *x, float *y, float *read_weights,
                                         float *memory_out);

/** Parameters, FLOPs and workspace bytes of attn_memrnn_forward for this shape. FLOPs count the
 * products (controller, head and output projections, similarities, reads and writes; multiply-add
 * = 2), not the element-wise addressing math (docs/memory.md gives the formula). workspace_bytes is
 * exactly what forward reserves. Errors as forward's shape errors; ATTN_E_INVALID_ARG for NULL out. */
ATTN_API attn_status attn_memrnn_cost(const attn_memrnn *memrnn, int64_t batch, int64_t seq_len, attn_cost *out);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_MEMORY_H */
