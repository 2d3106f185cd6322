/* Softmax attention of one (batch element, head), the one attention kernel of the library: FULL
 * multi-head attention (src/attention/full.c), Linformer's projected keys and the Perceiver's
 * cross- and self-attention all run through it.
 *
 * A head is walked in blocks of query rows, and OpenBLAS threads each GEMM: a head's K and V cannot
 * be shared with another head or batch element, so one block of queries against one head's keys is
 * already the largest product the math allows. The head's K (transposed) and V are first copied out
 * of the rows they share with the other heads, which makes both GEMMs 10-25 % faster (see
 * pack_head).
 * - MATERIALIZE: scores for a row block against all S keys, one exact max-subtracted softmax per row,
 *   then one GEMM with V. The exponentials are not normalized; the dh outputs of a row are scaled by
 *   the inverse of its sum instead (dh multiplications instead of S).
 * - STREAMING: the same row block against tiles of keys, with a running max and sum per row
 *   (online softmax): when a tile raises a row's max, the row's accumulated output and sum are
 *   rescaled, and the tile's exponentials are accumulated into the output by a GEMM with beta = 1.
 *   Besides the head's copies of K and V (2 S dh floats), scratch is a constant rows x keys tile.
 * Masks: a padding mask hides keys; causal hides key j > query i (row i sees min(i + 1, S) keys),
 * and the GEMMs skip keys no row of a block sees. A row that sees no key gets zeros (never NaN).
 *
 * Between its two GEMMs a block's softmax would run on the calling thread alone while OpenBLAS's
 * threads wait for the next GEMM (a fifth of the time at E = 512, N = 4096 on 2 cores). A team of
 * helper threads, living for one call and no more than OpenBLAS may use, shares those rows; the
 * helpers sleep during the GEMMs, so they never compete with OpenBLAS for a core (see team.c). */
#include <math.h>
#include <string.h>

#include "core/core.h"

enum {
    MATERIALIZE_ROWS = 512,  /* query rows per materialized score block */
    STREAM_ROWS = 512,       /* query rows per streaming block */
    STREAM_KEYS = 2048,      /* keys per streaming tile */
    CHUNK = 8,               /* rows per claim of a team thread */
    TEAM_MIN_WORK = 1 << 15, /* scores in a block below which waking helpers costs more than it saves */
};

/* AUTO materializes while its score block (min(MATERIALIZE_ROWS, L) x S floats, reused by every
 * block, head and batch element) takes at most this many bytes, i.e. S <= 4096 for L >= 512, and
 * streams beyond, with a STREAM_ROWS x STREAM_KEYS tile (4 MiB) whatever the lengths. The two run
 * within a few % of each other; materializing won at S = 4096 and streaming from S = 8192 (E = 512,
 * 8 heads, 2 cores), where a block no longer fits the caches. */
static const size_t auto_budget = (size_t)8 << 20;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* A head as the kernel walks it: the caller's attn_head, and where K now lives. */
typedef struct head_view {
    attn_head h;
    bool k_t; /* h.k holds K^T [dh, src_len] (leading dimension h.ldk) instead of K [src_len, dh] */
} head_view;

/* The caller's head, with a mask that hides no key dropped so that the softmax skips its masking
 * pass. */
static head_view view_of(const attn_head *h)
{
    head_view v = {*h, false};
    bool any = false;
    for (int64_t j = 0; v.h.mask && j < v.h.src_len && !any; j++)
        any = v.h.mask[j] != 0;
    if (!any)
        v.h.mask = NULL;
    return v;
}

/* Keys query row i sees before the padding mask: causal hides j > i. */
static int64_t visible(const head_view *v, int64_t i)
{
    return v->h.causal ? min64(i + 1, v->h.src_len) : v->h.src_len;
}

