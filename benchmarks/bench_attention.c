/*
 * bench_attention.c: attn-bench's "attention" group: what multi-head self-attention costs as the
 * sequence grows, exact (FULL, materialized and streaming) and approximated (Linformer, Nystrom),
 * next to the same-run sgemm rate and torch.nn.MultiheadAttention (issue 3's benchmark).
 *
 * Every kind runs the same E = 512, h = 8, B = 1 self-attention (query = key = value) at
 * N = L = S from 256 to 16384, the linear kinds further to 65536. The cases of one N are timed in
 * shared rounds (bench_time_rounds), so that the kinds compared with each other see the same machine.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <attn/attention.h>
#include <attn/common.h>

#include "bench_util.h"

/* A case whose warm-up takes longer than this many seconds gets at most ATT_SLOW_RUNS timed runs
 * (the table says so in its runs column); torch_mha.py is given the same rule. */
#define ATT_SLOW_S 2.0
enum { ATT_SLOW_RUNS = 3 };

enum { ATT_MAT, ATT_STREAM, ATT_LIN, ATT_NYS, ATT_N_KINDS };
enum { ATT_MAX_SIZES = 16 };

typedef struct {
    int64_t embed, heads, proj_len, landmarks, pinv_iterations;
    int n_sizes, n_full;        /* FULL runs sizes[0 .. n_full-1], the linear kinds all of them */
    int64_t sizes[ATT_MAX_SIZES];
    int64_t torch_max;          /* largest N given to PyTorch */
    int64_t full_target_n;      /* where FULL is judged against sgemm and PyTorch */
    int64_t growth_from;        /* the approximations' time growth: from this N to sizes[n_full-1] */
} att_setup;

static const att_setup att_full_setup = {
    512, 8, 256, 64, 6, 9, 7, {256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}, 8192, 4096, 2048,
};
/* --quick: every code path (PyTorch included) in a fraction of a second */
static const att_setup att_quick_setup = {
    64, 4, 32, 16, 6, 4, 3, {64, 128, 256, 512}, 256, 128, 64,
};

typedef struct {
    double seconds; /* median; 0 = not measured */
    double sgemm_gflops; /* the sgemm rate measured in the same rounds */
    int runs;
    attn_cost cost;
    int64_t ws_held; /* attn_workspace_size after the runs */
} att_result;

typedef struct {
    double torch[ATT_MAX_SIZES]; /* seconds per forward; 0 = not measured */
    int torch_runs[ATT_MAX_SIZES];
    char info[256];
    const att_setup *setup;
} att_torch;

static int att_size_index(const att_setup *s, int64_t n) {
    for (int i = 0; i < s->n_sizes; i++)
        if (s->sizes[i] == n) return i;
    return -1;
}

static void att_on_info(void *ctx, const char *text) {
    att_torch *t = ctx;
    long long n;
    int runs;
    if (sscanf(text, "runs full_%lld %d", &n, &runs) == 2) {
        int i = att_size_index(t->setup, (int64_t)n);
        if (i >= 0) t->torch_runs[i] = runs;
    } else if (!t->info[0]) {
        snprintf(t->info, sizeof t->info, "%s", text);
    }
}

static void att_on_result(void *ctx, const char *name, double seconds) {
    att_torch *t = ctx;
    long long n;
    if (sscanf(name, "full_%lld", &n) == 1) {
        int i = att_size_index(t->setup, (int64_t)n);
        if (i >= 0) t->torch[i] = seconds;
    }
}

