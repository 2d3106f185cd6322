/*
 * test_rnn.c: the recurrent family (attn_rnn, include/attn/rnn.h, docs/rnn.md).
 *
 * Ground truth comes from three independent places: the float64 reference in ref_rnn.c (written
 * from the equations), mathematical invariants (a full-rank LOW_RANK factorization reproduces
 * DENSE), and closed-form costs. Every public function of rnn.h also has its error paths checked:
 * status, the message of attn_last_error(), and outputs left untouched.
 *
 * Tolerance of every float32-vs-float64 comparison in this file (TOL, tests/test_util.h):
 *     max |got - ref| <= 1e-5 * max(1, max |ref|)
 * Float32 rounding over 3 layers x 17 steps stays far inside it, while a wrong index, gate order,
 * direction or bias is off by orders of magnitude.
 */
#define _GNU_SOURCE /* dlvsym: the ATTN_1.0 version of attn_rnn_options_init */

#include "test_util.h"

#include <dlfcn.h>
#include <pthread.h>

#include "ref_rnn.h"

#define MAX_TENSORS 64

static const char *const cell_names[] = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"};
static const char *const recurrence_names[] = {"DENSE", "LOW_RANK", "KRONECKER"};
static const int32_t all_cells[] = {ATTN_CELL_RNN_TANH, ATTN_CELL_RNN_RELU, ATTN_CELL_LSTM, ATTN_CELL_GRU};
static const int32_t tested_recurrences[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_LOW_RANK,
                                             ATTN_RECURRENCE_KRONECKER};

/* ================================================================================================
 * Helpers: configurations (the generic ones are in test_util.h)
 * ============================================================================================= */

/* The options of one test network; everything a test varies. KRONECKER networks take the prime
 * factors of `hidden` as factor sizes (cfg_factors); tests of other factorizations set
 * factor_sizes in the options themselves. */
typedef struct rnn_cfg {
    int32_t cell, recurrence, bidirectional, bias;
    int64_t layers, input, hidden, rank;
} rnn_cfg;

/* The prime factors of `hidden` in ascending order into sizes[] (the rest 0), the two smallest
 * merged while there are more than ATTN_RNN_MAX_FACTORS (a prime gives one factor); returns their
 * number. */
static int64_t cfg_factors(int64_t hidden, int64_t sizes[ATTN_RNN_MAX_FACTORS])
{
    int64_t primes[64], np = 0, rest = hidden;
    for (int64_t q = 2; q * q <= rest; q++)
        while (rest % q == 0)
            primes[np++] = q, rest /= q;
    if (rest > 1 || np == 0)
        primes[np++] = rest;
    while (np > ATTN_RNN_MAX_FACTORS) { /* merge the two smallest, keeping the list ascending */
        int64_t merged = primes[0] * primes[1], at = 1;
        for (; at + 1 < np && primes[at + 1] < merged; at++)
            primes[at - 1] = primes[at + 1];
        primes[at - 1] = merged;
        memmove(primes + at, primes + at + 1, (size_t)(np - at - 1) * sizeof *primes);
        np--;
    }
    memset(sizes, 0, ATTN_RNN_MAX_FACTORS * sizeof *sizes);
    for (int64_t n = 0; n < np; n++)
        sizes[n] = primes[n];
    return np;
}

static void cfg_describe(const rnn_cfg *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s L=%lld bidir=%d bias=%d I=%lld H=%lld r=%lld", cell_names[c->cell],
             recurrence_names[c->recurrence], (long long)c->layers, c->bidirectional, c->bias, (long long)c->input,
             (long long)c->hidden, (long long)c->rank);
    if (c->recurrence == ATTN_RECURRENCE_KRONECKER) {
        int64_t sizes[ATTN_RNN_MAX_FACTORS];
        const int64_t n = cfg_factors(c->hidden, sizes);
        for (int64_t f = 0; f < n; f++)
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%lld", f ? "x" : " factors=", (long long)sizes[f]);
    }
}

/* The configuration of the grids that run every recurrence: I = 5, H = 7, rank 3; KRONECKER uses
 * H = 6 = 2 x 3 instead (7 is prime). Not more factors here: a Kronecker product's singular values
 * are products of its factors', so random Kronecker networks are worse conditioned than dense ones
 * of the same entry variance; at H = 12 = 2 x 2 x 3, 3 layers and 17 steps, one seed in ~2000 puts
 * float32 rounding at 1.2e-5 -- and the DENSE network given the same materialized matrix is off by
 * as much. test_kronecker_equals_dense covers up to 8 factors. */
static rnn_cfg grid_cfg(int32_t cell, int32_t recurrence, int32_t bidir, int32_t bias, int64_t layers)
{
    return (rnn_cfg){cell, recurrence, bidir, bias, layers, 5, recurrence == ATTN_RECURRENCE_KRONECKER ? 6 : 7, 3};
}

static attn_rnn_options cfg_options(const rnn_cfg *c)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o));
    o.cell = c->cell;
    o.recurrence = c->recurrence;
    o.bidirectional = c->bidirectional;
    o.bias = c->bias;
    o.num_layers = c->layers;
    o.input_size = c->input;
    o.hidden_size = c->hidden;
    o.rank = c->recurrence == ATTN_RECURRENCE_LOW_RANK ? c->rank : 0;
    if (c->recurrence == ATTN_RECURRENCE_KRONECKER)
        o.num_factors = cfg_factors(c->hidden, o.factor_sizes);
    return o;
}

/* A network with random weights drawn by attn_params_init(seed). */
static attn_rnn *make_rnn(const rnn_cfg *c, uint64_t seed)
{
    attn_rnn_options o = cfg_options(c);
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, &o));
    assert_non_null(rnn);
    ASSERT_OK(attn_params_init(attn_rnn_params(rnn), seed));
    return rnn;
}

/* A KRONECKER network (2 layers, bidirectional, I = 5) with the given factor sizes, weights from
 * attn_params_init(seed). */
static attn_rnn *make_kronecker(int32_t cell, int64_t num_factors, const int64_t *sizes, uint64_t seed, char *ctx,
                                size_t ctx_size)
{
    int64_t hidden = 1;
    for (int64_t f = 0; f < num_factors; f++)
        hidden *= sizes[f];
    const rnn_cfg c = {cell, ATTN_RECURRENCE_KRONECKER, 1, 1, 2, 5, hidden, 0};
    attn_rnn_options o = cfg_options(&c);
    ref_rnn_set_factors(&o, num_factors, sizes);
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, &o));
    ASSERT_OK(attn_params_init(attn_rnn_params(rnn), seed));
    snprintf(ctx, ctx_size, "%s/KRONECKER L=2 bidir=1 I=5 H=%lld factors=", cell_names[cell], (long long)hidden);
    for (int64_t f = 0; f < num_factors; f++)
        snprintf(ctx + strlen(ctx), ctx_size - strlen(ctx), "%s%lld", f ? "x" : "", (long long)sizes[f]);
    return rnn;
}

static int64_t dirs(const attn_rnn_options *o) { return o->bidirectional ? 2 : 1; }

/* ================================================================================================
 * Forward against the float64 reference
 * ============================================================================================= */

/* One forward call: shape and which optional pointers are passed. */
typedef struct fwd_case {
    int64_t batch, seq_len;
    int use_h0, use_c0, want_h_n, want_c_n;
} fwd_case;

/* Runs attn_rnn_forward and the reference on the same random input, compares y, h_n and c_n, and
 * checks that the inputs were not written. Outputs start as NaN so unwritten elements fail. */
static void check_forward(attn_rnn *rnn, attn_workspace *ws, const fwd_case *fc, uint64_t seed, const char *ctx)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(rnn, &o));
    const int64_t B = fc->batch, T = fc->seq_len, H = o.hidden_size;
    const int64_t nx = B * T * o.input_size, ny = B * T * dirs(&o) * H, ns = o.num_layers * dirs(&o) * B * H;
    char where[256];
    snprintf(where, sizeof where, "%s B=%lld T=%lld h0=%d c0=%d h_n=%d c_n=%d ws=%d", ctx, (long long)B,
             (long long)T, fc->use_h0, fc->use_c0, fc->want_h_n, fc->want_c_n, ws != NULL);

    float *x = random_floats(nx, seed, 1.0);
    float *h0 = fc->use_h0 ? random_floats(ns, seed + 1, 1.0) : NULL;
    float *c0 = fc->use_c0 ? random_floats(ns, seed + 2, 1.0) : NULL;
    float *x_copy = random_floats(nx, seed, 1.0), *h0_copy = random_floats(ns, seed + 1, 1.0);
    float *c0_copy = random_floats(ns, seed + 2, 1.0);
    float *y = filled_floats(ny, NAN);
    float *h_n = fc->want_h_n ? filled_floats(ns, NAN) : NULL;
    float *c_n = fc->want_c_n ? filled_floats(ns, NAN) : NULL;
    double *ry = xmalloc((size_t)ny * sizeof *ry), *rh = xmalloc((size_t)ns * sizeof *rh);
    double *rc = xmalloc((size_t)ns * sizeof *rc);

    attn_status s = attn_rnn_forward(rnn, ws, B, T, x, h0, c0, y, h_n, c_n);
    if (s != ATTN_OK)
        fail_msg("%s: attn_rnn_forward returned %d: %s", where, s, attn_last_error());
    if (ref_rnn_forward(rnn, B, T, x, h0, c0, ry, rh, rc) != 0)
        fail_msg("%s: the reference could not run", where);
    check_close(where, "y", ry, y, ny);
    if (h_n)
        check_close(where, "h_n", rh, h_n, ns);
    if (c_n)
        check_close(where, "c_n", rc, c_n, ns);
    if (memcmp(x, x_copy, (size_t)nx * sizeof *x) != 0 || (h0 && memcmp(h0, h0_copy, (size_t)ns * sizeof *h0)) ||
        (c0 && memcmp(c0, c0_copy, (size_t)ns * sizeof *c0)))
        fail_msg("%s: forward wrote into an input", where);

    free(x), free(h0), free(c0), free(x_copy), free(h0_copy), free(c0_copy);
    free(y), free(h_n), free(c_n), free(ry), free(rh), free(rc);
}

/* Every recurrence x {1,2,3} layers x {uni, bi} x {bias 0/1} x {h0/c0 given or NULL} x
 * {h_n/c_n requested or NULL} x batch {1,3} x seq_len {1,17}, for the cell given as state. LSTM
 * also covers h0 without c0 and the reverse (and the same for h_n/c_n). */
static void test_forward_matches_reference(void **state)
{
    const int32_t cell = *(const int32_t *)*state;
    const int state_masks = cell == ATTN_CELL_LSTM ? 4 : 2; /* bit 0: h, bit 1: c (LSTM only) */
    static const int64_t shapes[][2] = {{1, 1}, {1, 17}, {3, 1}, {3, 17}};
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    uint64_t seed = 1000 + (uint64_t)cell * 100000;
    unsigned calls = 0;
    char ctx[160];

    for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++)
        for (int64_t layers = 1; layers <= 3; layers++)
            for (int32_t bidir = 0; bidir <= 1; bidir++)
                for (int32_t bias = 0; bias <= 1; bias++) {
                    const rnn_cfg c = grid_cfg(cell, tested_recurrences[ri], bidir, bias, layers);
                    cfg_describe(&c, ctx, sizeof ctx);
                    attn_rnn *rnn = make_rnn(&c, seed++);
                    for (int in = 0; in < state_masks; in++)
                        for (int out = 0; out < state_masks; out++)
                            for (int si = 0; si < COUNT_OF(shapes); si++) {
                                const fwd_case fc = {.batch = shapes[si][0],
                                                     .seq_len = shapes[si][1],
                                                     .use_h0 = in & 1,
                                                     .use_c0 = in >> 1,
                                                     .want_h_n = out & 1,
                                                     .want_c_n = out >> 1};
                                /* Alternate between a shared workspace and per-call scratch. */
                                check_forward(rnn, calls++ % 2 ? ws : NULL, &fc, seed * 7 + 3, ctx);
                                seed++;
                            }
                    attn_rnn_destroy(rnn);
                }
    attn_workspace_destroy(ws);
}

/* ================================================================================================
 * Tensor names, shapes, order and initialization
 * ============================================================================================= */

typedef struct expected_tensor {
    char name[64];
    int64_t ndim, shape[3];
} expected_tensor;

