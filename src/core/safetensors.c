/* attn_params_load, attn_params_open and attn_params_save: the safetensors format (8-byte little-endian header
 * length, a JSON header, then raw little-endian tensor data).
 *
 * The header is parsed in one streaming pass: yajl's callbacks drive a small state machine that
 * builds the compact entry array directly, so no JSON tree is ever built and a load holds little
 * more than the header's text and the entries and names it keeps. Every number is validated
 * against the file before it is used, and load is all-or-nothing: tensors are decoded into a
 * staging copy of the parameters that replaces them only once everything has succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "core/params_internal.h"

#define MAX_HEADER 100000000 /* the reference implementation's limit */
#define MAX_DEPTH 128        /* nesting accepted (serde_json, the reference's parser: 127) */
#define CHUNK 16384          /* bytes read or written at a time */
#define NAME_BLOCK 65536     /* bytes of a block of names */

typedef enum { DECODE_F32, DECODE_F64, DECODE_F16, DECODE_BF16, DECODE_NONE } decode_kind;

/* Every dtype of the format, so that sizes are checked even for tensors that are never loaded. */
static const struct dtype {
    const char *name;
    int size;
    decode_kind kind;
} dtypes[] = {
    {"F32", 4, DECODE_F32},      {"F64", 8, DECODE_F64},      {"F16", 2, DECODE_F16},  {"BF16", 2, DECODE_BF16},
    {"BOOL", 1, DECODE_NONE},    {"U8", 1, DECODE_NONE},      {"I8", 1, DECODE_NONE},  {"F8_E4M3", 1, DECODE_NONE},
    {"F8_E5M2", 1, DECODE_NONE}, {"I16", 2, DECODE_NONE},     {"U16", 2, DECODE_NONE}, {"I32", 4, DECODE_NONE},
    {"U32", 4, DECODE_NONE},     {"I64", 8, DECODE_NONE},     {"U64", 8, DECODE_NONE},
};

/* NULL for a dtype this table does not define (newer versions of the format add some: such a
 * tensor is validated except for its size, and rejected only if it is to be loaded). */
static const struct dtype *find_dtype(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strlen(dtypes[i].name) == len && !memcmp(dtypes[i].name, name, len))
            return &dtypes[i];
    return NULL;
}

/* One validated tensor entry of the header. */
typedef struct entry {
    const char *name, *dtype_name; /* in the name arena (a known dtype_name: in dtypes[]) */
    int64_t ndim;
    int64_t shape[ATTN__MAX_DIMS]; /* the first extents: a longer shape matches no parameter */
    int64_t begin, end;            /* byte offsets into the data section */
} entry;

static const struct dtype *dtype_of(const entry *e) { return find_dtype(e->dtype_name, strlen(e->dtype_name)); }

static uint64_t read_le(const unsigned char *b, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void write_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++, v >>= 8)
        b[i] = (unsigned char)v;
}

/* Converts one element to float32; a value float32 cannot hold comes out non-finite. */
static float decode(const unsigned char *b, decode_kind kind)
{
    uint32_t u;
    float f;
    switch (kind) {
    case DECODE_F64: {
        uint64_t bits = read_le(b, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        /* Converting an out-of-range double to float is undefined behaviour in C. */
        return fabs(d) <= FLT_MAX ? (float)d : INFINITY;
    }
    case DECODE_F16: {
        int e = (int)(b[1] >> 2 & 31), m = (int)(read_le(b, 2) & 1023);
        float v = e == 31 ? (m ? NAN : INFINITY) : e ? ldexpf((float)(m + 1024), e - 25) : ldexpf((float)m, -24);
        return b[1] & 0x80 ? -v : v;
    }
    case DECODE_BF16: u = (uint32_t)read_le(b, 2) << 16; break;
    default: u = (uint32_t)read_le(b, 4); break;
    }
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points beyond U+10FFFF, which
 * yajl's own check lets through and the reference implementation rejects. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4                 ? 4 : 0;
        if (!len || n - i < len)
            return false;
        /* The second byte's range is what excludes the overlong forms, surrogates and the rest. */
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        for (size_t k = 1; k < len; k++, lo = 0x80, hi = 0xBF)
            if (s[i + k] < lo || s[i + k] > hi)
                return false;
        i += len;
    }
    return true;
}

static attn_status io_fail(const char *fn, const char *what, const char *path)
{
    char reason[128] = "unknown error";
    strerror_r(errno, reason, sizeof reason);
    return attn__fail(ATTN_E_IO, "%s: cannot %s '%s': %s", fn, what, path, reason);
}

/* ---- yajl's memory ----------------------------------------------------------------------------- */

/* yajl does not check its own allocations (it writes through whatever pointer it gets), so they
 * go through these functions: a failure jumps back to the setjmp before the call into yajl, and
 * since yajl's structures may then be half-built, every block it holds is freed from this table. */
#define JSON_BLOCKS 16 /* yajl holds at most 8 blocks at once (parser) or 3 (generator) */

typedef struct json_memory {
    jmp_buf failed;
    void *blocks[JSON_BLOCKS];
} json_memory;

