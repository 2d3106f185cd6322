"""Exceptions: one :class:`AttnError` subclass per libattn status code.

Every failure of a libattn call raises the subclass for its ``attn_status``; ``.status`` is the
code and ``.message`` the text of ``attn_last_error()`` read on the same thread right after the
call (it names the C function, the argument and the values). Checks this package makes in Python
before calling C (array shapes and dtypes, option names) raise the same classes, with messages that
start with the Python name (``attn.RNN.forward: …``).

Each class also derives from the built-in exception a Python caller would expect, so
``except ValueError`` catches a shape error and ``except KeyError`` an unknown tensor name.
"""

from __future__ import annotations

from typing import Dict, Type

ATTN_OK = 0
ATTN_E_INVALID_ARG = -1
ATTN_E_SHAPE = -2
ATTN_E_NOMEM = -3
ATTN_E_UNSUPPORTED = -4
ATTN_E_NOT_FOUND = -5
ATTN_E_IO = -6
ATTN_E_FORMAT = -7
ATTN_E_NUMERICAL = -8
ATTN_E_INTERNAL = -9

STATUS_NAMES: Dict[int, str] = {
    ATTN_E_INVALID_ARG: "ATTN_E_INVALID_ARG",
    ATTN_E_SHAPE: "ATTN_E_SHAPE",
    ATTN_E_NOMEM: "ATTN_E_NOMEM",
    ATTN_E_UNSUPPORTED: "ATTN_E_UNSUPPORTED",
    ATTN_E_NOT_FOUND: "ATTN_E_NOT_FOUND",
    ATTN_E_IO: "ATTN_E_IO",
    ATTN_E_FORMAT: "ATTN_E_FORMAT",
    ATTN_E_NUMERICAL: "ATTN_E_NUMERICAL",
    ATTN_E_INTERNAL: "ATTN_E_INTERNAL",
}


class AttnError(Exception):
    """A failed libattn call (or a check of this package before one).

    Attributes:
        status: the ``attn_status`` code (negative ``ATTN_E_*`` value).
        message: ``attn_last_error()``'s text for a failed C call, naming the function, the
            argument and the values; for a check made in Python, a message in the same style.
    """

    status: int = 0

    def __init__(self, message: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        self.message = message
        super().__init__(message)

    @property
    def status_name(self) -> str:
        """The code's name, e.g. ``"ATTN_E_SHAPE"``."""
        return STATUS_NAMES.get(self.status, "attn_status %d" % self.status)

    def __str__(self) -> str:  # also for the KeyError subclass, which would quote its message
        return "%s [%s]" % (self.message, self.status_name)

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.status))


def _rebuild(cls: Type["AttnError"], message: str, status: int) -> "AttnError":
    return cls(message, status)


class InvalidArgument(AttnError, ValueError):
    """``ATTN_E_INVALID_ARG``: a bad option value, a NULL or overlapping pointer, a closed handle."""

    status = ATTN_E_INVALID_ARG


class ShapeError(AttnError, ValueError):
    """``ATTN_E_SHAPE``: sizes that do not fit together, a wrong element count, sizes beyond the
    32-bit BLAS index range."""

    status = ATTN_E_SHAPE


class NoMemory(AttnError, MemoryError):
    """``ATTN_E_NOMEM``: an allocation inside libattn failed."""

    status = ATTN_E_NOMEM


class Unsupported(AttnError, NotImplementedError):
    """``ATTN_E_UNSUPPORTED``: a valid request that this build or handle does not implement
    (e.g. ``causal`` with LINFORMER, a PyTorch option libattn lacks)."""

    status = ATTN_E_UNSUPPORTED


class NotFound(AttnError, KeyError):
    """``ATTN_E_NOT_FOUND``: an unknown tensor name, a tensor missing from a file."""

    status = ATTN_E_NOT_FOUND


class AttnIOError(AttnError, OSError):
    """``ATTN_E_IO``: a file could not be opened, read or written."""

    status = ATTN_E_IO


class FormatError(AttnError, ValueError):
    """``ATTN_E_FORMAT``: a malformed safetensors file."""

    status = ATTN_E_FORMAT


class NumericalError(AttnError, ArithmeticError):
    """``ATTN_E_NUMERICAL``: NaN or Inf where it matters (parameters, analysis input), a failed
    decomposition."""

    status = ATTN_E_NUMERICAL


class InternalError(AttnError, RuntimeError):
    """``ATTN_E_INTERNAL``: a bug in libattn; please report it."""

    status = ATTN_E_INTERNAL


ERROR_CLASSES: Dict[int, Type[AttnError]] = {
    cls.status: cls
    for cls in (InvalidArgument, ShapeError, NoMemory, Unsupported, NotFound, AttnIOError,
                FormatError, NumericalError, InternalError)
}


def error_for(status: int, message: str) -> AttnError:
    """The exception for a status code (plain :class:`AttnError` for a code this package does not
    know, e.g. one added by a newer library)."""
    cls = ERROR_CLASSES.get(status)
    if cls is None:
        return AttnError(message, status)
    return cls(message, status)