/* Appends tensor "<base>_l<l><suffix>[_reverse]" of the given shape (trailing 0 extents end it). */
static void add_expected(expected_tensor *t, int64_t *n, const char *base, int64_t l, const char *suffix,
                         int64_t d, int64_t d0, int64_t d1, int64_t d2)
{
    assert_true(*n < MAX_TENSORS);
    ref_rnn_tensor_name(t[*n].name, sizeof t[*n].name, base, l, suffix, d);
    t[*n].ndim = d2 ? 3 : d1 ? 2 : 1;
    t[*n].shape[0] = d0;
    t[*n].shape[1] = d1;
    t[*n].shape[2] = d2;
    (*n)++;
}

/* docs/rnn.md names and shapes, in torch's state_dict order (per layer, per direction: weight_ih,
 * the recurrence, bias_ih, bias_hh). */
static int64_t expected_tensors(const attn_rnn_options *o, expected_tensor *t)
{
    const int64_t G = ref_rnn_gates(o->cell), H = o->hidden_size, GH = G * H;
    int64_t n = 0;
    for (int64_t l = 0; l < o->num_layers; l++)
        for (int64_t d = 0; d < dirs(o); d++) {
            add_expected(t, &n, "weight_ih", l, "", d, GH, l ? dirs(o) * H : o->input_size, 0);
            if (o->recurrence == ATTN_RECURRENCE_DENSE) {
                add_expected(t, &n, "weight_hh", l, "", d, GH, H, 0);
            } else if (o->recurrence == ATTN_RECURRENCE_LOW_RANK) {
                add_expected(t, &n, "weight_hh", l, "_u", d, GH, o->rank, 0);
                add_expected(t, &n, "weight_hh", l, "_v", d, o->rank, H, 0);
            } else {
                for (int64_t f = 0; f < o->num_factors; f++) {
                    char suffix[32];
                    snprintf(suffix, sizeof suffix, "_kron%lld", (long long)f);
                    add_expected(t, &n, "weight_hh", l, suffix, d, G, o->factor_sizes[f], o->factor_sizes[f]);
                }
            }
            if (o->bias) {
                add_expected(t, &n, "bias_ih", l, "", d, GH, 0, 0);
                add_expected(t, &n, "bias_hh", l, "", d, GH, 0, 0);
            }
        }
    return n;
}

static void test_params_layout(void **state)
{
    (void)state;
    expected_tensor want[MAX_TENSORS];
    char ctx[160];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++)
            for (int64_t layers = 1; layers <= 3; layers += 2)
                for (int32_t bidir = 0; bidir <= 1; bidir++)
                    for (int32_t bias = 0; bias <= 1; bias++) {
                        const rnn_cfg c = grid_cfg(all_cells[ci], tested_recurrences[ri], bidir, bias, layers);
                        cfg_describe(&c, ctx, sizeof ctx);
                        const attn_rnn_options o = cfg_options(&c);
                        attn_rnn *rnn = make_rnn(&c, 1);
                        const attn_params *p = attn_rnn_params(rnn);
                        const int64_t n = expected_tensors(&o, want);
                        if (attn_params_count(p) != n)
                            fail_msg("%s: %lld tensors, want %lld", ctx, (long long)attn_params_count(p),
                                     (long long)n);
                        for (int64_t i = 0; i < n; i++) {
                            attn_tensor_info info;
                            if (attn_params_find(p, want[i].name, &info) != ATTN_OK)
                                fail_msg("%s: tensor %s missing: %s", ctx, want[i].name, attn_last_error());
                            int64_t count = 1;
                            for (int64_t k = 0; k < want[i].ndim; k++)
                                count *= want[i].shape[k];
                            if (info.ndim != want[i].ndim || info.shape[0] != want[i].shape[0] ||
                                info.shape[1] != want[i].shape[1] || info.shape[2] != want[i].shape[2] ||
                                info.count != count)
                                fail_msg("%s: %s has ndim %lld shape (%lld, %lld, %lld) count %lld", ctx,
                                         want[i].name, (long long)info.ndim, (long long)info.shape[0],
                                         (long long)info.shape[1], (long long)info.shape[2], (long long)info.count);
                            /* The listing follows torch's state_dict order (for DENSE, torch's own
                             * module; the other recurrences replace weight_hh in place). */
                            ASSERT_OK(attn_params_info(p, i, &info));
                            if (strcmp(info.name, want[i].name) != 0)
                                fail_msg("%s: tensor %lld is %s, torch's state_dict has %s", ctx, (long long)i,
                                         info.name, want[i].name);
                        }
                        attn_rnn_options got;
                        memset(&got, 0xA5, sizeof got); /* a caller of an older header: 1.0's fields only */
                        ASSERT_OK(attn_rnn_get_options(rnn, &got));
                        const size_t first = offsetof(attn_rnn_options, more_factor_sizes);
                        assert_int_equal(got.struct_size, first);
                        for (size_t b = first; b < sizeof got; b++)
                            assert_int_equal(((const unsigned char *)&got)[b], 0xA5);
                        ASSERT_OK(attn_rnn_options_init(&got));
                        ASSERT_OK(attn_rnn_get_options(rnn, &got));
                        if (got.struct_size != sizeof got || got.cell != o.cell ||
                            got.recurrence != o.recurrence || got.bidirectional != o.bidirectional ||
                            got.bias != o.bias || got.input_size != o.input_size ||
                            got.hidden_size != o.hidden_size || got.num_layers != o.num_layers ||
                            got.rank != o.rank || got.num_factors != o.num_factors ||
                            memcmp(got.factor_sizes, o.factor_sizes, sizeof o.factor_sizes) != 0 || got.flags != 0 ||
                            memcmp(got.more_factor_sizes, o.more_factor_sizes, sizeof o.more_factor_sizes) != 0)
                            fail_msg("%s: attn_rnn_get_options does not return the creation options", ctx);
                        attn_rnn_destroy(rnn);
                    }
}

/* Copies every tensor of `p` into one buffer, in listing order. */
static float *params_snapshot(const attn_params *p, int64_t *total)
{
    int64_t n = 0;
    attn_tensor_info info;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        ASSERT_OK(attn_params_info(p, i, &info));
        n += info.count;
    }
    float *all = xmalloc((size_t)n * sizeof *all);
    for (int64_t i = 0, at = 0; i < attn_params_count(p); i++) {
        ASSERT_OK(attn_params_info(p, i, &info));
        ASSERT_OK(attn_params_get(p, info.name, all + at, info.count));
        at += info.count;
    }
    *total = n;
    return all;
}

/* A new handle holds attn_params_init(p, 0); init is deterministic per seed; DENSE follows
 * PyTorch's law U(-1/sqrt(H), 1/sqrt(H)) for every tensor. */
static void test_params_init(void **state)
{
    (void)state;
    const rnn_cfg c = {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0};
    attn_rnn_options o = cfg_options(&c);
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, &o));
    attn_params *p = attn_rnn_params(rnn);
    int64_t n0, n1, n2;
    float *fresh = params_snapshot(p, &n0);
    ASSERT_OK(attn_params_init(p, 0));
    float *zero = params_snapshot(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(fresh, zero, (size_t)n0 * sizeof *fresh);
    ASSERT_OK(attn_params_init(p, 42));
    float *a = params_snapshot(p, &n1);
    ASSERT_OK(attn_params_init(p, 42));
    float *b = params_snapshot(p, &n2);
    assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
    assert_memory_not_equal(a, zero, (size_t)n1 * sizeof *a);
    const double bound = 1.0 / sqrt((double)c.hidden);
    double largest = 0;
    for (int64_t i = 0; i < n1; i++)
        largest = fmax(largest, fabs(a[i]));
    if (!(largest <= bound * (1 + 1e-6)) || largest < 0.5 * bound)
        fail_msg("init values reach %g; PyTorch's law is U(-%g, %g)", largest, bound, bound);
    free(fresh), free(zero), free(a), free(b);
    attn_rnn_destroy(rnn);
}

/* docs/rnn.md: every Kronecker factor entry ~ U(-a, a) with a = sqrt(3) (3H)^(-1/(2F)), so that the
 * entries of each gate's product have PyTorch's dense variance 1/(3H); F = 1 is PyTorch's law.
 * Checked on all factor entries of a network together: the largest magnitude (at most a, and above
 * 0.9 a over at least 64 draws) and the mean square (a^2/3 within 50 %). */
static void test_kronecker_init(void **state)
{
    (void)state;
    static const struct {
        int64_t n, sizes[ATTN_RNN_MAX_FACTORS];
    } cases[] = {{1, {24}}, {2, {4, 6}}, {3, {2, 3, 4}}, {8, {2, 2, 2, 2, 2, 2, 2, 2}}};
    char ctx[200], name[64];
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_rnn *rnn = make_kronecker(ATTN_CELL_LSTM, cases[k].n, cases[k].sizes, 17, ctx, sizeof ctx);
        attn_rnn_options o;
        ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
        ASSERT_OK(attn_rnn_get_options(rnn, &o));
        const double a = sqrt(3.0) * pow(3.0 * (double)o.hidden_size, -0.5 / (double)o.num_factors);
        /* All factors of all layers and directions together: the law is the same for each. */
        double largest = 0, sum_sq = 0;
        int64_t count = 0;
        for (int64_t l = 0; l < o.num_layers; l++)
            for (int64_t d = 0; d < dirs(&o); d++)
                for (int64_t f = 0; f < o.num_factors; f++) {
                    ref_rnn_kron_name(name, sizeof name, l, f, d);
                    const int64_t n = 4 * o.factor_sizes[f] * o.factor_sizes[f];
                    double *v = ref_params_get_f64(attn_rnn_params(rnn), name, n);
                    assert_non_null(v);
                    for (int64_t i = 0; i < n; i++)
                        largest = fmax(largest, fabs(v[i])), sum_sq += v[i] * v[i];
                    count += n;
                    free(v);
                }
        const double mean_sq = sum_sq / (double)count;
        if (!(largest <= a * (1 + 1e-6)) || largest < 0.9 * a || fabs(mean_sq / (a * a / 3) - 1) > 0.5)
            fail_msg("%s: factor entries reach %g with mean square %g; the law is U(-%g, %g) (mean square %g)", ctx,
                     largest, mean_sq, a, a, a * a / 3);
        if (o.num_factors == 1 && fabs(a - 1.0 / sqrt((double)o.hidden_size)) > 1e-12)
            fail_msg("%s: one factor must follow PyTorch's bound 1/sqrt(H)", ctx);
        attn_rnn_destroy(rnn);
    }
}

/* ================================================================================================
 * Invariant: LOW_RANK with rank = H and U V = W_hh reproduces DENSE
 * ============================================================================================= */

/* inv = a^-1 for an n-by-n matrix (Gauss-Jordan with partial pivoting); -1 when singular. */
static int invert(const double *a, double *inv, int64_t n)
{
    double *m = xmalloc((size_t)(n * n) * sizeof *m);
    memcpy(m, a, (size_t)(n * n) * sizeof *m);
    for (int64_t i = 0; i < n * n; i++)
        inv[i] = i / n == i % n;
    for (int64_t col = 0; col < n; col++) {
        int64_t piv = col;
        for (int64_t r = col + 1; r < n; r++)
            if (fabs(m[r * n + col]) > fabs(m[piv * n + col]))
                piv = r;
        if (fabs(m[piv * n + col]) < 1e-12) {
            free(m);
            return -1;
        }
        for (int64_t k = 0; k < n; k++) {
            double t = m[col * n + k];
            m[col * n + k] = m[piv * n + k], m[piv * n + k] = t;
            t = inv[col * n + k];
            inv[col * n + k] = inv[piv * n + k], inv[piv * n + k] = t;
        }
        const double d = m[col * n + col];
        for (int64_t k = 0; k < n; k++)
            m[col * n + k] /= d, inv[col * n + k] /= d;
        for (int64_t r = 0; r < n; r++) {
            const double f = m[r * n + col];
            if (r == col || f == 0)
                continue;
            for (int64_t k = 0; k < n; k++)
                m[r * n + k] -= f * m[col * n + k], inv[r * n + k] -= f * inv[col * n + k];
        }
    }
    free(m);
    return 0;
}

static void set_tensor_f64(attn_params *p, const char *name, const double *v, int64_t n)
{
    float *f = xmalloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    ASSERT_OK(attn_params_set(p, name, f, n));
    free(f);
}