/* Times torch.nn.MultiheadAttention at every N up to torch_max in one process. */
static void att_run_torch(const att_setup *s, const bench_config *cfg, att_torch *t) {
    if (!cfg->use_torch) {
        snprintf(t->info, sizeof t->info, "skipped (--no-torch)");
        return;
    }
    if (access(ATTN_BENCH_PYTHON, X_OK) != 0) {
        snprintf(t->info, sizeof t->info, "skipped (%s not found)", ATTN_BENCH_PYTHON);
        return;
    }
    char cmd[4096] = "";
    int bad = bench_append_quoted(cmd, sizeof cmd, ATTN_BENCH_PYTHON) != 0;
    size_t len = strlen(cmd);
    if (!bad && len + 2 < sizeof cmd) {
        cmd[len++] = ' ', cmd[len] = '\0';
        bad = bench_append_quoted(cmd, sizeof cmd, ATTN_BENCH_TORCH_MHA) != 0;
    }
    len = strlen(cmd);
    if (!bad)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len,
                                " --embed %lld --heads %lld --warmup %d --runs %d --slow %g --slow-runs %d",
                                (long long)s->embed, (long long)s->heads, cfg->warmup, cfg->runs, ATT_SLOW_S,
                                ATT_SLOW_RUNS);
    for (int i = 0; !bad && i < s->n_full && s->sizes[i] <= s->torch_max && len < sizeof cmd; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %lld", (long long)s->sizes[i]);
    if (bad || len >= sizeof cmd) {
        snprintf(t->info, sizeof t->info, "not run (command too long)");
        return;
    }
    fprintf(stderr, "  [torch] running ...\n");
    if (bench_spawn("torch", cmd, att_on_info, att_on_result, t) != 0)
        snprintf(t->info, sizeof t->info, "not available (see the lines above)");
}

typedef struct {
    const attn_mha *mha;
    attn_workspace *ws;
    int64_t n;
    const float *x;
    float *y;
} att_forward_ctx;

static int att_run_forward(void *p) {
    att_forward_ctx *f = p;
    attn_status st = attn_mha_forward(f->mha, f->ws, 1, f->n, f->n, f->x, f->x, f->x, NULL, f->y);
    if (st != ATTN_OK) fprintf(stderr, "attn_mha_forward: %s\n", attn_last_error());
    return st != ATTN_OK;
}

static void att_label(const att_setup *s, int k, char *buf, size_t cap) {
    switch (k) {
    case ATT_MAT: snprintf(buf, cap, "FULL materialize"); break;
    case ATT_STREAM: snprintf(buf, cap, "FULL streaming"); break;
    case ATT_LIN: snprintf(buf, cap, "LINFORMER k=%lld", (long long)s->proj_len); break;
    default: snprintf(buf, cap, "NYSTROM m=%lld", (long long)s->landmarks); break;
    }
}

static attn_status att_create(const att_setup *s, int k, int64_t n, attn_mha **out) {
    attn_mha_options o;
    attn_mha_options_init(&o);
    o.embed_dim = s->embed;
    o.num_heads = s->heads;
    if (k == ATT_MAT || k == ATT_STREAM) {
        o.kind = ATTN_MHA_FULL;
        o.memory_mode = k == ATT_MAT ? ATTN_MEMORY_MATERIALIZE : ATTN_MEMORY_STREAMING;
    } else if (k == ATT_LIN) {
        o.kind = ATTN_MHA_LINFORMER;
        o.sharing = ATTN_LINFORMER_HEADWISE;
        o.proj_len = s->proj_len;
        o.max_seq_len = n;
    } else {
        o.kind = ATTN_MHA_NYSTROM;
        o.pinv = ATTN_PINV_NEWTON;
        o.num_landmarks = s->landmarks;
        o.pinv_iterations = s->pinv_iterations;
        o.conv_kernel = 0;
    }
    return attn_mha_create(out, &o);
}

/* Times the kinds that run at sizes[i]: one timed warm-up each, then shared rounds, the slow
 * cases (warm-up > ATT_SLOW_S) in rounds of their own with fewer runs. */
