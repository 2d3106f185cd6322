/*
 * test_perceiver.c: the Perceiver (attn_perceiver, include/attn/perceiver.h, docs/perceiver.md).
 *
 * Ground truth: a float64 reference of the equations of docs/perceiver.md written below (Fourier
 * features, PreNorm cross- and self-attention with lucidrains' masked_fill(-FLT_MAX) masks, GEGLU
 * feed-forward with the exact erf GELU, the head), which reads every layer's weights by its
 * PyTorch state_dict name (layers.{i}.*, aliases of tied layers included) through attn_params_get
 * and applies norm_context and to_kv to the inputs in every layer as PyTorch does (libattn folds
 * norm_context's affine into the product and computes K and V once per weight set, so this checks
 * that fold). Invariants: permuting the input positions together with the mask (no Fourier
 * features) leaves the output unchanged; tied and untied models with equal weights agree bit for
 * bit, also loaded from one lucidrains-style safetensors file that repeats the tied layers; the
 * data at masked positions does not matter; workspace or not, 8 threads on one handle: bit for bit
 * the same. Costs against their closed form (FLOPs, workspace = what forward reserves), and every
 * error path of perceiver.h (status, the message naming the argument, outputs untouched). The
 * PyTorch comparison is tests/python/test_perceiver_torch.py.
 *
 * Tolerance of the float32-vs-float64 comparisons: TOL (test_util.h),
 *     max |got - ref| <= 1e-5 * max(1, max |ref|)
 * over the whole output; the largest error measured here is 5e-7 of that scale (float32 rounding
 * of products over at most a few hundred terms, and of softmax sums over up to 70001 keys).
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <float.h>
#include <stdbool.h>
#include <unistd.h>

#include "attn/perceiver.h"

static const double PI = 3.14159265358979323846;

/* ---- configurations ------------------------------------------------------------------------- */

typedef struct perc_cfg {
    int64_t c, axis, k;
    double max_freq;
    int32_t fourier;
    int64_t depth, m, d, ch, cdh, lh, ldh, spc;
    int32_t tie;
    int64_t classes;
    int64_t sizes[3]; /* axis_sizes of the forward calls */
} perc_cfg;

static attn_perceiver_options cfg_options(const perc_cfg *c)
{
    attn_perceiver_options o;
    ASSERT_OK(attn_perceiver_options_init(&o));
    o.input_channels = c->c;
    o.input_axis = c->axis;
    o.num_freq_bands = c->k;
    o.max_freq = c->max_freq;
    o.fourier_encode = c->fourier;
    o.depth = c->depth;
    o.num_latents = c->m;
    o.latent_dim = c->d;
    o.cross_heads = c->ch;
    o.cross_dim_head = c->cdh;
    o.latent_heads = c->lh;
    o.latent_dim_head = c->ldh;
    o.self_per_cross_attn = c->spc;
    o.weight_tie_layers = c->tie;
    o.num_classes = c->classes;
    return o;
}

static attn_perceiver *create(const perc_cfg *c)
{
    attn_perceiver_options o = cfg_options(c);
    attn_perceiver *m = NULL;
    ASSERT_OK(attn_perceiver_create(&m, &o));
    return m;
}

static int64_t positions(const perc_cfg *c)
{
    int64_t n = 1;
    for (int64_t a = 0; a < c->axis; a++)
        n *= c->sizes[a];
    return n;
}

static int64_t input_dim(const perc_cfg *c) { return c->c + (c->fourier ? c->axis * (2 * c->k + 1) : 0); }

static int64_t out_count(const perc_cfg *c, int64_t batch) { return batch * (c->classes ? c->classes : c->m * c->d); }

static void describe(const perc_cfg *c, int64_t batch, char *buf, size_t size)
{
    snprintf(buf, size,
             "C=%lld axes=%lld (%lld,%lld,%lld) K=%lld fourier=%d depth=%lld M=%lld D=%lld cross %lldx%lld latent "
             "%lldx%lld spc=%lld tie=%d classes=%lld B=%lld",
             (long long)c->c, (long long)c->axis, (long long)c->sizes[0], (long long)c->sizes[1],
             (long long)c->sizes[2], (long long)c->k, c->fourier, (long long)c->depth, (long long)c->m,
             (long long)c->d, (long long)c->ch, (long long)c->cdh, (long long)c->lh, (long long)c->ldh,
             (long long)c->spc, c->tie, (long long)c->classes, (long long)batch);
}

/* Random weights from `seed`; the LayerNorm affines (1 and 0 after init) get random values too,
 * so that the fold of norm_context into to_kv and to_out is checked. */
static void randomize(attn_perceiver *m, uint64_t seed)
{
    attn_params *p = attn_perceiver_params(m);
    ASSERT_OK(attn_params_init(p, seed));
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        const size_t len = strlen(info.name);
        const int weight = len > 7 && !strcmp(info.name + len - 7, ".weight");
        if (!strstr(info.name, "norm") && strncmp(info.name, "to_logits.1.", 12))
            continue;
        float *v = random_floats(info.count, seed * 7919 + (uint64_t)i, weight ? 0.5 : 0.3);
        for (int64_t k = 0; weight && k < info.count; k++)
            v[k] += 1.0f;
        ASSERT_OK(attn_params_set(p, info.name, v, info.count));
        free(v);
    }
}

/* ---- the float64 reference of docs/perceiver.md --------------------------------------------- */

/* The tensor called printf(fmt, ...) (any accepted name, aliases included), as doubles. */
static double *tensor_f64(const attn_perceiver *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static double *tensor_f64(const attn_perceiver *m, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const attn_params *p = attn_perceiver_params((attn_perceiver *)m);
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, name, &info));
    float *a = xmalloc((size_t)info.count * sizeof *a);
    ASSERT_OK(attn_params_get(p, name, a, info.count));
    double *d = to_f64(a, info.count);
    free(a);
    return d;
}

/* y [rows, out] = x [rows, in] W^T + b (b may be NULL); W (out, in). */
static void ref_linear(const double *x, int64_t rows, int64_t in, const double *w, const double *b, int64_t out,
                       double *y)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < in; i++)
                s += x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
}

/* nn.LayerNorm(width, eps 1e-5) of every row, with the tensors prefix.weight and prefix.bias. */
static void ref_layer_norm(const attn_perceiver *m, const char *prefix, const double *x, int64_t rows, int64_t width,
                           double *y)
{
    double *w = tensor_f64(m, "%s.weight", prefix), *b = tensor_f64(m, "%s.bias", prefix);
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < width; i++)
            mean += x[r * width + i];
        mean /= (double)width;
        for (int64_t i = 0; i < width; i++)
            var += (x[r * width + i] - mean) * (x[r * width + i] - mean);
        var /= (double)width;
        for (int64_t i = 0; i < width; i++)
            y[r * width + i] = (x[r * width + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
    }
    free(w), free(b);
}

/* x [mm, d] += to_out(Attention(xn, ctx)) with prefix's fn.to_q, fn.to_kv, fn.to_out; ctx [s, cw]
 * already normalized; mask [s] (nonzero = masked: the score becomes -FLT_MAX, lucidrains'
 * masked_fill, here -DBL_MAX) or NULL. */
static void ref_attention(const attn_perceiver *m, const char *prefix, int64_t heads, int64_t dh, const double *xn,
                          int64_t mm, int64_t d, const double *ctx, int64_t s, int64_t cw, const uint8_t *mask,
                          double *x)
{
    const int64_t inner = heads * dh;
    double *wq = tensor_f64(m, "%s.fn.to_q.weight", prefix), *wkv = tensor_f64(m, "%s.fn.to_kv.weight", prefix);
    double *wo = tensor_f64(m, "%s.fn.to_out.weight", prefix), *bo = tensor_f64(m, "%s.fn.to_out.bias", prefix);
    double *q = new_doubles(mm * inner), *kv = new_doubles(s * 2 * inner), *o = new_doubles(mm * inner);
    double *sim = new_doubles(s), *y = new_doubles(mm * d);
    ref_linear(xn, mm, d, wq, NULL, inner, q);
    ref_linear(ctx, s, cw, wkv, NULL, 2 * inner, kv);
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < mm; i++) {
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < s; j++) {
                double dot = 0.0;
                for (int64_t e = 0; e < dh; e++)
                    dot += q[i * inner + h * dh + e] * kv[j * 2 * inner + h * dh + e];
                sim[j] = mask && mask[j] ? -DBL_MAX : dot / sqrt((double)dh);
                mx = fmax(mx, sim[j]);
            }
            for (int64_t j = 0; j < s; j++)
                sum += sim[j] = exp(sim[j] - mx);
            for (int64_t e = 0; e < dh; e++) {
                double acc = 0.0;
                for (int64_t j = 0; j < s; j++)
                    acc += sim[j] / sum * kv[j * 2 * inner + inner + h * dh + e];
                o[i * inner + h * dh + e] = acc;
            }
        }
    ref_linear(o, mm, inner, wo, bo, d, y);
    for (int64_t i = 0; i < mm * d; i++)
        x[i] += y[i];
    free(wq), free(wkv), free(wo), free(bo), free(q), free(kv), free(o), free(sim), free(y);
}

