/*
 * test_numerics.c: what every family does with bad values, and with sizes far beyond memory.
 *
 * Bad values (the table of docs/reliability.md):
 *  - NaN/Inf weights never enter a handle: attn_params_set rejects them (ATTN_E_NUMERICAL) and
 *    leaves the tensor as it was; finite but huge weights (FLT_MAX) run to completion.
 *  - NaN/Inf inputs propagate (RNN, memory RNN, every attention kind, Perceiver), within the batch
 *    element and the rows the equations connect to them, never into other batch elements; Nystrom
 *    with the SVD pseudo-inverse, whose LAPACK call cannot take a NaN, answers ATTN_E_NUMERICAL
 *    naming the function and writes nothing; the analysis functions answer ATTN_E_NUMERICAL.
 *  - Extreme but finite scores (+-1e30 and up to ~FLT_MAX, from identity projections of inputs on a
 *    circle, so that each query's best key is known) give finite outputs equal to the best key's
 *    value for FULL (materialized, streaming across key tiles), LINFORMER (identity projections)
 *    and NYSTROM (Newton and SVD; m = L = S), and finite outputs for the Perceiver's attentions
 *    and the memory RNN's content addressing (key strength beta up to 1e30).
 *  - The memory RNN's cosine similarity and sharpening stay finite on zero memory rows with a zero
 *    key, whatever the key strength and sharpening exponent.
 *
 * Sizes: creates whose weights would hold 2^40 floats, forwards whose inputs, outputs or workspace
 * would hold 2^40 elements (and batch x seq = 2^80, beyond int64), costs of those shapes, attn_params
 * calls with huge counts and analysis of 2^40-element matrices: each must fail with
 * ATTN_E_SHAPE, ATTN_E_INVALID_ARG or ATTN_E_NOMEM, naming the function, before allocating. The
 * proof (see alloc_guard below): the test binary interposes the allocator and records, while a call
 * runs, the largest block anyone asked for; it must stay small, so no huge block was even tried. The
 * sanitizer builds, whose runtimes own malloc, check statuses only (their allocators would return
 * NULL for such requests: tests/numerics.cmake sets allocator_may_return_null=1).
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <float.h>
#include <stdatomic.h>

/* ================================================================================================
 * Allocation guard: the largest request while armed (plain builds only)
 * ============================================================================================= */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_GUARD 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALLOC_GUARD 0
#endif
#endif
#if !defined(ALLOC_GUARD) && defined(__GLIBC__)
#define ALLOC_GUARD 1
#endif
#ifndef ALLOC_GUARD
#define ALLOC_GUARD 0
#endif

#if ALLOC_GUARD
/* glibc's own entry points, which its public malloc family forwards to. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static _Atomic int guard_armed;
static _Atomic size_t guard_largest;

/* Records a request; while armed, refuses anything beyond 1 GiB so that a huge request cannot
 * succeed through overcommit on any machine (the library must then say ATTN_E_NOMEM). */
static int guard_note(size_t bytes)
{
    if (!atomic_load(&guard_armed))
        return 1;
    size_t seen = atomic_load(&guard_largest);
    while (bytes > seen && !atomic_compare_exchange_weak(&guard_largest, &seen, bytes))
        ;
    return bytes <= ((size_t)1 << 30);
}

void *malloc(size_t n) { return guard_note(n) ? __libc_malloc(n) : NULL; }
void *calloc(size_t n, size_t m) { return guard_note(m && n > SIZE_MAX / m ? SIZE_MAX : n * m) ? __libc_calloc(n, m) : NULL; }
void *realloc(void *p, size_t n) { return guard_note(n) ? __libc_realloc(p, n) : NULL; }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t a, size_t n) { return guard_note(n) ? __libc_memalign(a, n) : NULL; }
void *memalign(size_t a, size_t n) { return guard_note(n) ? __libc_memalign(a, n) : NULL; }
int posix_memalign(void **out, size_t a, size_t n)
{
    if (!guard_note(n))
        return 12; /* ENOMEM */
    void *p = __libc_memalign(a, n);
    if (!p)
        return 12;
    *out = p;
    return 0;
}

static void guard_arm(void)
{
    atomic_store(&guard_largest, 0);
    atomic_store(&guard_armed, 1);
}
static size_t guard_disarm(void)
{
    atomic_store(&guard_armed, 0);
    return atomic_load(&guard_largest);
}
#else
static void guard_arm(void) {}
static size_t guard_disarm(void) { return 0; }
#endif

/* Largest block a failing size check may ask for (error text, a workspace struct, BLAS's own
 * bookkeeping): far below any of the sizes tried here. */
#define SMALL_BLOCK ((size_t)1 << 20)

/* ================================================================================================
 * Helpers
 * ============================================================================================= */

static int all_finite(const float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

static int all_nonfinite(const float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (isfinite(a[i]))
            return 0;
    return 1;
}

static int all_nan(const float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isnan(a[i]))
            return 0;
    return 1;
}

static void set_tensor(attn_params *p, const char *name, const float *data)
{
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, name, &info));
    ASSERT_OK(attn_params_set(p, name, data, info.count));
}

/* Sets tensor `name` to v at every element (or only elements [first, end) when end > 0). */
static void fill_tensor(attn_params *p, const char *name, float v, int64_t first, int64_t end)
{
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, name, &info));
    float *a = xmalloc((size_t)info.count * sizeof *a);
    ASSERT_OK(attn_params_get(p, name, a, info.count));
    if (end <= 0)
        first = 0, end = info.count;
    for (int64_t i = first; i < end; i++)
        a[i] = v;
    ASSERT_OK(attn_params_set(p, name, a, info.count));
    free(a);
}

/* Multiplies elements [first, end) of tensor `name` (end <= 0: all) by gain. */
static void scale_tensor(attn_params *p, const char *name, float gain, int64_t first, int64_t end)
{
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, name, &info));
    float *a = xmalloc((size_t)info.count * sizeof *a);
    ASSERT_OK(attn_params_get(p, name, a, info.count));
    if (end <= 0)
        first = 0, end = info.count;
    for (int64_t i = first; i < end; i++)
        a[i] *= gain;
    ASSERT_OK(attn_params_set(p, name, a, info.count));
    free(a);
}

/* rows x cols identity (rows of zeros past cols), stacked `blocks` times. */
static float *identity_blocks(int64_t blocks, int64_t rows, int64_t cols)
{
    float *a = filled_floats(blocks * rows * cols, 0.0f);
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t i = 0; i < rows && i < cols; i++)
            a[(b * rows + i) * cols + i] = 1.0f;
    return a;
}

