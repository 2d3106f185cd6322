"""libattn's attention family (attn_mha) against torch.nn.MultiheadAttention and float64 references.

FULL is compared with PyTorch's module run in float64 (weights copied by state_dict name, directly
with attn_params_set and once through a safetensors file). LINFORMER and NYSTROM have no PyTorch
module; they are compared with float64 numpy transcriptions of the equations of docs/attention.md
written here, and with FULL through the invariants that page states. Run by ctest
(tests/python.cmake) with ATTN_LIB naming the library; by hand:
ATTN_LIB=build/libattn.so /usr/bin/python3 test_mha_torch.py
"""

import copy
import itertools
import os
import shutil
import sys
import tempfile
import threading
import unittest

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as e:  # fail loudly: a missing torch must not look like a pass
    print("cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)

import attn_ffi as A

REL_TOL = 1e-5
MODES = {"materialize": A.ATTN_MEMORY_MATERIALIZE, "streaming": A.ATTN_MEMORY_STREAMING,
         "auto": A.ATTN_MEMORY_AUTO}
SHARINGS = {"headwise": A.ATTN_LINFORMER_HEADWISE, "kv": A.ATTN_LINFORMER_KV, "none": A.ATTN_LINFORMER_NONE}
PINVS = {"newton": A.ATTN_PINV_NEWTON, "svd": A.ATTN_PINV_SVD}

# ---- float64 references of docs/attention.md --------------------------------------------------


def numpy_state(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def project(state, e, query, key, value):
    """The in-projections in float64: Q (not yet scaled by 1/sqrt(dh)), K, V, each [B, n, E]."""
    if "in_proj_weight" in state:
        w = state["in_proj_weight"].astype(np.float64)
        wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    else:
        wq, wk, wv = (state[n].astype(np.float64) for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"))
    b = state.get("in_proj_bias")
    b = np.zeros(3 * e) if b is None else b.astype(np.float64)
    f = lambda x, w, bias: np.asarray(x, np.float64) @ w.T + bias
    return f(query, wq, b[:e]), f(key, wk, b[e:2 * e]), f(value, wv, b[2 * e:])


def split_heads(x, h):
    """[B, n, E] -> [B, h, n, dh]."""
    b, n, e = x.shape
    return x.reshape(b, n, h, e // h).transpose(0, 2, 1, 3)


def merge_heads(x):
    """[B, h, n, dh] -> [B, n, E]."""
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def out_project(state, o):
    y = o @ state["out_proj.weight"].astype(np.float64).T
    if "out_proj.bias" in state:
        y = y + state["out_proj.bias"].astype(np.float64)
    return y


def masked_softmax(scores, allowed):
    """softmax over the last axis restricted to `allowed` (broadcast); rows with nothing allowed
    are zeros, the library's rule for fully masked queries."""
    allowed = np.broadcast_to(allowed, scores.shape)
    s = np.where(allowed, scores, -np.inf)
    top = s.max(axis=-1, keepdims=True)
    top = np.where(top == -np.inf, 0.0, top)  # NaN and +Inf stay, and spread to the row (torch.softmax)
    p = np.where(allowed, np.exp(s - top), 0.0)
    total = p.sum(axis=-1, keepdims=True)
    return p / np.where(total == 0, 1.0, total)


def key_allowed(mask, batch, tgt_len, src_len, causal=False):
    """allowed[b, 1, i, j]: key j is visible to query i of batch element b."""
    ok = np.ones((batch, 1, tgt_len, src_len), bool)
    if mask is not None:
        ok &= ~np.asarray(mask, bool)[:, None, None, :]
    if causal:
        ok &= ~np.triu(np.ones((tgt_len, src_len), bool), k=1)[None, None]
    return ok


def full_reference(state, h, query, key, value, mask=None, causal=False):
    """(out [B, L, E], weights [B, h, L, S]) of FULL in float64."""
    e = state["out_proj.weight"].shape[0]
    q, k, v = (split_heads(x, h) for x in project(state, e, query, key, value))
    w = masked_softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(e // h),
                       key_allowed(mask, q.shape[0], q.shape[2], k.shape[2], causal))
    return out_project(state, merge_heads(w @ v)), w


def linformer_reference(state, h, sharing, query, key, value, mask=None):
    """(out, weights) of LINFORMER in float64: masked K, V rows zeroed after the in-projection,
    K~ = E[:, :S] K, V~ = F[:, :S] V, softmax(Q K~^T / sqrt(dh)) V~; weights = softmax(..) F[:, :S]
    with masked columns zero."""
    e = state["out_proj.weight"].shape[0]
    q, k, v = project(state, e, query, key, value)
    s = k.shape[1]
    if mask is not None:
        dead = np.asarray(mask, bool)
        k[dead] = 0.0
        v[dead] = 0.0
    q, k, v = (split_heads(x, h) for x in (q, k, v))
    pe = state["proj_e"].astype(np.float64)
    pf = pe if sharing == "kv" else state["proj_f"].astype(np.float64)
    if sharing != "none":
        pe, pf = pe[None], pf[None]
    pe, pf = pe[..., :s], pf[..., :s]  # [h or 1, k, S]
    kt, vt = pe[None] @ k, pf[None] @ v  # [B, h, k, dh]
    a = masked_softmax(q @ kt.transpose(0, 1, 3, 2) / np.sqrt(e // h), True)
    w = a @ np.broadcast_to(pf[None], (q.shape[0], h) + pf.shape[1:])
    if mask is not None:
        w = np.where(np.asarray(mask, bool)[:, None, None, :], 0.0, w)
    return out_project(state, merge_heads(a @ vt)), w


def segments(n, m):
    """Segment i of n rows in m landmarks: rows floor(i*n/m) .. floor((i+1)*n/m) - 1."""
    return [(i * n // m, (i + 1) * n // m) for i in range(m)]


def segment_means(x, valid, m):
    """x [B, h, n, dh], valid [B, n] -> (landmarks [B, h, m, dh], landmark_valid [B, m]): means of
    the valid rows of each segment; a segment without one gives a zero, invalid landmark."""
    b, hh, n, dh = x.shape
    out = np.zeros((b, hh, m, dh))
    ok = np.zeros((b, m), bool)
    for i, (lo, hi) in enumerate(segments(n, m)):
        w = valid[:, lo:hi].astype(np.float64)  # [B, seg]
        cnt = w.sum(axis=1)
        ok[:, i] = cnt > 0
        # where, not a product with the mask: a masked row must not matter even when it holds NaN
        sums = np.where(valid[:, None, lo:hi, None], x[:, :, lo:hi], 0.0).sum(axis=2)
        out[:, :, i] = sums / np.where(cnt > 0, cnt, 1.0)[:, None, None]
    return out, ok


def newton_pinv(a, iterations):
    """Newton-Schulz iteration of docs/attention.md, per matrix: Z0 = A^T / (|A|_1 |A|_inf),
    Z <- 1/4 Z (13 I - A Z (15 I - A Z (7 I - A Z)))."""
    eye = np.eye(a.shape[-1])
    norm = np.abs(a).sum(axis=-2).max(axis=-1) * np.abs(a).sum(axis=-1).max(axis=-1)
    z = np.swapaxes(a, -1, -2) / np.where(norm == 0, 1.0, norm)[..., None, None]
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def nystrom_reference(state, h, m, pinv, iterations, query, key, value, mask=None):
    """(out, weights A1 pinv(A2) A3, A2, pinv(A2)) of NYSTROM in float64. The key padding mask
    also leaves positions out of the query landmarks when L == S (the implementation's documented
    choice, src/attention/nystrom.c: the mask then marks padded queries too, as the reference
    multiplies Q and K by the mask); a masked query landmark has zero rows in A2 and A3."""
    e = state["out_proj.weight"].shape[0]
    scale = 1.0 / np.sqrt(e // h)
    q, k, v = (split_heads(x, h) for x in project(state, e, query, key, value))
    b, _, l, _ = q.shape
    s = k.shape[2]
    kvalid = np.ones((b, s), bool) if mask is None else ~np.asarray(mask, bool)
    qvalid = kvalid if l == s else np.ones((b, l), bool)
    v = np.where(kvalid[:, None, :, None], v, 0.0)  # masked positions never matter, even NaN
    ql, qok = segment_means(q, qvalid, m)
    kl, kok = segment_means(k, kvalid, m)
    a1 = masked_softmax(scale * q @ kl.transpose(0, 1, 3, 2), kok[:, None, None, :])
    a2 = masked_softmax(scale * ql @ kl.transpose(0, 1, 3, 2), kok[:, None, None, :] & qok[:, None, :, None])
    a3 = masked_softmax(scale * ql @ k.transpose(0, 1, 3, 2), kvalid[:, None, None, :] & qok[:, None, :, None])
    z = np.linalg.pinv(a2) if pinv == "svd" else newton_pinv(a2, iterations)
    o = a1 @ (z @ (a3 @ v))
    if "res_conv.weight" in state:
        o = o + depthwise_conv(state["res_conv.weight"].astype(np.float64), v)
    return out_project(state, merge_heads(o)), a1 @ z @ a3, a2, z


def depthwise_conv(weight, v):
    """nn.Conv2d(h, h, (K, 1), padding=(K // 2, 0), groups=h, bias=False) on v [B, h, n, dh]."""
    kk = weight.shape[2]
    pad = kk // 2
    n = v.shape[2]
    vp = np.pad(v, ((0, 0), (0, 0), (pad, pad), (0, 0)))
    out = np.zeros_like(v)
    for t in range(kk):
        out += weight[None, :, 0, t, 0, None, None] * vp[:, :, t:t + n]
    return out


# ---- shared test machinery --------------------------------------------------------------------


def random_state(shapes, rng, proj_len=None):
    """Random tensors for every name in `shapes`: weights on PyTorch's scale, biases and the
    Linformer/Nystrom tensors nonzero so that each one matters."""
    out = {}
    for name, shape in shapes.items():
        if name.endswith("bias"):
            a = 0.3 * rng.standard_normal(shape)
        elif name in ("proj_e", "proj_f"):
            a = rng.standard_normal(shape) / np.sqrt(proj_len)
        elif name == "res_conv.weight":
            a = rng.uniform(-1, 1, shape) / np.sqrt(shape[2])
        else:
            a = rng.uniform(-1, 1, shape) * np.sqrt(6.0 / (shape[0] + shape[-1]))
        out[name] = a.astype(np.float32)
    return out


def inputs(rng, batch, tgt_len, src_len, e, kdim, vdim, scale=2.0, self_attn=False):
    q = (scale * rng.standard_normal((batch, tgt_len, e))).astype(np.float32)
    if self_attn:
        return q, q, q
    k = (scale * rng.standard_normal((batch, src_len, kdim))).astype(np.float32)
    v = (scale * rng.standard_normal((batch, src_len, vdim))).astype(np.float32)
    return q, k, v


def make_mask(rng, kind, batch, src_len):
    """None, "random" (~30% of keys, at least one visible per element), "dead" (random, and
    batch element 1 (or 0 when batch = 1) has every key masked) or "blocks" (long runs, so that
    whole key tiles are hidden: element 0 the first 70% of the keys, the others the last 40%)."""
    if kind is None:
        return None
    if kind == "blocks":
        mask = np.zeros((batch, src_len), bool)
        mask[0, :src_len * 7 // 10] = True
        mask[1:, src_len * 6 // 10:] = True
        return mask
    mask = rng.random((batch, src_len)) < 0.3
    for b in range(batch):
        if mask[b].all():
            mask[b, rng.integers(src_len)] = False
    if kind == "dead":
        mask[min(1, batch - 1)] = True
    return mask


class MhaTestCase(unittest.TestCase):
    tmp = None

    def tearDown(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        if not self.tmp:
            self.tmp = tempfile.mkdtemp(prefix="attn_mha_torch_", dir=os.environ.get("ATTN_TEST_TMPDIR"))
        return os.path.join(self.tmp, name)

    def assert_close(self, got, ref, what, rel=REL_TOL):
        self.assertEqual(got.shape, ref.shape, what)
        self.assertTrue(np.all(np.isfinite(got)), "%s: non-finite values" % what)
        self.assertTrue(np.all(np.isfinite(ref)), "%s: non-finite reference" % what)
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
        tol = rel * max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
        where = np.unravel_index(np.argmax(np.abs(got.astype(np.float64) - ref)), ref.shape) if ref.size else ()
        self.assertLessEqual(err, tol, "%s: max|libattn - reference| = %.3g > %.3g (at %s)" % (what, err, tol, where))

    def assert_status(self, status, fn, *args, **kwargs):
        with self.assertRaises(A.AttnError) as ctx:
            fn(*args, **kwargs)
        self.assertEqual(ctx.exception.status, status, ctx.exception.message)
        return ctx.exception.message


# ---- FULL against torch.nn.MultiheadAttention --------------------------------------------------


def make_module(e, h, kdim=None, vdim=None, bias=True, seed=0):
    """A float32 module with every parameter random (biases included, so that bias-only outputs
    and the bias placement are checked)."""
    torch.manual_seed(seed)
    module = nn.MultiheadAttention(e, h, bias=bias, batch_first=True, kdim=kdim, vdim=vdim)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
    return module


def torch_reference(module, query, key, value, mask=None, causal=False):
    """(out [B, L, E], weights [B, h, L, S]) of the module run in float64 (training mode, so the
    plain path is taken; dropout is 0). Rows whose keys are all masked are NaN in PyTorch 1.13;
    they are replaced by the library's documented result: out_proj.bias (zeros before the
    out-projection) and zero weights."""
    m = copy.deepcopy(module).double()
    t = lambda a: torch.from_numpy(np.asarray(a, np.float64))
    l, s = query.shape[1], key.shape[1]
    kw = dict(need_weights=True, average_attn_weights=False)
    if mask is not None:
        kw["key_padding_mask"] = torch.from_numpy(np.asarray(mask, bool))
    if causal:
        kw["attn_mask"] = torch.triu(torch.ones(l, s, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        out, w = m(t(query), t(key), t(value), **kw)
    out, w = out.numpy().copy(), w.numpy().copy()
    dead = ~key_allowed(mask, query.shape[0], l, s, causal).any(axis=-1)[:, 0]  # [B, L]
    if dead.any():
        bias = module.out_proj.bias
        out[dead] = 0.0 if bias is None else bias.detach().double().numpy()
        w[np.broadcast_to(dead[:, None, :], w.shape[:3])] = 0.0
    return out, w


def make_full(module, memory_mode=A.ATTN_MEMORY_AUTO, causal=False, **extra):
    mha = A.Mha(kind=A.ATTN_MHA_FULL, embed_dim=module.embed_dim, num_heads=module.num_heads,
                kdim=module.kdim, vdim=module.vdim, bias=module.out_proj.bias is not None,
                causal=causal, memory_mode=memory_mode, **extra)
    mha.params.set_all(numpy_state(module))
    return mha


# name: (E, h, kdim, vdim, bias, batch, L, S, self-attention, mask, causal)
FULL_CASES = {
    "self_E12h3_B1_L7": (12, 3, None, None, True, 1, 7, 7, True, None, False),
    "self_E30h5_B3_L300_nobias": (30, 5, None, None, False, 3, 300, 300, True, None, False),
    "self_E30h5_B2_L1029": (30, 5, None, None, True, 2, 1029, 1029, True, None, False),
    "self_E64h1_B1_L1029": (64, 1, None, None, True, 1, 1029, 1029, True, None, False),
    "self_E32h32_dh1_B2_L33": (32, 32, None, None, True, 2, 33, 33, True, None, False),
    "self_L1": (12, 3, None, None, True, 2, 1, 1, True, None, False),
    "cross_E12h3_B2_L7_S300": (12, 3, None, None, True, 2, 7, 300, False, None, False),
    "cross_E30h5_B2_L300_S1029": (30, 5, None, None, True, 2, 300, 1029, False, None, False),
    "cross_L1_S1029": (30, 5, None, None, True, 3, 1, 1029, False, None, False),
    "cross_L300_S1": (12, 3, None, None, True, 2, 300, 1, False, None, False),
    "kdim5_vdim9": (12, 3, 5, 9, True, 2, 7, 300, False, None, False),
    "kdim20_vdim20_nobias": (30, 5, 20, 20, False, 2, 300, 7, False, None, False),
    "kdim40_vdim3_S1029": (30, 5, 40, 3, True, 1, 64, 1029, False, None, False),
    "mask_self_B3_L300": (30, 5, None, None, True, 3, 300, 300, True, "random", False),
    "mask_dead_B3_L7_S1029": (12, 3, None, None, True, 3, 7, 1029, False, "dead", False),
    "mask_dead_B2_L300_nobias": (30, 5, None, None, False, 2, 300, 300, True, "dead", False),
    "mask_dead_B1_L5_S1": (12, 3, None, None, True, 1, 5, 1, False, "dead", False),
    "mask_kdim5_vdim9": (12, 3, 5, 9, True, 3, 33, 300, False, "dead", False),
    "mask_blocks_B2_L300_S1029": (30, 5, None, None, True, 2, 300, 1029, False, "blocks", False),
    "causal_self_B2_L300": (30, 5, None, None, True, 2, 300, 300, True, None, True),
    "causal_self_B1_L1029": (12, 3, None, None, True, 1, 1029, 1029, True, None, True),
    "causal_cross_L7_S300": (12, 3, None, None, True, 2, 7, 300, False, None, True),
    "causal_cross_L300_S7": (12, 3, None, None, True, 2, 300, 7, False, None, True),
    "causal_L1": (12, 3, None, None, True, 2, 1, 1, True, None, True),
    "causal_mask_dead_B3_L33": (30, 5, None, None, True, 3, 33, 300, False, "dead", True),
    "causal_mask_blocks_B2_L1029": (12, 3, None, None, True, 2, 1029, 1029, True, "blocks", True),
    "causal_mask_first_key": (12, 3, None, None, True, 2, 9, 9, True, "first", True),
}


class TestFullVsTorch(MhaTestCase):
    def check_full(self, e, h, kdim, vdim, bias, batch, l, s, self_attn, mask_kind, causal, mode, seed):
        module = make_module(e, h, kdim, vdim, bias, seed)
        rng = np.random.default_rng(seed)
        q, k, v = inputs(rng, batch, l, s, e, module.kdim, module.vdim, self_attn=self_attn)
        if mask_kind == "first":  # causal with key 0 masked: query 0 of element 0 sees nothing
            mask = np.zeros((batch, s), bool)
            mask[0, 0] = True
        else:
            mask = make_mask(rng, mask_kind, batch, s)
        ref_out, ref_w = torch_reference(module, q, k, v, mask, causal)
        with make_full(module, mode, causal) as mha:
            self.assertEqual(mha.params.shapes(), {n: tuple(t.shape) for n, t in module.state_dict().items()})
            self.assert_close(mha.forward(q, k, v, mask), ref_out, "forward")
            w = mha.attention_matrix(q, k, v, mask)
            self.assert_close(w, ref_w, "attention_matrix")
            dead = ~key_allowed(mask, batch, l, s, causal).any(axis=-1)  # [B, 1, L]
            sums = w.astype(np.float64).sum(axis=-1)
            self.assert_close(sums, np.where(dead, 0.0, 1.0) * np.ones_like(sums), "attention_matrix row sums")


def _add_full_cases():
    for seed, ((name, case), (mode_name, mode)) in enumerate(itertools.product(FULL_CASES.items(), MODES.items())):
        setattr(TestFullVsTorch, "test_%s_%s" % (name, mode_name),
                lambda self, c=case, m=mode, sd=seed: self.check_full(*c, m, sd))


_add_full_cases()


class TestFullDetails(MhaTestCase):
    def test_attention_matrix_times_v_is_forward(self):
        # out = concat_h(W_h V_h) out_proj^T + b with W from attention_matrix and V_h from a float64
        # in-projection: the matrix is exactly what forward applies.
        for causal, mask_kind in ((False, None), (False, "dead"), (True, "random")):
            module = make_module(30, 5, 11, 13, True, seed=3)
            rng = np.random.default_rng(5)
            q, k, v = inputs(rng, 3, 40, 77, 30, 11, 13)
            mask = make_mask(rng, mask_kind, 3, 77)
            with make_full(module, causal=causal) as mha:
                w = mha.attention_matrix(q, k, v, mask).astype(np.float64)
                state = numpy_state(module)
                _, _, vp = project(state, 30, q, k, v)
                rebuilt = out_project(state, merge_heads(w @ split_heads(vp, 5)))
                self.assert_close(mha.forward(q, k, v, mask), rebuilt, "causal=%s mask=%s" % (causal, mask_kind))

    def test_dead_batch_element_is_bias_and_others_unchanged(self):
        # A fully masked element gives out_proj.bias in every row and leaves the other elements
        # exactly as they are without it.
        module = make_module(12, 3, seed=4)
        rng = np.random.default_rng(4)
        q, k, v = inputs(rng, 3, 9, 50, 12, 12, 12)
        mask = make_mask(rng, "random", 3, 50)
        dead = mask.copy()
        dead[1] = True
        for mode in MODES.values():
            with make_full(module, mode) as mha:
                alive = mha.forward(q, k, v, mask)
                out = mha.forward(q, k, v, dead)
                bias = module.out_proj.bias.detach().numpy()
                np.testing.assert_array_equal(out[1], np.broadcast_to(bias, out[1].shape))
                np.testing.assert_array_equal(out[[0, 2]], alive[[0, 2]])
                np.testing.assert_array_equal(mha.attention_matrix(q, k, v, dead)[1], 0.0)

    def test_modes_agree_and_workspace_reuse_is_bitwise_equal(self):
        module = make_module(30, 5, seed=6)
        rng = np.random.default_rng(6)
        with A.Workspace() as ws:
            for mode in MODES.values():
                with make_full(module, mode) as mha:
                    # A large call first, then smaller ones reuse (and must not be disturbed by) its memory.
                    for batch, l, s in ((2, 300, 1029), (1, 3, 5), (3, 64, 100)):
                        q, k, v = inputs(rng, batch, l, s, 30, 30, 30)
                        mask = make_mask(rng, "dead", batch, s)
                        np.testing.assert_array_equal(mha.forward(q, k, v, mask), mha.forward(q, k, v, mask, ws=ws))
            self.assertGreater(ws.size(), 0)

    def test_concurrent_forwards_on_one_handle(self):
        # attention.h: forward is thread-safe on a const handle with one workspace per thread (or
        # NULL). ctypes releases the GIL during the calls, so they really overlap.
        rng = np.random.default_rng(9)
        handles = [
            dict(kind=A.ATTN_MHA_FULL, embed_dim=30, num_heads=5, memory_mode=A.ATTN_MEMORY_MATERIALIZE),
            dict(kind=A.ATTN_MHA_FULL, embed_dim=30, num_heads=5, memory_mode=A.ATTN_MEMORY_STREAMING),
            dict(kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=16, max_seq_len=700),
            dict(kind=A.ATTN_MHA_NYSTROM, embed_dim=30, num_heads=5, num_landmarks=8, conv_kernel=3),
        ]
        for opts in handles:
            mha, _ = make_kind(rng, **opts)
            with mha:
                work = []
                for i in range(4):
                    q, k, v = inputs(rng, 2, 600, 600, 30, 30, 30, self_attn=i % 2 == 0)
                    work.append((q, k, v, make_mask(rng, "random", 2, 600)))
                serial = [mha.forward(*w) for w in work]
                results = [None] * len(work)

                def worker(i):
                    with A.Workspace() as ws:
                        for _ in range(3):
                            results[i] = mha.forward(*work[i], ws=ws if i % 2 else None)

                threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(work))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for i, (a, b) in enumerate(zip(serial, results)):
                    np.testing.assert_array_equal(a, b, "kind %d, thread %d" % (opts["kind"], i))

    def test_safetensors_load(self):
        # The state_dict written to a safetensors file (F32, then F64) and loaded by name.
        module = make_module(30, 5, 20, 7, seed=8)
        state = numpy_state(module)
        rng = np.random.default_rng(8)
        q, k, v = inputs(rng, 2, 33, 65, 30, 20, 7)
        mask = make_mask(rng, "dead", 2, 65)
        ref, _ = torch_reference(module, q, k, v, mask)
        for dtype in (np.float32, np.float64):
            path = self.path("mha_%s.safetensors" % np.dtype(dtype).name)
            A.write_safetensors(path, {n: a.astype(dtype) for n, a in state.items()})
            with A.Mha(embed_dim=30, num_heads=5, kdim=20, vdim=7) as mha:
                mha.params.load(path, None, A.ATTN_LOAD_REJECT_UNKNOWN)
                self.assert_close(mha.forward(q, k, v, mask), ref, "loaded from %s" % path)

    def test_default_init_matches_torch_laws(self):
        # attn_params_init(params, 0) at create: zero biases, in-projections inside xavier_uniform's bound.
        with A.Mha(embed_dim=30, num_heads=5) as mha:
            s = mha.params.state_dict()
            np.testing.assert_array_equal(s["in_proj_bias"], 0.0)
            np.testing.assert_array_equal(s["out_proj.bias"], 0.0)
            self.assertLessEqual(float(np.abs(s["in_proj_weight"]).max()), np.sqrt(6.0 / (30 + 90)) * (1 + 1e-6))
            self.assertGreater(float(np.abs(s["in_proj_weight"]).max()), 0.0)


# ---- non-finite inputs: PyTorch's NaN pattern ---------------------------------------------------


class TestNonFinite(MhaTestCase):
    """attention.h: NaN and +-Inf in inputs propagate as PyTorch propagates them: the outputs that
    are NaN are exactly those the reference (nn.MultiheadAttention for FULL; the float64 equations,
    whose softmax is torch.softmax's, for LINFORMER and NYSTROM) gives as NaN, and the others agree
    as usual."""
    E, H, B, L, S = 12, 3, 2, 9, 40
    POISONS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}
    # where the poison goes: (tensor, batch element, row); "masked_*" rows are masked keys
    PLACES = {"query": ("q", 0, 3), "key": ("k", 1, 5), "value": ("v", 0, 2), "masked_key": ("k", 1, 7),
              "masked_value": ("v", 1, 7)}

    def assert_same_nan(self, got, ref, what):
        self.assertEqual(got.shape, ref.shape, what)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), "%s: NaN pattern" % what)
        keep = ~np.isnan(ref)
        self.assert_close(np.where(keep, got, 0.0), np.where(keep, ref, 0.0), what)

    def check(self, mha, what, q, k, v, mask, ref_out, ref_w):
        # The setup reaches the outputs: a poison in a visible query or key makes part of both NaN,
        # one in a visible value part of the output.
        place = what.split(" in ")[1].split(",")[0]
        # (PyTorch adds -inf to a masked key's score, so a NaN there spreads, and multiplies its
        # value by a zero weight; LINFORMER and NYSTROM zero masked positions: they never matter.)
        spreads = "masked" not in place or self.full
        self.assertEqual(bool(np.isnan(ref_out).any()), spreads, "test setup: " + what)
        self.assertEqual(bool(np.isnan(ref_w).any()), place in ("query", "key") or self.full and place == "masked_key",
                         "test setup: " + what)
        self.assert_same_nan(mha.forward(q, k, v, mask), ref_out, what + " forward")
        self.assert_same_nan(mha.attention_matrix(q, k, v, mask), ref_w, what + " attention_matrix")

    def cases(self, seed):
        """(what, q, k, v, mask) for every poison and place, on one set of inputs."""
        rng = np.random.default_rng(seed)
        q, k, v = inputs(rng, self.B, self.L, self.S, self.E, self.E, self.E)
        mask = np.zeros((self.B, self.S), bool)
        mask[1, 7] = True
        for (pname, poison), (place, (which, b, row)) in itertools.product(self.POISONS.items(), self.PLACES.items()):
            t = {"q": q.copy(), "k": k.copy(), "v": v.copy()}
            t[which][b, row, 1] = poison
            yield "%s in %s" % (pname, place), t["q"], t["k"], t["v"], mask

    full = False

    def test_full(self):
        self.full = True
        module = make_module(self.E, self.H, seed=21)
        for mode_name, mode in MODES.items():
            with make_full(module, mode) as mha:
                for what, q, k, v, mask in self.cases(21):
                    self.check(mha, "%s, %s" % (what, mode_name), q, k, v, mask, *torch_reference(module, q, k, v, mask))

    def test_linformer(self):
        rng = np.random.default_rng(22)
        for sharing in SHARINGS:
            mha, state = make_kind(rng, kind=A.ATTN_MHA_LINFORMER, embed_dim=self.E, num_heads=self.H, proj_len=8,
                                   max_seq_len=self.S, sharing=SHARINGS[sharing])
            with mha:
                for what, q, k, v, mask in self.cases(22):
                    self.check(mha, "%s, %s" % (what, sharing), q, k, v, mask,
                               *linformer_reference(state, self.H, sharing, q, k, v, mask))

    def test_nystrom(self):
        rng = np.random.default_rng(23)
        mha, state = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=self.E, num_heads=self.H, num_landmarks=4)
        with mha:
            for what, q, k, v, mask in self.cases(23):
                self.check(mha, what, q, k, v, mask, *nystrom_reference(state, self.H, 4, "newton", 6, q, k, v, mask)[:2])
        # The SVD cannot take a non-finite matrix: ATTN_E_NUMERICAL, as attention.h documents.
        mha, state = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=self.E, num_heads=self.H, num_landmarks=4,
                               pinv=A.ATTN_PINV_SVD)
        with mha:
            for what, q, k, v, mask in self.cases(24):
                if "masked" not in what and "value" not in what:
                    self.assert_status(A.ATTN_E_NUMERICAL, mha.forward, q, k, v, mask)


# ---- LINFORMER against the float64 equations ---------------------------------------------------


def make_kind(rng, **options):
    """A handle with random parameters; returns (handle, state)."""
    mha = A.Mha(**options)
    state = random_state(mha.params.shapes(), rng, options.get("proj_len"))
    mha.params.set_all(state)
    return mha, state


class TestLinformer(MhaTestCase):
    def check_case(self, sharing, e, h, kdim, vdim, k, max_len, batch, l, s, self_attn, mask_kind, seed):
        rng = np.random.default_rng(seed)
        mha, state = make_kind(rng, kind=A.ATTN_MHA_LINFORMER, embed_dim=e, num_heads=h, kdim=kdim or 0,
                               vdim=vdim or 0, proj_len=k, max_seq_len=max_len, sharing=SHARINGS[sharing])
        with mha:
            shapes = mha.params.shapes()
            dims = (h, k, max_len) if sharing == "none" else (k, max_len)
            self.assertEqual(shapes["proj_e"], dims)
            self.assertEqual(shapes.get("proj_f"), None if sharing == "kv" else dims)
            q, kk, v = inputs(rng, batch, l, s, e, kdim or e, vdim or e, self_attn=self_attn)
            mask = make_mask(rng, mask_kind, batch, s)
            ref_out, ref_w = linformer_reference(state, h, sharing, q, kk, v, mask)
            self.assert_close(mha.forward(q, kk, v, mask), ref_out, "forward")
            self.assert_close(mha.attention_matrix(q, kk, v, mask), ref_w, "attention_matrix")

    def test_identity_projections_equal_full(self):
        # k = S, proj_e = proj_f = I (the first S columns when max_seq_len > S): Linformer is FULL.
        # Without masks: a zeroed key row still scores 0 where FULL excludes the key.
        rng = np.random.default_rng(11)
        for sharing in SHARINGS:
            for s, max_len in ((37, 37), (20, 50)):
                module = make_module(30, 5, seed=s)
                state = numpy_state(module)
                mha = A.Mha(kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=s, max_seq_len=max_len,
                            sharing=SHARINGS[sharing])
                with mha, make_full(module) as full:
                    mha.params.set_all(state)
                    eye = np.eye(s, max_len, dtype=np.float32)
                    for name, shape in mha.params.shapes().items():
                        if name in ("proj_e", "proj_f"):
                            mha.params.set(name, np.broadcast_to(eye, shape))
                    q, k, v = inputs(rng, 2, 13, s, 30, 30, 30)
                    ref, _ = torch_reference(module, q, k, v)
                    self.assert_close(mha.forward(q, k, v), ref, "%s S=%d vs torch" % (sharing, s))
                    self.assert_close(mha.forward(q, k, v).astype(np.float64), full.forward(q, k, v).astype(np.float64),
                                      "%s S=%d vs FULL" % (sharing, s))

    def test_long_query_sequence(self):
        # More query rows than the implementation's blocks (65536 / k rows), forward only.
        rng = np.random.default_rng(13)
        for sharing in SHARINGS:
            mha, state = make_kind(rng, kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=16,
                                   max_seq_len=700, sharing=SHARINGS[sharing])
            with mha:
                q, k, v = inputs(rng, 2, 5000, 600, 30, 30, 30)
                mask = make_mask(rng, "blocks", 2, 600)
                ref, _ = linformer_reference(state, 5, sharing, q, k, v, mask)
                self.assert_close(mha.forward(q, k, v, mask), ref, sharing)

    def test_longer_than_max_seq_len_is_shape_error(self):
        rng = np.random.default_rng(12)
        mha, _ = make_kind(rng, kind=A.ATTN_MHA_LINFORMER, embed_dim=12, num_heads=3, proj_len=4, max_seq_len=10)
        with mha:
            q, k, v = inputs(rng, 1, 5, 11, 12, 12, 12)
            out = np.full((1, 5, 12), 7.0, np.float32)
            st = A.lib.attn_mha_forward(mha.ptr, None, 1, 5, 11, A.fptr(q), A.fptr(k), A.fptr(v), None, A.fptr(out))
            self.assertEqual(st, A.ATTN_E_SHAPE)
            self.assertIn("attn_mha_forward", A.last_error())
            np.testing.assert_array_equal(out, 7.0)  # a failed call leaves the output alone
            self.assert_status(A.ATTN_E_SHAPE, mha.attention_matrix, q, k, v)
            self.assert_status(A.ATTN_E_SHAPE, mha.cost, 1, 5, 11)
            mha.forward(q, k[:, :10], v[:, :10])  # S = max_seq_len is fine

    def test_causal_is_unsupported(self):
        msg = self.assert_status(A.ATTN_E_UNSUPPORTED, A.Mha, kind=A.ATTN_MHA_LINFORMER, embed_dim=12, num_heads=3,
                                 proj_len=4, max_seq_len=10, causal=True)
        self.assertIn("attn_mha_create", msg)


def _add_linformer_cases():
    # (E, h, kdim, vdim, k, max_seq_len, batch, L, S, self, mask)
    shapes = {
        "self_S_lt_max": (12, 3, None, None, 8, 64, 2, 37, 37, True, None),
        "self_S_eq_max": (12, 3, None, None, 8, 37, 2, 37, 37, True, None),
        "cross_L300_S129_mask": (30, 5, None, None, 16, 300, 3, 300, 129, False, "random"),
        "cross_dead": (30, 5, None, None, 7, 50, 3, 9, 50, False, "dead"),
        "k_gt_S": (12, 3, None, None, 40, 64, 2, 5, 9, False, "random"),
        "kdim5_vdim9_S1": (12, 3, 5, 9, 8, 16, 2, 7, 1, False, None),
        "L1_mask": (30, 5, 11, 13, 8, 100, 2, 1, 77, False, "random"),
    }
    for seed, (sharing, (name, case)) in enumerate(itertools.product(SHARINGS, shapes.items())):
        setattr(TestLinformer, "test_%s_%s" % (sharing, name),
                lambda self, sh=sharing, c=case, sd=seed: self.check_case(sh, *c, sd))


_add_linformer_cases()


# ---- NYSTROM against the float64 equations -----------------------------------------------------

def segment_inputs(rng, batch, l, s, e, m, self_attn, scale=2.0, noise=0.3):
    """Sequences made of m segments (the landmark segments), each around its own random center:
    with W_k = W_q, landmark i of Q and of K then point the same way and A2 = softmax(Q~ K~^T) has
    a dominant diagonal. Generic inputs give A2 condition numbers of 1e4 and more, where no float32
    pseudo-inverse (the library's or any other) is accurate to 1e-5."""
    centers = rng.standard_normal((batch, m, e))

    def sequence(n):
        seg = np.repeat(np.arange(m), [hi - lo for lo, hi in segments(n, m)])
        return (scale * (centers[:, seg] + noise * rng.standard_normal((batch, n, e)))).astype(np.float32)

    q = sequence(l)
    if self_attn:
        return q, q, q
    return q, sequence(s), (scale * rng.standard_normal((batch, s, e))).astype(np.float32)


def tie_qk(mha, state):
    """W_k = W_q (packed in_proj_weight) in the handle and in `state`."""
    e = mha.options.embed_dim
    w = state["in_proj_weight"].copy()
    w[e:2 * e] = w[:e]
    state["in_proj_weight"] = w
    mha.params.set("in_proj_weight", w)


def pinv_condition(a):
    """Largest ratio of the largest to the smallest nonzero singular value over the matrices of
    `a`: the conditioning the pseudo-inverse sees (masked landmarks give exact zero columns)."""
    sv = np.linalg.svd(a, compute_uv=False)
    top = sv[..., :1]
    low = np.where(sv > 1e-10 * top, sv, np.inf).min(axis=-1)
    return float(np.max(top[..., 0] / low))


class TestNystrom(MhaTestCase):
    def landmark_case(self, pinv, e, h, m, conv, batch, l, s, self_attn, seed, iterations=6):
        """(handle, state, q, k, v) with tied Q/K weights and segment-structured inputs."""
        rng = np.random.default_rng(seed)
        mha, state = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=e, num_heads=h, num_landmarks=m,
                               pinv=PINVS[pinv], pinv_iterations=iterations, conv_kernel=conv)
        tie_qk(mha, state)
        return (mha, state, rng) + segment_inputs(rng, batch, l, s, e, m, self_attn)

    def compare(self, mha, state, pinv, iterations, q, k, v, mask, what):
        h, m = mha.options.num_heads, mha.options.num_landmarks
        ref_out, ref_w, a2, _ = nystrom_reference(state, h, m, pinv, iterations, q, k, v, mask)
        self.assertLess(pinv_condition(a2), 100.0, "test setup: A2 is not well conditioned")
        self.assert_close(mha.forward(q, k, v, mask), ref_out, what + " forward")
        self.assert_close(mha.attention_matrix(q, k, v, mask), ref_w, what + " attention_matrix")

    def check_case(self, pinv, e, h, m, conv, batch, l, s, self_attn, mask_kind, seed):
        mha, state, rng, q, k, v = self.landmark_case(pinv, e, h, m, conv, batch, l, s, self_attn, seed)
        with mha:
            if conv:
                self.assertEqual(mha.params.shapes()["res_conv.weight"], (h, 1, conv, 1))
            else:
                self.assertNotIn("res_conv.weight", mha.params.names())
            self.compare(mha, state, pinv, 6, q, k, v, make_mask(rng, mask_kind, batch, s), "")

    def test_empty_segment_landmark_is_masked(self):
        # Keys 0..9 of element 0 masked with S = 40, m = 4: segment 0 is empty, so landmark 0 is
        # masked; keys 10..39 still define the rest. Element 1 unmasked.
        for pinv in PINVS:
            mha, state, _, q, k, v = self.landmark_case(pinv, 30, 5, 4, 0, 2, 40, 40, False, 21)
            with mha:
                mask = np.zeros((2, 40), bool)
                mask[0, :10] = True
                mask[0, 23] = True
                self.compare(mha, state, pinv, 6, q, k, v, mask, pinv)

    def test_long_sequences_forward(self):
        # Longer than the implementation's query blocks (65536 / m rows of A1), forward only (the
        # attention matrix would be L x S).
        for pinv in PINVS:
            mha, state, rng, q, k, v = self.landmark_case(pinv, 32, 2, 8, 5, 1, 8500, 8500, True, 40)
            with mha:
                mask = make_mask(rng, "random", 1, 8500)
                ref, _, a2, _ = nystrom_reference(state, 2, 8, pinv, 6, q, k, v, mask)
                self.assertLess(pinv_condition(a2), 100.0, "test setup: A2 is not well conditioned")
                self.assert_close(mha.forward(q, k, v, mask), ref, pinv)

    def test_newton_before_convergence(self):
        # 1 to 3 steps are far from pinv(A2): the result then depends on Z0's per-matrix scaling
        # and on each step's polynomial exactly as docs/attention.md writes them.
        for iterations in (1, 2, 3):
            mha, state, rng, q, k, v = self.landmark_case("newton", 30, 5, 7, 0, 3, 61, 61, True, 30 + iterations,
                                                          iterations)
            with mha:
                mask = make_mask(rng, "random", 3, 61)
                ref_n, _, _, _ = nystrom_reference(state, 5, 7, "newton", iterations, q, k, v, mask)
                ref_s, _, _, _ = nystrom_reference(state, 5, 7, "svd", 0, q, k, v, mask)
                self.assertGreater(np.abs(ref_n - ref_s).max(), 1e-3, "test setup: already converged")
                self.compare(mha, state, "newton", iterations, q, k, v, mask, "%d iterations" % iterations)

    @staticmethod
    def separated_case(n, seed):
        """A FULL module and self-attention inputs whose softmax matrix is well conditioned: W_k = W_q
        and dh = 16 make Q K^T Gram-like with a dominant diagonal (cond(A) < 10 in float64 for
        n <= 16), so float32 pseudo-inverses stay accurate to ~1e-6."""
        module = make_module(32, 2, seed=seed)
        with torch.no_grad():
            module.in_proj_weight[32:64] = module.in_proj_weight[:32]
        rng = np.random.default_rng(seed)
        return module, rng, inputs(rng, 2, n, n, 32, 32, 32, scale=2.0, self_attn=True)

    def test_m_equals_n_svd_equals_full(self):
        # m = L = S: every segment is one row, so A1 = A2 = A3 = softmax(Q K^T) = A and
        # A1 pinv(A2) A3 = A (masked keys are masked landmarks: zero columns of A, which the
        # Moore-Penrose inverse handles).
        for n, mask_kind in ((6, None), (10, None), (16, None), (10, "random"), (16, "dead")):
            module, rng, (q, k, v) = self.separated_case(n, n)
            mask = make_mask(rng, mask_kind, 2, n)
            ref, ref_w = torch_reference(module, q, k, v, mask)
            _, _, a2, _ = nystrom_reference(numpy_state(module), 2, n, "svd", 0, q, k, v)
            self.assertLess(np.linalg.cond(a2).max(), 10.0, "test setup: A is not well conditioned")
            with A.Mha(kind=A.ATTN_MHA_NYSTROM, embed_dim=32, num_heads=2, num_landmarks=n,
                       pinv=A.ATTN_PINV_SVD) as mha:
                mha.params.set_all(numpy_state(module))
                what = "n=%d mask=%s" % (n, mask_kind)
                self.assert_close(mha.forward(q, k, v, mask), ref, "forward " + what)
                self.assert_close(mha.attention_matrix(q, k, v, mask), ref_w, "attention_matrix " + what)

    def test_newton_converges_on_softmax_matrices(self):
        # With m = L = S the attention matrix is A2 Z A2 (A2 = A, FULL's matrix), so its distance to
        # torch's weights is ||A2 Z A2 - A2||, the convergence of the Newton iteration. The float64
        # reference first shows the iteration count suffices for these matrices.
        for n, iterations in ((6, 6), (10, 6), (16, 8)):
            module, rng, (q, k, v) = self.separated_case(n, n)
            _, _, a2, z = nystrom_reference(numpy_state(module), 2, n, "newton", iterations, q, k, v)
            self.assertLess(np.abs(a2 @ z @ a2 - a2).max(), 1e-6, "test setup: float64 Newton residual")
            ref, ref_w = torch_reference(module, q, k, v)
            with A.Mha(kind=A.ATTN_MHA_NYSTROM, embed_dim=32, num_heads=2, num_landmarks=n,
                       pinv=A.ATTN_PINV_NEWTON, pinv_iterations=iterations) as mha:
                mha.params.set_all(numpy_state(module))
                self.assert_close(mha.attention_matrix(q, k, v), ref_w, "||A2 Z A2 - A2||, n=%d" % n)
                self.assert_close(mha.forward(q, k, v), ref, "forward n=%d" % n)

    def test_newton_matches_svd_when_converged(self):
        # m < n on scores large enough that A2 is moderately conditioned (cond ~ 100): 20 Newton
        # steps reach the SVD pseudo-inverse (float64 residual checked first).
        rng = np.random.default_rng(23)
        mha_n, state = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=16, num_heads=2, num_landmarks=8,
                                 pinv=A.ATTN_PINV_NEWTON, pinv_iterations=20)
        with mha_n, A.Mha(kind=A.ATTN_MHA_NYSTROM, embed_dim=16, num_heads=2, num_landmarks=8,
                          pinv=A.ATTN_PINV_SVD) as mha_s:
            mha_s.params.set_all(state)
            q = (6.0 * rng.standard_normal((2, 64, 16))).astype(np.float32)
            _, _, a2, z = nystrom_reference(state, 2, 8, "newton", 20, q, q, q)
            self.assertLess(np.abs(a2 @ z @ a2 - a2).max(), 1e-6, "test setup: float64 Newton residual")
            self.assert_close(mha_n.attention_matrix(q), mha_s.attention_matrix(q).astype(np.float64),
                              "NEWTON vs SVD attention_matrix", 1e-4)
            self.assert_close(mha_n.forward(q), mha_s.forward(q).astype(np.float64), "NEWTON vs SVD forward", 1e-4)

    def test_dead_batch_element_is_bias(self):
        for pinv, conv in itertools.product(PINVS, (0, 3)):
            rng = np.random.default_rng(24)
            mha, state = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=12, num_heads=3, num_landmarks=4,
                                   pinv=PINVS[pinv], conv_kernel=conv)
            with mha:
                q, k, v = inputs(rng, 2, 20, 20, 12, 12, 12, scale=1.0, self_attn=True)
                mask = np.zeros((2, 20), bool)
                mask[1] = True
                out = mha.forward(q, k, v, mask)
                np.testing.assert_array_equal(out[1], np.broadcast_to(state["out_proj.bias"], out[1].shape),
                                              "%s conv=%d" % (pinv, conv))
                np.testing.assert_array_equal(mha.attention_matrix(q, k, v, mask)[1], 0.0)

    def test_m_greater_than_n_is_shape_error(self):
        rng = np.random.default_rng(25)
        mha, _ = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=12, num_heads=3, num_landmarks=8)
        with mha:
            for l, s in ((7, 20), (20, 7), (7, 7)):
                q, k, v = inputs(rng, 1, l, s, 12, 12, 12)
                msg = self.assert_status(A.ATTN_E_SHAPE, mha.forward, q, k, v)
                self.assertIn("attn_mha_forward", msg)
                self.assert_status(A.ATTN_E_SHAPE, mha.attention_matrix, q, k, v)
                self.assert_status(A.ATTN_E_SHAPE, mha.cost, 1, l, s)
            q, k, v = inputs(rng, 1, 8, 8, 12, 12, 12)
            mha.forward(q, k, v)  # m = n is fine

    def test_conv_with_different_lengths_is_shape_error(self):
        rng = np.random.default_rng(26)
        mha, _ = make_kind(rng, kind=A.ATTN_MHA_NYSTROM, embed_dim=12, num_heads=3, num_landmarks=4, conv_kernel=3)
        with mha:
            q, k, v = inputs(rng, 1, 9, 10, 12, 12, 12)
            self.assert_status(A.ATTN_E_SHAPE, mha.forward, q, k, v)
            self.assert_status(A.ATTN_E_SHAPE, mha.cost, 1, 9, 10)

    def test_causal_is_unsupported(self):
        self.assert_status(A.ATTN_E_UNSUPPORTED, A.Mha, kind=A.ATTN_MHA_NYSTROM, embed_dim=12, num_heads=3,
                           num_landmarks=4, causal=True)


# name: (E, h, m, conv_kernel, batch, L, S, self-attention, mask)
NYSTROM_CASES = {
    "self_n64_m8": (32, 2, 8, 0, 2, 64, 64, True, None),
    "self_n67_m8_uneven": (32, 2, 8, 0, 2, 67, 67, True, None),
    "self_n300_m9_uneven_mask": (30, 3, 9, 0, 3, 300, 300, True, "random"),
    "self_n129_m16_conv33_mask": (48, 3, 16, 33, 2, 129, 129, True, "random"),
    "self_n64_m8_conv3": (32, 2, 8, 3, 2, 64, 64, True, None),
    "self_n67_m4_conv5_dead": (30, 5, 4, 5, 3, 67, 67, True, "dead"),
    "cross_L50_S77_m5_mask": (32, 2, 5, 0, 2, 50, 77, False, "random"),
    "cross_L9_S300_m9_dead": (30, 3, 9, 0, 3, 9, 300, False, "dead"),
    "m1": (12, 3, 1, 0, 2, 10, 13, False, "random"),
}


def _add_nystrom_cases():
    for seed, (pinv, (name, case)) in enumerate(itertools.product(PINVS, NYSTROM_CASES.items())):
        setattr(TestNystrom, "test_%s_%s" % (pinv, name),
                lambda self, p=pinv, c=case, sd=seed: self.check_case(p, *c, 100 + sd))


_add_nystrom_cases()


# ---- cost ---------------------------------------------------------------------------------------

COST_HANDLES = {
    "full_materialize": dict(kind=A.ATTN_MHA_FULL, embed_dim=30, num_heads=5, memory_mode=A.ATTN_MEMORY_MATERIALIZE),
    "full_streaming": dict(kind=A.ATTN_MHA_FULL, embed_dim=30, num_heads=5, memory_mode=A.ATTN_MEMORY_STREAMING),
    "full_auto_kv": dict(kind=A.ATTN_MHA_FULL, embed_dim=30, num_heads=5, kdim=7, vdim=11, bias=False),
    "full_causal": dict(kind=A.ATTN_MHA_FULL, embed_dim=12, num_heads=3, causal=True),
    "linformer_headwise": dict(kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=16, max_seq_len=600),
    "linformer_kv": dict(kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=16, max_seq_len=600,
                         sharing=A.ATTN_LINFORMER_KV),
    "linformer_none": dict(kind=A.ATTN_MHA_LINFORMER, embed_dim=30, num_heads=5, proj_len=16, max_seq_len=600,
                           sharing=A.ATTN_LINFORMER_NONE),
    "nystrom_newton_conv": dict(kind=A.ATTN_MHA_NYSTROM, embed_dim=30, num_heads=5, num_landmarks=8, conv_kernel=9),
    "nystrom_svd": dict(kind=A.ATTN_MHA_NYSTROM, embed_dim=30, num_heads=5, num_landmarks=8, pinv=A.ATTN_PINV_SVD),
}


class TestCost(MhaTestCase):
    def test_params_and_workspace(self):
        rng = np.random.default_rng(31)
        for name, opts in COST_HANDLES.items():
            with A.Mha(**opts) as mha:
                e = mha.options.embed_dim
                infos = mha.params.infos()
                for tensor, shape, count in infos:
                    self.assertEqual(count, int(np.prod(shape)), tensor)
                shapes = [(1, 8, 8), (3, 300, 577), (2, 577, 300)]
                if opts.get("conv_kernel"):  # the residual convolution needs L == S
                    shapes = [(1, 8, 8), (3, 577, 577)]
                if opts.get("causal"):
                    shapes.append((1, 1029, 1029))
                for batch, l, s in shapes:
                    with self.subTest(handle=name, shape=(batch, l, s)):
                        c = mha.cost(batch, l, s)
                        self.assertEqual(c.params, sum(count for _, _, count in infos))
                        q = rng.standard_normal((batch, l, e)).astype(np.float32)
                        k = rng.standard_normal((batch, s, mha.options.kdim)).astype(np.float32)
                        v = rng.standard_normal((batch, s, mha.options.vdim)).astype(np.float32)
                        with A.Workspace() as ws:
                            mha.forward(q, k, v, make_mask(rng, "random", batch, s), ws=ws)
                            self.assertEqual(ws.size(), c.workspace_bytes)
                        self.assertGreater(c.flops, 0)
                        # the projections alone: Q and out over B*L rows, K and V over B*S rows
                        proj = 2 * e * (batch * l * 2 * e + batch * s * (mha.options.kdim + mha.options.vdim))
                        self.assertGreater(c.flops, proj)

    def test_flops_formulas(self):
        # docs/attention.md: the projections 2E(B L 2E + B S (kdim + vdim)), plus FULL's
        # 4 B h dh pairs (pairs = L S, or the (i, j <= i) pairs left by causal) and LINFORMER's
        # 4 B k S E + 4 B L k E.
        b, l, s, e = 2, 33, 65, 30
        proj = 2 * e * (b * l * 2 * e + b * s * (7 + 11))
        for mode in MODES.values():
            with A.Mha(embed_dim=e, num_heads=5, kdim=7, vdim=11, memory_mode=mode) as mha:
                self.assertEqual(mha.cost(b, l, s).flops, proj + 4 * b * l * s * e)
            with A.Mha(embed_dim=e, num_heads=5, kdim=7, vdim=11, memory_mode=mode, causal=True) as mha:
                for ll, ss in ((l, s), (s, l)):
                    pairs = sum(min(i + 1, ss) for i in range(ll))
                    p = 2 * e * (b * ll * 2 * e + b * ss * (7 + 11))
                    self.assertEqual(mha.cost(b, ll, ss).flops, p + 4 * b * e * pairs, (ll, ss))
        for sharing in SHARINGS.values():
            with A.Mha(kind=A.ATTN_MHA_LINFORMER, embed_dim=e, num_heads=5, kdim=7, vdim=11, proj_len=16,
                       max_seq_len=100, sharing=sharing) as mha:
                self.assertEqual(mha.cost(b, l, s).flops, proj + 4 * b * 16 * s * e + 4 * b * l * 16 * e)

    def test_auto_chooses_by_size(self):
        # attention.h: AUTO materializes while one score block fits its budget, else streams. Seen
        # through the workspace each strategy reserves (cost only: nothing runs at these sizes).
        ws = {}
        for name, mode in MODES.items():
            with A.Mha(embed_dim=64, num_heads=1, memory_mode=mode) as mha:
                ws[name] = [mha.cost(1, 300, s).workspace_bytes for s in (1029, 1 << 20)]
        self.assertEqual(ws["auto"][0], ws["materialize"][0])
        self.assertEqual(ws["auto"][1], ws["streaming"][1])
        self.assertLess(ws["streaming"][1], ws["materialize"][1])

    def test_streaming_long_sequence(self):
        # L = S = 32768, E = 64, h = 1: streaming stays under 64 MiB of workspace (no L x S buffer)
        # and matches a float64 reference and MATERIALIZE (run on the same keys with 16 queries:
        # query rows are independent without causal) on 16 rows spread over the sequence. Under
        # ASan the run takes 2048 of the queries (the 32768 x 32768 scores cost a minute there and
        # cover nothing the smaller run does not); the workspace bound is still that of L = S = 32768.
        n, e = 32768, 64
        l = 2048 if A.SANITIZED else n
        rng = np.random.default_rng(32)
        module = make_module(e, 1, seed=32)
        state = numpy_state(module)
        q, k, v = inputs(rng, 1, l, n, e, e, e, scale=1.0)
        rows = np.unique(np.concatenate([[0, 1, l - 1], rng.choice(l, 13, replace=False)]))
        with make_full(module, A.ATTN_MEMORY_STREAMING) as mha, A.Workspace() as ws:
            self.assertLess(mha.cost(1, n, n).workspace_bytes, 64 << 20)
            out = mha.forward(q, k, v, ws=ws)
            self.assertEqual(ws.size(), mha.cost(1, l, n).workspace_bytes)
        qq, kk, vv = project(state, e, q[:, rows], k, v)
        w = masked_softmax(qq @ kk.transpose(0, 2, 1) / np.sqrt(e), True)
        ref = out_project(state, w @ vv)
        self.assert_close(out[:, rows], ref, "streaming rows vs float64")
        with make_full(module, A.ATTN_MEMORY_MATERIALIZE) as mat:
            self.assert_close(out[:, rows].astype(np.float64), mat.forward(q[:, rows], k, v).astype(np.float64),
                              "streaming rows vs MATERIALIZE")


# ---- options, tensors and error paths ----------------------------------------------------------


class TestApi(MhaTestCase):
    def test_library_exports_every_declared_function(self):
        self.assertEqual(A.MISSING, [])

    def test_options_struct_mirrors_header(self):
        o = A.MhaOptions()
        self.assertEqual(A.lib.attn_mha_options_init(A.byref(o)), A.ATTN_OK)
        # struct_size is the C sizeof: equal to ctypes' only if every field lines up.
        self.assertEqual(o.struct_size, A.ctypes.sizeof(A.MhaOptions))
        defaults = dict(kind=A.ATTN_MHA_FULL, bias=1, causal=0, memory_mode=A.ATTN_MEMORY_AUTO, embed_dim=0,
                        num_heads=1, kdim=0, vdim=0, sharing=A.ATTN_LINFORMER_HEADWISE, pinv=A.ATTN_PINV_NEWTON,
                        pinv_iterations=6, conv_kernel=0, flags=0)
        for field, value in defaults.items():
            self.assertEqual(getattr(o, field), value, field)

    def test_get_options_resolves_kdim_vdim(self):
        with A.Mha(embed_dim=12, num_heads=3) as mha:
            self.assertEqual((mha.options.kdim, mha.options.vdim), (12, 12))
            self.assertEqual(mha.options.struct_size, A.ctypes.sizeof(A.MhaOptions))
        with A.Mha(embed_dim=12, num_heads=3, kdim=5, vdim=9, causal=True) as mha:
            self.assertEqual((mha.options.kdim, mha.options.vdim, mha.options.causal), (5, 9, 1))

    def test_tensor_names_are_state_dict_keys(self):
        for kdim, vdim, bias in ((None, None, True), (None, None, False), (5, 9, True), (12, 12, False),
                                 (5, None, True)):
            module = nn.MultiheadAttention(12, 3, bias=bias, batch_first=True, kdim=kdim, vdim=vdim)
            with A.Mha(embed_dim=12, num_heads=3, kdim=kdim or 0, vdim=vdim or 0, bias=bias) as mha:
                self.assertEqual(mha.params.names(), list(module.state_dict().keys()))
                self.assertEqual(mha.params.shapes(), {n: tuple(t.shape) for n, t in module.state_dict().items()})

    def test_null_arguments(self):
        o = A.MhaOptions()
        A.lib.attn_mha_options_init(A.byref(o))
        o.embed_dim = 12
        self.assertEqual(A.lib.attn_mha_options_init(None), A.ATTN_E_INVALID_ARG)
        self.assertEqual(A.lib.attn_mha_create(None, A.byref(o)), A.ATTN_E_INVALID_ARG)
        ptr = A.c_void_p(1234)
        self.assertEqual(A.lib.attn_mha_create(A.byref(ptr), None), A.ATTN_E_INVALID_ARG)
        self.assertFalse(ptr.value)  # *out = NULL on failure
        A.lib.attn_mha_destroy(None)
        self.assertIsNone(A.lib.attn_mha_params(None))
        self.assertEqual(A.lib.attn_mha_get_options(None, A.byref(o)), A.ATTN_E_INVALID_ARG)
        c = A.Cost()
        self.assertEqual(A.lib.attn_mha_cost(None, 1, 1, 1, A.byref(c)), A.ATTN_E_INVALID_ARG)
        x = np.zeros((1, 2, 12), np.float32)
        out = np.zeros((1, 2, 12), np.float32)
        self.assertEqual(A.lib.attn_mha_forward(None, None, 1, 2, 2, A.fptr(x), A.fptr(x), A.fptr(x), None,
                                                A.fptr(out)), A.ATTN_E_INVALID_ARG)
        with A.Mha(embed_dim=12, num_heads=3) as mha:
            self.assertEqual(A.lib.attn_mha_get_options(mha.ptr, None), A.ATTN_E_INVALID_ARG)
            self.assertEqual(A.lib.attn_mha_cost(mha.ptr, 1, 1, 1, None), A.ATTN_E_INVALID_ARG)
            for i, name in enumerate(("query", "key", "value", "out")):
                args = [A.fptr(x), A.fptr(x), A.fptr(x), None, A.fptr(out)]
                args[i if i < 3 else 4] = None
                self.assertEqual(A.lib.attn_mha_forward(mha.ptr, None, 1, 2, 2, *args), A.ATTN_E_INVALID_ARG, name)
                self.assertIn(name, A.last_error())
            self.assertEqual(A.lib.attn_mha_attention_matrix(mha.ptr, None, 1, 2, 2, A.fptr(x), A.fptr(x), A.fptr(x),
                                                             None, None), A.ATTN_E_INVALID_ARG)
            self.assertIn("attn_mha_attention_matrix", A.last_error())

    def test_zero_and_negative_sizes(self):
        with A.Mha(embed_dim=12, num_heads=3) as mha:
            x = np.zeros((1, 4, 12), np.float32)
            out = np.zeros((1, 4, 12), np.float32)
            for b, l, s in ((0, 4, 4), (1, 0, 4), (1, 4, 0), (-1, 4, 4), (1, -4, 4), (1, 4, -1)):
                st = A.lib.attn_mha_forward(mha.ptr, None, b, l, s, A.fptr(x), A.fptr(x), A.fptr(x), None, A.fptr(out))
                self.assertEqual(st, A.ATTN_E_SHAPE, (b, l, s))
                self.assertIn("attn_mha_forward", A.last_error())
                c = A.Cost()
                self.assertEqual(A.lib.attn_mha_cost(mha.ptr, b, l, s, A.byref(c)), A.ATTN_E_SHAPE, (b, l, s))

    def test_invalid_options(self):
        bad = [
            dict(embed_dim=0),
            dict(embed_dim=12, num_heads=5),  # not divisible
            dict(embed_dim=12, num_heads=0),
            dict(embed_dim=12, kind=3),
            dict(embed_dim=12, memory_mode=3),
            dict(embed_dim=12, kdim=-1),
            dict(embed_dim=12, flags=1),
            dict(embed_dim=12, kind=A.ATTN_MHA_LINFORMER, proj_len=0, max_seq_len=10),
            dict(embed_dim=12, kind=A.ATTN_MHA_LINFORMER, proj_len=4, max_seq_len=0),
            dict(embed_dim=12, kind=A.ATTN_MHA_LINFORMER, proj_len=4, max_seq_len=10, sharing=3),
            dict(embed_dim=12, kind=A.ATTN_MHA_NYSTROM, num_landmarks=0),
            dict(embed_dim=12, kind=A.ATTN_MHA_NYSTROM, num_landmarks=4, pinv=2),
            dict(embed_dim=12, kind=A.ATTN_MHA_NYSTROM, num_landmarks=4, conv_kernel=4),
        ]
        for opts in bad:
            msg = self.assert_status(A.ATTN_E_INVALID_ARG, A.Mha, **opts)
            self.assertIn("attn_mha_create", msg)
        # struct_size smaller than the first version's
        o = A.MhaOptions()
        A.lib.attn_mha_options_init(A.byref(o))
        o.embed_dim = 12
        o.struct_size = 8
        ptr = A.c_void_p()
        self.assertEqual(A.lib.attn_mha_create(A.byref(ptr), A.byref(o)), A.ATTN_E_INVALID_ARG)


if __name__ == "__main__":
    sys.exit(A.run_tests(verbosity=1))
