"""libattn's memory-network RNN (attn_memrnn) against a PyTorch Neural Turing Machine.

The PyTorch side is written here from the equations of docs/memory.md with the module structure of
loudinthecloud/pytorch-ntm's EncapsulatedNTM (ntm/aio.py, ntm/ntm.py, ntm/controller.py,
ntm/head.py, ntm/memory.py): the same module and tensor names, so its state_dict has exactly the
keys that model's has, including the memory bias repeated under ntm.memory. and ntm.heads.{j}.memory.
(one shared NTMMemory module, a buffer). Its forward is run in float64 and compared with libattn's
float32 at a relative 1e-4 on y, the read weightings and the final memory; the weights go to libattn
by name (attn_params_set) and through a safetensors file of the whole state_dict. SPARSE (top-k)
addressing is compared with the same reference keeping each head's top_k shifted weights. Run by ctest
(tests/python.cmake) with ATTN_LIB naming the library; by hand:
ATTN_LIB=build/libattn.so /usr/bin/python3 test_memory_torch.py
"""

import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # fail loudly: a missing torch must not look like a pass
    print("cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)

import attn_ffi as A

REL_TOL = 1e-4

# ---- the PyTorch model: EncapsulatedNTM's module tree -----------------------------------------


class NTMMemory(nn.Module):
    def __init__(self, n, w):
        super().__init__()
        self.N, self.M = n, w
        self.register_buffer("mem_bias", torch.empty(n, w).uniform_(-1 / np.sqrt(n + w), 1 / np.sqrt(n + w)))


class LSTMController(nn.Module):
    def __init__(self, num_inputs, size, layers):
        super().__init__()
        self.lstm = nn.LSTM(input_size=num_inputs, hidden_size=size, num_layers=layers)
        self.lstm_h_bias = nn.Parameter(torch.randn(layers, 1, size) * 0.05)
        self.lstm_c_bias = nn.Parameter(torch.randn(layers, 1, size) * 0.05)


class ReadHead(nn.Module):
    def __init__(self, memory, c):
        super().__init__()
        self.memory = memory
        self.fc_read = nn.Linear(c, memory.M + 6)


class WriteHead(nn.Module):
    def __init__(self, memory, c):
        super().__init__()
        self.memory = memory
        self.fc_write = nn.Linear(c, 3 * memory.M + 6)


class NTM(nn.Module):
    def __init__(self, num_inputs, num_outputs, controller, memory, heads):
        super().__init__()
        self.controller = controller
        self.memory = memory
        self.heads = heads
        for i in range(len(heads) // 2):
            self.register_buffer("read%d_bias" % i, torch.randn(1, memory.M) * 0.01)
        self.fc = nn.Linear(controller.lstm.hidden_size + len(heads) // 2 * memory.M, num_outputs)


class EncapsulatedNTM(nn.Module):
    def __init__(self, num_inputs, num_outputs, controller_size, controller_layers, num_heads, n, w):
        super().__init__()
        memory = NTMMemory(n, w)
        controller = LSTMController(num_inputs + w * num_heads, controller_size, controller_layers)
        heads = nn.ModuleList()
        for _ in range(num_heads):
            heads += [ReadHead(memory, controller_size), WriteHead(memory, controller_size)]
        self.ntm = NTM(num_inputs, num_outputs, controller, memory, heads)
        self.memory = memory
        self.num_heads, self.N, self.M = num_heads, n, w


def address(mem, o, w_prev, top_k):
    """pytorch-ntm's NTMMemory.address on the activated head outputs; then, for top_k, the SPARSE
    selection of docs/memory.md."""
    m = mem.shape[2]
    k, beta, g, s, gamma = o[:, :m], o[:, m:m + 1], o[:, m + 1:m + 2], o[:, m + 2:m + 5], o[:, m + 5:m + 6]
    beta, g, s, gamma = F.softplus(beta), torch.sigmoid(g), F.softmax(s, dim=1), 1 + F.softplus(gamma)
    wc = F.softmax(beta * F.cosine_similarity(mem + 1e-16, k.unsqueeze(1) + 1e-16, dim=-1), dim=1)
    wg = g * wc + (1 - g) * w_prev
    shifted = s[:, :1] * torch.roll(wg, 1, dims=1) + s[:, 1:2] * wg + s[:, 2:3] * torch.roll(wg, -1, dims=1)
    if top_k is not None and top_k < shifted.shape[1]:
        vals, idx = torch.topk(shifted, top_k, dim=1)
        vals = vals ** gamma
        return torch.zeros_like(shifted).scatter(1, idx, vals / (vals.sum(dim=1, keepdim=True) + 1e-16))
    w = shifted ** gamma
    return w / (w.sum(dim=1, keepdim=True) + 1e-16)


def reference(model, x, top_k=None):
    """The NTM forward in float64: y [B,T,out], read weights [B,T,R,N], final memory [B,N,W]."""
    model = model.double()
    x = torch.as_tensor(x, dtype=torch.float64)
    ntm, ctrl = model.ntm, model.ntm.controller
    b, steps = x.shape[0], x.shape[1]
    r, w = model.num_heads, model.M
    mem = model.memory.mem_bias.repeat(b, 1, 1)
    reads = [getattr(ntm, "read%d_bias" % i).repeat(b, 1) for i in range(r)]
    state = (ctrl.lstm_h_bias.repeat(1, b, 1), ctrl.lstm_c_bias.repeat(1, b, 1))
    weights = [torch.zeros(b, model.N, dtype=torch.float64) for _ in range(2 * r)]
    ys, rws = [], []
    with torch.no_grad():
        for t in range(steps):
            out, state = ctrl.lstm(torch.cat([x[:, t]] + reads, dim=1).unsqueeze(0), state)
            c = out.squeeze(0)
            reads, step_rw = [], []
            for j, head in enumerate(ntm.heads):
                if j % 2 == 0:
                    weights[j] = address(mem, head.fc_read(c), weights[j], top_k)
                    reads.append(torch.matmul(weights[j].unsqueeze(1), mem).squeeze(1))
                    step_rw.append(weights[j])
                else:
                    o = head.fc_write(c)
                    e, a = torch.sigmoid(o[:, w + 6:2 * w + 6]), o[:, 2 * w + 6:]
                    weights[j] = address(mem, o, weights[j], top_k)
                    wj = weights[j].unsqueeze(-1)
                    mem = mem * (1 - wj * e.unsqueeze(1)) + wj * a.unsqueeze(1)
            ys.append(torch.sigmoid(ntm.fc(torch.cat([c] + reads, dim=1))))
            rws.append(torch.stack(step_rw, dim=1))
    return torch.stack(ys, 1).numpy(), torch.stack(rws, 1).numpy(), mem.numpy()


def make_model(seed, **cfg):
    torch.manual_seed(seed)
    return EncapsulatedNTM(cfg["input_size"], cfg["output_size"], cfg["controller_size"],
                           cfg.get("controller_layers", 1), cfg.get("num_heads", 1), cfg["memory_slots"],
                           cfg["memory_width"])


def sharpen(model, seed):
    """Larger head, output and memory weights than pytorch-ntm's init, so that the addressing is
    sharp (weights near 1 and near 0), the outputs spread over (0, 1) and every part of the
    equations (shift direction, sharpening, top-k) changes the result measurably."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for j, head in enumerate(model.ntm.heads):
            fc = head.fc_write if j % 2 else head.fc_read
            fc.weight.mul_(3.0)
            fc.bias.copy_(torch.rand(fc.bias.shape, generator=g) * 2 - 1)
        model.ntm.fc.weight.mul_(3.0)
        model.memory.mem_bias.mul_(3.0)


def numpy_state(model):
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def close(test, what, got, want, tol=REL_TOL):
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    test.assertTrue(err <= tol * scale, "%s: max abs error %.3g > %.3g" % (what, err, tol * scale))


CONFIGS = [
    dict(input_size=3, output_size=2, controller_size=8, memory_slots=6, memory_width=4),
    dict(input_size=5, output_size=3, controller_size=12, controller_layers=2, num_heads=2, memory_slots=10,
         memory_width=5),
    dict(input_size=4, output_size=4, controller_size=16, controller_layers=1, num_heads=2, memory_slots=16,
         memory_width=8),
]


class MemrnnTorch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("ATTN_TEST_TMPDIR"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exports(self):
        self.assertEqual([n for n in A.MISSING if n.startswith("attn_memrnn")], [])

    def test_names_and_shapes(self):
        for cfg in CONFIGS:
            model = make_model(0, **cfg)
            state = numpy_state(model)
            with A.Memrnn(**cfg) as m:
                aliases = {k for k in state if k.endswith("memory.mem_bias") and k != "memory.mem_bias"}
                self.assertTrue(aliases)
                self.assertEqual(m.params.names(), [k for k in state if k not in aliases])
                for name, a in state.items():
                    self.assertEqual(m.params.find(name), a.shape, name)

    def check_forward(self, cfg, batch, steps, seed, top_k=None, via_file=False):
        model = make_model(seed, **cfg)
        sharpen(model, seed)
        state = numpy_state(model)
        x = np.random.default_rng(seed).uniform(-1, 1, (batch, steps, cfg["input_size"])).astype(np.float32)
        options = dict(cfg)
        if top_k is not None:
            options.update(addressing=A.ATTN_MEMORY_SPARSE, top_k=top_k)
        with A.Memrnn(**options) as m:
            if via_file:
                path = os.path.join(self.tmp, "ntm_%d.safetensors" % seed)
                A.write_safetensors(path, state)
                m.params.load(path, flags=A.ATTN_LOAD_REJECT_UNKNOWN)
            else:
                m.params.set_all({k: v for k, v in state.items() if k in m.params.names()})
            y, rw, mem = m.forward(x)
        y_ref, rw_ref, mem_ref = reference(model, x, top_k)
        what = "%s B=%d T=%d top_k=%s file=%s" % (cfg, batch, steps, top_k, via_file)
        close(self, what + " y", y, y_ref)
        close(self, what + " read_weights", rw, rw_ref)
        close(self, what + " memory", mem, mem_ref)
        return rw

    def test_dense(self):
        for i, cfg in enumerate(CONFIGS):
            for batch, steps in ((1, 1), (3, 20)):
                with self.subTest(cfg=i, batch=batch, steps=steps):
                    self.check_forward(cfg, batch, steps, seed=10 * i + batch)

    def test_dense_long(self):
        self.check_forward(CONFIGS[1], 2, 50, seed=7)

    def test_state_dict_file(self):
        for i, cfg in enumerate(CONFIGS):
            with self.subTest(cfg=i):
                self.check_forward(cfg, 2, 5, seed=100 + i, via_file=True)

    def test_sparse(self):
        for i, cfg in enumerate(CONFIGS):
            for top_k in (1, 2, 3):
                with self.subTest(cfg=i, top_k=top_k):
                    rw = self.check_forward(cfg, 3, 12, seed=200 + 10 * i + top_k, top_k=top_k)
                    self.assertTrue(np.all(np.count_nonzero(rw, axis=-1) <= top_k))

    def test_sparse_long(self):
        self.check_forward(CONFIGS[2], 2, 50, seed=9, top_k=3)

    def test_sparse_all_slots_is_dense(self):
        cfg = CONFIGS[1]
        x = np.random.default_rng(3).uniform(-1, 1, (2, 10, cfg["input_size"])).astype(np.float32)
        state = numpy_state(make_model(3, **cfg))
        outs = []
        for options in (dict(cfg), dict(cfg, addressing=A.ATTN_MEMORY_SPARSE, top_k=cfg["memory_slots"])):
            with A.Memrnn(**options) as m:
                m.params.set_all({k: v for k, v in state.items() if k in m.params.names()})
                outs.append(m.forward(x))
        for a, b in zip(outs[0], outs[1]):
            np.testing.assert_array_equal(a, b)


if __name__ == "__main__":
    sys.exit(A.run_tests())