static attn_rnn *new_rnn(int32_t cell, int32_t recurrence, int64_t input, int64_t hidden, uint64_t seed)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o));
    o.cell = cell;
    o.recurrence = recurrence;
    o.input_size = input;
    o.hidden_size = hidden;
    if (recurrence == ATTN_RECURRENCE_LOW_RANK)
        o.rank = 2;
    if (recurrence == ATTN_RECURRENCE_KRONECKER) {
        o.num_factors = 2;
        o.factor_sizes[0] = 2;
        o.factor_sizes[1] = hidden / 2;
    }
    attn_rnn *r = NULL;
    ASSERT_OK(attn_rnn_create(&r, &o));
    ASSERT_OK(attn_params_init(attn_rnn_params(r), seed));
    return r;
}

typedef struct mem_shape {
    int64_t in, out, c, heads, n, w, top_k;
    int32_t addressing;
} mem_shape;

static attn_memrnn *new_memrnn(const mem_shape *s, uint64_t seed)
{
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_options_init(&o));
    o.input_size = s->in;
    o.output_size = s->out;
    o.controller_size = s->c;
    o.num_heads = s->heads;
    o.memory_slots = s->n;
    o.memory_width = s->w;
    o.addressing = s->addressing;
    o.top_k = s->top_k;
    attn_memrnn *m = NULL;
    ASSERT_OK(attn_memrnn_create(&m, &o));
    ASSERT_OK(attn_params_init(attn_memrnn_params(m), seed));
    return m;
}

static attn_mha_options mha_options(int32_t kind, int64_t embed, int64_t heads)
{
    attn_mha_options o;
    ASSERT_OK(attn_mha_options_init(&o));
    o.kind = kind;
    o.embed_dim = embed;
    o.num_heads = heads;
    return o;
}

static attn_mha *new_mha(const attn_mha_options *o, uint64_t seed)
{
    attn_mha *m = NULL;
    ASSERT_OK(attn_mha_create(&m, o));
    ASSERT_OK(attn_params_init(attn_mha_params(m), seed));
    return m;
}

static attn_perceiver_options perceiver_options(int64_t classes)
{
    attn_perceiver_options o;
    ASSERT_OK(attn_perceiver_options_init(&o));
    o.input_channels = 3;
    o.input_axis = 1;
    o.num_freq_bands = 2;
    o.max_freq = 4.0;
    o.depth = 2;
    o.num_latents = 4;
    o.latent_dim = 8;
    o.cross_dim_head = 4;
    o.latent_heads = 2;
    o.latent_dim_head = 4;
    o.num_classes = classes;
    return o;
}

static attn_perceiver *new_perceiver(const attn_perceiver_options *o, uint64_t seed)
{
    attn_perceiver *p = NULL;
    ASSERT_OK(attn_perceiver_create(&p, o));
    ASSERT_OK(attn_params_init(attn_perceiver_params(p), seed));
    return p;
}

/* ================================================================================================
 * Weights: NaN/Inf never enter; huge finite weights run to completion
 * ============================================================================================= */

/* For every tensor of p: a NaN, +Inf or -Inf anywhere is ATTN_E_NUMERICAL naming attn_params_set,
 * and the tensor keeps its values. */
static void check_set_rejects_nonfinite(attn_params *p, const char *ctx)
{
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        float *before = xmalloc((size_t)info.count * sizeof *before), *a = xmalloc((size_t)info.count * sizeof *a);
        float *after = xmalloc((size_t)info.count * sizeof *after);
        ASSERT_OK(attn_params_get(p, info.name, before, info.count));
        for (int k = 0; k < COUNT_OF(bad); k++) {
            memcpy(a, before, (size_t)info.count * sizeof *a);
            a[(info.count - 1) * k / 2] = bad[k];
            EXPECT_FAILURE(attn_params_set(p, info.name, a, info.count), ATTN_E_NUMERICAL, "attn_params_set",
                           info.name, ctx);
            ASSERT_OK(attn_params_get(p, info.name, after, info.count));
            if (memcmp(before, after, (size_t)info.count * sizeof *after) != 0)
                fail_msg("%s: a rejected set changed '%s'", ctx, info.name);
        }
        free(before), free(a), free(after);
    }
}

/* Every tensor set to +-FLT_MAX (alternating): forward still returns, with ATTN_OK (or, for the
 * SVD pseudo-inverse, ATTN_E_NUMERICAL when A2 overflowed); values overflow to Inf/NaN freely. */
static void saturate(attn_params *p)
{
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        float *a = xmalloc((size_t)info.count * sizeof *a);
        for (int64_t j = 0; j < info.count; j++)
            a[j] = (j + i) % 2 ? FLT_MAX : -FLT_MAX;
        ASSERT_OK(attn_params_set(p, info.name, a, info.count));
        free(a);
    }
}

static void test_weights(void **state)
{
    (void)state;
    const int64_t B = 2, T = 4, I = 3, H = 4;
    float *x = random_floats(B * T * 8, 1, 1.0), *y = xmalloc((size_t)(B * T * 64) * sizeof *y);
    float *k = random_floats(B * T * 8, 2, 1.0), *v = random_floats(B * T * 8, 3, 1.0);
    {
        attn_rnn *r = new_rnn(ATTN_CELL_LSTM, ATTN_RECURRENCE_KRONECKER, I, H, 1);
        check_set_rejects_nonfinite(attn_rnn_params(r), "rnn");
        saturate(attn_rnn_params(r));
        ASSERT_OK(attn_rnn_forward(r, NULL, B, T, x, NULL, NULL, y, NULL, NULL));
        attn_rnn_destroy(r);
    }
    {
        const mem_shape s = {3, 2, 4, 1, 5, 3, 2, ATTN_MEMORY_SPARSE};
        attn_memrnn *m = new_memrnn(&s, 2);
        check_set_rejects_nonfinite(attn_memrnn_params(m), "memrnn");
        saturate(attn_memrnn_params(m));
        ASSERT_OK(attn_memrnn_forward(m, NULL, B, T, x, y, NULL, NULL));
        attn_memrnn_destroy(m);
    }
    static const int32_t kinds[] = {ATTN_MHA_FULL, ATTN_MHA_LINFORMER, ATTN_MHA_NYSTROM, ATTN_MHA_NYSTROM};
    for (int i = 0; i < COUNT_OF(kinds); i++) {
        attn_mha_options o = mha_options(kinds[i], 8, 2);
        o.max_seq_len = 6, o.proj_len = 3, o.num_landmarks = 2, o.pinv = i == 3 ? ATTN_PINV_SVD : ATTN_PINV_NEWTON;
        attn_mha *m = new_mha(&o, 3);
        check_set_rejects_nonfinite(attn_mha_params(m), "mha");
        saturate(attn_mha_params(m));
        const attn_status st = attn_mha_forward(m, NULL, B, T, T, x, k, v, NULL, y);
        if (st != ATTN_OK && !(i == 3 && st == ATTN_E_NUMERICAL))
            fail_msg("mha kind %d with FLT_MAX weights: %d (%s)", kinds[i], st, attn_last_error());
        attn_mha_destroy(m);
    }
    {
        attn_perceiver_options o = perceiver_options(2);
        attn_perceiver *p = new_perceiver(&o, 4);
        check_set_rejects_nonfinite(attn_perceiver_params(p), "perceiver");
        saturate(attn_perceiver_params(p));
        ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){T}, x, NULL, y));
        attn_perceiver_destroy(p);
    }
    free(x), free(y), free(k), free(v);
}

