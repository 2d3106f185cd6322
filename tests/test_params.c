/*
 * test_params.c: the parameter registry and safetensors I/O (attn_params, attn/common.h, docs/params.md).
 *
 * Built twice (tests/params.cmake):
 *  - test_params: through the public API only, on a bidirectional 2-layer GRU (input 3, hidden 4),
 *    whose 16 tensors follow torch.nn.GRU's state_dict. Safetensors files are written by the test
 *    itself, byte by byte, into $ATTN_TEST_TMPDIR: every dtype with exactly representable values,
 *    shuffled header and data order, metadata, load flags, and every malformed-file path. Each
 *    failing call is checked for its status, for a message naming the function and the culprit,
 *    and for leaving every parameter bit-identical.
 *  - test_params_internal (ATTN_TEST_INTERNAL): compiled with the core sources, for what only the
 *    families see: declaration errors, aliases, the CONSTANT and NORMAL laws, alignment.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef ATTN_TEST_INTERNAL
#include "core/core.h"
#endif

#define MAX_VALUES 4096 /* floats in a snapshot of all tensors; the GRU has 552 */
#define N_GRU 16

/* The call fails with `want`, and attn_last_error() names `fn` and after it the phrase `needle`
 * (whole, as test_util.h's has_word reads it; NULL: the function alone). */
#define EXPECT_FAIL(call, want, fn, needle) EXPECT_FAILURE(call, want, fn, needle, #call)

/* ================================================================================================
 * Helpers: snapshots, deterministic values, files
 * ============================================================================================= */

/* All tensors, concatenated in index order; returns the number of floats. */
static int64_t snapshot(const attn_params *p, float *out)
{
    int64_t total = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        assert_true(total + info.count <= MAX_VALUES);
        ASSERT_OK(attn_params_get(p, info.name, out + total, info.count));
        total += info.count;
    }
    return total;
}

static void assert_unchanged(const attn_params *p, const float *before)
{
    float now[MAX_VALUES];
    int64_t n = snapshot(p, now);
    assert_memory_equal(now, before, (size_t)n * sizeof(float));
}

/* Values k/8 with |k| <= 16: exact in F32, F64, F16 and BF16, and different per tensor. */
static float value(int64_t tensor, int64_t j) { return (float)((tensor * 5 + j) % 33 - 16) / 8.0f; }

static void path_for(char *path, size_t size, const char *name)
{
    const char *dir = getenv("ATTN_TEST_TMPDIR");
    snprintf(path, size, "%s/test_params_%s", dir && *dir ? dir : ".", name);
}

typedef struct bytes {
    unsigned char *b;
    size_t n;
} bytes;

static void put(bytes *x, const void *src, size_t n)
{
    x->b = realloc(x->b, x->n + n + 1);
    assert_non_null(x->b);
    memcpy(x->b + x->n, src, n);
    x->n += n;
}

static void put_le(bytes *x, uint64_t v, int size)
{
    unsigned char le[8];
    for (int i = 0; i < size; i++, v >>= 8)
        le[i] = (unsigned char)v;
    put(x, le, (size_t)size);
}

static void putf(bytes *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(bytes *x, const char *fmt, ...)
{
    va_list args, again;
    va_start(args, fmt);
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, fmt, args);
    assert_true(n >= 0);
    char *text = xmalloc((size_t)n + 1);
    vsnprintf(text, (size_t)n + 1, fmt, again);
    va_end(again);
    va_end(args);
    put(x, text, (size_t)n);
    free(text);
}

/* `n` copies of `unit` (a string the caller frees): bulk JSON. */
static char *repeat(const char *unit, size_t n)
{
    const size_t u = strlen(unit);
    char *s = xmalloc(u * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = '\0';
    return s;
}

/* The strings up to NULL, concatenated (the caller frees it). */
static char *concat(const char *first, ...)
{
    va_list args;
    size_t len = 0;
    va_start(args, first);
    for (const char *part = first; part; part = va_arg(args, const char *))
        len += strlen(part);
    va_end(args);
    char *s = xmalloc(len + 1);
    *s = '\0';
    va_start(args, first);
    for (const char *part = first; part; part = va_arg(args, const char *))
        strcat(s, part);
    va_end(args);
    return s;
}

/* Whether this process left a temporary file of attn_params_save next to `path`. */
static bool temp_files_left(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[1024], stem[64];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(stem, sizeof stem, ".attn-%ld-", (long)getpid());
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));)
        found |= !strncmp(e->d_name, stem, strlen(stem));
    closedir(d);
    return found;
}

/* A file of the 8-byte length `header_len`, then `header`, then `data`. */
static void write_raw(const char *path, uint64_t header_len, const bytes *header, const bytes *data)
{
    bytes file = {0};
    put_le(&file, header_len, 8);
    if (header)
        put(&file, header->b, header->n);
    if (data)
        put(&file, data->b, data->n);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(file.b, 1, file.n, f), file.n);
    assert_int_equal(fclose(f), 0);
    free(file.b);
}

static void encode(bytes *data, const char *dtype, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if (!strcmp(dtype, "F64")) {
        double d = v;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        put_le(data, bits, 8);
    } else if (!strcmp(dtype, "BF16")) {
        assert_true(isnan(v) || (u & 0xFFFF) == 0);
        put_le(data, isnan(v) ? 0x7FC0 : u >> 16, 2);
    } else if (!strcmp(dtype, "F16")) { /* exact for zero, NaN, Inf and normal halves only */
        int e = (int)(u >> 23 & 255) - 127 + 15;
        uint32_t h = isnan(v) ? 0x7E00 : isinf(v) ? 0x7C00 : v == 0 ? 0 : (uint32_t)e << 10 | (u >> 13 & 1023);
        assert_true(isnan(v) || isinf(v) || v == 0 || (e >= 1 && e <= 30 && (u & 0x1FFF) == 0));
        put_le(data, h | (u >> 16 & 0x8000), 2);
    } else {
        put_le(data, u, 4);
    }
}

/* A safetensors file holding tensor t of `p` as value(t, j), with one tensor's entry replaced. */
typedef struct file_spec {
    const char *dtype;  /* of every tensor; NULL means F32 */
    const char *prefix; /* NULL means none */
    const char *target; /* the tensor whose header entry is `entry` */
    const char *entry;  /* printf format of that entry, given (long long begin, long long end); NULL
                           leaves the tensor out */
    const char *extra;  /* further header text (entries, "__metadata__"), or NULL */
    int extra_data;     /* bytes at the start of the data for the `extra` entries: the float32
                           values 1, 2, 3, ... (any bytes left over are 0) */
    const char *nan_in; /* a tensor whose element 1 is written as NaN, or NULL */
} file_spec;

static void write_params(const char *path, const attn_params *p, file_spec s)
{
    const char *dtype = s.dtype ? s.dtype : "F32", *prefix = s.prefix ? s.prefix : "";
    const int64_t n = attn_params_count(p);
    long long begin[64], end[64];
    bytes data = {0}, header = {0};
    assert_true(n <= 64);
    for (int j = 0; j < s.extra_data / 4; j++)
        encode(&data, "F32", (float)(j + 1));
    for (int j = s.extra_data / 4 * 4; j < s.extra_data; j++)
        put(&data, "", 1);
    /* Data in reverse order and header entries even-then-odd: readers must follow the offsets. A
     * tensor left out of the header has no data either (the format allows no unused bytes). */
    for (int64_t t = n - 1; t >= 0; t--) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, t, &info));
        if (s.target && !s.entry && !strcmp(info.name, s.target))
            continue;
        begin[t] = (long long)data.n;
        for (int64_t j = 0; j < info.count; j++)
            encode(&data, dtype, s.nan_in && !strcmp(info.name, s.nan_in) && j == 1 ? NAN : value(t, j));
        end[t] = (long long)data.n;
    }
    putf(&header, "{");
    for (int64_t k = 0; k < n; k++) {
        int64_t t = k < (n + 1) / 2 ? 2 * k : 2 * (k - (n + 1) / 2) + 1;
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, t, &info));
        bool replaced = s.target && !strcmp(info.name, s.target);
        if (replaced && !s.entry)
            continue;
        putf(&header, "%s\"%s%s\":", header.n > 1 ? "," : "", prefix, info.name);
        if (replaced) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            putf(&header, s.entry, begin[t], end[t]);
#pragma GCC diagnostic pop
            continue;
        }
        putf(&header, "{\"dtype\":\"%s\",\"shape\":[", dtype);
        for (int64_t d = 0; d < info.ndim; d++)
            putf(&header, "%s%lld", d ? "," : "", (long long)info.shape[d]);
        putf(&header, "],\"data_offsets\":[%lld,%lld]}", begin[t], end[t]);
    }
    if (s.extra) {
        putf(&header, "%s", header.n > 1 ? "," : "");
        put(&header, s.extra, strlen(s.extra));
    }
    putf(&header, "}");
    write_raw(path, header.n, &header, &data);
    free(header.b);
    free(data.b);
}

/* What write_params stores (without NaN), in snapshot order. */
static int64_t expected_values(const attn_params *p, float *out)
{
    int64_t total = 0;
    for (int64_t t = 0; t < attn_params_count(p); t++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, t, &info));
        for (int64_t j = 0; j < info.count; j++)
            out[total++] = value(t, j);
    }
    return total;
}

static void assert_holds_file_values(const attn_params *p)
{
    float want[MAX_VALUES];
    expected_values(p, want);
    assert_unchanged(p, want);
}

#ifndef ATTN_TEST_INTERNAL

