/*
 * bench_perceiver.c: attn-bench's "perceiver" group: the Perceiver (attn_perceiver) on image-sized
 * inputs, next to the rate of a sgemm timed in the same rounds and the same model in PyTorch
 * (torch_perceiver.py, run in
 * its own process with torch's default thread count and with 2 intra-op threads; the faster counts),
 * and its time as the input grows from 56 x 56 to 448 x 448 positions (issue 9's benchmark).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <attn/perceiver.h>

#include "bench_util.h"

/* A case whose warm-up takes longer than this many seconds gets at most PC_SLOW_RUNS timed runs;
 * torch_perceiver.py is given the same rule. */
#define PC_SLOW_S 2.0
enum { PC_SLOW_RUNS = 3, PC_MAX_CASES = 8, PC_TORCH_SETTINGS = 2 };

typedef struct {
    int64_t side, batch; /* input side x side x channels */
} pc_case;

typedef struct {
    int64_t channels, bands, latents, dim, depth, cross_heads, cross_dim_head, latent_heads, latent_dim_head;
    int64_t self_per_cross;
    double max_freq;
    int n_cases;
    pc_case cases[PC_MAX_CASES];
    pc_case target;               /* judged against sgemm and PyTorch */
    int64_t growth_from, growth_to; /* sides of the linear-growth check, batch 1 */
} pc_setup;

static const pc_setup pc_full_setup = {
    3, 64, 256, 512, 2, 1, 64, 8, 64, 1, 10.0, 5, {{56, 1}, {112, 1}, {224, 1}, {224, 4}, {448, 1}}, {224, 4},
    112, 448,
};
static const pc_setup pc_quick_setup = {
    3, 4, 16, 32, 2, 1, 8, 2, 8, 1, 10.0, 3, {{8, 1}, {16, 1}, {16, 2}}, {16, 2}, 8, 16,
};

typedef struct {
    const pc_setup *setup;
    double seconds[PC_TORCH_SETTINGS][PC_MAX_CASES]; /* 0 = not measured */
    int runs[PC_TORCH_SETTINGS][PC_MAX_CASES];
    int setting; /* which one is running */
    char info[PC_TORCH_SETTINGS][256];
} pc_torch;

static int pc_case_index(const pc_setup *s, long long side, long long batch)
{
    for (int i = 0; i < s->n_cases; i++)
        if (s->cases[i].side == side && s->cases[i].batch == batch)
            return i;
    return -1;
}

static void pc_on_info(void *ctx, const char *text)
{
    pc_torch *t = ctx;
    long long side, batch;
    int runs;
    if (sscanf(text, "runs perceiver_%lld_b%lld %d", &side, &batch, &runs) == 3) {
        const int i = pc_case_index(t->setup, side, batch);
        if (i >= 0)
            t->runs[t->setting][i] = runs;
    } else if (!t->info[t->setting][0]) {
        snprintf(t->info[t->setting], sizeof t->info[t->setting], "%s", text);
    }
}

static void pc_on_result(void *ctx, const char *name, double seconds)
{
    pc_torch *t = ctx;
    long long side, batch;
    if (sscanf(name, "perceiver_%lld_b%lld", &side, &batch) == 2) {
        const int i = pc_case_index(t->setup, side, batch);
        if (i >= 0)
            t->seconds[t->setting][i] = seconds;
    }
}

/* torch_perceiver.py's --threads of each setting: torch's default and 2; a --threads pass compares
 * at its own count only (0: the setting is not run). */
static int pc_torch_threads(const bench_config *cfg, int setting)
{
    return cfg->threads ? (setting ? 0 : cfg->threads) : (setting ? 2 : 0);
}

