/* Float64 reference of the recurrent family: plain loops over batch, time and gates, so that it is
 * obviously the equations of docs/rnn.md rather than a second copy of the library's algorithm. */
#include "ref_rnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t ref_rnn_gates(int32_t cell)
{
    switch (cell) {
    case ATTN_CELL_RNN_TANH:
    case ATTN_CELL_RNN_RELU: return 1;
    case ATTN_CELL_LSTM: return 4;
    case ATTN_CELL_GRU: return 3;
    default: return 0;
    }
}

void ref_rnn_tensor_name(char *buf, size_t size, const char *base, int64_t layer, const char *suffix,
                         int64_t direction)
{
    snprintf(buf, size, "%s_l%lld%s%s", base, (long long)layer, suffix, direction ? "_reverse" : "");
}

void ref_rnn_kron_name(char *buf, size_t size, int64_t layer, int64_t factor, int64_t direction)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_kron%lld", (long long)factor);
    ref_rnn_tensor_name(buf, size, "weight_hh", layer, suffix, direction);
}

void ref_matmul(int64_t n, int64_t p, int64_t k, const double *a, int64_t lda, const double *b, int64_t ldb,
                double *c, int64_t ldc)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < p; j++) {
            double s = 0;
            for (int64_t t = 0; t < k; t++)
                s += a[i * lda + t] * b[t * ldb + j];
            c[i * ldc + j] = s;
        }
}

double *ref_params_get_f64(const attn_params *p, const char *name, int64_t expected_count)
{
    attn_tensor_info info;
    if (attn_params_find(p, name, &info) != ATTN_OK || info.count != expected_count || expected_count <= 0)
        return NULL;
    float *f = malloc((size_t)expected_count * sizeof *f);
    double *d = malloc((size_t)expected_count * sizeof *d);
    if (!f || !d || attn_params_get(p, name, f, expected_count) != ATTN_OK) {
        free(f);
        free(d);
        return NULL;
    }
    for (int64_t i = 0; i < expected_count; i++)
        d[i] = f[i];
    free(f);
    return d;
}

void ref_kron(int64_t ra, int64_t ca, const double *a, int64_t rb, int64_t cb, const double *b, double *c)
{
    for (int64_t i = 0; i < ra; i++)
        for (int64_t j = 0; j < ca; j++)
            for (int64_t k = 0; k < rb; k++)
                for (int64_t l = 0; l < cb; l++)
                    c[(i * rb + k) * (ca * cb) + j * cb + l] = a[i * ca + j] * b[k * cb + l];
}

/* KRONECKER: W_hh (G*H, H) with gate block g = K_{g,0} (x) ... (x) K_{g,F-1}, from the tensors
 * weight_hh_l{l}_kron{f}[_reverse] (G, p_f, p_f). NULL when a tensor is missing. */
int64_t ref_rnn_factor(const attn_rnn_options *o, int64_t f)
{
    return f < ATTN_RNN_MAX_FACTORS ? o->factor_sizes[f] : o->more_factor_sizes[f - ATTN_RNN_MAX_FACTORS];
}

void ref_rnn_set_factors(attn_rnn_options *o, int64_t n, const int64_t *sizes)
{
    o->num_factors = n;
    memset(o->factor_sizes, 0, sizeof o->factor_sizes);
    memset(o->more_factor_sizes, 0, sizeof o->more_factor_sizes);
    for (int64_t f = 0; f < n && f < ATTN_RNN_MAX_FACTORS_ALL; f++)
        *(f < ATTN_RNN_MAX_FACTORS ? &o->factor_sizes[f] : &o->more_factor_sizes[f - ATTN_RNN_MAX_FACTORS]) = sizes[f];
}

static double *kronecker_matrix(const attn_params *p, const attn_rnn_options *o, int64_t layer, int64_t dir)
{
    const int64_t G = ref_rnn_gates(o->cell), H = o->hidden_size;
    double *w = malloc((size_t)(G * H * H) * sizeof *w), *acc = malloc((size_t)(H * H) * sizeof *acc);
    double *next = malloc((size_t)(H * H) * sizeof *next);
    double *factors[ATTN_RNN_MAX_FACTORS_ALL] = {NULL};
    int ok = w && acc && next;
    for (int64_t f = 0; ok && f < o->num_factors; f++) {
        char name[128];
        ref_rnn_kron_name(name, sizeof name, layer, f, dir);
        const int64_t pf = ref_rnn_factor(o, f);
        ok = (factors[f] = ref_params_get_f64(p, name, G * pf * pf)) != NULL;
    }
    for (int64_t g = 0; ok && g < G; g++) {
        int64_t n = 1; /* acc is n x n: the product of the first factors */
        acc[0] = 1.0;
        for (int64_t f = 0; f < o->num_factors; f++) {
            const int64_t pf = ref_rnn_factor(o, f);
            ref_kron(n, n, acc, pf, pf, factors[f] + g * pf * pf, next);
            n *= pf;
            memcpy(acc, next, (size_t)(n * n) * sizeof *acc);
        }
        ok = n == H;
        memcpy(w + g * H * H, acc, (size_t)(H * H) * sizeof *w);
    }
    for (int64_t f = 0; f < ATTN_RNN_MAX_FACTORS_ALL; f++)
        free(factors[f]);
    free(acc);
    free(next);
    if (!ok) {
        free(w);
        return NULL;
    }
    return w;
}

