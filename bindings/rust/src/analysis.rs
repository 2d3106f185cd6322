//! SVD spectrum, rank report and the Eckart-Young low-rank optimum of a float32 matrix
//! (analysis.h, docs/analysis.md). Computed in float64 by LAPACK; no handle, any thread.

use crate::error::{check, Error, Result, Status};
use crate::{check_len, product, sys, to_i64, to_usize};

fn dims(func: &str, a: &[f32], rows: usize, cols: usize) -> Result<(i64, i64)> {
    check_len(func, "a", a.len(), "rows * cols", &[rows, cols])?;
    Ok((to_i64(func, "rows", rows)?, to_i64(func, "cols", cols)?))
}

/// The singular values of `a [rows, cols]` (row-major), decreasing, `min(rows, cols)` of them
/// (`attn_singular_values`).
pub fn singular_values(a: &[f32], rows: usize, cols: usize) -> Result<Vec<f64>> {
    let (r, c) = dims("singular_values", a, rows, cols)?;
    let mut sigma = vec![0.0f64; rows.min(cols)];
    // SAFETY: `a` holds rows*cols floats, `sigma` min(rows, cols) doubles (the library rejects
    // rows or cols < 1 before writing).
    check(unsafe { sys::attn_singular_values(a.as_ptr(), r, c, sigma.as_mut_ptr()) })?;
    Ok(sigma)
}

/// What the spectrum of a matrix says about its rank (`attn_rank_report`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RankReport {
    /// sigma_1 = ||A||_2.
    pub sigma_max: f64,
    /// ||A||_F.
    pub frobenius: f64,
    /// ||A||_F^2 / sigma_1^2.
    pub stable_rank: f64,
    /// exp of the entropy of sigma_i / sum sigma_j (Roy & Vetterli).
    pub effective_rank: f64,
    /// #{i : sigma_i > sigma_1 max(rows, cols) DBL_EPSILON}.
    pub numerical_rank: usize,
    /// Smallest k with sum_{i<=k} sigma_i >= 0.90 sum sigma_i.
    pub rank_90: usize,
    /// The same with 0.99.
    pub rank_99: usize,
}

/// The rank report of `a [rows, cols]` (`attn_rank_analyze`).
pub fn rank_analyze(a: &[f32], rows: usize, cols: usize) -> Result<RankReport> {
    let (r, c) = dims("rank_analyze", a, rows, cols)?;
    let mut out = sys::attn_rank_report::default();
    // SAFETY: `a` holds rows*cols floats; out pointer.
    check(unsafe { sys::attn_rank_analyze(a.as_ptr(), r, c, &mut out) })?;
    Ok(RankReport {
        sigma_max: out.sigma_max,
        frobenius: out.frobenius,
        stable_rank: out.stable_rank,
        effective_rank: out.effective_rank,
        numerical_rank: to_usize(out.numerical_rank),
        rank_90: to_usize(out.rank_90),
        rank_99: to_usize(out.rank_99),
    })
}

/// The Frobenius distance from `a [rows, cols]` to the nearest matrix of rank <= `rank`
/// (Eckart-Young; `attn_lowrank_error`). `rank` 0 gives ||A||_F.
pub fn lowrank_error(a: &[f32], rows: usize, cols: usize, rank: usize) -> Result<f64> {
    let (r, c) = dims("lowrank_error", a, rows, cols)?;
    let k = to_i64("lowrank_error", "rank", rank)?;
    let mut err = 0.0f64;
    // SAFETY: `a` holds rows*cols floats; out pointer.
    check(unsafe { sys::attn_lowrank_error(a.as_ptr(), r, c, k, &mut err) })?;
    Ok(err)
}

/// The best rank-`rank` approximation `u v` of a matrix (the truncated SVD).
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankFactors {
    /// `[rows, rank]` = U_r S_r.
    pub u: Vec<f32>,
    /// `[rank, cols]` = V_r^T (orthonormal rows).
    pub v: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    pub rank: usize,
}

/// The truncated SVD of `a [rows, cols]` as `u [rows, rank]` times `v [rank, cols]`
/// (`attn_lowrank_factors`); `1 <= rank <= min(rows, cols)`. For putting a trained dense
/// recurrence `weight_hh_l{l}` into a LOW_RANK network (`weight_hh_l{l}_u`, `weight_hh_l{l}_v`).
pub fn lowrank_factors(a: &[f32], rows: usize, cols: usize, rank: usize) -> Result<LowRankFactors> {
    const F: &str = "lowrank_factors";
    let (r, c) = dims(F, a, rows, cols)?;
    let n = rows.min(cols);
    if rank < 1 || rank > n {
        return Err(Error::new(
            Status::InvalidArg,
            format!("{F}: rank must be in 1..=min(rows, cols) = 1..={n} (got {rank})"),
        ));
    }
    let k = to_i64(F, "rank", rank)?;
    let mut u = vec![0.0f32; product(F, "rows * rank", &[rows, rank])?];
    let mut v = vec![0.0f32; product(F, "rank * cols", &[rank, cols])?];
    // SAFETY: `a` holds rows*cols floats, `u` rows*rank, `v` rank*cols; all distinct.
    check(unsafe { sys::attn_lowrank_factors(a.as_ptr(), r, c, k, u.as_mut_ptr(), v.as_mut_ptr()) })?;
    Ok(LowRankFactors { u, v, rows, cols, rank })
}