/* x [mm, d] += FF(LN(x)) with prefix's norm, fn.net.0, fn.net.2: GEGLU with the exact erf GELU. */
static void ref_ff(const attn_perceiver *m, const char *prefix, int64_t mm, int64_t d, double *x)
{
    char name[96];
    snprintf(name, sizeof name, "%s.norm", prefix);
    double *xn = new_doubles(mm * d), *hidden = new_doubles(mm * 8 * d), *a = new_doubles(mm * 4 * d);
    double *y = new_doubles(mm * d);
    double *w0 = tensor_f64(m, "%s.fn.net.0.weight", prefix), *b0 = tensor_f64(m, "%s.fn.net.0.bias", prefix);
    double *w2 = tensor_f64(m, "%s.fn.net.2.weight", prefix), *b2 = tensor_f64(m, "%s.fn.net.2.bias", prefix);
    ref_layer_norm(m, name, x, mm, d, xn);
    ref_linear(xn, mm, d, w0, b0, 8 * d, hidden);
    for (int64_t r = 0; r < mm; r++)
        for (int64_t j = 0; j < 4 * d; j++) {
            const double g = hidden[r * 8 * d + 4 * d + j];
            a[r * 4 * d + j] = hidden[r * 8 * d + j] * 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
        }
    ref_linear(a, mm, 4 * d, w2, b2, d, y);
    for (int64_t i = 0; i < mm * d; i++)
        x[i] += y[i];
    free(xn), free(hidden), free(a), free(y), free(w0), free(b0), free(w2), free(b2);
}

/* The context rows of one batch element [N, C']: its data, then per axis [sin(pi x f_k),
 * cos(pi x f_k), x] with x = linspace(-1, 1, s) and f = linspace(1, max_freq / 2, K). */
static void ref_context(const perc_cfg *c, const float *data, double *ctx)
{
    const int64_t n = positions(c), cw = input_dim(c), k = c->k;
    for (int64_t p = 0; p < n; p++) {
        double *row = ctx + p * cw;
        for (int64_t i = 0; i < c->c; i++)
            row[i] = data[p * c->c + i];
        int64_t rest = p, index[3];
        for (int64_t a = c->axis - 1; a >= 0; a--) {
            index[a] = rest % c->sizes[a];
            rest /= c->sizes[a];
        }
        for (int64_t a = 0; c->fourier && a < c->axis; a++) {
            const int64_t s = c->sizes[a];
            const double x = s == 1 ? -1.0 : -1.0 + 2.0 * (double)index[a] / (double)(s - 1);
            double *f = row + c->c + a * (2 * k + 1);
            for (int64_t j = 0; j < k; j++) {
                const double freq = k == 1 ? 1.0 : 1.0 + (c->max_freq / 2.0 - 1.0) * (double)j / (double)(k - 1);
                f[j] = sin(PI * x * freq);
                f[k + j] = cos(PI * x * freq);
            }
            f[2 * k] = x;
        }
    }
}

/* out: [batch, classes] or [batch, M, D]. */
static void ref_forward(const attn_perceiver *m, const perc_cfg *c, int64_t batch, const float *data,
                        const uint8_t *mask, double *out)
{
    const int64_t n = positions(c), cw = input_dim(c), mm = c->m, d = c->d;
    double *latents = tensor_f64(m, "latents");
    double *ctx = new_doubles(n * cw), *ctxn = new_doubles(n * cw), *x = new_doubles(mm * d);
    double *xn = new_doubles(mm * d), *pooled = new_doubles(d);
    char prefix[64], norm[80];
    for (int64_t b = 0; b < batch; b++) {
        ref_context(c, data + b * n * c->c, ctx);
        memcpy(x, latents, (size_t)(mm * d) * sizeof *x);
        for (int64_t i = 0; i < c->depth; i++) {
            snprintf(prefix, sizeof prefix, "layers.%lld.0", (long long)i);
            snprintf(norm, sizeof norm, "%s.norm", prefix);
            ref_layer_norm(m, norm, x, mm, d, xn);
            snprintf(norm, sizeof norm, "%s.norm_context", prefix);
            ref_layer_norm(m, norm, ctx, n, cw, ctxn);
            ref_attention(m, prefix, c->ch, c->cdh, xn, mm, d, ctxn, n, cw, mask ? mask + b * n : NULL, x);
            snprintf(prefix, sizeof prefix, "layers.%lld.1", (long long)i);
            ref_ff(m, prefix, mm, d, x);
            for (int64_t j = 0; j < c->spc; j++) {
                snprintf(prefix, sizeof prefix, "layers.%lld.2.%lld.0", (long long)i, (long long)j);
                snprintf(norm, sizeof norm, "%s.norm", prefix);
                ref_layer_norm(m, norm, x, mm, d, xn);
                ref_attention(m, prefix, c->lh, c->ldh, xn, mm, d, xn, mm, d, NULL, x);
                snprintf(prefix, sizeof prefix, "layers.%lld.2.%lld.1", (long long)i, (long long)j);
                ref_ff(m, prefix, mm, d, x);
            }
        }
        if (!c->classes) {
            memcpy(out + b * mm * d, x, (size_t)(mm * d) * sizeof *x);
            continue;
        }
        for (int64_t e = 0; e < d; e++) {
            pooled[e] = 0.0;
            for (int64_t i = 0; i < mm; i++)
                pooled[e] += x[i * d + e] / (double)mm;
        }
        ref_layer_norm(m, "to_logits.1", pooled, 1, d, pooled);
        double *w = tensor_f64(m, "to_logits.2.weight"), *bias = tensor_f64(m, "to_logits.2.bias");
        ref_linear(pooled, 1, d, w, bias, c->classes, out + b * c->classes);
        free(w), free(bias);
    }
    free(latents), free(ctx), free(ctxn), free(x), free(xn), free(pooled);
}

/* ---- forward against the reference ---------------------------------------------------------- */

/* Masks of a batch: element 0 sees everything, 1 all but one or two positions (most masked), 2
 * nothing (uniform attention, as lucidrains), the others a random third masked. */
static uint8_t *make_mask(int64_t batch, int64_t n, uint64_t seed)
{
    uint8_t *mask = xmalloc((size_t)(batch * n));
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < n; j++) {
            uint8_t v = b == 1 ? (j != n / 2 && j != n - 1) : b == 2 ? 1 : b > 2 ? rng_next(&seed) % 3 == 0 : 0;
            mask[b * n + j] = v ? (uint8_t)(1 + j % 200) : 0; /* any nonzero byte masks */
        }
    return mask;
}

static float *run(const attn_perceiver *m, const perc_cfg *c, attn_workspace *ws, int64_t batch, const float *data,
                  const uint8_t *mask)
{
    float *out = filled_floats(out_count(c, batch), NAN);
    ASSERT_OK(attn_perceiver_forward(m, ws, batch, c->sizes, data, mask, out));
    return out;
}

