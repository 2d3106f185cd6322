/* attn_perceiver: the Perceiver of lucidrains/perceiver-pytorch (v0.9) with its state_dict names
 * (docs/perceiver.md): Fourier position features appended to the inputs, `depth` layers of a
 * cross-attention from a latent array into the inputs, a GEGLU feed-forward and
 * self_per_cross_attn latent self-attention blocks, then a classification head or the latents.
 *
 * Shape of one forward call:
 * - Position features: one table per axis, [s_a, 2K+1] (a position's features are its coordinates'
 *   rows side by side), so sum_a s_a (2K) sines and cosines instead of N (2K) input_axis.
 * - The context [B*N, C'] (data and position features) is never formed. norm_context is a
 *   LayerNorm of each row x = [data, positions]: x^ w + b with x^ = (x - mean) / std. Its affine
 *   folds into the to_kv product: to_kv(x^ w + b) = x^ (W diag w)^T + W b. The K half of W b adds one
 *   constant to every score of a query row, which the softmax ignores; the V half adds W_v b to
 *   every output row (the weights of a row sum to 1), which folds into to_out's bias. And the
 *   normalization moves after the product: x^ W'^T = (x W'^T - mean W' 1) / std, with x W'^T the
 *   data's share (one GEMM of C inner over the B*N rows) plus the position features' share, which
 *   is the sum over the axes of their table row times their columns of W': one small GEMM per axis
 *   and weight set, [s_a, 2K+1] x [2K+1, 2 ic], for the whole batch. The row statistics come from
 *   the data row and the axis-table rows' sums, so K and V of all B*N rows cost one pass over the
 *   data and one over K and V per distinct cross-attention weight set: `depth` of them, or two with
 *   weight_tie_layers whatever the depth (PyTorch builds, normalizes and projects the whole
 *   [B*N, C'] context again in every layer).
 * - Latent blocks: one GEMM over all B*M rows for each of to_q, to_kv, to_out and the two FF
 *   products. Heads go through the library's one attention kernel (core/attend.c) as column
 *   slices of those products (leading dimensions, no copies): M x N per (batch element, head) for
 *   the cross-attention, M x M for the self-attention, the kernel's scratch reused by all of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/perceiver.h"
#include "core/core.h"

static const size_t first_options_size = sizeof(attn_perceiver_options);
static const float layer_norm_eps = 1e-5f; /* nn.LayerNorm's default, everywhere in the model */

enum {
    MAX_LAYERS = 1024,    /* bounds of depth and self_per_cross_attn (the registry lists every block) */
    CONTEXT_CHUNK = 64,   /* input rows (statistics, K and V) per claim of a team thread */
    TEAM_MIN_FLOATS = 1 << 16, /* floats of such row work below which waking helpers costs more than it saves */
};

/* Indices into the params registry of one PreNorm(Attention) block; context_w/b are -1 in the
 * self-attention blocks, which have no norm_context. */
typedef struct attention_tensors {
    int64_t to_q, to_kv, out_w, out_b, norm_w, norm_b, context_w, context_b;
} attention_tensors;

/* One PreNorm(FeedForward) block: net.0, net.2 and the norm. */
typedef struct ff_tensors {
    int64_t w0, b0, w2, b2, norm_w, norm_b;
} ff_tensors;

struct attn_perceiver {
    attn_perceiver_options opt;
    attn_params *params;
    int64_t sets;         /* distinct weight sets: depth, or min(depth, 2) with weight_tie_layers */
    int64_t input_dim;    /* C' = C + input_axis (2K + 1) with Fourier features, else C */
    int64_t cross_inner;  /* cross_heads * cross_dim_head */
    int64_t latent_inner; /* latent_heads * latent_dim_head */
    attention_tensors *attn; /* [sets][1 + J]: a set's cross-attention, then its J self-attentions */
    ff_tensors *ff;          /* [sets][1 + J]: the feed-forward after each of them */
    int64_t latents;
    int64_t logits_norm_w, logits_norm_b, logits_w, logits_b; /* -1 without a head */
};

/* The weight set of layer i: its own, or with weight_tie_layers the one that layers >= 1 share. */
static int64_t set_of(const attn_perceiver *m, int64_t layer)
{
    return m->opt.weight_tie_layers && layer > 0 ? 1 : layer;
}

attn_status attn_perceiver_options_init(attn_perceiver_options *options)
{
    if (!options)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_perceiver_options_init: options is NULL");
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->input_channels = 3;
    options->input_axis = 2;
    options->fourier_encode = 1;
    options->num_latents = 512;
    options->latent_dim = 512;
    options->cross_heads = 1;
    options->cross_dim_head = 64;
    options->latent_heads = 8;
    options->latent_dim_head = 64;
    options->self_per_cross_attn = 1;
    return ATTN_OK;
}

/* heads * dim_head, which with twice it (to_kv's rows) must stay within BLAS's 32-bit indices. */
static attn_status inner_width(const char *heads_name, int64_t heads, const char *dim_name, int64_t dim_head,
                               int64_t *inner)
{
    if (!attn__mul(heads, dim_head, inner) || !attn__fits_blas_int(2 * *inner))
        return attn__fail(ATTN_E_SHAPE, "attn_perceiver_create: %s %lld x %s %lld is beyond the 32-bit index range "
                          "of BLAS", heads_name, (long long)heads, dim_name, (long long)dim_head);
    return ATTN_OK;
}

