/* NYSTROM attention (Xiong et al. 2021): m landmarks stand in for the L queries and S keys,
 *   Q~, K~ = segment means of Q, K (m rows),
 *   A1 = softmax(Q_h K~_h^T) (L x m), A2 = softmax(Q~_h K~_h^T) (m x m), A3 = softmax(Q~_h K_h^T) (m x S),
 *   o_h = A1 (pinv(A2) (A3 V_h)) [+ conv_h(V_h)],
 * multiplied in that order, so the cost is linear in L and S and no L x S matrix is formed. Q is
 * pre-scaled by 1/sqrt(dh), and so is Q~ (a mean of rows of Q).
 *
 * Segments: segment i of a length-n sequence covers rows floor(i n / m) .. floor((i + 1) n / m) - 1,
 * so sizes differ by at most one (and equal n / m when m divides n, the reference's reshape).
 * Masks: key_padding_mask rows are left out of K's segment means, and of Q's too when L == S (the
 * mask then also marks padded queries, as in the reference, which multiplies Q and K by the mask).
 * A segment with no unmasked row gives a masked landmark: a masked key landmark is excluded from
 * the softmaxes of A1 and A2 (its column is zero), a masked query landmark has zero rows in A2 and
 * A3. The Newton iteration and the SVD both keep those zero rows/columns as zero columns/rows of
 * pinv(A2), so a masked landmark contributes nothing, and the output of unmasked queries does not
 * depend on what the masked positions hold. Masked keys are excluded from A3; V's masked rows are
 * zeroed (as the reference's v * mask before the convolution).
 *
 * Shape of the computation, per batch element: the landmarks of all heads at once (segment means
 * act on whole rows of Q and K); then per head A2 and its pseudo-inverse Z, A3 and W = A3 V_h,
 * T = Z W (m x dh); then per block of query rows A1 and o_h = A1 T. */
#include <float.h>
#include <string.h>

#include "attention/mha_internal.h"