/* ================================================================================================
 * Non-finite inputs
 * ============================================================================================= */

/* RNN, every cell and recurrence: a NaN at x[0, 1] makes y[0, t >= 1] NaN and leaves y[0, 0] and
 * batch element 1 bit for bit as without it; an Inf at x[1, 2] changes nothing before step 2 and
 * nothing in batch element 0. NaN in x past a sequence's length (forward_lengths) is never read. */
static void test_rnn_nonfinite(void **state)
{
    (void)state;
    static const int32_t cells[] = {ATTN_CELL_LSTM, ATTN_CELL_GRU, ATTN_CELL_RNN_TANH, ATTN_CELL_RNN_RELU};
    static const int32_t recs[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_LOW_RANK, ATTN_RECURRENCE_KRONECKER};
    const int64_t B = 2, T = 4, I = 3, H = 4, row = T * H;
    for (int ci = 0; ci < COUNT_OF(cells); ci++)
        for (int ri = 0; ri < COUNT_OF(recs); ri++) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "rnn cell %d recurrence %d", cells[ci], recs[ri]);
            attn_rnn *r = new_rnn(cells[ci], recs[ri], I, H, 10 + (uint64_t)ci);
            float *x = random_floats(B * T * I, 11, 1.0), *clean = xmalloc((size_t)(B * row) * sizeof *clean);
            float *y = xmalloc((size_t)(B * row) * sizeof *y);
            ASSERT_OK(attn_rnn_forward(r, NULL, B, T, x, NULL, NULL, clean, NULL, NULL));

            x[(0 * T + 1) * I + 2] = NAN;
            ASSERT_OK(attn_rnn_forward(r, NULL, B, T, x, NULL, NULL, y, NULL, NULL));
            expect_bits_equal(ctx, "NaN input: steps before it", clean, y, H);
            expect_bits_equal(ctx, "NaN input: the other batch element", clean + row, y + row, row);
            if (!all_nan(y + H, (T - 1) * H))
                fail_msg("%s: NaN at step 1 did not make the later outputs NaN", ctx);

            x[(0 * T + 1) * I + 2] = 0.5f;
            float *clean2 = xmalloc((size_t)(B * row) * sizeof *clean2);
            ASSERT_OK(attn_rnn_forward(r, NULL, B, T, x, NULL, NULL, clean2, NULL, NULL));
            x[(1 * T + 2) * I + 0] = INFINITY;
            ASSERT_OK(attn_rnn_forward(r, NULL, B, T, x, NULL, NULL, y, NULL, NULL));
            expect_bits_equal(ctx, "Inf input: the other batch element", clean2, y, row);
            expect_bits_equal(ctx, "Inf input: steps before it", clean2 + row, y + row, 2 * H);

            /* NaN past the lengths is never read */
            const int64_t lengths[] = {2, 4};
            x[(1 * T + 2) * I + 0] = 0.25f;
            ASSERT_OK(attn_rnn_forward_lengths(r, NULL, B, T, lengths, x, NULL, NULL, clean2, NULL, NULL));
            x[(0 * T + 2) * I + 1] = NAN, x[(0 * T + 3) * I + 0] = -INFINITY;
            ASSERT_OK(attn_rnn_forward_lengths(r, NULL, B, T, lengths, x, NULL, NULL, y, NULL, NULL));
            expect_bits_equal(ctx, "NaN past the length", clean2, y, B * row);
            free(x), free(clean), free(clean2), free(y);
            attn_rnn_destroy(r);
        }
}

/* Memory RNN: +Inf and NaN in batch element 0 at step 1 leave step 0 and batch element 1 as
 * they were; NaN makes every later output of element 0 NaN. */
static void test_memrnn_nonfinite(void **state)
{
    (void)state;
    const int64_t B = 2, T = 3;
    for (int addressing = 0; addressing < 2; addressing++)
        for (int which = 0; which < 2; which++) {
            const mem_shape s = {3, 2, 6, 2, 5, 4, 2, addressing};
            attn_memrnn *m = new_memrnn(&s, 20);
            float *x = random_floats(B * T * s.in, 21, 1.0);
            float *clean = xmalloc((size_t)(B * T * s.out) * sizeof *clean), *y = xmalloc((size_t)(B * T * s.out) * sizeof *y);
            ASSERT_OK(attn_memrnn_forward(m, NULL, B, T, x, clean, NULL, NULL));
            x[(0 * T + 1) * s.in + 1] = which ? INFINITY : NAN;
            ASSERT_OK(attn_memrnn_forward(m, NULL, B, T, x, y, NULL, NULL));
            expect_bits_equal("memrnn", "non-finite input: step 0", clean, y, s.out);
            expect_bits_equal("memrnn", "non-finite input: other batch element", clean + T * s.out, y + T * s.out,
                              T * s.out);
            /* Inf saturates the controller's gates (sigmoid 0/1, tanh +-1) unless Inf - Inf meets
             * in a product: it may stay finite, as in PyTorch; NaN cannot */
            if (!which && !all_nan(y + s.out, (T - 1) * s.out))
                fail_msg("memrnn addressing %d: NaN input at step 1 gave a non-NaN later output", addressing);
            free(x), free(clean), free(y);
            attn_memrnn_destroy(m);
        }
}

/* Attention, every kind: documented propagation (docs/attention.md) on batch element 0, batch
 * element 1 untouched (equal to the clean run to rounding: BLAS may block the rows differently). */
