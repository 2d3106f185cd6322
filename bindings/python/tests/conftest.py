"""pytest setup for the attn package's tests.

The package is imported from this source tree (bindings/python/src), not from an installed copy;
the library is found as the package finds it (ctest sets ATTN_LIBRARY to the built target, see
tests/bindings_python.cmake). The largest relative errors measured against the references are
collected with the `record_error` fixture and printed at the end of the run.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)  # bindings/python
sys.path.insert(0, os.path.join(PACKAGE_ROOT, "src"))

# Under an ATTN_SANITIZE build the ASan runtime is preloaded (tests/bindings_python.cmake).
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")

REL_TOL = 1e-5
_errors: dict = {}


def rel_err(got, ref) -> float:
    """max |got - ref| / max |ref| (norm-wise relative error of the whole tensor)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return float(np.max(np.abs(got - ref))) / max(scale, 1e-30) if ref.size else 0.0


@pytest.fixture
def record_error():
    """record_error(label, got, ref, tol=REL_TOL): asserts rel_err <= tol and keeps the largest
    error per label for the summary."""

    def record(label: str, got, ref, tol: float = REL_TOL) -> float:
        e = rel_err(got, ref)
        _errors[label] = max(e, _errors.get(label, 0.0))
        assert e <= tol, "%s: relative error %.3g > %.3g" % (label, e, tol)
        return e

    return record


def pytest_terminal_summary(terminalreporter):
    if _errors:
        terminalreporter.write_sep("-", "largest relative errors against the references")
        for label in sorted(_errors):
            terminalreporter.write_line("%-48s %.2e" % (label, _errors[label]))
