/* Status text, the thread-local error message, version and build information, checked arithmetic,
 * and the options-struct protocol. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

/* Fixed storage so that reporting works after an allocation failure. */
static _Thread_local char last_error[512];

attn_status attn__fail(attn_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

const char *attn_last_error(void) { return last_error; }

const char *attn_status_str(attn_status status)
{
    switch (status) {
    case ATTN_OK: return "ATTN_OK: success";
    case ATTN_E_INVALID_ARG: return "ATTN_E_INVALID_ARG: invalid argument";
    case ATTN_E_SHAPE: return "ATTN_E_SHAPE: sizes do not fit together";
    case ATTN_E_NOMEM: return "ATTN_E_NOMEM: out of memory";
    case ATTN_E_UNSUPPORTED: return "ATTN_E_UNSUPPORTED: not supported";
    case ATTN_E_NOT_FOUND: return "ATTN_E_NOT_FOUND: not found";
    case ATTN_E_IO: return "ATTN_E_IO: input/output error";
    case ATTN_E_FORMAT: return "ATTN_E_FORMAT: malformed file";
    case ATTN_E_NUMERICAL: return "ATTN_E_NUMERICAL: numerical problem";
    case ATTN_E_INTERNAL: return "ATTN_E_INTERNAL: internal error";
    default: return "unknown attn_status";
    }
}

#define ATTN_STR2(x) #x
#define ATTN_STR(x) ATTN_STR2(x)

uint32_t attn_version_number(void) { return ATTN_VERSION_NUMBER; }

const char *attn_version_string(void)
{
    return ATTN_STR(ATTN_VERSION_MAJOR) "." ATTN_STR(ATTN_VERSION_MINOR) "." ATTN_STR(ATTN_VERSION_PATCH);
}

const char *attn_build_info(void)
{
    /* Built once per thread: the BLAS configuration is fixed for the process, so every thread
     * produces the same text; thread-local storage avoids a global that needs locking. */
    static _Thread_local char info[512];
    if (!info[0])
        snprintf(info, sizeof info, "libattn %s; BLAS: %s; BLAS threads: %d; compiler: %s",
                 attn_version_string(), attn__blas_config(), attn__blas_threads(), ATTN_COMPILER);
    return info;
}

bool attn__mul(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return false;
    return !__builtin_mul_overflow(a, b, out);
}

bool attn__mul3(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    return attn__mul(a, b, &ab) && attn__mul(ab, c, out);
}

bool attn__fits_blas_int(int64_t v) { return v >= 0 && v <= INT32_MAX; }

static bool overlap(const attn_buffer *a, const attn_buffer *b)
{
    if (!a->data || !b->data || !a->bytes || !b->bytes)
        return false;
    const uintptr_t pa = (uintptr_t)a->data, pb = (uintptr_t)b->data;
    return pa < pb + b->bytes && pb < pa + a->bytes;
}

attn_status attn__check_aliasing(const char *fn, const attn_buffer *inputs, int n_inputs, const attn_buffer *outputs,
                                 int n_outputs)
{
    for (int o = 0; o < n_outputs; o++) {
        for (int i = 0; i < n_inputs; i++)
            if (overlap(&outputs[o], &inputs[i]))
                return attn__fail(ATTN_E_INVALID_ARG, "%s: output %s overlaps input %s (outputs must not share "
                                  "memory with inputs or with each other)", fn, outputs[o].name, inputs[i].name);
        for (int p = 0; p < o; p++)
            if (overlap(&outputs[o], &outputs[p]))
                return attn__fail(ATTN_E_INVALID_ARG, "%s: output %s overlaps output %s (outputs must not share "
                                  "memory with inputs or with each other)", fn, outputs[o].name, outputs[p].name);
    }
    return ATTN_OK;
}

attn_status attn__check_option(const char *fn, const char *name, int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: %s must be in %lld..%lld (got %lld)", fn, name, (long long)lo,
                          (long long)hi, (long long)v);
    return ATTN_OK;
}

attn_status attn__options_read(const char *fn, void *dst, size_t known_size, size_t first_size, size_t flags_offset,
                               const void *src)
{
    if (!src)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: options is NULL", fn);
    uint32_t struct_size;
    memcpy(&struct_size, src, sizeof struct_size);
    if (struct_size < first_size)
        return attn__fail(ATTN_E_INVALID_ARG,
                          "%s: options->struct_size %u is smaller than the first version's %zu "
                          "(call the options_init function first)",
                          fn, struct_size, first_size);
    const unsigned char *extra = (const unsigned char *)src + known_size;
    for (size_t i = known_size; i < struct_size; i++, extra++)
        if (*extra)
            return attn__fail(ATTN_E_UNSUPPORTED,
                              "%s: options->struct_size %u is larger than this library's %zu and byte %zu "
                              "is set: the caller asks for an option this version does not know",
                              fn, struct_size, known_size, i);
    memcpy(dst, src, struct_size < known_size ? struct_size : known_size);
    uint32_t flags;
    memcpy(&flags, (const char *)dst + flags_offset, sizeof flags);
    ((uint32_t *)dst)[0] = (uint32_t)known_size;
    if (flags)
        return attn__fail(ATTN_E_INVALID_ARG, "%s: options->flags must be 0 (got 0x%x)", fn, flags);
    return ATTN_OK;
}

void attn__options_write(void *dst, const void *src, size_t known_size, size_t first_size)
{
    uint32_t capacity;
    memcpy(&capacity, dst, sizeof capacity);
    const size_t size = capacity == known_size ? known_size : first_size;
    memcpy(dst, src, size);
    memcpy(dst, &(uint32_t){(uint32_t)size}, sizeof(uint32_t));
}