static void check_against_reference(const perc_cfg *c, int64_t batch, bool masked, uint64_t seed)
{
    attn_perceiver *m = create(c);
    randomize(m, seed);
    const int64_t n = positions(c);
    float *data = random_floats(batch * n * c->c, seed + 1, 2.0);
    uint8_t *mask = masked ? make_mask(batch, n, seed + 2) : NULL;
    float *got = run(m, c, NULL, batch, data, mask);
    double *want = new_doubles(out_count(c, batch));
    ref_forward(m, c, batch, data, mask, want);
    char ctx[320];
    describe(c, batch, ctx, sizeof ctx);
    check_close(ctx, masked ? "out (masked)" : "out", want, got, out_count(c, batch));
    free(data), free(mask), free(got), free(want);
    attn_perceiver_destroy(m);
}

static const perc_cfg cfgs[] = {
    /* axis 1, one layer, no head */
    {.c = 3, .axis = 1, .k = 3, .max_freq = 5.0, .fourier = 1, .depth = 1, .m = 5, .d = 12, .ch = 1, .cdh = 7, .lh = 2,
     .ldh = 5, .spc = 1, .sizes = {11}},
    /* axis 2, two untied layers, two self blocks, two cross heads, head */
    {.c = 2, .axis = 2, .k = 2, .max_freq = 6.5, .fourier = 1, .depth = 2, .m = 7, .d = 10, .ch = 2, .cdh = 4, .lh = 3,
     .ldh = 3, .spc = 2, .classes = 5, .sizes = {3, 5}},
    /* axis 3, three tied layers, no self-attention, head */
    {.c = 1, .axis = 3, .k = 1, .max_freq = 3.0, .fourier = 1, .depth = 3, .m = 3, .d = 8, .ch = 1, .cdh = 5, .lh = 1,
     .ldh = 8, .spc = 0, .tie = 1, .classes = 4, .sizes = {2, 3, 4}},
    /* no Fourier features, tied, two self blocks, two cross heads */
    {.c = 6, .axis = 2, .fourier = 0, .depth = 3, .m = 4, .d = 9, .ch = 2, .cdh = 3, .lh = 3, .ldh = 4, .spc = 2,
     .tie = 1, .sizes = {4, 4}},
    /* a single latent, no Fourier features, tied depth 2, head */
    {.c = 5, .axis = 1, .fourier = 0, .depth = 2, .m = 1, .d = 6, .ch = 1, .cdh = 6, .lh = 2, .ldh = 2, .spc = 1,
     .tie = 1, .classes = 3, .sizes = {9}},
    /* axes of size 1 (their coordinate is -1), untied depth 3 */
    {.c = 2, .axis = 3, .k = 4, .max_freq = 9.0, .fourier = 1, .depth = 3, .m = 6, .d = 7, .ch = 2, .cdh = 2, .lh = 1,
     .ldh = 7, .spc = 1, .sizes = {1, 5, 1}},
    /* larger: several blocks of query rows in the self-attention, 667 inputs */
    {.c = 3, .axis = 2, .k = 6, .max_freq = 12.0, .fourier = 1, .depth = 2, .m = 33, .d = 24, .ch = 2, .cdh = 16,
     .lh = 4, .ldh = 8, .spc = 1, .tie = 1, .classes = 7, .sizes = {23, 29}},
};

static void test_forward(void **state)
{
    (void)state;
    for (int i = 0; i < COUNT_OF(cfgs); i++) {
        check_against_reference(&cfgs[i], 1, false, 100 + (uint64_t)i);
        check_against_reference(&cfgs[i], 1, true, 200 + (uint64_t)i); /* batch 1: element 0 sees all */
        check_against_reference(&cfgs[i], 4, false, 300 + (uint64_t)i);
        check_against_reference(&cfgs[i], 4, true, 400 + (uint64_t)i);
    }
}

/* 70001 inputs against 32 latents: the attention kernel streams tiles of keys (its score block
 * would exceed 8 MiB). */
static void test_forward_streaming(void **state)
{
    (void)state;
    const perc_cfg c = {.c = 3, .axis = 1, .k = 1, .max_freq = 4.0, .fourier = 1, .depth = 2, .m = 32, .d = 8,
                        .ch = 2, .cdh = 4, .lh = 2, .ldh = 4, .spc = 1, .tie = 1, .classes = 2, .sizes = {70001}};
    check_against_reference(&c, 3, true, 77);
}

/* ---- invariants ------------------------------------------------------------------------------- */

/* Without Fourier features, the cross-attention sees the inputs as a set: permuting the positions
 * together with the mask changes nothing. */
static void test_permutation_invariance(void **state)
{
    (void)state;
    const perc_cfg c = {.c = 4, .axis = 2, .fourier = 0, .depth = 2, .m = 5, .d = 8, .ch = 2, .cdh = 4, .lh = 2,
                        .ldh = 4, .spc = 1, .classes = 3, .sizes = {6, 7}};
    attn_perceiver *m = create(&c);
    randomize(m, 5);
    const int64_t batch = 4, n = positions(&c);
    float *data = random_floats(batch * n * c.c, 6, 1.0);
    float *shuffled = xmalloc((size_t)(batch * n * c.c) * sizeof(float));
    uint8_t *mask = make_mask(batch, n, 7), *shuffled_mask = xmalloc((size_t)(batch * n));
    int64_t *perm = xmalloc((size_t)n * sizeof *perm);
    uint64_t s = 8;
    for (int64_t j = 0; j < n; j++)
        perm[j] = j;
    for (int64_t j = n - 1; j > 0; j--) { /* Fisher-Yates */
        const int64_t k = (int64_t)(rng_next(&s) % (uint64_t)(j + 1)), t = perm[j];
        perm[j] = perm[k];
        perm[k] = t;
    }
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < n; j++) {
            memcpy(shuffled + (b * n + j) * c.c, data + (b * n + perm[j]) * c.c, (size_t)c.c * sizeof(float));
            shuffled_mask[b * n + j] = mask[b * n + perm[j]];
        }
    float *a = run(m, &c, NULL, batch, data, mask), *b = run(m, &c, NULL, batch, shuffled, shuffled_mask);
    check_close_f32("permuted inputs", "out", a, b, out_count(&c, batch), TOL);
    free(a), free(b), free(data), free(shuffled), free(mask), free(shuffled_mask), free(perm);
    attn_perceiver_destroy(m);
}

/* What masked positions hold does not matter (their exponentials are exactly 0). */
static void test_masked_data_ignored(void **state)
{
    (void)state;
    const perc_cfg *c = &cfgs[1];
    attn_perceiver *m = create(c);
    randomize(m, 9);
    const int64_t batch = 5, n = positions(c);
    float *data = random_floats(batch * n * c->c, 10, 1.0);
    uint8_t *mask = make_mask(batch, n, 11);
    float *a = run(m, c, NULL, batch, data, mask);
    uint64_t s = 12;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; mask[b * n + j] && b != 2 && i < c->c; i++) /* b 2 is fully masked: uniform */
                data[(b * n + j) * c->c + i] = (float)(100.0 * rng_uniform(&s));
    float *b = run(m, c, NULL, batch, data, mask);
    expect_bits_equal("masked data changed", "out", a, b, out_count(c, batch));
    free(a), free(b), free(data), free(mask);
    attn_perceiver_destroy(m);
}

/* Copies every tensor of `to` from `from` by name (a tied `from` answers layers.{i>=2} through its
 * aliases). */
static void copy_weights(attn_perceiver *to, const attn_perceiver *from)
{
    attn_params *pt = attn_perceiver_params(to);
    const attn_params *pf = attn_perceiver_params((attn_perceiver *)from);
    for (int64_t i = 0; i < attn_params_count(pt); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(pt, i, &info));
        float *v = xmalloc((size_t)info.count * sizeof *v);
        ASSERT_OK(attn_params_get(pf, info.name, v, info.count));
        ASSERT_OK(attn_params_set(pt, info.name, v, info.count));
        free(v);
    }
}

/* Tied and untied models with equal weights agree bit for bit (the tied one computes the inputs'
 * K and V twice per forward, the untied one `depth` times). */
