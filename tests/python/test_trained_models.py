"""The trained example models of models/ (written by models/train.py) run by libattn and PyTorch.

- char_lstm: its recurrent layer loaded by libattn from the file under the prefix "lstm." and run on
  the held-out text (models/heldout.txt, embedded with the file's embed.weight) against torch.nn.LSTM
  with the same weights; the logits built on libattn's output give the held-out loss, below the
  bigram baseline.
- char_attention: each attention layer loaded by libattn under "layers.{l}.attn." (ATTN_MHA_FULL,
  causal) and run on the shipped inputs (models/char_attention_inputs.safetensors) against
  torch.nn.MultiheadAttention with the causal mask, outputs and attention matrices; the whole model
  with libattn's attention layers against PyTorch's.
- The shipped inputs are what the model computes from heldout.txt at the documented offsets (so they
  can be regenerated), layer 0's is LayerNorm1(embed[c] + pe[i]), and a numpy recomputation of the
  sinusoidal positions pe matches train.py's for N up to 8192.

References run in float64 from the float32 weights (which widen exactly), so the errors measured are
libattn's float32 errors. Errors are max|libattn - reference| / max|reference|, printed. Run by ctest
(tests/python.cmake) with ATTN_LIB naming the library; by hand:
ATTN_LIB=build/libattn.so /usr/bin/python3 tests/python/test_trained_models.py
(ATTN_MODELS_DIR overrides the models directory, e.g. for the output of train.py --smoke).
"""

