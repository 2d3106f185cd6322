"""attn.MultiheadAttention: FULL against torch.nn.MultiheadAttention (float64), with masks, causal,
kdim/vdim, no bias and every memory mode; LINFORMER and NYSTROM through their invariants (equal to
FULL at k = S with identity projections, at m = L = S with the SVD pseudo-inverse), shapes, cost,
and a safetensors round trip."""

import numpy as np
import pytest
import torch
from torch import nn

import attn


def torch_mha(module, q, k, v, mask=None, causal=False):
    """(out, per-head weights) of the module in float64."""
    m = module.double()
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
    attn_mask = None
    if causal:
        L, S = q.shape[1], k.shape[1]
        attn_mask = torch.triu(torch.ones(L, S, dtype=torch.bool), 1)
    with torch.no_grad():
        out, w = m(t(q), t(k), t(v), key_padding_mask=None if mask is None else torch.from_numpy(mask),
                   need_weights=True, attn_mask=attn_mask, average_attn_weights=False)
    m.float()
    return out.numpy(), w.numpy()


@pytest.mark.parametrize("memory_mode", ["auto", "materialize", "streaming"])
def test_full_matches_torch(memory_mode, record_error):
    rng = np.random.default_rng(10)
    E, h, B, L, S = 16, 4, 3, 5, 7
    module = nn.MultiheadAttention(E, h, batch_first=True)
    with torch.no_grad():  # PyTorch's init leaves the biases 0: make them count
        module.in_proj_bias.normal_()
        module.out_proj.bias.normal_()
    model = attn.from_torch(module, memory_mode=memory_mode)
    assert (model.kind, model.embed_dim, model.num_heads, model.memory_mode) == ("full", E, h, memory_mode)
    q = rng.standard_normal((B, L, E)).astype(np.float32)
    kv = rng.standard_normal((B, S, E)).astype(np.float32)
    mask = np.zeros((B, S), dtype=bool)
    mask[0, 5:] = True
    mask[2, :3] = True

    out = model(q, kv, kv, key_padding_mask=mask)
    ref, ref_w = torch_mha(module, q, kv, kv, mask)
    record_error("MHA full (%s) masked out" % memory_mode, out, ref)
    record_error("MHA full (%s) attention_matrix" % memory_mode,
                 model.attention_matrix(q, kv, kv, key_padding_mask=mask), ref_w)
    # the same mask as uint8 and as int64 (nonzero = ignore)
    np.testing.assert_array_equal(model(q, kv, kv, key_padding_mask=mask.astype(np.uint8)), out)
    np.testing.assert_array_equal(model(q, kv, kv, key_padding_mask=mask.astype(np.int64) * 7), out)
    np.testing.assert_array_equal(model(q, kv, kv, key_padding_mask=torch.from_numpy(mask)), out)

    # self-attention (key and value default to query), unmasked
    ref, _ = torch_mha(module, q, q, q)
    record_error("MHA full (%s) self-attention" % memory_mode, model(q), ref)


def test_full_causal_kdim_vdim_no_bias(record_error):
    rng = np.random.default_rng(11)
    E, h, B, L = 12, 3, 2, 6
    module = nn.MultiheadAttention(E, h, kdim=5, vdim=7, bias=False, batch_first=True)
    model = attn.from_torch(module)
    assert (model.kdim, model.vdim, model.bias) == (5, 7, False)
    assert set(model.params) == {"q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"}
    q = rng.standard_normal((B, L, E)).astype(np.float32)
    k = rng.standard_normal((B, L, 5)).astype(np.float32)
    v = rng.standard_normal((B, L, 7)).astype(np.float32)
    ref, ref_w = torch_mha(module, q, k, v)
    record_error("MHA full kdim/vdim no bias", model(q, k, v), ref)

    causal = attn.from_torch(module, causal=True)
    ref, ref_w = torch_mha(module, q, k, v, causal=True)
    record_error("MHA full causal", causal(q, k, v), ref)
    record_error("MHA full causal attention_matrix", causal.attention_matrix(q, k, v), ref_w)
    with pytest.raises(attn.ShapeError, match="key must have shape"):
        model(q)  # self-attention needs kdim = E
    with pytest.raises(attn.InvalidArgument, match="float masks"):
        model(q, k, v, key_padding_mask=np.zeros((B, L), np.float32))


def test_fully_masked_rows_are_zero_not_nan():
    model = attn.MultiheadAttention(8, 2, seed=1)
    x = np.random.default_rng(12).standard_normal((2, 3, 8)).astype(np.float32)
    mask = np.zeros((2, 3), bool)
    mask[1] = True
    w = model.attention_matrix(x, key_padding_mask=mask)
    assert np.isfinite(w).all() and not w[1].any()


def _identity_linformer(E, h, S, seed):
    lin = attn.MultiheadAttention(E, h, kind="linformer", max_seq_len=S, proj_len=S, sharing="headwise", seed=seed)
    lin.params["proj_e"] = np.eye(S, dtype=np.float32)
    lin.params["proj_f"] = np.eye(S, dtype=np.float32)
    return lin


