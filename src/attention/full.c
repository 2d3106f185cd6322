/* FULL attention: softmax(Q_h K_h^T / sqrt(dh) + masks) V_h for every (batch element, head),
 * through the library's one attention kernel (core/attend.c: MATERIALIZE and STREAMING strategies,
 * masks, the thread team). This file only maps the attn_mha problem onto heads and chooses the
 * strategy from memory_mode. */
#include "attention/mha_internal.h"

static attn_attend_mode mode_of(const attn_mha *m)
{
    switch (m->opt.memory_mode) {
    case ATTN_MEMORY_MATERIALIZE: return ATTN_ATTEND_MATERIALIZE;
    case ATTN_MEMORY_STREAMING: return ATTN_ATTEND_STREAM;
    default: return ATTN_ATTEND_AUTO;
    }
}

/* Head `head` of batch element b: its columns of the [B, len, E] projections. */
static attn_head head_of(const attn_mha *m, const mha_problem *p, int64_t b, int64_t head)
{
    const int64_t e = m->opt.embed_dim, dh = m->head_dim, l = p->tgt_len, s = p->src_len;
    return (attn_head){l, s, dh, p->q + b * l * e + head * dh, p->k + b * s * e + head * dh,
                       p->v + b * s * e + head * dh, e, e, e, p->mask ? p->mask + b * s : NULL,
                       m->opt.causal != 0};
}

/* ---- the kind's interface ----------------------------------------------------------------- */

static attn_status check(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    (void)fn, (void)m, (void)tgt_len, (void)src_len;
    return ATTN_OK;
}

static attn_ws_plan scratch(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix)
{
    (void)batch;
    /* matrix writes the scores straight into the caller's weights. */
    return matrix ? (attn_ws_plan){0} : attn__attend_plan(tgt_len, src_len, m->head_dim, mode_of(m)).ws;
}

/* Two products per head over the (query, key) pairs causal leaves (attn__attend_flops). */
static double flops(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len)
{
    return (double)batch * (double)m->opt.num_heads *
           attn__attend_flops(tgt_len, src_len, m->head_dim, m->opt.causal != 0);
}

static attn_status attend(const attn_mha *m, const mha_problem *p, char *scratch, float *o)
{
    const attn_attend_plan plan = attn__attend_plan(p->tgt_len, p->src_len, m->head_dim, mode_of(m));
    const int64_t e = m->opt.embed_dim, dh = m->head_dim;
    attn_team t = ATTN__TEAM_INIT;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t head = 0; head < m->opt.num_heads; head++) {
            const attn_head h = head_of(m, p, b, head);
            attn__attend(&t, &h, &plan, scratch, o + b * p->tgt_len * e + head * dh, e);
        }
    attn__team_stop(&t);
    return ATTN_OK;
}

static attn_status matrix(const attn_mha *m, const mha_problem *p, char *scratch, float *weights)
{
    (void)scratch;
    const int64_t l = p->tgt_len, s = p->src_len;
    attn_team t = ATTN__TEAM_INIT;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t head = 0; head < m->opt.num_heads; head++) {
            const attn_head h = head_of(m, p, b, head);
            attn__attend_weights(&t, &h, weights + (b * m->opt.num_heads + head) * l * s);
        }
    attn__team_stop(&t);
    return ATTN_OK;
}

const mha_kind attn__mha_full = {check, scratch, flops, attend, matrix};
