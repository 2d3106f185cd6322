/* attn_mha: what every attention kind shares: options, parameters (torch.nn.MultiheadAttention's
 * names), validation, the in-projections (one GEMM each over all batch rows), the out-projection,
 * workspace planning and cost. The kinds (full.c, linformer.c, nystrom.c) only map projected
 * Q, K, V to the per-head outputs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attention/mha_internal.h"

static const size_t first_options_size = sizeof(attn_mha_options);

static const mha_kind *kind_of(const attn_mha *m)
{
    switch (m->opt.kind) {
    case ATTN_MHA_LINFORMER: return &attn__mha_linformer;
    case ATTN_MHA_NYSTROM: return &attn__mha_nystrom;
    default: return &attn__mha_full;
    }
}

attn_status attn_mha_options_init(attn_mha_options *options)
{
    if (!options)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_mha_options_init: options is NULL");
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->kind = ATTN_MHA_FULL;
    options->bias = 1;
    options->memory_mode = ATTN_MEMORY_AUTO;
    options->num_heads = 1;
    options->sharing = ATTN_LINFORMER_HEADWISE;
    options->pinv = ATTN_PINV_NEWTON;
    options->pinv_iterations = 6;
    return ATTN_OK;
}

static attn_status validate_options(const attn_mha_options *o)
{
    static const char fn[] = "attn_mha_create";
    /* Extents stay well inside the 32-bit index range of BLAS. */
    const int64_t max_dim = INT32_MAX / 4;
    attn_status st;
    if ((st = attn__check_option(fn, "kind", o->kind, ATTN_MHA_FULL, ATTN_MHA_NYSTROM)) ||
        (st = attn__check_option(fn, "bias", o->bias, 0, 1)) || (st = attn__check_option(fn, "causal", o->causal, 0, 1)) ||
        (st = attn__check_option(fn, "memory_mode", o->memory_mode, ATTN_MEMORY_AUTO, ATTN_MEMORY_STREAMING)) ||
        (st = attn__check_option(fn, "embed_dim", o->embed_dim, 1, max_dim)) ||
        (st = attn__check_option(fn, "num_heads", o->num_heads, 1, o->embed_dim)) ||
        (st = attn__check_option(fn, "kdim", o->kdim, 0, max_dim)) || (st = attn__check_option(fn, "vdim", o->vdim, 0, max_dim)))
        return st;
    if (o->embed_dim % o->num_heads)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_mha_create: embed_dim %lld is not divisible by num_heads %lld",
                          (long long)o->embed_dim, (long long)o->num_heads);
    if (o->causal && o->kind != ATTN_MHA_FULL)
        return attn__fail(ATTN_E_UNSUPPORTED, "attn_mha_create: causal is only supported by the FULL kind (kind %d)",
                          o->kind);
    if (o->kind == ATTN_MHA_LINFORMER &&
        ((st = attn__check_option(fn, "max_seq_len", o->max_seq_len, 1, max_dim)) ||
         (st = attn__check_option(fn, "proj_len", o->proj_len, 1, max_dim)) ||
         (st = attn__check_option(fn, "sharing", o->sharing, ATTN_LINFORMER_HEADWISE, ATTN_LINFORMER_NONE))))
        return st;
    if (o->kind == ATTN_MHA_NYSTROM) {
        if ((st = attn__check_option(fn, "num_landmarks", o->num_landmarks, 1, max_dim)) ||
            (st = attn__check_option(fn, "pinv", o->pinv, ATTN_PINV_NEWTON, ATTN_PINV_SVD)) ||
            (st = attn__check_option(fn, "pinv_iterations", o->pinv_iterations, o->pinv == ATTN_PINV_NEWTON ? 1 : 0, 1000)) ||
            (st = attn__check_option(fn, "conv_kernel", o->conv_kernel, 0, max_dim)))
            return st;
        if (o->pinv == ATTN_PINV_SVD && !attn__pinv_supported(o->num_landmarks, o->num_landmarks))
            return attn__fail(ATTN_E_INVALID_ARG,
                              "attn_mha_create: num_landmarks %lld is too large for pinv = ATTN_PINV_SVD (LAPACK's "
                              "32-bit indices cannot hold its workspace); use ATTN_PINV_NEWTON",
                              (long long)o->num_landmarks);
        if (o->conv_kernel && o->conv_kernel % 2 == 0)
            return attn__fail(ATTN_E_INVALID_ARG,
                              "attn_mha_create: conv_kernel must be odd so that zero padding conv_kernel/2 keeps "
                              "the length (got %lld)",
                              (long long)o->conv_kernel);
    }
    return ATTN_OK;
}

