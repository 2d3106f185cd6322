/*
 * attn_bench.c: attn-bench, the benchmark driver and demo of libattn.
 *
 *   attn-bench [--quick] [--runs N] [--no-torch] [--no-dnnl] [--json FILE] [--threads LIST] [GROUP...]
 *
 * With no GROUP it runs every group of the table below. Each group prints a table whose figures
 * are medians of --runs timed runs after one warm-up, next to the machine's OpenBLAS sgemm rate
 * measured at start-up and, where they have the same model, PyTorch and oneDNN measured in the same
 * run. OpenBLAS is used as the environment configures it: this program sets no OPENBLAS_* variable
 * (it prints the core OpenBLAS picked and the thread count), and the helpers it spawns inherit the
 * same environment.
 *
 * --threads 1,2 runs the groups once per count instead, with openblas_set_num_threads(n) (which
 * libattn's thread team follows) and OMP_NUM_THREADS=n for the helpers (PyTorch's intra-op threads,
 * oneDNN's OpenMP), then prints how every libattn time scaled next to sgemm. --json FILE writes the
 * rows of every table, the passes and the setting (bench_util.h's record).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include <attn/common.h>
#include <attn/rnn.h>

#include "bench_util.h"

/* ==== group "rnn" ============================================================================ */

typedef struct {
    int32_t cell;
    const char *label; /* as printed */
    const char *tool;  /* the cell's name for torch_rnn.py and attn-bench-dnnl-rnn */
    int gates;
} rnn_cell_kind;

static const rnn_cell_kind rnn_cells[] = {
    {ATTN_CELL_RNN_TANH, "RNN_TANH", "rnn_tanh", 1},
    {ATTN_CELL_LSTM, "LSTM", "lstm", 4},
    {ATTN_CELL_GRU, "GRU", "gru", 3},
};
enum { RNN_N_CELLS = sizeof rnn_cells / sizeof rnn_cells[0] };

/* rank 0 stands for the DENSE recurrence */
static const int64_t rnn_ranks[] = {0, 16, 64, 128};
enum { RNN_N_RANKS = sizeof rnn_ranks / sizeof rnn_ranks[0], RNN_SUMMARY_RANK = 64 };

typedef struct {
    int64_t batch, seq, input, hidden;
} rnn_shape;

/* Timings of the other implementations, seconds per forward; 0 = not measured. */
typedef struct {
    double torch[RNN_N_CELLS], dnnl[RNN_N_CELLS];
    char torch_info[256], dnnl_info[256];
} rnn_others;

/* What one helper program reports into. */
typedef struct {
    double *seconds; /* per cell */
    char *info;      /* 256 bytes */
} rnn_helper_out;

static void rnn_on_info(void *ctx, const char *text) {
    /* the first INFO line of a helper says what it is (version, threads); later ones are details */
    rnn_helper_out *h = ctx;
    if (!h->info[0]) snprintf(h->info, 256, "%s", text);
}

static void rnn_on_result(void *ctx, const char *name, double seconds) {
    rnn_helper_out *h = ctx;
    for (int c = 0; c < RNN_N_CELLS; c++)
        if (strcmp(name, rnn_cells[c].tool) == 0) h->seconds[c] = seconds;
}

/* Spawns one helper for all cells; returns 0 when it ran and reported. */
static int rnn_spawn_helper(const char *tag, const char *program, const char *script, const rnn_shape *s,
                            const bench_config *cfg, double *seconds, char *info) {
    char cmd[4096] = "";
    if (bench_append_quoted(cmd, sizeof cmd, program)) return -1;
    size_t len = strlen(cmd);
    if (script) {
        if (len + 2 > sizeof cmd) return -1;
        cmd[len++] = ' ', cmd[len] = '\0';
        if (bench_append_quoted(cmd, sizeof cmd, script)) return -1;
        len = strlen(cmd);
    }
    if (script) /* torch_rnn.py takes named options */
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " --batch %lld --seq %lld --input %lld --hidden %lld"
                                " --warmup %d --runs %d", (long long)s->batch, (long long)s->seq,
                                (long long)s->input, (long long)s->hidden, cfg->warmup, cfg->runs);
    else
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %lld %lld %lld %lld %d %d", (long long)s->batch,
                                (long long)s->seq, (long long)s->input, (long long)s->hidden, cfg->warmup,
                                cfg->runs);
    for (int c = 0; c < RNN_N_CELLS && len < sizeof cmd; c++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %s", rnn_cells[c].tool);
    if (len >= sizeof cmd) return -1;
    fprintf(stderr, "  [%s] running ...\n", tag);
    rnn_helper_out out = {seconds, info};
    return bench_spawn(tag, cmd, rnn_on_info, rnn_on_result, &out);
}