static void *json_realloc(void *ctx, void *old, size_t size)
{
    json_memory *m = ctx;
    int slot = 0;
    while (slot < JSON_BLOCKS && m->blocks[slot] != old) /* old NULL: a free slot */
        slot++;
    void *block = slot < JSON_BLOCKS ? realloc(old, size) : NULL;
    if (!block)
        longjmp(m->failed, 1);
    m->blocks[slot] = block;
    return block;
}

static void *json_malloc(void *ctx, size_t size) { return json_realloc(ctx, NULL, size); }

static void json_free(void *ctx, void *block)
{
    json_memory *m = ctx;
    for (int slot = 0; block && slot < JSON_BLOCKS; slot++)
        if (m->blocks[slot] == block)
            m->blocks[slot] = NULL;
    free(block);
}

/* Runs work(arg), which calls into yajl with `m` as its allocator's context. If one of yajl's
 * allocations fails, every block yajl held is freed and the result is ATTN_E_NOMEM. `m` lives in
 * the caller's frame and this function changes no local after setjmp, so nothing is indeterminate
 * after the jump. */
static attn_status json_guard(json_memory *m, attn_status (*work)(void *), void *arg, const char *fn,
                              const char *path)
{
    if (setjmp(m->failed)) {
        for (int slot = 0; slot < JSON_BLOCKS; slot++) {
            free(m->blocks[slot]);
            m->blocks[slot] = NULL;
        }
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory handling the JSON header of '%s'", fn, path);
    }
    return work(arg);
}

/* ---- load ----------------------------------------------------------------------------------- */

static const char LOAD[] = "attn_params_load";

/* Names live in the blocks of one arena: they never move, so entries point into them, and a failed
 * load holds no more than the names it has read. */
typedef struct name_block {
    struct name_block *next;
    size_t used, size;
    char text[];
} name_block;

/* Where the parse is: what the next JSON event may be. */
typedef enum {
    AT_ROOT,                        /* before the header's object */
    IN_ROOT,                        /* between its members */
    AT_METADATA, IN_METADATA,       /* after the key "__metadata__"; inside its object */
    AT_TENSOR, IN_TENSOR,           /* after a tensor's name; between the fields of its object */
    AT_DTYPE, AT_SHAPE, AT_OFFSETS, /* after a field's key (in the order of `fields`) */
    IN_SHAPE, IN_OFFSETS,           /* inside those arrays */
    SKIPPING,                       /* inside the value of an unknown field */
    DONE,                           /* after the header's object */
} parse_state;

static const char *const fields[] = {"dtype", "shape", "data_offsets"};

typedef enum { J_LITERAL, J_NUMBER, J_STRING, J_OBJECT, J_ARRAY } json_kind;

typedef struct loader {
    const char *fn; /* the public function loading: messages name it */
    attn_params *p;
    const char *path, *prefix;
    uint32_t flags;
    int fd;
    int64_t file_size, data_start, data_size;
    entry *entries;
    int64_t n_entries, cap_entries;
    name_block *names;
    const entry **chosen; /* per parameter: the file tensor it is read from, or NULL */
    float *staging;

    /* The parse. */
    unsigned char *header; /* its text */
    json_memory json_memory;
    yajl_handle json;
    attn_status status;    /* the first violation, which cancels the parse */
    parse_state state;
    int depth, skip_depth; /* containers open; the depth of the object whose field is skipped */
    bool seen_metadata;
    entry cur;             /* the tensor being parsed, */
    unsigned seen_fields;  /* its fields seen so far (bit i: fields[i]), */
    int64_t count;         /* the product of its extents so far, */
    int n_offsets;         /* and of its data_offsets */
    char key[64];          /* the metadata key being parsed, for messages */
    char what[64];         /* describe()'s text */
} loader;

static attn_status nomem(const loader *L)
{
    return attn__fail(ATTN_E_NOMEM, "%s: out of memory reading the header of '%s'", L->fn, L->path);
}

/* n bytes at `offset` of the file. Its size was checked beforehand, so running short means the
 * file changed meanwhile. */
