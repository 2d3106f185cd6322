"""attn-explore, the demo (benchmarks/explore/), reports what the library computes.

The demo runs once on its tiny configuration (--quick --csv DIR --no-plots --quiet --models models/),
and the numbers of its CSV files are recomputed here through attn_ffi (the same library calls, made
from Python on inputs rebuilt in numpy) and numpy float64; timings are only checked for sense:
- attention_time.csv: GFLOP and workspace MiB of each (kind, N, r) are attn_mha_cost's, to the 9
  digits written; the timings are positive and GFLOP/s = GFLOP / ms.
- attention_error.csv: the relative Frobenius error of each approximation's attention matrix against
  FULL's, on layer 0 of models/char_attention.safetensors ('trained') and on params initialized with
  the demo's seed ('random'), at the input rebuilt as explore_model.c builds it (LayerNorm1(embed[c_i]
  + sinusoid(i)) of the first N held-out characters); 'optimum' rows against
  sqrt(sum_heads attn_lowrank_error(head, r)^2) / ||FULL||_F; attention_optimum.csv at those ranks;
  the printed table (attention_error_table.csv) holds the same values.
- spectrum.csv (and spectrum_curves.csv) for some (weights, layer) pairs: rank reports averaged over
  the shipped layer inputs, with the demo's causal setting read from explore.h (XP_TRAINED_CAUSAL),
  and the cum@k columns from attn_singular_values.
- recurrent_capacity.csv: parameters, MFLOP/step (attn_rnn_cost / attn_memrnn_cost over the demo's
  batch x steps, read from explore_recurrent.c) and the rank columns of attn_rnn_recurrent_matrix.
- lstm_spectrum.csv and lstm_truncation.csv: rank reports of the trained LSTM's W_hh (whole and per
  gate); the held-out loss of the LSTM with W_hh replaced by attn_lowrank_factors at each rank, run
  through attn_ffi on the demo's windows, loss in numpy float64; the dense loss also against
  torch.nn.LSTM in float64 (that comparison is skipped when torch is missing).
- --weights FILE for a user's LSTM and nn.MultiheadAttention (the trained tensors saved through
  attn_ffi under a prefix of the test's own): user_rnn_spectrum.csv, attention_time.csv and
  attention_error.csv against the library, on the demo's random inputs (its xorshift64, rebuilt).
- The error paths: each exits 1 with one line on stderr starting "attn-explore:" and nothing on stdout
  beyond the header line; --help exits 0 and mentions every option the parser accepts.
Values are compared with a relative tolerance (REL_TOL; the loss against PyTorch TORCH_TOL); the
largest deviation of each kind is printed at the end.

ctest (tests/python.cmake) sets ATTN_LIB and ATTN_EXPLORE (the built attn-explore; empty when the
benchmarks are not configured: the test then exits 77, which ctest reports as skipped). By hand:
ATTN_LIB=build/libattn.so ATTN_EXPLORE=build/benchmarks/attn-explore /usr/bin/python3 tests/python/test_explore.py
(ATTN_MODELS_DIR overrides the models directory).
"""

import collections
import csv
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import attn_ffi as A

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPLORE_SRC = os.path.join(SOURCE, "benchmarks", "explore")
MODELS = os.environ.get("ATTN_MODELS_DIR") or os.path.join(SOURCE, "models")
EXPLORE = os.environ.get("ATTN_EXPLORE", "")
SKIP_CODE = 77  # tests/python.cmake: SKIP_RETURN_CODE of this test

REL_TOL = 1e-5    # the demo's numbers against the same library calls made here
ABS_FLOOR = 1e-12  # for values that are 0 (the error at full rank)
TORCH_TOL = 1e-5  # the dense LSTM's held-out loss against torch.nn.LSTM (float64)
QUICK = ["--quick", "--no-plots", "--quiet"]
SHARED = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")  # explore_attention.c
MEASURED = {}  # kind of value: largest relative deviation (or count), printed at the end


# ---- what the demo's sources fix ------------------------------------------------------------------


def source_text(name):
    with open(os.path.join(EXPLORE_SRC, name), encoding="utf-8") as f:
        return f.read()


def c_define(name):
    """#define NAME <integer> of explore.h (the trained model's facts the weights do not carry)."""
    m = re.search(r"^#define\s+%s\s+(\d+)\b" % name, source_text("explore.h"), re.M)
    assert m, "explore.h defines no %s" % name
    return int(m.group(1))


def c_enum(name, file):
    """`NAME = <integer>` of an enum in one of the demo's sources."""
    m = re.search(r"\b%s\s*=\s*(\d+)\b" % name, source_text(file))
    assert m, "%s has no %s" % (file, name)
    return int(m.group(1))


