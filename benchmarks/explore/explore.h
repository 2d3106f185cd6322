/*
 * explore.h: what the parts of attn-explore share: its settings, the tables it prints (and writes as
 * CSV), the shipped example models and small numeric helpers. Not library code: the demo may print
 * and exit.
 */
#ifndef ATTN_EXPLORE_H
#define ATTN_EXPLORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <attn/attn.h>

enum { XP_MAX_LIST = 16 };

/* A comma-separated list of positive integers from the command line. */
typedef struct {
    int n;
    int64_t v[XP_MAX_LIST];
} xp_list;

typedef struct xp_config {
    bool attention, spectrum, recurrent; /* the three parts; all by default */
    xp_list sizes;                       /* part 1: sequence lengths N */
    xp_list linformer_k, nystrom_m;      /* part 1: Linformer proj_len, Nystrom landmarks */
    int64_t svd_max;                     /* part 1: largest N whose FULL matrix gets its SVD */
    int64_t error_max;                   /* part 1: largest N whose attention matrices are compared */
    xp_list ranks;                       /* part 3: low ranks r */
    int64_t hidden;                      /* part 3: H of the synthetic recurrences; 0 = trained LSTM's */
    int64_t text_chars;                  /* part 3: held-out characters the LSTM's loss is taken over */
    int runs;                            /* timed runs per figure (median) */
    uint64_t seed;                       /* random weights and inputs */
    int threads;                         /* OpenBLAS threads; 0 = as configured */
    const char *models_dir;              /* the shipped models */
    const char *weights;                 /* --weights: the user's own model, or NULL */
    const char *family;                  /* --family: mha, lstm, gru, rnn_tanh, rnn_relu */
    const char *prefix;                  /* --prefix of its tensors ("" = none) */
    int64_t heads;                       /* --heads of a user's attention */
    const char *csv_dir;                 /* --csv DIR, or NULL */
    bool plots;                          /* PNG plots with gnuplot (with --csv, when installed) */
    bool progress;                       /* progress line on stderr (a terminal) */
} xp_config;

/* ---- failure and progress -------------------------------------------------------------------- */

