/*
 * gemm_trace.c: libattn-gemm-trace.so, a profiling aid (not part of libattn). Preloaded into any
 * program, it interposes cblas_sgemm, times every call and, at exit, prints to stderr one line per
 * distinct GEMM (shape, transposes, whether beta is 0): calls, total time and rate. It answers "how
 * fast do the GEMMs that libattn actually issues run, inside the real forward" — the rate a kind can
 * at best reach is its FLOPs over the time of its GEMMs alone.
 *
 *   LD_PRELOAD=build/benchmarks/libattn-gemm-trace.so build/benchmarks/attn-bench --no-torch attention
 *
 * Calls are counted from any thread; the timing includes OpenBLAS's own threading, as the caller
 * sees it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

typedef void sgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                      const float *, blasint, const float *, blasint, float, float *, blasint);

typedef struct {
    int trans_a, trans_b, beta_zero;
    blasint m, n, k;
    long calls;
    double seconds, flops;
} gemm_shape;

enum { MAX_SHAPES = 256 };
static gemm_shape shapes[MAX_SHAPES];
static int n_shapes, dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void record(int ta, int tb, int bz, blasint m, blasint n, blasint k, double seconds) {
    pthread_mutex_lock(&lock);
    int i = 0;
    while (i < n_shapes && !(shapes[i].trans_a == ta && shapes[i].trans_b == tb && shapes[i].beta_zero == bz &&
                             shapes[i].m == m && shapes[i].n == n && shapes[i].k == k))
        i++;
    if (i == n_shapes && n_shapes < MAX_SHAPES) shapes[n_shapes++] = (gemm_shape){ta, tb, bz, m, n, k, 0, 0.0, 0.0};
    if (i < n_shapes) {
        shapes[i].calls++;
        shapes[i].seconds += seconds;
        shapes[i].flops += 2.0 * (double)m * (double)n * (double)k;
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&lock);
}

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, blasint m, blasint n,
                 blasint k, float alpha, const float *a, blasint lda, const float *b, blasint ldb, float beta, float *c,
                 blasint ldc) {
    static sgemm_fn *real;
    if (!real) {
        *(void **)&real = dlsym(RTLD_NEXT, "cblas_sgemm");
        if (!real) abort(); /* nothing to forward to: not linked against a CBLAS */
    }
    const double t0 = now();
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    record(ta == CblasTrans, tb == CblasTrans, beta == 0.0f, m, n, k, now() - t0);
}

static int by_time(const void *x, const void *y) {
    const double a = ((const gemm_shape *)x)->seconds, b = ((const gemm_shape *)y)->seconds;
    return (a < b) - (a > b);
}

__attribute__((destructor)) static void report(void) {
    qsort(shapes, (size_t)n_shapes, sizeof shapes[0], by_time);
    double total = 0.0;
    fprintf(stderr, "\ngemm-trace: cblas_sgemm calls by shape (row-major C[m,n] = op(A)[m,k] op(B)[k,n])\n");
    fprintf(stderr, "%7s %7s %7s %3s %3s %6s %9s %12s %9s\n", "m", "n", "k", "tA", "tB", "beta0", "calls", "total ms",
            "GFLOP/s");
    for (int i = 0; i < n_shapes; i++) {
        const gemm_shape *s = &shapes[i];
        total += s->seconds;
        fprintf(stderr, "%7d %7d %7d %3d %3d %6d %9ld %12.1f %9.1f\n", (int)s->m, (int)s->n, (int)s->k, s->trans_a,
                s->trans_b, s->beta_zero, s->calls, 1e3 * s->seconds, 1e-9 * s->flops / s->seconds);
    }
    fprintf(stderr, "gemm-trace: %.1f ms in cblas_sgemm%s\n", 1e3 * total,
            dropped ? " (some calls beyond the shape table were not counted)" : "");
}