/* ================================================================================================
 * The GRU fixture
 * ============================================================================================= */

static const struct {
    const char *name;
    int64_t ndim, shape[2];
} gru_tensors[N_GRU] = {
    {"weight_ih_l0", 2, {12, 3}},         {"weight_hh_l0", 2, {12, 4}},         {"bias_ih_l0", 1, {12}},
    {"bias_hh_l0", 1, {12}},              {"weight_ih_l0_reverse", 2, {12, 3}}, {"weight_hh_l0_reverse", 2, {12, 4}},
    {"bias_ih_l0_reverse", 1, {12}},      {"bias_hh_l0_reverse", 1, {12}},      {"weight_ih_l1", 2, {12, 8}},
    {"weight_hh_l1", 2, {12, 4}},         {"bias_ih_l1", 1, {12}},              {"bias_hh_l1", 1, {12}},
    {"weight_ih_l1_reverse", 2, {12, 8}}, {"weight_hh_l1_reverse", 2, {12, 4}}, {"bias_ih_l1_reverse", 1, {12}},
    {"bias_hh_l1_reverse", 1, {12}},
};
#define GRU_TOTAL 552

static int setup_gru(void **state)
{
    attn_rnn_options o;
    ASSERT_OK(attn_rnn_options_init(&o));
    o.cell = ATTN_CELL_GRU;
    o.input_size = 3;
    o.hidden_size = 4;
    o.num_layers = 2;
    o.bidirectional = 1;
    attn_rnn *rnn;
    ASSERT_OK(attn_rnn_create(&rnn, &o));
    *state = rnn;
    return 0;
}

static int teardown_gru(void **state)
{
    attn_rnn_destroy(*state);
    return 0;
}

static attn_params *gru_params(void **state)
{
    attn_params *p = attn_rnn_params(*state);
    assert_non_null(p);
    return p;
}

/* ================================================================================================
 * Enumeration, lookup, set and get
 * ============================================================================================= */

static void test_count_info_find(void **state)
{
    attn_params *p = gru_params(state);
    assert_int_equal(attn_params_count(p), N_GRU);
    assert_int_equal(attn_params_count(NULL), 0);
    int64_t total = 0;
    for (int64_t i = 0; i < N_GRU; i++) {
        attn_tensor_info info, found;
        ASSERT_OK(attn_params_info(p, i, &info));
        assert_string_equal(info.name, gru_tensors[i].name);
        assert_int_equal(info.ndim, gru_tensors[i].ndim);
        int64_t count = 1;
        for (int d = 0; d < 4; d++) {
            assert_int_equal(info.shape[d], d < info.ndim ? gru_tensors[i].shape[d] : 0);
            count *= d < info.ndim ? info.shape[d] : 1;
        }
        assert_int_equal(info.count, count);
        total += count;
        ASSERT_OK(attn_params_find(p, gru_tensors[i].name, &found));
        assert_memory_equal(&found, &info, sizeof info);
        assert_ptr_equal(found.name, info.name); /* points into the handle */
    }
    assert_int_equal(total, GRU_TOTAL);
    attn_cost cost;
    ASSERT_OK(attn_rnn_cost(*state, 1, 1, &cost));
    assert_int_equal(cost.params, GRU_TOTAL);

    attn_tensor_info out = {.name = "untouched"};
    EXPECT_FAIL(attn_params_info(NULL, 0, &out), ATTN_E_INVALID_ARG, "attn_params_info", "params");
    EXPECT_FAIL(attn_params_info(p, 0, NULL), ATTN_E_INVALID_ARG, "attn_params_info", "out");
    EXPECT_FAIL(attn_params_info(p, -1, &out), ATTN_E_INVALID_ARG, "attn_params_info", "-1");
    EXPECT_FAIL(attn_params_info(p, N_GRU, &out), ATTN_E_INVALID_ARG, "attn_params_info", "16");
    EXPECT_FAIL(attn_params_find(NULL, "bias_ih_l0", &out), ATTN_E_INVALID_ARG, "attn_params_find", "params");
    EXPECT_FAIL(attn_params_find(p, NULL, &out), ATTN_E_INVALID_ARG, "attn_params_find", "name");
    EXPECT_FAIL(attn_params_find(p, "bias_ih_l0", NULL), ATTN_E_INVALID_ARG, "attn_params_find", "out");
    EXPECT_FAIL(attn_params_find(p, "bias_ih_l2", &out), ATTN_E_NOT_FOUND, "attn_params_find", "bias_ih_l2");
    EXPECT_FAIL(attn_params_find(p, "", &out), ATTN_E_NOT_FOUND, "attn_params_find", NULL);
    assert_string_equal(out.name, "untouched");
}

static void test_set_get(void **state)
{
    attn_params *p = gru_params(state);
    float want[MAX_VALUES], got[MAX_VALUES], before[MAX_VALUES];
    int64_t total = expected_values(p, want);
    for (int64_t i = 0, at = 0; i < N_GRU; i++) {
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        ASSERT_OK(attn_params_set(p, info.name, want + at, info.count));
        at += info.count;
    }
    assert_int_equal(snapshot(p, got), total);
    assert_memory_equal(got, want, (size_t)total * sizeof(float));

    /* Every failing set leaves every tensor as it was; every failing get leaves `out` alone. */
    snapshot(p, before);
    float data[96] = {0}, out[96];
    EXPECT_FAIL(attn_params_set(NULL, "bias_ih_l0", data, 12), ATTN_E_INVALID_ARG, "attn_params_set", "params");
    EXPECT_FAIL(attn_params_set(p, NULL, data, 12), ATTN_E_INVALID_ARG, "attn_params_set", "name");
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", NULL, 12), ATTN_E_INVALID_ARG, "attn_params_set", "data");
    EXPECT_FAIL(attn_params_set(p, "bias_ih", data, 12), ATTN_E_NOT_FOUND, "attn_params_set", "bias_ih");
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", data, 11), ATTN_E_SHAPE, "attn_params_set",
                "tensor 'bias_ih_l0' has 12 elements, count is 11");
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", data, 13), ATTN_E_SHAPE, "attn_params_set", "count is 13");
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", data, -1), ATTN_E_SHAPE, "attn_params_set", "count is -1");
    EXPECT_FAIL(attn_params_set(p, "weight_ih_l1", data, 0), ATTN_E_SHAPE, "attn_params_set", "96 elements");
    data[5] = NAN;
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", data, 12), ATTN_E_NUMERICAL, "attn_params_set", "data[5] is NaN");
    data[5] = 0;
    data[11] = -INFINITY;
    EXPECT_FAIL(attn_params_set(p, "bias_ih_l0", data, 12), ATTN_E_NUMERICAL, "attn_params_set", "data[11]");
    assert_unchanged(p, before);

    for (int i = 0; i < 96; i++)
        out[i] = 42.0f;
    EXPECT_FAIL(attn_params_get(NULL, "bias_ih_l0", out, 12), ATTN_E_INVALID_ARG, "attn_params_get", "params");
    EXPECT_FAIL(attn_params_get(p, NULL, out, 12), ATTN_E_INVALID_ARG, "attn_params_get", "name");
    EXPECT_FAIL(attn_params_get(p, "bias_ih_l0", NULL, 12), ATTN_E_INVALID_ARG, "attn_params_get", "out");
    EXPECT_FAIL(attn_params_get(p, "nope", out, 12), ATTN_E_NOT_FOUND, "attn_params_get", "'nope'");
    EXPECT_FAIL(attn_params_get(p, "bias_ih_l0", out, 96), ATTN_E_SHAPE, "attn_params_get", "count is 96");
    for (int i = 0; i < 96; i++)
        assert_true(out[i] == 42.0f);
}

/* ================================================================================================
 * Deterministic initialization
 * ============================================================================================= */

/* FNV-1a over the bits of all values: pins the generator, so a change of the init stream (which
 * would silently change every seeded model) fails here. */
static uint64_t fingerprint(const float *x, int64_t n)
{
    uint64_t h = 1469598103934665603u;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        for (int b = 0; b < 4; b++)
            h = (h ^ (u >> (8 * b) & 255)) * 1099511628211u;
    }
    return h;
}

static void test_init(void **state)
{
    attn_params *p = gru_params(state);
    float a[MAX_VALUES], b[MAX_VALUES], fresh[MAX_VALUES];
    int64_t n = snapshot(p, fresh); /* create runs init(0) */
    ASSERT_OK(attn_params_init(p, 0));
    assert_unchanged(p, fresh);

    ASSERT_OK(attn_params_init(p, 12345));
    snapshot(p, a);
    ASSERT_OK(attn_params_init(p, 99));
    ASSERT_OK(attn_params_init(p, 12345));
    snapshot(p, b);
    assert_memory_equal(a, b, (size_t)n * sizeof(float));
    assert_true(fingerprint(a, n) == UINT64_C(0x97f09c636cdd5127) ||
                (fprintf(stderr, "fingerprint %#llx\n", (unsigned long long)fingerprint(a, n)), false));

    ASSERT_OK(attn_params_init(p, 12346));
    snapshot(p, b);
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++)
        same += a[i] == b[i];
    assert_true(same < 4);

    /* U(-1/sqrt(H), 1/sqrt(H)) with H = 4: within 0.5, mean 0 and variance 1/12 (n = 552). */
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(fabsf(a[i]) <= 0.5f);
        sum += a[i];
        sum2 += (double)a[i] * a[i];
    }
    assert_true(fabs(sum / (double)n) < 0.05);
    assert_true(fabs(sum2 / (double)n - 1.0 / 12) < 0.015);

    /* Tensors of the same shape draw from independent streams. */
    float w[36], w_rev[36];
    ASSERT_OK(attn_params_get(p, "weight_ih_l0", w, 36));
    ASSERT_OK(attn_params_get(p, "weight_ih_l0_reverse", w_rev, 36));
    assert_memory_not_equal(w, w_rev, sizeof w);

    EXPECT_FAIL(attn_params_init(NULL, 1), ATTN_E_INVALID_ARG, "attn_params_init", "params");
}

