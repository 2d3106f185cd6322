"""Rank analysis (``attn/analysis.h``): the singular-value spectrum of a matrix, what it says about
its rank, and the Eckart-Young optimum no rank-r approximation can beat (docs/analysis.md).

Every function takes a 2-D matrix. libattn reads float32 (a float32 C-contiguous array is read in
place; anything else, float64 included, is rounded to float32 once) and computes the SVD in
float64 (LAPACK ``dgesdd``). Functions of this module hold no lock: any number of threads may call
them at once. NaN or Inf in the matrix raises :class:`~attn.NumericalError` naming its row and
column.

Example::

    w = lstm.recurrent_matrix(0)                # [4H, H]
    attn.analysis.rank_analyze(w).rank_99       # rank that keeps 99 % of the singular value sum
    u, v = attn.analysis.lowrank_factors(w, 8)  # u @ v: the best rank-8 approximation
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from . import _lib
from ._core import addr, as_int, check, f32, lib
from .errors import ShapeError

__all__ = ["RankReport", "singular_values", "rank_analyze", "lowrank_error", "lowrank_factors"]


@dataclass(frozen=True)
class RankReport:
    """What the spectrum ``sigma_1 >= ... >= sigma_n`` of a matrix says about its rank
    (``attn_rank_report``)."""

    sigma_max: float  #: sigma_1, the spectral norm
    frobenius: float  #: the Frobenius norm, sqrt(sum sigma_i^2)
    stable_rank: float  #: ||A||_F^2 / sigma_1^2
    effective_rank: float  #: exp(entropy(sigma / sum(sigma))) (Roy & Vetterli)
    numerical_rank: int  #: #{sigma_i > sigma_1 * max(rows, cols) * 2^-52} (counts float32 noise)
    rank_90: int  #: smallest k with sum_{i<=k} sigma_i / sum sigma_i >= 0.90
    rank_99: int  #: the same with 0.99


def _matrix(fn: str, a: Any) -> np.ndarray:
    m = f32(fn, "a", a)
    if m.ndim != 2:
        raise ShapeError("%s: a must be a 2-D matrix, got shape %s" % (fn, tuple(m.shape)))
    return m


def singular_values(a: Any) -> np.ndarray:
    """The singular values of ``a [rows, cols]``, decreasing: float64 ``[min(rows, cols)]``."""
    fn = "attn.analysis.singular_values"
    m = _matrix(fn, a)
    sigma = np.empty(min(m.shape), dtype=np.float64)
    check(lib().attn_singular_values(addr(m), m.shape[0], m.shape[1], addr(sigma)))
    return sigma


def rank_analyze(a: Any) -> RankReport:
    """The :class:`RankReport` of ``a [rows, cols]`` (every field from one spectrum; the zero
    matrix gets every field 0)."""
    fn = "attn.analysis.rank_analyze"
    m = _matrix(fn, a)
    r = _lib.RankReportStruct()
    check(lib().attn_rank_analyze(addr(m), m.shape[0], m.shape[1], ctypes.byref(r)))
    return RankReport(float(r.sigma_max), float(r.frobenius), float(r.stable_rank), float(r.effective_rank),
                      int(r.numerical_rank), int(r.rank_90), int(r.rank_99))


def lowrank_error(a: Any, rank: int) -> float:
    """``sqrt(sum_{i > rank} sigma_i^2)``: the Frobenius distance from ``a`` to the nearest matrix
    of rank <= ``rank`` (Eckart-Young); ``rank = 0`` gives ``||a||_F``, ``rank >= min(rows, cols)``
    gives 0."""
    fn = "attn.analysis.lowrank_error"
    m = _matrix(fn, a)
    r = as_int(fn, "rank", rank)
    err = ctypes.c_double()
    check(lib().attn_lowrank_error(addr(m), m.shape[0], m.shape[1], r, ctypes.byref(err)))
    return float(err.value)


def lowrank_factors(a: Any, rank: int) -> Tuple[np.ndarray, np.ndarray]:
    """The best rank-``rank`` approximation of ``a [rows, cols]`` as ``u [rows, rank] @ v [rank,
    cols]`` (the truncated SVD: ``u = U_r S_r``, ``v = V_r^T``), float32; ``1 <= rank <=
    min(rows, cols)``. Made to put a trained dense recurrence into a low-rank :class:`~attn.RNN`:
    ``u, v`` are ``weight_hh_l{l}_u`` and ``weight_hh_l{l}_v`` of ``weight_hh_l{l}``."""
    fn = "attn.analysis.lowrank_factors"
    m = _matrix(fn, a)
    r = as_int(fn, "rank", rank)
    if 1 <= r <= min(m.shape):
        u = np.empty((m.shape[0], r), dtype=np.float32)
        v = np.empty((r, m.shape[1]), dtype=np.float32)
    else:  # the library rejects the rank and names it; no output of that size can be made
        u, v = np.empty(1, dtype=np.float32), np.empty(1, dtype=np.float32)
    check(lib().attn_lowrank_factors(addr(m), m.shape[0], m.shape[1], r, addr(u), addr(v)))
    return u, v
