/*
 * test_attention.c: the attention family (attn_mha, include/attn/attention.h, docs/attention.md).
 *
 * Ground truth comes from three independent places: the float64 reference in ref_attention.c
 * (written from the equations: FULL, LINFORMER, NYSTROM, with the in- and out-projections read
 * through attn_params_get), mathematical invariants (Linformer with k = S and identity projections,
 * Nystrom with one landmark per position and an exact pseudo-inverse, both equal FULL; the
 * attention matrix times V_h equals forward's per-head output), and closed-form costs. Every
 * public function of attention.h also has its error paths checked: status, the message of
 * attn_last_error(), and outputs left untouched.
 *
 * Tolerance of every float32-vs-float64 comparison in this file (TOL, tests/test_util.h):
 *     max |got - ref| <= tol * max(1, max |ref|),  tol = 1e-5
 * with one exception: an exact pseudo-inverse (Nystrom's SVD, and NEWTON run to convergence) of a
 * matrix of condition number kappa is only accurate to about kappa * eps_float32 in float32
 * (perturbation theory of the pseudo-inverse; measured here at 0.05-0.4 of that), and A2 =
 * softmax(Q~ K~^T) of random data reaches kappa ~ 1e5. Those comparisons use
 *     tol = max(1e-5, kappa * FLT_EPSILON)
 * with kappa computed by the float64 reference for the very inputs (pinv_tolerance below); about
 * two thirds of those cases have kappa < 84 and so still run at 1e-5.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <float.h>
#include <pthread.h>

#include "ref_attention.h"
#include "ref_rnn.h" /* ref_matmul */

#define MAX_TENSORS 16

static const char *const kind_names[] = {"FULL", "LINFORMER", "NYSTROM"};
static const char *const memory_names[] = {"AUTO", "MATERIALIZE", "STREAMING"};
static const char *const sharing_names[] = {"HEADWISE", "KV", "NONE"};
static const char *const pinv_names[] = {"NEWTON", "SVD"};
static const int32_t all_memory_modes[] = {ATTN_MEMORY_AUTO, ATTN_MEMORY_MATERIALIZE, ATTN_MEMORY_STREAMING};

/* ================================================================================================
 * Helpers: configurations, layers, inputs (the generic ones are in test_util.h)
 * ============================================================================================= */

/* The options of one test layer; everything a test varies. */
typedef struct mha_cfg {
    int32_t kind, bias, causal, memory_mode, sharing, pinv;
    int64_t embed, heads, kdim, vdim;   /* kdim, vdim: 0 = E */
    int64_t max_seq_len, proj_len;      /* LINFORMER */
    int64_t landmarks, iterations, conv; /* NYSTROM */
} mha_cfg;

static void cfg_describe(const mha_cfg *c, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s E=%lld h=%lld kdim=%lld vdim=%lld bias=%d", kind_names[c->kind],
                     (long long)c->embed, (long long)c->heads, (long long)c->kdim, (long long)c->vdim, c->bias);
    if (n < 0 || (size_t)n >= size)
        return;
    if (c->kind == ATTN_MHA_FULL)
        snprintf(buf + n, size - (size_t)n, " causal=%d memory=%s", c->causal, memory_names[c->memory_mode]);
    else if (c->kind == ATTN_MHA_LINFORMER)
        snprintf(buf + n, size - (size_t)n, " max_seq_len=%lld k=%lld sharing=%s", (long long)c->max_seq_len,
                 (long long)c->proj_len, sharing_names[c->sharing]);
    else
        snprintf(buf + n, size - (size_t)n, " m=%lld pinv=%s iterations=%lld conv=%lld", (long long)c->landmarks,
                 pinv_names[c->pinv], (long long)c->iterations, (long long)c->conv);
}

static attn_mha_options cfg_options(const mha_cfg *c)
{
    attn_mha_options o;
    ASSERT_OK(attn_mha_options_init(&o));
    o.kind = c->kind;
    o.bias = c->bias;
    o.causal = c->causal;
    o.memory_mode = c->memory_mode;
    o.embed_dim = c->embed;
    o.num_heads = c->heads;
    o.kdim = c->kdim;
    o.vdim = c->vdim;
    if (c->kind == ATTN_MHA_LINFORMER) {
        o.max_seq_len = c->max_seq_len;
        o.proj_len = c->proj_len;
        o.sharing = c->sharing;
    }
    if (c->kind == ATTN_MHA_NYSTROM) {
        o.num_landmarks = c->landmarks;
        o.pinv = c->pinv;
        o.pinv_iterations = c->iterations;
        o.conv_kernel = c->conv;
    }
    return o;
}

static int64_t kdim_of(const mha_cfg *c) { return c->kdim ? c->kdim : c->embed; }
static int64_t vdim_of(const mha_cfg *c) { return c->vdim ? c->vdim : c->embed; }

static void scale_tensor(attn_params *p, const char *name, double gain)
{
    attn_tensor_info info;
    if (attn_params_find(p, name, &info) != ATTN_OK)
        return;
    float *w = xmalloc((size_t)info.count * sizeof *w);
    ASSERT_OK(attn_params_get(p, name, w, info.count));
    for (int64_t i = 0; i < info.count; i++)
        w[i] = (float)(w[i] * gain);
    ASSERT_OK(attn_params_set(p, name, w, info.count));
    free(w);
}

/* Random biases so that a bias applied to the wrong rows or not at all shows. */
static void randomize_tensor(attn_params *p, const char *name, uint64_t seed, double scale)
{
    attn_tensor_info info;
    if (attn_params_find(p, name, &info) != ATTN_OK)
        return;
    float *w = random_floats(info.count, seed, scale);
    ASSERT_OK(attn_params_set(p, name, w, info.count));
    free(w);
}

/* A layer with weights from attn_params_init(seed), the query and key projections multiplied by
 * `gain` (PyTorch's init gives nearly uniform softmax rows for these small sizes; sharper rows
 * make masks, causality and landmark choice visible, and keep Nystrom's A2 well conditioned),
 * and nonzero biases. */
static attn_mha *make_mha(const mha_cfg *c, uint64_t seed, double gain)
{
    attn_mha_options o = cfg_options(c);
    attn_mha *mha = NULL;
    ASSERT_OK(attn_mha_create(&mha, &o));
    assert_non_null(mha);
    attn_params *p = attn_mha_params(mha);
    ASSERT_OK(attn_params_init(p, seed));
    if (gain != 1.0) {
        scale_tensor(p, "q_proj_weight", gain);
        scale_tensor(p, "k_proj_weight", gain);
        if (attn_params_find(p, "in_proj_weight", &(attn_tensor_info){0}) == ATTN_OK) {
            const int64_t e = c->embed;
            float *w = xmalloc((size_t)(3 * e * e) * sizeof *w);
            ASSERT_OK(attn_params_get(p, "in_proj_weight", w, 3 * e * e));
            for (int64_t i = 0; i < 2 * e * e; i++)
                w[i] = (float)(w[i] * gain);
            ASSERT_OK(attn_params_set(p, "in_proj_weight", w, 3 * e * e));
            free(w);
        }
    }
    randomize_tensor(p, "in_proj_bias", seed + 1, 0.3);
    randomize_tensor(p, "out_proj.bias", seed + 2, 0.3);
    return mha;
}

/* key_padding_mask patterns. */
enum { MASK_NONE, MASK_RANDOM, MASK_TAIL, MASK_EMPTY_ELEMENT, MASK_KINDS };
static const char *const mask_names[] = {"none", "random", "tail", "empty-element"};

/* [B, S] mask, or NULL for MASK_NONE. RANDOM hides about 40 % of the keys but leaves each batch
 * element one; TAIL is padding (element b keeps a prefix of a different length, at least one key),
 * which empties Nystrom's last segments; EMPTY_ELEMENT is RANDOM with the last element fully
 * masked (its queries get zeros before the out-projection). Mask values other than 1 count too. */
static uint8_t *make_mask(int kind, int64_t B, int64_t S, uint64_t seed)
{
    if (kind == MASK_NONE)
        return NULL;
    uint8_t *m = xmalloc((size_t)(B * S));
    for (int64_t b = 0; b < B; b++) {
        uint8_t *row = m + b * S;
        if (kind == MASK_TAIL) {
            const int64_t keep = 1 + (S - 1) * (B - b) / (B + 1);
            for (int64_t j = 0; j < S; j++)
                row[j] = j >= keep ? (uint8_t)(1 + j % 3 * 100) : 0;
            continue;
        }
        int64_t kept = 0;
        for (int64_t j = 0; j < S; j++) {
            row[j] = (rng_next(&seed) % 5) < 2 ? (uint8_t)(1 + rng_next(&seed) % 255) : 0;
            kept += row[j] == 0;
        }
        if (!kept)
            row[rng_next(&seed) % (uint64_t)S] = 0;
        if (kind == MASK_EMPTY_ELEMENT && b == B - 1)
            memset(row, 7, (size_t)S);
    }
    return m;
}

/* One call's shape. */
typedef struct shape {
    int64_t batch, tgt_len, src_len;
} shape;

/* Inputs of one call; self-attention passes one buffer as query, key and value. */
typedef struct inputs {
    float *query, *key, *value;
    uint8_t *mask;
    int self;
} inputs;

static inputs make_inputs(const mha_cfg *c, const shape *sh, int mask_kind, int self, uint64_t seed)
{
    inputs in = {0};
    in.self = self && sh->tgt_len == sh->src_len && kdim_of(c) == c->embed && vdim_of(c) == c->embed;
    in.query = random_floats(sh->batch * sh->tgt_len * c->embed, seed, 1.0);
    in.key = in.self ? in.query : random_floats(sh->batch * sh->src_len * kdim_of(c), seed + 1, 1.0);
    in.value = in.self ? in.query : random_floats(sh->batch * sh->src_len * vdim_of(c), seed + 2, 1.0);
    in.mask = make_mask(mask_kind, sh->batch, sh->src_len, seed + 3);
    return in;
}

static void free_inputs(inputs *in)
{
    if (!in->self)
        free(in->key), free(in->value);
    free(in->query), free(in->mask);
    memset(in, 0, sizeof *in);
}

/* ================================================================================================
 * Forward and attention_matrix against the float64 reference
 * ============================================================================================= */

/* The tolerance for `mha` on these inputs: TOL, or for an exact pseudo-inverse (SVD, or NEWTON
 * with `converged` set) max(TOL, kappa(A2) * FLT_EPSILON); see the top of the file. */
static double pinv_tolerance(attn_mha *mha, const shape *sh, const inputs *in, int converged)
{
    attn_mha_options o;
    ASSERT_OK(attn_mha_get_options(mha, &o));
    if (o.kind != ATTN_MHA_NYSTROM || (o.pinv != ATTN_PINV_SVD && !converged))
        return TOL;
    const double kappa =
        ref_mha_nystrom_condition(mha, sh->batch, sh->tgt_len, sh->src_len, in->query, in->key, in->value, in->mask);
    if (kappa < 0)
        fail_msg("the reference could not compute the condition number of A2");
    return fmax(TOL, kappa * FLT_EPSILON);
}

/* Runs attn_mha_forward and attn_mha_attention_matrix on the inputs and compares both with the
 * reference; checks that neither wrote into an input. Outputs start as NaN so that unwritten
 * elements fail. */
static void check_call(attn_mha *mha, attn_workspace *ws, const mha_cfg *c, const shape *sh, const inputs *in,
                       const char *ctx)
{
    const int64_t B = sh->batch, L = sh->tgt_len, S = sh->src_len, E = c->embed, h = c->heads;
    const int64_t nq = B * L * E, nk = B * S * kdim_of(c), nv = B * S * vdim_of(c), nw = B * h * L * S;
    char where[400];
    snprintf(where, sizeof where, "%s B=%lld L=%lld S=%lld%s ws=%d", ctx, (long long)B, (long long)L, (long long)S,
             in->self ? " self" : "", ws != NULL);
    float *q_copy = xmalloc((size_t)nq * sizeof *q_copy), *k_copy = xmalloc((size_t)nk * sizeof *k_copy);
    float *v_copy = xmalloc((size_t)nv * sizeof *v_copy);
    memcpy(q_copy, in->query, (size_t)nq * sizeof *q_copy);
    memcpy(k_copy, in->key, (size_t)nk * sizeof *k_copy);
    memcpy(v_copy, in->value, (size_t)nv * sizeof *v_copy);

    float *out = filled_floats(nq, NAN), *w = filled_floats(nw, NAN);
    double *ref_out = new_doubles(nq), *ref_w = new_doubles(nw);
    attn_status s = attn_mha_forward(mha, ws, B, L, S, in->query, in->key, in->value, in->mask, out);
    if (s != ATTN_OK)
        fail_msg("%s: attn_mha_forward returned %d: %s", where, s, attn_last_error());
    s = attn_mha_attention_matrix(mha, ws, B, L, S, in->query, in->key, in->value, in->mask, w);
    if (s != ATTN_OK)
        fail_msg("%s: attn_mha_attention_matrix returned %d: %s", where, s, attn_last_error());
    if (ref_mha_forward(mha, B, L, S, in->query, in->key, in->value, in->mask, ref_out) != 0 ||
        ref_mha_attention_matrix(mha, B, L, S, in->query, in->key, in->value, in->mask, ref_w) != 0)
        fail_msg("%s: the reference could not run", where);
    const double tol = pinv_tolerance(mha, sh, in, 0);
    check_close_tol(where, "forward out", ref_out, out, nq, tol);
    check_close_tol(where, "attention_matrix", ref_w, w, nw, tol);
    if (memcmp(in->query, q_copy, (size_t)nq * sizeof *q_copy) != 0 ||
        memcmp(in->key, k_copy, (size_t)nk * sizeof *k_copy) != 0 ||
        memcmp(in->value, v_copy, (size_t)nv * sizeof *v_copy) != 0)
        fail_msg("%s: a call wrote into an input", where);
    free(q_copy), free(k_copy), free(v_copy), free(out), free(w), free(ref_out), free(ref_w);
}

/* Random inputs for every mask pattern and both workspace choices, then check_call. */
static void check_shapes(attn_mha *mha, attn_workspace *ws, const mha_cfg *c, const shape *shapes, int n_shapes,
                         uint64_t *seed, const char *ctx)
{
    char where[300];
    for (int si = 0; si < n_shapes; si++)
        for (int mk = 0; mk < MASK_KINDS; mk++) {
            snprintf(where, sizeof where, "%s mask=%s", ctx, mask_names[mk]);
            inputs in = make_inputs(c, &shapes[si], mk, (int)(*seed % 2), *seed * 13 + 5);
            check_call(mha, (*seed)++ % 3 ? ws : NULL, c, &shapes[si], &in, where);
            free_inputs(&in);
        }
}