/* Query rows per block: the block's A1 (rows x m floats) stays within this many floats. */
enum { BLOCK_FLOATS = 1 << 16 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Scratch of one call (attend or matrix); byte offsets. */
typedef struct nys_plan {
    attn_ws_plan ws;
    int64_t rows;        /* query rows per block */
    size_t qt, kt;       /* landmarks of all heads: m x E floats each */
    size_t qmask, kmask; /* m bytes each: nonzero = masked landmark */
    size_t a2, z;        /* m x m floats each */
    size_t pinv;         /* NEWTON: 3 m x m floats; SVD: attn__pinv's scratch */
    size_t a3;           /* m x S floats */
    size_t w;            /* attend: A3 V_h, then Z A3 V_h (m x dh floats each) */
    size_t t;
    size_t a1;           /* rows x m floats */
    size_t a1z;          /* matrix: A1 Z, rows x m floats */
    size_t taps;         /* attend with conv_kernel K > 0: K x E floats (expand_taps) */
} nys_plan;

static nys_plan make_plan(const attn_mha *m, int64_t tgt_len, int64_t src_len, bool matrix)
{
    const int64_t f = sizeof(float), lm = m->opt.num_landmarks, e = m->opt.embed_dim, dh = m->head_dim;
    nys_plan p = {0};
    p.rows = min64(BLOCK_FLOATS / lm > 0 ? BLOCK_FLOATS / lm : 1, tgt_len);
    p.qt = attn__plan_take(&p.ws, f, lm, e, 1);
    p.kt = attn__plan_take(&p.ws, f, lm, e, 1);
    p.qmask = attn__plan_take(&p.ws, 1, lm, 1, 1);
    p.kmask = attn__plan_take(&p.ws, 1, lm, 1, 1);
    p.a2 = attn__plan_take(&p.ws, f, lm, lm, 1);
    p.z = attn__plan_take(&p.ws, f, lm, lm, 1);
    p.pinv = m->opt.pinv == ATTN_PINV_SVD ? attn__pinv_plan(&p.ws, lm, lm) : attn__plan_take(&p.ws, f, 3, lm, lm);
    p.a3 = attn__plan_take(&p.ws, f, lm, src_len, 1);
    if (!matrix) {
        p.w = attn__plan_take(&p.ws, f, lm, dh, 1);
        p.t = attn__plan_take(&p.ws, f, lm, dh, 1);
    }
    p.a1 = attn__plan_take(&p.ws, f, p.rows, lm, 1);
    if (matrix)
        p.a1z = attn__plan_take(&p.ws, f, p.rows, lm, 1);
    else if (m->opt.conv_kernel > 0)
        p.taps = attn__plan_take(&p.ws, f, m->opt.conv_kernel, e, 1);
    return p;
}

/* lm (m x e) = means of the m segments of x (n x e), leaving out rows whose mask byte is nonzero
 * (mask may be NULL); lmask[i] = 1 when segment i has no unmasked row (its row of lm is zero).
 * Returns lmask, or NULL when no landmark is masked (so that the softmaxes skip their mask pass). */
static const uint8_t *landmarks(int64_t n, int64_t m, int64_t e, const float *x, const uint8_t *mask, float *lm,
                                uint8_t *lmask)
{
    bool any = false;
    for (int64_t i = 0; i < m; i++) {
        float *row = lm + i * e;
        memset(row, 0, (size_t)e * sizeof *row);
        int64_t count = 0;
        for (int64_t r = i * n / m; r < (i + 1) * n / m; r++)
            if (!mask || !mask[r]) {
                attn__add(row, x + r * e, e);
                count++;
            }
        lmask[i] = count == 0;
        any |= count == 0;
        if (count > 1)
            attn__scale(row, e, 1.0f / (float)count);
    }
    return any ? lmask : NULL;
}

/* x (n x n) = alpha I - x */
static void identity_minus(int64_t n, float alpha, float *x)
{
    attn__scale(x, n * n, -1.0f);
    for (int64_t i = 0; i < n; i++)
        x[i * n + i] += alpha;
}

/* z = the Newton-Schulz approximation of pinv(a) (n x n) after `iterations` steps, from
 * Z0 = a^T / (||a||_1 ||a||_inf) (max column sum times max row sum): every step is
 * Z <- 1/4 Z (13 I - a Z (15 I - a Z (7 I - a Z))). buf: 3 n x n floats. */
static void pinv_newton(int64_t n, int64_t iterations, const float *a, float *z, float *buf)
{
    float *az = buf, *t1 = buf + n * n, *t2 = buf + 2 * n * n;
    float max_row = 0.0f, max_col = 0.0f;
    memset(t1, 0, (size_t)n * sizeof *t1);
    for (int64_t i = 0; i < n; i++) {
        float row = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            const float x = a[i * n + j] < 0.0f ? -a[i * n + j] : a[i * n + j];
            row += x;
            t1[j] += x;
        }
        max_row = row > max_row || row != row ? row : max_row; /* NaN is kept, as torch.max does */
    }
    for (int64_t j = 0; j < n; j++)
        max_col = t1[j] > max_col || t1[j] != t1[j] ? t1[j] : max_col;
    const float norm = max_row * max_col;
    /* A zero matrix (every landmark masked) has the zero pseudo-inverse; a NaN in a (a NaN norm)
     * spreads to all of Z, as it does in the reference. */
    const bool zero = norm == 0.0f;
    const float scale = zero ? 0.0f : 1.0f / norm;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            z[i * n + j] = a[j * n + i] * scale;
    for (int64_t it = 0; it < iterations && !zero; it++) {
        attn__sgemm(false, false, n, n, n, 1.0f, a, n, z, n, 0.0f, az, n);
        memcpy(t1, az, (size_t)(n * n) * sizeof *t1);
        identity_minus(n, 7.0f, t1);
        attn__sgemm(false, false, n, n, n, 1.0f, az, n, t1, n, 0.0f, t2, n);
        identity_minus(n, 15.0f, t2);
        attn__sgemm(false, false, n, n, n, 1.0f, az, n, t2, n, 0.0f, t1, n);
        identity_minus(n, 13.0f, t1);
        attn__sgemm(false, false, n, n, n, 0.25f, z, n, t1, n, 0.0f, az, n);
        memcpy(z, az, (size_t)(n * n) * sizeof *z);
    }
}

