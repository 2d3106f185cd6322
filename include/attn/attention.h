/**
 * @file
 * attention.h: multi-head attention: full softmax attention (materialized or streaming), Linformer
 * and Nystrom approximations. torch.nn.MultiheadAttention semantics and state_dict names
 * (docs/attention.md).
 */
#ifndef ATTN_ATTENTION_H
#define ATTN_ATTENTION_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A multi-head attention layer (opaque handle): attn_mha_create makes one, attn_mha_destroy frees it. */
typedef struct attn_mha attn_mha;

/* attn_mha_options.kind */
#define ATTN_MHA_FULL 0      /**< softmax(Q K^T / sqrt(dh)) V                                    */
#define ATTN_MHA_LINFORMER 1 /**< keys and values projected along the sequence to proj_len rows   */
#define ATTN_MHA_NYSTROM 2   /**< num_landmarks segment means and a pseudo-inverse                */

/* attn_mha_options.memory_mode (FULL only) */
#define ATTN_MEMORY_AUTO 0        /**< MATERIALIZE while one score block fits the budget, else STREAMING */
#define ATTN_MEMORY_MATERIALIZE 1 /**< L x S scores per (batch, head): fastest, O(L*S) memory         */
#define ATTN_MEMORY_STREAMING 2   /**< tiles of keys with a running max and sum: O((L+S)*E) memory   */

/* attn_mha_options.sharing (LINFORMER only) */
#define ATTN_LINFORMER_HEADWISE 0 /**< one E and one F for all heads: proj_e, proj_f (k, max_seq_len) */
#define ATTN_LINFORMER_KV 1       /**< one E for keys and values: proj_e (k, max_seq_len)           */
#define ATTN_LINFORMER_NONE 2     /**< per head: proj_e, proj_f (num_heads, k, max_seq_len)         */

/* attn_mha_options.pinv (NYSTROM only) */
#define ATTN_PINV_NEWTON 0 /**< iterative Newton-Schulz pseudo-inverse, pinv_iterations steps */
#define ATTN_PINV_SVD 1    /**< exact Moore-Penrose pseudo-inverse through LAPACK            */

/** Options of attn_mha_create; attn_mha_options_init writes the defaults. */
typedef struct attn_mha_options {
    uint32_t struct_size;   /**< sizeof(attn_mha_options), written by attn_mha_options_init */
    int32_t kind;           /**< ATTN_MHA_*; default FULL */
    int32_t bias;           /**< 0 or 1; default 1: in_proj_bias and out_proj.bias */
    int32_t causal;         /**< 0 or 1; default 0. 1 masks key j > query i (FULL only) */
    int32_t memory_mode;    /**< FULL: ATTN_MEMORY_*; default AUTO */
    int64_t embed_dim;      /**< E > 0, divisible by num_heads; no default (0) */
    int64_t num_heads;      /**< h >= 1; default 1 */
    int64_t kdim;           /**< key feature size; 0 (default) = E */
    int64_t vdim;           /**< value feature size; 0 (default) = E */
    int64_t max_seq_len;    /**< LINFORMER: longest key/value sequence (columns of proj_e/proj_f) */
    int64_t proj_len;       /**< LINFORMER: k, rows of proj_e/proj_f */
    int32_t sharing;        /**< LINFORMER: ATTN_LINFORMER_*; default HEADWISE */
    int32_t pinv;           /**< NYSTROM: ATTN_PINV_*; default NEWTON */
    int64_t num_landmarks;  /**< NYSTROM: m >= 1; with pinv SVD at most 23169 (LAPACK's 32-bit indices) */
    int64_t pinv_iterations; /**< NYSTROM with NEWTON: default 6 */
    int64_t conv_kernel;    /**< NYSTROM: odd kernel of the residual depthwise convolution; 0 = none */
    uint32_t flags;         /**< reserved, must be 0 */
} attn_mha_options;