/* Runs torch_perceiver.py once per thread setting over every case. */
static void pc_run_torch(const pc_setup *s, const bench_config *cfg, pc_torch *t)
{
    for (t->setting = 0; t->setting < PC_TORCH_SETTINGS; t->setting++) {
        char *info = t->info[t->setting];
        const int threads = pc_torch_threads(cfg, t->setting);
        if (cfg->threads && !threads) {
            snprintf(info, sizeof t->info[0], "not run (--threads pass)");
            continue;
        }
        if (!cfg->use_torch) {
            snprintf(info, sizeof t->info[0], "skipped (--no-torch)");
            continue;
        }
        if (access(ATTN_BENCH_PYTHON, X_OK) != 0) {
            snprintf(info, sizeof t->info[0], "skipped (%s not found)", ATTN_BENCH_PYTHON);
            continue;
        }
        char cmd[4096] = "";
        int bad = bench_append_quoted(cmd, sizeof cmd, ATTN_BENCH_PYTHON) != 0;
        size_t len = strlen(cmd);
        if (!bad && len + 2 < sizeof cmd) {
            cmd[len++] = ' ', cmd[len] = '\0';
            bad = bench_append_quoted(cmd, sizeof cmd, ATTN_BENCH_TORCH_PERCEIVER) != 0;
        }
        len = strlen(cmd);
        /* one call per batch size, so that each side runs only with the batches it has here */
        for (int b = 1; !bad && b <= 4; b++) {
            int any = 0;
            for (int i = 0; i < s->n_cases; i++)
                any |= s->cases[i].batch == b;
            if (!any)
                continue;
            char one[4096];
            int n = snprintf(one, sizeof one,
                             "%s --axis 1 1 --channels %lld --num-freq-bands %lld --max-freq %g --latents %lld "
                             "--latent-dim %lld --depth %lld --cross-heads %lld --cross-dim-head %lld "
                             "--latent-heads %lld --latent-dim-head %lld --self-per-cross-attn %lld --batch %d "
                             "--threads %d --warmup %d --runs %d --slow %g --slow-runs %d",
                             cmd, (long long)s->channels, (long long)s->bands, s->max_freq, (long long)s->latents,
                             (long long)s->dim, (long long)s->depth, (long long)s->cross_heads,
                             (long long)s->cross_dim_head, (long long)s->latent_heads, (long long)s->latent_dim_head,
                             (long long)s->self_per_cross, b, threads, cfg->warmup, cfg->runs, PC_SLOW_S,
                             PC_SLOW_RUNS);
            for (int i = 0; i < s->n_cases && n > 0 && (size_t)n < sizeof one; i++)
                if (s->cases[i].batch == b)
                    n += snprintf(one + n, sizeof one - (size_t)n, " %lld", (long long)s->cases[i].side);
            if (n < 0 || (size_t)n >= sizeof one) {
                snprintf(info, sizeof t->info[0], "not run (command too long)");
                break;
            }
            char how[16] = "default";
            if (threads)
                snprintf(how, sizeof how, "%d", threads);
            fprintf(stderr, "  [torch] running (threads %s, batch %d) ...\n", how, b);
            if (bench_spawn("torch", one, pc_on_info, pc_on_result, t) != 0) {
                snprintf(info, sizeof t->info[0], "not available (see the lines above)");
                break;
            }
        }
    }
}

typedef struct {
    const attn_perceiver *p;
    attn_workspace *ws;
    int64_t batch, axes[2];
    const float *x;
    float *y;
} pc_forward_ctx;

static int pc_run_forward(void *ctx)
{
    pc_forward_ctx *f = ctx;
    attn_status st = attn_perceiver_forward(f->p, f->ws, f->batch, f->axes, f->x, NULL, f->y);
    if (st != ATTN_OK)
        fprintf(stderr, "attn_perceiver_forward: %s\n", attn_last_error());
    return st != ATTN_OK;
}

typedef struct {
    double seconds;
    double sgemm_gflops; /* a square sgemm timed in the same rounds */
    int runs;
    attn_cost cost;
    int64_t ws_held;
} pc_result;

static int pc_measure(const pc_setup *s, const attn_perceiver *p, const pc_case *c, const bench_config *cfg,
                      pc_result *r)
{
    const int64_t n = c->side * c->side;
    pc_forward_ctx f = {p, NULL, c->batch, {c->side, c->side}, NULL, NULL};
    if (attn_perceiver_cost(p, c->batch, f.axes, &r->cost) != ATTN_OK || attn_workspace_create(&f.ws) != ATTN_OK) {
        fprintf(stderr, "perceiver %lldx%lld B=%lld: %s\n", (long long)c->side, (long long)c->side,
                (long long)c->batch, attn_last_error());
        return 1;
    }
    float *x = bench_random_floats((size_t)(c->batch * n * s->channels), 7 + (uint64_t)n, 1.0f);
    float *y = bench_random_floats((size_t)(c->batch * s->latents * s->dim), 0, 0.0f);
    f.x = x, f.y = y;
    int rc = 0;
    double t0 = bench_now();
    for (int w = 0; w < cfg->warmup && !rc; w++)
        rc = pc_run_forward(&f);
    const int slow = cfg->warmup > 0 && bench_now() - t0 > PC_SLOW_S * cfg->warmup;
    r->runs = slow && cfg->runs > PC_SLOW_RUNS ? PC_SLOW_RUNS : cfg->runs;
    if (!rc)
        rc = bench_time_vs_sgemm(pc_run_forward, &f, 0, r->runs, cfg->quick, &r->seconds, &r->sgemm_gflops);
    r->ws_held = attn_workspace_size(f.ws);
    attn_workspace_destroy(f.ws);
    free(x), free(y);
    return rc;
}

