/*
 * make_seeds.c: writes the seed corpus of the fuzz targets (fuzz/corpus/), deterministically.
 *
 *   fuzz_make_seeds OUT_DIR        (OUT_DIR/params_load and OUT_DIR/forward must exist)
 *
 * params_load: for every handle of fuzz_handles.h and every dtype the loader converts (F32, F64,
 * F16, BF16), a valid file of its parameters, under each prefix in turn; a file written by
 * attn_params_save; the values the loader must refuse (F16 infinity, BF16 NaN, F64 beyond float);
 * and the malformed files of tests/test_params.c, rebuilt here against its GRU fixture (handle 1)
 * with the same data layout, so that the offsets in those cases mean the same. Each file is the two
 * control bytes of fuzz_params_load.c followed by the safetensors file.
 *
 * forward: for every family of fuzz_forward.c a few programs (control bytes as that file reads
 * them, then moderate values) that pass validation and reach forward: every cell and recurrence,
 * lengths, dense and sparse memory, the three attention kinds with masks and both pinv methods,
 * the Perceiver with and without Fourier features, and the analysis functions.
 *
 * Rebuild the corpus with it after a change to fuzz_handles.h or to the byte layout of a target;
 * the files are small (< 8 KiB each, < 100 per target).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_handles.h"

typedef struct bytes {
    uint8_t *b;
    size_t n, cap;
} bytes;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_make_seeds: %s\n", what);
    exit(1);
}

static void put(bytes *x, const void *src, size_t n)
{
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 64;
        x->b = realloc(x->b, x->cap);
        if (!x->b)
            die("out of memory");
    }
    memcpy(x->b + x->n, src, n);
    x->n += n;
}

static void put_le(bytes *x, uint64_t v, int size)
{
    for (int i = 0; i < size; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(x, &c, 1);
    }
}

static void putf(bytes *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(bytes *x, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        die("putf: text too long");
    put(x, buf, (size_t)n);
}

/* ---- dtypes -------------------------------------------------------------------------------- */

enum { F32, F64, F16, BF16 };
static const char *const dtype_names[4] = {"F32", "F64", "F16", "BF16"};
static const int dtype_sizes[4] = {4, 8, 2, 2};

/* IEEE half, rounded to nearest even; subnormal halves included. */
static uint16_t to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = u >> 16 & 0x8000u, exp8 = u >> 23 & 0xFFu;
    uint32_t m = u & 0x7FFFFFu;
    if (exp8 == 0xFF)
        return (uint16_t)(sign | 0x7C00u | (m ? 0x200u : 0));
    const int e = (int)exp8 - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u);
    int shift = 13;
    uint32_t h;
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        shift = 14 - e;
        h = m >> shift;
    } else {
        h = (uint32_t)e << 10 | m >> 13;
    }
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1)))
        h++; /* a carry into the exponent is the right result */
    return (uint16_t)(sign | h);
}

static void encode(bytes *x, int dtype, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    switch (dtype) {
    case F64: {
        double d = v;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        put_le(x, bits, 8);
        break;
    }
    case F16: put_le(x, to_f16(v), 2); break;
    case BF16: put_le(x, isnan(v) ? 0x7FC0u : (u + 0x7FFFu + (u >> 16 & 1u)) >> 16, 2); break;
    default: put_le(x, u, 4);
    }
}

/* ---- files --------------------------------------------------------------------------------- */

static const char *out_dir;
static int files_written[2];

static void write_seed(const char *target, const char *name, const bytes *content)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    if (content->n > 8192) {
        fprintf(stderr, "%s: %zu bytes\n", path, content->n);
        die("a seed exceeds 8 KiB");
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(content->b, 1, content->n, f) != content->n || fclose(f) != 0)
        die(path);
    files_written[!strcmp(target, "forward")]++;
}

/* A params_load seed: control bytes, the 8-byte header length, the header and the data. */
static void write_load_seed(const char *name, int handle, uint8_t control, uint64_t header_len,
                            const bytes *header, const bytes *data)
{
    bytes f = {0};
    uint8_t c[2] = {(uint8_t)handle, control};
    put(&f, c, 2);
    put_le(&f, header_len, 8);
    if (header)
        put(&f, header->b, header->n);
    if (data)
        put(&f, data->b, data->n);
    write_seed("params_load", name, &f);
    free(f.b);
}

