/* The element-wise kernels of src/core/kernels.c against libm (double), over the whole float range that
 * matters, at every vector-tail length, GELU and LayerNorm included; and the softmax contract
 * (max-subtracted, masks, fully masked rows give zeros, never NaN). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

enum { N = 4099 }; /* not a multiple of any vector width, so every tail path runs */

/* Arguments spread over [lo, hi] plus the edges. */
static void fill(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)i / (float)(n - 1);
}

/* Error in units of the float spacing at the reference value (absolute near 0, where the kernels'
 * relative error is not the meaningful measure below FLT_MIN-scale values). */
static double ulps(float got, double want)
{
    double spacing = fmax(ldexp(fabs(want), -23), ldexp(1.0, -149));
    return fabs((double)got - want) / spacing;
}

static void check_unary(void (*kernel)(float *, int64_t), double (*ref)(double), float lo, float hi, double max_ulps)
{
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    fill(x, N, lo, hi);
    for (int64_t n = 1; n <= 67; n += 11) { /* short lengths: scalar and tail paths */
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i * (N / n)];
        kernel(y, n);
        for (int64_t i = 0; i < n; i++)
            assert_true(ulps(y[i], ref(x[i * (N / n)])) <= max_ulps);
    }
    for (int64_t i = 0; i < N; i++)
        y[i] = x[i];
    kernel(y, N);
    double worst = 0;
    for (int64_t i = 0; i < N; i++)
        worst = fmax(worst, ulps(y[i], ref(x[i])));
    print_message("worst error %.2f ulp over [%g, %g]\n", worst, lo, hi);
    assert_true(worst <= max_ulps);
    free(x);
    free(y);
}

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }
static double relu_ref(double x) { return x > 0 ? x : 0; }

static void test_sigmoid(void **state)
{
    (void)state;
    check_unary(attn__sigmoid, sigmoid_ref, -30.0f, 30.0f, 4.0);
    check_unary(attn__sigmoid, sigmoid_ref, -1e-3f, 1e-3f, 4.0);
}

static void test_tanh(void **state)
{
    (void)state;
    check_unary(attn__tanh, tanh, -12.0f, 12.0f, 4.0);
    check_unary(attn__tanh, tanh, -0.7f, 0.7f, 4.0); /* across the polynomial/exp switch at 0.625 */
    check_unary(attn__tanh, tanh, -1e-4f, 1e-4f, 4.0);
}

static void test_relu(void **state)
{
    (void)state;
    check_unary(attn__relu, relu_ref, -5.0f, 5.0f, 0.0);
}

static void test_saturation_and_nan(void **state)
{
    (void)state;
    float x[] = {-INFINITY, -1e30f, -100.0f, 100.0f, 1e30f, INFINITY, NAN};
    float s[7], t[7];
    for (int i = 0; i < 7; i++)
        s[i] = t[i] = x[i];
    attn__sigmoid(s, 7);
    attn__tanh(t, 7);
    const float sig_want[] = {0, 0, 0, 1, 1, 1};
    const float tanh_want[] = {-1, -1, -1, 1, 1, 1};
    for (int i = 0; i < 6; i++) {
        assert_true(fabsf(s[i] - sig_want[i]) <= 1e-30f);
        assert_true(t[i] == tanh_want[i]);
    }
    assert_true(isnan(s[6]) && isnan(t[6]));
}

static void test_exp_sum(void **state)
{
    (void)state;
    float *x = malloc(N * sizeof *x);
    fill(x, N, -80.0f, 80.0f);
    double want = 0;
    for (int64_t i = 0; i < N; i++)
        want += exp((double)x[i] - 80.0);
    float *y = malloc(N * sizeof *y);
    for (int64_t i = 0; i < N; i++)
        y[i] = x[i];
    const float sum = attn__exp_sum(y, N, 80.0f);
    assert_true(fabs(sum - want) <= 1e-6 * want);
    for (int64_t i = 0; i < N; i++)
        assert_true(ulps(y[i], exp((double)x[i] - 80.0)) <= 4.0 || fabs(y[i]) < 1e-37);
    float z[3] = {-INFINITY, -200.0f, 0.0f};
    assert_true(attn__exp_sum(z, 3, 0.0f) == 1.0f);
    assert_true(z[0] == 0.0f && z[1] == 0.0f && z[2] == 1.0f);
    free(x);
    free(y);
}

