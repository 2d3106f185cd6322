/* attn-explore part 3: recurrent capacity at equal state size. What each recurrence (dense,
 * low-rank, Kronecker, the memory network) costs and how much rank its recurrent matrix has; and
 * the trained character LSTM: the spectrum of its W_hh, and the held-out loss it keeps when W_hh is
 * replaced by its best rank-r approximation, run through a LOW_RANK handle. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "explore.h"

enum { BATCH = 16, STEPS = 64, INPUT = 64 };

static void report_cells(xp_table *t, const attn_rank_report *r)
{
    xp_int(t, r->rank_90);
    xp_int(t, r->rank_99);
    xp_num(t, "%.1f", r->stable_rank);
    xp_num(t, "%.1f", r->effective_rank);
}

/* Parameters of the tensors whose name contains `part`. */
static int64_t count_of(attn_params *p, const char *part)
{
    int64_t n = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        xp_check(attn_params_info(p, i, &info), "attn_params_info");
        if (strstr(info.name, part))
            n += info.count;
    }
    return n;
}

typedef struct {
    const attn_rnn *rnn;
    const attn_memrnn *mem;
    attn_workspace *ws;
    const float *x;
    float *y;
} step_ctx;

static void run_recurrence(void *ctx)
{
    step_ctx *s = ctx;
    if (s->rnn)
        xp_check(attn_rnn_forward(s->rnn, s->ws, BATCH, STEPS, s->x, NULL, NULL, s->y, NULL, NULL), "attn_rnn_forward");
    else
        xp_check(attn_memrnn_forward(s->mem, s->ws, BATCH, STEPS, s->x, s->y, NULL, NULL), "attn_memrnn_forward");
}

/* One row of the capacity table: an LSTM with the given recurrence (factors: KRONECKER sizes). */
static void capacity_rnn(const xp_config *cfg, xp_table *t, int64_t hidden, int32_t recurrence, int64_t rank,
                         int64_t factors, int64_t factor, const char *label, const float *x, float *y,
                         attn_workspace *ws)
{
    attn_rnn_options o;
    xp_check(attn_rnn_options_init(&o), "attn_rnn_options_init");
    o.cell = ATTN_CELL_LSTM;
    o.recurrence = recurrence;
    o.input_size = INPUT;
    o.hidden_size = hidden;
    o.rank = rank;
    o.num_factors = factors;
    for (int64_t f = 0; f < factors && f < ATTN_RNN_MAX_FACTORS; f++)
        o.factor_sizes[f] = factor;
    for (int64_t f = ATTN_RNN_MAX_FACTORS; f < factors; f++)
        o.more_factor_sizes[f - ATTN_RNN_MAX_FACTORS] = factor;
    attn_rnn *rnn = NULL;
    xp_check(attn_rnn_create(&rnn, &o), label);
    xp_check(attn_params_init(attn_rnn_params(rnn), cfg->seed), "attn_params_init");
    attn_cost cost;
    xp_check(attn_rnn_cost(rnn, BATCH, STEPS, &cost), "attn_rnn_cost");
    xp_progress(cfg, "recurrent: timing %s", label);
    step_ctx s = {rnn, NULL, ws, x, y};
    const double sec = xp_time(cfg->runs, run_recurrence, &s);
    float *w = xp_alloc((size_t)(4 * hidden * hidden) * sizeof *w);
    xp_check(attn_rnn_recurrent_matrix(rnn, 0, 0, w), "attn_rnn_recurrent_matrix");
    attn_rank_report rep;
    xp_check(attn_rank_analyze(w, 4 * hidden, hidden, &rep), "attn_rank_analyze");
    xp_text(t, label);
    xp_int(t, 2 * hidden);
    xp_int(t, count_of(attn_rnn_params(rnn), "weight_hh"));
    xp_int(t, cost.params);
    xp_num(t, "%.3f", (double)cost.flops / (BATCH * STEPS) * 1e-6);
    xp_num(t, "%.1f", sec / STEPS * 1e6);
    report_cells(t, &rep);
    free(w);
    attn_rnn_destroy(rnn);
}

/* The memory network with the same state: controller C = H/2 (h and c: H floats) plus N x W memory
 * and one read vector of W, with (N + 1) W = H: W the largest divisor of H up to 16 that leaves
 * N >= 1 (H is even). */
