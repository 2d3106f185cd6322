/*
 * test_alloc_failure.c: every public call that allocates, under allocation failure.
 *
 * tests/alloc_failure.cmake links this program with its own static copy of the library and with
 * malloc, calloc, realloc and aligned_alloc wrapped at link time, so that the n-th allocation the
 * library makes during one call can be made to fail while the public API stays free of any switch
 * for it. For each call (create, attn_params_load/open/save, forward with no workspace, with a grown
 * one and with a new one that must grow, the second entry point of a family, the analysis
 * functions, attn_workspace_create) the sweep makes allocation n = 1, 2, ... fail, alone, until the
 * call succeeds without any failure: then every allocation of the call has been a failure point.
 * At each point the call must return ATTN_E_NOMEM with a message that starts with the function's
 * name and must have changed nothing: create leaves *out NULL, load leaves every tensor as it was,
 * open leaves *out NULL, save leaves no target and no temporary file, forward leaves its outputs,
 * the handle's tensors and the workspace usable; and the same call repeated without failure gives
 * bit for bit the reference result computed before the sweep. Leaks are caught by LeakSanitizer in
 * the ATTN_SANITIZE build. A failure that the library absorbs (a thread team that cannot start runs
 * the rows on the calling thread) must give the reference result too.
 *
 * The summary table on stdout gives, per family and call, the number of failure points covered.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the wrapped allocator -------------------------------------------------------------------- */

#include "alloc_wrap.h"

#define arm alloc_wrap_arm
#define disarm alloc_wrap_disarm

/* ---- the summary table --------------------------------------------------------------------- */

enum column { C_CALL, C_CREATE, C_LOAD, C_OPEN, C_SAVE, C_F_NULL, C_F_WS, C_F_NEW, C_G_NULL, C_G_WS, C_G_NEW, N_COLS };
static const char *const column_names[N_COLS] = {"call", "create", "load", "open", "save", "fwd:-",
                                                 "fwd:ws", "fwd:new", "2nd:-", "2nd:ws", "2nd:new"};
enum { MAX_ROWS = 48 };
static struct row {
    char label[40];
    long points[N_COLS]; /* -1: not run */
    long absorbed;
} rows[MAX_ROWS];
static int n_rows;
static long total_points, total_absorbed;

static void record(const char *label, enum column col, long points, long absorbed)
{
    int r = 0;
    while (r < n_rows && strcmp(rows[r].label, label) != 0)
        r++;
    if (r == n_rows) {
        assert_true(n_rows < MAX_ROWS);
        n_rows++;
        snprintf(rows[r].label, sizeof rows[r].label, "%s", label);
        for (int c = 0; c < N_COLS; c++)
            rows[r].points[c] = -1;
    }
    rows[r].points[col] = points;
    rows[r].absorbed += absorbed;
    total_points += points;
    total_absorbed += absorbed;
}

static int print_table(void **state)
{
    (void)state;
    printf("\nAllocation-failure points covered (each: ATTN_E_NOMEM, nothing changed, no leak, then the\n"
           "reference result). fwd = forward, 2nd = forward_lengths (rnn) / attention_matrix (mha);\n"
           "workspace -: NULL, ws: grown before, new: new workspace that must grow.\n\n");
    printf("%-26s", "family / configuration");
    for (int c = 0; c < N_COLS; c++)
        printf(" %7s", column_names[c]);
    printf("\n");
    for (int r = 0; r < n_rows; r++) {
        printf("%-26s", rows[r].label);
        for (int c = 0; c < N_COLS; c++)
            if (rows[r].points[c] < 0)
                printf(" %7s", "");
            else
                printf(" %7ld", rows[r].points[c]);
        if (rows[r].absorbed)
            printf("  (%ld absorbed)", rows[r].absorbed);
        printf("\n");
    }
    printf("\n%ld failure points in all, %ld of them absorbed by a fallback.\n", total_points, total_absorbed);
    return 0;
}

/* ---- the sweep ---------------------------------------------------------------------------------- */

typedef struct op op;
struct op {
    const char *fn;                /* the public function; its name must start the message */
    void (*prepare)(op *o);        /* before each call (NULL: nothing) */
    attn_status (*call)(op *o);    /* the call under test */
    void (*check_failed)(op *o);   /* after a failed call: nothing half-changed */
    void (*check_done)(op *o);     /* after a successful call: the reference result; cleans up */
    void *ctx;
    char what[96]; /* for messages */
};

enum { MAX_POINTS = 100000 };

/* Makes allocation n = 1, 2, ... of o's call fail; returns the number of points; *absorbed counts
 * the failures after which the call still succeeded. */