/* ================================================================================================
 * Save and load
 * ============================================================================================= */

static void test_save_load_roundtrip(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024];
    float saved[MAX_VALUES];
    const char *prefixes[] = {NULL, "", "rnn.", "encoder.gru."};
    for (int k = 0; k < 4; k++) {
        path_for(path, sizeof path, "roundtrip.safetensors");
        ASSERT_OK(attn_params_init(p, 7 + (uint64_t)k));
        int64_t n = snapshot(p, saved);
        ASSERT_OK(attn_params_save(p, path, prefixes[k]));
        assert_false(temp_files_left(path));
        ASSERT_OK(attn_params_init(p, 100));
        ASSERT_OK(attn_params_load(p, path, prefixes[k], ATTN_LOAD_REJECT_UNKNOWN));
        assert_unchanged(p, saved);

        /* The layout Python's safetensors expects: 8 + header length a multiple of 8, a JSON object
         * padded with spaces, the metadata, and 4 bytes per float in tensor order. */
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        unsigned char file[16384];
        size_t size = fread(file, 1, sizeof file, f);
        fclose(f);
        uint64_t header_len = 0;
        for (int i = 7; i >= 0; i--)
            header_len = header_len << 8 | file[i];
        assert_int_equal((8 + header_len) % 8, 0);
        assert_int_equal(size, 8 + header_len + (uint64_t)n * 4);
        assert_int_equal(file[8], '{');
        char header[8192];
        snprintf(header, sizeof header, "%.*s", (int)header_len, (const char *)file + 8);
        assert_non_null(strstr(header, "\"__metadata__\":{\"format\":\"pt\"}"));
        char first[256];
        snprintf(first, sizeof first, "\"%sweight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[12,3],\"data_offsets\":[0,144]}",
                 prefixes[k] ? prefixes[k] : "");
        assert_non_null(strstr(header, first));
        float v0;
        memcpy(&v0, file + 8 + header_len, 4);
        assert_true(v0 == saved[0]);
    }

    /* A file saved with a prefix does not load without it, and vice versa. */
    ASSERT_OK(attn_params_save(p, path, "rnn."));
    ASSERT_OK(attn_params_init(p, 5));
    snapshot(p, saved);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_NOT_FOUND, "attn_params_load", "'weight_ih_l0'");
    EXPECT_FAIL(attn_params_load(p, path, "rnn", 0), ATTN_E_NOT_FOUND, "attn_params_load", "'rnnweight_ih_l0'");
    assert_unchanged(p, saved);
    /* Saving over an existing file replaces it. */
    ASSERT_OK(attn_params_save(p, path, NULL));
    ASSERT_OK(attn_params_init(p, 6));
    ASSERT_OK(attn_params_load(p, path, NULL, 0));
    assert_unchanged(p, saved);

    /* A prefix that JSON must escape (quote, backslash, control characters) round-trips, and is
     * escaped in the file. */
    const char *odd = "q\"\\\n\x01\xC3\xA9/.";
    ASSERT_OK(attn_params_save(p, path, odd));
    ASSERT_OK(attn_params_init(p, 7));
    ASSERT_OK(attn_params_load(p, path, odd, ATTN_LOAD_REJECT_UNKNOWN));
    assert_unchanged(p, saved);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char file[4096];
    file[fread(file, 1, sizeof file - 1, f)] = '\0';
    fclose(f);
    assert_non_null(strstr(file + 8, "\"q\\\"\\\\\\n\\u0001\xC3\xA9/.weight_ih_l0\":{"));
}

static void test_save_errors(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024], dir[1024];
    path_for(path, sizeof path, "no_such_dir/x.safetensors");
    EXPECT_FAIL(attn_params_save(NULL, path, NULL), ATTN_E_INVALID_ARG, "attn_params_save", "params");
    EXPECT_FAIL(attn_params_save(p, NULL, NULL), ATTN_E_INVALID_ARG, "attn_params_save", "path");
    EXPECT_FAIL(attn_params_save(p, path, NULL), ATTN_E_IO, "attn_params_save", path);
    /* A directory in the way: the temporary file is written, the rename fails, and no temporary
     * file is left behind. */
    path_for(dir, sizeof dir, "a_directory");
    mkdir(dir, 0755);
    EXPECT_FAIL(attn_params_save(p, dir, NULL), ATTN_E_IO, "attn_params_save", dir);
    assert_false(temp_files_left(dir));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* A prefix that is not UTF-8 would make a header no JSON reader accepts. */
    path_for(path, sizeof path, "never_written.safetensors");
    EXPECT_FAIL(attn_params_save(p, path, "a\xFF."), ATTN_E_INVALID_ARG, "attn_params_save", "prefix");
    assert_int_equal(access(path, F_OK), -1);
}

/* File names of 250 and 255 (NAME_MAX) bytes save and load: the temporary name does not grow
 * with the target's. One byte more is the system's refusal, reported as such. */
static void test_save_long_names(void **state)
{
    attn_params *p = gru_params(state);
    float saved[MAX_VALUES];
    const size_t lengths[] = {250, 255, 256};
    for (size_t k = 0; k < 3; k++) {
        char name[300], path[1400];
        memset(name, 'n', lengths[k]);
        memcpy(name, "test_params_long_", 17);
        name[lengths[k]] = '\0';
        path_for(path, sizeof path, "");
        *strrchr(path, '/') = '\0';
        strcat(strcat(path, "/"), name);
        ASSERT_OK(attn_params_init(p, 20 + k));
        snapshot(p, saved);
        if (lengths[k] > 255) {
            EXPECT_FAIL(attn_params_save(p, path, NULL), ATTN_E_IO, "attn_params_save", "File name too long");
            assert_false(temp_files_left(path));
            continue;
        }
        ASSERT_OK(attn_params_save(p, path, NULL));
        assert_false(temp_files_left(path));
        ASSERT_OK(attn_params_init(p, 0));
        ASSERT_OK(attn_params_load(p, path, NULL, 0));
        assert_unchanged(p, saved);
        remove(path);
    }
}

static void test_load_dtypes(void **state)
{
    attn_params *p = gru_params(state);
    const char *dtypes[] = {"F32", "F64", "F16", "BF16"};
    char path[1024];
    path_for(path, sizeof path, "dtypes.safetensors");
    for (int k = 0; k < 4; k++) {
        /* Shuffled entries and data, metadata, and tensors the load ignores: other names, other
         * dtypes (an I32 and one the format does not define) outside the prefix, zero-size
         * tensors (legal, begin == end), and fields the format does not define (skipped, as
         * the reference implementation does). */
        file_spec s = {.dtype = dtypes[k],
                       .prefix = "gru.",
                       .extra = "\"__metadata__\":{\"format\":\"pt\",\"note\":\"t\\u00e9st \\\"\\u0000\\\"\"},"
                                "\"other.count\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                "\"other.odd\":{\"dtype\":\"Q7\",\"shape\":[3],\"data_offsets\":[8,9]},"
                                "\"other.empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[9,9]},"
                                "\"other.none\":{\"extra\":{\"a\":[1,{\"b\":null}],\"c\":[]},\"dtype\":\"BF16\","
                                "\"shape\":[4,0],\"data_offsets\":[0,0],\"more\":true}",
                       .extra_data = 9};
        write_params(path, p, s);
        ASSERT_OK(attn_params_init(p, 1));
        ASSERT_OK(attn_params_load(p, path, "gru.", ATTN_LOAD_REJECT_UNKNOWN));
        assert_holds_file_values(p);
    }
    /* "__metadata__": null is the reference implementation's "no metadata". */
    write_params(path, p, (file_spec){.extra = "\"__metadata__\":null"});
    ASSERT_OK(attn_params_init(p, 1));
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    assert_holds_file_values(p);
}

/* One hand-written tensor (bias_ih_l0, 12 elements) of `dtype` holding `raw` (12 elements of
 * `size` bytes each, little-endian). */
static attn_status load_bias(attn_params *p, const char *dtype, int size, const uint64_t *raw)
{
    char path[1024];
    path_for(path, sizeof path, "bias.safetensors");
    bytes header = {0}, data = {0};
    putf(&header, "{\"bias_ih_l0\":{\"dtype\":\"%s\",\"shape\":[12],\"data_offsets\":[0,%d]}}", dtype, 12 * size);
    for (int i = 0; i < 12; i++)
        put_le(&data, raw[i], size);
    write_raw(path, header.n, &header, &data);
    free(header.b);
    free(data.b);
    return attn_params_load(p, path, NULL, ATTN_LOAD_ALLOW_MISSING);
}

static void expect_bias(const attn_params *p, const float *want)
{
    float got[12];
    ASSERT_OK(attn_params_get(p, "bias_ih_l0", got, 12));
    for (int i = 0; i < 12; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)))
            fail_msg("bias_ih_l0[%d] is %a, expected %a", i, (double)got[i], (double)want[i]);
}

