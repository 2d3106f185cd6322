/*
 * test_concurrency.c: the thread contract of docs/abi.md, family by family. THREADS threads run
 * forward on one const handle at once, the first half each with its own workspace and the other
 * half with NULL (the call's own scratch), ITERATIONS times each; every result must be bit for bit
 * the one of a serial call. Covered: attn_rnn_forward and attn_rnn_forward_lengths for LSTM, GRU
 * and tanh cells with DENSE, LOW_RANK and KRONECKER recurrences; attn_memrnn_forward with DENSE and
 * SPARSE addressing; attn_mha_forward and attn_mha_attention_matrix for FULL (materialized,
 * streaming, causal), LINFORMER and NYSTROM (Newton and SVD pseudo-inverse); attn_perceiver_forward
 * (latents and logits); the four analysis functions. A few cases are sized so that the thread
 * teams of core/team.c start helpers inside every caller thread. Then THREADS threads each load a
 * different safetensors file (written here by attn_params_save, from weights drawn with different
 * seeds, with and without a prefix) into handles of their own with attn_params_load, and open it
 * with attn_params_open, at once.
 *
 * The ATTN_TSAN build runs this under ThreadSanitizer, where the first report fails the test
 * (tests/CMakeLists.txt). Sizes are small so that it stays fast there: the point is overlap, not
 * volume. Every thread also makes a failing call per iteration and checks that attn_last_error()
 * holds its own message (the buffer is thread-local).
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

enum { THREADS = 8, ITERATIONS = 4, LOAD_ITERATIONS = 3 };

/* One concurrent case: run(ctx, ws, out) writes out_bytes bytes of results. */
typedef attn_status (*run_fn)(const void *ctx, attn_workspace *ws, unsigned char *out);
typedef struct par_case {
    const char *name;
    run_fn run;
    const void *ctx;
    size_t out_bytes;
} par_case;

typedef struct par_thread {
    const par_case *c;
    const unsigned char *want;
    pthread_barrier_t *start;
    int index, iterations;
    int failures, mismatches, message_wrong;
    char first_error[256];
} par_thread;

/* A failing call whose message carries this thread's number: a shared error buffer would show
 * another thread's number here sooner or later. */
static int own_error_message(int index)
{
    char name[64], want[96];
    snprintf(name, sizeof name, "no_tensor_of_thread_%d", index);
    snprintf(want, sizeof want, "'%s'", name);
    attn_params *none = NULL;
    attn_status s = attn_params_open(&none, name, NULL);
    return s == ATTN_E_IO && none == NULL && strstr(attn_last_error(), "attn_params_open") &&
           strstr(attn_last_error(), name);
}

static void *par_main(void *arg)
{
    par_thread *t = arg;
    attn_workspace *ws = NULL;
    if (t->index < THREADS / 2 && attn_workspace_create(&ws) != ATTN_OK) {
        t->failures++;
        return NULL;
    }
    unsigned char *out = malloc(t->c->out_bytes);
    if (!out) {
        t->failures++;
        attn_workspace_destroy(ws);
        return NULL;
    }
    pthread_barrier_wait(t->start);
    for (int it = 0; it < t->iterations; it++) {
        memset(out, 0xA5, t->c->out_bytes); /* an unwritten byte would show */
        const attn_status s = t->c->run(t->c->ctx, ws, out);
        if (s != ATTN_OK) {
            if (!t->failures++)
                snprintf(t->first_error, sizeof t->first_error, "%s", attn_last_error());
            continue;
        }
        t->mismatches += memcmp(out, t->want, t->c->out_bytes) != 0;
        t->message_wrong += !own_error_message(t->index);
    }
    free(out);
    attn_workspace_destroy(ws);
    return NULL;
}

