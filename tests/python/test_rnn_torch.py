"""libattn's recurrent family (attn_rnn) against torch.nn.RNN / LSTM / GRU, through the C ABI.

Weights move by name (PyTorch's state_dict keys), directly with attn_params_set and through
safetensors files (F32, F64, F16, BF16, with and without a prefix); attn_params_save is read back
by an independent reader and loaded into PyTorch. The KRONECKER recurrence is checked against
np.kron of its factors and against the torch module given the materialized matrix as weight_hh;
attn_rnn_forward_lengths against pack_padded_sequence -> module -> pad_packed_sequence. Run by ctest (tests/python.cmake) with ATTN_LIB
naming the library; by hand: ATTN_LIB=build/libattn.so /usr/bin/python3 test_rnn_torch.py
"""

import copy
import itertools
import os
import shutil
import sys
import tempfile
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

CELLS = {
    "tanh": A.ATTN_CELL_RNN_TANH,
    "relu": A.ATTN_CELL_RNN_RELU,
    "lstm": A.ATTN_CELL_LSTM,
    "gru": A.ATTN_CELL_GRU,
}
REL_TOL = 1e-5


def make_module(cell, input_size, hidden, layers=1, bidir=False, bias=True):
    """The PyTorch module matching libattn options, float32 with PyTorch's default init."""
    kw = dict(input_size=input_size, hidden_size=hidden, num_layers=layers, bias=bias, batch_first=True,
              bidirectional=bidir)
    if cell in ("tanh", "relu"):
        return nn.RNN(nonlinearity=cell, **kw)
    return {"lstm": nn.LSTM, "gru": nn.GRU}[cell](**kw)


def make_handle(cell, input_size, hidden, layers=1, bidir=False, bias=True):
    return A.Rnn(cell=CELLS[cell], input_size=input_size, hidden_size=hidden, num_layers=layers,
                 bidirectional=bidir, bias=bias)


def numpy_state(state_dict):
    return {k: v.detach().cpu().numpy() for k, v in state_dict.items()}


def torch_reference(module, cell, x, h0=None, c0=None):
    """(y, h_n, c_n or None) of `module` computed in float64. The reference runs in double so that
    the comparison measures libattn's float32 error alone, not PyTorch's; the weights of the float32
    module widen to double exactly, so both sides use the same parameter values."""
    m = copy.deepcopy(module).double()
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    shape = (m.num_layers * (2 if m.bidirectional else 1), xt.shape[0], m.hidden_size)

    def state(s):
        if s is None:
            return torch.zeros(shape, dtype=torch.float64)
        return torch.from_numpy(np.asarray(s, np.float64))

    with torch.no_grad():
        if cell == "lstm":
            hx = None if h0 is None and c0 is None else (state(h0), state(c0))
            y, (h_n, c_n) = m(xt, hx)
            return y.numpy(), h_n.numpy(), c_n.numpy()
        y, h_n = m(xt, None if h0 is None else state(h0))
        return y.numpy(), h_n.numpy(), None


