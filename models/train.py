#!/usr/bin/python3
"""Trains libattn's two example models from fixed seeds and writes them next to this script.

    /usr/bin/python3 models/train.py            # the full run (about 9 minutes on 2 cores)
    /usr/bin/python3 models/train.py --smoke    # a few steps of each, to a scratch directory

Corpus: the license texts every Debian system ships in /usr/share/common-licenses/ (see corpus()),
character level, the last 10 % held out for validation. Two models, both next-character
predictors trained from the same data with the same evaluation:

  char_attention  a causal pre-LN transformer language model on plain torch.nn.MultiheadAttention
                  (fixed sinusoidal positions, no learned position embedding), whose attention
                  layers libattn's attn_mha loads by name ("layers.{l}.attn.")
  char_lstm       nn.Embedding -> nn.LSTM (1 layer) -> nn.Linear, whose recurrent layer libattn's
                  attn_rnn loads by name ("lstm.")

Outputs (float32 safetensors written by the few lines of write_safetensors below; the Python
`safetensors` package is not on Debian): char_attention.safetensors, char_lstm.safetensors (each with
a `vocab` tensor of Unicode code points), heldout.txt (16384 held-out characters),
char_attention_inputs.safetensors (what reaches each attention layer for 4 held-out windows) and
README.md (the conventions and this run's loss curves). tests/python/test_trained_models.py checks
them against libattn.
"""

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
LICENSE_DIR = "/usr/share/common-licenses"
VAL_FRACTION_DIVISOR = 10  # the last len // 10 characters are the validation split

# char_attention
ATT_EMBED = 128
ATT_HEADS = 4
ATT_LAYERS = 2
CONTEXT = 256  # the training window of both models (and of the shipped attention inputs)
# char_lstm
LSTM_EMBED = 64
LSTM_HIDDEN = 256

BATCH = 16
SEED = 20240601
HELDOUT_CHARS = 16384  # heldout.txt: the first 16384 characters of the validation split
INPUT_OFFSETS = (0, 4096, 8192, 12288)  # char_attention_inputs: windows heldout[o : o + CONTEXT]


# ---- corpus -------------------------------------------------------------------------------------


def corpus(directory=LICENSE_DIR):
    """(text, [file paths]). Every entry of `directory` is resolved with os.path.realpath; the
    resolved paths that are regular files are deduplicated (a symlink such as GPL -> GPL-3 adds
    nothing) and sorted as Python strings (code point order), each file is decoded as UTF-8 (as
    latin-1 if it is not valid UTF-8; on Debian 12 every file is ASCII) and the texts are
    concatenated in that order with nothing between them. No newline translation."""
    paths = sorted({os.path.realpath(os.path.join(directory, name)) for name in os.listdir(directory)})
    paths = [p for p in paths if os.path.isfile(p)]
    parts = []
    for p in paths:
        with open(p, "rb") as f:
            raw = f.read()
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            parts.append(raw.decode("latin-1"))
    return "".join(parts), paths


def split(text):
    n_val = len(text) // VAL_FRACTION_DIVISOR
    return text[:len(text) - n_val], text[len(text) - n_val:]


# ---- fixed sinusoidal positions -----------------------------------------------------------------