/* The serial result with NULL and with a workspace (equal), then THREADS threads at once. */
static void run_parallel(const par_case *c, int iterations)
{
    unsigned char *want = xmalloc(c->out_bytes), *again = xmalloc(c->out_bytes);
    memset(want, 0x5A, c->out_bytes);
    memset(again, 0xA5, c->out_bytes);
    ASSERT_OK(c->run(c->ctx, NULL, want));
    attn_workspace *ws = NULL;
    ASSERT_OK(attn_workspace_create(&ws));
    ASSERT_OK(c->run(c->ctx, ws, again));
    attn_workspace_destroy(ws);
    if (memcmp(want, again, c->out_bytes) != 0)
        fail_msg("%s: serial results with and without a workspace differ", c->name);

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    par_thread jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        jobs[i] = (par_thread){.c = c, .want = want, .start = &start, .index = i, .iterations = iterations};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, par_main, &jobs[i]), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < THREADS; i++)
        if (jobs[i].failures || jobs[i].mismatches || jobs[i].message_wrong)
            fail_msg("%s: thread %d (%s): %d failed calls (first: \"%s\"), %d results differing from the serial one, "
                     "%d wrong error messages",
                     c->name, i, i < THREADS / 2 ? "own workspace" : "NULL workspace", jobs[i].failures,
                     jobs[i].first_error, jobs[i].mismatches, jobs[i].message_wrong);
    free(want), free(again);
}

/* ================================================================================================
 * RNN
 * ============================================================================================= */

typedef struct rnn_ctx {
    const attn_rnn *rnn;
    int64_t batch, seq, input, hidden, dirs, dirs_layers;
    int lstm, use_lengths;
    const int64_t *lengths;
    const float *x, *h0, *c0;
} rnn_ctx;

static size_t rnn_out_floats(const rnn_ctx *r)
{
    const int64_t y = r->batch * r->seq * r->dirs * r->hidden, st = r->dirs_layers * r->batch * r->hidden;
    return (size_t)(y + st * (r->lstm ? 2 : 1));
}

static attn_status rnn_run(const void *ctx, attn_workspace *ws, unsigned char *out)
{
    const rnn_ctx *r = ctx;
    float *y = (float *)out, *h_n = y + r->batch * r->seq * r->dirs * r->hidden;
    float *c_n = r->lstm ? h_n + r->dirs_layers * r->batch * r->hidden : NULL;
    if (r->use_lengths)
        return attn_rnn_forward_lengths(r->rnn, ws, r->batch, r->seq, r->lengths, r->x, r->h0, r->c0, y, h_n, c_n);
    return attn_rnn_forward(r->rnn, ws, r->batch, r->seq, r->x, r->h0, r->c0, y, h_n, c_n);
}

static attn_rnn *new_rnn(int32_t cell, int32_t recurrence, int64_t input, int64_t hidden, int64_t layers, int bidir,
                         uint64_t seed)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o));
    o.cell = cell;
    o.recurrence = recurrence;
    o.input_size = input;
    o.hidden_size = hidden;
    o.num_layers = layers;
    o.bidirectional = bidir;
    if (recurrence == ATTN_RECURRENCE_LOW_RANK)
        o.rank = hidden / 2;
    if (recurrence == ATTN_RECURRENCE_KRONECKER) { /* hidden = 8 = 2 x 4 */
        o.num_factors = 2;
        o.factor_sizes[0] = 2;
        o.factor_sizes[1] = hidden / 2;
    }
    attn_rnn *rnn = NULL;
    ASSERT_OK(attn_rnn_create(&rnn, &o));
    ASSERT_OK(attn_params_init(attn_rnn_params(rnn), seed));
    return rnn;
}

/* 3 cells x 3 recurrences (2 layers, bidirectional, h0/c0 given), each through forward and
 * forward_lengths. */
static void test_rnn(void **state)
{
    (void)state;
    static const int32_t cells[] = {ATTN_CELL_LSTM, ATTN_CELL_GRU, ATTN_CELL_RNN_TANH};
    static const int32_t recs[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_LOW_RANK, ATTN_RECURRENCE_KRONECKER};
    static const char *cell_names[] = {"LSTM", "GRU", "tanh"}, *rec_names[] = {"DENSE", "LOW_RANK", "KRONECKER"};
    const int64_t B = 3, T = 4, I = 5, H = 8, LD = 4;
    static const int64_t lengths[] = {4, 2, 3};
    float *x = random_floats(B * T * I, 11, 1.0), *h0 = random_floats(LD * B * H, 12, 0.5);
    float *c0 = random_floats(LD * B * H, 13, 0.5);
    for (int ci = 0; ci < COUNT_OF(cells); ci++)
        for (int ri = 0; ri < COUNT_OF(recs); ri++) {
            attn_rnn *rnn = new_rnn(cells[ci], recs[ri], I, H, 2, 1, 100 + (uint64_t)(ci * 3 + ri));
            for (int lens = 0; lens < 2; lens++) {
                const int lstm = cells[ci] == ATTN_CELL_LSTM;
                rnn_ctx r = {.rnn = rnn, .batch = B, .seq = T, .input = I, .hidden = H, .dirs = 2, .dirs_layers = LD,
                             .lstm = lstm, .use_lengths = lens, .lengths = lengths, .x = x, .h0 = h0,
                             .c0 = lstm ? c0 : NULL};
                char name[96];
                snprintf(name, sizeof name, "attn_rnn_forward%s %s %s", lens ? "_lengths" : "", cell_names[ci],
                         rec_names[ri]);
                const par_case c = {name, rnn_run, &r, rnn_out_floats(&r) * sizeof(float)};
                run_parallel(&c, ITERATIONS);
            }
            attn_rnn_destroy(rnn);
        }
    free(x), free(h0), free(c0);
}

