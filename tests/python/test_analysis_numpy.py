"""libattn's rank analysis (attn_singular_values, attn_rank_analyze, attn_lowrank_error) against
numpy.linalg in float64.

Each matrix is made in float32 (what libattn takes) and numpy works on the same values cast to
float64, so both factor the same matrix and only the SVD algorithms differ (numpy's LAPACK gesdd
with vectors; libattn's dgesdd without). A backward-stable SVD gets every singular value to within
a few n eps of sigma_1 in absolute terms (not relative to a small sigma_i itself), so the singular
values are compared as max_i |sigma_i - numpy_i| <= 1e-10 sigma_1, and the report's floating-point
fields and the low-rank errors to a relative 1e-10 (with 1e-12 ||A||_F of absolute slack for a
low-rank error that is itself rounding). numerical_rank is numpy.linalg.matrix_rank with its
default tolerance, which is the same definition (sigma_1 max(rows, cols) eps). rank_90/rank_99 are
compared exactly unless numpy's cumulative ratio lies within 1e-9 of p. Run by ctest
(tests/python.cmake) with ATTN_LIB naming the library; by hand:
ATTN_LIB=build/libattn.so /usr/bin/python3 test_analysis_numpy.py
"""

import ctypes
import sys
import unittest

import numpy as np

import attn_ffi as A

SIGMA_TOL = 1e-10
REL_TOL = 1e-10
MARGIN = 1e-9


def numpy_report(a64):
    """The definitions of docs/analysis.md on numpy's singular values of a64."""
    s = np.linalg.svd(a64, compute_uv=False)
    rows, cols = a64.shape
    out = {"sigma_max": s[0], "frobenius": np.sqrt(np.sum(s ** 2))}
    if s[0] == 0:
        out.update(stable_rank=0.0, effective_rank=0.0, numerical_rank=0, rank_90=0, rank_99=0)
        return out, s, {0.9: np.inf, 0.99: np.inf}
    p = s / s.sum()
    nz = p[p > 0]
    out["stable_rank"] = np.sum(s ** 2) / s[0] ** 2
    out["effective_rank"] = np.exp(-np.sum(nz * np.log(nz)))
    out["numerical_rank"] = int(np.linalg.matrix_rank(a64))
    ratio = np.cumsum(s) / s.sum()
    margins = {}
    for q in (0.9, 0.99):
        out["rank_%d" % round(q * 100)] = int(np.argmax(ratio >= q)) + 1
        margins[q] = np.min(np.abs(ratio - q))
    return out, s, margins


def rank_k(rng, rows, cols, k):
    """An exactly rank-k float32 matrix: small integers, every product and sum exact in float32."""
    u = rng.integers(-3, 4, (rows, k)).astype(np.float64)
    v = rng.integers(-3, 4, (k, cols)).astype(np.float64)
    u[:k] = np.eye(k)
    v[:, :k] = np.eye(k)
    a = u @ v
    assert np.array_equal(a.astype(np.float32).astype(np.float64), a)
    return a.astype(np.float32)


def softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def matrices():
    """(name, float32 matrix): random of every shape class, and structured ones."""
    rng = np.random.default_rng(20240601)
    out = []
    for shape in [(1, 1), (1, 50), (50, 1), (2, 3), (37, 23), (23, 37), (64, 64), (200, 30), (30, 200),
                  (128, 300), (257, 129)]:
        out.append(("normal %dx%d" % shape, rng.standard_normal(shape)))
    for rows, cols, k in [(40, 30, 1), (40, 30, 5), (30, 60, 12), (100, 20, 20), (64, 64, 63)]:
        out.append(("rank-%d %dx%d" % (k, rows, cols), rank_k(rng, rows, cols, k)))
    n = 24
    i = np.arange(n)
    out.append(("hilbert %d" % n, 1.0 / (i[:, None] + i[None, :] + 1)))
    out.append(("low rank + 1e-4 noise", rng.standard_normal((50, 3)) @ rng.standard_normal((3, 40))
                + 1e-4 * rng.standard_normal((50, 40))))
    out.append(("softmax attention 48x48", softmax_rows(3.0 * rng.standard_normal((48, 48)))))
    out.append(("softmax attention, sharp", softmax_rows(20.0 * rng.standard_normal((32, 40)))))
    d = np.zeros((9, 6))
    d[np.arange(6), np.arange(6)] = [3.0, -1.0, 0.5, 0.0, 2.25, -7.0]
    out.append(("diagonal 9x6", d))
    out.append(("identity 16", np.eye(16)))
    out.append(("equal rows 12x7", np.tile(rng.standard_normal(7), (12, 1))))
    out.append(("constant 5x8", np.full((5, 8), -0.75)))
    out.append(("zero 6x4", np.zeros((6, 4))))
    out.append(("wide dynamic range", np.diag([1e30, 1.0, 1e-30]) @ rng.standard_normal((3, 5))))
    out.append(("tiny entries", 1e-35 * rng.standard_normal((10, 7))))
    return [(name, np.asarray(a, dtype=np.float32)) for name, a in out]


