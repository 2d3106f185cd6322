/* attn_params_load and attn_params_save: the safetensors format (8-byte little-endian header
 * length, a JSON header, then raw little-endian tensor data). Every number of the header is
 * validated against the file before it is used, and load is all-or-nothing: tensors are decoded
 * into a staging copy of the parameters that replaces them only once everything has succeeded. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/params_internal.h"

#define MAX_HEADER 100000000        /* the reference implementation's limit */
#define MAX_EXACT 9007199254740992.0 /* 2^53: JSON numbers above it are not exact in a double */
#define MAX_DIMS 8                  /* dims kept for matching and messages; parameters have <= 4 */

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

/* One validated tensor entry of the header. */
typedef struct entry {
    const char *name;
    const char *dtype_name;
    const struct dtype *dtype; /* NULL for a dtype the format does not define */
    int64_t ndim;
    int64_t shape[MAX_DIMS]; /* the first MAX_DIMS extents */
    int64_t begin, end;      /* byte offsets into the data section */
} entry;

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

static attn_status io_fail(const char *fn, const char *what, const char *path)
{
    char reason[128] = "unknown error";
    strerror_r(errno, reason, sizeof reason);
    return attn__fail(ATTN_E_IO, "%s: cannot %s '%s': %s", fn, what, path, reason);
}

/* ---- load ----------------------------------------------------------------------------------- */

static const char LOAD[] = "attn_params_load";

typedef struct loader {
    attn_params *p;
    const char *path, *prefix;
    uint32_t flags;
    FILE *file;
    char *header;
    cJSON *json;
    entry *entries;
    int64_t n_entries;
    const entry **chosen; /* per parameter: the file tensor it is read from, or NULL */
    float *staging;
    int64_t data_start, data_size;
} loader;

/* The size was checked before reading, so a short read means the file changed meanwhile. */
static attn_status read_fail(const loader *L)
{
    if (ferror(L->file))
        return io_fail(LOAD, "read", L->path);
    return attn__fail(ATTN_E_IO, "%s: '%s' ended early (was it changed while loading?)", LOAD, L->path);
}

/* A non-negative integer that a double holds exactly. */
static bool json_size(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT && d == floor(d)))
        return false;
    *out = (int64_t)d;
    return true;
}

static attn_status read_header(loader *L)
{
    unsigned char len8[8];
    struct stat st;
    if (fstat(fileno(L->file), &st))
        return io_fail(LOAD, "examine", L->path);
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return io_fail(LOAD, "read", L->path);
    }
    int64_t size = (int64_t)st.st_size;
    if (size < 8)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s' is %lld bytes, shorter than the 8-byte header length", LOAD,
                          L->path, (long long)size);
    if (fread(len8, 1, 8, L->file) != 8)
        return read_fail(L);
    uint64_t n = read_le(len8, 8);
    if (n > (uint64_t)size - 8 || n > MAX_HEADER)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': header length %llu exceeds the %lld bytes after it%s", LOAD,
                          L->path, (unsigned long long)n, (long long)size - 8,
                          n > MAX_HEADER ? " or the format's limit of 100000000" : "");
    L->data_start = 8 + (int64_t)n;
    L->data_size = size - L->data_start;
    L->header = malloc(n + 1);
    if (!L->header)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate a header of %llu bytes", LOAD, (unsigned long long)n);
    if (fread(L->header, 1, n, L->file) != n)
        return read_fail(L);
    const char *end = NULL;
    L->json = cJSON_ParseWithLengthOpts(L->header, n, &end, 0);
    if (!L->json)
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is not valid JSON (error near byte %lld)", LOAD,
                          L->path, end ? (long long)(end - L->header) : -1LL);
    /* Writers pad the header with spaces; anything else after the JSON value is corruption. */
    for (; end < L->header + n; end++)
        if (!strchr(" \t\r\n", *end) || !*end)
            return attn__fail(ATTN_E_FORMAT, "%s: '%s': unexpected byte at %lld after the JSON header", LOAD,
                              L->path, (long long)(end - L->header));
    if (!cJSON_IsObject(L->json))
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': the header is not a JSON object", LOAD, L->path);
    return ATTN_OK;
}

