/* Element-wise kernels shared by every family.
 *
 * libm's expf/tanhf are scalar calls that keep the compiler from vectorizing a loop; the gate math of
 * a recurrent step is otherwise a large share of its time. These are the Cephes single-precision
 * algorithms (range reduction + minimax polynomial, within ~2 ulp of libm), written so that gcc
 * vectorizes the loops; target_clones adds AVX2 and AVX-512 variants chosen at load time. */
#include <math.h>
#include <string.h>

#include "core/core.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(ATTN_NO_CLONES)
#define ATTN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ATTN_VECTOR_CLONES
#endif
/* Helpers must be inlined into each clone, or the clones lose vectorization. */
#if defined(__GNUC__)
#define ATTN_INLINE static inline __attribute__((always_inline))
#else
#define ATTN_INLINE static inline
#endif

ATTN_INLINE float bits_to_float(int32_t bits)
{
    union { int32_t i; float f; } u = {.i = bits};
    return u.f;
}

/* Cephes expf, for arguments clamped to [-87.3, 88] so that 2^n stays a normal number; below that it
 * returns 0 (NaN stays NaN).
 * n = round(x / ln 2) comes from the 1.5 * 2^23 trick rather than floor(): gcc does not vectorize the
 * compare-and-select form of floor for AVX targets. */
ATTN_INLINE float exp_approx(float x)
{
    const bool underflow = x < -87.3365447505531f; /* also exp(-inf) of masked scores: exactly 0 */
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.3365447505531f ? -87.3365447505531f : x;
    const float round_magic = 12582912.0f;
    float n = (x * 1.44269504088896341f + round_magic) - round_magic;
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    float z = x * x;
    float p = 1.9875691500e-4f;
    p = p * x + 1.3981999507e-3f;
    p = p * x + 8.3334519073e-3f;
    p = p * x + 4.1665795894e-2f;
    p = p * x + 1.6666665459e-1f;
    p = p * x + 5.0000001201e-1f;
    p = p * z + x + 1.0f;
    n = n == n ? n : 0.0f; /* converting a NaN to int is undefined behaviour; p carries the NaN */
    float r = p * bits_to_float(((int32_t)n + 127) << 23);
    return underflow ? 0.0f : r;
}

ATTN_INLINE int32_t float_to_bits(float f)
{
    union { float f; int32_t i; } u = {.f = f};
    return u.i;
}

/* Cephes logf for x >= FLT_MIN (x = m 2^e, m in [sqrt(1/2), sqrt(2)), a polynomial in m - 1);
 * -INFINITY below (0 and denormals: exp of gamma times it is then exactly 0), NaN stays NaN. */
ATTN_INLINE float log_approx(float x)
{
    const bool tiny = x < 1.17549435e-38f;
    const int32_t bits = float_to_bits(tiny ? 1.0f : x);
    float e = (float)(((bits >> 23) & 0xff) - 126);
    float m = bits_to_float((bits & 0x007fffff) | 0x3f000000); /* in [0.5, 1) */
    const bool low = m < 0.707106781186547524f;
    e = low ? e - 1.0f : e;
    m = low ? m + m - 1.0f : m - 1.0f;
    const float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float y = p * m * z - 2.12194440e-4f * e - 0.5f * z;
    const float r = m + y + 0.693359375f * e;
    return x != x ? x : tiny ? -INFINITY : r;
}

