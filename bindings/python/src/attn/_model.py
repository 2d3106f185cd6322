"""The base of the model classes (internal): creating a handle from an options struct, reading the
options back, the params mapping, lifetime."""

from __future__ import annotations

import contextlib
import ctypes
from ctypes import byref, c_void_p
from typing import Any, Dict, Mapping, Optional

from . import _lib
from ._core import Resource, check, lib
from .params import IncompatibleKeys, Params


class Model(Resource):
    """Shared by RNN, MemoryRNN, MultiheadAttention and Perceiver."""

    _family = ""  # the C prefix: attn_<family>_create …
    _options_type: Any = None
    _params_ptr: Optional[int] = None

    def _create(self, fields: Dict[str, Any], seed: Optional[int]) -> None:
        L = lib()
        fam = self._family
        buf, o = _lib.padded(self._options_type)
        check(getattr(L, "attn_%s_options_init" % fam)(ctypes.addressof(o)))
        for name, value in fields.items():
            if name in ("factor_sizes", "more_factor_sizes"):
                arr = getattr(o, name)
                for i, v in enumerate(value):
                    arr[i] = v
            else:
                setattr(o, name, value)
        h = c_void_p()
        check(getattr(L, "attn_%s_create" % fam)(byref(h), ctypes.addressof(o)))
        self._ptr = h.value
        self._params_ptr = getattr(L, "attn_%s_params" % fam)(self._ptr)
        # The options as the library resolved them (defaults, kdim/vdim = E, ...).
        buf2, o2 = _lib.padded(self._options_type)
        check(getattr(L, "attn_%s_options_init" % fam)(ctypes.addressof(o2)))
        check(getattr(L, "attn_%s_get_options" % fam)(self._ptr, ctypes.addressof(o2)))
        self._opts = self._options_type.from_buffer_copy(buf2)
        if seed is not None:
            self.params.init(seed)

    def _free(self, ptr: int) -> None:
        getattr(lib(), "attn_%s_destroy" % self._family)(ptr)

    @contextlib.contextmanager
    def _params_access(self, fn: str, write: bool):
        with (self._writing(fn) if write else self._reading(fn)):
            yield self._params_ptr

    # ---- parameters -----------------------------------------------------------------------------

    @property
    def params(self) -> Params:
        """The model's tensors as a :class:`~attn.Params` mapping (PyTorch ``state_dict`` names).
        The mapping keeps the model alive."""
        return Params(self)

    def state_dict(self) -> Dict[str, Any]:
        """{name: numpy array} copies of every tensor (``params.to_dict()``)."""
        return self.params.to_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Sets the tensors from a PyTorch-style ``state_dict`` (see
        :meth:`Params.load_state_dict`)."""
        return self.params.load_state_dict(state_dict, strict=strict)

    # ---- copies ---------------------------------------------------------------------------------

    def _init_kwargs(self) -> Dict[str, Any]:  # pragma: no cover - overridden
        """The keyword arguments that build a model with the same options."""
        raise NotImplementedError

    def __reduce__(self):
        """Pickling and copy.copy/deepcopy make a new model (a handle of its own) with the same
        options and parameter values."""
        return (_rebuild, (type(self), self._init_kwargs(), self.state_dict()))

    # ---- the rest ---------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The same as :meth:`forward`."""
        return self.forward(*args, **kwargs)  # type: ignore[attr-defined]

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_fields(self) -> Dict[str, Any]:  # pragma: no cover - overridden
        return {}

    def __repr__(self) -> str:
        body = ", ".join("%s=%r" % kv for kv in self._repr_fields().items())
        return "attn.%s(%s)%s" % (type(self).__name__, body, " [closed]" if self.closed else "")


def _rebuild(cls: type, kwargs: Dict[str, Any], state: Dict[str, Any]) -> Model:
    model = cls(**kwargs)
    model.load_state_dict(state)
    return model
