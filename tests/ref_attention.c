/* Float64 reference of the attention family: plain loops over batch, head, query and key, so that
 * it is obviously the equations of docs/attention.md rather than a second copy of the library's
 * algorithm. Tensors are read through the public attn_params API (ref_params_get_f64 of ref_rnn.c). */
#include "ref_attention.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_rnn.h"

/* The projection weights in float64; absent ones (no bias) are NULL. */
typedef struct ref_proj {
    double *wq, *wk, *wv; /* (E, E), (E, kdim), (E, vdim) */
    double *bias;         /* in_proj_bias (3E) */
    double *wo, *bo;      /* out_proj.weight (E, E), out_proj.bias (E) */
} ref_proj;

static void free_proj(ref_proj *w)
{
    free(w->wq), free(w->wk), free(w->wv), free(w->bias), free(w->wo), free(w->bo);
    memset(w, 0, sizeof *w);
}

/* Packed in_proj_weight (3E, E) when kdim = vdim = E, else q/k/v_proj_weight (docs/attention.md). */
static int load_proj(attn_mha *mha, const attn_mha_options *o, ref_proj *w)
{
    const attn_params *p = attn_mha_params(mha);
    const int64_t e = o->embed_dim;
    int ok = 1;
    memset(w, 0, sizeof *w);
    if (o->kdim == e && o->vdim == e) {
        double *packed = ref_params_get_f64(p, "in_proj_weight", 3 * e * e);
        w->wq = malloc((size_t)(e * e) * sizeof(double));
        w->wk = malloc((size_t)(e * e) * sizeof(double));
        w->wv = malloc((size_t)(e * e) * sizeof(double));
        ok = packed && w->wq && w->wk && w->wv;
        if (ok) {
            memcpy(w->wq, packed, (size_t)(e * e) * sizeof(double));
            memcpy(w->wk, packed + e * e, (size_t)(e * e) * sizeof(double));
            memcpy(w->wv, packed + 2 * e * e, (size_t)(e * e) * sizeof(double));
        }
        free(packed);
    } else {
        ok = (w->wq = ref_params_get_f64(p, "q_proj_weight", e * e)) != NULL &&
             (w->wk = ref_params_get_f64(p, "k_proj_weight", e * o->kdim)) != NULL &&
             (w->wv = ref_params_get_f64(p, "v_proj_weight", e * o->vdim)) != NULL;
    }
    ok = ok && (w->wo = ref_params_get_f64(p, "out_proj.weight", e * e)) != NULL;
    if (o->bias)
        ok = ok && (w->bias = ref_params_get_f64(p, "in_proj_bias", 3 * e)) != NULL &&
             (w->bo = ref_params_get_f64(p, "out_proj.bias", e)) != NULL;
    if (!ok)
        free_proj(w);
    return ok ? 0 : -1;
}

/* y[rows, out] = alpha * (x[rows, in] W^T + b), W (out, in), b (out) or NULL. */
static void linear_f32(int64_t rows, int64_t in, int64_t out, double alpha, const float *x, const double *w,
                       const double *b, double *y)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < out; i++) {
            double s = b ? b[i] : 0.0;
            for (int64_t j = 0; j < in; j++)
                s += (double)x[r * in + j] * w[i * in + j];
            y[r * out + i] = alpha * s;
        }
}

static void linear_f64(int64_t rows, int64_t in, int64_t out, const double *x, const double *w, const double *b,
                       double *y)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < out; i++) {
            double s = b ? b[i] : 0.0;
            for (int64_t j = 0; j < in; j++)
                s += x[r * in + j] * w[i * in + j];
            y[r * out + i] = s;
        }
}

int ref_mha_project(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                    const float *key, const float *value, double *q, double *k, double *v)
{
    attn_mha_options o;
    ref_proj w;
    if (attn_mha_get_options(mha, &o) != ATTN_OK || load_proj(mha, &o, &w) != 0)
        return -1;
    const int64_t e = o.embed_dim, dh = e / o.num_heads;
    linear_f32(batch * tgt_len, e, e, 1.0 / sqrt((double)dh), query, w.wq, w.bias, q);
    linear_f32(batch * src_len, o.kdim, e, 1.0, key, w.wk, w.bias ? w.bias + e : NULL, k);
    linear_f32(batch * src_len, o.vdim, e, 1.0, value, w.wv, w.bias ? w.bias + 2 * e : NULL, v);
    free_proj(&w);
    return 0;
}

