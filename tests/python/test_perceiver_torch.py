"""libattn's Perceiver (attn_perceiver) against lucidrains/perceiver-pytorch's Perceiver in PyTorch.

The PyTorch model is the one of benchmarks/torch_perceiver.py (imported from there, one definition
for this test and attn-bench): lucidrains' v0.9 module tree written from docs/perceiver.md, with its
state_dict names, including the layers.{i>=2}.* entries that weight_tie_layers repeats (the same
modules). Its forward is run in float64 and compared with libattn's float32 at a relative 1e-4; the
weights go to libattn by name (attn_params_set) and through a safetensors file of the whole
state_dict, loaded with ATTN_LOAD_REJECT_UNKNOWN. Masks use libattn's convention (nonzero = ignore),
which the reference applies the way lucidrains applies its own (opposite) one. Run by ctest
(tests/python.cmake) with ATTN_LIB naming the library; by hand:
ATTN_LIB=build/libattn.so /usr/bin/python3 test_perceiver_torch.py
"""

import copy
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
except ImportError as e:  # fail loudly: a missing torch must not look like a pass
    print("cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)

import attn_ffi as A

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
from torch_perceiver import Perceiver  # noqa: E402  (the reference model, shared with attn-bench)

REL_TOL = 1e-4

# libattn option name -> lucidrains' keyword (the others are spelled alike)
_TORCH_NAMES = {"fourier_encode": "fourier_encode_data"}

BASE = dict(input_channels=3, input_axis=2, num_freq_bands=4, max_freq=6.0, fourier_encode=1, depth=1,
            num_latents=7, latent_dim=24, cross_heads=1, cross_dim_head=8, latent_heads=2, latent_dim_head=8,
            self_per_cross_attn=1, weight_tie_layers=0, num_classes=0)


def config(**changes):
    cfg = dict(BASE)
    cfg.update(changes)
    return cfg


def make_model(seed, cfg):
    """lucidrains' Perceiver for libattn options `cfg`, with every tensor made to matter: LayerNorm
    weights and biases away from 1 and 0, and query weights scaled so that attention is peaked
    (lucidrains' init gives nearly uniform weights at these small sizes)."""
    torch.manual_seed(seed)
    kwargs = {_TORCH_NAMES.get(k, k): v for k, v in cfg.items()}
    kwargs["weight_tie_layers"] = bool(kwargs["weight_tie_layers"])
    kwargs["fourier_encode_data"] = bool(kwargs["fourier_encode_data"])
    model = Perceiver(**kwargs).float().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                module.bias.copy_(0.2 * torch.randn_like(module.bias))
            elif hasattr(module, "to_q"):
                module.to_q.weight.mul_(4.0)
    return model


def numpy_state(model):
    """The whole state_dict as numpy float32 (tied modules appear once per alias, as separate
    arrays: PyTorch's state_dict shares their storage, which safetensors.torch.save_file would
    refuse without .clone(); the harness's writer copies anyway)."""
    return {k: v.detach().cpu().clone().numpy() for k, v in model.state_dict().items()}


def aliases(cfg, state):
    """The state_dict keys that name no libattn parameter: layers.{i>=2}.* of a tied model."""
    if not cfg["weight_tie_layers"]:
        return set()
    return {k for k in state if k.startswith("layers.") and int(k.split(".")[1]) >= 2}


def reference(model, data, mask=None):
    """The PyTorch forward in float64 on a float64 copy of the model."""
    m = copy.deepcopy(model).double()  # deepcopy keeps the tied modules shared
    with torch.no_grad():
        t = torch.as_tensor(np.asarray(data, dtype=np.float64))
        mk = None if mask is None else torch.as_tensor(np.asarray(mask) != 0)
        return m(t, mk).numpy()


def close(test, what, got, want, tol=REL_TOL):
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    test.assertTrue(err <= tol * scale, "%s: max abs error %.3g > %.3g" % (what, err, tol * scale))


def random_mask(rng, batch, n, frac=0.3, most=None):
    """[B, N] uint8, nonzero = ignore: about `frac` of the positions; batch element `most` (if given)
    keeps only one position."""
    mask = (rng.random((batch, n)) < frac).astype(np.uint8)
    if most is not None:
        mask[most] = 1
        mask[most, rng.integers(n)] = 0
    return mask


# (name, options, axis sizes, batch, mask kind: None | "some" | "most")
CASES = [
    ("axis1", config(input_axis=1, input_channels=2), (11,), 1, None),
    ("axis2_heads2_classes", config(depth=2, cross_heads=2, num_classes=5), (5, 3), 3, "some"),
    ("axis3_tied_self2", config(input_axis=3, depth=3, weight_tie_layers=1, self_per_cross_attn=2),
     (3, 4, 2), 2, "most"),
    ("no_fourier", config(fourier_encode=0, input_channels=5, depth=2), (4, 6), 2, "some"),
    ("untied_depth3", config(input_axis=1, depth=3, self_per_cross_attn=2, cross_heads=2, num_classes=3),
     (9,), 2, "most"),
    ("tied_depth2_head", config(depth=2, weight_tie_layers=1, num_classes=4), (5, 3), 1, "some"),
    ("tied_depth3_no_fourier", config(input_axis=1, depth=3, weight_tie_layers=1, fourier_encode=0,
                                      input_channels=4, cross_heads=2), (13,), 3, "most"),
    ("self0", config(depth=2, self_per_cross_attn=0), (5, 3), 2, None),
    ("odd_sizes", config(input_axis=3, input_channels=1, num_freq_bands=3, max_freq=5.5, num_latents=5,
                         latent_dim=13, cross_heads=3, cross_dim_head=5, latent_heads=3, latent_dim_head=3,
                         depth=2, num_classes=2), (3, 1, 5), 3, "some"),
    ("one_band_one_position", config(num_freq_bands=1, max_freq=2.0), (1, 1), 2, None),
    ("larger_n", config(depth=2, num_latents=33, latent_dim=32, cross_heads=2, cross_dim_head=16,
                        latent_heads=4, latent_dim_head=8, self_per_cross_attn=2, num_classes=10),
     (37, 29), 2, "most"),
]


class PerceiverTorch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("ATTN_TEST_TMPDIR"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exports(self):
        self.assertEqual([n for n in A.MISSING if n.startswith("attn_perceiver")], [])

    def test_options_roundtrip(self):
        for name, cfg, _, _, _ in CASES:
            with self.subTest(case=name), A.Perceiver(**cfg) as p:
                got = {k: getattr(p.options, k) for k in cfg}
                self.assertEqual(got, cfg)

    def test_names_and_shapes(self):
        for name, cfg, _, _, _ in CASES:
            with self.subTest(case=name):
                model = make_model(0, cfg)
                state = numpy_state(model)
                extra = aliases(cfg, state)
                self.assertEqual(bool(extra), bool(cfg["weight_tie_layers"] and cfg["depth"] >= 3))
                with A.Perceiver(**cfg) as p:
                    # lucidrains' state_dict order, without the aliases
                    self.assertEqual(p.params.names(), [k for k in state if k not in extra])
                    for key, a in state.items():
                        if key not in extra:
                            self.assertEqual(p.params.find(key), a.shape, key)
                    n_params = sum(t.numel() for t in model.parameters())  # tied modules once
                    self.assertEqual(p.cost(1, (2,) * cfg["input_axis"]).params, n_params)

    def run_case(self, name, cfg, axis, batch, mask_kind, seed):
        model = make_model(seed, cfg)
        state = numpy_state(model)
        rng = np.random.default_rng(seed)
        data = rng.uniform(-1, 1, (batch, *axis, cfg["input_channels"])).astype(np.float32)
        n = int(np.prod(axis))
        mask = None
        if mask_kind == "some":
            mask = random_mask(rng, batch, n)
        elif mask_kind == "most":
            mask = random_mask(rng, batch, n, most=batch - 1)
        want = reference(model, data, mask)
        path = os.path.join(self.tmp, "perceiver_%s.safetensors" % name)
        A.write_safetensors(path, state)
        with A.Perceiver(**cfg) as p:
            names = set(p.params.names())
            p.params.set_all({k: v for k, v in state.items() if k in names})
            got_named = p.forward(data, mask)
            with A.Workspace() as ws:
                got_ws = p.forward(data, mask, ws=ws)
        with A.Perceiver(**cfg) as p:
            p.params.load(path, flags=A.ATTN_LOAD_REJECT_UNKNOWN)
            got_file = p.forward(data, mask)
            for k in names:  # the aliases of a tied model did not overwrite anything
                np.testing.assert_array_equal(p.params.get(k), state[k], k)
        what = "%s B=%d axis=%s mask=%s" % (name, batch, axis, mask_kind)
        self.assertEqual(got_named.shape, want.shape)
        close(self, what + " (by name)", got_named, want)
        close(self, what + " (safetensors)", got_file, want)
        np.testing.assert_array_equal(got_ws, got_named)
        return model, data, mask

    def test_forward(self):
        for i, (name, cfg, axis, batch, mask_kind) in enumerate(CASES):
            with self.subTest(case=name):
                self.run_case(name, cfg, axis, batch, mask_kind, seed=10 + i)

    def test_fully_masked_element(self):
        """A batch element with every position masked: the cross-attention scores are all
        -finfo.max, so (as in lucidrains) every latent attends uniformly to all positions."""
        for name, cfg in (("full_mask", config(depth=2, num_classes=3, cross_heads=2)),
                          ("full_mask_tied", config(depth=3, weight_tie_layers=1))):
            with self.subTest(case=name):
                model = make_model(5, cfg)
                state = numpy_state(model)
                rng = np.random.default_rng(5)
                data = rng.uniform(-1, 1, (3, 4, 5, cfg["input_channels"])).astype(np.float32)
                mask = random_mask(rng, 3, 20)
                mask[1] = 1
                want = reference(model, data, mask)
                with A.Perceiver(**cfg) as p:
                    p.params.set_all({k: v for k, v in state.items() if k in set(p.params.names())})
                    got = p.forward(data, mask)
                close(self, name, got, want)

    def test_all_zero_mask_is_no_mask(self):
        cfg = config(depth=2, cross_heads=2)
        state = numpy_state(make_model(3, cfg))
        data = np.random.default_rng(3).uniform(-1, 1, (2, 5, 3, 3)).astype(np.float32)
        with A.Perceiver(**cfg) as p:
            p.params.set_all({k: v for k, v in state.items() if k in set(p.params.names())})
            np.testing.assert_array_equal(p.forward(data, np.zeros((2, 15), np.uint8)), p.forward(data))

    def test_tied_file_without_aliases(self):
        """A tied checkpoint holding only layers.0.* and layers.1.* (what libattn saves) loads too,
        and attn_params_save writes exactly the libattn names, which load back with REJECT_UNKNOWN."""
        cfg = config(input_axis=1, depth=3, weight_tie_layers=1, self_per_cross_attn=2)
        model = make_model(7, cfg)
        state = numpy_state(model)
        data = np.random.default_rng(7).uniform(-1, 1, (2, 6, 3)).astype(np.float32)
        want = reference(model, data)
        path = os.path.join(self.tmp, "perceiver_tied_noalias.safetensors")
        A.write_safetensors(path, {k: v for k, v in state.items() if k not in aliases(cfg, state)})
        saved = os.path.join(self.tmp, "perceiver_tied_saved.safetensors")
        with A.Perceiver(**cfg) as p:
            p.params.load(path, flags=A.ATTN_LOAD_REJECT_UNKNOWN)
            close(self, "tied, no aliases in the file", p.forward(data), want)
            p.params.save(saved)
        tensors, _, _ = A.read_safetensors(saved)
        self.assertEqual(set(tensors), set(state) - aliases(cfg, state))
        with A.Perceiver(**cfg) as p:
            p.params.load(saved, flags=A.ATTN_LOAD_REJECT_UNKNOWN)
            close(self, "tied, libattn's own file", p.forward(data), want)

    def test_unknown_tensor_rejected(self):
        """REJECT_UNKNOWN still rejects a tensor that names no parameter of a tied model."""
        cfg = config(depth=2, weight_tie_layers=1)
        state = numpy_state(make_model(8, cfg))
        state["layers.0.0.fn.to_q.bias"] = np.zeros(8, np.float32)
        path = os.path.join(self.tmp, "perceiver_unknown.safetensors")
        A.write_safetensors(path, state)
        with A.Perceiver(**cfg) as p:
            p.params.load(path)  # without the flag the extra tensor is ignored
            with self.assertRaises(A.AttnError):
                p.params.load(path, flags=A.ATTN_LOAD_REJECT_UNKNOWN)


if __name__ == "__main__":
    sys.exit(A.run_tests())