/* A file of the parameters of `p` (their current values) with one entry replaced, as
 * tests/test_params.c's write_params builds them: data in reverse tensor order after `extra_data`
 * bytes for the extra entries (float32 1, 2, ...), so that its byte offsets hold here too. */
typedef struct file_spec {
    int dtype;
    const char *prefix;
    const char *target; /* whose entry is `entry` (printf format of begin, end), or left out if NULL */
    const char *entry;
    const char *extra; /* further header text */
    int extra_data;
    const char *nan_in; /* a tensor whose element 1 is NaN */
    const char *metadata;
} file_spec;

static void build_file(const attn_params *p, file_spec s, bytes *header, bytes *data)
{
    const char *prefix = s.prefix ? s.prefix : "";
    const int64_t n = attn_params_count(p);
    long long begin[256], end[256];
    if (n > 256)
        die("too many tensors");
    for (int j = 0; j < s.extra_data / 4; j++)
        encode(data, F32, (float)(j + 1));
    for (int j = s.extra_data / 4 * 4; j < s.extra_data; j++)
        put(data, "", 1);
    for (int64_t t = n - 1; t >= 0; t--) {
        attn_tensor_info info;
        attn_params_info(p, t, &info);
        if (s.target && !s.entry && !strcmp(info.name, s.target))
            continue;
        float *v = malloc((size_t)info.count * sizeof *v);
        if (!v || attn_params_get(p, info.name, v, info.count) != ATTN_OK)
            die("attn_params_get");
        begin[t] = (long long)data->n;
        for (int64_t j = 0; j < info.count; j++)
            encode(data, s.dtype, s.nan_in && !strcmp(info.name, s.nan_in) && j == 1 ? NAN : v[j]);
        end[t] = (long long)data->n;
        free(v);
    }
    putf(header, "{");
    if (s.metadata)
        putf(header, "\"__metadata__\":%s", s.metadata);
    for (int64_t t = 0; t < n; t++) {
        attn_tensor_info info;
        attn_params_info(p, t, &info);
        const bool replaced = s.target && !strcmp(info.name, s.target);
        if (replaced && !s.entry)
            continue;
        putf(header, "%s\"%s%s\":", header->n > 1 ? "," : "", prefix, info.name);
        if (replaced) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            putf(header, s.entry, begin[t], end[t]);
#pragma GCC diagnostic pop
            continue;
        }
        putf(header, "{\"dtype\":\"%s\",\"shape\":[", dtype_names[s.dtype]);
        for (int64_t d = 0; d < info.ndim; d++)
            putf(header, "%s%lld", d ? "," : "", (long long)info.shape[d]);
        putf(header, "],\"data_offsets\":[%lld,%lld]}", begin[t], end[t]);
    }
    if (s.extra) {
        putf(header, "%s", header->n > 1 ? "," : "");
        put(header, s.extra, strlen(s.extra));
    }
    putf(header, "}");
}

static void file_seed(const char *name, int handle, uint8_t control, const attn_params *p, file_spec s)
{
    bytes header = {0}, data = {0};
    build_file(p, s, &header, &data);
    write_load_seed(name, handle, control, header.n, &header, &data);
    free(header.b);
    free(data.b);
}

/* ---- params_load seeds --------------------------------------------------------------------- */

#define OFFS "\"data_offsets\":[%lld,%lld]"
#define F32_12_4 "{\"dtype\":\"F32\",\"shape\":[12,4],"