/* ---- building blocks ---------------------------------------------------------------------- */

/* p[nq, nk] = softmax over the valid keys of (q_i . k_j), q rows already scaled; invalid keys
 * (valid[j] == 0) and, when causal, keys j > i get 0; a row without valid keys is all zeros.
 * Rows of q and k are dh doubles at strides ldq and ldk. valid may be NULL (all valid). */
static void softmax_scores(int64_t nq, int64_t nk, int64_t dh, const double *q, int64_t ldq, const double *k,
                           int64_t ldk, const uint8_t *valid, int causal, double *p)
{
    for (int64_t i = 0; i < nq; i++) {
        double *row = p + i * nk, top = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            if ((valid && !valid[j]) || (causal && j > i)) {
                row[j] = -INFINITY;
                continue;
            }
            double s = 0;
            for (int64_t c = 0; c < dh; c++)
                s += q[i * ldq + c] * k[j * ldk + c];
            row[j] = s;
            top = fmax(top, s);
        }
        double sum = 0;
        for (int64_t j = 0; j < nk; j++)
            sum += row[j] = top == -INFINITY ? 0.0 : exp(row[j] - top);
        for (int64_t j = 0; j < nk && sum > 0; j++)
            row[j] /= sum;
    }
}

void ref_nystrom_segment(int64_t i, int64_t n, int64_t m, int64_t *begin, int64_t *end)
{
    *begin = i * n / m;
    *end = (i + 1) * n / m;
}

int ref_pinv_newton(const double *a, int64_t n, int64_t iterations, double *z)
{
    const size_t bytes = (size_t)(n * n) * sizeof(double);
    double *az = malloc(bytes), *t = malloc(bytes), *u = malloc(bytes);
    if (!az || !t || !u) {
        free(az), free(t), free(u);
        return -1;
    }
    double norm1 = 0, norm_inf = 0; /* largest column and row sums of |a| */
    for (int64_t i = 0; i < n; i++) {
        double col = 0, row = 0;
        for (int64_t j = 0; j < n; j++)
            col += fabs(a[j * n + i]), row += fabs(a[i * n + j]);
        norm1 = fmax(norm1, col), norm_inf = fmax(norm_inf, row);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            z[i * n + j] = norm1 > 0 ? a[j * n + i] / (norm1 * norm_inf) : 0.0;
    for (int64_t it = 0; it < iterations; it++) {
        ref_matmul(n, n, n, a, n, z, n, az, n);
        /* t = 7I - aZ; u = 15I - aZ t; t = 13I - aZ u; Z = Z t / 4 */
        for (int64_t i = 0; i < n * n; i++)
            t[i] = (i / n == i % n ? 7.0 : 0.0) - az[i];
        ref_matmul(n, n, n, az, n, t, n, u, n);
        for (int64_t i = 0; i < n * n; i++)
            u[i] = (i / n == i % n ? 15.0 : 0.0) - u[i];
        ref_matmul(n, n, n, az, n, u, n, t, n);
        for (int64_t i = 0; i < n * n; i++)
            t[i] = (i / n == i % n ? 13.0 : 0.0) - t[i];
        ref_matmul(n, n, n, z, n, t, n, u, n);
        for (int64_t i = 0; i < n * n; i++)
            z[i] = 0.25 * u[i];
    }
    free(az), free(t), free(u);
    return 0;
}

int ref_pinv_svd(const double *a, int64_t n, double rcond, double *z)
{
    const size_t nn = (size_t)(n * n);
    double *copy = malloc(nn * sizeof *copy), *u = malloc(nn * sizeof *u), *vt = malloc(nn * sizeof *vt);
    double *s = malloc((size_t)n * sizeof *s);
    int ok = copy && u && vt && s;
    if (ok) {
        memcpy(copy, a, nn * sizeof *copy);
        ok = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', (lapack_int)n, (lapack_int)n, copy, (lapack_int)n, s, u,
                            (lapack_int)n, vt, (lapack_int)n) == 0;
    }
    if (ok) {
        /* pinv = V diag(1/s) U^T over the kept singular values (s is sorted, s[0] largest). */
        const double cut = rcond * (n > 0 ? s[0] : 0.0);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t r = 0; r < n; r++)
                    if (s[r] > cut && s[r] > 0)
                        acc += vt[r * n + i] * u[j * n + r] / s[r];
                z[i * n + j] = acc;
            }
    }
    free(copy), free(u), free(vt), free(s);
    return ok ? 0 : -1;
}

