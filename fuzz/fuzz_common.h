/*
 * fuzz_common.h: what both fuzz targets share: the entry point's prototype and the check that a
 * call kept the error contract. A broken invariant aborts with a message, which libFuzzer (and the
 * replay driver, under ctest) reports as a finding.
 */
#ifndef ATTN_FUZZ_COMMON_H
#define ATTN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FAIL(...)                                                                                            \
    do {                                                                                                          \
        fprintf(stderr, "fuzz invariant broken at %s:%d: ", __FILE__, __LINE__);                                 \
        fprintf(stderr, __VA_ARGS__);                                                                             \
        fprintf(stderr, "\n");                                                                                    \
        abort();                                                                                                  \
    } while (0)

/* Every call returns ATTN_OK or a known negative code whose message starts with the function's name
 * (attn_last_error is never NULL). Returns the status so that callers can go on with it. */
static inline attn_status fuzz_check(attn_status s, const char *function)
{
#ifdef FUZZ_TRACE /* -DFUZZ_TRACE: what each input does, to check that a seed reaches its target */
    fprintf(stderr, "  %s -> %d %s\n", function, (int)s, s ? attn_last_error() : "");
#endif
    if (s == ATTN_OK)
        return s;
    const char *msg = attn_last_error();
    if (s < ATTN_E_INTERNAL || s > 0)
        FUZZ_FAIL("%s returned unknown status %d: %s", function, (int)s, msg ? msg : "(null)");
    if (s == ATTN_E_INTERNAL)
        FUZZ_FAIL("%s returned ATTN_E_INTERNAL: %s", function, msg ? msg : "(null)");
    if (!msg || strncmp(msg, function, strlen(function)) != 0 || msg[strlen(function)] != ':')
        FUZZ_FAIL("%s returned %d with a message not naming it: \"%s\"", function, (int)s, msg ? msg : "(null)");
    return s;
}

#define FUZZ_CALL(fn, ...) fuzz_check(fn(__VA_ARGS__), #fn)

#endif /* ATTN_FUZZ_COMMON_H */
