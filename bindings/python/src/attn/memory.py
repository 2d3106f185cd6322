"""The memory-network RNN: :class:`MemoryRNN` (``attn_memrnn``, a Neural Turing Machine)."""

from __future__ import annotations

from ctypes import byref
from typing import Any, NamedTuple, Optional

import numpy as np

from . import _lib
from ._core import (Workspace, addr, as_choice, as_int, choice_name, check, cost_tuple, expect_shape,
                    f32, lib, run)
from ._model import Model
from .errors import InvalidArgument
from .params import Cost

ADDRESSINGS = {"dense": 0, "sparse": 1}


class MemoryRNNOutput(NamedTuple):
    """What :meth:`MemoryRNN.forward_all` returns."""

    output: np.ndarray  #: ``[batch, seq_len, output_size]`` sigmoid outputs
    read_weights: Optional[np.ndarray]  #: ``[batch, seq_len, num_heads, memory_slots]`` or None
    memory: Optional[np.ndarray]  #: ``[batch, memory_slots, memory_width]`` final memory, or None


class MemoryRNN(Model):
    """A Neural Turing Machine: an LSTM controller with an external memory of ``memory_slots`` rows
    of ``memory_width`` floats per batch element, read and written by ``num_heads`` pairs of
    heads (``attn_memrnn``; the ``EncapsulatedNTM`` of loudinthecloud/pytorch-ntm, its semantics
    and ``state_dict`` names, see docs/memory.md). PyTorch has no such module, so the options
    carry the C names.

    Args:
        input_size: features of ``x``.
        output_size: features of ``y``.
        controller_size: hidden size ``C`` of the LSTM controller.
        memory_slots: ``N``, rows of the memory.
        memory_width: ``W``, columns of the memory.
        controller_layers: LSTM layers (default 1).
        num_heads: pairs of (read head, write head) (default 1).
        addressing: ``'dense'`` (default) or ``'sparse'`` (each head keeps its ``top_k``
            largest weights; reads and writes touch only those rows).
        top_k: slots kept per head with sparse addressing (>= N equals dense).
        seed: initialize the parameters from this seed (a new model has seed 0).

    Each sequence starts from the learned initial state. Layouts: ``x [batch, seq_len,
    input_size]`` -> ``y [batch, seq_len, output_size]``.
    """

    _family = "memrnn"
    _options_type = _lib.MemrnnOptions
    _kind = "MemoryRNN"

    def __init__(self, input_size: int, output_size: int, controller_size: int, memory_slots: int,
                 memory_width: int, *, controller_layers: int = 1, num_heads: int = 1,
                 addressing: str = "dense", top_k: Optional[int] = None, seed: Optional[int] = None) -> None:
        super().__init__()
        fn = "attn.MemoryRNN"
        mode = as_choice(fn, "addressing", addressing, ADDRESSINGS)
        if mode == 1 and top_k is None:
            raise InvalidArgument("%s: addressing='sparse' needs top_k" % fn)
        if mode == 0 and top_k is not None:
            raise InvalidArgument("%s: top_k applies to addressing='sparse' only" % fn)
        fields = {
            "input_size": as_int(fn, "input_size", input_size),
            "output_size": as_int(fn, "output_size", output_size),
            "controller_size": as_int(fn, "controller_size", controller_size),
            "controller_layers": as_int(fn, "controller_layers", controller_layers),
            "num_heads": as_int(fn, "num_heads", num_heads),
            "memory_slots": as_int(fn, "memory_slots", memory_slots),
            "memory_width": as_int(fn, "memory_width", memory_width),
            "addressing": mode,
            "top_k": 0 if top_k is None else as_int(fn, "top_k", top_k),
        }
        self._create(fields, seed)

    @property
    def input_size(self) -> int:
        return int(self._opts.input_size)

    @property
    def output_size(self) -> int:
        return int(self._opts.output_size)

    @property
    def controller_size(self) -> int:
        return int(self._opts.controller_size)

    @property
    def controller_layers(self) -> int:
        return int(self._opts.controller_layers)

    @property
    def num_heads(self) -> int:
        return int(self._opts.num_heads)

    @property
    def memory_slots(self) -> int:
        return int(self._opts.memory_slots)

    @property
    def memory_width(self) -> int:
        return int(self._opts.memory_width)

    @property
    def addressing(self) -> str:
        return choice_name(ADDRESSINGS, self._opts.addressing)

    @property
    def top_k(self) -> Optional[int]:
        return int(self._opts.top_k) if self._opts.addressing == 1 else None

    def _init_kwargs(self) -> dict:
        return self._repr_fields()

    def _repr_fields(self) -> dict:
        f = {k: getattr(self, k) for k in ("input_size", "output_size", "controller_size", "memory_slots",
                                            "memory_width", "controller_layers", "num_heads", "addressing")}
        if self.top_k is not None:
            f["top_k"] = self.top_k
        return f

    def forward(self, x: Any, *, workspace: Optional[Workspace] = None) -> np.ndarray:
        """``x [batch, seq_len, input_size]`` -> ``y [batch, seq_len, output_size]``."""
        return self._forward("attn.MemoryRNN.forward", x, False, False, workspace).output

    def forward_all(self, x: Any, *, read_weights: bool = True, memory: bool = True,
                    workspace: Optional[Workspace] = None) -> MemoryRNNOutput:
        """Like :meth:`forward`, also returning each read head's weighting per step
        (``[batch, seq_len, num_heads, memory_slots]``) and the memory after the last step
        (``[batch, memory_slots, memory_width]``), each unless switched off."""
        return self._forward("attn.MemoryRNN.forward_all", x, read_weights, memory, workspace)

    def _forward(self, fn: str, x: Any, want_rw: bool, want_mem: bool,
                 workspace: Optional[Workspace]) -> MemoryRNNOutput:
        o = self._opts
        x = f32(fn, "x", x)
        expect_shape(fn, "x", x, (None, None, int(o.input_size)), "[batch, seq_len, input_size=%d]" % o.input_size)
        batch, seq_len = x.shape[0], x.shape[1]
        y = np.empty((batch, seq_len, int(o.output_size)), dtype=np.float32)
        rw = (np.empty((batch, seq_len, int(o.num_heads), int(o.memory_slots)), dtype=np.float32)
              if want_rw else None)
        mem = np.empty((batch, int(o.memory_slots), int(o.memory_width)), dtype=np.float32) if want_mem else None
        L = lib()
        run(self, fn, workspace, lambda h, ws: L.attn_memrnn_forward(h, ws, batch, seq_len, addr(x), addr(y),
                                                                     addr(rw), addr(mem)))
        return MemoryRNNOutput(y, rw, mem)

    def cost(self, batch: int, seq_len: int) -> Cost:
        """Parameters, FLOPs and workspace bytes of one forward call of this shape."""
        fn = "attn.MemoryRNN.cost"
        c = _lib.CostStruct()
        b, t = as_int(fn, "batch", batch), as_int(fn, "seq_len", seq_len)
        with self._reading(fn) as h:
            check(lib().attn_memrnn_cost(h, b, t, byref(c)))
        return cost_tuple(c)