/* ---- the kinds ---------------------------------------------------------------------------- */

/* One (batch element, head): q [L, dh] (stride E), k and v [S, dh] (stride E), mask [S] or NULL.
 * o [L, dh] (stride E) and w [L, S] may each be NULL. */
typedef struct head_problem {
    int64_t L, S, dh, ld;
    const double *q, *k, *v;
    const uint8_t *mask;
} head_problem;

static int full_head(const attn_mha_options *opt, const head_problem *hp, double *o, double *w)
{
    uint8_t *valid = malloc((size_t)hp->S);
    double *p = malloc((size_t)(hp->L * hp->S) * sizeof *p);
    if (!valid || !p) {
        free(valid), free(p);
        return -1;
    }
    for (int64_t j = 0; j < hp->S; j++)
        valid[j] = !(hp->mask && hp->mask[j]);
    softmax_scores(hp->L, hp->S, hp->dh, hp->q, hp->ld, hp->k, hp->ld, valid, opt->causal, p);
    if (o)
        ref_matmul(hp->L, hp->dh, hp->S, p, hp->S, hp->v, hp->ld, o, hp->ld);
    if (w)
        memcpy(w, p, (size_t)(hp->L * hp->S) * sizeof *w);
    free(valid), free(p);
    return 0;
}

/* e, f: this head's (k, max_seq_len) projections. */
static int linformer_head(const attn_mha_options *opt, const head_problem *hp, const double *e, const double *f,
                          double *o, double *w)
{
    const int64_t kp = opt->proj_len, ms = opt->max_seq_len, dh = hp->dh;
    double *kt = calloc((size_t)(kp * dh), sizeof *kt), *vt = calloc((size_t)(kp * dh), sizeof *vt);
    double *p = malloc((size_t)(hp->L * kp) * sizeof *p);
    if (!kt || !vt || !p) {
        free(kt), free(vt), free(p);
        return -1;
    }
    /* K~ = E[:, :S] K and V~ = F[:, :S] V with masked rows of K and V taken as zero. */
    for (int64_t r = 0; r < kp; r++)
        for (int64_t j = 0; j < hp->S; j++) {
            if (hp->mask && hp->mask[j])
                continue;
            for (int64_t c = 0; c < dh; c++) {
                kt[r * dh + c] += e[r * ms + j] * hp->k[j * hp->ld + c];
                vt[r * dh + c] += f[r * ms + j] * hp->v[j * hp->ld + c];
            }
        }
    softmax_scores(hp->L, kp, dh, hp->q, hp->ld, kt, dh, NULL, 0, p);
    if (o)
        ref_matmul(hp->L, dh, kp, p, kp, vt, dh, o, hp->ld);
    if (w)
        for (int64_t i = 0; i < hp->L; i++)
            for (int64_t j = 0; j < hp->S; j++) {
                double s = 0;
                for (int64_t r = 0; r < kp && !(hp->mask && hp->mask[j]); r++)
                    s += p[i * kp + r] * f[r * ms + j];
                w[i * hp->S + j] = s;
            }
    free(kt), free(vt), free(p);
    return 0;
}

/* Means of the m segments of `rows` rows of x (stride ld), leaving out rows with skip[j] != 0;
 * valid[i] = 0 (and a zero landmark) for a segment with no row left. */
