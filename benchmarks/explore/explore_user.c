/* attn-explore --weights FILE --family F [--prefix P]: the same analyses on the user's own trained
 * attention layer or RNN (PyTorch state_dict names, saved as safetensors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

static const struct {
    const char *name;
    int64_t gates;
} rnn_families[] = {{"lstm", 4}, {"gru", 3}, {"rnn_tanh", 1}, {"rnn_relu", 1}};

static bool has(attn_params *p, const char *name, attn_tensor_info *info)
{
    attn_tensor_info ignored;
    return attn_params_find(p, name, info ? info : &ignored) == ATTN_OK;
}

static void user_attention(const xp_config *cfg, attn_params *w)
{
    attn_tensor_info info;
    if (!has(w, "in_proj_weight", &info) || info.ndim != 2 || info.shape[0] != 3 * info.shape[1])
        xp_die("%s: no in_proj_weight (3E, E) under the prefix '%s' (separate q/k/v projections are not "
               "supported here)", cfg->weights, cfg->prefix);
    const int64_t e = info.shape[1];
    if (e % cfg->heads)
        xp_die("--heads %lld does not divide the embedding size %lld", (long long)cfg->heads, (long long)e);
    int64_t n_max = 0, len = XP_TRAINED_CONTEXT;
    for (int s = 0; s < cfg->sizes.n; s++)
        n_max = cfg->sizes.v[s] > n_max ? cfg->sizes.v[s] : n_max;
    enum { SEQS = 2 };
    const size_t big = (size_t)((n_max > SEQS * len ? n_max : SEQS * len) * e);
    float *x = xp_alloc(big * sizeof *x);
    xp_random(x, big, cfg->seed + 1, sqrtf(3.0f)); /* unit variance, like a LayerNorm's output */
    printf("== your attention layer: %s (prefix '%s'), E = %lld, %lld heads, on random inputs of unit variance ==\n"
           "(random: the same shapes with weights from seed %llu)\n\n",
           cfg->weights, cfg->prefix, (long long)e, (long long)cfg->heads, (unsigned long long)cfg->seed);
    const xp_attn_source sources[2] = {{"yours", w, "", NULL, e, cfg->heads}, {"random", NULL, NULL, NULL, e, cfg->heads}};
    if (cfg->attention)
        xp_part_attention_of(cfg, sources, 2, x);
    if (cfg->spectrum) {
        const float *inputs[1] = {x};
        printf("the spectrum of its %lld x %lld attention matrices (no mask) on %d random sequences:\n",
               (long long)len, (long long)len, SEQS);
        xp_part_spectrum_of(cfg, sources, 2, 1, false, inputs, SEQS, len);
    }
    free(x);
}

static void user_rnn(const xp_config *cfg, attn_params *w, int64_t gates)
{
    attn_tensor_info info;
    if (!has(w, "weight_hh_l0", &info) || info.ndim != 2 || info.shape[0] != gates * info.shape[1])
        xp_die("%s: no weight_hh_l0 (%lld H, H) under the prefix '%s'", cfg->weights, (long long)gates, cfg->prefix);
    const int64_t h = info.shape[1], rows = gates * h;
    const bool reverse = has(w, "weight_hh_l0_reverse", NULL);
    printf("== your %s: %s (prefix '%s'), H = %lld%s ==\n"
           "the spectrum of each layer's recurrent matrix W_hh (%lld x %lld) and err@r, the relative error of its\n"
           "best rank-r approximation (Eckart-Young): what a LOW_RANK recurrence of rank r keeps at best\n\n",
           cfg->family, cfg->weights, cfg->prefix, (long long)h, reverse ? ", bidirectional" : "", (long long)rows,
           (long long)h);
    char rank_cols[XP_MAX_LIST][24];
    const char *cols[16] = {"layer", "direction", "sigma_max", "rank_90", "rank_99", "stable", "effective"};
    int ncols = 7;
    for (int i = 0; i < cfg->ranks.n && ncols < 16; i++, ncols++) {
        snprintf(rank_cols[i], sizeof rank_cols[i], "err@%lld", (long long)cfg->ranks.v[i]);
        cols[ncols] = rank_cols[i];
    }
    xp_table *t = xp_table_new(cfg, "user_rnn_spectrum", ncols, cols);
    double *sigma = xp_alloc((size_t)h * sizeof *sigma);
    for (int64_t l = 0;; l++) {
        for (int d = 0; d < 1 + reverse; d++) {
            char name[64];
            snprintf(name, sizeof name, "weight_hh_l%lld%s", (long long)l, d ? "_reverse" : "");
            if (!has(w, name, &info))
                goto done;
            if (info.ndim != 2 || info.shape[0] != rows || info.shape[1] != h)
                xp_die("%s: %s is not (%lld, %lld)", cfg->weights, name, (long long)rows, (long long)h);
            const float *m = xp_tensor(w, name, NULL);
            attn_rank_report rep;
            xp_check(attn_rank_analyze(m, rows, h, &rep), name);
            xp_check(attn_singular_values(m, rows, h, sigma), name);
            xp_int(t, l);
            xp_text(t, d ? "reverse" : "forward");
            xp_num(t, "%.3f", rep.sigma_max);
            xp_int(t, rep.rank_90);
            xp_int(t, rep.rank_99);
            xp_num(t, "%.1f", rep.stable_rank);
            xp_num(t, "%.1f", rep.effective_rank);
            for (int i = 0; i < ncols - 7; i++) {
                const double tail = xp_tail_energy(sigma, h, cfg->ranks.v[i]);
                xp_num(t, "%.4f", rep.frobenius > 0.0 ? sqrt(tail) / rep.frobenius : 0.0);
            }
            free((void *)m);
        }
    }
done:
    xp_table_end(t);
    free(sigma);
}

void xp_user_weights(const xp_config *cfg)
{
    attn_params *w = NULL;
    xp_check(attn_params_open(&w, cfg->weights, cfg->prefix), "--weights");
    if (!strcmp(cfg->family, "mha")) {
        user_attention(cfg, w);
    } else {
        size_t f = 0;
        while (f < sizeof rnn_families / sizeof *rnn_families && strcmp(cfg->family, rnn_families[f].name))
            f++;
        if (f == sizeof rnn_families / sizeof *rnn_families)
            xp_die("--family '%s': one of mha, lstm, gru, rnn_tanh, rnn_relu", cfg->family);
        user_rnn(cfg, w, rnn_families[f].gates);
    }
    attn_params_close(w);
}
