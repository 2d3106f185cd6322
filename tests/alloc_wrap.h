/*
 * alloc_wrap.h: the n-th allocation fails. For a test program linked with the library's sources
 * and `ld --wrap` of malloc, calloc, realloc and aligned_alloc (tests/alloc_failure.cmake,
 * tests/params.cmake): their calls, the library's included, reach the __wrap_* functions below,
 * which fail exactly the allocation chosen by alloc_wrap_arm. yajl allocates through the core's
 * yajl_alloc_funcs, so it is covered too. Include it in one source file of the program.
 */
#ifndef ATTN_TEST_ALLOC_WRAP_H
#define ATTN_TEST_ALLOC_WRAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Allocations left to succeed before the one that fails; -1: none fails. Atomic because a team's
 * helper threads may allocate during a call too. */
static _Atomic long alloc_wrap_left = -1;
static atomic_bool alloc_wrap_failed;

static bool alloc_wrap_fails(void)
{
    long left = atomic_load(&alloc_wrap_left);
    while (left >= 0)
        if (atomic_compare_exchange_weak(&alloc_wrap_left, &left, left - 1)) {
            if (left != 0)
                return false;
            atomic_store(&alloc_wrap_failed, true);
            return true;
        }
    return false;
}

/* Allocation n (from 1) of the next calls fails. */
static inline void alloc_wrap_arm(long n)
{
    atomic_store(&alloc_wrap_failed, false);
    atomic_store(&alloc_wrap_left, n - 1);
}

/* Disarms; true when an allocation did fail since alloc_wrap_arm. */
static inline bool alloc_wrap_disarm(void)
{
    atomic_store(&alloc_wrap_left, -1);
    return atomic_load(&alloc_wrap_failed);
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
void *__wrap_malloc(size_t size) { return alloc_wrap_fails() ? NULL : __real_malloc(size); }
void *__wrap_calloc(size_t n, size_t size) { return alloc_wrap_fails() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t size) { return alloc_wrap_fails() ? NULL : __real_realloc(p, size); }
void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return alloc_wrap_fails() ? NULL : __real_aligned_alloc(align, size);
}

#endif /* ATTN_TEST_ALLOC_WRAP_H */
