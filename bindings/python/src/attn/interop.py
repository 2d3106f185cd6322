"""Moving PyTorch modules and ``state_dict``s into libattn: :func:`from_torch`,
:func:`from_state_dict`. torch is imported only by :func:`from_torch`, and only when called."""

from __future__ import annotations

import re
from typing import Any, Mapping, Type, Union

from ._core import to_numpy
from ._model import Model
from .analysis import lowrank_factors
from .attention import MultiheadAttention
from .errors import InvalidArgument, NotFound, Unsupported
from .memory import MemoryRNN
from .perceiver import Perceiver
from .rnn import RNN

_KINDS = {
    "rnn": (RNN, None), "lstm": (RNN, "lstm"), "gru": (RNN, "gru"), "rnn_tanh": (RNN, "rnn_tanh"),
    "rnn_relu": (RNN, "rnn_relu"),
    "memory_rnn": (MemoryRNN, None), "memrnn": (MemoryRNN, None), "ntm": (MemoryRNN, None),
    "multihead_attention": (MultiheadAttention, None), "mha": (MultiheadAttention, None),
    "attention": (MultiheadAttention, None),
    "perceiver": (Perceiver, None),
}
_WEIGHT_HH = re.compile(r"^weight_hh_l(\d+)(_reverse)?$")
# Tensors a MultiheadAttention kind has beyond torch.nn.MultiheadAttention's.
_MHA_OWN = {"proj_e", "proj_f", "res_conv.weight"}


def from_state_dict(kind: Union[str, Type[Model]], state_dict: Mapping[str, Any], /, *, strict: bool = True,
                    **options: Any) -> Model:
    """A model built with ``options`` whose tensors are set from ``state_dict`` (torch tensors or
    arrays, keyed by the library's names).

    For modules outside PyTorch whose ``state_dict`` follows the library's names: the Perceiver
    (``lucidrains/perceiver-pytorch``: ``kind='perceiver'``) and the NTM
    (``loudinthecloud/pytorch-ntm``'s ``EncapsulatedNTM``: ``kind='ntm'``, aliases of the repeated
    ``mem_bias`` accepted), and for any ``state_dict`` saved from a libattn model. ``kind`` is a
    model class or one of ``'rnn'`` (cell from ``options``), ``'lstm'``, ``'gru'``,
    ``'rnn_tanh'``, ``'rnn_relu'``, ``'ntm'``/``'memory_rnn'``, ``'mha'``/
    ``'multihead_attention'``, ``'perceiver'``. ``options`` are the class's keyword arguments
    and must describe the module the ``state_dict`` came from. ``strict`` as in
    :meth:`Params.load_state_dict`.

    Example::

        # lucidrains' Perceiver(num_freq_bands=6, depth=2, max_freq=10., input_channels=3, ...)
        model = attn.from_state_dict("perceiver", torch_perceiver.state_dict(), depth=2,
                                     num_freq_bands=6, max_freq=10.0, input_channels=3, ...)
    """
    if isinstance(kind, str):
        key = kind.strip().lower().replace("-", "_")
        if key not in _KINDS:
            raise InvalidArgument("attn.from_state_dict: kind must be one of %s or a model class (got %r)"
                                  % (", ".join(repr(k) for k in _KINDS), kind))
        cls, cell = _KINDS[key]
        if cell is not None:
            if "cell" in options and options["cell"] is not None and str(options["cell"]).lower() != cell:
                raise InvalidArgument("attn.from_state_dict: kind=%r contradicts cell=%r" % (kind, options["cell"]))
            options["cell"] = cell
    elif isinstance(kind, type) and issubclass(kind, Model) and kind is not Model:
        cls = kind
    else:
        raise InvalidArgument("attn.from_state_dict: kind must be a string or a model class (got %r)" % (kind,))
    try:
        model = cls(**options)
    except TypeError as e:
        raise InvalidArgument("attn.from_state_dict: %s" % e) from None
    model.load_state_dict(state_dict, strict=strict)
    return model


def from_torch(module: Any, **options: Any) -> Model:
    """A libattn model equal to a PyTorch module: ``torch.nn.RNN``, ``LSTM``, ``GRU`` or
    ``MultiheadAttention``. The options are read from the module and its ``state_dict`` copied
    (the module is not referenced afterwards). ``batch_first`` is not copied: libattn is always
    batch-first, so feed it ``[batch, seq, features]`` arrays whatever the module's setting.
    Dropout is ignored (libattn is inference).

    ``options`` override or extend what is read from the module, e.g.
    ``from_torch(lstm, recurrence='low_rank', rank=8)`` (each ``weight_hh`` replaced by its best
    rank-8 factors, :func:`attn.analysis.lowrank_factors`) or
    ``from_torch(mha, kind='linformer', max_seq_len=512, proj_len=64)`` (the kind's own tensors,
    ``proj_e``/``proj_f``/``res_conv.weight``, keep their seed-0 values; set them afterwards).

    Raises Unsupported for a module libattn cannot represent (LSTM ``proj_size``,
    ``add_bias_kv``, ``add_zero_attn``, another module type) and for a Kronecker recurrence,
    which no dense checkpoint converts to.
    """
    import torch.nn as nn  # noqa: the caller has a torch module, so torch is there

    state = {k: to_numpy(v) for k, v in module.state_dict().items()}
    if isinstance(module, nn.RNNBase):
        if getattr(module, "proj_size", 0):
            raise Unsupported("attn.from_torch: LSTM proj_size=%d has no libattn equivalent" % module.proj_size)
        opts = dict(input_size=module.input_size, hidden_size=module.hidden_size, num_layers=module.num_layers,
                    cell=module.mode.lower(), bias=bool(module.bias), bidirectional=bool(module.bidirectional))
        opts.update(options)
        model = RNN(**opts)
        if model.recurrence == "low_rank":
            state = _factor_recurrence(state, model.rank)
        elif model.recurrence == "kronecker":
            model.close()
            raise Unsupported("attn.from_torch: a dense recurrence does not convert to recurrence='kronecker'")
        model.load_state_dict(state, strict=True)
        return model
    if isinstance(module, nn.MultiheadAttention):
        if module.bias_k is not None or module.bias_v is not None:
            raise Unsupported("attn.from_torch: MultiheadAttention(add_bias_kv=True) has no libattn equivalent")
        if module.add_zero_attn:
            raise Unsupported("attn.from_torch: MultiheadAttention(add_zero_attn=True) has no libattn equivalent")
        opts = dict(embed_dim=module.embed_dim, num_heads=module.num_heads, kdim=module.kdim, vdim=module.vdim,
                    bias=module.in_proj_bias is not None)
        opts.update(options)
        model = MultiheadAttention(**opts)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - _MHA_OWN:
            model.close()
            raise NotFound("attn.from_torch: the module's state_dict does not match: missing %s, unexpected %s"
                           % (sorted(set(missing) - _MHA_OWN), unexpected))
        return model
    raise Unsupported("attn.from_torch: %s is not torch.nn.RNN, LSTM, GRU or MultiheadAttention (for the "
                      "Perceiver and the NTM use attn.from_state_dict)" % type(module).__name__)


def _factor_recurrence(state: dict, rank: int) -> dict:
    out = {}
    for key, value in state.items():
        m = _WEIGHT_HH.match(key)
        if m:
            u, v = lowrank_factors(value, rank)
            suffix = m.group(2) or ""
            out["weight_hh_l%s_u%s" % (m.group(1), suffix)] = u
            out["weight_hh_l%s_v%s" % (m.group(1), suffix)] = v
        else:
            out[key] = value
    return out
