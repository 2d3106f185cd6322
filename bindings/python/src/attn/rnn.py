"""Recurrent networks: :class:`RNN` (``attn_rnn``)."""

from __future__ import annotations

from ctypes import byref
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._core import (Workspace, addr, as_choice, as_flag, as_int, check, check_dropout, choice_name,
                    cost_tuple, expect_shape, f32, int64s, lib, run, seq_ints)
from ._model import Model
from .errors import InvalidArgument
from .params import Cost

CELLS = {"lstm": 2, "gru": 3, "rnn_tanh": 0, "rnn_relu": 1, "tanh": 0, "relu": 1, "rnn": 0}
RECURRENCES = {"dense": 0, "low_rank": 1, "lowrank": 1, "kronecker": 2, "kron": 2}
_GATES = {0: 1, 1: 1, 2: 4, 3: 3}

Array = np.ndarray


class RNN(Model):
    """A stack of recurrent layers: Elman (tanh/relu), LSTM or GRU, with a dense, low-rank or
    Kronecker-factored recurrence (``attn_rnn``; PyTorch's ``nn.RNN``/``nn.LSTM``/``nn.GRU``
    semantics and ``state_dict`` names, see docs/rnn.md).

    Args:
        input_size: features of ``x`` (``I``).
        hidden_size: features of the state (``H``).
        num_layers: stacked layers (default 1).
        cell: ``'lstm'`` (default), ``'gru'``, ``'rnn_tanh'`` or ``'rnn_relu'``; PyTorch's mode
            names (``'LSTM'``, ``'RNN_TANH'``, …) work too, as do ``'rnn'``, ``'tanh'``, ``'relu'``.
        nonlinearity: ``'tanh'`` or ``'relu'``, as ``nn.RNN``'s: selects an Elman cell.
        bias: ``bias_ih``/``bias_hh`` tensors (default True).
        batch_first: must be True (the default): libattn's sequences are ``[batch, seq, features]``.
            Accepted so that PyTorch keyword lists can be passed through.
        dropout: accepted for the same reason and ignored: libattn runs inference, as a PyTorch
            module does in ``eval()`` mode.
        bidirectional: add a reverse direction per layer (``D = 2``).
        recurrence: ``'dense'`` (default, ``W_hh h``), ``'low_rank'`` (``U (V h)``, needs ``rank``)
            or ``'kronecker'`` (per gate a Kronecker product of square factors, needs
            ``factor_sizes`` whose product is ``hidden_size``).
        rank: LOW_RANK rank, 1 <= rank <= hidden_size.
        factor_sizes: KRONECKER factor sizes (1 to 32 of them), e.g. ``[2] * 6`` for H = 64.
        seed: initialize the parameters from this seed (a new model is initialized with seed 0).

    Layouts (batch-first, as the C API; ``D`` = 2 if bidirectional else 1)::

        x        [batch, seq_len, input_size]
        y        [batch, seq_len, D * hidden_size]
        h0, h_n  [num_layers * D, batch, hidden_size]   (c0, c_n the same, LSTM only)

    Example::

        rnn = attn.RNN(8, 16, num_layers=2, cell="gru", bidirectional=True)
        y, h_n = rnn(x)                       # x: float32 [batch, seq, 8]
        lstm = attn.RNN(8, 16)                # LSTM: returns (y, (h_n, c_n)) as nn.LSTM does
        y, (h_n, c_n) = lstm(x, lengths=[5, 3])
    """

    _family = "rnn"
    _options_type = _lib.RnnOptions
    _kind = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 cell: Optional[str] = None, nonlinearity: Optional[str] = None, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 recurrence: str = "dense",
                 rank: Optional[int] = None, factor_sizes: Optional[Sequence[int]] = None,
                 seed: Optional[int] = None) -> None:
        super().__init__()
        fn = "attn.RNN"
        if cell is None:
            cell = "lstm" if nonlinearity is None else "rnn_" + str(nonlinearity).lower()
        cell_value = as_choice(fn, "cell", cell, CELLS)
        if nonlinearity is not None:
            nl = as_choice(fn, "nonlinearity", nonlinearity, {"tanh": 0, "relu": 1})
            if cell_value not in (0, 1):
                raise InvalidArgument("%s: nonlinearity applies to Elman cells, not cell=%r" % (fn, cell))
            cell_value = nl
        if not as_flag(fn, "batch_first", batch_first):
            raise InvalidArgument("%s: batch_first=False is not supported: libattn's sequences are "
                                  "[batch, seq, features] (transpose x, or use batch_first=True in "
                                  "PyTorch too)" % fn)
        check_dropout(fn, dropout)
        rec = as_choice(fn, "recurrence", recurrence, RECURRENCES)
        fields = {
            "cell": cell_value,
            "recurrence": rec,
            "input_size": as_int(fn, "input_size", input_size),
            "hidden_size": as_int(fn, "hidden_size", hidden_size),
            "num_layers": as_int(fn, "num_layers", num_layers),
            "bias": as_flag(fn, "bias", bias),
            "bidirectional": as_flag(fn, "bidirectional", bidirectional),
        }
        if rec == 1:
            if rank is None:
                raise InvalidArgument("%s: recurrence='low_rank' needs rank" % fn)
            fields["rank"] = as_int(fn, "rank", rank)
        elif rank is not None:
            raise InvalidArgument("%s: rank applies to recurrence='low_rank' only" % fn)
        sizes = seq_ints(fn, "factor_sizes", factor_sizes)
        if rec == 2:
            if not sizes:
                raise InvalidArgument("%s: recurrence='kronecker' needs factor_sizes" % fn)
            if len(sizes) > _lib.ATTN_RNN_MAX_FACTORS_ALL:
                raise InvalidArgument("%s: at most %d factor_sizes (got %d)"
                                      % (fn, _lib.ATTN_RNN_MAX_FACTORS_ALL, len(sizes)))
            fields["num_factors"] = len(sizes)
            fields["factor_sizes"] = sizes[:_lib.ATTN_RNN_MAX_FACTORS]
            fields["more_factor_sizes"] = sizes[_lib.ATTN_RNN_MAX_FACTORS:]
        elif sizes is not None:
            raise InvalidArgument("%s: factor_sizes apply to recurrence='kronecker' only" % fn)
        self._create(fields, seed)

    # ---- options --------------------------------------------------------------------------------

    @property
    def cell(self) -> str:
        """``'rnn_tanh'``, ``'rnn_relu'``, ``'lstm'`` or ``'gru'``."""
        return choice_name(CELLS, self._opts.cell)

    @property
    def mode(self) -> str:
        """PyTorch's name of the cell: ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'`` or ``'GRU'``."""
        return self.cell.upper()

    @property
    def recurrence(self) -> str:
        """``'dense'``, ``'low_rank'`` or ``'kronecker'``."""
        return choice_name(RECURRENCES, self._opts.recurrence)

    @property
    def input_size(self) -> int:
        return int(self._opts.input_size)

    @property
    def hidden_size(self) -> int:
        return int(self._opts.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self._opts.num_layers)

    @property
    def bias(self) -> bool:
        return bool(self._opts.bias)

    @property
    def bidirectional(self) -> bool:
        return bool(self._opts.bidirectional)

    @property
    def num_directions(self) -> int:
        return 2 if self._opts.bidirectional else 1

    @property
    def batch_first(self) -> bool:
        return True

    @property
    def rank(self) -> Optional[int]:
        """The LOW_RANK rank (None for the other recurrences)."""
        return int(self._opts.rank) if self._opts.recurrence == 1 else None

    @property
    def factor_sizes(self) -> Optional[Tuple[int, ...]]:
        """The KRONECKER factor sizes (None for the other recurrences)."""
        o = self._opts
        if o.recurrence != 2:
            return None
        sizes = list(o.factor_sizes) + list(o.more_factor_sizes)
        return tuple(int(s) for s in sizes[: int(o.num_factors)])

    @property
    def gates(self) -> int:
        """Gate blocks per layer: 1 (Elman), 4 (LSTM), 3 (GRU)."""
        return _GATES[self._opts.cell]

    def _init_kwargs(self) -> dict:
        f = {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
             "cell": self.cell, "bias": self.bias, "bidirectional": self.bidirectional,
             "recurrence": self.recurrence}
        if self.rank is not None:
            f["rank"] = self.rank
        if self.factor_sizes is not None:
            f["factor_sizes"] = list(self.factor_sizes)
        return f

    def _repr_fields(self) -> dict:
        f = {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
             "cell": self.cell}
        if not self.bias:
            f["bias"] = False
        if self.bidirectional:
            f["bidirectional"] = True
        if self.recurrence != "dense":
            f["recurrence"] = self.recurrence
            if self.rank is not None:
                f["rank"] = self.rank
            if self.factor_sizes is not None:
                f["factor_sizes"] = list(self.factor_sizes)
        return f

    # ---- running ----------------------------------------------------------------------------------

    def state_shape(self, batch: int) -> Tuple[int, int, int]:
        """The shape of h0/h_n (and c0/c_n): ``(num_layers * D, batch, hidden_size)``."""
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def forward(self, x: Any, h0: Any = None, c0: Any = None, *, lengths: Any = None,
                workspace: Optional[Workspace] = None
                ) -> Union[Tuple[Array, Array], Tuple[Array, Tuple[Array, Array]]]:
        """Runs the network over a batch of sequences.

        Args:
            x: ``[batch, seq_len, input_size]``.
            h0: initial hidden state ``[num_layers * D, batch, hidden_size]``, or None for zeros.
                For an LSTM, PyTorch's ``hx = (h0, c0)`` tuple is accepted here as well.
            c0: initial cell state (LSTM only), same shape, or None for zeros.
            lengths: ``[batch]`` valid steps per sequence (``1 <= lengths[b] <= seq_len``, any
                order), as PyTorch's ``pack_padded_sequence(…, enforce_sorted=False)`` → module →
                ``pad_packed_sequence``: ``y[b, t]`` is 0 for ``t >= lengths[b]`` and the final
                states are each sequence's own (``attn_rnn_forward_lengths``).
            workspace: an :class:`~attn.Workspace`, or None for the calling thread's own.

        Returns:
            ``(y, h_n)``, or ``(y, (h_n, c_n))`` for an LSTM, as PyTorch's modules return them:
            ``y`` is ``[batch, seq_len, D * hidden_size]`` (forward direction in the first H
            columns), ``h_n``/``c_n`` are ``[num_layers * D, batch, hidden_size]``.

        Inputs that are float32 C-contiguous arrays are read in place; others are converted once
        (see the package docs). Any number of threads may call forward on one model at once.
        """
        fn = "attn.RNN.forward"
        lstm = self._opts.cell == 2
        if isinstance(h0, tuple):
            if not lstm or c0 is not None or len(h0) != 2:
                raise InvalidArgument("%s: a tuple h0 is PyTorch's LSTM hx = (h0, c0): only for an "
                                      "LSTM, with c0 not given" % fn)
            h0, c0 = h0
        x = f32(fn, "x", x)
        expect_shape(fn, "x", x, (None, None, self.input_size), "[batch, seq_len, input_size=%d]" % self.input_size)
        batch, seq_len = x.shape[0], x.shape[1]
        state = self.state_shape(batch)
        desc = "[num_layers * D, batch, hidden_size] = %s" % (state,)
        if h0 is not None:
            h0 = f32(fn, "h0", h0)
            expect_shape(fn, "h0", h0, state, desc)
        if c0 is not None:
            c0 = f32(fn, "c0", c0)
            expect_shape(fn, "c0", c0, state, desc)
        y = np.empty((batch, seq_len, self.num_directions * self.hidden_size), dtype=np.float32)
        h_n = np.empty(state, dtype=np.float32)
        c_n = np.empty(state, dtype=np.float32) if lstm else None
        tensors = (addr(x), addr(h0), addr(c0), addr(y), addr(h_n), addr(c_n))
        L = lib()
        if lengths is None:
            run(self, fn, workspace, lambda h, ws: L.attn_rnn_forward(h, ws, batch, seq_len, *tensors))
        else:
            lens = int64s(fn, "lengths", lengths)
            expect_shape(fn, "lengths", lens, (batch,), "[batch] = (%d,)" % batch)
            run(self, fn, workspace, lambda h, ws: L.attn_rnn_forward_lengths(
                h, ws, batch, seq_len, addr(lens), *tensors))
        return (y, (h_n, c_n)) if lstm else (y, h_n)

    def forward_lengths(self, x: Any, lengths: Any, h0: Any = None, c0: Any = None, *,
                        workspace: Optional[Workspace] = None):
        """``forward(x, h0, c0, lengths=lengths)``: variable-length sequences."""
        return self.forward(x, h0, c0, lengths=lengths, workspace=workspace)

    def cost(self, batch: int, seq_len: int) -> Cost:
        """Parameters, FLOPs and workspace bytes of one forward call of this shape."""
        fn = "attn.RNN.cost"
        c = _lib.CostStruct()
        b, t = as_int(fn, "batch", batch), as_int(fn, "seq_len", seq_len)
        with self._reading(fn) as h:
            check(lib().attn_rnn_cost(h, b, t, byref(c)))
        return cost_tuple(c)

    def recurrent_matrix(self, layer: int = 0, direction: int = 0) -> Array:
        """The effective recurrent matrix ``[gates * H, H]`` of one layer and direction (0 forward,
        1 reverse): ``weight_hh`` (dense), ``U V`` (low-rank) or the Kronecker products, gate
        blocks in PyTorch's order. For rank analysis (:mod:`attn.analysis`)."""
        fn = "attn.RNN.recurrent_matrix"
        H = self.hidden_size
        out = np.empty((self.gates * H, H), dtype=np.float32)
        l, d = as_int(fn, "layer", layer), as_int(fn, "direction", direction)
        with self._reading(fn) as h:
            check(lib().attn_rnn_recurrent_matrix(h, l, d, addr(out)))
        return out