def sinusoid(n, e):
    """[n, e] float32: for position i and k = 0 .. e/2 - 1, with a = i / 10000^(2k/e) in double,
        pe[i, 2k] = sin(a),   pe[i, 2k+1] = cos(a),
    each rounded once to float32. Computed with Python's math module, i.e. the C library's pow, sin
    and cos, so that C code writing  a = (double)i / pow(10000.0, (double)(2*k) / (double)e)  gets
    the same floats."""
    pe = np.empty((n, e), dtype=np.float64)
    for k in range(e // 2):
        div = math.pow(10000.0, (2 * k) / e)
        for i in range(n):
            a = i / div
            pe[i, 2 * k] = math.sin(a)
            pe[i, 2 * k + 1] = math.cos(a)
    return pe.astype(np.float32)


# ---- models -------------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, e, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(e)
        self.attn = nn.MultiheadAttention(e, heads, bias=True, batch_first=True)
        self.norm2 = nn.LayerNorm(e)
        self.ff = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e))

    def forward(self, x, causal_mask, record=None):
        h = self.norm1(x)
        if record is not None:
            record.append(h)
        x = x + self.attn(h, h, h, attn_mask=causal_mask, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class CharAttention(nn.Module):
    def __init__(self, vocab_size, e=ATT_EMBED, heads=ATT_HEADS, layers=ATT_LAYERS, max_len=CONTEXT):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, e)
        self.layers = nn.ModuleList([Block(e, heads) for _ in range(layers)])
        self.norm_f = nn.LayerNorm(e)
        self.head = nn.Linear(e, vocab_size)
        self.register_buffer("pos", torch.from_numpy(sinusoid(max_len, e)), persistent=False)

    def forward(self, tokens, record=None):
        """tokens [B, T] (T <= max_len) -> logits [B, T, V]. `record`, a list, receives each
        layer's attention input (norm1's output)."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:t]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # True = key hidden
        for layer in self.layers:
            x = layer(x, mask, record)
        return self.head(self.norm_f(x))


class CharLstm(nn.Module):
    def __init__(self, vocab_size, e=LSTM_EMBED, hidden=LSTM_HIDDEN):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, e)
        self.lstm = nn.LSTM(e, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])


# ---- data and evaluation ------------------------------------------------------------------------


def windows(ids, length):
    """The validation set of both models: consecutive non-overlapping windows of length+1 ids
    (input ids[s : s+length], targets ids[s+1 : s+length+1], s = 0, length, 2*length, ...); the
    tail shorter than a window is dropped. Every window starts from an empty context."""
    n = (len(ids) - 1) // length
    x = np.stack([ids[i * length:i * length + length] for i in range(n)])
    y = np.stack([ids[i * length + 1:i * length + length + 1] for i in range(n)])
    return torch.from_numpy(x), torch.from_numpy(y)


def baselines(train_ids, val_x, val_y, v):
    """(unigram, bigram) nats/char on the validation targets, add-one (Laplace) smoothed counts of
    the training split; the bigram conditions on the character before each target (the last input
    character of its position, always inside the window)."""
    uni = np.bincount(train_ids, minlength=v).astype(np.float64) + 1.0
    uni_logp = np.log(uni / uni.sum())
    big = np.ones((v, v), dtype=np.float64)
    np.add.at(big, (train_ids[:-1], train_ids[1:]), 1.0)
    big_logp = np.log(big / big.sum(axis=1, keepdims=True))
    x, y = val_x.numpy().ravel(), val_y.numpy().ravel()
    return float(-uni_logp[y].mean()), float(-big_logp[x, y].mean())


@torch.no_grad()
def evaluate(model, val_x, val_y, chunk=16):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(val_x), chunk):
        logits = model(val_x[i:i + chunk])
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   val_y[i:i + chunk].reshape(-1), reduction="sum"))
        count += val_y[i:i + chunk].numel()
    model.train()
    return total / count


def train(name, model, train_ids, val_x, val_y, steps, lr, eval_every, seed, log):
    """AdamW (weight decay 0.01 on matrices only), linear warmup over 5 % of the steps, then cosine
    decay to lr/10; batches of BATCH random windows of CONTEXT+1 characters of the training split at
    offsets drawn by numpy's PCG64 from `seed`; gradient norm clipped at 1. Returns the curve
    [(step, seconds, validation nats/char)] and the wall time."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))
    warmup = max(1, steps // 20)

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    rng = np.random.default_rng(seed)
    ids = torch.from_numpy(train_ids)
    span = torch.arange(CONTEXT + 1)
    start = time.perf_counter()
    curve = [(0, 0.0, evaluate(model, val_x, val_y))]
    log("  %-14s step %5d  %6.1f s  val %.4f nats/char" % (name, 0, 0.0, curve[-1][2]))
    model.train()
    for step in range(steps):
        offsets = torch.from_numpy(rng.integers(0, len(train_ids) - CONTEXT - 1, size=BATCH))
        batch = ids[offsets[:, None] + span]
        x, y = batch[:, :-1], batch[:, 1:]
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            curve.append((step + 1, elapsed, evaluate(model, val_x, val_y)))
            log("  %-14s step %5d  %6.1f s  val %.4f nats/char  (train batch %.4f)"
                % (name, step + 1, elapsed, curve[-1][2], float(loss)))
    model.eval()
    return curve, time.perf_counter() - start


# ---- output -------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    """A minimal safetensors writer: u64 little-endian header length, the JSON header (padded with
    spaces to a multiple of 8), then the little-endian float32 data in the given order."""
    header, chunks, offset = {}, [], 0
    for name, a in tensors.items():
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(a)), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def openblas_threads():
    """The thread count of the OpenBLAS that Debian's torch does its GEMMs with (its own pthreads,
    all cores unless OPENBLAS_NUM_THREADS says otherwise), or "?"."""
    try:
        import ctypes
        return str(ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads())
    except (OSError, AttributeError):
        return "?"


def numpy_state(model):
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def table(curve, unigram, bigram):
    rows = ["| step | seconds | validation nats/char | vs unigram | vs bigram |", "|---:|---:|---:|---:|---:|"]
    for step, seconds, loss in curve:
        rows.append("| %d | %.1f | %.4f | %+.4f | %+.4f |" % (step, seconds, loss, loss - unigram, loss - bigram))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="output directory (default: next to this script)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (default 1: see THREADS in README.md)")
    ap.add_argument("--attn-steps", type=int, default=750)
    ap.add_argument("--lstm-steps", type=int, default=550)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--smoke", action="store_true",
                    help="5 steps of each with 1 thread, into a temporary directory unless --out is given")
    args = ap.parse_args()
    if args.smoke:
        args.threads, args.attn_steps, args.lstm_steps, args.eval_every = 1, 5, 5, 5
        if args.out == HERE:
            import tempfile
            args.out = tempfile.mkdtemp(prefix="libattn_models_")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    lines = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    wall_start = time.perf_counter()
    text, paths = corpus()
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    train_text, val_text = split(text)
    train_ids, val_ids = ids[:len(train_text)], ids[len(train_text):]
    val_x, val_y = windows(val_ids, CONTEXT)
    unigram, bigram = baselines(train_ids, val_x, val_y, len(vocab))
    log("corpus: %d files, %d characters (sha256 of its UTF-8 %s), vocabulary %d" % (len(paths), len(text), sha, len(vocab)))
    log("split: train %d, validation %d characters; validation targets %d (%d windows of %d)"
        % (len(train_text), len(val_text), val_y.numel(), len(val_y), CONTEXT))
    log("baselines on the validation targets: unigram %.4f, bigram %.4f nats/char" % (unigram, bigram))
    log("torch %s, torch.set_num_threads(%d), OpenBLAS threads %s"
        % (torch.__version__, torch.get_num_threads(), openblas_threads()))

    torch.manual_seed(SEED)
    attn_model = CharAttention(len(vocab))
    log("char_attention: %d parameters; training %d steps" % (sum(p.numel() for p in attn_model.parameters()), args.attn_steps))
    attn_curve, attn_time = train("char_attention", attn_model, train_ids, val_x, val_y, args.attn_steps, 2e-3,
                                  args.eval_every, SEED + 1, log)
    log("char_attention: %.1f s" % attn_time)

    torch.manual_seed(SEED + 2)
    lstm_model = CharLstm(len(vocab))
    log("char_lstm: %d parameters; training %d steps" % (sum(p.numel() for p in lstm_model.parameters()), args.lstm_steps))
    lstm_curve, lstm_time = train("char_lstm", lstm_model, train_ids, val_x, val_y, args.lstm_steps, 3e-3,
                                  args.eval_every, SEED + 3, log)
    log("char_lstm: %.1f s" % lstm_time)

    # ---- files ----
    heldout = val_text[:HELDOUT_CHARS]
    assert len(heldout) == HELDOUT_CHARS and set(heldout) <= set(vocab)
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(heldout)
    vocab_points = np.array([ord(c) for c in vocab], dtype=np.float32)
    common_meta = {"corpus": LICENSE_DIR + " (models/README.md)", "corpus_chars": str(len(text)),
                   "corpus_sha256": sha, "vocab_size": str(len(vocab)), "context": str(CONTEXT),
                   "seed": str(SEED), "torch": torch.__version__,
                   "baseline_unigram": "%.6f" % unigram, "baseline_bigram": "%.6f" % bigram}
    attn_state = numpy_state(attn_model)
    attn_state["vocab"] = vocab_points
    write_safetensors(os.path.join(args.out, "char_attention.safetensors"), attn_state, dict(
        common_meta, model="char_attention", embed_dim=str(ATT_EMBED), num_heads=str(ATT_HEADS),
        num_layers=str(ATT_LAYERS), steps=str(args.attn_steps), val_nats_per_char="%.6f" % attn_curve[-1][2],
        positions="pe[i,2k]=sin(i/10000^(2k/E)), pe[i,2k+1]=cos(i/10000^(2k/E)), double then float32"))
    lstm_state = numpy_state(lstm_model)
    lstm_state["vocab"] = vocab_points
    write_safetensors(os.path.join(args.out, "char_lstm.safetensors"), lstm_state, dict(
        common_meta, model="char_lstm", embed_dim=str(LSTM_EMBED), hidden_size=str(LSTM_HIDDEN),
        steps=str(args.lstm_steps), val_nats_per_char="%.6f" % lstm_curve[-1][2]))

    held_ids = torch.tensor([index[c] for c in heldout], dtype=torch.int64)
    tokens = torch.stack([held_ids[o:o + CONTEXT] for o in INPUT_OFFSETS])
    record = []
    with torch.no_grad():
        attn_model(tokens, record)
    inputs = {"layers.%d.input" % l: h.numpy() for l, h in enumerate(record)}
    inputs["offsets"] = np.array(INPUT_OFFSETS, dtype=np.float32)
    write_safetensors(os.path.join(args.out, "char_attention_inputs.safetensors"), inputs, dict(
        model="char_attention", source="heldout.txt", offsets=",".join(map(str, INPUT_OFFSETS)),
        length=str(CONTEXT), what="layers.{l}.input = norm1 output of layer l, [S, T, E]"))

    wall = time.perf_counter() - wall_start
    log("total wall time %.1f s (torch.set_num_threads(%d), OpenBLAS threads %s)" % (wall, args.threads, openblas_threads()))
    sizes = {name: os.path.getsize(os.path.join(args.out, name)) for name in
             ("char_attention.safetensors", "char_lstm.safetensors", "char_attention_inputs.safetensors", "heldout.txt")}
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(README.format(
            files=len(paths), file_list=", ".join(os.path.basename(p) for p in paths), chars=len(text), sha=sha,
            vocab=len(vocab), n_train=len(train_text), n_val=len(val_text), n_targets=val_y.numel(),
            n_windows=len(val_y), context=CONTEXT, unigram=unigram, bigram=bigram,
            att_e=ATT_EMBED, att_h=ATT_HEADS, att_l=ATT_LAYERS, att_last=ATT_LAYERS - 1, att_params=sum(p.numel() for p in attn_model.parameters()),
            att_steps=args.attn_steps, att_final=attn_curve[-1][2], att_time=attn_time, att_table=table(attn_curve, unigram, bigram),
            lstm_e=LSTM_EMBED, lstm_h=LSTM_HIDDEN, lstm_params=sum(p.numel() for p in lstm_model.parameters()),
            lstm_steps=args.lstm_steps, lstm_final=lstm_curve[-1][2], lstm_time=lstm_time,
            lstm_table=table(lstm_curve, unigram, bigram), wall=wall, threads=args.threads, blas_threads=openblas_threads(), torch=torch.__version__,
            batch=BATCH, seed=SEED, heldout=HELDOUT_CHARS, offsets=", ".join(map(str, INPUT_OFFSETS)),
            n_inputs=len(INPUT_OFFSETS), **{"size_" + k.replace(".", "_"): v for k, v in sizes.items()}))
    print("wrote %s" % args.out)


README = """# Trained example models

