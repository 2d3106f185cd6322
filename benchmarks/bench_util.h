/*
 * bench_util.h: what the benchmark programs share: a clock, medians, random data, the sgemm
 * reference rate, the line protocol of the helper programs that attn-bench spawns, and the record
 * of every table row that attn-bench writes with --json and compares across --threads passes.
 * Not library code: benchmarks may print and exit.
 */
#ifndef ATTN_BENCH_UTIL_H
#define ATTN_BENCH_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Settings every benchmark group receives from the driver. */
typedef struct bench_config {
    int quick;            /* tiny shapes: checks that everything runs, numbers mean little */
    int warmup;           /* untimed runs before the timed ones */
    int runs;             /* timed runs; every figure is their median */
    int use_torch;        /* compare with PyTorch when /usr/bin/python3 has it */
    int use_dnnl;         /* compare with oneDNN when its helper program was built */
    double sgemm_gflops;  /* the machine's OpenBLAS sgemm rate, measured at the start of the pass */
    int threads;          /* 0: threads as the environment configures them; n > 0: a --threads pass,
                             OpenBLAS (and so libattn's team) at n, helpers asked for n */
} bench_config;

/* A benchmark group: prints its own table; returns 0, or nonzero when something failed. */
typedef int (*bench_group_fn)(const bench_config *cfg);

/* Groups that live in files of their own (attached to attn-bench by their .cmake file). */
int bench_attention(const bench_config *cfg); /* bench_attention.c */
int bench_memory(const bench_config *cfg);    /* bench_memory.c */
int bench_perceiver(const bench_config *cfg); /* bench_perceiver.c */
int bench_workspace(const bench_config *cfg); /* bench_workspace.c */

/* Monotonic wall clock in seconds. */
double bench_now(void);

/* Median of n >= 1 values; reorders v. */
double bench_median(double *v, int n);

/* Calls fn(ctx) `warmup` times untimed, then `runs` times timed; *median_s gets the median wall
 * time. Returns fn's first nonzero result, else 0. */
typedef int (*bench_fn)(void *ctx);
int bench_time(bench_fn fn, void *ctx, int warmup, int runs, double *median_s);

/* Runs fns[0..n-1] (with ctxs[j]) in turn, `warmup` rounds untimed, then `runs` timed rounds:
 * t[i * n + j] is the time of fns[j] in round i. Figures that are compared or subtracted are best
 * taken in the same rounds, so that they see the same machine (other processes, clock, caches).
 * Returns the first nonzero result of a function, else 0. */
int bench_time_rounds(int n, const bench_fn *fns, void *const *ctxs, int warmup, int runs, double *t);

/* 64-byte aligned array of n floats, uniform in [-scale, scale) from a fixed generator seeded
 * with `seed`. Exits the program when memory runs out. Free with free(). */
float *bench_random_floats(size_t n, uint64_t seed, float scale);

#ifdef BENCH_WITH_BLAS
/* C[m,n] = A[m,k] * B[n,k]^T as a bench_fn (ctx: a bench_sgemm_nt). */
typedef struct {
    int m, n, k;
    const float *a, *b;
    float *c;
} bench_sgemm_nt;
int bench_run_sgemm_nt(void *ctx);

/* Median time of C[m,n] = A[m,k] * B[n,k]^T (row-major, cblas_sgemm NoTrans/Trans: the layout of
 * x * W^T with PyTorch's (out, in) weights). Buffers are allocated and freed inside. */
double bench_sgemm_nt_seconds(int m, int n, int k, int warmup, int runs);
/* OpenBLAS's sgemm rate on n x n x n (GFLOP/s, median time). */
double bench_sgemm_gflops(int n, int warmup, int runs);

/* The side of the square sgemm every rate is judged against: 2048, 512 with --quick. */
int bench_square_size(int quick);
/* A square sgemm (bench_square_size) to time in the same rounds as a case: the rate a
 * case is judged against is then measured in the same moments (a shared machine's speed drifts
 * within one run). Free with bench_sgemm_nt_free. */
bench_sgemm_nt bench_square_sgemm(int quick);
void bench_sgemm_nt_free(bench_sgemm_nt *g);
double bench_sgemm_nt_gflops(const bench_sgemm_nt *g, double seconds);
/* bench_time with the square sgemm in every round: *median_s of fn, *sgemm_gflops from the
 * sgemm's median. */
int bench_time_vs_sgemm(bench_fn fn, void *ctx, int warmup, int runs, int quick, double *median_s,
                        double *sgemm_gflops);
#endif

/* Runs `command` through /bin/sh with stderr merged into stdout and parses the helper protocol:
 *   INFO <text>          passed to on_info
 *   RESULT <name> <seconds> <runs>   passed to on_result
 *   ERROR <text> and any other line: kept, and printed (prefixed with `tag`) if the command fails.
 * Returns the command's exit status (0 = success), or -1 if it could not be started. */
typedef void (*bench_info_fn)(void *ctx, const char *text);
typedef void (*bench_result_fn)(void *ctx, const char *name, double seconds);
int bench_spawn(const char *tag, const char *command, bench_info_fn on_info, bench_result_fn on_result,
                void *ctx);

/* Appends `s` to buf (capacity cap, always NUL-terminated) in single quotes for /bin/sh. Returns 0,
 * or -1 if it did not fit. */
int bench_append_quoted(char *buf, size_t cap, const char *s);

#ifdef BENCH_WITH_RECORD
/* ---- the record of every table row (attn-bench --json, --threads) ---------------------------- */

/* One figure of a table row, as printed (seconds rather than ms, fractions rather than %).
 * key: snake case naming the unit (time_s, gflops, of_sgemm, ws_mib); a string literal, kept
 * without a copy. value: NaN (BENCH_NA) where the table prints "-" (JSON null). scaled: 1 for
 * libattn's own times, the figures the --threads table compares across passes. */
typedef struct {
    const char *key;
    double value;
    int scaled;
} bench_field;

#define BENCH_NA ((double)NAN)

/* seconds when measured (> 0), else BENCH_NA: the groups keep 0 for "not measured". */
double bench_or_na(double seconds);

/* Keeps one table row of `group`, named `case_name` (unique within the group and the same in
 * every pass, so that --threads can match rows), for the pass started last. */
void bench_record(const char *group, const char *case_name, const bench_field *fields, int n_fields);
#define BENCH_RECORD(group, case_name, ...)                                                              \
    bench_record(group, case_name, (const bench_field[]){__VA_ARGS__},                                   \
                 (int)(sizeof((const bench_field[]){__VA_ARGS__}) / sizeof(bench_field)))

/* Starts a pass over the groups at `threads` OpenBLAS threads and its sgemm rate. */
void bench_record_pass(int threads, double sgemm_gflops);

/* Entries of the JSON header, in the order given: text (NULL: null), a number (NaN: null), or a
 * boolean. Keys are copied. */
void bench_record_info(const char *key, const char *text);
void bench_record_info_number(const char *key, double value);
void bench_record_info_bool(const char *key, int value);

/* Prints, when there was more than one pass, the speedup of every scaled figure present in every
 * pass against the first pass, and that speedup as a fraction of sgemm's over the same counts. */
void bench_print_scaling(void);

/* Writes header, passes, rows and scaling to `path` as one JSON object. Returns 0, or -1 after a
 * message on stderr. */
int bench_write_json(const char *path);
#endif

#endif /* ATTN_BENCH_UTIL_H */
