/* Recurrent networks: Elman (tanh/relu), LSTM and GRU over a dense, low-rank or Kronecker
 * recurrence. This file owns the handle, options, parameters, validation, workspace plan, cost and
 * the per-step loop; each recurrence (dense.c, low_rank.c, kronecker.c) is one rnn_recurrence, and
 * the gate math of every cell is in cells.c.
 *
 * Shape of the computation, per layer and direction: one GEMM projects the inputs of all B*T steps
 * (P = X W_ih^T); then each step runs the recurrence over the whole batch (R(h) accumulated into the
 * step's rows of P) and the cell's element-wise gate math. Hidden states are written straight into
 * the layer's output tensor, and the next step reads its previous state from there (a strided BLAS
 * operand), so no state is ever copied. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rnn/rnn_internal.h"

/* Between two recurrent GEMMs a step's cell updates would run on the calling thread alone while
 * OpenBLAS's threads wait (about 15 % of LSTM time at B = 64, H = 512 on 2 cores); a thread team
 * (core/team.c) shares the batch rows. */
enum {
    CELL_CHUNK = 4,          /* batch rows per claim of a team thread */
    CELL_MIN_WORK = 1 << 15, /* B * G * H below which waking helpers costs more than it saves: on 2
                                cores sharing lost up to 60 % of a step below 8192, broke even around
                                16384 to 32768 and won 2-9 % from 65536 (H = 64..512, B = 8..64) */
};

static const rnn_recurrence *const recurrences[] = {
    [ATTN_RECURRENCE_DENSE] = &attn__rnn_dense,
    [ATTN_RECURRENCE_LOW_RANK] = &attn__rnn_low_rank,
    [ATTN_RECURRENCE_KRONECKER] = &attn__rnn_kronecker,
};

/* Scratch layout of one forward call; byte offsets into the workspace. */
typedef struct rnn_plan {
    attn_ws_plan ws;
    size_t proj;      /* P [B, T, G*H]: input projection of every step */
    size_t rec;       /* GRU: [B, G*H] recurrent product of one step, then the gates */
    size_t scratch;   /* [B, recurrence's scratch()]: e.g. V h of one step (LOW_RANK) */
    size_t cell;      /* c [B, H]: LSTM cell state */
    size_t layers[2]; /* [B, T, D*H] ping-pong outputs of the layers below the last */
} rnn_plan;

/* libattn 1.0's attn_rnn_options: everything before the fields appended in 1.2. */
static const size_t first_options_size = offsetof(attn_rnn_options, more_factor_sizes);

/* The defaults into the first `size` bytes of options (all defaults live in 1.0's fields). */
static attn_status init_options(attn_rnn_options *options, size_t size)
{
    if (!options)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_rnn_options_init: options is NULL");
    memset(options, 0, size);
    options->struct_size = (uint32_t)size;
    options->cell = ATTN_CELL_LSTM;
    options->recurrence = ATTN_RECURRENCE_DENSE;
    options->num_layers = 1;
    options->bias = 1;
    return ATTN_OK;
}

/* attn_rnn_options grew in libattn 1.2. attn_rnn_options_init is the default version, ATTN_1.2
 * (src/libattn.map): programs built from now on get the whole struct. Programs linked against
 * an older libattn call attn_rnn_options_init@ATTN_1.0 with the 1.0 struct, so that version writes
 * only 1.0's bytes. */
attn_status attn_rnn_options_init(attn_rnn_options *options) { return init_options(options, sizeof *options); }

ATTN_API attn_status attn__rnn_options_init_1_0(attn_rnn_options *options);
attn_status attn__rnn_options_init_1_0(attn_rnn_options *options) { return init_options(options, first_options_size); }
#ifdef __ELF__
__asm__(".symver attn__rnn_options_init_1_0, attn_rnn_options_init@ATTN_1.0");
#endif

static int64_t layer_input_size(const attn_rnn *rnn, int64_t layer)
{
    return layer == 0 ? rnn->opt.input_size : rnn->dirs * rnn->opt.hidden_size;
}

