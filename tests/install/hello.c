/*
 * hello.c: a consumer of an *installed* libattn, built once through pkg-config and once through
 * find_package(attn) (tests/install/cmake). It only uses the public headers and exported symbols,
 * so it fails if the installed headers, library, attn.pc or CMake package are incomplete.
 * Exit status 0 on success; the first failed check is printed to stderr.
 */
#include <attn/attn.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define INPUT 4
#define HIDDEN 8
#define BATCH 2
#define STEPS 3

static int fail(const char *what, attn_status status) {
    fprintf(stderr, "hello: %s failed: %s (%s)\n", what, attn_status_str(status), attn_last_error());
    return 1;
}

static int check_error_path(void) {
    attn_rnn *rnn = (attn_rnn *)&rnn; /* any non-NULL value: create must reset it to NULL */
    attn_status status = attn_rnn_create(&rnn, NULL);
    if (status != ATTN_E_INVALID_ARG) {
        fprintf(stderr, "hello: attn_rnn_create(NULL options) returned %d, expected ATTN_E_INVALID_ARG\n",
                (int)status);
        return 1;
    }
    if (rnn != NULL) {
        fprintf(stderr, "hello: attn_rnn_create left *out non-NULL on failure\n");
        return 1;
    }
    const char *message = attn_last_error();
    if (message == NULL || message[0] == '\0') {
        fprintf(stderr, "hello: attn_last_error() is empty after a failed call\n");
        return 1;
    }
    printf("expected error: %s\n", message);
    return 0;
}

static int check_version(void) {
    const char *version = attn_version_string();
    printf("libattn %s (header %d.%d.%d)\n", version, ATTN_VERSION_MAJOR, ATTN_VERSION_MINOR, ATTN_VERSION_PATCH);
    printf("build: %s\n", attn_build_info());
    if (attn_version_number() / 10000 != ATTN_VERSION_MAJOR) {
        fprintf(stderr, "hello: loaded library major %u differs from the header's %d\n",
                (unsigned)(attn_version_number() / 10000), ATTN_VERSION_MAJOR);
        return 1;
    }
#ifdef ATTN_EXPECTED_VERSION
    /* The version the package metadata (attn.pc or attnConfigVersion.cmake) announced. */
    if (strcmp(version, ATTN_EXPECTED_VERSION) != 0) {
        fprintf(stderr, "hello: library says %s, package metadata says %s\n", version, ATTN_EXPECTED_VERSION);
        return 1;
    }
#endif
    return 0;
}

static int run_lstm(void) {
    attn_rnn_options options;
    attn_status status = attn_rnn_options_init(&options);
    if (status != ATTN_OK) return fail("attn_rnn_options_init", status);
    options.cell = ATTN_CELL_LSTM;
    options.input_size = INPUT;
    options.hidden_size = HIDDEN;

    attn_rnn *rnn = NULL;
    status = attn_rnn_create(&rnn, &options);
    if (status != ATTN_OK) return fail("attn_rnn_create", status);

    float x[BATCH * STEPS * INPUT];
    for (int i = 0; i < BATCH * STEPS * INPUT; i++) x[i] = (float)((i % 7) - 3) * 0.25f;
    float y[BATCH * STEPS * HIDDEN];
    float h_n[BATCH * HIDDEN];
    float c_n[BATCH * HIDDEN];
    status = attn_rnn_forward(rnn, NULL, BATCH, STEPS, x, NULL, NULL, y, h_n, c_n);
    attn_rnn_destroy(rnn);
    if (status != ATTN_OK) return fail("attn_rnn_forward", status);

    /* An LSTM output is o * tanh(c): finite and strictly inside (-1, 1). */
    for (int i = 0; i < BATCH * STEPS * HIDDEN; i++) {
        if (!isfinite(y[i]) || fabsf(y[i]) >= 1.0f) {
            fprintf(stderr, "hello: y[%d] = %g is not a valid LSTM output\n", i, (double)y[i]);
            return 1;
        }
    }
    /* h_n is the last time step of y for a one-layer unidirectional network. */
    for (int b = 0; b < BATCH; b++) {
        if (memcmp(&h_n[b * HIDDEN], &y[(b * STEPS + STEPS - 1) * HIDDEN], sizeof(float) * HIDDEN) != 0) {
            fprintf(stderr, "hello: h_n differs from the last step of y (batch %d)\n", b);
            return 1;
        }
    }
    printf("lstm forward ok: y[0] = %.6f\n", (double)y[0]);
    return 0;
}

int main(void) {
    if (check_version() != 0 || check_error_path() != 0 || run_lstm() != 0) return 1;
    printf("hello: all checks passed\n");
    return 0;
}