def parser_options():
    """Every long option explore_main.c's parse_args compares an argument with."""
    return sorted(set(re.findall(r'strcmp\(a, "(--[a-z-]+)"\)', source_text("explore_main.c"))))


# ---- inputs rebuilt in numpy ----------------------------------------------------------------------


def read_model(name):
    return A.read_safetensors(os.path.join(MODELS, name))[0]


def heldout_ids(vocab):
    """The held-out text as ids of `vocab` (float32 code points), as explore_model.c's text_ids."""
    with open(os.path.join(MODELS, "heldout.txt"), encoding="utf-8", newline="") as f:
        text = f.read()
    index = {int(c): i for i, c in enumerate(vocab)}
    return np.array([index[ord(c)] for c in text], dtype=np.int64)


def layer0_input(state, ids, n):
    """explore_model.c's xp_layer0_input, step for step: float32 embed + (float)sin/cos(a) with a in
    double, the LayerNorm's mean and variance in double, ((x - mean) * inv) rounded to float, then
    * gain + bias in float."""
    e = state["embed.weight"].shape[1]
    k2 = np.arange(0, e, 2, dtype=np.float64)
    a = np.arange(n, dtype=np.float64)[:, None] / np.power(10000.0, k2 / e)[None, :]
    pe = np.empty((n, e), dtype=np.float32)
    pe[:, 0::2] = np.sin(a)
    pe[:, 1::2] = np.cos(a)
    x = state["embed.weight"][ids[:n]] + pe
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    var = ((x64 - mean) ** 2).sum(axis=1, keepdims=True) / e
    normed = ((x64 - mean) / np.sqrt(var + 1e-5)).astype(np.float32)
    return normed * state["layers.0.norm1.weight"] + state["layers.0.norm1.bias"]


def xp_random(n, seed, scale):
    """explore_util.c's xp_random: xorshift64 from seed * 0x9E3779B97F4A7C15 + 1, each value
    scale * (2 * top24bits * 2^-24 - 1) in float."""
    mask = (1 << 64) - 1
    s = (seed * 0x9E3779B97F4A7C15 + 1) & mask
    bits = np.empty(n, dtype=np.float64)
    for i in range(n):
        s ^= (s << 13) & mask
        s ^= s >> 7
        s ^= (s << 17) & mask
        bits[i] = s >> 40
    u = (bits * 2.0 ** -24).astype(np.float32)
    return np.float32(scale) * (np.float32(2.0) * u - np.float32(1.0))


def pooling(k, n):
    """explore_attention.c's set_pooling: row s averages keys floor(s n / k) .. floor((s + 1) n / k) - 1."""
    pool = np.zeros((k, n), dtype=np.float32)
    for s in range(k):
        first, end = s * n // k, (s + 1) * n // k
        pool[s, first:end] = np.float32(1.0) / np.float32(end - first)
    return pool


def nats_per_char(y, head_w, head_b, targets):
    logits = y.reshape(-1, y.shape[-1]).astype(np.float64) @ head_w.T.astype(np.float64) + head_b
    m = logits.max(axis=1, keepdims=True)
    logz = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float(np.mean(logz - logits[np.arange(len(targets)), targets]))


# ---- running the demo -----------------------------------------------------------------------------


def run_explore(args, timeout=120):
    return subprocess.run([EXPLORE] + list(args), capture_output=True, text=True, timeout=timeout)


def read_csv(directory, name):
    with open(os.path.join(directory, name + ".csv"), newline="") as f:
        return list(csv.DictReader(f))


def help_default(help_text, option):
    m = re.search(r"^\s*%s\b.*\(default (\d+)\)" % re.escape(option), help_text, re.M)
    assert m, "--help gives no default for %s" % option
    return int(m.group(1))