static void capacity_memory(const xp_config *cfg, xp_table *t, int64_t hidden, const float *x, float *y,
                            attn_workspace *ws)
{
    int64_t w = 16;
    while (hidden % w || hidden / w < 2)
        w--;
    const int64_t c = hidden / 2, slots = hidden / w - 1;
    attn_memrnn_options o;
    xp_check(attn_memrnn_options_init(&o), "attn_memrnn_options_init");
    o.input_size = INPUT;
    o.output_size = INPUT;
    o.controller_size = c;
    o.memory_slots = slots;
    o.memory_width = w;
    attn_memrnn *mem = NULL;
    xp_check(attn_memrnn_create(&mem, &o), "attn_memrnn_create");
    attn_params *p = attn_memrnn_params(mem);
    xp_check(attn_params_init(p, cfg->seed), "attn_params_init");
    attn_cost cost;
    xp_check(attn_memrnn_cost(mem, BATCH, STEPS, &cost), "attn_memrnn_cost");
    xp_progress(cfg, "recurrent: timing the memory network");
    step_ctx s = {NULL, mem, ws, x, y};
    const double sec = xp_time(cfg->runs, run_recurrence, &s);
    int64_t count;
    const float *w_hh = xp_tensor(p, "ntm.controller.lstm.weight_hh_l0", &count);
    attn_rank_report rep;
    xp_check(attn_rank_analyze(w_hh, 4 * c, c, &rep), "attn_rank_analyze");
    char label[96];
    snprintf(label, sizeof label, "MEMORY C=%lld N=%lldxW=%lld", (long long)c, (long long)slots, (long long)w);
    xp_text(t, label);
    xp_int(t, 2 * c + slots * w + w);
    xp_int(t, count);
    xp_int(t, cost.params);
    xp_num(t, "%.3f", (double)cost.flops / (BATCH * STEPS) * 1e-6);
    xp_num(t, "%.1f", sec / STEPS * 1e6);
    report_cells(t, &rep);
    free((void *)w_hh);
    attn_memrnn_destroy(mem);
}

/* ---- the trained LSTM ----------------------------------------------------------------------------- */

typedef struct {
    attn_params *weights;
    int64_t vocab, embed, hidden;
} lstm_model;

/* Mean next-character loss (nats) of an LSTM handle carrying the trained weights, over consecutive
 * windows of the training context, each from a zero state (as models/train.py evaluates). */
static double heldout_loss(const lstm_model *m, const attn_rnn *rnn, const int64_t *ids, int64_t chars)
{
    const int64_t len = XP_TRAINED_CONTEXT, windows = (chars - 1) / len, e = m->embed, h = m->hidden,
                  v = m->vocab, rows = windows * len;
    if (windows < 1)
        xp_die("the held-out text is shorter than one window (%lld characters)", (long long)len + 1);
    const float *embed = xp_tensor(m->weights, "embed.weight", NULL);
    const float *head_w = xp_tensor(m->weights, "head.weight", NULL), *head_b = xp_tensor(m->weights, "head.bias", NULL);
    float *x = xp_alloc((size_t)(rows * e) * sizeof *x), *y = xp_alloc((size_t)(rows * h) * sizeof *y);
    float *logits = xp_alloc((size_t)(rows * v) * sizeof *logits);
    for (int64_t r = 0; r < rows; r++)
        memcpy(x + r * e, embed + ids[r] * e, (size_t)e * sizeof *x);
    xp_check(attn_rnn_forward(rnn, NULL, windows, len, x, NULL, NULL, y, NULL, NULL), "attn_rnn_forward");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)v, (int)h, 1.0f, y, (int)h, head_w, (int)h,
                0.0f, logits, (int)v);
    double nll = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * v;
        double max = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < v; j++)
            max = fmax(max, (double)z[j] + head_b[j]);
        for (int64_t j = 0; j < v; j++)
            sum += exp((double)z[j] + head_b[j] - max);
        const int64_t target = ids[r + 1]; /* window b's position t predicts character b len + t + 1 */
        nll += max + log(sum) - ((double)z[target] + head_b[target]);
    }
    free(x), free(y), free(logits);
    free((void *)embed), free((void *)head_w), free((void *)head_b);
    return nll / (double)rows;
}

/* An LSTM handle for the trained weights: DENSE (rank 0) or LOW_RANK with W_hh's best rank-r
 * factors. */
