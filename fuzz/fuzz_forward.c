/*
 * fuzz_forward.c: libFuzzer target that reads its input as a small program: one family (RNN,
 * memory RNN, attention, Perceiver, analysis), its options (now and then one field out of range),
 * its weights (the create's, attn_params_init with a fuzzed seed, or tensors set from fuzzed
 * values), the sizes of one forward call, the inputs and masks, and how the call is made
 * (workspace NULL, shared across inputs or new; optional outputs; an output overlapping an input).
 *
 * Sizes stay small (each dimension <= 16, a few hundred floats per tensor) so that one input runs
 * in well under a millisecond; now and then a size is absurd (0, negative, beyond 32 bits), and
 * the buffers are then a single float: the call must refuse the size before reading them.
 *
 * Invariants: the error contract of fuzz_common.h; a call with an absurd size or an output
 * overlapping an input fails; cost rejects the shapes forward rejects, and after a first forward
 * on a new workspace that workspace holds exactly cost.workspace_bytes; with moderate inputs and
 * weights (|v| <= 7, as most bytes decode) outputs are finite; analysis results are ordered and in
 * range. Data past the end of the input reads as a fixed pattern of moderate values.
 */
#include <float.h>
#include <math.h>

#include "fuzz_common.h"

typedef struct reader {
    const uint8_t *d;
    size_t n, pos;
    uint32_t pattern; /* state of the values read past the end */
    int wild;         /* a value outside [-7, 7] (or NaN) was read */
} reader;

static uint8_t u8(reader *r) { return r->pos < r->n ? r->d[r->pos++] : 0; }

static int64_t pick(reader *r, int64_t lo, int64_t hi) { return lo + u8(r) % (hi - lo + 1); }

/* Most bytes are moderate values k/16 - 7; the top 32 are special values. */
static float fval(reader *r)
{
    if (r->pos >= r->n) {
        r->pattern = r->pattern * 1103515245u + 12345u;
        return (float)((int)(r->pattern >> 16) % 97 - 48) / 16.0f;
    }
    uint8_t k = u8(r);
    if (k < 224)
        return (float)k / 16.0f - 7.0f;
    r->wild = 1;
    switch (k & 7) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return FLT_MAX;
    case 4: return -FLT_MAX;
    case 5: return 1e-40f; /* subnormal */
    case 6: return 3e4f;
    default: {
        uint32_t bits = (uint32_t)u8(r) | (uint32_t)u8(r) << 8 | (uint32_t)u8(r) << 16 | (uint32_t)u8(r) << 24;
        float v;
        memcpy(&v, &bits, sizeof v);
        return v;
    }
    }
}

/* A size in 1..max, or (byte >= 248) an absurd one; *bad records that the call must fail. */
static int64_t dim(reader *r, int64_t max, int *bad)
{
    static const int64_t absurd[8] = {0, -1, -7, INT64_MIN, INT64_MAX, (int64_t)1 << 31, (int64_t)1 << 33,
                                      INT64_MAX / 2};
    uint8_t b = u8(r);
    if (b >= 248) {
        *bad = 1;
        return absurd[b - 248];
    }
    return 1 + b % max;
}

/* Buffers hold n floats, or one when a size is absurd (n is then meaningless). */
static float *fbuf(reader *r, int64_t n, int bad)
{
    if (bad || n < 1)
        n = 1;
    float *a = malloc((size_t)n * sizeof *a);
    if (!a)
        FUZZ_FAIL("out of memory in the harness");
    for (int64_t i = 0; i < n; i++)
        a[i] = fval(r);
    return a;
}

/* A size computed from fuzzed extents: 1 when one is absurd, whose products would overflow. */
#define SZ(e) (bad ? 1 : (e))

static float *zbuf(int64_t n, int bad)
{
    float *a = calloc(bad || n < 1 ? 1 : (size_t)n, sizeof *a);
    if (!a)
        FUZZ_FAIL("out of memory in the harness");
    return a;
}

static uint8_t *mbuf(reader *r, int64_t n, int bad)
{
    uint8_t *m = calloc(bad || n < 1 ? 1 : (size_t)n, 1);
    if (!m)
        FUZZ_FAIL("out of memory in the harness");
    uint8_t density = u8(r);
    for (int64_t i = 0; !bad && i < n; i++)
        m[i] = u8(r) < density;
    return m;
}