/* B * G * H = 40 * 4 * 256 reaches the size at which each call's cells run on a thread team, and
 * KRONECKER's mode products (2 x 128: the factor of 128 in 5 blocks of rows) too. */
static void test_rnn_team(void **state)
{
    (void)state;
    const int64_t B = 40, T = 3, I = 8, H = 256;
    float *x = random_floats(B * T * I, 21, 1.0);
    static const int32_t recs[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_KRONECKER};
    static const char *names[] = {"attn_rnn_forward LSTM DENSE (thread team)",
                                  "attn_rnn_forward LSTM KRONECKER (thread team)"};
    for (int ri = 0; ri < COUNT_OF(recs); ri++) {
        attn_rnn *rnn = new_rnn(ATTN_CELL_LSTM, recs[ri], I, H, 1, 0, 7);
        rnn_ctx r = {.rnn = rnn, .batch = B, .seq = T, .input = I, .hidden = H, .dirs = 1, .dirs_layers = 1,
                     .lstm = 1, .x = x};
        const par_case c = {names[ri], rnn_run, &r, rnn_out_floats(&r) * sizeof(float)};
        run_parallel(&c, 2);
        attn_rnn_destroy(rnn);
    }
    free(x);
}

/* ================================================================================================
 * The thread's workspace (forward with ws = NULL)
 * ============================================================================================= */

typedef struct thread_ws_job {
    const attn_rnn *rnn;
    const float *x;
    int64_t want_bytes, size_in_thread;
    float y[2 * 3 * 8], h_n[2 * 8];
    attn_status status;
} thread_ws_job;

static void *thread_ws_main(void *arg)
{
    thread_ws_job *j = arg;
    j->status = attn_rnn_forward(j->rnn, NULL, 2, 3, j->x, NULL, NULL, j->y, j->h_n, NULL);
    j->size_in_thread = attn_thread_workspace_size();
    return NULL; /* the thread's workspace is freed at its exit: LSan and valgrind see a leak otherwise */
}

/* A NULL-workspace call grows the calling thread's workspace to exactly the reported cost and keeps
 * it for the next call; each thread has its own; release frees it and the next call grows it again. */
