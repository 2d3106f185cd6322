"""ctypes view of libattn's public C API, shared by the Python FFI tests of every family.

The library is loaded from the path in the environment variable ATTN_LIB (ctest sets it to the
built target). Declarations mirror the public headers include/attn/*.h exactly; a family's
test file may add its own functions with declare(). Also here: a safetensors writer and reader
written by hand (the Python `safetensors` package is not installed on the build machines) and
run_tests(), which ends every test file with the line "N passed, N failed" that CI reads.
"""

import ctypes
import json
import os
import struct
import sys
import unittest
from ctypes import POINTER, byref, c_char_p, c_float, c_int32, c_int64, c_uint8, c_uint32, c_uint64, c_void_p

import numpy as np

# ---- status codes and constants (common.h, rnn.h, attention.h) --------------------------------

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

ATTN_LOAD_ALLOW_MISSING = 0x1
ATTN_LOAD_REJECT_UNKNOWN = 0x2

ATTN_CELL_RNN_TANH = 0
ATTN_CELL_RNN_RELU = 1
ATTN_CELL_LSTM = 2
ATTN_CELL_GRU = 3

ATTN_RECURRENCE_DENSE = 0
ATTN_RECURRENCE_LOW_RANK = 1
ATTN_RECURRENCE_KRONECKER = 2

ATTN_RNN_MAX_FACTORS = 8
ATTN_RNN_MAX_FACTORS_ALL = 32

ATTN_MHA_FULL = 0
ATTN_MHA_LINFORMER = 1
ATTN_MHA_NYSTROM = 2

ATTN_MEMORY_AUTO = 0
ATTN_MEMORY_MATERIALIZE = 1
ATTN_MEMORY_STREAMING = 2

ATTN_LINFORMER_HEADWISE = 0
ATTN_LINFORMER_KV = 1
ATTN_LINFORMER_NONE = 2

ATTN_PINV_NEWTON = 0
ATTN_PINV_SVD = 1

# ---- structs ----------------------------------------------------------------------------------


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", c_char_p),
        ("ndim", c_int64),
        ("shape", c_int64 * 4),
        ("count", c_int64),
    ]


class Cost(ctypes.Structure):
    _fields_ = [
        ("params", c_int64),
        ("flops", c_int64),
        ("workspace_bytes", c_int64),
    ]


class RnnOptions(ctypes.Structure):
    """attn_rnn_options, field for field; ctypes applies the same natural alignment as the C
    compiler, so the layout (and sizeof) match the header's."""

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
        ("more_factor_sizes", c_int64 * (ATTN_RNN_MAX_FACTORS_ALL - ATTN_RNN_MAX_FACTORS)),  # libattn 1.2
    ]


class MhaOptions(ctypes.Structure):
    """attn_mha_options, field for field (natural alignment, as RnnOptions)."""

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


# ---- loading and declarations -----------------------------------------------------------------

_FLOAT_P = POINTER(c_float)
_UINT8_P = POINTER(c_uint8)


def _load_library():
    path = os.environ.get("ATTN_LIB")
    if not path:
        raise RuntimeError("ATTN_LIB is not set: it must name the libattn shared library to test "
                           "(ctest sets it; by hand: ATTN_LIB=build/libattn.so python3 test_x.py)")
    return ctypes.CDLL(path)


lib = _load_library()

# True when the library runs under AddressSanitizer (tests/python.cmake preloads its runtime for an
# ATTN_SANITIZE build): tests may shrink work whose size adds run time but no coverage there.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


MISSING = []  # declared functions the library does not export


def declare(table):
    """Declares functions of `lib` from {name: (restype, [argtypes])}. A symbol the library does not
    export is listed in MISSING and replaced by a stub that raises when called, so one missing
    function fails the tests that use it (and a test asserting MISSING == []) rather than all."""
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            MISSING.append(name)
            setattr(lib, name, _missing(name))
            continue
        fn.restype = restype
        fn.argtypes = argtypes


def _missing(name):
    def stub(*args):
        raise AttributeError("%s does not export %s" % (os.environ["ATTN_LIB"], name))
    return stub


