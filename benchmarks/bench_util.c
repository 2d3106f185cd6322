/* bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <stdbool.h>
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

int bench_square_size(int quick) { return quick ? 512 : 2048; }

bench_sgemm_nt bench_square_sgemm(int quick) {
    const int n = bench_square_size(quick);
    const size_t count = (size_t)n * (size_t)n;
    return (bench_sgemm_nt){n, n, n, bench_random_floats(count, 1, 1.0f), bench_random_floats(count, 2, 1.0f),
                            bench_random_floats(count, 3, 0.0f)};
}

void bench_sgemm_nt_free(bench_sgemm_nt *g) {
    free((void *)g->a), free((void *)g->b), free(g->c);
    g->a = g->b = g->c = NULL;
}

double bench_sgemm_nt_gflops(const bench_sgemm_nt *g, double seconds) {
    return seconds > 0 ? 2.0 * g->m * (double)g->n * g->k / seconds * 1e-9 : 0.0;
}

int bench_time_vs_sgemm(bench_fn fn, void *ctx, int warmup, int runs, int quick, double *median_s,
                        double *sgemm_gflops) {
    bench_sgemm_nt square = bench_square_sgemm(quick);
    const bench_fn fns[2] = {fn, bench_run_sgemm_nt};
    void *const ctxs[2] = {ctx, &square};
    double *t = malloc((size_t)runs * 3 * sizeof *t);
    if (!t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    int rc = bench_time_rounds(2, fns, ctxs, warmup, runs, t);
    double *col = t + 2 * runs;
    *median_s = *sgemm_gflops = 0.0;
    for (int j = 0; j < 2 && !rc; j++) {
        for (int i = 0; i < runs; i++) col[i] = t[2 * i + j];
        const double m = bench_median(col, runs);
        *(j ? sgemm_gflops : median_s) = j ? bench_sgemm_nt_gflops(&square, m) : m;
    }
    free(t);
    bench_sgemm_nt_free(&square);
    return rc;
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

#ifdef BENCH_WITH_RECORD
#include <yajl/yajl_gen.h>

typedef struct {
    char *group, *case_name;
    int pass, n_fields;
    bench_field *fields;
} rec_row;

typedef struct {
    int threads;
    double sgemm_gflops;
} rec_pass;

enum { REC_TEXT, REC_NUMBER, REC_BOOL };
typedef struct {
    char *key, *text;
    int type;
    double number;
} rec_info;

/* A scaled figure found in every pass: its time in each. */
typedef struct {
    const rec_row *row; /* the first pass's */
    const char *key;
    double *seconds;    /* [n_passes] */
    double *sgemm;      /* [n_passes]: GFLOP/s of the sgemm timed in the row's own rounds where the
                           group does so (field sgemm_gflops), else the pass's */
} rec_scaled;

/* The program's one record: attn-bench runs its groups once per pass, on one thread. */
static struct {
    rec_row *rows;
    rec_pass *passes;
    rec_info *info;
    int n_rows, n_passes, n_info, cap_rows, cap_passes, cap_info;
} rec;

static void rec_out_of_memory(void) {
    fprintf(stderr, "out of memory (benchmark record)\n");
    exit(1);
}

static void *rec_alloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) rec_out_of_memory();
    return p;
}

/* p (an array of *cap elements) with room for `need`. */
static void *rec_grow(void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    int cap2 = *cap ? 2 * *cap : 16;
    void *q = realloc(p, (size_t)cap2 * size);
    if (!q) rec_out_of_memory();
    *cap = cap2;
    return q;
}

static char *rec_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(rec_alloc(n), s, n);
}

double bench_or_na(double seconds) { return seconds > 0 ? seconds : BENCH_NA; }

void bench_record_pass(int threads, double sgemm_gflops) {
    rec.passes = rec_grow(rec.passes, &rec.cap_passes, rec.n_passes + 1, sizeof *rec.passes);
    rec.passes[rec.n_passes++] = (rec_pass){threads, sgemm_gflops};
}

void bench_record(const char *group, const char *case_name, const bench_field *fields, int n_fields) {
    if (!rec.n_passes) bench_record_pass(0, BENCH_NA); /* a program that does not sweep */
    rec.rows = rec_grow(rec.rows, &rec.cap_rows, rec.n_rows + 1, sizeof *rec.rows);
    rec_row *r = &rec.rows[rec.n_rows++];
    r->group = rec_strdup(group);
    r->case_name = rec_strdup(case_name);
    r->pass = rec.n_passes - 1;
    r->n_fields = n_fields;
    r->fields = rec_alloc((size_t)n_fields * sizeof *fields);
    memcpy(r->fields, fields, (size_t)n_fields * sizeof *fields);
}