/* test_params.c's malformed entries (a selection: one of each kind of error). */
static const struct {
    const char *name, *target, *entry, *extra, *nan_in;
    int extra_data;
} bad_files[] = {
    {"entry_number", NULL, "5", NULL, NULL, 0},
    {"entry_array", NULL, "[%lld,%lld]", NULL, NULL, 0},
    {"entry_no_dtype", NULL, "{\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"dtype_number", NULL, "{\"dtype\":32,\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"shape_string", NULL, "{\"dtype\":\"F32\",\"shape\":\"12,4\"," OFFS "}", NULL, NULL, 0},
    {"entry_no_offsets", NULL, "{\"dtype\":\"F32\",\"shape\":[12,4]}", NULL, NULL, 0},
    {"offsets_one", NULL, F32_12_4 "\"data_offsets\":[%lld]}", NULL, NULL, 0},
    {"offsets_three", NULL, F32_12_4 "\"data_offsets\":[%lld,%lld,0]}", NULL, NULL, 0},
    {"offsets_fraction", NULL, F32_12_4 "\"data_offsets\":[%lld.5,%lld]}", NULL, NULL, 0},
    {"offsets_leading_zero", NULL, F32_12_4 "\"data_offsets\":[%lld,0%lld]}", NULL, NULL, 0},
    {"offsets_nested", NULL, F32_12_4 "\"data_offsets\":[%lld,[%lld]]}", NULL, NULL, 0},
    {"dtype_twice", NULL, "{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"offsets_twice", NULL, F32_12_4 OFFS ",\"data_offsets\":[0,192]}", NULL, NULL, 0},
    {"shape_negative", NULL, "{\"dtype\":\"F32\",\"shape\":[-12,4]," OFFS "}", NULL, NULL, 0},
    {"shape_float", NULL, "{\"dtype\":\"F32\",\"shape\":[12,4.5]," OFFS "}", NULL, NULL, 0},
    {"shape_1e300", NULL, "{\"dtype\":\"F32\",\"shape\":[1e300]," OFFS "}", NULL, NULL, 0},
    {"shape_2p63", NULL, "{\"dtype\":\"F32\",\"shape\":[9223372036854775808]," OFFS "}", NULL, NULL, 0},
    {"shape_product_overflow", NULL, "{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296]," OFFS "}", NULL, NULL, 0},
    {"shape_bytes_overflow", NULL, "{\"dtype\":\"F64\",\"shape\":[1073741824,1073741824,4]," OFFS "}", NULL, NULL, 0},
    {"bytes_mismatch", NULL, "{\"dtype\":\"F32\",\"shape\":[12,3]," OFFS "}", NULL, NULL, 0},
    {"bytes_f64_mismatch", NULL, "{\"dtype\":\"F64\",\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"i32_wrong_count", "bias_hh_l1", "{\"dtype\":\"I32\",\"shape\":[13]," OFFS "}", NULL, NULL, 0},
    {"offsets_gap", NULL, F32_12_4 "\"data_offsets\":[1873,2065]}", NULL, NULL, 0},
    {"offsets_overlap", NULL, F32_12_4 "\"data_offsets\":[768,960]}", NULL, NULL, 0},
    {"offsets_alias", "nothing", NULL, "\"alias\":{\"dtype\":\"F32\",\"shape\":[12,4],\"data_offsets\":[1872,2064]}",
     NULL, 0},
    {"empty_inside", "nothing", NULL, "\"inside\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1900,1900]}",
     NULL, 0},
    {"data_unused_start", NULL, NULL, NULL, NULL, 2},
    {"unknown_bad_size", NULL, NULL, "\"elsewhere.x\":{\"dtype\":\"Q7\",\"shape\":[3],\"data_offsets\":[0,100000]}",
     NULL, 0},
    {"name_nul", "bias_ih_l0", NULL,
     "\"bias_ih_l0\\u0000junk\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[0,48]}", NULL, 48},
    {"dtype_nul", NULL, "{\"dtype\":\"F32\\u0000\",\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"utf8_overlong", NULL, NULL, "\"a\xC0\x80\":{}", NULL, 0},
    {"utf8_surrogate", NULL, NULL, "\"__metadata__\":{\"a\":\"\xED\xA0\x80\"}", NULL, 0},
    {"utf8_escaped_low_surrogate", NULL, NULL, "\"__metadata__\":{\"a\":\"\\uDC00\"}", NULL, 0},
    {"duplicate_tensor", NULL, NULL, "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[12],\"data_offsets\":[0,48]}",
     NULL, 0},
    {"metadata_array", NULL, NULL, "\"__metadata__\":[]", NULL, 0},
    {"metadata_number_value", NULL, NULL, "\"__metadata__\":{\"format\":1}", NULL, 0},
    {"metadata_nested", NULL, NULL, "\"__metadata__\":{\"format\":\"pt\",\"nested\":{}}", NULL, 0},
    {"dtype_q7", NULL, "{\"dtype\":\"Q7\",\"shape\":[12,4]," OFFS "}", NULL, NULL, 0},
    {"shape_transposed", NULL, "{\"dtype\":\"F32\",\"shape\":[4,12]," OFFS "}", NULL, NULL, 0},
    {"shape_ten_dims", NULL, "{\"dtype\":\"F32\",\"shape\":[1,2,1,1,1,1,1,1,1,24]," OFFS "}", NULL, NULL, 0},
    {"tensor_missing", "weight_hh_l0", NULL, NULL, NULL, 0},
    {"value_nan", "nothing", NULL, NULL, "bias_hh_l1_reverse", 0},
};

/* test_params.c's malformed headers. */
#define HEADER(name, text) {name, text, sizeof text - 1}
static const struct {
    const char *name, *text;
    size_t len;
} bad_headers[] = {
    HEADER("header_empty", ""),
    HEADER("header_truncated", "{\"a\": "),
    HEADER("header_array", "[1, 2]"),
    HEADER("header_null", "null"),
    HEADER("header_trailing_byte", "{}x"),
    HEADER("header_trailing_nul", "{} \0"),
    HEADER("header_bom", "\xEF\xBB\xBF{}"),
    HEADER("header_control_char", "{\v}"),
    HEADER("header_comment", "{/**/}"),
    HEADER("header_trailing_comma", "{\"__metadata__\":{},}"),
    HEADER("header_empty_object", "{}   \t\r\n"),
};
#undef HEADER

static void params_load_seeds(void)
{
    char name[256];
    fuzz_handle h[FUZZ_N_HANDLES];
    for (int i = 0; i < FUZZ_N_HANDLES; i++) {
        if (fuzz_make_handle(&h[i], i) != ATTN_OK || attn_params_init(h[i].params, 11) != ATTN_OK)
            die(attn_last_error());
        for (int d = 0; d < 4; d++) {
            /* Each dtype under another prefix and flag; every other file also goes through open. */
            const int flags = (i + d) % 3;
            const uint8_t control = (uint8_t)(d << 4 | flags | ((i + d) % 2 ? 0x40 : 0));
            snprintf(name, sizeof name, "valid_%s_%s", h[i].name, dtype_names[d]);
            file_seed(name, i, control, h[i].params,
                      (file_spec){.dtype = d, .prefix = fuzz_prefixes[d],
                                  .metadata = d == F32 ? "{\"format\":\"pt\"}" : NULL});
        }
    }

    /* What attn_params_save writes, as the loader's usual input. */
    char tmp[] = "/tmp/attn-fuzz-seed-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0)
        die("mkstemp");
    close(fd);
    if (attn_params_save(h[8].params, tmp, "m.") != ATTN_OK)
        die(attn_last_error());
    FILE *f = fopen(tmp, "rb");
    bytes saved = {0};
    uint8_t c[2] = {8, 2 << 4 | ATTN_LOAD_REJECT_UNKNOWN | 0x40}, buf[4096];
    put(&saved, c, 2);
    for (size_t n; f && (n = fread(buf, 1, sizeof buf, f)) > 0;)
        put(&saved, buf, n);
    if (!f || fclose(f) != 0)
        die("reading the saved file");
    remove(tmp);
    write_seed("params_load", "valid_perceiver_saved", &saved);
    free(saved.b);

    /* The GRU of tests/test_params.c and its malformed files. Its F32 values are the test's layout
     * only in their offsets; the values are the handle's. */
    const attn_params *gru = h[1].params;
    for (size_t k = 0; k < sizeof bad_files / sizeof *bad_files; k++) {
        snprintf(name, sizeof name, "bad_%s", bad_files[k].name);
        file_seed(name, 1, k % 2 ? 0x40 : 0, gru,
                  (file_spec){.target = bad_files[k].target ? bad_files[k].target : "weight_hh_l0",
                              .entry = bad_files[k].target && !bad_files[k].entry ? NULL
                                       : bad_files[k].entry ? bad_files[k].entry
                                                            : F32_12_4 OFFS "}",
                              .extra = bad_files[k].extra, .extra_data = bad_files[k].extra_data,
                              .nan_in = bad_files[k].nan_in});
    }
    /* Skipped fields nest at most 128 levels: one file just within, one beyond. */
    for (int deeper = 0; deeper < 2; deeper++) {
        bytes entry = {0};
        putf(&entry, "%s", F32_12_4 OFFS ",\"deep\":");
        for (int j = 0; j < 126; j++)
            put(&entry, "[", 1);
        if (deeper)
            put(&entry, "[]", 2);
        for (int j = 0; j < 126; j++)
            put(&entry, "]", 1);
        put(&entry, "}", 2); /* with the NUL */
        snprintf(name, sizeof name, "%s", deeper ? "bad_nesting_129" : "valid_nesting_128");
        file_seed(name, 1, 0x40, gru, (file_spec){.target = "weight_hh_l0", .entry = (const char *)entry.b});
        free(entry.b);
    }
    for (size_t k = 0; k < sizeof bad_headers / sizeof *bad_headers; k++) {
        bytes header = {0};
        put(&header, bad_headers[k].text, bad_headers[k].len);
        snprintf(name, sizeof name, "bad_%s", bad_headers[k].name);
        write_load_seed(name, 1, k % 2 ? 0x41 : 0, header.n, &header, NULL);
        free(header.b);
    }
    /* Files shorter than the length field, lengths beyond the file or the format's limit, data
     * that belongs to no tensor. */
    bytes empty = {0}, shorty = {0}, data = {0};
    put(&empty, "{}", 2);
    uint8_t five[7] = {1, 0, 0x10, 0, 0, 0, 0};
    put(&shorty, five, sizeof five);
    write_seed("params_load", "bad_shorter_than_length", &shorty);
    write_load_seed("bad_length_beyond_file", 1, 0, 1000, &empty, NULL);
    write_load_seed("bad_length_2p64", 1, 0x40, UINT64_MAX, &empty, NULL);
    put(&data, "abcd", 4);
    write_load_seed("bad_data_without_tensor", 1, ATTN_LOAD_ALLOW_MISSING, 2, &empty, &data);
    free(empty.b);
    free(shorty.b);
    free(data.b);

    /* Values the loader converts but must refuse, in a file of one tensor (bias_ih_l0 [12]). */
    static const struct {
        const char *name;
        int dtype;
        uint64_t raw;
    } specials[] = {{"bad_f16_infinity", F16, 0x7C00u},
                    {"bad_bf16_nan", BF16, 0x7FC1u},
                    {"bad_f64_beyond_float", F64, 0x4810000000000000ull}, /* 2^130 */
                    {"valid_f16_subnormal", F16, 0x0001u}};
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
        bytes header = {0}, values = {0};
        const int size = dtype_sizes[specials[k].dtype];
        putf(&header, "{\"bias_ih_l0\":{\"dtype\":\"%s\",\"shape\":[12],\"data_offsets\":[0,%d]}}",
             dtype_names[specials[k].dtype], 12 * size);
        for (int j = 0; j < 12; j++)
            put_le(&values, j == 5 ? specials[k].raw : 0, size);
        write_load_seed(specials[k].name, 1, ATTN_LOAD_ALLOW_MISSING | 0x40, header.n, &header, &values);
        free(header.b);
        free(values.b);
    }
    for (int i = 0; i < FUZZ_N_HANDLES; i++)
        h[i].destroy(h[i].h);
}

/* ---- forward seeds ------------------------------------------------------------------------- */

/* A program: the control bytes, then moderate values (bytes 16..215 decode to [-6, 6.4]). */
static void program(const char *name, const uint8_t *control, size_t n)
{
    bytes f = {0};
    put(&f, control, n);
    uint32_t s = 12345u + (uint32_t)n;
    for (int i = 0; i < 320; i++) {
        s = s * 1103515245u + 12345u;
        put_le(&f, 16 + (s >> 16) % 200, 1);
    }
    write_seed("forward", name, &f);
    free(f.b);
}
#define PROGRAM(name, ...)                                                                                        \
    do {                                                                                                          \
        static const uint8_t control_[] = {__VA_ARGS__};                                                          \
        program(name, control_, sizeof control_);                                                                 \
    } while (0)

/* The byte layouts are those of fuzz_forward.c (sizes are stored minus 1; corrupt = 100 leaves the
 * options valid; weights mode 1 = attn_params_init with the next byte). */
static void forward_seeds(void)
{
    /* RNN: cell, recurrence, bidirectional, bias, I-1, L-1, {H-1, rank-1 | F-1, p_f-1...}, corrupt,
     * weights, seed, B-1, T-1, how (1 lengths, 2 h0, 4 c0, 8 h_n, 16 c_n), lengths (0 = T),
     * layer, direction, workspace (0 NULL, 1 shared, 2 new). */
    PROGRAM("rnn_lstm_dense_bidir_lengths", 0, 2, 0, 1, 1, 2, 1, 3, 0, 100, 1, 9, 1, 2, 31, 0, 1, 1, 1, 2);
    PROGRAM("rnn_gru_lowrank", 0, 3, 1, 0, 1, 1, 0, 5, 1, 100, 1, 3, 2, 3, 10, 0, 0, 0, 0, 0, 1);
    PROGRAM("rnn_tanh_kronecker", 0, 0, 2, 1, 0, 2, 0, 1, 1, 1, 100, 1, 5, 0, 4, 0, 0, 0, 0);
    PROGRAM("rnn_relu_dense_layers", 0, 1, 0, 0, 1, 0, 2, 6, 6, 100, 1, 1, 1, 3, 9, 2, 0, 2, 0, 2);
    /* memory RNN: I-1, O-1, C-1, L-1, R-1, N-1, W-1, addressing, top_k, corrupt, weights, seed,
     * B-1, T-1, how (1 read_weights, 2 memory_out), workspace. */
    PROGRAM("memrnn_dense", 1, 2, 1, 3, 0, 0, 3, 2, 0, 0, 100, 1, 4, 1, 2, 3, 2);
    PROGRAM("memrnn_sparse_topk", 1, 1, 1, 2, 1, 1, 5, 1, 1, 2, 100, 1, 8, 0, 3, 1, 1);
    /* attention: kind, heads-1, head dim-1, kdim, vdim, bias, [causal if FULL], memory_mode,
     * {max_seq_len-1, proj_len-1, sharing | pinv, landmarks-1, iterations, conv index}, corrupt,
     * weights, seed, B-1, L-1, how (1 S = L, 2 self-attention, 4 mask, 8 attention matrix),
     * [S-1], workspace. */
    PROGRAM("mha_full_causal_mask", 2, 0, 1, 1, 3, 0, 1, 1, 1, 100, 1, 2, 1, 2, 12, 3, 2);
    PROGRAM("mha_full_streaming_self", 2, 0, 0, 1, 0, 0, 1, 0, 2, 100, 1, 6, 0, 3, 7, 0);
    PROGRAM("mha_linformer_none_mask", 2, 1, 0, 3, 0, 2, 0, 0, 5, 2, 2, 100, 1, 7, 1, 2, 12, 4, 1);
    PROGRAM("mha_nystrom_newton_conv", 2, 2, 1, 1, 0, 0, 1, 0, 0, 1, 6, 2, 100, 1, 4, 0, 4, 9, 2);
    PROGRAM("mha_nystrom_svd_mask", 2, 2, 0, 3, 0, 0, 1, 0, 1, 2, 0, 0, 100, 1, 5, 1, 3, 12, 5, 0);
    /* Perceiver: C-1, axis-1, fourier, extra bands, max_freq index, depth-1, M-1, D-1, cross heads-1,
     * cross dim-1, latent heads-1, latent dim-1, self per cross, tie, classes, corrupt, weights,
     * seed, B-1, axis sizes-1..., how (1 mask), workspace. */
    PROGRAM("perceiver_fourier_tied_mask", 3, 1, 1, 1, 1, 2, 1, 2, 3, 0, 1, 1, 1, 1, 1, 2, 100, 1, 3, 1, 1, 2, 1, 2);
    PROGRAM("perceiver_plain_latents", 3, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 0, 0, 2, 0, 0, 100, 1, 1, 0, 2, 0, 1);
    /* analysis: rows-1, cols-1, how (1 factors), rank for the error (+1), rank for the factors. */
    PROGRAM("analysis_tall_factors", 4, 4, 2, 1, 3, 2);
    PROGRAM("analysis_wide", 4, 3, 6, 0, 5, 0);
    /* Rejections: an absurd batch, an out-of-range option, a length beyond seq_len. */
    PROGRAM("reject_mha_batch_absurd", 2, 0, 0, 0, 0, 0, 1, 0, 0, 100, 1, 1, 251, 2, 1, 0);
    PROGRAM("reject_rnn_rank_option", 0, 0, 1, 0, 1, 1, 0, 3, 1, 7, 1, 1, 0, 0, 0, 0);
    PROGRAM("reject_rnn_length", 0, 2, 0, 0, 1, 1, 0, 3, 0, 100, 1, 1, 1, 2, 1, 0, 3, 0, 0, 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR (with subdirectories params_load and forward)\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    params_load_seeds();
    forward_seeds();
    printf("fuzz_make_seeds: %d params_load and %d forward seeds in %s\n", files_written[0], files_written[1],
           out_dir);
    return 0;
}