/* scores[rows, keys] (leading dimension lds) = query rows row0.. times keys key0.. transposed. */
static void score_gemm(const head_view *v, int64_t row0, int64_t rows, int64_t key0, int64_t keys, float *scores,
                       int64_t lds)
{
    const attn_head *h = &v->h;
    const float *k = v->k_t ? h->k + key0 : h->k + key0 * h->ldk;
    attn__sgemm(false, !v->k_t, rows, keys, h->dh, 1.0f, h->q + row0 * h->ldq, h->ldq, k, h->ldk, 0.0f, scores, lds);
}

/* ---- the softmax of one row --------------------------------------------------------------- */

/* Largest score among the first n of row x after masking; -INFINITY when every key is masked.
 * A masked key's score gets -INFINITY added, as PyTorch adds its mask: exp then gives exactly 0,
 * except that a NaN or +Inf score turns NaN. A NaN among other scores spreads to the row through
 * the sum of the exponentials; a row of NaN alone gives NaN here. */
static float masked_max(float *x, int64_t n, const uint8_t *mask)
{
    if (mask)
        for (int64_t j = 0; j < n; j++)
            x[j] = mask[j] ? x[j] - INFINITY : x[j];
    const float max = attn__max(x, n);
    return max == -INFINITY && attn__has_nan(x, n) ? NAN : max;
}

/* x[j] = exp(x[j] - shift) for the first n entries and 0 for the rest up to width; returns the sum.
 * shift = -INFINITY (the row sees no key) gives a zero row and sum 0. A NaN shift, or a score of
 * +Inf (Inf - Inf), makes the row and its sum NaN, and so the row's output: PyTorch's pattern. */
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
 * rescaling the output accumulated so far (dh floats at orow; NULL before the first tile) when the
 * max grows. The row becomes the tile's exponentials. A NaN max (a NaN score) is taken and kept, so
 * that the rest of the row turns NaN like a materialized one. */
static void stream_row(float *x, int64_t n, int64_t width, const uint8_t *mask, float *max, float *sum, float *orow,
                       int64_t dh)
{
    const float tile_max = masked_max(x, n, mask);
    if (tile_max > *max || tile_max != tile_max) {
        /* exp(-inf) = 0: nothing was accumulated before the first visible key. */
        const float rescale = expf(*max - tile_max);
        *sum *= rescale;
        if (orow)
            attn__scale(orow, dh, rescale);
        *max = tile_max;
    }
    *sum += exp_row(x, n, width, tile_max == -INFINITY ? -INFINITY : *max);
}

/* The row work of one score block: rows row0.. of a head against keys key0 .. key0+keys-1. */
typedef struct row_task {
    const head_view *v;
    int64_t row0, key0, keys;
    float *scores; /* [rows, lds] */
    int64_t lds;
    float *sums;   /* per row: the softmax sum (materialize), the running sum (streaming); NULL: the
                      rows are normalized into attention weights, zero-filled up to lds */
    float *maxes;  /* streaming: running maxima; NULL when materializing */
    float *o;      /* streaming: the block's output so far [rows, dh] at leading dimension ldo; NULL
                      before the first tile */
    int64_t ldo;
} row_task;

/* An attn_rows_fn: rows [first, end) of a row_task, run by any thread of the team. */
static void run_rows(const void *task, int64_t first, int64_t end)
{
    const row_task *t = task;
    const head_view *v = t->v;
    const uint8_t *mask = v->h.mask ? v->h.mask + t->key0 : NULL;
    for (int64_t i = first; i < end; i++) {
        float *x = t->scores + i * t->lds;
        int64_t n = min64(t->keys, visible(v, t->row0 + i) - t->key0);
        n = n > 0 ? n : 0;
        if (t->maxes) {
            stream_row(x, n, t->keys, mask, &t->maxes[i], &t->sums[i], t->o ? t->o + i * t->ldo : NULL, v->h.dh);
            continue;
        }
        const float sum = exp_row(x, n, t->keys, masked_max(x, n, mask));
        if (t->sums) {
            t->sums[i] = sum;
        } else {
            if (sum != 0.0f) /* a NaN sum spreads to the row */
                attn__scale(x, n, 1.0f / sum);
            memset(x + t->keys, 0, (size_t)(t->lds - t->keys) * sizeof *x);
        }
    }
}