static long sweep(op *o, long *absorbed)
{
    *absorbed = 0;
    for (long n = 1; n < MAX_POINTS; n++) {
        if (o->prepare)
            o->prepare(o);
        /* Empty, the thread's workspace (forward with ws = NULL) must grow in every attempt. */
        attn_thread_workspace_release();
        arm(n);
        attn_status s = o->call(o);
        const bool failed = disarm();
        if (!failed) {
            if (s != ATTN_OK)
                fail_msg("%s: no allocation failed (n = %ld) but status %d: %s", o->what, n, s, attn_last_error());
            o->check_done(o);
            return n - 1;
        }
        if (s == ATTN_OK) {
            ++*absorbed;
            o->check_done(o);
            continue;
        }
        const char *msg = attn_last_error();
        const size_t len = strlen(o->fn);
        if (s != ATTN_E_NOMEM)
            fail_msg("%s: allocation %ld failing: status %d (%s), want ATTN_E_NOMEM: %s", o->what, n, s,
                     attn_status_str(s), msg);
        if (strncmp(msg, o->fn, len) != 0 || msg[len] != ':')
            fail_msg("%s: allocation %ld failing: message \"%s\" does not start with \"%s:\"", o->what, n, msg, o->fn);
        o->check_failed(o);
        s = o->call(o);
        if (s != ATTN_OK)
            fail_msg("%s: after allocation %ld failed, the repeated call returned %d: %s", o->what, n, s,
                     attn_last_error());
        o->check_done(o);
    }
    fail_msg("%s: still failing after %d allocations", o->what, MAX_POINTS);
    return -1;
}

static void run_sweep(op *o, const char *label, enum column col)
{
    long absorbed;
    const long points = sweep(o, &absorbed);
    record(label, col, points, absorbed);
}

/* ---- helpers ------------------------------------------------------------------------------------ */

/* Every tensor of p, concatenated in listing order; *count gets their number of floats. */
static float *snapshot(const attn_params *p, int64_t *count)
{
    int64_t total = 0;
    attn_tensor_info info;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        ASSERT_OK(attn_params_info(p, i, &info));
        total += info.count;
    }
    float *all = xmalloc((size_t)total * sizeof *all), *at = all;
    for (int64_t i = 0; i < attn_params_count(p); i++) {
        ASSERT_OK(attn_params_info(p, i, &info));
        ASSERT_OK(attn_params_get(p, info.name, at, info.count));
        at += info.count;
    }
    *count = total;
    return all;
}

static void expect_params(const char *what, const attn_params *p, const float *want, int64_t count)
{
    int64_t n;
    float *now = snapshot(p, &n);
    assert_int_equal(n, count);
    expect_bits_equal(what, "tensors", want, now, n);
    free(now);
}

static const uint32_t SENTINEL_BITS = 0x7fc0beefu; /* a NaN no computation produces */

static void fill_sentinel(float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(&a[i], &SENTINEL_BITS, sizeof a[i]);
}

static void expect_sentinel(const char *what, const float *a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &SENTINEL_BITS, sizeof a[i]) != 0)
            fail_msg("%s: output element %lld was written by the failed call", what, (long long)i);
}

static char tmp_dir[1024];

static void path_for(char *path, size_t size, const char *name)
{
    if (!tmp_dir[0]) {
        const char *dir = getenv("ATTN_TEST_TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/alloc_failure", dir && *dir ? dir : ".");
        if (mkdir(tmp_dir, 0777) != 0 && errno != EEXIST)
            fail_msg("cannot create %s", tmp_dir);
    }
    snprintf(path, size, "%s/%s", tmp_dir, name);
}

/* Whole file into a new buffer; *size its length. */
static unsigned char *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = xmalloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* True when the save's temporary files (".attn-*.tmp") are left in tmp_dir. */
static bool temp_files_left(void)
{
    DIR *d = opendir(tmp_dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, ".attn-", 6) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)
            found = true;
    }
    closedir(d);
    return found;
}

/* ---- the families behind one interface --------------------------------------------------------- */

typedef struct model model;
typedef struct family {
    const char *create_fn, *call_fn[2]; /* call_fn[1]: the second entry point or NULL */
    attn_status (*create)(void **out, const void *options);
    void (*destroy)(void *h);
    attn_params *(*params)(void *h);
    /* which 0: forward, 1: the second entry point; every output into out (packed) */
    attn_status (*call)(const model *m, int which, attn_workspace *ws, float *out);
} family;

/* One configuration: its options, inputs and the handle under test. */
struct model {
    char label[40];
    const family *fam;
    const void *options;
    void *h;
    int64_t n_out[2]; /* floats each entry point writes */
    /* inputs (the families use what they need) */
    int64_t batch, seq, tgt, src;
    float *x, *h0, *c0, *q, *k, *v;
    int64_t *lengths;
    uint8_t *mask;
    int64_t axis_sizes[3];
};

