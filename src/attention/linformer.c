/* LINFORMER attention (Wang et al. 2020): keys and values are projected along the sequence to
 * k rows before a softmax attention over them,
 *   K~_h = E_h[:, :S] K_h,  V~_h = F_h[:, :S] V_h  (k x dh),  o_h = softmax(Q_h K~_h^T) V~_h
 * (Q pre-scaled by 1/sqrt(dh)), so the cost is linear in L and S.
 *
 * Shape of the computation, per batch element: masked key/value rows are zeroed (K and V are
 * workspace copies), then the sequence projections. With a matrix shared by the heads (HEADWISE, KV)
 * the projection of all heads is ONE GEMM, E[:, :S] (k x S, leading dimension max_seq_len) times
 * K_b (S x E); per-head matrices (NONE) take one GEMM per head on a column slice of K_b. Then for
 * each block of query rows and each head, attn__attend_materialized (core/attend.c) with k keys and
 * no mask; a block keeps its k-wide score block in the L2 cache. Never an L x S buffer. */
#include "attention/mha_internal.h"

/* Query rows per block: the block's scores (rows x k floats) stay within this many floats. */
enum { BLOCK_FLOATS = 1 << 16 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t block_rows(int64_t tgt_len, int64_t k)
{
    const int64_t rows = BLOCK_FLOATS / k;
    return rows < 1 ? 1 : min64(rows, tgt_len);
}

/* Scratch of one call (attend or matrix); byte offsets. */
typedef struct lin_plan {
    attn_ws_plan ws;
    int64_t rows;  /* query rows per block */
    size_t kt, vt; /* K~, V~ of one batch element: k x E floats each (vt: attend only) */
    size_t scores; /* rows x k floats */
} lin_plan;

static lin_plan make_plan(const attn_mha *m, int64_t tgt_len, bool matrix)
{
    const int64_t f = sizeof(float), k = m->opt.proj_len, e = m->opt.embed_dim;
    lin_plan p = {0};
    p.rows = block_rows(tgt_len, k);
    p.kt = attn__plan_take(&p.ws, f, k, e, 1);
    if (!matrix)
        p.vt = attn__plan_take(&p.ws, f, k, e, 1);
    p.scores = attn__plan_take(&p.ws, f, p.rows, k, 1);
    return p;
}

/* proj_e serves keys, and values too under KV sharing. */
static const float *proj_e(const attn_mha *m) { return attn__params_cdata(m->params, m->t.proj_e); }
static const float *proj_f(const attn_mha *m)
{
    return m->t.proj_f >= 0 ? attn__params_cdata(m->params, m->t.proj_f) : proj_e(m);
}

/* Head h's (k, max_seq_len) matrix within a projection tensor. */
static const float *head_proj(const attn_mha *m, const float *proj, int64_t h)
{
    return m->opt.sharing == ATTN_LINFORMER_NONE ? proj + h * m->opt.proj_len * m->opt.max_seq_len : proj;
}

/* dst (k x E) = P_h[:, :S] x_h for every head h, x (S x E) one batch element's keys or values. */
static void project_seq(const attn_mha *m, const float *proj, int64_t s, const float *x, float *dst)
{
    const int64_t k = m->opt.proj_len, n = m->opt.max_seq_len, e = m->opt.embed_dim, dh = m->head_dim;
    if (m->opt.sharing != ATTN_LINFORMER_NONE) {
        attn__sgemm(false, false, k, e, s, 1.0f, proj, n, x, e, 0.0f, dst, e);
        return;
    }
    for (int64_t h = 0; h < m->opt.num_heads; h++)
        attn__sgemm(false, false, k, dh, s, 1.0f, head_proj(m, proj, h), n, x + h * dh, e, 0.0f, dst + h * dh, e);
}

static attn_status check(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    (void)tgt_len;
    if (src_len > m->opt.max_seq_len)
        return attn__fail(ATTN_E_SHAPE, "%s: src_len %lld exceeds max_seq_len %lld of this Linformer handle", fn,
                          (long long)src_len, (long long)m->opt.max_seq_len);
    return ATTN_OK;
}

static attn_ws_plan scratch(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix)
{
    (void)batch, (void)src_len;
    return make_plan(m, tgt_len, matrix).ws;
}

/* Per batch element: the projections of K and V (2 k S E multiply-adds each), then Q_h K~_h^T and
 * the product with V~_h over all heads (2 L k E each). */
static double flops(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len)
{
    const double k = (double)m->opt.proj_len, e = (double)m->opt.embed_dim;
    return (double)batch * (4.0 * k * (double)src_len * e + 4.0 * (double)tgt_len * k * e);
}

static attn_status attend(const attn_mha *m, const mha_problem *p, char *scratch, float *o)
{
    const int64_t l = p->tgt_len, s = p->src_len, e = m->opt.embed_dim, k = m->opt.proj_len, dh = m->head_dim;
    const lin_plan plan = make_plan(m, l, false);
    float *kt = (float *)(scratch + plan.kt), *vt = (float *)(scratch + plan.vt);
    float *scores = (float *)(scratch + plan.scores);
    for (int64_t b = 0; b < p->batch; b++) {
        const uint8_t *mask = p->mask ? p->mask + b * s : NULL;
        float *kb = p->k + b * s * e, *vb = p->v + b * s * e;
        attn__zero_masked_rows(s, e, mask, kb);
        attn__zero_masked_rows(s, e, mask, vb);
        project_seq(m, proj_e(m), s, kb, kt);
        project_seq(m, proj_f(m), s, vb, vt);
        const float *qb = p->q + b * l * e;
        float *ob = o + b * l * e;
        for (int64_t r0 = 0; r0 < l; r0 += plan.rows) {
            const int64_t rows = min64(plan.rows, l - r0);
            for (int64_t h = 0; h < m->opt.num_heads; h++)
                attn__attend_materialized(rows, k, dh, qb + r0 * e + h * dh, e, kt + h * dh, e, vt + h * dh, e, NULL,
                                          false, scores, ob + r0 * e + h * dh, e);
        }
    }
    return ATTN_OK;
}

/* weights[b, h] = softmax(Q_h K~_h^T) F_h[:, :S]: the L x S matrix that maps V_h to forward's
 * output, with masked columns zero (forward zeroes those rows of V). */
static attn_status matrix(const attn_mha *m, const mha_problem *p, char *scratch, float *weights)
{
    const int64_t l = p->tgt_len, s = p->src_len, e = m->opt.embed_dim, k = m->opt.proj_len, dh = m->head_dim;
    const int64_t heads = m->opt.num_heads, n = m->opt.max_seq_len;
    const lin_plan plan = make_plan(m, l, true);
    float *kt = (float *)(scratch + plan.kt), *scores = (float *)(scratch + plan.scores);
    for (int64_t b = 0; b < p->batch; b++) {
        const uint8_t *mask = p->mask ? p->mask + b * s : NULL;
        float *kb = p->k + b * s * e;
        attn__zero_masked_rows(s, e, mask, kb);
        project_seq(m, proj_e(m), s, kb, kt);
        const float *qb = p->q + b * l * e;
        for (int64_t h = 0; h < heads; h++) {
            float *w = weights + (b * heads + h) * l * s;
            for (int64_t r0 = 0; r0 < l; r0 += plan.rows) {
                const int64_t rows = min64(plan.rows, l - r0);
                attn__sgemm(false, true, rows, k, dh, 1.0f, qb + r0 * e + h * dh, e, kt + h * dh, e, 0.0f, scores, k);
                for (int64_t i = 0; i < rows; i++)
                    attn__softmax(scores + i * k, k, NULL);
                attn__sgemm(false, false, rows, s, k, 1.0f, scores, k, head_proj(m, proj_f(m), h), n, 0.0f,
                            w + r0 * s, s);
            }
            for (int64_t i = 0; mask && i < l; i++)
                for (int64_t j = 0; j < s; j++)
                    if (mask[j])
                        w[i * s + j] = 0.0f;
        }
    }
    return ATTN_OK;
}

const mha_kind attn__mha_linformer = {check, scratch, flops, attend, matrix};
