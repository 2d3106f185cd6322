/**
 * @file
 * perceiver.h: the Perceiver (Jaegle et al. 2021): the inputs only cross-attend into a small latent
 * array, so the cost grows linearly with the number of input positions. The structure, options and
 * state_dict names of lucidrains/perceiver-pytorch's Perceiver, so its checkpoints load unchanged
 * (docs/perceiver.md).
 */
#ifndef ATTN_PERCEIVER_H
#define ATTN_PERCEIVER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A Perceiver (opaque handle): attn_perceiver_create makes one, attn_perceiver_destroy frees it. */
typedef struct attn_perceiver attn_perceiver;

/** Options of attn_perceiver_create; attn_perceiver_options_init writes the defaults. */
typedef struct attn_perceiver_options {
    uint32_t struct_size;        /**< sizeof(attn_perceiver_options), written by attn_perceiver_options_init */
    int64_t input_channels;      /**< C: data channels per input position (> 0); default 3 */
    int64_t input_axis;          /**< spatial axes of the input, 1..3; default 2 */
    int64_t num_freq_bands;      /**< K: Fourier bands per axis (> 0 with fourier_encode, else ignored but
                                      >= 0); no default (0) */
    double max_freq;             /**< the bands' frequencies are linspace(1, max_freq / 2, K) (finite, > 0
                                      with fourier_encode, else ignored); no default (0) */
    int32_t fourier_encode;      /**< 0 or 1; default 1: append the position features to the data */
    int64_t depth;               /**< layers (>= 1); no default (0) */
    int64_t num_latents;         /**< M: latent array rows (> 0); default 512 */
    int64_t latent_dim;          /**< D: latent width (> 0); default 512 */
    int64_t cross_heads;         /**< heads of the cross-attention (>= 1); default 1 */
    int64_t cross_dim_head;      /**< their width (>= 1); default 64 */
    int64_t latent_heads;        /**< heads of the latent self-attention (>= 1); default 8 */
    int64_t latent_dim_head;     /**< their width (>= 1); default 64 */
    int64_t self_per_cross_attn; /**< latent self-attention blocks per layer (>= 0); default 1 */
    int32_t weight_tie_layers;   /**< 0 or 1; default 0. 1: layers >= 1 share one set of weights */
    int64_t num_classes;         /**< logits of the classification head (mean over latents, LayerNorm,
                                      Linear); 0 (default): no head, the latents are the output */
    uint32_t flags;              /**< reserved, must be 0 */
} attn_perceiver_options;

/** Writes the defaults and struct_size. ATTN_E_INVALID_ARG for NULL. */
ATTN_API attn_status attn_perceiver_options_init(attn_perceiver_options *options);

/** Creates a Perceiver. *out is NULL on failure. Parameters are initialized with
 * attn_params_init(params, 0) (PyTorch's default laws, as lucidrains' module gets them: latents
 * N(0, 1), nn.Linear weights and biases U(+-1/sqrt(fan_in)), LayerNorm weight 1 and bias 0; see
 * docs/perceiver.md). Errors: ATTN_E_INVALID_ARG (NULL out or options, a field out of range, named
 * in the message: sizes < 1 or beyond their limits (2^31 / 8; depth and self_per_cross_attn
 * 1024), input_axis outside 1..3, num_freq_bands < 1 or max_freq not finite and > 0 with
 * fourier_encode, flags or a 0/1 field with another value, struct_size smaller than the first
 * version's), ATTN_E_UNSUPPORTED (a newer caller's struct with unknown fields set), ATTN_E_SHAPE
 * (2 x heads x dim_head beyond the 32-bit BLAS range), ATTN_E_NOMEM. */
ATTN_API attn_status attn_perceiver_create(attn_perceiver **out, const attn_perceiver_options *options);
/** NULL is accepted and ignored. */
ATTN_API void attn_perceiver_destroy(attn_perceiver *perceiver);
/** The handle's tensors (lucidrains' state_dict names; docs/perceiver.md). NULL for a NULL handle.
 * Owned by the handle. With weight_tie_layers, layers >= 1 share one set of tensors, listed once as
 * layers.1.*; find, set, get and load also accept the layers.{i >= 2}.* names of PyTorch's
 * state_dict for them. */
ATTN_API attn_params *attn_perceiver_params(attn_perceiver *perceiver);
/** The options the handle was created with (struct_size = this header's). ATTN_E_INVALID_ARG for
 * NULL. */
ATTN_API attn_status attn_perceiver_get_options(const attn_perceiver *perceiver, attn_perceiver_options *out);

/** One forward pass over a batch.
 *   axis_sizes [input_axis]: the size of each spatial axis (N = their product input positions)
 *   data [batch, axis_sizes..., input_channels] (spatial axes flattened row-major)
 *   mask [batch, N] (nonzero = that input position is ignored by the cross-attention) or NULL
 *   out  [batch, num_classes], or [batch, num_latents, latent_dim] when num_classes = 0
 * The mask is libattn's convention, the opposite of lucidrains' boolean "keep" mask (pass
 * ~mask). Masked positions get lucidrains' masked_fill(-FLT_MAX) semantics: a batch element whose
 * every position is masked attends uniformly over all N positions, as in PyTorch (not zeros).
 * A NaN or Inf in a batch element's data (masked or not) makes that element's output NaN and
 * leaves the other elements unchanged.
 * out may not overlap data, axis_sizes or mask (byte ranges are compared). Thread-safe on a const
 * handle with one workspace per thread (or NULL). Errors: ATTN_E_INVALID_ARG (NULL handle,
 * axis_sizes, data or out; out overlapping an input), ATTN_E_SHAPE (batch or an axis size < 1, an
 * axis product, batch x N rows or tensor sizes beyond int64 or the 32-bit BLAS range, a FLOP count
 * or workspace that overflows; attn_perceiver_cost rejects exactly the same shapes), ATTN_E_NOMEM. */
ATTN_API attn_status attn_perceiver_forward(const attn_perceiver *perceiver, attn_workspace *ws, int64_t batch,
                                            const int64_t *axis_sizes, const float *data, const uint8_t *mask,
                                            float *out);

/** Parameters, FLOPs (matrix products, multiply-add = 2) and workspace bytes of
 * attn_perceiver_forward for this input shape (docs/perceiver.md gives the formulas);
 * workspace_bytes equals what forward reserves. Rejects exactly the shapes forward rejects, with
 * the same errors; ATTN_E_INVALID_ARG for a NULL out. */
ATTN_API attn_status attn_perceiver_cost(const attn_perceiver *perceiver, int64_t batch, const int64_t *axis_sizes,
                                         attn_cost *out);

#ifdef __cplusplus
}
#endif

#endif /* ATTN_PERCEIVER_H */
