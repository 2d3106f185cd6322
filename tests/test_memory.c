/*
 * test_memory.c: the memory-network RNN (attn_memrnn, include/attn/memory.h, docs/memory.md).
 *
 * Ground truth: a float64 reference of the equations of docs/memory.md written below (LSTM
 * controller, content and location addressing, reads, writes, output, and the SPARSE top-k
 * selection), reading the weights through attn_params_get; invariants (SPARSE with top_k >= N is
 * DENSE bit for bit; with top_k = 1 one step changes exactly one memory row per write head); costs
 * against their closed form; every error path of memory.h (status, message, outputs untouched).
 * The PyTorch comparison (the EncapsulatedNTM module tree and its state_dict) is
 * tests/python/test_memory_torch.py.
 *
 * Tolerance of the float32-vs-float64 comparisons: max |got - ref| <= 1e-4 * max(1, max |ref|)
 * (MEM_TOL), not test_util.h's 1e-5: the sharpening w^gamma and the cosine against nearly parallel
 * slots amplify float32 rounding from step to step (measured: 1e-7 at T = 1 growing to a few 1e-6
 * at T = 50 with N = 2, W = 2; up to 1e-3 with still sharper weights than randomize() sets). The
 * PyTorch test uses the same 1e-4. The reference omits pytorch-ntm's + 1e-16 shifts of k and M inside the cosine, which change
 * nothing representable unless an entry is below ~1e-9.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <unistd.h>

#define MEM_TOL 1e-4

#include "attn/memory.h"

/* ---- configurations ------------------------------------------------------------------------- */

typedef struct mem_cfg {
    int64_t in, out, c, layers, heads, n, w;
    int32_t addressing;
    int64_t top_k;
} mem_cfg;

static attn_memrnn_options cfg_options(const mem_cfg *c)
{
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_options_init(&o));
    o.input_size = c->in;
    o.output_size = c->out;
    o.controller_size = c->c;
    o.controller_layers = c->layers ? c->layers : 1;
    o.num_heads = c->heads ? c->heads : 1;
    o.memory_slots = c->n;
    o.memory_width = c->w;
    o.addressing = c->addressing;
    o.top_k = c->top_k;
    return o;
}

static attn_memrnn *create(const mem_cfg *c)
{
    attn_memrnn_options o = cfg_options(c);
    attn_memrnn *m = NULL;
    ASSERT_OK(attn_memrnn_create(&m, &o));
    return m;
}

/* Multiplies tensor `name` by `gain`. */
static void scale_tensor(attn_params *p, const char *name, double gain)
{
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, name, &info));
    float *a = xmalloc((size_t)info.count * sizeof *a);
    ASSERT_OK(attn_params_get(p, name, a, info.count));
    for (int64_t i = 0; i < info.count; i++)
        a[i] = (float)(a[i] * gain);
    ASSERT_OK(attn_params_set(p, name, a, info.count));
    free(a);
}

/* Random weights from `seed`, with the heads, output and memory scaled up so that the addressing
 * is sharp and every term of the equations matters (see test_memory_torch.py's sharpen). */
static void randomize(attn_memrnn *m, uint64_t seed)
{
    attn_params *p = attn_memrnn_params(m);
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_get_options(m, &o));
    ASSERT_OK(attn_params_init(p, seed));
    char name[96];
    for (int64_t j = 0; j < 2 * o.num_heads; j++) {
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.weight", (long long)j, j % 2 ? "write" : "read");
        scale_tensor(p, name, 2.0);
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.bias", (long long)j, j % 2 ? "write" : "read");
        scale_tensor(p, name, 30.0); /* N(0, 0.3^2) */
    }
    scale_tensor(p, "ntm.fc.weight", 3.0);
    scale_tensor(p, "memory.mem_bias", 3.0);
    /* nonzero LSTM biases, so that their handling is checked too */
    for (int64_t l = 0; l < o.controller_layers; l++)
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "ntm.controller.lstm.bias_%s_l%lld", k ? "hh" : "ih", (long long)l);
            const int64_t count = 4 * o.controller_size;
            float *b = random_floats(count, seed * 31 + (uint64_t)(2 * l + k), 0.3);
            ASSERT_OK(attn_params_set(p, name, b, count));
            free(b);
        }
}

static double *get_f64(const attn_params *p, const char *name, int64_t count)
{
    float *a = xmalloc((size_t)count * sizeof *a);
    ASSERT_OK(attn_params_get(p, name, a, count));
    double *d = to_f64(a, count);
    free(a);
    return d;
}

/* ---- the float64 reference of docs/memory.md ----------------------------------------------- */

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }
static double softplus(double v) { return v > 20.0 ? v : log1p(exp(v)); }

static void softmax(double *x, int64_t n)
{
    double mx = -INFINITY, s = 0.0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, x[i]);
    for (int64_t i = 0; i < n; i++)
        s += x[i] = exp(x[i] - mx);
    for (int64_t i = 0; i < n; i++)
        x[i] /= s;
}

/* out[rows] = W (rows x cols) v + b */
static void affine(const double *wm, const double *b, const double *v, int64_t rows, int64_t cols, double *out)
{
    for (int64_t i = 0; i < rows; i++) {
        double s = b ? b[i] : 0.0;
        for (int64_t j = 0; j < cols; j++)
            s += wm[i * cols + j] * v[j];
        out[i] = s;
    }
}