/* x^p as exp(p log x) (the NTM's sharpening): within a few ulp times p |log x| of pow, where the
 * result is a normal float; exact 0 for x = 0; NaN stays NaN. */
static double gelu_ref(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

/* GELU with the exact normal CDF (torch's approximate='none'), the negative tail included (down to
 * x = -12, where the result is still a normal float), and its special values. */
static void test_gelu(void **state)
{
    (void)state;
    check_unary(attn__gelu, gelu_ref, -12.0f, 10.0f, 4.5);
    float z[5] = {NAN, INFINITY, -INFINITY, 0.0f, -30.0f};
    attn__gelu(z, 5);
    assert_true(isnan(z[0]) && z[1] == INFINITY && isnan(z[2]) && z[3] == 0.0f && z[4] == 0.0f);
}

/* LayerNorm against double on rows with a large offset (mean 100, spread 3: a one-pass variance
 * would cancel), at leading dimensions wider than the rows, in place, and without weight and bias. */
static void test_layer_norm(void **state)
{
    (void)state;
    enum { ROWS = 7, W = 261, LD = 270 };
    float *x = malloc(ROWS * LD * sizeof *x), *y = malloc(ROWS * LD * sizeof *y), g[W], b[W];
    for (int i = 0; i < ROWS * LD; i++)
        x[i] = 100.0f + 3.0f * (float)((i * 7919) % 1000) / 1000.0f;
    for (int i = 0; i < W; i++)
        g[i] = 0.5f + (float)i / W, b[i] = (float)i / 100.0f;
    double worst = 0;
    for (int affine = 0; affine < 2; affine++)
        for (int in_place = 0; in_place < 2; in_place++) {
            for (int i = 0; i < ROWS * LD; i++) /* in place: y starts as a copy of x */
                y[i] = in_place ? x[i] : -1.0f;
            attn__layer_norm(ROWS, W, in_place ? y : x, LD, y, LD, affine ? g : NULL, affine ? b : NULL, 1e-5f);
            const float *out = y;
            for (int r = 0; r < ROWS; r++) {
                double mean = 0, var = 0;
                for (int i = 0; i < W; i++)
                    mean += x[r * LD + i];
                mean /= W;
                for (int i = 0; i < W; i++)
                    var += (x[r * LD + i] - mean) * (x[r * LD + i] - mean);
                var /= W;
                for (int i = 0; i < W; i++) {
                    double want = (x[r * LD + i] - mean) / sqrt(var + 1e-5);
                    if (affine)
                        want = want * g[i] + b[i];
                    worst = fmax(worst, fabs(out[r * LD + i] - want) / fmax(1.0, fabs(want)));
                }
                for (int i = W; !in_place && i < LD; i++) /* the gap between rows is not written */
                    assert_true(out[r * LD + i] == -1.0f);
            }
        }
    /* float's own limit here: x carries 100 * 2^-24 of rounding against a spread of 3, and so does
     * the float mean, i.e. ~1e-5 of the normalized output; a one-pass variance would be off by
     * 100^2 / 3^2 times float's epsilon, ~1e-3 */
    print_message("worst error %.3g (relative above 1)\n", worst);
    assert_true(worst <= 5e-5);
    free(x);
    free(y);
}

static void test_pow_sum(void **state)
{
    (void)state;
    static const float powers[] = {1.0f, 1.7f, 3.0f, 20.0f};
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    fill(x, N, 0.0f, 1.0f);
    for (int k = 0; k < 4; k++) {
        const float p = powers[k];
        double want = 0;
        for (int64_t i = 0; i < N; i++)
            want += pow((double)x[i], p);
        for (int64_t i = 0; i < N; i++)
            y[i] = x[i];
        const float sum = attn__pow_sum(y, N, p);
        assert_true(fabs(sum - want) <= 1e-5 * want);
        for (int64_t i = 0; i < N; i++) {
            const double ref = pow((double)x[i], p);
            if (ref > 1e-37)
                assert_true(ulps(y[i], ref) <= 4.0 + 2.0 * p * fabs(log((double)x[i])));
        }
    }
    float z[4] = {0.0f, 1.0f, NAN, 0.5f};
    const float s = attn__pow_sum(z, 4, 2.0f);
    assert_true(z[0] == 0.0f && z[1] == 1.0f && isnan(z[2]) && fabs(z[3] - 0.25f) < 1e-7f && isnan(s));
    free(x);
    free(y);
}

/* The NTM write of one memory row: x (1 - w e) + w a, and the new row's squared norm, for lengths
 * around the vector widths (every tail) against double. */
static void test_erase_add(void **state)
{
    (void)state;
    float *x = malloc(N * sizeof *x), *e = malloc(N * sizeof *e), *a = malloc(N * sizeof *a);
    float *y = malloc(N * sizeof *y);
    fill(x, N, -2.0f, 2.0f);
    fill(e, N, 0.0f, 1.0f);
    fill(a, N, -1.0f, 1.0f);
    static const int64_t lengths[] = {0, 1, 15, 16, 17, 64, 100, N};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        const int64_t n = lengths[k];
        const float w = 0.3f;
        memcpy(y, x, (size_t)n * sizeof *y);
        const float sq = attn__erase_add(y, e, a, w, n);
        double want_sq = 0;
        for (int64_t i = 0; i < n; i++) {
            const double want = (double)x[i] * (1.0 - (double)w * e[i]) + (double)w * a[i];
            want_sq += want * want;
            assert_true(fabs(y[i] - want) <= 1e-6 * (fabs((double)x[i]) + fabs((double)a[i])));
        }
        assert_true(fabs(sq - want_sq) <= 1e-5 * want_sq);
    }
    free(x), free(e), free(a), free(y);
}