static void segment_means(int64_t rows, int64_t m, int64_t dh, const double *x, int64_t ld, const uint8_t *skip,
                          double *means, uint8_t *valid)
{
    for (int64_t i = 0; i < m; i++) {
        int64_t begin, end, count = 0;
        ref_nystrom_segment(i, rows, m, &begin, &end);
        for (int64_t c = 0; c < dh; c++)
            means[i * dh + c] = 0.0;
        for (int64_t j = begin; j < end; j++) {
            if (skip && skip[j])
                continue;
            count++;
            for (int64_t c = 0; c < dh; c++)
                means[i * dh + c] += x[j * ld + c];
        }
        for (int64_t c = 0; c < dh && count; c++)
            means[i * dh + c] /= (double)count;
        valid[i] = count > 0;
    }
}

/* sigma_max / sigma_min of a (n x n) over the singular values above rcond * sigma_max; -1 on failure. */
static double condition(const double *a, int64_t n, double rcond)
{
    const size_t nn = (size_t)(n * n);
    double *copy = malloc(nn * sizeof *copy), *s = malloc((size_t)n * sizeof *s);
    double *u = malloc(nn * sizeof *u), *vt = malloc(nn * sizeof *vt);
    double cond = -1;
    if (copy && s && u && vt) {
        memcpy(copy, a, nn * sizeof *copy);
        if (LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', (lapack_int)n, (lapack_int)n, copy, (lapack_int)n, s, u,
                           (lapack_int)n, vt, (lapack_int)n) == 0) {
            cond = s[0] > 0 ? 1.0 : 0.0;
            for (int64_t i = 0; i < n; i++)
                if (s[i] > rcond * s[0])
                    cond = s[0] / s[i];
        }
    }
    free(copy), free(s), free(u), free(vt);
    return cond;
}

/* conv: this head's kernel (conv_kernel taps) or NULL. *cond (when cond is not NULL) becomes the
 * larger of itself and A2's condition number. */
