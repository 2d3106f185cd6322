/* The only door to BLAS: typed row-major wrappers, so every matmul of every family passes here. */
#include <cblas.h>
#include <stdio.h>

#include "core/core.h"

void attn__sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void attn__sgemv(bool trans_a, int64_t m, int64_t n, float alpha, const float *a, int64_t lda, const float *x,
                 float beta, float *y)
{
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (int)m, (int)n, alpha, a, (int)lda, x, 1, beta, y,
                1);
}

const char *attn__blas_config(void)
{
    static _Thread_local char config[256];
    if (!config[0])
        snprintf(config, sizeof config, "OpenBLAS (%s; core %s)", openblas_get_config(), openblas_get_corename());
    return config;
}

int attn__blas_threads(void) { return openblas_get_num_threads(); }