static void test_thread_workspace(void **state)
{
    (void)state;
    attn_rnn *rnn = new_rnn(ATTN_CELL_GRU, ATTN_RECURRENCE_DENSE, 5, 8, 1, 0, 31);
    float *x = random_floats(2 * 3 * 5, 32, 1.0);
    attn_cost cost;
    ASSERT_OK(attn_rnn_cost(rnn, 2, 3, &cost));
    attn_thread_workspace_release();
    assert_int_equal(attn_thread_workspace_size(), 0);
    float y[2 * 3 * 8], h_n[2 * 8], y_ws[2 * 3 * 8], h_n_ws[2 * 8];
    ASSERT_OK(attn_rnn_forward(rnn, NULL, 2, 3, x, NULL, NULL, y, h_n, NULL));
    assert_int_equal(attn_thread_workspace_size(), cost.workspace_bytes);
    ASSERT_OK(attn_rnn_forward(rnn, NULL, 2, 3, x, NULL, NULL, y, h_n, NULL));
    assert_int_equal(attn_thread_workspace_size(), cost.workspace_bytes);

    attn_workspace *ws;
    ASSERT_OK(attn_workspace_create(&ws));
    ASSERT_OK(attn_rnn_forward(rnn, ws, 2, 3, x, NULL, NULL, y_ws, h_n_ws, NULL));
    assert_memory_equal(y, y_ws, sizeof y);
    assert_memory_equal(h_n, h_n_ws, sizeof h_n);
    attn_workspace_destroy(ws);

    thread_ws_job jobs[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_ws_job){.rnn = rnn, .x = x};
        assert_int_equal(pthread_create(&threads[i], NULL, thread_ws_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        ASSERT_OK(jobs[i].status);
        assert_int_equal(jobs[i].size_in_thread, cost.workspace_bytes);
        assert_memory_equal(jobs[i].y, y, sizeof y);
    }
    attn_thread_workspace_release();
    assert_int_equal(attn_thread_workspace_size(), 0);
    attn_thread_workspace_release(); /* twice: harmless */
    ASSERT_OK(attn_rnn_forward(rnn, NULL, 2, 3, x, NULL, NULL, y_ws, h_n_ws, NULL));
    assert_memory_equal(y, y_ws, sizeof y);
    assert_int_equal(attn_thread_workspace_size(), cost.workspace_bytes);
    attn_rnn_destroy(rnn);
    free(x);
}

/* ================================================================================================
 * Memory RNN
 * ============================================================================================= */

typedef struct mem_ctx {
    const attn_memrnn *m;
    int64_t batch, seq, out, heads, slots, width;
    const float *x;
} mem_ctx;

static size_t mem_out_floats(const mem_ctx *m)
{
    return (size_t)(m->batch * m->seq * m->out + m->batch * m->seq * m->heads * m->slots +
                    m->batch * m->slots * m->width);
}

static attn_status mem_run(const void *ctx, attn_workspace *ws, unsigned char *out)
{
    const mem_ctx *m = ctx;
    float *y = (float *)out, *rw = y + m->batch * m->seq * m->out, *mem = rw + m->batch * m->seq * m->heads * m->slots;
    return attn_memrnn_forward(m->m, ws, m->batch, m->seq, m->x, y, rw, mem);
}

static attn_memrnn *new_memrnn(int64_t in, int64_t out, int64_t heads, int64_t slots, int64_t width, int32_t addressing,
                               int64_t top_k, uint64_t seed)
{
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_options_init(&o));
    o.input_size = in;
    o.output_size = out;
    o.controller_size = 8;
    o.num_heads = heads;
    o.memory_slots = slots;
    o.memory_width = width;
    o.addressing = addressing;
    o.top_k = top_k;
    attn_memrnn *m = NULL;
    ASSERT_OK(attn_memrnn_create(&m, &o));
    ASSERT_OK(attn_params_init(attn_memrnn_params(m), seed));
    return m;
}

static void test_memrnn(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int32_t addressing;
        int64_t top_k, batch, slots, width, heads;
        int iterations;
    } cases[] = {
        {"attn_memrnn_forward DENSE", ATTN_MEMORY_DENSE, 0, 2, 6, 5, 2, ITERATIONS},
        {"attn_memrnn_forward SPARSE top_k 2", ATTN_MEMORY_SPARSE, 2, 2, 6, 5, 2, ITERATIONS},
        /* B (N W + 4096) >= 2^18 floats: the step runs on a thread team, by batch element (B = 2) and
         * by blocks of 128 memory rows (B = 1) */
        {"attn_memrnn_forward DENSE (thread team, B = 2)", ATTN_MEMORY_DENSE, 0, 2, 2048, 64, 1, 2},
        {"attn_memrnn_forward DENSE (thread team, B = 1)", ATTN_MEMORY_DENSE, 0, 1, 4096, 64, 1, 2},
    };
    const int64_t in = 4, out = 3, T = 3;
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_memrnn *m = new_memrnn(in, out, cases[k].heads, cases[k].slots, cases[k].width, cases[k].addressing,
                                    cases[k].top_k, 30 + (uint64_t)k);
        float *x = random_floats(cases[k].batch * T * in, 31, 1.0);
        mem_ctx mc = {m, cases[k].batch, T, out, cases[k].heads, cases[k].slots, cases[k].width, x};
        const par_case c = {cases[k].name, mem_run, &mc, mem_out_floats(&mc) * sizeof(float)};
        run_parallel(&c, cases[k].iterations);
        free(x);
        attn_memrnn_destroy(m);
    }
}

/* ================================================================================================
 * Multi-head attention
 * ============================================================================================= */

typedef struct mha_ctx {
    const attn_mha *mha;
    int64_t batch, tgt, src, embed, heads;
    int matrix;
    const float *q, *k, *v;
    const uint8_t *mask;
} mha_ctx;