Two small character-level language models, trained by `models/train.py` from fixed seeds on text
every Debian system has, so that libattn can be shown running real trained weights (not random
ones) and matching PyTorch on them. `tests/python/test_trained_models.py` checks every file here
against libattn and PyTorch. This file is written by `train.py`; the numbers below are from the run
that produced the committed files (2-core Xeon VM, torch {torch}, `torch.set_num_threads({threads})`,
OpenBLAS threads {blas_threads}; see "Threads" below).

| file | bytes | what |
|---|---:|---|
| `char_attention.safetensors` | {size_char_attention_safetensors} | the attention language model's `state_dict` + `vocab` |
| `char_lstm.safetensors` | {size_char_lstm_safetensors} | the LSTM language model's `state_dict` + `vocab` |
| `char_attention_inputs.safetensors` | {size_char_attention_inputs_safetensors} | `layers.{{l}}.input` [{n_inputs}, {context}, {att_e}]: what reaches attention layer l for {n_inputs} held-out windows; `offsets` [{n_inputs}] |
| `heldout.txt` | {size_heldout_txt} | the first {heldout} characters of the validation split |

All tensors are float32 (safetensors `F32`, written by a 10-line writer in `train.py`; the Python
`safetensors` package is not on Debian). Each model file's `__metadata__` also records the corpus
size and SHA-256, the seed, the step count and the final validation loss.