/* rnn */
static attn_status rnn_create_any(void **out, const void *o)
{
    attn_rnn *h = *out;
    const attn_status s = attn_rnn_create(&h, o);
    *out = h;
    return s;
}
static void rnn_destroy_any(void *h) { attn_rnn_destroy(h); }
static attn_params *rnn_params_any(void *h) { return attn_rnn_params(h); }
static attn_status rnn_call(const model *m, int which, attn_workspace *ws, float *out)
{
    const attn_rnn_options *o = m->options;
    const int64_t d = o->bidirectional ? 2 : 1;
    float *y = out, *h_n = y + m->batch * m->seq * d * o->hidden_size;
    float *c_n = m->c0 ? h_n + o->num_layers * d * m->batch * o->hidden_size : NULL;
    if (which == 0)
        return attn_rnn_forward(m->h, ws, m->batch, m->seq, m->x, m->h0, m->c0, y, h_n, c_n);
    return attn_rnn_forward_lengths(m->h, ws, m->batch, m->seq, m->lengths, m->x, m->h0, m->c0, y, h_n, c_n);
}
static const family rnn_family = {"attn_rnn_create", {"attn_rnn_forward", "attn_rnn_forward_lengths"},
                                  rnn_create_any, rnn_destroy_any, rnn_params_any, rnn_call};

/* memrnn */
static attn_status memrnn_create_any(void **out, const void *o)
{
    attn_memrnn *h = *out;
    const attn_status s = attn_memrnn_create(&h, o);
    *out = h;
    return s;
}
static void memrnn_destroy_any(void *h) { attn_memrnn_destroy(h); }
static attn_params *memrnn_params_any(void *h) { return attn_memrnn_params(h); }
static attn_status memrnn_call(const model *m, int which, attn_workspace *ws, float *out)
{
    (void)which;
    const attn_memrnn_options *o = m->options;
    float *y = out, *rw = y + m->batch * m->seq * o->output_size;
    float *mem = rw + m->batch * m->seq * o->num_heads * o->memory_slots;
    return attn_memrnn_forward(m->h, ws, m->batch, m->seq, m->x, y, rw, mem);
}
static const family memrnn_family = {"attn_memrnn_create", {"attn_memrnn_forward", NULL}, memrnn_create_any,
                                     memrnn_destroy_any, memrnn_params_any, memrnn_call};

/* mha */
static attn_status mha_create_any(void **out, const void *o)
{
    attn_mha *h = *out;
    const attn_status s = attn_mha_create(&h, o);
    *out = h;
    return s;
}
static void mha_destroy_any(void *h) { attn_mha_destroy(h); }
static attn_params *mha_params_any(void *h) { return attn_mha_params(h); }
static attn_status mha_call(const model *m, int which, attn_workspace *ws, float *out)
{
    if (which == 0)
        return attn_mha_forward(m->h, ws, m->batch, m->tgt, m->src, m->q, m->k, m->v, m->mask, out);
    return attn_mha_attention_matrix(m->h, ws, m->batch, m->tgt, m->src, m->q, m->k, m->v, m->mask, out);
}
static const family mha_family = {"attn_mha_create", {"attn_mha_forward", "attn_mha_attention_matrix"},
                                  mha_create_any, mha_destroy_any, mha_params_any, mha_call};

/* perceiver */
static attn_status perceiver_create_any(void **out, const void *o)
{
    attn_perceiver *h = *out;
    const attn_status s = attn_perceiver_create(&h, o);
    *out = h;
    return s;
}
static void perceiver_destroy_any(void *h) { attn_perceiver_destroy(h); }
static attn_params *perceiver_params_any(void *h) { return attn_perceiver_params(h); }
static attn_status perceiver_call(const model *m, int which, attn_workspace *ws, float *out)
{
    (void)which;
    return attn_perceiver_forward(m->h, ws, m->batch, m->axis_sizes, m->x, m->mask, out);
}
static const family perceiver_family = {"attn_perceiver_create", {"attn_perceiver_forward", NULL},
                                        perceiver_create_any, perceiver_destroy_any, perceiver_params_any,
                                        perceiver_call};

/* ---- the sweeps of one configuration ----------------------------------------------------------- */

static char dummy_handle; /* *out before create: the call must overwrite it with NULL on failure */

/* create: *out NULL on failure; on success the tensors equal the reference handle's and forward
 * gives the reference output. */
typedef struct create_ctx {
    model *m;
    void *out;
    const float *ref_params, *ref_out;
    int64_t n_params;
    float *got;
} create_ctx;