/* Softmax of each of the `rows` rows (n floats at stride ld) over the columns not masked by
 * col_mask; rows whose row_mask byte is nonzero become zero. Masks may be NULL. */
static void softmax_rows(int64_t rows, int64_t n, float *x, int64_t ld, const uint8_t *row_mask,
                         const uint8_t *col_mask)
{
    for (int64_t i = 0; i < rows; i++) {
        if (row_mask && row_mask[i])
            memset(x + i * ld, 0, (size_t)n * sizeof *x);
        else
            attn__softmax(x + i * ld, n, col_mask);
    }
}

/* Views of one call's scratch, and the masks of the batch element at hand; each mask is NULL
 * when it masks nothing. */
typedef struct nys_work {
    nys_plan plan;
    float *qt, *kt, *a2, *z, *a3, *a1;
    uint8_t *qmask_buf, *kmask_buf;
    char *pinv;
    const uint8_t *key_mask;     /* [S] key padding mask */
    const uint8_t *qmask, *kmask; /* [m] masked query / key landmarks */
} nys_work;

static nys_work views(const attn_mha *m, const mha_problem *p, char *scratch, bool matrix)
{
    nys_work w = {.plan = make_plan(m, p->tgt_len, p->src_len, matrix)};
    w.qt = (float *)(scratch + w.plan.qt);
    w.kt = (float *)(scratch + w.plan.kt);
    w.qmask_buf = (uint8_t *)(scratch + w.plan.qmask);
    w.kmask_buf = (uint8_t *)(scratch + w.plan.kmask);
    w.a2 = (float *)(scratch + w.plan.a2);
    w.z = (float *)(scratch + w.plan.z);
    w.pinv = scratch + w.plan.pinv;
    w.a3 = (float *)(scratch + w.plan.a3);
    w.a1 = (float *)(scratch + w.plan.a1);
    return w;
}

/* Masks and landmarks of batch element b, for all heads. */
static void batch_landmarks(const attn_mha *m, const mha_problem *p, int64_t b, nys_work *w)
{
    const int64_t l = p->tgt_len, s = p->src_len, e = m->opt.embed_dim, lm = m->opt.num_landmarks;
    w->key_mask = NULL;
    for (int64_t j = 0; p->mask && j < s && !w->key_mask; j++)
        if (p->mask[b * s + j])
            w->key_mask = p->mask + b * s;
    w->qmask = landmarks(l, lm, e, p->q + b * l * e, l == s ? w->key_mask : NULL, w->qt, w->qmask_buf);
    w->kmask = landmarks(s, lm, e, p->k + b * s * e, w->key_mask, w->kt, w->kmask_buf);
}

/* A2 and Z = pinv(A2) of head h of the batch element whose landmarks w holds. */
static attn_status head_pinv(const char *fn, const attn_mha *m, int64_t h, nys_work *w)
{
    const int64_t e = m->opt.embed_dim, lm = m->opt.num_landmarks, dh = m->head_dim;
    attn__sgemm(false, true, lm, lm, dh, 1.0f, w->qt + h * dh, e, w->kt + h * dh, e, 0.0f, w->a2, lm);
    softmax_rows(lm, lm, w->a2, lm, w->qmask, w->kmask);
    if (m->opt.pinv == ATTN_PINV_SVD)
        /* numpy's default cutoff for a float32 matrix: singular values below max(m, m) eps sigma_max
         * are rounding noise of A2's entries. */
        return attn__pinv(fn, lm, lm, w->a2, lm, w->z, lm, (double)lm * FLT_EPSILON, w->pinv);
    pinv_newton(lm, m->opt.pinv_iterations, w->a2, w->z, (float *)w->pinv);
    return ATTN_OK;
}

/* A3 of head h of batch element b (its landmarks in w). */
static void head_a3(const attn_mha *m, const mha_problem *p, int64_t b, int64_t h, nys_work *w)
{
    const int64_t s = p->src_len, e = m->opt.embed_dim, lm = m->opt.num_landmarks, dh = m->head_dim;
    attn__sgemm(false, true, lm, s, dh, 1.0f, w->qt + h * dh, e, p->k + b * s * e + h * dh, e, 0.0f, w->a3, s);
    softmax_rows(lm, s, w->a3, s, w->qmask, w->key_mask);
}