static void copy_tensor(const attn_params *from, attn_params *to, const char *name)
{
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(from, name, &info));
    float *buf = xmalloc((size_t)info.count * sizeof *buf);
    ASSERT_OK(attn_params_get(from, name, buf, info.count));
    ASSERT_OK(attn_params_set(to, name, buf, info.count));
    free(buf);
}

enum { SPLIT_IDENTITY, SPLIT_RANDOM };

/* Gives `lr` (LOW_RANK, rank H) the weights of `dense`, with W_hh = U V split as U = W, V = I or
 * as U = W M^-1, V = M for a random well-conditioned M. */
static void copy_as_low_rank(attn_rnn *dense, attn_rnn *lr, int split, uint64_t seed, const char *ctx)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(dense, &o));
    attn_params *pd = attn_rnn_params(dense), *pl = attn_rnn_params(lr);
    const int64_t H = o.hidden_size, GH = ref_rnn_gates(o.cell) * H;
    double *m = xmalloc((size_t)(H * H) * sizeof *m), *minv = xmalloc((size_t)(H * H) * sizeof *minv);
    double *u = xmalloc((size_t)(GH * H) * sizeof *u);
    char name[64];
    for (int64_t l = 0; l < o.num_layers; l++)
        for (int64_t d = 0; d < dirs(&o); d++) {
            static const char *const shared[] = {"weight_ih", "bias_ih", "bias_hh"};
            for (int k = 0; k < COUNT_OF(shared); k++) {
                ref_rnn_tensor_name(name, sizeof name, shared[k], l, "", d);
                copy_tensor(pd, pl, name);
            }
            ref_rnn_tensor_name(name, sizeof name, "weight_hh", l, "", d);
            double *w = ref_params_get_f64(pd, name, GH * H);
            assert_non_null(w);
            /* Diagonally dominant (off-diagonal row sums < 1.8 < 2), hence invertible. */
            for (int64_t i = 0; i < H * H; i++)
                m[i] = split == SPLIT_IDENTITY ? (i / H == i % H)
                                               : (i / H == i % H ? 2.0 : 0.0) + 0.3 * rng_uniform(&seed);
            assert_int_equal(invert(m, minv, H), 0);
            ref_matmul(GH, H, H, w, H, minv, H, u, H);
            ref_rnn_tensor_name(name, sizeof name, "weight_hh", l, "_u", d);
            set_tensor_f64(pl, name, u, GH * H);
            ref_rnn_tensor_name(name, sizeof name, "weight_hh", l, "_v", d);
            set_tensor_f64(pl, name, m, H * H);
            /* The factorization is exact in float64, so the materialized matrix is W_hh again. */
            float *r = filled_floats(GH * H, NAN);
            ASSERT_OK(attn_rnn_recurrent_matrix(lr, l, d, r));
            check_close(ctx, "recurrent_matrix of the factorization", w, r, GH * H);
            free(r);
            free(w);
        }
    free(m), free(minv), free(u);
}

/* Runs `a` (the reference network, DENSE) and `b` on the same random input, initial states given,
 * and compares y, h_n and c_n at TOL relative to a's values; `what` names b's recurrence. */
static void check_same_outputs(attn_rnn *a, attn_rnn *b, int64_t B, int64_t T, uint64_t seed, const char *ctx,
                               const char *what)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(a, &o));
    const int lstm = o.cell == ATTN_CELL_LSTM;
    const int64_t ny = B * T * dirs(&o) * o.hidden_size, ns = o.num_layers * dirs(&o) * B * o.hidden_size;
    float *x = random_floats(B * T * o.input_size, seed, 1.0), *h0 = random_floats(ns, seed + 1, 1.0);
    float *c0 = lstm ? random_floats(ns, seed + 2, 1.0) : NULL;
    float *y[2], *hn[2], *cn[2];
    attn_rnn *nets[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        y[k] = filled_floats(ny, NAN), hn[k] = filled_floats(ns, NAN);
        cn[k] = lstm ? filled_floats(ns, NAN) : NULL;
        ASSERT_OK(attn_rnn_forward(nets[k], NULL, B, T, x, h0, c0, y[k], hn[k], cn[k]));
    }
    char label[96];
    snprintf(label, sizeof label, "y (%s vs DENSE)", what);
    check_close_f32(ctx, label, y[0], y[1], ny, TOL);
    snprintf(label, sizeof label, "h_n (%s vs DENSE)", what);
    check_close_f32(ctx, label, hn[0], hn[1], ns, TOL);
    snprintf(label, sizeof label, "c_n (%s vs DENSE)", what);
    if (lstm)
        check_close_f32(ctx, label, cn[0], cn[1], ns, TOL);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(hn[k]), free(cn[k]);
    free(x), free(h0), free(c0);
}

static void test_low_rank_full_rank_equals_dense(void **state)
{
    (void)state;
    static const int64_t layouts[][2] = {{1, 0}, {2, 1}}; /* layers, bidirectional */
    char ctx[200];
    uint64_t seed = 77;
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int li = 0; li < COUNT_OF(layouts); li++)
            for (int split = SPLIT_IDENTITY; split <= SPLIT_RANDOM; split++) {
                rnn_cfg c = {
                    all_cells[ci], ATTN_RECURRENCE_DENSE, (int32_t)layouts[li][1], 1, layouts[li][0], 5, 7, 0};
                attn_rnn *dense = make_rnn(&c, seed++);
                c.recurrence = ATTN_RECURRENCE_LOW_RANK;
                c.rank = c.hidden;
                attn_rnn *lr = make_rnn(&c, seed++);
                cfg_describe(&c, ctx, sizeof ctx);
                strncat(ctx, split == SPLIT_IDENTITY ? " U=W,V=I" : " U=W M^-1,V=M", sizeof ctx - strlen(ctx) - 1);
                copy_as_low_rank(dense, lr, split, seed++, ctx);
                check_same_outputs(dense, lr, 3, 17, seed, ctx, "LOW_RANK");
                seed += 3;
                attn_rnn_destroy(dense);
                attn_rnn_destroy(lr);
            }
}

/* ================================================================================================
 * Invariant: KRONECKER computes what DENSE computes with weight_hh = the materialized matrix
 * ============================================================================================= */

/* The DENSE twin of a network: the same options but DENSE, the same weight_ih and biases, and
 * weight_hh = attn_rnn_recurrent_matrix of `rnn`. */
static attn_rnn *dense_twin(attn_rnn *rnn)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(rnn, &o));
    o.recurrence = ATTN_RECURRENCE_DENSE;
    o.num_factors = 0;
    memset(o.factor_sizes, 0, sizeof o.factor_sizes);
    attn_rnn *dense = NULL;
    ASSERT_OK(attn_rnn_create(&dense, &o));
    const int64_t GH = ref_rnn_gates(o.cell) * o.hidden_size;
    float *w = xmalloc((size_t)(GH * o.hidden_size) * sizeof *w);
    char name[64];
    for (int64_t l = 0; l < o.num_layers; l++)
        for (int64_t d = 0; d < dirs(&o); d++) {
            static const char *const shared[] = {"weight_ih", "bias_ih", "bias_hh"};
            for (int k = 0; k < COUNT_OF(shared) && (k == 0 || o.bias); k++) {
                ref_rnn_tensor_name(name, sizeof name, shared[k], l, "", d);
                copy_tensor(attn_rnn_params(rnn), attn_rnn_params(dense), name);
            }
            ASSERT_OK(attn_rnn_recurrent_matrix(rnn, l, d, w));
            ref_rnn_tensor_name(name, sizeof name, "weight_hh", l, "", d);
            ASSERT_OK(attn_params_set(attn_rnn_params(dense), name, w, GH * o.hidden_size));
        }
    free(w);
    return dense;
}

/* F = 1, 2, 3, 8, 9 and 10 factors (2x2 factors give H = 256, 512, 1024; from the ninth on they are
 * more_factor_sizes), uneven sizes, factors of 1, a batch whose mode products the thread team shares
 * in blocks; every cell, 2 layers, bidirectional. Some H >= 512 cases run for LSTM only (they
 * dominate the run time under the sanitizers). */
static void test_kronecker_equals_dense(void **state)
{
    (void)state;
    static const struct {
        int64_t n, sizes[ATTN_RNN_MAX_FACTORS_ALL];
        int64_t batch, seq_len;
        int lstm_only;
    } cases[] = {
        {1, {6}, 3, 9, 0},
        {2, {2, 3}, 3, 9, 0},
        {3, {2, 3, 2}, 3, 9, 0},
        {3, {3, 1, 2}, 3, 9, 0},
        {2, {5, 4}, 2, 6, 0},
        {8, {2, 2, 2, 2, 2, 2, 2, 2}, 3, 5, 0},
        {3, {4, 8, 16}, 3, 5, 1},
        {8, {2, 2, 2, 2, 2, 2, 2, 4}, 2, 4, 1},
        {9, {2, 2, 2, 2, 2, 2, 2, 2, 2}, 2, 4, 0}, /* H = 512 in 2 x 2 factors: more_factor_sizes */
        {10, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, 2, 3, 1},
        {10, {1, 2, 1, 3, 1, 1, 1, 1, 2, 2}, 2, 4, 0},
        {2, {32, 16}, 20, 3, 1}, /* B*G*H large enough for the thread team: 32 in 2 blocks of rows */
    };
    char ctx[200];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int k = 0; k < COUNT_OF(cases); k++) {
            if (cases[k].lstm_only && all_cells[ci] != ATTN_CELL_LSTM)
                continue;
            const uint64_t seed = 300 + 10 * (uint64_t)k + (uint64_t)ci;
            attn_rnn *kron = make_kronecker(all_cells[ci], cases[k].n, cases[k].sizes, seed, ctx, sizeof ctx);
            /* The materialized matrix against the float64 Kronecker product of the factors. */
            attn_rnn_options o;
            ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
            ASSERT_OK(attn_rnn_get_options(kron, &o));
            const int64_t n = ref_rnn_gates(o.cell) * o.hidden_size * o.hidden_size;
            float *got = xmalloc((size_t)n * sizeof *got);
            double *want = new_doubles(n);
            for (int64_t l = 0; l < 2; l++)
                for (int64_t d = 0; d < 2; d++) {
                    ASSERT_OK(attn_rnn_recurrent_matrix(kron, l, d, got));
                    assert_int_equal(ref_rnn_recurrent_matrix(kron, l, d, want), 0);
                    check_close(ctx, "recurrent_matrix vs the float64 Kronecker product", want, got, n);
                }
            free(got), free(want);
            attn_rnn *dense = dense_twin(kron);
            check_same_outputs(dense, kron, cases[k].batch, cases[k].seq_len, seed, ctx, "KRONECKER");
            attn_rnn_destroy(dense);
            attn_rnn_destroy(kron);
        }
}

/* ================================================================================================
 * attn_rnn_recurrent_matrix
 * ============================================================================================= */

static void test_recurrent_matrix(void **state)
{
    (void)state;
    char ctx[160], name[64];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++)
            for (int32_t bidir = 0; bidir <= 1; bidir++) {
                const rnn_cfg c = grid_cfg(all_cells[ci], tested_recurrences[ri], bidir, 1, 2);
                cfg_describe(&c, ctx, sizeof ctx);
                attn_rnn *rnn = make_rnn(&c, 5 + (uint64_t)ci);
                const int64_t H = c.hidden, GH = ref_rnn_gates(c.cell) * H, D = bidir ? 2 : 1;
                float *out = xmalloc((size_t)(GH * H) * sizeof *out);
                double *want = xmalloc((size_t)(GH * H) * sizeof *want);
                for (int64_t l = 0; l < c.layers; l++)
                    for (int64_t d = 0; d < D; d++) {
                        ASSERT_OK(attn_rnn_recurrent_matrix(rnn, l, d, out));
                        if (c.recurrence == ATTN_RECURRENCE_DENSE) {
                            /* A copy, so it must be exact. */
                            float *w = filled_floats(GH * H, NAN);
                            ref_rnn_tensor_name(name, sizeof name, "weight_hh", l, "", d);
                            ASSERT_OK(attn_params_get(attn_rnn_params(rnn), name, w, GH * H));
                            if (memcmp(w, out, (size_t)(GH * H) * sizeof *w) != 0)
                                fail_msg("%s: recurrent_matrix(%lld, %lld) differs from %s", ctx, (long long)l,
                                         (long long)d, name);
                            free(w);
                        } else {
                            assert_int_equal(ref_rnn_recurrent_matrix(rnn, l, d, want), 0);
                            /* U V, or per gate the float64 Kronecker product of the factors. */
                            check_close(ctx, "recurrent_matrix vs float64", want, out, GH * H);
                        }
                    }
                /* Out of range: the output stays untouched. */
                const struct {
                    int64_t layer, direction;
                    const char *args;
                } bad[] = {{-1, 0, "layer"},           {c.layers, 0, "layer"}, {HUGE_SIZE, 0, "layer"},
                           {0, -1, "direction"},       {0, D, "direction"},    {0, 2, "direction"},
                           {1, HUGE_SIZE, "direction"}};
                for (int k = 0; k < COUNT_OF(bad); k++) {
                    char what[200];
                    snprintf(what, sizeof what, "%s layer %lld direction %lld", ctx, (long long)bad[k].layer,
                             (long long)bad[k].direction);
                    float *sentinel = filled_floats(GH * H, -123.0f);
                    EXPECT_FAILURE(attn_rnn_recurrent_matrix(rnn, bad[k].layer, bad[k].direction, sentinel),
                                   ATTN_E_INVALID_ARG, "attn_rnn_recurrent_matrix", bad[k].args, what);
                    if (!all_equal(sentinel, GH * H, -123.0f))
                        fail_msg("%s: out was written by a failed call", what);
                    free(sentinel);
                }
                free(out), free(want);
                attn_rnn_destroy(rnn);
            }
}