static attn_status read_at(const loader *L, void *buf, size_t n, int64_t offset)
{
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(L->fd, (char *)buf + done, n - done, (off_t)(offset + (int64_t)done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return io_fail(L->fn, "read", L->path);
        if (got == 0)
            return attn__fail(ATTN_E_IO, "%s: '%s' ended early (was it changed while loading?)", L->fn, L->path);
        done += (size_t)got;
    }
    return ATTN_OK;
}

/* Names fill blocks of NAME_BLOCK bytes; a long one gets a block of its own, linked behind the
 * current one, so that the blocks never hold much more than the names. */
static const char *keep_name(loader *L, const char *s, size_t len)
{
    name_block *b = L->names;
    if (!b || b->size - b->used <= len) {
        const bool own = len >= NAME_BLOCK / 4;
        const size_t size = own ? len + 1 : NAME_BLOCK;
        if (!(b = malloc(sizeof *b + size)))
            return NULL;
        b->used = 0;
        b->size = size;
        name_block **at = own && L->names ? &L->names->next : &L->names;
        b->next = *at;
        *at = b;
    }
    char *copy = b->text + b->used;
    memcpy(copy, s, len);
    copy[len] = '\0';
    b->used += len + 1;
    return copy;
}

/* A JSON value in a message: a number or literal as written (cut if long), else its kind. */
static const char *describe(loader *L, json_kind kind, const char *text, size_t len)
{
    static const char *const kinds[] = {"a string", "an object", "an array"};
    if (kind >= J_STRING)
        return kinds[kind - J_STRING];
    const size_t max = sizeof L->what - 4;
    snprintf(L->what, sizeof L->what, len > max ? "%.*s..." : "%.*s", (int)(len > max ? max : len), text);
    return L->what;
}

/* An integer in [0, 2^63): digits only, so no sign, fraction or exponent (3.0 and 1e5 are not
 * integers to the reference either); yajl has already rejected leading zeros. */
static bool parse_size(json_kind kind, const char *text, size_t len, int64_t *out)
{
    if (kind != J_NUMBER || !len)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int digit = text[i] - '0';
        if (digit < 0 || digit > 9 || v > (INT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

/* The tensor's object is complete: check it on its own, then keep it. */
static attn_status add_entry(loader *L)
{
    const entry *e = &L->cur;
    for (int f = 0; f < 3; f++)
        if (!(L->seen_fields & 1u << f))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': header entry lacks \"%s\"", L->fn, e->name, fields[f]);
    if (e->begin > e->end)
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", L->fn,
                          e->name, (long long)e->begin, (long long)e->end);
    if (e->end > L->data_size)
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] do not fit the %lld data bytes",
                          L->fn, e->name, (long long)e->begin, (long long)e->end, (long long)L->data_size);
    const struct dtype *d = dtype_of(e);
    int64_t bytes;
    if (d && !attn__mul(L->count, d->size, &bytes))
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': the byte size overflows", L->fn, e->name);
    if (d && bytes != e->end - e->begin)
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets span %lld bytes, but %lld %s elements "
                          "need %lld", L->fn, e->name, (long long)(e->end - e->begin), (long long)L->count, d->name,
                          (long long)bytes);
    entry *grown = attn__grow(L->entries, L->n_entries, &L->cap_entries, sizeof *grown);
    if (!grown)
        return nomem(L);
    L->entries = grown;
    L->entries[L->n_entries++] = *e;
    return ATTN_OK;
}

/* A value begins (a scalar, or an object or array that opens): is it what the state expects? */
static attn_status on_value(loader *L, json_kind kind, const char *text, size_t len)
{
    entry *e = &L->cur;
    const struct dtype *known;
    int64_t extent;
    switch (L->state) {
    case AT_ROOT:
        if (kind != J_OBJECT)
            return attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is %s, not a JSON object", L->fn, L->path,
                              describe(L, kind, text, len));
        L->state = IN_ROOT;
        break;
    case AT_METADATA:
        if (kind == J_LITERAL && len == 4 && !memcmp(text, "null", 4)) { /* the reference's "no metadata" */
            L->state = IN_ROOT;
            break;
        }
        if (kind != J_OBJECT)
            return attn__fail(ATTN_E_FORMAT, "%s: '%s': \"__metadata__\" is %s, not a JSON object", L->fn, L->path,
                              describe(L, kind, text, len));
        L->state = IN_METADATA;
        break;
    case IN_METADATA:
        if (kind != J_STRING)
            return attn__fail(ATTN_E_FORMAT, "%s: '%s': \"__metadata__\" entry '%s' is %s, not a string", L->fn,
                              L->path, L->key, describe(L, kind, text, len));
        break;
    case AT_TENSOR:
        if (kind != J_OBJECT)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': header entry is %s, not a JSON object", L->fn, e->name,
                              describe(L, kind, text, len));
        L->state = IN_TENSOR;
        break;
    case AT_DTYPE:
        if (kind != J_STRING)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': \"dtype\" is %s, not a string", L->fn, e->name,
                              describe(L, kind, text, len));
        if (memchr(text, '\0', len))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': \"dtype\" contains a NUL byte", L->fn, e->name);
        known = find_dtype(text, len);
        e->dtype_name = known ? known->name : keep_name(L, text, len);
        if (!e->dtype_name)
            return nomem(L);
        L->state = IN_TENSOR;
        break;
    case AT_SHAPE:
    case AT_OFFSETS:
        if (kind != J_ARRAY)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': \"%s\" is %s, not an array", L->fn, e->name,
                              fields[L->state - AT_DTYPE], describe(L, kind, text, len));
        L->state = L->state == AT_SHAPE ? IN_SHAPE : IN_OFFSETS;
        break;
    case IN_SHAPE:
        if (!parse_size(kind, text, len, &extent))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': shape[%lld] is %s, not an integer in [0, 2^63)", L->fn,
                              e->name, (long long)e->ndim, describe(L, kind, text, len));
        if (!attn__mul(L->count, extent, &L->count))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': the element count overflows int64 at shape[%lld]",
                              L->fn, e->name, (long long)e->ndim);
        if (e->ndim < ATTN__MAX_DIMS)
            e->shape[e->ndim] = extent;
        e->ndim++;
        break;
    case IN_OFFSETS:
        if (L->n_offsets == 2)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets has more than 2 elements", L->fn, e->name);
        if (!parse_size(kind, text, len, L->n_offsets ? &e->end : &e->begin))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets[%d] is %s, not an integer in [0, 2^63)",
                              L->fn, e->name, L->n_offsets, describe(L, kind, text, len));
        L->n_offsets++;
        break;
    default: /* SKIPPING */
        break;
    }
    if (kind == J_OBJECT || kind == J_ARRAY) {
        /* Only a skipped field can nest this deep; refusing it keeps yajl's stack bounded. */
        if (L->depth == MAX_DEPTH)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': a field nests deeper than %d levels", L->fn, e->name,
                              MAX_DEPTH);
        L->depth++;
    } else if (L->state == SKIPPING && L->depth == L->skip_depth) {
        L->state = IN_TENSOR;
    }
    return ATTN_OK;
}