static void test_tied_equals_untied(void **state)
{
    (void)state;
    perc_cfg c = {.c = 3, .axis = 2, .k = 3, .max_freq = 7.0, .fourier = 1, .depth = 4, .m = 6, .d = 10, .ch = 2,
                  .cdh = 5, .lh = 2, .ldh = 5, .spc = 2, .tie = 1, .classes = 0, .sizes = {5, 6}};
    for (int head = 0; head < 2; head++) {
        c.classes = head ? 3 : 0;
        c.tie = 1;
        attn_perceiver *tied = create(&c);
        randomize(tied, 21);
        c.tie = 0;
        attn_perceiver *untied = create(&c);
        copy_weights(untied, tied);
        const int64_t batch = 3, n = positions(&c);
        float *data = random_floats(batch * n * c.c, 22, 1.0);
        uint8_t *mask = make_mask(batch, n, 23);
        float *a = run(tied, &c, NULL, batch, data, mask), *b = run(untied, &c, NULL, batch, data, mask);
        expect_bits_equal("tied vs untied", "out", a, b, out_count(&c, batch));
        attn_cost ct, cu;
        ASSERT_OK(attn_perceiver_cost(tied, batch, c.sizes, &ct));
        ASSERT_OK(attn_perceiver_cost(untied, batch, c.sizes, &cu));
        assert_true(ct.params < cu.params);
        assert_true(ct.flops < cu.flops); /* K and V of the inputs: 2 instead of depth GEMMs */
        assert_int_equal(ct.workspace_bytes, cu.workspace_bytes);
        free(a), free(b), free(data), free(mask);
        attn_perceiver_destroy(tied);
        attn_perceiver_destroy(untied);
    }
}

/* ---- parameters ------------------------------------------------------------------------------ */

typedef struct want_tensor {
    const char *name;
    int64_t ndim, shape[2];
} want_tensor;

static void check_layout(const attn_perceiver *m, const want_tensor *want, int count)
{
    const attn_params *p = attn_perceiver_params((attn_perceiver *)m);
    assert_int_equal(attn_params_count(p), count);
    for (int i = 0; i < count; i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        if (strcmp(info.name, want[i].name))
            fail_msg("tensor %d is '%s', want '%s'", i, info.name, want[i].name);
        assert_int_equal(info.ndim, want[i].ndim);
        for (int d = 0; d < want[i].ndim; d++)
            assert_int_equal(info.shape[d], want[i].shape[d]);
    }
}

/* lucidrains' state_dict order and shapes; C' = 2 + 2 (2*3 + 1) = 16, D = 4, cross 2x3, latent 1x5. */
static void test_params_layout(void **state)
{
    (void)state;
    const perc_cfg c = {.c = 2, .axis = 2, .k = 3, .max_freq = 4.0, .fourier = 1, .depth = 3, .m = 5, .d = 4, .ch = 2,
                        .cdh = 3, .lh = 1, .ldh = 5, .spc = 1, .tie = 1, .classes = 7, .sizes = {2, 2}};
    attn_perceiver *m = create(&c);
    static const want_tensor want[] = {
        {"latents", 2, {5, 4}},
        {"layers.0.0.fn.to_q.weight", 2, {6, 4}},
        {"layers.0.0.fn.to_kv.weight", 2, {12, 16}},
        {"layers.0.0.fn.to_out.weight", 2, {4, 6}},
        {"layers.0.0.fn.to_out.bias", 1, {4}},
        {"layers.0.0.norm.weight", 1, {4}},
        {"layers.0.0.norm.bias", 1, {4}},
        {"layers.0.0.norm_context.weight", 1, {16}},
        {"layers.0.0.norm_context.bias", 1, {16}},
        {"layers.0.1.fn.net.0.weight", 2, {32, 4}},
        {"layers.0.1.fn.net.0.bias", 1, {32}},
        {"layers.0.1.fn.net.2.weight", 2, {4, 16}},
        {"layers.0.1.fn.net.2.bias", 1, {4}},
        {"layers.0.1.norm.weight", 1, {4}},
        {"layers.0.1.norm.bias", 1, {4}},
        {"layers.0.2.0.0.fn.to_q.weight", 2, {5, 4}},
        {"layers.0.2.0.0.fn.to_kv.weight", 2, {10, 4}},
        {"layers.0.2.0.0.fn.to_out.weight", 2, {4, 5}},
        {"layers.0.2.0.0.fn.to_out.bias", 1, {4}},
        {"layers.0.2.0.0.norm.weight", 1, {4}},
        {"layers.0.2.0.0.norm.bias", 1, {4}},
        {"layers.0.2.0.1.fn.net.0.weight", 2, {32, 4}},
        {"layers.0.2.0.1.fn.net.0.bias", 1, {32}},
        {"layers.0.2.0.1.fn.net.2.weight", 2, {4, 16}},
        {"layers.0.2.0.1.fn.net.2.bias", 1, {4}},
        {"layers.0.2.0.1.norm.weight", 1, {4}},
        {"layers.0.2.0.1.norm.bias", 1, {4}},
        {"layers.1.0.fn.to_q.weight", 2, {6, 4}},
        {"layers.1.0.fn.to_kv.weight", 2, {12, 16}},
        {"layers.1.0.fn.to_out.weight", 2, {4, 6}},
        {"layers.1.0.fn.to_out.bias", 1, {4}},
        {"layers.1.0.norm.weight", 1, {4}},
        {"layers.1.0.norm.bias", 1, {4}},
        {"layers.1.0.norm_context.weight", 1, {16}},
        {"layers.1.0.norm_context.bias", 1, {16}},
        {"layers.1.1.fn.net.0.weight", 2, {32, 4}},
        {"layers.1.1.fn.net.0.bias", 1, {32}},
        {"layers.1.1.fn.net.2.weight", 2, {4, 16}},
        {"layers.1.1.fn.net.2.bias", 1, {4}},
        {"layers.1.1.norm.weight", 1, {4}},
        {"layers.1.1.norm.bias", 1, {4}},
        {"layers.1.2.0.0.fn.to_q.weight", 2, {5, 4}},
        {"layers.1.2.0.0.fn.to_kv.weight", 2, {10, 4}},
        {"layers.1.2.0.0.fn.to_out.weight", 2, {4, 5}},
        {"layers.1.2.0.0.fn.to_out.bias", 1, {4}},
        {"layers.1.2.0.0.norm.weight", 1, {4}},
        {"layers.1.2.0.0.norm.bias", 1, {4}},
        {"layers.1.2.0.1.fn.net.0.weight", 2, {32, 4}},
        {"layers.1.2.0.1.fn.net.0.bias", 1, {32}},
        {"layers.1.2.0.1.fn.net.2.weight", 2, {4, 16}},
        {"layers.1.2.0.1.fn.net.2.bias", 1, {4}},
        {"layers.1.2.0.1.norm.weight", 1, {4}},
        {"layers.1.2.0.1.norm.bias", 1, {4}},
        {"to_logits.1.weight", 1, {4}},
        {"to_logits.1.bias", 1, {4}},
        {"to_logits.2.weight", 2, {7, 4}},
        {"to_logits.2.bias", 1, {7}},
    };
    check_layout(m, want, COUNT_OF(want));
    int64_t total = 0;
    for (int i = 0; i < COUNT_OF(want); i++)
        total += want[i].shape[0] * (want[i].ndim == 2 ? want[i].shape[1] : 1);
    attn_cost cost;
    ASSERT_OK(attn_perceiver_cost(m, 1, c.sizes, &cost));
    assert_int_equal(cost.params, total);

    /* layers.2.* are aliases of layers.1.*: found under layer 1's name, and a set through one is seen
     * under the other */
    attn_params *p = attn_perceiver_params(m);
    for (int i = 27; i < 53; i++) {
        char alias[96];
        snprintf(alias, sizeof alias, "layers.2.%s", want[i].name + strlen("layers.1."));
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(p, alias, &info));
        assert_string_equal(info.name, want[i].name);
        float *v = random_floats(info.count, (uint64_t)i, 1.0), *got = xmalloc((size_t)info.count * sizeof *got);
        ASSERT_OK(attn_params_set(p, alias, v, info.count));
        ASSERT_OK(attn_params_get(p, want[i].name, got, info.count));
        expect_bits_equal(alias, "set through the alias", v, got, info.count);
        free(v), free(got);
    }
    EXPECT_FAILURE(attn_params_find(p, "layers.3.0.fn.to_q.weight", &(attn_tensor_info){0}), ATTN_E_NOT_FOUND,
                   "attn_params_find", NULL, "a layer beyond depth");
    attn_perceiver_destroy(m);

    /* untied: layers.2.* are tensors of their own; with depth 2 there is no layers.2 */
    perc_cfg u = c;
    u.tie = 0;
    m = create(&u);
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(attn_perceiver_params(m), "layers.2.0.fn.to_q.weight", &info));
    assert_string_equal(info.name, "layers.2.0.fn.to_q.weight");
    assert_int_equal(attn_params_count(attn_perceiver_params(m)), COUNT_OF(want) + 26);
    attn_perceiver_destroy(m);
    u.depth = 2;
    m = create(&u);
    EXPECT_FAILURE(attn_params_find(attn_perceiver_params(m), "layers.2.0.fn.to_q.weight", &info), ATTN_E_NOT_FOUND,
                   "attn_params_find", NULL, "layers.2 without weight_tie_layers, depth 2");
    attn_perceiver_destroy(m);
    /* tied depth 2: nothing to alias; no head: no to_logits */
    u = c;
    u.depth = 2;
    u.classes = 0;
    m = create(&u);
    check_layout(m, want, COUNT_OF(want) - 4);
    EXPECT_FAILURE(attn_params_find(attn_perceiver_params(m), "layers.2.0.fn.to_q.weight", &info), ATTN_E_NOT_FOUND,
                   "attn_params_find", NULL, "layers.2 with weight_tie_layers, depth 2");
    attn_perceiver_destroy(m);
    /* without Fourier features C' = C */
    u.fourier = 0;
    m = create(&u);
    ASSERT_OK(attn_params_find(attn_perceiver_params(m), "layers.1.0.norm_context.weight", &info));
    assert_int_equal(info.shape[0], 2);
    ASSERT_OK(attn_params_find(attn_perceiver_params(m), "layers.0.0.fn.to_kv.weight", &info));
    assert_int_equal(info.shape[1], 2);
    attn_perceiver_destroy(m);
}