/** Writes the defaults and struct_size. ATTN_E_INVALID_ARG for NULL. */
ATTN_API attn_status attn_mha_options_init(attn_mha_options *options);

/** Creates an attention layer. *out is NULL on failure. Parameters are initialized with
 * attn_params_init(params, 0) (PyTorch's laws: xavier_uniform in-projections, zero biases). */
ATTN_API attn_status attn_mha_create(attn_mha **out, const attn_mha_options *options);
/** NULL is accepted and ignored. */
ATTN_API void attn_mha_destroy(attn_mha *mha);
/** The handle's tensors (torch.nn.MultiheadAttention's state_dict names plus proj_e/proj_f or
 * res_conv.weight; see docs/attention.md). NULL for a NULL handle. Owned by the handle. */
ATTN_API attn_params *attn_mha_params(attn_mha *mha);
/** The options the handle was created with (struct_size = this header's, kdim/vdim resolved). */
ATTN_API attn_status attn_mha_get_options(const attn_mha *mha, attn_mha_options *out);

/** Attention of `tgt_len` queries over `src_len` keys/values for each batch element.
 *   query [batch, tgt_len, E], key [batch, src_len, kdim], value [batch, src_len, vdim]
 *   key_padding_mask [batch, src_len] (nonzero = ignore that key) or NULL
 *   out [batch, tgt_len, E]
 * A query whose every key is masked gets zeros before the output projection (never NaN).
 * NaN and +-Inf propagate as in torch.nn.MultiheadAttention: a non-finite query row makes its
 * output row NaN, a non-finite key or value row every output row that attends to it (details per
 * kind, masked positions included, in docs/attention.md).
 * out may not overlap query, key, value or key_padding_mask (byte ranges are compared); query,
 * key and value may share memory (self-attention). Thread-safe on a const handle with one
 * workspace per thread (or NULL). Errors: ATTN_E_INVALID_ARG (NULL handle or tensor, out
 * overlapping an input), ATTN_E_SHAPE (sizes < 1, src_len > max_seq_len for LINFORMER,
 * num_landmarks > tgt_len or src_len for NYSTROM, tgt_len != src_len for NYSTROM with
 * conv_kernel > 0, sizes beyond the 32-bit BLAS range or whose FLOP count or workspace overflows;
 * attn_mha_cost rejects exactly the same shapes), ATTN_E_NOMEM, ATTN_E_NUMERICAL (NYSTROM with SVD
 * pinv: a non-finite A2 or a failed SVD). */
ATTN_API attn_status attn_mha_forward(const attn_mha *mha, attn_workspace *ws, int64_t batch, int64_t tgt_len,
                                      int64_t src_len, const float *query, const float *key, const float *value,
                                      const uint8_t *key_padding_mask, float *out);

/** The L x S matrix that multiplies each head's values V_h (after the in-projection), exact or as
 * the kind implies it: FULL softmax(Q K^T / sqrt(dh)) (+ masks); LINFORMER softmax(Q K~^T / sqrt(dh))
 * F[:, :S] with masked columns zero; NYSTROM A1 pinv(A2) A3 (the residual convolution is not part
 * of it). weights [batch, num_heads, tgt_len, src_len]. For analysis; forward never forms it for the
 * approximate kinds. Same arguments and errors as attn_mha_forward. */
ATTN_API attn_status attn_mha_attention_matrix(const attn_mha *mha, attn_workspace *ws, int64_t batch,
                                               int64_t tgt_len, int64_t src_len, const float *query,
                                               const float *key, const float *value,
                                               const uint8_t *key_padding_mask, float *weights);

/** Parameters, FLOPs (matrix products, multiply-add = 2) and workspace bytes of attn_mha_forward
 * for this shape; workspace_bytes equals what forward reserves. */
ATTN_API attn_status attn_mha_cost(const attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len,
                                   attn_cost *out);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_ATTENTION_H */