/* Projection layouts: packed in_proj_weight, and separate q/k/v weights with kdim, vdim != E. */
static const int64_t layouts[][4] = {{8, 2, 0, 0}, {6, 3, 5, 7}, {4, 1, 4, 3}}; /* E, h, kdim, vdim */

/* Every layout x bias x causal x memory mode, for self- and cross-attention shapes (L < S, L > S,
 * L = S = 1), batch 1 and 3, every mask pattern. */
static void test_full_forward(void **state)
{
    (void)state;
    static const shape shapes[] = {{1, 1, 1}, {1, 5, 5}, {3, 4, 7}, {3, 7, 4}, {3, 6, 6}};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    uint64_t seed = 10;
    char ctx[200];
    for (int li = 0; li < COUNT_OF(layouts); li++)
        for (int32_t bias = 0; bias <= 1; bias++)
            for (int32_t causal = 0; causal <= 1; causal++)
                for (int mi = 0; mi < COUNT_OF(all_memory_modes); mi++) {
                    const mha_cfg c = {.kind = ATTN_MHA_FULL, .bias = bias, .causal = causal,
                                       .memory_mode = all_memory_modes[mi], .embed = layouts[li][0],
                                       .heads = layouts[li][1], .kdim = layouts[li][2], .vdim = layouts[li][3]};
                    cfg_describe(&c, ctx, sizeof ctx);
                    attn_mha *mha = make_mha(&c, seed++, 3.0);
                    check_shapes(mha, ws, &c, shapes, COUNT_OF(shapes), &seed, ctx);
                    attn_mha_destroy(mha);
                }
    attn_workspace_destroy(ws);
}

/* Sequences longer than the library's row blocks and key tiles (a few hundred), so that blocking,
 * the streaming rescale across tiles and causal tile skipping are exercised. */
static void test_full_forward_long(void **state)
{
    (void)state;
    static const shape shapes[] = {{1, 300, 1100}, {2, 530, 290}};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    uint64_t seed = 900;
    char ctx[240];
    for (int32_t causal = 0; causal <= 1; causal++)
        for (int mi = 0; mi < COUNT_OF(all_memory_modes); mi++) {
            const mha_cfg c = {.kind = ATTN_MHA_FULL, .bias = 1, .causal = causal,
                               .memory_mode = all_memory_modes[mi], .embed = 8, .heads = 2};
            attn_mha *mha = make_mha(&c, seed++, 3.0);
            for (int si = 0; si < COUNT_OF(shapes); si++) {
                static const int masks[] = {MASK_NONE, MASK_TAIL};
                for (int k = 0; k < COUNT_OF(masks); k++) {
                    cfg_describe(&c, ctx, sizeof ctx);
                    snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " mask=%s", mask_names[masks[k]]);
                    inputs in = make_inputs(&c, &shapes[si], masks[k], 0, seed++);
                    check_call(mha, ws, &c, &shapes[si], &in, ctx);
                    free_inputs(&in);
                }
            }
            attn_mha_destroy(mha);
        }
    attn_workspace_destroy(ws);
}

/* Every sharing mode x layout x bias, with S = max_seq_len and S < max_seq_len, k < S and k > S. */
static void test_linformer_forward(void **state)
{
    (void)state;
    static const int64_t sizes[][2] = {{9, 4}, {6, 8}}; /* max_seq_len, proj_len */
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    uint64_t seed = 2000;
    char ctx[200];
    for (int32_t sharing = ATTN_LINFORMER_HEADWISE; sharing <= ATTN_LINFORMER_NONE; sharing++)
        for (int li = 0; li < COUNT_OF(layouts); li++)
            for (int32_t bias = 0; bias <= 1; bias++)
                for (int zi = 0; zi < COUNT_OF(sizes); zi++) {
                    const int64_t n = sizes[zi][0];
                    const shape shapes[] = {{1, 1, 1}, {1, 5, n - 1}, {3, 4, n}, {3, n, n}, {3, 7, 3}};
                    const mha_cfg c = {.kind = ATTN_MHA_LINFORMER, .bias = bias, .sharing = sharing,
                                       .embed = layouts[li][0], .heads = layouts[li][1], .kdim = layouts[li][2],
                                       .vdim = layouts[li][3], .max_seq_len = n, .proj_len = sizes[zi][1]};
                    cfg_describe(&c, ctx, sizeof ctx);
                    attn_mha *mha = make_mha(&c, seed++, 3.0);
                    check_shapes(mha, ws, &c, shapes, COUNT_OF(shapes), &seed, ctx);
                    attn_mha_destroy(mha);
                }
    attn_workspace_destroy(ws);
}

/* Both pinv modes (NEWTON with the default 6 and with 2 iterations, SVD), residual convolution off
 * and on (narrower and wider than the sequence), n % m = 0 and != 0, m = 1 and m = n, every mask
 * pattern (TAIL empties whole segments), batch 1 and 3. */
static void test_nystrom_forward(void **state)
{
    (void)state;
    static const struct {
        int32_t pinv;
        int64_t iterations;
    } pinvs[] = {{ATTN_PINV_NEWTON, 6}, {ATTN_PINV_NEWTON, 2}, {ATTN_PINV_SVD, 0}};
    static const int64_t convs[] = {0, 3, 9};
    static const int64_t landmarks[] = {1, 3, 4};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    uint64_t seed = 3000;
    char ctx[200];
    for (int pi = 0; pi < COUNT_OF(pinvs); pi++)
        for (int ci = 0; ci < COUNT_OF(convs); ci++)
            for (int li = 0; li < 2; li++)
                for (int mi = 0; mi < COUNT_OF(landmarks); mi++) {
                    const int64_t m = landmarks[mi];
                    /* n % m == 0 (12 = 3 * 4), != 0 (7, 10), m = n, batch 1 and 3, L != S. */
                    const shape shapes[] = {{1, 12, 12}, {3, 7, 7}, {3, m, m}, {1, 10, 7}, {3, 5, 11}};
                    /* The convolution adds conv(V) to the queries' rows: it needs L == S. */
                    const int n_shapes = convs[ci] ? 3 : COUNT_OF(shapes);
                    const mha_cfg c = {.kind = ATTN_MHA_NYSTROM, .bias = (int32_t)(mi % 2), .pinv = pinvs[pi].pinv,
                                       .embed = layouts[li][0], .heads = layouts[li][1], .kdim = layouts[li][2],
                                       .vdim = layouts[li][3], .landmarks = m, .iterations = pinvs[pi].iterations,
                                       .conv = convs[ci]};
                    cfg_describe(&c, ctx, sizeof ctx);
                    attn_mha *mha = make_mha(&c, seed++, 3.0);
                    check_shapes(mha, ws, &c, shapes, n_shapes, &seed, ctx);
                    attn_mha_destroy(mha);
                }
    attn_workspace_destroy(ws);
}

/* ================================================================================================
 * The reference against itself: its kinds meet the invariants in float64
 * ============================================================================================= */

static double max_abs_diff(const double *a, const double *b, int64_t n)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

/* Sets proj_e (and proj_f) of a Linformer layer with k = S to [I_S | 0] (per head for NONE). */
static void set_identity_projections(attn_mha *mha, const mha_cfg *c)
{
    const int64_t k = c->proj_len, n = c->max_seq_len, heads = c->sharing == ATTN_LINFORMER_NONE ? c->heads : 1;
    float *id = filled_floats(heads * k * n, 0.0f);
    for (int64_t hh = 0; hh < heads; hh++)
        for (int64_t r = 0; r < k; r++)
            id[hh * k * n + r * n + r] = 1.0f;
    ASSERT_OK(attn_params_set(attn_mha_params(mha), "proj_e", id, heads * k * n));
    if (c->sharing != ATTN_LINFORMER_KV)
        ASSERT_OK(attn_params_set(attn_mha_params(mha), "proj_f", id, heads * k * n));
    free(id);
}

/* Copies every tensor `to` shares with `from` (the in- and out-projections). */
static void copy_shared_tensors(attn_mha *from, attn_mha *to)
{
    const attn_params *pf = attn_mha_params(from);
    attn_params *pt = attn_mha_params(to);
    for (int64_t i = 0; i < attn_params_count(pf); i++) {
        attn_tensor_info info, other;
        ASSERT_OK(attn_params_info(pf, i, &info));
        if (attn_params_find(pt, info.name, &other) != ATTN_OK)
            continue;
        float *buf = xmalloc((size_t)info.count * sizeof *buf);
        ASSERT_OK(attn_params_get(pf, info.name, buf, info.count));
        ASSERT_OK(attn_params_set(pt, info.name, buf, info.count));
        free(buf);
    }
}

/* Softmax rows of random scores of the given spread: the kind of matrix Nystrom inverts. */
static void random_softmax_matrix(double *a, int64_t n, double spread, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++)
            sum += a[i * n + j] = exp(spread * rng_uniform(&seed));
        for (int64_t j = 0; j < n; j++)
            a[i * n + j] /= sum;
    }
}

/* Guards the reference: Linformer with k = S and identity projections and Nystrom with m = L = S
 * and an exact pinv equal FULL in float64; NEWTON converges to the SVD pseudo-inverse on softmax
 * matrices; the segments tile the sequence as docs/attention.md says. */
static void test_reference_invariants(void **state)
{
    (void)state;
    const shape sh = {2, 6, 6};
    const mha_cfg full = {.kind = ATTN_MHA_FULL, .bias = 1, .embed = 6, .heads = 2};
    attn_mha *f = make_mha(&full, 1, 3.0);
    inputs in = make_inputs(&full, &sh, MASK_NONE, 0, 5);
    const int64_t n_out = sh.batch * sh.tgt_len * full.embed;
    double *want = new_doubles(n_out), *got = new_doubles(n_out);
    assert_int_equal(ref_mha_forward(f, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key, in.value, NULL, want), 0);

    for (int32_t sharing = ATTN_LINFORMER_HEADWISE; sharing <= ATTN_LINFORMER_NONE; sharing++) {
        const mha_cfg c = {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 6, .heads = 2, .sharing = sharing,
                           .max_seq_len = 6, .proj_len = 6};
        attn_mha *lin = make_mha(&c, 2, 1.0);
        copy_shared_tensors(f, lin);
        set_identity_projections(lin, &c);
        assert_int_equal(ref_mha_forward(lin, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key, in.value, NULL, got),
                         0);
        if (max_abs_diff(want, got, n_out) > 1e-12)
            fail_msg("reference: Linformer %s with identity projections differs from FULL by %g",
                     sharing_names[sharing], max_abs_diff(want, got, n_out));
        attn_mha_destroy(lin);
    }
    for (int mk = MASK_NONE; mk <= MASK_TAIL; mk++) {
        uint8_t *mask = make_mask(mk, sh.batch, sh.src_len, 3);
        const mha_cfg c = {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 6, .heads = 2, .pinv = ATTN_PINV_SVD,
                           .landmarks = 6};
        attn_mha *nys = make_mha(&c, 3, 1.0);
        copy_shared_tensors(f, nys);
        assert_int_equal(ref_mha_forward(f, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key, in.value, mask, want),
                         0);
        assert_int_equal(ref_mha_forward(nys, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key, in.value, mask, got),
                         0);
        if (max_abs_diff(want, got, n_out) > 1e-9)
            fail_msg("reference: Nystrom m = n with SVD differs from FULL by %g (mask %s)",
                     max_abs_diff(want, got, n_out), mask_names[mk]);
        attn_mha_destroy(nys);
        free(mask);
    }

    /* NEWTON: |A Z A - A| and |Z - pinv(A)| vanish with enough iterations. */
    for (int64_t n = 1; n <= 16; n *= 2)
        for (int k = 0; k < 3; k++) {
            double *a = new_doubles(n * n), *z = new_doubles(n * n), *p = new_doubles(n * n);
            double *az = new_doubles(n * n), *aza = new_doubles(n * n);
            random_softmax_matrix(a, n, 1.0 + 2.0 * k, 40 + (uint64_t)(n * 3 + k));
            assert_int_equal(ref_pinv_newton(a, n, 40, z), 0);
            assert_int_equal(ref_pinv_svd(a, n, 1e-13, p), 0);
            ref_matmul(n, n, n, a, n, z, n, az, n);
            ref_matmul(n, n, n, az, n, a, n, aza, n);
            double zmax = 0;
            for (int64_t i = 0; i < n * n; i++)
                zmax = fmax(zmax, fabs(p[i]));
            if (max_abs_diff(aza, a, n * n) > 1e-10 || max_abs_diff(z, p, n * n) > 1e-8 * zmax)
                fail_msg("reference NEWTON n=%lld spread %d: |AZA - A| = %g, |Z - pinv| = %g (|pinv| %g)",
                         (long long)n, 1 + 2 * k, max_abs_diff(aza, a, n * n), max_abs_diff(z, p, n * n), zmax);
            free(a), free(z), free(p), free(az), free(aza);
        }

    for (int64_t n = 1; n <= 13; n++)
        for (int64_t m = 1; m <= n; m++) {
            int64_t expect = 0, begin, end;
            for (int64_t i = 0; i < m; i++) {
                ref_nystrom_segment(i, n, m, &begin, &end);
                if (begin != expect || end - begin < n / m || end - begin > n / m + 1)
                    fail_msg("segment %lld of %lld over %lld rows is [%lld, %lld)", (long long)i, (long long)m,
                             (long long)n, (long long)begin, (long long)end);
                expect = end;
            }
            assert_int_equal(expect, n);
        }
    free(want), free(got);
    free_inputs(&in);
    attn_mha_destroy(f);
}

/* ================================================================================================
 * Invariants of the library
 * ============================================================================================= */

/* Runs forward of `a` and `b` on the same inputs and compares. */
static void check_same_forward(attn_mha *a, attn_mha *b, const mha_cfg *ca, const shape *sh, const inputs *in,
                               double tol, const char *ctx)
{
    const int64_t n = sh->batch * sh->tgt_len * ca->embed;
    float *oa = filled_floats(n, NAN), *ob = filled_floats(n, NAN);
    ASSERT_OK(attn_mha_forward(a, NULL, sh->batch, sh->tgt_len, sh->src_len, in->query, in->key, in->value, in->mask,
                               oa));
    ASSERT_OK(attn_mha_forward(b, NULL, sh->batch, sh->tgt_len, sh->src_len, in->query, in->key, in->value, in->mask,
                               ob));
    check_close_f32(ctx, "forward", oa, ob, n, tol);
    free(oa), free(ob);
}

