/* The parameter registry behind attn_params: named tensors in one aligned block, with aliases, and
 * their deterministic initialization. Safetensors I/O lives in safetensors.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/params_internal.h"

/* Each tensor starts on an ATTN__ALIGN boundary so kernels may use aligned vector loads. */
#define ALIGN_FLOATS ((int64_t)(ATTN__ALIGN / sizeof(float)))

static char *copy_string(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

void *attn__grow(void *array, int64_t n, int64_t *cap, size_t elem)
{
    if (n < *cap)
        return array;
    int64_t new_cap = *cap ? 2 * *cap : 16;
    void *grown = realloc(array, (size_t)new_cap * elem);
    if (grown)
        *cap = new_cap;
    return grown;
}

attn_status attn__params_create(attn_params **out, const char *owner)
{
    if (!out || !owner)
        return attn__fail(ATTN_E_INVALID_ARG, "attn__params_create: %s is NULL", out ? "owner" : "out");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory", owner);
    (*out)->owner = owner;
    return ATTN_OK;
}

void attn__params_destroy(attn_params *p)
{
    if (!p)
        return;
    for (int64_t i = 0; i < p->n; i++)
        free(p->tensors[i].name);
    for (int64_t i = 0; i < p->n_aliases; i++)
        free(p->aliases[i].name);
    free(p->tensors);
    free(p->aliases);
    attn__free(p->data);
    free(p);
}

int64_t attn__params_lookup(const attn_params *p, const char *name)
{
    for (int64_t i = 0; i < p->n; i++)
        if (!strcmp(p->tensors[i].name, name))
            return i;
    for (int64_t i = 0; i < p->n_aliases; i++)
        if (!strcmp(p->aliases[i].name, name))
            return p->aliases[i].index;
    return -1;
}

void attn__shape_str(char *buf, size_t size, int64_t ndim, const int64_t *shape)
{
    char rest[40]; /* the summary, for which room is always kept */
    const size_t reserve = (size_t)snprintf(rest, sizeof rest, ", ... (%lld dimensions)]", (long long)ndim);
    size_t used = (size_t)snprintf(buf, size, "[");
    int64_t d = 0;
    for (; d < ndim && d < ATTN__MAX_DIMS; d++) {
        char extent[24];
        const size_t n = (size_t)snprintf(extent, sizeof extent, d ? ", %lld" : "%lld", (long long)shape[d]);
        if (used + n + reserve >= size)
            break;
        memcpy(buf + used, extent, n + 1);
        used += n;
    }
    snprintf(buf + used, size - used, "%s", d == ndim ? "]" : d ? rest : rest + 2);
}

/* Checks shared by add and alias: the registry is still open and `name` is new. */
static attn_status check_new_name(const attn_params *p, const char *fn, const char *name)
{
    if (!p || !name || !*name)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL or empty", fn, !p ? "params" : "name");
    if (p->data)
        return attn__fail(ATTN_E_INTERNAL, "%s: '%s' declared after finalize", fn, name);
    if (attn__params_lookup(p, name) >= 0)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: name '%s' is already taken", fn, name);
    return ATTN_OK;
}

attn_status attn__params_add(attn_params *p, const char *name, int64_t ndim, const int64_t *shape,
                             attn_init_law law, float a, int64_t *index)
{
    const char *fn = p ? p->owner : "attn__params_add";
    attn_status s = check_new_name(p, fn, name);
    if (s)
        return s;
    if (ndim < 1 || ndim > ATTN__MAX_DIMS || !shape)
        return attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' needs 1..%d dimensions (got ndim %lld%s)", fn, name,
                          ATTN__MAX_DIMS, (long long)ndim, shape ? "" : ", shape NULL");
    if (law != ATTN_INIT_UNIFORM && law != ATTN_INIT_CONSTANT && law != ATTN_INIT_NORMAL)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: tensor '%s' has unknown init law %d", fn, name, (int)law);
    char dims[128];
    attn__shape_str(dims, sizeof dims, ndim, shape);
    int64_t count = 1;
    for (int64_t d = 0; d < ndim; d++)
        if (shape[d] < 1 || !attn__mul(count, shape[d], &count))
            return attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' has shape %s (extents must be >= 1 and the count "
                              "must fit int64)", fn, name, dims);
    /* The padded block must stay addressable in bytes (the first test keeps the rounding in range). */
    int64_t block, bytes;
    if (count > INT64_MAX / 8 ||
        __builtin_add_overflow(p->block, (count + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS, &block) ||
        !attn__mul(block, (int64_t)sizeof(float), &bytes) || (uint64_t)bytes > SIZE_MAX)
        return attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' of shape %s makes the parameters too large to address",
                          fn, name, dims);
    attn__tensor *tensors = attn__grow(p->tensors, p->n, &p->cap, sizeof *tensors);
    if (!tensors)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory adding tensor '%s'", fn, name);
    p->tensors = tensors;
    attn__tensor *t = &tensors[p->n];
    *t = (attn__tensor){.name = copy_string(name), .ndim = ndim, .count = count, .offset = p->block,
                        .law = law, .a = a};
    if (!t->name)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory adding tensor '%s'", fn, name);
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    p->block = block;
    p->total += count; /* cannot overflow: total <= block */
    if (index)
        *index = p->n;
    p->n++;
    return ATTN_OK;
}