## Corpus
- The entries of `/usr/share/common-licenses/` are resolved with `realpath`; the resolved paths
  that are regular files are deduplicated (the symlinks `GPL -> GPL-3`, `LGPL -> LGPL-3`,
  `GFDL -> GFDL-1.3` add nothing) and sorted as strings (code point order): here {files} files,
  {file_list}.
- Each file is decoded as UTF-8 (as latin-1 if it is not valid UTF-8; here all are ASCII) and the
  texts are concatenated in that order with nothing in between, no newline translation:
  {chars} characters, SHA-256 of the UTF-8 encoding `{sha}`.
  Another Debian release may ship other license texts; the hash says whether a rerun sees the same
  corpus.
- Split: the last `len // 10` characters are the validation split: {n_train} training and {n_val}
  validation characters.
- Vocabulary: the sorted set (code point order) of the characters of the whole corpus, V = {vocab};
  token id = index in that list. Both model files hold it as `vocab` [V], float32 code points
  (exact: all code points are < 2^24), so a C program maps a character c to the id i with
  `vocab[i] == c`.

## Evaluation and baselines
Both models and both baselines are scored on the same targets: the validation split cut into
consecutive non-overlapping windows of {context} + 1 characters (input = the first {context}, targets
= the next character at each position; the tail shorter than a window is dropped), {n_windows}
windows, {n_targets} targets; every window starts from an empty context (zero LSTM state). Loss =
mean cross-entropy in nats per character.

