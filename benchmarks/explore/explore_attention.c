/* attn-explore parts 1 and 2: what Linformer and Nystrom cost and what they give up against FULL
 * attention as N grows, next to the Eckart-Young optimum at the same rank; and the spectra of the
 * trained model's attention matrices, against random weights. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

static const char *const shared_tensors[] = {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias",
                                             NULL};

static attn_mha *make_mha(const xp_config *cfg, const xp_attn_source *src, int32_t kind, int64_t rank, int64_t n,
                          bool causal)
{
    attn_mha_options o;
    xp_check(attn_mha_options_init(&o), "attn_mha_options_init");
    o.kind = kind;
    o.embed_dim = src->embed_dim;
    o.num_heads = src->heads;
    o.causal = causal;
    if (kind == ATTN_MHA_LINFORMER)
        o.max_seq_len = n, o.proj_len = rank;
    if (kind == ATTN_MHA_NYSTROM)
        o.num_landmarks = rank;
    attn_mha *mha = NULL;
    xp_check(attn_mha_create(&mha, &o), "attn_mha_create");
    /* Linformer's E and F: random, N(0, 1/k), the library's init and what Linformer's own rank
     * argument assumes (the model was trained with FULL attention, so it has no learned ones); the
     * error table adds mean pooling (set_pooling). */
    xp_check(attn_params_init(attn_mha_params(mha), cfg->seed), "attn_params_init");
    if (src->weights)
        xp_copy_params(attn_mha_params(mha), src->weights, src->prefix, shared_tensors);
    return mha;
}

/* ==== part 1 ===================================================================================== */

typedef struct {
    const attn_mha *mha;
    attn_workspace *ws;
    int64_t n;
    const float *x;
    float *y;
} forward_ctx;

static void run_forward(void *ctx)
{
    forward_ctx *f = ctx;
    xp_check(attn_mha_forward(f->mha, f->ws, 1, f->n, f->n, f->x, f->x, f->x, NULL, f->y), "attn_mha_forward");
}

typedef struct {
    int32_t kind;
    const char *name;
    int64_t rank; /* 0 for FULL */
    bool pooled;  /* LINFORMER with mean-pooling projections instead of random ones */
} attn_case;

/* FULL, then every Linformer k and Nystrom m that fits N; with `pooled`, each Linformer k twice. */
static int cases_of(const xp_config *cfg, int64_t n, bool pooled, attn_case *out)
{
    int k = 0;
    out[k++] = (attn_case){ATTN_MHA_FULL, "FULL", 0, false};
    for (int p = 0; p <= (int)pooled; p++)
        for (int i = 0; i < cfg->linformer_k.n; i++)
            if (cfg->linformer_k.v[i] <= n)
                out[k++] = (attn_case){ATTN_MHA_LINFORMER, p ? "LINFORMER-POOL" : "LINFORMER", cfg->linformer_k.v[i],
                                       p == 1};
    for (int i = 0; i < cfg->nystrom_m.n; i++)
        if (cfg->nystrom_m.v[i] <= n)
            out[k++] = (attn_case){ATTN_MHA_NYSTROM, "NYSTROM", cfg->nystrom_m.v[i], false};
    return k;
}

/* Linformer's E and F as mean pooling over the k segments Nystrom uses for its landmarks
 * (floor(s n / k) .. floor((s + 1) n / k) - 1): E K are the segment means of the keys, and F spreads
 * a segment's attention weight evenly over its keys, so the implied matrix's rows still sum to 1. */
static void set_pooling(attn_mha *mha, int64_t k, int64_t n)
{
    float *pool = xp_alloc((size_t)(k * n) * sizeof *pool);
    for (int64_t s = 0; s < k; s++) {
        const int64_t first = s * n / k, end = (s + 1) * n / k;
        for (int64_t j = first; j < end; j++)
            pool[s * n + j] = 1.0f / (float)(end - first);
    }
    xp_check(attn_params_set(attn_mha_params(mha), "proj_e", pool, k * n), "proj_e");
    xp_check(attn_params_set(attn_mha_params(mha), "proj_f", pool, k * n), "proj_f");
    free(pool);
}

