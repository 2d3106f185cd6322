"""Multi-head attention: :class:`MultiheadAttention` (``attn_mha``): full, Linformer, Nyström."""

from __future__ import annotations

from ctypes import byref
from typing import Any, Optional

import numpy as np

from . import _lib
from ._core import (Workspace, addr, as_choice, as_flag, as_int, check, check_dropout, choice_name,
                    cost_tuple, expect_shape, f32, lib, mask_u8, run)
from ._model import Model
from .errors import InvalidArgument
from .params import Cost

KINDS = {"full": 0, "linformer": 1, "nystrom": 2, "nyström": 2}
MEMORY_MODES = {"auto": 0, "materialize": 1, "streaming": 2}
SHARINGS = {"headwise": 0, "kv": 1, "none": 2}
PINVS = {"newton": 0, "svd": 1}

# The options that belong to one kind only: (kind value, C field).
_KIND_OPTIONS = {
    "memory_mode": 0,
    "max_seq_len": 1, "proj_len": 1, "sharing": 1,
    "num_landmarks": 2, "pinv": 2, "pinv_iterations": 2, "conv_kernel": 2,
}


class MultiheadAttention(Model):
    """Multi-head attention over batch-first sequences (``attn_mha``): ``torch.nn.MultiheadAttention``
    semantics and ``state_dict`` names for ``kind='full'``, plus the Linformer and Nyström
    approximations (docs/attention.md).

    Args:
        embed_dim: ``E``, divisible by ``num_heads``.
        num_heads: ``h`` (default 1).
        dropout: accepted so that PyTorch keyword lists pass through, and ignored: libattn runs
            inference, as a PyTorch module does in ``eval()`` mode.
        bias: ``in_proj_bias`` and ``out_proj.bias`` (default True).
        kdim, vdim: features of ``key`` and ``value`` (default ``embed_dim``).
        batch_first: must be True (the default): tensors are ``[batch, seq, features]``.
        kind: ``'full'`` (default), ``'linformer'`` or ``'nystrom'``.
        causal: query ``i`` sees keys ``j <= i`` only (``'full'`` only; PyTorch's ``is_causal``).
        memory_mode: ``'full'``: ``'auto'`` (default), ``'materialize'`` (L x S scores per head)
            or ``'streaming'`` (tiles of keys, O((L + S) E) memory).
        max_seq_len, proj_len, sharing: ``'linformer'``: longest key sequence, projected length
            ``k``, and ``'headwise'`` (default: one E and one F), ``'kv'`` (one E for keys and
            values) or ``'none'`` (per head).
        num_landmarks, pinv, pinv_iterations, conv_kernel: ``'nystrom'``: landmarks ``m``,
            ``'newton'`` (default, ``pinv_iterations`` steps, default 6) or ``'svd'``
            pseudo-inverse, odd kernel of the residual convolution (0 = none).
        seed: initialize the parameters from this seed (a new model has seed 0).

    Layouts: ``query [batch, L, E]``, ``key [batch, S, kdim]``, ``value [batch, S, vdim]``,
    ``key_padding_mask [batch, S]`` (True/nonzero = ignore that key, PyTorch's boolean mask) ->
    ``[batch, L, E]``.

    Unlike PyTorch's module, :meth:`forward` returns only the output; :meth:`attention_matrix`
    gives the per-head weights (PyTorch's ``need_weights=True, average_attn_weights=False``).
    PyTorch options without an equivalent: ``add_bias_kv``, ``add_zero_attn``, an ``attn_mask``
    other than causal (dropout is accepted and ignored).

    Example::

        mha = attn.MultiheadAttention(64, 8)
        out = mha(x)                              # self-attention, x [batch, L, 64]
        out = mha(q, k, v, key_padding_mask=pad)  # pad: bool [batch, S]
    """

    _family = "mha"
    _options_type = _lib.MhaOptions
    _kind = "MultiheadAttention"

    def __init__(self, embed_dim: int, num_heads: int = 1, *, dropout: float = 0.0, bias: bool = True,
                 kdim: Optional[int] = None, vdim: Optional[int] = None, batch_first: bool = True,
                 kind: str = "full", causal: bool = False, memory_mode: Optional[str] = None,
                 max_seq_len: Optional[int] = None, proj_len: Optional[int] = None,
                 sharing: Optional[str] = None, num_landmarks: Optional[int] = None,
                 pinv: Optional[str] = None, pinv_iterations: Optional[int] = None,
                 conv_kernel: Optional[int] = None, seed: Optional[int] = None) -> None:
        super().__init__()
        fn = "attn.MultiheadAttention"
        check_dropout(fn, dropout)
        k = as_choice(fn, "kind", kind, KINDS)
        if not as_flag(fn, "batch_first", batch_first):
            raise InvalidArgument("%s: batch_first=False is not supported: libattn's tensors are "
                                  "[batch, seq, features]" % fn)
        given = {"memory_mode": memory_mode, "max_seq_len": max_seq_len, "proj_len": proj_len,
                 "sharing": sharing, "num_landmarks": num_landmarks, "pinv": pinv,
                 "pinv_iterations": pinv_iterations, "conv_kernel": conv_kernel}
        for name, value in given.items():
            if value is not None and _KIND_OPTIONS[name] != k:
                raise InvalidArgument("%s: %s applies to kind=%r only (this is kind=%r)"
                                      % (fn, name, choice_name(KINDS, _KIND_OPTIONS[name]), choice_name(KINDS, k)))
        fields = {
            "kind": k,
            "embed_dim": as_int(fn, "embed_dim", embed_dim),
            "num_heads": as_int(fn, "num_heads", num_heads),
            "kdim": 0 if kdim is None else as_int(fn, "kdim", kdim),
            "vdim": 0 if vdim is None else as_int(fn, "vdim", vdim),
            "bias": as_flag(fn, "bias", bias),
            "causal": as_flag(fn, "causal", causal),
        }
        if memory_mode is not None:
            fields["memory_mode"] = as_choice(fn, "memory_mode", memory_mode, MEMORY_MODES)
        if k == 1:
            for name in ("max_seq_len", "proj_len"):
                if given[name] is None:
                    raise InvalidArgument("%s: kind='linformer' needs %s" % (fn, name))
                fields[name] = as_int(fn, name, given[name])
            if sharing is not None:
                fields["sharing"] = as_choice(fn, "sharing", sharing, SHARINGS)
        if k == 2:
            if num_landmarks is None:
                raise InvalidArgument("%s: kind='nystrom' needs num_landmarks" % fn)
            fields["num_landmarks"] = as_int(fn, "num_landmarks", num_landmarks)
            if pinv is not None:
                fields["pinv"] = as_choice(fn, "pinv", pinv, PINVS)
            if pinv_iterations is not None:
                fields["pinv_iterations"] = as_int(fn, "pinv_iterations", pinv_iterations)
            if conv_kernel is not None:
                fields["conv_kernel"] = as_int(fn, "conv_kernel", conv_kernel)
        self._create(fields, seed)

    # ---- options --------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``'full'``, ``'linformer'`` or ``'nystrom'``."""
        return choice_name(KINDS, self._opts.kind)

    @property
    def embed_dim(self) -> int:
        return int(self._opts.embed_dim)

    @property
    def num_heads(self) -> int:
        return int(self._opts.num_heads)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def kdim(self) -> int:
        return int(self._opts.kdim)

    @property
    def vdim(self) -> int:
        return int(self._opts.vdim)

    @property
    def bias(self) -> bool:
        return bool(self._opts.bias)

    @property
    def causal(self) -> bool:
        return bool(self._opts.causal)

    @property
    def batch_first(self) -> bool:
        return True

    @property
    def memory_mode(self) -> Optional[str]:
        return choice_name(MEMORY_MODES, self._opts.memory_mode) if self._opts.kind == 0 else None

    @property
    def max_seq_len(self) -> Optional[int]:
        return int(self._opts.max_seq_len) if self._opts.kind == 1 else None

    @property
    def proj_len(self) -> Optional[int]:
        return int(self._opts.proj_len) if self._opts.kind == 1 else None

    @property
    def sharing(self) -> Optional[str]:
        return choice_name(SHARINGS, self._opts.sharing) if self._opts.kind == 1 else None

    @property
    def num_landmarks(self) -> Optional[int]:
        return int(self._opts.num_landmarks) if self._opts.kind == 2 else None

    @property
    def pinv(self) -> Optional[str]:
        return choice_name(PINVS, self._opts.pinv) if self._opts.kind == 2 else None

    @property
    def pinv_iterations(self) -> Optional[int]:
        return int(self._opts.pinv_iterations) if self._opts.kind == 2 else None

    @property
    def conv_kernel(self) -> Optional[int]:
        return int(self._opts.conv_kernel) if self._opts.kind == 2 else None

    def _init_kwargs(self) -> dict:
        f = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "bias": self.bias, "kdim": self.kdim,
             "vdim": self.vdim, "kind": self.kind, "causal": self.causal}
        names = {0: ("memory_mode",), 1: ("max_seq_len", "proj_len", "sharing"),
                 2: ("num_landmarks", "pinv", "pinv_iterations", "conv_kernel")}[self._opts.kind]
        f.update((n, getattr(self, n)) for n in names)
        return f

    def _repr_fields(self) -> dict:
        f = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "kind": self.kind}
        if self.kdim != self.embed_dim or self.vdim != self.embed_dim:
            f.update(kdim=self.kdim, vdim=self.vdim)
        if not self.bias:
            f["bias"] = False
        if self.causal:
            f["causal"] = True
        names = {0: ("memory_mode",), 1: ("max_seq_len", "proj_len", "sharing"),
                 2: ("num_landmarks", "pinv", "pinv_iterations", "conv_kernel")}[self._opts.kind]
        f.update((n, getattr(self, n)) for n in names)
        return f

    # ---- running ----------------------------------------------------------------------------------

    def _inputs(self, fn: str, query: Any, key: Any, value: Any, key_padding_mask: Any):
        q = f32(fn, "query", query)
        E = self.embed_dim
        expect_shape(fn, "query", q, (None, None, E), "[batch, tgt_len, embed_dim=%d]" % E)
        k = q if key is None else f32(fn, "key", key)
        v = k if value is None else f32(fn, "value", value)
        B = q.shape[0]
        expect_shape(fn, "key", k, (B, None, self.kdim), "[batch=%d, src_len, kdim=%d]" % (B, self.kdim))
        S = k.shape[1]
        expect_shape(fn, "value", v, (B, S, self.vdim), "[batch=%d, src_len=%d, vdim=%d]" % (B, S, self.vdim))
        m = None
        if key_padding_mask is not None:
            m = mask_u8(fn, "key_padding_mask", key_padding_mask)
            expect_shape(fn, "key_padding_mask", m, (B, S), "[batch, src_len] = (%d, %d)" % (B, S))
        return q, k, v, m, B, q.shape[1], S

    def forward(self, query: Any, key: Any = None, value: Any = None, key_padding_mask: Any = None, *,
                workspace: Optional[Workspace] = None) -> np.ndarray:
        """Attention of ``query`` over ``key``/``value``.

        Args:
            query: ``[batch, tgt_len, embed_dim]``.
            key: ``[batch, src_len, kdim]``; None: ``query`` (self-attention).
            value: ``[batch, src_len, vdim]``; None: ``key``.
            key_padding_mask: ``[batch, src_len]`` bool or integer, True/nonzero = ignore that key,
                or None. A query whose every key is masked gets zeros (PyTorch gives NaN).
            workspace: an :class:`~attn.Workspace`, or None for the calling thread's own.

        Returns:
            ``[batch, tgt_len, embed_dim]``.
        """
        fn = "attn.MultiheadAttention.forward"
        q, k, v, m, B, L, S = self._inputs(fn, query, key, value, key_padding_mask)
        out = np.empty((B, L, self.embed_dim), dtype=np.float32)
        lb = lib()
        run(self, fn, workspace, lambda h, ws: lb.attn_mha_forward(h, ws, B, L, S, addr(q), addr(k), addr(v),
                                                                   addr(m), addr(out)))
        return out

    def attention_matrix(self, query: Any, key: Any = None, value: Any = None, key_padding_mask: Any = None,
                         *, workspace: Optional[Workspace] = None) -> np.ndarray:
        """The ``tgt_len x src_len`` matrix that multiplies each head's values, exact (full) or as
        the kind approximates it: ``[batch, num_heads, tgt_len, src_len]``. Same arguments as
        :meth:`forward`. For analysis (forward never forms it for the approximate kinds)."""
        fn = "attn.MultiheadAttention.attention_matrix"
        q, k, v, m, B, L, S = self._inputs(fn, query, key, value, key_padding_mask)
        out = np.empty((B, self.num_heads, L, S), dtype=np.float32)
        lb = lib()
        run(self, fn, workspace, lambda h, ws: lb.attn_mha_attention_matrix(
            h, ws, B, L, S, addr(q), addr(k), addr(v), addr(m), addr(out)))
        return out

    def cost(self, batch: int, tgt_len: int, src_len: Optional[int] = None) -> Cost:
        """Parameters, FLOPs and workspace bytes of one forward call (``src_len`` defaults to
        ``tgt_len``)."""
        fn = "attn.MultiheadAttention.cost"
        c = _lib.CostStruct()
        b, l = as_int(fn, "batch", batch), as_int(fn, "tgt_len", tgt_len)
        s = l if src_len is None else as_int(fn, "src_len", src_len)
        with self._reading(fn) as h:
            check(lib().attn_mha_cost(h, b, l, s, byref(c)))
        return cost_tuple(c)