static void test_mha_nonfinite(void **state)
{
    (void)state;
    enum { FULL_M, FULL_S, LIN, NYS_NEWTON, NYS_SVD, KINDS };
    static const char *names[] = {"FULL MATERIALIZE", "FULL STREAMING", "LINFORMER", "NYSTROM NEWTON", "NYSTROM SVD"};
    const int64_t B = 2, L = 5, S = 6, E = 8;
    for (int kind = 0; kind < KINDS; kind++) {
        attn_mha_options o = mha_options(kind <= FULL_S ? ATTN_MHA_FULL : kind == LIN ? ATTN_MHA_LINFORMER : ATTN_MHA_NYSTROM,
                                         E, 2);
        o.memory_mode = kind == FULL_M ? ATTN_MEMORY_MATERIALIZE : kind == FULL_S ? ATTN_MEMORY_STREAMING : 0;
        o.max_seq_len = 8, o.proj_len = 3, o.num_landmarks = 2, o.pinv = kind == NYS_SVD ? ATTN_PINV_SVD : 0;
        attn_mha *m = new_mha(&o, 30 + (uint64_t)kind);
        float *q = random_floats(B * L * E, 31, 1.0), *k = random_floats(B * S * E, 32, 1.0);
        float *v = random_floats(B * S * E, 33, 1.0);
        uint8_t mask[2 * 6] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
        float *clean = xmalloc((size_t)(B * L * E) * sizeof *clean), *out = xmalloc((size_t)(B * L * E) * sizeof *out);
        float *cleanm = xmalloc((size_t)(B * L * E) * sizeof *cleanm);
        ASSERT_OK(attn_mha_forward(m, NULL, B, L, S, q, k, v, NULL, clean));
        ASSERT_OK(attn_mha_forward(m, NULL, B, L, S, q, k, v, mask, cleanm));
        const int64_t half = L * E;
        static const struct {
            const char *what;
            int tensor; /* 0 query, 1 key, 2 value */
            int64_t row;
            float bad;
            int masked;
        } cases[] = {{"NaN query row 1", 0, 1, NAN, 0},
                     {"+Inf query row 2", 0, 2, INFINITY, 0},
                     {"NaN key row 2", 1, 2, NAN, 0},
                     {"-Inf value row 4", 2, 4, -INFINITY, 0},
                     {"NaN key row 3, masked", 1, 3, NAN, 1},
                     {"NaN value row 3, masked", 2, 3, NAN, 1}};
        for (int c = 0; c < COUNT_OF(cases); c++) {
            char ctx[128];
            snprintf(ctx, sizeof ctx, "%s, %s", names[kind], cases[c].what);
            float *t = cases[c].tensor == 0 ? q : cases[c].tensor == 1 ? k : v;
            const float keep = t[cases[c].row * E + 1];
            t[cases[c].row * E + 1] = cases[c].bad;
            for (int64_t i = 0; i < B * L * E; i++)
                out[i] = -7.5f;
            const attn_status st = attn_mha_forward(m, NULL, B, L, S, q, k, v, cases[c].masked ? mask : NULL, out);
            const float *ref = cases[c].masked ? cleanm : clean;
            /* which output rows of element 0 must stay as they were, which must be non-finite */
            const int masked_ignored = cases[c].masked && kind >= LIN;
            const int one_row = cases[c].tensor == 0 && kind <= LIN; /* a query row touches only its output */
            if (kind == NYS_SVD && !masked_ignored) {
                /* the NaN reaches A2 (a query through the landmarks, a key through K~, a value
                 * not: values never enter A2) */
                if (cases[c].tensor == 2) {
                    ASSERT_OK(st);
                } else {
                    EXPECT_FAILURE(st, ATTN_E_NUMERICAL, "attn_mha_forward", NULL, ctx);
                    if (!all_equal(out, B * L * E, -7.5f))
                        fail_msg("%s: the failed call wrote its output", ctx);
                    t[cases[c].row * E + 1] = keep;
                    continue;
                }
            } else {
                ASSERT_OK(st);
            }
            check_close_f32(ctx, "the other batch element", ref + half, out + half, half, 1e-6);
            if (masked_ignored)
                check_close_f32(ctx, "masked position ignored", ref, out, half, 1e-6);
            else if (one_row) {
                if (!all_nonfinite(out + cases[c].row * E, E))
                    fail_msg("%s: the query's output row is finite", ctx);
                for (int64_t i = 0; i < L; i++)
                    if (i != cases[c].row)
                        check_close_f32(ctx, "other query rows", ref + i * E, out + i * E, E, 1e-6);
            } else if (!all_nonfinite(out, half))
                fail_msg("%s: an output row of the batch element stayed finite", ctx);
            t[cases[c].row * E + 1] = keep;
        }
        free(q), free(k), free(v), free(clean), free(cleanm), free(out);
        attn_mha_destroy(m);
    }
}

/* Perceiver: a NaN or Inf in element 0's data (masked or not) makes its output NaN; element 1 is
 * unchanged. */
static void test_perceiver_nonfinite(void **state)
{
    (void)state;
    for (int classes = 0; classes <= 3; classes += 3) {
        attn_perceiver_options o = perceiver_options(classes);
        attn_perceiver *p = new_perceiver(&o, 40);
        const int64_t B = 2, N = 5, C = o.input_channels, per = classes ? classes : o.num_latents * o.latent_dim;
        float *data = random_floats(B * N * C, 41, 1.0);
        float *clean = xmalloc((size_t)(B * per) * sizeof *clean), *out = xmalloc((size_t)(B * per) * sizeof *out);
        uint8_t mask[10] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
        ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){N}, data, mask, clean));
        static const float bad[] = {NAN, INFINITY, -INFINITY};
        for (int b = 0; b < COUNT_OF(bad); b++)
            for (int pos = 0; pos < 2; pos++) { /* position 1 is masked */
                data[pos * C + 2] = bad[b];
                ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){N}, data, mask, out));
                expect_bits_equal("perceiver", "non-finite data: the other element", clean + per, out + per, per);
                if (!all_nan(out, per))
                    fail_msg("perceiver classes %lld: %g at position %d: the element's output is not all NaN",
                             (long long)classes, (double)bad[b], pos);
                data[pos * C + 2] = 0.5f;
                ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){N}, data, mask, clean));
            }
        free(data), free(clean), free(out);
        attn_perceiver_destroy(p);
    }
}

/* Analysis: a finite matrix of +-FLT_MAX entries (its float64 SVD does not overflow) gives finite
 * results; NaN and Inf are ATTN_E_NUMERICAL (tested entry by entry in test_analysis.c). */
static void test_analysis_extreme(void **state)
{
    (void)state;
    const int64_t rows = 5, cols = 4;
    float *a = random_floats(rows * cols, 50, 1.0);
    for (int64_t i = 0; i < rows * cols; i++)
        a[i] = (a[i] < 0 ? -FLT_MAX : FLT_MAX) / (float)(i % 3 + 1);
    double sigma[4], err;
    attn_rank_report rep;
    ASSERT_OK(attn_singular_values(a, rows, cols, sigma));
    ASSERT_OK(attn_rank_analyze(a, rows, cols, &rep));
    ASSERT_OK(attn_lowrank_error(a, rows, cols, 1, &err));
    for (int i = 0; i < 4; i++)
        assert_true(isfinite(sigma[i]));
    assert_true(isfinite(rep.sigma_max) && isfinite(rep.frobenius) && isfinite(rep.stable_rank) &&
                isfinite(rep.effective_rank) && isfinite(err));
    a[7] = NAN;
    EXPECT_FAILURE(attn_singular_values(a, rows, cols, sigma), ATTN_E_NUMERICAL, "attn_singular_values", "row|col",
                   "NaN entry");
    free(a);
}

/* ================================================================================================
 * Extreme scores
 * ============================================================================================= */

/* Identity in- and out-projections (zero biases): q = query, k = key, v = value per head. Queries
 * and keys are radius-r points at angles 2 pi i / S in each head's (dh = 2) plane, so query i's
 * best key is key i by a margin of r^2 (1 - cos(2 pi / S)) / sqrt(2): the weights are one-hot and
 * out[i] = value[i]. Scores reach +-r^2 / sqrt(2). */
