"""libattn for Python: recurrent and attention model families of the C library libattn, through
ctypes (no compiled extension), with numpy arrays in and out.

Models (PyTorch's option names and ``state_dict`` names where PyTorch has the module):

- :class:`RNN`: Elman/LSTM/GRU, dense, low-rank or Kronecker recurrence, bidirectional, stacked,
  variable lengths.
- :class:`MemoryRNN`: a Neural Turing Machine (pytorch-ntm's EncapsulatedNTM).
- :class:`MultiheadAttention`: full, Linformer and Nyström multi-head attention.
- :class:`Perceiver`: lucidrains' Perceiver.

Each has ``forward`` (also ``model(...)``), ``cost(...)`` -> :class:`Cost`, and ``params``, a
mapping of numpy arrays with ``load``/``save`` (safetensors) and ``init(seed)``.
:mod:`attn.analysis` has the rank analysis; :func:`from_torch` and :func:`from_state_dict` build
models from PyTorch; :func:`open_params` reads a checkpoint's tensors.

Arrays: tensors are float32, row-major and **batch-first** (``[batch, seq, features]``).
A C-contiguous float32 input is passed to C as it is (no copy); any other real array (float64,
a transposed view, a torch CPU tensor, a list) is converted once to a float32 C-contiguous copy.
Complex, object and float mask arrays are refused. Outputs are new numpy arrays owned by Python;
they never refer to the model.

Threads: ``forward`` may run on one model from any number of threads at once (the C call runs
without the GIL); each thread uses its own workspace (see :class:`Workspace`). Setting or
loading parameters waits for running forward calls.

Errors: :class:`AttnError` subclasses, one per C status (``.status``, ``.message``).

The shared library is found through ``ATTN_LIBRARY``, the install prefix, the dynamic loader or
the build tree, in that order (see README.md); :func:`library_path` tells which was loaded.
"""

from __future__ import annotations

from . import analysis
from ._core import Workspace, release_thread_workspace, thread_workspace_size
from ._lib import REQUIRED_VERSION, LibraryNotFound
from .attention import MultiheadAttention
from .errors import (AttnError, AttnIOError, FormatError, InternalError, InvalidArgument, NoMemory, NotFound,
                     NumericalError, ShapeError, Unsupported)
from .interop import from_state_dict, from_torch
from .memory import MemoryRNN, MemoryRNNOutput
from .params import Cost, IncompatibleKeys, OpenedParams, Params, open_params
from .perceiver import Perceiver
from .rnn import RNN

__version__ = "1.3.0"

__all__ = [
    "RNN", "MemoryRNN", "MemoryRNNOutput", "MultiheadAttention", "Perceiver",
    "Params", "OpenedParams", "open_params", "Cost", "IncompatibleKeys", "Workspace", "thread_workspace_size",
    "release_thread_workspace", "analysis", "from_torch", "from_state_dict",
    "AttnError", "InvalidArgument", "ShapeError", "NoMemory", "Unsupported", "NotFound", "AttnIOError",
    "FormatError", "NumericalError", "InternalError", "LibraryNotFound",
    "library_path", "library_version", "build_info", "REQUIRED_VERSION",
]


def library_path() -> str:
    """The path of the libattn shared library in use (loading it if needed)."""
    from . import _lib
    _lib.get()
    return _lib._loaded.path


def library_version() -> str:
    """The loaded library's version, ``"MAJOR.MINOR.PATCH"`` (``attn_version_string()``)."""
    from . import _lib
    return _lib.get().attn_version_string().decode()


def build_info() -> str:
    """The loaded library's build description: version, BLAS, threads, compiler."""
    from . import _lib
    return _lib.get().attn_build_info().decode()


# The public classes present themselves as attn.X (repr, help, tracebacks), not attn.rnn.X.
for _cls in (RNN, MemoryRNN, MemoryRNNOutput, MultiheadAttention, Perceiver, Params, OpenedParams, Cost,
             IncompatibleKeys, Workspace, AttnError, InvalidArgument, ShapeError, NoMemory, Unsupported,
             NotFound, AttnIOError, FormatError, NumericalError, InternalError, LibraryNotFound):
    _cls.__module__ = "attn"
del _cls
