/*
 * bench_memory.c: attn-bench's "memory" group: the memory-network RNN (attn_memrnn, a Neural Turing
 * Machine) as the memory grows, DENSE against SPARSE (top-k) addressing, next to the time of the
 * similarity products alone; and the recurrent-capacity table: at equal state size, parameters,
 * FLOPs per step and time of the dense, low-rank and Kronecker recurrences and the NTM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include <attn/memory.h>
#include <attn/rnn.h>

#include "bench_util.h"

/* ---- the NTM against the memory size --------------------------------------------------------- */

typedef struct {
    const attn_memrnn *ntm;
    attn_workspace *ws;
    int64_t batch, steps;
    const float *x;
    float *y;
} ntm_run;

static int run_ntm(void *ctx)
{
    ntm_run *r = ctx;
    return attn_memrnn_forward(r->ntm, r->ws, r->batch, r->steps, r->x, r->y, NULL, NULL) != ATTN_OK;
}

/* What content addressing cannot avoid, per step: the similarity of the heads that see the same
 * memory (a read head and its write head: 2 keys) with every slot, for each batch element's
 * memory: a GEMV per key over chunks of 65536 floats of the memory, so that the memory is read from
 * DRAM once, OpenBLAS threading each GEMV. (attn_memrnn shares blocks of 8192 floats among its own
 * threads instead. The slot norms are not part of it: attn_memrnn keeps them up to date as it
 * writes, so a step never recomputes them.) */
typedef struct {
    int64_t batch, slots, width;
    const float *memory, *keys;
    float *sim;
} sim_run;

static int run_similarity(void *ctx)
{
    sim_run *r = ctx;
    const int64_t n = r->slots, w = r->width, chunk = 65536 / w > 0 ? 65536 / w : 1;
    for (int64_t b = 0; b < r->batch; b++) {
        const float *m = r->memory + b * n * w, *keys = r->keys + b * 2 * w;
        float *sim = r->sim + b * 2 * n;
        for (int64_t first = 0; first < n; first += chunk) {
            const int rows = (int)(n - first < chunk ? n - first : chunk);
            cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, (int)w, 1.0f, m + first * w, (int)w, keys, 1, 0.0f,
                        sim + first, 1);
            cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, (int)w, 1.0f, m + first * w, (int)w, keys + w, 1, 0.0f,
                        sim + n + first, 1);
        }
    }
    return 0;
}

static attn_memrnn *make_ntm(int64_t slots, int64_t width, int64_t controller, int32_t addressing, int64_t top_k)
{
    attn_memrnn_options o;
    attn_memrnn_options_init(&o);
    o.input_size = 8;
    o.output_size = 8;
    o.controller_size = controller;
    o.num_heads = 1;
    o.memory_slots = slots;
    o.memory_width = width;
    o.addressing = addressing;
    o.top_k = top_k;
    attn_memrnn *ntm = NULL;
    if (attn_memrnn_create(&ntm, &o) != ATTN_OK)
        fprintf(stderr, "attn_memrnn_create: %s\n", attn_last_error());
    return ntm;
}