static attn_status validate_options(const attn_rnn_options *o)
{
    static const char fn[] = "attn_rnn_create";
    if (o->cell < ATTN_CELL_RNN_TANH || o->cell > ATTN_CELL_GRU)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: cell %d is not an ATTN_CELL_* value", fn, o->cell);
    if (o->recurrence < ATTN_RECURRENCE_DENSE || o->recurrence > ATTN_RECURRENCE_KRONECKER)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: recurrence %d is not an ATTN_RECURRENCE_* value", fn,
                          o->recurrence);
    /* Bounds keep every weight extent, G*H and D*H within the 32-bit index range of BLAS. */
    const int64_t max_size = INT32_MAX / 8;
    attn_status st;
    if ((st = attn__check_option(fn, "bidirectional", o->bidirectional, 0, 1)) ||
        (st = attn__check_option(fn, "bias", o->bias, 0, 1)) ||
        (st = attn__check_option(fn, "input_size", o->input_size, 1, max_size)) ||
        (st = attn__check_option(fn, "hidden_size", o->hidden_size, 1, max_size)) ||
        (st = attn__check_option(fn, "num_layers", o->num_layers, 1, 1024)))
        return st;
    const rnn_recurrence *rec = recurrences[o->recurrence];
    return rec->validate ? rec->validate(fn, o) : ATTN_OK;
}

attn_status attn__rnn_declare(attn_rnn *rnn, int64_t *index, float bound, int64_t ndim, const int64_t *shape,
                              const char *fmt, ...)
{
    char name[64];
    va_list args;
    va_start(args, fmt);
    vsnprintf(name, sizeof name, fmt, args);
    va_end(args);
    return attn__params_add(rnn->params, name, ndim, shape, ATTN_INIT_UNIFORM, bound, index);
}

/* Declares the tensors of one layer and direction in torch.nn.RNN's state_dict order: weight_ih,
 * the recurrence's tensors, bias_ih, bias_hh. */
static attn_status declare_tensors(attn_rnn *rnn, int64_t layer, int64_t dir, rnn_tensors *t)
{
    const attn_rnn_options *o = &rnn->opt;
    const char *suffix = dir ? "_reverse" : "";
    const long long l = (long long)layer;
    const int64_t gh = rnn->gates * o->hidden_size;
    /* PyTorch's init law for recurrent layers: U(-1/sqrt(H), 1/sqrt(H)) for every tensor (the
     * recurrences document their own laws). */
    const float bound = 1.0f / sqrtf((float)o->hidden_size);
    const int64_t w_ih[] = {gh, layer_input_size(rnn, layer)};
    t->w_ih = t->b_ih = t->b_hh = -1;
    for (int f = 0; f < ATTN_RNN_MAX_FACTORS_ALL; f++)
        t->rec[f] = -1;
    attn_status st;
    if ((st = attn__rnn_declare(rnn, &t->w_ih, bound, 2, w_ih, "weight_ih_l%lld%s", l, suffix)) ||
        (st = rnn->rec->declare(rnn, layer, suffix, bound, t)))
        return st;
    if (o->bias && ((st = attn__rnn_declare(rnn, &t->b_ih, bound, 1, &gh, "bias_ih_l%lld%s", l, suffix)) ||
                    (st = attn__rnn_declare(rnn, &t->b_hh, bound, 1, &gh, "bias_hh_l%lld%s", l, suffix))))
        return st;
    return ATTN_OK;
}

void attn_rnn_destroy(attn_rnn *rnn)
{
    if (!rnn)
        return;
    attn__params_destroy(rnn->params);
    attn__free(rnn->tensors);
    attn__free(rnn);
}

attn_status attn_rnn_create(attn_rnn **out, const attn_rnn_options *options)
{
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_rnn_create: out is NULL");
    *out = NULL;
    attn_rnn_options o;
    attn_rnn_options_init(&o);
    attn_status st = attn__options_read("attn_rnn_create", &o, sizeof o, first_options_size,
                                        offsetof(attn_rnn_options, flags), options);
    if (st || (st = validate_options(&o)))
        return st;

    attn_rnn *rnn = attn__calloc(sizeof *rnn);
    if (!rnn)
        return attn__fail(ATTN_E_NOMEM, "attn_rnn_create: out of memory");
    rnn->opt = o;
    rnn->gates = o.cell == ATTN_CELL_LSTM ? 4 : o.cell == ATTN_CELL_GRU ? 3 : 1;
    rnn->dirs = o.bidirectional ? 2 : 1;
    rnn->rec = recurrences[o.recurrence];
    const int64_t units = o.num_layers * rnn->dirs;
    rnn->tensors = attn__alloc((size_t)units * sizeof *rnn->tensors);
    if (!rnn->tensors) {
        attn_rnn_destroy(rnn);
        return attn__fail(ATTN_E_NOMEM, "attn_rnn_create: out of memory");
    }
    if ((st = attn__params_create(&rnn->params, "attn_rnn_create")))
        goto fail;
    for (int64_t u = 0; u < units; u++)
        if ((st = declare_tensors(rnn, u / rnn->dirs, u % rnn->dirs, &rnn->tensors[u])))
            goto fail;
    if ((st = attn__params_finalize(rnn->params)))
        goto fail;
    *out = rnn;
    return ATTN_OK;
fail:
    attn_rnn_destroy(rnn);
    return st;
}

