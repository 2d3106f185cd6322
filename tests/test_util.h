/*
 * test_util.h: helpers shared by the CMocka tests (test_rnn.c, test_attention.c, test_params.c):
 * status assertions, deterministic random data, float buffers, float32-vs-float64 comparisons and
 * checks of failed calls (status and the message of attn_last_error()).
 *
 * Header-only so that no target gains a source file; every function is static inline, so a test
 * that does not use one gets no unused-function warning. Include it first (after the feature-test
 * macros): it brings the headers CMocka needs, in the order it needs them.
 */
#ifndef ATTN_TEST_UTIL_H
#define ATTN_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

/* Default tolerance of the float32-vs-float64 comparisons (check_close); each test file's header
 * comment says why it suffices there. */
#define TOL 1e-5
#define ANY_ERROR INT32_MIN /* expected status of a call that must fail, with any code */
#define HUGE_SIZE (INT64_MAX / 2)
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Fails the test, naming the call, its status and attn_last_error(), unless `call` returns ATTN_OK. */
#define ASSERT_OK(call)                                                                                           \
    do {                                                                                                          \
        attn_status assert_ok_status_ = (call);                                                                   \
        if (assert_ok_status_ != ATTN_OK)                                                                         \
            fail_msg("%s returned %d (%s): %s", #call, assert_ok_status_, attn_status_str(assert_ok_status_),     \
                     attn_last_error());                                                                          \
    } while (0)

/* ---- random data and buffers --------------------------------------------------------------- */

/* splitmix64: the test data must not depend on the C library's rand(). */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-52 - 1.0; }

/* malloc that fails the test instead of returning NULL; 0 bytes still gives a pointer to free. */
/* Workspace blocks are rounded up to 64 bytes each (docs/abi.md). */
static inline int64_t round64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

static inline void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fail_msg("out of memory in the test (%zu bytes)", bytes);
    return p;
}

/* n floats uniform in [-scale, scale), the same for the same seed. */
static inline float *random_floats(int64_t n, uint64_t seed, double scale)
{
    float *a = xmalloc((size_t)n * sizeof *a);
    for (int64_t i = 0; i < n; i++)
        a[i] = (float)(scale * rng_uniform(&seed));
    return a;
}

static inline float *filled_floats(int64_t n, float v)
{
    float *a = xmalloc((size_t)n * sizeof *a);
    for (int64_t i = 0; i < n; i++)
        a[i] = v;
    return a;
}

static inline double *new_doubles(int64_t n) { return xmalloc((size_t)n * sizeof(double)); }

static inline double *to_f64(const float *a, int64_t n)
{
    double *d = new_doubles(n);
    for (int64_t i = 0; i < n; i++)
        d[i] = a[i];
    return d;
}

/* True when every element has the bits of v (so a NaN v matches only that NaN, and -0 not 0). */
static inline int all_equal(const float *a, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &v, sizeof v) != 0)
            return 0;
    return 1;
}

/* ---- comparisons ------------------------------------------------------------------------------- */

/* Fails unless max |got - ref| <= tol * max(1, max |ref|); a NaN anywhere fails. The message
 * names the worst element. */
static inline void check_close_tol(const char *ctx, const char *what, const double *ref, const float *got,
                                   int64_t n, double tol)
{
    double scale = 1.0, err = 0.0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - ref[i]);
        if (isnan(e) || e > err) {
            err = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    if (!(err <= tol * scale))
        fail_msg("%s: %s: max abs error %.3g > %.3g (= %g * max(1, %.3g)) at element %lld (got %.9g, want %.9g)",
                 ctx, what, err, tol * scale, tol, scale, (long long)at, n ? (double)got[at] : 0.0,
                 n ? ref[at] : 0.0);
}

static inline void check_close(const char *ctx, const char *what, const double *ref, const float *got, int64_t n)
{
    check_close_tol(ctx, what, ref, got, n, TOL);
}

/* check_close_tol against a float32 reference. */
static inline void check_close_f32(const char *ctx, const char *what, const float *ref, const float *got, int64_t n,
                                   double tol)
{
    double *r = to_f64(ref, n);
    check_close_tol(ctx, what, r, got, n, tol);
    free(r);
}

/* ---- error messages ------------------------------------------------------------------------ */