- unigram (add-one smoothed training counts): **{unigram:.4f}** nats/char
- bigram (add-one smoothed training pair counts, conditioned on the previous character): **{bigram:.4f}** nats/char

## char_attention (`CharAttention` in `train.py`)
A causal pre-LN transformer language model: E = {att_e}, {att_h} heads, {att_l} layers, trained on
windows of T = {context} characters; {att_params} parameters.
```
x_0[i]   = embed.weight[c_i] + pe[i]                                 (no learned positions)
for l in 0 .. {att_last}:
    h    = LayerNorm(x; layers.l.norm1)                              <- layers.l.input in the inputs file
    x    = x + MultiheadAttention(h, h, h; layers.l.attn, causal)    (torch.nn.MultiheadAttention, bias)
    x    = x + Linear(GELU(Linear(LayerNorm(x; layers.l.norm2); layers.l.ff.0)); layers.l.ff.2)
logits   = Linear(LayerNorm(x; norm_f); head)
```
LayerNorm eps = 1e-5 (PyTorch's default) with weight and bias; GELU is the exact erf form; the
causal mask lets position i attend to positions 0 … i (PyTorch `attn_mask = triu(ones(T, T), 1)`,
libattn `causal = 1`). Tensor names: `embed.weight`, `layers.{{l}}.norm1.weight/bias`,
`layers.{{l}}.attn.in_proj_weight`, `layers.{{l}}.attn.in_proj_bias`,
`layers.{{l}}.attn.out_proj.weight/bias`, `layers.{{l}}.norm2.weight/bias`,
`layers.{{l}}.ff.0.weight/bias`, `layers.{{l}}.ff.2.weight/bias`, `norm_f.weight/bias`,
`head.weight/bias`, `vocab`. libattn loads layer l's attention with
`attn_params_load(attn_mha_params(h), path, "layers.l.attn.", ATTN_LOAD_REJECT_UNKNOWN)` into an
`ATTN_MHA_FULL` handle with embed_dim {att_e}, num_heads {att_h}, bias 1, causal 1.

**Positions** (fixed, so the first layer's input can be computed for any length N, also beyond the
trained {context}, from text alone): for position i = 0, 1, … and k = 0 … E/2 − 1
```
a          = (double)i / pow(10000.0, (double)(2k) / (double)E)     (double precision)
pe[i][2k]   = (float)sin(a)
pe[i][2k+1] = (float)cos(a)
```
`train.py` computes it with Python's `math.pow`, `math.sin`, `math.cos` (the C library's) and rounds
once to float32, so C code with glibc gets the same floats; the test checks a numpy recomputation
(up to N = 8192) against it. Hence the first attention layer's input for any text is
`x = LayerNorm1(embed[c_i] + pe[i])`.