typedef struct {
    const attn_rnn *rnn;
    attn_workspace *ws;
    const rnn_shape *s;
    const float *x;
    float *y;
} rnn_forward_ctx;

static int rnn_run_forward(void *p) {
    rnn_forward_ctx *f = p;
    attn_status st = attn_rnn_forward(f->rnn, f->ws, f->s->batch, f->s->seq, f->x, NULL, NULL, f->y, NULL, NULL);
    if (st != ATTN_OK) fprintf(stderr, "attn_rnn_forward: %s\n", attn_last_error());
    return st != ATTN_OK;
}

/* The recurrent products of a whole sequence on their own, exactly as a step issues them (one
 * product over the batch, dense or V then U), on contiguous buffers: the floor the BLAS sets for
 * the per-step work, next to which the library's recurrence time is judged. `transposed` issues
 * the same products the other way round, (W h^T)^T, whose output is the gates transposed: with
 * the same FLOPs, BLAS kernels differ in speed between the two shapes, and the faster one sets the
 * floor any layout of the recurrence could reach with this BLAS. */
typedef struct {
    int batch, seq, hidden, gh, rank;
    const float *h, *w, *v, *u;
    float *low, *out;
    bool transposed;
} rnn_steps_ctx;

static int rnn_run_steps(void *p) {
    rnn_steps_ctx *g = p;
    const CBLAS_TRANSPOSE nt = CblasNoTrans, tr = CblasTrans;
    for (int t = 0; t < g->seq; t++) {
        if (!g->transposed && !g->rank) {
            cblas_sgemm(CblasRowMajor, nt, tr, g->batch, g->gh, g->hidden, 1.0f, g->h, g->hidden, g->w, g->hidden,
                        0.0f, g->out, g->gh);
        } else if (!g->transposed) {
            cblas_sgemm(CblasRowMajor, nt, tr, g->batch, g->rank, g->hidden, 1.0f, g->h, g->hidden, g->v, g->hidden,
                        0.0f, g->low, g->rank);
            cblas_sgemm(CblasRowMajor, nt, tr, g->batch, g->gh, g->rank, 1.0f, g->low, g->rank, g->u, g->rank, 0.0f,
                        g->out, g->gh);
        } else if (!g->rank) {
            cblas_sgemm(CblasRowMajor, nt, tr, g->gh, g->batch, g->hidden, 1.0f, g->w, g->hidden, g->h, g->hidden,
                        0.0f, g->out, g->batch);
        } else {
            cblas_sgemm(CblasRowMajor, nt, tr, g->rank, g->batch, g->hidden, 1.0f, g->v, g->hidden, g->h, g->hidden,
                        0.0f, g->low, g->batch);
            cblas_sgemm(CblasRowMajor, nt, nt, g->gh, g->batch, g->rank, 1.0f, g->u, g->rank, g->low, g->batch, 0.0f,
                        g->out, g->batch);
        }
    }
    return 0;
}

typedef struct {
    double fwd, in, rec, steps, steps_t; /* steps_t: the same products transposed */
    double sgemm_gflops;                 /* a square sgemm timed in the same rounds */
    attn_cost cost;
} rnn_result;

/* Times one case. Each timed round runs, back to back: the forward pass, the input-projection
 * GEMM alone, and the T recurrent products alone (rnn_run_steps), as issued and transposed.
 *
 * Recurrence time = forward time minus the time of the input projection. The library (docs/rnn.md)
 * first projects the inputs of all B*T steps with one GEMM, [B*T, I] x W_ih^T -> [B*T, G*H], and
 * then runs the T sequential steps (recurrent product, gate math, state writes). Timing that very
 * GEMM with cblas_sgemm (same shape, layout, BLAS and input x) and subtracting it leaves the
 * sequential part, without instrumenting the library, and without a second handle whose different
 * input size would change more than the projection. The subtraction is done round by round and the
 * median taken of the differences, so that a burst of load on the machine hits both terms alike.
 * The bias folding and workspace set-up (microseconds) stay in the recurrence figure. */
