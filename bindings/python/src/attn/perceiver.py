"""The Perceiver: :class:`Perceiver` (``attn_perceiver``)."""

from __future__ import annotations

from ctypes import byref
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _lib
from ._core import (Workspace, addr, as_flag, as_int, check, cost_tuple, expect_shape, f32, lib, mask_u8,
                    run, seq_ints)
from ._model import Model
from .errors import InvalidArgument
from .params import Cost


class Perceiver(Model):
    """The Perceiver (Jaegle et al. 2021): inputs cross-attend into a small latent array, so the
    cost grows linearly with the number of input positions (``attn_perceiver``; the structure and
    ``state_dict`` names of lucidrains/perceiver-pytorch's ``Perceiver``, see docs/perceiver.md).
    PyTorch has no such module, so the options carry the C names (lucidrains' are the same,
    except ``fourier_encode_data``, accepted as an alias, and ``num_classes``, whose default here
    is 0 = no head).

    Args:
        depth: layers (required).
        num_freq_bands: Fourier bands per axis ``K`` (required with ``fourier_encode``).
        max_freq: the bands span ``1 .. max_freq / 2`` (required with ``fourier_encode``).
        input_channels: data channels per position ``C`` (default 3).
        input_axis: spatial axes, 1 to 3 (default 2).
        num_latents, latent_dim: the latent array ``M x D`` (default 512 x 512).
        cross_heads, cross_dim_head: cross-attention heads and width (default 1, 64).
        latent_heads, latent_dim_head: self-attention heads and width (default 8, 64).
        self_per_cross_attn: self-attention blocks per layer (default 1).
        weight_tie_layers: layers >= 1 share one set of weights (default False).
        num_classes: logits of the classification head; 0 (default): no head, the output is the
            latents.
        fourier_encode: append the position features to the data (default True).
        seed: initialize the parameters from this seed (a new model has seed 0).

    Layouts: ``data [batch, *axis_sizes, input_channels]``, ``mask [batch, *axis_sizes]`` or
    ``[batch, N]`` (True/nonzero = ignore that position: the opposite of lucidrains' "keep"
    mask) -> ``[batch, num_classes]`` or ``[batch, num_latents, latent_dim]``.
    """

    _family = "perceiver"
    _options_type = _lib.PerceiverOptions
    _kind = "Perceiver"

    def __init__(self, *, depth: int, num_freq_bands: Optional[int] = None, max_freq: Optional[float] = None,
                 input_channels: int = 3, input_axis: int = 2, num_latents: int = 512, latent_dim: int = 512,
                 cross_heads: int = 1, cross_dim_head: int = 64, latent_heads: int = 8,
                 latent_dim_head: int = 64, self_per_cross_attn: int = 1, weight_tie_layers: bool = False,
                 num_classes: int = 0, fourier_encode: Optional[bool] = None,
                 fourier_encode_data: Optional[bool] = None, seed: Optional[int] = None) -> None:
        super().__init__()
        fn = "attn.Perceiver"
        if fourier_encode is not None and fourier_encode_data is not None:
            raise InvalidArgument("%s: give fourier_encode or its alias fourier_encode_data, not both" % fn)
        fe = fourier_encode if fourier_encode is not None else fourier_encode_data
        fields = {
            "input_channels": as_int(fn, "input_channels", input_channels),
            "input_axis": as_int(fn, "input_axis", input_axis),
            "num_freq_bands": 0 if num_freq_bands is None else as_int(fn, "num_freq_bands", num_freq_bands),
            "fourier_encode": 1 if fe is None else as_flag(fn, "fourier_encode", fe),
            "depth": as_int(fn, "depth", depth),
            "num_latents": as_int(fn, "num_latents", num_latents),
            "latent_dim": as_int(fn, "latent_dim", latent_dim),
            "cross_heads": as_int(fn, "cross_heads", cross_heads),
            "cross_dim_head": as_int(fn, "cross_dim_head", cross_dim_head),
            "latent_heads": as_int(fn, "latent_heads", latent_heads),
            "latent_dim_head": as_int(fn, "latent_dim_head", latent_dim_head),
            "self_per_cross_attn": as_int(fn, "self_per_cross_attn", self_per_cross_attn),
            "weight_tie_layers": as_flag(fn, "weight_tie_layers", weight_tie_layers),
            "num_classes": as_int(fn, "num_classes", num_classes),
        }
        if max_freq is not None:
            try:
                fields["max_freq"] = float(max_freq)
            except (TypeError, ValueError):
                raise InvalidArgument("%s: max_freq must be a number (got %r)" % (fn, max_freq)) from None
        self._create(fields, seed)

    _INT_OPTIONS = ("input_channels", "input_axis", "num_freq_bands", "depth", "num_latents", "latent_dim",
                    "cross_heads", "cross_dim_head", "latent_heads", "latent_dim_head", "self_per_cross_attn",
                    "num_classes")

    @property
    def max_freq(self) -> float:
        return float(self._opts.max_freq)

    @property
    def fourier_encode(self) -> bool:
        return bool(self._opts.fourier_encode)

    @property
    def weight_tie_layers(self) -> bool:
        return bool(self._opts.weight_tie_layers)

    def _init_kwargs(self) -> dict:
        return self._repr_fields()

    def _repr_fields(self) -> dict:
        f = {n: getattr(self, n) for n in self._INT_OPTIONS}
        f.update(max_freq=self.max_freq, fourier_encode=self.fourier_encode, weight_tie_layers=self.weight_tie_layers)
        return f

    def output_shape(self, batch: int) -> Tuple[int, ...]:
        """``(batch, num_classes)`` or ``(batch, num_latents, latent_dim)``."""
        o = self._opts
        return (batch, int(o.num_classes)) if o.num_classes > 0 else (batch, int(o.num_latents), int(o.latent_dim))

    def forward(self, data: Any, mask: Any = None, *, workspace: Optional[Workspace] = None) -> np.ndarray:
        """One forward pass.

        Args:
            data: ``[batch, *axis_sizes, input_channels]`` with ``input_axis`` spatial axes of any
                sizes (the Fourier features follow them).
            mask: ``[batch, *axis_sizes]`` or ``[batch, N]`` (N = product of the axis sizes), bool or
                integer, True/nonzero = that position is ignored by the cross-attention; or None.
            workspace: an :class:`~attn.Workspace`, or None for the calling thread's own.

        Returns:
            ``[batch, num_classes]`` logits, or ``[batch, num_latents, latent_dim]`` latents.
        """
        fn = "attn.Perceiver.forward"
        o = self._opts
        d = f32(fn, "data", data)
        axes = int(o.input_axis)
        C = int(o.input_channels)
        expect_shape(fn, "data", d, (None,) * (axes + 1) + (C,),
                     "[batch, %d axis sizes, input_channels=%d]" % (axes, C))
        batch = d.shape[0]
        sizes = np.array(d.shape[1:-1], dtype=np.int64)
        m = None
        if mask is not None:
            m = mask_u8(fn, "mask", mask)
            if m.shape != d.shape[:-1]:
                n = int(np.prod(sizes))
                expect_shape(fn, "mask", m, (batch, n), "[batch, *axis_sizes] = %s or [batch, N] = (%d, %d)"
                             % (tuple(d.shape[:-1]), batch, n))
        out = np.empty(self.output_shape(batch), dtype=np.float32)
        L = lib()
        run(self, fn, workspace, lambda h, ws: L.attn_perceiver_forward(h, ws, batch, addr(sizes), addr(d),
                                                                        addr(m), addr(out)))
        return out

    def cost(self, batch: int, axis_sizes: Sequence[int]) -> Cost:
        """Parameters, FLOPs and workspace bytes of one forward call for ``batch`` inputs of spatial
        shape ``axis_sizes`` (``input_axis`` entries)."""
        fn = "attn.Perceiver.cost"
        sizes = seq_ints(fn, "axis_sizes", axis_sizes)
        axes = int(self._opts.input_axis)
        if sizes is None or len(sizes) != axes:
            raise InvalidArgument("%s: axis_sizes must have input_axis = %d entries (got %r)" % (fn, axes, axis_sizes))
        arr = np.array(sizes, dtype=np.int64)
        b = as_int(fn, "batch", batch)
        c = _lib.CostStruct()
        with self._reading(fn) as h:
            check(lib().attn_perceiver_cost(h, b, addr(arr), byref(c)))
        return cost_tuple(c)


def _int_option(name: str) -> property:
    return property(lambda self: int(getattr(self._opts, name)), doc="The %s option (int)." % name)


for _name in Perceiver._INT_OPTIONS:
    setattr(Perceiver, _name, _int_option(_name))
del _name