static void extreme_inputs(int64_t L, int64_t S, double rq, double rk, float **q, float **k)
{
    const int64_t E = 4;
    *q = xmalloc((size_t)(L * E) * sizeof **q);
    *k = xmalloc((size_t)(S * E) * sizeof **k);
    for (int64_t i = 0; i < S; i++) {
        const double th = 2.0 * 3.14159265358979323846 * (double)i / (double)S;
        for (int64_t hd = 0; hd < 2; hd++) {
            (*k)[i * E + 2 * hd] = (float)(rk * cos(th));
            (*k)[i * E + 2 * hd + 1] = (float)(rk * sin(th));
            if (i < L) {
                (*q)[i * E + 2 * hd] = (float)(rq * cos(th));
                (*q)[i * E + 2 * hd + 1] = (float)(rq * sin(th));
            }
        }
    }
}

static void identity_projections(attn_mha *m, int64_t S)
{
    attn_params *p = attn_mha_params(m);
    const int64_t E = 4;
    float *in = identity_blocks(3, E, E), *out = identity_blocks(1, E, E);
    set_tensor(p, "in_proj_weight", in);
    set_tensor(p, "out_proj.weight", out);
    fill_tensor(p, "in_proj_bias", 0.0f, 0, 0);
    fill_tensor(p, "out_proj.bias", 0.0f, 0, 0);
    attn_tensor_info info;
    if (attn_params_find(p, "proj_e", &info) == ATTN_OK) {
        float *e = identity_blocks(1, S, S);
        set_tensor(p, "proj_e", e);
        set_tensor(p, "proj_f", e);
        free(e);
    }
    free(in), free(out);
}

static void test_mha_extreme_scores(void **state)
{
    (void)state;
    enum { FULL_M, FULL_S, LIN, NYS_NEWTON, NYS_SVD, KINDS };
    static const char *names[] = {"FULL MATERIALIZE", "FULL STREAMING", "LINFORMER", "NYSTROM NEWTON", "NYSTROM SVD"};
    /* (query radius, key radius): scores of +-1e30 from moderate inputs, from 1e30 queries, and
     * near FLT_MAX */
    static const double radii[][2] = {{1e15, 1e15}, {1e30, 1.0}, {1.3e19, 1.3e19}, {2.4e38, 1.0}};
    const int64_t E = 4;
    for (int kind = 0; kind < KINDS; kind++)
        for (int ri = 0; ri < COUNT_OF(radii); ri++)
            for (int big = 0; big < (kind == FULL_S ? 2 : 1); big++) {
                /* the streaming case also crosses its 2048-key tile, rescaling by exp(old - new max) */
                const int64_t S = big ? 2100 : 8, L = big ? 6 : 8;
                attn_mha_options o = mha_options(kind <= FULL_S ? ATTN_MHA_FULL
                                                 : kind == LIN  ? ATTN_MHA_LINFORMER
                                                                : ATTN_MHA_NYSTROM,
                                                 E, 2);
                o.memory_mode = kind == FULL_M ? ATTN_MEMORY_MATERIALIZE : kind == FULL_S ? ATTN_MEMORY_STREAMING : 0;
                o.max_seq_len = S, o.proj_len = S, o.num_landmarks = S, o.pinv = kind == NYS_SVD ? ATTN_PINV_SVD : 0;
                attn_mha *m = new_mha(&o, 60);
                identity_projections(m, S);
                float *q, *k;
                extreme_inputs(L, S, radii[ri][0], radii[ri][1], &q, &k);
                float *v = random_floats(S * E, 61, 1.0), *out = filled_floats(L * E, NAN);
                for (int64_t i = 0; i < S * E; i++)
                    v[i] *= ri == 1 ? 1e30f : 1.0f; /* values of 1e30 too */
                char ctx[128];
                snprintf(ctx, sizeof ctx, "%s, radii %g/%g, S %lld", names[kind], radii[ri][0], radii[ri][1],
                         (long long)S);
                ASSERT_OK(attn_mha_forward(m, NULL, 1, L, S, q, k, v, NULL, out));
                if (!all_finite(out, L * E))
                    fail_msg("%s: non-finite output", ctx);
                check_close_f32(ctx, "out = the best key's value", v, out, L * E, 1e-5);
                if (!big) {
                    float *w = filled_floats(2 * L * S, NAN);
                    ASSERT_OK(attn_mha_attention_matrix(m, NULL, 1, L, S, q, k, v, NULL, w));
                    if (!all_finite(w, 2 * L * S))
                        fail_msg("%s: non-finite attention weights", ctx);
                    float *id = identity_blocks(2, L, S);
                    check_close_f32(ctx, "attention matrix = identity", id, w, 2 * L * S, 1e-5);
                    free(id), free(w);
                }
                free(q), free(k), free(v), free(out);
                attn_mha_destroy(m);
            }
}

/* The Perceiver's cross- and self-attention scores scaled to ~1e30 (to_q and the key half of to_kv
 * times 1e15), and data of +-1e30: every output finite. */
static void test_perceiver_extreme(void **state)
{
    (void)state;
    attn_perceiver_options o = perceiver_options(0);
    attn_perceiver *p = new_perceiver(&o, 70);
    attn_params *ps = attn_perceiver_params(p);
    for (int64_t i = 0; i < attn_params_count(ps); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(ps, i, &info));
        const size_t len = strlen(info.name);
        if (len >= 11 && !strcmp(info.name + len - 11, "to_q.weight"))
            scale_tensor(ps, info.name, 1e15f, 0, 0);
        else if (len >= 12 && !strcmp(info.name + len - 12, "to_kv.weight"))
            scale_tensor(ps, info.name, 1e15f, 0, info.count / 2);
    }
    const int64_t B = 1, N = 6, C = 3, n_out = B * o.num_latents * o.latent_dim;
    float *data = random_floats(B * N * C, 71, 1.0), *out = filled_floats(n_out, NAN);
    ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){N}, data, NULL, out));
    if (!all_finite(out, n_out))
        fail_msg("perceiver, scores ~1e30: non-finite output");
    attn_perceiver_destroy(p);
    /* Data of +-1e30 with ordinary weights: norm_context makes it O(1). */
    p = new_perceiver(&o, 71);
    for (int64_t i = 0; i < B * N * C; i++)
        data[i] = data[i] < 0 ? -1e30f : 1e30f;
    ASSERT_OK(attn_perceiver_forward(p, NULL, B, (int64_t[]){N}, data, NULL, out));
    if (!all_finite(out, n_out))
        fail_msg("perceiver, data +-1e30: non-finite output");
    free(data), free(out);
    attn_perceiver_destroy(p);
}

/* The memory RNN's addressing: zero memory rows (mem_bias 0, the write heads add nothing) and a
 * zero key (the key rows of every head's fc zero), with key strength beta and sharpening exponent
 * gamma ordinary, 1e30 and FLT_MAX: the cosine similarity (0 / clamped norms) and the sharpening
 * stay finite, so y and the read weights are finite; and beta = 1e30 on ordinary memory (scores of
 * +-1e30 in the content softmax). */
