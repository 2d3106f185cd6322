/* Recurrent networks: Elman (tanh/relu), LSTM and GRU over a dense or low-rank recurrence.
 *
 * Shape of the computation, per layer and direction: one GEMM projects the inputs of all B*T steps
 * (P = X W_ih^T); then each step runs one recurrent product over the whole batch (Hr = h W_hh^T, or
 * (h V^T) U^T for low rank) and the cell's element-wise gate math. Hidden states are written straight
 * into the layer's output tensor, and the next step reads its previous state from there (a strided
 * BLAS operand), so no state is ever copied. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn/rnn.h"
#include "core/core.h"

/* Between two recurrent GEMMs a step's cell updates would run on the calling thread alone while
 * OpenBLAS's threads wait (about 15 % of LSTM time at B = 64, H = 512 on 2 cores); a thread team
 * (core/team.c) shares the batch rows. */
enum {
    CELL_CHUNK = 4,          /* batch rows per claim of a team thread */
    CELL_MIN_WORK = 1 << 15, /* B * G * H below which waking helpers costs more than it saves: on 2
                                cores sharing lost up to 60 % of a step below 8192, broke even around
                                16384 to 32768 and won 2-9 % from 65536 (H = 64..512, B = 8..64) */
};

/* Indices into the params registry of one layer and direction; -1 where absent. */
typedef struct rnn_tensors {
    int64_t w_ih, w_hh, w_hh_u, w_hh_v, b_ih, b_hh;
} rnn_tensors;

struct attn_rnn {
    attn_rnn_options opt;
    int64_t gates; /* G: 1 Elman, 4 LSTM, 3 GRU */
    int64_t dirs;  /* D: 1 or 2 */
    attn_params *params;
    rnn_tensors *tensors; /* [num_layers * dirs] */
};

/* Scratch layout of one forward call; byte offsets into the workspace. */
typedef struct rnn_plan {
    attn_ws_plan ws;
    size_t proj;      /* P [B, T, G*H]: input projection of every step */
    size_t rec;       /* GRU: [B, G*H] recurrent product of one step, then the gates */
    size_t low_rank;  /* [B, rank]: V h of one step */
    size_t cell;      /* c [B, H]: LSTM cell state */
    size_t layers[2]; /* [B, T, D*H] ping-pong outputs of the layers below the last */
} rnn_plan;

static const size_t first_options_size = sizeof(attn_rnn_options);

attn_status attn_rnn_options_init(attn_rnn_options *options)
{
    if (!options)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_rnn_options_init: options is NULL");
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->cell = ATTN_CELL_LSTM;
    options->recurrence = ATTN_RECURRENCE_DENSE;
    options->num_layers = 1;
    options->bias = 1;
    return ATTN_OK;
}

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
    if (o->bidirectional != 0 && o->bidirectional != 1)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: bidirectional must be 0 or 1 (got %d)", fn, o->bidirectional);
    if (o->bias != 0 && o->bias != 1)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: bias must be 0 or 1 (got %d)", fn, o->bias);
    /* Bounds keep every weight extent, G*H and D*H within the 32-bit index range of BLAS. */
    const int64_t max_size = INT32_MAX / 8;
    if (o->input_size < 1 || o->input_size > max_size)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: input_size must be in 1..%lld (got %lld)", fn,
                          (long long)max_size, (long long)o->input_size);
    if (o->hidden_size < 1 || o->hidden_size > max_size)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: hidden_size must be in 1..%lld (got %lld)", fn,
                          (long long)max_size, (long long)o->hidden_size);
    if (o->num_layers < 1 || o->num_layers > 1024)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: num_layers must be in 1..1024 (got %lld)", fn,
                          (long long)o->num_layers);
    if (o->recurrence == ATTN_RECURRENCE_LOW_RANK && (o->rank < 1 || o->rank > o->hidden_size))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: rank must be in 1..hidden_size %lld for LOW_RANK (got %lld)",
                          fn, (long long)o->hidden_size, (long long)o->rank);
    if (o->recurrence == ATTN_RECURRENCE_KRONECKER)
        return attn__fail(ATTN_E_UNSUPPORTED, "%s: the KRONECKER recurrence is not implemented yet", fn);
    return ATTN_OK;
}