/* The addressing of one head on memory mem (n x w); o its fc output; wt in: previous, out: new. */
static void ref_address(const double *mem, int64_t n, int64_t w, const double *o, int64_t top_k, double *wt)
{
    double kn = 0.0;
    for (int64_t j = 0; j < w; j++)
        kn += o[j] * o[j];
    kn = fmax(sqrt(kn), 1e-8);
    const double beta = softplus(o[w]), g = sigm(o[w + 1]), gamma = 1.0 + softplus(o[w + 5]);
    double s[3] = {o[w + 2], o[w + 3], o[w + 4]};
    softmax(s, 3);
    double *wc = new_doubles(n), *wg = new_doubles(n);
    for (int64_t i = 0; i < n; i++) {
        double dot = 0.0, mn = 0.0;
        for (int64_t j = 0; j < w; j++) {
            dot += mem[i * w + j] * o[j];
            mn += mem[i * w + j] * mem[i * w + j];
        }
        wc[i] = beta * dot / (kn * fmax(sqrt(mn), 1e-8));
    }
    softmax(wc, n);
    for (int64_t i = 0; i < n; i++)
        wg[i] = g * wc[i] + (1.0 - g) * wt[i];
    for (int64_t i = 0; i < n; i++) /* the shifted weighting */
        wc[i] = s[0] * wg[(i + n - 1) % n] + s[1] * wg[i] + s[2] * wg[(i + 1) % n];
    /* DENSE sharpens every slot; SPARSE keeps the top_k shifted weights (ties: lower index) and
     * sharpens and normalizes over them alone */
    const int sparse = top_k > 0 && top_k < n;
    unsigned char *keep = xmalloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        keep[i] = !sparse;
    for (int64_t k = 0; sparse && k < top_k; k++) {
        int64_t best = 0;
        while (keep[best])
            best++;
        for (int64_t i = best + 1; i < n; i++)
            if (!keep[i] && wc[i] > wc[best])
                best = i;
        keep[best] = 1;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += wt[i] = keep[i] ? pow(wc[i], gamma) : 0.0;
    for (int64_t i = 0; i < n; i++)
        wt[i] /= sum + 1e-16;
    free(keep);
    free(wc);
    free(wg);
}

/* y [B,T,out], rw [B,T,R,N], mem [B,N,W]; top_k 0 = DENSE. */
static void ref_forward(const attn_memrnn *m, int64_t batch, int64_t steps, const float *x, int64_t top_k, double *y,
                        double *rw, double *mem_out)
{
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_get_options(m, &o));
    const attn_params *p = attn_memrnn_params((attn_memrnn *)m);
    const int64_t n = o.memory_slots, w = o.memory_width, r = o.num_heads, c = o.controller_size;
    const int64_t layers = o.controller_layers, in = o.input_size, ci = in + r * w;
    char name[96];
    double *wih[8], *whh[8], *bih[8], *bhh[8], *hw[8], *hb[8], *rb[4];
    for (int64_t l = 0; l < layers; l++) {
        snprintf(name, sizeof name, "ntm.controller.lstm.weight_ih_l%lld", (long long)l);
        wih[l] = get_f64(p, name, 4 * c * (l ? c : ci));
        snprintf(name, sizeof name, "ntm.controller.lstm.weight_hh_l%lld", (long long)l);
        whh[l] = get_f64(p, name, 4 * c * c);
        snprintf(name, sizeof name, "ntm.controller.lstm.bias_ih_l%lld", (long long)l);
        bih[l] = get_f64(p, name, 4 * c);
        snprintf(name, sizeof name, "ntm.controller.lstm.bias_hh_l%lld", (long long)l);
        bhh[l] = get_f64(p, name, 4 * c);
    }
    for (int64_t j = 0; j < 2 * r; j++) {
        const int64_t len = j % 2 ? 3 * w + 6 : w + 6;
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.weight", (long long)j, j % 2 ? "write" : "read");
        hw[j] = get_f64(p, name, len * c);
        snprintf(name, sizeof name, "ntm.heads.%lld.fc_%s.bias", (long long)j, j % 2 ? "write" : "read");
        hb[j] = get_f64(p, name, len);
    }
    for (int64_t i = 0; i < r; i++) {
        snprintf(name, sizeof name, "ntm.read%lld_bias", (long long)i);
        rb[i] = get_f64(p, name, w);
    }
    double *hbias = get_f64(p, "ntm.controller.lstm_h_bias", layers * c);
    double *cbias = get_f64(p, "ntm.controller.lstm_c_bias", layers * c);
    double *fcw = get_f64(p, "ntm.fc.weight", o.output_size * (c + r * w));
    double *fcb = get_f64(p, "ntm.fc.bias", o.output_size);
    double *mbias = get_f64(p, "memory.mem_bias", n * w);

    double *h = new_doubles(layers * c), *cs = new_doubles(layers * c), *gates = new_doubles(4 * c);
    double *zin = new_doubles(ci), *cr = new_doubles(c + r * w), *mem = new_doubles(n * w);
    double *wts = new_doubles(2 * r * n), *ho = new_doubles(3 * w + 6), *gi = new_doubles(4 * c);
    for (int64_t b = 0; b < batch; b++) {
        memcpy(h, hbias, (size_t)(layers * c) * sizeof *h);
        memcpy(cs, cbias, (size_t)(layers * c) * sizeof *cs);
        memcpy(mem, mbias, (size_t)(n * w) * sizeof *mem);
        for (int64_t i = 0; i < 2 * r * n; i++)
            wts[i] = 0.0;
        for (int64_t i = 0; i < r; i++)
            memcpy(cr + c + i * w, rb[i], (size_t)w * sizeof *cr);
        for (int64_t t = 0; t < steps; t++) {
            for (int64_t j = 0; j < in; j++)
                zin[j] = x[(b * steps + t) * in + j];
            memcpy(zin + in, cr + c, (size_t)(r * w) * sizeof *zin);
            for (int64_t l = 0; l < layers; l++) {
                const double *lin = l ? h + (l - 1) * c : zin;
                affine(wih[l], bih[l], lin, 4 * c, l ? c : ci, gates);
                affine(whh[l], bhh[l], h + l * c, 4 * c, c, gi);
                for (int64_t k = 0; k < c; k++) {
                    const double ig = sigm(gates[k] + gi[k]), fg = sigm(gates[c + k] + gi[c + k]);
                    const double gg = tanh(gates[2 * c + k] + gi[2 * c + k]), og = sigm(gates[3 * c + k] + gi[3 * c + k]);
                    cs[l * c + k] = fg * cs[l * c + k] + ig * gg;
                    h[l * c + k] = og * tanh(cs[l * c + k]);
                }
            }
            const double *ctl = h + (layers - 1) * c;
            memcpy(cr, ctl, (size_t)c * sizeof *cr);
            for (int64_t j = 0; j < 2 * r; j++) {
                const int64_t len = j % 2 ? 3 * w + 6 : w + 6;
                affine(hw[j], hb[j], ctl, len, c, ho);
                double *wt = wts + j * n;
                ref_address(mem, n, w, ho, top_k, wt);
                if (j % 2 == 0) {
                    double *rd = cr + c + (j / 2) * w;
                    for (int64_t k = 0; k < w; k++) {
                        double s = 0.0;
                        for (int64_t i = 0; i < n; i++)
                            s += wt[i] * mem[i * w + k];
                        rd[k] = s;
                    }
                    for (int64_t i = 0; i < n; i++)
                        rw[((b * steps + t) * r + j / 2) * n + i] = wt[i];
                } else {
                    for (int64_t i = 0; i < n; i++)
                        for (int64_t k = 0; k < w; k++)
                            mem[i * w + k] = mem[i * w + k] * (1.0 - wt[i] * sigm(ho[w + 6 + k])) +
                                             wt[i] * ho[2 * w + 6 + k];
                }
            }
            affine(fcw, fcb, cr, o.output_size, c + r * w, y + (b * steps + t) * o.output_size);
            for (int64_t k = 0; k < o.output_size; k++)
                y[(b * steps + t) * o.output_size + k] = sigm(y[(b * steps + t) * o.output_size + k]);
        }
        memcpy(mem_out + b * n * w, mem, (size_t)(n * w) * sizeof *mem);
    }
    for (int64_t l = 0; l < layers; l++) {
        free(wih[l]);
        free(whh[l]);
        free(bih[l]);
        free(bhh[l]);
    }
    for (int64_t j = 0; j < 2 * r; j++) {
        free(hw[j]);
        free(hb[j]);
    }
    for (int64_t i = 0; i < r; i++)
        free(rb[i]);
    free(hbias), free(cbias), free(fcw), free(fcb), free(mbias), free(h), free(cs), free(gates), free(zin);
    free(cr), free(mem), free(wts), free(ho), free(gi);
}