/* The weights of one layer and direction; absent ones are NULL. */
typedef struct ref_weights {
    double *w_ih; /* (G*H, in) */
    double *w_hh; /* (G*H, H), DENSE, and KRONECKER's materialized product */
    double *u;    /* (G*H, r), LOW_RANK */
    double *v;    /* (r, H), LOW_RANK */
    double *b_ih; /* (G*H) when bias */
    double *b_hh; /* (G*H) when bias */
} ref_weights;

static void free_weights(ref_weights *w)
{
    free(w->w_ih);
    free(w->w_hh);
    free(w->u);
    free(w->v);
    free(w->b_ih);
    free(w->b_hh);
    memset(w, 0, sizeof *w);
}

static int load_weights(attn_rnn *rnn, const attn_rnn_options *o, int64_t layer, int64_t dir, ref_weights *w)
{
    const attn_params *p = attn_rnn_params(rnn);
    const int64_t H = o->hidden_size, GH = ref_rnn_gates(o->cell) * H;
    const int64_t D = o->bidirectional ? 2 : 1;
    const int64_t in = layer == 0 ? o->input_size : D * H;
    char name[128];
    memset(w, 0, sizeof *w);

    ref_rnn_tensor_name(name, sizeof name, "weight_ih", layer, "", dir);
    w->w_ih = ref_params_get_f64(p, name, GH * in);
    int ok = w->w_ih != NULL;
    if (o->recurrence == ATTN_RECURRENCE_DENSE) {
        ref_rnn_tensor_name(name, sizeof name, "weight_hh", layer, "", dir);
        ok = ok && (w->w_hh = ref_params_get_f64(p, name, GH * H)) != NULL;
    } else if (o->recurrence == ATTN_RECURRENCE_LOW_RANK) {
        ref_rnn_tensor_name(name, sizeof name, "weight_hh", layer, "_u", dir);
        ok = ok && (w->u = ref_params_get_f64(p, name, GH * o->rank)) != NULL;
        ref_rnn_tensor_name(name, sizeof name, "weight_hh", layer, "_v", dir);
        ok = ok && (w->v = ref_params_get_f64(p, name, o->rank * H)) != NULL;
    } else {
        ok = ok && (w->w_hh = kronecker_matrix(p, o, layer, dir)) != NULL;
    }
    if (o->bias) {
        ref_rnn_tensor_name(name, sizeof name, "bias_ih", layer, "", dir);
        ok = ok && (w->b_ih = ref_params_get_f64(p, name, GH)) != NULL;
        ref_rnn_tensor_name(name, sizeof name, "bias_hh", layer, "", dir);
        ok = ok && (w->b_hh = ref_params_get_f64(p, name, GH)) != NULL;
    }
    if (!ok)
        free_weights(w);
    return ok ? 0 : -1;
}