static int nystrom_head(const attn_mha_options *opt, const head_problem *hp, const double *conv, double *o,
                        double *w, double *cond)
{
    const int64_t m = opt->num_landmarks, dh = hp->dh, L = hp->L, S = hp->S;
    double *qt = malloc((size_t)(m * dh) * sizeof *qt), *kt = malloc((size_t)(m * dh) * sizeof *kt);
    double *a1 = malloc((size_t)(L * m) * sizeof *a1), *a2 = malloc((size_t)(m * m) * sizeof *a2);
    double *a3 = malloc((size_t)(m * S) * sizeof *a3), *z = malloc((size_t)(m * m) * sizeof *z);
    double *a1z = malloc((size_t)(L * m) * sizeof *a1z);
    double *a3v = malloc((size_t)(m * dh) * sizeof *a3v);
    uint8_t *q_valid = malloc((size_t)m), *k_valid = malloc((size_t)m), *key_valid = malloc((size_t)S);
    int st = qt && kt && a1 && a2 && a3 && z && a1z && a3v && q_valid && k_valid && key_valid ? 0 : -1;
    if (st == 0) {
        for (int64_t j = 0; j < S; j++)
            key_valid[j] = !(hp->mask && hp->mask[j]);
        /* Segment means leave masked positions out: always for the keys, and for the queries in
         * self-attention shape (L == S), where the key padding mask also marks padded queries (the
         * implementation's documented choice, after the reference's Q * mask). A segment with
         * nothing left is a masked landmark: a masked key landmark is left out of the softmaxes of
         * A1 and A2, a masked query landmark gives zero rows of A2 and A3. */
        segment_means(L, m, dh, hp->q, hp->ld, L == S ? hp->mask : NULL, qt, q_valid);
        segment_means(S, m, dh, hp->k, hp->ld, hp->mask, kt, k_valid);
        softmax_scores(L, m, dh, hp->q, hp->ld, kt, dh, k_valid, 0, a1);
        softmax_scores(m, m, dh, qt, dh, kt, dh, k_valid, 0, a2);
        softmax_scores(m, S, dh, qt, dh, hp->k, hp->ld, key_valid, 0, a3);
        for (int64_t i = 0; i < m; i++)
            if (!q_valid[i]) {
                memset(a2 + i * m, 0, (size_t)m * sizeof *a2);
                memset(a3 + i * S, 0, (size_t)S * sizeof *a3);
            }
        /* The SVD cutoff is the implementation's documented one, numpy's default for a float32
         * m x m matrix: what lies below it is rounding noise of float32 entries. */
        st = opt->pinv == ATTN_PINV_NEWTON ? ref_pinv_newton(a2, m, opt->pinv_iterations, z)
                                           : ref_pinv_svd(a2, m, (double)m * FLT_EPSILON, z);
    }
    if (st == 0 && cond) {
        const double c = condition(a2, m, (double)m * FLT_EPSILON);
        st = c < 0 ? -1 : 0;
        *cond = fmax(*cond, c);
    }
    if (st == 0) {
        ref_matmul(L, m, m, a1, m, z, m, a1z, m);
        if (o) {
            /* A1 pinv(A2) (A3 V), in that order. */
            ref_matmul(m, dh, S, a3, S, hp->v, hp->ld, a3v, dh);
            ref_matmul(L, dh, m, a1z, m, a3v, dh, o, hp->ld);
            /* out_h += conv_h(V_h): zero padding conv_kernel/2, one kernel for the head's channels,
             * masked rows of V taken as zero (the reference's V * mask). Needs L == S. */
            const int64_t kw = opt->conv_kernel, pad = kw / 2;
            for (int64_t i = 0; conv && i < L; i++)
                for (int64_t t = 0; t < kw; t++) {
                    const int64_t j = i + t - pad;
                    if (j < 0 || j >= S || (hp->mask && hp->mask[j]))
                        continue;
                    for (int64_t c = 0; c < dh; c++)
                        o[i * hp->ld + c] += conv[t] * hp->v[j * hp->ld + c];
                }
        }
        if (w)
            ref_matmul(L, S, m, a1z, m, a3, S, w, S);
    }
    free(qt), free(kt), free(a1), free(a2), free(a3), free(z), free(a1z), free(a3v);
    free(q_valid), free(k_valid), free(key_valid);
    return st;
}

static int attend_all(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const double *q,
                      const double *k, const double *v, const uint8_t *mask, double *o, double *weights,
                      double *cond)
{
    attn_mha_options opt;
    if (attn_mha_get_options(mha, &opt) != ATTN_OK)
        return -1;
    const attn_params *params = attn_mha_params(mha);
    const int64_t e = opt.embed_dim, h = opt.num_heads, dh = e / h, L = tgt_len, S = src_len;
    double *pe = NULL, *pf = NULL, *conv = NULL;
    int st = 0;
    if (opt.kind == ATTN_MHA_LINFORMER) {
        const int64_t n = (opt.sharing == ATTN_LINFORMER_NONE ? h : 1) * opt.proj_len * opt.max_seq_len;
        pe = ref_params_get_f64(params, "proj_e", n);
        pf = opt.sharing == ATTN_LINFORMER_KV ? NULL : ref_params_get_f64(params, "proj_f", n);
        st = pe && (pf || opt.sharing == ATTN_LINFORMER_KV) ? 0 : -1;
    } else if (opt.kind == ATTN_MHA_NYSTROM && opt.conv_kernel > 0) {
        conv = ref_params_get_f64(params, "res_conv.weight", h * opt.conv_kernel);
        st = conv ? 0 : -1;
    } else if (opt.kind != ATTN_MHA_FULL && opt.kind != ATTN_MHA_NYSTROM) {
        st = -1;
    }
    for (int64_t b = 0; b < batch && st == 0; b++)
        for (int64_t hh = 0; hh < h && st == 0; hh++) {
            const head_problem hp = {L, S, dh, e, q + b * L * e + hh * dh, k + b * S * e + hh * dh,
                                     v + b * S * e + hh * dh, mask ? mask + b * S : NULL};
            double *oh = o ? o + b * L * e + hh * dh : NULL;
            double *w_head = weights ? weights + (b * h + hh) * L * S : NULL;
            switch (opt.kind) {
            case ATTN_MHA_FULL: st = full_head(&opt, &hp, oh, w_head); break;
            case ATTN_MHA_LINFORMER: {
                const int64_t per_head = opt.sharing == ATTN_LINFORMER_NONE ? hh * opt.proj_len * opt.max_seq_len : 0;
                const double *f = opt.sharing == ATTN_LINFORMER_KV ? pe : pf;
                st = linformer_head(&opt, &hp, pe + per_head, f + per_head, oh, w_head);
                break;
            }
            default:
                st = nystrom_head(&opt, &hp, conv ? conv + hh * opt.conv_kernel : NULL, oh, w_head, cond);
                break;
            }
        }
    free(pe), free(pf), free(conv);
    return st;
}