int bench_perceiver(const bench_config *cfg)
{
    const pc_setup *s = cfg->quick ? &pc_quick_setup : &pc_full_setup;
    printf("== perceiver: C=%lld channels, 2 axes (side x side), Fourier %lld bands max_freq %g, M=%lld latents "
           "D=%lld, depth %lld, cross %lld x %lld, latent %lld x %lld, self_per_cross_attn %lld, no head, no mask, "
           "untied ==\n",
           (long long)s->channels, (long long)s->bands, s->max_freq, (long long)s->latents, (long long)s->dim,
           (long long)s->depth, (long long)s->cross_heads, (long long)s->cross_dim_head, (long long)s->latent_heads,
           (long long)s->latent_dim_head, (long long)s->self_per_cross);
    printf("time: median of `runs` timed runs after %d warm-up (at most %d runs for a case whose warm-up takes "
           "> %.0f s, PyTorch alike); GFLOP/s from attn_perceiver_cost flops; torch = %s (thr); torch/attn > 1: libattn "
           "is faster\n\n",
           cfg->warmup, PC_SLOW_RUNS, PC_SLOW_S,
           cfg->threads ? "at the pass's thread count" : "the faster of its two thread settings (d: default, 2: two)");

    attn_perceiver_options o;
    attn_perceiver_options_init(&o);
    o.input_channels = s->channels;
    o.input_axis = 2;
    o.num_freq_bands = s->bands;
    o.max_freq = s->max_freq;
    o.depth = s->depth;
    o.num_latents = s->latents;
    o.latent_dim = s->dim;
    o.cross_heads = s->cross_heads;
    o.cross_dim_head = s->cross_dim_head;
    o.latent_heads = s->latent_heads;
    o.latent_dim_head = s->latent_dim_head;
    o.self_per_cross_attn = s->self_per_cross;
    o.num_classes = 0;
    attn_perceiver *p = NULL;
    if (attn_perceiver_create(&p, &o) != ATTN_OK) {
        printf("attn_perceiver_create failed: %s\n\n", attn_last_error());
        return 1;
    }
    /* libattn first, PyTorch after: a PyTorch run of these sizes leaves the machine slower for a while
     * (at 224 x 224, B = 4, libattn took 1.4 s right after it and 1.0 s without it, in the same
     * setting), and PyTorch runs in fresh processes anyway. */
    pc_result res[PC_MAX_CASES];
    memset(res, 0, sizeof res);
    int failed = 0;
    for (int i = 0; i < s->n_cases; i++)
        if (pc_measure(s, p, &s->cases[i], cfg, &res[i])) {
            printf("%5lld failed (see the message above)\n", (long long)s->cases[i].side);
            failed = 1;
        }
    attn_perceiver_destroy(p);
    pc_torch tt;
    memset(&tt, 0, sizeof tt);
    tt.setup = s;
    pc_run_torch(s, cfg, &tt);
    printf("PyTorch (torch_perceiver.py: the same model, lucidrains' structure, own process, run after libattn): ");
    for (int k = 0; k < PC_TORCH_SETTINGS; k++)
        if (pc_torch_threads(cfg, k))
            printf("%s%d threads: %s", k ? "; " : "", pc_torch_threads(cfg, k), tt.info[k]);
        else
            printf("%s%s: %s", k ? "; " : "", cfg->threads ? "second setting" : "default threads", tt.info[k]);
    printf("\n");
    printf("%5s %7s %3s %10s %4s %8s %7s %9s %10s %3s %10s\n", "side", "N", "B", "time ms", "runs", "GFLOP/s",
           "%sgemm", "ws MiB", "torch ms", "thr", "torch/attn");
    for (int i = 0; i < s->n_cases; i++) {
        const pc_case *c = &s->cases[i];
        const pc_result *r = &res[i];
        if (r->seconds <= 0)
            continue;
        const double gflops = (double)r->cost.flops / r->seconds * 1e-9;
        const double td = tt.seconds[0][i], t2 = tt.seconds[1][i];
        const int best = td > 0 && (t2 <= 0 || td <= t2) ? 0 : 1;
        char to_ms[32] = "-", thr[8] = "-", ratio[32] = "-";
        const int best_threads = pc_torch_threads(cfg, best);
        if (tt.seconds[best][i] > 0) {
            snprintf(to_ms, sizeof to_ms, "%.1f", tt.seconds[best][i] * 1e3);
            if (best_threads)
                snprintf(thr, sizeof thr, "%d", best_threads);
            else
                snprintf(thr, sizeof thr, "d");
            snprintf(ratio, sizeof ratio, "%.2fx", tt.seconds[best][i] / r->seconds);
        }
        const double ws_mib = (double)r->cost.workspace_bytes / (1 << 20);
        printf("%5lld %7lld %3lld %10.1f %4d %8.1f %6.1f%% %9.1f %10s %3s %10s\n", (long long)c->side,
               (long long)(c->side * c->side), (long long)c->batch, r->seconds * 1e3, r->runs, gflops,
               100 * gflops / r->sgemm_gflops, ws_mib, to_ms, thr, ratio);
        const double torch_s = bench_or_na(tt.seconds[best][i]);
        char name[64];
        snprintf(name, sizeof name, "%lldx%lld B=%lld", (long long)c->side, (long long)c->side, (long long)c->batch);
        /* torch_threads 0: torch's default count */
        BENCH_RECORD("perceiver", name, {"side", (double)c->side, 0}, {"n", (double)(c->side * c->side), 0},
                     {"batch", (double)c->batch, 0}, {"time_s", r->seconds, 1}, {"runs", r->runs, 0},
                     {"gflops", gflops, 0}, {"of_sgemm", gflops / r->sgemm_gflops, 0},
                     {"sgemm_gflops", r->sgemm_gflops, 0}, {"ws_mib", ws_mib, 0},
                     {"torch_s", torch_s, 0}, {"torch_threads", torch_s > 0 ? best_threads : BENCH_NA, 0},
                     {"torch_over_attn", torch_s / r->seconds, 0});
        if (r->ws_held != r->cost.workspace_bytes)
            printf("      (the workspace holds %lld bytes, attn_perceiver_cost said %lld)\n", (long long)r->ws_held,
                   (long long)r->cost.workspace_bytes);
    }

    const int ti = pc_case_index(s, s->target.side, s->target.batch);
    const int g0 = pc_case_index(s, s->growth_from, 1), g1 = pc_case_index(s, s->growth_to, 1);
    printf("\n");
    if (ti >= 0 && res[ti].seconds > 0) {
        const pc_result *r = &res[ti];
        printf("at %lldx%lld, B=%lld: %.0f%% of sgemm%s", (long long)s->target.side, (long long)s->target.side,
               (long long)s->target.batch, 100 * (double)r->cost.flops / r->seconds * 1e-9 / r->sgemm_gflops,
               cfg->quick ? "" : " (target >= 60%)");
        double best = 0;
        for (int k = 0; k < PC_TORCH_SETTINGS; k++)
            if (tt.seconds[k][ti] > 0 && (best == 0 || tt.seconds[k][ti] < best))
                best = tt.seconds[k][ti];
        if (best > 0)
            printf(", %.2fx faster than PyTorch%s", best / r->seconds, cfg->quick ? "" : " (target >= 2x)");
        printf("\n");
    }
    if (g0 >= 0 && g1 >= 0 && res[g0].seconds > 0 && res[g1].seconds > 0)
        printf("time N=%lld -> %lld (B=1): %.1fx (%slinear %.0fx)\n", (long long)(s->growth_from * s->growth_from),
               (long long)(s->growth_to * s->growth_to), res[g1].seconds / res[g0].seconds,
               cfg->quick ? "" : "target <= 17x; ",
               (double)(s->growth_to * s->growth_to) / (double)(s->growth_from * s->growth_from));
    printf("\n");
    return failed;
}