static int rnn_measure(const rnn_cell_kind *k, int64_t rank, const rnn_shape *s, const bench_config *cfg,
                       const float *x, float *y, attn_workspace *ws, rnn_result *r) {
    attn_rnn_options o;
    attn_rnn *rnn = NULL;
    attn_rnn_options_init(&o);
    o.cell = k->cell;
    o.recurrence = rank ? ATTN_RECURRENCE_LOW_RANK : ATTN_RECURRENCE_DENSE;
    o.rank = rank;
    o.input_size = s->input;
    o.hidden_size = s->hidden;
    if (attn_rnn_create(&rnn, &o) != ATTN_OK || attn_rnn_cost(rnn, s->batch, s->seq, &r->cost) != ATTN_OK) {
        fprintf(stderr, "%s: %s\n", k->label, attn_last_error());
        attn_rnn_destroy(rnn);
        return 1;
    }
    /* (not B, T, I, H: cblas.h pulls in complex.h, whose I is a macro) */
    const int nb = (int)s->batch, nt = (int)s->seq, ni = (int)s->input, nh = (int)s->hidden;
    const int ngh = k->gates * nh, nr = (int)rank;
    rnn_forward_ctx fwd = {rnn, ws, s, x, y};
    float *w_ih = bench_random_floats((size_t)ngh * ni, 20, 0.05f);
    float *proj = bench_random_floats((size_t)nb * nt * ngh, 0, 0.0f);
    bench_sgemm_nt in = {nb * nt, ngh, ni, x, w_ih, proj};
    rnn_steps_ctx steps = {nb, nt, nh, ngh, nr, NULL, NULL, NULL, NULL, NULL, NULL, false};
    float *h = bench_random_floats((size_t)nb * nh, 21, 0.5f);
    float *w = nr ? NULL : bench_random_floats((size_t)ngh * nh, 22, 0.05f);
    float *v = nr ? bench_random_floats((size_t)nr * nh, 23, 0.05f) : NULL;
    float *u = nr ? bench_random_floats((size_t)ngh * nr, 24, 0.05f) : NULL;
    float *low = nr ? bench_random_floats((size_t)nb * nr, 0, 0.0f) : NULL;
    float *out = bench_random_floats((size_t)nb * ngh, 0, 0.0f);
    steps.h = h, steps.w = w, steps.v = v, steps.u = u, steps.low = low, steps.out = out;
    rnn_steps_ctx steps_t = steps;
    steps_t.transposed = true;

    bench_sgemm_nt square = bench_square_sgemm(cfg->quick);
    double square_s = 0;

    enum { FNS = 5 };
    const bench_fn fns[FNS] = {rnn_run_forward, bench_run_sgemm_nt, rnn_run_steps, rnn_run_steps, bench_run_sgemm_nt};
    void *const ctxs[FNS] = {&fwd, &in, &steps, &steps_t, &square};
    double *const results[FNS + 1] = {&r->fwd, &r->in, &r->steps, &r->steps_t, &square_s, &r->rec};
    double *t = malloc((size_t)cfg->runs * (FNS + 1) * sizeof *t);
    int rc = t ? bench_time_rounds(FNS, fns, ctxs, cfg->warmup, cfg->runs, t) : 1;
    if (!rc) {
        double *col = t + FNS * cfg->runs; /* scratch for one column at a time */
        for (int j = 0; j <= FNS; j++) {
            for (int i = 0; i < cfg->runs; i++)
                col[i] = j < FNS ? t[FNS * i + j] : t[FNS * i] - t[FNS * i + 1];
            *results[j] = bench_median(col, cfg->runs);
        }
        r->sgemm_gflops = bench_sgemm_nt_gflops(&square, square_s);
    }
    bench_sgemm_nt_free(&square);
    free(t);
    free(w_ih), free(proj), free(h), free(w), free(v), free(u), free(low), free(out);
    attn_rnn_destroy(rnn);
    return rc;
}

static void rnn_fmt_ms(char *buf, size_t cap, double seconds) {
    if (seconds > 0)
        snprintf(buf, cap, "%.2f", seconds * 1e3);
    else
        snprintf(buf, cap, "-");
}

static void rnn_fmt_ratio(char *buf, size_t cap, double other, double ours) {
    if (other > 0 && ours > 0)
        snprintf(buf, cap, "%.2fx", other / ours);
    else
        snprintf(buf, cap, "-");
}