/* A1 of query rows r0 .. r0 + rows - 1 of head h of batch element b, into w->a1 (rows x m). */
static void a1_block(const attn_mha *m, const mha_problem *p, int64_t b, int64_t h, int64_t r0, int64_t rows,
                     nys_work *w)
{
    const int64_t e = m->opt.embed_dim, lm = m->opt.num_landmarks, dh = m->head_dim;
    attn__sgemm(false, true, rows, lm, dh, 1.0f, p->q + (b * p->tgt_len + r0) * e + h * dh, e, w->kt + h * dh, e,
                0.0f, w->a1, lm);
    softmax_rows(rows, lm, w->a1, lm, NULL, w->kmask);
}

/* taps (K x E): tap t of head h repeated over the head's dh columns, so that the convolution runs
 * along whole rows of E floats instead of dh-long pieces. */
static void expand_taps(const attn_mha *m, float *taps)
{
    const int64_t k = m->opt.conv_kernel, e = m->opt.embed_dim, dh = m->head_dim;
    const float *weight = attn__params_cdata(m->params, m->t.res_conv);
    for (int64_t t = 0; t < k; t++)
        for (int64_t c = 0; c < e; c++)
            taps[t * e + c] = weight[(c / dh) * k + t];
}

/* y[i] += a[i] * x[i] */
static void multiply_add(float *restrict y, const float *restrict a, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a[i] * x[i];
}

/* o += conv_h(v) for every head h: a depthwise convolution along the sequence (n rows of v and o,
 * E columns) with taps res_conv.weight[h, 0, :, 0] (expanded by expand_taps), zero padding K/2,
 * shared by a head's dh columns. PyTorch's Conv2d is a cross-correlation: tap t of output row i
 * reads row i + t - K/2, and taps reading outside the sequence are skipped. */
static void residual_conv(int64_t n, int64_t e, int64_t k, const float *taps, const float *v, float *o)
{
    const int64_t pad = k / 2;
    for (int64_t i = 0; i < n; i++) {
        const int64_t first = pad > i ? pad - i : 0, end = n + pad - i < k ? n + pad - i : k;
        for (int64_t t = first; t < end; t++)
            multiply_add(o + i * e, taps + t * e, v + (i + t - pad) * e, e);
    }
}

static attn_status check(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    const int64_t lm = m->opt.num_landmarks;
    if (lm > tgt_len || lm > src_len)
        return attn__fail(ATTN_E_SHAPE, "%s: num_landmarks %lld exceeds %s %lld (m > n)", fn, (long long)lm,
                          lm > tgt_len ? "tgt_len" : "src_len", (long long)(lm > tgt_len ? tgt_len : src_len));
    if (m->opt.conv_kernel > 0 && tgt_len != src_len)
        return attn__fail(ATTN_E_SHAPE,
                          "%s: the residual convolution (conv_kernel %lld) needs tgt_len == src_len (got %lld and %lld)",
                          fn, (long long)m->opt.conv_kernel, (long long)tgt_len, (long long)src_len);
    return ATTN_OK;
}

static attn_ws_plan scratch(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix)
{
    (void)batch;
    return make_plan(m, tgt_len, src_len, matrix).ws;
}

/* Per batch element, summed over heads (h dh = E): A2 and Z W (2 m^2 E each), A3 and A3 V
 * (2 m S E each), A1 and A1 T (2 L m E each); per head the pseudo-inverse: NEWTON 4 m x m products
 * per step, SVD 21 m^3 (Golub & Van Loan's count for U, S and V) plus 2 m^3 for U S^+ V^T; the
 * convolution 2 E per (row, tap) pair inside the sequence: rows i, j with |i - j| <= K/2. */
static double flops(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len)
{
    const double lm = (double)m->opt.num_landmarks, e = (double)m->opt.embed_dim, h = (double)m->opt.num_heads;
    const double l = (double)tgt_len, s = (double)src_len;
    const double pinv = m->opt.pinv == ATTN_PINV_SVD ? 23.0 * lm * lm * lm
                                                     : 8.0 * (double)m->opt.pinv_iterations * lm * lm * lm;
    double conv_pairs = 0.0;
    if (m->opt.conv_kernel > 0) {
        const double d = (double)min64(m->opt.conv_kernel / 2, tgt_len - 1);
        conv_pairs = l + 2.0 * (d * l - d * (d + 1.0) / 2.0);
    }
    const double per_batch = 4.0 * lm * lm * e + 4.0 * lm * s * e + 4.0 * l * lm * e + h * pinv + 2.0 * conv_pairs * e;
    return (double)batch * per_batch;
}