static void expect_finite(const float *a, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            FUZZ_FAIL("%s[%lld] = %g from moderate inputs and weights", what, (long long)i, (double)a[i]);
}

/* ---- workspaces and weights ---------------------------------------------------------------- */

static attn_workspace *shared_ws; /* kept across inputs, as a long-lived caller keeps one */

typedef struct call_ws {
    attn_workspace *ws;
    int fresh; /* ws is new: after its first forward it holds exactly the cost's bytes */
} call_ws;

static call_ws choose_ws(reader *r)
{
    call_ws c = {NULL, 0};
    switch (u8(r) % 3) {
    case 0: break;
    case 1:
        if (!shared_ws && FUZZ_CALL(attn_workspace_create, &shared_ws) != ATTN_OK)
            FUZZ_FAIL("attn_workspace_create failed");
        c.ws = shared_ws;
        break;
    default:
        if (FUZZ_CALL(attn_workspace_create, &c.ws) != ATTN_OK)
            FUZZ_FAIL("attn_workspace_create failed");
        c.fresh = 1;
    }
    return c;
}

static void release_ws(call_ws *c)
{
    if (c->fresh)
        attn_workspace_destroy(c->ws);
}

/* After a forward call: the shape errors of forward and cost agree, and a new workspace holds the
 * cost's bytes. `other_error` marks a call that was bound to fail for another reason (lengths). */
static void check_cost(attn_status fwd, attn_status cost_status, const attn_cost *cost, const call_ws *c,
                       int other_error, const char *family)
{
    if (cost_status == ATTN_E_SHAPE && fwd == ATTN_OK)
        FUZZ_FAIL("%s: forward succeeded on a shape its cost rejects (%s)", family, attn_last_error());
    if (fwd == ATTN_E_SHAPE && cost_status == ATTN_OK && !other_error)
        FUZZ_FAIL("%s: forward rejected a shape its cost accepts", family);
    if (fwd == ATTN_OK && cost_status == ATTN_OK && c->fresh && attn_workspace_size(c->ws) != cost->workspace_bytes)
        FUZZ_FAIL("%s: workspace holds %lld bytes, cost says %lld", family, (long long)attn_workspace_size(c->ws),
                  (long long)cost->workspace_bytes);
}

/* The create's weights, a fuzzed seed, or a few tensors set from fuzzed values (a non-finite one
 * must be refused with ATTN_E_NUMERICAL). Returns whether tensors were set. */
static int choose_weights(reader *r, attn_params *p)
{
    uint8_t mode = u8(r) % 4;
    if (mode & 1)
        FUZZ_CALL(attn_params_init, p, (uint64_t)u8(r) * 0x9E3779B97F4A7C15ull);
    if (!(mode & 2))
        return 0;
    int64_t n = attn_params_count(p), tensors = pick(r, 1, 3);
    for (int64_t k = 0; k < tensors && n > 0; k++) {
        attn_tensor_info info;
        FUZZ_CALL(attn_params_info, p, u8(r) % n, &info);
        int wild_before = r->wild;
        r->wild = 0;
        float *v = fbuf(r, info.count, 0);
        int finite = 1;
        for (int64_t j = 0; j < info.count; j++)
            finite &= isfinite(v[j]) != 0;
        attn_status s = FUZZ_CALL(attn_params_set, p, info.name, v, info.count);
        if ((s == ATTN_OK) != finite)
            FUZZ_FAIL("attn_params_set of '%s' returned %d with finite = %d", info.name, (int)s, finite);
        r->wild = wild_before | (finite && r->wild);
        free(v);
    }
    return 1;
}

/* ---- RNN ----------------------------------------------------------------------------------- */