static attn_status on_key(loader *L, const char *text, size_t len)
{
    switch (L->state) {
    case IN_ROOT: {
        if (len == 12 && !memcmp(text, "__metadata__", 12)) {
            if (L->seen_metadata)
                return attn__fail(ATTN_E_FORMAT, "%s: '%s': \"__metadata__\" appears twice in the header", L->fn,
                                  L->path);
            L->seen_metadata = true;
            L->state = AT_METADATA;
            break;
        }
        /* A C string would silently end at the NUL ("a\u0000b" would load as "a"). */
        const char *nul = memchr(text, '\0', len);
        if (nul)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%.*s\\u0000...': the name contains a NUL byte", L->fn,
                              (int)(nul - text), text);
        L->cur = (entry){.name = keep_name(L, text, len)};
        if (!L->cur.name)
            return nomem(L);
        L->seen_fields = 0;
        L->count = 1;
        L->n_offsets = 0;
        L->state = AT_TENSOR;
        break;
    }
    case IN_METADATA:
        snprintf(L->key, sizeof L->key, "%.*s", (int)(len < sizeof L->key ? len : sizeof L->key - 1), text);
        break;
    case IN_TENSOR:
        for (int f = 0; f < 3; f++)
            if (strlen(fields[f]) == len && !memcmp(text, fields[f], len)) {
                if (L->seen_fields & 1u << f)
                    return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': \"%s\" appears twice in its header entry",
                                      L->fn, L->cur.name, fields[f]);
                L->seen_fields |= 1u << f;
                L->state = (parse_state)(AT_DTYPE + f);
                return ATTN_OK;
            }
        /* Unknown fields are skipped, as the reference implementation (serde) does, so that files
         * of writers that add fields still load; skipping needs only the depth, so nothing of
         * them is stored whatever their size. */
        L->state = SKIPPING;
        L->skip_depth = L->depth;
        break;
    default: /* SKIPPING */
        break;
    }
    return ATTN_OK;
}

static attn_status on_close(loader *L)
{
    L->depth--;
    switch (L->state) {
    case IN_ROOT: L->state = DONE; break;
    case IN_METADATA: L->state = IN_ROOT; break;
    case IN_TENSOR: L->state = IN_ROOT; return add_entry(L);
    case IN_SHAPE: L->state = IN_TENSOR; break;
    case IN_OFFSETS:
        if (L->n_offsets != 2)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets has %d element%s, not 2", L->fn,
                              L->cur.name, L->n_offsets, L->n_offsets == 1 ? "" : "s");
        L->state = IN_TENSOR;
        break;
    default: /* SKIPPING */
        if (L->depth == L->skip_depth)
            L->state = IN_TENSOR;
        break;
    }
    return ATTN_OK;
}

static attn_status check_utf8(loader *L, const unsigned char *s, size_t len)
{
    if (valid_utf8(s, len))
        return ATTN_OK;
    return attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is not valid JSON near byte %lld (a string is not valid "
                      "UTF-8)", L->fn, L->path, (long long)yajl_get_bytes_consumed(L->json));
}

/* yajl's callbacks. Strings reach the state machine only as valid UTF-8. A callback returns 0,
 * which cancels the parse, at the first violation, and also once the header's object has closed
 * (DONE), so that parse_header checks what follows it rather than yajl. */
static int proceed(loader *L, attn_status s)
{
    L->status = s;
    return !s && L->state != DONE;
}

static int cb_null(void *L) { return proceed(L, on_value(L, J_LITERAL, "null", 4)); }
static int cb_boolean(void *L, int b) { return proceed(L, on_value(L, J_LITERAL, b ? "true" : "false", b ? 4 : 5)); }
static int cb_number(void *L, const char *s, size_t n) { return proceed(L, on_value(L, J_NUMBER, s, n)); }
static int cb_start_map(void *L) { return proceed(L, on_value(L, J_OBJECT, NULL, 0)); }
static int cb_start_array(void *L) { return proceed(L, on_value(L, J_ARRAY, NULL, 0)); }
static int cb_end(void *L) { return proceed(L, on_close(L)); }

static int cb_string(void *L, const unsigned char *s, size_t n)
{
    attn_status st = check_utf8(L, s, n);
    return proceed(L, st ? st : on_value(L, J_STRING, (const char *)s, n));
}

static int cb_key(void *L, const unsigned char *s, size_t n)
{
    attn_status st = check_utf8(L, s, n);
    return proceed(L, st ? st : on_key(L, (const char *)s, n));
}

/* With yajl_number set, yajl hands every number over as text (never as a lossy double). */
static const yajl_callbacks callbacks = {cb_null,   cb_boolean,   NULL,   NULL,           cb_number, cb_string,
                                         cb_start_map, cb_key, cb_end, cb_start_array, cb_end};

