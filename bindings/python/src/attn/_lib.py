"""Finding and loading libattn, and the ctypes declarations of its C API (internal module).

Discovery order (the first library that loads and is recent enough wins):

1. ``ATTN_LIBRARY``: the full path of a libattn shared library. When it is set, nothing else is
   tried: an explicit choice is never silently replaced by another library.
2. The prefix this package is installed in: a package under ``<prefix>/lib*/python*/…-packages/attn``
   looks for ``<prefix>/lib*/libattn.so.1`` and ``<prefix>/lib*/<multiarch>/libattn.so.1``
   (the library and the package installed together, e.g. both into ``/usr/local`` or a venv).
3. The dynamic loader: ``libattn.so.1`` (``LD_LIBRARY_PATH``, rpaths, ``/etc/ld.so.cache``), then
   whatever ``ctypes.util.find_library("attn")`` names.
4. A build tree, when the package is imported from the source tree: ``<repo>/build/libattn.so.1``,
   then ``<repo>/build*/libattn.so.1``, newest first. Sanitizer builds are passed over unless
   their runtime is already loaded.

A candidate whose ``attn_version_number()`` is below :data:`REQUIRED_VERSION` (or of another major
version) is passed over, and the reason is listed in the error if nothing suitable is found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from ctypes import POINTER, c_char_p, c_double, c_int32, c_int64, c_uint32, c_uint64, c_void_p
from typing import List, Optional, Tuple

SONAME = "libattn.so.1"
#: The oldest libattn this package works with: 1.3.0 (attn_params_open and the analysis functions).
REQUIRED_VERSION = 10300
_MAJOR = 1

ATTN_RNN_MAX_FACTORS = 8
ATTN_RNN_MAX_FACTORS_ALL = 32
ATTN_LOAD_ALLOW_MISSING = 0x1
ATTN_LOAD_REJECT_UNKNOWN = 0x2


class LibraryNotFound(ImportError):
    """No usable libattn was found (the message lists every place tried and why it failed)."""


# ---- structs (field for field as include/attn/*.h; ctypes aligns as the C compiler does) --------


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("ndim", c_int64), ("shape", c_int64 * 4), ("count", c_int64)]


class CostStruct(ctypes.Structure):
    _fields_ = [("params", c_int64), ("flops", c_int64), ("workspace_bytes", c_int64)]


class RnnOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("cell", c_int32),
        ("recurrence", c_int32),
        ("bidirectional", c_int32),
        ("bias", c_int32),
        ("input_size", c_int64),
        ("hidden_size", c_int64),
        ("num_layers", c_int64),
        ("rank", c_int64),
        ("num_factors", c_int64),
        ("factor_sizes", c_int64 * ATTN_RNN_MAX_FACTORS),
        ("flags", c_uint32),
        ("more_factor_sizes", c_int64 * (ATTN_RNN_MAX_FACTORS_ALL - ATTN_RNN_MAX_FACTORS)),  # 1.2
    ]


class MhaOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("kind", c_int32),
        ("bias", c_int32),
        ("causal", c_int32),
        ("memory_mode", c_int32),
        ("embed_dim", c_int64),
        ("num_heads", c_int64),
        ("kdim", c_int64),
        ("vdim", c_int64),
        ("max_seq_len", c_int64),
        ("proj_len", c_int64),
        ("sharing", c_int32),
        ("pinv", c_int32),
        ("num_landmarks", c_int64),
        ("pinv_iterations", c_int64),
        ("conv_kernel", c_int64),
        ("flags", c_uint32),
    ]


class MemrnnOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("input_size", c_int64),
        ("output_size", c_int64),
        ("controller_size", c_int64),
        ("controller_layers", c_int64),
        ("num_heads", c_int64),
        ("memory_slots", c_int64),
        ("memory_width", c_int64),
        ("addressing", c_int32),
        ("top_k", c_int64),
        ("flags", c_uint32),
    ]


class PerceiverOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("input_channels", c_int64),
        ("input_axis", c_int64),
        ("num_freq_bands", c_int64),
        ("max_freq", c_double),
        ("fourier_encode", c_int32),
        ("depth", c_int64),
        ("num_latents", c_int64),
        ("latent_dim", c_int64),
        ("cross_heads", c_int64),
        ("cross_dim_head", c_int64),
        ("latent_heads", c_int64),
        ("latent_dim_head", c_int64),
        ("self_per_cross_attn", c_int64),
        ("weight_tie_layers", c_int32),
        ("num_classes", c_int64),
        ("flags", c_uint32),
    ]


class RankReportStruct(ctypes.Structure):
    _fields_ = [
        ("sigma_max", c_double),
        ("frobenius", c_double),
        ("stable_rank", c_double),
        ("effective_rank", c_double),
        ("numerical_rank", c_int64),
        ("rank_90", c_int64),
        ("rank_99", c_int64),
    ]


# Room for the fields a newer library may have appended to an options struct: *_options_init and
# *_get_options write the library's whole struct, which may be larger than the one declared here.
OPTIONS_SLACK = 1024


def padded(struct_type):
    """A zeroed buffer holding `struct_type` followed by OPTIONS_SLACK spare bytes, and the struct
    view onto its start."""
    buf = (ctypes.c_uint8 * (ctypes.sizeof(struct_type) + OPTIONS_SLACK))()
    return buf, struct_type.from_buffer(buf)


# ---- declarations ---------------------------------------------------------------------------------
# Tensor pointers are declared c_void_p and passed as integer addresses of numpy buffers.

_P = c_void_p
_I64 = c_int64
_S = c_int32
_SIGNATURES = {
    # common.h
    "attn_version_number": (c_uint32, []),
    "attn_version_string": (c_char_p, []),
    "attn_build_info": (c_char_p, []),
    "attn_status_str": (c_char_p, [_S]),
    "attn_last_error": (c_char_p, []),
    "attn_workspace_create": (_S, [POINTER(c_void_p)]),
    "attn_workspace_destroy": (None, [_P]),
    "attn_workspace_size": (_I64, [_P]),
    "attn_thread_workspace_release": (None, []),
    "attn_thread_workspace_size": (_I64, []),
    "attn_params_count": (_I64, [_P]),
    "attn_params_info": (_S, [_P, _I64, POINTER(TensorInfo)]),
    "attn_params_find": (_S, [_P, c_char_p, POINTER(TensorInfo)]),
    "attn_params_set": (_S, [_P, c_char_p, _P, _I64]),
    "attn_params_get": (_S, [_P, c_char_p, _P, _I64]),
    "attn_params_init": (_S, [_P, c_uint64]),
    "attn_params_load": (_S, [_P, c_char_p, c_char_p, c_uint32]),
    "attn_params_save": (_S, [_P, c_char_p, c_char_p]),
    "attn_params_open": (_S, [POINTER(c_void_p), c_char_p, c_char_p]),
    "attn_params_close": (None, [_P]),
    # rnn.h
    "attn_rnn_options_init": (_S, [_P]),
    "attn_rnn_create": (_S, [POINTER(c_void_p), _P]),
    "attn_rnn_destroy": (None, [_P]),
    "attn_rnn_params": (c_void_p, [_P]),
    "attn_rnn_get_options": (_S, [_P, _P]),
    "attn_rnn_forward": (_S, [_P, _P, _I64, _I64, _P, _P, _P, _P, _P, _P]),
    "attn_rnn_forward_lengths": (_S, [_P, _P, _I64, _I64, _P, _P, _P, _P, _P, _P, _P]),
    "attn_rnn_recurrent_matrix": (_S, [_P, _I64, _I64, _P]),
    "attn_rnn_cost": (_S, [_P, _I64, _I64, POINTER(CostStruct)]),
    # memory.h
    "attn_memrnn_options_init": (_S, [_P]),
    "attn_memrnn_create": (_S, [POINTER(c_void_p), _P]),
    "attn_memrnn_destroy": (None, [_P]),
    "attn_memrnn_params": (c_void_p, [_P]),
    "attn_memrnn_get_options": (_S, [_P, _P]),
    "attn_memrnn_forward": (_S, [_P, _P, _I64, _I64, _P, _P, _P, _P]),
    "attn_memrnn_cost": (_S, [_P, _I64, _I64, POINTER(CostStruct)]),
    # attention.h
    "attn_mha_options_init": (_S, [_P]),
    "attn_mha_create": (_S, [POINTER(c_void_p), _P]),
    "attn_mha_destroy": (None, [_P]),
    "attn_mha_params": (c_void_p, [_P]),
    "attn_mha_get_options": (_S, [_P, _P]),
    "attn_mha_forward": (_S, [_P, _P, _I64, _I64, _I64, _P, _P, _P, _P, _P]),
    "attn_mha_attention_matrix": (_S, [_P, _P, _I64, _I64, _I64, _P, _P, _P, _P, _P]),
    "attn_mha_cost": (_S, [_P, _I64, _I64, _I64, POINTER(CostStruct)]),
    # perceiver.h
    "attn_perceiver_options_init": (_S, [_P]),
    "attn_perceiver_create": (_S, [POINTER(c_void_p), _P]),
    "attn_perceiver_destroy": (None, [_P]),
    "attn_perceiver_params": (c_void_p, [_P]),
    "attn_perceiver_get_options": (_S, [_P, _P]),
    "attn_perceiver_forward": (_S, [_P, _P, _I64, _P, _P, _P, _P]),
    "attn_perceiver_cost": (_S, [_P, _I64, _P, POINTER(CostStruct)]),
    # analysis.h
    "attn_singular_values": (_S, [_P, _I64, _I64, _P]),
    "attn_rank_analyze": (_S, [_P, _I64, _I64, POINTER(RankReportStruct)]),
    "attn_lowrank_error": (_S, [_P, _I64, _I64, _I64, POINTER(c_double)]),
    "attn_lowrank_factors": (_S, [_P, _I64, _I64, _I64, _P, _P]),
}


# ---- discovery --------------------------------------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _prefix_candidates(package_dir: str = _PACKAGE_DIR) -> List[str]:
    """<prefix>/lib*/libattn.so.1 (and lib*/<multiarch>/) for the prefix the package is installed
    under: the directory above the lib*/ that holds python*/ that holds …/attn."""
    parts = package_dir.split(os.sep)
    out: List[str] = []
    for i in range(len(parts) - 1, 1, -1):
        if parts[i].startswith("python") and parts[i - 1].startswith("lib"):
            prefix = os.sep.join(parts[: i - 1]) or os.sep
            for pattern in ("lib*/" + SONAME, "lib*/*-linux-*/" + SONAME):
                out.extend(sorted(glob.glob(os.path.join(glob.escape(prefix), pattern))))
            break
    return out


def _build_tree_candidates(package_dir: str = _PACKAGE_DIR) -> List[str]:
    """<repo>/build*/libattn.so.1, newest first, when the package is imported from the source tree
    (<repo>/bindings/python/src/attn)."""
    repo = os.path.normpath(os.path.join(package_dir, "..", "..", "..", ".."))
    if not (os.path.isfile(os.path.join(repo, "include", "attn", "attn.h"))
            and os.path.isfile(os.path.join(repo, "CMakeLists.txt"))):
        return []
    found = glob.glob(os.path.join(glob.escape(repo), "build*", SONAME))
    # <repo>/build first (the usual build directory), then the others, newest first.
    return sorted(found, key=lambda p: (os.path.basename(os.path.dirname(p)) != "build", -os.path.getmtime(p)))


def candidates() -> List[Tuple[str, str]]:
    """The (origin, path or soname) pairs tried, in order (see the module docstring)."""
    explicit = os.environ.get("ATTN_LIBRARY")
    if explicit:
        return [("ATTN_LIBRARY", explicit)]
    out = [("installed prefix", p) for p in _prefix_candidates()]
    out.append(("dynamic loader", SONAME))
    found = ctypes.util.find_library("attn")
    if found and found != SONAME:
        out.append(("ctypes.util.find_library", found))
    out.extend(("build tree", p) for p in _build_tree_candidates())
    return out


def version_string(number: int) -> str:
    return "%d.%d.%d" % (number // 10000, number // 100 % 100, number % 100)


def _missing_sanitizer_runtime(path: str) -> Optional[str]:
    """The AddressSanitizer/ThreadSanitizer runtime a sanitizer build of the library needs first in
    the process, when it is not loaded (dlopen would then end the process, not fail)."""
    if os.sep not in path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    for runtime in (b"libasan.so", b"libtsan.so"):
        if runtime in data:
            try:
                with open("/proc/self/maps", "rb") as f:
                    if runtime in f.read():
                        continue
            except OSError:
                pass
            return runtime.decode()
    return None


def _try_load(path: str) -> Tuple[Optional[ctypes.CDLL], str]:
    runtime = _missing_sanitizer_runtime(path)
    if runtime:
        return None, ("is a sanitizer build: it needs %s preloaded (LD_PRELOAD=$(gcc -print-file-name=%s))"
                      % (runtime, runtime))
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        return None, "cannot be loaded (%s)" % e
    try:
        fn = lib.attn_version_number
    except AttributeError:
        return None, "is not libattn (no attn_version_number)"
    fn.restype = c_uint32
    fn.argtypes = []
    number = int(fn())
    if number // 10000 != _MAJOR or number < REQUIRED_VERSION:
        return None, "is libattn %s; this package needs %s or a later 1.x" % (
            version_string(number), version_string(REQUIRED_VERSION))
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if missing:
        return None, "lacks %s" % ", ".join(missing)
    return lib, ""


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


class _Loaded:
    lib: Optional[ctypes.CDLL] = None
    path: str = ""
    origin: str = ""


_loaded = _Loaded()
_load_lock = threading.Lock()


def get() -> ctypes.CDLL:
    """The loaded library, loading it on first use (thread-safe)."""
    lib = _loaded.lib
    if lib is not None:
        return lib
    with _load_lock:
        if _loaded.lib is None:
            tried = []
            for origin, path in candidates():
                lib, why = _try_load(path)
                if lib is not None:
                    _declare(lib)
                    _loaded.path = _resolve_path(lib, path)
                    _loaded.origin = origin
                    _loaded.lib = lib
                    break
                tried.append("  %s (%s) %s" % (path, origin, why))
            else:
                hint = ("" if os.environ.get("ATTN_LIBRARY") else
                        "\nInstall libattn (cmake --install) or set ATTN_LIBRARY to the full path of "
                        "libattn.so.1.")
                raise LibraryNotFound("no usable libattn was found; tried:\n" + "\n".join(tried) + hint)
        return _loaded.lib


def _resolve_path(lib: ctypes.CDLL, name: str) -> str:
    """The file behind `name`: the path itself, or for a bare soname the libattn.so* file the
    dynamic loader mapped (read from /proc/self/maps)."""
    if os.sep in name:
        return os.path.abspath(name)
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and os.path.basename(fields[5].strip()).startswith("libattn.so"):
                    return fields[5].strip()
    except OSError:
        pass
    return name
