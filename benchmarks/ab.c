/*
 * ab.c: attn-ab, an A/B timer for two builds of libattn in one process (not installed).
 *
 *   attn-ab [--runs N] OLD/libattn.so NEW/libattn.so [GROUP...]     groups: lstm kronecker ntm
 *
 * On machines whose speed drifts within minutes (sgemm has moved 2x within one run here), two
 * builds timed in separate processes, or one and two threads timed in separate passes, compare
 * phases of the machine rather than code. attn-ab loads both builds with dlopen and runs every case
 * round by round, alternating the builds and OpenBLAS's thread count (1, 2) within each round, a
 * 1024^3 sgemm beside them at each count. It prints per build the medians at 1 and 2 threads, the
 * speedup x2, that speedup over sgemm's (%sg, the 90 % target of docs/performance.md) and NEW's time
 * over OLD's at 2 threads. Both builds share the one OpenBLAS the program is linked with.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "attn/memory.h"
#include "attn/rnn.h"
#include "bench_util.h"

void openblas_set_num_threads(int n);

enum { MAX_RUNS = 64, THREAD_COUNTS = 2, SGEMM_SIZE = 1024 };

/* The entry points of one build, resolved by name (the C ABI is the same in both). */
typedef struct build {
    const char *path;
    attn_status (*workspace_create)(attn_workspace **);
    attn_status (*rnn_options_init)(attn_rnn_options *);
    attn_status (*rnn_create)(attn_rnn **, const attn_rnn_options *);
    attn_status (*rnn_forward)(const attn_rnn *, attn_workspace *, int64_t, int64_t, const float *, const float *,
                               const float *, float *, float *, float *);
    attn_status (*memrnn_options_init)(attn_memrnn_options *);
    attn_status (*memrnn_create)(attn_memrnn **, const attn_memrnn_options *);
    attn_status (*memrnn_forward)(const attn_memrnn *, attn_workspace *, int64_t, int64_t, const float *, float *,
                                  float *, float *);
} build;

static int load(build *b, const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "attn-ab: %s\n", dlerror());
        return 1;
    }
    b->path = path;
#define RESOLVE(field, symbol)                                                                                      \
    if (!(*(void **)&b->field = dlsym(h, symbol))) {                                                                \
        fprintf(stderr, "attn-ab: %s has no %s\n", path, symbol);                                                   \
        return 1;                                                                                                   \
    }
    RESOLVE(workspace_create, "attn_workspace_create")
    RESOLVE(rnn_options_init, "attn_rnn_options_init")
    RESOLVE(rnn_create, "attn_rnn_create")
    RESOLVE(rnn_forward, "attn_rnn_forward")
    RESOLVE(memrnn_options_init, "attn_memrnn_options_init")
    RESOLVE(memrnn_create, "attn_memrnn_create")
    RESOLVE(memrnn_forward, "attn_memrnn_forward")
#undef RESOLVE
    return 0;
}

/* One case: an LSTM (DENSE or KRONECKER with `factors`, 0-terminated) or an NTM (W = 64, I = O = 8). */
typedef struct ab_case {
    const char *group, *name;
    int64_t batch, steps;
    int64_t hidden, factors[12];    /* lstm, kronecker: H = the product of the factors */
    int64_t slots, controller;      /* ntm */
    void *handle[2];
    attn_workspace *ws[2];
    double t[2][THREAD_COUNTS][MAX_RUNS];
} ab_case;

static ab_case cases[] = {
    {"lstm", "LSTM H=512 B=64 T=64 DENSE", 64, 64, 512, {0}, 0, 0, {0}, {0}, {{{0}}}},
    {"kronecker", "LSTM H=512 B=64 T=64 8x8x8", 64, 64, 512, {8, 8, 8}, 0, 0, {0}, {0}, {{{0}}}},
    {"kronecker", "LSTM H=512 B=64 T=64 2^9", 64, 64, 512, {2, 2, 2, 2, 2, 2, 2, 2, 2}, 0, 0, {0}, {0}, {{{0}}}},
    {"kronecker", "LSTM H=1024 B=64 T=32 32x32", 64, 32, 1024, {32, 32}, 0, 0, {0}, {0}, {{{0}}}},
    {"kronecker", "LSTM H=1024 B=64 T=32 2^10", 64, 32, 1024, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, 0, 0, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=128 B=32 T=16", 32, 16, 0, {0}, 128, 256, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=1024 B=32 T=8", 32, 8, 0, {0}, 1024, 256, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=16384 B=32 T=2", 32, 2, 0, {0}, 16384, 256, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=4096 B=2 T=8", 2, 8, 0, {0}, 4096, 256, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=131072 B=1 T=4", 1, 4, 0, {0}, 131072, 256, {0}, {0}, {{{0}}}},
    {"ntm", "NTM N=8 B=64 T=64 (8x64, controller 64)", 64, 64, 0, {0}, 8, 64, {0}, {0}, {{{0}}}},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static float *x, *y; /* inputs and outputs large enough for every case */

static int create(const build *b, ab_case *c, int v)
{
    if (b->workspace_create(&c->ws[v]))
        return 1;
    if (c->slots) {
        attn_memrnn_options o;
        b->memrnn_options_init(&o);
        o.input_size = o.output_size = 8;
        o.controller_size = c->controller;
        o.memory_slots = c->slots;
        o.memory_width = 64;
        return b->memrnn_create((attn_memrnn **)&c->handle[v], &o) != ATTN_OK;
    }
    attn_rnn_options o;
    b->rnn_options_init(&o);
    o.cell = ATTN_CELL_LSTM;
    o.input_size = 64;
    o.hidden_size = c->hidden;
    for (int f = 0; c->factors[f]; f++) {
        o.recurrence = ATTN_RECURRENCE_KRONECKER;
        o.num_factors = f + 1;
        if (f < ATTN_RNN_MAX_FACTORS)
            o.factor_sizes[f] = c->factors[f];
        else
            o.more_factor_sizes[f - ATTN_RNN_MAX_FACTORS] = c->factors[f];
    }
    return b->rnn_create((attn_rnn **)&c->handle[v], &o) != ATTN_OK;
}

static double run(const build *b, const ab_case *c, int v)
{
    const double t = bench_now();
    attn_status st = c->slots ? b->memrnn_forward(c->handle[v], c->ws[v], c->batch, c->steps, x, y, NULL, NULL)
                              : b->rnn_forward(c->handle[v], c->ws[v], c->batch, c->steps, x, NULL, NULL, y, NULL,
                                               NULL);
    return st == ATTN_OK ? bench_now() - t : -1.0;
}

static int selected(const char *group, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], group))
            return 1;
    return first == argc;
}