/* ================================================================================================
 * attn_rnn_cost and workspaces
 * ============================================================================================= */

/* docs/rnn.md: 2*B*T*G*H*I_l per layer and direction for the input projection, plus the
 * recurrence: 2*B*T*G*H*H (DENSE), 2*B*T*(r*H + G*H*r) (LOW_RANK) or 2*B*T*G*H*sum(p_f)
 * (KRONECKER: one B*H*p_f*p_f/p_f product per factor and gate). */
static int64_t expected_flops(const attn_rnn_options *o, int64_t B, int64_t T)
{
    const int64_t G = ref_rnn_gates(o->cell), H = o->hidden_size, r = o->rank;
    /* KRONECKER: the sizes of the factors as applied (docs/rnn.md): adjacent ones whose product is
     * at most 32 go as one */
    int64_t sum_p = 0;
    for (int64_t f = 0; f < o->num_factors;) {
        int64_t p = ref_rnn_factor(o, f++);
        while (f < o->num_factors && p * ref_rnn_factor(o, f) <= 32)
            p *= ref_rnn_factor(o, f++);
        sum_p += p;
    }
    int64_t f = 0;
    for (int64_t l = 0; l < o->num_layers; l++)
        for (int64_t d = 0; d < dirs(o); d++) {
            const int64_t in = l ? dirs(o) * H : o->input_size;
            f += 2 * B * T * G * H * in;
            if (o->recurrence == ATTN_RECURRENCE_DENSE)
                f += 2 * B * T * G * H * H;
            else if (o->recurrence == ATTN_RECURRENCE_LOW_RANK)
                f += 2 * B * T * (r * H + G * H * r);
            else
                f += 2 * B * T * G * H * sum_p;
        }
    return f;
}

/* The workspace forward needs, written out from docs/rnn.md: the input projection of every step,
 * GRU's recurrent product of one step, the low-rank V h of one step or, for KRONECKER with at least
 * two factors, the transposed states and two rotation buffers (3*B*H floats), the LSTM cell state,
 * and up to two [B, T, D*H] buffers for the layers below the last; each block rounded up to 64
 * bytes. */
static int64_t expected_workspace(const attn_rnn_options *o, int64_t B, int64_t T)
{
    const int64_t G = ref_rnn_gates(o->cell), H = o->hidden_size;
#define BLOCK(floats) (((floats) * 4 + 63) / 64 * 64)
    int64_t bytes = BLOCK(B * T * G * H);
    if (o->cell == ATTN_CELL_GRU)
        bytes += BLOCK(B * G * H);
    if (o->recurrence == ATTN_RECURRENCE_LOW_RANK)
        bytes += BLOCK(B * o->rank);
    if (o->recurrence == ATTN_RECURRENCE_KRONECKER && o->num_factors >= 2)
        bytes += BLOCK((1 + 2 * G) * B * H);
    if (o->cell == ATTN_CELL_LSTM)
        bytes += BLOCK(B * H);
    bytes += (o->num_layers - 1 < 2 ? o->num_layers - 1 : 2) * BLOCK(B * T * dirs(o) * H);
#undef BLOCK
    return bytes;
}

/* Runs one forward on random data (optional outputs on request) and returns the status. */
static attn_status run_forward(attn_rnn *rnn, attn_workspace *ws, int64_t B, int64_t T, int optional,
                               uint64_t seed)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(rnn, &o));
    const int lstm = o.cell == ATTN_CELL_LSTM;
    const int64_t ns = o.num_layers * dirs(&o) * B * o.hidden_size;
    float *x = random_floats(B * T * o.input_size, seed, 1.0), *y = filled_floats(B * T * dirs(&o) * o.hidden_size, 0);
    float *h0 = optional ? random_floats(ns, seed + 1, 1.0) : NULL,
          *c0 = optional && lstm ? random_floats(ns, seed + 2, 1.0) : NULL;
    float *hn = optional ? filled_floats(ns, 0) : NULL, *cn = optional && lstm ? filled_floats(ns, 0) : NULL;
    attn_status s = attn_rnn_forward(rnn, ws, B, T, x, h0, c0, y, hn, cn);
    free(x), free(y), free(h0), free(c0), free(hn), free(cn);
    return s;
}

static void test_cost(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{1, 1}, {3, 17}, {4, 2}};
    char ctx[200];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++)
            for (int64_t layers = 1; layers <= 3; layers += 2)
                for (int32_t bidir = 0; bidir <= 1; bidir++)
                    for (int32_t bias = 0; bias <= 1; bias++) {
                        const rnn_cfg c = grid_cfg(all_cells[ci], tested_recurrences[ri], bidir, bias, layers);
                        attn_rnn *rnn = make_rnn(&c, 9);
                        const attn_rnn_options o = cfg_options(&c);
                        const attn_params *p = attn_rnn_params(rnn);
                        int64_t params = 0;
                        for (int64_t i = 0; i < attn_params_count(p); i++) {
                            attn_tensor_info info;
                            ASSERT_OK(attn_params_info(p, i, &info));
                            params += info.count;
                        }
                        for (int si = 0; si < COUNT_OF(shapes); si++) {
                            const int64_t B = shapes[si][0], T = shapes[si][1];
                            cfg_describe(&c, ctx, sizeof ctx);
                            snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " B=%lld T=%lld", (long long)B,
                                     (long long)T);
                            attn_cost cost;
                            ASSERT_OK(attn_rnn_cost(rnn, B, T, &cost));
                            if (cost.params != params || cost.flops != expected_flops(&o, B, T) ||
                                cost.workspace_bytes != expected_workspace(&o, B, T))
                                fail_msg("%s: cost params %lld flops %lld workspace %lld, want %lld, %lld and %lld",
                                         ctx, (long long)cost.params, (long long)cost.flops,
                                         (long long)cost.workspace_bytes, (long long)params,
                                         (long long)expected_flops(&o, B, T), (long long)expected_workspace(&o, B, T));
                            attn_workspace *ws = NULL;
                            ASSERT_OK(attn_workspace_create(&ws));
                            assert_int_equal(attn_workspace_size(ws), 0);
                            ASSERT_OK(run_forward(rnn, ws, B, T, 0, 3));
                            if (attn_workspace_size(ws) != cost.workspace_bytes)
                                fail_msg("%s: workspace holds %lld bytes after forward, cost says %lld", ctx,
                                         (long long)attn_workspace_size(ws), (long long)cost.workspace_bytes);
                            /* Optional states must not need scratch that cost does not know about. */
                            ASSERT_OK(run_forward(rnn, ws, B, T, 1, 4));
                            if (attn_workspace_size(ws) != cost.workspace_bytes)
                                fail_msg("%s: a second forward grew the workspace from %lld to %lld bytes", ctx,
                                         (long long)cost.workspace_bytes, (long long)attn_workspace_size(ws));
                            attn_workspace_destroy(ws);
                        }
                        attn_rnn_destroy(rnn);
                    }
}

/* One workspace serves different handles and shapes, growing to the largest and staying correct. */
static void test_workspace_reuse(void **state)
{
    (void)state;
    static const struct {
        rnn_cfg c;
        int64_t batch, seq_len;
    } steps[] = {
        {{ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0}, 3, 17},
        {{ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0}, 1, 2},
        {{ATTN_CELL_GRU, ATTN_RECURRENCE_LOW_RANK, 0, 1, 3, 9, 11, 4}, 2, 5},
        {{ATTN_CELL_RNN_TANH, ATTN_RECURRENCE_DENSE, 1, 0, 1, 4, 16, 0}, 5, 30},
        {{ATTN_CELL_RNN_RELU, ATTN_RECURRENCE_LOW_RANK, 1, 1, 2, 3, 6, 2}, 1, 1},
        {{ATTN_CELL_GRU, ATTN_RECURRENCE_KRONECKER, 1, 1, 2, 3, 8, 0}, 4, 6},
        {{ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0}, 3, 17},
    };
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    int64_t largest = 0;
    char ctx[200];
    for (int k = 0; k < COUNT_OF(steps); k++) {
        attn_rnn *rnn = make_rnn(&steps[k].c, 100 + (uint64_t)k);
        cfg_describe(&steps[k].c, ctx, sizeof ctx);
        attn_cost cost;
        ASSERT_OK(attn_rnn_cost(rnn, steps[k].batch, steps[k].seq_len, &cost));
        largest = cost.workspace_bytes > largest ? cost.workspace_bytes : largest;
        const int lstm = steps[k].c.cell == ATTN_CELL_LSTM;
        const fwd_case fc = {steps[k].batch, steps[k].seq_len, 1, lstm, 1, lstm};
        check_forward(rnn, ws, &fc, 500 + (uint64_t)k, ctx);
        if (attn_workspace_size(ws) != largest)
            fail_msg("step %d (%s): workspace holds %lld bytes, the largest request so far was %lld", k, ctx,
                     (long long)attn_workspace_size(ws), (long long)largest);
        attn_rnn_destroy(rnn);
    }
    attn_workspace_destroy(ws);
}

/* ================================================================================================
 * attn_rnn_forward_lengths: variable-length batches
 * ============================================================================================= */

/* Rows [b] of a [L*D, B, H] state tensor as a [L*D, 1, H] one. */
static float *state_rows(const float *s, int64_t units, int64_t B, int64_t H, int64_t b)
{
    if (!s)
        return NULL;
    float *out = xmalloc((size_t)(units * H) * sizeof *out);
    for (int64_t u = 0; u < units; u++)
        memcpy(out + u * H, s + (u * B + b) * H, (size_t)H * sizeof *out);
    return out;
}

/* docs/rnn.md: forward_lengths equals running each sequence alone, with its own seq_len, through
 * attn_rnn_forward; padded outputs are 0; padded inputs (NaN here) are never read into a state. */
static void check_lengths(attn_rnn *rnn, attn_workspace *ws, int64_t B, int64_t T, const int64_t *lengths,
                          uint64_t seed, const char *ctx)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(rnn, &o));
    const int lstm = o.cell == ATTN_CELL_LSTM;
    const int64_t I = o.input_size, H = o.hidden_size, DH = dirs(&o) * H, units = o.num_layers * dirs(&o);
    const int64_t ns = units * B * H;
    float *x = random_floats(B * T * I, seed, 1.0), *h0 = random_floats(ns, seed + 1, 1.0);
    float *c0 = lstm ? random_floats(ns, seed + 2, 1.0) : NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = lengths[b] * I; i < T * I; i++)
            x[b * T * I + i] = NAN;
    float *y = filled_floats(B * T * DH, NAN), *hn = filled_floats(ns, NAN);
    float *cn = lstm ? filled_floats(ns, NAN) : NULL;
    ASSERT_OK(attn_rnn_forward_lengths(rnn, ws, B, T, lengths, x, h0, c0, y, hn, cn));
    char where[300];
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lengths[b];
        snprintf(where, sizeof where, "%s B=%lld T=%lld: sequence %lld of length %lld", ctx, (long long)B,
                 (long long)T, (long long)b, (long long)len);
        float *h0b = state_rows(h0, units, B, H, b), *c0b = state_rows(c0, units, B, H, b);
        float *ys = filled_floats(len * DH, NAN), *hns = filled_floats(units * H, NAN);
        float *cns = lstm ? filled_floats(units * H, NAN) : NULL;
        ASSERT_OK(attn_rnn_forward(rnn, NULL, 1, len, x + b * T * I, h0b, c0b, ys, hns, cns));
        check_close_f32(where, "y vs the sequence alone", ys, y + b * T * DH, len * DH, TOL);
        if (!all_equal(y + (b * T + len) * DH, (T - len) * DH, 0.0f))
            fail_msg("%s: y beyond the length is not 0", where);
        float *hnb = state_rows(hn, units, B, H, b), *cnb = state_rows(cn, units, B, H, b);
        check_close_f32(where, "h_n vs the sequence alone", hns, hnb, units * H, TOL);
        if (lstm)
            check_close_f32(where, "c_n vs the sequence alone", cns, cnb, units * H, TOL);
        free(h0b), free(c0b), free(ys), free(hns), free(cns), free(hnb), free(cnb);
    }
    free(x), free(h0), free(c0), free(y), free(hn), free(cn);
}