static void test_memrnn_addressing(void **state)
{
    (void)state;
    static const float strengths[] = {1.0f, 1e30f, FLT_MAX};
    const int64_t B = 2, T = 3;
    for (int addressing = 0; addressing < 2; addressing++)
        for (int zero = 0; zero < 2; zero++)
            for (int si = 0; si < COUNT_OF(strengths); si++) {
                const mem_shape s = {3, 2, 6, 2, 5, 4, 2, addressing};
                attn_memrnn *m = new_memrnn(&s, 80);
                attn_params *p = attn_memrnn_params(m);
                const int64_t W = s.w;
                for (int64_t head = 0; head < 2 * s.heads; head++) {
                    char wname[64], bname[64];
                    snprintf(wname, sizeof wname, "ntm.heads.%lld.fc_%s.weight", (long long)head, head % 2 ? "write" : "read");
                    snprintf(bname, sizeof bname, "ntm.heads.%lld.fc_%s.bias", (long long)head, head % 2 ? "write" : "read");
                    if (zero) {
                        fill_tensor(p, wname, 0.0f, 0, W * s.c); /* key rows */
                        fill_tensor(p, bname, 0.0f, 0, W);
                        if (head % 2) { /* add vector a: rows 2W+6 .. 3W+5 */
                            fill_tensor(p, wname, 0.0f, (2 * W + 6) * s.c, (3 * W + 6) * s.c);
                            fill_tensor(p, bname, 0.0f, 2 * W + 6, 3 * W + 6);
                        }
                    }
                    fill_tensor(p, wname, 0.0f, W * s.c, (W + 1) * s.c); /* beta = softplus(bias) */
                    fill_tensor(p, bname, strengths[si], W, W + 1);
                    fill_tensor(p, wname, 0.0f, (W + 5) * s.c, (W + 6) * s.c); /* gamma = 1 + softplus(bias) */
                    fill_tensor(p, bname, strengths[si], W + 5, W + 6);
                }
                if (zero)
                    fill_tensor(p, "memory.mem_bias", 0.0f, 0, 0);
                float *x = random_floats(B * T * s.in, 81, 1.0), *y = filled_floats(B * T * s.out, NAN);
                float *rw = filled_floats(B * T * s.heads * s.n, NAN), *mem = filled_floats(B * s.n * W, NAN);
                ASSERT_OK(attn_memrnn_forward(m, NULL, B, T, x, y, rw, mem));
                if (!all_finite(y, B * T * s.out) || !all_finite(rw, B * T * s.heads * s.n) ||
                    !all_finite(mem, B * s.n * W))
                    fail_msg("memrnn addressing %d, %s, beta/gamma bias %g: non-finite y, read weights or memory",
                             addressing, zero ? "zero memory and key" : "ordinary memory", (double)strengths[si]);
                free(x), free(y), free(rw), free(mem);
                attn_memrnn_destroy(m);
            }
}

/* ================================================================================================
 * Sizes: 2^40 elements and int64 overflow fail before allocating
 * ============================================================================================= */

#define P40 ((int64_t)1 << 40)
#define P20 ((int64_t)1 << 20)

static int is_size_error(attn_status s) { return s == ATTN_E_SHAPE || s == ATTN_E_INVALID_ARG || s == ATTN_E_NOMEM; }

/* Checks a call that must fail for its size: a size error naming `fn`; and unless it is
 * ATTN_E_NOMEM (a valid request the allocator refused: sizes within int64 and BLAS's range whose
 * bytes exceed memory, such as 2^42-float weights), no block above SMALL_BLOCK requested while it
 * ran (plain builds). */