/* The outcome of one call into yajl; `at` is the header offset it stopped at. */
static attn_status json_status(loader *L, yajl_status ys, int64_t at)
{
    if (ys == yajl_status_ok)
        return ATTN_OK;
    if (ys == yajl_status_client_canceled)
        return L->status; /* ATTN_OK when the header's object has closed */
    unsigned char *why = yajl_get_error(L->json, 0, NULL, 0);
    attn_status s = attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is not valid JSON near byte %lld (%.*s)", L->fn,
                               L->path, (long long)at, (int)strcspn((const char *)why, "\n"), (const char *)why);
    yajl_free_error(L->json, why);
    return s;
}

/* Parses the header (under json_guard). It is read whole and handed to yajl in one call: yajl
 * rescans a token split across calls from its start at every call, which makes chunked input
 * quadratic in the length of a long string. */
static attn_status parse_header(void *arg)
{
    loader *L = arg;
    const size_t n = (size_t)(L->data_start - 8);
    unsigned char *header = L->header = malloc(n + 1);
    if (!header)
        return nomem(L);
    attn_status s = read_at(L, header, n, 8);
    if (s)
        return s;
    yajl_alloc_funcs funcs = {json_malloc, json_realloc, json_free, &L->json_memory};
    L->json = yajl_alloc(&callbacks, &funcs, L);
    /* yajl takes \v and \f for whitespace; JSON does not, and allows them nowhere else, so the
     * first one ends the valid text. */
    size_t valid = 0;
    while (valid < n && header[valid] != '\v' && header[valid] != '\f')
        valid++;
    yajl_status ys = yajl_parse(L->json, header, valid);
    const size_t end = yajl_get_bytes_consumed(L->json);
    s = json_status(L, ys, (int64_t)end);
    if (!s && L->state != DONE && valid < n)
        s = attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is not valid JSON at byte %zu (control character 0x%02x)",
                       L->fn, L->path, valid, header[valid]);
    if (!s && L->state != DONE)
        s = json_status(L, yajl_complete_parse(L->json), (int64_t)n);
    /* Writers pad the header with spaces after the object; anything else there is corruption. */
    for (size_t i = end; !s && L->state == DONE && i < n; i++)
        if (!memchr(" \t\r\n", header[i], 4))
            s = attn__fail(ATTN_E_FORMAT, "%s: '%s': unexpected byte at %zu after the JSON header", L->fn, L->path, i);
    yajl_free(L->json);
    free(header);
    L->header = NULL;
    return s;
}

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "of an unknown kind";
}

/* stat comes first so that a FIFO or device is never opened (that can block, or have side
 * effects); fstat then catches a path swapped in between, and O_NONBLOCK keeps even that open
 * from waiting for a FIFO's writer. */
static attn_status open_file(loader *L)
{
    struct stat st;
    if (stat(L->path, &st))
        return io_fail(L->fn, "open", L->path);
    if (S_ISREG(st.st_mode)) {
        L->fd = open(L->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (L->fd < 0)
            return io_fail(L->fn, "open", L->path);
        if (fstat(L->fd, &st))
            return io_fail(L->fn, "examine", L->path);
    }
    if (!S_ISREG(st.st_mode))
        return attn__fail(ATTN_E_IO, "%s: '%s' is not a regular file (it is %s)", L->fn, L->path,
                          file_kind(st.st_mode));
    /* Some file systems (network, FUSE) honour O_NONBLOCK on regular files too. */
    int flags = fcntl(L->fd, F_GETFL);
    if (flags < 0 || fcntl(L->fd, F_SETFL, flags & ~O_NONBLOCK))
        return io_fail(L->fn, "set up reading of", L->path);
    L->file_size = (int64_t)st.st_size;
    return ATTN_OK;
}

static attn_status read_header(loader *L)
{
    unsigned char len8[8];
    if (L->file_size < 8)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s' is %lld bytes, shorter than the 8-byte header length", L->fn,
                          L->path, (long long)L->file_size);
    attn_status s = read_at(L, len8, 8, 0);
    if (s)
        return s;
    uint64_t n = read_le(len8, 8);
    if (n > MAX_HEADER)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': header length %llu exceeds the format's limit of %d bytes", L->fn,
                          L->path, (unsigned long long)n, MAX_HEADER);
    if (n > (uint64_t)L->file_size - 8)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': header length %llu exceeds the %lld bytes after it", L->fn,
                          L->path, (unsigned long long)n, (long long)L->file_size - 8);
    L->data_start = 8 + (int64_t)n;
    L->data_size = L->file_size - L->data_start;
    return json_guard(&L->json_memory, parse_header, L, L->fn, L->path);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int compare_offsets(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* What can be checked only once the whole header is known. */
static attn_status check_entries(loader *L)
{
    entry *e = L->entries;
    const int64_t n = L->n_entries;
    if (!n)
        return !L->data_size ? ATTN_OK
                             : attn__fail(ATTN_E_FORMAT, "%s: '%s': the header lists no tensor, but %lld data bytes "
                                          "follow it", L->fn, L->path, (long long)L->data_size);
    qsort(e, (size_t)n, sizeof *e, compare_names);
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(e[i - 1].name, e[i].name))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s' appears twice in the header of '%s'", L->fn, e[i].name,
                              L->path);
    /* The data regions must tile the data section, as the format requires: sorted by offset, each
     * begins where the one before ends, from 0 to the end of the file. So no byte is read for two
     * tensors (overlap, aliasing) and none belongs to no tensor (gaps and trailing bytes betray a
     * shifted offset). */
    qsort(e, (size_t)n, sizeof *e, compare_offsets);
    for (int64_t i = 0, at = 0; i < n; at = e[i++].end) {
        if (e[i].begin < at)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] overlap those of tensor "
                              "'%s' [%lld, %lld]", L->fn, e[i].name, (long long)e[i].begin, (long long)e[i].end,
                              e[i - 1].name, (long long)e[i - 1].begin, (long long)e[i - 1].end);
        if (e[i].begin > at)
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] leave bytes [%lld, %lld) of "
                              "the data unused", L->fn, e[i].name, (long long)e[i].begin, (long long)e[i].end,
                              (long long)at, (long long)e[i].begin);
    }
    if (e[n - 1].end < L->data_size)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': data bytes [%lld, %lld) after tensor '%s' belong to no tensor",
                          L->fn, L->path, (long long)e[n - 1].end, (long long)L->data_size, e[n - 1].name);
    return ATTN_OK;
}

