/*
 * attn-bench's "workspace" group: what a forward given ws = NULL costs next to one given a reused
 * workspace, for every family. NULL uses the workspace the library keeps for the calling thread;
 * the third column empties that workspace (attn_thread_workspace_release) before every call, which
 * is what NULL cost before 1.3: fresh scratch pages on every call. The three are timed in the same
 * rounds, so they see the same machine.
 */
#include <stdio.h>
#include <stdlib.h>

#include "attn/attn.h"
#include "bench_util.h"

typedef enum { RNN, MEMRNN, MHA, PERCEIVER } family;

typedef struct {
    family fam;
    const void *handle;
    attn_workspace *ws;
    int64_t batch, n, axes[2];
    const float *x;
    float *y;
    int release; /* empty the thread's workspace first: the pre-1.3 NULL path */
} ws_run;

static int forward(const ws_run *r, attn_workspace *ws)
{
    attn_status st = ATTN_E_INVALID_ARG;
    switch (r->fam) {
    case RNN:
        st = attn_rnn_forward(r->handle, ws, r->batch, r->n, r->x, NULL, NULL, r->y, NULL, NULL);
        break;
    case MEMRNN:
        st = attn_memrnn_forward(r->handle, ws, r->batch, r->n, r->x, r->y, NULL, NULL);
        break;
    case MHA:
        st = attn_mha_forward(r->handle, ws, r->batch, r->n, r->n, r->x, r->x, r->x, NULL, r->y);
        break;
    case PERCEIVER:
        st = attn_perceiver_forward(r->handle, ws, r->batch, r->axes, r->x, NULL, r->y);
        break;
    }
    return st != ATTN_OK;
}

static int run_reused(void *ctx) { return forward(ctx, ((ws_run *)ctx)->ws); }

static int run_null(void *ctx)
{
    const ws_run *r = ctx;
    if (r->release)
        attn_thread_workspace_release();
    return forward(r, NULL);
}

typedef struct {
    const char *label;
    family fam;
    int32_t kind;                  /* RNN: cell; MHA: kind */
    int64_t batch, n, width, size; /* RNN: B, T, I, H; MHA: B, N, E, heads; MEMRNN: B, T, I, slots */
} ws_case;

static const ws_case full_cases[] = {
    {"LSTM B=64 T=256 I=H=512", RNN, ATTN_CELL_LSTM, 64, 256, 512, 512},
    {"GRU B=64 T=256 I=H=512", RNN, ATTN_CELL_GRU, 64, 256, 512, 512},
    {"NTM B=32 T=64 N=4096 W=64", MEMRNN, 0, 32, 64, 64, 4096},
    {"FULL N=4096 E=512 h=8", MHA, ATTN_MHA_FULL, 1, 4096, 512, 8},
    {"LINFORMER N=4096 k=256", MHA, ATTN_MHA_LINFORMER, 1, 4096, 512, 8},
    {"NYSTROM N=4096 m=64", MHA, ATTN_MHA_NYSTROM, 1, 4096, 512, 8},
    {"Perceiver 112^2 B=4", PERCEIVER, 0, 4, 112, 3, 0},
};
static const ws_case quick_cases[] = {
    {"LSTM B=4 T=8 I=H=32", RNN, ATTN_CELL_LSTM, 4, 8, 32, 32},
    {"NTM B=2 T=4 N=64 W=16", MEMRNN, 0, 2, 4, 8, 64},
    {"FULL N=128 E=64 h=4", MHA, ATTN_MHA_FULL, 1, 128, 64, 4},
    {"Perceiver 16^2 B=2", PERCEIVER, 0, 2, 16, 3, 0},
};