static void test_load_special_values(void **state)
{
    attn_params *p = gru_params(state);
    float before[MAX_VALUES];
    /* F16: ±0, 1, -2, max 65504, smallest normal 2^-14, smallest and largest subnormals. */
    const uint64_t f16[12] = {0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x8001, 0x3555,
                              0xFBFF, 0x3800};
    const float f16_want[12] = {0.0f, -0.0f, 1.0f, -2.0f, 65504.0f, 0x1p-14f, 0x1p-24f, 0x3FFp-24f, -0x1p-24f,
                                0x555p-12f, -65504.0f, 0.5f};
    ASSERT_OK(load_bias(p, "F16", 2, f16));
    expect_bias(p, f16_want);
    /* BF16 is the upper half of a float32, subnormals included. */
    const uint64_t bf16[12] = {0x3F80, 0xC040, 0x0001, 0x8000, 0x7F7F, 0x3E00, 0, 0, 0, 0, 0, 0x4049};
    const float bf16_want[12] = {1.0f, -3.0f, 0x1p-133f, -0.0f, 0x1.FEp127f, 0.125f, 0, 0, 0, 0, 0, 3.140625f};
    ASSERT_OK(load_bias(p, "BF16", 2, bf16));
    expect_bias(p, bf16_want);
    /* F64 is rounded to nearest float32, down to float32 subnormals. */
    const double f64_values[12] = {0.1, -1e-40, 1e38, 3.0000000000000004, -0.0, 1.0 / 3, 0, 0, 0, 0, 0, 16777217.0};
    uint64_t f64[12];
    float f64_want[12];
    for (int i = 0; i < 12; i++) {
        memcpy(&f64[i], &f64_values[i], 8);
        f64_want[i] = (float)f64_values[i];
    }
    ASSERT_OK(load_bias(p, "F64", 8, f64));
    expect_bias(p, f64_want);

    /* Non-finite values, and F64 values beyond float32's range, are rejected whole. */
    snapshot(p, before);
    const struct {
        const char *dtype;
        int size, at;
        uint64_t bits;
    } bad[] = {
        {"F16", 2, 3, 0x7C00},  {"F16", 2, 0, 0xFC00}, {"F16", 2, 11, 0x7E00},
        {"BF16", 2, 4, 0x7FC0}, {"BF16", 2, 2, 0xFF80}, {"F32", 4, 7, 0x7FC00000},
        {"F32", 4, 1, 0x7F800000}, {"F64", 8, 5, 0x7FF8000000000000u}, {"F64", 8, 9, 0x47F0000000000000u /* 2^128 */},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        uint64_t raw[12] = {0};
        raw[bad[k].at] = bad[k].bits;
        char needle[64];
        snprintf(needle, sizeof needle, "tensor 'bias_ih_l0': element %d", bad[k].at);
        EXPECT_FAIL(load_bias(p, bad[k].dtype, bad[k].size, raw), ATTN_E_NUMERICAL, "attn_params_load", needle);
        assert_unchanged(p, before);
    }
}

static void test_load_flags(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024];
    float before[MAX_VALUES], want[MAX_VALUES];
    path_for(path, sizeof path, "flags.safetensors");

    /* A missing tensor is an error, unless ALLOW_MISSING keeps its current values. */
    write_params(path, p, (file_spec){.target = "weight_hh_l1"});
    ASSERT_OK(attn_params_init(p, 3));
    snapshot(p, before);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_NOT_FOUND, "attn_params_load",
                "tensor 'weight_hh_l1' is missing");
    assert_unchanged(p, before);
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_ALLOW_MISSING));
    int64_t n = expected_values(p, want);
    float w[48];
    ASSERT_OK(attn_params_get(p, "weight_hh_l1", w, 48));
    for (int64_t i = 0, at = 0; i < N_GRU; i++) { /* weight_hh_l1 keeps its values, all else loads */
        attn_tensor_info info;
        ASSERT_OK(attn_params_info(p, i, &info));
        if (!strcmp(info.name, "weight_hh_l1"))
            memcpy(want + at, before + at, sizeof w);
        at += info.count;
    }
    assert_unchanged(p, want);
    (void)n;

    /* Unknown tensors under the prefix are ignored, or rejected with REJECT_UNKNOWN; tensors
     * outside the prefix are never looked at. */
    write_params(path, p, (file_spec){.prefix = "m.", .extra_data = 8,
                                      .extra = "\"m.extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                               "\"x.y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}"});
    ASSERT_OK(attn_params_init(p, 4));
    snapshot(p, before);
    EXPECT_FAIL(attn_params_load(p, path, "m.", ATTN_LOAD_REJECT_UNKNOWN), ATTN_E_NOT_FOUND, "attn_params_load",
                "unknown tensor 'm.extra'");
    EXPECT_FAIL(attn_params_load(p, path, "m.", ATTN_LOAD_REJECT_UNKNOWN | ATTN_LOAD_ALLOW_MISSING),
                ATTN_E_NOT_FOUND, "attn_params_load", "unknown tensor 'm.extra'");
    EXPECT_FAIL(attn_params_load(p, path, "", ATTN_LOAD_REJECT_UNKNOWN | ATTN_LOAD_ALLOW_MISSING),
                ATTN_E_NOT_FOUND, "attn_params_load", "unknown tensor");
    assert_unchanged(p, before);
    ASSERT_OK(attn_params_load(p, path, "m.", 0));
    assert_holds_file_values(p);

    /* With an empty prefix, "__metadata__" is not an unknown tensor. */
    write_params(path, p, (file_spec){.extra = "\"__metadata__\":{}"});
    ASSERT_OK(attn_params_init(p, 4));
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    assert_holds_file_values(p);

    /* ALLOW_MISSING with nothing of ours in the file changes nothing. */
    ASSERT_OK(attn_params_init(p, 4));
    snapshot(p, before);
    ASSERT_OK(attn_params_load(p, path, "absent.", ATTN_LOAD_ALLOW_MISSING | ATTN_LOAD_REJECT_UNKNOWN));
    assert_unchanged(p, before);

    EXPECT_FAIL(attn_params_load(p, path, NULL, 0x4), ATTN_E_INVALID_ARG, "attn_params_load", "0x4");
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0x80000001u), ATTN_E_INVALID_ARG, "attn_params_load",
                "0x80000000");
    EXPECT_FAIL(attn_params_load(NULL, path, NULL, 0), ATTN_E_INVALID_ARG, "attn_params_load", "params");
    EXPECT_FAIL(attn_params_load(p, NULL, NULL, 0), ATTN_E_INVALID_ARG, "attn_params_load", "path");
    assert_unchanged(p, before);
}

/* A malformed file written from one change to a valid one; the load must fail with `want`. */
typedef struct bad_file {
    const char *target, *entry, *extra, *nan_in; /* as in file_spec; target NULL = weight_hh_l0 */
    int extra_data;
    attn_status want;
    const char *needle;
} bad_file;

#define OFFS "\"data_offsets\":[%lld,%lld]"
#define F32_12_4 "{\"dtype\":\"F32\",\"shape\":[12,4],"
/* In the F32 files of write_params (data in reverse tensor order), weight_hh_l0 holds bytes
 * [1872, 2064), after bias_ih_l0 [1824, 1872) and before weight_ih_l0 [2064, 2208); weight_hh_l1,
 * of the same size, holds [768, 960). */

