"""Parameters (``attn_params``) as a Python mapping, opened checkpoint files, and the cost report."""

from __future__ import annotations

import contextlib
from ctypes import byref, c_void_p
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from . import _lib
from ._core import PathLike, Resource, check, encode_name, encode_path, f32, lib
from .errors import AttnError, InvalidArgument, NotFound, NumericalError, ShapeError


class Cost(NamedTuple):
    """What one forward call of a given shape costs (``attn_cost``).

    Attributes:
        params: number of float parameters of the object.
        flops: floating-point operations of the matrix products (a multiply-add counts 2).
        workspace_bytes: peak scratch memory beyond the inputs and outputs.
    """

    params: int
    flops: int
    workspace_bytes: int


class IncompatibleKeys(NamedTuple):
    """What :meth:`Params.load_state_dict` did not match (as PyTorch's ``load_state_dict``)."""

    missing_keys: List[str]
    unexpected_keys: List[str]


class Params(Mapping[str, np.ndarray]):
    """The named float32 tensors of a model, as a mapping from name to numpy array.

    Names and shapes are the PyTorch ``state_dict`` ones (``weight_ih_l0``, ``in_proj_weight``,
    …), in the library's fixed order. Reading a tensor returns a new numpy array (a copy:
    changing it changes nothing in the model); assigning copies an array in::

        w = model.params["weight_hh_l0"]        # float32 array of the tensor's shape
        model.params["weight_hh_l0"] = w * 0.5  # same shape required; converted to float32
        "bias_ih_l0" in model.params, len(model.params), list(model.params.keys())

    The mapping keeps its model alive: it stays usable after the model object itself is dropped.
    Setting, loading and initializing wait for forward calls running on other threads (and
    vice versa). An assignment with NaN or Inf raises :class:`~attn.NumericalError` and changes
    nothing.
    """

    _owner: Any

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    # The owner provides _access(fn, write) -> context manager yielding the attn_params pointer.
    def _access(self, fn: str, write: bool = False):
        return self._owner._params_access(fn, write)

    def _describe(self) -> str:
        return "of %s" % type(self._owner).__name__

    # ---- reading --------------------------------------------------------------------------------

    @staticmethod
    def _infos(p: int) -> List[Tuple[str, Tuple[int, ...], int]]:
        out = []
        info = _lib.TensorInfo()
        for i in range(int(lib().attn_params_count(p))):
            check(lib().attn_params_info(p, i, byref(info)))
            out.append((info.name.decode(), tuple(int(s) for s in info.shape[:info.ndim]), int(info.count)))
        return out

    @staticmethod
    def _find(p: int, fn: str, name: Any) -> Tuple[str, Tuple[int, ...]]:
        """(canonical name, shape); NotFound for an unknown name (aliases resolve to their tensor)."""
        if not isinstance(name, str) or "\0" in name:
            raise NotFound("%s: no tensor named %r" % (fn, name))
        info = _lib.TensorInfo()
        check(lib().attn_params_find(p, name.encode("utf-8"), byref(info)))
        return info.name.decode(), tuple(int(s) for s in info.shape[:info.ndim])

    def __len__(self) -> int:
        with self._access("attn.Params.__len__") as p:
            return int(lib().attn_params_count(p))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> List[str]:
        """The tensor names in the library's order (the same as ``list(params)``)."""
        with self._access("attn.Params.names") as p:
            return [name for name, _, _ in self._infos(p)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or "\0" in name:
            return False
        info = _lib.TensorInfo()
        with self._access("attn.Params.__contains__") as p:
            return lib().attn_params_find(p, name.encode("utf-8"), byref(info)) == 0

    def __getitem__(self, name: str) -> np.ndarray:
        fn = "attn.Params.__getitem__"
        with self._access(fn) as p:
            canonical, shape = self._find(p, fn, name)
            out = np.empty(shape, dtype=np.float32)
            check(lib().attn_params_get(p, canonical.encode("utf-8"), out.ctypes.data, out.size))
        return out

    @property
    def shapes(self) -> Dict[str, Tuple[int, ...]]:
        """{name: shape} of every tensor, in order."""
        with self._access("attn.Params.shapes") as p:
            return {name: shape for name, shape, _ in self._infos(p)}

    def shape(self, name: str) -> Tuple[int, ...]:
        """The shape of one tensor (NotFound for an unknown name)."""
        with self._access("attn.Params.shape") as p:
            return self._find(p, "attn.Params.shape", name)[1]

    def to_dict(self) -> Dict[str, np.ndarray]:
        """{name: array copy} of every tensor (a state_dict of numpy arrays)."""
        fn = "attn.Params.to_dict"
        out = {}
        with self._access(fn) as p:
            for name, shape, count in self._infos(p):
                a = np.empty(shape, dtype=np.float32)
                check(lib().attn_params_get(p, name.encode("utf-8"), a.ctypes.data, count))
                out[name] = a
        return out

    state_dict = to_dict

    # ---- writing --------------------------------------------------------------------------------

    @staticmethod
    def _convert(fn: str, name: Any, value: Any) -> np.ndarray:
        """The value as float32 (before any lock is taken: converting may run user code)."""
        a = f32(fn, "the value for %r" % (name,), value)
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a.ravel()))[0])
            raise NumericalError("%s: tensor '%s': element %d is %s"
                                 % (fn, name, bad, "NaN" if np.isnan(a.ravel()[bad]) else "infinite"))
        return a

    def _check(self, p: int, fn: str, name: Any, a: np.ndarray) -> Tuple[bytes, np.ndarray]:
        """(canonical name, array) once the name is known and the shape is the tensor's."""
        canonical, shape = self._find(p, fn, name)
        if a.shape != shape and not (a.ndim == 0 and shape == (1,)):
            raise ShapeError("%s: tensor '%s' has shape %s, the value has shape %s"
                             % (fn, name, shape, tuple(a.shape)))
        return canonical.encode("utf-8"), a

    def __setitem__(self, name: str, value: Any) -> None:
        fn = "attn.Params.__setitem__"
        a = self._convert(fn, name, value)
        with self._access(fn, write=True) as p:
            cname, a = self._check(p, fn, name, a)
            check(lib().attn_params_set(p, cname, a.ctypes.data, a.size))

    def __delitem__(self, name: str) -> None:
        raise InvalidArgument("attn.Params: tensors cannot be removed (a model has a fixed set)")

    def update(self, other: Any = (), **kwargs: Any) -> None:
        """Sets several tensors from a mapping or (name, array) pairs, all or nothing: every name,
        shape and value is checked before the first one is set. Values may be numpy arrays, torch
        tensors or anything numpy converts."""
        items = list(other.items() if hasattr(other, "items") else other) + list(kwargs.items())
        fn = "attn.Params.update"
        converted = [(name, self._convert(fn, name, value)) for name, value in items]
        with self._access(fn, write=True) as p:
            prepared = [self._check(p, fn, name, a) for name, a in converted]
            for cname, a in prepared:
                check(lib().attn_params_set(p, cname, a.ctypes.data, a.size))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Sets the tensors from a ``state_dict`` (torch tensors or arrays), as PyTorch's
        ``Module.load_state_dict``: with ``strict`` (default) a key that names no tensor, or a
        tensor without a key, raises :class:`~attn.NotFound` and nothing is changed; without it
        they are reported in the returned ``(missing_keys, unexpected_keys)``. Aliases the library
        accepts (the NTM's repeated ``mem_bias``, the Perceiver's tied layers) count as their
        tensor. All or nothing, as :meth:`update`."""
        fn = "attn.Params.load_state_dict"
        converted: List[Tuple[Any, Any]] = []
        for key, value in state_dict.items():
            try:
                converted.append((key, self._convert(fn, key, value)))
            except AttnError as e:  # raised only if the key names a tensor
                converted.append((key, e))
        with self._access(fn, write=True) as p:
            names = [name for name, _, _ in self._infos(p)]
            covered, unexpected, prepared = set(), [], []
            for key, a in converted:
                try:
                    canonical, _ = self._find(p, fn, key)
                except NotFound:
                    unexpected.append(key)
                    continue
                if isinstance(a, AttnError):
                    raise a
                covered.add(canonical)
                prepared.append(self._check(p, fn, key, a))
            missing = [n for n in names if n not in covered]
            if strict and (missing or unexpected):
                parts = []
                if missing:
                    parts.append("missing tensors: " + ", ".join(missing))
                if unexpected:
                    parts.append("unexpected keys: " + ", ".join(map(str, unexpected)))
                raise NotFound("%s: %s" % (fn, "; ".join(parts)))
            for cname, a in prepared:
                check(lib().attn_params_set(p, cname, a.ctypes.data, a.size))
        return IncompatibleKeys(missing, unexpected)

    def init(self, seed: int = 0) -> None:
        """Draws every tensor again from PyTorch's default law for it, deterministically from
        `seed` (0 <= seed < 2**64): the same seed gives the same values on every machine (they are
        not the numbers PyTorch would draw). A new model is initialized with seed 0."""
        fn = "attn.Params.init"
        try:
            s = int(seed.__index__())
        except (AttributeError, TypeError):
            raise InvalidArgument("%s: seed must be an integer (got %r)" % (fn, seed)) from None
        if not 0 <= s < 2 ** 64:
            raise InvalidArgument("%s: seed must be in 0 .. 2**64 - 1 (got %d)" % (fn, s))
        with self._access(fn, write=True) as p:
            check(lib().attn_params_init(p, s))

    def load(self, path: PathLike, prefix: Optional[str] = None, strict: bool = True, *,
             allow_missing: Optional[bool] = None, reject_unknown: Optional[bool] = None) -> None:
        """Loads a safetensors file (``attn_params_load``): tensor ``name`` is read from the file's
        ``prefix + name``; F32, F64, F16 and BF16 are converted to float32. All or nothing.

        ``strict=True`` (default, as PyTorch): every tensor must be in the file, and a file tensor
        under ``prefix`` that names none is an error (``ATTN_LOAD_REJECT_UNKNOWN``).
        ``strict=False``: absent tensors keep their values and unknown ones are ignored
        (``ATTN_LOAD_ALLOW_MISSING``), e.g. a Linformer loading a PyTorch attention checkpoint.
        ``allow_missing`` / ``reject_unknown`` set either flag explicitly.

        Raises AttnIOError, FormatError, NotFound, ShapeError, Unsupported (dtype) or
        NumericalError (NaN/Inf) with the library's message."""
        fn = "attn.Params.load"
        flags = 0
        if allow_missing if allow_missing is not None else not strict:
            flags |= _lib.ATTN_LOAD_ALLOW_MISSING
        if reject_unknown if reject_unknown is not None else strict:
            flags |= _lib.ATTN_LOAD_REJECT_UNKNOWN
        cpath, cprefix = encode_path(fn, "path", path), encode_name(fn, prefix)
        with self._access(fn, write=True) as p:
            check(lib().attn_params_load(p, cpath, cprefix, flags))

    def save(self, path: PathLike, prefix: Optional[str] = None) -> None:
        """Writes every tensor as F32 to a safetensors file under ``prefix + name`` (atomically:
        a temporary file renamed over `path`); Python's ``safetensors`` reads it."""
        fn = "attn.Params.save"
        cpath, cprefix = encode_path(fn, "path", path), encode_name(fn, prefix)
        with self._access(fn) as p:
            check(lib().attn_params_save(p, cpath, cprefix))

    # ---- the rest ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        try:
            shapes = self.shapes
        except InvalidArgument:
            return "<attn.Params %s, closed>" % self._describe()
        body = ", ".join("%s: %s" % (k, v) for k, v in shapes.items())
        return "<attn.Params %s, %d tensors: %s>" % (self._describe(), len(shapes), body)

    def __eq__(self, other: object) -> bool:  # Mapping's __eq__ would compare arrays ambiguously
        return self is other

    __hash__ = object.__hash__


