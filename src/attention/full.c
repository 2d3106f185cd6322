/* FULL attention: softmax(Q_h K_h^T / sqrt(dh) + masks) V_h for every (batch element, head).
 *
 * Both strategies walk one (batch element, head) at a time, in blocks of query rows, and let
 * OpenBLAS thread each GEMM: a head's K_h and V_h cannot be shared with another head or batch
 * element, so one block of queries against one head's keys is already the largest product the math
 * allows. The head's K (transposed) and V are first copied out of the rows they share with the other
 * heads, which makes both GEMMs 10-25 % faster (see pack_head).
 * - MATERIALIZE: scores for a row block against all S keys, one exact max-subtracted softmax per row,
 *   then one GEMM with V. The exponentials are not normalized; the dh outputs of a row are divided by
 *   its sum instead (dh divisions instead of S multiplications).
 * - STREAMING: the same row block against tiles of keys, with a running max and sum per row
 *   (online softmax): when a tile raises a row's max, the row's accumulated output and sum are
 *   rescaled, and the tile's exponentials are accumulated into the output by a GEMM with beta = 1.
 *   Besides the head's copies of K and V (2 S dh floats), scratch is a constant rows x keys tile.
 * Masks: key_padding_mask hides keys of a batch element; causal hides key j > query i (row i sees
 * min(i + 1, S) keys), and the GEMMs skip keys no row of a block sees. A row that sees no key gets
 * zeros (never NaN).
 *
 * Between its two GEMMs a block's softmax would run on the calling thread alone while OpenBLAS's
 * threads wait for the next GEMM (a fifth of the time at E = 512, N = 4096 on 2 cores). A team of
 * helper threads, living for one call and no more than OpenBLAS may use, shares those rows; the
 * helpers sleep during the GEMMs, so they never compete with OpenBLAS for a core (see team). */
#define _GNU_SOURCE /* sched_getcpu, pthread_{get,set}affinity_np: see team below */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "attention/mha_internal.h"

enum {
    MATERIALIZE_ROWS = 512, /* query rows per materialized score block */
    STREAM_ROWS = 512,      /* query rows per streaming block */
    STREAM_KEYS = 2048,     /* keys per streaming tile */
    TEAM_MAX = 8,           /* threads (the caller included) sharing a block's softmax */
    TEAM_MIN_WORK = 1 << 15, /* scores in a block below which waking helpers costs more than it saves */
};

/* AUTO materializes while its score block (min(MATERIALIZE_ROWS, L) x S floats, reused by every
 * block, head and batch element) takes at most this many bytes, i.e. S <= 4096 for L >= 512, and
 * streams beyond, with a STREAM_ROWS x STREAM_KEYS tile (4 MiB) whatever the lengths. The two run
 * within a few % of each other; materializing won at S = 4096 and streaming from S = 8192 (E = 512,
 * 8 heads, 2 cores), where a block no longer fits the caches. */
static const size_t auto_budget = (size_t)8 << 20;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One (batch element, head): its rows of Q, K, V and the masks that apply. */
typedef struct head_view {
    int64_t tgt_len, src_len, dh;
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv;
    const uint8_t *mask; /* [src_len], nonzero = ignore; NULL when no key is masked */
    bool causal;
    bool k_t; /* k holds K^T [dh, src_len] instead of K [src_len, dh] */
} head_view;

/* Keys query row i sees before the padding mask: causal hides j > i. */
static int64_t visible(const head_view *h, int64_t i) { return h->causal ? min64(i + 1, h->src_len) : h->src_len; }

/* scores[rows, keys] (leading dimension lds) = query rows row0.. times keys key0.. transposed. */
static void score_gemm(const head_view *h, int64_t row0, int64_t rows, int64_t key0, int64_t keys, float *scores,
                       int64_t lds)
{
    const float *k = h->k_t ? h->k + key0 : h->k + key0 * h->ldk;
    attn__sgemm(false, !h->k_t, rows, keys, h->dh, 1.0f, h->q + row0 * h->ldq, h->ldq, k, h->ldk, 0.0f, scores, lds);
}

/* ---- the softmax of one row --------------------------------------------------------------- */