static attn_status mha_run(const void *ctx, attn_workspace *ws, unsigned char *out)
{
    const mha_ctx *m = ctx;
    if (m->matrix)
        return attn_mha_attention_matrix(m->mha, ws, m->batch, m->tgt, m->src, m->q, m->k, m->v, m->mask, (float *)out);
    return attn_mha_forward(m->mha, ws, m->batch, m->tgt, m->src, m->q, m->k, m->v, m->mask, (float *)out);
}

static void test_mha(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int32_t kind, memory_mode, causal, sharing, pinv;
        int64_t landmarks, conv, batch, tgt, src;
        int iterations;
    } cases[] = {
        {"FULL MATERIALIZE", ATTN_MHA_FULL, ATTN_MEMORY_MATERIALIZE, 0, 0, 0, 0, 0, 2, 5, 7, ITERATIONS},
        {"FULL STREAMING", ATTN_MHA_FULL, ATTN_MEMORY_STREAMING, 0, 0, 0, 0, 0, 2, 5, 7, ITERATIONS},
        {"FULL STREAMING causal", ATTN_MHA_FULL, ATTN_MEMORY_STREAMING, 1, 0, 0, 0, 0, 2, 6, 6, ITERATIONS},
        {"LINFORMER HEADWISE", ATTN_MHA_LINFORMER, 0, 0, ATTN_LINFORMER_HEADWISE, 0, 0, 0, 2, 5, 7, ITERATIONS},
        {"LINFORMER NONE", ATTN_MHA_LINFORMER, 0, 0, ATTN_LINFORMER_NONE, 0, 0, 0, 2, 5, 7, ITERATIONS},
        {"NYSTROM NEWTON conv 3", ATTN_MHA_NYSTROM, 0, 0, 0, ATTN_PINV_NEWTON, 3, 3, 2, 6, 6, ITERATIONS},
        {"NYSTROM SVD", ATTN_MHA_NYSTROM, 0, 0, 0, ATTN_PINV_SVD, 3, 0, 2, 5, 7, ITERATIONS},
        /* 192 x 192 scores per head reach the size at which the softmax rows run on a thread team */
        {"FULL MATERIALIZE (thread team)", ATTN_MHA_FULL, ATTN_MEMORY_MATERIALIZE, 0, 0, 0, 0, 0, 1, 192, 192, 2},
    };
    const int64_t E = 8, h = 2;
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_mha_options o;
        ASSERT_OK(attn_mha_options_init(&o));
        o.kind = cases[k].kind;
        o.embed_dim = E;
        o.num_heads = h;
        o.causal = cases[k].causal;
        if (o.kind == ATTN_MHA_FULL)
            o.memory_mode = cases[k].memory_mode;
        if (o.kind == ATTN_MHA_LINFORMER) {
            o.max_seq_len = 9;
            o.proj_len = 4;
            o.sharing = cases[k].sharing;
        }
        if (o.kind == ATTN_MHA_NYSTROM) {
            o.num_landmarks = cases[k].landmarks;
            o.pinv = cases[k].pinv;
            o.conv_kernel = cases[k].conv;
        }
        attn_mha *mha = NULL;
        ASSERT_OK(attn_mha_create(&mha, &o));
        ASSERT_OK(attn_params_init(attn_mha_params(mha), 40 + (uint64_t)k));
        const int64_t B = cases[k].batch, L = cases[k].tgt, S = cases[k].src;
        float *q = random_floats(B * L * E, 41, 1.0), *kk = random_floats(B * S * E, 42, 1.0);
        float *v = random_floats(B * S * E, 43, 1.0);
        uint8_t *mask = xmalloc((size_t)(B * S));
        for (int64_t i = 0; i < B * S; i++)
            mask[i] = i % 5 == 3; /* a few masked keys, never a whole row */
        for (int matrix = 0; matrix < 2; matrix++) {
            if (matrix && L * S > 1000)
                continue; /* the team case is about forward's softmax */
            mha_ctx mc = {mha, B, L, S, E, h, matrix, q, kk, v, o.kind == ATTN_MHA_NYSTROM && cases[k].conv ? NULL : mask};
            char name[96];
            snprintf(name, sizeof name, "%s %s", matrix ? "attn_mha_attention_matrix" : "attn_mha_forward",
                     cases[k].name);
            const size_t n = (size_t)(matrix ? B * h * L * S : B * L * E);
            const par_case c = {name, mha_run, &mc, n * sizeof(float)};
            run_parallel(&c, cases[k].iterations);
        }
        free(q), free(kk), free(v), free(mask);
        attn_mha_destroy(mha);
    }
}