/* Validates the options and derives the widths every product uses. */
static attn_status validate_options(const attn_perceiver_options *o, attn_perceiver *m)
{
    static const char fn[] = "attn_perceiver_create";
    const int64_t max_dim = INT32_MAX / 8; /* the FF's 8 D rows stay within BLAS's indices */
    attn_status st;
    if ((st = attn__check_option(fn, "input_channels", o->input_channels, 1, max_dim)) ||
        (st = attn__check_option(fn, "input_axis", o->input_axis, 1, 3)) ||
        (st = attn__check_option(fn, "fourier_encode", o->fourier_encode, 0, 1)) ||
        (st = attn__check_option(fn, "num_freq_bands", o->num_freq_bands, o->fourier_encode ? 1 : 0, max_dim)) ||
        (st = attn__check_option(fn, "depth", o->depth, 1, MAX_LAYERS)) ||
        (st = attn__check_option(fn, "num_latents", o->num_latents, 1, max_dim)) ||
        (st = attn__check_option(fn, "latent_dim", o->latent_dim, 1, max_dim)) ||
        (st = attn__check_option(fn, "cross_heads", o->cross_heads, 1, max_dim)) ||
        (st = attn__check_option(fn, "cross_dim_head", o->cross_dim_head, 1, max_dim)) ||
        (st = attn__check_option(fn, "latent_heads", o->latent_heads, 1, max_dim)) ||
        (st = attn__check_option(fn, "latent_dim_head", o->latent_dim_head, 1, max_dim)) ||
        (st = attn__check_option(fn, "self_per_cross_attn", o->self_per_cross_attn, 0, MAX_LAYERS)) ||
        (st = attn__check_option(fn, "weight_tie_layers", o->weight_tie_layers, 0, 1)) ||
        (st = attn__check_option(fn, "num_classes", o->num_classes, 0, max_dim)))
        return st;
    if (o->fourier_encode && !(isfinite(o->max_freq) && o->max_freq > 0.0))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: max_freq must be finite and > 0 with fourier_encode (got %g)", fn,
                          o->max_freq);
    if ((st = inner_width("cross_heads", o->cross_heads, "cross_dim_head", o->cross_dim_head, &m->cross_inner)) ||
        (st = inner_width("latent_heads", o->latent_heads, "latent_dim_head", o->latent_dim_head, &m->latent_inner)))
        return st;
    /* C' <= max_dim + 3 (2 max_dim + 1) < 2^31: within BLAS's indices. */
    m->input_dim = o->input_channels + (o->fourier_encode ? o->input_axis * (2 * o->num_freq_bands + 1) : 0);
    m->sets = o->weight_tie_layers && o->depth > 2 ? 2 : o->depth;
    return ATTN_OK;
}

/* ---- tensors ------------------------------------------------------------------------------------ */

/* nn.Linear's default law for weight and bias: U(+-1/sqrt(fan_in)). */
static float linear_bound(int64_t fan_in) { return (float)(1.0 / sqrt((double)fan_in)); }

/* Declares tensor "prefix.suffix" into *index, or, with `alias`, makes that name another name of
 * the tensor *index (a tied layer's name in PyTorch's state_dict). */
static attn_status tensor(attn_params *p, bool alias, const char *prefix, const char *suffix, int64_t ndim,
                          const int64_t *shape, attn_init_law law, float a, int64_t *index)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    return alias ? attn__params_alias(p, name, *index) : attn__params_add(p, name, ndim, shape, law, a, index);
}

/* PreNorm(Attention) at `prefix`, in lucidrains' state_dict order (fn.to_q, fn.to_kv, fn.to_out,
 * norm, norm_context); context_dim 0 for a self-attention, whose keys are the latents. */
static attn_status declare_attention(attn_params *p, bool alias, const char *prefix, int64_t dim, int64_t context_dim,
                                     int64_t inner, attention_tensors *t)
{
    const int64_t kv_in = context_dim ? context_dim : dim;
    attn_status st;
    if ((st = tensor(p, alias, prefix, "fn.to_q.weight", 2, (int64_t[]){inner, dim}, ATTN_INIT_UNIFORM,
                     linear_bound(dim), &t->to_q)) ||
        (st = tensor(p, alias, prefix, "fn.to_kv.weight", 2, (int64_t[]){2 * inner, kv_in}, ATTN_INIT_UNIFORM,
                     linear_bound(kv_in), &t->to_kv)) ||
        (st = tensor(p, alias, prefix, "fn.to_out.weight", 2, (int64_t[]){dim, inner}, ATTN_INIT_UNIFORM,
                     linear_bound(inner), &t->out_w)) ||
        (st = tensor(p, alias, prefix, "fn.to_out.bias", 1, (int64_t[]){dim}, ATTN_INIT_UNIFORM, linear_bound(inner),
                     &t->out_b)) ||
        (st = tensor(p, alias, prefix, "norm.weight", 1, (int64_t[]){dim}, ATTN_INIT_CONSTANT, 1.0f, &t->norm_w)) ||
        (st = tensor(p, alias, prefix, "norm.bias", 1, (int64_t[]){dim}, ATTN_INIT_CONSTANT, 0.0f, &t->norm_b)))
        return st;
    if (!context_dim)
        return ATTN_OK;
    if ((st = tensor(p, alias, prefix, "norm_context.weight", 1, (int64_t[]){kv_in}, ATTN_INIT_CONSTANT, 1.0f,
                     &t->context_w)))
        return st;
    return tensor(p, alias, prefix, "norm_context.bias", 1, (int64_t[]){kv_in}, ATTN_INIT_CONSTANT, 0.0f,
                  &t->context_b);
}

