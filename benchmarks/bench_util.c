/* bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#ifdef BENCH_WITH_BLAS
#include <cblas.h>
#endif

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int bench_time_rounds(int n, const bench_fn *fns, void *const *ctxs, int warmup, int runs, double *t) {
    int rc = 0;
    for (int i = 0; i < warmup && !rc; i++)
        for (int j = 0; j < n && !rc; j++) rc = fns[j](ctxs[j]);
    for (int i = 0; i < runs && !rc; i++)
        for (int j = 0; j < n && !rc; j++) {
            double t0 = bench_now();
            rc = fns[j](ctxs[j]);
            t[i * n + j] = bench_now() - t0;
        }
    return rc;
}

int bench_time(bench_fn fn, void *ctx, int warmup, int runs, double *median_s) {
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    int rc = bench_time_rounds(1, &fn, &ctx, warmup, runs, t);
    *median_s = rc ? 0.0 : bench_median(t, runs);
    free(t);
    return rc;
}

float *bench_random_floats(size_t n, uint64_t seed, float scale) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu floats)\n", n);
        exit(1);
    }
    /* splitmix64: the same data on every machine, no dependence on rand()'s implementation */
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = scale * (2.0f * (float)(z >> 40) / 16777216.0f - 1.0f);
    }
    return p;
}

#ifdef BENCH_WITH_BLAS
int bench_run_sgemm_nt(void *p) {
    bench_sgemm_nt *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->k, 0.0f,
                g->c, g->n);
    return 0;
}

double bench_sgemm_nt_seconds(int m, int n, int k, int warmup, int runs) {
    bench_sgemm_nt g = {m, n, k, NULL, NULL, NULL};
    float *a = bench_random_floats((size_t)m * k, 1, 1.0f);
    float *b = bench_random_floats((size_t)n * k, 2, 1.0f);
    float *c = bench_random_floats((size_t)m * n, 3, 1.0f);
    g.a = a;
    g.b = b;
    g.c = c;
    double t = 0.0;
    bench_time(bench_run_sgemm_nt, &g, warmup, runs, &t);
    free(a);
    free(b);
    free(c);
    return t;
}

double bench_sgemm_gflops(int n, int warmup, int runs) {
    double t = bench_sgemm_nt_seconds(n, n, n, warmup, runs);
    return 2.0 * n * (double)n * n / t * 1e-9;
}
#endif

int bench_append_quoted(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    /* 'it'\''s': every quote inside becomes close-quote, escaped quote, reopen */
    if (len + 3 > cap) return -1; /* two quotes and the NUL */
    buf[len++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t plen = piece ? 4 : 1;
        if (len + plen + 2 > cap) return -1;
        if (piece)
            memcpy(buf + len, piece, plen);
        else
            buf[len] = *s;
        len += plen;
    }
    buf[len++] = '\'';
    buf[len] = '\0';
    return 0;
}

int bench_spawn(const char *tag, const char *command, bench_info_fn on_info, bench_result_fn on_result,
                void *ctx) {
    size_t cap = strlen(command) + 8;
    char *cmd = malloc(cap);
    if (!cmd) return -1;
    snprintf(cmd, cap, "%s 2>&1", command);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    free(cmd);
    if (!f) return -1;

    /* Unrecognized lines are only worth showing when the helper fails; keep the last few. */
    enum { KEEP = 8 };
    char other[KEEP][512];
    int n_other = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char name[128];
        double seconds;
        int runs;
        if (strncmp(line, "INFO ", 5) == 0) {
            if (on_info) on_info(ctx, line + 5);
        } else if (sscanf(line, "RESULT %127s %lf %d", name, &seconds, &runs) == 3) {
            if (on_result) on_result(ctx, name, seconds);
        } else {
            size_t n = strlen(line) < sizeof other[0] ? strlen(line) : sizeof other[0] - 1;
            memcpy(other[n_other % KEEP], line, n);
            other[n_other % KEEP][n] = '\0';
            n_other++;
        }
    }
    int status = pclose(f);
    int code = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (code != 0) {
        int first = n_other > KEEP ? n_other - KEEP : 0;
        for (int i = first; i < n_other; i++) printf("  [%s] %s\n", tag, other[i % KEEP]);
    }
    return code;
}