/* Largest score among the first n of row x with masked keys set to -INFINITY (so that exp gives
 * exactly 0); -INFINITY when every one is masked. */
static float masked_max(float *x, int64_t n, const uint8_t *mask)
{
    if (mask)
        for (int64_t j = 0; j < n; j++)
            x[j] = mask[j] ? -INFINITY : x[j];
    return attn__max(x, n);
}

/* x[j] = exp(x[j] - shift) for the first n entries and 0 for the rest up to width; returns the sum.
 * shift = -INFINITY (the row sees no key) gives a zero row and sum 0. */
static float exp_row(float *x, int64_t n, int64_t width, float shift)
{
    memset(x + n, 0, (size_t)(width - n) * sizeof *x);
    if (shift == -INFINITY) {
        memset(x, 0, (size_t)n * sizeof *x);
        return 0.0f;
    }
    return attn__exp_sum(x, n, shift);
}

/* Folds a streaming tile's row (n visible keys of width) into the row's running max and sum,
 * rescaling the output accumulated so far (dh floats at stride `stride` from orow; NULL before the
 * first tile) when the max grows. The row becomes the tile's exponentials. */
static void stream_row(float *x, int64_t n, int64_t width, const uint8_t *mask, float *max, float *sum, float *orow,
                       int64_t stride, int64_t dh)
{
    const float tile_max = masked_max(x, n, mask);
    if (tile_max > *max) {
        /* exp(-inf) = 0: nothing was accumulated before the first visible key. */
        const float rescale = expf(*max - tile_max);
        *sum *= rescale;
        for (int64_t d = 0; orow && d < dh; d++)
            orow[d * stride] *= rescale;
        *max = tile_max;
    }
    *sum += exp_row(x, n, width, tile_max == -INFINITY ? -INFINITY : *max);
}

/* The row work of one score block: rows row0.. of a head against keys key0 .. key0+keys-1. */
typedef struct row_task {
    const head_view *h;
    int64_t row0, key0, keys;
    float *scores; /* [rows, lds] */
    int64_t lds;
    float *sums;   /* per row: the softmax sum (materialize), the running sum (streaming); NULL: the
                      rows are normalized into attention weights, zero-filled up to lds */
    float *maxes;  /* streaming: running maxima; NULL when materializing */
    float *o_t;    /* streaming: the block's output so far, transposed [dh, rows] (row i at o_t + i,
                      stride rows); NULL before the first tile */
    int64_t rows;
} row_task;

static void run_rows(const row_task *t, int64_t first, int64_t end)
{
    const head_view *h = t->h;
    const uint8_t *mask = h->mask ? h->mask + t->key0 : NULL;
    for (int64_t i = first; i < end; i++) {
        float *x = t->scores + i * t->lds;
        int64_t n = min64(t->keys, visible(h, t->row0 + i) - t->key0);
        n = n > 0 ? n : 0;
        if (t->maxes) {
            stream_row(x, n, t->keys, mask, &t->maxes[i], &t->sums[i], t->o_t ? t->o_t + i : NULL, t->rows, h->dh);
            continue;
        }
        const float sum = exp_row(x, n, t->keys, masked_max(x, n, mask));
        if (t->sums) {
            t->sums[i] = sum;
        } else {
            if (sum > 0.0f)
                attn__scale(x, n, 1.0f / sum);
            memset(x + t->keys, 0, (size_t)(t->lds - t->keys) * sizeof *x);
        }
    }
}

/* ---- helper threads ----------------------------------------------------------------------- */

/* A team shares the row work of each block between the caller and helper threads that live for
 * one attend or matrix call. Rows are claimed CHUNK at a time from a counter, so a helper that the
 * scheduler has not run yet only leaves more rows to the caller instead of holding it up.
 *
 * Helpers are kept off the caller's CPU: woken while OpenBLAS's idle threads spin on the other
 * cores, Linux places them next to their waker, where they would only time-slice with the caller
 * (on 2 cores, 511 of 512 wake-ups of an unpinned helper did). On another core a helper displaces
 * an OpenBLAS thread that spins with sched_yield while it waits for the next GEMM. */