/* The time table: every case at every N, timed on the first source's weights (time does not depend
 * on the values); and the same times as curves, a column per case (attention_time_curves.csv, for
 * the plot). */
static void time_cases(const xp_config *cfg, const xp_attn_source *src, const float *text_x, xp_table *t)
{
    attn_case cases[3 * XP_MAX_LIST + 1];
    const int nc = cases_of(cfg, INT64_MAX, false, cases);
    double *curves[1 + 3 * XP_MAX_LIST + 1];
    char names[3 * XP_MAX_LIST + 1][32];
    const char *cols[1 + 3 * XP_MAX_LIST + 1] = {"N"};
    for (int c = 0; c <= nc; c++)
        curves[c] = xp_alloc((size_t)cfg->sizes.n * sizeof **curves);
    attn_workspace *ws = NULL;
    xp_check(attn_workspace_create(&ws), "attn_workspace_create");
    for (int s = 0; s < cfg->sizes.n; s++) {
        const int64_t n = cfg->sizes.v[s], e = src->embed_dim;
        float *y = xp_alloc((size_t)(n * e) * sizeof *y);
        curves[0][s] = (double)n;
        for (int c = 0; c < nc; c++) {
            curves[1 + c][s] = NAN;
            if (cases[c].rank > n)
                continue;
            xp_progress(cfg, "attention: timing %s r = %lld, N = %lld", cases[c].name, (long long)cases[c].rank,
                        (long long)n);
            attn_mha *mha = make_mha(cfg, src, cases[c].kind, cases[c].rank, n, false);
            attn_cost cost;
            xp_check(attn_mha_cost(mha, 1, n, n, &cost), "attn_mha_cost");
            forward_ctx f = {mha, ws, n, text_x, y};
            const double sec = xp_time(cfg->runs, run_forward, &f);
            curves[1 + c][s] = sec * 1e3;
            xp_text(t, cases[c].name);
            xp_int(t, n);
            if (cases[c].rank)
                xp_int(t, cases[c].rank);
            else
                xp_none(t);
            xp_num(t, "%.3f", (double)cost.flops * 1e-9);
            xp_num(t, "%.2f", sec * 1e3);
            xp_num(t, "%.1f", (double)cost.flops / sec * 1e-9);
            xp_num(t, "%.1f", (double)cost.workspace_bytes / (1 << 20));
            attn_mha_destroy(mha);
        }
        free(y);
    }
    attn_workspace_destroy(ws);
    for (int c = 0; c < nc; c++) {
        if (cases[c].rank)
            snprintf(names[c], sizeof names[c], "%s %lld", cases[c].name, (long long)cases[c].rank);
        else
            snprintf(names[c], sizeof names[c], "%s", cases[c].name);
        cols[1 + c] = names[c];
    }
    xp_csv_curves(cfg, "attention_time_curves", 1 + nc, cols, cfg->sizes.n, (const double *const *)curves);
    for (int c = 0; c <= nc; c++)
        free(curves[c]);
}

/* The ranks of the error table's columns: every Linformer k and Nystrom m, increasing. */
static int error_ranks(const xp_config *cfg, int64_t *ranks)
{
    int n = 0;
    const xp_list *lists[2] = {&cfg->linformer_k, &cfg->nystrom_m};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < lists[l]->n; i++) {
            int at = 0;
            while (at < n && ranks[at] < lists[l]->v[i])
                at++;
            if (at < n && ranks[at] == lists[l]->v[i])
                continue;
            memmove(ranks + at + 1, ranks + at, (size_t)(n - at) * sizeof *ranks);
            ranks[at] = lists[l]->v[i], n++;
        }
    return n;
}

static const char *const kind_names[] = {"LINFORMER", "LINFORMER-POOL", "NYSTROM", "optimum"};
enum { N_KINDS = 4 };

/* One source's errors: each approximation's attention matrix against FULL's, relative, at every N
 * and rank, and the optimum at that rank (for N up to svd_max); into the printed table `wide` (a row
 * per kind, a column per rank) and the CSV-only table `tidy` (a row per value). Writes the optimum at
 * every rank, at the largest N that had its SVD, into opt_curve. */