/* Declares the tensors of one layer and direction in torch.nn.RNN's state_dict order. */
static attn_status declare_tensors(attn_rnn *rnn, int64_t layer, int64_t dir, rnn_tensors *t)
{
    const attn_rnn_options *o = &rnn->opt;
    const char *suffix = dir ? "_reverse" : "";
    const int64_t gh = rnn->gates * o->hidden_size;
    /* PyTorch's init law for recurrent layers: U(-1/sqrt(H), 1/sqrt(H)) for every tensor. The low-rank
     * factors follow nn.Linear's law (bound 1/sqrt(fan_in)) as if V and U were two stacked layers. */
    const float bound = 1.0f / sqrtf((float)o->hidden_size);
    char name[64];
    attn_status st;
    *t = (rnn_tensors){-1, -1, -1, -1, -1, -1};

#define DECLARE(field, ndim, law_bound, ...)                                                            \
    do {                                                                                             \
        const int64_t shape[] = {__VA_ARGS__};                                                       \
        if ((st = attn__params_add(rnn->params, name, ndim, shape, ATTN_INIT_UNIFORM, law_bound, &t->field))) \
            return st;                                                                               \
    } while (0)

    snprintf(name, sizeof name, "weight_ih_l%lld%s", (long long)layer, suffix);
    DECLARE(w_ih, 2, bound, gh, layer_input_size(rnn, layer));
    if (o->recurrence == ATTN_RECURRENCE_DENSE) {
        snprintf(name, sizeof name, "weight_hh_l%lld%s", (long long)layer, suffix);
        DECLARE(w_hh, 2, bound, gh, o->hidden_size);
    } else {
        snprintf(name, sizeof name, "weight_hh_l%lld_u%s", (long long)layer, suffix);
        DECLARE(w_hh_u, 2, 1.0f / sqrtf((float)o->rank), gh, o->rank);
        snprintf(name, sizeof name, "weight_hh_l%lld_v%s", (long long)layer, suffix);
        DECLARE(w_hh_v, 2, bound, o->rank, o->hidden_size);
    }
    if (o->bias) {
        snprintf(name, sizeof name, "bias_ih_l%lld%s", (long long)layer, suffix);
        DECLARE(b_ih, 1, bound, gh);
        snprintf(name, sizeof name, "bias_hh_l%lld%s", (long long)layer, suffix);
        DECLARE(b_hh, 1, bound, gh);
    }
#undef DECLARE
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
    *out = rnn->opt;
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
    if (rnn->opt.recurrence == ATTN_RECURRENCE_LOW_RANK)
        p.low_rank = attn__plan_take(&p.ws, f, batch, rnn->opt.rank, 1);
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
    const int64_t gh = rnn->gates * o->hidden_size;
    const int64_t rec_per_row = o->recurrence == ATTN_RECURRENCE_LOW_RANK
                                    ? o->rank * o->hidden_size + gh * o->rank
                                    : gh * o->hidden_size;
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

/* ---- cells: one batch row of one step ------------------------------------------------------- *
 * Elman and LSTM: `gates` holds W_ih x + R(h) (the recurrent GEMM accumulated into the step's input
 * projection). GRU keeps the two apart, since R_n(h) must be scaled by r before meeting W_in x:
 * `gates` holds R(h) and `proj` W_ih x. h_prev is NULL for a zero state. */

typedef struct cell_args {
    int64_t hidden;
    const float *bias_hn; /* GRU's b_hn, or NULL (the other biases are folded into the projection) */
} cell_args;

static void elman_step(const cell_args *a, bool relu, const float *gates, float *h_out)
{
    const int64_t n = a->hidden;
    memcpy(h_out, gates, (size_t)n * sizeof *h_out);
    if (relu)
        attn__relu(h_out, n);
    else
        attn__tanh(h_out, n);
}

static void lstm_step(const cell_args *a, float *gates, float *c, float *h_out)
{
    const int64_t n = a->hidden;
    float *in = gates, *forget = gates + n, *cand = gates + 2 * n, *outg = gates + 3 * n;
    attn__sigmoid(gates, 2 * n);
    attn__tanh(cand, n);
    attn__sigmoid(outg, n);
    for (int64_t j = 0; j < n; j++) {
        c[j] = forget[j] * c[j] + in[j] * cand[j];
        in[j] = c[j]; /* the input gate is consumed: its slot holds tanh(c) next */
    }
    attn__tanh(in, n);
    for (int64_t j = 0; j < n; j++)
        h_out[j] = outg[j] * in[j];
}

static void gru_step(const cell_args *a, float *gates, const float *proj, const float *h_prev, float *h_out)
{
    const int64_t n = a->hidden;
    attn__add(gates, proj, 2 * n);
    attn__sigmoid(gates, 2 * n);
    const float *reset = gates, *update = gates + n;
    float *cand = gates + 2 * n;
    if (a->bias_hn)
        for (int64_t j = 0; j < n; j++)
            cand[j] = proj[2 * n + j] + reset[j] * (cand[j] + a->bias_hn[j]);
    else
        for (int64_t j = 0; j < n; j++)
            cand[j] = proj[2 * n + j] + reset[j] * cand[j];
    attn__tanh(cand, n);
    if (h_prev)
        for (int64_t j = 0; j < n; j++)
            h_out[j] = cand[j] + update[j] * (h_prev[j] - cand[j]);
    else
        for (int64_t j = 0; j < n; j++)
            h_out[j] = cand[j] - update[j] * cand[j];
}

/* The cell update of one step's batch rows; every row reads and writes its own rows only. */
typedef struct cell_rows {
    int32_t cell; /* ATTN_CELL_* */
    const cell_args *args;
    float *gates; /* row b at gates + b * ld_gates */
    int64_t ld_gates;
    const float *proj; /* GRU: W_ih x of row b at proj + b * ld_proj */
    int64_t ld_proj;
    float *c;             /* LSTM: [B, H] */
    const float *h_prev;  /* NULL for a zero state */
    int64_t ld_prev;
    float *h_out;
    int64_t ld_out;
} cell_rows;

/* An attn_rows_fn: batch rows [first, end) of a step, run by any thread of the team. */
static void run_cells(const void *ctx, int64_t first, int64_t end)
{
    const cell_rows *r = ctx;
    const int64_t h = r->args->hidden;
    for (int64_t b = first; b < end; b++) {
        float *gates = r->gates + b * r->ld_gates, *h_out = r->h_out + b * r->ld_out;
        switch (r->cell) {
        case ATTN_CELL_RNN_TANH: elman_step(r->args, false, gates, h_out); break;
        case ATTN_CELL_RNN_RELU: elman_step(r->args, true, gates, h_out); break;
        case ATTN_CELL_LSTM: lstm_step(r->args, gates, r->c + b * h, h_out); break;
        default:
            gru_step(r->args, gates, r->proj + b * r->ld_proj, r->h_prev ? r->h_prev + b * r->ld_prev : NULL, h_out);
            break;
        }
    }
}

/* One layer and direction over the whole sequence. `in` is [B, T, in_size]; `out` [B, T, D*H] receives
 * this direction's states at column offset dir*H. The team shares each step's cell updates. */
static void run_direction(const attn_rnn *rnn, const rnn_plan *plan, char *ws, attn_team *team, int64_t layer,
                          int64_t dir, int64_t batch, int64_t seq_len, const float *in, const float *h0,
                          const float *c0, float *out, float *h_n, float *c_n)
{
    const attn_rnn_options *o = &rnn->opt;
    const rnn_tensors *t = &rnn->tensors[layer * rnn->dirs + dir];
    const attn_params *params = rnn->params;
    const int64_t h = o->hidden_size, gh = rnn->gates * h, in_size = layer_input_size(rnn, layer);
    const int64_t out_width = rnn->dirs * h, unit = layer * rnn->dirs + dir;
    float *proj = (float *)(ws + plan->proj), *rec = (float *)(ws + plan->rec);
    float *cell = (float *)(ws + plan->cell);
    const bool gru = o->cell == ATTN_CELL_GRU;

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
    const cell_args args = {h, bias_hn};

    if (o->cell == ATTN_CELL_LSTM) {
        if (c0)
            memcpy(cell, c0 + unit * batch * h, (size_t)(batch * h) * sizeof(float));
        else
            memset(cell, 0, (size_t)(batch * h) * sizeof(float));
    }

    const float *h_prev = h0 ? h0 + unit * batch * h : NULL;
    int64_t h_prev_ld = h; /* h0 rows are contiguous; later states are rows of `out` */
    for (int64_t s = 0; s < seq_len; s++) {
        const int64_t step = dir ? seq_len - 1 - s : s;
        float *step_proj = proj + step * gh;
        /* Elman/LSTM accumulate R(h) into the step's rows of P (beta = 1: no separate add and no
         * zeroing pass); GRU needs R(h) on its own. */
        float *acc = gru ? rec : step_proj;
        const int64_t acc_ld = gru ? gh : seq_len * gh;
        const float beta = gru ? 0.0f : 1.0f;
        if (!h_prev) {
            if (gru)
                memset(rec, 0, (size_t)(batch * gh) * sizeof(float));
        } else if (o->recurrence == ATTN_RECURRENCE_DENSE) {
            attn__sgemm(false, true, batch, gh, h, 1.0f, h_prev, h_prev_ld, attn__params_cdata(params, t->w_hh), h,
                        beta, acc, acc_ld);
        } else {
            float *low = (float *)(ws + plan->low_rank);
            attn__sgemm(false, true, batch, o->rank, h, 1.0f, h_prev, h_prev_ld,
                        attn__params_cdata(params, t->w_hh_v), h, 0.0f, low, o->rank);
            attn__sgemm(false, true, batch, gh, o->rank, 1.0f, low, o->rank, attn__params_cdata(params, t->w_hh_u),
                        o->rank, beta, acc, acc_ld);
        }
        float *h_step = out + step * out_width + dir * h;
        const cell_rows rows = {o->cell, &args, acc, acc_ld, step_proj, seq_len * gh, cell, h_prev, h_prev_ld,
                                h_step, seq_len * out_width};
        attn__team_run(team, run_cells, &rows, batch, CELL_CHUNK, batch * gh >= CELL_MIN_WORK);
        h_prev = h_step;
        h_prev_ld = seq_len * out_width;
    }

    if (h_n)
        for (int64_t b = 0; b < batch; b++)
            memcpy(h_n + (unit * batch + b) * h, h_prev + b * h_prev_ld, (size_t)h * sizeof(float));
    if (c_n)
        memcpy(c_n + unit * batch * h, cell, (size_t)(batch * h) * sizeof(float));
}

attn_status attn_rnn_forward(const attn_rnn *rnn, attn_workspace *ws, int64_t batch, int64_t seq_len,
                             const float *x, const float *h0, const float *c0, float *y, float *h_n, float *c_n)
{
    static const char fn[] = "attn_rnn_forward";
    rnn_plan plan;
    int64_t flops;
    attn_status st = prepare(fn, rnn, batch, seq_len, &plan, &flops);
    if (st)
        return st;
    if (!x || !y)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, x ? "y" : "x");
    if (rnn->opt.cell != ATTN_CELL_LSTM && (c0 || c_n))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s must be NULL: only LSTM cells have a cell state", fn,
                          c0 ? "c0" : "c_n");
    const size_t f = sizeof(float), h = (size_t)rnn->opt.hidden_size, rows = (size_t)(batch * seq_len);
    const size_t states = (size_t)(rnn->opt.num_layers * rnn->dirs * batch) * h * f;
    const attn_buffer inputs[] = {{"x", x, rows * (size_t)rnn->opt.input_size * f}, {"h0", h0, states},
                                  {"c0", c0, states}};
    const attn_buffer outputs[] = {{"y", y, rows * (size_t)rnn->dirs * h * f}, {"h_n", h_n, states},
                                   {"c_n", c_n, states}};
    if ((st = attn__check_aliasing(fn, inputs, 3, outputs, 3)))
        return st;

    attn_workspace local = {0};
    char *base;
    if ((st = attn__workspace_reserve(fn, ws, &local, plan.ws.bytes, &base)))
        return st;
    const int64_t layers = rnn->opt.num_layers;
    attn_team team = ATTN__TEAM_INIT;
    for (int64_t l = 0; l < layers; l++) {
        const float *in = l == 0 ? x : (const float *)(base + plan.layers[(l - 1) % 2]);
        float *out = l == layers - 1 ? y : (float *)(base + plan.layers[l % 2]);
        for (int64_t d = 0; d < rnn->dirs; d++)
            run_direction(rnn, &plan, base, &team, l, d, batch, seq_len, in, h0, c0, out, h_n, c_n);
    }
    attn__team_stop(&team);
    attn__workspace_release(&local);
    return ATTN_OK;
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
    const rnn_tensors *t = &rnn->tensors[layer * rnn->dirs + direction];
    const int64_t h = rnn->opt.hidden_size, gh = rnn->gates * h;
    if (rnn->opt.recurrence == ATTN_RECURRENCE_DENSE)
        memcpy(out, attn__params_cdata(rnn->params, t->w_hh), (size_t)(gh * h) * sizeof(float));
    else
        attn__sgemm(false, false, gh, h, rnn->opt.rank, 1.0f, attn__params_cdata(rnn->params, t->w_hh_u),
                    rnn->opt.rank, attn__params_cdata(rnn->params, t->w_hh_v), h, 0.0f, out, h);
    return ATTN_OK;
}