class RnnTestCase(unittest.TestCase):
    tmp = None  # a scratch directory, made on first use

    def tearDown(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        if not self.tmp:
            self.tmp = tempfile.mkdtemp(prefix="attn_rnn_torch_", dir=os.environ.get("ATTN_TEST_TMPDIR"))
        return os.path.join(self.tmp, name)

    def assert_close(self, got, ref, what):
        self.assertEqual(got.shape, ref.shape, what)
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
        tol = REL_TOL * max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
        self.assertTrue(np.all(np.isfinite(got)), "%s: non-finite values" % what)
        self.assertLessEqual(err, tol, "%s: max|libattn - torch| = %.3g > %.3g" % (what, err, tol))

    def assert_outputs(self, got, ref, what):
        names = ("y", "h_n", "c_n")
        for name, g, r in zip(names, got, ref):
            if r is None:
                self.assertIsNone(g, "%s: %s" % (what, name))
            else:
                self.assert_close(g, r, "%s: %s" % (what, name))

    @staticmethod
    def inputs(cell, module, batch, seq_len, with_state, seed):
        g = np.random.default_rng(seed)
        x = g.standard_normal((batch, seq_len, module.input_size)).astype(np.float32)
        if not with_state:
            return x, None, None
        shape = (module.num_layers * (2 if module.bidirectional else 1), batch, module.hidden_size)
        h0 = (0.5 * g.standard_normal(shape)).astype(np.float32)
        c0 = (0.5 * g.standard_normal(shape)).astype(np.float32) if cell == "lstm" else None
        return x, h0, c0


# ---- forward against PyTorch over a table of shapes and options ------------------------------
# The full product of cells x layers x directions x bias x batch x T x sizes x initial state
# (1152 cases, a few seconds), one test each so that a failure names its case.


class TestForward(RnnTestCase):
    def check_forward(self, cell, layers, bidir, bias, batch, seq_len, sizes, with_state, seed):
        torch.manual_seed(seed)
        module = make_module(cell, sizes[0], sizes[1], layers, bidir, bias)
        with make_handle(cell, sizes[0], sizes[1], layers, bidir, bias) as rnn:
            state = numpy_state(module.state_dict())
            self.assertEqual(rnn.params.shapes(), {k: v.shape for k, v in state.items()})
            rnn.params.set_all(state)
            x, h0, c0 = self.inputs(cell, module, batch, seq_len, with_state, seed)
            self.assert_outputs(rnn.forward(x, h0, c0), torch_reference(module, cell, x, h0, c0), "forward")


def _add_forward_cases():
    table = itertools.product(CELLS, (1, 2, 3), (False, True), (True, False), (1, 4), (1, 7, 300),
                              ((5, 7), (13, 33)), (False, True))
    for seed, (cell, layers, bidir, bias, batch, seq_len, sizes, with_state) in enumerate(table):
        name = "test_%s_L%d_%s_%s_B%d_T%d_I%dH%d_%s" % (
            cell, layers, "bi" if bidir else "uni", "bias" if bias else "nobias", batch, seq_len,
            sizes[0], sizes[1], "h0" if with_state else "zero_state")
        args = (cell, layers, bidir, bias, batch, seq_len, sizes, with_state, seed)
        setattr(TestForward, name, lambda self, a=args: self.check_forward(*a))


_add_forward_cases()


class TestForwardDetails(RnnTestCase):
    def setUp(self):
        super().setUp()
        torch.manual_seed(7)

    def test_lstm_partial_initial_state(self):
        # h0 without c0 (and the converse): the absent one is zeros.
        module = make_module("lstm", 5, 7, 2, True)
        with make_handle("lstm", 5, 7, 2, True) as rnn:
            rnn.params.set_all(numpy_state(module.state_dict()))
            x, h0, c0 = self.inputs("lstm", module, 3, 6, True, 1)
            for h, c, what in ((h0, None, "h0 only"), (None, c0, "c0 only")):
                self.assert_outputs(rnn.forward(x, h, c), torch_reference(module, "lstm", x, h, c), what)

    def test_outputs_not_wanted(self):
        for cell in CELLS:
            module = make_module(cell, 5, 7, 2, True)
            with make_handle(cell, 5, 7, 2, True) as rnn:
                rnn.params.set_all(numpy_state(module.state_dict()))
                x, h0, c0 = self.inputs(cell, module, 2, 5, True, 2)
                y_all, _, _ = rnn.forward(x, h0, c0)
                y, h_n, c_n = rnn.forward(x, h0, c0, want_h=False, want_c=False)
                self.assertIsNone(h_n)
                np.testing.assert_array_equal(y, y_all, cell)

    def test_workspace_reuse_is_bitwise_equal(self):
        module = make_module("gru", 13, 33, 2, True)
        with make_handle("gru", 13, 33, 2, True) as rnn, A.Workspace() as ws:
            rnn.params.set_all(numpy_state(module.state_dict()))
            # A large call first, then smaller ones reuse (and must not be disturbed by) its memory.
            for batch, seq_len in ((4, 50), (1, 3), (3, 20)):
                x, h0, _ = self.inputs("gru", module, batch, seq_len, True, batch)
                fresh = rnn.forward(x, h0)
                reused = rnn.forward(x, h0, ws=ws)
                for a, b in zip(fresh[:2], reused[:2]):
                    np.testing.assert_array_equal(a, b)
            self.assertGreater(ws.size(), 0)

    def test_c0_rejected_for_non_lstm(self):
        with make_handle("gru", 5, 7) as rnn:
            x = np.zeros((1, 2, 5), np.float32)
            c0 = np.zeros((1, 1, 7), np.float32)
            with self.assertRaises(A.AttnError) as ctx:
                rnn.forward(x, None, c0)
            self.assertEqual(ctx.exception.status, A.ATTN_E_INVALID_ARG)
            with self.assertRaises(A.AttnError) as ctx:
                rnn.forward(x, want_c=True)
            self.assertEqual(ctx.exception.status, A.ATTN_E_INVALID_ARG)


# ---- the Kronecker recurrence -----------------------------------------------------------------
# docs/rnn.md: gate block g of the recurrent matrix is K_{g,0} (x) ... (x) K_{g,F-1}, the factors
# being the tensors weight_hh_l{l}_kron{f}[_reverse] (G, p_f, p_f). PyTorch has no such module, so
# the reference is the torch module whose weight_hh is that matrix.

GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}
KRON_FACTORS = ((6,), (2, 3), (3, 1, 2), (2, 2, 3), (2, 2, 2, 2), (1, 2, 1, 3, 1, 1, 1, 1, 2, 1))  # 10: more_factor_sizes