static void error_cases(const xp_config *cfg, const xp_attn_source *src, const float *x, xp_table *wide,
                        xp_table *tidy, double **opt_curve, int64_t *opt_n)
{
    int64_t ranks[2 * XP_MAX_LIST];
    const int nr = error_ranks(cfg, ranks);
    attn_workspace *ws = NULL;
    xp_check(attn_workspace_create(&ws), "attn_workspace_create");
    for (int s = 0; s < cfg->sizes.n; s++) {
        const int64_t n = cfg->sizes.v[s], h = src->heads;
        const size_t count = (size_t)(h * n * n);
        if (n > cfg->error_max)
            continue;
        float *full = xp_alloc(count * sizeof *full), *approx = xp_alloc(count * sizeof *approx);
        attn_mha *mha = make_mha(cfg, src, ATTN_MHA_FULL, 0, n, false);
        xp_progress(cfg, "attention: %s FULL matrix N = %lld", src->label, (long long)n);
        xp_check(attn_mha_attention_matrix(mha, ws, 1, n, n, x, x, x, NULL, full), "attention matrix");
        attn_mha_destroy(mha);
        const double full_norm2 = xp_norm2(full, count);
        double err[N_KINDS][2 * XP_MAX_LIST];
        for (int k = 0; k < N_KINDS; k++)
            for (int r = 0; r < nr; r++)
                err[k][r] = NAN;
        if (n <= cfg->svd_max) { /* the spectrum of every head's matrix */
            double *sigma = xp_alloc((size_t)(h * n) * sizeof *sigma);
            for (int64_t k = 0; k < h; k++) {
                xp_progress(cfg, "attention: %s SVD of head %lld, N = %lld", src->label, (long long)k, (long long)n);
                xp_check(attn_singular_values(full + (size_t)k * n * n, n, n, sigma + k * n), "attn_singular_values");
            }
            free(*opt_curve);
            *opt_curve = xp_alloc((size_t)(n + 1) * sizeof **opt_curve);
            *opt_n = n;
            for (int64_t r = 0; r <= n; r++) {
                double tail = 0.0;
                for (int64_t k = 0; k < h; k++)
                    tail += xp_tail_energy(sigma + k * n, n, r);
                (*opt_curve)[r] = sqrt(tail / full_norm2);
            }
            for (int r = 0; r < nr; r++)
                if (ranks[r] <= n)
                    err[3][r] = (*opt_curve)[ranks[r]];
            free(sigma);
        }
        attn_case cases[3 * XP_MAX_LIST + 1];
        const int nc = cases_of(cfg, n, true, cases);
        for (int c = 1; c < nc; c++) { /* case 0 is FULL itself */
            xp_progress(cfg, "attention: %s %s r = %lld, N = %lld", src->label, cases[c].name,
                        (long long)cases[c].rank, (long long)n);
            mha = make_mha(cfg, src, cases[c].kind, cases[c].rank, n, false);
            if (cases[c].pooled)
                set_pooling(mha, cases[c].rank, n);
            xp_check(attn_mha_attention_matrix(mha, ws, 1, n, n, x, x, x, NULL, approx), "attention matrix");
            attn_mha_destroy(mha);
            const int kind = cases[c].kind == ATTN_MHA_NYSTROM ? 2 : cases[c].pooled ? 1 : 0;
            for (int r = 0; r < nr; r++)
                if (ranks[r] == cases[c].rank)
                    err[kind][r] = xp_rel_error(approx, full, count);
        }
        for (int k = 0; k < N_KINDS; k++) {
            if (k == 3 && n > cfg->svd_max)
                continue;
            xp_text(wide, src->label);
            xp_int(wide, n);
            xp_text(wide, kind_names[k]);
            for (int r = 0; r < nr; r++) {
                if (isnan(err[k][r])) {
                    xp_none(wide);
                    continue;
                }
                xp_num(wide, "%.4f", err[k][r]);
                xp_text(tidy, src->label);
                xp_int(tidy, n);
                xp_text(tidy, kind_names[k]);
                xp_int(tidy, ranks[r]);
                xp_num(tidy, "%.6g", err[k][r]);
            }
        }
        free(full);
        free(approx);
    }
    attn_workspace_destroy(ws);
}

