/* LOW_RANK recurrence: R(h) = U (V h), U (G*H, r) named weight_hh_l{l}_u[_reverse], V (r, H) named
 * weight_hh_l{l}_v[_reverse]. Two skinny GEMMs per step over the whole batch, (h V^T) U^T; U V is
 * never formed. */
#include <math.h>

#include "rnn/rnn_internal.h"

static attn_status low_rank_validate(const char *fn, const attn_rnn_options *o)
{
    if (o->rank < 1 || o->rank > o->hidden_size)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: rank must be in 1..hidden_size %lld for LOW_RANK (got %lld)", fn,
                          (long long)o->hidden_size, (long long)o->rank);
    return ATTN_OK;
}

/* U and V follow nn.Linear's law (bound 1/sqrt(fan_in)), as if V and U were two stacked layers. */
static attn_status low_rank_declare(attn_rnn *rnn, int64_t layer, const char *suffix, float bound, rnn_tensors *t)
{
    const int64_t h = rnn->opt.hidden_size, r = rnn->opt.rank;
    const int64_t u_shape[] = {rnn->gates * h, r}, v_shape[] = {r, h};
    attn_status st = attn__rnn_declare(rnn, &t->rec[0], 1.0f / sqrtf((float)r), 2, u_shape, "weight_hh_l%lld_u%s",
                                       (long long)layer, suffix);
    if (st)
        return st;
    return attn__rnn_declare(rnn, &t->rec[1], bound, 2, v_shape, "weight_hh_l%lld_v%s", (long long)layer, suffix);
}

static int64_t low_rank_macs(const attn_rnn *rnn)
{
    return rnn->opt.rank * rnn->opt.hidden_size + rnn->gates * rnn->opt.hidden_size * rnn->opt.rank;
}

/* V h of one step: rank floats per batch row. */
static int64_t low_rank_scratch(const attn_rnn *rnn) { return rnn->opt.rank; }

static void low_rank_apply(const attn_rnn *rnn, const rnn_tensors *t, attn_team *team, int64_t batch,
                           const float *h, int64_t ldh, float beta, float *acc, int64_t ldacc, float *scratch)
{
    (void)team;
    const int64_t n = rnn->opt.hidden_size, r = rnn->opt.rank;
    attn__sgemm(false, true, batch, r, n, 1.0f, h, ldh, attn__params_cdata(rnn->params, t->rec[1]), n, 0.0f, scratch,
                r);
    attn__sgemm(false, true, batch, rnn->gates * n, r, 1.0f, scratch, r, attn__params_cdata(rnn->params, t->rec[0]),
                r, beta, acc, ldacc);
}

static void low_rank_matrix(const attn_rnn *rnn, const rnn_tensors *t, float *out)
{
    const int64_t h = rnn->opt.hidden_size, r = rnn->opt.rank;
    attn__sgemm(false, false, rnn->gates * h, h, r, 1.0f, attn__params_cdata(rnn->params, t->rec[0]), r,
                attn__params_cdata(rnn->params, t->rec[1]), h, 0.0f, out, h);
}

const rnn_recurrence attn__rnn_low_rank = {low_rank_validate, low_rank_declare, NULL, low_rank_macs,
                                           low_rank_scratch,  low_rank_apply,   low_rank_matrix};