static attn_rnn *trained_lstm(const lstm_model *m, int64_t rank, const float *w_hh)
{
    attn_rnn_options o;
    xp_check(attn_rnn_options_init(&o), "attn_rnn_options_init");
    o.cell = ATTN_CELL_LSTM;
    o.input_size = m->embed;
    o.hidden_size = m->hidden;
    o.recurrence = rank ? ATTN_RECURRENCE_LOW_RANK : ATTN_RECURRENCE_DENSE;
    o.rank = rank;
    attn_rnn *rnn = NULL;
    xp_check(attn_rnn_create(&rnn, &o), "attn_rnn_create");
    attn_params *p = attn_rnn_params(rnn);
    static const char *const shared[] = {"weight_ih_l0", "bias_ih_l0", "bias_hh_l0", NULL};
    static const char *const dense[] = {"weight_ih_l0", "bias_ih_l0", "bias_hh_l0", "weight_hh_l0", NULL};
    xp_copy_params(p, m->weights, "lstm.", rank ? shared : dense);
    if (rank) {
        const int64_t rows = 4 * m->hidden, cols = m->hidden;
        float *u = xp_alloc((size_t)(rows * rank) * sizeof *u), *v = xp_alloc((size_t)(rank * cols) * sizeof *v);
        xp_check(attn_lowrank_factors(w_hh, rows, cols, rank, u, v), "attn_lowrank_factors");
        xp_check(attn_params_set(p, "weight_hh_l0_u", u, rows * rank), "weight_hh_l0_u");
        xp_check(attn_params_set(p, "weight_hh_l0_v", v, rank * cols), "weight_hh_l0_v");
        free(u), free(v);
    }
    return rnn;
}

static void trained_lstm_tables(const xp_config *cfg)
{
    xp_text_model text;
    xp_text_model_load(cfg, &text);
    char path[4096];
    snprintf(path, sizeof path, "%s/char_lstm.safetensors", cfg->models_dir);
    lstm_model m = {0};
    xp_check(attn_params_open(&m.weights, path, NULL), "loading the trained LSTM");
    attn_tensor_info info;
    xp_check(attn_params_find(m.weights, "embed.weight", &info), path);
    m.vocab = info.shape[0], m.embed = info.shape[1];
    xp_check(attn_params_find(m.weights, "lstm.weight_hh_l0", &info), path);
    m.hidden = info.shape[1];
    int64_t count, chars;
    const float *vocab = xp_tensor(m.weights, "vocab", &count);
    if (count != text.vocab || memcmp(vocab, text.codepoints, (size_t)count * sizeof *vocab))
        xp_die("%s: its vocabulary differs from the attention model's", path);
    free((void *)vocab);
    int64_t *ids = xp_text_ids(&text, &chars);
    if (cfg->text_chars && cfg->text_chars < chars)
        chars = cfg->text_chars;
    const int64_t h = m.hidden, rows = 4 * h;
    const float *w_hh = xp_tensor(m.weights, "lstm.weight_hh_l0", NULL);

    static const char *const spec_cols[] = {"matrix", "rows x cols", "sigma_max", "rank_90", "rank_99", "stable",
                                            "effective"};
    xp_table *t = xp_table_new(cfg, "lstm_spectrum", 7, spec_cols);
    static const char *const parts[] = {"W_hh (all gates)", "W_hi (input gate)", "W_hf (forget gate)",
                                        "W_hg (cell gate)", "W_ho (output gate)"};
    for (int k = 0; k < 5; k++) {
        const int64_t r = k ? h : rows;
        attn_rank_report rep;
        xp_check(attn_rank_analyze(w_hh + (k ? (k - 1) * h * h : 0), r, h, &rep), "attn_rank_analyze");
        char shape[32];
        snprintf(shape, sizeof shape, "%lld x %lld", (long long)r, (long long)h);
        xp_text(t, parts[k]);
        xp_text(t, shape);
        xp_num(t, "%.3f", rep.sigma_max);
        report_cells(t, &rep);
    }
    printf("the trained character LSTM (H = %lld): the spectrum of its recurrent matrix\n", (long long)h);
    xp_table_end(t);

    xp_progress(cfg, "recurrent: the trained LSTM, dense");
    attn_rnn *rnn = trained_lstm(&m, 0, NULL);
    const double dense = heldout_loss(&m, rnn, ids, chars);
    attn_rnn_destroy(rnn);
    double *sigma = xp_alloc((size_t)h * sizeof *sigma);
    xp_check(attn_singular_values(w_hh, rows, h, sigma), "attn_singular_values");
    const double energy = xp_tail_energy(sigma, h, 0);
    static const char *const cols[] = {"rank r", "W_hh params", "energy kept", "rel. error", "loss", "dense loss",
                                       "loss - dense"};
    t = xp_table_new(cfg, "lstm_truncation", 7, cols);
    for (int i = 0; i <= cfg->ranks.n; i++) {
        const int64_t r = i < cfg->ranks.n ? cfg->ranks.v[i] : h;
        if (r > h || (i < cfg->ranks.n && r == h))
            continue;
        xp_progress(cfg, "recurrent: the trained LSTM, W_hh at rank %lld", (long long)r);
        rnn = trained_lstm(&m, r, w_hh);
        const double loss = heldout_loss(&m, rnn, ids, chars);
        attn_rnn_destroy(rnn);
        const double tail = xp_tail_energy(sigma, h, r);
        xp_int(t, r);
        xp_int(t, r * (rows + h));
        xp_num(t, "%.4f", 1.0 - tail / energy);
        xp_num(t, "%.4f", sqrt(tail / energy));
        xp_num(t, "%.4f", loss);
        xp_num(t, "%.4f", dense);
        xp_num(t, "%+.4f", loss - dense);
    }
    xp_progress_done(cfg);
    printf("held-out next-character loss (nats/char over %lld characters, windows of %d from a zero state) with\n"
           "W_hh replaced by its best rank-r approximation U V (truncated SVD, attn_lowrank_factors), run as a\n"
           "LOW_RANK LSTM; the dense W_hh has %lld parameters (rank %lld runs LOW_RANK at full rank):\n",
           (long long)((chars - 1) / XP_TRAINED_CONTEXT * XP_TRAINED_CONTEXT), XP_TRAINED_CONTEXT,
           (long long)(rows * h), (long long)h);
    xp_table_end(t);
    free(sigma);
    free((void *)w_hh);
    free(ids);
    attn_params_close(m.weights);
    xp_text_model_free(&text);
}

