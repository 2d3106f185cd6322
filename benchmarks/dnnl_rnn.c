/*
 * dnnl_rnn.c: oneDNN side of attn-bench's "rnn" group (program attn-bench-dnnl-rnn).
 *
 * Times oneDNN's own RNN primitives on the shapes attn-bench uses, so that libattn is compared
 * with the fastest CPU RNN code there is in the same run:
 *   rnn_tanh -> vanilla_rnn (tanh); lstm -> vanilla_lstm; gru -> lbr_gru. oneDNN's "vanilla" GRU
 *   applies the reset gate before the recurrent product (r * h, then W_hn); PyTorch (and libattn)
 *   apply it after (r * (W_hn h + b_hn)), which is oneDNN's linear-before-reset GRU.
 * f32, forward_inference, one layer, left-to-right, zero initial state, time-major tnc data as
 * oneDNN wants it (our batch-first data would need a transpose, which is not timed). Weights are
 * created in PyTorch-like ldigo and reordered once, before timing, to the layout the primitive
 * picks (format_tag any). Only the primitive's execution (plus stream wait) is timed.
 *
 * Usage: attn-bench-dnnl-rnn BATCH SEQ INPUT HIDDEN WARMUP RUNS CELL...
 * Output: the line protocol of bench_util.h (INFO / RESULT <cell> <median s> <runs> / ERROR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>
#include <dnnl_debug.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"

#define CHECK(call)                                                                              \
    do {                                                                                         \
        dnnl_status_t s_ = (call);                                                               \
        if (s_ != dnnl_success) {                                                                \
            printf("ERROR %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, dnnl_status2str(s_)); \
            exit(4);                                                                             \
        }                                                                                        \
    } while (0)

typedef struct {
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    int nargs;
    dnnl_exec_arg_t args[5];
} exec_ctx;

static int execute(void *p) {
    exec_ctx *e = p;
    CHECK(dnnl_primitive_execute(e->prim, e->stream, e->nargs, e->args));
    CHECK(dnnl_stream_wait(e->stream));
    return 0;
}

/* A memory object for md filled with random values (or uninitialized for outputs: seed 0). */
static dnnl_memory_t make_memory(const dnnl_memory_desc_t *md, dnnl_engine_t eng, uint64_t seed) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    if (seed) {
        size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
        float *src = bench_random_floats(n, seed, 0.1f);
        void *dst;
        CHECK(dnnl_memory_get_data_handle(m, &dst));
        memcpy(dst, src, n * sizeof(float));
        free(src);
    }
    return m;
}

/* Returns a memory object in the layout `want` holding the data of `user` (reordered once). */
static dnnl_memory_t to_layout(dnnl_memory_t user, const dnnl_memory_desc_t *want, dnnl_engine_t eng,
                               dnnl_stream_t stream) {
    const dnnl_memory_desc_t *have;
    CHECK(dnnl_memory_get_memory_desc(user, &have));
    if (dnnl_memory_desc_equal(have, want)) return user;
    dnnl_memory_t out = make_memory(want, eng, 0);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t reorder;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, have, eng, want, eng, NULL));
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, out}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(user);
    return out;
}