static int bench_rnn(const bench_config *cfg) {
    const rnn_shape s = cfg->quick ? (rnn_shape){8, 32, 128, 128} : (rnn_shape){64, 256, 512, 512};
    printf("== rnn: B=%lld T=%lld I=%lld H=%lld, one layer, unidirectional, float32, h0 = c0 = 0 ==\n",
           (long long)s.batch, (long long)s.seq, (long long)s.input, (long long)s.hidden);

    rnn_others o;
    memset(&o, 0, sizeof o);
    if (!cfg->use_torch) {
        snprintf(o.torch_info, sizeof o.torch_info, "skipped (--no-torch)");
    } else if (access(ATTN_BENCH_PYTHON, X_OK) != 0) {
        snprintf(o.torch_info, sizeof o.torch_info, "skipped (%s not found)", ATTN_BENCH_PYTHON);
    } else if (rnn_spawn_helper("torch", ATTN_BENCH_PYTHON, ATTN_BENCH_TORCH_RNN, &s, cfg, o.torch,
                                o.torch_info) != 0) {
        snprintf(o.torch_info, sizeof o.torch_info, "not available (see the lines above)");
    }
#ifdef ATTN_BENCH_DNNL_RNN
    if (!cfg->use_dnnl)
        snprintf(o.dnnl_info, sizeof o.dnnl_info, "skipped (--no-dnnl)");
    else if (rnn_spawn_helper("oneDNN", ATTN_BENCH_DNNL_RNN, NULL, &s, cfg, o.dnnl, o.dnnl_info) != 0)
        snprintf(o.dnnl_info, sizeof o.dnnl_info, "failed (see the lines above)");
#else
    snprintf(o.dnnl_info, sizeof o.dnnl_info, "not built (libdnnl-dev was not found at configure time)");
#endif
    printf("PyTorch: %s\n", o.torch_info);
    printf("oneDNN:  %s (vanilla_rnn, vanilla_lstm, lbr_gru = PyTorch's GRU; tnc layout, weights reordered "
           "before timing)\n",
           o.dnnl_info);
    printf("time: median of %d runs after %d warm-up; xsgemm = GFLOP/s / the GFLOP/s of a square sgemm (2048^3; "
           "--quick: 512^3)\ntimed in the same rounds (FLOPs from attn_rnn_cost);\n"
           "rec = forward - input-projection GEMM; stepGEMM = the T recurrent products alone in "
           "cblas_sgemm, as the\nlibrary issues them (h W^T) and transposed (W h^T: stepGEMMt);\n"
           "torch/attn and oneDNN/attn = their time / libattn's time (> 1: libattn is faster)\n\n",
           cfg->runs, cfg->warmup);

    attn_workspace *ws = NULL;
    if (attn_workspace_create(&ws) != ATTN_OK) {
        fprintf(stderr, "attn_workspace_create: %s\n", attn_last_error());
        return 1;
    }
    size_t nx = (size_t)(s.batch * s.seq * s.input), ny = (size_t)(s.batch * s.seq * s.hidden);
    float *x = bench_random_floats(nx, 7, 1.0f), *y = bench_random_floats(ny, 8, 0.0f);

    printf("%-22s %9s %8s %7s %9s %9s %9s %9s %10s %9s %11s %8s\n", "case", "time ms", "GFLOP/s", "xsgemm",
           "rec ms", "stepGEMM", "stepGEMMt", "torch ms", "torch/attn", "oneDNN ms", "oneDNN/attn", "ws MiB");
    rnn_result res[RNN_N_CELLS][RNN_N_RANKS];
    int failed = 0;
    memset(res, 0, sizeof res);
    for (int c = 0; c < RNN_N_CELLS; c++) {
        const rnn_cell_kind *k = &rnn_cells[c];
        for (int q = 0; q < RNN_N_RANKS; q++) {
            rnn_result *r = &res[c][q];
            char label[64], t_ms[32], rec_ms[32], st_ms[32], stt_ms[32], to_ms[32], to_r[32], dn_ms[32], dn_r[32];
            if (rnn_ranks[q])
                snprintf(label, sizeof label, "%s low-rank r=%lld", k->label, (long long)rnn_ranks[q]);
            else
                snprintf(label, sizeof label, "%s dense", k->label);
            if (rnn_measure(k, rnn_ranks[q], &s, cfg, x, y, ws, r)) {
                printf("%-22s failed\n", label);
                failed = 1;
                continue;
            }
            double gflops = (double)r->cost.flops / r->fwd * 1e-9;
            double torch_t = rnn_ranks[q] ? 0 : o.torch[c], dnnl_t = rnn_ranks[q] ? 0 : o.dnnl[c];
            rnn_fmt_ms(t_ms, sizeof t_ms, r->fwd);
            snprintf(rec_ms, sizeof rec_ms, "%.2f", r->rec * 1e3); /* may come out negative in noise */
            rnn_fmt_ms(st_ms, sizeof st_ms, r->steps);
            rnn_fmt_ms(stt_ms, sizeof stt_ms, r->steps_t);
            rnn_fmt_ms(to_ms, sizeof to_ms, torch_t);
            rnn_fmt_ratio(to_r, sizeof to_r, torch_t, r->fwd);
            rnn_fmt_ms(dn_ms, sizeof dn_ms, dnnl_t);
            rnn_fmt_ratio(dn_r, sizeof dn_r, dnnl_t, r->fwd);
            const double ws_mib = (double)r->cost.workspace_bytes / (1024.0 * 1024.0);
            printf("%-22s %9s %8.1f %7.2f %9s %9s %9s %9s %10s %9s %11s %8.1f\n", label, t_ms, gflops,
                   gflops / r->sgemm_gflops, rec_ms, st_ms, stt_ms, to_ms, to_r, dn_ms, dn_r, ws_mib);
            BENCH_RECORD("rnn", label, {"time_s", r->fwd, 1}, {"gflops", gflops, 0},
                         {"of_sgemm", gflops / r->sgemm_gflops, 0}, {"sgemm_gflops", r->sgemm_gflops, 0},
                         {"rec_s", r->rec, 0},
                         {"step_gemm_s", r->steps, 0}, {"step_gemm_t_s", r->steps_t, 0},
                         {"torch_s", bench_or_na(torch_t), 0},
                         {"torch_over_attn", bench_or_na(torch_t) / r->fwd, 0}, {"dnnl_s", bench_or_na(dnnl_t), 0},
                         {"dnnl_over_attn", bench_or_na(dnnl_t) / r->fwd, 0}, {"ws_mib", ws_mib, 0});
            fflush(stdout);
        }
    }

    int q = 0;
    while (q < RNN_N_RANKS && rnn_ranks[q] != RNN_SUMMARY_RANK) q++;
    printf("\nforward time DENSE / LOW_RANK r=%d (target for the LSTM: >= 1.6x):", RNN_SUMMARY_RANK);
    for (int c = 0; c < RNN_N_CELLS && q < RNN_N_RANKS; c++)
        if (res[c][0].fwd > 0 && res[c][q].fwd > 0)
            printf(" %s %.2fx", rnn_cells[c].label, res[c][0].fwd / res[c][q].fwd);
    printf("\nrecurrence time DENSE / LOW_RANK r=%d:", RNN_SUMMARY_RANK);
    for (int c = 0; c < RNN_N_CELLS && q < RNN_N_RANKS; c++)
        if (res[c][0].rec > 0 && res[c][q].rec > 0)
            printf(" %s %.2fx", rnn_cells[c].label, res[c][0].rec / res[c][q].rec);
    printf("\n");
    for (int c = 0; c < RNN_N_CELLS; c++) {
        const rnn_result *d = &res[c][0];
        if (d->fwd <= 0) continue;
        double rest = d->rec - d->steps;
        printf("%s dense, where the time goes: input GEMM %.2f ms (%.0f%%), T step GEMMs %.2f ms (%.0f%%), "
               "rest (gate math, copies) %.2f ms (%.0f%%)\n",
               rnn_cells[c].label, d->in * 1e3, 100 * d->in / d->fwd, d->steps * 1e3,
               100 * d->steps / d->fwd, rest * 1e3, 100 * rest / d->fwd);
    }
    /* What no layout of the recurrence can beat with this BLAS: the input projection at the square
     * sgemm rate, plus the T step products in the faster of their two shapes, with free gate math.
     * And what the rest costs at the least: LOW_RANK r = 1 does all a dense step does besides its
     * product (the gate math over the projection's rows, the helpers' wake-ups) around two products
     * of almost no FLOPs, so its recurrence time minus those products is that rest. */
    printf("\nfloor on this BLAS = input GEMM at the sgemm rate + min(stepGEMM, stepGEMMt), gate math free "
           "(target: libattn within 1.15x of oneDNN);\nrest at r=1 = LOW_RANK r=1's rec - its stepGEMM: "
           "the gate math and synchronization every layout pays:\n");
    for (int c = 0; c < RNN_N_CELLS; c++) {
        const rnn_result *d = &res[c][0];
        if (d->fwd <= 0) continue;
        rnn_result one;
        memset(&one, 0, sizeof one);
        const double rest = rnn_measure(&rnn_cells[c], 1, &s, cfg, x, y, ws, &one) ? 0 : one.rec - one.steps;
        const double in_flops = 2.0 * (double)s.batch * (double)s.seq * (double)s.input *
                                (double)(rnn_cells[c].gates * s.hidden);
        const double floor = in_flops / (d->sgemm_gflops * 1e9) + (d->steps < d->steps_t ? d->steps : d->steps_t);
        printf("  %s dense: floor %.2f ms, libattn %.2f ms (%.2fx the floor), rest at r=1 %.2f ms",
               rnn_cells[c].label, floor * 1e3, d->fwd * 1e3, d->fwd / floor, rest * 1e3);
        if (o.dnnl[c] > 0)
            printf(", oneDNN %.2f ms: the floor is %.2fx oneDNN's time, floor + rest %.2fx", o.dnnl[c] * 1e3,
                   floor / o.dnnl[c], (floor + rest) / o.dnnl[c]);
        printf("\n");
        char name[64];
        snprintf(name, sizeof name, "%s dense floor", rnn_cells[c].label);
        BENCH_RECORD("rnn", name, {"floor_s", floor, 0}, {"rest_r1_s", bench_or_na(rest), 0},
                     {"dnnl_s", bench_or_na(o.dnnl[c]), 0});
    }
    printf("\n");

    attn_workspace_destroy(ws);
    free(x);
    free(y);
    return failed;
}