def make_kronecker(cell, input_size, factors, layers=2, bidir=True, bias=True):
    return A.Rnn(cell=CELLS[cell], recurrence=A.ATTN_RECURRENCE_KRONECKER, input_size=input_size,
                 hidden_size=int(np.prod(factors)), num_layers=layers, bidirectional=bidir, bias=bias,
                 num_factors=len(factors), factor_sizes=factors)


def kron_matrix(rnn, cell, layer, direction):
    """The (G*H, H) matrix in float64 with numpy's np.kron, from the factors read back by name."""
    suffix = "_reverse" if direction else ""
    o = rnn.options
    factors = [rnn.params.get("weight_hh_l%d_kron%d%s" % (layer, f, suffix)).astype(np.float64)
               for f in range(o.num_factors)]
    blocks = []
    for g in range(GATES[cell]):
        w = np.ones((1, 1))
        for k in factors:
            w = np.kron(w, k[g])
        blocks.append(w)
    return np.vstack(blocks)


def dense_twin(rnn, cell, bias=True):
    """The torch module (2 layers, bidirectional, input 5) computing what a KRONECKER handle does:
    weight_hh = its attn_rnn_recurrent_matrix, weight_ih and biases copied by name."""
    module = make_module(cell, 5, rnn.options.hidden_size, 2, True, bias)
    state = {}
    for name in module.state_dict():
        if name.startswith("weight_hh_l"):
            layer = int(name[len("weight_hh_l"):].split("_")[0])
            state[name] = rnn.recurrent_matrix(layer, int(name.endswith("_reverse")))
        else:
            state[name] = rnn.params.get(name)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return module


class TestKronecker(RnnTestCase):
    def check_kronecker(self, cell, factors, bias, seed):
        with make_kronecker(cell, 5, factors, bias=bias) as rnn:
            rnn.params.init(seed)
            module = dense_twin(rnn, cell, bias)
            for layer, direction in itertools.product(range(2), range(2)):
                self.assert_close(rnn.recurrent_matrix(layer, direction), kron_matrix(rnn, cell, layer, direction),
                                  "recurrent_matrix(%d, %d) vs np.kron" % (layer, direction))
            x, h0, c0 = self.inputs(cell, module, 3, 7, True, seed)
            self.assert_outputs(rnn.forward(x, h0, c0), torch_reference(module, cell, x, h0, c0),
                                "KRONECKER %s forward vs torch" % (factors,))

    def test_tensor_names(self):
        with make_kronecker("lstm", 5, (2, 3, 4)) as rnn:
            infos = rnn.params.infos()
            kron = [(n, s) for n, s, _ in infos if "_kron" in n]
            self.assertEqual(kron, [("weight_hh_l%d_kron%d%s" % (l, f, r), (4, p, p))
                                    for l in range(2) for r in ("", "_reverse") for f, p in enumerate((2, 3, 4))])
            self.assertFalse(any(n.startswith("weight_hh_l0_reverse") or n == "weight_hh_l0" for n, _, _ in infos))
            self.assertEqual(rnn.cost(1, 1).params, sum(c for _, _, c in infos))

    def test_bad_factors(self):
        for sizes, what in (((2, 3), "factor_sizes"), ((2, 0, 3), "factor_sizes"), ((), "num_factors")):
            with self.assertRaises(A.AttnError) as ctx:
                A.Rnn(cell=A.ATTN_CELL_GRU, recurrence=A.ATTN_RECURRENCE_KRONECKER, input_size=3, hidden_size=12,
                      num_factors=len(sizes), factor_sizes=sizes)
            self.assertEqual(ctx.exception.status, A.ATTN_E_INVALID_ARG)
            self.assertIn(what, ctx.exception.message)