static int run_cell(const char *cell, dnnl_dim_t B, dnnl_dim_t T, dnnl_dim_t I, dnnl_dim_t H, int warmup,
                    int runs, dnnl_engine_t eng, dnnl_stream_t stream) {
    int is_rnn = strcmp(cell, "rnn_tanh") == 0, is_lstm = strcmp(cell, "lstm") == 0,
        is_gru = strcmp(cell, "gru") == 0;
    if (!is_rnn && !is_lstm && !is_gru) {
        printf("ERROR unknown cell '%s' (rnn_tanh, lstm, gru)\n", cell);
        return 2;
    }
    dnnl_dim_t G = is_lstm ? 4 : is_gru ? 3 : 1;
    dnnl_dim_t G_bias = is_gru ? 4 : G; /* lbr_gru keeps b_hn apart: a fourth bias row */

    dnnl_memory_desc_t src_md, dst_md, wl_any, wi_any, bias_md, wl_user, wi_user;
    dnnl_dims_t src_dims = {T, B, I}, dst_dims = {T, B, H};
    dnnl_dims_t wl_dims = {1, 1, I, G, H}, wi_dims = {1, 1, H, G, H}, bias_dims = {1, 1, G_bias, H};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 3, src_dims, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 3, dst_dims, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&wl_any, 5, wl_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wi_any, 5, wi_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wl_user, 5, wl_dims, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag(&wi_user, 5, wi_dims, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag(&bias_md, 4, bias_dims, dnnl_f32, dnnl_ldgo));

    dnnl_rnn_desc_t desc;
    dnnl_prop_kind_t prop = dnnl_forward_inference;
    dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    if (is_rnn)
        CHECK(dnnl_vanilla_rnn_forward_desc_init(&desc, prop, dnnl_eltwise_tanh, dir, &src_md, NULL, &wl_any,
                                                 &wi_any, &bias_md, &dst_md, NULL, 0, 0.0f, 0.0f));
    else if (is_lstm)
        CHECK(dnnl_lstm_forward_desc_init(&desc, prop, dir, &src_md, NULL, NULL, &wl_any, &wi_any, &bias_md,
                                          &dst_md, NULL, NULL, 0));
    else
        CHECK(dnnl_lbr_gru_forward_desc_init(&desc, prop, dir, &src_md, NULL, &wl_any, &wi_any, &bias_md,
                                             &dst_md, NULL, 0));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL));
    const char *impl = "?";
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));

    exec_ctx e = {NULL, stream, 5, {{0, NULL}}};
    e.args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC_LAYER, make_memory(&src_md, eng, 11)};
    e.args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS_LAYER,
                                  to_layout(make_memory(&wl_user, eng, 12),
                                            dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng,
                                            stream)};
    e.args[2] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS_ITER,
                                  to_layout(make_memory(&wi_user, eng, 13),
                                            dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), eng,
                                            stream)};
    e.args[3] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, make_memory(&bias_md, eng, 14)};
    e.args[4] = (dnnl_exec_arg_t){DNNL_ARG_DST_LAYER, make_memory(&dst_md, eng, 0)};
    CHECK(dnnl_primitive_create(&e.prim, pd));

    printf("INFO oneDNN %s: %s\n", is_gru ? "lbr_gru" : is_lstm ? "vanilla_lstm" : "vanilla_rnn", impl);
    double t;
    bench_time(execute, &e, warmup, runs, &t);
    printf("RESULT %s %.9f %d\n", cell, t, runs);
    fflush(stdout);

    dnnl_primitive_destroy(e.prim);
    for (int i = 0; i < e.nargs; i++) dnnl_memory_destroy(e.args[i].memory);
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    if (argc < 8) {
        printf("ERROR usage: %s BATCH SEQ INPUT HIDDEN WARMUP RUNS CELL...\n", argv[0]);
        return 2;
    }
    long v[6];
    for (int i = 0; i < 6; i++) {
        char *end;
        v[i] = strtol(argv[i + 1], &end, 10);
        if (*end || v[i] < (i == 4 ? 0 : 1)) {
            printf("ERROR bad argument '%s'\n", argv[i + 1]);
            return 2;
        }
    }
    const dnnl_version_t *ver = dnnl_version();
    int threads = 0;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("INFO oneDNN %d.%d.%d, cpu isa %s, %d OpenMP threads\n", ver->major, ver->minor, ver->patch,
           isa_name(dnnl_get_effective_cpu_isa()), threads);

    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    int rc = 0;
    for (int i = 7; i < argc && !rc; i++)
        rc = run_cell(argv[i], v[0], v[1], v[2], v[3], (int)v[4], (int)v[5], eng, stream);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return rc;
}