/* Prints "attn-explore: <message>" and exits with status 1 (the demo's one way to fail). */
_Noreturn void xp_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exits through xp_die with the library's message when st is not ATTN_OK. */
void xp_check(attn_status st, const char *what);
void *xp_alloc(size_t bytes); /* zeroed, 64-byte aligned; exits when memory runs out */
/* One progress line on stderr, overwritten by the next (nothing when progress is off). */
void xp_progress(const xp_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void xp_progress_done(const xp_config *cfg);

/* ---- tables ------------------------------------------------------------------------------------ */

typedef struct xp_table xp_table;
/* A table called `name` (its CSV file is DIR/name.csv) with the given column headers. */
xp_table *xp_table_new(const xp_config *cfg, const char *name, int ncols, const char *const *headers);
void xp_text(xp_table *t, const char *text);                /* next cell: text (CSV: the same) */
void xp_num(xp_table *t, const char *fmt, double v);        /* next cell: a number as fmt (CSV: %.9g) */
void xp_int(xp_table *t, int64_t v);                        /* next cell: an integer */
void xp_none(xp_table *t);                                  /* next cell: not measured (CSV: empty) */
/* Prints the table (aligned) and writes its CSV; frees it. */
void xp_table_end(xp_table *t);
/* Only writes its CSV (data for plots and tests that a printed table shows in another shape). */
void xp_table_end_csv(xp_table *t);
/* Writes DIR/name.csv from columns of doubles (for curves too long to print); nothing without --csv. */
void xp_csv_curves(const xp_config *cfg, const char *name, int ncols, const char *const *headers, int64_t rows,
                   const double *const *columns);
/* Draws the PNG plots from the CSV files (gnuplot), when asked and installed. */
void xp_plots(const xp_config *cfg);

/* ---- numbers ---------------------------------------------------------------------------------- */

double xp_now(void);
/* Median wall time of `runs` calls of fn(ctx) after one untimed call. */
double xp_time(int runs, void (*fn)(void *ctx), void *ctx);
void xp_random(float *x, size_t n, uint64_t seed, float scale); /* uniform in [-scale, scale) */
/* ||a - b||_F / ||b||_F over n floats (in double). */
double xp_rel_error(const float *a, const float *b, size_t n);
double xp_norm2(const float *a, size_t n); /* sum of squares, in double */
/* sum_{i >= r} sigma_i^2 of a decreasing spectrum sigma [n]: the square of attn_lowrank_error(a, r),
 * from a spectrum at hand (one SVD serves every rank). */
double xp_tail_energy(const double *sigma, int64_t n, int64_t r);

/* ---- the shipped example models (models/) ---------------------------------------------------- */

/* What models/train.py fixed and the weights do not say. */
#define XP_TRAINED_HEADS 4     /* heads of each nn.MultiheadAttention */
#define XP_TRAINED_CONTEXT 256 /* the training window (and that of the shipped layer inputs) */
#define XP_TRAINED_CAUSAL 1    /* the attention model's objective: next character (causal) */

/* The character-level attention model: token embedding, fixed sinusoidal positions, pre-LN blocks
 * of nn.MultiheadAttention; what the demo needs of it. */
typedef struct xp_text_model {
    attn_params *weights;           /* every tensor of char_attention.safetensors */
    int64_t vocab, embed_dim, heads, layers, context; /* vocab: characters (embed.weight may have one
                                                         more row, a MASK token) */
    bool causal;
    float codepoints[512];          /* vocab entries */
    char *text;                     /* models/heldout.txt */
    int64_t text_len;
} xp_text_model;

/* Loads models/char_attention.safetensors and models/heldout.txt (exits with a clear message when
 * they are missing). */
void xp_text_model_load(const xp_config *cfg, xp_text_model *m);
void xp_text_model_free(xp_text_model *m);
/* The held-out text as ids of the model's vocabulary ([*n]; free with free()). */
int64_t *xp_text_ids(const xp_text_model *m, int64_t *n);
/* x [n, E] = the input of layer 0's attention for the first n characters of the held-out text (n at
 * most text_len): LayerNorm1(embed[c] + sinusoid(position)). */
void xp_layer0_input(const xp_text_model *m, int64_t n, float *x);
/* The tensor `name` of a params set (exits when missing). */
const float *xp_tensor(attn_params *p, const char *name, int64_t *count);
/* Copies the tensors "<from_prefix><name>" of `from` into the tensors `name` of `to`, for each of the
 * NULL-terminated `names` (NULL: every tensor of `to`). */
void xp_copy_params(attn_params *to, attn_params *from, const char *from_prefix, const char *const *names);

/* ---- the parts ---------------------------------------------------------------------------- */

/* An attention layer under study: trained (a params set and the prefix of its nn.MultiheadAttention
 * tensors; in part 2 with several layers, layer l's prefix is prefix + l + layer_suffix) or random
 * (weights NULL). */
typedef struct {
    const char *label;
    attn_params *weights;
    const char *prefix, *layer_suffix;
    int64_t embed_dim, heads;
} xp_attn_source;

/* Part 1 on the given sources (timed on the first; x [max N, E] is every source's input). */
void xp_part_attention_of(const xp_config *cfg, const xp_attn_source *sources, int n_sources, const float *x);
/* Part 2: inputs[l] [seqs, len, E] is layer l's input. */
void xp_part_spectrum_of(const xp_config *cfg, const xp_attn_source *sources, int n_sources, int64_t layers,
                         bool causal, const float *const *inputs, int64_t seqs, int64_t len);

void xp_part_attention(const xp_config *cfg); /* 1: attention at growing N */
void xp_part_spectrum(const xp_config *cfg);  /* 2: the trained attention's spectra */
void xp_part_recurrent(const xp_config *cfg); /* 3: recurrent capacity at equal state size */
void xp_user_weights(const xp_config *cfg);   /* --weights: the user's own model */

#endif /* ATTN_EXPLORE_H */
