/* Aligned allocation and the growable scratch workspace shared by every family's forward. */
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

attn_status attn__workspace_reserve(const char *fn, attn_workspace *ws, attn_workspace *local, size_t bytes,
                                    char **base)
{
    attn_workspace *w = ws ? ws : local;
    if (bytes > w->size) {
        /* Grow to exactly the request: the workspace's size then equals the reported cost. */
        void *grown = attn__alloc(bytes);
        if (!grown)
            return attn__fail(ATTN_E_NOMEM, "%s: cannot allocate a workspace of %zu bytes", fn, bytes);
        attn__free(w->data);
        w->data = grown;
        w->size = bytes;
    }
    *base = w->data;
    return ATTN_OK;
}

void attn__workspace_release(attn_workspace *local)
{
    attn__free(local->data);
    local->data = NULL;
    local->size = 0;
}