int main(int argc, char **argv)
{
    int runs = 11, a = 1;
    if (a + 1 < argc && !strcmp(argv[a], "--runs"))
        runs = atoi(argv[a + 1]), a += 2;
    if (argc - a < 2 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: %s [--runs N (1..%d)] OLD/libattn.so NEW/libattn.so [lstm|kronecker|ntm ...]\n",
                argv[0], MAX_RUNS);
        return 2;
    }
    build builds[2];
    if (load(&builds[0], argv[a]) || load(&builds[1], argv[a + 1]))
        return 1;
    const int first_group = a + 2;
    x = bench_random_floats((size_t)64 * 64 * 64, 1, 1.0f);
    y = bench_random_floats((size_t)64 * 64 * 1024, 2, 0.0f);
    float *sa = bench_random_floats((size_t)SGEMM_SIZE * SGEMM_SIZE, 3, 1.0f);
    float *sb = bench_random_floats((size_t)SGEMM_SIZE * SGEMM_SIZE, 4, 1.0f);
    float *sc = bench_random_floats((size_t)SGEMM_SIZE * SGEMM_SIZE, 0, 0.0f);
    for (int i = 0; i < N_CASES; i++)
        for (int v = 0; v < 2; v++)
            if (selected(cases[i].group, argc, argv, first_group) &&
                (create(&builds[v], &cases[i], v) || run(&builds[v], &cases[i], v) < 0)) {
                fprintf(stderr, "attn-ab: %s failed with %s\n", cases[i].name, builds[v].path);
                return 1;
            }
    double sgemm[THREAD_COUNTS][MAX_RUNS];
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < THREAD_COUNTS; k++) {
            const int tc = r % 2 ? THREAD_COUNTS - 1 - k : k; /* alternate which count goes first */
            openblas_set_num_threads(tc + 1);
            const double t = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, SGEMM_SIZE, SGEMM_SIZE, SGEMM_SIZE, 1.0f, sa,
                        SGEMM_SIZE, sb, SGEMM_SIZE, 0.0f, sc, SGEMM_SIZE);
            sgemm[tc][r] = bench_now() - t;
            for (int i = 0; i < N_CASES; i++)
                for (int w = 0; w < 2 && cases[i].handle[0]; w++) {
                    const int v = (r + i) % 2 ? 1 - w : w; /* alternate which build goes first */
                    cases[i].t[v][tc][r] = run(&builds[v], &cases[i], v);
                }
        }
    const double sg = bench_median(sgemm[0], runs) / bench_median(sgemm[1], runs);
    printf("attn-ab: %d rounds; A = %s, B = %s; sgemm %d^3 speedup 1 -> 2 threads %.2fx\n", runs, argv[a],
           argv[a + 1], SGEMM_SIZE, sg);
    printf("%-42s %9s %9s %6s %5s %9s %9s %6s %5s %7s\n", "case (ms, medians)", "A 1thr", "A 2thr", "x2", "%sg",
           "B 1thr", "B 2thr", "x2", "%sg", "B/A 2t");
    for (int i = 0; i < N_CASES; i++) {
        if (!cases[i].handle[0])
            continue;
        double m[2][THREAD_COUNTS];
        printf("%-42s", cases[i].name);
        for (int v = 0; v < 2; v++) {
            for (int k = 0; k < THREAD_COUNTS; k++)
                m[v][k] = bench_median(cases[i].t[v][k], runs);
            printf(" %9.2f %9.2f %5.2fx %4.0f%%", m[v][0] * 1e3, m[v][1] * 1e3, m[v][0] / m[v][1],
                   100 * m[v][0] / m[v][1] / sg);
        }
        printf(" %6.2fx\n", m[1][1] / m[0][1]);
    }
    return 0;
}