/* Linformer with k = S and E = F = identity (docs/attention.md) equals FULL, for every sharing mode,
 * S = max_seq_len and S < max_seq_len (the projections are then [I | 0]). No mask: Linformer
 * zeroes masked keys instead of hiding them, so masks are where the two differ by design. */
static void test_linformer_identity_equals_full(void **state)
{
    (void)state;
    static const shape shapes[] = {{1, 5, 5}, {3, 4, 5}, {2, 7, 5}};
    char ctx[240];
    uint64_t seed = 4000;
    for (int32_t sharing = ATTN_LINFORMER_HEADWISE; sharing <= ATTN_LINFORMER_NONE; sharing++)
        for (int li = 0; li < COUNT_OF(layouts); li++)
            for (int64_t extra = 0; extra <= 3; extra += 3) {
                const mha_cfg fc = {.kind = ATTN_MHA_FULL, .bias = 1, .embed = layouts[li][0],
                                    .heads = layouts[li][1], .kdim = layouts[li][2], .vdim = layouts[li][3]};
                mha_cfg lc = fc;
                lc.kind = ATTN_MHA_LINFORMER;
                lc.sharing = sharing;
                lc.proj_len = 5;
                lc.max_seq_len = 5 + extra;
                attn_mha *full = make_mha(&fc, seed++, 3.0), *lin = make_mha(&lc, seed++, 1.0);
                copy_shared_tensors(full, lin);
                set_identity_projections(lin, &lc);
                cfg_describe(&lc, ctx, sizeof ctx);
                strncat(ctx, " identity projections vs FULL", sizeof ctx - strlen(ctx) - 1);
                for (int si = 0; si < COUNT_OF(shapes); si++) {
                    inputs in = make_inputs(&fc, &shapes[si], MASK_NONE, si == 0, seed++);
                    check_same_forward(full, lin, &fc, &shapes[si], &in, TOL, ctx);
                    free_inputs(&in);
                }
                attn_mha_destroy(full);
                attn_mha_destroy(lin);
            }
}

/* Nystrom with m = L = S, SVD pinv and no convolution (docs/attention.md) equals FULL: each landmark is
 * one position, so A1 = A2 = A3 = the softmax matrix P, and P pinv(P) P = P. With masks, masked
 * keys are masked landmarks, so this holds with every pattern too. */
static void test_nystrom_full_landmarks_equals_full(void **state)
{
    (void)state;
    char ctx[240];
    uint64_t seed = 5000;
    for (int li = 0; li < COUNT_OF(layouts); li++)
        for (int64_t n = 1; n <= 9; n += 4) {
            const mha_cfg fc = {.kind = ATTN_MHA_FULL, .bias = 1, .embed = layouts[li][0], .heads = layouts[li][1],
                                .kdim = layouts[li][2], .vdim = layouts[li][3]};
            mha_cfg nc = fc;
            nc.kind = ATTN_MHA_NYSTROM;
            nc.pinv = ATTN_PINV_SVD;
            nc.landmarks = n;
            attn_mha *full = make_mha(&fc, seed++, 3.0), *nys = make_mha(&nc, seed++, 1.0);
            copy_shared_tensors(full, nys);
            const shape shapes[] = {{1, n, n}, {3, n, n}};
            for (int si = 0; si < COUNT_OF(shapes); si++)
                for (int mk = 0; mk < MASK_KINDS; mk++) {
                    cfg_describe(&nc, ctx, sizeof ctx);
                    snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " vs FULL B=%lld mask=%s",
                             (long long)shapes[si].batch, mask_names[mk]);
                    inputs in = make_inputs(&fc, &shapes[si], mk, mk == 0, seed++);
                    check_same_forward(full, nys, &fc, &shapes[si], &in, pinv_tolerance(nys, &shapes[si], &in, 0),
                                       ctx);
                    free_inputs(&in);
                }
            attn_mha_destroy(full);
            attn_mha_destroy(nys);
        }
}

/* NEWTON converges on softmax matrices: with enough iterations, NEWTON's attention matrix (and
 * forward) is SVD's. Both are float32 pseudo-inverses, so the tolerance is twice pinv_tolerance's. */
static void test_nystrom_newton_converges(void **state)
{
    (void)state;
    char ctx[240];
    uint64_t seed = 6000;
    for (int li = 0; li < 2; li++)
        for (int64_t m = 2; m <= 4; m += 2) {
            mha_cfg svd = {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = layouts[li][0], .heads = layouts[li][1],
                           .kdim = layouts[li][2], .vdim = layouts[li][3], .pinv = ATTN_PINV_SVD, .landmarks = m};
            mha_cfg newton = svd;
            newton.pinv = ATTN_PINV_NEWTON;
            newton.iterations = 40;
            attn_mha *a = make_mha(&svd, seed++, 3.0), *b = make_mha(&newton, seed++, 1.0);
            copy_shared_tensors(a, b);
            cfg_describe(&newton, ctx, sizeof ctx);
            strncat(ctx, " vs SVD", sizeof ctx - strlen(ctx) - 1);
            const shape sh = {3, 9, 9};
            for (int mk = 0; mk < MASK_KINDS; mk++) {
                inputs in = make_inputs(&svd, &sh, mk, 0, seed++);
                const double tol = 2 * pinv_tolerance(a, &sh, &in, 1);
                const int64_t nw = sh.batch * svd.heads * sh.tgt_len * sh.src_len;
                float *wa = filled_floats(nw, NAN), *wb = filled_floats(nw, NAN);
                ASSERT_OK(attn_mha_attention_matrix(a, NULL, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key,
                                                    in.value, in.mask, wa));
                ASSERT_OK(attn_mha_attention_matrix(b, NULL, sh.batch, sh.tgt_len, sh.src_len, in.query, in.key,
                                                    in.value, in.mask, wb));
                check_close_f32(ctx, mask_names[mk], wa, wb, nw, tol);
                check_same_forward(a, b, &svd, &sh, &in, tol, ctx);
                free(wa), free(wb);
                free_inputs(&in);
            }
            attn_mha_destroy(a);
            attn_mha_destroy(b);
        }
}

/* What masked positions hold does not matter (docs/attention.md): changing the keys and values
 * at masked positions, and in self-attention shape (L = S, where the mask also marks padded
 * queries) the queries there too, leaves the output of every unmasked query unchanged, for every
 * kind. The masked queries' own rows may change and are not compared. */
static void test_masked_positions_ignored(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 6,
         .heads = 3, .kdim = 5, .vdim = 7},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_HEADWISE,
         .max_seq_len = 12, .proj_len = 4},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7,
         .sharing = ATTN_LINFORMER_NONE, .max_seq_len = 10, .proj_len = 6},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .pinv = ATTN_PINV_NEWTON, .landmarks = 3,
         .iterations = 6, .conv = 3},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7, .pinv = ATTN_PINV_SVD,
         .landmarks = 4},
    };
    char ctx[240];
    uint64_t seed = 7500;
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        const mha_cfg *c = &cfgs[k];
        attn_mha *mha = make_mha(c, seed++, 3.0);
        const shape shapes[] = {{3, 9, 9}, {3, 7, 9}};
        for (int si = 0; si < (c->conv ? 1 : 2); si++)
            for (int mk = MASK_RANDOM; mk < MASK_KINDS; mk++) {
                const shape *sh = &shapes[si];
                const int64_t B = sh->batch, L = sh->tgt_len, S = sh->src_len, E = c->embed;
                const int64_t kd = kdim_of(c), vd = vdim_of(c);
                cfg_describe(c, ctx, sizeof ctx);
                snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " L=%lld S=%lld mask=%s", (long long)L,
                         (long long)S, mask_names[mk]);
                inputs a = make_inputs(c, sh, mk, 0, seed++), b = make_inputs(c, sh, MASK_NONE, 0, seed++);
                /* b: a's data, with other values where a's mask hides a position. */
                for (int64_t bb = 0; bb < B; bb++)
                    for (int64_t j = 0; j < S; j++) {
                        const int hidden = a.mask[bb * S + j] != 0;
                        for (int64_t x = 0; x < kd; x++)
                            if (!hidden)
                                b.key[(bb * S + j) * kd + x] = a.key[(bb * S + j) * kd + x];
                        for (int64_t x = 0; x < vd; x++)
                            if (!hidden)
                                b.value[(bb * S + j) * vd + x] = a.value[(bb * S + j) * vd + x];
                    }
                for (int64_t bb = 0; bb < B; bb++)
                    for (int64_t i = 0; i < L; i++)
                        if (L != S || !a.mask[bb * S + i])
                            memcpy(b.query + (bb * L + i) * E, a.query + (bb * L + i) * E, (size_t)E * sizeof(float));
                float *oa = filled_floats(B * L * E, NAN), *ob = filled_floats(B * L * E, NAN);
                ASSERT_OK(attn_mha_forward(mha, NULL, B, L, S, a.query, a.key, a.value, a.mask, oa));
                ASSERT_OK(attn_mha_forward(mha, NULL, B, L, S, b.query, b.key, b.value, a.mask, ob));
                for (int64_t bb = 0; bb < B; bb++)
                    for (int64_t i = 0; i < L; i++) {
                        if (L == S && a.mask[bb * S + i])
                            continue;
                        char where[300];
                        snprintf(where, sizeof where, "%s: query (%lld, %lld)", ctx, (long long)bb, (long long)i);
                        check_close_f32(where, "output after changing masked positions", oa + (bb * L + i) * E,
                                        ob + (bb * L + i) * E, E, 1e-6);
                    }
                free(oa), free(ob);
                free_inputs(&a), free_inputs(&b);
            }
        attn_mha_destroy(mha);
    }
}

/* ================================================================================================
 * attention_matrix: rows of FULL sum to 1; the matrix times V_h is forward's per-head output
 * ============================================================================================= */

/* FULL rows sum to 1, except rows that see no key (fully masked element; causal row 0 whose keys
 * are masked) which are 0; masked and (causal) future keys get exactly 0. */
static void test_full_matrix_rows(void **state)
{
    (void)state;
    char ctx[240];
    uint64_t seed = 7000;
    static const shape shapes[] = {{3, 5, 8}, {3, 8, 5}, {1, 300, 700}};
    for (int32_t causal = 0; causal <= 1; causal++)
        for (int mi = 0; mi < COUNT_OF(all_memory_modes); mi++) {
            const mha_cfg c = {.kind = ATTN_MHA_FULL, .bias = 1, .causal = causal,
                               .memory_mode = all_memory_modes[mi], .embed = 8, .heads = 2};
            attn_mha *mha = make_mha(&c, seed++, 3.0);
            for (int si = 0; si < COUNT_OF(shapes); si++)
                for (int mk = 0; mk < MASK_KINDS; mk++) {
                    const shape *sh = &shapes[si];
                    const int64_t L = sh->tgt_len, S = sh->src_len;
                    cfg_describe(&c, ctx, sizeof ctx);
                    snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " B=%lld L=%lld S=%lld mask=%s",
                             (long long)sh->batch, (long long)L, (long long)S, mask_names[mk]);
                    inputs in = make_inputs(&c, sh, mk, 0, seed++);
                    const int64_t nw = sh->batch * c.heads * L * S;
                    float *w = filled_floats(nw, NAN);
                    ASSERT_OK(attn_mha_attention_matrix(mha, NULL, sh->batch, L, S, in.query, in.key, in.value,
                                                        in.mask, w));
                    for (int64_t b = 0; b < sh->batch; b++)
                        for (int64_t hh = 0; hh < c.heads; hh++)
                            for (int64_t i = 0; i < L; i++) {
                                const float *row = w + ((b * c.heads + hh) * L + i) * S;
                                double sum = 0;
                                int sees = 0;
                                for (int64_t j = 0; j < S; j++) {
                                    const int hidden = (in.mask && in.mask[b * S + j]) || (causal && j > i);
                                    sees |= !hidden;
                                    if (hidden && row[j] != 0.0f)
                                        fail_msg("%s: weight (%lld, %lld, %lld, %lld) of a hidden key is %g", ctx,
                                                 (long long)b, (long long)hh, (long long)i, (long long)j, row[j]);
                                    if (!(row[j] >= 0.0f && row[j] <= 1.0f + 1e-6f))
                                        fail_msg("%s: weight (%lld, %lld, %lld, %lld) is %g", ctx, (long long)b,
                                                 (long long)hh, (long long)i, (long long)j, row[j]);
                                    sum += row[j];
                                }
                                if (fabs(sum - (sees ? 1.0 : 0.0)) > 1e-5)
                                    fail_msg("%s: row (%lld, %lld, %lld) sums to %.9g, want %d", ctx, (long long)b,
                                             (long long)hh, (long long)i, sum, sees);
                            }
                    free(w);
                    free_inputs(&in);
                }
            attn_mha_destroy(mha);
        }
}

/* With out_proj = identity and no out-projection bias, forward returns the concatenated per-head
 * output O; it must equal attention_matrix times V_h (V_h from the float64 in-projection of the
 * handle's weights). Every kind; Nystrom without its residual convolution, which the matrix leaves
 * out by definition. */
