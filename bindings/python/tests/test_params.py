"""The params mapping: order, copies, assignment checks, all-or-nothing updates, load/save with
prefix and strictness, init, open_params; and the error classes, each from a real failing call
whose message is the library's."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import attn
from attn import errors

from conftest import PACKAGE_ROOT, SANITIZED


def test_mapping_api():
    m = attn.RNN(3, 4, num_layers=2, cell="gru")
    p = m.params
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
             "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert list(p) == names == list(p.keys()) == p.names() and len(p) == 8
    assert list(p.keys()) == list(torch.nn.GRU(3, 4, num_layers=2).state_dict().keys())
    assert p.shapes["weight_ih_l1"] == (12, 4) and p.shape("bias_hh_l0") == (12,)
    assert "weight_hh_l0" in p and "nope" not in p and 3 not in p and "a\0b" not in p
    items = dict(p.items())
    assert set(items) == set(names) and all(a.dtype == np.float32 for a in items.values())
    assert p.get("nope") is None  # Mapping.get, through NotFound being a KeyError
    w = p["weight_hh_l0"]
    w[:] = 0  # a copy: the model is unchanged
    assert p["weight_hh_l0"].any()
    p["weight_hh_l0"] = np.full((12, 4), 0.25)  # float64 converted
    assert (p["weight_hh_l0"] == 0.25).all()
    with pytest.raises(attn.ShapeError, match=r"tensor 'weight_hh_l0' has shape \(12, 4\)"):
        p["weight_hh_l0"] = np.zeros((4, 12))  # same count, wrong shape: refused
    with pytest.raises(attn.InvalidArgument):
        del p["weight_hh_l0"]
    assert "weight_hh_l0" in repr(p)

    before = m.state_dict()
    bad = {"bias_ih_l0": np.ones(12), "weight_ih_l0": np.full((12, 3), np.nan)}
    with pytest.raises(attn.NumericalError, match="weight_ih_l0"):
        p.update(bad)
    for k, v in m.state_dict().items():  # all or nothing
        np.testing.assert_array_equal(v, before[k])
    p.update(bias_ih_l0=np.ones(12))
    assert (p["bias_ih_l0"] == 1).all()

    res = m.load_state_dict({"bias_ih_l0": np.zeros(12), "extra": np.zeros(1)}, strict=False)
    assert res.unexpected_keys == ["extra"] and len(res.missing_keys) == 7
    with pytest.raises(attn.NotFound, match="missing tensors: weight_ih_l0"):
        m.load_state_dict({"bias_ih_l0": np.zeros(12)})
    # keys that name no tensor are reported whatever they hold (a step counter, a string)
    res = m.load_state_dict({"bias_ih_l0": np.zeros(12), "steps": np.array(3), "note": "x"}, strict=False)
    assert res.unexpected_keys == ["steps", "note"]
    with pytest.raises(attn.InvalidArgument, match="bias_ih_l0"):
        m.load_state_dict({"bias_ih_l0": "x"}, strict=False)  # but a tensor's value must be numbers

    p.init(5)
    a = m.state_dict()
    p.init(6)
    assert not np.array_equal(a["weight_ih_l0"], p["weight_ih_l0"])
    p.init(5)
    for k in a:
        np.testing.assert_array_equal(a[k], p[k])
    with pytest.raises(attn.InvalidArgument, match="seed"):
        p.init(-1)


def test_load_save(tmp_path):
    src = attn.MultiheadAttention(8, 2, seed=1)
    path = tmp_path / "model.safetensors"
    src.params.save(str(path), prefix="enc.attn.")
    dst = attn.MultiheadAttention(8, 2)
    with pytest.raises(attn.NotFound, match="in_proj_weight"):
        dst.params.load(path)  # wrong prefix: every tensor is missing
    dst.params.load(path, prefix="enc.attn.")
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.params[k], v)

    # strict=False lets a Linformer take the MHA checkpoint; its own tensors stay
    lin = attn.MultiheadAttention(8, 2, kind="linformer", max_seq_len=5, proj_len=2)
    proj = lin.params["proj_e"]
    with pytest.raises(attn.NotFound, match="proj_e"):
        lin.params.load(path, prefix="enc.attn.")
    lin.params.load(path, prefix="enc.attn.", strict=False)
    np.testing.assert_array_equal(lin.params["proj_e"], proj)
    np.testing.assert_array_equal(lin.params["in_proj_weight"], src.params["in_proj_weight"])

    # strict rejects unknown tensors under the prefix; reject_unknown=False overrides
    extra = attn.open_params(path)
    extra["enc.attn.in_proj_bias"] = np.ones(24)
    extra.save(tmp_path / "extra.safetensors")
    opened = attn.open_params(tmp_path / "extra.safetensors", prefix="enc.")
    assert list(opened) == ["attn." + k for k in src.params] and len(opened) == 4
    np.testing.assert_array_equal(opened["attn.in_proj_bias"], np.ones(24))
    opened.close()
    with pytest.raises(attn.InvalidArgument, match="closed"):
        opened["attn.in_proj_bias"]


def _safetensors(tensors):
    import json
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


# ---- one real failing call per error class ---------------------------------------------------


def _raises(cls, call, c_text):
    with pytest.raises(cls) as info:
        call()
    e = info.value
    assert isinstance(e, attn.AttnError) and e.status == cls.status
    assert c_text in e.message and e.message in str(e) and e.status_name in str(e)
    return e


def test_error_classes(tmp_path):
    rnn = attn.RNN(3, 4)
    x = np.zeros((2, 5, 3), np.float32)
    e = _raises(attn.InvalidArgument, lambda: attn.RNN(0, 4), "attn_rnn_create")
    assert isinstance(e, ValueError)
    _raises(attn.ShapeError, lambda: rnn(x, lengths=[5, 6]), "attn_rnn_forward_lengths: lengths[1]")
    _raises(attn.ShapeError, lambda: rnn(np.zeros((0, 5, 3), np.float32)), "attn_rnn_forward: batch")
    e = _raises(attn.Unsupported, lambda: attn.MultiheadAttention(8, 2, kind="linformer", max_seq_len=4,
                                                                   proj_len=2, causal=True), "attn_mha_create")
    assert isinstance(e, NotImplementedError)
    e = _raises(attn.NotFound, lambda: rnn.params["weight_hh_l7"], "attn_params_find: no tensor named 'weight_hh_l7'")
    assert isinstance(e, KeyError) and "'weight_hh_l7'" in str(e)
    e = _raises(attn.AttnIOError, lambda: rnn.params.load(tmp_path / "missing.safetensors"), "missing.safetensors")
    assert isinstance(e, OSError)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 4) + b"{]  ")
    _raises(attn.FormatError, lambda: rnn.params.load(bad), "attn_params_load")
    _raises(attn.FormatError, lambda: attn.open_params(bad), "attn_params_open")
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(_safetensors({"weight_ih_l0": np.zeros((3, 16))}))
    _raises(attn.ShapeError, lambda: rnn.params.load(wrong, strict=False), "weight_ih_l0")
    nan = np.zeros((16, 3), np.float32)
    nan[2, 1] = np.nan
    e = _raises(attn.NumericalError, lambda: attn.analysis.rank_analyze(nan), "attn_rank_analyze")
    assert isinstance(e, ArithmeticError)
    # ATTN_E_INTERNAL (a library bug) has no call that triggers it: the mapping itself
    e = errors.error_for(-9, "attn_x: internal")
    assert type(e) is attn.InternalError and isinstance(e, RuntimeError) and e.status == -9
    assert type(errors.error_for(-42, "future code")) is attn.AttnError
    # the message is the failing thread's own, read right after the call
    import pickle
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is attn.InternalError and e2.message == e.message


NOMEM_SCRIPT = r"""
import resource, sys
import numpy as np
import attn
# A memory network whose workspace holds a 4096 x 1024 memory per batch element: 4 GiB for 256
# sequences of one step, under an address-space limit of 2 GiB above what the process already holds.
m = attn.MemoryRNN(1, 1, 4, 4096, 1024)
x = np.zeros((256, 1, 1), np.float32)
need = m.cost(256, 1).workspace_bytes
assert need >= 4 << 30, need
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), resource.RLIM_INFINITY))
try:
    m(x)
except attn.NoMemory as e:
    assert isinstance(e, MemoryError) and e.status == -3 and "attn_memrnn_forward" in e.message, e
    print("NoMemory:", e.message)
    sys.exit(0)
sys.exit("no NoMemory")
"""


@pytest.mark.skipif(SANITIZED, reason="an address-space limit and AddressSanitizer's shadow memory do not mix")
def test_no_memory():
    env = dict(os.environ, PYTHONPATH=os.path.join(PACKAGE_ROOT, "src"), OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", NOMEM_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NoMemory: attn_memrnn_forward" in r.stdout