static const bad_file bad_files[] = {
    /* Entries of the wrong type or missing fields. */
    {.entry = "5", .want = ATTN_E_FORMAT, .needle = "tensor 'weight_hh_l0': header entry is 5, not a JSON object"},
    {.entry = "[%lld,%lld]", .want = ATTN_E_FORMAT, .needle = "'weight_hh_l0': header entry is an array, not a"},
    {.entry = "{\"shape\":[12,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': header entry lacks \"dtype\""},
    {.entry = "{\"dtype\":32,\"shape\":[12,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': \"dtype\" is 32, not a string"},
    {.entry = "{\"dtype\":\"F32\"," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': header entry lacks \"shape\""},
    {.entry = "{\"dtype\":\"F32\",\"shape\":\"12,4\"," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': \"shape\" is a string, not an array"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,4]}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': header entry lacks \"data_offsets\""},
    {.entry = F32_12_4 "\"data_offsets\":{\"a\":%lld,\"b\":%lld}}", .want = ATTN_E_FORMAT,
     .needle = "\"data_offsets\" is an object, not an array"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets has 1 element, not 2"},
    {.entry = F32_12_4 "\"data_offsets\":[]}", .want = ATTN_E_FORMAT, .needle = "data_offsets has 0 elements, not 2"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld,%lld,0]}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': data_offsets has more than 2 elements"},
    {.entry = F32_12_4 "\"data_offsets\":[\"%lld\",\"%lld\"]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets[0] is a string, not an integer in [0, 2^63)"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld.5,%lld]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets[0] is 1872.5,"},
    {.entry = F32_12_4 "\"data_offsets\":[-%lld,%lld]}", .want = ATTN_E_FORMAT, .needle = "data_offsets[0] is -1872,"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld,2.064e3]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets[1] is 2.064e3,"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld,0%lld]}", .want = ATTN_E_FORMAT, .needle = "not valid JSON"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld,[%lld]]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets[1] is an array,"},
    /* Repeated fields: the format defines each once. */
    {.entry = "{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[12,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "tensor 'weight_hh_l0': \"dtype\" appears twice in its header entry"},
    {.entry = F32_12_4 OFFS ",\"data_offsets\":[0,192]}", .want = ATTN_E_FORMAT,
     .needle = "\"data_offsets\" appears twice"},
    /* Shapes: integers in [0, 2^63) only (3.0 and 1e1 are numbers, not integers, to the reference too). */
    {.entry = "{\"dtype\":\"F32\",\"shape\":[-12,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "tensor 'weight_hh_l0': shape[0] is -12, not an integer in [0, 2^63)"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,4.5]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[1] is 4.5,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,4.0]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[1] is 4.0,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,4e0]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[1] is 4e0,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[-0,12,4]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[0] is -0,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[012,4]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "not valid JSON"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,\"4\"]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "shape[1] is a string,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,null]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[1] is null,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,true]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[1] is true,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[1e300]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "shape[0] is 1e300,"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[9223372036854775808]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "shape[0] is 9223372036854775808, not an integer in [0, 2^63)"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': the element count overflows int64 at shape[1]"},
    {.entry = "{\"dtype\":\"F64\",\"shape\":[1073741824,1073741824,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': the byte size overflows"},
    /* Offsets of one tensor. */
    {.entry = F32_12_4 "\"data_offsets\":[%lld,%lld000]}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': data_offsets [1872, 2064000] do not fit the 2208 data bytes"},
    {.entry = F32_12_4 "\"data_offsets\":[%2$lld,%1$lld]}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': data_offsets [2064, 1872] end before they begin"},
    {.entry = F32_12_4 "\"data_offsets\":[%lld,18446744073709551615]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets[1] is 18446744073709551615, not an integer in [0, 2^63)"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,3]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': data_offsets span 192 bytes, but 36 F32 elements need 144"},
    {.entry = "{\"dtype\":\"F64\",\"shape\":[12,4]," OFFS "}", .want = ATTN_E_FORMAT, .needle = "need 384"},
    {.target = "bias_hh_l1", .entry = "{\"dtype\":\"I32\",\"shape\":[13]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'bias_hh_l1'"},
    /* Offsets together: the regions must tile the data exactly (no overlap, aliasing or gap). */
    {.entry = F32_12_4 "\"data_offsets\":[1868,2060]}", .want = ATTN_E_FORMAT,
     .needle = "tensor 'weight_hh_l0': data_offsets [1868, 2060] overlap those of tensor 'bias_ih_l0' [1824, 1872]"},
    {.entry = F32_12_4 "\"data_offsets\":[1873,2065]}", .want = ATTN_E_FORMAT,
     .needle = "tensor 'weight_hh_l0': data_offsets [1873, 2065] leave bytes [1872, 1873) of the data unused"},
    {.entry = F32_12_4 "\"data_offsets\":[768,960]}", .want = ATTN_E_FORMAT,
     .needle = "data_offsets [768, 960] overlap those of tensor"},
    {.target = "nothing", .extra = "\"alias\":{\"dtype\":\"F32\",\"shape\":[12,4],\"data_offsets\":[1872,2064]}",
     .want = ATTN_E_FORMAT, .needle = "data_offsets [1872, 2064] overlap those of tensor"},
    {.target = "nothing", .extra = "\"inside\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1900,1900]}",
     .want = ATTN_E_FORMAT,
     .needle = "tensor 'inside': data_offsets [1900, 1900] overlap those of tensor 'weight_hh_l0' [1872, 2064]"},
    {.extra_data = 2, .want = ATTN_E_FORMAT,
     .needle = "tensor 'bias_hh_l1_reverse': data_offsets [2, 50] leave bytes [0, 2) of the data unused"},
    /* Unknown tensors are validated too (known dtypes), even outside the prefix. */
    {.extra = "\"elsewhere.x\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,4]}", .want = ATTN_E_FORMAT,
     .needle = "'elsewhere.x'"},
    {.extra = "\"elsewhere.x\":{\"dtype\":\"Q7\",\"shape\":[3],\"data_offsets\":[0,100000]}",
     .want = ATTN_E_FORMAT, .needle = "'elsewhere.x'"},
    /* Names: plain strings. A NUL (which JSON allows escaped) would cut the name in C: this one
     * would load as bias_ih_l0. */
    {.target = "bias_ih_l0", .extra_data = 48, .want = ATTN_E_FORMAT,
     .extra = "\"bias_ih_l0\\u0000junk\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[0,48]}",
     .needle = "tensor 'bias_ih_l0\\u0000...': the name contains a NUL byte"},
    {.entry = "{\"dtype\":\"F32\\u0000\",\"shape\":[12,4]," OFFS "}", .want = ATTN_E_FORMAT,
     .needle = "'weight_hh_l0': \"dtype\" contains a NUL byte"},
    /* Invalid UTF-8 that yajl lets through: an overlong NUL, an encoded surrogate, a code point
     * beyond U+10FFFF, and an escaped lone low surrogate. */
    {.extra = "\"a\xC0\x80\":{}", .want = ATTN_E_FORMAT, .needle = "a string is not valid UTF-8"},
    {.extra = "\"__metadata__\":{\"a\":\"\xED\xA0\x80\"}", .want = ATTN_E_FORMAT, .needle = "not valid UTF-8"},
    {.extra = "\"__metadata__\":{\"\xF4\x90\x80\x80\":\"\"}", .want = ATTN_E_FORMAT, .needle = "not valid UTF-8"},
    {.extra = "\"__metadata__\":{\"a\":\"\\uDC00\"}", .want = ATTN_E_FORMAT, .needle = "not valid UTF-8"},
    {.extra = "\"__metadata__\":{\"a\":\"\xE9t\xE9\"}", .want = ATTN_E_FORMAT, .needle = "not valid JSON"},
    /* Duplicates and metadata. */
    {.extra = "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[0,48]}", .want = ATTN_E_FORMAT,
     .needle = "tensor 'bias_ih_l0' appears twice"},
    {.extra = "\"__metadata__\":{},\"__metadata__\":{\"format\":\"pt\"}", .want = ATTN_E_FORMAT,
     .needle = "\"__metadata__\" appears twice in the header"},
    {.extra = "\"__metadata__\":[]", .want = ATTN_E_FORMAT,
     .needle = "\"__metadata__\" is an array, not a JSON object"},
    {.extra = "\"__metadata__\":true", .want = ATTN_E_FORMAT, .needle = "\"__metadata__\" is true, not a JSON object"},
    {.extra = "\"__metadata__\":{\"format\":1}", .want = ATTN_E_FORMAT,
     .needle = "\"__metadata__\" entry 'format' is 1, not a string"},
    {.extra = "\"__metadata__\":{\"format\":\"pt\",\"nested\":{}}", .want = ATTN_E_FORMAT,
     .needle = "entry 'nested' is an object, not a string"},
    /* Well-formed files that do not fit the parameters. */
    {.entry = "{\"dtype\":\"Q7\",\"shape\":[12,4]," OFFS "}", .want = ATTN_E_UNSUPPORTED,
     .needle = "tensor 'weight_hh_l0' has dtype Q7"},
    {.entry = "{\"dtype\":\"I32\",\"shape\":[12,4]," OFFS "}", .want = ATTN_E_UNSUPPORTED,
     .needle = "tensor 'weight_hh_l0' has dtype I32"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[4,12]," OFFS "}", .want = ATTN_E_SHAPE,
     .needle = "tensor 'weight_hh_l0' has shape [4, 12] in"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[48]," OFFS "}", .want = ATTN_E_SHAPE, .needle = "expects [12, 4]"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,4,1]," OFFS "}", .want = ATTN_E_SHAPE, .needle = "[12, 4, 1]"},
    /* Every extent that is kept, and the true number of dimensions. */
    {.entry = "{\"dtype\":\"F32\",\"shape\":[1,2,1,1,1,1,1,1,1,24]," OFFS "}", .want = ATTN_E_SHAPE,
     .needle = "has shape [1, 2, 1, 1, ... (10 dimensions)] in"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,1,1,4,1]," OFFS "}", .want = ATTN_E_SHAPE,
     .needle = "has shape [12, 1, 1, 4, ... (5 dimensions)] in"},
    {.entry = "{\"dtype\":\"F32\",\"shape\":[12,1,1,4]," OFFS "}", .want = ATTN_E_SHAPE,
     .needle = "has shape [12, 1, 1, 4] in"},
    {.entry = NULL, .want = ATTN_E_NOT_FOUND, .needle = "tensor 'weight_hh_l0' is missing"},
    {.target = "bias_hh_l1_reverse", .want = ATTN_E_NOT_FOUND, .needle = "'bias_hh_l1_reverse' is missing"},
    /* Values. */
    {.target = "nothing", .nan_in = "bias_hh_l1_reverse", .want = ATTN_E_NUMERICAL,
     .needle = "tensor 'bias_hh_l1_reverse': element 1"},
};

static void test_load_bad_entries(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024];
    float before[MAX_VALUES];
    path_for(path, sizeof path, "bad_entry.safetensors");
    ASSERT_OK(attn_params_init(p, 3));
    snapshot(p, before);
    for (size_t k = 0; k < sizeof bad_files / sizeof *bad_files; k++) {
        const bad_file *b = &bad_files[k];
        write_params(path, p, (file_spec){.target = b->target ? b->target : "weight_hh_l0", .entry = b->entry,
                                          .extra = b->extra, .extra_data = b->extra_data, .nan_in = b->nan_in});
        attn_status s = attn_params_load(p, path, NULL, 0);
        if (s != b->want || !strstr(attn_last_error(), b->needle))
            fail_msg("case %zu (%s / %s): status %d, message \"%s\"; expected %d with \"%s\"", k,
                     b->entry ? b->entry : "-", b->extra ? b->extra : "-", s, attn_last_error(), b->want, b->needle);
        assert_non_null(strstr(attn_last_error(), "attn_params_load"));
        assert_unchanged(p, before);
    }

    /* Skipped fields are never stored, but their nesting is bounded: 128 levels with the header's
     * object and the tensor's. */
    char *open = repeat("[", 126), *close = repeat("]", 126);
    for (int deeper = 0; deeper < 2; deeper++) {
        char *entry = concat(F32_12_4 OFFS ",\"deep\":", open, deeper ? "[]" : "", close, "}", NULL);
        write_params(path, p, (file_spec){.target = "weight_hh_l0", .entry = entry});
        free(entry);
        if (deeper)
            EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load",
                        "tensor 'weight_hh_l0': a field nests deeper than 128 levels");
        else
            ASSERT_OK(attn_params_load(p, path, NULL, 0));
        ASSERT_OK(attn_params_init(p, 3));
    }
    free(open);
    free(close);
}