/* PreNorm(FeedForward) at `prefix`: fn.net.0 Linear(D, 8D), fn.net.2 Linear(4D, D), norm. */
static attn_status declare_ff(attn_params *p, bool alias, const char *prefix, int64_t dim, ff_tensors *t)
{
    attn_status st;
    if ((st = tensor(p, alias, prefix, "fn.net.0.weight", 2, (int64_t[]){8 * dim, dim}, ATTN_INIT_UNIFORM,
                     linear_bound(dim), &t->w0)) ||
        (st = tensor(p, alias, prefix, "fn.net.0.bias", 1, (int64_t[]){8 * dim}, ATTN_INIT_UNIFORM, linear_bound(dim),
                     &t->b0)) ||
        (st = tensor(p, alias, prefix, "fn.net.2.weight", 2, (int64_t[]){dim, 4 * dim}, ATTN_INIT_UNIFORM,
                     linear_bound(4 * dim), &t->w2)) ||
        (st = tensor(p, alias, prefix, "fn.net.2.bias", 1, (int64_t[]){dim}, ATTN_INIT_UNIFORM, linear_bound(4 * dim),
                     &t->b2)) ||
        (st = tensor(p, alias, prefix, "norm.weight", 1, (int64_t[]){dim}, ATTN_INIT_CONSTANT, 1.0f, &t->norm_w)))
        return st;
    return tensor(p, alias, prefix, "norm.bias", 1, (int64_t[]){dim}, ATTN_INIT_CONSTANT, 0.0f, &t->norm_b);
}

/* Every tensor in the order of lucidrains' Perceiver.state_dict(); the layers >= 2 of a tied model
 * name layer 1's tensors again, as aliases. */
static attn_status declare_tensors(attn_perceiver *m)
{
    const attn_perceiver_options *o = &m->opt;
    const int64_t d = o->latent_dim, blocks = 1 + o->self_per_cross_attn;
    attn_params *p = m->params;
    attn_status st;
    if ((st = attn__params_add(p, "latents", 2, (int64_t[]){o->num_latents, d}, ATTN_INIT_NORMAL, 1.0f,
                               &m->latents)))
        return st;
    char prefix[64];
    for (int64_t i = 0; i < o->depth; i++) {
        const int64_t set = set_of(m, i);
        const bool alias = set != i;
        attention_tensors *a = m->attn + set * blocks;
        ff_tensors *f = m->ff + set * blocks;
        snprintf(prefix, sizeof prefix, "layers.%lld.0", (long long)i);
        if ((st = declare_attention(p, alias, prefix, d, m->input_dim, m->cross_inner, &a[0])))
            return st;
        snprintf(prefix, sizeof prefix, "layers.%lld.1", (long long)i);
        if ((st = declare_ff(p, alias, prefix, d, &f[0])))
            return st;
        for (int64_t j = 1; j < blocks; j++) {
            snprintf(prefix, sizeof prefix, "layers.%lld.2.%lld.0", (long long)i, (long long)(j - 1));
            if ((st = declare_attention(p, alias, prefix, d, 0, m->latent_inner, &a[j])))
                return st;
            snprintf(prefix, sizeof prefix, "layers.%lld.2.%lld.1", (long long)i, (long long)(j - 1));
            if ((st = declare_ff(p, alias, prefix, d, &f[j])))
                return st;
        }
    }
    if (!o->num_classes)
        return ATTN_OK;
    if ((st = attn__params_add(p, "to_logits.1.weight", 1, (int64_t[]){d}, ATTN_INIT_CONSTANT, 1.0f,
                               &m->logits_norm_w)) ||
        (st = attn__params_add(p, "to_logits.1.bias", 1, (int64_t[]){d}, ATTN_INIT_CONSTANT, 0.0f,
                               &m->logits_norm_b)) ||
        (st = attn__params_add(p, "to_logits.2.weight", 2, (int64_t[]){o->num_classes, d}, ATTN_INIT_UNIFORM,
                               linear_bound(d), &m->logits_w)))
        return st;
    return attn__params_add(p, "to_logits.2.bias", 1, (int64_t[]){o->num_classes}, ATTN_INIT_UNIFORM, linear_bound(d),
                            &m->logits_b);
}

void attn_perceiver_destroy(attn_perceiver *perceiver)
{
    if (!perceiver)
        return;
    attn__params_destroy(perceiver->params);
    free(perceiver->attn);
    free(perceiver->ff);
    attn__free(perceiver);
}