static attn_status check_metadata(const loader *L, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return attn__fail(ATTN_E_FORMAT, "%s: '%s': \"__metadata__\" is not a JSON object", LOAD, L->path);
    for (const cJSON *item = meta->child; item; item = item->next)
        if (!cJSON_IsString(item))
            return attn__fail(ATTN_E_FORMAT, "%s: '%s': \"__metadata__\" entry '%s' is not a string", LOAD, L->path,
                              item->string);
    return ATTN_OK;
}

static attn_status parse_entry(const loader *L, const cJSON *item, entry *e)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': header entry is not a JSON object", LOAD, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': header entry needs \"dtype\" (string), \"shape\" and "
                          "\"data_offsets\" (arrays)", LOAD, name);
    *e = (entry){.name = name, .dtype_name = dtype->valuestring};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dtypes[i].name, e->dtype_name))
            e->dtype = &dtypes[i];
    int64_t count = 1;
    for (const cJSON *d = shape->child; d; d = d->next, e->ndim++) {
        int64_t extent;
        if (!json_size(d, &extent))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': shape[%lld] is not a non-negative integer", LOAD,
                              name, (long long)e->ndim);
        if (!attn__mul(count, extent, &count))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': the element count overflows", LOAD, name);
        if (e->ndim < MAX_DIMS)
            e->shape[e->ndim] = extent;
    }
    if (cJSON_GetArraySize(offsets) != 2 || !json_size(offsets->child, &e->begin) ||
        !json_size(offsets->child->next, &e->end))
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers", LOAD,
                          name);
    if (e->begin > e->end || e->end > L->data_size)
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] do not fit the %lld data bytes",
                          LOAD, name, (long long)e->begin, (long long)e->end, (long long)L->data_size);
    int64_t bytes;
    if (e->dtype && !attn__mul(count, e->dtype->size, &bytes))
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': the byte size overflows", LOAD, name);
    if (e->dtype && bytes != e->end - e->begin)
        return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s': data_offsets span %lld bytes, but %lld %s elements "
                          "need %lld", LOAD, name, (long long)(e->end - e->begin), (long long)count, e->dtype_name,
                          (long long)bytes);
    return ATTN_OK;
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static attn_status parse_entries(loader *L)
{
    L->entries = malloc(((size_t)cJSON_GetArraySize(L->json) + 1) * sizeof *L->entries);
    if (!L->entries)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory reading the header of '%s'", LOAD, L->path);
    for (const cJSON *item = L->json->child; item; item = item->next) {
        attn_status s = !strcmp(item->string, "__metadata__") ? check_metadata(L, item)
                                                               : parse_entry(L, item, &L->entries[L->n_entries++]);
        if (s)
            return s;
    }
    /* cJSON keeps duplicate keys; the format forbids them and silently picking one would hide it. */
    qsort(L->entries, (size_t)L->n_entries, sizeof *L->entries, compare_entries);
    for (int64_t i = 1; i < L->n_entries; i++)
        if (!strcmp(L->entries[i - 1].name, L->entries[i].name))
            return attn__fail(ATTN_E_FORMAT, "%s: tensor '%s' appears twice in the header of '%s'", LOAD,
                              L->entries[i].name, L->path);
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
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", LOAD);
    for (const entry *e = L->entries; e < L->entries + L->n_entries; e++) {
        if (strncmp(e->name, L->prefix, plen))
            continue;
        int64_t i = attn__params_lookup(p, e->name + plen);
        if (i < 0 && (L->flags & ATTN_LOAD_REJECT_UNKNOWN))
            return attn__fail(ATTN_E_NOT_FOUND, "%s: unknown tensor '%s' in file '%s' (no parameter '%s')", LOAD,
                              e->name, L->path, e->name + plen);
        if (i >= 0 && (!L->chosen[i] || !strcmp(e->name + plen, p->tensors[i].name)))
            L->chosen[i] = e;
    }
    for (int64_t i = 0; i < p->n; i++) {
        const entry *e = L->chosen[i];
        const attn__tensor *t = &p->tensors[i];
        if (!e && !(L->flags & ATTN_LOAD_ALLOW_MISSING))
            return attn__fail(ATTN_E_NOT_FOUND, "%s: tensor '%s%s' is missing from '%s'", LOAD, L->prefix, t->name,
                              L->path);
        if (!e)
            continue;
        if (!e->dtype || e->dtype->kind == DECODE_NONE)
            return attn__fail(ATTN_E_UNSUPPORTED, "%s: tensor '%s' has dtype %s; only F32, F64, F16 and BF16 load",
                              LOAD, e->name, e->dtype_name);
        if (!same_shape(e, t)) {
            char found[160], expected[96];
            attn__shape_str(found, sizeof found, e->ndim < MAX_DIMS ? e->ndim : MAX_DIMS, e->shape);
            attn__shape_str(expected, sizeof expected, t->ndim, t->shape);
            return attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' has shape %s in '%s', parameter '%s' expects %s", LOAD,
                              e->name, found, L->path, t->name, expected);
        }
    }
    return ATTN_OK;
}