declare({
    # common.h
    "attn_version_number": (c_uint32, []),
    "attn_version_string": (c_char_p, []),
    "attn_build_info": (c_char_p, []),
    "attn_status_str": (c_char_p, [c_int32]),
    "attn_last_error": (c_char_p, []),
    "attn_workspace_create": (c_int32, [POINTER(c_void_p)]),
    "attn_workspace_destroy": (None, [c_void_p]),
    "attn_workspace_size": (c_int64, [c_void_p]),
    "attn_params_count": (c_int64, [c_void_p]),
    "attn_params_info": (c_int32, [c_void_p, c_int64, POINTER(TensorInfo)]),
    "attn_params_find": (c_int32, [c_void_p, c_char_p, POINTER(TensorInfo)]),
    "attn_params_set": (c_int32, [c_void_p, c_char_p, _FLOAT_P, c_int64]),
    "attn_params_get": (c_int32, [c_void_p, c_char_p, _FLOAT_P, c_int64]),
    "attn_params_init": (c_int32, [c_void_p, c_uint64]),
    "attn_params_load": (c_int32, [c_void_p, c_char_p, c_char_p, c_uint32]),
    "attn_params_save": (c_int32, [c_void_p, c_char_p, c_char_p]),
    # rnn.h
    "attn_rnn_options_init": (c_int32, [POINTER(RnnOptions)]),
    "attn_rnn_create": (c_int32, [POINTER(c_void_p), POINTER(RnnOptions)]),
    "attn_rnn_destroy": (None, [c_void_p]),
    "attn_rnn_params": (c_void_p, [c_void_p]),
    "attn_rnn_get_options": (c_int32, [c_void_p, POINTER(RnnOptions)]),
    "attn_rnn_forward": (c_int32, [c_void_p, c_void_p, c_int64, c_int64, _FLOAT_P, _FLOAT_P, _FLOAT_P,
                                   _FLOAT_P, _FLOAT_P, _FLOAT_P]),
    "attn_rnn_forward_lengths": (c_int32, [c_void_p, c_void_p, c_int64, c_int64, POINTER(c_int64), _FLOAT_P,
                                           _FLOAT_P, _FLOAT_P, _FLOAT_P, _FLOAT_P, _FLOAT_P]),
    "attn_rnn_recurrent_matrix": (c_int32, [c_void_p, c_int64, c_int64, _FLOAT_P]),
    "attn_rnn_cost": (c_int32, [c_void_p, c_int64, c_int64, POINTER(Cost)]),
    # attention.h
    "attn_mha_options_init": (c_int32, [POINTER(MhaOptions)]),
    "attn_mha_create": (c_int32, [POINTER(c_void_p), POINTER(MhaOptions)]),
    "attn_mha_destroy": (None, [c_void_p]),
    "attn_mha_params": (c_void_p, [c_void_p]),
    "attn_mha_get_options": (c_int32, [c_void_p, POINTER(MhaOptions)]),
    "attn_mha_forward": (c_int32, [c_void_p, c_void_p, c_int64, c_int64, c_int64, _FLOAT_P, _FLOAT_P, _FLOAT_P,
                                   _UINT8_P, _FLOAT_P]),
    "attn_mha_attention_matrix": (c_int32, [c_void_p, c_void_p, c_int64, c_int64, c_int64, _FLOAT_P, _FLOAT_P,
                                            _FLOAT_P, _UINT8_P, _FLOAT_P]),
    "attn_mha_cost": (c_int32, [c_void_p, c_int64, c_int64, c_int64, POINTER(Cost)]),
})

# ---- errors -----------------------------------------------------------------------------------


class AttnError(Exception):
    """A failed libattn call: .status is the code, .message attn_last_error()'s text."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        super().__init__("%s (%s)" % (message, status_str(status)))


def status_str(status):
    return lib.attn_status_str(status).decode()


def last_error():
    return lib.attn_last_error().decode()


def check(status):
    """Raises AttnError carrying attn_last_error() unless status is ATTN_OK."""
    if status != ATTN_OK:
        raise AttnError(status, last_error())
    return status


# ---- array helpers ----------------------------------------------------------------------------


def f32(a):
    """A C-contiguous float32 copy (or the array itself when it already is one)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def fptr(a):
    """float* for a C-contiguous float32 array, NULL for None. The caller keeps `a` alive."""
    if a is None:
        return None
    assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"], "pass arrays through f32() first"
    return a.ctypes.data_as(_FLOAT_P)


def u8(a):
    """A C-contiguous uint8 copy of a mask (bool or integer; nonzero = set), None for None."""
    if a is None:
        return None
    return np.ascontiguousarray(np.asarray(a) != 0, dtype=np.uint8)