class OpenedParams(Params, Resource):
    """The float tensors of a safetensors file as a parameter set of their own
    (``attn_params_open``); made by :func:`open_params`.

    A :class:`Params` mapping (read, set, ``save``, ``init`` to zeros) that no model owns: for the
    tensors of a checkpoint that no libattn model holds (embeddings, norms, heads). Freed by
    ``close()``, a ``with`` block or garbage collection; arrays read from it stay valid."""

    _kind = "parameter set"

    def __init__(self, path: PathLike, prefix: Optional[str] = None) -> None:
        Resource.__init__(self)
        fn = "attn.open_params"
        cpath, cprefix = encode_path(fn, "path", path), encode_name(fn, prefix)
        ptr = c_void_p()
        check(lib().attn_params_open(byref(ptr), cpath, cprefix))
        self._ptr = ptr.value
        self._owner = self
        self._path = path
        self._prefix = prefix

    def _free(self, ptr: int) -> None:
        lib().attn_params_close(ptr)

    @contextlib.contextmanager
    def _params_access(self, fn: str, write: bool):
        with (self._writing(fn) if write else self._reading(fn)) as p:
            yield p

    def _describe(self) -> str:
        return "opened from %r" % (self._path,) + ("" if not self._prefix else " under %r" % self._prefix)


def open_params(path: PathLike, prefix: Optional[str] = None) -> OpenedParams:
    """Opens a safetensors file's float tensors (those whose names start with `prefix`, named
    without it) as a standalone :class:`Params` mapping, closed when garbage-collected (or by
    ``close()`` / ``with``). 0-d tensors are listed with shape (1,); integer, boolean and empty
    tensors are passed over. Raises the errors of :meth:`Params.load`, Unsupported for a tensor of
    more than 4 dimensions and NotFound when no float tensor is under the prefix."""
    return OpenedParams(path, prefix)