class TestAgainstNumpy(unittest.TestCase):
    def test_declarations(self):
        self.assertEqual(A.MISSING, [])
        self.assertEqual(ctypes.sizeof(A.RankReport), 56)

    def test_singular_values(self):
        for name, a in matrices():
            with self.subTest(name):
                s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
                got = A.singular_values(a)
                self.assertEqual(got.shape, s.shape)
                self.assertTrue(np.all(np.diff(got) <= 0), "not decreasing: %s" % got)
                self.assertLessEqual(np.max(np.abs(got - s)), SIGMA_TOL * s[0])

    def test_rank_report(self):
        for name, a in matrices():
            with self.subTest(name):
                want, s, margins = numpy_report(a.astype(np.float64))
                got = A.rank_analyze(a).as_dict()
                for key in ("sigma_max", "frobenius", "stable_rank", "effective_rank"):
                    self.assertLessEqual(abs(got[key] - want[key]), REL_TOL * abs(want[key]),
                                         "%s: %r vs numpy %r" % (key, got[key], want[key]))
                self.assertEqual(got["numerical_rank"], want["numerical_rank"])
                for q in (0.9, 0.99):
                    key = "rank_%d" % round(q * 100)
                    if margins[q] > MARGIN:
                        self.assertEqual(got[key], want[key], key)
                for key, value in got.items():
                    self.assertTrue(np.isfinite(value), "%s is %r" % (key, value))

    def test_lowrank_error(self):
        """Against the tail of numpy's spectrum, and against the truncated SVD formed explicitly
        (the Eckart-Young optimum is reached)."""
        for name, a in matrices():
            with self.subTest(name):
                a64 = a.astype(np.float64)
                u, s, vt = np.linalg.svd(a64, full_matrices=False)
                frob = np.linalg.norm(a64)
                for r in sorted({0, 1, 2, len(s) // 2, len(s) - 1, len(s), len(s) + 3}):
                    if r < 0:
                        continue
                    got = A.lowrank_error(a, r)
                    tail = np.sqrt(np.sum(s[r:] ** 2))
                    direct = np.linalg.norm(a64 - (u[:, :r] * s[:r]) @ vt[:r])
                    for want in (tail, direct):
                        self.assertLessEqual(abs(got - want), REL_TOL * want + 1e-12 * frob,
                                             "rank %d: %r vs %r" % (r, got, want))
                    if r >= len(s):
                        self.assertEqual(got, 0.0)
                self.assertEqual(A.lowrank_error(a, 0), A.rank_analyze(a).frobenius)

    def test_errors(self):
        a = np.ones((3, 4), dtype=np.float32)
        a[1, 2] = np.nan
        for fn in (A.singular_values, A.rank_analyze, lambda m: A.lowrank_error(m, 1)):
            with self.assertRaises(A.AttnError) as ctx:
                fn(a)
            self.assertEqual(ctx.exception.status, A.ATTN_E_NUMERICAL)
            self.assertIn("row 1, col 2", ctx.exception.message)
        with self.assertRaises(A.AttnError) as ctx:
            A.lowrank_error(np.ones((3, 4)), -1)
        self.assertEqual(ctx.exception.status, A.ATTN_E_INVALID_ARG)
        self.assertIn("attn_lowrank_error: rank", ctx.exception.message)
        sigma = np.empty(2)
        status = A.lib.attn_singular_values(A.fptr(np.ones((2, 2), dtype=np.float32)), 0, 2,
                                            sigma.ctypes.data_as(A._DOUBLE_P))
        self.assertEqual(status, A.ATTN_E_SHAPE)
        self.assertIn("rows", A.last_error())


if __name__ == "__main__":
    sys.exit(A.run_tests())