static int bench_ntm(const bench_config *cfg)
{
    static const int64_t sizes[] = {128, 1024, 16384, 131072};
    const int n_sizes = cfg->quick ? 2 : 4;
    const int64_t batch = cfg->quick ? 4 : 32, width = 64, controller = cfg->quick ? 32 : 256, top_k = 8;
    printf("== memory: NTM (attn_memrnn) step time vs memory slots N: W=%lld B=%lld controller=%lld, one head pair, "
           "DENSE vs SPARSE top_k=%lld ==\n",
           (long long)width, (long long)batch, (long long)controller, (long long)top_k);
    printf("step = (forward of T steps - forward of 1 step) / (T - 1), medians: the time of one more step; init = "
           "forward of 1 step - step: the initial state (copying mem_bias into every batch element's memory); sim = "
           "the similarity products alone (2 keys x N slots per batch element: one pass over the memory, "
           "GEMVs over blocks of 65536 floats threaded by OpenBLAS, in this program, timed in the same rounds)\n");
    printf("%8s %4s %10s %10s %10s %10s %9s %10s %10s %8s\n", "N", "T", "dense ms", "sparse ms", "dense/sp", "sim ms",
           "sp/sim", "init d ms", "init sp ms", "ws MiB");
    int failed = 0;
    for (int s = 0; s < n_sizes; s++) {
        const int64_t slots = sizes[s], steps = slots >= 16384 ? 5 : 16;
        attn_memrnn *dense = make_ntm(slots, width, controller, ATTN_MEMORY_DENSE, 0);
        attn_memrnn *sparse = make_ntm(slots, width, controller, ATTN_MEMORY_SPARSE, top_k);
        attn_workspace *ws = NULL;
        attn_cost cost;
        if (!dense || !sparse || attn_workspace_create(&ws) != ATTN_OK ||
            attn_memrnn_cost(dense, batch, steps, &cost) != ATTN_OK) {
            printf("%8lld failed: %s\n", (long long)slots, attn_last_error());
            failed = 1;
        } else {
            float *x = bench_random_floats((size_t)(batch * steps * 8), 1, 1.0f);
            float *y = bench_random_floats((size_t)(batch * steps * 8), 2, 1.0f);
            float *memory = bench_random_floats((size_t)(batch * slots * width), 3, 1.0f);
            float *keys = bench_random_floats((size_t)(batch * 2 * width), 4, 1.0f);
            float *sim = bench_random_floats((size_t)(batch * 2 * slots), 5, 1.0f);
            ntm_run rd = {dense, ws, batch, steps, x, y}, rd1 = {dense, ws, batch, 1, x, y};
            ntm_run rs = {sparse, ws, batch, steps, x, y}, rs1 = {sparse, ws, batch, 1, x, y};
            sim_run rsim = {batch, slots, width, memory, keys, sim};
            bench_sgemm_nt square = bench_square_sgemm(cfg->quick);
            enum { FNS = 6 };
            const bench_fn fns[FNS] = {run_ntm, run_ntm, run_ntm, run_ntm, run_similarity, bench_run_sgemm_nt};
            void *const ctxs[FNS] = {&rd, &rd1, &rs, &rs1, &rsim, &square};
            const int runs = slots >= 16384 ? (cfg->runs < 3 ? cfg->runs : 3) : cfg->runs;
            double *t = calloc((size_t)runs * FNS, sizeof *t), med[FNS], col[1000];
            if (!t || bench_time_rounds(FNS, fns, ctxs, cfg->warmup, runs, t) != 0) {
                printf("%8lld failed: %s\n", (long long)slots, attn_last_error());
                failed = 1;
            } else {
                for (int f = 0; f < FNS; f++) {
                    for (int i = 0; i < runs; i++)
                        col[i] = t[i * FNS + f];
                    med[f] = bench_median(col, runs);
                }
                const double d = (med[0] - med[1]) / (double)(steps - 1), sp = (med[2] - med[3]) / (double)(steps - 1);
                const double ws_mib = (double)cost.workspace_bytes / (1 << 20);
                printf("%8lld %4lld %10.2f %10.2f %10.2f %10.2f %9.2f %10.2f %10.2f %8.1f\n", (long long)slots,
                       (long long)steps, d * 1e3, sp * 1e3, d / sp, med[4] * 1e3, sp / med[4], (med[1] - d) * 1e3,
                       (med[3] - sp) * 1e3, ws_mib);
                char name[64];
                snprintf(name, sizeof name, "NTM N=%lld", (long long)slots);
                BENCH_RECORD("memory", name, {"slots", (double)slots, 0}, {"steps", (double)steps, 0},
                             {"dense_step_s", d, 1}, {"sparse_step_s", sp, 1}, {"dense_over_sparse", d / sp, 0},
                             {"sim_s", med[4], 0}, {"sparse_over_sim", sp / med[4], 0},
                             {"dense_init_s", med[1] - d, 0}, {"sparse_init_s", med[3] - sp, 0},
                             {"ws_mib", ws_mib, 0}, {"sgemm_gflops", bench_sgemm_nt_gflops(&square, med[5]), 0});
            }
            free(t), free(x), free(y), free(memory), free(keys), free(sim);
            bench_sgemm_nt_free(&square);
        }
        attn_workspace_destroy(ws);
        attn_memrnn_destroy(dense);
        attn_memrnn_destroy(sparse);
    }
    printf("\n");
    return failed;
}

/* ---- recurrent capacity at equal state size --------------------------------------------------- */

typedef struct {
    const attn_rnn *rnn;
    attn_workspace *ws;
    int64_t batch, steps;
    const float *x;
    float *y;
} rnn_run;