static void test_matrix_times_v_is_forward(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 6,
         .heads = 3, .kdim = 5, .vdim = 7},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_HEADWISE,
         .max_seq_len = 12, .proj_len = 4},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7,
         .sharing = ATTN_LINFORMER_KV, .max_seq_len = 10, .proj_len = 6},
        {.kind = ATTN_MHA_LINFORMER, .bias = 0, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_NONE,
         .max_seq_len = 9, .proj_len = 3},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .pinv = ATTN_PINV_NEWTON, .landmarks = 3,
         .iterations = 6},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7, .pinv = ATTN_PINV_SVD,
         .landmarks = 4},
    };
    static const shape shapes[] = {{1, 9, 9}, {3, 7, 9}, {3, 9, 5}};
    char ctx[240];
    uint64_t seed = 8000;
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        const mha_cfg *c = &cfgs[k];
        attn_mha *mha = make_mha(c, seed++, 3.0);
        attn_params *p = attn_mha_params(mha);
        const int64_t E = c->embed, h = c->heads, dh = E / h;
        float *eye = filled_floats(E * E, 0.0f), *zeros = filled_floats(E, 0.0f);
        for (int64_t i = 0; i < E; i++)
            eye[i * E + i] = 1.0f;
        ASSERT_OK(attn_params_set(p, "out_proj.weight", eye, E * E));
        if (c->bias)
            ASSERT_OK(attn_params_set(p, "out_proj.bias", zeros, E));
        for (int si = 0; si < COUNT_OF(shapes); si++)
            for (int mk = 0; mk < MASK_KINDS; mk++) {
                const shape *sh = &shapes[si];
                const int64_t B = sh->batch, L = sh->tgt_len, S = sh->src_len;
                cfg_describe(c, ctx, sizeof ctx);
                snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " B=%lld L=%lld S=%lld mask=%s", (long long)B,
                         (long long)L, (long long)S, mask_names[mk]);
                inputs in = make_inputs(c, sh, mk, 0, seed++);
                float *w = filled_floats(B * h * L * S, NAN), *out = filled_floats(B * L * E, NAN);
                double *q = new_doubles(B * L * E), *kk = new_doubles(B * S * E), *v = new_doubles(B * S * E);
                double *o = new_doubles(B * L * E);
                ASSERT_OK(attn_mha_attention_matrix(mha, NULL, B, L, S, in.query, in.key, in.value, in.mask, w));
                ASSERT_OK(attn_mha_forward(mha, NULL, B, L, S, in.query, in.key, in.value, in.mask, out));
                assert_int_equal(ref_mha_project(mha, B, L, S, in.query, in.key, in.value, q, kk, v), 0);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t hh = 0; hh < h; hh++)
                        for (int64_t i = 0; i < L; i++)
                            for (int64_t cc = 0; cc < dh; cc++) {
                                double s = 0;
                                for (int64_t j = 0; j < S; j++)
                                    s += (double)w[((b * h + hh) * L + i) * S + j] * v[(b * S + j) * E + hh * dh + cc];
                                o[(b * L + i) * E + hh * dh + cc] = s;
                            }
                check_close_tol(ctx, "forward with out_proj = I vs attention_matrix * V_h", o, out, B * L * E,
                                pinv_tolerance(mha, sh, &in, 0));
                free(w), free(out), free(q), free(kk), free(v), free(o);
                free_inputs(&in);
            }
        free(eye), free(zeros);
        attn_mha_destroy(mha);
    }
}

/* ================================================================================================
 * Tensor names, shapes, order and initialization
 * ============================================================================================= */

typedef struct expected_tensor {
    const char *name;
    int64_t ndim, shape[4];
} expected_tensor;

/* docs/attention.md: torch.nn.MultiheadAttention's state_dict order, then the kind's tensors. */
static int expected_tensors(const mha_cfg *c, expected_tensor *t)
{
    const int64_t e = c->embed, k = kdim_of(c), v = vdim_of(c);
    int n = 0;
    if (k == e && v == e) {
        t[n++] = (expected_tensor){"in_proj_weight", 2, {3 * e, e}};
    } else {
        t[n++] = (expected_tensor){"q_proj_weight", 2, {e, e}};
        t[n++] = (expected_tensor){"k_proj_weight", 2, {e, k}};
        t[n++] = (expected_tensor){"v_proj_weight", 2, {e, v}};
    }
    if (c->bias)
        t[n++] = (expected_tensor){"in_proj_bias", 1, {3 * e}};
    t[n++] = (expected_tensor){"out_proj.weight", 2, {e, e}};
    if (c->bias)
        t[n++] = (expected_tensor){"out_proj.bias", 1, {e}};
    if (c->kind == ATTN_MHA_LINFORMER) {
        const expected_tensor proj = c->sharing == ATTN_LINFORMER_NONE
                                         ? (expected_tensor){"", 3, {c->heads, c->proj_len, c->max_seq_len}}
                                         : (expected_tensor){"", 2, {c->proj_len, c->max_seq_len}};
        t[n] = proj, t[n++].name = "proj_e";
        if (c->sharing != ATTN_LINFORMER_KV)
            t[n] = proj, t[n++].name = "proj_f";
    }
    if (c->kind == ATTN_MHA_NYSTROM && c->conv)
        t[n++] = (expected_tensor){"res_conv.weight", 4, {c->heads, 1, c->conv, 1}};
    return n;
}

static int64_t tensor_count(const expected_tensor *t)
{
    int64_t n = 1;
    for (int64_t d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static const mha_cfg layout_cfgs[] = {
    {.kind = ATTN_MHA_FULL, .bias = 1, .embed = 8, .heads = 2},
    {.kind = ATTN_MHA_FULL, .bias = 0, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7},
    {.kind = ATTN_MHA_FULL, .bias = 1, .embed = 4, .heads = 1, .kdim = 4},
    {.kind = ATTN_MHA_FULL, .bias = 1, .embed = 4, .heads = 4, .vdim = 9},
    {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_HEADWISE,
     .max_seq_len = 11, .proj_len = 3},
    {.kind = ATTN_MHA_LINFORMER, .bias = 0, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_KV,
     .max_seq_len = 11, .proj_len = 3},
    {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 6, .heads = 3, .kdim = 2, .sharing = ATTN_LINFORMER_NONE,
     .max_seq_len = 11, .proj_len = 3},
    {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .landmarks = 3, .iterations = 6},
    {.kind = ATTN_MHA_NYSTROM, .bias = 0, .embed = 6, .heads = 3, .landmarks = 3, .pinv = ATTN_PINV_SVD,
     .conv = 5},
};

static void test_params_layout(void **state)
{
    (void)state;
    expected_tensor want[MAX_TENSORS];
    char ctx[240];
    for (int k = 0; k < COUNT_OF(layout_cfgs); k++) {
        const mha_cfg *c = &layout_cfgs[k];
        cfg_describe(c, ctx, sizeof ctx);
        const attn_mha_options o = cfg_options(c);
        attn_mha *mha = NULL;
        ASSERT_OK(attn_mha_create(&mha, &o));
        const attn_params *p = attn_mha_params(mha);
        const int n = expected_tensors(c, want);
        if (attn_params_count(p) != n)
            fail_msg("%s: %lld tensors, want %d", ctx, (long long)attn_params_count(p), n);
        for (int i = 0; i < n; i++) {
            attn_tensor_info info;
            ASSERT_OK(attn_params_info(p, i, &info));
            if (strcmp(info.name, want[i].name) != 0)
                fail_msg("%s: tensor %d is %s, want %s", ctx, i, info.name, want[i].name);
            int same = info.ndim == want[i].ndim && info.count == tensor_count(&want[i]);
            for (int d = 0; d < 4; d++)
                same = same && info.shape[d] == (d < want[i].ndim ? want[i].shape[d] : 0);
            if (!same)
                fail_msg("%s: %s has ndim %lld shape (%lld, %lld, %lld, %lld) count %lld", ctx, info.name,
                         (long long)info.ndim, (long long)info.shape[0], (long long)info.shape[1],
                         (long long)info.shape[2], (long long)info.shape[3], (long long)info.count);
            ASSERT_OK(attn_params_find(p, want[i].name, &info));
        }
        attn_mha_options got;
        memset(&got, 0xA5, sizeof got);
        ASSERT_OK(attn_mha_get_options(mha, &got));
        if (got.struct_size != sizeof got || got.kind != o.kind || got.bias != o.bias || got.causal != o.causal ||
            got.memory_mode != o.memory_mode || got.embed_dim != o.embed_dim || got.num_heads != o.num_heads ||
            got.kdim != kdim_of(c) || got.vdim != vdim_of(c) || got.max_seq_len != o.max_seq_len ||
            got.proj_len != o.proj_len || got.sharing != o.sharing || got.pinv != o.pinv ||
            got.num_landmarks != o.num_landmarks || got.pinv_iterations != o.pinv_iterations ||
            got.conv_kernel != o.conv_kernel || got.flags != 0)
            fail_msg("%s: attn_mha_get_options does not return the creation options with kdim/vdim resolved", ctx);
        attn_mha_destroy(mha);
    }
}

/* A new handle holds attn_params_init(p, 0); init is deterministic per seed and follows PyTorch's
 * laws: xavier_uniform in-projections (bound sqrt(6 / (fan_in + fan_out)), the packed weight
 * counting as (3E, E)), zero in_proj_bias and out_proj.bias, out_proj.weight within 1/sqrt(E). */
static void test_params_init(void **state)
{
    (void)state;
    char ctx[240];
    for (int k = 0; k < COUNT_OF(layout_cfgs); k++) {
        const mha_cfg *c = &layout_cfgs[k];
        cfg_describe(c, ctx, sizeof ctx);
        const attn_mha_options o = cfg_options(c);
        attn_mha *mha = NULL;
        ASSERT_OK(attn_mha_create(&mha, &o));
        attn_params *p = attn_mha_params(mha);
        expected_tensor want[MAX_TENSORS];
        const int n = expected_tensors(c, want);
        float *fresh[MAX_TENSORS];
        for (int i = 0; i < n; i++) {
            fresh[i] = filled_floats(tensor_count(&want[i]), NAN);
            ASSERT_OK(attn_params_get(p, want[i].name, fresh[i], tensor_count(&want[i])));
        }
        for (int i = 0; i < n; i++) {
            const int64_t count = tensor_count(&want[i]);
            float *zero = filled_floats(count, NAN);
            float *a = filled_floats(count, NAN), *b = filled_floats(count, NAN);
            ASSERT_OK(attn_params_init(p, 0));
            ASSERT_OK(attn_params_get(p, want[i].name, zero, count));
            ASSERT_OK(attn_params_init(p, 42));
            ASSERT_OK(attn_params_get(p, want[i].name, a, count));
            ASSERT_OK(attn_params_init(p, 42));
            ASSERT_OK(attn_params_get(p, want[i].name, b, count));
            if (memcmp(fresh[i], zero, (size_t)count * sizeof *a) || memcmp(a, b, (size_t)count * sizeof *a))
                fail_msg("%s: %s: a new handle is not init(0), or init(42) is not deterministic", ctx, want[i].name);
            double bound = -1; /* -1: not a uniform law checked here */
            const char *nm = want[i].name;
            if (!strcmp(nm, "in_proj_bias") || !strcmp(nm, "out_proj.bias"))
                bound = 0;
            else if (strstr(nm, "_proj_weight")) /* in_proj_weight counts as (3E, E) */
                bound = sqrt(6.0 / (double)(want[i].shape[0] + want[i].shape[1]));
            else if (!strcmp(nm, "out_proj.weight"))
                bound = 1.0 / sqrt((double)c->embed);
            double largest = 0;
            for (int64_t j = 0; j < count; j++)
                largest = fmax(largest, fabs(a[j]));
            if (bound == 0 && largest != 0)
                fail_msg("%s: %s is not zero after init (|max| %g)", ctx, nm, largest);
            if (bound > 0 && (!(largest <= bound * (1 + 1e-6)) || largest < 0.5 * bound))
                fail_msg("%s: %s reaches %g; PyTorch's law is U(-%g, %g)", ctx, nm, largest, bound, bound);
            if (bound < 0 && !(largest > 0 && isfinite(largest)))
                fail_msg("%s: %s is %g after init", ctx, nm, largest);
            free(fresh[i]), free(zero), free(a), free(b);
        }
        attn_mha_destroy(mha);
    }
}

/* ================================================================================================
 * attn_mha_cost and workspaces
 * ============================================================================================= */

static int64_t sum_of_counts(const attn_params *p)
{
    int64_t n = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        n += info.count;
    }
    return n;
}

/* FLOPs of the in- and out-projections (multiply-add = 2): Q and out over B*L rows of E inputs,
 * K and V over B*S rows of kdim and vdim inputs, E outputs each. */
static int64_t projection_flops(const mha_cfg *c, int64_t B, int64_t L, int64_t S)
{
    const int64_t e = c->embed;
    return 2 * e * (B * L * 2 * e + B * S * (kdim_of(c) + vdim_of(c)));
}

/* FLOPs of forward as docs/attention.md ("Cost") counts them, with the pair counts enumerated
 * here rather than taken from its closed forms: the projections, plus
 *   FULL       4 B E pairs, pairs = (query, key) pairs the causal mask leaves (all L S without);
 *   LINFORMER  4 B k S E + 4 B L k E;
 *   NYSTROM    B (4 m^2 E + 4 m S E + 4 L m E + h P + 2 c E), P = 8 iterations m^3 (NEWTON) or
 *              23 m^3 (SVD), c = (row, tap) pairs of the convolution inside the sequence. */
static int64_t expected_flops(const mha_cfg *c, int64_t B, int64_t L, int64_t S)
{
    const int64_t e = c->embed, m = c->landmarks;
    int64_t kind = 0;
    if (c->kind == ATTN_MHA_FULL) {
        int64_t pairs = 0;
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < S; j++)
                pairs += !c->causal || j <= i;
        kind = 4 * B * e * pairs;
    } else if (c->kind == ATTN_MHA_LINFORMER) {
        kind = 4 * B * c->proj_len * S * e + 4 * B * L * c->proj_len * e;
    } else {
        int64_t conv_pairs = 0;
        for (int64_t i = 0; i < L; i++)
            for (int64_t t = 0; t < c->conv; t++)
                conv_pairs += i + t - c->conv / 2 >= 0 && i + t - c->conv / 2 < L;
        const int64_t pinv = c->pinv == ATTN_PINV_SVD ? 23 * m * m * m : 8 * c->iterations * m * m * m;
        kind = B * (4 * m * m * e + 4 * m * S * e + 4 * L * m * e + c->heads * pinv + 2 * conv_pairs * e);
    }
    return projection_flops(c, B, L, S) + kind;
}

static attn_status run_forward(attn_mha *mha, attn_workspace *ws, const mha_cfg *c, const shape *sh, int mask_kind,
                               uint64_t seed)
{
    inputs in = make_inputs(c, sh, mask_kind, 0, seed);
    float *out = filled_floats(sh->batch * sh->tgt_len * c->embed, 0.0f);
    attn_status s = attn_mha_forward(mha, ws, sh->batch, sh->tgt_len, sh->src_len, in.query, in.key, in.value,
                                     in.mask, out);
    free(out);
    free_inputs(&in);
    return s;
}