static void fuzz_rnn(reader *r)
{
    attn_rnn_options o;
    FUZZ_CALL(attn_rnn_options_init, &o);
    o.cell = (int32_t)(u8(r) % 4);
    o.recurrence = (int32_t)(u8(r) % 3);
    o.bidirectional = u8(r) & 1;
    o.bias = u8(r) & 1;
    o.input_size = pick(r, 1, 8);
    o.num_layers = pick(r, 1, 3);
    if (o.recurrence == ATTN_RECURRENCE_KRONECKER) {
        o.num_factors = pick(r, 1, 3);
        o.hidden_size = 1;
        for (int64_t f = 0; f < o.num_factors; f++) {
            o.factor_sizes[f] = pick(r, 1, o.num_factors == 3 ? 2 : 4);
            o.hidden_size *= o.factor_sizes[f];
        }
    } else {
        o.hidden_size = pick(r, 1, 12);
        o.rank = pick(r, 1, o.hidden_size);
    }
    uint8_t corrupt = u8(r);
    switch (corrupt < 40 ? corrupt % 14 : 99) {
    case 0: o.cell = corrupt & 1 ? 4 : -1; break;
    case 1: o.recurrence = 3; break;
    case 2: o.bidirectional = 2; break;
    case 3: o.bias = -1; break;
    case 4: o.input_size = corrupt & 1 ? 0 : -5; break;
    case 5: o.hidden_size = corrupt & 1 ? 0 : INT64_MAX; break;
    case 6: o.num_layers = corrupt & 1 ? 0 : (int64_t)1 << 40; break;
    case 7: o.rank = corrupt & 1 ? 0 : o.hidden_size + 1; break;
    case 8: o.num_factors = corrupt & 1 ? 0 : ATTN_RNN_MAX_FACTORS_ALL + 1; break;
    case 9: o.factor_sizes[ATTN_RNN_MAX_FACTORS - 1] = 1; break;
    case 10: o.more_factor_sizes[corrupt % 4] = 2; break;
    case 11: o.flags = 1u << (corrupt % 32); break;
    case 12: o.struct_size = corrupt & 1 ? 4 : 0; break;
    case 13: o.factor_sizes[0] = o.factor_sizes[0] == 1 ? 2 : 1; break;
    default: break;
    }
    attn_rnn *rnn = (attn_rnn *)&rnn;
    if (FUZZ_CALL(attn_rnn_create, &rnn, &o) != ATTN_OK) {
        if (rnn)
            FUZZ_FAIL("attn_rnn_create failed but left *out non-NULL");
        return;
    }
    const int weights_set = choose_weights(r, attn_rnn_params(rnn));
    attn_rnn_options got;
    FUZZ_CALL(attn_rnn_options_init, &got);
    FUZZ_CALL(attn_rnn_get_options, rnn, &got);
    const int64_t D = got.bidirectional ? 2 : 1, H = got.hidden_size, I = got.input_size, L = got.num_layers;
    const int64_t G = got.cell == ATTN_CELL_LSTM ? 4 : got.cell == ATTN_CELL_GRU ? 3 : 1;
    const int lstm = got.cell == ATTN_CELL_LSTM;

    int bad = 0;
    const int64_t B = dim(r, 4, &bad), T = dim(r, 6, &bad);
    const uint8_t how = u8(r);
    const int alias = how == 255, use_lengths = how & 1;
    const int bad_c0 = !lstm && (how & 0x3e) == 0x3e;
    /* Control bytes before the tensors' values, so that a seed can set them without knowing how
     * many values come first. */
    int64_t *lengths = calloc(bad ? 1 : (size_t)B, sizeof *lengths);
    int bad_length = 0;
    for (int64_t b = 0; !bad && b < B; b++) {
        const int64_t v = u8(r) % (T + 2); /* 0 (and past the input's end) is T; T and T + 1 are bad */
        lengths[b] = v == T + 1 ? T + 1 : T - v;
        bad_length |= lengths[b] < 1 || lengths[b] > T;
    }
    const int64_t layer = pick(r, 0, L), direction = pick(r, 0, 2);
    call_ws c = choose_ws(r);
    float *x = fbuf(r, SZ(B * T * (alias && D * H > I ? D * H : I)), bad);
    float *h0 = how & 2 ? fbuf(r, SZ(L * D * B * H), bad) : NULL;
    float *c0 = (lstm || bad_c0) && how & 4 ? fbuf(r, SZ(L * D * B * H), bad) : NULL;
    float *y = alias ? x : zbuf(SZ(B * T * D * H), bad);
    float *hn = how & 8 ? zbuf(SZ(L * D * B * H), bad) : NULL;
    float *cn = lstm && how & 16 ? zbuf(SZ(L * D * B * H), bad) : NULL;
    attn_status s = use_lengths ? FUZZ_CALL(attn_rnn_forward_lengths, rnn, c.ws, B, T, lengths, x, h0, c0, y, hn, cn)
                                : FUZZ_CALL(attn_rnn_forward, rnn, c.ws, B, T, x, h0, c0, y, hn, cn);
    const int must_fail = bad || alias || (c0 && !lstm) || (use_lengths && bad_length);
    if (s == ATTN_OK && must_fail)
        FUZZ_FAIL("attn_rnn_forward accepted bad=%d alias=%d c0=%d lengths=%d", bad, alias, c0 != NULL,
                  use_lengths && bad_length);
    attn_cost cost;
    attn_status cs = FUZZ_CALL(attn_rnn_cost, rnn, B, T, &cost);
    check_cost(s, cs, &cost, &c, use_lengths && bad_length, "rnn");
    /* relu with large set weights grows by up to (7 H)^(T L): Inf is then correct. */
    if (s == ATTN_OK && !r->wild && !(got.cell == ATTN_CELL_RNN_RELU && weights_set))
        expect_finite(y, B * T * D * H, "rnn y");

    float *m = zbuf(G * H * H, 0);
    s = FUZZ_CALL(attn_rnn_recurrent_matrix, rnn, layer, direction, m);
    if (s == ATTN_OK && (layer >= L || direction >= D))
        FUZZ_FAIL("attn_rnn_recurrent_matrix accepted layer %lld direction %lld", (long long)layer,
                  (long long)direction);

    release_ws(&c);
    free(m);
    free(lengths);
    if (!alias)
        free(y);
    free(x);
    free(h0);
    free(c0);
    free(hn);
    free(cn);
    attn_rnn_destroy(rnn);
}