static void test_max(void **state)
{
    (void)state;
    float x[37];
    for (int i = 0; i < 37; i++)
        x[i] = (float)((i * 7) % 37) - 100.0f;
    assert_true(attn__max(x, 37) == -64.0f);
    assert_true(attn__max(x, 0) == -INFINITY);
}

static void test_softmax(void **state)
{
    (void)state;
    /* Large scores: without max subtraction exp would overflow. */
    float x[5] = {1000.0f, 999.0f, 998.0f, -1000.0f, 1000.0f};
    const uint8_t mask[5] = {0, 0, 0, 0, 1};
    attn__softmax(x, 5, mask);
    const double z = 1 + exp(-1.0) + exp(-2.0);
    const double want[5] = {1 / z, exp(-1.0) / z, exp(-2.0) / z, 0, 0};
    for (int i = 0; i < 5; i++)
        assert_true(fabs(x[i] - want[i]) <= 1e-6);

    float all[3] = {1, 2, 3};
    const uint8_t every[3] = {1, 1, 1};
    attn__softmax(all, 3, every);
    for (int i = 0; i < 3; i++)
        assert_true(all[i] == 0.0f);

    float nan_row[3] = {NAN, NAN, 1.0f}; /* NaN propagates rather than reading as masked */
    attn__softmax(nan_row, 3, NULL);
    assert_true(isnan(nan_row[0]) && isnan(nan_row[2]));
    float all_nan[2] = {NAN, NAN};
    attn__softmax(all_nan, 2, NULL);
    assert_true(isnan(all_nan[0]) && isnan(all_nan[1]));

    float plain[4] = {0, 0, 0, 0};
    attn__softmax(plain, 4, NULL);
    for (int i = 0; i < 4; i++)
        assert_true(fabsf(plain[i] - 0.25f) <= 1e-7f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid), cmocka_unit_test(test_tanh),   cmocka_unit_test(test_relu),
        cmocka_unit_test(test_saturation_and_nan), cmocka_unit_test(test_exp_sum), cmocka_unit_test(test_pow_sum), cmocka_unit_test(test_erase_add),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_softmax), cmocka_unit_test(test_gelu), cmocka_unit_test(test_layer_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
