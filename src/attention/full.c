/* Placeholder being replaced: the full kind of attn_mha. */
#include "attention/mha_internal.h"

static attn_status check(const char *fn, const attn_mha *m, int64_t tgt_len, int64_t src_len)
{
    (void)m, (void)tgt_len, (void)src_len;
    return attn__fail(ATTN_E_UNSUPPORTED, "%s: this attention kind is not implemented yet", fn);
}
static size_t scratch_bytes(const attn_mha *m, int64_t b, int64_t l, int64_t s, bool matrix)
{
    (void)m, (void)b, (void)l, (void)s, (void)matrix;
    return 0;
}
static double flops(const attn_mha *m, int64_t b, int64_t l, int64_t s)
{
    (void)m, (void)b, (void)l, (void)s;
    return 0;
}
static attn_status attend(const attn_mha *m, const mha_problem *p, char *scratch, float *o)
{
    (void)m, (void)p, (void)scratch, (void)o;
    return ATTN_E_UNSUPPORTED;
}
static attn_status matrix(const attn_mha *m, const mha_problem *p, char *scratch, float *w)
{
    (void)m, (void)p, (void)scratch, (void)w;
    return ATTN_E_UNSUPPORTED;
}
const mha_kind attn__mha_full = {check, scratch_bytes, flops, attend, matrix};