attn_status attn__params_alias(attn_params *p, const char *alias, int64_t index)
{
    const char *fn = p ? p->owner : "attn__params_alias";
    attn_status s = check_new_name(p, fn, alias);
    if (s)
        return s;
    if (index < 0 || index >= p->n)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: alias '%s' refers to tensor %lld of %lld", fn, alias,
                          (long long)index, (long long)p->n);
    attn__alias *aliases = attn__grow(p->aliases, p->n_aliases, &p->cap_aliases, sizeof *aliases);
    if (!aliases)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory adding alias '%s'", fn, alias);
    p->aliases = aliases;
    p->aliases[p->n_aliases] = (attn__alias){.name = copy_string(alias), .index = index};
    if (!p->aliases[p->n_aliases].name)
        return attn__fail(ATTN_E_NOMEM, "%s: out of memory adding alias '%s'", fn, alias);
    p->n_aliases++;
    return ATTN_OK;
}

attn_status attn__params_finalize(attn_params *p)
{
    if (!p)
        return attn__fail(ATTN_E_INVALID_ARG, "attn__params_finalize: params is NULL");
    if (p->data)
        return attn__fail(ATTN_E_INTERNAL, "%s: attn__params_finalize called twice", p->owner);
    /* At least one line, so that a registry without tensors is still "finalized". The padding is
     * zeroed so that the block's bytes are always defined. */
    size_t bytes = (size_t)(p->block ? p->block : ALIGN_FLOATS) * sizeof(float);
    p->data = attn__calloc(bytes);
    if (!p->data)
        return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate %zu bytes of parameters (their sizes follow from the "
                          "options)", p->owner, bytes);
    return attn_params_init(p, 0);
}

float *attn__params_data(attn_params *p, int64_t index)
{
    return p && p->data && index >= 0 && index < p->n ? p->data + p->tensors[index].offset : NULL;
}

const float *attn__params_cdata(const attn_params *p, int64_t index)
{
    return attn__params_data((attn_params *)p, index);
}

int64_t attn__params_total(const attn_params *p) { return p ? p->total : 0; }

attn_status attn__params_check(const attn_params *p, const char *fn)
{
    if (!p)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: params is NULL", fn);
    if (!p->data)
        return attn__fail(ATTN_E_INTERNAL, "%s: parameters used before finalize", fn);
    return ATTN_OK;
}

/* ---- public queries and copies ------------------------------------------------------------ */

int64_t attn_params_count(const attn_params *p) { return p ? p->n : 0; }

static void fill_info(const attn__tensor *t, attn_tensor_info *out)
{
    *out = (attn_tensor_info){.name = t->name, .ndim = t->ndim, .count = t->count};
    memcpy(out->shape, t->shape, sizeof out->shape);
}

attn_status attn_params_info(const attn_params *p, int64_t index, attn_tensor_info *out)
{
    if (!p || !out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_params_info: %s is NULL", !p ? "params" : "out");
    if (index < 0 || index >= p->n)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_params_info: index %lld is outside [0, %lld)",
                          (long long)index, (long long)p->n);
    fill_info(&p->tensors[index], out);
    return ATTN_OK;
}