void xp_part_attention_of(const xp_config *cfg, const xp_attn_source *sources, int n_sources, const float *x)
{
    static const char *const time_cols[] = {"kind", "N", "r", "GFLOP", "ms", "GFLOP/s", "workspace MiB"};
    xp_table *t = xp_table_new(cfg, "attention_time", 7, time_cols);
    time_cases(cfg, &sources[0], x, t);
    xp_progress_done(cfg);
    printf("time of one forward (batch 1, median of %d; r = Linformer's k or Nystrom's m):\n", cfg->runs);
    xp_table_end(t);

    int64_t ranks[2 * XP_MAX_LIST];
    const int nr = error_ranks(cfg, ranks);
    char rank_names[2 * XP_MAX_LIST][24];
    const char *wide_cols[3 + 2 * XP_MAX_LIST] = {"weights", "N", "kind"};
    for (int r = 0; r < nr; r++) {
        snprintf(rank_names[r], sizeof rank_names[r], "r=%lld", (long long)ranks[r]);
        wide_cols[3 + r] = rank_names[r];
    }
    xp_table *wide = xp_table_new(cfg, "attention_error_table", 3 + nr, wide_cols);
    static const char *const tidy_cols[] = {"weights", "N", "kind", "r", "error"};
    xp_table *tidy = xp_table_new(cfg, "attention_error", 5, tidy_cols);
    enum { MAX_SOURCES = 2 };
    double *curves[2 + MAX_SOURCES] = {NULL};
    int64_t curve_n = 0;
    for (int s = 0; s < n_sources && s < MAX_SOURCES; s++)
        error_cases(cfg, &sources[s], x, wide, tidy, &curves[2 + s], &curve_n);
    xp_progress_done(cfg);
    printf("relative Frobenius error of each kind's attention matrix against FULL's (all heads) at rank r\n"
           "(Linformer's k, Nystrom's m), and the optimum: the error of the best matrices of rank r (per head,\n"
           "Eckart-Young, from the SVD; for N up to %lld), for N up to %lld. LINFORMER: E, F random;\n"
           "LINFORMER-POOL: E = F = mean pooling over k segments:\n",
           (long long)cfg->svd_max, (long long)cfg->error_max);
    xp_table_end(wide);
    xp_table_end_csv(tidy);
    if (curve_n > 0) { /* the optimum at every rank, at the largest N that had its SVD */
        curves[0] = xp_alloc((size_t)(curve_n + 1) * sizeof **curves);
        curves[1] = xp_alloc((size_t)(curve_n + 1) * sizeof **curves);
        for (int64_t r = 0; r <= curve_n; r++)
            curves[0][r] = (double)curve_n, curves[1][r] = (double)r;
        const char *cols[2 + MAX_SOURCES] = {"N", "r"};
        const int n = n_sources < MAX_SOURCES ? n_sources : MAX_SOURCES;
        for (int s = 0; s < n; s++)
            cols[2 + s] = sources[s].label;
        xp_csv_curves(cfg, "attention_optimum", 2 + n, cols, curve_n + 1, (const double *const *)curves);
    }
    for (int s = 0; s < 2 + MAX_SOURCES; s++)
        free(curves[s]);
}