attn_params *attn_rnn_params(attn_rnn *rnn) { return rnn ? rnn->params : NULL; }

attn_status attn_rnn_get_options(const attn_rnn *rnn, attn_rnn_options *out)
{
    if (!rnn || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_rnn_get_options: %s is NULL", rnn ? "out" : "rnn");
    attn__options_write(out, &rnn->opt, sizeof rnn->opt, first_options_size);
    return ATTN_OK;
}

/* Shape checks shared by forward and cost; also guarantees that every BLAS extent and leading
 * dimension the forward uses fits a 32-bit int. */
static attn_status validate_shape(const char *fn, const attn_rnn *rnn, int64_t batch, int64_t seq_len)
{
    if (!rnn)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: rnn is NULL", fn);
    if (batch < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: batch must be > 0 (got %lld)", fn, (long long)batch);
    if (seq_len < 1)
        return attn__fail(ATTN_E_SHAPE, "%s: seq_len must be > 0 (got %lld)", fn, (long long)seq_len);
    int64_t widest = rnn->opt.input_size;
    const int64_t widths[] = {rnn->gates * rnn->opt.hidden_size, rnn->dirs * rnn->opt.hidden_size};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        widest = widths[i] > widest ? widths[i] : widest;
    int64_t rows, stride, bytes;
    if (!attn__mul(batch, seq_len, &rows) || !attn__fits_blas_int(rows) || !attn__mul(seq_len, widest, &stride) ||
        !attn__fits_blas_int(stride) || !attn__mul3(rows, widest, sizeof(float), &bytes))
        return attn__fail(ATTN_E_SHAPE,
                          "%s: batch %lld x seq_len %lld is beyond the 32-bit index range of BLAS for "
                          "feature width %lld",
                          fn, (long long)batch, (long long)seq_len, (long long)widest);
    if (rnn->rec->max_batch && batch > rnn->rec->max_batch(rnn))
        return attn__fail(ATTN_E_SHAPE,
                          "%s: batch %lld x hidden_size %lld is beyond the 32-bit index range of BLAS (the "
                          "recurrence's products have batch * hidden_size rows)",
                          fn, (long long)batch, (long long)rnn->opt.hidden_size);
    /* h0, c0, h_n, c_n: [num_layers * D, batch, H] */
    if (!attn__mul3(rnn->opt.num_layers * rnn->dirs * (int64_t)sizeof(float), batch, rnn->opt.hidden_size, &bytes))
        return attn__fail(ATTN_E_SHAPE, "%s: the states [num_layers * D, batch %lld, hidden_size] have more bytes "
                          "than int64 can count", fn, (long long)batch);
    return ATTN_OK;
}

static rnn_plan make_plan(const attn_rnn *rnn, int64_t batch, int64_t seq_len)
{
    const int64_t f = sizeof(float), h = rnn->opt.hidden_size, gh = rnn->gates * h;
    rnn_plan p = {0};
    p.proj = attn__plan_take(&p.ws, f, batch, seq_len, gh);
    if (rnn->opt.cell == ATTN_CELL_GRU)
        p.rec = attn__plan_take(&p.ws, f, batch, gh, 1);
    if (rnn->rec->scratch(rnn) > 0)
        p.scratch = attn__plan_take(&p.ws, f, batch, rnn->rec->scratch(rnn), 1);
    if (rnn->opt.cell == ATTN_CELL_LSTM)
        p.cell = attn__plan_take(&p.ws, f, batch, h, 1);
    for (int64_t i = 0; i < rnn->opt.num_layers - 1 && i < 2; i++)
        p.layers[i] = attn__plan_take(&p.ws, f, batch, seq_len, rnn->dirs * h);
    return p;
}

/* FLOPs of forward: multiply-adds per (batch, step) row over all layers and directions, times 2;
 * false when they overflow int64. */
static bool forward_flops(const attn_rnn *rnn, int64_t batch, int64_t seq_len, int64_t *flops)
{
    const attn_rnn_options *o = &rnn->opt;
    const int64_t gh = rnn->gates * o->hidden_size, rec_per_row = rnn->rec->macs(rnn);
    int64_t per_row = 0;
    for (int64_t l = 0; l < o->num_layers; l++)
        per_row += rnn->dirs * (gh * layer_input_size(rnn, l) + rec_per_row);
    return attn__mul3(2 * batch, seq_len, per_row, flops);
}

/* Everything forward and cost check before any work, so that both accept and reject exactly the
 * same shapes: the sizes, the FLOP count within int64 and every workspace size within the
 * address space. */
static attn_status prepare(const char *fn, const attn_rnn *rnn, int64_t batch, int64_t seq_len, rnn_plan *plan,
                           int64_t *flops)
{
    attn_status st = validate_shape(fn, rnn, batch, seq_len);
    if (st)
        return st;
    if (!forward_flops(rnn, batch, seq_len, flops))
        return attn__fail(ATTN_E_SHAPE, "%s: the FLOP count of batch %lld x seq_len %lld overflows int64", fn,
                          (long long)batch, (long long)seq_len);
    *plan = make_plan(rnn, batch, seq_len);
    if (plan->ws.overflow)
        return attn__fail(ATTN_E_SHAPE, "%s: batch %lld x seq_len %lld needs a workspace larger than the address "
                          "space", fn, (long long)batch, (long long)seq_len);
    return ATTN_OK;
}

attn_status attn_rnn_cost(const attn_rnn *rnn, int64_t batch, int64_t seq_len, attn_cost *out)
{
    static const char fn[] = "attn_rnn_cost";
    rnn_plan plan;
    int64_t flops;
    attn_status st = prepare(fn, rnn, batch, seq_len, &plan, &flops);
    if (st)
        return st;
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: out is NULL", fn);
    out->params = attn__params_total(rnn->params);
    out->flops = flops;
    out->workspace_bytes = (int64_t)plan.ws.bytes;
    return ATTN_OK;
}

/* One step's cell updates under attn_rnn_forward_lengths: a row whose sequence has no element at
 * this step is inactive; it carries its state unchanged (before its first step in the reverse
 * direction that is h0, after its last step in the forward direction its final state), so that
 * the next step, which reads every row's previous state from the previous step's rows, finds it. */
typedef struct step_rows {
    const rnn_cell_rows *cells;
    const int64_t *lengths; /* [B] */
    int64_t time;
} step_rows;

/* An attn_rows_fn over a step_rows. */
static void run_step_rows(const void *ctx, int64_t first, int64_t end)
{
    const step_rows *s = ctx;
    const rnn_cell_rows *r = s->cells;
    for (int64_t b = first; b < end; b++) {
        if (s->time < s->lengths[b]) {
            attn__rnn_cells(r, b, b + 1);
            continue;
        }
        float *h_out = r->h_out + b * r->ld_out;
        if (r->h_prev)
            memcpy(h_out, r->h_prev + b * r->ld_prev, (size_t)r->hidden * sizeof *h_out);
        else
            memset(h_out, 0, (size_t)r->hidden * sizeof *h_out);
    }
}

/* One layer and direction over the whole sequence. `in` is [B, T, in_size]; `out` [B, T, D*H] receives
 * this direction's states at column offset dir*H. The team shares each step's cell updates.
 * `lengths` (NULL: every sequence has T steps) gives each sequence's valid steps; the loop then
 * runs max(lengths) steps, and positions beyond a sequence's length end as zeros. */
static void run_direction(const attn_rnn *rnn, const rnn_plan *plan, char *ws, attn_team *team, int64_t layer,
                          int64_t dir, int64_t batch, int64_t seq_len, const int64_t *lengths, const float *in,
                          const float *h0, const float *c0, float *out, float *h_n, float *c_n)
{
    const attn_rnn_options *o = &rnn->opt;
    const rnn_tensors *t = &rnn->tensors[layer * rnn->dirs + dir];
    const attn_params *params = rnn->params;
    const int64_t h = o->hidden_size, gh = rnn->gates * h, in_size = layer_input_size(rnn, layer);
    const int64_t out_width = rnn->dirs * h, unit = layer * rnn->dirs + dir;
    float *proj = (float *)(ws + plan->proj), *rec = (float *)(ws + plan->rec);
    float *cell = (float *)(ws + plan->cell), *scratch = (float *)(ws + plan->scratch);
    const bool gru = o->cell == ATTN_CELL_GRU;
    int64_t steps = seq_len;
    if (lengths) {
        steps = 0;
        for (int64_t b = 0; b < batch; b++)
            steps = lengths[b] > steps ? lengths[b] : steps;
    }

    /* P starts as the folded biases b_ih + b_hh (GRU keeps b_hn apart: r scales it) and the projection
     * GEMM accumulates onto them (beta = 1). That costs the same pass over P as the zeroing OpenBLAS
     * does for beta = 0, and saves a bias add in every step. */
    const float *bias_hn = NULL;
    if (o->bias) {
        const float *b_ih = attn__params_cdata(params, t->b_ih), *b_hh = attn__params_cdata(params, t->b_hh);
        memcpy(proj, b_ih, (size_t)gh * sizeof(float));
        attn__add(proj, b_hh, gru ? 2 * h : gh);
        for (int64_t row = 1; row < batch * seq_len; row++)
            memcpy(proj + row * gh, proj, (size_t)gh * sizeof(float));
        bias_hn = gru ? b_hh + 2 * h : NULL;
    }
    attn__sgemm(false, true, batch * seq_len, gh, in_size, 1.0f, in, in_size, attn__params_cdata(params, t->w_ih),
                in_size, o->bias ? 1.0f : 0.0f, proj, gh);

    if (o->cell == ATTN_CELL_LSTM) {
        if (c0)
            memcpy(cell, c0 + unit * batch * h, (size_t)(batch * h) * sizeof(float));
        else
            memset(cell, 0, (size_t)(batch * h) * sizeof(float));
    }

    const float *h_prev = h0 ? h0 + unit * batch * h : NULL;
    int64_t h_prev_ld = h; /* h0 rows are contiguous; later states are rows of `out` */
    for (int64_t s = 0; s < steps; s++) {
        const int64_t step = dir ? steps - 1 - s : s;
        float *step_proj = proj + step * gh;
        /* Elman/LSTM accumulate R(h) into the step's rows of P (beta = 1: no separate add and no
         * zeroing pass); GRU needs R(h) on its own. */
        float *acc = gru ? rec : step_proj;
        const int64_t acc_ld = gru ? gh : seq_len * gh;
        if (h_prev)
            rnn->rec->apply(rnn, t, team, batch, h_prev, h_prev_ld, gru ? 0.0f : 1.0f, acc, acc_ld, scratch);
        else if (gru)
            memset(rec, 0, (size_t)(batch * gh) * sizeof(float));
        float *h_step = out + step * out_width + dir * h;
        const rnn_cell_rows rows = {.cell = o->cell,
                                    .hidden = h,
                                    .bias_hn = bias_hn,
                                    .gates = acc,
                                    .ld_gates = acc_ld,
                                    .proj = step_proj,
                                    .ld_proj = seq_len * gh,
                                    .c = cell,
                                    .h_prev = h_prev,
                                    .ld_prev = h_prev_ld,
                                    .h_out = h_step,
                                    .ld_out = seq_len * out_width};
        const bool share = batch * gh >= CELL_MIN_WORK;
        if (lengths)
            attn__team_run(team, run_step_rows, &(step_rows){&rows, lengths, step}, batch, CELL_CHUNK, share);
        else
            attn__team_run(team, attn__rnn_cells, &rows, batch, CELL_CHUNK, share);
        h_prev = h_step;
        h_prev_ld = seq_len * out_width;
    }

    /* Inactive rows carried their final state (forward) or their h0 (reverse) to the last step run. */
    if (h_n)
        for (int64_t b = 0; b < batch; b++)
            memcpy(h_n + (unit * batch + b) * h, h_prev + b * h_prev_ld, (size_t)h * sizeof(float));
    if (c_n)
        memcpy(c_n + unit * batch * h, cell, (size_t)(batch * h) * sizeof(float));
    for (int64_t b = 0; lengths && b < batch; b++)
        for (int64_t step = lengths[b]; step < seq_len; step++)
            memset(out + (b * seq_len + step) * out_width + dir * h, 0, (size_t)h * sizeof(float));
}

/* The checks of attn_rnn_forward and attn_rnn_forward_lengths after prepare(): pointers, cell
 * states, lengths (with_lengths: forward_lengths) and aliasing. */
static attn_status check_call(const char *fn, const attn_rnn *rnn, int64_t batch, int64_t seq_len, bool with_lengths,
                              const int64_t *lengths, const float *x, const float *h0, const float *c0,
                              const float *y, const float *h_n, const float *c_n)
{
    if (!x || !y)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, x ? "y" : "x");
    if (with_lengths && !lengths)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: lengths is NULL", fn);
    if (rnn->opt.cell != ATTN_CELL_LSTM && (c0 || c_n))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s must be NULL: only LSTM cells have a cell state", fn,
                          c0 ? "c0" : "c_n");
    for (int64_t b = 0; with_lengths && b < batch; b++)
        if (lengths[b] < 1 || lengths[b] > seq_len)
            return attn__fail(ATTN_E_SHAPE, "%s: lengths[%lld] must be in 1..seq_len %lld (got %lld)", fn,
                              (long long)b, (long long)seq_len, (long long)lengths[b]);
    const size_t f = sizeof(float), h = (size_t)rnn->opt.hidden_size, rows = (size_t)(batch * seq_len);
    const size_t states = (size_t)(rnn->opt.num_layers * rnn->dirs * batch) * h * f;
    const attn_buffer inputs[] = {{"x", x, rows * (size_t)rnn->opt.input_size * f},
                                  {"h0", h0, states},
                                  {"c0", c0, states},
                                  {"lengths", lengths, (size_t)batch * sizeof *lengths}};
    const attn_buffer outputs[] = {{"y", y, rows * (size_t)rnn->dirs * h * f}, {"h_n", h_n, states},
                                   {"c_n", c_n, states}};
    return attn__check_aliasing(fn, inputs, with_lengths ? 4 : 3, outputs, 3);
}