static int att_measure_size(const att_setup *s, int i, const bench_config *cfg, att_result *res /* [kind] */) {
    const int64_t n = s->sizes[i];
    const int n_kinds = i < s->n_full ? ATT_N_KINDS : ATT_N_KINDS - ATT_LIN;
    const int first = ATT_N_KINDS - n_kinds;
    attn_mha *mha[ATT_N_KINDS] = {NULL};
    attn_workspace *ws[ATT_N_KINDS] = {NULL};
    float *y[ATT_N_KINDS] = {NULL};
    att_forward_ctx ctx[ATT_N_KINDS];
    float *x = bench_random_floats((size_t)(n * s->embed), 100 + (uint64_t)n, 1.0f);
    int rc = 0;
    char label[64];

    for (int k = first; k < ATT_N_KINDS && !rc; k++) {
        att_label(s, k, label, sizeof label);
        if (att_create(s, k, n, &mha[k]) != ATTN_OK || attn_mha_cost(mha[k], 1, n, n, &res[k].cost) != ATTN_OK ||
            attn_workspace_create(&ws[k]) != ATTN_OK) {
            fprintf(stderr, "%s N=%lld: %s\n", label, (long long)n, attn_last_error());
            rc = 1;
            break;
        }
        y[k] = bench_random_floats((size_t)(n * s->embed), 0, 0.0f);
        ctx[k] = (att_forward_ctx){mha[k], ws[k], n, x, y[k]};
    }

    /* the warm-up, timed to sort the cases into fast and slow */
    bench_fn fns[2][ATT_N_KINDS + 1]; /* + the sgemm */
    void *ctxs[2][ATT_N_KINDS + 1];
    int kinds[2][ATT_N_KINDS], count[2] = {0, 0};
    for (int k = first; k < ATT_N_KINDS && !rc; k++) {
        double t0 = bench_now();
        for (int w = 0; w < cfg->warmup && !rc; w++) rc = att_run_forward(&ctx[k]);
        int slow = cfg->warmup > 0 && bench_now() - t0 > ATT_SLOW_S * cfg->warmup;
        fns[slow][count[slow]] = att_run_forward;
        ctxs[slow][count[slow]] = &ctx[k];
        kinds[slow][count[slow]++] = k;
    }
    /* Each group's rounds also time a square sgemm: the rate the group's kinds are judged against
     * was measured in the same moments (a shared machine's speed drifts within one run). */
    bench_sgemm_nt sgemm = bench_square_sgemm(cfg->quick);
    for (int g = 0; g < 2 && !rc; g++) {
        if (!count[g]) continue;
        fns[g][count[g]] = bench_run_sgemm_nt;
        ctxs[g][count[g]] = &sgemm;
        const int cases = count[g] + 1;
        int runs = g ? (cfg->runs < ATT_SLOW_RUNS ? cfg->runs : ATT_SLOW_RUNS) : cfg->runs;
        double *t = malloc((size_t)runs * (size_t)(cases + 1) * sizeof *t);
        rc = t ? bench_time_rounds(cases, fns[g], ctxs[g], 0, runs, t) : 1;
        double *col = rc ? NULL : t + (size_t)runs * (size_t)cases;
        for (int r = 0; col && r < runs; r++) col[r] = t[r * cases + count[g]];
        const double sgemm_gflops = col ? bench_sgemm_nt_gflops(&sgemm, bench_median(col, runs)) : 0;
        for (int j = 0; j < count[g] && col; j++) {
            for (int r = 0; r < runs; r++) col[r] = t[r * cases + j];
            att_result *r = &res[kinds[g][j]];
            r->seconds = bench_median(col, runs);
            r->sgemm_gflops = sgemm_gflops;
            r->runs = runs;
        }
        free(t);
    }
    bench_sgemm_nt_free(&sgemm);
    for (int k = first; k < ATT_N_KINDS; k++) {
        if (ws[k]) res[k].ws_held = attn_workspace_size(ws[k]);
        attn_workspace_destroy(ws[k]);
        attn_mha_destroy(mha[k]);
        free(y[k]);
    }
    free(x);
    return rc;
}