static void create_prepare(op *o) { ((create_ctx *)o->ctx)->out = &dummy_handle; }
static attn_status create_call(op *o)
{
    create_ctx *c = o->ctx;
    return c->m->fam->create(&c->out, c->m->options);
}
static void create_failed(op *o)
{
    create_ctx *c = o->ctx;
    if (c->out != NULL)
        fail_msg("%s: *out is %p after a failed create, not NULL", o->what, c->out);
}
static void create_done(op *o)
{
    create_ctx *c = o->ctx;
    const model *m = c->m;
    assert_non_null(c->out);
    assert_ptr_not_equal(c->out, &dummy_handle);
    expect_params(o->what, m->fam->params(c->out), c->ref_params, c->n_params);
    model copy = *m;
    copy.h = c->out;
    ASSERT_OK(m->fam->call(&copy, 0, NULL, c->got));
    expect_bits_equal(o->what, "forward output of the new handle", c->ref_out, c->got, m->n_out[0]);
    m->fam->destroy(c->out);
    c->out = NULL;
}

/* forward (or the second entry point) with one of three workspaces. */
enum ws_mode { WS_NULL, WS_GROWN, WS_NEW };
typedef struct call_ctx {
    model *m;
    int which;
    enum ws_mode mode;
    attn_workspace *ws;
    int64_t ws_size; /* before the call: a failed call must not change it */
    const float *ref, *params_before;
    int64_t n_params;
    float *got;
} call_ctx;

static void call_prepare(op *o)
{
    call_ctx *c = o->ctx;
    if (c->mode == WS_NEW)
        ASSERT_OK(attn_workspace_create(&c->ws));
    c->ws_size = attn_workspace_size(c->ws);
    fill_sentinel(c->got, c->m->n_out[c->which]);
}
static attn_status call_call(op *o)
{
    call_ctx *c = o->ctx;
    return c->m->fam->call(c->m, c->which, c->ws, c->got);
}
static void call_failed(op *o)
{
    call_ctx *c = o->ctx;
    expect_sentinel(o->what, c->got, c->m->n_out[c->which]);
    expect_params(o->what, c->m->fam->params(c->m->h), c->params_before, c->n_params);
    if (attn_workspace_size(c->ws) != c->ws_size)
        fail_msg("%s: the failed call changed the workspace's size from %lld to %lld", o->what, (long long)c->ws_size,
                 (long long)attn_workspace_size(c->ws));
}
static void call_done(op *o)
{
    call_ctx *c = o->ctx;
    expect_bits_equal(o->what, "outputs", c->ref, c->got, c->m->n_out[c->which]);
    if (c->mode == WS_NEW) {
        attn_workspace_destroy(c->ws);
        c->ws = NULL;
    }
}

/* attn_params_load into the handle: state A before; on failure still A, on success the file's B. */
typedef struct load_ctx {
    attn_params *p;
    const char *path;
    const float *a, *b;
    int64_t n;
} load_ctx;

static void load_prepare(op *o)
{
    load_ctx *c = o->ctx;
    ASSERT_OK(attn_params_init(c->p, 3));
}
static attn_status load_call(op *o)
{
    load_ctx *c = o->ctx;
    return attn_params_load(c->p, c->path, "model.", ATTN_LOAD_REJECT_UNKNOWN);
}
static void load_failed(op *o)
{
    load_ctx *c = o->ctx;
    expect_params(o->what, c->p, c->a, c->n);
}
static void load_done(op *o)
{
    load_ctx *c = o->ctx;
    expect_params(o->what, c->p, c->b, c->n);
}

/* attn_params_open of the same file: *out NULL on failure; on success every tensor of the handle
 * is there under its name with the file's values. */
typedef struct open_ctx {
    const attn_params *like; /* holds the file's values */
    const char *path;
    attn_params *out;
} open_ctx;

static void open_prepare(op *o) { ((open_ctx *)o->ctx)->out = (attn_params *)&dummy_handle; }
static attn_status open_call(op *o)
{
    open_ctx *c = o->ctx;
    return attn_params_open(&c->out, c->path, "model.");
}
static void open_failed(op *o)
{
    open_ctx *c = o->ctx;
    if (c->out != NULL)
        fail_msg("%s: *out is %p after a failed open, not NULL", o->what, (void *)c->out);
}
static void open_done(op *o)
{
    open_ctx *c = o->ctx;
    assert_non_null(c->out);
    assert_ptr_not_equal(c->out, &dummy_handle);
    assert_int_equal(attn_params_count(c->out), attn_params_count(c->like));
    attn_tensor_info info, found;
    for (int64_t i = 0; i < attn_params_count(c->like); i++) {
        ASSERT_OK(attn_params_info(c->like, i, &info));
        ASSERT_OK(attn_params_find(c->out, info.name, &found));
        assert_int_equal(found.count, info.count);
        float *want = xmalloc((size_t)info.count * sizeof *want), *got = xmalloc((size_t)info.count * sizeof *got);
        ASSERT_OK(attn_params_get(c->like, info.name, want, info.count));
        ASSERT_OK(attn_params_get(c->out, info.name, got, info.count));
        expect_bits_equal(o->what, info.name, want, got, info.count);
        free(want);
        free(got);
    }
    attn_params_close(c->out);
    c->out = NULL;
}