/* PyTorch's default laws as lucidrains' module gets them (docs/perceiver.md). */
static void test_params_init(void **state)
{
    (void)state;
    const perc_cfg c = {.c = 3, .axis = 2, .k = 8, .max_freq = 10.0, .fourier = 1, .depth = 1, .m = 64, .d = 48,
                        .ch = 2, .cdh = 20, .lh = 3, .ldh = 16, .spc = 1, .classes = 10, .sizes = {1, 1}};
    attn_perceiver *m = create(&c);
    const int64_t cw = input_dim(&c);
    const struct { const char *name; int law; double a; } laws[] = {
        {"latents", 2, 1.0},
        {"layers.0.0.fn.to_q.weight", 0, 1.0 / sqrt(48.0)},
        {"layers.0.0.fn.to_kv.weight", 0, 1.0 / sqrt((double)cw)},
        {"layers.0.0.fn.to_out.weight", 0, 1.0 / sqrt(40.0)},
        {"layers.0.0.fn.to_out.bias", 0, 1.0 / sqrt(40.0)},
        {"layers.0.0.norm.weight", 3, 1.0},
        {"layers.0.0.norm.bias", 1, 0.0},
        {"layers.0.0.norm_context.weight", 3, 1.0},
        {"layers.0.0.norm_context.bias", 1, 0.0},
        {"layers.0.1.fn.net.0.weight", 0, 1.0 / sqrt(48.0)},
        {"layers.0.1.fn.net.0.bias", 0, 1.0 / sqrt(48.0)},
        {"layers.0.1.fn.net.2.weight", 0, 1.0 / sqrt(192.0)},
        {"layers.0.1.fn.net.2.bias", 0, 1.0 / sqrt(192.0)},
        {"layers.0.2.0.0.fn.to_kv.weight", 0, 1.0 / sqrt(48.0)},
        {"layers.0.2.0.0.fn.to_out.weight", 0, 1.0 / sqrt(48.0)},
        {"to_logits.1.weight", 3, 1.0},
        {"to_logits.1.bias", 1, 0.0},
        {"to_logits.2.weight", 0, 1.0 / sqrt(48.0)},
        {"to_logits.2.bias", 0, 1.0 / sqrt(48.0)},
    };
    for (int i = 0; i < COUNT_OF(laws); i++) {
        double *v = tensor_f64(m, "%s", laws[i].name);
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(attn_perceiver_params(m), laws[i].name, &info));
        double mx = 0.0, ss = 0.0, mn = INFINITY;
        for (int64_t k = 0; k < info.count; k++) {
            mx = fmax(mx, fabs(v[k]));
            mn = fmin(mn, v[k]);
            ss += v[k] * v[k];
        }
        const double rms = sqrt(ss / (double)info.count);
        if (laws[i].law == 0 && !(mx <= laws[i].a * (1 + 1e-6) && mx > 0.5 * laws[i].a))
            fail_msg("%s: max |v| %g for U(-%g, %g)", laws[i].name, mx, laws[i].a, laws[i].a);
        if (laws[i].law == 1 && mx != 0.0)
            fail_msg("%s: not all zero", laws[i].name);
        if (laws[i].law == 2 && !(rms > 0.9 * laws[i].a && rms < 1.1 * laws[i].a))
            fail_msg("%s: rms %g for N(0, %g^2)", laws[i].name, rms, laws[i].a);
        if (laws[i].law == 3 && !(mx == 1.0 && mn == 1.0))
            fail_msg("%s: not all one", laws[i].name);
        free(v);
    }
    attn_perceiver_destroy(m);
}

/* ---- a lucidrains-style checkpoint ---------------------------------------------------------------- */

/* Writes a safetensors file of F32 tensors: every tensor of `m` under each name PyTorch's
 * state_dict gives it (a tied model's layers >= 2 repeat layer 1's tensors). */
static void save_state_dict(const attn_perceiver *m, const perc_cfg *c, const char *path)
{
    const attn_params *p = attn_perceiver_params((attn_perceiver *)m);
    enum { MAX_NAMES = 1024 };
    char *names[MAX_NAMES];
    int count = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        names[count++] = strdup(info.name);
        for (int64_t layer = 2; c->tie && layer < c->depth && !strncmp(info.name, "layers.1.", 9); layer++) {
            char alias[128];
            snprintf(alias, sizeof alias, "layers.%lld.%s", (long long)layer, info.name + 9);
            names[count++] = strdup(alias);
        }
        assert_true(count < MAX_NAMES - 16);
    }
    size_t cap = 1 << 16, len = 0;
    char *header = xmalloc(cap);
    int64_t offset = 0;
    len += (size_t)snprintf(header + len, cap - len, "{");
    for (int i = 0; i < count; i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(p, names[i], &info));
        len += (size_t)snprintf(header + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld", i ? "," : "",
                                names[i], (long long)info.shape[0]);
        for (int64_t d = 1; d < info.ndim; d++)
            len += (size_t)snprintf(header + len, cap - len, ",%lld", (long long)info.shape[d]);
        len += (size_t)snprintf(header + len, cap - len, "],\"data_offsets\":[%lld,%lld]}", (long long)offset,
                                (long long)(offset + 4 * info.count));
        offset += 4 * info.count;
        assert_true(len < cap - 256);
    }
    len += (size_t)snprintf(header + len, cap - len, "}");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const uint64_t header_len = len;
    unsigned char le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (unsigned char)(header_len >> (8 * b));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, len, f), len);
    for (int i = 0; i < count; i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(p, names[i], &info));
        float *v = xmalloc((size_t)info.count * sizeof *v);
        ASSERT_OK(attn_params_get(p, names[i], v, info.count));
        assert_int_equal(fwrite(v, sizeof *v, (size_t)info.count, f), (size_t)info.count); /* little-endian host */
        free(v);
        free(names[i]);
    }
    assert_int_equal(fclose(f), 0);
    free(header);
}

/* A state_dict with the tied layers repeated loads into a tied model (ATTN_LOAD_REJECT_UNKNOWN:
 * every name is known) and into an untied one of the same depth; both then agree bit for bit with
 * the model saved. */
