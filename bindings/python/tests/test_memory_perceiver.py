"""attn.MemoryRNN and attn.Perceiver (no PyTorch module exists for either): shapes, cost against
the workspace really used, options read back, and agreement with the library through second
paths: a safetensors round trip, a state_dict with PyTorch's aliases through from_state_dict, the
SPARSE = DENSE invariant at top_k >= N, both mask layouts."""

import numpy as np
import pytest

import attn

NTM = dict(input_size=5, output_size=3, controller_size=12, memory_slots=10, memory_width=6)


def test_memory_rnn_shapes_cost_round_trip(tmp_path):
    rng = np.random.default_rng(20)
    model = attn.MemoryRNN(**NTM, num_heads=2, controller_layers=2, seed=7)
    assert (model.memory_slots, model.memory_width, model.num_heads, model.controller_layers,
            model.addressing, model.top_k) == (10, 6, 2, 2, "dense", None)
    names = list(model.params)
    assert "memory.mem_bias" in names and "ntm.heads.3.fc_write.weight" in names
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    ws = attn.Workspace()
    y = model(x, workspace=ws)
    assert y.shape == (3, 4, 3) and ((y > 0) & (y < 1)).all()  # sigmoid outputs
    c = model.cost(3, 4)
    assert ws.size == c.workspace_bytes and c.params == sum(a.size for a in model.params.values()) and c.flops > 0
    full = model.forward_all(x)
    np.testing.assert_array_equal(full.output, y)
    assert full.read_weights.shape == (3, 4, 2, 10) and full.memory.shape == (3, 10, 6)
    np.testing.assert_allclose(full.read_weights.sum(-1), 1, rtol=1e-5)  # weightings sum to 1
    assert model.forward_all(x, read_weights=False).read_weights is None

    # second path 1: safetensors file -> a new model
    path = tmp_path / "ntm.safetensors"
    model.params.save(path, prefix="ntm_model.")
    other = attn.MemoryRNN(**NTM, num_heads=2, controller_layers=2)
    assert not np.array_equal(other(x), y)
    other.params.load(path, prefix="ntm_model.")
    np.testing.assert_array_equal(other(x), y)

    # second path 2: a pytorch-ntm style state_dict, which repeats mem_bias under two more names
    sd = model.state_dict()
    sd["ntm.memory.mem_bias"] = sd["memory.mem_bias"]
    for j in range(4):
        sd["ntm.heads.%d.memory.mem_bias" % j] = sd["memory.mem_bias"]
    third = attn.from_state_dict("ntm", sd, **NTM, num_heads=2, controller_layers=2)
    np.testing.assert_array_equal(third(x), y)


def test_memory_rnn_sparse_equals_dense_at_full_top_k():
    rng = np.random.default_rng(21)
    dense = attn.MemoryRNN(**NTM, seed=3)
    sparse = attn.MemoryRNN(**NTM, addressing="sparse", top_k=10)
    sparse.load_state_dict(dense.state_dict())
    assert sparse.top_k == 10 and sparse.addressing == "sparse"
    x = rng.standard_normal((2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(sparse(x), dense(x))
    small = attn.MemoryRNN(**NTM, addressing="sparse", top_k=2, seed=3)
    rw = small.forward_all(x).read_weights
    assert ((rw > 0).sum(-1) <= 2).all()
    with pytest.raises(attn.InvalidArgument, match="needs top_k"):
        attn.MemoryRNN(**NTM, addressing="sparse")


PERCEIVER = dict(depth=2, num_freq_bands=3, max_freq=8.0, input_channels=4, input_axis=2, num_latents=6,
                 latent_dim=16, cross_heads=1, cross_dim_head=8, latent_heads=2, latent_dim_head=8)


def test_perceiver_shapes_cost_masks_round_trip(tmp_path):
    rng = np.random.default_rng(22)
    model = attn.Perceiver(**PERCEIVER, seed=9)
    assert (model.depth, model.input_axis, model.latent_dim, model.max_freq, model.num_classes) == (2, 2, 16, 8.0, 0)
    data = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    ws = attn.Workspace()
    out = model(data, workspace=ws)
    assert out.shape == (2, 6, 16) and np.isfinite(out).all()
    c = model.cost(2, (3, 5))
    assert ws.size == c.workspace_bytes and c.params == sum(a.size for a in model.params.values())

    mask = np.zeros((2, 3, 5), bool)
    mask[0, 2:] = True
    masked = model(data, mask)
    np.testing.assert_array_equal(model(data, mask.reshape(2, 15)), masked)
    noise = data.copy()
    noise[0, 2:] = 100.0  # masked positions do not matter
    np.testing.assert_array_equal(model(noise, mask)[0], masked[0])
    np.testing.assert_array_equal(masked[1], out[1])

    path = tmp_path / "perceiver.safetensors"
    model.params.save(path)
    other = attn.Perceiver(**PERCEIVER)
    other.params.load(path)
    np.testing.assert_array_equal(other(data), out)

    head = attn.Perceiver(**PERCEIVER, num_classes=7)
    assert head(data).shape == (2, 7)
    with pytest.raises(attn.ShapeError, match="data must have shape"):
        model(data[..., :3])


def test_perceiver_weight_tied_state_dict_with_aliases():
    """lucidrains' state_dict of a weight-tied Perceiver repeats layers.1.* as layers.2.*; the library
    lists them once and accepts the aliases."""
    rng = np.random.default_rng(23)
    opts = dict(PERCEIVER, depth=3, weight_tie_layers=True, input_axis=1, fourier_encode_data=False)
    tied = attn.Perceiver(**opts, seed=4)
    assert tied.weight_tie_layers and not tied.fourier_encode
    assert not any(k.startswith("layers.2.") for k in tied.params)
    sd = tied.state_dict()
    sd.update({"layers.2." + k[len("layers.1."):]: v for k, v in sd.items() if k.startswith("layers.1.")})
    copy = attn.from_state_dict("perceiver", sd, **opts)
    data = rng.standard_normal((2, 7, 4)).astype(np.float32)
    np.testing.assert_array_equal(copy(data), tied(data))
    with pytest.raises(attn.NotFound, match="unexpected keys: layers.9.x"):
        attn.from_state_dict("perceiver", dict(sd, **{"layers.9.x": np.zeros(1)}), **opts)
