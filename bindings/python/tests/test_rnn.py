"""attn.RNN against torch.nn.RNN/LSTM/GRU (run in float64), the low-rank and Kronecker
recurrences through second paths, and the argument handling of forward."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import attn

torch.manual_seed(0)

TORCH_CLASSES = {"rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
                 "lstm": (nn.LSTM, {}), "gru": (nn.GRU, {})}


def torch_module(cell, **kw):
    cls, extra = TORCH_CLASSES[cell]
    return cls(batch_first=True, **extra, **kw)


def torch_run(module, x, h0=None, c0=None, lengths=None):
    """The module in float64: (y, h_n, c_n or None) as numpy."""
    m = module.double()
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    hx = None
    if h0 is not None:
        h0t = torch.from_numpy(np.asarray(h0, dtype=np.float64))
        hx = (h0t, torch.from_numpy(np.asarray(c0, dtype=np.float64))) if c0 is not None else h0t
    with torch.no_grad():
        if lengths is None:
            y, hn = m(xt, hx)
        else:
            packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
            yp, hn = m(packed, hx)
            y, _ = pad_packed_sequence(yp, batch_first=True, total_length=x.shape[1])
    m.float()
    if isinstance(hn, tuple):
        return y.numpy(), hn[0].numpy(), hn[1].numpy()
    return y.numpy(), hn.numpy(), None


def unpack(cell, result):
    y, state = result
    if cell == "lstm":
        return y, state[0], state[1]
    return y, state, None


CASES = list(itertools.product(["rnn_tanh", "rnn_relu", "lstm", "gru"], [False, True]))


@pytest.mark.parametrize("cell,bidirectional", CASES)
def test_matches_torch(cell, bidirectional, record_error):
    rng = np.random.default_rng(1)
    I, H, L, B, T = 5, 7, 2, 3, 6
    module = torch_module(cell, input_size=I, hidden_size=H, num_layers=L, bidirectional=bidirectional)
    model = attn.from_torch(module)
    assert (model.cell, model.bidirectional, model.num_layers, model.input_size, model.hidden_size) == \
        (cell, bidirectional, L, I, H)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    D = 2 if bidirectional else 1
    h0 = rng.standard_normal((L * D, B, H)).astype(np.float32)
    c0 = rng.standard_normal((L * D, B, H)).astype(np.float32) if cell == "lstm" else None
    tag = "%s%s" % (cell, " bidir" if bidirectional else "")

    y, h_n, c_n = unpack(cell, model(x))
    ry, rh, rc = torch_run(module, x)
    assert y.dtype == np.float32 and y.shape == (B, T, D * H) and h_n.shape == (L * D, B, H)
    record_error("RNN %s y (zero state)" % tag, y, ry)
    record_error("RNN %s h_n" % tag, h_n, rh)
    if cell == "lstm":
        record_error("RNN %s c_n" % tag, c_n, rc)

    y, h_n, c_n = unpack(cell, model(x, h0, c0))
    ry, rh, rc = torch_run(module, x, h0, c0)
    record_error("RNN %s y (h0, c0)" % tag, y, ry)
    record_error("RNN %s h_n" % tag, h_n, rh)
    if cell == "lstm":
        record_error("RNN %s c_n" % tag, c_n, rc)
        # PyTorch's hx tuple is accepted for h0
        y2, (h2, c2) = model(x, (h0, c0))
        np.testing.assert_array_equal(y2, y)

    lengths = [4, 6, 1]  # unsorted, one full, one of length 1
    y, h_n, c_n = unpack(cell, model(x, h0, c0, lengths=lengths))
    ry, rh, rc = torch_run(module, x, h0, c0, lengths=lengths)
    record_error("RNN %s y (lengths)" % tag, y, ry)
    record_error("RNN %s h_n (lengths)" % tag, h_n, rh)
    if cell == "lstm":
        record_error("RNN %s c_n (lengths)" % tag, c_n, rc)
    assert not y[2, 1:].any() and not y[0, 4:].any()
    y2, h2, _ = unpack(cell, model.forward_lengths(x, np.array(lengths, dtype=np.int32), h0, c0))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(h2, h_n)


def test_no_bias_and_nonlinearity_names(record_error):
    rng = np.random.default_rng(2)
    module = nn.RNN(4, 6, nonlinearity="relu", bias=False, batch_first=True)
    model = attn.from_torch(module)
    assert model.cell == "rnn_relu" and model.mode == "RNN_RELU" and not model.bias
    assert "bias_ih_l0" not in model.params
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y, h = model(x)
    ry, rh, _ = torch_run(module, x)
    record_error("RNN rnn_relu no bias y", y, ry)
    # the same model through PyTorch-style keywords
    same = attn.RNN(4, 6, nonlinearity="relu", bias=False)
    same.load_state_dict(module.state_dict())
    np.testing.assert_array_equal(same(x)[0], y)
    # nn.RNN's own keyword list passes through unchanged
    torch_kwargs = dict(input_size=4, hidden_size=6, num_layers=1, nonlinearity="relu", bias=False,
                        batch_first=True, dropout=0.0, bidirectional=False)
    np.testing.assert_array_equal(attn.RNN(**torch_kwargs).params.shapes["weight_hh_l0"], (6, 6))
    with pytest.raises(attn.InvalidArgument, match="dropout"):
        attn.RNN(4, 6, dropout=1.5)
    for name in ("LSTM", "RNN_TANH", "gru", "tanh"):
        attn.RNN(2, 3, cell=name)
    with pytest.raises(attn.InvalidArgument, match="nonlinearity"):
        attn.RNN(2, 3, cell="lstm", nonlinearity="relu")
    with pytest.raises(attn.InvalidArgument, match="batch_first"):
        attn.RNN(2, 3, batch_first=False)


def test_low_rank_against_torch_with_factored_weights(record_error):
    """from_torch(..., recurrence='low_rank', rank=r) puts the truncated SVD of each W_hh in; PyTorch
    running with W_hh := u @ v must give the same result. At r = H it is the dense model."""
    rng = np.random.default_rng(3)
    H = 8
    module = nn.GRU(5, H, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    dense_y, _ = attn.from_torch(module)(x)
    full = attn.from_torch(module, recurrence="low_rank", rank=H)
    assert full.recurrence == "low_rank" and full.rank == H and "weight_hh_l1_u_reverse" in full.params
    record_error("RNN low_rank r=H vs dense", full(x)[0], dense_y)

    r = 3
    low = attn.from_torch(module, recurrence="low_rank", rank=r)
    ref = torch_module("gru", input_size=5, hidden_size=H, num_layers=2, bidirectional=True)
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    for k in list(sd):
        if k.startswith("weight_hh"):
            u, v = attn.analysis.lowrank_factors(sd[k].numpy(), r)
            sd[k] = torch.from_numpy(u.astype(np.float64) @ v.astype(np.float64)).float()
            np.testing.assert_allclose(low.recurrent_matrix(int(k[11]), 1 if k.endswith("reverse") else 0),
                                       u @ v, rtol=1e-5, atol=1e-6)
    ref.load_state_dict(sd)
    y, h = low(x)
    ry, rh, _ = torch_run(ref, x)
    record_error("RNN low_rank r=3 y vs torch(u v)", y, ry)
    record_error("RNN low_rank r=3 h_n vs torch(u v)", h, rh)
    c = low.cost(3, 7)
    assert c.params == sum(a.size for a in low.params.values())
    assert c.flops < attn.from_torch(module).cost(3, 7).flops


def test_kronecker_against_torch_with_materialized_matrix(record_error):
    """A KRONECKER model equals a dense PyTorch LSTM whose W_hh is recurrent_matrix() (the factors'
    Kronecker products)."""
    rng = np.random.default_rng(4)
    H, I = 8, 3
    model = attn.RNN(I, H, cell="lstm", recurrence="kronecker", factor_sizes=[2, 2, 2], seed=5)
    assert model.factor_sizes == (2, 2, 2) and model.params.shape("weight_hh_l0_kron1") == (4, 2, 2)
    ref = nn.LSTM(I, H, batch_first=True)
    sd = {k: torch.from_numpy(v) for k, v in model.state_dict().items() if "kron" not in k}
    sd["weight_hh_l0"] = torch.from_numpy(model.recurrent_matrix(0, 0))
    ref.load_state_dict(sd)
    # the matrix is the gate-wise Kronecker product of the factors
    K = [model.params["weight_hh_l0_kron%d" % f] for f in range(3)]
    W = model.recurrent_matrix()
    for g in range(4):
        np.testing.assert_allclose(W[g * H:(g + 1) * H], np.kron(np.kron(K[0][g], K[1][g]), K[2][g]), rtol=1e-6)
    x = rng.standard_normal((2, 5, I)).astype(np.float32)
    y, (h, c) = model(x)
    ry, rh, rc = torch_run(ref, x)
    record_error("RNN kronecker y vs torch(dense W)", y, ry)
    record_error("RNN kronecker c_n vs torch(dense W)", c, rc)
    # more than 8 factors: the sizes beyond the eighth travel in more_factor_sizes (libattn 1.2)
    big = attn.RNN(2, 512, cell="gru", recurrence="kronecker", factor_sizes=[2] * 9)
    assert big.factor_sizes == (2,) * 9 and big.params.shape("weight_hh_l0_kron8") == (3, 2, 2)
    assert big(np.ones((1, 2, 2)))[0].shape == (1, 2, 512)
    with pytest.raises(attn.InvalidArgument, match="attn_rnn_create: the product of factor_sizes"):
        attn.RNN(2, 6, recurrence="kronecker", factor_sizes=[2, 2])
    with pytest.raises(attn.Unsupported, match="kronecker"):
        attn.from_torch(ref, recurrence="kronecker", factor_sizes=[2, 4])


def test_cost_and_workspace():
    model = attn.RNN(6, 10, num_layers=2, cell="gru")
    c = model.cost(4, 9)
    assert isinstance(c, attn.Cost) and c.params == sum(a.size for a in model.params.values())
    G, H, I = 3, 10, 6
    # input projections of both layers and the recurrence (docs/rnn.md): 2 B T G H (I_l + H)
    assert c.flops == 2 * 4 * 9 * G * H * ((I + H) + (H + H))
    ws = attn.Workspace()
    assert ws.size == 0
    model(np.zeros((4, 9, 6), np.float32), workspace=ws)
    assert ws.size == c.workspace_bytes
    params, flops, wsb = c  # a NamedTuple unpacks


def test_input_conversions():
    """float32 C-contiguous arrays go to C as they are; everything else is converted once and gives
    the same numbers."""
    from attn import _core
    rng = np.random.default_rng(6)
    model = attn.RNN(4, 5, cell="gru")
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    assert _core.f32("t", "x", x) is x  # no copy
    y = model(x)[0]
    big = np.empty((3, 6, 8), np.float32)
    big[:, :, ::2] = x  # a strided view
    np.testing.assert_array_equal(model(big[:, :, ::2])[0], y)
    np.testing.assert_array_equal(model(x.astype(np.float64))[0], y)
    np.testing.assert_array_equal(model(x.astype(">f4"))[0], y)
    np.testing.assert_array_equal(model(np.asfortranarray(x))[0], y)
    np.testing.assert_array_equal(model(torch.from_numpy(x))[0], y)
    np.testing.assert_array_equal(model(x.tolist())[0], y)
    with pytest.raises(attn.InvalidArgument, match="real numbers"):
        model(x.astype(np.complex64))
    with pytest.raises(attn.ShapeError, match=r"x must have shape \[batch, seq_len, input_size=4\]"):
        model(x[:, :, :3])
    with pytest.raises(attn.ShapeError, match="h0 must have shape"):
        model(x, np.zeros((1, 2, 5), np.float32))
    with pytest.raises(attn.InvalidArgument, match="lengths must be integers"):
        model(x, lengths=[1.0, 2.0, 3.0])
    with pytest.raises(attn.ShapeError, match="lengths must have shape"):
        model(x, lengths=[1, 2])
    with pytest.raises(attn.InvalidArgument, match="c0"):
        model(x, c0=np.zeros((1, 3, 5), np.float32))  # the library refuses c0 for a GRU