static void test_load_state_dict(void **state)
{
    (void)state;
    perc_cfg c = {.c = 2, .axis = 1, .k = 2, .max_freq = 4.0, .fourier = 1, .depth = 4, .m = 4, .d = 6, .ch = 1,
                  .cdh = 5, .lh = 2, .ldh = 3, .spc = 2, .tie = 1, .classes = 3, .sizes = {13}};
    char path[512];
    const char *dir = getenv("ATTN_TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/perceiver_%d.safetensors", dir ? dir : ".", (int)getpid());
    attn_perceiver *saved = create(&c);
    randomize(saved, 31);
    save_state_dict(saved, &c, path);
    attn_perceiver *tied = create(&c);
    ASSERT_OK(attn_params_load(attn_perceiver_params(tied), path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    c.tie = 0;
    attn_perceiver *untied = create(&c);
    ASSERT_OK(attn_params_load(attn_perceiver_params(untied), path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    c.tie = 1;
    const int64_t batch = 3, n = positions(&c);
    float *data = random_floats(batch * n * c.c, 32, 1.0);
    uint8_t *mask = make_mask(batch, n, 33);
    float *a = run(saved, &c, NULL, batch, data, mask), *b = run(tied, &c, NULL, batch, data, mask);
    float *u = run(untied, &c, NULL, batch, data, mask);
    expect_bits_equal("loaded tied", "out", a, b, out_count(&c, batch));
    expect_bits_equal("loaded untied", "out", a, u, out_count(&c, batch));
    free(a), free(b), free(u), free(data), free(mask);
    remove(path);
    attn_perceiver_destroy(saved);
    attn_perceiver_destroy(tied);
    attn_perceiver_destroy(untied);
}

/* ---- cost and workspace ------------------------------------------------------------------------ */

/* Scratch of the attention kernel for an L x S head of width dh (core/attend.c's plan, AUTO). */
static int64_t attend_bytes(int64_t l, int64_t s, int64_t dh)
{
    const int64_t mat_rows = l < 512 ? l : 512;
    const int streaming = s > ((int64_t)8 << 20) / 4 / mat_rows;
    const int64_t rows = streaming ? (l < 512 ? l : 512) : mat_rows, keys = streaming ? (s < 2048 ? s : 2048) : s;
    return 2 * round64(4 * s * dh) + round64(4 * rows * keys) + round64(4 * rows) +
           (streaming ? round64(4 * rows) : 0);
}

static void test_cost(void **state)
{
    (void)state;
    perc_cfg list[COUNT_OF(cfgs) + 1];
    memcpy(list, cfgs, sizeof cfgs);
    list[COUNT_OF(cfgs)] = (perc_cfg){.c = 3, .axis = 1, .k = 1, .max_freq = 4.0, .fourier = 1, .depth = 1, .m = 40,
                                      .d = 8, .ch = 1, .cdh = 4, .lh = 2, .ldh = 4, .spc = 0, .sizes = {60000}};
    for (int i = 0; i < COUNT_OF(list); i++) {
        const perc_cfg *c = &list[i];
        attn_perceiver *m = create(c);
        for (int64_t batch = 1; batch <= 3; batch += 2) {
            const int64_t n = positions(c), cw = input_dim(c), mm = c->m, d = c->d, rows = batch * mm;
            const int64_t ic = c->ch * c->cdh, il = c->lh * c->ldh, widest = ic > il ? ic : il;
            const int64_t sets = c->tie && c->depth > 2 ? 2 : c->depth;
            int64_t coordinates = 0;
            for (int64_t a = 0; a < c->axis; a++)
                coordinates += c->sizes[a];
            /* K and V: the data's share per input row, the position features' share per axis-table row */
            const int64_t features = c->fourier ? 2 * coordinates * (2 * c->k + 1) * 2 * ic : 0;
            const int64_t context = 2 * batch * n * c->c * 2 * ic + features + 2 * ic * cw + 2 * d * ic;
            const int64_t ff = 2 * rows * d * 8 * d + 2 * rows * 4 * d * d;
            const int64_t cross = 2 * rows * d * ic + 4 * batch * mm * n * ic + 2 * rows * ic * d;
            const int64_t self = 2 * rows * d * 3 * il + 4 * batch * mm * mm * il + 2 * rows * il * d;
            const int64_t flops = sets * context + c->depth * (cross + ff + c->spc * (self + ff)) +
                                  2 * batch * d * c->classes;
            int64_t attend = attend_bytes(mm, n, c->cdh);
            if (c->spc && attend_bytes(mm, mm, c->ldh) > attend)
                attend = attend_bytes(mm, mm, c->ldh);
            const int64_t ws = (c->fourier ? round64(4 * coordinates * (2 * c->k + 1)) + round64(4 * coordinates * 2) +
                                                 round64(4 * coordinates * 2 * ic)
                                           : 0) +
                               round64(4 * batch * n * 2) + round64(4 * batch * n * 2 * ic) +
                               round64(4 * 2 * ic * cw) + round64(4 * 2 * ic) + round64(4 * ic) + round64(4 * d) +
                               (c->classes ? round64(4 * rows * d) : 0) + round64(4 * rows * d) +
                               2 * round64(4 * rows * widest) + (c->spc ? round64(4 * rows * 2 * il) : 0) +
                               round64(4 * rows * 8 * d) + (c->classes ? round64(4 * batch * d) : 0) + attend;
            attn_cost cost;
            ASSERT_OK(attn_perceiver_cost(m, batch, c->sizes, &cost));
            char ctx[320];
            describe(c, batch, ctx, sizeof ctx);
            if (cost.flops != flops || cost.workspace_bytes != ws)
                fail_msg("%s: flops %lld (want %lld), workspace %lld (want %lld)", ctx, (long long)cost.flops,
                         (long long)flops, (long long)cost.workspace_bytes, (long long)ws);
            /* forward reserves exactly that, and gives the same bits with and without a workspace */
            attn_workspace *wsp;
            ASSERT_OK(attn_workspace_create(&wsp));
            float *data = random_floats(batch * n * c->c, 2, 1.0);
            uint8_t *mask = make_mask(batch, n, 3);
            float *a = run(m, c, wsp, batch, data, mask), *b = run(m, c, NULL, batch, data, mask);
            assert_int_equal(attn_workspace_size(wsp), ws);
            expect_bits_equal(ctx, "out with and without a workspace", a, b, out_count(c, batch));
            float *r = run(m, c, wsp, batch, data, mask); /* a reused workspace */
            expect_bits_equal(ctx, "out with a reused workspace", a, r, out_count(c, batch));
            free(a), free(b), free(r), free(data), free(mask);
            attn_workspace_destroy(wsp);
        }
        attn_perceiver_destroy(m);
    }
}

/* The cross-attention term grows with N M, the latent stack neither with N nor the batch's inputs:
 * doubling N doubles only the input-side FLOPs (one axis, so that its table grows with N too). */
static void test_cost_scaling(void **state)
{
    (void)state;
    const perc_cfg c = {.c = 3, .axis = 1, .k = 4, .max_freq = 8.0, .fourier = 1, .depth = 2, .m = 16, .d = 32,
                        .ch = 1, .cdh = 16, .lh = 4, .ldh = 8, .spc = 3, .sizes = {64}};
    attn_perceiver *m = create(&c);
    attn_cost c1, c2, c4;
    ASSERT_OK(attn_perceiver_cost(m, 1, (int64_t[]){64}, &c1));
    ASSERT_OK(attn_perceiver_cost(m, 1, (int64_t[]){128}, &c2));
    ASSERT_OK(attn_perceiver_cost(m, 1, (int64_t[]){256}, &c4));
    assert_int_equal(c4.flops - c2.flops, 2 * (c2.flops - c1.flops)); /* linear in N */
    assert_true(c1.params == c2.params && c2.params == c4.params);
    attn_perceiver_destroy(m);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_options_init(void **state)
{
    (void)state;
    attn_perceiver_options o;
    memset(&o, 0xff, sizeof o);
    ASSERT_OK(attn_perceiver_options_init(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.input_channels, 3);
    assert_int_equal(o.input_axis, 2);
    assert_int_equal(o.num_freq_bands, 0);
    assert_true(o.max_freq == 0.0);
    assert_int_equal(o.fourier_encode, 1);
    assert_int_equal(o.depth, 0);
    assert_int_equal(o.num_latents, 512);
    assert_int_equal(o.latent_dim, 512);
    assert_int_equal(o.cross_heads, 1);
    assert_int_equal(o.cross_dim_head, 64);
    assert_int_equal(o.latent_heads, 8);
    assert_int_equal(o.latent_dim_head, 64);
    assert_int_equal(o.self_per_cross_attn, 1);
    assert_int_equal(o.weight_tie_layers, 0);
    assert_int_equal(o.num_classes, 0);
    assert_int_equal(o.flags, 0);
    EXPECT_FAILURE(attn_perceiver_options_init(NULL), ATTN_E_INVALID_ARG, "attn_perceiver_options_init", "options",
                   "options_init(NULL)");
}

static void expect_create_failure(const attn_perceiver_options *o, attn_status want, const char *args,
                                  const char *what)
{
    attn_perceiver *m = (attn_perceiver *)(uintptr_t)0x1;
    EXPECT_FAILURE(attn_perceiver_create(&m, o), want, "attn_perceiver_create", args, what);
    if (m != NULL)
        fail_msg("%s: *out is not NULL after a failed create", what);
}

static const perc_cfg small = {.c = 3, .axis = 2, .k = 2, .max_freq = 4.0, .fourier = 1, .depth = 2, .m = 4, .d = 6,
                               .ch = 1, .cdh = 4, .lh = 2, .ldh = 3, .spc = 1, .classes = 2, .sizes = {3, 4}};

static void test_create_errors(void **state)
{
    (void)state;
    const int64_t max_dim = INT32_MAX / 8;
    static const char *const fields[] = {"input_channels", "num_latents", "latent_dim", "cross_heads",
                                         "cross_dim_head", "latent_heads", "latent_dim_head", "depth"};
    for (int f = 0; f < COUNT_OF(fields); f++) {
        const int64_t bad[] = {0, -1, HUGE_SIZE, f == 7 ? 1025 : max_dim + 1};
        for (int k = 0; k < COUNT_OF(bad); k++) {
            attn_perceiver_options o = cfg_options(&small);
            int64_t *field[] = {&o.input_channels, &o.num_latents, &o.latent_dim, &o.cross_heads,
                                &o.cross_dim_head, &o.latent_heads, &o.latent_dim_head, &o.depth};
            *field[f] = bad[k];
            char what[96];
            snprintf(what, sizeof what, "%s = %lld", fields[f], (long long)bad[k]);
            expect_create_failure(&o, ATTN_E_INVALID_ARG, fields[f], what);
        }
    }
    attn_perceiver_options o = cfg_options(&small);
    const struct { int64_t *field; int64_t value; const char *name; } ranges[] = {
        {&o.input_axis, 0, "input_axis"},
        {&o.input_axis, 4, "input_axis"},
        {&o.input_axis, -2, "input_axis"},
        {&o.num_freq_bands, 0, "num_freq_bands"},
        {&o.num_freq_bands, -1, "num_freq_bands"},
        {&o.self_per_cross_attn, -1, "self_per_cross_attn"},
        {&o.self_per_cross_attn, 1025, "self_per_cross_attn"},
        {&o.num_classes, -1, "num_classes"},
        {&o.num_classes, max_dim + 1, "num_classes"},
    };
    for (int i = 0; i < COUNT_OF(ranges); i++) {
        o = cfg_options(&small);
        *ranges[i].field = ranges[i].value;
        char what[96];
        snprintf(what, sizeof what, "%s = %lld", ranges[i].name, (long long)ranges[i].value);
        expect_create_failure(&o, ATTN_E_INVALID_ARG, ranges[i].name, what);
    }
    const double bad_freq[] = {0.0, -1.0, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < COUNT_OF(bad_freq); i++) {
        o = cfg_options(&small);
        o.max_freq = bad_freq[i];
        expect_create_failure(&o, ATTN_E_INVALID_ARG, "max_freq", "max_freq with fourier_encode");
    }
    /* without Fourier features num_freq_bands and max_freq are ignored (num_freq_bands >= 0) */
    o = cfg_options(&small);
    o.fourier_encode = 0;
    o.num_freq_bands = 0;
    o.max_freq = NAN;
    attn_perceiver *m = NULL;
    ASSERT_OK(attn_perceiver_create(&m, &o));
    attn_perceiver_destroy(m);
    o.num_freq_bands = -1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "num_freq_bands", "num_freq_bands -1 without Fourier features");
    o = cfg_options(&small);
    o.fourier_encode = 2;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "fourier_encode", "fourier_encode 2");
    o = cfg_options(&small);
    o.weight_tie_layers = -1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "weight_tie_layers", "weight_tie_layers -1");
    o = cfg_options(&small);
    o.flags = 1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "flags", "flags 1");
    o = cfg_options(&small);
    o.struct_size = 4;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "struct_size", "struct_size 4");
    expect_create_failure(NULL, ATTN_E_INVALID_ARG, "options", "NULL options");
    o = cfg_options(&small);
    EXPECT_FAILURE(attn_perceiver_create(NULL, &o), ATTN_E_INVALID_ARG, "attn_perceiver_create", "out", "NULL out");
    /* a newer caller's struct: unknown nonzero bytes are refused, zero bytes accepted */
    unsigned char *grown = grown_options(&o, sizeof o, sizeof o + 16);
    ASSERT_OK(attn_perceiver_create(&m, (const attn_perceiver_options *)grown));
    attn_perceiver_destroy(m);
    grown[sizeof o + 5] = 1;
    expect_create_failure((const attn_perceiver_options *)grown, ATTN_E_UNSUPPORTED, "struct_size", "grown struct");
    free(grown);
    /* heads x dim_head beyond BLAS's indices */
    o = cfg_options(&small);
    o.cross_heads = 1 << 20;
    o.cross_dim_head = 1 << 11;
    expect_create_failure(&o, ATTN_E_SHAPE, "cross_heads|cross_dim_head", "cross_heads x cross_dim_head");
    o = cfg_options(&small);
    o.latent_heads = max_dim;
    o.latent_dim_head = max_dim;
    expect_create_failure(&o, ATTN_E_SHAPE, "latent_heads|latent_dim_head", "latent_heads x latent_dim_head");
    /* sizes whose parameters cannot be allocated */
    o = cfg_options(&small);
    o.num_latents = max_dim;
    o.latent_dim = max_dim;
    expect_create_failure(&o, ANY_ERROR, NULL, "M x D beyond memory");
}

static void test_call_errors(void **state)
{
    (void)state;
    const perc_cfg *c = &small;
    attn_perceiver *m = create(c);
    const int64_t batch = 2, n = positions(c), outs = out_count(c, batch);
    int64_t sizes[3] = {3, 4, 0};
    float *data = random_floats(batch * n * c->c, 1, 1.0), *out = filled_floats(outs, 7.0f);
    uint8_t *mask = make_mask(batch, n, 2);
    static const char fn[] = "attn_perceiver_forward";
    EXPECT_FAILURE(attn_perceiver_forward(NULL, NULL, batch, sizes, data, mask, out), ATTN_E_INVALID_ARG, fn,
                   "perceiver", "NULL handle");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, NULL, data, mask, out), ATTN_E_INVALID_ARG, fn,
                   "axis_sizes", "NULL axis_sizes");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, sizes, NULL, mask, out), ATTN_E_INVALID_ARG, fn, "data",
                   "NULL data");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, sizes, data, mask, NULL), ATTN_E_INVALID_ARG, fn, "out",
                   "NULL out");
    const int64_t bad[] = {0, -1};
    for (int k = 0; k < 2; k++) {
        EXPECT_FAILURE(attn_perceiver_forward(m, NULL, bad[k], sizes, data, mask, out), ATTN_E_SHAPE, fn, "batch",
                       "batch < 1");
        for (int a = 0; a < 2; a++) {
            int64_t s[2] = {3, 4};
            s[a] = bad[k];
            EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, s, data, mask, out), ATTN_E_SHAPE, fn, "axis_sizes",
                           "an axis < 1");
        }
    }
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, HUGE_SIZE, sizes, data, mask, out), ATTN_E_SHAPE, fn, "batch",
                   "huge batch");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, (int64_t[]){HUGE_SIZE, 4}, data, mask, out), ATTN_E_SHAPE, fn,
                   "axis_sizes", "huge axis");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}, data, mask,
                                          out),
                   ATTN_E_SHAPE, fn, "axis_sizes", "axis product overflows int64");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, (int64_t)1 << 16, (int64_t[]){1 << 8, 1 << 8}, data, mask, out),
                   ATTN_E_SHAPE, fn, "batch", "batch x N beyond BLAS");
    /* aliasing */
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, sizes, data, mask, (float *)data + 1), ATTN_E_INVALID_ARG,
                   fn, "data", "out overlaps data");
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, sizes, data, mask, (float *)(void *)mask),
                   ATTN_E_INVALID_ARG, fn, "mask", "out overlaps mask");
    assert_true(all_equal(out, outs, 7.0f));
    float *shared = filled_floats(outs, 7.0f); /* axis_sizes in the first bytes of out */
    memcpy(shared, sizes, 2 * sizeof *sizes);
    EXPECT_FAILURE(attn_perceiver_forward(m, NULL, batch, (const int64_t *)(void *)shared, data, mask, shared),
                   ATTN_E_INVALID_ARG, fn, "axis_sizes", "out overlaps axis_sizes");
    free(shared);
    /* a mask is optional */
    ASSERT_OK(attn_perceiver_forward(m, NULL, batch, sizes, data, NULL, out));
    /* one axis per input_axis: a third entry is not read */
    sizes[2] = -5;
    ASSERT_OK(attn_perceiver_forward(m, NULL, batch, sizes, data, mask, out));

    attn_cost cost;
    static const char cfn[] = "attn_perceiver_cost";
    EXPECT_FAILURE(attn_perceiver_cost(NULL, 1, sizes, &cost), ATTN_E_INVALID_ARG, cfn, "perceiver",
                   "cost NULL handle");
    EXPECT_FAILURE(attn_perceiver_cost(m, 1, sizes, NULL), ATTN_E_INVALID_ARG, cfn, "out", "cost NULL out");
    EXPECT_FAILURE(attn_perceiver_cost(m, 1, NULL, &cost), ATTN_E_INVALID_ARG, cfn, "axis_sizes", "cost NULL axes");
    EXPECT_FAILURE(attn_perceiver_cost(m, 0, sizes, &cost), ATTN_E_SHAPE, cfn, "batch", "cost batch 0");
    EXPECT_FAILURE(attn_perceiver_cost(m, 1, (int64_t[]){3, 0}, &cost), ATTN_E_SHAPE, cfn, "axis_sizes",
                   "cost axis 0");
    EXPECT_FAILURE(attn_perceiver_cost(m, 1, (int64_t[]){INT64_MAX, 2}, &cost), ATTN_E_SHAPE, cfn, "axis_sizes",
                   "cost axis product");
    EXPECT_FAILURE(attn_perceiver_cost(m, HUGE_SIZE, sizes, &cost), ATTN_E_SHAPE, cfn, "batch", "cost huge batch");

    attn_perceiver_options o;
    EXPECT_FAILURE(attn_perceiver_get_options(NULL, &o), ATTN_E_INVALID_ARG, "attn_perceiver_get_options",
                   "perceiver", "get_options NULL handle");
    EXPECT_FAILURE(attn_perceiver_get_options(m, NULL), ATTN_E_INVALID_ARG, "attn_perceiver_get_options", "out",
                   "get_options NULL out");
    ASSERT_OK(attn_perceiver_options_init(&o));
    ASSERT_OK(attn_perceiver_get_options(m, &o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.input_channels, c->c);
    assert_int_equal(o.num_freq_bands, c->k);
    assert_true(o.max_freq == c->max_freq);
    assert_int_equal(o.depth, c->depth);
    assert_int_equal(o.latent_dim_head, c->ldh);
    assert_int_equal(o.num_classes, c->classes);
    assert_null(attn_perceiver_params(NULL));
    attn_perceiver_destroy(NULL);
    free(data), free(out), free(mask);
    attn_perceiver_destroy(m);
}