def _add_kronecker_cases():
    for seed, (cell, factors, bias) in enumerate(itertools.product(CELLS, KRON_FACTORS, (True, False))):
        name = "test_%s_%s_%s" % (cell, "x".join(map(str, factors)), "bias" if bias else "nobias")
        setattr(TestKronecker, name, lambda self, a=(cell, factors, bias, 40 + seed): self.check_kronecker(*a))


_add_kronecker_cases()


# ---- variable-length batches: attn_rnn_forward_lengths vs pack_padded_sequence ----------------


def torch_packed_reference(module, cell, x, lengths, h0=None, c0=None):
    """(y, h_n, c_n or None) in float64 through pack_padded_sequence (enforce_sorted=False) ->
    module -> pad_packed_sequence, y padded with zeros to x's length."""
    m = copy.deepcopy(module).double()
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    packed = nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths, dtype=torch.int64), batch_first=True,
                                               enforce_sorted=False)
    shape = (m.num_layers * (2 if m.bidirectional else 1), xt.shape[0], m.hidden_size)

    def state(s):
        return torch.zeros(shape, dtype=torch.float64) if s is None else torch.from_numpy(np.asarray(s, np.float64))

    with torch.no_grad():
        if cell == "lstm":
            out, (h_n, c_n) = m(packed, (state(h0), state(c0)))
        else:
            out, h_n = m(packed, state(h0))
            c_n = None
        y, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=xt.shape[1])
    return y.numpy(), h_n.numpy(), None if c_n is None else c_n.numpy()


class TestForwardLengths(RnnTestCase):
    LENGTHS = (([3, 7, 1, 5, 7], 7), ([2, 4, 1], 6))  # unsorted; the second never reaches T

    def check_lengths(self, cell, layers, bidir, with_state, seed):
        torch.manual_seed(seed)
        module = make_module(cell, 5, 7, layers, bidir)
        with make_handle(cell, 5, 7, layers, bidir) as rnn:
            rnn.params.set_all(numpy_state(module.state_dict()))
            for lengths, seq_len in self.LENGTHS:
                x, h0, c0 = self.inputs(cell, module, len(lengths), seq_len, with_state, seed)
                for b, n in enumerate(lengths):
                    x[b, n:] = np.nan  # never read into a state
                got = rnn.forward_lengths(x, lengths, h0, c0)
                ref = torch_packed_reference(module, cell, np.nan_to_num(x), lengths, h0, c0)
                self.assert_outputs(got, ref, "lengths %s" % lengths)
                for b, n in enumerate(lengths):
                    self.assertTrue(np.all(got[0][b, n:] == 0), "y beyond lengths[%d] = %d" % (b, n))

    def test_kronecker(self):
        # The torch module given the materialized Kronecker matrices as weight_hh.
        for cell in CELLS:
            with make_kronecker(cell, 5, (2, 3)) as rnn:
                rnn.params.init(3)
                module = dense_twin(rnn, cell)
                lengths = [4, 1, 6, 2]
                x, h0, c0 = self.inputs(cell, module, 4, 6, True, 5)
                self.assert_outputs(rnn.forward_lengths(x, lengths, h0, c0),
                                    torch_packed_reference(module, cell, x, lengths, h0, c0), cell)

    def test_full_lengths_bitwise_equal_forward(self):
        for cell in CELLS:
            module = make_module(cell, 5, 7, 2, True)
            with make_handle(cell, 5, 7, 2, True) as rnn:
                rnn.params.set_all(numpy_state(module.state_dict()))
                x, h0, c0 = self.inputs(cell, module, 3, 6, True, 9)
                for a, b in zip(rnn.forward(x, h0, c0), rnn.forward_lengths(x, [6, 6, 6], h0, c0)):
                    if a is not None:
                        np.testing.assert_array_equal(a, b, cell)

    def test_bad_lengths(self):
        with make_handle("gru", 5, 7) as rnn:
            x = np.zeros((2, 3, 5), np.float32)
            for lengths in ([0, 3], [3, 4], [-2, 1]):
                with self.assertRaises(A.AttnError) as ctx:
                    rnn.forward_lengths(x, lengths)
                self.assertEqual(ctx.exception.status, A.ATTN_E_SHAPE)
                self.assertIn("lengths[", ctx.exception.message)


