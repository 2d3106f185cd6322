"""Shared machinery (internal): status checks, array conversion, handle lifetime and locking,
workspaces, option parsing."""

from __future__ import annotations

import contextlib
import operator
import os
import threading
from ctypes import byref, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from .errors import InvalidArgument, ShapeError, error_for

if TYPE_CHECKING:
    from .params import Cost

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def lib():
    return _lib.get()


def last_error() -> str:
    return lib().attn_last_error().decode("utf-8", "replace")


def check(status: int) -> None:
    """Raises the AttnError subclass of `status` with attn_last_error()'s text unless it is ATTN_OK.
    Must run on the thread that made the call (the message is thread-local)."""
    if status != 0:
        raise error_for(status, last_error())


# ---- numbers and options ------------------------------------------------------------------------

_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def as_int(fn: str, name: str, value: Any) -> int:
    """An integer option or size (bool, int, numpy integer), checked to fit int64_t so that ctypes
    never truncates it; the library then validates its range and names it."""
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidArgument("%s: %s must be an integer (got %r)" % (fn, name, value)) from None
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise InvalidArgument("%s: %s = %d does not fit int64_t" % (fn, name, v))
    return v


def as_flag(fn: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return int(bool(value))
    raise InvalidArgument("%s: %s must be True or False (got %r)" % (fn, name, value))


def check_dropout(fn: str, value: Any) -> None:
    """PyTorch's dropout option: accepted (a probability in [0, 1)) and ignored, since libattn runs
    inference as a module in eval() mode does."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = -1.0
    if not 0.0 <= p < 1.0:
        raise InvalidArgument("%s: dropout must be a probability in [0, 1) (got %r)" % (fn, value))


def as_choice(fn: str, name: str, value: Any, choices: dict) -> int:
    """A named enum value: a string (case-insensitive; '-' and ' ' read as '_')."""
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        if key in choices:
            return choices[key]
    raise InvalidArgument("%s: %s must be one of %s (got %r)"
                          % (fn, name, ", ".join(repr(k) for k in _primary(choices)), value))


def _primary(choices: dict) -> list:
    """The first name given for each value (the documented spelling)."""
    seen, out = set(), []
    for k, v in choices.items():
        if v not in seen:
            seen.add(v)
            out.append(k)
    return out


def choice_name(choices: dict, value: int) -> str:
    for k, v in choices.items():
        if v == value:
            return k
    return str(value)


def encode_path(fn: str, name: str, path: Optional[PathLike]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        b = os.fsencode(path)
    except TypeError:
        raise InvalidArgument("%s: %s must be a str, bytes or os.PathLike (got %r)" % (fn, name, path)) from None
    if b"\0" in b:
        raise InvalidArgument("%s: %s contains a NUL byte" % (fn, name))
    return b


def encode_name(fn: str, name: Optional[str], what: str = "prefix") -> Optional[bytes]:
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidArgument("%s: %s must be a str (got %r)" % (fn, what, name))
    if "\0" in name:
        raise InvalidArgument("%s: %s contains a NUL character" % (fn, what))
    return name.encode("utf-8")


# ---- arrays ---------------------------------------------------------------------------------

def to_numpy(a: Any) -> np.ndarray:
    """numpy view of an array-like; a torch.Tensor is detached and moved to the CPU first (without
    importing torch)."""
    if type(a).__module__.startswith("torch") and hasattr(a, "detach"):
        t = a.detach()
        if hasattr(t, "resolve_conj"):
            t = t.resolve_conj()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":
            t = t.float()  # numpy has no bfloat16
        return t.cpu().numpy()
    return np.asarray(a)


def f32(fn: str, name: str, a: Any) -> np.ndarray:
    """The array libattn reads: float32, C-contiguous, aligned, native byte order.

    An array that already is one is returned as it is (no copy; the C call reads its memory).
    Anything else of a real dtype (float64, float16, integers, bool, non-contiguous views,
    byte-swapped) is converted by exactly one copy; complex, object and string arrays are
    rejected rather than converted lossily."""
    arr = to_numpy(a)
    if arr.dtype.kind not in "fiub":
        raise InvalidArgument("%s: %s must hold real numbers (got dtype %s)" % (fn, name, arr.dtype))
    return np.require(arr, dtype=np.float32, requirements=("C", "A"))


def mask_u8(fn: str, name: str, m: Any) -> np.ndarray:
    """A uint8 mask, nonzero = ignore that position (PyTorch's boolean key_padding_mask=True).
    bool and uint8 C-contiguous arrays are passed without a copy; other integer arrays are
    converted once (nonzero -> 1). Float masks are rejected: PyTorch's float masks are additive
    (0 / -inf), and reading them as booleans could be silently wrong."""
    arr = to_numpy(m)
    if arr.dtype == np.bool_:
        return np.require(arr, requirements=("C", "A")).view(np.uint8)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint8:
            return np.require(arr, requirements=("C", "A"))
        return np.ascontiguousarray(arr != 0).view(np.uint8)
    raise InvalidArgument("%s: %s must be a bool or integer array, nonzero = ignore (got dtype %s; "
                          "for PyTorch's additive float masks pass mask == -inf)" % (fn, name, arr.dtype))


def int64s(fn: str, name: str, a: Any) -> np.ndarray:
    arr = to_numpy(a)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument("%s: %s must be integers (got dtype %s)" % (fn, name, arr.dtype))
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
        raise InvalidArgument("%s: %s holds a value beyond int64" % (fn, name))
    return np.require(arr, dtype=np.int64, requirements=("C", "A"))


def addr(a: Optional[np.ndarray]) -> Optional[int]:
    """The buffer address to pass for an array (None for NULL); the caller keeps `a` alive."""
    return None if a is None else a.ctypes.data


def expect_shape(fn: str, name: str, a: np.ndarray, shape: Tuple[Any, ...], desc: str) -> None:
    """Raises ShapeError unless a.shape matches `shape` (None entries match any extent)."""
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        raise ShapeError("%s: %s must have shape %s, got %s" % (fn, name, desc, tuple(a.shape)))


# ---- locking ------------------------------------------------------------------------------------

class RWLock:
    """Many readers (forward calls, reading parameters) or one writer (setting/loading parameters,
    closing). Writers wait for running readers; new readers wait while a writer waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Resource:
    """An owned C object (handle, workspace, opened parameter set): freed by close(), by leaving a
    `with` block, or when garbage-collected, exactly once. Calls hold `_lock` for reading (or
    writing) while they use the pointer, so close() from another thread waits for them instead of
    freeing memory under them."""

    _kind = "object"  # for messages
    _ptr: Optional[int] = None

    def __init__(self) -> None:
        self._ptr = None
        self._lock = RWLock()

    def _free(self, ptr: int) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _closed_error(self, fn: str) -> InvalidArgument:
        return InvalidArgument("%s: this %s is closed" % (fn, self._kind))

    @contextlib.contextmanager
    def _reading(self, fn: str) -> Iterator[int]:
        with self._lock.read():
            if not self._ptr:
                raise self._closed_error(fn)
            yield self._ptr

    @contextlib.contextmanager
    def _writing(self, fn: str) -> Iterator[int]:
        with self._lock.write():
            if not self._ptr:
                raise self._closed_error(fn)
            yield self._ptr

    @property
    def closed(self) -> bool:
        """True once close() has freed the C object."""
        return not self._ptr

    def close(self) -> None:
        """Frees the C object now (waiting for calls running on other threads). Further calls raise
        InvalidArgument; close() again does nothing. Arrays returned earlier stay valid."""
        with self._lock.write():
            ptr, self._ptr = self._ptr, None
            if ptr:
                self._free(ptr)

    def __del__(self) -> None:
        # No call can be running: each holds a reference to self. At interpreter exit the module
        # globals may be gone; the process is ending then anyway.
        ptr = getattr(self, "_ptr", None)
        if ptr:
            self._ptr = None
            try:
                self._free(ptr)
            except Exception:
                pass

    def __reduce__(self):
        # A copy sharing the pointer would free it twice; models override this with a real copy.
        raise TypeError("attn.%s objects cannot be copied or pickled" % type(self).__name__)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- workspaces -----------------------------------------------------------------------------

class Workspace(Resource):
    """Scratch memory reused across forward calls (``attn_workspace``).

    Forward calls use the calling thread's own workspace unless given ``workspace=``: the library
    keeps one per thread, grown to the largest call it served, until the thread ends or
    :func:`release_thread_workspace` is called. Make a Workspace
    yourself to control that memory, e.g. one per worker. A Workspace serves one call at a time:
    if two threads pass the same one, their calls take turns (a lock), they never share it.

    ``size`` is the bytes it holds; after one forward on a new workspace it equals that call's
    ``cost(...).workspace_bytes``.
    """

    _kind = "workspace"

    def __init__(self) -> None:
        super().__init__()
        self._mutex = threading.Lock()
        ptr = c_void_p()
        check(lib().attn_workspace_create(byref(ptr)))
        self._ptr = ptr.value

    def _free(self, ptr: int) -> None:
        lib().attn_workspace_destroy(ptr)

    @property
    def size(self) -> int:
        """Bytes the workspace currently holds (0 once closed). Waits while a call uses it."""
        with self._mutex, self._lock.read():
            return int(lib().attn_workspace_size(self._ptr)) if self._ptr else 0

    def __repr__(self) -> str:
        return "<attn.Workspace %s>" % ("closed" if self.closed else "of %d bytes" % self.size)


def thread_workspace_size() -> int:
    """Bytes held by the workspace the library keeps for the calling thread, which forward calls
    given no ``workspace=`` use (``attn_thread_workspace_size()``)."""
    return int(lib().attn_thread_workspace_size())


def release_thread_workspace() -> None:
    """Frees the calling thread's workspace now instead of when the thread ends (the next forward
    call on this thread grows a new one). Useful after one unusually large call."""
    lib().attn_thread_workspace_release()


@contextlib.contextmanager
def using_workspace(fn: str, workspace: Optional[Workspace]) -> Iterator[Optional[int]]:
    """The workspace pointer for one call, held exclusively for its duration; None (NULL: the
    calling thread's workspace, kept by the library) when no workspace is given."""
    if workspace is None:
        yield None
        return
    if not isinstance(workspace, Workspace):
        raise InvalidArgument("%s: workspace must be an attn.Workspace or None (got %r)" % (fn, workspace))
    with workspace._mutex, workspace._reading(fn) as ptr:
        yield ptr


def run(handle: Resource, fn: str, workspace: Optional[Workspace], call: Callable[[int, int], int]) -> None:
    """Runs call(handle_ptr, workspace_ptr) -> status under the handle's read lock and raises on
    failure. ctypes releases the GIL for the C call, so threads run forward calls in parallel."""
    with handle._reading(fn) as h, using_workspace(fn, workspace) as ws:
        status = call(h, ws)
        if status:
            check(status)


def cost_tuple(c) -> "Cost":
    from .params import Cost
    return Cost(int(c.params), int(c.flops), int(c.workspace_bytes))


def seq_ints(fn: str, name: str, values: Optional[Sequence[Any]]) -> Optional[list]:
    if values is None:
        return None
    try:
        return [as_int(fn, "%s[%d]" % (name, i), v) for i, v in enumerate(values)]
    except TypeError:
        raise InvalidArgument("%s: %s must be a sequence of integers (got %r)" % (fn, name, values)) from None