/* NaN in one batch element's data (masked or not) makes that element's output NaN and leaves the
 * others exactly as without it. */
static void test_nan_input(void **state)
{
    (void)state;
    const perc_cfg *c = &cfgs[1];
    attn_perceiver *m = create(c);
    randomize(m, 51);
    const int64_t batch = 3, n = positions(c), per = out_count(c, 1);
    float *data = random_floats(batch * n * c->c, 52, 1.0);
    uint8_t *mask = xmalloc((size_t)(batch * n));
    memset(mask, 0, (size_t)(batch * n));
    mask[1 * n + 3] = 1;
    float *clean = run(m, c, NULL, batch, data, mask);
    data[(0 * n + 2) * c->c + 1] = NAN; /* element 0, unmasked position */
    data[(1 * n + 3) * c->c] = INFINITY; /* element 1, masked position */
    float *got = run(m, c, NULL, batch, data, mask);
    for (int64_t b = 0; b < 2; b++)
        for (int64_t i = 0; i < per; i++)
            if (!isnan(got[b * per + i]))
                fail_msg("out[%lld, %lld] = %g, want NaN", (long long)b, (long long)i, got[b * per + i]);
    expect_bits_equal("NaN input", "the clean batch element", clean + 2 * per, got + 2 * per, per);
    free(clean), free(got), free(data), free(mask);
    attn_perceiver_destroy(m);
}