/* Runs rows [0, rows) of a task, shared with the team (t may be NULL) when the block is large
 * enough. */
static void team_run(attn_team *t, const row_task *task, int64_t rows)
{
    const bool worth = rows >= 2 * CHUNK && rows * task->keys >= TEAM_MIN_WORK;
    attn__team_run(t, run_rows, task, rows, CHUNK, worth);
}

/* ---- strategies --------------------------------------------------------------------------- */

/* Exponentiated scores of query rows row0 .. row0+rows-1 against the keys any of them sees (the
 * returned count `cols`): scores[rows, cols] at leading dimension lds. With sums, each row's sum is
 * stored there and the row is left unnormalized; without, rows are normalized (the attention
 * weights) and zero-filled up to lds. */
static int64_t score_rows(attn_team *t, const head_view *v, int64_t row0, int64_t rows, float *scores, int64_t lds,
                          float *sums)
{
    const int64_t cols = visible(v, row0 + rows - 1);
    score_gemm(v, row0, rows, 0, cols, scores, lds);
    const row_task task = {v, row0, 0, cols, scores, lds, sums, NULL, NULL, 0};
    team_run(t, &task, rows);
    return cols;
}

/* Divides the rows of a block's output o = P V by their softmax sums (a row without visible keys has
 * sum 0 and gets zeros; a NaN sum gives NaN). */
static void normalize_rows(float *o, int64_t ldo, int64_t rows, int64_t dh, const float *sums)
{
    for (int64_t i = 0; i < rows; i++)
        attn__scale(o + i * ldo, dh, sums[i] == 0.0f ? 0.0f : 1.0f / sums[i]);
}

/* o [rows, dh] (+)= P V for a block's exponentials p [rows, keys] and keys key0.. of V. Formed as
 * it stands (M = rows, N = dh, K = keys): OpenBLAS's AVX-512 kernels run this shape 20-30 % faster
 * than its transpose V^T P^T (M = dh, N = rows), its AVX2 kernels run both alike (dh = 64,
 * 512 rows, 4096 keys, 2 threads). */
static void value_gemm(const head_view *v, int64_t rows, int64_t key0, int64_t keys, const float *p, float beta,
                       float *o, int64_t ldo)
{
    const attn_head *h = &v->h;
    attn__sgemm(false, false, rows, h->dh, keys, 1.0f, p, keys, h->v + key0 * h->ldv, h->ldv, beta, o, ldo);
}

void attn__attend_materialized(int64_t tgt_len, int64_t src_len, int64_t dh, const float *q, int64_t ldq,
                               const float *k, int64_t ldk, const float *v, int64_t ldv, const uint8_t *mask,
                               bool causal, float *scores, float *o, int64_t ldo)
{
    const head_view h = {{tgt_len, src_len, dh, q, k, v, ldq, ldk, ldv, mask, causal}, false};
    const int64_t cols = score_rows(NULL, &h, 0, tgt_len, scores, src_len, NULL);
    attn__sgemm(false, false, tgt_len, dh, cols, 1.0f, scores, src_len, v, ldv, 0.0f, o, ldo);
}

attn_attend_plan attn__attend_plan(int64_t tgt_len, int64_t src_len, int64_t dh, attn_attend_mode mode)
{
    attn_attend_plan p = {0};
    const int64_t f = sizeof(float);
    const int64_t mat_rows = min64(MATERIALIZE_ROWS, tgt_len);
    p.streaming = mode == ATTN_ATTEND_STREAM ||
                  (mode == ATTN_ATTEND_AUTO && src_len > (int64_t)auto_budget / f / mat_rows);
    p.rows = p.streaming ? min64(STREAM_ROWS, tgt_len) : mat_rows;
    p.keys = p.streaming ? min64(STREAM_KEYS, src_len) : src_len;
    p.k_t = attn__plan_take(&p.ws, f, src_len, dh, 1);
    p.v = attn__plan_take(&p.ws, f, src_len, dh, 1);
    p.scores = attn__plan_take(&p.ws, f, p.rows, p.keys, 1);
    p.sums = attn__plan_take(&p.ws, f, p.rows, 1, 1);
    if (p.streaming)
        p.maxes = attn__plan_take(&p.ws, f, p.rows, 1, 1);
    return p;
}