/* ---- memory RNN ---------------------------------------------------------------------------- */

static void fuzz_memrnn(reader *r)
{
    attn_memrnn_options o;
    FUZZ_CALL(attn_memrnn_options_init, &o);
    o.input_size = pick(r, 1, 4);
    o.output_size = pick(r, 1, 4);
    o.controller_size = pick(r, 1, 6);
    o.controller_layers = pick(r, 1, 2);
    o.num_heads = pick(r, 1, 3);
    o.memory_slots = pick(r, 1, 8);
    o.memory_width = pick(r, 1, 4);
    o.addressing = u8(r) & 1;
    o.top_k = pick(r, 0, o.memory_slots + 1);
    uint8_t corrupt = u8(r);
    switch (corrupt < 30 ? corrupt % 10 : 99) {
    case 0: o.input_size = 0; break;
    case 1: o.controller_layers = 65537; break;
    case 2: o.num_heads = corrupt & 1 ? 0 : 65537; break;
    case 3: o.memory_slots = corrupt & 1 ? -1 : INT32_MAX; break;
    case 4: o.memory_width = INT64_MAX; break;
    case 5: o.addressing = 2; break;
    case 6: o.top_k = -1; break;
    case 7: o.flags = 2; break;
    case 8: o.struct_size = 8; break;
    case 9: o.addressing = ATTN_MEMORY_SPARSE, o.top_k = 0; break;
    default: break;
    }
    attn_memrnn *m = (attn_memrnn *)&m;
    if (FUZZ_CALL(attn_memrnn_create, &m, &o) != ATTN_OK) {
        if (m)
            FUZZ_FAIL("attn_memrnn_create failed but left *out non-NULL");
        return;
    }
    choose_weights(r, attn_memrnn_params(m));
    const int64_t I = o.input_size, O = o.output_size, R = o.num_heads, N = o.memory_slots, W = o.memory_width;

    int bad = 0;
    const int64_t B = dim(r, 3, &bad), T = dim(r, 5, &bad);
    const uint8_t how = u8(r);
    const int alias = how == 255;
    call_ws c = choose_ws(r);
    float *x = fbuf(r, SZ(B * T * (alias && O > I ? O : I)), bad);
    float *y = alias ? x : zbuf(SZ(B * T * O), bad);
    float *rw = how & 1 ? zbuf(SZ(B * T * R * N), bad) : NULL;
    float *mem = how & 2 ? zbuf(SZ(B * N * W), bad) : NULL;
    attn_status s = FUZZ_CALL(attn_memrnn_forward, m, c.ws, B, T, x, y, rw, mem);
    if (s == ATTN_OK && (bad || alias))
        FUZZ_FAIL("attn_memrnn_forward accepted bad=%d alias=%d", bad, alias);
    attn_cost cost;
    attn_status cs = FUZZ_CALL(attn_memrnn_cost, m, B, T, &cost);
    check_cost(s, cs, &cost, &c, 0, "memrnn");
    if (s == ATTN_OK && !r->wild) {
        expect_finite(y, B * T * O, "memrnn y");
        if (rw)
            expect_finite(rw, B * T * R * N, "memrnn read_weights");
        if (mem)
            expect_finite(mem, B * N * W, "memrnn memory_out");
    }
    release_ws(&c);
    if (!alias)
        free(y);
    free(x);
    free(rw);
    free(mem);
    attn_memrnn_destroy(m);
}