static const mha_cfg cost_cfgs[] = {
    {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_AUTO, .embed = 8, .heads = 2},
    {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 8, .heads = 2},
    {.kind = ATTN_MHA_FULL, .bias = 0, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 6, .heads = 3, .kdim = 5,
     .vdim = 7},
    {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 8, .heads = 2},
    {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 8, .heads = 2},
    {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_HEADWISE,
     .max_seq_len = 700, .proj_len = 5},
    {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .sharing = ATTN_LINFORMER_KV,
     .max_seq_len = 700, .proj_len = 5},
    {.kind = ATTN_MHA_LINFORMER, .bias = 0, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7,
     .sharing = ATTN_LINFORMER_NONE, .max_seq_len = 700, .proj_len = 5},
    {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .pinv = ATTN_PINV_NEWTON, .landmarks = 3,
     .iterations = 6},
    {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .pinv = ATTN_PINV_SVD, .landmarks = 3},
    {.kind = ATTN_MHA_NYSTROM, .bias = 0, .embed = 6, .heads = 3, .kdim = 5, .vdim = 7, .pinv = ATTN_PINV_NEWTON,
     .landmarks = 4, .iterations = 3, .conv = 5},
    {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .pinv = ATTN_PINV_SVD, .landmarks = 2, .conv = 9},
};

/* The workspace of forward, written out from docs/attention.md (not from the library's planner):
 * projected Q, K, V and the per-head output, then the kind's scratch; every block rounded up to 64
 * bytes. -1 for NYSTROM with the SVD pinv, whose scratch includes LAPACK's own workspace query. */
static int64_t expected_workspace(const mha_cfg *c, int64_t B, int64_t L, int64_t S)
{
#define BLOCK(elems, size) (((elems) * (size) + 63) / 64 * 64)
    const int64_t E = c->embed, dh = c->embed / c->heads, f = 4;
    int64_t bytes = 2 * BLOCK(B * L * E, f) + 2 * BLOCK(B * S * E, f);
    if (c->kind == ATTN_MHA_FULL) {
        /* row blocks of 512 queries; AUTO streams once such a block of scores passes 8 MiB;
         * streaming tiles of 2048 keys */
        const int64_t rows = L < 512 ? L : 512;
        const int streaming = c->memory_mode == ATTN_MEMORY_STREAMING ||
                              (c->memory_mode == ATTN_MEMORY_AUTO && rows * S * f > (8 << 20));
        const int64_t keys = streaming ? (S < 2048 ? S : 2048) : S;
        bytes += 2 * BLOCK(S * dh, f) + BLOCK(rows * keys, f) + (streaming ? 2 : 1) * BLOCK(rows, f);
    } else if (c->kind == ATTN_MHA_LINFORMER) {
        const int64_t k = c->proj_len, rows = (65536 / k > 0 ? 65536 / k : 1) < L ? (65536 / k > 0 ? 65536 / k : 1) : L;
        bytes += 2 * BLOCK(k * E, f) + BLOCK(rows * k, f);
    } else {
        if (c->pinv == ATTN_PINV_SVD)
            return -1;
        const int64_t m = c->landmarks, rows = (65536 / m > 0 ? 65536 / m : 1) < L ? (65536 / m > 0 ? 65536 / m : 1) : L;
        bytes += 2 * BLOCK(m * E, f) + 2 * BLOCK(m, 1) + 2 * BLOCK(m * m, f) + BLOCK(3 * m * m, f) + BLOCK(m * S, f) +
                 2 * BLOCK(m * dh, f) + BLOCK(rows * m, f) + (c->conv ? BLOCK(c->conv * E, f) : 0);
    }
#undef BLOCK
    return bytes;
}

/* params = sum of tensor counts; FLOPs as docs/attention.md counts them (expected_flops), so more
 * than the projections alone; workspace_bytes is what a new workspace holds after one forward, and
 * another forward of the same shape (other data, a mask) does not grow it. */
static void test_cost(void **state)
{
    (void)state;
    static const shape shapes[] = {{1, 1, 1}, {1, 4, 4}, {3, 7, 5}, {2, 5, 9}, {2, 9, 9}, {1, 300, 600}, {2, 600, 300}};
    char ctx[300];
    for (int k = 0; k < COUNT_OF(cost_cfgs); k++) {
        const mha_cfg *c = &cost_cfgs[k];
        attn_mha *mha = make_mha(c, 9, 1.0);
        const int64_t params = sum_of_counts(attn_mha_params(mha));
        for (int si = 0; si < COUNT_OF(shapes); si++) {
            const shape *sh = &shapes[si];
            const int64_t B = sh->batch, L = sh->tgt_len, S = sh->src_len;
            if (c->kind == ATTN_MHA_NYSTROM && (L < c->landmarks || S < c->landmarks || (c->conv && L != S)))
                continue;
            cfg_describe(c, ctx, sizeof ctx);
            snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " B=%lld L=%lld S=%lld", (long long)B, (long long)L,
                     (long long)S);
            attn_cost cost;
            ASSERT_OK(attn_mha_cost(mha, B, L, S, &cost));
            const int64_t proj = projection_flops(c, B, L, S), want = expected_flops(c, B, L, S);
            if (cost.params != params)
                fail_msg("%s: cost params %lld, the tensors hold %lld", ctx, (long long)cost.params, (long long)params);
            if (cost.flops != want || !(cost.flops > proj))
                fail_msg("%s: flops %lld, want %lld (projections %lld)", ctx, (long long)cost.flops, (long long)want,
                         (long long)proj);
            const int64_t ws_want = expected_workspace(c, B, L, S);
            if (ws_want >= 0 && cost.workspace_bytes != ws_want)
                fail_msg("%s: workspace_bytes %lld, the formula gives %lld", ctx, (long long)cost.workspace_bytes,
                         (long long)ws_want);
            attn_workspace *ws = NULL;
            ASSERT_OK(attn_workspace_create(&ws));
            assert_int_equal(attn_workspace_size(ws), 0);
            ASSERT_OK(run_forward(mha, ws, c, sh, MASK_NONE, 3));
            if (attn_workspace_size(ws) != cost.workspace_bytes)
                fail_msg("%s: workspace holds %lld bytes after forward, cost says %lld", ctx,
                         (long long)attn_workspace_size(ws), (long long)cost.workspace_bytes);
            ASSERT_OK(run_forward(mha, ws, c, sh, MASK_EMPTY_ELEMENT, 4));
            if (attn_workspace_size(ws) != cost.workspace_bytes)
                fail_msg("%s: a second forward grew the workspace from %lld to %lld bytes", ctx,
                         (long long)cost.workspace_bytes, (long long)attn_workspace_size(ws));
            attn_workspace_destroy(ws);
        }
        attn_mha_destroy(mha);
    }
}

/* FLOPs as N = L = S doubles (E = 64, h = 1, cost only): FULL grows ~4x (quadratic; the linear
 * projections keep it slightly below), LINFORMER and NYSTROM ~2x (linear), and at N = 16384 the
 * approximations need a tenth of FULL's FLOPs or less. */
static void test_cost_growth(void **state)
{
    (void)state;
    const int64_t n1 = 4096, n2 = 8192, n3 = 16384;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 64, .heads = 1},
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 64, .heads = 1},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 64, .heads = 1, .max_seq_len = 16384, .proj_len = 64},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 64, .heads = 1, .landmarks = 64, .iterations = 6},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 64, .heads = 1, .landmarks = 64, .pinv = ATTN_PINV_SVD,
         .conv = 33},
    };
    char ctx[240];
    int64_t full_flops = 0;
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        const mha_cfg *c = &cfgs[k];
        attn_mha_options o = cfg_options(c);
        attn_mha *mha = NULL;
        ASSERT_OK(attn_mha_create(&mha, &o));
        cfg_describe(c, ctx, sizeof ctx);
        attn_cost a, b, d;
        ASSERT_OK(attn_mha_cost(mha, 1, n1, n1, &a));
        ASSERT_OK(attn_mha_cost(mha, 1, n2, n2, &b));
        ASSERT_OK(attn_mha_cost(mha, 1, n3, n3, &d));
        const double ratio = (double)b.flops / (double)a.flops;
        const int quadratic = c->kind == ATTN_MHA_FULL;
        if (quadratic ? !(ratio > 3.5 && ratio <= 4.0) : !(ratio >= 1.9 && ratio <= 2.2))
            fail_msg("%s: flops %lld at N=%lld and %lld at N=%lld: ratio %.3f, want %s", ctx, (long long)a.flops,
                     (long long)n1, (long long)b.flops, (long long)n2, ratio, quadratic ? "(3.5, 4]" : "[1.9, 2.2]");
        if (quadratic)
            full_flops = d.flops;
        else if (!(d.flops * 10 <= full_flops))
            fail_msg("%s: flops %lld at N=%lld, FULL needs %lld: not 10x fewer", ctx, (long long)d.flops, (long long)n3,
                     (long long)full_flops);
        attn_mha_destroy(mha);
    }
}

/* docs/attention.md: STREAMING never forms an L x S matrix. At L = S = 32768, E = 64, h = 1 its
 * workspace is below 64 MiB, and it grows linearly (2x per doubling, not 4x); LINFORMER and
 * NYSTROM too. Cost only: nothing of that size is allocated. */
static void test_streaming_workspace(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 64, .heads = 1},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 64,
         .heads = 1},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 64, .heads = 1, .max_seq_len = 32768, .proj_len = 64},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 64, .heads = 1, .landmarks = 64, .iterations = 6,
         .conv = 33},
    };
    const int64_t n = 32768;
    const int64_t limit = (int64_t)64 << 20;
    char ctx[240];
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        attn_mha_options o = cfg_options(&cfgs[k]);
        attn_mha *mha = NULL;
        ASSERT_OK(attn_mha_create(&mha, &o));
        cfg_describe(&cfgs[k], ctx, sizeof ctx);
        attn_cost half, big;
        ASSERT_OK(attn_mha_cost(mha, 1, n / 2, n / 2, &half));
        ASSERT_OK(attn_mha_cost(mha, 1, n, n, &big));
        if (!(big.workspace_bytes < limit))
            fail_msg("%s: workspace %lld bytes at L = S = %lld, want < 64 MiB", ctx, (long long)big.workspace_bytes,
                     (long long)n);
        if (!(big.workspace_bytes <= 2.2 * (double)half.workspace_bytes))
            fail_msg("%s: workspace %lld bytes at N = %lld and %lld at N = %lld: more than linear", ctx,
                     (long long)half.workspace_bytes, (long long)(n / 2), (long long)big.workspace_bytes,
                     (long long)n);
        attn_mha_destroy(mha);
    }
    /* AUTO may materialize (row blocks against all S keys, itself linear in S), but never an
     * L x S block: no quadratic growth at lengths where a score matrix would take 256 GiB. */
    const mha_cfg autoc = {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_AUTO, .embed = 64, .heads = 1};
    attn_mha_options o = cfg_options(&autoc);
    attn_mha *mha = NULL;
    ASSERT_OK(attn_mha_create(&mha, &o));
    attn_cost a, b;
    ASSERT_OK(attn_mha_cost(mha, 1, (int64_t)1 << 18, (int64_t)1 << 18, &a));
    ASSERT_OK(attn_mha_cost(mha, 1, (int64_t)1 << 19, (int64_t)1 << 19, &b));
    if (!(b.workspace_bytes <= 2.2 * (double)a.workspace_bytes))
        fail_msg("FULL AUTO: workspace %lld bytes at N = 2^18 and %lld at N = 2^19: more than linear",
                 (long long)a.workspace_bytes, (long long)b.workspace_bytes);
    attn_mha_destroy(mha);
}

/* One workspace serves different kinds and shapes, growing to the largest and staying correct. */
static void test_workspace_reuse(void **state)
{
    (void)state;
    static const struct {
        int cfg;
        shape sh;
    } steps[] = {{0, {3, 7, 5}}, {5, {1, 2, 3}}, {8, {2, 9, 9}}, {2, {3, 20, 30}}, {10, {1, 4, 4}}, {7, {2, 9, 20}},
                 {0, {3, 7, 5}}};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    int64_t largest = 0;
    char ctx[240];
    for (int k = 0; k < COUNT_OF(steps); k++) {
        const mha_cfg *c = &cost_cfgs[steps[k].cfg];
        attn_mha *mha = make_mha(c, 100 + (uint64_t)k, 3.0);
        cfg_describe(c, ctx, sizeof ctx);
        attn_cost cost;
        ASSERT_OK(attn_mha_cost(mha, steps[k].sh.batch, steps[k].sh.tgt_len, steps[k].sh.src_len, &cost));
        largest = cost.workspace_bytes > largest ? cost.workspace_bytes : largest;
        float *out = filled_floats(steps[k].sh.batch * steps[k].sh.tgt_len * c->embed, NAN);
        inputs in = make_inputs(c, &steps[k].sh, MASK_RANDOM, 0, 500 + (uint64_t)k);
        const int64_t n = steps[k].sh.batch * steps[k].sh.tgt_len * c->embed;
        double *ref = new_doubles(n);
        ASSERT_OK(attn_mha_forward(mha, ws, steps[k].sh.batch, steps[k].sh.tgt_len, steps[k].sh.src_len, in.query,
                                   in.key, in.value, in.mask, out));
        assert_int_equal(ref_mha_forward(mha, steps[k].sh.batch, steps[k].sh.tgt_len, steps[k].sh.src_len, in.query,
                                         in.key, in.value, in.mask, ref),
                         0);
        check_close(ctx, "forward on a reused workspace", ref, out, n);
        if (attn_workspace_size(ws) != largest)
            fail_msg("step %d (%s): workspace holds %lld bytes, the largest request so far was %lld", k, ctx,
                     (long long)attn_workspace_size(ws), (long long)largest);
        free(out), free(ref);
        free_inputs(&in);
        attn_mha_destroy(mha);
    }
    attn_workspace_destroy(ws);
}

/* ================================================================================================
 * Error paths
 * ============================================================================================= */