static int run_rnn(void *ctx)
{
    rnn_run *r = ctx;
    return attn_rnn_forward(r->rnn, r->ws, r->batch, r->steps, r->x, NULL, NULL, r->y, NULL, NULL) != ATTN_OK;
}

typedef struct {
    const char *label;
    int32_t recurrence;
    int64_t rank;
    int64_t factors[ATTN_RNN_MAX_FACTORS_ALL]; /* KRONECKER, 0-terminated */
} recurrence_case;

/* Recurrent parameters and FLOPs per step of one LSTM layer, from the handle's cost: the whole
 * forward's figures minus the input projection's (2 B T G H I FLOPs, G H I parameters plus biases). */
static void recurrent_figures(const attn_rnn *rnn, int64_t batch, int64_t steps, int64_t input, int64_t hidden,
                              int64_t *params, double *flops_per_step)
{
    attn_cost cost;
    attn_rnn_cost(rnn, batch, steps, &cost);
    const int64_t gh = 4 * hidden;
    *params = cost.params - gh * input - 2 * gh;
    *flops_per_step = ((double)cost.flops - 2.0 * (double)(batch * steps) * (double)(gh * input)) / (double)steps;
}

static int bench_capacity_at(const bench_config *cfg, int64_t hidden, const recurrence_case *cases, int n_cases)
{
    const int64_t batch = cfg->quick ? 4 : 64, steps = cfg->quick ? 8 : 256, input = cfg->quick ? 16 : 64;
    printf("LSTM, H=%lld, B=%lld, T=%lld, I=%lld, one layer: recurrent parameters, recurrent FLOPs per step, forward "
           "time and the time of the input projection alone (the rest is the recurrence and the gates)\n",
           (long long)hidden, (long long)batch, (long long)steps, (long long)input);
    printf("%-28s %12s %14s %10s %10s %10s\n", "recurrence", "rec params", "rec MFLOP/step", "fwd ms", "proj ms",
           "rec ms");
    int failed = 0;
    float *x = bench_random_floats((size_t)(batch * steps * input), 7, 1.0f);
    float *y = bench_random_floats((size_t)(batch * steps * hidden), 8, 1.0f);
    attn_workspace *ws = NULL;
    attn_workspace_create(&ws);
    const double proj = bench_sgemm_nt_seconds((int)(batch * steps), (int)(4 * hidden), (int)input, cfg->warmup,
                                               cfg->runs);
    for (int c = 0; c < n_cases; c++) {
        attn_rnn_options o;
        attn_rnn_options_init(&o);
        o.cell = ATTN_CELL_LSTM;
        o.recurrence = cases[c].recurrence;
        o.input_size = input;
        o.hidden_size = hidden;
        o.rank = cases[c].rank;
        for (int f = 0; f < ATTN_RNN_MAX_FACTORS_ALL && cases[c].factors[f]; f++, o.num_factors++)
            *(f < ATTN_RNN_MAX_FACTORS ? &o.factor_sizes[f] : &o.more_factor_sizes[f - ATTN_RNN_MAX_FACTORS]) =
                cases[c].factors[f];
        attn_rnn *rnn = NULL;
        double t, sgemm;
        rnn_run r = {NULL, ws, batch, steps, x, y};
        if (attn_rnn_create(&rnn, &o) != ATTN_OK ||
            (r.rnn = rnn, bench_time_vs_sgemm(run_rnn, &r, cfg->warmup, cfg->runs, cfg->quick, &t, &sgemm))) {
            printf("%-28s failed: %s\n", cases[c].label, attn_last_error());
            failed = 1;
        } else {
            int64_t params;
            double flops;
            recurrent_figures(rnn, batch, steps, input, hidden, &params, &flops);
            printf("%-28s %12lld %14.2f %10.2f %10.2f %10.2f\n", cases[c].label, (long long)params, flops / 1e6,
                   t * 1e3, proj * 1e3, (t - proj) * 1e3);
            char name[64];
            snprintf(name, sizeof name, "LSTM H=%lld %s", (long long)hidden, cases[c].label);
            BENCH_RECORD("memory", name, {"rec_params", (double)params, 0}, {"rec_mflop_per_step", flops / 1e6, 0},
                         {"time_s", t, 1}, {"proj_s", proj, 0}, {"rec_s", t - proj, 0}, {"sgemm_gflops", sgemm, 0});
        }
        attn_rnn_destroy(rnn);
    }
    attn_workspace_destroy(ws);
    free(x), free(y);
    return failed;
}