/* ================================================================================================
 * Perceiver
 * ============================================================================================= */

typedef struct perc_ctx {
    const attn_perceiver *p;
    int64_t batch;
    const int64_t *sizes;
    const float *data;
    const uint8_t *mask;
} perc_ctx;

static attn_status perc_run(const void *ctx, attn_workspace *ws, unsigned char *out)
{
    const perc_ctx *p = ctx;
    return attn_perceiver_forward(p->p, ws, p->batch, p->sizes, p->data, p->mask, (float *)out);
}

static void test_perceiver(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int64_t classes, batch, sizes[2];
        int masked, iterations;
    } cases[] = {
        {"attn_perceiver_forward latents, mask", 0, 2, {3, 4}, 1, ITERATIONS},
        {"attn_perceiver_forward logits", 3, 2, {3, 4}, 0, ITERATIONS},
        /* B * N = 2 * 2048 input rows reach the size at which their statistics run on a thread team */
        {"attn_perceiver_forward (thread team)", 0, 2, {32, 64}, 0, 2},
    };
    const int64_t C = 3;
    for (int k = 0; k < COUNT_OF(cases); k++) {
        attn_perceiver_options o;
        ASSERT_OK(attn_perceiver_options_init(&o));
        o.input_channels = C;
        o.input_axis = 2;
        o.num_freq_bands = 2;
        o.max_freq = 4.0;
        o.depth = 2;
        o.num_latents = 4;
        o.latent_dim = 8;
        o.cross_dim_head = 4;
        o.latent_heads = 2;
        o.latent_dim_head = 4;
        o.num_classes = cases[k].classes;
        attn_perceiver *p = NULL;
        ASSERT_OK(attn_perceiver_create(&p, &o));
        ASSERT_OK(attn_params_init(attn_perceiver_params(p), 50 + (uint64_t)k));
        const int64_t B = cases[k].batch, N = cases[k].sizes[0] * cases[k].sizes[1];
        float *data = random_floats(B * N * C, 51, 1.0);
        uint8_t *mask = xmalloc((size_t)(B * N));
        for (int64_t i = 0; i < B * N; i++)
            mask[i] = i % 4 == 1;
        perc_ctx pc = {p, B, cases[k].sizes, data, cases[k].masked ? mask : NULL};
        const size_t n = (size_t)(cases[k].classes ? B * cases[k].classes : B * o.num_latents * o.latent_dim);
        const par_case c = {cases[k].name, perc_run, &pc, n * sizeof(float)};
        run_parallel(&c, cases[k].iterations);
        free(data), free(mask);
        attn_perceiver_destroy(p);
    }
}

/* ================================================================================================
 * Analysis (no handle: concurrent calls on one shared input matrix; the workspace is unused)
 * ============================================================================================= */

typedef struct ana_ctx {
    const float *a;
    int64_t rows, cols, rank;
} ana_ctx;

static attn_status ana_run(const void *ctx, attn_workspace *ws, unsigned char *out)
{
    (void)ws;
    const ana_ctx *c = ctx;
    const int64_t n = c->rows < c->cols ? c->rows : c->cols;
    double *sigma = (double *)out, *err = sigma + n;
    attn_rank_report *rep = (attn_rank_report *)(err + 1);
    float *u = (float *)(rep + 1), *v = u + c->rows * c->rank;
    attn_status s = attn_singular_values(c->a, c->rows, c->cols, sigma);
    if (s == ATTN_OK)
        s = attn_lowrank_error(c->a, c->rows, c->cols, c->rank, err);
    if (s == ATTN_OK) {
        memset(rep, 0, sizeof *rep); /* its padding, if any, must compare equal */
        s = attn_rank_analyze(c->a, c->rows, c->cols, rep);
    }
    if (s == ATTN_OK)
        s = attn_lowrank_factors(c->a, c->rows, c->cols, c->rank, u, v);
    return s;
}

static void test_analysis(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{12, 9}, {7, 15}};
    for (int k = 0; k < COUNT_OF(shapes); k++) {
        ana_ctx ac = {NULL, shapes[k][0], shapes[k][1], 3};
        float *a = random_floats(ac.rows * ac.cols, 60 + (uint64_t)k, 1.0);
        ac.a = a;
        const int64_t n = ac.rows < ac.cols ? ac.rows : ac.cols;
        const size_t bytes = (size_t)(n + 1) * sizeof(double) + sizeof(attn_rank_report) +
                             (size_t)((ac.rows + ac.cols) * ac.rank) * sizeof(float);
        char name[96];
        snprintf(name, sizeof name, "analysis functions %lld x %lld", (long long)ac.rows, (long long)ac.cols);
        const par_case c = {name, ana_run, &ac, bytes};
        run_parallel(&c, ITERATIONS);
        free(a);
    }
}