/* ---- forward against the reference ---------------------------------------------------------- */

typedef struct run_out {
    float *y, *rw, *mem;
} run_out;

static run_out run(const attn_memrnn *m, attn_workspace *ws, int64_t batch, int64_t steps, const float *x)
{
    attn_memrnn_options o;
    ASSERT_OK(attn_memrnn_get_options(m, &o));
    run_out r = {xmalloc((size_t)(batch * steps * o.output_size) * sizeof(float)),
                 xmalloc((size_t)(batch * steps * o.num_heads * o.memory_slots) * sizeof(float)),
                 xmalloc((size_t)(batch * o.memory_slots * o.memory_width) * sizeof(float))};
    ASSERT_OK(attn_memrnn_forward(m, ws, batch, steps, x, r.y, r.rw, r.mem));
    return r;
}

static void free_run(run_out *r)
{
    free(r->y);
    free(r->rw);
    free(r->mem);
}

static void check_against_reference(const mem_cfg *c, int64_t batch, int64_t steps, uint64_t seed)
{
    attn_memrnn *m = create(c);
    randomize(m, seed);
    float *x = random_floats(batch * steps * c->in, seed + 1, 1.0);
    run_out got = run(m, NULL, batch, steps, x);
    const int64_t heads = c->heads ? c->heads : 1;
    double *y = new_doubles(batch * steps * c->out), *rw = new_doubles(batch * steps * heads * c->n);
    double *mem = new_doubles(batch * c->n * c->w);
    ref_forward(m, batch, steps, x, c->addressing == ATTN_MEMORY_SPARSE ? c->top_k : 0, y, rw, mem);
    char ctx[200];
    snprintf(ctx, sizeof ctx, "in=%lld out=%lld C=%lld L=%lld R=%lld N=%lld W=%lld %s top_k=%lld B=%lld T=%lld",
             (long long)c->in, (long long)c->out, (long long)c->c, (long long)c->layers, (long long)heads,
             (long long)c->n, (long long)c->w, c->addressing ? "SPARSE" : "DENSE", (long long)c->top_k,
             (long long)batch, (long long)steps);
    check_close_tol(ctx, "y", y, got.y, batch * steps * c->out, MEM_TOL);
    check_close_tol(ctx, "read_weights", rw, got.rw, batch * steps * heads * c->n, MEM_TOL);
    check_close_tol(ctx, "memory_out", mem, got.mem, batch * c->n * c->w, MEM_TOL);
    free(y), free(rw), free(mem), free(x);
    free_run(&got);
    attn_memrnn_destroy(m);
}

static const mem_cfg dense_cfgs[] = {
    {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = 1, .n = 6, .w = 4},
    {.in = 5, .out = 3, .c = 12, .layers = 2, .heads = 1, .n = 10, .w = 5},
    {.in = 4, .out = 4, .c = 10, .layers = 1, .heads = 2, .n = 16, .w = 8},
    {.in = 2, .out = 3, .c = 9, .layers = 2, .heads = 2, .n = 7, .w = 3},
    {.in = 1, .out = 1, .c = 1, .layers = 1, .heads = 1, .n = 1, .w = 1},
    {.in = 3, .out = 2, .c = 6, .layers = 1, .heads = 1, .n = 2, .w = 2},
};

static void test_dense_forward(void **state)
{
    (void)state;
    static const int64_t shapes[][2] = {{1, 1}, {1, 50}, {3, 1}, {3, 50}};
    for (int i = 0; i < COUNT_OF(dense_cfgs); i++)
        for (int s = 0; s < COUNT_OF(shapes); s++)
            check_against_reference(&dense_cfgs[i], shapes[s][0], shapes[s][1], (uint64_t)(100 * i + s));
}

static void test_sparse_forward(void **state)
{
    (void)state;
    static const int64_t top_ks[] = {1, 2, 3, 5};
    for (int i = 0; i < COUNT_OF(dense_cfgs); i++)
        for (int k = 0; k < COUNT_OF(top_ks); k++) {
            mem_cfg c = dense_cfgs[i];
            c.addressing = ATTN_MEMORY_SPARSE;
            c.top_k = top_ks[k];
            check_against_reference(&c, 3, 20, (uint64_t)(1000 + 10 * i + k));
        }
}