/* Fails the test when the n floats of a and b differ in any bit; ctx and what say which. */
static inline void expect_bits_equal(const char *ctx, const char *what, const float *a, const float *b, int64_t n)
{
    if (memcmp(a, b, (size_t)n * sizeof *a) != 0)
        fail_msg("%s: %s differ", ctx, what);
}

static inline int is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* True when the n characters of `word` occur in `s` as a whole identifier ("k" matches "k is
 * NULL", not "key"); a phrase ("count is 13") must stand whole too: neither end may touch an
 * identifier character. */
static inline int has_word_n(const char *s, const char *word, size_t n)
{
    if (n == 0)
        return 0;
    for (const char *p = strchr(s, word[0]); p; p = strchr(p + 1, word[0]))
        if (strncmp(p, word, n) == 0 && (p == s || !is_ident_char(p[-1])) && !is_ident_char(p[n]))
            return 1;
    return 0;
}

static inline int has_word(const char *s, const char *word) { return has_word_n(s, word, strlen(word)); }

/* True when `s` contains one of the '|'-separated words of `alternatives`. */
static inline int has_any_word(const char *s, const char *alternatives)
{
    for (const char *a = alternatives; *a;) {
        const size_t n = strcspn(a, "|");
        if (has_word_n(s, a, n))
            return 1;
        a += n + (a[n] == '|');
    }
    return 0;
}

/* Checks a failed call: the status (or any error for ANY_ERROR), and that attn_last_error() names
 * the function and, after it, the argument (one of the '|'-separated `args`; NULL: the function
 * alone). Use through EXPECT_FAILURE, which reports the caller's line. */
static inline void expect_failure_at(attn_status got, attn_status want, const char *fn, const char *args,
                                     const char *what, const char *file, int line)
{
    const char *msg = attn_last_error();
    const int status_ok = want == ANY_ERROR ? got < 0 : got == want;
    const char *at = msg ? strstr(msg, fn) : NULL;
    if (!status_ok || !at || (args && !has_any_word(at + strlen(fn), args))) {
        print_error("%s:%d: %s: got status %d (%s), want %d (%s); attn_last_error() = \"%s\" must name %s and "
                    "after it one of {%s}\n",
                    file, line, what, got, attn_status_str(got), want,
                    want == ANY_ERROR ? "any error" : attn_status_str(want), msg ? msg : "(NULL)", fn,
                    args ? args : "");
        _fail(file, line);
    }
}
#define EXPECT_FAILURE(call, want, fn, args, what)                                                                \
    expect_failure_at((call), (want), (fn), (args), (what), __FILE__, __LINE__)

/* A newer caller's options struct: the `size` bytes of `options` (struct_size, a uint32_t, first)
 * at the start of `big` zeroed bytes, with struct_size = big. The caller frees it. */
static inline unsigned char *grown_options(const void *options, size_t size, size_t big)
{
    unsigned char *buf = calloc(1, big);
    assert_non_null(buf);
    memcpy(buf, options, size);
    const uint32_t big_size = (uint32_t)big;
    memcpy(buf, &big_size, sizeof big_size);
    return buf;
}

/* ---- two-thread smoke tests ------------------------------------------------------------------ */

/* The part of a thread's job that run_thread_pair reads and writes: the barrier that makes both
 * threads start together (set by run_thread_pair), and what went wrong in the thread. */
typedef struct thread_counts {
    pthread_barrier_t *start;
    int forward_failures, mismatches, fresh_error_not_empty, message_wrong;
} thread_counts;

/* Runs body(job[t]) for t = 0, 1 on two threads at once; counts[t] is the thread_counts of
 * job[t]. Fails, naming ctx, unless every count of both threads is zero. */
static inline void run_thread_pair(void *(*body)(void *), void *const job[2], thread_counts *const counts[2],
                                   const char *ctx)
{
    pthread_t threads[2];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    for (int t = 0; t < 2; t++)
        counts[t]->start = &start;
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, body, job[t]), 0);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < 2; t++) {
        const thread_counts *c = counts[t];
        if (c->forward_failures || c->mismatches || c->fresh_error_not_empty || c->message_wrong)
            fail_msg("%s thread %d: %d failed forwards, %d results differing from the single-threaded one, "
                     "fresh message not empty: %d, %d wrong error messages",
                     ctx, t, c->forward_failures, c->mismatches, c->fresh_error_not_empty, c->message_wrong);
    }
}

#endif /* ATTN_TEST_UTIL_H */
