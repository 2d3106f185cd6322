/* attn_memrnn: the Neural Turing Machine of loudinthecloud/pytorch-ntm (EncapsulatedNTM): an LSTM
 * controller, num_heads pairs of (read, write) heads on a memory of N slots x W per batch element,
 * dense or top-k sparse addressing (docs/memory.md).
 *
 * Shape of one step over the whole batch: the controller (one GEMM per layer and operand), one GEMM
 * per head for its parameters o = fc(c), then per head pair: the memory of each batch element
 * against the pair's two keys (read_i and write_i see the same memory) as blocked GEMVs, one pass
 * over the memory; then for each batch element the O(N) addressing (SPARSE also reads and writes its
 * top_k rows there); DENSE then reads and writes all N rows, block by block. The thread team shares
 * the blocks and the batch elements; each GEMV is small enough for OpenBLAS to run it on its caller
 * alone. Inverse slot norms are computed once from mem_bias and then kept up to date by the writes,
 * so the similarity never recomputes them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/memory.h"
#include "core/core.h"

static const size_t first_options_size = sizeof(attn_memrnn_options);

/* Indices into the params registry. */
typedef struct mem_tensors {
    int64_t *w_ih, *w_hh, *b_ih, *b_hh; /* [L] each */
    int64_t *head_w, *head_b;           /* [2R]: read0, write0, read1, ... */
    int64_t *read_bias;                 /* [R] */
    int64_t h_bias, c_bias, fc_w, fc_b, mem_bias;
} mem_tensors;

struct attn_memrnn {
    attn_memrnn_options opt;
    attn_params *params;
    mem_tensors t;
    int64_t *indices;  /* storage of the per-layer and per-head index arrays of t */
    int64_t ctrl_in;   /* controller input: input_size + R*W */
    int64_t fc_in;     /* output layer input: C + R*W */
    int64_t heads_len; /* R * ((W + 6) + (3W + 6)): one batch row of every head's fc output */
    int64_t kept;      /* slots each head reads and writes: N, or top_k when SPARSE with top_k < N */
};

/* Scratch layout of one forward call; byte offsets into the workspace. */
typedef struct mem_plan {
    attn_ws_plan ws;
    size_t memory;  /* [B, N, W] */
    size_t inv_norms; /* [B, N]: 1 / max(||M_i||, 1e-8) of the current memory */
    size_t weights; /* [B, 2R, N]: each head's last weighting */
    size_t h, c;    /* [L, B, C] controller state */
    size_t gates;   /* [B, 4C] */
    size_t reads;   /* [B, R*W]: the reads of the current (then previous) step */
    size_t heads;   /* [B, heads_len] */
    size_t dots;    /* [B, 2, N]: memory rows against a pair's two keys, then addressing scratch */
    size_t tmp;     /* [B, N] addressing scratch */
    size_t top;     /* [B, 2R, kept] int64: each head's kept slots (SPARSE with top_k < N only) */
    size_t partial_reads; /* [B, chunks, W]: DENSE's read chunk by chunk (DENSE only) */
} mem_plan;

enum {
    /* Memory floats per GEMV, below OpenBLAS's threshold for threading one (0.3.21: 9216): the team
     * runs many such GEMVs at once, each on one thread, instead of queuing for OpenBLAS's threads.
     * The chunks depend on N and W alone, so that an element's sums never depend on the batch. */
    GEMV_FLOATS = 1 << 13,
    CLAIM_FLOATS = 1 << 14, /* memory floats per claim of blocks, at B = 1 */
    /* The work of a step, counted in floats of memory streamed: N * W per batch element, plus what
     * its few BLAS calls and the addressing's set-up cost whatever N (a memory of 8 x 64 spends most
     * of its step there). Below TEAM_MIN_FLOATS waking helpers costs more than the work they share. */
    ELEMENT_FLOATS = 1 << 12,
    TEAM_MIN_FLOATS = 1 << 18,
};

/* Memory rows per GEMV, and such chunks per batch element. */
static int64_t chunk_rows(const attn_memrnn_options *o)
{
    return GEMV_FLOATS / o->memory_width > 0 ? GEMV_FLOATS / o->memory_width : 1;
}
static int64_t chunks_per_element(const attn_memrnn_options *o)
{
    return (o->memory_slots + chunk_rows(o) - 1) / chunk_rows(o);
}

attn_status attn_memrnn_options_init(attn_memrnn_options *options)
{
    if (!options)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_memrnn_options_init: options is NULL");
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->controller_layers = 1;
    options->num_heads = 1;
    options->addressing = ATTN_MEMORY_DENSE;
    return ATTN_OK;
}

/* Validates the options and derives the sizes every product uses; each stays within BLAS's 32-bit
 * indices. */