/* attn_params_save: on failure no target and no temporary file; on success the reference bytes. */
typedef struct save_ctx {
    const attn_params *p;
    const char *path;
    const unsigned char *ref;
    size_t ref_size;
} save_ctx;

static void save_prepare(op *o)
{
    save_ctx *c = o->ctx;
    if (remove(c->path) != 0 && errno != ENOENT)
        fail_msg("cannot remove %s", c->path);
}
static attn_status save_call(op *o)
{
    save_ctx *c = o->ctx;
    return attn_params_save(c->p, c->path, "model.");
}
static void save_failed(op *o)
{
    save_ctx *c = o->ctx;
    if (access(c->path, F_OK) == 0)
        fail_msg("%s: the target exists after a failed save", o->what);
    if (temp_files_left())
        fail_msg("%s: a temporary file is left after a failed save", o->what);
}
static void save_done(op *o)
{
    save_ctx *c = o->ctx;
    size_t size;
    unsigned char *got = read_whole(c->path, &size);
    assert_int_equal(size, c->ref_size);
    if (memcmp(got, c->ref, size) != 0)
        fail_msg("%s: the saved file differs from the reference", o->what);
    free(got);
}

static void set_what(op *o, const model *m, const char *call)
{
    snprintf(o->what, sizeof o->what, "%s: %s", m->label, call);
}

/* Every sweep of one configuration; m->h is created here and destroyed at the end. */
static void sweep_model(model *m)
{
    const family *f = m->fam;
    ASSERT_OK(f->create(&m->h, m->options));
    attn_params *p = f->params(m->h);
    int64_t n_params;
    float *params0 = snapshot(p, &n_params);

    /* References: each entry point without a workspace, before any failure. */
    float *ref[2] = {NULL, NULL};
    const int calls = f->call_fn[1] ? 2 : 1;
    for (int w = 0; w < calls; w++) {
        ref[w] = xmalloc((size_t)m->n_out[w] * sizeof *ref[w]);
        fill_sentinel(ref[w], m->n_out[w]);
        ASSERT_OK(f->call(m, w, NULL, ref[w]));
    }
    float *got = xmalloc((size_t)(m->n_out[0] > m->n_out[1] ? m->n_out[0] : m->n_out[1]) * sizeof *got);

    create_ctx cc = {.m = m, .ref_params = params0, .ref_out = ref[0], .n_params = n_params, .got = got};
    op o = {f->create_fn, create_prepare, create_call, create_failed, create_done, &cc, ""};
    set_what(&o, m, f->create_fn);
    run_sweep(&o, m->label, C_CREATE);

    for (int w = 0; w < calls; w++)
        for (int mode = WS_NULL; mode <= WS_NEW; mode++) {
            call_ctx c = {.m = m, .which = w, .mode = mode, .ref = ref[w], .params_before = params0,
                          .n_params = n_params, .got = got};
            if (mode == WS_GROWN) {
                ASSERT_OK(attn_workspace_create(&c.ws));
                ASSERT_OK(f->call(m, w, c.ws, got));
            }
            op oc = {f->call_fn[w], call_prepare, call_call, call_failed, call_done, &c, ""};
            set_what(&oc, m, f->call_fn[w]);
            snprintf(oc.what + strlen(oc.what), sizeof oc.what - strlen(oc.what), " (workspace %s)",
                     mode == WS_NULL ? "NULL" : mode == WS_GROWN ? "grown" : "new");
            run_sweep(&oc, m->label, (enum column)((w ? C_G_NULL : C_F_NULL) + mode));
            attn_workspace_destroy(c.ws);
        }

    /* The file: the handle's tensors from another seed (B), under a prefix. */
    char path[1200], saved[1200];
    path_for(path, sizeof path, "load.safetensors");
    path_for(saved, sizeof saved, "saved.safetensors");
    ASSERT_OK(attn_params_init(p, 7));
    int64_t n;
    float *b = snapshot(p, &n);
    ASSERT_OK(attn_params_save(p, path, "model."));
    ASSERT_OK(attn_params_init(p, 3));
    float *a = snapshot(p, &n);

    load_ctx lc = {p, path, a, b, n};
    op ol = {"attn_params_load", load_prepare, load_call, load_failed, load_done, &lc, ""};
    set_what(&ol, m, "attn_params_load");
    run_sweep(&ol, m->label, C_LOAD);

    ASSERT_OK(attn_params_init(p, 7));
    open_ctx oc = {p, path, NULL};
    op oo = {"attn_params_open", open_prepare, open_call, open_failed, open_done, &oc, ""};
    set_what(&oo, m, "attn_params_open");
    run_sweep(&oo, m->label, C_OPEN);

    size_t ref_size;
    unsigned char *ref_file = read_whole(path, &ref_size);
    save_ctx sc = {p, saved, ref_file, ref_size};
    op os = {"attn_params_save", save_prepare, save_call, save_failed, save_done, &sc, ""};
    set_what(&os, m, "attn_params_save");
    run_sweep(&os, m->label, C_SAVE);

    free(ref_file);
    free(a);
    free(b);
    free(got);
    free(ref[0]);
    free(ref[1]);
    free(params0);
    f->destroy(m->h);
    m->h = NULL;
    remove(path);
    remove(saved);
}