static attn_status forward(const char *fn, const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                           bool with_lengths, const int64_t *lengths, const float *x, const float *h0,
                           const float *c0, float *y, float *h_n, float *c_n)
{
    rnn_plan plan;
    int64_t flops;
    attn_status st = prepare(fn, rnn, batch, seq_len, &plan, &flops);
    if (st || (st = check_call(fn, rnn, batch, seq_len, with_lengths, lengths, x, h0, c0, y, h_n, c_n)))
        return st;

    attn_ws_lease lease = {0};
    char *base;
    if ((st = attn__workspace_reserve(fn, ws, &lease, plan.ws.bytes, &base)))
        return st;
    const int64_t layers = rnn->opt.num_layers;
    attn_team team = ATTN__TEAM_INIT;
    for (int64_t l = 0; l < layers; l++) {
        const float *in = l == 0 ? x : (const float *)(base + plan.layers[(l - 1) % 2]);
        float *out = l == layers - 1 ? y : (float *)(base + plan.layers[l % 2]);
        for (int64_t d = 0; d < rnn->dirs; d++)
            run_direction(rnn, &plan, base, &team, l, d, batch, seq_len, lengths, in, h0, c0, out, h_n, c_n);
    }
    attn__team_stop(&team);
    attn__workspace_release(&lease);
    return ATTN_OK;
}

