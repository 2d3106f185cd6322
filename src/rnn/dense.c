/* DENSE recurrence: R(h) = W_hh h, W_hh (G*H, H) named weight_hh_l{l}[_reverse] as in PyTorch.
 * One GEMM per step over the whole batch: h W_hh^T (M = B, N = G*H, K = H). */
#include <string.h>

#include "rnn/rnn_internal.h"

static attn_status dense_declare(attn_rnn *rnn, int64_t layer, const char *suffix, float bound, rnn_tensors *t)
{
    const int64_t h = rnn->opt.hidden_size, shape[] = {rnn->gates * h, h};
    return attn__rnn_declare(rnn, &t->rec[0], bound, 2, shape, "weight_hh_l%lld%s", (long long)layer, suffix);
}

static int64_t dense_macs(const attn_rnn *rnn) { return rnn->gates * rnn->opt.hidden_size * rnn->opt.hidden_size; }

static int64_t dense_scratch(const attn_rnn *rnn)
{
    (void)rnn;
    return 0;
}

static void dense_apply(const attn_rnn *rnn, const rnn_tensors *t, attn_team *team, int64_t batch, const float *h,
                        int64_t ldh, float beta, float *acc, int64_t ldacc, float *scratch)
{
    (void)team, (void)scratch;
    const int64_t n = rnn->opt.hidden_size;
    attn__sgemm(false, true, batch, rnn->gates * n, n, 1.0f, h, ldh, attn__params_cdata(rnn->params, t->rec[0]), n,
                beta, acc, ldacc);
}

static void dense_matrix(const attn_rnn *rnn, const rnn_tensors *t, float *out)
{
    const int64_t h = rnn->opt.hidden_size;
    memcpy(out, attn__params_cdata(rnn->params, t->rec[0]), (size_t)(rnn->gates * h * h) * sizeof *out);
}

const rnn_recurrence attn__rnn_dense = {NULL, dense_declare, NULL, dense_macs, dense_scratch, dense_apply,
                                        dense_matrix};