void xp_part_recurrent(const xp_config *cfg)
{
    const int64_t h = cfg->hidden;
    printf("== 3. Recurrent capacity at equal state size ==\n"
           "LSTM recurrences with H = %lld (state: h and c, %lld floats), random weights from seed %llu, input %d,\n"
           "batch %d, %d steps (median of %d); the memory network with the same state (its controller's h and c,\n"
           "the memory and one read vector). The rank columns describe the effective recurrent matrix\n"
           "(attn_rnn_recurrent_matrix; for the memory network its controller's W_hh).\n\n",
           (long long)h, (long long)(2 * h), (unsigned long long)cfg->seed, INPUT, BATCH, STEPS, cfg->runs);
    static const char *const cols[] = {"recurrence", "state", "W_hh params", "params", "MFLOP/step", "us/step",
                                       "rank_90", "rank_99", "stable", "effective"};
    xp_table *t = xp_table_new(cfg, "recurrent_capacity", 10, cols);
    attn_workspace *ws = NULL;
    xp_check(attn_workspace_create(&ws), "attn_workspace_create");
    float *x = xp_alloc((size_t)(BATCH * STEPS * INPUT) * sizeof *x);
    float *y = xp_alloc((size_t)(BATCH * STEPS * (h > INPUT ? h : INPUT)) * sizeof *y);
    xp_random(x, (size_t)(BATCH * STEPS * INPUT), cfg->seed, 1.0f);
    capacity_rnn(cfg, t, h, ATTN_RECURRENCE_DENSE, 0, 0, 0, "DENSE", x, y, ws);
    for (int i = 0; i < cfg->ranks.n; i++) {
        if (cfg->ranks.v[i] >= h)
            continue;
        char label[64];
        snprintf(label, sizeof label, "LOW_RANK r=%lld", (long long)cfg->ranks.v[i]);
        capacity_rnn(cfg, t, h, ATTN_RECURRENCE_LOW_RANK, cfg->ranks.v[i], 0, 0, label, x, y, ws);
    }
    /* Kronecker: H as p x p when it is a square, and as 2 x 2 x ... when a power of two */
    const int64_t root = (int64_t)llround(sqrt((double)h));
    if (root * root == h && root > 1) {
        char label[64];
        snprintf(label, sizeof label, "KRONECKER %lldx%lld", (long long)root, (long long)root);
        capacity_rnn(cfg, t, h, ATTN_RECURRENCE_KRONECKER, 0, 2, root, label, x, y, ws);
    }
    int64_t bits = 0;
    while ((int64_t)1 << bits < h)
        bits++;
    if ((int64_t)1 << bits == h && bits > 2 && bits <= ATTN_RNN_MAX_FACTORS_ALL) {
        char label[64];
        snprintf(label, sizeof label, "KRONECKER 2^%lld", (long long)bits);
        capacity_rnn(cfg, t, h, ATTN_RECURRENCE_KRONECKER, 0, bits, 2, label, x, y, ws);
    }
    capacity_memory(cfg, t, h, x, y, ws);
    xp_progress_done(cfg);
    xp_table_end(t);
    free(x), free(y);
    attn_workspace_destroy(ws);
    trained_lstm_tables(cfg);
}