/* ---- attention ----------------------------------------------------------------------------- */

static void fuzz_mha(reader *r)
{
    attn_mha_options o;
    FUZZ_CALL(attn_mha_options_init, &o);
    o.kind = (int32_t)(u8(r) % 3);
    o.num_heads = pick(r, 1, 4);
    o.embed_dim = o.num_heads * pick(r, 1, 4);
    o.kdim = pick(r, 0, 6);
    o.vdim = pick(r, 0, 6);
    o.bias = u8(r) & 1;
    o.causal = o.kind == ATTN_MHA_FULL && (u8(r) & 1);
    o.memory_mode = (int32_t)(u8(r) % 3);
    if (o.kind == ATTN_MHA_LINFORMER) {
        o.max_seq_len = pick(r, 1, 10);
        o.proj_len = pick(r, 1, 6);
        o.sharing = (int32_t)(u8(r) % 3);
    } else if (o.kind == ATTN_MHA_NYSTROM) {
        o.pinv = u8(r) & 1;
        o.num_landmarks = pick(r, 1, 6);
        o.pinv_iterations = pick(r, 0, 8);
        o.conv_kernel = (int64_t[]){0, 1, 3, 5}[u8(r) % 4];
    }
    uint8_t corrupt = u8(r);
    switch (corrupt < 40 ? corrupt % 14 : 99) {
    case 0: o.kind = 3; break;
    case 1: o.embed_dim = o.num_heads > 1 ? o.embed_dim + 1 : 0; break;
    case 2: o.num_heads = 0; break;
    case 3: o.kdim = -1; break;
    case 4: o.causal = 1; break; /* UNSUPPORTED for the approximate kinds */
    case 5: o.memory_mode = 3; break;
    case 6: o.max_seq_len = 0; break;
    case 7: o.proj_len = -2; break;
    case 8: o.sharing = 5; break;
    case 9: o.pinv = 2; break;
    case 10: o.num_landmarks = corrupt & 1 ? 0 : 23170; break;
    case 11: o.conv_kernel = corrupt & 1 ? 2 : -3; break;
    case 12: o.flags = 1; break;
    case 13: o.pinv_iterations = -1; break;
    default: break;
    }
    attn_mha *mha = (attn_mha *)&mha;
    if (FUZZ_CALL(attn_mha_create, &mha, &o) != ATTN_OK) {
        if (mha)
            FUZZ_FAIL("attn_mha_create failed but left *out non-NULL");
        return;
    }
    choose_weights(r, attn_mha_params(mha));
    attn_mha_options got;
    FUZZ_CALL(attn_mha_get_options, mha, &got);
    const int64_t E = got.embed_dim, KD = got.kdim, VD = got.vdim, h = got.num_heads;

    int bad = 0;
    const int64_t B = dim(r, 3, &bad), Lq = dim(r, 10, &bad);
    const uint8_t how = u8(r);
    const int64_t S = how & 1 ? Lq : dim(r, 10, &bad);
    const int self = (how & 2) && KD == E && VD == E && S == Lq;
    const int alias = how == 255;
    call_ws c = choose_ws(r);
    float *q = fbuf(r, SZ(B * Lq * E), bad);
    float *k = self ? q : fbuf(r, SZ(B * S * KD), bad);
    float *v = self ? q : fbuf(r, SZ(B * S * VD), bad);
    uint8_t *mask = how & 4 ? mbuf(r, SZ(B * S), bad) : NULL;
    float *out = alias ? q : zbuf(SZ(B * Lq * E), bad);
    attn_status s = FUZZ_CALL(attn_mha_forward, mha, c.ws, B, Lq, S, q, k, v, mask, out);
    if (s == ATTN_OK && (bad || alias))
        FUZZ_FAIL("attn_mha_forward accepted bad=%d alias=%d", bad, alias);
    attn_cost cost;
    attn_status cs = FUZZ_CALL(attn_mha_cost, mha, B, Lq, S, &cost);
    check_cost(s, cs, &cost, &c, 0, "mha");
    /* NYSTROM's pseudo-inverse of a near-singular landmark matrix may overflow: not a finding. */
    if (s == ATTN_OK && !r->wild && got.kind != ATTN_MHA_NYSTROM)
        expect_finite(out, B * Lq * E, "mha out");

    if (how & 8) {
        float *weights = zbuf(SZ(B * h * Lq * S), bad);
        s = FUZZ_CALL(attn_mha_attention_matrix, mha, c.ws, B, Lq, S, q, k, v, mask, weights);
        if (s == ATTN_OK && bad)
            FUZZ_FAIL("attn_mha_attention_matrix accepted an absurd size");
        free(weights);
    }
    release_ws(&c);
    if (!alias)
        free(out);
    if (!self) {
        free(k);
        free(v);
    }
    free(q);
    free(mask);
    attn_mha_destroy(mha);
}