/* attn_params_open: a file's tensors as a set of their own, under their names without the prefix,
 * skipping what a float set cannot hold; and every header and data error of a load, named for
 * attn_params_open, with *out NULL. */
static void test_open(void **state)
{
    attn_params *p = gru_params(state), *q = NULL;
    char path[1024];
    path_for(path, sizeof path, "open.safetensors");
    file_spec s = {.dtype = "BF16",
                   .prefix = "gru.",
                   .extra = "\"gru.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                            "\"gru.count\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                            "\"gru.odd\":{\"dtype\":\"Q7\",\"shape\":[3],\"data_offsets\":[12,13]},"
                            "\"gru.empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[13,13]}",
                   .extra_data = 13};
    write_params(path, p, s);
    ASSERT_OK(attn_params_load(p, path, "gru.", 0));
    ASSERT_OK(attn_params_open(&q, path, "gru."));
    assert_int_equal(attn_params_count(q), attn_params_count(p) + 1);
    for (int64_t t = 0; t < attn_params_count(p); t++) {
        attn_tensor_info want, got;
        ASSERT_OK(attn_params_info(p, t, &want));
        ASSERT_OK(attn_params_find(q, want.name, &got));
        assert_int_equal(got.ndim, want.ndim);
        assert_memory_equal(got.shape, want.shape, sizeof want.shape);
        float a[96], b[96];
        assert_true(want.count <= 96);
        ASSERT_OK(attn_params_get(p, want.name, a, want.count));
        ASSERT_OK(attn_params_get(q, want.name, b, want.count));
        assert_memory_equal(a, b, (size_t)want.count * sizeof *a);
    }
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(q, "scalar", &info)); /* 0-dimensional: shape [1] */
    assert_int_equal(info.ndim, 1);
    assert_int_equal(info.shape[0], 1);
    float v;
    ASSERT_OK(attn_params_get(q, "scalar", &v, 1));
    assert_true(v == 1.0f);
    assert_int_equal(attn_params_find(q, "count", &info), ATTN_E_NOT_FOUND);
    assert_int_equal(attn_params_find(q, "odd", &info), ATTN_E_NOT_FOUND);
    assert_int_equal(attn_params_find(q, "empty", &info), ATTN_E_NOT_FOUND);
    /* the set behaves as any other: set, save, init (zeros), and it loads back */
    ASSERT_OK(attn_params_set(q, "scalar", (const float[]){-2.5f}, 1));
    char saved[1024];
    path_for(saved, sizeof saved, "open_saved.safetensors");
    ASSERT_OK(attn_params_save(q, saved, "x."));
    ASSERT_OK(attn_params_init(q, 7));
    ASSERT_OK(attn_params_get(q, "scalar", &v, 1));
    assert_true(v == 0.0f);
    ASSERT_OK(attn_params_load(q, saved, "x.", ATTN_LOAD_REJECT_UNKNOWN));
    ASSERT_OK(attn_params_get(q, "scalar", &v, 1));
    assert_true(v == -2.5f);
    attn_params_close(q);

    /* without a prefix: every float tensor, under its full name */
    ASSERT_OK(attn_params_open(&q, path, NULL));
    assert_int_equal(attn_params_count(q), attn_params_count(p) + 1);
    ASSERT_OK(attn_params_find(q, "gru.weight_hh_l0", &info));
    attn_params_close(q);
    attn_params_close(p); /* a handle's set: left alone (the fixture still uses it) */
    attn_params_close(NULL);
    ASSERT_OK(attn_params_find(p, "weight_hh_l0", &info));

    q = p;
    EXPECT_FAIL(attn_params_open(&q, path, "nothing."), ATTN_E_NOT_FOUND, "attn_params_open", "no float tensor under");
    assert_null(q);
    EXPECT_FAIL(attn_params_open(NULL, path, NULL), ATTN_E_INVALID_ARG, "attn_params_open", "out is NULL");
    q = p;
    EXPECT_FAIL(attn_params_open(&q, NULL, NULL), ATTN_E_INVALID_ARG, "attn_params_open", "path is NULL");
    assert_null(q);
    char missing[1024];
    path_for(missing, sizeof missing, "open_missing.safetensors");
    remove(missing);
    EXPECT_FAIL(attn_params_open(&q, missing, NULL), ATTN_E_IO, "attn_params_open", missing);
    write_params(path, p, (file_spec){.extra = "\"big\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],"
                                                "\"data_offsets\":[0,4]}", .extra_data = 4});
    EXPECT_FAIL(attn_params_open(&q, path, NULL), ATTN_E_UNSUPPORTED, "attn_params_open",
                "tensor 'big' in '");
    ASSERT_OK(attn_params_open(&q, path, "weight")); /* outside the prefix, it does not matter */
    attn_params_close(q);

    /* every malformed header or value that fails a load fails an open alike */
    for (size_t k = 0; k < sizeof bad_files / sizeof *bad_files; k++) {
        const bad_file *b = &bad_files[k];
        if (b->want != ATTN_E_FORMAT && b->want != ATTN_E_NUMERICAL)
            continue;
        write_params(path, p, (file_spec){.target = b->target ? b->target : "weight_hh_l0", .entry = b->entry,
                                          .extra = b->extra, .extra_data = b->extra_data, .nan_in = b->nan_in});
        q = p;
        attn_status st = attn_params_open(&q, path, NULL);
        if (st != b->want || !strstr(attn_last_error(), b->needle) || !strstr(attn_last_error(), "attn_params_open"))
            fail_msg("case %zu: status %d, message \"%s\"; expected %d with \"%s\"", k, st, attn_last_error(), b->want,
                     b->needle);
        assert_null(q);
    }
}

/* Paths that are not regular files: each is refused as such, never opened for reading (a FIFO
 * without a writer would block the open forever), and with what it is named. */
static void test_load_not_regular(void **state)
{
    attn_params *p = gru_params(state);
    char dir[1024], fifo[1024], sock[1024];
    float before[MAX_VALUES];
    ASSERT_OK(attn_params_init(p, 3));
    snapshot(p, before);
    path_for(dir, sizeof dir, "a_directory");
    mkdir(dir, 0755);
    path_for(fifo, sizeof fifo, "fifo");
    remove(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    path_for(sock, sizeof sock, "socket");
    remove(sock);
    /* sun_path is short (108 bytes): bind a name relative to the socket's directory. */
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char *slash = strrchr(sock, '/');
    char sock_dir[1024];
    snprintf(sock_dir, sizeof sock_dir, "%.*s", (int)(slash - sock), sock);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", slash + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), cwd = open(".", O_RDONLY);
    assert_true(fd >= 0 && cwd >= 0);
    assert_int_equal(chdir(sock_dir), 0);
    assert_int_equal(bind(fd, (const struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);

    const struct {
        const char *path, *kind;
    } cases[] = {
        {"/dev/zero", "a character device"}, {"/dev/null", "a character device"}, {dir, "a directory"},
        {fifo, "a FIFO"},                    {sock, "a socket"},
    };
    alarm(60); /* a regression that blocks fails the test instead of hanging it */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char needle[1200];
        snprintf(needle, sizeof needle, "'%s' is not a regular file (it is %s)", cases[k].path, cases[k].kind);
        EXPECT_FAIL(attn_params_load(p, cases[k].path, NULL, 0), ATTN_E_IO, "attn_params_load", needle);
    }
    alarm(0);
    assert_unchanged(p, before);
    close(fd);
    remove(sock);
    remove(fifo);
}

/* Headers of 20 MB of valid JSON that the load skips or keeps nothing of: a huge array in an
 * unknown field of a tensor, and a huge metadata string. Memory is not asserted here (see the
 * measurements in the report); only the outcomes are checked. */
static void test_load_large_header(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024];
    float before[MAX_VALUES];
    path_for(path, sizeof path, "large_header.safetensors");
    char *zeros = repeat("0,", 10u << 20);
    char *junk = concat(F32_12_4 OFFS ",\"junk\":[", zeros, "0]}", NULL);
    write_params(path, p, (file_spec){.target = "weight_hh_l0", .entry = junk});
    ASSERT_OK(attn_params_init(p, 1));
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    assert_holds_file_values(p);

    /* The same array as a tensor's whole entry: refused at its first byte. */
    ASSERT_OK(attn_params_init(p, 2));
    snapshot(p, before);
    char *array = concat("[", zeros, "0]", NULL);
    write_params(path, p, (file_spec){.target = "weight_hh_l0", .entry = array});
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load",
                "tensor 'weight_hh_l0': header entry is an array, not a JSON object");
    assert_unchanged(p, before);

    /* A metadata string of 20 MB of escapes (which yajl decodes): loads; followed by a number,
     * refused. */
    char *newlines = repeat("\\n", 10u << 20);
    char *meta = concat("\"__metadata__\":{\"big\":\"", newlines, "\"}", NULL);
    write_params(path, p, (file_spec){.extra = meta});
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    assert_holds_file_values(p);
    ASSERT_OK(attn_params_init(p, 2));
    char *bad_meta = concat("\"__metadata__\":{\"big\":\"", newlines, "\",\"n\":7}", NULL);
    write_params(path, p, (file_spec){.extra = bad_meta});
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load",
                "\"__metadata__\" entry 'n' is 7, not a string");
    assert_unchanged(p, before);
    remove(path);
    free(zeros);
    free(junk);
    free(array);
    free(newlines);
    free(meta);
    free(bad_meta);
}

