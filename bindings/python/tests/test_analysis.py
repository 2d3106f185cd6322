"""attn.analysis against numpy.linalg.svd (float64, on the same float32 matrix)."""

import threading

import numpy as np
import pytest

import attn
from attn import analysis


def matrices():
    rng = np.random.default_rng(30)
    low = (rng.standard_normal((40, 5)) @ rng.standard_normal((5, 30))).astype(np.float32)
    yield "random 17x9", rng.standard_normal((17, 9)).astype(np.float32)
    yield "random 6x23", rng.standard_normal((6, 23)).astype(np.float32)
    yield "rank-5 40x30", low
    yield "lstm W_hh", attn.RNN(4, 12, seed=3).recurrent_matrix()


@pytest.mark.parametrize("label,a", list(matrices()), ids=lambda v: v if isinstance(v, str) else "")
def test_against_numpy_svd(label, a, record_error):
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    sigma = analysis.singular_values(a)
    assert sigma.dtype == np.float64 and sigma.shape == (min(a.shape),)
    record_error("analysis singular_values", sigma, s, tol=1e-12)

    r = analysis.rank_analyze(a)
    assert isinstance(r, analysis.RankReport)
    p = s / s.sum()
    p = p[p > 0]
    expected = dict(sigma_max=s[0], frobenius=np.sqrt((s ** 2).sum()), stable_rank=(s ** 2).sum() / s[0] ** 2,
                    effective_rank=np.exp(-(p * np.log(p)).sum()))
    for field, value in expected.items():
        record_error("analysis rank_analyze " + field, getattr(r, field), value, tol=1e-12)
    assert r.numerical_rank == int((s > s[0] * max(a.shape) * 2.0 ** -52).sum())
    cum = np.cumsum(s) / s.sum()
    assert r.rank_90 == int(np.argmax(cum >= 0.90)) + 1 and r.rank_99 == int(np.argmax(cum >= 0.99)) + 1

    for k in (0, 1, 3, min(a.shape)):
        record_error("analysis lowrank_error", analysis.lowrank_error(a, k),
                     np.sqrt((s[k:] ** 2).sum()) if k < len(s) else 0.0, tol=1e-10)
    k = 3
    u, v = analysis.lowrank_factors(a, k)
    assert u.shape == (a.shape[0], k) and v.shape == (k, a.shape[1]) and u.dtype == np.float32
    U, S, Vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
    best = (U[:, :k] * S[:k]) @ Vt[:k]
    record_error("analysis lowrank_factors u@v", u.astype(np.float64) @ v, best)


def test_conversion_and_errors():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.testing.assert_array_equal(analysis.singular_values(a), analysis.singular_values(a.astype(np.float32)))
    np.testing.assert_array_equal(analysis.singular_values(a.T), analysis.singular_values(np.ascontiguousarray(a.T)))
    assert analysis.rank_analyze(np.zeros((3, 3))).effective_rank == 0
    with pytest.raises(attn.ShapeError, match="2-D"):
        analysis.singular_values(np.zeros(4))
    bad = np.ones((3, 3), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(attn.NumericalError, match="attn_singular_values"):
        analysis.singular_values(bad)
    with pytest.raises(attn.InvalidArgument, match="attn_lowrank_factors"):
        analysis.lowrank_factors(a, 4)
    with pytest.raises(attn.InvalidArgument, match="attn_lowrank_error"):
        analysis.lowrank_error(a, -1)


def test_threads():
    a = np.random.default_rng(31).standard_normal((50, 40)).astype(np.float32)
    ref = analysis.singular_values(a)
    out = [None] * 8

    def work(i):
        out[i] = analysis.singular_values(a)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in out:
        np.testing.assert_array_equal(o, ref)