static void test_options_init(void **state)
{
    (void)state;
    attn_mha_options o;
    memset(&o, 0x5A, sizeof o);
    ASSERT_OK(attn_mha_options_init(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.kind, ATTN_MHA_FULL);
    assert_int_equal(o.bias, 1);
    assert_int_equal(o.causal, 0);
    assert_int_equal(o.memory_mode, ATTN_MEMORY_AUTO);
    assert_int_equal(o.embed_dim, 0);
    assert_int_equal(o.num_heads, 1);
    assert_int_equal(o.kdim, 0);
    assert_int_equal(o.vdim, 0);
    assert_int_equal(o.sharing, ATTN_LINFORMER_HEADWISE);
    assert_int_equal(o.pinv, ATTN_PINV_NEWTON);
    assert_int_equal(o.pinv_iterations, 6);
    assert_int_equal(o.conv_kernel, 0);
    assert_int_equal(o.flags, 0);
    EXPECT_FAILURE(attn_mha_options_init(NULL), ATTN_E_INVALID_ARG, "attn_mha_options_init", "options",
                   "options_init(NULL)");
}

/* Calls attn_mha_create expecting failure, and checks *out is reset to NULL. */
static void expect_create_failure(const void *options, attn_status want, const char *args, const char *what)
{
    attn_mha *mha = (attn_mha *)(uintptr_t)0x1; /* any non-NULL value: create must overwrite it */
    EXPECT_FAILURE(attn_mha_create(&mha, options), want, "attn_mha_create", args, what);
    if (mha != NULL)
        fail_msg("%s: *out is not NULL after a failed create", what);
}

enum {
    F_KIND, F_BIAS, F_CAUSAL, F_MEMORY, F_EMBED, F_HEADS, F_KDIM, F_VDIM, F_MAX_SEQ, F_PROJ, F_SHARING, F_PINV,
    F_LANDMARKS, F_ITERATIONS, F_CONV, F_FLAGS, F_STRUCT_SIZE
};

static void set_field(attn_mha_options *o, int field, int64_t v)
{
    switch (field) {
    case F_KIND: o->kind = (int32_t)v; break;
    case F_BIAS: o->bias = (int32_t)v; break;
    case F_CAUSAL: o->causal = (int32_t)v; break;
    case F_MEMORY: o->memory_mode = (int32_t)v; break;
    case F_EMBED: o->embed_dim = v; break;
    case F_HEADS: o->num_heads = v; break;
    case F_KDIM: o->kdim = v; break;
    case F_VDIM: o->vdim = v; break;
    case F_MAX_SEQ: o->max_seq_len = v; break;
    case F_PROJ: o->proj_len = v; break;
    case F_SHARING: o->sharing = (int32_t)v; break;
    case F_PINV: o->pinv = (int32_t)v; break;
    case F_LANDMARKS: o->num_landmarks = v; break;
    case F_ITERATIONS: o->pinv_iterations = v; break;
    case F_CONV: o->conv_kernel = v; break;
    case F_FLAGS: o->flags = (uint32_t)v; break;
    case F_STRUCT_SIZE: o->struct_size = (uint32_t)v; break;
    default: fail_msg("unknown field %d", field);
    }
}

/* Valid options of each kind for the create error cases: E = 8, h = 2. */
static attn_mha_options valid_options(int32_t kind)
{
    const mha_cfg c = {.kind = kind, .bias = 1, .embed = 8, .heads = 2, .max_seq_len = 16, .proj_len = 4,
                       .landmarks = 4, .iterations = 6};
    return cfg_options(&c);
}

static void test_create_errors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int32_t kind;
        int field;
        int64_t value;
        attn_status want;
        const char *args;
    } cases[] = {
        {"kind -1", ATTN_MHA_FULL, F_KIND, -1, ATTN_E_INVALID_ARG, "kind"},
        {"kind 3", ATTN_MHA_FULL, F_KIND, 3, ATTN_E_INVALID_ARG, "kind"},
        {"bias -1", ATTN_MHA_FULL, F_BIAS, -1, ATTN_E_INVALID_ARG, "bias"},
        {"bias 2", ATTN_MHA_LINFORMER, F_BIAS, 2, ATTN_E_INVALID_ARG, "bias"},
        {"causal -1", ATTN_MHA_FULL, F_CAUSAL, -1, ATTN_E_INVALID_ARG, "causal"},
        {"causal 2", ATTN_MHA_FULL, F_CAUSAL, 2, ATTN_E_INVALID_ARG, "causal"},
        {"memory_mode -1", ATTN_MHA_FULL, F_MEMORY, -1, ATTN_E_INVALID_ARG, "memory_mode"},
        {"memory_mode 3", ATTN_MHA_FULL, F_MEMORY, 3, ATTN_E_INVALID_ARG, "memory_mode"},
        {"embed_dim 0", ATTN_MHA_FULL, F_EMBED, 0, ATTN_E_INVALID_ARG, "embed_dim"},
        {"embed_dim -8", ATTN_MHA_NYSTROM, F_EMBED, -8, ATTN_E_INVALID_ARG, "embed_dim"},
        {"embed_dim huge", ATTN_MHA_FULL, F_EMBED, HUGE_SIZE, ANY_ERROR, "embed_dim"},
        {"num_heads 0", ATTN_MHA_FULL, F_HEADS, 0, ATTN_E_INVALID_ARG, "num_heads"},
        {"num_heads -2", ATTN_MHA_LINFORMER, F_HEADS, -2, ATTN_E_INVALID_ARG, "num_heads"},
        {"num_heads 3 (E = 8)", ATTN_MHA_FULL, F_HEADS, 3, ATTN_E_INVALID_ARG, "num_heads"},
        {"num_heads 16 > E", ATTN_MHA_NYSTROM, F_HEADS, 16, ATTN_E_INVALID_ARG, "num_heads"},
        {"num_heads huge", ATTN_MHA_FULL, F_HEADS, HUGE_SIZE, ANY_ERROR, "num_heads"},
        {"kdim -1", ATTN_MHA_FULL, F_KDIM, -1, ATTN_E_INVALID_ARG, "kdim"},
        {"kdim huge", ATTN_MHA_FULL, F_KDIM, HUGE_SIZE, ANY_ERROR, "kdim"},
        {"vdim -3", ATTN_MHA_LINFORMER, F_VDIM, -3, ATTN_E_INVALID_ARG, "vdim"},
        {"vdim huge", ATTN_MHA_NYSTROM, F_VDIM, HUGE_SIZE, ANY_ERROR, "vdim"},
        {"max_seq_len 0", ATTN_MHA_LINFORMER, F_MAX_SEQ, 0, ATTN_E_INVALID_ARG, "max_seq_len"},
        {"max_seq_len -1", ATTN_MHA_LINFORMER, F_MAX_SEQ, -1, ATTN_E_INVALID_ARG, "max_seq_len"},
        {"max_seq_len huge", ATTN_MHA_LINFORMER, F_MAX_SEQ, HUGE_SIZE, ANY_ERROR, "max_seq_len"},
        {"proj_len 0", ATTN_MHA_LINFORMER, F_PROJ, 0, ATTN_E_INVALID_ARG, "proj_len"},
        {"proj_len -4", ATTN_MHA_LINFORMER, F_PROJ, -4, ATTN_E_INVALID_ARG, "proj_len"},
        {"proj_len huge", ATTN_MHA_LINFORMER, F_PROJ, HUGE_SIZE, ANY_ERROR, "proj_len"},
        {"sharing -1", ATTN_MHA_LINFORMER, F_SHARING, -1, ATTN_E_INVALID_ARG, "sharing"},
        {"sharing 3", ATTN_MHA_LINFORMER, F_SHARING, 3, ATTN_E_INVALID_ARG, "sharing"},
        {"pinv -1", ATTN_MHA_NYSTROM, F_PINV, -1, ATTN_E_INVALID_ARG, "pinv"},
        {"pinv 2", ATTN_MHA_NYSTROM, F_PINV, 2, ATTN_E_INVALID_ARG, "pinv"},
        {"num_landmarks 0", ATTN_MHA_NYSTROM, F_LANDMARKS, 0, ATTN_E_INVALID_ARG, "num_landmarks"},
        {"num_landmarks -1", ATTN_MHA_NYSTROM, F_LANDMARKS, -1, ATTN_E_INVALID_ARG, "num_landmarks"},
        {"num_landmarks huge", ATTN_MHA_NYSTROM, F_LANDMARKS, HUGE_SIZE, ANY_ERROR, "num_landmarks"},
        {"pinv_iterations 0 with NEWTON", ATTN_MHA_NYSTROM, F_ITERATIONS, 0, ATTN_E_INVALID_ARG, "pinv_iterations"},
        {"pinv_iterations -1 with NEWTON", ATTN_MHA_NYSTROM, F_ITERATIONS, -1, ATTN_E_INVALID_ARG,
         "pinv_iterations"},
        {"pinv_iterations huge", ATTN_MHA_NYSTROM, F_ITERATIONS, HUGE_SIZE, ANY_ERROR, "pinv_iterations"},
        {"conv_kernel 2 (even)", ATTN_MHA_NYSTROM, F_CONV, 2, ATTN_E_INVALID_ARG, "conv_kernel"},
        {"conv_kernel 32 (even)", ATTN_MHA_NYSTROM, F_CONV, 32, ATTN_E_INVALID_ARG, "conv_kernel"},
        {"conv_kernel -3", ATTN_MHA_NYSTROM, F_CONV, -3, ATTN_E_INVALID_ARG, "conv_kernel"},
        {"conv_kernel huge", ATTN_MHA_NYSTROM, F_CONV, HUGE_SIZE, ANY_ERROR, "conv_kernel"},
        {"causal LINFORMER", ATTN_MHA_LINFORMER, F_CAUSAL, 1, ATTN_E_UNSUPPORTED, "causal"},
        {"causal NYSTROM", ATTN_MHA_NYSTROM, F_CAUSAL, 1, ATTN_E_UNSUPPORTED, "causal"},
        {"flags 1", ATTN_MHA_FULL, F_FLAGS, 1, ATTN_E_INVALID_ARG, "flags"},
        {"flags 0x80000000", ATTN_MHA_NYSTROM, F_FLAGS, 0x80000000u, ATTN_E_INVALID_ARG, "flags"},
        {"struct_size 0", ATTN_MHA_FULL, F_STRUCT_SIZE, 0, ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size 4", ATTN_MHA_FULL, F_STRUCT_SIZE, 4, ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size sizeof-1", ATTN_MHA_FULL, F_STRUCT_SIZE, (int64_t)sizeof(attn_mha_options) - 1,
         ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size offsetof(flags)", ATTN_MHA_LINFORMER, F_STRUCT_SIZE,
         (int64_t)offsetof(attn_mha_options, flags), ATTN_E_INVALID_ARG, "struct_size"},
    };
    char what[160];
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_mha_options o = valid_options(cases[k].kind);
        set_field(&o, cases[k].field, cases[k].value);
        snprintf(what, sizeof what, "%s %s", kind_names[cases[k].kind], cases[k].what);
        expect_create_failure(&o, cases[k].want, cases[k].args, what);
    }

    /* pinv_iterations only matters to NEWTON, memory_mode only to FULL. */
    attn_mha *mha = NULL;
    attn_mha_options o = valid_options(ATTN_MHA_NYSTROM);
    o.pinv = ATTN_PINV_SVD, o.pinv_iterations = 0, o.memory_mode = ATTN_MEMORY_STREAMING;
    ASSERT_OK(attn_mha_create(&mha, &o));
    attn_mha_destroy(mha);

    o = valid_options(ATTN_MHA_FULL);
    EXPECT_FAILURE(attn_mha_create(NULL, &o), ATTN_E_INVALID_ARG, "attn_mha_create", "out", "create(NULL, o)");
    expect_create_failure(NULL, ATTN_E_INVALID_ARG, "options", "create(&out, NULL)");

    /* A newer caller's bigger struct: zero extra bytes are fine, a set one asks for something
     * this library does not know. */
    const size_t big = sizeof o + 24;
    unsigned char *buf = grown_options(&o, sizeof o, big);
    ASSERT_OK(attn_mha_create(&mha, (const attn_mha_options *)(const void *)buf));
    attn_mha_options got;
    ASSERT_OK(attn_mha_get_options(mha, &got));
    assert_int_equal(got.struct_size, sizeof got);
    assert_int_equal(got.embed_dim, 8);
    attn_mha_destroy(mha);
    for (size_t at = sizeof o; at < big; at += 7) {
        snprintf(what, sizeof what, "struct_size %zu with byte %zu set", big, at);
        buf[at] = 1;
        expect_create_failure(buf, ATTN_E_UNSUPPORTED, "struct_size", what);
        buf[at] = 0;
    }
    free(buf);
}

/* Parameters too large to allocate: every extent is in range, only their product is not (2^28 x
 * 2^28 floats of proj_e, 3 x 2^56 of in_proj_weight). An error from attn_mha_create that names
 * the cause, not a crash. */
static void test_create_huge(void **state)
{
    (void)state;
    attn_mha_options o = valid_options(ATTN_MHA_LINFORMER);
    o.max_seq_len = o.proj_len = (int64_t)1 << 28;
    expect_create_failure(&o, ANY_ERROR, "max_seq_len|proj_len|proj_e|parameters|memory", "LINFORMER 2^28 x 2^28");
    o = valid_options(ATTN_MHA_FULL);
    o.embed_dim = o.num_heads = (int64_t)1 << 28;
    expect_create_failure(&o, ANY_ERROR, "embed_dim|in_proj_weight|parameters|memory", "FULL embed_dim 2^28");
}

enum { H_FULL, H_LINFORMER, H_NYSTROM, H_NYSTROM_CONV, H_NULL, H_KINDS };
enum { P_Q = 1, P_K = 2, P_V = 4, P_OUT = 8, P_ALL = 15 };

