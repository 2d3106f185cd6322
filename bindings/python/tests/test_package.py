"""The package as a package: the README's examples run as written, the library discovery order and
version check, and an offline pip install into a fresh venv that imports and runs from there."""

import os
import re
import shutil
import subprocess
import sys
import venv

import numpy as np
import pytest

import attn
from attn import _lib

from conftest import PACKAGE_ROOT

README = os.path.join(PACKAGE_ROOT, "README.md")


def test_readme_examples(tmp_path, monkeypatch, capsys):
    """Every ```python block of README.md, in order, in one namespace (the newcomer's paste)."""
    with open(README) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for i, code in enumerate(blocks):
        exec(compile(code, "README.md python block %d" % (i + 1), "exec"), namespace)
    out = capsys.readouterr().out
    assert "(4, 10, 32) (4, 4, 16)" in out
    err = float(out.strip().splitlines()[-2])  # the GRU block's max |y - y_ref|
    assert err < 1e-5


def test_help_reads():
    import pydoc
    text = pydoc.render_doc(attn.RNN, renderer=pydoc.plaintext)
    for word in ("input_size", "bidirectional", "lengths", "[batch, seq_len, input_size]", "cost", "params"):
        assert word in text
    assert "class RNN" in text and attn.RNN.__module__ == "attn"
    major, minor, patch = map(int, attn.library_version().split("."))
    assert major == 1 and major * 10000 + minor * 100 + patch >= attn.REQUIRED_VERSION
    assert attn.library_version() in attn.build_info()


# ---- discovery -----------------------------------------------------------------------------------


def test_candidates_order(tmp_path, monkeypatch):
    # an installed layout: <prefix>/lib/python3.X/site-packages/attn and <prefix>/lib64/libattn.so.1
    prefix = tmp_path / "prefix"
    pkg = prefix / "lib" / "python3.11" / "site-packages" / "attn"
    pkg.mkdir(parents=True)
    (prefix / "lib64").mkdir()
    (prefix / "lib64" / "libattn.so.1").touch()
    (prefix / "lib" / "x86_64-linux-gnu").mkdir()
    (prefix / "lib" / "x86_64-linux-gnu" / "libattn.so.1").touch()
    assert _lib._prefix_candidates(str(pkg)) == [str(prefix / "lib64" / "libattn.so.1"),
                                                 str(prefix / "lib" / "x86_64-linux-gnu" / "libattn.so.1")]
    # a source tree: <repo>/bindings/python/src/attn and <repo>/build*/libattn.so.1
    repo = tmp_path / "repo"
    src = repo / "bindings" / "python" / "src" / "attn"
    src.mkdir(parents=True)
    (repo / "include" / "attn").mkdir(parents=True)
    (repo / "include" / "attn" / "attn.h").touch()
    (repo / "CMakeLists.txt").touch()
    for d in ("build-old", "build", "build-new"):
        (repo / d).mkdir()
        (repo / d / "libattn.so.1").touch()
    os.utime(repo / "build-old" / "libattn.so.1", (1, 1))
    assert _lib._build_tree_candidates(str(src)) == [str(repo / d / "libattn.so.1")
                                                     for d in ("build", "build-new", "build-old")]
    assert _lib._build_tree_candidates(str(pkg)) == []

    monkeypatch.setenv("ATTN_LIBRARY", "/somewhere/libattn.so.1")
    assert _lib.candidates() == [("ATTN_LIBRARY", "/somewhere/libattn.so.1")]  # nothing else
    monkeypatch.delenv("ATTN_LIBRARY")
    origins = [o for o, _ in _lib.candidates()]
    assert origins.index("dynamic loader") < len(origins)
    assert origins == sorted(origins, key=["installed prefix", "dynamic loader", "ctypes.util.find_library",
                                           "build tree"].index)


class _FakeLib:
    def __init__(self, version):
        self.attn_version_number = lambda: version


def test_version_check(monkeypatch):
    for version, ok in ((10300, True), (10299, False), (10200, False), (19999, True), (20000, False)):
        monkeypatch.setattr(_lib.ctypes, "CDLL", lambda path, v=version: _FakeLib(v))
        lib, why = _lib._try_load("/fake/libattn.so.1")
        if ok:
            assert "lacks attn_" in why  # the fake has no other function
        else:
            assert lib is None and "this package needs 1.3.0 or a later 1.x" in why, why


def test_library_not_found_lists_what_was_tried(tmp_path):
    env = dict(os.environ, ATTN_LIBRARY=str(tmp_path / "nowhere" / "libattn.so.1"),
               PYTHONPATH=os.path.join(PACKAGE_ROOT, "src"))
    code = ("import attn\ntry:\n    attn.RNN(1, 1)\nexcept attn.LibraryNotFound as e:\n    print(e)\n"
            "    assert isinstance(e, ImportError)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "nowhere/libattn.so.1 (ATTN_LIBRARY) cannot be loaded" in r.stdout
    assert "build tree" not in r.stdout  # an explicit choice is never replaced


# ---- the offline install -----------------------------------------------------------------------


RUN_IN_VENV = r"""
import os, sys
import numpy as np
import attn
assert attn.__file__.startswith(sys.prefix), (attn.__file__, sys.prefix)
m = attn.RNN(3, 5, cell="gru", seed=11)
y, h = m(np.linspace(-1, 1, 2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3))
np.save(sys.argv[1], y)
print(attn.library_path())
"""


def test_venv_install(tmp_path):
    """pip installs bindings/python into a new venv offline; the venv's copy imports and runs, with
    ATTN_LIBRARY, and without it from a libattn.so.1 installed into the venv's prefix."""
    lib_path = attn.library_path()
    pkg = tmp_path / "pkg"  # a copy: pip builds in the source directory and would leave build/ there
    shutil.copytree(PACKAGE_ROOT, pkg, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    try:
        venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    except Exception as e:  # pragma: no cover - depends on the machine
        pytest.skip("cannot create a venv here (%s); install python3-venv" % e)
    py = str(env_dir / "bin" / "python")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if subprocess.run([py, "-m", "pip", "--version"], env=env, capture_output=True).returncode != 0:
        pytest.skip("pip is not available to the venv (install python3-pip)")
    if subprocess.run([py, "-c", "import setuptools, wheel"], env=env, capture_output=True).returncode != 0:
        pytest.skip("setuptools or wheel is missing, which --no-build-isolation needs (python3-setuptools, "
                    "python3-wheel)")
    r = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-cache-dir",
                        "--disable-pip-version-check", "-q", str(pkg)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    expected = attn.RNN(3, 5, cell="gru", seed=11)(np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 4, 3))[0]
    work = tmp_path / "work"  # not the source tree: the venv's copy must be the one imported
    work.mkdir()
    env["ATTN_LIBRARY"] = lib_path
    r = subprocess.run([py, "-c", RUN_IN_VENV, str(work / "y1.npy")], env=env, cwd=work, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.abspath(lib_path)
    np.testing.assert_array_equal(np.load(work / "y1.npy"), expected)

    # installed into the same prefix: <venv>/lib/libattn.so.1, found without ATTN_LIBRARY
    shutil.copy(os.path.realpath(lib_path), env_dir / "lib" / "libattn.so.1")
    del env["ATTN_LIBRARY"]
    env.pop("LD_LIBRARY_PATH", None)
    r = subprocess.run([py, "-c", RUN_IN_VENV, str(work / "y2.npy")], env=env, cwd=work, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(env_dir / "lib" / "libattn.so.1")
    np.testing.assert_array_equal(np.load(work / "y2.npy"), expected)