/* ================================================================================================
 * Loading: every thread its own file and its own handles
 * ============================================================================================= */

enum { FAMILY_RNN, FAMILY_MHA, FAMILY_MEMRNN, FAMILY_PERCEIVER, FAMILIES };

/* A handle of family f with weights from `seed`; *params its registry; *destroy frees it. */
typedef struct any_handle {
    void *h;
    attn_params *params;
    int family;
} any_handle;

static any_handle new_handle(int family, uint64_t seed)
{
    any_handle a = {NULL, NULL, family};
    switch (family) {
    case FAMILY_RNN: {
        attn_rnn *r = new_rnn(ATTN_CELL_GRU, ATTN_RECURRENCE_LOW_RANK, 5, 8, 2, 1, seed);
        a.h = r, a.params = attn_rnn_params(r);
        break;
    }
    case FAMILY_MHA: {
        attn_mha_options o;
        ASSERT_OK(attn_mha_options_init(&o));
        o.kind = ATTN_MHA_LINFORMER;
        o.embed_dim = 8;
        o.num_heads = 2;
        o.max_seq_len = 9;
        o.proj_len = 4;
        o.sharing = ATTN_LINFORMER_NONE;
        attn_mha *m = NULL;
        ASSERT_OK(attn_mha_create(&m, &o));
        a.h = m, a.params = attn_mha_params(m);
        break;
    }
    case FAMILY_MEMRNN: {
        attn_memrnn *m = new_memrnn(4, 3, 2, 6, 5, ATTN_MEMORY_DENSE, 0, seed);
        a.h = m, a.params = attn_memrnn_params(m);
        break;
    }
    default: {
        attn_perceiver_options o;
        ASSERT_OK(attn_perceiver_options_init(&o));
        o.input_channels = 3;
        o.input_axis = 1;
        o.num_freq_bands = 2;
        o.max_freq = 4.0;
        o.depth = 3;
        o.weight_tie_layers = 1;
        o.num_latents = 4;
        o.latent_dim = 8;
        o.cross_dim_head = 4;
        o.latent_heads = 2;
        o.latent_dim_head = 4;
        o.num_classes = 2;
        attn_perceiver *p = NULL;
        ASSERT_OK(attn_perceiver_create(&p, &o));
        a.h = p, a.params = attn_perceiver_params(p);
        break;
    }
    }
    ASSERT_OK(attn_params_init(a.params, seed));
    return a;
}

static void free_handle(any_handle *a)
{
    switch (a->family) {
    case FAMILY_RNN: attn_rnn_destroy(a->h); break;
    case FAMILY_MHA: attn_mha_destroy(a->h); break;
    case FAMILY_MEMRNN: attn_memrnn_destroy(a->h); break;
    default: attn_perceiver_destroy(a->h); break;
    }
}

/* Every tensor of p, concatenated in registry order. */
static float *all_values(const attn_params *p, int64_t *total)
{
    int64_t n = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        if (attn_params_info(p, i, &info) != ATTN_OK)
            return NULL;
        n += info.count;
    }
    float *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all)
        return NULL;
    int64_t at = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        if (attn_params_info(p, i, &info) != ATTN_OK || attn_params_get(p, info.name, all + at, info.count) != ATTN_OK) {
            free(all);
            return NULL;
        }
        at += info.count;
    }
    *total = n;
    return all;
}

typedef struct load_thread {
    int index, family;
    char path[512];
    const char *prefix;
    any_handle dst[LOAD_ITERATIONS]; /* made serially: the CMocka asserts of new_handle must not run on a thread */
    const float *want; /* the source handle's values, registry order */
    int64_t want_count;
    pthread_barrier_t *start;
    int failures, mismatches, message_wrong;
    char first_error[256];
} load_thread;

static void load_failed(load_thread *t)
{
    if (!t->failures++)
        snprintf(t->first_error, sizeof t->first_error, "%s", attn_last_error());
}

/* Each iteration: a handle of its own (seed 0 values), attn_params_load of the thread's file, its values
 * against the source's; attn_params_open of the same file, every tensor against the handle's. */