static bool same_shape(const entry *e, const attn__tensor *t)
{
    if (e->ndim != t->ndim)
        return false;
    for (int64_t d = 0; d < t->ndim; d++)
        if (e->shape[d] != t->shape[d])
            return false;
    return true;
}

/* Assigns a file tensor to every parameter (its own name wins over an alias) and checks it. */
static attn_status match(loader *L)
{
    attn_params *p = L->p;
    size_t plen = strlen(L->prefix);
    L->chosen = calloc((size_t)p->n + 1, sizeof *L->chosen);
    if (!L->chosen)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", L->fn);
    for (int64_t k = 0; k < L->n_entries; k++) {
        const entry *e = &L->entries[k];
        if (strncmp(e->name, L->prefix, plen))
            continue;
        int64_t i = attn__params_lookup(p, e->name + plen);
        if (i < 0 && (L->flags & ATTN_LOAD_REJECT_UNKNOWN))
            return attn__fail(ATTN_E_NOT_FOUND, "%s: unknown tensor '%s' in file '%s' (no parameter '%s')", L->fn,
                              e->name, L->path, e->name + plen);
        if (i >= 0 && (!L->chosen[i] || !strcmp(e->name + plen, p->tensors[i].name)))
            L->chosen[i] = e;
    }
    for (int64_t i = 0; i < p->n; i++) {
        const entry *e = L->chosen[i];
        const attn__tensor *t = &p->tensors[i];
        if (!e && !(L->flags & ATTN_LOAD_ALLOW_MISSING))
            return attn__fail(ATTN_E_NOT_FOUND, "%s: tensor '%s%s' is missing from '%s'", L->fn, L->prefix, t->name,
                              L->path);
        if (!e)
            continue;
        if (!dtype_of(e) || dtype_of(e)->kind == DECODE_NONE)
            return attn__fail(ATTN_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s; only F32, F64, F16 and BF16 load",
                              L->fn, e->name, e->dtype_name);
        if (!same_shape(e, t)) {
            char found[160], expected[160];
            attn__shape_str(found, sizeof found, e->ndim, e->shape);
            attn__shape_str(expected, sizeof expected, t->ndim, t->shape);
            return attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' has shape %s in '%s', parameter '%s' expects %s", L->fn,
                              e->name, found, L->path, t->name, expected);
        }
    }
    return ATTN_OK;
}

/* Reads one tensor in chunks into dst, rejecting values float32 cannot hold. */
static attn_status read_tensor(const loader *L, const entry *e, float *dst, int64_t count)
{
    unsigned char chunk[CHUNK];
    const struct dtype *d = dtype_of(e);
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < CHUNK / d->size ? count - done : CHUNK / d->size;
        attn_status s = read_at(L, chunk, (size_t)(n * d->size), L->data_start + e->begin + done * d->size);
        if (s)
            return s;
        for (int64_t i = 0; i < n; i++, done++) {
            dst[done] = decode(chunk + i * d->size, d->kind);
            if (!isfinite(dst[done]))
                return attn__fail(ATTN_E_NUMERICAL, "%s: tensor '%s': element %lld is NaN, infinite or beyond the "
                                  "float32 range", L->fn, e->name, (long long)done);
        }
    }
    return ATTN_OK;
}

static attn_status load(loader *L)
{
    attn_status s = open_file(L);
    if (!s)
        s = read_header(L);
    if (!s)
        s = check_entries(L);
    if (!s)
        s = match(L);
    if (s)
        return s;
    attn_params *p = L->p;
    size_t bytes = (size_t)p->block * sizeof(float);
    if (!bytes)
        return ATTN_OK;
    L->staging = attn__alloc(bytes);
    if (!L->staging)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %zu bytes of staging", L->fn, bytes);
    memcpy(L->staging, p->data, bytes); /* absent tensors keep their values (ALLOW_MISSING) */
    for (int64_t i = 0; i < p->n && !s; i++)
        if (L->chosen[i])
            s = read_tensor(L, L->chosen[i], L->staging + p->tensors[i].offset, p->tensors[i].count);
    if (!s)
        memcpy(p->data, L->staging, bytes);
    return s;
}