static rec_info *rec_add_info(const char *key, int type) {
    rec.info = rec_grow(rec.info, &rec.cap_info, rec.n_info + 1, sizeof *rec.info);
    rec_info *e = &rec.info[rec.n_info++];
    *e = (rec_info){rec_strdup(key), NULL, type, 0.0};
    return e;
}

void bench_record_info(const char *key, const char *text) { rec_add_info(key, REC_TEXT)->text = rec_strdup(text); }
void bench_record_info_number(const char *key, double value) { rec_add_info(key, REC_NUMBER)->number = value; }
void bench_record_info_bool(const char *key, int value) { rec_add_info(key, REC_BOOL)->number = value != 0; }

static const rec_row *rec_find(int pass, const char *group, const char *case_name) {
    for (int i = 0; i < rec.n_rows; i++)
        if (rec.rows[i].pass == pass && strcmp(rec.rows[i].group, group) == 0 &&
            strcmp(rec.rows[i].case_name, case_name) == 0)
            return &rec.rows[i];
    return NULL;
}

static double rec_field(const rec_row *r, const char *key) {
    for (int f = 0; r && f < r->n_fields; f++)
        if (strcmp(r->fields[f].key, key) == 0) return r->fields[f].value;
    return BENCH_NA;
}

/* The scaled figures of the first pass that every later pass measured too; *n gets their count.
 * Free with rec_free_scaled. */
static rec_scaled *rec_collect_scaled(int *n) {
    rec_scaled *out = NULL;
    int cap = 0;
    *n = 0;
    for (int i = 0; i < rec.n_rows && rec.n_passes > 1; i++) {
        const rec_row *r = &rec.rows[i];
        for (int f = 0; r->pass == 0 && f < r->n_fields; f++) {
            if (!r->fields[f].scaled) continue;
            double *t = rec_alloc(2 * (size_t)rec.n_passes * sizeof *t), *sg = t + rec.n_passes;
            int p = 0;
            for (; p < rec.n_passes; p++) {
                const rec_row *in_pass = p ? rec_find(p, r->group, r->case_name) : r;
                t[p] = rec_field(in_pass, r->fields[f].key);
                if (!(t[p] > 0)) break;
                sg[p] = rec_field(in_pass, "sgemm_gflops");
            }
            if (p < rec.n_passes) {
                free(t);
                continue;
            }
            bool own = true; /* every pass has the row's own sgemm */
            for (p = 0; p < rec.n_passes; p++) own = own && sg[p] > 0;
            for (p = 0; !own && p < rec.n_passes; p++) sg[p] = rec.passes[p].sgemm_gflops;
            out = rec_grow(out, &cap, *n + 1, sizeof *out);
            out[(*n)++] = (rec_scaled){r, r->fields[f].key, t, sg};
        }
    }
    return out;
}

static void rec_free_scaled(rec_scaled *s, int n) {
    for (int i = 0; i < n; i++) free(s[i].seconds);
    free(s);
}

/* sgemm's speedup from the first pass to pass p, and a figure's as a fraction of it. */
static double rec_sgemm_speedup(int p) { return rec.passes[p].sgemm_gflops / rec.passes[0].sgemm_gflops; }
static double rec_of_sgemm(const rec_scaled *s, int p) {
    return s->seconds[0] / s->seconds[p] / (s->sgemm[p] / s->sgemm[0]);
}