/* ---- 8 threads on one handle ------------------------------------------------------------------- */

enum { THREADS = 8, ITERATIONS = 4 };

typedef struct thread_job {
    const attn_perceiver *m;
    const perc_cfg *c;
    int64_t batch;
    const float *data;
    const uint8_t *mask;
    const float *ref; /* the single-threaded result */
    pthread_barrier_t *start;
    int failures, mismatches, message_wrong;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    const int64_t outs = out_count(job->c, job->batch);
    attn_workspace *ws = NULL;
    float *out = malloc((size_t)outs * sizeof *out);
    const int ready = attn_workspace_create(&ws) == ATTN_OK && out;
    pthread_barrier_wait(job->start);
    for (int it = 0; ready && it < ITERATIONS; it++) {
        if (attn_perceiver_forward(job->m, it % 2 ? ws : NULL, job->batch, job->c->sizes, job->data, job->mask,
                                   out) != ATTN_OK) {
            job->failures++;
            continue;
        }
        job->mismatches += memcmp(out, job->ref, (size_t)outs * sizeof *out) != 0;
        attn_perceiver_forward(job->m, ws, job->batch, (int64_t[]){3, 0}, job->data, job->mask, out);
        job->message_wrong += !has_word(attn_last_error(), "axis_sizes");
    }
    job->failures += !ready;
    attn_workspace_destroy(ws);
    free(out);
    return NULL;
}

/* Each thread has its own input: threads computing the same data would hide a shared buffer. */
static void test_threads(void **state)
{
    (void)state;
    const perc_cfg *c = &cfgs[6];
    attn_perceiver *m = create(c);
    randomize(m, 61);
    const int64_t batch = 2, n = positions(c);
    thread_job jobs[THREADS];
    float *data[THREADS], *ref[THREADS];
    uint8_t *mask[THREADS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int t = 0; t < THREADS; t++) {
        data[t] = random_floats(batch * n * c->c, 70 + (uint64_t)t, 1.0);
        mask[t] = t % 2 ? make_mask(batch, n, 80 + (uint64_t)t) : NULL;
        ref[t] = run(m, c, NULL, batch, data[t], mask[t]);
        jobs[t] = (thread_job){.m = m, .c = c, .batch = batch, .data = data[t], .mask = mask[t], .ref = ref[t],
                               .start = &start};
    }
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, thread_main, &jobs[t]), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < THREADS; t++) {
        if (jobs[t].failures || jobs[t].mismatches || jobs[t].message_wrong)
            fail_msg("thread %d: %d failed forwards, %d results differing from the single-threaded one, %d wrong "
                     "error messages", t, jobs[t].failures, jobs[t].mismatches, jobs[t].message_wrong);
        free(data[t]), free(mask[t]), free(ref[t]);
    }
    attn_perceiver_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_params_init),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_forward_streaming),
        cmocka_unit_test(test_permutation_invariance),
        cmocka_unit_test(test_masked_data_ignored),
        cmocka_unit_test(test_tied_equals_untied),
        cmocka_unit_test(test_load_state_dict),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_cost_scaling),
        cmocka_unit_test(test_nan_input),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("perceiver", tests, NULL, NULL);
}