/* out (G*H) = R(h) + b_hh; `tmp` holds r doubles for LOW_RANK's V h. */
static void recurrence(const attn_rnn_options *o, const ref_weights *w, const double *h, double *out, double *tmp)
{
    const int64_t H = o->hidden_size, GH = ref_rnn_gates(o->cell) * H, r = o->rank;
    if (w->w_hh) {
        for (int64_t i = 0; i < GH; i++) {
            double s = 0;
            for (int64_t j = 0; j < H; j++)
                s += w->w_hh[i * H + j] * h[j];
            out[i] = s;
        }
    } else {
        for (int64_t k = 0; k < r; k++) {
            double s = 0;
            for (int64_t j = 0; j < H; j++)
                s += w->v[k * H + j] * h[j];
            tmp[k] = s;
        }
        for (int64_t i = 0; i < GH; i++) {
            double s = 0;
            for (int64_t k = 0; k < r; k++)
                s += w->u[i * r + k] * tmp[k];
            out[i] = s;
        }
    }
    for (int64_t i = 0; i < GH && w->b_hh; i++)
        out[i] += w->b_hh[i];
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* One step of the cell: gi = W_ih x + b_ih, gh = R(h) + b_hh (both G*H); updates h and c. */
static void cell_step(int32_t cell, int64_t H, const double *gi, const double *gh, double *h, double *c)
{
    for (int64_t j = 0; j < H; j++) {
        switch (cell) {
        case ATTN_CELL_RNN_TANH: h[j] = tanh(gi[j] + gh[j]); break;
        case ATTN_CELL_RNN_RELU: h[j] = fmax(0.0, gi[j] + gh[j]); break;
        case ATTN_CELL_LSTM: {
            const double i = sigmoid(gi[j] + gh[j]);
            const double f = sigmoid(gi[H + j] + gh[H + j]);
            const double g = tanh(gi[2 * H + j] + gh[2 * H + j]);
            const double o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
            c[j] = f * c[j] + i * g;
            h[j] = o * tanh(c[j]);
            break;
        }
        case ATTN_CELL_GRU: {
            const double r = sigmoid(gi[j] + gh[j]);
            const double z = sigmoid(gi[H + j] + gh[H + j]);
            /* gh already holds b_hn, so it is scaled by r together with W_hn h. */
            const double n = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
            h[j] = (1.0 - z) * n + z * h[j];
            break;
        }
        default: break;
        }
    }
}

int ref_rnn_recurrent_matrix(attn_rnn *rnn, int64_t layer, int64_t direction, double *out)
{
    attn_rnn_options o;
    ref_weights w;
    attn_rnn_options_init(&o);
    if (attn_rnn_get_options(rnn, &o) != ATTN_OK || load_weights(rnn, &o, layer, direction, &w) != 0)
        return -1;
    const int64_t H = o.hidden_size, GH = ref_rnn_gates(o.cell) * H;
    if (w.w_hh)
        memcpy(out, w.w_hh, (size_t)(GH * H) * sizeof *out);
    else
        ref_matmul(GH, H, o.rank, w.u, o.rank, w.v, H, out, H);
    free_weights(&w);
    return 0;
}

int ref_rnn_forward(attn_rnn *rnn, int64_t batch, int64_t seq_len, const float *x, const float *h0,
                    const float *c0, double *y, double *h_n, double *c_n)
{
    attn_rnn_options o;
    attn_rnn_options_init(&o);
    if (attn_rnn_get_options(rnn, &o) != ATTN_OK || ref_rnn_gates(o.cell) == 0)
        return -1;
    const int64_t B = batch, T = seq_len, H = o.hidden_size, L = o.num_layers;
    const int64_t D = o.bidirectional ? 2 : 1, GH = ref_rnn_gates(o.cell) * H;
    const int lstm = o.cell == ATTN_CELL_LSTM;

    /* Layer input and output sequences, [B, T, width]; layer 0 reads x. */
    int64_t in_width = o.input_size;
    double *in = malloc((size_t)(B * T * in_width) * sizeof *in);
    double *out = malloc((size_t)(B * T * D * H) * sizeof *out);
    double *gi = malloc((size_t)GH * sizeof *gi), *gh = malloc((size_t)GH * sizeof *gh);
    double *h = malloc((size_t)H * sizeof *h), *c = malloc((size_t)H * sizeof *c);
    double *tmp = malloc((size_t)(o.rank > 0 ? o.rank : 1) * sizeof *tmp);
    int status = (in && out && gi && gh && h && c && tmp) ? 0 : -1;
    for (int64_t i = 0; status == 0 && i < B * T * in_width; i++)
        in[i] = x[i];

    for (int64_t l = 0; status == 0 && l < L; l++) {
        for (int64_t d = 0; status == 0 && d < D; d++) {
            ref_weights w;
            if (load_weights(rnn, &o, l, d, &w) != 0) {
                status = -1;
                break;
            }
            const int64_t state = (l * D + d) * B; /* row of [L*D, B, H] for batch element 0 */
            for (int64_t b = 0; b < B; b++) {
                for (int64_t j = 0; j < H; j++) {
                    h[j] = h0 ? h0[(state + b) * H + j] : 0.0;
                    c[j] = (lstm && c0) ? c0[(state + b) * H + j] : 0.0;
                }
                for (int64_t s = 0; s < T; s++) {
                    const int64_t t = d ? T - 1 - s : s; /* the reverse direction reads time backwards */
                    const double *xt = in + (b * T + t) * in_width;
                    for (int64_t i = 0; i < GH; i++) {
                        double acc = w.b_ih ? w.b_ih[i] : 0.0;
                        for (int64_t k = 0; k < in_width; k++)
                            acc += w.w_ih[i * in_width + k] * xt[k];
                        gi[i] = acc;
                    }
                    recurrence(&o, &w, h, gh, tmp);
                    cell_step(o.cell, H, gi, gh, h, c);
                    memcpy(out + (b * T + t) * D * H + d * H, h, (size_t)H * sizeof *h);
                }
                for (int64_t j = 0; j < H; j++) {
                    if (h_n)
                        h_n[(state + b) * H + j] = h[j];
                    if (c_n && lstm)
                        c_n[(state + b) * H + j] = c[j];
                }
            }
            free_weights(&w);
        }
        /* The next layer reads this layer's output: [forward, reverse] when bidirectional. */
        double *swap = in;
        in = out;
        out = swap;
        in_width = D * H;
        if (status == 0 && l + 1 < L) {
            double *grown = realloc(out, (size_t)(B * T * D * H) * sizeof *out);
            if (!grown)
                status = -1;
            else
                out = grown;
        }
    }
    if (status == 0)
        memcpy(y, in, (size_t)(B * T * D * H) * sizeof *y);
    free(in);
    free(out);
    free(gi);
    free(gh);
    free(h);
    free(c);
    free(tmp);
    return status;
}