/* forward, attention_matrix and cost share their shape validation; each case runs on all three. */
static void test_call_errors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int handle;
        int64_t batch, tgt_len, src_len;
        int pointers;
        attn_status want;
        const char *args; /* for forward and attention_matrix; cost skips pointer cases */
    } cases[] = {
        {"NULL handle", H_NULL, 2, 3, 4, P_ALL, ATTN_E_INVALID_ARG, "mha|handle"},
        {"NULL query", H_FULL, 2, 3, 4, P_ALL & ~P_Q, ATTN_E_INVALID_ARG, "query"},
        {"NULL key", H_LINFORMER, 2, 3, 4, P_ALL & ~P_K, ATTN_E_INVALID_ARG, "key"},
        {"NULL value", H_NYSTROM, 2, 4, 4, P_ALL & ~P_V, ATTN_E_INVALID_ARG, "value"},
        {"NULL out", H_FULL, 2, 3, 4, P_ALL & ~P_OUT, ATTN_E_INVALID_ARG, "out|weights"},
        {"batch 0", H_FULL, 0, 3, 4, P_ALL, ATTN_E_SHAPE, "batch"},
        {"batch -1", H_LINFORMER, -1, 3, 4, P_ALL, ATTN_E_SHAPE, "batch"},
        {"tgt_len 0", H_NYSTROM, 2, 0, 4, P_ALL, ATTN_E_SHAPE, "tgt_len"},
        {"tgt_len -3", H_FULL, 2, -3, 4, P_ALL, ATTN_E_SHAPE, "tgt_len"},
        {"src_len 0", H_LINFORMER, 2, 3, 0, P_ALL, ATTN_E_SHAPE, "src_len"},
        {"src_len -1", H_NYSTROM, 2, 4, -1, P_ALL, ATTN_E_SHAPE, "src_len"},
        {"src_len > max_seq_len", H_LINFORMER, 2, 3, 17, P_ALL, ATTN_E_SHAPE, "src_len|max_seq_len"},
        {"src_len huge, LINFORMER", H_LINFORMER, 1, 3, HUGE_SIZE, P_ALL, ATTN_E_SHAPE, "src_len|max_seq_len|length"},
        {"num_landmarks > tgt_len", H_NYSTROM, 2, 3, 4, P_ALL, ATTN_E_SHAPE, "num_landmarks|tgt_len"},
        {"num_landmarks > src_len", H_NYSTROM, 2, 4, 3, P_ALL, ATTN_E_SHAPE, "num_landmarks|src_len"},
        {"residual convolution with tgt_len != src_len", H_NYSTROM_CONV, 2, 4, 5, P_ALL, ATTN_E_SHAPE,
         "conv_kernel|tgt_len|src_len"},
        {"huge batch", H_FULL, HUGE_SIZE, 3, 4, P_ALL, ATTN_E_SHAPE, "batch"},
        {"huge tgt_len", H_FULL, 2, HUGE_SIZE, 4, P_ALL, ATTN_E_SHAPE, "tgt_len|length"},
        {"huge src_len", H_NYSTROM, 2, 4, HUGE_SIZE, P_ALL, ATTN_E_SHAPE, "src_len|length"},
        {"batch beyond int32", H_FULL, (int64_t)1 << 31, 1, 1, P_ALL, ATTN_E_SHAPE, "batch"},
        {"batch*tgt_len beyond int32", H_FULL, (int64_t)1 << 20, (int64_t)1 << 20, 1, P_ALL, ATTN_E_SHAPE,
         "batch|tgt_len|length"},
        {"tgt_len*src_len beyond int64", H_FULL, 1, (int64_t)1 << 40, (int64_t)1 << 40, P_ALL, ATTN_E_SHAPE,
         "batch|tgt_len|src_len|length"},
        {"huge everything", H_NYSTROM, HUGE_SIZE, HUGE_SIZE, HUGE_SIZE, P_ALL, ATTN_E_SHAPE,
         "batch|tgt_len|src_len|length"},
    };
    static const mha_cfg cfgs[H_NULL] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .max_seq_len = 16, .proj_len = 4},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .landmarks = 4, .iterations = 6},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .landmarks = 3, .pinv = ATTN_PINV_SVD,
         .conv = 3},
    };
    attn_mha *handles[H_KINDS] = {NULL};
    for (int k = 0; k < H_NULL; k++)
        handles[k] = make_mha(&cfgs[k], 3, 1.0);
    /* Buffers sized for B = 2, L, S <= 5; the huge cases must not touch them. */
    const int64_t nin = 2 * 5 * 8, nw = 2 * 2 * 5 * 5;
    float *q = random_floats(nin, 1, 1.0), *k = random_floats(nin, 2, 1.0), *v = random_floats(nin, 3, 1.0);
    float *out = filled_floats(nin, -7.5f), *w = filled_floats(nw, -7.5f);
    uint8_t mask[2 * 4] = {0, 1, 0, 0, 1, 1, 1, 1};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    char what[200];
    for (int c = 0; c < COUNT_OF(cases); c++) {
        const int p = cases[c].pointers;
        const attn_mha *mha = handles[cases[c].handle];
        const int64_t B = cases[c].batch, L = cases[c].tgt_len, S = cases[c].src_len;
        const float *qq = p & P_Q ? q : NULL, *kk = p & P_K ? k : NULL, *vv = p & P_V ? v : NULL;
        for (int with_mask = 0; with_mask <= 1; with_mask++) {
            const uint8_t *m = with_mask && B == 2 && S == 4 ? mask : NULL;
            snprintf(what, sizeof what, "forward %s%s", cases[c].what, m ? " (mask)" : "");
            EXPECT_FAILURE(attn_mha_forward(mha, ws, B, L, S, qq, kk, vv, m, p & P_OUT ? out : NULL), cases[c].want,
                           "attn_mha_forward", cases[c].args, what);
            snprintf(what, sizeof what, "attention_matrix %s%s", cases[c].what, m ? " (mask)" : "");
            EXPECT_FAILURE(attn_mha_attention_matrix(mha, ws, B, L, S, qq, kk, vv, m, p & P_OUT ? w : NULL),
                           cases[c].want, "attn_mha_attention_matrix", cases[c].args, what);
            if (!all_equal(out, nin, -7.5f) || !all_equal(w, nw, -7.5f))
                fail_msg("%s: a failed call wrote its output", cases[c].what);
            /* Validation comes before any allocation. */
            if (attn_workspace_size(ws) != 0)
                fail_msg("%s: a failed call grew the workspace to %lld bytes", cases[c].what,
                         (long long)attn_workspace_size(ws));
        }
        if (p != P_ALL)
            continue;
        attn_cost cost, before;
        memset(&cost, 0x5A, sizeof cost);
        before = cost;
        snprintf(what, sizeof what, "cost %s", cases[c].what);
        EXPECT_FAILURE(attn_mha_cost(mha, B, L, S, &cost), cases[c].want, "attn_mha_cost", cases[c].args, what);
        if (memcmp(&cost, &before, sizeof cost) != 0)
            fail_msg("%s: a failed call wrote its output", what);
    }
    for (int k = 0; k < H_NULL; k++) {
        snprintf(what, sizeof what, "cost of %s with NULL out", kind_names[cfgs[k].kind]);
        EXPECT_FAILURE(attn_mha_cost(handles[k], 2, 4, 4, NULL), ATTN_E_INVALID_ARG, "attn_mha_cost", "out", what);
    }

    /* The same calls succeed with valid arguments, so the failures above were the arguments'. */
    for (int h = 0; h < H_NULL; h++) {
        ASSERT_OK(attn_mha_forward(handles[h], ws, 2, 4, 4, q, k, v, mask, out));
        ASSERT_OK(attn_mha_attention_matrix(handles[h], ws, 2, 4, 4, q, k, v, mask, w));
    }
    attn_workspace_destroy(ws);
    free(q), free(k), free(v), free(out), free(w);
    for (int h = 0; h < H_NULL; h++)
        attn_mha_destroy(handles[h]);
}

/* docs/attention.md: a non-finite A2 is ATTN_E_NUMERICAL for the SVD pinv, with the outputs
 * untouched; a NaN key makes its landmark's column of A2 NaN. Last in the list: NaN passes through
 * the exp kernel, which a sanitizer build checks for undefined behaviour. */
static void test_nan_input(void **state)
{
    (void)state;
    const mha_cfg c = {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .landmarks = 3,
                       .pinv = ATTN_PINV_SVD, .conv = 3};
    attn_mha *mha = make_mha(&c, 3, 1.0);
    const int64_t nin = 2 * 4 * 8, nw = 2 * 2 * 4 * 4;
    float *q = random_floats(nin, 1, 1.0), *k = random_floats(nin, 2, 1.0), *v = random_floats(nin, 3, 1.0);
    float *out = filled_floats(nin, -7.5f), *w = filled_floats(nw, -7.5f);
    k[8 + 3] = NAN; /* batch 0, key row 1 */
    EXPECT_FAILURE(attn_mha_forward(mha, NULL, 2, 4, 4, q, k, v, NULL, out), ATTN_E_NUMERICAL, "attn_mha_forward",
                   "matrix|finite|NaN|A2|pinv|key", "forward NaN key, SVD pinv");
    EXPECT_FAILURE(attn_mha_attention_matrix(mha, NULL, 2, 4, 4, q, k, v, NULL, w), ATTN_E_NUMERICAL,
                   "attn_mha_attention_matrix", "matrix|finite|NaN|A2|pinv|key", "attention_matrix NaN key, SVD pinv");
    if (!all_equal(out, nin, -7.5f) || !all_equal(w, nw, -7.5f))
        fail_msg("NaN key, SVD pinv: a failed call wrote its output");
    free(q), free(k), free(v), free(out), free(w);
    attn_mha_destroy(mha);
}

/* get_options, params and destroy with NULL; status strings. */
static void test_other_errors(void **state)
{
    (void)state;
    attn_mha *mha = make_mha(&layout_cfgs[0], 1, 1.0);
    attn_mha_options o;
    EXPECT_FAILURE(attn_mha_get_options(NULL, &o), ATTN_E_INVALID_ARG, "attn_mha_get_options", "mha|handle",
                   "get_options(NULL handle)");
    EXPECT_FAILURE(attn_mha_get_options(mha, NULL), ATTN_E_INVALID_ARG, "attn_mha_get_options", "out",
                   "get_options(NULL out)");
    assert_null(attn_mha_params(NULL));
    assert_non_null(attn_mha_params(mha));
    attn_mha_destroy(NULL);
    attn_mha_destroy(mha);
}

/* ================================================================================================
 * Threads: forward on one const handle from two threads, each with its own workspace
 * ============================================================================================= */

#define THREAD_ITERATIONS 60

typedef struct thread_job {
    const attn_mha *mha;
    shape sh;
    int64_t n_out;
    const float *query, *key, *value;
    const uint8_t *mask;
    const float *ref; /* single-threaded result */
    int bad_call;     /* which failing call checks the thread-local message */
    thread_counts counts;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    job->counts.fresh_error_not_empty = attn_last_error()[0] != '\0';
    attn_workspace *ws = NULL;
    float *out = malloc((size_t)job->n_out * sizeof *out);
    const int ready = attn_workspace_create(&ws) == ATTN_OK && out;
    pthread_barrier_wait(job->counts.start);
    if (!ready) {
        job->counts.forward_failures = -1;
    } else {
        for (int it = 0; it < THREAD_ITERATIONS; it++) {
            if (attn_mha_forward(job->mha, ws, job->sh.batch, job->sh.tgt_len, job->sh.src_len, job->query, job->key,
                                 job->value, job->mask, out) != ATTN_OK) {
                job->counts.forward_failures++;
                continue;
            }
            /* Same code path and same BLAS calls on the same data: identical results. */
            if (memcmp(out, job->ref, (size_t)job->n_out * sizeof *out) != 0)
                job->counts.mismatches++;
            const int64_t b = job->bad_call ? 2 : 0, l = job->bad_call ? 0 : 3;
            attn_mha_forward(job->mha, NULL, b, l, 3, job->query, job->key, job->value, NULL, out);
            if (!has_word(attn_last_error(), job->bad_call ? "tgt_len" : "batch"))
                job->counts.message_wrong++;
        }
    }
    attn_workspace_destroy(ws);
    free(out);
    return NULL;
}

/* Each thread has its own input: threads computing the same data would hide a shared buffer. */
static void test_threads(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 16, .heads = 4},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 16,
         .heads = 2},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 16, .heads = 4, .sharing = ATTN_LINFORMER_NONE,
         .max_seq_len = 40, .proj_len = 8},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 16, .heads = 4, .landmarks = 5, .iterations = 6, .conv = 3},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 16, .heads = 4, .landmarks = 5, .pinv = ATTN_PINV_SVD},
    };
    const shape sh = {3, 33, 33};
    char ctx[240];
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        const mha_cfg *c = &cfgs[k];
        cfg_describe(c, ctx, sizeof ctx);
        attn_mha *mha = make_mha(c, 31 + (uint64_t)k, 3.0);
        thread_job jobs[2];
        inputs in[2];
        const int64_t n_out = sh.batch * sh.tgt_len * c->embed;
        for (int t = 0; t < 2; t++) {
            in[t] = make_inputs(c, &sh, MASK_RANDOM, 0, 7 + 10 * (uint64_t)t);
            float *ref = filled_floats(n_out, NAN);
            ASSERT_OK(attn_mha_forward(mha, NULL, sh.batch, sh.tgt_len, sh.src_len, in[t].query, in[t].key,
                                       in[t].value, in[t].mask, ref));
            jobs[t] = (thread_job){.mha = mha, .sh = sh, .n_out = n_out, .query = in[t].query, .key = in[t].key,
                                   .value = in[t].value, .mask = in[t].mask, .ref = ref, .bad_call = t};
        }
        /* This thread's own message must survive the other threads' failures. */
        EXPECT_FAILURE(attn_mha_cost(mha, 1, 1, -5, &(attn_cost){0}), ATTN_E_SHAPE, "attn_mha_cost", "src_len",
                       "main thread's error");
        run_thread_pair(thread_main, (void *[]){&jobs[0], &jobs[1]},
                        (thread_counts *[]){&jobs[0].counts, &jobs[1].counts}, ctx);
        if (!has_word(attn_last_error(), "src_len"))
            fail_msg("%s: the main thread's error message changed to \"%s\"", ctx, attn_last_error());
        for (int t = 0; t < 2; t++) {
            free((void *)jobs[t].ref);
            free_inputs(&in[t]);
        }
        attn_mha_destroy(mha);
    }
}

/* ================================================================================================
 * Execution paths, extreme values, size limits and aliasing
 * ============================================================================================= */

/* Runs forward and attention_matrix against the reference (check_call) for one configuration at
 * each shape, and checks workspace_bytes against the formula. */
static void check_at_sizes(const mha_cfg *c, const shape *shapes, int n_shapes, int mask_kind, double gain,
                           uint64_t seed)
{
    char ctx[300];
    cfg_describe(c, ctx, sizeof ctx);
    attn_mha *mha = make_mha(c, seed, gain);
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    for (int si = 0; si < n_shapes; si++) {
        const shape *sh = &shapes[si];
        attn_cost cost;
        ASSERT_OK(attn_mha_cost(mha, sh->batch, sh->tgt_len, sh->src_len, &cost));
        const int64_t want = expected_workspace(c, sh->batch, sh->tgt_len, sh->src_len);
        if (want >= 0 && cost.workspace_bytes != want)
            fail_msg("%s L=%lld S=%lld: workspace_bytes %lld, the formula gives %lld", ctx, (long long)sh->tgt_len,
                     (long long)sh->src_len, (long long)cost.workspace_bytes, (long long)want);
        inputs in = make_inputs(c, sh, mask_kind, 0, seed + (uint64_t)si);
        check_call(mha, ws, c, sh, &in, ctx);
        free_inputs(&in);
    }
    attn_workspace_destroy(ws);
    attn_mha_destroy(mha);
}