/* The NTM with a memory of the same size as H = 512 (N x W = 8 x 64): its state lives mostly
 * outside the controller, whose size sets the parameters. Whole-forward figures from its cost. */
static int bench_ntm_capacity(const bench_config *cfg)
{
    const int64_t batch = cfg->quick ? 4 : 64, steps = cfg->quick ? 8 : 256;
    printf("NTM, memory N x W = 8 x 64 (= 512 floats of state), controller 64, I = O = 8, B=%lld, T=%lld: all "
           "parameters, FLOPs per step and forward time\n",
           (long long)batch, (long long)steps);
    int failed = 0;
    float *x = bench_random_floats((size_t)(batch * steps * 8), 9, 1.0f);
    float *y = bench_random_floats((size_t)(batch * steps * 8), 10, 1.0f);
    attn_workspace *ws = NULL;
    attn_workspace_create(&ws);
    for (int sparse = 0; sparse <= 1; sparse++) {
        attn_memrnn *ntm = make_ntm(8, 64, 64, sparse ? ATTN_MEMORY_SPARSE : ATTN_MEMORY_DENSE, 2);
        ntm_run r = {ntm, ws, batch, steps, x, y};
        attn_cost cost;
        double t, sgemm;
        if (!ntm || attn_memrnn_cost(ntm, batch, steps, &cost) != ATTN_OK ||
            bench_time_vs_sgemm(run_ntm, &r, cfg->warmup, cfg->runs, cfg->quick, &t, &sgemm)) {
            printf("%-28s failed: %s\n", sparse ? "NTM SPARSE top_k=2" : "NTM DENSE", attn_last_error());
            failed = 1;
        } else {
            printf("%-28s %12lld %14.2f %10.2f\n", sparse ? "NTM SPARSE top_k=2" : "NTM DENSE", (long long)cost.params,
                   (double)cost.flops / (double)steps / 1e6, t * 1e3);
            BENCH_RECORD("memory", sparse ? "capacity NTM SPARSE top_k=2" : "capacity NTM DENSE",
                         {"params", (double)cost.params, 0},
                         {"mflop_per_step", (double)cost.flops / (double)steps / 1e6, 0}, {"time_s", t, 1},
                         {"sgemm_gflops", sgemm, 0});
        }
        attn_memrnn_destroy(ntm);
    }
    attn_workspace_destroy(ws);
    free(x), free(y);
    return failed;
}

static int bench_capacity(const bench_config *cfg)
{
    printf("== capacity: recurrent parameters, FLOPs and time at equal state size ==\n");
    static const recurrence_case at512[] = {
        {"DENSE", ATTN_RECURRENCE_DENSE, 0, {0}},
        {"LOW_RANK r=16", ATTN_RECURRENCE_LOW_RANK, 16, {0}},
        {"LOW_RANK r=64", ATTN_RECURRENCE_LOW_RANK, 64, {0}},
        {"LOW_RANK r=128", ATTN_RECURRENCE_LOW_RANK, 128, {0}},
        {"KRONECKER 8x8x8", ATTN_RECURRENCE_KRONECKER, 0, {8, 8, 8}},
        {"KRONECKER 2^9", ATTN_RECURRENCE_KRONECKER, 0, {2, 2, 2, 2, 2, 2, 2, 2, 2}},
    };
    static const recurrence_case at1024[] = {
        {"DENSE", ATTN_RECURRENCE_DENSE, 0, {0}},
        {"LOW_RANK r=32", ATTN_RECURRENCE_LOW_RANK, 32, {0}},
        {"KRONECKER 32x32", ATTN_RECURRENCE_KRONECKER, 0, {32, 32}},
        {"KRONECKER 2^10", ATTN_RECURRENCE_KRONECKER, 0, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
    };
    int failed = bench_capacity_at(cfg, 512, at512, 6);
    failed |= bench_ntm_capacity(cfg);
    if (!cfg->quick)
        failed |= bench_capacity_at(cfg, 1024, at1024, 4);
    printf("\n");
    return failed;
}

int bench_memory(const bench_config *cfg) { return bench_ntm(cfg) | bench_capacity(cfg); }
