/* The gate math of every cell (docs/rnn.md, "Equations"), for one batch row of one step. */
#include <string.h>

#include "rnn/rnn_internal.h"

/* h' = tanh(gates) or relu(gates) */
static void elman_step(int64_t n, bool relu, const float *gates, float *h_out)
{
    memcpy(h_out, gates, (size_t)n * sizeof *h_out);
    if (relu)
        attn__relu(h_out, n);
    else
        attn__tanh(h_out, n);
}

/* r, z = sigmoid; n = tanh(W_in x + b_in + r (R_n(h) + b_hn)); h' = (1 - z) n + z h */
static void gru_step(int64_t n, const float *bias_hn, float *gates, const float *proj, const float *h_prev,
                     float *h_out)
{
    attn__add(gates, proj, 2 * n);
    attn__sigmoid(gates, 2 * n);
    const float *reset = gates, *update = gates + n;
    float *cand = gates + 2 * n;
    if (bias_hn)
        for (int64_t j = 0; j < n; j++)
            cand[j] = proj[2 * n + j] + reset[j] * (cand[j] + bias_hn[j]);
    else
        for (int64_t j = 0; j < n; j++)
            cand[j] = proj[2 * n + j] + reset[j] * cand[j];
    attn__tanh(cand, n);
    if (h_prev)
        for (int64_t j = 0; j < n; j++)
            h_out[j] = cand[j] + update[j] * (h_prev[j] - cand[j]);
    else
        for (int64_t j = 0; j < n; j++)
            h_out[j] = cand[j] - update[j] * cand[j];
}

void attn__rnn_cells(const void *ctx, int64_t first, int64_t end)
{
    const rnn_cell_rows *r = ctx;
    const int64_t h = r->hidden;
    for (int64_t b = first; b < end; b++) {
        float *gates = r->gates + b * r->ld_gates, *h_out = r->h_out + b * r->ld_out;
        switch (r->cell) {
        case ATTN_CELL_RNN_TANH: elman_step(h, false, gates, h_out); break;
        case ATTN_CELL_RNN_RELU: elman_step(h, true, gates, h_out); break;
        case ATTN_CELL_LSTM: attn__lstm_cell(h, gates, r->c + b * h, h_out); break;
        default:
            gru_step(h, r->bias_hn, gates, r->proj + b * r->ld_proj, r->h_prev ? r->h_prev + b * r->ld_prev : NULL,
                     h_out);
            break;
        }
    }
}
