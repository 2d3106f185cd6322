/*
 * ab.c: attn-ab, an A/B timer for two builds of libattn in one process (not installed).
 *
 *   attn-ab [--runs N] OLD/libattn.so NEW/libattn.so [GROUP...]
 *   groups: lstm lowrank kronecker ntm attention (default: all)
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

#include "attn/attention.h"
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
    attn_status (*mha_options_init)(attn_mha_options *);
    attn_status (*mha_create)(attn_mha **, const attn_mha_options *);
    attn_status (*mha_forward)(const attn_mha *, attn_workspace *, int64_t, int64_t, int64_t, const float *,
                               const float *, const float *, const uint8_t *, float *);
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
    RESOLVE(mha_options_init, "attn_mha_options_init")
    RESOLVE(mha_create, "attn_mha_create")
    RESOLVE(mha_forward, "attn_mha_forward")
#undef RESOLVE
    return 0;
}

/* One case: a recurrent network (input 64, dense, LOW_RANK with `rank`, or KRONECKER with `factors`,
 * 0-terminated), an NTM (W = 64, I = O = 8) or self-attention (B = 1, E = 512, 8 heads). */
typedef enum { AB_RNN, AB_NTM, AB_MHA } ab_family;
typedef struct ab_case {
    const char *group, *name;
    ab_family family;
    int64_t batch, steps;              /* rnn, ntm; mha: steps = the sequence length N */
    int32_t cell;                      /* rnn */
    int64_t hidden, rank, factors[12]; /* rnn: KRONECKER's H = the product of the factors */
    int64_t slots, controller;         /* ntm */
    int32_t kind;                      /* mha: ATTN_MHA_*, with proj = Linformer's k or Nystrom's m */
    int64_t proj;
    void *handle[2];
    attn_workspace *ws[2];
    double t[2][THREAD_COUNTS][MAX_RUNS];
} ab_case;

#define RNN(g, n, cell_, b, t, h, r, ...)                                                                           \
    {.group = g, .name = n, .family = AB_RNN, .batch = b, .steps = t, .cell = cell_, .hidden = h, .rank = r,       \
     .factors = {__VA_ARGS__}}
#define LSTM(g, n, b, t, h, r, ...) RNN(g, n, ATTN_CELL_LSTM, b, t, h, r, __VA_ARGS__)
#define NTM(n, b, t, slots_, c)                                                                                    \
    {.group = "ntm", .name = n, .family = AB_NTM, .batch = b, .steps = t, .slots = slots_, .controller = c}
#define MHA(n, len, kind_, proj_)                                                                                  \
    {.group = "attention", .name = n, .family = AB_MHA, .batch = 1, .steps = len, .kind = kind_, .proj = proj_}
static ab_case cases[] = {
    LSTM("lstm", "LSTM H=512 B=64 T=64 DENSE", 64, 64, 512, 0, 0),
    LSTM("lowrank", "LSTM H=512 B=64 T=64 LOW_RANK r=64", 64, 64, 512, 64, 0),
    LSTM("lowrank", "LSTM H=512 B=64 T=64 LOW_RANK r=128", 64, 64, 512, 128, 0),
    RNN("lowrank", "GRU H=512 B=64 T=64 LOW_RANK r=64", ATTN_CELL_GRU, 64, 64, 512, 64, 0),
    LSTM("kronecker", "LSTM H=512 B=64 T=64 8x8x8", 64, 64, 512, 0, 8, 8, 8),
    LSTM("kronecker", "LSTM H=512 B=64 T=64 2^9", 64, 64, 512, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2),
    LSTM("kronecker", "LSTM H=1024 B=64 T=32 32x32", 64, 32, 1024, 0, 32, 32),
    LSTM("kronecker", "LSTM H=1024 B=64 T=32 2^10", 64, 32, 1024, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2),
    NTM("NTM N=128 B=32 T=16", 32, 16, 128, 256),
    NTM("NTM N=1024 B=32 T=8", 32, 8, 1024, 256),
    NTM("NTM N=16384 B=32 T=2", 32, 2, 16384, 256),
    NTM("NTM N=4096 B=2 T=8", 2, 8, 4096, 256),
    NTM("NTM N=131072 B=1 T=4", 1, 4, 131072, 256),
    NTM("NTM N=8 B=64 T=64 (8x64, controller 64)", 64, 64, 8, 64),
    MHA("FULL N=512", 512, ATTN_MHA_FULL, 0),
    MHA("FULL N=1024", 1024, ATTN_MHA_FULL, 0),
    MHA("FULL N=4096", 4096, ATTN_MHA_FULL, 0),
    MHA("LINFORMER N=4096 k=256", 4096, ATTN_MHA_LINFORMER, 256),
    MHA("NYSTROM N=4096 m=64", 4096, ATTN_MHA_NYSTROM, 64),
};
#undef RNN
#undef LSTM
#undef NTM
#undef MHA
enum { N_CASES = sizeof cases / sizeof cases[0], MHA_EMBED = 512, MHA_HEADS = 8 };

static float *x, *y; /* inputs and outputs large enough for every case */

static int create(const build *b, ab_case *c, int v)
{
    if (b->workspace_create(&c->ws[v]))
        return 1;
    if (c->family == AB_MHA) {
        attn_mha_options o;
        b->mha_options_init(&o);
        o.kind = c->kind;
        o.embed_dim = MHA_EMBED;
        o.num_heads = MHA_HEADS;
        if (c->kind == ATTN_MHA_LINFORMER) {
            o.max_seq_len = c->steps;
            o.proj_len = c->proj;
        }
        if (c->kind == ATTN_MHA_NYSTROM)
            o.num_landmarks = c->proj;
        return b->mha_create((attn_mha **)&c->handle[v], &o) != ATTN_OK;
    }
    if (c->family == AB_NTM) {
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
    o.cell = c->cell;
    o.input_size = 64;
    o.hidden_size = c->hidden;
    if (c->rank) {
        o.recurrence = ATTN_RECURRENCE_LOW_RANK;
        o.rank = c->rank;
    }
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
    attn_status st;
    if (c->family == AB_MHA)
        st = b->mha_forward(c->handle[v], c->ws[v], 1, c->steps, c->steps, x, x, x, NULL, y);
    else if (c->family == AB_NTM)
        st = b->memrnn_forward(c->handle[v], c->ws[v], c->batch, c->steps, x, y, NULL, NULL);
    else
        st = b->rnn_forward(c->handle[v], c->ws[v], c->batch, c->steps, x, NULL, NULL, y, NULL, NULL);
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
        fprintf(stderr,
                "usage: %s [--runs N (1..%d)] OLD/libattn.so NEW/libattn.so [lstm|lowrank|kronecker|ntm|attention ...]\n",
                argv[0], MAX_RUNS);
        return 2;
    }
    build builds[2];
    if (load(&builds[0], argv[a]) || load(&builds[1], argv[a + 1]))
        return 1;
    const int first_group = a + 2;
    /* inputs: B*T*I of the recurrent cases, N*E of attention; outputs: B*T*H, N*E */
    x = bench_random_floats((size_t)4096 * MHA_EMBED, 1, 1.0f);
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