double attn__attend_flops(int64_t tgt_len, int64_t src_len, int64_t dh, bool causal)
{
    const double l = (double)tgt_len, s = (double)src_len;
    double pairs = l * s;
    if (causal)
        pairs = l <= s ? l * (l + 1) / 2 : s * (s + 1) / 2 + (l - s) * s;
    return 4.0 * (double)dh * pairs;
}

/* Copies the head's K (transposed) and V out of the rows they share with the other heads.
 * OpenBLAS packs a head's 64-float slices at a 2 KiB stride far slower than contiguous panels: the
 * copies cost 2 S dh moves and make both products of the head 10-25 % faster. */
static void pack_head(head_view *view, float *k_t, float *v)
{
    attn_head *h = &view->h;
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
    view->k_t = true;
    h->v = v;
    h->ldv = dh;
}

static void materialize_head(attn_team *t, const head_view *v, const attn_attend_plan *plan, char *scratch, float *o,
                             int64_t ldo)
{
    float *scores = (float *)(scratch + plan->scores), *sums = (float *)(scratch + plan->sums);
    for (int64_t row0 = 0; row0 < v->h.tgt_len; row0 += plan->rows) {
        const int64_t rows = min64(plan->rows, v->h.tgt_len - row0);
        /* The block is laid out at the width its rows see, so that it stays contiguous. */
        const int64_t cols = score_rows(t, v, row0, rows, scores, visible(v, row0 + rows - 1), sums);
        value_gemm(v, rows, 0, cols, scores, 0.0f, o + row0 * ldo, ldo);
        normalize_rows(o + row0 * ldo, ldo, rows, v->h.dh, sums);
    }
}

static void stream_head(attn_team *t, const head_view *v, const attn_attend_plan *plan, char *scratch, float *o,
                        int64_t ldo)
{
    float *tile = (float *)(scratch + plan->scores), *sums = (float *)(scratch + plan->sums);
    float *maxes = (float *)(scratch + plan->maxes);
    for (int64_t row0 = 0; row0 < v->h.tgt_len; row0 += plan->rows) {
        const int64_t rows = min64(plan->rows, v->h.tgt_len - row0);
        const int64_t last = visible(v, row0 + rows - 1); /* keys any row of the block sees */
        float *block = o + row0 * ldo;
        for (int64_t i = 0; i < rows; i++) {
            maxes[i] = -INFINITY;
            sums[i] = 0.0f;
        }
        for (int64_t key0 = 0; key0 < last; key0 += plan->keys) {
            const int64_t keys = min64(plan->keys, last - key0);
            score_gemm(v, row0, rows, key0, keys, tile, keys);
            const row_task task = {v, row0, key0, keys, tile, keys, sums, maxes, key0 ? block : NULL, ldo};
            team_run(t, &task, rows);
            value_gemm(v, rows, key0, keys, tile, key0 ? 1.0f : 0.0f, block, ldo);
        }
        normalize_rows(block, ldo, rows, v->h.dh, sums);
    }
}

void attn__attend(attn_team *team, const attn_head *head, const attn_attend_plan *plan, char *scratch, float *o,
                  int64_t ldo)
{
    head_view v = view_of(head);
    pack_head(&v, (float *)(scratch + plan->k_t), (float *)(scratch + plan->v));
    (plan->streaming ? stream_head : materialize_head)(team, &v, plan, scratch, o, ldo);
}

void attn__attend_weights(attn_team *team, const attn_head *head, float *weights)
{
    const head_view v = view_of(head);
    score_rows(team, &v, 0, v.h.tgt_len, weights, v.h.src_len, NULL);
}