static void free_inputs(model *m)
{
    free(m->x);
    free(m->h0);
    free(m->c0);
    free(m->q);
    free(m->k);
    free(m->v);
    free(m->lengths);
    free(m->mask);
}

/* ---- the families' configurations ------------------------------------------------------------- */

static void test_rnn(void **state)
{
    (void)state;
    static const int32_t cells[] = {ATTN_CELL_LSTM, ATTN_CELL_GRU, ATTN_CELL_RNN_TANH};
    static const char *const cell_names[] = {"lstm", "gru", "tanh"};
    static const int32_t recurrences[] = {ATTN_RECURRENCE_DENSE, ATTN_RECURRENCE_LOW_RANK, ATTN_RECURRENCE_KRONECKER};
    static const char *const recurrence_names[] = {"dense", "low-rank", "kronecker"};
    for (int c = 0; c < COUNT_OF(cells); c++)
        for (int r = 0; r < COUNT_OF(recurrences); r++) {
            attn_rnn_options o;
            ASSERT_OK(attn_rnn_options_init(&o));
            o.cell = cells[c];
            o.recurrence = recurrences[r];
            o.bidirectional = 1;
            o.input_size = 3;
            o.hidden_size = 4;
            o.num_layers = 2;
            if (o.recurrence == ATTN_RECURRENCE_LOW_RANK)
                o.rank = 2;
            if (o.recurrence == ATTN_RECURRENCE_KRONECKER) {
                o.num_factors = 2;
                o.factor_sizes[0] = o.factor_sizes[1] = 2;
            }
            model m = {.fam = &rnn_family, .options = &o, .batch = 2, .seq = 4};
            snprintf(m.label, sizeof m.label, "rnn %s %s", cell_names[c], recurrence_names[r]);
            const int64_t states = 2 * 2 * m.batch * o.hidden_size;
            m.x = random_floats(m.batch * m.seq * o.input_size, 11, 1.0);
            m.h0 = random_floats(states, 12, 0.5);
            m.c0 = o.cell == ATTN_CELL_LSTM ? random_floats(states, 13, 0.5) : NULL;
            m.lengths = xmalloc(2 * sizeof *m.lengths);
            m.lengths[0] = 2;
            m.lengths[1] = 4;
            m.n_out[0] = m.n_out[1] = m.batch * m.seq * 2 * o.hidden_size + states * (m.c0 ? 2 : 1);
            sweep_model(&m);
            free_inputs(&m);
        }
}

static void test_memrnn(void **state)
{
    (void)state;
    /* The third: batch * slots large enough for the addressing to start a thread team, whose
     * allocation failing leaves the caller to do the rows alone (an absorbed failure). */
    for (int variant = 0; variant < 3; variant++) {
        const bool sparse = variant == 1, team = variant == 2;
        attn_memrnn_options o;
        ASSERT_OK(attn_memrnn_options_init(&o));
        o.input_size = 3;
        o.output_size = 2;
        o.controller_size = 5;
        o.controller_layers = 2;
        o.num_heads = 2;
        o.memory_slots = team ? 2048 : 6;
        o.memory_width = 4;
        o.addressing = sparse ? ATTN_MEMORY_SPARSE : ATTN_MEMORY_DENSE;
        o.top_k = sparse ? 2 : 0;
        model m = {.fam = &memrnn_family, .options = &o, .batch = 2, .seq = team ? 2 : 3};
        snprintf(m.label, sizeof m.label, "memrnn %s", sparse ? "sparse top-2" : team ? "dense, N = 2048" : "dense");
        m.x = random_floats(m.batch * m.seq * o.input_size, 21, 1.0);
        m.n_out[0] = m.batch * m.seq * (o.output_size + o.num_heads * o.memory_slots) +
                     m.batch * o.memory_slots * o.memory_width;
        sweep_model(&m);
        free_inputs(&m);
    }
}