/* ==== driver ================================================================================ */

typedef struct {
    const char *name;
    const char *what;
    bench_group_fn run;
} bench_group;

static const bench_group groups[] = {
    {"rnn", "Elman/LSTM/GRU, dense and low-rank recurrence, vs sgemm, PyTorch and oneDNN", bench_rnn},
    {"attention", "multi-head attention vs N: FULL (materialize, streaming), Linformer, Nystrom, vs sgemm and PyTorch",
     bench_attention},
    {"memory", "NTM (memory RNN) vs memory size, DENSE vs SPARSE; recurrent capacity at equal state size",
     bench_memory},
    {"perceiver", "Perceiver on 56^2..448^2 inputs: time, % of sgemm, vs PyTorch, linear growth in N",
     bench_perceiver},
    {"workspace", "forward with ws = NULL (the thread's workspace) vs a reused workspace, every family",
     bench_workspace},
};
enum { N_GROUPS = sizeof groups / sizeof groups[0] };

static void usage(FILE *f, const char *argv0) {
    fprintf(f,
            "usage: %s [--quick] [--runs N] [--no-torch] [--no-dnnl] [--json FILE] [--threads LIST] [GROUP...]\n"
            "  --quick         tiny shapes (a smoke test; the numbers mean little)\n"
            "  --runs N        timed runs per figure, >= 1 (default 7; the median is reported)\n"
            "  --no-torch      do not spawn PyTorch; --no-dnnl: do not spawn the oneDNN helper\n"
            "  --json FILE     write every table row, the passes and the setting to FILE as JSON\n"
            "  --threads LIST  one pass per OpenBLAS thread count (e.g. 1,2), then a scaling table\n"
            "groups (default: all):\n",
            argv0);
    for (int g = 0; g < N_GROUPS; g++) fprintf(f, "  %-10s %s\n", groups[g].name, groups[g].what);
}