**Why causal.** The objective is next-character prediction, the standard language-model setting,
which needs a causal mask (a position must not see the character it predicts). It also makes the
attention matrices worth comparing: each row i is a distribution over the past 0 … i, which
libattn's `attn_mha` computes with its `causal` option (keys above the diagonal are never computed)
and `attn_mha_attention_matrix` returns.

Training: {att_steps} steps of AdamW (lr 2e-3, betas 0.9/0.99, weight decay 0.01 on matrices),
5 % linear warm-up then cosine decay to lr/10, batches of {batch} random training windows, gradient
norm clipped at 1, seed {seed}. Wall time **{att_time:.1f} s**; final validation **{att_final:.4f}**
nats/char.

{att_table}

## char_lstm (`CharLstm` in `train.py`)
`nn.Embedding(V, {lstm_e})` → `nn.LSTM({lstm_e}, {lstm_h}, 1 layer, batch_first)` → `nn.Linear({lstm_h}, V)`;
{lstm_params} parameters. Names `embed.weight`, `lstm.weight_ih_l0`, `lstm.weight_hh_l0`,
`lstm.bias_ih_l0`, `lstm.bias_hh_l0`, `head.weight`, `head.bias`, `vocab`. libattn loads the
recurrent layer with `attn_params_load(attn_rnn_params(h), path, "lstm.", ATTN_LOAD_REJECT_UNKNOWN)`
into an `ATTN_CELL_LSTM` handle with input_size {lstm_e}, hidden_size {lstm_h}, 1 layer; its input is
`embed.weight[c_t]`, and `head` maps its output to logits.

Training: as char_attention (same windows, batches, schedule and clipping) with lr 3e-3, {lstm_steps}
steps, every window from a zero state. Wall time **{lstm_time:.1f} s**; final validation
**{lstm_final:.4f}** nats/char.

{lstm_table}

## Summary
| | validation nats/char | wall time |
|---|---:|---:|
| unigram | {unigram:.4f} | |
| bigram | {bigram:.4f} | |
| char_attention | {att_final:.4f} | {att_time:.1f} s |
| char_lstm | {lstm_final:.4f} | {lstm_time:.1f} s |

Total wall time of `train.py` (corpus, baselines, both trainings with their evaluations, files):
**{wall:.1f} s** on 2 cores.

### Threads
Debian's python3-torch does its matrix products in the system OpenBLAS (`openblas-pthread`), which
runs its own threads, one per core (here {blas_threads}), whatever `torch.set_num_threads` says.
`torch.set_num_threads(2)` adds torch's OpenMP threads on top, and on this 2-core machine the two
pools fight: training steps timed separately on the idle machine (median of 7) took attention 0.29 s with
`set_num_threads(1)` and 0.34-0.40 s with 2, LSTM 0.41 s with 1 and 1.25-1.35 s with 2. So
`train.py` defaults to `torch.set_num_threads(1)` and both cores work through OpenBLAS
(`--threads` changes it; the result then differs in the last bits).

## The shipped attention inputs
`char_attention_inputs.safetensors` holds, for l = 0 … {att_last}, `layers.{{l}}.input` [{n_inputs}, {context}, {att_e}]: the
output of `layers.l.norm1` (what reaches `layers.l.attn`) when the model (eval mode, float32) runs
on the {n_inputs} windows `heldout.txt[o : o + {context}]`, o = {offsets} (the offsets are also the tensor
`offsets`). Layer 0's input is the formula above; layer 1's needs the whole of layer 0. The test
recomputes them from `heldout.txt` and the weights.

## Reproducing
`/usr/bin/python3 models/train.py` (Debian's python3-torch; `--smoke` for a 5-step check into a
scratch directory). Seeds and data order are fixed; the same machine and thread count give the same
files, another CPU or BLAS may differ in the last bits and so drift somewhat over training.
"""

if __name__ == "__main__":
    main()