def u8ptr(a):
    """uint8_t* for a C-contiguous uint8 array, NULL for None. The caller keeps `a` alive."""
    if a is None:
        return None
    assert a.dtype == np.uint8 and a.flags["C_CONTIGUOUS"], "pass masks through u8() first"
    return a.ctypes.data_as(_UINT8_P)


def _cstr(s):
    return None if s is None else os.fsencode(s)


# ---- handles ----------------------------------------------------------------------------------


class _Handle:
    """An owned C handle: freed by close(), by `with`, or when garbage-collected."""

    _destroy = None  # name of the attn_*_destroy function

    def close(self):
        if getattr(self, "ptr", None):
            getattr(lib, self._destroy)(self.ptr)
            self.ptr = c_void_p()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Workspace(_Handle):
    _destroy = "attn_workspace_destroy"
    def __init__(self):
        self.ptr = c_void_p()
        check(lib.attn_workspace_create(byref(self.ptr)))

    def size(self):
        return lib.attn_workspace_size(self.ptr)



class Params:
    """attn_params of a handle; `owner` keeps the handle alive as long as this view is used."""

    def __init__(self, ptr, owner=None):
        if not ptr:
            raise ValueError("NULL attn_params")
        self.ptr = ptr
        self.owner = owner

    def count(self):
        return lib.attn_params_count(self.ptr)

    def infos(self):
        """[(name, shape tuple, count)] in the library's order."""
        out = []
        for i in range(self.count()):
            info = TensorInfo()
            check(lib.attn_params_info(self.ptr, i, byref(info)))
            out.append((info.name.decode(), tuple(info.shape[:info.ndim]), info.count))
        return out

    def names(self):
        return [name for name, _, _ in self.infos()]

    def shapes(self):
        return {name: shape for name, shape, _ in self.infos()}

    def find(self, name):
        info = TensorInfo()
        check(lib.attn_params_find(self.ptr, name.encode(), byref(info)))
        return tuple(info.shape[:info.ndim])

    def set(self, name, array, count=None):
        """Sets tensor `name` from any array-like (converted to float32). `count` overrides the
        element count passed to C (for error tests)."""
        a = f32(array)
        check(lib.attn_params_set(self.ptr, name.encode(), fptr(a), a.size if count is None else count))

    def get(self, name):
        shape = self.find(name)
        out = np.empty(shape, dtype=np.float32)
        check(lib.attn_params_get(self.ptr, name.encode(), fptr(out), out.size))
        return out

    def set_all(self, tensors):
        """Sets every entry of a {name: array} mapping (e.g. a state_dict turned into numpy)."""
        for name, a in tensors.items():
            self.set(name, a)

    def state_dict(self):
        return {name: self.get(name) for name in self.names()}

    def init(self, seed):
        check(lib.attn_params_init(self.ptr, seed))

    def load(self, path, prefix=None, flags=0):
        check(lib.attn_params_load(self.ptr, _cstr(path), _cstr(prefix), flags))

    def save(self, path, prefix=None):
        check(lib.attn_params_save(self.ptr, _cstr(path), _cstr(prefix)))