/* Reads one tensor in chunks into dst, rejecting values float32 cannot hold. */
static attn_status read_tensor(const loader *L, const entry *e, float *dst, int64_t count)
{
    unsigned char chunk[16384];
    const int size = e->dtype->size;
    if (fseeko(L->file, (off_t)(L->data_start + e->begin), SEEK_SET))
        return io_fail(LOAD, "seek in", L->path);
    for (int64_t done = 0; done < count;) {
        int64_t n = count - done < (int64_t)sizeof chunk / size ? count - done : (int64_t)sizeof chunk / size;
        if (fread(chunk, (size_t)size, (size_t)n, L->file) != (size_t)n)
            return read_fail(L);
        for (int64_t i = 0; i < n; i++, done++) {
            dst[done] = decode(chunk + i * size, e->dtype->kind);
            if (!isfinite(dst[done]))
                return attn__fail(ATTN_E_NUMERICAL, "%s: tensor '%s': element %lld is NaN, infinite or beyond the "
                                  "float32 range", LOAD, e->name, (long long)done);
        }
    }
    return ATTN_OK;
}

static attn_status load(loader *L)
{
    attn_status s = read_header(L);
    if (!s)
        s = parse_entries(L);
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
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %zu bytes of staging", LOAD, bytes);
    memcpy(L->staging, p->data, bytes); /* absent tensors keep their values (ALLOW_MISSING) */
    for (int64_t i = 0; i < p->n && !s; i++)
        if (L->chosen[i])
            s = read_tensor(L, L->chosen[i], L->staging + p->tensors[i].offset, p->tensors[i].count);
    if (!s)
        memcpy(p->data, L->staging, bytes);
    return s;
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
    loader L = {.p = p, .path = path, .prefix = prefix ? prefix : "", .flags = flags};
    L.file = fopen(path, "rb");
    s = L.file ? load(&L) : io_fail(LOAD, "open", path);
    if (L.file)
        fclose(L.file);
    attn__free(L.staging);
    free(L.chosen);
    free(L.entries);
    cJSON_Delete(L.json);
    free(L.header);
    return s;
}

/* ---- save ----------------------------------------------------------------------------------- */

static const char SAVE[] = "attn_params_save";

/* Integers are written as raw text: cJSON would print large doubles in exponent form, which
 * readers of the format reject. */