static attn_status validate_options(const attn_memrnn_options *o, attn_memrnn *m)
{
    static const char fn[] = "attn_memrnn_create";
    const int64_t max_dim = INT32_MAX / 8;
    attn_status st;
    if ((st = attn__check_option(fn, "input_size", o->input_size, 1, max_dim)) ||
        (st = attn__check_option(fn, "output_size", o->output_size, 1, max_dim)) ||
        (st = attn__check_option(fn, "controller_size", o->controller_size, 1, max_dim)) ||
        (st = attn__check_option(fn, "controller_layers", o->controller_layers, 1, 1 << 16)) ||
        (st = attn__check_option(fn, "num_heads", o->num_heads, 1, 1 << 16)) ||
        (st = attn__check_option(fn, "memory_slots", o->memory_slots, 1, max_dim)) ||
        (st = attn__check_option(fn, "memory_width", o->memory_width, 1, max_dim)) ||
        (st = attn__check_option(fn, "addressing", o->addressing, ATTN_MEMORY_DENSE, ATTN_MEMORY_SPARSE)) ||
        (st = attn__check_option(fn, "top_k", o->top_k, o->addressing == ATTN_MEMORY_SPARSE ? 1 : 0, INT64_MAX)))
        return st;
    int64_t rw, head_row, slots;
    if (!attn__mul(o->num_heads, o->memory_width, &rw) || !attn__fits_blas_int(m->ctrl_in = o->input_size + rw) ||
        !attn__fits_blas_int(m->fc_in = o->controller_size + rw) ||
        !attn__mul(o->num_heads, 4 * o->memory_width + 12, &head_row) || !attn__fits_blas_int(head_row) ||
        !attn__mul(o->memory_slots, o->memory_width, &slots))
        return attn__fail(ATTN_E_SHAPE, "attn_memrnn_create: num_heads %lld x memory_width %lld (with input_size "
                          "%lld, controller_size %lld) is beyond the 32-bit index range of BLAS", (long long)o->num_heads,
                          (long long)o->memory_width, (long long)o->input_size, (long long)o->controller_size);
    m->heads_len = head_row;
    m->kept = o->addressing == ATTN_MEMORY_SPARSE && o->top_k < o->memory_slots ? o->top_k : o->memory_slots;
    return ATTN_OK;
}

/* Tensors in EncapsulatedNTM's state_dict order, with pytorch-ntm's reset_parameters laws. */
static attn_status declare_tensors(attn_memrnn *m)
{
    const attn_memrnn_options *o = &m->opt;
    const int64_t c = o->controller_size, w = o->memory_width, layers = o->controller_layers;
    const int64_t r = o->num_heads;
    attn_params *p = m->params;
    char name[96];
    attn_status st;
    for (int64_t i = 0; i < r; i++) { /* NTM buffer: randn(1, W) * 0.01 */
        snprintf(name, sizeof name, "ntm.read%lld_bias", (long long)i);
        if ((st = attn__params_add(p, name, 2, (int64_t[]){1, w}, ATTN_INIT_NORMAL, 0.01f, &m->t.read_bias[i])))
            return st;
    }
    /* LSTMController: randn(layers, 1, C) * 0.05 initial states; LSTM weights U(+-5/sqrt(in + C)),
     * biases 0. */
    if ((st = attn__params_add(p, "ntm.controller.lstm_h_bias", 3, (int64_t[]){layers, 1, c}, ATTN_INIT_NORMAL,
                               0.05f, &m->t.h_bias)) ||
        (st = attn__params_add(p, "ntm.controller.lstm_c_bias", 3, (int64_t[]){layers, 1, c}, ATTN_INIT_NORMAL,
                               0.05f, &m->t.c_bias)))
        return st;
    const float lstm_bound = 5.0f / sqrtf((float)(m->ctrl_in + c));
    for (int64_t l = 0; l < layers; l++) {
        const int64_t in = l ? c : m->ctrl_in;
        const struct { const char *fmt; int64_t ndim, d0, d1; attn_init_law law; float a; int64_t *index; } t[] = {
            {"ntm.controller.lstm.weight_ih_l%lld", 2, 4 * c, in, ATTN_INIT_UNIFORM, lstm_bound, &m->t.w_ih[l]},
            {"ntm.controller.lstm.weight_hh_l%lld", 2, 4 * c, c, ATTN_INIT_UNIFORM, lstm_bound, &m->t.w_hh[l]},
            {"ntm.controller.lstm.bias_ih_l%lld", 1, 4 * c, 0, ATTN_INIT_CONSTANT, 0.0f, &m->t.b_ih[l]},
            {"ntm.controller.lstm.bias_hh_l%lld", 1, 4 * c, 0, ATTN_INIT_CONSTANT, 0.0f, &m->t.b_hh[l]},
        };
        for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
            snprintf(name, sizeof name, t[k].fmt, (long long)l);
            if ((st = attn__params_add(p, name, t[k].ndim, (int64_t[]){t[k].d0, t[k].d1}, t[k].law, t[k].a,
                                       t[k].index)))
                return st;
        }
    }
    /* Heads: xavier_uniform(gain 1.4) weights, N(0, 0.01^2) biases. */
    for (int64_t j = 0; j < 2 * r; j++) {
        const bool write = j % 2;
        const int64_t len = write ? 3 * w + 6 : w + 6;
        const float bound = 1.4f * sqrtf(6.0f / (float)(c + len));
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.weight", (long long)j, write ? "write" : "read");
        if ((st = attn__params_add(p, name, 2, (int64_t[]){len, c}, ATTN_INIT_UNIFORM, bound, &m->t.head_w[j])))
            return st;
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.bias", (long long)j, write ? "write" : "read");
        if ((st = attn__params_add(p, name, 1, (int64_t[]){len}, ATTN_INIT_NORMAL, 0.01f, &m->t.head_b[j])))
            return st;
    }
    /* Output layer: xavier_uniform(gain 1), N(0, 0.01^2) bias. Memory bias: U(+-1/sqrt(N + W)). */
    if ((st = attn__params_add(p, "ntm.fc.weight", 2, (int64_t[]){o->output_size, m->fc_in}, ATTN_INIT_UNIFORM,
                               sqrtf(6.0f / (float)(m->fc_in + o->output_size)), &m->t.fc_w)) ||
        (st = attn__params_add(p, "ntm.fc.bias", 1, (int64_t[]){o->output_size}, ATTN_INIT_NORMAL, 0.01f,
                               &m->t.fc_b)) ||
        (st = attn__params_add(p, "memory.mem_bias", 2, (int64_t[]){o->memory_slots, w}, ATTN_INIT_UNIFORM,
                               1.0f / sqrtf((float)(o->memory_slots + w)), &m->t.mem_bias)) ||
        (st = attn__params_alias(p, "ntm.memory.mem_bias", m->t.mem_bias)))
        return st;
    for (int64_t j = 0; j < 2 * r; j++) {
        snprintf(name, sizeof name, "ntm.heads.%lld.memory.mem_bias", (long long)j);
        if ((st = attn__params_alias(p, name, m->t.mem_bias)))
            return st;
    }
    return ATTN_OK;
}