static double att_mib(int64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* The faster FULL mode at sizes[i]; 0 when neither was measured. */
static double att_full_best(const att_result (*res)[ATT_N_KINDS], int i) {
    double a = res[i][ATT_MAT].seconds, b = res[i][ATT_STREAM].seconds;
    return a > 0 && b > 0 ? (a < b ? a : b) : a > 0 ? a : b;
}

/* The targets (issue 3) apply to the full shapes; --quick prints the same figures without them. */
static void att_print_summary(const att_setup *s, const att_result (*res)[ATT_N_KINDS], const att_torch *tt,
                              int quick) {
    const int last = s->n_full - 1;
    const int64_t n_last = s->sizes[last];
    int t_i = att_size_index(s, s->full_target_n), g_i = att_size_index(s, s->growth_from);
    char label[64];

    if (t_i >= 0) {
        printf("FULL at N=%lld%s:", (long long)s->full_target_n,
               quick ? "" : " (targets: >= 65% of sgemm, >= 1.5x faster than PyTorch)");
        for (int k = ATT_MAT; k <= ATT_STREAM; k++) {
            const att_result *r = &res[t_i][k];
            if (r->seconds <= 0) continue;
            printf(" %s %.0f%% of sgemm", k == ATT_MAT ? "materialize" : "streaming",
                   100 * (double)r->cost.flops / r->seconds * 1e-9 / r->sgemm_gflops);
            if (tt->torch[t_i] > 0) printf(", %.1fx PyTorch", tt->torch[t_i] / r->seconds);
            printf(k == ATT_MAT ? ";" : "\n");
        }
    }
    printf("against FULL = the faster of its two modes at each N:\n");
    for (int k = ATT_LIN; k < ATT_N_KINDS; k++) {
        att_label(s, k, label, sizeof label);
        printf("  %-16s", label);
        /* the crossover: the first measured N from which on the approximation is faster at every N */
        int from = s->n_full;
        while (from > 0 && res[from - 1][k].seconds > 0 && att_full_best(res, from - 1) > 0 &&
               res[from - 1][k].seconds < att_full_best(res, from - 1))
            from--;
        if (from == s->n_full) {
            printf(" crossover: not reached up to N=%lld;", (long long)n_last);
        } else if (from == 0) {
            printf(" crossover: at or below N=%lld (faster at every N measured);", (long long)s->sizes[0]);
        } else {
            /* where the time ratio, interpolated linearly in log N, crosses 1 */
            double n0 = (double)s->sizes[from - 1], n1 = (double)s->sizes[from];
            double r0 = log(res[from - 1][k].seconds / att_full_best(res, from - 1));
            double r1 = log(res[from][k].seconds / att_full_best(res, from));
            double nx = r0 > r1 ? n0 * pow(n1 / n0, r0 / (r0 - r1)) : n1;
            printf(" crossover between N=%lld (%.2f vs %.2f ms) and N=%lld (%.2f vs %.2f ms), ~N=%.0f;",
                   (long long)s->sizes[from - 1], res[from - 1][k].seconds * 1e3, att_full_best(res, from - 1) * 1e3,
                   (long long)s->sizes[from], res[from][k].seconds * 1e3, att_full_best(res, from) * 1e3, nx);
        }
        if (res[last][k].seconds > 0 && att_full_best(res, last) > 0)
            printf(" %.1fx faster than FULL at N=%lld%s;", att_full_best(res, last) / res[last][k].seconds,
                   (long long)n_last, quick ? "" : " (target >= 10x)");
        if (g_i >= 0 && res[g_i][k].seconds > 0 && res[last][k].seconds > 0)
            printf(" time N=%lld -> %lld: %.1fx (%slinear %.0fx)", (long long)s->growth_from, (long long)n_last,
                   res[last][k].seconds / res[g_i][k].seconds, quick ? "" : "target <= 10x; ",
                   (double)n_last / (double)s->growth_from);
        printf("\n");
    }
}

int bench_attention(const bench_config *cfg) {
    const att_setup *s = cfg->quick ? &att_quick_setup : &att_full_setup;
    att_result res[ATT_MAX_SIZES][ATT_N_KINDS];
    att_torch tt;
    memset(res, 0, sizeof res);
    memset(&tt, 0, sizeof tt);
    tt.setup = s;

    printf("== attention: self-attention E=%lld h=%lld B=1, N = L = S, float32, no mask; LINFORMER k=%lld "
           "HEADWISE (max_seq_len = N), NYSTROM m=%lld NEWTON %lld iterations, no conv ==\n",
           (long long)s->embed, (long long)s->heads, (long long)s->proj_len, (long long)s->landmarks,
           (long long)s->pinv_iterations);
    att_run_torch(s, cfg, &tt);
    printf("PyTorch: %s\n", tt.info);
    printf("  torch.nn.MultiheadAttention(batch_first=True), need_weights=False, no_grad, eval; FULL up to "
           "N=%lld only (beyond, one run takes tens of seconds and GiBs of attention weights)\n",
           (long long)s->torch_max);
    printf("time: median of `runs` timed runs after %d warm-up (%d by default; at most %d for a case whose "
           "warm-up takes > %.0f s, PyTorch alike); the kinds of one N are timed in shared rounds;\n"
           "GFLOP/s from attn_mha_cost flops; %%sgemm = GFLOP/s / the rate of a square sgemm (2048^3; --quick: "
           "512^3) timed in the same rounds; ws = attn_mha_cost workspace_bytes; torch/attn = PyTorch's time / "
           "libattn's (> 1: libattn is faster)\n\n",
           cfg->warmup, cfg->runs, ATT_SLOW_RUNS, ATT_SLOW_S);
    printf("%6s  %-17s %10s %4s %8s %7s %9s %10s %4s %10s\n", "N", "kind", "time ms", "runs", "GFLOP/s", "%sgemm",
           "ws MiB", "torch ms", "runs", "torch/attn");
    fflush(stdout);

    int failed = 0;
    for (int i = 0; i < s->n_sizes; i++) {
        const int64_t n = s->sizes[i];
        if (att_measure_size(s, i, cfg, res[i])) {
            printf("%6lld  failed (see the message above)\n", (long long)n);
            failed = 1;
            continue;
        }
        for (int k = 0; k < ATT_N_KINDS; k++) {
            const att_result *r = &res[i][k];
            if (r->seconds <= 0) continue;
            char label[64], to_ms[32] = "-", to_runs[16] = "-", to_r[32] = "-";
            att_label(s, k, label, sizeof label);
            double gflops = (double)r->cost.flops / r->seconds * 1e-9;
            if (k <= ATT_STREAM && tt.torch[i] > 0) {
                snprintf(to_ms, sizeof to_ms, "%.2f", tt.torch[i] * 1e3);
                snprintf(to_runs, sizeof to_runs, "%d", tt.torch_runs[i]);
                snprintf(to_r, sizeof to_r, "%.2fx", tt.torch[i] / r->seconds);
            }
            printf("%6lld  %-17s %10.2f %4d %8.1f %6.1f%% %9.2f %10s %4s %10s\n", (long long)n, label,
                   r->seconds * 1e3, r->runs, gflops, 100 * gflops / r->sgemm_gflops, att_mib(r->cost.workspace_bytes),
                   to_ms, to_runs, to_r);
            /* only FULL has a PyTorch counterpart */
            const double torch_s = k <= ATT_STREAM ? bench_or_na(tt.torch[i]) : BENCH_NA;
            char name[96];
            snprintf(name, sizeof name, "N=%lld %s", (long long)n, label);
            BENCH_RECORD("attention", name, {"n", (double)n, 0}, {"time_s", r->seconds, 1}, {"runs", r->runs, 0},
                         {"gflops", gflops, 0}, {"of_sgemm", gflops / r->sgemm_gflops, 0},
                         {"sgemm_gflops", r->sgemm_gflops, 0}, {"ws_mib", att_mib(r->cost.workspace_bytes), 0},
                         {"torch_s", torch_s, 0},
                         {"torch_runs", torch_s > 0 ? tt.torch_runs[i] : BENCH_NA, 0},
                         {"torch_over_attn", torch_s / r->seconds, 0});
            if (r->ws_held != r->cost.workspace_bytes)
                printf("        (the workspace holds %lld bytes, attn_mha_cost said %lld)\n", (long long)r->ws_held,
                       (long long)r->cost.workspace_bytes);
        }
        fflush(stdout);
    }
    printf("\n");
    att_print_summary(s, (const att_result(*)[ATT_N_KINDS])res, &tt, cfg->quick);
    printf("\n");
    return failed;
}