class Rnn(_Handle):
    """An attn_rnn handle. Keyword arguments are attn_rnn_options fields; booleans are accepted."""

    _destroy = "attn_rnn_destroy"

    def __init__(self, **options):
        o = RnnOptions()
        check(lib.attn_rnn_options_init(byref(o)))
        for key, value in options.items():
            if key == "factor_sizes":  # all F sizes; from the ninth on they go to more_factor_sizes
                for i, p in enumerate(value):
                    if i < ATTN_RNN_MAX_FACTORS:
                        o.factor_sizes[i] = p
                    else:
                        o.more_factor_sizes[i - ATTN_RNN_MAX_FACTORS] = p
            elif not hasattr(o, key):
                raise TypeError("attn_rnn_options has no field %r" % key)
            else:
                setattr(o, key, int(value))
        self.options = o
        self.ptr = c_void_p()
        check(lib.attn_rnn_create(byref(self.ptr), byref(o)))
        self.params = Params(lib.attn_rnn_params(self.ptr), owner=self)

    @property
    def directions(self):
        return 2 if self.options.bidirectional else 1

    def state_shape(self, batch):
        o = self.options
        return (o.num_layers * self.directions, batch, o.hidden_size)

    def forward(self, x, h0=None, c0=None, want_h=True, want_c=None, ws=None, lengths=None):
        """x [B,T,I] -> (y [B,T,D*H], h_n or None, c_n or None). want_c defaults to "LSTM".
        With `lengths` ([B] integers) it calls attn_rnn_forward_lengths instead."""
        x = f32(x)
        batch, seq_len = x.shape[0], x.shape[1]
        if want_c is None:
            want_c = self.options.cell == ATTN_CELL_LSTM
        h0 = None if h0 is None else f32(h0)
        c0 = None if c0 is None else f32(c0)
        y = np.empty((batch, seq_len, self.directions * self.options.hidden_size), dtype=np.float32)
        h_n = np.empty(self.state_shape(batch), dtype=np.float32) if want_h else None
        c_n = np.empty(self.state_shape(batch), dtype=np.float32) if want_c else None
        ws_ptr = None if ws is None else ws.ptr
        tensors = (fptr(x), fptr(h0), fptr(c0), fptr(y), fptr(h_n), fptr(c_n))
        if lengths is None:
            check(lib.attn_rnn_forward(self.ptr, ws_ptr, batch, seq_len, *tensors))
        else:
            lengths = np.ascontiguousarray(lengths, dtype=np.int64)
            check(lib.attn_rnn_forward_lengths(self.ptr, ws_ptr, batch, seq_len,
                                               lengths.ctypes.data_as(POINTER(c_int64)), *tensors))
        return y, h_n, c_n

    def forward_lengths(self, x, lengths, h0=None, c0=None, want_h=True, want_c=None, ws=None):
        """attn_rnn_forward_lengths: x [B,T,I], lengths [B] -> (y, h_n or None, c_n or None)."""
        return self.forward(x, h0, c0, want_h, want_c, ws, lengths)

    def cost(self, batch, seq_len):
        c = Cost()
        check(lib.attn_rnn_cost(self.ptr, batch, seq_len, byref(c)))
        return c

    def recurrent_matrix(self, layer, direction):
        gates = {ATTN_CELL_LSTM: 4, ATTN_CELL_GRU: 3}.get(self.options.cell, 1)
        h = self.options.hidden_size
        out = np.empty((gates * h, h), dtype=np.float32)
        check(lib.attn_rnn_recurrent_matrix(self.ptr, layer, direction, fptr(out)))
        return out



class Mha(_Handle):
    """An attn_mha handle. Keyword arguments are attn_mha_options fields; booleans are accepted.
    `options` is what attn_mha_get_options returns (kdim and vdim resolved)."""

    _destroy = "attn_mha_destroy"

    def __init__(self, **options):
        self.ptr = c_void_p()  # before anything can raise: __del__ closes it
        o = MhaOptions()
        check(lib.attn_mha_options_init(byref(o)))
        for key, value in options.items():
            if not hasattr(o, key):
                raise TypeError("attn_mha_options has no field %r" % key)
            setattr(o, key, int(value))
        check(lib.attn_mha_create(byref(self.ptr), byref(o)))
        self.options = MhaOptions()
        check(lib.attn_mha_get_options(self.ptr, byref(self.options)))
        self.params = Params(lib.attn_mha_params(self.ptr), owner=self)

    def _run(self, fn, query, key, value, mask, ws, out_shape):
        """Calls forward or attention_matrix; key and value default to query (self-attention)."""
        query = f32(query)
        key = query if key is None else f32(key)
        value = key if value is None else f32(value)
        mask = u8(mask)
        batch, tgt_len, src_len = query.shape[0], query.shape[1], key.shape[1]
        out = np.empty(out_shape(batch, tgt_len, src_len), dtype=np.float32)
        check(fn(self.ptr, None if ws is None else ws.ptr, batch, tgt_len, src_len, fptr(query), fptr(key),
                 fptr(value), u8ptr(mask), fptr(out)))
        return out

    def forward(self, query, key=None, value=None, mask=None, ws=None):
        """query [B,L,E], key [B,S,kdim], value [B,S,vdim], mask [B,S] (nonzero = ignore) -> [B,L,E]."""
        e = self.options.embed_dim
        return self._run(lib.attn_mha_forward, query, key, value, mask, ws, lambda b, l, s: (b, l, e))

    def attention_matrix(self, query, key=None, value=None, mask=None, ws=None):
        """The same arguments as forward -> weights [B, h, L, S]."""
        h = self.options.num_heads
        return self._run(lib.attn_mha_attention_matrix, query, key, value, mask, ws,
                         lambda b, l, s: (b, h, l, s))

    def cost(self, batch, tgt_len, src_len):
        c = Cost()
        check(lib.attn_mha_cost(self.ptr, batch, tgt_len, src_len, byref(c)))
        return c