/* Releases what a load or an open held, whatever its outcome. */
static void finish(loader *L)
{
    if (L->fd >= 0)
        close(L->fd);
    attn__free(L->staging);
    free(L->chosen);
    free(L->header);
    free(L->entries);
    for (name_block *b = L->names, *next; b; b = next) {
        next = b->next;
        free(b);
    }
}

attn_status attn_params_load(attn_params *p, const char *path, const char *prefix, uint32_t flags)
{
    attn_status s = attn__params_check(p, LOAD);
    if (s)
        return s;
    if (!path)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: path is NULL", LOAD);
    if (flags & ~(ATTN_LOAD_ALLOW_MISSING | ATTN_LOAD_REJECT_UNKNOWN))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: unknown flags 0x%x", LOAD,
                          flags & ~(ATTN_LOAD_ALLOW_MISSING | ATTN_LOAD_REJECT_UNKNOWN));
    loader L = {.fn = LOAD, .p = p, .path = path, .prefix = prefix ? prefix : "", .flags = flags, .fd = -1};
    s = load(&L);
    finish(&L);
    return s;
}

/* ---- open: a file's tensors as a set of their own -------------------------------------------- */

static const char OPEN[] = "attn_params_open";

/* Registers every float tensor under the prefix in L->p (in the file's order of data), then reads
 * them. A 0-dimensional tensor becomes shape [1]; tensors of integer, boolean or 8-bit float dtypes
 * are not numbers this set can hold and are passed over. */
static attn_status open_set(loader *L)
{
    attn_status s = open_file(L);
    if (!s)
        s = read_header(L);
    if (!s)
        s = check_entries(L);
    const size_t plen = strlen(L->prefix);
    int64_t kept = 0;
    if (!s && !(L->chosen = calloc((size_t)L->n_entries + 1, sizeof *L->chosen)))
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", OPEN);
    for (int64_t k = 0; k < L->n_entries && !s; k++) {
        const entry *e = &L->entries[k];
        if (strncmp(e->name, L->prefix, plen) || !dtype_of(e) || dtype_of(e)->kind == DECODE_NONE)
            continue;
        if (e->ndim > ATTN__MAX_DIMS)
            return attn__fail(ATTN_E_UNSUPPORTED, "%s: tensor '%s' in '%s' has %lld dimensions; at most %d are "
                              "supported", OPEN, e->name, L->path, (long long)e->ndim, ATTN__MAX_DIMS);
        if (e->end == e->begin)
            continue; /* no elements: nothing a float set can hold */
        const int64_t scalar[1] = {1};
        s = attn__params_add(L->p, e->name + plen, e->ndim ? e->ndim : 1, e->ndim ? e->shape : scalar,
                             ATTN_INIT_CONSTANT, 0.0f, NULL);
        L->chosen[kept++] = e;
    }
    if (!s && !kept)
        return attn__fail(ATTN_E_NOT_FOUND, "%s: '%s' holds no float tensor%s%s%s", OPEN, L->path,
                          plen ? " under the prefix '" : "", L->prefix, plen ? "'" : "");
    if (!s)
        s = attn__params_finalize(L->p);
    for (int64_t i = 0; i < kept && !s; i++)
        s = read_tensor(L, L->chosen[i], attn__params_data(L->p, i), L->p->tensors[i].count);
    return s;
}

attn_status attn_params_open(attn_params **out, const char *path, const char *prefix)
{
    if (out)
        *out = NULL;
    if (!out || !path)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", OPEN, out ? "path" : "out");
    attn_params *p = NULL;
    attn_status s = attn__params_create(&p, OPEN);
    if (s)
        return s;
    loader L = {.fn = OPEN, .p = p, .path = path, .prefix = prefix ? prefix : "", .fd = -1};
    s = open_set(&L);
    finish(&L);
    if (s)
        attn__params_destroy(p);
    else
        *out = p;
    return s;
}

void attn_params_close(attn_params *p)
{
    /* A handle's set dies with its handle; only sets made by attn_params_open are freed here. */
    if (p && p->owner == OPEN)
        attn__params_destroy(p);
}

/* ---- save ----------------------------------------------------------------------------------- */

static const char SAVE[] = "attn_params_save";

static int gen_string(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

/* The header JSON: yajl escapes the strings and prints integers as integers. `key` has room for
 * the prefix and any tensor name. Any nonzero status (they are OR-ed) is a failure. */
static int generate_header(yajl_gen g, const attn_params *p, const char *prefix, char *key)
{
    int st = yajl_gen_map_open(g) | gen_string(g, "__metadata__") | yajl_gen_map_open(g);
    st |= gen_string(g, "format") | gen_string(g, "pt") | yajl_gen_map_close(g);
    int64_t offset = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const attn__tensor *t = &p->tensors[i];
        sprintf(key, "%s%s", prefix, t->name);
        st |= gen_string(g, key) | yajl_gen_map_open(g) | gen_string(g, "dtype") | gen_string(g, "F32");
        st |= gen_string(g, "shape") | yajl_gen_array_open(g);
        for (int64_t d = 0; d < t->ndim; d++)
            st |= yajl_gen_integer(g, t->shape[d]);
        st |= yajl_gen_array_close(g) | gen_string(g, "data_offsets") | yajl_gen_array_open(g);
        st |= yajl_gen_integer(g, offset);
        offset += t->count * (int64_t)sizeof(float);
        st |= yajl_gen_integer(g, offset) | yajl_gen_array_close(g) | yajl_gen_map_close(g);
    }
    return st | yajl_gen_map_close(g);
}