class ExploreTestCase(unittest.TestCase):
    """Shared: the demo's run on the shipped models (once), the models, and comparisons."""

    main_out = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = TMP
        cls.help = run_explore(["--help"]).stdout
        cls.seed = help_default(cls.help, "--seed")
        cls.heads = c_define("XP_TRAINED_HEADS")
        cls.context = c_define("XP_TRAINED_CONTEXT")
        cls.causal = c_define("XP_TRAINED_CAUSAL")
        cls.att = read_model("char_attention.safetensors")
        cls.embed_dim = cls.att["embed.weight"].shape[1]
        cls.ids = heldout_ids(cls.att["vocab"])

    @classmethod
    def main_run(cls):
        """The demo on the shipped models, run once for every test class: (csv dir, stdout, stderr)."""
        if ExploreTestCase.main_out is None:
            directory = os.path.join(cls.tmp, "main")
            p = run_explore(QUICK + ["--csv", directory, "--models", MODELS])
            if p.returncode != 0:
                raise AssertionError("attn-explore --quick failed (%d): %s" % (p.returncode, p.stderr))
            ExploreTestCase.main_out = (directory, p.stdout, p.stderr)
        return ExploreTestCase.main_out

    def close(self, got, ref, what, tol=REL_TOL, where=""):
        """|got - ref| <= tol |ref| + ABS_FLOOR; records the relative deviation (absolute when ref = 0)
        under `what`; `where` only goes into the failure message."""
        diff = abs(got - ref)
        dev = diff / abs(ref) if ref else diff
        MEASURED[what] = max(MEASURED.get(what, 0.0), dev)
        self.assertLessEqual(diff, tol * abs(ref) + ABS_FLOOR, "%s %s: demo %.9g, library %.9g (relative %.3g > %.3g)"
                             % (what, where, got, ref, dev, tol))

    def assert_cell(self, cell, value, what):
        """A CSV number (%.9g) is exactly the library's value written with %.9g."""
        self.assertEqual(cell, "%.9g" % value, what)

    # ---- attention through attn_ffi ----

    def mha(self, tensors, kind, r, n, causal, pooled=False, heads=None, embed_dim=None):
        """explore_attention.c's make_mha (+ set_pooling): init from the seed, then the trained
        nn.MultiheadAttention tensors when given."""
        options = dict(kind=kind, embed_dim=embed_dim or self.embed_dim, num_heads=heads or self.heads,
                       causal=causal)
        if kind == A.ATTN_MHA_LINFORMER:
            options.update(max_seq_len=n, proj_len=r)
        elif kind == A.ATTN_MHA_NYSTROM:
            options.update(num_landmarks=r)
        mha = A.Mha(**options)
        mha.params.init(self.seed)
        if tensors is not None:
            for name in SHARED:
                mha.params.set(name, tensors[name])
        if pooled:
            mha.params.set("proj_e", pooling(r, n))
            mha.params.set("proj_f", pooling(r, n))
        return mha

    def check_time_table(self, rows, heads, embed_dim, what):
        self.assertTrue(rows, "%s: no rows" % what)
        kinds = {"FULL": A.ATTN_MHA_FULL, "LINFORMER": A.ATTN_MHA_LINFORMER, "NYSTROM": A.ATTN_MHA_NYSTROM}
        for row in rows:
            kind, n = row["kind"], int(row["N"])
            r = int(row["r"]) if row["r"] else 0
            self.assertEqual(r == 0, kind == "FULL", row)
            with self.mha(None, kinds[kind], r, n, False, heads=heads, embed_dim=embed_dim) as mha:
                cost = mha.cost(1, n, n)
            where = "%s %s N=%d r=%d" % (what, kind, n, r)
            self.assert_cell(row["GFLOP"], cost.flops * 1e-9, where + " GFLOP")
            self.assert_cell(row["workspace MiB"], cost.workspace_bytes / (1 << 20), where + " workspace MiB")
            ms, rate = float(row["ms"]), float(row["GFLOP/s"])
            self.assertGreater(ms, 0.0, where)
            self.assertGreater(rate, 0.0, where)
            self.close(rate, float(row["GFLOP"]) / (ms * 1e-3), "attention_time GFLOP/s = GFLOP / ms", tol=1e-6)
        MEASURED["%s rows checked" % what] = len(rows)

    def check_error_rows(self, rows, sources, x, svd_max, heads, embed_dim, what):
        """attention_error.csv's rows against the library: sources {label: tensors or None}."""
        groups = collections.defaultdict(dict)
        for row in rows:
            key = (row["kind"], int(row["r"]))
            self.assertNotIn(key, groups[(row["weights"], int(row["N"]))], "duplicate row %s" % row)
            groups[(row["weights"], int(row["N"]))][key] = float(row["error"])
        self.assertEqual({label for label, _ in groups}, set(sources), what)
        kinds = {"LINFORMER": (A.ATTN_MHA_LINFORMER, False), "LINFORMER-POOL": (A.ATTN_MHA_LINFORMER, True),
                 "NYSTROM": (A.ATTN_MHA_NYSTROM, False)}
        for (label, n), group in sorted(groups.items()):
            # every Linformer k has a pooled twin, and the optimum is there at every rank of the others
            ranks = lambda kind: {r for k, r in group if k == kind}
            self.assertEqual(ranks("LINFORMER"), ranks("LINFORMER-POOL"), (label, n))
            if n <= svd_max:
                self.assertEqual(ranks("optimum"), ranks("LINFORMER") | ranks("NYSTROM"), (label, n))
            else:
                self.assertEqual(ranks("optimum"), set(), (label, n))
            xn = x[None, :n]
            with self.mha(sources[label], A.ATTN_MHA_FULL, 0, n, False, heads=heads, embed_dim=embed_dim) as mha:
                full = mha.attention_matrix(xn)
            full64 = full.astype(np.float64)
            norm = math.sqrt(float(np.sum(full64 * full64)))
            for (kind, r), got in sorted(group.items()):
                if kind == "optimum":
                    tail = sum(A.lowrank_error(full[0, k], r) ** 2 for k in range(full.shape[1]))
                    ref = math.sqrt(tail) / norm
                else:
                    k, pooled = kinds[kind]
                    with self.mha(sources[label], k, r, n, False, pooled, heads=heads, embed_dim=embed_dim) as mha:
                        approx = mha.attention_matrix(xn).astype(np.float64)
                    ref = math.sqrt(float(np.sum((approx - full64) ** 2))) / norm
                self.close(got, ref, "attention_error %s (%s)" % (kind, what), where="%s N=%d r=%d" % (label, n, r))
        MEASURED["%s error rows checked" % what] = len(rows)