/* Other processes on a small machine change every figure: say how busy it was before and during
 * the run. CPU seconds of the whole machine (/proc/stat, all but idle and iowait) and of this
 * process with its waited-for children (/proc/self/stat: utime, stime, cutime, cstime). Returns 0
 * on success (Linux only). */
static int read_cpu_seconds(double *machine, double *own) {
    double hz = (double)sysconf(_SC_CLK_TCK);
    unsigned long long v[8] = {0}, u[4] = {0};
    char buf[1024];
    FILE *f = fopen("/proc/stat", "r");
    int ok = f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                         &v[5], &v[6], &v[7]) == 8;
    if (f) fclose(f);
    f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    /* after ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt, then times */
    ok = ok && p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &u[0], &u[1],
                           &u[2], &u[3]) == 4;
    if (!ok) return -1;
    *machine = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz; /* user nice system irq softirq steal */
    *own = (double)(u[0] + u[1] + u[2] + u[3]) / hz;
    return 0;
}

/* Returns the 1-minute load average, NaN when unknown. */
static double print_load_at_start(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l1 = BENCH_NA;
    if (f && fscanf(f, "%lf", &l1) == 1) printf("load average (1 min) at start: %.2f\n", l1);
    if (f) fclose(f);
    return l1;
}

static const char *env_or_unset(const char *name) {
    const char *v = getenv(name);
    return v ? v : "(unset)";
}

