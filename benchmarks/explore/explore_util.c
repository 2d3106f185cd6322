/* attn-explore's shared mechanics: failing, progress, tables and their CSV files, plots, timing. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "explore.h"

_Noreturn void xp_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("attn-explore: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void xp_check(attn_status st, const char *what)
{
    if (st == ATTN_OK)
        return;
    const char *message = attn_last_error();
    /* the library's message names its function already: "attn_x: ..." is not said twice */
    if (!strncmp(message, what, strlen(what)))
        xp_die("%s", message);
    xp_die("%s: %s", what, message);
}

void *xp_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        xp_die("out of memory (%zu bytes)", bytes);
    memset(p, 0, bytes);
    return p;
}

void xp_progress(const xp_config *cfg, const char *fmt, ...)
{
    if (!cfg->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void xp_progress_done(const xp_config *cfg)
{
    if (cfg->progress)
        fputs("\r\033[K", stderr);
}

/* ---- tables ------------------------------------------------------------------------------------ */

enum { XP_MAX_COLS = 16, XP_CELL = 48 };

typedef struct {
    char shown[XP_CELL], csv[XP_CELL];
} xp_cell;

struct xp_table {
    const xp_config *cfg;
    char name[64];
    int ncols;
    const char *headers[XP_MAX_COLS];
    xp_cell *cells;
    int64_t n, cap;
};

xp_table *xp_table_new(const xp_config *cfg, const char *name, int ncols, const char *const *headers)
{
    if (ncols > XP_MAX_COLS)
        xp_die("internal: table %s has %d columns", name, ncols);
    xp_table *t = xp_alloc(sizeof *t);
    t->cfg = cfg;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ncols = ncols;
    memcpy(t->headers, headers, (size_t)ncols * sizeof *headers);
    return t;
}

static xp_cell *next_cell(xp_table *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = realloc(t->cells, (size_t)t->cap * sizeof *t->cells);
        if (!t->cells)
            xp_die("out of memory");
    }
    return &t->cells[t->n++];
}

void xp_text(xp_table *t, const char *text)
{
    xp_cell *c = next_cell(t);
    snprintf(c->shown, XP_CELL, "%s", text);
    snprintf(c->csv, XP_CELL, "%s", text);
}

void xp_num(xp_table *t, const char *fmt, double v)
{
    xp_cell *c = next_cell(t);
    snprintf(c->shown, XP_CELL, fmt, v);
    /* a tiny negative value rounds to "-0.0000" (or "+0.0000" under %+): show it as zero, keep it in the CSV */
    if (strspn(c->shown + 1, "0.") == strlen(c->shown + 1) && (c->shown[0] == '-' || c->shown[0] == '+'))
        c->shown[0] = ' ';
    snprintf(c->csv, XP_CELL, "%.9g", v);
}

void xp_int(xp_table *t, int64_t v)
{
    xp_cell *c = next_cell(t);
    snprintf(c->shown, XP_CELL, "%lld", (long long)v);
    snprintf(c->csv, XP_CELL, "%lld", (long long)v);
}

void xp_none(xp_table *t)
{
    xp_cell *c = next_cell(t);
    snprintf(c->shown, XP_CELL, "-");
    c->csv[0] = '\0';
}

static FILE *open_csv(const xp_config *cfg, const char *name)
{
    if (!cfg->csv_dir)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.csv", cfg->csv_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        xp_die("cannot write %s", path);
    return f;
}

static void close_csv(FILE *f, const xp_config *cfg, const char *name)
{
    if (f && (ferror(f) | fclose(f)))
        xp_die("writing %s/%s.csv failed", cfg->csv_dir, name);
}

/* Prints (when `print`) and writes the CSV of a table; frees it. */
static void table_end(xp_table *t, bool print)
{
    if (t->n % t->ncols)
        xp_die("internal: table %s has a short row", t->name);
    const int64_t rows = t->n / t->ncols;
    size_t width[XP_MAX_COLS];
    for (int c = 0; c < t->ncols; c++) {
        width[c] = strlen(t->headers[c]);
        for (int64_t r = 0; r < rows; r++) {
            size_t w = strlen(t->cells[r * t->ncols + c].shown);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    /* The first column is a label (left-aligned); the others are numbers (right-aligned). */
    for (int64_t r = -1; print && r < rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->headers[c] : t->cells[r * t->ncols + c].shown;
            printf(c == 0 ? "  %-*s" : "  %*s", (int)width[c], s);
        }
        putchar('\n');
    }
    if (print)
        putchar('\n');
    FILE *f = open_csv(t->cfg, t->name);
    for (int64_t r = -1; f && r < rows; r++)
        for (int c = 0; c < t->ncols; c++)
            fprintf(f, "%s%c", r < 0 ? t->headers[c] : t->cells[r * t->ncols + c].csv, c + 1 < t->ncols ? ',' : '\n');
    close_csv(f, t->cfg, t->name);
    free(t->cells);
    free(t);
}

void xp_table_end(xp_table *t) { table_end(t, true); }
void xp_table_end_csv(xp_table *t) { table_end(t, false); }

void xp_csv_curves(const xp_config *cfg, const char *name, int ncols, const char *const *headers, int64_t rows,
                   const double *const *columns)
{
    FILE *f = open_csv(cfg, name);
    if (!f)
        return;
    for (int c = 0; c < ncols; c++)
        fprintf(f, "%s%c", headers[c], c + 1 < ncols ? ',' : '\n');
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < ncols; c++)
            fprintf(f, "%.9g%c", columns[c][r], c + 1 < ncols ? ',' : '\n');
    close_csv(f, cfg, name);
}

/* ---- plots -------------------------------------------------------------------------------------- */

/* gnuplot scripts, one per figure, reading the CSV files in the current directory. A figure whose
 * files are missing (its part did not run) is left out. */
static const struct {
    const char *png, *needs, *script;
} plots[] = {
    {"attention_time.png", "attention_time_curves.csv",
     "set title 'Attention time vs sequence length (one forward, batch 1)'\n"
     "set logscale xy; set xlabel 'N'; set ylabel 'ms'; set key left top\n"
     "plot for [c=2:*] 'attention_time_curves.csv' using 1:c with linespoints title columnhead(c)\n"},
    {"attention_error.png", "attention_optimum.csv",
     "stats 'attention_optimum.csv' using 1 nooutput\nN = STATS_max\n"
     "set title sprintf('Attention matrix error vs FULL at rank r (N = %d): approximations and the optimum', N)\n"
     "set logscale x 2; set xlabel 'rank r (Linformer k, Nystrom m)'; set ylabel 'relative Frobenius error'\n"
     "set logscale y; set yrange [1e-3:*]; set key outside right\n"
     "plot for [w in 'trained random'] 'attention_optimum.csv' using 2:(column(w)) with lines title w.' optimum', "
     "for [w in 'trained random'] for [k in 'LINFORMER LINFORMER-POOL NYSTROM'] 'attention_error.csv' "
     "using 4:(strcol(1) eq w && strcol(3) eq k && $2 == N ? $5 : NaN) smooth unique with linespoints "
     "title w.' '.k\n"},
    {"spectrum.png", "spectrum_curves.csv",
     "set title 'Normalized cumulative singular values of the attention matrices'\n"
     "set xlabel 'k / T'; set ylabel 'sum_{i<=k} sigma_i / sum sigma_i'; set key right bottom\n"
     "plot for [c=2:*] 'spectrum_curves.csv' using 1:c with lines title columnhead(c)\n"},
    {"capacity.png", "lstm_truncation.csv",
     "set title 'Trained LSTM: held-out loss with W_hh truncated to rank r'\n"
     "set logscale x 2; set xlabel 'rank r'; set ylabel 'nats/char'; set key right top\n"
     "plot 'lstm_truncation.csv' using 1:5 with linespoints title 'W_hh at rank r', "
     "'' using 1:6 with lines title 'dense W_hh'\n"},
};

void xp_plots(const xp_config *cfg)
{
    if (!cfg->plots || !cfg->csv_dir)
        return;
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("(gnuplot not installed: no plots; `apt-get install gnuplot-nox` draws them)\n");
        return;
    }
    int drawn = 0;
    for (size_t i = 0; i < sizeof plots / sizeof *plots; i++) {
        char need[4096];
        snprintf(need, sizeof need, "%s/%s", cfg->csv_dir, plots[i].needs);
        if (access(need, R_OK))
            continue;
        char cmd[4352];
        snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot 2>/dev/null", cfg->csv_dir);
        FILE *g = popen(cmd, "w");
        if (!g)
            xp_die("cannot run gnuplot");
        /* (the error plot is drawn at the largest N that has optimum rows) */
        fprintf(g, "set datafile separator ','\nset terminal pngcairo size 900,600 noenhanced\nset output '%s'\n"
                   "set grid\nset datafile missing 'nan'\n%s",
                plots[i].png, plots[i].script);
        if (pclose(g) == 0)
            drawn++;
    }
    printf("plots: %d PNG files in %s\n", drawn, cfg->csv_dir);
}