static void test_forward_lengths(void **state)
{
    (void)state;
    static const int64_t lengths[] = {3, 6, 1, 4, 6}; /* unsorted; T = 6 */
    static const int64_t short_lengths[] = {2, 1, 2}; /* every sequence shorter than T = 5 */
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    char ctx[200];
    uint64_t seed = 900;
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++)
            for (int64_t layers = 1; layers <= 2; layers++)
                for (int32_t bidir = 0; bidir <= 1; bidir++) {
                    const rnn_cfg c = grid_cfg(all_cells[ci], tested_recurrences[ri], bidir, 1, layers);
                    cfg_describe(&c, ctx, sizeof ctx);
                    attn_rnn *rnn = make_rnn(&c, seed++);
                    check_lengths(rnn, seed % 2 ? ws : NULL, COUNT_OF(lengths), 6, lengths, seed, ctx);
                    check_lengths(rnn, ws, COUNT_OF(short_lengths), 5, short_lengths, seed + 7, ctx);
                    seed += 10;
                    attn_rnn_destroy(rnn);
                }
    /* B * G * H = 32768: the masked cell updates are shared with the team's helper threads. */
    int64_t many[64];
    for (int b = 0; b < COUNT_OF(many); b++)
        many[b] = 1 + (b * 7) % 5;
    const rnn_cfg c = {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 1, 3, 128, 0};
    cfg_describe(&c, ctx, sizeof ctx);
    attn_rnn *rnn = make_rnn(&c, seed);
    check_lengths(rnn, ws, COUNT_OF(many), 5, many, seed, ctx);
    attn_rnn_destroy(rnn);
    attn_workspace_destroy(ws);
}

/* With every length equal to seq_len, forward_lengths is attn_rnn_forward bit for bit, and uses the
 * workspace attn_rnn_cost reports. */
static void test_forward_lengths_full_is_forward(void **state)
{
    (void)state;
    const int64_t B = 3, T = 7, lengths[] = {7, 7, 7};
    char ctx[200];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++) {
            const rnn_cfg c = grid_cfg(all_cells[ci], tested_recurrences[ri], 1, 1, 2);
            cfg_describe(&c, ctx, sizeof ctx);
            attn_rnn *rnn = make_rnn(&c, 950 + (uint64_t)ci);
            const attn_rnn_options o = cfg_options(&c);
            const int lstm = c.cell == ATTN_CELL_LSTM;
            const int64_t ny = B * T * 2 * c.hidden, ns = 2 * 2 * B * c.hidden;
            float *x = random_floats(B * T * c.input, 960, 1.0), *h0 = random_floats(ns, 961, 1.0);
            float *c0 = lstm ? random_floats(ns, 962, 1.0) : NULL;
            float *y[2], *hn[2], *cn[2];
            attn_workspace *ws = NULL;
            ASSERT_OK(attn_workspace_create(&ws));
            for (int k = 0; k < 2; k++) {
                y[k] = filled_floats(ny, NAN), hn[k] = filled_floats(ns, NAN);
                cn[k] = lstm ? filled_floats(ns, NAN) : NULL;
            }
            ASSERT_OK(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y[0], hn[0], cn[0]));
            ASSERT_OK(attn_rnn_forward_lengths(rnn, ws, B, T, lengths, x, h0, c0, y[1], hn[1], cn[1]));
            if (memcmp(y[0], y[1], (size_t)ny * sizeof *y[0]) || memcmp(hn[0], hn[1], (size_t)ns * sizeof *hn[0]) ||
                (lstm && memcmp(cn[0], cn[1], (size_t)ns * sizeof *cn[0])))
                fail_msg("%s: forward_lengths with every length = seq_len differs from forward", ctx);
            if (attn_workspace_size(ws) != expected_workspace(&o, B, T))
                fail_msg("%s: forward_lengths used %lld workspace bytes, attn_rnn_cost says %lld", ctx,
                         (long long)attn_workspace_size(ws), (long long)expected_workspace(&o, B, T));
            for (int k = 0; k < 2; k++)
                free(y[k]), free(hn[k]), free(cn[k]);
            free(x), free(h0), free(c0);
            attn_workspace_destroy(ws);
            attn_rnn_destroy(rnn);
        }
}

static void test_forward_lengths_errors(void **state)
{
    (void)state;
    const rnn_cfg c = {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0};
    attn_rnn *rnn = make_rnn(&c, 3);
    const int64_t B = 3, T = 4, ny = B * T * 14, ns = 2 * 2 * B * 7;
    float *x = random_floats(B * T * 5, 1, 1.0), *h0 = random_floats(ns, 2, 1.0), *c0 = random_floats(ns, 3, 1.0);
    float *y = filled_floats(ny, -7.5f), *hn = filled_floats(ns, -7.5f), *cn = filled_floats(ns, -7.5f);
    static const char fn[] = "attn_rnn_forward_lengths";
    static const struct {
        const char *what;
        int64_t lengths[3];
        attn_status want;
        const char *value;
    } bad[] = {
        {"a length 0", {4, 0, 2}, ATTN_E_SHAPE, "lengths[1]"},
        {"a negative length", {-1, 4, 2}, ATTN_E_SHAPE, "lengths[0]"},
        {"a length beyond seq_len", {4, 1, 5}, ATTN_E_SHAPE, "lengths[2]"},
        {"a huge length", {4, HUGE_SIZE, 1}, ATTN_E_SHAPE, "lengths[1]"},
    };
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    for (int k = 0; k < COUNT_OF(bad); k++) {
        EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, T, bad[k].lengths, x, h0, c0, y, hn, cn), bad[k].want,
                       fn, "lengths", bad[k].what);
        if (!strstr(attn_last_error(), bad[k].value))
            fail_msg("%s: \"%s\" does not name %s", bad[k].what, attn_last_error(), bad[k].value);
    }
    const int64_t ok[] = {4, 1, 2};
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, T, NULL, x, h0, c0, y, hn, cn), ATTN_E_INVALID_ARG, fn,
                   "lengths", "NULL lengths");
    EXPECT_FAILURE(attn_rnn_forward_lengths(NULL, ws, B, T, ok, x, h0, c0, y, hn, cn), ATTN_E_INVALID_ARG, fn,
                   "rnn", "NULL handle");
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, T, ok, NULL, h0, c0, y, hn, cn), ATTN_E_INVALID_ARG, fn,
                   "x", "NULL x");
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, 0, T, ok, x, h0, c0, y, hn, cn), ATTN_E_SHAPE, fn, "batch",
                   "batch 0");
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, 0, ok, x, h0, c0, y, hn, cn), ATTN_E_SHAPE, fn, "seq_len",
                   "seq_len 0");
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, T, ok, x, h0, c0, y, hn, x), ATTN_E_INVALID_ARG, fn,
                   "c_n|x", "c_n == x");
    if (!all_equal(y, ny, -7.5f) || !all_equal(hn, ns, -7.5f) || !all_equal(cn, ns, -7.5f))
        fail_msg("a failed forward_lengths wrote its outputs");
    if (attn_workspace_size(ws) != 0)
        fail_msg("a failed forward_lengths grew the workspace to %lld bytes", (long long)attn_workspace_size(ws));
    /* An output overlapping lengths (an input too). */
    int64_t *shared = xmalloc((size_t)ns * sizeof(float) + 64);
    memcpy(shared, ok, sizeof ok);
    EXPECT_FAILURE(attn_rnn_forward_lengths(rnn, ws, B, T, shared, x, h0, c0, y, (float *)(void *)shared, cn),
                   ATTN_E_INVALID_ARG, fn, "h_n|lengths", "h_n overlapping lengths");
    free(shared);
    attn_workspace_destroy(ws);
    free(x), free(h0), free(c0), free(y), free(hn), free(cn);
    attn_rnn_destroy(rnn);
}

/* ================================================================================================
 * Error paths
 * ============================================================================================= */