/* The first line `command` prints (stderr discarded) into out; 0 if there was one. */
static int first_line_of(const char *command, char *out, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s 2>/dev/null", command);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    out[0] = '\0';
    int ok = fgets(out, (int)cap, f) != NULL;
    while (ok && fgetc(f) != EOF) {} /* the rest, so that the command is not killed by SIGPIPE */
    pclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] ? 0 : -1;
}

/* The JSON header's description of the build and the machine, beyond what main() prints anyway. */
static void record_source_and_machine(void) {
    char date[32], line[512], cmd[1024] = "git --no-optional-locks -C ";
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    bench_record_info("date", date);
    /* the commit and whether tracked files differ from it (a measurement of uncommitted code) */
    int have_git = bench_append_quoted(cmd, sizeof cmd, ATTN_BENCH_SOURCE_DIR) == 0;
    size_t len = strlen(cmd);
    snprintf(cmd + len, sizeof cmd - len, " rev-parse HEAD");
    have_git = have_git && first_line_of(cmd, line, sizeof line) == 0;
    bench_record_info("git_commit", have_git ? line : NULL);
    snprintf(cmd + len, sizeof cmd - len, " status --porcelain --untracked-files=no");
    if (have_git)
        bench_record_info_bool("git_dirty", first_line_of(cmd, line, sizeof line) == 0);
    else
        bench_record_info("git_dirty", NULL);

    const char *model = NULL;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && !model && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            model = strchr(line, ':') + 1 + (strchr(line, ':')[1] == ' ');
            line[strcspn(line, "\n")] = '\0';
        }
    if (f) fclose(f);
    bench_record_info("cpu_model", model);
    bench_record_info_number("cpus_online", (double)sysconf(_SC_NPROCESSORS_ONLN));
}

enum { MAX_PASSES = 16 };

/* "1,2,4" into counts; returns how many, or -1. */
static int parse_threads(const char *list, int *counts) {
    int n = 0;
    for (const char *p = list; *p; n++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || n == MAX_PASSES || (*end && *end != ',') || (*end && !end[1]))
            return -1;
        counts[n] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n ? n : -1;
}