static bool write_all(int fd, const void *buf, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t put = write(fd, (const char *)buf + done, n - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            if (put == 0)
                errno = EIO; /* no progress and no reason given */
            return false;
        }
        done += (size_t)put;
    }
    return true;
}

static bool write_file(int fd, const attn_params *p, const unsigned char *header, size_t len)
{
    unsigned char chunk[CHUNK];
    size_t padded = (len + 7) / 8 * 8;
    write_le(chunk, padded, 8);
    memset(chunk + 8, ' ', padded - len);
    bool ok = write_all(fd, chunk, 8) && write_all(fd, header, len) && write_all(fd, chunk + 8, padded - len);
    /* Encoded byte by byte, so the file is little-endian whatever the host. */
    for (int64_t i = 0; i < p->n && ok; i++) {
        const float *x = p->data + p->tensors[i].offset;
        for (int64_t done = 0, count = p->tensors[i].count; done < count && ok;) {
            int64_t n = count - done < CHUNK / 4 ? count - done : CHUNK / 4;
            for (int64_t k = 0; k < n; k++, done++) {
                uint32_t u;
                memcpy(&u, &x[done], sizeof u);
                write_le(chunk + 4 * k, u, 4);
            }
            ok = write_all(fd, chunk, (size_t)n * 4);
        }
    }
    return ok && fsync(fd) == 0;
}

/* Writes a fresh file next to the target and renames it over the target at the end, so that
 * readers never see a partial file. Its name is short whatever the target's (which may already
 * have NAME_MAX bytes) and made unique without shared state by O_EXCL and a retry; mode 0666 lets
 * the umask decide the permissions, as for any new file. */
static attn_status write_atomically(const attn_params *p, const char *path, const unsigned char *header, size_t len)
{
    const char *slash = strrchr(path, '/');
    const int dir_len = slash ? (int)(slash + 1 - path) : 0;
    const size_t tmp_size = (size_t)dir_len + 48;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", SAVE);
    int fd = -1;
    for (unsigned attempt = 0; fd < 0 && attempt < 1000; attempt++) {
        snprintf(tmp, tmp_size, "%.*s.attn-%ld-%u.tmp", dir_len, path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    attn_status s = ATTN_OK;
    if (fd < 0) {
        s = io_fail(SAVE, "create a temporary file for", path);
    } else {
        bool ok = write_file(fd, p, header, len);
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, path)) {
            s = io_fail(SAVE, ok ? "rename the temporary file to" : "write", path);
            unlink(tmp);
        }
    }
    free(tmp);
    return s;
}

typedef struct saver {
    const attn_params *p;
    const char *path, *prefix;
    char *key;
    json_memory json_memory;
} saver;

/* Generates the header and writes the file (under json_guard). */
static attn_status save(void *arg)
{
    saver *S = arg;
    yajl_alloc_funcs funcs = {json_malloc, json_realloc, json_free, &S->json_memory};
    yajl_gen g = yajl_gen_alloc(&funcs);
    const unsigned char *header;
    size_t len;
    attn_status s = ATTN_OK;
    if (generate_header(g, S->p, S->prefix, S->key) || yajl_gen_get_buf(g, &header, &len))
        s = attn__fail(ATTN_E_INTERNAL, "%s: yajl failed to generate the header", SAVE);
    /* A longer header (from a very long prefix) would make a file readers of the format reject. */
    else if (len > MAX_HEADER)
        s = attn__fail(ATTN_E_INVALID_ARG, "%s: the header would be %zu bytes, beyond the format's limit of %d "
                       "(prefix of %zu bytes)", SAVE, len, MAX_HEADER, strlen(S->prefix));
    else
        s = write_atomically(S->p, S->path, header, len);
    yajl_gen_free(g);
    return s;
}

attn_status attn_params_save(const attn_params *p, const char *path, const char *prefix)
{
    attn_status s = attn__params_check(p, SAVE);
    if (s)
        return s;
    if (!path)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: path is NULL", SAVE);
    saver S = {.p = p, .path = path, .prefix = prefix ? prefix : ""};
    const size_t plen = strlen(S.prefix);
    if (!valid_utf8((const unsigned char *)S.prefix, plen))
        return attn__fail(ATTN_E_INVALID_ARG, "%s: prefix is not valid UTF-8, which JSON requires", SAVE);
    size_t longest = 0;
    for (int64_t i = 0; i < p->n; i++)
        if (strlen(p->tensors[i].name) > longest)
            longest = strlen(p->tensors[i].name);
    S.key = malloc(plen + longest + 1);
    if (!S.key)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", SAVE);
    s = json_guard(&S.json_memory, save, &S, SAVE, path);
    free(S.key);
    return s;
}