static bool add_int(cJSON *array, int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_AddItemToArray(array, cJSON_CreateRaw(text));
}

/* The header JSON, not yet padded. NULL when out of memory. */
static char *build_header(const attn_params *p, const char *prefix)
{
    size_t plen = strlen(prefix), longest = 0;
    for (int64_t i = 0; i < p->n; i++)
        if (strlen(p->tensors[i].name) > longest)
            longest = strlen(p->tensors[i].name);
    char *key = malloc(plen + longest + 1), *text = NULL;
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    bool ok = key && meta && cJSON_AddStringToObject(meta, "format", "pt");
    int64_t offset = 0;
    for (int64_t i = 0; i < p->n && ok; i++) {
        const attn__tensor *t = &p->tensors[i];
        snprintf(key, plen + longest + 1, "%s%s", prefix, t->name);
        cJSON *item = cJSON_AddObjectToObject(root, key);
        ok = cJSON_AddStringToObject(item, "dtype", "F32") != NULL;
        cJSON *shape = cJSON_AddArrayToObject(item, "shape"), *offsets = cJSON_AddArrayToObject(item, "data_offsets");
        ok = ok && shape && offsets;
        for (int64_t d = 0; d < t->ndim && ok; d++)
            ok = add_int(shape, t->shape[d]);
        ok = ok && add_int(offsets, offset);
        offset += t->count * (int64_t)sizeof(float);
        ok = ok && add_int(offsets, offset);
    }
    if (ok)
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(key);
    return text;
}

static bool write_file(FILE *f, const attn_params *p, const char *header)
{
    size_t len = strlen(header), padded = (len + 7) / 8 * 8;
    unsigned char chunk[16384];
    write_le(chunk, padded, 8);
    bool ok = fwrite(chunk, 1, 8, f) == 8 && fwrite(header, 1, len, f) == len;
    for (size_t i = len; i < padded && ok; i++)
        ok = fputc(' ', f) != EOF;
    /* Encoded byte by byte, so the file is little-endian whatever the host. */
    for (int64_t i = 0; i < p->n && ok; i++) {
        const float *x = p->data + p->tensors[i].offset;
        for (int64_t done = 0, count = p->tensors[i].count; done < count && ok;) {
            int64_t n = count - done < (int64_t)sizeof chunk / 4 ? count - done : (int64_t)sizeof chunk / 4;
            for (int64_t k = 0; k < n; k++, done++) {
                uint32_t u;
                memcpy(&u, &x[done], sizeof u);
                write_le(chunk + 4 * k, u, 4);
            }
            ok = fwrite(chunk, 4, (size_t)n, f) == (size_t)n;
        }
    }
    return ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
}

attn_status attn_params_save(const attn_params *p, const char *path, const char *prefix)
{
    attn_status s = attn__params_check(p, SAVE);
    if (s)
        return s;
    if (!path)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: path is NULL", SAVE);
    char *header = build_header(p, prefix ? prefix : "");
    size_t tmp_size = strlen(path) + 48;
    char *tmp = malloc(tmp_size);
    if (!header || !tmp) {
        cJSON_free(header);
        free(tmp);
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory building the header for '%s'", SAVE, path);
    }
    /* A fresh file next to the target, renamed over it at the end, so that readers never see a
     * partial file. O_EXCL with a retry makes the name unique without shared state; the mode
     * 0666 lets the umask decide the permissions, as for any new file. */
    int fd = -1;
    for (unsigned attempt = 0; fd < 0 && attempt < 1000; attempt++) {
        snprintf(tmp, tmp_size, "%s.tmp-%ld-%u", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        s = io_fail(SAVE, "create a temporary file for", path);
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
    } else {
        bool ok = write_file(f, p, header);
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path)) {
            s = io_fail(SAVE, ok ? "rename the temporary file to" : "write", path);
            unlink(tmp);
        }
    }
    free(tmp);
    cJSON_free(header);
    return s;
}