static void test_mha(void **state)
{
    (void)state;
    enum { FULL_MAT, FULL_STREAM, LINFORMER, NYSTROM_NEWTON, NYSTROM_SVD, N_KINDS };
    static const char *const names[N_KINDS] = {"mha full materialize", "mha full streaming", "mha linformer",
                                               "mha nystrom newton", "mha nystrom svd"};
    for (int kind = 0; kind < N_KINDS; kind++) {
        attn_mha_options o;
        ASSERT_OK(attn_mha_options_init(&o));
        o.embed_dim = 8;
        o.num_heads = 2;
        o.kdim = 6;
        o.vdim = 5;
        switch (kind) {
        case FULL_MAT:
            o.memory_mode = ATTN_MEMORY_MATERIALIZE;
            break;
        case FULL_STREAM:
            o.memory_mode = ATTN_MEMORY_STREAMING;
            break;
        case LINFORMER:
            o.kind = ATTN_MHA_LINFORMER;
            o.max_seq_len = 8;
            o.proj_len = 3;
            o.sharing = ATTN_LINFORMER_NONE;
            break;
        default:
            o.kind = ATTN_MHA_NYSTROM;
            o.num_landmarks = 2;
            o.pinv = kind == NYSTROM_SVD ? ATTN_PINV_SVD : ATTN_PINV_NEWTON;
            o.conv_kernel = 3;
            break;
        }
        /* Nystrom's residual convolution needs tgt_len == src_len. */
        model m = {.fam = &mha_family, .options = &o, .batch = 2, .tgt = kind >= NYSTROM_NEWTON ? 6 : 4, .src = 6};
        snprintf(m.label, sizeof m.label, "%s", names[kind]);
        m.q = random_floats(m.batch * m.tgt * o.embed_dim, 31, 1.0);
        m.k = random_floats(m.batch * m.src * o.kdim, 32, 1.0);
        m.v = random_floats(m.batch * m.src * o.vdim, 33, 1.0);
        m.mask = calloc((size_t)(m.batch * m.src), 1);
        assert_non_null(m.mask);
        m.mask[m.src - 1] = 1; /* one masked key in the first batch element */
        m.n_out[0] = m.batch * m.tgt * o.embed_dim;
        m.n_out[1] = m.batch * o.num_heads * m.tgt * m.src;
        sweep_model(&m);
        free_inputs(&m);
    }
}

static void test_perceiver(void **state)
{
    (void)state;
    for (int tied = 0; tied <= 1; tied++) {
        attn_perceiver_options o;
        ASSERT_OK(attn_perceiver_options_init(&o));
        o.input_channels = 3;
        o.input_axis = 2;
        o.num_freq_bands = 2;
        o.max_freq = 10.0;
        o.fourier_encode = 1;
        o.depth = tied ? 3 : 2;
        o.num_latents = 4;
        o.latent_dim = 8;
        o.cross_heads = 1;
        o.cross_dim_head = 4;
        o.latent_heads = 2;
        o.latent_dim_head = 4;
        o.self_per_cross_attn = 1;
        o.weight_tie_layers = tied;
        o.num_classes = tied ? 0 : 3;
        model m = {.fam = &perceiver_family, .options = &o, .batch = 2, .axis_sizes = {3, 2}};
        snprintf(m.label, sizeof m.label, "perceiver%s", tied ? " tied, latents" : " head");
        const int64_t positions = m.axis_sizes[0] * m.axis_sizes[1];
        m.x = random_floats(m.batch * positions * o.input_channels, 41, 1.0);
        m.mask = calloc((size_t)(m.batch * positions), 1);
        assert_non_null(m.mask);
        m.mask[1] = 1;
        m.n_out[0] = tied ? m.batch * o.num_latents * o.latent_dim : m.batch * o.num_classes;
        sweep_model(&m);
        free_inputs(&m);
    }
}

/* ---- the analysis functions and attn_workspace_create ------------------------------------------ */

enum { A_ROWS = 7, A_COLS = 5, A_RANK = 2 };
#define A_BYTES ((A_COLS + 8) * sizeof(double) + (A_ROWS + A_COLS) * A_RANK * sizeof(float))
typedef struct analysis_ctx {
    int which; /* 0 singular_values, 1 rank_analyze, 2 lowrank_error, 3 lowrank_factors */
    const float *a;
    /* outputs: doubles then floats, as raw bytes for the sentinel and memcmp checks */
    unsigned char got[A_BYTES], ref[A_BYTES];
} analysis_ctx;