/* SPARSE with top_k >= N is DENSE bit for bit. */
static void test_sparse_all_slots_is_dense(void **state)
{
    (void)state;
    for (int i = 0; i < COUNT_OF(dense_cfgs); i++) {
        const mem_cfg *d = &dense_cfgs[i];
        for (int extra = 0; extra < 2; extra++) {
            mem_cfg s = *d;
            s.addressing = ATTN_MEMORY_SPARSE;
            s.top_k = d->n + extra * 100;
            attn_memrnn *md = create(d), *ms = create(&s);
            randomize(md, 7 + (uint64_t)i);
            randomize(ms, 7 + (uint64_t)i);
            float *x = random_floats(2 * 30 * d->in, 9, 1.0);
            run_out a = run(md, NULL, 2, 30, x), b = run(ms, NULL, 2, 30, x);
            expect_bits_equal("memrnn", "y", a.y, b.y, 2 * 30 * d->out);
            expect_bits_equal("memrnn", "read_weights", a.rw, b.rw, 2 * 30 * d->heads * d->n);
            expect_bits_equal("memrnn", "memory_out", a.mem, b.mem, 2 * d->n * d->w);
            attn_cost ca, cb;
            ASSERT_OK(attn_memrnn_cost(md, 2, 30, &ca));
            ASSERT_OK(attn_memrnn_cost(ms, 2, 30, &cb));
            assert_int_equal(ca.flops, cb.flops);
            assert_int_equal(ca.workspace_bytes, cb.workspace_bytes);
            free_run(&a), free_run(&b), free(x);
            attn_memrnn_destroy(md), attn_memrnn_destroy(ms);
        }
    }
}

/* A memory large enough for the parallel addressing (B * N >= 4096) and for the similarity in
 * several chunks of rows (the last one shorter): against the reference, and each batch element bit
 * for bit what a batch of one (addressed serially) gives. */
static void test_large_memory(void **state)
{
    (void)state;
    for (int sparse = 0; sparse < 2; sparse++) {
        const mem_cfg c = {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = 2, .n = 3001, .w = 40,
                           .addressing = sparse ? ATTN_MEMORY_SPARSE : ATTN_MEMORY_DENSE, .top_k = 8};
        check_against_reference(&c, 3, 4, 500 + (uint64_t)sparse);
        attn_memrnn *m = create(&c);
        randomize(m, 600);
        const int64_t batch = 3, steps = 4;
        float *x = random_floats(batch * steps * c.in, 601, 1.0);
        run_out all = run(m, NULL, batch, steps, x);
        for (int64_t b = 0; b < batch; b++) {
            run_out one = run(m, NULL, 1, steps, x + b * steps * c.in);
            expect_bits_equal("memrnn", "y", all.y + b * steps * c.out, one.y, steps * c.out);
            expect_bits_equal("memrnn", "read_weights", all.rw + b * steps * c.heads * c.n, one.rw, steps * c.heads * c.n);
            expect_bits_equal("memrnn", "memory_out", all.mem + b * c.n * c.w, one.mem, c.n * c.w);
            free_run(&one);
        }
        free_run(&all), free(x);
        attn_memrnn_destroy(m);
    }
}

/* top_k = 1: one step changes exactly one memory row per write head, and every read weighting is
 * one-hot. */
static void test_top1_changes_one_row(void **state)
{
    (void)state;
    for (int64_t heads = 1; heads <= 2; heads++) {
        const mem_cfg c = {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = heads, .n = 12, .w = 5,
                           .addressing = ATTN_MEMORY_SPARSE, .top_k = 1};
        attn_memrnn *m = create(&c);
        randomize(m, 77);
        const int64_t batch = 4;
        float *x = random_floats(batch * c.in, 5, 1.0), *bias = xmalloc((size_t)(c.n * c.w) * sizeof(float));
        ASSERT_OK(attn_params_get(attn_memrnn_params(m), "memory.mem_bias", bias, c.n * c.w));
        run_out r = run(m, NULL, batch, 1, x);
        for (int64_t b = 0; b < batch; b++) {
            int64_t changed = 0;
            for (int64_t i = 0; i < c.n; i++)
                changed += memcmp(r.mem + (b * c.n + i) * c.w, bias + i * c.w, (size_t)c.w * sizeof(float)) != 0;
            if (heads == 1)
                assert_int_equal(changed, 1);
            else if (changed < 1 || changed > heads)
                fail_msg("batch %lld: %lld rows changed by %lld write heads", (long long)b, (long long)changed,
                         (long long)heads);
            for (int64_t i = 0; i < heads; i++) {
                int64_t nonzero = 0;
                for (int64_t s = 0; s < c.n; s++)
                    nonzero += r.rw[(b * heads + i) * c.n + s] != 0.0f;
                assert_int_equal(nonzero, 1);
            }
        }
        free_run(&r), free(x), free(bias);
        attn_memrnn_destroy(m);
    }
}

/* ---- parameters ------------------------------------------------------------------------------ */