void bench_print_scaling(void) {
    if (rec.n_passes < 2) return;
    int n = 0;
    rec_scaled *s = rec_collect_scaled(&n);
    printf("== scaling: OpenBLAS threads");
    for (int p = 0; p < rec.n_passes; p++) printf("%s%d", p ? " -> " : " ", rec.passes[p].threads);
    printf("; sgemm GFLOP/s");
    for (int p = 0; p < rec.n_passes; p++) printf("%s%.1f", p ? " -> " : " ", rec.passes[p].sgemm_gflops);
    printf(" ==\n"
           "rows measured in every pass, libattn's times; xN = speedup over %d thread(s); sgN = sgemm's speedup, "
           "from the sgemm\ntimed in the row's own rounds (the workspace group: at the pass's start); "
           "%%sg = xN / sgN (target >= 90%%)\n\n",
           rec.passes[0].threads);
    printf("%-10s %-40s", "group", "case");
    for (int p = 0; p < rec.n_passes; p++) printf(" %6d thr ms", rec.passes[p].threads);
    for (int p = 1; p < rec.n_passes; p++) {
        char x[16], sg[16], of[16];
        snprintf(x, sizeof x, "x%d", rec.passes[p].threads);
        snprintf(of, sizeof of, "%%sg%d", rec.passes[p].threads);
        snprintf(sg, sizeof sg, "sg%d", rec.passes[p].threads);
        printf(" %8s %7s %7s", x, sg, of);
    }
    printf("\n%-10s %-40s", "sgemm", "(reference)");
    for (int p = 0; p < rec.n_passes; p++) printf(" %13s", "");
    for (int p = 1; p < rec.n_passes; p++)
        printf(" %7.2fx %6.2fx %6.0f%%", rec_sgemm_speedup(p), rec_sgemm_speedup(p), 100.0);
    printf("\n");
    for (int i = 0; i < n; i++) {
        char label[128];
        if (strcmp(s[i].key, "time_s") == 0)
            snprintf(label, sizeof label, "%s", s[i].row->case_name);
        else
            snprintf(label, sizeof label, "%s [%s]", s[i].row->case_name, s[i].key);
        printf("%-10s %-40s", s[i].row->group, label);
        for (int p = 0; p < rec.n_passes; p++) printf(" %13.3f", s[i].seconds[p] * 1e3);
        for (int p = 1; p < rec.n_passes; p++)
            printf(" %7.2fx %6.2fx %6.0f%%", s[i].seconds[0] / s[i].seconds[p], s[i].sgemm[p] / s[i].sgemm[0],
                   100 * rec_of_sgemm(&s[i], p));
        printf("\n");
    }
    /* the figure the issue judges: each group's weakest row at the last count */
    const int last = rec.n_passes - 1;
    printf("\nlowest %%sg at %d threads:", rec.passes[last].threads);
    for (int i = 0; i < n; i++) {
        int worst = i, seen = 0; /* the group came up before: printed already */
        for (int j = 0; j < n; j++) {
            if (strcmp(s[j].row->group, s[i].row->group) != 0) continue;
            seen |= j < i;
            if (rec_of_sgemm(&s[j], last) < rec_of_sgemm(&s[worst], last)) worst = j;
        }
        if (!seen)
            printf(" %s %.0f%% (%s%s%s)", s[i].row->group, 100 * rec_of_sgemm(&s[worst], last),
                   s[worst].row->case_name, strcmp(s[worst].key, "time_s") ? " " : "",
                   strcmp(s[worst].key, "time_s") ? s[worst].key : "");
    }
    printf("\n\n");
    rec_free_scaled(s, n);
}

/* ---- JSON through yajl's generator (escaping, UTF-8 checks, nesting) ---- */

static void rec_print(void *ctx, const char *s, size_t len) { fwrite(s, 1, len, ctx); }

static yajl_gen_status rec_gen_text(yajl_gen g, const char *s) {
    return s ? yajl_gen_string(g, (const unsigned char *)s, strlen(s)) : yajl_gen_null(g);
}

/* %.9g keeps every digit a float32-based figure has; NaN and infinities have no JSON form. */
static yajl_gen_status rec_gen_number(yajl_gen g, double v) {
    if (!isfinite(v)) return yajl_gen_null(g);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%.9g", v);
    return yajl_gen_number(g, buf, (size_t)n);
}

static yajl_gen_status rec_gen_pair_text(yajl_gen g, const char *key, const char *s) {
    yajl_gen_status st = rec_gen_text(g, key);
    return st != yajl_gen_status_ok ? st : rec_gen_text(g, s);
}

static yajl_gen_status rec_gen_pair_number(yajl_gen g, const char *key, double v) {
    yajl_gen_status st = rec_gen_text(g, key);
    return st != yajl_gen_status_ok ? st : rec_gen_number(g, v);
}

/* Every generator call in order, stopping at the first failure. */
#define REC_GEN(call)                                                                                   \
    do {                                                                                                \
        if ((st = (call)) != yajl_gen_status_ok) goto done;                                             \
    } while (0)