attn_status attn_perceiver_create(attn_perceiver **out, const attn_perceiver_options *options)
{
    static const char fn[] = "attn_perceiver_create";
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    attn_perceiver_options o;
    attn_perceiver_options_init(&o);
    attn_perceiver shape = {0};
    attn_status st = attn__options_read(fn, &o, sizeof o, first_options_size,
                                        offsetof(attn_perceiver_options, flags), options);
    if (st || (st = validate_options(&o, &shape)))
        return st;
    const size_t blocks = (size_t)(shape.sets * (1 + o.self_per_cross_attn));
    attn_perceiver *m = attn__calloc(sizeof *m);
    attention_tensors *attn = calloc(blocks, sizeof *attn);
    ff_tensors *ff = calloc(blocks, sizeof *ff);
    if (!m || !attn || !ff) {
        attn__free(m);
        free(attn);
        free(ff);
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", fn);
    }
    *m = shape;
    m->opt = o;
    m->attn = attn;
    m->ff = ff;
    for (size_t b = 0; b < blocks; b++)
        attn[b].context_w = attn[b].context_b = -1;
    m->logits_norm_w = m->logits_norm_b = m->logits_w = m->logits_b = -1;
    if ((st = attn__params_create(&m->params, fn)) || (st = declare_tensors(m)) ||
        (st = attn__params_finalize(m->params))) {
        attn_perceiver_destroy(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

attn_params *attn_perceiver_params(attn_perceiver *perceiver) { return perceiver ? perceiver->params : NULL; }

attn_status attn_perceiver_get_options(const attn_perceiver *perceiver, attn_perceiver_options *out)
{
    if (!perceiver || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_perceiver_get_options: %s is NULL",
                          perceiver ? "out" : "perceiver");
    attn__options_write(out, &perceiver->opt, sizeof perceiver->opt, first_options_size);
    return ATTN_OK;
}

/* ---- validation, plan, cost ------------------------------------------------------------------ */

/* Scratch layout of one forward call; byte offsets into the workspace. */
typedef struct perc_plan {
    attn_ws_plan ws;
    size_t axes;      /* [sum_a s_a, 2K+1]: Fourier features of each axis' coordinates (fourier_encode) */
    size_t axis_sums; /* [sum_a s_a, 2]: sum and sum of squares of each row of axes (fourier_encode) */
    size_t axis_kv;   /* [sum_a s_a, 2 ic]: each row of axes times its columns of the K/V weight */
    size_t row_stats; /* [B*N, 2]: mean and 1 / std of each context row [data, positions] */
    size_t kv;        /* [B*N, 2 ic]: K and V of the inputs under the cross-attention weight set in use */
    size_t kv_weight; /* [2 ic, C']: that set's to_kv.weight times norm_context.weight */
    size_t kv_sums;   /* [2 ic]: the row sums of kv_weight */
    size_t v_bias;    /* [ic]: to_kv's V rows times norm_context.bias */
    size_t out_bias;  /* [D]: that set's to_out.bias + to_out.weight v_bias */
    size_t latents;   /* [B*M, D] (with a head; without, forward works in out) */
    size_t normed;    /* [B*M, D]: LayerNorm of the latents */
    size_t q, o;      /* [B*M, max(ic, il)]: queries (scaled) and attention outputs */
    size_t self_kv;   /* [B*M, 2 il] (self_per_cross_attn > 0) */
    size_t hidden;    /* [B*M, 8D]: the FF's net.0 output, then GEGLU in its first 4D columns */
    size_t pooled;    /* [B, D] (with a head) */
    size_t attend;    /* the attention kernel's scratch: the larger of the cross and self plans */
} perc_plan;

static perc_plan make_plan(const attn_perceiver *m, int64_t batch, const int64_t *axis_sizes, int64_t n)
{
    const attn_perceiver_options *o = &m->opt;
    const int64_t f = sizeof(float), mm = o->num_latents, d = o->latent_dim, ic = m->cross_inner;
    const int64_t widest = ic > m->latent_inner ? ic : m->latent_inner;
    perc_plan p = {0};
    if (o->fourier_encode) {
        int64_t coordinates = 0; /* <= input_axis N: no overflow */
        for (int64_t a = 0; a < o->input_axis; a++)
            coordinates += axis_sizes[a];
        p.axes = attn__plan_take(&p.ws, f, coordinates, 2 * o->num_freq_bands + 1, 1);
        p.axis_sums = attn__plan_take(&p.ws, f, coordinates, 2, 1);
        p.axis_kv = attn__plan_take(&p.ws, f, coordinates, 2 * ic, 1);
    }
    p.row_stats = attn__plan_take(&p.ws, f, batch, n, 2);
    p.kv = attn__plan_take(&p.ws, f, batch, n, 2 * ic);
    p.kv_weight = attn__plan_take(&p.ws, f, 2 * ic, m->input_dim, 1);
    p.kv_sums = attn__plan_take(&p.ws, f, 2 * ic, 1, 1);
    p.v_bias = attn__plan_take(&p.ws, f, ic, 1, 1);
    p.out_bias = attn__plan_take(&p.ws, f, d, 1, 1);
    if (o->num_classes)
        p.latents = attn__plan_take(&p.ws, f, batch, mm, d);
    p.normed = attn__plan_take(&p.ws, f, batch, mm, d);
    p.q = attn__plan_take(&p.ws, f, batch, mm, widest);
    p.o = attn__plan_take(&p.ws, f, batch, mm, widest);
    if (o->self_per_cross_attn)
        p.self_kv = attn__plan_take(&p.ws, f, batch, mm, 2 * m->latent_inner);
    p.hidden = attn__plan_take(&p.ws, f, batch, mm, 8 * d);
    if (o->num_classes)
        p.pooled = attn__plan_take(&p.ws, f, batch, d, 1);
    attn_ws_plan attend = attn__attend_plan(mm, n, o->cross_dim_head, ATTN_ATTEND_AUTO).ws;
    if (o->self_per_cross_attn) {
        const attn_ws_plan self = attn__attend_plan(mm, mm, o->latent_dim_head, ATTN_ATTEND_AUTO).ws;
        attend = (attn_ws_plan){attend.bytes > self.bytes ? attend.bytes : self.bytes,
                                attend.overflow || self.overflow};
    }
    p.attend = attn__plan_nest(&p.ws, attend);
    return p;
}

/* FLOPs of forward (docs/perceiver.md): every matrix product, multiply-add = 2; a double, so that
 * absurd shapes are caught as overflow instead of wrapping. */
static double forward_flops(const attn_perceiver *m, int64_t batch, const int64_t *axis_sizes, int64_t n)
{
    const attn_perceiver_options *o = &m->opt;
    const double b = (double)batch, rows = b * (double)o->num_latents, d = (double)o->latent_dim;
    const double c = (double)m->input_dim, ic = (double)m->cross_inner, il = (double)m->latent_inner;
    /* per weight set: K and V of the B*N inputs as the data's share (B*N rows of C) plus the position
     * features' share (each axis' table rows against their columns, summed per position: not
     * counted), and the two GEMVs folding norm_context's bias */
    double coordinates = 0.0;
    for (int64_t a = 0; o->fourier_encode && a < o->input_axis; a++)
        coordinates += (double)axis_sizes[a];
    const double context = 2.0 * b * (double)n * (double)o->input_channels * 2.0 * ic +
                           2.0 * coordinates * (double)(2 * o->num_freq_bands + 1) * 2.0 * ic + 2.0 * ic * c +
                           2.0 * d * ic;
    const double ff = 2.0 * rows * d * 8.0 * d + 2.0 * rows * 4.0 * d * d;
    const double cross = 2.0 * rows * d * ic + 2.0 * rows * ic * d +
                         b * (double)o->cross_heads * attn__attend_flops(o->num_latents, n, o->cross_dim_head, false);
    const double self = 2.0 * rows * d * 3.0 * il + 2.0 * rows * il * d +
                        b * (double)o->latent_heads *
                            attn__attend_flops(o->num_latents, o->num_latents, o->latent_dim_head, false);
    const double head = 2.0 * b * d * (double)o->num_classes;
    return (double)m->sets * context + (double)o->depth * (cross + ff + (double)o->self_per_cross_attn * (self + ff)) +
           head;
}

/* Everything forward and cost check before any work, so that both accept and reject exactly the
 * same shapes. *n is the number of input positions. */
static attn_status prepare(const char *fn, const attn_perceiver *m, int64_t batch, const int64_t *axis_sizes,
                           int64_t *n, perc_plan *plan)
{
    if (!m)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: perceiver is NULL", fn);
    if (batch < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: batch must be > 0 (got %lld)", fn, (long long)batch);
    if (!axis_sizes)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: axis_sizes is NULL", fn);
    const attn_perceiver_options *o = &m->opt;
    for (int64_t a = 0; a < o->input_axis; a++)
        if (axis_sizes[a] < 1)
            return attn__fail(ATTN_E_SHAPE, "%s: axis_sizes[%lld] must be > 0 (got %lld)", fn, (long long)a,
                              (long long)axis_sizes[a]);
    *n = 1;
    for (int64_t a = 0; a < o->input_axis; a++)
        if (!attn__mul(*n, axis_sizes[a], n))
            return attn__fail(ATTN_E_SHAPE, "%s: the product of axis_sizes overflows int64 (at axis_sizes[%lld] = "
                              "%lld)", fn, (long long)a, (long long)axis_sizes[a]);
    int64_t rows, bytes;
    const int64_t out_row = o->num_classes ? o->num_classes : o->num_latents * o->latent_dim;
    if (!attn__mul(batch, *n, &rows) || !attn__fits_blas_int(rows) ||
        !attn__mul(batch, o->num_latents, &rows) || !attn__fits_blas_int(rows) ||
        !attn__mul3(batch, *n, o->input_channels, &bytes) || !attn__mul(bytes, sizeof(float), &bytes) ||
        !attn__mul3(batch, out_row, sizeof(float), &bytes))
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x N %lld input positions (axis_sizes) is beyond the 32-bit "
                          "index range of BLAS or its tensors have more bytes than int64 can count", fn,
                          (long long)batch, (long long)*n);
    if (forward_flops(m, batch, axis_sizes, *n) > 9.0e18)
        return attn__fail(ATTN_E_SHAPE, "%s: the FLOP count of batch %lld x N %lld input positions overflows int64",
                          fn, (long long)batch, (long long)*n);
    *plan = make_plan(m, batch, axis_sizes, *n);
    if (plan->ws.overflow)
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x N %lld input positions needs a workspace larger than the "
                          "address space", fn, (long long)batch, (long long)*n);
    return ATTN_OK;
}

attn_status attn_perceiver_cost(const attn_perceiver *perceiver, int64_t batch, const int64_t *axis_sizes,
                                attn_cost *out)
{
    static const char fn[] = "attn_perceiver_cost";
    perc_plan plan;
    int64_t n;
    attn_status st = prepare(fn, perceiver, batch, axis_sizes, &n, &plan);
    if (st)
        return st;
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    out->params = attn__params_total(perceiver->params);
    out->flops = (int64_t)forward_flops(perceiver, batch, axis_sizes, n);
    out->workspace_bytes = (int64_t)plan.ws.bytes;
    return ATTN_OK;
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* One forward call's state, shared by the blocks. */
typedef struct perc_run {
    const attn_perceiver *m;
    const perc_plan *plan;
    char *base;        /* the workspace */
    int64_t batch, n;  /* batch elements, input positions of each */
    const uint8_t *mask;
    float *x;          /* [B*M, D]: the latents */
    attn_team team;
} perc_run;

static float *buffer(const perc_run *r, size_t offset) { return (float *)(r->base + offset); }
static const float *weights(const perc_run *r, int64_t index) { return attn__params_cdata(r->m->params, index); }

/* y[i] += bias for each of `rows` rows of width floats. */
static void add_rows(float *y, int64_t rows, int64_t width, const float *bias)
{
    for (int64_t i = 0; i < rows; i++)
        attn__add(y + i * width, bias, width);
}

/* lucidrains' fourier_encode, per axis a of size s and coordinate i < s: [sin(pi x f_k) (K),
 * cos(pi x f_k) (K), x] with x = linspace(-1, 1, s)[i] (-1 when s = 1) and
 * f = linspace(1, max_freq / 2, K) (1 when K = 1). Computed in double, rounded once. */
static void axis_features(const attn_perceiver *m, const int64_t *axis_sizes, float *table)
{
    const int64_t k = m->opt.num_freq_bands, width = 2 * k + 1;
    const double pi = 3.14159265358979323846, top = m->opt.max_freq / 2.0;
    for (int64_t a = 0; a < m->opt.input_axis; a++) {
        const int64_t s = axis_sizes[a];
        for (int64_t i = 0; i < s; i++, table += width) {
            const double x = s > 1 ? -1.0 + 2.0 * (double)i / (double)(s - 1) : -1.0;
            for (int64_t j = 0; j < k; j++) {
                const double f = k > 1 ? 1.0 + (top - 1.0) * (double)j / (double)(k - 1) : 1.0;
                table[j] = (float)sin(pi * x * f);
                table[k + j] = (float)cos(pi * x * f);
            }
            table[2 * k] = (float)x;
        }
    }
}

/* Row r of the axis tables (axes) that position `pos` uses on each axis: the axes are row-major, the
 * last varies fastest, and axis a's rows follow those of the axes before it. */
static void table_rows(const int64_t *axis_sizes, int64_t axes, int64_t n, int64_t pos, int64_t *rows)
{
    for (int64_t a = 0, later = n, first = 0; a < axes; first += axis_sizes[a], a++) {
        later /= axis_sizes[a];
        rows[a] = first + pos / later % axis_sizes[a];
    }
}

/* norm_context's statistics of each context row [data, position features] (an attn_rows_fn): mean
 * and 1 / sqrt(var + eps), from the data row and the sums of the position's axis-table rows. */
typedef struct stats_task {
    const attn_perceiver *m;
    const int64_t *axis_sizes;
    int64_t n;
    const float *data;      /* [B*N, C] */
    const float *axis_sums; /* [sum_a s_a, 2], or NULL without Fourier features */
    float *stats;           /* [B*N, 2] */
} stats_task;

static void row_stats(const void *ctx, int64_t first, int64_t end)
{
    const stats_task *t = ctx;
    const attn_perceiver_options *o = &t->m->opt;
    const int64_t c = o->input_channels, width = t->m->input_dim, p = width - c;
    int64_t rows[3] = {0};
    for (int64_t r = first; r < end; r++) {
        const float *d = t->data + r * c;
        double pos_sum = 0.0, pos_sq = 0.0;
        if (t->axis_sums) {
            table_rows(t->axis_sizes, o->input_axis, t->n, r % t->n, rows);
            for (int64_t a = 0; a < o->input_axis; a++)
                pos_sum += t->axis_sums[2 * rows[a]], pos_sq += t->axis_sums[2 * rows[a] + 1];
        }
        double sum = pos_sum;
        for (int64_t j = 0; j < c; j++)
            sum += d[j];
        const double mean = sum / (double)width;
        /* sum over the position features of (x - mean)^2; they lie in [-1, 1], so in double the
         * expanded form loses nothing that matters */
        double sq = pos_sq - 2.0 * mean * pos_sum + (double)p * mean * mean;
        for (int64_t j = 0; j < c; j++)
            sq += (d[j] - mean) * (d[j] - mean);
        t->stats[2 * r] = (float)mean;
        t->stats[2 * r + 1] = (float)(1.0 / sqrt(sq / (double)width + (double)layer_norm_eps));
    }
}

/* K and V rows [first, end) (an attn_rows_fn): norm_context without its affine, applied after the
 * product, (x - mean 1) W^T / std = (x W^T - mean W 1) / std, where x W^T is the data's share plus
 * the position's, itself the sum over the axes of their table row's share. */
typedef struct kv_task {
    const attn_perceiver *m;
    const int64_t *axis_sizes;
    int64_t n, width;      /* positions; 2 ic */
    const float *axis_kv;  /* [sum_a s_a, 2 ic], or NULL */
    const float *sums;     /* [2 ic]: W 1 */
    const float *stats;    /* [B*N, 2] */
    float *kv;             /* [B*N, 2 ic]: in, the data's share */
} kv_task;

static void kv_rows(const void *ctx, int64_t first, int64_t end)
{
    const kv_task *t = ctx;
    const int64_t axes = t->axis_kv ? t->m->opt.input_axis : 0;
    int64_t rows[3] = {0};
    for (int64_t r = first; r < end; r++) {
        float *row = t->kv + r * t->width;
        table_rows(t->axis_sizes, axes, t->n, r % t->n, rows);
        for (int64_t a = 0; a < axes; a++)
            attn__add(row, t->axis_kv + rows[a] * t->width, t->width);
        const float mean = t->stats[2 * r], inv_std = t->stats[2 * r + 1];
        for (int64_t j = 0; j < t->width; j++)
            row[j] = (row[j] - mean * t->sums[j]) * inv_std;
    }
}

/* Folds the weight set's norm_context into its to_kv product (see the top of this file) and
 * computes K and V of every input row: the data's share kv [B*N, 2 ic] = data W_data^T (one GEMM
 * with C inner), each axis table's share = its rows times its columns of W (one small GEMM per
 * axis, for the whole batch), then per row the sum and the normalization. */
static void context_kv(perc_run *r, const attention_tensors *t, const int64_t *axis_sizes, const float *data)
{
    const attn_perceiver_options *o = &r->m->opt;
    const int64_t c = r->m->input_dim, ch = o->input_channels, ic = r->m->cross_inner, d = o->latent_dim;
    const float *w = weights(r, t->to_kv), *gain = weights(r, t->context_w);
    float *kv_weight = buffer(r, r->plan->kv_weight), *sums = buffer(r, r->plan->kv_sums);
    float *v_bias = buffer(r, r->plan->v_bias), *out_bias = buffer(r, r->plan->out_bias), *kv = buffer(r, r->plan->kv);
    for (int64_t i = 0; i < 2 * ic; i++) {
        double sum = 0.0;
        for (int64_t j = 0; j < c; j++)
            sum += kv_weight[i * c + j] = w[i * c + j] * gain[j];
        sums[i] = (float)sum;
    }
    attn__sgemv(false, ic, c, 1.0f, w + ic * c, c, weights(r, t->context_b), 0.0f, v_bias);
    memcpy(out_bias, weights(r, t->out_b), (size_t)d * sizeof *out_bias);
    attn__sgemv(false, d, ic, 1.0f, weights(r, t->out_w), ic, v_bias, 1.0f, out_bias);
    const int64_t rows = r->batch * r->n, f = 2 * o->num_freq_bands + 1;
    attn__sgemm(false, true, rows, 2 * ic, ch, 1.0f, data, ch, kv_weight, c, 0.0f, kv, 2 * ic);
    float *axis_kv = o->fourier_encode ? buffer(r, r->plan->axis_kv) : NULL;
    const float *table = o->fourier_encode ? buffer(r, r->plan->axes) : NULL;
    for (int64_t a = 0, first = 0; axis_kv && a < o->input_axis; first += axis_sizes[a], a++)
        attn__sgemm(false, true, axis_sizes[a], 2 * ic, f, 1.0f, table + first * f, f, kv_weight + ch + a * f, c, 0.0f,
                    axis_kv + first * 2 * ic, 2 * ic);
    const kv_task task = {r->m, axis_sizes, r->n, 2 * ic, axis_kv, sums, buffer(r, r->plan->row_stats), kv};
    attn__team_run(&r->team, kv_rows, &task, rows, CONTEXT_CHUNK, rows * 2 * ic >= TEAM_MIN_FLOATS);
}

/* True when every one of the n bytes is nonzero. */
static bool all_set(const uint8_t *mask, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        if (!mask[j])
            return false;
    return true;
}

/* x += to_out(Attention(LN(x))) over the B*M latent rows: the cross-attention into the inputs'
 * K and V (kv, with the folded out_bias), or a self-attention among the latents. */
static void attention_block(perc_run *r, const attention_tensors *t, bool cross)
{
    const attn_perceiver_options *o = &r->m->opt;
    const int64_t mm = o->num_latents, d = o->latent_dim, rows = r->batch * mm;
    const int64_t heads = cross ? o->cross_heads : o->latent_heads;
    const int64_t dh = cross ? o->cross_dim_head : o->latent_dim_head, inner = heads * dh;
    const int64_t keys = cross ? r->n : mm; /* per batch element */
    float *normed = buffer(r, r->plan->normed), *q = buffer(r, r->plan->q), *out = buffer(r, r->plan->o);
    attn__layer_norm(rows, d, r->x, d, normed, d, weights(r, t->norm_w), weights(r, t->norm_b), layer_norm_eps);
    attn__sgemm(false, true, rows, inner, d, 1.0f / sqrtf((float)dh), normed, d, weights(r, t->to_q), d, 0.0f, q,
                inner);
    float *kv = buffer(r, cross ? r->plan->kv : r->plan->self_kv);
    if (!cross)
        attn__sgemm(false, true, rows, 2 * inner, d, 1.0f, normed, d, weights(r, t->to_kv), d, 0.0f, kv, 2 * inner);
    const attn_attend_plan plan = attn__attend_plan(mm, keys, dh, ATTN_ATTEND_AUTO);
    for (int64_t b = 0; b < r->batch; b++) {
        const uint8_t *mask = cross && r->mask ? r->mask + b * keys : NULL;
        float *qb = q + b * mm * inner;
        const float *kb = kv + b * keys * 2 * inner;
        if (mask && all_set(mask, keys)) {
            /* lucidrains fills every score with -FLT_MAX: uniform weights over all N positions,
             * which zero queries give without a mask. */
            memset(qb, 0, (size_t)(mm * inner) * sizeof *qb);
            mask = NULL;
        }
        for (int64_t h = 0; h < heads; h++) {
            const attn_head head = {.tgt_len = mm, .src_len = keys, .dh = dh, .q = qb + h * dh, .ldq = inner,
                                    .k = kb + h * dh, .ldk = 2 * inner, .v = kb + inner + h * dh, .ldv = 2 * inner,
                                    .mask = mask, .causal = false};
            attn__attend(&r->team, &head, &plan, r->base + r->plan->attend, out + b * mm * inner + h * dh, inner);
        }
    }
    attn__sgemm(false, true, rows, d, inner, 1.0f, out, inner, weights(r, t->out_w), inner, 1.0f, r->x, d);
    add_rows(r->x, rows, d, cross ? buffer(r, r->plan->out_bias) : weights(r, t->out_b));
}

/* x += FF(LN(x)) over the B*M latent rows: net.0 to [u, gate] (4D each), u * gelu(gate) in the
 * first 4D columns, net.2 from there (leading dimension 8D). */
static void ff_block(perc_run *r, const ff_tensors *t)
{
    const int64_t d = r->m->opt.latent_dim, rows = r->batch * r->m->opt.num_latents;
    float *normed = buffer(r, r->plan->normed), *hidden = buffer(r, r->plan->hidden);
    const float *b0 = weights(r, t->b0);
    attn__layer_norm(rows, d, r->x, d, normed, d, weights(r, t->norm_w), weights(r, t->norm_b), layer_norm_eps);
    attn__sgemm(false, true, rows, 8 * d, d, 1.0f, normed, d, weights(r, t->w0), d, 0.0f, hidden, 8 * d);
    for (int64_t i = 0; i < rows; i++) {
        float *u = hidden + i * 8 * d, *gate = u + 4 * d;
        attn__add(u, b0, 8 * d);
        attn__gelu(gate, 4 * d);
        for (int64_t j = 0; j < 4 * d; j++)
            u[j] *= gate[j];
    }
    attn__sgemm(false, true, rows, d, 4 * d, 1.0f, hidden, 8 * d, weights(r, t->w2), 4 * d, 1.0f, r->x, d);
    add_rows(r->x, rows, d, weights(r, t->b2));
}

/* out [B, num_classes] = to_logits.2(LayerNorm(mean over the latents)). */
static void head(perc_run *r, float *out)
{
    const attn_perceiver *m = r->m;
    const int64_t mm = m->opt.num_latents, d = m->opt.latent_dim, classes = m->opt.num_classes;
    float *pooled = buffer(r, r->plan->pooled);
    memset(pooled, 0, (size_t)(r->batch * d) * sizeof *pooled);
    for (int64_t b = 0; b < r->batch; b++) {
        for (int64_t i = 0; i < mm; i++)
            attn__add(pooled + b * d, r->x + (b * mm + i) * d, d);
        attn__scale(pooled + b * d, d, 1.0f / (float)mm);
    }
    attn__layer_norm(r->batch, d, pooled, d, pooled, d, weights(r, m->logits_norm_w), weights(r, m->logits_norm_b),
                     layer_norm_eps);
    attn__sgemm(false, true, r->batch, classes, d, 1.0f, pooled, d, weights(r, m->logits_w), d, 0.0f, out, classes);
    add_rows(out, r->batch, classes, weights(r, m->logits_b));
}

attn_status attn_perceiver_forward(const attn_perceiver *perceiver, attn_workspace *ws, int64_t batch,
                                   const int64_t *axis_sizes, const float *data, const uint8_t *mask, float *out)
{
    static const char fn[] = "attn_perceiver_forward";
    perc_plan plan;
    int64_t n;
    attn_status st = prepare(fn, perceiver, batch, axis_sizes, &n, &plan);
    if (st)
        return st;
    if (!data || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, data ? "out" : "data");
    const attn_perceiver *m = perceiver;
    const attn_perceiver_options *o = &m->opt;
    const size_t f = sizeof(float), rows = (size_t)(batch * n);
    const size_t out_floats =
        (size_t)batch * (size_t)(o->num_classes ? o->num_classes : o->num_latents * o->latent_dim);
    const attn_buffer inputs[] = {{"data", data, rows * (size_t)o->input_channels * f},
                                  {"mask", mask, rows},
                                  {"axis_sizes", axis_sizes, (size_t)o->input_axis * sizeof *axis_sizes}};
    const attn_buffer output = {"out", out, out_floats * f};
    if ((st = attn__check_aliasing(fn, inputs, 3, &output, 1)))
        return st;

    attn_ws_lease lease = {0};
    perc_run r = {.m = m, .plan = &plan, .batch = batch, .n = n, .mask = mask, .team = ATTN__TEAM_INIT};
    if ((st = attn__workspace_reserve(fn, ws, &lease, plan.ws.bytes, &r.base)))
        return st;
    r.x = o->num_classes ? buffer(&r, plan.latents) : out;

    float *table = o->fourier_encode ? buffer(&r, plan.axes) : NULL;
    if (table)
        axis_features(m, axis_sizes, table);
    float *axis_sums = table ? buffer(&r, plan.axis_sums) : NULL;
    if (table) { /* the sum and sum of squares of each table row, for norm_context's statistics */
        const int64_t f = 2 * o->num_freq_bands + 1;
        for (int64_t a = 0, row = 0; a < o->input_axis; a++)
            for (int64_t i = 0; i < axis_sizes[a]; i++, row++) {
                double sum = 0.0, sq = 0.0;
                for (int64_t j = 0; j < f; j++)
                    sum += table[row * f + j], sq += (double)table[row * f + j] * table[row * f + j];
                axis_sums[2 * row] = (float)sum, axis_sums[2 * row + 1] = (float)sq;
            }
    }
    const stats_task stats = {m, axis_sizes, n, data, axis_sums, buffer(&r, plan.row_stats)};
    attn__team_run(&r.team, row_stats, &stats, batch * n, CONTEXT_CHUNK,
                   (int64_t)rows * o->input_channels >= TEAM_MIN_FLOATS);
    const int64_t mm = o->num_latents, d = o->latent_dim, blocks = 1 + o->self_per_cross_attn;
    for (int64_t b = 0; b < batch; b++)
        memcpy(r.x + b * mm * d, weights(&r, m->latents), (size_t)(mm * d) * f);

    for (int64_t layer = 0, kv_set = -1; layer < o->depth; layer++) {
        const int64_t set = set_of(m, layer);
        const attention_tensors *attn = m->attn + set * blocks;
        const ff_tensors *ff = m->ff + set * blocks;
        if (set != kv_set) { /* the tied layers >= 2 reuse layer 1's K and V */
            context_kv(&r, &attn[0], axis_sizes, data);
            kv_set = set;
        }
        attention_block(&r, &attn[0], true);
        ff_block(&r, &ff[0]);
        for (int64_t j = 1; j < blocks; j++) {
            attention_block(&r, &attn[j], false);
            ff_block(&r, &ff[j]);
        }
    }
    if (o->num_classes)
        head(&r, out);
    attn__team_stop(&r.team);
    attn__workspace_release(&lease);
    return ATTN_OK;
}