static void test_params_layout(void **state)
{
    (void)state;
    const mem_cfg c = {.in = 3, .out = 2, .c = 8, .layers = 2, .heads = 2, .n = 6, .w = 4};
    attn_memrnn *m = create(&c);
    attn_params *p = attn_memrnn_params(m);
    static const struct { const char *name; int64_t ndim, shape[3]; } want[] = {
        {"ntm.read0_bias", 2, {1, 4}},
        {"ntm.read1_bias", 2, {1, 4}},
        {"ntm.controller.lstm_h_bias", 3, {2, 1, 8}},
        {"ntm.controller.lstm_c_bias", 3, {2, 1, 8}},
        {"ntm.controller.lstm.weight_ih_l0", 2, {32, 11}},
        {"ntm.controller.lstm.weight_hh_l0", 2, {32, 8}},
        {"ntm.controller.lstm.bias_ih_l0", 1, {32}},
        {"ntm.controller.lstm.bias_hh_l0", 1, {32}},
        {"ntm.controller.lstm.weight_ih_l1", 2, {32, 8}},
        {"ntm.controller.lstm.weight_hh_l1", 2, {32, 8}},
        {"ntm.controller.lstm.bias_ih_l1", 1, {32}},
        {"ntm.controller.lstm.bias_hh_l1", 1, {32}},
        {"ntm.heads.0.fc_read.weight", 2, {10, 8}},
        {"ntm.heads.0.fc_read.bias", 1, {10}},
        {"ntm.heads.1.fc_write.weight", 2, {18, 8}},
        {"ntm.heads.1.fc_write.bias", 1, {18}},
        {"ntm.heads.2.fc_read.weight", 2, {10, 8}},
        {"ntm.heads.2.fc_read.bias", 1, {10}},
        {"ntm.heads.3.fc_write.weight", 2, {18, 8}},
        {"ntm.heads.3.fc_write.bias", 1, {18}},
        {"ntm.fc.weight", 2, {2, 16}},
        {"ntm.fc.bias", 1, {2}},
        {"memory.mem_bias", 2, {6, 4}},
    };
    assert_int_equal(attn_params_count(p), COUNT_OF(want));
    int64_t total = 0;
    for (int i = 0; i < COUNT_OF(want); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        assert_string_equal(info.name, want[i].name);
        assert_int_equal(info.ndim, want[i].ndim);
        for (int d = 0; d < want[i].ndim; d++)
            assert_int_equal(info.shape[d], want[i].shape[d]);
        total += info.count;
    }
    attn_cost cost;
    ASSERT_OK(attn_memrnn_cost(m, 1, 1, &cost));
    assert_int_equal(cost.params, total);
    /* The aliases of PyTorch's state_dict find memory.mem_bias, and setting through one is seen
     * under the others. */
    static const char *const aliases[] = {"ntm.memory.mem_bias", "ntm.heads.0.memory.mem_bias",
                                          "ntm.heads.1.memory.mem_bias", "ntm.heads.2.memory.mem_bias",
                                          "ntm.heads.3.memory.mem_bias"};
    float *v = random_floats(24, 3, 1.0), got[24];
    for (int i = 0; i < COUNT_OF(aliases); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(p, aliases[i], &info));
        assert_string_equal(info.name, "memory.mem_bias");
        v[0] = (float)i;
        ASSERT_OK(attn_params_set(p, aliases[i], v, 24));
        ASSERT_OK(attn_params_get(p, "memory.mem_bias", got, 24));
        expect_bits_equal("memrnn", "mem_bias through an alias", v, got, 24);
    }
    EXPECT_FAILURE(attn_params_find(p, "ntm.heads.4.memory.mem_bias", &(attn_tensor_info){0}), ATTN_E_NOT_FOUND,
                   "attn_params_find", NULL, "alias of a head that does not exist");
    free(v);

    /* save and load round trip, also with REJECT_UNKNOWN */
    char path[512];
    const char *dir = getenv("ATTN_TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/memrnn_%d.safetensors", dir ? dir : ".", (int)getpid());
    randomize(m, 5);
    ASSERT_OK(attn_params_save(p, path, NULL));
    attn_memrnn *m2 = create(&c);
    ASSERT_OK(attn_params_load(attn_memrnn_params(m2), path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    float *x = random_floats(2 * 4 * c.in, 1, 1.0);
    run_out a = run(m, NULL, 2, 4, x), b = run(m2, NULL, 2, 4, x);
    expect_bits_equal("memrnn", "y after a save/load round trip", a.y, b.y, 2 * 4 * c.out);
    free_run(&a), free_run(&b), free(x);
    remove(path);
    attn_memrnn_destroy(m2);
    attn_memrnn_destroy(m);
}

/* pytorch-ntm's reset_parameters laws (docs/memory.md): bounds of the uniform tensors, zeros, and
 * the spread of the normal ones. */
static void test_params_init(void **state)
{
    (void)state;
    const mem_cfg c = {.in = 7, .out = 5, .c = 40, .layers = 2, .heads = 2, .n = 64, .w = 20};
    attn_memrnn *m = create(&c);
    attn_params *p = attn_memrnn_params(m);
    const int64_t ci = c.in + c.heads * c.w;
    const struct { const char *name; int law; double a; } laws[] = {
        {"ntm.read0_bias", 2, 0.01},
        {"ntm.read1_bias", 2, 0.01},
        {"ntm.controller.lstm_h_bias", 2, 0.05},
        {"ntm.controller.lstm_c_bias", 2, 0.05},
        {"ntm.controller.lstm.weight_ih_l0", 0, 5.0 / sqrt((double)(ci + c.c))},
        {"ntm.controller.lstm.weight_hh_l1", 0, 5.0 / sqrt((double)(ci + c.c))},
        {"ntm.controller.lstm.bias_ih_l0", 1, 0.0},
        {"ntm.controller.lstm.bias_hh_l1", 1, 0.0},
        {"ntm.heads.0.fc_read.weight", 0, 1.4 * sqrt(6.0 / (double)(c.c + c.w + 6))},
        {"ntm.heads.3.fc_write.weight", 0, 1.4 * sqrt(6.0 / (double)(c.c + 3 * c.w + 6))},
        {"ntm.heads.1.fc_write.bias", 2, 0.01},
        {"ntm.fc.weight", 0, sqrt(6.0 / (double)(c.c + c.heads * c.w + c.out))},
        {"ntm.fc.bias", 2, 0.01},
        {"memory.mem_bias", 0, 1.0 / sqrt((double)(c.n + c.w))},
    };
    for (int i = 0; i < COUNT_OF(laws); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_find(p, laws[i].name, &info));
        double *v = get_f64(p, laws[i].name, info.count);
        double mx = 0.0, ss = 0.0;
        for (int64_t k = 0; k < info.count; k++) {
            mx = fmax(mx, fabs(v[k]));
            ss += v[k] * v[k];
        }
        const double rms = sqrt(ss / (double)info.count);
        if (laws[i].law == 0 && !(mx <= laws[i].a * (1 + 1e-6) && mx > 0.8 * laws[i].a))
            fail_msg("%s: max |v| %g for U(-%g, %g)", laws[i].name, mx, laws[i].a, laws[i].a);
        if (laws[i].law == 1 && mx != 0.0)
            fail_msg("%s: not all zero", laws[i].name);
        if (laws[i].law == 2 && !(rms > 0.5 * laws[i].a && rms < 1.6 * laws[i].a))
            fail_msg("%s: rms %g for N(0, %g^2)", laws[i].name, rms, laws[i].a);
        free(v);
    }
    attn_memrnn_destroy(m);
}