def _add_lengths_cases():
    table = itertools.product(CELLS, (1, 2), (False, True), (False, True))
    for seed, (cell, layers, bidir, with_state) in enumerate(table):
        name = "test_%s_L%d_%s_%s" % (cell, layers, "bi" if bidir else "uni", "h0" if with_state else "zero_state")
        setattr(TestForwardLengths, name,
                lambda self, a=(cell, layers, bidir, with_state, 60 + seed): self.check_lengths(*a))


_add_lengths_cases()


# ---- the options struct and the tensor list --------------------------------------------------


class TestOptionsAndParams(RnnTestCase):
    def test_library_exports_every_declared_function(self):
        self.assertEqual(A.MISSING, [])

    def test_options_struct_mirrors_header(self):
        o = A.RnnOptions()
        A.check(A.lib.attn_rnn_options_init(o))
        # struct_size is the C sizeof: equal to ctypes' only if every field lines up.
        self.assertEqual(o.struct_size, A.ctypes.sizeof(A.RnnOptions))
        self.assertEqual((o.cell, o.recurrence, o.bidirectional, o.bias, o.num_layers, o.flags),
                         (A.ATTN_CELL_LSTM, A.ATTN_RECURRENCE_DENSE, 0, 1, 1, 0))
        with make_handle("gru", 13, 33, 3, True, False) as rnn:
            got = A.RnnOptions()
            A.check(A.lib.attn_rnn_options_init(got))  # so that the fields appended in 1.2 come too
            A.check(A.lib.attn_rnn_get_options(rnn.ptr, got))
            self.assertEqual(bytes(got), bytes(rnn.options))

    def test_tensor_names_are_state_dict_keys(self):
        for cell, layers, bidir, bias in itertools.product(CELLS, (1, 3), (False, True), (False, True)):
            module = make_module(cell, 5, 7, layers, bidir, bias)
            with make_handle(cell, 5, 7, layers, bidir, bias) as rnn:
                # Same names, shapes and order (docs/rnn.md lists tensors in state_dict order).
                expected = [(k, tuple(v.shape), v.numel()) for k, v in module.state_dict().items()]
                self.assertEqual(rnn.params.infos(), expected, (cell, layers, bidir, bias))
                self.assertEqual(rnn.params.count(), len(expected))

    def test_set_get_round_trip(self):
        module = make_module("lstm", 5, 7, 2, True)
        with make_handle("lstm", 5, 7, 2, True) as rnn:
            state = numpy_state(module.state_dict())
            rnn.params.set_all(state)
            for name, value in rnn.params.state_dict().items():
                np.testing.assert_array_equal(value, state[name], name)

    def test_set_wrong_count_names_tensor(self):
        with make_handle("lstm", 5, 7) as rnn:
            with self.assertRaises(A.AttnError) as ctx:
                rnn.params.set("weight_hh_l0", np.zeros((28, 6), np.float32))
            self.assertEqual(ctx.exception.status, A.ATTN_E_SHAPE)
            self.assertIn("weight_hh_l0", ctx.exception.message)
            with self.assertRaises(A.AttnError) as ctx:
                rnn.params.set("weight_hh_l1", np.zeros((28, 7), np.float32))
            self.assertEqual(ctx.exception.status, A.ATTN_E_NOT_FOUND)


# ---- safetensors ------------------------------------------------------------------------------