static void test_options_init(void **state)
{
    (void)state;
    attn_rnn_options o;
    memset(&o, 0x5A, sizeof o);
    ASSERT_OK(attn_rnn_options_init(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.cell, ATTN_CELL_LSTM);
    assert_int_equal(o.recurrence, ATTN_RECURRENCE_DENSE);
    assert_int_equal(o.num_layers, 1);
    assert_int_equal(o.bias, 1);
    assert_int_equal(o.bidirectional, 0);
    assert_int_equal(o.input_size, 0);
    assert_int_equal(o.hidden_size, 0);
    assert_int_equal(o.rank, 0);
    assert_int_equal(o.num_factors, 0);
    for (int f = 0; f < ATTN_RNN_MAX_FACTORS; f++)
        assert_int_equal(o.factor_sizes[f], 0);
    for (int f = 0; f < ATTN_RNN_MAX_FACTORS_ALL - ATTN_RNN_MAX_FACTORS; f++)
        assert_int_equal(o.more_factor_sizes[f], 0);
    assert_int_equal(o.flags, 0);
    EXPECT_FAILURE(attn_rnn_options_init(NULL), ATTN_E_INVALID_ARG, "attn_rnn_options_init", "options",
                   "options_init(NULL)");
}

/* Valid options for the create error cases: LSTM, I = 5, H = 7. */
static attn_rnn_options valid_options(void)
{
    const rnn_cfg c = {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 0, 1, 1, 5, 7, 0};
    return cfg_options(&c);
}

/* Calls attn_rnn_create expecting failure, and checks *out is reset to NULL. */
static void expect_create_failure(const void *options, attn_status want, const char *args, const char *what)
{
    attn_rnn *rnn = (attn_rnn *)(uintptr_t)0x1; /* any non-NULL value: create must overwrite it */
    EXPECT_FAILURE(attn_rnn_create(&rnn, options), want, "attn_rnn_create", args, what);
    if (rnn != NULL)
        fail_msg("%s: *out is not NULL after a failed create", what);
}

enum {
    F_CELL,
    F_RECURRENCE,
    F_BIDIRECTIONAL,
    F_BIAS,
    F_INPUT,
    F_HIDDEN,
    F_LAYERS,
    F_RANK,
    F_FLAGS,
    F_STRUCT_SIZE
};

static void set_field(attn_rnn_options *o, int field, int64_t v)
{
    switch (field) {
    case F_CELL: o->cell = (int32_t)v; break;
    case F_RECURRENCE: o->recurrence = (int32_t)v; break;
    case F_BIDIRECTIONAL: o->bidirectional = (int32_t)v; break;
    case F_BIAS: o->bias = (int32_t)v; break;
    case F_INPUT: o->input_size = v; break;
    case F_HIDDEN: o->hidden_size = v; break;
    case F_LAYERS: o->num_layers = v; break;
    case F_RANK: o->recurrence = ATTN_RECURRENCE_LOW_RANK, o->rank = v; break;
    case F_FLAGS: o->flags = (uint32_t)v; break;
    case F_STRUCT_SIZE: o->struct_size = (uint32_t)v; break;
    default: fail_msg("unknown field %d", field);
    }
}

/* KRONECKER options (docs/rnn.md): num_factors in 1..ATTN_RNN_MAX_FACTORS, every used factor >= 1,
 * unused entries 0, product = hidden_size without overflow. The message names the argument and
 * holds the offending value. Valid factorizations, with factors of 1, are accepted. */
static void test_kronecker_create_errors(void)
{
    static const struct {
        const char *what;
        int64_t hidden, num_factors, sizes[ATTN_RNN_MAX_FACTORS_ALL];
        const char *args, *value;
    } cases[] = {
        {"num_factors 0", 24, 0, {2, 3, 4}, "num_factors", "0"},
        {"num_factors -1", 24, -1, {2, 3, 4}, "num_factors", "-1"},
        {"num_factors 33 (too many)", 1, 33, {1}, "num_factors", "33"},
        {"num_factors huge", 24, HUGE_SIZE, {2, 3, 4}, "num_factors", "4611686018427387903"},
        {"a factor 0", 24, 3, {2, 0, 4}, "factor_sizes", "factor_sizes[1]"},
        {"a negative factor", 24, 3, {2, 3, -4}, "factor_sizes", "-4"},
        {"product 30 != hidden_size 24", 24, 3, {2, 3, 5}, "factor_sizes", "30"},
        {"product 12 != hidden_size 24", 24, 2, {3, 4}, "factor_sizes", "hidden_size 24"},
        {"unused entry 1", 24, 3, {2, 3, 4, 1}, "factor_sizes", "factor_sizes[3]"},
        {"unused last entry -1", 24, 3, {2, 3, 4, 0, 0, 0, 0, -1}, "factor_sizes", "factor_sizes[7]"},
        {"product overflows", 24, 3, {(int64_t)1 << 40, (int64_t)1 << 40, 1}, "factor_sizes", "overflows"},
        {"product overflows from INT64_MAX", 24, 2, {INT64_MAX, 2}, "factor_sizes", "overflows"},
        {"unused entries with one factor", 24, 1, {24, 24}, "factor_sizes", "factor_sizes[1]"},
        {"a factor 0 beyond the eighth", 512, 9, {2, 2, 2, 2, 2, 2, 2, 2, 0}, "more_factor_sizes",
         "more_factor_sizes[0]"},
        {"unused entry beyond the eighth", 512, 9, {2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 3}, "more_factor_sizes",
         "more_factor_sizes[3]"},
        {"unused last entry", 6, 2, {2, 3, [ATTN_RNN_MAX_FACTORS_ALL - 1] = 1}, "more_factor_sizes",
         "more_factor_sizes[23]"},
    };
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_rnn_options o = valid_options();
        o.recurrence = ATTN_RECURRENCE_KRONECKER;
        o.hidden_size = cases[k].hidden;
        o.num_factors = cases[k].num_factors;
        ref_rnn_set_factors(&o, ATTN_RNN_MAX_FACTORS_ALL, cases[k].sizes);
        o.num_factors = cases[k].num_factors;
        expect_create_failure(&o, ATTN_E_INVALID_ARG, cases[k].args, cases[k].what);
        if (!strstr(attn_last_error(), cases[k].value))
            fail_msg("%s: \"%s\" does not say %s", cases[k].what, attn_last_error(), cases[k].value);
    }
    static const struct {
        int64_t hidden, num_factors, sizes[ATTN_RNN_MAX_FACTORS_ALL];
    } valid[] = {
        {24, 1, {24}}, {24, 2, {1, 24}}, {24, 3, {2, 3, 4}}, {24, 8, {1, 2, 1, 3, 1, 4, 1, 1}}, {1, 1, {1}},
        {1024, 10, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
        {2, 32, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}},
    };
    for (int k = 0; k < COUNT_OF(valid); k++) {
        attn_rnn_options o = valid_options();
        o.recurrence = ATTN_RECURRENCE_KRONECKER;
        o.hidden_size = valid[k].hidden;
        o.num_factors = valid[k].num_factors;
        ref_rnn_set_factors(&o, ATTN_RNN_MAX_FACTORS_ALL, valid[k].sizes);
        o.num_factors = valid[k].num_factors;
        attn_rnn *rnn = NULL;
        if (attn_rnn_create(&rnn, &o) != ATTN_OK)
            fail_msg("valid factorization %d rejected: %s", k, attn_last_error());
        attn_rnn_destroy(rnn);
    }
}

/* attn_rnn_options grew in libattn 1.2. A program linked against an older libattn calls
 * attn_rnn_options_init@ATTN_1.0 with the smaller struct: that version writes only 1.0's bytes,
 * the library accepts them, and attn_rnn_get_options writes no more than that back. */
static void test_options_of_an_older_program(void **state)
{
    (void)state;
    attn_status (*init_1_0)(attn_rnn_options *);
    void *sym = dlvsym(RTLD_DEFAULT, "attn_rnn_options_init", "ATTN_1.0");
    assert_non_null(sym);
    memcpy(&init_1_0, &sym, sizeof sym);
    const size_t first = offsetof(attn_rnn_options, more_factor_sizes);
    attn_rnn_options o;
    memset(&o, 0xA5, sizeof o);
    ASSERT_OK(init_1_0(&o));
    assert_int_equal(o.struct_size, first);
    assert_int_equal(o.cell, ATTN_CELL_LSTM);
    assert_int_equal(o.num_layers, 1);
    assert_int_equal(o.bias, 1);
    for (size_t b = first; b < sizeof o; b++)
        assert_int_equal(((const unsigned char *)&o)[b], 0xA5);
    o.input_size = 3;
    o.hidden_size = 8;
    o.recurrence = ATTN_RECURRENCE_KRONECKER;
    o.num_factors = 3;
    o.factor_sizes[0] = o.factor_sizes[1] = o.factor_sizes[2] = 2;
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, &o)); /* the 0xA5 tail is not read */
    attn_rnn_options got;
    memset(&got, 0xA5, sizeof got);
    got.struct_size = (uint32_t)first;
    ASSERT_OK(attn_rnn_get_options(rnn, &got));
    assert_int_equal(got.struct_size, first);
    assert_int_equal(got.num_factors, 3);
    for (size_t b = first; b < sizeof got; b++)
        assert_int_equal(((const unsigned char *)&got)[b], 0xA5);
    attn_rnn_destroy(rnn);
}

static void test_create_errors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int field;
        int64_t value;
        attn_status want;
        const char *args;
    } cases[] = {
        {"cell -1", F_CELL, -1, ATTN_E_INVALID_ARG, "cell"},
        {"cell 4", F_CELL, 4, ATTN_E_INVALID_ARG, "cell"},
        {"recurrence -1", F_RECURRENCE, -1, ATTN_E_INVALID_ARG, "recurrence"},
        {"recurrence 3", F_RECURRENCE, 3, ATTN_E_INVALID_ARG, "recurrence"},
        {"bidirectional -1", F_BIDIRECTIONAL, -1, ATTN_E_INVALID_ARG, "bidirectional"},
        {"bidirectional 2", F_BIDIRECTIONAL, 2, ATTN_E_INVALID_ARG, "bidirectional"},
        {"bias -1", F_BIAS, -1, ATTN_E_INVALID_ARG, "bias"},
        {"bias 2", F_BIAS, 2, ATTN_E_INVALID_ARG, "bias"},
        {"input_size 0", F_INPUT, 0, ATTN_E_INVALID_ARG, "input_size"},
        {"input_size -1", F_INPUT, -1, ATTN_E_INVALID_ARG, "input_size"},
        {"input_size huge", F_INPUT, HUGE_SIZE, ANY_ERROR, "input_size"},
        {"hidden_size 0", F_HIDDEN, 0, ATTN_E_INVALID_ARG, "hidden_size"},
        {"hidden_size -7", F_HIDDEN, -7, ATTN_E_INVALID_ARG, "hidden_size"},
        {"hidden_size huge", F_HIDDEN, HUGE_SIZE, ANY_ERROR, "hidden_size"},
        {"num_layers 0", F_LAYERS, 0, ATTN_E_INVALID_ARG, "num_layers"},
        {"num_layers -1", F_LAYERS, -1, ATTN_E_INVALID_ARG, "num_layers"},
        {"num_layers huge", F_LAYERS, HUGE_SIZE, ANY_ERROR, "num_layers"},
        {"LOW_RANK rank 0", F_RANK, 0, ATTN_E_INVALID_ARG, "rank"},
        {"LOW_RANK rank -1", F_RANK, -1, ATTN_E_INVALID_ARG, "rank"},
        {"LOW_RANK rank H+1", F_RANK, 8, ATTN_E_INVALID_ARG, "rank"},
        {"LOW_RANK rank huge", F_RANK, HUGE_SIZE, ATTN_E_INVALID_ARG, "rank"},
        {"flags 1", F_FLAGS, 1, ATTN_E_INVALID_ARG, "flags"},
        {"flags 0x80000000", F_FLAGS, 0x80000000u, ATTN_E_INVALID_ARG, "flags"},
        {"struct_size 0", F_STRUCT_SIZE, 0, ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size 4", F_STRUCT_SIZE, 4, ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size of 1.0 - 1", F_STRUCT_SIZE, (int64_t)offsetof(attn_rnn_options, more_factor_sizes) - 1,
         ATTN_E_INVALID_ARG, "struct_size"},
        {"struct_size offsetof(flags)", F_STRUCT_SIZE, (int64_t)offsetof(attn_rnn_options, flags),
         ATTN_E_INVALID_ARG, "struct_size"},
    };
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_rnn_options o = valid_options();
        set_field(&o, cases[k].field, cases[k].value);
        expect_create_failure(&o, cases[k].want, cases[k].args, cases[k].what);
    }

    attn_rnn_options o = valid_options();
    EXPECT_FAILURE(attn_rnn_create(NULL, &o), ATTN_E_INVALID_ARG, "attn_rnn_create", "out", "create(NULL, o)");
    expect_create_failure(NULL, ATTN_E_INVALID_ARG, "options", "create(&out, NULL)");

    /* A newer caller's bigger struct: zero extra bytes are fine, a set one asks for something
     * this library does not know. */
    const size_t big = sizeof o + 24;
    unsigned char *buf = grown_options(&o, sizeof o, big);
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, (const attn_rnn_options *)(const void *)buf));
    attn_rnn_options got;
    ASSERT_OK(attn_rnn_options_init(&got));
    ASSERT_OK(attn_rnn_get_options(rnn, &got));
    assert_int_equal(got.struct_size, sizeof got);
    assert_int_equal(got.hidden_size, 7);
    attn_rnn_destroy(rnn);
    for (size_t at = sizeof o; at < big; at += 11) {
        char what[64];
        snprintf(what, sizeof what, "struct_size %zu with byte %zu set", big, at);
        buf[at] = 1;
        expect_create_failure(buf, ATTN_E_UNSUPPORTED, "struct_size", what);
        buf[at] = 0;
    }
    free(buf);

    test_kronecker_create_errors();
}

enum { H_LSTM, H_GRU, H_ELMAN, H_NULL, H_KINDS };
enum { P_X = 1, P_Y = 2, P_H0 = 4, P_C0 = 8, P_HN = 16, P_CN = 32 };