/* ---- cost and workspace ------------------------------------------------------------------------ */

static void test_cost(void **state)
{
    (void)state;
    const mem_cfg cfgs[] = {
        {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = 1, .n = 6, .w = 4},
        {.in = 5, .out = 3, .c = 12, .layers = 2, .heads = 2, .n = 10, .w = 5},
        {.in = 5, .out = 3, .c = 12, .layers = 3, .heads = 2, .n = 100, .w = 7, .addressing = ATTN_MEMORY_SPARSE,
         .top_k = 4},
    };
    for (int i = 0; i < COUNT_OF(cfgs); i++) {
        const mem_cfg *c = &cfgs[i];
        attn_memrnn *m = create(c);
        for (int64_t batch = 1; batch <= 3; batch += 2) {
            const int64_t steps = 7, r = c->heads, n = c->n, w = c->w;
            const int64_t kept = c->addressing == ATTN_MEMORY_SPARSE && c->top_k < n ? c->top_k : n;
            int64_t per = 2 * 4 * c->c * (c->in + r * w + c->c) + (c->layers - 1) * 2 * 4 * c->c * 2 * c->c;
            per += 2 * c->c * r * (4 * w + 12) + 2 * c->out * (c->c + r * w);
            per += r * (4 * n * w + 2 * kept * w + 4 * kept * w);
            const int64_t f = 4, chunk = 8192 / w, chunks = (n + chunk - 1) / chunk; /* rows per GEMV */
            int64_t ws = round64(f * batch * n * w) + round64(f * batch * n) + round64(f * batch * 2 * r * n) +
                         2 * round64(f * c->layers * batch * c->c) + round64(f * batch * 4 * c->c) +
                         round64(f * batch * r * w) + round64(f * batch * r * (4 * w + 12)) +
                         round64(f * batch * 2 * n) + round64(f * batch * n) +
                         (kept < n ? round64(8 * batch * 2 * r * kept) : round64(f * batch * chunks * w));
            attn_cost cost;
            ASSERT_OK(attn_memrnn_cost(m, batch, steps, &cost));
            assert_int_equal(cost.flops, per * batch * steps);
            assert_int_equal(cost.workspace_bytes, ws);
            /* forward reserves exactly that */
            attn_workspace *wsp;
            ASSERT_OK(attn_workspace_create(&wsp));
            float *x = random_floats(batch * steps * c->in, 2, 1.0);
            run_out a = run(m, wsp, batch, steps, x), b = run(m, NULL, batch, steps, x);
            assert_int_equal(attn_workspace_size(wsp), ws);
            expect_bits_equal("memrnn", "y with and without a workspace", a.y, b.y, batch * steps * c->out);
            /* reusing a larger workspace gives the same result */
            run_out d = run(m, wsp, batch, steps, x);
            expect_bits_equal("memrnn", "y with a reused workspace", a.y, d.y, batch * steps * c->out);
            free_run(&a), free_run(&b), free_run(&d), free(x);
            attn_workspace_destroy(wsp);
        }
        attn_memrnn_destroy(m);
    }
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_options_init(void **state)
{
    (void)state;
    attn_memrnn_options o;
    memset(&o, 0xff, sizeof o);
    ASSERT_OK(attn_memrnn_options_init(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.input_size, 0);
    assert_int_equal(o.output_size, 0);
    assert_int_equal(o.controller_size, 0);
    assert_int_equal(o.controller_layers, 1);
    assert_int_equal(o.num_heads, 1);
    assert_int_equal(o.memory_slots, 0);
    assert_int_equal(o.memory_width, 0);
    assert_int_equal(o.addressing, ATTN_MEMORY_DENSE);
    assert_int_equal(o.top_k, 0);
    assert_int_equal(o.flags, 0);
    EXPECT_FAILURE(attn_memrnn_options_init(NULL), ATTN_E_INVALID_ARG, "attn_memrnn_options_init", "options",
                   "options_init(NULL)");
}

static void expect_create_failure(const attn_memrnn_options *o, attn_status want, const char *args, const char *what)
{
    attn_memrnn *m = (attn_memrnn *)(uintptr_t)0x1;
    EXPECT_FAILURE(attn_memrnn_create(&m, o), want, "attn_memrnn_create", args, what);
    if (m != NULL)
        fail_msg("%s: *out is not NULL after a failed create", what);
}

static void test_create_errors(void **state)
{
    (void)state;
    const mem_cfg base = {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = 1, .n = 6, .w = 4};
    const int64_t big = INT32_MAX / 8;
    static const char *const fields[] = {"input_size", "output_size", "controller_size", "controller_layers",
                                         "num_heads", "memory_slots", "memory_width"};
    for (int f = 0; f < COUNT_OF(fields); f++) {
        const int64_t bad[] = {0, -1, HUGE_SIZE};
        for (int k = 0; k < COUNT_OF(bad); k++) {
            attn_memrnn_options o = cfg_options(&base);
            int64_t *field[] = {&o.input_size, &o.output_size, &o.controller_size, &o.controller_layers,
                                &o.num_heads, &o.memory_slots, &o.memory_width};
            *field[f] = bad[k];
            char what[96];
            snprintf(what, sizeof what, "%s = %lld", fields[f], (long long)bad[k]);
            expect_create_failure(&o, ATTN_E_INVALID_ARG, fields[f], what);
        }
    }
    attn_memrnn_options o = cfg_options(&base);
    o.addressing = 2;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "addressing", "addressing 2");
    o.addressing = -1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "addressing", "addressing -1");
    o = cfg_options(&base);
    o.addressing = ATTN_MEMORY_SPARSE;
    o.top_k = 0;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "top_k", "SPARSE top_k 0");
    o.top_k = -3;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "top_k", "SPARSE top_k -3");
    o = cfg_options(&base);
    o.top_k = -1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "top_k", "DENSE top_k -1");
    o = cfg_options(&base);
    o.flags = 1;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "flags", "flags 1");
    o = cfg_options(&base);
    o.struct_size = 4;
    expect_create_failure(&o, ATTN_E_INVALID_ARG, "struct_size", "struct_size 4");
    expect_create_failure(NULL, ATTN_E_INVALID_ARG, "options", "NULL options");
    o = cfg_options(&base);
    EXPECT_FAILURE(attn_memrnn_create(NULL, &o), ATTN_E_INVALID_ARG, "attn_memrnn_create", "out", "NULL out");
    /* a newer caller's struct: unknown nonzero bytes are refused, zero bytes accepted */
    unsigned char *grown = grown_options(&o, sizeof o, sizeof o + 16);
    attn_memrnn *m = NULL;
    ASSERT_OK(attn_memrnn_create(&m, (const attn_memrnn_options *)grown));
    attn_memrnn_destroy(m);
    grown[sizeof o + 3] = 1;
    expect_create_failure((const attn_memrnn_options *)grown, ATTN_E_UNSUPPORTED, "struct_size", "grown struct");
    free(grown);
    /* products beyond BLAS's indices */
    o = cfg_options(&base);
    o.num_heads = 1 << 16;
    o.memory_width = big;
    expect_create_failure(&o, ATTN_E_SHAPE, "num_heads|memory_width", "num_heads x memory_width overflow");
    /* sizes whose parameters cannot be allocated */
    o = cfg_options(&base);
    o.memory_slots = big;
    o.memory_width = big;
    expect_create_failure(&o, ANY_ERROR, NULL, "N x W beyond memory");
}