import copy
import importlib.util
import os
import sys
import unittest

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as e:  # fail loudly: a missing torch must not look like a pass
    print("cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)

import attn_ffi as A

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("ATTN_MODELS_DIR") or os.path.join(SOURCE, "models")
REL_TOL = 1e-4
LN_EPS = 1e-5
ERRORS = {}  # what: measured relative error, printed at the end


def load_train_module():
    """models/train.py as a module (its sinusoid() is the definition the files were made with)."""
    spec = importlib.util.spec_from_file_location("libattn_models_train", os.path.join(SOURCE, "models", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def path(name):
    return os.path.join(MODELS, name)


def read(name):
    tensors, dtypes, metadata = A.read_safetensors(path(name))
    assert set(dtypes.values()) == {"F32"}, dtypes
    return tensors, metadata


def heldout():
    with open(path("heldout.txt"), encoding="utf-8", newline="") as f:
        return f.read()


def token_ids(text, vocab):
    index = {int(c): i for i, c in enumerate(vocab)}
    return np.array([index[ord(c)] for c in text], dtype=np.int64)


def numpy_sinusoid(n, e):
    """pe[i, 2k] = sin(i / 10000^(2k/e)), pe[i, 2k+1] = cos(...), in float64, rounded to float32."""
    k2 = np.arange(0, e, 2, dtype=np.float64)
    a = np.arange(n, dtype=np.float64)[:, None] / np.power(10000.0, k2 / e)[None, :]
    pe = np.empty((n, e), dtype=np.float64)
    pe[:, 0::2] = np.sin(a)
    pe[:, 1::2] = np.cos(a)
    return pe.astype(np.float32)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def sub_state(state, prefix):
    return {k[len(prefix):]: t64(v) for k, v in state.items() if k.startswith(prefix)}


def causal_mask(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


def torch_mha(state, l, e, heads):
    m = nn.MultiheadAttention(e, heads, bias=True, batch_first=True).double()
    m.load_state_dict(sub_state(state, "layers.%d.attn." % l))
    return m.eval()


def torch_attention_model(state, tokens, pe, heads, attn=None):
    """The char_attention model in float64, written out from its tensors (independent of train.py's
    module): returns (logits [B, T, V], [norm1 output of each layer]). `attn(l, h)`, if given,
    replaces layer l's attention (e.g. by libattn's)."""
    e = state["embed.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
    ln = lambda x, name: F.layer_norm(x, (e,), t64(state[name + ".weight"]), t64(state[name + ".bias"]), LN_EPS)
    lin = lambda x, name: F.linear(x, t64(state[name + ".weight"]), t64(state[name + ".bias"]))
    t = tokens.shape[1]
    x = t64(state["embed.weight"])[torch.from_numpy(tokens)] + t64(pe[:t])
    inputs = []
    with torch.no_grad():
        for l in range(layers):
            h = ln(x, "layers.%d.norm1" % l)
            inputs.append(h)
            if attn is None:
                a = torch_mha(state, l, e, heads)(h, h, h, attn_mask=causal_mask(t), need_weights=False)[0]
            else:
                a = t64(attn(l, h.numpy()))
            x = x + a
            x = x + lin(F.gelu(lin(ln(x, "layers.%d.norm2" % l), "layers.%d.ff.0" % l)), "layers.%d.ff.2" % l)
        logits = lin(ln(x, "norm_f"), "head")
    return logits.numpy(), [h.numpy() for h in inputs]


def nats_per_char(logits, targets):
    logits = np.asarray(logits, dtype=np.float64)
    m = logits.max(axis=-1, keepdims=True)
    logz = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return float(np.mean(logz - picked))


class TrainedTestCase(unittest.TestCase):
    def assert_close(self, got, ref, what, tol=REL_TOL):
        self.assertEqual(got.shape, ref.shape, what)
        self.assertTrue(np.all(np.isfinite(got)), "%s: non-finite values" % what)
        ref = np.asarray(ref, dtype=np.float64)
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) / max(float(np.max(np.abs(ref))), 1e-30)
        ERRORS[what] = err
        self.assertLessEqual(err, tol, "%s: max|got - ref| / max|ref| = %.3g > %.3g" % (what, err, tol))


class TestFiles(TrainedTestCase):
    def test_vocab_and_heldout(self):
        att, att_meta = read("char_attention.safetensors")
        lstm, lstm_meta = read("char_lstm.safetensors")
        vocab = att["vocab"]
        np.testing.assert_array_equal(vocab, lstm["vocab"])
        self.assertTrue(np.all(vocab == np.round(vocab)) and np.all(np.diff(vocab) > 0), "sorted code points")
        self.assertEqual(len(vocab), int(att_meta["vocab_size"]))
        self.assertEqual(att["embed.weight"].shape[0], len(vocab))
        self.assertEqual(lstm["head.weight"].shape[0], len(vocab))
        text = heldout()
        self.assertEqual(len(text), 16384)
        self.assertLessEqual({ord(c) for c in text}, set(int(c) for c in vocab))
        for name, size in (("char_attention.safetensors", 2 << 20), ("char_lstm.safetensors", 2 << 20),
                           ("char_attention_inputs.safetensors", 2 << 20), ("heldout.txt", 16384)):
            self.assertLessEqual(os.path.getsize(path(name)), size, name)

    def test_sinusoid_recomputed_in_numpy(self):
        train = load_train_module()
        e = read("char_attention.safetensors")[0]["embed.weight"].shape[1]
        n = 8192
        ref = train.sinusoid(n, e)
        got = numpy_sinusoid(n, e)
        diff = np.abs(got.astype(np.float64) - ref)
        ERRORS["sinusoid numpy vs train.py, N=8192 (max abs)"] = float(diff.max())
        ERRORS["sinusoid numpy vs train.py: elements not bitwise equal"] = int(np.count_nonzero(got != ref))
        self.assertLessEqual(float(diff.max()), 2.0 ** -23, "at most an ulp of float32 apart")
        self.assertGreater(np.mean(got == ref), 0.999)

    def test_inputs_regenerate_from_heldout(self):
        state, meta = read("char_attention.safetensors")
        inputs, in_meta = read("char_attention_inputs.safetensors")
        offsets = [int(o) for o in in_meta["offsets"].split(",")]
        np.testing.assert_array_equal(inputs["offsets"], np.array(offsets, np.float32))
        t = int(in_meta["length"])
        self.assertEqual(t, int(meta["context"]))
        e = state["embed.weight"].shape[1]
        ids = token_ids(heldout(), state["vocab"])
        tokens = np.stack([ids[o:o + t] for o in offsets])
        _, ref = torch_attention_model(state, tokens, numpy_sinusoid(t, e), int(meta["num_heads"]))
        self.assertEqual(len(ref), int(meta["num_layers"]))
        self.assertEqual(sorted(k for k in inputs if k != "offsets"), ["layers.%d.input" % l for l in range(len(ref))])
        for l, r in enumerate(ref):
            self.assert_close(inputs["layers.%d.input" % l], r, "shipped layers.%d.input vs float64 recomputation" % l)
        # Layer 0's input from text alone, in numpy: LayerNorm1(embed[c] + pe[i]).
        x = state["embed.weight"][tokens].astype(np.float64) + numpy_sinusoid(t, e)
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + LN_EPS)
        x = x * state["layers.0.norm1.weight"] + state["layers.0.norm1.bias"]
        self.assert_close(inputs["layers.0.input"], x, "shipped layers.0.input vs numpy LayerNorm1(embed + pe)")


class TestAttention(TrainedTestCase):
    @classmethod
    def setUpClass(cls):
        cls.file = path("char_attention.safetensors")
        cls.state, cls.meta = read("char_attention.safetensors")
        cls.inputs, _ = read("char_attention_inputs.safetensors")
        cls.e = cls.state["embed.weight"].shape[1]
        cls.heads = int(cls.meta["num_heads"])
        cls.layers = int(cls.meta["num_layers"])

    def handle(self, l):
        mha = A.Mha(kind=A.ATTN_MHA_FULL, embed_dim=self.e, num_heads=self.heads, bias=1, causal=1)
        mha.params.load(self.file, "layers.%d.attn." % l, A.ATTN_LOAD_REJECT_UNKNOWN)
        return mha

    def test_layers_on_shipped_inputs(self):
        for l in range(self.layers):
            x = self.inputs["layers.%d.input" % l]
            with self.handle(l) as mha:
                for name in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
                    np.testing.assert_array_equal(mha.params.get(name), self.state["layers.%d.attn.%s" % (l, name)])
                out = mha.forward(x)
                weights = mha.attention_matrix(x)
            module = torch_mha(self.state, l, self.e, self.heads)
            with torch.no_grad():
                ref, ref_w = module(t64(x), t64(x), t64(x), attn_mask=causal_mask(x.shape[1]), need_weights=True,
                                    average_attn_weights=False)
            self.assert_close(out, ref.numpy(), "layers.%d.attn output" % l)
            self.assert_close(weights, ref_w.numpy(), "layers.%d.attn attention matrix" % l)
            self.assertTrue(np.all(np.triu(weights, 1) == 0), "causal: no weight above the diagonal")

    def test_model_with_libattn_attention(self):
        inputs, in_meta = read("char_attention_inputs.safetensors")
        t = int(in_meta["length"])
        offsets = [int(o) for o in in_meta["offsets"].split(",")]
        ids = token_ids(heldout(), self.state["vocab"])
        tokens = np.stack([ids[o:o + t] for o in offsets])
        targets = np.stack([ids[o + 1:o + t + 1] for o in offsets])
        pe = numpy_sinusoid(t, self.e)
        handles = [self.handle(l) for l in range(self.layers)]
        try:
            got, _ = torch_attention_model(self.state, tokens, pe, self.heads,
                                           attn=lambda l, h: handles[l].forward(A.f32(h)))
        finally:
            for h in handles:
                h.close()
        ref, _ = torch_attention_model(self.state, tokens, pe, self.heads)
        self.assert_close(got, ref, "char_attention logits with libattn's attention layers")
        loss = nats_per_char(got, targets)
        ERRORS["char_attention held-out nats/char (libattn attention, %d windows)" % len(offsets)] = loss
        self.assertLess(loss, float(self.meta["baseline_bigram"]), "the trained model beats the bigram baseline")


class TestLstm(TrainedTestCase):
    def test_lstm_on_heldout(self):
        state, meta = read("char_lstm.safetensors")
        e, hidden = state["lstm.weight_ih_l0"].shape[1], state["lstm.weight_hh_l0"].shape[1]
        ids = token_ids(heldout(), state["vocab"])
        seqs, length = 16, len(ids) // 16  # 16 consecutive sequences of 1024 characters, zero initial state
        tokens = ids[:seqs * length].reshape(seqs, length)
        x = state["embed.weight"][tokens]
        with A.Rnn(cell=A.ATTN_CELL_LSTM, input_size=e, hidden_size=hidden, num_layers=1) as rnn:
            rnn.params.load(path("char_lstm.safetensors"), "lstm.", A.ATTN_LOAD_REJECT_UNKNOWN)
            y, h_n, c_n = rnn.forward(x)
        module = nn.LSTM(e, hidden, num_layers=1, batch_first=True).double()
        module.load_state_dict(sub_state(state, "lstm."))
        with torch.no_grad():
            ref_y, (ref_h, ref_c) = module(t64(x))
        self.assert_close(y, ref_y.numpy(), "char_lstm y [16, 1024, %d]" % hidden)
        self.assert_close(h_n, ref_h.numpy(), "char_lstm h_n")
        self.assert_close(c_n, ref_c.numpy(), "char_lstm c_n")
        logits = y.astype(np.float64) @ state["head.weight"].T.astype(np.float64) + state["head.bias"]
        ref_logits = ref_y.numpy() @ state["head.weight"].T.astype(np.float64) + state["head.bias"]
        self.assert_close(logits, ref_logits, "char_lstm logits")
        loss = nats_per_char(logits[:, :-1], tokens[:, 1:])
        ERRORS["char_lstm held-out nats/char (libattn, 16 x 1024)"] = loss
        self.assertLess(loss, float(meta["baseline_bigram"]), "the trained model beats the bigram baseline")


def tearDownModule():
    """The measured errors and losses, after the tests and before run_tests' closing line."""
    print("measured:", file=sys.stderr)
    for what, value in sorted(ERRORS.items()):
        print("  %-72s %.3g" % (what, value), file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(A.run_tests(verbosity=1))