static attn_status declare(attn_mha *m, const char *name, int64_t ndim, const int64_t *shape, attn_init_law law,
                           float a, int64_t *index)
{
    return attn__params_add(m->params, name, ndim, shape, law, a, index);
}

/* Tensors in torch.nn.MultiheadAttention's state_dict order, then the kind's own. Init laws are
 * PyTorch's: xavier_uniform in-projections, zero biases, out_proj like nn.Linear. */
static attn_status declare_tensors(attn_mha *m)
{
    const attn_mha_options *o = &m->opt;
    const int64_t e = o->embed_dim;
    const float xavier_packed = sqrtf(6.0f / (float)(e + 3 * e));
    attn_status st;
    m->t = (mha_tensors){-1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    if (o->kdim == e && o->vdim == e) {
        if ((st = declare(m, "in_proj_weight", 2, (int64_t[]){3 * e, e}, ATTN_INIT_UNIFORM, xavier_packed,
                          &m->t.in_proj_weight)))
            return st;
    } else {
        const struct { const char *name; int64_t in; int64_t *index; } sep[] = {
            {"q_proj_weight", e, &m->t.q_proj_weight},
            {"k_proj_weight", o->kdim, &m->t.k_proj_weight},
            {"v_proj_weight", o->vdim, &m->t.v_proj_weight},
        };
        for (size_t i = 0; i < 3; i++)
            if ((st = declare(m, sep[i].name, 2, (int64_t[]){e, sep[i].in}, ATTN_INIT_UNIFORM,
                              sqrtf(6.0f / (float)(e + sep[i].in)), sep[i].index)))
                return st;
    }
    if (o->bias && (st = declare(m, "in_proj_bias", 1, (int64_t[]){3 * e}, ATTN_INIT_CONSTANT, 0.0f,
                                 &m->t.in_proj_bias)))
        return st;
    if ((st = declare(m, "out_proj.weight", 2, (int64_t[]){e, e}, ATTN_INIT_UNIFORM, 1.0f / sqrtf((float)e),
                      &m->t.out_proj_weight)))
        return st;
    if (o->bias && (st = declare(m, "out_proj.bias", 1, (int64_t[]){e}, ATTN_INIT_CONSTANT, 0.0f,
                                 &m->t.out_proj_bias)))
        return st;

    if (o->kind == ATTN_MHA_LINFORMER) {
        /* N(0, 1/k), the Linformer reference's init of the sequence projections. */
        const float std = 1.0f / sqrtf((float)o->proj_len);
        const bool per_head = o->sharing == ATTN_LINFORMER_NONE;
        const int64_t shape[3] = {o->num_heads, o->proj_len, o->max_seq_len};
        const int64_t ndim = per_head ? 3 : 2;
        const int64_t *dims = per_head ? shape : shape + 1;
        if ((st = declare(m, "proj_e", ndim, dims, ATTN_INIT_NORMAL, std, &m->t.proj_e)))
            return st;
        if (o->sharing != ATTN_LINFORMER_KV && (st = declare(m, "proj_f", ndim, dims, ATTN_INIT_NORMAL, std,
                                                             &m->t.proj_f)))
            return st;
    }
    if (o->kind == ATTN_MHA_NYSTROM && o->conv_kernel) {
        /* nn.Conv2d's default law: bound 1/sqrt(fan_in), fan_in = 1 * conv_kernel * 1. */
        if ((st = declare(m, "res_conv.weight", 4, (int64_t[]){o->num_heads, 1, o->conv_kernel, 1},
                          ATTN_INIT_UNIFORM, 1.0f / sqrtf((float)o->conv_kernel), &m->t.res_conv)))
            return st;
    }
    return ATTN_OK;
}

void attn_mha_destroy(attn_mha *mha)
{
    if (!mha)
        return;
    attn__params_destroy(mha->params);
    attn__free(mha);
}

attn_status attn_mha_create(attn_mha **out, const attn_mha_options *options)
{
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_mha_create: out is NULL");
    *out = NULL;
    attn_mha_options o;
    attn_mha_options_init(&o);
    attn_status st = attn__options_read("attn_mha_create", &o, sizeof o, first_options_size,
                                        offsetof(attn_mha_options, flags), options);
    if (st || (st = validate_options(&o)))
        return st;
    o.kdim = o.kdim ? o.kdim : o.embed_dim;
    o.vdim = o.vdim ? o.vdim : o.embed_dim;

    attn_mha *m = attn__calloc(sizeof *m);
    if (!m)
        return attn__fail(ATTN_E_NOMEM, "attn_mha_create: out of memory");
    m->opt = o;
    m->head_dim = o.embed_dim / o.num_heads;
    if ((st = attn__params_create(&m->params, "attn_mha_create")) || (st = declare_tensors(m)) ||
        (st = attn__params_finalize(m->params))) {
        attn_mha_destroy(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

attn_params *attn_mha_params(attn_mha *mha) { return mha ? mha->params : NULL; }

attn_status attn_mha_get_options(const attn_mha *mha, attn_mha_options *out)
{
    if (!mha || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_mha_get_options: %s is NULL", mha ? "out" : "mha");
    *out = mha->opt;
    return ATTN_OK;
}

/* Checks shared by forward, attention_matrix and cost. */
static attn_status validate_shape(const char *fn, const attn_mha *m, int64_t batch, int64_t tgt_len,
                                  int64_t src_len)
{
    if (!m)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: mha is NULL", fn);
    const struct { const char *name; int64_t v; } sizes[] = {
        {"batch", batch}, {"tgt_len", tgt_len}, {"src_len", src_len}};
    for (size_t i = 0; i < 3; i++)
        if (sizes[i].v < 1)
            return attn__fail(ATTN_E_SHAPE, "%s: %s must be > 0 (got %lld)", fn, sizes[i].name, (long long)sizes[i].v);
    const int64_t widest = m->opt.kdim > m->opt.vdim ? (m->opt.kdim > m->opt.embed_dim ? m->opt.kdim : m->opt.embed_dim)
                                                     : (m->opt.vdim > m->opt.embed_dim ? m->opt.vdim : m->opt.embed_dim);
    const int64_t longest = tgt_len > src_len ? tgt_len : src_len;
    int64_t rows, elems;
    if (!attn__mul(batch, longest, &rows) || !attn__fits_blas_int(rows) ||
        !attn__mul3(rows, widest, sizeof(float), &elems) ||
        !attn__mul(tgt_len, src_len, &elems))
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x length %lld is beyond the 32-bit index range of BLAS", fn,
                          (long long)batch, (long long)longest);
    return kind_of(m)->check(fn, m, tgt_len, src_len);
}

/* Workspace layout: projected Q, K, V [B, len, E]; the per-head output O [B, L, E] (forward only);
 * then the kind's scratch. */
typedef struct mha_plan {
    attn_ws_plan ws;
    size_t q, k, v, o, scratch;
} mha_plan;

static mha_plan make_plan(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix)
{
    const int64_t f = sizeof(float), e = m->opt.embed_dim;
    mha_plan p = {0};
    p.q = attn__plan_take(&p.ws, f, batch, tgt_len, e);
    p.k = attn__plan_take(&p.ws, f, batch, src_len, e);
    p.v = attn__plan_take(&p.ws, f, batch, src_len, e);
    if (!matrix)
        p.o = attn__plan_take(&p.ws, f, batch, tgt_len, e);
    p.scratch = attn__plan_nest(&p.ws, kind_of(m)->scratch(m, batch, tgt_len, src_len, matrix));
    return p;
}

/* FLOPs of forward (projections and the kind's attention); a double, so that absurd shapes are
 * caught as overflow instead of wrapping. */
static double forward_flops(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len)
{
    const attn_mha_options *o = &m->opt;
    const double e = (double)o->embed_dim, rows_l = (double)batch * (double)tgt_len;
    const double rows_s = (double)batch * (double)src_len;
    /* Q and out-projections over B*L rows, K and V over B*S rows. */
    const double projections = 2.0 * e * (rows_l * 2.0 * e + rows_s * (double)(o->kdim + o->vdim));
    return projections + kind_of(m)->flops(m, batch, tgt_len, src_len);
}

/* Everything forward, attention_matrix and cost check before any work, so that the three accept
 * and reject exactly the same shapes: the sizes, the FLOP count within int64 and every workspace
 * size within the address space. *plan is the layout of the call (matrix or forward). */
static attn_status prepare(const char *fn, const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len,
                           bool matrix, mha_plan *plan)
{
    attn_status st = validate_shape(fn, m, batch, tgt_len, src_len);
    if (st)
        return st;
    if (forward_flops(m, batch, tgt_len, src_len) > 9.0e18)
        return attn__fail(ATTN_E_SHAPE, "%s: the FLOP count of batch %lld x tgt_len %lld x src_len %lld overflows "
                          "int64", fn, (long long)batch, (long long)tgt_len, (long long)src_len);
    int64_t weights;
    if (matrix && (!attn__mul3(batch * m->opt.num_heads, tgt_len, src_len, &weights) ||
                   !attn__mul(weights, sizeof(float), &weights)))
        return attn__fail(ATTN_E_SHAPE, "%s: weights [batch %lld, num_heads %lld, tgt_len %lld, src_len %lld] has "
                          "more bytes than int64 can count", fn, (long long)batch, (long long)m->opt.num_heads,
                          (long long)tgt_len, (long long)src_len);
    const mha_plan forward = make_plan(m, batch, tgt_len, src_len, false);
    *plan = matrix ? make_plan(m, batch, tgt_len, src_len, true) : forward;
    if (forward.ws.overflow || plan->ws.overflow)
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x tgt_len %lld x src_len %lld needs a workspace larger than "
                          "the address space", fn, (long long)batch, (long long)tgt_len, (long long)src_len);
    return ATTN_OK;
}

/* y[rows, E] = alpha * (x[rows, in] W^T + b) with W (E, in) starting at `w`, b at `b` (or NULL). */
static void project(int64_t rows, int64_t in, int64_t e, float alpha, const float *x, const float *w,
                    const float *b, float *y)
{
    attn__sgemm(false, true, rows, e, in, alpha, x, in, w, in, 0.0f, y, e);
    if (!b)
        return;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < e; j++)
            y[r * e + j] += alpha * b[j];
}

/* Projects query, key and value into the workspace; Q is scaled by 1/sqrt(dh). */
static void project_inputs(const attn_mha *m, const mha_plan *plan, char *base, int64_t batch, int64_t tgt_len,
                           int64_t src_len, const float *query, const float *key, const float *value)
{
    const attn_mha_options *o = &m->opt;
    const int64_t e = o->embed_dim;
    const float *packed = m->t.in_proj_weight >= 0 ? attn__params_cdata(m->params, m->t.in_proj_weight) : NULL;
    const float *wq = packed ? packed : attn__params_cdata(m->params, m->t.q_proj_weight);
    const float *wk = packed ? packed + e * e : attn__params_cdata(m->params, m->t.k_proj_weight);
    const float *wv = packed ? packed + 2 * e * e : attn__params_cdata(m->params, m->t.v_proj_weight);
    const float *bias = o->bias ? attn__params_cdata(m->params, m->t.in_proj_bias) : NULL;
    project(batch * tgt_len, e, e, 1.0f / sqrtf((float)m->head_dim), query, wq, bias, (float *)(base + plan->q));
    project(batch * src_len, o->kdim, e, 1.0f, key, wk, bias ? bias + e : NULL, (float *)(base + plan->k));
    project(batch * src_len, o->vdim, e, 1.0f, value, wv, bias ? bias + 2 * e : NULL, (float *)(base + plan->v));
}

static attn_status run(const char *fn, const attn_mha *m, attn_workspace *ws, int64_t batch, int64_t tgt_len,
                       int64_t src_len, const float *query, const float *key, const float *value,
                       const uint8_t *mask, float *out, bool matrix)
{
    mha_plan plan;
    attn_status st = prepare(fn, m, batch, tgt_len, src_len, matrix, &plan);
    if (st)
        return st;
    const char *missing = !query ? "query" : !key ? "key" : !value ? "value" : !out ? (matrix ? "weights" : "out") : NULL;
    if (missing)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, missing);
    const size_t f = sizeof(float), rows_l = (size_t)(batch * tgt_len), rows_s = (size_t)(batch * src_len);
    const attn_buffer inputs[] = {{"query", query, rows_l * (size_t)m->opt.embed_dim * f},
                                  {"key", key, rows_s * (size_t)m->opt.kdim * f},
                                  {"value", value, rows_s * (size_t)m->opt.vdim * f},
                                  {"key_padding_mask", mask, rows_s}};
    const size_t out_elems = matrix ? (size_t)(batch * m->opt.num_heads * tgt_len) * (size_t)src_len
                                    : rows_l * (size_t)m->opt.embed_dim;
    const attn_buffer output = {matrix ? "weights" : "out", out, out_elems * f};
    if ((st = attn__check_aliasing(fn, inputs, 4, &output, 1)))
        return st;

    attn_ws_lease lease = {0};
    char *base;
    if ((st = attn__workspace_reserve(fn, ws, &lease, plan.ws.bytes, &base)))
        return st;
    project_inputs(m, &plan, base, batch, tgt_len, src_len, query, key, value);
    const mha_problem p = {batch, tgt_len, src_len, (const float *)(base + plan.q), (float *)(base + plan.k),
                           (float *)(base + plan.v), mask};
    const mha_kind *kind = kind_of(m);
    if (matrix) {
        st = kind->matrix(m, &p, base + plan.scratch, out);
    } else {
        float *o = (float *)(base + plan.o);
        st = kind->attend(m, &p, base + plan.scratch, o);
        if (!st) {
            const float *b = m->opt.bias ? attn__params_cdata(m->params, m->t.out_proj_bias) : NULL;
            project(batch * tgt_len, m->opt.embed_dim, m->opt.embed_dim, 1.0f,
                    o, attn__params_cdata(m->params, m->t.out_proj_weight), b, out);
        }
    }
    attn__workspace_release(&lease);
    return st;
}

attn_status attn_mha_forward(const attn_mha *mha, attn_workspace *ws, int64_t batch, int64_t tgt_len,
                             int64_t src_len, const float *query, const float *key, const float *value,
                             const uint8_t *key_padding_mask, float *out)
{
    return run("attn_mha_forward", mha, ws, batch, tgt_len, src_len, query, key, value, key_padding_mask, out,
               false);
}

attn_status attn_mha_attention_matrix(const attn_mha *mha, attn_workspace *ws, int64_t batch, int64_t tgt_len,
                                      int64_t src_len, const float *query, const float *key, const float *value,
                                      const uint8_t *key_padding_mask, float *weights)
{
    return run("attn_mha_attention_matrix", mha, ws, batch, tgt_len, src_len, query, key, value, key_padding_mask,
               weights, true);
}

attn_status attn_mha_cost(const attn_mha *mha, int64_t batch, int64_t tgt_len, int64_t src_len, attn_cost *out)
{
    static const char fn[] = "attn_mha_cost";
    mha_plan plan;
    attn_status st = prepare(fn, mha, batch, tgt_len, src_len, false, &plan);
    if (st)
        return st;
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    out->params = attn__params_total(mha->params);
    out->flops = (int64_t)forward_flops(mha, batch, tgt_len, src_len);
    out->workspace_bytes = (int64_t)plan.ws.bytes;
    return ATTN_OK;
}