static void test_forward_errors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int handle;
        int64_t batch, seq_len;
        int pointers;
        attn_status want;
        const char *args;
    } cases[] = {
        {"NULL handle", H_NULL, 2, 3, P_X | P_Y, ATTN_E_INVALID_ARG, "rnn|handle"},
        {"NULL x", H_LSTM, 2, 3, P_Y | P_H0 | P_HN, ATTN_E_INVALID_ARG, "x"},
        {"NULL y", H_LSTM, 2, 3, P_X | P_H0 | P_HN, ATTN_E_INVALID_ARG, "y"},
        {"batch 0", H_LSTM, 0, 3, P_X | P_Y | P_HN | P_CN, ATTN_E_SHAPE, "batch"},
        {"batch -1", H_GRU, -1, 3, P_X | P_Y | P_HN, ATTN_E_SHAPE, "batch"},
        {"seq_len 0", H_LSTM, 2, 0, P_X | P_Y | P_HN | P_CN, ATTN_E_SHAPE, "seq_len"},
        {"seq_len -5", H_ELMAN, 2, -5, P_X | P_Y | P_HN, ATTN_E_SHAPE, "seq_len"},
        {"c0 for GRU", H_GRU, 2, 3, P_X | P_Y | P_C0 | P_HN, ATTN_E_INVALID_ARG, "c0"},
        {"c_n for GRU", H_GRU, 2, 3, P_X | P_Y | P_HN | P_CN, ATTN_E_INVALID_ARG, "c_n"},
        {"c0 for Elman", H_ELMAN, 2, 3, P_X | P_Y | P_H0 | P_C0, ATTN_E_INVALID_ARG, "c0"},
        {"c_n for Elman", H_ELMAN, 2, 3, P_X | P_Y | P_CN, ATTN_E_INVALID_ARG, "c_n"},
        {"huge batch", H_LSTM, HUGE_SIZE, 3, P_X | P_Y | P_HN | P_CN, ATTN_E_SHAPE, "batch"},
        {"huge seq_len", H_GRU, 2, HUGE_SIZE, P_X | P_Y | P_HN, ATTN_E_SHAPE, "seq_len"},
        {"batch beyond int32", H_ELMAN, (int64_t)1 << 31, 1, P_X | P_Y, ATTN_E_SHAPE, "batch"},
        {"batch*seq_len beyond int32", H_LSTM, (int64_t)1 << 20, (int64_t)1 << 20, P_X | P_Y, ATTN_E_SHAPE,
         "batch|seq_len"},
        {"huge batch and seq_len", H_LSTM, HUGE_SIZE, HUGE_SIZE, P_X | P_Y, ATTN_E_SHAPE, "batch|seq_len"},
    };
    const int64_t B = 2, T = 3, I = 5, H = 7, L = 2; /* buffers sized for these; huge cases must not touch them */
    attn_rnn *handles[H_KINDS] = {NULL};
    static const int32_t kind_cell[] = {ATTN_CELL_LSTM, ATTN_CELL_GRU, ATTN_CELL_RNN_TANH};
    for (int k = 0; k < H_NULL; k++) {
        const rnn_cfg c = {kind_cell[k], ATTN_RECURRENCE_DENSE, 1, 1, L, I, H, 0};
        handles[k] = make_rnn(&c, 3);
    }
    const int64_t ny = B * T * 2 * H, ns = L * 2 * B * H;
    float *x = random_floats(B * T * I, 1, 1.0), *h0 = random_floats(ns, 2, 1.0), *c0 = random_floats(ns, 3, 1.0);
    float *y = filled_floats(ny, -7.5f), *hn = filled_floats(ns, -7.5f), *cn = filled_floats(ns, -7.5f);
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    for (int k = 0; k < COUNT_OF(cases); k++) {
        const int p = cases[k].pointers;
        EXPECT_FAILURE(attn_rnn_forward(handles[cases[k].handle], ws, cases[k].batch, cases[k].seq_len,
                                        p & P_X ? x : NULL, p & P_H0 ? h0 : NULL, p & P_C0 ? c0 : NULL,
                                        p & P_Y ? y : NULL, p & P_HN ? hn : NULL, p & P_CN ? cn : NULL),
                       cases[k].want, "attn_rnn_forward", cases[k].args, cases[k].what);
        if (!all_equal(y, ny, -7.5f) || !all_equal(hn, ns, -7.5f) || !all_equal(cn, ns, -7.5f))
            fail_msg("%s: a failed forward wrote its outputs", cases[k].what);
        /* Validation comes before any allocation. */
        if (attn_workspace_size(ws) != 0)
            fail_msg("%s: a failed forward grew the workspace to %lld bytes", cases[k].what,
                     (long long)attn_workspace_size(ws));
    }
    attn_workspace_destroy(ws);
    free(x), free(h0), free(c0), free(y), free(hn), free(cn);
    for (int k = 0; k < H_NULL; k++)
        attn_rnn_destroy(handles[k]);
}

/* NULL arguments of recurrent_matrix, cost, get_options and params; destroy(NULL). Range errors
 * of recurrent_matrix are in test_recurrent_matrix. */
static void test_other_errors(void **state)
{
    (void)state;
    const rnn_cfg c = {ATTN_CELL_GRU, ATTN_RECURRENCE_LOW_RANK, 0, 1, 1, 5, 7, 3};
    attn_rnn *rnn = make_rnn(&c, 1);
    float out[3 * 7 * 7];
    EXPECT_FAILURE(attn_rnn_recurrent_matrix(NULL, 0, 0, out), ATTN_E_INVALID_ARG, "attn_rnn_recurrent_matrix",
                   "rnn|handle", "recurrent_matrix(NULL handle)");
    EXPECT_FAILURE(attn_rnn_recurrent_matrix(rnn, 0, 0, NULL), ATTN_E_INVALID_ARG, "attn_rnn_recurrent_matrix",
                   "out", "recurrent_matrix(NULL out)");

    static const struct {
        const char *what;
        int null_handle, null_out;
        int64_t batch, seq_len;
        attn_status want;
        const char *args;
    } cost_cases[] = {
        {"NULL handle", 1, 0, 2, 3, ATTN_E_INVALID_ARG, "rnn|handle"},
        {"NULL out", 0, 1, 2, 3, ATTN_E_INVALID_ARG, "out"},
        {"batch 0", 0, 0, 0, 3, ATTN_E_SHAPE, "batch"},
        {"batch -2", 0, 0, -2, 3, ATTN_E_SHAPE, "batch"},
        {"seq_len 0", 0, 0, 2, 0, ATTN_E_SHAPE, "seq_len"},
        {"seq_len -1", 0, 0, 2, -1, ATTN_E_SHAPE, "seq_len"},
        {"huge batch", 0, 0, HUGE_SIZE, 3, ANY_ERROR, "batch"},
        {"huge seq_len", 0, 0, 2, HUGE_SIZE, ANY_ERROR, "seq_len"},
        {"huge batch and seq_len", 0, 0, HUGE_SIZE, HUGE_SIZE, ANY_ERROR, "batch|seq_len"},
    };
    for (int k = 0; k < COUNT_OF(cost_cases); k++) {
        attn_cost cost, before;
        memset(&cost, 0x5A, sizeof cost);
        before = cost;
        EXPECT_FAILURE(attn_rnn_cost(cost_cases[k].null_handle ? NULL : rnn, cost_cases[k].batch,
                                     cost_cases[k].seq_len, cost_cases[k].null_out ? NULL : &cost),
                       cost_cases[k].want, "attn_rnn_cost", cost_cases[k].args, cost_cases[k].what);
        if (memcmp(&cost, &before, sizeof cost) != 0)
            fail_msg("cost %s: a failed call wrote its output", cost_cases[k].what);
    }

    attn_rnn_options o;
    EXPECT_FAILURE(attn_rnn_get_options(NULL, &o), ATTN_E_INVALID_ARG, "attn_rnn_get_options", "rnn|handle",
                   "get_options(NULL handle)");
    EXPECT_FAILURE(attn_rnn_get_options(rnn, NULL), ATTN_E_INVALID_ARG, "attn_rnn_get_options", "out",
                   "get_options(NULL out)");
    assert_null(attn_rnn_params(NULL));
    attn_rnn_destroy(NULL);
    attn_rnn_destroy(rnn);
}

static void test_status_strings(void **state)
{
    (void)state;
    static const attn_status codes[] = {
        ATTN_OK,          ATTN_E_INVALID_ARG, ATTN_E_SHAPE,  ATTN_E_NOMEM,     ATTN_E_UNSUPPORTED,
        ATTN_E_NOT_FOUND, ATTN_E_IO,          ATTN_E_FORMAT, ATTN_E_NUMERICAL, ATTN_E_INTERNAL};
    for (int i = 0; i < COUNT_OF(codes); i++) {
        const char *a = attn_status_str(codes[i]);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        for (int j = 0; j < i; j++)
            if (strcmp(a, attn_status_str(codes[j])) == 0)
                fail_msg("attn_status_str(%d) and attn_status_str(%d) are both \"%s\"", codes[i], codes[j], a);
    }
    static const attn_status unknown[] = {1, -10, 1000, INT32_MIN, INT32_MAX};
    for (int i = 0; i < COUNT_OF(unknown); i++)
        assert_non_null(attn_status_str(unknown[i]));
    assert_non_null(attn_last_error());
}

/* ================================================================================================
 * Threads: forward on one const handle from two threads, each with its own workspace
 * ============================================================================================= */

/* Forward calls per thread. Checked against a library whose per-step gate buffer was made static
 * (shared by all calls): with these sizes every one of 20 runs failed; runtime stays well under 1 s. */
#define THREAD_ITERATIONS 50

typedef struct thread_job {
    const attn_rnn *rnn;
    int64_t batch, seq_len, ny, ns;
    const float *x, *h0, *c0;             /* shared inputs */
    const float *y_ref, *hn_ref, *cn_ref; /* single-threaded results */
    int bad_call;                         /* which failing call checks the thread-local message */
    int iterations;
    thread_counts counts; /* its barrier makes both threads begin together, so that their calls overlap */
} thread_job;

static int same_floats(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    /* attn_last_error is per thread: a new thread starts with an empty message. */
    job->counts.fresh_error_not_empty = attn_last_error()[0] != '\0';
    attn_workspace *ws = NULL;
    float *y = malloc((size_t)job->ny * sizeof *y), *hn = malloc((size_t)job->ns * sizeof *hn);
    float *cn = job->c0 ? malloc((size_t)job->ns * sizeof *cn) : NULL;
    const int ready = attn_workspace_create(&ws) == ATTN_OK && y && hn && (!job->c0 || cn);
    pthread_barrier_wait(job->counts.start);
    if (!ready) {
        job->counts.forward_failures = -1;
    } else {
        for (int it = 0; it < job->iterations; it++) {
            if (attn_rnn_forward(job->rnn, ws, job->batch, job->seq_len, job->x, job->h0, job->c0, y, hn, cn) !=
                ATTN_OK) {
                job->counts.forward_failures++;
                continue;
            }
            /* Same code path and same BLAS calls on the same data: the results are identical. */
            if (!same_floats(y, job->y_ref, job->ny) || !same_floats(hn, job->hn_ref, job->ns) ||
                (cn && !same_floats(cn, job->cn_ref, job->ns)))
                job->counts.mismatches++;
            /* Interleave failing calls so that the other thread's messages would show up here if
             * the message were not thread-local. */
            const int64_t b = job->bad_call ? 2 : 0, t = job->bad_call ? 0 : 3;
            attn_rnn_forward(job->rnn, NULL, b, t, job->x, NULL, NULL, y, NULL, NULL);
            const char *msg = attn_last_error();
            if (!has_word(msg, job->bad_call ? "seq_len" : "batch"))
                job->counts.message_wrong++;
        }
    }
    attn_workspace_destroy(ws);
    free(y), free(hn), free(cn);
    return NULL;
}

/* Inputs and single-threaded results of one thread; freed by free_thread_data. */
static void thread_data(thread_job *job, attn_rnn *rnn, int lstm, const char *ctx, uint64_t seed)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o)); /* get_options reads struct_size */
    ASSERT_OK(attn_rnn_get_options(rnn, &o));
    const int64_t nx = job->batch * job->seq_len * o.input_size;
    float *x = random_floats(nx, seed, 1.0), *h0 = random_floats(job->ns, seed + 1, 1.0);
    float *c0 = lstm ? random_floats(job->ns, seed + 2, 1.0) : NULL;
    float *y = filled_floats(job->ny, NAN), *hn = filled_floats(job->ns, NAN);
    float *cn = lstm ? filled_floats(job->ns, NAN) : NULL;
    ASSERT_OK(attn_rnn_forward(rnn, NULL, job->batch, job->seq_len, x, h0, c0, y, hn, cn));
    double *ry = xmalloc((size_t)job->ny * sizeof *ry), *rh = xmalloc((size_t)job->ns * sizeof *rh);
    double *rc = xmalloc((size_t)job->ns * sizeof *rc);
    assert_int_equal(ref_rnn_forward(rnn, job->batch, job->seq_len, x, h0, c0, ry, rh, rc), 0);
    check_close(ctx, "single-threaded y", ry, y, job->ny);
    free(ry), free(rh), free(rc);
    job->x = x, job->h0 = h0, job->c0 = c0, job->y_ref = y, job->hn_ref = hn, job->cn_ref = cn;
}

static void free_thread_data(thread_job *job)
{
    free((void *)job->x), free((void *)job->h0), free((void *)job->c0);
    free((void *)job->y_ref), free((void *)job->hn_ref), free((void *)job->cn_ref);
}

/* Each thread has its own input: threads computing the same data would hide a shared buffer,
 * since both would write the same values into it. */