static void test_call_errors(void **state)
{
    (void)state;
    const mem_cfg c = {.in = 3, .out = 2, .c = 8, .layers = 1, .heads = 2, .n = 6, .w = 4};
    attn_memrnn *m = create(&c);
    const int64_t batch = 2, steps = 3;
    float *x = random_floats(batch * steps * c.in, 1, 1.0);
    float *y = filled_floats(batch * steps * c.out, 7.0f), *rw = filled_floats(batch * steps * 2 * c.n, 7.0f);
    float *mem = filled_floats(batch * c.n * c.w, 7.0f);
    static const char fn[] = "attn_memrnn_forward";
    EXPECT_FAILURE(attn_memrnn_forward(NULL, NULL, batch, steps, x, y, rw, mem), ATTN_E_INVALID_ARG, fn, "memrnn",
                   "NULL handle");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, NULL, y, rw, mem), ATTN_E_INVALID_ARG, fn, "x",
                   "NULL x");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, x, NULL, rw, mem), ATTN_E_INVALID_ARG, fn, "y",
                   "NULL y");
    const int64_t bad[] = {0, -1};
    for (int k = 0; k < 2; k++) {
        EXPECT_FAILURE(attn_memrnn_forward(m, NULL, bad[k], steps, x, y, rw, mem), ATTN_E_SHAPE, fn, "batch",
                       "batch < 1");
        EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, bad[k], x, y, rw, mem), ATTN_E_SHAPE, fn, "seq_len",
                       "seq_len < 1");
    }
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, HUGE_SIZE, steps, x, y, rw, mem), ATTN_E_SHAPE, fn, "batch",
                   "huge batch");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, HUGE_SIZE, x, y, rw, mem), ATTN_E_SHAPE, fn, "seq_len",
                   "huge seq_len");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, (int64_t)1 << 30, (int64_t)1 << 30, x, y, rw, mem), ATTN_E_SHAPE, fn,
                   "batch", "batch x seq_len overflow");
    /* aliasing */
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, x, (float *)x, rw, mem), ATTN_E_INVALID_ARG, fn,
                   "y", "y overlaps x");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, x, y, y + 1, mem), ATTN_E_INVALID_ARG, fn,
                   "read_weights", "read_weights overlaps y");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, x, y, rw, (float *)x + 2), ATTN_E_INVALID_ARG, fn,
                   "memory_out", "memory_out overlaps x");
    EXPECT_FAILURE(attn_memrnn_forward(m, NULL, batch, steps, x, y, rw, rw + 5), ATTN_E_INVALID_ARG, fn,
                   "memory_out", "memory_out overlaps read_weights");
    assert_true(all_equal(y, batch * steps * c.out, 7.0f));
    assert_true(all_equal(rw, batch * steps * 2 * c.n, 7.0f));
    assert_true(all_equal(mem, batch * c.n * c.w, 7.0f));
    /* optional outputs may be NULL */
    ASSERT_OK(attn_memrnn_forward(m, NULL, batch, steps, x, y, NULL, NULL));

    attn_cost cost;
    EXPECT_FAILURE(attn_memrnn_cost(NULL, 1, 1, &cost), ATTN_E_INVALID_ARG, "attn_memrnn_cost", "memrnn",
                   "cost NULL handle");
    EXPECT_FAILURE(attn_memrnn_cost(m, 1, 1, NULL), ATTN_E_INVALID_ARG, "attn_memrnn_cost", "out", "cost NULL out");
    EXPECT_FAILURE(attn_memrnn_cost(m, 0, 1, &cost), ATTN_E_SHAPE, "attn_memrnn_cost", "batch", "cost batch 0");
    EXPECT_FAILURE(attn_memrnn_cost(m, 1, -2, &cost), ATTN_E_SHAPE, "attn_memrnn_cost", "seq_len", "cost seq_len");
    EXPECT_FAILURE(attn_memrnn_cost(m, HUGE_SIZE, 1, &cost), ATTN_E_SHAPE, "attn_memrnn_cost", "batch",
                   "cost huge batch");
    attn_memrnn_options o;
    EXPECT_FAILURE(attn_memrnn_get_options(NULL, &o), ATTN_E_INVALID_ARG, "attn_memrnn_get_options", "memrnn",
                   "get_options NULL handle");
    EXPECT_FAILURE(attn_memrnn_get_options(m, NULL), ATTN_E_INVALID_ARG, "attn_memrnn_get_options", "out",
                   "get_options NULL out");
    ASSERT_OK(attn_memrnn_get_options(m, &o));
    assert_int_equal(o.num_heads, 2);
    assert_null(attn_memrnn_params(NULL));
    attn_memrnn_destroy(NULL);
    free(x), free(y), free(rw), free(mem);
    attn_memrnn_destroy(m);
}