static yajl_gen_status rec_gen_all(yajl_gen g) {
    yajl_gen_status st;
    int n_scaled = 0;
    rec_scaled *s = rec_collect_scaled(&n_scaled);
    REC_GEN(yajl_gen_map_open(g));
    REC_GEN(rec_gen_pair_text(g, "format", "attn-bench 1"));

    REC_GEN(rec_gen_text(g, "header"));
    REC_GEN(yajl_gen_map_open(g));
    for (int i = 0; i < rec.n_info; i++) {
        const rec_info *e = &rec.info[i];
        REC_GEN(rec_gen_text(g, e->key));
        REC_GEN(e->type == REC_TEXT ? rec_gen_text(g, e->text)
                : e->type == REC_BOOL ? yajl_gen_bool(g, e->number != 0)
                                      : rec_gen_number(g, e->number));
    }
    REC_GEN(yajl_gen_map_close(g));

    REC_GEN(rec_gen_text(g, "passes"));
    REC_GEN(yajl_gen_array_open(g));
    for (int p = 0; p < rec.n_passes; p++) {
        REC_GEN(yajl_gen_map_open(g));
        REC_GEN(rec_gen_pair_number(g, "threads", rec.passes[p].threads));
        REC_GEN(rec_gen_pair_number(g, "sgemm_gflops", rec.passes[p].sgemm_gflops));
        REC_GEN(yajl_gen_map_close(g));
    }
    REC_GEN(yajl_gen_array_close(g));

    REC_GEN(rec_gen_text(g, "rows"));
    REC_GEN(yajl_gen_array_open(g));
    for (int i = 0; i < rec.n_rows; i++) {
        const rec_row *r = &rec.rows[i];
        REC_GEN(yajl_gen_map_open(g));
        REC_GEN(rec_gen_pair_text(g, "group", r->group));
        REC_GEN(rec_gen_pair_text(g, "case", r->case_name));
        REC_GEN(rec_gen_pair_number(g, "threads", rec.passes[r->pass].threads));
        for (int f = 0; f < r->n_fields; f++) REC_GEN(rec_gen_pair_number(g, r->fields[f].key, r->fields[f].value));
        REC_GEN(yajl_gen_map_close(g));
    }
    REC_GEN(yajl_gen_array_close(g));

    REC_GEN(rec_gen_text(g, "scaling"));
    REC_GEN(yajl_gen_array_open(g));
    for (int i = 0; i < n_scaled; i++) {
        REC_GEN(yajl_gen_map_open(g));
        REC_GEN(rec_gen_pair_text(g, "group", s[i].row->group));
        REC_GEN(rec_gen_pair_text(g, "case", s[i].row->case_name));
        REC_GEN(rec_gen_pair_text(g, "field", s[i].key));
        static const char *const series[] = {"threads", "seconds", "speedup", "sgemm_speedup", "of_sgemm"};
        for (int k = 0; k < 5; k++) {
            REC_GEN(rec_gen_text(g, series[k]));
            REC_GEN(yajl_gen_array_open(g));
            for (int p = 0; p < rec.n_passes; p++)
                REC_GEN(rec_gen_number(g, k == 0   ? rec.passes[p].threads
                                          : k == 1 ? s[i].seconds[p]
                                          : k == 2 ? s[i].seconds[0] / s[i].seconds[p]
                                          : k == 3 ? s[i].sgemm[p] / s[i].sgemm[0]
                                                   : rec_of_sgemm(&s[i], p)));
            REC_GEN(yajl_gen_array_close(g));
        }
        REC_GEN(yajl_gen_map_close(g));
    }
    REC_GEN(yajl_gen_array_close(g));
    REC_GEN(yajl_gen_map_close(g));
done:
    rec_free_scaled(s, n_scaled);
    return st;
}

int bench_write_json(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "--json %s: cannot write\n", path);
        return -1;
    }
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_status st = g ? yajl_gen_status_ok : yajl_gen_generation_complete;
    if (g) {
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_validate_utf8, 1);
        yajl_gen_config(g, yajl_gen_print_callback, rec_print, (void *)f);
        st = rec_gen_all(g);
        yajl_gen_free(g);
    }
    int bad = fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    if (st != yajl_gen_status_ok || bad) {
        fprintf(stderr, "--json %s: %s\n", path, st != yajl_gen_status_ok ? "JSON generation failed (yajl)"
                                                                          : "write error");
        return -1;
    }
    return 0;
}
#endif