static void test_threads(void **state)
{
    (void)state;
    static const rnn_cfg cfgs[] = {
        {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 2, 16, 32, 0},
        {ATTN_CELL_GRU, ATTN_RECURRENCE_LOW_RANK, 1, 1, 2, 16, 32, 8},
        {ATTN_CELL_LSTM, ATTN_RECURRENCE_KRONECKER, 1, 1, 2, 16, 32, 0}, /* 2 x 2 x 2 x 2 x 2 */
    };
    const int64_t B = 32, T = 4; /* a wide batch widens the window in which a shared buffer would be overwritten */
    char ctx[200];
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        const rnn_cfg *c = &cfgs[k];
        cfg_describe(c, ctx, sizeof ctx);
        attn_rnn *rnn = make_rnn(c, 31 + (uint64_t)k);
        const int64_t ny = B * T * 2 * c->hidden, ns = c->layers * 2 * B * c->hidden;
        thread_job jobs[2];
        for (int t = 0; t < 2; t++) {
            jobs[t] = (thread_job){.rnn = rnn,
                                   .batch = B,
                                   .seq_len = T,
                                   .ny = ny,
                                   .ns = ns,
                                   .bad_call = t,
                                   .iterations = THREAD_ITERATIONS};
            thread_data(&jobs[t], rnn, c->cell == ATTN_CELL_LSTM, ctx, 7 + 10 * (uint64_t)t);
        }
        /* This thread's own message must survive the other threads' failures. */
        float out[4 * 32 * 32];
        EXPECT_FAILURE(attn_rnn_recurrent_matrix(rnn, -1, 0, out), ATTN_E_INVALID_ARG, "attn_rnn_recurrent_matrix",
                       "layer", "main thread's error");
        run_thread_pair(thread_main, (void *[]){&jobs[0], &jobs[1]},
                        (thread_counts *[]){&jobs[0].counts, &jobs[1].counts}, ctx);
        if (!has_word(attn_last_error(), "layer"))
            fail_msg("%s: the main thread's error message changed to \"%s\"", ctx, attn_last_error());
        for (int t = 0; t < 2; t++)
            free_thread_data(&jobs[t]);
        attn_rnn_destroy(rnn);
    }
}

/* ================================================================================================
 * Execution paths, size limits and aliasing
 * ============================================================================================= */

/* rnn.c shares a step's cell updates with helper threads once B * G * H >= 32768: each cell just
 * below and at that size (LOW_RANK too, bidirectional), against the reference, so
 * that a wrong row offset on the shared path shows. */
static void test_team_path_sizes(void **state)
{
    (void)state;
    static const struct {
        int32_t cell;
        int64_t hidden, batch_off, batch_on; /* B * G * H < 32768 at batch_off, >= at batch_on */
    } sizes[] = {
        {ATTN_CELL_RNN_TANH, 256, 127, 128},
        {ATTN_CELL_RNN_RELU, 128, 255, 256},
        {ATTN_CELL_LSTM, 128, 63, 64},
        {ATTN_CELL_GRU, 128, 85, 86},
    };
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    char ctx[200];
    for (int k = 0; k < COUNT_OF(sizes); k++)
        for (int ri = 0; ri < COUNT_OF(tested_recurrences); ri++) {
            const rnn_cfg c = {sizes[k].cell, tested_recurrences[ri], 1, 1, 1, 3, sizes[k].hidden, 16};
            attn_rnn *rnn = make_rnn(&c, 40 + (uint64_t)k);
            cfg_describe(&c, ctx, sizeof ctx);
            const int lstm = c.cell == ATTN_CELL_LSTM;
            for (int on = 0; on <= 1; on++) {
                const fwd_case fc = {on ? sizes[k].batch_on : sizes[k].batch_off, 3, 1, lstm, 1, lstm};
                check_forward(rnn, on ? ws : NULL, &fc, 70 + (uint64_t)k, ctx);
            }
            attn_rnn_destroy(rnn);
        }
    attn_workspace_destroy(ws);
}

/* Inputs and initial states of +-1000 drive every gate deep into saturation (exp overflows or
 * underflows inside sigmoid and tanh); the kernels' clamps must keep the states exact. */
static void test_extreme_inputs(void **state)
{
    (void)state;
    char ctx[200];
    for (int ci = 0; ci < COUNT_OF(all_cells); ci++) {
        if (all_cells[ci] == ATTN_CELL_RNN_RELU)
            continue; /* relu does not saturate: states grow to 1e6 and float32 rounding with them */
        const rnn_cfg c = {all_cells[ci], ATTN_RECURRENCE_DENSE, 1, 1, 2, 5, 7, 0};
        attn_rnn *rnn = make_rnn(&c, 80 + (uint64_t)ci);
        cfg_describe(&c, ctx, sizeof ctx);
        const int64_t B = 3, T = 6, nx = B * T * 5, ns = 2 * 2 * B * 7;
        float *x = random_floats(nx, 81, 1000.0), *h0 = random_floats(ns, 82, 1000.0);
        float *c0 = c.cell == ATTN_CELL_LSTM ? random_floats(ns, 83, 1000.0) : NULL;
        float *y = filled_floats(B * T * 14, NAN);
        double *ry = new_doubles(B * T * 14), *rh = new_doubles(ns), *rc = new_doubles(ns);
        ASSERT_OK(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y, NULL, NULL));
        assert_int_equal(ref_rnn_forward(rnn, B, T, x, h0, c0, ry, rh, rc), 0);
        check_close(ctx, "y with inputs of +-1000", ry, y, B * T * 14);
        free(x), free(h0), free(c0), free(y), free(ry), free(rh), free(rc);
        attn_rnn_destroy(rnn);
    }
}

/* forward and cost accept and reject exactly the same shapes (issue: a shape whose FLOP count
 * cost rejected ran in forward with an overflowed workspace). On a grid of extreme sizes, forward
 * is called with NULL tensors: where cost fails it must fail the same way, before looking at a
 * pointer; where cost succeeds it must get as far as the NULL x. Nothing is allocated. */
static void test_cost_and_forward_agree(void **state)
{
    (void)state;
    static const rnn_cfg cfgs[] = {
        {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 3, 5, 7, 0},
        {ATTN_CELL_GRU, ATTN_RECURRENCE_LOW_RANK, 0, 1, 1, 1, (int64_t)1 << 20, 1},
        {ATTN_CELL_RNN_TANH, ATTN_RECURRENCE_DENSE, 1, 0, 1024, 1, 1, 0},
        /* factors 2^10 x 2^10: its GEMMs have B * H rows, so batch is bounded by INT32_MAX / H. */
        {ATTN_CELL_GRU, ATTN_RECURRENCE_KRONECKER, 0, 1, 1, 1, (int64_t)1 << 20, 0},
    };
    static const int64_t sizes[] = {1, 7, 1 << 20, INT32_MAX / 8, INT32_MAX, (int64_t)1 << 31, (int64_t)1 << 40,
                                    INT64_MAX / 2, INT64_MAX};
    char what[300];
    int rejected = 0, accepted = 0;
    for (int k = 0; k < COUNT_OF(cfgs); k++) {
        attn_rnn_options o = cfg_options(&cfgs[k]);
        attn_rnn *rnn = NULL;
        if (attn_rnn_create(&rnn, &o) != ATTN_OK)
            fail_msg("config %d: %s", k, attn_last_error());
        for (int bi = 0; bi < COUNT_OF(sizes); bi++)
            for (int ti = 0; ti < COUNT_OF(sizes); ti++) {
                const int64_t B = sizes[bi], T = sizes[ti];
                cfg_describe(&cfgs[k], what, sizeof what);
                snprintf(what + strlen(what), sizeof what - strlen(what), " B=%lld T=%lld", (long long)B,
                         (long long)T);
                attn_cost cost;
                const attn_status sc = attn_rnn_cost(rnn, B, T, &cost);
                char cost_msg[512];
                snprintf(cost_msg, sizeof cost_msg, "%s", attn_last_error());
                const attn_status sf = attn_rnn_forward(rnn, NULL, B, T, NULL, NULL, NULL, NULL, NULL, NULL);
                if (sc != ATTN_OK) {
                    rejected++;
                    const char *a = strchr(cost_msg, ':'), *b = strchr(attn_last_error(), ':');
                    if (sf != sc || !a || !b || strcmp(a, b) != 0)
                        fail_msg("%s: cost says %d \"%s\", forward %d \"%s\"", what, sc, cost_msg, sf,
                                 attn_last_error());
                } else {
                    accepted++;
                    if (cost.workspace_bytes < 0 || cost.flops < 0)
                        fail_msg("%s: cost accepted with workspace %lld and flops %lld", what,
                                 (long long)cost.workspace_bytes, (long long)cost.flops);
                    EXPECT_FAILURE(sf, ATTN_E_INVALID_ARG, "attn_rnn_forward", "x", what);
                }
            }
        attn_rnn_destroy(rnn);
    }
    assert_true(rejected > 0 && accepted > 0);
}

/* docs/abi.md: an output may overlap no input and no other output; ranges are compared, not
 * only pointers. In place, a bidirectional layer's reverse direction would read what the forward
 * direction already wrote (it gave wrong results before this was rejected). Inputs may overlap. */
static void test_aliasing(void **state)
{
    (void)state;
    const rnn_cfg c = {ATTN_CELL_LSTM, ATTN_RECURRENCE_DENSE, 1, 1, 1, 8, 4, 0}; /* I = D * H = 8 */
    attn_rnn *rnn = make_rnn(&c, 5);
    const int64_t B = 2, T = 3, nx = B * T * 8, ns = 2 * B * 4;
    float *x = random_floats(2 * nx, 1, 1.0), *y = filled_floats(nx + 16, -7.5f);
    float *h0 = random_floats(ns, 2, 1.0), *c0 = random_floats(ns, 3, 1.0);
    float *hn = filled_floats(2 * ns, -7.5f), *cn = filled_floats(ns, -7.5f);
    static const char fn[] = "attn_rnn_forward";
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, x, hn, cn), ATTN_E_INVALID_ARG, fn, "y", "y == x");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, x + nx - 1, hn, cn), ATTN_E_INVALID_ARG, fn, "y",
                   "y overlapping the last float of x");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x + 5, h0, c0, x, hn, cn), ATTN_E_INVALID_ARG, fn, "y",
                   "y overlapping the start of x");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y, h0 + 1, cn), ATTN_E_INVALID_ARG, fn, "h_n",
                   "h_n overlapping h0");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y, hn, hn + ns - 1), ATTN_E_INVALID_ARG, fn,
                   "c_n|h_n", "c_n overlapping h_n");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y, y + 3, cn), ATTN_E_INVALID_ARG, fn, "h_n|y",
                   "h_n inside y");
    EXPECT_FAILURE(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, y, hn, c0), ATTN_E_INVALID_ARG, fn, "c_n|c0",
                   "c_n == c0");
    if (!all_equal(y, nx + 16, -7.5f) || !all_equal(hn, 2 * ns, -7.5f) || !all_equal(cn, ns, -7.5f))
        fail_msg("a rejected call wrote an output");
    /* Adjacent, not overlapping: fine; so are inputs sharing memory (h0 == c0). */
    ASSERT_OK(attn_rnn_forward(rnn, NULL, B, T, x, h0, c0, x + nx, NULL, NULL));
    ASSERT_OK(attn_rnn_forward(rnn, NULL, B, T, x, h0, h0, y, hn, hn + ns));
    free(x), free(y), free(h0), free(c0), free(hn), free(cn);
    attn_rnn_destroy(rnn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_options_of_an_older_program),
        cmocka_unit_test(test_forward_errors),
        cmocka_unit_test(test_other_errors),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_params_init),
        /* One entry per cell, named after it, so a failure report says which cell broke. */
        {"test_forward_matches_reference_RNN_TANH", test_forward_matches_reference, NULL, NULL,
         (void *)&all_cells[0]},
        {"test_forward_matches_reference_RNN_RELU", test_forward_matches_reference, NULL, NULL,
         (void *)&all_cells[1]},
        {"test_forward_matches_reference_LSTM", test_forward_matches_reference, NULL, NULL, (void *)&all_cells[2]},
        {"test_forward_matches_reference_GRU", test_forward_matches_reference, NULL, NULL, (void *)&all_cells[3]},
        cmocka_unit_test(test_forward_lengths),
        cmocka_unit_test(test_forward_lengths_full_is_forward),
        cmocka_unit_test(test_forward_lengths_errors),
        cmocka_unit_test(test_low_rank_full_rank_equals_dense),
        cmocka_unit_test(test_kronecker_equals_dense),
        cmocka_unit_test(test_kronecker_init),
        cmocka_unit_test(test_recurrent_matrix),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_workspace_reuse),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_team_path_sizes),
        cmocka_unit_test(test_extreme_inputs),
        cmocka_unit_test(test_cost_and_forward_agree),
        cmocka_unit_test(test_aliasing),
    };
    return cmocka_run_group_tests_name("rnn", tests, NULL, NULL);
}