void xp_part_attention(const xp_config *cfg)
{
    xp_text_model m;
    xp_text_model_load(cfg, &m);
    int64_t n_max = 0;
    for (int s = 0; s < cfg->sizes.n; s++)
        n_max = cfg->sizes.v[s] > n_max ? cfg->sizes.v[s] : n_max;
    if (n_max > m.text_len)
        xp_die("--sizes: %lld exceeds the %lld characters of the held-out text", (long long)n_max,
               (long long)m.text_len);
    printf("== 1. Attention at growing N: what Linformer and Nystrom cost, and what they give up ==\n"
           "trained: layer 0 of the shipped character model (E = %lld, %lld heads) on the first N characters of\n"
           "held-out text (the layer's input computed here: embedding + sinusoidal positions, LayerNorm);\n"
           "random: the same shapes with weights from seed %llu (PyTorch's init laws), on the same input.\n"
           "Every kind without a causal mask (Linformer and Nystrom have none), Linformer's projections random\n"
           "N(0, 1/k), Nystrom with segment-mean landmarks and 6 Newton-Schulz steps: the library's defaults.%s\n\n",
           (long long)m.embed_dim, (long long)m.heads, (unsigned long long)cfg->seed,
           m.causal ? "\nThe model was trained causally; here its layer attends both ways (the same weights)." : "");
    float *x = xp_alloc((size_t)(n_max * m.embed_dim) * sizeof *x);
    xp_layer0_input(&m, n_max, x);
    const xp_attn_source sources[2] = {{"trained", m.weights, "layers.0.attn.", NULL, m.embed_dim, m.heads},
                                    {"random", NULL, NULL, NULL, m.embed_dim, m.heads}};
    xp_part_attention_of(cfg, sources, 2, x);
    free(x);
    xp_text_model_free(&m);
}

/* ==== part 2 ===================================================================================== */

/* Cumulative curve points printed in the table: sum_{i <= k} sigma_i / sum sigma_i at k = T / div. */
static const int curve_divs[] = {32, 16, 8, 4};
enum { N_DIVS = sizeof curve_divs / sizeof curve_divs[0] };

/* Rank reports of every head's T x T matrix, averaged over the S sequences; adds the mean normalized
 * cumulative curve (over heads and sequences) into curve[0 .. T-1]. */
static void spectrum_rows(const xp_config *cfg, const xp_attn_source *src, int64_t layer, bool causal, const float *x,
                          int64_t seqs, int64_t len, xp_table *t, double *curve)
{
    attn_mha *mha = make_mha(cfg, src, ATTN_MHA_FULL, 0, len, causal);
    const int64_t h = src->heads;
    float *a = xp_alloc((size_t)(seqs * h * len * len) * sizeof *a);
    xp_check(attn_mha_attention_matrix(mha, NULL, seqs, len, len, x, x, x, NULL, a), "attention matrix");
    attn_mha_destroy(mha);
    double *sigma = xp_alloc((size_t)len * sizeof *sigma);
    for (int64_t k = 0; k < h; k++) {
        double r90 = 0, r99 = 0, stable = 0, effective = 0, at[N_DIVS] = {0};
        for (int64_t s = 0; s < seqs; s++) {
            xp_progress(cfg, "spectrum: %s layer %lld head %lld sequence %lld", src->label, (long long)layer,
                        (long long)k, (long long)s);
            const float *m = a + (size_t)((s * h + k) * len * len);
            attn_rank_report rep;
            xp_check(attn_rank_analyze(m, len, len, &rep), "attn_rank_analyze");
            r90 += (double)rep.rank_90, r99 += (double)rep.rank_99, stable += rep.stable_rank;
            effective += rep.effective_rank;
            xp_check(attn_singular_values(m, len, len, sigma), "attn_singular_values");
            double total = 0.0, run = 0.0;
            for (int64_t i = 0; i < len; i++)
                total += sigma[i];
            for (int64_t i = 0; i < len; i++) {
                run += sigma[i];
                curve[i] += run / total / (double)(seqs * h);
                for (int d = 0; d < N_DIVS; d++)
                    if (i + 1 == len / curve_divs[d])
                        at[d] += run / total / (double)seqs;
            }
        }
        char what[32];
        snprintf(what, sizeof what, "%s", src->label);
        xp_text(t, what);
        xp_int(t, layer);
        xp_int(t, k);
        xp_num(t, "%.1f", r90 / (double)seqs);
        xp_num(t, "%.1f", r99 / (double)seqs);
        xp_num(t, "%.1f", stable / (double)seqs);
        xp_num(t, "%.1f", effective / (double)seqs);
        for (int d = 0; d < N_DIVS; d++)
            xp_num(t, "%.3f", at[d]);
    }
    free(sigma);
    free(a);
}

