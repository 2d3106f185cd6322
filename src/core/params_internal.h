/*
 * params_internal.h: the layout of attn_params, shared by the registry (params.c) and the
 * safetensors reader and writer (safetensors.c). Nothing outside src/core/ includes it.
 */
#ifndef ATTN_PARAMS_INTERNAL_H
#define ATTN_PARAMS_INTERNAL_H

#include "core/core.h"

#define ATTN__MAX_DIMS 4 /* dimensions of a parameter */

typedef struct attn__tensor {
    char *name;
    int64_t ndim;
    int64_t shape[ATTN__MAX_DIMS]; /* trailing entries 0 */
    int64_t count;
    int64_t offset; /* in floats from attn_params.data; a multiple of ATTN__ALIGN bytes */
    attn_init_law law;
    float a;
} attn__tensor;

typedef struct attn__alias {
    char *name;
    int64_t index;
} attn__alias;

struct attn_params {
    const char *owner; /* the public function building the handle: the registry's errors name it */
    attn__tensor *tensors;
    int64_t n, cap;
    attn__alias *aliases;
    int64_t n_aliases, cap_aliases;
    float *data;   /* NULL until finalize */
    int64_t block; /* floats in data, alignment padding included */
    int64_t total; /* sum of counts */
};

/* Index of the tensor called `name` or having it as an alias; -1 if none. */
int64_t attn__params_lookup(const attn_params *p, const char *name);
/* Validates that p is non-NULL and finalized, naming `fn` in the message. */
attn_status attn__params_check(const attn_params *p, const char *fn);
/* Writes "[d0, d1, ...]" into buf (always terminated). `shape` holds the first
 * min(ndim, ATTN__MAX_DIMS) extents; those not known or not fitting in buf are summarized
 * as ", ... (N dimensions)]", never cut. size >= 40. */
void attn__shape_str(char *buf, size_t size, int64_t ndim, const int64_t *shape);
/* `array` (of `elem` bytes each) grown to hold at least n + 1 elements; NULL (and `array`
 * untouched) when out of memory. */
void *attn__grow(void *array, int64_t n, int64_t *cap, size_t elem);

#endif /* ATTN_PARAMS_INTERNAL_H */
