/*
 * fuzz_params_load.c: libFuzzer target for the safetensors loader (attn_params_load and
 * attn_params_open) on arbitrary files.
 *
 * Input: byte 0 picks the handle (fuzz_handles.h), byte 1 the flags and prefix, the rest is the
 * file. The controls come first, not from a hash of the file, so that a mutation of the file keeps
 * the handle it was made for. Invariants beyond "no crash, no leak": the error contract
 * (fuzz_common.h), all-or-nothing (a failed load changes no parameter), a successful load holds
 * only finite values, and a set from attn_params_open answers count/info/get consistently.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_handles.h"

/* Large enough for every handle of fuzz_handles.h (the GRU, the largest, has 552 floats). */
#define MAX_FLOATS 4096

static fuzz_handle handles[FUZZ_N_HANDLES];
/* Each handle's values after attn_params_init(p, INIT_SEED), the state every input starts from:
 * taken once, as reading them back costs as much as a load. */
#define INIT_SEED 7
static float initial[FUZZ_N_HANDLES][MAX_FLOATS];
static int64_t initial_count[FUZZ_N_HANDLES];
static int file_fd = -1;
static char file_path[4096];

static int64_t snapshot(const attn_params *p, float *out);

static void cleanup(void)
{
    for (int i = 0; i < FUZZ_N_HANDLES; i++)
        if (handles[i].h)
            handles[i].destroy(handles[i].h);
    if (file_fd >= 0) {
        close(file_fd);
        unlink(file_path);
    }
}

/* Created once: creating the handles costs more than most loads. */
static void setup(void)
{
    const char *dir = getenv("TMPDIR");
    snprintf(file_path, sizeof file_path, "%s/attn-fuzz-load-XXXXXX", dir && *dir ? dir : "/tmp");
    file_fd = mkstemp(file_path);
    if (file_fd < 0)
        FUZZ_FAIL("cannot create a temporary file from %s", file_path);
    for (int i = 0; i < FUZZ_N_HANDLES; i++)
        if (fuzz_make_handle(&handles[i], i) != ATTN_OK || attn_params_count(handles[i].params) < 1)
            FUZZ_FAIL("cannot create handle %d: %s", i, attn_last_error());
    atexit(cleanup);
    for (int i = 0; i < FUZZ_N_HANDLES; i++) {
        FUZZ_CALL(attn_params_init, handles[i].params, INIT_SEED);
        initial_count[i] = snapshot(handles[i].params, initial[i]);
    }
}

static void write_file(const uint8_t *data, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(file_fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            FUZZ_FAIL("pwrite failed");
        done += (size_t)n;
    }
    /* Overwriting then cutting the tail is cheaper than emptying the file first. */
    if (ftruncate(file_fd, (off_t)size) != 0)
        FUZZ_FAIL("ftruncate failed");
}

static int64_t snapshot(const attn_params *p, float *out)
{
    int64_t total = 0;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        attn_tensor_info info;
        FUZZ_CALL(attn_params_info, p, i, &info);
        if (total + info.count > MAX_FLOATS)
            FUZZ_FAIL("handle larger than MAX_FLOATS");
        if (FUZZ_CALL(attn_params_get, p, info.name, out + total, info.count) != ATTN_OK)
            FUZZ_FAIL("get of a listed tensor '%s' failed", info.name);
        total += info.count;
    }
    return total;
}

/* A set from attn_params_open: every listed tensor is found under its name with the same shape,
 * and reads back finite. */
static void check_opened(const attn_params *set)
{
    static float values[1 << 16];
    int64_t n = attn_params_count(set);
    if (n < 1)
        FUZZ_FAIL("attn_params_open succeeded with an empty set");
    for (int64_t i = 0; i < n; i++) {
        attn_tensor_info info, found;
        FUZZ_CALL(attn_params_info, set, i, &info);
        int64_t count = 1;
        if (info.ndim < 1 || info.ndim > 4)
            FUZZ_FAIL("tensor %lld has ndim %lld", (long long)i, (long long)info.ndim);
        for (int64_t d = 0; d < info.ndim; d++)
            count *= info.shape[d];
        if (count != info.count || count < 1)
            FUZZ_FAIL("tensor '%s': count %lld, shape product %lld", info.name, (long long)info.count,
                      (long long)count);
        if (FUZZ_CALL(attn_params_find, set, info.name, &found) != ATTN_OK || found.count != info.count)
            FUZZ_FAIL("tensor '%s' listed but not found", info.name);
        if (info.count > (int64_t)(sizeof values / sizeof *values))
            continue; /* a valid file this large is far above -max_len; nothing to read it into */
        if (FUZZ_CALL(attn_params_get, set, info.name, values, info.count) != ATTN_OK)
            FUZZ_FAIL("get of '%s' failed", info.name);
        for (int64_t j = 0; j < info.count; j++)
            if (!isfinite(values[j]))
                FUZZ_FAIL("tensor '%s' of an opened set holds a non-finite value", info.name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float after[MAX_FLOATS];
    if (file_fd < 0)
        setup();
    if (size < 2)
        return 0;
    const int which = data[0] % FUZZ_N_HANDLES;
    const fuzz_handle *h = &handles[which];
    const float *before = initial[which];
    const uint8_t control = data[1];
    uint32_t flags = control & 3u;
    if ((control >> 2 & 3u) == 3u) /* now and then a reserved bit, which must be refused */
        flags |= control & 0x80u ? 0x80000000u : 0x4u;
    const char *prefix = fuzz_prefixes[control >> 4 & 3u];
    write_file(data + 2, size - 2);

    FUZZ_CALL(attn_params_init, h->params, INIT_SEED);
    const int64_t n = initial_count[which];
    attn_status s = FUZZ_CALL(attn_params_load, h->params, file_path, prefix, flags);
    snapshot(h->params, after);
    if (s != ATTN_OK) {
        if (memcmp(before, after, (size_t)n * sizeof *before) != 0)
            FUZZ_FAIL("a failed attn_params_load (%d: %s) changed the parameters", (int)s, attn_last_error());
    } else {
        if (flags > 3u)
            FUZZ_FAIL("attn_params_load accepted flags 0x%x", (unsigned)flags);
        for (int64_t j = 0; j < n; j++)
            if (!isfinite(after[j]))
                FUZZ_FAIL("attn_params_load succeeded with a non-finite value at %lld", (long long)j);
    }

    if (control & 0x40u) {
        attn_params *set = (attn_params *)&set; /* must become NULL on failure */
        s = FUZZ_CALL(attn_params_open, &set, file_path, prefix);
        if (s == ATTN_OK) {
            check_opened(set);
            attn_params_close(set);
        } else if (set != NULL) {
            FUZZ_FAIL("attn_params_open failed but left *out non-NULL");
        }
    }
    return 0;
}
