/* Thread teams: the caller and short-lived helper threads share the row work between two GEMMs.
 *
 * Rows are claimed `chunk` at a time from a counter, so a helper that the scheduler has not run yet
 * only leaves more rows to the caller instead of holding it up.
 *
 * Helpers are kept off the caller's CPU: woken while OpenBLAS's idle threads spin on the other
 * cores, Linux places them next to their waker, where they would only time-slice with the caller
 * (on 2 cores, 511 of 512 wake-ups of an unpinned helper did). On another core a helper displaces
 * an OpenBLAS thread that spins with sched_yield while it waits for the next GEMM. */
#define _GNU_SOURCE /* sched_getcpu, pthread_{get,set}affinity_np */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>

#include "core/core.h"

#if defined(__linux__)
#define ATTN_TEAM 1
#else
#define ATTN_TEAM 0
#endif

enum { TEAM_MAX = 8 }; /* threads, the caller included */

#if ATTN_TEAM
struct attn_team_state {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned generation; /* of the posted task; helpers sleep until it changes */
    bool quit;
    attn_rows_fn fn;
    const void *ctx;
    int64_t rows, chunk;
    _Atomic uint64_t claim;   /* generation << 32 | first unclaimed row of the task */
    _Atomic int64_t finished; /* rows of the task done */
    int caller_cpu;           /* the CPU the helpers are kept off; -1 before the first task */
    cpu_set_t allowed;        /* the caller's CPUs: helpers never run elsewhere */
    int helpers;
    pthread_t threads[TEAM_MAX - 1];
};

/* The task of `generation` as a helper read it under the lock. */
typedef struct team_task {
    attn_rows_fn fn;
    const void *ctx;
    int64_t rows, chunk;
    unsigned generation;
} team_task;

/* Runs chunks of the task until none is left (or a newer task replaced it). */
static void claim_rows(struct attn_team_state *s, const team_task *task)
{
    uint64_t c = atomic_load(&s->claim);
    for (;;) {
        const int64_t first = (int64_t)(c & 0xffffffffu);
        if ((unsigned)(c >> 32) != task->generation || first >= task->rows)
            return;
        const int64_t end = first + task->chunk < task->rows ? first + task->chunk : task->rows;
        if (!atomic_compare_exchange_weak(&s->claim, &c, (uint64_t)task->generation << 32 | (uint64_t)end))
            continue; /* c now holds the current claim */
        task->fn(task->ctx, first, end);
        atomic_fetch_add(&s->finished, end - first);
        c = atomic_load(&s->claim);
    }
}

static void *helper_main(void *arg)
{
    struct attn_team_state *s = arg;
    unsigned seen = 0; /* the generation at start: a task may be posted before this runs */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->generation == seen && !s->quit)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->quit)
            break;
        seen = s->generation;
        const team_task task = {s->fn, s->ctx, s->rows, s->chunk, seen};
        pthread_mutex_unlock(&s->lock);
        claim_rows(s, &task);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Moves the helpers off the CPU the caller now runs on (a syscall only when that changed). */
static void keep_off_caller(struct attn_team_state *s)
{
    const int cpu = sched_getcpu();
    if (cpu == s->caller_cpu || cpu < 0 || cpu >= CPU_SETSIZE)
        return;
    cpu_set_t set = s->allowed;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) == 0)
        return;
    for (int i = 0; i < s->helpers; i++)
        pthread_setaffinity_np(s->threads[i], sizeof set, &set);
    s->caller_cpu = cpu;
}

/* Starts helpers when OpenBLAS may use more than one thread and the caller may run on more than
 * one CPU: one helper less than the smaller of those counts. Any failure leaves fewer helpers (or
 * the caller alone). */
static void team_start(attn_team *t)
{
    const int blas = attn__blas_threads();
    cpu_set_t allowed;
    if (blas < 2 || pthread_getaffinity_np(pthread_self(), sizeof allowed, &allowed))
        return;
    int want = CPU_COUNT(&allowed);
    want = want < blas ? want : blas;
    want = want < TEAM_MAX ? want : TEAM_MAX;
    if (want < 2)
        return;
    struct attn_team_state *s = attn__alloc(sizeof *s);
    if (!s)
        return;
    if (pthread_mutex_init(&s->lock, NULL)) {
        attn__free(s);
        return;
    }
    if (pthread_cond_init(&s->wake, NULL)) {
        pthread_mutex_destroy(&s->lock);
        attn__free(s);
        return;
    }
    s->generation = 0;
    s->quit = false;
    s->caller_cpu = -1;
    s->allowed = allowed;
    s->helpers = 0;
    atomic_init(&s->claim, 0);
    atomic_init(&s->finished, 0);
    /* Helpers take no signals: those belong to the caller's threads. */
    sigset_t all, old;
    sigfillset(&all);
    const bool masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    while (s->helpers < want - 1 && !pthread_create(&s->threads[s->helpers], NULL, helper_main, s))
        s->helpers++;
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (s->helpers == 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        attn__free(s);
        return;
    }
    t->state = s;
    t->size = s->helpers + 1;
}
#endif

void attn__team_stop(attn_team *t)
{
#if ATTN_TEAM
    struct attn_team_state *s = t->state;
    if (s) {
        pthread_mutex_lock(&s->lock);
        s->quit = true;
        pthread_cond_broadcast(&s->wake);
        pthread_mutex_unlock(&s->lock);
        for (int i = 0; i < s->helpers; i++)
            pthread_join(s->threads[i], NULL);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        attn__free(s);
    }
#endif
    *t = (attn_team)ATTN__TEAM_INIT;
}

void attn__team_run(attn_team *t, attn_rows_fn fn, const void *ctx, int64_t rows, int64_t chunk, bool share)
{
    share = share && t && rows > chunk && rows <= (int64_t)UINT32_MAX; /* claims hold 32-bit rows */
#if ATTN_TEAM
    if (share && !t->tried) {
        t->tried = true;
        team_start(t);
    }
#endif
    if (!share || !t->state) {
        fn(ctx, 0, rows);
        return;
    }
#if ATTN_TEAM
    struct attn_team_state *s = t->state;
    keep_off_caller(s);
    pthread_mutex_lock(&s->lock);
    const team_task task = {fn, ctx, rows, chunk, ++s->generation};
    s->fn = fn;
    s->ctx = ctx;
    s->rows = rows;
    s->chunk = chunk;
    atomic_store(&s->finished, 0);
    atomic_store(&s->claim, (uint64_t)task.generation << 32);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    claim_rows(s, &task);
    /* At most one chunk per helper is still running. */
    while (atomic_load(&s->finished) < rows)
        sched_yield();
#endif
}