def test_linformer_invariant_and_round_trip(tmp_path, record_error):
    """With k = S and E = F = identity, LINFORMER equals FULL (the same in-projection weights)."""
    rng = np.random.default_rng(13)
    E, h, B, S = 16, 2, 2, 6
    full = attn.MultiheadAttention(E, h, seed=3)
    lin = _identity_linformer(E, h, S, seed=3)
    assert (lin.kind, lin.max_seq_len, lin.proj_len, lin.sharing) == ("linformer", S, S, "headwise")
    lin.load_state_dict(full.state_dict(), strict=False)
    x = rng.standard_normal((B, S, E)).astype(np.float32)
    # (without a mask: a masked key is zeroed before the projection, so it keeps weight exp(0))
    record_error("MHA linformer(k=S, E=F=I) vs full", lin(x), full(x))
    record_error("MHA linformer(k=S, E=F=I) matrix vs full", lin.attention_matrix(x), full.attention_matrix(x))
    mask = np.zeros((B, S), bool)
    mask[1, 4:] = True
    noise = x.copy()
    noise[1, 4:] = 1e3  # what masked positions hold does not matter
    np.testing.assert_array_equal(lin(x, x, x, key_padding_mask=mask), lin(x, noise, noise, key_padding_mask=mask))

    # a real Linformer (k < S, shorter sequences than max_seq_len), every sharing mode
    for sharing, names in (("headwise", {"proj_e", "proj_f"}), ("kv", {"proj_e"}), ("none", {"proj_e", "proj_f"})):
        m = attn.MultiheadAttention(E, h, kind="linformer", max_seq_len=10, proj_len=3, sharing=sharing, seed=4)
        assert names <= set(m.params)
        out = m(x)
        assert out.shape == (B, S, E) and np.isfinite(out).all()
        assert m.attention_matrix(x).shape == (B, h, S, S)
        c = m.cost(B, S)
        assert c.params == sum(a.size for a in m.params.values()) and c.flops > 0
        ws = attn.Workspace()
        m(x, workspace=ws)
        assert ws.size == c.workspace_bytes
        # second path: the tensors through a safetensors file into a new model
        path = tmp_path / ("lin_%s.safetensors" % sharing)
        m.params.save(path)
        other = attn.MultiheadAttention(E, h, kind="linformer", max_seq_len=10, proj_len=3, sharing=sharing)
        other.params.load(path)
        np.testing.assert_array_equal(other(x), out)
    with pytest.raises(attn.ShapeError, match="max_seq_len"):
        m(rng.standard_normal((1, 11, E)).astype(np.float32))


def test_nystrom_invariant_and_round_trip(tmp_path, record_error):
    """With m = L = S and the SVD pseudo-inverse (no convolution), NYSTROM equals FULL."""
    rng = np.random.default_rng(14)
    E, h, B, S = 16, 4, 2, 6
    full = attn.MultiheadAttention(E, h, seed=5)
    nys = attn.from_state_dict("mha", full.state_dict(), embed_dim=E, num_heads=h, kind="nystrom",
                               num_landmarks=S, pinv="svd")
    x = rng.standard_normal((B, S, E)).astype(np.float32)
    record_error("MHA nystrom(m=S, svd) vs full", nys(x), full(x), tol=1e-4)
    record_error("MHA nystrom(m=S, svd) matrix vs full", nys.attention_matrix(x), full.attention_matrix(x), tol=1e-4)

    m = attn.MultiheadAttention(E, h, kind="nystrom", num_landmarks=3, conv_kernel=3, seed=6)
    assert (m.num_landmarks, m.pinv, m.pinv_iterations, m.conv_kernel) == (3, "newton", 6, 3)
    assert m.params.shape("res_conv.weight") == (h, 1, 3, 1)
    out = m(x)
    assert out.shape == (B, S, E) and np.isfinite(out).all()
    c = m.cost(B, S)
    assert c.params == sum(a.size for a in m.params.values())
    path = tmp_path / "nys.safetensors"
    m.params.save(path, prefix="layer.attn.")
    opened = attn.open_params(path, prefix="layer.attn.")
    assert list(opened) == list(m.params)
    other = attn.from_state_dict(attn.MultiheadAttention, opened, embed_dim=E, num_heads=h, kind="nystrom",
                                 num_landmarks=3, conv_kernel=3)
    np.testing.assert_array_equal(other(x), out)
    with pytest.raises(attn.ShapeError):
        m(x[:, :2])  # fewer positions than landmarks


def test_option_validation():
    with pytest.raises(attn.InvalidArgument, match="proj_len applies to kind='linformer'"):
        attn.MultiheadAttention(8, 2, proj_len=4)
    with pytest.raises(attn.InvalidArgument, match="needs num_landmarks"):
        attn.MultiheadAttention(8, 2, kind="nystrom")
    with pytest.raises(attn.InvalidArgument, match="kind must be one of"):
        attn.MultiheadAttention(8, 2, kind="performer")
    with pytest.raises(attn.Unsupported, match="add_bias_kv"):
        attn.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    # nn.MultiheadAttention's keyword list passes through (dropout accepted and ignored)
    kw = dict(embed_dim=8, num_heads=2, dropout=0.0, bias=True, kdim=None, vdim=None, batch_first=True)
    assert attn.MultiheadAttention(**kw).kdim == 8
    m = attn.from_torch(nn.MultiheadAttention(8, 2), kind="linformer", max_seq_len=4, proj_len=2)
    assert m.kind == "linformer"