static attn_status attend(const attn_mha *m, const mha_problem *p, char *scratch, float *o)
{
    const int64_t l = p->tgt_len, s = p->src_len, e = m->opt.embed_dim, lm = m->opt.num_landmarks, dh = m->head_dim;
    nys_work w = views(m, p, scratch, false);
    float *av = (float *)(scratch + w.plan.w), *zav = (float *)(scratch + w.plan.t);
    float *taps = (float *)(scratch + w.plan.taps);
    if (m->opt.conv_kernel > 0)
        expand_taps(m, taps);
    for (int64_t b = 0; b < p->batch; b++) {
        float *vb = p->v + b * s * e, *ob = o + b * l * e;
        batch_landmarks(m, p, b, &w);
        attn__zero_masked_rows(s, e, w.key_mask, vb);
        for (int64_t h = 0; h < m->opt.num_heads; h++) {
            attn_status st = head_pinv("attn_mha_forward", m, h, &w);
            if (st)
                return st;
            head_a3(m, p, b, h, &w);
            attn__sgemm(false, false, lm, dh, s, 1.0f, w.a3, s, vb + h * dh, e, 0.0f, av, dh);
            attn__sgemm(false, false, lm, dh, lm, 1.0f, w.z, lm, av, dh, 0.0f, zav, dh);
            for (int64_t r0 = 0; r0 < l; r0 += w.plan.rows) {
                const int64_t rows = min64(w.plan.rows, l - r0);
                a1_block(m, p, b, h, r0, rows, &w);
                attn__sgemm(false, false, rows, dh, lm, 1.0f, w.a1, lm, zav, dh, 0.0f, ob + r0 * e + h * dh, e);
            }
        }
        if (m->opt.conv_kernel > 0)
            residual_conv(l, e, m->opt.conv_kernel, taps, vb, ob);
    }
    return ATTN_OK;
}

/* weights[b, h] = A1 pinv(A2) A3 (the residual convolution is not part of it). */
static attn_status matrix(const attn_mha *m, const mha_problem *p, char *scratch, float *weights)
{
    const int64_t l = p->tgt_len, s = p->src_len, lm = m->opt.num_landmarks, heads = m->opt.num_heads;
    nys_work w = views(m, p, scratch, true);
    float *a1z = (float *)(scratch + w.plan.a1z);
    /* A failed SVD must leave weights untouched, so every one is tried before any is written (the
     * m x m work is small next to the L x S output). */
    for (int64_t b = 0; m->opt.pinv == ATTN_PINV_SVD && b < p->batch; b++) {
        batch_landmarks(m, p, b, &w);
        for (int64_t h = 0; h < heads; h++) {
            attn_status st = head_pinv("attn_mha_attention_matrix", m, h, &w);
            if (st)
                return st;
        }
    }
    for (int64_t b = 0; b < p->batch; b++) {
        batch_landmarks(m, p, b, &w);
        for (int64_t h = 0; h < heads; h++) {
            attn_status st = head_pinv("attn_mha_attention_matrix", m, h, &w);
            if (st)
                return st;
            head_a3(m, p, b, h, &w);
            float *wh = weights + (b * heads + h) * l * s;
            for (int64_t r0 = 0; r0 < l; r0 += w.plan.rows) {
                const int64_t rows = min64(w.plan.rows, l - r0);
                a1_block(m, p, b, h, r0, rows, &w);
                attn__sgemm(false, false, rows, lm, lm, 1.0f, w.a1, lm, w.z, lm, 0.0f, a1z, lm);
                attn__sgemm(false, false, rows, s, lm, 1.0f, a1z, lm, w.a3, s, 0.0f, wh + r0 * s, s);
            }
        }
    }
    return ATTN_OK;
}

const mha_kind attn__mha_nystrom = {check, scratch, flops, attend, matrix};