/* ---- Perceiver ----------------------------------------------------------------------------- */

static void fuzz_perceiver(reader *r)
{
    attn_perceiver_options o;
    FUZZ_CALL(attn_perceiver_options_init, &o);
    o.input_channels = pick(r, 1, 3);
    o.input_axis = pick(r, 1, 3);
    o.fourier_encode = u8(r) & 1;
    o.num_freq_bands = pick(r, 0, 2) + o.fourier_encode;
    o.max_freq = (double[]){1.0, 1.5, 4.0, 10.0}[u8(r) % 4];
    o.depth = pick(r, 1, 3);
    o.num_latents = pick(r, 1, 4);
    o.latent_dim = pick(r, 1, 6);
    o.cross_heads = pick(r, 1, 2);
    o.cross_dim_head = pick(r, 1, 3);
    o.latent_heads = pick(r, 1, 2);
    o.latent_dim_head = pick(r, 1, 3);
    o.self_per_cross_attn = pick(r, 0, 2);
    o.weight_tie_layers = u8(r) & 1;
    o.num_classes = pick(r, 0, 3);
    uint8_t corrupt = u8(r);
    switch (corrupt < 30 ? corrupt % 10 : 99) {
    case 0: o.input_axis = corrupt & 1 ? 0 : 4; break;
    case 1: o.num_freq_bands = -1; break;
    case 2: o.max_freq = corrupt & 1 ? NAN : -1.0; break;
    case 3: o.fourier_encode = 2; break;
    case 4: o.depth = corrupt & 1 ? 0 : 1025; break;
    case 5: o.latent_dim = (int64_t)1 << 31; break;
    case 6: o.cross_heads = (int64_t)1 << 20, o.cross_dim_head = (int64_t)1 << 11; break;
    case 7: o.self_per_cross_attn = -1; break;
    case 8: o.num_classes = -1; break;
    case 9: o.flags = 4; break;
    default: break;
    }
    attn_perceiver *p = (attn_perceiver *)&p;
    if (FUZZ_CALL(attn_perceiver_create, &p, &o) != ATTN_OK) {
        if (p)
            FUZZ_FAIL("attn_perceiver_create failed but left *out non-NULL");
        return;
    }
    choose_weights(r, attn_perceiver_params(p));

    int bad = 0;
    const int64_t B = dim(r, 2, &bad);
    int64_t axis_sizes[3], N = 1;
    for (int64_t a = 0; a < o.input_axis; a++) {
        axis_sizes[a] = dim(r, 3, &bad);
        N *= bad ? 1 : axis_sizes[a];
    }
    const uint8_t how = u8(r);
    const int alias = how == 255;
    const int64_t out_n = SZ(B) * (o.num_classes ? o.num_classes : o.num_latents * o.latent_dim);
    const int64_t data_n = SZ(B) * N * o.input_channels;
    call_ws c = choose_ws(r);
    float *data = fbuf(r, alias && out_n > data_n ? out_n : data_n, bad);
    uint8_t *mask = how & 1 ? mbuf(r, SZ(B * N), bad) : NULL;
    float *out = alias ? data : zbuf(out_n, bad);
    attn_status s = FUZZ_CALL(attn_perceiver_forward, p, c.ws, B, axis_sizes, data, mask, out);
    if (s == ATTN_OK && (bad || alias))
        FUZZ_FAIL("attn_perceiver_forward accepted bad=%d alias=%d", bad, alias);
    attn_cost cost;
    attn_status cs = FUZZ_CALL(attn_perceiver_cost, p, B, axis_sizes, &cost);
    check_cost(s, cs, &cost, &c, 0, "perceiver");
    if (s == ATTN_OK && !r->wild)
        expect_finite(out, out_n, "perceiver out");
    release_ws(&c);
    if (!alias)
        free(out);
    free(data);
    free(mask);
    attn_perceiver_destroy(p);
}