/* Common validation of find/set/get: non-NULL arguments and a known name; returns the tensor. */
static attn_status locate(const attn_params *p, const char *fn, const char *name, const void *buffer,
                          const char *buffer_name, const attn__tensor **t)
{
    if (!p || !name || !buffer)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s is NULL", fn, !p ? "params" : !name ? "name" : buffer_name);
    int64_t i = attn__params_lookup(p, name);
    if (i < 0)
        return attn__fail(ATTN_E_NOT_FOUND, "%s: no tensor named '%s'", fn, name);
    *t = &p->tensors[i];
    return ATTN_OK;
}

attn_status attn_params_find(const attn_params *p, const char *name, attn_tensor_info *out)
{
    const attn__tensor *t = NULL;
    attn_status s = locate(p, "attn_params_find", name, out, "out", &t);
    if (!s)
        fill_info(t, out);
    return s;
}

/* Validation shared by set and get, which both copy exactly `count` floats. */
static attn_status locate_data(const attn_params *p, const char *fn, const char *name, const void *buffer,
                               const char *buffer_name, int64_t count, const attn__tensor **t)
{
    attn_status s = attn__params_check(p, fn);
    if (!s)
        s = locate(p, fn, name, buffer, buffer_name, t);
    if (!s && count != (*t)->count)
        s = attn__fail(ATTN_E_SHAPE, "%s: tensor '%s' has %lld elements, count is %lld", fn, (*t)->name,
                       (long long)(*t)->count, (long long)count);
    return s;
}

attn_status attn_params_set(attn_params *p, const char *name, const float *data, int64_t count)
{
    static const char fn[] = "attn_params_set";
    const attn__tensor *t = NULL;
    attn_status s = locate_data(p, fn, name, data, "data", count, &t);
    if (s)
        return s;
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(data[i]))
            return attn__fail(ATTN_E_NUMERICAL, "%s: tensor '%s': data[%lld] is %s", fn, t->name, (long long)i,
                              isnan(data[i]) ? "NaN" : "infinite");
    memcpy(p->data + t->offset, data, (size_t)count * sizeof *data);
    return ATTN_OK;
}

attn_status attn_params_get(const attn_params *p, const char *name, float *out, int64_t count)
{
    const attn__tensor *t = NULL;
    attn_status s = locate_data(p, "attn_params_get", name, out, "out", count, &t);
    if (!s)
        memcpy(out, p->data + t->offset, (size_t)count * sizeof *out);
    return s;
}

/* ---- deterministic initialization --------------------------------------------------------- */
/* Integer-only generators (splitmix64 seeding xoshiro256**, Vigna) so the bits do not depend on
 * the platform; floating-point work is done in double and rounded once to float. */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* [0, 1) with 53 random bits. */
static double uniform01(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

static void init_tensor(float *x, const attn__tensor *t, uint64_t seed, int64_t index)
{
    /* Hashing (seed, index) gives each tensor its own stream, so adding or reordering tensors of
     * one handle does not change the values of the others. */
    uint64_t sm = mix64(mix64(seed) + (uint64_t)index), s[4];
    for (int k = 0; k < 4; k++)
        s[k] = mix64(sm += 0x9E3779B97F4A7C15u);
    const double a = t->a, two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < t->count; i++) {
        if (t->law == ATTN_INIT_CONSTANT) {
            x[i] = t->a;
        } else if (t->law == ATTN_INIT_UNIFORM) {
            x[i] = (float)(a * (2.0 * uniform01(s) - 1.0));
        } else { /* Box–Muller; u1 in (0, 1] keeps the logarithm finite */
            double u1 = 1.0 - uniform01(s), u2 = uniform01(s);
            x[i] = (float)(a * sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
        }
    }
}

attn_status attn_params_init(attn_params *p, uint64_t seed)
{
    attn_status s = attn__params_check(p, "attn_params_init");
    if (s)
        return s;
    for (int64_t i = 0; i < p->n; i++)
        init_tensor(p->data + p->tensors[i].offset, &p->tensors[i], seed, i);
    return ATTN_OK;
}