#if defined(__linux__)
#define ATTN_FULL_TEAM 1
#else
#define ATTN_FULL_TEAM 0
#endif

enum { CHUNK = 8 }; /* rows per claim */

typedef struct team {
    int size;     /* threads including the caller; 1 = the caller alone */
    bool tried;   /* team_start ran: helpers start at the first block worth sharing */
#if ATTN_FULL_TEAM
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned generation; /* of the posted task; helpers sleep until it changes */
    bool quit;
    const row_task *task;
    int64_t rows;
    _Atomic uint64_t claim;   /* generation << 32 | first unclaimed row of the task */
    _Atomic int64_t finished; /* rows of the task done */
    int caller_cpu;           /* the CPU the helpers are kept off; -1 before the first task */
    cpu_set_t allowed;        /* the caller's CPUs: helpers never run elsewhere */
    pthread_t threads[TEAM_MAX - 1];
#endif
} team;

#if ATTN_FULL_TEAM
/* Runs chunks of the task of `generation` until none is left (or a newer task replaced it). */
static void claim_rows(team *t, const row_task *task, int64_t rows, unsigned generation)
{
    uint64_t c = atomic_load(&t->claim);
    for (;;) {
        const int64_t first = (int64_t)(c & 0xffffffffu);
        if ((unsigned)(c >> 32) != generation || first >= rows)
            return;
        const int64_t end = min64(first + CHUNK, rows);
        if (!atomic_compare_exchange_weak(&t->claim, &c, (uint64_t)generation << 32 | (uint64_t)end))
            continue; /* c now holds the current claim */
        run_rows(task, first, end);
        atomic_fetch_add(&t->finished, end - first);
        c = atomic_load(&t->claim);
    }
}

static void *helper_main(void *arg)
{
    team *t = arg;
    unsigned seen = 0; /* the generation at team_start: a task may be posted before this runs */
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (t->generation == seen && !t->quit)
            pthread_cond_wait(&t->wake, &t->lock);
        if (t->quit)
            break;
        seen = t->generation;
        const row_task *task = t->task;
        const int64_t rows = t->rows;
        pthread_mutex_unlock(&t->lock);
        claim_rows(t, task, rows, seen);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Moves the helpers off the CPU the caller now runs on (a syscall only when that changed). */
static void keep_off_caller(team *t)
{
    const int cpu = sched_getcpu();
    if (cpu == t->caller_cpu || cpu < 0 || cpu >= CPU_SETSIZE)
        return;
    cpu_set_t set = t->allowed;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) == 0)
        return;
    for (int i = 1; i < t->size; i++)
        pthread_setaffinity_np(t->threads[i - 1], sizeof set, &set);
    t->caller_cpu = cpu;
}
#endif

/* Starts helpers when OpenBLAS may use more than one thread and the caller may run on more than
 * one CPU: one helper less than the smaller of those counts. Any failure leaves fewer helpers (or
 * the caller alone). */
static void team_start(team *t)
{
    t->tried = true;
#if ATTN_FULL_TEAM
    const int blas = attn__blas_threads();
    if (blas < 2 || pthread_getaffinity_np(pthread_self(), sizeof t->allowed, &t->allowed))
        return;
    int want = CPU_COUNT(&t->allowed);
    want = want < blas ? want : blas;
    want = want < TEAM_MAX ? want : TEAM_MAX;
    if (want < 2 || pthread_mutex_init(&t->lock, NULL))
        return;
    if (pthread_cond_init(&t->wake, NULL)) {
        pthread_mutex_destroy(&t->lock);
        return;
    }
    t->generation = 0;
    t->quit = false;
    t->caller_cpu = -1;
    atomic_init(&t->claim, 0);
    atomic_init(&t->finished, 0);
    /* Helpers take no signals: those belong to the caller's threads. */
    sigset_t all, old;
    sigfillset(&all);
    const bool masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    for (int i = 1; i < want && !pthread_create(&t->threads[i - 1], NULL, helper_main, t); i++)
        t->size = i + 1;
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (t->size == 1) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
    }
#endif
}