int main(int argc, char **argv) {
    bench_config cfg = {0, 1, 7, 1, 1, 0.0, 0};
    int selected[N_GROUPS] = {0}, any = 0;
    int thread_counts[MAX_PASSES], n_passes = 0;
    const char *json_path = NULL, *threads_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            cfg.quick = 1;
        } else if (strcmp(a, "--no-torch") == 0) {
            cfg.use_torch = 0;
        } else if (strcmp(a, "--no-dnnl") == 0) {
            cfg.use_dnnl = 0;
        } else if (strcmp(a, "--runs") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1000) {
                fprintf(stderr, "--runs: expected 1..1000, got '%s'\n", argv[i]);
                return 2;
            }
            cfg.runs = (int)n;
        } else if (strcmp(a, "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            threads_arg = argv[++i];
            n_passes = parse_threads(threads_arg, thread_counts);
            if (n_passes < 0) {
                fprintf(stderr, "--threads: expected a list like 1,2 (1..1024, at most %d), got '%s'\n",
                        MAX_PASSES, threads_arg);
                return 2;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            int g = 0;
            while (g < N_GROUPS && strcmp(a, groups[g].name) != 0) g++;
            if (g == N_GROUPS) {
                fprintf(stderr, "unknown argument or group '%s'\n", a);
                usage(stderr, argv[0]);
                return 2;
            }
            selected[g] = any = 1;
        }
    }

    /* a full run takes long: find out now, not at its end, that the file cannot be written */
    FILE *json_probe = json_path ? fopen(json_path, "a") : NULL;
    if (json_path && !json_probe) {
        fprintf(stderr, "--json %s: cannot write\n", json_path);
        return 2;
    }
    if (json_probe) fclose(json_probe);

    printf("attn-bench: libattn %s%s\n  %s\n", attn_version_string(), cfg.quick ? " (--quick: tiny shapes)" : "",
           attn_build_info());
    printf("OpenBLAS: core %s, %d threads; environment OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s "
           "OPENBLAS_NUM_THREADS=%s (attn-bench sets none)\n",
           openblas_get_corename(), openblas_get_num_threads(), env_or_unset("OPENBLAS_CORETYPE"),
           env_or_unset("OPENBLAS_L2_SIZE"), env_or_unset("OPENBLAS_NUM_THREADS"));
    /* recorded before any pass changes the thread count or OMP_NUM_THREADS */
    bench_record_info("libattn_version", attn_version_string());
    bench_record_info("libattn_build", attn_build_info());
    bench_record_info("openblas_config", openblas_get_config());
    bench_record_info("openblas_core", openblas_get_corename());
    bench_record_info_number("openblas_threads", openblas_get_num_threads());
    static const char *const env_names[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                            "OMP_NUM_THREADS"};
    for (size_t e = 0; e < sizeof env_names / sizeof *env_names; e++) {
        char key[64];
        snprintf(key, sizeof key, "env_%s", env_names[e]);
        bench_record_info(key, getenv(env_names[e]));
    }
    record_source_and_machine();
    bench_record_info_bool("quick", cfg.quick);
    bench_record_info_number("runs", cfg.runs);
    bench_record_info_number("warmup", cfg.warmup);
    bench_record_info_bool("torch", cfg.use_torch);
    bench_record_info_bool("dnnl", cfg.use_dnnl);
    bench_record_info("threads_sweep", threads_arg);
    char group_list[256] = "";
    for (int g = 0; g < N_GROUPS; g++)
        if (!any || selected[g])
            snprintf(group_list + strlen(group_list), sizeof group_list - strlen(group_list), "%s%s",
                     group_list[0] ? "," : "", groups[g].name);
    bench_record_info("groups", group_list);
    bench_record_info_number("load_average_at_start", print_load_at_start());
    double machine0 = 0, own0 = 0, machine1, own1, wall0 = bench_now();
    int have_cpu = read_cpu_seconds(&machine0, &own0) == 0;
    const int n = bench_square_size(cfg.quick);
    bench_record_info_number("sgemm_n", n);

    int failed = 0;
    for (int pass = 0; pass < (n_passes ? n_passes : 1); pass++) {
        if (n_passes) {
            char count[16];
            cfg.threads = thread_counts[pass];
            openblas_set_num_threads(cfg.threads);
            snprintf(count, sizeof count, "%d", cfg.threads);
            setenv("OMP_NUM_THREADS", count, 1);
            printf("######## --threads pass %d of %d: openblas_set_num_threads(%d), helpers with OMP_NUM_THREADS=%d "
                   "########\n",
                   pass + 1, n_passes, cfg.threads, cfg.threads);
        }
        cfg.sgemm_gflops = bench_sgemm_gflops(n, cfg.warmup, cfg.runs);
        bench_record_pass(openblas_get_num_threads(), cfg.sgemm_gflops);
        printf("sgemm %d^3 (OpenBLAS, threads: %d): %.1f GFLOP/s\n\n", n, openblas_get_num_threads(),
               cfg.sgemm_gflops);
        for (int g = 0; g < N_GROUPS; g++)
            if (!any || selected[g]) failed |= groups[g].run(&cfg);
    }
    bench_print_scaling();
    double others_share = BENCH_NA;
    if (have_cpu && read_cpu_seconds(&machine1, &own1) == 0) {
        double wall = bench_now() - wall0, cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
        double others = (machine1 - machine0) - (own1 - own0);
        others_share = others / (wall * cores);
        printf("other processes used %.0f%% of the machine's %.0f cores during the run (%.1f of %.1f CPU s)%s\n",
               100 * others_share, cores, others, wall * cores,
               others > 0.05 * wall * cores ? ": figures are disturbed" : "");
    }
    bench_record_info_number("others_cpu_share", others_share);
    if (json_path && bench_write_json(json_path)) failed = 1;
    return failed ? 1 : 0;
}