class TestSafetensors(RnnTestCase):
    CONFIG = dict(input_size=5, hidden=7, layers=2, bidir=True, bias=True)

    def setUp(self):
        super().setUp()
        torch.manual_seed(11)

    def module_and_handle(self, cell):
        c = self.CONFIG
        module = make_module(cell, c["input_size"], c["hidden"], c["layers"], c["bidir"], c["bias"])
        rnn = make_handle(cell, c["input_size"], c["hidden"], c["layers"], c["bidir"], c["bias"])
        return module, rnn

    def compare(self, rnn, module, cell, what):
        x, h0, c0 = self.inputs(cell, module, 3, 9, True, 5)
        self.assert_outputs(rnn.forward(x, h0, c0), torch_reference(module, cell, x, h0, c0), what)

    def test_own_writer_and_reader_agree(self):
        # The hand-written format code is checked first, so a failure below points at libattn.
        tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64([1.5, -2]),
                   "c": np.float16([[0.25]])}
        path = self.path("own.safetensors")
        A.write_safetensors(path, tensors)
        with open(path, "rb") as f:
            blob = f.read()
        n = int.from_bytes(blob[:8], "little")
        self.assertEqual(n % 8, 0)
        self.assertEqual(blob[8:9], b"{")
        got, dtypes, meta = A.read_safetensors(path)
        self.assertEqual(meta, {"format": "pt"})
        self.assertEqual(dtypes, {"a": "F32", "b": "F64", "c": "F16"})
        for k in tensors:
            np.testing.assert_array_equal(got[k], tensors[k])
            self.assertEqual(got[k].dtype, tensors[k].dtype)

    def check_load(self, cell, dtype):
        module, rnn = self.module_and_handle(cell)
        with rnn:
            if dtype == "F32":
                tensors = numpy_state(module.state_dict())
            elif dtype == "F64":
                tensors = numpy_state(module.state_dict())
                tensors = {k: v.astype(np.float64) for k, v in tensors.items()}
            elif dtype == "F16":
                tensors = {k: v.half().numpy() for k, v in module.state_dict().items()}
            else:  # BF16: numpy has no bfloat16, so write torch's rounded bits as raw bytes
                tensors = {k: A.RawTensor("BF16", v.shape, v.bfloat16().view(torch.int16).numpy().tobytes())
                           for k, v in module.state_dict().items()}
            path = self.path("%s_%s.safetensors" % (cell, dtype))
            A.write_safetensors(path, tensors)
            rnn.params.load(path)
            if dtype in ("F16", "BF16"):
                # The reference is the module holding the same rounded weights.
                tdt = torch.float16 if dtype == "F16" else torch.bfloat16
                module.load_state_dict({k: v.to(tdt).float() for k, v in module.state_dict().items()})
            for name, value in numpy_state(module.state_dict()).items():
                np.testing.assert_array_equal(rnn.params.get(name), value, "%s %s" % (dtype, name))
            self.compare(rnn, module, cell, "loaded from %s" % dtype)

    def test_load_with_prefix(self):
        for cell in CELLS:
            parent = nn.Module()
            parent.embed = nn.Linear(3, 5)
            parent.rnn, rnn = self.module_and_handle(cell)
            parent.head = nn.Linear(14, 2)
            with rnn:
                path = self.path("parent_%s.safetensors" % cell)
                state = numpy_state(parent.state_dict())
                self.assertIn("rnn.weight_ih_l0", state)
                A.write_safetensors(path, state)
                # Tensors outside the prefix (embed., head.) are not "unknown".
                rnn.params.load(path, "rnn.", A.ATTN_LOAD_REJECT_UNKNOWN)
                self.compare(rnn, parent.rnn, cell, "loaded with prefix")
                with self.assertRaises(A.AttnError) as ctx:
                    rnn.params.load(path)
                self.assertEqual(ctx.exception.status, A.ATTN_E_NOT_FOUND)
                self.assertIn("weight_ih_l0", ctx.exception.message)

    def test_reject_unknown(self):
        module, rnn = self.module_and_handle("gru")
        with rnn:
            state = {"rnn." + k: v for k, v in numpy_state(module.state_dict()).items()}
            state["rnn.weight_ih_l7"] = np.zeros((21, 14), np.float32)
            path = self.path("extra.safetensors")
            A.write_safetensors(path, state)
            before = rnn.params.state_dict()
            with self.assertRaises(A.AttnError) as ctx:
                rnn.params.load(path, "rnn.", A.ATTN_LOAD_REJECT_UNKNOWN)
            self.assertIn("weight_ih_l7", ctx.exception.message)
            self.assert_unchanged(rnn, before)
            rnn.params.load(path, "rnn.")  # without the flag the extra tensor is ignored
            self.compare(rnn, module, "gru", "loaded ignoring an unknown tensor")

    def assert_unchanged(self, rnn, before):
        for name, value in rnn.params.state_dict().items():
            np.testing.assert_array_equal(value, before[name], "%s changed by a failed load" % name)

    def test_save_round_trip_through_torch(self):
        for cell in CELLS:
            module, rnn = self.module_and_handle(cell)
            with rnn:
                state = numpy_state(module.state_dict())
                rnn.params.set_all(state)
                for prefix in (None, "rnn."):
                    p = prefix or ""
                    path = self.path("saved_%s.safetensors" % cell)
                    rnn.params.save(path, prefix)
                    tensors, dtypes, meta = A.read_safetensors(path)
                    self.assertEqual(meta, {"format": "pt"})
                    self.assertEqual(set(tensors), {p + k for k in state})
                    self.assertEqual(set(dtypes.values()), {"F32"})
                    for k, v in state.items():
                        self.assertEqual(tensors[p + k].shape, v.shape, k)
                        np.testing.assert_array_equal(tensors[p + k], v, k)
                    # Another handle loads the file back, and produces the same outputs exactly.
                    with make_handle(cell, 5, 7, 2, True) as other:
                        other.params.load(path, prefix)
                        x, h0, c0 = self.inputs(cell, module, 2, 4, True, 3)
                        for a, b in zip(rnn.forward(x, h0, c0), other.forward(x, h0, c0)):
                            if a is not None:
                                np.testing.assert_array_equal(a, b)
                # A fresh PyTorch module given the saved tensors computes what the original does.
                torch.manual_seed(99)
                fresh = make_module(cell, 5, 7, 2, True)
                fresh.load_state_dict({k[len("rnn."):]: torch.from_numpy(v.copy())
                                       for k, v in tensors.items()})
                x, h0, c0 = self.inputs(cell, module, 2, 6, True, 4)
                ref = torch_reference(module, cell, x, h0, c0)
                for a, b in zip(torch_reference(fresh, cell, x, h0, c0), ref):
                    if a is not None:
                        np.testing.assert_array_equal(a, b)
                self.compare(rnn, fresh, cell, "torch module loaded from attn_params_save")

    def test_wrong_shape_names_tensor_and_changes_nothing(self):
        module, rnn = self.module_and_handle("lstm")
        with rnn:
            rnn.params.set_all(numpy_state(module.state_dict()))
            before = rnn.params.state_dict()
            torch.manual_seed(12)
            other = numpy_state(make_module("lstm", 5, 7, 2, True).state_dict())
            # Every other tensor is valid (and different), and the bad one comes last in the file,
            # so a load that wrote tensors as it went would be caught.
            bad = other.pop("weight_hh_l1")[:, :-1]
            other["weight_hh_l1"] = bad
            path = self.path("wrong_shape.safetensors")
            A.write_safetensors(path, other)
            with self.assertRaises(A.AttnError) as ctx:
                rnn.params.load(path)
            self.assertEqual(ctx.exception.status, A.ATTN_E_SHAPE)
            self.assertIn("weight_hh_l1", ctx.exception.message)
            self.assert_unchanged(rnn, before)

    def test_missing_tensor(self):
        module, rnn = self.module_and_handle("gru")
        with rnn:
            before = rnn.params.state_dict()
            state = numpy_state(module.state_dict())
            del state["bias_hh_l1_reverse"]
            path = self.path("missing.safetensors")
            A.write_safetensors(path, state)
            with self.assertRaises(A.AttnError) as ctx:
                rnn.params.load(path)
            self.assertEqual(ctx.exception.status, A.ATTN_E_NOT_FOUND)
            self.assertIn("bias_hh_l1_reverse", ctx.exception.message)
            self.assert_unchanged(rnn, before)
            rnn.params.load(path, None, A.ATTN_LOAD_ALLOW_MISSING)
            for name, value in rnn.params.state_dict().items():
                np.testing.assert_array_equal(value, state.get(name, before[name]), name)


def _add_load_cases():
    for cell in CELLS:
        for dtype in ("F32", "F64", "F16", "BF16"):
            setattr(TestSafetensors, "test_load_%s_%s" % (dtype, cell),
                    lambda self, c=cell, d=dtype: self.check_load(c, d))


_add_load_cases()


if __name__ == "__main__":
    sys.exit(A.run_tests(verbosity=1))  # 1200 test names would bury the failures