static void team_stop(team *t)
{
#if ATTN_FULL_TEAM
    if (t->size == 1)
        return;
    pthread_mutex_lock(&t->lock);
    t->quit = true;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int i = 1; i < t->size; i++)
        pthread_join(t->threads[i - 1], NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    t->size = 1;
#else
    (void)t;
#endif
}

/* Runs rows [0, rows) of a task, shared with the team when the block is large enough. */
static void team_run(team *t, const row_task *task, int64_t rows)
{
    const bool worth = rows >= 2 * CHUNK && rows * task->keys >= TEAM_MIN_WORK;
    if (worth && !t->tried)
        team_start(t);
    if (!worth || t->size == 1) {
        run_rows(task, 0, rows);
        return;
    }
#if ATTN_FULL_TEAM
    keep_off_caller(t);
    pthread_mutex_lock(&t->lock);
    const unsigned generation = ++t->generation;
    t->task = task;
    t->rows = rows;
    atomic_store(&t->finished, 0);
    atomic_store(&t->claim, (uint64_t)generation << 32);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    claim_rows(t, task, rows, generation);
    /* At most one chunk per helper is still running. */
    while (atomic_load(&t->finished) < rows)
        sched_yield();
#endif
}

/* ---- strategies --------------------------------------------------------------------------- */

/* Exponentiated scores of query rows row0 .. row0+rows-1 against the keys any of them sees (the
 * returned count `cols`): scores[rows, cols] at leading dimension lds. With sums, each row's sum is
 * stored there and the row is left unnormalized; without, rows are normalized (the attention
 * weights) and zero-filled up to lds. */
static int64_t score_rows(team *t, const head_view *h, int64_t row0, int64_t rows, float *scores, int64_t lds,
                          float *sums)
{
    const int64_t cols = visible(h, row0 + rows - 1);
    score_gemm(h, row0, rows, 0, cols, scores, lds);
    const row_task task = {h, row0, 0, cols, scores, lds, sums, NULL, NULL, rows};
    team_run(t, &task, rows);
    return cols;
}

/* A block's product with V is formed transposed, O^T [dh, rows] = V^T P^T, which OpenBLAS threads
 * better than O = P V (the whole forward a few % faster at dh = 64, 512 rows, 2 threads). This
 * stores o rows = O^T's columns divided by the row sums (a row without visible keys has sum 0 and
 * gets zeros). */
static void store_rows(const float *o_t, int64_t rows, int64_t dh, const float *sums, float *o, int64_t ldo)
{
    for (int64_t i = 0; i < rows; i++) {
        const float inv = sums[i] > 0.0f ? 1.0f / sums[i] : 0.0f;
        for (int64_t d = 0; d < dh; d++)
            o[i * ldo + d] = o_t[d * rows + i] * inv;
    }
}

/* o_t [dh, rows] (+)= V^T P^T for a block's exponentials p [rows, keys] and keys key0.. of V. */
static void value_gemm(const head_view *h, int64_t rows, int64_t key0, int64_t keys, const float *p, float beta,
                       float *o_t)
{
    attn__sgemm(true, true, h->dh, rows, keys, 1.0f, h->v + key0 * h->ldv, h->ldv, p, keys, beta, o_t, rows);
}

void attn__attend_materialized(int64_t tgt_len, int64_t src_len, int64_t dh, const float *q, int64_t ldq,
                               const float *k, int64_t ldk, const float *v, int64_t ldv, const uint8_t *mask,
                               bool causal, float *scores, float *o, int64_t ldo)
{
    const head_view h = {tgt_len, src_len, dh, q, k, v, ldq, ldk, ldv, mask, causal, false};
    team alone = {.size = 1, .tried = true};
    const int64_t cols = score_rows(&alone, &h, 0, tgt_len, scores, src_len, NULL);
    attn__sgemm(false, false, tgt_len, dh, cols, 1.0f, scores, src_len, v, ldv, 0.0f, o, ldo);
}