attn_status attn_rnn_forward(const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                             const float *x, const float *h0, const float *c0, float *y, float *h_n, float *c_n)
{
    return forward("attn_rnn_forward", rnn, ws, batch, seq_len, false, NULL, x, h0, c0, y, h_n, c_n);
}

attn_status attn_rnn_forward_lengths(const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                                     const int64_t *lengths, const float *x, const float *h0, const float *c0,
                                     float *y, float *h_n, float *c_n)
{
    return forward("attn_rnn_forward_lengths", rnn, ws, batch, seq_len, true, lengths, x, h0, c0, y, h_n, c_n);
}

attn_status attn_rnn_recurrent_matrix(const attn_rnn *rnn, int64_t layer, int64_t direction, float *out)
{
    static const char fn[] = "attn_rnn_recurrent_matrix";
    if (!rnn || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, rnn ? "out" : "rnn");
    if (layer < 0 || layer >= rnn->opt.num_layers)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: layer %lld is outside 0..%lld", fn, (long long)layer,
                          (long long)rnn->opt.num_layers - 1);
    if (direction < 0 || direction >= rnn->dirs)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: direction %lld is outside 0..%lld", fn, (long long)direction,
                          (long long)rnn->dirs - 1);
    rnn->rec->matrix(rnn, &rnn->tensors[layer * rnn->dirs + direction], out);
    return ATTN_OK;
}