static void test_load_bad_files(void **state)
{
    attn_params *p = gru_params(state);
    char path[1024];
    float before[MAX_VALUES];
    bytes header = {0}, data = {0};
    ASSERT_OK(attn_params_init(p, 3));
    snapshot(p, before);

    path_for(path, sizeof path, "does_not_exist.safetensors");
    remove(path);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_IO, "attn_params_load", path);

    path_for(path, sizeof path, "bad_file.safetensors");
    for (size_t len = 0; len < 8; len += 5) { /* 0 and 5 bytes */
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite("\x10\0\0\0\0", 1, len, f), len);
        fclose(f);
        EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load", "shorter than the 8-byte");
    }

    /* Header lengths beyond the file or the format's limit of 10^8, up to 2^63 and 2^64 - 1:
     * rejected before any allocation, naming the one limit that is exceeded. */
    put(&header, "{}", 2);
    const uint64_t lengths[] = {3, 1000, 100000000, (uint64_t)1 << 63, UINT64_MAX, 100000001};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        write_raw(path, lengths[k], &header, NULL);
        char needle[128];
        if (lengths[k] <= 100000000)
            snprintf(needle, sizeof needle, "header length %llu exceeds the 2 bytes after it",
                     (unsigned long long)lengths[k]);
        else
            snprintf(needle, sizeof needle, "header length %llu exceeds the format's limit of 100000000 bytes",
                     (unsigned long long)lengths[k]);
        EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load", needle);
        assert_null(strstr(attn_last_error(), lengths[k] <= 100000000 ? "limit" : "after it"));
    }
    /* The limit holds even when the file is that large (sparse file): only the limit is named. */
    write_raw(path, 100000001, &header, NULL);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 100001160, SEEK_SET), 0);
    assert_int_equal(fputc(' ', f), ' ');
    fclose(f);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load",
                "header length 100000001 exceeds the format's limit of 100000000 bytes");
    assert_null(strstr(attn_last_error(), "after it"));
    remove(path);

    /* Headers that are not a strict JSON object of entries (the length of each literal is
     * sizeof - 1, so that embedded NULs count). */
#define HEADER(text, needle) {text, sizeof text - 1, needle}
    const struct {
        const char *header;
        size_t len;
        const char *needle;
    } bad_headers[] = {
        HEADER("", "not valid JSON near byte 0 (parse error: premature EOF)"),
        HEADER("{\"a\": ", "not valid JSON near byte 6"),
        HEADER("{\"a\" 1}", "not valid JSON"),
        HEADER("not json", "not valid JSON"),
        HEADER("[1, 2]", "the header is an array, not a JSON object"),
        HEADER("\"weight_ih_l0\"", "the header is a string, not a JSON object"),
        HEADER("null", "the header is null, not a JSON object"),
        HEADER("12", "the header is 12, not a JSON object"),
        HEADER("{}x", "unexpected byte at 2 after the JSON header"),
        HEADER("{}  \n {}", "unexpected byte at 6"),
        HEADER("{} \0", "unexpected byte at 3"),
        HEADER("{}\v", "unexpected byte at 2"),
        /* A UTF-8 byte order mark. */
        HEADER("\xEF\xBB\xBF{}", "not valid JSON near byte 1 (lexical error: invalid char in json text.)"),
        HEADER("{\v}", "not valid JSON at byte 1 (control character 0x0b)"),
        HEADER("\f{}", "not valid JSON at byte 0 (control character 0x0c)"),
        HEADER("{\"a\0b\":{}}", "not valid JSON"),   /* a raw NUL in a name */
        HEADER("{\"a\nb\":{}}", "not valid JSON"),   /* a raw control character */
        HEADER("{/**/}", "not valid JSON"),           /* comments */
        HEADER("{\"__metadata__\":{},}", "not valid JSON near byte 20 (parse error: invalid object key"),
        HEADER("{}", "tensor 'weight_ih_l0' is missing"),
        HEADER("{}   \t\r\n", "tensor 'weight_ih_l0' is missing"),
    };