void xp_part_spectrum_of(const xp_config *cfg, const xp_attn_source *sources, int n_sources, int64_t layers,
                         bool causal, const float *const *inputs, int64_t seqs, int64_t len)
{
    char cols_text[N_DIVS][24];
    const char *cols[7 + N_DIVS] = {"weights", "layer", "head", "rank_90", "rank_99", "stable", "effective"};
    for (int d = 0; d < N_DIVS; d++) {
        snprintf(cols_text[d], sizeof cols_text[d], "cum@%lld", (long long)(len / curve_divs[d]));
        cols[7 + d] = cols_text[d];
    }
    xp_table *t = xp_table_new(cfg, "spectrum", 7 + N_DIVS, cols);
    enum { MAX_CURVES = 16 };
    double *curves[MAX_CURVES + 1];
    char names[MAX_CURVES][48];
    const char *curve_cols[MAX_CURVES + 1] = {"k/T"};
    int nc = 0;
    curves[0] = xp_alloc((size_t)len * sizeof **curves);
    for (int64_t i = 0; i < len; i++)
        curves[0][i] = (double)(i + 1) / (double)len;
    for (int s = 0; s < n_sources; s++)
        for (int64_t l = 0; l < layers && nc < MAX_CURVES; l++, nc++) {
            xp_attn_source src = sources[s];
            char prefix[64];
            if (src.weights && src.layer_suffix) {
                snprintf(prefix, sizeof prefix, "%s%lld%s", src.prefix, (long long)l, src.layer_suffix);
                src.prefix = prefix;
            }
            curves[nc + 1] = xp_alloc((size_t)len * sizeof **curves);
            spectrum_rows(cfg, &src, l, causal, inputs[l], seqs, len, t, curves[nc + 1]);
            snprintf(names[nc], sizeof names[nc], "%s layer %lld", src.label, (long long)l);
            curve_cols[nc + 1] = names[nc];
        }
    xp_progress_done(cfg);
    xp_table_end(t);
    xp_csv_curves(cfg, "spectrum_curves", nc + 1, curve_cols, len, (const double *const *)curves);
    for (int c = 0; c <= nc; c++)
        free(curves[c]);
}

void xp_part_spectrum(const xp_config *cfg)
{
    xp_text_model m;
    xp_text_model_load(cfg, &m);
    char path[4096];
    snprintf(path, sizeof path, "%s/char_attention_inputs.safetensors", cfg->models_dir);
    attn_params *in = NULL;
    xp_check(attn_params_open(&in, path, NULL), "loading the shipped layer inputs");
    float *inputs[16] = {NULL};
    int64_t seqs = 0, len = 0;
    for (int64_t l = 0; l < m.layers && l < 16; l++) {
        char name[64];
        snprintf(name, sizeof name, "layers.%lld.input", (long long)l);
        attn_tensor_info info;
        xp_check(attn_params_find(in, name, &info), path);
        seqs = info.shape[0], len = info.shape[1];
        if (info.ndim != 3 || info.shape[2] != m.embed_dim)
            xp_die("%s: %s has the wrong shape", path, name);
        inputs[l] = (float *)xp_tensor(in, name, NULL);
    }
    printf("== 2. The spectrum of trained attention (the Linformer paper's Figure 1 analysis, on our model) ==\n"
           "Each head's %lld x %lld attention matrix (%s, as trained) on the inputs that reach each layer for %lld\n"
           "held-out windows (shipped in models/), averaged over the windows; random: the same inputs through\n"
           "random weights. rank_p: singular values needed for a fraction p of their sum; stable = ||A||_F^2 /\n"
           "sigma_1^2; effective = exp(entropy of sigma / sum sigma); cum@k: sum_{i<=k} sigma_i / sum sigma_i.\n\n",
           (long long)len, (long long)len, m.causal ? "causal" : "bidirectional", (long long)seqs);
    const xp_attn_source sources[2] = {{"trained", m.weights, "layers.", ".attn.", m.embed_dim, m.heads},
                                    {"random", NULL, NULL, NULL, m.embed_dim, m.heads}};
    xp_part_spectrum_of(cfg, sources, 2, m.layers, m.causal, (const float *const *)inputs, seqs, len);
    for (int l = 0; l < 16; l++)
        free(inputs[l]);
    attn_params_close(in);
    xp_text_model_free(&m);
}