/* ---- analysis ------------------------------------------------------------------------------ */

static void fuzz_analysis(reader *r)
{
    int bad = 0;
    const int64_t rows = dim(r, 12, &bad), cols = dim(r, 12, &bad);
    const int64_t n = bad ? 1 : rows < cols ? rows : cols;
    const uint8_t how = u8(r);
    const int64_t rank = pick(r, -1, n + 1), fr = pick(r, 0, n + 1);
    float *a = fbuf(r, SZ(rows * cols + 2 * n + 2), bad); /* room for an overlapping sigma */
    int finite = 1;
    for (int64_t i = 0; !bad && i < rows * cols; i++)
        finite &= isfinite(a[i]) != 0;

    double *sigma = calloc((size_t)n, sizeof *sigma);
    /* A sigma that starts inside a (8-byte aligned, as malloc's a is): it must be refused. */
    double *out_sigma = how == 255 ? (double *)(void *)(a + SZ((rows * cols - 1) / 2 * 2)) : sigma;
    attn_status s = FUZZ_CALL(attn_singular_values, a, rows, cols, out_sigma);
    if (s == ATTN_OK && (bad || !finite || out_sigma != sigma))
        FUZZ_FAIL("attn_singular_values accepted bad=%d finite=%d overlap=%d", bad, finite, out_sigma != sigma);
    if (s == ATTN_OK)
        for (int64_t i = 0; i < n; i++)
            if (!(sigma[i] >= 0) || !isfinite(sigma[i]) || (i && sigma[i] > sigma[i - 1]))
                FUZZ_FAIL("sigma[%lld] = %g is not a decreasing finite spectrum", (long long)i, sigma[i]);

    attn_rank_report rep;
    s = FUZZ_CALL(attn_rank_analyze, a, rows, cols, &rep);
    if (s == ATTN_OK) {
        if (bad || !finite)
            FUZZ_FAIL("attn_rank_analyze accepted bad=%d finite=%d", bad, finite);
        if (rep.numerical_rank < 0 || rep.numerical_rank > n || rep.rank_90 > rep.rank_99 || rep.rank_99 > n ||
            rep.rank_90 < 0 || !isfinite(rep.stable_rank) || !isfinite(rep.effective_rank) ||
            rep.stable_rank > n * (1 + 1e-9) || rep.effective_rank > n * (1 + 1e-9))
            FUZZ_FAIL("rank report out of range: numerical %lld, 90 %lld, 99 %lld, stable %g, effective %g (n %lld)",
                      (long long)rep.numerical_rank, (long long)rep.rank_90, (long long)rep.rank_99, rep.stable_rank,
                      rep.effective_rank, (long long)n);
    }

    double err = -1;
    s = FUZZ_CALL(attn_lowrank_error, a, rows, cols, rank, &err);
    if (s == ATTN_OK && (bad || !finite || rank < 0))
        FUZZ_FAIL("attn_lowrank_error accepted bad=%d finite=%d rank=%lld", bad, finite, (long long)rank);
    if (s == ATTN_OK && (!(err >= 0) || (rank >= n && err != 0)))
        FUZZ_FAIL("attn_lowrank_error gave %g for rank %lld of %lld", err, (long long)rank, (long long)n);

    if (how & 1) {
        const int64_t room = fr > 0 ? fr : 1;
        float *u = zbuf(bad ? 1 : rows * room, bad), *v = zbuf(bad ? 1 : room * cols, bad);
        s = FUZZ_CALL(attn_lowrank_factors, a, rows, cols, fr, u, v);
        if (s == ATTN_OK && (bad || !finite || fr < 1 || fr > n))
            FUZZ_FAIL("attn_lowrank_factors accepted bad=%d finite=%d rank=%lld", bad, finite, (long long)fr);
        free(u);
        free(v);
    }
    free(sigma);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0, 0x2545F491u, 0};
    switch (u8(&r) % 5) {
    case 0: fuzz_rnn(&r); break;
    case 1: fuzz_memrnn(&r); break;
    case 2: fuzz_mha(&r); break;
    case 3: fuzz_perceiver(&r); break;
    default: fuzz_analysis(&r); break;
    }
    return 0;
}