/* Cephes tanhf: an odd polynomial near 0 (where 1 - 2/(e^2x + 1) would cancel), the exp form beyond. */
ATTN_INLINE float tanh_approx(float x)
{
    float ax = x < 0.0f ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float big = 1.0f - 2.0f / (exp_approx(2.0f * ax) + 1.0f);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

ATTN_VECTOR_CLONES void attn__sigmoid(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = 1.0f / (1.0f + exp_approx(-x[i]));
}

ATTN_VECTOR_CLONES void attn__tanh(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = tanh_approx(x[i]);
}

ATTN_VECTOR_CLONES void attn__relu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

ATTN_VECTOR_CLONES void attn__add(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* Reductions keep LANES partial results in a GCC vector type (lowered to whatever width each
 * clone has), so that they vectorize without reassociating floats (-ffast-math): gcc does not
 * vectorize a max written as a compare-and-select over an array of lanes, nor the sums of one.
 * The max keeps several accumulators, or it waits on its compare-and-select chain. */
enum { LANES = 16 };
typedef float lanes_f __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t lanes_i __attribute__((vector_size(LANES * sizeof(int32_t))));

/* *acc = per lane the larger of *acc and x[0 .. LANES) (a NaN in x is skipped, as in the scalar
 * loop: testing for NaN here too made the kernel three times longer and a softmax-bound forward
 * 25 % slower; callers that must see NaN check the rare all-NaN case themselves). Pointers rather
 * than vector values: passing those is ABI-dependent (-Wpsabi). */
ATTN_INLINE void lanes_max(lanes_f *acc, const float *x)
{
    lanes_f v;
    memcpy(&v, x, sizeof v);
    const lanes_i gt = v > *acc;
    *acc = (lanes_f)((gt & (lanes_i)v) | (~gt & (lanes_i)*acc));
}

ATTN_VECTOR_CLONES float attn__max(const float *x, int64_t n)
{
    lanes_f acc[4];
    for (int a = 0; a < 4; a++)
        for (int l = 0; l < LANES; l++)
            acc[a][l] = -INFINITY;
    int64_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES)
        for (int a = 0; a < 4; a++)
            lanes_max(&acc[a], x + i + a * LANES);
    for (; i + LANES <= n; i += LANES)
        lanes_max(&acc[0], x + i);
    float m = -INFINITY;
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int a = 1; a < 4; a++)
        lanes_max(&acc[0], (const float *)&acc[a]);
    for (int l = 0; l < LANES; l++)
        m = acc[0][l] > m ? acc[0][l] : m;
    return m;
}

/* x[i] = exp(x[i] - a), or with `power` exp(a log x[i]) = x[i]^a; returns the sum. Inlined into
 * each clone with `power` a constant, so each caller gets its own branch-free loop. */
ATTN_INLINE float exp_map_sum(float *x, int64_t n, float a, bool power)
{
    lanes_f acc = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        float e[LANES];
        for (int l = 0; l < LANES; l++)
            e[l] = exp_approx(power ? a * log_approx(x[i + l]) : x[i + l] - a);
        memcpy(x + i, e, sizeof e);
        lanes_f v;
        memcpy(&v, e, sizeof v);
        acc += v;
    }
    float sum = 0.0f;
    for (; i < n; i++) {
        x[i] = exp_approx(power ? a * log_approx(x[i]) : x[i] - a);
        sum += x[i];
    }
    for (int l = 0; l < LANES; l++)
        sum += acc[l];
    return sum;
}

ATTN_VECTOR_CLONES float attn__exp_sum(float *x, int64_t n, float shift) { return exp_map_sum(x, n, shift, false); }

ATTN_VECTOR_CLONES float attn__pow_sum(float *x, int64_t n, float p) { return exp_map_sum(x, n, p, true); }

ATTN_VECTOR_CLONES void attn__scale(float *x, int64_t n, float a)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= a;
}

ATTN_VECTOR_CLONES float attn__erase_add(float *x, const float *erase, const float *add, float w, int64_t n)
{
    lanes_f acc = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) { /* in lanes: x may alias erase and add for all gcc knows */
        lanes_f v, e, a;
        memcpy(&v, x + i, sizeof v);
        memcpy(&e, erase + i, sizeof e);
        memcpy(&a, add + i, sizeof a);
        v = v * (1.0f - w * e) + w * a;
        memcpy(x + i, &v, sizeof v);
        acc += v * v;
    }
    float sum = 0.0f;
    for (; i < n; i++) {
        x[i] = x[i] * (1.0f - w * erase[i]) + w * add[i];
        sum += x[i] * x[i];
    }
    for (int l = 0; l < LANES; l++)
        sum += acc[l];
    return sum;
}

void attn__lstm_cell(int64_t n, float *gates, float *c, float *h_out)
{
    float *in = gates, *forget = gates + n, *cand = gates + 2 * n, *outg = gates + 3 * n;
    attn__sigmoid(gates, 2 * n);
    attn__tanh(cand, n);
    attn__sigmoid(outg, n);
    for (int64_t j = 0; j < n; j++) {
        c[j] = forget[j] * c[j] + in[j] * cand[j];
        in[j] = c[j]; /* the input gate is consumed: its slot holds tanh(c) next */
    }
    attn__tanh(in, n);
    for (int64_t j = 0; j < n; j++)
        h_out[j] = outg[j] * in[j];
}

bool attn__has_nan(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != x[i])
            return true;
    return false;
}