class TestPartAttention(ExploreTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir, cls.stdout, _ = cls.main_run()
        cls.time_rows = read_csv(cls.dir, "attention_time")
        cls.error_rows = read_csv(cls.dir, "attention_error")
        m = re.search(r"for N up to (\d+)\)", cls.stdout)
        assert m, "the demo's part 1 does not say up to which N it takes the SVD"
        cls.svd_max = int(m.group(1))
        cls.sizes = sorted({int(r["N"]) for r in cls.time_rows})
        cls.x = layer0_input(cls.att, cls.ids, max(cls.sizes))
        cls.trained = {name: cls.att["layers.0.attn." + name] for name in SHARED}

    def test_input_is_the_models(self):
        """The rebuilt input agrees with what the model computed (the shipped layers.0.input of the
        window at offset 0), so the references below run on the demo's real input."""
        shipped = read_model("char_attention_inputs.safetensors")["layers.0.input"][0]
        n = min(len(shipped), len(self.x))
        err = float(np.max(np.abs(self.x[:n].astype(np.float64) - shipped[:n]))) / float(np.max(np.abs(shipped)))
        MEASURED["layer 0 input rebuilt vs shipped layers.0.input (max abs / max)"] = err
        self.assertLessEqual(err, 1e-5)

    def test_attention_time(self):
        self.check_time_table(self.time_rows, self.heads, self.embed_dim, "attention_time")
        # the time table has the error table's cases: FULL, and each LINFORMER k and NYSTROM m that fits N
        for n in self.sizes:
            timed = {(r["kind"], r["r"]) for r in self.time_rows if int(r["N"]) == n}
            errors = {(r["kind"], r["r"]) for r in self.error_rows
                      if int(r["N"]) == n and r["weights"] == "trained" and r["kind"] in ("LINFORMER", "NYSTROM")}
            self.assertEqual(timed, errors | {("FULL", "")}, "N = %d" % n)

    def test_attention_error(self):
        self.assertEqual({r["kind"] for r in self.error_rows}, {"LINFORMER", "LINFORMER-POOL", "NYSTROM", "optimum"})
        self.assertEqual({int(r["N"]) for r in self.error_rows}, set(self.sizes))
        self.check_error_rows(self.error_rows, {"trained": self.trained, "random": None}, self.x, self.svd_max,
                              self.heads, self.embed_dim, "shipped model")

    def test_printed_error_table_is_the_tidy_one(self):
        """attention_error_table.csv (the printed table: a row per kind, a column per rank) holds the
        tidy rows' values and nothing else."""
        tidy = {(r["weights"], r["N"], r["kind"], r["r"]): r["error"] for r in self.error_rows}
        wide = read_csv(self.dir, "attention_error_table")
        seen = 0
        for row in wide:
            for col, cell in row.items():
                if col.startswith("r="):
                    key = (row["weights"], row["N"], row["kind"], col[2:])
                    self.assertEqual(cell, tidy.get(key, ""), key)
                    seen += bool(cell)
        self.assertEqual(seen, len(tidy))

    def test_attention_optimum_curve(self):
        curve = read_csv(self.dir, "attention_optimum")
        n = int(curve[0]["N"])
        self.assertEqual(n, max(s for s in self.sizes if s <= self.svd_max), "the largest N with an SVD")
        self.assertEqual([int(r["r"]) for r in curve], list(range(n + 1)))
        for label in ("trained", "random"):
            values = np.array([float(r[label]) for r in curve])
            self.assertAlmostEqual(values[0], 1.0, delta=1e-6, msg="rank 0 keeps nothing")
            self.assertLessEqual(values[-1], 1e-6, "rank N keeps everything")
            self.assertTrue(np.all(np.diff(values) <= 1e-12), "the optimum does not grow with r")
            optimum = [r for r in self.error_rows if r["weights"] == label and r["kind"] == "optimum"
                       and int(r["N"]) == n]
            self.assertTrue(optimum)
            for row in optimum:
                self.assertEqual(float(row["error"]), values[int(row["r"])], "%s r = %s" % (label, row["r"]))


class TestPartSpectrum(ExploreTestCase):
    """A few (weights, layer) pairs, every head: the trained layer 1 (its own tensor prefix) and the
    random layer 0."""

    PAIRS = (("trained", 1), ("random", 0))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = cls.main_run()[0]
        cls.rows = read_csv(cls.dir, "spectrum")
        cls.curves = read_csv(cls.dir, "spectrum_curves")
        cls.inputs = read_model("char_attention_inputs.safetensors")

    def test_spectrum(self):
        layers = sorted({int(r["layer"]) for r in self.rows})
        self.assertEqual(layers, list(range(len([k for k in self.inputs if k.startswith("layers.")]))))
        self.assertEqual(len(self.rows), 2 * len(layers) * self.heads, "a row per weights, layer and head")
        cum_cols = [c for c in self.rows[0] if c.startswith("cum@")]
        self.assertTrue(cum_cols)
        for label, layer in self.PAIRS:
            x = self.inputs["layers.%d.input" % layer]
            seqs, t = x.shape[0], x.shape[1]
            tensors = None
            if label == "trained":
                tensors = {n: self.att["layers.%d.attn.%s" % (layer, n)] for n in SHARED}
            with self.mha(tensors, A.ATTN_MHA_FULL, 0, t, self.causal) as mha:
                a = mha.attention_matrix(x)
            curve = np.zeros(t)
            for head in range(self.heads):
                (row,) = [r for r in self.rows
                          if r["weights"] == label and int(r["layer"]) == layer and int(r["head"]) == head]
                sums = collections.defaultdict(float)
                for s in range(seqs):
                    rep = A.rank_analyze(a[s, head])
                    sigma = A.singular_values(a[s, head])
                    cum = np.cumsum(sigma) / np.sum(sigma)
                    curve += cum / (seqs * self.heads)
                    for field in ("rank_90", "rank_99"):
                        sums[field] += getattr(rep, field) / seqs
                    sums["stable"] += rep.stable_rank / seqs
                    sums["effective"] += rep.effective_rank / seqs
                    for col in cum_cols:
                        sums[col] += cum[int(col[4:]) - 1] / seqs
                where = "%s layer %d head %d" % (label, layer, head)
                for field, value in sums.items():
                    self.close(float(row[field]), value, "spectrum %s" % ("cum@k" if field in cum_cols else field),
                               where="%s %s" % (where, field))
            column = "%s layer %d" % (label, layer)
            got = np.array([float(r[column]) for r in self.curves])
            self.assertEqual(len(got), t, column)
            for i in (0, t // 8, t // 2, t - 1):
                self.close(got[i], curve[i], "spectrum_curves")


class TestPartRecurrent(ExploreTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir, cls.stdout, _ = cls.main_run()
        cls.batch = c_enum("BATCH", "explore_recurrent.c")
        cls.steps = c_enum("STEPS", "explore_recurrent.c")
        cls.input = c_enum("INPUT", "explore_recurrent.c")
        cls.lstm = read_model("char_lstm.safetensors")
        cls.w_hh = cls.lstm["lstm.weight_hh_l0"]
        cls.hidden = cls.w_hh.shape[1]

    def check_report(self, row, report, what, sigma_max=False):
        self.assertEqual(int(row["rank_90"]), report.rank_90, what)
        self.assertEqual(int(row["rank_99"]), report.rank_99, what)
        self.close(float(row["stable"]), report.stable_rank, "%s stable" % what)
        self.close(float(row["effective"]), report.effective_rank, "%s effective" % what)
        if sigma_max:
            self.close(float(row["sigma_max"]), report.sigma_max, "%s sigma_max" % what)

    def test_recurrent_capacity(self):
        rows = read_csv(self.dir, "recurrent_capacity")
        dense = rows[0]
        self.assertEqual(dense["recurrence"], "DENSE")
        h = int(dense["state"]) // 2
        ranks = [int(r["rank r"]) for r in read_csv(self.dir, "lstm_truncation")][:-1]  # the --ranks list
        labels = ["DENSE"] + ["LOW_RANK r=%d" % r for r in ranks if r < h]
        root = math.isqrt(h)
        if root * root == h and root > 1:
            labels.append("KRONECKER %dx%d" % (root, root))
        bits = h.bit_length() - 1
        if 1 << bits == h and 2 < bits <= A.ATTN_RNN_MAX_FACTORS_ALL:
            labels.append("KRONECKER 2^%d" % bits)
        self.assertEqual([r["recurrence"] for r in rows[:-1]], labels)
        per_step = self.batch * self.steps
        for row in rows:
            label = row["recurrence"]
            self.assertGreater(float(row["us/step"]), 0.0, label)
            self.assertEqual(int(row["state"]), 2 * h, "%s: the same state size" % label)
            m = re.fullmatch(r"MEMORY C=(\d+) N=(\d+)xW=(\d+)", label)
            if m:
                c, slots, width = (int(g) for g in m.groups())
                with A.Memrnn(input_size=self.input, output_size=self.input, controller_size=c, memory_slots=slots,
                              memory_width=width) as mem:
                    mem.params.init(self.seed)
                    cost = mem.cost(self.batch, self.steps)
                    w = mem.params.get("ntm.controller.lstm.weight_hh_l0")
                self.assertEqual(int(row["W_hh params"]), w.size, label)
                self.assertEqual(int(row["state"]), 2 * c + slots * width + width, label)
            else:
                options = dict(cell=A.ATTN_CELL_LSTM, input_size=self.input, hidden_size=h)
                if label == "DENSE":
                    options.update(recurrence=A.ATTN_RECURRENCE_DENSE)
                elif label.startswith("LOW_RANK"):
                    options.update(recurrence=A.ATTN_RECURRENCE_LOW_RANK, rank=int(label.split("=")[1]))
                else:
                    square = re.fullmatch(r"KRONECKER (\d+)x(\d+)", label)
                    factors = ([int(square.group(1))] * 2 if square
                               else [2] * int(re.fullmatch(r"KRONECKER 2\^(\d+)", label).group(1)))
                    options.update(recurrence=A.ATTN_RECURRENCE_KRONECKER, num_factors=len(factors),
                                   factor_sizes=factors)
                with A.Rnn(**options) as rnn:
                    rnn.params.init(self.seed)
                    cost = rnn.cost(self.batch, self.steps)
                    w = rnn.recurrent_matrix(0, 0)
                    w_hh = sum(count for name, _, count in rnn.params.infos() if "weight_hh" in name)
                self.assertEqual(int(row["W_hh params"]), w_hh, label)
            self.assertEqual(int(row["params"]), cost.params, label)
            self.assert_cell(row["MFLOP/step"], cost.flops / per_step * 1e-6, label + " MFLOP/step")
            self.check_report(row, A.rank_analyze(w), "recurrent_capacity " + label)
        self.assertTrue(rows[-1]["recurrence"].startswith("MEMORY"), "the memory network is the last row")

    def test_lstm_spectrum(self):
        rows = read_csv(self.dir, "lstm_spectrum")
        h = self.hidden
        blocks = [("W_hh (all gates)", self.w_hh)] + [
            (name, self.w_hh[g * h:(g + 1) * h]) for g, name in
            enumerate(("W_hi (input gate)", "W_hf (forget gate)", "W_hg (cell gate)", "W_ho (output gate)"))]
        self.assertEqual([r["matrix"] for r in rows], [name for name, _ in blocks])
        for row, (name, w) in zip(rows, blocks):
            self.assertEqual(row["rows x cols"], "%d x %d" % w.shape, name)
            self.check_report(row, A.rank_analyze(w), "lstm_spectrum", sigma_max=True)

    def windows(self):
        """explore_recurrent.c's heldout_loss: consecutive windows of the training context over the
        characters the run used (its stdout says how many), each from a zero state."""
        m = re.search(r"nats/char over (\d+) characters, windows of (\d+) from a zero state", self.stdout)
        self.assertIsNotNone(m, "the demo does not say which characters the loss is over")
        rows, length = int(m.group(1)), int(m.group(2))
        self.assertEqual(length, self.context)
        self.assertEqual(rows % length, 0)
        self.assertLess(rows, len(self.ids))
        np.testing.assert_array_equal(self.lstm["vocab"], self.att["vocab"])
        x = self.lstm["embed.weight"][self.ids[:rows]].reshape(rows // length, length, -1)
        return x, self.ids[1:rows + 1]

    def lstm_loss(self, rank, x, targets):
        """The trained LSTM through attn_ffi: DENSE (rank 0) or LOW_RANK with W_hh's rank-r factors."""
        h = self.hidden
        options = dict(cell=A.ATTN_CELL_LSTM, input_size=x.shape[2], hidden_size=h)
        if rank:
            options.update(recurrence=A.ATTN_RECURRENCE_LOW_RANK, rank=rank)
        with A.Rnn(**options) as rnn:
            for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0") + (() if rank else ("weight_hh_l0",)):
                rnn.params.set(name, self.lstm["lstm." + name])
            if rank:
                u, v = A.lowrank_factors(self.w_hh, rank)
                rnn.params.set("weight_hh_l0_u", u)
                rnn.params.set("weight_hh_l0_v", v)
            y = rnn.forward(x, want_h=False, want_c=False)[0]
        return nats_per_char(y, self.lstm["head.weight"], self.lstm["head.bias"], targets)

    def test_lstm_truncation(self):
        rows = read_csv(self.dir, "lstm_truncation")
        h = self.hidden
        self.assertEqual(int(rows[-1]["rank r"]), h, "the last row is full rank")
        x, targets = self.windows()
        dense = self.lstm_loss(0, x, targets)
        norm = float(np.linalg.norm(self.w_hh.astype(np.float64)))
        for row in rows:
            r = int(row["rank r"])
            self.assertEqual(int(row["W_hh params"]), r * (4 * h + h))
            rel = A.lowrank_error(self.w_hh, r) / norm
            self.close(float(row["rel. error"]), rel, "lstm_truncation rel. error")
            self.close(float(row["energy kept"]), 1.0 - rel * rel, "lstm_truncation energy kept")
            # the demo runs every rank, H too, as LOW_RANK (with H: the full-rank factors)
            self.close(float(row["loss"]), self.lstm_loss(r, x, targets), "lstm_truncation loss")
            self.close(float(row["dense loss"]), dense, "lstm_truncation dense loss")
            # each column is written with 9 significant digits: the three roundings add up to 1e-8
            self.assertAlmostEqual(float(row["loss - dense"]), float(row["loss"]) - float(row["dense loss"]),
                                   delta=2e-8)
        self.close(float(rows[-1]["loss"]), dense, "lstm_truncation loss at rank H vs dense", tol=1e-5)
        MEASURED["lstm held-out nats/char, dense (%d windows)" % len(x)] = dense

    def test_lstm_dense_loss_against_torch(self):
        try:
            import torch
        except ImportError as e:
            self.skipTest("torch is not installed (%s): the PyTorch comparison is skipped" % e)
        rows = read_csv(self.dir, "lstm_truncation")
        x, targets = self.windows()
        h = self.hidden
        module = torch.nn.LSTM(x.shape[2], h, num_layers=1, batch_first=True).double()
        module.load_state_dict({k[len("lstm."):]: torch.from_numpy(v.astype(np.float64))
                                for k, v in self.lstm.items() if k.startswith("lstm.")})
        with torch.no_grad():
            y = module(torch.from_numpy(x.astype(np.float64)))[0].numpy()
        loss = nats_per_char(y, self.lstm["head.weight"], self.lstm["head.bias"], targets)
        self.close(float(rows[0]["dense loss"]), loss, "lstm dense loss vs torch.nn.LSTM float64", tol=TORCH_TOL)


class TestUserWeights(ExploreTestCase):
    """--weights FILE: the trained tensors saved by attn_ffi under a prefix of the test's own."""

    def test_lstm(self):
        path = os.path.join(self.tmp, "user_lstm.safetensors")
        lstm = read_model("char_lstm.safetensors")
        w_hh = lstm["lstm.weight_hh_l0"]
        with A.Rnn(cell=A.ATTN_CELL_LSTM, input_size=lstm["lstm.weight_ih_l0"].shape[1],
                   hidden_size=w_hh.shape[1]) as rnn:
            rnn.params.load(os.path.join(MODELS, "char_lstm.safetensors"), "lstm.", A.ATTN_LOAD_REJECT_UNKNOWN)
            rnn.params.save(path, "my.model.rnn.")
        directory = os.path.join(self.tmp, "user_lstm")
        p = run_explore(["--weights", path, "--family", "lstm", "--prefix", "my.model.rnn.", "--csv", directory]
                        + QUICK)
        self.assertEqual(p.returncode, 0, p.stderr)
        (row,) = read_csv(directory, "user_rnn_spectrum")
        self.assertEqual((row["layer"], row["direction"]), ("0", "forward"))
        rep = A.rank_analyze(w_hh)
        self.assertEqual(int(row["rank_90"]), rep.rank_90)
        self.assertEqual(int(row["rank_99"]), rep.rank_99)
        for col, value in (("sigma_max", rep.sigma_max), ("stable", rep.stable_rank),
                           ("effective", rep.effective_rank)):
            self.close(float(row[col]), value, "user_rnn_spectrum " + col)
        err_cols = [c for c in row if c.startswith("err@")]
        self.assertTrue(err_cols)
        for col in err_cols:
            self.close(float(row[col]), A.lowrank_error(w_hh, int(col[4:])) / rep.frobenius, "user_rnn_spectrum err@r")

    def test_mha(self):
        path = os.path.join(self.tmp, "user_mha.safetensors")
        with A.Mha(kind=A.ATTN_MHA_FULL, embed_dim=self.embed_dim, num_heads=self.heads) as mha:
            mha.params.load(os.path.join(MODELS, "char_attention.safetensors"), "layers.0.attn.",
                            A.ATTN_LOAD_REJECT_UNKNOWN)
            mha.params.save(path, "encoder.attn.")
            tensors = mha.params.state_dict()
        directory = os.path.join(self.tmp, "user_mha")
        p = run_explore(["--weights", path, "--family", "mha", "--prefix", "encoder.attn.", "--heads", str(self.heads),
                         "--csv", directory] + QUICK)
        self.assertEqual(p.returncode, 0, p.stderr)
        m = re.search(r"for N up to (\d+)\)", p.stdout)
        self.assertIsNotNone(m)
        time_rows = read_csv(directory, "attention_time")
        self.check_time_table(time_rows, self.heads, self.embed_dim, "--weights attention_time")
        # explore_user.c's input: xp_random(seed + 1, sqrt(3)) over max(N, 2 T) rows of E
        rows = max(max(int(r["N"]) for r in time_rows), 2 * self.context)
        x = xp_random(rows * self.embed_dim, self.seed + 1, np.sqrt(np.float32(3.0))).reshape(rows, self.embed_dim)
        error_rows = read_csv(directory, "attention_error")
        self.assertEqual({r["weights"] for r in error_rows}, {"yours", "random"})
        self.check_error_rows(error_rows, {"yours": tensors, "random": None}, x, int(m.group(1)), self.heads,
                              self.embed_dim, "--weights")


class TestCommandLine(ExploreTestCase):
    def assert_fails(self, args, message):
        p = run_explore(args)
        what = "attn-explore %s" % " ".join(args)
        self.assertNotEqual(p.returncode, 0, what)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, "%s: one line on stderr, got %r" % (what, p.stderr))
        self.assertTrue(lines[0].startswith("attn-explore: "), "%s: %r" % (what, lines[0]))
        self.assertIn(message, lines[0], what)
        out = [line for line in p.stdout.splitlines() if line.strip()]
        self.assertLessEqual(len(out), 1, "%s: stdout beyond the header: %r" % (what, p.stdout))
        if out:
            self.assertTrue(out[0].startswith("attn-explore, libattn "), "%s: %r" % (what, out[0]))
        MEASURED["error paths checked"] = MEASURED.get("error paths checked", 0) + 1

    def test_errors(self):
        missing = os.path.join(self.tmp, "no_such_dir")
        missing_file = os.path.join(self.tmp, "no_such_file.safetensors")
        self.assert_fails(["--no-such-option"], "unknown option '--no-such-option'")
        self.assert_fails(QUICK + ["--sizes"], "--sizes needs a value")
        self.assert_fails(["--sizes", "0"], "'0' is not an integer")
        self.assert_fails(["--sizes", "x"], "'x' is not an integer")
        self.assert_fails(["--sizes", "64,y"], "'y' is not an integer")
        self.assert_fails(["--weights", missing_file], "--weights needs --family")
        self.assert_fails(["--family", "lstm"], "--family is for --weights")
        self.assert_fails(QUICK + ["--models", missing], missing)
        self.assert_fails(QUICK + ["--weights", missing_file, "--family", "lstm"], missing_file)
        self.assert_fails(QUICK + ["--weights", os.path.join(MODELS, "char_lstm.safetensors"), "--family", "conv"],
                          "--family 'conv'")

    def test_help(self):
        p = run_explore(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stderr, "")
        options = parser_options()
        self.assertGreaterEqual(len(options), 15, options)
        for option in options:
            self.assertRegex(p.stdout, r"(?m)^\s+%s\b" % re.escape(option), "--help describes %s" % option)


TMP = None  # the module's scratch directory: the demo's CSV files, the --weights files


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="attn_explore_", dir=os.environ.get("ATTN_TEST_TMPDIR"))


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)
    print("measured (largest relative deviation of the demo's value from the library's; counts; the loss):",
          file=sys.stderr)
    for what, value in sorted(MEASURED.items()):
        print("  %-72s %.3g" % (what, value), file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    if not EXPLORE:
        print("attn-explore is not part of this build (ATTN_BUILD_BENCHMARKS=OFF): skipped")
        sys.exit(SKIP_CODE)
    if not os.access(EXPLORE, os.X_OK):
        print("attn-explore is not built (%s): skipped; build the target attn-explore" % EXPLORE)
        sys.exit(SKIP_CODE)
    sys.exit(A.run_tests(verbosity=1))