/* Each size where an execution path switches, on both sides: FULL's 512-row blocks, 2048-key
 * streaming tiles, AUTO's switch from materializing to streaming (a block of scores over 8 MiB)
 * and the helper team (blocks of 16 rows or more and 32768 scores or more); LINFORMER's and
 * NYSTROM's row blocks of 65536 / k (or / m) rows. */
static void test_path_boundaries(void **state)
{
    (void)state;
    const mha_cfg full_mat = {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 4,
                              .heads = 2};
    const mha_cfg full_stream = {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 4,
                                 .heads = 2};
    const mha_cfg full_causal = {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1,
                                 .memory_mode = ATTN_MEMORY_STREAMING, .embed = 4, .heads = 1};
    const mha_cfg full_auto = {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_AUTO, .embed = 4,
                               .heads = 1};
    const mha_cfg linformer = {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 4, .heads = 2, .max_seq_len = 64,
                               .proj_len = 64};
    const mha_cfg nystrom = {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 4, .heads = 2, .landmarks = 64,
                             .iterations = 6};
    static const shape rows[] = {{1, 511, 40}, {1, 512, 40}, {2, 513, 40}, {1, 1025, 3}};
    static const shape keys[] = {{1, 3, 2047}, {1, 3, 2048}, {2, 5, 2049}, {1, 2, 4097}};
    static const shape team[] = {{1, 15, 2200}, {1, 16, 2048}, {1, 17, 2047}};
    static const shape boundary[] = {{1, 512, 4096}, {1, 512, 4097}};
    static const shape blocks[] = {{1, 1023, 64}, {1, 1024, 64}, {1, 1025, 64}};
    check_at_sizes(&full_mat, rows, COUNT_OF(rows), MASK_RANDOM, 3.0, 1);
    check_at_sizes(&full_stream, rows, COUNT_OF(rows), MASK_RANDOM, 3.0, 2);
    check_at_sizes(&full_stream, keys, COUNT_OF(keys), MASK_TAIL, 3.0, 3);
    check_at_sizes(&full_causal, keys, COUNT_OF(keys), MASK_NONE, 3.0, 4);
    check_at_sizes(&full_mat, team, COUNT_OF(team), MASK_RANDOM, 3.0, 5);
    check_at_sizes(&full_stream, team, COUNT_OF(team), MASK_RANDOM, 3.0, 6);
    check_at_sizes(&full_auto, boundary, COUNT_OF(boundary), MASK_RANDOM, 3.0, 7);
    check_at_sizes(&linformer, blocks, COUNT_OF(blocks), MASK_RANDOM, 3.0, 8);
    check_at_sizes(&nystrom, blocks, COUNT_OF(blocks), MASK_NONE, 1.0, 9);
    /* AUTO really switched: its workspace equals MATERIALIZE's below and STREAMING's above. */
    const mha_cfg modes[] = {full_auto, full_auto, full_auto};
    attn_mha *h[3];
    for (int i = 0; i < 3; i++) {
        attn_mha_options o = cfg_options(&modes[i]);
        o.memory_mode = all_memory_modes[i];
        ASSERT_OK(attn_mha_create(&h[i], &o));
    }
    attn_cost c[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(attn_mha_cost(h[i], 1, 512, 4096, &c[i]));
    assert_int_equal(c[0].workspace_bytes, c[1].workspace_bytes);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(attn_mha_cost(h[i], 1, 512, 4097, &c[i]));
    assert_int_equal(c[0].workspace_bytes, c[2].workspace_bytes);
    for (int i = 0; i < 3; i++)
        attn_mha_destroy(h[i]);
}

/* Scores of several hundred (query and key projections scaled up): a softmax that did not
 * subtract the row's maximum overflows to Inf/NaN. Outputs are compared with the reference at
 * 1e-3: a float32 score of 1000 carries a rounding error of ~1e-4, which exp turns into a relative
 * error of that size in the weights. */
static void test_extreme_scores(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_MATERIALIZE, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 8, .heads = 2},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 8, .heads = 2, .max_seq_len = 3000, .proj_len = 16},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 8, .heads = 2, .landmarks = 4, .iterations = 6},
    };
    static const shape shapes[] = {{2, 40, 2100}, {1, 600, 37}};
    char ctx[300];
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        attn_mha *mha = make_mha(&cfgs[k], 60 + (uint64_t)k, 60.0);
        cfg_describe(&cfgs[k], ctx, sizeof ctx);
        for (int si = 0; si < COUNT_OF(shapes); si++) {
            const shape *sh = &shapes[si];
            const int64_t B = sh->batch, L = sh->tgt_len, S = sh->src_len, n = B * L * cfgs[k].embed;
            inputs in = make_inputs(&cfgs[k], sh, MASK_RANDOM, 0, 70 + (uint64_t)si);
            double *q = new_doubles(B * L * cfgs[k].embed), *kk = new_doubles(B * S * cfgs[k].embed);
            double *v = new_doubles(B * S * cfgs[k].embed);
            assert_int_equal(ref_mha_project(mha, B, L, S, in.query, in.key, in.value, q, kk, v), 0);
            double top = 0; /* the largest |score| of head 0 of element 0: the setup's claim */
            for (int64_t i = 0; i < L; i++)
                for (int64_t j = 0; j < S; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < cfgs[k].embed / cfgs[k].heads; e++)
                        d += q[i * cfgs[k].embed + e] * kk[j * cfgs[k].embed + e];
                    top = fmax(top, fabs(d));
                }
            if (top < 300)
                fail_msg("%s: test setup: the largest score is only %g", ctx, top);
            float *out = filled_floats(n, NAN);
            double *ref = new_doubles(n);
            ASSERT_OK(attn_mha_forward(mha, NULL, B, L, S, in.query, in.key, in.value, in.mask, out));
            assert_int_equal(ref_mha_forward(mha, B, L, S, in.query, in.key, in.value, in.mask, ref), 0);
            check_close_tol(ctx, "forward with large scores", ref, out, n, 1e-3);
            free(q), free(kk), free(v), free(out), free(ref);
            free_inputs(&in);
        }
        attn_mha_destroy(mha);
    }
}

/* forward, attention_matrix and cost accept and reject exactly the same shapes. The issue: NYSTROM
 * (SVD pinv, E = 1, num_landmarks 520841287) at batch 1, tgt_len 646226417, src_len 520841315,
 * rejected by cost for its FLOP count, ran in forward with a workspace size that had wrapped past
 * 2^64. On a grid of extreme sizes, forward and attention_matrix are called with NULL tensors:
 * where cost fails they must fail the same way, before looking at a pointer; where cost succeeds
 * they must get as far as the NULL query. Nothing is allocated. */
static void test_cost_and_forward_agree(void **state)
{
    (void)state;
    static const mha_cfg cfgs[] = {
        {.kind = ATTN_MHA_FULL, .bias = 1, .memory_mode = ATTN_MEMORY_AUTO, .embed = 1, .heads = 1},
        {.kind = ATTN_MHA_FULL, .bias = 1, .causal = 1, .memory_mode = ATTN_MEMORY_STREAMING, .embed = 512,
         .heads = 8},
        {.kind = ATTN_MHA_LINFORMER, .bias = 1, .embed = 1, .heads = 1, .max_seq_len = 1 << 20, .proj_len = 1},
        {.kind = ATTN_MHA_NYSTROM, .bias = 1, .embed = 1, .heads = 1, .landmarks = 520841287, .iterations = 6},
        {.kind = ATTN_MHA_NYSTROM, .bias = 0, .embed = 4, .heads = 2, .landmarks = 1, .pinv = ATTN_PINV_SVD},
    };
    static const int64_t sizes[] = {1, 7, 1 << 20, 520841315, 646226417, INT32_MAX, (int64_t)1 << 31,
                                    (int64_t)1 << 40, INT64_MAX};
    /* The SVD pseudo-inverse of the issue's m x m matrix exceeds LAPACK's 32-bit indices. */
    attn_mha_options svd = cfg_options(&cfgs[3]);
    svd.pinv = ATTN_PINV_SVD;
    attn_mha *none = NULL;
    EXPECT_FAILURE(attn_mha_create(&none, &svd), ATTN_E_INVALID_ARG, "attn_mha_create", "num_landmarks",
                   "SVD pinv of 520841287 landmarks");
    char what[300];
    int rejected = 0, accepted = 0;
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        attn_mha_options o = cfg_options(&cfgs[k]);
        attn_mha *mha = NULL;
        if (attn_mha_create(&mha, &o) != ATTN_OK)
            fail_msg("config %d: %s", k, attn_last_error());
        for (int bi = 0; bi < COUNT_OF(sizes); bi++)
            for (int li = 0; li < COUNT_OF(sizes); li++)
                for (int si = 0; si < COUNT_OF(sizes); si++) {
                    const int64_t B = sizes[bi], L = sizes[li], S = sizes[si];
                    cfg_describe(&cfgs[k], what, sizeof what);
                    snprintf(what + strlen(what), sizeof what - strlen(what), " B=%lld L=%lld S=%lld",
                             (long long)B, (long long)L, (long long)S);
                    attn_cost cost;
                    const attn_status sc = attn_mha_cost(mha, B, L, S, &cost);
                    char cost_msg[512];
                    snprintf(cost_msg, sizeof cost_msg, "%s", strchr(attn_last_error(), ':') ? strchr(attn_last_error(), ':') : "");
                    const attn_status sf = attn_mha_forward(mha, NULL, B, L, S, NULL, NULL, NULL, NULL, NULL);
                    char fwd_msg[512];
                    snprintf(fwd_msg, sizeof fwd_msg, "%s", attn_last_error());
                    const attn_status sm = attn_mha_attention_matrix(mha, NULL, B, L, S, NULL, NULL, NULL, NULL, NULL);
                    if (sc != ATTN_OK) {
                        rejected++;
                        if (sf != sc || !strstr(fwd_msg, cost_msg) || sm != sc || !strstr(attn_last_error(), cost_msg))
                            fail_msg("%s: cost says %d \"%s\", forward %d \"%s\", attention_matrix %d \"%s\"", what,
                                     sc, cost_msg, sf, fwd_msg, sm, attn_last_error());
                        continue;
                    }
                    accepted++;
                    if (cost.workspace_bytes < 0 || cost.flops < 0)
                        fail_msg("%s: cost accepted with workspace %lld and flops %lld", what,
                                 (long long)cost.workspace_bytes, (long long)cost.flops);
                    if (sf != ATTN_E_INVALID_ARG || !has_word(fwd_msg, "query"))
                        fail_msg("%s: cost accepts, forward says %d \"%s\"", what, sf, fwd_msg);
                    /* The matrix, B x h x L x S floats, may be too large to address where forward is not. */
                    if (sm != ATTN_E_INVALID_ARG && sm != ATTN_E_SHAPE)
                        fail_msg("%s: cost accepts, attention_matrix says %d \"%s\"", what, sm, attn_last_error());
                }
        attn_mha_destroy(mha);
    }
    assert_true(rejected > 0 && accepted > 0);
}

/* docs/abi.md: an output may overlap no input and no other output; ranges are compared, not
 * only pointers. Inputs may overlap each other (self-attention). */
static void test_aliasing(void **state)
{
    (void)state;
    const mha_cfg c = {.kind = ATTN_MHA_FULL, .bias = 1, .embed = 8, .heads = 2};
    attn_mha *mha = make_mha(&c, 3, 1.0);
    const int64_t B = 2, L = 3, S = 4, nq = B * L * 8, nk = B * S * 8, nw = B * 2 * L * S;
    float *buf = random_floats(nq + 2 * nk + nw, 1, 1.0);
    float *q = buf, *k = q + nq, *v = k + nk, *w = v + nk;
    float *out = filled_floats(nq, -7.5f);
    uint8_t *mask = calloc((size_t)(B * S + nw * 4), 1);
    static const char fwd[] = "attn_mha_forward", mat[] = "attn_mha_attention_matrix";
    EXPECT_FAILURE(attn_mha_forward(mha, NULL, B, L, S, q, k, v, NULL, q), ATTN_E_INVALID_ARG, fwd, "out",
                   "out == query");
    EXPECT_FAILURE(attn_mha_forward(mha, NULL, B, L, S, q, k, v, NULL, k - 1), ATTN_E_INVALID_ARG, fwd, "out",
                   "out overlapping the first float of key");
    EXPECT_FAILURE(attn_mha_forward(mha, NULL, B, L, S, q, k, v, (const uint8_t *)(v + nk - 1), v + nk - nq),
                   ATTN_E_INVALID_ARG, fwd, "out", "out over value and the mask");
    EXPECT_FAILURE(attn_mha_attention_matrix(mha, NULL, B, L, S, q, k, v, NULL, v + 1), ATTN_E_INVALID_ARG, mat,
                   "weights", "weights overlapping value");
    EXPECT_FAILURE(attn_mha_attention_matrix(mha, NULL, B, L, S, q, k, v, mask, (float *)(void *)mask),
                   ATTN_E_INVALID_ARG, mat, "weights", "weights == key_padding_mask");
    if (!all_equal(out, nq, -7.5f))
        fail_msg("a rejected call wrote an output");
    /* Self-attention (query == key == value) and adjacent outputs are fine. */
    ASSERT_OK(attn_mha_forward(mha, NULL, B, L, L, q, q, q, NULL, out));
    ASSERT_OK(attn_mha_attention_matrix(mha, NULL, B, L, S, q, k, v, NULL, w));
    free(buf), free(out), free(mask);
    attn_mha_destroy(mha);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_huge),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_other_errors),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_params_init),
        cmocka_unit_test(test_reference_invariants),
        cmocka_unit_test(test_full_forward),
        cmocka_unit_test(test_full_forward_long),
        cmocka_unit_test(test_linformer_forward),
        cmocka_unit_test(test_nystrom_forward),
        cmocka_unit_test(test_linformer_identity_equals_full),
        cmocka_unit_test(test_nystrom_full_landmarks_equals_full),
        cmocka_unit_test(test_nystrom_newton_converges),
        cmocka_unit_test(test_masked_positions_ignored),
        cmocka_unit_test(test_full_matrix_rows),
        cmocka_unit_test(test_matrix_times_v_is_forward),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_cost_growth),
        cmocka_unit_test(test_streaming_workspace),
        cmocka_unit_test(test_workspace_reuse),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_nan_input),
        cmocka_unit_test(test_path_boundaries),
        cmocka_unit_test(test_extreme_scores),
        cmocka_unit_test(test_cost_and_forward_agree),
        cmocka_unit_test(test_aliasing),
    };
    return cmocka_run_group_tests_name("attention", tests, NULL, NULL);
}