# ---- safetensors, by hand ---------------------------------------------------------------------
# Format: u64 little-endian header length N, then N bytes of JSON {name: {dtype, shape,
# data_offsets: [begin, end]}, "__metadata__": {str: str}} (offsets relative to the byte after the
# header), then the raw little-endian tensor data.

_NP_TO_ST = {
    np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL",
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}


class RawTensor:
    """A tensor given as dtype string and raw little-endian bytes: for dtypes numpy lacks (BF16)
    and for writing deliberately inconsistent files."""

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = list(shape)
        self.data = bytes(data)


def safetensors_bytes(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` ({name: ndarray | RawTensor}) in the given
    order. metadata defaults to {"format": "pt"}, as PyTorch's writer stores it."""
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        if isinstance(t, RawTensor):
            dtype, shape, data = t.dtype, t.shape, t.data
        else:
            a = np.asarray(t)
            dtype = _NP_TO_ST[a.dtype]
            shape = list(a.shape)
            data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"} if metadata is None else metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads with spaces to 8-byte alignment
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))


def read_safetensors(path):
    """Returns (tensors {name: ndarray}, dtypes {name: dtype string}, metadata or None). BF16 is
    widened to float32; every offset is checked against the file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack_from("<Q", blob, 0)
    if 8 + n > len(blob):
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", None)
    tensors, dtypes = {}, {}
    for name, entry in header.items():
        dtype, shape = entry["dtype"], tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError("%s: tensor %s has offsets %d..%d outside the data (%d bytes)"
                             % (path, name, begin, end, len(data)))
        raw = bytes(data[begin:end])
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=_ST_TO_NP[dtype].newbyteorder("<"))
        if a.size != count:
            raise ValueError("%s: tensor %s has %d bytes for shape %s" % (path, name, len(raw), shape))
        tensors[name] = a.reshape(shape).astype(a.dtype.newbyteorder("="))
        dtypes[name] = dtype
    return tensors, dtypes, metadata


# ---- running a test file ----------------------------------------------------------------------


def run_tests(module_name="__main__", verbosity=2):
    """Runs the unittest cases of a module and prints the closing line "N passed, N failed"
    (", N skipped" when some were). Returns the process exit code: 0 only if nothing failed and
    at least one test ran."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name])
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stderr).run(suite)
    failed_ids = set()
    for test, _ in result.failures + result.errors:
        failed_ids.add(getattr(test, "test_case", test).id())  # sub-tests count as their test
    for test in result.unexpectedSuccesses:
        failed_ids.add(test.id())
    skipped = len(result.skipped)
    passed = result.testsRun - len(failed_ids) - skipped
    sys.stderr.flush()
    line = "%d passed, %d failed" % (passed, len(failed_ids))
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    return 0 if not failed_ids and passed > 0 else 1


# ---- memory.h (attn_memrnn) -------------------------------------------------------------------

ATTN_MEMORY_DENSE = 0
ATTN_MEMORY_SPARSE = 1


class MemrnnOptions(ctypes.Structure):
    """attn_memrnn_options, field for field (natural alignment, as RnnOptions)."""

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


declare({
    "attn_memrnn_options_init": (c_int32, [POINTER(MemrnnOptions)]),
    "attn_memrnn_create": (c_int32, [POINTER(c_void_p), POINTER(MemrnnOptions)]),
    "attn_memrnn_destroy": (None, [c_void_p]),
    "attn_memrnn_params": (c_void_p, [c_void_p]),
    "attn_memrnn_get_options": (c_int32, [c_void_p, POINTER(MemrnnOptions)]),
    "attn_memrnn_forward": (c_int32, [c_void_p, c_void_p, c_int64, c_int64, _FLOAT_P, _FLOAT_P, _FLOAT_P,
                                      _FLOAT_P]),
    "attn_memrnn_cost": (c_int32, [c_void_p, c_int64, c_int64, POINTER(Cost)]),
})


class Memrnn(_Handle):
    """An attn_memrnn handle. Keyword arguments are attn_memrnn_options fields."""

    _destroy = "attn_memrnn_destroy"

    def __init__(self, **options):
        self.ptr = c_void_p()  # before anything can raise: __del__ closes it
        o = MemrnnOptions()
        check(lib.attn_memrnn_options_init(byref(o)))
        for key, value in options.items():
            if not hasattr(o, key):
                raise TypeError("attn_memrnn_options has no field %r" % key)
            setattr(o, key, int(value))
        check(lib.attn_memrnn_create(byref(self.ptr), byref(o)))
        self.options = MemrnnOptions()
        check(lib.attn_memrnn_get_options(self.ptr, byref(self.options)))
        self.params = Params(lib.attn_memrnn_params(self.ptr), owner=self)

    def forward(self, x, want_read_weights=True, want_memory=True, ws=None):
        """x [B,T,in] -> (y [B,T,out], read_weights [B,T,R,N] or None, memory [B,N,W] or None)."""
        o = self.options
        x = f32(x)
        batch, seq_len = x.shape[0], x.shape[1]
        y = np.empty((batch, seq_len, o.output_size), dtype=np.float32)
        rw = (np.empty((batch, seq_len, o.num_heads, o.memory_slots), dtype=np.float32)
              if want_read_weights else None)
        mem = np.empty((batch, o.memory_slots, o.memory_width), dtype=np.float32) if want_memory else None
        check(lib.attn_memrnn_forward(self.ptr, None if ws is None else ws.ptr, batch, seq_len, fptr(x), fptr(y),
                                      fptr(rw), fptr(mem)))
        return y, rw, mem

    def cost(self, batch, seq_len):
        c = Cost()
        check(lib.attn_memrnn_cost(self.ptr, batch, seq_len, byref(c)))
        return c


# ---- perceiver.h (attn_perceiver) -------------------------------------------------------------


class PerceiverOptions(ctypes.Structure):
    """attn_perceiver_options, field for field (natural alignment, as RnnOptions)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("input_channels", c_int64),
        ("input_axis", c_int64),
        ("num_freq_bands", c_int64),
        ("max_freq", ctypes.c_double),
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


_INT64_P = POINTER(c_int64)

declare({
    "attn_perceiver_options_init": (c_int32, [POINTER(PerceiverOptions)]),
    "attn_perceiver_create": (c_int32, [POINTER(c_void_p), POINTER(PerceiverOptions)]),
    "attn_perceiver_destroy": (None, [c_void_p]),
    "attn_perceiver_params": (c_void_p, [c_void_p]),
    "attn_perceiver_get_options": (c_int32, [c_void_p, POINTER(PerceiverOptions)]),
    "attn_perceiver_forward": (c_int32, [c_void_p, c_void_p, c_int64, _INT64_P, _FLOAT_P, _UINT8_P, _FLOAT_P]),
    "attn_perceiver_cost": (c_int32, [c_void_p, c_int64, _INT64_P, POINTER(Cost)]),
})


class Perceiver(_Handle):
    """An attn_perceiver handle. Keyword arguments are attn_perceiver_options fields (max_freq a
    float; booleans are accepted for the flags)."""

    _destroy = "attn_perceiver_destroy"

    def __init__(self, **options):
        self.ptr = c_void_p()  # before anything can raise: __del__ closes it
        o = PerceiverOptions()
        check(lib.attn_perceiver_options_init(byref(o)))
        for key, value in options.items():
            if not hasattr(o, key):
                raise TypeError("attn_perceiver_options has no field %r" % key)
            setattr(o, key, float(value) if key == "max_freq" else int(value))
        check(lib.attn_perceiver_create(byref(self.ptr), byref(o)))
        self.options = PerceiverOptions()
        check(lib.attn_perceiver_get_options(self.ptr, byref(self.options)))
        self.params = Params(lib.attn_perceiver_params(self.ptr), owner=self)

    def out_shape(self, batch):
        o = self.options
        return (batch, o.num_classes) if o.num_classes > 0 else (batch, o.num_latents, o.latent_dim)

    def forward(self, data, mask=None, ws=None, axis_sizes=None):
        """data [B, *axis, C], mask [B, N] (nonzero = ignore; any shape of B*N elements) -> logits
        [B, num_classes] or latents [B, M, D]. axis_sizes defaults to data.shape[1:-1]; give it to
        pass other sizes (error tests)."""
        data = f32(data)
        batch = data.shape[0]
        if axis_sizes is None:
            axis_sizes = data.shape[1:-1]
        axes = np.ascontiguousarray(axis_sizes, dtype=np.int64)
        mask = u8(mask)
        out = np.empty(self.out_shape(batch), dtype=np.float32)
        check(lib.attn_perceiver_forward(self.ptr, None if ws is None else ws.ptr, batch,
                                         axes.ctypes.data_as(_INT64_P), fptr(data), u8ptr(mask), fptr(out)))
        return out

    def cost(self, batch, axis_sizes):
        axes = np.ascontiguousarray(axis_sizes, dtype=np.int64)
        c = Cost()
        check(lib.attn_perceiver_cost(self.ptr, batch, axes.ctypes.data_as(_INT64_P), byref(c)))
        return c


# ---- analysis.h (libattn 1.3) -----------------------------------------------------------------


class RankReport(ctypes.Structure):
    """attn_rank_report, field for field."""

    _fields_ = [
        ("sigma_max", ctypes.c_double),
        ("frobenius", ctypes.c_double),
        ("stable_rank", ctypes.c_double),
        ("effective_rank", ctypes.c_double),
        ("numerical_rank", c_int64),
        ("rank_90", c_int64),
        ("rank_99", c_int64),
    ]

    def as_dict(self):
        return {name: getattr(self, name) for name, _ in self._fields_}


_DOUBLE_P = POINTER(ctypes.c_double)

declare({
    "attn_singular_values": (c_int32, [_FLOAT_P, c_int64, c_int64, _DOUBLE_P]),
    "attn_rank_analyze": (c_int32, [_FLOAT_P, c_int64, c_int64, POINTER(RankReport)]),
    "attn_lowrank_error": (c_int32, [_FLOAT_P, c_int64, c_int64, c_int64, _DOUBLE_P]),
    "attn_lowrank_factors": (c_int32, [_FLOAT_P, c_int64, c_int64, c_int64, _FLOAT_P, _FLOAT_P]),
    "attn_params_open": (c_int32, [POINTER(c_void_p), c_char_p, c_char_p]),
    "attn_params_close": (None, [c_void_p]),
})


def _matrix(a):
    a = f32(a)
    if a.ndim != 2:
        raise ValueError("a 2-D matrix is expected, got shape %s" % (a.shape,))
    return a


def singular_values(a):
    """attn_singular_values: a [rows, cols] (converted to float32) -> float64 [min(rows, cols)],
    decreasing."""
    a = _matrix(a)
    sigma = np.empty(min(a.shape), dtype=np.float64)
    check(lib.attn_singular_values(fptr(a), a.shape[0], a.shape[1], sigma.ctypes.data_as(_DOUBLE_P)))
    return sigma


def rank_analyze(a):
    """attn_rank_analyze: a [rows, cols] -> RankReport."""
    a = _matrix(a)
    report = RankReport()
    check(lib.attn_rank_analyze(fptr(a), a.shape[0], a.shape[1], byref(report)))
    return report


def lowrank_error(a, rank):
    """attn_lowrank_error: a [rows, cols], rank -> the Frobenius distance to the nearest matrix of
    rank <= rank."""
    a = _matrix(a)
    err = ctypes.c_double()
    check(lib.attn_lowrank_error(fptr(a), a.shape[0], a.shape[1], rank, byref(err)))
    return err.value


def lowrank_factors(a, rank):
    """attn_lowrank_factors: a [rows, cols], rank -> (u [rows, rank], v [rank, cols]), u v the
    truncated SVD."""
    a = _matrix(a)
    u = np.empty((a.shape[0], rank), dtype=np.float32)
    v = np.empty((rank, a.shape[1]), dtype=np.float32)
    check(lib.attn_lowrank_factors(fptr(a), a.shape[0], a.shape[1], rank, fptr(u), fptr(v)))
    return u, v


class OpenedParams(Params):
    """attn_params_open: a safetensors file's float tensors (under `prefix`) as a set of their own;
    closed by close() or when collected."""

    def __init__(self, path, prefix=None):
        ptr = c_void_p()
        check(lib.attn_params_open(byref(ptr), _cstr(path), _cstr(prefix)))
        super().__init__(ptr.value)

    def close(self):
        if self.ptr:
            lib.attn_params_close(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()