#define SIZE_FAILS(call, fn, what)                                                                                \
    do {                                                                                                          \
        guard_arm();                                                                                              \
        const attn_status size_status_ = (call);                                                                  \
        const size_t size_largest_ = guard_disarm();                                                              \
        if (!is_size_error(size_status_) || !strstr(attn_last_error(), fn))                                       \
            fail_msg("%s: %s returned %d (%s): \"%s\"", what, #call, size_status_, attn_status_str(size_status_),  \
                     attn_last_error());                                                                          \
        if (size_status_ != ATTN_E_NOMEM && size_largest_ > SMALL_BLOCK)                                          \
            fail_msg("%s: %s asked for a block of %zu bytes before failing", what, #call, size_largest_);         \
    } while (0)

/* Creates whose weights would hold >= 2^40 floats. */
static void test_size_create(void **state)
{
    (void)state;
    {
        static const struct {
            const char *what;
            int32_t recurrence;
            int64_t input, hidden, layers, rank;
        } cases[] = {{"input 2^40", ATTN_RECURRENCE_DENSE, P40, 1, 1, 0},
                     {"hidden 2^20 (W_hh 4 * 2^40)", ATTN_RECURRENCE_DENSE, 1, P20, 1, 0},
                     {"hidden 2^20, rank 2^20", ATTN_RECURRENCE_LOW_RANK, 1, P20, 1, P20},
                     {"layers 2^20 x hidden 2^10", ATTN_RECURRENCE_DENSE, 1, 1 << 10, P20, 0},
                     {"input 2^62 (bytes beyond int64)", ATTN_RECURRENCE_DENSE, HUGE_SIZE, 4, 1, 0}};
        for (int i = 0; i < COUNT_OF(cases); i++) {
            attn_rnn_options o;
            ASSERT_OK(attn_rnn_options_init(&o));
            o.cell = ATTN_CELL_LSTM, o.recurrence = cases[i].recurrence, o.input_size = cases[i].input;
            o.hidden_size = cases[i].hidden, o.num_layers = cases[i].layers, o.rank = cases[i].rank;
            attn_rnn *r = NULL;
            SIZE_FAILS(attn_rnn_create(&r, &o), "attn_rnn_create", cases[i].what);
            assert_null(r);
        }
    }
    {
        static const struct {
            const char *what;
            int64_t in, c, n, w, heads;
        } cases[] = {{"memory 2^20 x 2^20", 2, 4, P20, P20, 1},
                     {"controller 2^20", 2, P20, 4, 4, 1},
                     {"input 2^40", P40, 4, 4, 4, 1},
                     {"heads 2^16 x width 2^24", 2, 4, 4, (int64_t)1 << 24, 1 << 16}};
        for (int i = 0; i < COUNT_OF(cases); i++) {
            attn_memrnn_options o;
            ASSERT_OK(attn_memrnn_options_init(&o));
            o.input_size = cases[i].in, o.output_size = 2, o.controller_size = cases[i].c;
            o.memory_slots = cases[i].n, o.memory_width = cases[i].w, o.num_heads = cases[i].heads;
            attn_memrnn *m = NULL;
            SIZE_FAILS(attn_memrnn_create(&m, &o), "attn_memrnn_create", cases[i].what);
            assert_null(m);
        }
    }
    {
        static const struct {
            const char *what;
            int32_t kind, sharing;
            int64_t embed, heads, kdim, max_seq, proj;
        } cases[] = {{"embed 2^20", ATTN_MHA_FULL, 0, P20, 1, 0, 0, 0},
                     {"kdim 2^40", ATTN_MHA_FULL, 0, 4, 1, P40, 0, 0},
                     {"Linformer 2^20 x 2^20", ATTN_MHA_LINFORMER, 0, 4, 1, 0, P20, P20},
                     {"Linformer per head 2^10 x 2^15 x 2^15", ATTN_MHA_LINFORMER, ATTN_LINFORMER_NONE, 1 << 10,
                      1 << 10, 0, 1 << 15, 1 << 15}};
        for (int i = 0; i < COUNT_OF(cases); i++) {
            attn_mha_options o = mha_options(cases[i].kind, cases[i].embed, cases[i].heads);
            o.kdim = cases[i].kdim, o.max_seq_len = cases[i].max_seq, o.proj_len = cases[i].proj;
            o.sharing = cases[i].sharing;
            attn_mha *m = NULL;
            SIZE_FAILS(attn_mha_create(&m, &o), "attn_mha_create", cases[i].what);
            assert_null(m);
        }
    }
    {
        static const struct {
            const char *what;
            int64_t channels, latents, dim, depth;
        } cases[] = {{"latents 2^20 x dim 2^20", 3, P20, P20, 1},
                     {"dim 2^20 (FF 8 D^2)", 3, 4, P20, 1},
                     {"channels 2^40", P40, 4, 8, 1}};
        for (int i = 0; i < COUNT_OF(cases); i++) {
            attn_perceiver_options o = perceiver_options(0);
            o.input_channels = cases[i].channels, o.num_latents = cases[i].latents, o.latent_dim = cases[i].dim;
            o.depth = cases[i].depth;
            attn_perceiver *p = NULL;
            SIZE_FAILS(attn_perceiver_create(&p, &o), "attn_perceiver_create", cases[i].what);
            assert_null(p);
        }
    }
}

/* Forward and cost at one shape. cost first: where it fails (a size error, no large block), forward
 * with small real buffers must fail the same way, before it reads or writes them; where it
 * succeeds (a valid shape whose figures fit int64: they must be positive, not wrapped), forward
 * with a NULL input must stop at that pointer (ATTN_E_INVALID_ARG). Neither asks for a large block. */
#define FORWARD_AND_COST(cost_call, fwd_call, fwd_null_call, cost_fn, fwd_fn, what)                              \
    do {                                                                                                          \
        attn_cost cost_ = {-1, -1, -1};                                                                          \
        guard_arm();                                                                                              \
        const attn_status cost_status_ = (cost_call);                                                            \
        if (guard_disarm() > SMALL_BLOCK)                                                                         \
            fail_msg("%s: %s asked for a large block", what, #cost_call);                                         \
        if (cost_status_ == ATTN_OK) {                                                                            \
            if (!(cost_.params > 0 && cost_.flops > 0 && cost_.workspace_bytes >= 0))                             \
                fail_msg("%s: cost %lld params, %lld flops, %lld bytes", what, (long long)cost_.params,           \
                         (long long)cost_.flops, (long long)cost_.workspace_bytes);                               \
            guard_arm();                                                                                          \
            const attn_status null_status_ = (fwd_null_call);                                                     \
            if (guard_disarm() > SMALL_BLOCK)                                                                     \
                fail_msg("%s: %s asked for a large block", what, #fwd_null_call);                                 \
            EXPECT_FAILURE(null_status_, ATTN_E_INVALID_ARG, fwd_fn, NULL, what);                                 \
            accepted++;                                                                                           \
        } else {                                                                                                  \
            if (!is_size_error(cost_status_) || !strstr(attn_last_error(), cost_fn))                              \
                fail_msg("%s: %s returned %d: \"%s\"", what, #cost_call, cost_status_, attn_last_error());       \
            SIZE_FAILS(fwd_call, fwd_fn, what);                                                                   \
            rejected++;                                                                                           \
        }                                                                                                         \
    } while (0)

/* Each family at shapes with 2^40-element inputs, outputs or workspaces, with batch x seq = 2^80
 * (beyond int64), and at the edges of the 32-bit BLAS range. */
static void test_size_forward(void **state)
{
    (void)state;
    float *buf = filled_floats(64, 0.5f), *out = filled_floats(64, 0.0f);
    int64_t lengths[4] = {1, 1, 1, 1};
    uint8_t mask[64] = {0};
    int accepted = 0, rejected = 0;
    static const int64_t shapes[][2] = {{P40, 1}, {1, P40}, {P20, P20}, {P40, P40}, {INT64_MAX, 2}, {(int64_t)1 << 31, 1}};
    char what[160];

    static const int32_t recs[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_LOW_RANK, ATTN_RECURRENCE_KRONECKER};
    for (int ri = 0; ri < COUNT_OF(recs); ri++) {
        attn_rnn *r = new_rnn(ATTN_CELL_LSTM, recs[ri], 2, 4, 1);
        for (int s = 0; s < COUNT_OF(shapes); s++) {
            const int64_t B = shapes[s][0], T = shapes[s][1];
            snprintf(what, sizeof what, "rnn recurrence %d, batch %lld, seq %lld", recs[ri], (long long)B, (long long)T);
            FORWARD_AND_COST(attn_rnn_cost(r, B, T, &cost_),
                             attn_rnn_forward(r, NULL, B, T, buf, NULL, NULL, out, NULL, NULL),
                             attn_rnn_forward(r, NULL, B, T, NULL, NULL, NULL, out, NULL, NULL), "attn_rnn_cost",
                             "attn_rnn_forward", what);
            if (B <= 4) /* lengths has 4 entries */
                FORWARD_AND_COST(attn_rnn_cost(r, B, T, &cost_),
                                 attn_rnn_forward_lengths(r, NULL, B, T, lengths, buf, NULL, NULL, out, NULL, NULL),
                                 attn_rnn_forward_lengths(r, NULL, B, T, lengths, NULL, NULL, NULL, out, NULL, NULL),
                                 "attn_rnn_cost", "attn_rnn_forward_lengths", what);
        }
        attn_rnn_destroy(r);
    }
    {
        /* y of 2^15 x 2^15 x 2^10 = 2^40 floats, rows of 2^30 within the BLAS range */
        attn_rnn *r = new_rnn(ATTN_CELL_GRU, ATTN_RECURRENCE_DENSE, 2, 1 << 10, 1);
        const int64_t B = (int64_t)1 << 15, T = (int64_t)1 << 15;
        FORWARD_AND_COST(attn_rnn_cost(r, B, T, &cost_), attn_rnn_forward(r, NULL, B, T, buf, NULL, NULL, out, NULL, NULL),
                         attn_rnn_forward(r, NULL, B, T, NULL, NULL, NULL, out, NULL, NULL), "attn_rnn_cost",
                         "attn_rnn_forward", "rnn hidden 2^10, batch 2^15, seq 2^15");
        attn_rnn_destroy(r);
    }

    for (int addressing = 0; addressing < 2; addressing++) {
        const mem_shape ms = {2, 2, 4, 1, 4, 3, 2, addressing};
        attn_memrnn *m = new_memrnn(&ms, 1);
        for (int s = 0; s < COUNT_OF(shapes); s++) {
            const int64_t B = shapes[s][0], T = shapes[s][1];
            snprintf(what, sizeof what, "memrnn addressing %d, batch %lld, seq %lld", addressing, (long long)B,
                     (long long)T);
            FORWARD_AND_COST(attn_memrnn_cost(m, B, T, &cost_), attn_memrnn_forward(m, NULL, B, T, buf, out, NULL, NULL),
                             attn_memrnn_forward(m, NULL, B, T, NULL, out, NULL, NULL), "attn_memrnn_cost",
                             "attn_memrnn_forward", what);
        }
        attn_memrnn_destroy(m);
    }

    static const int64_t mha_shapes[][3] = {{P40, 1, 1},   {1, P40, 1},     {1, 1, P40},       {1, P20, P20},
                                            {P20, P20, 1}, {P40, P40, P40}, {1, INT64_MAX, 3}, {P20, 1, P20}};
    for (int kind = 0; kind < 5; kind++) {
        attn_mha_options o = mha_options(kind < 2 ? ATTN_MHA_FULL : kind == 2 ? ATTN_MHA_LINFORMER : ATTN_MHA_NYSTROM, 4, 2);
        o.memory_mode = kind == 0 ? ATTN_MEMORY_MATERIALIZE : kind == 1 ? ATTN_MEMORY_STREAMING : 0;
        o.max_seq_len = 8, o.proj_len = 2, o.num_landmarks = 1, o.pinv = kind == 4 ? ATTN_PINV_SVD : 0;
        attn_mha *m = new_mha(&o, 1);
        for (int s = 0; s < COUNT_OF(mha_shapes); s++) {
            const int64_t B = mha_shapes[s][0], L = mha_shapes[s][1], S = mha_shapes[s][2];
            snprintf(what, sizeof what, "mha kind %d, batch %lld, tgt %lld, src %lld", kind, (long long)B, (long long)L,
                     (long long)S);
            FORWARD_AND_COST(attn_mha_cost(m, B, L, S, &cost_), attn_mha_forward(m, NULL, B, L, S, buf, buf, buf, mask, out),
                             attn_mha_forward(m, NULL, B, L, S, NULL, buf, buf, NULL, out), "attn_mha_cost",
                             "attn_mha_forward", what);
            FORWARD_AND_COST(attn_mha_cost(m, B, L, S, &cost_),
                             attn_mha_attention_matrix(m, NULL, B, L, S, buf, buf, buf, NULL, out),
                             attn_mha_attention_matrix(m, NULL, B, L, S, NULL, buf, buf, NULL, out), "attn_mha_cost",
                             "attn_mha_attention_matrix", what);
        }
        attn_mha_destroy(m);
    }

    {
        attn_perceiver_options o = perceiver_options(0);
        o.input_axis = 2;
        attn_perceiver *p = new_perceiver(&o, 1);
        static const int64_t pshapes[][3] = {{P40, 1, 1},       {1, P20, P20},   {1, P40, 1},           {P20, P20, 1},
                                             {1, INT64_MAX, 2}, {P40, P40, P40}, {1, (int64_t)1 << 31, 1}};
        for (int s = 0; s < COUNT_OF(pshapes); s++) {
            const int64_t B = pshapes[s][0], sizes[2] = {pshapes[s][1], pshapes[s][2]};
            snprintf(what, sizeof what, "perceiver, batch %lld, axes %lld x %lld", (long long)B, (long long)sizes[0],
                     (long long)sizes[1]);
            FORWARD_AND_COST(attn_perceiver_cost(p, B, sizes, &cost_), attn_perceiver_forward(p, NULL, B, sizes, buf, NULL, out),
                             attn_perceiver_forward(p, NULL, B, sizes, NULL, NULL, out), "attn_perceiver_cost",
                             "attn_perceiver_forward", what);
        }
        attn_perceiver_destroy(p);
    }
    print_message("size cases: %d shapes rejected by cost and forward alike, %d valid (exact cost, forward stops at "
                  "the NULL input)\n", rejected, accepted);
    free(buf), free(out);
}

/* attn_params_* with counts of 2^40 (and more), and the analysis functions with 2^40 entries. */
static void test_size_params_and_analysis(void **state)
{
    (void)state;
    attn_rnn *r = new_rnn(ATTN_CELL_GRU, ATTN_RECURRENCE_DENSE, 2, 4, 1);
    attn_params *p = attn_rnn_params(r);
    float *buf = filled_floats(64, 0.25f);
    static const int64_t counts[] = {P40, INT64_MAX, HUGE_SIZE, -P40};
    for (int i = 0; i < COUNT_OF(counts); i++) {
        char what[96];
        snprintf(what, sizeof what, "count %lld", (long long)counts[i]);
        SIZE_FAILS(attn_params_set(p, "weight_ih_l0", buf, counts[i]), "attn_params_set", what);
        SIZE_FAILS(attn_params_get(p, "weight_ih_l0", buf, counts[i]), "attn_params_get", what);
        SIZE_FAILS(attn_params_info(p, counts[i], &(attn_tensor_info){0}), "attn_params_info", what);
    }
    attn_rnn_destroy(r);

    double sigma[4], err;
    attn_rank_report rep;
    static const int64_t ashapes[][2] = {{P20, P20}, {P40, 1}, {1, P40}, {P40, P40}, {INT64_MAX, 2}};
    for (int i = 0; i < COUNT_OF(ashapes); i++) {
        char what[96];
        const int64_t rows = ashapes[i][0], cols = ashapes[i][1];
        snprintf(what, sizeof what, "analysis %lld x %lld", (long long)rows, (long long)cols);
        SIZE_FAILS(attn_singular_values(buf, rows, cols, sigma), "attn_singular_values", what);
        SIZE_FAILS(attn_rank_analyze(buf, rows, cols, &rep), "attn_rank_analyze", what);
        SIZE_FAILS(attn_lowrank_error(buf, rows, cols, 1, &err), "attn_lowrank_error", what);
        SIZE_FAILS(attn_lowrank_factors(buf, rows, cols, 1, buf + 16, buf + 32), "attn_lowrank_factors", what);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_rnn_nonfinite),
        cmocka_unit_test(test_memrnn_nonfinite),
        cmocka_unit_test(test_mha_nonfinite),
        cmocka_unit_test(test_perceiver_nonfinite),
        cmocka_unit_test(test_analysis_extreme),
        cmocka_unit_test(test_mha_extreme_scores),
        cmocka_unit_test(test_perceiver_extreme),
        cmocka_unit_test(test_memrnn_addressing),
        cmocka_unit_test(test_size_create),
        cmocka_unit_test(test_size_forward),
        cmocka_unit_test(test_size_params_and_analysis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