/* NaN in x is not rejected: it spreads through that batch element from its step on, and leaves the
 * other batch elements exactly as without it. */
static void test_nan_input(void **state)
{
    (void)state;
    for (int sparse = 0; sparse < 2; sparse++) {
        const mem_cfg c = {.in = 3, .out = 2, .c = 8, .layers = 2, .heads = 2, .n = 9, .w = 4,
                           .addressing = sparse ? ATTN_MEMORY_SPARSE : ATTN_MEMORY_DENSE, .top_k = 2};
        attn_memrnn *m = create(&c);
        randomize(m, 12);
        const int64_t batch = 2, steps = 6, bad_t = 2;
        float *x = random_floats(batch * steps * c.in, 4, 1.0);
        run_out clean = run(m, NULL, batch, steps, x);
        x[(0 * steps + bad_t) * c.in + 1] = NAN;
        run_out got = run(m, NULL, batch, steps, x);
        for (int64_t t = 0; t < steps; t++)
            for (int64_t k = 0; k < c.out; k++) {
                const float v = got.y[(0 * steps + t) * c.out + k];
                if (t < bad_t ? v != clean.y[(0 * steps + t) * c.out + k] : !isnan(v))
                    fail_msg("%s: y[0, %lld, %lld] = %g", sparse ? "SPARSE" : "DENSE", (long long)t, (long long)k, v);
            }
        expect_bits_equal("memrnn", "y of the clean batch element", clean.y + steps * c.out, got.y + steps * c.out,
                          steps * c.out);
        expect_bits_equal("memrnn", "memory of the clean batch element", clean.mem + c.n * c.w, got.mem + c.n * c.w,
                          c.n * c.w);
        free_run(&clean), free_run(&got), free(x);
        attn_memrnn_destroy(m);
    }
}

/* ---- two threads on one handle ------------------------------------------------------------------ */

typedef struct thread_job {
    const attn_memrnn *m;
    int64_t batch, steps, n_y, n_rw, n_mem;
    const float *x;
    const run_out *ref; /* single-threaded result */
    int bad_call;       /* which failing call checks the thread-local message */
    thread_counts counts;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    job->counts.fresh_error_not_empty = attn_last_error()[0] != '\0';
    attn_workspace *ws = NULL;
    float *y = malloc((size_t)job->n_y * sizeof *y), *rw = malloc((size_t)job->n_rw * sizeof *rw);
    float *mem = malloc((size_t)job->n_mem * sizeof *mem);
    const int ready = attn_workspace_create(&ws) == ATTN_OK && y && rw && mem;
    pthread_barrier_wait(job->counts.start);
    if (!ready) {
        job->counts.forward_failures = -1;
    } else {
        for (int it = 0; it < 20; it++) {
            if (attn_memrnn_forward(job->m, ws, job->batch, job->steps, job->x, y, rw, mem) != ATTN_OK) {
                job->counts.forward_failures++;
                continue;
            }
            if (memcmp(y, job->ref->y, (size_t)job->n_y * sizeof *y) ||
                memcmp(rw, job->ref->rw, (size_t)job->n_rw * sizeof *rw) ||
                memcmp(mem, job->ref->mem, (size_t)job->n_mem * sizeof *mem))
                job->counts.mismatches++;
            attn_memrnn_forward(job->m, NULL, job->bad_call ? 2 : 0, job->bad_call ? 0 : 3, job->x, y, NULL, NULL);
            if (!has_word(attn_last_error(), job->bad_call ? "seq_len" : "batch"))
                job->counts.message_wrong++;
        }
    }
    attn_workspace_destroy(ws);
    free(y), free(rw), free(mem);
    return NULL;
}

/* Each thread has its own input: threads computing the same data would hide a shared buffer. */
static void test_threads(void **state)
{
    (void)state;
    for (int sparse = 0; sparse < 2; sparse++) {
        const mem_cfg c = {.in = 4, .out = 3, .c = 16, .layers = 2, .heads = 2, .n = 20, .w = 6,
                           .addressing = sparse ? ATTN_MEMORY_SPARSE : ATTN_MEMORY_DENSE, .top_k = 3};
        attn_memrnn *m = create(&c);
        randomize(m, 41);
        const int64_t batch = 3, steps = 12;
        thread_job jobs[2];
        float *x[2];
        run_out ref[2];
        for (int t = 0; t < 2; t++) {
            x[t] = random_floats(batch * steps * c.in, 50 + (uint64_t)t, 1.0);
            ref[t] = run(m, NULL, batch, steps, x[t]);
            jobs[t] = (thread_job){.m = m, .batch = batch, .steps = steps, .n_y = batch * steps * c.out,
                                   .n_rw = batch * steps * c.heads * c.n, .n_mem = batch * c.n * c.w, .x = x[t],
                                   .ref = &ref[t], .bad_call = t};
        }
        EXPECT_FAILURE(attn_memrnn_cost(m, 1, -5, &(attn_cost){0}), ATTN_E_SHAPE, "attn_memrnn_cost", "seq_len",
                       "main thread's error");
        run_thread_pair(thread_main, (void *[]){&jobs[0], &jobs[1]},
                        (thread_counts *[]){&jobs[0].counts, &jobs[1].counts}, sparse ? "SPARSE" : "DENSE");
        if (!has_word(attn_last_error(), "seq_len"))
            fail_msg("the main thread's message changed: \"%s\"", attn_last_error());
        for (int t = 0; t < 2; t++)
            free_run(&ref[t]), free(x[t]);
        attn_memrnn_destroy(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_params_init),
        cmocka_unit_test(test_dense_forward),
        cmocka_unit_test(test_sparse_forward),
        cmocka_unit_test(test_sparse_all_slots_is_dense),
        cmocka_unit_test(test_top1_changes_one_row),
        cmocka_unit_test(test_large_memory),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_nan_input),
    };
    return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