/* Creates the case's handle with initialized parameters; the sizes of x and y in *x_n, *y_n. */
static void *create(const ws_case *c, int quick, int64_t *x_n, int64_t *y_n, void (**destroy)(void *))
{
    void *h = NULL;
    attn_status st = ATTN_E_INVALID_ARG;
    if (c->fam == RNN) {
        attn_rnn_options o;
        attn_rnn_options_init(&o);
        o.cell = c->kind, o.input_size = c->width, o.hidden_size = c->size;
        attn_rnn *rnn = NULL;
        if (!(st = attn_rnn_create(&rnn, &o)) && !(st = attn_params_init(attn_rnn_params(rnn), 1)))
            h = rnn;
        *x_n = c->batch * c->n * c->width, *y_n = c->batch * c->n * c->size;
        *destroy = (void (*)(void *))attn_rnn_destroy;
    } else if (c->fam == MEMRNN) {
        attn_memrnn_options o;
        attn_memrnn_options_init(&o);
        o.input_size = c->width, o.output_size = c->width, o.controller_size = quick ? 16 : 100;
        o.memory_slots = c->size, o.memory_width = quick ? 16 : 64;
        attn_memrnn *m = NULL;
        if (!(st = attn_memrnn_create(&m, &o)) && !(st = attn_params_init(attn_memrnn_params(m), 1)))
            h = m;
        *x_n = c->batch * c->n * c->width, *y_n = c->batch * c->n * c->width;
        *destroy = (void (*)(void *))attn_memrnn_destroy;
    } else if (c->fam == MHA) {
        attn_mha_options o;
        attn_mha_options_init(&o);
        o.kind = c->kind, o.embed_dim = c->width, o.num_heads = c->size;
        o.max_seq_len = c->n, o.proj_len = 256, o.num_landmarks = 64;
        attn_mha *m = NULL;
        if (!(st = attn_mha_create(&m, &o)) && !(st = attn_params_init(attn_mha_params(m), 1)))
            h = m;
        *x_n = *y_n = c->batch * c->n * c->width;
        *destroy = (void (*)(void *))attn_mha_destroy;
    } else {
        attn_perceiver_options o;
        attn_perceiver_options_init(&o);
        o.depth = quick ? 1 : 2, o.num_latents = quick ? 32 : 256, o.latent_dim = quick ? 32 : 512;
        o.num_freq_bands = 6, o.max_freq = 10.0;
        attn_perceiver *p = NULL;
        if (!(st = attn_perceiver_create(&p, &o)) && !(st = attn_params_init(attn_perceiver_params(p), 1)))
            h = p;
        *x_n = c->batch * c->n * c->n * c->width, *y_n = c->batch * o.num_latents * o.latent_dim;
        *destroy = (void (*)(void *))attn_perceiver_destroy;
    }
    if (st && h) {
        (*destroy)(h);
        h = NULL;
    }
    return h;
}

int bench_workspace(const bench_config *cfg)
{
    const ws_case *cases = cfg->quick ? quick_cases : full_cases;
    const int n_cases = cfg->quick ? (int)(sizeof quick_cases / sizeof *quick_cases)
                                   : (int)(sizeof full_cases / sizeof *full_cases);
    printf("== workspace: forward with ws = NULL (the calling thread's workspace) vs a reused workspace ==\n"
           "ms: median of %d runs, the three columns timed in the same rounds; fresh = NULL with the thread's\n"
           "workspace emptied before each call (what NULL cost before 1.3); NULL/ws and fresh/ws: time ratios\n\n",
           cfg->runs);
    printf("%-28s %9s %9s %9s %9s %9s %9s\n", "case", "ws MiB", "ws ms", "NULL ms", "fresh ms", "NULL/ws",
           "fresh/ws");
    int failed = 0;
    for (int i = 0; i < n_cases; i++) {
        const ws_case *c = &cases[i];
        int64_t x_n = 0, y_n = 0;
        void (*destroy)(void *) = NULL;
        void *h = create(c, cfg->quick, &x_n, &y_n, &destroy);
        attn_workspace *ws = NULL;
        if (!h || attn_workspace_create(&ws) != ATTN_OK) {
            printf("%-28s failed: %s\n", c->label, attn_last_error());
            failed = 1;
            if (h)
                destroy(h);
            continue;
        }
        float *x = bench_random_floats((size_t)x_n, 3, 1.0f), *y = bench_random_floats((size_t)y_n, 4, 1.0f);
        ws_run reused = {c->fam, h, ws, c->batch, c->n, {c->n, c->n}, x, y, 0}, null = reused, fresh = reused;
        fresh.release = 1;
        const bench_fn fns[3] = {run_reused, run_null, run_null};
        void *const ctxs[3] = {&reused, &null, &fresh};
        double *t = malloc(sizeof *t * 3 * (size_t)cfg->runs), med[3];
        if (!t || bench_time_rounds(3, fns, ctxs, cfg->warmup, cfg->runs, t)) {
            printf("%-28s failed: %s\n", c->label, attn_last_error());
            failed = 1;
        } else {
            for (int j = 0; j < 3; j++) {
                double v[64];
                const int runs = cfg->runs < 64 ? cfg->runs : 64;
                for (int r = 0; r < runs; r++)
                    v[r] = t[r * 3 + j];
                med[j] = bench_median(v, runs);
            }
            const double ws_mib = (double)attn_workspace_size(ws) / (1 << 20);
            printf("%-28s %9.1f %9.2f %9.2f %9.2f %9.3f %9.3f\n", c->label, ws_mib, med[0] * 1e3, med[1] * 1e3,
                   med[2] * 1e3, med[1] / med[0], med[2] / med[0]);
            BENCH_RECORD("workspace", c->label, {"ws_mib", ws_mib, 0}, {"ws_s", med[0], 1}, {"null_s", med[1], 0},
                         {"fresh_s", med[2], 0}, {"null_over_ws", med[1] / med[0], 0},
                         {"fresh_over_ws", med[2] / med[0], 0});
        }
        free(t), free(x), free(y);
        attn_workspace_destroy(ws);
        attn_thread_workspace_release();
        destroy(h);
    }
    printf("\n");
    return failed;
}
