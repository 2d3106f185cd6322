/* Private to src/attention/: the attn_mha handle and the interface each kind (full, Linformer,
 * Nystrom) implements. mha.c owns everything the kinds share: options, parameters, the in- and
 * out-projections, validation, workspace planning and cost; a kind only turns projected Q, K, V
 * into the per-head attention output. */
#ifndef ATTN_MHA_INTERNAL_H
#define ATTN_MHA_INTERNAL_H

#include <string.h>

#include "attn/attention.h"
#include "core/core.h"

/* Indices into the params registry; -1 where absent. */
typedef struct mha_tensors {
    int64_t in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias;
    int64_t out_proj_weight, out_proj_bias;
    int64_t proj_e, proj_f; /* LINFORMER */
    int64_t res_conv;       /* NYSTROM with conv_kernel > 0: res_conv.weight (h, 1, conv_kernel, 1) */
} mha_tensors;

struct attn_mha {
    attn_mha_options opt; /* kdim and vdim resolved (never 0) */
    int64_t head_dim;     /* dh = E / h */
    attn_params *params;
    mha_tensors t;
};

/* One call's projected inputs, all [batch, len, E] row-major with head h in columns
 * h*dh .. (h+1)*dh - 1. q is already scaled by 1/sqrt(dh). k and v live in the workspace and a
 * kind may overwrite them (Linformer zeroes masked rows). */
typedef struct mha_problem {
    int64_t batch, tgt_len, src_len;
    const float *q;
    float *k, *v;
    const uint8_t *mask; /* [batch, src_len], nonzero = ignore, or NULL */
} mha_problem;

/* Zeroes the rows of x [rows, e] whose mask byte is nonzero (mask may be NULL): LINFORMER and
 * NYSTROM clear masked keys/values in the workspace copies p->k and p->v. */
static inline void attn__zero_masked_rows(int64_t rows, int64_t e, const uint8_t *mask, float *x)
{
    for (int64_t r = 0; mask && r < rows; r++)
        if (mask[r])
            memset(x + r * e, 0, (size_t)e * sizeof *x);
}

typedef struct mha_kind {
    /* Shape checks beyond the common ones (e.g. src_len <= max_seq_len); `fn` names the caller. */
    attn_status (*check)(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len);
    /* The scratch that attend (matrix = false) or matrix (matrix = true) uses, as a plan whose
     * overflow flag marks a shape too large to address. */
    attn_ws_plan (*scratch)(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix);
    /* FLOPs of attend, multiply-add = 2 (projections are counted by mha.c); a double so that absurd
     * shapes are caught as overflow instead of wrapping (exact below 2^53). */
    double (*flops)(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len);
    /* o [batch, tgt_len, E]: per-head attention output before the out-projection. */
    attn_status (*attend)(const attn_mha *m, const mha_problem *p, char *scratch, float *o);
    /* weights [batch, h, tgt_len, src_len]: the matrix that multiplies each head's V. */
    attn_status (*matrix)(const attn_mha *m, const mha_problem *p, char *scratch, float *weights);
} mha_kind;

extern const mha_kind attn__mha_full;
extern const mha_kind attn__mha_linformer;
extern const mha_kind attn__mha_nystrom;

#endif /* ATTN_MHA_INTERNAL_H */