void attn__softmax(float *x, int64_t n, const uint8_t *mask)
{
    if (mask)
        for (int64_t i = 0; i < n; i++)
            x[i] = mask[i] ? -INFINITY : x[i];
    const float m = attn__max(x, n);
    if (m == -INFINITY) { /* every entry masked (zeros, never NaN), or NaN (the row turns NaN) */
        const float fill = attn__has_nan(x, n) ? NAN : 0.0f;
        for (int64_t i = 0; i < n; i++)
            x[i] = fill;
        return;
    }
    /* Otherwise a NaN or +Inf entry makes the sum NaN, and so the whole row, as in PyTorch. */
    attn__scale(x, n, 1.0f / attn__exp_sum(x, n, m));
}

/* Sum of x[i] - shift (square: of (x[i] - shift)^2) over n floats, in LANES partial sums. */
ATTN_INLINE float lanes_total(const float *x, int64_t n, float shift, bool square)
{
    lanes_f acc = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        lanes_f v;
        memcpy(&v, x + i, sizeof v);
        v -= shift;
        acc += square ? v * v : v;
    }
    float sum = 0.0f;
    for (; i < n; i++) {
        const float d = x[i] - shift;
        sum += square ? d * d : d;
    }
    for (int l = 0; l < LANES; l++)
        sum += acc[l];
    return sum;
}

ATTN_VECTOR_CLONES void attn__layer_norm(int64_t rows, int64_t width, const float *x, int64_t ldx, float *y,
                                         int64_t ldy, const float *weight, const float *bias, float eps)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        const float mean = lanes_total(xr, width, 0.0f, false) / (float)width;
        const float inv = 1.0f / sqrtf(lanes_total(xr, width, mean, true) / (float)width + eps);
        if (weight)
            for (int64_t i = 0; i < width; i++)
                yr[i] = (xr[i] - mean) * inv * weight[i] + bias[i];
        else
            for (int64_t i = 0; i < width; i++)
                yr[i] = (xr[i] - mean) * inv;
    }
}

/* erfc(z) = t exp(-z^2 + p(t)), t = 1 / (1 + z/2), for z >= 0: the form of Numerical Recipes'
 * erfcc, with p refitted (least squares on Chebyshev nodes, degree 11) over t in [0.17, 1], i.e.
 * z <= 9.8, where it is within 2.5e-9 of log(erfc(z) / t) + z^2. */
ATTN_INLINE float erfc_poly(float t)
{
    float p = -6.8090014239e-02f;
    p = p * t + 2.9119459910e-01f;
    p = p * t - 2.4669959746e-01f;
    p = p * t - 7.9041421305e-01f;
    p = p * t + 2.1255518214e+00f;
    p = p * t - 2.0436891903e+00f;
    p = p * t + 9.2798695616e-01f;
    p = p * t - 4.6382576907e-01f;
    p = p * t + 1.7001444413e-01f;
    p = p * t + 3.6248920521e-01f;
    p = p * t + 1.0010307775e+00f;
    return p * t - 1.2655490215e+00f;
}

/* x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2 = 1 - erfc(|x| / sqrt 2) / 2 for x >= 0. The
 * exponent -x^2/2 is split as -xh^2/2 - xl (|x| + xh)/2 with xh = |x| cut to 12 significant bits
 * (xh^2 is then exact), so that its rounding does not grow with x^2 in the far tail (80 ulp at
 * x = -13 otherwise), and exp(-xh^2/2) multiplies last, so that the result is rounded to a
 * subnormal only when it is one. Beyond |x| = 13.5 erfc underflows: Phi is 0 or 1 (+Inf stays
 * +Inf; -Inf gives NaN, as x * 0 in PyTorch's formula). */
ATTN_INLINE float gelu_approx(float x)
{
    const float ax = x < 0.0f ? -x : x;
    const float t = 1.0f / (1.0f + 0.35355339059327376f * ax); /* 1 / (1 + z/2), z = |x| / sqrt 2 */
    const float xh = bits_to_float(float_to_bits(ax) & ~(int32_t)0xfff), xl = ax - xh;
    /* x erfc(z) / 2 e^(-xh^2/2) */
    float tail = 0.5f * x * t * exp_approx(erfc_poly(t) - 0.5f * xl * (ax + xh));
    tail = ax > 13.5f ? 0.0f * x : tail;
    const float x_erfc = tail * exp_approx(-0.5f * xh * xh); /* x erfc(z) / 2 */
    return x <= 0.0f ? x_erfc : x > 13.5f ? x : x - x_erfc;
}

ATTN_VECTOR_CLONES void attn__gelu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = gelu_approx(x[i]);
}