/* Scratch layout of attend, shared by scratch_bytes and attend so that the cost is what is used. */
typedef struct full_plan {
    attn_ws_plan ws;
    bool streaming;
    int64_t rows, keys; /* block of query rows; keys per tile (all S when materializing) */
    size_t k_t, v;      /* one head's K^T [dh, S] and V [S, dh], packed (see pack_head) */
    size_t scores;      /* rows x keys floats */
    size_t o_t;         /* dh x rows floats: a block's output, transposed */
    size_t sums;        /* rows floats: softmax sums */
    size_t maxes;       /* rows floats: running maxima (streaming) */
} full_plan;

static full_plan make_plan(const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    full_plan p = {0};
    const size_t f = sizeof(float);
    const int64_t mat_rows = min64(MATERIALIZE_ROWS, tgt_len);
    p.streaming = m->opt.memory_mode == ATTN_MEMORY_STREAMING ||
                  (m->opt.memory_mode == ATTN_MEMORY_AUTO && (size_t)(mat_rows * src_len) * f > auto_budget);
    p.rows = p.streaming ? min64(STREAM_ROWS, tgt_len) : mat_rows;
    p.keys = p.streaming ? min64(STREAM_KEYS, src_len) : src_len;
    p.k_t = attn__plan_take(&p.ws, (size_t)(src_len * m->head_dim) * f);
    p.v = attn__plan_take(&p.ws, (size_t)(src_len * m->head_dim) * f);
    p.scores = attn__plan_take(&p.ws, (size_t)(p.rows * p.keys) * f);
    p.o_t = attn__plan_take(&p.ws, (size_t)(m->head_dim * p.rows) * f);
    p.sums = attn__plan_take(&p.ws, (size_t)p.rows * f);
    if (p.streaming)
        p.maxes = attn__plan_take(&p.ws, (size_t)p.rows * f);
    return p;
}

static head_view view_of(const attn_mha *m, const mha_problem *p, int64_t b, int64_t head)
{
    const int64_t e = m->opt.embed_dim, dh = m->head_dim, l = p->tgt_len, s = p->src_len;
    const uint8_t *mask = p->mask ? p->mask + b * s : NULL;
    /* An all-visible mask row is dropped so that the softmax skips its masking pass. */
    bool any = false;
    for (int64_t j = 0; mask && j < s && !any; j++)
        any = mask[j] != 0;
    return (head_view){l, s, dh, p->q + b * l * e + head * dh, p->k + b * s * e + head * dh,
                       p->v + b * s * e + head * dh, e, e, e, any ? mask : NULL, m->opt.causal != 0, false};
}

/* Copies the head's K (transposed) and V out of the [S, E] rows they share with the other heads.
 * OpenBLAS packs a head's 64-float slices at a 2 KiB stride far slower than contiguous panels: the
 * copies cost 2 S dh moves and make both products of the head 10-25 % faster. */
static void pack_head(head_view *h, float *k_t, float *v)
{
    const int64_t s = h->src_len, dh = h->dh;
    enum { KEYS = 64 }; /* a block of K rows stays in L1 while it is scattered into K^T's columns */
    for (int64_t j0 = 0; j0 < s; j0 += KEYS) {
        const int64_t keys = min64(KEYS, s - j0);
        for (int64_t d = 0; d < dh; d++)
            for (int64_t j = j0; j < j0 + keys; j++)
                k_t[d * s + j] = h->k[j * h->ldk + d];
    }
    for (int64_t j = 0; j < s; j++)
        memcpy(v + j * dh, h->v + j * h->ldv, (size_t)dh * sizeof *v);
    h->k = k_t;
    h->ldk = s;
    h->k_t = true;
    h->v = v;
    h->ldv = dh;
}

static void materialize_head(team *t, const head_view *h, const full_plan *plan, char *scratch, float *o,
                             int64_t ldo)
{
    float *scores = (float *)(scratch + plan->scores), *sums = (float *)(scratch + plan->sums);
    float *o_t = (float *)(scratch + plan->o_t);
    for (int64_t row0 = 0; row0 < h->tgt_len; row0 += plan->rows) {
        const int64_t rows = min64(plan->rows, h->tgt_len - row0);
        /* The block is laid out at the width its rows see, so that it stays contiguous. */
        const int64_t cols = score_rows(t, h, row0, rows, scores, visible(h, row0 + rows - 1), sums);
        value_gemm(h, rows, 0, cols, scores, 0.0f, o_t);
        store_rows(o_t, rows, h->dh, sums, o + row0 * ldo, ldo);
    }
}