void attn_memrnn_destroy(attn_memrnn *memrnn)
{
    if (!memrnn)
        return;
    attn__params_destroy(memrnn->params);
    free(memrnn->indices);
    attn__free(memrnn);
}

attn_status attn_memrnn_create(attn_memrnn **out, const attn_memrnn_options *options)
{
    static const char fn[] = "attn_memrnn_create";
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    attn_memrnn_options o;
    attn_memrnn_options_init(&o);
    attn_memrnn shape = {0};
    attn_status st = attn__options_read(fn, &o, sizeof o, first_options_size, offsetof(attn_memrnn_options, flags),
                                        options);
    if (st || (st = validate_options(&o, &shape)))
        return st;
    attn_memrnn *m = attn__calloc(sizeof *m);
    const int64_t layers = o.controller_layers, r = o.num_heads;
    int64_t *idx = calloc((size_t)(4 * layers + 5 * r), sizeof *idx);
    if (!m || !idx) {
        attn__free(m);
        free(idx);
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", fn);
    }
    *m = shape;
    m->opt = o;
    m->indices = idx;
    m->t.w_ih = idx, m->t.w_hh = idx + layers, m->t.b_ih = idx + 2 * layers, m->t.b_hh = idx + 3 * layers;
    m->t.head_w = idx + 4 * layers, m->t.head_b = idx + 4 * layers + 2 * r;
    m->t.read_bias = idx + 4 * layers + 4 * r;
    if ((st = attn__params_create(&m->params, fn)) || (st = declare_tensors(m)) ||
        (st = attn__params_finalize(m->params))) {
        attn_memrnn_destroy(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

attn_params *attn_memrnn_params(attn_memrnn *memrnn) { return memrnn ? memrnn->params : NULL; }

attn_status attn_memrnn_get_options(const attn_memrnn *memrnn, attn_memrnn_options *out)
{
    if (!memrnn || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_memrnn_get_options: %s is NULL", memrnn ? "out" : "memrnn");
    *out = memrnn->opt;
    return ATTN_OK;
}

/* ---- validation, plan, cost ------------------------------------------------------------------ */

static mem_plan make_plan(const attn_memrnn *m, int64_t batch)
{
    const attn_memrnn_options *o = &m->opt;
    const int64_t f = sizeof(float), n = o->memory_slots, c = o->controller_size;
    mem_plan p = {0};
    p.memory = attn__plan_take(&p.ws, f, batch, n, o->memory_width);
    p.inv_norms = attn__plan_take(&p.ws, f, batch, n, 1);
    p.weights = attn__plan_take(&p.ws, f, batch, 2 * o->num_heads, n);
    p.h = attn__plan_take(&p.ws, f, o->controller_layers, batch, c);
    p.c = attn__plan_take(&p.ws, f, o->controller_layers, batch, c);
    p.gates = attn__plan_take(&p.ws, f, batch, 4, c);
    p.reads = attn__plan_take(&p.ws, f, batch, o->num_heads, o->memory_width);
    p.heads = attn__plan_take(&p.ws, f, batch, m->heads_len, 1);
    p.dots = attn__plan_take(&p.ws, f, batch, 2, n);
    p.tmp = attn__plan_take(&p.ws, f, batch, n, 1);
    if (m->kept < n)
        p.top = attn__plan_take(&p.ws, sizeof(int64_t), batch, 2 * o->num_heads, m->kept);
    else
        p.partial_reads = attn__plan_take(&p.ws, f, batch, chunks_per_element(o), o->memory_width);
    return p;
}

/* FLOPs of forward per (batch element, step), in double (see docs/memory.md). */
static double step_flops(const attn_memrnn *m)
{
    const attn_memrnn_options *o = &m->opt;
    const double c = (double)o->controller_size, w = (double)o->memory_width, r = (double)o->num_heads;
    const double n = (double)o->memory_slots, kept = (double)m->kept;
    double flops = 2.0 * 4.0 * c * ((double)m->ctrl_in + c); /* layer 0: W_ih and W_hh */
    flops += (double)(o->controller_layers - 1) * 2.0 * 4.0 * c * (2.0 * c);
    flops += 2.0 * c * (double)m->heads_len;         /* every head's fc */
    flops += 2.0 * (double)o->output_size * (double)m->fc_in; /* output layer */
    flops += r * (2.0 * 2.0 * n * w);                 /* similarity of each pair's two keys */
    flops += r * (2.0 * kept * w);                    /* reads */
    flops += r * (4.0 * kept * w);                    /* writes: erase and add */
    return flops;
}

/* Everything forward and cost check before any work, so that both accept and reject exactly the
 * same shapes. */
static attn_status prepare(const char *fn, const attn_memrnn *m, int64_t batch, int64_t seq_len, mem_plan *plan)
{
    if (!m)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: memrnn is NULL", fn);
    if (batch < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: batch must be > 0 (got %lld)", fn, (long long)batch);
    if (seq_len < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: seq_len must be > 0 (got %lld)", fn, (long long)seq_len);
    const attn_memrnn_options *o = &m->opt;
    int64_t ldx, ldy, bytes;
    if (!attn__fits_blas_int(batch) || !attn__mul(seq_len, o->input_size, &ldx) || !attn__fits_blas_int(ldx) ||
        !attn__mul(seq_len, o->output_size, &ldy) || !attn__fits_blas_int(ldy) ||
        !attn__mul3(batch, ldx, sizeof(float), &bytes) || !attn__mul3(batch, ldy, sizeof(float), &bytes) ||
        !attn__mul3(batch, seq_len, o->num_heads, &bytes) || !attn__mul3(bytes, o->memory_slots, sizeof(float), &bytes))
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x seq_len %lld is beyond the 32-bit index range of BLAS or "
                          "its tensors have more bytes than int64 can count", fn, (long long)batch, (long long)seq_len);
    if (step_flops(m) * (double)batch * (double)seq_len > 9.0e18)
        return attn__fail(ATTN_E_SHAPE, "%s: the FLOP count of batch %lld x seq_len %lld overflows int64", fn,
                          (long long)batch, (long long)seq_len);
    *plan = make_plan(m, batch);
    if (plan->ws.overflow)
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld needs a workspace larger than the address space", fn,
                          (long long)batch);
    return ATTN_OK;
}

attn_status attn_memrnn_cost(const attn_memrnn *memrnn, int64_t batch, int64_t seq_len, attn_cost *out)
{
    static const char fn[] = "attn_memrnn_cost";
    mem_plan plan;
    attn_status st = prepare(fn, memrnn, batch, seq_len, &plan);
    if (st)
        return st;
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    out->params = attn__params_total(memrnn->params);
    out->flops = (int64_t)(step_flops(memrnn) * (double)batch * (double)seq_len);
    out->workspace_bytes = (int64_t)plan.ws.bytes;
    return ATTN_OK;
}

/* ---- the step ------------------------------------------------------------------------------- */

/* y[rows, n] = bias broadcast to every row (ld = ldy). */
static void fill_rows(float *y, int64_t rows, int64_t n, int64_t ldy, const float *bias)
{
    for (int64_t r = 0; r < rows; r++)
        memcpy(y + r * ldy, bias, (size_t)n * sizeof *y);
}

/* PyTorch's softplus (beta 1, threshold 20). */
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* One step of an LSTM layer over the batch: gates = x1 W1^T (+ x2 W2^T: the second block of W_ih's
 * columns) + h W_hh^T + b_ih + b_hh, then the RNN family's cell (attn__lstm_cell) updates c and h in
 * place. The controller's input at step t depends on the reads of step t - 1, so its projections
 * cannot be hoisted over the sequence as attn_rnn does; its weights live in this handle's registry
 * under pytorch-ntm's names, so the GEMMs are its own. */
static void lstm_layer_step(int64_t batch, int64_t hidden, const float *x1, int64_t n1, int64_t ldx1,
                            const float *x2, int64_t n2, const float *w_ih, const float *w_hh, const float *b_ih,
                            const float *b_hh, float *gates, float *h, float *c)
{
    const int64_t gh = 4 * hidden, in = n1 + n2;
    fill_rows(gates, batch, gh, gh, b_ih);
    for (int64_t b = 0; b < batch; b++)
        attn__add(gates + b * gh, b_hh, gh);
    attn__sgemm(false, true, batch, gh, n1, 1.0f, x1, ldx1, w_ih, in, 1.0f, gates, gh);
    if (n2)
        attn__sgemm(false, true, batch, gh, n2, 1.0f, x2, n2, w_ih + n1, in, 1.0f, gates, gh);
    attn__sgemm(false, true, batch, gh, hidden, 1.0f, h, hidden, w_hh, hidden, 1.0f, gates, gh);
    for (int64_t b = 0; b < batch; b++)
        attn__lstm_cell(hidden, gates + b * gh, c + b * hidden, h + b * hidden);
}

/* True when slot a's value ranks before slot b's: larger, or equal with the lower index. */
static bool ranks_before(const float *v, int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); }

static void sift_down(const float *v, int64_t *heap, int64_t size, int64_t i)
{
    for (;;) {
        int64_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < size && ranks_before(v, heap[worst], heap[l]))
            worst = l;
        if (r < size && ranks_before(v, heap[worst], heap[r]))
            worst = r;
        if (worst == i)
            return;
        const int64_t t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

static int compare_index(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* top[0..k) = the k slots of largest v in increasing slot order (NaN never ranks): one pass over v
 * against a heap of the k best so far, the weakest at its root. Almost no slot beats that one, so
 * the pass first skips whole blocks in which none reaches it, with one vector comparison each. */
static void select_top_k(const float *v, int64_t n, int64_t k, int64_t *top)
{
    enum { BLOCK = 16 };
    for (int64_t i = 0; i < k; i++)
        top[i] = i;
    for (int64_t j = k / 2 - 1; j >= 0; j--)
        sift_down(v, top, k, j);
    for (int64_t i = k; i < n;) {
        const float weakest = v[top[0]];
        for (; i + BLOCK <= n; i += BLOCK) {
            int reaching = 0;
            for (int j = 0; j < BLOCK; j++)
                reaching += v[i + j] >= weakest;
            if (reaching)
                break;
        }
        for (const int64_t end = i + BLOCK < n ? i + BLOCK : n; i < end; i++)
            if (ranks_before(v, i, top[0])) {
                top[0] = i;
                sift_down(v, top, k, 0);
            }
    }
    qsort(top, (size_t)k, sizeof *top, compare_index);
}

/* Slot i of the circular 3-tap shift, i - 1 and i + 1 taken modulo n. */
static int64_t wrap(int64_t i, int64_t n) { return i < 0 ? i + n : i >= n ? i - n : i; }

/* The addressing of one head for one batch element (section 3.3 of the NTM paper as pytorch-ntm
 * computes it) up to the sharpening, in three vector passes over the slots. o: the head's fc
 * output (k, beta, g, s[3], gamma, ...); d: M_i . k for the n slots, consumed; inv_norms:
 * 1 / max(||M_i||, 1e-8); w_prev: the head's previous weighting. Leaves the shifted weighting in out
 * (n floats, distinct from d and w_prev) and returns the sharpening exponent gamma. */
static float address(int64_t n, int64_t width, const float *o, float *d, const float *inv_norms, const float *w_prev,
                     float *out)
{
    float key_sq = 0.0f;
    for (int64_t j = 0; j < width; j++)
        key_sq += o[j] * o[j];
    const float beta = softplus(o[width]), g = 1.0f / (1.0f + expf(-o[width + 1]));
    const float gamma = 1.0f + softplus(o[width + 5]);
    float s[3] = {o[width + 2], o[width + 3], o[width + 4]};
    attn__softmax(s, 3, NULL);
    /* content: softmax_i(beta * cos(k, M_i)), each norm clamped at 1e-8 (F.cosine_similarity). The
     * cosine (in [-1, 1]) is formed before beta multiplies it: beta / 1e-8 / 1e-8 overflows for a
     * large finite beta, and a zero key or memory row then gave 0 * Inf = NaN */
    const float key_inv = 1.0f / fmaxf(sqrtf(key_sq), 1e-8f);
    for (int64_t i = 0; i < n; i++)
        d[i] = beta * (d[i] * key_inv * inv_norms[i]);
    const float sum = attn__exp_sum(d, n, attn__max(d, n));
    /* interpolation x = g content + (1 - g) w_prev (the softmax's 1/sum folded into a) and the shift
     * out_i = s0 x_{i-1} + s1 x_i + s2 x_{i+1} in one pass; the two wrap-around slots apart, so that
     * the rest vectorizes */
    const float a = g / sum, b = 1.0f - g;
#define MIXED(i) (a * d[i] + b * w_prev[i])
    for (int64_t i = 1; i + 1 < n; i++)
        out[i] = s[0] * MIXED(i - 1) + s[1] * MIXED(i) + s[2] * MIXED(i + 1);
    for (int64_t i = 0; i < n; i += n > 1 ? n - 1 : 1)
        out[i] = s[0] * MIXED(wrap(i - 1, n)) + s[1] * MIXED(i) + s[2] * MIXED(wrap(i + 1, n));
#undef MIXED
    return gamma;
}

/* w = the new weighting from address()'s shifted weighting `out` (consumed): sharpened,
 * out^gamma / (sum + 1e-16) as pytorch-ntm (kept = n); or SPARSE: the kept largest slots of out (the
 * sharpening is monotone, so also of out^gamma) sharpened and normalized over themselves, 0
 * elsewhere. top: in, the slots kept at the previous step, w's only nonzeros; out, the new ones in
 * increasing slot order. */
static void set_weighting(int64_t n, int64_t kept, float *out, float gamma, float *w, int64_t *top)
{
    if (kept == n) {
        const float factor = 1.0f / (attn__pow_sum(out, n, gamma) + 1e-16f);
        for (int64_t i = 0; i < n; i++)
            w[i] = out[i] * factor;
        return;
    }
    for (int64_t j = 0; j < kept; j++)
        w[top[j]] = 0.0f;
    select_top_k(out, n, kept, top);
    for (int64_t j = 0; j < kept; j++) /* top[j] >= j: the gather can run in place */
        out[j] = out[top[j]];
    const float factor = 1.0f / (attn__pow_sum(out, kept, gamma) + 1e-16f);
    for (int64_t j = 0; j < kept; j++)
        w[top[j]] = out[j] * factor;
}

/* Erase and add with weighting w on `count` slots (the slots in rows, or slots 0.. when rows is
 * NULL) of mem (n x width), keeping inv_norms current. o_write: the write head's fc output. */
static void write_rows(float *mem, float *inv_norms, int64_t width, const float *w, const int64_t *rows,
                       int64_t count, const float *o_write)
{
    const float *e = o_write + width + 6, *add = o_write + 2 * width + 6;
    for (int64_t j = 0; j < count; j++) {
        const int64_t row = rows ? rows[j] : j;
        const float sq = attn__erase_add(mem + row * width, e, add, w[row], width);
        inv_norms[row] = 1.0f / fmaxf(sqrtf(sq), 1e-8f);
    }
}

/* inv_norms[i] = 1 / max(||M_i||, 1e-8) for the n rows of mem (n x width). */
static void row_inv_norms(const float *mem, int64_t n, int64_t width, float *inv_norms)
{
    for (int64_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int64_t c = 0; c < width; c++)
            s += mem[i * width + c] * mem[i * width + c];
        inv_norms[i] = 1.0f / fmaxf(sqrtf(s), 1e-8f);
    }
}

/* One step of head pair `pair` over the batch; the team shares its work. */
typedef struct pair_task {
    const attn_memrnn *m;
    int64_t pair, t, seq_len;
    int64_t chunk, chunks; /* memory rows per GEMV; chunks per batch element */
    float *mem, *inv_norms, *weights, *reads, *read_weights;
    float *dots; /* [B, 2, N]: the similarities, then addressing scratch */
    float *tmp;  /* [B, N] addressing scratch */
    float *heads; /* [B, heads_len]: every head's fc output; the erase's sigmoid is applied here */
    int64_t *top; /* [B, 2R, kept] (SPARSE with top_k < N), else NULL */
    float *partial_reads; /* [B, chunks, W]: DENSE's read, chunk by chunk */
} pair_task;

/* Batch element b's fc output of the pair's read head (k, beta, g, s, gamma: W + 6 floats), followed
 * by its write head's (k, beta, g, s, gamma, e, a: 3W + 6). */
static float *pair_heads(const pair_task *k, int64_t b)
{
    return k->heads + b * k->m->heads_len + k->pair * (4 * k->m->opt.memory_width + 12);
}

/* Chunks [first, end) of the batch's memories (chunk j: element j / chunks) against the pair's two
 * keys: d[0..n) = M k_read, d[n..2n) = M k_write, both GEMVs on a chunk while it is in cache, so
 * that the memory is read from DRAM once (one GEMM of both keys would first copy all of M into
 * BLAS's packed layout: 1.5x slower at N = 131072, W = 64). */
static void similarity(const void *ctx, int64_t first, int64_t end)
{
    const pair_task *k = ctx;
    const attn_memrnn_options *o = &k->m->opt;
    const int64_t n = o->memory_slots, width = o->memory_width;
    for (int64_t j = first; j < end; j++) {
        const int64_t b = j / k->chunks, row = j % k->chunks * k->chunk;
        const int64_t rows = n - row < k->chunk ? n - row : k->chunk;
        const float *mem = k->mem + (b * n + row) * width, *k_read = pair_heads(k, b);
        float *d = k->dots + b * 2 * n + row;
        attn__sgemv(false, rows, width, 1.0f, mem, width, k_read, 0.0f, d);
        attn__sgemv(false, rows, width, 1.0f, mem, width, k_read + width + 6, 0.0f, d + n);
    }
}

/* Batch elements [first, end) of the pair after the similarity: both weightings; SPARSE also reads
 * and writes its top_k rows. */
static void address_pair(const void *ctx, int64_t first, int64_t end)
{
    const pair_task *k = ctx;
    const attn_memrnn_options *o = &k->m->opt;
    const int64_t n = o->memory_slots, width = o->memory_width, r = o->num_heads, kept = k->m->kept;
    const int64_t i = k->pair;
    for (int64_t b = first; b < end; b++) {
        float *mb = k->mem + b * n * width, *inv_norms = k->inv_norms + b * n, *rb = k->reads + (b * r + i) * width;
        float *d_read = k->dots + b * 2 * n, *d_write = d_read + n, *scratch = k->tmp + b * n;
        float *o_read = pair_heads(k, b), *o_write = o_read + width + 6;
        float *w_read = k->weights + (b * 2 * r + 2 * i) * n, *w_write = w_read + n;
        int64_t *top_read = k->top ? k->top + (b * 2 * r + 2 * i) * kept : NULL;
        int64_t *top_write = top_read ? top_read + kept : NULL;

        set_weighting(n, kept, scratch, address(n, width, o_read, d_read, inv_norms, w_read, scratch), w_read,
                      top_read);
        if (k->read_weights)
            memcpy(k->read_weights + ((b * k->seq_len + k->t) * r + i) * n, w_read, (size_t)n * sizeof(float));
        set_weighting(n, kept, d_read, address(n, width, o_write, d_write, inv_norms, w_write, d_read), w_write,
                      top_write);
        attn__sigmoid(o_write + width + 6, width); /* erase vector e */
        if (!top_read)
            continue;
        memset(rb, 0, (size_t)width * sizeof(float));
        for (int64_t j = 0; j < kept; j++) {
            const float wi = w_read[top_read[j]], *row = mb + top_read[j] * width;
            for (int64_t col = 0; col < width; col++)
                rb[col] += wi * row[col];
        }
        write_rows(mb, inv_norms, width, w_write, top_write, kept, o_write);
    }
}

/* DENSE: chunks [first, end) of the batch's memories after the addressing: the chunk's share of the
 * read, M^T w_read over its rows, into partial_reads, then the write of those rows (which the read
 * has seen before it, as the whole read would). */
static void read_write_chunks(const void *ctx, int64_t first, int64_t end)
{
    const pair_task *k = ctx;
    const attn_memrnn_options *o = &k->m->opt;
    const int64_t n = o->memory_slots, width = o->memory_width, r = o->num_heads, i = k->pair;
    for (int64_t j = first; j < end; j++) {
        const int64_t b = j / k->chunks, row = j % k->chunks * k->chunk;
        const int64_t rows = n - row < k->chunk ? n - row : k->chunk;
        float *mem = k->mem + (b * n + row) * width;
        const float *w_read = k->weights + (b * 2 * r + 2 * i) * n + row, *w_write = w_read + n;
        attn__sgemv(true, rows, width, 1.0f, mem, width, w_read, 0.0f, k->partial_reads + j * width);
        write_rows(mem, k->inv_norms + b * n + row, width, w_write, NULL, rows, pair_heads(k, b) + width + 6);
    }
}

attn_status attn_memrnn_forward(const attn_memrnn *memrnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                                const float *x, float *y, float *read_weights, float *memory_out)
{
    static const char fn[] = "attn_memrnn_forward";
    mem_plan plan;
    attn_status st = prepare(fn, memrnn, batch, seq_len, &plan);
    if (st)
        return st;
    if (!x || !y)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, x ? "y" : "x");
    const attn_memrnn *m = memrnn;
    const attn_memrnn_options *o = &m->opt;
    const int64_t n = o->memory_slots, w = o->memory_width, r = o->num_heads, c = o->controller_size;
    const int64_t layers = o->controller_layers, in = o->input_size, out = o->output_size;
    const int64_t kept = m->kept, hl = m->heads_len;
    const bool sparse = kept < n;
    const size_t f = sizeof(float), rows = (size_t)(batch * seq_len);
    const attn_buffer inputs[] = {{"x", x, rows * (size_t)in * f}};
    const attn_buffer outputs[] = {{"y", y, rows * (size_t)out * f},
                                   {"read_weights", read_weights, rows * (size_t)(r * n) * f},
                                   {"memory_out", memory_out, (size_t)batch * (size_t)(n * w) * f}};
    if ((st = attn__check_aliasing(fn, inputs, 1, outputs, 3)))
        return st;

    attn_ws_lease lease = {0};
    char *base;
    if ((st = attn__workspace_reserve(fn, ws, &lease, plan.ws.bytes, &base)))
        return st;
    const attn_params *p = m->params;
    float *mem = (float *)(base + plan.memory), *inv_norms = (float *)(base + plan.inv_norms);
    float *weights = (float *)(base + plan.weights), *hs = (float *)(base + plan.h), *cs = (float *)(base + plan.c);
    float *gates = (float *)(base + plan.gates), *reads = (float *)(base + plan.reads);
    float *heads = (float *)(base + plan.heads), *dots = (float *)(base + plan.dots);
    int64_t *top = sparse ? (int64_t *)(base + plan.top) : NULL;
    float *partial_reads = sparse ? NULL : (float *)(base + plan.partial_reads);

    /* Initial state: every head's weighting 0 (SPARSE: its kept slots any k of those zeros). */
    const float *mem_bias = attn__params_cdata(p, m->t.mem_bias);
    row_inv_norms(mem_bias, n, w, inv_norms);
    for (int64_t b = 0; b < batch; b++) {
        memcpy(mem + b * n * w, mem_bias, (size_t)(n * w) * f);
        if (b)
            memcpy(inv_norms + b * n, inv_norms, (size_t)n * f);
        for (int64_t i = 0; i < r; i++)
            memcpy(reads + (b * r + i) * w, attn__params_cdata(p, m->t.read_bias[i]), (size_t)w * f);
    }
    memset(weights, 0, (size_t)(batch * 2 * r * n) * f);
    for (int64_t j = 0; sparse && j < batch * 2 * r * kept; j++)
        top[j] = j % kept;
    for (int64_t l = 0; l < layers; l++) {
        fill_rows(hs + l * batch * c, batch, c, c, attn__params_cdata(p, m->t.h_bias) + l * c);
        fill_rows(cs + l * batch * c, batch, c, c, attn__params_cdata(p, m->t.c_bias) + l * c);
    }
    const float *top_h = hs + (layers - 1) * batch * c;
    attn_team team = ATTN__TEAM_INIT;
    const bool share = (double)batch * (double)(n * w + ELEMENT_FLOATS) >= TEAM_MIN_FLOATS;
    const int64_t chunk = chunk_rows(o), chunks = chunks_per_element(o);
    /* With B > 1 a claim is a whole batch element, its blocks in order on one thread (two threads
     * interleaving one element's blocks measured up to 11 % slower at N = 1024, B = 32); at B = 1,
     * CLAIM_FLOATS of blocks. */
    const int64_t job_floats = (chunk < n ? chunk : n) * w;
    const int64_t claim = batch > 1 ? chunks : CLAIM_FLOATS / job_floats > 0 ? CLAIM_FLOATS / job_floats : 1;
    for (int64_t t = 0; t < seq_len; t++) {
        /* Controller: input [x_t, r_{t-1}], the two column blocks of W_ih multiplied separately. */
        for (int64_t l = 0; l < layers; l++) {
            const float *w_ih = attn__params_cdata(p, m->t.w_ih[l]), *w_hh = attn__params_cdata(p, m->t.w_hh[l]);
            const float *b_ih = attn__params_cdata(p, m->t.b_ih[l]), *b_hh = attn__params_cdata(p, m->t.b_hh[l]);
            if (l == 0)
                lstm_layer_step(batch, c, x + t * in, in, seq_len * in, reads, r * w, w_ih, w_hh, b_ih, b_hh, gates,
                                hs, cs);
            else
                lstm_layer_step(batch, c, hs + (l - 1) * batch * c, c, c, NULL, 0, w_ih, w_hh, b_ih, b_hh, gates,
                                hs + l * batch * c, cs + l * batch * c);
        }
        /* Every head's parameters from the controller output. */
        for (int64_t j = 0, off = 0; j < 2 * r; off += j % 2 ? 3 * w + 6 : w + 6, j++) {
            const int64_t len = j % 2 ? 3 * w + 6 : w + 6;
            fill_rows(heads + off, batch, len, hl, attn__params_cdata(p, m->t.head_b[j]));
            attn__sgemm(false, true, batch, len, c, 1.0f, top_h, c, attn__params_cdata(p, m->t.head_w[j]), c, 1.0f,
                        heads + off, hl);
        }
        /* Head pairs in order: read_i then write_i, both against the memory the pairs before left. */
        for (int64_t i = 0; i < r; i++) {
            const pair_task task = {.m = m, .pair = i, .t = t, .seq_len = seq_len, .chunk = chunk,
                                    .chunks = chunks, .mem = mem, .inv_norms = inv_norms, .weights = weights,
                                    .reads = reads, .read_weights = read_weights, .dots = dots,
                                    .tmp = (float *)(base + plan.tmp), .heads = heads, .top = top,
                                    .partial_reads = partial_reads};
            attn__team_run(&team, similarity, &task, batch * chunks, claim, share);
            attn__team_run(&team, address_pair, &task, batch, 1, share);
            if (sparse)
                continue;
            attn__team_run(&team, read_write_chunks, &task, batch * chunks, claim, share);
            for (int64_t b = 0; b < batch; b++) { /* the chunks' reads summed in order */
                float *rb = reads + (b * r + i) * w;
                memcpy(rb, partial_reads + b * chunks * w, (size_t)w * f);
                for (int64_t j = 1; j < chunks; j++)
                    attn__add(rb, partial_reads + (b * chunks + j) * w, w);
            }
        }
        /* Output: sigmoid(fc([c, r_0 .. r_{R-1}])). */
        float *yt = y + t * out;
        const float *fc_w = attn__params_cdata(p, m->t.fc_w);
        fill_rows(yt, batch, out, seq_len * out, attn__params_cdata(p, m->t.fc_b));
        attn__sgemm(false, true, batch, out, c, 1.0f, top_h, c, fc_w, m->fc_in, 1.0f, yt, seq_len * out);
        attn__sgemm(false, true, batch, out, r * w, 1.0f, reads, r * w, fc_w + c, m->fc_in, 1.0f, yt, seq_len * out);
        for (int64_t b = 0; b < batch; b++)
            attn__sigmoid(yt + b * seq_len * out, out);
    }
    attn__team_stop(&team);
    if (memory_out)
        memcpy(memory_out, mem, (size_t)batch * (size_t)(n * w) * f);
    attn__workspace_release(&lease);
    return ATTN_OK;
}