static void analysis_prepare(op *o) { memset(((analysis_ctx *)o->ctx)->got, 0xA5, A_BYTES); }
static attn_status analysis_call(op *o)
{
    analysis_ctx *c = o->ctx;
    switch (c->which) {
    case 0: {
        double sigma[A_COLS];
        memcpy(sigma, c->got, sizeof sigma);
        const attn_status s = attn_singular_values(c->a, A_ROWS, A_COLS, sigma);
        memcpy(c->got, sigma, sizeof sigma);
        return s;
    }
    case 1: {
        attn_rank_report r;
        memcpy(&r, c->got, sizeof r);
        const attn_status s = attn_rank_analyze(c->a, A_ROWS, A_COLS, &r);
        memcpy(c->got, &r, sizeof r);
        return s;
    }
    case 2: {
        double e;
        memcpy(&e, c->got, sizeof e);
        const attn_status s = attn_lowrank_error(c->a, A_ROWS, A_COLS, A_RANK, &e);
        memcpy(c->got, &e, sizeof e);
        return s;
    }
    default: {
        float u[A_ROWS * A_RANK], v[A_RANK * A_COLS];
        memcpy(u, c->got, sizeof u);
        memcpy(v, c->got + sizeof u, sizeof v);
        const attn_status s = attn_lowrank_factors(c->a, A_ROWS, A_COLS, A_RANK, u, v);
        memcpy(c->got, u, sizeof u);
        memcpy(c->got + sizeof u, v, sizeof v);
        return s;
    }
    }
}
static void analysis_failed(op *o)
{
    analysis_ctx *c = o->ctx;
    for (size_t i = 0; i < sizeof c->got; i++)
        if (c->got[i] != 0xA5)
            fail_msg("%s: the failed call wrote its output (byte %zu)", o->what, i);
}
static void analysis_done(op *o)
{
    analysis_ctx *c = o->ctx;
    if (memcmp(c->got, c->ref, sizeof c->got) != 0)
        fail_msg("%s: the result differs from the reference", o->what);
}

static void test_analysis(void **state)
{
    (void)state;
    static const char *const fns[] = {"attn_singular_values", "attn_rank_analyze", "attn_lowrank_error",
                                      "attn_lowrank_factors"};
    float *a = random_floats(A_ROWS * A_COLS, 51, 1.0);
    for (int w = 0; w < COUNT_OF(fns); w++) {
        analysis_ctx *c = calloc(1, sizeof *c);
        assert_non_null(c);
        c->which = w;
        c->a = a;
        op o = {fns[w], analysis_prepare, analysis_call, analysis_failed, analysis_done, c, ""};
        snprintf(o.what, sizeof o.what, "%s", fns[w]);
        analysis_prepare(&o);
        ASSERT_OK(analysis_call(&o));
        memcpy(c->ref, c->got, sizeof c->got);
        char label[40];
        snprintf(label, sizeof label, "analysis %s", fns[w] + 5);
        run_sweep(&o, label, C_CALL);
        free(c);
    }
    free(a);
}

typedef struct ws_ctx {
    attn_workspace *ws;
} ws_ctx;
static void ws_prepare(op *o) { ((ws_ctx *)o->ctx)->ws = (attn_workspace *)&dummy_handle; }
static attn_status ws_call(op *o) { return attn_workspace_create(&((ws_ctx *)o->ctx)->ws); }
static void ws_failed(op *o)
{
    if (((ws_ctx *)o->ctx)->ws != NULL)
        fail_msg("%s: *out is not NULL after a failure", o->what);
}
static void ws_done(op *o)
{
    ws_ctx *c = o->ctx;
    assert_non_null(c->ws);
    assert_ptr_not_equal(c->ws, &dummy_handle);
    assert_int_equal(attn_workspace_size(c->ws), 0);
    attn_workspace_destroy(c->ws);
    c->ws = NULL;
}

static void test_workspace_create(void **state)
{
    (void)state;
    ws_ctx c = {NULL};
    op o = {"attn_workspace_create", ws_prepare, ws_call, ws_failed, ws_done, &c, "attn_workspace_create"};
    run_sweep(&o, "workspace", C_CALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rnn),      cmocka_unit_test(test_memrnn),   cmocka_unit_test(test_mha),
        cmocka_unit_test(test_perceiver), cmocka_unit_test(test_analysis), cmocka_unit_test(test_workspace_create),
    };
    return cmocka_run_group_tests(tests, NULL, print_table);
}