/* ---- numbers ------------------------------------------------------------------------------------ */

double xp_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double xp_time(int runs, void (*fn)(void *ctx), void *ctx)
{
    double t[64];
    runs = runs < 1 ? 1 : runs > 64 ? 64 : runs;
    fn(ctx);
    for (int r = 0; r < runs; r++) {
        const double t0 = xp_now();
        fn(ctx);
        t[r] = xp_now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, compare_doubles);
    return t[runs / 2];
}

void xp_random(float *x, size_t n, uint64_t seed, float scale)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        x[i] = scale * (2.0f * (float)((s >> 40) * 0x1p-24) - 1.0f);
    }
}

double xp_tail_energy(const double *sigma, int64_t n, int64_t r)
{
    double s = 0.0;
    for (int64_t i = n - 1; i >= r; i--)
        s += sigma[i] * sigma[i];
    return s;
}

/* Sums of squares in chunks: BLAS's vectorized dot product within a chunk (float, 4096 terms), the
 * chunks' sums in double, so that a 4 x 8192 x 8192 attention tensor takes a fraction of a second
 * and loses nothing that matters at float32 precision. */
enum { CHUNK = 4096 };

double xp_norm2(const float *a, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const int len = (int)(n - i < CHUNK ? n - i : CHUNK);
        s += (double)cblas_sdot(len, a + i, 1, a + i, 1);
    }
    return s;
}

double xp_rel_error(const float *a, const float *b, size_t n)
{
    float diff[CHUNK];
    double d = 0.0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const int len = (int)(n - i < CHUNK ? n - i : CHUNK);
        for (int j = 0; j < len; j++)
            diff[j] = a[i + j] - b[i + j];
        d += (double)cblas_sdot(len, diff, 1, diff, 1);
    }
    const double ref = xp_norm2(b, n);
    return ref > 0.0 ? sqrt(d / ref) : sqrt(d);
}
