/*
 * fuzz_handles.h: the small handles whose parameters fuzz_params_load.c loads files into, shared
 * with make_seeds.c so that the seed files name exactly these tensors with exactly these shapes.
 * Each family and recurrence kind is here once (their tensor names and shapes differ), kept small
 * so that a valid file of any of them stays under 8 KiB even as F64.
 */
#ifndef ATTN_FUZZ_HANDLES_H
#define ATTN_FUZZ_HANDLES_H

#include <stdint.h>

#include "attn/attn.h"

enum { FUZZ_N_HANDLES = 9 };

/* One handle of each kind, by number (0 .. FUZZ_N_HANDLES - 1); `name` is for file names. */
typedef struct fuzz_handle {
    const char *name;
    void *h;
    attn_params *params;
    void (*destroy)(void *h);
} fuzz_handle;

static inline void fuzz_destroy_rnn(void *h) { attn_rnn_destroy(h); }
static inline void fuzz_destroy_mha(void *h) { attn_mha_destroy(h); }
static inline void fuzz_destroy_memrnn(void *h) { attn_memrnn_destroy(h); }
static inline void fuzz_destroy_perceiver(void *h) { attn_perceiver_destroy(h); }

static inline attn_status fuzz_make_rnn(fuzz_handle *out, int which)
{
    attn_rnn_options o;
    attn_rnn_options_init(&o);
    o.input_size = 3;
    o.hidden_size = 4;
    switch (which) {
    case 0: /* LSTM */
        out->name = "lstm";
        break;
    case 1: /* the GRU of tests/test_params.c, whose malformed files the seeds reproduce */
        out->name = "gru_bidir2";
        o.cell = ATTN_CELL_GRU;
        o.num_layers = 2;
        o.bidirectional = 1;
        break;
    case 2:
        out->name = "tanh_lowrank";
        o.cell = ATTN_CELL_RNN_TANH;
        o.recurrence = ATTN_RECURRENCE_LOW_RANK;
        o.rank = 2;
        o.bias = 0;
        break;
    default:
        out->name = "relu_kron";
        o.cell = ATTN_CELL_RNN_RELU;
        o.recurrence = ATTN_RECURRENCE_KRONECKER;
        o.num_factors = 2;
        o.factor_sizes[0] = 2;
        o.factor_sizes[1] = 2;
        break;
    }
    attn_rnn *h = NULL;
    attn_status s = attn_rnn_create(&h, &o);
    *out = (fuzz_handle){out->name, h, attn_rnn_params(h), fuzz_destroy_rnn};
    return s;
}

static inline attn_status fuzz_make_mha(fuzz_handle *out, int kind)
{
    attn_mha_options o;
    attn_mha_options_init(&o);
    o.kind = kind;
    o.embed_dim = 4;
    o.num_heads = 2;
    if (kind == ATTN_MHA_FULL) {
        out->name = "mha_full";
        o.kdim = 3;
        o.vdim = 2;
    } else if (kind == ATTN_MHA_LINFORMER) {
        out->name = "mha_linformer";
        o.max_seq_len = 5;
        o.proj_len = 2;
        o.sharing = ATTN_LINFORMER_NONE;
    } else {
        out->name = "mha_nystrom";
        o.num_landmarks = 2;
        o.conv_kernel = 3;
        o.bias = 0;
    }
    attn_mha *h = NULL;
    attn_status s = attn_mha_create(&h, &o);
    *out = (fuzz_handle){out->name, h, attn_mha_params(h), fuzz_destroy_mha};
    return s;
}

static inline attn_status fuzz_make_memrnn(fuzz_handle *out)
{
    attn_memrnn_options o;
    attn_memrnn_options_init(&o);
    o.input_size = 2;
    o.output_size = 2;
    o.controller_size = 3;
    o.memory_slots = 3;
    o.memory_width = 2;
    attn_memrnn *h = NULL;
    attn_status s = attn_memrnn_create(&h, &o);
    *out = (fuzz_handle){"memrnn", h, attn_memrnn_params(h), fuzz_destroy_memrnn};
    return s;
}

static inline attn_status fuzz_make_perceiver(fuzz_handle *out)
{
    attn_perceiver_options o;
    attn_perceiver_options_init(&o);
    o.input_channels = 1;
    o.input_axis = 1;
    o.num_freq_bands = 1;
    o.max_freq = 4.0;
    o.depth = 3; /* with tied weights: layers 0 and 1 are stored, layers.2.* is an alias */
    o.weight_tie_layers = 1;
    o.num_latents = 2;
    o.latent_dim = 2;
    o.cross_dim_head = 2;
    o.latent_heads = 1;
    o.latent_dim_head = 2;
    o.num_classes = 2;
    attn_perceiver *h = NULL;
    attn_status s = attn_perceiver_create(&h, &o);
    *out = (fuzz_handle){"perceiver", h, attn_perceiver_params(h), fuzz_destroy_perceiver};
    return s;
}

/* Handle number `i`; ATTN_OK or the status of its create. */
static inline attn_status fuzz_make_handle(fuzz_handle *out, int i)
{
    if (i < 4)
        return fuzz_make_rnn(out, i);
    if (i < 7)
        return fuzz_make_mha(out, i - 4);
    return i == 7 ? fuzz_make_memrnn(out) : fuzz_make_perceiver(out);
}

/* The prefixes the control byte chooses from (index 0: NULL). make_seeds.c writes its files with
 * them, so that seeds reach the prefix matching. */
static const char *const fuzz_prefixes[4] = {NULL, "", "m.", "encoder.layer.0."};

#endif /* ATTN_FUZZ_HANDLES_H */