static void *load_main(void *arg)
{
    load_thread *t = arg;
    pthread_barrier_wait(t->start);
    for (int it = 0; it < LOAD_ITERATIONS; it++) {
        any_handle h = t->dst[it];
        if (attn_params_load(h.params, t->path, t->prefix, ATTN_LOAD_REJECT_UNKNOWN) != ATTN_OK) {
            load_failed(t);
            continue;
        }
        int64_t n = 0;
        float *got = all_values(h.params, &n);
        t->mismatches += !got || n != t->want_count || memcmp(got, t->want, (size_t)n * sizeof *got) != 0;
        free(got);
        attn_params *set = NULL;
        if (attn_params_open(&set, t->path, t->prefix) != ATTN_OK) {
            load_failed(t);
        } else {
            /* the file's tensors are the handle's, found by name (the file's order is its own) */
            t->mismatches += attn_params_count(set) != attn_params_count(h.params);
            for (int64_t i = 0; i < attn_params_count(h.params); i++) {
                attn_tensor_info info, other;
                if (attn_params_info(h.params, i, &info) != ATTN_OK || attn_params_find(set, info.name, &other) != ATTN_OK ||
                    other.count != info.count) {
                    t->mismatches++;
                    continue;
                }
                float *a = malloc((size_t)info.count * sizeof *a), *b = malloc((size_t)info.count * sizeof *b);
                if (!a || !b || attn_params_get(h.params, info.name, a, info.count) != ATTN_OK ||
                    attn_params_get(set, info.name, b, info.count) != ATTN_OK ||
                    memcmp(a, b, (size_t)info.count * sizeof *a) != 0)
                    t->mismatches++;
                free(a), free(b);
            }
            attn_params_close(set);
        }
        t->message_wrong += !own_error_message(t->index);
    }
    return NULL;
}

static void test_load_files(void **state)
{
    (void)state;
    const char *dir = getenv("ATTN_TEST_TMPDIR");
    load_thread jobs[THREADS];
    float *wants[THREADS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        load_thread *t = &jobs[i];
        *t = (load_thread){.index = i, .family = i % FAMILIES, .prefix = i % 2 ? "model." : NULL, .start = &start};
        snprintf(t->path, sizeof t->path, "%s/test_concurrency_%d.safetensors", dir && *dir ? dir : ".", i);
        any_handle src = new_handle(t->family, 1000 + (uint64_t)i);
        ASSERT_OK(attn_params_save(src.params, t->path, t->prefix));
        wants[i] = all_values(src.params, &t->want_count);
        assert_non_null(wants[i]);
        t->want = wants[i];
        /* the serial load reproduces the source (and differs from the seed-0 start) */
        any_handle dst = new_handle(t->family, 0);
        int64_t n = 0;
        float *before = all_values(dst.params, &n);
        assert_non_null(before);
        assert_true(n == t->want_count && memcmp(before, t->want, (size_t)n * sizeof *before) != 0);
        ASSERT_OK(attn_params_load(dst.params, t->path, t->prefix, ATTN_LOAD_REJECT_UNKNOWN));
        float *after = all_values(dst.params, &n);
        assert_non_null(after);
        assert_memory_equal(after, t->want, (size_t)n * sizeof *after);
        free(before), free(after);
        free_handle(&dst);
        free_handle(&src);
        for (int it = 0; it < LOAD_ITERATIONS; it++)
            t->dst[it] = new_handle(t->family, 0);
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, load_main, &jobs[i]), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < THREADS; i++) {
        if (jobs[i].failures || jobs[i].mismatches || jobs[i].message_wrong)
            fail_msg("loading %s: thread %d: %d failed calls (first: \"%s\"), %d results differing from the serial "
                     "load, %d wrong error messages",
                     jobs[i].path, i, jobs[i].failures, jobs[i].first_error, jobs[i].mismatches, jobs[i].message_wrong);
        remove(jobs[i].path);
        free(wants[i]);
        for (int it = 0; it < LOAD_ITERATIONS; it++)
            free_handle(&jobs[i].dst[it]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rnn),       cmocka_unit_test(test_rnn_team),  cmocka_unit_test(test_memrnn),
        cmocka_unit_test(test_mha),       cmocka_unit_test(test_perceiver), cmocka_unit_test(test_analysis),
        cmocka_unit_test(test_load_files), cmocka_unit_test(test_thread_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
