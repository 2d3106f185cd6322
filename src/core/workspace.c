/* Aligned allocation and the growable scratch workspace shared by every family's forward, and the
 * workspace each thread keeps for forward calls given ws = NULL. */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static size_t round_up(size_t bytes) { return (bytes + ATTN__ALIGN - 1) / ATTN__ALIGN * ATTN__ALIGN; }

void *attn__alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - ATTN__ALIGN)
        return NULL;
    return aligned_alloc(ATTN__ALIGN, round_up(bytes));
}

void *attn__calloc(size_t bytes)
{
    void *p = attn__alloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void attn__free(void *p) { free(p); }

size_t attn__plan_take(attn_ws_plan *plan, int64_t elem_size, int64_t a, int64_t b, int64_t c)
{
    const size_t offset = plan->bytes;
    int64_t bytes, total;
    if (!attn__mul3(a, b, c, &bytes) || !attn__mul(bytes, elem_size, &bytes) || bytes > PTRDIFF_MAX - ATTN__ALIGN ||
        __builtin_add_overflow((int64_t)plan->bytes, (int64_t)round_up((size_t)bytes), &total))
        plan->overflow = true;
    else
        plan->bytes = (size_t)total;
    return offset;
}

size_t attn__plan_nest(attn_ws_plan *plan, attn_ws_plan inner)
{
    plan->overflow |= inner.overflow;
    return attn__plan_take(plan, 1, (int64_t)inner.bytes, 1, 1);
}

attn_status attn_workspace_create(attn_workspace **out)
{
    if (!out)
        return attn__fail(ATTN_E_INVALID_ARG, "attn_workspace_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return attn__fail(ATTN_E_NOMEM, "attn_workspace_create: out of memory");
    return ATTN_OK;
}

void attn_workspace_destroy(attn_workspace *ws)
{
    if (!ws)
        return;
    attn__free(ws->data);
    free(ws);
}

int64_t attn_workspace_size(const attn_workspace *ws) { return ws ? (int64_t)ws->size : 0; }

/* ---- the thread's workspace ------------------------------------------------------------------
 * A forward given ws = NULL used to allocate its scratch and free it again: for large calls that is
 * fresh pages on every call (+17 % on an LSTM of 128 MiB of scratch). Instead each thread keeps one
 * workspace for those calls, freed when the thread exits (the key's destructor) or by
 * attn_thread_workspace_release. It is found through a thread-local pointer (no lookup on the hot
 * path); the key only exists to run the destructor. A call that finds the thread's workspace busy
 * (a callback re-entering the library) falls back to a block of its own. */
typedef struct thread_workspace {
    attn_workspace ws;
    bool busy;
} thread_workspace;

static _Thread_local thread_workspace *this_thread;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static bool thread_key_made;

static void free_thread_workspace(void *p)
{
    thread_workspace *t = p;
    attn__free(t->ws.data);
    free(t);
    this_thread = NULL;
}

static void make_thread_key(void) { thread_key_made = pthread_key_create(&thread_key, free_thread_workspace) == 0; }

/* Unloading the library (dlclose) must not leave the key's destructor, which lives in this
 * library, to run at the exit of other threads: deleting the key stops it (their workspaces are
 * then leaked rather than freed by unmapped code). The unloading thread's own is freed. */
__attribute__((destructor)) static void delete_thread_key(void)
{
    if (!thread_key_made)
        return;
    if (this_thread)
        free_thread_workspace(this_thread);
    pthread_key_delete(thread_key);
    thread_key_made = false; /* a later call (another destructor's) then allocates per call */
}

/* The calling thread's workspace, made on first use; NULL when it cannot be (then the call
 * allocates a block of its own, as before). */
static thread_workspace *thread_workspace_get(void)
{
    if (this_thread)
        return this_thread;
    pthread_once(&thread_key_once, make_thread_key);
    if (!thread_key_made)
        return NULL;
    thread_workspace *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (pthread_setspecific(thread_key, t) != 0) {
        free(t);
        return NULL;
    }
    return this_thread = t;
}

void attn_thread_workspace_release(void)
{
    thread_workspace *t = this_thread;
    if (!t || t->busy)
        return;
    attn__free(t->ws.data);
    t->ws.data = NULL;
    t->ws.size = 0;
}

int64_t attn_thread_workspace_size(void) { return this_thread ? (int64_t)this_thread->ws.size : 0; }

attn_status attn__workspace_reserve(const char *fn, attn_workspace *ws, attn_ws_lease *lease, size_t bytes,
                                    char **base)
{
    attn_workspace *w = ws;
    lease->busy = NULL;
    if (!w) {
        thread_workspace *t = thread_workspace_get();
        w = &lease->own;
        if (t && !t->busy) {
            w = &t->ws;
            lease->busy = &t->busy;
        }
    }
    if (bytes > w->size) {
        /* Grow to exactly the request: the workspace's size then equals the reported cost. */
        void *grown = attn__alloc(bytes);
        if (!grown) {
            lease->busy = NULL;
            return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate a workspace of %zu bytes", fn, bytes);
        }
        attn__free(w->data);
        w->data = grown;
        w->size = bytes;
    }
    if (lease->busy)
        *lease->busy = true;
    *base = w->data;
    return ATTN_OK;
}

void attn__workspace_release(attn_ws_lease *lease)
{
    if (lease->busy) {
        *lease->busy = false;
        lease->busy = NULL;
    }
    attn__free(lease->own.data);
    lease->own.data = NULL;
    lease->own.size = 0;
}