#undef HEADER
    for (size_t k = 0; k < sizeof bad_headers / sizeof *bad_headers; k++) {
        bytes h = {0};
        put(&h, bad_headers[k].header, bad_headers[k].len);
        write_raw(path, h.n, &h, NULL);
        free(h.b);
        attn_status s = attn_params_load(p, path, NULL, 0);
        EXPECT_FAIL(s, strstr(bad_headers[k].needle, "missing") ? ATTN_E_NOT_FOUND : ATTN_E_FORMAT,
                    "attn_params_load", bad_headers[k].needle);
    }

    /* Data bytes that belong to no tensor: after the last one, or with none at all. */
    data.n = 0;
    put(&data, "abcd", 4);
    write_raw(path, 2, &header, &data);
    EXPECT_FAIL(attn_params_load(p, path, NULL, ATTN_LOAD_ALLOW_MISSING), ATTN_E_FORMAT, "attn_params_load",
                "the header lists no tensor, but 4 data bytes follow it");
    write_params(path, p, (file_spec){0});
    f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite("abcd", 1, 4, f), 4);
    fclose(f);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load",
                "data bytes [2208, 2212) after tensor 'weight_ih_l0' belong to no tensor");

    /* Data shorter than the header promises. */
    write_params(path, p, (file_spec){0});
    f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char buffer[8192];
    size_t n = fread(buffer, 1, sizeof buffer, f);
    fclose(f);
    data.n = 0;
    put(&data, buffer, n - 1);
    FILE *g = fopen(path, "wb");
    assert_non_null(g);
    fwrite(data.b, 1, data.n, g);
    fclose(g);
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_FORMAT, "attn_params_load", "do not fit");

    assert_unchanged(p, before);
    free(header.b);
    free(data.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_count_info_find, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_set_get, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_init, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_save_errors, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_save_long_names, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_dtypes, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_special_values, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_flags, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_bad_entries, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_not_regular, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_large_header, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_load_bad_files, setup_gru, teardown_gru),
        cmocka_unit_test_setup_teardown(test_open, setup_gru, teardown_gru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* ATTN_TEST_INTERNAL */

/* ================================================================================================
 * The internal registry API (core.h), compiled together with the core sources
 * ============================================================================================= */

static void test_declare_errors(void **state)
{
    (void)state;
    attn_params *p;
    ASSERT_OK(attn__params_create(&p, "test_owner"));
    const int64_t ok[2] = {2, 3}, zero[2] = {2, 0}, negative[1] = {-1}, huge[2] = {INT64_MAX / 2, 4};
    const int64_t big[2] = {INT64_MAX / 16, 3};
    int64_t index = -7;
    ASSERT_OK(attn__params_add(p, "w", 2, ok, ATTN_INIT_UNIFORM, 1.0f, &index));
    assert_int_equal(index, 0);
    EXPECT_FAIL(attn__params_add(p, "w", 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INVALID_ARG, "test_owner",
                "'w' is already taken");
    EXPECT_FAIL(attn__params_add(p, "", 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INVALID_ARG, "test_owner",
                "name");
    EXPECT_FAIL(attn__params_add(p, NULL, 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INVALID_ARG,
                "test_owner", "name");
    EXPECT_FAIL(attn__params_add(NULL, "v", 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INVALID_ARG,
                "attn__params_add", "params");
    EXPECT_FAIL(attn__params_add(p, "v", 0, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "ndim 0");
    EXPECT_FAIL(attn__params_add(p, "v", 5, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "ndim 5");
    EXPECT_FAIL(attn__params_add(p, "v", 2, NULL, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "shape NULL");
    EXPECT_FAIL(attn__params_add(p, "v", 2, zero, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "[2, 0]");
    EXPECT_FAIL(attn__params_add(p, "v", 1, negative, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE,
                "test_owner", "[-1]");
    EXPECT_FAIL(attn__params_add(p, "v", 2, huge, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "'v'");
    EXPECT_FAIL(attn__params_add(p, "v", 2, big, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_SHAPE, "test_owner",
                "too large");
    EXPECT_FAIL(attn__params_add(p, "v", 2, ok, (attn_init_law)7, 1, NULL), ATTN_E_INVALID_ARG, "test_owner",
                "init law 7");
    EXPECT_FAIL(attn__params_alias(p, "w", 0), ATTN_E_INVALID_ARG, "test_owner", "'w' is already taken");
    EXPECT_FAIL(attn__params_alias(p, "w2", 1), ATTN_E_INVALID_ARG, "test_owner", "tensor 1 of 1");
    EXPECT_FAIL(attn__params_alias(p, "w2", -1), ATTN_E_INVALID_ARG, "test_owner", "tensor -1");
    ASSERT_OK(attn__params_alias(p, "w2", 0));
    EXPECT_FAIL(attn__params_add(p, "w2", 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INVALID_ARG,
                "test_owner", "'w2' is already taken");
    assert_int_equal(attn_params_count(p), 1);
    assert_int_equal(attn__params_total(p), 6);

    /* Before finalize there is no data to copy; after it, nothing can be declared. */
    float x[6] = {0};
    EXPECT_FAIL(attn_params_set(p, "w", x, 6), ATTN_E_INTERNAL, "attn_params_set", "finalize");
    EXPECT_FAIL(attn_params_init(p, 0), ATTN_E_INTERNAL, "attn_params_init", "finalize");
    assert_null(attn__params_data(p, 0));
    ASSERT_OK(attn__params_finalize(p));
    EXPECT_FAIL(attn__params_finalize(p), ATTN_E_INTERNAL, "test_owner", "twice");
    EXPECT_FAIL(attn__params_add(p, "u", 2, ok, ATTN_INIT_UNIFORM, 1, NULL), ATTN_E_INTERNAL, "test_owner",
                "after finalize");
    EXPECT_FAIL(attn__params_alias(p, "u", 0), ATTN_E_INTERNAL, "test_owner", "after finalize");
    assert_null(attn__params_data(p, 1));
    assert_null(attn__params_data(p, -1));
    attn__params_destroy(p);
    attn__params_destroy(NULL);

    /* A registry without tensors is valid: it saves an empty file and loads it. */
    char path[1024];
    path_for(path, sizeof path, "empty.safetensors");
    ASSERT_OK(attn__params_create(&p, "test_owner"));
    ASSERT_OK(attn__params_finalize(p));
    ASSERT_OK(attn_params_save(p, path, NULL));
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    attn__params_destroy(p);
    EXPECT_FAIL(attn__params_create(NULL, "test_owner"), ATTN_E_INVALID_ARG, "attn__params_create", "out");
}

/* mem_bias (2,3) CONSTANT 0.25 with two aliases, as the memory network declares it, then a 4000-
 * element NORMAL tensor and an odd-sized UNIFORM one. */
static attn_params *make_registry(void)
{
    attn_params *p;
    const int64_t s_mem[2] = {2, 3}, s_noise[1] = {4000}, s_odd[3] = {3, 1, 5};
    int64_t index;
    ASSERT_OK(attn__params_create(&p, "test_owner"));
    ASSERT_OK(attn__params_add(p, "memory.mem_bias", 2, s_mem, ATTN_INIT_CONSTANT, 0.25f, &index));
    ASSERT_OK(attn__params_add(p, "noise", 1, s_noise, ATTN_INIT_NORMAL, 2.0f, NULL));
    ASSERT_OK(attn__params_add(p, "odd", 3, s_odd, ATTN_INIT_UNIFORM, 0.1f, NULL));
    ASSERT_OK(attn__params_alias(p, "ntm.memory.mem_bias", index));
    ASSERT_OK(attn__params_alias(p, "ntm.heads.0.memory.mem_bias", index));
    ASSERT_OK(attn__params_finalize(p));
    return p;
}

static void test_laws_and_layout(void **state)
{
    (void)state;
    attn_params *p = make_registry();
    assert_int_equal(attn_params_count(p), 3);
    assert_int_equal(attn__params_total(p), 6 + 4000 + 15);
    for (int64_t i = 0; i < 3; i++)
        assert_int_equal((uintptr_t)attn__params_cdata(p, i) % ATTN__ALIGN, 0);

    const float *mem = attn__params_cdata(p, 0);
    for (int i = 0; i < 6; i++)
        assert_true(mem[i] == 0.25f);
    const float *noise = attn__params_cdata(p, 1);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 4000; i++) {
        assert_true(isfinite(noise[i]));
        sum += noise[i];
        sum2 += (double)noise[i] * noise[i];
    }
    /* N(0, 4): the mean of 4000 draws is within 5 standard errors (0.16), the variance within 10%. */
    assert_true(fabs(sum / 4000) < 0.16);
    assert_true(fabs(sum2 / 4000 - 4.0) < 0.4);
    const float *odd = attn__params_cdata(p, 2);
    for (int i = 0; i < 15; i++)
        assert_true(fabsf(odd[i]) <= 0.1f && odd[i] != 0.0f);

    /* Aliases are found (as the tensor they name) but never listed. */
    attn_tensor_info info;
    ASSERT_OK(attn_params_find(p, "ntm.heads.0.memory.mem_bias", &info));
    assert_string_equal(info.name, "memory.mem_bias");
    assert_int_equal(info.count, 6);
    for (int64_t i = 0; i < 3; i++) {
        ASSERT_OK(attn_params_info(p, i, &info));
        assert_null(strstr(info.name, "ntm."));
    }
    attn__params_destroy(p);
}

/* Allocation failures: tests/params.cmake links this program with the allocator wrapped (in its
 * own code and the core sources), so that the n-th allocation from now can be made to fail. */
#include "alloc_wrap.h"

/* Every allocation of a load and of a save fails in turn: each gives ATTN_E_NOMEM, changes
 * nothing (parameters, target file) and leaks nothing (ASan's leak check), until the call succeeds. */
static void test_allocation_failures(void **state)
{
    (void)state;
    attn_params *p = make_registry();
    char path[1024], target[1024];
    float before[MAX_VALUES];
    path_for(path, sizeof path, "nomem.safetensors");
    path_for(target, sizeof target, "nomem_saved.safetensors");
    /* An escaped metadata string longer than yajl's first buffers, so that it grows them too. */
    char *escaped = repeat("\\n", 3000);
    char *extra = concat("\"__metadata__\":{\"a\":\"", escaped, "\"}", NULL);
    write_params(path, p, (file_spec){.extra = extra});
    free(escaped);
    free(extra);
    ASSERT_OK(attn_params_init(p, 5));
    snapshot(p, before);
    long k = 0;
    for (attn_status s = ATTN_E_NOMEM; s != ATTN_OK; k++) {
        alloc_wrap_arm(k + 1);
        s = attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN);
        alloc_wrap_disarm();
        if (s != ATTN_OK && s != ATTN_E_NOMEM)
            fail_msg("load, allocation %ld failing: status %d: %s", k, s, attn_last_error());
        if (s == ATTN_E_NOMEM) {
            assert_non_null(strstr(attn_last_error(), "attn_params_load"));
            assert_unchanged(p, before);
        }
    }
    assert_true(k > 8); /* the loop did reach yajl's allocations */
    assert_holds_file_values(p);
    snapshot(p, before);

    remove(target);
    k = 0;
    for (attn_status s = ATTN_E_NOMEM; s != ATTN_OK; k++) {
        alloc_wrap_arm(k + 1);
        s = attn_params_save(p, target, "prefix.");
        alloc_wrap_disarm();
        if (s != ATTN_OK && s != ATTN_E_NOMEM)
            fail_msg("save, allocation %ld failing: status %d: %s", k, s, attn_last_error());
        if (s == ATTN_E_NOMEM) {
            assert_non_null(strstr(attn_last_error(), "attn_params_save"));
            assert_int_equal(access(target, F_OK), -1);
            assert_false(temp_files_left(target));
        }
    }
    assert_true(k > 3);
    ASSERT_OK(attn_params_init(p, 6));
    ASSERT_OK(attn_params_load(p, target, "prefix.", ATTN_LOAD_REJECT_UNKNOWN));
    assert_unchanged(p, before);
    attn__params_destroy(p);
}

static void test_alias_load(void **state)
{
    (void)state;
    attn_params *p = make_registry();
    char path[1024];
    float before[MAX_VALUES], got[6];
    path_for(path, sizeof path, "alias.safetensors");

    /* The file names mem_bias only by an alias: it loads, also with REJECT_UNKNOWN. */
    write_params(path, p, (file_spec){.prefix = "net.", .target = "memory.mem_bias", .extra_data = 24,
                                      .extra = "\"net.ntm.memory.mem_bias\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                               "\"data_offsets\":[0,24]}"});
    ASSERT_OK(attn_params_load(p, path, "net.", ATTN_LOAD_REJECT_UNKNOWN));
    /* data_offsets [0, 24] are the extra data: 1, 2, ..., 6. */
    ASSERT_OK(attn_params_get(p, "memory.mem_bias", got, 6));
    for (int j = 0; j < 6; j++)
        assert_true(got[j] == (float)(j + 1));

    /* Its own name wins over aliases, whatever the order in the file. */
    write_params(path, p, (file_spec){.extra_data = 48,
                                      .extra = "\"ntm.heads.0.memory.mem_bias\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                               "\"data_offsets\":[0,24]},\"ntm.memory.mem_bias\":{\"dtype\":\"F32\","
                                               "\"shape\":[2,3],\"data_offsets\":[24,48]}"});
    ASSERT_OK(attn_params_load(p, path, NULL, ATTN_LOAD_REJECT_UNKNOWN));
    assert_holds_file_values(p);

    /* An alias with the wrong shape is checked like the name itself. */
    ASSERT_OK(attn_params_init(p, 9));
    int64_t n = snapshot(p, before);
    assert_int_equal(n, 4021);
    write_params(path, p, (file_spec){.target = "memory.mem_bias", .extra_data = 24,
                                      .extra = "\"ntm.memory.mem_bias\":{\"dtype\":\"F32\",\"shape\":[3,2],"
                                               "\"data_offsets\":[0,24]}"});
    EXPECT_FAIL(attn_params_load(p, path, NULL, 0), ATTN_E_SHAPE, "attn_params_load",
                "tensor 'ntm.memory.mem_bias' has shape [3, 2] in");
    assert_unchanged(p, before);
    attn__params_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare_errors),
        cmocka_unit_test(test_laws_and_layout),
        cmocka_unit_test(test_alias_load),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif /* ATTN_TEST_INTERNAL */