static void stream_head(team *t, const head_view *h, const full_plan *plan, char *scratch, float *o, int64_t ldo)
{
    float *tile = (float *)(scratch + plan->scores), *sums = (float *)(scratch + plan->sums);
    float *maxes = (float *)(scratch + plan->maxes), *o_t = (float *)(scratch + plan->o_t);
    for (int64_t row0 = 0; row0 < h->tgt_len; row0 += plan->rows) {
        const int64_t rows = min64(plan->rows, h->tgt_len - row0);
        const int64_t last = visible(h, row0 + rows - 1); /* keys any row of the block sees */
        for (int64_t i = 0; i < rows; i++) {
            maxes[i] = -INFINITY;
            sums[i] = 0.0f;
        }
        for (int64_t key0 = 0; key0 < last; key0 += plan->keys) {
            const int64_t keys = min64(plan->keys, last - key0);
            score_gemm(h, row0, rows, key0, keys, tile, keys);
            const row_task task = {h, row0, key0, keys, tile, keys, sums, maxes, key0 ? o_t : NULL, rows};
            team_run(t, &task, rows);
            value_gemm(h, rows, key0, keys, tile, key0 ? 1.0f : 0.0f, o_t);
        }
        store_rows(o_t, rows, h->dh, sums, o + row0 * ldo, ldo);
    }
}

/* ---- the kind's interface ----------------------------------------------------------------- */

static attn_status check(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    (void)fn, (void)m, (void)tgt_len, (void)src_len;
    return ATTN_OK;
}

static size_t scratch_bytes(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len, bool matrix)
{
    (void)batch;
    /* matrix writes the scores straight into the caller's weights. */
    return matrix ? 0 : make_plan(m, tgt_len, src_len).ws.bytes;
}

/* Two products per head over the (query, key) pairs causal leaves, multiply-add = 2: Q K^T and P V,
 * each 2 * dh per pair. Causal counts the triangle sum_i min(i + 1, S) that the math needs; forward's
 * row blocks compute up to one block's worth of hidden pairs beyond it on the diagonal. */
static double flops(const attn_mha *m, int64_t batch, int64_t tgt_len, int64_t src_len)
{
    const double l = (double)tgt_len, s = (double)src_len;
    double pairs = l * s;
    if (m->opt.causal)
        pairs = l <= s ? l * (l + 1) / 2 : s * (s + 1) / 2 + (l - s) * s;
    return 4.0 * (double)m->head_dim * (double)batch * (double)m->opt.num_heads * pairs;
}

static attn_status attend(const attn_mha *m, const mha_problem *p, char *scratch, float *o)
{
    const full_plan plan = make_plan(m, p->tgt_len, p->src_len);
    const int64_t e = m->opt.embed_dim, dh = m->head_dim;
    team t = {.size = 1};
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t head = 0; head < m->opt.num_heads; head++) {
            head_view h = view_of(m, p, b, head);
            pack_head(&h, (float *)(scratch + plan.k_t), (float *)(scratch + plan.v));
            float *oh = o + b * p->tgt_len * e + head * dh;
            (plan.streaming ? stream_head : materialize_head)(&t, &h, &plan, scratch, oh, e);
        }
    team_stop(&t);
    return ATTN_OK;
}

static attn_status matrix(const attn_mha *m, const mha_problem *p, char *scratch, float *weights)
{
    (void)scratch;
    const int64_t l = p->tgt_len, s = p->src_len;
    team t = {.size = 1};
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t head = 0; head < m->opt.num_heads; head++) {
            const head_view h = view_of(m, p, b, head);
            score_rows(&t, &h, 0, l, weights + (b * m->opt.num_heads + head) * l * s, s, NULL);
        }
    team_stop(&t);
    return ATTN_OK;
}

const mha_kind attn__mha_full = {check, scratch_bytes, flops, attend, matrix};