int ref_mha_attend(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const double *q,
                   const double *k, const double *v, const uint8_t *mask, double *o, double *weights)
{
    return attend_all(mha, batch, tgt_len, src_len, q, k, v, mask, o, weights, NULL);
}

/* Projected q, k, v of one call; freed by free_projected. */
typedef struct projected {
    double *q, *k, *v;
} projected;

static void free_projected(projected *p) { free(p->q), free(p->k), free(p->v); }

static int project_all(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                       const float *key, const float *value, int64_t e, projected *p)
{
    p->q = malloc((size_t)(batch * tgt_len * e) * sizeof(double));
    p->k = malloc((size_t)(batch * src_len * e) * sizeof(double));
    p->v = malloc((size_t)(batch * src_len * e) * sizeof(double));
    if (!p->q || !p->k || !p->v)
        return -1;
    return ref_mha_project(mha, batch, tgt_len, src_len, query, key, value, p->q, p->k, p->v);
}

int ref_mha_forward(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                    const float *key, const float *value, const uint8_t *mask, double *out)
{
    attn_mha_options opt;
    ref_proj w;
    if (attn_mha_get_options(mha, &opt) != ATTN_OK || load_proj(mha, &opt, &w) != 0)
        return -1;
    const int64_t e = opt.embed_dim;
    projected p = {0};
    double *o = malloc((size_t)(batch * tgt_len * e) * sizeof *o);
    int st = o ? project_all(mha, batch, tgt_len, src_len, query, key, value, e, &p) : -1;
    if (st == 0)
        st = ref_mha_attend(mha, batch, tgt_len, src_len, p.q, p.k, p.v, mask, o, NULL);
    if (st == 0)
        linear_f64(batch * tgt_len, e, e, o, w.wo, w.bo, out);
    free_projected(&p);
    free(o);
    free_proj(&w);
    return st;
}

int ref_mha_attention_matrix(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                             const float *key, const float *value, const uint8_t *mask, double *weights)
{
    attn_mha_options opt;
    if (attn_mha_get_options(mha, &opt) != ATTN_OK)
        return -1;
    projected p = {0};
    int st = project_all(mha, batch, tgt_len, src_len, query, key, value, opt.embed_dim, &p);
    if (st == 0)
        st = ref_mha_attend(mha, batch, tgt_len, src_len, p.q, p.k, p.v, mask, NULL, weights);
    free_projected(&p);
    return st;
}

double ref_mha_nystrom_condition(attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, const float *query,
                                 const float *key, const float *value, const uint8_t *mask)
{
    attn_mha_options opt;
    if (attn_mha_get_options(mha, &opt) != ATTN_OK)
        return -1;
    if (opt.kind != ATTN_MHA_NYSTROM)
        return 0;
    projected p = {0};
    double cond = 0;
    int st = project_all(mha, batch, tgt_len, src_len, query, key, value, opt.embed_dim, &p);
    if (st == 0)
        st = attend_all(mha, batch, tgt_len, src_len, p.q, p.k, p.v, mask, NULL, NULL, &cond);
    free_projected(&p);
    return st == 0 ? cond : -1;
}
